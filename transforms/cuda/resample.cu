/* The data loops of Resize, ScaleByResolution (rule 'monai'; 'nnunet' is
 * resample_nnunet.cu) and RestoreOriginalShape on the GPU.  The ops' planning (options, shapes,
 * index maps, affines, traces) is the CPU ops' own code, which calls this
 * backend (xf_resample_backend, resample.h) for the loops.
 *
 * Results equal xf_resample's bit for bit where the arithmetic allows:
 *   - axis-aligned maps use the CPU's own per-axis tap tables (built on the
 *     host by xf_axis_taps_build, copied to the device) and sum the taps in
 *     the CPU's order, every operation rounded on its own (lmc_d*);
 *   - the cubic B-spline prefilter repeats scipy's recursion of the CPU
 *     code line by line (one thread per line), with the powers of the pole
 *     computed on the host by the same libm;
 *   - other maps evaluate the CPU's tap rules per voxel in float64.
 * One thread per output element, in the output's memory order. */
#include <math.h>
#include <string.h>

#include "cuda_util.h"
#include "resample.h"
#include "resample_nnunet.h"

/* ---- output walk ---------------------------------------------------------- */

/* The output (dense, any memory order) and how an output element finds its
 * channel in the input and its spatial index (padded to 3 axes in front). */
struct rs_walk {
  int nd, lead, pad;       /* pad = 3 - spatial dims */
  int64_t oshape[LM_MAX_DIMS], ostride[LM_MAX_DIMS];
  int64_t istride[LM_MAX_DIMS]; /* input strides of the leading dims */
};

LMC_HD void rs_decode(const rs_walk &w, int64_t o, int64_t *ioff, int64_t *ch, int64_t p[3])
{
  *ioff = 0;
  *ch = 0;
  p[0] = p[1] = p[2] = 0;
  for (int d = 0; d < w.nd; d++) {
    int64_t c = (o / w.ostride[d]) % w.oshape[d];
    if (d < w.lead) {
      *ioff += c * w.istride[d];
      *ch = *ch * w.oshape[d] + c;
    } else {
      p[d - w.lead + w.pad] = c;
    }
  }
}

/* The sampled source: the input itself, or the float64 spline coefficients
 * of every channel (vol apart). */
struct rs_src {
  const void *base;
  int dt;
  int64_t st[3];
  int64_t vol;  /* coefficients: elements per channel; 0 = the input */
};

LMC_HD double rs_load(const rs_src &s, int64_t ioff, int64_t ch, int64_t off)
{
  if (s.vol) return ((const double *)s.base)[ch * s.vol + off];
  return lmc_load_f64(s.base, ioff + off, s.dt);
}

/* ---- separable path: per-axis tap tables ---------------------------------- */

struct rs_tables {
  const int64_t *idx[3];
  const double *w[3];
  int k[3];
  int f, s, md;  /* the CPU's fast, slow and middle axes */
};

struct rs_separable_kernel {
  rs_walk w;
  rs_src src;
  rs_tables t;
  void *out;
  int out_dt;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t ioff, ch, p[3];
    rs_decode(w, o, &ioff, &ch, p);
    const int f = t.f, s = t.s, m = t.md;
    const int64_t *fi = t.idx[f] + p[f] * t.k[f], *si = t.idx[s] + p[s] * t.k[s];
    const int64_t *mi = t.idx[m] + p[m] * t.k[m];
    const double *fw = t.w[f] + p[f] * t.k[f], *sw = t.w[s] + p[s] * t.k[s];
    const double *mw = t.w[m] + p[m] * t.k[m];
    /* xf_resample's row kernel: tmp[i] = sum over (slow, middle) taps of
     * w_s * w_m * x (zero weights skipped), then the fast-axis taps. */
    double tmp[4];
    for (int kf = 0; kf < t.k[f]; kf++) {
      double acc = 0;
      for (int ks = 0; ks < t.k[s]; ks++) {
        double ws = sw[ks];
        if (ws == 0) continue;
        for (int km = 0; km < t.k[m]; km++) {
          double wsm = lmc_dmul(ws, mw[km]);
          if (wsm == 0) continue;
          int64_t off = si[ks] * src.st[s] + mi[km] * src.st[m] + fi[kf] * src.st[f];
          acc = lmc_dadd(acc, lmc_dmul(wsm, rs_load(src, ioff, ch, off)));
        }
      }
      tmp[kf] = acc;
    }
    double v;
    if (t.k[f] == 2) {
      v = lmc_dadd(lmc_dmul(fw[0], tmp[0]), lmc_dmul(fw[1], tmp[1]));
    } else {
      v = 0;
      for (int kf = 0; kf < t.k[f]; kf++) v = lmc_dadd(v, lmc_dmul(fw[kf], tmp[kf]));
    }
    lmc_store_f64(out, o, out_dt, v);
  }
};

