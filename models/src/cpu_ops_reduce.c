/* Reductions and friends: ReduceMean/Sum/Max/Min/Prod/SumSquare/L1/L2/
 * LogSumExp/LogSum, Softmax and LogSoftmax (opset 13 single-axis semantics and the
 * older 2-D coercion), Hardmax, ArgMax/ArgMin, CumSum, MatMul and Gemm.
 * Sums accumulate in double.  Work is split over output elements (or rows),
 * each computed by one thread, so results do not depend on thread count. */
#include "cpu_ops_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXD LM_MAX_DIMS

/* ---- Reduce* ------------------------------------------------------------ */

typedef enum red_op {
  R_MEAN, R_SUM, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L1, R_L2, R_LSE, R_LOGSUM
} red_op;

static const struct { const char *op; red_op r; } red_names[] = {
  {"ReduceMean", R_MEAN}, {"ReduceSum", R_SUM},     {"ReduceMax", R_MAX},
  {"ReduceMin", R_MIN},   {"ReduceProd", R_PROD},   {"ReduceSumSquare", R_SUMSQ},
  {"ReduceL1", R_L1},     {"ReduceL2", R_L2},       {"ReduceLogSumExp", R_LSE},
  {"ReduceLogSum", R_LOGSUM},
};

static red_op red_of(const lm_gnode *n)
{
  for (size_t i = 0; i < sizeof red_names / sizeof red_names[0]; i++)
    if (!strcmp(n->op, red_names[i].op)) return red_names[i].r;
  return R_SUM;
}

/* Which axes of an ndim tensor are reduced: from the axes (count na; -1 =
** none given).  Returns NULL or why not. */
static const char *red_mask(const lm_gnode *n, int ndim, const int64_t *axes, int na, bool *mask,
                            bool *identity)
{
  *identity = false;
  for (int k = 0; k < ndim; k++) mask[k] = na <= 0;
  if (na <= 0) {
    if (lm_gnode_attr_int(n, "noop_with_empty_axes", 0)) {
      *identity = true;
      for (int k = 0; k < ndim; k++) mask[k] = false;
    }
    return NULL;
  }
  for (int i = 0; i < na; i++) {
    int a;
    if (!ops_axis(axes[i], ndim, &a)) return "an axis is out of range";
    mask[a] = true;
  }
  return NULL;
}

static int infer_reduce(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input data is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int64_t axes[MAXD];
  int na;
  const int64_t *aa = lm_gnode_attr_ints(n, "axes", &na);
  if (aa) {
    if (na > MAXD) return ops_fail(g, n, "attribute axes is too long");
    memcpy(axes, aa, sizeof(int64_t) * (size_t)na);
  } else if (ops_in(g, n, 1)) {
    na = ops_in_ints(g, n, 1, axes, MAXD);
    if (na < -1) return na;
    if (na == -1) {   /* axes not constant: extents unknown */
      bool keep = lm_gnode_attr_int(n, "keepdims", 1) != 0;
      if (!keep) return LM_OK;
      int64_t sh[MAXD];
      for (int k = 0; k < x->ndim; k++) sh[k] = -1;
      ops_set_out(g, n, 0, x->dt, x->ndim, sh);
      return LM_OK;
    }
  } else {
    na = -1;
  }
  bool mask[MAXD], identity;
  const char *why = red_mask(n, x->ndim, axes, na, mask, &identity);
  if (why) return ops_fail(g, n, "%s", why);
  bool keep = lm_gnode_attr_int(n, "keepdims", 1) != 0;
  int64_t sh[MAXD];
  int nd = 0;
  for (int k = 0; k < x->ndim; k++) {
    if (!mask[k]) sh[nd++] = x->shape[k];
    else if (keep) sh[nd++] = 1;
  }
  ops_set_out(g, n, 0, x->dt, nd, sh);
  return LM_OK;
}

