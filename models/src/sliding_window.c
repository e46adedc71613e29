/* SlidingWindowInfer: a network run over windows of a larger image, the
 * window outputs blended by weights (semantics.md §8.5).  MONAI's
 * sliding_window_inference and nnU-Net v2's predict_sliding_window_return_
 * logits, with nnU-Net's mirroring test-time augmentation; the arithmetic of
 * window starts and weights is in sliding_window_math.c.
 *
 * Memory: the padded image is never built.  Windows read the input through
 * the padding rule (a voxel outside the image is cval, or the replicated,
 * reflected or wrapped voxel), and the blended sums go straight into the
 * output (C_out, spatial...) float32 plus one spatial float32 weight-sum
 * map: the parts of windows that fall into the padding would be cropped
 * away at the end, so they are never accumulated.  Per batch there is one
 * model input [B, C, roi...] and the model's output (and, with mirroring,
 * one [B, C_out, roi...] sum of the flipped predictions). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "sliding_window.h"

/* ---- options ---------------------------------------------------------- */

static int pick(lm_op_ctx *ctx, const char *opt, const char *def,
                const char *const *names, int *out)
{
  const char *v = lm_arg_string(ctx, opt);
  if (!v) v = def;
  for (int i = 0; names[i]; i++)
    if (strcmp(v, names[i]) == 0) {
      *out = i;
      return LM_OK;
    }
  char list[128] = "";
  for (int i = 0; names[i]; i++)
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'",
             i ? ", " : "", names[i]);
  return lm_ctx_error(ctx, LM_EINVAL, "option '%s' is '%s'; expected %s", opt,
                      v, list);
}

static int read_choices(lm_op_ctx *ctx, sw_setup *s)
{
  static const char *const rules[] = {"monai", "nnunet", NULL};
  static const char *const modes[] = {"constant", "gaussian", NULL};
  static const char *const pads[] = {"constant", "replicate", "reflect",
                                     "circular", NULL};
  int rule, mode, pad, st;
  if ((st = pick(ctx, "rule", "monai", rules, &rule)) < 0) return st;
  s->rule = rule ? SW_RULE_NNUNET : SW_RULE_MONAI;
  /* nnU-Net's defaults: Gaussian blending, tile_step_size 0.5. */
  bool nn = s->rule == SW_RULE_NNUNET;
  if ((st = pick(ctx, "mode", nn ? "gaussian" : "constant", modes, &mode)) < 0)
    return st;
  s->blend = mode ? SW_BLEND_GAUSSIAN : SW_BLEND_CONSTANT;
  if ((st = pick(ctx, "padding_mode", "constant", pads, &pad)) < 0) return st;
  s->pad = (sw_pad)pad;
  s->overlap = lm_arg_is_set(ctx, "overlap") ? lm_arg_number(ctx, "overlap")
                                             : (nn ? 0.5 : 0.25);
  if (!(s->overlap >= 0.0 && s->overlap < 1.0))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'overlap' is %g; it must be "
                        ">= 0 and < 1", s->overlap);
  s->sigma_scale = lm_arg_number(ctx, "sigma_scale");
  if (!(s->sigma_scale > 0.0 && isfinite(s->sigma_scale)))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'sigma_scale' is %g; it must "
                        "be > 0", s->sigma_scale);
  s->cval = lm_arg_number(ctx, "cval");
  s->batch = lm_arg_int(ctx, "sw_batch_size");
  if (s->batch < 1)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'sw_batch_size' is %lld; it "
                        "must be >= 1", (long long)s->batch);
  return LM_OK;
}

/* Which spatial dims the network has: its declared input rank, else the
 * number of roi entries, else the image's. */
