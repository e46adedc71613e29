/* The CPU op table (models/src/cpu_ops*.c): infer and eval of each op family
 * on tiny tensors.  Expected numbers are hand-worked or were computed with
 * Debian's python3-torch 1.13 / numpy when this test was written (the
 * torch call is named next to each).  Opset variants (attributes that
 * became inputs) and infer errors are covered too; the ONNX node tests run
 * through plans in test_onnx_conformance. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "tap.h"

/* ---- a one-node graph harness ------------------------------------------- */

typedef struct tcase {
  lm_graph *g;
  int node;
  int nin, nout;
  int in[8], out[8];
  const void *rt[8];     /* runtime data of non-constant inputs */
  lm_rt_tensor o[8];     /* outputs after run() */
  char err[512];
} tcase;

static void tc_init(tcase *t, int opset)
{
  memset(t, 0, sizeof *t);
  t->g = lm_graph_new();
  t->g->opset = opset;
  t->g->source = "test.onnx";
}

static void tc_free(tcase *t)
{
  for (int i = 0; i < t->nout; i++) free(t->o[i].data);
  lm_graph_free(t->g);
}

/* Input: constant (the infer side can read it) or runtime only. */
static void tc_in(tcase *t, lm_dtype dt, int ndim, const int64_t *shape, const void *data,
                  bool constant)
{
  char nm[16];
  snprintf(nm, sizeof nm, "in%d", t->nin);
  int v = lm_graph_value(t->g, nm);
  /* Constants are copied into the graph and read from there (the caller's
  ** compound literal may be out of scope by the time the node runs). */
  if (constant) lm_graph_set_const(t->g, v, dt, ndim, shape, data, true);
  else lm_graph_set_type(t->g, v, dt, ndim, shape);
  t->rt[t->nin] = constant ? t->g->values[v].data : data;
  t->in[t->nin++] = v;
}

static void tc_absent(tcase *t) { t->in[t->nin++] = -1; }

#define F32(...) ((const float[]){__VA_ARGS__})
#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define SH(...) ((const int64_t[]){__VA_ARGS__})

/* A float input of given shape (runtime). */
#define IN_F(t, nd, shape, ...) tc_in(t, LM_F32, nd, shape, F32(__VA_ARGS__), false)
/* An int64 constant input. */
#define IN_I(t, nd, shape, ...) tc_in(t, LM_I64, nd, shape, I64(__VA_ARGS__), true)

static void tc_node(tcase *t, const char *op, int nout)
{
  t->nout = nout;
  for (int i = 0; i < nout; i++) {
    char nm[16];
    snprintf(nm, sizeof nm, "out%d", i);
    t->out[i] = lm_graph_value(t->g, nm);
  }
  t->node = lm_graph_add_node(t->g, op, "n1", t->nin, t->in, nout, t->out);
}

static void tc_int(tcase *t, const char *a, int64_t v) { lm_graph_attr_set_int(t->g, t->node, a, v); }
static void tc_float(tcase *t, const char *a, double v) { lm_graph_attr_set_float(t->g, t->node, a, v); }
static void tc_str(tcase *t, const char *a, const char *v) { lm_graph_attr_set_string(t->g, t->node, a, v); }
static void tc_ints(tcase *t, const char *a, const int64_t *v, int n)
{
  lm_graph_attr_set_ints(t->g, t->node, a, v, n);
}

/* infer only: LM_OK or the error (message in t->g->err). */
static int tc_infer(tcase *t)
{
  const lm_cpu_kernel *k = lm_cpu_kernel_find(t->g->nodes[t->node].op);
  if (!k) return LM_ENOENT;
  return k->infer(t->g, &t->g->nodes[t->node]);
}

/* infer, allocate the outputs with the inferred shapes, eval. */
static int tc_run(tcase *t)
{
  int st = tc_infer(t);
  if (st) return st;
  const lm_cpu_kernel *k = lm_cpu_kernel_find(t->g->nodes[t->node].op);
  lm_rt_tensor in[8];
  memset(in, 0, sizeof in);
  for (int i = 0; i < t->nin; i++) {
    if (t->in[i] < 0) continue;
    const lm_gvalue *v = &t->g->values[t->in[i]];
    in[i].dt = v->dt;
    in[i].ndim = v->ndim;
    memcpy(in[i].shape, v->shape, sizeof v->shape);
    in[i].data = (void *)t->rt[i];
  }
  for (int i = 0; i < t->nout; i++) {
    const lm_gvalue *v = &t->g->values[t->out[i]];
    if (!v->dt_known || lm_gvalue_numel(v) < 0) return LM_ESHAPE;
    t->o[i].dt = v->dt;
    t->o[i].ndim = v->ndim;
    memcpy(t->o[i].shape, v->shape, sizeof v->shape);
    t->o[i].data = calloc(1, (size_t)lm_gvalue_numel(v) * lm_dtype_size(v->dt) + 8);
  }
  return k->eval(&t->g->nodes[t->node], in, t->nin, t->o, t->nout, t->err, sizeof t->err);
}

static const lm_gvalue *tc_outv(tcase *t, int i) { return &t->g->values[t->out[i]]; }

static void check_shape(const lm_gvalue *v, int ndim, const int64_t *shape)
{
  CHECK_INT(v->ndim, ndim);
  for (int k = 0; k < ndim && k < v->ndim; k++) CHECK_INT(v->shape[k], shape[k]);
}

static void check_f32(const lm_rt_tensor *o, const float *want, int n, double tol)
{
  CHECK_INT(o->dt, LM_F32);
  for (int i = 0; i < n; i++) CHECK_NEAR(((const float *)o->data)[i], want[i], tol);
}

static void check_i64(const lm_rt_tensor *o, const int64_t *want, int n)
{
  CHECK_INT(o->dt, LM_I64);
  for (int i = 0; i < n; i++) CHECK_INT(((const int64_t *)o->data)[i], want[i]);
}

/* ---- element-wise ------------------------------------------------------- */

