/* Fused kernels of plans (plan_internal.h): InstanceNormalization with the
 * activation that follows it, PyTorch's exported GroupNorm pattern with its
 * affine and activation, and a residual Add with its activation, so a volume
 * is written once instead of written, read and written again by separate
 * element-wise ops. */
#include <math.h>
#include <stdbool.h>

#include "plan_internal.h"

/* The activations in float, written as the op table writes them. */
static inline float apply_act(lm_act act, float alpha, float v)
{
  switch (act) {
  case LM_ACT_RELU: return v > 0 ? v : 0.0f;
  case LM_ACT_LEAKY_RELU: return v >= 0 ? v : alpha * v;
  case LM_ACT_ELU: return v >= 0 ? v : alpha * expm1f(v);
  case LM_ACT_SIGMOID: return v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
  case LM_ACT_TANH: return tanhf(v);
  case LM_ACT_GELU: return 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
  default: return v;
  }
}

/* Mean and biased variance of x[0..cnt) in one pass: moments shifted by the
 * first value, so that E[d^2] - E[d]^2 does not cancel when the mean is
 * large against the spread; double accumulators, vectorised (a fixed order
 * for a given build, whatever the thread count). */
static void moments(const float *x, int64_t cnt, double *mean, double *var)
{
  double shift = cnt ? x[0] : 0.0, s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t i = 0; i < cnt; i++) {
    double d = (double)x[i] - shift;
    s1 += d;
    s2 += d * d;
  }
  double m1 = cnt ? s1 / (double)cnt : 0.0;
  double v = cnt ? s2 / (double)cnt - m1 * m1 : 0.0;
  *mean = shift + m1;
  *var = v > 0 ? v : 0;
}

void lm_plan_instnorm_act(const float *x, float *y, int64_t n, int64_t c, int64_t sp,
                          const float *scale, const float *bias, double eps,
                          lm_act act, float alpha, const float *res, bool res_after_act)
{
  int64_t planes = n * c;
  /* One plane per iteration: the statistics of a plane never depend on the
   * thread count, so results are the same with any number of threads. */
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *xp = x + pl * sp;
    float *yp = y + pl * sp;
    int64_t ch = pl % c;
    double mean, var;
    moments(xp, sp, &mean, &var);
    /* The same normalisation arithmetic as the op table's
     * InstanceNormalization (only the statistics are summed in another
     * order). */
    double a = 1.0 / sqrt(var + eps) * (scale ? scale[ch] : 1.0f);
    double b = bias ? bias[ch] : 0.0f;
    if (!res) {
#pragma omp simd
      for (int64_t i = 0; i < sp; i++)
        yp[i] = apply_act(act, alpha, (float)((xp[i] - mean) * a + b));
    } else if (!res_after_act) {
      const float *rp = res + pl * sp;
#pragma omp simd
      for (int64_t i = 0; i < sp; i++)
        yp[i] = apply_act(act, alpha, (float)((xp[i] - mean) * a + b) + rp[i]);
    } else {
      const float *rp = res + pl * sp;
#pragma omp simd
      for (int64_t i = 0; i < sp; i++)
        yp[i] = apply_act(act, alpha, (float)((xp[i] - mean) * a + b)) + rp[i];
    }
  }
}

void lm_plan_groupnorm_act(const float *x, float *y, int64_t n, int64_t c, int64_t groups,
                           int64_t sp, const float *gscale, const float *gbias, double eps,
                           const float *gamma, const float *beta, lm_act act, float alpha)
{
  int64_t cpg = c / groups, blk = cpg * sp;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t ng = 0; ng < n * groups; ng++) {
    const float *xp = x + ng * blk;
    float *yp = y + ng * blk;
    int64_t grp = ng % groups;
    double mean, var;
    moments(xp, blk, &mean, &var);
    double a = 1.0 / sqrt(var + eps) * gscale[grp];
    double b = gbias[grp];
    for (int64_t k = 0; k < cpg; k++) {
      /* Rounded as the unfused chain rounds: the normalised value to float,
       * then the float Mul and Add of the affine. */
      float ga = gamma[grp * cpg + k], be = beta[grp * cpg + k];
      const float *xs = xp + k * sp;
      float *ys = yp + k * sp;
#pragma omp simd
      for (int64_t i = 0; i < sp; i++) {
        float t = (float)((xs[i] - mean) * a + b);
        t = t * ga;
        t = t + be;
        ys[i] = apply_act(act, alpha, t);
      }
    }
  }
}

void lm_plan_add_act(const float *a, const float *b, float *y, int64_t n, lm_act act,
                     float alpha)
{
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] = apply_act(act, alpha, a[i] + b[i]);
}
