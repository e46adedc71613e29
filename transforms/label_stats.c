/* LabelStats: voxel count, volume and image statistics per label
 * (issue 3 item 6). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_text.h"
#include "label_grid.h"
#include "xf_util.h"

/* Label values must fit one table per chunk. */
#define LS_MAX_RANGE 65536
#define LS_CHUNKS 16

typedef struct ls_acc {
  int64_t count;
  double sum, min, max;
} ls_acc;

typedef struct ls_job {
  const int32_t *lab;
  const double *img;   /* NULL without an image */
  int64_t numel;
  int32_t lo, hi;      /* label range (after the min/max pass) */
  int32_t cmin[LS_CHUNKS], cmax[LS_CHUNKS];
  ls_acc *acc;         /* LS_CHUNKS tables of hi - lo + 1 */
  int64_t range;
} ls_job;

static int64_t chunk_begin(const ls_job *j, int64_t c) { return c * j->numel / LS_CHUNKS; }

static int ls_minmax(int64_t b, int64_t e, void *arg)
{
  ls_job *j = arg;
  for (int64_t c = b; c < e; c++) {
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (int64_t v = chunk_begin(j, c); v < chunk_begin(j, c + 1); v++) {
      int32_t l = j->lab[v];
      if (l < lo) lo = l;
      if (l > hi) hi = l;
    }
    j->cmin[c] = lo;
    j->cmax[c] = hi;
  }
  return LM_OK;
}

static int ls_accumulate(int64_t b, int64_t e, void *arg)
{
  ls_job *j = arg;
  for (int64_t c = b; c < e; c++) {
    ls_acc *t = j->acc + c * j->range;
    for (int64_t v = chunk_begin(j, c); v < chunk_begin(j, c + 1); v++) {
      ls_acc *a = t + (j->lab[v] - j->lo);
      if (j->img) {
        double x = j->img[v];
        if (a->count == 0 || x < a->min) a->min = x;
        if (a->count == 0 || x > a->max) a->max = x;
        a->sum += x;
      }
      a->count++;
    }
  }
  return LM_OK;
}

static double det3(const double *A)
{
  return A[0] * (A[5] * A[10] - A[6] * A[9]) -
         A[1] * (A[4] * A[10] - A[6] * A[8]) +
         A[2] * (A[4] * A[9] - A[5] * A[8]);
}

static int ls_inputs(lm_op_ctx *ctx, lg_grid *g, lg_grid *gi)
{
  int st = lg_grid_of(ctx, lm_ctx_input(ctx, 0), "label", g);
  if (st < 0 || lm_ctx_ninputs(ctx) < 2) return st;
  if ((st = lg_grid_of(ctx, lm_ctx_input(ctx, 1), "img", gi)) < 0) return st;
  if (gi->nsp != g->nsp || memcmp(gi->n, g->n, sizeof g->n) != 0)
    return lm_ctx_error(ctx, LM_ESHAPE, "img's spatial shape (%lld,%lld,%lld) "
                        "differs from label's (%lld,%lld,%lld)",
                        (long long)gi->n[0], (long long)gi->n[1],
                        (long long)gi->n[2], (long long)g->n[0],
                        (long long)g->n[1], (long long)g->n[2]);
  return LM_OK;
}

static int ls_check(lm_op_ctx *ctx)
{
  lg_grid g, gi;
  return ls_inputs(ctx, &g, &gi);
}

