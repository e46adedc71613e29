/* Engine unit tests: lm_parallel_for (sums, nesting, many callers, errors,
 * cancellation) and the caching host allocator. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "lumen.h"
#include "tap.h"

static lm_engine *E;

static lm_engine *new_engine(int threads, size_t cache)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  cfg.threads = threads;
  cfg.host_cache_bytes = cache;
  lm_engine *e;
  if (lm_engine_new(&cfg, &e) != LM_OK) {
    printf("Bail out! %s\n", lm_errmsg(NULL));
    exit(1);
  }
  return e;
}

typedef struct {
  const int32_t *v;
  atomic_llong sum;
  atomic_int calls;
} sum_arg;

static int sum_body(int64_t b, int64_t e, void *arg)
{
  sum_arg *s = arg;
  long long acc = 0;
  for (int64_t i = b; i < e; i++) acc += s->v[i];
  atomic_fetch_add(&s->sum, acc);
  atomic_fetch_add(&s->calls, 1);
  return LM_OK;
}

static void test_sum_10e7(void)
{
  int64_t n = 10000000;
  int32_t *v = malloc(sizeof *v * (size_t)n);
  long long serial = 0;
  for (int64_t i = 0; i < n; i++) {
    v[i] = (int32_t)((i * 2654435761u) % 1000003) - 500000;
    serial += v[i];
  }
  sum_arg s = {.v = v};
  CHECK_INT(lm_parallel_for(E, NULL, n, 1 << 16, sum_body, &s), LM_OK);
  CHECK_INT(atomic_load(&s.sum), serial);
  CHECK(atomic_load(&s.calls) > 1); /* it was split */
  /* Below the grain: one call. */
  sum_arg t = {.v = v};
  CHECK_INT(lm_parallel_for(E, NULL, 1000, 5000, sum_body, &t), LM_OK);
  CHECK_INT(atomic_load(&t.calls), 1);
  CHECK_INT(lm_parallel_for(E, NULL, 0, 1, sum_body, &t), LM_OK);
  CHECK_INT(atomic_load(&t.calls), 1);
  free(v);
}

typedef struct {
  atomic_llong total;
} nest_arg;

static int inner_body(int64_t b, int64_t e, void *arg)
{
  nest_arg *a = arg;
  long long acc = 0;
  for (int64_t i = b; i < e; i++) acc += i;
  atomic_fetch_add(&a->total, acc);
  return LM_OK;
}

static int outer_body(int64_t b, int64_t e, void *arg)
{
  for (int64_t i = b; i < e; i++) {
    int st = lm_parallel_for(E, NULL, 100000, 1000, inner_body, arg);
    if (st < 0) return st;
  }
  return LM_OK;
}

static void test_nested(void)
{
  nest_arg a = {0};
  CHECK_INT(lm_parallel_for(E, NULL, 16, 1, outer_body, &a), LM_OK);
  CHECK_INT(atomic_load(&a.total), 16LL * (100000LL * 99999 / 2));
}

static void *many_callers_thread(void *arg)
{
  nest_arg *a = arg;
  for (int k = 0; k < 50; k++) lm_parallel_for(E, NULL, 20000, 100, inner_body, a);
  return NULL;
}

static void test_many_callers(void)
{
  nest_arg a = {0};
  pthread_t th[6];
  for (int i = 0; i < 6; i++) pthread_create(&th[i], NULL, many_callers_thread, &a);
  for (int i = 0; i < 6; i++) pthread_join(th[i], NULL);
  CHECK_INT(atomic_load(&a.total), 6LL * 50 * (20000LL * 19999 / 2));
}

static int failing_body(int64_t b, int64_t e, void *arg)
{
  int64_t bad = *(int64_t *)arg;
  return bad >= b && bad < e ? LM_EIO : LM_OK;
}

static void test_body_error(void)
{
  int64_t bad = 777777;
  CHECK_INT(lm_parallel_for(E, NULL, 1000000, 1000, failing_body, &bad), LM_EIO);
  bad = -1;
  CHECK_INT(lm_parallel_for(E, NULL, 1000000, 1000, failing_body, &bad), LM_OK);
}

/* Cancellation: a kernel whose parallel body cancels its own job. */
static lm_job *_Atomic self_job;
static atomic_int chunks_run;
static int cancel_body(int64_t b, int64_t e, void *arg)
{
  if (atomic_fetch_add(&chunks_run, 1) == 0) {
    /* The handle is stored when lm_call_async returns, maybe after the
     * kernel started. */
    while (!atomic_load(&self_job)) usleep(100);
    lm_job_cancel(atomic_load(&self_job));
  }
  usleep(2000);
  return LM_OK;
}
static int cancel_kernel(lm_op_ctx *ctx)
{
  return lm_parallel_for(lm_ctx_engine(ctx), ctx, 64, 1, cancel_body, NULL);
}
static const lm_op_desc cancel_op = {.name = "TestSelfCancel", .flags = LM_OP_SOURCE,
                                     .run_cpu = cancel_kernel};

