/* Cast on the GPU, and the same-shape converting copy other ops reuse
 * (lmc_copy.h).  The conversion paths are the CPU's (transforms/cast.c):
 * integer to integer exactly through int64 with saturation; float32 /
 * float16 / bfloat16 through float; everything else through double. */
#include <string.h>

#include "lmc_copy.h"
extern "C" {
#include "xf_util.h"
}

LMC_HD bool is_int_dt(int dt) { return dt != LM_F16 && dt != LM_BF16 && dt != LM_F32 && dt != LM_F64; }

LMC_HD int64_t load_i64(const void *base, int64_t i, int dt)
{
  switch (dt) {
  case LM_U8: return ((const uint8_t *)base)[i];
  case LM_I8: return ((const int8_t *)base)[i];
  case LM_I16: return ((const int16_t *)base)[i];
  case LM_U16: return ((const uint16_t *)base)[i];
  case LM_I32: return ((const int32_t *)base)[i];
  case LM_U32: return ((const uint32_t *)base)[i];
  default: return ((const int64_t *)base)[i];
  }
}

/* Integers saturate at the target's range (xf_util.c i64_saturate). */
LMC_HD void store_i64(void *base, int64_t i, int dt, int64_t v)
{
#define SAT(lo, hi) (v < (lo) ? (lo) : v > (hi) ? (hi) : v)
  switch (dt) {
  case LM_U8: ((uint8_t *)base)[i] = (uint8_t)SAT(0, 255); break;
  case LM_I8: ((int8_t *)base)[i] = (int8_t)SAT(-128, 127); break;
  case LM_I16: ((int16_t *)base)[i] = (int16_t)SAT(-32768, 32767); break;
  case LM_U16: ((uint16_t *)base)[i] = (uint16_t)SAT(0, 65535); break;
  case LM_I32: ((int32_t *)base)[i] = (int32_t)SAT(INT32_MIN, (int64_t)INT32_MAX); break;
  case LM_U32: ((uint32_t *)base)[i] = (uint32_t)SAT(0, (int64_t)UINT32_MAX); break;
  default: ((int64_t *)base)[i] = v; break;
  }
#undef SAT
}

struct convert_kernel {
  const void *in;
  void *out;
  int in_dt, out_dt;
  bool linear;
  lmc_dims d;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i = linear ? o : lmc_in_offset(d, o);
    if (is_int_dt(in_dt) && is_int_dt(out_dt))
      store_i64(out, o, out_dt, load_i64(in, i, in_dt));
    else if (in_dt == LM_F32 || in_dt == LM_F16 || in_dt == LM_BF16)
      lmc_store_f64(out, o, out_dt, (double)lmc_load_f32(in, i, in_dt));
    else
      lmc_store_f64(out, o, out_dt, lmc_load_f64(in, i, in_dt));
  }
};

/* Same dtype: the bits move unchanged (NaN payloads, -0). */
template <typename T> struct move_kernel {
  const T *in;
  T *out;
  bool linear;
  lmc_dims d;
  LMC_HD void operator()(int64_t o) const { out[o] = in[linear ? o : lmc_in_offset(d, o)]; }
};

template <typename T>
static cudaError_t launch_move(cudaStream_t s, int64_t n, const void *in, void *out, bool linear,
                               const lmc_dims &d)
{
  return lmc_for_each(s, n, move_kernel<T>{(const T *)in, (T *)out, linear, d});
}

cudaError_t lmc_launch_convert(cudaStream_t s, const lm_tensor *in, lm_tensor *out)
{
  lmc_dims d;
  bool linear = lmc_dims_fill(&d, in, out);
  int64_t n = lm_tensor_numel(out);
  lm_dtype idt = lm_tensor_dtype(in), odt = lm_tensor_dtype(out);
  const void *i = lm_tensor_data(in);
  void *o = lm_tensor_data(out);
  if (idt == odt) {
    switch (lm_dtype_size(idt)) {
    case 1: return launch_move<uint8_t>(s, n, i, o, linear, d);
    case 2: return launch_move<uint16_t>(s, n, i, o, linear, d);
    case 4: return launch_move<uint32_t>(s, n, i, o, linear, d);
    default: return launch_move<uint64_t>(s, n, i, o, linear, d);
    }
  }
  return lmc_for_each(s, n, convert_kernel{i, o, (int)idt, (int)odt, linear, d});
}

extern "C" int lmc_cast(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  lm_dtype dt;
  int st = xf_arg_dtype(ctx, "dtype", -1, &dt);
  if (st < 0) return st;
  /* Same dtype: the input itself, as the CPU op (torch's .to(dtype)). */
  if (dt == lm_tensor_dtype(in)) return lm_ctx_set_output(ctx, 0, lm_tensor_retain(in));
  lm_device dev = lm_tensor_device(in);
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  st = lm_tensor_new_like(in, dt, dev, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d", dev.index);
  cudaError_t e = lmc_launch_convert(s, in, out);
  return lmc_finish(ctx, s, e, "Cast kernel", &out, 1);
}
