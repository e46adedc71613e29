/* Softmax and Sigmoid: MONAI Activations (semantics.md §6.3), float32. */
#include <math.h>

#include "xf_util.h"

/* ---- Sigmoid ---------------------------------------------------------- */

static int sigmoid_row(char *const *ptr, const int64_t *step, int64_t n,
                       void *arg)
{
  const lm_dtype *in_dt = arg;
  float buf[XF_BLOCK];
  for (int64_t i = 0; i < n; i += XF_BLOCK) {
    int64_t m = n - i < XF_BLOCK ? n - i : XF_BLOCK;
    xf_load_f32(ptr[0] + i * step[0], step[0], *in_dt, buf, m);
    /* torch's form: 1 / (1 + exp(-x)); exp(-x) = inf gives exactly 0. */
    for (int64_t j = 0; j < m; j++) buf[j] = 1.0f / (1.0f + expf(-buf[j]));
    xf_store_f32(buf, ptr[1] + i * step[1], step[1], LM_F32, m);
  }
  return LM_OK;
}

static int sigmoid_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  lm_dtype in_dt = lm_tensor_dtype(in);
  int st = lm_tensor_new_like(in, LM_F32, LM_CPU, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  void *base[2] = {lm_tensor_data(in), lm_tensor_data(out)};
  const int64_t *strides[2] = {lm_tensor_strides(in), lm_tensor_strides(out)};
  size_t elsize[2] = {lm_dtype_size(in_dt), 4};
  xf_iter it;
  xf_iter_init(&it, lm_tensor_ndim(in), lm_tensor_shape(in), 2, base, strides,
               elsize);
  st = xf_iter_run(lm_ctx_engine(ctx), ctx, &it, XF_GRAIN / 4, sigmoid_row,
                   &in_dt);
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lm_ctx_set_output(ctx, 0, out);
}

const lm_op_desc lm_op_sigmoid = {
  .name = "Sigmoid",
  .alias = NULL,
  .summary = "Logistic function 1 / (1 + exp(-x)), float32",
  .doc =
    "MONAI Activations(sigmoid=True): the input is converted to float32 "
    "first (float64 rounds), then y = 1 / (1 + exp(-x)) in float32 as "
    "torch.sigmoid (agrees to a few ulp; exp differs by implementation). "
    "sigmoid(0) = 0.5, large negative x gives 0, large positive 1, NaN stays "
    "NaN. Output float32 with the input's shape, memory order, affine, "
    "layout and trace."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = NULL,
  .nargs = 0,
  .flags = 0,
  .check = NULL,
  .run_cpu = sigmoid_run,
  .run_cuda = NULL,
};

/* ---- Softmax ---------------------------------------------------------- */

typedef struct softmax_job {
  lm_dtype in_dt;
  int64_t nch, in_cs, out_cs; /* channel count and byte strides */
} softmax_job;

/* Per voxel over the channels: max (NaN propagates, as torch's max), then
 * e = exp(x - max) written out and summed, then e / sum.  Blocked so that
 * the per-voxel max and sum stay in L1 while the channels stream by. */
static int softmax_row(char *const *ptr, const int64_t *step, int64_t n,
                       void *arg)
{
  const softmax_job *job = arg;
  float mx[XF_BLOCK], sum[XF_BLOCK], x[XF_BLOCK];
  for (int64_t i = 0; i < n; i += XF_BLOCK) {
    int64_t m = n - i < XF_BLOCK ? n - i : XF_BLOCK;
    const char *src = ptr[0] + i * step[0];
    char *dst = ptr[1] + i * step[1];
    for (int64_t c = 0; c < job->nch; c++) {
      xf_load_f32(src + c * job->in_cs, step[0], job->in_dt, x, m);
      if (c == 0)
        for (int64_t j = 0; j < m; j++) mx[j] = x[j];
      else
        for (int64_t j = 0; j < m; j++)
          if (x[j] > mx[j] || isnan(x[j])) mx[j] = x[j];
    }
    for (int64_t j = 0; j < m; j++) sum[j] = 0.0f;
    for (int64_t c = 0; c < job->nch; c++) {
      xf_load_f32(src + c * job->in_cs, step[0], job->in_dt, x, m);
      for (int64_t j = 0; j < m; j++) {
        x[j] = expf(x[j] - mx[j]);
        sum[j] += x[j];
      }
      xf_store_f32(x, dst + c * job->out_cs, step[1], LM_F32, m);
    }
    for (int64_t c = 0; c < job->nch; c++) {
      char *o = dst + c * job->out_cs;
      for (int64_t j = 0; j < m; j++) {
        float *y = (float *)(o + j * step[1]);
        *y = *y / sum[j];
      }
    }
  }
  return LM_OK;
}

static int softmax_check(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  int axis;
  if (lm_tensor_ndim(in) < 1)
    return lm_ctx_error(ctx, LM_ESHAPE, "input is a scalar (0-d); Softmax "
                        "needs an axis");
  return xf_arg_axis(ctx, "axis", lm_tensor_ndim(in), &axis);
}

static int softmax_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  int axis, st = softmax_check(ctx);
  if (st < 0) return st;
  xf_arg_axis(ctx, "axis", lm_tensor_ndim(in), &axis);
  st = lm_tensor_new_like(in, LM_F32, LM_CPU, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  softmax_job job = {
    .in_dt = lm_tensor_dtype(in),
    .nch = lm_tensor_shape(in)[axis],
    .in_cs = lm_tensor_strides(in)[axis] *
             (int64_t)lm_dtype_size(lm_tensor_dtype(in)),
    .out_cs = lm_tensor_strides(out)[axis] * 4,
  };
  xf_iter it;
  xf_iter_init_axis(&it, in, out, axis);
  int64_t grain = XF_GRAIN / 8 / (job.nch > 0 ? job.nch : 1) + 1;
  st = xf_iter_run(lm_ctx_engine(ctx), ctx, &it, grain, softmax_row, &job);
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc softmax_args[] = {
  {"axis", LM_ARG_INT, "0", "axis the probabilities sum over (the channel "
   "axis; negative counts from the end)"},
};

const lm_op_desc lm_op_softmax = {
  .name = "Softmax",
  .alias = NULL,
  .summary = "Softmax along an axis (channels), float32",
  .doc =
    "MONAI Activations(softmax=True) / torch.softmax(x, dim=axis): input "
    "converted to float32, then per position m = max over the axis, "
    "y = exp(x - m) / sum(exp(x - m)), in float32 with float accumulation "
    "(matches torch to rtol 1e-6). Subtracting the max keeps large logits "
    "finite. A NaN anywhere along the axis makes that position's outputs "
    "NaN; all -inf or a +inf gives NaN, as torch. Output float32 with the "
    "input's shape, memory order, affine, layout and trace."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = softmax_args,
  .nargs = (int)(sizeof softmax_args / sizeof softmax_args[0]),
  .flags = 0,
  .check = softmax_check,
  .run_cpu = softmax_run,
  .run_cuda = NULL,
};
