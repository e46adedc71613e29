/* The CUDA plugin's intensity and activation kernels against the CPU ops:
 * Cast, Threshold, Sigmoid, Softmax, ScaleIntensityRangePercentiles and
 * NormalizeIntensity, on the phantom and on special values, in several
 * dtypes and memory orders.  Exact where the CPU result is exact (Cast,
 * Threshold, the percentiles' order statistics and map), 1e-6 / 1e-5
 * relative where expf is used or statistics are summed in another order.
 * Exits 77 (skipped) without a CUDA device. */
#include "gpu_compare.h"

static const char *const dtypes[] = {"uint8", "int8", "int16", "uint16", "int32", "uint32",
                                     "int64", "float16", "bfloat16", "float32", "float64"};
#define NDT ((int)(sizeof dtypes / sizeof dtypes[0]))

static const double phantom_shape[3] = {40, 36, 24};

/* Values at the edges of every conversion: fractions both ways, beyond
 * each integer range, float16's range and ties, infinities, NaN, -0. */
static lm_tensor *special_values(void)
{
  static const double v[] = {0, -0.0, 1, -1, 2.5, -2.7, 2.7, 127.5, 128, -129, 255.9, 256, 300,
                             -32769, 32768, 65535.5, 65536, 65504, 65520, 70000, 1e-8, -1e-8,
                             2147483647.0, 2147483648.0, -2147483649.0, 4294967296.0, 1e19,
                             -1e19, 16777217, 9007199254740993.0, 0.1, 1.0 / 3, INFINITY,
                             -INFINITY, NAN, 1e39, -3.4e38, 6e-8, 3e-5, 0.5};
  return mk1(LM_F64, (int64_t)(sizeof v / sizeof v[0]), v);
}

/* Every dtype to every dtype, from the special values in each dtype. */
static void test_cast_all_dtypes(void)
{
  lm_tensor *sv = special_values();
  for (int a = 0; a < NDT; a++) {
    lm_tensor *in = gpu_cast(sv, dtypes[a]);
    CHECK(in != NULL);
    for (int b = 0; in && b < NDT; b++) {
      char what[64];
      snprintf(what, sizeof what, "Cast %s -> %s", dtypes[a], dtypes[b]);
      lm_params *p = params();
      lm_params_set_string(p, "dtype", dtypes[b]);
      gpu_vs_cpu(what, "Cast", &in, 1, p, 0);
      lm_params_free(p);
    }
    lm_tensor_release(in);
  }
  lm_tensor_release(sv);
}

/* int64 values a double cannot hold: integer to integer stays exact. */
static void test_cast_int64(void)
{
  static const int64_t v[] = {INT64_MAX, INT64_MIN, (1LL << 53) + 1, -(1LL << 53) - 1,
                              4294967297LL, -2147483649LL, 65537, -129, 255, 0};
  int64_t n = (int64_t)(sizeof v / sizeof v[0]);
  lm_tensor *t = NULL;
  CHECK_INT(lm_tensor_new(E, LM_I64, 1, &n, LM_CPU, &t), LM_OK);
  if (!t) return;
  memcpy(lm_tensor_data(t), v, sizeof v);
  for (int b = 0; b < NDT; b++) {
    char what[64];
    snprintf(what, sizeof what, "Cast int64 -> %s", dtypes[b]);
    lm_params *p = params();
    lm_params_set_string(p, "dtype", dtypes[b]);
    gpu_vs_cpu(what, "Cast", &t, 1, p, 0);
    lm_params_free(p);
  }
  lm_tensor_release(t);
}

