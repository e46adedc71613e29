/* The GPU plan's kernels (infer_kernels.h): per-element functors launched
 * with lmc_for_each, so the emulated plugin runs the same code on the host.
 * Activations are loaded from their storage type (float32, float16,
 * bfloat16) into float32, computed in float32 (norm statistics and
 * averages in float64, as the CPU ops), and stored back.  The direct
 * convolution is the emulated plugin's convolution and the real plugin's
 * fallback when cuDNN rejects a convolution. */
#include "infer_kernels.h"

#include <float.h>

#include "cpu_conv.h"
#include "cuda_util.h"

/* ---- storage types and activations ----------------------------------------- */

LMC_HD float ldv(const void *p, int64_t i, int dt)
{
  if (dt == LM_F32) return ((const float *)p)[i];
  if (dt == LM_F16) return lmc_f16_to_f32(((const uint16_t *)p)[i]);
  return lmc_bf16_to_f32(((const uint16_t *)p)[i]);
}

LMC_HD void stv(void *p, int64_t i, int dt, float v)
{
  if (dt == LM_F32) ((float *)p)[i] = v;
  else if (dt == LM_F16) ((uint16_t *)p)[i] = lmc_f32_to_f16(v);
  else ((uint16_t *)p)[i] = lmc_f32_to_bf16(v);
}

LMC_HD float lmc_expm1f(float a) { return expm1f(a); }

/* The activations as the CPU computes them (plan_fused.c apply_act, oneDNN's
** post-ops): within the float tolerance of the comparisons. */
LMC_HD float act_f(int act, float alpha, float beta, float v)
{
  switch (act) {
  case LM_ACT_RELU: return v > 0 ? v : 0.0f;
  case LM_ACT_LEAKY_RELU: return v >= 0 ? v : lmc_fmul(alpha, v);
  case LM_ACT_ELU: return v >= 0 ? v : lmc_fmul(alpha, lmc_expm1f(v));
  case LM_ACT_SIGMOID:
    return v >= 0 ? lmc_fdiv(1.0f, lmc_fadd(1.0f, lmc_expf(-v)))
                  : lmc_fdiv(lmc_expf(v), lmc_fadd(1.0f, lmc_expf(v)));
  case LM_ACT_TANH: return lmc_tanhf(v);
  case LM_ACT_GELU:
    return lmc_fmul(lmc_fmul(0.5f, v), lmc_fadd(1.0f, lmc_erff(lmc_fmul(v, 0.70710678118654752f))));
  case LM_ACT_SILU:
    return lmc_fmul(v, v >= 0 ? lmc_fdiv(1.0f, lmc_fadd(1.0f, lmc_expf(-v)))
                              : lmc_fdiv(lmc_expf(v), lmc_fadd(1.0f, lmc_expf(v))));
  case LM_ACT_CLIP: return v < alpha ? alpha : v > beta ? beta : v;
  default: return v;
  }
}

static int err_of(cudaError_t e) { return (int)e; }

/* ---- direct convolution ----------------------------------------------------- */

