/* How the Infer op reads its input against the model it runs, shared by the
 * CPU op (ops_model.c) and its CUDA kernel (transforms/cuda/infer_cuda.cu). */
#ifndef LM_INFER_INPUT_H
#define LM_INFER_INPUT_H
#include <stdbool.h>

#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x against model m's declared input rank: *batch when x lacks the batch
** axis ((C, spatial...)), *zyx when the network sees the spatial axes
** reversed.  LM_OK, or LM_ESHAPE set on ctx naming both ranks. */
int lm_infer_input_layout(lm_op_ctx *ctx, lm_model *m, const lm_tensor *x, bool *batch,
                          bool *zyx);

#ifdef __cplusplus
}
#endif
#endif
