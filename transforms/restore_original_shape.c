/* RestoreOriginalShape (alias Invert): MONAI Invertd over the reference's
 * trace (semantics.md §7).  Each entry holds the shape and affine before its
 * op, so every step is one resampling back to that grid in world
 * coordinates: crops, pads and orientations map integer indices to integer
 * indices and are undone exactly, resamplings are resampled back. */
#include <math.h>
#include <string.h>

#include "resample.h"
#include "xf_util.h"

typedef enum { RESTORE_AUTO, RESTORE_NEAREST, RESTORE_LINEAR } restore_mode;

static int restore_options(lm_op_ctx *ctx, restore_mode *mode,
                           xf_padding *pad, xf_grid *grid)
{
  const char *r = lm_arg_string(ctx, "rounding");
  if (!strcmp(r, "monai")) *grid = XF_GRID_TORCH;
  else if (!strcmp(r, "exact")) *grid = XF_GRID_EXACT;
  else return lm_ctx_error(ctx, LM_EINVAL, "option 'rounding' must be "
                           "'monai' or 'exact' (got '%s')", r);
  const char *m = lm_arg_string(ctx, "mode");
  if (!strcmp(m, "auto")) *mode = RESTORE_AUTO;
  else if (!strcmp(m, "nearest")) *mode = RESTORE_NEAREST;
  else if (!strcmp(m, "linear") || !strcmp(m, "bilinear")) *mode = RESTORE_LINEAR;
  else return lm_ctx_error(ctx, LM_EINVAL, "option 'mode' must be 'auto', "
                           "'nearest' or 'linear' (got '%s')", m);
  if (lm_arg_is_set(ctx, "is_label"))
    *mode = lm_arg_bool(ctx, "is_label") ? RESTORE_NEAREST : RESTORE_LINEAR;
  if (xf_padding_parse(lm_arg_string(ctx, "padding_mode"), pad) < 0)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'padding_mode' must be "
                        "'border', 'zeros' or 'reflection'");
  lm_tensor *pred = lm_ctx_input(ctx, 0), *ref = lm_ctx_input(ctx, 1);
  int nsp = xf_spatial_ndim(ref), pn = lm_tensor_ndim(pred);
  int rn = lm_tensor_ndim(ref);
  if (pn < nsp)
    return lm_ctx_error(ctx, LM_ESHAPE, "pred has %d dims, fewer than ref's "
                        "%d spatial dims", pn, nsp);
  for (int d = 0; d < nsp; d++)
    if (lm_tensor_shape(pred)[pn - nsp + d] != lm_tensor_shape(ref)[rn - nsp + d])
      return lm_ctx_error(ctx, LM_ESHAPE, "pred's spatial shape differs from "
                          "ref's on spatial dim %d (%lld vs %lld): pred must "
                          "lie on ref's grid", d,
                          (long long)lm_tensor_shape(pred)[pn - nsp + d],
                          (long long)lm_tensor_shape(ref)[rn - nsp + d]);
  for (int i = 0; i < lm_tensor_trace_length(ref); i++)
    if (lm_tensor_trace_at(ref, i)->ndim < nsp)
      return lm_ctx_error(ctx, LM_ESHAPE, "trace entry %d (%s) has fewer "
                          "than %d dims", i, lm_tensor_trace_at(ref, i)->op, nsp);
  return LM_OK;
}

static int restore_check(lm_op_ctx *ctx)
{
  restore_mode m;
  xf_padding p;
  xf_grid g;
  return restore_options(ctx, &m, &p, &g);
}

/* Entries within 1e-6 of an integer become that integer (crop offsets and
 * orientation permutations computed through an inverse); others within
 * 1e-10 of a multiple of 2^-20 snap to it, so that ratios such as 0.5 and
 * 1.5 give the exact half-way ties that MONAI's rint sees. */
static bool snap_map(double m[3][4], int nsp)
{
  bool integral = true;
  for (int a = 0; a < nsp; a++)
    for (int b = 0; b < 4; b++) {
      double v = m[a][b], r = nearbyint(v);
      if (fabs(v - r) <= 1e-6) {
        m[a][b] = r;
        continue;
      }
      integral = false;
      double q = nearbyint(v * 1048576.0) / 1048576.0;
      if (fabs(v - q) <= 1e-10) m[a][b] = q;
    }
  return integral;
}

/* MONAI's index map for undoing one step, as numpy's solve(A_cur, A_before)
 * gives it when both affines are axis-aligned (no rotation or permutation):
 * per axis xs = before/cur spacing, xt = (before - cur origin)/cur spacing.
 * Its last bits decide MONAI's nearest ties (XF_GRID_TORCH).  False when an
 * affine is not diagonal or the result strays from the exact map m. */
