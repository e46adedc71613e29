/* Connected-component labelling of 2-D and 3-D grids: the core under
 * KeepLargestConnectedComponent, Contours and anything else that needs
 * components.  Private to transforms/ (not part of lumen.h). */
#ifndef LM_CONNECTED_COMPONENTS_H
#define LM_CONNECTED_COMPONENTS_H
#include <stdint.h>

#include "lumen.h"

/*
 * Label the components of a dense grid of class values cls[(z*ny + y)*nx + x]
 * (x fastest).  A voxel of class 0 is background; two neighbouring voxels
 * are in one component when they have the SAME nonzero class, so one call
 * separates every label of a label map at once (a binary mask is the case
 * of one class).
 *
 * connectivity: 6, 18 or 26 (3-D: faces; faces and edges; faces, edges and
 * corners), or 4 or 8 (2-D: each z plane on its own, edges / edges and
 * corners).
 *
 * labels[] (same indexing) receives 0 for background and 1..*ncomp for the
 * components, numbered in the order of their first voxel in memory order
 * (the raster order of the buffer; scipy.ndimage.label numbers the same way
 * over its own array order).  If sizes is not NULL, *sizes is set to a
 * malloc'ed array of *ncomp + 1 voxel counts (index 0 unused, 0).
 *
 * Work is split across the compute pool: each slab of rows is labelled
 * with union-find over runs, slab seams are merged, and the forest is
 * flattened and renumbered in parallel.  nx*ny*nz must be below 2^31 - 2
 * (LM_EUNSUPPORTED otherwise).  ctx may be NULL; with a ctx, errors are
 * recorded on it and cancellation is honoured.
 */
int cc_label(lm_engine *e, lm_op_ctx *ctx, const int32_t *cls, int64_t nx,
             int64_t ny, int64_t nz, int connectivity, int32_t *labels,
             int64_t *ncomp, int64_t **sizes);


/*
 * Renumber the labels of cc_label so that components are numbered by their
 * first voxel in C order over the (X, Y, Z) array (z fastest), the order
 * scipy.ndimage.label and skimage.measure.label use on MONAI's arrays.
 * sizes (may be NULL) is permuted to match.
 */
int cc_renumber_c_order(lm_engine *e, lm_op_ctx *ctx, int32_t *labels,
                        int64_t nx, int64_t ny, int64_t nz, int64_t ncomp,
                        int64_t *sizes);
#endif
