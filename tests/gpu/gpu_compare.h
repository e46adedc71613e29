/* Helpers for the GPU-vs-CPU op tests: the engine (exit 77 without a CUDA
 * device), device round trips, inputs in several dtypes and memory orders,
 * and one comparison of an op run on the CPU and on the GPU: values, dtype,
 * shape, memory order, affine, layout, trace and results. */
#ifndef LM_GPU_COMPARE_H
#define LM_GPU_COMPARE_H
#include <math.h>
#include <stdio.h>

#include "gpu_engine.h"

/* The phantom image (1, X, Y, Z) in its own dtype (int16) and its label
 * map (X, Y, Z) uint8, on the host. */
static lm_tensor *gpu_phantom(const double *shape3, lm_tensor **label)
{
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  lm_params *p = params();
  lm_params_set_numbers(p, "shape", shape3, 3);
  int st = lm_call(E, "Phantom", NULL, 0, p, out, &nout, NULL);
  lm_params_free(p);
  if (st < 0) return NULL;
  *label = out[1];
  lm_tensor *c = call("ConvertToChannelsFirst", out[0], NULL, NULL);
  lm_tensor_release(out[0]);
  return c;
}

static lm_tensor *gpu_cast(lm_tensor *t, const char *dtype)
{
  lm_params *p = params();
  lm_params_set_string(p, "dtype", dtype);
  lm_tensor *out = call("Cast", t, p, NULL);
  lm_params_free(p);
  return out;
}

/* Values equal (both NaN counts as equal) or within rtol relative (with an
 * absolute floor of rtol for values near 0). */
static bool gpu_close(double x, double y, double rtol)
{
  if (x == y || (isnan(x) && isnan(y))) return true;
  if (rtol == 0) return false;
  double m = fabs(x) > fabs(y) ? fabs(x) : fabs(y);
  return fabs(x - y) <= rtol * (m > 1 ? m : 1);
}

/* int64 element at C-order position p (exact; `at` goes through double). */
static int64_t gpu_at_i64(const lm_tensor *t, int64_t p)
{
  int64_t idx[LM_MAX_DIMS], off = 0;
  unravel(lm_tensor_ndim(t), lm_tensor_shape(t), p, idx);
  for (int d = 0; d < lm_tensor_ndim(t); d++) off += idx[d] * lm_tensor_strides(t)[d];
  return ((const int64_t *)lm_tensor_data(t))[off];
}

/* Elements of a and b (same shape, by logical index) that differ. */
static int64_t gpu_count_diff(const lm_tensor *a, const lm_tensor *b, double rtol)
{
  int64_t bad = 0, n = lm_tensor_numel(a);
  bool i64 = lm_tensor_dtype(a) == LM_I64 && lm_tensor_dtype(b) == LM_I64;
  for (int64_t p = 0; p < n; p++) {
    double x = at(a, p), y = at(b, p);
    bool ok = i64 ? gpu_at_i64(a, p) == gpu_at_i64(b, p) : gpu_close(x, y, rtol);
    if (!ok) {
      if (bad < 3) printf("# element %lld: cpu %.17g gpu %.17g\n", (long long)p, x, y);
      bad++;
    }
  }
  return bad;
}

static bool gpu_same_results(const lm_params *a, const lm_params *b)
{
  if (!a || !b) return a == b;
  if (lm_params_count(a) != lm_params_count(b)) return false;
  for (int i = 0; i < lm_params_count(a); i++) {
    lm_value va;
    const char *name = lm_params_at(a, i, &va);
    const lm_value *vb = lm_params_get(b, name);
    if (!vb || vb->type != va.type) return false;
    if (va.type == LM_VALUE_NUMBERS) {
      if (va.u.numbers.n != vb->u.numbers.n) return false;
      for (int k = 0; k < va.u.numbers.n; k++)
        if (!gpu_close(va.u.numbers.v[k], vb->u.numbers.v[k], 1e-6)) return false;
    } else if (va.type == LM_VALUE_NUMBER) {
      if (!gpu_close(va.u.number, vb->u.number, 1e-6)) return false;
    }
  }
  return true;
}

