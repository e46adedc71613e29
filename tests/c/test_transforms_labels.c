/* Argmax, Softmax, Sigmoid and Threshold: ties, NaN, dtypes, strides. */
#include "test_transforms_util.h"

static lm_tensor *argmax(lm_tensor *in, int axis, bool keepdim,
                         const char *dtype, int *st)
{
  lm_params *p = params();
  lm_params_set_int(p, "axis", axis);
  lm_params_set_bool(p, "keepdim", keepdim);
  if (dtype) lm_params_set_string(p, "dtype", dtype);
  lm_tensor *out = call("Argmax", in, p, st);
  lm_params_free(p);
  return out;
}

/* numpy's documented tie example: argmax([[1,3,3],[3,3,1]], axis=1) = [1,0]. */
static void test_argmax_ties(void)
{
  int64_t shape[2] = {2, 3};
  double v[] = {1, 3, 3, 3, 3, 1};
  lm_tensor *in = mk(LM_F32, 2, shape, v);
  lm_tensor *out = argmax(in, 1, false, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_ndim(out), 1);
    CHECK_INT(lm_tensor_shape(out)[0], 2);
    CHECK_INT(lm_tensor_dtype(out), LM_U8);
    CHECK_NEAR(at(out, 0), 1, 0);
    CHECK_NEAR(at(out, 1), 0, 0);
  }
  lm_tensor_release(out);
  /* axis -1 is the same axis. */
  out = argmax(in, -1, true, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_ndim(out), 2);
    CHECK_INT(lm_tensor_shape(out)[1], 1);
    CHECK_NEAR(at(out, 0), 1, 0);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

/* NaN is the maximum, the first NaN wins: argmax([1, nan, 3]) = 1. */
static void test_argmax_nan(void)
{
  int64_t shape[2] = {3, 4};  /* channels first, 4 positions */
  double v[] = {1, NAN, 1, NAN,
                NAN, 2, 5, NAN,
                3, NAN, 5, 0};
  lm_tensor *in = mk(LM_F32, 2, shape, v);
  lm_tensor *out = argmax(in, 0, false, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_NEAR(at(out, 0), 1, 0);  /* [1, nan, 3] */
    CHECK_NEAR(at(out, 1), 0, 0);  /* [nan, 2, nan] */
    CHECK_NEAR(at(out, 2), 1, 0);  /* [1, 5, 5]: tie, first */
    CHECK_NEAR(at(out, 3), 0, 0);  /* [nan, nan, 0] */
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static void test_argmax_every_dtype(void)
{
  int64_t shape[2] = {3, 2};
  double v[] = {1, 9, 7, 2, 7, 9};  /* maxima at 1 (tie 1,2) and 0 (tie 0,2) */
  for (int dt = 0; dt < LM_DTYPE_COUNT; dt++) {
    lm_tensor *in = mk((lm_dtype)dt, 2, shape, v);
    lm_tensor *out = argmax(in, 0, true, NULL, NULL);
    CHECK(out != NULL);
    if (out) {
      CHECK_NEAR(at(out, 0), 1, 0);
      CHECK_NEAR(at(out, 1), 0, 0);
    }
    lm_tensor_release(out);
    lm_tensor_release(in);
  }
  /* int64 values a double cannot tell apart. */
  int64_t n = 2;
  lm_tensor *in = NULL;
  CHECK_INT(lm_tensor_new(E, LM_I64, 1, &n, LM_CPU, &in), LM_OK);
  int64_t *q = lm_tensor_data(in);
  q[0] = ((int64_t)1 << 62) + 1;
  q[1] = ((int64_t)1 << 62) + 2;
  lm_tensor *out = argmax(in, 0, false, NULL, NULL);
  CHECK(out != NULL);
  if (out) CHECK_NEAR(lm_tensor_get(out, NULL), 1, 0);
  lm_tensor_release(out);
  lm_tensor_release(in);
}

/* A (C, X, Y, Z) score map stored i-fastest, and a channel-last view of it:
 * labels by logical index, layout and affine carried. */
static void test_argmax_volume_and_layouts(void)
{
  int64_t shape[4] = {4, 5, 6, 7}, n = 4 * 5 * 6 * 7;
  int order[4] = {0, 3, 2, 1};
  lm_tensor *in = NULL;
  CHECK_INT(lm_tensor_new_ordered(E, LM_F32, 4, shape, order, LM_CPU, &in), LM_OK);
  double aff[16] = {1.5, 0, 0, 3, 0, 1.5, 0, 4, 0, 0, 2, 5, 0, 0, 0, 1};
  lm_tensor_set_affine(in, aff);
  lm_tensor_set_layout(in, "CXYZ");
  int64_t idx[4];
  for (int64_t p = 0; p < n; p++) {
    unravel(4, shape, p, idx);
    /* Channel (i + 2j + 3k) % 4 gets the largest score. */
    int64_t win = (idx[1] + 2 * idx[2] + 3 * idx[3]) % 4;
    lm_tensor_set(in, idx, idx[0] == win ? 10.0 + (double)idx[0] : (double)idx[0]);
  }
  lm_tensor *out = argmax(in, 0, true, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_STR(lm_tensor_layout(out), "CXYZ");
    CHECK_INT(lm_tensor_shape(out)[0], 1);
    CHECK_NEAR(lm_tensor_affine(out)[0], 1.5, 0);
    CHECK_NEAR(lm_tensor_affine(out)[11], 5, 0);
    /* Memory order of the input kept: i fastest. */
    CHECK_INT(lm_tensor_strides(out)[1], 1);
    int bad = 0;
    for (int64_t p = 0; p < lm_tensor_numel(out); p++) {
      int64_t o[4];
      unravel(4, lm_tensor_shape(out), p, o);
      if (lm_tensor_get(out, o) != (double)((o[1] + 2 * o[2] + 3 * o[3]) % 4)) bad++;
    }
    CHECK_INT(bad, 0);
  }
  lm_tensor_release(out);
  /* Channel-last view (X, Y, Z, C), axis -1, keepdim false. */
  int perm[4] = {1, 2, 3, 0};
  lm_tensor *cl = NULL;
  CHECK_INT(lm_tensor_permute(in, perm, &cl), LM_OK);
  lm_tensor_set_layout(cl, "XYZC");
  out = argmax(cl, -1, false, "int16", NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_ndim(out), 3);
    CHECK_INT(lm_tensor_dtype(out), LM_I16);
    CHECK_STR(lm_tensor_layout(out), "XYZ");
    int bad = 0;
    for (int64_t p = 0; p < lm_tensor_numel(out); p++) {
      int64_t o[3];
      unravel(3, lm_tensor_shape(out), p, o);
      if (lm_tensor_get(out, o) != (double)((o[0] + 2 * o[1] + 3 * o[2]) % 4)) bad++;
    }
    CHECK_INT(bad, 0);
  }
  lm_tensor_release(out);
  lm_tensor_release(cl);
  lm_tensor_release(in);
}

static void test_argmax_label_dtype(void)
{
  int64_t shape[2] = {300, 2};
  lm_tensor *in = NULL;
  CHECK_INT(lm_tensor_zeros(E, LM_F32, 2, shape, LM_CPU, &in), LM_OK);
  int64_t i0[2] = {299, 0}, i1[2] = {256, 1};
  lm_tensor_set(in, i0, 1);
  lm_tensor_set(in, i1, 1);
  lm_tensor *out = argmax(in, 0, false, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_dtype(out), LM_I32);
    CHECK_NEAR(at(out, 0), 299, 0);
    CHECK_NEAR(at(out, 1), 256, 0);
  }
  lm_tensor_release(out);
  int st = 0;
  out = argmax(in, 0, false, "uint8", &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "dtype");
  out = argmax(in, 2, false, NULL, &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "axis");
  lm_tensor_release(in);
}

