/* Engine unit tests: dtypes, devices, tensors, views, copies, stats,
 * geometry and the trace. */
#include <stdint.h>

#include "lumen.h"
#include "tap.h"

static lm_engine *E;

static lm_engine *new_engine(void)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  cfg.threads = 2;
  lm_engine *e = NULL;
  if (lm_engine_new(&cfg, &e) != LM_OK) {
    printf("Bail out! lm_engine_new: %s\n", lm_errmsg(NULL));
    exit(1);
  }
  return e;
}

static lm_tensor *make(lm_dtype dt, int ndim, const int64_t *shape)
{
  lm_tensor *t = NULL;
  int st = lm_tensor_new(E, dt, ndim, shape, LM_CPU, &t);
  if (st != LM_OK) TAP_FAIL("lm_tensor_new: %s", lm_errmsg(E));
  return t;
}

/* Fill with value(i) in logical C order. */
static void fill_seq(lm_tensor *t, double scale, double bias)
{
  int nd = lm_tensor_ndim(t);
  const int64_t *sh = lm_tensor_shape(t);
  int64_t idx[LM_MAX_DIMS] = {0}, n = lm_tensor_numel(t);
  for (int64_t k = 0; k < n; k++) {
    lm_tensor_set(t, idx, k * scale + bias);
    for (int d = nd - 1; d >= 0; d--) {
      if (++idx[d] < sh[d]) break;
      idx[d] = 0;
    }
  }
}

static void test_dtypes(void)
{
  CHECK_STR(lm_dtype_name(LM_BF16), "bfloat16");
  CHECK_STR(lm_dtype_name(LM_U16), "uint16");
  CHECK_INT(lm_dtype_size(LM_I64), 8);
  CHECK_INT(lm_dtype_size(LM_F16), 2);
  CHECK_INT(lm_dtype_size((lm_dtype)99), 0);
  lm_dtype dt;
  CHECK_INT(lm_dtype_from_name("float", &dt), LM_OK);
  CHECK_INT(dt, LM_F32);
  CHECK_INT(lm_dtype_from_name("half", &dt), LM_OK);
  CHECK_INT(dt, LM_F16);
  CHECK_INT(lm_dtype_from_name("i16", &dt), LM_OK);
  CHECK_INT(dt, LM_I16);
  CHECK_INT(lm_dtype_from_name("uint32", &dt), LM_OK);
  CHECK_INT(dt, LM_U32);
  CHECK_INT(lm_dtype_from_name("complex64", &dt), LM_EINVAL);
  CHECK(lm_dtype_is_float(LM_BF16));
  CHECK(!lm_dtype_is_float(LM_I64));
  CHECK_STR(lm_status_name(LM_ECANCELED), "LM_ECANCELED");
  CHECK_STR(lm_status_name(-1234), "LM_E?");
  CHECK_STR(lm_status_string(LM_EINVAL), "invalid argument");
}

static void test_devices(void)
{
  lm_device d;
  char buf[16];
  CHECK_INT(lm_device_parse("cpu", &d), LM_OK);
  CHECK_INT(d.type, LM_DEVICE_CPU);
  CHECK_INT(lm_device_parse("cuda", &d), LM_OK);
  CHECK_INT(d.type, LM_DEVICE_CUDA);
  CHECK_INT(d.index, 0);
  CHECK_INT(lm_device_parse("cuda:3", &d), LM_OK);
  CHECK_INT(d.index, 3);
  CHECK_STR(lm_device_format(d, buf, sizeof buf), "cuda:3");
  CHECK_STR(lm_device_format(LM_CPU, buf, sizeof buf), "cpu");
  CHECK_INT(lm_device_parse("cuda:", &d), LM_EINVAL);
  CHECK_INT(lm_device_parse("cuda:1x", &d), LM_EINVAL);
  CHECK_INT(lm_device_parse("gpu", &d), LM_EINVAL);
  CHECK(lm_device_equal(LM_CPU, (lm_device){LM_DEVICE_CPU, 0}));
  CHECK(!lm_device_equal((lm_device){LM_DEVICE_CUDA, 0}, (lm_device){LM_DEVICE_CUDA, 1}));
}

