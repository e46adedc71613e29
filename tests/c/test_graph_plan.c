/* Graph passes (models/src/graph_passes.c) and plans (models/src/plan*.c):
 * graphs built with the builder API, tiny shapes.  The oracle for numerics
 * is a direct interpreter over the op table (infer + eval per node, no
 * passes, no fusion): ref_run below.
 *
 * `test_graph_plan model5` runs the brainchop MeshNet ONNX from
 * $LUMEN_TEST_DATA instead (exit 77 without the data). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_conv.h"
#include "cpu_ops.h"
#include "graph.h"
#include "loaders.h"
#include "plan.h"
#include "tap.h"

/* ---- helpers ------------------------------------------------------------ */

static float frand(uint32_t *s)
{
  *s = *s * 1664525u + 1013904223u;
  return (float)((*s >> 8) & 0xffff) / 65536.0f * 2.0f - 1.0f;
}

static int64_t numel(int nd, const int64_t *sh)
{
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= sh[i];
  return n;
}

static int input(lm_graph *g, const char *name, int nd, const int64_t *sh)
{
  int v = lm_graph_value(g, name);
  lm_graph_set_type(g, v, LM_F32, nd, sh);
  lm_graph_add_input(g, v);
  return v;
}

static int const_rand(lm_graph *g, int nd, const int64_t *sh, uint32_t seed, float scale,
                      float offset)
{
  int64_t n = numel(nd, sh);
  float *d = malloc(sizeof *d * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) d[i] = frand(&seed) * scale + offset;
  int v = lm_graph_const(g, LM_F32, nd, sh, d, true);
  free(d);
  return v;
}

static int const_scalar(lm_graph *g, float x)
{
  return lm_graph_const(g, LM_F32, 0, NULL, &x, true);
}

static int const_i64(lm_graph *g, int n, const int64_t *vals)
{
  int64_t sh[1] = {n};
  return lm_graph_const(g, LM_I64, 1, sh, vals, true);
}

/* Add node op(in...) -> a new value named out; returns the output value. */
static int node(lm_graph *g, const char *op, const char *out, int nin, const int *in)
{
  int o = lm_graph_value(g, out);
  lm_graph_add_node(g, op, out, nin, in, 1, &o);
  return o;
}

static int node1(lm_graph *g, const char *op, const char *out, int a)
{
  return node(g, op, out, 1, &a);
}

static int node2(lm_graph *g, const char *op, const char *out, int a, int b)
{
  int in[2] = {a, b};
  return node(g, op, out, 2, in);
}

static int conv(lm_graph *g, const char *out, int x, int cin, int cout, int k, uint32_t seed)
{
  int64_t wsh[5] = {cout, cin, k, k, k}, bsh[1] = {cout};
  int in[3] = {x, const_rand(g, 5, wsh, seed, 0.3f, 0), const_rand(g, 1, bsh, seed + 1, 0.1f, 0)};
  int o = node(g, "Conv", out, 3, in);
  int64_t pads[6] = {k / 2, k / 2, k / 2, k / 2, k / 2, k / 2};
  lm_graph_attr_set_ints(g, g->nnodes - 1, "pads", pads, 6);
  return o;
}

/* The oracle: every node through the op table, in insertion order (the
 * test graphs are built in order), no passes.  Returns output 0 (malloc'd). */
static float *ref_run(lm_graph *g, const float *x, int64_t *out_numel)
{
  int nv = g->nvalues;
  void **buf = calloc((size_t)nv, sizeof *buf);
  buf[g->inputs[0]] = (void *)x;
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    const lm_cpu_kernel *k = lm_cpu_kernel_find(n->op);
    if (!k || k->infer(g, n) < 0) {
      printf("# ref_run: %s: %s\n", n->op, g->err);
      exit(1);
    }
    lm_rt_tensor in[8], out[4];
    memset(in, 0, sizeof in);
    memset(out, 0, sizeof out);
    for (int j = 0; j < n->nin; j++) {
      int v = n->in[j];
      if (v < 0) continue;
      in[j].dt = g->values[v].dt;
      in[j].ndim = g->values[v].ndim;
      memcpy(in[j].shape, g->values[v].shape, sizeof in[j].shape);
      in[j].data = g->values[v].data ? (void *)g->values[v].data : buf[v];
    }
    for (int j = 0; j < n->nout; j++) {
      int v = n->out[j];
      out[j].dt = g->values[v].dt;
      out[j].ndim = g->values[v].ndim;
      memcpy(out[j].shape, g->values[v].shape, sizeof out[j].shape);
      buf[v] = calloc((size_t)numel(out[j].ndim, out[j].shape) + 1,
                      lm_dtype_size(out[j].dt));
      out[j].data = buf[v];
    }
    char err[256];
    if (k->eval(n, in, n->nin, out, n->nout, err, sizeof err) < 0) {
      printf("# ref_run eval %s: %s\n", n->op, err);
      exit(1);
    }
  }
  int o = g->outputs[0];
  *out_numel = lm_gvalue_numel(&g->values[o]);
  float *res = malloc(sizeof *res * (size_t)*out_numel);
  memcpy(res, buf[o], sizeof *res * (size_t)*out_numel);
  for (int v = 0; v < nv; v++)
    if (v != g->inputs[0]) free(buf[v]);
  free(buf);
  return res;
}

/* Prepare a clone of g, plan it for its declared input shape, run it. */
/* A clone that owns copies of its constants (lm_graph_clone shares them). */
static lm_graph *deep_clone(const lm_graph *g0)
{
  lm_graph *g = lm_graph_clone(g0);
  for (int v = 0; v < g->nvalues; v++) {
    lm_gvalue *val = &g->values[v];
    if (val->data && val->alias < 0)
      lm_graph_set_const(g, v, val->dt, val->ndim, val->shape, val->data, true);
  }
  return g;
}

static float *plan_run(const lm_graph *g0, const float *x, lm_plan **keep)
{
  lm_graph *g = deep_clone(g0);
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  const lm_gvalue *iv = &g->values[g->inputs[0]];
  int nd = iv->ndim;
  const int64_t *shapes[1] = {iv->shape};
  lm_plan *p = NULL;
  char err[512] = "";
  lm_plan_options opt = {.threads = 2};
  int rc = lm_plan_new(g, &nd, shapes, &opt, &p, err, sizeof err);
  CHECK_INT(rc, LM_OK);
  if (rc < 0) {
    printf("# %s\n", err);
    lm_graph_free(g);
    return NULL;
  }
  lm_graph_free(g);   /* the plan does not depend on it (valgrind and ASan check) */
  int64_t sh[LM_MAX_DIMS];
  int ond = lm_plan_output_shape(p, 0, sh);
  float *y = malloc(sizeof *y * (size_t)numel(ond, sh));
  const float *ins[1] = {x};
  float *outs[1] = {y};
  rc = lm_plan_run(p, ins, outs, NULL, err, sizeof err);
  CHECK_INT(rc, LM_OK);
  if (rc < 0) printf("# %s\n", err);
  if (keep) *keep = p;
  else lm_plan_free(p);
  return y;
}

