/* CropForeground on the GPU, both rules.  The foreground mask (x > t, or
 * x != 0 for nnU-Net, in any channel; values compared as doubles like the
 * CPU) is built on the device, one thread per voxel in the mask's C order.
 * MONAI: its bounding box is a reduction on the device (each worker keeps
 * its own min / max per axis over a strided walk, then six atomics), and
 * the box rule is the CPU's (xf_cf_monai_box).  nnU-Net: the mask goes to
 * the host for binary_fill_holes (a flood fill; the CPU's own code) and its
 * bounding box, and the filled mask comes back for the segmentation
 * kernel.  The crops are geometry.cu's box copy; options, box rule, seg
 * dtype and geometry are crop_foreground.c's (crop_foreground.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmc_box.h"
extern "C" {
#include "crop_foreground.h"
#include "crop_mask.h"
#include "fill_holes.h"
#include "xf_util.h"
}

struct cf_mask_kernel {
  const void *in;
  uint8_t *mask;
  int dt, nsp, lead;
  bool nonzero;
  double thr;
  int64_t n[3], sstride[3];          /* spatial shape and input strides */
  int64_t nch, lshape[LM_MAX_DIMS], lstride[LM_MAX_DIMS]; /* leading dims */
  LMC_HD void operator()(int64_t v) const
  {
    int64_t off = 0, r = v;
    for (int d = nsp - 1; d >= 0; d--) {
      off += r % n[d] * sstride[d];
      r /= n[d];
    }
    uint8_t any = 0;
    for (int64_t c = 0; c < nch && !any; c++) {
      int64_t coff = 0, cr = c;
      for (int d = lead - 1; d >= 0; d--) {
        coff += cr % lshape[d] * lstride[d];
        cr /= lshape[d];
      }
      double x = lmc_load_f64(in, off + coff, dt);
      any = nonzero ? x != 0 : x > thr;
    }
    mask[v] = any;
  }
};

/* bb[0..3): min index per axis, bb[3..6): max index per axis. */
struct cf_bbox_kernel {
  const uint8_t *mask;
  int nsp;
  int64_t n[3], vox, workers;
  int *bb;
  LMC_HD void operator()(int64_t w) const
  {
    int lo[3] = {INT_MAX, INT_MAX, INT_MAX}, hi[3] = {-1, -1, -1};
    for (int64_t v = w; v < vox; v += workers) {
      if (!mask[v]) continue;
      int64_t r = v;
      for (int d = nsp - 1; d >= 0; d--) {
        int i = (int)(r % n[d]);
        r /= n[d];
        lo[d] = i < lo[d] ? i : lo[d];
        hi[d] = i > hi[d] ? i : hi[d];
      }
    }
    if (hi[0] < 0) return;
    for (int d = 0; d < nsp; d++) {
      lmc_atomic_min_i32(&bb[d], lo[d]);
      lmc_atomic_max_i32(&bb[3 + d], hi[d]);
    }
  }
};

struct cf_bbox_init {
  int *bb;
  LMC_HD void operator()(int64_t i) const { bb[i] = i < 3 ? INT_MAX : -1; }
};

/* nnU-Net's seg: the label crop's value (0 without a label), -1 where it
 * is 0 outside the filled mask; one thread per seg element in its memory
 * order. */
struct cf_seg_kernel {
  const void *crop; /* the label's box, same shape and strides as out, or NULL */
  void *out;
  const uint8_t *mask; /* the filled mask over the whole image, C order */
  int crop_dt, out_dt, nd, nsp;
  int64_t shape[LM_MAX_DIMS], stride[LM_MAX_DIMS];
  int64_t lo[3], mstride[3];
  LMC_HD void operator()(int64_t o) const
  {
    int64_t q = 0;
    for (int k = 0; k < nsp; k++) {
      int d = nd - nsp + k;
      int64_t i = shape[d] > 1 ? o / stride[d] % shape[d] : 0;
      q += (lo[k] + i) * mstride[k];
    }
    double v = crop ? (double)(int64_t)lmc_load_f64(crop, o, crop_dt) : 0.0;
    if (!mask[q] && v == 0) v = -1;
    lmc_store_f64(out, o, out_dt, v);
  }
};

