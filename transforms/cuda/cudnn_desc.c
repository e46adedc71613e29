/* cuDNN backend descriptors for one convolution graph: tensors, the
 * convolution, the bias and activation pointwise ops, the operation graph,
 * and the heuristics that turn it into engine configs.  No GPU is needed up
 * to here (inference.md section 2.2), so CPU-only CI tests all of it. */
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudnn_internal.h"
#include "lumen.h"

int lmc_conv_bad(char *err, size_t errlen, const char *fmt, ...)
{
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return LM_EINVAL;
}

int lmc_cudnn_fail(char *err, size_t errlen, const char *step, cudnnStatus_t st)
{
  char last[256] = "";
  cudnnGetLastErrorString(last, sizeof last);
  if (err && errlen)
    snprintf(err, errlen, "cudnn: %s: %s%s%s%s", step, cudnnGetErrorString(st),
             last[0] ? " (" : "", last, last[0] ? ")" : "");
  return st == CUDNN_STATUS_NOT_SUPPORTED ? LM_EUNSUPPORTED : LM_ECUDA;
}

void lmc_bag_free(lmc_bag *b)
{
  for (int i = b->n - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(b->d[i]);
  b->n = 0;
}

/* ---- geometry ----------------------------------------------------------- */

/* Dense strides of dims[0..nd) in NC... order, or with dim 1 innermost. */
static void strides_of(const int64_t *dims, int nd, bool channels_last, int64_t *s)
{
  if (!channels_last) {
    s[nd - 1] = 1;
    for (int i = nd - 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1];
    return;
  }
  s[1] = 1;
  s[nd - 1] = dims[1];
  for (int i = nd - 2; i >= 2; i--) s[i] = s[i + 1] * dims[i + 1];
  s[0] = s[2] * dims[2];
}

int lmc_geom_of(const lm_conv_desc *d, bool channels_last, lmc_geom *g, char *err, size_t errlen)
{
  memset(g, 0, sizeof *g);
  if (d->nsp < 1 || d->nsp > 3) return lmc_conv_bad(err, errlen, "conv: nsp = %d, want 1, 2 or 3", d->nsp);
  if (d->n < 1 || d->cin < 1 || d->cout < 1 || d->group < 1)
    return lmc_conv_bad(err, errlen, "conv: n, cin, cout and group must be >= 1");
  if (d->cin % d->group || d->cout % d->group)
    return lmc_conv_bad(err, errlen, "conv: group = %lld does not divide cin = %lld and cout = %lld",
                        (long long)d->group, (long long)d->cin, (long long)d->cout);
  if ((int)d->act < LM_ACT_NONE || d->act > LM_ACT_CLIP)
    return lmc_conv_bad(err, errlen, "conv: act = %d is not an lm_act", (int)d->act);
  /* 1-D: a 2-D conv over [1, L]. */
  int ns = d->nsp == 1 ? 2 : d->nsp, off = ns - d->nsp;
  g->nd = 2 + ns;
  for (int j = 0; j < off; j++) {
    g->x[2 + j] = g->y[2 + j] = g->w[2 + j] = 1;
    g->stride[j] = g->dil[j] = 1;
  }
  for (int j = 0; j < d->nsp; j++) {
    int a = off + j;
    if (d->in[j] < 1 || d->out[j] < 1 || d->k[j] < 1 || d->stride[j] < 1 || d->dil[j] < 1)
      return lmc_conv_bad(err, errlen, "conv: in, out, k, stride and dil [%d] must be >= 1", j);
    if (d->pad_lo[j] < 0 || d->pad_hi[j] < 0)
      return lmc_conv_bad(err, errlen, "conv: pad_lo/pad_hi[%d] must be >= 0", j);
    int64_t span = d->dil[j] * (d->k[j] - 1) + 1;
    g->x[2 + a] = d->in[j];
    g->y[2 + a] = d->out[j];
    g->w[2 + a] = d->k[j];
    g->stride[a] = d->stride[j];
    g->dil[a] = d->dil[j];
    g->pre[a] = d->pad_lo[j];
    g->post[a] = d->pad_hi[j];
    if (!d->transposed) {
      int64_t padded = d->in[j] + d->pad_lo[j] + d->pad_hi[j];
      int64_t want = padded >= span ? (padded - span) / d->stride[j] + 1 : 0;
      if (d->out[j] != want)
        return lmc_conv_bad(err, errlen, "conv: out[%d] = %lld, but in, k, stride, dil and pads give %lld",
                            j, (long long)d->out[j], (long long)want);
    } else {
      /* ConvTranspose = BACKWARD_DATA with DX = out: cuDNN checks that the
       * forward conv of DX gives DY = in.  output_padding (out - base) adds
       * rows at the high end that no input reaches; taking it off the post
       * padding keeps that check exact.  Where pad_hi is smaller, floor
       * division still gives `in` as long as output_padding < stride. */
      int64_t base = d->stride[j] * (d->in[j] - 1) + span - d->pad_lo[j] - d->pad_hi[j];
      int64_t opad = d->out[j] - base;
      if (opad < 0 || opad >= (d->stride[j] > d->dil[j] ? d->stride[j] : d->dil[j]))
        return lmc_conv_bad(err, errlen,
                            "conv: out[%d] = %lld, but in, k, stride, dil and pads give %lld plus "
                            "an output_padding below max(stride, dil)", j, (long long)d->out[j],
                            (long long)base);
      if (d->pad_hi[j] >= opad)
        g->post[a] = d->pad_hi[j] - opad;
      else if (opad >= d->stride[j])
        return lmc_conv_bad(err, errlen,
                            "conv: ConvTranspose output_padding[%d] = %lld >= stride %lld with "
                            "pad_hi %lld: not expressible as a cuDNN backward-data conv", j,
                            (long long)opad, (long long)d->stride[j], (long long)d->pad_hi[j]);
    }
  }
  g->x[0] = g->y[0] = d->n;
  g->x[1] = d->cin;
  g->y[1] = d->cout;
  /* W as cuDNN's fprop filter [K, C/g, k...] where K = channels of y for
   * fprop, of DY (= x) for BACKWARD_DATA: exactly ONNX's Conv and
   * ConvTranspose layouts.  The group count is implied by x's C / W's C. */
  g->w[0] = d->transposed ? d->cin : d->cout;
  g->w[1] = d->transposed ? d->cout / d->group : d->cin / d->group;
  for (int i = 0; i < g->nd; i++) g->b[i] = 1;
  g->b[1] = d->cout;
  strides_of(g->x, g->nd, channels_last, g->xs);
  strides_of(g->y, g->nd, channels_last, g->ys);
  strides_of(g->w, g->nd, channels_last, g->ws);
  strides_of(g->b, g->nd, channels_last, g->bs);
  return LM_OK;
}

/* ---- descriptors -------------------------------------------------------- */

static cudnnDataType_t data_type(lmc_prec p)
{
  return p == LMC_PREC_F16 ? CUDNN_DATA_HALF : p == LMC_PREC_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

/* One builder of the graph: the bag, the error, the step names. */
typedef struct gb {
  lmc_bag *bag;
  char *err;
  size_t errlen;
  int rc;                        /* first failure */
} gb;

#define GB_CALL(b, step, call)                                  \
  do {                                                          \
    if ((b)->rc == LM_OK) {                                     \
      cudnnStatus_t st_ = (call);                               \
      if (st_ != CUDNN_STATUS_SUCCESS)                          \
        (b)->rc = lmc_cudnn_fail((b)->err, (b)->errlen, step, st_); \
    }                                                           \
  } while (0)

static cudnnBackendDescriptor_t gb_new(gb *b, cudnnBackendDescriptorType_t type, const char *step)
{
  cudnnBackendDescriptor_t d = NULL;
  if (b->rc < 0) return NULL;
  if (b->bag->n == LMC_BAG_MAX) {
    b->rc = lmc_conv_bad(b->err, b->errlen, "cudnn: %s: too many descriptors (a bug)", step);
    return NULL;
  }
  GB_CALL(b, step, cudnnBackendCreateDescriptor(type, &d));
  if (b->rc == LM_OK) b->bag->d[b->bag->n++] = d;
  return d;
}

static void gb_set(gb *b, cudnnBackendDescriptor_t d, const char *step, cudnnBackendAttributeName_t name,
                   cudnnBackendAttributeType_t type, int64_t count, const void *value)
{
  if (b->rc < 0) return;
  GB_CALL(b, step, cudnnBackendSetAttribute(d, name, type, count, value));
}

static cudnnBackendDescriptor_t gb_tensor(gb *b, const char *step, int64_t uid, cudnnDataType_t dt, int nd,
                                          const int64_t *dims, const int64_t *strides, bool is_virtual)
{
  cudnnBackendDescriptor_t t = gb_new(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR, step);
  int64_t align = 16;
  gb_set(b, t, step, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
  gb_set(b, t, step, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, nd, dims);
  gb_set(b, t, step, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, nd, strides);
  gb_set(b, t, step, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  gb_set(b, t, step, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
  gb_set(b, t, step, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
  if (b->rc == LM_OK) GB_CALL(b, step, cudnnBackendFinalize(t));
  return t;
}

/* A pointwise op y = mode(x [, bt]) with float math.  act parameters from d
** when mode is an activation. */
static cudnnBackendDescriptor_t gb_pointwise(gb *b, const char *step, cudnnPointwiseMode_t mode,
                                             const lm_conv_desc *d, cudnnBackendDescriptor_t x,
                                             cudnnBackendDescriptor_t bt, cudnnBackendDescriptor_t y)
{
  cudnnBackendDescriptor_t pw = gb_new(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, step);
  cudnnDataType_t math = CUDNN_DATA_FLOAT;
  gb_set(b, pw, step, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
  gb_set(b, pw, step, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &math);
  /* The attribute values are float because the math precision is float
   * (cudnn_frontend does the same). */
  if (mode == CUDNN_POINTWISE_RELU_FWD && d->act == LM_ACT_LEAKY_RELU) {
    float lo = 0.0f, slope = d->alpha;
    gb_set(b, pw, step, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_FLOAT, 1, &lo);
    gb_set(b, pw, step, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP_SLOPE, CUDNN_TYPE_FLOAT, 1, &slope);
  } else if (mode == CUDNN_POINTWISE_RELU_FWD && d->act == LM_ACT_CLIP) {
    /* Clip = ReLU with both clips and slope 0; infinite bounds as FLT_MAX. */
    float lo = d->alpha < -FLT_MAX ? -FLT_MAX : d->alpha, hi = d->beta > FLT_MAX ? FLT_MAX : d->beta;
    float slope = 0.0f;
    gb_set(b, pw, step, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_FLOAT, 1, &lo);
    gb_set(b, pw, step, CUDNN_ATTR_POINTWISE_RELU_UPPER_CLIP, CUDNN_TYPE_FLOAT, 1, &hi);
    gb_set(b, pw, step, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP_SLOPE, CUDNN_TYPE_FLOAT, 1, &slope);
  } else if (mode == CUDNN_POINTWISE_ELU_FWD) {
    float alpha = d->alpha;
    gb_set(b, pw, step, CUDNN_ATTR_POINTWISE_ELU_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
  } else if (mode == CUDNN_POINTWISE_SWISH_FWD) {
    float beta = 1.0f;   /* SiLU = x * sigmoid(1 * x) */
    gb_set(b, pw, step, CUDNN_ATTR_POINTWISE_SWISH_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
  }
  if (b->rc == LM_OK) GB_CALL(b, step, cudnnBackendFinalize(pw));

  cudnnBackendDescriptor_t op = gb_new(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, step);
  gb_set(b, op, step, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
  gb_set(b, op, step, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
  if (bt) gb_set(b, op, step, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bt);
  gb_set(b, op, step, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
  if (b->rc == LM_OK) GB_CALL(b, step, cudnnBackendFinalize(op));
  return op;
}

static cudnnPointwiseMode_t act_mode(lm_act a)
{
  switch (a) {
  case LM_ACT_RELU: case LM_ACT_LEAKY_RELU: case LM_ACT_CLIP: return CUDNN_POINTWISE_RELU_FWD;
  case LM_ACT_ELU: return CUDNN_POINTWISE_ELU_FWD;
  case LM_ACT_SIGMOID: return CUDNN_POINTWISE_SIGMOID_FWD;
  case LM_ACT_TANH: return CUDNN_POINTWISE_TANH_FWD;
  case LM_ACT_GELU: return CUDNN_POINTWISE_GELU_FWD;       /* erf form, as LM_ACT_GELU */
  case LM_ACT_SILU: return CUDNN_POINTWISE_SWISH_FWD;
  default: return CUDNN_POINTWISE_IDENTITY;
  }
}

int lmc_graph_build(cudnnHandle_t h, const lm_conv_desc *d, const lmc_geom *g, lmc_prec prec,
                    lmc_fusion fuse, lmc_bag *bag, cudnnBackendDescriptor_t *graph, char *err,
                    size_t errlen)
{
  gb b = {.bag = bag, .err = err, .errlen = errlen, .rc = LM_OK};
  cudnnDataType_t dt = data_type(prec), f32 = CUDNN_DATA_FLOAT;
  bool act = fuse == LMC_FUSE_BIAS_ACT && d->act != LM_ACT_NONE, has_bias = fuse != LMC_FUSE_CONV;
  *graph = NULL;

  cudnnBackendDescriptor_t x = gb_tensor(&b, "tensor X", LMC_UID_X, dt, g->nd, g->x, g->xs, false);
  cudnnBackendDescriptor_t w = gb_tensor(&b, "tensor W", LMC_UID_W, dt, g->nd, g->w, g->ws, false);
  cudnnBackendDescriptor_t bias =
      has_bias ? gb_tensor(&b, "tensor bias", LMC_UID_B, dt, g->nd, g->b, g->bs, false) : NULL;
  cudnnBackendDescriptor_t y = gb_tensor(&b, "tensor Y", LMC_UID_Y, dt, g->nd, g->y, g->ys, false);
  /* float32 virtual intermediates: conv out (unless the conv writes Y), and
   * bias-add out when an activation follows. */
  cudnnBackendDescriptor_t cv = has_bias ? gb_tensor(&b, "tensor conv out (virtual)", LMC_UID_CONV_OUT, f32,
                                                     g->nd, g->y, g->ys, true) : y;
  cudnnBackendDescriptor_t av = act ? gb_tensor(&b, "tensor bias out (virtual)", LMC_UID_ADD_OUT, f32,
                                                g->nd, g->y, g->ys, true) : NULL;

  int64_t ns = g->nd - 2;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnBackendDescriptor_t conv = gb_new(&b, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, "convolution");
  gb_set(&b, conv, "convolution", CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &ns);
  gb_set(&b, conv, "convolution", CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
  gb_set(&b, conv, "convolution", CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  gb_set(&b, conv, "convolution", CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, ns, g->pre);
  gb_set(&b, conv, "convolution", CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, ns, g->post);
  gb_set(&b, conv, "convolution", CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, ns, g->stride);
  gb_set(&b, conv, "convolution", CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, ns, g->dil);
  if (b.rc == LM_OK) GB_CALL(&b, "convolution", cudnnBackendFinalize(conv));

  float one = 1.0f, zero = 0.0f;
  cudnnBackendDescriptor_t cop;
  if (!d->transposed) {
    const char *st = "convolution forward op";
    cop = gb_new(&b, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, st);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cv);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
           &conv);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &one);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &zero);
    if (b.rc == LM_OK) GB_CALL(&b, st, cudnnBackendFinalize(cop));
  } else {
    const char *st = "convolution backward-data op (ConvTranspose)";
    cop = gb_new(&b, CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, st);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cv);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
           &conv);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_TYPE_FLOAT, 1, &one);
    gb_set(&b, cop, st, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, CUDNN_TYPE_FLOAT, 1, &zero);
    if (b.rc == LM_OK) GB_CALL(&b, st, cudnnBackendFinalize(cop));
  }

  cudnnBackendDescriptor_t ops[3];
  int nops = 0;
  ops[nops++] = cop;
  if (has_bias) ops[nops++] = gb_pointwise(&b, "bias add op", CUDNN_POINTWISE_ADD, d, cv, bias, act ? av : y);
  if (act) ops[nops++] = gb_pointwise(&b, "activation op", act_mode(d->act), d, av, NULL, y);

  const char *st = "operation graph";
  cudnnBackendDescriptor_t og = gb_new(&b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, st);
  gb_set(&b, og, st, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, nops, ops);
  /* The handle binds the graph to the device; deprecated since 9.8 but still
   * honoured, and the graph needs none for heuristics (graph checks without
   * a GPU pass NULL). */
  if (h) gb_set(&b, og, st, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
  if (b.rc == LM_OK) GB_CALL(&b, st, cudnnBackendFinalize(og));
  if (b.rc < 0) {
    lmc_bag_free(bag);
    return b.rc;
  }
  *graph = og;
  return LM_OK;
}

/* ---- heuristics --------------------------------------------------------- */

void lmc_cfgs_free(cudnnBackendDescriptor_t *cfgs, int n)
{
  for (int i = 0; i < n; i++)
    if (cfgs[i]) cudnnBackendDestroyDescriptor(cfgs[i]);
  free(cfgs);
}

/* False when cfg's engine may not be used: it converts its inputs down
** (never: that changes the results of every precision), or it runs float32
** on tensor cores (TF32) in F32 mode, which must match the CPU at 1e-4.
** The same rule as PyTorch's cuDNN v8 path with allow_tf32 off. */
static bool cfg_allowed(cudnnBackendDescriptor_t cfg, lmc_prec prec)
{
  cudnnBackendDescriptor_t eng = NULL;
  if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS)
    return false;
  int64_t n = 0;
  bool ok = false;
  if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) ==
          CUDNN_STATUS_SUCCESS && n == 1) {
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t nn = 0;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &nn, notes) == CUDNN_STATUS_SUCCESS) {
      ok = true;
      for (int64_t i = 0; i < nn; i++)
        if (notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS ||
            (prec == LMC_PREC_F32 && notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE))
          ok = false;
    }
  }
  cudnnBackendDestroyDescriptor(eng);
  return ok;
}

/* Appends mode's configs to *cfgs. */
static int heur_mode(cudnnBackendDescriptor_t graph, cudnnBackendHeurMode_t mode, const char *name,
                     lmc_prec prec, cudnnBackendDescriptor_t **cfgs, int *ncfgs, int *nraw, char *err,
                     size_t errlen)
{
  cudnnBackendDescriptor_t heur = NULL;
  char step[96];
  snprintf(step, sizeof step, "heuristics %s", name);
  cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                  &graph);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(heur);
  int64_t count = 0;
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                  NULL);
  if (st != CUDNN_STATUS_SUCCESS) {
    if (heur) cudnnBackendDestroyDescriptor(heur);
    return lmc_cudnn_fail(err, errlen, step, st);
  }
  *nraw += (int)count;
  if (count == 0) {
    cudnnBackendDestroyDescriptor(heur);
    return LM_OK;
  }
  cudnnBackendDescriptor_t *got = calloc((size_t)count, sizeof *got);
  cudnnBackendDescriptor_t *all = realloc(*cfgs, (size_t)(*ncfgs + count) * sizeof *all);
  if (!got || !all) {
    free(got);
    if (all) *cfgs = all;
    cudnnBackendDestroyDescriptor(heur);
    lmc_conv_bad(err, errlen, "cudnn: %s: out of memory", step);
    return LM_ENOMEM;
  }
  *cfgs = all;
  for (int64_t i = 0; i < count && st == CUDNN_STATUS_SUCCESS; i++)
    st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &got[i]);
  int64_t n = 0;
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &n,
                                  got);
  cudnnBackendDestroyDescriptor(heur);
  if (st != CUDNN_STATUS_SUCCESS) {
    lmc_cfgs_free(got, (int)count);
    return lmc_cudnn_fail(err, errlen, step, st);
  }
  for (int64_t i = 0; i < count; i++) {
    if (i < n && cfg_allowed(got[i], prec))
      all[(*ncfgs)++] = got[i];
    else
      cudnnBackendDestroyDescriptor(got[i]);
  }
  free(got);
  return LM_OK;
}

