/* Element-wise ops with numpy broadcasting: Add, Sub, Mul, Div, Pow, Mod,
 * PRelu, the variadic Sum/Max/Min/Mean, comparisons, logical ops, Where.
 *
 * One iterator walks the output row by row (a row = the last output axis);
 * each input is read through broadcast strides (0 on broadcast axes).  Rows
 * are independent, so they are split across OpenMP threads; each element
 * is computed by one thread in the same order whatever the thread count. */
#include "cpu_ops_internal.h"

#include <math.h>
#include <string.h>

typedef struct bc_iter {
  int nd, nin;
  int64_t shape[LM_MAX_DIMS];
  int64_t st[3][LM_MAX_DIMS];
  int64_t inner, rows;
} bc_iter;

static void bc_init(bc_iter *it, const lm_rt_tensor *out, const lm_rt_tensor *const *in,
                    int nin)
{
  it->nd = out->ndim;
  it->nin = nin;
  memcpy(it->shape, out->shape, sizeof(int64_t) * (size_t)out->ndim);
  for (int i = 0; i < nin; i++) ops_bcast_strides(out->ndim, out->shape, in[i], it->st[i]);
  it->inner = it->nd ? it->shape[it->nd - 1] : 1;
  it->rows = it->inner ? ops_rt_numel(out) / it->inner : 0;
}

/* Element offsets of row r's first element in each input. */
static void bc_offsets(const bc_iter *it, int64_t r, int64_t *off)
{
  for (int i = 0; i < it->nin; i++) off[i] = 0;
  for (int k = it->nd - 2; k >= 0; k--) {
    int64_t idx = r % it->shape[k];
    r /= it->shape[k];
    for (int i = 0; i < it->nin; i++) off[i] += idx * it->st[i][k];
  }
}

static int64_t bc_last(const bc_iter *it, int i)
{
  return it->nd ? it->st[i][it->nd - 1] : 0;
}

typedef enum bin_op {
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_PRELU,
  B_EQ, B_LT, B_GT, B_LE, B_GE, B_AND, B_OR, B_XOR, B_MOD, B_FMOD
} bin_op;

/* Ops with no typed fast loop: comparisons (bool out) and Mod. */
static bool bin_generic_only(bin_op op) { return op >= B_EQ; }

/* out = a (op) b, same dtype in and out, typed loop. */
#define BIN_LOOP(T, EXPR)                                                   \
  do {                                                                      \
    _Pragma("omp parallel for schedule(static) if (total > OPS_PAR_MIN)")   \
    for (int64_t r = 0; r < it.rows; r++) {                                 \
      int64_t off[3] = {0, 0, 0};                                             \
      bc_offsets(&it, r, off);                                              \
      const T *pa = (const T *)a->data + off[0];                            \
      const T *pb = (const T *)b->data + off[1];                            \
      T *po = (T *)out->data + r * it.inner;                                \
      int64_t sa = bc_last(&it, 0), sb = bc_last(&it, 1);                   \
      if (sa == 1 && sb == 1) { /* contiguous rows: vectorisable */         \
        for (int64_t j = 0; j < it.inner; j++) {                            \
          T x = pa[j], y = pb[j];                                           \
          po[j] = (EXPR);                                                   \
        }                                                                   \
      } else if (sa == 1 && sb == 0) { /* a per-row operand */              \
        const T y = pb[0];                                                  \
        for (int64_t j = 0; j < it.inner; j++) {                            \
          T x = pa[j];                                                      \
          po[j] = (EXPR);                                                   \
        }                                                                   \
      } else {                                                              \
        for (int64_t j = 0; j < it.inner; j++) {                            \
          T x = pa[j * sa], y = pb[j * sb];                                 \
          po[j] = (EXPR);                                                   \
        }                                                                   \
      }                                                                     \
    }                                                                       \
  } while (0)

