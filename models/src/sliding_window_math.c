/* Window placement and blending weights of sliding-window inference
 * (semantics.md §8.5).  Each rule is written the way its library computes
 * it, down to the float type of each step, so that the unit tests can hold
 * it to the measured values. */
#include "sliding_window_math.h"

#include <math.h>
#include <stdlib.h>

#include "lumen.h"

/* monai/inferers/utils.py:_get_scan_interval + data/utils.py:
 * dense_patch_slices.  roi * (1 - overlap) is a Python float truncated by
 * int(). */
static int64_t monai_starts(int64_t n, int64_t roi, double overlap,
                            int64_t *starts, int64_t cap)
{
  int64_t interval = roi;
  if (roi != n) {
    interval = (int64_t)((double)roi * (1.0 - overlap));
    if (interval < 1) interval = 1;
  }
  /* The first d with d * interval + roi >= n; d < ceil(n / interval) always
   * finds one because n >= roi. */
  int64_t count = 1;
  while ((count - 1) * interval + roi < n) count++;
  for (int64_t i = 0; i < count && i < cap; i++) {
    int64_t s = i * interval;
    int64_t over = s + roi - n;
    starts[i] = s - (over > 0 ? over : 0);
  }
  return count;
}

/* nnunetv2 compute_steps_for_sliding_window: the step target is
 * roi * tile_step_size voxels; the windows are then spread evenly. */
static int64_t nnunet_starts(int64_t n, int64_t roi, double overlap,
                             int64_t *starts, int64_t cap)
{
  double step = 1.0 - overlap;
  double target = (double)roi * step;
  int64_t count = (int64_t)ceil((double)(n - roi) / target) + 1;
  double actual = count > 1 ? (double)(n - roi) / (double)(count - 1) : 0.0;
  for (int64_t i = 0; i < count && i < cap; i++)
    starts[i] = (int64_t)nearbyint(actual * (double)i); /* np.round: half even */
  return count;
}

int64_t sw_window_starts(sw_rule rule, int64_t n, int64_t roi, double overlap,
                         int64_t *starts, int64_t cap)
{
  if (roi < 1 || n < roi || !(overlap >= 0.0 && overlap < 1.0)) return -1;
  if (!starts) cap = 0;
  return rule == SW_RULE_NNUNET ? nnunet_starts(n, roi, overlap, starts, cap)
                                : monai_starts(n, roi, overlap, starts, cap);
}

void sw_gaussian_monai_1d(int64_t roi, double sigma_scale, float *out)
{
  double sigma = (double)roi * sigma_scale;
  /* torch divides the float32 tensor by the Python float -2 sigma^2, which
   * it converts to float32 first. */
  float denom = (float)(-2.0 * sigma * sigma);
  for (int64_t i = 0; i < roi; i++) {
    float x = (float)(-(double)(roi - 1) / 2.0 + (double)i);
    out[i] = expf(x * x / denom);
  }
}

/* scipy.ndimage._gaussian_kernel1d evaluated at the offsets of a window
 * from its centre roi // 2: the normalised kernel, 0 beyond the truncation
 * radius.  Float64 as scipy. */
static void scipy_gaussian_of_delta(int64_t roi, double sigma_scale,
                                    double *out)
{
  double sigma = (double)roi * sigma_scale;
  int64_t radius = (int64_t)(4.0 * sigma + 0.5);
  double s2 = sigma * sigma, sum = 0.0;
  for (int64_t x = -radius; x <= radius; x++)
    sum += exp(-0.5 / s2 * (double)(x * x));
  int64_t c = roi / 2;
  for (int64_t i = 0; i < roi; i++) {
    int64_t x = i - c;
    out[i] = (x < -radius || x > radius)
                 ? 0.0 : exp(-0.5 / s2 * (double)(x * x)) / sum;
  }
}