struct conv_kernel {
  lmc_k_conv_args p;
  const void *x;
  const float *w, *b;
  void *y;
  LMC_HD void operator()(int64_t i) const
  {
    const int64_t o0n = p.out[0], o1n = p.out[1], o2n = p.out[2];
    const int64_t isp = p.in[0] * p.in[1] * p.in[2], osp = o0n * o1n * o2n;
    int64_t co, n, s;
    if (p.cl) {
      co = i % p.cout;
      s = (i / p.cout) % osp;
      n = i / (p.cout * osp);
    } else {
      s = i % osp;
      co = (i / osp) % p.cout;
      n = i / (osp * p.cout);
    }
    const int64_t o2 = s % o2n, o1 = (s / o2n) % o1n, o0 = s / (o2n * o1n);
    const int64_t cin_g = p.cin / p.group, cout_g = p.cout / p.group, g = co / cout_g;
    const int64_t ksz = p.k[0] * p.k[1] * p.k[2];
    float acc = 0.0f;
    for (int64_t ci = 0; ci < cin_g; ci++) {
      const int64_t xc = g * cin_g + ci;
      const int64_t wbase = p.transposed ? (xc * cout_g + (co - g * cout_g)) * ksz
                                         : (co * cin_g + ci) * ksz;
      for (int64_t k0 = 0; k0 < p.k[0]; k0++) {
        int64_t i0;
        if (p.transposed) {
          int64_t t = o0 + p.pad[0] - k0 * p.dil[0];
          if (t < 0 || t % p.stride[0]) continue;
          i0 = t / p.stride[0];
        } else {
          i0 = o0 * p.stride[0] - p.pad[0] + k0 * p.dil[0];
        }
        if (i0 < 0 || i0 >= p.in[0]) continue;
        for (int64_t k1 = 0; k1 < p.k[1]; k1++) {
          int64_t i1;
          if (p.transposed) {
            int64_t t = o1 + p.pad[1] - k1 * p.dil[1];
            if (t < 0 || t % p.stride[1]) continue;
            i1 = t / p.stride[1];
          } else {
            i1 = o1 * p.stride[1] - p.pad[1] + k1 * p.dil[1];
          }
          if (i1 < 0 || i1 >= p.in[1]) continue;
          for (int64_t k2 = 0; k2 < p.k[2]; k2++) {
            int64_t i2;
            if (p.transposed) {
              int64_t t = o2 + p.pad[2] - k2 * p.dil[2];
              if (t < 0 || t % p.stride[2]) continue;
              i2 = t / p.stride[2];
            } else {
              i2 = o2 * p.stride[2] - p.pad[2] + k2 * p.dil[2];
            }
            if (i2 < 0 || i2 >= p.in[2]) continue;
            const int64_t xs = (i0 * p.in[1] + i1) * p.in[2] + i2;
            const int64_t xi = p.cl ? (n * isp + xs) * p.cin + xc : (n * p.cin + xc) * isp + xs;
            const float wv = w[wbase + (k0 * p.k[1] + k1) * p.k[2] + k2];
            acc = lmc_fadd(acc, lmc_fmul(ldv(x, xi, p.xdt), wv));
          }
        }
      }
    }
    if (b) acc = lmc_fadd(acc, b[co]);
    stv(y, i, p.ydt, act_f(p.act, p.alpha, p.beta, acc));
  }
};

extern "C" int lmc_k_conv_direct(cudaStream_t s, const lmc_k_conv_args *p, const void *x,
                                 const float *w, const float *bias, void *y)
{
  int64_t n = p->n * p->cout * p->out[0] * p->out[1] * p->out[2];
  return err_of(lmc_for_each(s, n, conv_kernel{*p, x, w, bias, y}));
}

struct act_inplace_kernel {
  void *y;
  int dt, act;
  float alpha, beta;
  LMC_HD void operator()(int64_t i) const { stv(y, i, dt, act_f(act, alpha, beta, ldv(y, i, dt))); }
};

extern "C" int lmc_k_act_inplace(cudaStream_t s, void *y, int dt, int64_t n, int act, float alpha,
                                 float beta)
{
  return err_of(lmc_for_each(s, n, act_inplace_kernel{y, dt, act, alpha, beta}));
}

/* ---- normalisation ------------------------------------------------------------ */

/* Element j of normalisation row r (= n * groups + g): channel g * cpg +
** j / sp, position j % sp. */
LMC_HD int64_t norm_index(const lmc_k_norm_args &p, int64_t r, int64_t j)
{
  const int64_t cpg = p.c / p.groups, n = r / p.groups, g = r % p.groups;
  const int64_t ch = g * cpg + j / p.sp, s = j % p.sp;
  return p.cl ? (n * p.sp + s) * p.c + ch : (n * p.c + ch) * p.sp + s;
}