#define BIN_SWITCH(T, DIVEXPR, POWEXPR)                                     \
  switch (op) {                                                             \
  case B_ADD: BIN_LOOP(T, x + y); break;                                    \
  case B_SUB: BIN_LOOP(T, x - y); break;                                    \
  case B_MUL: BIN_LOOP(T, x * y); break;                                    \
  case B_DIV: BIN_LOOP(T, DIVEXPR); break;                                  \
  case B_POW: BIN_LOOP(T, POWEXPR); break;                                  \
  case B_MAX: BIN_LOOP(T, (x != x || x >= y) ? x : y); break;               \
  case B_MIN: BIN_LOOP(T, (x != x || x <= y) ? x : y); break;               \
  case B_PRELU: BIN_LOOP(T, x < 0 ? x * y : x); break;                      \
  default: break;                                                           \
  }

/* Generic path for other dtypes, mixed dtypes (Pow's exponent) and
** comparisons (bool output): values go through double. */
static double bin_scalar(bin_op op, double x, double y, bool integer)
{
  switch (op) {
  case B_ADD: return x + y;
  case B_SUB: return x - y;
  case B_MUL: return x * y;
  case B_DIV:
    if (integer) return y == 0 ? 0 : trunc(x / y);
    return x / y;
  case B_POW: return pow(x, y);
  case B_MAX: return (x != x || x >= y) ? x : y;
  case B_MIN: return (x != x || x <= y) ? x : y;
  case B_PRELU: return x < 0 ? x * y : x;
  case B_EQ: return x == y;
  case B_LT: return x < y;
  case B_GT: return x > y;
  case B_LE: return x <= y;
  case B_GE: return x >= y;
  case B_AND: return (x != 0) && (y != 0);
  case B_OR: return (x != 0) || (y != 0);
  case B_XOR: return (x != 0) != (y != 0);
  case B_MOD:   /* Python's %: the sign of the divisor */
    if (y == 0) return 0;
    {
      double r = fmod(x, y);
      return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    }
  case B_FMOD: return y == 0 ? (integer ? 0 : NAN) : fmod(x, y);
  }
  return 0;
}

static void binary(bin_op op, const lm_rt_tensor *a, const lm_rt_tensor *b, lm_rt_tensor *out)
{
  const lm_rt_tensor *ins[2] = {a, b};
  bc_iter it;
  bc_init(&it, out, ins, 2);
  int64_t total = ops_rt_numel(out);
  bool same = a->dt == b->dt && a->dt == out->dt && !bin_generic_only(op);
  if (same && a->dt == LM_F32) {
    BIN_SWITCH(float, x / y, powf(x, y));
    return;
  }
  if (same && a->dt == LM_I64) {
    BIN_SWITCH(int64_t, y == 0 ? 0 : x / y, (int64_t)pow((double)x, (double)y));
    return;
  }
  if (same && a->dt == LM_I32) {
    BIN_SWITCH(int32_t, y == 0 ? 0 : x / y, (int32_t)pow((double)x, (double)y));
    return;
  }
  bool integer = ops_is_int(a->dt) && ops_is_int(b->dt);
#pragma omp parallel for schedule(static) if (total > OPS_PAR_MIN)
  for (int64_t r = 0; r < it.rows; r++) {
    int64_t off[3];
    bc_offsets(&it, r, off);
    int64_t sa = bc_last(&it, 0), sb = bc_last(&it, 1);
    for (int64_t j = 0; j < it.inner; j++) {
      double x = ops_get(a, off[0] + j * sa), y = ops_get(b, off[1] + j * sb);
      ops_put(out, r * it.inner + j, bin_scalar(op, x, y, integer));
    }
  }
}

/* ---- infer -------------------------------------------------------------- */

static int infer_bin(lm_graph *g, const lm_gnode *n)
{
  if (n->nin != 2) return ops_fail(g, n, "needs 2 inputs, has %d", n->nin);
  if (!ops_in(g, n, 0) || !ops_in(g, n, 1)) return ops_fail(g, n, "an input is missing");
  return ops_infer_broadcast(g, n, LM_F32, false);
}

static int infer_compare(lm_graph *g, const lm_gnode *n)
{
  if (n->nin != 2) return ops_fail(g, n, "needs 2 inputs, has %d", n->nin);
  return ops_infer_broadcast(g, n, LM_U8, true);
}

static int infer_variadic(lm_graph *g, const lm_gnode *n)
{
  if (n->nin < 1) return ops_fail(g, n, "needs at least one input");
  return ops_infer_broadcast(g, n, LM_F32, false);
}

