/* liblumen_cuda.so: the CUDA plugin's entry table (engine/src/cuda_plugin.h):
 * device probing, memory, copies, per-thread streams and kernel
 * registration.  The engine dlopen()s it; liblumen never links CUDA.
 *
 * Built with -DLMC_EMULATE (liblumen_cuda_emu.so, see cuda_util.h) the same
 * table describes one emulated device whose memory is host memory, so the
 * GPU tests run the kernels' host emulation on machines without a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_plugin.h"
#include "cuda_util.h"

extern "C" int lmc_scale_intensity_range(lm_op_ctx *ctx);
extern "C" int lmc_argmax(lm_op_ctx *ctx);
/* xf1: intensity, activation and geometry kernels */
extern "C" int lmc_cast(lm_op_ctx *ctx);
extern "C" int lmc_sigmoid(lm_op_ctx *ctx);
extern "C" int lmc_softmax(lm_op_ctx *ctx);
extern "C" int lmc_threshold(lm_op_ctx *ctx);
extern "C" int lmc_orientation(lm_op_ctx *ctx);
extern "C" int lmc_spatial_crop(lm_op_ctx *ctx);
extern "C" int lmc_center_crop(lm_op_ctx *ctx);
extern "C" int lmc_spatial_pad(lm_op_ctx *ctx);
extern "C" int lmc_divisible_pad(lm_op_ctx *ctx);

#ifdef LMC_EMULATE

cudaStream_t lmc_thread_stream(int device, char *err, size_t errlen)
{
  (void)device;
  if (err && errlen) err[0] = 0;
  return NULL;
}

static int plugin_init(char *msg, size_t msglen)
{
  snprintf(msg, msglen, "1 device: emulated CUDA device (host memory, kernels run on the CPU; tests only)");
  return 1;
}

static void *plugin_malloc(int device, size_t nbytes)
{
  (void)device;
  /* cudaMalloc's alignment, and a non-NULL pointer for empty tensors. */
  size_t n = (nbytes + 255) & ~(size_t)255;
  return aligned_alloc(256, n ? n : 256);
}

static void plugin_free(int device, void *ptr)
{
  (void)device;
  free(ptr);
}

static int plugin_copy(int device, void *dst, const void *src, size_t n, char *err, size_t errlen)
{
  (void)device;
  (void)err;
  (void)errlen;
  memmove(dst, src, n);
  return LM_OK;
}
#define plugin_h2d plugin_copy
#define plugin_d2h plugin_copy
#define plugin_d2d plugin_copy

static int plugin_thread_init(int device, char *err, size_t errlen)
{
  (void)device;
  (void)err;
  (void)errlen;
  return LM_OK;
}

#else

/* One stream per executor thread (the engine runs one thread per device). */
static thread_local cudaStream_t tl_stream;
static thread_local int tl_device = -1;

static void put_error(char *err, size_t errlen, const char *what,
                      cudaError_t e)
{
  if (err && errlen) snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
}

cudaStream_t lmc_thread_stream(int device, char *err, size_t errlen)
{
  if (tl_stream && tl_device == device) return tl_stream;
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) {
    cudaStream_t s;
    e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e == cudaSuccess) {
      tl_stream = s;
      tl_device = device;
      return s;
    }
  }
  put_error(err, errlen, "cannot create a stream", e);
  return NULL;
}

static int plugin_init(char *msg, size_t msglen)
{
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    snprintf(msg, msglen, "no CUDA device: %s", cudaGetErrorString(e));
    cudaGetLastError(); /* clear the sticky-free error state */
    return 0;
  }
  if (n == 0) {
    snprintf(msg, msglen, "no CUDA device: none found");
    return 0;
  }
  cudaDeviceProp p;
  e = cudaGetDeviceProperties(&p, 0);
  if (e != cudaSuccess) {
    snprintf(msg, msglen, "no CUDA device: %s", cudaGetErrorString(e));
    return 0;
  }
  snprintf(msg, msglen, "%d device%s: %s (sm_%d%d, %.0f GiB)%s", n,
           n == 1 ? "" : "s", p.name, p.major, p.minor,
           (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
           n > 1 ? " and others" : "");
  return n;
}

static void *plugin_malloc(int device, size_t nbytes)
{
  void *p = NULL;
  if (cudaSetDevice(device) != cudaSuccess) return NULL;
  /* A non-NULL pointer even for empty tensors. */
  if (cudaMalloc(&p, nbytes ? nbytes : 1) != cudaSuccess) {
    cudaGetLastError();
    return NULL;
  }
  return p;
}

static void plugin_free(int device, void *ptr)
{
  if (!ptr) return;
  cudaSetDevice(device);
  cudaFree(ptr);
}

static int copy(int device, void *dst, const void *src, size_t n,
                cudaMemcpyKind kind, char *err, size_t errlen)
{
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMemcpy(dst, src, n, kind);
  if (e != cudaSuccess) {
    put_error(err, errlen, "cudaMemcpy", e);
    return LM_ECUDA;
  }
  return LM_OK;
}

static int plugin_h2d(int device, void *dst, const void *src, size_t n,
                      char *err, size_t errlen)
{
  return copy(device, dst, src, n, cudaMemcpyHostToDevice, err, errlen);
}

static int plugin_d2h(int device, void *dst, const void *src, size_t n,
                      char *err, size_t errlen)
{
  return copy(device, dst, src, n, cudaMemcpyDeviceToHost, err, errlen);
}

static int plugin_d2d(int device, void *dst, const void *src, size_t n,
                      char *err, size_t errlen)
{
  return copy(device, dst, src, n, cudaMemcpyDeviceToDevice, err, errlen);
}

static int plugin_thread_init(int device, char *err, size_t errlen)
{
  return lmc_thread_stream(device, err, errlen) ? LM_OK : LM_ECUDA;
}

#endif /* LMC_EMULATE */

static int plugin_register(lm_engine *e)
{
  int st = lm_op_set_cuda_kernel(e, "ScaleIntensityRange",
                                 lmc_scale_intensity_range);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "Argmax", lmc_argmax);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "Cast", lmc_cast);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "Sigmoid", lmc_sigmoid);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "Softmax", lmc_softmax);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "Threshold", lmc_threshold);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "Orientation", lmc_orientation);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "SpatialCrop", lmc_spatial_crop);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "CenterCrop", lmc_center_crop);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "SpatialPad", lmc_spatial_pad);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "DivisiblePad", lmc_divisible_pad);
  return st;
}

static const lm_cuda_api api = {
  LM_CUDA_ABI,  plugin_init, plugin_malloc,      plugin_free,
  plugin_h2d,   plugin_d2h,  plugin_d2d,         plugin_thread_init,
  plugin_register,
};

extern "C" __attribute__((visibility("default"))) const lm_cuda_api *
lm_cuda_plugin_entry(int abi)
{
  return abi == LM_CUDA_ABI ? &api : NULL;
}
