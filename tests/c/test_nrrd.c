/* NRRD: the header parser (fields in any order, comments, key/value pairs,
 * CRLF, every type name, spaces and their RAS+ affines, channel axes, one
 * error per field), and LoadNrrd / SaveNrrd through the engine: LUNA16-style
 * gzip LPS files written by hand, write -> read round trips for every dtype,
 * encoding and .nrrd/.nhdr, channel-first tensors, big-endian and ascii
 * data, a single gzip member across chunks, errors naming the file and the
 * field, and no leftovers after a failed write. */
#include <zlib.h>

#include "tap.h"
#include "test_formats_util.h"
#include "test_nifti_util.h" /* tn_gzip: one member, as python's gzip.compress */
#include "nrrd_format.h"
#include "nrrd_ops.h"

static lm_engine *E;

static int parse(const char *text, nrrd_header *h, nifti_err *err)
{
  memset(err, 0, sizeof *err);
  return nrrd_header_parse(text, strlen(text), h, err);
}

static void test_parse_fields(void)
{
  /* Any order, comments, key/value pairs, CRLF line ends. */
  const char *t =
      "NRRD0005\r\n# a comment\r\nspace origin: (-100.5, 20, 30)\r\nendian: big\r\n"
      "sizes: 3 4 5 6\r\nmy key:=my value\r\ndimension: 4\r\ntype: unsigned short int\r\n"
      "kinds: vector domain domain domain\r\nencoding: gz\r\n"
      "space directions: none (0.7,0,0) (0,0.7,0) (0,0,2.5)\r\nspace: LPS\r\n\r\nDATA";
  nrrd_header h;
  nifti_err err;
  CHECK_INT(parse(t, &h, &err), LM_OK);
  CHECK_STR(err.msg, "");
  CHECK_INT(h.version, 5);
  CHECK_INT(h.dim, 4);
  CHECK_INT(h.sizes[0], 3);
  CHECK_INT(h.sizes[3], 6);
  CHECK_INT(h.numel, 360);
  CHECK_INT(h.stype, NIFTI_S_U16);
  CHECK(h.big_endian);
  CHECK_INT(h.encoding, NRRD_ENC_GZIP);
  CHECK_INT(h.channel_axis, 0);
  CHECK(!h.axis_spatial[0] && h.axis_spatial[1] && h.axis_spatial[3]);
  CHECK_INT(h.header_bytes, strlen(t) - 4);
  /* LPS -> RAS: x and y rows negated. */
  const double want[16] = {-0.7, 0, 0, 100.5, 0, -0.7, 0, -20, 0, 0, 2.5, 30, 0, 0, 0, 1};
  for (int i = 0; i < 16; i++) CHECK_NEAR(h.affine[i], want[i], 0);
  CHECK(!signbit(h.affine[1]));

  /* RAS and LAS spaces, spacings without directions, type spellings. */
  CHECK_INT(parse("NRRD0004\ntype: int16_t\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n"
                  "endian: little\nspace: right-anterior-superior\n"
                  "space directions: (0,2,0) (3,0,0) (0,0,4)\nspace origin: (1,2,3)\n\n",
                  &h, &err), LM_OK);
  CHECK_NEAR(h.affine[1], 3, 0);
  CHECK_NEAR(h.affine[4], 2, 0);
  CHECK_NEAR(h.affine[3], 1, 0);
  CHECK_INT(h.channel_axis, -1);
  CHECK_INT(parse("NRRD0004\ntype: double\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n"
                  "endian: little\nspace: left-anterior-superior\n"
                  "space directions: (1,0,0) (0,1,0) (0,0,1)\n\n", &h, &err), LM_OK);
  CHECK_NEAR(h.affine[0], -1, 0);
  CHECK_NEAR(h.affine[5], 1, 0);
  CHECK_INT(parse("NRRD0001\ntype: uchar\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n"
                  "spacings: 0.5 nan 2\n\n", &h, &err), LM_OK);
  CHECK_NEAR(h.affine[0], 0.5, 0);
  CHECK_NEAR(h.affine[5], 1, 0);
  CHECK_NEAR(h.affine[10], 2, 0);
  CHECK_INT(parse("NRRD0004\ntype: float\ndimension: 4\nsizes: 2 3 4 5\nencoding: raw\n"
                  "endian: little\nkinds: domain domain domain time\n\n", &h, &err), LM_OK);
  CHECK_INT(h.channel_axis, -1);
  CHECK(!h.axis_spatial[3]);
  static const struct { const char *name; nifti_stype st; } types[] = {
    {"signed char", NIFTI_S_I8}, {"uint8", NIFTI_S_U8}, {"short", NIFTI_S_I16},
    {"ushort", NIFTI_S_U16}, {"int", NIFTI_S_I32}, {"uint32_t", NIFTI_S_U32},
    {"long long", NIFTI_S_I64}, {"ulonglong", NIFTI_S_U64}, {"float", NIFTI_S_F32},
    {"double", NIFTI_S_F64},
  };
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    char buf[256];
    snprintf(buf, sizeof buf, "NRRD0004\ntype: %s\ndimension: 1\nsizes: 4\nencoding: raw\n"
             "endian: little\n\n", types[i].name);
    CHECK_INT(parse(buf, &h, &err), LM_OK);
    CHECK_INT(h.stype, types[i].st);
  }
}