static int network_dims(lm_op_ctx *ctx, sw_setup *s, int rank)
{
  int nroi = 0;
  if (lm_arg_is_set(ctx, "roi")) lm_arg_numbers(ctx, "roi", &nroi);
  int msp = rank >= 3 ? rank - 2 : (nroi > 1 ? nroi : s->nsp);
  if (msp == s->nsp) {
    s->slice_axis = -1;
  } else if (msp == 2 && s->nsp == 3) {
    int64_t a = lm_arg_int(ctx, "slice_axis");
    if (a < 0) a += 3;
    if (a < 0 || a > 2)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'slice_axis' is %lld; the "
                          "image has spatial axes 0..2",
                          (long long)lm_arg_int(ctx, "slice_axis"));
    s->slice_axis = (int)a;
  } else {
    return lm_ctx_error(ctx, LM_ESHAPE, "model '%s' takes %d-D windows; the "
                        "image (C, spatial...) has %d spatial dims (2-D "
                        "networks run slice by slice on 3-D images only)",
                        lm_model_name(s->model), msp, s->nsp);
  }
  s->model_ndim = msp + 2;
  /* The network's spatial axes: the image's without the slice axis, in
   * order, or reversed for a ZYX network. */
  int k = 0;
  for (int d = 0; d < s->nsp; d++) {
    if (d == s->slice_axis) {
      s->model_axis[d] = -1;
      continue;
    }
    s->model_axis[d] = 2 + (s->zyx ? msp - 1 - k : k);
    k++;
  }
  return LM_OK;
}

/* roi per image axis: the option (one value for all, or one per network
 * axis in the image's order; <= 0 takes the image size, as MONAI's
 * fall_back_tuple), else the network's static input shape. */
static int read_roi(lm_op_ctx *ctx, sw_setup *s, const int64_t *decl,
                    int rank)
{
  int msp = s->model_ndim - 2, nroi = 0;
  const double *roi = NULL;
  if (lm_arg_is_set(ctx, "roi")) roi = lm_arg_numbers(ctx, "roi", &nroi);
  bool fixed = rank == s->model_ndim;
  for (int d = 0; d < s->nsp && fixed; d++)
    if (s->model_axis[d] >= 0 && decl[s->model_axis[d]] <= 0) fixed = false;
  if (roi && nroi != 1 && nroi != msp)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'roi' has %d values; model "
                        "'%s' takes %d-D windows", nroi,
                        lm_model_name(s->model), msp);
  if (!roi && !fixed)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'roi' is required: model "
                        "'%s' has no fixed spatial input size",
                        lm_model_name(s->model));
  int k = 0;
  for (int d = 0; d < s->nsp; d++) {
    if (d == s->slice_axis) {
      s->roi[d] = 1;
      continue;
    }
    int64_t r;
    if (roi) {
      double v = roi[nroi == 1 ? 0 : k];
      if (v != floor(v) || v > 1e9)
        return lm_ctx_error(ctx, LM_EINVAL, "option 'roi' value %d is %g; "
                            "window sizes are whole voxels",
                            (nroi == 1 ? 0 : k) + 1, v);
      r = v <= 0 ? s->n[d] : (int64_t)v;
    } else {
      r = decl[s->model_axis[d]];
    }
    if (fixed && r != decl[s->model_axis[d]])
      return lm_ctx_error(ctx, LM_ESHAPE, "option 'roi' gives %lld voxels "
                          "along image axis %d; model '%s' takes exactly %lld "
                          "there", (long long)r, d, lm_model_name(s->model),
                          (long long)decl[s->model_axis[d]]);
    s->roi[d] = r;
    k++;
  }
  return LM_OK;
}

static int read_mirror(lm_op_ctx *ctx, sw_setup *s)
{
  s->mirror = 0;
  if (!lm_arg_is_set(ctx, "mirror_axes")) return LM_OK;
  int na = 0;
  const double *ax = lm_arg_numbers(ctx, "mirror_axes", &na);
  for (int i = 0; i < na; i++) {
    double v = ax[i];
    if (v != floor(v) || v < 0 || v >= s->nsp || (int)v == s->slice_axis)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'mirror_axes' value %d is "
                          "%g; it must be a spatial axis 0..%d of the image "
                          "(0-based, after the channel axis)%s", i + 1, v,
                          s->nsp - 1,
                          s->slice_axis >= 0 ? ", not the slice axis" : "");
    s->mirror |= 1u << (int)v;
  }
  return LM_OK;
}

