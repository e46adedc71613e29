/* Resize (opsets 10 to 19) and Upsample (opset 7/9): nearest, N-linear and
 * cubic interpolation on any axes, every coordinate_transformation_mode,
 * every nearest_mode, scales or sizes (with axes and
 * keep_aspect_ratio_policy from opset 18).  antialias is rejected at infer.
 *
 * Interpolation is separable: for each resized axis a table gives, for each
 * output index, up to four source indices with weights (edge indices
 * clamped, as the ONNX reference pads with the edge value).  Axes are
 * interpolated one pass each; tf_crop_and_resize (whose extrapolated points
 * depend on every axis at once) sums over the product of the axes' taps.
 * Rows and output elements are independent, split across OpenMP threads. */
#include "cpu_ops_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXD LM_MAX_DIMS

typedef enum rs_mode { RS_NEAREST, RS_LINEAR, RS_CUBIC } rs_mode;
typedef enum rs_ctm {
  CTM_HALF_PIXEL, CTM_HALF_PIXEL_SYM, CTM_PYTORCH, CTM_ALIGN, CTM_ASYM, CTM_TF_NN, CTM_TF_CROP
} rs_ctm;
typedef enum rs_near { NR_PREFER_FLOOR, NR_PREFER_CEIL, NR_FLOOR, NR_CEIL, NR_SIMPLE } rs_near;

typedef struct rs_attrs {
  rs_mode mode;
  rs_ctm ctm;
  rs_near near;
  double cubic_a, extrapolation;
  bool exclude_outside;
  int policy;          /* 0 stretch, 1 not_larger, 2 not_smaller */
  bool legacy;         /* Upsample / Resize-10: inputs X, scales */
} rs_attrs;

static const char *rs_parse(const lm_gnode *n, rs_attrs *a)
{
  memset(a, 0, sizeof *a);
  a->legacy = !strcmp(n->op, "Upsample") || n->nin == 2;
  const char *m = lm_gnode_attr_string(n, "mode", "nearest");
  if (!strcmp(m, "nearest")) a->mode = RS_NEAREST;
  else if (!strcmp(m, "linear") || !strcmp(m, "bilinear") || !strcmp(m, "trilinear")) a->mode = RS_LINEAR;
  else if (!strcmp(m, "cubic")) a->mode = RS_CUBIC;
  else return "attribute mode is not nearest, linear or cubic";
  const char *c = lm_gnode_attr_string(n, "coordinate_transformation_mode",
                                       a->legacy ? "asymmetric" : "half_pixel");
  if (!strcmp(c, "half_pixel")) a->ctm = CTM_HALF_PIXEL;
  else if (!strcmp(c, "half_pixel_symmetric")) a->ctm = CTM_HALF_PIXEL_SYM;
  else if (!strcmp(c, "pytorch_half_pixel")) a->ctm = CTM_PYTORCH;
  else if (!strcmp(c, "align_corners")) a->ctm = CTM_ALIGN;
  else if (!strcmp(c, "asymmetric")) a->ctm = CTM_ASYM;
  else if (!strcmp(c, "tf_half_pixel_for_nn")) a->ctm = CTM_TF_NN;
  else if (!strcmp(c, "tf_crop_and_resize")) a->ctm = CTM_TF_CROP;
  else return "attribute coordinate_transformation_mode is unknown";
  const char *nm = lm_gnode_attr_string(n, "nearest_mode", a->legacy ? "simple" : "round_prefer_floor");
  if (!strcmp(nm, "round_prefer_floor")) a->near = NR_PREFER_FLOOR;
  else if (!strcmp(nm, "round_prefer_ceil")) a->near = NR_PREFER_CEIL;
  else if (!strcmp(nm, "floor")) a->near = NR_FLOOR;
  else if (!strcmp(nm, "ceil")) a->near = NR_CEIL;
  else if (!strcmp(nm, "simple") && a->legacy) a->near = NR_SIMPLE;
  else return "attribute nearest_mode is unknown";
  a->cubic_a = lm_gnode_attr_float(n, "cubic_coeff_a", -0.75);
  a->exclude_outside = lm_gnode_attr_int(n, "exclude_outside", 0) != 0;
  a->extrapolation = lm_gnode_attr_float(n, "extrapolation_value", 0.0);
  const char *kp = lm_gnode_attr_string(n, "keep_aspect_ratio_policy", "stretch");
  if (!strcmp(kp, "stretch")) a->policy = 0;
  else if (!strcmp(kp, "not_larger")) a->policy = 1;
  else if (!strcmp(kp, "not_smaller")) a->policy = 2;
  else return "attribute keep_aspect_ratio_policy is unknown";
  if (lm_gnode_attr_int(n, "antialias", 0) != 0)
    return "attribute antialias=1 is not supported";
  return NULL;
}