static void test_parse_errors(void)
{
  static const struct { const char *text; int status; const char *msg; } cases[] = {
    {"NRRX0004\n\n", LM_EFORMAT, "not a NRRD file"},
    {"NRRD0009\n\n", LM_EUNSUPPORTED, "NRRD0009"},
    {"NRRD0004\ntype: short\nsizes: 2\nencoding: raw\nendian: little\n\n", LM_EFORMAT,
     "field 'dimension' is missing"},
    {"NRRD0004\ntype: short\ndimension: 2\nsizes: 2\nencoding: raw\nendian: little\n\n",
     LM_EFORMAT, "field 'sizes': 1 value for dimension 2"},
    {"NRRD0004\ntype: short\ndimension: 1\nsizes: 0\nencoding: raw\nendian: little\n\n",
     LM_EFORMAT, "field 'sizes': axis 0"},
    {"NRRD0004\ntype: quad\ndimension: 1\nsizes: 2\nencoding: raw\n\n", LM_EFORMAT,
     "field 'type': unknown type"},
    {"NRRD0004\ntype: block\ndimension: 1\nsizes: 2\nencoding: raw\n\n", LM_EDTYPE,
     "field 'type'"},
    {"NRRD0004\ntype: short\ndimension: 1\nsizes: 2\nencoding: raw\n\n", LM_EFORMAT,
     "field 'endian' is missing"},
    {"NRRD0004\ntype: short\ndimension: 1\nsizes: 2\nencoding: bzip2\nendian: little\n\n",
     LM_EUNSUPPORTED, "field 'encoding'"},
    {"NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: raw\nspace: scanner-xyz\n\n",
     LM_EUNSUPPORTED, "field 'space'"},
    {"NRRD0004\ntype: uchar\ndimension: 2\nsizes: 2 2\nencoding: raw\nspace: RAS\n"
     "space directions: (1,0,0) (0,1)\n\n", LM_EFORMAT, "field 'space directions': axis 1"},
    {"NRRD0004\ntype: uchar\ndimension: 2\nsizes: 2 2\nencoding: raw\n"
     "space directions: (1,0,0) (0,1,0)\n\n", LM_EFORMAT, "needs field 'space'"},
    {"NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: raw\nspace: RAS\n"
     "space origin: (1,nan,0)\n\n", LM_EFORMAT, "field 'space origin'"},
    {"NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\ntype: uchar\nencoding: raw\n\n",
     LM_EFORMAT, "field 'type' is given twice"},
    {"NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: raw\n", LM_EFORMAT,
     "does not end with an empty line"},
    {"NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: raw\ndata file: LIST\n",
     LM_EUNSUPPORTED, "field 'data file'"},
    {"NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: gzip\nbyte skip: -1\n\n",
     LM_EFORMAT, "field 'byte skip'"},
    {"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n"
     "kinds: domain vector domain\n\n", LM_EUNSUPPORTED, "field 'kinds'"},
    {"NRRD0004\ntype: uchar\ndimension: 9\nsizes: 1 1 1 1 1 1 1 1 1\nencoding: raw\n\n",
     LM_EUNSUPPORTED, "field 'dimension'"},
    {"NRRD0004\nthis is not a field\n\n", LM_EFORMAT, "header line 2"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    nrrd_header h;
    nifti_err err;
    int st = parse(cases[i].text, &h, &err);
    if (st != cases[i].status) printf("# case %zu: %s\n", i, err.msg);
    CHECK_INT(st, cases[i].status);
    CHECK_CONTAINS(err.msg, cases[i].msg);
  }
}

/* A LUNA16 _clean.nrrd-style file: 3-D short, LPS directions, gzip. */
static void test_load_luna_style(void)
{
  enum { X = 5, Y = 4, Z = 3 };
  int16_t v[X * Y * Z];
  for (int i = 0; i < X * Y * Z; i++) v[i] = (int16_t)(i * 37 - 1000);
  size_t glen;
  uint8_t *gz = tn_gzip((const uint8_t *)v, sizeof v, &glen);
  const char *hdr =
      "NRRD0004\n# Complete NRRD file format specification at:\n"
      "# http://teem.sourceforge.net/nrrd/format.html\ntype: short\ndimension: 3\n"
      "space: left-posterior-superior\nsizes: 5 4 3\n"
      "space directions: (0.703125,0,0) (0,0.703125,0) (0,0,2.5)\n"
      "kinds: domain domain domain\nendian: little\nencoding: gzip\n"
      "space origin: (-180.5,-170.2998046875,-312.75)\n\n";
  char p[512];
  tf_write(tf_path(p, sizeof p, "case_clean.nrrd"), hdr, strlen(hdr), gz, glen);
  free(gz);
  lm_tensor *t;
  lm_params *res = NULL;
  CHECK_INT(tf_load(E, "LoadNrrd", p, "native", &t, &res), LM_OK);
  if (!t) return;
  CHECK_INT(lm_tensor_dtype(t), LM_I16);
  CHECK_INT(lm_tensor_ndim(t), 3);
  CHECK_INT(lm_tensor_shape(t)[0], X);
  CHECK_INT(lm_tensor_shape(t)[2], Z);
  CHECK_STR(lm_tensor_layout(t), "XYZ");
  int64_t idx[3] = {4, 1, 2};
  CHECK_NEAR(lm_tensor_get(t, idx), v[4 + X * (1 + Y * 2)], 0);
  const double *A = lm_tensor_affine(t);
  CHECK_NEAR(A[0], -0.703125, 0);
  CHECK_NEAR(A[5], -0.703125, 0);
  CHECK_NEAR(A[10], 2.5, 0);
  CHECK_NEAR(A[3], 180.5, 0);
  CHECK_NEAR(A[7], 170.2998046875, 0);
  CHECK_NEAR(A[11], -312.75, 0);
  char code[4];
  CHECK_STR(lm_tensor_orientation(t, code), "LPS");
  CHECK_STR(lm_params_get(res, "space")->u.string, "LPS");
  CHECK_STR(lm_params_get(res, "encoding")->u.string, "gzip");
  CHECK_STR(lm_params_get(res, "storage_dtype")->u.string, "int16");
  lm_params_free(res);

  /* The default dtype is float32 (MONAI's LoadImage), and LoadImage picks
   * NRRD by the extension. */
  lm_tensor *f;
  CHECK_INT(tf_load(E, "LoadImage", p, NULL, &f, &res), LM_OK);
  if (f) {
    CHECK_INT(lm_tensor_dtype(f), LM_F32);
    CHECK_NEAR(lm_tensor_get(f, idx), v[4 + X * (1 + Y * 2)], 0);
    CHECK_STR(lm_params_get(res, "format")->u.string, "nrrd");
  }
  lm_params_free(res);
  lm_tensor_release(f);
  lm_tensor_release(t);
}

static lm_tensor *pattern_tensor(lm_dtype dt, int nd, const int64_t *shape, const char *layout)
{
  lm_tensor *t;
  int order[LM_MAX_DIMS];
  for (int i = 0; i < nd; i++) order[i] = nd - 1 - i;
  if (lm_tensor_new_ordered(E, dt, nd, shape, order, LM_CPU, &t) < 0) return NULL;
  int64_t n = lm_tensor_numel(t), idx[LM_MAX_DIMS];
  for (int64_t i = 0; i < n; i++) {
    int64_t r = i;
    for (int d = 0; d < nd; d++) {
      idx[d] = r % shape[d];
      r /= shape[d];
    }
    double v = (double)((i * 7919) % 251) - (dt == LM_U8 || dt == LM_U16 || dt == LM_U32 ? 0 : 100);
    if (lm_dtype_is_float(dt)) v += 0.25;
    lm_tensor_set(t, idx, v);
  }
  /* An oblique affine with awkward decimals. */
  const double A[16] = {0.7, 0.1, 0, -100.1, -0.05, 0.69, 0.01, 33.3, 0, 0.02, 2.5, 1e-3, 0, 0, 0, 1};
  lm_tensor_set_affine(t, A);
  lm_tensor_set_layout(t, layout);
  return t;
}

static bool same_values(const lm_tensor *a, const lm_tensor *b)
{
  int nd = lm_tensor_ndim(a);
  if (nd != lm_tensor_ndim(b)) return false;
  for (int d = 0; d < nd; d++)
    if (lm_tensor_shape(a)[d] != lm_tensor_shape(b)[d]) return false;
  int64_t n = lm_tensor_numel(a), idx[LM_MAX_DIMS];
  for (int64_t i = 0; i < n; i++) {
    int64_t r = i;
    for (int d = nd - 1; d >= 0; d--) {
      idx[d] = r % lm_tensor_shape(a)[d];
      r /= lm_tensor_shape(a)[d];
    }
    if (lm_tensor_get(a, idx) != lm_tensor_get(b, idx)) return false;
  }
  return true;
}

static int save(lm_tensor *t, const char *path, const char *encoding, const char *space,
                const char *dtype)
{
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_string(o, "path", path);
  if (encoding) lm_params_set_string(o, "encoding", encoding);
  if (space) lm_params_set_string(o, "space", space);
  if (dtype) lm_params_set_string(o, "dtype", dtype);
  int st = tf_run(E, "SaveNrrd", t, NULL, o, NULL);
  lm_params_free(o);
  return st;
}

static void test_roundtrip_all(void)
{
  static const lm_dtype dts[] = {LM_U8, LM_I8, LM_I16, LM_U16, LM_I32, LM_U32, LM_I64, LM_F32,
                                 LM_F64};
  static const char *const names[] = {"a.nrrd", "b.nhdr"};
  static const char *const encs[] = {"raw", "gzip"};
  static const char *const spaces[] = {"LPS", "RAS"};
  const int64_t shape[3] = {7, 5, 3};
  int n = 0;
  for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++)
    for (int f = 0; f < 2; f++)
      for (int en = 0; en < 2; en++) {
        lm_tensor *t = pattern_tensor(dts[k], 3, shape, "XYZ"), *r = NULL;
        char p[512];
        tf_path(p, sizeof p, names[f]);
        CHECK_INT(save(t, p, encs[en], spaces[(k + en) % 2], NULL), LM_OK);
        CHECK_INT(tf_load(E, "LoadNrrd", p, "native", &r, NULL), LM_OK);
        if (r) {
          CHECK_INT(lm_tensor_dtype(r), dts[k]);
          CHECK(same_values(t, r));
          for (int i = 0; i < 16; i++) CHECK_NEAR(lm_tensor_affine(r)[i], lm_tensor_affine(t)[i], 0);
          n++;
        }
        lm_tensor_release(r);
        lm_tensor_release(t);
      }
  CHECK_INT(n, 36);
  /* .nhdr wrote its data beside it; nothing else is left. */
  char p[512];
  size_t len;
  uint8_t *h = tf_read(tf_path(p, sizeof p, "b.nhdr"), &len);
  CHECK_CONTAINS((char *)h, "data file: b.raw.gz\n");
  free(h);
  CHECK_INT(tf_count_files(), 5); /* case_clean.nrrd, a.nrrd, b.nhdr, b.raw, b.raw.gz */
}