int sw_prepare(lm_op_ctx *ctx, sw_setup *s)
{
  memset(s, 0, sizeof *s);
  s->model = lm_arg_model(ctx, "model");
  if (!s->model)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'model' is missing");
  if (lm_model_ninputs(s->model) != 1)
    return lm_ctx_error(ctx, LM_EUNSUPPORTED, "model '%s' has %d inputs; "
                        "SlidingWindowInfer runs single-input networks",
                        lm_model_name(s->model),
                        lm_model_ninputs(s->model));
  int st = read_choices(ctx, s);
  if (st < 0) return st;
  lm_tensor *x = lm_ctx_input(ctx, 0);
  int nd = lm_tensor_ndim(x);
  if (nd < 2 || nd > SW_MAX_SP + 1)
    return lm_ctx_error(ctx, LM_ESHAPE, "img has %d dims; SlidingWindowInfer "
                        "takes a channels-first image (C, spatial...) with 1 "
                        "to 3 spatial dims", nd);
  s->nsp = nd - 1;
  s->channels = lm_tensor_shape(x)[0];
  for (int d = 0; d < s->nsp; d++) {
    s->n[d] = lm_tensor_shape(x)[d + 1];
    if (s->n[d] < 1)
      return lm_ctx_error(ctx, LM_ESHAPE, "img is empty along spatial axis %d",
                          d);
  }
  s->zyx = strcmp(lm_model_axes(s->model), "ZYX") == 0;
  int64_t decl[LM_MAX_DIMS];
  int rank = lm_model_input_shape(s->model, 0, decl);
  if ((st = network_dims(ctx, s, rank)) < 0) return st;
  if (rank >= 0 && rank != s->model_ndim)
    return lm_ctx_error(ctx, LM_ESHAPE, "model '%s' input has rank %d",
                        lm_model_name(s->model), rank);
  if (rank >= 2 && decl[1] > 0 && decl[1] != s->channels)
    return lm_ctx_error(ctx, LM_ESHAPE, "img has %lld channels; model '%s' "
                        "takes %lld", (long long)s->channels,
                        lm_model_name(s->model), (long long)decl[1]);
  s->static_batch = rank >= 1 && decl[0] > 0;
  if (s->static_batch && decl[0] != s->batch)
    return lm_ctx_error(ctx, LM_ESHAPE, "model '%s' takes batches of exactly "
                        "%lld; set sw_batch_size = %lld",
                        lm_model_name(s->model), (long long)decl[0],
                        (long long)decl[0]);
  if ((st = read_roi(ctx, s, decl, rank)) < 0) return st;
  int64_t k = lm_arg_int(ctx, "output");
  int nout = lm_model_noutputs(s->model);
  if (k < 0 || k >= nout || k >= LM_MAX_OUTPUTS)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'output' is %lld; model '%s' "
                        "has outputs 0..%d", (long long)k,
                        lm_model_name(s->model), nout - 1);
  s->output = (int)k;
  /* Checked here for both devices (the CUDA kernel maps the value itself).
   * On the CPU, as Infer: 'auto' is the model's precision, bfloat16 the
   * bf16 convolutions where the CPU has them; float16 runs on CUDA only. */
  static const char *const precisions[] = {"auto", "float32", "float16",
                                           "bfloat16", NULL};
  int prec;
  if ((st = pick(ctx, "precision", "auto", precisions, &prec)) < 0) return st;
  if (prec == 2 && lm_tensor_device(x).type == LM_DEVICE_CPU)
    return lm_ctx_error(ctx, LM_EUNSUPPORTED, "option 'precision': float16 "
                        "runs on CUDA only (img is on the CPU); use float32 or "
                        "bfloat16, or move img to cuda");
  s->bf16 = prec == 0 ? s->model->bf16 : prec == 3;
  return read_mirror(ctx, s);
}

static int sw_check(lm_op_ctx *ctx)
{
  sw_setup s;
  return sw_prepare(ctx, &s);
}

/* ---- the windows -------------------------------------------------------- */

void sw_grid_free(sw_grid *g)
{
  for (int d = 0; d < SW_MAX_SP; d++) free(g->starts[d]);
}

