/* ExtremePoints: for each spatial axis the foreground voxels with the
 * smallest and the largest coordinate, as MONAI's get_extreme_points gives
 * them (Clara's FetchExtremePoints; the 'points' AIAA segmentation returns). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_text.h"
#include "label_grid.h"
#include "xf_util.h"

/* Six candidates (min and max along each of 3 axes) and whether any
 * foreground voxel was seen. */
typedef struct ep_best {
  int64_t p[6][3];
  bool found;
} ep_best;

typedef struct ep_job {
  const char *base;     /* element (0,0,0) of the spatial view */
  int64_t stride[3];    /* bytes */
  lm_dtype dt;
  const lg_grid *g;
  bool has_label;
  double label;
  ep_best *chunks;      /* one per z chunk */
  int64_t grain;
} ep_job;

/* Is voxel a before voxel b in C order of the logical index (x slowest)? */
static bool c_order_before(const int64_t *a, const int64_t *b)
{
  for (int d = 0; d < 3; d++)
    if (a[d] != b[d]) return a[d] < b[d];
  return false;
}

/* Offer voxel v to the candidates: a strictly better coordinate wins, a tie
 * goes to the voxel first in C order (numpy.where's first index: what
 * get_extreme_points picks when its rand_state chooses the first). */
static void ep_offer(ep_best *b, const int64_t *v)
{
  if (!b->found) {
    for (int k = 0; k < 6; k++) memcpy(b->p[k], v, sizeof b->p[k]);
    b->found = true;
    return;
  }
  for (int a = 0; a < 3; a++) {
    int64_t *lo = b->p[2 * a], *hi = b->p[2 * a + 1];
    if (v[a] < lo[a] || (v[a] == lo[a] && c_order_before(v, lo)))
      memcpy(lo, v, sizeof b->p[0]);
    if (v[a] > hi[a] || (v[a] == hi[a] && c_order_before(v, hi)))
      memcpy(hi, v, sizeof b->p[0]);
  }
}

static int ep_chunk(int64_t begin, int64_t end, void *arg)
{
  ep_job *j = arg;
  const int64_t nx = j->g->n[0], ny = j->g->n[1];
  double *row = malloc(sizeof *row * (size_t)(nx ? nx : 1));
  if (!row) return LM_ENOMEM;
  ep_best *b = &j->chunks[begin / j->grain];
  for (int64_t z = begin; z < end; z++)
    for (int64_t y = 0; y < ny; y++) {
      xf_load_f64(j->base + y * j->stride[1] + z * j->stride[2], j->stride[0],
                  j->dt, row, nx);
      for (int64_t x = 0; x < nx; x++) {
        bool fg = j->has_label ? row[x] == j->label : row[x] != 0;
        if (!fg) continue;
        int64_t v[3] = {x, y, z};
        ep_offer(b, v);
      }
    }
  free(row);
  return LM_OK;
}

static int ep_check(lm_op_ctx *ctx)
{
  lg_grid g;
  int st = lg_grid_of(ctx, lm_ctx_input(ctx, 0), "label", &g);
  if (st < 0) return st;
  if (lm_arg_is_set(ctx, "label") && !isfinite(lm_arg_number(ctx, "label")))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'label' must be finite");
  return LM_OK;
}

