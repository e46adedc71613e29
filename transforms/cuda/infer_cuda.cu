/* The Infer op on a CUDA device: the model's GPU plan (gpu_plan.h) for the
 * input's shape and the precision option, the input gathered into the
 * plan's float32 input buffer (any dtype, the batch axis added, spatial axes
 * reversed for ZYX networks), the plan's work enqueued on the op's stream,
 * the outputs gathered back out of the plan's buffers into new device
 * tensors on x's grid (float32 logits, or labels with argmax = true).  The
 * CPU op is models/src/ops_model.c; this follows its shape rules. */
#include <string.h>

#include "cuda_util.h"
#include "gpu_plan.h"
#include "infer_input.h"
#include "infer_kernels.h"

/* For gpu_plan.c (C): the executor thread's cuDNN handle and capture
** stream. */
extern "C" cudnnHandle_t lmc_plan_cudnn_handle(int device, char *err, size_t errlen)
{
  return lmc_cudnn_handle(device, err, errlen);
}

extern "C" cudaStream_t lmc_plan_capture_stream(int device, char *err, size_t errlen)
{
  return lmc_capture_stream(device, err, errlen);
}

/* Strides (elements) of x seen as the network's input: [1 if batch] + x's
** shape, the spatial axes in reverse order when zyx (a permutation, as the
** CPU op's view). */
static void input_view(const lm_tensor *x, bool batch, bool zyx, lmc_k_bcast_args *d)
{
  int nd = lm_tensor_ndim(x);
  const int64_t *sh = lm_tensor_shape(x), *st = lm_tensor_strides(x);
  int off = batch ? 1 : 0;
  d->ndim = nd + off;
  if (batch) {
    d->shape[0] = 1;
    d->astr[0] = 0;
  }
  for (int k = 0; k < nd; k++) {
    d->shape[k + off] = sh[k];
    d->astr[k + off] = st[k];
  }
  if (zyx) {
    /* network axes 2.. are x's spatial axes backwards */
    lmc_k_bcast_args r = *d;
    int n = d->ndim;
    for (int k = 2; k < n; k++) {
      d->shape[k] = r.shape[n - 1 - (k - 2)];
      d->astr[k] = r.astr[n - 1 - (k - 2)];
    }
  }
}

/* Output shape on x's side: spatial axes back in x's order (zyx), the
** batch axis dropped (batch and extent 1); strides into the dense network
** output for a gather. */
static void output_view(int ndo, const int64_t *osh, bool batch, bool zyx, lmc_k_bcast_args *d)
{
  int64_t str[LM_MAX_DIMS], t = 1;
  for (int k = ndo - 1; k >= 0; k--) {
    str[k] = t;
    t *= osh[k];
  }
  int64_t shape[LM_MAX_DIMS], ss[LM_MAX_DIMS];
  for (int k = 0; k < ndo; k++) {
    shape[k] = osh[k];
    ss[k] = str[k];
  }
  if (zyx && ndo >= 3)
    for (int k = 2; k < ndo; k++) {
      shape[k] = osh[ndo - 1 - (k - 2)];
      ss[k] = str[ndo - 1 - (k - 2)];
    }
  int skip = batch && ndo >= 1 && osh[0] == 1 ? 1 : 0;
  d->ndim = ndo - skip;
  for (int k = skip; k < ndo; k++) {
    d->shape[k - skip] = shape[k];
    d->astr[k - skip] = ss[k];
  }
}

