/* The kernel-side helpers of cuda_util.h: the op's stream, scratch memory,
 * small copies and the end of an op, on the device runtime (runtime.cu).
 * Nothing here synchronises except lmc_copy_to_host: an op queues its
 * kernels and records ready events for its outputs.  In the emulated plugin
 * (LMC_EMULATE) device memory is host memory and there are no streams. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_plugin.h"
#include "cuda_util.h"
#include "runtime.h"

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
#ifndef LMC_EMULATE
  /* A failed call leaves its error as the thread's last one: cleared here so
   * that the launch check of the next op (lmc_for_each) does not report it
   * as its own.  (Sticky errors stay: the context is lost.) */
  cudaGetLastError();
#endif
  return lm_ctx_error(ctx, LM_ECUDA, "%s on cuda:%d: %s (%s)", what, lmc_ctx_device(ctx),
                      cudaGetErrorString(e), cudaGetErrorName(e));
}

int lmc_stream(lm_op_ctx *ctx, cudaStream_t *s)
{
  int dev = lmc_ctx_device(ctx);
  char err[256] = "";
  *s = lmc_thread_stream(dev, err, sizeof err);
#ifdef LMC_EMULATE
  (void)dev;
  return LM_OK;
#else
  if (!*s) return lm_ctx_error(ctx, LM_ECUDA, "%s", err); /* names the device */
  return LM_OK;
#endif
}

void *lmc_scratch_alloc(lm_op_ctx *ctx, cudaStream_t s, size_t bytes)
{
  /* From the device's pool, ordered on s: a block freed by an earlier op
   * is reused without waiting for it. */
  char err[256] = "";
  void *p = lmc_rt_alloc(lmc_ctx_device(ctx), s, bytes, err, sizeof err);
  if (!p) lm_ctx_error(ctx, LM_ENOMEM, "scratch memory: %s", err);
  return p;
}

void lmc_scratch_free(lm_op_ctx *ctx, cudaStream_t s, void *p)
{
  lmc_rt_free(lmc_ctx_device(ctx), s, p);
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
  if (e == cudaSuccess) return LM_OK;
  cudaGetLastError();
  /* The first host wait since the op's inputs were queued: the failure may
   * be any earlier kernel's. */
  char err[400];
  lmc_rt_async_error(lmc_ctx_device(ctx), e, "a copy to the host inside the op", err, sizeof err);
  return lm_ctx_error(ctx, LM_ECUDA, "%s", err);
#endif
}

int lmc_finish(lm_op_ctx *ctx, cudaStream_t s, cudaError_t err, const char *what,
               lm_tensor *const *outs, int nout)
{
  int dev = lmc_ctx_device(ctx);
  char msg[256] = "";
  /* No synchronisation: each output gets an event recorded after the
   * launches; later ops on this device are ordered by the stream anyway,
   * and a host read (ToHost) waits on the event. */
  for (int i = 0; i < nout && err == cudaSuccess; i++) {
    void *ev = lmc_rt_event_record(dev, s, msg, sizeof msg);
    if (!ev) {
      for (int j = 0; j < nout; j++) lm_tensor_release(outs[j]);
      return lm_ctx_error(ctx, LM_ECUDA, "%s: %s", what, msg);
    }
    lm_tensor_set_cuda_ready(outs[i], ev);
  }
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
