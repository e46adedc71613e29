/* Patch samplers: MONAI's centre correction, positive/negative balance,
 * every centre used equally often, padding at the true position, negative
 * patches away from the centres, and seeded reproducibility. */
#include "test_crop_util.h"

/* (1, 10, 12, 14) "CXYZ" with value x*10000 + y*100 + z, spacing 2. */
static lm_tensor *grid(void)
{
  int64_t shape[4] = {1, 10, 12, 14};
  int order[4] = {0, 3, 2, 1};
  lm_tensor *t = NULL;
  lm_tensor_new_ordered(E, LM_F32, 4, shape, order, LM_CPU, &t);
  int64_t i[4] = {0};
  for (i[1] = 0; i[1] < 10; i[1]++)
    for (i[2] = 0; i[2] < 12; i[2]++)
      for (i[3] = 0; i[3] < 14; i[3]++)
        lm_tensor_set(t, i, (double)(i[1] * 10000 + i[2] * 100 + i[3]));
  lm_tensor_set_layout(t, "CXYZ");
  double aff[16] = {2, 0, 0, -10, 0, 2, 0, -12, 0, 0, 2, -14, 0, 0, 0, 1};
  lm_tensor_set_affine(t, aff);
  return t;
}

static lm_tensor *label_at(int64_t x, int64_t y, int64_t z)
{
  int64_t shape[4] = {1, 10, 12, 14};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_U8, 4, shape, LM_CPU, &t);
  int64_t i[4] = {0, x, y, z};
  lm_tensor_set(t, i, 7);
  lm_tensor_set_layout(t, "CXYZ");
  return t;
}

static void test_pos_neg_correction(void)
{
  lm_tensor *img = grid(), *lab = label_at(0, 11, 6), *in[2] = {img, lab};
  lm_tensor *out[2];
  lm_params *p = params(), *r = NULL;
  set_nums(p, "spatial_size", 3, 4.0, 4.0, 5.0);
  lm_params_set_number(p, "neg", 0);
  lm_params_set_int(p, "num_samples", 3);
  CHECK_INT(callv("RandCropByPosNegLabel", in, 2, p, out, 2, &r), LM_OK);
  /* The only fg voxel (0, 11, 6): x -> clamp(0, 2, uint16(11 - 2) - 1 = 8)
   * = 2; y -> clamp(11, 2, uint16(13 - 2) - 1 = 10) = 10; z: s = 5,
   * lo = 2, hi = uint16(15 - 2.5) = 12 -> 6 stays. */
  for (int k = 0; k < 3; k++) {
    CHECK_NEAR(resn(r, "centers", 3 * k + 0), 2, 0);
    CHECK_NEAR(resn(r, "centers", 3 * k + 1), 10, 0);
    CHECK_NEAR(resn(r, "centers", 3 * k + 2), 6, 0);
    CHECK_NEAR(resn(r, "starts", 3 * k + 1), 8, 0);
    CHECK_NEAR(resn(r, "starts", 3 * k + 2), 4, 0);
  }
  const lm_value *np = lm_params_get(r, "num_positive");
  CHECK(np && np->type == LM_VALUE_INT && np->u.integer == 3);
  if (out[0] && out[1]) {
    CHECK_STR(lm_tensor_layout(out[0]), "NCXYZ");
    CHECK_INT(lm_tensor_shape(out[0])[0], 3);
    CHECK_INT(lm_tensor_shape(out[0])[4], 5);
    int64_t o[5] = {2, 0, 0, 3, 2}; /* patch 2 at input (0, 11, 6) */
    CHECK_NEAR(lm_tensor_get(out[0], o), 0 * 10000 + 11 * 100 + 6, 0);
    CHECK_NEAR(lm_tensor_get(out[1], o), 7, 0);
    /* patch 0's affine: start (0, 8, 4) -> -10 + 0, -12 + 16, -14 + 8 */
    CHECK_NEAR(lm_tensor_affine(out[0])[7], 4, 0);
    CHECK_NEAR(lm_tensor_affine(out[0])[11], -6, 0);
    CHECK_STR(lm_tensor_trace_at(out[0], 0)->op, "RandCropByPosNegLabel");
  }
  lm_tensor_release(out[0]);
  lm_tensor_release(out[1]);
  lm_params_free(r);
  /* Too large a patch: an error unless allow_smaller. */
  set_nums(p, "spatial_size", 3, 11.0, 4.0, 4.0);
  CHECK_INT(callv("RandCropByPosNegLabel", in, 2, p, out, 2, NULL), LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(E), "allow_smaller");
  lm_params_free(p);
  lm_tensor_release(lab);
  lm_tensor_release(img);
}