/* The phantom (int16) through a permuted device view: the gather path. */
static void test_cast_phantom_strided(void)
{
  lm_tensor *label = NULL, *img = gpu_phantom(phantom_shape, &label);
  CHECK(img != NULL);
  if (!img) return;
  lm_tensor *dev = gpu_to(img, "cuda"), *hv = NULL, *dv = NULL, *hn = NULL, *dn = NULL;
  int perm[4] = {0, 3, 1, 2};
  CHECK(dev && lm_tensor_permute(img, perm, &hv) == LM_OK &&
        lm_tensor_permute(dev, perm, &dv) == LM_OK);
  /* A narrowed (non-dense) view too. */
  CHECK(dev && lm_tensor_narrow(img, 2, 3, 20, &hn) == LM_OK &&
        lm_tensor_narrow(dev, 2, 3, 20, &dn) == LM_OK);
  const char *to[] = {"float32", "uint8", "float16", "int8", "float64"};
  for (int i = 0; hv && dv && hn && dn && i < 5; i++) {
    lm_params *p = params();
    lm_params_set_string(p, "dtype", to[i]);
    gpu_vs_cpu("Cast phantom", "Cast", &img, 1, p, 0);
    gpu_vs_cpu_on("Cast permuted phantom", "Cast", &hv, &dv, 1, p, 0);
    gpu_vs_cpu_on("Cast narrowed phantom", "Cast", &hn, &dn, 1, p, 0);
    lm_params_free(p);
  }
  /* Same dtype: the input itself, as on the CPU. */
  lm_params *p = params();
  lm_params_set_string(p, "dtype", "int16");
  lm_tensor *same = dev ? call("Cast", dev, p, NULL) : NULL;
  CHECK(same == dev);
  lm_tensor_release(same);
  lm_params_free(p);
  lm_tensor_release(hv);
  lm_tensor_release(dv);
  lm_tensor_release(hn);
  lm_tensor_release(dn);
  lm_tensor_release(dev);
  lm_tensor_release(label);
  lm_tensor_release(img);
}

static void test_threshold(void)
{
  lm_tensor *label = NULL, *img = gpu_phantom(phantom_shape, &label);
  lm_tensor *sv = special_values();
  CHECK(img && sv);
  if (!img || !sv) return;
  lm_tensor *f32 = gpu_cast(img, "float32"), *f64 = gpu_cast(sv, "float64"),
            *f16 = gpu_cast(sv, "float16");
  /* 0.1 is not a float32: float32 inputs compare against (float)0.1,
   * float64 ones against 0.1 itself. */
  double ts[] = {0.1, 0.5, 40, -1000, 128};
  for (int k = 0; k < 5; k++)
    for (int strict = 0; strict < 2; strict++) {
      lm_params *p = params();
      lm_params_set_number(p, "threshold", ts[k]);
      lm_params_set_bool(p, "strict", strict);
      gpu_vs_cpu("Threshold int16", "Threshold", &img, 1, p, 0);
      gpu_vs_cpu("Threshold float64", "Threshold", &f64, 1, p, 0);
      gpu_vs_cpu("Threshold float16", "Threshold", &f16, 1, p, 0);
      lm_params_set_string(p, "dtype", "float32");
      gpu_vs_cpu("Threshold float32 -> float32", "Threshold", &f32, 1, p, 0);
      lm_params_set_string(p, "dtype", "int64");
      gpu_vs_cpu("Threshold specials -> int64", "Threshold", &sv, 1, p, 0);
      lm_params_free(p);
    }
  lm_tensor_release(f32);
  lm_tensor_release(f64);
  lm_tensor_release(f16);
  lm_tensor_release(sv);
  lm_tensor_release(label);
  lm_tensor_release(img);
}

/* Logits from the phantom (HU / 50, so the sigmoid is not saturated
 * everywhere). */
static lm_tensor *phantom_logits(lm_tensor **label)
{
  lm_tensor *img = gpu_phantom(phantom_shape, label);
  if (!img) return NULL;
  lm_params *p = params();
  lm_params_set_number(p, "a_min", -500);
  lm_params_set_number(p, "a_max", 500);
  lm_params_set_number(p, "b_min", -10);
  lm_params_set_number(p, "b_max", 10);
  lm_tensor *out = call("ScaleIntensityRange", img, p, NULL);
  lm_params_free(p);
  lm_tensor_release(img);
  return out;
}

