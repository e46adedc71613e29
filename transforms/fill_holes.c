/* FillHoles (MONAI, semantics.md §9.2) and the border flood it shares with
 * scipy's binary_fill_holes. */
#include "fill_holes.h"

#include <stdlib.h>
#include <string.h>

#include "lumen.h"
#include "crop_box.h"
#include "xf_util.h"

/* A growable stack of voxel indices (depth-first flood: it holds only the
 * frontier's pending voxels, not the whole grid). */
typedef struct istack {
  int64_t *v;
  size_t n, cap;
} istack;

static int push(istack *s, int64_t x)
{
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4096;
    int64_t *v = realloc(s->v, cap * sizeof *v);
    if (!v) return LM_ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = x;
  return LM_OK;
}

int xf_flood_from_border(const uint8_t *grid, uint8_t bg, int nsp,
                         const int64_t *n, int connectivity,
                         uint8_t *reached)
{
  /* Work on the grid with a one-voxel wall around it (state 0), so that
   * neighbours never need a bounds check: 1 = bg not yet reached,
   * 2 = reached, 0 = wall or not bg. */
  int64_t p[3] = {1, 1, 1}, m[3] = {1, 1, 1}, total = 1, numel = 1;
  for (int d = 0; d < nsp; d++) {
    m[3 - nsp + d] = n[d];
    p[3 - nsp + d] = n[d] + 2;
    numel *= n[d];
  }
  memset(reached, 0, (size_t)numel);
  if (numel == 0) return LM_OK;
  total = p[0] * p[1] * p[2];
  uint8_t *st = calloc((size_t)total, 1);
  if (!st) return LM_ENOMEM;
  const int pad0 = nsp >= 3, pad1 = nsp >= 2;
  /* Neighbour offsets in the padded grid. */
  int64_t off[26];
  int noff = 0;
  for (int a = -pad0; a <= pad0; a++)
    for (int b = -pad1; b <= pad1; b++)
      for (int c = -1; c <= 1; c++) {
        int nz = (a != 0) + (b != 0) + (c != 0);
        if (nz == 0 || nz > connectivity) continue;
        off[noff++] = (a * p[1] + b) * p[2] + c;
      }
  istack s = {0};
  int rc = LM_OK;
  for (int64_t i = 0; i < m[0]; i++)
    for (int64_t j = 0; j < m[1]; j++) {
      const uint8_t *g = grid + (i * m[1] + j) * m[2];
      uint8_t *row = st + ((i + pad0) * p[1] + j + pad1) * p[2] + 1;
      bool edge = (pad0 && (i == 0 || i == m[0] - 1)) ||
                  (pad1 && (j == 0 || j == m[1] - 1));
      for (int64_t k = 0; k < m[2]; k++) {
        if (g[k] != bg) continue;
        if (edge || k == 0 || k == m[2] - 1) {
          row[k] = 2; /* touches the outside, which counts as reached */
          if (rc == LM_OK) rc = push(&s, row + k - st);
        } else {
          row[k] = 1;
        }
      }
    }
  while (rc == LM_OK && s.n > 0) {
    int64_t x = s.v[--s.n];
    for (int q = 0; q < noff; q++) {
      int64_t y = x + off[q];
      if (st[y] == 1) {
        st[y] = 2;
        if ((rc = push(&s, y)) != LM_OK) break;
      }
    }
  }
  free(s.v);
  if (rc == LM_OK)
    for (int64_t i = 0; i < m[0]; i++)
      for (int64_t j = 0; j < m[1]; j++) {
        const uint8_t *row = st + ((i + pad0) * p[1] + j + pad1) * p[2] + 1;
        uint8_t *r = reached + (i * m[1] + j) * m[2];
        for (int64_t k = 0; k < m[2]; k++) r[k] = row[k] == 2;
      }
  free(st);
  return rc;
}

int xf_binary_fill_holes(uint8_t *mask, int nsp, const int64_t *n,
                         int connectivity)
{
  int64_t numel = 1;
  for (int d = 0; d < nsp; d++) numel *= n[d];
  uint8_t *reached = malloc((size_t)(numel ? numel : 1));
  if (!reached) return LM_ENOMEM;
  int rc = xf_flood_from_border(mask, 0, nsp, n, connectivity, reached);
  if (rc == LM_OK)
    for (int64_t i = 0; i < numel; i++) mask[i] = !reached[i];
  free(reached);
  return rc;
}

/* ---- the FillHoles op ---- */

typedef struct fh_opts {
  int nsp, conn;
  int64_t nch;       /* channels (product of the leading dims) */
  int64_t vox;       /* voxels per channel */
  const int64_t *n;  /* spatial shape */
} fh_opts;

