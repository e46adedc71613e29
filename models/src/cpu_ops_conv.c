/* Conv and ConvTranspose: exact shape inference (auto_pad, pads, strides,
 * dilations, group, output_padding, output_shape) and a direct reference
 * evaluation in double accumulation.  The fast path is oneDNN
 * (cpu_conv.h); this one serves constant folding and is the oracle in
 * tests.  One OpenMP work item per (n, output channel). */
#include "cpu_ops_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAXS (LM_MAX_DIMS - 2)

typedef struct conv_geom {
  int nsp;
  int64_t group;
  int64_t in[MAXS], out[MAXS], k[MAXS], s[MAXS], d[MAXS], lo[MAXS], hi[MAXS];
} conv_geom;

/* Geometry from X's spatial extents, W's kernel extents and the
** attributes.  transposed: ConvTranspose rules. */
static const char *conv_geometry(const lm_gnode *n, int nsp, const int64_t *in, const int64_t *wk,
                                 bool transposed, conv_geom *p)
{
  int cnt;
  const int64_t *ks = lm_gnode_attr_ints(n, "kernel_shape", &cnt);
  if (ks && cnt != nsp) return "attribute kernel_shape has the wrong length";
  const int64_t *s = lm_gnode_attr_ints(n, "strides", &cnt);
  if (s && cnt != nsp) return "attribute strides has the wrong length";
  const int64_t *d = lm_gnode_attr_ints(n, "dilations", &cnt);
  if (d && cnt != nsp) return "attribute dilations has the wrong length";
  const int64_t *pads = lm_gnode_attr_ints(n, "pads", &cnt);
  if (pads && cnt != 2 * nsp) return "attribute pads has the wrong length";
  const int64_t *op = lm_gnode_attr_ints(n, "output_padding", &cnt);
  if (op && cnt != nsp) return "attribute output_padding has the wrong length";
  const int64_t *os = lm_gnode_attr_ints(n, "output_shape", &cnt);
  if (os && cnt != nsp && cnt != nsp + 2) return "attribute output_shape has the wrong length";
  if (os && cnt == nsp + 2) os += 2;
  const char *ap = lm_gnode_attr_string(n, "auto_pad", "NOTSET");
  bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
  bool upper = !strcmp(ap, "SAME_UPPER");
  if (!same && strcmp(ap, "VALID") && strcmp(ap, "NOTSET"))
    return "attribute auto_pad is not NOTSET, SAME_UPPER, SAME_LOWER or VALID";
  p->nsp = nsp;
  p->group = lm_gnode_attr_int(n, "group", 1);
  if (p->group < 1) return "attribute group must be >= 1";
  for (int i = 0; i < nsp; i++) {
    p->in[i] = in[i];
    p->k[i] = ks ? ks[i] : wk[i];
    if (ks && wk[i] >= 0 && ks[i] != wk[i]) return "attribute kernel_shape differs from W's shape";
    p->s[i] = s ? s[i] : 1;
    p->d[i] = d ? d[i] : 1;
    if (p->s[i] < 1 || p->d[i] < 1) return "strides and dilations must be >= 1";
    p->lo[i] = pads && !same && strcmp(ap, "VALID") ? pads[i] : 0;
    p->hi[i] = pads && !same && strcmp(ap, "VALID") ? pads[i + nsp] : 0;
    if (in[i] < 0 || p->k[i] < 0) {
      p->out[i] = -1;
      continue;
    }
    int64_t eff = (p->k[i] - 1) * p->d[i] + 1;
    if (!transposed) {
      if (same) {
        p->out[i] = (in[i] + p->s[i] - 1) / p->s[i];
        int64_t total = (p->out[i] - 1) * p->s[i] + eff - in[i];
        if (total < 0) total = 0;
        p->lo[i] = upper ? total / 2 : (total + 1) / 2;
        p->hi[i] = total - p->lo[i];
      } else {
        int64_t span = in[i] + p->lo[i] + p->hi[i] - eff;
        if (span < 0) return "the kernel is larger than the padded input";
        p->out[i] = span / p->s[i] + 1;
      }
    } else {
      int64_t opad = op ? op[i] : 0;
      int64_t full = p->s[i] * (in[i] - 1) + opad + eff;
      if (os || same) {
        int64_t target = os ? os[i] : in[i] * p->s[i];
        /* A negative total (output_shape beyond the full result) pads
        ** zeros at the end, as the ONNX reference does: floor halves. */
        int64_t total = full - target;
        int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
        if (upper) {
          p->lo[i] = half;
          p->hi[i] = total - half;
        } else {
          p->lo[i] = total - half;
          p->hi[i] = half;
        }
        p->out[i] = target;
      } else {
        p->out[i] = full - p->lo[i] - p->hi[i];
        if (p->out[i] < 0) return "pads remove more than the output holds";
      }
    }
  }
  return NULL;
}

