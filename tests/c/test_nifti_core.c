/* NIfTI parsing, gzip, conversion and qform math over byte buffers (no
 * engine): every edge case of docs/semantics.md section 1, with values and
 * messages checked. */
#include "nifti_format.h"
#include "tap.h"
#include "test_nifti_util.h"

static const int all_types[] = {2, 256, 4, 512, 8, 768, 1024, 16, 64};
static const lm_dtype all_dtypes[] = {LM_U8, LM_I8, LM_I16, LM_U16, LM_I32,
                                      LM_U32, LM_I64, LM_F32, LM_F64};

/* Read buf as an image; returns the status, data in *out (caller frees). */
static int read_buf(const uint8_t *buf, size_t len, lm_dtype dt, bool native,
                    nifti_header *h, void **out, lm_dtype *odt, nifti_err *e)
{
  memset(e, 0, sizeof *e);
  return nifti_read_memory(buf, len, dt, native, h, out, odt, NULL, e);
}

static double get(const void *p, lm_dtype dt, int64_t i)
{
  switch (dt) {
  case LM_U8: return ((const uint8_t *)p)[i];
  case LM_I8: return ((const int8_t *)p)[i];
  case LM_I16: return ((const int16_t *)p)[i];
  case LM_U16: return ((const uint16_t *)p)[i];
  case LM_I32: return ((const int32_t *)p)[i];
  case LM_U32: return ((const uint32_t *)p)[i];
  case LM_I64: return (double)((const int64_t *)p)[i];
  case LM_F32: return ((const float *)p)[i];
  case LM_F64: return ((const double *)p)[i];
  default: return NAN;
  }
}

/* Every datatype, both byte orders, both versions, raw and gzip: native
 * values exact, float32 values = float32(value). */
static void test_every_dtype_both_orders(void)
{
  for (int v = 1; v <= 2; v++)
    for (int big = 0; big <= 1; big++)
      for (int gz = 0; gz <= 1; gz++)
        for (size_t k = 0; k < sizeof all_types / sizeof all_types[0]; k++) {
          tn_spec s = tn_default(all_types[k], 5, 4, 3);
          s.version = v;
          s.big = big;
          s.vox_offset = v == 1 ? 352 : 544;
          size_t len;
          uint8_t *img = tn_image(&s, 0, &len);
          uint8_t *buf = img;
          if (gz) buf = tn_gzip(img, len, &len);
          nifti_header h;
          nifti_err e;
          void *data;
          lm_dtype odt;
          int st = read_buf(buf, len, LM_F32, true, &h, &data, &odt, &e);
          CHECK_INT(st, LM_OK);
          if (st == LM_OK) {
            CHECK_INT(odt, all_dtypes[k]);
            CHECK_INT(h.version, v);
            CHECK_INT(h.big_endian, big);
            CHECK_INT(h.numel, 60);
            for (int64_t i = 0; i < 60; i++)
              if (get(data, odt, i) != tn_value(s.datatype, i)) {
                TAP_FAIL("v%d big%d gz%d type %d voxel %lld: %g != %g", v, big, gz,
                         s.datatype, (long long)i, get(data, odt, i),
                         tn_value(s.datatype, i));
                break;
              }
            free(data);
          } else {
            TAP_FAIL("%s", e.msg);
          }
          st = read_buf(buf, len, LM_F32, false, &h, &data, &odt, &e);
          CHECK_INT(st, LM_OK);
          if (st == LM_OK) {
            for (int64_t i = 0; i < 60; i++)
              if (((float *)data)[i] != (float)tn_value(s.datatype, i)) {
                TAP_FAIL("float32 of type %d voxel %lld", s.datatype, (long long)i);
                break;
              }
            free(data);
          }
          if (gz) free(buf);
          free(img);
        }
}

static void test_uint64(void)
{
  tn_spec s = tn_default(1280, 4, 1, 1);
  size_t len;
  uint8_t *img = tn_image(&s, 0, &len);
  nifti_header h;
  nifti_err e;
  void *data;
  lm_dtype odt;
  CHECK_INT(read_buf(img, len, LM_F32, true, &h, &data, &odt, &e), LM_EDTYPE);
  CHECK_CONTAINS(e.msg, "uint64");
  CHECK_INT(read_buf(img, len, LM_F64, false, &h, &data, &odt, &e), LM_OK);
  for (int i = 0; i < 4; i++) CHECK_INT(((double *)data)[i], tn_value(1280, i));
  free(data);
  free(img);
}

