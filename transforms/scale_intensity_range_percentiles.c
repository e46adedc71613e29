/* ScaleIntensityRangePercentiles: the window from two percentiles of the
 * data (semantics.md §5.2), then ScaleIntensityRange. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "intensity.h"
#include "xf_util.h"

/* nth_element by quickselect (Hoare partition, median of three): linear on
 * average, and even on the long runs of equal values CT backgrounds have,
 * since equal elements stop both scans and end up split evenly. */
#define DEFINE_SELECT(NAME, T)                                            \
  static void NAME(T *v, int64_t n, int64_t k)                            \
  {                                                                       \
    int64_t lo = 0, hi = n - 1;                                           \
    while (hi > lo) {                                                     \
      int64_t mid = lo + (hi - lo) / 2;                                   \
      T t;                                                                \
      if (v[mid] < v[lo]) { t = v[mid]; v[mid] = v[lo]; v[lo] = t; }     \
      if (v[hi] < v[lo]) { t = v[hi]; v[hi] = v[lo]; v[lo] = t; }        \
      if (v[hi] < v[mid]) { t = v[hi]; v[hi] = v[mid]; v[mid] = t; }     \
      T pivot = v[mid];                                                   \
      int64_t i = lo, j = hi;                                             \
      while (i <= j) {                                                    \
        while (v[i] < pivot) i++;                                         \
        while (pivot < v[j]) j--;                                         \
        if (i <= j) { t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }        \
      }                                                                   \
      if (k <= j) hi = j;                                                 \
      else if (k >= i) lo = i;                                            \
      else return;                                                        \
    }                                                                     \
  }                                                                       \
  /* Values of ranks k and k+1 (k+1 clamped to n-1), v[k] placed; the     \
   * ranks above k are left in v[k+1..n). */                              \
  static void NAME##_pair(T *v, int64_t n, int64_t k, double *a,          \
                          double *b)                                      \
  {                                                                       \
    NAME(v, n, k);                                                        \
    *a = (double)v[k];                                                    \
    if (k + 1 >= n) { *b = *a; return; }                                  \
    T m = v[k + 1];                                                       \
    for (int64_t j = k + 2; j < n; j++) if (v[j] < m) m = v[j];           \
    *b = (double)m;                                                       \
  }

DEFINE_SELECT(select_f32, float)
DEFINE_SELECT(select_f64, double)

/* numpy's 'linear' method: h = (n - 1) * q, and _lerp's two-sided form. */
double xf_percentile_lerp(double a, double b, double g)
{
  double d = b - a;
  return g >= 0.5 ? b - d * (1.0 - g) : a + d * g;
}

/* Values are gathered into a float buffer when float holds the dtype
 * exactly, else into doubles. */
static bool fits_f32(lm_dtype dt)
{
  return dt == LM_U8 || dt == LM_I8 || dt == LM_I16 || dt == LM_U16 ||
         dt == LM_F16 || dt == LM_BF16 || dt == LM_F32;
}

typedef struct gather {
  void *buf;
  bool f32;
  lm_dtype dt;
  int64_t n;
  bool nan;
} gather;

static int gather_row(char *const *ptr, const int64_t *step, int64_t n,
                      void *arg)
{
  gather *g = arg;
  if (g->f32) {
    float *dst = (float *)g->buf + g->n;
    xf_load_f32(ptr[0], step[0], g->dt, dst, n);
    for (int64_t j = 0; j < n; j++) g->nan |= isnan(dst[j]);
  } else {
    double *dst = (double *)g->buf + g->n;
    xf_load_f64(ptr[0], step[0], g->dt, dst, n);
    for (int64_t j = 0; j < n; j++) g->nan |= isnan(dst[j]);
  }
  g->n += n;
  return LM_OK;
}

/* Percentiles q[0] and q[1] (0..100) of all of t's values.  A NaN anywhere
 * makes both NaN, as np.percentile and torch.quantile do. */
