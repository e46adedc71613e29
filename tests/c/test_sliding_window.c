/* Sliding-window inference (models/src/sliding_window*.c).
 * The window math against the values measured from MONAI 1.4 and nnU-Net v2
 * (semantics.md §8.5); no model is needed for those. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "lumen.h"
#include "sliding_window_math.h"
#include "tap.h"

static lm_engine *eng;

/* starts[] of one axis equal to want[0..nwant). */
static void check_starts(sw_rule rule, int64_t n, int64_t roi, double overlap,
                         const int64_t *want, int64_t nwant)
{
  int64_t got[64];
  int64_t count = sw_window_starts(rule, n, roi, overlap, got, 64);
  if (count != nwant) {
    TAP_FAIL("%s n=%lld roi=%lld overlap=%g: %lld windows, want %lld",
             rule == SW_RULE_MONAI ? "monai" : "nnunet", (long long)n,
             (long long)roi, overlap, (long long)count, (long long)nwant);
    return;
  }
  for (int64_t i = 0; i < count; i++)
    if (got[i] != want[i])
      TAP_FAIL("%s n=%lld roi=%lld overlap=%g: start %lld is %lld, want %lld",
               rule == SW_RULE_MONAI ? "monai" : "nnunet", (long long)n,
               (long long)roi, overlap, (long long)i, (long long)got[i],
               (long long)want[i]);
}

#define STARTS(rule, n, roi, ov, ...)                                         \
  do {                                                                        \
    static const int64_t want_[] = {__VA_ARGS__};                             \
    check_starts(rule, n, roi, ov, want_,                                     \
                 (int64_t)(sizeof want_ / sizeof want_[0]));                  \
  } while (0)

/* semantics.md §8.5 [measured] MONAI starts. */
static void monai_starts_measured(void)
{
  STARTS(SW_RULE_MONAI, 110, 64, 0.25, 0, 46);
  STARTS(SW_RULE_MONAI, 110, 64, 0.5, 0, 32, 46);
  STARTS(SW_RULE_MONAI, 200, 96, 0.25, 0, 72, 104);
  STARTS(SW_RULE_MONAI, 200, 96, 0.5, 0, 48, 96, 104);
  STARTS(SW_RULE_MONAI, 97, 32, 0.5, 0, 16, 32, 48, 64, 65);
}

/* Edges: the window covers the axis (interval = roi, one window); roi 1
 * (int(1 * (1 - overlap)) = 0 -> interval 1: every voxel); a large overlap
 * whose interval truncates to 1. */
static void monai_starts_edges(void)
{
  STARTS(SW_RULE_MONAI, 64, 64, 0.25, 0);
  STARTS(SW_RULE_MONAI, 5, 1, 0.25, 0, 1, 2, 3, 4);
  STARTS(SW_RULE_MONAI, 10, 8, 0.9, 0, 1, 2);
  /* 96 * (1 - 0.3) = 67.2 -> 67 */
  STARTS(SW_RULE_MONAI, 200, 96, 0.3, 0, 67, 104);
  /* overlap 0: tiles, the last one snapped back */
  STARTS(SW_RULE_MONAI, 100, 32, 0.0, 0, 32, 64, 68);
}

/* semantics.md §8.5 [measured] nnU-Net starts (tile_step_size 0.5 =
 * overlap 0.5). */
static void nnunet_starts_measured(void)
{
  STARTS(SW_RULE_NNUNET, 110, 64, 0.5, 0, 23, 46);
  STARTS(SW_RULE_NNUNET, 200, 96, 0.5, 0, 35, 69, 104);
  STARTS(SW_RULE_NNUNET, 97, 32, 0.5, 0, 13, 26, 39, 52, 65);
  STARTS(SW_RULE_NNUNET, 300, 128, 0.5, 0, 57, 115, 172);
  /* one window when it covers the axis */
  STARTS(SW_RULE_NNUNET, 64, 64, 0.5, 0);
  /* step 1 (overlap 0): ceil(68 / 32) + 1 = 4 windows spread over 68 */
  STARTS(SW_RULE_NNUNET, 100, 32, 0.0, 0, 23, 45, 68);
  /* half-to-even: n=13, p=8, step .5 -> 3 windows at 0, 2.5, 5 -> 0, 2, 5 */
  STARTS(SW_RULE_NNUNET, 13, 8, 0.5, 0, 2, 5);
}

