/* Building the header SaveNifti writes: sform and qform from one affine, as
 * nibabel's set_sform / set_qform (and MONAI's NibabelWriter) do, so that
 * nibabel reads back the same affine and zooms. */
#include <math.h>
#include <string.h>

#include "nifti_format.h"

int nifti_datatype_of_dtype(lm_dtype dt, int *code, nifti_err *err)
{
  switch (dt) {
  case LM_U8: *code = NIFTI_DT_UINT8; return LM_OK;
  case LM_I8: *code = NIFTI_DT_INT8; return LM_OK;
  case LM_I16: *code = NIFTI_DT_INT16; return LM_OK;
  case LM_U16: *code = NIFTI_DT_UINT16; return LM_OK;
  case LM_I32: *code = NIFTI_DT_INT32; return LM_OK;
  case LM_U32: *code = NIFTI_DT_UINT32; return LM_OK;
  case LM_I64: *code = NIFTI_DT_INT64; return LM_OK;
  case LM_F32: *code = NIFTI_DT_FLOAT32; return LM_OK;
  case LM_F64: *code = NIFTI_DT_FLOAT64; return LM_OK;
  case LM_F16:
  case LM_BF16:
    return nifti_fail(err, LM_EDTYPE,
                      "%s cannot be stored in NIfTI: convert it first, e.g. "
                      "Cast(img, {dtype='float32'})",
                      dt == LM_F16 ? "float16" : "bfloat16");
  default:
    return nifti_fail(err, LM_EDTYPE, "dtype %d cannot be stored in NIfTI", (int)dt);
  }
}

static double det3(const double m[9])
{
  return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
         m[2] * (m[3] * m[7] - m[4] * m[6]);
}

/* The orthonormal polar factor of m (det > 0), i.e. P·Qᵀ of its SVD, the
 * nearest rotation: Newton's iteration X <- (X + X⁻ᵀ)/2 converges to it
 * quadratically for any non-singular start. */
static int nearest_rotation(const double m[9], double out[9])
{
  double x[9];
  memcpy(x, m, sizeof x);
  for (int it = 0; it < 100; it++) {
    double d = det3(x);
    if (!(fabs(d) > 1e-300) || !isfinite(d)) return LM_EINVAL;
    /* inverse transpose = cofactor matrix / det */
    double c[9] = {
      (x[4] * x[8] - x[5] * x[7]) / d, -(x[3] * x[8] - x[5] * x[6]) / d,
      (x[3] * x[7] - x[4] * x[6]) / d, -(x[1] * x[8] - x[2] * x[7]) / d,
      (x[0] * x[8] - x[2] * x[6]) / d, -(x[0] * x[7] - x[1] * x[6]) / d,
      (x[1] * x[5] - x[2] * x[4]) / d, -(x[0] * x[5] - x[2] * x[3]) / d,
      (x[0] * x[4] - x[1] * x[3]) / d,
    };
    double delta = 0;
    for (int i = 0; i < 9; i++) {
      double nx = 0.5 * (x[i] + c[i]);
      delta = fmax(delta, fabs(nx - x[i]));
      x[i] = nx;
    }
    if (delta < 1e-15) break;
  }
  memcpy(out, x, sizeof x);
  return LM_OK;
}

/* Rotation matrix to unit quaternion (w, x, y, z) with w >= 0 (Shepperd's
 * method; equal to nibabel's mat2quat for orthonormal input). */
