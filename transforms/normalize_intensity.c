/* NormalizeIntensity: MONAI's z-score and nnU-Net v2's ZScore and CT
 * normalisation as schemes of one op (semantics.md §5.3-5.4). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "normalize_intensity.h"
#include "xf_util.h"

/* A per-channel number option: 1 value for all channels or one each. */
static int per_channel(lm_op_ctx *ctx, const char *opt, int64_t nch,
                       bool required)
{
  if (!lm_arg_is_set(ctx, opt))
    return required ? lm_ctx_error(ctx, LM_EINVAL, "scheme 'ct' needs option "
                                   "'%s' (from the plans file)", opt)
                    : LM_OK;
  int n = 0;
  lm_arg_numbers(ctx, opt, &n);
  if (n != 1 && n != nch)
    return lm_ctx_error(ctx, LM_EINVAL, "option '%s' has %d values for %lld "
                        "channels; give 1 or one per channel", opt, n,
                        (long long)nch);
  return LM_OK;
}

static double chan_value(lm_op_ctx *ctx, const char *opt, int64_t c)
{
  int n = 0;
  const double *v = lm_arg_numbers(ctx, opt, &n);
  return v[n == 1 ? 0 : c];
}

int xf_ni_prepare(lm_op_ctx *ctx, xf_ni_opts *o)
{
  lm_tensor *img = lm_ctx_input(ctx, 0);
  memset(o, 0, sizeof *o);
  const char *s = lm_arg_string(ctx, "scheme");
  if (!strcmp(s, "zscore")) o->scheme = XF_NI_MONAI;
  else if (!strcmp(s, "nnunet_zscore")) o->scheme = XF_NI_NNUNET_ZSCORE;
  else if (!strcmp(s, "ct")) o->scheme = XF_NI_CT;
  else
    return lm_ctx_error(ctx, LM_EINVAL, "option 'scheme' = '%s' is not "
                        "'zscore', 'nnunet_zscore' or 'ct'", s);
  o->nonzero = lm_arg_bool(ctx, "nonzero");
  o->channel_wise = lm_arg_bool(ctx, "channel_wise");
  int st = xf_arg_dtype(ctx, "dtype", LM_F32, &o->dt);
  if (st < 0) return st;
  if (!lm_dtype_is_float(o->dt))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'dtype' must be a float "
                        "type");
  int nd = lm_tensor_ndim(img);
  o->nch = nd >= 1 ? lm_tensor_shape(img)[0] : 1;
  bool per_ch = o->scheme != XF_NI_MONAI || o->channel_wise;
  if (nd < 1 && per_ch)
    return lm_ctx_error(ctx, LM_ESHAPE, "a scalar has no channel axis");
  if (o->scheme == XF_NI_MONAI) {
    int64_t k = o->channel_wise ? o->nch : 1;
    if ((st = per_channel(ctx, "subtrahend", k, false)) < 0 ||
        (st = per_channel(ctx, "divisor", k, false)) < 0)
      return st;
  } else if (o->scheme == XF_NI_CT) {
    if ((st = per_channel(ctx, "clip_min", o->nch, true)) < 0 ||
        (st = per_channel(ctx, "clip_max", o->nch, true)) < 0 ||
        (st = per_channel(ctx, "mean", o->nch, true)) < 0 ||
        (st = per_channel(ctx, "std", o->nch, true)) < 0)
      return st;
  }
  if (lm_ctx_ninputs(ctx) > 1) {
    if (o->scheme != XF_NI_NNUNET_ZSCORE)
      return lm_ctx_error(ctx, LM_EINVAL, "a mask input is used by scheme "
                          "'nnunet_zscore' only");
    lm_tensor *m = lm_ctx_input(ctx, 1);
    int64_t mv = lm_tensor_numel(m), iv = lm_tensor_numel(img) / (o->nch ? o->nch : 1);
    int mnd = lm_tensor_ndim(m);
    bool fits = mv == iv && (mnd == nd - 1 || (mnd == nd && lm_tensor_shape(m)[0] == 1));
    for (int d = 0; fits && d < nd - 1; d++)
      fits = lm_tensor_shape(m)[mnd - (nd - 1) + d] == lm_tensor_shape(img)[d + 1];
    if (!fits)
      return lm_ctx_error(ctx, LM_ESHAPE, "the mask must have one channel of "
                          "the image's spatial shape");
  }
  return LM_OK;
}