static void test_half_conversions(void)
{
  CHECK_INT(lm_f32_to_f16(1.0f), 0x3c00);
  CHECK_INT(lm_f32_to_f16(-2.0f), 0xc000);
  CHECK_INT(lm_f32_to_f16(65504.0f), 0x7bff);
  CHECK_INT(lm_f32_to_f16(65519.0f), 0x7bff);
  CHECK_INT(lm_f32_to_f16(65520.0f), 0x7c00); /* rounds to infinity */
  CHECK_INT(lm_f32_to_f16(0x1p-24f), 0x0001);  /* smallest subnormal */
  CHECK_INT(lm_f32_to_f16(0x1p-25f), 0x0000);  /* tie to even: zero */
  CHECK_INT(lm_f32_to_f16(0x1.8p-24f), 0x0002); /* tie to even: 2 */
  CHECK_INT(lm_f32_to_f16(0.1f), 0x2e66);
  CHECK_INT(lm_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);     /* tie, even below */
  CHECK_INT(lm_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02); /* tie, even above */
  CHECK_INT(lm_f32_to_f16(INFINITY), 0x7c00);
  CHECK((lm_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (lm_f32_to_f16(NAN) & 0x3ff) != 0);
  CHECK_NEAR(lm_f16_to_f32(0x3555), 0.333251953125, 0);
  CHECK_NEAR(lm_f16_to_f32(0x0001), 0x1p-24, 0);
  /* Every non-NaN half survives a round trip through float. */
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
    if (lm_f32_to_f16(lm_f16_to_f32((uint16_t)h)) != h) bad++;
  }
  CHECK_INT(bad, 0);

  CHECK_INT(lm_f32_to_bf16(1.0f), 0x3f80);
  CHECK_INT(lm_f32_to_bf16(-3.0f), 0xc040);
  float tie_even, tie_odd;
  uint32_t u = 0x3f808000u, v = 0x3f818000u;
  memcpy(&tie_even, &u, 4);
  memcpy(&tie_odd, &v, 4);
  CHECK_INT(lm_f32_to_bf16(tie_even), 0x3f80);
  CHECK_INT(lm_f32_to_bf16(tie_odd), 0x3f82);
  CHECK(isnan(lm_bf16_to_f32(lm_f32_to_bf16(NAN))));
  bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
    if (lm_f32_to_bf16(lm_bf16_to_f32((uint16_t)h)) != h) bad++;
  }
  CHECK_INT(bad, 0);
}