static void check_close(const float *a, const float *b, int64_t n, double rtol)
{
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 5; i++) {
    double tol = rtol * (fabs(b[i]) + 1e-3);
    if (!(fabs(a[i] - b[i]) <= tol)) {
      TAP_FAIL("element %lld: %.9g vs %.9g", (long long)i, a[i], b[i]);
      bad++;
    }
  }
}

/* |a - b| <= atol + rtol |b| */
static void check_close_abs(const float *a, const float *b, int64_t n, double atol, double rtol)
{
  int bad = 0;
  for (int64_t i = 0; i < n && bad < 5; i++)
    if (!(fabs(a[i] - b[i]) <= atol + rtol * fabs(b[i]))) {
      TAP_FAIL("element %lld: %.9g vs %.9g", (long long)i, a[i], b[i]);
      bad++;
    }
}

static float *rand_input(int64_t n, uint32_t seed)
{
  float *x = malloc(sizeof *x * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = frand(&seed);
  return x;
}

static bool plan_has_step(const lm_plan *p, const char *needle)
{
  for (int i = 0; i < lm_plan_nsteps(p); i++)
    if (strstr(lm_plan_step_label(p, i), needle)) return true;
  return false;
}

/* ---- passes ------------------------------------------------------------- */

static void test_topological_order(void)
{
  lm_graph *g = lm_graph_new();
  int64_t sh[2] = {2, 3};
  int x = input(g, "x", 2, sh);
  int t = lm_graph_value(g, "t");
  /* Relu(t) is added before the Sigmoid that makes t. */
  int y = node1(g, "Relu", "y", t);
  int tin[1] = {x};
  lm_graph_add_node(g, "Sigmoid", "t", 1, tin, 1, &t);
  lm_graph_add_output(g, y);
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  CHECK_INT(g->nnodes, 2);
  CHECK_STR(g->nodes[0].op, "Sigmoid");
  CHECK_STR(g->nodes[1].op, "Relu");
  CHECK_INT(g->values[t].producer, 0);
  CHECK_INT(g->values[y].producer, 1);
  CHECK_INT(g->values[y].ndim, 2);
  CHECK_INT(g->values[y].shape[1], 3);
  /* Idempotent. */
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  CHECK_INT(g->nnodes, 2);
  CHECK_STR(g->nodes[0].op, "Sigmoid");
  lm_graph_free(g);
}

static void test_cycle_error(void)
{
  lm_graph *g = lm_graph_new();
  g->source = "cyc.onnx";
  int64_t sh[1] = {4};
  int x = input(g, "x", 1, sh);
  int b = lm_graph_value(g, "loop_b");
  int a = node2(g, "Add", "loop_a", x, b);
  int in[1] = {a};
  lm_graph_add_node(g, "Relu", "loop_b", 1, in, 1, &b);
  lm_graph_add_output(g, b);
  CHECK_INT(lm_graph_prepare(g), LM_EINVAL);
  CHECK_CONTAINS(g->err, "cyc.onnx");
  CHECK_CONTAINS(g->err, "cycle");
  CHECK_CONTAINS(g->err, "loop_");
  lm_graph_free(g);
}

static void test_undefined_and_unsupported(void)
{
  lm_graph *g = lm_graph_new();
  int64_t sh[1] = {4};
  int x = input(g, "x", 1, sh);
  int u = lm_graph_value(g, "nowhere");
  lm_graph_add_output(g, node2(g, "Add", "y", x, u));
  CHECK_INT(lm_graph_prepare(g), LM_EINVAL);
  CHECK_CONTAINS(g->err, "'nowhere'");
  CHECK_CONTAINS(g->err, "not defined");
  lm_graph_free(g);

  g = lm_graph_new();
  x = input(g, "x", 1, sh);
  int a = node1(g, "FancyOp", "a", x);
  int b = node1(g, "Relu", "b", a);
  int c = node1(g, "OtherOp", "c", b);
  lm_graph_add_output(g, node1(g, "FancyOp", "d", c));
  CHECK_INT(lm_graph_prepare(g), LM_EINVAL);
  CHECK_CONTAINS(g->err, "FancyOp, OtherOp");
  CHECK_CONTAINS(g->err, "2 op types");
  lm_graph_free(g);
}

static void test_identity_alias(void)
{
  lm_graph *g = lm_graph_new();
  int64_t sh[2] = {2, 3};
  int x = input(g, "x", 2, sh);
  int i1 = node1(g, "Identity", "i1", x);
  int d = lm_graph_value(g, "drop");
  int din[1] = {i1};
  lm_graph_add_node(g, "Dropout", "drop", 1, din, 1, &d);
  int y = node1(g, "Relu", "y", d);
  lm_graph_add_output(g, y);
  lm_graph_add_output(g, i1);   /* an output that is the input itself */
  lm_graph *ref = lm_graph_clone(g);
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  CHECK_INT(g->nnodes, 1);
  CHECK_STR(g->nodes[0].op, "Relu");
  CHECK_INT(g->values[i1].alias, x);
  CHECK_INT(lm_graph_resolve(g, d), x);
  CHECK_INT(g->nodes[0].in[0], x);
  CHECK_INT(g->values[d].ndim, 2);

  float xs[6] = {-1, 2, -3, 4, -5, 6};
  lm_plan *p = NULL;
  char err[256];
  int nd = 2;
  const int64_t *shapes[1] = {sh};
  CHECK_INT(lm_plan_new(g, &nd, shapes, NULL, &p, err, sizeof err), LM_OK);
  CHECK_INT(lm_plan_noutputs(p), 2);
  float y0[6], y1[6];
  const float *ins[1] = {xs};
  float *outs[2] = {y0, y1};
  CHECK_INT(lm_plan_run(p, ins, outs, NULL, err, sizeof err), LM_OK);
  for (int i = 0; i < 6; i++) {
    CHECK_NEAR(y0[i], xs[i] > 0 ? xs[i] : 0, 0);
    CHECK_NEAR(y1[i], xs[i], 0);
  }
  CHECK(plan_has_step(p, "copy to output 'i1'"));
  lm_plan_free(p);
  lm_graph_free(ref);
  lm_graph_free(g);
}

/* Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as SegResNet's
 * GroupNorm exports: folds away given the input shape, and folds again for
 * other input shapes. */
static lm_graph *shape_graph(void)
{
  lm_graph *g = lm_graph_new();
  g->opset = 13;
  int64_t sh[4] = {1, 2, 3, 4};
  int x = input(g, "x", 4, sh);
  int s = node1(g, "Shape", "s", x);
  int64_t one = 1;
  int idx = lm_graph_const(g, LM_I64, 0, NULL, &one, true);
  int c = node2(g, "Gather", "c", s, idx);
  int64_t zero = 0;
  int u = node2(g, "Unsqueeze", "u", c, const_i64(g, 1, &zero));
  int64_t minus1 = -1;
  int cat = node2(g, "Concat", "shp", u, const_i64(g, 1, &minus1));
  lm_graph_attr_set_int(g, g->nnodes - 1, "axis", 0);
  int r = node2(g, "Reshape", "r", x, cat);
  lm_graph_add_output(g, node1(g, "Sigmoid", "y", r));
  return g;
}

static void test_shape_subgraph_folding(void)
{
  lm_graph *g = shape_graph();
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int r = lm_graph_find_value(g, "r"), shp = lm_graph_find_value(g, "shp");
  CHECK(g->values[shp].data != NULL);
  CHECK_INT(g->values[r].ndim, 2);
  CHECK_INT(g->values[r].shape[0], 2);
  CHECK_INT(g->values[r].shape[1], 12);

  /* The plan runs Reshape and Sigmoid only. */
  int nd = 4;
  int64_t sh2[4] = {1, 3, 2, 2};
  const int64_t *shapes[1] = {sh2};
  lm_plan *p = NULL;
  char err[256];
  CHECK_INT(lm_plan_new(g, &nd, shapes, NULL, &p, err, sizeof err), LM_OK);
  CHECK_INT(lm_plan_nsteps(p), 2);
  CHECK(plan_has_step(p, "Reshape"));
  CHECK(plan_has_step(p, "Sigmoid"));
  int64_t osh[LM_MAX_DIMS];
  CHECK_INT(lm_plan_output_shape(p, 0, osh), 2);
  CHECK_INT(osh[0], 3);   /* refolded for the new shape: [3, -1] */
  CHECK_INT(osh[1], 4);
  float x[12], y[12];
  for (int i = 0; i < 12; i++) x[i] = (float)i - 6;
  const float *ins[1] = {x};
  float *outs[1] = {y};
  CHECK_INT(lm_plan_run(p, ins, outs, NULL, err, sizeof err), LM_OK);
  for (int i = 0; i < 12; i++) CHECK_NEAR(y[i], 1 / (1 + exp(-(double)x[i])), 1e-6);
  lm_plan_free(p);
  /* The original graph still says [2, 12]. */
  CHECK_INT(g->values[r].shape[0], 2);
  lm_graph_free(g);
}

/* Declared with unknown extents: nothing shape-dependent folds at prepare,
 * the plan folds it with the concrete shape. */
static void test_dynamic_input_shape(void)
{
  lm_graph *g = shape_graph();
  int x = lm_graph_find_value(g, "x");
  int64_t dyn[4] = {-1, 2, -1, -1};
  lm_graph_set_type(g, x, LM_F32, 4, dyn);
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int shp = lm_graph_find_value(g, "shp"), r = lm_graph_find_value(g, "r");
  CHECK(g->values[shp].data == NULL);
  CHECK_INT(g->values[r].ndim, 2);
  int nd = 4;
  int64_t sh[4] = {2, 2, 3, 1};
  const int64_t *shapes[1] = {sh};
  lm_plan *p = NULL;
  char err[256];
  CHECK_INT(lm_plan_new(g, &nd, shapes, NULL, &p, err, sizeof err), LM_OK);
  if (p) {
    CHECK_INT(lm_plan_nsteps(p), 2);
    int64_t osh[LM_MAX_DIMS];
    CHECK_INT(lm_plan_output_shape(p, 0, osh), 2);
    CHECK_INT(osh[0], 2);
    CHECK_INT(osh[1], 6);
    lm_plan_free(p);
  }
  lm_graph_free(g);
}

/* A graph output that later nodes read (deep supervision): written to the
 * caller's buffer and read back from there. */
static void test_output_read_later(void)
{
  lm_graph *g = lm_graph_new();
  int64_t sh[2] = {3, 4};
  int x = input(g, "x", 2, sh);
  int a = node1(g, "Exp", "a", x);
  int b = node1(g, "Neg", "b", a);
  lm_graph_add_output(g, a);
  lm_graph_add_output(g, node2(g, "Add", "y", b, a));
  lm_graph_add_output(g, a);   /* listed twice: the second is a copy */
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int nd = 2;
  const int64_t *shapes[1] = {sh};
  lm_plan *p = NULL;
  char err[256];
  CHECK_INT(lm_plan_new(g, &nd, shapes, NULL, &p, err, sizeof err), LM_OK);
  if (p) {
    float xs[12], y0[12], y1[12], y2[12];
    for (int i = 0; i < 12; i++) xs[i] = (float)i / 6 - 1;
    const float *ins[1] = {xs};
    float *outs[3] = {y0, y1, y2};
    CHECK_INT(lm_plan_run(p, ins, outs, NULL, err, sizeof err), LM_OK);
    for (int i = 0; i < 12; i++) {
      CHECK_NEAR(y0[i], expf(xs[i]), 1e-6);
      CHECK_NEAR(y1[i], 0, 0);
      CHECK_NEAR(y2[i], y0[i], 0);
    }
    CHECK_INT(lm_plan_arena_bytes(p), 64);   /* only b */
    lm_plan_free(p);
  }
  lm_graph_free(g);
}

static void test_dead_nodes(void)
{
  lm_graph *g = lm_graph_new();
  int64_t sh[1] = {3};
  int x = input(g, "x", 1, sh);
  int a = node1(g, "Exp", "a", x);
  node1(g, "Neg", "unused", a);
  lm_graph_add_output(g, node1(g, "Relu", "y", x));
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  CHECK_INT(g->nnodes, 1);
  CHECK_STR(g->nodes[0].op, "Relu");
  lm_graph_free(g);
}

static void test_constant_folding(void)
{
  /* A Concat of 20 shape pieces folds too. */
  {
    lm_graph *g = lm_graph_new();
    int64_t sh[2] = {4, 5};
    int x = input(g, "x", 2, sh);
    int s = node1(g, "Shape", "s", x);
    int in[20];
    int64_t one = 1;
    for (int i = 0; i < 20; i++)   /* empty pieces, a 1 and the shape: [1, 4, 5] */
      in[i] = i == 19 ? s : i == 10 ? const_i64(g, 1, &one) : const_i64(g, 0, &one);
    int cat = node(g, "Concat", "cat", 20, in);
    lm_graph_attr_set_int(g, g->nnodes - 1, "axis", 0);
    int r = node2(g, "Reshape", "r", x, cat);
    lm_graph_add_output(g, node1(g, "Relu", "y", r));
    CHECK_INT(lm_graph_prepare(g), LM_OK);
    CHECK(g->values[cat].data != NULL);
    CHECK_INT(g->values[r].ndim, 3);
    lm_graph_free(g);
  }

  lm_graph *g = lm_graph_new();
  int64_t sh[1] = {3};
  int x = input(g, "x", 1, sh);
  float cv[3] = {1, 2, 3};
  int c = lm_graph_const(g, LM_F32, 1, sh, cv, true);
  int e = node1(g, "Neg", "negc", c);                 /* constant */
  int cn = lm_graph_value(g, "k");
  lm_graph_add_node(g, "Constant", "k", 0, NULL, 1, &cn);
  lm_graph_attr_set_float(g, g->nnodes - 1, "value_float", 2.0);
  int m = node2(g, "Mul", "m", e, cn);                /* constant */
  lm_graph_add_output(g, node2(g, "Add", "y", x, m));
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  CHECK_INT(g->nnodes, 1);
  CHECK_STR(g->nodes[0].op, "Add");
  int mv = lm_graph_find_value(g, "m");
  CHECK(g->values[mv].data != NULL);
  CHECK_INT(g->values[mv].producer, -1);
  if (g->values[mv].data) CHECK_NEAR(((const float *)g->values[mv].data)[2], -6, 0);
  lm_graph_free(g);
}

/* ---- BatchNormalization folding ------------------------------------------ */

static void bn_case(bool transposed)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {1, 2, 4, 4, 3};
  int x = input(g, "x", 5, xsh);
  int c;
  if (!transposed) {
    c = conv(g, "c", x, 2, 3, 3, 7);
  } else {
    int64_t wsh[5] = {2, 3, 2, 2, 2};
    int in[2] = {x, const_rand(g, 5, wsh, 11, 0.5f, 0)};
    c = node(g, "ConvTranspose", "c", 2, in);
    int64_t st[3] = {2, 2, 2};
    lm_graph_attr_set_ints(g, g->nnodes - 1, "strides", st, 3);
  }
  int64_t csh[1] = {3};
  int in[5] = {c, const_rand(g, 1, csh, 21, 0.5f, 1.0f), const_rand(g, 1, csh, 22, 0.5f, 0),
               const_rand(g, 1, csh, 23, 0.5f, 0), const_rand(g, 1, csh, 24, 0.3f, 1.0f)};
  int y = node(g, "BatchNormalization", "y", 5, in);
  lm_graph_attr_set_float(g, g->nnodes - 1, "epsilon", 1e-3);
  lm_graph_add_output(g, y);

  lm_graph *pg = lm_graph_clone(g);
  CHECK_INT(lm_graph_prepare(pg), LM_OK);
  CHECK_INT(pg->nnodes, 1);
  CHECK_STR(pg->nodes[0].op, transposed ? "ConvTranspose" : "Conv");
  CHECK_INT(pg->nodes[0].out[0], y);
  lm_graph_free(pg);

  int64_t n = numel(5, xsh), rn;
  float *xs = rand_input(n, 5);
  float *got = plan_run(g, xs, NULL);
  float *want = ref_run(g, xs, &rn);
  CHECK_INT(rn, transposed ? 3 * 8 * 8 * 6 : 3 * 4 * 4 * 3);
  if (got) check_close(got, want, rn, 1e-4);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static void test_bn_fold_conv(void) { bn_case(false); }
static void test_bn_fold_conv_transpose(void) { bn_case(true); }

/* ---- fusion ---------------------------------------------------------------- */

typedef int (*act_builder)(lm_graph *g, int v);

static int act_leaky(lm_graph *g, int v)
{
  int o = node1(g, "LeakyRelu", "act", v);
  lm_graph_attr_set_float(g, g->nnodes - 1, "alpha", 0.1);
  return o;
}
static int act_silu(lm_graph *g, int v)
{
  return node2(g, "Mul", "act", v, node1(g, "Sigmoid", "sig", v));
}
static int act_erf_gelu(lm_graph *g, int v)
{
  int d = node2(g, "Div", "div", v, const_scalar(g, 1.4142135381698608f));
  int e = node1(g, "Erf", "erf", d);
  int a = node2(g, "Add", "add", e, const_scalar(g, 1.0f));
  int m = node2(g, "Mul", "mul", v, a);
  return node2(g, "Mul", "act", m, const_scalar(g, 0.5f));
}
static int act_clip(lm_graph *g, int v)
{
  int in[3] = {v, const_scalar(g, 0.0f), const_scalar(g, 0.25f)};
  return node(g, "Clip", "act", 3, in);
}
static int act_prelu(lm_graph *g, int v)
{
  float s = 0.2f;
  int64_t sh[4] = {1, 1, 1, 1};
  return node2(g, "PRelu", "act", v, lm_graph_const(g, LM_F32, 4, sh, &s, true));
}
static int act_elu(lm_graph *g, int v) { return node1(g, "Elu", "act", v); }
static int act_tanh(lm_graph *g, int v) { return node1(g, "Tanh", "act", v); }

static void fusion_case(act_builder ab, const char *label)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {1, 2, 5, 4, 3};
  int x = input(g, "x", 5, xsh);
  int c = conv(g, "c", x, 2, 4, 3, 3);
  lm_graph_add_output(g, ab(g, c));
  int64_t n = numel(5, xsh), rn;
  float *xs = rand_input(n, 9);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    CHECK_INT(lm_plan_nsteps(p), 1);
    if (!plan_has_step(p, label)) TAP_FAIL("no step '%s': %s", label, lm_plan_step_label(p, 0));
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-4);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static void test_conv_act_fusion(void)
{
  fusion_case(act_leaky, "Conv+LeakyRelu");
  fusion_case(act_silu, "Conv+SiLU");
  fusion_case(act_erf_gelu, "Conv+Gelu(erf)");
  fusion_case(act_clip, "Conv+Clip");
  fusion_case(act_prelu, "Conv+PRelu");
  fusion_case(act_elu, "Conv+Elu");
  fusion_case(act_tanh, "Conv+Tanh");
}

