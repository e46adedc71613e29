/* ScaleByResolution (alias Spacing): resample to a target voxel spacing,
 * MONAI Spacing's rule by default (semantics.md §4.1-4.2), nnU-Net's
 * resample_data_or_seg with rule='nnunet' (§4.4, resample_nnunet.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "resample.h"
#include "resample_nnunet.h"
#include "xf_util.h"

/* MONAI's AFFINE_TOL: a target within this of the current spacing keeps it. */
#define SPACING_TOL 1e-3

typedef struct sbr_opts {
  int nsp;
  bool nnunet, is_label, has_shape;
  double in_d[3], out_d[3];   /* current and target spacing (spatial axes) */
  int64_t n[3], m[3];         /* input and output spatial shape */
  xf_interp interp;
  xf_padding padding;
  lm_dtype dt;
  xf_nnunet_opts nn;
} sbr_opts;

static int sbr_options(lm_op_ctx *ctx, sbr_opts *o)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  memset(o, 0, sizeof *o);
  o->nsp = xf_spatial_ndim(in);
  int nd = lm_tensor_ndim(in);
  if (o->nsp < 2)
    return lm_ctx_error(ctx, LM_ESHAPE, "needs 2 or 3 spatial dims, got a "
                        "%d-d tensor with layout \"%s\"", nd,
                        lm_tensor_layout(in));
  const char *rule = lm_arg_string(ctx, "rule");
  if (!strcmp(rule, "nnunet")) o->nnunet = true;
  else if (strcmp(rule, "monai"))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'rule' must be 'monai' or "
                        "'nnunet' (got '%s')", rule);
  o->is_label = lm_arg_bool(ctx, "is_label");
  bool has_pix = lm_arg_is_set(ctx, "pixdim");
  o->has_shape = lm_arg_is_set(ctx, "output_shape");
  if (has_pix == o->has_shape)
    return lm_ctx_error(ctx, LM_EINVAL, "give exactly one of 'pixdim' "
                        "(target spacing) and 'output_shape'");
  double sp[3];
  lm_tensor_spacing(in, sp);
  const int64_t *sh = lm_tensor_shape(in);
  for (int a = 0; a < o->nsp; a++) {
    o->in_d[a] = sp[a];
    o->n[a] = sh[nd - o->nsp + a];
  }
  int cnt;
  if (has_pix) {
    const double *p = lm_arg_numbers(ctx, "pixdim", &cnt);
    if (cnt < 1 || cnt > o->nsp)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'pixdim' needs 1 to %d "
                          "numbers (got %d)", o->nsp, cnt);
    for (int a = 0; a < o->nsp; a++) {
      double t = p[a < cnt ? a : cnt - 1]; /* MONAI pads with the last one */
      if (!isfinite(t))
        return lm_ctx_error(ctx, LM_EINVAL, "option 'pixdim' must be finite");
      /* non-positive keeps the axis; near-equal keeps the exact value */
      o->out_d[a] = t <= 0 || fabs(o->in_d[a] - t) <= SPACING_TOL ? o->in_d[a] : t;
      double r = (double)(o->n[a] - 1) * (o->in_d[a] / o->out_d[a]);
      o->m[a] = (int64_t)nearbyint(r + 1);
      if (!(r + 1 < 1e9) || o->m[a] < 1)
        return lm_ctx_error(ctx, LM_ESHAPE, "pixdim %g on axis %d gives an "
                            "impossible output size", t, a);
    }
  } else {
    const double *p = lm_arg_numbers(ctx, "output_shape", &cnt);
    if (cnt != o->nsp)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'output_shape' needs %d "
                          "numbers (got %d)", o->nsp, cnt);
    for (int a = 0; a < o->nsp; a++) {
      if (!(p[a] >= 1 && p[a] < 1e9 && p[a] == floor(p[a])))
        return lm_ctx_error(ctx, LM_EINVAL, "option 'output_shape' must hold "
                            "positive integers (got %g on axis %d)", p[a], a);
      o->m[a] = (int64_t)p[a];
      /* voxel-0 and last-voxel centres kept (the MONAI rule inverted);
       * nnU-Net: its shape rule inverted, n*s/m */
      if (o->nnunet) o->out_d[a] = o->in_d[a] * (double)o->n[a] / (double)o->m[a];
      else o->out_d[a] = o->m[a] > 1 ? o->in_d[a] * (double)(o->n[a] - 1) /
                                          (double)(o->m[a] - 1) : o->in_d[a];
    }
  }
  const char *mode = lm_arg_string(ctx, "mode");
  if (!mode) o->interp = o->is_label ? XF_INTERP_NEAREST : XF_INTERP_LINEAR;
  else if (xf_interp_parse(mode, &o->interp) < 0 || o->interp == XF_INTERP_FLOOR)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'mode' must be 'nearest', "
                        "'bilinear' (or 'linear', 1) or 'cubic' (3, scipy's "
                        "B-spline; torch's 'bicubic' is not provided), got "
                        "'%s'", mode);
  if (o->is_label && o->interp != XF_INTERP_NEAREST)
    return lm_ctx_error(ctx, LM_EINVAL, "is_label=true resamples with "
                        "'nearest'; mode '%s' contradicts it", mode);
  if (xf_padding_parse(lm_arg_string(ctx, "padding_mode"), &o->padding) < 0)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'padding_mode' must be "
                        "'border', 'zeros' or 'reflection' (got '%s')",
                        lm_arg_string(ctx, "padding_mode"));
  int st = xf_arg_dtype(ctx, "dtype", o->is_label ? (int)lm_tensor_dtype(in)
                                                  : (int)LM_F32, &o->dt);
  if (st < 0) return st;
  /* nnU-Net */
  xf_nnunet_opts_init(&o->nn);
  o->nn.is_label = o->is_label;
  o->nn.order = o->is_label ? 1 : 3;
  const char *sz = lm_arg_string(ctx, "separate_z");
  if (!strcmp(sz, "auto")) o->nn.separate_z = -1;
  else if (!strcmp(sz, "true")) o->nn.separate_z = 1;
  else if (!strcmp(sz, "false")) o->nn.separate_z = 0;
  else return lm_ctx_error(ctx, LM_EINVAL, "option 'separate_z' must be "
                           "'auto', 'true' or 'false' (got '%s')", sz);
  o->nn.anisotropy_threshold = lm_arg_number(ctx, "anisotropy_threshold");
  if (lm_arg_is_set(ctx, "order")) o->nn.order = (int)lm_arg_int(ctx, "order");
  o->nn.order_z = (int)lm_arg_int(ctx, "order_z");
  if (o->nn.order < 0 || o->nn.order > 5 || o->nn.order_z < 0 || o->nn.order_z > 5)
    return lm_ctx_error(ctx, LM_EINVAL, "options 'order' and 'order_z' must be "
                        "spline orders 0..5");
  if (o->nnunet && o->nsp != 3)
    return lm_ctx_error(ctx, LM_ESHAPE, "rule='nnunet' needs 3 spatial dims");
  return LM_OK;
}

