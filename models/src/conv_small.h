/* A direct convolution for few channels: one output slice of a 3-D
 * convolution from the kd input slices it reads.  MeshNets have 5 channels;
 * oneDNN's kernels block channels by 16 and reorder on every call, which
 * wastes most of each vector and made the streamed MeshNet run at about
 * 1 GFLOP/s.  Here each output row is accumulated over contiguous input rows
 * (vectorised along the row, code paths for AVX-512, AVX2 and baseline x86-64
 * chosen at load time), no reorders. */
#ifndef LM_CONV_SMALL_H
#define LM_CONV_SMALL_H

#include <stdint.h>

#include "cpu_conv.h"

/* Largest channel count (in or out) this path is used for. */
#define LM_CONV_SMALL_MAX_CH 16

typedef struct lm_conv_small_desc {
  int64_t cin, cout, kd;     /* kd input slices -> one output slice */
  int64_t h, w;              /* plane extents (input = output: 'same') */
  int64_t ka, kb;            /* in-plane kernel extents (odd) */
  int64_t dila, dilb;        /* in-plane dilations */
  lm_act act;
  float alpha, beta;
} lm_conv_small_desc;

/* out[co][i][j] = act(bias[co] + sum over ci, t, a, b of
**   w[co][ci][t][a][b] * in[ci][t][i + (a - ka/2) dila][j + (b - kb/2) dilb]),
** zero outside the plane.  in [cin][kd][h][w], w [cout][cin][kd][ka][kb]
** (ONNX order), out [cout][h][w]; bias may be NULL.  Parallel over rows
** (OpenMP); the result does not depend on the thread count. */
void lm_conv_small_slice(const lm_conv_small_desc *d, const float *in,
                         const float *w, const float *bias, float *out);

#endif