int sw_grid_build(lm_op_ctx *ctx, const sw_setup *s, sw_grid *g)
{
  memset(g, 0, sizeof *g);
  g->nwin = 1;
  for (int d = 0; d < s->nsp; d++) {
    /* pad to max(n, roi), the odd voxel after (MONAI, nnU-Net pad_nd_image) */
    int64_t padded = s->n[d] > s->roi[d] ? s->n[d] : s->roi[d];
    g->pad_before[d] = (padded - s->n[d]) / 2;
    int64_t c = d == s->slice_axis
                    ? s->n[d] /* every slice */
                    : sw_window_starts(s->rule, padded, s->roi[d], s->overlap,
                                       NULL, 0);
    if (c < 1)
      return lm_ctx_error(ctx, LM_EINTERNAL, "no windows along axis %d", d);
    g->starts[d] = malloc(sizeof(int64_t) * (size_t)c);
    if (!g->starts[d]) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    if (d == s->slice_axis)
      for (int64_t i = 0; i < c; i++) g->starts[d][i] = i;
    else
      sw_window_starts(s->rule, padded, s->roi[d], s->overlap, g->starts[d],
                       c);
    g->count[d] = c;
    g->nwin *= c;
  }
  return LM_OK;
}

/* ---- the op --------------------------------------------------------------- */

typedef struct sw_run {
  sw_setup s;
  sw_grid g;
  float *w;                    /* weight map over roi */
  lm_tensor *in;               /* network input, full batch */
  lm_tensor *out;              /* the result (C_out, n...) */
  lm_tensor *count;            /* weight sums (n...) */
  float *acc;                  /* mirroring sums [B, C_out, roi...] */
  int64_t cout;
  int64_t roi_vox;
} sw_run;

static void run_free(sw_run *r)
{
  sw_grid_free(&r->g);
  free(r->w);
  free(r->acc);
  lm_tensor_release(r->in);
  lm_tensor_release(r->out);
  lm_tensor_release(r->count);
}

/* Sum the weights of every window into the count map (window order, as
 * MONAI builds its count map). */
static int accumulate_counts(lm_op_ctx *ctx, sw_run *r)
{
  float *cnt = lm_tensor_data(r->count);
  for (int64_t win = 0; win < r->g.nwin; win++) {
    int st = sw_scatter_weights(ctx, &r->s, &r->g, win, r->w, cnt);
    if (st < 0) return st;
  }
  return LM_OK;
}

/* Check the network's output for a batch and allocate the result on the
 * first one. */
static int check_output(lm_op_ctx *ctx, sw_run *r, lm_tensor *pred,
                        int64_t nb)
{
  const sw_setup *s = &r->s;
  const int64_t *ps = lm_tensor_shape(pred);
  int nd = lm_tensor_ndim(pred);
  int64_t want_b = s->static_batch ? s->batch : nb;
  bool ok = nd == s->model_ndim && ps[0] == want_b && ps[1] >= 1;
  for (int d = 0; d < s->nsp && ok; d++)
    if (s->model_axis[d] >= 0 && ps[s->model_axis[d]] != s->roi[d]) ok = false;
  if (ok && r->out && ps[1] != r->cout) ok = false;
  if (!ok || !lm_tensor_is_contiguous(pred)) {
    char got[160] = "";
    for (int d = 0; d < nd; d++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld",
               d ? ", " : "", (long long)ps[d]);
    return lm_ctx_error(ctx, LM_ESHAPE, "model '%s' output %d has shape (%s); "
                        "SlidingWindowInfer needs (%lld, C_out, ...) with the "
                        "window's spatial size (outputs at another resolution "
                        "are not supported)", lm_model_name(s->model),
                        s->output, got, (long long)want_b);
  }
  if (r->out) return LM_OK;
  r->cout = ps[1];
  lm_engine *e = lm_ctx_engine(ctx);
  int64_t oshape[SW_MAX_SP + 1];
  oshape[0] = r->cout;
  for (int d = 0; d < s->nsp; d++) oshape[d + 1] = s->n[d];
  int st = lm_tensor_zeros(e, LM_F32, s->nsp + 1, oshape, LM_CPU, &r->out);
  if (st < 0) return lm_ctx_error(ctx, st, "out of memory for the output");
  if (s->mirror) {
    r->acc = malloc(sizeof(float) * (size_t)(s->batch * r->cout * r->roi_vox));
    if (!r->acc) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  }
  return LM_OK;
}

/* One run of the network on the windows [first, first + nb), flipped along
 * the axes of `flip`.  *pred receives the output. */