static void test_new_and_shapes(void)
{
  int64_t sh[3] = {2, 3, 4};
  lm_tensor *t = make(LM_F32, 3, sh);
  CHECK_INT(lm_tensor_ndim(t), 3);
  CHECK_INT(lm_tensor_strides(t)[0], 12);
  CHECK_INT(lm_tensor_strides(t)[1], 4);
  CHECK_INT(lm_tensor_strides(t)[2], 1);
  CHECK_INT(lm_tensor_numel(t), 24);
  CHECK_INT(lm_tensor_nbytes(t), 96);
  CHECK(lm_tensor_is_contiguous(t));
  CHECK(lm_tensor_is_dense(t));
  CHECK(!lm_tensor_is_shared(t));
  CHECK(((uintptr_t)lm_tensor_data(t) & 63) == 0);
  CHECK_STR(lm_tensor_layout(t), "");
  CHECK(lm_tensor_engine(t) == E);
  const double *a = lm_tensor_affine(t);
  CHECK_NEAR(a[0] + a[5] + a[10] + a[15], 4, 0);
  lm_tensor_set_layout(t, "XYZ");
  CHECK_STR(lm_tensor_layout(t), "XYZ");
  lm_tensor_release(t);

  lm_tensor *s = make(LM_F64, 0, NULL);
  CHECK_INT(lm_tensor_numel(s), 1);
  lm_tensor_set(s, NULL, 2.5);
  CHECK_NEAR(lm_tensor_get(s, NULL), 2.5, 0);
  lm_tensor_release(s);

  /* File order for a NIfTI volume: i fastest. */
  int order[3] = {2, 1, 0};
  CHECK_INT(lm_tensor_new_ordered(E, LM_I16, 3, sh, order, LM_CPU, &t), LM_OK);
  CHECK_INT(lm_tensor_strides(t)[0], 1);
  CHECK_INT(lm_tensor_strides(t)[1], 2);
  CHECK_INT(lm_tensor_strides(t)[2], 6);
  CHECK(!lm_tensor_is_contiguous(t));
  CHECK(lm_tensor_is_dense(t));
  lm_tensor *like;
  CHECK_INT(lm_tensor_new_like(t, LM_F32, LM_CPU, &like), LM_OK);
  CHECK_INT(lm_tensor_strides(like)[0], 1);
  CHECK_INT(lm_tensor_strides(like)[2], 6);
  CHECK_INT(lm_tensor_dtype(like), LM_F32);
  lm_tensor_release(like);
  lm_tensor_release(t);

  lm_tensor *z;
  CHECK_INT(lm_tensor_zeros(E, LM_I32, 3, sh, LM_CPU, &z), LM_OK);
  lm_tensor_stats stats;
  CHECK_INT(lm_tensor_stats_compute(z, &stats), LM_OK);
  CHECK_NEAR(stats.max, 0, 0);
  CHECK_NEAR(stats.min, 0, 0);
  lm_tensor_release(z);

  int64_t bad[2] = {3, -1};
  t = NULL;
  CHECK_INT(lm_tensor_new(E, LM_F32, 2, bad, LM_CPU, &t), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "shape[1]");
  CHECK(t == NULL);
  CHECK_INT(lm_tensor_new(E, LM_F32, 9, sh, LM_CPU, &t), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "ndim 9");
  int notperm[3] = {0, 0, 1};
  CHECK_INT(lm_tensor_new_ordered(E, LM_F32, 3, sh, notperm, LM_CPU, &t), LM_EINVAL);
  CHECK_INT(lm_tensor_new(E, (lm_dtype)42, 3, sh, LM_CPU, &t), LM_EDTYPE);
}

