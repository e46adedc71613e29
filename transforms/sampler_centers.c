/* RandCropAroundCenters and RandNegativeCrop: the LUNA16 / VNet nodule
 * sampler (patches around given centres with a random offset, every centre
 * used equally often) and its negative twin (random patches away from the
 * centres).  Crops are acvl_utils crop_and_pad_nd (semantics.md §8.4): the
 * box stays where it is and its parts outside the image are padded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler_common.h"
#include "xf_util.h"

typedef struct cs_opts {
  int nsp;
  int64_t size[3], n;
  int64_t *centers, ncenters;  /* malloc'ed voxel centres */
  xf_pad_mode mode;
} cs_opts;

static int cs_prepare(lm_op_ctx *ctx, cs_opts *o, bool need_centers)
{
  lm_tensor *img = lm_ctx_input(ctx, 0);
  memset(o, 0, sizeof *o);
  int n = 0, st;
  lm_arg_numbers(ctx, "spatial_size", &n);
  o->nsp = xf_spatial_dims(img, n == 2 || n == 3 ? n : 0);
  if (lm_ctx_ninputs(ctx) > 1 &&
      (st = xf_check_same_spatial(ctx, img, lm_ctx_input(ctx, 1), o->nsp)) < 0)
    return st;
  if ((st = xf_arg_spatial_ints(ctx, "spatial_size", o->nsp, 0, o->size)) < 0 ||
      (st = xf_arg_pad_mode(ctx, "mode", &o->mode)) < 0)
    return st;
  const int64_t *sh = lm_tensor_shape(img) + lm_tensor_ndim(img) - o->nsp;
  for (int d = 0; d < o->nsp; d++)
    if (o->size[d] <= 0) o->size[d] = sh[d];
  if ((st = xf_arg_centers(ctx, "centers", img, o->nsp, &o->centers,
                           &o->ncenters)) < 0)
    return st;
  if (need_centers && o->ncenters == 0)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'centers' gives no centre");
  o->n = lm_arg_is_set(ctx, "num_samples") ? lm_arg_int(ctx, "num_samples")
                                           : (need_centers ? o->ncenters : 1);
  if (o->n < 1 || o->n > 1000000) {
    free(o->centers);
    o->centers = NULL;
    return lm_ctx_error(ctx, LM_EINVAL, "option 'num_samples' = %lld must be "
                        "1..1000000", (long long)o->n);
  }
  return LM_OK;
}

/* Both patches (image, and label when given) and the results. */
static int cs_output(lm_op_ctx *ctx, const cs_opts *o, const char *op,
                     const int64_t *starts, const int64_t *used)
{
  int64_t *centers = malloc(sizeof(int64_t) * (size_t)(o->n * o->nsp));
  if (!centers) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  for (int64_t i = 0; i < o->n * o->nsp; i++)
    centers[i] = starts[i] + o->size[i % o->nsp] / 2;
  int st = xf_patch_batch(ctx, lm_ctx_input(ctx, 0), o->nsp, o->n, starts,
                          o->size, o->mode, lm_arg_number(ctx, "value"), op, 0);
  if (st >= 0 && lm_ctx_ninputs(ctx) > 1)
    st = xf_patch_batch(ctx, lm_ctx_input(ctx, 1), o->nsp, o->n, starts,
                        o->size, XF_PAD_CONSTANT, 0, op, 1);
  if (st >= 0) st = xf_result_ints(ctx, "centers", centers, (int)(o->n * o->nsp));
  if (st >= 0) st = xf_result_ints(ctx, "starts", starts, (int)(o->n * o->nsp));
  if (st >= 0 && used) st = xf_result_ints(ctx, "center_index", used, (int)o->n);
  free(centers);
  return st;
}

static int ac_check(lm_op_ctx *ctx)
{
  cs_opts o;
  int st = cs_prepare(ctx, &o, true);
  free(o.centers);
  if (st < 0) return st;
  int64_t r[3];
  if ((st = xf_arg_spatial_ints(ctx, "offset_range", o.nsp, 0, r)) < 0) return st;
  for (int d = 0; d < o.nsp; d++)
    if (r[d] < 0)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'offset_range' must not be "
                          "negative");
  return LM_OK;
}