static void test_sigmoid(void)
{
  lm_tensor *label = NULL, *x = phantom_logits(&label), *sv = special_values();
  CHECK(x && sv);
  if (!x || !sv) return;
  gpu_vs_cpu("Sigmoid phantom", "Sigmoid", &x, 1, NULL, 1e-6);
  gpu_vs_cpu("Sigmoid specials (float64)", "Sigmoid", &sv, 1, NULL, 1e-6);
  lm_tensor *h = gpu_cast(x, "float16"), *i8 = gpu_cast(sv, "int8");
  gpu_vs_cpu("Sigmoid float16", "Sigmoid", &h, 1, NULL, 1e-6);
  gpu_vs_cpu("Sigmoid int8", "Sigmoid", &i8, 1, NULL, 1e-6);
  lm_tensor *dev = gpu_to(x, "cuda"), *hv = NULL, *dv = NULL;
  int perm[4] = {0, 2, 3, 1};
  if (dev && lm_tensor_permute(x, perm, &hv) == LM_OK && lm_tensor_permute(dev, perm, &dv) == LM_OK)
    gpu_vs_cpu_on("Sigmoid permuted", "Sigmoid", &hv, &dv, 1, NULL, 1e-6);
  else
    CHECK(0);
  lm_tensor_release(hv);
  lm_tensor_release(dv);
  lm_tensor_release(dev);
  lm_tensor_release(h);
  lm_tensor_release(i8);
  lm_tensor_release(sv);
  lm_tensor_release(x);
  lm_tensor_release(label);
}

/* (5, X, Y, Z) scores from the logits and the labels, in the given memory
 * order, with a NaN and an infinity in some voxels. */
static lm_tensor *scores(const lm_tensor *x, const lm_tensor *label, const int *order)
{
  const int64_t *sh = lm_tensor_shape(label);
  int64_t shape[4] = {5, sh[0], sh[1], sh[2]}, n = lm_tensor_numel(label);
  lm_tensor *s = NULL;
  if (lm_tensor_new_ordered(E, LM_F32, 4, shape, order, LM_CPU, &s) != LM_OK) return NULL;
  for (int64_t p = 0; p < n; p++) {
    int64_t idx[4];
    unravel(3, sh, p, idx + 1);
    double xv = lm_tensor_get(x, (int64_t[]){0, idx[1], idx[2], idx[3]});
    double lv = lm_tensor_get(label, idx + 1);
    for (int c = 0; c < 5; c++) {
      idx[0] = c;
      double v = xv * (c - 2) + (lv == c) * 3.0;
      if (p % 101 == 0 && c == 1) v = NAN;
      if (p % 103 == 0 && c == 4) v = -INFINITY;
      lm_tensor_set(s, idx, v);
    }
  }
  return s;
}

static void test_softmax(void)
{
  lm_tensor *label = NULL, *x = phantom_logits(&label);
  CHECK(x != NULL);
  if (!x) return;
  int cfirst[4] = {0, 3, 2, 1}, clast[4] = {3, 2, 1, 0};
  lm_tensor *a = scores(x, label, cfirst), *b = scores(x, label, clast);
  CHECK(a && b);
  if (a && b) {
    gpu_vs_cpu("Softmax channels slowest", "Softmax", &a, 1, NULL, 1e-5);
    gpu_vs_cpu("Softmax channels fastest", "Softmax", &b, 1, NULL, 1e-5);
    lm_params *p = params();
    lm_params_set_int(p, "axis", -1);
    gpu_vs_cpu("Softmax axis -1", "Softmax", &a, 1, p, 1e-5);
    lm_params_free(p);
    lm_tensor *d = gpu_cast(a, "float64"), *h = gpu_cast(b, "bfloat16");
    gpu_vs_cpu("Softmax float64", "Softmax", &d, 1, NULL, 1e-5);
    gpu_vs_cpu("Softmax bfloat16", "Softmax", &h, 1, NULL, 1e-5);
    lm_tensor_release(d);
    lm_tensor_release(h);
  }
  lm_tensor_release(a);
  lm_tensor_release(b);
  lm_tensor_release(x);
  lm_tensor_release(label);
}