static void starts_invalid(void)
{
  int64_t s[4];
  CHECK_INT(sw_window_starts(SW_RULE_MONAI, 10, 11, 0.25, s, 4), -1);
  CHECK_INT(sw_window_starts(SW_RULE_MONAI, 10, 0, 0.25, s, 4), -1);
  CHECK_INT(sw_window_starts(SW_RULE_MONAI, 10, 4, 1.0, s, 4), -1);
  CHECK_INT(sw_window_starts(SW_RULE_NNUNET, 10, 4, -0.1, s, 4), -1);
  /* counting only */
  CHECK_INT(sw_window_starts(SW_RULE_MONAI, 97, 32, 0.5, NULL, 0), 6);
}

/* MONAI gaussian roi 8 (sigma 1): [measured] 0.002187, 0.043937, 0.324652,
 * 0.882497, symmetric, centre between voxels 3 and 4. */
static void monai_gaussian_roi8(void)
{
  static const double want[8] = {0.002187, 0.043937, 0.324652, 0.882497,
                                 0.882497, 0.324652, 0.043937, 0.002187};
  float g[8];
  sw_gaussian_monai_1d(8, 0.125, g);
  for (int i = 0; i < 8; i++) CHECK_NEAR(g[i], want[i], 5e-7);
  /* The 1-D map: every value above 1e-3, so the clamp leaves it. */
  float w[8];
  int64_t roi = 8;
  CHECK_INT(sw_weight_map(SW_RULE_MONAI, SW_BLEND_GAUSSIAN, 1, &roi, 0.125, w),
            0);
  for (int i = 0; i < 8; i++) CHECK(w[i] == g[i]);
}

/* nnU-Net gaussian p=8 (sigma 1): [measured] exp(-(x-4)^2/2), peak at 4. */
static void nnunet_gaussian_p8(void)
{
  static const double want[8] = {0.000335, 0.011109, 0.135335, 0.606531,
                                 1.0,      0.606531, 0.135335, 0.011109};
  double g[8];
  sw_gaussian_nnunet_1d(8, 0.125, g);
  for (int i = 0; i < 8; i++) {
    CHECK_NEAR(g[i], want[i], 5e-7);
    CHECK_NEAR(g[i], exp(-(i - 4.0) * (i - 4.0) / 2.0), 1e-15);
  }
  /* The map: x 10, stored as float16 (relative step 2^-11). */
  float w[8];
  int64_t roi = 8;
  CHECK_INT(sw_weight_map(SW_RULE_NNUNET, SW_BLEND_GAUSSIAN, 1, &roi, 0.125,
                          w), 0);
  for (int i = 0; i < 8; i++) {
    double exact = 10.0 * exp(-(i - 4.0) * (i - 4.0) / 2.0);
    CHECK_NEAR(w[i], exact, exact * 4.9e-4);
    CHECK(lm_f16_to_f32(lm_f32_to_f16(w[i])) == w[i]);
  }
  CHECK(w[4] == 10.0f);
}

/* MONAI roi 128: the ends (exp(-63.5^2 / 512) = 3.8e-4) clamp to 1e-3; a 64^3 map
 * has its minimum 7.9e-11 raised to 1e-3 and its maximum at the 8 centre
 * voxels. */