static int ls_run(lm_op_ctx *ctx)
{
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *lt = lm_ctx_input(ctx, 0);
  bool with_img = lm_ctx_ninputs(ctx) > 1;
  bool with_bg = lm_arg_bool(ctx, "include_background");
  lg_grid g, gi;
  ls_job j;
  jt_buf b;
  int32_t *lab = NULL;
  double *img = NULL;
  memset(&j, 0, sizeof j);
  jt_init(&b);
  int st = ls_inputs(ctx, &g, &gi);
  if (st < 0) return st;
  size_t n = (size_t)(g.numel ? g.numel : 1);
  lab = malloc(sizeof *lab * n);
  if (with_img) img = malloc(sizeof *img * n);
  if (!lab || (with_img && !img)) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  if ((st = lg_load_int32(ctx, lt, &g, lab)) < 0) goto done;
  if (with_img && (st = lg_load_f64(ctx, lm_ctx_input(ctx, 1), &g, img)) < 0)
    goto done;
  j.lab = lab;
  j.img = img;
  j.numel = g.numel;
  if ((st = lm_parallel_for(e, ctx, LS_CHUNKS, 1, ls_minmax, &j)) < 0) goto done;
  j.lo = INT32_MAX;
  j.hi = INT32_MIN;
  for (int c = 0; c < LS_CHUNKS; c++) {
    if (j.cmin[c] < j.lo) j.lo = j.cmin[c];
    if (j.cmax[c] > j.hi) j.hi = j.cmax[c];
  }
  if (g.numel == 0) j.lo = j.hi = 0;
  j.range = (int64_t)j.hi - j.lo + 1;
  if (j.range > LS_MAX_RANGE) {
    st = lm_ctx_error(ctx, LM_EUNSUPPORTED, "label values span %d..%d; at "
                      "most %d distinct values are supported", j.lo, j.hi,
                      LS_MAX_RANGE);
    goto done;
  }
  j.acc = calloc((size_t)(LS_CHUNKS * j.range), sizeof *j.acc);
  if (!j.acc) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  if ((st = lm_parallel_for(e, ctx, LS_CHUNKS, 1, ls_accumulate, &j)) < 0)
    goto done;

  double voxel_ml = fabs(det3(lm_tensor_affine(lt))) / 1000.0;
  int64_t nlabels = 0;
  jt_char(&b, '{');
  for (int64_t r = 0; r < j.range; r++) {
    ls_acc t = {0, 0, 0, 0};
    for (int c = 0; c < LS_CHUNKS; c++) {
      const ls_acc *a = j.acc + c * j.range + r;
      if (!a->count) continue;
      if (t.count == 0 || a->min < t.min) t.min = a->min;
      if (t.count == 0 || a->max > t.max) t.max = a->max;
      t.sum += a->sum;
      t.count += a->count;
    }
    int64_t label = j.lo + r;
    if (t.count == 0 || (label == 0 && !with_bg)) continue;
    if (nlabels++) jt_char(&b, ',');
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)label);
    jt_string(&b, key);
    jt_raw(&b, ":{\"count\":");
    jt_int(&b, t.count);
    jt_raw(&b, ",\"volume_ml\":");
    jt_number(&b, (double)t.count * voxel_ml);
    if (with_img) {
      jt_raw(&b, ",\"mean\":");
      jt_number(&b, t.sum / (double)t.count);
      jt_raw(&b, ",\"min\":");
      jt_number(&b, t.min);
      jt_raw(&b, ",\"max\":");
      jt_number(&b, t.max);
    }
    jt_char(&b, '}');
  }
  jt_char(&b, '}');
  if (b.oom) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  lm_params *res = lm_ctx_results(ctx);
  if (!res || lm_params_set_json(res, "labels", b.s) < 0 ||
      lm_params_set_int(res, "count", nlabels) < 0 ||
      lm_params_set_number(res, "voxel_volume_ml", voxel_ml) < 0) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "cannot store the results");
    goto done;
  }
  st = LM_OK;
done:
  jt_free(&b);
  free(j.acc);
  free(lab);
  free(img);
  return st;
}

static const lm_arg_desc ls_args[] = {
  {"include_background", LM_ARG_BOOL, "false", "also report label 0"},
};

const lm_op_desc lm_op_label_stats = {
  .name = "LabelStats",
  .alias = NULL,
  .summary = "Voxel count and volume in ml per label, and the mean, min and "
             "max of an image inside each label",
  .doc =
    "Input: a label map (X,Y,Z), (1,X,Y,Z), (X,Y) or (1,X,Y) of any dtype "
    "(values converted to int32 as Cast does; they may span at most 65536 "
    "values), and optionally an image of the same spatial shape (any dtype, "
    "(1, ...) allowed). No tensor output; results:\n"
    "  labels: JSON object keyed by label id, each "
    "{count, volume_ml[, mean, min, max]} (in Lua a table keyed by the "
    "integer label: res.labels[3].volume_ml);\n"
    "  count: number of labels reported; voxel_volume_ml: |det| of the "
    "affine's 3x3 part (mm^3) / 1000.\n"
    "volume_ml = count * voxel_volume_ml. For a 2-D label map the affine's "
    "third column counts as the slice thickness. mean is sum/count in "
    "float64; NaN voxels of img make that label's mean NaN (null in JSON). "
    "Label 0 is left out unless include_background.",
  .inputs = "label, img",
  .min_inputs = 1,
  .max_inputs = 2,
  .outputs = "",
  .args = ls_args,
  .nargs = (int)(sizeof ls_args / sizeof ls_args[0]),
  .flags = 0,
  .check = ls_check,
  .run_cpu = ls_run,
  .run_cuda = NULL,
};
