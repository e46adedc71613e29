/* NIfTI-1 / NIfTI-2 header parsing and validation, following nibabel (the
 * oracle, docs/semantics.md section 1) field by field, both byte orders. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nifti_format.h"

int nifti_fail(nifti_err *err, int status, const char *fmt, ...)
{
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = status;
  }
  return status;
}

int nifti_par_for(const nifti_par *par, int64_t n, int64_t grain,
                  lm_range_fn body, void *arg)
{
  if (n <= 0) return LM_OK;
  if (par && par->run) return par->run(par->ctx, n, grain, body, arg);
  return body(0, n, arg);
}

void *nifti_scratch_alloc(const nifti_par *par, size_t n, void **handle)
{
  *handle = NULL;
  if (par && par->alloc) return par->alloc(par->ctx, n, handle);
  return malloc(n ? n : 1);
}

void nifti_scratch_free(const nifti_par *par, void *p, void *handle)
{
  if (par && par->alloc) {
    if (handle) par->release(handle);
  } else {
    free(p);
  }
}

/* --- byte order -------------------------------------------------------- */

typedef struct reader {
  const uint8_t *p;
  bool be;
} reader;

static uint64_t rd_uint(const reader *r, size_t off, int nbytes)
{
  uint64_t v = 0;
  for (int i = 0; i < nbytes; i++) {
    int k = r->be ? i : nbytes - 1 - i;
    v = (v << 8) | r->p[off + (size_t)k];
  }
  return v;
}
static int16_t rd_i16(const reader *r, size_t off) { return (int16_t)rd_uint(r, off, 2); }
static int32_t rd_i32(const reader *r, size_t off) { return (int32_t)rd_uint(r, off, 4); }
static int64_t rd_i64(const reader *r, size_t off) { return (int64_t)rd_uint(r, off, 8); }
static double rd_f32(const reader *r, size_t off)
{
  uint32_t u = (uint32_t)rd_uint(r, off, 4);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static double rd_f64(const reader *r, size_t off)
{
  uint64_t u = rd_uint(r, off, 8);
  double d;
  memcpy(&d, &u, 8);
  return d;
}
static void rd_str(const reader *r, size_t off, size_t n, char *out)
{
  memcpy(out, r->p + off, n);
  out[n] = 0;
}

/* --- datatypes ---------------------------------------------------------- */

const char *nifti_datatype_name(int code)
{
  switch (code) {
  case NIFTI_DT_BINARY: return "binary";
  case NIFTI_DT_UINT8: return "uint8";
  case NIFTI_DT_INT16: return "int16";
  case NIFTI_DT_INT32: return "int32";
  case NIFTI_DT_FLOAT32: return "float32";
  case NIFTI_DT_COMPLEX64: return "complex64";
  case NIFTI_DT_FLOAT64: return "float64";
  case NIFTI_DT_RGB24: return "RGB24";
  case NIFTI_DT_INT8: return "int8";
  case NIFTI_DT_UINT16: return "uint16";
  case NIFTI_DT_UINT32: return "uint32";
  case NIFTI_DT_INT64: return "int64";
  case NIFTI_DT_UINT64: return "uint64";
  case NIFTI_DT_FLOAT128: return "float128";
  case NIFTI_DT_COMPLEX128: return "complex128";
  case NIFTI_DT_COMPLEX256: return "complex256";
  case NIFTI_DT_RGBA32: return "RGBA32";
  default: return NULL;
  }
}

int nifti_stype_of_datatype(int code, nifti_stype *st, size_t *size,
                            nifti_err *err)
{
  static const struct { int code; nifti_stype st; size_t size; } map[] = {
    {NIFTI_DT_UINT8, NIFTI_S_U8, 1},   {NIFTI_DT_INT8, NIFTI_S_I8, 1},
    {NIFTI_DT_INT16, NIFTI_S_I16, 2},  {NIFTI_DT_UINT16, NIFTI_S_U16, 2},
    {NIFTI_DT_INT32, NIFTI_S_I32, 4},  {NIFTI_DT_UINT32, NIFTI_S_U32, 4},
    {NIFTI_DT_INT64, NIFTI_S_I64, 8},  {NIFTI_DT_UINT64, NIFTI_S_U64, 8},
    {NIFTI_DT_FLOAT32, NIFTI_S_F32, 4}, {NIFTI_DT_FLOAT64, NIFTI_S_F64, 8},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (map[i].code == code) {
      *st = map[i].st;
      *size = map[i].size;
      return LM_OK;
    }
  const char *name = nifti_datatype_name(code);
  if (name)
    return nifti_fail(err, LM_EDTYPE, "datatype %d (%s) is not supported", code,
                      name);
  return nifti_fail(err, LM_EFORMAT,
                    "datatype %d is not a NIfTI datatype code", code);
}

int nifti_stype_to_dtype(nifti_stype st, lm_dtype *out)
{
  static const int map[NIFTI_S_COUNT] = {
    [NIFTI_S_U8] = LM_U8,   [NIFTI_S_I8] = LM_I8,   [NIFTI_S_I16] = LM_I16,
    [NIFTI_S_U16] = LM_U16, [NIFTI_S_I32] = LM_I32, [NIFTI_S_U32] = LM_U32,
    [NIFTI_S_I64] = LM_I64, [NIFTI_S_U64] = -1,     [NIFTI_S_F32] = LM_F32,
    [NIFTI_S_F64] = LM_F64,
  };
  if ((unsigned)st >= NIFTI_S_COUNT || map[st] < 0) return LM_EDTYPE;
  *out = (lm_dtype)map[st];
  return LM_OK;
}

int nifti_stype_of_dtype(lm_dtype dt, nifti_stype *out)
{
  switch (dt) {
  case LM_U8: *out = NIFTI_S_U8; return LM_OK;
  case LM_I8: *out = NIFTI_S_I8; return LM_OK;
  case LM_I16: *out = NIFTI_S_I16; return LM_OK;
  case LM_U16: *out = NIFTI_S_U16; return LM_OK;
  case LM_I32: *out = NIFTI_S_I32; return LM_OK;
  case LM_U32: *out = NIFTI_S_U32; return LM_OK;
  case LM_I64: *out = NIFTI_S_I64; return LM_OK;
  case LM_F32: *out = NIFTI_S_F32; return LM_OK;
  case LM_F64: *out = NIFTI_S_F64; return LM_OK;
  default: return LM_EDTYPE;
  }
}

int nifti_native_dtype(const nifti_header *h, lm_dtype *out, nifti_err *err)
{
  if (h->scaled) {
    *out = LM_F64;
    return LM_OK;
  }
  if (nifti_stype_to_dtype(h->stype, out) != LM_OK)
    return nifti_fail(err, LM_EDTYPE,
                      "datatype %d (uint64) has no lumen dtype: load it with "
                      "dtype='float64' or 'int64'", h->datatype);
  return LM_OK;
}

/* --- affines ------------------------------------------------------------ */

static void eye4(double m[16])
{
  memset(m, 0, 16 * sizeof m[0]);
  m[0] = m[5] = m[10] = m[15] = 1;
}

/* nibabel quaternions.fillpositive + quat2mat, then R · diag(dx, dy, qfac·dz). */
int nifti_qform_affine(const double quatern[3], const double qoffset[3],
                       const double pixdim[4], double quat_eps, double out[16],
                       nifti_err *err)
{
  double x = quatern[0], y = quatern[1], z = quatern[2];
  double w2 = 1.0 - (x * x + y * y + z * z);
  double w;
  if (!isfinite(w2))
    return nifti_fail(err, LM_EFORMAT, "qform quaternion (%g, %g, %g) is not finite",
                      x, y, z);
  if (w2 < 0) {
    if (w2 < -quat_eps)
      return nifti_fail(err, LM_EFORMAT,
                        "qform quaternion (quatern_b, c, d) = (%g, %g, %g) has "
                        "norm > 1 (1-(b²+c²+d²) = %e)", x, y, z, w2);
    w = 0;
  } else {
    w = sqrt(w2);
  }
  double R[9];
  double nq = w * w + x * x + y * y + z * z;
  if (nq < 2.220446049250313e-16) {
    R[0] = R[4] = R[8] = 1;
    R[1] = R[2] = R[3] = R[5] = R[6] = R[7] = 0;
  } else {
    double s = 2.0 / nq;
    double X = x * s, Y = y * s, Z = z * s;
    double wX = w * X, wY = w * Y, wZ = w * Z;
    double xX = x * X, xY = x * Y, xZ = x * Z;
    double yY = y * Y, yZ = y * Z, zZ = z * Z;
    R[0] = 1.0 - (yY + zZ); R[1] = xY - wZ;         R[2] = xZ + wY;
    R[3] = xY + wZ;         R[4] = 1.0 - (xX + zZ); R[5] = yZ - wX;
    R[6] = xZ - wY;         R[7] = yZ + wX;         R[8] = 1.0 - (xX + yY);
  }
  double qfac = pixdim[0];
  if (qfac != 1 && qfac != -1)
    return nifti_fail(err, LM_EFORMAT, "qfac (pixdim[0]) %g should be 1 or -1", qfac);
  double vox[3] = {pixdim[1], pixdim[2], pixdim[3] * qfac};
  eye4(out);
  for (int r = 0; r < 3; r++) {
    for (int c = 0; c < 3; c++) out[r * 4 + c] = R[r * 3 + c] * vox[c];
    out[r * 4 + 3] = qoffset[r];
  }
  return LM_OK;
}

/* nibabel volumeutils.shape_zoom_affine(shape, zooms, x_flip=True). */
void nifti_base_affine(int ndim, const int64_t *shape, const double *pixdim,
                       double out[16])
{
  double sh[3] = {1, 1, 1}, zo[3] = {1, 1, 1};
  for (int i = 0; i < 3 && i < ndim; i++) {
    sh[i] = (double)shape[i];
    zo[i] = pixdim[i + 1];
  }
  zo[0] = -zo[0];
  eye4(out);
  for (int i = 0; i < 3; i++) {
    out[i * 4 + i] = zo[i];
    out[i * 4 + 3] = -((sh[i] - 1) / 2.0) * zo[i];
  }
}

/* --- parsing ------------------------------------------------------------ */

static const uint8_t magic2_tail[4] = {0x0d, 0x0a, 0x1a, 0x0a};

static bool valid_xform_code(int code) { return code >= 0 && code <= 5; }

int nifti_header_parse(const uint8_t *buf, size_t len, bool single_file,
                       nifti_header *h, nifti_err *err)
{
  memset(h, 0, sizeof *h);
  if (len < NIFTI1_HDR_SIZE)
    return nifti_fail(err, LM_EFORMAT,
                      "too short for a NIfTI header (%zu bytes, need 348)", len);
  reader r = {buf, false};
  int32_t le = rd_i32(&r, 0);
  r.be = true;
  int32_t be = rd_i32(&r, 0);
  if (le == NIFTI1_HDR_SIZE || le == NIFTI2_HDR_SIZE) {
    r.be = false;
    h->version = le == NIFTI1_HDR_SIZE ? 1 : 2;
  } else if (be == NIFTI1_HDR_SIZE || be == NIFTI2_HDR_SIZE) {
    r.be = true;
    h->version = be == NIFTI1_HDR_SIZE ? 1 : 2;
  } else {
    return nifti_fail(err, LM_EFORMAT,
                      "not a NIfTI file: sizeof_hdr is %d (expected 348 or 540)",
                      (int)le);
  }
  h->big_endian = r.be;
  if (h->version == 2 && len < NIFTI2_HDR_SIZE)
    return nifti_fail(err, LM_EFORMAT,
                      "too short for a NIfTI-2 header (%zu bytes, need 540)", len);

  if (h->version == 1) {
    const uint8_t *m = buf + 344;
    if (m[0] != 'n' || (m[1] != '+' && m[1] != 'i') || m[2] != '1' || m[3] != 0)
      return nifti_fail(err, LM_EFORMAT,
                        "bad magic \"%.4s\" at byte 344 (expected \"n+1\" or \"ni1\")",
                        (const char *)m);
    h->pair_magic = m[1] == 'i';
    for (int i = 0; i < 8; i++) h->dim[i] = rd_i16(&r, 40 + 2 * (size_t)i);
    h->intent_p[0] = rd_f32(&r, 56);
    h->intent_p[1] = rd_f32(&r, 60);
    h->intent_p[2] = rd_f32(&r, 64);
    h->intent_code = rd_i16(&r, 68);
    h->datatype = rd_i16(&r, 70);
    h->bitpix = rd_i16(&r, 72);
    h->slice_start = rd_i16(&r, 74);
    for (int i = 0; i < 8; i++) h->pixdim[i] = rd_f32(&r, 76 + 4 * (size_t)i);
    h->vox_offset_raw = rd_f32(&r, 108);
    h->scl_slope = rd_f32(&r, 112);
    h->scl_inter = rd_f32(&r, 116);
    h->slice_end = rd_i16(&r, 120);
    h->slice_code = buf[122];
    h->xyzt_units = buf[123];
    h->cal_max = rd_f32(&r, 124);
    h->cal_min = rd_f32(&r, 128);
    h->slice_duration = rd_f32(&r, 132);
    h->toffset = rd_f32(&r, 136);
    rd_str(&r, 148, 80, h->descrip);
    rd_str(&r, 228, 24, h->aux_file);
    h->qform_code = rd_i16(&r, 252);
    h->sform_code = rd_i16(&r, 254);
    for (int i = 0; i < 3; i++) {
      h->quatern[i] = rd_f32(&r, 256 + 4 * (size_t)i);
      h->qoffset[i] = rd_f32(&r, 268 + 4 * (size_t)i);
      for (int j = 0; j < 4; j++)
        h->srow[i][j] = rd_f32(&r, 280 + 16 * (size_t)i + 4 * (size_t)j);
    }
    rd_str(&r, 328, 16, h->intent_name);
    h->dim_info = buf[39];
  } else {
    const uint8_t *m = buf + 4;
    if (m[0] != 'n' || (m[1] != '+' && m[1] != 'i') || m[2] != '2' || m[3] != 0 ||
        memcmp(m + 4, magic2_tail, 4) != 0)
      return nifti_fail(err, LM_EFORMAT,
                        "bad magic at byte 4 (expected \"n+2\\0\\r\\n\\032\\n\")");
    h->pair_magic = m[1] == 'i';
    h->datatype = rd_i16(&r, 12);
    h->bitpix = rd_i16(&r, 14);
    for (int i = 0; i < 8; i++) h->dim[i] = rd_i64(&r, 16 + 8 * (size_t)i);
    for (int i = 0; i < 3; i++) h->intent_p[i] = rd_f64(&r, 80 + 8 * (size_t)i);
    for (int i = 0; i < 8; i++) h->pixdim[i] = rd_f64(&r, 104 + 8 * (size_t)i);
    int64_t vo = rd_i64(&r, 168);
    h->vox_offset_raw = (double)vo;
    h->scl_slope = rd_f64(&r, 176);
    h->scl_inter = rd_f64(&r, 184);
    h->cal_max = rd_f64(&r, 192);
    h->cal_min = rd_f64(&r, 200);
    h->slice_duration = rd_f64(&r, 208);
    h->toffset = rd_f64(&r, 216);
    h->slice_start = rd_i64(&r, 224);
    h->slice_end = rd_i64(&r, 232);
    rd_str(&r, 240, 80, h->descrip);
    rd_str(&r, 320, 24, h->aux_file);
    h->qform_code = rd_i32(&r, 344);
    h->sform_code = rd_i32(&r, 348);
    for (int i = 0; i < 3; i++) {
      h->quatern[i] = rd_f64(&r, 352 + 8 * (size_t)i);
      h->qoffset[i] = rd_f64(&r, 376 + 8 * (size_t)i);
      for (int j = 0; j < 4; j++)
        h->srow[i][j] = rd_f64(&r, 400 + 32 * (size_t)i + 8 * (size_t)j);
    }
    h->slice_code = rd_i32(&r, 496);
    h->xyzt_units = rd_i32(&r, 500);
    h->intent_code = rd_i32(&r, 504);
    rd_str(&r, 508, 16, h->intent_name);
    h->dim_info = buf[524];
  }

  /* Shape. */
  if (h->dim[0] < 1 || h->dim[0] > 7)
    return nifti_fail(err, LM_EFORMAT, "dim[0] is %lld (must be 1..7)",
                      (long long)h->dim[0]);
  h->ndim = (int)h->dim[0];
  int st = nifti_stype_of_datatype(h->datatype, &h->stype, &h->voxel_bytes, err);
  if (st < 0) return st;
  uint64_t numel = 1;
  for (int i = 0; i < h->ndim; i++) {
    int64_t d = h->dim[i + 1];
    if (d < 0)
      return nifti_fail(err, LM_EFORMAT, "dim[%d] is %lld (must be >= 0)", i + 1,
                        (long long)d);
    h->shape[i] = d;
    if (d != 0 && numel > (uint64_t)INT64_MAX / (uint64_t)d)
      return nifti_fail(err, LM_EFORMAT,
                        "dims overflow: the product of dim[1..%d] exceeds 2^63",
                        h->ndim);
    numel *= (uint64_t)d;
  }
  if (numel > (uint64_t)INT64_MAX / h->voxel_bytes || numel * h->voxel_bytes > SIZE_MAX / 2)
    return nifti_fail(err, LM_EFORMAT,
                      "dims overflow: %llu voxels of %zu bytes do not fit in memory",
                      (unsigned long long)numel, h->voxel_bytes);
  h->numel = (int64_t)numel;
  h->data_bytes = numel * h->voxel_bytes;

  /* Where the voxels start. */
  double vo = h->vox_offset_raw;
  int64_t min_off = h->version == 1 ? 352 : 544;
  if (!isfinite(vo) || vo < 0 || vo > 9.0e15)
    return nifti_fail(err, LM_EFORMAT, "vox_offset %g is invalid", vo);
  int64_t off = (int64_t)vo; /* nibabel: int(vox_offset) */
  if (single_file) {
    /* nibabel reads a 0 offset from byte 0 (garbage); niftilib bumps it to the
     * header size.  We take niftilib's reading. */
    if (off == 0) {
      off = min_off;
    } else if (off < min_off) {
      return nifti_fail(err, LM_EFORMAT,
                        "vox_offset %lld too low for a single-file NIfTI-%d "
                        "(must be 0 or >= %lld)",
                        (long long)off, h->version, (long long)min_off);
    }
  }
  h->vox_offset = off;

  /* Scaling (nibabel Nifti1Header.get_slope_inter). */
  h->slope = 1;
  h->inter = 0;
  if (h->scl_slope != 0 && isfinite(h->scl_slope)) {
    if (!isfinite(h->scl_inter))
      return nifti_fail(err, LM_EFORMAT,
                        "valid scl_slope %g but invalid scl_inter %g",
                        h->scl_slope, h->scl_inter);
    if (!(h->scl_slope == 1 && h->scl_inter == 0)) {
      h->scaled = true;
      h->slope = h->scl_slope;
      h->inter = h->scl_inter;
    }
  }

  /* nibabel's load-time header fixes (check_fix), which the affine sees:
   * pixdim[1..3] zero -> 1 and negative -> abs, qfac not +-1 -> 1, invalid
   * xform codes -> 0. */
  double pd[8];
  memcpy(pd, h->pixdim, sizeof pd);
  for (int i = 1; i <= 3; i++) {
    if (pd[i] == 0) pd[i] = 1;
    else if (pd[i] < 0) pd[i] = -pd[i];
  }
  if (pd[0] != 1 && pd[0] != -1) pd[0] = 1;
  int qcode = valid_xform_code(h->qform_code) ? h->qform_code : 0;
  int scode = valid_xform_code(h->sform_code) ? h->sform_code : 0;

  eye4(h->sform);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) h->sform[i * 4 + j] = h->srow[i][j];
  double eps = h->version == 1 ? 3 * 1.1920928955078125e-07 : 3 * 2.220446049250313e-16;
  nifti_err qerr = {0};
  h->qform_valid =
      nifti_qform_affine(h->quatern, h->qoffset, pd, eps, h->qform, &qerr) == LM_OK;
  if (scode != 0) {
    h->affine_source = 2;
    memcpy(h->affine, h->sform, sizeof h->affine);
  } else if (qcode != 0) {
    if (!h->qform_valid) {
      if (err) *err = qerr;
      return qerr.code;
    }
    h->affine_source = 1;
    memcpy(h->affine, h->qform, sizeof h->affine);
  } else {
    h->affine_source = 0;
    nifti_base_affine(h->ndim, h->shape, pd, h->affine);
  }
  return LM_OK;
}
