/* models/src/cpu_conv*.c: oneDNN convolutions and transposed convolutions
 * against a direct convolution written here (double accumulation, ONNX
 * definitions): 1-D/2-D/3-D, strides, asymmetric pads, dilation, groups and
 * depthwise, bias or not, every activation; ConvTranspose k2s2, k3s2p1 with
 * output_padding 1, k4s2p1, groups, dilation, through the sub-pixel form and
 * through oneDNN's deconvolution.
 *
 * Tolerance: float32 max |got - want| <= 1e-4 * max |want| over the output;
 * bfloat16 (only where the CPU has it) 2e-2 * max |want| (inputs and weights
 * rounded to 8 significant bits, sums of up to ~100 products). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#include "cpu_conv_internal.h"
#include "lumen.h"
#include "tap.h"

/* ---- data ----------------------------------------------------------- */

static uint32_t rng_state = 12345u;
static float frand(void) {   /* uniform in [-1, 1) */
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)((rng_state >> 8) * (1.0 / 8388608.0) - 1.0);
}
static float *rand_buf(size_t n) {
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = frand();
  return p;
}
static int64_t prod(const int64_t *v, int n) {
  int64_t p = 1;
  for (int i = 0; i < n; i++) p *= v[i];
  return p;
}

/* ---- the reference -------------------------------------------------- */

static double act_ref(const lm_conv_desc *d, double x) {
  switch (d->act) {
  case LM_ACT_NONE: return x;
  case LM_ACT_RELU: return x > 0 ? x : 0;
  case LM_ACT_LEAKY_RELU: return x >= 0 ? x : d->alpha * x;
  case LM_ACT_ELU: return x >= 0 ? x : d->alpha * (exp(x) - 1);
  case LM_ACT_SIGMOID: return 1 / (1 + exp(-x));
  case LM_ACT_TANH: return tanh(x);
  case LM_ACT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
  case LM_ACT_SILU: return x / (1 + exp(-x));
  case LM_ACT_CLIP: return x < d->alpha ? d->alpha : x > d->beta ? d->beta : x;
  }
  return x;
}

/* Spatial extents as a 3-D view (leading dims 1) so one loop nest serves. */
typedef struct view3 { int64_t in[3], out[3], k[3], s[3], dil[3], pl[3]; } view3;
static view3 view_of(const lm_conv_desc *d) {
  view3 v;
  for (int a = 0; a < 3; a++) {
    v.in[a] = v.out[a] = v.k[a] = v.s[a] = v.dil[a] = 1;
    v.pl[a] = 0;
  }
  for (int j = 0; j < d->nsp; j++) {
    int a = 3 - d->nsp + j;
    v.in[a] = d->in[j]; v.out[a] = d->out[j]; v.k[a] = d->k[j];
    v.s[a] = d->stride[j]; v.dil[a] = d->dil[j]; v.pl[a] = d->pad_lo[j];
  }
  return v;
}

/* Conv: y[n][co][o] = b[co] + sum_ci,k w[co][ci][k] x[n][g*cig+ci][o*s - pl + k*dil].
** ConvTranspose: y[n][g*cog+co][i*s - pl + k*dil] += w[g*cig+ci][co][k] x[n][g*cig+ci][i]. */
static void conv_ref(const lm_conv_desc *d, const float *x, const float *w, const float *b,
                     double *y) {
  view3 v = view_of(d);
  int64_t G = d->group, cig = d->cin / G, cog = d->cout / G;
  int64_t isz = prod(v.in, 3), osz = prod(v.out, 3), ksz = prod(v.k, 3);
  for (int64_t i = 0; i < d->n * d->cout * osz; i++) y[i] = b ? b[i / osz % d->cout] : 0;
  for (int64_t n = 0; n < d->n; n++)
    for (int64_t g = 0; g < G; g++)
      for (int64_t co = 0; co < cog; co++)
        for (int64_t ci = 0; ci < cig; ci++)
          for (int64_t k0 = 0; k0 < v.k[0]; k0++)
            for (int64_t k1 = 0; k1 < v.k[1]; k1++)
              for (int64_t k2 = 0; k2 < v.k[2]; k2++) {
                int64_t kk[3] = {k0, k1, k2};
                int64_t kidx = (k0 * v.k[1] + k1) * v.k[2] + k2;
                const float *xc = x + (n * d->cin + g * cig + ci) * isz;
                double *yc = y + (n * d->cout + g * cog + co) * osz;
                double wv = d->transposed ? w[((g * cig + ci) * cog + co) * ksz + kidx]
                                          : w[((g * cog + co) * cig + ci) * ksz + kidx];
                /* walk the positions on the side whose index is free */
                const int64_t *ext = d->transposed ? v.in : v.out;
                for (int64_t p0 = 0; p0 < ext[0]; p0++)
                  for (int64_t p1 = 0; p1 < ext[1]; p1++)
                    for (int64_t p2 = 0; p2 < ext[2]; p2++) {
                      int64_t p[3] = {p0, p1, p2}, q[3];
                      int ok = 1;
                      const int64_t *qext = d->transposed ? v.out : v.in;
                      for (int a = 0; a < 3; a++) {
                        q[a] = p[a] * v.s[a] - v.pl[a] + kk[a] * v.dil[a];
                        if (q[a] < 0 || q[a] >= qext[a]) ok = 0;
                      }
                      if (!ok) continue;
                      int64_t pi = (p0 * ext[1] + p1) * ext[2] + p2;
                      int64_t qi = (q[0] * qext[1] + q[1]) * qext[2] + q[2];
                      if (d->transposed) yc[qi] += wv * xc[pi];
                      else yc[pi] += wv * xc[qi];
                    }
              }
  for (int64_t i = 0; i < d->n * d->cout * osz; i++) y[i] = act_ref(d, y[i]);
}