/* ---- general path: the CPU's tap rules per voxel -------------------------- */

LMC_HD double rs_clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* torch reflect_coordinates, align_corners=False */
LMC_HD double rs_torch_reflect(double c, int64_t n)
{
  double span = (double)n, in = fabs(lmc_dadd(c, 0.5));
  double extra = fmod(in, span);
  double flips = floor(lmc_ddiv(in, span));
  return fmod(flips, 2.0) == 0 ? lmc_dsub(extra, 0.5) : lmc_dsub(lmc_dsub(span, extra), 0.5);
}

LMC_HD int64_t rs_idx_mirror(int64_t i, int64_t L)
{
  if (L <= 1) return 0;
  int64_t p = 2 * L - 2;
  i %= p;
  if (i < 0) i += p;
  return i >= L ? p - i : i;
}

LMC_HD int64_t rs_idx_reflect(int64_t i, int64_t L)
{
  int64_t p = 2 * L;
  i %= p;
  if (i < 0) i += p;
  return i >= L ? p - 1 - i : i;
}

LMC_HD double rs_bspline3(double y)
{
  y = fabs(y);
  if (y < 1.0)
    return lmc_ddiv(lmc_dadd(lmc_dmul(lmc_dmul(lmc_dmul(y, y), lmc_dsub(y, 2.0)), 3.0), 4.0), 6.0);
  if (y < 2.0) {
    y = lmc_dsub(2.0, y);
    return lmc_ddiv(lmc_dmul(lmc_dmul(y, y), y), 6.0);
  }
  return 0.0;
}

/* taps_for of resample.c (half-way ties to even: the general path never
 * uses torch's grid). */
LMC_HD void rs_taps(double c, int64_t n, int64_t npad, int ip, int pd, int64_t *idx, double *w)
{
  int k = ip == XF_INTERP_NEAREST || ip == XF_INTERP_FLOOR ? 1 : ip == XF_INTERP_LINEAR ? 2 : 4;
  for (int j = 0; j < k; j++) {
    idx[j] = 0;
    w[j] = 0;
  }
  if (!(fabs(c) < 1e15)) {
    if (pd != XF_PAD_BORDER || c != c) return;
    c = c < 0 ? 0 : (double)(n - 1);
  }
  if (ip == XF_INTERP_FLOOR) {
    idx[0] = (int64_t)floor(rs_clamp(c, 0, (double)(n - 1)));
    w[0] = 1;
    return;
  }
  if (ip == XF_INTERP_NEAREST || ip == XF_INTERP_LINEAR) {
    double cc = c;
    if (pd == XF_PAD_REFLECTION) cc = rs_clamp(rs_torch_reflect(c, n), 0, (double)(n - 1));
    else if (pd == XF_PAD_BORDER) cc = rs_clamp(c, 0, (double)(n - 1));
    if (ip == XF_INTERP_NEAREST) {
      double r = nearbyint(cc);
      if (r >= 0 && r <= (double)(n - 1)) {
        idx[0] = (int64_t)r;
        w[0] = 1;
      }
      return;
    }
    double f = floor(cc), t = lmc_dsub(cc, f);
    for (int j = 0; j < 2; j++) {
      double i = f + j;
      if (i < 0 || i > (double)(n - 1)) continue;
      idx[j] = (int64_t)i;
      w[j] = j ? t : lmc_dsub(1, t);
    }
    return;
  }
  if (pd == XF_PAD_ZEROS && !(c >= 0 && c <= (double)(n - 1))) return;
  int64_t len = n + 2 * npad;
  double cc = lmc_dadd(c, (double)npad);
  int64_t start = (int64_t)floor(cc) - 1;
  for (int j = 0; j < 4; j++) {
    int64_t i = start + j;
    w[j] = rs_bspline3(lmc_dsub((double)i, cc));
    idx[j] = pd == XF_PAD_BORDER ? (i < 0 ? 0 : i >= len ? len - 1 : i)
             : pd == XF_PAD_ZEROS ? rs_idx_mirror(i, len) : rs_idx_reflect(i, len);
  }
}

