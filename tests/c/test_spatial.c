/* Orientation, ScaleByResolution (MONAI rule), Resize, RestoreOriginalShape:
 * hand-checked shapes, affines and values (semantics.md §3, §4.2, §7). */
#include <math.h>

#include "test_transforms_util.h"

static void set_affine_diag(lm_tensor *t, double sx, double sy, double sz,
                            double tx, double ty, double tz)
{
  double a[16] = {sx, 0, 0, tx, 0, sy, 0, ty, 0, 0, sz, tz, 0, 0, 0, 1};
  lm_tensor_set_affine(t, a);
}

/* A (X,Y,Z) float32 volume with value 100*i + 10*j + k. */
static lm_tensor *ramp(int64_t x, int64_t y, int64_t z)
{
  int64_t shape[3] = {x, y, z};
  lm_tensor *t = NULL;
  lm_tensor_new(E, LM_F32, 3, shape, LM_CPU, &t);
  for (int64_t i = 0; i < x; i++)
    for (int64_t j = 0; j < y; j++)
      for (int64_t k = 0; k < z; k++) {
        int64_t idx[3] = {i, j, k};
        lm_tensor_set(t, idx, 100.0 * (double)i + 10.0 * (double)j + (double)k);
      }
  lm_tensor_set_layout(t, "XYZ");
  return t;
}

static double get3(const lm_tensor *t, int64_t i, int64_t j, int64_t k)
{
  int64_t idx[3] = {i, j, k};
  return lm_tensor_get(t, idx);
}

static void test_orientation_lps_to_ras(void)
{
  lm_tensor *t = ramp(10, 12, 7);
  set_affine_diag(t, -0.8, -0.8, 2.5, 100, 120, -50);
  lm_params *p = params();
  lm_params_set_string(p, "axcodes", "RAS");
  int st;
  lm_tensor *o = call("Orientation", t, p, &st);
  CHECK_INT(st, LM_OK);
  if (o) {
    const double *a = lm_tensor_affine(o);
    CHECK_NEAR(a[0], 0.8, 1e-12);
    CHECK_NEAR(a[5], 0.8, 1e-12);
    CHECK_NEAR(a[10], 2.5, 1e-12);
    CHECK_NEAR(a[3], 92.8, 1e-9);
    CHECK_NEAR(a[7], 111.2, 1e-9);
    CHECK_NEAR(a[11], -50, 1e-12);
    /* flipped i and j: out[0,0,k] = in[9,11,k] */
    CHECK_NEAR(get3(o, 0, 0, 3), 900 + 110 + 3, 0);
    CHECK_NEAR(get3(o, 9, 11, 6), 6, 0);
    CHECK_INT(lm_tensor_trace_length(o), 1);
    CHECK_STR(lm_tensor_trace_at(o, 0)->op, "Orientation");
    char codes[4];
    CHECK_STR(lm_tensor_orientation(o, codes), "RAS");
  }
  lm_tensor_release(o);
  lm_params_free(p);
  lm_tensor_release(t);
}

static void test_orientation_permutes_psr(void)
{
  /* columns (0,-1,0), (0,0,1), (3,0,0): axcodes P, S, R (semantics §3) */
  lm_tensor *t = ramp(4, 5, 6);
  double a[16] = {0, 0, 3, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1};
  lm_tensor_set_affine(t, a);
  lm_params *p = params();
  lm_params_set_string(p, "axcodes", "RAS");
  lm_tensor *o = call("Orientation", t, p, NULL);
  CHECK(o != NULL);
  if (o) {
    /* ornt [[1,-1],[2,1],[0,1]]: out = (in k, flip(in i), in j) */
    CHECK_INT(lm_tensor_shape(o)[0], 6);
    CHECK_INT(lm_tensor_shape(o)[1], 4);
    CHECK_INT(lm_tensor_shape(o)[2], 5);
    CHECK_NEAR(get3(o, 2, 0, 1), 100 * 3 + 10 * 1 + 2, 0);
    CHECK_NEAR(get3(o, 5, 3, 4), 0 + 40 + 5, 0);
    char codes[4];
    CHECK_STR(lm_tensor_orientation(o, codes), "RAS");
    /* RestoreOriginalShape puts everything back exactly */
    lm_tensor *in[2] = {o, o}, *out[1] = {0};
    int nout = 1;
    CHECK_INT(lm_call(E, "RestoreOriginalShape", in, 2, NULL, out, &nout, NULL), LM_OK);
    if (out[0]) {
      for (int d = 0; d < 3; d++)
        CHECK_INT(lm_tensor_shape(out[0])[d], lm_tensor_shape(t)[d]);
      for (int k = 0; k < 16; k++) CHECK_NEAR(lm_tensor_affine(out[0])[k], a[k], 1e-12);
      double bad = 0;
      for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 5; j++)
          for (int64_t k = 0; k < 6; k++)
            bad += fabs(get3(out[0], i, j, k) - get3(t, i, j, k));
      CHECK_NEAR(bad, 0, 0);
      CHECK_INT(lm_tensor_trace_length(out[0]), 0);
    }
    lm_tensor_release(out[0]);
  }
  lm_tensor_release(o);
  lm_params_free(p);
  lm_tensor_release(t);
}