void sw_gaussian_nnunet_1d(int64_t roi, double sigma_scale, double *out)
{
  scipy_gaussian_of_delta(roi, sigma_scale, out);
  double peak = out[roi / 2];
  for (int64_t i = 0; i < roi; i++) out[i] /= peak;
}

/* Odometer over the window, C order: idx[] advanced by one voxel. */
static void next_index(int nsp, const int64_t *roi, int64_t *idx)
{
  for (int d = nsp - 1; d >= 0; d--) {
    if (++idx[d] < roi[d]) return;
    idx[d] = 0;
  }
}

static int monai_map(int nsp, const int64_t *roi, double sigma_scale,
                     int64_t total, float *w)
{
  float *g[3] = {NULL, NULL, NULL};
  int st = 0;
  for (int d = 0; d < nsp; d++) {
    g[d] = malloc(sizeof(float) * (size_t)roi[d]);
    if (!g[d]) { st = -1; goto done; }
    sw_gaussian_monai_1d(roi[d], sigma_scale, g[d]);
  }
  int64_t idx[3] = {0, 0, 0};
  const float floor_w = (float)1e-3;
  for (int64_t k = 0; k < total; k++) {
    float v = g[0][idx[0]];
    for (int d = 1; d < nsp; d++) v *= g[d][idx[d]];
    /* torch.clamp(min=max(min(w), 1e-3)): equal to max(w, 1e-3). */
    w[k] = v < floor_w ? floor_w : v;
    next_index(nsp, roi, idx);
  }
done:
  for (int d = 0; d < nsp; d++) free(g[d]);
  return st;
}

static int nnunet_map(int nsp, const int64_t *roi, double sigma_scale,
                      int64_t total, float *w)
{
  double *g[3] = {NULL, NULL, NULL};
  int st = 0;
  double peak = 1.0;
  for (int d = 0; d < nsp; d++) {
    g[d] = malloc(sizeof(double) * (size_t)roi[d]);
    if (!g[d]) { st = -1; goto done; }
    scipy_gaussian_of_delta(roi[d], sigma_scale, g[d]);
    /* A 1-voxel axis (2-D windows over a volume's slices) is not part of
     * nnU-Net's 2-D map: weight exactly 1. */
    if (roi[d] == 1) g[d][0] = 1.0;
    peak *= g[d][roi[d] / 2];
  }
  /* compute_gaussian: map /= (max / 10), then .to(float16); torch turns a
   * double into a half through float. */
  double divisor = peak / 10.0;
  int64_t idx[3] = {0, 0, 0};
  float min_nonzero = INFINITY;
  for (int64_t k = 0; k < total; k++) {
    double v = g[0][idx[0]];
    for (int d = 1; d < nsp; d++) v *= g[d][idx[d]];
    float h = lm_f16_to_f32(lm_f32_to_f16((float)(v / divisor)));
    w[k] = h;
    if (h != 0.0f && h < min_nonzero) min_nonzero = h;
    next_index(nsp, roi, idx);
  }
  /* "gaussian_importance_map cannot be 0": the float16 zeros take the
   * smallest non-zero weight. */
  for (int64_t k = 0; k < total; k++)
    if (w[k] == 0.0f) w[k] = min_nonzero;
done:
  for (int d = 0; d < nsp; d++) free(g[d]);
  return st;
}

int sw_weight_map(sw_rule rule, sw_blend blend, int nsp, const int64_t *roi,
                  double sigma_scale, float *w)
{
  if (nsp < 1 || nsp > 3) return -1;
  int64_t total = 1;
  for (int d = 0; d < nsp; d++) {
    if (roi[d] < 1) return -1;
    total *= roi[d];
  }
  if (blend == SW_BLEND_CONSTANT) {
    for (int64_t k = 0; k < total; k++) w[k] = 1.0f;
    return 0;
  }
  return rule == SW_RULE_NNUNET ? nnunet_map(nsp, roi, sigma_scale, total, w)
                                : monai_map(nsp, roi, sigma_scale, total, w);
}
