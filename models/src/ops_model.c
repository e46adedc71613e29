/* The inference ops: LoadModel (a file, a package folder or a repository
 * name -> a model, returned as a MODEL result) and Infer (the network on a
 * whole channels-first image, on the engine's inference thread). */
#include <string.h>

#include "infer_input.h"
#include "infer_stream.h"
#include "lumen.h"
#include "model_internal.h"

/* ---- LoadModel ---- */

static int check_choice(lm_op_ctx *ctx, const char *opt, const char *const *allowed)
{
  const char *v = lm_arg_string(ctx, opt);
  if (!v) return LM_OK;
  for (const char *const *a = allowed; *a; a++)
    if (strcmp(v, *a) == 0) return LM_OK;
  return lm_ctx_error(ctx, LM_EINVAL, "option '%s' is \"%s\"; expected one of %s%s%s%s%s", opt,
                      v, allowed[0], allowed[1] ? ", " : "", allowed[1] ? allowed[1] : "",
                      allowed[1] && allowed[2] ? ", " : "",
                      allowed[1] && allowed[2] ? allowed[2] : "");
}

static int load_check(lm_op_ctx *ctx)
{
  static const char *const formats[] = {"onnx", "tfjs", "graph", NULL};
  static const char *const precisions[] = {"float32", "bfloat16", NULL};
  static const char *const axes[] = {"XYZ", "ZYX", NULL};
  int st;
  if ((st = check_choice(ctx, "format", formats)) < 0 ||
      (st = check_choice(ctx, "precision", precisions)) < 0 ||
      (st = check_choice(ctx, "axes", axes)) < 0)
    return st;
  return LM_OK;
}

static int load_run(lm_op_ctx *ctx)
{
  lm_engine *e = lm_ctx_engine(ctx);
  lm_model_options opt;
  lm_model_options_init(&opt);
  opt.format = lm_arg_string(ctx, "format");
  opt.precision = lm_arg_string(ctx, "precision");
  opt.axes = lm_arg_string(ctx, "axes");
  lm_model *m = NULL;
  int st = lm_model_load(e, lm_arg_string(ctx, "path"), &opt, &m);
  if (st < 0) return lm_ctx_error(ctx, st, "%s", lm_errmsg(e));
  st = lm_params_set_model(lm_ctx_results(ctx), "model", m);
  lm_model_release(m); /* the results hold their own reference */
  if (st < 0) return lm_ctx_error(ctx, st, "out of memory");
  return LM_OK;
}

static const lm_arg_desc load_args[] = {
  {"path", LM_ARG_STRING, NULL,
   "a model file (.onnx, a tfjs model.json, a lumen graph .json), a package folder (with "
   "metadata.json), or a bare name looked up in the model repository ($LUMEN_MODELS, "
   "`lumen run --models DIR`)"},
  {"format", LM_ARG_STRING, "nil",
   "'onnx', 'tfjs' or 'graph'; default: from the package metadata, else the file"},
  {"precision", LM_ARG_STRING, "nil",
   "'float32' or 'bfloat16' (convolutions in bf16 with float32 accumulation where the CPU "
   "has it); default: from the package, else float32"},
  {"axes", LM_ARG_STRING, "nil",
   "spatial axis order the network expects: 'XYZ' (the image array as lumen holds it) or "
   "'ZYX' (reversed, e.g. an ONNX export fed with a C-order NIfTI buffer); default: from the "
   "package, else XYZ"},
};

const lm_op_desc lm_op_load_model = {
  .name = "LoadModel",
  .summary = "Load a network or a model package (ONNX, tfjs layers, lumen graph)",
  .doc =
      "Returns a Model: its name, axes, inputs and outputs (names and shapes), labels and the\n"
      "package metadata.  A package is a folder with metadata.json (name, labels, type, axes,\n"
      "spacing, weights, ...), the weights and pipeline.lua (see models/README.md).\n"
      "The network is prepared once (constants folded, BatchNorm folded into convolutions);\n"
      "plans for each input shape are built on first use and cached.\n"
      "\n"
      "  local net = LoadModel{path = 'models/demo_unet'}\n"
      "  local logits = Infer(net, x)          -- or net:infer(x)",
  .inputs = "",
  .min_inputs = 0,
  .max_inputs = 0,
  .outputs = "",
  .args = load_args,
  .nargs = sizeof load_args / sizeof load_args[0],
  .flags = LM_OP_SOURCE | LM_OP_IO,
  .check = load_check,
  .run_cpu = load_run,
};

