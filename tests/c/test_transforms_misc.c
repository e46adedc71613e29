/* ConvertToChannelsFirst, Cast, ToDevice/ToHost without a GPU, Phantom. */
#include "test_transforms_util.h"

static lm_tensor *iota(lm_dtype dt, int ndim, const int64_t *shape)
{
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = (double)i;
  lm_tensor *t = mk(dt, ndim, shape, v);
  free(v);
  return t;
}

static void test_ccf_3d(void)
{
  int64_t shape[3] = {2, 3, 4};
  lm_tensor *in = iota(LM_I16, 3, shape);
  lm_tensor_set_layout(in, "XYZ");
  double aff[16] = {-2, 0, 0, 1, 0, 2, 0, 2, 0, 0, 3, 3, 0, 0, 0, 1};
  lm_tensor_set_affine(in, aff);
  lm_tensor *out = call("ConvertToChannelsFirst", in, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_INT(lm_tensor_ndim(out), 4);
    CHECK_INT(lm_tensor_shape(out)[0], 1);
    CHECK_INT(lm_tensor_shape(out)[3], 4);
    CHECK_STR(lm_tensor_layout(out), "CXYZ");
    CHECK(lm_tensor_data(out) == lm_tensor_data(in)); /* a view */
    CHECK_NEAR(lm_tensor_affine(out)[0], -2, 0);
    for (int p = 0; p < 24; p++) CHECK_NEAR(at(out, p), p, 0);
  }
  /* Already channel-first: an error naming the layout... */
  int st = 0;
  lm_tensor *again = call("ConvertToChannelsFirst", out, NULL, &st);
  CHECK(again == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "CXYZ");
  CHECK_CONTAINS(lm_errmsg(E), "channel_dim");
  /* ... unless channel_dim says where the channels are. */
  lm_params *p = params();
  lm_params_set_int(p, "channel_dim", 0);
  again = call("ConvertToChannelsFirst", out, p, NULL);
  CHECK(again != NULL);
  if (again) CHECK_STR(lm_tensor_layout(again), "CXYZ");
  lm_tensor_release(again);
  lm_params_free(p);
  lm_tensor_release(out);
  /* channel_dim = 1 moves Y first, the others keep their order. */
  p = params();
  lm_params_set_int(p, "channel_dim", 1);
  out = call("ConvertToChannelsFirst", in, p, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_STR(lm_tensor_layout(out), "CXZ");
    CHECK_INT(lm_tensor_shape(out)[0], 3);
    CHECK_INT(lm_tensor_shape(out)[1], 2);
    int64_t o[3] = {2, 1, 3}, i[3] = {1, 2, 3};
    CHECK_NEAR(lm_tensor_get(out, o), lm_tensor_get(in, i), 0);
  }
  lm_tensor_release(out);
  lm_params_set_int(p, "channel_dim", 3);
  out = call("ConvertToChannelsFirst", in, p, &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "channel_dim");
  lm_params_free(p);
  lm_tensor_release(in);
}

