/* Box copy with padding: the shared kernel of the crops, pads and patch
 * samplers (semantics.md §8). */
#include "crop_box.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xf_util.h"

int xf_arg_pad_mode(lm_op_ctx *ctx, const char *opt, xf_pad_mode *mode)
{
  const char *s = lm_arg_string(ctx, opt);
  if (!s || !strcmp(s, "constant")) *mode = XF_PAD_CONSTANT;
  else if (!strcmp(s, "edge") || !strcmp(s, "replicate")) *mode = XF_PAD_EDGE;
  else if (!strcmp(s, "reflect")) *mode = XF_PAD_REFLECT;
  else if (!strcmp(s, "symmetric")) *mode = XF_PAD_SYMMETRIC;
  else
    return lm_ctx_error(ctx, LM_EINVAL, "option '%s' = '%s' is not one of "
                        "'constant', 'edge', 'reflect', 'symmetric'", opt, s);
  return LM_OK;
}

int xf_spatial_dims(const lm_tensor *t, int hint)
{
  int nd = lm_tensor_ndim(t);
  const char *lay = lm_tensor_layout(t);
  int len = (int)strlen(lay), k = 0;
  if (len == nd && nd > 0) {
    while (k < len && k < 3 && strchr("XYZ", lay[len - 1 - k])) k++;
    if (k > 0) return k;
  }
  if (hint > 0) return hint <= nd ? hint : nd;
  return nd < 3 ? nd : 3;
}

void xf_format_ints(char *buf, size_t cap, const int64_t *v, int n)
{
  size_t used = 0;
  buf[0] = 0;
  for (int i = 0; i < n && used < cap; i++)
    used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? "," : "",
                             (long long)v[i]);
}

int xf_arg_spatial_ints(lm_op_ctx *ctx, const char *opt, int nsp, int64_t def,
                        int64_t *out)
{
  for (int d = 0; d < nsp; d++) out[d] = def;
  if (!lm_arg_is_set(ctx, opt)) return LM_OK;
  int n = 0;
  const double *v = lm_arg_numbers(ctx, opt, &n);
  if (n != 1 && n != nsp)
    return lm_ctx_error(ctx, LM_EINVAL, "option '%s' has %d values; give 1 "
                        "or %d (one per spatial dim)", opt, n, nsp);
  for (int d = 0; d < nsp; d++) {
    double x = v[n == 1 ? 0 : d];
    if (!isfinite(x) || x != floor(x) || fabs(x) > 1e15)
      return lm_ctx_error(ctx, LM_EINVAL, "option '%s' value %d (%g) is not "
                          "an integer", opt, n == 1 ? 1 : d + 1, x);
    out[d] = (int64_t)x;
  }
  return LM_OK;
}

void xf_box_affine(const double in[16], int nsp, const int64_t *box_start,
                   double out[16])
{
  memcpy(out, in, 16 * sizeof(double));
  for (int r = 0; r < 3; r++)
    for (int d = 0; d < nsp && d < 3; d++)
      out[r * 4 + 3] += in[r * 4 + d] * (double)box_start[d];
}

int xf_trace_push_box(lm_tensor *out, const char *op, const lm_tensor *in,
                      int nsp, const int64_t *box_start,
                      const int64_t *box_end, const char *extra)
{
  char s[160], e[160], params[512];
  xf_format_ints(s, sizeof s, box_start, nsp);
  xf_format_ints(e, sizeof e, box_end, nsp);
  snprintf(params, sizeof params, "box_start=%s;box_end=%s%s%s", s, e,
           extra ? ";" : "", extra ? extra : "");
  return lm_tensor_trace_push(out, op, params, lm_tensor_ndim(in),
                              lm_tensor_shape(in), lm_tensor_affine(in));
}

typedef struct box_job {
  int nd, fast;               /* dims; the dst dim walked in rows */
  const int64_t *shape;       /* dst shape */
  const int64_t *sst, *dst_st;/* element strides */
  int64_t *map[LM_MAX_DIMS];  /* dst index -> src index or -1 */
  int64_t run_lo, run_hi;     /* along `fast`: map[o] = o + shift here */
  const char *src;
  char *dst;
  size_t es;
  unsigned char fill[8];      /* the constant, in the dtype */
} box_job;

