/* Helpers shared by the CUDA plugin's files: launching element-wise kernels,
 * the op's stream, scratch memory, finishing an op, error reporting, and
 * element loads / stores that follow the CPU's conversion rules
 * (transforms/xf_util.h) exactly.
 *
 * Every kernel is a functor with an `LMC_HD void operator()(int64_t i)`
 * launched by lmc_for_each.  The same sources compile two ways:
 *   - with nvcc into liblumen_cuda.so: a grid-stride kernel on the device;
 *   - with the host C++ compiler and -DLMC_EMULATE into liblumen_cuda_emu.so:
 *     a plain loop on the host over host memory, the plugin reporting one
 *     emulated device.  The GPU tests run against both, so the kernels' index
 *     arithmetic, dtype rules and numerics are checked on machines without a
 *     GPU, and a GPU run only has to confirm the device side.
 * Hence the rules for functors: no shared memory, no __syncthreads, no warp
 * intrinsics; reductions as two levels of per-thread loops; atomics and
 * device-only intrinsics only through the lmc_ wrappers below. */
#ifndef LM_CUDA_UTIL_H
#define LM_CUDA_UTIL_H
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lumen.h"

#ifdef LMC_EMULATE
#define LMC_HD inline
#else
#define LMC_HD __host__ __device__ __forceinline__
#endif

/* ---- the op's stream, memory, completion ---------------------------------- */

/* The stream of the calling executor thread for `device`, created on first
 * use (thread_init normally does it); NULL with err filled on failure.  In
 * the emulated plugin streams do not exist: it returns NULL and no error. */
cudaStream_t lmc_thread_stream(int device, char *err, size_t errlen);

/* The calling thread's cuDNN handle for `device`, bound to the device's
 * compute stream; made on first use and destroyed when the executor thread
 * ends.  NULL with err filled when cuDNN cannot start (no GPU, the emulated
 * plugin). */
typedef struct cudnnContext *cudnnHandle_t; /* as cudnn.h */
cudnnHandle_t lmc_cudnn_handle(int device, char *err, size_t errlen);

/* A stream of the calling thread's own for capturing a CUDA graph; launch
 * the graph on the compute stream.  Capturing on the compute stream itself
 * is wrong: other threads queue frees, events and copies on it at any time
 * (a storage released on the loop thread, ToDevice on the CPU pool), and
 * those would be captured into the graph.  NULL in the emulated plugin. */
cudaStream_t lmc_capture_stream(int device, char *err, size_t errlen);

/* The compute stream of the device the op's CUDA inputs live on, in *s.
 * LM_OK, or an error set on ctx. */
int lmc_stream(lm_op_ctx *ctx, cudaStream_t *s);
/* The device index of the op's first CUDA input (0 when none). */
int lmc_ctx_device(lm_op_ctx *ctx);

/* Report a CUDA failure through the kernel context (LM_ECUDA). */
int lmc_fail(lm_op_ctx *ctx, const char *what, cudaError_t e);

/* Scratch device memory for one op, ordered on stream s: freed memory is
 * reused by later work on the same stream without a synchronisation.
 * NULL with the error set on ctx when out of memory. */
void *lmc_scratch_alloc(lm_op_ctx *ctx, cudaStream_t s, size_t bytes);
void lmc_scratch_free(lm_op_ctx *ctx, cudaStream_t s, void *p);

/* Small copies for kernels (parameter tables in, scalars out).  The copy to
 * the host synchronises the stream.  LM_OK or an error set on ctx. */
int lmc_copy_to_device(lm_op_ctx *ctx, cudaStream_t s, void *dst, const void *src, size_t n);
int lmc_copy_to_host(lm_op_ctx *ctx, cudaStream_t s, void *dst, const void *src, size_t n);

/* End of an op's launches: err is the first launch error (cudaSuccess when
 * all went well).  On success the outputs are marked ready on s and set as
 * the op's outputs 0..nout-1; on failure they are released and the error is
 * reported as "<what>: <CUDA message>".  Returns the op's status. */
int lmc_finish(lm_op_ctx *ctx, cudaStream_t s, cudaError_t err, const char *what,
               lm_tensor *const *outs, int nout);

/* ---- launching --------------------------------------------------------- */

#ifndef LMC_EMULATE
template <class F> __global__ void lmc_for_each_kernel(int64_t n, F f)
{
  int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}