static int eval_reduce(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data) return ops_eval_fail(err, errlen, n, "input data is missing");
  int64_t axes[MAXD];
  int na;
  const int64_t *aa = lm_gnode_attr_ints(n, "axes", &na);
  if (aa) {
    if (na > MAXD) return ops_eval_fail(err, errlen, n, "attribute axes is too long");
    memcpy(axes, aa, sizeof(int64_t) * (size_t)na);
  } else if (nin > 1 && in[1].data) {
    na = ops_rt_ints(&in[1], axes, MAXD);
    if (na < 0) return ops_eval_fail(err, errlen, n, "input axes must be int64");
  } else {
    na = -1;
  }
  bool mask[MAXD], identity;
  const char *why = red_mask(n, x->ndim, axes, na, mask, &identity);
  if (why) return ops_eval_fail(err, errlen, n, "%s", why);
  red_op op = red_of(n);
  int64_t str[MAXD], kshape[MAXD], kstr[MAXD], rshape[MAXD], rstr[MAXD];
  int nk = 0, nr = 0;
  ops_strides(x->ndim, x->shape, str);
  for (int k = 0; k < x->ndim; k++) {
    if (mask[k]) {
      rshape[nr] = x->shape[k];
      rstr[nr++] = str[k];
    } else {
      kshape[nk] = x->shape[k];
      kstr[nk++] = str[k];
    }
  }
  int64_t osz = ops_numel(nk, kshape), rsz = ops_numel(nr, rshape);
  if (osz != ops_rt_numel(&out[0]))
    return ops_eval_fail(err, errlen, n, "output size differs from the reduction");
#pragma omp parallel for schedule(static) if (osz * rsz > OPS_PAR_MIN)
  for (int64_t o = 0; o < osz; o++) {
    int64_t base = 0, rem = o;
    for (int k = nk - 1; k >= 0; k--) {
      base += (rem % kshape[k]) * kstr[k];
      rem /= kshape[k];
    }
    double acc = op == R_PROD ? 1 : op == R_MAX ? -INFINITY : op == R_MIN ? INFINITY : 0;
    double mx = -INFINITY;
    if (op == R_LSE)   /* max first so exp cannot overflow */
      for (int64_t r = 0; r < rsz; r++) {
        int64_t off = base, rr = r;
        for (int k = nr - 1; k >= 0; k--) {
          off += (rr % rshape[k]) * rstr[k];
          rr /= rshape[k];
        }
        double v = ops_get(x, off);
        if (v > mx) mx = v;
      }
    for (int64_t r = 0; r < rsz; r++) {
      int64_t off = base, rr = r;
      for (int k = nr - 1; k >= 0; k--) {
        off += (rr % rshape[k]) * rstr[k];
        rr /= rshape[k];
      }
      double v = ops_get(x, off);
      switch (op) {
      case R_MEAN: case R_SUM: case R_LOGSUM: acc += v; break;
      case R_MAX: if (v > acc || isnan(v)) acc = v; break;
      case R_MIN: if (v < acc || isnan(v)) acc = v; break;
      case R_PROD: acc *= v; break;
      case R_SUMSQ: case R_L2: acc += v * v; break;
      case R_L1: acc += fabs(v); break;
      case R_LSE: acc += exp(v - mx); break;
      }
    }
    if (op == R_MEAN) acc = rsz ? acc / (double)rsz : NAN;
    if (op == R_L2) acc = sqrt(acc);
    if (op == R_LOGSUM) acc = log(acc);
    if (op == R_LSE) acc = rsz ? log(acc) + mx : -INFINITY;
    ops_put(&out[0], o, acc);
  }
  return LM_OK;
}

/* ---- Softmax, LogSoftmax ------------------------------------------------ */

/* Before opset 13 the input is seen as 2-D [prod(:axis), prod(axis:)] and
** the default axis is 1; infer records which rule applies (eval has no
** opset) in the attribute lumen_coerce_2d. */
static int infer_softmax(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  bool legacy = g->opset > 0 && g->opset < 13;
  if (legacy && !lm_gnode_attr(n, "lumen_coerce_2d")) {
    int idx = (int)(n - g->nodes);
    if (idx < 0 || idx >= g->nnodes || lm_graph_attr_set_int(g, idx, "lumen_coerce_2d", 1) < 0)
      return ops_fail(g, n, "cannot record the opset rule");
  }
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int64_t axis = lm_gnode_attr_int(n, "axis", legacy ? 1 : -1);
  int a;
  if (!ops_axis(axis, x->ndim, &a) && !(x->ndim == 0 && (axis == 0 || axis == -1)))
    return ops_fail(g, n, "attribute axis=%lld is out of range for %d dims", (long long)axis,
                    x->ndim);
  return ops_infer_same(g, n);
}

typedef enum sm_kind { SM_SOFT, SM_LOG, SM_HARD } sm_kind;

