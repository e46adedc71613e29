/* CropForeground (MONAI and nnU-Net rules) and FillHoles on hand-computed
 * 2-D examples: boxes, margins, k_divisible padding, the nnU-Net seg with
 * -1 outside the filled mask, and the connectivity of the hole fill. */
#include "test_crop_util.h"

/* A (1, 5, 5) "CXY" tensor from 25 values (row = X). */
static lm_tensor *img5(lm_dtype dt, const double *v)
{
  int64_t shape[3] = {1, 5, 5};
  lm_tensor *t = mk(dt, 3, shape, v);
  lm_tensor_set_layout(t, "CXY");
  return t;
}

static const double pyramid[25] = {0, 0, 0, 0, 0,
                                   0, 1, 2, 1, 0,
                                   0, 2, 3, 2, 0,
                                   0, 1, 2, 1, 0,
                                   0, 0, 0, 0, 0};

static const double diamond[25] = {0, 0, 0, 0, 0,
                                   0, 0, 1, 0, 0,
                                   0, 1, 0, 1, 0,
                                   0, 0, 1, 0, 0,
                                   0, 0, 0, 0, 0};

static void test_monai_rule(void)
{
  lm_tensor *in = img5(LM_F32, pyramid), *out[2];
  lm_params *p = params(), *r = NULL;
  /* x > 1: the cross of 2s and the 3, rows 1..3, cols 1..3 */
  lm_params_set_number(p, "select_threshold", 1);
  CHECK_INT(callv("CropForeground", &in, 1, p, out, 2, &r), LM_OK);
  CHECK(out[1] == NULL);
  if (out[0]) {
    CHECK_INT(lm_tensor_shape(out[0])[1], 3);
    CHECK_INT(lm_tensor_shape(out[0])[2], 3);
    double w[9] = {1, 2, 1, 2, 3, 2, 1, 2, 1};
    for (int i = 0; i < 9; i++) CHECK_NEAR(at(out[0], i), w[i], 0);
    CHECK_STR(lm_tensor_trace_at(out[0], 0)->params,
              "box_start=1,1;box_end=4,4;rule=monai");
  }
  CHECK_NEAR(resn(r, "box_start", 0), 1, 0);
  CHECK_NEAR(resn(r, "box_end", 1), 4, 0);
  lm_tensor_release(out[0]);
  lm_params_free(r);
  /* margin 1 and k_divisible 4: 5 -> 8, start 0 - 3//2 = -1, box -1..7,
   * the parts outside padded with 0 */
  set_nums(p, "margin", 1, 1.0);
  set_nums(p, "k_divisible", 1, 4.0);
  CHECK_INT(callv("CropForeground", &in, 1, p, out, 2, &r), LM_OK);
  CHECK_NEAR(resn(r, "box_start", 0), -1, 0);
  CHECK_NEAR(resn(r, "box_end", 0), 7, 0);
  if (out[0]) {
    CHECK_INT(lm_tensor_shape(out[0])[1], 8);
    int64_t o[3] = {0, 3, 3}; /* input (2, 2) */
    CHECK_NEAR(lm_tensor_get(out[0], o), 3, 0);
    int64_t o2[3] = {0, 0, 0};
    CHECK_NEAR(lm_tensor_get(out[0], o2), 0, 0);
  }
  lm_tensor_release(out[0]);
  lm_params_free(r);
  /* allow_smaller clamps the margin to the image instead */
  lm_params_set_bool(p, "allow_smaller", true);
  set_nums(p, "margin", 1, 3.0);
  set_nums(p, "k_divisible", 1, 1.0);
  CHECK_INT(callv("CropForeground", &in, 1, p, out, 2, &r), LM_OK);
  CHECK_NEAR(resn(r, "box_start", 0), 0, 0);
  CHECK_NEAR(resn(r, "box_end", 0), 5, 0);
  lm_tensor_release(out[0]);
  lm_params_free(r);
  lm_params_free(p);
  /* No foreground: MONAI's empty box, a zero-size output. */
  p = params();
  lm_params_set_number(p, "select_threshold", 10);
  CHECK_INT(callv("CropForeground", &in, 1, p, out, 2, NULL), LM_OK);
  CHECK(out[0] && lm_tensor_numel(out[0]) == 0);
  lm_tensor_release(out[0]);
  lm_params_free(p);
  lm_tensor_release(in);
}