static void test_pos_neg_balance_and_seed(void)
{
  lm_tensor *img = grid(), *lab = label_at(5, 6, 7), *in[2] = {img, lab};
  lm_tensor *out[2];
  lm_params *p = params(), *r1 = NULL, *r2 = NULL, *r3 = NULL;
  set_nums(p, "spatial_size", 1, 4.0);
  lm_params_set_int(p, "num_samples", 400);
  lm_params_set_int(p, "seed", 11);
  CHECK_INT(callv("RandCropByPosNegLabel", in, 2, p, out, 2, &r1), LM_OK);
  lm_tensor_release(out[0]);
  lm_tensor_release(out[1]);
  CHECK_INT(callv("RandCropByPosNegLabel", in, 2, p, out, 2, &r2), LM_OK);
  lm_tensor_release(out[0]);
  lm_tensor_release(out[1]);
  lm_params_set_int(p, "seed", 12);
  CHECK_INT(callv("RandCropByPosNegLabel", in, 2, p, out, 2, &r3), LM_OK);
  lm_tensor_release(out[0]);
  lm_tensor_release(out[1]);
  int same = 1, differ = 0, pos = 0;
  for (int i = 0; i < 1200; i++) {
    same &= resn(r1, "centers", i) == resn(r2, "centers", i);
    differ |= resn(r1, "centers", i) != resn(r3, "centers", i);
  }
  for (int k = 0; k < 400; k++)
    pos += resn(r1, "centers", 3 * k) == 5 && resn(r1, "centers", 3 * k + 1) == 6 &&
           resn(r1, "centers", 3 * k + 2) == 7;
  CHECK(same);
  CHECK(differ);
  /* pos = neg = 1: about half positive (binomial, 400 draws: 5 sigma),
   * and num_positive counts them (a background centre may coincide with
   * the fg voxel only after correction, which cannot reach it here). */
  CHECK(pos > 150 && pos < 250);
  const lm_value *np = lm_params_get(r1, "num_positive");
  CHECK(np && np->u.integer == pos);
  lm_params_free(r1);
  lm_params_free(r2);
  lm_params_free(r3);
  lm_params_free(p);
  lm_tensor_release(lab);
  lm_tensor_release(img);
}