static void test_spacing_shape_rule(void)
{
  /* (100,100,30) at (0.7,0.7,5) -> 1 mm: (70,70,146), A diag(1,1,1) */
  int64_t shape[3] = {100, 100, 30};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_F32, 3, shape, LM_CPU, &t);
  set_affine_diag(t, 0.7, 0.7, 5, 10, 20, 30);
  lm_params *p = params();
  double one = 1.0;
  lm_params_set_numbers(p, "pixdim", &one, 1);
  lm_tensor *o = call("ScaleByResolution", t, p, NULL);
  CHECK(o != NULL);
  if (o) {
    CHECK_INT(lm_tensor_shape(o)[0], 70);
    CHECK_INT(lm_tensor_shape(o)[1], 70);
    CHECK_INT(lm_tensor_shape(o)[2], 146);
    const double *a = lm_tensor_affine(o);
    CHECK_NEAR(a[0], 1, 1e-12);
    CHECK_NEAR(a[10], 1, 1e-12);
    CHECK_NEAR(a[3], 10, 0);
    CHECK_NEAR(a[11], 30, 0);
    CHECK_INT(lm_tensor_dtype(o), LM_F32);
    CHECK_STR(lm_tensor_trace_at(o, 0)->op, "ScaleByResolution");
  }
  lm_tensor_release(o);
  /* half-to-even shape: a 12-voxel axis 0.8 -> 1.6 gives rint(6.5) = 6 */
  int64_t s2[3] = {10, 12, 7};
  lm_tensor *u = NULL;
  lm_tensor_zeros(E, LM_F32, 3, s2, LM_CPU, &u);
  set_affine_diag(u, -0.8, -0.8, 2.5, 100, 120, -50);
  double pd[3] = {1.6, 1.6, 1.0};
  lm_params_set_numbers(p, "pixdim", pd, 3);
  o = call("Spacing", u, p, NULL);
  CHECK(o != NULL);
  if (o) {
    CHECK_INT(lm_tensor_shape(o)[0], 6);
    CHECK_INT(lm_tensor_shape(o)[1], 6);
    CHECK_INT(lm_tensor_shape(o)[2], 16);
    CHECK_NEAR(lm_tensor_affine(o)[0], -1.6, 1e-12);
    CHECK_NEAR(lm_tensor_affine(o)[10], 1.0, 1e-12);
    CHECK_NEAR(lm_tensor_affine(o)[3], 100, 0);
  }
  lm_tensor_release(o);
  lm_tensor_release(u);
  lm_params_free(p);
  lm_tensor_release(t);
}