/* nibabel's scaling rules (semantics.md 1.2). */
static void test_scaling(void)
{
  struct { double slope, inter; bool scaled; } cases[] = {
    {0, 5, false}, {NAN, 5, false}, {INFINITY, 3, false}, {1, 0, false},
    {2, -1, true}, {1, -1024, true}, {0.5, 0, true},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    tn_spec s = tn_default(4, 4, 2, 1);
    s.slope = cases[c].slope;
    s.inter = cases[c].inter;
    size_t len;
    uint8_t *img = tn_image(&s, 0, &len);
    nifti_header h;
    nifti_err e;
    void *data;
    lm_dtype odt;
    CHECK_INT(read_buf(img, len, LM_F32, true, &h, &data, &odt, &e), LM_OK);
    CHECK_INT(h.scaled, cases[c].scaled);
    CHECK_INT(odt, cases[c].scaled ? LM_F64 : LM_I16);
    for (int i = 0; i < 8; i++) {
      double x = tn_value(4, i);
      double want = cases[c].scaled ? x * (double)(float)cases[c].slope + (double)(float)cases[c].inter : x;
      CHECK_INT(get(data, odt, i) == want, 1);
    }
    free(data);
    /* float32 = float32(float64 result), MONAI's cast. */
    CHECK_INT(read_buf(img, len, LM_F32, false, &h, &data, &odt, &e), LM_OK);
    for (int i = 0; i < 8; i++) {
      double x = tn_value(4, i);
      double want = cases[c].scaled ? x * (double)(float)cases[c].slope + (double)(float)cases[c].inter : x;
      CHECK_INT(((float *)data)[i] == (float)want, 1);
    }
    free(data);
    free(img);
  }
  /* Valid slope with a non-finite intercept: nibabel refuses the file. */
  tn_spec s = tn_default(4, 2, 2, 1);
  s.slope = 2;
  s.inter = INFINITY;
  size_t len;
  uint8_t *img = tn_image(&s, 0, &len);
  nifti_header h;
  nifti_err e;
  void *data;
  lm_dtype odt;
  CHECK_INT(read_buf(img, len, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "invalid scl_inter");
  free(img);
  /* Saturating conversion of a scaled value to an integer dtype. */
  s = tn_default(2, 3, 1, 1);
  s.slope = 100;
  s.inter = -1000.5;
  img = tn_image(&s, 0, &len); /* values 0, 37, 74 -> -1000.5, 2699.5, 6399.5 */
  CHECK_INT(read_buf(img, len, LM_I8, false, &h, &data, &odt, &e), LM_OK);
  CHECK_INT(((int8_t *)data)[0], -128);
  CHECK_INT(((int8_t *)data)[1], 127);
  free(data);
  CHECK_INT(read_buf(img, len, LM_I16, false, &h, &data, &odt, &e), LM_OK);
  CHECK_INT(((int16_t *)data)[0], -1000);
  CHECK_INT(((int16_t *)data)[1], 2699);
  free(data);
  free(img);
}

static void check_affine(const double *a, const double *want, double tol)
{
  for (int i = 0; i < 16; i++) CHECK_NEAR(a[i], want[i], tol);
}

static void test_affine_choice(void)
{
  nifti_header h;
  nifti_err e;
  uint8_t hdr[544];
  /* sform wins when its code is non-zero. */
  tn_spec s = tn_default(2, 4, 5, 6);
  double srow[12] = {0, -2, 0, 10, 3, 0, 0, -20, 0, 0, 4, 30};
  memcpy(s.srow, srow, sizeof srow);
  s.qform_code = 1;
  s.sform_code = 2;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_OK);
  double want_s[16] = {0, -2, 0, 10, 3, 0, 0, -20, 0, 0, 4, 30, 0, 0, 0, 1};
  check_affine(h.affine, want_s, 0);
  CHECK_INT(h.affine_source, 2);

  /* qform: diag(1,1,-3) + t as qfac -1, b=c=d=0 (semantics.md). */
  s.sform_code = 0;
  s.pixdim[0] = -1;
  s.pixdim[1] = 1; s.pixdim[2] = 1; s.pixdim[3] = 3;
  s.qoffset[0] = 5; s.qoffset[1] = 6; s.qoffset[2] = 7;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_OK);
  double want_q[16] = {1, 0, 0, 5, 0, 1, 0, 6, 0, 0, -3, 7, 0, 0, 0, 1};
  check_affine(h.affine, want_q, 0);
  CHECK_INT(h.affine_source, 1);

  /* A 90 degree rotation about z: b=c=0, d=sqrt(0.5). */
  s.pixdim[0] = 1;
  s.pixdim[1] = 2; s.pixdim[2] = 3; s.pixdim[3] = 4;
  s.quatern[2] = sqrt(0.5);
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_OK);
  double want_r[16] = {0, -3, 0, 5, 2, 0, 0, 6, 0, 0, 4, 7, 0, 0, 0, 1};
  check_affine(h.affine, want_r, 1e-6);

  /* A quaternion of norm > 1 is refused when the qform is used. */
  s.quatern[0] = 0.9; s.quatern[1] = 0.9;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "quatern");

  /* Neither: nibabel's base affine, x-flipped and centred. */
  s = tn_default(2, 4, 5, 6);
  s.sform_code = 0;
  s.pixdim[1] = 2; s.pixdim[2] = 3; s.pixdim[3] = 4;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_OK);
  double want_b[16] = {-2, 0, 0, 3, 0, 3, 0, -6, 0, 0, 4, -10, 0, 0, 0, 1};
  check_affine(h.affine, want_b, 0);
  CHECK_INT(h.affine_source, 0);

  /* nibabel's load-time fixes: negative pixdim -> abs, 0 -> 1, invalid
   * xform code -> 0. */
  s.pixdim[1] = -2; s.pixdim[2] = 0;
  s.sform_code = 9;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_OK);
  double want_f[16] = {-2, 0, 0, 3, 0, 1, 0, -2, 0, 0, 4, -10, 0, 0, 0, 1};
  check_affine(h.affine, want_f, 0);
}

