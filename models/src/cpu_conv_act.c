/* The activation as a separate pass over a convolution's output, for the
 * primitives oneDNN cannot fuse it into (so it is never silently dropped).
 * Definitions as ONNX states them. */
#include <math.h>

#include "cpu_conv_internal.h"

static float act_one(lm_act act, float alpha, float beta, float x) {
  switch (act) {
  case LM_ACT_NONE: return x;
  case LM_ACT_RELU: return x > 0.f ? x : 0.f;
  case LM_ACT_LEAKY_RELU: return x >= 0.f ? x : alpha * x;
  case LM_ACT_ELU: return x >= 0.f ? x : alpha * expm1f(x);
  case LM_ACT_SIGMOID: return 1.f / (1.f + expf(-x));
  case LM_ACT_TANH: return tanhf(x);
  case LM_ACT_GELU: return 0.5f * x * (1.f + erff(x * (float)M_SQRT1_2));
  case LM_ACT_SILU: return x / (1.f + expf(-x));
  case LM_ACT_CLIP: return x < alpha ? alpha : x > beta ? beta : x;
  }
  return x;
}

void lm_conv_act_apply(lm_act act, float alpha, float beta, float *x, size_t n) {
  if (act == LM_ACT_NONE) return;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) x[i] = act_one(act, alpha, beta, x[i]);
}