/* No fusion when the conv output has another reader. */
static void test_no_fusion_with_second_reader(void)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {1, 1, 3, 3, 3};
  int x = input(g, "x", 5, xsh);
  int c = conv(g, "c", x, 1, 2, 3, 4);
  int r = node1(g, "Relu", "r", c);
  lm_graph_add_output(g, node2(g, "Add", "y", r, c));
  int64_t n = numel(5, xsh), rn;
  float *xs = rand_input(n, 2);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    CHECK_INT(lm_plan_nsteps(p), 3);
    CHECK(!plan_has_step(p, "+"));
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-5);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static int act_gelu(lm_graph *g, int v) { return node1(g, "Gelu", "act", v); }

static void instnorm_case(act_builder ab, const char *label)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {1, 3, 4, 5, 2}, csh[1] = {3};
  int x = input(g, "x", 5, xsh);
  int in[3] = {x, const_rand(g, 1, csh, 1, 0.5f, 1), const_rand(g, 1, csh, 2, 0.5f, 0)};
  int nrm = node(g, "InstanceNormalization", "in", 3, in);
  lm_graph_add_output(g, ab(g, nrm));
  int64_t n = numel(5, xsh), rn;
  float *xs = rand_input(n, 3);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    CHECK_INT(lm_plan_nsteps(p), 1);
    if (!plan_has_step(p, label)) TAP_FAIL("no step '%s': %s", label, lm_plan_step_label(p, 0));
    lm_plan_free(p);
  }
  /* Gelu's erf is a vectorised approximation within 4e-7 of erf. */
  if (got) check_close_abs(got, want, rn, ab == act_gelu ? 1e-6 : 1e-9, 1e-6);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static void test_instnorm_act(void)
{
  instnorm_case(act_leaky, "InstanceNormalization+LeakyRelu");
  instnorm_case(act_prelu, "InstanceNormalization+PRelu");
  instnorm_case(act_gelu, "InstanceNormalization+Gelu");
  instnorm_case(act_elu, "InstanceNormalization+Elu");
}

