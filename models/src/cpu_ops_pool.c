/* Pooling and padding: MaxPool (with Indices), AveragePool,
 * GlobalAveragePool, GlobalMaxPool, Pad (constant, reflect, edge, wrap).
 * Spatial rank 1 to 3 (any rank up to LM_MAX_DIMS - 2 works).  Each
 * (n, c) slice is one OpenMP work item. */
#include "cpu_ops_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXS (LM_MAX_DIMS - 2)

typedef struct pool_geom {
  int nsp;
  int64_t in[MAXS], out[MAXS], k[MAXS], s[MAXS], d[MAXS], lo[MAXS], hi[MAXS];
} pool_geom;

/* Output extents and explicit pads from the attributes (shared with the
** conv file's logic, which also handles output_padding). */
static const char *pool_geometry(const lm_gnode *n, int nsp, const int64_t *in, bool dil_ok,
                                 pool_geom *p)
{
  int cnt;
  const int64_t *k = lm_gnode_attr_ints(n, "kernel_shape", &cnt);
  if (!k || cnt != nsp) return "attribute kernel_shape is missing or has the wrong length";
  const int64_t *s = lm_gnode_attr_ints(n, "strides", &cnt);
  if (s && cnt != nsp) return "attribute strides has the wrong length";
  const int64_t *d = lm_gnode_attr_ints(n, "dilations", &cnt);
  if (d && cnt != nsp) return "attribute dilations has the wrong length";
  if (d && !dil_ok)
    for (int i = 0; i < nsp; i++)
      if (d[i] != 1) return "attribute dilations is not supported for this op";
  const int64_t *pads = lm_gnode_attr_ints(n, "pads", &cnt);
  if (pads && cnt != 2 * nsp) return "attribute pads has the wrong length";
  const char *ap = lm_gnode_attr_string(n, "auto_pad", "NOTSET");
  bool ceil_mode = lm_gnode_attr_int(n, "ceil_mode", 0) != 0;
  p->nsp = nsp;
  for (int i = 0; i < nsp; i++) {
    p->in[i] = in[i];
    p->k[i] = k[i];
    p->s[i] = s ? s[i] : 1;
    p->d[i] = d ? d[i] : 1;
    if (p->k[i] < 1 || p->s[i] < 1 || p->d[i] < 1) return "kernel, strides and dilations must be >= 1";
    int64_t eff = (p->k[i] - 1) * p->d[i] + 1;
    if (in[i] < 0) {
      p->out[i] = -1;
      p->lo[i] = p->hi[i] = 0;
      continue;
    }
    if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
      p->out[i] = (in[i] + p->s[i] - 1) / p->s[i];
      int64_t total = (p->out[i] - 1) * p->s[i] + eff - in[i];
      if (total < 0) total = 0;
      p->lo[i] = !strcmp(ap, "SAME_UPPER") ? total / 2 : (total + 1) / 2;
      p->hi[i] = total - p->lo[i];
    } else if (!strcmp(ap, "VALID")) {
      p->lo[i] = p->hi[i] = 0;
      p->out[i] = in[i] >= eff ? (in[i] - eff) / p->s[i] + 1 : 0;
    } else if (!strcmp(ap, "NOTSET")) {
      p->lo[i] = pads ? pads[i] : 0;
      p->hi[i] = pads ? pads[i + nsp] : 0;
      int64_t span = in[i] + p->lo[i] + p->hi[i] - eff;
      if (span < 0) return "the kernel is larger than the padded input";
      if (ceil_mode) {
        p->out[i] = (span + p->s[i] - 1) / p->s[i] + 1;
        /* The last window must start inside the input or the left pad. */
        if ((p->out[i] - 1) * p->s[i] >= in[i] + p->lo[i]) p->out[i]--;
      } else {
        p->out[i] = span / p->s[i] + 1;
      }
    } else {
      return "attribute auto_pad is not NOTSET, SAME_UPPER, SAME_LOWER or VALID";
    }
  }
  return NULL;
}

static int infer_pool(lm_graph *g, const lm_gnode *n, bool dil_ok)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input X is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  if (x->ndim < 3 || x->ndim > LM_MAX_DIMS)
    return ops_fail(g, n, "input X '%s' has %d dims (N, C, spatial...)", x->name, x->ndim);
  pool_geom p;
  const char *why = pool_geometry(n, x->ndim - 2, x->shape + 2, dil_ok, &p);
  if (why) return ops_fail(g, n, "%s", why);
  int64_t sh[LM_MAX_DIMS] = {x->shape[0], x->shape[1]};
  for (int i = 0; i < p.nsp; i++) sh[2 + i] = p.out[i];
  ops_set_out(g, n, 0, x->dt, x->ndim, sh);
  ops_set_out(g, n, 1, LM_I64, x->ndim, sh);
  return LM_OK;
}

