/* LoadNifti and SaveNifti through the engine (lm_call): every file kind
 * (.nii, .nii.gz, .hdr/.img, .hdr.gz/.img.gz), tensor shape, strides, layout,
 * affine and results, error messages naming the file, write -> read round
 * trips for every dtype, channel-first and strided inputs, and atomic writes
 * (an unwritable folder, a failure midway). */
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>

#include "lumen.h"
#include "tap.h"
#include "test_nifti_util.h"

static lm_engine *E;

static int load(const char *path, const char *dtype, lm_tensor **out, lm_params **res)
{
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_string(o, "path", path);
  if (dtype) lm_params_set_string(o, "dtype", dtype);
  int n = 1;
  *out = NULL;
  int st = lm_call(E, "LoadNifti", NULL, 0, o, out, &n, res);
  lm_params_free(o);
  return st;
}

static int save(lm_tensor *t, const char *path, const char *dtype)
{
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_string(o, "path", path);
  if (dtype) lm_params_set_string(o, "dtype", dtype);
  lm_tensor *out = NULL;
  int n = 1;
  int st = lm_call(E, "SaveNifti", &t, 1, o, &out, &n, NULL);
  lm_params_free(o);
  if (st >= 0) lm_tensor_release(out);
  return st;
}

static int64_t idx3(int64_t i, int64_t j, int64_t k, int64_t *idx)
{
  idx[0] = i; idx[1] = j; idx[2] = k;
  return i;
}

/* The pattern voxel (i, j, k) of a 3-D tn_image of dims x, y. */
static double pattern(int datatype, int64_t x, int64_t y, int64_t i, int64_t j, int64_t k)
{
  return tn_value(datatype, i + x * (j + y * k));
}

static void write_file(const char *name, const uint8_t *buf, size_t len, bool gz)
{
  char p[512];
  tn_path(p, sizeof p, name);
  if (gz) {
    size_t gl;
    uint8_t *g = tn_gzip(buf, len, &gl);
    tn_write(p, g, gl);
    free(g);
  } else {
    tn_write(p, buf, len);
  }
}

static void check_pattern(lm_tensor *t, int datatype, int64_t x, int64_t y, int64_t z,
                          double slope, double inter)
{
  int64_t idx[3];
  for (int64_t k = 0; k < z; k++)
    for (int64_t j = 0; j < y; j++)
      for (int64_t i = 0; i < x; i++) {
        idx3(i, j, k, idx);
        double want = pattern(datatype, x, y, i, j, k) * slope + inter;
        if (lm_tensor_dtype(t) == LM_F32) want = (float)want;
        double got = lm_tensor_get(t, idx);
        if (got != want) {
          TAP_FAIL("voxel (%lld,%lld,%lld): %.17g != %.17g", (long long)i, (long long)j,
                   (long long)k, got, want);
          return;
        }
      }
}

