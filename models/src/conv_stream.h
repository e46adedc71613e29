/* Streaming execution of fully convolutional chains (MeshNet and kin).
 *
 * A network that is a chain of stride-1 "same" convolutions (any dilation),
 * each optionally followed by one pointwise activation, can be run slice by
 * slice along its first spatial axis: output slice z of a layer with kernel
 * extent k and dilation d along that axis needs only input slices
 * z + (t - (k-1)/2) * d, t = 0..k-1.  Each layer keeps a ring of the
 * 2*h+1 slices its successor still needs (h = d*(k-1)/2), so the memory held
 * is the receptive field's depth of slices, not the volume: for brainchop's
 * tissue MeshNet on a 200x200x256 crop about 100 MB instead of 5 channels x
 * 2 live activations x 41 MB.  Results are those of the whole-volume run
 * (zero padding at the volume's ends, as the convolutions' own padding).
 *
 * The final layer's slices go straight to the caller: as logits, or reduced
 * at once to labels (argmax over channels, first maximum wins, NaN is the
 * maximum), so the full logits never exist either. */
#ifndef LM_CONV_STREAM_H
#define LM_CONV_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph.h"

typedef struct lm_conv_stream lm_conv_stream;

/* Recognise g (prepared) as a chain and prepare its layers for spatial
** extents (d1, d2) of the input's last two axes.  LM_ENOTSUP with the reason
** in why when g is not such a chain (the caller then runs a plan). */
int lm_conv_stream_new(const lm_graph *g, const int64_t in_shape[5],
                       bool bf16, lm_conv_stream **out, char *why,
                       size_t whylen);
/* The same recognition without building anything: LM_OK when g streams. */
int lm_conv_stream_check(const lm_graph *g, const int64_t in_shape[5], char *why,
                         size_t whylen);
void lm_conv_stream_free(lm_conv_stream *s);
/* Channels of the network's output. */
int64_t lm_conv_stream_out_channels(const lm_conv_stream *s);
/* Bytes held by the rings and scratch buffers. */
size_t lm_conv_stream_bytes(const lm_conv_stream *s);

/* Strided views: element strides for (c, d0, d1, d2) (logits, input) or
** (d0, d1, d2) (labels).  Exactly one of logits / labels is non-NULL.
** labels_dt is LM_U8, LM_I16 or LM_I32. */
typedef struct lm_stream_io {
  const float *in;
  int64_t in_stride[4];
  float *logits;
  int64_t logits_stride[4];
  void *labels;
  lm_dtype labels_dt;
  int64_t labels_stride[3];
} lm_stream_io;

/* Run on one batch item.  cancel (may be NULL) is polled per slice. */
int lm_conv_stream_run(lm_conv_stream *s, const lm_stream_io *io,
                       const volatile int *cancel, char *err, size_t errlen);

#endif
