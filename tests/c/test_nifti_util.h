/* Test helpers: build NIfTI files byte by byte (any version, byte order,
 * datatype, field value, broken or not), independently of the code under
 * test, so every edge case can be written to a temp folder. */
#ifndef LM_TEST_NIFTI_UTIL_H
#define LM_TEST_NIFTI_UTIL_H
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

typedef struct tn_spec {
  int version;        /* 1 or 2 */
  bool big;           /* big-endian file */
  bool pair;          /* "ni1"/"ni2" magic */
  int ndim;
  int64_t dim[7];
  int datatype;
  double pixdim[8];
  double vox_offset;  /* 0: leave 0 in the header */
  double slope, inter;
  int qform_code, sform_code;
  double quatern[3], qoffset[3], srow[12];
  int xyzt_units;
  const char *descrip;
  const char *magic;  /* override (4 bytes for NIfTI-1) */
} tn_spec;

/* A plain 3-D little-endian NIfTI-1 spec. */
static inline tn_spec tn_default(int datatype, int64_t x, int64_t y, int64_t z)
{
  tn_spec s;
  memset(&s, 0, sizeof s);
  s.version = 1;
  s.ndim = 3;
  s.dim[0] = x; s.dim[1] = y; s.dim[2] = z;
  s.datatype = datatype;
  for (int i = 0; i < 8; i++) s.pixdim[i] = 1;
  s.vox_offset = 352;
  s.slope = 1;
  s.sform_code = 1;
  s.srow[0] = 1; s.srow[5] = 1; s.srow[10] = 1;
  return s;
}

static inline void tn_put(uint8_t *p, uint64_t v, int n, bool big)
{
  for (int i = 0; i < n; i++) p[big ? n - 1 - i : i] = (uint8_t)(v >> (8 * i));
}
static inline void tn_i16(uint8_t *p, int64_t v, bool b) { tn_put(p, (uint16_t)(int16_t)v, 2, b); }
static inline void tn_i32(uint8_t *p, int64_t v, bool b) { tn_put(p, (uint32_t)(int32_t)v, 4, b); }
static inline void tn_i64(uint8_t *p, int64_t v, bool b) { tn_put(p, (uint64_t)v, 8, b); }
static inline void tn_f32(uint8_t *p, double v, bool b)
{
  float f = (float)v;
  uint32_t u;
  memcpy(&u, &f, 4);
  tn_put(p, u, 4, b);
}
static inline void tn_f64(uint8_t *p, double v, bool b)
{
  uint64_t u;
  memcpy(&u, &v, 8);
  tn_put(p, u, 8, b);
}

/* Header (348 or 540 bytes) plus 4 zero extension bytes; returns the size. */
static inline size_t tn_header(const tn_spec *s, uint8_t *out)
{
  bool b = s->big;
  if (s->version == 1) {
    memset(out, 0, 352);
    tn_i32(out, 348, b);
    tn_i16(out + 40, s->ndim, b);
    for (int i = 0; i < 7; i++) tn_i16(out + 42 + 2 * i, i < s->ndim ? s->dim[i] : 1, b);
    tn_i16(out + 70, s->datatype, b);
    for (int i = 0; i < 8; i++) tn_f32(out + 76 + 4 * i, s->pixdim[i], b);
    tn_f32(out + 108, s->vox_offset, b);
    tn_f32(out + 112, s->slope, b);
    tn_f32(out + 116, s->inter, b);
    out[123] = (uint8_t)s->xyzt_units;
    if (s->descrip) memcpy(out + 148, s->descrip, strlen(s->descrip));
    tn_i16(out + 252, s->qform_code, b);
    tn_i16(out + 254, s->sform_code, b);
    for (int i = 0; i < 3; i++) {
      tn_f32(out + 256 + 4 * i, s->quatern[i], b);
      tn_f32(out + 268 + 4 * i, s->qoffset[i], b);
    }
    for (int i = 0; i < 12; i++) tn_f32(out + 280 + 4 * i, s->srow[i], b);
    memcpy(out + 344, s->magic ? s->magic : s->pair ? "ni1" : "n+1", 4);
    return 352;
  }
  memset(out, 0, 544);
  tn_i32(out, 540, b);
  memcpy(out + 4, s->pair ? "ni2\0\r\n\032\n" : "n+2\0\r\n\032\n", 8);
  tn_i16(out + 12, s->datatype, b);
  tn_i64(out + 16, s->ndim, b);
  for (int i = 0; i < 7; i++) tn_i64(out + 24 + 8 * i, i < s->ndim ? s->dim[i] : 1, b);
  for (int i = 0; i < 8; i++) tn_f64(out + 104 + 8 * i, s->pixdim[i], b);
  tn_i64(out + 168, (int64_t)s->vox_offset, b);
  tn_f64(out + 176, s->slope, b);
  tn_f64(out + 184, s->inter, b);
  tn_i32(out + 344, s->qform_code, b);
  tn_i32(out + 348, s->sform_code, b);
  for (int i = 0; i < 3; i++) {
    tn_f64(out + 352 + 8 * i, s->quatern[i], b);
    tn_f64(out + 376 + 8 * i, s->qoffset[i], b);
  }
  for (int i = 0; i < 12; i++) tn_f64(out + 400 + 8 * i, s->srow[i], b);
  tn_i32(out + 500, s->xyzt_units, b);
  return 544;
}

