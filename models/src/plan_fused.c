/* Fused kernels of plans (plan_internal.h): InstanceNormalization with the
 * activation that follows it, so the normalised volume is written once
 * instead of written, read and written again by a separate activation. */
#include <math.h>

#include "plan_internal.h"

static inline float apply_act(lm_act act, float alpha, float v)
{
  switch (act) {
  case LM_ACT_RELU: return v > 0 ? v : 0.0f;
  case LM_ACT_LEAKY_RELU: return v >= 0 ? v : alpha * v;
  case LM_ACT_ELU: return v >= 0 ? v : alpha * expm1f(v);
  case LM_ACT_SIGMOID: return v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
  default: return v;
  }
}

void lm_plan_instnorm_act(const float *x, float *y, int64_t n, int64_t c, int64_t sp,
                          const float *scale, const float *bias, double eps,
                          lm_act act, float alpha)
{
  int64_t planes = n * c;
  /* One plane per iteration: the statistics of a plane never depend on the
   * thread count, so results are the same with any number of threads. */
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *xp = x + pl * sp;
    float *yp = y + pl * sp;
    int64_t ch = pl % c;
    double sum = 0;
    for (int64_t i = 0; i < sp; i++) sum += xp[i];
    double mean = sp ? sum / (double)sp : 0.0;
    double ss = 0;
    for (int64_t i = 0; i < sp; i++) {
      double d = xp[i] - mean;
      ss += d * d;
    }
    double var = sp ? ss / (double)sp : 0.0;
    /* The same arithmetic as the op table's InstanceNormalization, so the
     * fused and unfused forms agree to the bit before the activation. */
    double a = 1.0 / sqrt(var + eps) * (scale ? scale[ch] : 1.0f);
    double b = bias ? bias[ch] : 0.0f;
    for (int64_t i = 0; i < sp; i++)
      yp[i] = apply_act(act, alpha, (float)((xp[i] - mean) * a + b));
  }
}
