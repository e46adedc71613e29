/* ScaleByResolution rule='nnunet' on the GPU: the data loop that
 * resample_nnunet.c plans (xf_nnunet_loop), with nnU-Net's arithmetic as
 * resample_nnunet_kernels.c does it: skimage resize one axis at a time
 * (scipy's edge pre-padding and cubic prefilter, one thread per line; then
 * one thread per output value summing its taps in scipy's order), the
 * clip to the input's range (per plane with separate z), order 0 / 1
 * across slices, and the one-hot label vote per output voxel.  The tap
 * tables are the CPU's (nn_axis_init on the host).  Buffers are float64,
 * X fastest, one channel at a time. */
#include <math.h>
#include <string.h>

#include "cuda_util.h"
#include "resample_nnunet.h"
#include "resample_nnunet_kernels.h"

extern "C" int lmc_resample_copy(lm_op_ctx *ctx, lm_tensor *dst, const lm_tensor *src);

/* The cubic B-spline pole as resample_nnunet_kernels.c spells it. */
#define NN_POLE3 (-0.267949192431122706472553658494127633)

/* A tap table on the device. */
struct nn_dev_axis {
  const int64_t *idx;
  const double *w;
  int taps, order;
  int64_t n, m;
};

/* Dense X-fastest 3-D block geometry. */
struct nn_block {
  int64_t d[3];
  LMC_HD int64_t st(int k) const { return k == 0 ? 1 : k == 1 ? d[0] : d[0] * d[1]; }
  int64_t vol() const { return d[0] * d[1] * d[2]; }
};

LMC_HD void nn_unravel(const nn_block &b, int64_t o, int64_t i[3])
{
  i[0] = o % b.d[0];
  i[1] = (o / b.d[0]) % b.d[1];
  i[2] = o / (b.d[0] * b.d[1]);
}

/* ---- kernels --------------------------------------------------------------- */

/* One channel of the input (any dtype and strides) as float64. */
struct nn_load_kernel {
  const void *in;
  int dt;
  int64_t off, is[3];
  nn_block b;
  double *dst;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i[3];
    nn_unravel(b, o, i);
    dst[o] = lmc_load_f64(in, off + i[0] * is[0] + i[1] * is[1] + i[2] * is[2], dt);
  }
};

/* The lines along axis k padded by NN_PREPAD edge values each side. */
struct nn_pad_kernel {
  const double *src;
  nn_block sb, pb;  /* source and padded blocks */
  int k;
  double *dst;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i[3];
    nn_unravel(pb, o, i);
    int64_t s = i[k] - NN_PREPAD;
    i[k] = s < 0 ? 0 : s >= sb.d[k] ? sb.d[k] - 1 : s;
    dst[o] = src[i[0] + i[1] * sb.st(1) + i[2] * sb.st(2)];
  }
};

/* nn_spline3_prefilter on one line along axis k of the padded block. */
struct nn_prefilter_kernel {
  double *c;
  nn_block b;
  int k;
  double z, gain, z_n;
  LMC_HD void operator()(int64_t line) const
  {
    int o1 = k == 0 ? 1 : 0, o2 = k == 2 ? 1 : 2;
    int64_t i1 = line % b.d[o1], i2 = line / b.d[o1];
    double *p = c + i1 * b.st(o1) + i2 * b.st(o2);
    const int64_t s = b.st(k), n = b.d[k];
    if (n < 2) return;
#define C(i) p[(int64_t)(i) * s]
    for (int64_t i = 0; i < n; i++) C(i) = lmc_dmul(C(i), gain);
    double z_i = z;
    const double c0 = C(0);
    double acc = lmc_dadd(C(0), lmc_dmul(z_n, C(n - 1)));
    for (int64_t i = 1; i < n; i++) {
      acc = lmc_dadd(acc, lmc_dmul(z_i, lmc_dadd(C(i), lmc_dmul(z_n, C(n - 1 - i)))));
      z_i = lmc_dmul(z_i, z);
    }
    acc = lmc_dmul(acc, lmc_ddiv(z, lmc_dsub(1, lmc_dmul(z_n, z_n))));
    C(0) = lmc_dadd(acc, c0);
    for (int64_t i = 1; i < n; i++) C(i) = lmc_dadd(C(i), lmc_dmul(z, C(i - 1)));
    C(n - 1) = lmc_dmul(C(n - 1), lmc_ddiv(z, lmc_dsub(z, 1)));
    for (int64_t i = n - 2; i >= 0; i--) C(i) = lmc_dmul(z, lmc_dsub(C(i + 1), C(i)));
#undef C
  }
};

