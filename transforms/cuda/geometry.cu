/* Orientation and the crop / pad ops on the GPU.  The geometry (options,
 * boxes, affine, layout, trace, results) is the CPU ops' own code
 * (orientation.h, crop_ops.h, crop_box.h); only the data movement is here:
 * one thread per output element, in the output's memory order, so writes
 * are coalesced. */
#include <string.h>

#include "crop_ops.h"
#include "lmc_box.h"
#include "lmc_copy.h"
#include "orientation.h"
extern "C" {
#include "xf_util.h"
}

/* ---- Orientation ------------------------------------------------------- */

extern "C" int lmc_orientation(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *view = NULL, *out = NULL;
  bool any_flip;
  double B[16];
  int st = xf_orientation_view(ctx, in, &view, &any_flip, B);
  if (st < 0) return st;
  if (!any_flip) {
    /* A permutation (or nothing): the view is exact, as on the CPU. */
    if ((st = xf_orientation_finish(ctx, in, view, B, false)) < 0) {
      lm_tensor_release(view);
      return st;
    }
    return lm_ctx_set_output(ctx, 0, view);
  }
  /* Flipped axes: copy into the view's memory order (as the CPU), so the
   * gather reads and writes stream. */
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) {
    lm_tensor_release(view);
    return st;
  }
  int order[LM_MAX_DIMS];
  xf_memory_order(view, order);
  st = lm_tensor_new_ordered(lm_ctx_engine(ctx), lm_tensor_dtype(in), lm_tensor_ndim(view),
                             lm_tensor_shape(view), order, lm_tensor_device(in), &out);
  if (st < 0) {
    lm_tensor_release(view);
    return lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d",
                        lm_tensor_device(in).index);
  }
  cudaError_t e = lmc_launch_convert(s, view, out);
  lm_tensor_release(view); /* frees are stream-ordered: the kernel still reads it */
  if ((st = xf_orientation_finish(ctx, in, out, B, true)) < 0) {
    lm_tensor_release(out); /* frees are ordered after the queued kernel */
    return st;
  }
  return lmc_finish(ctx, s, e, "Orientation kernel", &out, 1);
}

/* ---- crops and pads ---------------------------------------------------- */

struct box_args {
  int nd, mode;
  int64_t shape[LM_MAX_DIMS];      /* box (output) shape */
  int64_t out_stride[LM_MAX_DIMS]; /* dense, any dim order */
  int64_t in_n[LM_MAX_DIMS];       /* input shape */
  int64_t in_stride[LM_MAX_DIMS];
  int64_t start[LM_MAX_DIMS];      /* box start per dim (0 for leading dims) */
};

template <typename T> struct box_kernel {
  const T *in;
  T *out;
  T fill;
  box_args a;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t off = 0;
    for (int k = 0; k < a.nd; k++) {
      int64_t i = a.shape[k] > 1 ? o / a.out_stride[k] % a.shape[k] : 0;
      int64_t si = xf_pad_index(i + a.start[k], a.in_n[k], (xf_pad_mode)a.mode);
      if (si < 0) {
        out[o] = fill;
        return;
      }
      off += si * a.in_stride[k];
    }
    out[o] = in[off];
  }
};

template <typename T>
static cudaError_t launch_box(cudaStream_t s, int64_t n, const void *in, void *out,
                              const unsigned char *fill, const box_args &a)
{
  T f;
  memcpy(&f, fill, sizeof f);
  return lmc_for_each(s, n, box_kernel<T>{(const T *)in, (T *)out, f, a});
}

