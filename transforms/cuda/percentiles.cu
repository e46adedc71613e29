/* ScaleIntensityRangePercentiles on the GPU.  The percentiles are exact
 * order statistics, as the CPU's quickselect gives them: a radix select
 * over order-preserving integer keys of the values (float32 keys where
 * float32 holds the dtype exactly, float64 keys otherwise, as the CPU's
 * gather), one 256-bin histogram pass per key byte from the top, for up to
 * four ranks at once (floor(h) and floor(h) + 1 of both percentiles).
 * Between passes the histograms come back to the host (1-4 KiB), which
 * narrows each rank's prefix by one byte.  numpy's interpolation and the
 * window are the CPU's own functions (intensity.h); the map is sir_map.h. */
#include <math.h>
#include <string.h>

#include "sir_map.h"
extern "C" {
#include "xf_util.h"
}

#define SEL_MAX_RANKS 4
#define SEL_BINS 256

LMC_HD uint64_t lmc_double_as_u64(double x)
{
#ifdef __CUDA_ARCH__
  return (uint64_t)__double_as_longlong(x);
#else
  uint64_t u;
  memcpy(&u, &x, 8);
  return u;
#endif
}

/* Keys whose unsigned order is the values' order (negative floats have
 * all bits flipped, positive ones the sign bit set). */
