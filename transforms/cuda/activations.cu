/* Sigmoid, Softmax and Threshold on the GPU: the CPU kernels' float32
 * operations in their order (transforms/activations.c, threshold.c), each
 * rounded on its own.  expf is the CUDA library's on the device (within 2
 * ulp of libm), so Sigmoid and Softmax agree with the CPU to a relative
 * 1e-6, Threshold exactly. */
#include <string.h>

#include "lmc_copy.h"
extern "C" {
#include "xf_util.h"
}

/* ---- Sigmoid ---------------------------------------------------------- */

struct sigmoid_kernel {
  const void *in;
  float *out;
  int in_dt;
  bool linear;
  lmc_dims d;
  LMC_HD void operator()(int64_t o) const
  {
    float x = lmc_load_f32(in, linear ? o : lmc_in_offset(d, o), in_dt);
    out[o] = lmc_fdiv(1.0f, lmc_fadd(1.0f, lmc_expf(-x)));
  }
};

extern "C" int lmc_sigmoid(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  lm_device dev = lm_tensor_device(in);
  cudaStream_t s;
  int st;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  st = lm_tensor_new_like(in, LM_F32, dev, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d", dev.index);
  sigmoid_kernel k;
  memset(&k, 0, sizeof k);
  k.in = lm_tensor_data(in);
  k.out = (float *)lm_tensor_data(out);
  k.in_dt = lm_tensor_dtype(in);
  k.linear = lmc_dims_fill(&k.d, in, out);
  cudaError_t e = lmc_for_each(s, lm_tensor_numel(out), k);
  return lmc_finish(ctx, s, e, "Sigmoid kernel", &out, 1);
}

/* ---- Threshold -------------------------------------------------------- */

struct threshold_kernel {
  const void *in;
  void *out;
  int in_dt, out_dt;
  double t;
  bool strict, linear;
  lmc_dims d;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i = linear ? o : lmc_in_offset(d, o);
    bool y;
    /* torch's promotion: float64 tensors compare in double, everything
     * else in float32 against the threshold rounded to float32. */
    if (in_dt == LM_F64) {
      double x = ((const double *)in)[i];
      y = strict ? x > t : x >= t;
    } else {
      float x = lmc_load_f32(in, i, in_dt), tf = (float)t;
      y = strict ? x > tf : x >= tf;
    }
    if (out_dt == LM_U8) ((uint8_t *)out)[o] = y;
    else lmc_store_f64(out, o, out_dt, y ? 1.0 : 0.0);
  }
};

extern "C" int lmc_threshold(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  lm_dtype dt;
  int st = xf_arg_dtype(ctx, "dtype", LM_U8, &dt);
  if (st < 0) return st;
  lm_device dev = lm_tensor_device(in);
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  st = lm_tensor_new_like(in, dt, dev, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d", dev.index);
  threshold_kernel k;
  memset(&k, 0, sizeof k);
  k.in = lm_tensor_data(in);
  k.out = lm_tensor_data(out);
  k.in_dt = lm_tensor_dtype(in);
  k.out_dt = dt;
  k.t = lm_arg_number(ctx, "threshold");
  k.strict = lm_arg_bool(ctx, "strict");
  k.linear = lmc_dims_fill(&k.d, in, out);
  cudaError_t e = lmc_for_each(s, lm_tensor_numel(out), k);
  return lmc_finish(ctx, s, e, "Threshold kernel", &out, 1);
}

/* ---- Softmax ---------------------------------------------------------- */

/* One thread per position (all dims but the axis), positions numbered in
 * the output's memory order so that, for each channel, neighbouring
 * threads write neighbouring floats. */
struct softmax_kernel {
  const void *in;
  float *out;
  int in_dt;
  int64_t nch, in_cs, out_cs; /* channel count and element strides */
  lmc_dims din, dout;         /* position -> input / output offset */
  LMC_HD void operator()(int64_t p) const
  {
    int64_t i = lmc_in_offset(din, p), o = lmc_in_offset(dout, p);
    /* Max over the channels; a NaN wins and stays (torch's max). */
    float mx = lmc_load_f32(in, i, in_dt);
    for (int64_t c = 1; c < nch; c++) {
      float x = lmc_load_f32(in, i + c * in_cs, in_dt);
      if (x > mx || x != x) mx = x;
    }
    float sum = 0.0f;
    for (int64_t c = 0; c < nch; c++) {
      float e = lmc_expf(lmc_fsub(lmc_load_f32(in, i + c * in_cs, in_dt), mx));
      out[o + c * out_cs] = e;
      sum = lmc_fadd(sum, e);
    }
    for (int64_t c = 0; c < nch; c++) out[o + c * out_cs] = lmc_fdiv(out[o + c * out_cs], sum);
  }
};

extern "C" int lmc_softmax(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  int nd = lm_tensor_ndim(in), axis;
  if (nd < 1)
    return lm_ctx_error(ctx, LM_ESHAPE, "input is a scalar (0-d); Softmax needs an axis");
  int st = xf_arg_axis(ctx, "axis", nd, &axis);
  if (st < 0) return st;
  lm_device dev = lm_tensor_device(in);
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  st = lm_tensor_new_like(in, LM_F32, dev, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d", dev.index);

  softmax_kernel k;
  memset(&k, 0, sizeof k);
  k.in = lm_tensor_data(in);
  k.out = (float *)lm_tensor_data(out);
  k.in_dt = lm_tensor_dtype(in);
  k.nch = lm_tensor_shape(in)[axis];
  k.in_cs = lm_tensor_strides(in)[axis];
  k.out_cs = lm_tensor_strides(out)[axis];
  /* Dense position strides over the other dims, in the output's memory
   * order (fastest last in `order`). */
  int order[LM_MAX_DIMS];
  xf_memory_order(out, order);
  int64_t pos_stride[LM_MAX_DIMS], step = 1;
  for (int j = nd - 1; j >= 0; j--) {
    int d = order[j];
    if (d == axis) continue;
    pos_stride[d] = step;
    step *= lm_tensor_shape(in)[d];
  }
  for (int d = 0; d < nd; d++) {
    if (d == axis) continue;
    int m = k.din.ndim++;
    k.dout.ndim++;
    k.din.shape[m] = k.dout.shape[m] = lm_tensor_shape(in)[d];
    k.din.in_stride[m] = lm_tensor_strides(in)[d];
    k.dout.in_stride[m] = lm_tensor_strides(out)[d];
    k.din.out_stride[m] = k.dout.out_stride[m] = pos_stride[d];
  }
  int64_t npos = k.nch > 0 ? lm_tensor_numel(out) / k.nch : 0;
  cudaError_t e = lmc_for_each(s, npos, k);
  return lmc_finish(ctx, s, e, "Softmax kernel", &out, 1);
}
