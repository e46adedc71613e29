/* Helpers shared by the built-in transforms: dtype conversion of element
 * runs, a strided N-d walker that hands kernels contiguous-ish runs, and
 * option parsing.  Private to transforms/ (not part of lumen.h). */
#ifndef LM_XF_UTIL_H
#define LM_XF_UTIL_H
#include <stdint.h>
#include "lumen.h"

/* Elements converted per block by the row kernels: small enough for stack
 * buffers that stay in L1, large enough to amortise the per-block setup. */
#define XF_BLOCK 1024

/* Convert n elements of dtype dt at src (byte stride `stride`) to float /
 * double / int64.  f16 and bf16 go through lm_f16_to_f32 / lm_bf16_to_f32
 * (exact).  Integers wider than 24 (53) bits round to nearest in the
 * float (double) versions, as numpy and torch do. */
void xf_load_f32(const void *src, int64_t stride, lm_dtype dt, float *dst,
                 int64_t n);
void xf_load_f64(const void *src, int64_t stride, lm_dtype dt, double *dst,
                 int64_t n);
void xf_load_i64(const void *src, int64_t stride, lm_dtype dt, int64_t *dst,
                 int64_t n);

/* Store n values as dtype dt at dst (byte stride `stride`), with the
 * conversion rules of Cast: floats to integers truncate toward zero
 * (numpy astype), saturate at the integer range, NaN -> 0; to float16 /
 * bfloat16 round to nearest even; to float32 / float64 as C converts
 * (overflow to +-inf, as numpy). */
void xf_store_f32(const float *src, void *dst, int64_t stride, lm_dtype dt,
                  int64_t n);
void xf_store_f64(const double *src, void *dst, int64_t stride, lm_dtype dt,
                  int64_t n);
/* Integer values to any dtype; integers saturate at the target range. */
void xf_store_i64(const int64_t *src, void *dst, int64_t stride, lm_dtype dt,
                  int64_t n);

/* One value with the rules above (for scalars and tests of the rules). */
int64_t xf_f64_to_int_saturate(double v, lm_dtype dt);

/*
 * A walk over an index space shared by up to XF_MAX_OPS operands, each with
 * its own byte strides.  Dims are ordered by the first operand's memory
 * order (largest stride first), size-1 dims dropped and dims that are
 * contiguous in every operand merged, so a dense elementwise op sees one
 * run per chunk.  xf_iter_run calls row() on runs along the fastest dim,
 * spread over the compute threads.
 */
#define XF_MAX_OPS 3
typedef struct xf_iter {
  int ndim;                              /* after merging; >= 1 */
  int nops;
  int64_t shape[LM_MAX_DIMS];
  int64_t stride[XF_MAX_OPS][LM_MAX_DIMS]; /* bytes */
  char *base[XF_MAX_OPS];
  int64_t numel;
} xf_iter;

/* ops[k] with index space `shape` (ndim dims) and element strides
 * strides[k] (elements; elsize[k] bytes each), data at base[k]. */
void xf_iter_init(xf_iter *it, int ndim, const int64_t *shape, int nops,
                  void *const *base, const int64_t *const *strides,
                  const size_t *elsize);

/* A run of n elements: ptr[k] is operand k's first element, step[k] its
 * byte stride along the run. */
typedef int (*xf_row_fn)(char *const *ptr, const int64_t *step, int64_t n,
                         void *arg);
/* Walk everything; grain = elements per parallel chunk at least.  Returns
 * LM_OK, LM_ECANCELED or the first negative value row() returned. */
int xf_iter_run(lm_engine *e, lm_op_ctx *ctx, const xf_iter *it,
                int64_t grain, xf_row_fn row, void *arg);

/* The index space of `in` without dim `axis`, for kernels that walk along
 * that axis themselves: operand 0 is in, operand 1 is out, which has in's
 * ndim (its dim `axis` is skipped) or one dim less (axis removed). */
void xf_iter_init_axis(xf_iter *it, const lm_tensor *in, const lm_tensor *out,
                       int axis);

/* Memory order of t's dims: order[0] the slowest, order[ndim-1] the fastest
 * (ties keep the logical order). */
void xf_memory_order(const lm_tensor *t, int *order);

/* The dtype named by string option `opt`; def when unset (def < 0: the
 * option is required).  Errors name the option. */
int xf_arg_dtype(lm_op_ctx *ctx, const char *opt, int def, lm_dtype *out);

/* Normalise an axis option (negative counts from the end) against ndim. */
int xf_arg_axis(lm_op_ctx *ctx, const char *opt, int ndim, int *axis);

/* Elements per parallel chunk for cheap elementwise work. */
#define XF_GRAIN (64 * 1024)

#endif