/* Channel-first tensors keep the channel as axis 0 (kind vector); a
 * strided (transposed) input is written in its logical order. */
static void test_channels_and_strides(void)
{
  const int64_t shape[4] = {3, 4, 5, 6};
  lm_tensor *t = pattern_tensor(LM_F32, 4, shape, "CXYZ"), *r = NULL;
  char p[512];
  tf_path(p, sizeof p, "c.nrrd");
  CHECK_INT(save(t, p, NULL, NULL, NULL), LM_OK);
  size_t len;
  uint8_t *text = tf_read(p, &len);
  CHECK_CONTAINS((char *)text, "kinds: vector domain domain domain\n");
  CHECK_CONTAINS((char *)text, "space directions: none (-0.7,0.05,0)");
  CHECK_CONTAINS((char *)text, "encoding: gzip\n");
  free(text);
  CHECK_INT(tf_load(E, "LoadNrrd", p, NULL, &r, NULL), LM_OK);
  if (r) {
    CHECK_STR(lm_tensor_layout(r), "CXYZ");
    CHECK(same_values(t, r));
    CHECK_INT(lm_tensor_strides(r)[0], 1);
    for (int i = 0; i < 16; i++) CHECK_NEAR(lm_tensor_affine(r)[i], lm_tensor_affine(t)[i], 0);
  }
  lm_tensor_release(r);
  lm_tensor *v;
  int perm[4] = {0, 3, 2, 1};
  lm_tensor_permute(t, perm, &v);
  lm_tensor_set_layout(v, "CXYZ");
  CHECK_INT(save(v, p, "raw", NULL, "int16"), LM_OK);
  CHECK_INT(tf_load(E, "LoadNrrd", p, "native", &r, NULL), LM_OK);
  if (r) {
    CHECK_INT(lm_tensor_dtype(r), LM_I16);
    CHECK_INT(lm_tensor_shape(r)[1], 6);
    int64_t idx[4] = {2, 5, 1, 3};
    CHECK_NEAR(lm_tensor_get(r, idx), trunc(lm_tensor_get(v, idx)), 0);
  }
  lm_tensor_release(r);
  lm_tensor_release(v);
  lm_tensor_release(t);
}

