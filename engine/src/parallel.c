/* The compute pool behind lm_parallel_for.
 *
 * Each call publishes a task (on the caller's stack) and works on it too;
 * idle pool threads claim chunks of any published task.  Because the caller
 * claims chunks of its own task until none is left, every task finishes
 * even if all pool threads are busy elsewhere, so nested calls and calls
 * from many threads at once cannot deadlock. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct task {
  struct task *next;
  lm_range_fn body;
  void *arg;
  lm_op_ctx *ctx;
  int64_t n, chunk;
  int64_t nchunks, claimed, done;
  int error;          /* first negative status of a body */
  pthread_cond_t finished;
} task;

struct lm_pool {
  pthread_mutex_t mu;
  pthread_cond_t work;   /* a task was published, or stop */
  task *head;            /* tasks with unclaimed chunks */
  bool stop;
  int nthreads;
  pthread_t *threads;
};

static void unlink_task(lm_pool *p, task *t)
{
  for (task **pp = &p->head; *pp; pp = &(*pp)->next)
    if (*pp == t) {
      *pp = t->next;
      return;
    }
}

/* With the lock held: claim the next chunk of t, or -1. */
static int64_t claim(lm_pool *p, task *t)
{
  if (t->claimed == t->nchunks) return -1;
  int64_t c = t->claimed++;
  if (t->claimed == t->nchunks) unlink_task(p, t);
  return c;
}

/* Run chunk c of t without the lock; then account for it with the lock. */
static void run_chunk(lm_pool *p, task *t, int64_t c)
{
  int st = LM_OK;
  /* Chunks after a failure or a cancellation are skipped, not run. */
  bool skip = __atomic_load_n(&t->error, __ATOMIC_RELAXED) < 0 || lm_ctx_cancelled(t->ctx);
  if (skip) {
    if (lm_ctx_cancelled(t->ctx)) st = LM_ECANCELED;
  } else {
    int64_t b = c * t->chunk, e = b + t->chunk < t->n ? b + t->chunk : t->n;
    st = t->body(b, e, t->arg);
  }
  pthread_mutex_lock(&p->mu);
  if (st < 0 && t->error >= 0) __atomic_store_n(&t->error, st, __ATOMIC_RELAXED);
  if (++t->done == t->nchunks) pthread_cond_signal(&t->finished);
  pthread_mutex_unlock(&p->mu);
}

static void *worker(void *arg)
{
  lm_pool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && !p->head) pthread_cond_wait(&p->work, &p->mu);
    if (p->stop) break;
    task *t = p->head;
    int64_t c = claim(p, t);
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, t, c);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int lm_pool_new(int threads, lm_pool **out)
{
  lm_pool *p = calloc(1, sizeof *p);
  if (!p) return LM_ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  /* The caller of lm_parallel_for is one of the `threads` workers. */
  int n = threads > 1 ? threads - 1 : 0;
  p->threads = calloc((size_t)(n ? n : 1), sizeof *p->threads);
  if (!p->threads) {
    lm_pool_free(p);
    return LM_ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    if (pthread_create(&p->threads[i], NULL, worker, p) != 0) break;
    p->nthreads++;
  }
  *out = p;
  return LM_OK;
}

void lm_pool_free(lm_pool *p)
{
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++) {
    if (pthread_equal(p->threads[i], pthread_self())) pthread_detach(p->threads[i]);
    else pthread_join(p->threads[i], NULL);
  }
  free(p->threads);
  pthread_cond_destroy(&p->work);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

int lm_parallel_for(lm_engine *e, lm_op_ctx *ctx, int64_t n, int64_t grain,
                    lm_range_fn body, void *arg)
{
  if (lm_ctx_cancelled(ctx)) return LM_ECANCELED;
  if (n <= 0) return LM_OK;
  if (grain < 1) grain = 1;
  lm_pool *p = e ? lm_engine_pool(e) : NULL;
  int workers = p ? p->nthreads + 1 : 1;
  if (workers == 1 || n <= grain) {
    int st = body(0, n, arg);
    if (st < 0) return st;
    return lm_ctx_cancelled(ctx) ? LM_ECANCELED : LM_OK;
  }
  /* A few chunks per thread balance uneven work without much overhead. */
  int64_t chunk = (n + workers * 4 - 1) / (workers * 4);
  if (chunk < grain) chunk = grain;
  task t = {.body = body, .arg = arg, .ctx = ctx, .n = n, .chunk = chunk};
  t.nchunks = (n + chunk - 1) / chunk;
  pthread_cond_init(&t.finished, NULL);
  pthread_mutex_lock(&p->mu);
  t.next = p->head;
  p->head = &t;
  pthread_cond_broadcast(&p->work);
  for (;;) {
    int64_t c = claim(p, &t);
    if (c < 0) break;
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, &t, c);
    pthread_mutex_lock(&p->mu);
  }
  while (t.done < t.nchunks) pthread_cond_wait(&t.finished, &p->mu);
  pthread_mutex_unlock(&p->mu);
  pthread_cond_destroy(&t.finished);
  if (t.error < 0) return t.error;
  return lm_ctx_cancelled(ctx) ? LM_ECANCELED : LM_OK;
}
