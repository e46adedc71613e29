/* MaskToPolygon: the outlines of a mask, slice by slice, as the polygons
 * AIAA's mask2polygon returns ([[], [[[x,y],...], ...], ...]). */
#include <stdlib.h>
#include <string.h>

#include "contour_trace.h"
#include "label_grid.h"
#include "polygon.h"

typedef struct mp_job {
  const int32_t *vol;   /* NIfTI order: i fastest */
  const lg_grid *g;
  int64_t step;         /* more_points + 1 */
  jt_buf *out;          /* one text per slice */
} mp_job;

/* One slice's scratch and output. */
typedef struct mp_work {
  const mp_job *j;
  jt_buf *b;
  int64_t npolys;
  int64_t *keep;        /* scratch: kept vertices, 2 per point */
  int64_t keep_cap;
} mp_work;

static int64_t run_len(const int32_t *a, const int32_t *b)
{
  int64_t dx = llabs((int64_t)b[0] - a[0]), dy = llabs((int64_t)b[1] - a[1]);
  return dx > dy ? dx : dy;
}

/* The vertices of one border: OpenCV's turning points (pts, n of them), or
 * every step-th pixel of the whole border when that keeps at least 3
 * vertices and fewer than the turning points.  Between two turning points
 * the border is a straight 8-connected run, so the pixels are rebuilt from
 * them. */
static int mp_sink(const int32_t *pts, int64_t n, void *arg)
{
  mp_work *w = arg;
  int64_t total = 0;
  for (int64_t k = 0; n > 1 && k < n; k++)
    total += run_len(pts + 2 * k, pts + 2 * ((k + 1) % n));
  if (n == 1) total = 1;
  int64_t nsamp = (total + w->j->step - 1) / w->j->step;
  bool sample = nsamp >= 3 && nsamp < n;
  int64_t nkeep = sample ? nsamp : n;
  if (nkeep > w->keep_cap) {
    int64_t *q = realloc(w->keep, sizeof *q * (size_t)(2 * nkeep));
    if (!q) return LM_ENOMEM;
    w->keep = q;
    w->keep_cap = nkeep;
  }
  if (!sample) {
    for (int64_t k = 0; k < 2 * n; k++) w->keep[k] = pts[k];
  } else {
    int64_t pos = 0, kept = 0;  /* border pixel index of pts[k] */
    for (int64_t k = 0; k < n && kept < nkeep; k++) {
      const int32_t *a = pts + 2 * k, *b = pts + 2 * ((k + 1) % n);
      int64_t len = run_len(a, b);
      int sx = (b[0] > a[0]) - (b[0] < a[0]), sy = (b[1] > a[1]) - (b[1] < a[1]);
      /* The kept pixels of this run: indices kept * step in [pos, pos+len). */
      for (; kept < nkeep && kept * w->j->step < pos + len; kept++) {
        int64_t t = kept * w->j->step - pos;
        w->keep[2 * kept] = a[0] + sx * t;
        w->keep[2 * kept + 1] = a[1] + sy * t;
      }
      pos += len;
    }
  }
  jt_buf *b = w->b;
  jt_raw(b, w->npolys++ ? ",[" : "[");
  for (int64_t k = 0; k < nkeep; k++) {
    jt_raw(b, k ? ",[" : "[");
    jt_int(b, w->keep[2 * k]);
    jt_char(b, ',');
    jt_int(b, w->keep[2 * k + 1]);
    jt_char(b, ']');
  }
  jt_char(b, ']');
  return b->oom ? LM_ENOMEM : LM_OK;
}

static int mp_slices(int64_t begin, int64_t end, void *arg)
{
  mp_job *j = arg;
  const int64_t ni = j->g->n[0], nj = j->g->n[1];
  /* The slice as an image of rows i and columns j (x = j, y = i) with a
   * one-pixel frame of 0, as contour_trace wants. */
  const int64_t w = nj + 2, h = ni + 2;
  int8_t *img = malloc((size_t)(w * h));
  int32_t *pts = malloc(sizeof *pts * (size_t)(2 * (w * h + 1)));
  mp_work wk = {j, NULL, 0, NULL, 0};
  int st = img && pts ? LM_OK : LM_ENOMEM;
  for (int64_t k = begin; k < end && st >= 0; k++) {
    const int32_t *s = j->vol + k * ni * nj;
    jt_buf *b = &j->out[k];
    wk.b = b;
    wk.npolys = 0;
    jt_char(b, '[');
    bool any = false;
    for (int64_t p = 0; p < ni * nj && !any; p++) any = s[p] != 0;
    if (any) {
      memset(img, 0, (size_t)(w * h));
      for (int64_t i = 0; i < ni; i++)
        for (int64_t jj = 0; jj < nj; jj++)
          img[(i + 1) * w + jj + 1] = s[i + jj * ni] != 0;
      st = ct_find_external(img, (int)w, (int)h, -1, -1, pts, mp_sink, &wk);
    }
    jt_char(b, ']');
    if (b->oom) st = LM_ENOMEM;
  }
  free(img);
  free(pts);
  free(wk.keep);
  return st;
}