extern "C" int lmc_crop_foreground(lm_op_ctx *ctx)
{
  xf_cf_opts o;
  int st = xf_cf_prepare(ctx, &o);
  if (st < 0) return st;
  lm_tensor *img = lm_ctx_input(ctx, 0);
  lm_tensor *lab = lm_ctx_ninputs(ctx) > 1 ? lm_ctx_input(ctx, 1) : NULL;
  lm_device dev = lm_tensor_device(img);
  if (lab && (lm_tensor_device(lab).type != dev.type || lm_tensor_device(lab).index != dev.index))
    return lm_ctx_error(ctx, LM_EDEVICE, "the label must be on the image's device (cuda:%d)",
                        dev.index);
  int nd = lm_tensor_ndim(img), lead = nd - o.nsp;
  const int64_t *n = lm_tensor_shape(img) + lead;
  int64_t vox = 1, lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0};
  for (int d = 0; d < o.nsp; d++) vox *= n[d];
  for (int d = 0; d < o.nsp; d++)
    if (n[d] > INT_MAX)
      return lm_ctx_error(ctx, LM_ESHAPE, "spatial dim %d has %lld voxels (at most %d on the GPU)",
                          d + 1, (long long)n[d], INT_MAX);
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;

  cudaError_t err = cudaSuccess;
  uint8_t *dmask = (uint8_t *)lmc_scratch_alloc(ctx, s, (size_t)(vox ? vox : 1));
  int *dbb = dmask ? (int *)lmc_scratch_alloc(ctx, s, 6 * sizeof(int)) : NULL;
  uint8_t *hmask = NULL;
  lm_tensor *outs[2] = {NULL, NULL}, *crop = NULL;
  int nout = 0;
  xf_box_plan p;
  if (!dmask || !dbb) {
    st = LM_ENOMEM; /* the allocator set the error */
    goto done;
  }
  {
    cf_mask_kernel k;
    memset(&k, 0, sizeof k);
    k.in = lm_tensor_data(img);
    k.mask = dmask;
    k.dt = lm_tensor_dtype(img);
    k.nsp = o.nsp;
    k.lead = lead;
    k.nonzero = o.nnunet;
    k.thr = o.thr;
    k.nch = 1;
    for (int d = 0; d < o.nsp; d++) {
      k.n[d] = n[d];
      k.sstride[d] = lm_tensor_strides(img)[lead + d];
    }
    for (int d = 0; d < lead; d++) {
      k.lshape[d] = lm_tensor_shape(img)[d];
      k.lstride[d] = lm_tensor_strides(img)[d];
      k.nch *= k.lshape[d];
    }
    err = lmc_for_each(s, vox, k);
  }
  if (err != cudaSuccess) goto done;
  if (!o.nnunet) {
    cf_bbox_kernel b;
    memset(&b, 0, sizeof b);
    b.mask = dmask;
    b.nsp = o.nsp;
    for (int d = 0; d < o.nsp; d++) b.n[d] = n[d];
    b.vox = vox;
    b.workers = vox < 65536 ? vox : 65536;
    b.bb = dbb;
    int bb[6];
    if ((err = lmc_for_each(s, 6, cf_bbox_init{dbb})) != cudaSuccess ||
        (err = lmc_for_each(s, b.workers, b)) != cudaSuccess)
      goto done;
    if ((st = lmc_copy_to_host(ctx, s, bb, dbb, sizeof bb)) < 0) goto done;
    if (bb[3] >= 0) { /* else MONAI's all-zero box: an empty output */
      for (int d = 0; d < o.nsp; d++) {
        lo[d] = bb[d];
        hi[d] = (int64_t)bb[3 + d] + 1;
      }
      xf_cf_monai_box(&o, n, lo, hi);
    }
  } else {
    /* binary_fill_holes changes the mask (the seg's -1 region), not the
     * box; an empty mask keeps the whole image. */
    hmask = (uint8_t *)malloc((size_t)(vox ? vox : 1));
    if (!hmask) {
      st = lm_ctx_error(ctx, LM_ENOMEM, "cannot allocate the mask");
      goto done;
    }
    if ((st = lmc_copy_to_host(ctx, s, hmask, dmask, (size_t)vox)) < 0) goto done;
    if ((st = xf_binary_fill_holes(hmask, o.nsp, n, o.conn)) < 0) {
      st = lm_ctx_error(ctx, st, "cannot fill the mask's holes");
      goto done;
    }
    if (!xf_mask_bbox(hmask, o.nsp, n, lo, hi))
      for (int d = 0; d < o.nsp; d++) {
        lo[d] = 0;
        hi[d] = n[d];
      }
    if ((st = lmc_copy_to_device(ctx, s, dmask, hmask, (size_t)vox)) < 0) goto done;
  }
  memset(&p, 0, sizeof p);
  p.nsp = o.nsp;
  p.mode = o.mode;
  p.value = o.value;
  for (int d = 0; d < o.nsp; d++) {
    p.start[d] = lo[d];
    p.size[d] = hi[d] - lo[d];
  }
  snprintf(p.extra, sizeof p.extra, "rule=%s", o.nnunet ? "nnunet" : "monai");
  if ((st = lmc_crop_box(ctx, s, img, &p, &outs[0], &err)) < 0) goto done;
  nout = 1;
  if ((st = lmc_crop_box_trace(ctx, img, outs[0], &p, "CropForeground", true)) < 0) goto done;
  p.mode = XF_PAD_CONSTANT;
  p.value = 0;
  if (o.nnunet) {
    if (lab && (st = lmc_crop_box(ctx, s, lab, &p, &crop, &err)) < 0) goto done;
    if ((st = xf_cf_seg_new(ctx, &o, img, lab, crop, p.size, lo, dev, &outs[1])) < 0) {
      st = lm_ctx_error(ctx, st, "cannot build the nnU-Net segmentation");
      goto done;
    }
    nout = 2;
    cf_seg_kernel k;
    memset(&k, 0, sizeof k);
    k.crop = crop ? lm_tensor_data(crop) : NULL;
    k.out = lm_tensor_data(outs[1]);
    k.mask = dmask;
    k.crop_dt = crop ? lm_tensor_dtype(crop) : LM_I16;
    k.out_dt = lm_tensor_dtype(outs[1]);
    k.nd = lm_tensor_ndim(outs[1]);
    k.nsp = o.nsp;
    for (int d = 0; d < k.nd; d++) {
      k.shape[d] = lm_tensor_shape(outs[1])[d];
      k.stride[d] = lm_tensor_strides(outs[1])[d];
    }
    int64_t ms = 1;
    for (int d = o.nsp - 1; d >= 0; d--) {
      k.lo[d] = lo[d];
      k.mstride[d] = ms;
      ms *= n[d];
    }
    cudaError_t e = lmc_for_each(s, lm_tensor_numel(outs[1]), k);
    if (err == cudaSuccess) err = e;
    if ((st = xf_cf_seg_trace(&o, outs[1], img, lab, lo, p.size)) < 0) {
      st = lm_ctx_error(ctx, st, "cannot record the trace");
      goto done;
    }
  } else if (lab) {
    if ((st = lmc_crop_box(ctx, s, lab, &p, &outs[1], &err)) < 0) goto done;
    nout = 2;
    if ((st = lmc_crop_box_trace(ctx, lab, outs[1], &p, "CropForeground", false)) < 0) goto done;
  }
done:
  /* Frees are stream-ordered: the queued kernels still see these. */
  if (dbb) lmc_scratch_free(ctx, s, dbb);
  if (dmask) lmc_scratch_free(ctx, s, dmask);
  free(hmask);
  lm_tensor_release(crop);
  if (st < 0 || err != cudaSuccess) {
    for (int i = 0; i < nout; i++) lm_tensor_release(outs[i]);
    return st < 0 ? st : lmc_fail(ctx, "CropForeground kernel", err);
  }
  return lmc_finish(ctx, s, err, "CropForeground kernel", outs, nout);
}
