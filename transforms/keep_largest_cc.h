/* KeepLargestConnectedComponent's options and choice of the components to
 * remove, shared by the CPU op and the CUDA plugin (which labels the
 * components on the device).  Private to transforms/. */
#ifndef LM_KEEP_LARGEST_CC_H
#define LM_KEEP_LARGEST_CC_H
#include <stdbool.h>
#include <stdint.h>

#include "lumen.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klcc_opts {
  double *applied;   /* sorted label values, NULL = every nonzero label */
  int napplied;
  bool independent;
  int connectivity;
  int64_t keep_n;
  bool ties_all;     /* nnU-Net: keep every component as large as the cut */
} klcc_opts;

/* Parse the op's options for a grid of nsp spatial dims; the caller frees
 * o->applied.  Errors are reported on ctx. */
int klcc_options(lm_op_ctx *ctx, int nsp, klcc_opts *o);

/* Whether label value v is processed (nonzero and applied). */
bool klcc_is_applied(const klcc_opts *o, int32_t v);

/* Fills first_key[1..ncomp] (preset to INT64_MAX) with each component's
 * first voxel in C order over (X, Y, Z): (x*ny + y)*nz + z. */
typedef int (*klcc_keys_fn)(void *arg, int64_t *first_key);

/* Components 1..ncomp (numbered by their first voxel in memory order, x
 * fastest), each of class comp_class[c] and size sizes[c]: sets drop[c] = 1
 * (drop zeroed by the caller) for those the op removes, with MONAI's or
 * nnU-Net's tie rule; keys is called once, only when a tie needs the first
 * voxels. */
int klcc_choose(lm_op_ctx *ctx, const klcc_opts *o, int64_t ncomp,
                const int32_t *comp_class, const int64_t *sizes,
                klcc_keys_fn keys, void *arg, uint8_t *drop);

#ifdef __cplusplus
}
#endif
#endif