static bool monai_axis_map(const double cur[16], const double before[16],
                           int nsp, const double m[3][4], double out[3][4])
{
  for (int a = 0; a < nsp; a++)
    for (int b = 0; b < nsp; b++)
      if (a != b && (cur[a * 4 + b] != 0 || before[a * 4 + b] != 0))
        return false;
  for (int a = 0; a < nsp; a++) {
    double c = cur[a * 4 + a];
    if (c == 0) return false;
    for (int b = 0; b < 4; b++) out[a][b] = 0;
    out[a][a] = before[a * 4 + a] / c;
    out[a][3] = (before[a * 4 + 3] - cur[a * 4 + 3]) / c;
    if (fabs(out[a][a] - m[a][a]) > 1e-9 || fabs(out[a][3] - m[a][3]) > 1e-6)
      return false;
  }
  return true;
}

/* An exact integer map whose samples all fall inside `cur`: a view (signed
 * permutation and offset of the strides), copied densely.  Returns 1 when
 * done, 0 when the map leaves the input (then resampling pads with zeros). */
static int gather_view(lm_op_ctx *ctx, const xf_resample_backend *be,
                       lm_tensor *cur, int nsp, const double m[3][4],
                       const int64_t *tshape, lm_tensor **out)
{
  int nd = lm_tensor_ndim(cur), lead = nd - nsp;
  const int64_t *sh = lm_tensor_shape(cur), *st = lm_tensor_strides(cur);
  int64_t shape[LM_MAX_DIMS], strides[LM_MAX_DIMS], offset = 0;
  for (int d = 0; d < lead; d++) {
    shape[d] = sh[d];
    strides[d] = st[d];
  }
  for (int b = 0; b < nsp; b++) {
    shape[lead + b] = tshape[b];
    strides[lead + b] = 0;
  }
  for (int a = 0; a < nsp; a++) {
    double lo = m[a][3], hi = m[a][3];
    for (int b = 0; b < nsp; b++) {
      double v = m[a][b] * (double)(tshape[b] - 1);
      if (v < 0) lo += v; else hi += v;
      strides[lead + b] += (int64_t)m[a][b] * st[lead + a];
    }
    if (lo < 0 || hi > (double)(sh[lead + a] - 1)) return 0;
    offset += (int64_t)m[a][3] * st[lead + a];
  }
  lm_tensor *view = NULL;
  int order[LM_MAX_DIMS];
  int s = lm_tensor_view(cur, nd, shape, strides, offset, &view);
  if (s < 0) return s;
  xf_memory_order(view, order);
  s = lm_tensor_new_ordered(lm_tensor_engine(cur), lm_tensor_dtype(cur), nd,
                            shape, order, lm_tensor_device(cur), out);
  if (s >= 0) s = be->copy(ctx, *out, view);
  lm_tensor_release(view);
  if (s < 0) {
    lm_tensor_release(*out);
    *out = NULL;
    return s;
  }
  lm_tensor_set_layout(*out, lm_tensor_layout(cur));
  return 1;
}

int xf_restore_apply(lm_op_ctx *ctx, const xf_resample_backend *be,
                     lm_tensor **result)
{
  restore_mode mode;
  xf_padding pad;
  xf_grid grid;
  int st = restore_options(ctx, &mode, &pad, &grid);
  if (st < 0) return st;
  lm_tensor *pred = lm_ctx_input(ctx, 0), *ref = lm_ctx_input(ctx, 1);
  int nsp = xf_spatial_ndim(ref), nd = lm_tensor_ndim(pred);
  int ntrace = lm_tensor_trace_length(ref);
  lm_dtype dt = lm_tensor_dtype(pred);
  bool linear = mode == RESTORE_LINEAR ||
                (mode == RESTORE_AUTO && lm_dtype_is_float(dt));
  lm_tensor *cur = lm_tensor_retain(pred);
  double A_cur[16];
  memcpy(A_cur, lm_tensor_affine(ref), sizeof A_cur);
  for (int i = ntrace - 1; i >= 0 && st >= 0; i--) {
    const lm_trace_entry *en = lm_tensor_trace_at(ref, i);
    const int64_t *tshape = en->shape + en->ndim - nsp;
    double inv[16], M[16], m[3][4] = {{0}};
    if (!xf_mat4_inverse(A_cur, inv)) {
      st = lm_ctx_error(ctx, LM_EINVAL, "singular affine before undoing "
                        "trace entry %d (%s)", i, en->op);
      break;
    }
    /* output index (the earlier grid) -> current index, through the world */
    xf_mat4_mul(inv, en->affine, M);
    for (int a = 0; a < nsp; a++) {
      for (int b = 0; b < nsp; b++) m[a][b] = M[a * 4 + b];
      m[a][3] = M[a * 4 + 3];
    }
    bool integral = snap_map(m, nsp);
    lm_tensor *next = NULL;
    int done = 0;
    if (integral) {
      done = gather_view(ctx, be, cur, nsp, (const double(*)[4])m, tshape, &next);
      if (done < 0) st = lm_ctx_error(ctx, done, "cannot copy");
    }
    if (st >= 0 && !done) {
      lm_dtype odt = dt;
      xf_resample_spec spec = {.nsp = nsp};
      memcpy(spec.m, m, sizeof spec.m);
      if (integral) {
        /* undoing a crop: what lay outside it is background */
        spec.interp = XF_INTERP_NEAREST;
        spec.padding = XF_PAD_ZEROS;
      } else {
        spec.interp = linear ? XF_INTERP_LINEAR : XF_INTERP_NEAREST;
        spec.padding = pad;
        if (!linear && grid == XF_GRID_TORCH &&
            monai_axis_map(A_cur, en->affine, nsp, (const double(*)[4])m,
                           spec.m))
          spec.grid = XF_GRID_TORCH;
        if (linear && !lm_dtype_is_float(dt)) odt = LM_F32;
      }
      st = xf_resample_new_output(cur, nsp, tshape, odt, &next);
      if (st >= 0) st = be->resample(ctx, cur, next, &spec);
      if (st < 0 && st != LM_ECANCELED)
        st = lm_ctx_error(ctx, st, "cannot undo trace entry %d (%s)", i, en->op);
      dt = odt;
    }
    if (st < 0) {
      lm_tensor_release(next);
      break;
    }
    lm_tensor_release(cur);
    cur = next;
    memcpy(A_cur, en->affine, sizeof A_cur);
  }
  if (st < 0) {
    lm_tensor_release(cur);
    return st;
  }
  lm_tensor *out = cur;
  if (cur == pred) { /* nothing recorded: a view on ref's grid */
    lm_tensor_release(cur);
    st = lm_tensor_view(pred, nd, lm_tensor_shape(pred),
                        lm_tensor_strides(pred), 0, &out);
    if (st < 0) return lm_ctx_error(ctx, st, "cannot make the view");
  }
  lm_tensor_set_affine(out, A_cur);
  lm_tensor_set_layout(out, lm_tensor_layout(pred));
  /* ref's trace without the entries undone (all of them) */
  lm_tensor_trace_copy(out, ref);
  for (int i = 0; i < ntrace; i++) lm_tensor_trace_pop(out);
  *result = out;
  return LM_OK;
}

