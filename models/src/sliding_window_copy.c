/* The data movement of SlidingWindowInfer: windows of the image into the
 * network's input (through the padding rule, flipped for mirroring, axes
 * reversed for ZYX networks), mirrored predictions back into the window's
 * frame, and weighted predictions into the output.  Each kernel works on
 * rows along one axis and spreads the rows over the compute threads. */
#include <stdlib.h>

#include "sliding_window.h"
#include "../../transforms/xf_util.h"

/* Rows per parallel chunk: about 16k elements. */
static int64_t row_grain(int64_t len)
{
  int64_t g = 16384 / (len > 0 ? len : 1);
  return g < 1 ? 1 : g;
}

sw_layout sw_network_layout(const sw_setup *s, int64_t channels)
{
  int64_t ext[LM_MAX_DIMS], st[LM_MAX_DIMS];
  int nd = s->model_ndim;
  ext[0] = 1;
  ext[1] = channels;
  for (int d = 0; d < s->nsp; d++)
    if (s->model_axis[d] >= 0) ext[s->model_axis[d]] = s->roi[d];
  st[nd - 1] = 1;
  for (int k = nd - 2; k >= 0; k--) st[k] = st[k + 1] * ext[k + 1];
  sw_layout l = {.c = st[1], .b = st[0]};
  for (int d = 0; d < s->nsp; d++)
    l.axis[d] = s->model_axis[d] >= 0 ? st[s->model_axis[d]] : 0;
  return l;
}

sw_layout sw_window_layout(const sw_setup *s, int64_t channels)
{
  sw_layout l = {.c = 1};
  for (int d = s->nsp - 1; d >= 0; d--) {
    l.axis[d] = l.c;
    l.c *= s->roi[d];
  }
  l.b = l.c * channels;
  return l;
}

/* Window w's starts on the padded grid. */
static void window_start(const sw_setup *s, const sw_grid *g, int64_t w,
                         int64_t *start)
{
  for (int d = s->nsp - 1; d >= 0; d--) {
    start[d] = g->starts[d][w % g->count[d]];
    w /= g->count[d];
  }
}

/* ---- gather ------------------------------------------------------------- */

typedef struct gather_job {
  const sw_setup *s;
  const sw_grid *g;
  lm_tensor *x;
  float *dst;
  sw_layout dl;
  int64_t first;
  unsigned flip;
  int row_axis;                /* the network's last (fastest) axis */
  int64_t rows_per_window;     /* per channel */
} gather_job;

/* One row of the window (window coordinates 0..len-1 along the row axis,
 * before any flip) from the image row at src (element offset of its voxel
 * 0), through the padding rule. */
static void read_row(const gather_job *j, int64_t src, int64_t q0,
                     float *row)
{
  const sw_setup *s = j->s;
  lm_tensor *x = j->x;
  int ra = j->row_axis;
  lm_dtype dt = lm_tensor_dtype(x);
  int64_t esz = (int64_t)lm_dtype_size(dt);
  int64_t step = lm_tensor_strides(x)[ra + 1];
  const char *base = (const char *)lm_tensor_data(x) + src * esz;
  int64_t len = s->roi[ra], n = s->n[ra];
  int64_t lo = q0 < 0 ? -q0 : 0;                  /* first voxel inside */
  int64_t hi = n - q0 < len ? n - q0 : len;       /* past the last inside */
  if (hi > lo)
    xf_load_f32(base + (q0 + lo) * step * esz, step * esz, dt, row + lo,
                hi - lo);
  for (int64_t w = 0; w < len; w++) {
    if (w >= lo && w < hi) continue;
    int64_t q = sw_pad_index(s->pad, q0 + w, n);
    if (q < 0) row[w] = (float)s->cval;
    else xf_load_f32(base + q * step * esz, esz, dt, row + w, 1);
  }
}