static int infer_maxpool(lm_graph *g, const lm_gnode *n) { return infer_pool(g, n, true); }

static int infer_avgpool(lm_graph *g, const lm_gnode *n) { return infer_pool(g, n, true); }

/* Decompose a flat index over ext[0..nsp) into idx. */
static void unflatten(int64_t flat, int nsp, const int64_t *ext, int64_t *idx)
{
  for (int i = nsp - 1; i >= 0; i--) {
    idx[i] = flat % ext[i];
    flat /= ext[i];
  }
}

static int eval_pool(const lm_gnode *n, const lm_rt_tensor *in, lm_rt_tensor *out, int nout,
                     bool is_max, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data || (x->dt != LM_F32 && !is_max))
    return ops_eval_fail(err, errlen, n, "input X must be float32");
  pool_geom p;
  const char *why = pool_geometry(n, x->ndim - 2, x->shape + 2, true, &p);
  if (why) return ops_eval_fail(err, errlen, n, "%s", why);
  bool include_pad = lm_gnode_attr_int(n, "count_include_pad", 0) != 0;
  int nsp = p.nsp;
  for (int i = 0; i < nsp; i++)
    if (out[0].shape[2 + i] != p.out[i] || out[0].ndim != x->ndim)
      return ops_eval_fail(err, errlen, n, "output extent differs from the pooling geometry");
  if (out[0].shape[0] != x->shape[0] || out[0].shape[1] != x->shape[1])
    return ops_eval_fail(err, errlen, n, "output N or C differs from X's");
  if (nout > 1 && out[1].data && !ops_rt_same_numel(&out[0], &out[1]))
    return ops_eval_fail(err, errlen, n, "Indices differ in size from Y");
  int64_t NC = x->shape[0] * x->shape[1];
  int64_t isz = ops_numel(nsp, p.in), osz = ops_numel(nsp, p.out), ksz = ops_numel(nsp, p.k);
  const float *src = x->data;
  float *dst = out[0].data;
  int64_t *ind = (is_max && nout > 1 && out[1].data) ? out[1].data : NULL;
  bool col_major = lm_gnode_attr_int(n, "storage_order", 0) != 0;
  bool f32 = x->dt == LM_F32;   /* other dtypes (MaxPool only) via double */
  /* Windows that lie inside the input (most of them) read taps at fixed
  ** offsets from the window's corner, with no bounds checks. */
  int64_t *tap_off = malloc(sizeof(int64_t) * (size_t)(ksz ? ksz : 1));
  if (!tap_off) return ops_eval_fail(err, errlen, n, "out of memory");
  int64_t istr[MAXS];
  ops_strides(nsp, p.in, istr);
  for (int64_t kk = 0; kk < ksz; kk++) {
    int64_t ki[MAXS];
    unflatten(kk, nsp, p.k, ki);
    tap_off[kk] = 0;
    for (int i = 0; i < nsp; i++) tap_off[kk] += ki[i] * p.d[i] * istr[i];
  }
  bool fast_ok = f32 && !ind && ksz > 0;