static int ni_check(lm_op_ctx *ctx)
{
  xf_ni_opts o;
  return xf_ni_prepare(ctx, &o);
}

/* Blocked parallel reductions: a fixed split, so results do not depend on
 * the thread count. */
#define NI_BLOCKS 64

typedef struct ni_red {
  const float *x;
  const float *m;      /* mask values (nnU-Net seg) or NULL */
  int64_t n;
  int sel;             /* 0 all, 1 x != 0, 2 m >= 0 */
  double mean;         /* pass 2 */
  double part[NI_BLOCKS];
  int64_t cnt[NI_BLOCKS];
  int pass;
} ni_red;

static inline bool ni_take(const ni_red *r, int64_t i)
{
  return r->sel == 0 || (r->sel == 1 ? r->x[i] != 0.0f : r->m[i] >= 0.0f);
}

static int ni_reduce(int64_t begin, int64_t end, void *arg)
{
  ni_red *r = arg;
  for (int64_t b = begin; b < end; b++) {
    int64_t lo = r->n * b / NI_BLOCKS, hi = r->n * (b + 1) / NI_BLOCKS, c = 0;
    double s = 0;
    if (r->pass == 1) {
      for (int64_t i = lo; i < hi; i++)
        if (ni_take(r, i)) { s += r->x[i]; c++; }
    } else {
      for (int64_t i = lo; i < hi; i++)
        if (ni_take(r, i)) {
          double d = r->x[i] - r->mean;
          s += d * d;
          c++;
        }
    }
    r->part[b] = s;
    r->cnt[b] = c;
  }
  return LM_OK;
}

/* Mean and population std (ddof 0) in double, two passes.  Returns the
 * number of values taken. */
static int ni_stats(lm_op_ctx *ctx, ni_red *r, double *mean, double *sd,
                    int64_t *count)
{
  double s = 0;
  int64_t c = 0;
  r->pass = 1;
  int st = lm_parallel_for(lm_ctx_engine(ctx), ctx, NI_BLOCKS, 1, ni_reduce, r);
  if (st < 0) return st;
  for (int b = 0; b < NI_BLOCKS; b++) { s += r->part[b]; c += r->cnt[b]; }
  *count = c;
  if (c == 0) { *mean = 0; *sd = 0; return LM_OK; }
  r->mean = s / (double)c;
  r->pass = 2;
  st = lm_parallel_for(lm_ctx_engine(ctx), ctx, NI_BLOCKS, 1, ni_reduce, r);
  if (st < 0) return st;
  s = 0;
  for (int b = 0; b < NI_BLOCKS; b++) s += r->part[b];
  *mean = r->mean;
  *sd = sqrt(s / (double)c);
  return LM_OK;
}

typedef struct ni_apply {
  float *x;
  const float *m;
  int64_t n;
  int sel;
  float sub, div, lo, hi;
  bool clip;
} ni_apply;

static int ni_apply_range(int64_t begin, int64_t end, void *arg)
{
  const ni_apply *a = arg;
  float *x = a->x;
  if (a->clip) {
    for (int64_t i = begin; i < end; i++) {
      float v = x[i];
      v = v < a->lo ? a->lo : v;   /* np.clip: max then min, NaN kept */
      v = v > a->hi ? a->hi : v;
      x[i] = (v - a->sub) / a->div;
    }
  } else if (a->sel == 0) {
    for (int64_t i = begin; i < end; i++) x[i] = (x[i] - a->sub) / a->div;
  } else if (a->sel == 1) {
    for (int64_t i = begin; i < end; i++)
      if (x[i] != 0.0f) x[i] = (x[i] - a->sub) / a->div;
  } else {
    for (int64_t i = begin; i < end; i++)
      if (a->m[i] >= 0.0f) x[i] = (x[i] - a->sub) / a->div;
  }
  return LM_OK;
}

