/* The per-op table of the CPU backend: shape/dtype inference and a
 * reference evaluation for every ONNX op lumen supports.  The passes use
 * it for shape inference and constant folding; plans use eval for every
 * node that has no faster path (Conv and ConvTranspose go through
 * cpu_conv.h; plans may fuse activations into them).
 *
 * eval works on dense C-order buffers; outputs are allocated by the caller
 * with the shapes infer gave.  Kernels parallelise with OpenMP (the same
 * runtime oneDNN uses) and must give the same numbers whatever the thread
 * count (no order-dependent float reductions across threads). */
#ifndef LM_CPU_OPS_H
#define LM_CPU_OPS_H

#include <stddef.h>

#include "graph.h"

typedef struct lm_rt_tensor {
  lm_dtype dt;
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  void *data;            /* dense, C order; NULL for an absent optional input */
} lm_rt_tensor;

typedef struct lm_cpu_kernel {
  const char *op;        /* ONNX op_type */
  /* Set dtype and shape of n's outputs in g from its inputs' (constant
  ** inputs have data).  Extents it cannot know stay -1.  Errors go to
  ** g->err naming the node. */
  int (*infer)(lm_graph *g, const lm_gnode *n);
  /* Compute the outputs.  in[i].data is NULL for a left-out optional
  ** input.  Returns LM_OK or a negative code with a message in err. */
  int (*eval)(const lm_gnode *n, const lm_rt_tensor *in, int nin,
              lm_rt_tensor *out, int nout, char *err, size_t errlen);
  /* Ops whose outputs depend only on input shapes, not values (Shape,
  ** Size): the folder may evaluate them when only shapes are known. */
  bool shape_only;
} lm_cpu_kernel;

/* The kernel for op (default ONNX domain), or NULL: unsupported. */
const lm_cpu_kernel *lm_cpu_kernel_find(const char *op);
/* All supported op names, NULL-terminated (for `lumen ops` and docs). */
const char *const *lm_cpu_supported_ops(void);

/* Resize / Upsample node n's interpolation taps for input in[0]'s shape (in
** holds the node's inputs; only the scales/sizes/roi need data) and output
** shape oshape, by the rules of the CPU op: axis k's output index o has
** ntap[base[k] + o] taps (at most 4) at idx[4 * (base[k] + o) + t] with
** weights w[...]; arrays malloc'd.  tf_crop_and_resize is refused.  (For
** other backends: the GPU plan.) */
int lm_resize_taps(const lm_gnode *n, const lm_rt_tensor *in, int nin, const int64_t *oshape,
                   int **ntap, int64_t **idx, double **w, int64_t *base, char *err,
                   size_t errlen);

#endif