static int run_network(lm_op_ctx *ctx, sw_run *r, int64_t first, int64_t nb,
                       unsigned flip, lm_tensor **pred)
{
  const sw_setup *s = &r->s;
  int st = sw_gather(ctx, s, &r->g, lm_ctx_input(ctx, 0), first, nb, flip,
                     lm_tensor_data(r->in));
  if (st < 0) return st == LM_ECANCELED ? st : lm_ctx_error(ctx, st, "out of "
                                                            "memory");
  lm_tensor *in = r->in, *view = NULL;
  if (nb < s->batch && !s->static_batch) {
    /* The last, smaller batch: the first nb windows of the buffer (a
     * contiguous view); the model builds and caches a plan for it. */
    if ((st = lm_tensor_narrow(r->in, 0, 0, nb, &view)) < 0)
      return lm_ctx_error(ctx, st, "cannot make the batch view");
    in = view;
  }
  /* outputs 0..k of the network; keep output k */
  lm_tensor *outs[LM_MAX_OUTPUTS] = {0};
  st = lm_model_run_prec(s->model, ctx, &in, 1, outs, s->output + 1,
                         s->bf16);
  lm_tensor_release(view);
  for (int i = 0; i < s->output; i++) lm_tensor_release(outs[i]);
  *pred = outs[s->output];
  return st;
}

int sw_mirror_subsets(unsigned mask, unsigned *subs)
{
  int n = 0;
  for (int size = 0; size <= SW_MAX_SP; size++)
    for (unsigned sub = 0; sub <= mask; sub++)
      if ((sub & ~mask) == 0 && __builtin_popcount(sub) == size) subs[n++] = sub;
  return n;
}

/* Blend the predictions of windows [first, first + nb) into the output. */
static int blend_batch(lm_op_ctx *ctx, sw_run *r, int64_t first, int64_t nb)
{
  const sw_setup *s = &r->s;
  lm_tensor *pred = NULL;
  int st = run_network(ctx, r, first, nb, 0, &pred);
  if (st >= 0) st = check_output(ctx, r, pred, nb);
  if (st < 0) goto done;
  /* Where each window's prediction is read from: the network's output as
   * it is, or the sum of the mirrored runs in the window's own frame. */
  const float *src = lm_tensor_data(pred);
  sw_layout pl = sw_network_layout(s, r->cout);
  float scale = 1.0f;
  if (s->mirror) {
    /* nnU-Net: net(x) + sum over the non-empty subsets S of the mirror
     * axes of flip(net(flip(x, S)), S), then / 2^k. */
    unsigned subs[1 << SW_MAX_SP];
    int nsub = sw_mirror_subsets(s->mirror, subs);
    for (int i = 0; i < nsub && st >= 0; i++) {
      if (subs[i]) {
        lm_tensor_release(pred);
        pred = NULL;
        if ((st = run_network(ctx, r, first, nb, subs[i], &pred)) < 0) break;
        if ((st = check_output(ctx, r, pred, nb)) < 0) break;
      }
      st = sw_unflip_add(ctx, s, lm_tensor_data(pred), r->cout, nb, subs[i],
                         i == 0, r->acc);
    }
    if (st < 0) goto done;
    src = r->acc;
    pl = sw_window_layout(s, r->cout);
    scale = 1.0f / (float)nsub; /* 1 / 2^k: exact */
  }
  /* Windows one after another: two windows of a batch may overlap. */
  float *out = lm_tensor_data(r->out);
  for (int64_t b = 0; b < nb && st >= 0; b++)
    st = sw_scatter(ctx, s, &r->g, first + b, src + b * pl.b, &pl, scale,
                    r->w, out, r->cout);
done:
  lm_tensor_release(pred);
  return st;
}

typedef struct divide_job {
  float *out;
  const float *count;
  int64_t vox;
} divide_job;

static int divide_range(int64_t begin, int64_t end, void *arg)
{
  const divide_job *j = arg;
  for (int64_t i = begin; i < end; i++) j->out[i] /= j->count[i % j->vox];
  return LM_OK;
}