static void test_broadcast_add_mul(void)
{
  tcase t;
  tc_init(&t, 17);
  IN_F(&t, 2, SH(2, 3), 1, 2, 3, 4, 5, 6);
  IN_F(&t, 1, SH(3), 10, 20, 30);
  tc_node(&t, "Add", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 3));
  check_f32(&t.o[0], F32(11, 22, 33, 14, 25, 36), 6, 0);
  /* eval refuses an output its inputs do not broadcast to (a plan bug must
  ** not become a buffer overrun) */
  {
    lm_rt_tensor in[2] = {{.dt = LM_F32, .ndim = 2, .shape = {2, 3}, .data = (void *)t.rt[0]},
                          {.dt = LM_F32, .ndim = 1, .shape = {3}, .data = (void *)t.rt[1]}};
    float buf[4];
    lm_rt_tensor bad = {.dt = LM_F32, .ndim = 2, .shape = {2, 2}, .data = buf};
    char err[256] = "";
    CHECK_INT(lm_cpu_kernel_find("Add")->eval(&t.g->nodes[t.node], in, 2, &bad, 1, err, sizeof err),
              LM_EINVAL);
    CHECK_CONTAINS(err, "Add node 'n1': inputs do not broadcast to the output");
  }
  tc_free(&t);

  /* [2,1,3] * [4,1] -> [2,4,3] */
  tc_init(&t, 17);
  IN_F(&t, 3, SH(2, 1, 3), 1, 2, 3, -1, -2, -3);
  IN_F(&t, 2, SH(4, 1), 1, 2, 3, 4);
  tc_node(&t, "Mul", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 3, SH(2, 4, 3));
  const float *y = t.o[0].data;
  CHECK_NEAR(y[0], 1, 0);
  CHECK_NEAR(y[5], 6, 0);        /* [0,1,2] = 3 * 2 */
  CHECK_NEAR(y[23], -12, 0);     /* [1,3,2] = -3 * 4 */
  tc_free(&t);

  /* int64 division truncates toward zero (C and ONNX Runtime) */
  tc_init(&t, 17);
  tc_in(&t, LM_I64, 1, SH(4), I64(7, -7, 9, 0), true);
  tc_in(&t, LM_I64, 0, NULL, I64(2), true);
  t.rt[0] = I64(7, -7, 9, 0);
  tc_node(&t, "Div", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_i64(&t.o[0], I64(3, -3, 4, 0), 4);
  tc_free(&t);

  /* shapes that do not broadcast: the error names file, op, node, input */
  tc_init(&t, 17);
  IN_F(&t, 2, SH(2, 3), 0, 0, 0, 0, 0, 0);
  IN_F(&t, 1, SH(4), 0, 0, 0, 0);
  tc_node(&t, "Sub", 1);
  CHECK_INT(tc_infer(&t), LM_EINVAL);
  CHECK_CONTAINS(t.g->err, "test.onnx: Sub node 'n1'");
  CHECK_CONTAINS(t.g->err, "input 1 ('in1') shape [4] does not broadcast");
  tc_free(&t);
}

static void test_variadic_and_compare(void)
{
  tcase t;
  tc_init(&t, 13);
  IN_F(&t, 1, SH(3), 1, 5, 3);
  IN_F(&t, 2, SH(2, 1), 2, 4);
  IN_F(&t, 0, NULL, 3);
  tc_node(&t, "Max", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 3));
  check_f32(&t.o[0], F32(3, 5, 3, 4, 5, 4), 6, 0);
  tc_free(&t);

  tc_init(&t, 13);
  IN_F(&t, 1, SH(3), 1, 5, 3);
  IN_F(&t, 1, SH(3), 2, 4, 6);
  tc_node(&t, "Mean", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(1.5, 4.5, 4.5), 3, 0);
  tc_free(&t);

  tc_init(&t, 13);
  IN_F(&t, 1, SH(3), 1, 5, 3);
  IN_F(&t, 1, SH(3), 1, 4, 6);
  tc_node(&t, "Equal", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  CHECK_INT(t.o[0].dt, LM_U8);
  const uint8_t *b = t.o[0].data;
  CHECK(b[0] == 1 && b[1] == 0 && b[2] == 0);
  tc_free(&t);

  tc_init(&t, 13);
  tc_in(&t, LM_U8, 1, SH(3), (const uint8_t[]){1, 0, 1}, false);
  IN_F(&t, 1, SH(3), 1, 2, 3);
  IN_F(&t, 0, NULL, -1);
  tc_node(&t, "Where", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(1, -1, 3), 3, 0);
  tc_free(&t);
}

/* ---- activations -------------------------------------------------------- */

static void unary(const char *op, const float *want, double tol, const char *attr, double v,
                  const char *sattr)
{
  tcase t;
  tc_init(&t, 17);
  IN_F(&t, 1, SH(5), -2.0f, -0.5f, 0.0f, 0.75f, 3.0f);
  tc_node(&t, op, 1);
  if (attr) tc_float(&t, attr, v);
  if (sattr) tc_str(&t, "approximate", sattr);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 1, SH(5));
  check_f32(&t.o[0], want, 5, tol);
  tc_free(&t);
}

static void test_activations(void)
{
  /* torch.nn.functional on [-2, -0.5, 0, 0.75, 3] */
  unary("Relu", F32(0, 0, 0, 0.75f, 3), 0, NULL, 0, NULL);
  unary("LeakyRelu", F32(-0.2f, -0.05f, 0, 0.75f, 3), 1e-7, "alpha", 0.1, NULL);
  unary("Elu", F32(-0.86466473f, -0.39346933f, 0, 0.75f, 3), 1e-6, NULL, 0, NULL);
  unary("Selu", F32(-1.5201665f, -0.69175816f, 0, 0.78802574f, 3.152103f), 1e-6, NULL, 0, NULL);
  unary("Celu", F32(-1.2642411f, -0.44239843f, 0, 0.75f, 3), 1e-6, "alpha", 2.0, NULL);
  unary("Gelu", F32(-0.0455001f, -0.15426879f, 0, 0.58002955f, 2.9959502f), 1e-6, NULL, 0, NULL);
  unary("Gelu", F32(-0.04540229f, -0.154286f, 0, 0.5799606f, 2.9963627f), 1e-6, NULL, 0, "tanh");
  unary("Sigmoid", F32(0.11920292f, 0.37754068f, 0.5f, 0.6791787f, 0.95257413f), 1e-7, NULL, 0,
        NULL);
  unary("Softplus", F32(0.126928f, 0.474077f, 0.6931472f, 1.1368711f, 3.0485873f), 1e-6, NULL, 0,
        NULL);
  /* hand-worked: max(0, min(1, 0.2x + 0.5)), floor, round half to even */
  unary("HardSigmoid", F32(0.1f, 0.4f, 0.5f, 0.65f, 1), 1e-7, NULL, 0, NULL);
  unary("Floor", F32(-2, -1, 0, 0, 3), 0, NULL, 0, NULL);
  unary("Round", F32(-2, -0.0f, 0, 1, 3), 0, NULL, 0, NULL);
  unary("Abs", F32(2, 0.5f, 0, 0.75f, 3), 0, NULL, 0, NULL);

  tcase t;
  tc_init(&t, 17);
  IN_F(&t, 1, SH(5), -2.0f, -0.5f, 0.0f, 0.75f, 3.0f);
  tc_node(&t, "Gelu", 1);
  tc_str(&t, "approximate", "fast");
  CHECK_INT(tc_infer(&t), LM_EINVAL);
  CHECK_CONTAINS(t.g->err, "approximate is 'fast'");
  tc_free(&t);
}

static void test_clip_opsets(void)
{
  /* opset 11+: min and max are inputs (max left out here) */
  tcase t;
  tc_init(&t, 13);
  IN_F(&t, 1, SH(4), -3, -1, 1, 3);
  IN_F(&t, 0, NULL, -2);
  tc_absent(&t);
  tc_node(&t, "Clip", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(-2, -1, 1, 3), 4, 0);
  tc_free(&t);
  /* opset 6: attributes */
  tc_init(&t, 6);
  IN_F(&t, 1, SH(4), -3, -1, 1, 3);
  tc_node(&t, "Clip", 1);
  tc_float(&t, "min", -1.5);
  tc_float(&t, "max", 2);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(-1.5f, -1, 1, 2), 4, 0);
  tc_free(&t);
}