static void test_load_kinds(void)
{
  tn_spec s = tn_default(4, 5, 4, 3);
  s.big = true;
  s.slope = 2;
  s.inter = -3;
  s.pixdim[1] = 2;
  double srow[12] = {-2, 0, 0, 10, 0, 1, 0, -5, 0, 0, 1, 7};
  memcpy(s.srow, srow, sizeof srow);
  size_t len;
  uint8_t *img = tn_image(&s, 0, &len);
  write_file("a.nii", img, len, false);
  write_file("a.nii.gz", img, len, true);
  /* Pair: header with "ni1" magic, voxels at offset 0 of the .img. */
  s.pair = true;
  s.vox_offset = 0;
  uint8_t hdr[544];
  tn_header(&s, hdr);
  write_file("p.hdr", hdr, 348, false);
  write_file("p.img", img + 352, len - 352, false);
  write_file("q.hdr.gz", hdr, 348, true);
  write_file("q.img.gz", img + 352, len - 352, true);
  const char *names[] = {"a.nii", "a.nii.gz", "p.hdr", "p.img", "q.hdr.gz", "q.img.gz"};
  for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
    char p[512];
    tn_path(p, sizeof p, names[n]);
    lm_tensor *t;
    lm_params *res = NULL;
    int st = load(p, NULL, &t, &res);
    CHECK_INT(st, LM_OK);
    if (st < 0) {
      TAP_FAIL("%s: %s", names[n], lm_errmsg(E));
      continue;
    }
    CHECK_INT(lm_tensor_dtype(t), LM_F32);
    CHECK_INT(lm_tensor_ndim(t), 3);
    CHECK_INT(lm_tensor_shape(t)[0], 5);
    CHECK_INT(lm_tensor_shape(t)[2], 3);
    CHECK_INT(lm_tensor_strides(t)[0], 1);
    CHECK_INT(lm_tensor_strides(t)[1], 5);
    CHECK_INT(lm_tensor_strides(t)[2], 20);
    CHECK_STR(lm_tensor_layout(t), "XYZ");
    const double want_aff[16] = {-2, 0, 0, 10, 0, 1, 0, -5, 0, 0, 1, 7, 0, 0, 0, 1};
    for (int i = 0; i < 16; i++) CHECK_NEAR(lm_tensor_affine(t)[i], want_aff[i], 0);
    check_pattern(t, 4, 5, 4, 3, 2, -3);
    const lm_value *v = res ? lm_params_get(res, "byte_order") : NULL;
    CHECK(v && v->type == LM_VALUE_STRING && strcmp(v->u.string, "big") == 0);
    v = res ? lm_params_get(res, "scl_slope") : NULL;
    CHECK(v && v->type == LM_VALUE_NUMBER && v->u.number == 2);
    v = res ? lm_params_get(res, "pixdim") : NULL;
    CHECK(v && v->type == LM_VALUE_NUMBERS && v->u.numbers.n == 8 && v->u.numbers.v[1] == 2);
    lm_params_free(res);
    lm_tensor_release(t);
    /* native: float64 because the header scales. */
    CHECK_INT(load(p, "native", &t, NULL), LM_OK);
    CHECK_INT(lm_tensor_dtype(t), LM_F64);
    check_pattern(t, 4, 5, 4, 3, 2, -3);
    lm_tensor_release(t);
    /* A half dtype goes through float32. */
    CHECK_INT(load(p, "float16", &t, NULL), LM_OK);
    CHECK_INT(lm_tensor_dtype(t), LM_F16);
    int64_t i0[3] = {1, 0, 0};
    CHECK_NEAR(lm_tensor_get(t, i0), pattern(4, 5, 4, 1, 0, 0) * 2 - 3,
               fabs(pattern(4, 5, 4, 1, 0, 0) * 2) * 1e-3);
    lm_tensor_release(t);
  }
  free(img);
}

/* Native loads of unscaled data keep the stored dtype (zero-copy paths for
 * .nii and .nii.gz, with and without byte swapping). */
static void test_load_native(void)
{
  static const int types[] = {2, 256, 4, 512, 8, 768, 1024, 16, 64};
  static const lm_dtype dts[] = {LM_U8, LM_I8, LM_I16, LM_U16, LM_I32, LM_U32, LM_I64, LM_F32, LM_F64};
  for (int big = 0; big <= 1; big++)
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
      for (int gz = 0; gz <= 1; gz++) {
        tn_spec s = tn_default(types[k], 6, 5, 4);
        s.big = big;
        s.ndim = 4;
        s.dim[3] = 2;
        size_t len;
        uint8_t *img = tn_image(&s, 0, &len);
        write_file(gz ? "n.nii.gz" : "n.nii", img, len, gz);
        free(img);
        char p[512];
        tn_path(p, sizeof p, gz ? "n.nii.gz" : "n.nii");
        lm_tensor *t;
        if (load(p, "native", &t, NULL) != LM_OK) {
          TAP_FAIL("%s", lm_errmsg(E));
          continue;
        }
        CHECK_INT(lm_tensor_dtype(t), dts[k]);
        CHECK_STR(lm_tensor_layout(t), "XYZT");
        CHECK_INT(lm_tensor_strides(t)[3], 120);
        int64_t idx[4];
        for (int64_t n = 0; n < 240; n += 7) {
          idx[0] = n % 6; idx[1] = (n / 6) % 5; idx[2] = (n / 30) % 4; idx[3] = n / 120;
          CHECK_INT(lm_tensor_get(t, idx) == tn_value(types[k], n), 1);
        }
        lm_tensor_release(t);
      }
}