int xf_ni_selection(const xf_ni_opts *o, bool has_mask)
{
  if (o->scheme == XF_NI_CT) return 0;
  if (o->scheme == XF_NI_MONAI) return o->nonzero ? 1 : 0;
  return has_mask ? 2 : 0;
}

bool xf_ni_needs_stats(lm_op_ctx *ctx, const xf_ni_opts *o)
{
  if (o->scheme == XF_NI_CT) return false;
  return o->scheme != XF_NI_MONAI || !lm_arg_is_set(ctx, "subtrahend") ||
         !lm_arg_is_set(ctx, "divisor");
}

void xf_ni_block_map(lm_op_ctx *ctx, const xf_ni_opts *o, int64_t c, int sel,
                     bool have_stats, double mean, double sd, int64_t count,
                     xf_ni_map *a)
{
  memset(a, 0, sizeof *a);
  a->sel = sel;
  a->div = 1;
  if (o->scheme == XF_NI_CT) {
    a->clip = true;
    a->lo = (float)chan_value(ctx, "clip_min", c);
    a->hi = (float)chan_value(ctx, "clip_max", c);
    a->sub = (float)chan_value(ctx, "mean", c);
    double s = chan_value(ctx, "std", c);
    a->div = (float)(s > 1e-8 ? s : 1e-8);
    return;
  }
  if (have_stats && count == 0) { /* nothing selected: MONAI and nnU-Net leave it */
    a->skip = true;
    a->sub = 0;
    a->div = 1;
    return;
  }
  /* The statistics as float32 scalars, as torch's .item() of a float32
   * mean and numpy's float32 mean/std give them. */
  if (o->scheme == XF_NI_MONAI) {
    int64_t k = o->channel_wise ? c : 0;
    double sub = lm_arg_is_set(ctx, "subtrahend")
                     ? chan_value(ctx, "subtrahend", k) : (float)mean;
    double div = lm_arg_is_set(ctx, "divisor")
                     ? chan_value(ctx, "divisor", k) : (float)sd;
    if (div == 0.0) div = 1.0; /* MONAI: a zero divisor becomes 1 */
    a->sub = (float)sub;
    a->div = (float)div;
  } else {
    a->sub = (float)mean;
    float fsd = (float)sd;
    a->div = fsd > 1e-8f ? fsd : (float)1e-8;
  }
}

/* Normalise one block of n float32 values in place.  The subtrahend and
 * divisor used go to st_out. */
static int ni_block(lm_op_ctx *ctx, const xf_ni_opts *o, float *x,
                    const float *m, int64_t n, int64_t c, double *st_out)
{
  ni_red r = {.x = x, .m = m, .n = n, .sel = xf_ni_selection(o, m != NULL)};
  double mean = 0, sd = 0;
  int64_t cnt = 0;
  bool need = xf_ni_needs_stats(ctx, o);
  if (need) {
    int st = ni_stats(ctx, &r, &mean, &sd, &cnt);
    if (st < 0) return st;
  }
  xf_ni_map map;
  xf_ni_block_map(ctx, o, c, r.sel, need, mean, sd, cnt, &map);
  st_out[0] = map.sub;
  st_out[1] = map.div;
  if (map.skip) return LM_OK;
  ni_apply a = {.x = x, .m = m, .n = n, .sel = map.sel, .sub = map.sub,
                .div = map.div, .lo = map.lo, .hi = map.hi, .clip = map.clip};
  return lm_parallel_for(lm_ctx_engine(ctx), ctx, n, XF_GRAIN, ni_apply_range,
                         &a);
}

void xf_ni_work_order(const lm_tensor *img, int *ord2)
{
  int nd = lm_tensor_ndim(img), order[LM_MAX_DIMS], k = 0;
  xf_memory_order(img, order);
  if (nd > 0) ord2[k++] = 0;
  for (int d = 0; d < nd; d++)
    if (order[d] != 0) ord2[k++] = order[d];
}

