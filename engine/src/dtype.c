/* dtype names and sizes, and the float16 / bfloat16 conversions. */
#include <string.h>

#include "lumen.h"

static const struct {
  const char *name;
  size_t size;
} dtypes[LM_DTYPE_COUNT] = {
  [LM_U8] = {"uint8", 1},     [LM_I8] = {"int8", 1},
  [LM_I16] = {"int16", 2},    [LM_U16] = {"uint16", 2},
  [LM_I32] = {"int32", 4},    [LM_U32] = {"uint32", 4},
  [LM_I64] = {"int64", 8},    [LM_F16] = {"float16", 2},
  [LM_BF16] = {"bfloat16", 2}, [LM_F32] = {"float32", 4},
  [LM_F64] = {"float64", 8},
};

static const struct {
  const char *alias;
  lm_dtype dt;
} aliases[] = {
  {"u8", LM_U8},   {"i8", LM_I8},    {"i16", LM_I16},   {"u16", LM_U16},
  {"i32", LM_I32}, {"u32", LM_U32},  {"i64", LM_I64},   {"f16", LM_F16},
  {"bf16", LM_BF16}, {"f32", LM_F32}, {"f64", LM_F64},  {"float", LM_F32},
  {"double", LM_F64}, {"half", LM_F16}, {"uchar", LM_U8}, {"short", LM_I16},
  {"int", LM_I32}, {"long", LM_I64},
};

const char *lm_dtype_name(lm_dtype dt)
{
  if ((unsigned)dt >= LM_DTYPE_COUNT) return "invalid";
  return dtypes[dt].name;
}

size_t lm_dtype_size(lm_dtype dt)
{
  if ((unsigned)dt >= LM_DTYPE_COUNT) return 0;
  return dtypes[dt].size;
}

int lm_dtype_from_name(const char *name, lm_dtype *out)
{
  if (!name || !out) return LM_EINVAL;
  for (int i = 0; i < LM_DTYPE_COUNT; i++)
    if (strcmp(name, dtypes[i].name) == 0) {
      *out = (lm_dtype)i;
      return LM_OK;
    }
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strcmp(name, aliases[i].alias) == 0) {
      *out = aliases[i].dt;
      return LM_OK;
    }
  return LM_EINVAL;
}

bool lm_dtype_is_float(lm_dtype dt)
{
  return dt == LM_F16 || dt == LM_BF16 || dt == LM_F32 || dt == LM_F64;
}

static inline uint32_t f32_bits(float f)
{
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float bits_f32(uint32_t u)
{
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float lm_f16_to_f32(uint16_t h)
{
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  if (exp == 0x1f) /* inf / nan: keep the payload */
    return bits_f32(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return bits_f32(sign);
    /* Subnormal: value = man * 2^-24, exact in float. */
    float v = (float)man * 0x1p-24f;
    return sign ? -v : v;
  }
  return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t lm_f32_to_f16(float f)
{
  uint32_t u = f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) /* inf or nan (nan stays quiet nan) */
    return sign | (abs > 0x7f800000u ? (uint16_t)(0x7e00 | ((abs >> 13) & 0x3ff))
                                     : 0x7c00);
  if (abs >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
    return sign | 0x7c00;
  if (abs < 0x38800000u) {
    /* Result is subnormal (or zero): value / 2^-24, rounded half to even. */
    if (abs < 0x33000000u) return sign; /* below half the smallest subnormal */
    uint32_t exp = abs >> 23;
    uint32_t man = (abs & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - exp; /* 14..24 */
    uint32_t res = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (res & 1))) res++;
    return sign | (uint16_t)res;
  }
  /* Normal: rebias exponent, round the 13 dropped bits half to even. */
  uint32_t res = ((abs >> 13) - (112u << 10));
  uint32_t rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (res & 1))) res++;
  return sign | (uint16_t)res;
}

float lm_bf16_to_f32(uint16_t h)
{
  return bits_f32((uint32_t)h << 16);
}

uint16_t lm_f32_to_bf16(float f)
{
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) /* nan: keep sign, force quiet */
    return (uint16_t)((u >> 16) | 0x40);
  uint32_t lsb = (u >> 16) & 1;
  u += 0x7fff + lsb;
  return (uint16_t)(u >> 16);
}
