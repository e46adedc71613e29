/* Unary element-wise ops: activations (Relu, LeakyRelu, Elu, Selu, Celu,
 * Gelu, Sigmoid, HardSigmoid, HardSwish, Tanh, Softplus, Softsign, Clip,
 * ThresholdedRelu) and math (Erf, Exp, Log, Sqrt, Abs, Neg, Reciprocal,
 * Floor, Ceil, Round, Sign, trigonometric and hyperbolic functions, Shrink,
 * IsNaN, IsInf).  float32 runs in float with the
 * C library's float functions (as torch and numpy do for float32); other
 * dtypes go through double.  (PRelu is binary: cpu_ops_elementwise.c.) */
#include "cpu_ops_internal.h"

#include <math.h>
#include <string.h>

typedef enum un_op {
  U_RELU, U_LEAKY, U_ELU, U_SELU, U_CELU, U_GELU, U_GELU_TANH, U_SIGMOID,
  U_HSIGMOID, U_HSWISH, U_TANH, U_SOFTPLUS, U_SOFTSIGN, U_CLIP, U_THRELU,
  U_ERF, U_EXP, U_LOG, U_SQRT, U_ABS, U_NEG, U_RECIP, U_FLOOR, U_CEIL,
  U_ROUND, U_SIGN, U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH,
  U_ASINH, U_ACOSH, U_ATANH, U_SHRINK
} un_op;

typedef struct un_params {
  double alpha, beta, gamma;   /* op-specific constants */
  double lo, hi;               /* Clip */
} un_params;

static double un_scalar(un_op op, const un_params *p, double x)
{
  switch (op) {
  case U_RELU: return x > 0 ? x : 0;
  case U_LEAKY: return x >= 0 ? x : p->alpha * x;
  case U_ELU: return x >= 0 ? x : p->alpha * (exp(x) - 1);
  case U_SELU: return p->gamma * (x > 0 ? x : p->alpha * (exp(x) - 1));
  case U_CELU: return fmax(0, x) + fmin(0, p->alpha * (exp(x / p->alpha) - 1));
  case U_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
  case U_GELU_TANH:
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  case U_SIGMOID: return 1 / (1 + exp(-x));
  case U_HSIGMOID: return fmax(0, fmin(1, p->alpha * x + p->beta));
  case U_HSWISH: return x * fmax(0, fmin(1, x / 6 + 0.5));
  case U_TANH: return tanh(x);
  case U_SOFTPLUS: return log1p(exp(-fabs(x))) + fmax(x, 0);
  case U_SOFTSIGN: return x / (1 + fabs(x));
  case U_CLIP: return x < p->lo ? p->lo : x > p->hi ? p->hi : x;
  case U_THRELU: return x > p->alpha ? x : 0;
  case U_ERF: return erf(x);
  case U_EXP: return exp(x);
  case U_LOG: return log(x);
  case U_SQRT: return sqrt(x);
  case U_ABS: return fabs(x);
  case U_NEG: return -x;
  case U_RECIP: return 1 / x;
  case U_FLOOR: return floor(x);
  case U_CEIL: return ceil(x);
  case U_ROUND: return nearbyint(x);   /* default rounding mode: half to even */
  case U_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
  case U_SIN: return sin(x);
  case U_COS: return cos(x);
  case U_TAN: return tan(x);
  case U_ASIN: return asin(x);
  case U_ACOS: return acos(x);
  case U_ATAN: return atan(x);
  case U_SINH: return sinh(x);
  case U_COSH: return cosh(x);
  case U_ASINH: return asinh(x);
  case U_ACOSH: return acosh(x);
  case U_ATANH: return atanh(x);
  case U_SHRINK: return x < -p->alpha ? x + p->beta : x > p->alpha ? x - p->beta : 0;
  }
  return x;
}

#define UN_LOOP(EXPR)                                                      \
  do {                                                                     \
    _Pragma("omp parallel for schedule(static) if (total > OPS_PAR_MIN)")  \
    for (int64_t i = 0; i < total; i++) {                                  \
      float x = src[i];                                                    \
      dst[i] = (EXPR);                                                     \
    }                                                                      \
  } while (0)