static void rot_to_quat(const double m[9], double q[4])
{
  double m00 = m[0], m01 = m[1], m02 = m[2], m10 = m[3], m11 = m[4], m12 = m[5],
         m20 = m[6], m21 = m[7], m22 = m[8];
  double tr = m00 + m11 + m22, w, x, y, z;
  if (tr > 0) {
    double s = 0.5 / sqrt(tr + 1.0);
    w = 0.25 / s;
    x = (m21 - m12) * s;
    y = (m02 - m20) * s;
    z = (m10 - m01) * s;
  } else if (m00 > m11 && m00 > m22) {
    double s = 2.0 * sqrt(1.0 + m00 - m11 - m22);
    w = (m21 - m12) / s;
    x = 0.25 * s;
    y = (m01 + m10) / s;
    z = (m02 + m20) / s;
  } else if (m11 > m22) {
    double s = 2.0 * sqrt(1.0 + m11 - m00 - m22);
    w = (m02 - m20) / s;
    x = (m01 + m10) / s;
    y = 0.25 * s;
    z = (m12 + m21) / s;
  } else {
    double s = 2.0 * sqrt(1.0 + m22 - m00 - m11);
    w = (m10 - m01) / s;
    x = (m02 + m20) / s;
    y = (m12 + m21) / s;
    z = 0.25 * s;
  }
  if (w < 0) { w = -w; x = -x; y = -y; z = -z; }
  q[0] = w; q[1] = x; q[2] = y; q[3] = z;
}

int nifti_affine_to_qform(const double affine[16], double quatern[3],
                          double qoffset[3], double *qfac, double zooms[3],
                          nifti_err *err)
{
  double R[9];
  for (int i = 0; i < 16; i++)
    if (!isfinite(affine[i]))
      return nifti_fail(err, LM_EINVAL, "affine has a non-finite entry");
  for (int c = 0; c < 3; c++) {
    double n = 0;
    for (int r = 0; r < 3; r++) n += affine[r * 4 + c] * affine[r * 4 + c];
    zooms[c] = sqrt(n);
    if (zooms[c] == 0)
      return nifti_fail(err, LM_EINVAL, "affine column %d is zero (singular affine)", c);
    for (int r = 0; r < 3; r++) R[r * 3 + c] = affine[r * 4 + c] / zooms[c];
  }
  if (det3(R) > 0) {
    *qfac = 1;
  } else {
    *qfac = -1;
    for (int r = 0; r < 3; r++) R[r * 3 + 2] = -R[r * 3 + 2];
  }
  double PR[9];
  if (nearest_rotation(R, PR) != LM_OK)
    return nifti_fail(err, LM_EINVAL, "affine is singular: no qform represents it");
  double q[4];
  rot_to_quat(PR, q);
  for (int i = 0; i < 3; i++) {
    quatern[i] = q[i + 1];
    qoffset[i] = affine[i * 4 + 3];
  }
  return LM_OK;
}

/* --- little-endian field writers --------------------------------------- */

