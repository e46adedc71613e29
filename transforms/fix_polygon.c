/* FixPolygon: AIAA's fixpolygon.  One vertex of a polygon set is moved,
 * its neighbours follow with a linearly decaying share of the move, and the
 * updated polygons are rasterised into a mask. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "label_grid.h"
#include "polygon.h"

typedef struct fp_opts {
  bool three_d;
  int64_t slice, poly, vertex;
  double offset[2];
  int64_t near, near3d;
  pg_set set;
} fp_opts;

static int fp_options(lm_op_ctx *ctx, const lg_grid *g, fp_opts *o)
{
  char err[200];
  memset(o, 0, sizeof *o);
  o->three_d = g->nsp == 3;
  o->poly = lm_arg_int(ctx, "polygon_index");
  o->vertex = lm_arg_int(ctx, "vertex_index");
  o->near = lm_arg_int(ctx, "propagate_neighbor");
  o->near3d = lm_arg_int(ctx, "propagate_neighbor_3d");
  if (o->near < 0 || o->near3d < 0)
    return lm_ctx_error(ctx, LM_EINVAL, "option '%s' must be >= 0",
                        o->near < 0 ? "propagate_neighbor"
                                    : "propagate_neighbor_3d");
  int n;
  const double *off = lm_arg_numbers(ctx, "vertex_offset", &n);
  if (n != 2 || !isfinite(off[0]) || !isfinite(off[1]) ||
      fabs(off[0]) > 1e7 || fabs(off[1]) > 1e7)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'vertex_offset' must be "
                        "{dx, dy} (two finite numbers); got %d values", n);
  o->offset[0] = off[0];
  o->offset[1] = off[1];
  if (o->three_d) {
    if (!lm_arg_is_set(ctx, "slice_index"))
      return lm_ctx_error(ctx, LM_EINVAL, "option 'slice_index' is required "
                          "for a 3-D image (the slice the vertex is on)");
    o->slice = lm_arg_int(ctx, "slice_index");
  } else if (lm_arg_is_set(ctx, "slice_index") && lm_arg_int(ctx, "slice_index") != 0) {
    return lm_ctx_error(ctx, LM_EINVAL, "option 'slice_index' must be nil or "
                        "0 for a 2-D image");
  }
  if (!pg_parse(lm_arg_string(ctx, "poly"), o->three_d, &o->set, err, sizeof err))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'poly': %s (expected %s)", err,
                        o->three_d ? "[[[[x, y], ...], ...], ...] with one list "
                                     "of polygons per slice"
                                   : "[[[x, y], ...], ...]");
  if (o->three_d && o->set.n != g->n[2]) {
    int64_t have = o->set.n;
    pg_set_free(&o->set);
    return lm_ctx_error(ctx, LM_ESHAPE, "option 'poly' has %lld slices; the "
                        "image has %lld along its last axis", (long long)have,
                        (long long)g->n[2]);
  }
  int st = LM_OK;
  if (o->slice < 0 || o->slice >= o->set.n)
    st = lm_ctx_error(ctx, LM_EINVAL, "option 'slice_index' = %lld: the "
                      "image has slices 0..%lld", (long long)o->slice,
                      (long long)o->set.n - 1);
  else if (o->poly < 0 || o->poly >= o->set.s[o->slice].n)
    st = lm_ctx_error(ctx, LM_EINVAL, "option 'polygon_index' = %lld: %s has "
                      "%lld polygons", (long long)o->poly,
                      o->three_d ? "that slice" : "'poly'",
                      (long long)o->set.s[o->slice].n);
  else if (o->vertex < 0 || o->vertex >= o->set.s[o->slice].p[o->poly].n)
    st = lm_ctx_error(ctx, LM_EINVAL, "option 'vertex_index' = %lld: polygon "
                      "%lld has %lld vertices", (long long)o->vertex,
                      (long long)o->poly,
                      (long long)o->set.s[o->slice].p[o->poly].n);
  if (st < 0) pg_set_free(&o->set);
  return st;
}

/* Move vertex v of p and its `near` neighbours on each side (cyclically):
 * the vertex d steps away moves by round(w * (1 - d / (near + 1)) *
 * offset), rounded half away from zero; a vertex reachable both ways takes
 * the nearer distance and moves once. */
