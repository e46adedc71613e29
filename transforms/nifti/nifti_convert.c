/* Voxel conversion from a NIfTI storage type (either byte order) to a lumen
 * dtype, with nibabel's scaling.  One loop per (source, destination) pair so
 * the compiler can vectorise the common unswapped, aligned cases; swapped or
 * misaligned voxels (a vox_offset that is not a multiple of the voxel size)
 * are loaded byte-wise. */
#include <math.h>
#include <string.h>

#include "nifti_format.h"

/* y = x*slope + inter must round twice, as numpy does, never fused. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_BIG_ENDIAN 1
#else
#define HOST_BIG_ENDIAN 0
#endif

/* --- loads with optional byte swap ------------------------------------- */

#define DEF_LOAD(SN, S, U, BSWAP)                                   \
  static inline S load_##SN(const uint8_t *p, bool swap)            \
  {                                                                 \
    U u;                                                            \
    memcpy(&u, p, sizeof u);                                        \
    if (swap) u = BSWAP(u);                                         \
    S x;                                                            \
    memcpy(&x, &u, sizeof x);                                       \
    return x;                                                       \
  }
#define NOSWAP(u) (u)
DEF_LOAD(u8, uint8_t, uint8_t, NOSWAP)
DEF_LOAD(i8, int8_t, uint8_t, NOSWAP)
DEF_LOAD(i16, int16_t, uint16_t, __builtin_bswap16)
DEF_LOAD(u16, uint16_t, uint16_t, __builtin_bswap16)
DEF_LOAD(i32, int32_t, uint32_t, __builtin_bswap32)
DEF_LOAD(u32, uint32_t, uint32_t, __builtin_bswap32)
DEF_LOAD(i64, int64_t, uint64_t, __builtin_bswap64)
DEF_LOAD(u64, uint64_t, uint64_t, __builtin_bswap64)
DEF_LOAD(f32, float, uint32_t, __builtin_bswap32)
DEF_LOAD(f64, double, uint64_t, __builtin_bswap64)

/* --- saturating conversions to integer destinations -------------------- */

#define DEF_SAT(D, DMIN, DMAX)                                               \
  static inline D sat_i64_##D(int64_t v)                                     \
  {                                                                          \
    return v < (int64_t)(DMIN) ? (D)(DMIN) : v > (int64_t)(DMAX) ? (D)(DMAX) \
                                                                 : (D)v;     \
  }                                                                          \
  static inline D sat_u64_##D(uint64_t v)                                    \
  {                                                                          \
    return v > (uint64_t)(DMAX) ? (D)(DMAX) : (D)v;                          \
  }                                                                          \
  static inline D sat_dbl_##D(double v)                                      \
  {                                                                          \
    if (v != v) return 0;                                                    \
    if (v <= (double)(DMIN)) return (D)(DMIN);                               \
    if (v >= (double)(DMAX)) return (D)(DMAX);                               \
    return (D)v;                                                             \
  }
DEF_SAT(uint8_t, 0, UINT8_MAX)
DEF_SAT(int8_t, INT8_MIN, INT8_MAX)
DEF_SAT(int16_t, INT16_MIN, INT16_MAX)
DEF_SAT(uint16_t, 0, UINT16_MAX)
DEF_SAT(int32_t, INT32_MIN, INT32_MAX)
DEF_SAT(uint32_t, 0, UINT32_MAX)
static inline int64_t sat_i64_int64_t(int64_t v) { return v; }
static inline int64_t sat_u64_int64_t(uint64_t v)
{
  return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}
static inline int64_t sat_dbl_int64_t(double v)
{
  if (v != v) return 0;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  if (v >= 9223372036854775808.0) return INT64_MAX;
  return (int64_t)v;
}

/* Source kind x destination kind. */
#define CV_TO_FLOAT(D, x) ((D)(x))
#define CV_SIGNED(D, x) sat_i64_##D((int64_t)(x))
#define CV_UNSIGNED(D, x) sat_u64_##D((uint64_t)(x))
#define CV_FLOAT(D, x) sat_dbl_##D((double)(x))
#define FD_FLOAT(D, v) ((D)(v))
#define FD_INT(D, v) sat_dbl_##D(v)

typedef void (*conv_fn)(const void *src, void *dst, int64_t b, int64_t e,
                        const nifti_convert_spec *cs);

#define DEF_CONV(SN, S, DN, D, CV, FD)                                        \
  static void conv_##SN##_##DN(const void *srcv, void *dstv, int64_t b,       \
                               int64_t e, const nifti_convert_spec *cs)       \
  {                                                                           \
    D *dst = (D *)dstv;                                                       \
    const double slope = cs->slope, inter = cs->inter;                        \
    if (!cs->swap && (uintptr_t)srcv % _Alignof(S) == 0) {                   \
      const S *src = (const S *)srcv;                                         \
      if (!cs->scaled) {                                                      \
        for (int64_t i = b; i < e; i++) dst[i] = CV(D, src[i]);               \
      } else {                                                                \
        for (int64_t i = b; i < e; i++) {                                     \
          double v = (double)src[i];                                          \
          if (slope != 1.0) v = v * slope;                                    \
          if (inter != 0.0) v = v + inter;                                    \
          dst[i] = FD(D, v);                                                  \
        }                                                                     \
      }                                                                       \
      return;                                                                 \
    }                                                                         \
    const uint8_t *p = (const uint8_t *)srcv;                                 \
    for (int64_t i = b; i < e; i++) {                                         \
      S x = load_##SN(p + (size_t)i * sizeof(S), cs->swap);                   \
      if (cs->scaled) {                                                       \
        double v = (double)x;                                                 \
        if (slope != 1.0) v = v * slope;                                      \
        if (inter != 0.0) v = v + inter;                                      \
        dst[i] = FD(D, v);                                                    \
      } else {                                                                \
        dst[i] = CV(D, x);                                                    \
      }                                                                       \
    }                                                                         \
  }

