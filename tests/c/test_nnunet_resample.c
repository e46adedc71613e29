/* nnU-Net resampling (transforms/resample_nnunet.c): the measured values of
 * semantics.md §4.3-4.4 (skimage resize order 1 and 3, label one-hot,
 * slice picking across z), nnU-Net's shape rule and separate-z decision,
 * the affine and trace it records, strides, dtypes and errors. */
#include "resample_nnunet.h"
#include "resample_nnunet_kernels.h"
#include "test_transforms_util.h"

static const double ONE[3] = {1, 1, 1};

/* A (n0, n1, n2) tensor with the given affine diagonal spacing. */
static lm_tensor *vol(lm_dtype dt, int64_t n0, int64_t n1, int64_t n2,
                      const double *vals, const double sp[3])
{
  int64_t sh[3] = {n0, n1, n2};
  lm_tensor *t = mk(dt, 3, sh, vals);
  double a[16] = {0};
  for (int d = 0; d < 3; d++) a[d * 4 + d] = sp[d];
  a[15] = 1;
  lm_tensor_set_affine(t, a);
  return t;
}

static lm_tensor *resize_to(lm_tensor *in, int64_t m0, int64_t m1, int64_t m2,
                            const xf_nnunet_opts *o)
{
  int64_t ns[3] = {m0, m1, m2};
  lm_tensor *out = NULL;
  int st = xf_resample_nnunet_to_shape(NULL, in, ns, ONE, ONE, o, &out);
  CHECK_INT(st, LM_OK);
  return out;
}

