/* Internals of the oneDNN convolution (cpu_conv.c) shared with its helper
 * files: the sub-pixel form of ConvTranspose (cpu_conv_subpixel.c) and the
 * activation pass used where oneDNN cannot fuse the activation
 * (cpu_conv_act.c).  Not part of the models/ interface. */
#ifndef LM_CPU_CONV_INTERNAL_H
#define LM_CPU_CONV_INTERNAL_H

#include "cpu_conv.h"

/* ConvTranspose rewritten as one stride-1 convolution followed by a
 * "pixel shuffle" scatter.  Per spatial dim (stride s, dilation d, begin pad
 * p), output o receives x[i] * w[k] where o + p = i*s + k*d.  Writing
 * o + p = q*s + r (r the phase), the taps of phase r are the k with
 * k*d = r (mod s), at input i = q - m, m = (k*d - r)/s.  So every phase is a
 * stride-1 correlation over q; stacking the s^nsp phases as output channels
 * (their kernels zero-padded to a common T = max m + 1 taps, placed at
 * t = T-1-m) gives one dense convolution with cout * s^nsp channels.  For
 * k == s (nnU-Net/DynUNet/VNet up-convs) that is a 1x1x1 convolution, i.e. a
 * GEMM; for MONAI's k3 s2 it is a k2 convolution.
 *
 * Extents below are the 3-D view: a 1-D or 2-D conv has its leading dims
 * set to 1 (s = 1, no pads), so the loops are written once. */
typedef struct lm_subpixel {
  int64_t s[3];        /* stride per dim (3-D view) */
  int64_t plo[3];      /* ConvTranspose begin pads */
  int64_t q0[3];       /* first phase-grid index used: floor(plo / s) */
  int64_t T[3];        /* taps of the stride-1 convolution */
  int64_t Q[3];        /* its output extent (phase grid) */
  int64_t cpad_lo[3], cpad_hi[3];  /* its pads */
  int64_t in[3], out[3];
  int64_t phases;      /* s[0]*s[1]*s[2] */
  int64_t cz;          /* its output channels: phases * cout */
} lm_subpixel;

/* Fill sp for d (a ConvTranspose).  Returns false when the form does not
** apply (a begin pad so large that the stride-1 conv would need a negative
** pad); the caller then uses oneDNN's deconvolution. */
bool lm_subpixel_plan(const lm_conv_desc *d, lm_subpixel *sp);
/* The stride-1 conv's weights, grouped and dense:
** v[g][phase*cog + co][ci][T0][T1][T2] from the ONNX ConvTranspose weight
** w[g*cig + ci][co][k...]. v has group*cz/... = cout*phases*cig*T elements. */
void lm_subpixel_weights(const lm_conv_desc *d, const lm_subpixel *sp,
                         const float *w, float *v);
/* Its bias: the ConvTranspose bias repeated for every phase. */
void lm_subpixel_bias(const lm_conv_desc *d, const lm_subpixel *sp,
                      const float *bias, float *bz);
/* dst[n][co][o...] = z[n][q...][channel of (co, phase)], z channels-last
** (n, Q0, Q1, Q2, cz), for the batch items [n0, n1) and the output rows
** whose phase-grid index q (dim 0 of the view) is in [q0, q1): z holds
** just those, (n1-n0, q1-q0, Q1, Q2, cz).  Parallel over output rows. */
void lm_subpixel_scatter(const lm_conv_desc *d, const lm_subpixel *sp,
                         const float *z, float *dst, int64_t n0, int64_t n1,
                         int64_t q0, int64_t q1);

/* ConvTranspose as one stride-1 Conv per output phase (cpu_conv_phases.c):
** no zero taps where the phases' kernels differ in size (k3 s2). */
typedef struct lm_phases lm_phases;
/* False when some phase has no tap, no output or would need a negative
** pad, or a stride exceeds 4. */
bool lm_phases_apply(const lm_conv_desc *d);
int lm_phases_new(const lm_conv_desc *d, const float *weight, const float *bias,
                  lm_phases **out, char *err, size_t errlen);
size_t lm_phases_workspace_size(const lm_phases *p);
int lm_phases_run(lm_phases *p, const float *src, float *dst, void *ws);
const char *lm_phases_impl(const lm_phases *p);
void lm_phases_free(lm_phases *p);

/* How a convolution is computed.  AUTO is what lm_conv_new picks: DIRECT
** for Conv; for ConvTranspose SUBPIXEL where that form has no zero taps
** (k == s, k = 2s, ...), else DECONV (oneDNN's deconvolution) in bf16, else
** PHASES under OMP_WAIT_POLICY=passive, else SUBPIXEL, PHASES, DECONV, the
** first that applies (measurements in cpu_conv.c).  Forcing one is for
** benchmarks and tests. */
typedef enum lm_conv_path {
  LM_CONV_PATH_AUTO = 0,
  LM_CONV_PATH_DIRECT,
  LM_CONV_PATH_SUBPIXEL,
  LM_CONV_PATH_PHASES,
  LM_CONV_PATH_DECONV
} lm_conv_path;

int lm_conv_new_path(const lm_conv_desc *d, const float *weight,
                     const float *bias, lm_conv_path path, lm_conv **out,
                     char *err, size_t errlen);

/* The z slab size the sub-pixel form aims at (64 MB; see pick_chunk in
** cpu_conv.c; 0: no slabs).  Read by lm_conv_new; tests lower it to get
** slabs from small shapes, bench_conv --slab-mb sets it. */
extern size_t lm_conv_slab_bytes;

/* x = act(x) over n floats, with the ONNX definitions (the pass used when
** oneDNN cannot fuse the activation into the chosen primitive). */
void lm_conv_act_apply(lm_act act, float alpha, float beta, float *x, size_t n);

#endif