static void test_spacing_values(void)
{
  /* 1-voxel-thick volumes make 1-D checks: x = [10,20,30,40] along i */
  int64_t shape[3] = {4, 1, 1};
  double v[4] = {10, 20, 30, 40};
  lm_tensor *t = mk(LM_F32, 3, shape, v);
  set_affine_diag(t, 1, 1, 1, 0, 0, 0);
  lm_params *p = params();
  double pd[3] = {1.5, 1, 1};
  lm_params_set_numbers(p, "pixdim", pd, 3);
  /* shape rint(3/1.5 + 1) = 3; coordinates 0, 1.5, 3 */
  lm_params_set_string(p, "mode", "nearest");
  lm_tensor *o = call("Spacing", t, p, NULL);
  CHECK(o != NULL);
  if (o) {
    CHECK_INT(lm_tensor_shape(o)[0], 3);
    CHECK_NEAR(at(o, 0), 10, 0);
    CHECK_NEAR(at(o, 1), 30, 0); /* rint(1.5) = 2: half to even */
    CHECK_NEAR(at(o, 2), 40, 0);
  }
  lm_tensor_release(o);
  lm_params_set_string(p, "mode", "bilinear");
  o = call("Spacing", t, p, NULL);
  if (o) CHECK_NEAR(at(o, 1), 25, 1e-6);
  CHECK(o != NULL);
  lm_tensor_release(o);
  /* upsampling past the last voxel: 4 voxels 1 -> 0.75 mm gives
   * rint(3/0.75 + 1) = 5 samples at 0, .75, 1.5, 2.25, 3 */
  double up[3] = {0.75, 1, 1};
  lm_params_set_numbers(p, "pixdim", up, 3);
  o = call("Spacing", t, p, NULL);
  CHECK(o != NULL);
  if (o) {
    CHECK_INT(lm_tensor_shape(o)[0], 5);
    CHECK_NEAR(at(o, 1), 17.5, 1e-6);
    CHECK_NEAR(at(o, 3), 32.5, 1e-6);
  }
  lm_tensor_release(o);
  /* cubic B-spline interpolates: knots give back the samples */
  double same_grid[3] = {1, 1, 1};
  lm_params_set_numbers(p, "pixdim", same_grid, 3);
  lm_params_set_string(p, "mode", "cubic");
  o = call("Spacing", t, p, NULL);
  if (o) CHECK_NEAR(at(o, 2), 30, 0); /* early exit: unchanged copy */
  lm_tensor_release(o);
  lm_params_free(p);
  lm_tensor_release(t);
}

static void test_spacing_cubic_matches_scipy(void)
{
  /* scipy map_coordinates([3,1,4,1,5,9,2,6], order=3, mode='nearest') at
   * 0.3 = 2.203632064686789 (semantics §4.3 prepad 12; measured) */
  int64_t shape[3] = {8, 1, 1};
  double v[8] = {3, 1, 4, 1, 5, 9, 2, 6};
  lm_tensor *t = mk(LM_F64, 3, shape, v);
  set_affine_diag(t, 1, 1, 1, 0, 0, 0);
  lm_params *p = params();
  lm_params_set_string(p, "mode", "cubic");
  lm_params_set_string(p, "dtype", "float64");
  double sh[3] = {15, 1, 1};
  lm_params_set_numbers(p, "output_shape", sh, 3); /* step 0.5 */
  lm_tensor *o = call("Spacing", t, p, NULL);
  CHECK(o != NULL);
  if (o) {
    CHECK_INT(lm_tensor_shape(o)[0], 15);
    CHECK_NEAR(at(o, 0), 3, 1e-9);
    CHECK_NEAR(at(o, 2), 1, 1e-9);
    CHECK_NEAR(lm_tensor_affine(o)[0], 0.5, 1e-12);
  }
  lm_tensor_release(o);
  double pd[3] = {1.3, 1, 1}; /* samples at 0, 1.3, ... */
  lm_params_free(p);
  p = params();
  lm_params_set_string(p, "mode", "cubic");
  lm_params_set_string(p, "dtype", "float64");
  lm_params_set_numbers(p, "pixdim", pd, 3);
  lm_params_set_string(p, "padding_mode", "zeros");
  o = call("Spacing", t, p, NULL);
  CHECK(o != NULL);
  /* scipy mode='constant' at 1.3 (whole-sample mirror filter) */
  if (o) CHECK_NEAR(at(o, 1), 1.749717622810032, 1e-9);
  lm_tensor_release(o);
  lm_params_free(p);
  lm_tensor_release(t);
}

