/* NormalizeIntensity: MONAI z-score (whole, nonzero, channel-wise, given
 * subtrahend/divisor, zero std), nnU-Net ZScore with a mask, nnU-Net CT. */
#include "test_crop_util.h"

static lm_tensor *norm(lm_tensor **in, int nin, lm_params *p, lm_params **r)
{
  lm_tensor *out[1];
  int st = callv("NormalizeIntensity", in, nin, p, out, 1, r);
  CHECK_INT(st, LM_OK);
  return st < 0 ? NULL : out[0];
}

static void test_zscore(void)
{
  int64_t s[2] = {1, 4};
  double v[4] = {1, 2, 3, 4};
  lm_tensor *in = mk(LM_I16, 2, s, v);
  lm_params *r = NULL;
  lm_tensor *y = norm(&in, 1, NULL, &r);
  /* mean 2.5, population std sqrt(1.25) */
  double sd = sqrt(1.25);
  for (int i = 0; y && i < 4; i++) CHECK_NEAR(at(y, i), (v[i] - 2.5) / sd, 2e-7);
  if (y) CHECK_INT(lm_tensor_dtype(y), LM_F32);
  CHECK_NEAR(resn(r, "subtrahend", 0), 2.5, 0);
  CHECK_NEAR(resn(r, "divisor", 0), (float)sd, 0);
  lm_tensor_release(y);
  lm_params_free(r);
  lm_tensor_release(in);
  /* nonzero: statistics of {1, 2, 3}, the zero stays */
  double w[4] = {0, 1, 2, 3};
  in = mk(LM_F32, 2, s, w);
  lm_params *p = params();
  lm_params_set_bool(p, "nonzero", true);
  y = norm(&in, 1, p, NULL);
  double sd2 = sqrt(2.0 / 3.0);
  if (y) {
    CHECK_NEAR(at(y, 0), 0, 0);
    CHECK_NEAR(at(y, 1), -1 / sd2, 2e-7);
    CHECK_NEAR(at(y, 3), 1 / sd2, 2e-7);
  }
  lm_tensor_release(y);
  lm_params_free(p);
  lm_tensor_release(in);
  /* constant input: std 0 -> divisor 1 */
  double c[4] = {5, 5, 5, 5};
  in = mk(LM_F32, 2, s, c);
  y = norm(&in, 1, NULL, NULL);
  for (int i = 0; y && i < 4; i++) CHECK_NEAR(at(y, i), 0, 0);
  lm_tensor_release(y);
  lm_tensor_release(in);
}

static void test_channel_wise(void)
{
  int64_t s[2] = {2, 3};
  double v[6] = {1, 2, 3, 10, 20, 30};
  lm_tensor *in = mk(LM_F64, 2, s, v);
  lm_params *p = params(), *r = NULL;
  lm_params_set_bool(p, "channel_wise", true);
  lm_tensor *y = norm(&in, 1, p, &r);
  double sd0 = sqrt(2.0 / 3.0), sd1 = sqrt(200.0 / 3.0);
  if (y) {
    CHECK_NEAR(at(y, 0), -1 / sd0, 2e-7);
    CHECK_NEAR(at(y, 5), 10 / sd1, 2e-7);
  }
  CHECK_NEAR(resn(r, "subtrahend", 1), 20, 0);
  lm_tensor_release(y);
  lm_params_free(r);
  /* given subtrahend and divisor per channel */
  set_nums(p, "subtrahend", 2, 1.0, 10.0);
  set_nums(p, "divisor", 2, 2.0, 0.0); /* 0 -> 1 */
  y = norm(&in, 1, p, NULL);
  if (y) {
    CHECK_NEAR(at(y, 2), 1, 0);
    CHECK_NEAR(at(y, 5), 20, 0);
  }
  lm_tensor_release(y);
  /* three values for two channels: an error naming the option */
  set_nums(p, "divisor", 3, 1.0, 2.0, 3.0);
  lm_tensor *out[1];
  CHECK_INT(callv("NormalizeIntensity", &in, 1, p, out, 1, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "divisor");
  lm_params_free(p);
  lm_tensor_release(in);
}

static void test_nnunet(void)
{
  int64_t s[2] = {1, 4}, ms[1] = {4};
  double v[4] = {0, 2, 4, 9}, m[4] = {-1, 0, 0, 1};
  lm_tensor *in = mk(LM_I16, 2, s, v), *mask = mk(LM_I8, 1, ms, m);
  lm_tensor *both[2] = {in, mask};
  lm_params *p = params();
  lm_params_set_string(p, "scheme", "nnunet_zscore");
  /* use_mask: statistics of {2, 4, 9}, voxel 0 (seg -1) unchanged */
  lm_tensor *y = norm(both, 2, p, NULL);
  double mean = 5, sd = sqrt((9.0 + 1 + 16) / 3);
  if (y) {
    CHECK_NEAR(at(y, 0), 0, 0);
    CHECK_NEAR(at(y, 1), (2 - mean) / sd, 2e-7);
    CHECK_NEAR(at(y, 3), (9 - mean) / sd, 2e-7);
  }
  lm_tensor_release(y);
  /* CT: clip to [1, 5], then (x - 3) / 2 */
  lm_params_set_string(p, "scheme", "ct");
  set_nums(p, "clip_min", 1, 1.0);
  set_nums(p, "clip_max", 1, 5.0);
  set_nums(p, "mean", 1, 3.0);
  set_nums(p, "std", 1, 2.0);
  y = norm(&in, 1, p, NULL);
  double want[4] = {-1, -0.5, 0.5, 1};
  for (int i = 0; y && i < 4; i++) CHECK_NEAR(at(y, i), want[i], 0);
  lm_tensor_release(y);
  /* CT without its statistics: an error naming the missing one */
  lm_params *q = params();
  lm_params_set_string(q, "scheme", "ct");
  set_nums(q, "clip_min", 1, 1.0);
  lm_tensor *out[1];
  CHECK_INT(callv("NormalizeIntensity", &in, 1, q, out, 1, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "clip_max");
  lm_params_free(q);
  lm_params_free(p);
  lm_tensor_release(mask);
  lm_tensor_release(in);
}

int main(void)
{
  engine_start();
  RUN(test_zscore);
  RUN(test_channel_wise);
  RUN(test_nnunet);
  lm_engine_release(E);
  TAP_DONE();
}