/* Per-axis scales and output extents from scales or sizes (given for the
** axes listed in `axes`, or all).  scales_in/sizes_in: counts -1 when absent. */
static const char *rs_sizes(const lm_gnode *n, const rs_attrs *a, int ndim, const int64_t *in,
                            const double *scales_in, int ns, const int64_t *sizes_in, int nz,
                            double *scale, int64_t *out)
{
  int64_t axes[MAXD];
  int na;
  const int64_t *ax = lm_gnode_attr_ints(n, "axes", &na);
  if (ax) {
    if (na > ndim) return "attribute axes is longer than the rank";
    for (int i = 0; i < na; i++) {
      int v;
      if (!ops_axis(ax[i], ndim, &v)) return "attribute axes has an axis out of range";
      axes[i] = v;
    }
  } else {
    na = ndim;
    for (int i = 0; i < ndim; i++) axes[i] = i;
  }
  for (int k = 0; k < ndim; k++) {
    scale[k] = 1;
    out[k] = in[k];
  }
  if (ns > 0) {
    if (ns != na) return "scales has the wrong length";
    for (int i = 0; i < na; i++) {
      if (!(scales_in[i] > 0)) return "scales must be positive";
      int k = (int)axes[i];
      scale[k] = scales_in[i];
      out[k] = in[k] < 0 ? -1 : (int64_t)floor((double)in[k] * scales_in[i]);
    }
    return NULL;
  }
  if (nz > 0) {
    if (nz != na) return "sizes has the wrong length";
    if (a->policy == 0) {
      for (int i = 0; i < na; i++) {
        int k = (int)axes[i];
        out[k] = sizes_in[i];
        scale[k] = in[k] > 0 ? (double)sizes_in[i] / (double)in[k] : 1;
      }
    } else {
      double s = a->policy == 1 ? INFINITY : -INFINITY;
      for (int i = 0; i < na; i++) {
        int k = (int)axes[i];
        double r = in[k] > 0 ? (double)sizes_in[i] / (double)in[k] : 1;
        s = a->policy == 1 ? fmin(s, r) : fmax(s, r);
      }
      for (int i = 0; i < na; i++) {
        int k = (int)axes[i];
        scale[k] = s;
        out[k] = in[k] < 0 ? -1 : (int64_t)floor(s * (double)in[k] + 0.5);
      }
    }
    return NULL;
  }
  return "needs scales or sizes";
}

static int infer_resize(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input X is missing");
  rs_attrs a;
  const char *why = rs_parse(n, &a);
  if (why) return ops_fail(g, n, "%s", why);
  if (!ops_in_known(g, n, 0)) return LM_OK;
  double sc[MAXD];
  int64_t sz[MAXD], out[MAXD];
  double scale[MAXD];
  int ns = -1, nz = -1;
  bool unknown = false;
  int cnt;
  const lm_gattr *sattr = lm_gnode_attr(n, "scales");
  if (sattr && sattr->kind == LM_ATTR_FLOATS) {   /* Upsample-7 */
    cnt = sattr->n;
    if (cnt > MAXD) return ops_fail(g, n, "attribute scales is too long");
    for (int i = 0; i < cnt; i++) sc[i] = sattr->floats[i];
    ns = cnt;
  } else {
    int si = a.legacy ? 1 : 2;
    if (ops_in(g, n, si)) {
      ns = ops_in_floats(g, n, si, sc, MAXD);
      if (ns < -1) return ns;
      if (ns == -1 && lm_gvalue_numel(ops_in(g, n, si)) != 0) unknown = true;
      if (ns == -1) ns = 0;
    }
    if (!a.legacy && ns <= 0 && ops_in(g, n, 3)) {
      nz = ops_in_ints(g, n, 3, sz, MAXD);
      if (nz < -1) return nz;
      if (nz == -1) unknown = true;
    }
  }
  if (unknown) {
    for (int k = 0; k < x->ndim; k++) out[k] = -1;
    ops_set_out(g, n, 0, x->dt, x->ndim, out);
    return LM_OK;
  }
  why = rs_sizes(n, &a, x->ndim, x->shape, sc, ns, sz, nz, scale, out);
  if (why) return ops_fail(g, n, "%s", why);
  ops_set_out(g, n, 0, x->dt, x->ndim, out);
  return LM_OK;
}

