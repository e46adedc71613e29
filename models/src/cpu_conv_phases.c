/* ConvTranspose as one stride-1 convolution per output phase, for kernels
 * whose phases have different tap counts (MONAI's k3 s2: phases with 2 and
 * 1 taps per dim).  The single sub-pixel convolution (cpu_conv_subpixel.c)
 * pads every phase to the largest kernel, computing 64 taps for 27 in 3-D;
 * here each phase computes only its own taps, at the price of one
 * primitive per phase and a planar interleave at the end.
 *
 * Per dim (stride s, dilation d, begin pad p), output o has phase
 * r = (o + p) mod s and phase-grid index q = (o + p) div s; its taps are the
 * k with k*d = r (mod s), reading input i = q - m, m = (k*d - r)/s.  Phase r
 * is a Conv over the input with T_r = max m + 1 taps (tap t = T_r-1-m),
 * producing the q of its outputs: q_first .. q_last. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_conv_internal.h"
#include "lumen.h"

enum { MAX_S = 4, MAX_PHASES = MAX_S * MAX_S * MAX_S };

typedef struct residue {      /* one phase of one dim */
  int64_t T, M;               /* taps, largest m (T = M + 1) */
  int64_t q_first, Q;         /* first phase-grid index, rows computed */
  int64_t pad_lo, pad_hi;
} residue;

struct lm_phases {
  lm_conv_desc d;
  int64_t s[3], plo[3], in[3], out[3], k[3], dil[3];   /* 3-D view */
  residue res[3][MAX_S];
  int nphase;
  lm_conv *conv[MAX_PHASES];  /* per phase (r0, r1, r2) in C order */
  size_t off_y[MAX_PHASES];   /* its planar output in the workspace */
  size_t child_ws, ws_size;
  char impl[160];
};

/* Per-dim residues; false when some phase has no tap or would need a
** negative begin pad (then the single sub-pixel conv or oneDNN's
** deconvolution handles the layer). */
static bool plan_dim(int64_t s, int64_t dil, int64_t k, int64_t plo, int64_t in, int64_t out,
                     residue *res) {
  for (int64_t r = 0; r < s; r++) {
    residue *e = &res[r];
    e->M = -1;
    for (int64_t kk = 0; kk < k; kk++)
      if (kk * dil % s == r && kk * dil / s > e->M) e->M = kk * dil / s;
    int64_t o_first = ((r - plo) % s + s) % s;
    if (e->M < 0 || o_first >= out) return false;
    int64_t o_last = o_first + (out - 1 - o_first) / s * s;
    e->T = e->M + 1;
    e->q_first = (o_first + plo) / s;
    e->Q = (o_last + plo) / s - e->q_first + 1;
    e->pad_lo = e->M - e->q_first;
    if (e->pad_lo < 0) return false;
    e->pad_hi = e->Q - 1 + e->T - in - e->pad_lo;
    if (e->pad_hi < 0) {          /* compute a few rows more rather than */
      e->pad_hi = 0;              /* pad negatively                      */
      e->Q = in + e->pad_lo - e->T + 1;
    }
  }
  return true;
}

bool lm_phases_apply(const lm_conv_desc *d) {
  residue res[MAX_S];
  for (int j = 0; j < d->nsp; j++)
    if (d->stride[j] > MAX_S ||
        !plan_dim(d->stride[j], d->dil[j], d->k[j], d->pad_lo[j], d->in[j], d->out[j], res))
      return false;
  return true;
}