static void test_load_errors(void)
{
  char p[512];
  lm_tensor *t;
  tn_path(p, sizeof p, "missing.nii.gz");
  CHECK_INT(load(p, NULL, &t, NULL), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(E), "missing.nii.gz");
  CHECK_CONTAINS(lm_errmsg(E), "LoadNifti");

  tn_spec s = tn_default(32, 4, 4, 4);
  size_t len;
  uint8_t *img = tn_image(&s, 0, &len);
  write_file("complex.nii.gz", img, len, true);
  free(img);
  tn_path(p, sizeof p, "complex.nii.gz");
  CHECK_INT(load(p, NULL, &t, NULL), LM_EDTYPE);
  CHECK_CONTAINS(lm_errmsg(E), "complex.nii.gz");
  CHECK_CONTAINS(lm_errmsg(E), "datatype 32 (complex64) is not supported");

  s = tn_default(128, 4, 4, 4);
  img = tn_image(&s, 0, &len);
  write_file("rgb.nii", img, len, false);
  free(img);
  tn_path(p, sizeof p, "rgb.nii");
  CHECK_INT(load(p, NULL, &t, NULL), LM_EDTYPE);
  CHECK_CONTAINS(lm_errmsg(E), "datatype 128 (RGB24) is not supported");

  s = tn_default(4, 10, 10, 10);
  img = tn_image(&s, 10, &len);
  write_file("trunc.nii", img, len, false);
  write_file("trunc.nii.gz", img, len, true);
  free(img);
  tn_path(p, sizeof p, "trunc.nii");
  CHECK_INT(load(p, NULL, &t, NULL), LM_EFORMAT);
  CHECK_CONTAINS(lm_errmsg(E), "trunc.nii");
  CHECK_CONTAINS(lm_errmsg(E), "expected 2000 bytes of voxel data after vox_offset 352");
  CHECK_CONTAINS(lm_errmsg(E), "file has 1990");
  tn_path(p, sizeof p, "trunc.nii.gz");
  CHECK_INT(load(p, NULL, &t, NULL), LM_EFORMAT);
  CHECK_CONTAINS(lm_errmsg(E), "decompressed file has 1990");

  /* Pair without its .img. */
  s.pair = true;
  uint8_t hdr[544];
  tn_header(&s, hdr);
  write_file("lonely.hdr", hdr, 348, false);
  tn_path(p, sizeof p, "lonely.hdr");
  CHECK_INT(load(p, NULL, &t, NULL), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(E), "lonely.img");

  tn_path(p, sizeof p, "a.nii");
  CHECK_INT(load(p, "complex", &t, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "dtype");
}

static lm_tensor *make(lm_dtype dt, int nd, const int64_t *shape)
{
  lm_tensor *t;
  int order[8];
  for (int i = 0; i < nd; i++) order[i] = nd - 1 - i;
  if (lm_tensor_new_ordered(E, dt, nd, shape, order, LM_CPU, &t) < 0) return NULL;
  int64_t n = lm_tensor_numel(t);
  int64_t idx[8];
  for (int64_t v = 0; v < n; v++) {
    int64_t r = v;
    for (int d = 0; d < nd; d++) {
      idx[d] = r % shape[d];
      r /= shape[d];
    }
    double x = (double)((v * 37) % 200) - (dt == LM_U8 || dt == LM_U16 || dt == LM_U32 ? 0 : 100);
    if (lm_dtype_is_float(dt)) x += 0.25;
    lm_tensor_set(t, idx, x);
  }
  double a[16] = {0, -1.5, 0, 30, 2, 0, 0, -40, 0, 0, 3, 50, 0, 0, 0, 1};
  lm_tensor_set_affine(t, a);
  return t;
}

static bool same_values(lm_tensor *a, lm_tensor *b)
{
  int nd = lm_tensor_ndim(a);
  if (nd != lm_tensor_ndim(b)) return false;
  for (int i = 0; i < nd; i++)
    if (lm_tensor_shape(a)[i] != lm_tensor_shape(b)[i]) return false;
  int64_t n = lm_tensor_numel(a), idx[8];
  for (int64_t v = 0; v < n; v++) {
    int64_t r = v;
    for (int d = 0; d < nd; d++) {
      idx[d] = r % lm_tensor_shape(a)[d];
      r /= lm_tensor_shape(a)[d];
    }
    if (lm_tensor_get(a, idx) != lm_tensor_get(b, idx)) return false;
  }
  return true;
}

static void test_roundtrip_every_dtype(void)
{
  static const lm_dtype dts[] = {LM_U8, LM_I8, LM_I16, LM_U16, LM_I32, LM_U32, LM_I64, LM_F32, LM_F64};
  int64_t shape[3] = {7, 6, 5};
  for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++)
    for (int gz = 0; gz <= 1; gz++) {
      lm_tensor *t = make(dts[k], 3, shape);
      char p[512];
      tn_path(p, sizeof p, gz ? "rt.nii.gz" : "rt.nii");
      CHECK_INT(save(t, p, NULL), LM_OK);
      lm_tensor *back;
      lm_params *res = NULL;
      CHECK_INT(load(p, "native", &back, &res), LM_OK);
      if (back) {
        CHECK_INT(lm_tensor_dtype(back), dts[k]);
        CHECK(same_values(t, back));
        for (int i = 0; i < 16; i++)
          CHECK_NEAR(lm_tensor_affine(back)[i], lm_tensor_affine(t)[i], 1e-6);
        const lm_value *q = lm_params_get(res, "qform");
        CHECK(q && q->type == LM_VALUE_NUMBERS);
        for (int i = 0; q && i < 16; i++) CHECK_NEAR(q->u.numbers.v[i], lm_tensor_affine(t)[i], 1e-6);
        const lm_value *pd = lm_params_get(res, "pixdim");
        CHECK(pd && fabs(pd->u.numbers.v[1] - 2) < 1e-6 && fabs(pd->u.numbers.v[2] - 1.5) < 1e-6);
      }
      lm_params_free(res);
      lm_tensor_release(back);
      lm_tensor_release(t);
    }
  /* Stored as another dtype. */
  lm_tensor *t = make(LM_F32, 3, shape);
  char p[512];
  tn_path(p, sizeof p, "as_i16.nii.gz");
  CHECK_INT(save(t, p, "int16"), LM_OK);
  lm_tensor *back;
  CHECK_INT(load(p, "native", &back, NULL), LM_OK);
  CHECK_INT(lm_tensor_dtype(back), LM_I16);
  int64_t idx[3] = {1, 0, 0};
  CHECK_NEAR(lm_tensor_get(back, idx), trunc(lm_tensor_get(t, idx)), 0);
  lm_tensor_release(back);
  lm_tensor_release(t);
}