static void test_header_errors(void)
{
  nifti_header h;
  nifti_err e;
  uint8_t hdr[544] = {0};
  tn_spec s = tn_default(4, 4, 4, 4);

  CHECK_INT(nifti_header_parse(hdr, 100, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "too short");

  tn_header(&s, hdr);
  hdr[0] = 7;
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "sizeof_hdr");

  s.magic = "abc";
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "magic");
  s.magic = NULL;

  s.ndim = 0;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "dim[0] is 0");
  s.ndim = 3;
  tn_header(&s, hdr);
  tn_i16(hdr + 40, 9, false);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "dim[0] is 9");

  s.dim[1] = -3;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "dim[2] is -3");
  s.dim[1] = 4;

  /* Overflowing dims (NIfTI-2 has int64 dims). */
  tn_spec s2 = tn_default(64, (int64_t)1 << 40, (int64_t)1 << 20, 1 << 10);
  s2.version = 2;
  s2.vox_offset = 544;
  tn_header(&s2, hdr);
  CHECK_INT(nifti_header_parse(hdr, 544, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "dims overflow");
  s2.dim[0] = (int64_t)1 << 40;
  s2.dim[1] = (int64_t)1 << 21;
  s2.dim[2] = 1;
  tn_header(&s2, hdr);
  CHECK_INT(nifti_header_parse(hdr, 544, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "dims overflow");

  /* Unsupported and unknown datatypes. */
  struct { int code; const char *msg; int st; } dts[] = {
    {32, "datatype 32 (complex64) is not supported", LM_EDTYPE},
    {128, "datatype 128 (RGB24) is not supported", LM_EDTYPE},
    {2304, "datatype 2304 (RGBA32) is not supported", LM_EDTYPE},
    {1536, "datatype 1536 (float128) is not supported", LM_EDTYPE},
    {1792, "datatype 1792 (complex128) is not supported", LM_EDTYPE},
    {1, "datatype 1 (binary) is not supported", LM_EDTYPE},
    {7, "datatype 7 is not a NIfTI datatype code", LM_EFORMAT},
    {0, "datatype 0 is not a NIfTI datatype code", LM_EFORMAT},
  };
  for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
    s.datatype = dts[i].code;
    tn_header(&s, hdr);
    CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), dts[i].st);
    CHECK_CONTAINS(e.msg, dts[i].msg);
  }
  s.datatype = 4;

  /* vox_offset: 0 < v < 352 refused, 0 read as 352, pairs take any >= 0. */
  s.vox_offset = 300;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "vox_offset 300 too low");
  CHECK_INT(nifti_header_parse(hdr, 352, false, &h, &e), LM_OK);
  CHECK_INT(h.vox_offset, 300);
  s.vox_offset = 0;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_OK);
  CHECK_INT(h.vox_offset, 352);
  s.vox_offset = -16;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "vox_offset");
  s.vox_offset = NAN;
  tn_header(&s, hdr);
  CHECK_INT(nifti_header_parse(hdr, 352, true, &h, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "vox_offset");
}

