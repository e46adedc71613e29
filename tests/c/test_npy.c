/* .npy: headers written by hand as numpy writes them (versions 1.0, 2.0,
 * 3.0, both byte orders, bool, Fortran order, 0-d), the header numpy.save
 * would write for each dtype, SaveNpy -> LoadNpy round trips for every
 * dtype in C and Fortran order (no copy: strides kept), conversions, and
 * errors naming the file and the field. */
#include "tap.h"
#include "test_formats_util.h"
#include "npy_format.h"

static lm_engine *E;

/* A .npy file: magic, version, the dict padded to 64 bytes, data. */
static void write_npy(const char *path, int major, const char *dict, const void *data, size_t n)
{
  size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
  size_t total = (pre + dl + 1 + 63) / 64 * 64;
  uint8_t *b = calloc(1, total);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (uint8_t)major;
  size_t hl = total - pre;
  for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (uint8_t)(hl >> (8 * i));
  memcpy(b + pre, dict, dl);
  memset(b + pre + dl, ' ', total - pre - dl - 1);
  b[total - 1] = '\n';
  tf_write(path, b, total, data, n);
  free(b);
}

static void test_header_build(void)
{
  /* Byte for byte what numpy 1.2x writes for np.save of these arrays. */
  uint8_t *h;
  size_t len;
  char msg[256];
  int64_t s2[2] = {3, 4}, s1[1] = {5};
  CHECK_INT(npy_header_build(LM_F32, 2, s2, false, &h, &len, msg, sizeof msg), LM_OK);
  CHECK_INT(len, 128);
  CHECK(memcmp(h, "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, "
                  "'shape': (3, 4), }", 10 + 59) == 0);
  CHECK_INT(h[127], '\n');
  CHECK_INT(h[126], ' ');
  free(h);
  CHECK_INT(npy_header_build(LM_U8, 1, s1, true, &h, &len, msg, sizeof msg), LM_OK);
  CHECK(memcmp(h + 10, "{'descr': '|u1', 'fortran_order': True, 'shape': (5,), }", 56) == 0);
  free(h);
  CHECK_INT(npy_header_build(LM_I64, 0, NULL, false, &h, &len, msg, sizeof msg), LM_OK);
  CHECK(memcmp(h + 10, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }", 55) == 0);
  free(h);
  CHECK_INT(npy_header_build(LM_BF16, 1, s1, false, &h, &len, msg, sizeof msg), LM_EDTYPE);
  CHECK_CONTAINS(msg, "bfloat16");
}

static void test_load_handwritten(void)
{
  char p[512];
  lm_tensor *t;
  lm_params *res = NULL;
  /* Big-endian float64, C order, version 2.0: a LUNA16-style centre list. */
  const double rows[2][4] = {{-100.5, 67.25, -231.75, 5.5}, {12, -3, 40.125, 21}};
  uint8_t be[64];
  for (int i = 0; i < 8; i++) {
    uint64_t u;
    memcpy(&u, &rows[i / 4][i % 4], 8);
    for (int k = 0; k < 8; k++) be[i * 8 + k] = (uint8_t)(u >> (56 - 8 * k));
  }
  write_npy(tf_path(p, sizeof p, "bboxes.npy"), 2,
            "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 4), }", be, sizeof be);
  CHECK_INT(tf_load(E, "LoadNpy", p, NULL, &t, &res), LM_OK);
  if (t) {
    CHECK_INT(lm_tensor_dtype(t), LM_F64);
    CHECK_INT(lm_tensor_shape(t)[0], 2);
    CHECK_INT(lm_tensor_shape(t)[1], 4);
    int64_t idx[2] = {1, 2};
    CHECK_NEAR(lm_tensor_get(t, idx), 40.125, 0);
    idx[0] = 0;
    idx[1] = 0;
    CHECK_NEAR(lm_tensor_get(t, idx), -100.5, 0);
    CHECK_STR(lm_params_get(res, "descr")->u.string, ">f8");
    CHECK_STR(lm_params_get(res, "format_version")->u.string, "2.0");
  }
  lm_params_free(res);
  lm_tensor_release(t);

  /* Fortran-order int16, version 3.0: dim 0 fastest, no copy. */
  int16_t f[24];
  for (int i = 0; i < 24; i++) f[i] = (int16_t)(i - 7);
  write_npy(tf_path(p, sizeof p, "f.npy"), 3,
            "{\"descr\": \"<i2\", \"fortran_order\": True, \"shape\": (2, 3, 4)}", f, sizeof f);
  CHECK_INT(tf_load(E, "LoadNpy", p, NULL, &t, NULL), LM_OK);
  if (t) {
    CHECK_INT(lm_tensor_strides(t)[0], 1);
    CHECK_INT(lm_tensor_strides(t)[2], 6);
    int64_t idx[3] = {1, 2, 3};
    CHECK_NEAR(lm_tensor_get(t, idx), f[1 + 2 * (2 + 3 * 3)], 0);
  }
  lm_tensor_release(t);
  /* Converted on load: float32 (LoadImage's default). */
  CHECK_INT(tf_load(E, "LoadImage", p, NULL, &t, NULL), LM_OK);
  if (t) {
    CHECK_INT(lm_tensor_dtype(t), LM_F32);
    int64_t idx[3] = {1, 0, 3};
    CHECK_NEAR(lm_tensor_get(t, idx), f[1 + 2 * (0 + 3 * 3)], 0);
  }
  lm_tensor_release(t);

  /* bool and a 0-d float16. */
  const uint8_t b[4] = {1, 0, 0, 1};
  write_npy(tf_path(p, sizeof p, "bool.npy"), 1,
            "{'descr': '|b1', 'fortran_order': False, 'shape': (2, 2), }", b, 4);
  CHECK_INT(tf_load(E, "LoadNpy", p, NULL, &t, NULL), LM_OK);
  if (t) {
    CHECK_INT(lm_tensor_dtype(t), LM_U8);
    int64_t idx[2] = {1, 1};
    CHECK_NEAR(lm_tensor_get(t, idx), 1, 0);
  }
  lm_tensor_release(t);
  const uint16_t half = 0x3e00; /* 1.5 */
  write_npy(tf_path(p, sizeof p, "h.npy"), 1,
            "{'descr': '<f2', 'fortran_order': False, 'shape': (), }", &half, 2);
  CHECK_INT(tf_load(E, "LoadNpy", p, "float64", &t, NULL), LM_OK);
  if (t) {
    CHECK_INT(lm_tensor_ndim(t), 0);
    CHECK_NEAR(lm_tensor_get(t, NULL), 1.5, 0);
  }
  lm_tensor_release(t);

  /* uint64 needs a dtype; then it converts. */
  const uint64_t u[2] = {7, 1ull << 40};
  write_npy(tf_path(p, sizeof p, "u64.npy"), 1,
            "{'descr': '<u8', 'fortran_order': False, 'shape': (2,), }", u, sizeof u);
  CHECK_INT(tf_load(E, "LoadNpy", p, NULL, &t, NULL), LM_EDTYPE);
  CHECK_CONTAINS(lm_errmsg(E), "u64.npy: field 'descr': uint64");
  CHECK_INT(tf_load(E, "LoadNpy", p, "int64", &t, NULL), LM_OK);
  if (t) {
    int64_t i1 = 1;
    CHECK_NEAR(lm_tensor_get(t, &i1), 1099511627776.0, 0);
  }
  lm_tensor_release(t);
}

static void test_roundtrip_all(void)
{
  static const lm_dtype dts[] = {LM_U8, LM_I8, LM_I16, LM_U16, LM_I32, LM_U32, LM_I64, LM_F16,
                                 LM_F32, LM_F64};
  const int64_t shape[3] = {4, 3, 5};
  int ok = 0;
  for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++)
    for (int fortran = 0; fortran < 2; fortran++) {
      int order[3] = {fortran ? 2 : 0, 1, fortran ? 0 : 2};
      lm_tensor *t, *r = NULL;
      lm_tensor_new_ordered(E, dts[k], 3, shape, order, LM_CPU, &t);
      int64_t idx[3];
      for (idx[0] = 0; idx[0] < 4; idx[0]++)
        for (idx[1] = 0; idx[1] < 3; idx[1]++)
          for (idx[2] = 0; idx[2] < 5; idx[2]++)
            lm_tensor_set(t, idx, (double)(idx[0] * 15 + idx[1] * 5 + idx[2]) +
                                      (lm_dtype_is_float(dts[k]) ? 0.5 : 0));
      char p[512];
      tf_path(p, sizeof p, "rt.npy");
      lm_params *o;
      lm_params_new(&o);
      lm_params_set_string(o, "path", p);
      CHECK_INT(tf_run(E, "SaveNpy", t, NULL, o, NULL), LM_OK);
      lm_params_free(o);
      /* The header says the tensor's memory order: no copy was made. */
      size_t len;
      uint8_t *bytes = tf_read(p, &len);
      CHECK_CONTAINS((char *)bytes + 10, fortran ? "'fortran_order': True" : "'fortran_order': False");
      free(bytes);
      CHECK_INT(tf_load(E, "LoadNpy", p, NULL, &r, NULL), LM_OK);
      if (!r) {
        lm_tensor_release(t);
        continue;
      }
      CHECK_INT(lm_tensor_dtype(r), dts[k]);
      CHECK_INT(lm_tensor_strides(r)[fortran ? 0 : 2], 1);
      bool same = true;
      for (idx[0] = 0; idx[0] < 4; idx[0]++)
        for (idx[1] = 0; idx[1] < 3; idx[1]++)
          for (idx[2] = 0; idx[2] < 5; idx[2]++)
            same = same && lm_tensor_get(r, idx) == lm_tensor_get(t, idx);
      CHECK(same);
      ok += same;
      lm_tensor_release(r);
      lm_tensor_release(t);
    }
  CHECK_INT(ok, 20);

  /* 8 dims, and a transposed view (neither order) copied to C order. */
  int64_t s8[8] = {2, 1, 2, 1, 2, 1, 2, 3};
  lm_tensor *t8, *r8 = NULL, *tv;
  lm_tensor_new(E, LM_I32, 8, s8, LM_CPU, &t8);
  for (int i = 0; i < 48; i++) ((int32_t *)lm_tensor_data(t8))[i] = i * 3 - 20;
  int perm[8] = {7, 1, 2, 3, 4, 5, 6, 0};
  lm_tensor_permute(t8, perm, &tv);
  char p[512];
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_string(o, "path", tf_path(p, sizeof p, "v.npy"));
  CHECK_INT(tf_run(E, "SaveImage", tv, NULL, o, NULL), LM_OK);
  lm_params_free(o);
  CHECK_INT(tf_load(E, "LoadNpy", p, NULL, &r8, NULL), LM_OK);
  if (r8) {
    CHECK_INT(lm_tensor_ndim(r8), 8);
    CHECK_INT(lm_tensor_shape(r8)[0], 3);
    int64_t idx[8] = {2, 0, 1, 0, 1, 0, 1, 1};
    CHECK_NEAR(lm_tensor_get(r8, idx), lm_tensor_get(tv, idx), 0);
  }
  lm_tensor_release(r8);
  lm_tensor_release(tv);
  lm_tensor_release(t8);
}

