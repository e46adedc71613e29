/* Orientation's geometry, shared by the CPU op and the CUDA plugin: only
 * the copy of a flipped volume differs between them. */
#ifndef LM_XF_ORIENTATION_H
#define LM_XF_ORIENTATION_H
#include <stdbool.h>
#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The reoriented view of in (options read from ctx; flipped axes have
 * negative strides), whether any axis is flipped, and the new affine B.
 * Errors are set on ctx. */
int xf_orientation_view(lm_op_ctx *ctx, lm_tensor *in, lm_tensor **view,
                        bool *any_flip, double B[16]);

/* Metadata of the output: affine B, and (copied: out is a new tensor) in's
 * layout and trace; then the trace entry "Orientation". */
int xf_orientation_finish(lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out,
                          const double B[16], bool copied);

#ifdef __cplusplus
}
#endif

#endif
