/* Shared by the LoadNifti and SaveNifti kernels. */
#ifndef LM_NIFTI_OPS_H
#define LM_NIFTI_OPS_H
#include "lumen.h"

/* nifti_par.run for kernels: lm_parallel_for on the ctx's engine (ctx is
 * the lm_op_ctx), so loops stop when the job is cancelled. */
int nifti_par_engine(void *ctx, int64_t n, int64_t grain, lm_range_fn body, void *arg);

#endif