static void sirp_case(const char *what, lm_tensor *in, lm_tensor *din, double lower, double upper,
                      bool clip, bool relative, bool channel_wise, const char *dtype)
{
  lm_params *p = params();
  lm_params_set_number(p, "lower", lower);
  lm_params_set_number(p, "upper", upper);
  lm_params_set_number(p, "b_min", -1);
  lm_params_set_number(p, "b_max", 2);
  lm_params_set_bool(p, "clip", clip);
  lm_params_set_bool(p, "relative", relative);
  lm_params_set_bool(p, "channel_wise", channel_wise);
  if (dtype) lm_params_set_string(p, "dtype", dtype);
  /* The window is an exact order statistic: the outputs equal the CPU's
   * bit for bit. */
  if (din) gpu_vs_cpu_on(what, "ScaleIntensityRangePercentiles", &in, &din, 1, p, 0);
  else gpu_vs_cpu(what, "ScaleIntensityRangePercentiles", &in, 1, p, 0);
  lm_params_free(p);
}

static void test_percentiles(void)
{
  lm_tensor *label = NULL, *img = gpu_phantom(phantom_shape, &label);
  CHECK(img != NULL);
  if (!img) return;
  sirp_case("SIRP phantom 0.5..99.5 clip", img, NULL, 0.5, 99.5, true, false, false, NULL);
  sirp_case("SIRP phantom 25..75 relative", img, NULL, 25, 75, false, true, false, NULL);
  sirp_case("SIRP phantom 90..10", img, NULL, 90, 10, false, false, false, "float64");
  sirp_case("SIRP phantom 0..100 -> int16", img, NULL, 0, 100, true, false, false, "int16");
  sirp_case("SIRP phantom 33.3..50", img, NULL, 33.3, 50, true, false, false, "float16");
  /* Other key widths and dtypes: int32 and float64 go through double keys. */
  const char *dts[] = {"float32", "int32", "float64", "float16", "uint8", "int64"};
  for (int i = 0; i < 6; i++) {
    lm_tensor *c = gpu_cast(label, dts[i]);
    lm_tensor *x = gpu_cast(img, dts[i]);
    char what[64];
    snprintf(what, sizeof what, "SIRP label %s", dts[i]);
    sirp_case(what, c, NULL, 1, 99, false, false, false, NULL);
    snprintf(what, sizeof what, "SIRP phantom %s", dts[i]);
    sirp_case(what, x, NULL, 2.5, 97.5, true, false, false, NULL);
    lm_tensor_release(c);
    lm_tensor_release(x);
  }
  /* Channel-wise on (3, X, Y, Z) with the channels fastest in memory: each
   * channel is a non-dense view. */
  int64_t shape[4] = {3, (int64_t)phantom_shape[0], (int64_t)phantom_shape[1],
                      (int64_t)phantom_shape[2]};
  int order[4] = {1, 2, 3, 0};
  lm_tensor *m = NULL;
  CHECK_INT(lm_tensor_new_ordered(E, LM_F32, 4, shape, order, LM_CPU, &m), LM_OK);
  if (m) {
    int64_t n = lm_tensor_numel(label);
    for (int64_t p = 0; p < n; p++) {
      int64_t idx[4];
      unravel(3, shape + 1, p, idx + 1);
      double v = lm_tensor_get(img, (int64_t[]){0, idx[1], idx[2], idx[3]});
      for (int c = 0; c < 3; c++) {
        idx[0] = c;
        lm_tensor_set(m, idx, c == 0 ? v : c == 1 ? -v * 0.37 : (double)(p % 1000) - 250.5);
      }
    }
    sirp_case("SIRP channel_wise", m, NULL, 5, 95, true, false, true, NULL);
    sirp_case("SIRP channel_wise relative", m, NULL, 0, 100, false, true, true, "float64");
    /* A permuted device view of it. */
    lm_tensor *dev = gpu_to(m, "cuda"), *hv = NULL, *dv = NULL;
    int perm[4] = {0, 3, 2, 1};
    if (dev && lm_tensor_permute(m, perm, &hv) == LM_OK && lm_tensor_permute(dev, perm, &dv) == LM_OK)
      sirp_case("SIRP permuted view", hv, dv, 10, 60, true, false, false, NULL);
    else
      CHECK(0);
    lm_tensor_release(hv);
    lm_tensor_release(dv);
    lm_tensor_release(dev);
  }
  lm_tensor_release(m);
  /* Few values: ranks at both ends, numpy's interpolation; NaN anywhere
   * makes every output NaN; all values equal is the shift-only map. */
  double ten[10] = {9, 3, 7, 1, 0, 8, 2, 6, 4, 5};
  lm_tensor *t = mk1(LM_F32, 10, ten);
  sirp_case("SIRP 0..9", t, NULL, 0.5, 99.5, false, false, false, NULL);
  sirp_case("SIRP 0..9 ends", t, NULL, 0, 100, false, false, false, NULL);
  lm_tensor_release(t);
  ten[4] = NAN;
  t = mk1(LM_F32, 10, ten);
  sirp_case("SIRP NaN", t, NULL, 10, 90, false, false, false, NULL);
  lm_tensor_release(t);
  double same[5] = {-3, -3, -3, -3, -3};
  t = mk1(LM_F64, 5, same);
  sirp_case("SIRP constant", t, NULL, 10, 90, true, false, false, NULL);
  lm_tensor_release(t);
  double one = -7.25;
  t = mk1(LM_F32, 1, &one);
  sirp_case("SIRP one value", t, NULL, 10, 90, false, false, false, NULL);
  lm_tensor_release(t);
  lm_tensor_release(img);
  lm_tensor_release(label);
}

