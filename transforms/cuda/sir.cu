/* ScaleIntensityRange on the GPU: the CPU kernel's operations in the same
 * order, each rounded on its own (the _rn intrinsics stop nvcc from fusing
 * multiply-adds and from using approximate division), so results agree
 * with the CPU bit for bit. */
#include <string.h>

#include "cuda_util.h"
#include "intensity.h"

struct sir_args {
  xf_sir_f32 f;
  double a_min, range, b_range, b_min, b_max; /* float64 path */
  bool has_b_min, has_b_max, clip, affine;
  int in_dt, out_dt;
  bool linear;  /* input walks like the output: offset = index */
  int64_t n;
  lmc_dims d;
};

LMC_HD float sir_f32(const xf_sir_f32 &f, float x)
{
  if (f.mode == 0) {
    float t = lmc_fsub(x, f.a_min);
    return f.add_b_min ? lmc_fadd(t, f.b_min) : t;
  }
  float y = lmc_fdiv(lmc_fsub(x, f.a_min), f.range);
  if (f.mode == 2) y = lmc_fadd(lmc_fmul(y, f.b_range), f.b_min);
  if (f.clip_lo) y = y < f.lo ? f.lo : y;
  if (f.clip_hi) y = f.hi < y ? f.hi : y;
  return y;
}

LMC_HD double sir_f64(const sir_args &a, double x)
{
  double t = lmc_dsub(x, a.a_min);
  if (a.range == 0.0) return a.has_b_min ? lmc_dadd(t, a.b_min) : t;
  t = lmc_ddiv(t, a.range);
  if (a.affine) t = lmc_dadd(lmc_dmul(t, a.b_range), a.b_min);
  if (a.clip && a.has_b_min) t = t < a.b_min ? a.b_min : t;
  if (a.clip && a.has_b_max) t = a.b_max < t ? a.b_max : t;
  return t;
}

struct sir_kernel {
  const void *in;
  void *out;
  sir_args a;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i = a.linear ? o : lmc_in_offset(a.d, o);
    if (a.in_dt == LM_F64) {
      lmc_store_f64(out, o, a.out_dt, sir_f64(a, ((const double *)in)[i]));
    } else {
      float y = sir_f32(a.f, lmc_load_f32(in, i, a.in_dt));
      if (a.out_dt == LM_F32) ((float *)out)[o] = y;
      else lmc_store_f64(out, o, a.out_dt, (double)y);
    }
  }
};

extern "C" int lmc_scale_intensity_range(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  xf_sir p;
  lm_dtype dt;
  int st = xf_sir_options(ctx, &p, &dt);
  if (st < 0) return st;
  lm_device dev = lm_tensor_device(in);
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  st = lm_tensor_new_like(in, dt, dev, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d", dev.index);

  sir_args a;
  memset(&a, 0, sizeof a);
  xf_sir_prepare_f32(&p, &a.f);
  a.a_min = p.a_min;
  a.range = p.a_max - p.a_min;
  a.b_range = p.b_max - p.b_min;
  a.b_min = p.b_min;
  a.b_max = p.b_max;
  a.has_b_min = p.has_b_min;
  a.has_b_max = p.has_b_max;
  a.clip = p.clip;
  a.affine = p.has_b_min && p.has_b_max;
  a.in_dt = lm_tensor_dtype(in);
  a.out_dt = dt;
  a.n = lm_tensor_numel(in);
  a.d.ndim = lm_tensor_ndim(in);
  a.linear = true;
  for (int k = 0; k < a.d.ndim; k++) {
    a.d.shape[k] = lm_tensor_shape(in)[k];
    a.d.in_stride[k] = lm_tensor_strides(in)[k];
    a.d.out_stride[k] = lm_tensor_strides(out)[k];
    if (a.d.shape[k] > 1 && a.d.in_stride[k] != a.d.out_stride[k])
      a.linear = false;
  }
  cudaError_t e = lmc_for_each(s, a.n, sir_kernel{lm_tensor_data(in), lm_tensor_data(out), a});
  return lmc_finish(ctx, s, e, "ScaleIntensityRange kernel", &out, 1);
}