static void test_save_layouts(void)
{
  char p[512];
  lm_tensor *back;
  /* C-contiguous (k fastest) input: read through its strides. */
  int64_t shape[3] = {4, 3, 2};
  lm_tensor *c;
  CHECK_INT(lm_tensor_new(E, LM_I16, 3, shape, LM_CPU, &c), LM_OK);
  int64_t idx[4];
  for (idx[0] = 0; idx[0] < 4; idx[0]++)
    for (idx[1] = 0; idx[1] < 3; idx[1]++)
      for (idx[2] = 0; idx[2] < 2; idx[2]++)
        lm_tensor_set(c, idx, (double)(idx[0] * 100 + idx[1] * 10 + idx[2]));
  tn_path(p, sizeof p, "corder.nii");
  CHECK_INT(save(c, p, NULL), LM_OK);
  CHECK_INT(load(p, "native", &back, NULL), LM_OK);
  CHECK(same_values(c, back));
  lm_tensor_release(back);

  /* Channel first: 2 channels written last, as (X, Y, Z, C). */
  int64_t cs[4] = {2, 4, 3, 2};
  lm_tensor *cf = make(LM_F32, 4, cs);
  lm_tensor_set_layout(cf, "CXYZ");
  tn_path(p, sizeof p, "cf.nii.gz");
  CHECK_INT(save(cf, p, NULL), LM_OK);
  CHECK_INT(load(p, "native", &back, NULL), LM_OK);
  CHECK_INT(lm_tensor_ndim(back), 4);
  CHECK_INT(lm_tensor_shape(back)[0], 4);
  CHECK_INT(lm_tensor_shape(back)[3], 2);
  /* back[x, y, z, c] == cf[c, x, y, z] */
  CHECK_NEAR(lm_tensor_get(back, (int64_t[]){2, 1, 0, 1}), lm_tensor_get(cf, (int64_t[]){1, 2, 1, 0}), 0);
  CHECK_NEAR(lm_tensor_get(back, (int64_t[]){1, 2, 1, 0}), lm_tensor_get(cf, (int64_t[]){0, 1, 2, 1}), 0);
  CHECK(lm_tensor_get(back, (int64_t[]){1, 2, 1, 0}) != lm_tensor_get(back, (int64_t[]){1, 2, 1, 1}));
  lm_tensor_release(back);
  lm_tensor_release(cf);

  /* A single channel is dropped. */
  int64_t one[4] = {1, 4, 3, 2};
  lm_tensor *c1 = make(LM_U8, 4, one);
  lm_tensor_set_layout(c1, "CXYZ");
  tn_path(p, sizeof p, "c1.nii");
  CHECK_INT(save(c1, p, NULL), LM_OK);
  CHECK_INT(load(p, "native", &back, NULL), LM_OK);
  CHECK_INT(lm_tensor_ndim(back), 3);
  CHECK_NEAR(lm_tensor_get(back, (int64_t[]){3, 2, 1}), lm_tensor_get(c1, (int64_t[]){0, 3, 2, 1}), 0);
  lm_tensor_release(back);
  lm_tensor_release(c1);
  lm_tensor_release(c);

  /* float16 is refused with a hint; NIfTI-2 for a dim over 32767. */
  int64_t hs[3] = {2, 2, 2};
  lm_tensor *h;
  CHECK_INT(lm_tensor_zeros(E, LM_F16, 3, hs, LM_CPU, &h), LM_OK);
  tn_path(p, sizeof p, "half.nii");
  CHECK_INT(save(h, p, NULL), LM_EDTYPE);
  CHECK_CONTAINS(lm_errmsg(E), "Cast");
  CHECK_INT(save(h, p, "float32"), LM_OK);
  lm_tensor_release(h);
  int64_t ls[3] = {40000, 1, 2};
  lm_tensor *l = make(LM_U8, 3, ls);
  tn_path(p, sizeof p, "long.nii.gz");
  CHECK_INT(save(l, p, NULL), LM_OK);
  lm_params *res = NULL;
  CHECK_INT(load(p, "native", &back, &res), LM_OK);
  const lm_value *v = lm_params_get(res, "nifti_version");
  CHECK(v && v->type == LM_VALUE_INT && v->u.integer == 2);
  CHECK(same_values(l, back));
  lm_params_free(res);
  lm_tensor_release(back);
  lm_tensor_release(l);
}