extern "C" int lmc_infer(lm_op_ctx *ctx)
{
  lm_model *m = lm_arg_model(ctx, "model");
  lm_tensor *x = lm_ctx_input(ctx, 0);
  int nd = lm_tensor_ndim(x);
  bool batch, zyx;
  int st = lm_infer_input_layout(ctx, m, x, &batch, &zyx);
  if (st < 0) return st;
  if (nd + (batch ? 1 : 0) > LM_MAX_DIMS)
    return lm_ctx_error(ctx, LM_ESHAPE, "x has too many dims");
  lmc_plan_options o;
  memset(&o, 0, sizeof o);
  st = lmc_precision_option(ctx, lm_arg_string(ctx, "precision"), m, &o.prec);
  if (st < 0) return st;
  o.channels_last = lm_arg_bool(ctx, "channels_last");
  o.cuda_graph = lm_arg_bool(ctx, "cuda_graph");
  cudaStream_t s;
  if ((st = lmc_stream(ctx, &s)) < 0) return st;
  lm_device dev = lm_tensor_device(x);

  lmc_k_bcast_args in;
  memset(&in, 0, sizeof in);
  input_view(x, batch, zyx, &in);
  int ndims[1] = {in.ndim};
  const int64_t *shapes[1] = {in.shape};
  lmc_plan *plan;
  char err[1024] = "";
  st = lmc_model_plan(m, dev.index, ndims, shapes, &o, &plan, err, sizeof err);
  if (st < 0) return lm_ctx_error(ctx, st, "model '%s' on cuda:%d: %s", lm_model_name(m), dev.index, err);

  cudaError_t e = (cudaError_t)lmc_k_gather_any(s, &in, lm_tensor_data(x), lm_tensor_dtype(x),
                                                 lmc_plan_input(plan, 0));
  if (e != cudaSuccess) return lmc_fail(ctx, "Infer: input", e);
  if ((st = lmc_plan_run_own(plan, s, err, sizeof err)) < 0)
    return lm_ctx_error(ctx, st, "model '%s' on cuda:%d: %s", lm_model_name(m), dev.index, err);

  bool argmax = lm_arg_bool(ctx, "argmax");
  int want = lm_arg_is_set(ctx, "output") ? (int)lm_arg_int(ctx, "output") : -1;
  int nout = lmc_plan_noutputs(plan);
  if (nout > LM_MAX_OUTPUTS) nout = LM_MAX_OUTPUTS;
  lm_tensor *outs[LM_MAX_OUTPUTS] = {0};
  int nset = 0;
  for (int i = 0; i < nout && e == cudaSuccess && st >= 0; i++) {
    if (want >= 0 && i != want) continue;
    int64_t osh[LM_MAX_DIMS];
    int ndo = lmc_plan_output_shape(plan, i, osh);
    lmc_k_bcast_args od;
    memset(&od, 0, sizeof od);
    output_view(ndo, osh, batch, zyx, &od);
    lm_tensor *o = NULL;
    st = lm_tensor_new(lm_tensor_engine(x), LM_F32, od.ndim, od.shape, dev, &o);
    if (st < 0) {
      st = lm_ctx_error(ctx, st, "cannot allocate output %d on cuda:%d", i, dev.index);
      break;
    }
    e = (cudaError_t)lmc_k_gather_any(s, &od, lmc_plan_output(plan, i), LM_F32,
                                      (float *)lm_tensor_data(o));
    if (e == cudaSuccess && argmax) {
      int64_t nch = od.ndim ? od.shape[0] : 1, nvox = 1, lsh[LM_MAX_DIMS];
      for (int k = 1; k < od.ndim; k++) nvox *= od.shape[k];
      memcpy(lsh, od.shape, sizeof lsh);
      lsh[0] = 1;
      lm_dtype ldt = nch <= 256 ? LM_U8 : LM_I32;
      lm_tensor *lab = NULL;
      st = lm_tensor_new(lm_tensor_engine(x), ldt, od.ndim, lsh, dev, &lab);
      if (st < 0) {
        lm_tensor_release(o);
        st = lm_ctx_error(ctx, st, "cannot allocate the labels on cuda:%d", dev.index);
        break;
      }
      e = (cudaError_t)lmc_k_argmax0(s, (const float *)lm_tensor_data(o), nch, nvox,
                                     lm_tensor_data(lab), ldt);
      /* o is only read by work queued before its release (stream-ordered
      ** frees) */
      lm_tensor_release(o);
      o = lab;
    }
    /* The logits lie on x's grid: same affine and trace; the layout holds
    ** when the channel axis replaced x's channel axis. */
    lm_tensor_set_affine(o, lm_tensor_affine(x));
    lm_tensor_set_layout(o, lm_tensor_ndim(o) == nd ? lm_tensor_layout(x) : "");
    lm_tensor_trace_copy(o, x);
    outs[nset++] = o;
    if (argmax) break;
  }
  if (st < 0) {
    for (int i = 0; i < nset; i++) lm_tensor_release(outs[i]);
    return st;
  }
  return lmc_finish(ctx, s, e, "Infer kernel", outs, nset);
}
