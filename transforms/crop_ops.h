/* The boxes of SpatialCrop, CenterCrop, SpatialPad and DivisiblePad from
 * their options, shared by the CPU ops and the CUDA plugin (which differ
 * only in the copy of the box). */
#ifndef LM_XF_CROP_OPS_H
#define LM_XF_CROP_OPS_H
#ifdef __cplusplus
extern "C" {
#endif

#include "crop_box.h"

typedef struct xf_box_plan {
  int nsp;                     /* spatial dims (the last nsp) */
  int64_t start[3], size[3];   /* the box in the input's voxels */
  xf_pad_mode mode;            /* outside the input */
  double value;                /* mode constant's value */
  char extra[64];              /* trace params after the box; "" none */
} xf_box_plan;

/* Read the op's options into p; errors set on ctx name the option. */
int xf_spatial_crop_plan(lm_op_ctx *ctx, xf_box_plan *p);
int xf_center_crop_plan(lm_op_ctx *ctx, xf_box_plan *p);
int xf_spatial_pad_plan(lm_op_ctx *ctx, xf_box_plan *p);
int xf_divisible_pad_plan(lm_op_ctx *ctx, xf_box_plan *p);

#ifdef __cplusplus
}
#endif

#endif
