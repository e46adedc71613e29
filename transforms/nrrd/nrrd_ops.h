/* Shared by the LoadNrrd and SaveNrrd kernels. */
#ifndef LM_NRRD_OPS_H
#define LM_NRRD_OPS_H
#include "lumen.h"
#include "../nifti/nifti_format.h"

/* One gzip member holding in[0..n), compressed in parallel (pigz's way:
 * chunks deflated independently, each non-final one ended by a sync flush,
 * so their concatenation is one deflate stream).  pynrrd reads only the
 * first member of a gzip stream, so NRRD data must be a single member.
 * *out is malloc'd. */
int nrrd_gzip_single(const uint8_t *in, size_t n, int level, const nifti_par *par,
                     uint8_t **out, size_t *out_len, nifti_err *err);

#endif