static int ac_run(lm_op_ctx *ctx)
{
  int st = ac_check(ctx);
  if (st < 0) return st;
  cs_opts o;
  if ((st = cs_prepare(ctx, &o, true)) < 0) return st;
  int64_t r[3];
  xf_arg_spatial_ints(ctx, "offset_range", o.nsp, 0, r);
  int64_t *starts = malloc(sizeof(int64_t) * (size_t)(o.n * o.nsp));
  int64_t *used = malloc(sizeof(int64_t) * (size_t)o.n);
  int64_t *perm = malloc(sizeof(int64_t) * (size_t)o.ncenters);
  if (!starts || !used || !perm) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  xf_rng rng;
  xf_rng_seed(&rng, (uint64_t)lm_arg_int(ctx, "seed"));
  /* Rounds of a fresh random permutation of the centres: over N samples
   * each centre is used floor(N/K) or ceil(N/K) times, exactly N/K when K
   * divides N. */
  for (int64_t i = 0; i < o.n; i++) {
    if (i % o.ncenters == 0) {
      for (int64_t k = 0; k < o.ncenters; k++) perm[k] = k;
      for (int64_t k = o.ncenters - 1; k > 0; k--) {
        int64_t j = xf_rng_below(&rng, k + 1), t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
      }
    }
    int64_t c = perm[i % o.ncenters];
    used[i] = c;
    for (int d = 0; d < o.nsp; d++) {
      int64_t off = xf_rng_below(&rng, 2 * r[d] + 1) - r[d];
      starts[i * o.nsp + d] = o.centers[c * o.nsp + d] + off - o.size[d] / 2;
    }
  }
  st = cs_output(ctx, &o, "RandCropAroundCenters", starts, used);
done:
  free(starts);
  free(used);
  free(perm);
  free(o.centers);
  return st;
}

#define CS_COMMON_ARGS                                                       \
  {"spatial_size", LM_ARG_NUMBERS, NULL, "patch size, one per spatial dim "  \
   "(or one for all); <= 0 = the image's"},                                  \
  {"coords", LM_ARG_STRING, "'voxel'", "'voxel': centres are voxel indices " \
   "(rounded half to even); 'world': RAS mm, mapped through the inverse "    \
   "affine"},                                                                \
  {"mode", LM_ARG_STRING, "'constant'", "image padding outside the volume "  \
   "('constant', 'edge', 'reflect', 'symmetric'); labels pad with 0"},       \
  {"value", LM_ARG_NUMBER, "0", "the constant of mode 'constant' (e.g. "     \
   "-1000 for CT in HU)"},                                                   \
  {"seed", LM_ARG_INT, "0", "generator seed: the same seed gives the same "  \
   "patches"}

static const lm_arg_desc ac_args[] = {
  {"centers", LM_ARG_NUMBERS, NULL, "flat list of centres, 3 (2-D: 2) "
   "numbers each: {x1, y1, z1, x2, y2, z2, ...}"},
  {"offset_range", LM_ARG_NUMBERS, "{0}", "largest random shift of the "
   "patch centre in voxels, per spatial dim (or one for all): uniform in "
   "[-r, r]"},
  {"num_samples", LM_ARG_INT, "nil", "patches to draw; nil = one per "
   "centre"},
  CS_COMMON_ARGS,
};

const lm_op_desc lm_op_rand_crop_around_centers = {
  .name = "RandCropAroundCenters",
  .alias = NULL,
  .summary = "Patches around given centres (nodules) with a random offset, "
             "every centre used equally often",
  .doc =
    "The LUNA16 nodule sampler of the VNet training. Sample i takes the "
    "centre perm[i mod K] of a fresh random permutation of the K centres "
    "per round (so over N samples each centre is used floor(N/K) or "
    "ceil(N/K) times), adds a uniform integer offset in [-r, r] per axis and "
    "crops the box [c + offset - s//2, ... + s) as acvl_utils "
    "crop_and_pad_nd: the box keeps its position and its parts outside the "
    "image are padded (mode / value; labels with 0), so the centre stays at "
    "voxel s//2 (+ offset) of the patch. Seeded (xoshiro256**): the same "
    "seed gives the same patches.\n"
    "Outputs: img (and label when given) patches stacked on a new leading "
    "axis (N, C, X, Y, Z), layout \"N\" + the input's, the affine of patch "
    "0, a trace entry with every start. Results: centers (patch centres = "
    "start + s//2), starts (flat, N x spatial dims, voxels), center_index "
    "(which centre each patch used, 0-based).",
  .inputs = "img, label",
  .min_inputs = 1,
  .max_inputs = 2,
  .outputs = "img, label",
  .args = ac_args,
  .nargs = (int)(sizeof ac_args / sizeof ac_args[0]),
  .flags = 0,
  .check = ac_check,
  .run_cpu = ac_run,
  .run_cuda = NULL,
};

static int nc_check(lm_op_ctx *ctx)
{
  cs_opts o;
  int st = cs_prepare(ctx, &o, false);
  free(o.centers);
  if (st < 0) return st;
  double r = lm_arg_number(ctx, "exclusion_radius");
  if (!(r >= 0))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'exclusion_radius' must be "
                        ">= 0");
  if (lm_arg_int(ctx, "max_tries") < 1)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'max_tries' must be >= 1");
  return LM_OK;
}