/* InstanceNormalization with a residual Add: ResEncUNet's IN, Add,
 * LeakyRelu; MONAI's IN, PRelu, Add; a residual computed after the norm in
 * node order is not fused. */
static void instnorm_residual_case(int form, const char *label)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {1, 3, 4, 5, 2}, csh[1] = {3};
  int x = input(g, "x", 5, xsh);
  int res = form == 3 ? -1 : node1(g, "Sigmoid", "res", x);
  int in[3] = {x, const_rand(g, 1, csh, 1, 0.5f, 1), const_rand(g, 1, csh, 2, 0.5f, 0)};
  int nrm = node(g, "InstanceNormalization", "in", 3, in);
  int y;
  if (form == 0) y = act_leaky(g, node2(g, "Add", "add", nrm, res));
  else if (form == 1) y = node2(g, "Add", "add", res, act_prelu(g, nrm));
  else if (form == 2) y = node2(g, "Add", "add", nrm, res);
  else {
    int a = node1(g, "Relu", "relu", nrm);
    y = node2(g, "Add", "add", a, node1(g, "Sigmoid", "late", x));
  }
  lm_graph_add_output(g, y);
  int64_t n = numel(5, xsh), rn;
  float *xs = rand_input(n, 3);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    if (!plan_has_step(p, label)) TAP_FAIL("no step '%s'", label);
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-6);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static void test_instnorm_residual(void)
{
  instnorm_residual_case(0, "InstanceNormalization+Add+LeakyRelu 'in'");
  instnorm_residual_case(1, "InstanceNormalization+PRelu+Add 'in'");
  instnorm_residual_case(2, "InstanceNormalization+Add 'in'");
  instnorm_residual_case(3, "InstanceNormalization+Relu 'in'");
}