static int gather_rows(int64_t begin, int64_t end, void *arg)
{
  const gather_job *j = arg;
  const sw_setup *s = j->s;
  const int64_t *xs = lm_tensor_strides(j->x);
  int ra = j->row_axis;
  int64_t len = s->roi[ra];
  float *row = malloc(sizeof(float) * (size_t)len);
  if (!row) return LM_ENOMEM;
  int64_t per_b = s->channels * j->rows_per_window;
  for (int64_t r = begin; r < end; r++) {
    int64_t b = r / per_b, c = r % per_b / j->rows_per_window;
    int64_t k = r % j->rows_per_window;
    int64_t start[SW_MAX_SP];
    window_start(s, j->g, j->first + b, start);
    /* window coordinates u of the other axes, C order; the image voxel a
     * flipped coordinate reads */
    int64_t dst = b * j->dl.b + c * j->dl.c, src = c * xs[0];
    bool outside = false;
    for (int d = s->nsp - 1; d >= 0; d--) {
      if (d == ra) continue;
      int64_t u = k % s->roi[d];
      k /= s->roi[d];
      dst += u * j->dl.axis[d];
      int64_t w = (j->flip >> d & 1) ? s->roi[d] - 1 - u : u;
      int64_t q = sw_pad_index(s->pad, start[d] + w - j->g->pad_before[d],
                            s->n[d]);
      if (q < 0) outside = true;
      else src += q * xs[d + 1];
    }
    if (outside)
      for (int64_t w = 0; w < len; w++) row[w] = (float)s->cval;
    else
      read_row(j, src, start[ra] - j->g->pad_before[ra], row);
    float *out = j->dst + dst;
    int64_t step = j->dl.axis[ra];
    if (j->flip >> ra & 1)
      for (int64_t u = 0; u < len; u++) out[u * step] = row[len - 1 - u];
    else
      for (int64_t u = 0; u < len; u++) out[u * step] = row[u];
  }
  free(row);
  return LM_OK;
}

int sw_gather(lm_op_ctx *ctx, const sw_setup *s, const sw_grid *g,
              lm_tensor *x, int64_t first, int64_t nb, unsigned flip,
              float *dst)
{
  gather_job j = {.s = s, .g = g, .x = x, .dst = dst, .first = first,
                  .flip = flip, .row_axis = s->nsp - 1,
                  .dl = sw_network_layout(s, s->channels)};
  for (int d = 0; d < s->nsp; d++)
    if (s->model_axis[d] == s->model_ndim - 1) j.row_axis = d;
  j.rows_per_window = 1;
  for (int d = 0; d < s->nsp; d++)
    if (d != j.row_axis) j.rows_per_window *= s->roi[d];
  return lm_parallel_for(lm_ctx_engine(ctx), ctx,
                         nb * s->channels * j.rows_per_window,
                         row_grain(s->roi[j.row_axis]), gather_rows, &j);
}

/* ---- mirrored predictions back into the window frame -------------------- */

typedef struct unflip_job {
  const sw_setup *s;
  const float *pred;
  sw_layout pl;
  float *acc;
  int64_t cout, rows_per_c;
  unsigned flip;
  bool first;
} unflip_job;

static int unflip_rows(int64_t begin, int64_t end, void *arg)
{
  const unflip_job *j = arg;
  const sw_setup *s = j->s;
  int last = s->nsp - 1;
  int64_t len = s->roi[last], step = j->pl.axis[last];
  bool flip_row = j->flip >> last & 1;
  for (int64_t r = begin; r < end; r++) {
    int64_t bc = r / j->rows_per_c, k = r % j->rows_per_c;
    int64_t src = bc / j->cout * j->pl.b + bc % j->cout * j->pl.c;
    for (int d = last - 1; d >= 0; d--) {
      int64_t u = k % s->roi[d];
      k /= s->roi[d];
      src += ((j->flip >> d & 1) ? s->roi[d] - 1 - u : u) * j->pl.axis[d];
    }
    /* acc is C order over [B, C_out, roi...]: row r is contiguous */
    float *a = j->acc + r * len;
    const float *p = j->pred + src;
    for (int64_t u = 0; u < len; u++) {
      float v = p[(flip_row ? len - 1 - u : u) * step];
      a[u] = j->first ? v : a[u] + v;
    }
  }
  return LM_OK;
}

int sw_unflip_add(lm_op_ctx *ctx, const sw_setup *s, const float *pred,
                  int64_t cout, int64_t nb, unsigned flip, bool first,
                  float *acc)
{
  unflip_job j = {.s = s, .pred = pred, .pl = sw_network_layout(s, cout),
                  .acc = acc, .cout = cout, .flip = flip, .first = first,
                  .rows_per_c = 1};
  for (int d = 0; d < s->nsp - 1; d++) j.rows_per_c *= s->roi[d];
  return lm_parallel_for(lm_ctx_engine(ctx), ctx, nb * cout * j.rows_per_c,
                         row_grain(s->roi[s->nsp - 1]), unflip_rows, &j);
}

/* ---- scatter ------------------------------------------------------------ */