/* One output index's taps on one axis. */
typedef struct rs_tap {
  int ntap;
  bool outside;            /* tf_crop_and_resize: extrapolation value */
  int64_t idx[4];
  double w[4];
} rs_tap;

/* x_original for output index x.  The ONNX reference uses the resized
** length in * scale unrounded (len), not the integer output extent, in the
** align_corners, pytorch_half_pixel and tf_crop_and_resize formulas. */
static double rs_original(const rs_attrs *a, double x, double scale, int64_t in, int64_t out,
                          double roi_lo, double roi_hi)
{
  double len = scale * (double)in;
  switch (a->ctm) {
  case CTM_HALF_PIXEL: return (x + 0.5) / scale - 0.5;
  case CTM_HALF_PIXEL_SYM: {
    double adj = (double)out / (scale * (double)in);
    double center = (double)in / 2;
    double offset = center * (1 - adj);
    return offset + (x + 0.5) / scale - 0.5;
  }
  case CTM_PYTORCH: return len > 1 ? (x + 0.5) / scale - 0.5 : 0;
  case CTM_ALIGN: return len == 1 ? 0 : x * (double)(in - 1) / (len - 1);
  case CTM_ASYM: return x / scale;
  case CTM_TF_NN: return (x + 0.5) / scale;
  case CTM_TF_CROP:
    return len > 1 ? roi_lo * (double)(in - 1) + x * (roi_hi - roi_lo) * (double)(in - 1) / (len - 1)
                   : 0.5 * (roi_lo + roi_hi) * (double)(in - 1);
  }
  return x;
}