static void test_around_centers(void)
{
  lm_tensor *img = grid(), *lab = label_at(1, 1, 1), *in[2] = {img, lab};
  lm_tensor *out[2];
  lm_params *p = params(), *r = NULL;
  /* Three centres; world (-8, -10, -12) is voxel (1, 1, 1). */
  set_nums(p, "centers", 9, -8.0, -10.0, -12.0, 0.0, 0.0, 0.0, 8.0, 10.0, 12.0);
  lm_params_set_string(p, "coords", "world");
  set_nums(p, "spatial_size", 1, 6.0);
  lm_params_set_int(p, "num_samples", 9);
  lm_params_set_number(p, "value", -1);
  lm_params_set_int(p, "seed", 5);
  CHECK_INT(callv("RandCropAroundCenters", in, 2, p, out, 2, &r), LM_OK);
  int used[3] = {0, 0, 0};
  for (int k = 0; k < 9; k++) {
    int c = (int)resn(r, "center_index", k);
    if (c >= 0 && c < 3) used[c]++;
  }
  CHECK_INT(used[0], 3);
  CHECK_INT(used[1], 3);
  CHECK_INT(used[2], 3);
  /* No offset: the patch of centre (1, 1, 1) starts at (-2, -2, -2), its
   * voxel (3, 3, 3) is the centre and its corner is padding (-1; the
   * label pads with 0). */
  for (int k = 0; k < 9 && out[0]; k++) {
    if (resn(r, "center_index", k) != 0) continue;
    CHECK_NEAR(resn(r, "starts", 3 * k), -2, 0);
    int64_t c[5] = {k, 0, 3, 3, 3}, z[5] = {k, 0, 0, 0, 0};
    CHECK_NEAR(lm_tensor_get(out[0], c), 10101, 0);
    CHECK_NEAR(lm_tensor_get(out[1], c), 7, 0);
    CHECK_NEAR(lm_tensor_get(out[0], z), -1, 0);
    CHECK_NEAR(lm_tensor_get(out[1], z), 0, 0);
  }
  lm_tensor_release(out[0]);
  lm_tensor_release(out[1]);
  lm_params_free(r);
  /* With an offset range the centre moves by at most r per axis. */
  set_nums(p, "offset_range", 3, 1.0, 2.0, 0.0);
  CHECK_INT(callv("RandCropAroundCenters", &img, 1, p, out, 2, &r), LM_OK);
  CHECK(out[1] == NULL);
  const double base[3][3] = {{1, 1, 1}, {5, 6, 7}, {9, 11, 13}};
  int moved = 0;
  for (int k = 0; k < 9; k++) {
    int c = (int)resn(r, "center_index", k);
    for (int d = 0; d < 3 && c >= 0 && c < 3; d++) {
      double off = resn(r, "centers", 3 * k + d) - base[c][d];
      double lim = d == 0 ? 1 : d == 1 ? 2 : 0;
      CHECK(fabs(off) <= lim);
      moved |= off != 0;
    }
  }
  CHECK(moved);
  lm_tensor_release(out[0]);
  lm_params_free(r);
  /* A centre list that is not a multiple of 3: an error naming it. */
  set_nums(p, "centers", 2, 1.0, 2.0);
  CHECK_INT(callv("RandCropAroundCenters", &img, 1, p, out, 2, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "centers");
  lm_params_free(p);
  lm_tensor_release(lab);
  lm_tensor_release(img);
}

static void test_negative(void)
{
  lm_tensor *img = grid(), *out[2];
  lm_params *p = params(), *r = NULL;
  set_nums(p, "centers", 3, 5.0, 6.0, 7.0);
  set_nums(p, "spatial_size", 1, 3.0);
  lm_params_set_number(p, "exclusion_radius", 4.0); /* mm = 2 voxels */
  lm_params_set_int(p, "num_samples", 50);
  lm_params_set_int(p, "seed", 2);
  CHECK_INT(callv("RandNegativeCrop", &img, 1, p, out, 2, &r), LM_OK);
  for (int k = 0; k < 50; k++) {
    double g2 = 0;
    const double c[3] = {5, 6, 7};
    for (int d = 0; d < 3; d++) {
      double s = resn(r, "starts", 3 * k + d), e = s + 2, g = 0;
      CHECK(s >= 0 && e <= (d == 0 ? 9 : d == 1 ? 11 : 13));
      if (c[d] < s) g = s - c[d];
      else if (c[d] > e) g = c[d] - e;
      g2 += g * g * 4;
    }
    CHECK(sqrt(g2) > 4.0);
  }
  if (out[0]) CHECK_INT(lm_tensor_shape(out[0])[0], 50);
  lm_tensor_release(out[0]);
  lm_params_free(r);
  /* Nowhere to go: an error after max_tries. */
  lm_params_set_number(p, "exclusion_radius", 100);
  lm_params_set_int(p, "max_tries", 20);
  CHECK_INT(callv("RandNegativeCrop", &img, 1, p, out, 2, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "tries");
  lm_params_free(p);
  lm_tensor_release(img);
}

int main(void)
{
  engine_start();
  RUN(test_pos_neg_correction);
  RUN(test_pos_neg_balance_and_seed);
  RUN(test_around_centers);
  RUN(test_negative);
  lm_engine_release(E);
  TAP_DONE();
}