static void test_order3_line_matches_skimage(void)
{
  /* semantics.md §4.3: x = [0,0,0,10,10,10,0,0], 8 -> 12, order 3, edge */
  const double x[8] = {0, 0, 0, 10, 10, 10, 0, 0};
  const double want[12] = {0, 0.274417, 0, 0, 5.072142, 10, 10, 10,
                           8.727751, 1.352407, 0, 0.211134};
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  lm_tensor *in = vol(LM_F64, 8, 1, 1, x, ONE);
  lm_tensor *out = resize_to(in, 12, 1, 1, &o);
  if (out) {
    CHECK_INT(lm_tensor_shape(out)[0], 12);
    for (int i = 0; i < 12; i++) CHECK_NEAR(at(out, i), want[i], 1e-6);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static void test_unclipped_kernel_values(void)
{
  /* the clip=False values: the prefilter and weights on their own */
  const double x[8] = {0, 0, 0, 10, 10, 10, 0, 0};
  const double want[12] = {-0.056573, 0.274417, -0.349971, -0.787962, 5.072142,
                           10.681085, 10.136217, 10.735572, 8.727751, 1.352407,
                           -1.02414, 0.211134};
  nn_axis a;
  CHECK_INT(nn_axis_init(&a, 8, 12, 3), 0);
  double s[64], y[12];
  CHECK(nn_axis_scratch(&a) <= 64);
  nn_resize_line(&a, x, y, s);
  for (int i = 0; i < 12; i++) CHECK_NEAR(y[i], want[i], 1e-6);
  /* the row kernel does the same arithmetic on every column */
  double cols[16], rows[24], rs[64 * 2];
  for (int i = 0; i < 8; i++) cols[2 * i] = cols[2 * i + 1] = x[i];
  nn_resize_rows(&a, cols, 2, rows, 2, 2, rs);
  for (int i = 0; i < 12; i++) {
    CHECK_NEAR(rows[2 * i], y[i], 1e-12);
    CHECK_NEAR(rows[2 * i + 1], y[i], 1e-12);
  }
  nn_axis_free(&a);
}

static void test_order1_line(void)
{
  const double x[8] = {0, 0, 0, 10, 10, 10, 0, 0};
  const double want[12] = {0, 0, 0, 0, 5, 10, 10, 10, 8.333333, 1.666667, 0, 0};
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  o.order = 1;
  lm_tensor *in = vol(LM_F32, 8, 1, 1, x, ONE);
  lm_tensor *out = resize_to(in, 12, 1, 1, &o);
  if (out) {
    CHECK_INT(lm_tensor_dtype(out), LM_F32);  /* nnU-Net v2 keeps the dtype */
    for (int i = 0; i < 12; i++) CHECK_NEAR(at(out, i), want[i], 1e-5);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static void test_order3_2d(void)
{
  /* arange(16).reshape(4,4)**2 -> (6,6), row 0 */
  double v[16];
  for (int i = 0; i < 16; i++) v[i] = (double)(i * i);
  const double want[6] = {0, 0, 0.032749, 1.655854, 4.808386, 7.120913};
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  lm_tensor *in = vol(LM_F64, 4, 4, 1, v, ONE);
  lm_tensor *out = resize_to(in, 6, 6, 1, &o);
  if (out)
    for (int i = 0; i < 6; i++) CHECK_NEAR(at(out, i), want[i], 1e-6);
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static void check_labels(const double *x, int n, int m, const double *want)
{
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  o.is_label = true;
  o.order = 1;
  lm_tensor *in = vol(LM_U8, n, 1, 1, x, ONE);
  lm_tensor *out = resize_to(in, m, 1, 1, &o);
  if (out) {
    CHECK_INT(lm_tensor_dtype(out), LM_U8);
    for (int i = 0; i < m; i++) CHECK_INT(at(out, i), want[i]);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static void test_label_one_hot(void)
{
  const double a[6] = {0, 0, 1, 1, 2, 2};
  const double up[9] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
  const double down[4] = {0, 1, 1, 2};
  check_labels(a, 6, 9, up);
  check_labels(a, 6, 4, down);
  const double b[6] = {0, 1, 0, 2, 0, 0};
  const double b3[3] = {1, 2, 0};
  check_labels(b, 6, 3, b3);
}

static void test_label_vote_ties_and_negatives(void)
{
  /* ties at exactly 0.5 go to the larger label; -1 (outside nnU-Net's
   * nonzero mask) loses against 0 on a tie; three-way splits give 0 */
  double lab[4] = {1, 1, 3, 3}, coef[4] = {0.25, 0.25, 0.25, 0.25};
  CHECK_INT(nn_label_vote(lab, coef, 4, false), 3);
  double lab2[2] = {-1, 0}, c2[2] = {0.5, 0.5};
  CHECK_INT(nn_label_vote(lab2, c2, 2, false), 0);
  double lab3[2] = {-1, 0}, c3[2] = {0.75, 0.25};
  CHECK_INT(nn_label_vote(lab3, c3, 2, false), -1);
  double lab4[3] = {1, 2, 5}, c4[3] = {0.34, 0.33, 0.33};
  CHECK_INT(nn_label_vote(lab4, c4, 3, false), 0);
  /* the order_z path: rint(0.5) = 0 does not pass */
  CHECK_INT(nn_label_vote(lab2, c2, 2, true), 0);
  double lab5[2] = {4, 0};
  CHECK_INT(nn_label_vote(lab5, c2, 2, true), 0);
}

static void test_shape_rule_and_separate_z(void)
{
  /* (100,100,30) at (0.7,0.7,5) -> 1 mm: (70,70,150), separate along Z;
   * slices picked by floor(c + 0.5) */
  int64_t sh[3] = {100, 100, 30};
  lm_tensor *in = NULL;
  CHECK_INT(lm_tensor_zeros(E, LM_F32, 3, sh, LM_CPU, &in), LM_OK);
  double a[16] = {0.7, 0, 0, 10, 0, 0.7, 0, 20, 0, 0, 5, 30, 0, 0, 0, 1};
  lm_tensor_set_affine(in, a);
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  lm_tensor *out = NULL;
  CHECK_INT(xf_resample_nnunet(NULL, in, ONE, &o, &out), LM_OK);
  if (out) {
    CHECK_INT(lm_tensor_shape(out)[0], 70);
    CHECK_INT(lm_tensor_shape(out)[1], 70);
    CHECK_INT(lm_tensor_shape(out)[2], 150);
    /* voxel edges aligned: column d scaled by n/m, origin at index
     * 0.5 (n/m - 1) of the input */
    const double *b = lm_tensor_affine(out);
    CHECK_NEAR(b[0], 0.7 * 100.0 / 70.0, 1e-12);
    CHECK_NEAR(b[10], 5.0 * 30.0 / 150.0, 1e-12);
    CHECK_NEAR(b[3], 10 + 0.7 * 0.5 * (100.0 / 70.0 - 1), 1e-12);
    CHECK_NEAR(b[11], 30 + 5 * 0.5 * (30.0 / 150.0 - 1), 1e-12);
    CHECK_INT(lm_tensor_trace_length(out), 1);
    const lm_trace_entry *t = lm_tensor_trace_at(out, 0);
    if (t) {
      CHECK_STR(t->op, "ScaleByResolution");
      CHECK_CONTAINS(t->params, "rule=nnunet");
      CHECK_CONTAINS(t->params, "separate_z=1;axis=2;order=3;order_z=0;is_label=0");
      CHECK_INT(t->shape[2], 30);
      CHECK_NEAR(t->affine[10], 5, 0);
    }
  }
  lm_tensor_release(out);
  lm_tensor_release(in);

  xf_nnunet_opts_init(&o);
  double s1[3] = {5, .7, .7}, t1[3] = {1, 1, 1};
  CHECK_INT(xf_nnunet_separate_axis(s1, t1, &o), 0);
  double s2[3] = {1, 1, 1}, t2[3] = {3.5, 1, 1};
  CHECK_INT(xf_nnunet_separate_axis(s2, t2, &o), 0);  /* target anisotropic */
  double s3[3] = {3, 1, 1};
  CHECK_INT(xf_nnunet_separate_axis(s3, s2, &o), -1);  /* 3/1 is not > 3 */
  double s4[3] = {3.01, 1, 1};
  CHECK_INT(xf_nnunet_separate_axis(s4, s2, &o), 0);
  double s5[3] = {0.24, 1.25, 1.25};
  CHECK_INT(xf_nnunet_separate_axis(s5, s2, &o), -1);  /* two coarsest axes */
  o.separate_z = 0;
  CHECK_INT(xf_nnunet_separate_axis(s1, t1, &o), -1);
  o.separate_z = 1;
  CHECK_INT(xf_nnunet_separate_axis(s2, s2, &o), -1);
  CHECK_INT(xf_nnunet_separate_axis(s4, s2, &o), 0);
}

static void test_slice_picking_across_z(void)
{
  /* z 3 -> 5 with order_z 0 picks source slices [0,0,1,2,2]; each slice
   * is constant so the in-plane order-3 resize keeps its value */
  double v[2 * 2 * 3];
  for (int i = 0; i < 12; i++) v[i] = 10.0 * (double)(i % 3) + 1;  /* by z */
  const double sp[3] = {1, 1, 4};
  lm_tensor *in = vol(LM_F32, 2, 2, 3, v, sp);
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  int64_t ns[3] = {3, 3, 5};
  double nsp[3] = {2.0 / 3, 2.0 / 3, 12.0 / 5};
  lm_tensor *out = NULL;
  CHECK_INT(xf_resample_nnunet_to_shape(NULL, in, ns, sp, nsp, &o, &out), LM_OK);
  const int src[5] = {0, 0, 1, 2, 2};
  if (out)
    for (int z = 0; z < 5; z++) {
      int64_t idx[3] = {1, 2, z};
      CHECK_NEAR(lm_tensor_get(out, idx), 10.0 * src[z] + 1, 1e-5);
    }
  lm_tensor_release(out);
  /* order_z 1 interpolates: c = (o + 0.5) * 3/5 - 0.5 */
  o.order_z = 1;
  CHECK_INT(xf_resample_nnunet_to_shape(NULL, in, ns, sp, nsp, &o, &out), LM_OK);
  if (out)
    for (int z = 0; z < 5; z++) {
      double c = (z + 0.5) * 0.6 - 0.5;
      c = c < 0 ? 0 : c > 2 ? 2 : c;
      int64_t idx[3] = {0, 0, z};
      CHECK_NEAR(lm_tensor_get(out, idx), 10.0 * c + 1, 1e-5);
    }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

/* The separate path on a channel-first, permuted input gives the same
 * values as on a plain one; labels keep their integer values. */
static void test_channels_strides_labels(void)
{
  enum { NX = 7, NY = 5, NZ = 4 };
  int64_t sh[4] = {2, NX, NY, NZ};
  double v[2 * NX * NY * NZ];
  for (int i = 0; i < 2 * NX * NY * NZ; i++) v[i] = (double)((i * 7919) % 13) - 3;
  lm_tensor *in = mk(LM_I16, 4, sh, v);
  double a[16] = {0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 3, 0, 0, 0, 0, 1};
  lm_tensor_set_affine(in, a);
  /* the same values with X fastest in memory */
  int order[4] = {0, 3, 2, 1};
  lm_tensor *perm = NULL;
  CHECK_INT(lm_tensor_new_ordered(E, LM_I16, 4, sh, order, LM_CPU, &perm), LM_OK);
  CHECK_INT(lm_tensor_copy(perm, in), LM_OK);
  lm_tensor_set_affine(perm, a);
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  o.is_label = true;
  o.order = 1;
  double target[3] = {0.4, 0.7, 1.3};
  lm_tensor *o1 = NULL, *o2 = NULL;
  CHECK_INT(xf_resample_nnunet(NULL, in, target, &o, &o1), LM_OK);
  CHECK_INT(xf_resample_nnunet(NULL, perm, target, &o, &o2), LM_OK);
  if (o1 && o2) {
    CHECK_INT(lm_tensor_ndim(o1), 4);
    CHECK_INT(lm_tensor_shape(o1)[0], 2);
    CHECK_INT(lm_tensor_shape(o1)[1], 9);   /* rint(0.5/0.4*7) = rint(8.75) */
    CHECK_INT(lm_tensor_shape(o1)[2], 4);   /* rint(3.571) */
    CHECK_INT(lm_tensor_shape(o1)[3], 9);   /* rint(9.23) */
    int64_t n = lm_tensor_numel(o1), bad = 0, outside = 0;
    for (int64_t p = 0; p < n; p++) {
      double x = at(o1, p);
      bad += x != at(o2, p);
      outside += x < -3 || x > 9 || x != rint(x);
    }
    CHECK_INT(bad, 0);
    CHECK_INT(outside, 0);
  }
  lm_tensor_release(o1);
  lm_tensor_release(o2);
  lm_tensor_release(perm);
  lm_tensor_release(in);
}

static void test_unchanged_shape_copies(void)
{
  double v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  lm_tensor *in = vol(LM_F32, 2, 2, 2, v, ONE);
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  lm_tensor *out = NULL;
  CHECK_INT(xf_resample_nnunet(NULL, in, ONE, &o, &out), LM_OK);
  if (out) {
    CHECK(out != in);
    for (int i = 0; i < 8; i++) CHECK_NEAR(at(out, i), v[i], 0);
    CHECK_INT(lm_tensor_trace_length(out), 1);
  }
  lm_tensor_release(out);
  lm_tensor_release(in);
}

static void test_errors(void)
{
  double v[8] = {0};
  lm_tensor *in = vol(LM_F32, 2, 2, 2, v, ONE);
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  lm_tensor *out = (lm_tensor *)1;
  double bad[3] = {1, -1, 1};
  CHECK_INT(xf_resample_nnunet(NULL, in, bad, &o, &out), LM_EINVAL);
  CHECK(out == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "target spacing[1]");
  double coarse[3] = {100, 1, 1};
  CHECK_INT(xf_resample_nnunet(NULL, in, coarse, &o, &out), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "shape[0]");
  o.order = 2;
  CHECK_INT(xf_resample_nnunet(NULL, in, ONE, &o, &out), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "order 2");
  o.order = 3;
  o.is_label = true;
  CHECK_INT(xf_resample_nnunet(NULL, in, ONE, &o, &out), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "labels");
  lm_tensor_release(in);
  int64_t sh2[2] = {4, 4};
  lm_tensor *flat = NULL;
  lm_tensor_zeros(E, LM_F32, 2, sh2, LM_CPU, &flat);
  xf_nnunet_opts_init(&o);
  CHECK_INT(xf_resample_nnunet(NULL, flat, ONE, &o, &out), LM_ESHAPE);
  lm_tensor_release(flat);
}

/* ClassLocations: counts, sample sizes, membership, seeded reproducibility. */
static lm_params *class_locations(lm_tensor *lab, int64_t num, int64_t seed, int *st)
{
  lm_params *o = params(), *res = NULL;
  lm_params_set_int(o, "num_samples", num);
  lm_params_set_int(o, "seed", seed);
  int nout = 0;
  *st = lm_call(E, "ClassLocations", &lab, 1, o, NULL, &nout, &res);
  lm_params_free(o);
  return res;
}

static void test_class_locations(void)
{
  enum { N = 10 * 8 * 6 };
  double v[N];
  for (int i = 0; i < N; i++) v[i] = i % 7 == 0 ? 2 : i % 11 == 0 ? 5 : i < 3 ? -1 : 0;
  int64_t sh[3] = {10, 8, 6};
  lm_tensor *lab = mk(LM_I16, 3, sh, v);
  int st;
  lm_params *a = class_locations(lab, 20, 7, &st), *b = NULL, *c = NULL;
  CHECK_INT(st, LM_OK);
  const lm_value *counts = a ? lm_params_get(a, "counts") : NULL;
  const lm_value *locs = a ? lm_params_get(a, "locations") : NULL;
  CHECK(counts && counts->type == LM_VALUE_JSON);
  CHECK(locs && locs->type == LM_VALUE_JSON);
  int n2 = 0, n5 = 0;
  for (int i = 0; i < N; i++) {
    n2 += v[i] == 2;
    n5 += v[i] == 5;
  }
  char want[64];
  snprintf(want, sizeof want, "{\"2\":%d,\"5\":%d}", n2, n5);
  if (counts) CHECK_STR(counts->u.string, want);
  if (locs) {
    /* 20 samples of each class (both have more), every one of its class:
     * coordinates are logical (x, y, z) of the C-order test volume */
    const char *s = locs->u.string;
    CHECK(strncmp(s, "{\"2\":[[", 7) == 0);
    int cls = 0, samples[2] = {0, 0}, wrong = 0;
    for (const char *q = s; *q; q++) {
      if (q[0] == '"' && q[1] == '5') cls = 1;
      int x, y, z;
      if (q[0] == '[' && q[1] != '[' && sscanf(q, "[%d,%d,%d]", &x, &y, &z) == 3) {
        samples[cls]++;
        double lv = v[(x * 8 + y) * 6 + z];
        wrong += lv != (cls ? 5 : 2);
      }
    }
    CHECK_INT(samples[0], 20);
    CHECK_INT(samples[1], 20);
    CHECK_INT(wrong, 0);
  }
  b = class_locations(lab, 20, 7, &st);
  c = class_locations(lab, 20, 8, &st);
  const lm_value *lb = b ? lm_params_get(b, "locations") : NULL;
  const lm_value *lc = c ? lm_params_get(c, "locations") : NULL;
  if (locs && lb && lc) {
    CHECK_STR(locs->u.string, lb->u.string);            /* same seed, same sample */
    CHECK(strcmp(locs->u.string, lc->u.string) != 0);   /* another seed, another */
  }
  lm_params_free(a);
  lm_params_free(b);
  lm_params_free(c);
  /* errors name the option */
  a = class_locations(lab, 0, 1, &st);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "num_samples");
  lm_params_free(a);
  lm_tensor_release(lab);
}

int main(void)
{
  engine_start();
  RUN(test_order3_line_matches_skimage);
  RUN(test_unclipped_kernel_values);
  RUN(test_order1_line);
  RUN(test_order3_2d);
  RUN(test_label_one_hot);
  RUN(test_label_vote_ties_and_negatives);
  RUN(test_shape_rule_and_separate_z);
  RUN(test_slice_picking_across_z);
  RUN(test_channels_strides_labels);
  RUN(test_unchanged_shape_copies);
  RUN(test_errors);
  RUN(test_class_locations);
  lm_engine_release(E);
  TAP_DONE();
}
