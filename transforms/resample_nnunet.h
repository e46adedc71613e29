/* nnU-Net v2 resampling (semantics.md §4.3-4.4): the resample_data_or_seg
 * rules (round-based shape, separate-z decision, skimage resize order 3 /
 * order 1 one-hot for labels, order 0 across slices) as a function that
 * ScaleByResolution calls with rule='nnunet'.  Private to transforms/. */
#ifndef LM_RESAMPLE_NNUNET_H
#define LM_RESAMPLE_NNUNET_H
#include <stdbool.h>
#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

struct nn_axis;

/* The data loop of one resampling, planned by xf_resample_nnunet_to_shape:
 * `out` (dense: X fastest, then Y, Z, leading dims slowest) from `in` with
 * the tap tables of resample_nnunet_kernels.h.  A backend (the CUDA plugin)
 * runs it with nnU-Net's arithmetic; errors are reported on ctx. */
typedef struct xf_nnunet_loop {
  lm_tensor *in, *out;
  bool is_label;
  bool same;           /* shapes equal: out = in, values as they are */
  int lead;            /* leading dims */
  int64_t nch;         /* their product */
  int64_t n[3], m[3];  /* input and output spatial shape */
  int axis;            /* separate-z axis, or -1 for the 3-D path */
  int p, q;            /* separate: the plane axes, p the faster */
  const struct nn_axis *ap, *aq, *az;  /* separate: along p, q, axis */
  const struct nn_axis *ax[3];         /* 3-D path */
} xf_nnunet_loop;
typedef int (*xf_nnunet_loop_fn)(lm_op_ctx *ctx, const xf_nnunet_loop *l);

typedef struct xf_nnunet_opts {
  int separate_z;               /* -1 auto (anisotropy rule), 0 no, 1 yes */
  double anisotropy_threshold;  /* 3 */
  int order;                    /* spline order for data (3) or labels (1 one-hot) */
  int order_z;                  /* order across slices when separate (0) */
  bool is_label;                /* one-hot + threshold path */
  xf_nnunet_loop_fn loop;       /* NULL: the CPU loops (else the output is
                                 * allocated on the input's device) */
} xf_nnunet_opts;

/* nnU-Net's defaults for images: auto separate z, threshold 3, order 3,
 * order_z 0, not a label.  Labels: set is_label and order 1. */
void xf_nnunet_opts_init(xf_nnunet_opts *o);

/* Resample `in`, channel-first (C, X, Y, Z) or a bare (X, Y, Z) volume (any
 * dtype, CPU, any strides), from the spacing of its affine (column norms)
 * to target_spacing (in the tensor's own axis order X, Y, Z, not nnU-Net's
 * transposed order; the rules are symmetric in the axes).
 *
 * Shape: new[d] = rint(n[d] * s[d] / t[d]) (half-even, nnU-Net's round).
 * Coordinates: voxel edges aligned, c = (o + 0.5) * n / m - 0.5.  When the
 * shape does not change the input values are copied unchanged (nnU-Net
 * returns its input).  Data: computed in double, stored in the input's
 * dtype (v2's dtype_out); labels: integer labels, one-hot per label in
 * ascending order, out[m >= 0.5] = label.
 *
 * The output affine is A · diag(n/m) with the origin moved to input index
 * 0.5 * (n/m - 1) per axis: the world position of each output voxel centre
 * is exactly where nnU-Net's grid samples it (a sub-voxel shift against
 * MONAI's voxel-0-centre alignment).  One trace entry "ScaleByResolution"
 * with params
 *   "rule=nnunet;target=tx,ty,tz;separate_z=0|1;axis=a;order=k;order_z=k;
 *    is_label=0|1;shape_in=X,Y,Z"
 * is pushed (shape and affine before the op are in the entry itself); the
 * inverse is this same function to the recorded input shape, as nnU-Net's
 * export does (xf_resample_nnunet_to_shape).
 *
 * ctx may be NULL (unit tests); then errors are not recorded and
 * cancellation is not checked.  Returns LM_OK or a negative status. */
int xf_resample_nnunet(lm_op_ctx *ctx, lm_tensor *in,
                       const double target_spacing[3],
                       const xf_nnunet_opts *o, lm_tensor **out);

/* The same resampling to an explicit spatial shape (new_shape, X Y Z):
 * nnU-Net's resample_data_or_seg_to_shape, which its export uses to bring
 * logits back to the cropped grid.  current/new spacings decide the
 * separate-z axis as in nnU-Net (pass new = the spacing the shape implies).
 * The affine is set as above from the shape ratio. */
int xf_resample_nnunet_to_shape(lm_op_ctx *ctx, lm_tensor *in,
                                const int64_t new_shape[3],
                                const double current_spacing[3],
                                const double new_spacing[3],
                                const xf_nnunet_opts *o, lm_tensor **out);

/* The separate-z decision of determine_do_sep_z_and_axis: returns the
 * low-resolution axis (0..2) to resample separately, or -1 for a joint 3-D
 * resampling. */
int xf_nnunet_separate_axis(const double current_spacing[3],
                            const double new_spacing[3],
                            const xf_nnunet_opts *o);

/* Element offset in t of leading index c (row-major over t's first `lead`
 * dims: the channels and any batch dims before the 3 spatial ones). */
int64_t xf_nnunet_lead_offset(const lm_tensor *t, int lead, int64_t c);

#ifdef __cplusplus
}
#endif
#endif