/* Per (row, part): sums of x - shift and (x - shift)^2 in double over the
** row's elements j = part, part + nparts, ... (neighbouring threads read
** neighbouring elements), shift = the row's first element (the CPU's
** shifted moments).  Deterministic: a fixed order for a given shape. */
struct norm_partial_kernel {
  lmc_k_norm_args p;
  const void *x;
  int xdt;
  int64_t len, nchunks;
  double *part;
  LMC_HD void operator()(int64_t i) const
  {
    const int64_t r = i / nchunks, c = i % nchunks, base = norm_index(p, r, 0);
    const double shift = ldv(x, base, xdt);
    double s1 = 0, s2 = 0;
    for (int64_t j = c; j < len; j += nchunks) {
      /* NC+spatial: a row is one contiguous block (its channels are
       * adjacent), so no divisions per element; channels-last interleaves. */
      const int64_t xi = p.cl ? norm_index(p, r, j) : base + j;
      double d = lmc_dsub((double)ldv(x, xi, xdt), shift);
      s1 = lmc_dadd(s1, d);
      s2 = lmc_dadd(s2, lmc_dmul(d, d));
    }
    part[2 * i] = s1;
    part[2 * i + 1] = s2;
  }
};

/* Per row: mean and biased variance from its chunks, in stats[2r], [2r+1]. */
struct norm_combine_kernel {
  lmc_k_norm_args p;
  const void *x;
  int xdt;
  int64_t len, nchunks;
  const double *part;
  double *stats;
  LMC_HD void operator()(int64_t r) const
  {
    double s1 = 0, s2 = 0;
    for (int64_t c = 0; c < nchunks; c++) {
      s1 = lmc_dadd(s1, part[2 * (r * nchunks + c)]);
      s2 = lmc_dadd(s2, part[2 * (r * nchunks + c) + 1]);
    }
    const double shift = len ? (double)ldv(x, norm_index(p, r, 0), xdt) : 0.0;
    const double m1 = len ? lmc_ddiv(s1, (double)len) : 0.0;
    const double v = len ? lmc_dsub(lmc_ddiv(s2, (double)len), lmc_dmul(m1, m1)) : 0.0;
    stats[2 * r] = lmc_dadd(shift, m1);
    stats[2 * r + 1] = v > 0 ? v : 0;
  }
};

struct norm_apply_kernel {
  lmc_k_norm_args p;
  const void *x;
  const float *gscale, *gbias, *gamma, *beta;
  const void *res;
  void *y;
  const double *stats;
  LMC_HD void operator()(int64_t i) const
  {
    int64_t n, ch;
    if (p.cl) {
      ch = i % p.c;
      n = i / (p.c * p.sp);
    } else {
      ch = (i / p.sp) % p.c;
      n = i / (p.c * p.sp);
    }
    const int64_t g = ch / (p.c / p.groups), r = n * p.groups + g;
    const double mean = stats[2 * r], var = stats[2 * r + 1];
#ifdef __CUDA_ARCH__
    const double sd = __dsqrt_rn(lmc_dadd(var, p.eps));
#else
    const double sd = sqrt(var + p.eps);
#endif
    const double a = lmc_dmul(lmc_ddiv(1.0, sd), (double)gscale[g]);
    const double b = gbias ? (double)gbias[g] : 0.0;
    float v = (float)lmc_dadd(lmc_dmul(lmc_dsub((double)ldv(x, i, p.xdt), mean), a), b);
    if (gamma) v = lmc_fadd(lmc_fmul(v, gamma[ch]), beta[ch]);
    if (p.res_mode == 1) v = lmc_fadd(v, ldv(res, i, p.rdt));
    v = act_f(p.act, p.alpha, 0.0f, v);
    if (p.res_mode == 2) v = lmc_fadd(v, ldv(res, i, p.rdt));
    stv(y, i, p.ydt, v);
  }
};

/* Parts per row: about 256 elements each, at most 1024 (the combining
** thread's loop). */
static int64_t norm_chunks(int64_t len)
{
  int64_t n = len / 256;
  return n < 1 ? 1 : n > 1024 ? 1024 : n;
}

extern "C" int64_t lmc_k_norm_work_doubles(const lmc_k_norm_args *p)
{
  int64_t rows = p->n * p->groups, len = p->c / p->groups * p->sp;
  return 2 * rows * norm_chunks(len) + 2 * rows;
}