/* vox_offset 0 in a single file reads the voxels at 352 (niftilib's rule);
 * a larger offset skips extension bytes. */
static void test_vox_offset_data(void)
{
  tn_spec s = tn_default(2, 3, 2, 1);
  s.vox_offset = 400;
  size_t len;
  uint8_t *img = tn_image(&s, 0, &len);
  memset(img + 352, 0xee, 48); /* an "extension" */
  img[348] = 1;
  nifti_header h;
  nifti_err e;
  void *data;
  lm_dtype odt;
  CHECK_INT(read_buf(img, len, LM_F32, true, &h, &data, &odt, &e), LM_OK);
  for (int i = 0; i < 6; i++) CHECK_INT(((uint8_t *)data)[i], tn_value(2, i));
  free(data);
  free(img);
  s.vox_offset = 0;
  img = tn_image(&s, 0, &len);
  CHECK_INT(read_buf(img, len, LM_F32, true, &h, &data, &odt, &e), LM_OK);
  for (int i = 0; i < 6; i++) CHECK_INT(((uint8_t *)data)[i], tn_value(2, i));
  free(data);
  free(img);
  /* A vox_offset that is not a multiple of the voxel size (found by the
   * fuzzer): misaligned voxels, both byte orders. */
  for (int big = 0; big <= 1; big++) {
    s = tn_default(64, 3, 2, 1);
    s.big = big;
    s.vox_offset = 357;
    img = tn_image(&s, 0, &len);
    CHECK_INT(read_buf(img, len, LM_F32, false, &h, &data, &odt, &e), LM_OK);
    for (int i = 0; i < 6; i++) CHECK_INT(((float *)data)[i] == (float)tn_value(64, i), 1);
    free(data);
    CHECK_INT(read_buf(img, len, LM_F32, true, &h, &data, &odt, &e), LM_OK);
    for (int i = 0; i < 6; i++) CHECK_INT(((double *)data)[i] == tn_value(64, i), 1);
    free(data);
    free(img);
  }
}