static void test_prelu(void)
{
  /* scalar slope [1,1,1] (what torch exports), per-channel [C,1,1],
  ** and the opset-6 per-channel [C] */
  const float x[] = {-1, 2, -3, 4, -5, 6, -7, 8};
  tcase t;
  tc_init(&t, 17);
  tc_in(&t, LM_F32, 4, SH(1, 2, 2, 2), x, false);
  IN_F(&t, 3, SH(1, 1, 1), 0.5f);
  tc_node(&t, "PRelu", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(-0.5f, 2, -1.5f, 4, -2.5f, 6, -3.5f, 8), 8, 0);
  tc_free(&t);

  tc_init(&t, 17);
  tc_in(&t, LM_F32, 4, SH(1, 2, 2, 2), x, false);
  IN_F(&t, 3, SH(2, 1, 1), 0.5f, 0.25f);
  tc_node(&t, "PRelu", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(-0.5f, 2, -1.5f, 4, -1.25f, 6, -1.75f, 8), 8, 0);
  tc_free(&t);

  tc_init(&t, 6);
  tc_in(&t, LM_F32, 3, SH(1, 2, 4), x, false);
  IN_F(&t, 1, SH(2), 0.5f, 0.25f);
  tc_node(&t, "PRelu", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(-0.5f, 2, -1.5f, 4, -1.25f, 6, -1.75f, 8), 8, 0);
  tc_free(&t);
}

/* ---- normalisation ------------------------------------------------------ */

static void test_norms(void)
{
  /* F.instance_norm(x, weight=[1, 2], bias=[0, 0.5], eps=1e-5) */
  tcase t;
  tc_init(&t, 17);
  IN_F(&t, 3, SH(1, 2, 3), 1, 2, 4, -1, 0, 5);
  IN_F(&t, 1, SH(2), 1, 2);
  IN_F(&t, 1, SH(2), 0, 0.5f);
  tc_node(&t, "InstanceNormalization", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(-1.0690415f, -0.2672603f, 1.3363019f, -1.2780006f, -0.51600033f, 3.2940006f),
            6, 2e-6);
  tc_free(&t);

  /* BatchNormalization inference: (x - mean) / sqrt(var + eps) * s + b,
  ** hand-worked with eps 0 */
  tc_init(&t, 15);
  IN_F(&t, 3, SH(1, 2, 2), 1, 3, 2, 6);
  IN_F(&t, 1, SH(2), 2, 1);
  IN_F(&t, 1, SH(2), 0, 1);
  IN_F(&t, 1, SH(2), 1, 2);
  IN_F(&t, 1, SH(2), 4, 16);
  tc_node(&t, "BatchNormalization", 1);
  tc_float(&t, "epsilon", 0);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(0, 2, 1, 2), 4, 1e-7);
  tc_free(&t);

  /* F.layer_norm(x, (2, 3), weight=1.5, bias=0.25): LayerNormalization axis=1 */
  tc_init(&t, 17);
  IN_F(&t, 3, SH(2, 2, 3), 1, 2, 3, 4, 5, 7, 0, -1, 2, 3, 3, 9);
  IN_F(&t, 2, SH(2, 3), 1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f);
  IN_F(&t, 0, NULL, 0.25f);
  tc_node(&t, "LayerNormalization", 3);
  tc_int(&t, "axis", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0],
            F32(-1.778368f, -1.01773f, -0.2570921f, 0.5035458f, 1.2641838f, 2.7854595f,
                -1.0010858f, -1.470243f, -0.06277141f, 0.40638578f, 0.40638578f, 3.221329f),
            12, 2e-6);
  check_shape(tc_outv(&t, 1), 3, SH(2, 1, 1));
  CHECK_NEAR(((float *)t.o[1].data)[0], 22.0 / 6, 1e-6);   /* the mean */
  tc_free(&t);

  /* F.group_norm(x, 2, weight=[1,1,2,2], bias=[0,0,1,1]) = GroupNormalization
  ** opset 18 with per-group scale [1, 2], bias [0, 1] */
  tc_init(&t, 18);
  IN_F(&t, 3, SH(1, 4, 2), 0, 1, 2.828427f, 5.196152f, 8, 11.18034f, 14.6969385f, 18.52026f);
  IN_F(&t, 1, SH(2), 1, 2);
  IN_F(&t, 1, SH(2), 0, 1);
  tc_node(&t, "GroupNormalization", 1);
  tc_int(&t, "num_groups", 2);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0],
            F32(-1.1410077f, -0.6352743f, 0.2894223f, 1.4868599f, -1.5983691f, 0.022159114f,
                1.8140266f, 3.7621832f),
            8, 3e-6);
  tc_free(&t);

  /* scale of the wrong length */
  tc_init(&t, 17);
  IN_F(&t, 3, SH(1, 2, 3), 1, 2, 4, -1, 0, 5);
  IN_F(&t, 1, SH(3), 1, 2, 3);
  IN_F(&t, 1, SH(2), 0, 0.5f);
  tc_node(&t, "InstanceNormalization", 1);
  CHECK_INT(tc_infer(&t), LM_EINVAL);
  CHECK_CONTAINS(t.g->err, "input scale ('in1') has 3 elements, X has 2 channels");
  tc_free(&t);
}

/* ---- shape ops ---------------------------------------------------------- */

static void test_unsqueeze_squeeze_opsets(void)
{
  /* opset 11: axes attribute; opset 13: axes input */
  tcase t;
  tc_init(&t, 11);
  IN_F(&t, 2, SH(2, 3), 1, 2, 3, 4, 5, 6);
  tc_node(&t, "Unsqueeze", 1);
  tc_ints(&t, "axes", I64(0, -1), 2);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 4, SH(1, 2, 3, 1));
  check_f32(&t.o[0], F32(1, 2, 3, 4, 5, 6), 6, 0);
  tc_free(&t);

  tc_init(&t, 13);
  IN_F(&t, 2, SH(2, 3), 1, 2, 3, 4, 5, 6);
  IN_I(&t, 1, SH(2), 1, 3);
  tc_node(&t, "Unsqueeze", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 4, SH(2, 1, 3, 1));
  tc_free(&t);

  tc_init(&t, 13);
  IN_F(&t, 4, SH(1, 3, 1, 2), 1, 2, 3, 4, 5, 6);
  IN_I(&t, 1, SH(1), -2);
  tc_node(&t, "Squeeze", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 3, SH(1, 3, 2));
  tc_free(&t);

  tc_init(&t, 11);
  IN_F(&t, 4, SH(1, 3, 1, 2), 1, 2, 3, 4, 5, 6);
  tc_node(&t, "Squeeze", 1);   /* no axes: every 1 goes */
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(3, 2));
  tc_free(&t);

  tc_init(&t, 11);
  IN_F(&t, 2, SH(2, 3), 1, 2, 3, 4, 5, 6);
  tc_node(&t, "Squeeze", 1);
  tc_ints(&t, "axes", I64(1), 1);
  CHECK_INT(tc_infer(&t), LM_EINVAL);
  CHECK_CONTAINS(t.g->err, "axis 1 has extent 3, not 1");
  tc_free(&t);
}

