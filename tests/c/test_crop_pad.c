/* SpatialCrop, CenterCrop, SpatialPad, DivisiblePad: MONAI's documented
 * rules on hand-computed boxes and values, geometry and trace. */
#include "test_crop_util.h"

/* (1, 10) "CX": values 1..10 on a 1-D spatial axis, affine with spacing 2
 * and origin 100. */
static lm_tensor *line10(void)
{
  int64_t shape[2] = {1, 10};
  double v[10];
  for (int i = 0; i < 10; i++) v[i] = i + 1;
  lm_tensor *t = mk(LM_I16, 2, shape, v);
  lm_tensor_set_layout(t, "CX");
  double aff[16] = {2, 0, 0, 100, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  lm_tensor_set_affine(t, aff);
  return t;
}

static void check_row(lm_tensor *t, const double *want, int n)
{
  CHECK(t != NULL);
  if (!t) return;
  CHECK_INT(lm_tensor_shape(t)[1], n);
  for (int i = 0; i < n && i < lm_tensor_shape(t)[1]; i++) CHECK_NEAR(at(t, i), want[i], 0);
}

static void test_spatial_crop(void)
{
  lm_tensor *in = line10(), *out[1];
  lm_params *p = params(), *r = NULL;
  /* centre 8, size 6: start 5, end 11 -> clipped to 10: 6..10 */
  set_nums(p, "roi_center", 1, 8.0);
  set_nums(p, "roi_size", 1, 6.0);
  CHECK_INT(callv("SpatialCrop", &in, 1, p, out, 1, &r), LM_OK);
  double w1[] = {6, 7, 8, 9, 10};
  check_row(out[0], w1, 5);
  CHECK_NEAR(resn(r, "box_start", 0), 5, 0);
  CHECK_NEAR(resn(r, "box_end", 0), 10, 0);
  if (out[0]) {
    CHECK_NEAR(lm_tensor_affine(out[0])[3], 110, 0); /* 100 + 2 * 5 */
    CHECK_STR(lm_tensor_layout(out[0]), "CX");
    CHECK_INT(lm_tensor_trace_length(out[0]), 1);
    const lm_trace_entry *e = lm_tensor_trace_at(out[0], 0);
    CHECK_STR(e->op, "SpatialCrop");
    CHECK_STR(e->params, "box_start=5;box_end=10");
    CHECK_INT(e->shape[1], 10);
    CHECK_NEAR(e->affine[3], 100, 0);
  }
  lm_tensor_release(out[0]);
  lm_params_free(r);
  lm_params_free(p);
  /* centre 1, size 6: start max(-2, 0) = 0, end 6 */
  p = params();
  set_nums(p, "roi_center", 1, 1.0);
  set_nums(p, "roi_size", 1, 6.0);
  CHECK_INT(callv("SpatialCrop", &in, 1, p, out, 1, NULL), LM_OK);
  double w2[] = {1, 2, 3, 4, 5, 6};
  check_row(out[0], w2, 6);
  lm_tensor_release(out[0]);
  lm_params_free(p);
  /* start/end: -3..4 -> 0..4 */
  p = params();
  set_nums(p, "roi_start", 1, -3.0);
  set_nums(p, "roi_end", 1, 4.0);
  CHECK_INT(callv("SpatialCrop", &in, 1, p, out, 1, NULL), LM_OK);
  double w3[] = {1, 2, 3, 4};
  check_row(out[0], w3, 4);
  lm_tensor_release(out[0]);
  /* Both forms at once: an error naming the options. */
  set_nums(p, "roi_size", 1, 2.0);
  CHECK_INT(callv("SpatialCrop", &in, 1, p, out, 1, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "roi_center");
  lm_params_free(p);
  lm_tensor_release(in);
}

static void test_center_crop(void)
{
  lm_tensor *in = line10(), *out[1];
  lm_params *p = params();
  set_nums(p, "roi_size", 1, 4.0); /* start 10//2 - 2 = 3 */
  CHECK_INT(callv("CenterCrop", &in, 1, p, out, 1, NULL), LM_OK);
  double w[] = {4, 5, 6, 7};
  check_row(out[0], w, 4);
  lm_tensor_release(out[0]);
  set_nums(p, "roi_size", 1, 30.0); /* larger than the axis: all of it */
  CHECK_INT(callv("CenterCrop", &in, 1, p, out, 1, NULL), LM_OK);
  CHECK(out[0] && lm_tensor_shape(out[0])[1] == 10);
  lm_tensor_release(out[0]);
  lm_params_free(p);
  lm_tensor_release(in);
}

static void test_spatial_pad(void)
{
  lm_tensor *in = line10(), *out[1];
  lm_params *p = params(), *r = NULL;
  /* 10 -> 13: w = 3, symmetric 1 before, 2 after (odd voxel at the end) */
  set_nums(p, "spatial_size", 1, 13.0);
  CHECK_INT(callv("SpatialPad", &in, 1, p, out, 1, &r), LM_OK);
  double w1[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0};
  check_row(out[0], w1, 13);
  CHECK_NEAR(resn(r, "box_start", 0), -1, 0);
  CHECK_NEAR(resn(r, "box_end", 0), 12, 0);
  if (out[0]) {
    CHECK_NEAR(lm_tensor_affine(out[0])[3], 98, 0);
    CHECK_STR(lm_tensor_trace_at(out[0], 0)->params,
              "box_start=-1;box_end=12;mode=constant");
  }
  lm_tensor_release(out[0]);
  lm_params_free(r);
  /* numpy.pad reflect / symmetric / edge, and method 'end', value */
  lm_params_set_string(p, "mode", "reflect");
  set_nums(p, "spatial_size", 1, 15.0); /* 2 before, 3 after */
  CHECK_INT(callv("SpatialPad", &in, 1, p, out, 1, NULL), LM_OK);
  double w2[] = {3, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 9, 8, 7};
  check_row(out[0], w2, 15);
  lm_tensor_release(out[0]);
  lm_params_set_string(p, "mode", "symmetric");
  CHECK_INT(callv("SpatialPad", &in, 1, p, out, 1, NULL), LM_OK);
  double w3[] = {2, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 9, 8};
  check_row(out[0], w3, 15);
  lm_tensor_release(out[0]);
  lm_params_set_string(p, "mode", "edge");
  lm_params_set_string(p, "method", "end");
  CHECK_INT(callv("SpatialPad", &in, 1, p, out, 1, NULL), LM_OK);
  double w4[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10, 10, 10};
  check_row(out[0], w4, 15);
  lm_tensor_release(out[0]);
  lm_params_set_string(p, "mode", "constant");
  lm_params_set_number(p, "value", -7);
  CHECK_INT(callv("SpatialPad", &in, 1, p, out, 1, NULL), LM_OK);
  double w5[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -7, -7, -7, -7, -7};
  check_row(out[0], w5, 15);
  lm_tensor_release(out[0]);
  /* Never crops; a bad mode is an error naming the option. */
  set_nums(p, "spatial_size", 1, 4.0);
  CHECK_INT(callv("SpatialPad", &in, 1, p, out, 1, NULL), LM_OK);
  CHECK(out[0] && lm_tensor_shape(out[0])[1] == 10);
  lm_tensor_release(out[0]);
  lm_params_set_string(p, "mode", "wrap");
  CHECK_INT(callv("SpatialPad", &in, 1, p, out, 1, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "mode");
  lm_params_free(p);
  lm_tensor_release(in);
}

static void test_divisible_pad(void)
{
  lm_tensor *in = line10(), *out[1];
  lm_params *p = params(), *r = NULL;
  set_nums(p, "k", 1, 4.0); /* 10 -> 12: 1 before, 1 after */
  CHECK_INT(callv("DivisiblePad", &in, 1, p, out, 1, &r), LM_OK);
  double w[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0};
  check_row(out[0], w, 12);
  CHECK_NEAR(resn(r, "box_start", 0), -1, 0);
  if (out[0]) CHECK_STR(lm_tensor_trace_at(out[0], 0)->op, "DivisiblePad");
  lm_tensor_release(out[0]);
  lm_params_free(r);
  set_nums(p, "k", 1, 16.0); /* 10 -> 16: 3 before, 3 after */
  CHECK_INT(callv("DivisiblePad", &in, 1, p, out, 1, &r), LM_OK);
  CHECK(out[0] && lm_tensor_shape(out[0])[1] == 16);
  CHECK_NEAR(resn(r, "box_start", 0), -3, 0);
  lm_tensor_release(out[0]);
  lm_params_free(r);
  lm_params_free(p);
  lm_tensor_release(in);
}

/* A 3-D (C, X, Y, Z) crop and pad on an F-ordered (NIfTI-like) tensor:
 * logical indices, the affine translation, and two channels kept. */
static void test_3d_strided(void)
{
  int64_t shape[4] = {2, 4, 5, 6};
  int order[4] = {0, 3, 2, 1}; /* channel slowest, X fastest */
  lm_tensor *in = NULL, *out[1];
  CHECK_INT(lm_tensor_new_ordered(E, LM_F32, 4, shape, order, LM_CPU, &in), LM_OK);
  int64_t idx[4];
  for (idx[0] = 0; idx[0] < 2; idx[0]++)
    for (idx[1] = 0; idx[1] < 4; idx[1]++)
      for (idx[2] = 0; idx[2] < 5; idx[2]++)
        for (idx[3] = 0; idx[3] < 6; idx[3]++)
          lm_tensor_set(in, idx, (double)(idx[0] * 1000 + idx[1] * 100 + idx[2] * 10 + idx[3]));
  lm_tensor_set_layout(in, "CXYZ");
  double aff[16] = {0, 0, 3, 10, -2, 0, 0, 20, 0, 1.5, 0, 30, 0, 0, 0, 1};
  lm_tensor_set_affine(in, aff);
  lm_params *p = params();
  set_nums(p, "roi_start", 3, 1.0, -1.0, 2.0);
  set_nums(p, "roi_end", 3, 3.0, 9.0, 5.0);
  CHECK_INT(callv("SpatialCrop", &in, 1, p, out, 1, NULL), LM_OK);
  lm_tensor *c = out[0];
  CHECK(c != NULL);
  if (c) {
    CHECK_INT(lm_tensor_shape(c)[1], 2);
    CHECK_INT(lm_tensor_shape(c)[2], 5);
    CHECK_INT(lm_tensor_shape(c)[3], 3);
    int64_t o[4] = {1, 1, 4, 2};
    CHECK_NEAR(lm_tensor_get(c, o), 1000 + 200 + 40 + 4, 0);
    /* translation + A . (1, 0, 2) */
    CHECK_NEAR(lm_tensor_affine(c)[3], 10 + 6, 1e-12);
    CHECK_NEAR(lm_tensor_affine(c)[7], 20 - 2, 1e-12);
    CHECK_NEAR(lm_tensor_affine(c)[11], 30, 1e-12);
  }
  lm_params_free(p);
  p = params();
  set_nums(p, "spatial_size", 3, 5.0, 5.0, 9.0);
  lm_params_set_string(p, "mode", "edge");
  CHECK_INT(callv("SpatialPad", &c, 1, p, out, 1, NULL), LM_OK);
  if (out[0]) {
    CHECK_INT(lm_tensor_trace_length(out[0]), 2);
    CHECK_INT(lm_tensor_shape(out[0])[1], 5);
    int64_t o[4] = {0, 0, 0, 8}; /* x pad 1 before, z pad 3 before */
    CHECK_NEAR(lm_tensor_get(out[0], o), 100 + 0 + 4, 0);
  }
  lm_tensor_release(out[0]);
  lm_tensor_release(c);
  lm_params_free(p);
  lm_tensor_release(in);
}

int main(void)
{
  engine_start();
  RUN(test_spatial_crop);
  RUN(test_center_crop);
  RUN(test_spatial_pad);
  RUN(test_divisible_pad);
  RUN(test_3d_strided);
  lm_engine_release(E);
  TAP_DONE();
}