static int mp_check(lm_op_ctx *ctx)
{
  lg_grid g;
  int st = lg_grid_of(ctx, lm_ctx_input(ctx, 0), "mask", &g);
  if (st < 0) return st;
  int64_t m = lm_arg_int(ctx, "more_points");
  if (m < 0 || m > 1000000)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'more_points' = %lld: must "
                        "be 0..1000000", (long long)m);
  if (g.n[0] + 2 > INT32_MAX / 4 || g.n[1] + 2 > INT32_MAX / 4 ||
      (g.n[0] + 2) * (g.n[1] + 2) > INT32_MAX / 4)
    return lm_ctx_error(ctx, LM_EUNSUPPORTED, "mask slices of %lld x %lld "
                        "are too large", (long long)g.n[0], (long long)g.n[1]);
  return LM_OK;
}

static int mp_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0);
  lg_grid g;
  int st = mp_check(ctx);
  if (st < 0) return st;
  lg_grid_of(ctx, in, "mask", &g);
  mp_job j = {NULL, &g, lm_arg_int(ctx, "more_points") + 1, NULL};
  int32_t *vol = malloc(sizeof *vol * (size_t)(g.numel ? g.numel : 1));
  j.out = calloc((size_t)g.n[2], sizeof *j.out);
  jt_buf all;
  jt_init(&all);
  if (!vol || !j.out) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  if ((st = lg_load_int32(ctx, in, &g, vol)) < 0) goto done;
  j.vol = vol;
  st = lm_parallel_for(lm_ctx_engine(ctx), ctx, g.n[2], 1, mp_slices, &j);
  if (st < 0) {
    if (st == LM_ENOMEM) st = lm_ctx_error(ctx, st, "out of memory");
    goto done;
  }
  jt_char(&all, '[');
  for (int64_t k = 0; k < g.n[2]; k++) {
    if (k) jt_char(&all, ',');
    jt_raw(&all, j.out[k].s);
  }
  jt_char(&all, ']');
  lm_params *res = lm_ctx_results(ctx);
  if (all.oom || !res || lm_params_set_json(res, "polygons", all.s) < 0) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "cannot store the results");
    goto done;
  }
  st = LM_OK;
done:
  if (j.out)
    for (int64_t k = 0; k < g.n[2]; k++) jt_free(&j.out[k]);
  free(j.out);
  free(vol);
  jt_free(&all);
  return st;
}

static const lm_arg_desc mp_args[] = {
  {"more_points", LM_ARG_INT, "0", "vertex spacing: a border longer than "
   "its turning points need is sampled every more_points + 1 border pixels "
   "(AIAA clients send 10); 0 = the exact outline (the turning points)"},
};

const lm_op_desc lm_op_mask_to_polygon = {
  .name = "MaskToPolygon",
  .alias = NULL,
  .summary = "Outline polygons of a mask per slice along the last spatial "
             "axis, in the shape of AIAA's mask2polygon reply",
  .doc =
    "For each slice k along the last spatial axis, the outer border of each "
    "8-connected region of nonzero voxels, traced as OpenCV "
    "findContours(RETR_EXTERNAL) traces it (the tracer behind Contours: a "
    "border starts at its top-most, then left-most pixel and runs "
    "counter-clockwise on screen; holes are not returned, so a polygon "
    "covers its region with the holes filled, the background being "
    "4-connected; regions inside a hole of another are skipped). Vertices are pixel centres [x, y] with the slice "
    "seen as a numpy array m[:, :, k] of the tensor's logical index: x = the "
    "column (j, the second spatial index), y = the row (i, the first), "
    "which is the convention of AIAA's clients (MITK's SmartPoly reads x as "
    "ITK index[1]; fixpolygon's 2-D polygons are [col, row] of the PNG).\n"
    "Vertices of a border: with s = more_points + 1, the border pixels "
    "(OpenCV CHAIN_APPROX_NONE order) at positions 0, s, 2s, ... from its "
    "start when that gives at least 3 vertices and "
    "fewer than the border's turning points (CHAIN_APPROX_SIMPLE); "
    "otherwise the turning points, which draw the exact outline (small "
    "regions, lines, single pixels and straight-sided shapes keep their "
    "exact outline). Clara's algorithm is not public; its sample reply for "
    "more_points = 10 has vertices 11 border pixels apart, which this rule "
    "reproduces. more_points = 0 gives the turning points everywhere, and "
    "FixPolygon with no move then rasterises the mask back exactly (holes "
    "filled).\n"
    "Result 'polygons' (JSON; a table in Lua): [[poly, ...] for each "
    "slice], poly = [[x, y], ...], an empty list for a slice without "
    "foreground: exactly AIAA's plain-JSON mask2polygon reply. A 2-D mask "
    "gives a list with one slice. Input: (X,Y,Z), (1,X,Y,Z), (X,Y) or "
    "(1,X,Y), any dtype (converted as Cast converts to int32); no tensor "
    "output.",
  .inputs = "mask",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "",
  .args = mp_args,
  .nargs = (int)(sizeof mp_args / sizeof mp_args[0]),
  .flags = 0,
  .check = mp_check,
  .run_cpu = mp_run,
  .run_cuda = NULL,
};