static int softmax_eval(const lm_gnode *n, const lm_rt_tensor *in, lm_rt_tensor *out, sm_kind kind,
                        char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data || x->dt != LM_F32) return ops_eval_fail(err, errlen, n, "input must be float32");
  if (!ops_rt_same_numel(x, &out[0])) return ops_eval_fail(err, errlen, n, "output size differs");
  bool legacy = lm_gnode_attr_int(n, "lumen_coerce_2d", 0) != 0;
  int a = 0;
  if (x->ndim > 0 && !ops_axis(lm_gnode_attr_int(n, "axis", legacy ? 1 : -1), x->ndim, &a))
    return ops_eval_fail(err, errlen, n, "attribute axis is out of range");
  int64_t outer = ops_numel(a, x->shape), len, inner;
  if (legacy) {
    len = ops_numel(x->ndim - a, x->shape + a);
    inner = 1;
  } else {
    len = x->ndim ? x->shape[a] : 1;
    inner = x->ndim ? ops_numel(x->ndim - a - 1, x->shape + a + 1) : 1;
  }
  const float *src = x->data;
  float *dst = out[0].data;
  if (inner > 1 && kind != SM_HARD) {
    /* Softmax across channels of a volume: blocks of positions, each read
    ** plane by plane (contiguous) instead of one strided column at a time. */
    enum { B = 256 };
    int64_t nblk = (inner + B - 1) / B;
#pragma omp parallel for schedule(static) if (outer * len * inner > OPS_PAR_MIN)
    for (int64_t ob = 0; ob < outer * nblk; ob++) {
      int64_t o = ob / nblk, i0 = (ob % nblk) * B, cnt = inner - i0 < B ? inner - i0 : B;
      const float *xs = src + o * len * inner + i0;
      float *ys = dst + o * len * inner + i0;
      float mx[B];
      double sum[B];
      for (int64_t i = 0; i < cnt; i++) {
        mx[i] = -INFINITY;
        sum[i] = 0;
      }
      for (int64_t j = 0; j < len; j++)
        for (int64_t i = 0; i < cnt; i++)
          if (xs[j * inner + i] > mx[i]) mx[i] = xs[j * inner + i];
      /* softmax keeps exp(x - max) in the output (rounded to float) and
      ** divides afterwards: one exp per element */
      for (int64_t j = 0; j < len; j++)
        for (int64_t i = 0; i < cnt; i++) {
          float e = expf(xs[j * inner + i] - mx[i]);   /* float exp, as torch */
          sum[i] += e;
          if (kind == SM_SOFT) ys[j * inner + i] = e;
        }
      if (kind == SM_LOG) {
        for (int64_t i = 0; i < cnt; i++) sum[i] = log(sum[i]);
        for (int64_t j = 0; j < len; j++)
          for (int64_t i = 0; i < cnt; i++)
            ys[j * inner + i] = (float)((double)xs[j * inner + i] - mx[i] - sum[i]);
      } else {
        for (int64_t i = 0; i < cnt; i++) sum[i] = 1.0 / sum[i];
        for (int64_t j = 0; j < len; j++)
          for (int64_t i = 0; i < cnt; i++)
            ys[j * inner + i] = (float)((double)ys[j * inner + i] * sum[i]);
      }
    }
    return LM_OK;
  }
#pragma omp parallel for schedule(static) if (outer * len * inner > OPS_PAR_MIN)
  for (int64_t oi = 0; oi < outer * inner; oi++) {
    int64_t o = oi / inner, i = oi % inner;
    const float *xs = src + o * len * inner + i;
    float *ys = dst + o * len * inner + i;
    float mx = -INFINITY;
    int64_t at = 0;
    for (int64_t j = 0; j < len; j++)
      if (xs[j * inner] > mx) {
        mx = xs[j * inner];
        at = j;
      }
    if (kind == SM_HARD) {   /* 1 at the first maximum */
      for (int64_t j = 0; j < len; j++) ys[j * inner] = j == at ? 1.0f : 0.0f;
      continue;
    }
    double sum = 0;
    for (int64_t j = 0; j < len; j++) sum += exp((double)xs[j * inner] - mx);
    if (kind == SM_LOG) {
      double ls = log(sum);
      for (int64_t j = 0; j < len; j++) ys[j * inner] = (float)((double)xs[j * inner] - mx - ls);
    } else {
      for (int64_t j = 0; j < len; j++)
        ys[j * inner] = (float)(exp((double)xs[j * inner] - mx) / sum);
    }
  }
  return LM_OK;
}

static int eval_softmax(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                        int nout, char *err, size_t errlen)
{
  return softmax_eval(n, in, out, SM_SOFT, err, errlen);
}

