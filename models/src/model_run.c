/* lm_model_run: inputs to dense float32, a plan for their shapes (built
 * once, kept in a small per-shape pool because a plan serves one thread at
 * a time), the run with the job's cancel flag, float32 outputs. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h" /* lm_op_ctx's cancel word, lm_engine_threads */
#include "model_internal.h"
#include "plan.h"

#define ERRLEN 1024
#define MAX_IDLE_PLANS 4   /* per shape: enough for the runs that overlap */
#define MAX_SHAPES 8       /* distinct input shapes kept; least recent goes */

struct lm_plan_pool {
  lm_plan_pool *next;
  int nkey;
  int64_t key[LM_MAX_DIMS * 4 + 5]; /* bf16, then per input: ndim, extents */
  lm_plan *idle[MAX_IDLE_PLANS];
  int nidle;
  int busy;          /* plans of this shape being run now */
  uint64_t used;     /* m->tick at last use */
};

void lm_model_plans_free(lm_model *m)
{
  for (lm_plan_pool *p = m->pools; p;) {
    lm_plan_pool *next = p->next;
    for (int i = 0; i < p->nidle; i++) lm_plan_free(p->idle[i]);
    free(p);
    p = next;
  }
  m->pools = NULL;
  m->npools = 0;
}

static int fail(lm_model *m, lm_op_ctx *ctx, int st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(lm_model *m, lm_op_ctx *ctx, int st, const char *fmt, ...)
{
  char msg[ERRLEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ctx) return lm_ctx_error(ctx, st, "%s", msg);
  return lm_set_error(m->e, st, "%s", msg);
}

/* Drop the least recently used shape that nobody is running (m->mu held). */
static void evict(lm_model *m)
{
  lm_plan_pool **victim = NULL;
  for (lm_plan_pool **pp = &m->pools; *pp; pp = &(*pp)->next)
    if ((*pp)->busy == 0 && (!victim || (*pp)->used < (*victim)->used)) victim = pp;
  if (!victim) return;
  lm_plan_pool *p = *victim;
  *victim = p->next;
  for (int i = 0; i < p->nidle; i++) lm_plan_free(p->idle[i]);
  free(p);
  m->npools--;
}

/* Take a plan for key (an idle one, or NULL: the caller builds one) and
** mark the shape busy; *pool receives the shape's pool. */
static int acquire(lm_model *m, const int64_t *key, int nkey, lm_plan_pool **pool,
                   lm_plan **plan)
{
  pthread_mutex_lock(&m->mu);
  lm_plan_pool *p = m->pools;
  while (p && !(p->nkey == nkey && memcmp(p->key, key, sizeof *key * (size_t)nkey) == 0))
    p = p->next;
  if (!p) {
    if (m->npools >= MAX_SHAPES) evict(m);
    p = calloc(1, sizeof *p);
    if (!p) {
      pthread_mutex_unlock(&m->mu);
      return LM_ENOMEM;
    }
    p->nkey = nkey;
    memcpy(p->key, key, sizeof *key * (size_t)nkey);
    p->next = m->pools;
    m->pools = p;
    m->npools++;
  }
  p->busy++;
  p->used = ++m->tick;
  *plan = p->nidle > 0 ? p->idle[--p->nidle] : NULL;
  *pool = p;
  pthread_mutex_unlock(&m->mu);
  return LM_OK;
}

/* Give the plan back (NULL: building it failed). */
static void give_back(lm_model *m, lm_plan_pool *p, lm_plan *plan)
{
  pthread_mutex_lock(&m->mu);
  p->busy--;
  if (plan && p->nidle < MAX_IDLE_PLANS) {
    p->idle[p->nidle++] = plan;
    plan = NULL;
  }
  pthread_mutex_unlock(&m->mu);
  lm_plan_free(plan);
}

/* A dense C-order float32 CPU tensor with t's values (t itself retained
** when it already is one). */
static int as_dense_f32(lm_model *m, lm_op_ctx *ctx, lm_tensor *t, int i, lm_tensor **out)
{
  *out = NULL;
  if (lm_tensor_device(t).type != LM_DEVICE_CPU)
    return fail(m, ctx, LM_EDEVICE, "model '%s': input %d is on a CUDA device; call :to('cpu') "
                                    "first", m->name, i + 1);
  if (lm_tensor_dtype(t) == LM_F32 && lm_tensor_is_contiguous(t)) {
    *out = lm_tensor_retain(t);
    return LM_OK;
  }
  lm_tensor *c;
  int st = lm_tensor_new(lm_tensor_engine(t), LM_F32, lm_tensor_ndim(t), lm_tensor_shape(t),
                         LM_CPU, &c);
  if (st < 0) return fail(m, ctx, st, "model '%s': out of memory converting input %d", m->name,
                          i + 1);
  if ((st = lm_tensor_copy(c, t)) < 0) {
    lm_tensor_release(c);
    return fail(m, ctx, st, "model '%s': cannot convert input %d to float32", m->name, i + 1);
  }
  *out = c;
  return LM_OK;
}

static void shape_text(char *buf, size_t len, int ndim, const int64_t *sh)
{
  size_t k = (size_t)snprintf(buf, len, "(");
  for (int d = 0; d < ndim && k < len; d++)
    k += (size_t)snprintf(buf + k, len - k, d ? ", %lld" : "%lld", (long long)sh[d]);
  if (k < len) snprintf(buf + k, len - k, ")");
}

/* Rank and channels must match the declared input; other extents are
** left to the planner, since fully convolutional exports often declare a
** fixed spatial size they do not need. */
static int check_shape(lm_model *m, lm_op_ctx *ctx, int i, const lm_tensor *t)
{
  const lm_gvalue *v = &m->g->values[m->g->inputs[i]];
  int nd = lm_tensor_ndim(t);
  const int64_t *sh = lm_tensor_shape(t);
  char got[128], want[128];
  if (v->ndim < 0) return LM_OK;
  shape_text(got, sizeof got, nd, sh);
  shape_text(want, sizeof want, v->ndim, v->shape);
  if (nd != v->ndim)
    return fail(m, ctx, LM_ESHAPE, "model '%s': input '%s' has %d dims %s; the network expects "
                                   "%d %s", m->name, v->name, nd, got, v->ndim, want);
  if (nd >= 2 && v->shape[1] >= 0 && sh[1] != v->shape[1])
    return fail(m, ctx, LM_ESHAPE, "model '%s': input '%s' has %lld channels %s; the network "
                                   "expects %lld %s", m->name, v->name, (long long)sh[1], got,
                (long long)v->shape[1], want);
  for (int d = 0; d < nd; d++)
    if (sh[d] <= 0)
      return fail(m, ctx, LM_ESHAPE, "model '%s': input '%s' is empty %s", m->name, v->name,
                  got);
  return LM_OK;
}

int lm_model_run(lm_model *m, lm_op_ctx *ctx, lm_tensor *const *in, int nin, lm_tensor **out,
                 int nout)
{
  return lm_model_run_prec(m, ctx, in, nin, out, nout, m->bf16);
}

int lm_model_run_prec(lm_model *m, lm_op_ctx *ctx, lm_tensor *const *in, int nin,
                      lm_tensor **out, int nout, bool bf16)
{
  const lm_graph *g = m->g;
  for (int i = 0; i < nout; i++) out[i] = NULL;
  if (nin != g->ninputs)
    return fail(m, ctx, LM_EINVAL, "model '%s' takes %d input%s, got %d", m->name, g->ninputs,
                g->ninputs == 1 ? "" : "s", nin);
  if (nout < 1 || nout > g->noutputs || nout > LM_MAX_OUTPUTS)
    return fail(m, ctx, LM_EINVAL, "model '%s' gives %d output%s; asked for %d", m->name,
                g->noutputs, g->noutputs == 1 ? "" : "s", nout);
  if (nin > 4) return fail(m, ctx, LM_EUNSUPPORTED, "model '%s': more than 4 inputs", m->name);

  lm_tensor *dense[4] = {0};
  lm_tensor *res[LM_MAX_OUTPUTS] = {0};
  float **obufs = NULL;
  lm_plan_pool *pool = NULL;
  lm_plan *plan = NULL;
  int st = LM_OK;
  int64_t key[LM_MAX_DIMS * 4 + 5];
  int nkey = 0;
  key[nkey++] = bf16;   /* plans of both precisions may be cached */
  int ndims[4];
  const int64_t *shapes[4];
  const float *ibufs[4];
  for (int i = 0; i < nin; i++) {
    if (!in[i]) {
      st = fail(m, ctx, LM_EINVAL, "model '%s': input %d is NULL", m->name, i + 1);
      goto out;
    }
    if ((st = check_shape(m, ctx, i, in[i])) < 0) goto out;
    if ((st = as_dense_f32(m, ctx, in[i], i, &dense[i])) < 0) goto out;
    ndims[i] = lm_tensor_ndim(dense[i]);
    shapes[i] = lm_tensor_shape(dense[i]);
    ibufs[i] = lm_tensor_data(dense[i]);
    key[nkey++] = ndims[i];
    for (int d = 0; d < ndims[i]; d++) key[nkey++] = shapes[i][d];
  }
  if ((st = acquire(m, key, nkey, &pool, &plan)) < 0) {
    st = fail(m, ctx, st, "model '%s': out of memory", m->name);
    goto out;
  }
  if (!plan) {
    char err[ERRLEN] = "";
    lm_plan_options po = {.bf16 = bf16, .threads = lm_engine_threads(m->e)};
    st = lm_plan_new(g, ndims, shapes, &po, &plan, err, sizeof err);
    if (st < 0) {
      plan = NULL;
      st = fail(m, ctx, st, "model '%s': %s", m->name, err[0] ? err : lm_status_string(st));
      goto out;
    }
  }
  int np = lm_plan_noutputs(plan);
  if (np < nout) {
    st = fail(m, ctx, LM_EINTERNAL, "model '%s': the plan has %d outputs, %d expected", m->name,
              np, nout);
    goto out;
  }
  obufs = calloc((size_t)np, sizeof *obufs);
  lm_tensor *scratch[LM_MAX_OUTPUTS + 8] = {0};
  if (!obufs || np > LM_MAX_OUTPUTS + 8) {
    st = fail(m, ctx, obufs ? LM_EUNSUPPORTED : LM_ENOMEM, "model '%s': %d outputs", m->name,
              np);
    goto out;
  }
  /* Every output is written by the plan; those the caller did not ask
  ** for still need a buffer.  Outputs belong to the inputs' engine (a
  ** model may serve several engines: its own reference only keeps it
  ** alive). */
  lm_engine *oe = nin > 0 ? lm_tensor_engine(in[0]) : m->e;
  for (int i = 0; i < np && st >= 0; i++) {
    int64_t osh[LM_MAX_DIMS];
    int ond = lm_plan_output_shape(plan, i, osh);
    st = lm_tensor_new(oe, LM_F32, ond, osh, LM_CPU, &scratch[i]);
    if (st < 0) st = fail(m, ctx, st, "model '%s': out of memory for output %d", m->name, i + 1);
    else obufs[i] = lm_tensor_data(scratch[i]);
  }
  if (st >= 0) {
    char err[ERRLEN] = "";
    const volatile int *cancel = ctx ? ctx->cancel_word : NULL;
    st = lm_plan_run(plan, ibufs, obufs, cancel, err, sizeof err);
    if (st == LM_ECANCELED) st = fail(m, ctx, st, "cancelled");
    else if (st < 0)
      st = fail(m, ctx, st, "model '%s': %s", m->name, err[0] ? err : lm_status_string(st));
  }
  for (int i = 0; i < np; i++) {
    if (st >= 0 && i < nout) res[i] = scratch[i];
    else lm_tensor_release(scratch[i]);
  }
out:
  if (pool) give_back(m, pool, plan);
  for (int i = 0; i < nin; i++) lm_tensor_release(dense[i]);
  free(obufs);
  if (st < 0) {
    for (int i = 0; i < nout; i++) lm_tensor_release(res[i]);
    return st;
  }
  for (int i = 0; i < nout; i++) out[i] = res[i];
  return LM_OK;
}