/* Big-endian raw data after a line skip, ascii data, a byte skip of -1. */
static void test_byte_orders_and_skips(void)
{
  char p[512];
  const uint8_t be[] = {0x01, 0x02, 0xff, 0xfe, 0x00, 0x10};
  const char *h1 = "NRRD0004\ntype: short\ndimension: 1\nsizes: 3\nendian: big\nencoding: raw\n"
                   "line skip: 1\n\nskip me\n";
  tf_write(tf_path(p, sizeof p, "be.nrrd"), h1, strlen(h1), be, sizeof be);
  lm_tensor *t;
  CHECK_INT(tf_load(E, "LoadNrrd", p, "native", &t, NULL), LM_OK);
  if (t) {
    int64_t i0 = 0, i1 = 1, i2 = 2;
    CHECK_NEAR(lm_tensor_get(t, &i0), 258, 0);
    CHECK_NEAR(lm_tensor_get(t, &i1), -2, 0);
    CHECK_NEAR(lm_tensor_get(t, &i2), 16, 0);
  }
  lm_tensor_release(t);
  const char *h2 = "NRRD0004\ntype: float\ndimension: 2\nsizes: 2 2\nencoding: ascii\n\n"
                   "1.5 -2\n3e2\t4\n";
  tf_write(tf_path(p, sizeof p, "ascii.nrrd"), h2, strlen(h2), NULL, 0);
  CHECK_INT(tf_load(E, "LoadNrrd", p, "float64", &t, NULL), LM_OK);
  if (t) {
    int64_t idx[2] = {0, 1};
    CHECK_NEAR(lm_tensor_get(t, idx), 300, 0);
    idx[0] = 1;
    idx[1] = 0;
    CHECK_NEAR(lm_tensor_get(t, idx), -2, 0);
  }
  lm_tensor_release(t);
  const uint8_t tail[] = {9, 9, 9, 1, 2, 3, 4};
  const char *h3 = "NRRD0004\ntype: uchar\ndimension: 1\nsizes: 4\nencoding: raw\n"
                   "byte skip: -1\n\n";
  tf_write(tf_path(p, sizeof p, "skip.nrrd"), h3, strlen(h3), tail, sizeof tail);
  CHECK_INT(tf_load(E, "LoadNrrd", p, "native", &t, NULL), LM_OK);
  if (t) {
    int64_t i0 = 0;
    CHECK_NEAR(lm_tensor_get(t, &i0), 1, 0);
  }
  lm_tensor_release(t);
}