static int64_t clampi(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static void rs_axis_taps(const rs_attrs *a, double scale, int64_t in, int64_t out, double roi_lo,
                         double roi_hi, rs_tap *t)
{
  for (int64_t o = 0; o < out; o++) {
    rs_tap *tp = &t[o];
    memset(tp, 0, sizeof *tp);
    double x = rs_original(a, (double)o, scale, in, out, roi_lo, roi_hi);
    if (a->ctm == CTM_TF_CROP && (x < 0 || x > (double)(in - 1))) {
      tp->outside = true;
      continue;
    }
    if (a->mode == RS_NEAREST) {
      double r;
      switch (a->near) {
      case NR_PREFER_FLOOR: r = (x == floor(x) + 0.5) ? floor(x) : round(x); break;
      case NR_PREFER_CEIL: r = (x == floor(x) + 0.5) ? ceil(x) : round(x); break;
      case NR_FLOOR: r = floor(x); break;
      case NR_CEIL: r = ceil(x); break;
      default: r = scale < 1 ? ceil(x) : floor(x); break;
      }
      tp->ntap = 1;
      tp->idx[0] = clampi((int64_t)r, 0, in - 1);
      tp->w[0] = 1;
    } else if (a->mode == RS_LINEAR) {
      double xc = x < 0 ? 0 : x > (double)(in - 1) ? (double)(in - 1) : x;
      int64_t x0 = (int64_t)floor(xc);
      double f = xc - (double)x0;
      tp->idx[0] = clampi(x0, 0, in - 1);
      tp->w[0] = 1 - f;
      tp->idx[1] = clampi(x0 + 1, 0, in - 1);
      tp->w[1] = f;
      tp->ntap = 2;
    } else {
      int64_t x0 = (int64_t)floor(x);
      double t_ = x - (double)x0, A = a->cubic_a;
      double d[4] = {t_ + 1, t_, 1 - t_, 2 - t_};
      double sum = 0;
      for (int k = 0; k < 4; k++) {
        double s = d[k], w;
        if (s <= 1) w = ((A + 2) * s - (A + 3)) * s * s + 1;
        else w = ((A * s - 5 * A) * s + 8 * A) * s - 4 * A;
        int64_t idx = x0 - 1 + k;
        if (a->exclude_outside && (idx < 0 || idx >= in)) w = 0;
        tp->idx[k] = clampi(idx, 0, in - 1);
        tp->w[k] = w;
        sum += w;
      }
      if (a->exclude_outside && sum != 0)
        for (int k = 0; k < 4; k++) tp->w[k] /= sum;
      tp->ntap = 4;
    }
    /* Zero-weight taps add nothing: drop them (scale-1 axes then cost one). */
    int keep = 0;
    for (int k = 0; k < tp->ntap; k++)
      if (tp->w[k] != 0) {
        tp->idx[keep] = tp->idx[k];
        tp->w[keep++] = tp->w[k];
      }
    tp->ntap = keep;
  }
}

/* One 1-D interpolation pass along an axis: src [outer, in_len, inner] ->
** dst [outer, out_len, inner].  Rows (outer, j) are independent. */
static void rs_pass(const float *src, float *dst, int64_t outer, int64_t in_len, int64_t out_len,
                    int64_t inner, const rs_tap *taps)
{
  int64_t rows = outer * out_len;
  if (inner == 1) {   /* the last axis: gather along each contiguous row */
#pragma omp parallel for schedule(static) if (rows > OPS_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
      const float *sp = src + o * in_len;
      float *d = dst + o * out_len;
      for (int64_t j = 0; j < out_len; j++) {
        const rs_tap *t = &taps[j];
        if (t->ntap == 1 && t->w[0] == 1) {
          d[j] = sp[t->idx[0]];
          continue;
        }
        double acc = 0;
        for (int k = 0; k < t->ntap; k++) acc += t->w[k] * (double)sp[t->idx[k]];
        d[j] = (float)acc;
      }
    }
    return;
  }
#pragma omp parallel for schedule(static) if (rows * inner > OPS_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t o = r / out_len, j = r % out_len;
    const rs_tap *t = &taps[j];
    const float *sp = src + o * in_len * inner;
    float *d = dst + r * inner;
    if (t->ntap == 1 && t->w[0] == 1) {
      memcpy(d, sp + t->idx[0] * inner, sizeof(float) * (size_t)inner);
      continue;
    }
    for (int64_t i = 0; i < inner; i++) {
      double acc = 0;
      for (int k = 0; k < t->ntap; k++) acc += t->w[k] * (double)sp[t->idx[k] * inner + i];
      d[i] = (float)acc;
    }
  }
}

static bool rs_identity(const rs_tap *t, int64_t len, int64_t in_len)
{
  if (len != in_len) return false;
  for (int64_t o = 0; o < len; o++)
    if (t[o].ntap != 1 || t[o].idx[0] != o || t[o].w[0] != 1) return false;
  return true;
}

/* Interpolation is separable: one pass per axis that changes (each pass
** rounds to float; within 1e-6 relative of the all-axes-at-once sum). */
static int rs_separable(const lm_rt_tensor *x, lm_rt_tensor *out, const int64_t *osh,
                        const rs_tap *taps, const int64_t *base)
{
  int nd = x->ndim, axes[MAXD], na = 0;
  for (int k = 0; k < nd; k++)
    if (!rs_identity(&taps[base[k]], osh[k], x->shape[k])) axes[na++] = k;
  if (na == 0) {
    memcpy(out->data, x->data, sizeof(float) * (size_t)ops_rt_numel(x));
    return 0;
  }
  int64_t cur[MAXD];
  memcpy(cur, x->shape, sizeof(int64_t) * (size_t)nd);
  const float *src = x->data;
  float *tmp[2] = {NULL, NULL};
  for (int p = 0; p < na; p++) {
    int k = axes[p];
    int64_t outer = ops_numel(k, cur), inner = ops_numel(nd - k - 1, cur + k + 1);
    float *dst;
    if (p == na - 1) {
      dst = out->data;
    } else {
      free(tmp[p % 2]);
      tmp[p % 2] = malloc(sizeof(float) * (size_t)(outer * osh[k] * inner + 1));
      if (!tmp[p % 2]) {
        free(tmp[(p + 1) % 2]);
        return -1;
      }
      dst = tmp[p % 2];
    }
    rs_pass(src, dst, outer, cur[k], osh[k], inner, &taps[base[k]]);
    cur[k] = osh[k];
    src = dst;
  }
  free(tmp[0]);
  free(tmp[1]);
  return 0;
}