/* ---- the comparison ------------------------------------------------- */

static void out_extent(lm_conv_desc *d, const int64_t *opad) {
  for (int j = 0; j < d->nsp; j++) {
    int64_t span = d->dil[j] * (d->k[j] - 1) + 1;
    d->out[j] = d->transposed
                    ? d->stride[j] * (d->in[j] - 1) + span - d->pad_lo[j] - d->pad_hi[j] +
                          (opad ? opad[j] : 0)
                    : (d->in[j] + d->pad_lo[j] + d->pad_hi[j] - span) / d->stride[j] + 1;
  }
}

/* Run d through path with random data and compare with the reference.
** Returns the error relative to max |want| (or -1 when creation failed). */
static double compare(const lm_conv_desc *d, bool with_bias, lm_conv_path path,
                      const char *impl_prefix) {
  int64_t isz = d->n * d->cin * prod(d->in, d->nsp);
  int64_t osz = d->n * d->cout * prod(d->out, d->nsp);
  int64_t wsz = d->cout * (d->cin / d->group) * prod(d->k, d->nsp);
  float *x = rand_buf((size_t)isz), *w = rand_buf((size_t)wsz);
  float *b = with_bias ? rand_buf((size_t)d->cout) : NULL;
  float *y = malloc((size_t)osz * sizeof *y);
  double *want = malloc((size_t)osz * sizeof *want);
  for (int64_t i = 0; i < osz; i++) y[i] = NAN;      /* every output must be written */
  conv_ref(d, x, w, b, want);
  lm_conv *c = NULL;
  char err[256] = "";
  double rel = -1;
  int rc = lm_conv_new_path(d, w, b, path, &c, err, sizeof err);
  if (rc != LM_OK) {
    TAP_FAIL("lm_conv_new: %d %s", rc, err);
  } else {
    if (impl_prefix) CHECK_CONTAINS(lm_conv_impl(c), impl_prefix);
    CHECK_INT(lm_conv_run(c, x, y), LM_OK);
    double maxw = 0, maxe = 0;
    for (int64_t i = 0; i < osz; i++) {
      double e = fabs((double)y[i] - want[i]);
      if (!(e <= maxe)) maxe = e;               /* NaN sticks */
      if (fabs(want[i]) > maxw) maxw = fabs(want[i]);
    }
    rel = maxe / (maxw > 0 ? maxw : 1);
  }
  lm_conv_free(c);
  free(x); free(w); free(b); free(y); free(want);
  return rel;
}

#define CHECK_CONV(d, bias, path, prefix, tol)                                         \
  do {                                                                                  \
    double rel_ = compare(&(d), bias, path, prefix);                                    \
    if (!(rel_ >= 0 && rel_ <= (tol)))                                                  \
      TAP_FAIL("%s: relative error %g > %g", lm_conv_path_name(path), rel_, (double)(tol)); \
  } while (0)

static const char *lm_conv_path_name(lm_conv_path p) {
  return p == LM_CONV_PATH_DECONV     ? "deconv"
         : p == LM_CONV_PATH_SUBPIXEL ? "subpixel"
         : p == LM_CONV_PATH_PHASES   ? "phases"
                                      : "conv";
}

