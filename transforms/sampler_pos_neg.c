/* RandCropByPosNegLabel: MONAI's positive/negative centre sampling from a
 * label (semantics.md §8.4) with lumen's own seeded generator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crop_mask.h"
#include "sampler_common.h"
#include "xf_util.h"

typedef struct pn_opts {
  int nsp;
  int64_t size[3], n;
  double pos, neg;
  bool allow_smaller;
} pn_opts;

static int pn_prepare(lm_op_ctx *ctx, pn_opts *o)
{
  lm_tensor *img = lm_ctx_input(ctx, 0), *lab = lm_ctx_input(ctx, 1);
  int n = 0, st;
  lm_arg_numbers(ctx, "spatial_size", &n);
  o->nsp = xf_spatial_dims(img, n == 2 || n == 3 ? n : 0);
  if ((st = xf_check_same_spatial(ctx, img, lab, o->nsp)) < 0 ||
      (st = xf_arg_spatial_ints(ctx, "spatial_size", o->nsp, 0, o->size)) < 0)
    return st;
  const int64_t *sh = lm_tensor_shape(img) + lm_tensor_ndim(img) - o->nsp;
  o->allow_smaller = lm_arg_bool(ctx, "allow_smaller");
  for (int d = 0; d < o->nsp; d++) {
    if (o->size[d] <= 0) o->size[d] = sh[d]; /* fall_back_tuple */
    if (o->size[d] > sh[d] && !o->allow_smaller)
      return lm_ctx_error(ctx, LM_ESHAPE, "spatial_size %lld is larger than "
                          "the image (%lld) on spatial dim %d; set "
                          "allow_smaller", (long long)o->size[d],
                          (long long)sh[d], d + 1);
  }
  o->pos = lm_arg_number(ctx, "pos");
  o->neg = lm_arg_number(ctx, "neg");
  if (!(o->pos >= 0) || !(o->neg >= 0) || o->pos + o->neg <= 0)
    return lm_ctx_error(ctx, LM_EINVAL, "options 'pos' and 'neg' must be >= 0 "
                        "and not both 0");
  o->n = lm_arg_int(ctx, "num_samples");
  if (o->n < 1 || o->n > 1000000)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'num_samples' = %lld must be "
                        "1..1000000", (long long)o->n);
  return LM_OK;
}

static int pn_check(lm_op_ctx *ctx)
{
  pn_opts o;
  return pn_prepare(ctx, &o);
}

/* Voxels per counting block: the k-th candidate is found by skipping whole
 * blocks by their counts, then scanning one block. */
#define PN_BLOCK 65536

/* Position of the k-th voxel of class cls in cls_map. */
static int64_t kth(const uint8_t *cls_map, const int64_t *bcount, int64_t vox,
                   uint8_t cls, int64_t k)
{
  int64_t b = 0;
  while (k >= bcount[b]) k -= bcount[b++];
  for (int64_t p = b * PN_BLOCK;; p++)
    if (cls_map[p] == cls && k-- == 0) return p;
  (void)vox;
}

