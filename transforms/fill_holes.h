/* Hole filling on dense grids: the flood from the border behind MONAI's
 * FillHoles and scipy's binary_fill_holes (nnU-Net's nonzero mask).
 * Private to transforms/. */
#ifndef LM_XF_FILL_HOLES_H
#define LM_XF_FILL_HOLES_H
#include <stdint.h>

/* Neighbourhood of scipy's generate_binary_structure(nsp, connectivity):
 * offsets with at most `connectivity` non-zero components (1 = faces,
 * nsp = full).  Valid values are 1..nsp. */

/* grid: a dense C-order array of nsp (1..3) dims of shape n.  Every voxel
 * where grid == bg that is connected to the grid's border through voxels
 * == bg (neighbourhood above) is marked 1 in reached[] (same shape; other
 * entries 0).  This is scipy's binary_dilation(zeros, structure,
 * iterations=-1, mask=(grid == bg), border_value=1).  Returns 0 or
 * LM_ENOMEM. */
int xf_flood_from_border(const uint8_t *grid, uint8_t bg, int nsp,
                         const int64_t *n, int connectivity,
                         uint8_t *reached);

/* scipy.ndimage.binary_fill_holes(mask, structure of `connectivity`) in
 * place: mask (0/1, dense C order) gets every 0-voxel not connected to the
 * border set to 1.  scipy's default is connectivity 1 (faces).  Returns 0
 * or LM_ENOMEM. */
int xf_binary_fill_holes(uint8_t *mask, int nsp, const int64_t *n,
                         int connectivity);

#endif