static void test_reshape_flatten(void)
{
  tcase t;
  tc_init(&t, 14);
  IN_F(&t, 3, SH(2, 3, 4), 0);
  IN_I(&t, 1, SH(3), 0, -1, 2);
  tc_node(&t, "Reshape", 1);
  CHECK_INT(tc_infer(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 3, SH(2, 6, 2));
  tc_free(&t);

  /* allowzero: 0 is a real zero extent */
  tc_init(&t, 14);
  IN_F(&t, 2, SH(0, 3), 0);
  IN_I(&t, 1, SH(2), 3, 0);
  tc_node(&t, "Reshape", 1);
  tc_int(&t, "allowzero", 1);
  CHECK_INT(tc_infer(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(3, 0));
  tc_free(&t);

  tc_init(&t, 14);
  IN_F(&t, 2, SH(2, 3), 0);
  IN_I(&t, 1, SH(2), 4, -1);
  tc_node(&t, "Reshape", 1);
  CHECK_INT(tc_infer(&t), LM_EINVAL);
  CHECK_CONTAINS(t.g->err, "does not divide");
  tc_free(&t);

  /* shape not constant: the rank is known, the extents are not */
  tc_init(&t, 14);
  IN_F(&t, 2, SH(2, 3), 0);
  tc_in(&t, LM_I64, 1, SH(3), I64(1, 2, 3), false);
  tc_node(&t, "Reshape", 1);
  CHECK_INT(tc_infer(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 3, SH(-1, -1, -1));
  tc_free(&t);

  tc_init(&t, 13);
  IN_F(&t, 4, SH(2, 3, 4, 5), 0);
  tc_node(&t, "Flatten", 1);
  tc_int(&t, "axis", -2);
  CHECK_INT(tc_infer(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(6, 20));
  tc_free(&t);
}

static void test_slice_opsets(void)
{
  /* x = arange(12).reshape(3, 4); numpy x[2:0:-1, ::2] = [[8, 10], [4, 6]] */
  const float x[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  tcase t;
  tc_init(&t, 13);
  tc_in(&t, LM_F32, 2, SH(3, 4), x, false);
  IN_I(&t, 1, SH(2), 2, 0);
  IN_I(&t, 1, SH(2), 0, INT64_MAX);
  IN_I(&t, 1, SH(2), 0, 1);
  IN_I(&t, 1, SH(2), -1, 2);
  tc_node(&t, "Slice", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 2));
  check_f32(&t.o[0], F32(8, 10, 4, 6), 4, 0);
  tc_free(&t);

  /* opset 9 attributes: x[:, -3:-1] = [[1, 2], [5, 6], [9, 10]] */
  tc_init(&t, 9);
  tc_in(&t, LM_F32, 2, SH(3, 4), x, false);
  tc_node(&t, "Slice", 1);
  tc_ints(&t, "starts", I64(-3), 1);
  tc_ints(&t, "ends", I64(-1), 1);
  tc_ints(&t, "axes", I64(1), 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(3, 2));
  check_f32(&t.o[0], F32(1, 2, 5, 6, 9, 10), 6, 0);
  tc_free(&t);
}

static void test_split_opsets(void)
{
  const float x[] = {0, 1, 2, 3, 4, 5};
  /* opset 11 attribute, opset 13 input, opset 18 num_outputs (uneven) */
  for (int variant = 0; variant < 3; variant++) {
    tcase t;
    tc_init(&t, variant == 0 ? 11 : variant == 1 ? 13 : 18);
    tc_in(&t, LM_F32, 1, SH(6), x, false);
    if (variant == 1) IN_I(&t, 1, SH(2), 2, 4);
    tc_node(&t, "Split", 2);
    if (variant == 0) tc_ints(&t, "split", I64(2, 4), 2);
    if (variant == 2) tc_int(&t, "num_outputs", 2);
    CHECK_INT(tc_run(&t), LM_OK);
    int64_t first = variant == 2 ? 3 : 2;
    check_shape(tc_outv(&t, 0), 1, SH(first));
    check_shape(tc_outv(&t, 1), 1, SH(6 - first));
    CHECK_NEAR(((float *)t.o[1].data)[0], (double)first, 0);
    tc_free(&t);
  }
}

static void test_gather_concat_shape(void)
{
  /* Gather axis 1 with a negative index: x[:, [-1, 0]] */
  tcase t;
  tc_init(&t, 13);
  IN_F(&t, 2, SH(2, 3), 1, 2, 3, 4, 5, 6);
  IN_I(&t, 1, SH(2), -1, 0);
  tc_node(&t, "Gather", 1);
  tc_int(&t, "axis", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 2));
  check_f32(&t.o[0], F32(3, 1, 6, 4), 4, 0);
  tc_free(&t);

  tc_init(&t, 13);
  IN_F(&t, 2, SH(2, 3), 1, 2, 3, 4, 5, 6);
  IN_I(&t, 1, SH(1), 3);
  tc_node(&t, "Gather", 1);
  tc_int(&t, "axis", 1);
  CHECK_INT(tc_infer(&t), LM_EINVAL);
  CHECK_CONTAINS(t.g->err, "index 3 is out of range for extent 3");
  tc_free(&t);

  /* int64 Concat on axis 0 (shape arithmetic) */
  tc_init(&t, 13);
  IN_I(&t, 1, SH(2), 1, 2);
  IN_I(&t, 1, SH(1), -1);
  tc_node(&t, "Concat", 1);
  tc_int(&t, "axis", 0);
  CHECK_INT(tc_run(&t), LM_OK);
  check_i64(&t.o[0], I64(1, 2, -1), 3);
  tc_free(&t);

  /* float Concat on axis 1 */
  tc_init(&t, 13);
  IN_F(&t, 2, SH(2, 1), 1, 2);
  IN_F(&t, 2, SH(2, 2), 3, 4, 5, 6);
  tc_node(&t, "Concat", 1);
  tc_int(&t, "axis", -1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(1, 3, 4, 2, 5, 6), 6, 0);
  tc_free(&t);

  /* Shape with start/end (opset 15) */
  tc_init(&t, 15);
  IN_F(&t, 4, SH(2, 3, 4, 5), 0);
  tc_node(&t, "Shape", 1);
  tc_int(&t, "start", 1);
  tc_int(&t, "end", -1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_i64(&t.o[0], I64(3, 4), 2);
  CHECK(lm_cpu_kernel_find("Shape")->shape_only);
  tc_free(&t);
}

static void test_transpose_expand_tile_cast(void)
{
  tcase t;
  tc_init(&t, 13);
  IN_F(&t, 3, SH(1, 2, 3), 1, 2, 3, 4, 5, 6);
  tc_node(&t, "Transpose", 1);
  tc_ints(&t, "perm", I64(2, 0, 1), 3);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 3, SH(3, 1, 2));
  check_f32(&t.o[0], F32(1, 4, 2, 5, 3, 6), 6, 0);
  tc_free(&t);

  tc_init(&t, 13);
  IN_F(&t, 2, SH(2, 1), 1, 2);
  IN_I(&t, 1, SH(3), 2, 1, 3);
  tc_node(&t, "Expand", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 3, SH(2, 2, 3));
  check_f32(&t.o[0], F32(1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2), 12, 0);
  tc_free(&t);

  /* numpy.tile([[1, 2]], (2, 2)) */
  tc_init(&t, 13);
  IN_F(&t, 2, SH(1, 2), 1, 2);
  IN_I(&t, 1, SH(2), 2, 2);
  tc_node(&t, "Tile", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 4));
  check_f32(&t.o[0], F32(1, 2, 1, 2, 1, 2, 1, 2), 8, 0);
  tc_free(&t);

  /* Cast float -> int64 truncates; -> bool is "non-zero" */
  tc_init(&t, 13);
  IN_F(&t, 1, SH(4), -1.7f, 0.5f, 2.9f, 0);
  tc_node(&t, "Cast", 1);
  tc_int(&t, "to", 7);
  CHECK_INT(tc_run(&t), LM_OK);
  check_i64(&t.o[0], I64(-1, 0, 2, 0), 4);
  tc_free(&t);
  tc_init(&t, 13);
  IN_F(&t, 1, SH(4), -1.7f, 0.5f, 2.9f, 0);
  tc_node(&t, "Cast", 1);
  tc_int(&t, "to", 9);
  CHECK_INT(tc_run(&t), LM_OK);
  const uint8_t *b = t.o[0].data;
  CHECK(b[0] == 1 && b[1] == 1 && b[2] == 1 && b[3] == 0);
  tc_free(&t);
}

static void test_constants_range(void)
{
  /* ConstantOfShape with an int64 value tensor */
  tcase t;
  tc_init(&t, 13);
  IN_I(&t, 1, SH(2), 2, 3);
  tc_node(&t, "ConstantOfShape", 1);
  int tv = lm_graph_const(t.g, LM_I64, 1, SH(1), I64(7), true);
  lm_gattr *a = lm_graph_add_attr(t.g, t.node, "value", LM_ATTR_TENSOR);
  a->tensor = tv;
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 3));
  check_i64(&t.o[0], I64(7, 7, 7, 7, 7, 7), 6);
  tc_free(&t);

  /* Constant: infer makes the output a constant value */
  tc_init(&t, 13);
  tc_node(&t, "Constant", 1);
  tc_ints(&t, "value_ints", I64(4, 5), 2);
  CHECK_INT(tc_infer(&t), LM_OK);
  const lm_gvalue *v = tc_outv(&t, 0);
  CHECK(v->data != NULL);
  CHECK_INT(v->dt, LM_I64);
  check_shape(v, 1, SH(2));
  CHECK_INT(((const int64_t *)v->data)[1], 5);
  tc_free(&t);

  tc_init(&t, 13);
  tc_node(&t, "Constant", 1);
  int cv = lm_graph_const(t.g, LM_F32, 2, SH(1, 2), F32(1.5f, -2), true);
  a = lm_graph_add_attr(t.g, t.node, "value", LM_ATTR_TENSOR);
  a->tensor = cv;
  CHECK_INT(tc_infer(&t), LM_OK);
  v = tc_outv(&t, 0);
  check_shape(v, 2, SH(1, 2));
  CHECK(v->data && ((const float *)v->data)[1] == -2);
  tc_free(&t);

  /* Range(10, 4, -3) = [10, 7] */
  tc_init(&t, 13);
  IN_I(&t, 0, NULL, 10);
  IN_I(&t, 0, NULL, 4);
  IN_I(&t, 0, NULL, -3);
  tc_node(&t, "Range", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_i64(&t.o[0], I64(10, 7), 2);
  tc_free(&t);
}

static void test_topk_onehot_scatter(void)
{
  /* TopK k=2 along the last axis, largest, ties to the lower index */
  tcase t;
  tc_init(&t, 11);
  IN_F(&t, 2, SH(2, 4), 1, 9, 3, 9, -1, -5, 0, -2);
  IN_I(&t, 1, SH(1), 2);
  tc_node(&t, "TopK", 2);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 2));
  check_f32(&t.o[0], F32(9, 9, 0, -1), 4, 0);
  check_i64(&t.o[1], I64(1, 3, 2, 0), 4);
  tc_free(&t);

  /* OneHot(indices [1, -1], depth 3, values [0, 5]) -> [[0,5,0],[0,0,5]] */
  tc_init(&t, 11);
  IN_I(&t, 1, SH(2), 1, -1);
  IN_I(&t, 0, NULL, 3);
  IN_F(&t, 1, SH(2), 0, 5);
  tc_node(&t, "OneHot", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 3));
  check_f32(&t.o[0], F32(0, 5, 0, 0, 0, 5), 6, 0);
  tc_free(&t);

  /* ScatterND with reduction add: data [4], indices [[1], [1], [3]] */
  tc_init(&t, 16);
  IN_F(&t, 1, SH(4), 1, 2, 3, 4);
  IN_I(&t, 2, SH(3, 1), 1, 1, 3);
  IN_F(&t, 1, SH(3), 10, 20, 30);
  tc_node(&t, "ScatterND", 1);
  tc_str(&t, "reduction", "add");
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(1, 32, 3, 34), 4, 0);
  tc_free(&t);
}

