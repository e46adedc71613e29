/* The executor: lm_call_async, completion delivery on the loop thread,
 * cancellation, and the per-device CUDA executor threads.
 *
 * CPU jobs run on libuv's thread pool (uv_queue_work); CUDA jobs on one
 * thread per device; network inference (LM_OP_MODEL ops) on the engine's
 * own inference thread, so a long forward pass neither blocks the loop nor
 * occupies one of libuv's few pool threads that file I/O needs; inline
 * jobs (synchronous mode, LM_OP_INLINE ops) on the loop thread at
 * submission.  Jobs that do not come back through
 * uv_queue_work's own callback are pushed on a locked completion queue and
 * announced with uv_async_send, which coalesces: the loop drains the whole
 * queue each time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef enum { JOB_POOL, JOB_CUDA, JOB_INLINE, JOB_MODEL } job_kind;

/* The name the inference thread carries (visible in top, gdb, and to tests
 * that check where an op ran). */
#define MODEL_THREAD_NAME "lumen-infer"

struct lm_job {
  lm_engine *e;
  lm_op_ctx ctx;
  atomic_bool cancel;
  volatile int cancel_word;  /* mirrors cancel for model plans */
  lm_done_cb cb;
  void *userdata;
  job_kind kind;
  int status;
  bool owned_by_caller;  /* the caller took the handle and releases it */
  bool cancel_tried;     /* uv_cancel was attempted */
  uv_work_t work;
  struct lm_job *qnext;              /* completion or device queue */
  struct lm_job *prev, *next;        /* jobs in flight (loop thread) */
  /* lm_call on a CUDA input waits for the device thread here. */
  bool sync, sync_done;
  pthread_cond_t *sync_cv;
};

typedef struct cuda_thread {
  lm_exec *x;
  int device;
  bool started, stop, init_done;
  int init_status;
  char init_err[256];
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  lm_job *head, *tail;
} cuda_thread;

/* The inference thread: one, FIFO, started by the first LM_OP_MODEL job
 * (most engines never run a network), joined when the engine goes. */
typedef struct model_thread {
  lm_exec *x;
  bool started, stop;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  lm_job *head, *tail;
} model_thread;

struct lm_exec {
  lm_engine *e;
  uv_async_t *async;     /* NULL once closed */
  pthread_mutex_t mu;    /* guards done_head/done_tail */
  lm_job *done_head, *done_tail;
  atomic_bool cancel_requested;
  int pending;           /* jobs submitted, callback not yet run */
  lm_job *inflight;      /* list of those jobs */
  bool shutting_down;
  void (*closed)(lm_engine *e);
  int ndev;
  cuda_thread *dev;
  model_thread model;
};

/* ---- completion ---- */

static void close_async(lm_exec *x);

static void deliver(lm_exec *x, lm_job *job)
{
  if (job->prev) job->prev->next = job->next;
  else x->inflight = job->next;
  if (job->next) job->next->prev = job->prev;
  if (--x->pending == 0 && x->async) uv_unref((uv_handle_t *)x->async);
  /* Inputs are not needed any more: free them before user code runs. */
  for (int i = 0; i < job->ctx.nin; i++) {
    lm_tensor_release(job->ctx.in[i]);
    job->ctx.in[i] = NULL;
  }
  job->ctx.nin = 0;
  bool owned = job->owned_by_caller;
  if (job->cb) job->cb(job, job->status, job->userdata);
  if (!owned) lm_job_release(job);
  if (x->shutting_down && x->pending == 0) close_async(x);
}

static void push_done(lm_exec *x, lm_job *job)
{
  pthread_mutex_lock(&x->mu);
  job->qnext = NULL;
  if (x->done_tail) x->done_tail->qnext = job;
  else x->done_head = job;
  x->done_tail = job;
  pthread_mutex_unlock(&x->mu);
  uv_async_send(x->async);
}

static void on_async(uv_async_t *h)
{
  lm_exec *x = h->data;
  if (atomic_exchange(&x->cancel_requested, false)) {
    for (lm_job *j = x->inflight; j; j = j->next)
      if (j->kind == JOB_POOL && atomic_load(&j->cancel) && !j->cancel_tried) {
        j->cancel_tried = true;
        /* Succeeds only for work not yet started; its after-work callback
         * then reports UV_ECANCELED. */
        uv_cancel((uv_req_t *)&j->work);
      }
  }
  pthread_mutex_lock(&x->mu);
  lm_job *j = x->done_head;
  x->done_head = x->done_tail = NULL;
  pthread_mutex_unlock(&x->mu);
  while (j) {
    lm_job *next = j->qnext;
    deliver(x, j);
    j = next;
  }
}

