/* Dtype conversion of element runs, the strided walker and option helpers
 * shared by the built-in transforms. */
#include "xf_util.h"

#include <math.h>
#include <string.h>

/* A load loop per source type; the unit-stride branch lets the compiler
 * vectorise the common dense case. */
#define LOAD_LOOP(T, CONV)                                        \
  do {                                                            \
    if (stride == (int64_t)sizeof(T)) {                           \
      const T *q_ = (const T *)src;                               \
      for (int64_t j = 0; j < n; j++) dst[j] = CONV(q_[j]);       \
    } else {                                                      \
      const char *p_ = (const char *)src;                         \
      for (int64_t j = 0; j < n; j++)                             \
        dst[j] = CONV(*(const T *)(p_ + j * stride));             \
    }                                                             \
  } while (0)

#define LOAD_SWITCH(OUT_T)                                        \
  switch (dt) {                                                   \
  case LM_U8: LOAD_LOOP(uint8_t, (OUT_T)); break;                 \
  case LM_I8: LOAD_LOOP(int8_t, (OUT_T)); break;                  \
  case LM_I16: LOAD_LOOP(int16_t, (OUT_T)); break;                \
  case LM_U16: LOAD_LOOP(uint16_t, (OUT_T)); break;               \
  case LM_I32: LOAD_LOOP(int32_t, (OUT_T)); break;                \
  case LM_U32: LOAD_LOOP(uint32_t, (OUT_T)); break;               \
  case LM_I64: LOAD_LOOP(int64_t, (OUT_T)); break;                \
  case LM_F16: LOAD_LOOP(uint16_t, (OUT_T)lm_f16_to_f32); break;  \
  case LM_BF16: LOAD_LOOP(uint16_t, (OUT_T)lm_bf16_to_f32); break;\
  case LM_F32: LOAD_LOOP(float, (OUT_T)); break;                  \
  case LM_F64: LOAD_LOOP(double, (OUT_T)); break;                 \
  default: break;                                                 \
  }

/* Four-lane conversions of the dense small-integer inputs CT volumes come
 * in (the build's -O2 does not vectorise the plain loops). */
typedef float v4f __attribute__((vector_size(16)));
#define DEFINE_LOAD4(NAME, T)                                          \
  typedef T NAME##_v __attribute__((vector_size(4 * sizeof(T))));      \
  static void NAME(const T *q, float *dst, int64_t n)                  \
  {                                                                    \
    int64_t j = 0;                                                     \
    for (; j + 4 <= n; j += 4) {                                       \
      NAME##_v a;                                                      \
      memcpy(&a, q + j, sizeof a);                                     \
      v4f b = __builtin_convertvector(a, v4f);                         \
      memcpy(dst + j, &b, sizeof b);                                   \
    }                                                                  \
    for (; j < n; j++) dst[j] = (float)q[j];                           \
  }
DEFINE_LOAD4(load4_u8, uint8_t)
DEFINE_LOAD4(load4_i8, int8_t)
DEFINE_LOAD4(load4_i16, int16_t)
DEFINE_LOAD4(load4_u16, uint16_t)

void xf_load_f32(const void *src, int64_t stride, lm_dtype dt, float *dst,
                 int64_t n)
{
  if (stride == (int64_t)lm_dtype_size(dt)) {
    switch (dt) {
    case LM_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case LM_I16: load4_i16(src, dst, n); return;
    case LM_U8: load4_u8(src, dst, n); return;
    case LM_I8: load4_i8(src, dst, n); return;
    case LM_U16: load4_u16(src, dst, n); return;
    default: break;
    }
  }
  LOAD_SWITCH(float)
}

void xf_load_f64(const void *src, int64_t stride, lm_dtype dt, double *dst,
                 int64_t n)
{
  LOAD_SWITCH(double)
}

/* Floats to int64 for the integer path of Cast: same rules as the stores. */
static int64_t f_to_i64(double v) { return xf_f64_to_int_saturate(v, LM_I64); }
static int64_t h_to_i64(uint16_t h) { return f_to_i64(lm_f16_to_f32(h)); }
static int64_t b_to_i64(uint16_t h) { return f_to_i64(lm_bf16_to_f32(h)); }