int lmc_crop_box(lm_op_ctx *ctx, cudaStream_t s, lm_tensor *in, const xf_box_plan *p,
                 lm_tensor **outp, cudaError_t *err)
{
  lm_tensor *out = NULL;
  int nd = lm_tensor_ndim(in), lead = nd - p->nsp;
  box_args a;
  memset(&a, 0, sizeof a);
  a.nd = nd;
  a.mode = p->mode;
  for (int d = 0; d < nd; d++) {
    a.in_n[d] = lm_tensor_shape(in)[d];
    a.in_stride[d] = lm_tensor_strides(in)[d];
    a.shape[d] = d < lead ? a.in_n[d] : p->size[d - lead];
    a.start[d] = d < lead ? 0 : p->start[d - lead];
  }
  int order[LM_MAX_DIMS];
  xf_memory_order(in, order);
  lm_dtype dt = lm_tensor_dtype(in);
  int st = lm_tensor_new_ordered(lm_ctx_engine(ctx), dt, nd, a.shape, order, lm_tensor_device(in),
                                 &out);
  if (st < 0)
    return lm_ctx_error(ctx, st, "cannot allocate the output on cuda:%d",
                        lm_tensor_device(in).index);
  for (int d = 0; d < nd; d++) a.out_stride[d] = lm_tensor_strides(out)[d];
  unsigned char fill[8] = {0};
  xf_store_f64(&p->value, fill, (int64_t)lm_dtype_size(dt), dt, 1);
  int64_t n = lm_tensor_numel(out);
  const void *src = lm_tensor_data(in);
  void *dst = lm_tensor_data(out);
  cudaError_t e;
  switch (lm_dtype_size(dt)) {
  case 1: e = launch_box<uint8_t>(s, n, src, dst, fill, a); break;
  case 2: e = launch_box<uint16_t>(s, n, src, dst, fill, a); break;
  case 4: e = launch_box<uint32_t>(s, n, src, dst, fill, a); break;
  default: e = launch_box<uint64_t>(s, n, src, dst, fill, a); break;
  }
  if (*err == cudaSuccess) *err = e;
  double aff[16];
  xf_box_affine(lm_tensor_affine(in), p->nsp, p->start, aff);
  lm_tensor_set_affine(out, aff);
  lm_tensor_set_layout(out, lm_tensor_layout(in));
  lm_tensor_trace_copy(out, in);
  *outp = out;
  return LM_OK;
}

int lmc_crop_box_trace(lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out, const xf_box_plan *p,
                       const char *op, bool results)
{
  int64_t end[3];
  for (int d = 0; d < p->nsp; d++) end[d] = p->start[d] + p->size[d];
  int st = xf_trace_push_box(out, op, in, p->nsp, p->start, end, p->extra[0] ? p->extra : NULL);
  if (st >= 0 && results) st = xf_result_ints(ctx, "box_start", p->start, p->nsp);
  if (st >= 0 && results) st = xf_result_ints(ctx, "box_end", end, p->nsp);
  return st == LM_ENOMEM ? lm_ctx_error(ctx, st, "out of memory") : st;
}

/* xf_crop_box_output with the box copied on the device: same output memory
 * order, metadata, trace entry and results as the CPU op. */
static int crop_box_output(lm_op_ctx *ctx, const xf_box_plan *p, const char *op)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  cudaStream_t s;
  cudaError_t e = cudaSuccess;
  int st;
  if ((st = lmc_stream(ctx, &s)) < 0 || (st = lmc_crop_box(ctx, s, in, p, &out, &e)) < 0)
    return st;
  if ((st = lmc_crop_box_trace(ctx, in, out, p, op, true)) < 0) {
    lm_tensor_release(out); /* frees are ordered after the queued kernel */
    return st;
  }
  return lmc_finish(ctx, s, e, op, &out, 1);
}

#define BOX_OP(FN, PLAN, NAME)                                  \
  extern "C" int FN(lm_op_ctx *ctx)                            \
  {                                                            \
    xf_box_plan p;                                             \
    int st = PLAN(ctx, &p);                                    \
    return st < 0 ? st : crop_box_output(ctx, &p, NAME);       \
  }
BOX_OP(lmc_spatial_crop, xf_spatial_crop_plan, "SpatialCrop")
BOX_OP(lmc_center_crop, xf_center_crop_plan, "CenterCrop")
BOX_OP(lmc_spatial_pad, xf_spatial_pad_plan, "SpatialPad")
BOX_OP(lmc_divisible_pad, xf_divisible_pad_plan, "DivisiblePad")