static int sw_run_cpu(lm_op_ctx *ctx)
{
  sw_run r;
  memset(&r, 0, sizeof r);
  int st = sw_prepare(ctx, &r.s);
  if (st < 0) return st;
  const sw_setup *s = &r.s;
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *x = lm_ctx_input(ctx, 0);
  if ((st = sw_grid_build(ctx, s, &r.g)) < 0) goto done;
  r.roi_vox = 1;
  int64_t vox = 1;
  for (int d = 0; d < s->nsp; d++) {
    r.roi_vox *= s->roi[d];
    vox *= s->n[d];
  }
  r.w = malloc(sizeof(float) * (size_t)r.roi_vox);
  if (!r.w) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory for the weight map");
    goto done;
  }
  if (sw_weight_map(s->rule, s->blend, s->nsp, s->roi, s->sigma_scale, r.w) <
      0) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory for the weight map");
    goto done;
  }
  /* The network's input buffer for a full batch. */
  int64_t ishape[LM_MAX_DIMS];
  ishape[1] = s->channels;
  for (int d = 0; d < s->nsp; d++)
    if (s->model_axis[d] >= 0) ishape[s->model_axis[d]] = s->roi[d];
  /* No buffer larger than the windows there are, unless the network only
   * takes batches of exactly sw_batch_size: then the last batch runs in
   * full, its unused windows zeros or left over from the batch before
   * (their outputs are not read). */
  if (!s->static_batch && r.g.nwin < s->batch) r.s.batch = r.g.nwin;
  ishape[0] = s->batch;
  if ((st = lm_tensor_zeros(e, LM_F32, s->model_ndim, ishape, LM_CPU,
                            &r.in)) < 0) {
    st = lm_ctx_error(ctx, st, "out of memory for the window batch");
    goto done;
  }
  int64_t cshape[SW_MAX_SP];
  for (int d = 0; d < s->nsp; d++) cshape[d] = s->n[d];
  if ((st = lm_tensor_zeros(e, LM_F32, s->nsp, cshape, LM_CPU, &r.count)) <
      0) {
    st = lm_ctx_error(ctx, st, "out of memory for the weight sums");
    goto done;
  }
  if ((st = accumulate_counts(ctx, &r)) < 0) goto done;
  for (int64_t first = 0; first < r.g.nwin; first += s->batch) {
    if (lm_ctx_cancelled(ctx)) {
      st = LM_ECANCELED;
      goto done;
    }
    int64_t nb = r.g.nwin - first < s->batch ? r.g.nwin - first : s->batch;
    if ((st = blend_batch(ctx, &r, first, nb)) < 0) goto done;
  }
  divide_job dj = {.out = lm_tensor_data(r.out),
                   .count = lm_tensor_data(r.count), .vox = vox};
  if ((st = lm_parallel_for(e, ctx, r.cout * vox, 1 << 16, divide_range,
                            &dj)) < 0)
    goto done;
  /* The logits lie on x's grid. */
  lm_tensor_set_affine(r.out, lm_tensor_affine(x));
  lm_tensor_set_layout(r.out, lm_tensor_layout(x));
  lm_tensor_trace_copy(r.out, x);
  lm_params *res = lm_ctx_results(ctx);
  if (res) lm_params_set_int(res, "windows", r.g.nwin);
  st = lm_ctx_set_output(ctx, 0, r.out);
  r.out = NULL;
done:
  run_free(&r);
  return st;
}