/* (3, X, Y, Z) float32 with the channels fastest in memory (each channel a
 * non-dense view): the phantom, a scaled negative copy, and a channel with
 * zeros only where the phantom is air. */
static lm_tensor *three_channels(const lm_tensor *img, const lm_tensor *label)
{
  int64_t shape[4] = {3, (int64_t)phantom_shape[0], (int64_t)phantom_shape[1],
                      (int64_t)phantom_shape[2]};
  int order[4] = {1, 2, 3, 0};
  lm_tensor *m = NULL;
  if (lm_tensor_new_ordered(E, LM_F32, 4, shape, order, LM_CPU, &m) != LM_OK) return NULL;
  int64_t n = lm_tensor_numel(label);
  for (int64_t p = 0; p < n; p++) {
    int64_t idx[4];
    unravel(3, shape + 1, p, idx + 1);
    double v = lm_tensor_get(img, (int64_t[]){0, idx[1], idx[2], idx[3]});
    double l = lm_tensor_get(label, idx + 1);
    double vals[3] = {v, -v * 0.37 + 11, l == 0 ? 0 : v + 0.25 * (double)(p % 7)};
    for (int c = 0; c < 3; c++) {
      idx[0] = c;
      lm_tensor_set(m, idx, vals[c]);
    }
  }
  return m;
}

static void ni_case(const char *what, lm_tensor *img, lm_tensor *mask, lm_params *p)
{
  lm_tensor *in[2] = {img, mask};
  /* Statistics in double, rounded to float32: within 1e-5 of the CPU (its
   * double sums run in another order). */
  gpu_vs_cpu(what, "NormalizeIntensity", in, mask ? 2 : 1, p, 1e-5);
}