struct rs_general_kernel {
  rs_walk w;
  rs_src src;
  double m[3][4];
  int64_t n[3], npad;
  int ip, pd;
  void *out;
  int out_dt;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t ioff, ch, p[3];
    rs_decode(w, o, &ioff, &ch, p);
    int k = ip == XF_INTERP_NEAREST || ip == XF_INTERP_FLOOR ? 1 : ip == XF_INTERP_LINEAR ? 2 : 4;
    int64_t idx[3][4];
    double wt[3][4];
    for (int a = 0; a < 3; a++) {
      double c = lmc_dadd(lmc_dadd(lmc_dadd(lmc_dmul(m[a][0], (double)p[0]),
                                            lmc_dmul(m[a][1], (double)p[1])),
                                   lmc_dmul(m[a][2], (double)p[2])),
                          m[a][3]);
      rs_taps(c, n[a], npad, ip, pd, idx[a], wt[a]);
    }
    /* gen_rows' order: x, y, z nested, w_xy * w_z * value */
    double v = 0;
    for (int x = 0; x < k; x++) {
      if (wt[0][x] == 0) continue;
      for (int y = 0; y < k; y++) {
        double wxy = lmc_dmul(wt[0][x], wt[1][y]);
        if (wxy == 0) continue;
        int64_t base = idx[0][x] * src.st[0] + idx[1][y] * src.st[1];
        for (int z = 0; z < k; z++)
          if (wt[2][z] != 0)
            v = lmc_dadd(v, lmc_dmul(lmc_dmul(wxy, wt[2][z]),
                                     rs_load(src, ioff, ch, base + idx[2][z] * src.st[2])));
      }
    }
    lmc_store_f64(out, o, out_dt, v);
  }
};

/* ---- cubic B-spline coefficients (scipy spline_filter1d, order 3) -------- */

/* Fill: coefficient element e of channel ch = the input at the clamped
 * (edge pre-padded) index. */
struct rs_coef_fill_kernel {
  const void *in;
  int in_dt;
  rs_walk w;            /* only lead / istride / oshape of the leading dims */
  int64_t nch, vol;
  int64_t L[3], cst[3], n[3], ist[3], npad;
  double *c;
  LMC_HD void operator()(int64_t e) const
  {
    int64_t ch = e / vol, r = e % vol, ioff = 0, rem = ch;
    for (int d = w.lead - 1; d >= 0; d--) {
      ioff += (rem % w.oshape[d]) * w.istride[d];
      rem /= w.oshape[d];
    }
    int64_t off = 0;
    for (int a = 0; a < 3; a++) {
      int64_t q = (r / cst[a]) % L[a] - npad;
      q = q < 0 ? 0 : q >= n[a] ? n[a] - 1 : q;
      off += q * ist[a];
    }
    c[e] = lmc_load_f64(in, ioff + off, in_dt);
  }
};

/* spline_filter_line of resample.c on one strided line; zp = z^(n-1)
 * (mirror) or z^n (reflect), from the host's pow. */
