/* ConvTranspose as one stride-1 convolution plus a phase scatter (the
 * "sub-pixel" form; the derivation is in cpu_conv_internal.h).  oneDNN 2.6's
 * f32 deconvolution runs at about 5 GFLOP/s on this machine, while its
 * stride-1 convolutions run at 200-350 (f32) and 1000+ (bf16 AMX); the
 * zero taps this form adds (k3 s2: 64 taps computed for 27) cost far less
 * than that difference. */
#include <string.h>

#include "cpu_conv_internal.h"

/* The 3-D view index of spatial dim j of an nsp-dim conv. */
static int view_dim(int nsp, int j) { return 3 - nsp + j; }

bool lm_subpixel_plan(const lm_conv_desc *d, lm_subpixel *sp) {
  memset(sp, 0, sizeof *sp);
  for (int a = 0; a < 3; a++) {
    sp->s[a] = 1; sp->T[a] = 1; sp->Q[a] = 1; sp->in[a] = 1; sp->out[a] = 1;
  }
  for (int j = 0; j < d->nsp; j++) {
    int a = view_dim(d->nsp, j);
    int64_t s = d->stride[j], dil = d->dil[j], k = d->k[j], plo = d->pad_lo[j];
    int64_t m_max = (k - 1) * dil / s;          /* largest tap offset m */
    int64_t q0 = plo / s;
    int64_t q_last = (d->out[j] - 1 + plo) / s;
    int64_t T = m_max + 1;
    int64_t cpad_lo = m_max - q0;
    if (cpad_lo < 0) return false;
    int64_t Q = q_last - q0 + 1;
    int64_t cpad_hi = Q - 1 + T - d->in[j] - cpad_lo;
    if (cpad_hi < 0) {            /* the last phase rows need no padding:  */
      cpad_hi = 0;                /* compute a few rows more than needed   */
      Q = d->in[j] + cpad_lo - T + 1;   /* rather than pad negatively.     */
    }
    sp->s[a] = s; sp->plo[a] = plo; sp->q0[a] = q0; sp->T[a] = T; sp->Q[a] = Q;
    sp->cpad_lo[a] = cpad_lo; sp->cpad_hi[a] = cpad_hi;
    sp->in[a] = d->in[j]; sp->out[a] = d->out[j];
  }
  sp->phases = sp->s[0] * sp->s[1] * sp->s[2];
  sp->cz = sp->phases * d->cout;
  return true;
}

void lm_subpixel_weights(const lm_conv_desc *d, const lm_subpixel *sp,
                         const float *w, float *v) {
  int64_t g_n = d->group, cig = d->cin / g_n, cog = d->cout / g_n;
  int64_t k3[3] = {1, 1, 1}, dil3[3] = {1, 1, 1};
  for (int j = 0; j < d->nsp; j++) {
    k3[view_dim(d->nsp, j)] = d->k[j];
    dil3[view_dim(d->nsp, j)] = d->dil[j];
  }
  int64_t ktot = k3[0] * k3[1] * k3[2];
  int64_t ttot = sp->T[0] * sp->T[1] * sp->T[2];
  memset(v, 0, (size_t)(g_n * sp->phases * cog * cig * ttot) * sizeof *v);
  for (int64_t g = 0; g < g_n; g++)
    for (int64_t ci = 0; ci < cig; ci++)
      for (int64_t co = 0; co < cog; co++) {
        const float *wk = w + ((g * cig + ci) * cog + co) * ktot;
        for (int64_t k0 = 0; k0 < k3[0]; k0++)
          for (int64_t k1 = 0; k1 < k3[1]; k1++)
            for (int64_t k2 = 0; k2 < k3[2]; k2++) {
              int64_t kk[3] = {k0, k1, k2}, r[3], t[3];
              for (int a = 0; a < 3; a++) {
                int64_t off = kk[a] * dil3[a];
                r[a] = off % sp->s[a];
                t[a] = sp->T[a] - 1 - off / sp->s[a];
              }
              int64_t phase = (r[0] * sp->s[1] + r[1]) * sp->s[2] + r[2];
              int64_t oc = g * sp->phases * cog + phase * cog + co;
              int64_t ti = (t[0] * sp->T[1] + t[1]) * sp->T[2] + t[2];
              v[(oc * cig + ci) * ttot + ti] = wk[(k0 * k3[1] + k1) * k3[2] + k2];
            }
      }
}