/* One output value of a resize along axis k: t = 0, t += line[idx] * w. */
struct nn_apply_kernel {
  const double *src;
  nn_block sb, ob;
  int k;
  nn_dev_axis a;
  double *dst;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i[3];
    nn_unravel(ob, o, i);
    int64_t ok = i[k];
    i[k] = 0;
    const double *line = src + i[0] + i[1] * sb.st(1) + i[2] * sb.st(2);
    int64_t s = sb.st(k);
    double t = 0.0;
    for (int j = 0; j < a.taps; j++)
      t = lmc_dadd(t, lmc_dmul(line[a.idx[ok * a.taps + j] * s], a.w[ok * a.taps + j]));
    dst[o] = t;
  }
};

/* The label vote over the corners of up to three axes: axes listed slowest
 * first (scipy's corner walk over nnU-Net's C-order array); coef =
 * 1.0 * w_slowest * ... * w_fastest.  Axes not resampled have naxes < 3. */
struct nn_vote_kernel {
  const double *src;
  nn_block sb, ob;
  int naxes, axis[3];
  nn_dev_axis a[3];
  double *dst;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i[3];
    nn_unravel(ob, o, i);
    double lab[8], coef[8];
    int t[3] = {0, 0, 0}, k = 0;
    int taps0 = a[0].taps, taps1 = naxes > 1 ? a[1].taps : 1, taps2 = naxes > 2 ? a[2].taps : 1;
    for (t[0] = 0; t[0] < taps0; t[0]++)
      for (t[1] = 0; t[1] < taps1; t[1]++)
        for (t[2] = 0; t[2] < taps2; t[2]++) {
          int64_t j[3] = {i[0], i[1], i[2]};
          double c = 1.0;
          for (int x = 0; x < naxes; x++) {
            int64_t ox = i[axis[x]];
            j[axis[x]] = a[x].idx[ox * a[x].taps + t[x]];
            c = lmc_dmul(c, a[x].w[ox * a[x].taps + t[x]]);
          }
          lab[k] = src[j[0] + j[1] * sb.st(1) + j[2] * sb.st(2)];
          coef[k++] = c;
        }
    dst[o] = nn_label_vote(lab, coef, k, false);
  }
};

/* Min and max of each group (a plane along axis g, or the whole block when
 * g < 0) ignoring NaN: partials per (group, chunk), then one thread per
 * group.  lohi: 2 per partial; any: 1 per partial. */
#define NN_CHUNK 4096
struct nn_minmax_partial_kernel {
  const double *src;
  nn_block b;
  int g;             /* group axis, -1: one group */
  int64_t glen, nchunk;
  double *lohi;
  int *any;
  LMC_HD void operator()(int64_t t) const
  {
    int64_t grp = t / nchunk, ck = t % nchunk;
    int64_t e0 = ck * NN_CHUNK, e1 = e0 + NN_CHUNK < glen ? e0 + NN_CHUNK : glen;
    double lo = INFINITY, hi = -INFINITY;
    int seen = 0;
    for (int64_t e = e0; e < e1; e++) {
      int64_t off;
      if (g < 0) {
        off = e;
      } else {
        /* the group's plane: the other two axes, the faster one first */
        int f = g == 0 ? 1 : 0, s = g == 2 ? 1 : 2;
        off = grp * b.st(g) + (e % b.d[f]) * b.st(f) + (e / b.d[f]) * b.st(s);
      }
      double x = src[off];
      if (x != x) continue;
      seen = 1;
      lo = x < lo ? x : lo;
      hi = x > hi ? x : hi;
    }
    lohi[2 * t] = lo;
    lohi[2 * t + 1] = hi;
    any[t] = seen;
  }
};

