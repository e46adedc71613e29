/* Foreground masks over a tensor's spatial dims, and their bounding boxes:
 * the selection step of CropForeground and the patch samplers.  Private to
 * transforms/. */
#ifndef LM_XF_CROP_MASK_H
#define LM_XF_CROP_MASK_H
#include <stdint.h>
#include "lumen.h"

typedef enum xf_select {
  XF_SELECT_GT,      /* x > threshold (MONAI is_positive with threshold 0) */
  XF_SELECT_NONZERO  /* x != 0 (nnU-Net; NaN counts as non-zero, as numpy) */
} xf_select;

/* mask (dense, C order over the last nsp dims of t, numel = their product)
 * = OR over the leading-dim entries (channels) from `first_channel` on of
 * select(x).  Any dtype and strides; spread over the compute threads. */
int xf_spatial_any(lm_op_ctx *ctx, lm_tensor *t, int nsp, int64_t first_channel,
                   xf_select sel, double threshold, uint8_t *mask);

/* Half-open bounding box [lo, hi) of the non-zero entries of a dense C-order
 * mask of shape n (nsp dims).  Returns false (lo = hi = 0) when the mask is
 * empty. */
bool xf_mask_bbox(const uint8_t *mask, int nsp, const int64_t *n, int64_t *lo,
                  int64_t *hi);

#endif
