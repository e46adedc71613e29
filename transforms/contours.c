/* Contours: per 2-D slice and label, the outer contours as OpenCV
 * findContours(RETR_EXTERNAL, CHAIN_APPROX_SIMPLE) gives them, each placed
 * right or left of the midline in world space (semantics.md §9.3, issue 3
 * item 6). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contour_trace.h"
#include "json_text.h"
#include "label_grid.h"
#include "xf_util.h"

/* Label values are indexed through a table over their range. */
#define CT_MAX_RANGE (1 << 22)

typedef struct ct_contour {
  int32_t label_idx;
  int32_t slice;
  char side;            /* 'r' or 'l' */
  int64_t first, n;     /* points [first, first + n) of the slice's buffer */
} ct_contour;

/* What one slice found. */
typedef struct ct_slice {
  ct_contour *c;
  int64_t nc, capc;
  int32_t *pts;
  int64_t npts, cappts;
  bool oom;
} ct_slice;

typedef struct ct_job {
  const int32_t *vol;   /* labels in NIfTI order */
  const lg_grid *g;
  int axis, u, v;       /* slice axis; x runs along u, y along v */
  int64_t w, h;         /* slice size: w along u (x), h along v (y) */
  int32_t lo;           /* smallest label value */
  const int32_t *index; /* value - lo -> label index or -1 */
  int64_t range;        /* entries of index */
  const int32_t *values;/* label index -> value */
  int nlabels;
  const double *A;      /* affine */
  double midline;
  ct_slice *slices;
} ct_job;

/* Per-thread scratch of one slice. */
typedef struct ct_work {
  const ct_job *j;
  ct_slice *out;
  int32_t slice;
  int32_t label_idx;
} ct_work;

static bool grow(void **p, int64_t *cap, int64_t need, size_t esz)
{
  if (need <= *cap) return true;
  int64_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, (size_t)c * esz);
  if (!q) return false;
  *p = q;
  *cap = c;
  return true;
}

/* Voxel (i, j, k) of slice point (x, y). */
static void slice_to_voxel(const ct_job *j, double x, double y, int32_t s,
                           double ijk[3])
{
  ijk[j->axis] = s;
  ijk[j->u] = x;
  ijk[j->v] = y;
}

/* The side of a contour: its centroid (the polygon's area centroid through
 * the pixel centres; the mean of its points when the area is 0: a line or a
 * single pixel) mapped to world x, against the midline. */
static char contour_side(const ct_job *j, const int32_t *p, int64_t n,
                         int32_t s)
{
  double a2 = 0, cx = 0, cy = 0, mx = 0, my = 0;
  for (int64_t k = 0; k < n; k++) {
    double x0 = p[2 * k], y0 = p[2 * k + 1];
    double x1 = p[2 * ((k + 1) % n)], y1 = p[2 * ((k + 1) % n) + 1];
    double cr = x0 * y1 - x1 * y0;
    a2 += cr;
    cx += (x0 + x1) * cr;
    cy += (y0 + y1) * cr;
    mx += x0;
    my += y0;
  }
  double x, y;
  if (a2 != 0) {
    x = cx / (3 * a2);
    y = cy / (3 * a2);
  } else {
    x = mx / (double)n;
    y = my / (double)n;
  }
  double ijk[3], w[3];
  slice_to_voxel(j, x, y, s, ijk);
  lg_world(j->A, ijk[0], ijk[1], ijk[2], w);
  return w[0] >= j->midline ? 'r' : 'l';
}

static int ct_sink(const int32_t *pts, int64_t n, void *arg)
{
  ct_work *wk = arg;
  ct_slice *o = wk->out;
  if (!grow((void **)&o->c, &o->capc, o->nc + 1, sizeof *o->c) ||
      !grow((void **)&o->pts, &o->cappts, o->npts + 2 * n, sizeof *o->pts)) {
    o->oom = true;
    return LM_ENOMEM;
  }
  memcpy(o->pts + o->npts, pts, sizeof *pts * (size_t)(2 * n));
  o->c[o->nc++] = (ct_contour){wk->label_idx, wk->slice,
                               contour_side(wk->j, pts, n, wk->slice),
                               o->npts / 2, n};
  o->npts += 2 * n;
  return LM_OK;
}