LMC_HD uint64_t key32(float x)
{
  uint32_t u = lmc_float_as_uint(x);
  return (u & 0x80000000u) ? (uint32_t)~u : (u | 0x80000000u);
}
LMC_HD uint64_t key64(double x)
{
  uint64_t u = lmc_double_as_u64(x);
  return (u >> 63) ? ~u : (u | 0x8000000000000000ull);
}
static double key_value(uint64_t k, bool wide)
{
  if (wide) {
    uint64_t u = (k >> 63) ? (k & 0x7fffffffffffffffull) : ~k;
    double x;
    memcpy(&x, &u, 8);
    return x;
  }
  uint32_t u = (k & 0x80000000u) ? (uint32_t)(k & 0x7fffffffu) : (uint32_t)~k;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* One histogram pass.  Each worker walks elements w, w + W, ... (so
 * neighbouring workers read neighbouring elements) and adds runs of equal
 * digits with one atomic: the long runs of equal values of CT backgrounds
 * then cost few atomics. */
struct hist_kernel {
  const void *in;
  int dt;
  bool wide, dense, first;
  lmc_dims d;
  int64_t n, workers;
  int nr, shift;
  uint64_t prefix[SEL_MAX_RANKS];
  unsigned *hist; /* nr * 256 bins, then the NaN count */
  LMC_HD void operator()(int64_t w) const
  {
    int last[SEL_MAX_RANKS];
    unsigned cnt[SEL_MAX_RANKS], nan = 0;
    for (int j = 0; j < nr; j++) {
      last[j] = -1;
      cnt[j] = 0;
    }
    for (int64_t i = w; i < n; i += workers) {
      int64_t off = dense ? i : lmc_in_offset(d, i);
      uint64_t key;
      if (wide) {
        double x = lmc_load_f64(in, off, dt);
        nan += x != x;
        key = key64(x);
      } else {
        float x = lmc_load_f32(in, off, dt);
        nan += x != x;
        key = key32(x);
      }
      for (int j = 0; j < nr; j++) {
        if (!first && (key >> (shift + 8)) != prefix[j]) continue;
        int digit = (int)((key >> shift) & 0xff);
        if (digit != last[j]) {
          if (cnt[j]) lmc_atomic_add_u32(&hist[j * SEL_BINS + last[j]], cnt[j]);
          last[j] = digit;
          cnt[j] = 0;
        }
        cnt[j]++;
      }
    }
    for (int j = 0; j < nr; j++)
      if (cnt[j]) lmc_atomic_add_u32(&hist[j * SEL_BINS + last[j]], cnt[j]);
    if (first && nan) lmc_atomic_add_u32(&hist[nr * SEL_BINS], nan);
  }
};

struct zero_kernel {
  unsigned *p;
  LMC_HD void operator()(int64_t i) const { p[i] = 0; }
};

/* Float32 holds these dtypes exactly; the others are selected as doubles
 * (int64 rounded to double, as the CPU's gather does). */
static bool fits_f32(lm_dtype dt)
{
  return dt == LM_U8 || dt == LM_I8 || dt == LM_I16 || dt == LM_U16 || dt == LM_F16 ||
         dt == LM_BF16 || dt == LM_F32;
}

/* The values of ranks rank[0..nr) (ascending order, 0-based) of t's
 * elements, in val[]; *has_nan when any element is NaN. */
static int select_ranks(lm_op_ctx *ctx, cudaStream_t s, lm_tensor *t, const int64_t *rank,
                        int nr, double *val, bool *has_nan)
{
  hist_kernel k;
  memset(&k, 0, sizeof k);
  k.in = lm_tensor_data(t);
  k.dt = lm_tensor_dtype(t);
  k.wide = !fits_f32(lm_tensor_dtype(t));
  /* A dense tensor (any dim order) is walked in memory order: the order
   * of the values does not matter to a histogram. */
  k.dense = lm_tensor_is_dense(t);
  k.d.ndim = lm_tensor_ndim(t);
  int64_t step = 1;
  for (int j = k.d.ndim - 1; j >= 0; j--) {
    k.d.shape[j] = lm_tensor_shape(t)[j];
    k.d.in_stride[j] = lm_tensor_strides(t)[j];
    k.d.out_stride[j] = step;
    step *= k.d.shape[j];
  }
  if (k.dense) {
    /* Element (0, ..., 0) is the lowest address only with positive
     * strides; views with negative ones take the general path. */
    for (int j = 0; j < k.d.ndim; j++)
      if (k.d.in_stride[j] < 0 && k.d.shape[j] > 1) k.dense = false;
  }
  k.n = lm_tensor_numel(t);
  k.workers = k.n < 65536 ? k.n : 65536;
  k.nr = nr;
  size_t nbins = (size_t)nr * SEL_BINS + 1;
  unsigned *dhist = (unsigned *)lmc_scratch_alloc(ctx, s, nbins * sizeof(unsigned));
  if (!dhist) return LM_ENOMEM;
  k.hist = dhist;
  unsigned hist[SEL_MAX_RANKS * SEL_BINS + 1];
  int64_t left[SEL_MAX_RANKS];
  memcpy(left, rank, sizeof(int64_t) * (size_t)nr);
  int bits = k.wide ? 64 : 32, st = LM_OK;
  *has_nan = false;
  for (int pass = 0; pass < bits / 8 && st >= 0; pass++) {
    k.first = pass == 0;
    k.shift = bits - 8 * (pass + 1);
    cudaError_t e = lmc_for_each(s, (int64_t)nbins, zero_kernel{dhist});
    if (e == cudaSuccess) e = lmc_for_each(s, k.workers, k);
    if (e != cudaSuccess) {
      st = lmc_fail(ctx, "ScaleIntensityRangePercentiles histogram kernel", e);
      break;
    }
    if ((st = lmc_copy_to_host(ctx, s, hist, dhist, nbins * sizeof(unsigned))) < 0) break;
    if (k.first && hist[nr * SEL_BINS]) {
      *has_nan = true;
      break;
    }
    for (int j = 0; j < nr; j++) {
      const unsigned *h = hist + j * SEL_BINS;
      int b = 0;
      for (; b < SEL_BINS - 1 && left[j] >= (int64_t)h[b]; b++) left[j] -= h[b];
      k.prefix[j] = (k.prefix[j] << 8) | (uint64_t)b;
    }
  }
  lmc_scratch_free(ctx, s, dhist);
  if (st < 0) return st;
  for (int j = 0; j < nr && !*has_nan; j++) val[j] = key_value(k.prefix[j], k.wide);
  return LM_OK;
}

/* Percentiles q[0], q[1] (0..100) of t: numpy's 'linear' rule, NaN when t
 * holds a NaN (as the CPU). */
static int percentiles(lm_op_ctx *ctx, cudaStream_t s, lm_tensor *t, const double q[2],
                       double out[2])
{
  int64_t n = lm_tensor_numel(t);
  if (n == 0) return lm_ctx_error(ctx, LM_ESHAPE, "percentiles of an empty tensor");
  if ((uint64_t)n > 0xffffffffull)
    return lm_ctx_error(ctx, LM_ESHAPE, "percentiles of more than 2^32 - 1 values on the GPU "
                        "(got %lld)", (long long)n);
  int64_t rank[SEL_MAX_RANKS], k[2];
  double h[2], v[SEL_MAX_RANKS];
  int nr = 0, at[2][2];
  for (int i = 0; i < 2; i++) {
    h[i] = (double)(n - 1) * (q[i] / 100.0);
    k[i] = (int64_t)floor(h[i]);
    if (k[i] > n - 1) k[i] = n - 1;
    for (int e = 0; e < 2; e++) {
      int64_t r = k[i] + e < n ? k[i] + e : k[i];
      int j = 0;
      while (j < nr && rank[j] != r) j++;
      if (j == nr) rank[nr++] = r;
      at[i][e] = j;
    }
  }
  bool nan;
  int st = select_ranks(ctx, s, t, rank, nr, v, &nan);
  if (st < 0) return st;
  for (int i = 0; i < 2; i++)
    out[i] = nan ? NAN : xf_percentile_lerp(v[at[i][0]], v[at[i][1]], h[i] - floor(h[i]));
  return LM_OK;
}

/* out = map(in) over one block (the tensor or one channel's views).
 * Positions are numbered in out's memory order; both offsets come from
 * them, or are the position itself when in walks like a dense out. */
struct sirp_kernel {
  const void *in;
  void *out;
  lmc_sir_map m;
  int in_dt, out_dt;
  bool linear;
  lmc_dims din, dout;
  LMC_HD void operator()(int64_t p) const
  {
    int64_t i = linear ? p : lmc_in_offset(din, p), o = linear ? p : lmc_in_offset(dout, p);
    lmc_sir_element(m, in, i, in_dt, out, o, out_dt);
  }
};

static cudaError_t launch_sir(cudaStream_t s, lm_tensor *in, lm_tensor *out, const xf_sir *w)
{
  sirp_kernel k;
  memset(&k, 0, sizeof k);
  k.in = lm_tensor_data(in);
  k.out = lm_tensor_data(out);
  lmc_sir_map_prepare(w, &k.m);
  k.in_dt = lm_tensor_dtype(in);
  k.out_dt = lm_tensor_dtype(out);
  int nd = lm_tensor_ndim(out), order[LM_MAX_DIMS];
  xf_memory_order(out, order);
  int64_t pos[LM_MAX_DIMS], step = 1;
  for (int j = nd - 1; j >= 0; j--) {
    pos[order[j]] = step;
    step *= lm_tensor_shape(out)[order[j]];
  }
  k.linear = lm_tensor_is_dense(out);
  k.din.ndim = k.dout.ndim = nd;
  for (int j = 0; j < nd; j++) {
    k.din.shape[j] = k.dout.shape[j] = lm_tensor_shape(out)[j];
    k.din.in_stride[j] = lm_tensor_strides(in)[j];
    k.dout.in_stride[j] = lm_tensor_strides(out)[j];
    k.din.out_stride[j] = k.dout.out_stride[j] = pos[j];
    if (k.din.shape[j] > 1 && (k.din.in_stride[j] != pos[j] || k.dout.in_stride[j] != pos[j]))
      k.linear = false;
  }
  return lmc_for_each(s, lm_tensor_numel(out), k);
}

static int sirp_block(lm_op_ctx *ctx, cudaStream_t s, const xf_sirp_opts *o, lm_tensor *in,
                      lm_tensor *out)
{
  double q[2] = {o->lower, o->upper}, p[2];
  int st = percentiles(ctx, s, in, q, p);
  if (st < 0) return st;
  xf_sir w;
  xf_sirp_window(o, p, &w);
  cudaError_t e = launch_sir(s, in, out, &w);
  return e == cudaSuccess ? LM_OK : lmc_fail(ctx, "ScaleIntensityRangePercentiles kernel", e);
}

extern "C" int lmc_sirp(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  xf_sirp_opts o;
  int st = xf_sirp_options(ctx, &o);
  if (st < 0) return st;
  if (o.channel_wise && lm_tensor_ndim(in) < 1)
    return lm_ctx_error(ctx, LM_ESHAPE, "option 'channel_wise' needs a tensor with a channel "
                        "axis (got a scalar)");
  lm_device dev = lm_tensor_device(in);
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  st = lm_tensor_new_like(in, o.dt, dev, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d", dev.index);
  if (!o.channel_wise) {
    st = sirp_block(ctx, s, &o, in, out);
  } else {
    int64_t nc = lm_tensor_shape(in)[0];
    for (int64_t c = 0; c < nc && st >= 0; c++) {
      lm_tensor *ci = NULL, *co = NULL;
      st = lm_tensor_narrow(in, 0, c, 1, &ci);
      if (st >= 0) st = lm_tensor_narrow(out, 0, c, 1, &co);
      if (st >= 0) st = sirp_block(ctx, s, &o, ci, co);
      else lm_ctx_error(ctx, st, "cannot view channel %lld", (long long)c);
      lm_tensor_release(ci);
      lm_tensor_release(co);
    }
  }
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lmc_finish(ctx, s, cudaSuccess, "ScaleIntensityRangePercentiles kernel", &out, 1);
}