/* The weights of phase (r0, r1, r2) as a Conv weight [cout][cin/g][T...]. */
static void phase_weights(const lm_phases *p, const int64_t *r, const float *w, float *v) {
  const lm_conv_desc *d = &p->d;
  int64_t g_n = d->group, cig = d->cin / g_n, cog = d->cout / g_n;
  int64_t T[3], ktot = p->k[0] * p->k[1] * p->k[2];
  for (int a = 0; a < 3; a++) T[a] = p->res[a][r[a]].T;
  int64_t ttot = T[0] * T[1] * T[2];
  memset(v, 0, (size_t)(d->cout * cig * ttot) * sizeof *v);
  for (int64_t k0 = 0; k0 < p->k[0]; k0++)
    for (int64_t k1 = 0; k1 < p->k[1]; k1++)
      for (int64_t k2 = 0; k2 < p->k[2]; k2++) {
        int64_t kk[3] = {k0, k1, k2}, t[3];
        bool mine = true;
        for (int a = 0; a < 3; a++) {
          int64_t off = kk[a] * p->dil[a];
          mine = mine && off % p->s[a] == r[a];
          t[a] = T[a] - 1 - off / p->s[a];
        }
        if (!mine) continue;
        int64_t ki = (k0 * p->k[1] + k1) * p->k[2] + k2;
        int64_t ti = (t[0] * T[1] + t[1]) * T[2] + t[2];
        for (int64_t g = 0; g < g_n; g++)
          for (int64_t ci = 0; ci < cig; ci++)
            for (int64_t co = 0; co < cog; co++)
              v[((g * cog + co) * cig + ci) * ttot + ti] =
                  w[((g * cig + ci) * cog + co) * ktot + ki];
      }
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

int lm_phases_new(const lm_conv_desc *d, const float *w, const float *b, lm_phases **out,
                  char *err, size_t errlen) {
  *out = NULL;
  if (!lm_phases_apply(d)) return LM_EUNSUPPORTED;
  lm_phases *p = calloc(1, sizeof *p);
  if (!p) return LM_ENOMEM;
  p->d = *d;
  for (int a = 0; a < 3; a++) {
    p->s[a] = p->in[a] = p->out[a] = p->k[a] = p->dil[a] = 1;
    p->res[a][0] = (residue){.T = 1, .Q = 1};
  }
  for (int j = 0; j < d->nsp; j++) {
    int a = 3 - d->nsp + j;
    p->s[a] = d->stride[j]; p->plo[a] = d->pad_lo[j]; p->in[a] = d->in[j];
    p->out[a] = d->out[j]; p->k[a] = d->k[j]; p->dil[a] = d->dil[j];
    plan_dim(p->s[a], p->dil[a], p->k[a], p->plo[a], p->in[a], p->out[a], p->res[a]);
  }
  float *v = malloc((size_t)(d->cout * (d->cin / d->group) * p->k[0] * p->k[1] * p->k[2]) *
                    sizeof *v);
  int rc = v ? LM_OK : LM_ENOMEM;
  size_t off = 0;
  for (int64_t r0 = 0; r0 < p->s[0] && rc == LM_OK; r0++)
    for (int64_t r1 = 0; r1 < p->s[1] && rc == LM_OK; r1++)
      for (int64_t r2 = 0; r2 < p->s[2] && rc == LM_OK; r2++) {
        int64_t r[3] = {r0, r1, r2};
        lm_conv_desc cd = *d;
        cd.transposed = false;
        int64_t ysz = d->n * d->cout;
        for (int j = 0; j < d->nsp; j++) {
          const residue *e = &p->res[3 - d->nsp + j][r[3 - d->nsp + j]];
          cd.k[j] = e->T; cd.stride[j] = 1; cd.dil[j] = 1;
          cd.pad_lo[j] = e->pad_lo; cd.pad_hi[j] = e->pad_hi; cd.out[j] = e->Q;
          ysz *= e->Q;
        }
        phase_weights(p, r, w, v);
        lm_conv *c = NULL;
        rc = lm_conv_new_path(&cd, v, b, LM_CONV_PATH_DIRECT, &c, err, errlen);
        if (rc != LM_OK) break;
        p->conv[p->nphase] = c;
        p->off_y[p->nphase++] = off;
        off += align64((size_t)ysz * sizeof(float));
        size_t cw = lm_conv_workspace_size(c);
        if (cw > p->child_ws) p->child_ws = cw;
      }
  free(v);
  if (rc != LM_OK) { lm_phases_free(p); return rc; }
  /* Workspace: [phase outputs][the children's shared workspace]. */
  p->child_ws = align64(p->child_ws);
  p->ws_size = off + p->child_ws;
  snprintf(p->impl, sizeof p->impl, "phases%d+%s", p->nphase, lm_conv_impl(p->conv[0]));
  *out = p;
  return LM_OK;
}

size_t lm_phases_workspace_size(const lm_phases *p) { return p->ws_size; }
const char *lm_phases_impl(const lm_phases *p) { return p->impl; }

/* dst[n][co][o0][o1][o2] from the phase outputs y_p[n][co][q0][q1][q2]:
** every output row interleaves s2 phase rows. */
static void interleave(const lm_phases *p, char *ws, float *dst) {
  const lm_conv_desc *d = &p->d;
  const int64_t o0 = p->out[0], o1 = p->out[1], o2 = p->out[2];
  const int64_t rows = d->n * d->cout * o0 * o1;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; row++) {
    int64_t nc = row / (o0 * o1), a = row / o1 % o0, b = row % o1;
    int64_t ua = a + p->plo[0], ub = b + p->plo[1];
    int64_t ra = ua % p->s[0], rb = ub % p->s[1];
    const residue *ea = &p->res[0][ra], *eb = &p->res[1][rb];
    int64_t qa = ua / p->s[0] - ea->q_first, qb = ub / p->s[1] - eb->q_first;
    const float *src[MAX_S];
    for (int64_t rc = 0; rc < p->s[2]; rc++) {
      int ph = (int)((ra * p->s[1] + rb) * p->s[2] + rc);
      const residue *ec = &p->res[2][rc];
      src[rc] = (const float *)(ws + p->off_y[ph]) +
                ((nc * ea->Q + qa) * eb->Q + qb) * ec->Q - ec->q_first;
    }
    float *drow = dst + row * o2;
    int64_t uc = p->plo[2];
    for (int64_t c = 0; c < o2; c++, uc++) drow[c] = src[uc % p->s[2]][uc / p->s[2]];
  }
}

int lm_phases_run(lm_phases *p, const float *src, float *dst, void *ws) {
  char *w = ws;
  void *child_ws = w + p->ws_size - p->child_ws;
  for (int i = 0; i < p->nphase; i++) {
    int rc = lm_conv_run_ws(p->conv[i], src, (float *)(w + p->off_y[i]), child_ws);
    if (rc != LM_OK) return rc;
  }
  interleave(p, w, dst);
  return LM_OK;
}

void lm_phases_free(lm_phases *p) {
  if (!p) return;
  for (int i = 0; i < p->nphase; i++) lm_conv_free(p->conv[i]);
  free(p);
}