static int eval_hardmax(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                        int nout, char *err, size_t errlen)
{
  return softmax_eval(n, in, out, SM_HARD, err, errlen);
}

static int eval_logsoftmax(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                           int nout, char *err, size_t errlen)
{
  return softmax_eval(n, in, out, SM_LOG, err, errlen);
}

/* ---- ArgMax, ArgMin ----------------------------------------------------- */

static int infer_arg(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input data is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int a;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", 0), x->ndim, &a))
    return ops_fail(g, n, "attribute axis is out of range for %d dims", x->ndim);
  bool keep = lm_gnode_attr_int(n, "keepdims", 1) != 0;
  int64_t sh[MAXD];
  int nd = 0;
  for (int k = 0; k < x->ndim; k++) {
    if (k != a) sh[nd++] = x->shape[k];
    else if (keep) sh[nd++] = 1;
  }
  ops_set_out(g, n, 0, LM_I64, nd, sh);
  return LM_OK;
}

static int arg_eval(const lm_gnode *n, const lm_rt_tensor *in, lm_rt_tensor *out, bool is_max,
                    char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data) return ops_eval_fail(err, errlen, n, "input data is missing");
  int a;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", 0), x->ndim, &a))
    return ops_eval_fail(err, errlen, n, "attribute axis is out of range");
  bool last = lm_gnode_attr_int(n, "select_last_index", 0) != 0;
  int64_t outer = ops_numel(a, x->shape), len = x->shape[a];
  int64_t inner = ops_numel(x->ndim - a - 1, x->shape + a + 1);
  if (out[0].dt != LM_I64 || ops_rt_numel(&out[0]) != outer * inner)
    return ops_eval_fail(err, errlen, n, "output must be int64 with one value per position");
  int64_t *dst = out[0].data;
#pragma omp parallel for schedule(static) if (outer * len * inner > OPS_PAR_MIN)
  for (int64_t oi = 0; oi < outer * inner; oi++) {
    int64_t o = oi / inner, i = oi % inner, best = 0;
    double bv = ops_get(x, o * len * inner + i);
    for (int64_t j = 1; j < len; j++) {
      double v = ops_get(x, (o * len + j) * inner + i);
      bool better = is_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv));
      if (better) {
        bv = v;
        best = j;
      }
    }
    dst[oi] = best;
  }
  return LM_OK;
}

static int eval_argmax(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  return arg_eval(n, in, out, true, err, errlen);
}

static int eval_argmin(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  return arg_eval(n, in, out, false, err, errlen);
}

/* ---- CumSum ------------------------------------------------------------ */

static int infer_cumsum(lm_graph *g, const lm_gnode *n)
{
  if (!ops_in(g, n, 0) || !ops_in(g, n, 1)) return ops_fail(g, n, "needs inputs x and axis");
  return ops_infer_same(g, n);
}

static int eval_cumsum(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  int64_t ax;
  int a;
  if (nin < 2 || !x->data || ops_rt_ints(&in[1], &ax, 1) != 1 || !ops_axis(ax, x->ndim, &a))
    return ops_eval_fail(err, errlen, n, "input axis must be one int in range");
  bool excl = lm_gnode_attr_int(n, "exclusive", 0) != 0, rev = lm_gnode_attr_int(n, "reverse", 0) != 0;
  int64_t outer = ops_numel(a, x->shape), len = x->shape[a];
  int64_t inner = ops_numel(x->ndim - a - 1, x->shape + a + 1);
  for (int64_t oi = 0; oi < outer * inner; oi++) {
    int64_t o = oi / inner, i = oi % inner;
    double acc = 0;
    for (int64_t jj = 0; jj < len; jj++) {
      int64_t j = rev ? len - 1 - jj : jj, at = (o * len + j) * inner + i;
      double v = ops_get(x, at);
      if (excl) {
        ops_put(&out[0], at, acc);
        acc += v;
      } else {
        acc += v;
        ops_put(&out[0], at, acc);
      }
    }
  }
  return LM_OK;
}

/* ---- MatMul, Gemm ------------------------------------------------------- */

