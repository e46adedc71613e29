/* SpatialPad and DivisiblePad: MONAI's pad rules (croppad/array.py;
 * semantics.md §8.2).  Both pad only, never crop. */
#include <stdio.h>
#include <string.h>

#include "crop_ops.h"

typedef struct pad_opts {
  int nsp;
  int64_t before[3], after[3];
  xf_pad_mode mode;
  double value;
  bool at_end;
} pad_opts;

/* Common options; target[] is the wanted size per axis (already resolved
 * by the op). */
static int pad_common(lm_op_ctx *ctx, const char *size_opt, pad_opts *p)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  int n = 0, st;
  if (lm_arg_is_set(ctx, size_opt)) lm_arg_numbers(ctx, size_opt, &n);
  p->nsp = xf_spatial_dims(in, n == 2 || n == 3 ? n : 0);
  if ((st = xf_arg_pad_mode(ctx, "mode", &p->mode)) < 0) return st;
  p->value = lm_arg_number(ctx, "value");
  const char *m = lm_arg_string(ctx, "method");
  if (!m || !strcmp(m, "symmetric")) p->at_end = false;
  else if (!strcmp(m, "end")) p->at_end = true;
  else
    return lm_ctx_error(ctx, LM_EINVAL, "option 'method' = '%s' is not "
                        "'symmetric' or 'end'", m);
  return LM_OK;
}

/* MONAI SpatialPad._determine_data_pad_width: w = max(target - n, 0),
 * symmetric (w//2, w - w//2), end (0, w). */
static void pad_split(pad_opts *p, const int64_t *n, const int64_t *target)
{
  for (int d = 0; d < p->nsp; d++) {
    int64_t w = target[d] - n[d];
    if (w < 0) w = 0;
    p->before[d] = p->at_end ? 0 : w / 2;
    p->after[d] = w - p->before[d];
  }
}

/* The box of a pad: it starts before the input and ends after it. */
static void pad_plan(lm_op_ctx *ctx, const pad_opts *p, xf_box_plan *b)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  const int64_t *n = lm_tensor_shape(in) + lm_tensor_ndim(in) - p->nsp;
  memset(b, 0, sizeof *b);
  b->nsp = p->nsp;
  b->mode = p->mode;
  b->value = p->value;
  for (int d = 0; d < p->nsp; d++) {
    b->start[d] = -p->before[d];
    b->size[d] = n[d] + p->before[d] + p->after[d];
  }
  static const char *const names[] = {"constant", "edge", "reflect",
                                      "symmetric"};
  snprintf(b->extra, sizeof b->extra, "mode=%s", names[p->mode]);
}

static int pad_output(lm_op_ctx *ctx, const pad_opts *p, const char *op)
{
  xf_box_plan b;
  pad_plan(ctx, p, &b);
  return xf_crop_box_output(ctx, lm_ctx_input(ctx, 0), b.nsp, b.start, b.size,
                            b.mode, b.value, op, b.extra, 0);
}

static int sp_prepare(lm_op_ctx *ctx, pad_opts *p)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  int st = pad_common(ctx, "spatial_size", p);
  if (st < 0) return st;
  const int64_t *n = lm_tensor_shape(in) + lm_tensor_ndim(in) - p->nsp;
  int64_t target[3];
  if ((st = xf_arg_spatial_ints(ctx, "spatial_size", p->nsp, 0, target)) < 0)
    return st;
  for (int d = 0; d < p->nsp; d++)
    if (target[d] <= 0) target[d] = n[d]; /* MONAI fall_back_tuple */
  pad_split(p, n, target);
  return LM_OK;
}

int xf_spatial_pad_plan(lm_op_ctx *ctx, xf_box_plan *b)
{
  pad_opts p;
  int st = sp_prepare(ctx, &p);
  if (st < 0) return st;
  pad_plan(ctx, &p, b);
  return LM_OK;
}

static int sp_check(lm_op_ctx *ctx)
{
  pad_opts p;
  return sp_prepare(ctx, &p);
}

static int sp_run(lm_op_ctx *ctx)
{
  pad_opts p;
  int st = sp_prepare(ctx, &p);
  return st < 0 ? st : pad_output(ctx, &p, "SpatialPad");
}

