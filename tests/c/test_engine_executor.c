/* Engine unit tests: lm_call_async on the loop, many jobs in flight,
 * validation errors, cancellation of queued and running jobs, synchronous
 * mode, and engine release with work pending. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <uv.h>

#include "lumen.h"
#include "tap.h"

static pthread_t main_thread;
static atomic_int ran, blockers_started;
static atomic_bool release_blockers;

/* TestAdd(img, {value}) -> img + value (float32, contiguous input). */
static int add_run(lm_op_ctx *ctx)
{
  atomic_fetch_add(&ran, 1);
  lm_tensor *in = lm_ctx_input(ctx, 0), *out;
  int st = lm_tensor_new_like(in, LM_F32, LM_CPU, &out);
  if (st < 0) return st;
  const float *s = lm_tensor_data(in);
  float *d = lm_tensor_data(out);
  float v = (float)lm_arg_number(ctx, "value");
  for (int64_t k = 0; k < lm_tensor_numel(in); k++) d[k] = s[k] + v;
  lm_params_set_int(lm_ctx_results(ctx), "on_loop_thread",
                    pthread_equal(pthread_self(), main_thread));
  return lm_ctx_set_output(ctx, 0, out);
}
static const lm_arg_desc add_args[] = {{"value", LM_ARG_NUMBER, NULL, ""}};
static const lm_op_desc add_op = {.name = "TestAdd", .inputs = "img", .min_inputs = 1,
                                  .max_inputs = 1, .outputs = "img", .args = add_args,
                                  .nargs = 1, .run_cpu = add_run};

/* TestBlock() spins until released or cancelled (polling like a kernel). */
static int block_run(lm_op_ctx *ctx)
{
  atomic_fetch_add(&blockers_started, 1);
  while (!atomic_load(&release_blockers)) {
    if (lm_ctx_cancelled(ctx)) return LM_ECANCELED;
    usleep(1000);
  }
  return LM_OK;
}
static const lm_op_desc block_op = {.name = "TestBlock", .flags = LM_OP_SOURCE,
                                    .run_cpu = block_run};

static lm_engine *new_engine(bool synchronous)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  cfg.threads = 2;
  cfg.io_threads = 2; /* libuv's pool: two workers, so jobs queue */
  cfg.synchronous = synchronous;
  lm_engine *e;
  if (lm_engine_new(&cfg, &e) != LM_OK) {
    printf("Bail out! %s\n", lm_errmsg(NULL));
    exit(1);
  }
  lm_op_register(e, &add_op);
  lm_op_register(e, &block_op);
  return e;
}

static lm_tensor *ramp(lm_engine *e, int64_t n, float base)
{
  lm_tensor *t;
  int64_t sh[1] = {n};
  lm_tensor_new(e, LM_F32, 1, sh, LM_CPU, &t);
  for (int64_t k = 0; k < n; k++) ((float *)lm_tensor_data(t))[k] = base + (float)k;
  return t;
}

typedef struct {
  int calls, status, on_loop, ok;
  double first, on_loop_thread;
  char msg[256];
} outcome;

static void record(lm_job *job, int status, void *ud)
{
  outcome *o = ud;
  o->calls++;
  o->status = status;
  o->on_loop = pthread_equal(pthread_self(), main_thread);
  o->ok = lm_job_status(job) == status;
  snprintf(o->msg, sizeof o->msg, "%s", lm_job_errmsg(job));
  if (status == LM_OK && lm_job_noutputs(job) == 1) {
    int64_t i0[1] = {0};
    o->first = lm_tensor_get(lm_job_output(job, 0), i0);
    const lm_value *v = lm_params_get(lm_job_results(job), "on_loop_thread");
    o->on_loop_thread = v ? (double)v->u.integer : -1;
  }
}

/* As record, for callers that keep the handle and release it from here. */
static void record_release(lm_job *job, int status, void *ud)
{
  record(job, status, ud);
  lm_job_release(job);
}

