/* Resize: MONAI Resize to a spatial size (torch F.interpolate with
 * align_corners=False), the affine scaled to match (semantics.md §0.3). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "resample.h"
#include "xf_util.h"

typedef struct resize_opts {
  int nsp;
  int64_t n[3], m[3];
  xf_interp interp;
  bool exact;     /* 'nearest-exact' */
  lm_dtype dt;
  const char *mode;
} resize_opts;

static int resize_options(lm_op_ctx *ctx, resize_opts *o)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  memset(o, 0, sizeof *o);
  int nd = lm_tensor_ndim(in), cnt;
  o->nsp = xf_spatial_ndim(in);
  if (o->nsp < 1)
    return lm_ctx_error(ctx, LM_ESHAPE, "needs at least one spatial dim");
  const double *sz = lm_arg_numbers(ctx, "spatial_size", &cnt);
  if (cnt != o->nsp)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'spatial_size' needs %d "
                        "numbers, one per spatial dim (got %d)", o->nsp, cnt);
  for (int a = 0; a < o->nsp; a++) {
    o->n[a] = lm_tensor_shape(in)[nd - o->nsp + a];
    if (sz[a] == -1 || sz[a] == 0) { /* MONAI: non-positive keeps the size */
      o->m[a] = o->n[a];
      continue;
    }
    if (!(sz[a] >= 1 && sz[a] < 1e9 && sz[a] == floor(sz[a])))
      return lm_ctx_error(ctx, LM_EINVAL, "option 'spatial_size' must hold "
                          "positive integers or -1 (got %g)", sz[a]);
    o->m[a] = (int64_t)sz[a];
  }
  o->mode = lm_arg_string(ctx, "mode");
  if (!strcmp(o->mode, "nearest")) o->interp = XF_INTERP_FLOOR;
  else if (!strcmp(o->mode, "nearest-exact")) {
    o->interp = XF_INTERP_FLOOR;
    o->exact = true;
  } else if (!strcmp(o->mode, "linear") || !strcmp(o->mode, "bilinear") ||
             !strcmp(o->mode, "trilinear")) {
    o->interp = XF_INTERP_LINEAR;
  } else {
    return lm_ctx_error(ctx, LM_EINVAL, "option 'mode' must be 'nearest', "
                        "'nearest-exact' or 'bilinear' ('linear', "
                        "'trilinear') (got '%s'; 'area' and 'bicubic' are "
                        "not provided)", o->mode);
  }
  bool keep = o->interp == XF_INTERP_FLOOR;
  return xf_arg_dtype(ctx, "dtype", keep ? (int)lm_tensor_dtype(in) : (int)LM_F32,
                      &o->dt);
}

static int resize_check(lm_op_ctx *ctx)
{
  resize_opts o;
  return resize_options(ctx, &o);
}

int xf_resize_apply(lm_op_ctx *ctx, const xf_resample_backend *b,
                    lm_tensor **result)
{
  resize_opts o;
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  int st = resize_options(ctx, &o);
  if (st < 0) return st;
  const double *A = lm_tensor_affine(in);
  double B[16];
  memcpy(B, A, sizeof B);
  xf_resample_spec spec = {.nsp = o.nsp, .interp = o.interp,
                           .padding = XF_PAD_BORDER};
  for (int a = 0; a < o.nsp; a++) {
    double s = (double)o.n[a] / (double)o.m[a];
    spec.m[a][a] = s;
    /* torch: linear c = (o+0.5)s - 0.5 (clamped at 0); nearest floor(o s);
     * nearest-exact floor((o+0.5) s) */
    spec.m[a][3] = o.interp == XF_INTERP_LINEAR ? 0.5 * s - 0.5
                   : o.exact ? 0.5 * s : 0.0;
    /* MONAI scale_affine (centred): column * s, origin moved by (s-1)/2 */
    for (int r = 0; r < 3; r++) {
      B[r * 4 + 3] += A[r * 4 + a] * 0.5 * (s - 1);
      B[r * 4 + a] = A[r * 4 + a] * s;
    }
  }
  st = xf_resample_new_output(in, o.nsp, o.m, o.dt, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  st = b->resample(ctx, in, out, &spec);
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  lm_tensor_set_affine(out, B);
  char params[160];
  snprintf(params, sizeof params, "spatial_size=%lld,%lld,%lld;mode=%s",
           (long long)o.m[0], (long long)(o.nsp > 1 ? o.m[1] : 0),
           (long long)(o.nsp > 2 ? o.m[2] : 0), o.mode);
  st = lm_tensor_trace_push(out, "Resize", params, lm_tensor_ndim(in),
                            lm_tensor_shape(in), A);
  if (st < 0) {
    lm_tensor_release(out);
    return lm_ctx_error(ctx, st, "cannot record the trace");
  }
  *result = out;
  return LM_OK;
}

static int resize_run(lm_op_ctx *ctx)
{
  lm_tensor *out = NULL;
  int st = xf_resize_apply(ctx, &xf_resample_cpu, &out);
  return st < 0 ? st : lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc resize_args[] = {
  {"spatial_size", LM_ARG_NUMBERS, NULL, "output size per spatial dim; -1 "
   "keeps that dim"},
  {"mode", LM_ARG_STRING, "'bilinear'", "'nearest' (torch legacy: "
   "floor(o*n/m)), 'nearest-exact' (floor((o+0.5)*n/m)) or 'bilinear' "
   "('linear', 'trilinear'; align_corners=False)"},
  {"dtype", LM_ARG_STRING, "nil", "output dtype; nil = float32 for "
   "bilinear, the input's dtype for the nearest modes"},
};

const lm_op_desc lm_op_resize = {
  .name = "Resize",
  .alias = NULL,
  .summary = "Resize the spatial dims to a given size (MONAI Resize, torch "
             "interpolate), scaling the affine",
  .doc =
    "MONAI Resize(spatial_size, mode, align_corners=False, "
    "size_mode='all', anti_aliasing=False) = torch F.interpolate. With "
    "s = n/m per axis: 'bilinear' samples c = (o+0.5)*s - 0.5, clamped to "
    "[0, n-1] (torch clamps c < 0 to 0; the upper tap is clamped to n-1); "
    "'nearest' takes x[min(floor(o*s), n-1)] (legacy torch nearest, "
    "half-voxel biased); 'nearest-exact' x[min(floor((o+0.5)*s), n-1)]. "
    "Coordinates are computed in float64 (torch uses float32 for float "
    "inputs: results agree to float32 rounding). Not provided: 'area', "
    "'bicubic', size_mode='longest', anti-aliasing. The affine follows "
    "MONAI's scale_affine: each spatial column times s, origin moved by "
    "(s-1)/2 of it, so voxel centres keep their world positions under the "
    "edge-aligned map. Acts on the last 3 (or fewer) dims, channel dims "
    "kept. Pushes a trace entry \"Resize\" for RestoreOriginalShape.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = resize_args,
  .nargs = (int)(sizeof resize_args / sizeof resize_args[0]),
  .flags = 0,
  .check = resize_check,
  .run_cpu = resize_run,
  .run_cuda = NULL,
};