static void test_views(void)
{
  int64_t sh[3] = {2, 3, 4};
  lm_tensor *t = make(LM_I32, 3, sh);
  fill_seq(t, 1, 0);
  lm_tensor *p;
  int perm[3] = {2, 0, 1};
  CHECK_INT(lm_tensor_permute(t, perm, &p), LM_OK);
  CHECK_INT(lm_tensor_shape(p)[0], 4);
  CHECK_INT(lm_tensor_shape(p)[1], 2);
  CHECK_INT(lm_tensor_strides(p)[0], 1);
  CHECK_INT(lm_tensor_strides(p)[1], 12);
  CHECK(lm_tensor_is_dense(p));
  CHECK(!lm_tensor_is_contiguous(p));
  CHECK(lm_tensor_is_shared(t));
  CHECK(lm_tensor_is_shared(p));
  int64_t ip[3] = {3, 1, 2}, it[3] = {1, 2, 3};
  CHECK_NEAR(lm_tensor_get(p, ip), lm_tensor_get(t, it), 0);
  CHECK_NEAR(lm_tensor_get(t, it), 12 + 8 + 3, 0);
  int badperm[3] = {0, 1, 1};
  lm_tensor *x = NULL;
  CHECK_INT(lm_tensor_permute(t, badperm, &x), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "permute");

  lm_tensor *u;
  CHECK_INT(lm_tensor_unsqueeze(t, 0, &u), LM_OK);
  CHECK_INT(lm_tensor_ndim(u), 4);
  CHECK_INT(lm_tensor_shape(u)[0], 1);
  CHECK(lm_tensor_is_contiguous(u));
  CHECK_INT(lm_tensor_unsqueeze(t, 4, &x), LM_EINVAL);
  lm_tensor *sq;
  CHECK_INT(lm_tensor_squeeze(u, 0, &sq), LM_OK);
  CHECK_INT(lm_tensor_ndim(sq), 3);
  CHECK_INT(lm_tensor_squeeze(u, 1, &x), LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(E), "size 2");
  CHECK_INT(lm_tensor_squeeze(u, 7, &x), LM_EINVAL);

  lm_tensor *n;
  CHECK_INT(lm_tensor_narrow(t, 2, 1, 2, &n), LM_OK);
  CHECK_INT(lm_tensor_shape(n)[2], 2);
  int64_t i0[3] = {1, 2, 0};
  CHECK_NEAR(lm_tensor_get(n, i0), 12 + 8 + 1, 0);
  CHECK(!lm_tensor_is_dense(n));
  CHECK_INT(lm_tensor_narrow(t, 2, 3, 2, &x), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "outside dim 2");
  CHECK_INT(lm_tensor_narrow(t, 2, -1, 1, &x), LM_EINVAL);

  /* A general view: every other element of the flat buffer, reversed. */
  lm_tensor *v;
  int64_t vs[1] = {12}, vst[1] = {-2};
  CHECK_INT(lm_tensor_view(t, 1, vs, vst, 23, &v), LM_OK);
  int64_t k0[1] = {0}, k11[1] = {11};
  CHECK_NEAR(lm_tensor_get(v, k0), 23, 0);
  CHECK_NEAR(lm_tensor_get(v, k11), 1, 0);
  int64_t too[1] = {13};
  CHECK_INT(lm_tensor_view(t, 1, too, vst, 23, &x), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "outside the storage");
  int64_t one[1] = {25}, st1[1] = {1};
  CHECK_INT(lm_tensor_view(t, 1, one, st1, 0, &x), LM_EINVAL);
  CHECK(x == NULL);

  /* The storage outlives its first tensor. */
  lm_tensor_release(t);
  lm_tensor_release(u);
  lm_tensor_release(sq);
  lm_tensor_release(n);
  lm_tensor_release(v);
  CHECK(!lm_tensor_is_shared(p));
  CHECK_NEAR(lm_tensor_get(p, ip), 23, 0);
  lm_tensor *r = lm_tensor_retain(p);
  CHECK(r == p);
  CHECK(!lm_tensor_is_shared(p)); /* one object, two references */
  lm_tensor_release(r);
  lm_tensor_release(p);
  lm_tensor_release(NULL);
}

