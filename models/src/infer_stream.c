/* Infer's streamed path: the brainchop MeshNets on a whole head in the
 * memory of their receptive field (conv_stream.h), and argmax fused into
 * the inference so that full-size logits never exist. */
#include "infer_stream.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "conv_stream.h"
#include "internal.h"       /* lm_op_ctx's cancel word, lm_engine_threads */
#include "model_internal.h"

bool lm_model_streamable(const lm_model *m)
{
  int64_t shape[5] = {1, 1, 8, 8, 8};
  const lm_graph *g = m->g;
  if (g->ninputs != 1) return false;
  const lm_gvalue *in = &g->values[lm_graph_resolve(g, g->inputs[0])];
  if (in->ndim != 5) return false;
  if (in->shape[1] > 0) shape[1] = in->shape[1];
  char why[256];
  return lm_conv_stream_check(g, shape, why, sizeof why) == LM_OK;
}

static lm_dtype label_dtype(int64_t classes)
{
  return classes <= 256 ? LM_U8 : LM_I32;
}

/* A new tensor with x's spatial shape and memory order and nch leading
** channels (the channel axis slowest), x's affine, layout and trace. */
static int new_on_grid(lm_tensor *x, lm_dtype dt, int64_t nch, lm_tensor **out)
{
  int nd = lm_tensor_ndim(x);
  int64_t shape[LM_MAX_DIMS];
  memcpy(shape, lm_tensor_shape(x), sizeof(int64_t) * (size_t)nd);
  shape[0] = nch;
  /* x's spatial dims, slowest first by stride; the channel axis slowest. */
  const int64_t *st = lm_tensor_strides(x);
  int order[LM_MAX_DIMS], k = 0;
  order[k++] = 0;
  bool used[LM_MAX_DIMS] = {false};
  for (int n = 1; n < nd; n++) {
    int best = -1;
    for (int d = 1; d < nd; d++)
      if (!used[d] && (best < 0 || st[d] > st[best])) best = d;
    used[best] = true;
    order[k++] = best;
  }
  int rc = lm_tensor_new_ordered(lm_tensor_engine(x), dt, nd, shape, order, LM_CPU, out);
  if (rc < 0) return rc;
  lm_tensor_set_affine(*out, lm_tensor_affine(x));
  lm_tensor_set_layout(*out, lm_tensor_layout(x));
  lm_tensor_trace_copy(*out, x);
  return LM_OK;
}

int lm_infer_streamed(lm_op_ctx *ctx, lm_model *m, lm_tensor *x, lm_tensor *v,
                      bool zyx, bool argmax, bool bf16, lm_tensor **out)
{
  *out = NULL;
  if (lm_tensor_ndim(v) != 5 || lm_tensor_shape(v)[0] != 1)
    return lm_ctx_error(ctx, LM_EUNSUPPORTED, "streamed inference takes one (C, X, Y, Z) image");
  /* float32 input, any strides (a copy only for other dtypes). */
  lm_tensor *vf = NULL;
  int st;
  if (lm_tensor_dtype(v) == LM_F32) {
    vf = lm_tensor_retain(v);
  } else {
    if ((st = lm_tensor_new_like(v, LM_F32, LM_CPU, &vf)) < 0 || (st = lm_tensor_copy(vf, v)) < 0) {
      lm_tensor_release(vf);
      return lm_ctx_error(ctx, st, "model '%s': cannot convert the input to float32",
                          lm_model_name(m));
    }
  }
  const int64_t *vs = lm_tensor_shape(vf);
  int64_t shape[5] = {vs[0], vs[1], vs[2], vs[3], vs[4]};
  lm_conv_stream *s = NULL;
  char msg[512] = "";
  int prev_threads = omp_get_max_threads();
  omp_set_num_threads(lm_engine_threads(m->e));
  st = lm_conv_stream_new(m->g, shape, bf16, &s, msg, sizeof msg);
  if (st < 0) {
    omp_set_num_threads(prev_threads);
    lm_tensor_release(vf);
    return lm_ctx_error(ctx, st, "model '%s': cannot stream: %s", lm_model_name(m), msg);
  }
  int64_t nch = lm_conv_stream_out_channels(s);
  lm_tensor *o = NULL;
  st = new_on_grid(x, argmax ? label_dtype(nch) : LM_F32, argmax ? 1 : nch, &o);
  if (st < 0) goto done;
  /* o on x's axes (c, a0, a1, a2); the network's (c, d0, d1, d2) is that with
   * the spatial axes reversed for ZYX networks. */
  const int64_t *is = lm_tensor_strides(vf), *os = lm_tensor_strides(o);
  lm_stream_io io = {.in = lm_tensor_data(vf),
                     .in_stride = {is[1], is[2], is[3], is[4]}};
  int64_t sp[3] = {os[1], os[2], os[3]};
  if (zyx) {
    int64_t t = sp[0];
    sp[0] = sp[2];
    sp[2] = t;
  }
  if (argmax) {
    io.labels = lm_tensor_data(o);
    io.labels_dt = lm_tensor_dtype(o);
    memcpy(io.labels_stride, sp, sizeof sp);
  } else {
    io.logits = lm_tensor_data(o);
    io.logits_stride[0] = os[0];
    memcpy(io.logits_stride + 1, sp, sizeof sp);
  }
  st = lm_conv_stream_run(s, &io, ctx ? ctx->cancel_word : NULL, msg, sizeof msg);
done:
  omp_set_num_threads(prev_threads);
  lm_conv_stream_free(s);
  lm_tensor_release(vf);
  if (st < 0) {
    lm_tensor_release(o);
    return lm_ctx_error(ctx, st, "model '%s': %s", lm_model_name(m),
                        *msg ? msg : "out of memory");
  }
  *out = o;
  return LM_OK;
}

int lm_logits_argmax(lm_tensor *logits, lm_tensor **out)
{
  *out = NULL;
  int nd = lm_tensor_ndim(logits);
  if (lm_tensor_dtype(logits) != LM_F32 || nd < 2) return LM_EINVAL;
  int64_t nch = lm_tensor_shape(logits)[0];
  int st = new_on_grid(logits, label_dtype(nch), 1, out);
  if (st < 0) return st;
  lm_tensor *o = *out;
  /* Walk the spatial index in o's memory order; logits may have any strides. */
  const int64_t *shape = lm_tensor_shape(logits), *ls = lm_tensor_strides(logits),
                *os = lm_tensor_strides(o);
  int64_t nvox = 1;
  for (int d = 1; d < nd; d++) nvox *= shape[d];
  const float *src = lm_tensor_data(logits);
  void *dst = lm_tensor_data(o);
  lm_dtype dt = lm_tensor_dtype(o);
#pragma omp parallel for schedule(static)
  for (int64_t lin = 0; lin < nvox; lin++) {
    int64_t rem = lin, loff = 0, ooff = 0;
    for (int d = nd - 1; d >= 1; d--) {
      int64_t i = rem % shape[d];
      rem /= shape[d];
      loff += i * ls[d];
      ooff += i * os[d];
    }
    int64_t best = 0;
    float bv = src[loff];
    for (int64_t c = 1; c < nch && !isnan(bv); c++) {
      float v = src[loff + c * ls[0]];
      if (v > bv || isnan(v)) {
        best = c;
        bv = v;
      }
    }
    if (dt == LM_U8) ((uint8_t *)dst)[ooff] = (uint8_t)best;
    else ((int32_t *)dst)[ooff] = (int32_t)best;
  }
  return LM_OK;
}