/* The attributes, the output extents' check and every axis' taps of node n
** for inputs in (data only needed for the scales/sizes/roi inputs) and the
** output shape osh_want: *taps (malloc'd) holds axis k's taps from base[k]. */
static int rs_build(const lm_gnode *n, const lm_rt_tensor *in, int nin, int nd,
                    const int64_t *osh_want, rs_attrs *ap, rs_tap **taps_out, int64_t *base,
                    char *err, size_t errlen)
{
  rs_attrs a;
  *taps_out = NULL;
  const lm_rt_tensor *x = &in[0];
  const char *why = rs_parse(n, &a);
  if (why) return ops_eval_fail(err, errlen, n, "%s", why);
  double sc[MAXD], scale[MAXD], roi[2 * MAXD];
  int64_t sz[MAXD], osh[MAXD];
  int ns = -1, nz = -1, nr = -1;
  const lm_gattr *sattr = lm_gnode_attr(n, "scales");
  if (sattr && sattr->kind == LM_ATTR_FLOATS) {
    ns = sattr->n > MAXD ? -1 : sattr->n;
    for (int i = 0; i < ns; i++) sc[i] = sattr->floats[i];
  } else if (a.legacy) {
    ns = nin > 1 ? ops_rt_floats(&in[1], sc, MAXD) : -1;
  } else {
    if (nin > 1 && in[1].data) nr = ops_rt_floats(&in[1], roi, 2 * MAXD);
    if (nin > 2 && in[2].data) ns = ops_rt_floats(&in[2], sc, MAXD);
    if (ns <= 0 && nin > 3 && in[3].data) nz = ops_rt_ints(&in[3], sz, MAXD);
  }
  why = rs_sizes(n, &a, nd, x->shape, sc, ns, sz, nz, scale, osh);
  if (why) return ops_eval_fail(err, errlen, n, "%s", why);
  for (int k = 0; k < nd; k++)
    if (osh[k] != osh_want[k])
      return ops_eval_fail(err, errlen, n, "output extent %lld on axis %d, resize gives %lld",
                           (long long)osh_want[k], k, (long long)osh[k]);
  /* roi: [starts, ends] over all axes, or over the listed axes (18). */
  double rlo[MAXD], rhi[MAXD];
  for (int k = 0; k < nd; k++) {
    rlo[k] = 0;
    rhi[k] = 1;
  }
  if (a.ctm == CTM_TF_CROP && nr > 0) {
    int na;
    const int64_t *ax = lm_gnode_attr_ints(n, "axes", &na);
    if (!ax) na = nd;
    if (nr != 2 * na) return ops_eval_fail(err, errlen, n, "roi has the wrong length");
    for (int i = 0; i < na; i++) {
      int k = i;
      if (ax && !ops_axis(ax[i], nd, &k)) return ops_eval_fail(err, errlen, n, "bad axes");
      rlo[k] = roi[i];
      rhi[k] = roi[i + na];
    }
  }
  int64_t ttl = 0;
  for (int k = 0; k < nd; k++) {
    base[k] = ttl;
    ttl += osh[k];
  }
  rs_tap *taps = malloc(sizeof *taps * (size_t)(ttl ? ttl : 1));
  if (!taps) return ops_eval_fail(err, errlen, n, "out of memory");
  for (int k = 0; k < nd; k++) {
    /* An axis with scale 1 and no crop maps each index onto itself in
    ** every mode: one tap. */
    if (osh[k] == x->shape[k] && scale[k] == 1 && a.ctm != CTM_TF_CROP && a.ctm != CTM_TF_NN) {
      for (int64_t o = 0; o < osh[k]; o++)
        taps[base[k] + o] = (rs_tap){.ntap = 1, .idx = {o}, .w = {1}};
      continue;
    }
    rs_axis_taps(&a, scale[k], x->shape[k], osh[k], rlo[k], rhi[k], &taps[base[k]]);
  }
  *ap = a;
  *taps_out = taps;
  return LM_OK;
}

