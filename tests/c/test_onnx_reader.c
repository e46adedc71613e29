/* The ONNX reader (models/src/onnx_reader.c): a real exported model, node
 * tests of the ONNX test data (every attribute kind, Constant nodes, the
 * .pb tensor files), and hand-built models (written with the small protobuf
 * writer below) for the typed data fields, external data and every refusal.
 *
 * Reference numbers for model5_gw_ae.onnx were printed with /usr/bin/python3,
 * onnx 1.12 and numpy when this test was written:
 *   onnx.load(...).graph.initializer["0.weight"]: shape (5,1,3,3,3),
 *     first values 0.1156652420759201, -0.16628272831439972,
 *     -0.14377866685390472, last -0.07733151316642761, sum 0.44872574327746406
 *   "0.bias": -0.13478632271289825, 0.011392614804208279, -0.07305677980184555,
 *     -0.14..., last -0.16819064319133759
 *   "18.weight": shape (3,5,1,1,1), first 0.14699897170066833,
 *     1.1067893505096436, last 0.6542516350746155, sum -4.128346357494593
 *   opset 14, producer "pytorch" "2.2.1", 19 nodes (10 Conv, 9 Relu), input
 *   "input" [batch_size,1,256,256,256], output "output"
 *   [batch_size,3,256,256,256], Conv dilations 1,2,4,8,16,8,4,2,1,1. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "graph.h"
#include "loaders.h"
#include "pb_writer.h"
#include "tap.h"

static char err[512];

static lm_graph *load_pbw(const pbw *m, const char *name, int *status)
{
  lm_graph *g = NULL;
  err[0] = 0;
  *status = lm_onnx_load_buffer(m->p, m->n, name, &g, err, sizeof err);
  return g;
}

/* Load a buffer that must be refused with a message containing want. */
static void expect_refused(const pbw *m, const char *want)
{
  int st;
  lm_graph *g = load_pbw(m, "t.onnx", &st);
  CHECK(st < 0);
  CHECK(g == NULL);
  CHECK_CONTAINS(err, "t.onnx: ");
  CHECK_CONTAINS(err, want);
  lm_graph_free(g);
}

/* ---- the real model --------------------------------------------------------- */

static const char *data_dir(void)
{
  const char *d = getenv("LUMEN_TEST_DATA");
  return d && *d ? d : NULL;
}

static const float *const_f32(const lm_graph *g, const char *name, int *ndim, const int64_t **shape)
{
  int v = lm_graph_find_value(g, name);
  if (v < 0 || !g->values[v].data || g->values[v].dt != LM_F32) return NULL;
  *ndim = g->values[v].ndim;
  *shape = g->values[v].shape;
  return g->values[v].data;
}

static void test_model5(void)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/models/model5_gw_ae/model5_gw_ae.onnx", data_dir());
  lm_graph *g = NULL;
  int st = lm_onnx_load(path, &g, err, sizeof err);
  CHECK_INT(st, LM_OK);
  if (st != LM_OK) {
    printf("# %s\n", err);
    return;
  }
  CHECK_INT(g->opset, 14);
  CHECK_STR(g->producer, "pytorch 2.2.1");
  CHECK_STR(g->source, path);
  CHECK_INT(g->ninputs, 1);
  CHECK_INT(g->noutputs, 1);
  const lm_gvalue *in = &g->values[g->inputs[0]];
  CHECK_STR(in->name, "input");
  CHECK(in->dt_known && in->dt == LM_F32);
  CHECK_INT(in->ndim, 5);
  CHECK_INT(in->shape[0], -1);
  CHECK_INT(in->shape[1], 1);
  CHECK_INT(in->shape[4], 256);
  const lm_gvalue *out = &g->values[g->outputs[0]];
  CHECK_STR(out->name, "output");
  CHECK_INT(out->shape[1], 3);
  CHECK_INT(g->nnodes, 19);
  int conv = 0, relu = 0;
  static const int64_t dil[10] = {1, 2, 4, 8, 16, 8, 4, 2, 1, 1};
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (strcmp(n->op, "Relu") == 0) relu++;
    if (strcmp(n->op, "Conv") != 0) continue;
    int cnt;
    const int64_t *d = lm_gnode_attr_ints(n, "dilations", &cnt);
    CHECK_INT(cnt, 3);
    if (d && conv < 10) CHECK_INT(d[2], dil[conv]);
    const int64_t *pads = lm_gnode_attr_ints(n, "pads", &cnt);
    CHECK_INT(cnt, 6);
    if (pads && conv < 10) CHECK_INT(pads[5], dil[conv] * (conv < 9 ? 1 : 0));
    CHECK_INT(lm_gnode_attr_int(n, "group", -1), 1);
    CHECK_INT(n->nin, 3);
    conv++;
  }
  CHECK_INT(conv, 10);
  CHECK_INT(relu, 9);
  const lm_gnode *n0 = &g->nodes[0];
  CHECK_STR(n0->name, "/0/Conv");
  CHECK_STR(n0->domain, "");
  CHECK_INT(n0->in[0], g->inputs[0]);
  CHECK_STR(g->values[n0->in[1]].name, "0.weight");
  CHECK_STR(g->values[n0->in[2]].name, "0.bias");
  CHECK_INT(g->values[n0->out[0]].producer, 0);
  CHECK_INT(g->values[g->outputs[0]].producer, 18);

  int nd;
  const int64_t *sh;
  const float *w = const_f32(g, "0.weight", &nd, &sh);
  CHECK(w != NULL);
  if (w) {
    CHECK_INT(nd, 5);
    CHECK_INT(sh[0], 5);
    CHECK_INT(sh[1], 1);
    CHECK_INT(sh[4], 3);
    CHECK_NEAR(w[0], 0.1156652420759201, 0);
    CHECK_NEAR(w[1], -0.16628272831439972, 0);
    CHECK_NEAR(w[2], -0.14377866685390472, 0);
    CHECK_NEAR(w[134], -0.07733151316642761, 0);
    double sum = 0;
    for (int i = 0; i < 135; i++) sum += w[i];
    CHECK_NEAR(sum, 0.44872574327746406, 1e-9);
  }
  const float *b = const_f32(g, "0.bias", &nd, &sh);
  CHECK(b != NULL);
  if (b) {
    CHECK_INT(nd, 1);
    CHECK_NEAR(b[0], -0.13478632271289825, 0);
    CHECK_NEAR(b[4], -0.16819064319133759, 0);
  }
  const float *w18 = const_f32(g, "18.weight", &nd, &sh);
  CHECK(w18 != NULL);
  if (w18) {
    CHECK_INT(sh[0], 3);
    CHECK_INT(sh[1], 5);
    CHECK_NEAR(w18[0], 0.14699897170066833, 0);
    CHECK_NEAR(w18[1], 1.1067893505096436, 0);
    CHECK_NEAR(w18[14], 0.6542516350746155, 0);
    double sum = 0;
    for (int i = 0; i < 15; i++) sum += w18[i];
    CHECK_NEAR(sum, -4.128346357494593, 1e-9);
  }
  char *dump = lm_graph_dump(g);
  CHECK_CONTAINS(dump, "opset 14");
  CHECK_CONTAINS(dump, "Conv /18/Conv(");
  free(dump);
  lm_graph_free(g);
}