static void move_around(pg_poly *p, int64_t v, int64_t near, double w,
                        const double *offset)
{
  int64_t reach = near < p->n / 2 ? near : p->n / 2;
  for (int64_t d = -reach; d <= reach; d++) {
    /* With an even count the far vertex is reached from both sides. */
    if (2 * reach == p->n && d == reach) continue;
    int64_t k = ((v + d) % p->n + p->n) % p->n;
    double share = w * (1.0 - (double)llabs(d) / (double)(near + 1));
    p->xy[2 * k] += (int64_t)round(share * offset[0]);
    p->xy[2 * k + 1] += (int64_t)round(share * offset[1]);
  }
}

/* The vertex of slice s nearest to (x, y) (squared distance; ties: the
 * first polygon, then the first vertex).  Returns false when s is empty. */
static bool nearest_vertex(const pg_slice *s, int64_t x, int64_t y,
                           int64_t *poly, int64_t *vertex)
{
  double best = INFINITY;
  for (int64_t p = 0; p < s->n; p++)
    for (int64_t v = 0; v < s->p[p].n; v++) {
      double dx = (double)(s->p[p].xy[2 * v] - x);
      double dy = (double)(s->p[p].xy[2 * v + 1] - y);
      if (dx * dx + dy * dy < best) {
        best = dx * dx + dy * dy;
        *poly = p;
        *vertex = v;
      }
    }
  return best < INFINITY;
}

static int fp_check(lm_op_ctx *ctx)
{
  lg_grid g;
  fp_opts o;
  int st = lg_grid_of(ctx, lm_ctx_input(ctx, 0), "img", &g);
  if (st < 0) return st;
  st = fp_options(ctx, &g, &o);
  if (st >= 0) pg_set_free(&o.set);
  return st;
}

static int fp_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL, *sp = NULL;
  lg_grid g;
  fp_opts o;
  jt_buf b;
  jt_init(&b);
  int st = lg_grid_of(ctx, in, "img", &g);
  if (st < 0) return st;
  if ((st = fp_options(ctx, &g, &o)) < 0) return st;

  /* The move on the vertex's slice, then on the slices around it, each
   * nearer slice taking a larger share. */
  const pg_poly *moved = &o.set.s[o.slice].p[o.poly];
  int64_t x0 = moved->xy[2 * o.vertex], y0 = moved->xy[2 * o.vertex + 1];
  move_around(&o.set.s[o.slice].p[o.poly], o.vertex, o.near, 1.0, o.offset);
  for (int64_t t = 1; o.three_d && t <= o.near3d; t++) {
    double w = 1.0 - (double)t / (double)(o.near3d + 1);
    for (int side = -1; side <= 1; side += 2) {
      int64_t s = o.slice + side * t, p = 0, v = 0;
      if (s < 0 || s >= o.set.n) continue;
      if (nearest_vertex(&o.set.s[s], x0, y0, &p, &v))
        move_around(&o.set.s[s].p[p], v, o.near, w, o.offset);
    }
  }

  /* The mask: uint8, img's shape, memory order, affine and layout. */
  if ((st = lm_tensor_new_like(in, LM_U8, LM_CPU, &out)) < 0) {
    st = lm_ctx_error(ctx, st, "cannot allocate the mask");
    goto done;
  }
  memset(lm_tensor_data(out), 0, lm_tensor_nbytes(out));
  if ((st = lg_spatial_view(ctx, out, &g, &sp)) < 0) goto done;
  const int64_t *str = lm_tensor_strides(sp);
  uint8_t *m = lm_tensor_data(sp);
  for (int64_t s = 0; s < o.set.n; s++) {
    /* Rows are the first spatial index (i), columns the second (j). */
    uint8_t *base = m + (o.three_d ? s * str[2] : 0);
    if (!pg_fill(&o.set.s[s], base, g.n[1], g.n[0], str[0], str[1])) {
      st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
      goto done;
    }
  }
  pg_emit(&b, &o.set, o.three_d);
  lm_params *res = lm_ctx_results(ctx);
  if (b.oom || !res || lm_params_set_json(res, "poly", b.s) < 0) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "cannot store the results");
    goto done;
  }
  st = lm_ctx_set_output(ctx, 0, out);
  out = NULL;