#pragma omp parallel for schedule(dynamic, 1) if (NC * osz * ksz > OPS_PAR_MIN)
  for (int64_t nc = 0; nc < NC; nc++) {
    for (int64_t o = 0; o < osz; o++) {
      int64_t oi[MAXS], ki[MAXS];
      unflatten(o, nsp, p.out, oi);
      if (fast_ok) {
        int64_t corner = 0;
        bool inside = true;
        for (int i = 0; i < nsp; i++) {
          int64_t st = oi[i] * p.s[i] - p.lo[i];
          if (st < 0 || st + (p.k[i] - 1) * p.d[i] >= p.in[i]) inside = false;
          corner += st * istr[i];
        }
        if (inside) {
          const float *xs = src + nc * isz + corner;
          if (is_max) {
            float m = xs[tap_off[0]];
            for (int64_t kk = 1; kk < ksz; kk++)
              if (xs[tap_off[kk]] > m) m = xs[tap_off[kk]];
            dst[nc * osz + o] = m;
          } else {
            double sum = 0;
            for (int64_t kk = 0; kk < ksz; kk++) sum += xs[tap_off[kk]];
            dst[nc * osz + o] = (float)(sum / (double)ksz);
          }
          continue;
        }
      }
      double best = -INFINITY;
      int64_t best_at = -1, best_col = 0;
      double sum = 0;
      int64_t cnt = 0, cnt_pad = 0;
      for (int64_t kk = 0; kk < ksz; kk++) {
        unflatten(kk, nsp, p.k, ki);
        int64_t flat = 0, col = 0, pos[MAXS];
        bool inside = true, in_padded = true;
        for (int i = 0; i < nsp; i++) {
          pos[i] = oi[i] * p.s[i] - p.lo[i] + ki[i] * p.d[i];
          if (pos[i] < 0 || pos[i] >= p.in[i]) inside = false;
          if (pos[i] >= p.in[i] + p.hi[i]) in_padded = false;
          flat = flat * p.in[i] + pos[i];
        }
        if (in_padded) cnt_pad++;
        if (!inside) continue;
        double v = f32 ? src[nc * isz + flat] : ops_get(x, nc * isz + flat);
        if (is_max) {
          if (v > best || best_at < 0) {
            best = v;
            best_at = flat;
            /* storage_order=1: Indices count the spatial axes column-major */
            for (int i = nsp - 1; i >= 0; i--) col = col * p.in[i] + pos[i];
            best_col = col;
          }
        } else {
          sum += v;
          cnt++;
        }
      }
      if (is_max) {
        if (f32) dst[nc * osz + o] = (float)best;
        else ops_put(&out[0], nc * osz + o, best);
        if (ind) ind[nc * osz + o] = best_at < 0 ? 0 : nc * isz + (col_major ? best_col : best_at);
      } else {
        int64_t div = include_pad ? cnt_pad : cnt;
        dst[nc * osz + o] = div ? (float)(sum / (double)div) : 0.0f;
      }
    }
  }
  free(tap_off);
  return LM_OK;
}

static int eval_maxpool(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                        int nout, char *err, size_t errlen)
{
  return eval_pool(n, in, out, nout, true, err, errlen);
}

static int eval_avgpool(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                        int nout, char *err, size_t errlen)
{
  return eval_pool(n, in, out, nout, false, err, errlen);
}

/* ---- global pools ------------------------------------------------------- */

static int infer_global(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input X is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  if (x->ndim < 2) return ops_fail(g, n, "input X '%s' has %d dims (N, C, ...)", x->name, x->ndim);
  int64_t sh[LM_MAX_DIMS];
  for (int k = 0; k < x->ndim; k++) sh[k] = k < 2 ? x->shape[k] : 1;
  ops_set_out(g, n, 0, x->dt, x->ndim, sh);
  return LM_OK;
}

static int eval_global(const lm_gnode *n, const lm_rt_tensor *in, lm_rt_tensor *out, bool is_max,
                       char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data || x->dt != LM_F32) return ops_eval_fail(err, errlen, n, "input X must be float32");
  int64_t NC = x->shape[0] * x->shape[1], sp = ops_numel(x->ndim - 2, x->shape + 2);
  if (ops_rt_numel(&out[0]) != NC) return ops_eval_fail(err, errlen, n, "output must hold N x C values");
  const float *src = x->data;
  float *dst = out[0].data;
#pragma omp parallel for schedule(static) if (NC * sp > OPS_PAR_MIN)
  for (int64_t nc = 0; nc < NC; nc++) {
    const float *xs = src + nc * sp;
    if (is_max) {
      float m = -INFINITY;
      for (int64_t i = 0; i < sp; i++)
        if (xs[i] > m || isnan(xs[i])) m = xs[i];
      dst[nc] = m;
    } else {
      double s = 0;
      for (int64_t i = 0; i < sp; i++) s += xs[i];
      dst[nc] = sp ? (float)(s / (double)sp) : 0.0f;
    }
  }
  return LM_OK;
}

static int eval_gap(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                    int nout, char *err, size_t errlen)
{
  return eval_global(n, in, out, false, err, errlen);
}

static int eval_gmp(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                    int nout, char *err, size_t errlen)
{
  return eval_global(n, in, out, true, err, errlen);
}

/* ---- Pad ---------------------------------------------------------------- */

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