static void monai_gaussian_clamp(void)
{
  float *w = malloc(sizeof(float) * 64 * 64 * 64);
  int64_t roi1 = 128;
  float g[128];
  CHECK_INT(sw_weight_map(SW_RULE_MONAI, SW_BLEND_GAUSSIAN, 1, &roi1, 0.125,
                          g), 0);
  CHECK(g[0] == (float)1e-3 && g[127] == (float)1e-3);
  float raw[128];
  sw_gaussian_monai_1d(128, 0.125, raw);
  CHECK_NEAR(raw[0], exp(-63.5 * 63.5 / 512.0), 1e-9);
  for (int i = 0; i < 128; i++)
    CHECK(g[i] == (raw[i] < (float)1e-3 ? (float)1e-3 : raw[i]));

  int64_t roi3[3] = {64, 64, 64};
  CHECK_INT(sw_weight_map(SW_RULE_MONAI, SW_BLEND_GAUSSIAN, 3, roi3, 0.125, w),
            0);
  float lo = INFINITY, hi = 0;
  for (int64_t k = 0; k < 64 * 64 * 64; k++) {
    if (w[k] < lo) lo = w[k];
    if (w[k] > hi) hi = w[k];
  }
  CHECK(lo == (float)1e-3);
  float g64[64];
  sw_gaussian_monai_1d(64, 0.125, g64);
  CHECK_NEAR((double)g64[0] * g64[0] * g64[0], 7.9e-11, 0.05e-11);
  CHECK(w[0] == (float)1e-3);
  /* (g0 * g1) * g2 in float32, as torch's outer products */
  int64_t c = (31 * 64 + 32) * 64 + 33;
  CHECK(w[c] == (g64[31] * g64[32]) * g64[33]);
  CHECK(hi == (g64[31] * g64[31]) * g64[31]);
  free(w);
}

/* nnU-Net 3-D p=64: corners underflow float16 (10 exp(-24) = 3.8e-10) and
 * take the smallest non-zero weight; the peak is 10 at (32, 32, 32). */
static void nnunet_gaussian_floor(void)
{
  float *w = malloc(sizeof(float) * 64 * 64 * 64);
  int64_t roi3[3] = {64, 64, 64};
  CHECK_INT(sw_weight_map(SW_RULE_NNUNET, SW_BLEND_GAUSSIAN, 3, roi3, 0.125,
                          w), 0);
  float lo = INFINITY, hi = 0;
  int zeros = 0;
  for (int64_t k = 0; k < 64 * 64 * 64; k++) {
    if (w[k] < lo) lo = w[k];
    if (w[k] > hi) hi = w[k];
    if (w[k] == 0) zeros++;
  }
  CHECK_INT(zeros, 0);
  CHECK(hi == 10.0f);
  CHECK(w[(32 * 64 + 32) * 64 + 32] == 10.0f);
  /* smallest float16 subnormal is 2^-24 */
  CHECK(lo == ldexpf(1.0f, -24));
  CHECK(w[0] == lo);
  /* a voxel away from the floor: 10 exp(-(1 + 4 + 9) / 128) in float16 */
  double v = 10.0 * exp(-(1.0 + 4.0 + 9.0) / (2.0 * 64.0));
  CHECK_NEAR(w[(33 * 64 + 34) * 64 + 35], v, v * 4.9e-4);
  free(w);
}

/* Constant blending is 1 everywhere; an axis of roi 1 (2-D windows stepped
 * over slices) leaves the 2-D map as it is. */
static void constant_and_slice_axis(void)
{
  float w[64], w2[64];
  int64_t roi[2] = {8, 8}, roi3[3] = {8, 1, 8};
  CHECK_INT(sw_weight_map(SW_RULE_MONAI, SW_BLEND_CONSTANT, 2, roi, 0.125, w),
            0);
  for (int i = 0; i < 64; i++) CHECK(w[i] == 1.0f);
  for (int r = 0; r < 2; r++) {
    sw_rule rule = r ? SW_RULE_NNUNET : SW_RULE_MONAI;
    CHECK_INT(sw_weight_map(rule, SW_BLEND_GAUSSIAN, 2, roi, 0.125, w), 0);
    CHECK_INT(sw_weight_map(rule, SW_BLEND_GAUSSIAN, 3, roi3, 0.125, w2), 0);
    for (int i = 0; i < 64; i++) CHECK(w[i] == w2[i]);
  }
  CHECK_INT(sw_weight_map(SW_RULE_MONAI, SW_BLEND_GAUSSIAN, 4, roi, 0.125, w),
            -1);
}

