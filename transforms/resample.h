/* The resampling core shared by ScaleByResolution (MONAI rule), Resize and
 * RestoreOriginalShape: every output voxel is read from the input at the
 * index an index-space affine gives (semantics.md §4.2, §7).  Private to
 * transforms/. */
#ifndef LM_XF_RESAMPLE_H
#define LM_XF_RESAMPLE_H
#include <stdbool.h>
#include <stdint.h>
#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum xf_interp {
  /* torch grid_sample "nearest": x[rint(c)] (half to even, as MONAI). */
  XF_INTERP_NEAREST = 0,
  /* torch grid_sample "bilinear" (trilinear in 3-D): separable linear. */
  XF_INTERP_LINEAR = 1,
  /* scipy map_coordinates(order=3, prefilter=True): cubic B-spline on the
   * prefiltered coefficients (MONAI Spacing with mode=3). */
  XF_INTERP_CUBIC = 3,
  /* torch F.interpolate "nearest": x[min(floor(c), n-1)] (Resize). */
  XF_INTERP_FLOOR = 4
} xf_interp;

typedef enum xf_padding {
  /* Samples outside [0, n-1] take the edge value.  nearest / linear: the
   * coordinate is clamped first (torch "border"); cubic: scipy "nearest"
   * (input pre-padded with 12 edge values, taps clamped). */
  XF_PAD_BORDER = 0,
  /* nearest / linear: out-of-range taps contribute 0 (torch "zeros", partial
   * weights near the edge); cubic: scipy "constant" (a coordinate outside
   * [0, n-1] gives 0, mirror taps inside). */
  XF_PAD_ZEROS = 1,
  /* nearest / linear: the coordinate reflected about -0.5 and n-0.5, then
   * clamped (torch "reflection", align_corners=False); cubic: scipy
   * "reflect". */
  XF_PAD_REFLECTION = 2
} xf_padding;

/* How sampling positions are computed. */
typedef enum xf_grid {
  /* c = m · (o, 1) in float64; nearest rounds half to even. */
  XF_GRID_EXACT = 0,
  /* The positions MONAI 1.4's SpatialResample gives torch 1.13's CPU
   * affine_grid and 3-D grid_sample (xf_torch_grid_coord), nearest rounding
   * half away from zero as that grid_sample does: exact half-way ties then
   * fall where MONAI's do.  Only for 3-D axis-aligned maps with nearest
   * interpolation; anything else is computed as XF_GRID_EXACT. */
  XF_GRID_TORCH = 1
} xf_grid;

/* in index (spatial) = m · (out index, 1).  Dims beyond nsp are unused. */
typedef struct xf_resample_spec {
  int nsp;            /* spatial dims: the last nsp dims of in and out (1..3) */
  double m[3][4];     /* rows: input spatial axis; cols: output axis, shift */
  xf_interp interp;
  xf_padding padding;
  xf_grid grid;       /* 0: XF_GRID_EXACT */
} xf_resample_spec;

/* The input position torch 1.13 computes on the CPU for output index o of
 * one axis, when MONAI 1.4's SpatialResample resamples with an index map
 * (xform) of scale xs and shift xt on that axis (xs, xt as numpy's solve
 * gives them: xs = dst/src spacing, xt = (dst origin - src origin)/src
 * spacing), n_in input and n_out output samples: to_norm_affine, then
 * affine_grid over torch's linspace (AVX2 kernel: fused multiply-add at
 * each 4-wide block's start), then grid_sample's unnormalisation (torch
 * float64 throughout, netlib BLAS order).  Before padding and rounding. */
double xf_torch_grid_coord(double xs, double xt, int64_t n_in, int64_t n_out,
                           int64_t o);

/* Parse "nearest" / "bilinear" ("linear", "trilinear", "1") / "cubic"
 * ("3"), and "border" / "zeros" / "reflection".  LM_OK or LM_EINVAL. */
int xf_interp_parse(const char *s, xf_interp *out);
int xf_padding_parse(const char *s, xf_padding *out);
const char *xf_interp_name(xf_interp m);
const char *xf_padding_name(xf_padding p);

