/* The one kernel behind every crop, pad and patch sampler: copy a box of a
 * tensor's spatial dims, whatever part of it lies outside the input filled
 * by a padding rule, and the geometry (affine, trace) that goes with it.
 * Private to transforms/. */
#ifndef LM_XF_CROP_BOX_H
#define LM_XF_CROP_BOX_H
#include <stdint.h>
#include "lumen.h"
#include "xf_hd.h"

/* numpy.pad modes, as MONAI's pad transforms name them. */
typedef enum xf_pad_mode {
  XF_PAD_CONSTANT,  /* the value given */
  XF_PAD_EDGE,      /* repeat the border voxel */
  XF_PAD_REFLECT,   /* mirror without repeating the border (d c b | a b c d) */
  XF_PAD_SYMMETRIC  /* mirror repeating the border (b a | a b c d) */
} xf_pad_mode;

/* Source index of box position i on an axis of n voxels (-1 = the constant
 * value).  numpy.pad's reflect and symmetric repeat periodically for pads
 * wider than the axis, which the modulo reproduces.  (The CUDA box kernel
 * calls it too.) */
XF_HD static inline int64_t xf_pad_index(int64_t i, int64_t n, xf_pad_mode mode)
{
  if (i >= 0 && i < n) return i;
  if (n == 0) return -1;
  switch (mode) {
  case XF_PAD_CONSTANT: return -1;
  case XF_PAD_EDGE: return i < 0 ? 0 : n - 1;
  case XF_PAD_REFLECT: {
    if (n == 1) return 0;
    int64_t p = 2 * (n - 1), r = i % p;
    if (r < 0) r += p;
    return r < n ? r : p - r;
  }
  case XF_PAD_SYMMETRIC: {
    int64_t p = 2 * n, r = i % p;
    if (r < 0) r += p;
    return r < n ? r : p - 1 - r;
  }
  }
  return -1;
}

/* Parse string option `opt` ("constant", "edge", "reflect", "symmetric";
 * "replicate" = edge as torch names it).  Errors name the option. */
int xf_arg_pad_mode(lm_op_ctx *ctx, const char *opt, xf_pad_mode *mode);

/* How many trailing dims of t are spatial: the trailing X/Y/Z letters of
 * its layout when it has one, else `hint` (2 or 3) when positive, else
 * min(ndim, 3). */
int xf_spatial_dims(const lm_tensor *t, int hint);

/* Fill dst (the box's shape: in's leading dims, then the box size in the
 * last nsp dims; any strides, in's dtype) with in's values at
 * box_start + offset, outside the input per mode (value for constant).
 * Spread over the compute threads.  dst's metadata is not touched. */
int xf_crop_box_into(lm_op_ctx *ctx, lm_tensor *in, int nsp,
                     const int64_t *box_start, xf_pad_mode mode, double value,
                     lm_tensor *dst);

/* A new tensor holding the box [box_start, box_start + box_size) of in's
 * last nsp dims (in's memory order, dtype, layout and trace; the affine
 * moved to the box's first voxel).  No trace entry is pushed. */
int xf_crop_box(lm_op_ctx *ctx, lm_tensor *in, int nsp,
                const int64_t *box_start, const int64_t *box_size,
                xf_pad_mode mode, double value, lm_tensor **out);

/* The affine of a box starting at voxel box_start of a grid with affine
 * `in` (the translation moves by in . box_start; nsp affine columns). */
void xf_box_affine(const double in[16], int nsp, const int64_t *box_start,
                   double out[16]);

/* Push the trace entry of `op` on out (state before = in) with params
 * "box_start=a,b,c;box_end=d,e,f[;extra]" (the box in in's voxels; end
 * exclusive; extra appended when not NULL). */
int xf_trace_push_box(lm_tensor *out, const char *op, const lm_tensor *in,
                      int nsp, const int64_t *box_start,
                      const int64_t *box_end, const char *extra);

/* The whole tail of a crop or pad op: crop the box, push the trace entry
 * `op` (extra params as in xf_trace_push_box), return the box as results
 * box_start / box_end and set the output as output `slot`. */
int xf_crop_box_output(lm_op_ctx *ctx, lm_tensor *in, int nsp,
                       const int64_t *box_start, const int64_t *box_size,
                       xf_pad_mode mode, double value, const char *op,
                       const char *extra, int slot);

/* Set results `name` to n integers. */
int xf_result_ints(lm_op_ctx *ctx, const char *name, const int64_t *v, int n);

/* Write n integers as "a,b,c" into buf (size cap). */
void xf_format_ints(char *buf, size_t cap, const int64_t *v, int n);

/* A per-axis integer list option of nsp values: a single value is repeated
 * (MONAI's ensure_tuple_rep); nil gives def.  Values must be integral. */
int xf_arg_spatial_ints(lm_op_ctx *ctx, const char *opt, int nsp, int64_t def,
                        int64_t *out);

#endif
