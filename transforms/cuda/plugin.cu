/* liblumen_cuda.so: the CUDA plugin's entry table (engine/src/cuda_plugin.h):
 * device probing and kernel registration; memory, streams, events and
 * copies are the device runtime's (runtime.cu).  The engine dlopen()s it;
 * liblumen never links CUDA.
 *
 * Built with -DLMC_EMULATE (liblumen_cuda_emu.so, see cuda_util.h) the same
 * table describes one emulated device whose memory is host memory, so the
 * GPU tests run the kernels' host emulation on machines without a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_plugin.h"
#include "cuda_util.h"
#include "runtime.h"

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
extern "C" int lmc_sirp(lm_op_ctx *ctx);
extern "C" int lmc_normalize_intensity(lm_op_ctx *ctx);
extern "C" int lmc_crop_foreground(lm_op_ctx *ctx);
/* xf2: resampling and connected components */
extern "C" int lmc_resize(lm_op_ctx *ctx);
extern "C" int lmc_scale_by_resolution(lm_op_ctx *ctx);
extern "C" int lmc_restore_original_shape(lm_op_ctx *ctx);
extern "C" int lmc_keep_largest_cc(lm_op_ctx *ctx);
extern "C" int lmc_infer(lm_op_ctx *ctx);
extern "C" int lmc_sliding_window_infer(lm_op_ctx *ctx);

/* The device's compute stream (cuda_util.h).  Streams are per device, not
 * per thread: frees come from any thread and are queued on the stream that
 * used the memory (runtime.cu).  NULL in the emulated plugin. */
cudaStream_t lmc_thread_stream(int device, char *err, size_t errlen)
{
  if (err && errlen) err[0] = 0;
  if (lmc_rt_init(device, err, errlen) < 0) return NULL;
  return lmc_rt_compute(device);
}

#ifdef LMC_EMULATE

static int plugin_init(char *msg, size_t msglen)
{
  snprintf(msg, msglen, "1 device: emulated CUDA device (host memory, kernels run on the CPU; tests only)");
  return 1;
}

#else

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
    cudaGetLastError();
    return 0;
  }
  /* Devices past the runtime's table are not offered. */
  if (n > LMC_MAX_DEVICES) n = LMC_MAX_DEVICES;
  snprintf(msg, msglen, "%d device%s: %s (sm_%d%d, %.0f GiB)%s", n,
           n == 1 ? "" : "s", p.name, p.major, p.minor,
           (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
           n > 1 ? " and others" : "");
  return n;
}

#endif /* LMC_EMULATE */

static void *plugin_malloc(int device, size_t nbytes)
{
  char err[256];
  return lmc_rt_alloc(device, NULL, nbytes, err, sizeof err);
}

static void plugin_free(int device, void *ptr)
{
  lmc_rt_free(device, NULL, ptr);
}

static int plugin_thread_init(int device, char *err, size_t errlen)
{
#ifndef LMC_EMULATE
  /* Kernels launch on the current device of the executor thread. */
  cudaError_t e = cudaSetDevice(device);
  if (e != cudaSuccess) {
    cudaGetLastError();
    snprintf(err, errlen, "cuda:%d: cannot select the device: %s", device, cudaGetErrorString(e));
    return LM_ECUDA;
  }
#endif
  return lmc_rt_init(device, err, errlen) < 0 ? LM_ECUDA : LM_OK;
}

static void plugin_thread_fini(int device)
{
  lmc_cudnn_thread_fini(device);
  lmc_rt_thread_fini(device);
}

static int plugin_event_wait(int device, void *ready, char *err, size_t errlen)
{
  return lmc_rt_event_wait(device, ready, "a wait for a tensor's data", err, errlen);
}

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
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "ScaleIntensityRangePercentiles", lmc_sirp);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "NormalizeIntensity", lmc_normalize_intensity);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "CropForeground", lmc_crop_foreground);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "Resize", lmc_resize);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "ScaleByResolution", lmc_scale_by_resolution);
  if (st >= 0)
    st = lm_op_set_cuda_kernel(e, "RestoreOriginalShape", lmc_restore_original_shape);
  if (st >= 0)
    st = lm_op_set_cuda_kernel(e, "KeepLargestConnectedComponent", lmc_keep_largest_cc);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "Infer", lmc_infer);
  if (st >= 0) st = lm_op_set_cuda_kernel(e, "SlidingWindowInfer", lmc_sliding_window_infer);
  return st;
}

/* Positional: designated initializers are C++20. */
static const lm_cuda_api api = {
  LM_CUDA_ABI,        plugin_init,          plugin_malloc,      plugin_free,
  lmc_rt_h2d,         lmc_rt_d2h,           lmc_rt_d2d,         plugin_thread_init,
  plugin_thread_fini, plugin_register,      plugin_event_wait,  lmc_rt_event_release,
  lmc_rt_pool_bytes,
};

extern "C" __attribute__((visibility("default"))) const lm_cuda_api *
lm_cuda_plugin_entry(int abi)
{
  return abi == LM_CUDA_ABI ? &api : NULL;
}