static void test_copy_contiguous_clone(void)
{
  int64_t sh[3] = {3, 4, 5};
  lm_tensor *t = make(LM_I16, 3, sh);
  fill_seq(t, 1, -30);
  int perm[3] = {2, 0, 1};
  lm_tensor *p, *c, *cl;
  CHECK_INT(lm_tensor_permute(t, perm, &p), LM_OK);
  lm_tensor_set_layout(p, "ZXY");
  CHECK_INT(lm_tensor_contiguous(p, &c), LM_OK);
  CHECK(c != p);
  CHECK(lm_tensor_is_contiguous(c));
  CHECK_STR(lm_tensor_layout(c), "ZXY");
  int bad = 0;
  for (int64_t a = 0; a < 5; a++)
    for (int64_t b = 0; b < 3; b++)
      for (int64_t d = 0; d < 4; d++) {
        int64_t i[3] = {a, b, d};
        if (lm_tensor_get(c, i) != lm_tensor_get(p, i)) bad++;
      }
  CHECK_INT(bad, 0);
  lm_tensor *same;
  CHECK_INT(lm_tensor_contiguous(c, &same), LM_OK);
  CHECK(same == c);
  lm_tensor_release(same);

  CHECK_INT(lm_tensor_clone(p, &cl), LM_OK);
  CHECK(!lm_tensor_is_contiguous(cl));
  for (int d = 0; d < 3; d++) CHECK_INT(lm_tensor_strides(cl)[d], lm_tensor_strides(p)[d]);
  int64_t i[3] = {4, 2, 3};
  CHECK_NEAR(lm_tensor_get(cl, i), lm_tensor_get(p, i), 0);
  lm_tensor_set(cl, i, 999);
  CHECK(lm_tensor_get(p, i) != 999); /* a deep copy */
  CHECK(!lm_tensor_is_shared(cl));

  /* Conversions as C casts: toward zero; saturation and NaN defined. */
  int64_t n6[1] = {6};
  lm_tensor *f = make(LM_F32, 1, n6), *s16 = make(LM_I16, 1, n6), *u8 = make(LM_U8, 1, n6);
  float vals[6] = {-2.7f, 2.7f, 1e6f, -1e6f, NAN, 300.5f};
  memcpy(lm_tensor_data(f), vals, sizeof vals);
  CHECK_INT(lm_tensor_copy(s16, f), LM_OK);
  const int16_t *sv = lm_tensor_data(s16);
  CHECK_INT(sv[0], -2);
  CHECK_INT(sv[1], 2);
  CHECK_INT(sv[2], 32767);
  CHECK_INT(sv[3], -32768);
  CHECK_INT(sv[4], 0);
  CHECK_INT(sv[5], 300);
  CHECK_INT(lm_tensor_copy(u8, s16), LM_OK); /* integer narrowing wraps, as C */
  CHECK_INT(((uint8_t *)lm_tensor_data(u8))[5], 300 % 256);
  CHECK_INT(((uint8_t *)lm_tensor_data(u8))[0], 254);
  lm_tensor *h = make(LM_F16, 1, n6), *back = make(LM_F64, 1, n6);
  CHECK_INT(lm_tensor_copy(h, f), LM_OK);
  CHECK_INT(lm_tensor_copy(back, h), LM_OK);
  const double *bv = lm_tensor_data(back);
  CHECK_NEAR(bv[0], -2.69921875, 0);
  CHECK(isinf(bv[2]));
  CHECK(isnan(bv[4]));
  CHECK_NEAR(bv[5], 300.5, 0);
  int64_t n5[1] = {5};
  lm_tensor *wrong = make(LM_F32, 1, n5);
  CHECK_INT(lm_tensor_copy(wrong, f), LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(E), "(5)");
  lm_tensor_release(wrong);
  lm_tensor_release(h);
  lm_tensor_release(back);
  lm_tensor_release(f);
  lm_tensor_release(s16);
  lm_tensor_release(u8);
  lm_tensor_release(t);
  lm_tensor_release(p);
  lm_tensor_release(c);
  lm_tensor_release(cl);
}

/* Large enough to be split across the compute threads. */
static void test_large_copy(void)
{
  int64_t sh[3] = {64, 80, 96};
  int order[3] = {2, 1, 0};
  lm_tensor *src, *dst = make(LM_F32, 3, sh);
  CHECK_INT(lm_tensor_new_ordered(E, LM_I16, 3, sh, order, LM_CPU, &src), LM_OK);
  int16_t *s = lm_tensor_data(src);
  for (int64_t k = 0; k < lm_tensor_numel(src); k++) s[k] = (int16_t)(k % 2001 - 1000);
  CHECK_INT(lm_tensor_copy(dst, src), LM_OK);
  const float *d = lm_tensor_data(dst);
  int bad = 0;
  for (int64_t x = 0; x < 64; x++)
    for (int64_t y = 0; y < 80; y++)
      for (int64_t z = 0; z < 96; z++) {
        int64_t k = x + 64 * (y + 80 * z);
        if (d[(x * 80 + y) * 96 + z] != (float)(k % 2001 - 1000)) bad++;
      }
  CHECK_INT(bad, 0);
  lm_tensor_release(src);
  lm_tensor_release(dst);

  /* Odd sizes (partial tiles), a 4-d permutation, u8 to f64. */
  int64_t s4[4] = {3, 67, 45, 33};
  int perm[4] = {2, 0, 3, 1};
  lm_tensor *a = make(LM_U8, 4, s4), *p, *c;
  uint8_t *av = lm_tensor_data(a);
  for (int64_t k = 0; k < lm_tensor_numel(a); k++) av[k] = (uint8_t)(k * 31 + 7);
  CHECK_INT(lm_tensor_permute(a, perm, &p), LM_OK);
  const int64_t *ps = lm_tensor_shape(p);
  CHECK_INT(lm_tensor_new(E, LM_F64, 4, ps, LM_CPU, &c), LM_OK);
  CHECK_INT(lm_tensor_copy(c, p), LM_OK);
  const double *cv = lm_tensor_data(c);
  bad = 0;
  int64_t i[4];
  for (i[0] = 0; i[0] < ps[0]; i[0]++)
    for (i[1] = 0; i[1] < ps[1]; i[1]++)
      for (i[2] = 0; i[2] < ps[2]; i[2]++)
        for (i[3] = 0; i[3] < ps[3]; i[3]++) {
          /* p[i] = a[j] with j[perm[d]] = i[d] */
          int64_t j[4];
          for (int q = 0; q < 4; q++) j[perm[q]] = i[q];
          int64_t k = ((j[0] * 67 + j[1]) * 45 + j[2]) * 33 + j[3];
          int64_t o = ((i[0] * ps[1] + i[1]) * ps[2] + i[2]) * ps[3] + i[3];
          if (cv[o] != (double)(uint8_t)(k * 31 + 7)) bad++;
        }
  CHECK_INT(bad, 0);
  lm_tensor_release(a);
  lm_tensor_release(p);
  lm_tensor_release(c);
}