struct rs_coef_filter_kernel {
  double *c;
  int64_t vol, len, s;          /* line length and stride */
  int64_t L1, L2, st1, st2;     /* the two other axes */
  double z, gain, zp;
  bool mirror;
  LMC_HD void operator()(int64_t line) const
  {
    int64_t per = L1 * L2, ch = line / per, r = line % per;
    double *p = c + ch * vol + (r / L2) * st1 + (r % L2) * st2;
    const int64_t n = len;
#define C(i) p[(int64_t)(i) * s]
    for (int64_t i = 0; i < n; i++) C(i) = lmc_dmul(C(i), gain);
    if (mirror) {
      double zi = z, zn1 = zp;
      C(0) = lmc_dadd(C(0), lmc_dmul(zn1, C(n - 1)));
      for (int64_t i = 1; i < n - 1; i++) {
        C(0) = lmc_dadd(C(0), lmc_dmul(zi, lmc_dadd(C(i), lmc_dmul(zn1, C(n - 1 - i)))));
        zi = lmc_dmul(zi, z);
      }
      C(0) = lmc_ddiv(C(0), lmc_dsub(1, lmc_dmul(zn1, zn1)));
    } else {
      double zi = z, zn = zp, c0 = C(0);
      C(0) = lmc_dadd(C(0), lmc_dmul(zn, C(n - 1)));
      for (int64_t i = 1; i < n; i++) {
        C(0) = lmc_dadd(C(0), lmc_dmul(zi, lmc_dadd(C(i), lmc_dmul(zn, C(n - 1 - i)))));
        zi = lmc_dmul(zi, z);
      }
      C(0) = lmc_dmul(C(0), lmc_ddiv(z, lmc_dsub(1, lmc_dmul(zn, zn))));
      C(0) = lmc_dadd(C(0), c0);
    }
    for (int64_t i = 1; i < n; i++) C(i) = lmc_dadd(C(i), lmc_dmul(z, C(i - 1)));
    if (mirror)
      C(n - 1) = lmc_ddiv(lmc_dmul(lmc_dadd(lmc_dmul(z, C(n - 2)), C(n - 1)), z),
                          lmc_dsub(lmc_dmul(z, z), 1));
    else
      C(n - 1) = lmc_dmul(C(n - 1), lmc_ddiv(z, lmc_dsub(z, 1)));
    for (int64_t i = n - 2; i >= 0; i--) C(i) = lmc_dmul(z, lmc_dsub(C(i + 1), C(i)));
#undef C
  }
};

static void other_axes(int a, int *o1, int *o2)
{
  *o1 = a == 0 ? 1 : 0;
  *o2 = a == 2 ? 1 : 2;
}

/* The coefficients of every channel in scratch memory (*coef), laid out as
 * resample.c's spline_coefficients lays them out; src describes them. */