static int fh_prepare(lm_op_ctx *ctx, fh_opts *o)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  int nd = lm_tensor_ndim(in);
  o->nsp = xf_spatial_dims(in, 0);
  if (o->nsp < 1 || o->nsp > 3)
    return lm_ctx_error(ctx, LM_ESHAPE, "needs 1 to 3 spatial dims (got a "
                        "%d-d tensor)", nd);
  o->n = lm_tensor_shape(in) + nd - o->nsp;
  o->nch = 1;
  for (int d = 0; d < nd - o->nsp; d++) o->nch *= lm_tensor_shape(in)[d];
  o->vox = 1;
  for (int d = 0; d < o->nsp; d++) o->vox *= o->n[d];
  o->conn = o->nsp;
  if (lm_arg_is_set(ctx, "connectivity")) {
    int64_t c = lm_arg_int(ctx, "connectivity");
    if (c < 1 || c > o->nsp)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'connectivity' = %lld must "
                          "be 1..%d (1 = faces, %d = full)", (long long)c,
                          o->nsp, o->nsp);
    o->conn = (int)c;
  }
  return LM_OK;
}

static int fh_check(lm_op_ctx *ctx)
{
  fh_opts o;
  return fh_prepare(ctx, &o);
}

static bool applied(lm_op_ctx *ctx, int64_t label)
{
  if (!lm_arg_is_set(ctx, "applied_labels")) return true;
  int n = 0;
  const double *v = lm_arg_numbers(ctx, "applied_labels", &n);
  for (int i = 0; i < n; i++)
    if (v[i] == (double)label) return true;
  return false;
}

/* Fill the holes of label l in the label map lab (one channel): flood the
 * complement of l inside l's bounding box (everything outside the box is
 * connected to the border through non-l voxels, so the box's own border
 * may stand in for the image's). */
static int fill_label(const fh_opts *o, int32_t *lab, int32_t l,
                      const int64_t *lo, const int64_t *hi)
{
  int64_t bn[3] = {1, 1, 1}, full[3] = {1, 1, 1}, b0[3] = {0, 0, 0}, cnt = 1;
  for (int d = 0; d < o->nsp; d++) {
    bn[3 - o->nsp + d] = hi[d] - lo[d] + 1;
    b0[3 - o->nsp + d] = lo[d];
    full[3 - o->nsp + d] = o->n[d];
    cnt *= hi[d] - lo[d] + 1;
  }
  uint8_t *g = malloc((size_t)cnt * 2);
  if (!g) return LM_ENOMEM;
  uint8_t *reached = g + cnt;
  for (int64_t i = 0; i < bn[0]; i++)
    for (int64_t j = 0; j < bn[1]; j++) {
      const int32_t *src = lab + ((i + b0[0]) * full[1] + j + b0[1]) * full[2] + b0[2];
      uint8_t *dst = g + (i * bn[1] + j) * bn[2];
      for (int64_t k = 0; k < bn[2]; k++) dst[k] = src[k] != l;
    }
  int64_t bshape[3];
  for (int d = 0; d < o->nsp; d++) bshape[d] = hi[d] - lo[d] + 1;
  int rc = xf_flood_from_border(g, 1, o->nsp, bshape, o->conn, reached);
  if (rc == LM_OK)
    for (int64_t i = 0; i < bn[0]; i++)
      for (int64_t j = 0; j < bn[1]; j++) {
        int32_t *dst = lab + ((i + b0[0]) * full[1] + j + b0[1]) * full[2] + b0[2];
        const uint8_t *r = reached + (i * bn[1] + j) * bn[2];
        for (int64_t k = 0; k < bn[2]; k++)
          if (!r[k]) dst[k] = l;
      }
  free(g);
  return rc;
}

/* Bounding boxes of every value in [vmin, vmin + nv) (per spatial dim). */
static void label_boxes(const fh_opts *o, const int32_t *lab, int32_t vmin,
                        int64_t nv, int64_t *lo, int64_t *hi)
{
  const int nsp = o->nsp;
  for (int64_t v = 0; v < nv; v++)
    for (int d = 0; d < nsp; d++) {
      lo[v * 3 + d] = INT64_MAX;
      hi[v * 3 + d] = -1;
    }
  int64_t idx[3] = {0, 0, 0};
  for (int64_t p = 0; p < o->vox; p++) {
    int64_t v = (int64_t)lab[p] - vmin;
    for (int d = 0; d < nsp; d++) {
      if (idx[d] < lo[v * 3 + d]) lo[v * 3 + d] = idx[d];
      if (idx[d] > hi[v * 3 + d]) hi[v * 3 + d] = idx[d];
    }
    for (int d = nsp - 1; d >= 0; d--) {
      if (++idx[d] < o->n[d]) break;
      idx[d] = 0;
    }
  }
}

