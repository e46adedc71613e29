/* ConvertToChannelsFirst: MONAI EnsureChannelFirst as a view (semantics.md
 * §2). */
#include <string.h>

#include "xf_util.h"

/* Letters of the input's axes: its layout when it names every dim, else the
 * NIfTI convention X, Y, Z, T, then '?'. */
static void axis_letters(const lm_tensor *t, char *out)
{
  int nd = lm_tensor_ndim(t);
  const char *lay = lm_tensor_layout(t);
  if ((int)strlen(lay) == nd) {
    memcpy(out, lay, (size_t)nd + 1);
    return;
  }
  for (int d = 0; d < nd; d++) out[d] = d < 4 ? "XYZT"[d] : '?';
  out[nd] = 0;
}

/* Where the channel axis is, or -1 when a channel axis must be added. */
static int ccf_channel_axis(lm_op_ctx *ctx, const lm_tensor *in, int *axis)
{
  int nd = lm_tensor_ndim(in);
  const char *lay = lm_tensor_layout(in);
  if (lm_arg_is_set(ctx, "channel_dim"))
    return xf_arg_axis(ctx, "channel_dim", nd, axis);
  if (lay[0] == 'C')
    return lm_ctx_error(ctx, LM_EINVAL, "the input is already channel-first "
                        "(layout \"%s\"); give 'channel_dim' to move another "
                        "axis first", lay);
  if (nd <= 3) {
    *axis = -1; /* "XYZ" (or 2-D "XY"): no channel, add one */
    return LM_OK;
  }
  if (nd == 4) {
    *axis = 3; /* "XYZT": the last axis becomes the channel */
    return LM_OK;
  }
  return lm_ctx_error(ctx, LM_ESHAPE, "cannot tell the channel axis of a %d-d "
                      "tensor (layout \"%s\"); give 'channel_dim'", nd, lay);
}

static int ccf_check(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  int axis, st = ccf_channel_axis(ctx, in, &axis);
  if (st < 0) return st;
  if (axis < 0 && lm_tensor_ndim(in) >= LM_MAX_DIMS)
    return lm_ctx_error(ctx, LM_ESHAPE, "a %d-d tensor has no room for a "
                        "channel axis", lm_tensor_ndim(in));
  return LM_OK;
}

static int ccf_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  int nd = lm_tensor_ndim(in), axis, st = ccf_check(ctx);
  char letters[LM_MAX_DIMS + 2], lay[LM_MAX_DIMS + 2];
  if (st < 0) return st;
  ccf_channel_axis(ctx, in, &axis);
  axis_letters(in, letters);
  lay[0] = 'C';
  if (axis < 0) {
    st = lm_tensor_unsqueeze(in, 0, &out);
    memcpy(lay + 1, letters, (size_t)nd + 1);
  } else {
    /* moveaxis(axis, 0): the other axes keep their order. */
    int perm[LM_MAX_DIMS], k = 1;
    perm[0] = axis;
    for (int d = 0; d < nd; d++)
      if (d != axis) {
        lay[k] = letters[d];
        perm[k++] = d;
      }
    lay[k] = 0;
    st = lm_tensor_permute(in, perm, &out);
  }
  if (st < 0) return lm_ctx_error(ctx, st, "cannot make the view");
  lm_tensor_set_layout(out, lay);
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc ccf_args[] = {
  {"channel_dim", LM_ARG_INT, "nil", "axis that holds the channels, moved "
   "first (negative counts from the end); nil = decide from the shape: "
   "3-d or less adds a channel, 4-d moves the last axis first"},
};

const lm_op_desc lm_op_convert_to_channels_first = {
  .name = "ConvertToChannelsFirst",
  .alias = "EnsureChannelFirst",
  .summary = "Put the channel axis first: (X,Y,Z) -> (1,X,Y,Z), "
             "(X,Y,Z,T) -> (T,X,Y,Z)",
  .doc =
    "MONAI EnsureChannelFirst (oracle) / Clara ConvertToChannelsFirst. "
    "Without channel_dim: a tensor of up to 3 dims (\"XYZ\") gets a size-1 "
    "channel axis in front, (X,Y,Z) -> (1,X,Y,Z); a 4-d tensor (\"XYZT\") "
    "gets its last axis moved first, moveaxis(-1, 0) -> (T,X,Y,Z), the "
    "spatial axes keeping their order (no transpose). With channel_dim, "
    "that axis is moved first. The layout becomes \"C\" followed by the "
    "remaining axes' letters (\"XYZ\" -> \"CXYZ\"). A view: no data is "
    "copied, memory order, affine and trace are kept. A layout that "
    "already starts with C is an error unless channel_dim is given; a "
    "tensor of more than 4 dims needs channel_dim.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = ccf_args,
  .nargs = (int)(sizeof ccf_args / sizeof ccf_args[0]),
  .flags = LM_OP_INLINE | LM_OP_ANY_DEVICE, /* views work anywhere */
  .check = ccf_check,
  .run_cpu = ccf_run,
  .run_cuda = NULL,
};