/* A 1-D slope of length C that does not broadcast numpy-style against X
** [N, C, ...] is taken per channel (PRelu-6 semantics, kept by old
** exports). */
static bool prelu_channel_fallback(int xnd, const int64_t *xs, int snd, const int64_t *ss)
{
  if (snd != 1 || xnd < 3 || ss[0] != xs[1]) return false;
  int nd;
  int64_t tmp[LM_MAX_DIMS];
  return !ops_broadcast(xnd, xs, snd, ss, &nd, tmp);
}

static int infer_prelu(lm_graph *g, const lm_gnode *n)
{
  if (n->nin != 2) return ops_fail(g, n, "needs 2 inputs (X, slope), has %d", n->nin);
  const lm_gvalue *x = ops_in(g, n, 0), *s = ops_in(g, n, 1);
  if (!x || !s) return ops_fail(g, n, "an input is missing");
  if (!ops_in_known(g, n, 0) || !ops_in_known(g, n, 1)) return LM_OK;
  int nd;
  int64_t shape[LM_MAX_DIMS];
  /* Opset < 7 (and exporters that follow it): a 1-D slope of length C is
  ** per channel.  Recorded for eval, which has no opset. */
  bool per_channel = s->ndim == 1 && x->ndim > 2 && s->shape[0] == x->shape[1] &&
                     (g->opset > 0 && g->opset < 7);
  if (per_channel && !lm_gnode_attr(n, "lumen_slope_per_channel")) {
    int idx = (int)(n - g->nodes);
    if (idx < 0 || idx >= g->nnodes ||
        lm_graph_attr_set_int(g, idx, "lumen_slope_per_channel", 1) < 0)
      return ops_fail(g, n, "cannot record the slope rule");
  }
  /* slope broadcasts to X (unidirectional): the output is X's shape. */
  if (!per_channel && !prelu_channel_fallback(x->ndim, x->shape, s->ndim, s->shape) &&
      (!ops_broadcast(x->ndim, x->shape, s->ndim, s->shape, &nd, shape) || nd != x->ndim))
    return ops_fail(g, n, "slope '%s' does not broadcast to X '%s'", s->name, x->name);
  ops_set_out(g, n, 0, x->dt, x->ndim, x->shape);
  return LM_OK;
}

static int infer_where(lm_graph *g, const lm_gnode *n)
{
  if (n->nin != 3) return ops_fail(g, n, "needs 3 inputs, has %d", n->nin);
  const lm_gvalue *x = ops_in(g, n, 1);
  if (!x) return ops_fail(g, n, "input X is missing");
  return ops_infer_broadcast(g, n, x->dt, true);
}

static int infer_not(lm_graph *g, const lm_gnode *n) { return ops_infer_same(g, n); }

/* ---- eval --------------------------------------------------------------- */

static int check_out(const lm_gnode *n, int nout, char *err, size_t errlen)
{
  if (nout < 1) return ops_eval_fail(err, errlen, n, "has no output");
  return LM_OK;
}

#define DEF_BIN_EVAL(NAME, OP)                                                     \
  static int NAME(const lm_gnode *n, const lm_rt_tensor *in, int nin,              \
                  lm_rt_tensor *out, int nout, char *err, size_t errlen)           \
  {                                                                                \
    if (nin < 2 || !in[0].data || !in[1].data)                                     \
      return ops_eval_fail(err, errlen, n, "needs 2 inputs");                      \
    if (check_out(n, nout, err, errlen)) return LM_EINVAL;                         \
    if (!ops_rt_bcast_ok(&out[0], &in[0]) || !ops_rt_bcast_ok(&out[0], &in[1]))    \
      return ops_eval_fail(err, errlen, n, "inputs do not broadcast to the output"); \
    binary(OP, &in[0], &in[1], &out[0]);                                           \
    return LM_OK;                                                                  \
  }