static int percentiles(lm_op_ctx *ctx, lm_tensor *t, const double q[2],
                       double out[2])
{
  int64_t n = lm_tensor_numel(t);
  if (n == 0)
    return lm_ctx_error(ctx, LM_ESHAPE, "percentiles of an empty tensor");
  gather g = {.f32 = fits_f32(lm_tensor_dtype(t)), .dt = lm_tensor_dtype(t)};
  g.buf = malloc((size_t)n * (g.f32 ? sizeof(float) : sizeof(double)));
  if (!g.buf)
    return lm_ctx_error(ctx, LM_ENOMEM, "no memory for %lld values",
                        (long long)n);
  void *base[1] = {lm_tensor_data(t)};
  const int64_t *strides[1] = {lm_tensor_strides(t)};
  size_t elsize[1] = {lm_dtype_size(g.dt)};
  xf_iter it;
  xf_iter_init(&it, lm_tensor_ndim(t), lm_tensor_shape(t), 1, base, strides,
               elsize);
  /* One chunk: rows append in order, and the copy is cheap next to the
   * selection. */
  int st = xf_iter_run(lm_ctx_engine(ctx), ctx, &it, n, gather_row, &g);
  if (st < 0) {
    free(g.buf);
    return st;
  }
  if (g.nan) {
    out[0] = out[1] = NAN;
    free(g.buf);
    return LM_OK;
  }
  /* Select the smaller rank first; the larger one lies in what is left
   * above it. */
  int first = q[0] <= q[1] ? 0 : 1;
  int64_t done = 0; /* v[0..done) holds ranks below the current slice */
  for (int r = 0; r < 2; r++) {
    int i = r == 0 ? first : 1 - first;
    double h = (double)(n - 1) * (q[i] / 100.0);
    int64_t k = (int64_t)floor(h);
    if (k > n - 1) k = n - 1;
    double a, b;
    if (k < done) k = done; /* same rank as the first one: recompute */
    if (g.f32)
      select_f32_pair((float *)g.buf + done, n - done, k - done, &a, &b);
    else
      select_f64_pair((double *)g.buf + done, n - done, k - done, &a, &b);
    out[i] = xf_percentile_lerp(a, b, h - floor(h));
    done = k;
  }
  free(g.buf);
  return LM_OK;
}

int xf_sirp_options(lm_op_ctx *ctx, xf_sirp_opts *o)
{
  o->lower = lm_arg_number(ctx, "lower");
  o->upper = lm_arg_number(ctx, "upper");
  o->b_min = lm_arg_number(ctx, "b_min");
  o->b_max = lm_arg_number(ctx, "b_max");
  o->clip = lm_arg_bool(ctx, "clip");
  o->relative = lm_arg_bool(ctx, "relative");
  o->channel_wise = lm_arg_bool(ctx, "channel_wise");
  if (!(o->lower >= 0.0 && o->lower <= 100.0))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'lower' = %g is not in "
                        "[0, 100]", o->lower);
  if (!(o->upper >= 0.0 && o->upper <= 100.0))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'upper' = %g is not in "
                        "[0, 100]", o->upper);
  return xf_arg_dtype(ctx, "dtype", LM_F32, &o->dt);
}

static int sirp_check(lm_op_ctx *ctx)
{
  xf_sirp_opts o;
  int st = xf_sirp_options(ctx, &o);
  if (st < 0) return st;
  if (o.channel_wise && lm_tensor_ndim(lm_ctx_input(ctx, 0)) < 1)
    return lm_ctx_error(ctx, LM_ESHAPE, "option 'channel_wise' needs a "
                        "tensor with a channel axis (got a scalar)");
  return LM_OK;
}

void xf_sirp_window(const xf_sirp_opts *o, const double p[2], xf_sir *s)
{
  *s = (xf_sir){.a_min = p[0], .a_max = p[1], .b_min = o->b_min,
                .b_max = o->b_max, .has_b_min = true, .has_b_max = true,
                .clip = o->clip};
  if (o->relative) {
    /* MONAI's expressions, in its order. */
    s->b_min = ((o->b_max - o->b_min) * (o->lower / 100.0)) + o->b_min;
    s->b_max = ((o->b_max - o->b_min) * (o->upper / 100.0)) + o->b_min;
  }
}