/* Distance in mm from voxel centre c to the box [start, start + size - 1]
 * (0 inside), along the image axes scaled by the spacing. */
static double box_distance(const int64_t *c, const int64_t *start,
                           const int64_t *size, const double *sp, int nsp)
{
  double s = 0;
  for (int d = 0; d < nsp; d++) {
    int64_t lo = start[d], hi = start[d] + size[d] - 1, g = 0;
    if (c[d] < lo) g = lo - c[d];
    else if (c[d] > hi) g = c[d] - hi;
    s += (double)g * sp[d] * (double)g * sp[d];
  }
  return sqrt(s);
}

static int nc_run(lm_op_ctx *ctx)
{
  int st = nc_check(ctx);
  if (st < 0) return st;
  cs_opts o;
  if ((st = cs_prepare(ctx, &o, false)) < 0) return st;
  lm_tensor *img = lm_ctx_input(ctx, 0);
  const int64_t *sh = lm_tensor_shape(img) + lm_tensor_ndim(img) - o.nsp;
  double sp[3], r = lm_arg_number(ctx, "exclusion_radius");
  lm_tensor_spacing(img, sp);
  if (o.nsp < 3) { /* the affine's first nsp columns */
    const double *a = lm_tensor_affine(img);
    for (int d = 0; d < o.nsp; d++)
      sp[d] = sqrt(a[d] * a[d] + a[4 + d] * a[4 + d] + a[8 + d] * a[8 + d]);
  }
  int64_t tries = lm_arg_int(ctx, "max_tries");
  int64_t *starts = malloc(sizeof(int64_t) * (size_t)(o.n * o.nsp));
  if (!starts) {
    free(o.centers);
    return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  }
  xf_rng rng;
  xf_rng_seed(&rng, (uint64_t)lm_arg_int(ctx, "seed"));
  for (int64_t i = 0; i < o.n && st >= 0; i++) {
    int64_t *s = starts + i * o.nsp, t = 0;
    for (; t < tries; t++) {
      /* Every start that keeps the patch inside (or, for a patch larger
       * than the image, that keeps the image inside the patch). */
      for (int d = 0; d < o.nsp; d++) {
        int64_t lo = 0, hi = sh[d] - o.size[d];
        if (hi < 0) { lo = hi; hi = 0; }
        s[d] = lo + xf_rng_below(&rng, hi - lo + 1);
      }
      bool clear = true;
      for (int64_t k = 0; clear && k < o.ncenters; k++)
        clear = box_distance(o.centers + k * o.nsp, s, o.size, sp, o.nsp) > r;
      if (clear) break;
    }
    if (t == tries)
      st = lm_ctx_error(ctx, LM_EINVAL, "no patch of this size lies farther "
                        "than %g mm from every centre after %lld tries "
                        "(sample %lld)", r, (long long)tries, (long long)i + 1);
  }
  if (st >= 0) st = cs_output(ctx, &o, "RandNegativeCrop", starts, NULL);
  free(starts);
  free(o.centers);
  return st;
}

static const lm_arg_desc nc_args[] = {
  {"centers", LM_ARG_NUMBERS, "nil", "flat list of centres to stay away "
   "from, 3 (2-D: 2) numbers each; nil = none"},
  {"exclusion_radius", LM_ARG_NUMBER, "0", "mm: a patch is kept only if "
   "every centre is farther than this from the patch box"},
  {"num_samples", LM_ARG_INT, "1", "patches to draw"},
  {"max_tries", LM_ARG_INT, "1000", "candidates drawn per patch before "
   "giving up with an error"},
  CS_COMMON_ARGS,
};

const lm_op_desc lm_op_rand_negative_crop = {
  .name = "RandNegativeCrop",
  .alias = NULL,
  .summary = "Random patches away from given centres (negative samples)",
  .doc =
    "The negative half of the LUNA16 / VNet nodule sampler. Each patch's "
    "start is drawn uniformly per axis over the starts that keep it inside "
    "the image (a patch larger than the image: over the starts that keep "
    "the image inside it, padded per mode / value); it is redrawn (up to "
    "max_tries, then an error) while some centre lies within "
    "exclusion_radius mm of the patch box (distance from the centre voxel to "
    "the nearest voxel of the box, axes scaled by the spacing; 0 inside). "
    "Seeded (xoshiro256**): the same seed gives the same patches.\n"
    "Outputs, layout, geometry, trace and results (centers, starts) as "
    "RandCropAroundCenters.",
  .inputs = "img, label",
  .min_inputs = 1,
  .max_inputs = 2,
  .outputs = "img, label",
  .args = nc_args,
  .nargs = (int)(sizeof nc_args / sizeof nc_args[0]),
  .flags = 0,
  .check = nc_check,
  .run_cpu = nc_run,
  .run_cuda = NULL,
};