static void test_softmax(void)
{
  int64_t shape[2] = {3, 4};
  double v[] = {1, 1000, 0, NAN,
                2, 1001, 0, 1,
                3, 999, 0, 2};
  lm_tensor *in = mk(LM_F32, 2, shape, v);
  lm_tensor *out = call("Softmax", in, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_dtype(out), LM_F32);
    /* torch.softmax([1, 2, 3]) */
    CHECK_NEAR(at(out, 0), 0.09003057317038046, 1e-7);
    CHECK_NEAR(at(out, 4), 0.24472847105479767, 1e-7);
    CHECK_NEAR(at(out, 8), 0.6652409557748219, 1e-7);
    /* Large logits stay finite: softmax([1000, 1001, 999]). */
    CHECK_NEAR(at(out, 1), 0.24472847105479767, 1e-7);
    CHECK_NEAR(at(out, 5), 0.6652409557748219, 1e-7);
    CHECK_NEAR(at(out, 9), 0.09003057317038046, 1e-7);
    /* Equal logits: 1/3 each. */
    CHECK_NEAR(at(out, 2), 1.0 / 3, 1e-7);
    /* A NaN makes the whole position NaN. */
    CHECK(isnan(at(out, 3)) && isnan(at(out, 7)) && isnan(at(out, 11)));
  }
  lm_tensor_release(out);
  /* axis = 1 on the same data: rows sum to 1 (row 1 has no NaN). */
  lm_params *p = params();
  lm_params_set_int(p, "axis", -1);
  lm_tensor *in2 = NULL;
  int perm[2] = {1, 0};
  CHECK_INT(lm_tensor_permute(in, perm, &in2), LM_OK); /* (4, 3) view */
  out = call("Softmax", in2, p, NULL);
  CHECK(out != NULL);
  if (out) {
    double s = 0;
    for (int c = 0; c < 3; c++) s += at(out, 3 + c);  /* logits 1000,1001,999 */
    CHECK_NEAR(s, 1.0, 1e-6);
    CHECK_NEAR(at(out, 0), 0.09003057317038046, 1e-7);
  }
  lm_tensor_release(out);
  lm_params_free(p);
  lm_tensor_release(in2);
  lm_tensor_release(in);
  /* Every dtype: softmax([0, 1]) along axis 0. */
  int64_t sh2[2] = {2, 1};
  double w[] = {0, 1};
  for (int dt = 0; dt < LM_DTYPE_COUNT; dt++) {
    lm_tensor *t = mk((lm_dtype)dt, 2, sh2, w);
    out = call("Softmax", t, NULL, NULL);
    CHECK(out != NULL);
    if (out) CHECK_NEAR(at(out, 1), 0.7310585786300049, 1e-7);
    lm_tensor_release(out);
    lm_tensor_release(t);
  }
}