/* 4-D: moveaxis(-1, 0), no transpose of the spatial axes. */
static void test_ccf_4d(void)
{
  int64_t shape[4] = {2, 3, 4, 5};
  lm_tensor *in = iota(LM_F32, 4, shape);
  lm_tensor_set_layout(in, "XYZT");
  lm_tensor *out = call("ConvertToChannelsFirst", in, NULL, NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_STR(lm_tensor_layout(out), "CXYZ");
    int64_t want[4] = {5, 2, 3, 4};
    for (int d = 0; d < 4; d++) CHECK_INT(lm_tensor_shape(out)[d], want[d]);
    int bad = 0;
    for (int64_t p = 0; p < 120; p++) {
      int64_t o[4], i[4];
      unravel(4, lm_tensor_shape(out), p, o);
      i[0] = o[1]; i[1] = o[2]; i[2] = o[3]; i[3] = o[0];
      if (lm_tensor_get(out, o) != lm_tensor_get(in, i)) bad++;
    }
    CHECK_INT(bad, 0);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
  /* 5-D without channel_dim is ambiguous. */
  int64_t s5[5] = {1, 1, 1, 1, 2};
  in = iota(LM_U8, 5, s5);
  int st = 0;
  out = call("ConvertToChannelsFirst", in, NULL, &st);
  CHECK(out == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "channel_dim");
  lm_tensor_release(in);
}

static lm_tensor *cast(lm_tensor *in, const char *dtype, int *st)
{
  lm_params *p = params();
  if (dtype) lm_params_set_string(p, "dtype", dtype);
  lm_tensor *out = call("Cast", in, p, st);
  lm_params_free(p);
  return out;
}

static void test_cast_rules(void)
{
  double v[] = {-1, 0.5, 2.7, 300, NAN, INFINITY, -2.7, -INFINITY, 254.99};
  lm_tensor *in = mk1(LM_F32, 9, v);
  lm_tensor *out = cast(in, "uint8", NULL);
  CHECK(out != NULL);
  if (out) {
    double want[] = {0, 0, 2, 255, 0, 255, 0, 0, 254};
    for (int i = 0; i < 9; i++) CHECK_NEAR(at(out, i), want[i], 0);
  }
  lm_tensor_release(out);
  out = cast(in, "int16", NULL);
  CHECK(out != NULL);
  if (out) {
    double want[] = {-1, 0, 2, 300, 0, 32767, -2, -32768, 254};
    for (int i = 0; i < 9; i++) CHECK_NEAR(at(out, i), want[i], 0);
  }
  lm_tensor_release(out);
  out = cast(in, "int64", NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_NEAR(at(out, 5), 9223372036854775807.0, 0);
    CHECK_NEAR(at(out, 6), -2, 0);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
  /* Integers saturate. */
  double w[] = {-300, 300, 70000, -5};
  in = mk1(LM_I32, 4, w);
  out = cast(in, "u8", NULL);
  CHECK(out != NULL);
  if (out) {
    double want[] = {0, 255, 255, 0};
    for (int i = 0; i < 4; i++) CHECK_NEAR(at(out, i), want[i], 0);
  }
  lm_tensor_release(out);
  out = cast(in, "uint16", NULL);
  CHECK(out != NULL);
  if (out) CHECK_NEAR(at(out, 2), 65535, 0);
  lm_tensor_release(out);
  lm_tensor_release(in);
  /* Rounding to float16 and bfloat16 (nearest even), as numpy. */
  double h[] = {1.0 / 3.0, 3.14159, 65520, 1e-8};
  in = mk1(LM_F32, 4, h);
  out = cast(in, "float16", NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_NEAR(at(out, 0), 0.333251953125, 0);
    CHECK_NEAR(at(out, 1), 3.140625, 0);
    CHECK(isinf(at(out, 2)));   /* above float16's max: inf, as numpy */
    CHECK_NEAR(at(out, 3), 0, 0);
  }
  lm_tensor_release(out);
  out = cast(in, "bfloat16", NULL);
  CHECK(out != NULL);
  if (out) {
    CHECK_NEAR(at(out, 0), 0.333984375, 0);
    CHECK_NEAR(at(out, 1), 3.140625, 0);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
  /* int64 stays exact through an integer path. */
  int64_t n = 1;
  CHECK_INT(lm_tensor_new(E, LM_I64, 1, &n, LM_CPU, &in), LM_OK);
  *(int64_t *)lm_tensor_data(in) = ((int64_t)1 << 60) + 1;
  out = cast(in, "uint32", NULL);
  CHECK(out != NULL);
  if (out) CHECK_INT(*(uint32_t *)lm_tensor_data(out), UINT32_MAX);
  lm_tensor_release(out);
  lm_tensor_release(in);
}

/* Every pair of dtypes carries small integers exactly, through strides. */
static void test_cast_every_pair(void)
{
  int64_t shape[2] = {3, 2};
  double v[] = {0, 1, 7, 100, 3, 42};
  for (int a = 0; a < LM_DTYPE_COUNT; a++) {
    lm_tensor *in = mk((lm_dtype)a, 2, shape, v), *tv = NULL;
    int perm[2] = {1, 0};
    lm_tensor_permute(in, perm, &tv);
    for (int b = 0; b < LM_DTYPE_COUNT; b++) {
      lm_tensor *out = cast(tv, lm_dtype_name((lm_dtype)b), NULL);
      CHECK(out != NULL);
      if (!out) continue;
      CHECK_INT(lm_tensor_dtype(out), b);
      for (int p = 0; p < 6; p++) CHECK_NEAR(at(out, p), at(tv, p), 0);
      if (a == b) CHECK(out == tv);  /* same dtype: the input itself */
      lm_tensor_release(out);
    }
    lm_tensor_release(tv);
    lm_tensor_release(in);
  }
}

static void test_cast_errors(void)
{
  double v[] = {1};
  lm_tensor *in = mk1(LM_F32, 1, v);
  int st = 0;
  lm_tensor *out = cast(in, NULL, &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "dtype");
  out = cast(in, "complex64", &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "complex64");
  lm_tensor_release(in);
}

static void test_to_device_without_gpu(void)
{
  double v[] = {1, 2};
  lm_tensor *in = mk1(LM_F32, 2, v);
  int st = 0;
  lm_tensor *out = call("ToDevice", in, NULL, &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EDEVICE);
  CHECK_CONTAINS(lm_errmsg(E), "ToDevice");
  CHECK_CONTAINS(lm_errmsg(E), "no CUDA device (");
  /* To the device it is on: the same tensor. */
  lm_params *p = params();
  lm_params_set_string(p, "device", "cpu");
  out = call("ToDevice", in, p, NULL);
  CHECK(out == in);
  lm_tensor_release(out);
  out = call("ToHost", in, NULL, NULL);
  CHECK(out == in);
  lm_tensor_release(out);
  lm_params_set_string(p, "device", "gpu0");
  out = call("ToDevice", in, p, &st);
  CHECK(out == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "device");
  CHECK_CONTAINS(lm_errmsg(E), "gpu0");
  lm_params_free(p);
  lm_tensor_release(in);
}

static int phantom(const lm_params *p, lm_tensor **img, lm_tensor **label)
{
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  int st = lm_call(E, "Phantom", NULL, 0, p, out, &nout, NULL);
  if (st < 0) return st;
  if (nout != 2) return LM_EINTERNAL;
  *img = out[0];
  *label = out[1];
  return st;
}

/* Voxel index of world point (x, y, z) on the phantom's grid. */
static void voxel_of(const lm_tensor *t, double x, double y, double z,
                     int64_t *idx)
{
  const double *a = lm_tensor_affine(t);
  idx[0] = (int64_t)rint((x - a[3]) / a[0]);
  idx[1] = (int64_t)rint((y - a[7]) / a[5]);
  idx[2] = (int64_t)rint((z - a[11]) / a[10]);
}

static void test_phantom_geometry(void)
{
  lm_tensor *img = NULL, *label = NULL;
  CHECK_INT(phantom(NULL, &img, &label), LM_OK);
  if (!img) return;
  CHECK_INT(lm_tensor_dtype(img), LM_I16);
  CHECK_INT(lm_tensor_dtype(label), LM_U8);
  int64_t want[3] = {192, 192, 128};
  for (int d = 0; d < 3; d++) CHECK_INT(lm_tensor_shape(img)[d], want[d]);
  CHECK_INT(lm_tensor_strides(img)[0], 1);
  CHECK_INT(lm_tensor_strides(img)[1], 192);
  CHECK_INT(lm_tensor_strides(img)[2], 192 * 192);
  CHECK_STR(lm_tensor_layout(img), "XYZ");
  CHECK_STR(lm_tensor_layout(label), "XYZ");
  const double *a = lm_tensor_affine(img);
  CHECK_NEAR(a[0], 2, 0);
  CHECK_NEAR(a[5], 2, 0);
  CHECK_NEAR(a[10], 2, 0);
  CHECK_NEAR(a[3], -191, 0);  /* centre voxel 95.5 at x = 0 */
  CHECK_NEAR(a[11], -127, 0);
  char code[4];
  CHECK_STR(lm_tensor_orientation(img, code), "RAS");
  /* Organs where the table puts them. */
  struct { double x, y, z; int label; } pts[] = {
    {70, 10, 45, 5}, {-85, -35, 50, 1}, {60, -50, -15, 2}, {-60, -50, -5, 3},
    {-15, -30, -120, 52}, {0, -70, 1, 30}, {0, -70, 99, 33}, {0, 40, -115, 21},
    {75, -5, 120, 14}, {-190, -190, 0, 0}, {0, 90, 0, 0},
  };
  for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
    int64_t idx[3];
    voxel_of(label, pts[i].x, pts[i].y, pts[i].z, idx);
    CHECK_NEAR(lm_tensor_get(label, idx), pts[i].label, 0);
  }
  lm_tensor_release(img);
  lm_tensor_release(label);
}

/* noise = 0: every voxel has its tissue's HU; noise = 12: Gaussian with
 * that spread around it; equal seeds give equal volumes. */
static void test_phantom_values_and_seed(void)
{
  lm_params *p = params();
  double shape[3] = {96, 96, 64}, sp[3] = {4, 4, 4};
  lm_params_set_numbers(p, "shape", shape, 3);
  lm_params_set_numbers(p, "spacing", sp, 3);
  lm_params_set_number(p, "noise", 0);
  lm_tensor *img = NULL, *label = NULL;
  CHECK_INT(phantom(p, &img, &label), LM_OK);
  if (!img) { lm_params_free(p); return; }
  int64_t n = lm_tensor_numel(img);
  const int16_t *hu = lm_tensor_data(img);
  const uint8_t *lab = lm_tensor_data(label);
  int hu_of[256];
  for (int i = 0; i < 256; i++) hu_of[i] = 99999;
  int64_t count[256] = {0};
  int bad = 0, air = 0;
  for (int64_t i = 0; i < n; i++) {
    count[lab[i]]++;
    if (lab[i] == 0) { air += hu[i] == -1000; continue; }
    if (hu_of[lab[i]] == 99999) hu_of[lab[i]] = hu[i];
    else if (hu_of[lab[i]] != hu[i]) bad++;
  }
  CHECK_INT(bad, 0);
  CHECK(air > 0);
  CHECK_INT(hu_of[5], 60);
  CHECK_INT(hu_of[1], 45);
  CHECK_INT(hu_of[52], 150);
  CHECK_INT(hu_of[30], 400);
  CHECK_INT(hu_of[14], -850);
  int present[] = {1, 2, 3, 4, 5, 6, 11, 14, 21, 27, 28, 29, 30, 31, 32, 33, 52};
  for (size_t i = 0; i < sizeof present / sizeof present[0]; i++)
    CHECK(count[present[i]] > 0);
  /* The liver is the largest organ: about 4/3 pi 75*65*70 mm^3 / 64 mm^3,
   * less what later organs paint over it. */
  CHECK(count[5] > 15000 && count[5] < 22500);
  lm_tensor_release(img);
  lm_tensor_release(label);

  lm_params_set_number(p, "noise", 12);
  lm_tensor *a = NULL, *al = NULL, *b = NULL, *bl = NULL;
  CHECK_INT(phantom(p, &a, &al), LM_OK);
  CHECK_INT(phantom(p, &b, &bl), LM_OK);
  if (a && b) {
    CHECK(memcmp(lm_tensor_data(a), lm_tensor_data(b), lm_tensor_nbytes(a)) == 0);
    const int16_t *x = lm_tensor_data(a);
    const uint8_t *l = lm_tensor_data(al);
    double s = 0, s2 = 0;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
      if (l[i] == 5) { s += x[i]; s2 += (double)x[i] * x[i]; m++; }
    double mean = s / (double)m, sd = sqrt(s2 / (double)m - mean * mean);
    CHECK_NEAR(mean, 60, 0.5);
    CHECK_NEAR(sd, 12, 0.5);
  }
  lm_params_set_int(p, "seed", 1);
  lm_tensor *c = NULL, *cl = NULL;
  CHECK_INT(phantom(p, &c, &cl), LM_OK);
  if (a && c) {
    CHECK(memcmp(lm_tensor_data(a), lm_tensor_data(c), lm_tensor_nbytes(a)) != 0);
    CHECK(memcmp(lm_tensor_data(al), lm_tensor_data(cl), lm_tensor_nbytes(al)) == 0);
  }
  lm_tensor_release(a); lm_tensor_release(al);
  lm_tensor_release(b); lm_tensor_release(bl);
  lm_tensor_release(c); lm_tensor_release(cl);
  lm_params_free(p);
}

static void test_phantom_errors(void)
{
  lm_params *p = params();
  double two[2] = {10, 10};
  lm_params_set_numbers(p, "shape", two, 2);
  lm_tensor *img = NULL, *label = NULL;
  int st = phantom(p, &img, &label);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "shape");
  double sh[3] = {8, 8, 8}, sp[3] = {1, 0, 1};
  lm_params_set_numbers(p, "shape", sh, 3);
  lm_params_set_numbers(p, "spacing", sp, 3);
  st = phantom(p, &img, &label);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "spacing");
  lm_params_free(p);
}

int main(void)
{
  engine_start();
  RUN(test_ccf_3d);
  RUN(test_ccf_4d);
  RUN(test_cast_rules);
  RUN(test_cast_every_pair);
  RUN(test_cast_errors);
  RUN(test_to_device_without_gpu);
  RUN(test_phantom_geometry);
  RUN(test_phantom_values_and_seed);
  RUN(test_phantom_errors);
  lm_engine_release(E);
  TAP_DONE();
}
