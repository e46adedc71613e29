/* NormalizeIntensity on the GPU.  As the CPU op: a float32 working copy
 * with the channel dim slowest (each channel one contiguous block), the
 * statistics of each block in double over two passes (sum, then squared
 * deviations from the mean), the map y = (clip(x) - sub) / div in float32
 * in place.  The scalar rules (which values, float32 rounding of the
 * statistics, MONAI's zero divisor, nnU-Net's 1e-8 floor, CT's plans
 * values) are the CPU's own functions (normalize_intensity.h).
 *
 * Reductions in three levels, deterministic: NI_PARTS threads per block
 * each sum the elements p, p + NI_PARTS, ... (neighbouring threads read
 * neighbouring floats) in double, in index order; one thread per NI_GROUP
 * consecutive parts adds them in order; the host adds the group sums in
 * order.  NI_PARTS is large so that enough loads are in flight to stream
 * at the device's bandwidth (a few thousand threads reach only a few
 * percent of it on an H100).  The CPU adds in another order (64 contiguous
 * chunks), so the double sums differ in the last bits; the float32 mean
 * and std they round to agree but for values right at a float32 rounding
 * boundary. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmc_copy.h"
#include "normalize_intensity.h"
extern "C" {
#include "xf_util.h"
}

#define NI_PARTS 65536
#define NI_GROUP 256
#define NI_GROUPS (NI_PARTS / NI_GROUP)

struct ni_sum_kernel {
  const float *x, *m; /* m: the mask block or NULL */
  int64_t n, parts;
  int sel, pass;      /* pass 1: sum of x; pass 2: sum of (x - mean)^2 */
  double mean;
  double *part;
  unsigned long long *cnt;
  LMC_HD bool take(int64_t i) const
  {
    return sel == 0 || (sel == 1 ? x[i] != 0.0f : m[i] >= 0.0f);
  }
  LMC_HD void operator()(int64_t p) const
  {
    double s = 0;
    unsigned long long c = 0;
    for (int64_t i = p; i < n; i += parts) {
      if (!take(i)) continue;
      if (pass == 1) {
        s = lmc_dadd(s, (double)x[i]);
      } else {
        double d = lmc_dsub((double)x[i], mean);
        s = lmc_dadd(s, lmc_dmul(d, d));
      }
      c++;
    }
    part[p] = s;
    cnt[p] = c;
  }
};

/* Second level: group g's sum and count of parts [g * NI_GROUP, ...) in
 * order, into part[NI_PARTS + g] and cnt[NI_PARTS + g]. */
struct ni_group_kernel {
  double *part;
  unsigned long long *cnt;
  int64_t parts;
  LMC_HD void operator()(int64_t g) const
  {
    int64_t p0 = g * NI_GROUP, p1 = p0 + NI_GROUP < parts ? p0 + NI_GROUP : parts;
    double s = 0;
    unsigned long long c = 0;
    for (int64_t p = p0; p < p1; p++) {
      s = lmc_dadd(s, part[p]);
      c += cnt[p];
    }
    part[NI_PARTS + g] = s;
    cnt[NI_PARTS + g] = c;
  }
};

struct ni_apply_kernel {
  float *x;
  const float *m;
  xf_ni_map a;
  LMC_HD void operator()(int64_t i) const
  {
    float v = x[i];
    if (a.clip) {
      v = v < a.lo ? a.lo : v; /* np.clip: max then min, NaN kept */
      v = v > a.hi ? a.hi : v;
    } else if ((a.sel == 1 && v == 0.0f) || (a.sel == 2 && !(m[i] >= 0.0f))) {
      return;
    }
    x[i] = lmc_fdiv(lmc_fsub(v, a.sub), a.div);
  }
};

/* One reduction pass over a block: the sum and count of the selected
 * values (pass 1) or of their squared deviations (pass 2). */
static int ni_reduce(lm_op_ctx *ctx, cudaStream_t s, ni_sum_kernel &k, double *part,
                     unsigned long long *cnt, double *sum, int64_t *count)
{
  int64_t groups = (k.parts + NI_GROUP - 1) / NI_GROUP;
  cudaError_t e = lmc_for_each(s, k.parts, k);
  if (e == cudaSuccess) e = lmc_for_each(s, groups, ni_group_kernel{part, cnt, k.parts});
  if (e != cudaSuccess) return lmc_fail(ctx, "NormalizeIntensity reduction kernel", e);
  double hp[NI_GROUPS];
  unsigned long long hc[NI_GROUPS];
  int st = lmc_copy_to_host(ctx, s, hp, part + NI_PARTS, sizeof(double) * (size_t)groups);
  if (st >= 0) st = lmc_copy_to_host(ctx, s, hc, cnt + NI_PARTS, sizeof hc[0] * (size_t)groups);
  if (st < 0) return st;
  *sum = 0;
  *count = 0;
  for (int64_t g = 0; g < groups; g++) {
    *sum += hp[g];
    *count += (int64_t)hc[g];
  }
  return LM_OK;
}

static int ni_block(lm_op_ctx *ctx, cudaStream_t s, const xf_ni_opts *o, float *x, const float *m,
                    int64_t n, int64_t c, double *part, unsigned long long *cnt, double st_out[2])
{
  int sel = xf_ni_selection(o, m != NULL);
  bool need = xf_ni_needs_stats(ctx, o);
  double mean = 0, sd = 0;
  int64_t count = 0;
  if (need && n > 0) {
    ni_sum_kernel k = {x, m, n, n < NI_PARTS ? n : NI_PARTS, sel, 1, 0, part, cnt};
    double sum;
    int st = ni_reduce(ctx, s, k, part, cnt, &sum, &count);
    if (st < 0) return st;
    if (count > 0) {
      mean = sum / (double)count;
      k.pass = 2;
      k.mean = mean;
      if ((st = ni_reduce(ctx, s, k, part, cnt, &sum, &count)) < 0) return st;
      sd = sqrt(sum / (double)count);
    }
  }
  xf_ni_map a;
  xf_ni_block_map(ctx, o, c, sel, need, mean, sd, count, &a);
  st_out[0] = a.sub;
  st_out[1] = a.div;
  if (a.skip) return LM_OK;
  cudaError_t e = lmc_for_each(s, n, ni_apply_kernel{x, m, a});
  return e == cudaSuccess ? LM_OK : lmc_fail(ctx, "NormalizeIntensity kernel", e);
}