/* SegResNet's exported GroupNorm: Reshape, InstanceNormalization, Reshape,
 * Mul, Add [, Relu]. */
static void groupnorm_case(bool with_act)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {1, 4, 3, 3, 2}, gsh[1] = {2}, csh[4] = {4, 1, 1, 1};
  int x = input(g, "x", 5, xsh);
  int64_t grouped[3] = {1, 2, -1};
  int r1 = node2(g, "Reshape", "r1", x, const_i64(g, 3, grouped));
  int in[3] = {r1, const_rand(g, 1, gsh, 41, 0.5f, 1), const_rand(g, 1, gsh, 42, 0.5f, 0)};
  int nrm = node(g, "InstanceNormalization", "gn", 3, in);
  int r2 = node2(g, "Reshape", "r2", nrm, const_i64(g, 5, xsh));
  int m = node2(g, "Mul", "m", r2, const_rand(g, 4, csh, 43, 0.5f, 1));
  int a = node2(g, "Add", "a", const_rand(g, 4, csh, 44, 0.5f, 0), m);
  lm_graph_add_output(g, with_act ? node1(g, "Relu", "y", a) : a);
  int64_t n = numel(5, xsh), rn;
  float *xs = rand_input(n, 13);
  for (int64_t i = 0; i < n; i++) xs[i] = xs[i] * 3 + 10;   /* mean far from 0 */
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    CHECK_INT(lm_plan_nsteps(p), 1);
    CHECK(plan_has_step(p, with_act ? "GroupNorm+Relu 'gn'" : "GroupNorm 'gn'"));
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-5);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static void test_groupnorm_pattern(void)
{
  groupnorm_case(true);
  groupnorm_case(false);
}

/* ---- memory plan ------------------------------------------------------------ */

