/* The numeric kernels behind xf_resample_nnunet: skimage `resize` (scipy
 * `ndimage.zoom`, grid mode, mode 'nearest') along one axis at a time, and
 * nnU-Net's one-hot label vote.  Private to resample_nnunet.c. */
#ifndef LM_RESAMPLE_NNUNET_KERNELS_H
#define LM_RESAMPLE_NNUNET_KERNELS_H
#include <stdbool.h>
#include <math.h>
#include <stdint.h>

#include "xf_hd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* scipy pads a line with this many edge values before the B-spline
 * prefilter for mode 'nearest' (_prepad_for_spline_filter). */
#define NN_PREPAD 12

/* The per-axis part of a resize n -> m: for output o the sample position
 * c = (o + 0.5) * n / m - 0.5 and, per tap, the line index and weight
 * scipy uses.  Orders 0 and 1 clamp c to [0, n-1] (scipy's map_coordinate
 * for mode 'nearest'); order 3 indexes the line padded by NN_PREPAD edge
 * values on each side (length n + 2 * NN_PREPAD). */
typedef struct nn_axis {
  int64_t n, m;
  int order, taps;  /* taps = order + 1 */
  int64_t *idx;     /* m * taps */
  double *w;        /* m * taps */
} nn_axis;

/* order 0, 1 or 3.  Returns 0, or -1 when out of memory. */
int nn_axis_init(nn_axis *a, int64_t n, int64_t m, int order);
void nn_axis_free(nn_axis *a);

/* Doubles of scratch the line and row kernels need for this axis (per
 * column of width for nn_resize_rows). */
int64_t nn_axis_scratch(const nn_axis *a);

/* Resize one contiguous line of a->n values into a->m values.  scratch:
 * nn_axis_scratch(a) doubles. */
void nn_resize_line(const nn_axis *a, const double *src, double *dst,
                    double *scratch);

/* Resize along the slow axis of a block of rows: src holds a->n rows of
 * `width` values (row stride ss), dst receives a->m rows (row stride ds).
 * The same arithmetic as nn_resize_line applied to every column, done a
 * row at a time so the memory is walked contiguously.  scratch:
 * nn_axis_scratch(a) * width doubles. */
void nn_resize_rows(const nn_axis *a, const double *src, int64_t ss,
                    double *dst, int64_t ds, int64_t width, double *scratch);

/* The cubic B-spline prefilter of scipy's spline_filter1d (pole
 * sqrt(3) - 2, gain, mode 'nearest' = reflect initialisation) over one
 * contiguous line of n values, in place.  Exposed for tests. */
void nn_spline3_prefilter(double *c, int64_t n);

/* nnU-Net's resize_segmentation vote for one output voxel: the corner
 * labels lab[k] with their interpolation weights coef[k] (in scipy's corner
 * order); each label's one-hot value is the sum of its corners' weights,
 * and the result is the largest label whose value passes (>= 0.5, or with
 * `strict` rint(value) > 0.5 as nnU-Net's order_z path), else 0.  The CUDA
 * kernel calls it too (sums of two or more terms: no contraction). */
XF_HD static inline double nn_label_vote(const double *lab, const double *coef, int k,
                                         bool strict)
{
  double best = 0.0;
  bool found = false;
  for (int i = 0; i < k; i++) {
    bool seen = false;
    for (int j = 0; j < i && !seen; j++) seen = lab[j] == lab[i];
    if (seen) continue;
    double t = 0.0;
    for (int j = i; j < k; j++)
      if (lab[j] == lab[i]) t += coef[j];
    bool pass = strict ? rint(t) > 0.5 : t >= 0.5;
    if (pass && (!found || lab[i] > best)) {
      best = lab[i];
      found = true;
    }
  }
  return best;
}

/* Min and max over n values ignoring NaN (skimage's clip bounds); false if
 * every value is NaN. */
bool nn_minmax(const double *v, int64_t n, double *lo, double *hi);

#ifdef __cplusplus
}
#endif
#endif