static int pad_mode_of(const lm_gnode *n, pad_mode *m)
{
  const char *s = lm_gnode_attr_string(n, "mode", "constant");
  if (!strcmp(s, "constant")) *m = PAD_CONSTANT;
  else if (!strcmp(s, "reflect")) *m = PAD_REFLECT;
  else if (!strcmp(s, "edge")) *m = PAD_EDGE;
  else if (!strcmp(s, "wrap")) *m = PAD_WRAP;
  else return -1;
  return 0;
}

/* Per-axis begin/end pads from the attribute (opset < 11) or the pads
** input with the optional axes input (18). */
static const char *pads_expand(int ndim, const int64_t *raw, int cnt, const int64_t *axes, int na,
                               int64_t *lo, int64_t *hi)
{
  for (int k = 0; k < ndim; k++) lo[k] = hi[k] = 0;
  int np = na >= 0 ? na : ndim;
  if (cnt != 2 * np) return "pads must have 2 entries per padded axis";
  for (int i = 0; i < np; i++) {
    int a = i;
    if (na >= 0 && !ops_axis(axes[i], ndim, &a)) return "an axis is out of range";
    lo[a] = raw[i];
    hi[a] = raw[i + np];
  }
  return NULL;
}

static int infer_pad(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input data is missing");
  pad_mode m;
  if (pad_mode_of(n, &m))
    return ops_fail(g, n, "attribute mode '%s' is not constant, reflect, edge or wrap",
                    lm_gnode_attr_string(n, "mode", ""));
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int64_t raw[2 * LM_MAX_DIMS], axes[LM_MAX_DIMS], lo[LM_MAX_DIMS], hi[LM_MAX_DIMS];
  int cnt, na = -1;
  const int64_t *pa = lm_gnode_attr_ints(n, "pads", &cnt);
  if (pa) {
    if (cnt > 2 * LM_MAX_DIMS) return ops_fail(g, n, "attribute pads is too long");
    memcpy(raw, pa, sizeof(int64_t) * (size_t)cnt);
  } else {
    cnt = ops_in_ints(g, n, 1, raw, 2 * LM_MAX_DIMS);
    if (cnt < -1) return cnt;
    if (ops_in(g, n, 3)) {
      na = ops_in_ints(g, n, 3, axes, LM_MAX_DIMS);
      if (na < -1) return na;
      if (na == -1) cnt = -1;
    }
    if (cnt == -1) {
      if (!ops_in(g, n, 1)) return ops_fail(g, n, "input pads is missing");
      int64_t sh[LM_MAX_DIMS];
      for (int k = 0; k < x->ndim; k++) sh[k] = -1;
      ops_set_out(g, n, 0, x->dt, x->ndim, sh);
      return LM_OK;
    }
  }
  const char *why = pads_expand(x->ndim, raw, cnt, axes, na, lo, hi);
  if (why) return ops_fail(g, n, "%s", why);
  int64_t sh[LM_MAX_DIMS];
  for (int k = 0; k < x->ndim; k++) {
    sh[k] = x->shape[k] < 0 ? -1 : x->shape[k] + lo[k] + hi[k];
    if (sh[k] < -1 || (x->shape[k] >= 0 && sh[k] < 0))
      return ops_fail(g, n, "negative pads remove more than axis %d holds", k);
    if (m == PAD_REFLECT && x->shape[k] >= 0 && (lo[k] > 0 || hi[k] > 0) &&
        (x->shape[k] < 2 || lo[k] >= x->shape[k] || hi[k] >= x->shape[k]))
      return ops_fail(g, n, "reflect pads on axis %d must be smaller than its extent %lld", k,
                      (long long)x->shape[k]);
    if ((m == PAD_EDGE || m == PAD_WRAP) && x->shape[k] == 0 && (lo[k] > 0 || hi[k] > 0))
      return ops_fail(g, n, "cannot %s-pad an empty axis %d", m == PAD_EDGE ? "edge" : "wrap", k);
  }
  ops_set_out(g, n, 0, x->dt, x->ndim, sh);
  return LM_OK;
}

/* Source index for output index o on an axis of extent dim with begin pad
** lo; -1 = the constant value. */
static int64_t pad_src(pad_mode m, int64_t o, int64_t lo, int64_t dim)
{
  int64_t i = o - lo;
  if (i >= 0 && i < dim) return i;
  switch (m) {
  case PAD_CONSTANT: return -1;
  case PAD_EDGE: return i < 0 ? 0 : dim - 1;
  case PAD_WRAP: return ((i % dim) + dim) % dim;
  case PAD_REFLECT:
    if (dim == 1) return 0;
    {
      int64_t period = 2 * (dim - 1);
      i = ((i % period) + period) % period;
      return i < dim ? i : period - i;
    }
  }
  return -1;
}