/* ---- the op, on identity networks built from lumen graph JSON ---------- */

/* A 1x1(x1) Conv whose weight is the identity over `c` channels: the
 * network gives back its input exactly, so the blended result must be x
 * whatever the windows, weights and padding. */
static lm_model *identity_model_batch(int nsp, int c, const char *axes,
                                      int batch)
{
  char json[2048], w[512] = "";
  for (int i = 0; i < c; i++)
    for (int k = 0; k < c; k++)
      snprintf(w + strlen(w), sizeof w - strlen(w), "%s%d",
               i || k ? "," : "", i == k);
  snprintf(json, sizeof json,
           "{\"inputs\": [{\"name\": \"x\", \"shape\": [%d, %d, -1, -1%s], "
           "\"dtype\": \"float32\"}], \"outputs\": [\"y\"], "
           "\"nodes\": [{\"op\": \"Conv\", \"name\": \"id\", "
           "\"inputs\": [\"x\", \"w\"], \"outputs\": [\"y\"], "
           "\"attrs\": {\"kernel_shape\": [1, 1%s]}}], "
           "\"weights\": [{\"name\": \"w\", \"dtype\": \"float32\", "
           "\"shape\": [%d, %d, 1, 1%s], \"data\": [%s]}]}",
           batch, c, nsp == 3 ? ", -1" : "", nsp == 3 ? ", 1" : "", c, c,
           nsp == 3 ? ", 1" : "", w);
  lm_model_options opt;
  lm_model_options_init(&opt);
  opt.axes = axes;
  lm_model *m = NULL;
  int st = lm_model_load_graph(eng, json, strlen(json), NULL, &opt, &m);
  if (st < 0) TAP_FAIL("lm_model_load_graph: %s", lm_errmsg(eng));
  return m;
}

static lm_model *identity_model(int nsp, int c, const char *axes)
{
  return identity_model_batch(nsp, c, axes, -1);
}

/* (c, nx, ny, nz) with integer values in [-500, 500] (sums of a few of them
 * are exact in float32), held in memory X fastest as LoadNifti gives it. */
static lm_tensor *test_image(lm_dtype dt, int c, int nx, int ny, int nz)
{
  int64_t fshape[4] = {nz, ny, nx, c};
  lm_tensor *f = NULL, *x = NULL;
  if (lm_tensor_new(eng, dt, 4, fshape, LM_CPU, &f) < 0) return NULL;
  int perm[4] = {3, 2, 1, 0};
  lm_tensor_permute(f, perm, &x);
  lm_tensor_release(f);
  uint32_t seed = 12345;
  int64_t idx[4];
  for (idx[0] = 0; idx[0] < c; idx[0]++)
    for (idx[1] = 0; idx[1] < nx; idx[1]++)
      for (idx[2] = 0; idx[2] < ny; idx[2]++)
        for (idx[3] = 0; idx[3] < nz; idx[3]++) {
          seed = seed * 1664525u + 1013904223u;
          lm_tensor_set(x, idx, (double)((int)(seed >> 8) % 1001 - 500));
        }
  lm_tensor_set_layout(x, "CXYZ");
  double aff[16] = {2, 0, 0, -10, 0, 3, 0, 5, 0, 0, 4, 7, 0, 0, 0, 1};
  lm_tensor_set_affine(x, aff);
  return x;
}

typedef struct sw_case {
  int64_t roi[3];
  int nroi;
  double overlap;
  const char *mode, *rule, *padding;
  int batch;
  int nmirror;
  double mirror[3];
  int slice_axis;   /* -1: not set */
} sw_case;