static lm_conv_desc desc(int nsp, int64_t n, int64_t cin, int64_t cout, int64_t group) {
  lm_conv_desc d = {0};
  d.nsp = nsp; d.n = n; d.cin = cin; d.cout = cout; d.group = group;
  for (int j = 0; j < 3; j++) { d.k[j] = 3; d.stride[j] = 1; d.dil[j] = 1; }
  return d;
}

enum { F32 = 0 };
static const double TOL = 1e-4, TOL_BF16 = 2e-2;

/* ---- Conv ----------------------------------------------------------- */

static void conv_1d_stride_asym_pads(void) {
  lm_conv_desc d = desc(1, 2, 3, 4, 1);
  d.in[0] = 11; d.stride[0] = 2; d.pad_lo[0] = 1; d.pad_hi[0] = 2; d.act = LM_ACT_RELU;
  out_extent(&d, NULL);
  CHECK_CONV(d, true, LM_CONV_PATH_AUTO, NULL, TOL);
}

static void conv_2d_dilation_no_bias(void) {
  lm_conv_desc d = desc(2, 1, 4, 6, 1);
  d.in[0] = 9; d.in[1] = 7; d.k[1] = 2; d.stride[1] = 2; d.dil[0] = 2;
  d.pad_lo[0] = 2; d.pad_hi[0] = 1; d.pad_hi[1] = 1;
  d.act = LM_ACT_LEAKY_RELU; d.alpha = 0.1f;
  out_extent(&d, NULL);
  CHECK_CONV(d, false, LM_CONV_PATH_AUTO, NULL, TOL);
}

static void conv_3d_same(void) {
  lm_conv_desc d = desc(3, 1, 3, 5, 1);
  d.in[0] = 6; d.in[1] = 5; d.in[2] = 7;
  for (int j = 0; j < 3; j++) d.pad_lo[j] = d.pad_hi[j] = 1;
  out_extent(&d, NULL);
  CHECK_CONV(d, true, LM_CONV_PATH_AUTO, NULL, TOL);
}

static void conv_3d_stride2_dilated(void) {
  lm_conv_desc d = desc(3, 2, 4, 8, 1);
  d.in[0] = 7; d.in[1] = 8; d.in[2] = 6;
  for (int j = 0; j < 3; j++) { d.stride[j] = 2; d.pad_hi[j] = 1; }
  d.dil[2] = 2; d.pad_lo[2] = 2; d.pad_hi[2] = 2;
  out_extent(&d, NULL);
  CHECK_CONV(d, true, LM_CONV_PATH_AUTO, NULL, TOL);
}

static void conv_groups_and_depthwise(void) {
  lm_conv_desc d = desc(2, 1, 6, 4, 2);
  d.in[0] = 8; d.in[1] = 5; d.pad_lo[0] = d.pad_hi[0] = 1;
  out_extent(&d, NULL);
  CHECK_CONV(d, true, LM_CONV_PATH_AUTO, NULL, TOL);
  lm_conv_desc dw = desc(3, 1, 8, 8, 8);
  for (int j = 0; j < 3; j++) { dw.in[j] = 5 + j; dw.pad_lo[j] = dw.pad_hi[j] = 1; }
  dw.act = LM_ACT_RELU;
  out_extent(&dw, NULL);
  CHECK_CONV(dw, true, LM_CONV_PATH_AUTO, NULL, TOL);
  lm_conv_desc dm = desc(1, 1, 4, 8, 4);      /* depth multiplier 2 */
  dm.in[0] = 13; dm.k[0] = 5; dm.pad_lo[0] = 2; dm.pad_hi[0] = 2;
  out_extent(&dm, NULL);
  CHECK_CONV(dm, false, LM_CONV_PATH_AUTO, NULL, TOL);
}

static void set_act(lm_conv_desc *d, lm_act a) {
  d->act = a;
  d->alpha = a == LM_ACT_LEAKY_RELU ? 0.2f : a == LM_ACT_ELU ? 0.7f : a == LM_ACT_CLIP ? -0.3f : 0;
  d->beta = a == LM_ACT_CLIP ? 0.5f : 0;
}