static void un_f32(un_op op, const un_params *p, const float *src, float *dst,
                   int64_t total)
{
  const float a = (float)p->alpha, b = (float)p->beta, gm = (float)p->gamma;
  const float lo = (float)p->lo, hi = (float)p->hi;
  switch (op) {
  case U_RELU: UN_LOOP(x > 0 ? x : 0.0f); break;
  case U_LEAKY: UN_LOOP(x >= 0 ? x : a * x); break;
  case U_ELU: UN_LOOP(x >= 0 ? x : a * expm1f(x)); break;
  case U_SELU: UN_LOOP(x > 0 ? gm * x : gm * (a * expf(x) - a)); break;
  case U_SIGMOID:
    /* torch's form; for very negative x expf(-x) is inf and the result 0 */
    UN_LOOP(1.0f / (1.0f + expf(-x)));
    break;
  case U_TANH: UN_LOOP(tanhf(x)); break;
  case U_GELU: UN_LOOP(0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2))); break;
  case U_CLIP: UN_LOOP(x < lo ? lo : x > hi ? hi : x); break;
  case U_EXP: UN_LOOP(expf(x)); break;
  case U_ABS: UN_LOOP(fabsf(x)); break;
  case U_NEG: UN_LOOP(-x); break;
  case U_SQRT: UN_LOOP(sqrtf(x)); break;
  case U_HSIGMOID: UN_LOOP(fmaxf(0.0f, fminf(1.0f, a * x + b))); break;
  default:
    /* The rarer ones: through double, rounded once. */
    _Pragma("omp parallel for schedule(static) if (total > OPS_PAR_MIN)")
    for (int64_t i = 0; i < total; i++) dst[i] = (float)un_scalar(op, p, src[i]);
    break;
  }
}

static int unary_eval(un_op op, const un_params *p, const lm_gnode *n,
                      const lm_rt_tensor *in, int nin, lm_rt_tensor *out, int nout,
                      char *err, size_t errlen)
{
  if (nin < 1 || !in[0].data) return ops_eval_fail(err, errlen, n, "input 0 is missing");
  if (nout < 1) return ops_eval_fail(err, errlen, n, "has no output");
  if (!ops_rt_same_numel(&in[0], &out[0]))
    return ops_eval_fail(err, errlen, n, "output size differs from the input's");
  int64_t total = ops_rt_numel(&in[0]);
  if (in[0].dt == LM_F32 && out[0].dt == LM_F32) {
    un_f32(op, p, in[0].data, out[0].data, total);
    return LM_OK;
  }
  bool integer = ops_is_int(in[0].dt);
#pragma omp parallel for schedule(static) if (total > OPS_PAR_MIN)
  for (int64_t i = 0; i < total; i++) {
    double x = ops_get(&in[0], i);
    double y = un_scalar(op, p, x);
    if (integer && op == U_NEG) y = -x;
    ops_put(&out[0], i, y);
  }
  return LM_OK;
}

#define DEF_UNARY(NAME, OP, PARAMS)                                                 \
  static int NAME(const lm_gnode *n, const lm_rt_tensor *in, int nin,               \
                  lm_rt_tensor *out, int nout, char *err, size_t errlen)            \
  {                                                                                 \
    un_params p = {0};                                                              \
    PARAMS;                                                                         \
    return unary_eval(OP, &p, n, in, nin, out, nout, err, errlen);                  \
  }

DEF_UNARY(eval_relu, U_RELU, (void)0)
DEF_UNARY(eval_leaky, U_LEAKY, p.alpha = lm_gnode_attr_float(n, "alpha", 0.01))
DEF_UNARY(eval_elu, U_ELU, p.alpha = lm_gnode_attr_float(n, "alpha", 1.0))
DEF_UNARY(eval_selu, U_SELU,
          p.alpha = lm_gnode_attr_float(n, "alpha", 1.67326319217681884765625);
          p.gamma = lm_gnode_attr_float(n, "gamma", 1.05070102214813232421875))
DEF_UNARY(eval_celu, U_CELU, p.alpha = lm_gnode_attr_float(n, "alpha", 1.0))
DEF_UNARY(eval_sigmoid, U_SIGMOID, (void)0)
DEF_UNARY(eval_hsigmoid, U_HSIGMOID, p.alpha = lm_gnode_attr_float(n, "alpha", 0.2);
          p.beta = lm_gnode_attr_float(n, "beta", 0.5))
