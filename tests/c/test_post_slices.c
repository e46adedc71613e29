/* SplitSlices / StackSlices: values, shapes, affines, layouts and trace. */
#include "test_transforms_util.h"

static lm_tensor *run2(const char *op, lm_tensor *a, lm_tensor *b,
                       lm_params *p, int *st)
{
  lm_tensor *in[2] = {a, b}, *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  int s = lm_call(E, op, in, b ? 2 : 1, p, out, &nout, NULL);
  lm_params_free(p);
  if (st) *st = s;
  return s < 0 ? NULL : out[0];
}

static lm_params *axis(int a)
{
  lm_params *p = params();
  lm_params_set_int(p, "axis", a);
  return p;
}

/* A (2, 3, 4, 5) volume whose value encodes (c, i, j, k), with an
 * oblique affine. */
static lm_tensor *volume(void)
{
  int64_t sh[4] = {2, 3, 4, 5};
  lm_tensor *t = NULL;
  lm_tensor_new(E, LM_F32, 4, sh, LM_CPU, &t);
  int64_t idx[4];
  for (idx[0] = 0; idx[0] < 2; idx[0]++)
    for (idx[1] = 0; idx[1] < 3; idx[1]++)
      for (idx[2] = 0; idx[2] < 4; idx[2]++)
        for (idx[3] = 0; idx[3] < 5; idx[3]++)
          lm_tensor_set(t, idx, 1000 * idx[0] + 100 * idx[1] + 10 * idx[2] + idx[3]);
  double A[16] = {0.5, 0.1, 0, -10, 0, 2, 0.2, 5, 0.3, 0, 3, 7, 0, 0, 0, 1};
  lm_tensor_set_affine(t, A);
  lm_tensor_set_layout(t, "CXYZ");
  return t;
}

static void world(const double *A, double a, double b, double c, double *w)
{
  for (int r = 0; r < 3; r++) w[r] = A[4 * r] * a + A[4 * r + 1] * b + A[4 * r + 2] * c + A[4 * r + 3];
}

static void test_split_each_axis(void)
{
  lm_tensor *t = volume();
  for (int a = 0; a < 3; a++) {
    lm_tensor *s = run2("SplitSlices", t, NULL, axis(a), NULL);
    CHECK(s != NULL);
    if (!s) continue;
    int u = a == 0 ? 1 : 0, v = a == 2 ? 1 : 2;
    const int64_t *vs = lm_tensor_shape(t) + 1;
    const int64_t *sh = lm_tensor_shape(s);
    CHECK_INT(lm_tensor_ndim(s), 4);
    CHECK_INT(sh[0], vs[a]);
    CHECK_INT(sh[1], 2);
    CHECK_INT(sh[2], vs[u]);
    CHECK_INT(sh[3], vs[v]);
    CHECK(lm_tensor_is_contiguous(s));
    char lay[5] = {'N', 'C', "XYZ"[u], "XYZ"[v], 0};
    CHECK_STR(lm_tensor_layout(s), lay);
    /* values and world positions of every voxel */
    int64_t idx[4];
    bool vals_ok = true, world_ok = true;
    for (idx[0] = 0; idx[0] < sh[0]; idx[0]++)
      for (idx[1] = 0; idx[1] < sh[1]; idx[1]++)
        for (idx[2] = 0; idx[2] < sh[2]; idx[2]++)
          for (idx[3] = 0; idx[3] < sh[3]; idx[3]++) {
            int64_t ijk[3];
            ijk[a] = idx[0];
            ijk[u] = idx[2];
            ijk[v] = idx[3];
            double want = 1000 * idx[1] + 100 * ijk[0] + 10 * ijk[1] + ijk[2];
            if (lm_tensor_get(s, idx) != want) vals_ok = false;
            double w1[3], w2[3];
            world(lm_tensor_affine(t), ijk[0], ijk[1], ijk[2], w1);
            world(lm_tensor_affine(s), idx[2], idx[3], idx[0], w2);
            for (int r = 0; r < 3; r++)
              if (fabs(w1[r] - w2[r]) > 1e-12) world_ok = false;
          }
    CHECK(vals_ok);
    CHECK(world_ok);
    CHECK_INT(lm_tensor_trace_length(s), 1);
    const lm_trace_entry *e = lm_tensor_trace_at(s, 0);
    CHECK_STR(e ? e->op : NULL, "SplitSlices");
    /* back, with and without ref */
    for (int withref = 0; withref < 2; withref++) {
      lm_tensor *b = run2("StackSlices", s, withref ? t : NULL, axis(a), NULL);
      CHECK(b != NULL);
      if (!b) continue;
      CHECK_INT(lm_tensor_ndim(b), 4);
      CHECK(memcmp(lm_tensor_shape(b), lm_tensor_shape(t), 4 * sizeof(int64_t)) == 0);
      CHECK(memcmp(lm_tensor_affine(b), lm_tensor_affine(t), 16 * sizeof(double)) == 0);
      CHECK_STR(lm_tensor_layout(b), "CXYZ");
      CHECK_INT(lm_tensor_trace_length(b), 0);
      bool same = true;
      for (int64_t p = 0; p < lm_tensor_numel(t); p++)
        if (at(b, p) != at(t, p)) same = false;
      CHECK(same);
      lm_tensor_release(b);
    }
    lm_tensor_release(s);
  }
  lm_tensor_release(t);
}

/* (X,Y,Z) in, model output with 3 channels back, shape errors. */
static void test_channels_and_errors(void)
{
  int64_t sh[3] = {3, 4, 5};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_I16, 3, sh, LM_CPU, &t);
  lm_tensor *s = run2("SplitSlices", t, NULL, NULL, NULL);
  CHECK(s && lm_tensor_shape(s)[0] == 5 && lm_tensor_shape(s)[1] == 1);
  lm_tensor *b = run2("StackSlices", s, NULL, NULL, NULL);
  CHECK(b && lm_tensor_ndim(b) == 3 && lm_tensor_dtype(b) == LM_I16);
  if (b) CHECK_STR(lm_tensor_layout(b), "XYZ");
  lm_tensor_release(b);
  int64_t ph[4] = {5, 3, 3, 4};
  lm_tensor *prob = NULL;
  lm_tensor_zeros(E, LM_F32, 4, ph, LM_CPU, &prob);
  b = run2("StackSlices", prob, t, NULL, NULL);
  CHECK(b && lm_tensor_ndim(b) == 4 && lm_tensor_shape(b)[0] == 3);
  lm_tensor_release(b);
  int st;
  CHECK(run2("StackSlices", prob, t, axis(1), &st) == NULL);
  CHECK_INT(st, LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(E), "does not fit ref's grid");
  CHECK(run2("SplitSlices", t, NULL, axis(5), &st) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "'axis'");
  lm_tensor_release(prob);
  lm_tensor_release(s);
  lm_tensor_release(t);
}

int main(void)
{
  engine_start();
  RUN(test_split_each_axis);
  RUN(test_channels_and_errors);
  lm_engine_release(E);
  TAP_DONE();
}
