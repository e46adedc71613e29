/* Helpers for the crop / pad / sampler tests on top of the transform test
 * helpers: calls with several inputs and outputs and their results. */
#ifndef LM_TEST_CROP_UTIL_H
#define LM_TEST_CROP_UTIL_H
#include <stdarg.h>

#include "test_transforms_util.h"

/* Call op; outputs in out[] (NULLs past the count), results in *res (NULL
 * if none or res is NULL).  Returns the status. */
static inline int callv(const char *op, lm_tensor **in, int nin,
                        const lm_params *opts, lm_tensor **out, int nmax,
                        lm_params **res)
{
  lm_tensor *o[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  lm_params *r = NULL;
  int st = lm_call(E, op, in, nin, opts, o, &nout, &r);
  for (int i = 0; i < nmax; i++) out[i] = st >= 0 && i < nout ? o[i] : NULL;
  for (int i = nmax; st >= 0 && i < nout; i++) lm_tensor_release(o[i]);
  if (res) *res = r;
  else lm_params_free(r);
  return st;
}

/* Integer i of numbers result `name` (-999999 if absent). */
static inline double resn(const lm_params *r, const char *name, int i)
{
  const lm_value *v = r ? lm_params_get(r, name) : NULL;
  if (!v || v->type != LM_VALUE_NUMBERS || i >= v->u.numbers.n) return -999999;
  return v->u.numbers.v[i];
}

static inline void set_nums(lm_params *p, const char *name, int n, ...)
{
  double v[16];
  va_list ap;
  va_start(ap, n);
  for (int i = 0; i < n; i++) v[i] = va_arg(ap, double);
  va_end(ap);
  lm_params_set_numbers(p, name, v, n);
}

#endif