static int run_sw(lm_model *m, lm_tensor *x, const sw_case *k, lm_tensor **out,
                  int64_t *windows)
{
  lm_params *p = NULL, *res = NULL;
  lm_params_new(&p);
  lm_params_set_model(p, "model", m);
  double roi[3];
  for (int d = 0; d < k->nroi; d++) roi[d] = (double)k->roi[d];
  if (k->nroi) lm_params_set_numbers(p, "roi", roi, k->nroi);
  lm_params_set_number(p, "overlap", k->overlap);
  if (k->mode) lm_params_set_string(p, "mode", k->mode);
  if (k->rule) lm_params_set_string(p, "rule", k->rule);
  if (k->padding) lm_params_set_string(p, "padding_mode", k->padding);
  if (k->batch) lm_params_set_int(p, "sw_batch_size", k->batch);
  if (k->nmirror) lm_params_set_numbers(p, "mirror_axes", k->mirror, k->nmirror);
  if (k->slice_axis >= 0) lm_params_set_int(p, "slice_axis", k->slice_axis);
  int nout = 1;
  *out = NULL;
  int st = lm_call(eng, "SlidingWindowInfer", &x, 1, p, out, &nout, &res);
  if (windows) {
    const lm_value *v = res ? lm_params_get(res, "windows") : NULL;
    *windows = v && v->type == LM_VALUE_INT ? v->u.integer : -1;
  }
  lm_params_free(res);
  lm_params_free(p);
  return st;
}

/* Largest |out - x| / max(|x|, 1) over the image; -1 on a shape mismatch. */
static double max_rel_diff(lm_tensor *out, lm_tensor *x)
{
  int nd = lm_tensor_ndim(x);
  if (lm_tensor_ndim(out) != nd || lm_tensor_dtype(out) != LM_F32) return -1;
  for (int d = 0; d < nd; d++)
    if (lm_tensor_shape(out)[d] != lm_tensor_shape(x)[d]) return -1;
  int64_t idx[4] = {0, 0, 0, 0}, total = lm_tensor_numel(x);
  const int64_t *sh = lm_tensor_shape(x);
  double worst = 0;
  for (int64_t i = 0; i < total; i++) {
    double a = lm_tensor_get(out, idx), b = lm_tensor_get(x, idx);
    double r = fabs(a - b) / (fabs(b) > 1 ? fabs(b) : 1);
    if (!(r <= worst)) worst = r;
    for (int d = nd - 1; d >= 0; d--) {
      if (++idx[d] < sh[d]) break;
      idx[d] = 0;
    }
  }
  return worst;
}

static void check_identity(lm_model *m, lm_tensor *x, const sw_case *k,
                           double tol, int64_t want_windows, const char *what)
{
  lm_tensor *out = NULL;
  int64_t windows = 0;
  int st = run_sw(m, x, k, &out, &windows);
  if (st < 0) {
    TAP_FAIL("%s: %s", what, lm_errmsg(eng));
    return;
  }
  double r = max_rel_diff(out, x);
  if (!(r >= 0 && r <= tol)) TAP_FAIL("%s: max relative difference %g", what, r);
  if (want_windows >= 0 && windows != want_windows)
    TAP_FAIL("%s: %lld windows, want %lld", what, (long long)windows,
             (long long)want_windows);
  CHECK_STR(lm_tensor_layout(out), lm_tensor_layout(x));
  for (int i = 0; i < 16; i++)
    CHECK(lm_tensor_affine(out)[i] == lm_tensor_affine(x)[i]);
  lm_tensor_release(out);
}

/* Constant blending of integer values: every sum is exact, so x comes back
 * bit for bit; Gaussian weights round (sum(w x) / sum(w)), within 1e-6. */