/* ---- Infer ---- */

static int infer_check(lm_op_ctx *ctx)
{
  lm_model *m = lm_arg_model(ctx, "model");
  if (!m) return lm_ctx_error(ctx, LM_EINVAL, "option 'model' is missing");
  if (lm_model_ninputs(m) != 1)
    return lm_ctx_error(ctx, LM_EUNSUPPORTED, "model '%s' has %d inputs; Infer runs "
                                              "single-input networks", lm_model_name(m),
                        lm_model_ninputs(m));
  static const char *const streams[] = {"auto", "always", "never", NULL};
  int st = check_choice(ctx, "stream", streams);
  if (st < 0) return st;
  const char *prec = lm_arg_string(ctx, "precision");
  if (strcmp(prec, "auto") && strcmp(prec, "float32") && strcmp(prec, "float16") &&
      strcmp(prec, "bfloat16"))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'precision' is \"%s\"; expected one of auto, "
                        "float32, float16, bfloat16", prec);
  if (lm_arg_bool(ctx, "argmax") && !lm_arg_is_set(ctx, "output") && lm_model_noutputs(m) != 1)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'argmax': model '%s' has %d outputs; say which "
                        "with 'output'", lm_model_name(m), lm_model_noutputs(m));
  if (lm_arg_is_set(ctx, "output")) {
    int64_t k = lm_arg_int(ctx, "output");
    if (k < 0 || k >= lm_model_noutputs(m))
      return lm_ctx_error(ctx, LM_EINVAL, "option 'output' is %lld; model '%s' has outputs 0..%d",
                          (long long)k, lm_model_name(m), lm_model_noutputs(m) - 1);
  }
  return LM_OK;
}

/* Reverse the spatial axes (2..) of t: ZYX networks see the array reversed. */
static int reverse_spatial(lm_tensor *t, lm_tensor **out)
{
  int nd = lm_tensor_ndim(t), perm[LM_MAX_DIMS];
  for (int d = 0; d < nd; d++) perm[d] = d < 2 ? d : nd - 1 - (d - 2);
  return lm_tensor_permute(t, perm, out);
}

/* The view kinds Infer makes around the network. */
typedef enum { VIEW_BATCH, VIEW_UNBATCH, VIEW_REVERSE } view_kind;

/* Replace *t by a view of it, releasing the old one. */
static int make_view(lm_tensor **t, view_kind kind)
{
  lm_tensor *v = NULL;
  int st = kind == VIEW_BATCH     ? lm_tensor_unsqueeze(*t, 0, &v)
           : kind == VIEW_UNBATCH ? lm_tensor_squeeze(*t, 0, &v)
                                  : reverse_spatial(*t, &v);
  if (st < 0) return st;
  lm_tensor_release(*t);
  *t = v;
  return LM_OK;
}

/* Stream a conv chain slice by slice (conv_stream.h) instead of running the
** whole volume through a plan?  'auto': for chains on volumes large enough
** that whole-volume activations (channels x voxels each) would dominate
** memory. */
static bool use_stream(lm_op_ctx *ctx, lm_model *m, lm_tensor *v)
{
  const char *mode = lm_arg_string(ctx, "stream");
  if (strcmp(mode, "never") == 0) return false;
  if (strcmp(mode, "always") == 0) return true;
  if (lm_tensor_ndim(v) != 5 || lm_tensor_shape(v)[0] != 1) return false;
  const int64_t *s = lm_tensor_shape(v);
  return s[2] * s[3] * s[4] >= (int64_t)96 * 96 * 96 && lm_model_streamable(m);
}