/* ---- the ONNX node tests ----------------------------------------------------- */

#define NODE_DIR "/usr/share/libonnx-testdata/data/node/"

static lm_graph *load_node_test(const char *name)
{
  char path[512];
  snprintf(path, sizeof path, NODE_DIR "%s/model.onnx", name);
  lm_graph *g = NULL;
  int st = lm_onnx_load(path, &g, err, sizeof err);
  if (st != LM_OK) TAP_FAIL("%s: %s", name, err);
  return g;
}

static void test_node_attribute_kinds(void)
{
  lm_graph *g = load_node_test("test_leakyrelu");   /* FLOAT */
  if (g) {
    CHECK_STR(g->nodes[0].op, "LeakyRelu");
    const lm_gattr *a = lm_gnode_attr(&g->nodes[0], "alpha");
    CHECK(a && a->kind == LM_ATTR_FLOAT);
    CHECK_NEAR(lm_gnode_attr_float(&g->nodes[0], "alpha", 0), 0.1f, 0);
    CHECK_INT(g->ninputs, 1);
    CHECK_INT(g->values[g->inputs[0]].ndim, 3);
    lm_graph_free(g);
  }
  g = load_node_test("test_conv_with_strides_and_asymmetric_padding");   /* INTS */
  if (g) {
    int n;
    const int64_t *pads = lm_gnode_attr_ints(&g->nodes[0], "pads", &n);
    CHECK_INT(n, 4);
    if (pads) {
      CHECK_INT(pads[0], 1);
      CHECK_INT(pads[1], 0);
      CHECK_INT(pads[2], 1);
      CHECK_INT(pads[3], 0);
    }
    const int64_t *st = lm_gnode_attr_ints(&g->nodes[0], "strides", &n);
    CHECK_INT(n, 2);
    if (st) CHECK_INT(st[1], 2);
    CHECK_INT(g->ninputs, 2);
    lm_graph_free(g);
  }
  g = load_node_test("test_averagepool_2d_same_upper");   /* STRING */
  if (g) {
    CHECK_STR(lm_gnode_attr_string(&g->nodes[0], "auto_pad", NULL), "SAME_UPPER");
    lm_graph_free(g);
  }
  g = load_node_test("test_argmax_keepdims_example");   /* INT */
  if (g) {
    CHECK_INT(lm_gnode_attr_int(&g->nodes[0], "keepdims", -1), 1);
    CHECK_INT(lm_gnode_attr_int(&g->nodes[0], "axis", -1), 1);
    lm_graph_free(g);
  }
  g = load_node_test("test_strnormalizer_export_monday_casesensintive_lower");   /* STRINGS */
  if (g) {
    const lm_gattr *a = lm_gnode_attr(&g->nodes[0], "stopwords");
    CHECK(a && a->kind == LM_ATTR_STRINGS);
    if (a && a->kind == LM_ATTR_STRINGS) {
      CHECK_INT(a->n, 1);
      CHECK_STR(a->strings[0], "monday");
    }
    /* A string input: no dtype lumen has, so left unknown. */
    CHECK(!g->values[g->inputs[0]].dt_known);
    lm_graph_free(g);
  }
}