static void test_sigmoid(void)
{
  double v[] = {0, 2, -2, -100, 100, NAN};
  lm_tensor *in = mk1(LM_F64, 6, v);
  lm_tensor *out = call("Sigmoid", in, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_dtype(out), LM_F32);
    CHECK_NEAR(at(out, 0), 0.5, 0);
    CHECK_NEAR(at(out, 1), 0.8807970779778823, 1e-7);
    CHECK_NEAR(at(out, 2), 0.11920292202211755, 1e-7);
    CHECK(at(out, 3) >= 0 && at(out, 3) < 1e-40);
    CHECK_NEAR(at(out, 4), 1.0, 0);
    CHECK(isnan(at(out, 5)));
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
  double w[] = {0, 2};
  for (int dt = 0; dt < LM_DTYPE_COUNT; dt++) {
    lm_tensor *t = mk1((lm_dtype)dt, 2, w);
    out = call("Sigmoid", t, NULL, NULL);
    CHECK(out != NULL);
    if (out) CHECK_NEAR(at(out, 1), 0.8807970779778823, 1e-7);
    lm_tensor_release(out);
    lm_tensor_release(t);
  }
}

static void test_threshold(void)
{
  double v[] = {0.4, 0.5, 0.6, NAN, -1};
  lm_tensor *in = mk1(LM_F32, 5, v);
  lm_tensor *out = call("Threshold", in, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_dtype(out), LM_U8);
    double want[] = {0, 1, 1, 0, 0};  /* >= 0.5 (MONAI AsDiscrete) */
    for (int i = 0; i < 5; i++) CHECK_NEAR(at(out, i), want[i], 0);
  }
  lm_tensor_release(out);
  lm_params *p = params();
  lm_params_set_bool(p, "strict", true);
  lm_params_set_string(p, "dtype", "float32");
  out = call("Threshold", in, p, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_dtype(out), LM_F32);
    double want[] = {0, 0, 1, 0, 0};  /* > 0.5 (nnU-Net regions) */
    for (int i = 0; i < 5; i++) CHECK_NEAR(at(out, i), want[i], 0);
  }
  lm_tensor_release(out);
  lm_params_free(p);
  lm_tensor_release(in);
  /* 0.1 is not a float32: x = 0.1f >= 0.1 in float32 (torch), though
   * 0.1f > 0.1 in double; both give 1. float64 x = 0.1 >= 0.1. */
  double t01[] = {0.1};
  p = params();
  lm_params_set_number(p, "threshold", 0.1);
  for (int dt = LM_F32; dt <= LM_F64; dt++) {
    lm_tensor *t = mk1((lm_dtype)dt, 1, t01);
    out = call("Threshold", t, p, NULL);
    CHECK(out != NULL);
    if (out) CHECK_NEAR(at(out, 0), 1, 0);
    lm_tensor_release(out);
    lm_tensor_release(t);
  }
  lm_params_free(p);
  /* Every input dtype, integer threshold on a strided view. */
  int64_t shape[2] = {2, 3};
  double w[] = {1, 2, 3, 4, 5, 6};
  p = params();
  lm_params_set_number(p, "threshold", 3);
  for (int dt = 0; dt < LM_DTYPE_COUNT; dt++) {
    lm_tensor *t = mk((lm_dtype)dt, 2, shape, w), *tv = NULL;
    int perm[2] = {1, 0};
    lm_tensor_permute(t, perm, &tv);  /* (3, 2): 1 4 / 2 5 / 3 6 */
    out = call("Threshold", tv, p, NULL);
    CHECK(out != NULL);
    if (out) {
      double want[] = {0, 1, 0, 1, 1, 1};
      for (int i = 0; i < 6; i++) CHECK_NEAR(at(out, i), want[i], 0);
    }
    lm_tensor_release(out);
    lm_tensor_release(tv);
    lm_tensor_release(t);
  }
  lm_params_free(p);
}

int main(void)
{
  engine_start();
  RUN(test_argmax_ties);
  RUN(test_argmax_nan);
  RUN(test_argmax_every_dtype);
  RUN(test_argmax_volume_and_layouts);
  RUN(test_argmax_label_dtype);
  RUN(test_softmax);
  RUN(test_sigmoid);
  RUN(test_threshold);
  lm_engine_release(E);
  TAP_DONE();
}