static int ep_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *sp = NULL, *out = NULL;
  lg_grid g;
  int st = ep_check(ctx);
  if (st < 0) return st;
  lg_grid_of(ctx, in, "label", &g);
  if ((st = lg_spatial_view(ctx, in, &g, &sp)) < 0) return st;

  ep_job j;
  memset(&j, 0, sizeof j);
  size_t es = lm_dtype_size(lm_tensor_dtype(sp));
  const int64_t *str = lm_tensor_strides(sp);
  for (int d = 0; d < g.nsp; d++) j.stride[d] = str[d] * (int64_t)es;
  j.base = lm_tensor_data(sp);
  j.dt = lm_tensor_dtype(sp);
  j.g = &g;
  j.has_label = lm_arg_is_set(ctx, "label");
  j.label = j.has_label ? lm_arg_number(ctx, "label") : 0;
  /* Chunks of whole z slices; each keeps its own candidates, merged below
   * with the same rule, so the answer does not depend on the split. */
  int64_t plane = g.n[0] * g.n[1];
  j.grain = plane >= (1 << 16) ? 1 : ((1 << 16) + plane - 1) / (plane ? plane : 1);
  int64_t nchunks = (g.n[2] + j.grain - 1) / j.grain;
  j.chunks = calloc((size_t)(nchunks ? nchunks : 1), sizeof *j.chunks);
  if (!j.chunks) {
    lm_tensor_release(sp);
    return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  }
  if (plane > 0)
    st = lm_parallel_for(lm_ctx_engine(ctx), ctx, g.n[2], j.grain, ep_chunk, &j);
  lm_tensor_release(sp);
  if (st < 0) {
    free(j.chunks);
    return st == LM_ENOMEM ? lm_ctx_error(ctx, st, "out of memory") : st;
  }
  ep_best all;
  memset(&all, 0, sizeof all);
  for (int64_t c = 0; c < nchunks; c++)
    if (j.chunks[c].found)
      for (int k = 0; k < 6; k++) ep_offer(&all, j.chunks[c].p[k]);
  free(j.chunks);
  if (!all.found) {
    if (j.has_label)
      return lm_ctx_error(ctx, LM_EINVAL, "label: no voxel equals %g (no "
                          "foreground object to take extreme points of)",
                          j.label);
    return lm_ctx_error(ctx, LM_EINVAL, "label: no foreground voxel (every "
                        "value is 0), so there are no extreme points");
  }

  /* (2*nsp, nsp) int64: rows x min, x max, y min, y max[, z min, z max]. */
  int64_t shape[2] = {2 * g.nsp, g.nsp};
  if ((st = lm_tensor_new(lm_ctx_engine(ctx), LM_I64, 2, shape, LM_CPU, &out)) < 0)
    return lm_ctx_error(ctx, st, "cannot allocate the output");
  int64_t *o = lm_tensor_data(out);
  jt_buf b;
  jt_init(&b);
  jt_char(&b, '[');
  for (int r = 0; r < 2 * g.nsp; r++) {
    jt_raw(&b, r ? ",[" : "[");
    for (int d = 0; d < g.nsp; d++) {
      o[r * g.nsp + d] = all.p[r][d];
      if (d) jt_char(&b, ',');
      jt_int(&b, all.p[r][d]);
    }
    jt_char(&b, ']');
  }
  jt_char(&b, ']');
  lm_params *res = lm_ctx_results(ctx);
  if (b.oom || !res || lm_params_set_json(res, "points", b.s) < 0) {
    jt_free(&b);
    lm_tensor_release(out);
    return lm_ctx_error(ctx, LM_ENOMEM, "cannot store the results");
  }
  jt_free(&b);
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc ep_args[] = {
  {"label", LM_ARG_NUMBER, "nil", "the label value whose extreme points are "
   "wanted; nil = every nonzero voxel is foreground"},
};

const lm_op_desc lm_op_extreme_points = {
  .name = "ExtremePoints",
  .alias = NULL,
  .summary = "The foreground voxels with the smallest and largest coordinate "
             "along each spatial axis (MONAI get_extreme_points, Clara "
             "FetchExtremePoints)",
  .doc =
    "For each spatial axis a, in order, the foreground voxel with the "
    "smallest index along a, then the one with the largest: 6 points for a "
    "volume, 4 for a 2-D image. Foreground is value != 0 (MONAI's "
    "img != background with background 0), or value == label when label is "
    "given. Ties (several voxels on the extreme plane) go to the voxel "
    "first in C order of the logical index (x slowest), i.e. the first "
    "entry of numpy.where; MONAI 1.4 draws one of the tied voxels at random "
    "(rand_state.choice, the global numpy RandomState by default) and its "
    "pert option, which lumen does not have, moves points randomly. With a "
    "rand_state whose choice takes the first index both agree exactly "
    "(tests/parity/test_parity_extreme_points.py).\n"
    "Output: an int64 tensor (2*nsp, nsp) of voxel indices, rows x min, "
    "x max, y min, y max, z min, z max; also the result 'points' (JSON; a "
    "table in Lua): the same rows as [[x, y, z], ...], the shape AIAA's "
    "segmentation reply carries in params.points. No foreground voxel: an "
    "error. Input: a label map (X,Y,Z), (1,X,Y,Z), (X,Y) or (1,X,Y), any "
    "dtype, compared as float64.",
  .inputs = "label",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "points",
  .args = ep_args,
  .nargs = (int)(sizeof ep_args / sizeof ep_args[0]),
  .flags = 0,
  .check = ep_check,
  .run_cpu = ep_run,
  .run_cuda = NULL,
};