static void identity_3d(void)
{
  lm_model *m = identity_model(3, 2, NULL);
  lm_tensor *x = test_image(LM_F32, 2, 23, 17, 11);
  if (!m || !x) goto done;
  sw_case k = {.roi = {8, 6, 5}, .nroi = 3, .overlap = 0.25, .slice_axis = -1};
  /* monai: x 23 -> interval 6: 0,6,12,15; y 17 -> 4: 0,4,8,11; z 11 -> 3:
   * 0,3,6 -> 48 windows */
  check_identity(m, x, &k, 0, 48, "constant 0.25");
  k.overlap = 0.5;
  k.batch = 3;
  check_identity(m, x, &k, 0, -1, "constant 0.5 batch 3");
  k.mode = "gaussian";
  check_identity(m, x, &k, 1e-6, -1, "gaussian 0.5 batch 3");
  k.rule = "nnunet";
  check_identity(m, x, &k, 1e-6, -1, "nnunet gaussian");
  k.batch = 4;
  k.nmirror = 3;
  k.mirror[0] = 0, k.mirror[1] = 1, k.mirror[2] = 2;
  check_identity(m, x, &k, 1e-6, -1, "nnunet mirrored");
  /* windows larger than the image along x and z: padded, then cropped
   * away; y 17 -> interval 3: 6 windows */
  sw_case big = {.roi = {32, 4, 16}, .nroi = 3, .overlap = 0.25,
                 .slice_axis = -1};
  check_identity(m, x, &big, 0, 6, "padded constant");
  big.padding = "reflect";
  check_identity(m, x, &big, 0, 6, "padded reflect");
  big.padding = "replicate";
  big.mode = "gaussian";
  check_identity(m, x, &big, 1e-6, 6, "padded replicate gaussian");
  /* roi <= 0 takes the image size: one window along x; y 4, z 2 */
  sw_case fall = {.roi = {-1, 8, 8}, .nroi = 3, .overlap = 0.5,
                  .slice_axis = -1};
  check_identity(m, x, &fall, 0, 8, "roi -1");
done:
  lm_tensor_release(x);
  lm_model_release(m);
}

/* Integer input dtypes are read as float32; a ZYX network sees the window
 * reversed (a non-cubic window would come back scrambled if the reversal
 * were wrong). */
static void identity_dtypes_axes(void)
{
  lm_model *m = identity_model(3, 1, "ZYX");
  lm_tensor *x = test_image(LM_I16, 1, 19, 13, 9);
  if (!m || !x) goto done;
  sw_case k = {.roi = {10, 7, 4}, .nroi = 3, .overlap = 0.25,
               .slice_axis = -1, .batch = 2};
  check_identity(m, x, &k, 0, -1, "int16, ZYX");
  k.nmirror = 2;
  k.mirror[0] = 2, k.mirror[1] = 0;
  k.mode = "gaussian";
  check_identity(m, x, &k, 1e-6, -1, "int16, ZYX, mirrored");
done:
  lm_tensor_release(x);
  lm_model_release(m);
}

/* A 2-D network on a 3-D image: 2-D windows over every slice. */
static void identity_slices(void)
{
  lm_model *m = identity_model(2, 2, NULL);
  lm_tensor *x = test_image(LM_F32, 2, 12, 9, 5);
  if (!m || !x) goto done;
  sw_case k = {.roi = {8, 6}, .nroi = 2, .overlap = 0.5, .slice_axis = -1};
  /* x 12 -> interval 4: 0,4; y 9 -> 3: 0,3; 5 slices along z */
  check_identity(m, x, &k, 0, 20, "slices along z");
  k.slice_axis = 0;
  k.mode = "gaussian";
  k.batch = 7;
  /* roi (8, 6) on (y, z): y 9 -> 0, 1; z 5 padded to 6 -> 0; 12 slices */
  check_identity(m, x, &k, 1e-6, 24, "slices along x");
  k.rule = "nnunet";
  k.nmirror = 1;
  k.mirror[0] = 1;
  check_identity(m, x, &k, 1e-6, -1, "slices along x, nnunet, mirrored");
  /* a ZYX 2-D network sees (z, y) for slices along x */
  lm_model_release(m);
  m = identity_model(2, 2, "ZYX");
  if (!m) goto done;
  check_identity(m, x, &k, 1e-6, -1, "slices along x, ZYX, mirrored");
done:
  lm_tensor_release(x);
  lm_model_release(m);
}