/* Constant: the value attribute is a constant value of the graph, equal to
** the expected output file. */
static void test_node_constant(void)
{
  lm_graph *g = load_node_test("test_constant");
  if (!g) return;
  CHECK_INT(g->nnodes, 1);
  CHECK_STR(g->nodes[0].op, "Constant");
  CHECK_INT(g->ninputs, 0);
  const lm_gattr *a = lm_gnode_attr(&g->nodes[0], "value");
  CHECK(a && a->kind == LM_ATTR_TENSOR);
  if (!a || a->tensor < 0) {
    lm_graph_free(g);
    return;
  }
  const lm_gvalue *v = &g->values[a->tensor];
  lm_dtype dt;
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  void *data;
  size_t nbytes;
  int st = lm_onnx_read_tensor_file(NODE_DIR "test_constant/test_data_set_0/output_0.pb", &dt, &ndim,
                                    shape, &data, &nbytes, err, sizeof err);
  CHECK_INT(st, LM_OK);
  if (st == LM_OK) {
    CHECK_INT(dt, LM_F32);
    CHECK_INT(v->dt, LM_F32);
    CHECK_INT(v->ndim, ndim);
    CHECK_INT(ndim, 2);
    CHECK_INT(v->shape[0], shape[0]);
    CHECK_INT(v->shape[1], shape[1]);
    CHECK_INT(v->nbytes, nbytes);
    CHECK(v->data && memcmp(v->data, data, nbytes) == 0);
    free(data);
  }
  lm_graph_free(g);

  /* ConstantOfShape: a one-element tensor attribute. */
  g = load_node_test("test_constantofshape_int_zeros");
  if (g) {
    a = lm_gnode_attr(&g->nodes[0], "value");
    CHECK(a && a->kind == LM_ATTR_TENSOR && a->tensor >= 0);
    if (a && a->tensor >= 0) {
      CHECK_INT(g->values[a->tensor].dt, LM_I32);
      CHECK_INT(g->values[a->tensor].nbytes, 4);
    }
    lm_graph_free(g);
  }
}

static void test_read_tensor_file(void)
{
  lm_dtype dt;
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  void *data;
  size_t nbytes;
  /* input_0: arange(35) as [1,1,7,5]; input_1: ones [1,1,3,3]. */
  int st = lm_onnx_read_tensor_file(NODE_DIR "test_conv_with_strides_padding/test_data_set_0/input_0.pb",
                                    &dt, &ndim, shape, &data, &nbytes, err, sizeof err);
  CHECK_INT(st, LM_OK);
  if (st == LM_OK) {
    CHECK_INT(dt, LM_F32);
    CHECK_INT(ndim, 4);
    CHECK_INT(shape[2], 7);
    CHECK_INT(shape[3], 5);
    CHECK_INT(nbytes, 35 * 4);
    const float *f = data;
    for (int i = 0; i < 35; i++) CHECK_NEAR(f[i], i, 0);
    free(data);
  }
  st = lm_onnx_read_tensor_file(NODE_DIR "test_argmax_keepdims_example/test_data_set_0/output_0.pb", &dt,
                                &ndim, shape, &data, &nbytes, err, sizeof err);
  CHECK_INT(st, LM_OK);
  if (st == LM_OK) {
    CHECK_INT(dt, LM_I64);
    CHECK_INT(nbytes, 8 * (size_t)shape[0] * (size_t)shape[1]);
    free(data);
  }
  st = lm_onnx_read_tensor_file(NODE_DIR "no-such-test/input_0.pb", &dt, &ndim, shape, &data, &nbytes, err,
                                sizeof err);
  CHECK_INT(st, LM_ENOENT);
  CHECK_CONTAINS(err, "no-such-test/input_0.pb: ");
  /* A model is not a tensor (no data_type). */
  st = lm_onnx_read_tensor_file(NODE_DIR "test_constant/model.onnx", &dt, &ndim, shape, &data, &nbytes, err,
                                sizeof err);
  CHECK(st < 0);
  CHECK(data == NULL);
  CHECK_CONTAINS(err, "test_constant/model.onnx: ");
}

/* Subgraph attributes are refused with a message (not dropped). */
static void test_node_if_refused(void)
{
  lm_graph *g = NULL;
  int st = lm_onnx_load(NODE_DIR "test_if/model.onnx", &g, err, sizeof err);
  CHECK_INT(st, LM_EUNSUPPORTED);
  CHECK(g == NULL);
  CHECK_CONTAINS(err, "node 0 (If ''): attribute 'else_branch'");
  CHECK_CONTAINS(err, "graph attributes");
}

/* ---- hand-built models ------------------------------------------------------- */