extern "C" int lmc_normalize_intensity(lm_op_ctx *ctx)
{
  xf_ni_opts o;
  int st = xf_ni_prepare(ctx, &o);
  if (st < 0) return st;
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *img = lm_ctx_input(ctx, 0), *work = NULL, *mask = NULL, *out = NULL;
  lm_device dev = lm_tensor_device(img);
  if (lm_ctx_ninputs(ctx) > 1 && lm_tensor_device(lm_ctx_input(ctx, 1)).type != LM_DEVICE_CUDA)
    return lm_ctx_error(ctx, LM_EDEVICE, "the mask must be on the image's device (cuda:%d)",
                        dev.index);
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  int nd = lm_tensor_ndim(img), ord2[LM_MAX_DIMS];
  xf_ni_work_order(img, ord2);
  cudaError_t err = cudaSuccess;
  double *part = NULL, *stats = NULL;
  unsigned long long *cnt = NULL;
  if ((st = lm_tensor_new_ordered(e, LM_F32, nd, lm_tensor_shape(img), ord2, dev, &work)) < 0) {
    lm_ctx_error(ctx, st, "cannot allocate the working copy on cuda:%d", dev.index);
    goto fail;
  }
  if ((err = lmc_launch_convert(s, img, work)) != cudaSuccess) goto fail;
  if (lm_ctx_ninputs(ctx) > 1) {
    lm_tensor *m = lm_ctx_input(ctx, 1), *mv = NULL;
    int64_t shape[LM_MAX_DIMS];
    memcpy(shape, lm_tensor_shape(img), sizeof(int64_t) * (size_t)nd);
    shape[0] = 1;
    if (lm_tensor_ndim(m) == nd) mv = lm_tensor_retain(m);
    else if ((st = lm_tensor_unsqueeze(m, 0, &mv)) < 0) {
      lm_ctx_error(ctx, st, "cannot view the mask");
      goto fail;
    }
    st = lm_tensor_new_ordered(e, LM_F32, nd, shape, ord2, dev, &mask);
    if (st >= 0) err = lmc_launch_convert(s, mv, mask);
    lm_tensor_release(mv);
    if (st < 0) {
      lm_ctx_error(ctx, st, "cannot allocate the mask copy on cuda:%d", dev.index);
      goto fail;
    }
    if (err != cudaSuccess) goto fail;
  }
  {
    float *x = (float *)lm_tensor_data(work);
    const float *m = mask ? (const float *)lm_tensor_data(mask) : NULL;
    int64_t total = lm_tensor_numel(work);
    bool per_ch = o.scheme != XF_NI_MONAI || o.channel_wise;
    int64_t nblk = per_ch ? o.nch : 1, bn = nblk ? total / nblk : 0;
    size_t nb = nblk > 0 ? (size_t)nblk : 1;
    stats = (double *)calloc(2 * nb, sizeof(double));
    /* the parts, then the group sums */
    part = (double *)lmc_scratch_alloc(ctx, s, sizeof(double) * (NI_PARTS + NI_GROUPS));
    cnt = part ? (unsigned long long *)lmc_scratch_alloc(ctx, s, sizeof(*cnt) * (NI_PARTS + NI_GROUPS))
               : NULL;
    if (!stats) {
      st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
      goto fail;
    }
    if (!part || !cnt) {
      st = LM_ENOMEM; /* the allocator set the error */
      goto fail;
    }
    for (int64_t c = 0; c < nblk && st >= 0; c++)
      st = ni_block(ctx, s, &o, x + c * bn, m, bn, c, part, cnt, stats + 2 * c);
    if (st < 0) goto fail;
    if ((st = xf_ni_set_results(ctx, stats, nblk)) < 0) {
      lm_ctx_error(ctx, st, "cannot store the results");
      goto fail;
    }
  }
  if (o.dt == LM_F32) {
    out = lm_tensor_retain(work);
  } else {
    if ((st = lm_tensor_new_like(img, o.dt, dev, &out)) < 0) {
      lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d", dev.index);
      goto fail;
    }
    if ((err = lmc_launch_convert(s, work, out)) != cudaSuccess) goto fail;
  }
  lm_tensor_set_affine(out, lm_tensor_affine(img));
  lm_tensor_set_layout(out, lm_tensor_layout(img));
  lm_tensor_trace_copy(out, img);
  if (cnt) lmc_scratch_free(ctx, s, cnt);
  if (part) lmc_scratch_free(ctx, s, part);
  free(stats);
  lm_tensor_release(work);
  lm_tensor_release(mask);
  return lmc_finish(ctx, s, cudaSuccess, "NormalizeIntensity kernel", &out, 1);
fail:
  if (err != cudaSuccess) st = lmc_fail(ctx, "NormalizeIntensity kernel", err);
  /* Frees are stream-ordered: kernels already queued still see their
   * buffers. */
  if (cnt) lmc_scratch_free(ctx, s, cnt);
  if (part) lmc_scratch_free(ctx, s, part);
  free(stats);
  lm_tensor_release(work);
  lm_tensor_release(mask);
  lm_tensor_release(out);
  return st;
}