static void conv_every_activation(void) {
  for (int a = LM_ACT_NONE; a <= LM_ACT_CLIP; a++) {
    lm_conv_desc d = desc(2, 1, 3, 4, 1);
    d.in[0] = 6; d.in[1] = 7; d.pad_lo[0] = d.pad_hi[1] = 1;
    set_act(&d, (lm_act)a);
    out_extent(&d, NULL);
    double rel = compare(&d, true, LM_CONV_PATH_AUTO, NULL);
    if (!(rel >= 0 && rel <= TOL)) TAP_FAIL("act %d: relative error %g", a, rel);
  }
}

/* ---- ConvTranspose -------------------------------------------------- */

/* What AUTO picks in f32 for kernels whose phases differ (k3 s2): one conv
** per phase where OpenMP threads wait passively, else the sub-pixel form. */
static const char *auto_unequal(void) {
  const char *p = getenv("OMP_WAIT_POLICY");
  return p && !strcasecmp(p, "passive") ? "phases" : "subpixel+";
}

/* Every path that applies, and the one AUTO picks (auto_prefix). */
static void convt_all_paths(lm_conv_desc d, bool bias, const int64_t *opad, double tol,
                            const char *auto_prefix) {
  d.transposed = true;
  out_extent(&d, opad);
  CHECK_CONV(d, bias, LM_CONV_PATH_AUTO, auto_prefix, tol);
  CHECK_CONV(d, bias, LM_CONV_PATH_SUBPIXEL, "subpixel+", tol);
  if (lm_phases_apply(&d)) CHECK_CONV(d, bias, LM_CONV_PATH_PHASES, "phases", tol);
  CHECK_CONV(d, bias, LM_CONV_PATH_DECONV, "deconv+", tol);
}

static void convt_k2s2(void) {
  lm_conv_desc d = desc(3, 1, 4, 3, 1);
  d.in[0] = 3; d.in[1] = 4; d.in[2] = 5;
  for (int j = 0; j < 3; j++) { d.k[j] = 2; d.stride[j] = 2; }
  d.act = LM_ACT_RELU;
  convt_all_paths(d, true, NULL, TOL, "subpixel+");
  d.n = 2; d.act = LM_ACT_NONE;
  convt_all_paths(d, false, NULL, TOL, "subpixel+");
}

/* The sub-pixel form over slabs of input planes: the slab size lowered so
** that a small shape (z 4 KB a plane) runs in 3 slabs of 2 planes; batch 2
** runs the slabs per item. */
static void convt_k2s2_slabs(void) {
  size_t saved = lm_conv_slab_bytes;
  lm_conv_slab_bytes = 9000;
  lm_conv_desc d = desc(3, 1, 3, 8, 1);
  d.in[0] = 6; d.in[1] = 4; d.in[2] = 4;
  for (int j = 0; j < 3; j++) { d.k[j] = 2; d.stride[j] = 2; }
  d.act = LM_ACT_RELU; d.transposed = true;
  out_extent(&d, NULL);
  CHECK_CONV(d, true, LM_CONV_PATH_AUTO, ",slabs3", TOL);
  d.n = 2;
  CHECK_CONV(d, false, LM_CONV_PATH_AUTO, ",slabs3", TOL);
  lm_conv_slab_bytes = (size_t)1 << 30;        /* one slab, but batch 2 */
  CHECK_CONV(d, false, LM_CONV_PATH_AUTO, ",slabs1", TOL);
  lm_conv_slab_bytes = saved;
}

static void convt_k3s2p1_output_padding(void) {
  lm_conv_desc d = desc(3, 1, 4, 3, 1);
  d.in[0] = 3; d.in[1] = 3; d.in[2] = 4;
  for (int j = 0; j < 3; j++) { d.stride[j] = 2; d.pad_lo[j] = d.pad_hi[j] = 1; }
  int64_t opad[3] = {1, 1, 1};
  convt_all_paths(d, true, opad, TOL, auto_unequal());
  int64_t opad0[3] = {0, 1, 0};
  convt_all_paths(d, true, opad0, TOL, auto_unequal());
  for (int j = 0; j < 3; j++) d.pad_lo[j] = d.pad_hi[j] = 0;   /* oneDNN: end pad -1 */
  convt_all_paths(d, true, opad, TOL, auto_unequal());
}

static void convt_k4s2p1_2d(void) {
  lm_conv_desc d = desc(2, 1, 5, 3, 1);
  d.in[0] = 5; d.in[1] = 6;
  for (int j = 0; j < 2; j++) { d.k[j] = 4; d.stride[j] = 2; d.pad_lo[j] = d.pad_hi[j] = 1; }
  d.act = LM_ACT_SIGMOID;
  convt_all_paths(d, true, NULL, TOL, "subpixel+");
}