static void test_nnunet_rule(void)
{
  lm_tensor *in = img5(LM_I16, diamond), *out[2];
  lm_params *p = params(), *r = NULL;
  lm_params_set_string(p, "rule", "nnunet");
  CHECK_INT(callv("CropForeground", &in, 1, p, out, 2, &r), LM_OK);
  CHECK_NEAR(resn(r, "box_start", 0), 1, 0);
  CHECK_NEAR(resn(r, "box_end", 0), 4, 0);
  /* The filled mask is the diamond plus its centre: the box's corners are
   * outside (-1), the centre is inside (0). */
  double w[9] = {-1, 0, -1, 0, 0, 0, -1, 0, -1};
  CHECK(out[1] != NULL);
  if (out[1]) {
    CHECK_INT(lm_tensor_dtype(out[1]), LM_I16);
    CHECK_INT(lm_tensor_shape(out[1])[0], 1);
    for (int i = 0; i < 9; i++) CHECK_NEAR(at(out[1], i), w[i], 0);
    CHECK_STR(lm_tensor_layout(out[1]), "CXY");
  }
  lm_tensor_release(out[0]);
  lm_tensor_release(out[1]);
  lm_params_free(r);
  /* With a label: label values kept, 0 outside the mask -> -1 (a uint8
   * label comes back as int16). */
  double lv[25] = {0};
  lv[12] = 2; /* the centre */
  lv[0] = 4;  /* outside the box */
  lm_tensor *lab = img5(LM_U8, lv), *both[2] = {in, lab};
  CHECK_INT(callv("CropForeground", both, 2, p, out, 2, NULL), LM_OK);
  if (out[1]) {
    CHECK_INT(lm_tensor_dtype(out[1]), LM_I16);
    double w2[9] = {-1, 0, -1, 0, 2, 0, -1, 0, -1};
    for (int i = 0; i < 9; i++) CHECK_NEAR(at(out[1], i), w2[i], 0);
    CHECK_STR(lm_tensor_trace_at(out[1], 0)->op, "CropForeground");
  }
  lm_tensor_release(out[0]);
  lm_tensor_release(out[1]);
  /* An empty image keeps the whole image (not MONAI's empty box). */
  double zero[25] = {0};
  lm_tensor *z = img5(LM_F32, zero);
  CHECK_INT(callv("CropForeground", &z, 1, p, out, 2, NULL), LM_OK);
  CHECK(out[0] && lm_tensor_shape(out[0])[1] == 5 && lm_tensor_shape(out[0])[2] == 5);
  if (out[1]) CHECK_NEAR(at(out[1], 7), -1, 0);
  lm_tensor_release(out[0]);
  lm_tensor_release(out[1]);
  lm_tensor_release(z);
  /* Mismatched label shape: an error naming the label. */
  int64_t s4[3] = {1, 4, 5};
  lm_tensor *bad = mk(LM_U8, 3, s4, zero), *b2[2] = {in, bad};
  CHECK_INT(callv("CropForeground", b2, 2, p, out, 2, NULL), LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(E), "label");
  lm_tensor_release(bad);
  lm_tensor_release(lab);
  lm_params_free(p);
  lm_tensor_release(in);
}

