/* Shared pieces of the patch samplers: a seeded generator of their own (the
 * same seed gives the same patches on every machine and thread count), the
 * batch of patches, and centre lists.  Private to transforms/. */
#ifndef LM_XF_SAMPLER_COMMON_H
#define LM_XF_SAMPLER_COMMON_H
#include <stdint.h>
#include "lumen.h"
#include "crop_box.h"

/* xoshiro256** seeded through splitmix64 (Vigna's reference generators). */
typedef struct xf_rng { uint64_t s[4]; } xf_rng;
void xf_rng_seed(xf_rng *r, uint64_t seed);
uint64_t xf_rng_next(xf_rng *r);
/* Uniform integer in [0, n) (n >= 1; unbiased, by rejection). */
int64_t xf_rng_below(xf_rng *r, int64_t n);
/* Uniform double in [0, 1) (53 bits). */
double xf_rng_unit(xf_rng *r);

/* Output `slot` = the patches of `in` stacked along a new leading axis:
 * shape (n, leading dims of in, size...), patch i = the box starting at
 * starts[i * nsp ...] (parts outside the input padded per mode / value).
 * Layout "N" + in's layout; the affine is patch 0's (patch i's is in's
 * moved by A . starts_i); the trace is in's plus one entry `op` with
 * params "starts=...;size=...;num_samples=n". */
int xf_patch_batch(lm_op_ctx *ctx, lm_tensor *in, int nsp, int64_t n,
                   const int64_t *starts, const int64_t *size,
                   xf_pad_mode mode, double value, const char *op, int slot);

/* The centres of option `opt` (a flat list, nsp numbers per centre) as
 * voxel indices: coords 'voxel' rounds half to even, 'world' maps RAS mm
 * through the inverse of in's affine first.  *out is malloc'ed (NULL when
 * there are none); *count the number of centres. */
int xf_arg_centers(lm_op_ctx *ctx, const char *opt, lm_tensor *in, int nsp,
                   int64_t **out, int64_t *count);

/* The spatial shape of a second input must equal the first's. */
int xf_check_same_spatial(lm_op_ctx *ctx, lm_tensor *a, lm_tensor *b, int nsp);

#endif
