/* The affine intensity map shared by ScaleIntensityRange and
 * ScaleIntensityRangePercentiles (MONAI ScaleIntensityRange.__call__). */
#ifndef LM_XF_INTENSITY_H
#define LM_XF_INTENSITY_H
#include <stdbool.h>
#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xf_sir {
  double a_min, a_max, b_min, b_max;
  bool has_b_min, has_b_max, clip;
} xf_sir;

/* out = map(in), elementwise; out has in's shape (any strides, CPU, any
 * dtype).  float32 arithmetic in MONAI's operation order (float64 for
 * float64 inputs).  Spread over the compute threads. */
int xf_sir_apply(lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out,
                 const xf_sir *p);

/* The float32 operands exactly as torch rounds the Python scalars. */
typedef struct xf_sir_f32 {
  int mode;     /* 0: shift only (a_max == a_min), 1: scale, 2: scale+affine */
  float a_min, range, b_range, b_min, lo, hi;
  bool add_b_min, clip_lo, clip_hi;
} xf_sir_f32;
void xf_sir_prepare_f32(const xf_sir *p, xf_sir_f32 *f);

/* Read and validate ScaleIntensityRange's options (errors name them). */
int xf_sir_options(lm_op_ctx *ctx, xf_sir *p, lm_dtype *dt);

/* ScaleIntensityRangePercentiles' options, its window from the two
 * percentiles (MONAI's relative b_min / b_max included), and numpy's
 * 'linear' interpolation between the values of ranks floor(h) and
 * floor(h) + 1 (h = (n - 1) * q / 100, g = h - floor(h)); shared with the
 * CUDA plugin. */
typedef struct xf_sirp_opts {
  double lower, upper, b_min, b_max;
  bool clip, relative, channel_wise;
  lm_dtype dt;
} xf_sirp_opts;
int xf_sirp_options(lm_op_ctx *ctx, xf_sirp_opts *o);
void xf_sirp_window(const xf_sirp_opts *o, const double p[2], xf_sir *s);
double xf_percentile_lerp(double a, double b, double g);

#ifdef __cplusplus
}
#endif

#endif