static cudaError_t rs_coefficients(lm_op_ctx *ctx, cudaStream_t s, const lm_tensor *in,
                                   const rs_walk &w, int64_t nch, const int64_t n[3],
                                   const int64_t ist[3], xf_padding pd, double **coef,
                                   rs_src *src, int *status)
{
  int64_t npad = pd == XF_PAD_BORDER ? XF_SPLINE_PREPAD : 0, L[3], cst[3];
  int ord[3] = {0, 1, 2};
  for (int a = 0; a < 3; a++) L[a] = n[a] + 2 * npad;
  for (int x = 0; x < 3; x++)
    for (int y = x + 1; y < 3; y++)
      if (llabs(ist[ord[y]]) > llabs(ist[ord[x]])) {
        int t = ord[x];
        ord[x] = ord[y];
        ord[y] = t;
      }
  cst[ord[2]] = 1;
  cst[ord[1]] = L[ord[2]];
  cst[ord[0]] = L[ord[2]] * L[ord[1]];
  int64_t vol = L[0] * L[1] * L[2];
  *coef = (double *)lmc_scratch_alloc(ctx, s, sizeof(double) * (size_t)(vol * nch));
  if (!*coef) {
    *status = LM_ENOMEM;
    return cudaSuccess;
  }
  rs_coef_fill_kernel fk;
  memset(&fk, 0, sizeof fk);
  fk.in = lm_tensor_data(in);
  fk.in_dt = lm_tensor_dtype(in);
  fk.w = w;
  fk.nch = nch;
  fk.vol = vol;
  fk.npad = npad;
  fk.c = *coef;
  for (int a = 0; a < 3; a++) {
    fk.L[a] = L[a];
    fk.cst[a] = cst[a];
    fk.n[a] = n[a];
    fk.ist[a] = ist[a];
  }
  cudaError_t e = lmc_for_each(s, vol * nch, fk);
  const double z = sqrt(3.0) - 2.0;
  for (int a = 0; a < 3 && e == cudaSuccess; a++) {
    if (L[a] < 2) continue;
    bool mirror = pd == XF_PAD_ZEROS;
    rs_coef_filter_kernel k;
    int o1, o2;
    other_axes(a, &o1, &o2);
    k.c = *coef;
    k.vol = vol;
    k.len = L[a];
    k.s = cst[a];
    k.L1 = L[o1];
    k.L2 = L[o2];
    k.st1 = cst[o1];
    k.st2 = cst[o2];
    k.z = z;
    k.gain = (1 - z) * (1 - 1 / z);
    k.zp = pow(z, (double)(mirror ? L[a] - 1 : L[a]));
    k.mirror = mirror;
    e = lmc_for_each(s, L[o1] * L[o2] * nch, k);
  }
  src->base = *coef;
  src->dt = LM_F64;
  src->vol = vol;
  for (int a = 0; a < 3; a++) src->st[a] = cst[a];
  return e;
}

/* ---- driver ---------------------------------------------------------------- */

static bool axis_aligned(const double m[3][4])
{
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 3; b++)
      if (a != b && m[a][b] != 0) return false;
  return true;
}

/* Tables of the three axes copied into one scratch block. */
static int rs_upload_tables(lm_op_ctx *ctx, cudaStream_t s, const double m[3][4],
                            const int64_t n[3], const int64_t mo[3], const xf_resample_spec *spec,
                            xf_grid grid, rs_tables *t, void **block)
{
  xf_axis_taps tab[3];
  memset(tab, 0, sizeof tab);
  int st = LM_OK;
  size_t bytes = 0;
  for (int a = 0; a < 3 && st >= 0; a++) {
    st = xf_axis_taps_build(&tab[a], mo[a], m[a][a], m[a][3], n[a], spec->interp,
                            spec->padding, grid);
    if (st < 0) st = lm_ctx_error(ctx, st, "out of memory for the tap tables");
    else bytes += (size_t)(tab[a].m * tab[a].k) * (sizeof(int64_t) + sizeof(double));
  }
  if (st >= 0) {
    *block = lmc_scratch_alloc(ctx, s, bytes);
    if (!*block) st = LM_ENOMEM;
  }
  char *p = (char *)*block;
  for (int a = 0; a < 3 && st >= 0; a++) {
    size_t cnt = (size_t)(tab[a].m * tab[a].k);
    t->k[a] = tab[a].k;
    t->idx[a] = (const int64_t *)p;
    st = lmc_copy_to_device(ctx, s, p, tab[a].idx, cnt * sizeof(int64_t));
    p += cnt * sizeof(int64_t);
    t->w[a] = (const double *)p;
    if (st >= 0) st = lmc_copy_to_device(ctx, s, p, tab[a].w, cnt * sizeof(double));
    p += cnt * sizeof(double);
  }
  for (int a = 0; a < 3; a++) xf_axis_taps_free(&tab[a]);
  return st;
}