static void on_done(lm_job *job, int status, void *ud) { *(int *)ud = status; }

static void test_cancel(void)
{
  CHECK_INT(lm_op_register(E, &cancel_op), LM_OK);
  int status = 1;
  lm_job *job;
  CHECK_INT(lm_call_async(E, "TestSelfCancel", NULL, 0, NULL, on_done, &status, &job), LM_OK);
  atomic_store(&self_job, job);
  lm_engine_run(E, 0);
  CHECK_INT(status, LM_ECANCELED);
  CHECK_STR(lm_job_errmsg(job), "TestSelfCancel: cancelled");
  CHECK(atomic_load(&chunks_run) < 64); /* the rest were skipped */
  lm_job_release(job);
}

/* ---- the caching allocator ---- */

static void test_alloc_reuse(void)
{
  lm_engine *e = new_engine(1, 0);
  int64_t sh[1] = {1 << 20};
  lm_tensor *a, *b;
  lm_engine_stats s;
  CHECK_INT(lm_tensor_new(e, LM_U8, 1, sh, LM_CPU, &a), LM_OK);
  void *p = lm_tensor_data(a);
  CHECK(((uintptr_t)p & 63) == 0);
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.host_bytes, 1 << 20);
  CHECK_INT(s.host_cached_bytes, 0);
  lm_tensor_release(a);
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.host_bytes, 0);
  CHECK_INT(s.host_cached_bytes, 1 << 20);
  /* A slightly smaller request of the same size class gets the block back. */
  sh[0] = (1 << 20) - 1000;
  CHECK_INT(lm_tensor_new(e, LM_U8, 1, sh, LM_CPU, &b), LM_OK);
  CHECK(lm_tensor_data(b) == p);
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.host_cached_bytes, 0);
  CHECK_INT(s.host_bytes, 1 << 20);
  lm_tensor_release(b);
  lm_engine_trim(e);
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.host_cached_bytes, 0);
  lm_engine_release(e);
}

static void test_alloc_bound(void)
{
  lm_engine *e = new_engine(1, (size_t)3 << 20);
  int64_t sh[1] = {1 << 20};
  lm_tensor *t[5];
  for (int k = 0; k < 5; k++) CHECK_INT(lm_tensor_new(e, LM_U8, 1, sh, LM_CPU, &t[k]), LM_OK);
  lm_engine_stats s;
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.host_bytes, 5 << 20);
  for (int k = 0; k < 5; k++) lm_tensor_release(t[k]);
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.host_bytes, 0);
  CHECK_INT(s.host_cached_bytes, 3 << 20); /* the bound, not more */
  /* A block larger than the bound is never cached. */
  int64_t big[1] = {4 << 20};
  lm_tensor *b;
  CHECK_INT(lm_tensor_new(e, LM_U8, 1, big, LM_CPU, &b), LM_OK);
  lm_tensor_release(b);
  lm_engine_stats_get(e, &s);
  CHECK(s.host_cached_bytes <= 3 << 20);
  lm_engine_release(e);

  /* (size_t)-1: no caching at all. */
  e = new_engine(1, (size_t)-1);
  CHECK_INT(lm_tensor_new(e, LM_U8, 1, sh, LM_CPU, &b), LM_OK);
  lm_tensor_release(b);
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.host_cached_bytes, 0);
  lm_engine_release(e);
}

static lm_engine *shared_engine;
static void *alloc_thread(void *arg)
{
  int64_t seed = (int64_t)(intptr_t)arg;
  for (int k = 0; k < 300; k++) {
    int64_t sh[1] = {64 + ((seed * 7919 + k * 104729) % 50000)};
    lm_tensor *t;
    if (lm_tensor_new(shared_engine, LM_U8, 1, sh, LM_CPU, &t) != LM_OK) return arg;
    memset(lm_tensor_data(t), (int)k, (size_t)sh[0]);
    lm_tensor_release(t);
  }
  return NULL;
}

static void test_alloc_threads(void)
{
  shared_engine = new_engine(1, (size_t)1 << 20);
  pthread_t th[4];
  for (intptr_t i = 0; i < 4; i++) pthread_create(&th[i], NULL, alloc_thread, (void *)(i + 1));
  int failed = 0;
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(th[i], &r);
    failed += r != NULL;
  }
  CHECK_INT(failed, 0);
  lm_engine_stats s;
  lm_engine_stats_get(shared_engine, &s);
  CHECK_INT(s.host_bytes, 0);
  CHECK(s.host_cached_bytes > 0 && s.host_cached_bytes <= 1 << 20);
  lm_engine_release(shared_engine);
}

int main(void)
{
  E = new_engine(4, 0);
  RUN(test_sum_10e7);
  RUN(test_nested);
  RUN(test_many_callers);
  RUN(test_body_error);
  RUN(test_cancel);
  lm_engine_release(E);
  RUN(test_alloc_reuse);
  RUN(test_alloc_bound);
  RUN(test_alloc_threads);
  TAP_DONE();
}