int xf_ni_set_results(lm_op_ctx *ctx, const double *stats, int64_t nblk)
{
  size_t nb = nblk > 0 ? (size_t)nblk : 1;
  double *sub = malloc(sizeof(double) * (2 * nb + 1));
  if (!sub) return LM_ENOMEM;
  for (int64_t c = 0; c < nblk; c++) {
    sub[c] = stats[2 * c];
    sub[nblk + c] = stats[2 * c + 1];
  }
  lm_params *res = lm_ctx_results(ctx);
  int st = LM_OK;
  if (!res || lm_params_set_numbers(res, "subtrahend", sub, (int)nblk) < 0 ||
      lm_params_set_numbers(res, "divisor", sub + nblk, (int)nblk) < 0)
    st = LM_ENOMEM;
  free(sub);
  return st;
}

static int ni_run(lm_op_ctx *ctx)
{
  xf_ni_opts o;
  int st = xf_ni_prepare(ctx, &o);
  if (st < 0) return st;
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *img = lm_ctx_input(ctx, 0), *work = NULL, *mask = NULL,
            *out = NULL;
  int nd = lm_tensor_ndim(img);
  /* A float32 copy with the channel dim slowest and the spatial dims in
   * the input's memory order: each channel is one contiguous block. */
  int ord2[LM_MAX_DIMS];
  xf_ni_work_order(img, ord2);
  if ((st = lm_tensor_new_ordered(e, LM_F32, nd, lm_tensor_shape(img), ord2,
                                  LM_CPU, &work)) < 0 ||
      (st = lm_tensor_copy(work, img)) < 0)
    goto fail;
  if (lm_ctx_ninputs(ctx) > 1) {
    lm_tensor *m = lm_ctx_input(ctx, 1), *mv = NULL;
    int64_t shape[LM_MAX_DIMS];
    memcpy(shape, lm_tensor_shape(img), sizeof(int64_t) * (size_t)nd);
    shape[0] = 1;
    if (lm_tensor_ndim(m) == nd) mv = lm_tensor_retain(m);
    else if ((st = lm_tensor_unsqueeze(m, 0, &mv)) < 0) goto fail;
    st = lm_tensor_new_ordered(e, LM_F32, nd, shape, ord2, LM_CPU, &mask);
    if (st >= 0) st = lm_tensor_copy(mask, mv);
    lm_tensor_release(mv);
    if (st < 0) goto fail;
  }
  float *x = lm_tensor_data(work);
  const float *m = mask ? lm_tensor_data(mask) : NULL;
  int64_t total = lm_tensor_numel(work);
  bool per_ch = o.scheme != XF_NI_MONAI || o.channel_wise;
  int64_t nblk = per_ch ? o.nch : 1, bn = nblk ? total / nblk : 0;
  size_t nb = nblk > 0 ? (size_t)nblk : 1; /* a count, never negative */
  double *stats = calloc(2 * nb, sizeof(double));
  if (!stats) { st = LM_ENOMEM; goto fail; }
  for (int64_t c = 0; c < nblk && st >= 0; c++)
    st = ni_block(ctx, &o, x + c * bn, m, bn, c, stats + 2 * c);
  if (st >= 0) st = xf_ni_set_results(ctx, stats, nblk);
  free(stats);
  if (st < 0) goto fail;
  if (o.dt == LM_F32) {
    out = lm_tensor_retain(work);
  } else if ((st = lm_tensor_new_like(img, o.dt, LM_CPU, &out)) < 0 ||
             (st = lm_tensor_copy(out, work)) < 0) {
    goto fail;
  }
  lm_tensor_set_affine(out, lm_tensor_affine(img));
  lm_tensor_set_layout(out, lm_tensor_layout(img));
  lm_tensor_trace_copy(out, img);
  lm_tensor_release(work);
  lm_tensor_release(mask);
  return lm_ctx_set_output(ctx, 0, out);
fail:
  lm_tensor_release(work);
  lm_tensor_release(mask);
  lm_tensor_release(out);
  if (st == LM_ECANCELED) return st;
  return lm_ctx_error(ctx, st, "normalisation failed (%s)",
                      lm_status_string(st));
}