static void test_fill_holes(void)
{
  /* semantics.md §9.2: the diamond's centre is a hole for the faces
   * neighbourhood, not for the full one (it touches the outside
   * diagonally) -- MONAI's default is full. */
  double d3[25];
  for (int i = 0; i < 25; i++) d3[i] = diamond[i] * 3;
  lm_tensor *in = img5(LM_U8, d3), *out[1];
  CHECK_INT(callv("FillHoles", &in, 1, NULL, out, 1, NULL), LM_OK);
  if (out[0]) CHECK_NEAR(at(out[0], 12), 0, 0);
  lm_tensor_release(out[0]);
  lm_params *p = params();
  lm_params_set_int(p, "connectivity", 1);
  CHECK_INT(callv("FillHoles", &in, 1, p, out, 1, NULL), LM_OK);
  if (out[0]) {
    CHECK_NEAR(at(out[0], 12), 3, 0);
    CHECK_NEAR(at(out[0], 6), 0, 0);
    CHECK_INT(lm_tensor_dtype(out[0]), LM_U8);
  }
  lm_tensor_release(out[0]);
  /* applied_labels without 3: nothing changes */
  set_nums(p, "applied_labels", 1, 1.0);
  CHECK_INT(callv("FillHoles", &in, 1, p, out, 1, NULL), LM_OK);
  if (out[0]) CHECK_NEAR(at(out[0], 12), 0, 0);
  lm_tensor_release(out[0]);
  lm_params_set_int(p, "connectivity", 3);
  CHECK_INT(callv("FillHoles", &in, 1, p, out, 1, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "connectivity");
  lm_params_free(p);
  lm_tensor_release(in);
  /* An island of label 2 enclosed by label 1 becomes 1 (the flood passes
   * through other labels). */
  double ring[25] = {0, 0, 0, 0, 0,
                     0, 1, 1, 1, 0,
                     0, 1, 2, 1, 0,
                     0, 1, 1, 1, 0,
                     0, 0, 0, 0, 0};
  in = img5(LM_I32, ring);
  CHECK_INT(callv("FillHoles", &in, 1, NULL, out, 1, NULL), LM_OK);
  if (out[0]) {
    CHECK_NEAR(at(out[0], 12), 1, 0);
    CHECK_NEAR(at(out[0], 0), 0, 0);
  }
  lm_tensor_release(out[0]);
  lm_tensor_release(in);
  /* One-hot (2, 5, 5): channel 1 is filled on its own, channel 0 left. */
  int64_t s2[3] = {2, 5, 5};
  double oh[50] = {0};
  for (int i = 0; i < 25; i++) {
    oh[i] = ring[i] == 0;
    oh[25 + i] = ring[i] == 1;
  }
  in = mk(LM_F32, 3, s2, oh);
  lm_tensor_set_layout(in, "CXY");
  CHECK_INT(callv("FillHoles", &in, 1, NULL, out, 1, NULL), LM_OK);
  if (out[0]) {
    CHECK_NEAR(at(out[0], 25 + 12), 1, 0);
    CHECK_NEAR(at(out[0], 12), 0, 0);
  }
  lm_tensor_release(out[0]);
  lm_tensor_release(in);
}

/* 3-D nnU-Net rule: a hollow cube is filled (6-connected background), so
 * its cavity is inside the mask. */
static void test_nnunet_3d_cavity(void)
{
  int64_t shape[4] = {1, 6, 6, 6};
  double v[216] = {0};
  for (int x = 1; x <= 4; x++)
    for (int y = 1; y <= 4; y++)
      for (int z = 1; z <= 4; z++) {
        bool shell = x == 1 || x == 4 || y == 1 || y == 4 || z == 1 || z == 4;
        v[(x * 6 + y) * 6 + z] = shell ? 5 : 0;
      }
  lm_tensor *in = mk(LM_F32, 4, shape, v), *out[2];
  lm_tensor_set_layout(in, "CXYZ");
  lm_params *p = params();
  lm_params_set_string(p, "rule", "nnunet");
  CHECK_INT(callv("CropForeground", &in, 1, p, out, 2, NULL), LM_OK);
  if (out[1]) {
    CHECK_INT(lm_tensor_shape(out[1])[1], 4);
    int64_t c[4] = {0, 1, 1, 1}, e[4] = {0, 0, 0, 0};
    CHECK_NEAR(lm_tensor_get(out[1], c), 0, 0); /* cavity: in the mask */
    CHECK_NEAR(lm_tensor_get(out[1], e), 0, 0);
  }
  lm_tensor_release(out[0]);
  lm_tensor_release(out[1]);
  lm_params_free(p);
  lm_tensor_release(in);
}

int main(void)
{
  engine_start();
  RUN(test_monai_rule);
  RUN(test_nnunet_rule);
  RUN(test_fill_holes);
  RUN(test_nnunet_3d_cavity);
  lm_engine_release(E);
  TAP_DONE();
}