#define PAD_COMMON_ARGS                                                     \
  {"method", LM_ARG_STRING, "'symmetric'", "'symmetric': the odd voxel goes " \
   "at the end; 'end': all padding after the data"},                         \
  {"mode", LM_ARG_STRING, "'constant'", "'constant' (value), 'edge', "       \
   "'reflect' or 'symmetric' (numpy.pad's modes)"},                          \
  {"value", LM_ARG_NUMBER, "0", "the constant of mode 'constant'"}

static const lm_arg_desc sp_args[] = {
  {"spatial_size", LM_ARG_NUMBERS, NULL, "size to pad to, one per spatial "
   "dim (or one for all); <= 0 keeps the axis"},
  PAD_COMMON_ARGS,
};

const lm_op_desc lm_op_spatial_pad = {
  .name = "SpatialPad",
  .alias = NULL,
  .summary = "Pad the spatial dims up to a size (never crops)",
  .doc =
    "MONAI SpatialPad (croppad/array.py), the oracle: per spatial axis of n "
    "voxels and target t (t <= 0 -> n), w = max(t - n, 0); method "
    "'symmetric' puts w//2 before and w - w//2 after (the odd voxel at the "
    "end), 'end' puts all w after. Axes already at least t are kept. "
    "Example: n = 5, t = 8 -> 1 before, 2 after. Modes are numpy.pad's: "
    "constant (value), edge, reflect (d c b | a b c d), symmetric "
    "(b a | a b c d). The affine moves to the new first voxel (translation "
    "- A . before); the trace entry SpatialPad box_start=-before;box_end="
    "n+after;mode=.. lets RestoreOriginalShape crop it away. Results: "
    "box_start, box_end (in input voxels)."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = sp_args,
  .nargs = (int)(sizeof sp_args / sizeof sp_args[0]),
  .flags = 0,
  .check = sp_check,
  .run_cpu = sp_run,
  .run_cuda = NULL,
};

static int dp_prepare(lm_op_ctx *ctx, pad_opts *p)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  int st = pad_common(ctx, "k", p);
  if (st < 0) return st;
  const int64_t *n = lm_tensor_shape(in) + lm_tensor_ndim(in) - p->nsp;
  int64_t k[3], target[3];
  if ((st = xf_arg_spatial_ints(ctx, "k", p->nsp, 1, k)) < 0) return st;
  for (int d = 0; d < p->nsp; d++) /* compute_divisible_spatial_size */
    target[d] = k[d] <= 0 ? n[d] : (n[d] + k[d] - 1) / k[d] * k[d];
  pad_split(p, n, target);
  return LM_OK;
}

int xf_divisible_pad_plan(lm_op_ctx *ctx, xf_box_plan *b)
{
  pad_opts p;
  int st = dp_prepare(ctx, &p);
  if (st < 0) return st;
  pad_plan(ctx, &p, b);
  return LM_OK;
}

static int dp_check(lm_op_ctx *ctx)
{
  pad_opts p;
  return dp_prepare(ctx, &p);
}

static int dp_run(lm_op_ctx *ctx)
{
  pad_opts p;
  int st = dp_prepare(ctx, &p);
  return st < 0 ? st : pad_output(ctx, &p, "DivisiblePad");
}

static const lm_arg_desc dp_args[] = {
  {"k", LM_ARG_NUMBERS, NULL, "divisor, one per spatial dim (or one for "
   "all); <= 0 keeps the axis"},
  PAD_COMMON_ARGS,
};

const lm_op_desc lm_op_divisible_pad = {
  .name = "DivisiblePad",
  .alias = NULL,
  .summary = "Pad the spatial dims up to the next multiple of k",
  .doc =
    "MONAI DivisiblePad (croppad/array.py), the oracle: per spatial axis of "
    "n voxels the target is ceil(n / k) * k (k <= 0 -> n; "
    "compute_divisible_spatial_size), then SpatialPad with the same method, "
    "mode and value. Example: n = 10, k = 4 -> 12 (1 before, 1 after); "
    "n = 13, k = 16 -> 16 (1 before, 2 after). Trace entry DivisiblePad, "
    "geometry and results as SpatialPad."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = dp_args,
  .nargs = (int)(sizeof dp_args / sizeof dp_args[0]),
  .flags = 0,
  .check = dp_check,
  .run_cpu = dp_run,
  .run_cuda = NULL,
};