static int infer_matmul(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *a = ops_in(g, n, 0), *b = ops_in(g, n, 1);
  if (!a || !b) return ops_fail(g, n, "needs inputs A and B");
  if (!ops_in_known(g, n, 0) || !ops_in_known(g, n, 1)) return LM_OK;
  if (a->ndim < 1 || b->ndim < 1) return ops_fail(g, n, "inputs must have at least 1 dim");
  int64_t ka = a->shape[a->ndim - 1];
  int64_t kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
  if (ka >= 0 && kb >= 0 && ka != kb)
    return ops_fail(g, n, "A '%s' has K=%lld, B '%s' has K=%lld", a->name, (long long)ka, b->name,
                    (long long)kb);
  int nba = a->ndim > 2 ? a->ndim - 2 : 0, nbb = b->ndim > 2 ? b->ndim - 2 : 0, nb;
  int64_t sh[MAXD];
  if (!ops_broadcast(nba, a->shape, nbb, b->shape, &nb, sh))
    return ops_fail(g, n, "batch dims of A and B do not broadcast");
  int nd = nb;
  if (a->ndim > 1) sh[nd++] = a->shape[a->ndim - 2];
  if (b->ndim > 1) sh[nd++] = b->shape[b->ndim - 1];
  ops_set_out(g, n, 0, a->dt, nd, sh);
  return LM_OK;
}

static int eval_matmul(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *a = &in[0], *b = &in[1];
  if (nin < 2 || !a->data || !b->data || a->dt != LM_F32 || b->dt != LM_F32)
    return ops_eval_fail(err, errlen, n, "needs float32 inputs A and B");
  int64_t M = a->ndim > 1 ? a->shape[a->ndim - 2] : 1, K = a->shape[a->ndim - 1];
  int64_t N = b->ndim > 1 ? b->shape[b->ndim - 1] : 1;
  int nba = a->ndim > 2 ? a->ndim - 2 : 0, nbb = b->ndim > 2 ? b->ndim - 2 : 0, nb;
  int64_t bsh[MAXD];
  if (!ops_broadcast(nba, a->shape, nbb, b->shape, &nb, bsh))
    return ops_eval_fail(err, errlen, n, "batch dims do not broadcast");
  /* batch strides (in matrices) of A and B through broadcasting */
  lm_rt_tensor ab = {.ndim = nba}, bb = {.ndim = nbb};
  memcpy(ab.shape, a->shape, sizeof(int64_t) * (size_t)nba);
  memcpy(bb.shape, b->shape, sizeof(int64_t) * (size_t)nbb);
  int64_t sa[MAXD], sb[MAXD];
  ops_bcast_strides(nb, bsh, &ab, sa);
  ops_bcast_strides(nb, bsh, &bb, sb);
  int64_t batches = ops_numel(nb, bsh);
  int64_t kb = b->ndim > 1 ? b->shape[b->ndim - 2] : b->shape[0];
  if (kb != K || ops_rt_numel(&out[0]) != batches * M * N)
    return ops_eval_fail(err, errlen, n, "A, B and the output do not fit together");
  const float *A = a->data, *B = b->data;
  float *Y = out[0].data;
  int fail = 0;
#pragma omp parallel if (batches * M * N * K > OPS_PAR_MIN)
  {
    /* Each output row accumulates in doubles over k, walking B's rows
    ** contiguously (vectorisable); the order over k is fixed. */
    double *acc = malloc(sizeof(double) * (size_t)(N ? N : 1));
    if (!acc) {
#pragma omp atomic write
      fail = 1;
    }
#pragma omp for schedule(static)
    for (int64_t bm = 0; bm < batches * M; bm++) {
      if (!acc) continue;
      int64_t bi = bm / M, i = bm % M, oa = 0, ob = 0, rem = bi;
      for (int k = nb - 1; k >= 0; k--) {
        int64_t idx = rem % bsh[k];
        rem /= bsh[k];
        oa += idx * sa[k];
        ob += idx * sb[k];
      }
      const float *arow = A + (oa * M + i) * K, *bm0 = B + ob * K * N;
      for (int64_t j = 0; j < N; j++) acc[j] = 0;
      for (int64_t k = 0; k < K; k++) {
        double av = arow[k];
        const float *brow = bm0 + k * N;
        for (int64_t j = 0; j < N; j++) acc[j] += av * brow[j];
      }
      float *yrow = Y + bm * N;
      for (int64_t j = 0; j < N; j++) yrow[j] = (float)acc[j];
    }
    free(acc);
  }
  if (fail) return ops_eval_fail(err, errlen, n, "out of memory");
  return LM_OK;
}

