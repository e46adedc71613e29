/* The resampling core (semantics.md §4.2-4.3): per output voxel, the input
 * index c = m · o, then nearest / linear (torch grid_sample rules, as MONAI's
 * torch path) or the cubic B-spline of scipy map_coordinates (MONAI's
 * integer modes), in float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "resample.h"
#include "xf_util.h"

/* scipy pre-pads 'nearest' inputs with this many edge values before the
 * spline filter (_prepad_for_spline_filter), so its border behaviour is the
 * filter of the padded line, not an exact boundary condition. */
#define SPLINE_PREPAD XF_SPLINE_PREPAD
#define MAX_TAPS 4

int xf_interp_parse(const char *s, xf_interp *out)
{
  if (!strcmp(s, "nearest") || !strcmp(s, "0")) *out = XF_INTERP_NEAREST;
  else if (!strcmp(s, "bilinear") || !strcmp(s, "linear") ||
           !strcmp(s, "trilinear") || !strcmp(s, "1"))
    *out = XF_INTERP_LINEAR;
  else if (!strcmp(s, "cubic") || !strcmp(s, "3")) *out = XF_INTERP_CUBIC;
  else return LM_EINVAL;
  return LM_OK;
}

int xf_padding_parse(const char *s, xf_padding *out)
{
  if (!strcmp(s, "border")) *out = XF_PAD_BORDER;
  else if (!strcmp(s, "zeros")) *out = XF_PAD_ZEROS;
  else if (!strcmp(s, "reflection")) *out = XF_PAD_REFLECTION;
  else return LM_EINVAL;
  return LM_OK;
}

const char *xf_interp_name(xf_interp m)
{
  return m == XF_INTERP_NEAREST ? "nearest"
         : m == XF_INTERP_LINEAR ? "bilinear"
         : m == XF_INTERP_FLOOR ? "nearest-floor" : "cubic";
}

const char *xf_padding_name(xf_padding p)
{
  return p == XF_PAD_BORDER ? "border"
         : p == XF_PAD_ZEROS ? "zeros" : "reflection";
}

int xf_spatial_ndim(const lm_tensor *t)
{
  int nd = lm_tensor_ndim(t);
  const char *lay = lm_tensor_layout(t);
  if ((int)strlen(lay) == nd && nd > 0) {
    int k = 0;
    while (k < nd && k < 3 && strchr("XYZ", lay[nd - 1 - k])) k++;
    if (k > 0) return k;
  }
  return nd < 3 ? nd : 3;
}

int xf_resample_new_output(lm_tensor *in, int nsp, const int64_t *sp_shape,
                           lm_dtype dt, lm_tensor **out)
{
  int nd = lm_tensor_ndim(in), order[LM_MAX_DIMS];
  int64_t shape[LM_MAX_DIMS];
  memcpy(shape, lm_tensor_shape(in), sizeof(int64_t) * (size_t)nd);
  for (int d = 0; d < nsp; d++) shape[nd - nsp + d] = sp_shape[d];
  xf_memory_order(in, order);
  int st = lm_tensor_new_ordered(lm_tensor_engine(in), dt, nd, shape, order,
                                 lm_tensor_device(in), out);
  if (st < 0) return st;
  lm_tensor_set_affine(*out, lm_tensor_affine(in));
  lm_tensor_set_layout(*out, lm_tensor_layout(in));
  lm_tensor_trace_copy(*out, in);
  return LM_OK;
}

/* ---- 4x4 matrices ---- */

void xf_mat4_mul(const double a[16], const double b[16], double c[16])
{
  double r[16];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      double s = 0;
      for (int k = 0; k < 4; k++) s += a[i * 4 + k] * b[k * 4 + j];
      r[i * 4 + j] = s;
    }
  memcpy(c, r, sizeof r);
}