static void test_built_model(void)
{
  pbw g = {0}, attrs = {0}, a = {0};
  /* FLOATS packed + unpacked, INTS unpacked, attributes without `type`. */
  float packed[2] = {0.5f, -1.25f};
  pbw_str(&a, 1, "fl");
  pbw_bytes(&a, 7, packed, sizeof packed);
  pbw_f32(&a, 7, 3.0f);
  pbw_int(&a, 20, 6);
  pbw_msg(&attrs, 5, &a);
  pbw_str(&a, 1, "in");
  pbw_int(&a, 8, -3);
  pbw_int(&a, 8, 70000);
  pbw_msg(&attrs, 5, &a);
  pbw_str(&a, 1, "untyped_i");
  pbw_int(&a, 3, 42);
  pbw_msg(&attrs, 5, &a);
  pbw_str(&a, 1, "untyped_s");
  pbw_str(&a, 4, "hello");
  pbw_msg(&attrs, 5, &a);
  pbw_toy_graph(&g, &attrs);
  free(attrs.p);
  /* Typed data fields: float_data (packed), int64_data (unpacked, negative),
   * int32_data holding float16 bits, double_data, int32_data for int8. */
  pbw t = {0};
  pbw_int(&t, 1, 3);
  pbw_int(&t, 2, 1);
  pbw_str(&t, 8, "fd");
  float fd[3] = {1, 2, 3.5f};
  pbw_bytes(&t, 4, fd, sizeof fd);
  pbw_msg(&g, 5, &t);
  pbw_int(&t, 1, 2);
  pbw_int(&t, 2, 7);
  pbw_str(&t, 8, "i64");
  pbw_int(&t, 7, -5);
  pbw_int(&t, 7, 1LL << 40);
  pbw_msg(&g, 5, &t);
  pbw_int(&t, 1, 2);
  pbw_int(&t, 2, 10);
  pbw_str(&t, 8, "h");
  pbw_int(&t, 5, 0x3c00);   /* 1.0 */
  pbw_int(&t, 5, 0xc000);   /* -2.0 */
  pbw_msg(&g, 5, &t);
  pbw_int(&t, 2, 11);
  pbw_str(&t, 8, "d0");     /* a scalar: no dims */
  double dv = -0.125;
  pbw_bytes(&t, 10, &dv, 8);
  pbw_msg(&g, 5, &t);
  pbw_int(&t, 1, 3);
  pbw_int(&t, 2, 3);
  pbw_str(&t, 8, "i8");
  pbw_int(&t, 5, -1);
  pbw_int(&t, 5, 127);
  pbw_int(&t, 5, -128);
  pbw_msg(&g, 5, &t);
  pbw_int(&t, 1, 0);
  pbw_int(&t, 2, 1);
  pbw_str(&t, 8, "empty");
  pbw_msg(&g, 5, &t);
  pbw m = pbw_model(&g);
  int st;
  lm_graph *gr = load_pbw(&m, "built.onnx", &st);
  CHECK_INT(st, LM_OK);
  if (!gr) {
    printf("# %s\n", err);
    free(m.p);
    return;
  }
  CHECK_INT(gr->opset, 17);
  CHECK_STR(gr->producer, "lumen-test 1");
  /* w is an initializer and an input: a constant, not an input. */
  CHECK_INT(gr->ninputs, 1);
  CHECK_STR(gr->values[gr->inputs[0]].name, "x");
  CHECK_INT(gr->values[gr->inputs[0]].shape[0], -1);
  CHECK_INT(gr->values[gr->inputs[0]].shape[1], 2);
  int w = lm_graph_find_value(gr, "w");
  CHECK(w >= 0 && gr->values[w].data && !gr->values[w].is_input);
  CHECK_INT(gr->nnodes, 2);
  const lm_gnode *n = &gr->nodes[1];
  CHECK_NEAR(lm_gnode_attr_float(n, "alpha", 0), 0.2f, 0);
  const lm_gattr *fl = lm_gnode_attr(n, "fl");
  CHECK(fl && fl->kind == LM_ATTR_FLOATS && fl->n == 3);
  if (fl && fl->n == 3) {
    CHECK_NEAR(fl->floats[0], 0.5, 0);
    CHECK_NEAR(fl->floats[1], -1.25, 0);
    CHECK_NEAR(fl->floats[2], 3.0, 0);
  }
  int cnt;
  const int64_t *iv = lm_gnode_attr_ints(n, "in", &cnt);
  CHECK_INT(cnt, 2);
  if (iv && cnt == 2) {
    CHECK_INT(iv[0], -3);
    CHECK_INT(iv[1], 70000);
  }
  CHECK_INT(lm_gnode_attr_int(n, "untyped_i", 0), 42);
  CHECK_STR(lm_gnode_attr_string(n, "untyped_s", NULL), "hello");
  const lm_gvalue *v = &gr->values[lm_graph_find_value(gr, "fd")];
  CHECK(v->data && v->dt == LM_F32 && v->nbytes == 12);
  if (v->data) CHECK_NEAR(((const float *)v->data)[2], 3.5, 0);
  v = &gr->values[lm_graph_find_value(gr, "i64")];
  CHECK(v->data && v->dt == LM_I64);
  if (v->data) {
    CHECK_INT(((const int64_t *)v->data)[0], -5);
    CHECK_INT(((const int64_t *)v->data)[1], 1LL << 40);
  }
  v = &gr->values[lm_graph_find_value(gr, "h")];
  CHECK(v->data && v->dt == LM_F16 && v->nbytes == 4);
  if (v->data) {
    CHECK_INT(((const uint16_t *)v->data)[0], 0x3c00);
    CHECK_INT(((const uint16_t *)v->data)[1], 0xc000);
  }
  v = &gr->values[lm_graph_find_value(gr, "d0")];
  CHECK(v->data && v->dt == LM_F64 && v->ndim == 0);
  if (v->data) CHECK_NEAR(*(const double *)v->data, -0.125, 0);
  v = &gr->values[lm_graph_find_value(gr, "i8")];
  CHECK(v->data && v->dt == LM_I8);
  if (v->data) {
    CHECK_INT(((const int8_t *)v->data)[0], -1);
    CHECK_INT(((const int8_t *)v->data)[2], -128);
  }
  v = &gr->values[lm_graph_find_value(gr, "empty")];
  CHECK(v->ndim == 1 && v->shape[0] == 0 && v->nbytes == 0);
  lm_graph_free(gr);
  free(m.p);
}