static void test_async_completes_on_loop(void)
{
  lm_engine *e = new_engine(false);
  lm_tensor *in = ramp(e, 100, 1);
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_number(o, "value", 10);
  outcome out = {0};
  lm_job *job;
  CHECK_INT(lm_call_async(e, "TestAdd", &in, 1, o, record_release, &out, &job), LM_OK);
  lm_tensor_release(in); /* the job keeps what it needs */
  lm_params_free(o);
  CHECK_INT(out.calls, 0);
  lm_engine_run(e, 0); /* returns once the work is done */
  CHECK_INT(out.calls, 1);
  CHECK_INT(out.status, LM_OK);
  CHECK(out.on_loop);
  CHECK(out.ok);
  CHECK_NEAR(out.first, 11, 0);
  CHECK_NEAR(out.on_loop_thread, 0, 0); /* the kernel ran on a pool thread */
  lm_engine_stats s;
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.live_jobs, 0);
  CHECK_INT(s.live_tensors, 0);
  lm_engine_release(e);
}

typedef struct {
  int done, bad;
} many_state;

static void many_cb(lm_job *job, int status, void *ud)
{
  many_state *m = ud;
  m->done++;
  const lm_op_desc *op = lm_job_op(job);
  if (status != LM_OK || strcmp(op->name, "TestAdd") != 0) m->bad++;
  else {
    lm_tensor *t = lm_job_output(job, 0);
    int64_t i5[1] = {5};
    /* ramp base k, value k: element 5 = 2k + 5 */
    double k = (lm_tensor_get(t, i5) - 5) / 2;
    if (k != floor(k) || k < 0 || k >= 64) m->bad++;
  }
}

static void test_64_jobs_in_flight(void)
{
  lm_engine *e = new_engine(false);
  many_state m = {0, 0};
  lm_job *jobs[64];
  for (int k = 0; k < 64; k++) {
    lm_tensor *in = ramp(e, 4096, (float)k);
    lm_params *o;
    lm_params_new(&o);
    lm_params_set_number(o, "value", k);
    CHECK_INT(lm_call_async(e, "TestAdd", &in, 1, o, many_cb, &m, &jobs[k]), LM_OK);
    lm_params_free(o);
    lm_tensor_release(in);
  }
  lm_engine_stats s;
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.live_jobs, 64);
  lm_engine_run(e, 0);
  CHECK_INT(m.done, 64);
  CHECK_INT(m.bad, 0);
  /* Outputs stay valid until each job is released. */
  int64_t i0[1] = {0};
  CHECK_NEAR(lm_tensor_get(lm_job_output(jobs[63], 0), i0), 126, 0);
  for (int k = 0; k < 64; k++) lm_job_release(jobs[k]);
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.live_jobs, 0);
  CHECK_INT(s.live_tensors, 0);
  lm_engine_release(e);
}

static void never_called(lm_job *job, int status, void *ud)
{
  (*(int *)ud)++;
}

static void test_validation_error_no_callback(void)
{
  lm_engine *e = new_engine(false);
  lm_tensor *in = ramp(e, 4, 0);
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_string(o, "value", "ten");
  int calls = 0;
  lm_job *job = (lm_job *)&calls;
  CHECK_INT(lm_call_async(e, "TestAdd", &in, 1, o, never_called, &calls, &job), LM_EINVAL);
  CHECK(job == NULL);
  CHECK_STR(lm_errmsg(e), "TestAdd: option 'value' must be a number, got string");
  CHECK_INT(lm_call_async(e, "Nope", &in, 1, o, never_called, &calls, &job), LM_ENOENT);
  CHECK_INT(lm_call_async(e, "TestAdd", NULL, 0, o, never_called, &calls, &job), LM_EINVAL);
  lm_engine_run(e, 0);
  CHECK_INT(calls, 0);
  lm_params_free(o);
  lm_tensor_release(in);
  lm_engine_release(e);
}