/* One slice: bounding box of every label, then the OpenCV scan on each
 * label's box with a 1-pixel frame. */
static int ct_one_slice(const ct_job *j, int32_t s, int64_t *box,
                        int32_t *img_vals, int8_t **mask, int64_t *mask_cap,
                        int32_t **pts, int64_t *pts_cap)
{
  const int64_t w = j->w, h = j->h;
  const int64_t stride[3] = {1, j->g->n[0], j->g->n[0] * j->g->n[1]};
  const int32_t *base = j->vol + s * stride[j->axis];
  for (int l = 0; l < j->nlabels; l++) {
    box[4 * l] = w;
    box[4 * l + 1] = h;
    box[4 * l + 2] = -1;
    box[4 * l + 3] = -1;
  }
  for (int64_t y = 0; y < h; y++)
    for (int64_t x = 0; x < w; x++) {
      int32_t val = base[x * stride[j->u] + y * stride[j->v]];
      img_vals[y * w + x] = val;
      int64_t r = (int64_t)val - j->lo;
      if (r < 0 || r >= j->range) continue;
      int l = j->index[r];
      if (l < 0) continue;
      int64_t *b = box + 4 * l;
      if (x < b[0]) b[0] = x;
      if (y < b[1]) b[1] = y;
      if (x > b[2]) b[2] = x;
      if (y > b[3]) b[3] = y;
    }
  for (int l = 0; l < j->nlabels; l++) {
    const int64_t *b = box + 4 * l;
    if (b[2] < 0) continue;
    int64_t bw = b[2] - b[0] + 3, bh = b[3] - b[1] + 3;
    if (!grow((void **)mask, mask_cap, bw * bh, 1) ||
        !grow((void **)pts, pts_cap, 2 * (bw * bh + 1), sizeof **pts))
      return LM_ENOMEM;
    const int32_t want = j->values[l];
    int8_t *m = *mask;
    memset(m, 0, (size_t)(bw * bh));
    for (int64_t y = b[1]; y <= b[3]; y++) {
      const int32_t *row = img_vals + y * w;
      int8_t *mrow = m + (y - b[1] + 1) * bw + 1 - b[0];
      for (int64_t x = b[0]; x <= b[2]; x++) mrow[x] = row[x] == want;
    }
    ct_work wk = {j, &j->slices[s], s, l};
    int st = ct_find_external(m, (int)bw, (int)bh, (int)b[0] - 1,
                              (int)b[1] - 1, *pts, ct_sink, &wk);
    if (st < 0) return st;
  }
  return LM_OK;
}

static int ct_slices(int64_t begin, int64_t end, void *arg)
{
  ct_job *j = arg;
  int64_t *box = malloc(sizeof *box * 4 * (size_t)(j->nlabels ? j->nlabels : 1));
  int32_t *vals = malloc(sizeof *vals * (size_t)(j->w * j->h > 0 ? j->w * j->h : 1));
  int8_t *mask = NULL;
  int32_t *pts = NULL;
  int64_t mask_cap = 0, pts_cap = 0;
  int st = box && vals ? LM_OK : LM_ENOMEM;
  for (int64_t s = begin; s < end && st >= 0; s++)
    st = ct_one_slice(j, (int32_t)s, box, vals, &mask, &mask_cap, &pts,
                      &pts_cap);
  free(box);
  free(vals);
  free(mask);
  free(pts);
  return st;
}

/* ---- options ---- */

typedef struct ct_opts {
  int axis;
  double *labels;   /* explicit labels or NULL */
  int nlabels;
  jt_names names;
  const char *path;
  bool has_midline;
  double midline;
} ct_opts;

static void ct_opts_free(ct_opts *o)
{
  free(o->labels);
  jt_names_free(&o->names);
}

