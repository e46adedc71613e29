/* Threshold: a binary mask from a score map (semantics.md §6.2). */
#include "xf_util.h"

typedef struct threshold_job {
  lm_dtype in_dt, out_dt;
  double t;
  bool strict;
} threshold_job;

static int threshold_row(char *const *ptr, const int64_t *step, int64_t n,
                         void *arg)
{
  const threshold_job *job = arg;
  float y[XF_BLOCK];
  for (int64_t i = 0; i < n; i += XF_BLOCK) {
    int64_t m = n - i < XF_BLOCK ? n - i : XF_BLOCK;
    const char *src = ptr[0] + i * step[0];
    /* torch compares in the promoted dtype: float32 against the threshold
     * rounded to float32, except for float64 tensors. */
    if (job->in_dt == LM_F64) {
      double x[XF_BLOCK];
      xf_load_f64(src, step[0], LM_F64, x, m);
      for (int64_t j = 0; j < m; j++)
        y[j] = job->strict ? x[j] > job->t : x[j] >= job->t;
    } else {
      float x[XF_BLOCK], t = (float)job->t;
      xf_load_f32(src, step[0], job->in_dt, x, m);
      for (int64_t j = 0; j < m; j++)
        y[j] = job->strict ? x[j] > t : x[j] >= t;
    }
    xf_store_f32(y, ptr[1] + i * step[1], step[1], job->out_dt, m);
  }
  return LM_OK;
}

static int threshold_check(lm_op_ctx *ctx)
{
  lm_dtype dt;
  return xf_arg_dtype(ctx, "dtype", LM_U8, &dt);
}

static int threshold_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  threshold_job job = {.in_dt = lm_tensor_dtype(in),
                       .t = lm_arg_number(ctx, "threshold"),
                       .strict = lm_arg_bool(ctx, "strict")};
  int st = xf_arg_dtype(ctx, "dtype", LM_U8, &job.out_dt);
  if (st < 0) return st;
  st = lm_tensor_new_like(in, job.out_dt, LM_CPU, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  void *base[2] = {lm_tensor_data(in), lm_tensor_data(out)};
  const int64_t *strides[2] = {lm_tensor_strides(in), lm_tensor_strides(out)};
  size_t elsize[2] = {lm_dtype_size(job.in_dt), lm_dtype_size(job.out_dt)};
  xf_iter it;
  xf_iter_init(&it, lm_tensor_ndim(in), lm_tensor_shape(in), 2, base, strides,
               elsize);
  st = xf_iter_run(lm_ctx_engine(ctx), ctx, &it, XF_GRAIN, threshold_row,
                   &job);
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc threshold_args[] = {
  {"threshold", LM_ARG_NUMBER, "0.5", "values at (or, with strict, above) "
   "it become 1"},
  {"strict", LM_ARG_BOOL, "false", "false: x >= threshold (MONAI "
   "AsDiscrete); true: x > threshold (nnU-Net region outputs)"},
  {"dtype", LM_ARG_STRING, "'uint8'", "output dtype of the 0/1 mask"},
};

const lm_op_desc lm_op_threshold = {
  .name = "Threshold",
  .alias = NULL,
  .summary = "Binary mask: 1 where the value reaches the threshold, else 0",
  .doc =
    "MONAI AsDiscrete(threshold=t): y = x >= t (inclusive) by default; "
    "strict=true gives x > t as nnU-Net's region-based outputs "
    "(prob > 0.5). The comparison is made as torch makes it: in float32 "
    "with t rounded to float32 (integer inputs converted to float32), in "
    "float64 for float64 inputs. NaN gives 0. Output 0/1 in dtype (uint8 "
    "by default; MONAI returns float32 0/1, ask dtype='float32' for that), "
    "with the input's shape, memory order, affine, layout and trace."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "mask",
  .args = threshold_args,
  .nargs = (int)(sizeof threshold_args / sizeof threshold_args[0]),
  .flags = 0,
  .check = threshold_check,
  .run_cpu = threshold_run,
  .run_cuda = NULL,
};
