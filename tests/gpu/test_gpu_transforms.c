/* The CUDA plugin's kernels against the CPU ones on the phantom, and the
 * ToDevice / ToHost round trip.  Exits 77 (skipped) without a CUDA device. */
#include <stdio.h>

#include "gpu_engine.h"

/* The phantom as (1, X, Y, Z) float32 on the host. */
static lm_tensor *phantom_f32(lm_tensor **label)
{
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  lm_params *p = params();
  double shape[3] = {96, 80, 64};
  lm_params_set_numbers(p, "shape", shape, 3);
  if (lm_call(E, "Phantom", NULL, 0, p, out, &nout, NULL) < 0) {
    lm_params_free(p);
    return NULL;
  }
  lm_params_free(p);
  *label = out[1];
  lm_tensor *c = call("ConvertToChannelsFirst", out[0], NULL, NULL);
  lm_params *q = params();
  lm_params_set_string(q, "dtype", "float32");
  lm_tensor *f = call("Cast", c, q, NULL);
  lm_params_free(q);
  lm_tensor_release(c);
  lm_tensor_release(out[0]);
  return f;
}

static lm_tensor *sir(lm_tensor *in, bool clip, const char *dtype)
{
  lm_params *p = params();
  lm_params_set_number(p, "a_min", -57);
  lm_params_set_number(p, "a_max", 164);
  lm_params_set_number(p, "b_min", 0);
  lm_params_set_number(p, "b_max", 1);
  lm_params_set_bool(p, "clip", clip);
  if (dtype) lm_params_set_string(p, "dtype", dtype);
  lm_tensor *out = call("ScaleIntensityRange", in, p, NULL);
  lm_params_free(p);
  return out;
}

/* Elements (by logical index) that differ by more than `ulps` float32 ulps. */
static int64_t count_diff(const lm_tensor *a, const lm_tensor *b, int ulps)
{
  int64_t bad = 0;
  for (int64_t p = 0; p < lm_tensor_numel(a); p++) {
    float x = (float)at(a, p), y = (float)at(b, p);
    if (x == y || (isnan(x) && isnan(y))) continue;
    float tol = fabsf(nextafterf(x, INFINITY) - x) * (float)ulps;
    if (!(fabsf(x - y) <= tol)) bad++;
  }
  return bad;
}

static void test_round_trip(void)
{
  lm_tensor *label = NULL, *img = phantom_f32(&label);
  CHECK(img != NULL);
  if (!img) return;
  lm_tensor *dev = gpu_to(label, "cuda");
  CHECK(dev != NULL);
  if (dev) {
    CHECK_INT(lm_tensor_device(dev).type, LM_DEVICE_CUDA);
    CHECK_STR(lm_tensor_layout(dev), "XYZ");
    lm_tensor *same = gpu_to(dev, "cuda:0");
    CHECK(same == dev);
    lm_tensor_release(same);
    lm_tensor *back = call("ToHost", dev, NULL, NULL);
    CHECK(back != NULL);
    if (back) {
      CHECK_INT(lm_tensor_device(back).type, LM_DEVICE_CPU);
      CHECK(memcmp(lm_tensor_data(back), lm_tensor_data(label),
                   lm_tensor_nbytes(label)) == 0);
      for (int i = 0; i < 16; i++)
        CHECK_NEAR(lm_tensor_affine(back)[i], lm_tensor_affine(label)[i], 0);
      CHECK_INT(lm_tensor_strides(back)[0], 1); /* i fastest kept */
    }
    lm_tensor_release(back);
  }
  lm_tensor_release(dev);
  lm_tensor_release(label);
  lm_tensor_release(img);
}

