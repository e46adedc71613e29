/* Infer on CUDA (transforms/cuda/gpu_plan.c) against Infer on the CPU:
 *   - a generated ONNX network that walks every kind of GPU step: fused
 *     Conv+act, grouped dilated Conv, ConvTranspose, InstanceNorm+Add+Relu,
 *     the GroupNorm pattern, Add+Tanh, MaxPool, AveragePool, Resize (linear),
 *     broadcast Mul/Sub, Sigmoid, Concat, constant Pad, Softmax, Transpose,
 *     GlobalAveragePool, Flatten, two outputs;
 *   - the repository's demo CT U-Net (models/demo_ct_unet) on a phantom crop;
 *   - the brainchop tissue MeshNet (tfjs, $LUMEN_TEST_DATA) on a small crop.
 * float32: every logit within 1e-4 relative (of the output's largest
 * magnitude) and the labels identical; float16 / bfloat16: logits within
 * 1e-2 / 5e-2 relative and labels agreeing on >= 99.9% of the voxels.
 * In the emulated plugin the convolutions are the direct kernel; on a GPU
 * they are cuDNN's.  Exits 77 (skipped) without a CUDA device. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../c/pb_writer.h"
#include "gpu_engine.h"

static float frand(uint32_t *s)
{
  *s = *s * 1664525u + 1013904223u;
  return (float)((*s >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

/* Set: Infer calls on cuda ask for a CUDA graph (captured at the first
** call of a shape, replayed after; ignored by the emulated plugin). */
static bool use_cuda_graph;

/* Infer(model, x) with the options; outputs into out[] (count returned, -1
** on failure with the message printed). */
static int infer(lm_model *m, lm_tensor *x, const char *precision, bool argmax, bool cl,
                 lm_tensor **out)
{
  lm_params *p = params();
  lm_params_set_model(p, "model", m);
  if (precision) lm_params_set_string(p, "precision", precision);
  lm_params_set_bool(p, "argmax", argmax);
  if (cl) lm_params_set_bool(p, "channels_last", true);
  if (use_cuda_graph) lm_params_set_bool(p, "cuda_graph", true);
  lm_params_set_string(p, "stream", "never");
  int nout = LM_MAX_OUTPUTS;
  int st = lm_call(E, "Infer", &x, 1, p, out, &nout, NULL);
  lm_params_free(p);
  if (st < 0) {
    printf("# Infer failed: %s\n", lm_errmsg(E));
    return -1;
  }
  return nout;
}

/* Infer on cuda, results back on the host. */
static int infer_gpu(lm_model *m, lm_tensor *x, const char *precision, bool argmax, bool cl,
                     lm_tensor **out)
{
  lm_tensor *dx = gpu_to(x, "cuda");
  if (!dx) return -1;
  lm_tensor *dev[LM_MAX_OUTPUTS] = {0};
  int n = infer(m, dx, precision, argmax, cl, dev);
  lm_tensor_release(dx);
  for (int i = 0; i < n; i++) {
    if (lm_tensor_device(dev[i]).type != LM_DEVICE_CUDA) TAP_FAIL("output %d not on cuda", i);
    out[i] = call("ToHost", dev[i], NULL, NULL);
    lm_tensor_release(dev[i]);
  }
  return n;
}

/* Largest |a - b| over the largest |b| (shapes must match). */
static double rel_err(const lm_tensor *a, const lm_tensor *b)
{
  if (lm_tensor_ndim(a) != lm_tensor_ndim(b) ||
      memcmp(lm_tensor_shape(a), lm_tensor_shape(b), sizeof(int64_t) * (size_t)lm_tensor_ndim(a))) {
    TAP_FAIL("shapes differ");
    return INFINITY;
  }
  double worst = 0, scale = 0;
  for (int64_t p = 0; p < lm_tensor_numel(b); p++) {
    double x = at(a, p), y = at(b, p);
    if (isnan(x) != isnan(y)) return INFINITY;
    if (fabs(y) > scale) scale = fabs(y);
    if (fabs(x - y) > worst) worst = fabs(x - y);
  }
  return scale > 0 ? worst / scale : worst;
}