static void test_stats(void)
{
  int64_t n5[1] = {5};
  lm_tensor *t = make(LM_F64, 1, n5);
  double v[5] = {1, 2, NAN, 3, 4};
  memcpy(lm_tensor_data(t), v, sizeof v);
  lm_tensor_stats s;
  CHECK_INT(lm_tensor_stats_compute(t, &s), LM_OK);
  CHECK_INT(s.count, 4);
  CHECK_INT(s.nan_count, 1);
  CHECK_NEAR(s.min, 1, 0);
  CHECK_NEAR(s.max, 4, 0);
  CHECK_NEAR(s.mean, 2.5, 1e-15);
  CHECK_NEAR(s.std, sqrt(1.25), 1e-15);
  lm_tensor_release(t);

  /* A strided uint16 volume over several blocks, against a direct sum. */
  int64_t sh[3] = {50, 60, 70};
  lm_tensor *u = make(LM_U16, 3, sh), *p;
  uint16_t *d = lm_tensor_data(u);
  double sum = 0, sq = 0, mx = 0, mn = 65536;
  int64_t n = lm_tensor_numel(u);
  for (int64_t k = 0; k < n; k++) {
    d[k] = (uint16_t)((k * 7919 + 13) % 65536);
    sum += d[k];
    if (d[k] > mx) mx = d[k];
    if (d[k] < mn) mn = d[k];
  }
  double mean = sum / (double)n;
  for (int64_t k = 0; k < n; k++) sq += (d[k] - mean) * (d[k] - mean);
  int perm[3] = {1, 2, 0};
  CHECK_INT(lm_tensor_permute(u, perm, &p), LM_OK);
  CHECK_INT(lm_tensor_stats_compute(p, &s), LM_OK);
  CHECK_INT(s.count, n);
  CHECK_INT(s.nan_count, 0);
  CHECK_NEAR(s.mean, mean, 1e-9 * mean);
  CHECK_NEAR(s.std, sqrt(sq / (double)n), 1e-9 * s.std);
  CHECK_NEAR(s.min, mn, 0);
  CHECK_NEAR(s.max, mx, 0);
  lm_tensor_release(p);
  lm_tensor_release(u);

  /* All NaN: nothing counted. */
  lm_tensor *a = make(LM_F32, 1, n5);
  for (int k = 0; k < 5; k++) ((float *)lm_tensor_data(a))[k] = NAN;
  CHECK_INT(lm_tensor_stats_compute(a, &s), LM_OK);
  CHECK_INT(s.count, 0);
  CHECK_INT(s.nan_count, 5);
  CHECK(isnan(s.mean));
  lm_tensor_release(a);
}

static void set_cols(lm_tensor *t, const double c0[3], const double c1[3], const double c2[3])
{
  double a[16] = {0};
  for (int r = 0; r < 3; r++) {
    a[r * 4 + 0] = c0[r];
    a[r * 4 + 1] = c1[r];
    a[r * 4 + 2] = c2[r];
  }
  a[3] = 10, a[7] = -20, a[11] = 30, a[15] = 1;
  lm_tensor_set_affine(t, a);
}