struct nn_minmax_combine_kernel {
  double *lohi;
  int *any;
  int64_t nchunk;
  LMC_HD void operator()(int64_t grp) const
  {
    double lo = INFINITY, hi = -INFINITY;
    int seen = 0;
    for (int64_t c = grp * nchunk; c < (grp + 1) * nchunk; c++) {
      if (!any[c]) continue;
      seen = 1;
      lo = lohi[2 * c] < lo ? lohi[2 * c] : lo;
      hi = lohi[2 * c + 1] > hi ? lohi[2 * c + 1] : hi;
    }
    /* the group's result in its first partial */
    lohi[2 * grp * nchunk] = lo;
    lohi[2 * grp * nchunk + 1] = hi;
    any[grp * nchunk] = seen;
  }
};

/* Clip to the group's range (when it had a number), in place. */
struct nn_clip_kernel {
  double *v;
  nn_block b;
  int g;
  const double *lohi;
  const int *any;
  int64_t nchunk;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t grp = 0;
    if (g >= 0) {
      int64_t i[3];
      nn_unravel(b, o, i);
      grp = i[g];
    }
    int64_t c = grp * nchunk;
    if (!any[c]) return;
    double x = v[o], lo = lohi[2 * c], hi = lohi[2 * c + 1];
    v[o] = x < lo ? lo : x > hi ? hi : x;
  }
};

/* Across slices: order 0 copies the source slice; order 1 interpolates
 * (data: 0.0 + s0 * w0 + s1 * w1; labels: the strict vote of the two). */
struct nn_across_kernel {
  const double *src;
  nn_block sb, ob;
  int a;
  nn_dev_axis az;
  bool is_label;
  double *dst;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i[3];
    nn_unravel(ob, o, i);
    int64_t oz = i[a];
    i[a] = 0;
    const double *base = src + i[0] + i[1] * sb.st(1) + i[2] * sb.st(2);
    int64_t s = sb.st(a);
    if (az.taps == 1) {
      dst[o] = base[az.idx[oz] * s];
      return;
    }
    double s0 = base[az.idx[2 * oz] * s], s1 = base[az.idx[2 * oz + 1] * s];
    const double *w = az.w + 2 * oz;
    if (is_label) {
      double lab[2] = {s0, s1};
      dst[o] = nn_label_vote(lab, w, 2, true);
    } else {
      dst[o] = lmc_dadd(lmc_dadd(0.0, lmc_dmul(s0, w[0])), lmc_dmul(s1, w[1]));
    }
  }
};

/* The channel's result into the output (dense, X fastest), clipped in the
 * 3-D path. */
struct nn_store_kernel {
  const double *src;
  void *out;
  int dt;
  int64_t off;
  const double *lohi;  /* NULL: no clip */
  const int *any;
  LMC_HD void operator()(int64_t o) const
  {
    double x = src[o];
    if (lohi && any[0]) x = x < lohi[0] ? lohi[0] : x > lohi[1] ? lohi[1] : x;
    lmc_store_f64(out, off + o, dt, x);
  }
};

/* ---- host side -------------------------------------------------------------- */

/* Scratch allocations of one loop, freed together (stream-ordered). */
struct nn_scratch {
  lm_op_ctx *ctx;
  cudaStream_t s;
  void *p[24];
  int n;
  void *get(size_t bytes)
  {
    if (n >= 24) return NULL;
    void *q = lmc_scratch_alloc(ctx, s, bytes);
    if (q) p[n++] = q;
    return q;
  }
  void release()
  {
    for (int i = 0; i < n; i++) lmc_scratch_free(ctx, s, p[i]);
    n = 0;
  }
};

static int nn_upload(nn_scratch &sc, const nn_axis *a, nn_dev_axis *d)
{
  size_t cnt = (size_t)(a->m * a->taps);
  int64_t *idx = (int64_t *)sc.get(cnt * sizeof(int64_t));
  double *w = (double *)sc.get(cnt * sizeof(double));
  if (!idx || !w) return LM_ENOMEM;
  int st = lmc_copy_to_device(sc.ctx, sc.s, idx, a->idx, cnt * sizeof(int64_t));
  if (st >= 0) st = lmc_copy_to_device(sc.ctx, sc.s, w, a->w, cnt * sizeof(double));
  d->idx = idx;
  d->w = w;
  d->taps = a->taps;
  d->order = a->order;
  d->n = a->n;
  d->m = a->m;
  return st;
}

