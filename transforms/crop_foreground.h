/* CropForeground's options, MONAI box rule and nnU-Net segmentation
 * geometry, shared by the CPU op and the CUDA plugin (which differ in how
 * the mask is built and the data copied).  Private to transforms/. */
#ifndef LM_XF_CROP_FOREGROUND_H
#define LM_XF_CROP_FOREGROUND_H
#include <stdbool.h>
#include <stdint.h>
#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "crop_box.h"

typedef struct xf_cf_opts {
  bool nnunet;
  int nsp, conn;
  int64_t margin[3], k[3];
  bool allow_smaller;
  double thr;
  xf_pad_mode mode;
  double value;
} xf_cf_opts;

/* Read and check the options and the label's shape (errors name them). */
int xf_cf_prepare(lm_op_ctx *ctx, xf_cf_opts *o);

/* MONAI's box from the mask's bounding box [lo, hi) (spatial shape n):
 * margin, allow_smaller, k_divisible. */
void xf_cf_monai_box(const xf_cf_opts *o, const int64_t *n, int64_t *lo,
                     int64_t *hi);

/* The nnU-Net seg's tensor on dev, data not set: the box crop of the label
 * (crop, when there is a label) in a signed dtype, or (1, size) int16 with
 * the image box's geometry.  Then, once filled, its trace entry. */
int xf_cf_seg_new(lm_op_ctx *ctx, const xf_cf_opts *o, lm_tensor *img,
                  lm_tensor *lab, lm_tensor *crop, const int64_t *size,
                  const int64_t *lo, lm_device dev, lm_tensor **out);
int xf_cf_seg_trace(const xf_cf_opts *o, lm_tensor *out, lm_tensor *img,
                    lm_tensor *lab, const int64_t *lo, const int64_t *size);

#ifdef __cplusplus
}
#endif

#endif