void xf_load_i64(const void *src, int64_t stride, lm_dtype dt, int64_t *dst,
                 int64_t n)
{
  switch (dt) {
  case LM_U8: LOAD_LOOP(uint8_t, (int64_t)); break;
  case LM_I8: LOAD_LOOP(int8_t, (int64_t)); break;
  case LM_I16: LOAD_LOOP(int16_t, (int64_t)); break;
  case LM_U16: LOAD_LOOP(uint16_t, (int64_t)); break;
  case LM_I32: LOAD_LOOP(int32_t, (int64_t)); break;
  case LM_U32: LOAD_LOOP(uint32_t, (int64_t)); break;
  case LM_I64: LOAD_LOOP(int64_t, (int64_t)); break;
  case LM_F16: LOAD_LOOP(uint16_t, h_to_i64); break;
  case LM_BF16: LOAD_LOOP(uint16_t, b_to_i64); break;
  case LM_F32: LOAD_LOOP(float, f_to_i64); break;
  case LM_F64: LOAD_LOOP(double, f_to_i64); break;
  default: break;
  }
}

int64_t xf_f64_to_int_saturate(double v, lm_dtype dt)
{
  double lo, hi;
  switch (dt) {
  case LM_U8: lo = 0; hi = UINT8_MAX; break;
  case LM_I8: lo = INT8_MIN; hi = INT8_MAX; break;
  case LM_I16: lo = INT16_MIN; hi = INT16_MAX; break;
  case LM_U16: lo = 0; hi = UINT16_MAX; break;
  case LM_I32: lo = INT32_MIN; hi = INT32_MAX; break;
  case LM_U32: lo = 0; hi = UINT32_MAX; break;
  default:
    /* int64: 2^63 is not representable, so compare against it exactly. */
    if (isnan(v)) return 0;
    if (v >= 9223372036854775808.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
  }
  if (isnan(v)) return 0;
  if (v <= lo) return (int64_t)lo;
  if (v >= hi) return (int64_t)hi;
  return (int64_t)v; /* truncation toward zero, as numpy astype */
}

static int64_t i64_saturate(int64_t v, lm_dtype dt)
{
  int64_t lo, hi;
  switch (dt) {
  case LM_U8: lo = 0; hi = UINT8_MAX; break;
  case LM_I8: lo = INT8_MIN; hi = INT8_MAX; break;
  case LM_I16: lo = INT16_MIN; hi = INT16_MAX; break;
  case LM_U16: lo = 0; hi = UINT16_MAX; break;
  case LM_I32: lo = INT32_MIN; hi = INT32_MAX; break;
  case LM_U32: lo = 0; hi = UINT32_MAX; break;
  default: return v;
  }
  return v < lo ? lo : v > hi ? hi : v;
}

#define STORE_LOOP(T, EXPR)                                       \
  do {                                                            \
    if (stride == (int64_t)sizeof(T)) {                           \
      T *q_ = (T *)dst;                                           \
      for (int64_t j = 0; j < n; j++) q_[j] = (T)(EXPR);          \
    } else {                                                      \
      char *p_ = (char *)dst;                                     \
      for (int64_t j = 0; j < n; j++)                             \
        *(T *)(p_ + j * stride) = (T)(EXPR);                      \
    }                                                             \
  } while (0)

#define STORE_INT_SWITCH(SAT)                                     \
  case LM_U8: STORE_LOOP(uint8_t, SAT(src[j], LM_U8)); break;     \
  case LM_I8: STORE_LOOP(int8_t, SAT(src[j], LM_I8)); break;      \
  case LM_I16: STORE_LOOP(int16_t, SAT(src[j], LM_I16)); break;   \
  case LM_U16: STORE_LOOP(uint16_t, SAT(src[j], LM_U16)); break;  \
  case LM_I32: STORE_LOOP(int32_t, SAT(src[j], LM_I32)); break;   \
  case LM_U32: STORE_LOOP(uint32_t, SAT(src[j], LM_U32)); break;  \
  case LM_I64: STORE_LOOP(int64_t, SAT(src[j], LM_I64)); break;

void xf_store_f32(const float *src, void *dst, int64_t stride, lm_dtype dt,
                  int64_t n)
{
  switch (dt) {
  STORE_INT_SWITCH(xf_f64_to_int_saturate)
  case LM_F16: STORE_LOOP(uint16_t, lm_f32_to_f16(src[j])); break;
  case LM_BF16: STORE_LOOP(uint16_t, lm_f32_to_bf16(src[j])); break;
  case LM_F32: STORE_LOOP(float, src[j]); break;
  case LM_F64: STORE_LOOP(double, src[j]); break;
  default: break;
  }
}

void xf_store_f64(const double *src, void *dst, int64_t stride, lm_dtype dt,
                  int64_t n)
{
  switch (dt) {
  STORE_INT_SWITCH(xf_f64_to_int_saturate)
  /* Through float: a double rounding, off by one f16 ulp in rare ties. */
  case LM_F16: STORE_LOOP(uint16_t, lm_f32_to_f16((float)src[j])); break;
  case LM_BF16: STORE_LOOP(uint16_t, lm_f32_to_bf16((float)src[j])); break;
  case LM_F32: STORE_LOOP(float, src[j]); break;
  case LM_F64: STORE_LOOP(double, src[j]); break;
  default: break;
  }
}

void xf_store_i64(const int64_t *src, void *dst, int64_t stride, lm_dtype dt,
                  int64_t n)
{
  switch (dt) {
  STORE_INT_SWITCH(i64_saturate)
  case LM_F16: STORE_LOOP(uint16_t, lm_f32_to_f16((float)src[j])); break;
  case LM_BF16: STORE_LOOP(uint16_t, lm_f32_to_bf16((float)src[j])); break;
  case LM_F32: STORE_LOOP(float, src[j]); break;
  case LM_F64: STORE_LOOP(double, src[j]); break;
  default: break;
  }
}

static int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

void xf_iter_init(xf_iter *it, int ndim, const int64_t *shape, int nops,
                  void *const *base, const int64_t *const *strides,
                  const size_t *elsize)
{
  int dims[LM_MAX_DIMS], n = 0;
  memset(it, 0, sizeof *it);
  it->nops = nops;
  it->numel = 1;
  for (int d = 0; d < ndim; d++) {
    it->numel *= shape[d];
    if (shape[d] != 1) dims[n++] = d;
  }
  for (int k = 0; k < nops; k++) it->base[k] = base[k];
  /* Insertion sort by the first operand's stride, largest first (stable, so
   * equal strides keep the logical order). */
  for (int i = 1; i < n; i++) {
    int d = dims[i], j = i;
    while (j > 0 && abs64(strides[0][dims[j - 1]]) < abs64(strides[0][d])) {
      dims[j] = dims[j - 1];
      j--;
    }
    dims[j] = d;
  }
  it->ndim = 0;
  for (int i = 0; i < n; i++) {
    int d = dims[i], m = it->ndim;
    it->shape[m] = shape[d];
    for (int k = 0; k < nops; k++)
      it->stride[k][m] = strides[k][d] * (int64_t)elsize[k];
    it->ndim++;
  }
  /* Merge an outer dim into the next inner one where every operand steps
   * through both as through one. */
  for (int i = it->ndim - 2; i >= 0; i--) {
    bool mergeable = true;
    for (int k = 0; k < nops; k++)
      if (it->stride[k][i] != it->stride[k][i + 1] * it->shape[i + 1])
        mergeable = false;
    if (!mergeable) continue;
    it->shape[i + 1] *= it->shape[i];
    for (int j = i; j < it->ndim - 1; j++) {
      it->shape[j] = it->shape[j + 1];
      for (int k = 0; k < nops; k++) it->stride[k][j] = it->stride[k][j + 1];
    }
    it->ndim--;
  }
  if (it->ndim == 0) {
    it->ndim = 1;
    it->shape[0] = it->numel; /* 1, or 0 for an empty tensor */
    for (int k = 0; k < nops; k++) it->stride[k][0] = 0;
  }
}

typedef struct iter_job {
  const xf_iter *it;
  xf_row_fn row;
  void *arg;
} iter_job;

static int iter_chunk(int64_t begin, int64_t end, void *arg)
{
  const iter_job *job = arg;
  const xf_iter *it = job->it;
  int last = it->ndim - 1;
  int64_t idx[LM_MAX_DIMS], rem = begin;
  char *ptr[XF_MAX_OPS];
  int64_t step[XF_MAX_OPS];

  for (int d = last; d >= 0; d--) {
    idx[d] = rem % it->shape[d];
    rem /= it->shape[d];
  }
  for (int k = 0; k < it->nops; k++) {
    ptr[k] = it->base[k];
    for (int d = 0; d <= last; d++) ptr[k] += idx[d] * it->stride[k][d];
    step[k] = it->stride[k][last];
  }
  for (int64_t pos = begin; pos < end;) {
    int64_t n = it->shape[last] - idx[last];
    if (n > end - pos) n = end - pos;
    int st = job->row(ptr, step, n, job->arg);
    if (st < 0) return st;
    pos += n;
    idx[last] += n;
    for (int k = 0; k < it->nops; k++) ptr[k] += n * step[k];
    /* Carry into the outer dims. */
    for (int d = last; d > 0 && idx[d] == it->shape[d]; d--) {
      idx[d] = 0;
      idx[d - 1]++;
      for (int k = 0; k < it->nops; k++)
        ptr[k] += it->stride[k][d - 1] - it->shape[d] * it->stride[k][d];
    }
  }
  return LM_OK;
}

int xf_iter_run(lm_engine *e, lm_op_ctx *ctx, const xf_iter *it,
                int64_t grain, xf_row_fn row, void *arg)
{
  iter_job job = {it, row, arg};
  if (it->numel == 0) return LM_OK;
  return lm_parallel_for(e, ctx, it->numel, grain, iter_chunk, &job);
}

void xf_memory_order(const lm_tensor *t, int *order)
{
  int n = lm_tensor_ndim(t);
  const int64_t *st = lm_tensor_strides(t);
  for (int i = 0; i < n; i++) {
    int d = i, j = i;
    while (j > 0 && abs64(st[order[j - 1]]) < abs64(st[d])) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = d;
  }
}

int xf_arg_dtype(lm_op_ctx *ctx, const char *opt, int def, lm_dtype *out)
{
  const char *name = lm_arg_string(ctx, opt);
  if (!name) {
    if (def < 0)
      return lm_ctx_error(ctx, LM_EINVAL, "option '%s' is required", opt);
    *out = (lm_dtype)def;
    return LM_OK;
  }
  if (lm_dtype_from_name(name, out) != LM_OK)
    return lm_ctx_error(ctx, LM_EINVAL,
                        "option '%s': unknown dtype '%s' (expected uint8, "
                        "int8, int16, uint16, int32, uint32, int64, float16, "
                        "bfloat16, float32 or float64)", opt, name);
  return LM_OK;
}

int xf_arg_axis(lm_op_ctx *ctx, const char *opt, int ndim, int *axis)
{
  int64_t a = lm_arg_int(ctx, opt);
  if (a < -ndim || a >= ndim)
    return lm_ctx_error(ctx, LM_EINVAL,
                        "option '%s' = %lld is out of range for a %d-d "
                        "tensor", opt, (long long)a, ndim);
  *axis = (int)(a < 0 ? a + ndim : a);
  return LM_OK;
}

void xf_iter_init_axis(xf_iter *it, const lm_tensor *in, const lm_tensor *out,
                       int axis)
{
  int nd = lm_tensor_ndim(in), m = 0;
  bool keep = lm_tensor_ndim(out) == nd;
  const int64_t *ish = lm_tensor_shape(in), *ist = lm_tensor_strides(in);
  const int64_t *ost = lm_tensor_strides(out);
  int64_t shape[LM_MAX_DIMS], s0[LM_MAX_DIMS], s1[LM_MAX_DIMS];
  for (int d = 0; d < nd; d++) {
    if (d == axis) continue;
    shape[m] = ish[d];
    s0[m] = ist[d];
    s1[m] = ost[keep || d < axis ? d : d - 1];
    m++;
  }
  void *base[2] = {lm_tensor_data(in), lm_tensor_data(out)};
  const int64_t *strides[2] = {s0, s1};
  size_t elsize[2] = {lm_dtype_size(lm_tensor_dtype(in)),
                      lm_dtype_size(lm_tensor_dtype(out))};
  xf_iter_init(it, m, shape, 2, base, strides, elsize);
}
