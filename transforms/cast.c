/* Cast: convert values to another dtype (numpy astype, defined everywhere). */
#include "xf_util.h"

typedef struct cast_job {
  lm_dtype in_dt, out_dt;
} cast_job;

static bool is_int(lm_dtype dt) { return !lm_dtype_is_float(dt); }

static int cast_row(char *const *ptr, const int64_t *step, int64_t n,
                    void *arg)
{
  const cast_job *job = arg;
  for (int64_t i = 0; i < n; i += XF_BLOCK) {
    int64_t m = n - i < XF_BLOCK ? n - i : XF_BLOCK;
    const char *src = ptr[0] + i * step[0];
    char *dst = ptr[1] + i * step[1];
    if (is_int(job->in_dt) && is_int(job->out_dt)) {
      /* Integers stay exact through int64 (a double would round int64). */
      int64_t buf[XF_BLOCK];
      xf_load_i64(src, step[0], job->in_dt, buf, m);
      xf_store_i64(buf, dst, step[1], job->out_dt, m);
    } else if (job->in_dt == LM_F32 || job->in_dt == LM_F16 ||
               job->in_dt == LM_BF16) {
      float buf[XF_BLOCK];
      xf_load_f32(src, step[0], job->in_dt, buf, m);
      xf_store_f32(buf, dst, step[1], job->out_dt, m);
    } else {
      double buf[XF_BLOCK];
      xf_load_f64(src, step[0], job->in_dt, buf, m);
      xf_store_f64(buf, dst, step[1], job->out_dt, m);
    }
  }
  return LM_OK;
}

static int cast_check(lm_op_ctx *ctx)
{
  lm_dtype dt;
  return xf_arg_dtype(ctx, "dtype", -1, &dt);
}

static int cast_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  cast_job job = {.in_dt = lm_tensor_dtype(in)};
  int st = xf_arg_dtype(ctx, "dtype", -1, &job.out_dt);
  if (st < 0) return st;
  /* Same dtype: the input itself, as torch's .to(dtype). */
  if (job.out_dt == job.in_dt)
    return lm_ctx_set_output(ctx, 0, lm_tensor_retain(in));
  st = lm_tensor_new_like(in, job.out_dt, LM_CPU, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  void *base[2] = {lm_tensor_data(in), lm_tensor_data(out)};
  const int64_t *strides[2] = {lm_tensor_strides(in), lm_tensor_strides(out)};
  size_t elsize[2] = {lm_dtype_size(job.in_dt), lm_dtype_size(job.out_dt)};
  xf_iter it;
  xf_iter_init(&it, lm_tensor_ndim(in), lm_tensor_shape(in), 2, base, strides,
               elsize);
  st = xf_iter_run(lm_ctx_engine(ctx), ctx, &it, XF_GRAIN, cast_row, &job);
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc cast_args[] = {
  {"dtype", LM_ARG_STRING, NULL, "target dtype: uint8, int8, int16, uint16, "
   "int32, uint32, int64, float16, bfloat16, float32, float64 (or an alias "
   "such as 'f32', 'u8', 'float', 'double', 'half')"},
};

const lm_op_desc lm_op_cast = {
  .name = "Cast",
  .alias = "CastToType",
  .summary = "Convert the values to another dtype",
  .doc =
    "Values as numpy astype for values the target can hold: integers exact, "
    "floats to integers truncated toward zero (2.7 -> 2, -2.7 -> -2), floats "
    "to float16 / bfloat16 / float32 rounded to nearest even. Where numpy is "
    "undefined or platform-dependent, Cast is defined: floats outside the "
    "integer range saturate to its min / max (300.0 -> uint8 255, -1 -> 0; "
    "+-inf likewise), NaN -> 0, integers outside the target range saturate "
    "(int16 -300 -> uint8 0). Floats too large for float16 / float32 become "
    "+-inf (as numpy). float64 -> float16 rounds through float32 (may differ "
    "from numpy by one float16 ulp on exact ties). Casting to the input's own "
    "dtype returns the input itself (no copy). Shape, memory order, affine, "
    "layout and trace are kept."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = cast_args,
  .nargs = (int)(sizeof cast_args / sizeof cast_args[0]),
  .flags = 0,
  .check = cast_check,
  .run_cpu = cast_run,
  .run_cuda = NULL,
};