static const lm_arg_desc ni_args[] = {
  {"scheme", LM_ARG_STRING, "'zscore'", "'zscore' (MONAI), 'nnunet_zscore' "
   "(nnU-Net v2 ZScoreNormalization) or 'ct' (nnU-Net v2 CTNormalization)"},
  {"subtrahend", LM_ARG_NUMBERS, "nil", "zscore: subtract this instead of "
   "the mean (one value, or one per channel with channel_wise)"},
  {"divisor", LM_ARG_NUMBERS, "nil", "zscore: divide by this instead of the "
   "std (0 -> 1)"},
  {"nonzero", LM_ARG_BOOL, "false", "zscore: statistics over and changes to "
   "the voxels != 0 only"},
  {"channel_wise", LM_ARG_BOOL, "false", "zscore: statistics per channel "
   "(dim 0)"},
  {"clip_min", LM_ARG_NUMBERS, "nil", "ct: percentile_00_5 of the plans' "
   "foreground intensity properties (per channel or one)"},
  {"clip_max", LM_ARG_NUMBERS, "nil", "ct: percentile_99_5"},
  {"mean", LM_ARG_NUMBERS, "nil", "ct: mean"},
  {"std", LM_ARG_NUMBERS, "nil", "ct: std"},
  {"dtype", LM_ARG_STRING, "'float32'", "output float dtype (the arithmetic "
   "is float32)"},
};

const lm_op_desc lm_op_normalize_intensity = {
  .name = "NormalizeIntensity",
  .alias = NULL,
  .summary = "Z-score normalisation: MONAI's, nnU-Net's ZScore, or nnU-Net's "
             "CT scheme with the plans' statistics",
  .doc =
    "Inputs img, and for scheme 'nnunet_zscore' optionally mask (nnU-Net's "
    "seg from CropForeground rule 'nnunet': -1 outside the nonzero mask). "
    "Values are cast to float32 first; statistics are accumulated in double "
    "(two passes) and rounded to float32, then y = (x - sub) / div in "
    "float32.\n"
    "scheme 'zscore': MONAI NormalizeIntensity (intensity/array.py), the "
    "oracle. sub = subtrahend or the mean, div = divisor or the population "
    "std (ddof 0), a zero div becomes 1; nonzero = statistics over and "
    "changes to the voxels != 0 only (none: unchanged); channel_wise = per "
    "channel (dim 0), else over the whole tensor. Example: {1, 2, 3, 4} -> "
    "(x - 2.5) / 1.1180340.\n"
    "scheme 'nnunet_zscore': nnU-Net v2 ZScoreNormalization: per channel, "
    "div = max(std, 1e-8); with a mask input only the voxels where "
    "mask >= 0 are used and changed (use_mask_for_norm), the others kept.\n"
    "scheme 'ct': nnU-Net v2 CTNormalization: per channel x = clip(x, "
    "clip_min, clip_max), then (x - mean) / max(std, 1e-8); the four numbers "
    "come from the plans file (foreground_intensity_properties_per_channel: "
    "percentile_00_5, percentile_99_5, mean, std) and are never recomputed.\n"
    "Results: subtrahend and divisor actually used (per channel or one). "
    "Output: dtype (float32), the input's shape, affine, layout and trace "
    "(channel dim slowest in memory)."
    " Also runs on CUDA tensors when the CUDA plugin is loaded (the same "
    "statistics summed in another order: within an ulp of the CPU's).",
  .inputs = "img, mask",
  .min_inputs = 1,
  .max_inputs = 2,
  .outputs = "img",
  .args = ni_args,
  .nargs = (int)(sizeof ni_args / sizeof ni_args[0]),
  .flags = 0,
  .check = ni_check,
  .run_cpu = ni_run,
  .run_cuda = NULL,
};