void lm_subpixel_bias(const lm_conv_desc *d, const lm_subpixel *sp,
                      const float *bias, float *bz) {
  int64_t cog = d->cout / d->group;
  for (int64_t g = 0; g < d->group; g++)
    for (int64_t p = 0; p < sp->phases; p++)
      for (int64_t co = 0; co < cog; co++)
        bz[(g * sp->phases + p) * cog + co] = bias[g * cog + co];
}

/* Output columns are handled in tiles so that the z rows a tile reads (tile
** width * cz floats) stay in L1 while every output channel takes its values
** from them: the scatter is a transpose from channels-last to planar. */
enum { SCATTER_TILE = 32 };

void lm_subpixel_scatter(const lm_conv_desc *d, const lm_subpixel *sp,
                         const float *z, float *dst, int64_t n0, int64_t n1,
                         int64_t q0, int64_t q1) {
  const int64_t cout = d->cout, cog = cout / d->group, cz = sp->cz;
  const int64_t o0 = sp->out[0], o1 = sp->out[1], o2 = sp->out[2];
  const int64_t Q1 = sp->Q[1], Q2 = sp->Q[2], zq = q1 - q0;
  /* output rows of dim 0 whose q is in [q0, q1): o + plo in [(q0+q0_0)*s, ...) */
  int64_t a0 = (q0 + sp->q0[0]) * sp->s[0] - sp->plo[0];
  int64_t a1 = (q1 + sp->q0[0]) * sp->s[0] - sp->plo[0];
  if (a0 < 0) a0 = 0;
  if (a1 > o0) a1 = o0;
  const int64_t na = a1 > a0 ? a1 - a0 : 0;
  const int64_t rows = (n1 - n0) * na * o1;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; row++) {
    int64_t n = n0 + row / (na * o1), a = a0 + row / o1 % na, b = row % o1;
    int64_t ua = a + sp->plo[0], ub = b + sp->plo[1];
    int64_t qa = ua / sp->s[0] - sp->q0[0], ra = ua % sp->s[0];
    int64_t qb = ub / sp->s[1] - sp->q0[1], rb = ub % sp->s[1];
    const float *zrow = z + (((n - n0) * zq + qa - q0) * Q1 + qb) * Q2 * cz;
    int64_t phase_ab = (ra * sp->s[1] + rb) * sp->s[2];
    float *drow = dst + (n * cout * o0 + a) * o1 * o2 + b * o2;
    int64_t zoff[SCATTER_TILE];
    for (int64_t c0 = 0; c0 < o2; c0 += SCATTER_TILE) {
      int64_t cn = o2 - c0 < SCATTER_TILE ? o2 - c0 : SCATTER_TILE;
      for (int64_t i = 0; i < cn; i++) {
        int64_t uc = c0 + i + sp->plo[2];
        int64_t qc = uc / sp->s[2] - sp->q0[2], rc = uc % sp->s[2];
        zoff[i] = qc * cz + (phase_ab + rc) * cog;
      }
      for (int64_t co = 0; co < cout; co++) {
        /* channel (group g, co in group) of phase p sits at
        ** g*phases*cog + p*cog + co%cog: zoff holds p*cog. */
        const float *zc = zrow + (co / cog) * sp->phases * cog + co % cog;
        float *out = drow + co * o0 * o1 * o2 + c0;
        for (int64_t i = 0; i < cn; i++) out[i] = zc[zoff[i]];
      }
    }
  }
}