static inline void put(char *d, const char *s, size_t es)
{
  switch (es) {
  case 1: *d = *s; break;
  case 2: memcpy(d, s, 2); break;
  case 4: memcpy(d, s, 4); break;
  default: memcpy(d, s, 8); break;
  }
}

static int box_rows(int64_t begin, int64_t end, void *arg)
{
  const box_job *j = arg;
  const int f = j->fast;
  const int64_t nf = j->shape[f], sf = j->sst[f], df = j->dst_st[f];
  const size_t es = j->es;
  for (int64_t row = begin; row < end; row++) {
    /* Unravel the row over the other dims (last fastest). */
    int64_t r = row, soff = 0, doff = 0;
    bool outside = false;
    for (int d = j->nd - 1; d >= 0; d--) {
      if (d == f) continue;
      int64_t i = r % j->shape[d];
      r /= j->shape[d];
      int64_t si = j->map[d][i];
      if (si < 0) outside = true;
      soff += si * j->sst[d];
      doff += i * j->dst_st[d];
    }
    char *dp = j->dst + doff * (int64_t)es;
    if (outside) {
      for (int64_t o = 0; o < nf; o++)
        put(dp + o * df * (int64_t)es, (const char *)j->fill, es);
      continue;
    }
    const char *sp = j->src + soff * (int64_t)es;
    const int64_t *m = j->map[f];
    for (int64_t o = 0; o < j->run_lo; o++)
      put(dp + o * df * (int64_t)es,
          m[o] < 0 ? (const char *)j->fill : sp + m[o] * sf * (int64_t)es, es);
    if (j->run_hi > j->run_lo) {
      int64_t o0 = j->run_lo, n = j->run_hi - j->run_lo;
      if (sf == 1 && df == 1) {
        memcpy(dp + o0 * (int64_t)es, sp + m[o0] * (int64_t)es,
               (size_t)n * es);
      } else {
        for (int64_t o = o0; o < j->run_hi; o++)
          put(dp + o * df * (int64_t)es, sp + m[o] * sf * (int64_t)es, es);
      }
    }
    for (int64_t o = j->run_hi > j->run_lo ? j->run_hi : j->run_lo; o < nf;
         o++)
      put(dp + o * df * (int64_t)es,
          m[o] < 0 ? (const char *)j->fill : sp + m[o] * sf * (int64_t)es, es);
  }
  return LM_OK;
}

int xf_crop_box_into(lm_op_ctx *ctx, lm_tensor *in, int nsp,
                     const int64_t *box_start, xf_pad_mode mode, double value,
                     lm_tensor *dst)
{
  const int nd = lm_tensor_ndim(in);
  const int64_t *ish = lm_tensor_shape(in), *dsh = lm_tensor_shape(dst);
  if (lm_tensor_ndim(dst) != nd || lm_tensor_dtype(dst) != lm_tensor_dtype(in))
    return lm_ctx_error(ctx, LM_EINTERNAL, "box copy: output does not match "
                        "the input's dims and dtype");
  if (lm_tensor_numel(dst) == 0) return LM_OK;
  box_job j;
  memset(&j, 0, sizeof j);
  j.nd = nd;
  j.shape = dsh;
  j.sst = lm_tensor_strides(in);
  j.dst_st = lm_tensor_strides(dst);
  j.src = lm_tensor_data(in);
  j.dst = lm_tensor_data(dst);
  j.es = lm_dtype_size(lm_tensor_dtype(in));
  xf_store_f64(&value, j.fill, (int64_t)j.es, lm_tensor_dtype(in), 1);
  /* Walk rows along the output's fastest dim of size > 1. */
  j.fast = nd - 1;
  for (int d = 0; d < nd; d++)
    if (dsh[d] > 1 && (dsh[j.fast] <= 1 || j.dst_st[d] < j.dst_st[j.fast]))
      j.fast = d;
  int64_t total = 0;
  for (int d = 0; d < nd; d++) total += dsh[d];
  int64_t *maps = malloc(sizeof(int64_t) * (size_t)total);
  if (!maps) return lm_ctx_error(ctx, LM_ENOMEM, "cannot allocate index maps");
  int64_t used = 0;
  for (int d = 0; d < nd; d++) {
    int sd = d - (nd - nsp); /* spatial axis, or < 0 for a leading dim */
    if (sd < 0 && dsh[d] != ish[d]) {
      free(maps);
      return lm_ctx_error(ctx, LM_EINTERNAL, "box copy: leading dim %d "
                          "differs", d);
    }
    j.map[d] = maps + used;
    used += dsh[d];
    for (int64_t o = 0; o < dsh[d]; o++)
      j.map[d][o] = sd < 0 ? o : xf_pad_index(o + box_start[sd], ish[d], mode);
  }
  /* The run along the fast dim where the source is the input itself. */
  int sf = j.fast - (nd - nsp);
  int64_t shift = sf < 0 ? 0 : box_start[sf], nf = dsh[j.fast];
  int64_t lo = -shift < 0 ? 0 : -shift, hi = ish[j.fast] - shift;
  if (hi > nf) hi = nf;
  if (lo > nf) lo = nf;
  if (hi < lo) hi = lo;
  j.run_lo = lo;
  j.run_hi = hi;
  int64_t rows = lm_tensor_numel(dst) / nf;
  int64_t grain = (XF_GRAIN + nf - 1) / nf;
  int st = lm_parallel_for(lm_ctx_engine(ctx), ctx, rows, grain ? grain : 1,
                           box_rows, &j);
  free(maps);
  return st;
}