DEF_UNARY(eval_hswish, U_HSWISH, (void)0)
DEF_UNARY(eval_tanh, U_TANH, (void)0)
DEF_UNARY(eval_softplus, U_SOFTPLUS, (void)0)
DEF_UNARY(eval_softsign, U_SOFTSIGN, (void)0)
DEF_UNARY(eval_threlu, U_THRELU, p.alpha = lm_gnode_attr_float(n, "alpha", 1.0))
DEF_UNARY(eval_erf, U_ERF, (void)0)
DEF_UNARY(eval_exp, U_EXP, (void)0)
DEF_UNARY(eval_log, U_LOG, (void)0)
DEF_UNARY(eval_sqrt, U_SQRT, (void)0)
DEF_UNARY(eval_abs, U_ABS, (void)0)
DEF_UNARY(eval_neg, U_NEG, (void)0)
DEF_UNARY(eval_recip, U_RECIP, (void)0)
DEF_UNARY(eval_floor, U_FLOOR, (void)0)
DEF_UNARY(eval_ceil, U_CEIL, (void)0)
DEF_UNARY(eval_round, U_ROUND, (void)0)
DEF_UNARY(eval_sign, U_SIGN, (void)0)
DEF_UNARY(eval_sin, U_SIN, (void)0)
DEF_UNARY(eval_cos, U_COS, (void)0)
DEF_UNARY(eval_tan, U_TAN, (void)0)
DEF_UNARY(eval_asin, U_ASIN, (void)0)
DEF_UNARY(eval_acos, U_ACOS, (void)0)
DEF_UNARY(eval_atan, U_ATAN, (void)0)
DEF_UNARY(eval_sinh, U_SINH, (void)0)
DEF_UNARY(eval_cosh, U_COSH, (void)0)
DEF_UNARY(eval_asinh, U_ASINH, (void)0)
DEF_UNARY(eval_acosh, U_ACOSH, (void)0)
DEF_UNARY(eval_atanh, U_ATANH, (void)0)
DEF_UNARY(eval_shrink, U_SHRINK, p.alpha = lm_gnode_attr_float(n, "lambd", 0.5);
          p.beta = lm_gnode_attr_float(n, "bias", 0.0))

/* IsNaN, IsInf: bool (uint8) outputs. */
static int infer_is(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input X is missing");
  if (x->ndim >= 0) ops_set_out(g, n, 0, LM_U8, x->ndim, x->shape);
  return LM_OK;
}

static int eval_isnan(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                      int nout, char *err, size_t errlen)
{
  if (nin < 1 || !in[0].data) return ops_eval_fail(err, errlen, n, "input X is missing");
  int64_t total = ops_rt_numel(&in[0]);
  uint8_t *y = out[0].data;
  for (int64_t i = 0; i < total; i++) y[i] = isnan(ops_get(&in[0], i));
  return LM_OK;
}

static int eval_isinf(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                      int nout, char *err, size_t errlen)
{
  if (nin < 1 || !in[0].data) return ops_eval_fail(err, errlen, n, "input X is missing");
  bool pos = lm_gnode_attr_int(n, "detect_positive", 1) != 0;
  bool neg = lm_gnode_attr_int(n, "detect_negative", 1) != 0;
  int64_t total = ops_rt_numel(&in[0]);
  uint8_t *y = out[0].data;
  for (int64_t i = 0; i < total; i++) {
    double v = ops_get(&in[0], i);
    y[i] = isinf(v) && ((v > 0 && pos) || (v < 0 && neg));
  }
  return LM_OK;
}

/* Gelu: opset 20's approximate="none"|"tanh" (also what the tfjs loader
** emits).  Checked at infer; eval trusts it. */
static int eval_gelu(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                     lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  un_params p = {0};
  const char *ap = lm_gnode_attr_string(n, "approximate", "none");
  un_op op = strcmp(ap, "tanh") == 0 ? U_GELU_TANH : U_GELU;
  return unary_eval(op, &p, n, in, nin, out, nout, err, errlen);
}