static const lm_arg_desc sw_args[] = {
  {"model", LM_ARG_MODEL, NULL,
   "the network (a Model from LoadModel); from Lua also positional: "
   "SlidingWindowInfer(model, x, {...})"},
  {"roi", LM_ARG_NUMBERS, "nil",
   "window size, one value per network spatial axis in the image's axis "
   "order (or one for all); <= 0 takes the image size; default: the "
   "network's fixed input size"},
  {"overlap", LM_ARG_NUMBER, "nil",
   "0 <= overlap < 1; default 0.25 (rule 'monai'), 0.5 (rule 'nnunet', whose "
   "tile_step_size is 1 - overlap)"},
  {"sw_batch_size", LM_ARG_INT, "1", "windows per network run"},
  {"mode", LM_ARG_STRING, "nil",
   "'constant' or 'gaussian' blending; default 'constant' (monai), "
   "'gaussian' (nnunet)"},
  {"sigma_scale", LM_ARG_NUMBER, "0.125",
   "Gaussian sigma as a fraction of the window size"},
  {"padding_mode", LM_ARG_STRING, "'constant'",
   "padding of an image smaller than the window: 'constant' (cval), "
   "'replicate', 'reflect' or 'circular' (torch F.pad's modes)"},
  {"cval", LM_ARG_NUMBER, "0", "the value of 'constant' padding"},
  {"rule", LM_ARG_STRING, "'monai'",
   "'monai' (fixed interval, last window snapped to the end, Gaussian "
   "centred between voxels, 1e-3 floor) or 'nnunet' (windows spread evenly, "
   "Gaussian peak at roi // 2, x10 in float16)"},
  {"mirror_axes", LM_ARG_NUMBERS, "nil",
   "nnU-Net test-time mirroring: spatial axes (0-based, lumen's axis order) "
   "whose 2^k - 1 flip combinations are averaged with the plain run, as "
   "logits"},
  {"output", LM_ARG_INT, "0",
   "which output of the network to blend (0-based; e.g. the full-resolution "
   "head of a network with several)"},
  {"slice_axis", LM_ARG_INT, "2",
   "for a 2-D network on a 3-D image: the axis stepped over slice by slice "
   "(windows over the other two)"},
  {"precision", LM_ARG_STRING, "'auto'",
   "'auto', 'float32', 'float16' or 'bfloat16', as Infer's: activations "
   "and convolutions in that type, float32 accumulation and logits; 'auto' "
   "is the model's precision if it sets one, else float32 on the CPU and "
   "float16 on CUDA; on the CPU float16 is an error"},
  {"channels_last", LM_ARG_BOOL, "false",
   "CUDA: the network's activations channels-last between layers (cuDNN's "
   "fast layout for float16/bfloat16), as Infer's option"},
  {"cuda_graph", LM_ARG_BOOL, "true",
   "CUDA: capture the network's launches for one batch once as a CUDA "
   "graph and replay it for every batch of windows"},
};

const lm_op_desc lm_op_sliding_window_infer = {
  .name = "SlidingWindowInfer",
  .alias = NULL,
  .summary = "Run a network over windows of an image and blend them "
             "(MONAI and nnU-Net rules)",
  .doc =
      "MONAI 1.4 sliding_window_inference (rule 'monai', the default) and "
      "nnU-Net v2 predict_sliding_window_return_logits (rule 'nnunet'), "
      "semantics.md 8.5. img is (C, spatial...), any dtype (read as "
      "float32). Padding: each axis shorter than the window is padded to it, "
      "w//2 before and the rest after (padding_mode, cval). Window starts "
      "per axis of padded size n: monai: interval = roi if roi == n else "
      "max(int(roi * (1 - overlap)), 1), windows at i * interval until one "
      "reaches n, the last moved back to end at n (n=110, roi=64, overlap "
      ".25 -> 0, 46); nnunet: ceil((n - roi) / (roi * (1 - overlap))) + 1 "
      "windows at round(i * (n - roi) / (count - 1)) (n=110, roi=64, overlap "
      ".5 -> 0, 23, 46). Weights: constant 1; monai gaussian exp(-x^2 / "
      "(2 sigma^2)), x = -(roi-1)/2 .. (roi-1)/2, sigma = sigma_scale * roi, "
      "product over axes, floored at 1e-3; nnunet gaussian peak at roi // 2, "
      "x10, rounded to float16, float16 zeros replaced by the smallest "
      "weight. out = sum(w * pred) / sum(w) over the windows covering each "
      "voxel, accumulated in float32, padding cropped. mirror_axes: for each "
      "window, pred = (net(x) + sum over non-empty subsets S of flip(net("
      "flip(x, S)), S)) / 2^k (nnU-Net averages logits). A 2-D network "
      "(input rank 4) on a 3-D image runs slice by slice along slice_axis. "
      "A network with axes 'ZYX' sees each window's spatial axes reversed. "
      "sw_batch_size windows go through the network together; the last "
      "batch may be smaller (its own plan; a network whose batch size is "
      "fixed runs it padded). Output: (C_out, spatial...) "
      "float32 logits with img's affine, layout and trace. Result: windows "
      "(the number of windows).\n"
      "\n"
      "  local logits = SlidingWindowInfer(net, x, {roi = {96, 96, 96}, "
      "sw_batch_size = 4, mode = 'gaussian'})",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "logits",
  .args = sw_args,
  .nargs = (int)(sizeof sw_args / sizeof sw_args[0]),
  .flags = LM_OP_MODEL,
  .check = sw_check,
  .run_cpu = sw_run_cpu,
  .run_cuda = NULL,
};