static void convt_groups_dilation_stride3(void) {
  lm_conv_desc d = desc(2, 1, 4, 6, 2);
  d.in[0] = 4; d.in[1] = 5;
  for (int j = 0; j < 2; j++) { d.stride[j] = 2; d.pad_lo[j] = d.pad_hi[j] = 1; }
  int64_t opad[2] = {1, 0};
  convt_all_paths(d, true, opad, TOL, auto_unequal());
  lm_conv_desc e = desc(1, 2, 3, 2, 1);     /* 1-D, dilation 2, stride 3, pads 2/0 */
  e.in[0] = 7; e.k[0] = 4; e.dil[0] = 2; e.stride[0] = 3; e.pad_lo[0] = 2;
  int64_t eo[1] = {2};
  convt_all_paths(e, true, eo, TOL, auto_unequal());
  lm_conv_desc f = desc(1, 1, 2, 3, 1);     /* stride 1, pad past the kernel: */
  f.in[0] = 9; f.pad_lo[0] = 3; f.pad_hi[0] = 0;   /* no sub-pixel form */
  f.transposed = true;
  out_extent(&f, NULL);
  CHECK_CONV(f, true, LM_CONV_PATH_AUTO, "deconv+", TOL);
}

static void convt_every_activation(void) {
  for (int a = LM_ACT_NONE; a <= LM_ACT_CLIP; a++) {
    lm_conv_desc d = desc(2, 1, 3, 2, 1);
    d.in[0] = 4; d.in[1] = 3;
    for (int j = 0; j < 2; j++) { d.stride[j] = 2; d.pad_lo[j] = d.pad_hi[j] = 1; }
    set_act(&d, (lm_act)a);
    d.transposed = true;
    int64_t opad[2] = {1, 1};
    out_extent(&d, opad);
    double rel = compare(&d, true, LM_CONV_PATH_AUTO, auto_unequal());
    if (!(rel >= 0 && rel <= TOL)) TAP_FAIL("act %d: relative error %g", a, rel);
    rel = compare(&d, true, LM_CONV_PATH_PHASES, "phases4+");
    if (!(rel >= 0 && rel <= TOL)) TAP_FAIL("act %d (phases): relative error %g", a, rel);
    rel = compare(&d, true, LM_CONV_PATH_SUBPIXEL, "subpixel+");
    if (!(rel >= 0 && rel <= TOL)) TAP_FAIL("act %d (subpixel): relative error %g", a, rel);
  }
}

/* ---- bf16, workspace, activation pass, errors ----------------------- */

static void bf16_paths(void) {
  if (!lm_cpu_has_bf16()) {
    printf("# no native bf16 on this CPU: bf16 paths not checked\n");
    return;
  }
  lm_conv_desc d = desc(3, 1, 16, 16, 1);
  for (int j = 0; j < 3; j++) { d.in[j] = 6; d.pad_lo[j] = d.pad_hi[j] = 1; }
  d.bf16 = true; d.act = LM_ACT_LEAKY_RELU; d.alpha = 0.01f;
  out_extent(&d, NULL);
  CHECK_CONV(d, true, LM_CONV_PATH_AUTO, "bf16", TOL_BF16);
  lm_conv_desc t = desc(3, 1, 16, 8, 1);
  for (int j = 0; j < 3; j++) { t.in[j] = 4; t.stride[j] = 2; t.pad_lo[j] = t.pad_hi[j] = 1; }
  t.bf16 = true; t.transposed = true;
  int64_t opad[3] = {1, 1, 1};
  out_extent(&t, opad);
  CHECK_CONV(t, true, LM_CONV_PATH_AUTO, "bf16", TOL_BF16);
  CHECK_CONV(t, true, LM_CONV_PATH_PHASES, "bf16", TOL_BF16);
  CHECK_CONV(t, true, LM_CONV_PATH_SUBPIXEL, "bf16", TOL_BF16);
  for (int j = 0; j < 3; j++) { t.k[j] = 2; t.pad_lo[j] = t.pad_hi[j] = 0; }
  out_extent(&t, NULL);
  CHECK_CONV(t, true, LM_CONV_PATH_AUTO, "bf16", TOL_BF16);
}