bool xf_mat4_inverse(const double a[16], double inv[16])
{
  /* Gauss-Jordan with partial pivoting. */
  double m[4][8];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 8; j++)
      m[i][j] = j < 4 ? a[i * 4 + j] : (j - 4 == i);
  for (int c = 0; c < 4; c++) {
    int p = c;
    for (int r = c + 1; r < 4; r++)
      if (fabs(m[r][c]) > fabs(m[p][c])) p = r;
    if (!(fabs(m[p][c]) > 1e-300)) return false;
    if (p != c)
      for (int j = 0; j < 8; j++) {
        double t = m[c][j]; m[c][j] = m[p][j]; m[p][j] = t;
      }
    double d = m[c][c];
    for (int j = 0; j < 8; j++) m[c][j] /= d;
    for (int r = 0; r < 4; r++) {
      if (r == c || m[r][c] == 0) continue;
      double f = m[r][c];
      for (int j = 0; j < 8; j++) m[r][j] -= f * m[c][j];
    }
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) inv[i * 4 + j] = m[i][j + 4];
  return true;
}

/* ---- taps along one axis ---- */

static inline double clampd(double v, double lo, double hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

/* torch reflect_coordinates for align_corners=False: reflect about -0.5 and
 * n - 0.5. */
static double torch_reflect(double c, int64_t n)
{
  double span = (double)n, in = fabs(c + 0.5);
  double extra = fmod(in, span);
  double flips = floor(in / span);
  return fmod(flips, 2.0) == 0 ? extra - 0.5 : span - extra - 0.5;
}

/* scipy's tap index rules on a line of L coefficients. */
static int64_t idx_mirror(int64_t i, int64_t L)
{
  if (L <= 1) return 0;
  int64_t p = 2 * L - 2;
  i %= p;
  if (i < 0) i += p;
  return i >= L ? p - i : i;
}

static int64_t idx_reflect(int64_t i, int64_t L)
{
  int64_t p = 2 * L;
  i %= p;
  if (i < 0) i += p;
  return i >= L ? p - 1 - i : i;
}

static inline double bspline3(double y)
{
  y = fabs(y);
  if (y < 1.0) return (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
  if (y < 2.0) {
    y = 2.0 - y;
    return y * y * y / 6.0;
  }
  return 0.0;
}

static int ntaps(xf_interp ip)
{
  return ip == XF_INTERP_NEAREST || ip == XF_INTERP_FLOOR ? 1
         : ip == XF_INTERP_LINEAR ? 2 : 4;
}

/* Taps for coordinate c on an axis of n input samples.  For cubic the
 * indices address the coefficient line of n + 2*npad values.  Taps that
 * contribute nothing get weight 0 and index 0 (always a valid index). */
static void taps_for(double c, int64_t n, int64_t npad, xf_interp ip,
                     xf_padding pd, bool half_away, int64_t *idx, double *w)
{
  int k = ntaps(ip);
  for (int j = 0; j < k; j++) { idx[j] = 0; w[j] = 0; }
  /* Far outside (or NaN): nothing but the clamped edge can be meant. */
  if (!(fabs(c) < 1e15)) {
    if (pd != XF_PAD_BORDER || isnan(c)) return;
    c = c < 0 ? 0 : (double)(n - 1);
  }
  if (ip == XF_INTERP_FLOOR) {
    double f = floor(clampd(c, 0, (double)(n - 1)));
    idx[0] = (int64_t)f;
    w[0] = 1;
    return;
  }
  if (ip == XF_INTERP_NEAREST || ip == XF_INTERP_LINEAR) {
    double cc = c;
    if (pd == XF_PAD_REFLECTION) cc = clampd(torch_reflect(c, n), 0, (double)(n - 1));
    else if (pd == XF_PAD_BORDER) cc = clampd(c, 0, (double)(n - 1));
    if (ip == XF_INTERP_NEAREST) {
      double r = half_away ? round(cc) : nearbyint(cc);
      if (r >= 0 && r <= (double)(n - 1)) { idx[0] = (int64_t)r; w[0] = 1; }
      return;
    }
    double f = floor(cc), t = cc - f;
    for (int j = 0; j < 2; j++) {
      double i = f + j;
      if (i < 0 || i > (double)(n - 1)) continue;
      idx[j] = (int64_t)i;
      w[j] = j ? t : 1 - t;
    }
    return;
  }
  /* cubic, scipy geometric_transform */
  if (pd == XF_PAD_ZEROS && !(c >= 0 && c <= (double)(n - 1))) return;
  int64_t len = n + 2 * npad;
  double cc = c + (double)npad;
  int64_t start = (int64_t)floor(cc) - 1;
  for (int j = 0; j < 4; j++) {
    int64_t i = start + j;
    w[j] = bspline3((double)i - cc);
    idx[j] = pd == XF_PAD_BORDER ? (i < 0 ? 0 : i >= len ? len - 1 : i)
             : pd == XF_PAD_ZEROS ? idx_mirror(i, len) : idx_reflect(i, len);
  }
}

/* ---- the sampled source: one channel's 3-D volume ---- */

typedef struct src3 {
  const char *base;
  lm_dtype dt;
  size_t es;
  int64_t n[3];   /* sampled length (coefficients include the pre-pad) */
  int64_t st[3];  /* element strides */
} src3;

/* ---- cubic B-spline prefilter (scipy ni_splines.c) ---- */

static void init_causal_mirror(double *c, int64_t n, double z)
{
  double zi = z, zn1 = pow(z, (double)(n - 1));
  c[0] = c[0] + zn1 * c[n - 1];
  for (int64_t i = 1; i < n - 1; i++) {
    c[0] += zi * (c[i] + zn1 * c[n - 1 - i]);
    zi *= z;
  }
  c[0] /= 1 - zn1 * zn1;
}

static void init_anticausal_mirror(double *c, int64_t n, double z)
{
  c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1);
}

static void init_causal_reflect(double *c, int64_t n, double z)
{
  double zi = z, zn = pow(z, (double)n), c0 = c[0];
  c[0] = c[0] + zn * c[n - 1];
  for (int64_t i = 1; i < n; i++) {
    c[0] += zi * (c[i] + zn * c[n - 1 - i]);
    zi *= z;
  }
  c[0] *= z / (1 - zn * zn);
  c[0] += c0;
}

static void init_anticausal_reflect(double *c, int64_t n, double z)
{
  c[n - 1] *= z / (z - 1);
}

/* Order-3 spline filter of one line in place: scipy uses the half-sample
 * ("reflect") boundary for its 'nearest' and 'reflect' modes and the
 * whole-sample ("mirror") one for 'constant'. */
static void spline_filter_line(double *c, int64_t n, bool mirror)
{
  if (n < 2) return;
  const double z = sqrt(3.0) - 2.0, gain = (1 - z) * (1 - 1 / z);
  for (int64_t i = 0; i < n; i++) c[i] *= gain;
  if (mirror) init_causal_mirror(c, n, z);
  else init_causal_reflect(c, n, z);
  for (int64_t i = 1; i < n; i++) c[i] += z * c[i - 1];
  if (mirror) init_anticausal_mirror(c, n, z);
  else init_anticausal_reflect(c, n, z);
  for (int64_t i = n - 2; i >= 0; i--) c[i] = z * (c[i + 1] - c[i]);
}

typedef struct coef_job {
  const src3 *in;
  double *c;
  int64_t L[3], cst[3], npad;
  int axis;        /* axis being filtered (or, for the fill, the line axis) */
  int o1, o2;      /* the other two axes */
  bool mirror;
} coef_job;

static int64_t clamp_i(int64_t v, int64_t n)
{
  return v < 0 ? 0 : v >= n ? n - 1 : v;
}

/* Fill coefficient lines along `axis` with the (edge pre-padded) input. */
static int coef_fill(int64_t b, int64_t e, void *arg)
{
  const coef_job *j = arg;
  const src3 *in = j->in;
  int a = j->axis;
  int64_t L = j->L[a];
  double *buf = malloc(sizeof(double) * (size_t)in->n[a]);
  if (!buf) return LM_ENOMEM;
  for (int64_t r = b; r < e; r++) {
    int64_t p1 = r / j->L[j->o2], p2 = r % j->L[j->o2];
    int64_t i1 = clamp_i(p1 - j->npad, in->n[j->o1]);
    int64_t i2 = clamp_i(p2 - j->npad, in->n[j->o2]);
    const char *src = in->base + (i1 * in->st[j->o1] + i2 * in->st[j->o2]) * (int64_t)in->es;
    xf_load_f64(src, in->st[a] * (int64_t)in->es, in->dt, buf, in->n[a]);
    double *dst = j->c + p1 * j->cst[j->o1] + p2 * j->cst[j->o2];
    for (int64_t p = 0; p < L; p++)
      dst[p * j->cst[a]] = buf[clamp_i(p - j->npad, in->n[a])];
  }
  free(buf);
  return LM_OK;
}

static int coef_filter(int64_t b, int64_t e, void *arg)
{
  const coef_job *j = arg;
  int a = j->axis;
  int64_t L = j->L[a], s = j->cst[a];
  double *buf = s == 1 ? NULL : malloc(sizeof(double) * (size_t)L);
  if (s != 1 && !buf) return LM_ENOMEM;
  for (int64_t r = b; r < e; r++) {
    int64_t p1 = r / j->L[j->o2], p2 = r % j->L[j->o2];
    double *line = j->c + p1 * j->cst[j->o1] + p2 * j->cst[j->o2];
    if (s == 1) {
      spline_filter_line(line, L, j->mirror);
      continue;
    }
    for (int64_t p = 0; p < L; p++) buf[p] = line[p * s];
    spline_filter_line(buf, L, j->mirror);
    for (int64_t p = 0; p < L; p++) line[p * s] = buf[p];
  }
  free(buf);
  return LM_OK;
}

static void other_axes(int a, int *o1, int *o2)
{
  *o1 = a == 0 ? 1 : 0;
  *o2 = a == 2 ? 1 : 2;
}

/* The order-3 spline coefficients of `in` (float64, dims in in's memory
 * order), described as a source in *out; the caller frees out->base. */
static int spline_coefficients(lm_engine *e, lm_op_ctx *ctx, const src3 *in,
                               xf_padding pd, src3 *out)
{
  coef_job j = {.in = in, .npad = pd == XF_PAD_BORDER ? SPLINE_PREPAD : 0,
                .mirror = pd == XF_PAD_ZEROS};
  int ord[3] = {0, 1, 2};
  for (int a = 0; a < 3; a++) j.L[a] = in->n[a] + 2 * j.npad;
  /* slowest first by the input's strides */
  for (int x = 0; x < 3; x++)
    for (int y = x + 1; y < 3; y++)
      if (llabs(in->st[ord[y]]) > llabs(in->st[ord[x]])) {
        int t = ord[x]; ord[x] = ord[y]; ord[y] = t;
      }
  j.cst[ord[2]] = 1;
  j.cst[ord[1]] = j.L[ord[2]];
  j.cst[ord[0]] = j.L[ord[2]] * j.L[ord[1]];
  size_t total = (size_t)(j.L[0] * j.L[1] * j.L[2]);
  j.c = malloc(sizeof(double) * total);
  if (!j.c) return LM_ENOMEM;
  int st;
  j.axis = ord[2];
  other_axes(j.axis, &j.o1, &j.o2);
  st = lm_parallel_for(e, ctx, j.L[j.o1] * j.L[j.o2], 16, coef_fill, &j);
  for (int a = 0; a < 3 && st >= 0; a++) {
    if (j.L[a] < 2) continue;
    j.axis = a;
    other_axes(a, &j.o1, &j.o2);
    st = lm_parallel_for(e, ctx, j.L[j.o1] * j.L[j.o2], 16, coef_filter, &j);
  }
  if (st < 0) {
    free(j.c);
    return st;
  }
  *out = (src3){.base = (const char *)j.c, .dt = LM_F64, .es = sizeof(double)};
  for (int a = 0; a < 3; a++) {
    out->n[a] = j.L[a];
    out->st[a] = j.cst[a];
  }
  return LM_OK;
}

/* ---- tap tables for the separable path ---- */

typedef struct axis_table {
  int k;
  int64_t m;       /* output length */
  int64_t *idx;    /* m * k */
  double *w;
  int64_t lo, hi;  /* range of indices used by nonzero taps */
} axis_table;

static int table_build(axis_table *t, int64_t m, double scale, double shift,
                       int64_t n, int64_t npad, xf_interp ip, xf_padding pd,
                       xf_grid grid)
{
  bool torch = grid == XF_GRID_TORCH && ip == XF_INTERP_NEAREST;
  t->k = ntaps(ip);
  t->m = m;
  t->idx = malloc(sizeof(int64_t) * (size_t)(m * t->k));
  t->w = malloc(sizeof(double) * (size_t)(m * t->k));
  if (!t->idx || !t->w) return LM_ENOMEM;
  t->lo = INT64_MAX;
  t->hi = -1;
  for (int64_t o = 0; o < m; o++) {
    double c = torch ? xf_torch_grid_coord(scale, shift, n, m, o)
                     : scale * (double)o + shift;
    taps_for(c, n, npad, ip, pd, torch, t->idx + o * t->k, t->w + o * t->k);
    for (int j = 0; j < t->k; j++) {
      if (t->w[o * t->k + j] == 0) continue;
      int64_t i = t->idx[o * t->k + j];
      if (i < t->lo) t->lo = i;
      if (i > t->hi) t->hi = i;
    }
  }
  if (t->hi < 0) t->lo = t->hi = 0; /* nothing sampled: all zeros */
  /* Taps without weight point into the sampled range, so that a row
   * kernel multiplying them by 0 never reads outside its buffer. */
  for (int64_t q = 0; q < m * t->k; q++)
    if (t->w[q] == 0) t->idx[q] = t->lo;
  return LM_OK;
}

static void table_free(axis_table *t)
{
  free(t->idx);
  free(t->w);
}

typedef struct sep_job {
  src3 src;
  axis_table t[3];
  int f, s, md;           /* fast, slow, middle axes */
  char *out;              /* output channel base */
  lm_dtype odt;
  size_t oes;
  int64_t ost[3];         /* output element strides */
} sep_job;

static int sep_rows(int64_t b, int64_t e, void *arg)
{
  const sep_job *j = arg;
  const axis_table *ts = &j->t[j->s], *tm = &j->t[j->md], *tf = &j->t[j->f];
  const src3 *src = &j->src;
  int64_t lo = tf->lo, len = tf->hi - tf->lo + 1, mf = tf->m;
  bool direct = src->dt == LM_F64 && src->st[j->f] == 1;
  bool f32 = src->dt == LM_F32 && src->st[j->f] == 1;
  double *tmp = malloc(sizeof(double) * (size_t)(len + (direct ? 0 : len) + mf));
  if (!tmp) return LM_ENOMEM;
  double *ld = tmp + len, *row = tmp + len + (direct ? 0 : len);
  for (int64_t r = b; r < e; r++) {
    int64_t os = r / tm->m, om = r % tm->m;
    memset(tmp, 0, sizeof(double) * (size_t)len);
    for (int ks = 0; ks < ts->k; ks++) {
      double ws = ts->w[os * ts->k + ks];
      if (ws == 0) continue;
      int64_t is = ts->idx[os * ts->k + ks];
      for (int km = 0; km < tm->k; km++) {
        double w = ws * tm->w[om * tm->k + km];
        if (w == 0) continue;
        int64_t im = tm->idx[om * tm->k + km];
        const char *p = src->base + (is * src->st[j->s] + im * src->st[j->md] +
                                     lo * src->st[j->f]) * (int64_t)src->es;
        const double *line;
        if (f32) {
          /* the common float32 input: widen and accumulate in one pass */
          const float *pf = (const float *)p;
          for (int64_t i = 0; i < len; i++) tmp[i] += w * (double)pf[i];
          continue;
        }
        if (direct) {
          line = (const double *)p;
        } else {
          xf_load_f64(p, src->st[j->f] * (int64_t)src->es, src->dt, ld, len);
          line = ld;
        }
        for (int64_t i = 0; i < len; i++) tmp[i] += w * line[i];
      }
    }
    const int64_t *fi = tf->idx;
    const double *fw = tf->w;
    if (tf->k == 2) {
      for (int64_t o = 0; o < mf; o++)
        row[o] = fw[2 * o] * tmp[fi[2 * o] - lo] + fw[2 * o + 1] * tmp[fi[2 * o + 1] - lo];
    } else {
      for (int64_t o = 0; o < mf; o++) {
        double v = 0;
        for (int k = 0; k < tf->k; k++)
          v += fw[o * tf->k + k] * tmp[fi[o * tf->k + k] - lo];
        row[o] = v;
      }
    }
    char *dst = j->out + (os * j->ost[j->s] + om * j->ost[j->md]) * (int64_t)j->oes;
    xf_store_f64(row, dst, j->ost[j->f] * (int64_t)j->oes, j->odt, mf);
  }
  free(tmp);
  return LM_OK;
}

/* ---- the general path: every output voxel maps on its own ---- */

typedef struct gen_job {
  src3 src;               /* float64 */
  int64_t n[3], npad;     /* input lengths (before any pre-pad) */
  double m[3][4];
  xf_interp ip;
  xf_padding pd;
  int64_t mo[3];          /* output shape */
  char *out;
  lm_dtype odt;
  size_t oes;
  int64_t ost[3];
} gen_job;

static int gen_rows(int64_t b, int64_t e, void *arg)
{
  const gen_job *j = arg;
  int k = ntaps(j->ip);
  double *row = malloc(sizeof(double) * (size_t)j->mo[2]);
  if (!row) return LM_ENOMEM;
  const double *c0 = (const double *)j->src.base;
  for (int64_t r = b; r < e; r++) {
    int64_t o0 = r / j->mo[1], o1 = r % j->mo[1];
    for (int64_t o2 = 0; o2 < j->mo[2]; o2++) {
      int64_t idx[3][MAX_TAPS];
      double w[3][MAX_TAPS];
      for (int a = 0; a < 3; a++) {
        double c = j->m[a][0] * (double)o0 + j->m[a][1] * (double)o1 +
                   j->m[a][2] * (double)o2 + j->m[a][3];
        taps_for(c, j->n[a], j->npad, j->ip, j->pd, false, idx[a], w[a]);
      }
      double v = 0;
      for (int x = 0; x < k; x++) {
        if (w[0][x] == 0) continue;
        for (int y = 0; y < k; y++) {
          double wxy = w[0][x] * w[1][y];
          if (wxy == 0) continue;
          const double *p = c0 + idx[0][x] * j->src.st[0] + idx[1][y] * j->src.st[1];
          for (int z = 0; z < k; z++)
            if (w[2][z] != 0) v += wxy * w[2][z] * p[idx[2][z] * j->src.st[2]];
        }
      }
      row[o2] = v;
    }
    char *dst = j->out + (o0 * j->ost[0] + o1 * j->ost[1]) * (int64_t)j->oes;
    xf_store_f64(row, dst, j->ost[2] * (int64_t)j->oes, j->odt, j->mo[2]);
  }
  free(row);
  return LM_OK;
}

typedef struct dense_job {
  const src3 *in;
  double *d;
} dense_job;

/* A dense C-order float64 copy of a channel (lines along axis 2). */
static int dense_rows(int64_t b, int64_t e, void *arg)
{
  const dense_job *j = arg;
  const src3 *in = j->in;
  for (int64_t r = b; r < e; r++) {
    int64_t i0 = r / in->n[1], i1 = r % in->n[1];
    xf_load_f64(in->base + (i0 * in->st[0] + i1 * in->st[1]) * (int64_t)in->es,
                in->st[2] * (int64_t)in->es, in->dt, j->d + r * in->n[2], in->n[2]);
  }
  return LM_OK;
}

/* ---- driver ---- */

static bool is_axis_aligned(const double m[3][4])
{
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 3; b++)
      if (a != b && m[a][b] != 0) return false;
  return true;
}