/* raw_data is used in place when it is aligned for its dtype and copied
** when not: the same model behind doc_strings of lengths 0..3 puts the
** weights at every offset mod 4. */
static void test_zero_copy(void)
{
  static const float w[2] = {1.5f, -2.0f};
  int in_place = 0, copied = 0;
  for (int shift = 0; shift < 4; shift++) {
    pbw g = {0}, m = {0};
    pbw_toy_graph(&g, NULL);
    pbw inner = pbw_model(&g);
    char doc[8] = "abcdefg";
    pbw_bytes(&m, 6, doc, (size_t)shift + 1);   /* ModelProto.doc_string, skipped */
    pbw_raw(&m, inner.p, inner.n);
    free(inner.p);
    const uint8_t *raw = memmem(m.p, m.n, w, sizeof w);
    int st;
    lm_graph *gr = load_pbw(&m, "zc.onnx", &st);
    CHECK_INT(st, LM_OK);
    if (gr && raw) {
      const lm_gvalue *v = &gr->values[lm_graph_find_value(gr, "w")];
      CHECK(v->data && memcmp(v->data, w, sizeof w) == 0);
      if ((uintptr_t)raw % 4 == 0) {
        CHECK(v->data == raw);
        in_place++;
      } else {
        CHECK(v->data != raw);
        CHECK((uintptr_t)v->data % 4 == 0);
        copied++;
      }
    }
    lm_graph_free(gr);
    free(m.p);
  }
  CHECK_INT(in_place, 1);
  CHECK_INT(copied, 3);
}

/* A model whose only node gets extra attributes, or whose graph gets an
** extra initializer or node. */
static pbw model_with(pbw *attrs, pbw *init, pbw *node)
{
  pbw g = {0};
  pbw_toy_graph(&g, attrs);
  if (init) pbw_msg(&g, 5, init);
  if (node) pbw_msg(&g, 1, node);
  return pbw_model(&g);
}