static int ct_options(lm_op_ctx *ctx, const lg_grid *g, ct_opts *o)
{
  memset(o, 0, sizeof *o);
  o->axis = 2;
  if (g->nsp == 3) {
    int64_t a = lm_arg_int(ctx, "axis");
    if (a < -3 || a > 2)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'axis' = %lld: must be a "
                          "spatial axis 0, 1 or 2 (negative counts from the "
                          "end)", (long long)a);
    o->axis = (int)(a < 0 ? a + 3 : a);
  }
  if (lm_arg_is_set(ctx, "labels")) {
    int n;
    const double *v = lm_arg_numbers(ctx, "labels", &n);
    for (int i = 0; i < n; i++)
      if (v[i] != floor(v[i]) || fabs(v[i]) > 2147483647.0 || v[i] == 0)
        return lm_ctx_error(ctx, LM_EINVAL, "option 'labels': entry %d (%g) "
                            "is not a nonzero integer label", i + 1, v[i]);
    o->labels = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!o->labels) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    memcpy(o->labels, v, sizeof *v * (size_t)n);
    o->nlabels = n;
  }
  const char *names = lm_arg_string(ctx, "names");
  if (names) {
    const char *p = names;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    char *text = NULL, err[160];
    if (*p != '{') {
      text = jt_read_file(names);
      if (!text)
        return lm_ctx_error(ctx, LM_EIO, "option 'names': cannot read '%s': "
                            "%s", names, strerror(errno));
    }
    bool ok = jt_names_parse(text ? text : names, &o->names, err, sizeof err);
    free(text);
    if (!ok && *p != '{')
      return lm_ctx_error(ctx, LM_EINVAL, "option 'names': file '%s': %s "
                          "(expected a JSON object {\"1\": \"name\", ...})",
                          names, err);
    if (!ok)
      return lm_ctx_error(ctx, LM_EINVAL, "option 'names': %s (expected a "
                          "JSON object {\"1\": \"name\", ...})", err);
  }
  o->path = lm_arg_string(ctx, "path");
  if (o->path && !*o->path)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'path' is empty");
  o->has_midline = lm_arg_is_set(ctx, "midline");
  if (o->has_midline) o->midline = lm_arg_number(ctx, "midline");
  return LM_OK;
}

static int ct_check(lm_op_ctx *ctx)
{
  lg_grid g;
  ct_opts o;
  int st = lg_grid_of(ctx, lm_ctx_input(ctx, 0), "label", &g);
  if (st < 0) return st;
  st = ct_options(ctx, &g, &o);
  ct_opts_free(&o);
  return st;
}

/* ---- the op ---- */

