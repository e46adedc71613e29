/* Fused kernels of plans (plan_internal.h): InstanceNormalization with the
 * activation that follows it, PyTorch's exported GroupNorm pattern with its
 * affine and activation, and a residual Add with its activation, so a volume
 * is written once instead of written, read and written again by separate
 * element-wise ops. */
#include <math.h>
#include <stdbool.h>

#include "plan_internal.h"

/* erf in float without libm, so loops over it vectorise: Eigen's (and
 * XLA's) rational approximation on [-4, 4] (beyond, erf is +-1 in float),
 * within 4e-7 of erf.  glibc's erff is scalar only and was a third of the
 * time of an InstanceNorm+Gelu step (mindgrab). */
static inline float fast_erf(float a)
{
  float x = a > 4.0f ? 4.0f : a < -4.0f ? -4.0f : a;
  float x2 = x * x;
  float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
  p = x2 * p + -2.10102402082508e-06f;
  p = x2 * p + -5.69250639462346e-05f;
  p = x2 * p + -7.34990630326855e-04f;
  p = x2 * p + -2.95459980854025e-03f;
  p = x2 * p + -1.60960333262415e-02f;
  p = x * p;
  float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
  q = x2 * q + -1.68282697438203e-03f;
  q = x2 * q + -7.37332916720468e-03f;
  q = x2 * q + -1.42647390514189e-02f;
  return p / q;
}

/* The activations in float, written as the op table writes them (GELU with
 * fast_erf). */
static inline float apply_act(lm_act act, float alpha, float v)
{
  switch (act) {
  case LM_ACT_RELU: return v > 0 ? v : 0.0f;
  case LM_ACT_LEAKY_RELU: return v >= 0 ? v : alpha * v;
  case LM_ACT_ELU: return v >= 0 ? v : alpha * expm1f(v);
  case LM_ACT_SIGMOID: return v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
  case LM_ACT_TANH: return tanhf(v);
  case LM_ACT_GELU: return 0.5f * v * (1.0f + fast_erf(v * (float)M_SQRT1_2));
  default: return v;
  }
}

/* for (i < CNT) OUT = act(VALUE) POST, with the switch on the activation
 * outside the loop so that each loop vectorises (POST: empty, or "+ r[i]"
 * for a residual added after the activation). */
#define ACT_LOOP(ACT, ALPHA, CNT, OUT, VALUE, POST)                               \
  do {                                                                            \
    switch (ACT) {                                                                \
    case LM_ACT_NONE:                                                             \
      _Pragma("omp simd") for (int64_t i = 0; i < (CNT); i++) OUT = (VALUE) POST; \
      break;                                                                      \
    case LM_ACT_RELU:                                                             \
      _Pragma("omp simd") for (int64_t i = 0; i < (CNT); i++)                     \
        OUT = apply_act(LM_ACT_RELU, 0, (VALUE)) POST;                            \
      break;                                                                      \
    case LM_ACT_LEAKY_RELU:                                                       \
      _Pragma("omp simd") for (int64_t i = 0; i < (CNT); i++)                     \
        OUT = apply_act(LM_ACT_LEAKY_RELU, (ALPHA), (VALUE)) POST;                \
      break;                                                                      \
    case LM_ACT_GELU:                                                             \
      _Pragma("omp simd") for (int64_t i = 0; i < (CNT); i++)                     \
        OUT = apply_act(LM_ACT_GELU, 0, (VALUE)) POST;                            \
      break;                                                                      \
    default:                                                                      \
      for (int64_t i = 0; i < (CNT); i++) OUT = apply_act((ACT), (ALPHA), (VALUE)) POST; \
      break;                                                                      \
    }                                                                             \
  } while (0)

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
    const float *rp = res ? res + pl * sp : NULL;
    if (!res)
      ACT_LOOP(act, alpha, sp, yp[i], (float)((xp[i] - mean) * a + b), );
    else if (!res_after_act)
      ACT_LOOP(act, alpha, sp, yp[i], (float)((xp[i] - mean) * a + b) + rp[i], );
    else
      ACT_LOOP(act, alpha, sp, yp[i], (float)((xp[i] - mean) * a + b), + rp[i]);
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
      ACT_LOOP(act, alpha, sp, ys[i], (float)((xs[i] - mean) * a + b) * ga + be, );
    }
  }
}

void lm_plan_add_act(const float *a, const float *b, float *y, int64_t n, lm_act act,
                     float alpha)
{
  /* Blocks of 64K elements shared out among the threads; each block's loop
   * vectorises. */
  int64_t nblk = (n + 65535) / 65536;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < nblk; k++) {
    int64_t lo = k * 65536, cnt = n - lo < 65536 ? n - lo : 65536;
    const float *ab = a + lo, *bb = b + lo;
    float *yb = y + lo;
    ACT_LOOP(act, alpha, cnt, yb[i], ab[i] + bb[i], );
  }
}
