/* Normalisations: InstanceNormalization, BatchNormalization (inference
 * form), LayerNormalization (opset 17) and GroupNormalization (opset 18).
 * Means and variances are computed in double over each slice, two-pass,
 * biased (divided by the count), as torch does; each slice is one OpenMP
 * work item, so the numbers do not depend on the thread count. */
#include "cpu_ops_internal.h"

#include <math.h>
#include <string.h>

/* mean and biased variance of x[0..cnt) */
/* (simd reductions: a fixed summation order for a given build, whatever the
** thread count) */
static void slice_stats(const float *x, int64_t cnt, double *mean, double *var)
{
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < cnt; i++) s += x[i];
  double m = cnt ? s / (double)cnt : 0;
  double v = 0;
#pragma omp simd reduction(+ : v)
  for (int64_t i = 0; i < cnt; i++) {
    double d = x[i] - m;
    v += d * d;
  }
  *mean = m;
  *var = cnt ? v / (double)cnt : 0;
}

static int need_f32(const lm_gnode *n, const lm_rt_tensor *in, int nin, int count,
                    char *err, size_t errlen)
{
  if (nin < count) return ops_eval_fail(err, errlen, n, "needs %d inputs, has %d", count, nin);
  for (int i = 0; i < count; i++)
    if (in[i].data && in[i].dt != LM_F32)
      return ops_eval_fail(err, errlen, n, "input %d is %s (float32 only)", i,
                           lm_dtype_name(in[i].dt));
  if (!in[0].data) return ops_eval_fail(err, errlen, n, "input X is missing");
  return LM_OK;
}

/* The output buffer holds X's elements (plans size it from infer). */
static int need_same(const lm_gnode *n, const lm_rt_tensor *in, const lm_rt_tensor *out, char *err,
                     size_t errlen)
{
  if (!ops_rt_same_numel(&in[0], &out[0]))
    return ops_eval_fail(err, errlen, n, "output size differs from X's");
  return LM_OK;
}

/* Checks that input i is a vector of length c. */
static int infer_vec(lm_graph *g, const lm_gnode *n, int i, const char *what, int64_t c)
{
  const lm_gvalue *v = ops_in(g, n, i);
  if (!v) return ops_fail(g, n, "input %s is missing", what);
  if (v->ndim < 0 || c < 0) return LM_OK;
  int64_t cnt = lm_gvalue_numel(v);
  if (cnt >= 0 && cnt != c)
    return ops_fail(g, n, "input %s ('%s') has %lld elements, X has %lld channels", what,
                    v->name, (long long)cnt, (long long)c);
  return LM_OK;
}

/* ---- InstanceNormalization ---------------------------------------------- */

static int infer_instnorm(lm_graph *g, const lm_gnode *n)
{
  if (n->nin != 3) return ops_fail(g, n, "needs 3 inputs (input, scale, B), has %d", n->nin);
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input 'input' is missing");
  if (ops_in_known(g, n, 0)) {
    if (x->ndim < 3) return ops_fail(g, n, "input '%s' has %d dims (N, C, spatial...)", x->name, x->ndim);
    int st = infer_vec(g, n, 1, "scale", x->shape[1]);
    if (!st) st = infer_vec(g, n, 2, "B", x->shape[1]);
    if (st) return st;
  }
  return ops_infer_same(g, n);
}

static int eval_instnorm(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                         lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  int st = need_f32(n, in, nin, 3, err, errlen);
  if (!st) st = need_same(n, in, out, err, errlen);
  if (st) return st;
  if (!in[1].data || !in[2].data) return ops_eval_fail(err, errlen, n, "scale or B is missing");
  const lm_rt_tensor *x = &in[0];
  double eps = lm_gnode_attr_float(n, "epsilon", 1e-5);
  int64_t N = x->shape[0], C = x->shape[1];
  int64_t sp = ops_numel(x->ndim - 2, x->shape + 2);
  const float *scale = in[1].data, *bias = in[2].data;
  const float *src = x->data;
  float *dst = out[0].data;
#pragma omp parallel for schedule(dynamic, 1) if (N * C * sp > OPS_PAR_MIN)
  for (int64_t nc = 0; nc < N * C; nc++) {
    int64_t c = nc % C;
    double mean, var;
    slice_stats(src + nc * sp, sp, &mean, &var);
    double inv = 1.0 / sqrt(var + eps);
    double a = inv * scale[c], b = bias[c];
    const float *xs = src + nc * sp;
    float *ys = dst + nc * sp;
    for (int64_t i = 0; i < sp; i++) ys[i] = (float)((xs[i] - mean) * a + b);
  }
  return LM_OK;
}