static void workspace_and_repeat(void) {
  lm_conv_desc d = desc(3, 1, 5, 7, 1);
  for (int j = 0; j < 3; j++) { d.in[j] = 5; d.stride[j] = 2; d.k[j] = 2; }
  d.transposed = true;
  out_extent(&d, NULL);
  size_t isz = (size_t)(5 * 125), osz = (size_t)(7 * 1000);
  float *x = rand_buf(isz), *w = rand_buf((size_t)(5 * 7 * 8)), *b = rand_buf(7);
  float *y1 = malloc(osz * sizeof *y1), *y2 = malloc(osz * sizeof *y2);
  lm_conv *c = NULL;
  char err[256] = "";
  CHECK_INT(lm_conv_new(&d, w, b, &c, err, sizeof err), LM_OK);
  if (c) {
    CHECK(lm_conv_workspace_size(c) > 0);     /* at least the sub-pixel z */
    void *ws = aligned_alloc(64, (lm_conv_workspace_size(c) + 63) / 64 * 64);
    CHECK_INT(lm_conv_run(c, x, y1), LM_OK);
    for (size_t i = 0; i < isz; i++) x[i] = -x[i];   /* a second, different run */
    CHECK_INT(lm_conv_run_ws(c, x, y2, ws), LM_OK);
    /* no activation: conv(-x) + b = 2b - (conv(x) + b) */
    for (size_t i = 0; i < osz; i++) {
      double want = 2.0 * b[i / 1000] - y1[i];
      if (fabs(y2[i] - want) > 1e-5) { TAP_FAIL("y2[%zu] = %g, want %g", i, y2[i], want); break; }
    }
    free(ws);
  }
  lm_conv_free(c);
  free(x); free(w); free(b); free(y1); free(y2);
}

static void activation_pass(void) {
  /* The pass used when oneDNN cannot fuse: same definitions as the fused ones. */
  for (int a = LM_ACT_NONE; a <= LM_ACT_CLIP; a++) {
    lm_conv_desc d = {0};
    set_act(&d, (lm_act)a);
    float x[41];
    for (int i = 0; i < 41; i++) x[i] = (float)(i - 20) * 0.25f;
    lm_conv_act_apply(d.act, d.alpha, d.beta, x, 41);
    for (int i = 0; i < 41; i++) CHECK_NEAR(x[i], act_ref(&d, (i - 20) * 0.25), 2e-6);
  }
}

static void errors_name_the_field(void) {
  lm_conv *c = (lm_conv *)1;
  char err[256] = "";
  float w[64] = {0};
  lm_conv_desc d = desc(2, 1, 3, 4, 2);       /* 2 does not divide 3 */
  d.in[0] = d.in[1] = 4; out_extent(&d, NULL);
  CHECK_INT(lm_conv_new(&d, w, NULL, &c, err, sizeof err), LM_EINVAL);
  CHECK(c == NULL);
  CHECK_CONTAINS(err, "group = 2");
  d = desc(2, 1, 2, 2, 1);
  d.in[0] = d.in[1] = 4; out_extent(&d, NULL);
  d.out[1] = 3;
  CHECK_INT(lm_conv_new(&d, w, NULL, &c, err, sizeof err), LM_EINVAL);
  CHECK_CONTAINS(err, "out[1] = 3");
  CHECK_CONTAINS(err, "Conv 2D 2->2 k3x3");
  d.transposed = true; out_extent(&d, NULL); d.out[0] += 1;   /* output_padding 1 >= stride 1 */
  CHECK_INT(lm_conv_new(&d, w, NULL, &c, err, sizeof err), LM_EINVAL);
  CHECK_CONTAINS(err, "out[0]");
  d.transposed = false; out_extent(&d, NULL); d.pad_lo[0] = -1;
  CHECK_INT(lm_conv_new(&d, w, NULL, &c, err, sizeof err), LM_EINVAL);
  CHECK_CONTAINS(err, "pad_lo/pad_hi[0]");
}

int main(void) {
  RUN(conv_1d_stride_asym_pads);
  RUN(conv_2d_dilation_no_bias);
  RUN(conv_3d_same);
  RUN(conv_3d_stride2_dilated);
  RUN(conv_groups_and_depthwise);
  RUN(conv_every_activation);
  RUN(convt_k2s2);
  RUN(convt_k2s2_slabs);
  RUN(convt_k3s2p1_output_padding);
  RUN(convt_k4s2p1_2d);
  RUN(convt_groups_dilation_stride3);
  RUN(convt_every_activation);
  RUN(bf16_paths);
  RUN(workspace_and_repeat);
  RUN(activation_pass);
  RUN(errors_name_the_field);
  TAP_DONE();
}