static void test_spacing_label_and_inverse(void)
{
  /* int labels keep their dtype, nearest, and come back exactly when the
   * spacing is unchanged on some axes and halved on another */
  int64_t shape[4] = {1, 6, 4, 3};
  double v[72];
  for (int i = 0; i < 72; i++) v[i] = (i * 7) % 5;
  lm_tensor *t = mk(LM_U8, 4, shape, v);
  lm_tensor_set_layout(t, "CXYZ");
  set_affine_diag(t, 2, 1, 3, -5, 6, 7);
  lm_params *p = params();
  double pd[3] = {1, 1, 3}; /* axis 0 doubles its samples: 11 */
  lm_params_set_numbers(p, "pixdim", pd, 3);
  lm_params_set_bool(p, "is_label", true);
  lm_tensor *o = call("ScaleByResolution", t, p, NULL);
  CHECK(o != NULL);
  if (o) {
    CHECK_INT(lm_tensor_dtype(o), LM_U8);
    CHECK_INT(lm_tensor_shape(o)[1], 11);
    CHECK_STR(lm_tensor_layout(o), "CXYZ");
    lm_tensor *in[2] = {o, o}, *out[1] = {0};
    int nout = 1;
    CHECK_INT(lm_call(E, "RestoreOriginalShape", in, 2, NULL, out, &nout, NULL), LM_OK);
    if (out[0]) {
      CHECK_INT(lm_tensor_dtype(out[0]), LM_U8);
      CHECK_INT(lm_tensor_shape(out[0])[1], 6);
      double bad = 0;
      for (int i = 0; i < 72; i++) bad += fabs(at(out[0], i) - v[i]);
      CHECK_NEAR(bad, 0, 0);
      CHECK_NEAR(lm_tensor_affine(out[0])[0], 2, 1e-12);
      CHECK_NEAR(lm_tensor_affine(out[0])[3], -5, 1e-12);
    }
    lm_tensor_release(out[0]);
  }
  lm_tensor_release(o);
  lm_params_free(p);
  lm_tensor_release(t);
}

static void test_resize(void)
{
  int64_t shape[3] = {4, 1, 1};
  double v[4] = {10, 20, 30, 40};
  lm_tensor *t = mk(LM_F32, 3, shape, v);
  set_affine_diag(t, 1, 1, 1, 0, 0, 0);
  lm_params *p = params();
  double sz[3] = {8, -1, -1};
  lm_params_set_numbers(p, "spatial_size", sz, 3);
  lm_tensor *o = call("Resize", t, p, NULL);
  CHECK(o != NULL);
  if (o) {
    /* torch linear, align_corners=False: c = (o+.5)/2 - .5 */
    double want[8] = {10, 12.5, 17.5, 22.5, 27.5, 32.5, 37.5, 40};
    for (int i = 0; i < 8; i++) CHECK_NEAR(at(o, i), want[i], 1e-5);
    CHECK_NEAR(lm_tensor_affine(o)[0], 0.5, 1e-12);
    CHECK_NEAR(lm_tensor_affine(o)[3], -0.25, 1e-12);
  }
  lm_tensor_release(o);
  lm_params_set_string(p, "mode", "nearest");
  double down[3] = {3, -1, -1};
  lm_params_set_numbers(p, "spatial_size", down, 3);
  o = call("Resize", t, p, NULL);
  CHECK(o != NULL);
  if (o) { /* floor(o*4/3) = 0, 1, 2 */
    CHECK_NEAR(at(o, 0), 10, 0);
    CHECK_NEAR(at(o, 1), 20, 0);
    CHECK_NEAR(at(o, 2), 30, 0);
  }
  lm_tensor_release(o);
  lm_params_free(p);
  lm_tensor_release(t);
}

static void test_errors(void)
{
  lm_tensor *t = ramp(3, 3, 3);
  lm_params *p = params();
  int st;
  lm_params_set_string(p, "axcodes", "RAR");
  CHECK(call("Orientation", t, p, &st) == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "axcodes");
  lm_params_free(p);
  p = params();
  double one = 1, sh[3] = {2, 2, 2};
  lm_params_set_numbers(p, "pixdim", &one, 1);
  lm_params_set_numbers(p, "output_shape", sh, 3);
  CHECK(call("ScaleByResolution", t, p, &st) == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "pixdim");
  lm_params_free(p);
  p = params();
  lm_params_set_numbers(p, "pixdim", &one, 1);
  lm_params_set_string(p, "mode", "bicubic");
  CHECK(call("ScaleByResolution", t, p, &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "mode");
  lm_params_free(p);
  /* pred off ref's grid */
  lm_tensor *u = ramp(3, 3, 4);
  lm_tensor *in[2] = {u, t}, *out[1] = {0};
  int nout = 1;
  CHECK_INT(lm_call(E, "RestoreOriginalShape", in, 2, NULL, out, &nout, NULL), LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(E), "spatial shape");
  lm_tensor_release(u);
  lm_tensor_release(t);
}

int main(void)
{
  engine_start();
  RUN(test_orientation_lps_to_ras);
  RUN(test_orientation_permutes_psr);
  RUN(test_spacing_shape_rule);
  RUN(test_spacing_values);
  RUN(test_spacing_cubic_matches_scipy);
  RUN(test_spacing_label_and_inverse);
  RUN(test_resize);
  RUN(test_errors);
  lm_engine_release(E);
  TAP_DONE();
}
