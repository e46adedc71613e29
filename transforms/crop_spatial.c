/* SpatialCrop and CenterCrop: MONAI's Crop.compute_slices rules
 * (croppad/array.py; semantics.md §8.3). */
#include <string.h>

#include "crop_ops.h"

/* Number of spatial dims from the first list option given (its length),
 * else the layout. */
static int crop_nsp(lm_op_ctx *ctx, const lm_tensor *in, const char *const *opts)
{
  for (int i = 0; opts[i]; i++)
    if (lm_arg_is_set(ctx, opts[i])) {
      int n = 0;
      lm_arg_numbers(ctx, opts[i], &n);
      if (n == 2 || n == 3) return xf_spatial_dims(in, n);
    }
  return xf_spatial_dims(in, 0);
}

/* MONAI: start = max(start, 0), end = max(end, start), then Python slicing
 * clips both to the axis. */
static void clip_box(const int64_t *n, int nsp, int64_t *start, int64_t *end)
{
  for (int d = 0; d < nsp; d++) {
    if (start[d] < 0) start[d] = 0;
    if (end[d] < start[d]) end[d] = start[d];
    if (start[d] > n[d]) start[d] = n[d];
    if (end[d] > n[d]) end[d] = n[d];
  }
}

static int sc_box(lm_op_ctx *ctx, int64_t *start, int64_t *end, int *nspp)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  static const char *const opts[] = {"roi_size", "roi_center", "roi_start",
                                     "roi_end", NULL};
  int nsp = crop_nsp(ctx, in, opts), st;
  const int64_t *n = lm_tensor_shape(in) + lm_tensor_ndim(in) - nsp;
  bool centred = lm_arg_is_set(ctx, "roi_center") ||
                 lm_arg_is_set(ctx, "roi_size");
  bool bounds = lm_arg_is_set(ctx, "roi_start") ||
                lm_arg_is_set(ctx, "roi_end");
  if (centred == bounds)
    return lm_ctx_error(ctx, LM_EINVAL, "give either 'roi_center' and "
                        "'roi_size' or 'roi_start' and 'roi_end'");
  if (centred) {
    int64_t c[3], s[3];
    if (!lm_arg_is_set(ctx, "roi_center") || !lm_arg_is_set(ctx, "roi_size"))
      return lm_ctx_error(ctx, LM_EINVAL, "'roi_center' and 'roi_size' go "
                          "together");
    if ((st = xf_arg_spatial_ints(ctx, "roi_center", nsp, 0, c)) < 0 ||
        (st = xf_arg_spatial_ints(ctx, "roi_size", nsp, 0, s)) < 0)
      return st;
    for (int d = 0; d < nsp; d++) {
      if (s[d] < 0)
        return lm_ctx_error(ctx, LM_EINVAL, "option 'roi_size' value %d is "
                            "negative (%lld)", d + 1, (long long)s[d]);
      start[d] = c[d] - s[d] / 2;
      end[d] = (start[d] < 0 ? 0 : start[d]) + s[d];
    }
  } else {
    if (!lm_arg_is_set(ctx, "roi_start") || !lm_arg_is_set(ctx, "roi_end"))
      return lm_ctx_error(ctx, LM_EINVAL, "'roi_start' and 'roi_end' go "
                          "together");
    if ((st = xf_arg_spatial_ints(ctx, "roi_start", nsp, 0, start)) < 0 ||
        (st = xf_arg_spatial_ints(ctx, "roi_end", nsp, 0, end)) < 0)
      return st;
  }
  clip_box(n, nsp, start, end);
  *nspp = nsp;
  return LM_OK;
}

static int sc_check(lm_op_ctx *ctx)
{
  int64_t s[3], e[3];
  int nsp;
  return sc_box(ctx, s, e, &nsp);
}

/* A crop is a box inside the input: constant mode never applies. */
static void crop_plan(xf_box_plan *p, const int64_t *s, const int64_t *e,
                      int nsp)
{
  memset(p, 0, sizeof *p);
  p->nsp = nsp;
  p->mode = XF_PAD_CONSTANT;
  for (int d = 0; d < nsp; d++) {
    p->start[d] = s[d];
    p->size[d] = e[d] - s[d];
  }
}

int xf_spatial_crop_plan(lm_op_ctx *ctx, xf_box_plan *p)
{
  int64_t s[3], e[3];
  int nsp, st = sc_box(ctx, s, e, &nsp);
  if (st < 0) return st;
  crop_plan(p, s, e, nsp);
  return LM_OK;
}

static int sc_run(lm_op_ctx *ctx)
{
  xf_box_plan p;
  int st = xf_spatial_crop_plan(ctx, &p);
  if (st < 0) return st;
  return xf_crop_box_output(ctx, lm_ctx_input(ctx, 0), p.nsp, p.start, p.size,
                            p.mode, p.value, "SpatialCrop", NULL, 0);
}