static void test_cancel_queued_and_running(void)
{
  lm_engine *e = new_engine(false);
  atomic_store(&release_blockers, false);
  atomic_store(&blockers_started, 0);
  atomic_store(&ran, 0);
  /* Occupy both pool threads, then queue four more jobs behind them. */
  outcome b[2] = {{0}}, q[4] = {{0}};
  lm_job *bj[2], *qj[4];
  for (int k = 0; k < 2; k++)
    CHECK_INT(lm_call_async(e, "TestBlock", NULL, 0, NULL, record_release, &b[k], &bj[k]), LM_OK);
  while (atomic_load(&blockers_started) < 2) usleep(1000);
  lm_tensor *in = ramp(e, 8, 0);
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_number(o, "value", 1);
  for (int k = 0; k < 4; k++)
    CHECK_INT(lm_call_async(e, "TestAdd", &in, 1, o, record_release, &q[k], &qj[k]), LM_OK);
  lm_params_free(o);
  lm_tensor_release(in);
  for (int k = 0; k < 4; k++) CHECK_INT(lm_job_cancel(qj[k]), LM_OK);
  CHECK_INT(lm_job_cancel(bj[0]), LM_OK); /* running: stops at its next poll */
  CHECK_INT(lm_job_cancel(bj[0]), LM_OK); /* twice is harmless */
  /* Let the loop process the cancel requests before the second blocker ends. */
  while (b[0].calls == 0) lm_engine_run(e, 1);
  atomic_store(&release_blockers, true);
  lm_engine_run(e, 0);
  CHECK_INT(b[0].calls, 1);
  CHECK_INT(b[0].status, LM_ECANCELED);
  CHECK_STR(b[0].msg, "TestBlock: cancelled");
  CHECK_INT(b[1].calls, 1);
  CHECK_INT(b[1].status, LM_OK);
  CHECK_STR(b[1].msg, "");
  for (int k = 0; k < 4; k++) {
    CHECK_INT(q[k].calls, 1);
    CHECK_INT(q[k].status, LM_ECANCELED);
    CHECK(q[k].on_loop);
  }
  CHECK_INT(atomic_load(&ran), 0); /* no cancelled kernel ran */
  lm_engine_release(e);
}

static void test_synchronous_mode(void)
{
  lm_engine *e = new_engine(true);
  atomic_store(&ran, 0);
  lm_tensor *in = ramp(e, 16, 2);
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_number(o, "value", -2);
  outcome out = {0};
  CHECK_INT(lm_call_async(e, "TestAdd", &in, 1, o, record, &out, NULL), LM_OK);
  CHECK_INT(atomic_load(&ran), 1); /* ran inline ... */
  CHECK_INT(out.calls, 0);          /* ... but reports from the loop */
  lm_engine_run(e, 0);
  CHECK_INT(out.calls, 1);
  CHECK_NEAR(out.first, 0, 0);
  CHECK_NEAR(out.on_loop_thread, 1, 0);
  lm_params_free(o);
  lm_tensor_release(in);
  lm_engine_release(e);
}

/* A borrowed loop keeps running the engine's jobs; the engine goes when
 * released and the last tensor is gone, in any order. */
static void test_borrowed_loop_and_zombie(void)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  cfg.loop = &loop;
  lm_engine *e;
  CHECK_INT(lm_engine_new(&cfg, &e), LM_OK);
  lm_op_register(e, &add_op);
  CHECK(lm_engine_loop(e) == &loop);
  lm_tensor *in = ramp(e, 8, 0);
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_number(o, "value", 3);
  outcome out = {0};
  CHECK_INT(lm_call_async(e, "TestAdd", &in, 1, o, record, &out, NULL), LM_OK);
  lm_params_free(o);
  lm_engine_release(e); /* the job and the tensor keep it alive */
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(out.calls, 1);
  /* Release cancels pending work; the job may have finished first. */
  CHECK(out.status == LM_OK || out.status == LM_ECANCELED);
  if (out.status == LM_OK) CHECK_NEAR(out.first, 3, 0);
  int64_t i7[1] = {7};
  CHECK_NEAR(lm_tensor_get(in, i7), 7, 0);
  lm_tensor_release(in); /* the engine is freed here */
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* Releasing an engine with an owned loop cancels and delivers pending jobs. */
static void test_release_with_pending_jobs(void)
{
  lm_engine *e = new_engine(false);
  atomic_store(&release_blockers, false);
  atomic_store(&blockers_started, 0);
  outcome b[3] = {{0}};
  for (int k = 0; k < 3; k++)
    CHECK_INT(lm_call_async(e, "TestBlock", NULL, 0, NULL, record, &b[k], NULL), LM_OK);
  while (atomic_load(&blockers_started) < 2) usleep(1000);
  lm_engine_release(e);
  for (int k = 0; k < 3; k++) {
    CHECK_INT(b[k].calls, 1);
    CHECK_INT(b[k].status, LM_ECANCELED);
  }
}

int main(void)
{
  main_thread = pthread_self();
  RUN(test_async_completes_on_loop);
  RUN(test_64_jobs_in_flight);
  RUN(test_validation_error_no_callback);
  RUN(test_cancel_queued_and_running);
  RUN(test_synchronous_mode);
  RUN(test_borrowed_loop_and_zombie);
  RUN(test_release_with_pending_jobs);
  TAP_DONE();
}