/* ---- pools and Pad ------------------------------------------------------ */

static const float x44[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void test_pools(void)
{
  /* F.avg_pool2d(arange(16).reshape(1,1,4,4), 3, stride=2, padding=1,
  ** ceil_mode=True, count_include_pad=True / False) */
  for (int incl = 0; incl < 2; incl++) {
    tcase t;
    tc_init(&t, 11);
    tc_in(&t, LM_F32, 4, SH(1, 1, 4, 4), x44, false);
    tc_node(&t, "AveragePool", 1);
    tc_ints(&t, "kernel_shape", I64(3, 3), 2);
    tc_ints(&t, "strides", I64(2, 2), 2);
    tc_ints(&t, "pads", I64(1, 1, 1, 1), 4);
    tc_int(&t, "ceil_mode", 1);
    tc_int(&t, "count_include_pad", incl);
    CHECK_INT(tc_run(&t), LM_OK);
    check_shape(tc_outv(&t, 0), 4, SH(1, 1, 3, 3));
    if (incl)
      check_f32(&t.o[0], F32(1.1111112f, 2.6666667f, 1.6666666f, 5.6666665f, 10, 5.5, 4.1666665f, 7,
                             3.75f), 9, 1e-6);
    else
      check_f32(&t.o[0], F32(2.5, 4, 5, 8.5, 10, 11, 12.5, 14, 15), 9, 1e-6);
    tc_free(&t);
  }
  /* F.max_pool2d(x, 3, stride=2, ceil_mode=True) = [10, 11, 14, 15], with
  ** Indices (row-major flat) */
  tcase t;
  tc_init(&t, 12);
  tc_in(&t, LM_F32, 4, SH(1, 1, 4, 4), x44, false);
  tc_node(&t, "MaxPool", 2);
  tc_ints(&t, "kernel_shape", I64(3, 3), 2);
  tc_ints(&t, "strides", I64(2, 2), 2);
  tc_int(&t, "ceil_mode", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(10, 11, 14, 15), 4, 0);
  check_i64(&t.o[1], I64(10, 11, 14, 15), 4);
  tc_free(&t);

  /* SAME_UPPER: out = ceil(in / stride) */
  tc_init(&t, 12);
  tc_in(&t, LM_F32, 4, SH(1, 1, 4, 4), x44, false);
  tc_node(&t, "MaxPool", 1);
  tc_ints(&t, "kernel_shape", I64(2, 2), 2);
  tc_ints(&t, "strides", I64(3, 3), 2);
  tc_str(&t, "auto_pad", "SAME_UPPER");
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 4, SH(1, 1, 2, 2));
  check_f32(&t.o[0], F32(5, 7, 13, 15), 4, 0);
  tc_free(&t);

  tc_init(&t, 12);
  tc_in(&t, LM_F32, 4, SH(1, 2, 2, 2), x44, false);
  tc_node(&t, "GlobalAveragePool", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 4, SH(1, 2, 1, 1));
  check_f32(&t.o[0], F32(1.5, 5.5), 2, 0);
  tc_free(&t);
}