/* Element i of a test pattern for each datatype, as a double (values chosen
 * to cover negatives, large magnitudes and fractions where the type allows). */
static inline double tn_value(int datatype, int64_t i)
{
  switch (datatype) {
  case 2: return (double)((i * 37) % 256);
  case 256: return (double)((i * 37) % 256 - 128);
  case 4: return (double)((i * 7919) % 65536 - 32768);
  case 512: return (double)((i * 7919) % 65536);
  case 8: return (double)((i * 2654435761LL) % 4294967296LL - 2147483648LL);
  case 768: return (double)((i * 2654435761LL) % 4294967296LL);
  case 1024: return (double)(i * 1000003LL - 500000000LL) * 1024.0; /* exact in double */
  case 1280: return (double)(i * 1000003ULL) * 4096.0;
  case 16: return (double)(float)((double)i * 0.37 - 11.0);
  case 64: return (double)i * 0.123456789012345 - 7.0;
  default: return 0;
  }
}

static inline int tn_size(int datatype)
{
  switch (datatype) {
  case 2: case 256: return 1;
  case 4: case 512: return 2;
  case 8: case 768: case 16: return 4;
  case 32: return 8;
  case 128: return 3;
  case 2304: return 4;
  default: return 8;
  }
}

/* Encode v as one voxel of datatype in the given byte order. */
static inline void tn_encode(int datatype, double v, uint8_t *p, bool big)
{
  switch (datatype) {
  case 2: p[0] = (uint8_t)v; break;
  case 256: p[0] = (uint8_t)(int8_t)v; break;
  case 4: tn_i16(p, (int64_t)v, big); break;
  case 512: tn_put(p, (uint16_t)v, 2, big); break;
  case 8: tn_i32(p, (int64_t)v, big); break;
  case 768: tn_put(p, (uint32_t)v, 4, big); break;
  case 1024: tn_i64(p, (int64_t)v, big); break;
  case 1280: tn_put(p, (uint64_t)v, 8, big); break;
  case 16: tn_f32(p, v, big); break;
  case 64: tn_f64(p, v, big); break;
  default: memset(p, 0x5a, (size_t)tn_size(datatype)); break;
  }
}

static inline int64_t tn_numel(const tn_spec *s)
{
  int64_t n = 1;
  for (int i = 0; i < s->ndim; i++) n *= s->dim[i];
  return n;
}

/* The whole single-file image (header, padding to vox_offset, voxels from
 * tn_value); *len set.  drop: bytes removed from the end (truncation). */
static inline uint8_t *tn_image(const tn_spec *s, size_t drop, size_t *len)
{
  uint8_t hdr[544];
  size_t hl = tn_header(s, hdr);
  size_t off = s->vox_offset >= hl ? (size_t)s->vox_offset : hl;
  int64_t n = tn_numel(s);
  size_t vs = (size_t)tn_size(s->datatype);
  size_t total = off + (size_t)n * vs;
  uint8_t *buf = calloc(1, total + 1);
  memcpy(buf, hdr, hl);
  for (int64_t i = 0; i < n; i++)
    tn_encode(s->datatype, tn_value(s->datatype, i), buf + off + (size_t)i * vs, s->big);
  *len = total > drop ? total - drop : 0;
  return buf;
}

/* gzip (one member, zlib) of buf. */
static inline uint8_t *tn_gzip(const uint8_t *buf, size_t len, size_t *out_len)
{
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  deflateInit2(&zs, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
  size_t cap = deflateBound(&zs, (uLong)len) + 64;
  uint8_t *out = malloc(cap);
  zs.next_in = (Bytef *)buf;
  zs.avail_in = (uInt)len;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  deflate(&zs, Z_FINISH);
  *out_len = zs.total_out;
  deflateEnd(&zs);
  return out;
}

static inline int tn_write(const char *path, const void *buf, size_t len)
{
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(buf, 1, len, f);
  fclose(f);
  return w == len ? 0 : -1;
}

/* A fresh temp folder for one test program. */
static inline const char *tn_tmpdir(void)
{
  static char dir[256];
  if (!dir[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/lumen-nifti-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
      perror("mkdtemp");
      exit(1);
    }
  }
  return dir;
}

static inline void tn_path(char *out, size_t n, const char *name)
{
  snprintf(out, n, "%s/%s", tn_tmpdir(), name);
}

#endif