static void test_memory_reuse(void)
{
  /* A chain of five convs: four intermediates of equal size, of which two
   * are alive at once. */
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {1, 2, 4, 4, 4};
  int v = input(g, "x", 5, xsh);
  const char *names[5] = {"c1", "c2", "c3", "c4", "c5"};
  for (int i = 0; i < 5; i++) v = conv(g, names[i], v, 2, 2, 3, 100 + (uint32_t)i);
  lm_graph_add_output(g, v);
  int64_t n = numel(5, xsh), rn;
  float *xs = rand_input(n, 4);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    size_t one = (size_t)n * sizeof(float);
    CHECK_INT(lm_plan_unplanned_bytes(p), 4 * one);
    CHECK_INT(lm_plan_arena_bytes(p), 2 * one);
    CHECK_INT(lm_plan_live_peak_bytes(p), 2 * one);
    CHECK(lm_plan_arena_bytes(p) < lm_plan_unplanned_bytes(p));
    /* Run again: the same buffers, the same result. */
    float *y2 = malloc(sizeof *y2 * (size_t)n);
    const float *ins[1] = {xs};
    float *outs[1] = {y2};
    char err[256];
    CHECK_INT(lm_plan_run(p, ins, outs, NULL, err, sizeof err), LM_OK);
    if (got) CHECK(memcmp(y2, got, sizeof *y2 * (size_t)n) == 0);
    free(y2);
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-4);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static void test_inplace_and_views(void)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[3] = {2, 3, 4}, csh[3] = {1, 3, 1};
  int x = input(g, "x", 3, xsh);
  int a = node2(g, "Add", "a", x, const_rand(g, 3, csh, 8, 1, 0));
  int t = node1(g, "Tanh", "t", a);          /* a dies here: in place */
  int64_t rs[2] = {6, 4};
  int r = node2(g, "Reshape", "r", t, const_i64(g, 2, rs));   /* a view */
  int e = node1(g, "Exp", "e", r);           /* r dies here: in place */
  lm_graph_add_output(g, node2(g, "Mul", "y", e, r));
  int64_t n = numel(3, xsh), rn;
  float *xs = rand_input(n, 6);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    CHECK_INT(lm_plan_nsteps(p), 5);
    CHECK(lm_plan_step_inplace(p, 1));           /* Tanh */
    CHECK(plan_has_step(p, "Reshape 'r' (view)"));
    CHECK(!lm_plan_step_inplace(p, 3));          /* Exp: r is read later by Mul */
    CHECK(!lm_plan_step_inplace(p, 0));          /* Add reads the caller's input */
    CHECK_INT(lm_plan_arena_bytes(p), 2 * ((n * sizeof(float) + 63) / 64 * 64));
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-6);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static void concat_case(int64_t batch, bool with_graph_input, bool expect_in_place)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {batch, 2, 3, 4, 3};
  int x = input(g, "x", 5, xsh);
  int a = conv(g, "a", x, 2, 3, 3, 31);
  int b = with_graph_input ? x : node1(g, "Sigmoid", "b", x);
  int in[3] = {node1(g, "Exp", "e", x), a, b};
  int c = node(g, "Concat", "c", 3, in);
  lm_graph_attr_set_int(g, g->nnodes - 1, "axis", 1);
  int t = node1(g, "Tanh", "t", c);
  int a2 = conv(g, "a2", a, 3, 5 + (with_graph_input ? 2 : 2), 1, 32);   /* a read after it */
  lm_graph_add_output(g, node2(g, "Add", "y", t, a2));
  int64_t n = numel(5, xsh), rn;
  float *xs = rand_input(n, 12);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    CHECK_INT(plan_has_step(p, "Concat 'c' (in place)"), expect_in_place);
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-4);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static void test_concat_in_place(void)
{
  concat_case(1, false, true);
  concat_case(2, false, false);   /* blocks not contiguous */
  concat_case(1, true, false);    /* an input is the caller's buffer */
}

/* VNet's residual Add + Elu as one step; not with a broadcast operand. */
static void test_add_act(void)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[3] = {2, 3, 4}, csh[3] = {1, 3, 1};
  int x = input(g, "x", 3, xsh);
  int a = node1(g, "Exp", "a", x);
  int c = node1(g, "Sigmoid", "c", x);
  int e = act_elu(g, node2(g, "Add", "add", a, c));
  int t = node1(g, "Tanh", "t", node2(g, "Add", "bcast", e, const_rand(g, 3, csh, 3, 1, 0)));
  lm_graph_add_output(g, t);
  int64_t n = numel(3, xsh), rn;
  float *xs = rand_input(n, 16);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    CHECK_INT(lm_plan_nsteps(p), 5);
    CHECK(plan_has_step(p, "Add+Elu 'add'"));
    CHECK(lm_plan_step_inplace(p, 2));
    CHECK(plan_has_step(p, "Add 'bcast'"));
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-6);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

static void test_binary_inplace(void)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[3] = {2, 3, 4}, csh[3] = {1, 3, 1};
  int x = input(g, "x", 3, xsh);
  int a = node1(g, "Exp", "a", x);
  int c = node1(g, "Sigmoid", "c", x);
  int b = node2(g, "Add", "b", const_rand(g, 3, csh, 5, 1, 0), a);   /* over a (input 1) */
  int d = node2(g, "Mul", "d", b, b);                                 /* over b, read twice */
  int e = node2(g, "Sub", "e", d, c);                                 /* over d or c */
  lm_graph_add_output(g, node2(g, "Div", "y", e, const_scalar(g, 3.0f)));
  int64_t n = numel(3, xsh), rn;
  float *xs = rand_input(n, 15);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    CHECK_INT(lm_plan_nsteps(p), 6);
    CHECK(!lm_plan_step_inplace(p, 0));
    CHECK(!lm_plan_step_inplace(p, 1));
    CHECK(lm_plan_step_inplace(p, 2));
    CHECK(lm_plan_step_inplace(p, 3));
    CHECK(lm_plan_step_inplace(p, 4));
    CHECK_INT(lm_plan_arena_bytes(p), 2 * ((n * sizeof(float) + 63) / 64 * 64));
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-6);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

/* Zero Pad (ResEncUNet's skip path) and same-shape Expand are views; a Pad
 * that shifts without changing the shape is not. */
static void test_identity_like_views(void)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[4] = {1, 2, 3, 4};
  int x = input(g, "x", 4, xsh);
  int a = node1(g, "Exp", "a", x);
  int64_t zeros[8] = {0}, shift[8] = {0, 0, 0, -1, 0, 0, 0, 1};
  int pz = node2(g, "Pad", "pad0", a, const_i64(g, 8, zeros));
  int ps = node2(g, "Pad", "pad_shift", pz, const_i64(g, 8, shift));
  int e = node2(g, "Expand", "expand", ps, const_i64(g, 4, xsh));
  lm_graph_add_output(g, node2(g, "Add", "y", e, pz));
  int64_t n = numel(4, xsh), rn;
  float *xs = rand_input(n, 21);
  lm_plan *p = NULL;
  float *got = plan_run(g, xs, &p);
  float *want = ref_run(g, xs, &rn);
  if (p) {
    CHECK(plan_has_step(p, "Pad 'pad0' (view)"));
    CHECK(plan_has_step(p, "Expand 'expand' (view)"));
    CHECK(!plan_has_step(p, "Pad 'pad_shift' (view)"));
    lm_plan_free(p);
  }
  if (got) check_close(got, want, rn, 1e-6);
  free(xs);
  free(got);
  free(want);
  lm_graph_free(g);
}