static void test_pad_opsets(void)
{
  /* numpy.pad([[1,2,3]], ((0,0),(2,1)), mode) */
  const char *modes[] = {"constant", "reflect", "edge", "wrap"};
  const float want[4][6] = {{9, 9, 1, 2, 3, 9}, {3, 2, 1, 2, 3, 2}, {1, 1, 1, 2, 3, 3},
                            {2, 3, 1, 2, 3, 1}};
  for (int m = 0; m < 4; m++) {
    tcase t;
    tc_init(&t, 18);
    IN_F(&t, 2, SH(1, 3), 1, 2, 3);
    IN_I(&t, 1, SH(4), 0, 2, 0, 1);
    IN_F(&t, 0, NULL, 9);
    tc_node(&t, "Pad", 1);
    tc_str(&t, "mode", modes[m]);
    CHECK_INT(tc_run(&t), LM_OK);
    check_shape(tc_outv(&t, 0), 2, SH(1, 6));
    check_f32(&t.o[0], want[m], 6, 0);
    tc_free(&t);
  }
  /* opset 18 axes input: pads only axis -1 */
  tcase t;
  tc_init(&t, 18);
  IN_F(&t, 2, SH(1, 3), 1, 2, 3);
  IN_I(&t, 1, SH(2), 1, -1);
  tc_absent(&t);
  IN_I(&t, 1, SH(1), -1);
  tc_node(&t, "Pad", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(1, 3));
  check_f32(&t.o[0], F32(0, 1, 2), 3, 0);   /* one in front, one cut at the end */
  tc_free(&t);
  /* opset 2 attributes pads and value */
  tc_init(&t, 2);
  IN_F(&t, 2, SH(1, 3), 1, 2, 3);
  tc_node(&t, "Pad", 1);
  tc_ints(&t, "pads", I64(1, 0, 0, 0), 4);
  tc_float(&t, "value", -1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 3));
  check_f32(&t.o[0], F32(-1, -1, -1, 1, 2, 3), 6, 0);
  tc_free(&t);

  tc_init(&t, 13);
  IN_F(&t, 2, SH(1, 3), 1, 2, 3);
  IN_I(&t, 1, SH(4), 0, 3, 0, 0);
  tc_node(&t, "Pad", 1);
  tc_str(&t, "mode", "reflect");
  CHECK_INT(tc_infer(&t), LM_EINVAL);
  CHECK_CONTAINS(t.g->err, "reflect pads on axis 1 must be smaller than its extent 3");
  tc_free(&t);
}

/* ---- Resize ------------------------------------------------------------- */

static void test_resize(void)
{
  /* F.interpolate([1, 2, 4], size=6, mode='linear') -> half_pixel, sizes */
  tcase t;
  tc_init(&t, 13);
  IN_F(&t, 3, SH(1, 1, 3), 1, 2, 4);
  tc_absent(&t);
  tc_absent(&t);
  IN_I(&t, 1, SH(3), 1, 1, 6);
  tc_node(&t, "Resize", 1);
  tc_str(&t, "mode", "linear");
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 3, SH(1, 1, 6));
  check_f32(&t.o[0], F32(1, 1.25f, 1.75f, 2.5f, 3.5f, 4), 6, 1e-6);
  tc_free(&t);

  /* align_corners=True, size 5: [1, 1.5, 2, 3, 4]; opset 18 axes = [2] */
  tc_init(&t, 18);
  IN_F(&t, 3, SH(1, 1, 3), 1, 2, 4);
  tc_absent(&t);
  tc_absent(&t);
  IN_I(&t, 1, SH(1), 5);
  tc_node(&t, "Resize", 1);
  tc_str(&t, "mode", "linear");
  tc_str(&t, "coordinate_transformation_mode", "align_corners");
  tc_ints(&t, "axes", I64(2), 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(1, 1.5f, 2, 3, 4), 5, 1e-6);
  tc_free(&t);

  /* F.interpolate(x, size=(3, 5), mode='bicubic') of x = arange(16)^1.2 */
  const float xc[] = {0, 1, 2.297397f, 3.737193f, 5.278032f, 6.8986487f, 8.585815f, 10.330413f,
                      12.125733f, 13.966612f, 15.848933f, 17.769339f, 19.725025f, 21.713612f,
                      23.733057f, 25.781582f};
  tc_init(&t, 13);
  tc_in(&t, LM_F32, 4, SH(1, 1, 4, 4), xc, false);
  tc_absent(&t);
  tc_absent(&t);
  IN_I(&t, 1, SH(4), 1, 1, 3, 5);
  tc_node(&t, "Resize", 1);
  tc_str(&t, "mode", "cubic");
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0],
            F32(0.57268256f, 1.2722427f, 2.3617775f, 3.635695f, 4.6442347f, 8.3764305f,
                9.564723f, 11.156628f, 12.783051f, 14.029178f, 18.633524f, 19.953672f,
                21.720251f, 23.51575f, 24.884346f),
            15, 2e-5);
  tc_free(&t);

  /* F.interpolate(arange(8)^2 as (1,1,2,2,2), size=(3,3,4), 'trilinear'),
  ** scales given as an input (opset 11 form with an empty roi) */
  const float xt[] = {0, 1, 4, 9, 16, 25, 36, 49};
  tc_init(&t, 11);
  tc_in(&t, LM_F32, 5, SH(1, 1, 2, 2, 2), xt, false);
  tc_in(&t, LM_F32, 1, SH(0), F32(0), true);
  tc_in(&t, LM_F32, 1, SH(5), F32(1, 1, 1.5f, 1.5f, 2), true);
  tc_node(&t, "Resize", 1);
  tc_str(&t, "mode", "linear");
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 5, SH(1, 1, 3, 3, 4));
  const float *y = t.o[0].data;
  CHECK_NEAR(y[1], 0.25, 1e-6);
  CHECK_NEAR(y[10], 7.7499995, 1e-5);
  CHECK_NEAR(y[26], 22.75, 1e-5);
  CHECK_NEAR(y[35], 48.999996, 1e-5);
  tc_free(&t);

  /* nearest, asymmetric, floor (what smp exports): 2x upsampling repeats */
  tc_init(&t, 13);
  IN_F(&t, 4, SH(1, 1, 1, 2), 1, 2);
  tc_absent(&t);
  tc_in(&t, LM_F32, 1, SH(4), F32(1, 1, 2, 2), true);
  tc_node(&t, "Resize", 1);
  tc_str(&t, "coordinate_transformation_mode", "asymmetric");
  tc_str(&t, "nearest_mode", "floor");
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 4, SH(1, 1, 2, 4));
  check_f32(&t.o[0], F32(1, 1, 2, 2, 1, 1, 2, 2), 8, 0);
  tc_free(&t);

  /* Upsample (opset 9): scales input, nearest */
  tc_init(&t, 9);
  IN_F(&t, 3, SH(1, 1, 2), 1, 2);
  tc_in(&t, LM_F32, 1, SH(3), F32(1, 1, 3), true);
  tc_node(&t, "Upsample", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(1, 1, 1, 2, 2, 2), 6, 0);
  tc_free(&t);

  /* opset 18 keep_aspect_ratio_policy with sizes [4, 4] on a 2x3 image:
  ** not_larger scales both by min(4/2, 4/3) -> round(2.67), round(4) = 3x4;
  ** not_smaller by max -> 4x6 */
  for (int pol = 0; pol < 2; pol++) {
    tc_init(&t, 18);
    IN_F(&t, 4, SH(1, 1, 2, 3), 1, 2, 3, 4, 5, 6);
    tc_absent(&t);
    tc_absent(&t);
    IN_I(&t, 1, SH(2), 4, 4);
    tc_node(&t, "Resize", 1);
    tc_ints(&t, "axes", I64(2, 3), 2);
    tc_str(&t, "keep_aspect_ratio_policy", pol ? "not_smaller" : "not_larger");
    CHECK_INT(tc_run(&t), LM_OK);
    if (pol) check_shape(tc_outv(&t, 0), 4, SH(1, 1, 4, 6));
    else check_shape(tc_outv(&t, 0), 4, SH(1, 1, 3, 4));
    tc_free(&t);
  }

  tc_init(&t, 18);
  IN_F(&t, 3, SH(1, 1, 3), 1, 2, 4);
  tc_absent(&t);
  tc_absent(&t);
  IN_I(&t, 1, SH(3), 1, 1, 2);
  tc_node(&t, "Resize", 1);
  tc_int(&t, "antialias", 1);
  CHECK_INT(tc_infer(&t), LM_EINVAL);
  CHECK_CONTAINS(t.g->err, "antialias=1 is not supported");
  tc_free(&t);
}