static void test_refusals(void)
{
  pbw m, t = {0}, a = {0}, attrs = {0}, n = {0};

  /* A packed ints attribute whose last varint is cut. */
  pbw_str(&a, 1, "pads");
  pbw_bytes(&a, 8, "\x01\x81", 2);
  pbw_msg(&attrs, 5, &a);
  m = model_with(&attrs, NULL, NULL);
  expect_refused(&m, "t.onnx: node 1 (LeakyRelu 'act'): attribute 'pads': ints: truncated varint");
  free(m.p);
  free(attrs.p);
  memset(&attrs, 0, sizeof attrs);

  /* raw_data of the wrong size. */
  float four[4] = {0};
  pbw_int(&t, 1, 2);
  pbw_int(&t, 1, 3);
  pbw_int(&t, 2, 1);
  pbw_str(&t, 8, "bad");
  pbw_bytes(&t, 9, four, sizeof four);
  m = model_with(NULL, &t, NULL);
  expect_refused(&m, "initializer 'bad': raw_data has 16 bytes; dims and data_type give 24");
  free(m.p);

  /* Unknown and unsupported data types. */
  pbw_int(&t, 1, 2);
  pbw_int(&t, 2, 99);
  pbw_str(&t, 8, "u");
  m = model_with(NULL, &t, NULL);
  expect_refused(&m, "initializer 'u': data_type 99 (unknown) is not supported");
  free(m.p);
  pbw_int(&t, 2, 8);
  pbw_str(&t, 8, "s");
  pbw_str(&t, 6, "text");
  m = model_with(NULL, &t, NULL);
  expect_refused(&m, "data_type 8 (STRING) is not supported");
  free(m.p);

  /* Negative dims; a product that overflows. */
  pbw_int(&t, 1, -4);
  pbw_int(&t, 2, 1);
  m = model_with(NULL, &t, NULL);
  expect_refused(&m, "dims: negative extent -4");
  free(m.p);
  for (int i = 0; i < 3; i++) pbw_int(&t, 1, 1LL << 30);
  pbw_int(&t, 2, 1);
  m = model_with(NULL, &t, NULL);
  expect_refused(&m, "dims: the element count overflows");
  free(m.p);

  /* Typed values fewer than the dims give; data in a field of another type. */
  pbw_int(&t, 1, 3);
  pbw_int(&t, 2, 7);
  pbw_str(&t, 8, "few");
  pbw_int(&t, 7, 1);
  m = model_with(NULL, &t, NULL);
  expect_refused(&m, "initializer 'few': int64_data has 1 values; dims give 3");
  free(m.p);
  pbw_int(&t, 1, 1);
  pbw_int(&t, 2, 7);
  pbw_str(&t, 8, "wrongfield");
  pbw_f32(&t, 4, 1.0f);
  m = model_with(NULL, &t, NULL);
  expect_refused(&m, "float_data given for data_type INT64");
  free(m.p);

  /* An output defined twice; a call of a model-local function. */
  pbw_str(&n, 1, "x");
  pbw_str(&n, 2, "m");
  pbw_str(&n, 4, "Relu");
  m = model_with(NULL, NULL, &n);
  expect_refused(&m, "node 2 (Relu ''): output 'm' is already defined (by another node)");
  free(m.p);
  /* A function that calls itself. */
  pbw g = {0}, fn = {0};
  pbw_toy_graph(&g, NULL);
  pbw_str(&n, 1, "x");
  pbw_str(&n, 2, "z");
  pbw_str(&n, 4, "Loop1");
  pbw_str(&n, 7, "local");
  pbw_msg(&g, 1, &n);
  m = pbw_model(&g);
  pbw_str(&fn, 1, "Loop1");
  pbw_str(&fn, 10, "local");
  pbw_str(&fn, 4, "a");
  pbw_str(&fn, 5, "b");
  pbw_str(&n, 1, "a");
  pbw_str(&n, 2, "b");
  pbw_str(&n, 4, "Loop1");
  pbw_str(&n, 7, "local");
  pbw_msg(&fn, 7, &n);
  pbw_msg(&m, 25, &fn);
  expect_refused(&m, "node 2 (Loop1 ''): function 'Loop1': node 0 (Loop1 ''): function 'Loop1'");
  CHECK_CONTAINS(err, "nest deeper than 16");
  free(m.p);
  /* Not a model at all; a graph-level truncation names the field. */
  pbw junk = {0};
  pbw_raw(&junk, "hello, world", 12);
  expect_refused(&junk, "t.onnx: ");
  free(junk.p);
  pbw empty = {0};
  expect_refused(&empty, "graph: missing");
  /* External data from a buffer: no folder to read it from. */
  pbw_int(&t, 1, 1);
  pbw_int(&t, 2, 1);
  pbw_str(&t, 8, "ext");
  pbw e = {0};
  pbw_str(&e, 1, "location");
  pbw_str(&e, 2, "w.bin");
  pbw_msg(&t, 13, &e);
  pbw_int(&t, 14, 1);
  m = model_with(NULL, &t, NULL);
  expect_refused(&m, "external_data 'w.bin': needs the model's folder");
  free(m.p);
}

/* Model-local functions are inlined: formal inputs and outputs bound to the
** call's values, inner values prefixed per call, attribute references
** resolved from the caller, then the function's defaults, else left out;
** calls nest. */
static void add_call(pbw *g, const char *op, const char *in0, const char *in1, const char *out,
                     const char *attr, float value)
{
  pbw n = {0}, a = {0};
  pbw_str(&n, 1, in0);
  if (in1) pbw_str(&n, 1, in1);
  pbw_str(&n, 2, out);
  pbw_str(&n, 4, op);
  pbw_str(&n, 7, "local");
  if (attr) {
    pbw_str(&a, 1, attr);
    pbw_f32(&a, 2, value);
    pbw_int(&a, 20, 1);
    pbw_msg(&n, 5, &a);
  }
  pbw_msg(g, 1, &n);
}