static int pn_run(lm_op_ctx *ctx)
{
  pn_opts o;
  int st = pn_prepare(ctx, &o);
  if (st < 0) return st;
  lm_tensor *img = lm_ctx_input(ctx, 0), *lab = lm_ctx_input(ctx, 1);
  const int64_t *sh = lm_tensor_shape(img) + lm_tensor_ndim(img) - o.nsp;
  int64_t vox = 1;
  for (int d = 0; d < o.nsp; d++) vox *= sh[d];
  int lead = lm_tensor_ndim(lab) - o.nsp;
  int64_t lch = 1;
  for (int d = 0; d < lead; d++) lch *= lm_tensor_shape(lab)[d];
  int64_t nblocks = (vox + PN_BLOCK - 1) / PN_BLOCK;
  uint8_t *fg = malloc((size_t)(2 * vox + 1));
  int64_t *cnt = calloc((size_t)(2 * nblocks + 2), sizeof(int64_t));
  int64_t *starts = malloc(sizeof(int64_t) * (size_t)(o.n * o.nsp));
  int64_t *centers = malloc(sizeof(int64_t) * (size_t)(o.n * o.nsp));
  if (!fg || !cnt || !starts || !centers) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  uint8_t *valid = fg + vox;
  /* MONAI map_binary_to_indices: fg = label (without channel 0 when
   * one-hot) != 0 in any channel; bg = valid and not fg, valid = image >
   * image_threshold in any channel, or everything. */
  if ((st = xf_spatial_any(ctx, lab, o.nsp, lch > 1 ? 1 : 0,
                           XF_SELECT_NONZERO, 0, fg)) < 0)
    goto done;
  if (lm_arg_is_set(ctx, "image_threshold")) {
    if ((st = xf_spatial_any(ctx, img, o.nsp, 0, XF_SELECT_GT,
                             lm_arg_number(ctx, "image_threshold"), valid)) < 0)
      goto done;
  } else {
    memset(valid, 1, (size_t)vox);
  }
  /* Classes in place: 1 = fg, 2 = bg, 0 = neither; counted per block. */
  int64_t nfg = 0, nbg = 0, *cfg = cnt, *cbg = cnt + nblocks + 1;
  for (int64_t p = 0; p < vox; p++) {
    uint8_t c = fg[p] ? 1 : valid[p] ? 2 : 0;
    fg[p] = c;
    if (c == 1) { cfg[p / PN_BLOCK]++; nfg++; }
    else if (c == 2) { cbg[p / PN_BLOCK]++; nbg++; }
  }
  if (nfg == 0 && nbg == 0) {
    st = lm_ctx_error(ctx, LM_EINVAL, "no foreground and no valid background "
                      "voxel to centre a patch on");
    goto done;
  }
  double ratio = o.pos / (o.pos + o.neg);
  if (nfg == 0) ratio = 0; /* MONAI warns and samples background only */
  if (nbg == 0) ratio = 1;
  xf_rng rng;
  xf_rng_seed(&rng, (uint64_t)lm_arg_int(ctx, "seed"));
  int64_t npos = 0;
  for (int64_t i = 0; i < o.n; i++) {
    bool pos = xf_rng_unit(&rng) < ratio;
    npos += pos;
    int64_t k = xf_rng_below(&rng, pos ? nfg : nbg);
    int64_t p = kth(fg, pos ? cfg : cbg, vox, pos ? 1 : 2, k);
    for (int d = o.nsp - 1; d >= 0; d--) {
      int64_t c = p % sh[d];
      p /= sh[d];
      /* MONAI correct_crop_centers: lo = s//2, hi = uint16(n + 1 - s/2)
       * (truncated), hi += 1 when equal, c = clamp(c, lo, hi - 1). */
      int64_t s = o.size[d] < sh[d] ? o.size[d] : sh[d];
      int64_t lo = s / 2, hi = (int64_t)((double)sh[d] + 1.0 - (double)s / 2.0);
      if (lo == hi) hi++;
      if (c < lo) c = lo;
      if (c > hi - 1) c = hi - 1;
      centers[i * o.nsp + d] = c;
      /* SpatialCrop(roi_center=c, roi_size): start = max(c - s//2, 0). */
      int64_t s0 = c - o.size[d] / 2;
      starts[i * o.nsp + d] = s0 < 0 ? 0 : s0;
    }
  }
  xf_pad_mode mode = XF_PAD_CONSTANT;
  if ((st = xf_patch_batch(ctx, img, o.nsp, o.n, starts, o.size, mode,
                           lm_arg_number(ctx, "value"),
                           "RandCropByPosNegLabel", 0)) < 0 ||
      (st = xf_patch_batch(ctx, lab, o.nsp, o.n, starts, o.size, mode, 0,
                           "RandCropByPosNegLabel", 1)) < 0 ||
      (st = xf_result_ints(ctx, "centers", centers, (int)(o.n * o.nsp))) < 0 ||
      (st = xf_result_ints(ctx, "starts", starts, (int)(o.n * o.nsp))) < 0)
    goto done;
  lm_params_set_int(lm_ctx_results(ctx), "num_positive", npos);
done:
  free(fg);
  free(cnt);
  free(starts);
  free(centers);
  return st;
}

static const lm_arg_desc pn_args[] = {
  {"spatial_size", LM_ARG_NUMBERS, NULL, "patch size, one per spatial dim "
   "(or one for all); <= 0 = the image's"},
  {"pos", LM_ARG_NUMBER, "1", "weight of foreground-centred patches"},
  {"neg", LM_ARG_NUMBER, "1", "weight of background-centred patches"},
  {"num_samples", LM_ARG_INT, "1", "patches to draw"},
  {"image_threshold", LM_ARG_NUMBER, "nil", "background centres only where "
   "the image is > this in some channel; nil = anywhere outside the label"},
  {"allow_smaller", LM_ARG_BOOL, "false", "accept a patch larger than the "
   "image (its parts past the end are padded)"},
  {"value", LM_ARG_NUMBER, "0", "image padding value (labels pad with 0)"},
  {"seed", LM_ARG_INT, "0", "generator seed: the same seed gives the same "
   "patches"},
};

const lm_op_desc lm_op_rand_crop_by_pos_neg_label = {
  .name = "RandCropByPosNegLabel",
  .alias = NULL,
  .summary = "Random patches centred on foreground or background voxels of "
             "a label, stacked in a batch",
  .doc =
    "MONAI RandCropByPosNegLabel (croppad/array.py; transforms/utils.py "
    "map_binary_to_indices, generate_pos_neg_label_crop_centers, "
    "correct_crop_centers), the oracle for everything but the random "
    "stream. fg = label != 0 in any channel (channel 0 skipped when the "
    "label has several: one-hot background); bg = not fg and (image > "
    "image_threshold in some channel, when set). Each sample: positive with "
    "probability pos / (pos + neg) (0 without fg, 1 without bg, an error "
    "without both), a voxel drawn uniformly from that class (in C order of "
    "the spatial index), then per axis the centre is clamped to "
    "[s//2, uint16(n + 1 - s/2) - 1] (the upper bound + 1 when equal) so the "
    "patch fits, and the patch is [c - s//2, c - s//2 + s). A size larger "
    "than the image is an error unless allow_smaller (then the patch keeps "
    "the requested size and is padded at the end, where MONAI returns a "
    "smaller one). The generator is lumen's own (xoshiro256** from "
    "splitmix64(seed)): the same seed gives the same patches on any machine "
    "and thread count, not MONAI's numpy stream.\n"
    "Outputs: img and label patches stacked on a new leading axis, "
    "(N, C, X, Y, Z), layout \"N\" + the input's, the affine of patch 0 and a "
    "trace entry with every start. Results: centers and starts (flat, N x "
    "spatial dims, voxels), num_positive.",
  .inputs = "img, label",
  .min_inputs = 2,
  .max_inputs = 2,
  .outputs = "img, label",
  .args = pn_args,
  .nargs = (int)(sizeof pn_args / sizeof pn_args[0]),
  .flags = 0,
  .check = pn_check,
  .run_cpu = pn_run,
  .run_cuda = NULL,
};
