/* ScaleIntensityRange on the GPU: the map of sir_map.h per element, one
 * thread per output element in the output's memory order. */
#include <string.h>

#include "sir_map.h"

struct sir_kernel {
  const void *in;
  void *out;
  lmc_sir_map m;
  int in_dt, out_dt;
  bool linear;  /* input walks like the output: offset = index */
  lmc_dims d;
  LMC_HD void operator()(int64_t o) const
  {
    lmc_sir_element(m, in, linear ? o : lmc_in_offset(d, o), in_dt, out, o, out_dt);
  }
};

extern "C" int lmc_scale_intensity_range(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  xf_sir p;
  lm_dtype dt;
  int st = xf_sir_options(ctx, &p, &dt);
  if (st < 0) return st;
  lm_device dev = lm_tensor_device(in);
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  st = lm_tensor_new_like(in, dt, dev, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d", dev.index);

  sir_kernel k;
  memset(&k, 0, sizeof k);
  k.in = lm_tensor_data(in);
  k.out = lm_tensor_data(out);
  lmc_sir_map_prepare(&p, &k.m);
  k.in_dt = lm_tensor_dtype(in);
  k.out_dt = dt;
  k.d.ndim = lm_tensor_ndim(in);
  k.linear = true;
  for (int j = 0; j < k.d.ndim; j++) {
    k.d.shape[j] = lm_tensor_shape(in)[j];
    k.d.in_stride[j] = lm_tensor_strides(in)[j];
    k.d.out_stride[j] = lm_tensor_strides(out)[j];
    if (k.d.shape[j] > 1 && k.d.in_stride[j] != k.d.out_stride[j]) k.linear = false;
  }
  cudaError_t e = lmc_for_each(s, lm_tensor_numel(in), k);
  return lmc_finish(ctx, s, e, "ScaleIntensityRange kernel", &out, 1);
}
