/* Orientation: MONAI Orientation / nibabel ornt_transform (semantics.md §3):
 * an exact flip and permutation of the spatial axes, no interpolation. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "orientation.h"
#include "resample.h"
#include "xf_util.h"

/* World axis (0 = L/R, 1 = P/A, 2 = I/S) and sign of an axis code letter. */
static int code_axis(char ch, int *sign)
{
  static const char pos[] = "RAS", neg[] = "LPI";
  ch = (char)toupper((unsigned char)ch);
  for (int w = 0; w < 3; w++) {
    if (ch == pos[w]) { *sign = 1; return w; }
    if (ch == neg[w]) { *sign = -1; return w; }
  }
  return -1;
}

/* For each output spatial axis b: the input axis it comes from and whether
 * it is flipped (ornt_transform(io_orientation(A), axcodes2ornt(codes))). */
static int orientation_plan(lm_op_ctx *ctx, lm_tensor *in, int from[3],
                            bool flip[3], char src_codes[4])
{
  const char *codes = lm_arg_string(ctx, "axcodes");
  int nsp = xf_spatial_ndim(in);
  if (nsp != 3)
    return lm_ctx_error(ctx, LM_ESHAPE, "needs 3 spatial dims (the last "
                        "three), got a %d-d tensor with layout \"%s\"",
                        lm_tensor_ndim(in), lm_tensor_layout(in));
  if (strlen(codes) != 3)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'axcodes' must be 3 letters "
                        "such as 'RAS' or 'LPS' (got '%s')", codes);
  int dst_axis[3], dst_sign[3], seen = 0;
  for (int b = 0; b < 3; b++) {
    dst_axis[b] = code_axis(codes[b], &dst_sign[b]);
    if (dst_axis[b] < 0 || (seen & (1 << dst_axis[b])))
      return lm_ctx_error(ctx, LM_EINVAL, "option 'axcodes' '%s': each of "
                          "L/R, P/A, I/S must appear once", codes);
    seen |= 1 << dst_axis[b];
  }
  lm_tensor_orientation(in, src_codes);
  for (int a = 0; a < 3; a++) {
    int s, w = code_axis(src_codes[a], &s);
    if (w < 0)
      return lm_ctx_error(ctx, LM_EINVAL, "the affine's orientation is "
                          "undetermined (\"%s\": a zero or degenerate "
                          "column)", src_codes);
    for (int b = 0; b < 3; b++)
      if (dst_axis[b] == w) {
        from[b] = a;
        flip[b] = s != dst_sign[b];
      }
  }
  return LM_OK;
}

static int orientation_check(lm_op_ctx *ctx)
{
  int from[3];
  bool flip[3];
  char src[4];
  return orientation_plan(ctx, lm_ctx_input(ctx, 0), from, flip, src);
}

int xf_orientation_view(lm_op_ctx *ctx, lm_tensor *in, lm_tensor **view,
                        bool *any_flip, double B[16])
{
  int from[3];
  bool flip[3];
  char src[4];
  int st = orientation_plan(ctx, in, from, flip, src);
  if (st < 0) return st;
  *any_flip = false;
  int nd = lm_tensor_ndim(in), lead = nd - 3;
  const int64_t *sh = lm_tensor_shape(in), *str = lm_tensor_strides(in);
  int64_t shape[LM_MAX_DIMS], strides[LM_MAX_DIMS], offset = 0;
  for (int d = 0; d < lead; d++) {
    shape[d] = sh[d];
    strides[d] = str[d];
  }
  const double *A = lm_tensor_affine(in);
  memcpy(B, A, 16 * sizeof(double));
  for (int b = 0; b < 3; b++) {
    int a = from[b];
    int64_t n = sh[lead + a];
    shape[lead + b] = n;
    strides[lead + b] = flip[b] ? -str[lead + a] : str[lead + a];
    if (flip[b]) {
      *any_flip = true;
      offset += (n - 1) * str[lead + a];
    }
    /* inv_ornt_aff: the column moves to b, negated when flipped, and the
     * origin moves to the old last voxel along it. */
    for (int r = 0; r < 3; r++) {
      B[r * 4 + b] = flip[b] ? -A[r * 4 + a] : A[r * 4 + a];
      if (flip[b]) B[r * 4 + 3] += (double)(n - 1) * A[r * 4 + a];
    }
  }
  st = lm_tensor_view(in, nd, shape, strides, offset, view);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot make the view");
  return LM_OK;
}