static void test_truncated(void)
{
  tn_spec s = tn_default(4, 10, 10, 10);
  size_t len;
  uint8_t *img = tn_image(&s, 500, &len);
  nifti_header h;
  nifti_err e;
  void *data;
  lm_dtype odt;
  CHECK_INT(read_buf(img, len, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "expected 2000 bytes of voxel data after vox_offset 352");
  CHECK_CONTAINS(e.msg, "file has 1500");
  CHECK_CONTAINS(e.msg, "dims 10x10x10");
  /* Same through gzip: a complete stream that is too short. */
  size_t gl;
  uint8_t *gz = tn_gzip(img, len, &gl);
  CHECK_INT(read_buf(gz, gl, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "expected 2000 bytes of voxel data after vox_offset 352");
  CHECK_CONTAINS(e.msg, "decompressed file has 1500");
  free(gz);
  free(img);
  /* Dims far larger than the file (would not even fit the gzip ratio). */
  s = tn_default(4, 30000, 30000, 30000);
  img = calloc(1, 544);
  len = tn_header(&s, img);
  gz = tn_gzip(img, len, &gl);
  CHECK_INT(read_buf(gz, gl, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "expected 54000000000000 bytes");
  CHECK_CONTAINS(e.msg, "has 0");
  CHECK_INT(read_buf(img, len, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "file has 0");
  free(gz);
  free(img);
  /* A header cut short. */
  s = tn_default(4, 2, 2, 2);
  img = tn_image(&s, 0, &len);
  CHECK_INT(read_buf(img, 200, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "too short for a NIfTI header (200 bytes");
  free(img);
}

static void test_corrupt_gzip(void)
{
  tn_spec s = tn_default(4, 64, 64, 16);
  size_t len, gl;
  uint8_t *img = tn_image(&s, 0, &len);
  uint8_t *gz = tn_gzip(img, len, &gl);
  nifti_header h;
  nifti_err e;
  void *data;
  lm_dtype odt;
  /* Cut: the stream ends inside the member. */
  CHECK_INT(read_buf(gz, gl / 2, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "truncated gzip");
  /* Garbage in the middle of the deflate data. */
  uint8_t *bad = malloc(gl);
  memcpy(bad, gz, gl);
  for (size_t i = gl / 2; i < gl / 2 + 64; i++) bad[i] ^= 0xa5;
  CHECK_INT(read_buf(bad, gl, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "gzip");
  /* A wrong CRC only. */
  memcpy(bad, gz, gl);
  bad[gl - 8] ^= 1;
  CHECK_INT(read_buf(bad, gl, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "corrupt gzip");
  /* Garbage at the very start of the deflate data: even the header fails. */
  memcpy(bad, gz, gl);
  memset(bad + 10, 0xff, 16);
  CHECK_INT(read_buf(bad, gl, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "gzip");
  /* Bytes after the last member that are not a gzip member. */
  uint8_t *tail = malloc(gl + 8);
  memcpy(tail, gz, gl);
  memset(tail + gl, 0x42, 8);
  len -= 100;
  free(gz);
  gz = tn_gzip(img, len, &gl); /* stream shorter than the dims need */
  memcpy(tail, gz, gl);
  memset(tail + gl, 0x42, 8);
  CHECK_INT(read_buf(tail, gl + 8, LM_F32, false, &h, &data, &odt, &e), LM_EFORMAT);
  CHECK_CONTAINS(e.msg, "unexpected bytes after the gzip member");
  free(tail);
  free(bad);
  free(gz);
  free(img);
}

/* Foreign multi-member gzip (pigz/bgzip style) is read member by member;
 * our own members (with the LM extra field) in "parallel" (here serial). */
static void test_multi_member(void)
{
  tn_spec s = tn_default(16, 50, 40, 30);
  size_t len;
  uint8_t *img = tn_image(&s, 0, &len);
  size_t a_len, b_len;
  uint8_t *a = tn_gzip(img, 1000, &a_len);
  uint8_t *b = tn_gzip(img + 1000, len - 1000, &b_len);
  uint8_t *cat = malloc(a_len + b_len);
  memcpy(cat, a, a_len);
  memcpy(cat + a_len, b, b_len);
  nifti_header h;
  nifti_err e;
  void *data;
  lm_dtype odt;
  CHECK_INT(read_buf(cat, a_len + b_len, LM_F32, true, &h, &data, &odt, &e), LM_OK);
  for (int64_t i = 0; i < h.numel; i++)
    if (((float *)data)[i] != (float)tn_value(16, i)) {
      TAP_FAIL("voxel %lld", (long long)i);
      break;
    }
  free(data);

  nifti_gz_members m;
  CHECK_INT(nifti_gzip_members(img, len, 2, 7000, NULL, &m, &e), LM_OK);
  CHECK_INT(m.count, (int)((len + 6999) / 7000));
  uint8_t *ours = malloc(m.total);
  size_t k = 0;
  for (int i = 0; i < m.count; i++) {
    memcpy(ours + k, m.data[i], m.size[i]);
    k += m.size[i];
  }
  /* zlib (any gzip reader) reads the whole concatenation. */
  uint8_t *back = malloc(len);
  size_t got;
  CHECK_INT(nifti_gunzip_head(ours, m.total, back, len, &got, &e), LM_OK);
  CHECK_INT(got, len);
  CHECK_INT(memcmp(back, img, len), 0);
  /* libdeflate's member-parallel path, including a member cut in the middle
   * of what we want. */
  memset(back, 0, len);
  CHECK_INT(nifti_gunzip(ours, m.total, back, len - 123, &got, NULL, &e), LM_OK);
  CHECK_INT(got, len - 123);
  CHECK_INT(memcmp(back, img, len - 123), 0);
  CHECK_INT(read_buf(ours, m.total, LM_F32, true, &h, &data, &odt, &e), LM_OK);
  CHECK_INT(memcmp(data, img + 352, len - 352), 0);
  free(data);
  /* A corrupt member of ours is reported, not crashed on. */
  ours[m.size[0] + m.size[1] / 2] ^= 0x55;
  CHECK(read_buf(ours, m.total, LM_F32, true, &h, &data, &odt, &e) < 0);
  CHECK_CONTAINS(e.msg, "gzip");
  nifti_gz_members_free(&m);
  free(back);
  free(ours);
  free(cat);
  free(a);
  free(b);
  free(img);
}

static void test_4d_and_2d(void)
{
  tn_spec s = tn_default(4, 3, 4, 5);
  s.ndim = 4;
  s.dim[3] = 2;
  s.pixdim[4] = 2.5;
  size_t len;
  uint8_t *img = tn_image(&s, 0, &len);
  nifti_header h;
  nifti_err e;
  void *data;
  lm_dtype odt;
  CHECK_INT(read_buf(img, len, LM_F32, false, &h, &data, &odt, &e), LM_OK);
  CHECK_INT(h.ndim, 4);
  CHECK_INT(h.shape[3], 2);
  CHECK_INT(h.numel, 120);
  CHECK_NEAR(h.pixdim[4], 2.5, 0);
  CHECK_NEAR(((float *)data)[119], tn_value(4, 119), 0);
  free(data);
  free(img);
  /* 2-D: the base affine pads shape and zooms with 1. */
  s = tn_default(2, 4, 6, 1);
  s.ndim = 2;
  s.sform_code = 0;
  s.pixdim[1] = 2;
  s.pixdim[2] = 3;
  img = tn_image(&s, 0, &len);
  CHECK_INT(read_buf(img, len, LM_F32, false, &h, &data, &odt, &e), LM_OK);
  double want[16] = {-2, 0, 0, 3, 0, 3, 0, -7.5, 0, 0, 1, 0, 0, 0, 0, 1};
  check_affine(h.affine, want, 0);
  free(data);
  free(img);
}

/* set_qform's algorithm: qform from an affine reproduces it (rotations,
 * flips); a sheared affine gets its nearest orthonormal rotation. */
static void test_affine_to_qform(void)
{
  double c = cos(0.3), sn = sin(0.3);
  double rot[16] = {0.8 * c, 0, 2 * sn, -90, 0.8 * sn, 0, -2 * c, 120,
                    0, 1.2, 0, -30, 0, 0, 0, 1};
  double lps[16] = {-1, 0, 0, 10, 0, -1, 0, 20, 0, 0, 3, 30, 0, 0, 0, 1};
  double flip[16] = {2, 0, 0, 0, 0, 3, 0, 0, 0, 0, -4, 0, 0, 0, 0, 1};
  const double *as[] = {rot, lps, flip};
  for (int k = 0; k < 3; k++) {
    double q[3], t[3], qfac, z[3], back[16];
    nifti_err e;
    CHECK_INT(nifti_affine_to_qform(as[k], q, t, &qfac, z, &e), LM_OK);
    double pd[4] = {qfac, z[0], z[1], z[2]};
    CHECK_INT(nifti_qform_affine(q, t, pd, 1e-12, back, &e), LM_OK);
    check_affine(back, as[k], 1e-12);
  }
  /* Shear: the qform keeps the zooms' norms and a proper rotation. */
  double shear[16] = {1, 0, 0, 0, 0, 1, 0.3, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  double q[3], t[3], qfac, z[3], back[16];
  nifti_err e;
  CHECK_INT(nifti_affine_to_qform(shear, q, t, &qfac, z, &e), LM_OK);
  CHECK_NEAR(z[2], sqrt(1.09), 1e-15);
  CHECK_INT(qfac, 1);
  double pd[4] = {qfac, 1, 1, 1};
  CHECK_INT(nifti_qform_affine(q, t, pd, 1e-12, back, &e), LM_OK);
  /* Columns of the rotation are orthonormal. */
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      double d = 0;
      for (int r = 0; r < 3; r++) d += back[r * 4 + i] * back[r * 4 + j];
      CHECK_NEAR(d, i == j ? 1 : 0, 1e-12);
    }
  double singular[16] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  CHECK_INT(nifti_affine_to_qform(singular, q, t, &qfac, z, &e), LM_EINVAL);
}

/* The header SaveNifti writes parses back to the same affine, zooms,
 * codes; NIfTI-2 when a dim exceeds int16. */
static void test_header_build(void)
{
  nifti_write_spec w;
  memset(&w, 0, sizeof w);
  w.ndim = 4;
  w.shape[0] = 7; w.shape[1] = 8; w.shape[2] = 9; w.shape[3] = 2;
  w.datatype = NIFTI_DT_INT16;
  double c = cos(0.2), sn = sin(0.2);
  double a[16] = {-0.9 * c, 0, 2.5 * sn, 12.5, 0, 0.9, 0, -7, 0.9 * sn, 0, 2.5 * c, 3,
                  0, 0, 0, 1};
  memcpy(w.affine, a, sizeof a);
  w.qform_code = 1;
  w.sform_code = 1;
  w.descrip = "lumen test";
  w.pixdim_extra[0] = 2.0;
  uint8_t buf[600];
  nifti_err e;
  CHECK_INT(nifti_header_build(&w, buf, &e), 352);
  nifti_header h;
  CHECK_INT(nifti_header_parse(buf, 352, true, &h, &e), LM_OK);
  CHECK_INT(h.version, 1);
  CHECK_INT(h.sform_code, 1);
  CHECK_INT(h.qform_code, 1);
  CHECK_INT(h.vox_offset, 352);
  CHECK_INT(h.scaled, 0);
  CHECK_STR(h.descrip, "lumen test");
  CHECK_NEAR(h.pixdim[1], 0.9, 1e-6);
  CHECK_NEAR(h.pixdim[3], 2.5, 1e-6);
  CHECK_NEAR(h.pixdim[4], 2.0, 0);
  check_affine(h.affine, a, 1e-6);
  check_affine(h.qform, a, 1e-6);
  w.shape[0] = 40000;
  CHECK_INT(nifti_header_build(&w, buf, &e), 544);
  CHECK_INT(nifti_header_parse(buf, 544, true, &h, &e), LM_OK);
  CHECK_INT(h.version, 2);
  CHECK_INT(h.shape[0], 40000);
  check_affine(h.affine, a, 1e-12);
  check_affine(h.qform, a, 1e-12);
  int code;
  CHECK_INT(nifti_datatype_of_dtype(LM_F16, &code, &e), LM_EDTYPE);
  CHECK_CONTAINS(e.msg, "Cast(img, {dtype='float32'})");
}

/* Conversions saturate and truncate toward zero; NaN gives 0; int64 to
 * float32 rounds once. */
static void test_convert_edges(void)
{
  double src[6] = {300.7, -5.5, NAN, 254.9, -0.9, INFINITY};
  uint8_t u8[6];
  nifti_convert_spec cs = {NIFTI_S_F64, false, false, 1, 0, LM_U8};
  CHECK_INT(nifti_convert(&cs, src, u8, 6, NULL), LM_OK);
  uint8_t want[6] = {255, 0, 0, 254, 0, 255};
  for (int i = 0; i < 6; i++) CHECK_INT(u8[i], want[i]);
  int64_t big[2] = {16777217, INT64_MAX};
  float f[2];
  cs = (nifti_convert_spec){NIFTI_S_I64, false, false, 1, 0, LM_F32};
  CHECK_INT(nifti_convert(&cs, big, f, 2, NULL), LM_OK);
  CHECK_NEAR(f[0], 16777216.0, 0);
  CHECK_NEAR(f[1], 9223372036854775808.0, 0);
  double huge[2] = {1e30, -1e30};
  int64_t i64[2];
  cs = (nifti_convert_spec){NIFTI_S_F64, false, false, 1, 0, LM_I64};
  CHECK_INT(nifti_convert(&cs, huge, i64, 2, NULL), LM_OK);
  CHECK(i64[0] == INT64_MAX && i64[1] == INT64_MIN);
  cs.dt = LM_F16;
  CHECK_INT(nifti_convert(&cs, huge, i64, 2, NULL), LM_EDTYPE);
}

int main(void)
{
  RUN(test_every_dtype_both_orders);
  RUN(test_uint64);
  RUN(test_scaling);
  RUN(test_affine_choice);
  RUN(test_header_errors);
  RUN(test_vox_offset_data);
  RUN(test_truncated);
  RUN(test_corrupt_gzip);
  RUN(test_multi_member);
  RUN(test_4d_and_2d);
  RUN(test_affine_to_qform);
  RUN(test_header_build);
  RUN(test_convert_edges);
  rmdir(tn_tmpdir());
  TAP_DONE();
}
