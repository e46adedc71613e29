/* Element-wise copies between device tensors of one shape: the index maps
 * every gather kernel of the plugin uses, and a same-shape copy with the
 * conversion rules of Cast (Cast itself, the flipped copy of Orientation,
 * the float32 working copy of NormalizeIntensity). */
#ifndef LMC_COPY_H
#define LMC_COPY_H
#include "cuda_util.h"

/* d for walking dense `out` in its memory order and reading `in` (same
 * shape, any strides, negative ones included).  Returns true when in walks
 * like out (every dim of size > 1 has the same stride), so offset = index
 * and the kernel can skip lmc_in_offset. */
static inline bool lmc_dims_fill(lmc_dims *d, const lm_tensor *in, const lm_tensor *out)
{
  bool linear = true;
  memset(d, 0, sizeof *d);
  d->ndim = lm_tensor_ndim(in);
  for (int k = 0; k < d->ndim; k++) {
    d->shape[k] = lm_tensor_shape(in)[k];
    d->in_stride[k] = lm_tensor_strides(in)[k];
    d->out_stride[k] = lm_tensor_strides(out)[k];
    if (d->shape[k] > 1 && d->in_stride[k] != d->out_stride[k]) linear = false;
  }
  return linear;
}

/* Launch out[...] = convert(in[...]) on s (out dense, same shape as in;
 * dtypes may differ: Cast's rules).  Returns the launch error. */
cudaError_t lmc_launch_convert(cudaStream_t s, const lm_tensor *in, lm_tensor *out);

#endif
