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
    /* One pass for both moments, shifted by the plane's first value so
     * that E[d^2] - E[d]^2 does not cancel when the mean is large against
     * the spread; double accumulators, vectorised (a fixed order for a
     * given build, whatever the thread count). */
    double shift = sp ? xp[0] : 0.0, s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t i = 0; i < sp; i++) {
      double d = (double)xp[i] - shift;
      s1 += d;
      s2 += d * d;
    }
    double m1 = sp ? s1 / (double)sp : 0.0;
    double mean = shift + m1;
    double var = sp ? s2 / (double)sp - m1 * m1 : 0.0;
    if (var < 0) var = 0;
    double a = 1.0 / sqrt(var + eps) * (scale ? scale[ch] : 1.0f);
    double b = bias ? bias[ch] : 0.0f;
#pragma omp simd
    for (int64_t i = 0; i < sp; i++)
      yp[i] = apply_act(act, alpha, (float)((xp[i] - mean) * a + b));
  }
}