DEF_BIN_EVAL(eval_add, B_ADD)
DEF_BIN_EVAL(eval_sub, B_SUB)
DEF_BIN_EVAL(eval_mul, B_MUL)
DEF_BIN_EVAL(eval_div, B_DIV)
DEF_BIN_EVAL(eval_pow, B_POW)
static int eval_prelu(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                      int nout, char *err, size_t errlen)
{
  if (nin < 2 || !in[0].data || !in[1].data) return ops_eval_fail(err, errlen, n, "needs 2 inputs");
  if (check_out(n, nout, err, errlen)) return LM_EINVAL;
  lm_rt_tensor slope = in[1];
  if (lm_gnode_attr_int(n, "lumen_slope_per_channel", 0) ||
      prelu_channel_fallback(in[0].ndim, in[0].shape, in[1].ndim, in[1].shape)) {
    /* view [C] as [C, 1, ..., 1] against X's dims after N */
    slope.ndim = in[0].ndim - 1;
    slope.shape[0] = in[1].shape[0];
    for (int k = 1; k < slope.ndim; k++) slope.shape[k] = 1;
  }
  if (!ops_rt_bcast_ok(&out[0], &in[0]) || !ops_rt_bcast_ok(&out[0], &slope))
    return ops_eval_fail(err, errlen, n, "X or slope does not fit the output");
  binary(B_PRELU, &in[0], &slope, &out[0]);
  return LM_OK;
}
DEF_BIN_EVAL(eval_eq, B_EQ)
DEF_BIN_EVAL(eval_lt, B_LT)
DEF_BIN_EVAL(eval_gt, B_GT)
DEF_BIN_EVAL(eval_le, B_LE)
DEF_BIN_EVAL(eval_ge, B_GE)
DEF_BIN_EVAL(eval_and, B_AND)
DEF_BIN_EVAL(eval_or, B_OR)
DEF_BIN_EVAL(eval_xor, B_XOR)

static int eval_mod(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                    int nout, char *err, size_t errlen)
{
  if (nin < 2 || !in[0].data || !in[1].data) return ops_eval_fail(err, errlen, n, "needs 2 inputs");
  bool f = lm_gnode_attr_int(n, "fmod", 0) != 0;
  if (!ops_rt_bcast_ok(&out[0], &in[0]) || !ops_rt_bcast_ok(&out[0], &in[1]))
    return ops_eval_fail(err, errlen, n, "inputs do not broadcast to the output");
  binary(f ? B_FMOD : B_MOD, &in[0], &in[1], &out[0]);
  return LM_OK;
}

static int infer_mod(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *a = ops_in(g, n, 0);
  if (a && a->dt_known && ops_is_float(a->dt) && !lm_gnode_attr_int(n, "fmod", 0))
    return ops_fail(g, n, "float inputs need attribute fmod=1");
  return infer_bin(g, n);
}

/* out = broadcast copy of t (any dtype, by element size). */
static void bcast_copy(const lm_rt_tensor *t, lm_rt_tensor *out)
{
  const lm_rt_tensor *ins[1] = {t};
  bc_iter it;
  bc_init(&it, out, ins, 1);
  size_t es = lm_dtype_size(out->dt);
  int64_t total = ops_rt_numel(out);
#pragma omp parallel for schedule(static) if (total > OPS_PAR_MIN)
  for (int64_t r = 0; r < it.rows; r++) {
    int64_t off[3];
    bc_offsets(&it, r, off);
    int64_t s = bc_last(&it, 0);
    char *po = (char *)out->data + (size_t)(r * it.inner) * es;
    const char *pi = (const char *)t->data + (size_t)off[0] * es;
    if (s == 1) {
      memcpy(po, pi, (size_t)it.inner * es);
    } else {
      for (int64_t j = 0; j < it.inner; j++) memcpy(po + (size_t)j * es, pi, es);
    }
  }
}

static int variadic(bin_op op, const lm_gnode *n, const lm_rt_tensor *in, int nin,
                    lm_rt_tensor *out, char *err, size_t errlen)
{
  int first = -1;
  for (int i = 0; i < nin; i++)
    if (in[i].data) {
      first = i;
      break;
    }
  if (first < 0) return ops_eval_fail(err, errlen, n, "has no inputs");
  for (int i = first; i < nin; i++)
    if (in[i].data && !ops_rt_bcast_ok(out, &in[i]))
      return ops_eval_fail(err, errlen, n, "input %d does not broadcast to the output", i);
  bcast_copy(&in[first], out);
  for (int i = first + 1; i < nin; i++)
    if (in[i].data) binary(op, out, &in[i], out);
  return LM_OK;
}

