/* A test double of liblumen_cuda.so: implements the plugin contract with
 * host memory, so the loader, device tensors, ready events and the
 * per-device executor thread are tested on machines without a GPU.
 * FAKE_CUDA_DEVICES sets the device count it reports (0 by default).
 *
 * Ready events are heap objects with a magic word: a double release, a use
 * after release or a leak shows under valgrind / ASan and in the counters
 * the test reads through fake_cuda_counters(). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_plugin.h"

#define FAKE_EVENT_MAGIC 0x5eadc0de

typedef struct fake_event {
  unsigned magic;
  int device;
} fake_event;

static pthread_t device_thread;
static int thread_inits;
static atomic_int live_events, event_waits, thread_finis, bad_events;
static atomic_bool sticky_fault;  /* set by FakeAsyncFault, reported at the next sync */
static void *_Atomic last_d2h_ready;

/* The test's view of the counters. */
__attribute__((visibility("default"))) void fake_cuda_counters(int *live, int *waits,
                                                                int *finis, int *bad,
                                                                void **d2h_ready)
{
  *live = atomic_load(&live_events);
  *waits = atomic_load(&event_waits);
  *finis = atomic_load(&thread_finis);
  *bad = atomic_load(&bad_events);
  *d2h_ready = atomic_load(&last_d2h_ready);
}

static int fake_init(char *msg, size_t len)
{
  const char *env = getenv("FAKE_CUDA_DEVICES");
  int n = env ? atoi(env) : 0;
  if (n == 0) snprintf(msg, len, "no CUDA device: fake driver has none");
  else snprintf(msg, len, "%d device: Fake GPU", n);
  return n;
}

static void *fake_malloc(int dev, size_t n) { return malloc(n); }
static void fake_free(int dev, void *p) { free(p); }

static bool check_event(void *p)
{
  fake_event *ev = p;
  if (ev && ev->magic != FAKE_EVENT_MAGIC) {
    atomic_fetch_add(&bad_events, 1);
    return false;
  }
  return true;
}

/* A synchronisation point reports what an earlier "kernel" left behind, as
 * the real plugin does with CUDA's sticky errors. */
static int sync_point(int dev, const char *where, char *err, size_t len)
{
  if (!atomic_exchange(&sticky_fault, false)) return LM_OK;
  snprintf(err, len, "cuda:%d: an earlier asynchronous op on this device failed (reported at %s): "
           "fake fault", dev, where);
  return LM_ECUDA;
}

static int fake_copy(int dev, void *dst, const void *src, size_t n, char *err, size_t len)
{
  memcpy(dst, src, n);
  return LM_OK;
}

static int fake_d2h(int dev, void *dst, const void *src, size_t n, void *ready, char *err,
                    size_t len)
{
  if (!check_event(ready)) {
    snprintf(err, len, "cuda:%d: bad ready event", dev);
    return LM_ECUDA;
  }
  atomic_store(&last_d2h_ready, ready);
  int st = sync_point(dev, "a copy to the host", err, len);
  if (st < 0) return st;
  memcpy(dst, src, n);
  return LM_OK;
}

static int fake_thread_init(int dev, char *err, size_t len)
{
  device_thread = pthread_self();
  thread_inits++;
  return LM_OK;
}

static void fake_thread_fini(int dev)
{
  if (pthread_equal(pthread_self(), device_thread)) atomic_fetch_add(&thread_finis, 1);
}

static int fake_event_wait(int dev, void *ready, char *err, size_t len)
{
  if (!check_event(ready)) {
    snprintf(err, len, "cuda:%d: bad ready event", dev);
    return LM_ECUDA;
  }
  atomic_fetch_add(&event_waits, 1);
  return sync_point(dev, "a wait for a tensor's data", err, len);
}

static void fake_event_release(int dev, void *ready)
{
  if (!check_event(ready)) return;
  ((fake_event *)ready)->magic = 0;
  free(ready);
  atomic_fetch_sub(&live_events, 1);
}

static size_t fake_pool_bytes(int dev) { return 4096; }

/* FakeNegate(img): the "CUDA" kernel negates a float32 tensor in device
 * memory, records whether it ran on the device thread, and marks its output
 * with a ready event as lmc_finish does. */
static int negate_cuda(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out;
  if (!pthread_equal(pthread_self(), device_thread) || thread_inits != 1)
    return lm_ctx_error(ctx, LM_EINTERNAL, "not on the device thread");
  int st = lm_tensor_new_like(in, LM_F32, lm_tensor_device(in), &out);
  if (st < 0) return st;
  const float *s = lm_tensor_data(in);
  float *d = lm_tensor_data(out);
  for (int64_t k = 0; k < lm_tensor_numel(in); k++) d[k] = -s[k];
  fake_event *ev = malloc(sizeof *ev);
  if (!ev) {
    lm_tensor_release(out);
    return lm_ctx_error(ctx, LM_ENOMEM, "out of memory (event)");
  }
  ev->magic = FAKE_EVENT_MAGIC;
  ev->device = lm_tensor_device(in).index;
  atomic_fetch_add(&live_events, 1);
  lm_tensor_set_cuda_ready(out, ev);
  return lm_ctx_set_output(ctx, 0, out);
}

/* FakeAsyncFault(img): "launches" a kernel that fails later: the op
 * succeeds, the next synchronisation reports the fault. */
static int fault_cuda(lm_op_ctx *ctx)
{
  atomic_store(&sticky_fault, true);
  return lm_ctx_set_output(ctx, 0, lm_tensor_retain(lm_ctx_input(ctx, 0)));
}

static int fake_cpu(lm_op_ctx *ctx)
{
  return lm_ctx_error(ctx, LM_EINTERNAL, "the CPU kernel must not run for device inputs");
}

static const lm_op_desc negate_op = {.name = "FakeNegate", .inputs = "img", .min_inputs = 1,
                                     .max_inputs = 1, .outputs = "img", .run_cpu = fake_cpu};
static const lm_op_desc fault_op = {.name = "FakeAsyncFault", .inputs = "img", .min_inputs = 1,
                                    .max_inputs = 1, .outputs = "img", .run_cpu = fake_cpu};

static int fake_register(lm_engine *e)
{
  int st = lm_op_register(e, &negate_op);
  if (st >= 0) st = lm_op_register(e, &fault_op);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "FakeNegate", negate_cuda);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "FakeAsyncFault", fault_cuda);
  return st;
}

static const lm_cuda_api api = {
  .abi = LM_CUDA_ABI, .init = fake_init, .malloc = fake_malloc, .free = fake_free,
  .memcpy_h2d = fake_copy, .memcpy_d2h = fake_d2h, .memcpy_d2d = fake_copy,
  .thread_init = fake_thread_init, .thread_fini = fake_thread_fini,
  .register_kernels = fake_register, .event_wait = fake_event_wait,
  .event_release = fake_event_release, .pool_bytes = fake_pool_bytes,
};

const lm_cuda_api *lm_cuda_plugin_entry(int abi)
{
  return abi == LM_CUDA_ABI ? &api : NULL;
}