static void on_async_closed(uv_handle_t *h)
{
  lm_exec *x = h->data;
  free(h);
  if (x->closed) x->closed(x->e);
}

static void close_async(lm_exec *x)
{
  if (!x->async || uv_is_closing((uv_handle_t *)x->async)) return;
  uv_close((uv_handle_t *)x->async, on_async_closed);
  x->async = NULL;
}

/* ---- CPU pool jobs ---- */

static void work_cb(uv_work_t *w)
{
  lm_job *job = w->data;
  job->status = lm_ctx_run(&job->ctx);
}

static void after_work_cb(uv_work_t *w, int status)
{
  lm_job *job = w->data;
  if (status == UV_ECANCELED) {
    job->status = LM_ECANCELED;
    job->ctx.err_status = LM_ECANCELED;
    snprintf(job->ctx.errmsg, sizeof job->ctx.errmsg, "%s: cancelled",
             job->ctx.op->desc->name);
  }
  deliver(job->e->exec, job);
}

/* ---- CUDA executor threads ---- */

static void *cuda_main(void *arg)
{
  cuda_thread *d = arg;
  const lm_cuda_api *api = d->x->e->cuda.api;
  pthread_mutex_lock(&d->mu);
  for (;;) {
    while (!d->stop && !d->head) pthread_cond_wait(&d->cv, &d->mu);
    if (!d->head) break; /* stop, queue empty */
    lm_job *job = d->head;
    d->head = job->qnext;
    if (!d->head) d->tail = NULL;
    pthread_mutex_unlock(&d->mu);
    if (!d->init_done) {
      d->init_done = true;
      d->init_status = api->thread_init ? api->thread_init(d->device, d->init_err,
                                                           sizeof d->init_err)
                                        : LM_OK;
    }
    if (d->init_status < 0) {
      job->status = LM_ECUDA;
      job->ctx.err_status = LM_ECUDA;
      snprintf(job->ctx.errmsg, sizeof job->ctx.errmsg, "%s: cuda:%d thread init: %s",
               job->ctx.op->desc->name, d->device, d->init_err);
    } else {
      job->status = lm_ctx_run(&job->ctx);
    }
    if (job->sync) {
      pthread_mutex_lock(&d->mu);
      job->sync_done = true;
      pthread_cond_broadcast(job->sync_cv);
      pthread_mutex_unlock(&d->mu);
    } else {
      push_done(d->x, job);
    }
    pthread_mutex_lock(&d->mu);
  }
  pthread_mutex_unlock(&d->mu);
  /* Per-thread plugin state (the cuDNN handle) goes with the thread. */
  if (d->init_done && d->init_status >= 0 && api->thread_fini) api->thread_fini(d->device);
  return NULL;
}

static int cuda_submit(lm_exec *x, lm_job *job)
{
  int dev = job->ctx.cuda_device;
  if (dev < 0 || dev >= x->ndev)
    return lm_set_error(x->e, LM_EDEVICE, "%s: cuda:%d is not a usable device",
                        job->ctx.op->desc->name, dev);
  cuda_thread *d = &x->dev[dev];
  pthread_mutex_lock(&d->mu);
  if (!d->started) {
    if (pthread_create(&d->th, NULL, cuda_main, d) != 0) {
      pthread_mutex_unlock(&d->mu);
      return lm_set_error(x->e, LM_ENOMEM, "cannot start the cuda:%d executor thread", dev);
    }
    d->started = true;
  }
  job->qnext = NULL;
  if (d->tail) d->tail->qnext = job;
  else d->head = job;
  d->tail = job;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
  return LM_OK;
}