static int infer_conv_common(lm_graph *g, const lm_gnode *n, bool transposed)
{
  const lm_gvalue *x = ops_in(g, n, 0), *w = ops_in(g, n, 1);
  if (!x || !w) return ops_fail(g, n, "needs inputs X and W");
  if (!ops_in_known(g, n, 0) || !ops_in_known(g, n, 1)) return LM_OK;
  if (x->ndim < 3 || x->ndim > 2 + MAXS)
    return ops_fail(g, n, "input X '%s' has %d dims (N, C, spatial...)", x->name, x->ndim);
  if (w->ndim != x->ndim)
    return ops_fail(g, n, "input W '%s' has %d dims, X has %d", w->name, w->ndim, x->ndim);
  conv_geom p;
  const char *why = conv_geometry(n, x->ndim - 2, x->shape + 2, w->shape + 2, transposed, &p);
  if (why) return ops_fail(g, n, "%s", why);
  int64_t C = x->shape[1], M;
  if (!transposed) {
    M = w->shape[0];
    if (C >= 0 && w->shape[1] >= 0 && C != w->shape[1] * p.group)
      return ops_fail(g, n, "X has %lld channels, W '%s' expects %lld x group %lld", (long long)C,
                      w->name, (long long)w->shape[1], (long long)p.group);
    if (M >= 0 && M % p.group)
      return ops_fail(g, n, "W '%s' has %lld output channels, not a multiple of group %lld",
                      w->name, (long long)M, (long long)p.group);
  } else {
    M = w->shape[1] < 0 ? -1 : w->shape[1] * p.group;
    if (C >= 0 && w->shape[0] >= 0 && C != w->shape[0])
      return ops_fail(g, n, "X has %lld channels, W '%s' has %lld", (long long)C, w->name,
                      (long long)w->shape[0]);
  }
  const lm_gvalue *b = ops_in(g, n, 2);
  if (b && b->ndim >= 0 && M >= 0 && lm_gvalue_numel(b) >= 0 && lm_gvalue_numel(b) != M)
    return ops_fail(g, n, "input B '%s' has %lld elements for %lld output channels", b->name,
                    (long long)lm_gvalue_numel(b), (long long)M);
  int64_t sh[LM_MAX_DIMS] = {x->shape[0], M};
  for (int i = 0; i < p.nsp; i++) sh[2 + i] = p.out[i];
  ops_set_out(g, n, 0, x->dt, x->ndim, sh);
  return LM_OK;
}

static int infer_conv(lm_graph *g, const lm_gnode *n) { return infer_conv_common(g, n, false); }
static int infer_convt(lm_graph *g, const lm_gnode *n) { return infer_conv_common(g, n, true); }

static void unflatten(int64_t flat, int nsp, const int64_t *ext, int64_t *idx)
{
  for (int i = nsp - 1; i >= 0; i--) {
    idx[i] = flat % ext[i];
    flat /= ext[i];
  }
}

