/* The spatial grid of a label map for the post-processing ops
 * (KeepLargestConnectedComponent, LabelStats, Contours): which dims are
 * spatial, and the values as a dense int32 buffer in NIfTI order (x = the
 * first spatial dim, fastest).  Private to transforms/. */
#ifndef LM_LABEL_GRID_H
#define LM_LABEL_GRID_H
#include <stdbool.h>
#include <stdint.h>

#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lg_grid {
  int nsp;          /* 2 or 3 spatial dims */
  int first;        /* index of the first spatial dim (0, or 1 after C) */
  int64_t n[3];     /* X, Y, Z sizes (Z = 1 in 2-D) */
  int64_t numel;    /* n[0] * n[1] * n[2] */
} lg_grid;

/* Accepts (X,Y,Z), (1,X,Y,Z), (X,Y) and (1,X,Y) (a 3-d tensor is 2-D when
 * its layout starts with 'C').  `what` names the input in errors. */
int lg_grid_of(lm_op_ctx *ctx, const lm_tensor *t, const char *what,
               lg_grid *g);
/* The same for a tensor on any device (the CUDA kernels). */
int lg_grid_of_any(lm_op_ctx *ctx, const lm_tensor *t, const char *what,
                   lg_grid *g);

/* The view of t without its size-1 channel dim (a new reference). */
int lg_spatial_view(lm_op_ctx *ctx, lm_tensor *t, const lg_grid *g,
                    lm_tensor **out);

/* t's values as int32 in dst[(z*Y + y)*X + x], converted as Cast converts
 * (floats truncate toward zero). */
int lg_load_int32(lm_op_ctx *ctx, lm_tensor *t, const lg_grid *g,
                  int32_t *dst);

/* t's values as double in the same order. */
int lg_load_f64(lm_op_ctx *ctx, lm_tensor *t, const lg_grid *g, double *dst);

/* World coordinates (affine A, row-major 4x4) of the voxel (i, j, k). */
void lg_world(const double *A, double i, double j, double k, double w[3]);

#ifdef __cplusplus
}
#endif
#endif