int lm_infer_input_layout(lm_op_ctx *ctx, lm_model *m, const lm_tensor *x, bool *batch,
                          bool *zyx)
{
  int64_t decl[LM_MAX_DIMS];
  int rank = lm_model_input_shape(m, 0, decl);
  int nd = lm_tensor_ndim(x);
  *zyx = strcmp(lm_model_axes(m), "ZYX") == 0;
  if (rank < 0 || nd == rank - 1) *batch = true;
  else if (nd == rank) *batch = false;
  else
    return lm_ctx_error(ctx, LM_ESHAPE, "x has %d dims; model '%s' takes (N, C, ...) with %d "
                                        "dims, so x must be (C, spatial...) with %d dims or "
                                        "(N, C, spatial...) with %d", nd, lm_model_name(m),
                        rank, rank - 1, rank);
  return LM_OK;
}

static int infer_run(lm_op_ctx *ctx)
{
  lm_model *m = lm_arg_model(ctx, "model");
  lm_tensor *x = lm_ctx_input(ctx, 0);
  bool batch, zyx;
  int st = lm_infer_input_layout(ctx, m, x, &batch, &zyx);
  if (st < 0) return st;
  lm_tensor *v = lm_tensor_retain(x);
  if (batch && (st = make_view(&v, VIEW_BATCH)) < 0) goto fail;
  if (zyx && (st = make_view(&v, VIEW_REVERSE)) < 0) goto fail;

  /* On the CPU: 'auto' is the model's precision, bfloat16 the bf16
  ** convolutions where the CPU has them; float16 runs on CUDA only. */
  const char *prec = lm_arg_string(ctx, "precision");
  if (!strcmp(prec, "float16")) {
    lm_tensor_release(v);
    return lm_ctx_error(ctx, LM_EUNSUPPORTED, "option 'precision': float16 runs on CUDA only "
                        "(x is on the CPU); use float32 or bfloat16, or move x to cuda");
  }
  bool bf16 = !strcmp(prec, "auto") ? m->bf16 : !strcmp(prec, "bfloat16");
  bool argmax = lm_arg_bool(ctx, "argmax");
  if (use_stream(ctx, m, v)) {
    lm_tensor *o = NULL;
    st = lm_infer_streamed(ctx, m, x, v, zyx, argmax, bf16, &o);
    lm_tensor_release(v);
    return st < 0 ? st : lm_ctx_set_output(ctx, 0, o);
  }

  int want = lm_arg_is_set(ctx, "output") ? (int)lm_arg_int(ctx, "output") : -1;
  int nout = want >= 0 ? want + 1 : lm_model_noutputs(m);
  if (nout > LM_MAX_OUTPUTS) nout = LM_MAX_OUTPUTS;
  lm_tensor *outs[LM_MAX_OUTPUTS] = {0};
  st = lm_model_run_prec(m, ctx, &v, 1, outs, nout, bf16);
  lm_tensor_release(v);
  v = NULL;
  if (st < 0) return st;
  int slot = 0;
  for (int i = 0; i < nout; i++) {
    lm_tensor *o = outs[i];
    outs[i] = NULL;
    if (want >= 0 && i != want) {
      lm_tensor_release(o);
      continue;
    }
    if (st >= 0 && zyx && lm_tensor_ndim(o) >= 3) st = make_view(&o, VIEW_REVERSE);
    if (st >= 0 && batch && lm_tensor_ndim(o) >= 1 && lm_tensor_shape(o)[0] == 1)
      st = make_view(&o, VIEW_UNBATCH);
    if (st < 0) {
      lm_tensor_release(o);
      continue;
    }
    /* The logits lie on x's grid: same affine and trace; the layout holds
    ** when the channel axis replaced x's channel axis. */
    lm_tensor_set_affine(o, lm_tensor_affine(x));
    lm_tensor_set_layout(o, lm_tensor_ndim(o) == lm_tensor_ndim(x) ? lm_tensor_layout(x) : "");
    lm_tensor_trace_copy(o, x);
    if (argmax) {
      lm_tensor *lab = NULL;
      st = lm_logits_argmax(o, &lab);
      lm_tensor_release(o);
      if (st < 0) continue;
      o = lab;
    }
    st = lm_ctx_set_output(ctx, slot++, o);
    if (argmax) break;
  }
  for (int i = 0; i < nout; i++) lm_tensor_release(outs[i]);
  if (st < 0) return lm_ctx_error(ctx, st, "model '%s': cannot make the output views",
                                  lm_model_name(m));
  return LM_OK;
fail:
  lm_tensor_release(v);
  return lm_ctx_error(ctx, st, "cannot make the input view for model '%s'", lm_model_name(m));
}