static void test_geometry(void)
{
  int64_t sh[3] = {4, 4, 4};
  lm_tensor *t = make(LM_U8, 3, sh);
  char code[4];
  double sp[3];
  CHECK_STR(lm_tensor_orientation(t, code), "RAS");
  const double c30 = cos(M_PI / 6), s30 = 0.5;
  struct {
    double c0[3], c1[3], c2[3];
    const char *code;
  } cases[] = {
    {{-0.8, 0, 0}, {0, -0.8, 0}, {0, 0, 2.5}, "LPS"},
    {{-1, 0, 0}, {0, 0, -1}, {0, 1, 0}, "LIA"},
    {{c30, s30, 0}, {-s30, c30, 0}, {0, 0, 1}, "RAS"},
    {{s30, c30, 0}, {-c30, s30, 0}, {0, 0, 1}, "ALS"},
    {{0, -1, 0}, {0, 0, 1}, {3, 0, 0}, "PSR"},
    {{0.9, 0.5, 0.1}, {-0.6, 0.7, 0.2}, {0.3, -0.2, -2.0}, "RAI"},
    {{0.7, 0.72, 0}, {-0.72, 0.7, 0}, {0, 0, 1}, "ALS"},
    {{1, 0, 0}, {0, 1, 0}, {0, 0, 0}, "RA?"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    set_cols(t, cases[k].c0, cases[k].c1, cases[k].c2);
    CHECK_STR(lm_tensor_orientation(t, code), cases[k].code);
  }
  set_cols(t, cases[0].c0, cases[0].c1, cases[0].c2);
  lm_tensor_spacing(t, sp);
  CHECK_NEAR(sp[0], 0.8, 1e-15);
  CHECK_NEAR(sp[1], 0.8, 1e-15);
  CHECK_NEAR(sp[2], 2.5, 0);
  set_cols(t, cases[7].c0, cases[7].c1, cases[7].c2);
  lm_tensor_spacing(t, sp);
  CHECK_NEAR(sp[2], 1.0, 0); /* MONAI: a zero column gives spacing 1 */
  set_cols(t, (double[3]){3, 4, 0}, (double[3]){0, 1, 0}, (double[3]){0, 0, 1});
  lm_tensor_spacing(t, sp);
  CHECK_NEAR(sp[0], 5, 1e-15);
  lm_tensor_release(t);
}

static void test_trace(void)
{
  int64_t sh[3] = {4, 5, 6};
  lm_tensor *a = make(LM_F32, 3, sh), *b, *c;
  CHECK_INT(lm_tensor_trace_length(a), 0);
  CHECK(lm_tensor_trace_at(a, 0) == NULL);
  CHECK_INT(lm_tensor_trace_push(a, "Spacing", "pixdim=1,1,1", 3, sh, lm_tensor_affine(a)), LM_OK);
  CHECK_INT(lm_tensor_trace_length(a), 1);
  CHECK_INT(lm_tensor_unsqueeze(a, 0, &b), LM_OK);
  CHECK_INT(lm_tensor_trace_length(b), 1);
  CHECK(lm_tensor_trace_at(a, 0) == lm_tensor_trace_at(b, 0)); /* shared entry */
  int64_t sh2[4] = {1, 4, 5, 6};
  CHECK_INT(lm_tensor_trace_push(b, "Crop", "roi=1", 4, sh2, NULL), LM_OK);
  CHECK_INT(lm_tensor_trace_length(b), 2);
  CHECK_INT(lm_tensor_trace_length(a), 1);
  const lm_trace_entry *e0 = lm_tensor_trace_at(b, 0), *e1 = lm_tensor_trace_at(b, 1);
  CHECK_STR(e0->op, "Spacing");
  CHECK_STR(e0->params, "pixdim=1,1,1");
  CHECK_INT(e0->shape[2], 6);
  CHECK_STR(e1->op, "Crop");
  CHECK_INT(e1->ndim, 4);
  CHECK_NEAR(e1->affine[15], 1, 0);
  CHECK_INT(lm_tensor_new(E, LM_F32, 3, sh, LM_CPU, &c), LM_OK);
  lm_tensor_trace_copy(c, b);
  CHECK(lm_tensor_trace_at(c, 1) == e1);
  lm_tensor_trace_pop(c);
  CHECK_INT(lm_tensor_trace_length(c), 1);
  CHECK_INT(lm_tensor_trace_length(b), 2); /* entries never change */
  lm_tensor_release(b); /* c still holds the shared first entry */
  lm_tensor_release(a);
  CHECK_STR(lm_tensor_trace_at(c, 0)->op, "Spacing");
  lm_tensor_trace_pop(c);
  lm_tensor_trace_pop(c);
  CHECK_INT(lm_tensor_trace_length(c), 0);
  lm_tensor_release(c);
}

static int deleted;
static void count_delete(void *data, void *ctx)
{
  CHECK(ctx == &deleted);
  deleted++;
  free(data);
}

static void test_wrap(void)
{
  float *buf = malloc(6 * sizeof *buf);
  for (int k = 0; k < 6; k++) buf[k] = (float)k;
  /* A 3x2 view of the buffer in Fortran order. */
  int64_t sh[2] = {3, 2}, st[2] = {1, 3};
  lm_tensor *t, *v;
  CHECK_INT(lm_tensor_wrap(E, buf, LM_F32, 2, sh, st, LM_CPU, count_delete, &deleted, &t), LM_OK);
  int64_t i[2] = {2, 1};
  CHECK_NEAR(lm_tensor_get(t, i), 5, 0);
  CHECK(lm_tensor_data(t) == buf);
  CHECK_INT(lm_tensor_narrow(t, 0, 1, 2, &v), LM_OK);
  lm_tensor_release(t);
  CHECK_INT(deleted, 0);
  int64_t j[2] = {0, 1};
  CHECK_NEAR(lm_tensor_get(v, j), 4, 0);
  lm_tensor_release(v);
  CHECK_INT(deleted, 1);

  /* Negative strides: data is element (0,0), not the lowest address. */
  static int16_t fixed[4] = {10, 20, 30, 40};
  int64_t n4[1] = {4}, rev[1] = {-1};
  CHECK_INT(lm_tensor_wrap(E, &fixed[3], LM_I16, 1, n4, rev, LM_CPU, NULL, NULL, &t), LM_OK);
  int64_t k3[1] = {3};
  CHECK_NEAR(lm_tensor_get(t, k3), 10, 0);
  lm_tensor *c;
  CHECK_INT(lm_tensor_contiguous(t, &c), LM_OK);
  CHECK_INT(((int16_t *)lm_tensor_data(c))[0], 40);
  lm_tensor_release(c);
  lm_tensor_release(t);
}

static void test_engine_stats_count(void)
{
  lm_engine_stats s0, s1;
  lm_engine_stats_get(E, &s0);
  int64_t sh[1] = {1000};
  lm_tensor *t = make(LM_F64, 1, sh);
  lm_engine_stats_get(E, &s1);
  CHECK_INT(s1.live_tensors, s0.live_tensors + 1);
  CHECK(s1.host_bytes >= s0.host_bytes + 8000);
  CHECK_INT(s1.threads, 2);
  lm_tensor_release(t);
  lm_engine_stats_get(E, &s1);
  CHECK_INT(s1.live_tensors, s0.live_tensors);
  CHECK_INT(s1.host_bytes, s0.host_bytes);
}

int main(void)
{
  E = new_engine();
  RUN(test_dtypes);
  RUN(test_devices);
  RUN(test_half_conversions);
  RUN(test_new_and_shapes);
  RUN(test_views);
  RUN(test_copy_contiguous_clone);
  RUN(test_large_copy);
  RUN(test_stats);
  RUN(test_geometry);
  RUN(test_trace);
  RUN(test_wrap);
  RUN(test_engine_stats_count);
  lm_engine_stats s;
  lm_engine_stats_get(E, &s);
  lm_engine_release(E);
  if (s.live_tensors != 0) printf("# %lld tensors leaked\n", (long long)s.live_tensors);
  TAP_DONE();
}