static int count_entries(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void test_atomic_writes(void)
{
  int64_t shape[3] = {64, 64, 64};
  lm_tensor *t = make(LM_F32, 3, shape);
  char dir[512], p[600];
  tn_path(dir, sizeof dir, "atomic");
  mkdir(dir, 0755);
  /* A folder that does not exist. */
  snprintf(p, sizeof p, "%s/no/such/dir/x.nii.gz", dir);
  CHECK_INT(save(t, p, NULL), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(E), "x.nii.gz");
  CHECK_INT(count_entries(dir), 0);
  /* A "folder" that is a file. */
  char f[600];
  snprintf(f, sizeof f, "%s/plainfile", dir);
  tn_write(f, "x", 1);
  snprintf(p, sizeof p, "%s/plainfile/x.nii", dir);
  CHECK(save(t, p, NULL) < 0);
  CHECK_INT(count_entries(dir), 1);
  unlink(f);
  /* Failing midway: the file size limit stops the write after 4 KiB (as a
   * full disk would); nothing is left, and an older file is untouched. */
  snprintf(p, sizeof p, "%s/big.nii", dir);
  tn_write(p, "old", 3);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = 4096;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int st = save(t, p, NULL);
  char gzp[600];
  snprintf(gzp, sizeof gzp, "%s/big.nii.gz", dir);
  int st2 = save(t, gzp, "float64");
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, prev);
  CHECK_INT(st, LM_EIO);
  CHECK_INT(st2, LM_EIO);
  CHECK_CONTAINS(lm_errmsg(E), "big.nii.gz");
  CHECK_CONTAINS(lm_errmsg(E), "write failed");
  CHECK_INT(count_entries(dir), 1);
  FILE *fp = fopen(p, "rb");
  char buf[8] = {0};
  CHECK(fp && fread(buf, 1, 8, fp) == 3 && memcmp(buf, "old", 3) == 0);
  if (fp) fclose(fp);
  /* Then it succeeds and replaces the old file. */
  CHECK_INT(save(t, p, NULL), LM_OK);
  CHECK_INT(count_entries(dir), 1);
  lm_tensor *back;
  CHECK_INT(load(p, "native", &back, NULL), LM_OK);
  CHECK(back && same_values(t, back));
  lm_tensor_release(back);
  unlink(p);
  rmdir(dir);
  lm_tensor_release(t);
}

static void cleanup(void)
{
  DIR *d = opendir(tn_tmpdir());
  if (!d) return;
  struct dirent *de;
  char p[1024];
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", tn_tmpdir(), de->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(tn_tmpdir());
}

int main(void)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  if (lm_engine_new(&cfg, &E) != LM_OK) {
    printf("Bail out! engine: %s\n", lm_errmsg(NULL));
    return 1;
  }
  RUN(test_load_kinds);
  RUN(test_load_native);
  RUN(test_load_errors);
  RUN(test_roundtrip_every_dtype);
  RUN(test_save_layouts);
  RUN(test_atomic_writes);
  cleanup();
  lm_engine_release(E);
  TAP_DONE();
}