static int resample_channel(lm_engine *e, lm_op_ctx *ctx, const src3 *in,
                            const double m[3][4], xf_interp ip, xf_padding pd,
                            xf_grid grid, char *out, lm_dtype odt, const int64_t mo[3],
                            const int64_t ost[3])
{
  src3 src = *in;
  double *owned = NULL;
  int64_t npad = 0;
  int st;
  if (ip == XF_INTERP_CUBIC) {
    if ((st = spline_coefficients(e, ctx, in, pd, &src)) < 0) return st;
    owned = (double *)src.base;
    npad = pd == XF_PAD_BORDER ? SPLINE_PREPAD : 0;
  }
  if (is_axis_aligned(m)) {
    sep_job j = {.src = src, .out = out, .odt = odt, .oes = lm_dtype_size(odt)};
    memcpy(j.ost, ost, sizeof j.ost);
    st = LM_OK;
    for (int a = 0; a < 3; a++) j.t[a] = (axis_table){0};
    for (int a = 0; a < 3 && st >= 0; a++)
      st = table_build(&j.t[a], mo[a], m[a][a], m[a][3], in->n[a], npad, ip,
                       pd, grid);
    if (st >= 0) {
      /* rows run along the source's fastest axis of more than one sample */
      int f = 2;
      int64_t best = INT64_MAX;
      for (int a = 2; a >= 0; a--)
        if (src.n[a] > 1 && llabs(src.st[a]) < best) {
          best = llabs(src.st[a]);
          f = a;
        }
      j.f = f;
      other_axes(f, &j.s, &j.md);
      st = lm_parallel_for(e, ctx, mo[j.s] * mo[j.md],
                           mo[j.f] >= 256 ? 4 : 64, sep_rows, &j);
    }
    for (int a = 0; a < 3; a++) table_free(&j.t[a]);
  } else {
    gen_job j = {.npad = npad, .ip = ip, .pd = pd, .out = out, .odt = odt,
                 .oes = lm_dtype_size(odt)};
    memcpy(j.m, m, sizeof j.m);
    memcpy(j.mo, mo, sizeof j.mo);
    memcpy(j.ost, ost, sizeof j.ost);
    memcpy(j.n, in->n, sizeof j.n);
    st = LM_OK;
    if (!owned) {
      size_t total = (size_t)(in->n[0] * in->n[1] * in->n[2]);
      owned = malloc(sizeof(double) * (total ? total : 1));
      if (!owned) return LM_ENOMEM;
      dense_job dj = {.in = in, .d = owned};
      st = lm_parallel_for(e, ctx, in->n[0] * in->n[1], 64, dense_rows, &dj);
      src = (src3){.base = (const char *)owned, .dt = LM_F64, .es = 8,
                   .n = {in->n[0], in->n[1], in->n[2]},
                   .st = {in->n[1] * in->n[2], in->n[2], 1}};
    }
    j.src = src;
    if (st >= 0)
      st = lm_parallel_for(e, ctx, mo[0] * mo[1], mo[2] >= 64 ? 4 : 64,
                           gen_rows, &j);
  }
  free(owned);
  return st;
}