/* ---- Conv reference ----------------------------------------------------- */

static void test_conv(void)
{
  /* F.conv2d(x, w, b, stride=(2,1), padding=(1,2), dilation=(1,2), groups=2)
  ** with x = arange(200).reshape(2,4,5,5)/50 - 1,
  ** w = linspace(-1, 1, 108).reshape(6,2,3,3), b = [.1,-.2,.3,0,.5,-.5] */
  float x[200], w[108];
  for (int i = 0; i < 200; i++) x[i] = (float)i / 50 - 1;
  for (int i = 0; i < 108; i++) w[i] = (float)(-1.0 + 2.0 * i / 107);
  tcase t;
  tc_init(&t, 11);
  tc_in(&t, LM_F32, 4, SH(2, 4, 5, 5), x, false);
  tc_in(&t, LM_F32, 4, SH(6, 2, 3, 3), w, true);
  IN_F(&t, 1, SH(6), 0.1f, -0.2f, 0.3f, 0, 0.5f, -0.5f);
  tc_node(&t, "Conv", 1);
  tc_ints(&t, "strides", I64(2, 1), 2);
  tc_ints(&t, "pads", I64(1, 2, 1, 2), 4);
  tc_ints(&t, "dilations", I64(1, 2), 2);
  tc_int(&t, "group", 2);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 4, SH(2, 6, 3, 5));
  const float *y = t.o[0].data;
  CHECK_NEAR(y[0], 4.653271, 2e-5);
  CHECK_NEAR(y[7], 8.276262, 2e-5);
  CHECK_NEAR(y[31], 1.1717758, 2e-5);
  CHECK_NEAR(y[100], -10.862244, 2e-5);
  CHECK_NEAR(y[179], 16.784485, 2e-5);
  tc_free(&t);

  /* F.conv_transpose3d(x, w, b=[.5, 0, -1], stride=2, padding=1,
  ** output_padding=1), x = arange(48).reshape(1,4,2,3,2)/10,
  ** w = linspace(-1, 1, 324).reshape(4,3,3,3,3) */
  float xt[48], wt[324];
  for (int i = 0; i < 48; i++) xt[i] = (float)i / 10;
  for (int i = 0; i < 324; i++) wt[i] = (float)(-1.0 + 2.0 * i / 323);
  tc_init(&t, 11);
  tc_in(&t, LM_F32, 5, SH(1, 4, 2, 3, 2), xt, false);
  tc_in(&t, LM_F32, 5, SH(4, 3, 3, 3, 3), wt, true);
  IN_F(&t, 1, SH(3), 0.5f, 0, -1);
  tc_node(&t, "ConvTranspose", 1);
  tc_ints(&t, "strides", I64(2, 2, 2), 3);
  tc_ints(&t, "pads", I64(1, 1, 1, 1, 1, 1), 6);
  tc_ints(&t, "output_padding", I64(1, 1, 1), 3);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 5, SH(1, 3, 4, 6, 4));
  y = t.o[0].data;
  CHECK_NEAR(y[0], 2.3055727, 2e-5);
  CHECK_NEAR(y[5], 7.286378, 2e-5);
  CHECK_NEAR(y[17], 3.5068111, 2e-5);
  CHECK_NEAR(y[60], 2.8925695, 2e-5);
  CHECK_NEAR(y[287], 4.882353, 2e-5);
  tc_free(&t);

  /* infer only: SAME_LOWER, and ConvTranspose output_shape */
  tc_init(&t, 11);
  tc_in(&t, LM_F32, 4, SH(1, 3, 7, 8), NULL, false);
  tc_in(&t, LM_F32, 4, SH(5, 3, 4, 4), NULL, false);
  tc_node(&t, "Conv", 1);
  tc_ints(&t, "strides", I64(2, 3), 2);
  tc_str(&t, "auto_pad", "SAME_LOWER");
  CHECK_INT(tc_infer(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 4, SH(1, 5, 4, 3));
  tc_free(&t);

  tc_init(&t, 11);
  tc_in(&t, LM_F32, 4, SH(1, 3, 7, 8), NULL, false);
  tc_in(&t, LM_F32, 4, SH(3, 2, 3, 3), NULL, false);
  tc_node(&t, "ConvTranspose", 1);
  tc_ints(&t, "strides", I64(2, 2), 2);
  tc_ints(&t, "output_shape", I64(14, 16), 2);
  CHECK_INT(tc_infer(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 4, SH(1, 2, 14, 16));
  tc_free(&t);

  tc_init(&t, 11);
  tc_in(&t, LM_F32, 4, SH(1, 3, 7, 8), NULL, false);
  tc_in(&t, LM_F32, 4, SH(5, 2, 3, 3), NULL, false);
  tc_node(&t, "Conv", 1);
  CHECK_INT(tc_infer(&t), LM_EINVAL);
  CHECK_CONTAINS(t.g->err, "X has 3 channels, W 'in1' expects 2 x group 1");
  tc_free(&t);
}

/* ---- reductions, softmax, argmax, matmul -------------------------------- */

static void test_reduce_opsets(void)
{
  /* ReduceMean axes as attribute (opset 13) and as input (opset 18) */
  for (int variant = 0; variant < 2; variant++) {
    tcase t;
    tc_init(&t, variant ? 18 : 13);
    IN_F(&t, 3, SH(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 9);
    if (variant) IN_I(&t, 1, SH(2), 0, -1);
    tc_node(&t, "ReduceMean", 1);
    if (!variant) tc_ints(&t, "axes", I64(0, -1), 2);
    tc_int(&t, "keepdims", variant);
    CHECK_INT(tc_run(&t), LM_OK);
    if (variant) check_shape(tc_outv(&t, 0), 3, SH(1, 2, 1));
    else check_shape(tc_outv(&t, 0), 1, SH(2));
    check_f32(&t.o[0], F32(3.5f, 5.75f), 2, 1e-6);   /* (1+2+5+6)/4, (3+4+7+9)/4 */
    tc_free(&t);
  }
  /* ReduceSum opset 13 with an empty axes input and noop_with_empty_axes */
  tcase t;
  tc_init(&t, 13);
  IN_F(&t, 1, SH(3), 1, 2, 3);
  tc_in(&t, LM_I64, 1, SH(0), I64(0), true);
  tc_node(&t, "ReduceSum", 1);
  tc_int(&t, "noop_with_empty_axes", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(1, 2, 3), 3, 0);
  tc_free(&t);

  tc_init(&t, 13);
  IN_F(&t, 2, SH(2, 2), 1, 7, 3, -2);
  tc_node(&t, "ReduceMax", 1);
  tc_ints(&t, "axes", I64(1), 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 2, SH(2, 1));
  check_f32(&t.o[0], F32(7, 3), 2, 0);
  tc_free(&t);
}

static void test_softmax_argmax_matmul(void)
{
  /* torch.softmax(x, 1) and, for opset 11's 2-D coercion with axis 0,
  ** torch.softmax(x.reshape(-1), 0) */
  const float xs[] = {1, 2, 3, 1, 1, 5};
  tcase t;
  tc_init(&t, 13);
  tc_in(&t, LM_F32, 2, SH(2, 3), xs, false);
  tc_node(&t, "Softmax", 1);
  tc_int(&t, "axis", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(0.09003057f, 0.24472848f, 0.66524094f, 0.017668424f, 0.017668424f,
                         0.9646632f), 6, 1e-7);
  tc_free(&t);

  /* the same numbers across the channels of a [1, 3, 2] volume */
  tc_init(&t, 13);
  IN_F(&t, 3, SH(1, 3, 2), 1, 1, 2, 1, 3, 5);
  tc_node(&t, "Softmax", 1);
  tc_int(&t, "axis", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(0.09003057f, 0.017668424f, 0.24472848f, 0.017668424f, 0.66524094f,
                         0.9646632f), 6, 1e-7);
  tc_free(&t);

  tc_init(&t, 11);
  tc_in(&t, LM_F32, 2, SH(2, 3), xs, false);
  tc_node(&t, "Softmax", 1);
  tc_int(&t, "axis", 0);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(0.014769851f, 0.040148616f, 0.109135255f, 0.014769851f, 0.014769851f,
                         0.80640656f), 6, 1e-7);
  tc_free(&t);

  tc_init(&t, 13);
  tc_in(&t, LM_F32, 2, SH(2, 3), xs, false);
  tc_node(&t, "LogSoftmax", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(-2.407606f, -1.4076059f, -0.40760595f, -4.0359764f, -4.0359764f,
                         -0.03597625f), 6, 1e-6);
  tc_free(&t);

  /* ArgMax over axis 1 with a tie: first index, or last with select_last_index */
  for (int last = 0; last < 2; last++) {
    tc_init(&t, 13);
    tc_in(&t, LM_F32, 2, SH(2, 3), xs, false);
    tc_node(&t, "ArgMax", 1);
    tc_int(&t, "axis", 0);
    tc_int(&t, "keepdims", 0);
    tc_int(&t, "select_last_index", last);
    CHECK_INT(tc_run(&t), LM_OK);
    check_shape(tc_outv(&t, 0), 1, SH(3));
    check_i64(&t.o[0], last ? I64(1, 0, 1) : I64(0, 0, 1), 3);
    tc_free(&t);
  }

  /* MatMul [2,1,2,3] x [3,3,2] broadcast batches -> [2,3,2,2] */
  float a[12], b[18];
  for (int i = 0; i < 12; i++) a[i] = (float)i;
  for (int i = 0; i < 18; i++) b[i] = (float)(i % 5) - 2;
  tc_init(&t, 13);
  tc_in(&t, LM_F32, 4, SH(2, 1, 2, 3), a, false);
  tc_in(&t, LM_F32, 3, SH(3, 3, 2), b, false);
  tc_node(&t, "MatMul", 1);
  CHECK_INT(tc_run(&t), LM_OK);
  check_shape(tc_outv(&t, 0), 4, SH(2, 3, 2, 2));
  /* out[1][2][1][0] = A[1][1,:] . B[2][:,0] = [9,10,11] . [0,2,-1] = 9 */
  CHECK_NEAR(((float *)t.o[0].data)[1 * 12 + 2 * 4 + 1 * 2 + 0], 9, 0);
  tc_free(&t);

  /* Gemm: 2 * A B^T + 0.5 C */
  tc_init(&t, 13);
  IN_F(&t, 2, SH(1, 2), 1, 2);
  IN_F(&t, 2, SH(2, 2), 1, 0, 3, 4);
  IN_F(&t, 1, SH(2), 10, 20);
  tc_node(&t, "Gemm", 1);
  tc_int(&t, "transB", 1);
  tc_float(&t, "alpha", 2);
  tc_float(&t, "beta", 0.5);
  CHECK_INT(tc_run(&t), LM_OK);
  check_f32(&t.o[0], F32(7, 32), 2, 0);
  tc_free(&t);
}

/* Results do not depend on the thread count (bitwise). */
static void test_thread_independence(void)
{
  enum { C = 3, S = 6000 };
  float *x = malloc(sizeof(float) * C * S);
  for (int i = 0; i < C * S; i++) x[i] = (float)((i * 7919) % 1000) / 37.0f - 13;
  float *res[2];
  for (int run = 0; run < 2; run++) {
    omp_set_num_threads(run ? 2 : 1);
    tcase t;
    tc_init(&t, 17);
    tc_in(&t, LM_F32, 3, SH(1, C, S), x, false);
    IN_F(&t, 1, SH(C), 1, 2, 3);
    IN_F(&t, 1, SH(C), 0, 1, 2);
    tc_node(&t, "InstanceNormalization", 1);
    CHECK_INT(tc_run(&t), LM_OK);
    res[run] = t.o[0].data;
    t.o[0].data = NULL;
    tc_free(&t);
  }
  CHECK(memcmp(res[0], res[1], sizeof(float) * C * S) == 0);
  free(res[0]);
  free(res[1]);
  free(x);
  omp_set_num_threads(omp_get_num_procs());
}

static void test_table(void)
{
  const char *const *ops = lm_cpu_supported_ops();
  int n = 0;
  bool conv = false, resize = false;
  for (; ops[n]; n++) {
    conv |= !strcmp(ops[n], "ConvTranspose");
    resize |= !strcmp(ops[n], "Resize");
    CHECK(lm_cpu_kernel_find(ops[n]) != NULL);
  }
  CHECK(n > 90);
  CHECK(conv && resize);
  CHECK(lm_cpu_kernel_find("Einsum") == NULL);
  CHECK(lm_cpu_kernel_find(NULL) == NULL);
}

int main(void)
{
  RUN(test_broadcast_add_mul);
  RUN(test_variadic_and_compare);
  RUN(test_activations);
  RUN(test_clip_opsets);
  RUN(test_prelu);
  RUN(test_norms);
  RUN(test_unsqueeze_squeeze_opsets);
  RUN(test_reshape_flatten);
  RUN(test_slice_opsets);
  RUN(test_split_opsets);
  RUN(test_gather_concat_shape);
  RUN(test_transpose_expand_tile_cast);
  RUN(test_constants_range);
  RUN(test_topk_onehot_scatter);
  RUN(test_pools);
  RUN(test_pad_opsets);
  RUN(test_resize);
  RUN(test_conv);
  RUN(test_reduce_opsets);
  RUN(test_softmax_argmax_matmul);
  RUN(test_thread_independence);
  RUN(test_table);
  TAP_DONE();
}