static int infer_gemm(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *a = ops_in(g, n, 0), *b = ops_in(g, n, 1), *c = ops_in(g, n, 2);
  if (!a || !b) return ops_fail(g, n, "needs inputs A and B");
  if (!ops_in_known(g, n, 0) || !ops_in_known(g, n, 1)) return LM_OK;
  if (a->ndim != 2 || b->ndim != 2) return ops_fail(g, n, "A and B must be 2-D");
  bool ta = lm_gnode_attr_int(n, "transA", 0), tb = lm_gnode_attr_int(n, "transB", 0);
  int64_t M = ta ? a->shape[1] : a->shape[0], K = ta ? a->shape[0] : a->shape[1];
  int64_t K2 = tb ? b->shape[1] : b->shape[0], N = tb ? b->shape[0] : b->shape[1];
  if (K >= 0 && K2 >= 0 && K != K2)
    return ops_fail(g, n, "A gives K=%lld, B gives K=%lld", (long long)K, (long long)K2);
  int64_t sh[2] = {M, N};
  if (c && c->ndim >= 0) {
    int nd;
    int64_t tmp[MAXD];
    if (!ops_broadcast(2, sh, c->ndim, c->shape, &nd, tmp) || nd != 2 ||
        (M >= 0 && tmp[0] != M) || (N >= 0 && tmp[1] != N))
      return ops_fail(g, n, "C '%s' does not broadcast to [M, N]", c->name);
  }
  ops_set_out(g, n, 0, a->dt, 2, sh);
  return LM_OK;
}

static int eval_gemm(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                     int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *a = &in[0], *b = &in[1];
  const lm_rt_tensor *c = nin > 2 && in[2].data ? &in[2] : NULL;
  if (nin < 2 || !a->data || !b->data || a->dt != LM_F32 || b->dt != LM_F32 ||
      (c && c->dt != LM_F32))
    return ops_eval_fail(err, errlen, n, "needs float32 inputs");
  bool ta = lm_gnode_attr_int(n, "transA", 0), tb = lm_gnode_attr_int(n, "transB", 0);
  double alpha = lm_gnode_attr_float(n, "alpha", 1.0), beta = lm_gnode_attr_float(n, "beta", 1.0);
  int64_t M = out[0].shape[0], N = out[0].shape[1], K = ta ? a->shape[0] : a->shape[1];
  int64_t Ma = ta ? a->shape[1] : a->shape[0], Kb = tb ? b->shape[1] : b->shape[0];
  int64_t Nb = tb ? b->shape[0] : b->shape[1];
  if (a->ndim != 2 || b->ndim != 2 || out[0].ndim != 2 || Ma != M || Kb != K || Nb != N ||
      (c && !ops_rt_bcast_ok(&out[0], c)))
    return ops_eval_fail(err, errlen, n, "A, B, C and the output do not fit together");
  int64_t cs[2] = {0, 0};
  if (c) ops_bcast_strides(2, out[0].shape, c, cs);
  const float *A = a->data, *B = b->data, *C = c ? c->data : NULL;
  float *Y = out[0].data;
#pragma omp parallel for schedule(static) if (M * N * K > OPS_PAR_MIN)
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) {
        double av = ta ? A[k * M + i] : A[i * K + k];
        double bv = tb ? B[j * K + k] : B[k * N + j];
        s += av * bv;
      }
      s *= alpha;
      if (C) s += beta * C[i * cs[0] + j * cs[1]];
      Y[i * N + j] = (float)s;
    }
  return LM_OK;
}

const lm_cpu_kernel lm_ops_reduce[] = {
  {"ReduceMean", infer_reduce, eval_reduce, false},
  {"ReduceSum", infer_reduce, eval_reduce, false},
  {"ReduceMax", infer_reduce, eval_reduce, false},
  {"ReduceMin", infer_reduce, eval_reduce, false},
  {"ReduceProd", infer_reduce, eval_reduce, false},
  {"ReduceSumSquare", infer_reduce, eval_reduce, false},
  {"ReduceL1", infer_reduce, eval_reduce, false},
  {"ReduceL2", infer_reduce, eval_reduce, false},
  {"ReduceLogSumExp", infer_reduce, eval_reduce, false},
  {"Softmax", infer_softmax, eval_softmax, false},
  {"LogSoftmax", infer_softmax, eval_logsoftmax, false},
  {"Hardmax", infer_softmax, eval_hardmax, false},
  {"CumSum", infer_cumsum, eval_cumsum, false},
  {"ReduceLogSum", infer_reduce, eval_reduce, false},
  {"ArgMax", infer_arg, eval_argmax, false},
  {"ArgMin", infer_arg, eval_argmin, false},
  {"MatMul", infer_matmul, eval_matmul, false},
  {"Gemm", infer_gemm, eval_gemm, false},
  {NULL, NULL, NULL, false},
};