/* Data over 1 MiB: still one gzip member that zlib inflates whole. */
static void test_single_member_gzip(void)
{
  size_t n = (3u << 20) + 12345;
  uint8_t *in = malloc(n);
  for (size_t i = 0; i < n; i++) in[i] = (uint8_t)((i * 2654435761u) >> 13 & (i % 7 ? 0x0f : 0xff));
  uint8_t *gz;
  size_t glen;
  nifti_err err;
  CHECK_INT(nrrd_gzip_single(in, n, 1, NULL, &gz, &glen, &err), LM_OK);
  uint8_t *out = malloc(n + 16);
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  inflateInit2(&zs, 16 + 15);
  zs.next_in = gz;
  zs.avail_in = (uInt)glen;
  zs.next_out = out;
  zs.avail_out = (uInt)(n + 16);
  CHECK_INT(inflate(&zs, Z_FINISH), Z_STREAM_END);
  CHECK_INT(zs.total_out, n);
  CHECK_INT(zs.avail_in, 0); /* the member ends the stream: nothing after it */
  inflateEnd(&zs);
  CHECK(memcmp(in, out, n) == 0);
  free(gz);
  free(out);
  free(in);
}

static void test_errors(void)
{
  char p[512];
  lm_tensor *t = NULL;
  CHECK_INT(tf_load(E, "LoadNrrd", tf_path(p, sizeof p, "missing.nrrd"), NULL, &t, NULL), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(E), "missing.nrrd");
  const char *h = "NRRD0004\ntype: short\ndimension: 2\nsizes: 4 4\nendian: little\n"
                  "encoding: raw\n\n";
  tf_write(tf_path(p, sizeof p, "short.nrrd"), h, strlen(h), "abcd", 4);
  CHECK_INT(tf_load(E, "LoadNrrd", p, NULL, &t, NULL), LM_EFORMAT);
  CHECK_CONTAINS(lm_errmsg(E), "LoadNrrd");
  CHECK_CONTAINS(lm_errmsg(E), "short.nrrd: truncated data");
  const char *hg = "NRRD0004\ntype: short\ndimension: 2\nsizes: 400 400\nendian: little\n"
                   "encoding: gzip\n\n";
  size_t glen;
  int16_t zeros[64] = {0};
  uint8_t *gz = tn_gzip((const uint8_t *)zeros, sizeof zeros, &glen);
  tf_write(tf_path(p, sizeof p, "shortgz.nrrd"), hg, strlen(hg), gz, glen);
  free(gz);
  CHECK_INT(tf_load(E, "LoadNrrd", p, NULL, &t, NULL), LM_EFORMAT);
  CHECK_CONTAINS(lm_errmsg(E), "truncated data");
  const char *hd = "NRRD0004\ntype: uchar\ndimension: 1\nsizes: 4\nencoding: raw\n"
                   "data file: nowhere.raw\n";
  tf_write(tf_path(p, sizeof p, "det.nhdr"), hd, strlen(hd), NULL, 0);
  CHECK_INT(tf_load(E, "LoadNrrd", p, NULL, &t, NULL), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(E), "field 'data file'");
  CHECK_CONTAINS(lm_errmsg(E), "nowhere.raw");
  CHECK_INT(tf_load(E, "LoadNrrd", p, "complex", &t, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "option dtype");

  /* Writes that fail leave nothing behind. */
  int before = tf_count_files();
  const int64_t shape[3] = {2, 2, 2};
  lm_tensor *h16 = pattern_tensor(LM_F16, 3, shape, "XYZ");
  CHECK_INT(save(h16, tf_path(p, sizeof p, "half.nrrd"), NULL, NULL, NULL), LM_EDTYPE);
  CHECK_CONTAINS(lm_errmsg(E), "float16 has no NRRD type");
  CHECK_INT(save(h16, tf_path(p, sizeof p, "x.nrrd"), "bz2", NULL, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "option encoding");
  CHECK_INT(save(h16, tf_path(p, sizeof p, "x.png"), NULL, NULL, "float32"), LM_EINVAL);
  CHECK_INT(save(h16, "/nonexistent-folder/x.nrrd", NULL, NULL, "float32"), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(E), "/nonexistent-folder/x.nrrd");
  CHECK_INT(tf_count_files(), before);
  lm_tensor_release(h16);
}

int main(void)
{
  tf_init();
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.threads = 2;
  cfg.no_cuda = true;
  if (lm_engine_new(&cfg, &E) < 0) return 1;
  RUN(test_parse_fields);
  RUN(test_parse_errors);
  RUN(test_load_luna_style);
  RUN(test_roundtrip_all);
  RUN(test_channels_and_strides);
  RUN(test_byte_orders_and_skips);
  RUN(test_single_member_gzip);
  RUN(test_errors);
  lm_engine_release(E);
  tf_cleanup();
  TAP_DONE();
}
