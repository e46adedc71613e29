/* Helpers shared by the CUDA plugin's files: the per-thread stream, error
 * reporting into the kernel context, and element loads / stores that follow
 * the CPU's conversion rules (transforms/xf_util.h) exactly. */
#ifndef LM_CUDA_UTIL_H
#define LM_CUDA_UTIL_H
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "lumen.h"

/* The stream of the calling executor thread for `device`, created on first
 * use (thread_init normally does it); NULL with err filled on failure. */
cudaStream_t lmc_thread_stream(int device, char *err, size_t errlen);

/* Report a CUDA failure through the kernel context (LM_ECUDA). */
int lmc_fail(lm_op_ctx *ctx, const char *what, cudaError_t e);

/* Shape and strides of an operand, passed to kernels by value. */
struct lmc_dims {
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  int64_t in_stride[LM_MAX_DIMS];   /* elements */
  int64_t out_stride[LM_MAX_DIMS];  /* elements; the output is dense */
};

__device__ __forceinline__ float lmc_load_f32(const void *base, int64_t i,
                                              int dt)
{
  switch (dt) {
  case LM_U8: return (float)((const uint8_t *)base)[i];
  case LM_I8: return (float)((const int8_t *)base)[i];
  case LM_I16: return (float)((const int16_t *)base)[i];
  case LM_U16: return (float)((const uint16_t *)base)[i];
  case LM_I32: return (float)((const int32_t *)base)[i];
  case LM_U32: return (float)((const uint32_t *)base)[i];
  case LM_I64: return (float)((const int64_t *)base)[i];
  case LM_F16:
    return __half2float(__ushort_as_half(((const uint16_t *)base)[i]));
  case LM_BF16:
    return __uint_as_float((uint32_t)((const uint16_t *)base)[i] << 16);
  case LM_F32: return ((const float *)base)[i];
  default: return (float)((const double *)base)[i];
  }
}

/* Floats to integers: NaN -> 0, saturate, else truncate toward zero. */
__device__ __forceinline__ int64_t lmc_sat(double v, double lo, double hi)
{
  if (v != v) return 0;
  if (v <= lo) return (int64_t)lo;
  if (v >= hi) return (int64_t)hi;
  return (int64_t)v;
}

__device__ __forceinline__ uint16_t lmc_f32_to_bf16(float f)
{
  /* Round to nearest even on the upper half; NaN stays a quiet NaN. */
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

__device__ __forceinline__ void lmc_store_f64(void *base, int64_t i, int dt,
                                              double v)
{
  switch (dt) {
  case LM_U8: ((uint8_t *)base)[i] = (uint8_t)lmc_sat(v, 0, 255); break;
  case LM_I8: ((int8_t *)base)[i] = (int8_t)lmc_sat(v, -128, 127); break;
  case LM_I16: ((int16_t *)base)[i] = (int16_t)lmc_sat(v, -32768, 32767); break;
  case LM_U16: ((uint16_t *)base)[i] = (uint16_t)lmc_sat(v, 0, 65535); break;
  case LM_I32:
    ((int32_t *)base)[i] = (int32_t)lmc_sat(v, -2147483648.0, 2147483647.0);
    break;
  case LM_U32: ((uint32_t *)base)[i] = (uint32_t)lmc_sat(v, 0, 4294967295.0); break;
  case LM_I64:
    if (v != v) ((int64_t *)base)[i] = 0;
    else if (v >= 9223372036854775808.0) ((int64_t *)base)[i] = INT64_MAX;
    else if (v <= -9223372036854775808.0) ((int64_t *)base)[i] = INT64_MIN;
    else ((int64_t *)base)[i] = (int64_t)v;
    break;
  case LM_F16:
    ((uint16_t *)base)[i] = __half_as_ushort(__float2half_rn((float)v));
    break;
  case LM_BF16: ((uint16_t *)base)[i] = lmc_f32_to_bf16((float)v); break;
  case LM_F32: ((float *)base)[i] = (float)v; break;
  default: ((double *)base)[i] = v; break;
  }
}

/* Offset in the (strided) input of the element whose offset in the dense
 * output is `o`. */
__device__ __forceinline__ int64_t lmc_in_offset(const lmc_dims &d, int64_t o)
{
  int64_t off = 0;
  for (int k = 0; k < d.ndim; k++)
    if (d.shape[k] > 1) off += (o / d.out_stride[k]) % d.shape[k] * d.in_stride[k];
  return off;
}

#endif
