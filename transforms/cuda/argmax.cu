/* Argmax on the GPU: one thread per output voxel scans the axis in
 * increasing order with a strict '>', a NaN beating every number and only
 * the first NaN counting: the CPU kernel's tie and NaN rules. */
#include <string.h>

#include "argmax.h"
#include "cuda_util.h"

struct argmax_args {
  int in_dt, out_dt;
  int64_t nch, ch_stride; /* elements */
  int64_t n;              /* output elements */
  lmc_dims d;             /* the dims other than the axis */
};

/* Values compared in their own type: integers exactly, float16 / bfloat16
 * as float32 (exact), as the CPU does. */
template <typename T>
LMC_HD int64_t scan(const T *p, int64_t nch, int64_t cs)
{
  T best = p[0];
  int64_t idx = 0;
  for (int64_t c = 1; c < nch; c++) {
    T v = p[c * cs];
    if (v > best || (v != v && best == best)) {
      best = v;
      idx = c;
    }
  }
  return idx;
}

LMC_HD int64_t scan_f(const void *base, int64_t off,
                                          int dt, int64_t nch, int64_t cs)
{
  float best = lmc_load_f32(base, off, dt);
  int64_t idx = 0;
  for (int64_t c = 1; c < nch; c++) {
    float v = lmc_load_f32(base, off + c * cs, dt);
    if (v > best || (v != v && best == best)) {
      best = v;
      idx = c;
    }
  }
  return idx;
}

struct argmax_kernel {
  const void *in;
  void *out;
  argmax_args a;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t off = lmc_in_offset(a.d, o), idx;
    switch (a.in_dt) {
    case LM_U8: idx = scan((const uint8_t *)in + off, a.nch, a.ch_stride); break;
    case LM_I8: idx = scan((const int8_t *)in + off, a.nch, a.ch_stride); break;
    case LM_I16: idx = scan((const int16_t *)in + off, a.nch, a.ch_stride); break;
    case LM_U16: idx = scan((const uint16_t *)in + off, a.nch, a.ch_stride); break;
    case LM_I32: idx = scan((const int32_t *)in + off, a.nch, a.ch_stride); break;
    case LM_U32: idx = scan((const uint32_t *)in + off, a.nch, a.ch_stride); break;
    case LM_I64: idx = scan((const int64_t *)in + off, a.nch, a.ch_stride); break;
    case LM_F32: idx = scan((const float *)in + off, a.nch, a.ch_stride); break;
    case LM_F64: idx = scan((const double *)in + off, a.nch, a.ch_stride); break;
    default: idx = scan_f(in, off, a.in_dt, a.nch, a.ch_stride); break;
    }
    switch (a.out_dt) {
    case LM_U8: ((uint8_t *)out)[o] = (uint8_t)idx; break;
    case LM_I32: ((int32_t *)out)[o] = (int32_t)idx; break;
    default: lmc_store_f64(out, o, a.out_dt, (double)idx); break;
    }
  }
};

extern "C" int lmc_argmax(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  xf_argmax_opts o;
  int st = xf_argmax_options(ctx, in, &o);
  if (st < 0) return st;
  lm_device dev = lm_tensor_device(in);
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  st = xf_argmax_output(ctx, in, &o, dev, &out);
  if (st < 0) return st;

  argmax_args a;
  memset(&a, 0, sizeof a);
  a.in_dt = lm_tensor_dtype(in);
  a.out_dt = o.dt;
  a.nch = o.nch;
  a.ch_stride = lm_tensor_strides(in)[o.axis];
  a.n = lm_tensor_numel(out);
  int nd = lm_tensor_ndim(in);
  for (int k = 0; k < nd; k++) {
    if (k == o.axis) continue;
    int ok = o.keepdim || k < o.axis ? k : k - 1;
    a.d.shape[a.d.ndim] = lm_tensor_shape(in)[k];
    a.d.in_stride[a.d.ndim] = lm_tensor_strides(in)[k];
    a.d.out_stride[a.d.ndim] = lm_tensor_strides(out)[ok];
    a.d.ndim++;
  }
  cudaError_t e = lmc_for_each(s, a.n, argmax_kernel{lm_tensor_data(in), lm_tensor_data(out), a});
  return lmc_finish(ctx, s, e, "Argmax kernel", &out, 1);
}
