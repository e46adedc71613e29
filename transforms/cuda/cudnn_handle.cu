/* One cuDNN handle per executor thread and device (cuda_util.h), bound to
 * the device's compute stream so cuDNN's work is ordered with the kernels
 * around it.  cuDNN handles are not meant to be shared between threads that
 * use them at once, hence per thread; the executor thread's end destroys it
 * (plugin thread_fini).  The emulated plugin has no cuDNN and does not link
 * it. */
#include <stdio.h>

#include "cuda_util.h"
#include "runtime.h"

#ifdef LMC_EMULATE

cudnnHandle_t lmc_cudnn_handle(int device, char *err, size_t errlen)
{
  if (err && errlen)
    snprintf(err, errlen, "cuda:%d: cuDNN is not available in the emulated CUDA plugin", device);
  return NULL;
}

void lmc_cudnn_thread_fini(int device)
{
  (void)device;
}

#else

#include <cudnn.h>

static thread_local cudnnHandle_t tl_handles[LMC_MAX_DEVICES];

cudnnHandle_t lmc_cudnn_handle(int device, char *err, size_t errlen)
{
  if (device < 0 || device >= LMC_MAX_DEVICES) {
    if (err && errlen) snprintf(err, errlen, "cuda:%d: no such device", device);
    return NULL;
  }
  if (tl_handles[device]) return tl_handles[device];
  cudaStream_t s = lmc_thread_stream(device, err, errlen);
  if (!s) return NULL;
  /* cudnnCreate binds the handle to the current device. */
  cudaError_t ce = cudaSetDevice(device);
  if (ce != cudaSuccess) {
    cudaGetLastError();
    if (err && errlen)
      snprintf(err, errlen, "cuda:%d: cuDNN cannot start: %s", device, cudaGetErrorString(ce));
    return NULL;
  }
  cudnnHandle_t h = NULL;
  cudnnStatus_t st = cudnnCreate(&h);
  if (st == CUDNN_STATUS_SUCCESS) {
    st = cudnnSetStream(h, s);
    if (st != CUDNN_STATUS_SUCCESS) cudnnDestroy(h);
  }
  if (st != CUDNN_STATUS_SUCCESS) {
    if (err && errlen)
      snprintf(err, errlen, "cuda:%d: cuDNN cannot start: %s", device, cudnnGetErrorString(st));
    return NULL;
  }
  tl_handles[device] = h;
  return h;
}

void lmc_cudnn_thread_fini(int device)
{
  if (device < 0 || device >= LMC_MAX_DEVICES || !tl_handles[device]) return;
  cudnnDestroy(tl_handles[device]);
  tl_handles[device] = NULL;
}

#endif
