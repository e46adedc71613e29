/* LabelComponents: connected-component labelling as scipy.ndimage.label /
 * skimage.measure.label, on the shared core (connected_components.h). */
#include <stdlib.h>
#include <string.h>

#include "connected_components.h"
#include "label_grid.h"
#include "xf_util.h"

static int lc_connectivity(lm_op_ctx *ctx, int nsp, int *conn)
{
  *conn = nsp == 3 ? 26 : 8;
  if (!lm_arg_is_set(ctx, "connectivity")) return LM_OK;
  int64_t c = lm_arg_int(ctx, "connectivity");
  bool ok = nsp == 3 ? (c == 6 || c == 18 || c == 26) : (c == 4 || c == 8);
  if (!ok)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'connectivity' = %lld is not "
                        "valid for %d-D input (use %s)", (long long)c, nsp,
                        nsp == 3 ? "6, 18 or 26" : "4 or 8");
  *conn = (int)c;
  return LM_OK;
}

static int lc_check(lm_op_ctx *ctx)
{
  lg_grid g;
  int conn, st = lg_grid_of(ctx, lm_ctx_input(ctx, 0), "img", &g);
  return st < 0 ? st : lc_connectivity(ctx, g.nsp, &conn);
}

typedef struct lc_job {
  int32_t *cls;
} lc_job;

static int lc_binarise(int64_t b, int64_t e, void *arg)
{
  lc_job *j = arg;
  for (int64_t v = b; v < e; v++) j->cls[v] = j->cls[v] != 0;
  return LM_OK;
}

static int lc_run(lm_op_ctx *ctx)
{
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  lg_grid g;
  int conn, st = lg_grid_of(ctx, in, "img", &g);
  if (st < 0 || (st = lc_connectivity(ctx, g.nsp, &conn)) < 0) return st;
  /* Scratch from the engine's caching allocator: fresh pages cost more
   * than the labelling itself at this size. */
  lm_tensor *scratch = NULL;
  int64_t n1 = g.numel ? g.numel : 1;
  st = lm_tensor_new(e, LM_I32, 1, &n1, LM_CPU, &scratch);
  if (st < 0) return lm_ctx_error(ctx, st, "out of memory");
  int32_t *cls = lm_tensor_data(scratch);
  int64_t ncomp = 0;
  if ((st = lg_load_int32(ctx, in, &g, cls)) < 0) goto done;
  if (!lm_arg_bool(ctx, "per_label")) {
    lc_job j = {cls};
    if ((st = lm_parallel_for(e, ctx, g.numel, XF_GRAIN, lc_binarise, &j)) < 0)
      goto done;
  }
  /* The labels are written straight into the output, which has the NIfTI
   * order the core uses: (X,Y,Z) with x fastest, or (1,X,Y,Z). */
  int order[4] = {0, 3, 2, 1};
  int nd = lm_tensor_ndim(in);
  if (g.nsp == 2) {
    order[1] = 2;
    order[2] = 1;
  }
  int ord[4];
  for (int d = 0; d < nd; d++)
    ord[d] = g.first ? order[d] : order[d + 1] - 1;
  st = lm_tensor_new_ordered(e, LM_I32, nd, lm_tensor_shape(in), ord, LM_CPU,
                             &out);
  if (st < 0) {
    st = lm_ctx_error(ctx, st, "cannot allocate the output");
    goto done;
  }
  lm_tensor_set_affine(out, lm_tensor_affine(in));
  lm_tensor_set_layout(out, lm_tensor_layout(in));
  lm_tensor_trace_copy(out, in);
  int32_t *lab = lm_tensor_data(out);
  st = cc_label(e, ctx, cls, g.n[0], g.n[1], g.n[2], conn, lab, &ncomp, NULL);
  if (st < 0) goto done;
  st = cc_renumber_c_order(e, ctx, lab, g.n[0], g.n[1], g.n[2], ncomp, NULL);
  if (st < 0) goto done;
  lm_params *res = lm_ctx_results(ctx);
  if (!res || lm_params_set_int(res, "count", ncomp) < 0) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "cannot store the results");
    goto done;
  }
  st = lm_ctx_set_output(ctx, 0, out);
  out = NULL;
done:
  lm_tensor_release(out);
  lm_tensor_release(scratch);
  return st;
}

static const lm_arg_desc lc_args[] = {
  {"connectivity", LM_ARG_INT, "nil", "3-D: 6, 18 or 26; 2-D: 4 or 8; nil = "
   "full (26 / 8, skimage's default; scipy.ndimage.label's default is 6 / "
   "4)"},
  {"per_label", LM_ARG_BOOL, "false", "false: every nonzero voxel is "
   "foreground; true: neighbours join only when their values are equal, so "
   "touching labels give separate components"},
};

const lm_op_desc lm_op_label_components = {
  .name = "LabelComponents",
  .alias = NULL,
  .summary = "Number the connected components of a mask or label map "
             "(scipy.ndimage.label / skimage.measure.label)",
  .doc =
    "Input (X,Y,Z), (1,X,Y,Z), (X,Y) or (1,X,Y), any dtype (nonzero = "
    "foreground). Output int32 of the same shape: 0 for background, 1..n "
    "for the components, numbered as scipy.ndimage.label and "
    "skimage.measure.label number them on the (X,Y,Z) array: by the first "
    "voxel in C order (z fastest). Result 'count' = n. Memory order i "
    "fastest (NIfTI order); affine, layout and trace of the input. The "
    "labelling core is multithreaded (union-find over runs in slabs, seams "
    "merged, parallel flattening) and shared with "
    "KeepLargestConnectedComponent and Contours.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "labels",
  .args = lc_args,
  .nargs = (int)(sizeof lc_args / sizeof lc_args[0]),
  .flags = 0,
  .check = lc_check,
  .run_cpu = lc_run,
  .run_cuda = NULL,
};