extern "C" int lmc_k_norm(cudaStream_t s, const lmc_k_norm_args *p, const void *x, const float *gscale,
                          const float *gbias, const float *gamma, const float *beta,
                          const void *res, void *y, double *work)
{
  const int64_t rows = p->n * p->groups, len = p->c / p->groups * p->sp, nch = norm_chunks(len);
  double *part = work, *stats = work + 2 * rows * nch;
  cudaError_t e = lmc_for_each(s, rows * nch, norm_partial_kernel{*p, x, p->xdt, len, nch, part});
  if (e == cudaSuccess)
    e = lmc_for_each(s, rows, norm_combine_kernel{*p, x, p->xdt, len, nch, part, stats});
  if (e == cudaSuccess)
    e = lmc_for_each(s, p->n * p->c * p->sp,
                     norm_apply_kernel{*p, x, gscale, gbias, gamma, beta, res, y, stats});
  return err_of(e);
}

/* ---- element-wise ----------------------------------------------------------- */

struct binary_kernel {
  lmc_k_bcast_args d;
  const void *a, *b;
  void *y;
  int adt, bdt, ydt, op, act;
  float alpha, beta;
  bool same;  /* both operands walk like the output: offsets = i */
  LMC_HD void operator()(int64_t i) const
  {
    int64_t ao = 0, bo = 0, rem = i;
    if (same) {
      ao = bo = i;
    } else {
      for (int k = d.ndim - 1; k >= 0; k--) {
        const int64_t c = rem % d.shape[k];
        rem /= d.shape[k];
        ao += c * d.astr[k];
        bo += c * d.bstr[k];
      }
    }
    const float u = ldv(a, ao, adt), v = ldv(b, bo, bdt);
    float r;
    switch (op) {
    case LMC_BIN_ADD: r = lmc_fadd(u, v); break;
    case LMC_BIN_SUB: r = lmc_fsub(u, v); break;
    case LMC_BIN_MUL: r = lmc_fmul(u, v); break;
    case LMC_BIN_DIV: r = lmc_fdiv(u, v); break;
    default: r = u < 0 ? lmc_fmul(v, u) : u; break;   /* PRelu */
    }
    stv(y, i, ydt, act_f(act, alpha, beta, r));
  }
};

extern "C" int lmc_k_binary(cudaStream_t s, int op, const lmc_k_bcast_args *d, const void *a, int adt,
                            const void *b, int bdt, void *y, int ydt, int act, float alpha,
                            float beta)
{
  /* Operands of the output's shape (residual Adds): no per-element index
  ** decoding, which costs more than the element's arithmetic. */
  int64_t n = 1;
  bool same = true;
  for (int k = d->ndim - 1; k >= 0; k--) {
    if (d->shape[k] > 1 && (d->astr[k] != n || d->bstr[k] != n)) same = false;
    n *= d->shape[k];
  }
  return err_of(
      lmc_for_each(s, n, binary_kernel{*d, a, b, y, adt, bdt, ydt, op, act, alpha, beta, same}));
}

struct unary_kernel {
  const void *x;
  void *y;
  int xdt, ydt, act;
  float alpha, beta;
  LMC_HD void operator()(int64_t i) const { stv(y, i, ydt, act_f(act, alpha, beta, ldv(x, i, xdt))); }
};

extern "C" int lmc_k_unary(cudaStream_t s, const void *x, int xdt, void *y, int ydt, int64_t n,
                           int act, float alpha, float beta)
{
  return err_of(lmc_for_each(s, n, unary_kernel{x, y, xdt, ydt, act, alpha, beta}));
}

struct slab_kernel {
  const void *x;
  void *y;
  int xdt, ydt;
  int64_t inner_x, inner_y, offset;
  LMC_HD void operator()(int64_t i) const
  {
    const int64_t o = i / inner_x, r = i % inner_x;
    stv(y, o * inner_y + offset + r, ydt, ldv(x, i, xdt));
  }
};

extern "C" int lmc_k_slab_copy(cudaStream_t s, const void *x, int xdt, void *y, int ydt,
                               int64_t outer, int64_t inner_x, int64_t inner_y, int64_t offset)
{
  return err_of(
      lmc_for_each(s, outer * inner_x, slab_kernel{x, y, xdt, ydt, inner_x, inner_y, offset}));
}

