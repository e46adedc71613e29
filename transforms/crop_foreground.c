/* CropForeground: MONAI's CropForeground and nnU-Net's crop_to_nonzero as
 * two rules of one op (semantics.md §8.1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crop_box.h"
#include "crop_foreground.h"
#include "crop_mask.h"
#include "fill_holes.h"
#include "xf_util.h"

int xf_cf_prepare(lm_op_ctx *ctx, xf_cf_opts *o)
{
  lm_tensor *img = lm_ctx_input(ctx, 0);
  memset(o, 0, sizeof *o);
  const char *rule = lm_arg_string(ctx, "rule");
  if (!rule || !strcmp(rule, "monai")) o->nnunet = false;
  else if (!strcmp(rule, "nnunet")) o->nnunet = true;
  else
    return lm_ctx_error(ctx, LM_EINVAL, "option 'rule' = '%s' is not "
                        "'monai' or 'nnunet'", rule);
  o->nsp = xf_spatial_dims(img, 0);
  if (o->nsp < 1 || o->nsp > 3)
    return lm_ctx_error(ctx, LM_ESHAPE, "needs 1 to 3 spatial dims");
  int st;
  if ((st = xf_arg_spatial_ints(ctx, "margin", o->nsp, 0, o->margin)) < 0 ||
      (st = xf_arg_spatial_ints(ctx, "k_divisible", o->nsp, 1, o->k)) < 0 ||
      (st = xf_arg_pad_mode(ctx, "mode", &o->mode)) < 0)
    return st;
  for (int d = 0; d < o->nsp; d++)
    if (o->margin[d] < 0)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'margin' must not be "
                          "negative (MONAI raises)");
  o->allow_smaller = lm_arg_bool(ctx, "allow_smaller");
  o->thr = lm_arg_number(ctx, "select_threshold");
  o->value = lm_arg_number(ctx, "value");
  o->conn = (int)lm_arg_int(ctx, "connectivity");
  if (o->conn < 1 || o->conn > o->nsp)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'connectivity' = %d must be "
                        "1..%d", o->conn, o->nsp);
  if (lm_ctx_ninputs(ctx) > 1) {
    lm_tensor *lab = lm_ctx_input(ctx, 1);
    int nl = lm_tensor_ndim(lab), ni = lm_tensor_ndim(img);
    for (int d = 0; d < o->nsp; d++)
      if (nl < o->nsp ||
          lm_tensor_shape(lab)[nl - o->nsp + d] !=
              lm_tensor_shape(img)[ni - o->nsp + d])
        return lm_ctx_error(ctx, LM_ESHAPE, "the label's spatial shape does "
                            "not match the image's (spatial dim %d)", d + 1);
  }
  return LM_OK;
}

static int cf_check(lm_op_ctx *ctx)
{
  xf_cf_opts o;
  return xf_cf_prepare(ctx, &o);
}

int xf_cf_seg_new(lm_op_ctx *ctx, const xf_cf_opts *o, lm_tensor *img,
                  lm_tensor *lab, lm_tensor *crop, const int64_t *size,
                  const int64_t *lo, lm_device dev, lm_tensor **outp)
{
  lm_tensor *out = NULL;
  int nd = lab ? lm_tensor_ndim(lab) : o->nsp + 1, st;
  int64_t shape[LM_MAX_DIMS];
  if (crop) {
    memcpy(shape, lm_tensor_shape(crop), sizeof(int64_t) * (size_t)nd);
  } else {
    shape[0] = 1;
    memcpy(shape + 1, size, sizeof(int64_t) * (size_t)o->nsp);
  }
  lm_dtype dt = lab ? lm_tensor_dtype(lab) : LM_I16;
  if (dt == LM_U8 || dt == LM_U16 || dt == LM_U32) dt = LM_I16;
  if (crop) st = lm_tensor_new_like(crop, dt, dev, &out);
  else st = lm_tensor_new(lm_ctx_engine(ctx), dt, nd, shape, dev, &out);
  if (st < 0) return st;
  if (!crop) {
    /* Geometry of the image's crop, with a channel axis of its own. */
    double aff[16];
    char lay[LM_MAX_DIMS + 2] = "C";
    xf_box_affine(lm_tensor_affine(img), o->nsp, lo, aff);
    lm_tensor_set_affine(out, aff);
    const char *il = lm_tensor_layout(img);
    size_t len = strlen(il);
    if (len >= (size_t)o->nsp) {
      memcpy(lay + 1, il + len - (size_t)o->nsp, (size_t)o->nsp);
      lay[o->nsp + 1] = 0;
      lm_tensor_set_layout(out, lay);
    }
    lm_tensor_trace_copy(out, img);
  }
  *outp = out;
  return LM_OK;
}