static void test_normalize(void)
{
  lm_tensor *label = NULL, *img = gpu_phantom(phantom_shape, &label);
  CHECK(img != NULL);
  if (!img) return;
  lm_tensor *three = three_channels(img, label);
  CHECK(three != NULL);
  lm_params *p = params();
  ni_case("NI zscore int16", img, NULL, p);
  ni_case("NI zscore 3 channels", three, NULL, p);
  lm_params_set_bool(p, "nonzero", true);
  ni_case("NI zscore nonzero", img, NULL, p);
  lm_params_set_bool(p, "channel_wise", true);
  ni_case("NI zscore nonzero channel_wise", three, NULL, p);
  lm_params_set_string(p, "dtype", "float64");
  ni_case("NI zscore channel_wise float64", three, NULL, p);
  lm_params_set_string(p, "dtype", "float16");
  ni_case("NI zscore channel_wise float16", three, NULL, p);
  lm_params_free(p);
  /* Given subtrahend / divisor (a zero divisor becomes 1). */
  p = params();
  double sub[3] = {10, -2, 0.5}, div[3] = {100, 0, 3};
  lm_params_set_bool(p, "channel_wise", true);
  lm_params_set_numbers(p, "subtrahend", sub, 3);
  lm_params_set_numbers(p, "divisor", div, 3);
  ni_case("NI zscore given sub/div", three, NULL, p);
  lm_params_free(p);
  p = params();
  lm_params_set_numbers(p, "subtrahend", sub, 1);
  ni_case("NI zscore given sub, std computed", img, NULL, p);
  lm_params_free(p);
  /* nnU-Net ZScore, with and without the seg mask (-1 outside). */
  p = params();
  lm_params_set_string(p, "scheme", "nnunet_zscore");
  ni_case("NI nnunet_zscore", three, NULL, p);
  lm_tensor *seg = gpu_cast(label, "int16");
  if (seg) {
    int16_t *q = lm_tensor_data(seg);
    for (int64_t i = 0; i < lm_tensor_numel(seg); i++)
      if (q[i] == 0) q[i] = -1;
    ni_case("NI nnunet_zscore mask (X, Y, Z)", three, seg, p);
    lm_tensor *seg4 = NULL;
    if (lm_tensor_unsqueeze(seg, 0, &seg4) == LM_OK) ni_case("NI nnunet_zscore mask (1, X, Y, Z)", img, seg4, p);
    else CHECK(0);
    lm_tensor_release(seg4);
  }
  lm_tensor_release(seg);
  lm_params_free(p);
  /* nnU-Net CT with the plans' numbers, one for all or one per channel. */
  p = params();
  lm_params_set_string(p, "scheme", "ct");
  double lo[3] = {-958, -300, 0}, hi[3] = {326.5, 500, 80}, mean[3] = {49.3, 1.5, 30},
         sd[3] = {133.9, 1e-9, 12};
  lm_params_set_numbers(p, "clip_min", lo, 1);
  lm_params_set_numbers(p, "clip_max", hi, 1);
  lm_params_set_numbers(p, "mean", mean, 1);
  lm_params_set_numbers(p, "std", sd, 1);
  ni_case("NI ct", img, NULL, p);
  lm_params_set_numbers(p, "clip_min", lo, 3);
  lm_params_set_numbers(p, "clip_max", hi, 3);
  lm_params_set_numbers(p, "mean", mean, 3);
  lm_params_set_numbers(p, "std", sd, 3);
  ni_case("NI ct per channel", three, NULL, p);
  lm_params_free(p);
  /* A channel with nothing selected is left as it is; a permuted view. */
  double z[8] = {0, 0, 0, 0, 1, 2, 3, 4};
  int64_t zs[2] = {2, 4};
  lm_tensor *zt = mk(LM_F32, 2, zs, z);
  p = params();
  lm_params_set_bool(p, "nonzero", true);
  lm_params_set_bool(p, "channel_wise", true);
  ni_case("NI nonzero, empty channel", zt, NULL, p);
  lm_params_free(p);
  lm_tensor_release(zt);
  lm_tensor *dev = gpu_to(three, "cuda"), *hv = NULL, *dv = NULL;
  int perm[4] = {0, 3, 1, 2};
  if (dev && lm_tensor_permute(three, perm, &hv) == LM_OK && lm_tensor_permute(dev, perm, &dv) == LM_OK) {
    p = params();
    lm_params_set_string(p, "scheme", "nnunet_zscore");
    lm_tensor *h2[1] = {hv}, *d2[1] = {dv};
    gpu_vs_cpu_on("NI permuted view", "NormalizeIntensity", h2, d2, 1, p, 1e-5);
    lm_params_free(p);
  } else {
    CHECK(0);
  }
  lm_tensor_release(hv);
  lm_tensor_release(dv);
  lm_tensor_release(dev);
  lm_tensor_release(three);
  lm_tensor_release(img);
  lm_tensor_release(label);
}

int main(void)
{
  gpu_engine_start();
  RUN(test_cast_all_dtypes);
  RUN(test_cast_int64);
  RUN(test_cast_phantom_strided);
  RUN(test_threshold);
  RUN(test_sigmoid);
  RUN(test_softmax);
  RUN(test_percentiles);
  RUN(test_normalize);
  lm_engine_release(E);
  TAP_DONE();
}