static void test_sir_gpu_vs_cpu(void)
{
  lm_tensor *label = NULL, *img = phantom_f32(&label);
  CHECK(img != NULL);
  if (!img) return;
  lm_tensor *dev = gpu_to(img, "cuda");
  CHECK(dev != NULL);
  bool clips[2] = {true, false};
  for (int c = 0; dev && c < 2; c++) {
    lm_tensor *cpu = sir(img, clips[c], NULL);
    lm_tensor *gpu = sir(dev, clips[c], NULL);
    CHECK(cpu && gpu);
    if (cpu && gpu) {
      CHECK_INT(lm_tensor_device(gpu).type, LM_DEVICE_CUDA);
      lm_tensor *host = call("ToHost", gpu, NULL, NULL);
      CHECK(host != NULL);
      if (host) CHECK_INT(count_diff(cpu, host, 1), 0);
      lm_tensor_release(host);
    }
    lm_tensor_release(cpu);
    lm_tensor_release(gpu);
  }
  /* A strided device view (axes reversed) and an int16 output. */
  int perm[4] = {0, 3, 2, 1};
  lm_tensor *pv = NULL, *hv = NULL;
  if (dev && lm_tensor_permute(dev, perm, &pv) == LM_OK &&
      lm_tensor_permute(img, perm, &hv) == LM_OK) {
    lm_tensor *cpu = sir(hv, true, "int16"), *gpu = sir(pv, true, "int16");
    lm_tensor *host = gpu ? call("ToHost", gpu, NULL, NULL) : NULL;
    CHECK(cpu && host);
    if (cpu && host) CHECK_INT(count_diff(cpu, host, 0), 0);
    lm_tensor_release(cpu);
    lm_tensor_release(gpu);
    lm_tensor_release(host);
  }
  lm_tensor_release(pv);
  lm_tensor_release(hv);
  lm_tensor_release(dev);
  lm_tensor_release(label);
  lm_tensor_release(img);
}

/* Scores with ties and NaN from the phantom's labels; GPU == CPU exactly. */
static void test_argmax_gpu_vs_cpu(void)
{
  lm_tensor *label = NULL, *img = phantom_f32(&label);
  CHECK(img != NULL);
  if (!img) return;
  const int64_t *sh = lm_tensor_shape(label);
  int64_t shape[4] = {5, sh[0], sh[1], sh[2]};
  int order[4] = {0, 3, 2, 1};
  lm_tensor *scores = NULL;
  CHECK_INT(lm_tensor_new_ordered(E, LM_F32, 4, shape, order, LM_CPU, &scores), LM_OK);
  float *s = lm_tensor_data(scores);
  const uint8_t *l = lm_tensor_data(label);
  int64_t n = lm_tensor_numel(label);
  for (int64_t i = 0; i < n; i++)
    for (int c = 0; c < 5; c++) {
      float v = (float)((l[i] + c * 7) % 5);   /* ties between channels */
      if (i % 97 == 0 && c == 3) v = NAN;       /* NaN wins */
      s[c * n + i] = v;
    }
  lm_tensor *dev = gpu_to(scores, "cuda");
  CHECK(dev != NULL);
  for (int keep = 0; dev && keep < 2; keep++) {
    lm_params *p = params();
    lm_params_set_bool(p, "keepdim", keep);
    lm_tensor *cpu = call("Argmax", scores, p, NULL);
    lm_tensor *gpu = call("Argmax", dev, p, NULL);
    lm_tensor *host = gpu ? call("ToHost", gpu, NULL, NULL) : NULL;
    CHECK(cpu && host);
    if (cpu && host) {
      CHECK_INT(lm_tensor_ndim(host), lm_tensor_ndim(cpu));
      CHECK_INT(lm_tensor_dtype(host), LM_U8);
      CHECK_INT(count_diff(cpu, host, 0), 0);
      CHECK_NEAR(at(host, 0), 3, 0);  /* voxel 0 has the NaN */
    }
    lm_tensor_release(cpu);
    lm_tensor_release(gpu);
    lm_tensor_release(host);
    lm_params_free(p);
  }
  lm_tensor_release(dev);
  lm_tensor_release(scores);
  lm_tensor_release(label);
  lm_tensor_release(img);
}

int main(void)
{
  gpu_engine_start();
  RUN(test_round_trip);
  RUN(test_sir_gpu_vs_cpu);
  RUN(test_argmax_gpu_vs_cpu);
  lm_engine_release(E);
  TAP_DONE();
}