static double label_agreement(const lm_tensor *a, const lm_tensor *b)
{
  int64_t n = lm_tensor_numel(b), same = 0;
  if (lm_tensor_numel(a) != n || lm_tensor_dtype(a) != lm_tensor_dtype(b)) return 0;
  for (int64_t p = 0; p < n; p++) same += at(a, p) == at(b, p);
  return n ? (double)same / (double)n : 1;
}

/* The comparisons of one network and input at every precision. */
static void compare_all(lm_model *m, lm_tensor *x, const char *what, bool try_cl)
{
  lm_tensor *cpu[LM_MAX_OUTPUTS] = {0}, *cpu_lab[1] = {0};
  int nc = infer(m, x, "float32", false, false, cpu);
  CHECK(nc >= 1);
  bool one_out = nc == 1;
  if (one_out) CHECK(infer(m, x, "float32", true, false, cpu_lab) == 1);
  static const struct {
    const char *prec;
    double tol, agree;
    bool cl;
  } cases[] = {
    {"float32", 1e-4, 1.0, false},
    {"float16", 1e-2, 0.999, false},
    {"bfloat16", 5e-2, 0.999, false},
    {"float16", 1e-2, 0.999, true},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    if (cases[c].cl && !try_cl) continue;
    lm_tensor *gpu[LM_MAX_OUTPUTS] = {0}, *gpu_lab[1] = {0};
    int ng = infer_gpu(m, x, cases[c].prec, false, cases[c].cl, gpu);
    CHECK_INT(ng, nc);
    for (int i = 0; i < ng && i < nc; i++) {
      double e = rel_err(gpu[i], cpu[i]);
      printf("# %s %s%s output %d: max error %.3g of the largest logit\n", what, cases[c].prec,
             cases[c].cl ? " channels-last" : "", i, e);
      if (!(e <= cases[c].tol))
        TAP_FAIL("%s %s output %d: relative error %g > %g", what, cases[c].prec, i, e,
                 cases[c].tol);
      lm_tensor_release(gpu[i]);
    }
    if (one_out && cpu_lab[0]) {
      CHECK(infer_gpu(m, x, cases[c].prec, true, cases[c].cl, gpu_lab) == 1);
      if (gpu_lab[0]) {
        double a = label_agreement(gpu_lab[0], cpu_lab[0]);
        printf("# %s %s labels: %.5f agree\n", what, cases[c].prec, a);
        if (a < cases[c].agree)
          TAP_FAIL("%s %s labels agree on %.5f < %.5f", what, cases[c].prec, a, cases[c].agree);
      }
      lm_tensor_release(gpu_lab[0]);
    }
  }
  for (int i = 0; i < nc; i++) lm_tensor_release(cpu[i]);
  lm_tensor_release(cpu_lab[0]);
}

/* ---- a generated network -------------------------------------------------------- */

static void attr_ints(pbw *n, const char *name, int cnt, const int64_t *v)
{
  pbw a = {0};
  pbw_str(&a, 1, name);
  for (int i = 0; i < cnt; i++) pbw_int(&a, 8, v[i]);
  pbw_int(&a, 20, 7);
  pbw_msg(n, 5, &a);
}

static void attr_int(pbw *n, const char *name, int64_t v)
{
  pbw a = {0};
  pbw_str(&a, 1, name);
  pbw_int(&a, 3, v);
  pbw_int(&a, 20, 2);
  pbw_msg(n, 5, &a);
}

static void attr_float(pbw *n, const char *name, float v)
{
  pbw a = {0};
  pbw_str(&a, 1, name);
  pbw_f32(&a, 2, v);
  pbw_int(&a, 20, 1);
  pbw_msg(n, 5, &a);
}

static void attr_str(pbw *n, const char *name, const char *v)
{
  pbw a = {0};
  pbw_str(&a, 1, name);
  pbw_str(&a, 4, v);
  pbw_int(&a, 20, 3);
  pbw_msg(n, 5, &a);
}

/* A node; ins/outs NULL-terminated; attrs appended by the caller before
** node_end. */
static pbw node_begin(const char *op, const char *name, const char *const *ins,
                      const char *const *outs)
{
  pbw n = {0};
  for (int i = 0; ins[i]; i++) pbw_str(&n, 1, ins[i]);
  for (int i = 0; outs[i]; i++) pbw_str(&n, 2, outs[i]);
  pbw_str(&n, 3, name);
  pbw_str(&n, 4, op);
  return n;
}