int lmc_heuristics(cudnnBackendDescriptor_t graph, lmc_prec prec, cudnnBackendDescriptor_t **cfgs,
                   int *ncfgs, int *nraw, char *err, size_t errlen)
{
  *cfgs = NULL;
  *ncfgs = 0;
  *nraw = 0;
  int rc = heur_mode(graph, CUDNN_HEUR_MODE_A, "mode A", prec, cfgs, ncfgs, nraw, err, errlen);
  /* FALLBACK's configs go after A's: they are tried only when none of A's
   * finalizes (ONNX Runtime measured FALLBACK engines several times slower).
   * Asked even when A failed: a graph A refuses may still have fallbacks. */
  char err2[512] = "";
  int rc2 = heur_mode(graph, CUDNN_HEUR_MODE_FALLBACK, "mode FALLBACK", prec, cfgs, ncfgs, nraw, err2,
                      sizeof err2);
  if (*ncfgs > 0) return LM_OK;
  lmc_cfgs_free(*cfgs, 0);
  *cfgs = NULL;
  if (*nraw > 0) return LM_OK;   /* proposals, none usable here (e.g. no GPU) */
  if (rc == LM_OK && rc2 < 0) {
    snprintf(err, errlen, "%s", err2);
    rc = rc2;
  }
  return rc;
}