done:
  lm_tensor_release(sp);
  lm_tensor_release(out);
  pg_set_free(&o.set);
  jt_free(&b);
  return st;
}

static const lm_arg_desc fp_args[] = {
  {"poly", LM_ARG_STRING, NULL, "the polygon set as JSON text: "
   "[[[x, y], ...], ...] for a 2-D image, one such list per slice for a "
   "3-D one (AIAA's params.poly; in Lua lumen.json_encode(params.poly))"},
  {"polygon_index", LM_ARG_INT, NULL, "the polygon holding the moved vertex "
   "(0-based)"},
  {"vertex_index", LM_ARG_INT, NULL, "the moved vertex (0-based)"},
  {"vertex_offset", LM_ARG_NUMBERS, NULL, "{dx, dy} added to the vertex"},
  {"propagate_neighbor", LM_ARG_INT, "1", "vertices on each side of the "
   "moved one that follow it"},
  {"slice_index", LM_ARG_INT, "nil", "3-D: the slice (along the last axis) "
   "of the moved vertex"},
  {"propagate_neighbor_3d", LM_ARG_INT, "0", "3-D: slices on each side "
   "whose nearest vertex follows the move"},
};

const lm_op_desc lm_op_fix_polygon = {
  .name = "FixPolygon",
  .alias = NULL,
  .summary = "Move one polygon vertex and its neighbours, and rasterise the "
             "updated polygons into a mask (AIAA fixpolygon)",
  .doc =
    "Clara's fixpolygon rule is not public; lumen's is this one. The vertex "
    "vertex_index of polygon polygon_index moves by vertex_offset; with "
    "n = propagate_neighbor, the vertices d = 1..n steps before and after it "
    "along the closed polygon move by (1 - d/(n+1)) * vertex_offset "
    "(a linear decay: n = 1 moves the two neighbours by half the offset), "
    "each component rounded half away from zero, since vertices are "
    "integer pixels. When 2n + 1 reaches the polygon's size every vertex "
    "moves once, by the share of its nearer distance. 3-D: the vertex is on "
    "slice slice_index; with m = propagate_neighbor_3d, on each slice t = "
    "1..m slices before and after, the vertex nearest (Euclidean; ties: the "
    "first polygon, then the first vertex) to the moved vertex's position "
    "before the move, with its n neighbours, moves by (1 - t/(m+1)) times "
    "the shares above; a slice without polygons is left alone.\n"
    "Then every slice's polygons are rasterised into a uint8 mask of img's "
    "shape (1 inside): a pixel is set when its centre lies inside a polygon "
    "by the even-odd rule or on the 8-connected line drawn along one of its "
    "edges (one pixel per step along the edge's major axis, the other "
    "coordinate rounded to nearest, halves up), the union over the slice's "
    "polygons; parts outside the image are clipped. Vertices are [x, y] = "
    "[column, row] of each slice seen as a numpy array of the tensor's "
    "logical index (x along the second spatial dim, y along the first), as "
    "in MaskToPolygon and AIAA's clients; coordinates are rounded to "
    "integers. The mask keeps img's shape, affine and layout (img gives "
    "only the grid: a 2-D (X,Y)/(1,X,Y) image, or a 3-D (X,Y,Z)/(1,X,Y,Z) "
    "one with one entry of poly per slice along Z).\n"
    "Result 'poly' (JSON; a table in Lua): the updated polygon set in the "
    "shape it came in, what AIAA's reply carries as params.poly.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "mask",
  .args = fp_args,
  .nargs = (int)(sizeof fp_args / sizeof fp_args[0]),
  .flags = 0,
  .check = fp_check,
  .run_cpu = fp_run,
  .run_cuda = NULL,
};