static void expect_error(lm_model *m, lm_tensor *x, const sw_case *k,
                         const char *needle)
{
  lm_tensor *out = NULL;
  int st = run_sw(m, x, k, &out, NULL);
  CHECK(st < 0);
  if (st < 0) CHECK_CONTAINS(lm_errmsg(eng), needle);
  lm_tensor_release(out);
}

/* A network whose batch size is fixed: the last batch runs padded (5
 * windows in batches of 2); another sw_batch_size is an error. */
static void identity_static_batch(void)
{
  lm_model *m = identity_model_batch(3, 1, NULL, 2);
  lm_tensor *x = test_image(LM_F32, 1, 13, 9, 7);
  if (!m || !x) goto done;
  /* x 13, roi 5, overlap .5 -> interval 2: 0, 2, 4, 6, 8 */
  sw_case k = {.roi = {5, 9, 7}, .nroi = 3, .overlap = 0.5, .batch = 2,
               .slice_axis = -1};
  check_identity(m, x, &k, 0, 5, "fixed batch 2");
  k.mode = "gaussian";
  k.nmirror = 1;
  k.mirror[0] = 0;
  check_identity(m, x, &k, 1e-6, 5, "fixed batch 2, mirrored");
  /* fewer windows than the batch */
  sw_case one = {.roi = {13, 9, 7}, .nroi = 3, .overlap = 0.5, .batch = 2,
                 .slice_axis = -1};
  check_identity(m, x, &one, 0, 1, "fixed batch 2, one window");
  k.batch = 1;
  expect_error(m, x, &k, "takes batches of exactly 2");
done:
  lm_tensor_release(x);
  lm_model_release(m);
}

static void option_errors(void)
{
  lm_model *m = identity_model(3, 2, NULL);
  lm_tensor *x = test_image(LM_F32, 2, 6, 5, 4);
  lm_tensor *x1 = test_image(LM_F32, 1, 6, 5, 4);
  if (!m || !x || !x1) goto done;
  sw_case k = {.nroi = 0, .overlap = 0.25, .slice_axis = -1};
  expect_error(m, x, &k, "'roi' is required");
  k.nroi = 2;
  k.roi[0] = k.roi[1] = 4;
  expect_error(m, x, &k, "'roi' has 2 values");
  k.nroi = 3;
  k.roi[2] = 4;
  k.overlap = 1.0;
  expect_error(m, x, &k, "'overlap'");
  k.overlap = 0.25;
  k.mode = "median";
  expect_error(m, x, &k, "option 'mode' is 'median'");
  k.mode = NULL;
  k.nmirror = 1;
  k.mirror[0] = 3;
  expect_error(m, x, &k, "'mirror_axes'");
  k.nmirror = 0;
  expect_error(m, x1, &k, "img has 1 channels");
done:
  lm_tensor_release(x);
  lm_tensor_release(x1);
  lm_model_release(m);
}

