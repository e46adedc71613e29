/* Sliding-window inference (models/src/sliding_window*.c).
 * The window math against the values measured from MONAI 1.4 and nnU-Net v2
 * (semantics.md §8.5); no model is needed for those. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "lumen.h"
#include "sliding_window_math.h"
#include "tap.h"

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
  TAP_DONE();
}
