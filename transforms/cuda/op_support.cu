/* The kernel-side helpers of cuda_util.h: the op's stream, scratch memory,
 * small copies and the end of an op.  In the emulated plugin (LMC_EMULATE)
 * device memory is host memory and there are no streams. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_util.h"

int lmc_ctx_device(lm_op_ctx *ctx)
{
  for (int i = 0; i < lm_ctx_ninputs(ctx); i++) {
    lm_tensor *t = lm_ctx_input(ctx, i);
    if (t && lm_tensor_device(t).type == LM_DEVICE_CUDA) return lm_tensor_device(t).index;
  }
  return 0;
}

int lmc_fail(lm_op_ctx *ctx, const char *what, cudaError_t e)
{
  return lm_ctx_error(ctx, LM_ECUDA, "%s: %s (%s)", what, cudaGetErrorString(e),
                      cudaGetErrorName(e));
}

int lmc_stream(lm_op_ctx *ctx, cudaStream_t *s)
{
  int dev = lmc_ctx_device(ctx);
  char err[256] = "";
  *s = lmc_thread_stream(dev, err, sizeof err);
#ifdef LMC_EMULATE
  return LM_OK;
#else
  if (!*s) return lm_ctx_error(ctx, LM_ECUDA, "cuda:%d: %s", dev, err);
  return LM_OK;
#endif
}

void *lmc_scratch_alloc(lm_op_ctx *ctx, cudaStream_t s, size_t bytes)
{
  void *p = NULL;
#ifdef LMC_EMULATE
  (void)s;
  p = malloc(bytes ? bytes : 1);
  if (!p) lm_ctx_error(ctx, LM_ENOMEM, "cannot allocate %zu bytes of scratch memory", bytes);
#else
  cudaError_t e = cudaMallocAsync(&p, bytes ? bytes : 1, s);
  if (e != cudaSuccess) {
    cudaGetLastError();
    lm_ctx_error(ctx, LM_ENOMEM, "cannot allocate %zu bytes of scratch memory on cuda:%d: %s",
                 bytes, lmc_ctx_device(ctx), cudaGetErrorString(e));
    p = NULL;
  }
#endif
  return p;
}

void lmc_scratch_free(lm_op_ctx *ctx, cudaStream_t s, void *p)
{
  (void)ctx;
  if (!p) return;
#ifdef LMC_EMULATE
  (void)s;
  free(p);
#else
  cudaFreeAsync(p, s);
#endif
}

int lmc_copy_to_device(lm_op_ctx *ctx, cudaStream_t s, void *dst, const void *src, size_t n)
{
  if (!n) return LM_OK;
#ifdef LMC_EMULATE
  (void)ctx;
  (void)s;
  memcpy(dst, src, n);
  return LM_OK;
#else
  cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s);
  return e == cudaSuccess ? LM_OK : lmc_fail(ctx, "copy to the device", e);
#endif
}

int lmc_copy_to_host(lm_op_ctx *ctx, cudaStream_t s, void *dst, const void *src, size_t n)
{
  if (!n) return LM_OK;
#ifdef LMC_EMULATE
  (void)ctx;
  (void)s;
  memcpy(dst, src, n);
  return LM_OK;
#else
  cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  return e == cudaSuccess ? LM_OK : lmc_fail(ctx, "copy to the host", e);
#endif
}

int lmc_finish(lm_op_ctx *ctx, cudaStream_t s, cudaError_t err, const char *what,
               lm_tensor *const *outs, int nout)
{
#ifndef LMC_EMULATE
  if (err == cudaSuccess) err = cudaStreamSynchronize(s);
#else
  (void)s;
#endif
  if (err != cudaSuccess) {
    for (int i = 0; i < nout; i++) lm_tensor_release(outs[i]);
    return lmc_fail(ctx, what, err);
  }
  for (int i = 0; i < nout; i++) {
    int st = lm_ctx_set_output(ctx, i, outs[i]);
    if (st < 0) {
      for (int j = i + 1; j < nout; j++) lm_tensor_release(outs[j]);
      return st;
    }
  }
  return LM_OK;
}