static int sbr_check(lm_op_ctx *ctx)
{
  sbr_opts o;
  return sbr_options(ctx, &o);
}

static int sbr_run_nnunet(lm_op_ctx *ctx, lm_tensor *in, const sbr_opts *o,
                          lm_tensor **out)
{
  if (o->has_shape)
    return xf_resample_nnunet_to_shape(ctx, in, o->m, o->in_d, o->out_d, &o->nn, out);
  return xf_resample_nnunet(ctx, in, o->out_d, &o->nn, out);
}

int xf_sbr_apply(lm_op_ctx *ctx, const xf_resample_backend *b, lm_tensor **result)
{
  sbr_opts o;
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  int st = sbr_options(ctx, &o);
  if (st < 0) return st;
  o.nn.loop = b->nnunet;
  if (o.nnunet) return sbr_run_nnunet(ctx, in, &o, result);
  int nd = lm_tensor_ndim(in), lead = nd - o.nsp;
  const double *A = lm_tensor_affine(in);
  double B[16];
  memcpy(B, A, sizeof B);
  xf_resample_spec spec = {.nsp = o.nsp, .interp = o.interp,
                           .padding = o.padding};
  bool same = true;
  for (int a = 0; a < o.nsp; a++) {
    /* i_in = i_out * out_d / in_d, voxel-0 centres kept; A_out = A diag(r) */
    double r = o.out_d[a] / o.in_d[a];
    spec.m[a][a] = r;
    for (int row = 0; row < 3; row++) B[row * 4 + a] *= r;
    if (o.m[a] != o.n[a] || r != 1.0) same = false;
  }
  st = xf_resample_new_output(in, o.nsp, o.m, o.dt, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  if (same) {
    st = b->copy(ctx, out, in); /* MONAI returns the input unchanged */
  } else {
    st = b->resample(ctx, in, out, &spec);
  }
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  lm_tensor_set_affine(out, B);
  char params[256];
  snprintf(params, sizeof params,
           "rule=monai;pixdim=%.17g,%.17g,%.17g;mode=%s;padding_mode=%s;"
           "is_label=%d", o.out_d[0], o.out_d[1], o.nsp > 2 ? o.out_d[2] : 0.0,
           xf_interp_name(o.interp), xf_padding_name(o.padding), o.is_label);
  (void)lead;
  st = lm_tensor_trace_push(out, "ScaleByResolution", params, nd,
                            lm_tensor_shape(in), A);
  if (st < 0) {
    lm_tensor_release(out);
    return lm_ctx_error(ctx, st, "cannot record the trace");
  }
  *result = out;
  return LM_OK;
}

static int sbr_run(lm_op_ctx *ctx)
{
  lm_tensor *out = NULL;
  int st = xf_sbr_apply(ctx, &xf_resample_cpu, &out);
  return st < 0 ? st : lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc sbr_args[] = {
  {"pixdim", LM_ARG_NUMBERS, "nil", "target spacing in mm per spatial axis "
   "(fewer numbers: the last one repeats; <= 0 keeps that axis)"},
  {"output_shape", LM_ARG_NUMBERS, "nil", "resample to this spatial shape "
   "instead of a spacing (MONAI rule: the first and last voxel centres stay "
   "where they are, spacing in*(n-1)/(m-1); nnunet rule: "
   "resample_data_or_seg_to_shape)"},
  {"mode", LM_ARG_STRING, "nil", "'nearest' (half-to-even, torch "
   "grid_sample), 'bilinear' ('linear', '1'), 'cubic' ('3', scipy B-spline "
   "with prefilter); nil = 'bilinear', or 'nearest' when is_label"},
  {"padding_mode", LM_ARG_STRING, "'border'", "outside the input: 'border' "
   "(edge value), 'zeros' or 'reflection'"},
  {"is_label", LM_ARG_BOOL, "false", "a label map: nearest, dtype kept "
   "(nnunet rule: one-hot order-1 resampling per label)"},
  {"dtype", LM_ARG_STRING, "nil", "output dtype; nil = float32, or the "
   "input's dtype when is_label (monai rule; nnunet keeps the input dtype)"},
  {"rule", LM_ARG_STRING, "'monai'", "'monai' (Spacing: shape "
   "rint((n-1)*s/t+1), voxel-0 centres aligned) or 'nnunet' "
   "(resample_data_or_seg: shape rint(n*s/t), edges aligned)"},
  {"separate_z", LM_ARG_STRING, "'auto'", "nnunet: 'auto' (anisotropy rule), "
   "'true' or 'false'"},
  {"anisotropy_threshold", LM_ARG_NUMBER, "3", "nnunet: max/min spacing "
   "ratio above which the low-resolution axis is resampled separately"},
  {"order", LM_ARG_INT, "nil", "nnunet: spline order in-plane (nil = 3 for "
   "data, 1 for labels)"},
  {"order_z", LM_ARG_INT, "0", "nnunet: order across slices when separate"},
};

const lm_op_desc lm_op_scale_by_resolution = {
  .name = "ScaleByResolution",
  .alias = "Spacing",
  .summary = "Resample to a target voxel spacing (MONAI Spacing, or "
             "nnU-Net's rule), updating the affine",
  .doc =
    "rule='monai' (default): MONAI Spacing with diagonal=False, "
    "scale_extent=False, align_corners=False (Clara ScaleByResolution's "
    "successor). Spacing of the input = column norms of the affine; a "
    "target within 1e-3 of it keeps it. Output shape per axis "
    "rint((n-1)*in/out + 1) (half to even); input index i_in = "
    "i_out*out/in (voxel-0 centres coincide); affine A*diag(out/in), same "
    "origin. Example: (100,100,30) at (0.7,0.7,5) to 1 mm gives "
    "(70,70,146). Interpolation in float64: 'nearest' = x[rint(i)] (torch "
    "grid_sample, half to even), 'bilinear' = torch grid_sample, 'cubic' = "
    "scipy map_coordinates(order=3) with its prefilter (MONAI mode=3); "
    "padding 'border' (scipy 'nearest' for cubic), 'zeros' ('constant'), "
    "'reflection' ('reflect'). When shape and spacing do not change, the "
    "values are copied unchanged (MONAI's early exit). Output float32 "
    "(labels keep their dtype).\n"
    "rule='nnunet': nnU-Net v2 resample_data_or_seg (shape rint(n*s/t), "
    "separate-z order 3 in-plane / order_z across, labels one-hot); see "
    "resample_nnunet.h.\n"
    "Acts on the last 3 (or 2) dims; leading channel dims kept. Pushes a "
    "trace entry \"ScaleByResolution\" (shape and affine before) that "
    "RestoreOriginalShape inverts by resampling back to the recorded grid.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = sbr_args,
  .nargs = (int)(sizeof sbr_args / sizeof sbr_args[0]),
  .flags = 0,
  .check = sbr_check,
  .run_cpu = sbr_run,
  .run_cuda = NULL,
};