static void test_functions_inlined(void)
{
  pbw g = {0}, fn = {0}, n = {0}, a = {0};
  pbw_toy_graph(&g, NULL);                                  /* nodes 0, 1: y = LeakyRelu(x * w) */
  add_call(&g, "MyBlock", "x", "w", "z", "alpha", 0.3f);    /* nodes 2, 3 */
  add_call(&g, "MyBlock", "z", "w", "z2", NULL, 0);         /* nodes 4, 5 */
  add_call(&g, "Outer", "x", NULL, "z3", "k", 0.7f);        /* nodes 6, 7 */
  pbw m = pbw_model(&g);
  /* MyBlock(a, s) -> o: t = a * s; o = LeakyRelu(t) with alpha from the
   * caller's alpha, gamma from the caller's g2 (default 0.5), delta from
   * the caller's missing (no default: left out). */
  pbw_str(&fn, 1, "MyBlock");
  pbw_str(&fn, 10, "local");
  pbw_str(&fn, 4, "a");
  pbw_str(&fn, 4, "s");
  pbw_str(&fn, 5, "o");
  pbw_str(&fn, 6, "alpha");
  pbw_str(&n, 1, "a");
  pbw_str(&n, 1, "s");
  pbw_str(&n, 2, "t");
  pbw_str(&n, 4, "Mul");
  pbw_msg(&fn, 7, &n);
  pbw_str(&n, 1, "t");
  pbw_str(&n, 2, "o");
  pbw_str(&n, 4, "LeakyRelu");
  const char *refs[3][2] = {{"alpha", "alpha"}, {"gamma", "g2"}, {"delta", "missing"}};
  for (int i = 0; i < 3; i++) {
    pbw_str(&a, 1, refs[i][0]);
    pbw_str(&a, 21, refs[i][1]);
    pbw_int(&a, 20, 1);
    pbw_msg(&n, 5, &a);
  }
  pbw_msg(&fn, 7, &n);
  pbw_str(&a, 1, "g2");
  pbw_f32(&a, 2, 0.5f);
  pbw_int(&a, 20, 1);
  pbw_msg(&fn, 11, &a);
  pbw_msg(&m, 25, &fn);
  /* Outer(a) -> b: b = MyBlock(a, a) with alpha from Outer's k. */
  pbw_str(&fn, 1, "Outer");
  pbw_str(&fn, 10, "local");
  pbw_str(&fn, 4, "a");
  pbw_str(&fn, 5, "b");
  pbw_str(&n, 1, "a");
  pbw_str(&n, 1, "a");
  pbw_str(&n, 2, "b");
  pbw_str(&n, 4, "MyBlock");
  pbw_str(&n, 7, "local");
  pbw_str(&a, 1, "alpha");
  pbw_str(&a, 21, "k");
  pbw_int(&a, 20, 1);
  pbw_msg(&n, 5, &a);
  pbw_msg(&fn, 7, &n);
  pbw_msg(&m, 25, &fn);

  int st;
  lm_graph *gr = load_pbw(&m, "fn.onnx", &st);
  CHECK_INT(st, LM_OK);
  free(m.p);
  if (!gr) {
    printf("# %s\n", err);
    return;
  }
  CHECK_INT(gr->nnodes, 8);
  if (gr->nnodes != 8) {
    lm_graph_free(gr);
    return;
  }
  int x = lm_graph_find_value(gr, "x"), w = lm_graph_find_value(gr, "w");
  int z = lm_graph_find_value(gr, "z"), z2 = lm_graph_find_value(gr, "z2");
  int z3 = lm_graph_find_value(gr, "z3");
  const lm_gnode *nd = gr->nodes;
  CHECK_STR(nd[2].op, "Mul");
  CHECK_STR(nd[2].domain, "");
  CHECK_INT(nd[2].in[0], x);
  CHECK_INT(nd[2].in[1], w);
  CHECK_STR(gr->values[nd[2].out[0]].name, "MyBlock#0/t");
  CHECK_STR(nd[3].op, "LeakyRelu");
  CHECK_INT(nd[3].in[0], nd[2].out[0]);
  CHECK_INT(nd[3].out[0], z);
  CHECK_INT(gr->values[z].producer, 3);
  CHECK_NEAR(lm_gnode_attr_float(&nd[3], "alpha", -1), 0.3f, 0);
  CHECK_NEAR(lm_gnode_attr_float(&nd[3], "gamma", -1), 0.5f, 0);
  CHECK(lm_gnode_attr(&nd[3], "delta") == NULL);
  CHECK_INT(nd[3].nattr, 2);
  /* The second call: its own inner values, no alpha. */
  CHECK_INT(nd[4].in[0], z);
  CHECK_STR(gr->values[nd[4].out[0]].name, "MyBlock#1/t");
  CHECK_INT(nd[5].out[0], z2);
  CHECK(lm_gnode_attr(&nd[5], "alpha") == NULL);
  /* The nested call: Outer's k reaches MyBlock's LeakyRelu as alpha. */
  CHECK_INT(nd[6].in[0], x);
  CHECK_INT(nd[6].in[1], x);
  CHECK_STR(gr->values[nd[6].out[0]].name, "MyBlock#3/t");
  CHECK_INT(nd[7].out[0], z3);
  CHECK_NEAR(lm_gnode_attr_float(&nd[7], "alpha", -1), 0.7f, 0);
  lm_graph_free(gr);
}

/* Every prefix of a valid model loads or is refused with a message; some
** prefixes are valid protobuf (a cut exactly between fields), so only the
** full model must load. */
static void test_truncations(void)
{
  pbw g = {0};
  pbw_toy_graph(&g, NULL);
  pbw m = pbw_model(&g);
  int refused = 0, truncated = 0;
  for (size_t len = 0; len < m.n; len++) {
    lm_graph *gr = NULL;
    err[0] = 0;
    int st = lm_onnx_load_buffer(m.p, len, "cut.onnx", &gr, err, sizeof err);
    if (st < 0) {
      refused++;
      if (strstr(err, "truncated")) truncated++;
      if (strncmp(err, "cut.onnx: ", 10) != 0) TAP_FAIL("len %zu: message \"%s\"", len, err);
    }
    lm_graph_free(gr);
  }
  printf("# %zu prefixes: %d refused, %d of them as truncated\n", m.n, refused, truncated);
  CHECK(refused > (int)m.n * 9 / 10);
  CHECK(truncated > (int)m.n / 2);
  lm_graph *gr = NULL;
  CHECK_INT(lm_onnx_load_buffer(m.p, m.n, "cut.onnx", &gr, err, sizeof err), LM_OK);
  lm_graph_free(gr);
  free(m.p);
}