int xf_orientation_finish(lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out,
                          const double B[16], bool copied)
{
  char src[4], params[64];
  if (copied) {
    lm_tensor_set_layout(out, lm_tensor_layout(in));
    lm_tensor_trace_copy(out, in);
  }
  lm_tensor_set_affine(out, B);
  lm_tensor_orientation(in, src);
  snprintf(params, sizeof params, "axcodes=%.3s;from=%.3s",
           lm_arg_string(ctx, "axcodes"), src);
  int st = lm_tensor_trace_push(out, "Orientation", params, lm_tensor_ndim(in),
                                lm_tensor_shape(in), lm_tensor_affine(in));
  if (st < 0) return lm_ctx_error(ctx, st, "cannot record the trace");
  return LM_OK;
}

static int orientation_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *view = NULL, *out = NULL;
  bool any_flip;
  double B[16];
  int st = xf_orientation_view(ctx, in, &view, &any_flip, B);
  if (st < 0) return st;
  if (any_flip) {
    /* Negative strides are not handed on: copy into the view's memory
     * order, which keeps the copy streaming. */
    int order[LM_MAX_DIMS];
    xf_memory_order(view, order);
    st = lm_tensor_new_ordered(lm_ctx_engine(ctx), lm_tensor_dtype(in),
                               lm_tensor_ndim(view), lm_tensor_shape(view),
                               order, LM_CPU, &out);
    if (st >= 0) st = lm_tensor_copy(out, view);
    lm_tensor_release(view);
    if (st < 0) {
      lm_tensor_release(out);
      return lm_ctx_error(ctx, st, "cannot copy the reoriented data");
    }
  } else {
    out = view; /* a permutation (or nothing): a view is exact */
  }
  st = xf_orientation_finish(ctx, in, out, B, any_flip);
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc orientation_args[] = {
  {"axcodes", LM_ARG_STRING, "'RAS'", "target orientation: the world "
   "direction each spatial axis points to (L/R, P/A, I/S), nibabel "
   "convention: 'RAS' = axis 0 runs to the Right, 1 Anterior, 2 Superior"},
};

const lm_op_desc lm_op_orientation = {
  .name = "Orientation",
  .alias = NULL,
  .summary = "Flip and permute the spatial axes to an orientation code "
             "(RAS, LPS, ...), exactly, updating the affine",
  .doc =
    "MONAI Orientation (oracle: nibabel io_orientation / axcodes2ornt / "
    "ornt_transform / inv_ornt_aff). The source orientation is "
    "aff2axcodes(affine) (nibabel 5.0 io_orientation); every source axis "
    "is flipped where its direction opposes the target and moved to the "
    "position of its world axis in axcodes. No interpolation: values are "
    "moved exactly (a view when nothing is flipped, else a copy). The "
    "affine becomes A · inv_ornt_aff: columns permuted and negated for "
    "flipped axes, the origin moved to the old last voxel of each flipped "
    "axis; oblique affines stay oblique. Acts on the last 3 dims; leading "
    "(channel) dims and the layout letters are kept. Example: "
    "A = diag(-0.8, -0.8, 2.5), t = (100, 120, -50), shape (10, 12, 7) to "
    "RAS gives diag(0.8, 0.8, 2.5), t = (92.8, 111.2, -50). Pushes a trace "
    "entry \"Orientation\" (axcodes=..;from=..) that RestoreOriginalShape "
    "undoes exactly."
    " Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = orientation_args,
  .nargs = (int)(sizeof orientation_args / sizeof orientation_args[0]),
  .flags = 0,
  .check = orientation_check,
  .run_cpu = orientation_run,
  .run_cuda = NULL,
};