static const lm_arg_desc sc_args[] = {
  {"roi_center", LM_ARG_NUMBERS, "nil", "voxel index of the box centre, "
   "one per spatial dim (or one for all)"},
  {"roi_size", LM_ARG_NUMBERS, "nil", "box size in voxels"},
  {"roi_start", LM_ARG_NUMBERS, "nil", "first voxel of the box"},
  {"roi_end", LM_ARG_NUMBERS, "nil", "one past the last voxel of the box"},
};

const lm_op_desc lm_op_spatial_crop = {
  .name = "SpatialCrop",
  .alias = NULL,
  .summary = "Crop a box given by its centre and size or by its start and "
             "end, clipped to the image",
  .doc =
    "MONAI SpatialCrop (croppad/array.py, Crop.compute_slices), the oracle. "
    "Acts on the last 3 dims (2 when the options have 2 values or the "
    "layout has 2 spatial letters); leading (channel) dims are kept.\n"
    "  roi_center c, roi_size s: start = max(c - s//2, 0), end = start + s\n"
    "  roi_start, roi_end: start = max(roi_start, 0), end = max(roi_end, "
    "start)\n"
    "then both are clipped to the axis as Python slicing does, so a box past "
    "the border gives a smaller output (never padding). Example: axis of 10, "
    "roi_center 8, roi_size 6 -> voxels 5..9 (5 of them).\n"
    "The output keeps dtype, memory order, layout; its affine moves to the "
    "box's first voxel (translation + A . start), and a trace entry "
    "SpatialCrop box_start=..;box_end=.. records the box (in input voxels) "
    "for RestoreOriginalShape. Results: box_start, box_end."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = sc_args,
  .nargs = (int)(sizeof sc_args / sizeof sc_args[0]),
  .flags = 0,
  .check = sc_check,
  .run_cpu = sc_run,
  .run_cuda = NULL,
};

static int cc_box(lm_op_ctx *ctx, int64_t *start, int64_t *end, int *nspp)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  static const char *const opts[] = {"roi_size", NULL};
  int nsp = crop_nsp(ctx, in, opts), st;
  const int64_t *n = lm_tensor_shape(in) + lm_tensor_ndim(in) - nsp;
  int64_t s[3];
  if ((st = xf_arg_spatial_ints(ctx, "roi_size", nsp, 0, s)) < 0) return st;
  for (int d = 0; d < nsp; d++) {
    if (s[d] <= 0) s[d] = n[d]; /* MONAI fall_back_tuple */
    start[d] = n[d] / 2 - s[d] / 2;
    end[d] = (start[d] < 0 ? 0 : start[d]) + s[d];
  }
  clip_box(n, nsp, start, end);
  *nspp = nsp;
  return LM_OK;
}

static int cc_check(lm_op_ctx *ctx)
{
  int64_t s[3], e[3];
  int nsp;
  return cc_box(ctx, s, e, &nsp);
}

int xf_center_crop_plan(lm_op_ctx *ctx, xf_box_plan *p)
{
  int64_t s[3], e[3];
  int nsp, st = cc_box(ctx, s, e, &nsp);
  if (st < 0) return st;
  crop_plan(p, s, e, nsp);
  return LM_OK;
}

static int cc_run(lm_op_ctx *ctx)
{
  xf_box_plan p;
  int st = xf_center_crop_plan(ctx, &p);
  if (st < 0) return st;
  return xf_crop_box_output(ctx, lm_ctx_input(ctx, 0), p.nsp, p.start, p.size,
                            p.mode, p.value, "CenterCrop", NULL, 0);
}

static const lm_arg_desc cc_args[] = {
  {"roi_size", LM_ARG_NUMBERS, NULL, "box size in voxels, one per spatial "
   "dim (or one for all); <= 0 keeps the axis"},
};

const lm_op_desc lm_op_center_crop = {
  .name = "CenterCrop",
  .alias = "CenterSpatialCrop",
  .summary = "Crop a box of the given size around the image centre",
  .doc =
    "MONAI CenterSpatialCrop (croppad/array.py), the oracle: per spatial "
    "axis of n voxels and size s (s <= 0 -> n), start = max(n//2 - s//2, 0), "
    "end = min(start + s, n); a size larger than the axis keeps the whole "
    "axis (no padding). Example: n = 7, s = 4 -> voxels 1..4. Geometry, trace "
    "(CenterCrop box_start=..;box_end=..) and results (box_start, box_end) "
    "as SpatialCrop."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = cc_args,
  .nargs = (int)(sizeof cc_args / sizeof cc_args[0]),
  .flags = 0,
  .check = cc_check,
  .run_cpu = cc_run,
  .run_cuda = NULL,
};