/* ---- BatchNormalization ------------------------------------------------- */

static int infer_batchnorm(lm_graph *g, const lm_gnode *n)
{
  if (n->nin != 5)
    return ops_fail(g, n, "needs 5 inputs (X, scale, B, input_mean, input_var), has %d", n->nin);
  if (lm_gnode_attr_int(n, "training_mode", 0) != 0)
    return ops_fail(g, n, "attribute training_mode=1 is not supported (inference only)");
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input X is missing");
  if (ops_in_known(g, n, 0)) {
    if (x->ndim < 2) return ops_fail(g, n, "input X '%s' has %d dims (N, C, ...)", x->name, x->ndim);
    static const char *names[] = {"scale", "B", "input_mean", "input_var"};
    for (int i = 1; i < 5; i++) {
      int st = infer_vec(g, n, i, names[i - 1], x->shape[1]);
      if (st) return st;
    }
  }
  return ops_infer_same(g, n);
}

static int eval_batchnorm(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                          lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  int st = need_f32(n, in, nin, 5, err, errlen);
  if (!st) st = need_same(n, in, out, err, errlen);
  if (st) return st;
  for (int i = 1; i < 5; i++)
    if (!in[i].data) return ops_eval_fail(err, errlen, n, "input %d is missing", i);
  const lm_rt_tensor *x = &in[0];
  double eps = lm_gnode_attr_float(n, "epsilon", 1e-5);
  int64_t N = x->shape[0], C = x->ndim > 1 ? x->shape[1] : 1;
  int64_t sp = x->ndim > 2 ? ops_numel(x->ndim - 2, x->shape + 2) : 1;
  const float *scale = in[1].data, *bias = in[2].data, *mean = in[3].data, *var = in[4].data;
  const float *src = x->data;
  float *dst = out[0].data;
#pragma omp parallel for schedule(static) if (N * C * sp > OPS_PAR_MIN)
  for (int64_t nc = 0; nc < N * C; nc++) {
    int64_t c = nc % C;
    double a = scale[c] / sqrt((double)var[c] + eps), m = mean[c], b = bias[c];
    const float *xs = src + nc * sp;
    float *ys = dst + nc * sp;
    for (int64_t i = 0; i < sp; i++) ys[i] = (float)((xs[i] - m) * a + b);
  }
  return LM_OK;
}

/* ---- LayerNormalization ------------------------------------------------- */

static int infer_layernorm(lm_graph *g, const lm_gnode *n)
{
  if (n->nin < 2) return ops_fail(g, n, "needs inputs X and Scale (and optional B)");
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input X is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int axis;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", -1), x->ndim, &axis))
    return ops_fail(g, n, "attribute axis=%lld is out of range for %d dims",
                    (long long)lm_gnode_attr_int(n, "axis", -1), x->ndim);
  for (int i = 1; i < 3 && i < n->nin; i++) {
    const lm_gvalue *s = ops_in(g, n, i);
    if (!s || s->ndim < 0) continue;
    int nd;
    int64_t sh[LM_MAX_DIMS];
    if (!ops_broadcast(x->ndim - axis, x->shape + axis, s->ndim, s->shape, &nd, sh) ||
        nd != x->ndim - axis)
      return ops_fail(g, n, "input %s ('%s') does not broadcast to X's normalised dims",
                      i == 1 ? "Scale" : "B", s->name);
  }
  ops_set_out(g, n, 0, x->dt, x->ndim, x->shape);
  int64_t red[LM_MAX_DIMS];
  for (int k = 0; k < x->ndim; k++) red[k] = k < axis ? x->shape[k] : 1;
  ops_set_out(g, n, 1, LM_F32, x->ndim, red);
  ops_set_out(g, n, 2, LM_F32, x->ndim, red);
  return LM_OK;
}