extern "C" int lmc_resample(lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out,
                            const xf_resample_spec *spec)
{
  int nd = lm_tensor_ndim(in), nsp = spec->nsp;
  if (nsp < 1 || nsp > 3 || nd < nsp || lm_tensor_ndim(out) != nd)
    return lm_ctx_error(ctx, LM_ESHAPE, "resampling: bad dims");
  const int64_t *ish = lm_tensor_shape(in), *osh = lm_tensor_shape(out);
  const int64_t *ist = lm_tensor_strides(in), *ost = lm_tensor_strides(out);
  int lead = nd - nsp;
  for (int d = 0; d < lead; d++)
    if (ish[d] != osh[d]) return lm_ctx_error(ctx, LM_ESHAPE, "resampling: channel dims differ");
  if (lm_tensor_numel(out) == 0) return LM_OK;
  cudaStream_t s;
  int st = lmc_stream(ctx, &s);
  if (st < 0) return st;

  rs_walk w;
  memset(&w, 0, sizeof w);
  w.nd = nd;
  w.lead = lead;
  w.pad = 3 - nsp;
  int64_t nch = 1;
  for (int d = 0; d < nd; d++) {
    w.oshape[d] = osh[d];
    w.ostride[d] = ost[d];
    w.istride[d] = ist[d];
    if (d < lead) nch *= ish[d];
  }
  /* spatial dims padded in front to 3 with size-1 axes mapped to 0 */
  double m[3][4] = {{0}};
  int64_t n[3], sst[3], mo[3];
  for (int a = 0; a < 3; a++) {
    int d = a - (3 - nsp);
    if (d < 0) {
      n[a] = mo[a] = 1;
      sst[a] = 0;
      continue;
    }
    n[a] = ish[lead + d];
    sst[a] = ist[lead + d];
    mo[a] = osh[lead + d];
    for (int b = 0; b < nsp; b++) m[a][b + (3 - nsp)] = spec->m[d][b];
    m[a][3] = spec->m[d][3];
  }
  if (n[0] * n[1] * n[2] == 0) return lm_ctx_error(ctx, LM_ESHAPE, "resampling an empty input");

  rs_src src;
  memset(&src, 0, sizeof src);
  src.base = lm_tensor_data(in);
  src.dt = lm_tensor_dtype(in);
  for (int a = 0; a < 3; a++) src.st[a] = sst[a];
  double *coef = NULL;
  void *tables = NULL;
  cudaError_t e = cudaSuccess;
  bool cubic = spec->interp == XF_INTERP_CUBIC;
  if (cubic) e = rs_coefficients(ctx, s, in, w, nch, n, sst, spec->padding, &coef, &src, &st);
  int64_t total = lm_tensor_numel(out);
  if (st >= 0 && e == cudaSuccess && axis_aligned(m)) {
    rs_tables t;
    memset(&t, 0, sizeof t);
    st = rs_upload_tables(ctx, s, m, n, mo, spec, nsp == 3 ? spec->grid : XF_GRID_EXACT, &t,
                          &tables);
    /* the CPU's fast axis: the source's smallest stride among axes of more
     * than one sample */
    int f = 2;
    int64_t best = INT64_MAX;
    int64_t sn[3];
    for (int a = 0; a < 3; a++) sn[a] = cubic ? n[a] + 2 * (spec->padding == XF_PAD_BORDER ? XF_SPLINE_PREPAD : 0) : n[a];
    for (int a = 2; a >= 0; a--)
      if (sn[a] > 1 && llabs(src.st[a]) < best) {
        best = llabs(src.st[a]);
        f = a;
      }
    t.f = f;
    other_axes(f, &t.s, &t.md);
    if (st >= 0)
      e = lmc_for_each(s, total, rs_separable_kernel{w, src, t, lm_tensor_data(out),
                                                      (int)lm_tensor_dtype(out)});
  } else if (st >= 0 && e == cudaSuccess) {
    rs_general_kernel k;
    memset(&k, 0, sizeof k);
    k.w = w;
    k.src = src;
    memcpy(k.m, m, sizeof m);
    memcpy(k.n, n, sizeof n);
    k.npad = cubic && spec->padding == XF_PAD_BORDER ? XF_SPLINE_PREPAD : 0;
    k.ip = spec->interp;
    k.pd = spec->padding;
    k.out = lm_tensor_data(out);
    k.out_dt = lm_tensor_dtype(out);
    e = lmc_for_each(s, total, k);
  }
  lmc_scratch_free(ctx, s, tables);
  lmc_scratch_free(ctx, s, coef);
  if (e != cudaSuccess) return lmc_fail(ctx, "resampling kernel", e);
  return st;
}