static int ct_run(lm_op_ctx *ctx)
{
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *in = lm_ctx_input(ctx, 0);
  lg_grid g;
  ct_opts o;
  ct_job j;
  jt_buf b;
  int32_t *vol = NULL, *index = NULL, *values = NULL;
  memset(&j, 0, sizeof j);
  jt_init(&b);
  int st = lg_grid_of(ctx, in, "label", &g);
  if (st < 0) return st;
  if ((st = ct_options(ctx, &g, &o)) < 0) {
    ct_opts_free(&o);
    return st;
  }
  vol = malloc(sizeof *vol * (size_t)(g.numel ? g.numel : 1));
  if (!vol) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  if ((st = lg_load_int32(ctx, in, &g, vol)) < 0) goto done;

  /* The labels to trace, sorted, and a table from value to their index. */
  int32_t lo = INT32_MAX, hi = INT32_MIN;
  if (o.labels) {
    for (int i = 0; i < o.nlabels; i++) {
      if (o.labels[i] < lo) lo = (int32_t)o.labels[i];
      if (o.labels[i] > hi) hi = (int32_t)o.labels[i];
    }
  } else {
    for (int64_t k = 0; k < g.numel; k++) {
      if (vol[k] == 0) continue;
      if (vol[k] < lo) lo = vol[k];
      if (vol[k] > hi) hi = vol[k];
    }
  }
  int64_t range = hi >= lo ? (int64_t)hi - lo + 1 : 0;
  if (range > CT_MAX_RANGE) {
    st = lm_ctx_error(ctx, LM_EUNSUPPORTED, "label values span %d..%d; at "
                      "most %d distinct values are supported", lo, hi,
                      CT_MAX_RANGE);
    goto done;
  }
  index = malloc(sizeof *index * (size_t)(range ? range : 1));
  if (!index) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  for (int64_t r = 0; r < range; r++) index[r] = -1;
  if (o.labels) {
    for (int i = 0; i < o.nlabels; i++) index[(int32_t)o.labels[i] - lo] = 0;
  } else {
    for (int64_t k = 0; k < g.numel; k++)
      if (vol[k] != 0) index[vol[k] - lo] = 0;
  }
  int nl = 0;
  values = malloc(sizeof *values * (size_t)(range ? range : 1));
  if (!values) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  for (int64_t r = 0; r < range; r++)
    if (index[r] == 0) {
      values[nl] = (int32_t)(r + lo);
      index[r] = nl++;
    }

  j.vol = vol;
  j.g = &g;
  j.axis = g.nsp == 3 ? o.axis : 2;
  j.u = j.axis == 0 ? 1 : 0;
  j.v = j.axis == 2 ? 1 : 2;
  j.w = g.n[j.u];
  j.h = g.n[j.v];
  j.lo = lo;
  j.index = index;
  j.range = range;
  j.values = values;
  j.nlabels = nl;
  j.A = lm_tensor_affine(in);
  if (o.has_midline) {
    j.midline = o.midline;
  } else {
    double c[3];
    lg_world(j.A, (double)(g.n[0] - 1) / 2, (double)(g.n[1] - 1) / 2,
             (double)(g.n[2] - 1) / 2, c);
    j.midline = c[0];
  }
  int64_t nslices = g.n[j.axis];
  if (j.w > INT32_MAX / 2 || j.h > INT32_MAX / 2) {
    st = lm_ctx_error(ctx, LM_EUNSUPPORTED, "slices are too large");
    goto done;
  }
  j.slices = calloc((size_t)(nslices ? nslices : 1), sizeof *j.slices);
  if (!j.slices) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  if (nl > 0 && j.w > 0 && j.h > 0) {
    st = lm_parallel_for(e, ctx, nslices, 1, ct_slices, &j);
    if (st == LM_ENOMEM) st = lm_ctx_error(ctx, st, "out of memory");
    if (st < 0) goto done;
  }

  /* {region: {r: [{slice, points}...], l: [...]}}, regions by label
   * value, contours by slice then start point. */
  int64_t total = 0;
  jt_char(&b, '{');
  for (int l = 0; l < nl; l++) {
    int64_t found = 0;
    for (int64_t s = 0; s < nslices; s++)
      for (int64_t c = 0; c < j.slices[s].nc; c++)
        found += j.slices[s].c[c].label_idx == l;
    if (!found && !o.labels) continue;
    if (b.len > 1) jt_char(&b, ',');
    const char *name = jt_names_get(&o.names, values[l]);
    char key[24];
    snprintf(key, sizeof key, "%d", values[l]);
    jt_string(&b, name ? name : key);
    jt_char(&b, ':');
    jt_char(&b, '{');
    for (int side = 0; side < 2; side++) {
      char want = side == 0 ? 'r' : 'l';
      jt_raw(&b, side == 0 ? "\"r\":[" : ",\"l\":[");
      int64_t nout = 0;
      for (int64_t s = 0; s < nslices; s++) {
        const ct_slice *sl = &j.slices[s];
        for (int64_t c = 0; c < sl->nc; c++) {
          const ct_contour *ct = &sl->c[c];
          if (ct->label_idx != l || ct->side != want) continue;
          if (nout++) jt_char(&b, ',');
          jt_raw(&b, "{\"slice\":");
          jt_int(&b, s);
          jt_raw(&b, ",\"points\":[");
          for (int64_t k = 0; k < ct->n; k++) {
            const int32_t *p = sl->pts + 2 * (ct->first + k);
            if (k) jt_char(&b, ',');
            jt_char(&b, '[');
            jt_int(&b, p[0]);
            jt_char(&b, ',');
            jt_int(&b, p[1]);
            jt_char(&b, ']');
          }
          jt_raw(&b, "]}");
        }
      }
      total += nout;
      jt_char(&b, ']');
    }
    jt_char(&b, '}');
  }
  jt_char(&b, '}');
  if (b.oom) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  if (o.path) {
    int err = jt_write_file_atomic(o.path, b.s, b.len);
    if (err) {
      st = lm_ctx_error(ctx, LM_EIO, "cannot write '%s': %s", o.path,
                        strerror(err));
      goto done;
    }
  }
  lm_params *res = lm_ctx_results(ctx);
  if (!res || lm_params_set_json(res, "contours", b.s) < 0 ||
      lm_params_set_int(res, "count", total) < 0 ||
      lm_params_set_number(res, "midline", j.midline) < 0) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "cannot store the results");
    goto done;
  }
  st = LM_OK;