static int eval_layernorm(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                          lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  int st = need_f32(n, in, nin < 3 ? nin : 3, nin < 3 ? nin : 3, err, errlen);
  if (!st) st = need_same(n, in, out, err, errlen);
  if (st) return st;
  if (nin < 2 || !in[1].data) return ops_eval_fail(err, errlen, n, "input Scale is missing");
  const lm_rt_tensor *x = &in[0];
  int axis;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", -1), x->ndim, &axis))
    return ops_eval_fail(err, errlen, n, "attribute axis is out of range");
  double eps = lm_gnode_attr_float(n, "epsilon", 1e-5);
  int64_t outer = ops_numel(axis, x->shape), inner = ops_numel(x->ndim - axis, x->shape + axis);
  /* Scale and B broadcast to x's trailing dims: strides into them. */
  lm_rt_tensor tail = {.dt = LM_F32, .ndim = x->ndim - axis};
  memcpy(tail.shape, x->shape + axis, sizeof(int64_t) * (size_t)tail.ndim);
  int64_t ss[LM_MAX_DIMS], bs[LM_MAX_DIMS] = {0};
  ops_bcast_strides(tail.ndim, tail.shape, &in[1], ss);
  const lm_rt_tensor *bt = nin > 2 && in[2].data ? &in[2] : NULL;
  if (bt) ops_bcast_strides(tail.ndim, tail.shape, bt, bs);
  bool s_full = ops_rt_numel(&in[1]) == inner, b_full = !bt || ops_rt_numel(bt) == inner;
  const float *src = x->data, *scale = in[1].data, *bias = bt ? bt->data : NULL;
  float *dst = out[0].data;
  float *mean_out = nout > 1 ? out[1].data : NULL, *inv_out = nout > 2 ? out[2].data : NULL;
#pragma omp parallel for schedule(static) if (outer * inner > OPS_PAR_MIN)
  for (int64_t o = 0; o < outer; o++) {
    double mean, var;
    slice_stats(src + o * inner, inner, &mean, &var);
    double inv = 1.0 / sqrt(var + eps);
    if (mean_out) mean_out[o] = (float)mean;
    if (inv_out) inv_out[o] = (float)inv;
    if (s_full && b_full) {   /* Scale and B of the normalised shape (usual) */
      for (int64_t i = 0; i < inner; i++) {
        double y = (src[o * inner + i] - mean) * inv * scale[i];
        if (bias) y += bias[i];
        dst[o * inner + i] = (float)y;
      }
      continue;
    }
    for (int64_t i = 0; i < inner; i++) {
      int64_t si = 0, bi = 0, r = i;
      for (int k = tail.ndim - 1; k >= 0; k--) {
        int64_t idx = r % tail.shape[k];
        r /= tail.shape[k];
        si += idx * ss[k];
        bi += idx * bs[k];
      }
      double y = (src[o * inner + i] - mean) * inv * scale[si];
      if (bias) y += bias[bi];
      dst[o * inner + i] = (float)y;
    }
  }
  return LM_OK;
}

/* ---- GroupNormalization ------------------------------------------------- */