int xf_resample(lm_engine *e, lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out,
                const xf_resample_spec *spec)
{
  int nd = lm_tensor_ndim(in), nsp = spec->nsp;
  if (nsp < 1 || nsp > 3 || nd < nsp || lm_tensor_ndim(out) != nd)
    return LM_ESHAPE;
  const int64_t *ish = lm_tensor_shape(in), *osh = lm_tensor_shape(out);
  const int64_t *ist = lm_tensor_strides(in), *ost = lm_tensor_strides(out);
  int lead = nd - nsp;
  for (int d = 0; d < lead; d++)
    if (ish[d] != osh[d]) return LM_ESHAPE;
  if (lm_tensor_numel(out) == 0) return LM_OK;
  /* Spatial dims padded in front to 3 with size-1 axes mapped to 0. */
  double m[3][4] = {{0}};
  int64_t n[3], sst[3], mo[3], os3[3];
  for (int a = 0; a < 3; a++) {
    int d = a - (3 - nsp); /* spatial dim index, < 0 for padding */
    if (d < 0) {
      n[a] = mo[a] = 1;
      sst[a] = os3[a] = 0;
      continue;
    }
    n[a] = ish[lead + d];
    sst[a] = ist[lead + d];
    mo[a] = osh[lead + d];
    os3[a] = ost[lead + d];
    for (int b = 0; b < nsp; b++) m[a][b + (3 - nsp)] = spec->m[d][b];
    m[a][3] = spec->m[d][3];
  }
  if (n[0] * n[1] * n[2] == 0) return LM_ESHAPE;
  lm_dtype idt = lm_tensor_dtype(in), odt = lm_tensor_dtype(out);
  size_t ies = lm_dtype_size(idt), oes = lm_dtype_size(odt);
  int64_t nch = 1;
  for (int d = 0; d < lead; d++) nch *= ish[d];
  for (int64_t c = 0; c < nch; c++) {
    int64_t rem = c, ioff = 0, ooff = 0;
    for (int d = lead - 1; d >= 0; d--) {
      int64_t i = rem % ish[d];
      rem /= ish[d];
      ioff += i * ist[d];
      ooff += i * ost[d];
    }
    src3 s = {.base = (const char *)lm_tensor_data(in) + ioff * (int64_t)ies,
              .dt = idt, .es = ies};
    memcpy(s.n, n, sizeof n);
    memcpy(s.st, sst, sizeof sst);
    int st = resample_channel(e, ctx, &s, (const double(*)[4])m, spec->interp,
                              spec->padding,
                              nsp == 3 ? spec->grid : XF_GRID_EXACT,
                              (char *)lm_tensor_data(out) + ooff * (int64_t)oes,
                              odt, mo, os3);
    if (st < 0) return st;
  }
  return LM_OK;
}

