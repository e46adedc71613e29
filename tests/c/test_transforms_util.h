/* Helpers for the transform tests: an engine, tensors from literal values
 * (C order by logical index), op calls with options, and logical reads. */
#ifndef LM_TEST_TRANSFORMS_UTIL_H
#define LM_TEST_TRANSFORMS_UTIL_H
#include "lumen.h"
#include "tap.h"

static lm_engine *E;

static inline void engine_start(void)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.threads = 2;
  cfg.no_cuda = true;
  if (lm_engine_new(&cfg, &E) != LM_OK) {
    printf("Bail out! lm_engine_new failed\n");
    exit(1);
  }
}

/* Logical index of C-order position p in shape. */
static inline void unravel(int ndim, const int64_t *shape, int64_t p, int64_t *idx)
{
  for (int d = ndim - 1; d >= 0; d--) {
    idx[d] = p % shape[d];
    p /= shape[d];
  }
}

/* A tensor of dtype dt with vals[] in C order of the logical index. */
static inline lm_tensor *mk(lm_dtype dt, int ndim, const int64_t *shape,
                     const double *vals)
{
  lm_tensor *t = NULL;
  if (lm_tensor_new(E, dt, ndim, shape, LM_CPU, &t) != LM_OK) return NULL;
  int64_t n = lm_tensor_numel(t), idx[LM_MAX_DIMS];
  for (int64_t p = 0; p < n; p++) {
    unravel(ndim, shape, p, idx);
    lm_tensor_set(t, idx, vals[p]);
  }
  return t;
}

static inline lm_tensor *mk1(lm_dtype dt, int64_t n, const double *vals)
{
  return mk(dt, 1, &n, vals);
}

/* Value at C-order position p of t's logical index. */
static inline double at(const lm_tensor *t, int64_t p)
{
  int64_t idx[LM_MAX_DIMS];
  unravel(lm_tensor_ndim(t), lm_tensor_shape(t), p, idx);
  return lm_tensor_get(t, idx);
}

/* Call op with one input, returning its first output (NULL on failure, the
 * status in *st when st is not NULL). */
static inline lm_tensor *call(const char *op, lm_tensor *in, const lm_params *opts,
                       int *st)
{
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  int s = lm_call(E, op, in ? &in : NULL, in ? 1 : 0, opts, out, &nout, NULL);
  if (st) *st = s;
  if (s < 0) return NULL;
  for (int i = 1; i < nout; i++) lm_tensor_release(out[i]);
  return out[0];
}

static inline lm_params *params(void)
{
  lm_params *p = NULL;
  lm_params_new(&p);
  return p;
}

#define ALL_DTYPES_COUNT LM_DTYPE_COUNT

#endif