#endif

/* f(i) for every i in [0, n), on stream s.  Returns the launch error. */
template <class F> static inline cudaError_t lmc_for_each(cudaStream_t s, int64_t n, const F &f)
{
  if (n <= 0) return cudaSuccess;
#ifdef LMC_EMULATE
  (void)s;
  for (int64_t i = 0; i < n; i++) f(i);
  return cudaSuccess;
#else
  const int threads = 256;
  int64_t blocks = (n + threads - 1) / threads;
  /* Enough blocks to fill any current GPU several times over; the loop
   * strides over the rest. */
  if (blocks > 16384) blocks = 16384;
  lmc_for_each_kernel<<<(unsigned)blocks, threads, 0, s>>>(n, f);
  return cudaGetLastError();
#endif
}

/* ---- arithmetic without contraction ---------------------------------------
 * On the device nvcc contracts a*b+c into an FMA and may use approximate
 * division; the CPU kernels round every operation on its own.  These keep
 * each operation correctly rounded on both sides. */

LMC_HD float lmc_fadd(float a, float b)
{
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
LMC_HD float lmc_fsub(float a, float b)
{
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
LMC_HD float lmc_fmul(float a, float b)
{
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
LMC_HD float lmc_fdiv(float a, float b)
{
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
LMC_HD float lmc_fsqrt(float a)
{
#ifdef __CUDA_ARCH__
  return __fsqrt_rn(a);
#else
  return sqrtf(a);
#endif
}
LMC_HD double lmc_dadd(double a, double b)
{
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
LMC_HD double lmc_dsub(double a, double b)
{
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
LMC_HD double lmc_dmul(double a, double b)
{
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
LMC_HD double lmc_ddiv(double a, double b)
{
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
/* expf / logf / tanhf / erff: the CUDA math library on the device (within
 * 1-2 ulp), libm on the host.  Float paths are compared with a relative
 * tolerance, never bit for bit, where these are used. */
LMC_HD float lmc_expf(float a) { return expf(a); }
LMC_HD float lmc_logf(float a) { return logf(a); }
LMC_HD float lmc_tanhf(float a) { return tanhf(a); }
LMC_HD float lmc_erff(float a) { return erff(a); }

LMC_HD uint32_t lmc_float_as_uint(float f)
{
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
#endif
}
LMC_HD float lmc_uint_as_float(uint32_t u)
{
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, 4);
  return f;
#endif
}

/* ---- atomics (plain read-modify-write in the single-threaded emulation) --- */

LMC_HD float lmc_atomic_add_f32(float *p, float v)
{
#ifdef __CUDA_ARCH__
  return atomicAdd(p, v);
#else
  float old = *p;
  *p = old + v;
  return old;
#endif
}
LMC_HD unsigned long long lmc_atomic_add_u64(unsigned long long *p, unsigned long long v)
{
#ifdef __CUDA_ARCH__
  return atomicAdd(p, v);
#else
  unsigned long long old = *p;
  *p = old + v;
  return old;
#endif
}
LMC_HD unsigned lmc_atomic_add_u32(unsigned *p, unsigned v)
{
#ifdef __CUDA_ARCH__
  return atomicAdd(p, v);
#else
  unsigned old = *p;
  *p = old + v;
  return old;
#endif
}
LMC_HD int lmc_atomic_min_i32(int *p, int v)
{
#ifdef __CUDA_ARCH__
  return atomicMin(p, v);
#else
  int old = *p;
  if (v < old) *p = v;
  return old;
#endif
}
LMC_HD int lmc_atomic_max_i32(int *p, int v)
{
#ifdef __CUDA_ARCH__
  return atomicMax(p, v);
#else
  int old = *p;
  if (v > old) *p = v;
  return old;
#endif
}
LMC_HD long long lmc_atomic_min_i64(long long *p, long long v)
{
#ifdef __CUDA_ARCH__
  return atomicMin(p, v);
#else
  long long old = *p;
  if (v < old) *p = v;
  return old;
#endif
}
LMC_HD int lmc_atomic_cas_i32(int *p, int expected, int desired)
{
#ifdef __CUDA_ARCH__
  return atomicCAS(p, expected, desired);
#else
  int old = *p;
  if (old == expected) *p = desired;
  return old;
#endif
}

/* ---- operands ---------------------------------------------------------- */

/* Shape and strides of an operand, passed to kernels by value. */
struct lmc_dims {
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  int64_t in_stride[LM_MAX_DIMS];   /* elements */
  int64_t out_stride[LM_MAX_DIMS];  /* elements; the output is dense */
};

/* Offset in the (strided) input of the element whose offset in the dense
 * output is `o`. */
LMC_HD int64_t lmc_in_offset(const lmc_dims &d, int64_t o)
{
  int64_t off = 0;
  if ((uint64_t)o <= 0xffffffffu) {
    /* 64-bit division costs several times a 32-bit one on the GPU, and the
     * streaming kernels do little else per element. */
    uint32_t u = (uint32_t)o;
    for (int k = 0; k < d.ndim; k++) {
      if (d.shape[k] <= 1) continue;
      uint64_t st = (uint64_t)d.out_stride[k], sh = (uint64_t)d.shape[k];
      uint32_t q = st > 0xffffffffu ? 0u : u / (uint32_t)st;
      if (sh <= 0xffffffffu) q %= (uint32_t)sh;
      off += (int64_t)q * d.in_stride[k];
    }
    return off;
  }
  for (int k = 0; k < d.ndim; k++)
    if (d.shape[k] > 1) off += (o / d.out_stride[k]) % d.shape[k] * d.in_stride[k];
  return off;
}

LMC_HD float lmc_f16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
LMC_HD uint16_t lmc_f32_to_f16(float f) { return __half_as_ushort(__float2half_rn(f)); }
LMC_HD float lmc_bf16_to_f32(uint16_t h) { return lmc_uint_as_float((uint32_t)h << 16); }
LMC_HD uint16_t lmc_f32_to_bf16(float f)
{
  /* Round to nearest even on the upper half; NaN stays a quiet NaN. */
  uint32_t u = lmc_float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

LMC_HD float lmc_load_f32(const void *base, int64_t i, int dt)
{
  switch (dt) {
  case LM_U8: return (float)((const uint8_t *)base)[i];
  case LM_I8: return (float)((const int8_t *)base)[i];
  case LM_I16: return (float)((const int16_t *)base)[i];
  case LM_U16: return (float)((const uint16_t *)base)[i];
  case LM_I32: return (float)((const int32_t *)base)[i];
  case LM_U32: return (float)((const uint32_t *)base)[i];
  case LM_I64: return (float)((const int64_t *)base)[i];
  case LM_F16: return lmc_f16_to_f32(((const uint16_t *)base)[i]);
  case LM_BF16: return lmc_bf16_to_f32(((const uint16_t *)base)[i]);
  case LM_F32: return ((const float *)base)[i];
  default: return (float)((const double *)base)[i];
  }
}

LMC_HD double lmc_load_f64(const void *base, int64_t i, int dt)
{
  switch (dt) {
  case LM_U8: return ((const uint8_t *)base)[i];
  case LM_I8: return ((const int8_t *)base)[i];
  case LM_I16: return ((const int16_t *)base)[i];
  case LM_U16: return ((const uint16_t *)base)[i];
  case LM_I32: return ((const int32_t *)base)[i];
  case LM_U32: return ((const uint32_t *)base)[i];
  case LM_I64: return (double)((const int64_t *)base)[i];
  case LM_F16: return lmc_f16_to_f32(((const uint16_t *)base)[i]);
  case LM_BF16: return lmc_bf16_to_f32(((const uint16_t *)base)[i]);
  case LM_F32: return ((const float *)base)[i];
  default: return ((const double *)base)[i];
  }
}

/* Floats to integers: NaN -> 0, saturate, else truncate toward zero. */
LMC_HD int64_t lmc_sat(double v, double lo, double hi)
{
  if (v != v) return 0;
  if (v <= lo) return (int64_t)lo;
  if (v >= hi) return (int64_t)hi;
  return (int64_t)v;
}

LMC_HD void lmc_store_f64(void *base, int64_t i, int dt, double v)
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
  case LM_F16: ((uint16_t *)base)[i] = lmc_f32_to_f16((float)v); break;
  case LM_BF16: ((uint16_t *)base)[i] = lmc_f32_to_bf16((float)v); break;
  case LM_F32: ((float *)base)[i] = (float)v; break;
  default: ((double *)base)[i] = v; break;
  }
}

#endif
