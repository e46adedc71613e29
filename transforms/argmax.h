/* Argmax option parsing and output allocation, shared by the CPU kernel and
 * the CUDA plugin's kernel so both give the same shapes, dtypes and errors. */
#ifndef LM_XF_ARGMAX_H
#define LM_XF_ARGMAX_H
#include <stdbool.h>
#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xf_argmax_opts {
  int axis;      /* normalised, 0..ndim-1 */
  bool keepdim;
  int64_t nch;   /* entries along the axis */
  lm_dtype dt;   /* label dtype */
} xf_argmax_opts;

int xf_argmax_options(lm_op_ctx *ctx, const lm_tensor *in, xf_argmax_opts *o);
/* A dense output on dev in the input's memory order, with its metadata. */
int xf_argmax_output(lm_op_ctx *ctx, lm_tensor *in, const xf_argmax_opts *o,
                     lm_device dev, lm_tensor **out);

#ifdef __cplusplus
}
#endif
#endif