int xf_cf_seg_trace(const xf_cf_opts *o, lm_tensor *out, lm_tensor *img,
                    lm_tensor *lab, const int64_t *lo, const int64_t *size)
{
  int64_t end[3];
  for (int d = 0; d < o->nsp; d++) end[d] = lo[d] + size[d];
  return xf_trace_push_box(out, "CropForeground", lab ? lab : img, o->nsp, lo,
                           end, "rule=nnunet");
}

/* nnU-Net's segmentation: the label cropped to the box with -1 where it is
 * 0 outside the filled nonzero mask, or where(mask, 0, -1) without a
 * label; int16 unless the label already has a signed type. */
static int nnunet_seg(lm_op_ctx *ctx, const xf_cf_opts *o, lm_tensor *img,
                      lm_tensor *lab, const uint8_t *mask, const int64_t *n,
                      const int64_t *lo, const int64_t *size)
{
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *crop = NULL, *dense = NULL, *out = NULL;
  int st;
  if (lab && (st = xf_crop_box(ctx, lab, o->nsp, lo, size, XF_PAD_CONSTANT, 0,
                               &crop)) < 0)
    return st;
  if ((st = xf_cf_seg_new(ctx, o, img, lab, crop, size, lo, LM_CPU, &out)) < 0)
    goto fail;
  int nd = lm_tensor_ndim(out);
  int64_t vox = 1, nch = 1;
  for (int d = 0; d < o->nsp; d++) vox *= size[d];
  for (int d = 0; d < nd - o->nsp; d++) nch *= lm_tensor_shape(out)[d];
  if ((st = lm_tensor_zeros(e, LM_I32, nd, lm_tensor_shape(out), LM_CPU,
                            &dense)) < 0 ||
      (crop && (st = lm_tensor_copy(dense, crop)) < 0))
    goto fail;
  int32_t *v = lm_tensor_data(dense);
  int64_t idx[3] = {0, 0, 0};
  for (int64_t p = 0; p < vox; p++) {
    int64_t q = 0;
    for (int d = 0; d < o->nsp; d++) q = q * n[d] + lo[d] + idx[d];
    if (!mask[q])
      for (int64_t c = 0; c < nch; c++)
        if (v[c * vox + p] == 0) v[c * vox + p] = -1;
    for (int d = o->nsp - 1; d >= 0; d--) {
      if (++idx[d] < size[d]) break;
      idx[d] = 0;
    }
  }
  if ((st = lm_tensor_copy(out, dense)) < 0 ||
      (st = xf_cf_seg_trace(o, out, img, lab, lo, size)) < 0)
    goto fail;
  lm_tensor_release(crop);
  lm_tensor_release(dense);
  return lm_ctx_set_output(ctx, 1, out);
fail:
  lm_tensor_release(crop);
  lm_tensor_release(dense);
  lm_tensor_release(out);
  return st == LM_ECANCELED ? st : lm_ctx_error(ctx, st, "cannot build the "
                                                "nnU-Net segmentation");
}

void xf_cf_monai_box(const xf_cf_opts *o, const int64_t *n, int64_t *lo,
                     int64_t *hi)
{
  for (int d = 0; d < o->nsp; d++) {
    lo[d] -= o->margin[d];
    hi[d] += o->margin[d];
    if (o->allow_smaller) {
      if (lo[d] < 0) lo[d] = 0;
      if (hi[d] > n[d]) hi[d] = n[d];
    }
    int64_t s = hi[d] - lo[d];
    int64_t s2 = o->k[d] > 0 ? (s + o->k[d] - 1) / o->k[d] * o->k[d] : s;
    lo[d] -= (s2 - s) / 2;
    hi[d] = lo[d] + s2;
  }
}

static int cf_run(lm_op_ctx *ctx)
{
  xf_cf_opts o;
  int st = xf_cf_prepare(ctx, &o);
  if (st < 0) return st;
  lm_tensor *img = lm_ctx_input(ctx, 0);
  lm_tensor *lab = lm_ctx_ninputs(ctx) > 1 ? lm_ctx_input(ctx, 1) : NULL;
  const int64_t *n = lm_tensor_shape(img) + lm_tensor_ndim(img) - o.nsp;
  int64_t vox = 1, lo[3], hi[3], size[3];
  for (int d = 0; d < o.nsp; d++) vox *= n[d];
  uint8_t *mask = malloc((size_t)(vox ? vox : 1));
  if (!mask) return lm_ctx_error(ctx, LM_ENOMEM, "cannot allocate the mask");
  st = xf_spatial_any(ctx, img, o.nsp, 0,
                      o.nnunet ? XF_SELECT_NONZERO : XF_SELECT_GT, o.thr, mask);
  if (st < 0) goto done;
  if (o.nnunet) {
    /* binary_fill_holes changes the mask (the seg's -1 region), not the
     * box; an empty mask keeps the whole image. */
    if ((st = xf_binary_fill_holes(mask, o.nsp, n, o.conn)) < 0) {
      st = lm_ctx_error(ctx, st, "cannot fill the mask's holes");
      goto done;
    }
    if (!xf_mask_bbox(mask, o.nsp, n, lo, hi))
      for (int d = 0; d < o.nsp; d++) {
        lo[d] = 0;
        hi[d] = n[d];
      }
  } else if (xf_mask_bbox(mask, o.nsp, n, lo, hi)) {
    xf_cf_monai_box(&o, n, lo, hi);
  } /* else MONAI's all-zero box: an empty output */
  for (int d = 0; d < o.nsp; d++) size[d] = hi[d] - lo[d];
  char extra[32];
  snprintf(extra, sizeof extra, "rule=%s", o.nnunet ? "nnunet" : "monai");
  st = xf_crop_box_output(ctx, img, o.nsp, lo, size, o.mode, o.value,
                          "CropForeground", extra, 0);
  if (st < 0) goto done;
  if (o.nnunet) {
    st = nnunet_seg(ctx, &o, img, lab, mask, n, lo, size);
  } else if (lab) {
    st = xf_crop_box_output(ctx, lab, o.nsp, lo, size, XF_PAD_CONSTANT, 0,
                            "CropForeground", extra, 1);
  }
done:
  free(mask);
  return st;
}