/* ---- errors and cancel ------------------------------------------------------ */

static void test_plan_errors(void)
{
  /* Weight not constant. */
  lm_graph *g = lm_graph_new();
  int64_t xsh[4] = {1, 1, 4, 4}, wsh[4] = {1, 1, 3, 3};
  int x = input(g, "x", 4, xsh);
  int w = input(g, "w", 4, wsh);
  lm_graph_add_output(g, node2(g, "Conv", "conv_w", x, w));
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int nd[2] = {4, 4};
  const int64_t *shapes[2] = {xsh, wsh};
  lm_plan *p = NULL;
  char err[512] = "";
  CHECK_INT(lm_plan_new(g, nd, shapes, NULL, &p, err, sizeof err), LM_EINVAL);
  CHECK(p == NULL);
  CHECK_CONTAINS(err, "conv_w");
  CHECK_CONTAINS(err, "weight is not a constant");
  lm_graph_free(g);

  /* An int64 value at run time. */
  g = lm_graph_new();
  x = input(g, "x", 4, xsh);
  int ci = node1(g, "Cast", "to_int", x);
  lm_graph_attr_set_int(g, g->nnodes - 1, "to", 7);
  int cf = node1(g, "Cast", "to_float", ci);
  lm_graph_attr_set_int(g, g->nnodes - 1, "to", 1);
  lm_graph_add_output(g, cf);
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  CHECK_INT(lm_plan_new(g, nd, shapes, NULL, &p, err, sizeof err), LM_EINVAL);
  CHECK_CONTAINS(err, "to_int");
  CHECK_CONTAINS(err, "int64");
  lm_graph_free(g);
}

/* The same numbers with 1 and 2 threads; the caller's OpenMP setting is
 * restored; profiling counts time per step. */
static void test_threads_and_profile(void)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {1, 2, 6, 5, 4}, csh[1] = {4};
  int x = input(g, "x", 5, xsh);
  int c = conv(g, "c", x, 2, 4, 3, 51);
  int in[3] = {c, const_rand(g, 1, csh, 52, 0.5f, 1), const_rand(g, 1, csh, 53, 0.5f, 0)};
  lm_graph_add_output(g, act_leaky(g, node(g, "InstanceNormalization", "in", 3, in)));
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int nd = 5;
  const int64_t *shapes[1] = {xsh};
  int64_t n = numel(5, xsh), on = 4 * 6 * 5 * 4;
  float *xs = rand_input(n, 7), *y1 = malloc(sizeof(float) * (size_t)on),
        *y2 = malloc(sizeof(float) * (size_t)on);
  char err[256];
  lm_plan *p1 = NULL, *p2 = NULL;
  lm_plan_options o1 = {.threads = 1}, o2 = {.threads = 2};
  omp_set_num_threads(3);
  CHECK_INT(lm_plan_new(g, &nd, shapes, &o1, &p1, err, sizeof err), LM_OK);
  CHECK_INT(lm_plan_new(g, &nd, shapes, &o2, &p2, err, sizeof err), LM_OK);
  CHECK_INT(omp_get_max_threads(), 3);
  if (p1 && p2) {
    const float *ins[1] = {xs};
    float *o1s[1] = {y1}, *o2s[1] = {y2};
    CHECK_INT(lm_plan_profile(p2, true), LM_OK);
    CHECK_INT(lm_plan_run(p1, ins, o1s, NULL, err, sizeof err), LM_OK);
    CHECK_INT(lm_plan_run(p2, ins, o2s, NULL, err, sizeof err), LM_OK);
    CHECK_INT(omp_get_max_threads(), 3);
    CHECK(memcmp(y1, y2, sizeof(float) * (size_t)on) == 0);
    double total = 0;
    for (int i = 0; i < lm_plan_nsteps(p2); i++) total += lm_plan_step_seconds(p2, i);
    CHECK(total > 0);
    CHECK(lm_plan_step_seconds(p1, 0) == 0);   /* p1 not profiled */
    CHECK_INT(lm_plan_profile(p2, false), LM_OK);
    CHECK(lm_plan_step_seconds(p2, 0) == 0);
  }
  lm_plan_free(p1);
  lm_plan_free(p2);
  free(xs);
  free(y1);
  free(y2);
  lm_graph_free(g);
}

/* bf16 convolutions where the CPU has them: the flag says so and the
 * result stays near float32's. */
static void test_bf16_option(void)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[5] = {1, 4, 6, 5, 4};
  int x = input(g, "x", 5, xsh);
  lm_graph_add_output(g, act_leaky(g, conv(g, "c", x, 4, 8, 3, 61)));
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int nd = 5;
  const int64_t *shapes[1] = {xsh};
  int64_t n = numel(5, xsh), on = 8 * 6 * 5 * 4;
  float *xs = rand_input(n, 8), *y32 = malloc(sizeof(float) * (size_t)on),
        *y16 = malloc(sizeof(float) * (size_t)on);
  char err[256];
  lm_plan *p32 = NULL, *p16 = NULL;
  lm_plan_options o32 = {.threads = 2}, o16 = {.threads = 2, .bf16 = true};
  CHECK_INT(lm_plan_new(g, &nd, shapes, &o32, &p32, err, sizeof err), LM_OK);
  CHECK_INT(lm_plan_new(g, &nd, shapes, &o16, &p16, err, sizeof err), LM_OK);
  if (p32 && p16) {
    CHECK(!lm_plan_uses_bf16(p32));
    CHECK_INT(lm_plan_uses_bf16(p16), lm_cpu_has_bf16());
    const float *ins[1] = {xs};
    float *a[1] = {y32}, *b[1] = {y16};
    CHECK_INT(lm_plan_run(p32, ins, a, NULL, err, sizeof err), LM_OK);
    CHECK_INT(lm_plan_run(p16, ins, b, NULL, err, sizeof err), LM_OK);
    double maxd = 0, maxv = 0;
    for (int64_t i = 0; i < on; i++) {
      maxd = fmax(maxd, fabs(y32[i] - y16[i]));
      maxv = fmax(maxv, fabs(y32[i]));
    }
    CHECK(maxd <= 2e-2 * maxv);
    printf("# bf16 %s: max difference %.3g of max %.3g\n",
           lm_plan_uses_bf16(p16) ? "used" : "not available", maxd, maxv);
  }
  lm_plan_free(p32);
  lm_plan_free(p16);
  free(xs);
  free(y32);
  free(y16);
  lm_graph_free(g);
}