struct gather_kernel {
  lmc_k_bcast_args d;
  const void *x;
  void *y;
  int xdt, ydt;
  LMC_HD void operator()(int64_t i) const
  {
    int64_t off = 0, rem = i;
    for (int k = d.ndim - 1; k >= 0; k--) {
      int64_t c = rem % d.shape[k];
      if (d.bstr[k] > 0) c %= d.bstr[k]; /* Tile: the input repeats with this period */
      off += c * d.astr[k];
      rem /= d.shape[k];
    }
    stv(y, i, ydt, ldv(x, off, xdt));
  }
};

extern "C" int lmc_k_gather(cudaStream_t s, const lmc_k_bcast_args *d, const void *x, int xdt, void *y,
                            int ydt)
{
  int64_t n = 1;
  for (int k = 0; k < d->ndim; k++) n *= d->shape[k];
  return err_of(lmc_for_each(s, n, gather_kernel{*d, x, y, xdt, ydt}));
}

struct pad_kernel {
  lmc_k_pad_args p;
  const void *x;
  void *y;
  int xdt, ydt;
  LMC_HD void operator()(int64_t i) const
  {
    int64_t off = 0, rem = i, str = 1;
    bool inside = true;
    for (int k = p.ndim - 1; k >= 0; k--) {
      const int64_t c = rem % p.oshape[k] - p.lo[k];
      rem /= p.oshape[k];
      if (c < 0 || c >= p.ishape[k]) inside = false;
      off += c * str;
      str *= p.ishape[k];
    }
    stv(y, i, ydt, inside ? ldv(x, off, xdt) : p.value);
  }
};

extern "C" int lmc_k_pad_const(cudaStream_t s, const lmc_k_pad_args *p, const void *x, int xdt, void *y,
                               int ydt)
{
  int64_t n = 1;
  for (int k = 0; k < p->ndim; k++) n *= p->oshape[k];
  return err_of(lmc_for_each(s, n, pad_kernel{*p, x, y, xdt, ydt}));
}

/* ---- pooling, softmax, resize -------------------------------------------------- */

struct pool_kernel {
  lmc_k_pool_args p;
  const void *x;
  void *y;
  int xdt, ydt;
  LMC_HD void operator()(int64_t i) const
  {
    int64_t osz = 1, isz = 1, ksz = 1;
    for (int k = 0; k < p.nsp; k++) {
      osz *= p.out[k];
      isz *= p.in[k];
      ksz *= p.k[k];
    }
    const int64_t nc = i / osz, o = i % osz;
    int64_t oi[3] = {0, 0, 0};
    for (int k = 0; k < p.nsp; k++) oi[k] = (o / stride_of(p.out, k)) % p.out[k];
    float best = -INFINITY;
    bool any = false;
    double sum = 0;
    int64_t cnt = 0, cnt_pad = 0;
    for (int64_t kk = 0; kk < ksz; kk++) {
      int64_t flat = 0;
      bool inside = true, in_padded = true;
      for (int k = 0; k < p.nsp; k++) {
        const int64_t ki = (kk / stride_of(p.k, k)) % p.k[k];
        const int64_t pos = oi[k] * p.s[k] - p.lo[k] + ki * p.d[k];
        if (pos < 0 || pos >= p.in[k]) inside = false;
        if (pos >= p.in[k] + p.hi[k]) in_padded = false;
        flat = flat * p.in[k] + pos;
      }
      if (in_padded) cnt_pad++;
      if (!inside) continue;
      const float v = ldv(x, nc * isz + flat, xdt);
      if (p.is_max) {
        if (v > best || !any) best = v;
        any = true;
      } else {
        sum = lmc_dadd(sum, (double)v);
        cnt++;
      }
    }
    if (p.is_max) {
      stv(y, i, ydt, best);
    } else {
      const int64_t div = p.include_pad ? cnt_pad : cnt;
      stv(y, i, ydt, div ? (float)lmc_ddiv(sum, (double)div) : 0.0f);
    }
  }
  /* Row-major stride of axis k of extents e[0..nsp). */
  LMC_HD int64_t stride_of(const int64_t *e, int k) const
  {
    int64_t st = 1;
    for (int j = k + 1; j < p.nsp; j++) st *= e[j];
    return st;
  }
};