/* Spatial dims of t: the trailing letters of its layout among X, Y, Z when
 * the layout names every dim, else min(3, ndim). */
int xf_spatial_ndim(const lm_tensor *t);

/* A new output for `in` with its leading (non-spatial) dims, the spatial
 * shape sp_shape (nsp dims), dtype dt, in's memory order of the dims, and
 * in's layout and trace (the caller sets the affine and pushes the trace
 * entry). */
int xf_resample_new_output(lm_tensor *in, int nsp, const int64_t *sp_shape,
                           lm_dtype dt, lm_tensor **out);

/* Fill `out` (the shape of in with the last nsp dims replaced, any dtype,
 * CPU) from `in` (any dtype and strides) per spec.  Arithmetic is float64;
 * stores convert as Cast does (floats to integers truncate; nearest copies
 * values exactly).  An axis-aligned map (m without off-diagonal terms) takes
 * a separable path with per-axis tap tables, multithreaded over output rows;
 * other maps evaluate every voxel.  ctx may be NULL (tests). */
int xf_resample(lm_engine *e, lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out,
                const xf_resample_spec *spec);

/* Inverse of a 4x4 row-major matrix; false when singular. */
bool xf_mat4_inverse(const double a[16], double inv[16]);
/* c = a · b (4x4 row-major). */
void xf_mat4_mul(const double a[16], const double b[16], double c[16]);

/* scipy pre-pads a line by this many edge values before the cubic spline
 * prefilter for padding 'border' (its mode 'nearest'). */
#define XF_SPLINE_PREPAD 12

/* Where the data loops of Resize, ScaleByResolution and
 * RestoreOriginalShape run.  The ops' planning (options, output shape,
 * index map, affine, trace) is shared; the CUDA plugin passes its own
 * backend.  Both functions report errors on ctx. */
struct xf_nnunet_loop;
typedef struct xf_resample_backend {
  /* Fill out (from xf_resample_new_output, on in's device) per spec, with
   * the results of xf_resample. */
  int (*resample)(lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out,
                  const xf_resample_spec *spec);
  /* dst (dense, src's shape) = src converted as Cast converts. */
  int (*copy)(lm_op_ctx *ctx, lm_tensor *dst, const lm_tensor *src);
  /* ScaleByResolution's rule='nnunet': the data loop planned by
   * resample_nnunet.c (resample_nnunet.h); NULL: the CPU's. */
  int (*nnunet)(lm_op_ctx *ctx, const struct xf_nnunet_loop *l);
} xf_resample_backend;
extern const xf_resample_backend xf_resample_cpu;

/* The ops on the inputs of ctx with backend b: the output in *out (not yet
 * set on ctx). */
int xf_resize_apply(lm_op_ctx *ctx, const xf_resample_backend *b, lm_tensor **out);
int xf_sbr_apply(lm_op_ctx *ctx, const xf_resample_backend *b, lm_tensor **out);
int xf_restore_apply(lm_op_ctx *ctx, const xf_resample_backend *b, lm_tensor **out);

/* The taps xf_resample uses along one axis of an axis-aligned map (input
 * index = scale * o + shift, o < m, n input samples): for output o, k taps
 * at idx[o*k + j] with weights w[o*k + j] (zero-weight taps point at a used
 * index).  Cubic indices address the spline coefficients of the line padded
 * by XF_SPLINE_PREPAD on each side for padding 'border'.  Backends apply
 * them in xf_resample's order to get its results bit for bit. */
typedef struct xf_axis_taps {
  int k;
  int64_t m;
  int64_t *idx;
  double *w;
} xf_axis_taps;
int xf_axis_taps_build(xf_axis_taps *t, int64_t m, double scale, double shift,
                       int64_t n, xf_interp ip, xf_padding pd, xf_grid grid);
void xf_axis_taps_free(xf_axis_taps *t);

#ifdef __cplusplus
}
#endif
#endif