int xf_crop_box(lm_op_ctx *ctx, lm_tensor *in, int nsp,
                const int64_t *box_start, const int64_t *box_size,
                xf_pad_mode mode, double value, lm_tensor **out)
{
  const int nd = lm_tensor_ndim(in);
  int64_t shape[LM_MAX_DIMS];
  int order[LM_MAX_DIMS];
  for (int d = 0; d < nd; d++)
    shape[d] = d < nd - nsp ? lm_tensor_shape(in)[d]
                            : box_size[d - (nd - nsp)];
  xf_memory_order(in, order);
  lm_tensor *t = NULL;
  int st = lm_tensor_new_ordered(lm_ctx_engine(ctx), lm_tensor_dtype(in), nd,
                                 shape, order, LM_CPU, &t);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  st = xf_crop_box_into(ctx, in, nsp, box_start, mode, value, t);
  if (st < 0) {
    lm_tensor_release(t);
    return st;
  }
  double aff[16];
  xf_box_affine(lm_tensor_affine(in), nsp, box_start, aff);
  lm_tensor_set_affine(t, aff);
  lm_tensor_set_layout(t, lm_tensor_layout(in));
  lm_tensor_trace_copy(t, in);
  *out = t;
  return LM_OK;
}

int xf_result_ints(lm_op_ctx *ctx, const char *name, const int64_t *v, int n)
{
  double buf[LM_MAX_DIMS * 4];
  double *d = n <= (int)(sizeof buf / sizeof buf[0])
                  ? buf : malloc(sizeof(double) * (size_t)(n ? n : 1));
  if (!d) return lm_ctx_error(ctx, LM_ENOMEM, "cannot allocate results");
  for (int i = 0; i < n; i++) d[i] = (double)v[i];
  lm_params *res = lm_ctx_results(ctx);
  int st = res ? lm_params_set_numbers(res, name, d, n) : LM_ENOMEM;
  if (d != buf) free(d);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot store result '%s'", name);
  return LM_OK;
}

int xf_crop_box_output(lm_op_ctx *ctx, lm_tensor *in, int nsp,
                       const int64_t *box_start, const int64_t *box_size,
                       xf_pad_mode mode, double value, const char *op,
                       const char *extra, int slot)
{
  lm_tensor *out = NULL;
  int64_t end[3];
  for (int d = 0; d < nsp; d++) end[d] = box_start[d] + box_size[d];
  int st = xf_crop_box(ctx, in, nsp, box_start, box_size, mode, value, &out);
  if (st < 0) return st;
  st = xf_trace_push_box(out, op, in, nsp, box_start, end, extra);
  if (st >= 0 && slot == 0) {
    st = xf_result_ints(ctx, "box_start", box_start, nsp);
    if (st >= 0) st = xf_result_ints(ctx, "box_end", end, nsp);
  }
  if (st < 0) {
    lm_tensor_release(out);
    return st == LM_ENOMEM ? lm_ctx_error(ctx, st, "out of memory") : st;
  }
  return lm_ctx_set_output(ctx, slot, out);
}