/* Every destination for one source type; K is the source's kind. */
#define DEF_ROW(SN, S, K)                                   \
  DEF_CONV(SN, S, u8, uint8_t, K, FD_INT)                   \
  DEF_CONV(SN, S, i8, int8_t, K, FD_INT)                    \
  DEF_CONV(SN, S, i16, int16_t, K, FD_INT)                  \
  DEF_CONV(SN, S, u16, uint16_t, K, FD_INT)                 \
  DEF_CONV(SN, S, i32, int32_t, K, FD_INT)                  \
  DEF_CONV(SN, S, u32, uint32_t, K, FD_INT)                 \
  DEF_CONV(SN, S, i64, int64_t, K, FD_INT)                  \
  DEF_CONV(SN, S, f32, float, CV_TO_FLOAT, FD_FLOAT)        \
  DEF_CONV(SN, S, f64, double, CV_TO_FLOAT, FD_FLOAT)

DEF_ROW(u8, uint8_t, CV_UNSIGNED)
DEF_ROW(i8, int8_t, CV_SIGNED)
DEF_ROW(i16, int16_t, CV_SIGNED)
DEF_ROW(u16, uint16_t, CV_UNSIGNED)
DEF_ROW(i32, int32_t, CV_SIGNED)
DEF_ROW(u32, uint32_t, CV_UNSIGNED)
DEF_ROW(i64, int64_t, CV_SIGNED)
DEF_ROW(u64, uint64_t, CV_UNSIGNED)
DEF_ROW(f32, float, CV_FLOAT)
DEF_ROW(f64, double, CV_FLOAT)

#define ROW(SN)                                                             \
  {                                                                         \
    [LM_U8] = conv_##SN##_u8, [LM_I8] = conv_##SN##_i8,                     \
    [LM_I16] = conv_##SN##_i16, [LM_U16] = conv_##SN##_u16,                 \
    [LM_I32] = conv_##SN##_i32, [LM_U32] = conv_##SN##_u32,                 \
    [LM_I64] = conv_##SN##_i64, [LM_F32] = conv_##SN##_f32,                 \
    [LM_F64] = conv_##SN##_f64,                                             \
  }
static const conv_fn conv_table[NIFTI_S_COUNT][LM_DTYPE_COUNT] = {
  [NIFTI_S_U8] = ROW(u8),   [NIFTI_S_I8] = ROW(i8),   [NIFTI_S_I16] = ROW(i16),
  [NIFTI_S_U16] = ROW(u16), [NIFTI_S_I32] = ROW(i32), [NIFTI_S_U32] = ROW(u32),
  [NIFTI_S_I64] = ROW(i64), [NIFTI_S_U64] = ROW(u64), [NIFTI_S_F32] = ROW(f32),
  [NIFTI_S_F64] = ROW(f64),
};

typedef struct conv_job {
  conv_fn fn;
  const nifti_convert_spec *cs;
  const void *src;
  void *dst;
} conv_job;

static int conv_range(int64_t b, int64_t e, void *arg)
{
  conv_job *j = arg;
  j->fn(j->src, j->dst, b, e, j->cs);
  return LM_OK;
}

int nifti_convert(const nifti_convert_spec *cs, const void *src, void *dst,
                  int64_t n, const nifti_par *par)
{
  if ((unsigned)cs->st >= NIFTI_S_COUNT || (unsigned)cs->dt >= LM_DTYPE_COUNT)
    return LM_EINVAL;
  conv_fn fn = conv_table[cs->st][cs->dt];
  if (!fn) return LM_EDTYPE;
  conv_job j = {fn, cs, src, dst};
  return nifti_par_for(par, n, 1 << 16, conv_range, &j);
}

typedef struct swap_job {
  uint8_t *buf;
  size_t sz;
} swap_job;

static int swap_range(int64_t b, int64_t e, void *arg)
{
  swap_job *j = arg;
  for (int64_t i = b; i < e; i++) {
    uint8_t *p = j->buf + (size_t)i * j->sz;
    for (size_t k = 0; k < j->sz / 2; k++) {
      uint8_t t = p[k];
      p[k] = p[j->sz - 1 - k];
      p[j->sz - 1 - k] = t;
    }
  }
  return LM_OK;
}

void nifti_swap_inplace(void *buf, size_t sz, int64_t n, const nifti_par *par)
{
  if (sz < 2) return;
  swap_job j = {buf, sz};
  nifti_par_for(par, n, 1 << 16, swap_range, &j);
}

size_t nifti_dtype_size(lm_dtype dt)
{
  static const size_t sz[LM_DTYPE_COUNT] = {
    [LM_U8] = 1, [LM_I8] = 1, [LM_I16] = 2, [LM_U16] = 2, [LM_I32] = 4,
    [LM_U32] = 4, [LM_I64] = 8, [LM_F16] = 2, [LM_BF16] = 2, [LM_F32] = 4,
    [LM_F64] = 8,
  };
  return (unsigned)dt < LM_DTYPE_COUNT ? sz[dt] : 0;
}

bool nifti_file_needs_swap(bool file_big_endian)
{
  return file_big_endian != HOST_BIG_ENDIAN;
}