static const lm_arg_desc infer_args[] = {
  {"model", LM_ARG_MODEL, NULL,
   "the network (a Model from LoadModel); from Lua it may also be given positionally: "
   "Infer(model, x)"},
  {"output", LM_ARG_INT, "nil",
   "return only this output (0-based); default: every output of the network"},
  {"argmax", LM_ARG_BOOL, "false",
   "return the label map (1, spatial...) instead of the logits: argmax over the output's "
   "channels (first maximum wins, NaN is the maximum; uint8 up to 256 classes, else int32)"},
  {"stream", LM_ARG_STRING, "'auto'",
   "'auto', 'always' or 'never': run a chain of stride-1 'same' convolutions and pointwise "
   "activations (MeshNet) slice by slice, holding only the receptive field's depth of each "
   "layer; 'auto' streams such chains on volumes of at least 96^3 voxels (CPU only)"},
  {"precision", LM_ARG_STRING, "'auto'",
   "'auto', 'float32', 'float16' or 'bfloat16': the precision of the activations and "
   "convolutions (math and norm statistics stay float32 / float64; the logits are float32). "
   "'auto': the model's precision (LoadModel's option or the package's metadata) if it sets "
   "one, else float32 on the CPU and float16 on CUDA.  On the CPU bfloat16 means bf16 "
   "convolutions where the CPU has them and float16 is an error"},
  {"channels_last", LM_ARG_BOOL, "false",
   "CUDA: keep activations channels-last (N, spatial..., C) between layers (cuDNN's fast "
   "layout for float16/bfloat16); networks with ops that have no channels-last kernel "
   "(pooling, Resize, Pad, Transpose, Softmax, reshapes) are refused with the node named"},
  {"cuda_graph", LM_ARG_BOOL, "false",
   "CUDA: capture the network's launches once as a CUDA graph and replay it on later calls "
   "of the same shape (less launch overhead for small inputs)"},
};

const lm_op_desc lm_op_infer = {
  .name = "Infer",
  .summary = "Run a network on a whole channels-first image (float32 logits)",
  .doc =
      "x is (C, spatial...) as ConvertToChannelsFirst gives it; the batch axis is added (and\n"
      "removed from the outputs).  x may also be (N, C, spatial...) with the network's rank.\n"
      "A model whose axes are 'ZYX' sees the spatial axes reversed, and its outputs are\n"
      "reversed back, so the logits are (C_out, spatial...) on x's grid: x's affine, layout\n"
      "and trace.  Any input dtype is converted to float32.  Runs on the engine's inference\n"
      "thread (not libuv's pool), so the loop and other pipelines keep going; cancellation\n"
      "is checked between layers.  For volumes larger than the network's patch, use\n"
      "SlidingWindowInfer.\n"
      "\n"
      "Fully convolutional chains (stride-1 'same' convolutions with pointwise activations,\n"
      "such as brainchop's MeshNets) are streamed slice by slice along the network's first\n"
      "spatial axis (option stream): each layer keeps only the 2h+1 slices its successor\n"
      "reads (h = dilation * (k - 1) / 2), so memory is the receptive field's depth, not\n"
      "channels x volume; the result is the whole-volume result.  With argmax = true the\n"
      "labels are made slice by slice too, and full-size logits never exist.\n"
      "\n"
      "\n"
      "With x on a CUDA device the network runs there (transforms/cuda/gpu_plan.c): the CPU\n"
      "planner's fused steps and memory layout, convolutions through cuDNN, activations in\n"
      "the 'precision' option's type (float16 by default on CUDA), float32 logits on the\n"
      "device.  Plans are built on first use per shape and options and kept with the model.\n"
      "\n"
      "  local logits = Infer(net, x)\n"
      "  local labels = Argmax(logits)",
  .inputs = "x",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "logits",
  .args = infer_args,
  .nargs = sizeof infer_args / sizeof infer_args[0],
  .flags = LM_OP_MODEL,
  .check = infer_check,
  .run_cpu = infer_run,
};
