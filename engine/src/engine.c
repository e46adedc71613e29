/* The engine handle: configuration, the owned or borrowed loop, and its
 * lifetime.  An engine is freed once its handle is released AND no tensor,
 * job or open loop handle refers to it (sqlite3_close_v2's "zombie"), so
 * host languages may collect objects in any order. */
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "../../transforms/transforms.h" /* lm_register_builtin_ops */

#define DEFAULT_HOST_CACHE ((size_t)1 << 30)

static atomic_ullong next_id = 1;

void lm_config_init(lm_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
}

static void destroy(lm_engine *e);

void lm_engine_ref(lm_engine *e)
{
  atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void lm_engine_unref(lm_engine *e)
{
  if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) destroy(e);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void close_owned_loop(uv_loop_t *loop)
{
  /* Handles the user added to our loop are closed for them. */
  while (uv_loop_close(loop) == UV_EBUSY) {
    uv_walk(loop, close_walk_cb, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  free(loop);
}

static void destroy(lm_engine *e)
{
  if (e->owned_loop && e->running > 0) {
    /* Inside lm_engine_run: the loop cannot be closed from within uv_run;
     * lm_engine_run finishes the job when uv_run returns. */
    atomic_store(&e->destroy_deferred, true);
    return;
  }
  lm_exec_free(e->exec);
  lm_pool_free(e->pool);
  lm_registry_free(&e->reg);
  lm_cuda_unload(&e->cuda);
  lm_alloc_destroy(&e->alloc);
  if (e->owned_loop) close_owned_loop(e->owned_loop);
  free(e);
}

static int online_cores(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

static void async_closed(lm_engine *e)
{
  lm_engine_unref(e); /* the reference held by the open async handle */
}

int lm_engine_new(const lm_config *cfg_in, lm_engine **out)
{
  *out = NULL;
  lm_config cfg;
  if (cfg_in) cfg = *cfg_in;
  else lm_config_init(&cfg);
  if (cfg.threads < 0 || cfg.io_threads < 0)
    return lm_set_error(NULL, LM_EINVAL, "engine: threads and io_threads must be >= 0");
  lm_engine *e = calloc(1, sizeof *e);
  if (!e) return lm_set_error(NULL, LM_ENOMEM, "engine: out of memory");
  e->id = atomic_fetch_add(&next_id, 1);
  e->cfg = cfg;
  e->cfg.loop = NULL;
  e->cfg.cuda_plugin = NULL; /* not kept: the caller's string */
  atomic_init(&e->refs, 1);
  e->threads = cfg.threads > 0 ? cfg.threads : online_cores();

  /* libuv reads UV_THREADPOOL_SIZE when its pool first starts. */
  char num[16];
  if (cfg.io_threads > 0) {
    snprintf(num, sizeof num, "%d", cfg.io_threads);
    setenv("UV_THREADPOOL_SIZE", num, 1);
  } else if (!getenv("UV_THREADPOOL_SIZE")) {
    snprintf(num, sizeof num, "%d", e->threads > 4 ? e->threads : 4);
    setenv("UV_THREADPOOL_SIZE", num, 0);
  }

  size_t bound = cfg.host_cache_bytes == 0          ? DEFAULT_HOST_CACHE
                 : cfg.host_cache_bytes == (size_t)-1 ? 0
                                                      : cfg.host_cache_bytes;
  lm_alloc_init(&e->alloc, bound);

  int st;
  if (cfg.loop) {
    e->loop = cfg.loop;
  } else {
    e->owned_loop = malloc(sizeof *e->owned_loop);
    if (!e->owned_loop || uv_loop_init(e->owned_loop) != 0) {
      free(e->owned_loop);
      lm_alloc_destroy(&e->alloc);
      free(e);
      return lm_set_error(NULL, LM_EINTERNAL, "engine: cannot create a libuv loop");
    }
    e->loop = e->owned_loop;
  }
  if ((st = lm_pool_new(e->threads, &e->pool)) < 0) {
    lm_set_error(NULL, st, "engine: cannot start %d compute threads", e->threads);
    goto fail;
  }
  /* Ops first, so the plugin can attach its kernels to them. */
  if ((st = lm_register_builtin_ops(e)) < 0) {
    lm_set_error(NULL, st, "engine: registering the built-in ops failed: %s", lm_errmsg(e));
    goto fail;
  }
  lm_cuda_load(e, &cfg, &e->cuda);
  if ((st = lm_exec_new(e, &e->exec)) < 0) {
    lm_set_error(NULL, st, "engine: cannot create the executor");
    goto fail;
  }
  lm_engine_ref(e); /* held by the async handle until it is closed */
  *out = e;
  return LM_OK;
fail:
  lm_pool_free(e->pool);
  lm_registry_free(&e->reg);
  lm_cuda_unload(&e->cuda);
  lm_alloc_destroy(&e->alloc);
  if (e->owned_loop) close_owned_loop(e->owned_loop);
  free(e);
  return st;
}

void lm_engine_release(lm_engine *e)
{
  if (!e || e->released) return;
  e->released = true;
  lm_exec_cancel_all(e->exec);
  if (e->owned_loop && e->running == 0) {
    /* Nobody else will turn our loop: deliver the (cancelled) jobs here, then
     * close the async handle so the engine can go with its last tensor. */
    while (lm_exec_pending(e->exec) > 0) uv_run(e->loop, UV_RUN_ONCE);
    lm_exec_shutdown(e->exec, async_closed);
    uv_run(e->loop, UV_RUN_NOWAIT);
  } else {
    /* Borrowed loop, or released from inside lm_engine_run: the async handle
     * closes when the last pending job has been delivered. */
    lm_exec_shutdown(e->exec, async_closed);
  }
  lm_engine_unref(e);
}

uv_loop_t *lm_engine_loop(lm_engine *e)
{
  return e->loop;
}

int lm_engine_run(lm_engine *e, int mode)
{
  uv_run_mode m = mode == 1 ? UV_RUN_ONCE : mode == 2 ? UV_RUN_NOWAIT : UV_RUN_DEFAULT;
  e->running++;
  int r = uv_run(e->loop, m);
  e->running--;
  if (e->running == 0 && atomic_load(&e->destroy_deferred)) destroy(e);
  return r;
}

int lm_engine_cuda_devices(lm_engine *e)
{
  return e->cuda.ndevices;
}

const char *lm_engine_cuda_status(lm_engine *e)
{
  return e->cuda.status;
}

const lm_cuda_api *lm_engine_cuda_api(lm_engine *e)
{
  return e->cuda.ndevices > 0 ? e->cuda.api : NULL;
}

void lm_engine_stats_get(lm_engine *e, lm_engine_stats *out)
{
  size_t held, cached;
  lm_alloc_stats(&e->alloc, &held, &cached);
  out->live_tensors = atomic_load(&e->live_tensors);
  out->live_jobs = atomic_load(&e->live_jobs);
  out->host_bytes = atomic_load(&e->host_bytes);
  out->host_cached_bytes = (int64_t)cached;
  out->device_bytes = atomic_load(&e->device_bytes);
  out->device_pool_bytes = 0;
  const lm_cuda_api *api = lm_engine_cuda_api(e);
  for (int d = 0; api && api->pool_bytes && d < e->cuda.ndevices; d++)
    out->device_pool_bytes += (int64_t)api->pool_bytes(d);
  out->threads = e->threads;
}

void lm_engine_trim(lm_engine *e)
{
  lm_alloc_trim(&e->alloc);
#ifdef __GLIBC__
  /* Kernels' scratch memory comes from malloc; give its freed pages back
   * too, so that a pipeline's peak is what is alive, not what was. */
  malloc_trim(0);
#endif
}

int lm_engine_threads(lm_engine *e)
{
  return e->threads;
}

lm_pool *lm_engine_pool(lm_engine *e)
{
  return e->pool;
}