/* Run op on the host inputs `in` and on the device inputs `din` (the same
 * values and views); the GPU output must be a CUDA tensor equal to the CPU
 * one (rtol 0: exactly) with the same dtype, shape, strides, affine,
 * layout, trace and results.  Failures are TAP diagnostics naming `what`. */
static void gpu_vs_cpu_on(const char *what, const char *op, lm_tensor *const *in,
                          lm_tensor *const *din, int nin, const lm_params *opts, double rtol)
{
  int failed_before = tap_case_failed;
  tap_case_failed = 0;
  lm_tensor *cpu[LM_MAX_OUTPUTS] = {0}, *gpu[LM_MAX_OUTPUTS] = {0};
  lm_params *rc = NULL, *rg = NULL;
  int nc = LM_MAX_OUTPUTS, ng = LM_MAX_OUTPUTS;
  int sc = lm_call(E, op, in, nin, opts, cpu, &nc, &rc);
  int sg = lm_call(E, op, din, nin, opts, gpu, &ng, &rg);
  if (sg < 0) printf("# %s: %s\n", what, lm_errmsg(E));
  CHECK(sc >= 0 && sg >= 0);
  if (sc >= 0 && sg >= 0) {
    lm_tensor *c = cpu[0], *g = gpu[0];
    CHECK_INT(lm_tensor_device(g).type, LM_DEVICE_CUDA);
    lm_tensor *h = call("ToHost", g, NULL, NULL);
    CHECK(h != NULL);
    if (h) {
      CHECK_INT(lm_tensor_dtype(h), lm_tensor_dtype(c));
      CHECK_INT(lm_tensor_ndim(h), lm_tensor_ndim(c));
      bool same_shape = lm_tensor_ndim(h) == lm_tensor_ndim(c);
      for (int d = 0; same_shape && d < lm_tensor_ndim(c); d++) {
        same_shape = lm_tensor_shape(h)[d] == lm_tensor_shape(c)[d];
        /* Memory order: the GPU output's strides are the CPU's. */
        if (lm_tensor_shape(c)[d] > 1) CHECK_INT(lm_tensor_strides(g)[d], lm_tensor_strides(c)[d]);
      }
      CHECK(same_shape);
      if (same_shape) CHECK_INT(gpu_count_diff(c, h, rtol), 0);
      for (int i = 0; i < 16; i++) CHECK_NEAR(lm_tensor_affine(g)[i], lm_tensor_affine(c)[i], 0);
      CHECK_STR(lm_tensor_layout(g), lm_tensor_layout(c));
      CHECK_INT(lm_tensor_trace_length(g), lm_tensor_trace_length(c));
      for (int i = 0; i < lm_tensor_trace_length(c) && i < lm_tensor_trace_length(g); i++) {
        const lm_trace_entry *tc = lm_tensor_trace_at(c, i), *tg = lm_tensor_trace_at(g, i);
        CHECK_STR(tg->op, tc->op);
        CHECK_STR(tg->params, tc->params);
        CHECK(memcmp(tg->shape, tc->shape, sizeof tc->shape) == 0);
        CHECK(memcmp(tg->affine, tc->affine, sizeof tc->affine) == 0);
      }
      CHECK(gpu_same_results(rc, rg));
    }
    lm_tensor_release(h);
  }
  for (int i = 0; i < LM_MAX_OUTPUTS; i++) {
    lm_tensor_release(cpu[i]);
    lm_tensor_release(gpu[i]);
  }
  lm_params_free(rc);
  lm_params_free(rg);
  if (tap_case_failed) printf("# ^ in %s\n", what);
  tap_case_failed |= failed_before;
}

/* gpu_vs_cpu_on with device copies (ToDevice) of the host inputs. */
static void gpu_vs_cpu(const char *what, const char *op, lm_tensor *const *in, int nin,
                       const lm_params *opts, double rtol)
{
  lm_tensor *din[4] = {0};
  for (int i = 0; i < nin; i++) din[i] = gpu_to(in[i], "cuda");
  CHECK(din[0] != NULL);
  if (din[0]) gpu_vs_cpu_on(what, op, in, din, nin, opts, rtol);
  for (int i = 0; i < nin; i++) lm_tensor_release(din[i]);
}

#endif