/* lm_call on CUDA inputs: run ctx on the device thread and wait. */
int lm_exec_run_cuda_sync(lm_exec *x, lm_op_ctx *ctx)
{
  lm_job job;
  memset(&job, 0, sizeof job);
  pthread_cond_t cv;
  pthread_cond_init(&cv, NULL);
  job.e = x->e;
  job.ctx = *ctx;
  job.kind = JOB_CUDA;
  job.sync = true;
  job.sync_cv = &cv;
  int st = cuda_submit(x, &job);
  if (st == LM_OK) {
    cuda_thread *d = &x->dev[ctx->cuda_device];
    pthread_mutex_lock(&d->mu);
    while (!job.sync_done) pthread_cond_wait(&cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
    st = job.status;
  }
  pthread_cond_destroy(&cv);
  *ctx = job.ctx;
  return st;
}

/* ---- the inference thread ---- */

static void *model_main(void *arg)
{
  model_thread *m = arg;
  pthread_setname_np(pthread_self(), MODEL_THREAD_NAME);
  pthread_mutex_lock(&m->mu);
  for (;;) {
    while (!m->stop && !m->head) pthread_cond_wait(&m->cv, &m->mu);
    if (!m->head) break; /* stop, queue empty */
    lm_job *job = m->head;
    m->head = job->qnext;
    if (!m->head) m->tail = NULL;
    pthread_mutex_unlock(&m->mu);
    /* A job cancelled while queued ends here with LM_ECANCELED (lm_ctx_run
     * looks at the flag before calling the kernel). */
    job->status = lm_ctx_run(&job->ctx);
    if (job->sync) {
      pthread_mutex_lock(&m->mu);
      job->sync_done = true;
      pthread_cond_broadcast(job->sync_cv);
      pthread_mutex_unlock(&m->mu);
    } else {
      push_done(m->x, job);
    }
    pthread_mutex_lock(&m->mu);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

static int model_submit(lm_exec *x, lm_job *job)
{
  model_thread *m = &x->model;
  pthread_mutex_lock(&m->mu);
  if (!m->started) {
    if (pthread_create(&m->th, NULL, model_main, m) != 0) {
      pthread_mutex_unlock(&m->mu);
      return lm_set_error(x->e, LM_ENOMEM, "%s: cannot start the inference thread",
                          job->ctx.op->desc->name);
    }
    m->started = true;
  }
  job->qnext = NULL;
  if (m->tail) m->tail->qnext = job;
  else m->head = job;
  m->tail = job;
  pthread_cond_signal(&m->cv);
  pthread_mutex_unlock(&m->mu);
  return LM_OK;
}

/* lm_call of an LM_OP_MODEL op: run ctx on the inference thread and wait,
** so that networks always run on that one thread (and its OpenMP team).
** Called on the inference thread itself (a kernel calling an op), it runs
** inline: waiting there would deadlock. */
int lm_exec_run_model_sync(lm_exec *x, lm_op_ctx *ctx)
{
  model_thread *m = &x->model;
  pthread_mutex_lock(&m->mu);
  bool here = m->started && pthread_equal(m->th, pthread_self());
  pthread_mutex_unlock(&m->mu);
  if (here) return lm_ctx_run(ctx);
  lm_job job;
  memset(&job, 0, sizeof job);
  pthread_cond_t cv;
  pthread_cond_init(&cv, NULL);
  job.e = x->e;
  job.ctx = *ctx;
  job.kind = JOB_MODEL;
  job.sync = true;
  job.sync_cv = &cv;
  int st = model_submit(x, &job);
  if (st == LM_OK) {
    pthread_mutex_lock(&m->mu);
    while (!job.sync_done) pthread_cond_wait(&cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
    st = job.status;
  }
  pthread_cond_destroy(&cv);
  *ctx = job.ctx;
  return st;
}

/* ---- the executor object ---- */

int lm_exec_new(lm_engine *e, lm_exec **out)
{
  lm_exec *x = calloc(1, sizeof *x);
  if (!x) return LM_ENOMEM;
  x->e = e;
  pthread_mutex_init(&x->mu, NULL);
  atomic_init(&x->cancel_requested, false);
  x->async = malloc(sizeof *x->async);
  if (!x->async || uv_async_init(e->loop, x->async, on_async) != 0) {
    free(x->async);
    pthread_mutex_destroy(&x->mu);
    free(x);
    return LM_EINTERNAL;
  }
  x->async->data = x;
  uv_unref((uv_handle_t *)x->async);
  x->model.x = x;
  pthread_mutex_init(&x->model.mu, NULL);
  pthread_cond_init(&x->model.cv, NULL);
  x->ndev = e->cuda.ndevices;
  if (x->ndev > 0) {
    x->dev = calloc((size_t)x->ndev, sizeof *x->dev);
    if (!x->dev) {
      /* Closing needs the loop; hand the handle to it. */
      x->closed = NULL;
      close_async(x);
      return LM_ENOMEM;
    }
    for (int i = 0; i < x->ndev; i++) {
      x->dev[i].x = x;
      x->dev[i].device = i;
      pthread_mutex_init(&x->dev[i].mu, NULL);
      pthread_cond_init(&x->dev[i].cv, NULL);
    }
  }
  *out = x;
  return LM_OK;
}

int lm_exec_pending(lm_exec *x)
{
  return x->pending;
}

void lm_exec_cancel_all(lm_exec *x)
{
  for (lm_job *j = x->inflight; j; j = j->next) lm_job_cancel(j);
}

void lm_exec_shutdown(lm_exec *x, void (*closed)(lm_engine *e))
{
  x->closed = closed;
  x->shutting_down = true;
  if (x->pending == 0) close_async(x);
}

void lm_exec_free(lm_exec *x)
{
  if (!x) return;
  for (int i = 0; i < x->ndev; i++) {
    cuda_thread *d = &x->dev[i];
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (d->started) {
      if (pthread_equal(d->th, pthread_self())) pthread_detach(d->th);
      else pthread_join(d->th, NULL);
    }
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
  }
  free(x->dev);
  model_thread *m = &x->model;
  pthread_mutex_lock(&m->mu);
  m->stop = true;
  pthread_cond_signal(&m->cv);
  pthread_mutex_unlock(&m->mu);
  if (m->started) {
    /* The last reference may drop on the inference thread itself (a
     * kernel releasing a model); it cannot join itself. */
    if (pthread_equal(m->th, pthread_self())) pthread_detach(m->th);
    else pthread_join(m->th, NULL);
  }
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&x->mu);
  free(x);
}

/* ---- the public job API ---- */

int lm_call_async(lm_engine *e, const char *op, lm_tensor *const *in, int nin,
                  const lm_params *opts, lm_done_cb cb, void *userdata, lm_job **out)
{
  if (out) *out = NULL;
  lm_exec *x = e->exec;
  if (!x->async || x->shutting_down)
    return lm_set_error(e, LM_EBUSY, "%s: the engine is shutting down", op ? op : "");
  lm_job *job = calloc(1, sizeof *job);
  if (!job) return lm_set_error(e, LM_ENOMEM, "out of memory (job)");
  int st = lm_ctx_prepare(e, op, in, nin, opts, &job->ctx);
  if (st < 0) {
    free(job);
    return st;
  }
  if ((st = lm_ctx_check(&job->ctx)) < 0) {
    lm_ctx_clear(&job->ctx);
    free(job);
    return st;
  }
  job->e = e;
  atomic_init(&job->cancel, false);
  job->ctx.cancel = &job->cancel;
  job->ctx.cancel_word = &job->cancel_word;
  job->cb = cb;
  job->userdata = userdata;
  job->owned_by_caller = out != NULL;
  job->work.data = job;
  bool inline_run = e->cfg.synchronous || (job->ctx.op->desc->flags & LM_OP_INLINE);
  if (job->ctx.use_cuda) job->kind = JOB_CUDA;
  else if (inline_run) job->kind = JOB_INLINE;
  else job->kind = (job->ctx.op->desc->flags & LM_OP_MODEL) ? JOB_MODEL : JOB_POOL;

  if (job->kind == JOB_CUDA) {
    st = cuda_submit(x, job);
  } else if (job->kind == JOB_MODEL) {
    st = model_submit(x, job);
  } else if (job->kind == JOB_POOL) {
    st = uv_queue_work(e->loop, &job->work, work_cb, after_work_cb);
    if (st != 0)
      st = lm_set_error(e, LM_EINTERNAL, "%s: uv_queue_work failed: %s",
                        job->ctx.op->desc->name, uv_strerror(st));
  }
  if (st < 0) {
    lm_ctx_clear(&job->ctx);
    free(job);
    return st;
  }
  lm_engine_ref(e);
  atomic_fetch_add(&e->live_jobs, 1);
  job->next = x->inflight;
  if (job->next) job->next->prev = job;
  x->inflight = job;
  if (x->pending++ == 0) uv_ref((uv_handle_t *)x->async);
  if (job->kind == JOB_INLINE) {
    /* Run now, report from the loop like any other job. */
    job->status = lm_ctx_run(&job->ctx);
    push_done(x, job);
  }
  if (out) *out = job;
  return LM_OK;
}

int lm_job_cancel(lm_job *job)
{
  if (!job) return LM_EINVAL;
  if (atomic_exchange(&job->cancel, true)) return LM_OK;
  job->cancel_word = 1;
  lm_exec *x = job->e->exec;
  /* uv_cancel must run on the loop thread: ask it to. */
  atomic_store(&x->cancel_requested, true);
  if (x->async) uv_async_send(x->async);
  return LM_OK;
}

int lm_job_status(const lm_job *job) { return job->status; }

const char *lm_job_errmsg(const lm_job *job)
{
  return job->status < 0 ? job->ctx.errmsg : "";
}

const lm_op_desc *lm_job_op(const lm_job *job) { return job->ctx.op->desc; }

int lm_job_noutputs(const lm_job *job) { return job->status < 0 ? 0 : job->ctx.nout; }

lm_tensor *lm_job_output(const lm_job *job, int i)
{
  if (job->status < 0 || i < 0 || i >= job->ctx.nout) return NULL;
  return job->ctx.out[i];
}

const lm_params *lm_job_results(const lm_job *job)
{
  return job->status < 0 ? NULL : job->ctx.results;
}

void lm_job_release(lm_job *job)
{
  if (!job) return;
  lm_engine *e = job->e;
  lm_ctx_clear(&job->ctx);
  free(job);
  atomic_fetch_sub(&e->live_jobs, 1);
  lm_engine_unref(e);
}
