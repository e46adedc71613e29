/* Argmax: the index of the largest value along an axis (semantics.md §6.1). */
#include <math.h>
#include <string.h>

#include "argmax.h"
#include "xf_util.h"

typedef struct argmax_job {
  lm_dtype in_dt, out_dt;
  int64_t nch;       /* entries along the axis */
  int64_t ch_stride; /* bytes between them */
} argmax_job;

/* Scan the channels in increasing order with a strict '>' so the first
 * maximum wins; a NaN beats every number and only the first NaN counts
 * (torch and numpy treat NaN as the maximum). */
#define ARGMAX_BLOCK(T, LOAD)                                             \
  do {                                                                    \
    T best[XF_BLOCK];                                                     \
    for (int64_t j = 0; j < m; j++) {                                     \
      best[j] = LOAD(*(const T##_src *)(src + j * s));                    \
      idx[j] = 0;                                                         \
    }                                                                     \
    for (int64_t c = 1; c < job->nch; c++) {                              \
      const char *p = src + c * job->ch_stride;                           \
      for (int64_t j = 0; j < m; j++) {                                   \
        T v = LOAD(*(const T##_src *)(p + j * s));                        \
        if (v > best[j] || (v != v && best[j] == best[j])) {              \
          best[j] = v;                                                    \
          idx[j] = c;                                                     \
        }                                                                 \
      }                                                                   \
    }                                                                     \
  } while (0)

/* Source element types for ARGMAX_BLOCK's T##_src. */
typedef uint8_t uint8_t_src;
typedef int8_t int8_t_src;
typedef int16_t int16_t_src;
typedef uint16_t uint16_t_src;
typedef int32_t int32_t_src;
typedef uint32_t uint32_t_src;
typedef int64_t int64_t_src;
typedef double double_src;
typedef float float_src;
typedef float half_t;
typedef uint16_t half_t_src;
typedef float bhalf_t;
typedef uint16_t bhalf_t_src;
#define AS_IS(x) (x)

static int argmax_row(char *const *ptr, const int64_t *step, int64_t n,
                      void *arg)
{
  const argmax_job *job = arg;
  const int64_t s = step[0];
  int64_t idx[XF_BLOCK];
  for (int64_t i = 0; i < n; i += XF_BLOCK) {
    int64_t m = n - i < XF_BLOCK ? n - i : XF_BLOCK;
    const char *src = ptr[0] + i * s;
    switch (job->in_dt) {
    case LM_U8: ARGMAX_BLOCK(uint8_t, AS_IS); break;
    case LM_I8: ARGMAX_BLOCK(int8_t, AS_IS); break;
    case LM_I16: ARGMAX_BLOCK(int16_t, AS_IS); break;
    case LM_U16: ARGMAX_BLOCK(uint16_t, AS_IS); break;
    case LM_I32: ARGMAX_BLOCK(int32_t, AS_IS); break;
    case LM_U32: ARGMAX_BLOCK(uint32_t, AS_IS); break;
    case LM_I64: ARGMAX_BLOCK(int64_t, AS_IS); break;
    case LM_F16: ARGMAX_BLOCK(half_t, lm_f16_to_f32); break;
    case LM_BF16: ARGMAX_BLOCK(bhalf_t, lm_bf16_to_f32); break;
    case LM_F32: ARGMAX_BLOCK(float, AS_IS); break;
    case LM_F64: ARGMAX_BLOCK(double, AS_IS); break;
    default: return LM_EINTERNAL;
    }
    xf_store_i64(idx, ptr[1] + i * step[1], step[1], job->out_dt, m);
  }
  return LM_OK;
}

/* Largest index a label dtype holds exactly. */
static double dtype_max_index(lm_dtype dt)
{
  switch (dt) {
  case LM_U8: return UINT8_MAX;
  case LM_I8: return INT8_MAX;
  case LM_I16: return INT16_MAX;
  case LM_U16: return UINT16_MAX;
  case LM_I32: return INT32_MAX;
  case LM_U32: return UINT32_MAX;
  case LM_F16: return 2048;
  case LM_BF16: return 256;
  case LM_F32: return 16777216.0;
  default: return 9007199254740992.0;
  }
}

int xf_argmax_options(lm_op_ctx *ctx, const lm_tensor *in, xf_argmax_opts *o)
{
  int nd = lm_tensor_ndim(in);
  if (nd < 1)
    return lm_ctx_error(ctx, LM_ESHAPE, "input is a scalar (0-d); Argmax "
                        "needs an axis");
  int st = xf_arg_axis(ctx, "axis", nd, &o->axis);
  if (st < 0) return st;
  o->keepdim = lm_arg_bool(ctx, "keepdim");
  o->nch = lm_tensor_shape(in)[o->axis];
  if (o->nch < 1)
    return lm_ctx_error(ctx, LM_ESHAPE, "axis %d is empty", o->axis);
  st = xf_arg_dtype(ctx, "dtype", o->nch <= 256 ? LM_U8 : LM_I32, &o->dt);
  if (st < 0) return st;
  if ((double)(o->nch - 1) > dtype_max_index(o->dt))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'dtype': %s cannot hold "
                        "index %lld", lm_dtype_name(o->dt),
                        (long long)(o->nch - 1));
  return LM_OK;
}

int xf_argmax_output(lm_op_ctx *ctx, lm_tensor *in, const xf_argmax_opts *o,
                     lm_device dev, lm_tensor **out)
{
  int nd = lm_tensor_ndim(in), ond = 0, order[LM_MAX_DIMS], oorder[LM_MAX_DIMS];
  int64_t oshape[LM_MAX_DIMS];
  const int64_t *shape = lm_tensor_shape(in);
  /* Keep the input's memory order for the remaining dims, so a label map
   * from a volume stored i-fastest is stored i-fastest too. */
  xf_memory_order(in, order);
  for (int d = 0; d < nd; d++) {
    if (d == o->axis && !o->keepdim) continue;
    oshape[ond++] = d == o->axis ? 1 : shape[d];
  }
  int m = 0;
  for (int i = 0; i < nd; i++) {
    int d = order[i];
    if (d == o->axis && !o->keepdim) continue;
    oorder[m++] = !o->keepdim && d > o->axis ? d - 1 : d;
  }
  int st = lm_tensor_new_ordered(lm_ctx_engine(ctx), o->dt, ond, oshape,
                                 oorder, dev, out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  lm_tensor_set_affine(*out, lm_tensor_affine(in));
  lm_tensor_trace_copy(*out, in);
  const char *lay = lm_tensor_layout(in);
  if (o->keepdim || (int)strlen(lay) != nd) {
    lm_tensor_set_layout(*out, o->keepdim ? lay : "");
  } else {
    char buf[LM_MAX_DIMS + 1];
    int k = 0;
    for (int d = 0; d < nd; d++)
      if (d != o->axis) buf[k++] = lay[d];
    buf[k] = 0;
    lm_tensor_set_layout(*out, buf);
  }
  return LM_OK;
}

static int argmax_check(lm_op_ctx *ctx)
{
  xf_argmax_opts o;
  return xf_argmax_options(ctx, lm_ctx_input(ctx, 0), &o);
}

static int argmax_run(lm_op_ctx *ctx)
{
  xf_argmax_opts o;
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  int st = xf_argmax_options(ctx, in, &o);
  if (st < 0) return st;
  st = xf_argmax_output(ctx, in, &o, LM_CPU, &out);
  if (st < 0) return st;
  argmax_job job = {.in_dt = lm_tensor_dtype(in), .out_dt = o.dt,
                    .nch = o.nch,
                    .ch_stride = lm_tensor_strides(in)[o.axis] *
                                 (int64_t)lm_dtype_size(lm_tensor_dtype(in))};
  xf_iter it;
  xf_iter_init_axis(&it, in, out, o.axis);
  int64_t grain = XF_GRAIN / (o.nch > 0 ? o.nch : 1) + 1;
  st = xf_iter_run(lm_ctx_engine(ctx), ctx, &it, grain, argmax_row, &job);
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc argmax_args[] = {
  {"axis", LM_ARG_INT, "0", "axis to reduce (negative counts from the end)"},
  {"keepdim", LM_ARG_BOOL, "true", "keep the axis with size 1 (MONAI's "
   "(1, X, Y, Z) label map)"},
  {"dtype", LM_ARG_STRING, "nil", "label dtype; nil = uint8 when the axis "
   "has at most 256 entries, else int32"},
};

const lm_op_desc lm_op_argmax = {
  .name = "Argmax",
  .alias = "ArgmaxAcrossChannels",
  .summary = "Index of the largest value along an axis (a label map from "
             "channel scores)",
  .doc =
    "torch.argmax(img, dim=axis, keepdim=keepdim), as MONAI "
    "AsDiscrete(argmax=True) and Clara ArgmaxAcrossChannels use it. Ties: "
    "the first maximal index wins (argmax([1, 3, 3]) = 1). NaN counts as "
    "the maximum, the first NaN wins (argmax([1, nan, 3]) = 1), as torch and "
    "numpy. Values are compared in the input dtype (float16 / bfloat16 as "
    "float32, exactly). Output: labels of dtype uint8 when the axis has at "
    "most 256 entries, else int32, unless dtype is given (an error if it "
    "cannot hold the largest index); the input's memory order for the "
    "remaining dims, its affine and trace; the layout without the axis's "
    "letter when keepdim is false. Also runs on CUDA tensors when the CUDA "
    "plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "label",
  .args = argmax_args,
  .nargs = (int)(sizeof argmax_args / sizeof argmax_args[0]),
  .flags = 0,
  .check = argmax_check,
  .run_cpu = argmax_run,
  .run_cuda = NULL,
};