static int fh_run(lm_op_ctx *ctx)
{
  fh_opts o;
  lm_tensor *in = lm_ctx_input(ctx, 0), *dense = NULL, *out = NULL;
  int st = fh_prepare(ctx, &o);
  if (st < 0) return st;
  lm_engine *e = lm_ctx_engine(ctx);
  int nd = lm_tensor_ndim(in);
  if ((st = lm_tensor_new(e, LM_I32, nd, lm_tensor_shape(in), LM_CPU,
                          &dense)) < 0 ||
      (st = lm_tensor_copy(dense, in)) < 0) {
    lm_tensor_release(dense);
    return lm_ctx_error(ctx, st, "cannot make a dense int32 copy");
  }
  int32_t *lab = lm_tensor_data(dense);
  if (o.nch > 1) {
    /* One-hot: channel c is label c; each channel is filled on its own
     * (MONAI: img[c] = not flood(not img[c])). */
    uint8_t *g = malloc((size_t)o.vox * 2 + 1);
    if (!g) st = LM_ENOMEM;
    for (int64_t c = 1; st >= 0 && c < o.nch; c++) {
      if (!applied(ctx, c)) continue;
      int32_t *ch = lab + c * o.vox;
      for (int64_t p = 0; p < o.vox; p++) g[p] = ch[p] != 0;
      st = xf_flood_from_border(g, 0, o.nsp, o.n, o.conn, g + o.vox);
      for (int64_t p = 0; st >= 0 && p < o.vox; p++) ch[p] = !g[o.vox + p];
    }
    free(g);
  } else if (o.vox > 0) {
    int32_t vmin = lab[0], vmax = lab[0];
    for (int64_t p = 1; p < o.vox; p++) {
      if (lab[p] < vmin) vmin = lab[p];
      if (lab[p] > vmax) vmax = lab[p];
    }
    int64_t nv = (int64_t)vmax - vmin + 1;
    if (nv > (1 << 20)) {
      lm_tensor_release(dense);
      return lm_ctx_error(ctx, LM_EINVAL, "labels span %lld values (%d..%d); "
                          "at most 2^20 are supported", (long long)nv, vmin,
                          vmax);
    }
    int64_t *lo = malloc(sizeof(int64_t) * 6 * (size_t)nv);
    if (!lo) st = LM_ENOMEM;
    if (lo) {
      int64_t *hi = lo + 3 * nv;
      label_boxes(&o, lab, vmin, nv, lo, hi);
      /* Ascending label order, as MONAI iterates its set of small ints; a
       * later label sees the fills of the earlier ones. */
      for (int64_t v = 0; st >= 0 && v < nv; v++) {
        int32_t l = (int32_t)(v + vmin);
        if (l == 0 || hi[v * 3] < 0 || !applied(ctx, l)) continue;
        if (lm_ctx_cancelled(ctx)) st = LM_ECANCELED;
        else st = fill_label(&o, lab, l, lo + v * 3, hi + v * 3);
      }
      free(lo);
    }
  }
  if (st >= 0 && (st = lm_tensor_new_like(in, lm_tensor_dtype(in), LM_CPU,
                                           &out)) >= 0)
    st = lm_tensor_copy(out, dense);
  lm_tensor_release(dense);
  if (st < 0) {
    lm_tensor_release(out);
    if (st == LM_ECANCELED) return st;
    return lm_ctx_error(ctx, st, "hole filling failed (%s)",
                        lm_status_string(st));
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc fh_args[] = {
  {"applied_labels", LM_ARG_NUMBERS, "nil", "labels (one-hot: channels) to "
   "fill; nil = every non-zero label present"},
  {"connectivity", LM_ARG_INT, "nil", "neighbourhood of the background "
   "flood: 1 = faces ... number of spatial dims = full (the default)"},
};

const lm_op_desc lm_op_fill_holes = {
  .name = "FillHoles",
  .alias = NULL,
  .summary = "Fill the holes of each label (background not connected to "
             "the border)",
  .doc =
    "MONAI FillHoles (transforms/utils.py:fill_holes), the oracle. A label "
    "map (one channel, or no channel axis) or a one-hot tensor (C > 1, "
    "channel c = label c, channel 0 left alone). For each label l in "
    "applied_labels (default every non-zero label present), in ascending "
    "order: the voxels != l are flooded from the image border through the "
    "neighbourhood `connectivity` (scipy generate_binary_structure: 1 = "
    "faces, full by default, as MONAI); every voxel not reached becomes l. "
    "The flood passes through other labels, so an island of label k fully "
    "enclosed by l becomes l; a later label sees the earlier fills. "
    "Example: a 4-voxel 2-D diamond around a 0 centre is filled with "
    "connectivity 1 but not with the full (8-) neighbourhood, where the "
    "centre touches the outside diagonally. Spatial dims are the layout's "
    "trailing X/Y/Z (else the last 3). Labels must be integers of at most "
    "2^20 distinct values span. Output: same dtype, shape, geometry and "
    "trace (not a spatial op).",
  .inputs = "label",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "label",
  .args = fh_args,
  .nargs = (int)(sizeof fh_args / sizeof fh_args[0]),
  .flags = 0,
  .check = fh_check,
  .run_cpu = fh_run,
  .run_cuda = NULL,
};
