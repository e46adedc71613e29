/* A test double of liblumen_cuda.so: implements the plugin contract with
 * host memory, so the loader, device tensors and the per-device executor
 * thread are tested on machines without a GPU.  FAKE_CUDA_DEVICES sets the
 * device count it reports (0 by default). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_plugin.h"

static pthread_t device_thread;
static int thread_inits;

static int fake_init(char *msg, size_t len)
{
  const char *env = getenv("FAKE_CUDA_DEVICES");
  int n = env ? atoi(env) : 0;
  if (n == 0) snprintf(msg, len, "no CUDA device: fake driver has none");
  else snprintf(msg, len, "%d device: Fake GPU", n);
  return n;
}

static void *fake_malloc(int dev, size_t n) { return malloc(n); }
static void fake_free(int dev, void *p) { free(p); }

static int fake_copy(int dev, void *dst, const void *src, size_t n, char *err, size_t len)
{
  memcpy(dst, src, n);
  return LM_OK;
}

static int fake_thread_init(int dev, char *err, size_t len)
{
  device_thread = pthread_self();
  thread_inits++;
  return LM_OK;
}

/* FakeNegate(img): the "CUDA" kernel negates a float32 tensor in device
 * memory and records whether it ran on the device thread. */
static int negate_cuda(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out;
  if (!pthread_equal(pthread_self(), device_thread) || thread_inits != 1)
    return lm_ctx_error(ctx, LM_EINTERNAL, "not on the device thread");
  int st = lm_tensor_new_like(in, LM_F32, lm_tensor_device(in), &out);
  if (st < 0) return st;
  const float *s = lm_tensor_data(in);
  float *d = lm_tensor_data(out);
  for (int64_t k = 0; k < lm_tensor_numel(in); k++) d[k] = -s[k];
  return lm_ctx_set_output(ctx, 0, out);
}

static int negate_cpu(lm_op_ctx *ctx)
{
  return lm_ctx_error(ctx, LM_EINTERNAL, "the CPU kernel must not run for device inputs");
}

static const lm_op_desc negate_op = {.name = "FakeNegate", .inputs = "img", .min_inputs = 1,
                                     .max_inputs = 1, .outputs = "img", .run_cpu = negate_cpu};

static int fake_register(lm_engine *e)
{
  int st = lm_op_register(e, &negate_op);
  if (st < 0) return st;
  return lm_op_set_cuda_kernel(e, "FakeNegate", negate_cuda);
}

static const lm_cuda_api api = {
  .abi = LM_CUDA_ABI, .init = fake_init, .malloc = fake_malloc, .free = fake_free,
  .memcpy_h2d = fake_copy, .memcpy_d2h = fake_copy, .memcpy_d2d = fake_copy,
  .thread_init = fake_thread_init, .register_kernels = fake_register,
};

const lm_cuda_api *lm_cuda_plugin_entry(int abi)
{
  return abi == LM_CUDA_ABI ? &api : NULL;
}
