/* NormalizeIntensity's options and per-block arithmetic, shared by the CPU
 * op and the CUDA plugin: they differ only in how the statistics are
 * reduced and the map applied. */
#ifndef LM_XF_NORMALIZE_INTENSITY_H
#define LM_XF_NORMALIZE_INTENSITY_H
#include <stdbool.h>
#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { XF_NI_MONAI, XF_NI_NNUNET_ZSCORE, XF_NI_CT } xf_ni_scheme;

typedef struct xf_ni_opts {
  xf_ni_scheme scheme;
  bool nonzero, channel_wise;
  lm_dtype dt;
  int64_t nch;
} xf_ni_opts;

/* Read and check the options and the optional mask input (errors name
 * them). */
int xf_ni_prepare(lm_op_ctx *ctx, xf_ni_opts *o);

/* Dim order of the float32 working copy: channel dim slowest, the others
 * in img's memory order, so each channel is one contiguous block. */
void xf_ni_work_order(const lm_tensor *img, int *order);

/* Which values a block's statistics use and its map changes:
 * 0 all, 1 x != 0 (MONAI nonzero), 2 mask >= 0 (nnU-Net with a mask). */
int xf_ni_selection(const xf_ni_opts *o, bool has_mask);

/* Whether the statistics of the selected values are needed at all. */
bool xf_ni_needs_stats(lm_op_ctx *ctx, const xf_ni_opts *o);

/* The map of block c: y = (clip(x) - sub) / div in float32 on the selected
 * values.  mean, sd (population), count: the block's statistics in double
 * (when needed).  skip: leave the block as it is (nothing selected). */
typedef struct xf_ni_map {
  int sel;
  float sub, div, lo, hi;
  bool clip, skip;
} xf_ni_map;
void xf_ni_block_map(lm_op_ctx *ctx, const xf_ni_opts *o, int64_t c, int sel, bool have_stats,
                     double mean, double sd, int64_t count, xf_ni_map *m);

/* Results subtrahend / divisor: stats[2c], stats[2c + 1] of nblk blocks. */
int xf_ni_set_results(lm_op_ctx *ctx, const double *stats, int64_t nblk);

#ifdef __cplusplus
}
#endif

#endif