static int infer_gelu(lm_graph *g, const lm_gnode *n)
{
  const char *ap = lm_gnode_attr_string(n, "approximate", "none");
  if (strcmp(ap, "none") != 0 && strcmp(ap, "tanh") != 0)
    return ops_fail(g, n, "attribute approximate is '%s' (none or tanh)", ap);
  return ops_infer_same(g, n);
}

/* Clip: bounds from attributes min/max (opset < 11) or inputs 1 and 2
** (opset 11+); absent means unbounded. */
static int eval_clip(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                     lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  un_params p = {.lo = -INFINITY, .hi = INFINITY};
  if (nin > 0 && ops_is_int(in[0].dt)) {
    p.lo = -HUGE_VAL;
    p.hi = HUGE_VAL;
  }
  p.lo = lm_gnode_attr_float(n, "min", p.lo);
  p.hi = lm_gnode_attr_float(n, "max", p.hi);
  if (nin > 1 && in[1].data) p.lo = ops_get(&in[1], 0);
  if (nin > 2 && in[2].data) p.hi = ops_get(&in[2], 0);
  return unary_eval(U_CLIP, &p, n, in, nin, out, nout, err, errlen);
}

static int infer_clip(lm_graph *g, const lm_gnode *n)
{
  for (int i = 1; i < n->nin && i < 3; i++) {
    const lm_gvalue *v = ops_in(g, n, i);
    if (v && v->ndim > 0 && lm_gvalue_numel(v) != 1)
      return ops_fail(g, n, "input %d ('%s', %s) must be a scalar", i, v->name,
                      i == 1 ? "min" : "max");
  }
  return ops_infer_same(g, n);
}

static int infer_unary(lm_graph *g, const lm_gnode *n)
{
  if (n->nin < 1) return ops_fail(g, n, "needs 1 input");
  return ops_infer_same(g, n);
}

const lm_cpu_kernel lm_ops_activation[] = {
  {"Relu", infer_unary, eval_relu, false},
  {"LeakyRelu", infer_unary, eval_leaky, false},
  {"Elu", infer_unary, eval_elu, false},
  {"Selu", infer_unary, eval_selu, false},
  {"Celu", infer_unary, eval_celu, false},
  {"Gelu", infer_gelu, eval_gelu, false},
  {"Sigmoid", infer_unary, eval_sigmoid, false},
  {"HardSigmoid", infer_unary, eval_hsigmoid, false},
  {"HardSwish", infer_unary, eval_hswish, false},
  {"Tanh", infer_unary, eval_tanh, false},
  {"Softplus", infer_unary, eval_softplus, false},
  {"Softsign", infer_unary, eval_softsign, false},
  {"Clip", infer_clip, eval_clip, false},
  {"ThresholdedRelu", infer_unary, eval_threlu, false},
  {"Erf", infer_unary, eval_erf, false},
  {"Exp", infer_unary, eval_exp, false},
  {"Log", infer_unary, eval_log, false},
  {"Sqrt", infer_unary, eval_sqrt, false},
  {"Abs", infer_unary, eval_abs, false},
  {"Neg", infer_unary, eval_neg, false},
  {"Reciprocal", infer_unary, eval_recip, false},
  {"Floor", infer_unary, eval_floor, false},
  {"Ceil", infer_unary, eval_ceil, false},
  {"Round", infer_unary, eval_round, false},
  {"Sign", infer_unary, eval_sign, false},
  {"Sin", infer_unary, eval_sin, false},
  {"Cos", infer_unary, eval_cos, false},
  {"Tan", infer_unary, eval_tan, false},
  {"Asin", infer_unary, eval_asin, false},
  {"Acos", infer_unary, eval_acos, false},
  {"Atan", infer_unary, eval_atan, false},
  {"Sinh", infer_unary, eval_sinh, false},
  {"Cosh", infer_unary, eval_cosh, false},
  {"Asinh", infer_unary, eval_asinh, false},
  {"Acosh", infer_unary, eval_acosh, false},
  {"Atanh", infer_unary, eval_atanh, false},
  {"Shrink", infer_unary, eval_shrink, false},
  {"IsNaN", infer_is, eval_isnan, false},
  {"IsInf", infer_is, eval_isinf, false},
  {NULL, NULL, NULL, false},
};