static int infer_groupnorm(lm_graph *g, const lm_gnode *n)
{
  if (n->nin != 3) return ops_fail(g, n, "needs 3 inputs (X, scale, bias), has %d", n->nin);
  const lm_gattr *ng = lm_gnode_attr(n, "num_groups");
  if (!ng || ng->kind != LM_ATTR_INT || ng->i < 1)
    return ops_fail(g, n, "attribute num_groups is missing or not a positive int");
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input X is missing");
  if (ops_in_known(g, n, 0)) {
    if (x->ndim < 2) return ops_fail(g, n, "input X '%s' has %d dims (N, C, ...)", x->name, x->ndim);
    int64_t C = x->shape[1];
    if (C > 0 && C % ng->i)
      return ops_fail(g, n, "X has %lld channels, not a multiple of num_groups=%lld",
                      (long long)C, (long long)ng->i);
    for (int i = 1; i < 3; i++) {
      const lm_gvalue *v = ops_in(g, n, i);
      if (!v) return ops_fail(g, n, "input %s is missing", i == 1 ? "scale" : "bias");
      int64_t cnt = lm_gvalue_numel(v);
      /* opset 18: one per group; opset 21: one per channel. */
      if (cnt >= 0 && C >= 0 && cnt != ng->i && cnt != C)
        return ops_fail(g, n, "input %s ('%s') has %lld elements (num_groups %lld or C %lld)",
                        i == 1 ? "scale" : "bias", v->name, (long long)cnt,
                        (long long)ng->i, (long long)C);
    }
  }
  return ops_infer_same(g, n);
}

static int eval_groupnorm(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                          lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  int st = need_f32(n, in, nin, 3, err, errlen);
  if (!st) st = need_same(n, in, out, err, errlen);
  if (st) return st;
  if (!in[1].data || !in[2].data) return ops_eval_fail(err, errlen, n, "scale or bias is missing");
  const lm_rt_tensor *x = &in[0];
  int64_t G = lm_gnode_attr_int(n, "num_groups", 1);
  double eps = lm_gnode_attr_float(n, "epsilon", 1e-5);
  int64_t N = x->shape[0], C = x->shape[1];
  if (G < 1 || C % G) return ops_eval_fail(err, errlen, n, "num_groups does not divide C");
  int64_t sp = ops_numel(x->ndim - 2, x->shape + 2), cpg = C / G;
  bool per_channel = ops_rt_numel(&in[1]) == C;
  const float *scale = in[1].data, *bias = in[2].data, *src = x->data;
  float *dst = out[0].data;
#pragma omp parallel for schedule(dynamic, 1) if (N * C * sp > OPS_PAR_MIN)
  for (int64_t ng = 0; ng < N * G; ng++) {
    int64_t gi = ng % G, cnt = cpg * sp;
    const float *xs = src + ng * cnt;
    float *ys = dst + ng * cnt;
    double mean, var;
    slice_stats(xs, cnt, &mean, &var);
    double inv = 1.0 / sqrt(var + eps);
    for (int64_t c = 0; c < cpg; c++) {
      int64_t pi = per_channel ? gi * cpg + c : gi;
      double a = inv * scale[pi], b = bias[pi];
      for (int64_t i = 0; i < sp; i++) ys[c * sp + i] = (float)((xs[c * sp + i] - mean) * a + b);
    }
  }
  return LM_OK;
}

/* ---- LRN, MeanVarianceNormalization ------------------------------------ */

static int infer_x_same(lm_graph *g, const lm_gnode *n)
{
  if (!ops_in(g, n, 0)) return ops_fail(g, n, "input X is missing");
  if (!strcmp(n->op, "LRN") && lm_gnode_attr_int(n, "size", 0) < 1)
    return ops_fail(g, n, "attribute size is missing or < 1");
  return ops_infer_same(g, n);
}