typedef struct scatter_job {
  const sw_setup *s;
  const float *pred;           /* channel 0 of one window; NULL: weights */
  sw_layout pl;
  float scale;
  const float *w;              /* weight map, C order over roi */
  float *dst;                  /* out (C_out, n...) or count (n...) */
  int64_t lo[SW_MAX_SP], hi[SW_MAX_SP];  /* window part inside the image */
  int64_t off[SW_MAX_SP];      /* image coordinate of window voxel 0 */
  int row_axis;                /* the last axis longer than 1 */
  int64_t rows_per_c;
} scatter_job;

static int scatter_rows(int64_t begin, int64_t end, void *arg)
{
  const scatter_job *j = arg;
  const sw_setup *s = j->s;
  int ra = j->row_axis;
  int64_t nstride[SW_MAX_SP], wstride[SW_MAX_SP], vox = 1, wv = 1;
  for (int d = s->nsp - 1; d >= 0; d--) {
    nstride[d] = vox;
    wstride[d] = wv;
    vox *= s->n[d];
    wv *= s->roi[d];
  }
  int64_t len = j->hi[ra] - j->lo[ra];
  int64_t ws = wstride[ra], ns = nstride[ra], ps = j->pl.axis[ra];
  for (int64_t r = begin; r < end; r++) {
    int64_t c = r / j->rows_per_c, k = r % j->rows_per_c;
    int64_t o = c * vox, wi = 0, p = c * j->pl.c;
    for (int d = s->nsp - 1; d >= 0; d--) {
      int64_t u = j->lo[d];
      if (d != ra) {
        int64_t span = j->hi[d] - j->lo[d];
        u += k % span;
        k /= span;
      }
      o += (j->off[d] + u) * nstride[d];
      wi += u * wstride[d];
      p += u * j->pl.axis[d];
    }
    const float *w = j->w + wi;
    float *dst = j->dst + o;
    if (!j->pred) {
      for (int64_t u = 0; u < len; u++) dst[u * ns] += w[u * ws];
      continue;
    }
    /* MONAI: out += pred * w; nnU-Net: out += (pred / 2^k) * w (a power of
     * two, so the multiply by scale rounds the same) */
    const float *pr = j->pred + p;
    for (int64_t u = 0; u < len; u++)
      dst[u * ns] += (pr[u * ps] * j->scale) * w[u * ws];
  }
  return LM_OK;
}

/* The part of window `win` inside the image; returns the rows per channel. */
static int64_t scatter_region(const sw_setup *s, const sw_grid *g,
                              int64_t win, scatter_job *j)
{
  int64_t start[SW_MAX_SP], rows = 1;
  window_start(s, g, win, start);
  j->row_axis = s->nsp - 1;
  for (int d = s->nsp - 1; d >= 0; d--)
    if (s->roi[d] > 1) {
      j->row_axis = d;
      break;
    }
  for (int d = 0; d < s->nsp; d++) {
    j->off[d] = start[d] - g->pad_before[d];
    j->lo[d] = j->off[d] < 0 ? -j->off[d] : 0;
    j->hi[d] = s->n[d] - j->off[d] < s->roi[d] ? s->n[d] - j->off[d]
                                               : s->roi[d];
    if (d != j->row_axis) rows *= j->hi[d] - j->lo[d];
  }
  j->rows_per_c = rows;
  return rows;
}

int sw_scatter(lm_op_ctx *ctx, const sw_setup *s, const sw_grid *g,
               int64_t win, const float *pred, const sw_layout *pl,
               float scale, const float *w, float *out, int64_t cout)
{
  scatter_job j = {.s = s, .pred = pred, .pl = *pl, .scale = scale, .w = w,
                   .dst = out};
  int64_t rows = scatter_region(s, g, win, &j);
  return lm_parallel_for(lm_ctx_engine(ctx), ctx, rows * cout,
                         row_grain(j.hi[j.row_axis] - j.lo[j.row_axis]),
                         scatter_rows, &j);
}

int sw_scatter_weights(lm_op_ctx *ctx, const sw_setup *s, const sw_grid *g,
                       int64_t win, const float *w, float *count)
{
  scatter_job j = {.s = s, .w = w, .dst = count};
  int64_t rows = scatter_region(s, g, win, &j);
  return lm_parallel_for(lm_ctx_engine(ctx), ctx, rows,
                         row_grain(j.hi[j.row_axis] - j.lo[j.row_axis]),
                         scatter_rows, &j);
}