static void wr_uint(uint8_t *p, uint64_t v, int n)
{
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr_i16(uint8_t *p, int v) { wr_uint(p, (uint16_t)(int16_t)v, 2); }
static void wr_i32(uint8_t *p, int32_t v) { wr_uint(p, (uint32_t)v, 4); }
static void wr_i64(uint8_t *p, int64_t v) { wr_uint(p, (uint64_t)v, 8); }
static void wr_f32(uint8_t *p, double v)
{
  float f = (float)v;
  uint32_t u;
  memcpy(&u, &f, 4);
  wr_uint(p, u, 4);
}
static void wr_f64(uint8_t *p, double v)
{
  uint64_t u;
  memcpy(&u, &v, 8);
  wr_uint(p, u, 8);
}

static int bitpix_of(int code)
{
  switch (code) {
  case NIFTI_DT_UINT8: case NIFTI_DT_INT8: return 8;
  case NIFTI_DT_INT16: case NIFTI_DT_UINT16: return 16;
  case NIFTI_DT_INT32: case NIFTI_DT_UINT32: case NIFTI_DT_FLOAT32: return 32;
  default: return 64;
  }
}

int nifti_header_build(const nifti_write_spec *spec, uint8_t *out, nifti_err *err)
{
  if (spec->ndim < 1 || spec->ndim > 7)
    return nifti_fail(err, LM_EINVAL, "%d dims cannot be stored in NIfTI (1..7)",
                      spec->ndim);
  bool v2 = false;
  for (int i = 0; i < spec->ndim; i++) {
    if (spec->shape[i] < 0)
      return nifti_fail(err, LM_EINVAL, "negative dim %lld", (long long)spec->shape[i]);
    if (spec->shape[i] > INT16_MAX) v2 = true;
  }
  double quatern[3], qoffset[3], qfac, zooms[3];
  int st = nifti_affine_to_qform(spec->affine, quatern, qoffset, &qfac, zooms, err);
  if (st < 0) return st;

  double pixdim[8] = {qfac, zooms[0], zooms[1], zooms[2], 1, 1, 1, 1};
  for (int i = 0; i < 4; i++)
    if (spec->pixdim_extra[i] != 0) pixdim[4 + i] = spec->pixdim_extra[i];
  int64_t dim[8] = {spec->ndim, 1, 1, 1, 1, 1, 1, 1};
  for (int i = 0; i < spec->ndim; i++) dim[i + 1] = spec->shape[i];
  char descrip[80] = {0};
  /* descrip is a fixed 80-byte field, NUL-padded, not necessarily terminated. */
  if (spec->descrip) {
    size_t dl = strlen(spec->descrip);
    memcpy(descrip, spec->descrip, dl < sizeof descrip ? dl : sizeof descrip);
  }

  size_t hsize = v2 ? NIFTI2_HDR_SIZE : NIFTI1_HDR_SIZE;
  memset(out, 0, hsize + 4);
  if (!v2) {
    wr_i32(out + 0, NIFTI1_HDR_SIZE);
    out[38] = 'r'; /* "regular", as nibabel writes */
    for (int i = 0; i < 8; i++) wr_i16(out + 40 + 2 * i, (int)dim[i]);
    wr_i16(out + 70, spec->datatype);
    wr_i16(out + 72, bitpix_of(spec->datatype));
    for (int i = 0; i < 8; i++) wr_f32(out + 76 + 4 * i, pixdim[i]);
    wr_f32(out + 108, 352);
    wr_f32(out + 112, 1);
    wr_f32(out + 116, 0);
    out[123] = (uint8_t)spec->xyzt_units;
    memcpy(out + 148, descrip, 80);
    wr_i16(out + 252, spec->qform_code);
    wr_i16(out + 254, spec->sform_code);
    for (int i = 0; i < 3; i++) {
      wr_f32(out + 256 + 4 * i, quatern[i]);
      wr_f32(out + 268 + 4 * i, qoffset[i]);
      for (int j = 0; j < 4; j++) wr_f32(out + 280 + 16 * i + 4 * j, spec->affine[i * 4 + j]);
    }
    memcpy(out + 344, "n+1\0", 4);
  } else {
    wr_i32(out + 0, NIFTI2_HDR_SIZE);
    memcpy(out + 4, "n+2\0\r\n\032\n", 8);
    wr_i16(out + 12, spec->datatype);
    wr_i16(out + 14, bitpix_of(spec->datatype));
    for (int i = 0; i < 8; i++) wr_i64(out + 16 + 8 * i, dim[i]);
    for (int i = 0; i < 8; i++) wr_f64(out + 104 + 8 * i, pixdim[i]);
    wr_i64(out + 168, 544);
    wr_f64(out + 176, 1);
    wr_f64(out + 184, 0);
    memcpy(out + 240, descrip, 80);
    wr_i32(out + 344, spec->qform_code);
    wr_i32(out + 348, spec->sform_code);
    for (int i = 0; i < 3; i++) {
      wr_f64(out + 352 + 8 * i, quatern[i]);
      wr_f64(out + 376 + 8 * i, qoffset[i]);
      for (int j = 0; j < 4; j++) wr_f64(out + 400 + 32 * i + 8 * j, spec->affine[i * 4 + j]);
    }
    wr_i32(out + 500, spec->xyzt_units);
  }
  return (int)(hsize + 4);
}