/* ---- converting copy ------------------------------------------------------- */

struct rs_copy_kernel {
  const void *in;
  void *out;
  int in_dt, out_dt;
  int esize;  /* same dtype: bytes per element, copied as they are */
  lmc_dims d;
  LMC_HD void operator()(int64_t o) const
  {
    int64_t i = lmc_in_offset(d, o);
    if (!esize) {
      lmc_store_f64(out, o, out_dt, lmc_load_f64(in, i, in_dt));
      return;
    }
    switch (esize) {
    case 1: ((uint8_t *)out)[o] = ((const uint8_t *)in)[i]; break;
    case 2: ((uint16_t *)out)[o] = ((const uint16_t *)in)[i]; break;
    case 4: ((uint32_t *)out)[o] = ((const uint32_t *)in)[i]; break;
    default: ((uint64_t *)out)[o] = ((const uint64_t *)in)[i]; break;
    }
  }
};

extern "C" int lmc_resample_copy(lm_op_ctx *ctx, lm_tensor *dst, const lm_tensor *src)
{
  cudaStream_t s;
  int st = lmc_stream(ctx, &s);
  if (st < 0) return st;
  rs_copy_kernel k;
  memset(&k, 0, sizeof k);
  k.in = lm_tensor_data(src);
  k.out = lm_tensor_data(dst);
  k.in_dt = lm_tensor_dtype(src);
  k.out_dt = lm_tensor_dtype(dst);
  if (k.in_dt == k.out_dt) k.esize = (int)lm_dtype_size((lm_dtype)k.in_dt);
  k.d.ndim = lm_tensor_ndim(src);
  for (int d = 0; d < k.d.ndim; d++) {
    k.d.shape[d] = lm_tensor_shape(src)[d];
    k.d.in_stride[d] = lm_tensor_strides(src)[d];
    k.d.out_stride[d] = lm_tensor_strides(dst)[d];
  }
  cudaError_t e = lmc_for_each(s, lm_tensor_numel(dst), k);
  return e == cudaSuccess ? LM_OK : lmc_fail(ctx, "copy kernel", e);
}

/* ---- the ops --------------------------------------------------------------- */

extern "C" int lmc_nnunet_loop(lm_op_ctx *ctx, const xf_nnunet_loop *l);

static const xf_resample_backend lmc_backend = {lmc_resample, lmc_resample_copy, lmc_nnunet_loop};

/* The op's planning with this backend, then the output marked ready. */
static int rs_run(lm_op_ctx *ctx, int (*apply)(lm_op_ctx *, const xf_resample_backend *,
                                               lm_tensor **),
                  const char *what)
{
  cudaStream_t s;
  int st = lmc_stream(ctx, &s);
  if (st < 0) return st;
  lm_tensor *out = NULL;
  if ((st = apply(ctx, &lmc_backend, &out)) < 0) return st;
  return lmc_finish(ctx, s, cudaSuccess, what, &out, 1);
}

extern "C" int lmc_resize(lm_op_ctx *ctx) { return rs_run(ctx, xf_resize_apply, "Resize"); }

extern "C" int lmc_scale_by_resolution(lm_op_ctx *ctx)
{
  return rs_run(ctx, xf_sbr_apply, "ScaleByResolution");
}

extern "C" int lmc_restore_original_shape(lm_op_ctx *ctx)
{
  return rs_run(ctx, xf_restore_apply, "RestoreOriginalShape");
}