static int eval_conv_common(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                            bool transposed, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0], *w = &in[1];
  const lm_rt_tensor *b = nin > 2 && in[2].data ? &in[2] : NULL;
  if (nin < 2 || !x->data || !w->data) return ops_eval_fail(err, errlen, n, "needs inputs X and W");
  if (x->dt != LM_F32 || w->dt != LM_F32 || (b && b->dt != LM_F32))
    return ops_eval_fail(err, errlen, n, "float32 only");
  conv_geom p;
  const char *why = conv_geometry(n, x->ndim - 2, x->shape + 2, w->shape + 2, transposed, &p);
  if (why) return ops_eval_fail(err, errlen, n, "%s", why);
  int nsp = p.nsp;
  int64_t N = x->shape[0], C = x->shape[1], G = p.group;
  int64_t M = transposed ? w->shape[1] * G : w->shape[0];
  int64_t cpg = C / G, mpg = M / G;
  int64_t isz = ops_numel(nsp, p.in), osz = ops_numel(nsp, p.out), ksz = ops_numel(nsp, p.k);
  if (out[0].ndim != x->ndim || out[0].shape[0] != N || out[0].shape[1] != M || cpg * G != C ||
      (transposed ? w->shape[0] != C : w->shape[1] != cpg) || (b && ops_rt_numel(b) != M))
    return ops_eval_fail(err, errlen, n, "X, W, B and the output do not fit together");
  for (int i = 0; i < nsp; i++)
    if (out[0].shape[2 + i] != p.out[i] || w->shape[2 + i] != p.k[i])
      return ops_eval_fail(err, errlen, n, "output extent differs from the geometry");
  const float *src = x->data, *wt = w->data, *bias = b ? b->data : NULL;
  float *dst = out[0].data;
  int fail = 0;
#pragma omp parallel for schedule(dynamic, 1) if (N * M * osz * ksz > OPS_PAR_MIN)
  for (int64_t nm = 0; nm < N * M; nm++) {
    int64_t nn = nm / M, m = nm % M, grp = m / mpg;
    double *acc = calloc((size_t)(osz ? osz : 1), sizeof *acc);
    if (!acc) {
#pragma omp atomic write
      fail = 1;
      continue;
    }
    int64_t oi[MAXS], ki[MAXS], ii[MAXS];
    for (int64_t cc = 0; cc < cpg; cc++) {
      int64_t c = grp * cpg + cc;
      const float *xs = src + (nn * C + c) * isz;
      /* Conv W [M, C/G, k]; ConvTranspose W [C, M/G, k]. */
      const float *ws = transposed ? wt + (c * mpg + (m - grp * mpg)) * ksz
                                   : wt + (m * cpg + cc) * ksz;
      if (!transposed) {
        for (int64_t o = 0; o < osz; o++) {
          unflatten(o, nsp, p.out, oi);
          double s = 0;
          for (int64_t kk = 0; kk < ksz; kk++) {
            unflatten(kk, nsp, p.k, ki);
            int64_t flat = 0;
            bool inside = true;
            for (int i = 0; i < nsp && inside; i++) {
              int64_t pos = oi[i] * p.s[i] - p.lo[i] + ki[i] * p.d[i];
              if (pos < 0 || pos >= p.in[i]) inside = false;
              flat = flat * p.in[i] + pos;
            }
            if (inside) s += (double)xs[flat] * ws[kk];
          }
          acc[o] += s;
        }
      } else {
        for (int64_t q = 0; q < isz; q++) {
          unflatten(q, nsp, p.in, ii);
          double xv = xs[q];
          for (int64_t kk = 0; kk < ksz; kk++) {
            unflatten(kk, nsp, p.k, ki);
            int64_t flat = 0;
            bool inside = true;
            for (int i = 0; i < nsp && inside; i++) {
              int64_t pos = ii[i] * p.s[i] - p.lo[i] + ki[i] * p.d[i];
              if (pos < 0 || pos >= p.out[i]) inside = false;
              flat = flat * p.out[i] + pos;
            }
            if (inside) acc[flat] += xv * ws[kk];
          }
        }
      }
    }
    float *ys = dst + nm * osz;
    double bv = bias ? bias[m] : 0;
    for (int64_t o = 0; o < osz; o++) ys[o] = (float)(acc[o] + bv);
    free(acc);
  }
  if (fail) return ops_eval_fail(err, errlen, n, "out of memory");
  return LM_OK;
}

static int eval_conv(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                     int nout, char *err, size_t errlen)
{
  return eval_conv_common(n, in, nin, out, false, err, errlen);
}

static int eval_convt(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                      int nout, char *err, size_t errlen)
{
  return eval_conv_common(n, in, nin, out, true, err, errlen);
}

const lm_cpu_kernel lm_ops_conv[] = {
  {"Conv", infer_conv, eval_conv, false},
  {"ConvTranspose", infer_convt, eval_convt, false},
  {NULL, NULL, NULL, false},
};