static int restore_run(lm_op_ctx *ctx)
{
  lm_tensor *out = NULL;
  int st = xf_restore_apply(ctx, &xf_resample_cpu, &out);
  return st < 0 ? st : lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc restore_args[] = {
  {"mode", LM_ARG_STRING, "'auto'", "'auto' (nearest for integer dtypes, "
   "linear for floats), 'nearest' or 'linear'"},
  {"is_label", LM_ARG_BOOL, "nil", "Clara's flag: true = 'nearest', false = "
   "'linear' (overrides mode)"},
  {"padding_mode", LM_ARG_STRING, "'border'", "padding when resampling back "
   "('border', 'zeros', 'reflection'); undone crops are always padded with 0"},
  {"rounding", LM_ARG_STRING, "'monai'", "nearest sampling positions: "
   "'monai' (as MONAI 1.4 on torch computes them, so exact half-way ties "
   "pick the voxel MONAI picks; 3-D axis-aligned grids) or 'exact' (float64 "
   "index map, ties to even)"},
};

const lm_op_desc lm_op_restore_original_shape = {
  .name = "RestoreOriginalShape",
  .alias = "Invert",
  .summary = "Map a prediction on ref's grid back to the original grid by "
             "undoing ref's recorded spatial ops",
  .doc =
    "MONAI Invertd semantics (Clara RestoreOriginalShape(field, src_field, "
    "is_label)). pred (e.g. a channel-first label map or probabilities) must "
    "have ref's spatial shape. ref's trace is walked from the newest entry "
    "to the oldest; each entry recorded the shape and affine before its op, "
    "and pred is resampled onto that grid through world coordinates: "
    "index map (A_cur^-1 A_before). Integer maps (crops, pads, "
    "orientation) are exact copies, with 0 where an undone crop had cut "
    "(MONAI BorderPad); other maps (Spacing, Resize) resample back to the "
    "recorded shape and affine (never recomputed, so rounding cannot "
    "accumulate): nearest for labels, as MONAI's inverse with "
    "nearest_interp, or linear for probabilities. Nearest positions that "
    "fall exactly half-way between two voxels (2 mm back to 2.5 mm: every "
    "fourth slice) are broken as MONAI breaks them: rounding='monai' "
    "repeats the float64 arithmetic of MONAI's grid on torch's CPU path and "
    "rounds half away from zero, as torch's 3-D grid_sample does; "
    "rounding='exact' takes x[rint(i)] of the exact map. Result: the "
    "original "
    "spatial shape and affine, pred's leading dims and layout, and ref's "
    "trace without the undone entries (empty).",
  .inputs = "pred, ref",
  .min_inputs = 2,
  .max_inputs = 2,
  .outputs = "img",
  .args = restore_args,
  .nargs = (int)(sizeof restore_args / sizeof restore_args[0]),
  .flags = 0,
  .check = restore_check,
  .run_cpu = restore_run,
  .run_cuda = NULL,
};