static void test_errors(void)
{
  char p[512];
  lm_tensor *t = NULL;
  static const struct { const char *dict; int status; const char *msg; } cases[] = {
    {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", LM_EDTYPE, "object array"},
    {"{'descr': [('a', '<i4'), ('b', '<f8')], 'fortran_order': False, 'shape': (2,), }",
     LM_EDTYPE, "structured dtype"},
    {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", LM_EDTYPE, "complex"},
    {"{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", LM_EDTYPE, "text"},
    {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", LM_EFORMAT, "fortran_order"},
    {"{'descr': '<f4', 'fortran_order': False, }", LM_EFORMAT, "missing key 'shape'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", LM_ESHAPE,
     "more than 8 dims"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", LM_EFORMAT,
     "unexpected key 'extra'"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (100,), }", LM_EFORMAT, "truncated data"},
  };
  const float data[2] = {1, 2};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_npy(tf_path(p, sizeof p, "bad.npy"), 1, cases[i].dict, data, sizeof data);
    CHECK_INT(tf_load(E, "LoadNpy", p, NULL, &t, NULL), cases[i].status);
    CHECK_CONTAINS(lm_errmsg(E), "bad.npy: ");
    CHECK_CONTAINS(lm_errmsg(E), cases[i].msg);
  }
  tf_write(tf_path(p, sizeof p, "magic.npy"), "\x93NUMPX\x01\x00", 8, NULL, 0);
  CHECK_INT(tf_load(E, "LoadNpy", p, NULL, &t, NULL), LM_EFORMAT);
  CHECK_CONTAINS(lm_errmsg(E), "not a .npy file");
  tf_write(tf_path(p, sizeof p, "v4.npy"), "\x93NUMPY\x04\x00\x00\x00\x00\x00", 12, NULL, 0);
  CHECK_INT(tf_load(E, "LoadNpy", p, NULL, &t, NULL), LM_EUNSUPPORTED);
  CHECK_CONTAINS(lm_errmsg(E), "format version 4.0");
  /* A failed save leaves nothing. */
  int before = tf_count_files();
  int64_t s1 = 3;
  lm_tensor *bf;
  lm_tensor_zeros(E, LM_BF16, 1, &s1, LM_CPU, &bf);
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_string(o, "path", tf_path(p, sizeof p, "bf.npy"));
  CHECK_INT(tf_run(E, "SaveNpy", bf, NULL, o, NULL), LM_EDTYPE);
  CHECK_CONTAINS(lm_errmsg(E), "bfloat16 has no NumPy dtype");
  lm_params_set_string(o, "path", "/nonexistent-folder/a.npy");
  lm_params_set_string(o, "dtype", "float32");
  CHECK_INT(tf_run(E, "SaveNpy", bf, NULL, o, NULL), LM_ENOENT);
  lm_params_free(o);
  CHECK_INT(tf_count_files(), before);
  lm_tensor_release(bf);
}

int main(void)
{
  tf_init();
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.threads = 2;
  cfg.no_cuda = true;
  if (lm_engine_new(&cfg, &E) < 0) return 1;
  RUN(test_header_build);
  RUN(test_load_handwritten);
  RUN(test_roundtrip_all);
  RUN(test_errors);
  lm_engine_release(E);
  tf_cleanup();
  TAP_DONE();
}