static int eval_pad(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                    int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data) return ops_eval_fail(err, errlen, n, "input data is missing");
  pad_mode m;
  if (pad_mode_of(n, &m)) return ops_eval_fail(err, errlen, n, "attribute mode is unknown");
  int64_t raw[2 * LM_MAX_DIMS], axes[LM_MAX_DIMS], lo[LM_MAX_DIMS], hi[LM_MAX_DIMS];
  int cnt, na = -1;
  double value = lm_gnode_attr_float(n, "value", 0);
  const int64_t *pa = lm_gnode_attr_ints(n, "pads", &cnt);
  if (pa) {
    if (cnt > 2 * LM_MAX_DIMS) return ops_eval_fail(err, errlen, n, "attribute pads is too long");
    memcpy(raw, pa, sizeof(int64_t) * (size_t)cnt);
  } else {
    cnt = nin > 1 ? ops_rt_ints(&in[1], raw, 2 * LM_MAX_DIMS) : -1;
    if (cnt < 0) return ops_eval_fail(err, errlen, n, "input pads must be int64");
    if (nin > 2 && in[2].data && ops_rt_numel(&in[2]) > 0) value = ops_get(&in[2], 0);
    if (nin > 3 && in[3].data && (na = ops_rt_ints(&in[3], axes, LM_MAX_DIMS)) < 0)
      return ops_eval_fail(err, errlen, n, "input axes must be int64");
  }
  const char *why = pads_expand(x->ndim, raw, cnt, axes, na, lo, hi);
  if (why) return ops_eval_fail(err, errlen, n, "%s", why);
  int nd = x->ndim;
  for (int k = 0; k < nd; k++)
    if (out[0].shape[k] != x->shape[k] + lo[k] + hi[k])
      return ops_eval_fail(err, errlen, n, "output extent on axis %d differs from the pads", k);
  size_t es = lm_dtype_size(x->dt);
  int64_t total = ops_rt_numel(&out[0]);
  if (total == 0) return LM_OK;
  /* The fill value as bytes of the dtype. */
  unsigned char fill[8] = {0};
  lm_rt_tensor ft = {.dt = x->dt, .ndim = 0, .data = fill};
  ops_put(&ft, 0, value);
  int64_t istr[LM_MAX_DIMS];
  ops_strides(nd, x->shape, istr);
  int64_t inner = nd ? out[0].shape[nd - 1] : 1, rows = total / inner;
  const char *src = x->data;
  char *dst = out[0].data;
#pragma omp parallel for schedule(static) if (total > OPS_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t off = 0, rr = r;
    bool fill_row = false;
    for (int k = nd - 2; k >= 0; k--) {
      int64_t o = rr % out[0].shape[k];
      rr /= out[0].shape[k];
      int64_t s = pad_src(m, o, lo[k], x->shape[k]);
      if (s < 0) fill_row = true;
      else off += s * istr[k];
    }
    char *po = dst + (size_t)(r * inner) * es;
    /* The part of the row inside the source is one copy; the pads around
    ** it go element by element. */
    int64_t dim = nd ? x->shape[nd - 1] : 1, l = nd ? lo[nd - 1] : 0;
    int64_t j0 = fill_row ? 0 : (l > 0 ? l : 0);
    int64_t j1 = fill_row ? 0 : (l + dim < inner ? l + dim : inner);
    if (j1 > j0) memcpy(po + (size_t)j0 * es, src + (size_t)(off + j0 - l) * es, (size_t)(j1 - j0) * es);
    for (int64_t j = 0; j < inner; j++) {
      if (j >= j0 && j < j1) {
        j = j1 - 1;
        continue;
      }
      int64_t s = fill_row ? -1 : nd ? pad_src(m, j, l, dim) : 0;
      memcpy(po + (size_t)j * es, s < 0 ? (const char *)fill : src + (size_t)(off + s) * es, es);
    }
  }
  return LM_OK;
}

const lm_cpu_kernel lm_ops_pool[] = {
  {"MaxPool", infer_maxpool, eval_maxpool, false},
  {"AveragePool", infer_avgpool, eval_avgpool, false},
  {"GlobalAveragePool", infer_global, eval_gap, false},
  {"GlobalMaxPool", infer_global, eval_gmp, false},
  {"Pad", infer_pad, eval_pad, false},
  {NULL, NULL, NULL, false},
};
