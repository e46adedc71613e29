/* ScaleIntensityRange and ScaleIntensityRangePercentiles against hand-checked
 * values, MONAI's documented examples and numpy's percentiles. */
#include "test_transforms_util.h"

static lm_tensor *sir(lm_tensor *in, double a_min, double a_max, int has_b,
                      double b_min, double b_max, bool clip, int *st)
{
  lm_params *p = params();
  lm_params_set_number(p, "a_min", a_min);
  lm_params_set_number(p, "a_max", a_max);
  if (has_b & 1) lm_params_set_number(p, "b_min", b_min);
  if (has_b & 2) lm_params_set_number(p, "b_max", b_max);
  lm_params_set_bool(p, "clip", clip);
  lm_tensor *out = call("ScaleIntensityRange", in, p, st);
  lm_params_free(p);
  return out;
}

/* MONAI's spleen window: -57..164 to 0..1, clipped. */
static void test_sir_spleen_window(void)
{
  double v[] = {-1000, 53.5, 500, -57, 164, -57 + 22.1};
  lm_tensor *in = mk1(LM_F32, 6, v);
  lm_tensor *out = sir(in, -57, 164, 3, 0, 1, true, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_dtype(out), LM_F32);
    CHECK_NEAR(at(out, 0), 0.0, 0);
    CHECK_NEAR(at(out, 1), 0.5, 0);
    CHECK_NEAR(at(out, 2), 1.0, 0);
    CHECK_NEAR(at(out, 3), 0.0, 0);
    CHECK_NEAR(at(out, 4), 1.0, 0);
    CHECK_NEAR(at(out, 5), 0.1, 1e-7);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

/* float32 in MONAI's order: (x - a_min) / range, * b_range, + b_min, each
 * rounded; checked against that sequence computed here in float. */
static void test_sir_float32_order(void)
{
  double v[] = {-1024, -1000, -123.25, 0, 1, 37.5, 999, 3071};
  lm_tensor *in = mk1(LM_F32, 8, v);
  lm_tensor *out = sir(in, -1000, 1000, 3, -1, 1, false, NULL);
  CHECK(out != NULL);
  for (int i = 0; out && i < 8; i++) {
    volatile float t = ((float)v[i] - (float)-1000) / (float)2000;
    volatile float u = t * (float)2;
    float y = u + (float)-1;
    CHECK_NEAR(at(out, i), y, 0);
    CHECK_NEAR(at(out, i), (v[i] + 1000) / 1000 - 1, 2e-7);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static void test_sir_every_dtype(void)
{
  double v[] = {0, 10, 100, 7};
  for (int dt = 0; dt < LM_DTYPE_COUNT; dt++) {
    lm_tensor *in = mk1((lm_dtype)dt, 4, v);
    lm_tensor *out = sir(in, 0, 200, 3, 0, 2, false, NULL);
    CHECK(out != NULL);
    for (int i = 0; out && i < 4; i++)
      CHECK_NEAR(at(out, i), v[i] / 100.0, 1e-6);
    lm_tensor_release(out);
    lm_tensor_release(in);
  }
  /* Negative values for the signed types and the floats. */
  lm_dtype sgn[] = {LM_I8, LM_I16, LM_I32, LM_I64, LM_F16, LM_BF16, LM_F64};
  double w[] = {-100, -50};
  for (int k = 0; k < 7; k++) {
    lm_tensor *in = mk1(sgn[k], 2, w);
    lm_tensor *out = sir(in, -100, 100, 3, 0, 1, false, NULL);
    CHECK(out != NULL);
    if (out) {
      CHECK_NEAR(at(out, 0), 0.0, 0);
      CHECK_NEAR(at(out, 1), 0.25, 1e-7);
    }
    lm_tensor_release(out);
    lm_tensor_release(in);
  }
}

/* b_min/b_max unset: only (x - a_min) / (a_max - a_min). */
static void test_sir_without_b(void)
{
  double v[] = {50, -100, 400};
  lm_tensor *in = mk1(LM_I16, 3, v);
  lm_tensor *out = sir(in, 0, 200, 0, 0, 0, false, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_NEAR(at(out, 0), 0.25, 0);
    CHECK_NEAR(at(out, 1), -0.5, 0);
    CHECK_NEAR(at(out, 2), 2.0, 0);
  }
  lm_tensor_release(out);
  /* Only b_min set: no affine (MONAI needs both), but clip at b_min. */
  out = sir(in, 0, 200, 1, 0.1, 0, true, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_NEAR(at(out, 0), 0.25, 0);
    CHECK_NEAR(at(out, 1), 0.1, 1e-8);
    CHECK_NEAR(at(out, 2), 2.0, 0);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

/* a_max == a_min: a shift, no division, no clip. */
static void test_sir_equal_window(void)
{
  double v[] = {15, 10, -5};
  lm_tensor *in = mk1(LM_F32, 3, v);
  lm_tensor *out = sir(in, 10, 10, 0, 0, 0, false, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_NEAR(at(out, 0), 5, 0);
    CHECK_NEAR(at(out, 2), -15, 0);
  }
  lm_tensor_release(out);
  out = sir(in, 10, 10, 3, 1, 2, true, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_NEAR(at(out, 0), 6, 0);  /* 15 - 10 + 1, not clipped to 2 */
    CHECK_NEAR(at(out, 1), 1, 0);
    CHECK_NEAR(at(out, 2), -14, 0);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static void test_sir_inverted(void)
{
  double v[] = {100, 0, 25, 300};
  lm_tensor *in = mk1(LM_F32, 4, v);
  /* Inverted input window. */
  lm_tensor *out = sir(in, 100, 0, 3, 0, 1, true, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_NEAR(at(out, 0), 0, 0);
    CHECK_NEAR(at(out, 1), 1, 0);
    CHECK_NEAR(at(out, 2), 0.75, 0);
    CHECK_NEAR(at(out, 3), 0, 0);
  }
  lm_tensor_release(out);
  /* b_min > b_max with clip: torch.clamp gives b_max everywhere. */
  out = sir(in, 0, 100, 3, 1, 0, true, NULL);
  CHECK(out != NULL);
  for (int i = 0; out && i < 4; i++) CHECK_NEAR(at(out, i), 0, 0);
  lm_tensor_release(out);
  /* ... and without clip it is the mirrored affine map. */
  out = sir(in, 0, 100, 3, 1, 0, false, NULL);
  CHECK(out != NULL);
  if (out) CHECK_NEAR(at(out, 2), 0.75, 0);
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static void test_sir_nan(void)
{
  double v[] = {NAN, 50};
  lm_tensor *in = mk1(LM_F32, 2, v);
  lm_tensor *out = sir(in, 0, 100, 3, 0, 1, true, NULL);
  CHECK(out && isnan(at(out, 0)));
  if (out) CHECK_NEAR(at(out, 1), 0.5, 0);
  lm_tensor_release(out);
  lm_params *p = params();
  lm_params_set_number(p, "a_min", 0);
  lm_params_set_number(p, "a_max", 100);
  lm_params_set_number(p, "b_min", 0);
  lm_params_set_number(p, "b_max", 255);
  lm_params_set_string(p, "dtype", "uint8");
  out = call("ScaleIntensityRange", in, p, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_dtype(out), LM_U8);
    CHECK_NEAR(at(out, 0), 0, 0);    /* NaN -> 0 */
    CHECK_NEAR(at(out, 1), 127, 0);  /* 127.5 truncated */
  }
  lm_tensor_release(out);
  lm_params_free(p);
  lm_tensor_release(in);
}

static void test_sir_errors(void)
{
  double v[] = {1};
  lm_tensor *in = mk1(LM_F32, 1, v);
  int st = 0;
  lm_tensor *out = sir(in, 0, 1, 0, 0, 0, true, &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "clip");
  CHECK_CONTAINS(lm_errmsg(E), "ScaleIntensityRange");
  lm_params *p = params();
  lm_params_set_number(p, "a_min", 0);
  lm_params_set_number(p, "a_max", 1);
  lm_params_set_string(p, "dtype", "float33");
  out = call("ScaleIntensityRange", in, p, &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "dtype");
  CHECK_CONTAINS(lm_errmsg(E), "float33");
  lm_params_free(p);
  /* a_max is required. */
  p = params();
  lm_params_set_number(p, "a_min", 0);
  out = call("ScaleIntensityRange", in, p, &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "a_max");
  lm_params_free(p);
  lm_tensor_release(in);
}

/* Strided and permuted views, metadata kept, many chunks. */
static void test_sir_strided_and_metadata(void)
{
  int64_t shape[3] = {4, 30, 50};
  int64_t n = 4 * 30 * 50;
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = (double)((i * 7919) % 3001) - 1000;
  lm_tensor *base = mk(LM_I16, 3, shape, v);
  double aff[16] = {2, 0, 0, -10, 0, 3, 0, 5, 0, 0, 4, 1, 0, 0, 0, 1};
  lm_tensor_set_affine(base, aff);
  lm_tensor_set_layout(base, "CXY");
  int perm[3] = {2, 0, 1};
  lm_tensor *pv = NULL, *nv = NULL;
  CHECK_INT(lm_tensor_permute(base, perm, &pv), LM_OK);
  CHECK_INT(lm_tensor_narrow(pv, 0, 3, 40, &nv), LM_OK); /* (40, 4, 30) */
  lm_tensor *views[2] = {pv, nv};
  for (int k = 0; k < 2; k++) {
    lm_tensor *t = views[k];
    lm_tensor *out = sir(t, -1000, 2000, 3, 0, 1, true, NULL);
    CHECK(out != NULL);
    if (!out) continue;
    CHECK_INT(lm_tensor_ndim(out), 3);
    int64_t m = lm_tensor_numel(t);
    int bad = 0;
    for (int64_t p = 0; p < m; p++) {
      double x = at(t, p), y = at(out, p);
      double want = (x + 1000) / 3000;
      if (fabs(y - want) > 1e-6) bad++;
    }
    CHECK_INT(bad, 0);
    for (int i = 0; i < 16; i++) CHECK_NEAR(lm_tensor_affine(out)[i], aff[i], 0);
    CHECK_STR(lm_tensor_layout(out), lm_tensor_layout(t));
    lm_tensor_release(out);
  }
  lm_tensor_release(nv);
  lm_tensor_release(pv);
  lm_tensor_release(base);
  free(v);
}

/* Large enough to be split across the compute threads. */
static void test_sir_large(void)
{
  int64_t n = 1 << 20;
  lm_tensor *in = NULL;
  CHECK_INT(lm_tensor_new(E, LM_F32, 1, &n, LM_CPU, &in), LM_OK);
  float *x = lm_tensor_data(in);
  for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 2654435761u) % 4096) - 1024;
  lm_tensor *out = sir(in, -57, 164, 3, 0, 1, true, NULL);
  CHECK(out != NULL);
  if (out) {
    const float *y = lm_tensor_data(out);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
      double w = (x[i] + 57.0) / 221.0;
      w = w < 0 ? 0 : w > 1 ? 1 : w;
      if (fabs(y[i] - w) > 1e-6) bad++;
    }
    CHECK_INT(bad, 0);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static lm_tensor *sirp(lm_tensor *in, double lo, double hi, double b_min,
                       double b_max, bool relative, bool channel_wise, int *st)
{
  lm_params *p = params();
  lm_params_set_number(p, "lower", lo);
  lm_params_set_number(p, "upper", hi);
  lm_params_set_number(p, "b_min", b_min);
  lm_params_set_number(p, "b_max", b_max);
  lm_params_set_bool(p, "relative", relative);
  lm_params_set_bool(p, "channel_wise", channel_wise);
  lm_tensor *out = call("ScaleIntensityRangePercentiles", in, p, st);
  lm_params_free(p);
  return out;
}

/* semantics.md §5.2: v = 0..9 gives P0.5 = 0.045, P99.5 = 8.955, P25 = 2.25. */
static void test_sirp_documented(void)
{
  double v[] = {3, 9, 0, 7, 1, 8, 2, 6, 4, 5}; /* shuffled 0..9 */
  lm_tensor *in = mk1(LM_F32, 10, v);
  lm_tensor *out = sirp(in, 0.5, 99.5, 0, 1, false, false, NULL);
  CHECK(out != NULL);
  for (int i = 0; out && i < 10; i++)
    CHECK_NEAR(at(out, i), (v[i] - 0.045) / (8.955 - 0.045), 1e-6);
  lm_tensor_release(out);
  out = sirp(in, 25, 75, 0, 1, false, false, NULL);
  CHECK(out != NULL);
  for (int i = 0; out && i < 10; i++)
    CHECK_NEAR(at(out, i), (v[i] - 2.25) / 4.5, 1e-6);
  lm_tensor_release(out);
  /* relative: b' = 0.25 .. 0.75 */
  out = sirp(in, 25, 75, 0, 1, true, false, NULL);
  CHECK(out != NULL);
  for (int i = 0; out && i < 10; i++)
    CHECK_NEAR(at(out, i), (v[i] - 2.25) / 4.5 * 0.5 + 0.25, 1e-6);
  lm_tensor_release(out);
  lm_tensor_release(in);
}

/* Against np.percentile on 1235 values with many duplicates (numbers
 * printed by numpy 1.24, float64 input). */
static void test_sirp_numpy(void)
{
  int64_t n = 1235;
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++)
    v[i] = (double)((i * 37) % 101) * 0.37 - 3 + (double)(i % 7) * 0.001;
  lm_tensor *in = mk1(LM_F64, n, v);
  struct { double lo, hi, plo, phi; } cases[] = {
    {0.5, 99.5, -2.997, 34.002},
    {2.0, 37.3, -2.37648, 10.693282},
    {63.1, 2.0, 20.314, -2.37648}, /* lower above upper */
  };
  for (int c = 0; c < 3; c++) {
    /* float64 output, so the window can be recovered to 1e-9. */
    lm_params *p = params();
    lm_params_set_number(p, "lower", cases[c].lo);
    lm_params_set_number(p, "upper", cases[c].hi);
    lm_params_set_number(p, "b_min", 0);
    lm_params_set_number(p, "b_max", 1);
    lm_params_set_string(p, "dtype", "float64");
    lm_tensor *out = call("ScaleIntensityRangePercentiles", in, p, NULL);
    lm_params_free(p);
    CHECK(out != NULL);
    if (!out) continue;
    /* Recover the window from two outputs: y = (x - a) / (b - a). */
    double y0 = at(out, 0), y1 = at(out, 1), x0 = v[0], x1 = v[1];
    double scale = (x1 - x0) / (y1 - y0);  /* = b - a */
    double a = x0 - y0 * scale;
    CHECK_NEAR(a, cases[c].plo, 1e-9);
    CHECK_NEAR(a + scale, cases[c].phi, 1e-9);
    lm_tensor_release(out);
  }
  lm_tensor_release(in);
  free(v);
}

static void test_sirp_channel_wise_and_strided(void)
{
  /* Channel 0: 0..9, channel 1: 100..190 step 10; stored channel-last. */
  int64_t shape[2] = {10, 2};
  double v[20];
  for (int i = 0; i < 10; i++) { v[2 * i] = i; v[2 * i + 1] = 100 + 10 * i; }
  lm_tensor *raw = mk(LM_I32, 2, shape, v), *in = NULL;
  int perm[2] = {1, 0};
  CHECK_INT(lm_tensor_permute(raw, perm, &in), LM_OK);  /* (2, 10) view */
  lm_tensor *out = sirp(in, 25, 75, 0, 1, false, true, NULL);
  CHECK(out != NULL);
  for (int i = 0; out && i < 10; i++) {
    CHECK_NEAR(at(out, i), (i - 2.25) / 4.5, 1e-6);
    CHECK_NEAR(at(out, 10 + i), ((100 + 10 * i) - 122.5) / 45, 1e-6);
  }
  lm_tensor_release(out);
  /* Not channel-wise: percentiles of all 20 values. P25 = 4.75, P75 = 142.5 */
  out = sirp(in, 25, 75, 0, 1, false, false, NULL);
  CHECK(out != NULL);
  if (out) CHECK_NEAR(at(out, 0), (0 - 4.75) / (142.5 - 4.75), 1e-6);
  lm_tensor_release(out);
  lm_tensor_release(in);
  lm_tensor_release(raw);
}

static void test_sirp_nan_constant_errors(void)
{
  double v[] = {1, NAN, 3};
  lm_tensor *in = mk1(LM_F32, 3, v);
  lm_tensor *out = sirp(in, 1, 99, 0, 1, false, false, NULL);
  CHECK(out != NULL);
  for (int i = 0; out && i < 3; i++) CHECK(isnan(at(out, i)));
  lm_tensor_release(out);
  lm_tensor_release(in);
  /* Constant data: equal percentiles, the shift-only case: x - a + b_min. */
  double c[] = {5, 5, 5, 5};
  in = mk1(LM_U8, 4, c);
  out = sirp(in, 10, 90, 2, 3, false, false, NULL);
  CHECK(out != NULL);
  for (int i = 0; out && i < 4; i++) CHECK_NEAR(at(out, i), 2, 0);
  lm_tensor_release(out);
  int st = 0;
  out = sirp(in, -1, 90, 0, 1, false, false, &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "lower");
  out = sirp(in, 1, 100.5, 0, 1, false, false, &st);
  CHECK(out == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "upper");
  lm_tensor_release(in);
}

int main(void)
{
  engine_start();
  RUN(test_sir_spleen_window);
  RUN(test_sir_float32_order);
  RUN(test_sir_every_dtype);
  RUN(test_sir_without_b);
  RUN(test_sir_equal_window);
  RUN(test_sir_inverted);
  RUN(test_sir_nan);
  RUN(test_sir_errors);
  RUN(test_sir_strided_and_metadata);
  RUN(test_sir_large);
  RUN(test_sirp_documented);
  RUN(test_sirp_numpy);
  RUN(test_sirp_channel_wise_and_strided);
  RUN(test_sirp_nan_constant_errors);
  lm_engine_release(E);
  TAP_DONE();
}