extern "C" int lmc_k_pool(cudaStream_t s, const lmc_k_pool_args *p, const void *x, int xdt, void *y,
                          int ydt)
{
  int64_t n = p->nc;
  for (int k = 0; k < p->nsp; k++) n *= p->out[k];
  return err_of(lmc_for_each(s, n, pool_kernel{*p, x, y, xdt, ydt}));
}

/* Row means: per (row, part) sums in double (strided parts as the norm's),
** then per row. */
struct mean_partial_kernel {
  const void *x;
  int xdt;
  int64_t len, nchunks;
  double *part;
  LMC_HD void operator()(int64_t i) const
  {
    const int64_t r = i / nchunks, c = i % nchunks;
    double acc = 0;
    for (int64_t j = c; j < len; j += nchunks) acc = lmc_dadd(acc, (double)ldv(x, r * len + j, xdt));
    part[i] = acc;
  }
};

struct mean_combine_kernel {
  void *y;
  int ydt;
  int64_t len, nchunks;
  const double *part;
  LMC_HD void operator()(int64_t r) const
  {
    double acc = 0;
    for (int64_t c = 0; c < nchunks; c++) acc = lmc_dadd(acc, part[r * nchunks + c]);
    stv(y, r, ydt, len ? (float)lmc_ddiv(acc, (double)len) : 0.0f);
  }
};

extern "C" int64_t lmc_k_mean_work_doubles(int64_t rows, int64_t len)
{
  return rows * norm_chunks(len);
}

extern "C" int lmc_k_row_mean(cudaStream_t s, const void *x, int xdt, void *y, int ydt,
                              int64_t rows, int64_t len, double *work)
{
  const int64_t nch = norm_chunks(len);
  cudaError_t e = lmc_for_each(s, rows * nch, mean_partial_kernel{x, xdt, len, nch, work});
  if (e == cudaSuccess) e = lmc_for_each(s, rows, mean_combine_kernel{y, ydt, len, nch, work});
  return err_of(e);
}

/* One thread per (outer, inner) column: max, exp(x - max) rounded to float
** summed in double, then each exp times 1 / sum (the op table's order). */
struct softmax_kernel {
  const void *x;
  void *y;
  int xdt, ydt;
  int64_t len, inner;
  LMC_HD void operator()(int64_t i) const
  {
    const int64_t o = i / inner, in = i % inner, base = o * len * inner + in;
    float mx = -INFINITY;
    for (int64_t j = 0; j < len; j++) {
      const float v = ldv(x, base + j * inner, xdt);
      if (v > mx) mx = v;
    }
    double sum = 0;
    for (int64_t j = 0; j < len; j++)
      sum = lmc_dadd(sum, (double)lmc_expf(lmc_fsub(ldv(x, base + j * inner, xdt), mx)));
    const double inv = lmc_ddiv(1.0, sum);
    for (int64_t j = 0; j < len; j++) {
      const float e = lmc_expf(lmc_fsub(ldv(x, base + j * inner, xdt), mx));
      stv(y, base + j * inner, ydt, (float)lmc_dmul((double)e, inv));
    }
  }
};

extern "C" int lmc_k_softmax(cudaStream_t s, const void *x, int xdt, void *y, int ydt,
                             int64_t outer, int64_t len, int64_t inner)
{
  return err_of(lmc_for_each(s, outer * inner, softmax_kernel{x, y, xdt, ydt, len, inner}));
}