/* A network with two outputs, x and 2 x: option 'output' picks one. */
static void second_output(void)
{
  static const char json[] =
      "{\"inputs\": [{\"name\": \"x\", \"shape\": [-1, 1, -1, -1, -1], "
      "\"dtype\": \"float32\"}], \"outputs\": [\"y0\", \"y1\"], "
      "\"nodes\": [{\"op\": \"Conv\", \"inputs\": [\"x\", \"w0\"], "
      "\"outputs\": [\"y0\"]}, {\"op\": \"Conv\", \"inputs\": [\"x\", "
      "\"w1\"], \"outputs\": [\"y1\"]}], \"weights\": ["
      "{\"name\": \"w0\", \"dtype\": \"float32\", \"shape\": [1, 1, 1, 1, 1], "
      "\"data\": [1]}, {\"name\": \"w1\", \"dtype\": \"float32\", "
      "\"shape\": [1, 1, 1, 1, 1], \"data\": [2]}]}";
  lm_model *m = NULL;
  if (lm_model_load_graph(eng, json, strlen(json), NULL, NULL, &m) < 0) {
    TAP_FAIL("lm_model_load_graph: %s", lm_errmsg(eng));
    return;
  }
  lm_tensor *x = test_image(LM_F32, 1, 10, 8, 6);
  lm_params *p = NULL;
  lm_params_new(&p);
  lm_params_set_model(p, "model", m);
  double roi[3] = {6, 6, 6};
  lm_params_set_numbers(p, "roi", roi, 3);
  lm_params_set_int(p, "output", 1);
  lm_tensor *out = NULL;
  int nout = 1;
  CHECK_INT(lm_call(eng, "SlidingWindowInfer", &x, 1, p, &out, &nout, NULL),
            LM_OK);
  if (out) {
    int64_t idx[4] = {0, 7, 3, 5};
    CHECK(lm_tensor_get(out, idx) == 2 * lm_tensor_get(x, idx));
    idx[1] = 0, idx[2] = 0, idx[3] = 0;
    CHECK(lm_tensor_get(out, idx) == 2 * lm_tensor_get(x, idx));
  }
  lm_tensor_release(out);
  out = NULL;
  lm_params_set_int(p, "output", 2);
  CHECK(lm_call(eng, "SlidingWindowInfer", &x, 1, p, &out, &nout, NULL) < 0);
  CHECK_CONTAINS(lm_errmsg(eng), "has outputs 0..1");
  lm_tensor_release(out);
  lm_params_free(p);
  lm_tensor_release(x);
  lm_model_release(m);
}

static void record_status(lm_job *job, int status, void *ud)
{
  *(int *)ud = status;
  lm_job_release(job);
}

static double seconds(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A job of 47^3 = 103823 tiny windows cancelled after 0.2 s stops at the
 * next window batch: LM_ECANCELED, long before it could have finished
 * (uncancelled it took 42 s on the shared 2-core build machine; finishing
 * in 2 s would need under 20 us per network run). */
static void cancel_between_windows(void)
{
  lm_model *m = identity_model(3, 1, NULL);
  int64_t shape[4] = {1, 96, 96, 96};
  lm_tensor *x = NULL;
  lm_tensor_zeros(eng, LM_F32, 4, shape, LM_CPU, &x);
  if (!m || !x) goto done;
  lm_params *p = NULL;
  lm_params_new(&p);
  lm_params_set_model(p, "model", m);
  double roi[3] = {4, 4, 4};
  lm_params_set_numbers(p, "roi", roi, 3);
  lm_params_set_number(p, "overlap", 0.5);
  int status = 1;
  lm_job *job = NULL;
  double t0 = seconds();
  CHECK_INT(lm_call_async(eng, "SlidingWindowInfer", &x, 1, p, record_status,
                          &status, &job), LM_OK);
  lm_params_free(p);
  usleep(200000);
  lm_job_cancel(job);
  lm_engine_run(eng, 0);
  CHECK_INT(status, LM_ECANCELED);
  CHECK(seconds() - t0 < 2.0 + 0.2);
done:
  lm_tensor_release(x);
  lm_model_release(m);
}

int main(void)
{
  RUN(monai_starts_measured);
  RUN(monai_starts_edges);
  RUN(nnunet_starts_measured);
  RUN(starts_invalid);
  RUN(monai_gaussian_roi8);
  RUN(nnunet_gaussian_p8);
  RUN(monai_gaussian_clamp);
  RUN(nnunet_gaussian_floor);
  RUN(constant_and_slice_axis);
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.threads = 2;
  cfg.no_cuda = true;
  if (lm_engine_new(&cfg, &eng) < 0) {
    printf("# lm_engine_new failed\n");
    return 1;
  }
  RUN(identity_3d);
  RUN(identity_dtypes_axes);
  RUN(identity_slices);
  RUN(identity_static_batch);
  RUN(option_errors);
  RUN(second_output);
  RUN(cancel_between_windows);
  lm_engine_release(eng);
  TAP_DONE();
}