done:
  if (j.slices) {
    for (int64_t s = 0; s < g.n[j.axis]; s++) {
      free(j.slices[s].c);
      free(j.slices[s].pts);
    }
    free(j.slices);
  }
  jt_free(&b);
  ct_opts_free(&o);
  free(vol);
  free(index);
  free(values);
  return st;
}

static const lm_arg_desc ct_args[] = {
  {"axis", LM_ARG_INT, "2", "spatial axis the slices are taken along (0 = "
   "X/i, 1 = Y/j, 2 = Z/k; negative counts from the end); ignored for 2-D "
   "input"},
  {"labels", LM_ARG_NUMBERS, "nil", "labels to trace (listed ones appear in "
   "the result even without contours); nil = every nonzero label present"},
  {"names", LM_ARG_STRING, "nil", "region names: a JSON object {\"1\": "
   "\"spleen\", ...} given as text, or the path of a file holding one; "
   "labels without a name use their id"},
  {"path", LM_ARG_STRING, "nil", "also write the JSON to this file (through "
   "a temporary file and a rename)"},
  {"midline", LM_ARG_NUMBER, "nil", "world x (RAS mm) of the midline; nil = "
   "world x of the volume's centre voxel ((X-1)/2, (Y-1)/2, (Z-1)/2)"},
};

const lm_op_desc lm_op_contours = {
  .name = "Contours",
  .alias = NULL,
  .summary = "Outer contours per 2-D slice and label (OpenCV findContours "
             "external + simple), placed right or left of the midline",
  .doc =
    "For each slice along axis and each label, the outer borders of the "
    "label's 8-connected regions exactly as OpenCV findContours(mask, "
    "RETR_EXTERNAL, CHAIN_APPROX_SIMPLE) returns them (Suzuki-Abe border "
    "following; regions inside a hole of another region of the same label "
    "are skipped; holes are not returned; a region touching the slice edge "
    "is not clipped). Points are pixel centres (x, y) in OpenCV's image "
    "convention for the slice image whose columns (x) run along the FIRST "
    "remaining spatial axis and rows (y) along the second: axis=2 gives "
    "x = i, y = j (the nibabel slice data[:, :, k] transposed, as MONAI "
    "Label's FindContoursd); axis=1 gives x = i, y = k; axis=0 gives "
    "x = j, y = k. Each contour starts at its top-most, then left-most "
    "pixel and runs counter-clockwise on screen; only the points where the "
    "chain turns are kept.\n"
    "Side: the contour's centroid (area centroid of the polygon through the "
    "points; the mean of the points when that area is 0) is mapped through "
    "the affine; world x >= midline is 'r' (RAS+: x grows towards the "
    "patient's right), else 'l'. The midline defaults to the world x of the "
    "volume's centre; give midline=0 for MNI-like spaces.\n"
    "Result 'contours' (JSON; a table in Lua), the DWI atlas service "
    "layout: {region: {r: [{slice: k, points: [[x, y], ...]}, ...], l: "
    "[...]}} with region the name from names or the label id as a string "
    "(an integer key in Lua); regions by label value, contours by slice, "
    "then by start point in raster order. Also 'count' (contours) and "
    "'midline'. Input: a label map (X,Y,Z), (1,X,Y,Z), (X,Y) or (1,X,Y), "
    "any dtype (converted to int32 as Cast does); no tensor output.",
  .inputs = "label",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "",
  .args = ct_args,
  .nargs = (int)(sizeof ct_args / sizeof ct_args[0]),
  .flags = 0,
  .check = ct_check,
  .run_cpu = ct_run,
  .run_cuda = NULL,
};