/* y = x / (bias + alpha / size * sum of x^2 over the channel window)^beta */
static int eval_lrn(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                    int nout, char *err, size_t errlen)
{
  int st = need_f32(n, in, 1, 1, err, errlen);
  if (!st) st = need_same(n, in, out, err, errlen);
  if (st) return st;
  const lm_rt_tensor *x = &in[0];
  if (x->ndim < 2) return ops_eval_fail(err, errlen, n, "input X needs dims N, C");
  int64_t size = lm_gnode_attr_int(n, "size", 1);
  double alpha = lm_gnode_attr_float(n, "alpha", 1e-4), beta = lm_gnode_attr_float(n, "beta", 0.75);
  double bias = lm_gnode_attr_float(n, "bias", 1.0);
  int64_t N = x->shape[0], C = x->shape[1], sp = ops_numel(x->ndim - 2, x->shape + 2);
  int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
  const float *src = x->data;
  float *dst = out[0].data;
#pragma omp parallel for schedule(static) if (N * C * sp * size > OPS_PAR_MIN)
  for (int64_t nc = 0; nc < N * C; nc++) {
    int64_t nn = nc / C, c = nc % C;
    int64_t c0 = c - lo < 0 ? 0 : c - lo, c1 = c + hi > C - 1 ? C - 1 : c + hi;
    for (int64_t i = 0; i < sp; i++) {
      double sq = 0;
      for (int64_t cc = c0; cc <= c1; cc++) {
        double v = src[(nn * C + cc) * sp + i];
        sq += v * v;
      }
      dst[nc * sp + i] = (float)(src[nc * sp + i] / pow(bias + alpha / (double)size * sq, beta));
    }
  }
  return LM_OK;
}

/* (x - mean) / sqrt(var) over `axes` (default 0, 2, 3), no epsilon in the
** ONNX definition beyond its 1e-9 guard. */
static int eval_mvn(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                    int nout, char *err, size_t errlen)
{
  int st = need_f32(n, in, 1, 1, err, errlen);
  if (!st) st = need_same(n, in, out, err, errlen);
  if (st) return st;
  const lm_rt_tensor *x = &in[0];
  int cnt;
  const int64_t *ax = lm_gnode_attr_ints(n, "axes", &cnt);
  static const int64_t def[3] = {0, 2, 3};
  if (!ax) {
    ax = def;
    cnt = 3;
  }
  bool red[LM_MAX_DIMS] = {false};
  for (int i = 0; i < cnt; i++) {
    int a;
    if (!ops_axis(ax[i], x->ndim, &a)) return ops_eval_fail(err, errlen, n, "axis out of range");
    red[a] = true;
  }
  int64_t str[LM_MAX_DIMS], kept = 1, rcount = 1;
  ops_strides(x->ndim, x->shape, str);
  for (int k = 0; k < x->ndim; k++) {
    if (red[k]) rcount *= x->shape[k];
    else kept *= x->shape[k];
  }
  const float *src = x->data;
  float *dst = out[0].data;
  for (int64_t o = 0; o < kept; o++) {
    /* offsets of the kept index o, then walk the reduced ones */
    int64_t base = 0, rem = o;
    for (int k = x->ndim - 1; k >= 0; k--)
      if (!red[k]) {
        base += (rem % x->shape[k]) * str[k];
        rem /= x->shape[k];
      }
    /* three walks over the reduced positions: mean, variance, output */
    double mean = 0, var = 0;
    for (int pass = 0; pass < 3; pass++) {
      double acc = 0, sd = sqrt(var);
      for (int64_t r = 0; r < rcount; r++) {
        int64_t off = base, rr = r;
        for (int k = x->ndim - 1; k >= 0; k--)
          if (red[k]) {
            off += (rr % x->shape[k]) * str[k];
            rr /= x->shape[k];
          }
        double v = src[off];
        if (pass == 0) acc += v;
        else if (pass == 1) acc += (v - mean) * (v - mean);
        else dst[off] = (float)((v - mean) / (sd + 1e-9));
      }
      if (pass == 0) mean = acc / (double)rcount;
      if (pass == 1) var = acc / (double)rcount;
    }
  }
  return LM_OK;
}

const lm_cpu_kernel lm_ops_norm[] = {
  {"InstanceNormalization", infer_instnorm, eval_instnorm, false},
  {"BatchNormalization", infer_batchnorm, eval_batchnorm, false},
  {"LayerNormalization", infer_layernorm, eval_layernorm, false},
  {"GroupNormalization", infer_groupnorm, eval_groupnorm, false},
  {"LRN", infer_x_same, eval_lrn, false},
  {"MeanVarianceNormalization", infer_x_same, eval_mvn, false},
  {NULL, NULL, NULL, false},
};