int lm_resize_taps(const lm_gnode *n, const lm_rt_tensor *in, int nin, const int64_t *oshape,
                   int **ntap, int64_t **idx, double **w, int64_t *base, char *err,
                   size_t errlen)
{
  int nd = in[0].ndim;
  rs_attrs a;
  rs_tap *taps;
  *ntap = NULL;
  *idx = NULL;
  *w = NULL;
  int st = rs_build(n, in, nin, nd, oshape, &a, &taps, base, err, errlen);
  if (st < 0) return st;
  if (a.ctm == CTM_TF_CROP) {
    free(taps);
    return ops_eval_fail(err, errlen, n, "coordinate_transformation_mode tf_crop_and_resize "
                         "is not supported here");
  }
  int64_t ttl = 0;
  for (int k = 0; k < nd; k++) ttl += oshape[k];
  *ntap = malloc(sizeof **ntap * (size_t)(ttl ? ttl : 1));
  *idx = calloc((size_t)(ttl ? ttl : 1) * 4, sizeof **idx);
  *w = calloc((size_t)(ttl ? ttl : 1) * 4, sizeof **w);
  if (!*ntap || !*idx || !*w) {
    free(taps);
    free(*ntap);
    free(*idx);
    free(*w);
    *ntap = NULL;
    *idx = NULL;
    *w = NULL;
    return ops_eval_fail(err, errlen, n, "out of memory");
  }
  for (int64_t t = 0; t < ttl; t++) {
    (*ntap)[t] = taps[t].ntap;
    for (int k = 0; k < taps[t].ntap; k++) {
      (*idx)[4 * t + k] = taps[t].idx[k];
      (*w)[4 * t + k] = taps[t].w[k];
    }
  }
  free(taps);
  return LM_OK;
}

static int eval_resize(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data || x->dt != LM_F32) return ops_eval_fail(err, errlen, n, "input X must be float32");
  int nd = x->ndim;
  rs_attrs a;
  rs_tap *taps;
  int64_t base[MAXD], osh[MAXD];
  for (int k = 0; k < nd; k++) osh[k] = out[0].shape[k];
  int st0 = rs_build(n, in, nin, nd, osh, &a, &taps, base, err, errlen);
  if (st0 < 0) return st0;
  if (a.ctm != CTM_TF_CROP) {
    int st = rs_separable(x, &out[0], osh, taps, base);
    free(taps);
    return st ? ops_eval_fail(err, errlen, n, "out of memory") : LM_OK;
  }
  int64_t istr[MAXD];
  ops_strides(nd, x->shape, istr);
  int64_t total = ops_rt_numel(&out[0]);
  const float *src = x->data;
  float *dst = out[0].data;
  float extra = (float)a.extrapolation;
#pragma omp parallel for schedule(static) if (total > OPS_PAR_MIN)
  for (int64_t o = 0; o < total; o++) {
    const rs_tap *tp[MAXD];
    int64_t rem = o;
    bool outside = false;
    int64_t combos = 1;
    for (int k = nd - 1; k >= 0; k--) {
      tp[k] = &taps[base[k] + rem % osh[k]];
      rem /= osh[k];
      if (tp[k]->outside) outside = true;
      combos *= tp[k]->ntap;
    }
    if (outside) {
      dst[o] = extra;
      continue;
    }
    double acc = 0;
    for (int64_t c = 0; c < combos; c++) {
      int64_t cc = c, off = 0;
      double w = 1;
      for (int k = nd - 1; k >= 0; k--) {
        int t = (int)(cc % tp[k]->ntap);
        cc /= tp[k]->ntap;
        off += tp[k]->idx[t] * istr[k];
        w *= tp[k]->w[t];
      }
      acc += w * src[off];
    }
    dst[o] = (float)acc;
  }
  free(taps);
  return LM_OK;
}

const lm_cpu_kernel lm_ops_resize[] = {
  {"Resize", infer_resize, eval_resize, false},
  {"Upsample", infer_resize, eval_resize, false},
  {NULL, NULL, NULL, false},
};
