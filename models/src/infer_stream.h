/* Infer's streamed path and its fused argmax (ops_model.c calls these). */
#ifndef LM_INFER_STREAM_H
#define LM_INFER_STREAM_H

#include <stdbool.h>

#include "lumen.h"

/* Does model m qualify for streaming (a chain of stride-1 'same' convolutions
** and pointwise activations, one 5-d input)? */
bool lm_model_streamable(const lm_model *m);

/* Run m on v, the network's view of x ([1, C, d0, d1, d2], any strides),
** slice by slice (conv_stream.h).  out receives, on x's axes, either the
** logits (C_out, spatial...) float32 or, with argmax, the labels
** (1, spatial...) (uint8 up to 256 classes, else int32); x's memory order,
** with x's affine, layout and trace.  zyx: v's spatial axes are x's reversed.
** bf16: convolutions in bfloat16 where the CPU has it (Infer's precision). */
int lm_infer_streamed(lm_op_ctx *ctx, lm_model *m, lm_tensor *x, lm_tensor *v,
                      bool zyx, bool argmax, bool bf16, lm_tensor **out);

/* Labels (1, spatial...) from logits (C, spatial...) float32: first maximum
** wins, NaN counts as the maximum (torch.argmax); uint8 up to 256 classes,
** else int32; the logits' affine, layout and trace. */
int lm_logits_argmax(lm_tensor *logits, lm_tensor **out);

#endif
