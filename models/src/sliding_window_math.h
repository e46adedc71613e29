/* The pure arithmetic of sliding-window inference (semantics.md §8.5): where
 * the windows go along one axis, and the blending weight of a window, by
 * MONAI's rule (monai/inferers/utils.py, data/utils.py) and nnU-Net v2's
 * (nnunetv2/inference/sliding_window_prediction.py).  No tensors, no model:
 * the op in sliding_window.c builds on these, and the unit tests check them
 * against the values measured from the two libraries. */
#ifndef LM_SLIDING_WINDOW_MATH_H
#define LM_SLIDING_WINDOW_MATH_H

#include <stdbool.h>
#include <stdint.h>

typedef enum sw_rule { SW_RULE_MONAI, SW_RULE_NNUNET } sw_rule;
typedef enum sw_blend { SW_BLEND_CONSTANT, SW_BLEND_GAUSSIAN } sw_blend;

/* Window starts along one axis of n voxels (n >= roi >= 1: the image is
 * already padded up to the window).  overlap in [0, 1).
 *   MONAI: interval = roi if roi == n else max(int(roi * (1 - overlap)), 1);
 *          windows at i * interval until one reaches n, the last one moved
 *          back to end at n (_get_scan_interval, dense_patch_slices).
 *   nnU-Net: step = 1 - overlap (tile_step_size); num = ceil((n - roi) /
 *          (roi * step)) + 1 windows spread evenly, start_i = round(i *
 *          (n - roi) / (num - 1)), numpy's half-to-even rounding
 *          (compute_steps_for_sliding_window).
 * Returns the number of windows and writes the first min(count, cap) starts
 * (starts may be NULL to count).  -1 when n < roi, roi < 1 or overlap is
 * outside [0, 1). */
int64_t sw_window_starts(sw_rule rule, int64_t n, int64_t roi, double overlap,
                         int64_t *starts, int64_t cap);

/* MONAI's 1-D Gaussian profile over roi voxels, as compute_importance_map
 * computes it in float32: x = -(roi-1)/2 .. (roi-1)/2 step 1,
 * g = exp(x^2 / (-2 sigma^2)), sigma = sigma_scale * roi.  Centred between
 * voxels for even roi.  No clamping here (the clamp is over the whole map). */
void sw_gaussian_monai_1d(int64_t roi, double sigma_scale, float *out);

/* nnU-Net's 1-D profile in float64: scipy's gaussian_filter of a delta at
 * c = roi // 2 with sigma = sigma_scale * roi, truncate 4, divided by its
 * peak: exp(-(i - c)^2 / (2 sigma^2)) for |i - c| <= int(4 sigma + 0.5), 0
 * beyond.  Peak at index roi // 2 (asymmetric for even roi). */
void sw_gaussian_nnunet_1d(int64_t roi, double sigma_scale, double *out);

/* The weight map of one window of nsp axes (1..3), C order (last axis
 * fastest), float32:
 *   constant: 1 everywhere (both rules);
 *   MONAI gaussian: the outer product of the 1-D profiles in float32
 *     ((g0 * g1) * g2, torch's order), then max(w, max(min(w), 1e-3)), which
 *     is max(w, 1e-3f);
 *   nnU-Net gaussian: the product in float64 times value_scaling_factor 10,
 *     rounded to float16 as nnU-Net stores it (compute_gaussian), zeros left
 *     by the float16 underflow replaced by the smallest non-zero weight; the
 *     float16 values are kept exactly in float32.
 * An axis of roi 1 has weight 1 (a 2-D window stepped over the slices of a
 * volume).  Returns 0, or -1 if nsp or a roi is out of range. */
int sw_weight_map(sw_rule rule, sw_blend blend, int nsp, const int64_t *roi,
                  double sigma_scale, float *w);

#endif
