/* The box copy of the crop / pad ops on the device (geometry.cu), for the
 * GPU ops built on it (CropForeground). */
#ifndef LMC_BOX_H
#define LMC_BOX_H
#include "crop_ops.h"
#include "cuda_util.h"

/* xf_crop_box on the device: a new tensor in in's memory order holding the
 * box p of in (outside the input: p's pad mode), with the affine moved to
 * the box, in's layout and trace.  The copy is queued on s; its launch
 * error goes to *err unless *err already holds one. */
int lmc_crop_box(lm_op_ctx *ctx, cudaStream_t s, lm_tensor *in, const xf_box_plan *p,
                 lm_tensor **out, cudaError_t *err);

/* Push out's trace entry `op` for the box (in = the state before) and, with
 * results, set results box_start / box_end. */
int lmc_crop_box_trace(lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out, const xf_box_plan *p,
                       const char *op, bool results);

#endif