/* Window one block (the whole tensor, or one channel) by its own
 * percentiles. */
static int sirp_block(lm_op_ctx *ctx, const xf_sirp_opts *o, lm_tensor *in,
                      lm_tensor *out)
{
  double q[2] = {o->lower, o->upper}, p[2] = {NAN, NAN};
  int st = percentiles(ctx, in, q, p);
  if (st < 0) return st;
  xf_sir s;
  xf_sirp_window(o, p, &s);
  return xf_sir_apply(ctx, in, out, &s);
}

static int sirp_run(lm_op_ctx *ctx)
{
  xf_sirp_opts o;
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  int st = sirp_check(ctx);
  if (st < 0) return st;
  xf_sirp_options(ctx, &o);
  st = lm_tensor_new_like(in, o.dt, LM_CPU, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  if (!o.channel_wise) {
    st = sirp_block(ctx, &o, in, out);
  } else {
    int64_t nc = lm_tensor_shape(in)[0];
    for (int64_t c = 0; c < nc && st >= 0; c++) {
      lm_tensor *ci = NULL, *co = NULL;
      st = lm_tensor_narrow(in, 0, c, 1, &ci);
      if (st >= 0) st = lm_tensor_narrow(out, 0, c, 1, &co);
      if (st >= 0) st = sirp_block(ctx, &o, ci, co);
      else lm_ctx_error(ctx, st, "cannot view channel %lld", (long long)c);
      lm_tensor_release(ci);
      lm_tensor_release(co);
    }
  }
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc sirp_args[] = {
  {"lower", LM_ARG_NUMBER, NULL, "lower percentile (0..100): a_min"},
  {"upper", LM_ARG_NUMBER, NULL, "upper percentile (0..100): a_max"},
  {"b_min", LM_ARG_NUMBER, NULL, "output value of the lower percentile"},
  {"b_max", LM_ARG_NUMBER, NULL, "output value of the upper percentile"},
  {"clip", LM_ARG_BOOL, "false", "clamp the output to [b_min, b_max]"},
  {"relative", LM_ARG_BOOL, "false", "scale b_min/b_max by the percentiles: "
   "b_min' = b_min + (b_max - b_min) * lower / 100, b_max' likewise with "
   "upper"},
  {"channel_wise", LM_ARG_BOOL, "false", "percentiles per channel (axis 0) "
   "instead of over the whole tensor"},
  {"dtype", LM_ARG_STRING, "'float32'", "output dtype"},
};

const lm_op_desc lm_op_scale_intensity_range_percentiles = {
  .name = "ScaleIntensityRangePercentiles",
  .alias = NULL,
  .summary = "ScaleIntensityRange with a_min, a_max taken from percentiles "
             "of the data",
  .doc =
    "MONAI ScaleIntensityRangePercentiles (oracle; numpy / torch.quantile "
    "linear percentiles). a_min = P(lower), a_max = P(upper) over all "
    "voxels of the tensor, all channels and background zeros included "
    "(per channel along axis 0 with channel_wise=true). P is numpy's "
    "'linear' method: sort v (n values), h = (n - 1) * q / 100, "
    "P = v[floor h] + (h - floor h) * (v[floor h + 1] - v[floor h]) "
    "(numpy's _lerp form, computed in float64). Example: v = 0..9 gives "
    "P(0.5) = 0.045, P(25) = 2.25, P(99.5) = 8.955. The ranks are found by "
    "selection (quickselect over a copy of the values), not a full sort. "
    "Then ScaleIntensityRange(a_min, a_max, b_min, b_max, clip, dtype), so "
    "equal percentiles give the shift-only case. relative=true moves b_min "
    "and b_max as MONAI does.\n"
    "NaN: as numpy and torch, a NaN anywhere in the data (in the channel, "
    "with channel_wise) makes both percentiles NaN and so every output value "
    "NaN (0 for integer dtypes)."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = sirp_args,
  .nargs = (int)(sizeof sirp_args / sizeof sirp_args[0]),
  .flags = 0,
  .check = sirp_check,
  .run_cpu = sirp_run,
  .run_cuda = NULL,
};