/* ---- the CPU backend of the resampling ops ---- */

static int cpu_resample(lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out,
                        const xf_resample_spec *spec)
{
  int st = xf_resample(lm_ctx_engine(ctx), ctx, in, out, spec);
  if (st < 0 && st != LM_ECANCELED)
    return lm_ctx_error(ctx, st, "resampling failed");
  return st;
}

static int cpu_copy(lm_op_ctx *ctx, lm_tensor *dst, const lm_tensor *src)
{
  int st = lm_tensor_copy(dst, src);
  return st < 0 ? lm_ctx_error(ctx, st, "cannot copy the input") : st;
}

const xf_resample_backend xf_resample_cpu = {cpu_resample, cpu_copy, NULL};

/* ---- per-axis tap tables for other backends ---- */

int xf_axis_taps_build(xf_axis_taps *t, int64_t m, double scale, double shift,
                       int64_t n, xf_interp ip, xf_padding pd, xf_grid grid)
{
  axis_table a = {0};
  int64_t npad = ip == XF_INTERP_CUBIC && pd == XF_PAD_BORDER ? SPLINE_PREPAD : 0;
  int st = table_build(&a, m, scale, shift, n, npad, ip, pd, grid);
  t->k = a.k;
  t->m = a.m;
  t->idx = a.idx;
  t->w = a.w;
  if (st < 0) xf_axis_taps_free(t);
  return st;
}

void xf_axis_taps_free(xf_axis_taps *t)
{
  free(t->idx);
  free(t->w);
  t->idx = NULL;
  t->w = NULL;
}