struct resize_kernel {
  lmc_k_resize_args p;
  const int *ntap;
  const int64_t *idx;
  const double *w;
  const void *x;
  void *y;
  int xdt, ydt;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t tap[LMC_K_MAXD], istr[LMC_K_MAXD];
    int64_t rem = o, combos = 1, st = 1;
    for (int k = p.ndim - 1; k >= 0; k--) {
      tap[k] = p.base[k] + rem % p.oshape[k];
      rem /= p.oshape[k];
      combos *= ntap[tap[k]];
      istr[k] = st;
      st *= p.ishape[k];
    }
    double acc = 0;
    for (int64_t c = 0; c < combos; c++) {
      int64_t cc = c, off = 0;
      double wt = 1;
      for (int k = p.ndim - 1; k >= 0; k--) {
        const int nt = ntap[tap[k]];
        const int t = (int)(cc % nt);
        cc /= nt;
        off += idx[4 * tap[k] + t] * istr[k];
        wt = lmc_dmul(wt, w[4 * tap[k] + t]);
      }
      acc = lmc_dadd(acc, lmc_dmul(wt, (double)ldv(x, off, xdt)));
    }
    stv(y, o, ydt, (float)acc);
  }
};

extern "C" int lmc_k_resize(cudaStream_t s, const lmc_k_resize_args *p, const int *ntap,
                            const int64_t *idx, const double *w, const void *x, int xdt, void *y,
                            int ydt)
{
  int64_t n = 1;
  for (int k = 0; k < p->ndim; k++) n *= p->oshape[k];
  return err_of(lmc_for_each(s, n, resize_kernel{*p, ntap, idx, w, x, y, xdt, ydt}));
}

/* ---- layout -------------------------------------------------------------------- */

struct layout_kernel {
  const void *x;
  void *y;
  int xdt, ydt;
  int64_t c, sp;
  int to_cl;
  LMC_HD void operator()(int64_t i) const
  {
    /* i walks the output */
    const int64_t n = i / (c * sp);
    int64_t ch, s;
    if (to_cl) {
      ch = i % c;
      s = (i / c) % sp;
      stv(y, i, ydt, ldv(x, (n * c + ch) * sp + s, xdt));
    } else {
      s = i % sp;
      ch = (i / sp) % c;
      stv(y, i, ydt, ldv(x, (n * sp + s) * c + ch, xdt));
    }
  }
};

extern "C" int lmc_k_layout(cudaStream_t s, const void *x, int xdt, void *y, int ydt, int64_t n,
                            int64_t c, int64_t sp, int to_cl)
{
  return err_of(lmc_for_each(s, n * c * sp, layout_kernel{x, y, xdt, ydt, c, sp, to_cl}));
}

/* ---- the Infer op's views ------------------------------------------------------- */

struct gather_any_kernel {
  lmc_k_bcast_args d;
  const void *x;
  int xdt;
  float *y;
  LMC_HD void operator()(int64_t i) const
  {
    int64_t off = 0, rem = i;
    for (int k = d.ndim - 1; k >= 0; k--) {
      off += rem % d.shape[k] * d.astr[k];
      rem /= d.shape[k];
    }
    y[i] = lmc_load_f32(x, off, xdt);
  }
};

extern "C" int lmc_k_gather_any(cudaStream_t s, const lmc_k_bcast_args *d, const void *x, int xdt,
                                float *y)
{
  int64_t n = 1;
  for (int k = 0; k < d->ndim; k++) n *= d->shape[k];
  return err_of(lmc_for_each(s, n, gather_any_kernel{*d, x, xdt, y}));
}

struct argmax0_kernel {
  const float *x;
  int64_t nch, nvox;
  void *y;
  int ydt;
  LMC_HD void operator()(int64_t v) const
  {
    int64_t best = 0;
    float bv = x[v];
    for (int64_t c = 1; c < nch && bv == bv; c++) {
      const float u = x[c * nvox + v];
      if (u > bv || u != u) {
        best = c;
        bv = u;
      }
    }
    if (ydt == LM_U8) ((uint8_t *)y)[v] = (uint8_t)best;
    else ((int32_t *)y)[v] = (int32_t)best;
  }
};

extern "C" int lmc_k_argmax0(cudaStream_t s, const float *x, int64_t nch, int64_t nvox, void *y,
                             int ydt)
{
  return err_of(lmc_for_each(s, nvox, argmax0_kernel{x, nch, nvox, y, ydt}));
}