/* One skimage resize pass along axis k: src (block sb) -> *dst (new scratch). */
static int nn_pass(nn_scratch &sc, const double *src, const nn_block &sb, int k,
                   const nn_dev_axis &a, double **dst, nn_block *ob, cudaError_t *e)
{
  const double *line_src = src;
  nn_block lb = sb;
  if (a.order == 3) {
    lb.d[k] = sb.d[k] + 2 * NN_PREPAD;
    double *pad = (double *)sc.get(sizeof(double) * (size_t)lb.vol());
    if (!pad) return LM_ENOMEM;
    *e = lmc_for_each(sc.s, lb.vol(), nn_pad_kernel{src, sb, lb, k, pad});
    const double z = NN_POLE3;
    nn_prefilter_kernel f{pad, lb, k, z, (1.0 - z) * (1.0 - 1.0 / z), pow(z, (double)lb.d[k])};
    if (*e == cudaSuccess) *e = lmc_for_each(sc.s, lb.vol() / lb.d[k], f);
    line_src = pad;
  }
  *ob = sb;
  ob->d[k] = a.m;
  *dst = (double *)sc.get(sizeof(double) * (size_t)ob->vol());
  if (!*dst) return LM_ENOMEM;
  if (*e == cudaSuccess)
    *e = lmc_for_each(sc.s, ob->vol(), nn_apply_kernel{line_src, lb, *ob, k, a, *dst});
  return LM_OK;
}

/* Min / max per group; returns the partial arrays (group g's result at
 * index g * nchunk). */
static int nn_minmax(nn_scratch &sc, const double *src, const nn_block &b, int g, double **lohi,
                     int **any, int64_t *nchunk, cudaError_t *e)
{
  int64_t ngroups = g < 0 ? 1 : b.d[g], glen = b.vol() / ngroups;
  *nchunk = (glen + NN_CHUNK - 1) / NN_CHUNK;
  if (*nchunk < 1) *nchunk = 1;
  *lohi = (double *)sc.get(sizeof(double) * 2 * (size_t)(ngroups * *nchunk));
  *any = (int *)sc.get(sizeof(int) * (size_t)(ngroups * *nchunk));
  if (!*lohi || !*any) return LM_ENOMEM;
  *e = lmc_for_each(sc.s, ngroups * *nchunk,
                    nn_minmax_partial_kernel{src, b, g, glen, *nchunk, *lohi, *any});
  if (*e == cudaSuccess)
    *e = lmc_for_each(sc.s, ngroups, nn_minmax_combine_kernel{*lohi, *any, *nchunk});
  return LM_OK;
}