static void test_specialize_errors(void)
{
  lm_graph *g = lm_graph_new();
  g->source = "spec.onnx";
  int64_t xsh[3] = {1, 2, 3}, bad[4] = {1, 2, 3, 4};
  int x = input(g, "img", 3, xsh);
  lm_graph_add_output(g, node1(g, "Relu", "y", x));
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int nd = 4;
  const int64_t *shapes[1] = {bad};
  lm_plan *p = NULL;
  char err[256] = "";
  CHECK_INT(lm_plan_new(g, &nd, shapes, NULL, &p, err, sizeof err), LM_EINVAL);
  CHECK_CONTAINS(err, "spec.onnx");
  CHECK_CONTAINS(err, "'img' has 3 dims, given 4");
  lm_graph_free(g);
}

static void test_cancel(void)
{
  lm_graph *g = lm_graph_new();
  int64_t xsh[2] = {2, 2};
  int x = input(g, "x", 2, xsh);
  lm_graph_add_output(g, node1(g, "Relu", "y", node1(g, "Neg", "n", x)));
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int nd = 2;
  const int64_t *shapes[1] = {xsh};
  lm_plan *p = NULL;
  char err[256];
  CHECK_INT(lm_plan_new(g, &nd, shapes, NULL, &p, err, sizeof err), LM_OK);
  float xs[4] = {1, -2, 3, -4}, y[4] = {9, 9, 9, 9};
  const float *ins[1] = {xs};
  float *outs[1] = {y};
  volatile int cancel = 1;
  CHECK_INT(lm_plan_run(p, ins, outs, &cancel, err, sizeof err), LM_ECANCELED);
  CHECK_NEAR(y[0], 9, 0);   /* nothing ran */
  cancel = 0;
  CHECK_INT(lm_plan_run(p, ins, outs, &cancel, err, sizeof err), LM_OK);
  CHECK_NEAR(y[1], 2, 0);
  CHECK_NEAR(y[0], 0, 0);
  lm_plan_free(p);
  lm_graph_free(g);
}

/* ---- the real MeshNet -------------------------------------------------------- */

static int run_model5(void)
{
  const char *data = getenv("LUMEN_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/models/model5_gw_ae/model5_gw_ae.onnx", data ? data : "");
  FILE *f = data ? fopen(path, "rb") : NULL;
  if (!f) TAP_SKIP_ALL("no $LUMEN_TEST_DATA/models/model5_gw_ae/model5_gw_ae.onnx");
  fclose(f);
  lm_graph *g = NULL;
  char err[512] = "";
  int rc = lm_onnx_load(path, &g, err, sizeof err);
  if (rc < 0) {
    printf("# load: %s\n", err);
    return 1;
  }
  rc = lm_graph_prepare(g);
  if (rc < 0) {
    printf("# prepare: %s\n", g->err);
    lm_graph_free(g);
    return 1;
  }
  int64_t sh[5] = {1, 1, 32, 32, 32};
  int nd = 5;
  const int64_t *shapes[1] = {sh};
  lm_plan *p = NULL;
  lm_plan_options opt = {.threads = 2};
  rc = lm_plan_new(g, &nd, shapes, &opt, &p, err, sizeof err);
  if (rc < 0) {
    printf("# plan: %s\n", err);
    lm_graph_free(g);
    return 1;
  }
  int64_t osh[LM_MAX_DIMS];
  int ond = lm_plan_output_shape(p, 0, osh);
  int ok = ond == 5 && osh[0] == 1 && osh[1] == 3 && osh[2] == 32 && osh[3] == 32 &&
           osh[4] == 32;
  printf("# %d steps, arena %zu bytes, %zu without reuse\n", lm_plan_nsteps(p),
         lm_plan_arena_bytes(p), lm_plan_unplanned_bytes(p));
  for (int i = 0; i < lm_plan_nsteps(p); i++) printf("#   %s\n", lm_plan_step_label(p, i));
  int64_t n = 32 * 32 * 32;
  float *x = rand_input(n, 1), *y = malloc(sizeof *y * (size_t)n * 3);
  for (int64_t i = 0; i < n; i++) x[i] = (x[i] + 1) * 0.5f;
  const float *ins[1] = {x};
  float *outs[1] = {y};
  rc = ok ? lm_plan_run(p, ins, outs, NULL, err, sizeof err) : LM_EINVAL;
  if (rc < 0) printf("# run: %s (output ndim %d)\n", err, ond);
  for (int64_t i = 0; rc == LM_OK && i < 3 * n; i++)
    if (!isfinite(y[i])) {
      printf("# non-finite output at %lld\n", (long long)i);
      rc = LM_EINVAL;
    }
  free(x);
  free(y);
  lm_plan_free(p);
  lm_graph_free(g);
  return rc == LM_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
  if (argc > 1 && !strcmp(argv[1], "model5")) return run_model5();
  RUN(test_topological_order);
  RUN(test_cycle_error);
  RUN(test_undefined_and_unsupported);
  RUN(test_identity_alias);
  RUN(test_shape_subgraph_folding);
  RUN(test_dynamic_input_shape);
  RUN(test_output_read_later);
  RUN(test_dead_nodes);
  RUN(test_constant_folding);
  RUN(test_bn_fold_conv);
  RUN(test_bn_fold_conv_transpose);
  RUN(test_conv_act_fusion);
  RUN(test_no_fusion_with_second_reader);
  RUN(test_instnorm_act);
  RUN(test_instnorm_residual);
  RUN(test_groupnorm_pattern);
  RUN(test_memory_reuse);
  RUN(test_inplace_and_views);
  RUN(test_binary_inplace);
  RUN(test_add_act);
  RUN(test_identity_like_views);
  RUN(test_concat_in_place);
  RUN(test_plan_errors);
  RUN(test_threads_and_profile);
  RUN(test_bf16_option);
  RUN(test_specialize_errors);
  RUN(test_cancel);
  TAP_DONE();
}