static void rand_init(pbw *g, const char *name, int nd, const int64_t *dims, uint32_t seed,
                      float scale, float offset)
{
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= dims[i];
  float *v = malloc(sizeof *v * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = frand(&seed) * scale + offset;
  pbw t = {0};
  pbw_tensor_f32(&t, name, nd, dims, v);
  pbw_msg(g, 5, &t);
  free(v);
}

static void i64_init(pbw *g, const char *name, int n, const int64_t *v)
{
  pbw t = {0};
  int64_t d = n;
  pbw_int(&t, 1, d);
  pbw_int(&t, 2, 7);
  pbw_str(&t, 8, name);
  pbw_bytes(&t, 9, v, sizeof(int64_t) * (size_t)n);
  pbw_msg(g, 5, &t);
}

static void f32_init(pbw *g, const char *name, int nd, const int64_t *dims, const float *v)
{
  pbw t = {0};
  pbw_tensor_f32(&t, name, nd, dims, v);
  pbw_msg(g, 5, &t);
}

#define IN(...) ((const char *const[]){__VA_ARGS__, NULL})

static char *write_test_net(void)
{
  pbw g = {0}, n;
  int64_t xd[5] = {1, 2, 8, 8, 8};
  pbw_value_info(&g, 11, "x", 5, xd);
  /* c1 = LeakyRelu(Conv(x)) [1,4,8,8,8] (fused) */
  rand_init(&g, "w1", 5, (int64_t[]){4, 2, 3, 3, 3}, 1, 0.3f, 0);
  rand_init(&g, "b1", 1, (int64_t[]){4}, 2, 0.1f, 0);
  n = node_begin("Conv", "conv1", IN("x", "w1", "b1"), IN("c1"));
  attr_ints(&n, "pads", 6, (int64_t[]){1, 1, 1, 1, 1, 1});
  pbw_msg(&g, 1, &n);
  n = node_begin("LeakyRelu", "lrelu1", IN("c1"), IN("r1"));
  attr_float(&n, "alpha", 0.1f);
  pbw_msg(&g, 1, &n);
  /* p1 = MaxPool(r1) [1,4,4,4,4] */
  n = node_begin("MaxPool", "pool1", IN("r1"), IN("p1"));
  attr_ints(&n, "kernel_shape", 3, (int64_t[]){2, 2, 2});
  attr_ints(&n, "strides", 3, (int64_t[]){2, 2, 2});
  pbw_msg(&g, 1, &n);
  /* c2 = Conv(p1) grouped, dilated [1,4,4,4,4] */
  rand_init(&g, "w2", 5, (int64_t[]){4, 2, 3, 3, 3}, 3, 0.3f, 0);
  n = node_begin("Conv", "conv2", IN("p1", "w2"), IN("c2"));
  attr_int(&n, "group", 2);
  attr_ints(&n, "dilations", 3, (int64_t[]){2, 2, 2});
  attr_ints(&n, "pads", 6, (int64_t[]){2, 2, 2, 2, 2, 2});
  pbw_msg(&g, 1, &n);
  /* n2 = Relu(InstanceNorm(c2) + p1): fused with the residual */
  rand_init(&g, "in_s", 1, (int64_t[]){4}, 4, 0.5f, 1.0f);
  rand_init(&g, "in_b", 1, (int64_t[]){4}, 5, 0.2f, 0);
  n = node_begin("InstanceNormalization", "in2", IN("c2", "in_s", "in_b"), IN("n2"));
  attr_float(&n, "epsilon", 1e-5f);
  pbw_msg(&g, 1, &n);
  n = node_begin("Add", "res2", IN("n2", "p1"), IN("n2a"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Relu", "relu2", IN("n2a"), IN("n2r"));
  pbw_msg(&g, 1, &n);
  /* a2 = Sigmoid(AveragePool(n2r)) */
  n = node_begin("AveragePool", "avg2", IN("n2r"), IN("a2"));
  attr_ints(&n, "kernel_shape", 3, (int64_t[]){3, 3, 3});
  attr_ints(&n, "pads", 6, (int64_t[]){1, 1, 1, 1, 1, 1});
  pbw_msg(&g, 1, &n);
  n = node_begin("Sigmoid", "sig2", IN("a2"), IN("s2"));
  pbw_msg(&g, 1, &n);
  /* u = Resize(s2) linear x2 [1,4,8,8,8] */
  f32_init(&g, "scales", 1, (int64_t[]){5}, (float[]){1, 1, 2, 2, 2});
  n = node_begin("Resize", "up", IN("s2", "", "scales"), IN("u"));
  attr_str(&n, "mode", "linear");
  pbw_msg(&g, 1, &n);
  /* q = Tanh(Mul(u, k) - 0.25 + u): broadcast Mul, Sub, then Add+Tanh fused */
  rand_init(&g, "k", 4, (int64_t[]){4, 1, 1, 1}, 6, 1.0f, 0.5f);
  f32_init(&g, "quarter", 0, NULL, (float[]){0.25f});
  n = node_begin("Mul", "mul", IN("u", "k"), IN("m"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Sub", "sub", IN("m", "quarter"), IN("m2"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Add", "add", IN("m2", "u"), IN("q0"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Tanh", "tanh", IN("q0"), IN("q"));
  pbw_msg(&g, 1, &n);
  /* cat = Concat(r1, q) [1,8,8,8,8] */
  n = node_begin("Concat", "cat", IN("r1", "q"), IN("cat"));
  attr_int(&n, "axis", 1);
  pbw_msg(&g, 1, &n);
  /* GroupNorm (2 groups) as PyTorch exports it, then Elu */
  i64_init(&g, "gshape", 3, (int64_t[]){1, 2, -1});
  i64_init(&g, "xshape", 5, (int64_t[]){1, 8, 8, 8, 8});
  f32_init(&g, "ones2", 1, (int64_t[]){2}, (float[]){1, 1});
  f32_init(&g, "zeros2", 1, (int64_t[]){2}, (float[]){0, 0});
  rand_init(&g, "gamma", 4, (int64_t[]){8, 1, 1, 1}, 7, 0.5f, 1.0f);
  rand_init(&g, "beta", 4, (int64_t[]){8, 1, 1, 1}, 8, 0.3f, 0);
  n = node_begin("Reshape", "gn_r1", IN("cat", "gshape"), IN("gn1"));
  pbw_msg(&g, 1, &n);
  n = node_begin("InstanceNormalization", "gn_in", IN("gn1", "ones2", "zeros2"), IN("gn2"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Reshape", "gn_r2", IN("gn2", "xshape"), IN("gn3"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Mul", "gn_mul", IN("gn3", "gamma"), IN("gn4"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Add", "gn_add", IN("gn4", "beta"), IN("gn5"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Elu", "gn_elu", IN("gn5"), IN("gn6"));
  pbw_msg(&g, 1, &n);
  /* t = ConvTranspose(gn6) k2 s2 [1,3,16,16,16] */
  rand_init(&g, "wt", 5, (int64_t[]){8, 3, 2, 2, 2}, 9, 0.3f, 0);
  rand_init(&g, "bt", 1, (int64_t[]){3}, 10, 0.1f, 0);
  n = node_begin("ConvTranspose", "up2", IN("gn6", "wt", "bt"), IN("t"));
  attr_ints(&n, "strides", 3, (int64_t[]){2, 2, 2});
  attr_ints(&n, "kernel_shape", 3, (int64_t[]){2, 2, 2});
  pbw_msg(&g, 1, &n);
  /* Pad constant 0.5 -> [1,3,17,16,18], Softmax over channels, Transpose */
  i64_init(&g, "pads", 10, (int64_t[]){0, 0, 1, 0, 0, 0, 0, 0, 0, 2});
  f32_init(&g, "padv", 0, NULL, (float[]){0.5f});
  n = node_begin("Pad", "pad", IN("t", "pads", "padv"), IN("pd"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Softmax", "sm", IN("pd"), IN("sm"));
  attr_int(&n, "axis", 1);
  pbw_msg(&g, 1, &n);
  n = node_begin("Transpose", "tr", IN("sm"), IN("y"));
  attr_ints(&n, "perm", 5, (int64_t[]){0, 1, 4, 3, 2});
  pbw_msg(&g, 1, &n);
  /* z = Flatten(GlobalAveragePool(c2)) [1, 4] */
  n = node_begin("GlobalAveragePool", "gap", IN("c2"), IN("gp"));
  pbw_msg(&g, 1, &n);
  n = node_begin("Flatten", "flat", IN("gp"), IN("z"));
  pbw_msg(&g, 1, &n);
  pbw_value_info(&g, 12, "y", 5, (int64_t[]){1, 3, 18, 16, 17});
  pbw_value_info(&g, 12, "z", 2, (int64_t[]){1, 4});
  pbw m = pbw_model(&g);
  static char path[] = "/tmp/lumen_test_gpu_infer_XXXXXX.onnx";
  int fd = mkstemps(path, 5);
  if (fd < 0 || write(fd, m.p, m.n) != (ssize_t)m.n) {
    free(m.p);
    return NULL;
  }
  close(fd);
  free(m.p);
  return path;
}

static lm_tensor *rand_tensor(int nd, const int64_t *shape, uint32_t seed)
{
  lm_tensor *t = NULL;
  if (lm_tensor_new(E, LM_F32, nd, shape, LM_CPU, &t) < 0) return NULL;
  float *d = lm_tensor_data(t);
  for (int64_t i = 0; i < lm_tensor_numel(t); i++) d[i] = frand(&seed);
  return t;
}

static void test_generated_network(void)
{
  char *path = write_test_net();
  CHECK(path != NULL);
  if (!path) return;
  lm_model *m = NULL, *mz = NULL;
  lm_model_options zyx;
  lm_model_options_init(&zyx);
  zyx.axes = "ZYX";
  int st = lm_model_load(E, path, NULL, &m);
  if (st >= 0) st = lm_model_load(E, path, &zyx, &mz);
  unlink(path);
  if (st < 0) {
    TAP_FAIL("load: %s", lm_errmsg(E));
    lm_model_release(m);
    return;
  }
  lm_tensor *x = rand_tensor(4, (int64_t[]){2, 8, 8, 8}, 42);   /* batch added by Infer */
  compare_all(m, x, "generated", false);
  /* spatial axes reversed around the network (the GroupNorm's Reshape
  ** fixes the extents: a cube, whose axes the network sees transposed) */
  lm_tensor *xz = rand_tensor(4, (int64_t[]){2, 8, 8, 8}, 43);
  compare_all(mz, xz, "generated ZYX", false);
  lm_tensor_release(xz);
  lm_model_release(mz);
  /* channels-last refuses the Transpose with the node named */
  lm_tensor *dx = gpu_to(x, "cuda"), *out[LM_MAX_OUTPUTS] = {0};
  CHECK(infer(m, dx, "float16", false, true, out) < 0);
  CHECK_CONTAINS(lm_errmsg(E), "channels-last");
  lm_tensor_release(dx);
  lm_tensor_release(x);
  lm_model_release(m);
}

/* A network whose op has no GPU kernel: the error names the node and op. */
static void test_unsupported_op(void)
{
  pbw g = {0}, n;
  int64_t xd[5] = {1, 1, 4, 4, 4};
  pbw_value_info(&g, 11, "x", 5, xd);
  n = node_begin("Softsign", "odd_one", IN("x"), IN("y"));
  pbw_msg(&g, 1, &n);
  pbw_value_info(&g, 12, "y", 5, xd);
  pbw m = pbw_model(&g);
  char path[] = "/tmp/lumen_test_gpu_infer_XXXXXX.onnx";
  int fd = mkstemps(path, 5);
  CHECK(fd >= 0 && write(fd, m.p, m.n) == (ssize_t)m.n);
  close(fd);
  free(m.p);
  lm_model *mdl = NULL;
  int st = lm_model_load(E, path, NULL, &mdl);
  unlink(path);
  CHECK_INT(st, LM_OK);
  if (st < 0) return;
  lm_tensor *x = rand_tensor(4, (int64_t[]){1, 4, 4, 4}, 1), *dx = gpu_to(x, "cuda");
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  CHECK(infer(mdl, dx, "float32", false, false, out) < 0);
  CHECK_CONTAINS(lm_errmsg(E), "node 'odd_one' (Softsign)");
  CHECK(infer(mdl, x, "float16", false, false, out) < 0);   /* float16 on the CPU */
  CHECK_CONTAINS(lm_errmsg(E), "precision");
  lm_tensor_release(dx);
  lm_tensor_release(x);
  lm_model_release(mdl);
}

/* The demo CT U-Net on a 32x24x16 crop of the phantom windowed to 0..1. */
static void test_demo_unet(void)
{
  const char *root = getenv("LUMEN_SOURCE_ROOT");
  char path[1024];
  snprintf(path, sizeof path, "%s/models/demo_ct_unet", root ? root : ".");
  lm_model *m = NULL;
  if (lm_model_load(E, path, NULL, &m) < 0) {
    TAP_FAIL("load %s: %s", path, lm_errmsg(E));
    return;
  }
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  lm_params *p = params();
  lm_params_set_numbers(p, "shape", (double[]){32, 24, 16}, 3);
  CHECK(lm_call(E, "Phantom", NULL, 0, p, out, &nout, NULL) == LM_OK);
  lm_params_free(p);
  lm_tensor *c = call("ConvertToChannelsFirst", out[0], NULL, NULL);
  for (int i = 0; i < nout; i++) lm_tensor_release(out[i]);
  p = params();
  lm_params_set_number(p, "a_min", -57);
  lm_params_set_number(p, "a_max", 164);
  lm_params_set_number(p, "b_min", 0);
  lm_params_set_number(p, "b_max", 1);
  lm_params_set_bool(p, "clip", true);
  lm_params_set_string(p, "dtype", "float32");
  lm_tensor *x = call("ScaleIntensityRange", c, p, NULL);
  lm_params_free(p);
  lm_tensor_release(c);
  CHECK(x != NULL);
  if (x) compare_all(m, x, "demo_ct_unet", true);
  /* the CUDA graph: a plain warm-up run at the first call, captured (and
  ** launched) by the second, replayed by the third */
  lm_tensor *cpu[LM_MAX_OUTPUTS] = {0}, *g1[LM_MAX_OUTPUTS] = {0}, *g2[LM_MAX_OUTPUTS] = {0};
  lm_tensor *g3[LM_MAX_OUTPUTS] = {0};
  if (x && infer(m, x, "float32", false, false, cpu) == 1) {
    use_cuda_graph = true;
    CHECK(infer_gpu(m, x, "float32", false, false, g1) == 1);
    CHECK(infer_gpu(m, x, "float32", false, false, g2) == 1);
    CHECK(infer_gpu(m, x, "float32", false, false, g3) == 1);
    use_cuda_graph = false;
    if (g1[0] && g2[0] && g3[0]) {
      CHECK(rel_err(g1[0], cpu[0]) <= 1e-4);
      CHECK(rel_err(g2[0], g1[0]) == 0);
      CHECK(rel_err(g3[0], g1[0]) == 0);
    }
  }
  lm_tensor_release(cpu[0]);
  lm_tensor_release(g1[0]);
  lm_tensor_release(g2[0]);
  lm_tensor_release(g3[0]);
  lm_tensor_release(x);
  lm_model_release(m);
}

/* brainchop's tissue MeshNet (tfjs layers, dilated convolutions) on a
** 16^3 crop of the conformed T1. */
static void test_meshnet(void)
{
  const char *dir = getenv("LUMEN_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/models/model5_gw_ae/model.json", dir ? dir : ".");
  if (access(path, R_OK) != 0) {
    printf("# skipped: %s not found (LUMEN_TEST_DATA)\n", path);
    return;
  }
  lm_model *m = NULL;
  if (lm_model_load(E, path, NULL, &m) < 0) {
    TAP_FAIL("load %s: %s", path, lm_errmsg(E));
    return;
  }
  /* an MRI-like input: smooth blobs in 0..1 */
  lm_tensor *x = NULL;
  CHECK(lm_tensor_new(E, LM_F32, 4, (int64_t[]){1, 16, 16, 16}, LM_CPU, &x) == LM_OK);
  float *d = lm_tensor_data(x);
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++)
      for (int k = 0; k < 16; k++)
        d[(i * 16 + j) * 16 + k] =
            0.5f + 0.25f * sinf(0.4f * (float)i) * cosf(0.3f * (float)j) + 0.2f * sinf(0.5f * (float)k);
  compare_all(m, x, "meshnet", true);
  lm_tensor_release(x);
  lm_model_release(m);
}

int main(void)
{
  gpu_engine_start();
  RUN(test_generated_network);
  RUN(test_unsupported_op);
  RUN(test_demo_unet);
  RUN(test_meshnet);
  lm_engine_release(E);
  TAP_DONE();
}