/* One channel: load, resample, store. */
static int nn_channel(nn_scratch &sc, const xf_nnunet_loop *l, const nn_dev_axis *ax,
                      const nn_dev_axis *ap, const nn_dev_axis *aq, const nn_dev_axis *az,
                      int64_t c, cudaError_t *e)
{
  nn_block nb = {{l->n[0], l->n[1], l->n[2]}};
  double *A = (double *)sc.get(sizeof(double) * (size_t)nb.vol());
  if (!A) return LM_ENOMEM;
  nn_load_kernel lk;
  memset(&lk, 0, sizeof lk);
  lk.in = lm_tensor_data(l->in);
  lk.dt = lm_tensor_dtype(l->in);
  lk.off = xf_nnunet_lead_offset(l->in, l->lead, c);
  for (int d = 0; d < 3; d++) lk.is[d] = lm_tensor_strides(l->in)[l->lead + d];
  lk.b = nb;
  lk.dst = A;
  *e = lmc_for_each(sc.s, nb.vol(), lk);
  double *res = NULL, *lohi = NULL;
  int *any = NULL;
  int64_t nchunk = 0;
  nn_block rb;
  int st = LM_OK;
  if (l->axis < 0) {
    if (l->is_label) {
      rb = nb;
      for (int d = 0; d < 3; d++) rb.d[d] = l->m[d];
      res = (double *)sc.get(sizeof(double) * (size_t)rb.vol());
      if (!res) return LM_ENOMEM;
      /* corners over (Z, Y, X): z slowest */
      nn_vote_kernel vk{A, nb, rb, 3, {2, 1, 0}, {ax[2], ax[1], ax[0]}, res};
      if (*e == cudaSuccess) *e = lmc_for_each(sc.s, rb.vol(), vk);
    } else {
      double *B, *C;
      nn_block bb, cb;
      if ((st = nn_minmax(sc, A, nb, -1, &lohi, &any, &nchunk, e)) < 0) return st;
      if ((st = nn_pass(sc, A, nb, 0, ax[0], &B, &bb, e)) < 0) return st;
      if ((st = nn_pass(sc, B, bb, 1, ax[1], &C, &cb, e)) < 0) return st;
      if ((st = nn_pass(sc, C, cb, 2, ax[2], &res, &rb, e)) < 0) return st;
    }
  } else {
    int a = l->axis, p = l->p, q = l->q;
    nn_block pb;  /* planes resized, slices not yet */
    double *P;
    if (l->is_label) {
      pb = nb;
      pb.d[p] = l->m[p];
      pb.d[q] = l->m[q];
      P = (double *)sc.get(sizeof(double) * (size_t)pb.vol());
      if (!P) return LM_ENOMEM;
      /* corners q outer, p inner */
      nn_vote_kernel vk{A, nb, pb, 2, {q, p, 0}, {*aq, *ap, *ap}, P};
      if (*e == cudaSuccess) *e = lmc_for_each(sc.s, pb.vol(), vk);
    } else {
      double *B;
      nn_block bb;
      if ((st = nn_minmax(sc, A, nb, a, &lohi, &any, &nchunk, e)) < 0) return st;
      if ((st = nn_pass(sc, A, nb, p, *ap, &B, &bb, e)) < 0) return st;
      if ((st = nn_pass(sc, B, bb, q, *aq, &P, &pb, e)) < 0) return st;
      if (*e == cudaSuccess)
        *e = lmc_for_each(sc.s, pb.vol(), nn_clip_kernel{P, pb, a, lohi, any, nchunk});
    }
    rb = pb;
    rb.d[a] = l->m[a];
    res = (double *)sc.get(sizeof(double) * (size_t)rb.vol());
    if (!res) return LM_ENOMEM;
    if (*e == cudaSuccess)
      *e = lmc_for_each(sc.s, rb.vol(), nn_across_kernel{P, pb, rb, a, *az, l->is_label, res});
    lohi = NULL; /* clipped already */
    any = NULL;
  }
  int64_t ovol = l->m[0] * l->m[1] * l->m[2];
  if (*e == cudaSuccess)
    *e = lmc_for_each(sc.s, ovol,
                      nn_store_kernel{res, lm_tensor_data(l->out), (int)lm_tensor_dtype(l->out),
                                      c * ovol, lohi, any});
  return st;
}

extern "C" int lmc_nnunet_loop(lm_op_ctx *ctx, const xf_nnunet_loop *l)
{
  if (l->same) return lmc_resample_copy(ctx, l->out, l->in);
  cudaStream_t s;
  int st = lmc_stream(ctx, &s);
  if (st < 0) return st;
  nn_scratch tabs = {ctx, s, {0}, 0};
  nn_dev_axis ax[3], ap, aq, az;
  memset(ax, 0, sizeof ax);
  memset(&ap, 0, sizeof ap);
  memset(&aq, 0, sizeof aq);
  memset(&az, 0, sizeof az);
  if (l->axis < 0) {
    for (int d = 0; d < 3 && st >= 0; d++) st = nn_upload(tabs, l->ax[d], &ax[d]);
  } else {
    st = nn_upload(tabs, l->ap, &ap);
    if (st >= 0) st = nn_upload(tabs, l->aq, &aq);
    if (st >= 0) st = nn_upload(tabs, l->az, &az);
  }
  cudaError_t e = cudaSuccess;
  for (int64_t c = 0; c < l->nch && st >= 0 && e == cudaSuccess; c++) {
    nn_scratch sc = {ctx, s, {0}, 0};
    st = nn_channel(sc, l, ax, &ap, &aq, &az, c, &e);
    sc.release();
  }
  tabs.release();
  if (e != cudaSuccess) return lmc_fail(ctx, "nnunet resampling kernel", e);
  return st;
}