static int eval_sum(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                    lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  return variadic(B_ADD, n, in, nin, out, err, errlen);
}

static int eval_max(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                    lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  return variadic(B_MAX, n, in, nin, out, err, errlen);
}

static int eval_min(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                    lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  return variadic(B_MIN, n, in, nin, out, err, errlen);
}

static int eval_mean(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                     lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  int st = variadic(B_ADD, n, in, nin, out, err, errlen);
  if (st) return st;
  int cnt = 0;
  for (int i = 0; i < nin; i++) cnt += in[i].data != NULL;
  int64_t total = ops_rt_numel(out);
  if (out->dt == LM_F32) {
    float *p = out->data;
    for (int64_t i = 0; i < total; i++) p[i] /= (float)cnt;
  } else {
    for (int64_t i = 0; i < total; i++) ops_put(out, i, ops_get(out, i) / cnt);
  }
  return LM_OK;
}

static int eval_where(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                      lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  if (nin < 3 || !in[0].data || !in[1].data || !in[2].data)
    return ops_eval_fail(err, errlen, n, "needs 3 inputs");
  for (int i = 0; i < 3; i++)
    if (!ops_rt_bcast_ok(&out[0], &in[i]))
      return ops_eval_fail(err, errlen, n, "input %d does not broadcast to the output", i);
  const lm_rt_tensor *ins[3] = {&in[0], &in[1], &in[2]};
  bc_iter it;
  bc_init(&it, out, ins, 3);
  size_t es = lm_dtype_size(out->dt);
  int64_t total = ops_rt_numel(out);
#pragma omp parallel for schedule(static) if (total > OPS_PAR_MIN)
  for (int64_t r = 0; r < it.rows; r++) {
    int64_t off[3];
    bc_offsets(&it, r, off);
    for (int64_t j = 0; j < it.inner; j++) {
      bool c = ops_get(&in[0], off[0] + j * bc_last(&it, 0)) != 0;
      const lm_rt_tensor *src = c ? &in[1] : &in[2];
      int64_t o = c ? off[1] + j * bc_last(&it, 1) : off[2] + j * bc_last(&it, 2);
      memcpy((char *)out->data + (size_t)(r * it.inner + j) * es,
             (const char *)src->data + (size_t)o * es, es);
    }
  }
  return LM_OK;
}

static int eval_not(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                    lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  if (nin < 1 || !in[0].data) return ops_eval_fail(err, errlen, n, "needs 1 input");
  int64_t total = ops_rt_numel(out);
  for (int64_t i = 0; i < total; i++) ops_put(out, i, ops_get(&in[0], i) == 0);
  return LM_OK;
}

const lm_cpu_kernel lm_ops_elementwise[] = {
  {"Add", infer_bin, eval_add, false},
  {"Sub", infer_bin, eval_sub, false},
  {"Mul", infer_bin, eval_mul, false},
  {"Div", infer_bin, eval_div, false},
  {"Pow", infer_bin, eval_pow, false},
  {"PRelu", infer_prelu, eval_prelu, false},
  {"Sum", infer_variadic, eval_sum, false},
  {"Max", infer_variadic, eval_max, false},
  {"Min", infer_variadic, eval_min, false},
  {"Mean", infer_variadic, eval_mean, false},
  {"Equal", infer_compare, eval_eq, false},
  {"Less", infer_compare, eval_lt, false},
  {"Greater", infer_compare, eval_gt, false},
  {"LessOrEqual", infer_compare, eval_le, false},
  {"GreaterOrEqual", infer_compare, eval_ge, false},
  {"And", infer_compare, eval_and, false},
  {"Or", infer_compare, eval_or, false},
  {"Xor", infer_compare, eval_xor, false},
  {"Mod", infer_mod, eval_mod, false},
  {"Where", infer_where, eval_where, false},
  {"Not", infer_not, eval_not, false},
  {NULL, NULL, NULL, false},
};
