/* Internal to SlidingWindowInfer (sliding_window.c, the op and its batch
 * loop; sliding_window_copy.c, the data movement): what the options and
 * shapes decide, the window grid, and the kernels that move windows between
 * the image, the network's buffers and the output.  No Lua here. */
#ifndef LM_SLIDING_WINDOW_H
#define LM_SLIDING_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "lumen.h"
#include "sliding_window_math.h"

#define SW_MAX_SP 3

typedef enum sw_pad { SW_PAD_CONSTANT, SW_PAD_REPLICATE, SW_PAD_REFLECT,
                      SW_PAD_CIRCULAR } sw_pad;

/* Callable from the CUDA kernel too (transforms/cuda/sliding_window.cu). */
#ifdef __CUDACC__
#define SW_HD __host__ __device__
#else
#define SW_HD
#endif

/* The image coordinate that coordinate q (on the unpadded image's axis of n
 * voxels, possibly outside it) reads, or -1 for cval.  torch's F.pad modes:
 * replicate clamps, reflect mirrors without repeating the edge voxel,
 * circular wraps. */
SW_HD static inline int64_t sw_pad_index(sw_pad mode, int64_t q, int64_t n)
{
  if (q >= 0 && q < n) return q;
  switch (mode) {
  case SW_PAD_CONSTANT: return -1;
  case SW_PAD_REPLICATE: return q < 0 ? 0 : n - 1;
  case SW_PAD_CIRCULAR: return ((q % n) + n) % n;
  case SW_PAD_REFLECT: {
    if (n == 1) return 0;
    int64_t period = 2 * (n - 1);
    int64_t r = ((q % period) + period) % period;
    return r < n ? r : period - r;
  }
  }
  return -1;
}

/* Everything the options and shapes decide, before any data is touched. */
typedef struct sw_setup {
  lm_model *model;
  sw_rule rule;
  sw_blend blend;
  sw_pad pad;
  double overlap, sigma_scale, cval;
  int64_t batch;           /* sw_batch_size */
  bool static_batch;       /* the network takes batches of exactly that */
  int nsp;                 /* spatial dims of the image */
  int64_t channels;        /* C of the image */
  int64_t n[SW_MAX_SP];    /* image size */
  int64_t roi[SW_MAX_SP];  /* window size per image axis; 1 on slice_axis */
  int slice_axis;          /* -1, or the axis a 2-D network steps over */
  bool zyx;                /* the network sees the spatial axes reversed */
  unsigned mirror;         /* bit d: flip image axis d (nnU-Net TTA) */
  int output;              /* which network output is blended */
  bool bf16;               /* CPU: bf16 convolutions (option 'precision') */
  int model_ndim;          /* 2 + spatial dims the network sees */
  /* image axis d is the network's axis model_axis[d] (-1: slice axis) */
  int model_axis[SW_MAX_SP];
} sw_setup;

/* The windows: per axis the starts on the padded grid (first axis slowest,
 * as MONAI's meshgrid and nnU-Net's nested loops). */
typedef struct sw_grid {
  int64_t pad_before[SW_MAX_SP];
  int64_t *starts[SW_MAX_SP];
  int64_t count[SW_MAX_SP];
  int64_t nwin;
} sw_grid;

/* What the options and shapes of the op's call decide (the CPU op and the
 * CUDA plugin's kernel share it): LM_OK, or an error naming the option set
 * on ctx. */
int sw_prepare(lm_op_ctx *ctx, sw_setup *s);

/* The windows of s (pad each axis to the window, starts by s->rule; every
 * slice on the slice axis).  sw_grid_free releases the start tables. */
int sw_grid_build(lm_op_ctx *ctx, const sw_setup *s, sw_grid *g);
void sw_grid_free(sw_grid *g);

/* Every subset of the mirror axes in `mask`, the empty one first, then by
 * size as nnU-Net's itertools.combinations lists them (which fixes the
 * order of the float sums).  Returns how many: 2^k (subs holds 8). */
int sw_mirror_subsets(unsigned mask, unsigned *subs);

/* Where a [B, C, window...] float buffer holds each window voxel: strides
 * per image axis (0 on the slice axis), per channel and per window. */
typedef struct sw_layout {
  int64_t axis[SW_MAX_SP];
  int64_t c, b;
} sw_layout;

/* The network's own buffers, dense C order over [B, C, network axes...]
 * (the image axes without the slice axis, reversed for ZYX). */
sw_layout sw_network_layout(const sw_setup *s, int64_t channels);
/* The window frame: dense C order over [B, C, roi in image axis order]. */
sw_layout sw_window_layout(const sw_setup *s, int64_t channels);

/* Copy windows [first, first + nb) of x, each flipped along the image axes
 * in `flip`, into dst (float32, sw_network_layout with the image's
 * channels).  Voxels outside the image follow s->pad. */
int sw_gather(lm_op_ctx *ctx, const sw_setup *s, const sw_grid *g,
              lm_tensor *x, int64_t first, int64_t nb, unsigned flip,
              float *dst);

/* acc (window frame) = (first ? 0 : acc) + pred flipped back along `flip`;
 * pred is the network's output for nb windows (network layout, cout
 * channels). */
int sw_unflip_add(lm_op_ctx *ctx, const sw_setup *s, const float *pred,
                  int64_t cout, int64_t nb, unsigned flip, bool first,
                  float *acc);

/* out[c, v] += (pred[c, u] * scale) * w[u] over the part of window `win`
 * inside the image; pred is that window's prediction read through layout
 * pl (its b stride unused), out is (cout, n...) C order.  Windows that may
 * overlap must be blended one after the other. */
int sw_scatter(lm_op_ctx *ctx, const sw_setup *s, const sw_grid *g,
               int64_t win, const float *pred, const sw_layout *pl,
               float scale, const float *w, float *out, int64_t cout);

/* count[v] += w[u] over the part of window `win` inside the image; count is
 * (n...) C order. */
int sw_scatter_weights(lm_op_ctx *ctx, const sw_setup *s, const sw_grid *g,
                       int64_t win, const float *w, float *count);

#endif
