/* The 11x11 table of element converters, generated from two type lists. */
#include <math.h>
#include <string.h>

#include "convert.h"

#define SAT(T, MINV, MAXV)                                         \
  static inline T sat_##T(double v)                                \
  {                                                                \
    if (v != v) return 0;                                          \
    if (v <= (double)(MINV)) return (MINV);                        \
    if (v >= (double)(MAXV)) return (MAXV);                        \
    return (T)v;                                                   \
  }
SAT(uint8_t, 0, UINT8_MAX)
SAT(int8_t, INT8_MIN, INT8_MAX)
SAT(int16_t, INT16_MIN, INT16_MAX)
SAT(uint16_t, 0, UINT16_MAX)
SAT(int32_t, INT32_MIN, INT32_MAX)
SAT(uint32_t, 0, UINT32_MAX)
/* (double)INT64_MAX rounds up to 2^63, which is out of range: compare
 * against 2^63 exactly. */
static inline int64_t sat_int64_t(double v)
{
  if (v != v) return 0;
  if (v >= 9223372036854775808.0) return INT64_MAX;
  if (v < -9223372036854775808.0) return INT64_MIN;
  return (int64_t)v;
}

/* A float value goes through the saturating cast, an integer one through
 * the plain C cast. */
#define TO_INT(T, v) _Generic((v), float: sat_##T((double)(v)), double: sat_##T((double)(v)), default: (T)(v))

/* Loads and stores through memcpy: wrapped memory may be unaligned. */
static inline uint8_t ld_U8(const char *p) { uint8_t v; memcpy(&v, p, sizeof v); return v; }
static inline void st_U8(char *p, uint8_t v) { memcpy(p, &v, sizeof v); }
static inline int8_t ld_I8(const char *p) { int8_t v; memcpy(&v, p, sizeof v); return v; }
static inline void st_I8(char *p, int8_t v) { memcpy(p, &v, sizeof v); }
static inline int16_t ld_I16(const char *p) { int16_t v; memcpy(&v, p, sizeof v); return v; }
static inline void st_I16(char *p, int16_t v) { memcpy(p, &v, sizeof v); }
static inline uint16_t ld_U16(const char *p) { uint16_t v; memcpy(&v, p, sizeof v); return v; }
static inline void st_U16(char *p, uint16_t v) { memcpy(p, &v, sizeof v); }
static inline int32_t ld_I32(const char *p) { int32_t v; memcpy(&v, p, sizeof v); return v; }
static inline void st_I32(char *p, int32_t v) { memcpy(p, &v, sizeof v); }
static inline uint32_t ld_U32(const char *p) { uint32_t v; memcpy(&v, p, sizeof v); return v; }
static inline void st_U32(char *p, uint32_t v) { memcpy(p, &v, sizeof v); }
static inline int64_t ld_I64(const char *p) { int64_t v; memcpy(&v, p, sizeof v); return v; }
static inline void st_I64(char *p, int64_t v) { memcpy(p, &v, sizeof v); }
static inline float ld_F32(const char *p) { float v; memcpy(&v, p, sizeof v); return v; }
static inline void st_F32(char *p, float v) { memcpy(p, &v, sizeof v); }
static inline double ld_F64(const char *p) { double v; memcpy(&v, p, sizeof v); return v; }
static inline void st_F64(char *p, double v) { memcpy(p, &v, sizeof v); }
static inline uint16_t ld_H(const char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline void st_H(char *p, uint16_t v) { memcpy(p, &v, 2); }

#define LD_U8(p) ld_U8(p)
#define LD_I8(p) ld_I8(p)
#define LD_I16(p) ld_I16(p)
#define LD_U16(p) ld_U16(p)
#define LD_I32(p) ld_I32(p)
#define LD_U32(p) ld_U32(p)
#define LD_I64(p) ld_I64(p)
#define LD_F16(p) lm_f16_to_f32(ld_H(p))
#define LD_BF16(p) lm_bf16_to_f32(ld_H(p))
#define LD_F32(p) ld_F32(p)
#define LD_F64(p) ld_F64(p)

#define ST_U8(p, v) st_U8(p, TO_INT(uint8_t, v))
#define ST_I8(p, v) st_I8(p, TO_INT(int8_t, v))
#define ST_I16(p, v) st_I16(p, TO_INT(int16_t, v))
#define ST_U16(p, v) st_U16(p, TO_INT(uint16_t, v))
#define ST_I32(p, v) st_I32(p, TO_INT(int32_t, v))
#define ST_U32(p, v) st_U32(p, TO_INT(uint32_t, v))
#define ST_I64(p, v) st_I64(p, TO_INT(int64_t, v))
#define ST_F16(p, v) st_H(p, lm_f32_to_f16((float)(v)))
#define ST_BF16(p, v) st_H(p, lm_f32_to_bf16((float)(v)))
#define ST_F32(p, v) st_F32(p, (float)(v))
#define ST_F64(p, v) st_F64(p, (double)(v))

#define SZ_U8 1
#define SZ_I8 1
#define SZ_I16 2
#define SZ_U16 2
#define SZ_I32 4
#define SZ_U32 4
#define SZ_I64 8
#define SZ_F16 2
#define SZ_BF16 2
#define SZ_F32 4
#define SZ_F64 8

#define FOR_SRC(M, D) M(D, U8) M(D, I8) M(D, I16) M(D, U16) M(D, I32) M(D, U32) \
  M(D, I64) M(D, F16) M(D, BF16) M(D, F32) M(D, F64)
#define FOR_DST(M) M(U8) M(I8) M(I16) M(U16) M(I32) M(U32) M(I64) M(F16) M(BF16) \
  M(F32) M(F64)

#define CVT_FN(D, S)                                                           \
  static void cvt_##D##_##S(char *d, int64_t ds, const char *s, int64_t ss,    \
                            int64_t n)                                         \
  {                                                                            \
    for (int64_t i = 0; i < n; i++) ST_##D(d + i * ds, LD_##S(s + i * ss));    \
  }                                                                            \
  static void dense_##D##_##S(char *restrict d, int64_t ds, const char *restrict s, \
                              int64_t ss, int64_t n)                           \
  {                                                                            \
    (void)ds;                                                                  \
    (void)ss;                                                                  \
    for (int64_t i = 0; i < n; i++) ST_##D(d + i * SZ_##D, LD_##S(s + i * SZ_##S)); \
  }
#define DEF_ROW(D) FOR_SRC(CVT_FN, D)
FOR_DST(DEF_ROW)

#define ENT(D, S) [LM_##S] = cvt_##D##_##S,
#define ROW(D) [LM_##D] = {FOR_SRC(ENT, D)},
static const lm_convert_fn table[LM_DTYPE_COUNT][LM_DTYPE_COUNT] = {FOR_DST(ROW)};

#define DENT(D, S) [LM_##S] = dense_##D##_##S,
#define DROW(D) [LM_##D] = {FOR_SRC(DENT, D)},
static const lm_convert_fn dense_table[LM_DTYPE_COUNT][LM_DTYPE_COUNT] = {FOR_DST(DROW)};

lm_convert_fn lm_convert_get(lm_dtype dst, lm_dtype src)
{
  if ((unsigned)dst >= LM_DTYPE_COUNT || (unsigned)src >= LM_DTYPE_COUNT) return NULL;
  return table[dst][src];
}

lm_convert_fn lm_convert_get_dense(lm_dtype dst, lm_dtype src)
{
  if ((unsigned)dst >= LM_DTYPE_COUNT || (unsigned)src >= LM_DTYPE_COUNT) return NULL;
  return dense_table[dst][src];
}