/* External data next to the model file: offsets, lengths, and locations
** that would leave the folder. */
static void write_file(const char *path, const void *d, size_t n)
{
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(d, 1, n, f);
  fclose(f);
}

static pbw ext_model(const char *location, const char *offset, const char *length)
{
  pbw g = {0}, t = {0}, e = {0};
  pbw_toy_graph(&g, NULL);
  pbw_int(&t, 1, 3);
  pbw_int(&t, 2, 1);
  pbw_str(&t, 8, "big");
  pbw_str(&e, 1, "location");
  pbw_str(&e, 2, location);
  pbw_msg(&t, 13, &e);
  if (offset) {
    pbw_str(&e, 1, "offset");
    pbw_str(&e, 2, offset);
    pbw_msg(&t, 13, &e);
  }
  if (length) {
    pbw_str(&e, 1, "length");
    pbw_str(&e, 2, length);
    pbw_msg(&t, 13, &e);
  }
  pbw_int(&t, 14, 1);
  pbw_msg(&g, 5, &t);
  return pbw_model(&g);
}

static void test_external_data(void)
{
  char dir[] = "/tmp/lumen_onnx_XXXXXX";
  if (!mkdtemp(dir)) {
    TAP_FAIL("mkdtemp");
    return;
  }
  char sub[600], path[700], bin[700], outside[700];
  snprintf(sub, sizeof sub, "%s/model", dir);
  mkdir(sub, 0755);
  snprintf(bin, sizeof bin, "%s/weights.bin", sub);
  snprintf(outside, sizeof outside, "%s/secret.bin", dir);
  float vals[5] = {9, 1, 2, 3, 9};
  write_file(bin, vals, sizeof vals);
  write_file(outside, vals, sizeof vals);
  snprintf(path, sizeof path, "%s/m.onnx", sub);
  struct {
    const char *loc, *off, *len, *want;   /* want NULL: loads */
  } cases[] = {
    {"weights.bin", "4", "12", NULL},
    {"weights.bin", "4", NULL, NULL},
    {"./weights.bin", "4", "12", NULL},
    {"weights.bin", "12", "12", "runs past the file"},
    {"weights.bin", "4", "8", "length 8 but dims and data_type give 12 bytes"},
    {"weights.bin", "x4", NULL, "external_data: bad offset"},
    {"../secret.bin", NULL, "12", "leaves the model's folder"},
    {"/etc/passwd", NULL, NULL, "absolute location"},
    {"link.bin", "4", "12", "resolves outside the model's folder"},
    {"missing.bin", NULL, NULL, "external_data 'missing.bin': No such file"},
  };
  char link[700];
  snprintf(link, sizeof link, "%s/link.bin", sub);
  CHECK_INT(symlink(outside, link), 0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pbw m = ext_model(cases[i].loc, cases[i].off, cases[i].len);
    write_file(path, m.p, m.n);
    free(m.p);
    lm_graph *g = NULL;
    int st = lm_onnx_load(path, &g, err, sizeof err);
    if (!cases[i].want) {
      CHECK_INT(st, LM_OK);
      if (st != LM_OK) printf("# case %zu: %s\n", i, err);
      if (g) {
        const lm_gvalue *v = &g->values[lm_graph_find_value(g, "big")];
        CHECK(v->data && v->nbytes == 12);
        if (v->data) {
          CHECK_NEAR(((const float *)v->data)[0], 1, 0);
          CHECK_NEAR(((const float *)v->data)[2], 3, 0);
        }
      }
    } else {
      CHECK(st < 0);
      CHECK_CONTAINS(err, path);
      CHECK_CONTAINS(err, "initializer 'big': ");
      CHECK_CONTAINS(err, cases[i].want);
    }
    lm_graph_free(g);
  }
  unlink(link);
  unlink(path);
  unlink(bin);
  unlink(outside);
  rmdir(sub);
  rmdir(dir);
}

int main(void)
{
  RUN(test_built_model);
  RUN(test_zero_copy);
  RUN(test_refusals);
  RUN(test_functions_inlined);
  RUN(test_truncations);
  RUN(test_external_data);
  if (access(NODE_DIR "test_constant/model.onnx", R_OK) == 0) {
    RUN(test_node_attribute_kinds);
    RUN(test_node_constant);
    RUN(test_read_tensor_file);
    RUN(test_node_if_refused);
  } else {
    printf("# skipped: ONNX node test data not installed (" NODE_DIR ")\n");
  }
  if (data_dir()) {
    char p[1024];
    snprintf(p, sizeof p, "%s/models/model5_gw_ae/model5_gw_ae.onnx", data_dir());
    if (access(p, R_OK) == 0) RUN(test_model5);
    else printf("# skipped: %s not found\n", p);
  } else {
    printf("# skipped: LUMEN_TEST_DATA not set\n");
  }
  TAP_DONE();
}