static const lm_arg_desc cf_args[] = {
  {"rule", LM_ARG_STRING, "'monai'", "'monai' (x > select_threshold, margin, "
   "k_divisible, box may leave the image) or 'nnunet' (crop_to_nonzero)"},
  {"margin", LM_ARG_NUMBERS, "{0}", "MONAI: voxels added on each side, one "
   "per spatial dim or one for all"},
  {"k_divisible", LM_ARG_NUMBERS, "{1}", "MONAI: the box size is rounded up "
   "to a multiple of k, growing evenly (the odd voxel at the end)"},
  {"allow_smaller", LM_ARG_BOOL, "false", "MONAI: clamp the margin to the "
   "image instead of padding (MONAI >= 1.5 default false)"},
  {"select_threshold", LM_ARG_NUMBER, "0", "MONAI: foreground is x > this "
   "in any channel"},
  {"mode", LM_ARG_STRING, "'constant'", "MONAI: padding of the box parts "
   "outside the image ('constant', 'edge', 'reflect', 'symmetric')"},
  {"value", LM_ARG_NUMBER, "0", "MONAI: the constant of mode 'constant'"},
  {"connectivity", LM_ARG_INT, "1", "nnU-Net: background connectivity of "
   "binary_fill_holes (1 = faces, scipy's default)"},
};

const lm_op_desc lm_op_crop_foreground = {
  .name = "CropForeground",
  .alias = NULL,
  .summary = "Crop to the foreground's bounding box (MONAI or nnU-Net "
             "rule); a label is cropped with the same box",
  .doc =
    "rule = 'monai': MONAI CropForeground (croppad/array.py, "
    "generate_spatial_bounding_box), the oracle. fg = any over channels of "
    "x > select_threshold (strictly positive by default: negative CT values "
    "are background). Per spatial axis: start = first fg index - margin, "
    "end = last + margin + 1 (allow_smaller clamps to the image); then "
    "size' = ceil(size / k) * k, start -= (size' - size) // 2, end = start + "
    "size'. The box may leave the image: those parts are padded (mode, "
    "value). No foreground at all gives MONAI's empty box [0, 0) (a "
    "zero-size output). Example: fg at 2..4 of 10, margin 1, k 4 -> size 5 "
    "-> 8, box 0..8.\n"
    "rule = 'nnunet': nnU-Net v2 crop_to_nonzero (preprocessing/cropping/"
    "cropping.py): mask = binary_fill_holes(any over channels of x != 0) "
    "(connectivity 1 = scipy's default), box = the mask's bounding box "
    "(the fill does not change it), an empty mask keeps the whole image. "
    "The second output is nnU-Net's seg: the label cropped to the box with "
    "-1 where it is 0 outside the filled mask, or where(mask, 0, -1) "
    "(shape (1, box)) when no label is given; int16 unless the label has a "
    "signed type. margin / k_divisible do not apply.\n"
    "Spatial dims: the layout's trailing X/Y/Z (else the last 3); the label "
    "must have the image's spatial shape. Outputs keep dtype and layout; the "
    "affine moves to the box's first voxel; a trace entry CropForeground "
    "box_start=..;box_end=..;rule=.. on each output. Results: box_start, "
    "box_end (input voxels, end exclusive)."
    " Also runs on CUDA tensors when the CUDA plugin is loaded (rule "
    "'nnunet' fills the mask's holes on the host).",
  .inputs = "img, label",
  .min_inputs = 1,
  .max_inputs = 2,
  .outputs = "img, label",
  .args = cf_args,
  .nargs = (int)(sizeof cf_args / sizeof cf_args[0]),
  .flags = 0,
  .check = cf_check,
  .run_cpu = cf_run,
  .run_cuda = NULL,
};
