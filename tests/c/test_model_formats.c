/* Model file formats (models/src/safetensors.c, graph_json*.c, tfjs*.c):
 * synthetic files written here (values checked exactly), garbled and
 * truncated files (errors name the file and the field), and the real
 * brainchop models of $LUMEN_TEST_DATA (spot values below were read with
 * /usr/bin/python3 + numpy from the same files when this test was written:
 * np.frombuffer over the .bin / safetensors data section).
 *
 * The three copies of model5_gw_ae must hold the same weights: tfjs kernel
 * [kd,kh,kw,in,out] transposed (4,3,0,1,2) == safetensors [out,in,k,k,k];
 * the ONNX copy takes its input as (Z,Y,X), so its kernels are the
 * safetensors ones with the spatial axes reversed (transpose (0,1,4,3,2)). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loaders.h"
#include "plan.h"
#include "tap.h"

static char tmpdir[256];
static const char *data_dir;

static void write_file(const char *path, const void *p, size_t n)
{
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n) TAP_FAIL("cannot write %s", path);
  if (f) fclose(f);
}

static char *tmp_path(const char *name)
{
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

/* A safetensors file: 8-byte LE header length, header, data. */
static void write_st(const char *path, const char *header, const void *data, size_t dlen)
{
  size_t hl = strlen(header);
  unsigned char *b = malloc(8 + hl + dlen);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, header, hl);
  if (dlen) memcpy(b + 8 + hl, data, dlen);
  write_file(path, b, 8 + hl + dlen);
  free(b);
}

static int count_op(const lm_graph *g, const char *op)
{
  int n = 0;
  for (int i = 0; i < g->nnodes; i++) n += strcmp(g->nodes[i].op, op) == 0;
  return n;
}

static const lm_gnode *nth_op(const lm_graph *g, const char *op, int k)
{
  for (int i = 0; i < g->nnodes; i++)
    if (strcmp(g->nodes[i].op, op) == 0 && k-- == 0) return &g->nodes[i];
  return NULL;
}

static const lm_gvalue *value(const lm_graph *g, const char *name)
{
  int v = lm_graph_find_value(g, name);
  return v >= 0 ? &g->values[v] : NULL;
}

static bool ints_are(const lm_gnode *n, const char *attr, int cnt, const int64_t *want)
{
  int k;
  const int64_t *v = lm_gnode_attr_ints(n, attr, &k);
  if (!v || k != cnt) return false;
  for (int i = 0; i < cnt; i++)
    if (v[i] != want[i]) return false;
  return true;
}

/* ---- safetensors ---------------------------------------------------------- */

/* Tensor data in a safetensors file need not be aligned (the header length
** is arbitrary), so the checks read through memcpy. */
static double f32_at(const void *p, size_t i)
{
  float v;
  memcpy(&v, (const char *)p + 4 * i, 4);
  return v;
}

static const char st_header[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"idx\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]},"
    "\"h\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[40,44]},"
    "\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[44,47]},"
    "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[48,56]}}";

static size_t st_data(unsigned char *d)
{
  memset(d, 0, 56);
  float w[6] = {1, -2, 3.5f, 4, 5, -6.25f};
  int64_t idx[2] = {7, -9000000000LL};
  uint16_t h[2] = {0x3f80, 0xc040};   /* bfloat16 1.0, -3.0 */
  unsigned char m[3] = {1, 0, 1};
  double s = 0.125;
  memcpy(d, w, 24);
  memcpy(d + 24, idx, 16);
  memcpy(d + 40, h, 4);
  memcpy(d + 44, m, 3);
  memcpy(d + 48, &s, 8);
  return 56;
}

static void test_safetensors_synthetic(void)
{
  unsigned char d[56];
  size_t n = st_data(d);
  const char *path = tmp_path("ok.safetensors");
  write_st(path, st_header, d, n);
  lm_safetensors *s;
  char err[512];
  int rc = lm_safetensors_open(path, &s, err, sizeof err);
  CHECK_INT(rc, LM_OK);
  if (rc < 0) {
    TAP_FAIL("%s", err);
    return;
  }
  CHECK_INT(lm_safetensors_count(s), 5);   /* __metadata__ skipped */
  bool seen[5] = {0};
  for (int i = 0; i < lm_safetensors_count(s); i++) {
    lm_dtype dt;
    int nd;
    int64_t sh[LM_MAX_DIMS];
    const void *p;
    size_t nb;
    const char *name = lm_safetensors_at(s, i, &dt, &nd, sh, &p, &nb);
    if (!strcmp(name, "w")) {
      seen[0] = true;
      CHECK_INT(dt, LM_F32);
      CHECK_INT(nd, 2);
      CHECK_INT(sh[0], 2);
      CHECK_INT(sh[1], 3);
      CHECK_INT(nb, 24);
      CHECK_NEAR(f32_at(p, 5), -6.25, 0);
    } else if (!strcmp(name, "idx")) {
      seen[1] = true;
      CHECK_INT(dt, LM_I64);
      int64_t v;
      memcpy(&v, (const char *)p + 8, 8);
      CHECK_INT(v, -9000000000LL);
    } else if (!strcmp(name, "h")) {
      seen[2] = true;
      CHECK_INT(dt, LM_BF16);
      uint16_t h;
      memcpy(&h, (const char *)p + 2, 2);
      CHECK_INT(h, 0xc040);
    } else if (!strcmp(name, "m")) {
      seen[3] = true;
      CHECK_INT(dt, LM_U8);
      CHECK_INT(nb, 3);
      CHECK_INT(((const unsigned char *)p)[2], 1);
    } else if (!strcmp(name, "s")) {
      seen[4] = true;
      CHECK_INT(dt, LM_F64);
      CHECK_INT(nd, 0);
      double v;
      memcpy(&v, p, 8);
      CHECK_NEAR(v, 0.125, 0);
    }
  }
  for (int i = 0; i < 5; i++) CHECK(seen[i]);
  CHECK(lm_safetensors_at(s, 5, NULL, NULL, NULL, NULL, NULL) == NULL);
  lm_safetensors_close(s);
}

/* Open path and expect failure with a message holding each of want[]. */
static void expect_st_error(const char *path, const char *w1, const char *w2)
{
  lm_safetensors *s = NULL;
  char err[512] = "";
  int rc = lm_safetensors_open(path, &s, err, sizeof err);
  CHECK(rc < 0);
  CHECK(s == NULL);
  CHECK_CONTAINS(err, path);
  if (w1) CHECK_CONTAINS(err, w1);
  if (w2) CHECK_CONTAINS(err, w2);
  if (s) lm_safetensors_close(s);
}

static void test_safetensors_errors(void)
{
  unsigned char d[56];
  size_t n = st_data(d);
  const char *p = tmp_path("bad.safetensors");
  /* data cut short: the last tensor's offsets run past the end */
  write_st(p, st_header, d, n - 4);
  expect_st_error(p, "'s'", "data_offsets");
  /* header length larger than the file */
  unsigned char tiny[12] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}', 0, 0};
  write_file(p, tiny, sizeof tiny);
  expect_st_error(p, "header length", NULL);
  write_file(p, tiny, 5);
  expect_st_error(p, "too short", NULL);
  write_st(p, "{\"w\":{\"dtype\":\"F32\",", d, 8);
  expect_st_error(p, "invalid JSON", NULL);
  write_st(p, "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", d, 8);
  expect_st_error(p, "'w'", "dtype 'F8_E4M3'");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8);
  expect_st_error(p, "'w'", "need 12");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d, 8);
  expect_st_error(p, "'w'", "'shape'");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", d, 8);
  expect_st_error(p, "'w'", "'data_offsets'");
  write_st(p, "[1,2]", d, 0);
  expect_st_error(p, "not a JSON object", NULL);
  expect_st_error(tmp_path("missing.safetensors"), "cannot open", NULL);
}

static void test_safetensors_model5(void)
{
  char path[512];
  snprintf(path, sizeof path, "%s/models/model5_gw_ae/model5_gw_ae.safetensors", data_dir);
  lm_safetensors *s;
  char err[512];
  if (lm_safetensors_open(path, &s, err, sizeof err) < 0) {
    TAP_FAIL("%s", err);
    return;
  }
  CHECK_INT(lm_safetensors_count(s), 20);
  int found = 0;
  for (int i = 0; i < lm_safetensors_count(s); i++) {
    lm_dtype dt;
    int nd;
    int64_t sh[LM_MAX_DIMS];
    const void *p;
    const char *name = lm_safetensors_at(s, i, &dt, &nd, sh, &p, NULL);
    const float *f = p;
    if (!strcmp(name, "model.0.weight")) {
      found++;
      CHECK_INT(dt, LM_F32);
      CHECK_INT(nd, 5);
      CHECK_INT(sh[0], 5);
      CHECK_INT(sh[1], 1);
      CHECK_INT(sh[4], 3);
      /* w0[3,0,1,2,0] and w0[4,0,2,1,1] */
      CHECK_NEAR(f[3 * 27 + 1 * 9 + 2 * 3 + 0], 0.05405023321509361, 0);
      CHECK_NEAR(f[4 * 27 + 2 * 9 + 1 * 3 + 1], -0.04345621168613434, 0);
    } else if (!strcmp(name, "model.18.bias")) {
      found++;
      CHECK_NEAR(f[0], -0.7850812077522278, 1e-7);
      CHECK_NEAR(f[2], 2.1639344692230225, 1e-7);
    } else if (!strcmp(name, "model.18.weight")) {
      found++;
      CHECK_INT(sh[0], 3);
      CHECK_INT(sh[2], 1);
      CHECK_NEAR(f[2 * 5 + 4], 0.6542516350746155, 0);
    }
  }
  CHECK_INT(found, 3);
  lm_safetensors_close(s);
}

/* ---- graph JSON --------------------------------------------------------- */

static void test_graph_json(void)
{
  /* weights: two in a safetensors file, one inline */
  float w[2 * 1 * 3] = {1, 2, 3, 4, 5, 6}, b[2] = {0.5f, -0.5f};
  unsigned char d[32];
  memcpy(d, w, 24);
  memcpy(d + 24, b, 8);
  write_st(tmp_path("net.safetensors"),
           "{\"c.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3],\"data_offsets\":[0,24]},"
           "\"c.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
           "\"unused\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[32,32]}}",
           d, 32);
  const char *json =
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1,null]}],\"outputs\":[\"y\"],\n"
      " \"nodes\":[\n"
      "  {\"op\":\"Conv\",\"name\":\"c\",\"inputs\":[\"x\",\"c.weight\",\"c.bias\"],\"outputs\":[\"h\"],\n"
      "   \"attrs\":{\"dilations\":[2],\"pads\":[2,2],\"group\":1,\"auto_pad\":\"NOTSET\"}},\n"
      "  {\"op\":\"Elu\",\"inputs\":[\"h\"],\"outputs\":[\"e\"],\"attrs\":{\"alpha\":1}},\n"
      "  {\"op\":\"Resize\",\"inputs\":[\"e\",\"\",\"sc\"],\"outputs\":[\"r\"],\n"
      "   \"attrs\":{\"scales_dummy\":[1.5,2],\"mode\":\"nearest\",\"keepdims\":true}},\n"
      "  {\"op\":\"Mul\",\"inputs\":[\"r\",\"k\"],\"outputs\":[\"y\"],\"attrs\":[]}],\n"
      " \"weights\":[\"net.safetensors\",{\"name\":\"k\",\"dtype\":\"float32\",\"data\":[2]},\n"
      "             {\"name\":\"sc\",\"shape\":[3],\"data\":[1,1,2]}]}";
  lm_graph *g;
  char err[512];
  int rc = lm_graph_json_load(json, strlen(json), tmpdir, &g, err, sizeof err);
  CHECK_INT(rc, LM_OK);
  if (rc < 0) {
    TAP_FAIL("%s", err);
    return;
  }
  CHECK_INT(g->ninputs, 1);
  CHECK_INT(g->noutputs, 1);
  CHECK_INT(g->nnodes, 4);
  const lm_gvalue *x = &g->values[g->inputs[0]];
  CHECK_INT(x->ndim, 3);
  CHECK_INT(x->shape[2], -1);
  CHECK_INT(x->dt, LM_F32);
  const lm_gnode *conv = nth_op(g, "Conv", 0);
  CHECK(conv != NULL);
  if (conv) {
    CHECK(ints_are(conv, "dilations", 1, (const int64_t[]){2}));
    CHECK(ints_are(conv, "pads", 2, (const int64_t[]){2, 2}));
    const lm_gattr *a = lm_gnode_attr(conv, "group");
    CHECK(a && a->kind == LM_ATTR_INT && a->i == 1);
    a = lm_gnode_attr(conv, "auto_pad");
    CHECK(a && a->kind == LM_ATTR_STRING);
    const lm_gvalue *wv = &g->values[conv->in[1]];
    CHECK(wv->data != NULL);
    CHECK_INT(wv->ndim, 3);
    if (wv->data) CHECK_NEAR(((const float *)wv->data)[5], 6, 0);
    const lm_gvalue *bv = &g->values[conv->in[2]];
    if (bv->data) CHECK_NEAR(((const float *)bv->data)[1], -0.5, 0);
  }
  /* an integral number for a float attribute stays FLOAT */
  const lm_gattr *alpha = lm_gnode_attr(nth_op(g, "Elu", 0), "alpha");
  CHECK(alpha && alpha->kind == LM_ATTR_FLOAT && alpha->f == 1.0);
  const lm_gnode *rs = nth_op(g, "Resize", 0);
  CHECK_INT(rs->in[1], -1);   /* "" = optional input left out */
  const lm_gattr *fl = lm_gnode_attr(rs, "scales_dummy");
  CHECK(fl && fl->kind == LM_ATTR_FLOATS && fl->n == 2 && fl->floats[0] == 1.5);
  const lm_gattr *kd = lm_gnode_attr(rs, "keepdims");
  CHECK(kd && kd->kind == LM_ATTR_INT && kd->i == 1);
  const lm_gvalue *k = value(g, "k");
  CHECK(k && k->data && k->ndim == 1 && ((const float *)k->data)[0] == 2.0f);
  const lm_gvalue *sc = value(g, "sc");
  CHECK(sc && sc->data && sc->ndim == 1 && sc->shape[0] == 3 && ((const float *)sc->data)[2] == 2);
  CHECK(value(g, "unused") == NULL);   /* tensors no node uses are not bound */
  lm_graph_free(g);
}

/* Half, bfloat16 and double weights are widened to float32 when bound. */
static void test_graph_json_widens_weights(void)
{
  unsigned char d[4 + 2 + 8];
  uint16_t h[2] = {0x3e00, 0xc000};   /* float16 1.5, -2 */
  uint16_t bf = 0x3fc0;               /* bfloat16 1.5 */
  double f = -0.25;
  memcpy(d, h, 4);
  memcpy(d + 4, &bf, 2);
  memcpy(d + 6, &f, 8);
  write_st(tmp_path("wide.safetensors"),
           "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
           "\"bf\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[4,6]},"
           "\"f\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[6,14]}}", d, sizeof d);
  const char *json =
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[2]}],\"outputs\":[\"y\"],\"nodes\":["
      "{\"op\":\"Add\",\"inputs\":[\"x\",\"h\"],\"outputs\":[\"a\"]},"
      "{\"op\":\"Mul\",\"inputs\":[\"a\",\"bf\"],\"outputs\":[\"b\"]},"
      "{\"op\":\"Add\",\"inputs\":[\"b\",\"f\"],\"outputs\":[\"y\"]}],"
      "\"weights\":\"wide.safetensors\"}";
  lm_graph *g = NULL;
  char err[512];
  if (lm_graph_json_load(json, strlen(json), tmpdir, &g, err, sizeof err) < 0) {
    TAP_FAIL("%s", err);
    return;
  }
  const lm_gvalue *vh = value(g, "h"), *vb = value(g, "bf"), *vf = value(g, "f");
  CHECK(vh && vh->dt == LM_F32 && vh->nbytes == 8);
  CHECK(vb && vb->dt == LM_F32 && vf && vf->dt == LM_F32);
  if (vh && vh->data) {
    CHECK_NEAR(((const float *)vh->data)[0], 1.5, 0);
    CHECK_NEAR(((const float *)vh->data)[1], -2, 0);
  }
  if (vb && vb->data) CHECK_NEAR(((const float *)vb->data)[0], 1.5, 0);
  if (vf && vf->data) CHECK_NEAR(((const float *)vf->data)[0], -0.25, 0);
  lm_graph_free(g);
  unlink(tmp_path("wide.safetensors"));
}

static void expect_json_error(const char *json, const char *w1, const char *w2)
{
  lm_graph *g = NULL;
  char err[512] = "";
  int rc = lm_graph_json_load(json, strlen(json), tmpdir, &g, err, sizeof err);
  CHECK(rc < 0);
  CHECK(g == NULL);
  CHECK_CONTAINS(err, "graph JSON");
  if (w1) CHECK_CONTAINS(err, w1);
  if (w2) CHECK_CONTAINS(err, w2);
  if (g) lm_graph_free(g);
}

static void test_graph_json_errors(void)
{
  expect_json_error("{\"inputs\":[{\"name\":\"x\"}],\n\"nodes\":[,]}", "invalid JSON", "line 2");
  expect_json_error("{\"nodes\":[],\"outputs\":[\"x\"]}", "'inputs'", NULL);
  expect_json_error("{\"inputs\":[{\"name\":\"x\"}],\"nodes\":[{\"inputs\":[\"x\"],"
                    "\"outputs\":[\"y\"]}],\"outputs\":[\"y\"]}", "nodes[0]", "'op'");
  expect_json_error("{\"inputs\":[{\"name\":\"x\"}],\"nodes\":[{\"op\":\"Add\",\"name\":\"a\","
                    "\"inputs\":[\"x\",\"nope\"],\"outputs\":[\"y\"]}],\"outputs\":[\"y\"]}",
                    "('a')", "'nope'");
  expect_json_error("{\"inputs\":[{\"name\":\"x\"}],\"nodes\":[{\"op\":\"Relu\","
                    "\"inputs\":[\"x\"],\"outputs\":[\"y\"]}],\"outputs\":[\"z\"]}",
                    "outputs[0]", "'z'");
  expect_json_error("{\"inputs\":[{\"name\":\"x\"}],\"nodes\":[{\"op\":\"Relu\","
                    "\"inputs\":[\"x\"],\"outputs\":[\"y\"]},{\"op\":\"Relu\","
                    "\"inputs\":[\"x\"],\"outputs\":[\"y\"]}],\"outputs\":[\"y\"]}",
                    "nodes[1]", "already");
  expect_json_error("{\"inputs\":[{\"name\":\"x\"}],\"nodes\":[{\"op\":\"Conv\","
                    "\"inputs\":[\"x\"],\"outputs\":[\"y\"],\"attrs\":{\"group\":1.5}}],"
                    "\"outputs\":[\"y\"]}", "'group'", "integer");
  expect_json_error("{\"inputs\":[{\"name\":\"x\"}],\"nodes\":[{\"op\":\"Mul\","
                    "\"inputs\":[\"x\",\"w\"],\"outputs\":[\"y\"]}],\"outputs\":[\"y\"],"
                    "\"weights\":\"nothere.safetensors\"}", "nothere.safetensors", "weights");
  expect_json_error("{\"inputs\":[{\"name\":\"x\"}],\"nodes\":[{\"op\":\"Mul\","
                    "\"inputs\":[\"x\",\"w\"],\"outputs\":[\"y\"]}],\"outputs\":[\"y\"],"
                    "\"weights\":[{\"name\":\"w\",\"shape\":[2],\"data\":[1]}]}", "weights[0]",
                    "'shape'");
  expect_json_error("{\"inputs\":[{\"name\":\"x\",\"dtype\":\"float99\"}],\"nodes\":[],"
                    "\"outputs\":[\"x\"]}", "inputs[0]", "'dtype'");
}

/* ---- TensorFlow.js layers --------------------------------------------------- */

static lm_graph *load_tfjs(const char *rel)
{
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/models/%s/model.json", data_dir, rel);
  lm_graph *g = NULL;
  if (lm_tfjs_load(path, &g, err, sizeof err) < 0) TAP_FAIL("%s", err);
  return g;
}

static void test_tfjs_model5(void)
{
  lm_graph *g = load_tfjs("model5_gw_ae");
  if (!g) return;
  CHECK_INT(g->ninputs, 1);
  CHECK_INT(g->noutputs, 1);
  const lm_gvalue *in = &g->values[g->inputs[0]];
  CHECK_STR(in->name, "input");
  CHECK_INT(in->ndim, 5);
  CHECK_INT(in->shape[0], -1);   /* batch null */
  CHECK_INT(in->shape[1], 1);    /* channels moved first */
  CHECK_INT(in->shape[2], 256);
  CHECK_INT(count_op(g, "Conv"), 10);
  CHECK_INT(count_op(g, "Relu"), 9);
  CHECK_INT(g->nnodes, 19);
  /* the fifth conv: dilation 16, 'same' -> pads 16 on each side */
  const lm_gnode *c4 = nth_op(g, "Conv", 4);
  CHECK(ints_are(c4, "dilations", 3, (const int64_t[]){16, 16, 16}));
  CHECK(ints_are(c4, "pads", 6, (const int64_t[]){16, 16, 16, 16, 16, 16}));
  CHECK(ints_are(c4, "kernel_shape", 3, (const int64_t[]){3, 3, 3}));
  const lm_gnode *last = nth_op(g, "Conv", 9);
  CHECK(ints_are(last, "pads", 6, (const int64_t[]){0, 0, 0, 0, 0, 0}));
  CHECK_INT(last->out[0], g->outputs[0]);
  /* kernel "21/kernel" [3,3,3,1,5] -> [5,1,3,3,3]; tfjs k[1,2,0,0,3] is
  ** ONNX-order w[3,0,1,2,0] = 0.05405023321509361 */
  const lm_gvalue *w = value(g, "21/kernel");
  CHECK(w && w->data && w->ndim == 5 && w->shape[0] == 5 && w->shape[1] == 1);
  if (w && w->data) CHECK_NEAR(((const float *)w->data)[3 * 27 + 1 * 9 + 2 * 3], 0.05405023321509361, 0);
  const lm_gvalue *b = value(g, "output/bias");
  CHECK(b && b->data && b->shape[0] == 3);
  if (b && b->data) CHECK_NEAR(((const float *)b->data)[1], -2.3238883018493652, 1e-7);
  lm_graph_free(g);
}

static void test_tfjs_mindgrab(void)
{
  lm_graph *g = load_tfjs("mindgrab");
  if (!g) return;
  CHECK_INT(count_op(g, "Conv"), 26);
  CHECK_INT(count_op(g, "InstanceNormalization"), 25);
  CHECK_INT(count_op(g, "Gelu"), 25);
  const lm_gnode *c0 = nth_op(g, "Conv", 0);
  CHECK_INT(c0->nin, 2);   /* use_bias false */
  CHECK(ints_are(c0, "dilations", 3, (const int64_t[]){16, 16, 16}));
  const lm_gnode *in0 = nth_op(g, "InstanceNormalization", 0);
  CHECK_INT(in0->in[0], c0->out[0]);   /* conv -> instance norm -> gelu */
  CHECK_NEAR(lm_gnode_attr_float(in0, "epsilon", 0), 1e-5, 1e-12);
  const lm_gvalue *sc = &g->values[in0->in[1]];
  CHECK(sc->data && sc->shape[0] == 15 && ((const float *)sc->data)[14] == 1.0f);
  const lm_gnode *ge = nth_op(g, "Gelu", 0);
  CHECK_INT(ge->in[0], in0->out[0]);
  CHECK_STR(lm_gnode_attr_string(ge, "approximate", ""), "none");
  /* conv3d_0_gn/kernel [3,3,3,1,15]: tfjs k[2,1,0,0,7] = ONNX w[7,0,2,1,0] */
  const lm_gvalue *w = value(g, "conv3d_0_gn/kernel");
  CHECK(w && w->data && w->shape[0] == 15);
  if (w && w->data) CHECK_NEAR(((const float *)w->data)[7 * 27 + 2 * 9 + 1 * 3], 0.018426015973091125, 0);
  const lm_gnode *out = nth_op(g, "Conv", 25);
  CHECK_INT(out->nin, 3);
  CHECK_INT(g->values[out->in[1]].shape[0], 2);
  CHECK_INT(out->out[0], g->outputs[0]);
  lm_graph_free(g);
}

static void test_tfjs_others(void)
{
  lm_graph *g = load_tfjs("model30chan18cls");
  if (g) {
    CHECK_INT(count_op(g, "Conv"), 10);
    CHECK_INT(count_op(g, "Elu"), 9);
    CHECK_NEAR(lm_gnode_attr_float(nth_op(g, "Elu", 0), "alpha", 0), 1.0, 0);
    const lm_gvalue *w = value(g, "conv3d_0/kernel");
    if (w && w->data) CHECK_NEAR(((const float *)w->data)[7 * 27 + 2 * 9 + 1 * 3], -0.4724438190460205, 0);
    const lm_gvalue *b = value(g, "output/bias");
    CHECK(b && b->data && b->shape[0] == 18);
    if (b && b->data) CHECK_NEAR(((const float *)b->data)[1], 0.38426336646080017, 0);
    lm_graph_free(g);
  }
  g = load_tfjs("model21_104class");
  if (g) {
    CHECK_INT(count_op(g, "Conv"), 9);
    CHECK_INT(count_op(g, "Relu"), 8);
    const lm_gvalue *b = value(g, "output/bias");
    CHECK(b && b->data && b->shape[0] == 104);
    if (b && b->data) CHECK_NEAR(((const float *)b->data)[1], -0.22853541374206543, 0);
    const lm_gvalue *w = value(g, "19/kernel");
    if (w && w->data) CHECK_NEAR(((const float *)w->data)[7 * 27 + 2 * 9 + 1 * 3], 0.25854718685150146, 0);
    lm_graph_free(g);
  }
}

/* A synthetic functional model: Conv3D (stride 2, same), BatchNorm,
** MaxPooling3D, UpSampling3D, Conv3DTranspose, Concatenate, Add, with a
** uint8-quantized kernel and a float16-quantized bias. */
static const char synth_json[] =
    "{\"format\":\"layers-model\",\"modelTopology\":{\"model_config\":{\"class_name\":\"Functional\","
    "\"config\":{\"name\":\"m\",\"layers\":["
    "{\"class_name\":\"InputLayer\",\"name\":\"in\",\"config\":{\"name\":\"in\","
    "\"batch_input_shape\":[null,8,8,8,2],\"dtype\":\"float32\"},\"inbound_nodes\":[]},"
    "{\"class_name\":\"Conv3D\",\"name\":\"c\",\"config\":{\"name\":\"c\",\"filters\":2,"
    "\"kernel_size\":[1,1,1],\"strides\":[2,2,2],\"padding\":\"same\",\"use_bias\":true,"
    "\"activation\":\"relu6\"},\"inbound_nodes\":[[[\"in\",0,0,{}]]]},"
    "{\"class_name\":\"BatchNormalization\",\"name\":\"bn\",\"config\":{\"name\":\"bn\","
    "\"axis\":-1,\"epsilon\":0.01,\"center\":false},\"inbound_nodes\":[[[\"c\",0,0,{}]]]},"
    "{\"class_name\":\"MaxPooling3D\",\"name\":\"mp\",\"config\":{\"name\":\"mp\","
    "\"pool_size\":[2,2,2],\"padding\":\"valid\",\"strides\":null},"
    "\"inbound_nodes\":[[[\"bn\",0,0,{}]]]},"
    "{\"class_name\":\"UpSampling3D\",\"name\":\"up\",\"config\":{\"name\":\"up\",\"size\":[2,2,2]},"
    "\"inbound_nodes\":[[[\"mp\",0,0,{}]]]},"
    "{\"class_name\":\"Conv3DTranspose\",\"name\":\"ct\",\"config\":{\"name\":\"ct\",\"filters\":1,"
    "\"kernel_size\":3,\"strides\":2,\"padding\":\"same\",\"use_bias\":false},"
    "\"inbound_nodes\":[[[\"up\",0,0,{}]]]},"
    "{\"class_name\":\"Concatenate\",\"name\":\"cat\",\"config\":{\"name\":\"cat\",\"axis\":-1},"
    "\"inbound_nodes\":[[[\"ct\",0,0,{}],[\"in\",0,0,{}]]]},"
    "{\"class_name\":\"Add\",\"name\":\"add\",\"config\":{\"name\":\"add\"},"
    "\"inbound_nodes\":[[[\"cat\",0,0,{}],[\"cat\",0,0,{}]]]}],"
    "\"input_layers\":[[\"in\",0,0]],\"output_layers\":[[\"add\",0,0]]}}},"
    "\"weightsManifest\":[{\"paths\":[\"a.bin\",\"b.bin\"],\"weights\":["
    "{\"name\":\"c/kernel\",\"shape\":[1,1,1,2,2],\"dtype\":\"float32\","
    "\"quantization\":{\"dtype\":\"uint8\",\"scale\":0.5,\"min\":-1}},"
    "{\"name\":\"c/bias\",\"shape\":[2],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"float16\"}},"
    "{\"name\":\"bn/gamma\",\"shape\":[2],\"dtype\":\"float32\"},"
    "{\"name\":\"bn/moving_mean\",\"shape\":[2],\"dtype\":\"float32\"},"
    "{\"name\":\"bn/moving_variance\",\"shape\":[2],\"dtype\":\"float32\"},"
    "{\"name\":\"ct/kernel\",\"shape\":[3,3,3,1,2],\"dtype\":\"float32\"}]}]}";

static size_t synth_weights(unsigned char *b)
{
  size_t o = 0;
  unsigned char q[4] = {0, 1, 2, 10};   /* -> -1, -0.5, 0, 4: [in][out] */
  memcpy(b, q, 4);
  o = 4;
  uint16_t h[2] = {0x3c00, 0xc100};     /* float16 1.0, -2.5 */
  memcpy(b + o, h, 4);
  o += 4;
  float f[6] = {2, 3, 0.5f, -0.5f, 4, 9};
  memcpy(b + o, f, 24);
  o += 24;
  float k[54];
  for (int i = 0; i < 54; i++) k[i] = (float)i;   /* [kd,kh,kw,out=1,in=2] */
  memcpy(b + o, k, sizeof k);
  return o + sizeof k;
}

static void test_tfjs_synthetic(void)
{
  unsigned char b[300];
  size_t n = synth_weights(b);
  write_file(tmp_path("model.json"), synth_json, strlen(synth_json));
  write_file(tmp_path("a.bin"), b, 10);          /* shards split mid-weight */
  write_file(tmp_path("b.bin"), b + 10, n - 10);
  lm_graph *g = NULL;
  char err[512];
  if (lm_tfjs_load(tmp_path("model.json"), &g, err, sizeof err) < 0) {
    TAP_FAIL("%s", err);
    return;
  }
  const lm_gnode *conv = nth_op(g, "Conv", 0);
  CHECK_STR(lm_gnode_attr_string(conv, "auto_pad", ""), "SAME_UPPER");   /* stride 2 */
  const lm_gvalue *w = &g->values[conv->in[1]];
  /* tfjs [1,1,1,in,out] = [[-1,-0.5],[0,4]] -> ONNX [out,in,1,1,1] */
  CHECK(w->data && w->shape[0] == 2 && w->shape[1] == 2);
  if (w->data) {
    const float *f = w->data;
    CHECK_NEAR(f[0], -1, 0);    /* out 0, in 0 */
    CHECK_NEAR(f[1], 0, 0);     /* out 0, in 1 */
    CHECK_NEAR(f[2], -0.5, 0);  /* out 1, in 0 */
    CHECK_NEAR(f[3], 4, 0);
  }
  const lm_gvalue *bias = &g->values[conv->in[2]];
  if (bias->data) CHECK_NEAR(((const float *)bias->data)[1], -2.5, 0);
  CHECK_INT(count_op(g, "Clip"), 1);   /* relu6 */
  const lm_gnode *bn = nth_op(g, "BatchNormalization", 0);
  CHECK(bn != NULL);
  if (bn) {
    CHECK_NEAR(lm_gnode_attr_float(bn, "epsilon", 0), 0.01, 1e-12);
    const lm_gvalue *beta = &g->values[bn->in[2]];   /* center false: zeros */
    CHECK(beta->data && ((const float *)beta->data)[1] == 0.0f);
    CHECK_NEAR(((const float *)g->values[bn->in[4]].data)[1], 9, 0);
  }
  const lm_gnode *mp = nth_op(g, "MaxPool", 0);
  CHECK(ints_are(mp, "strides", 3, (const int64_t[]){2, 2, 2}));
  const lm_gnode *rs = nth_op(g, "Resize", 0);
  CHECK_STR(lm_gnode_attr_string(rs, "coordinate_transformation_mode", ""), "asymmetric");
  CHECK_NEAR(((const float *)g->values[rs->in[2]].data)[4], 2, 0);
  const lm_gnode *ct = nth_op(g, "ConvTranspose", 0);
  /* k3 s2 same: T = 3 - 2 = 1 -> pads (0, 1), output_padding 0 */
  CHECK(ints_are(ct, "pads", 6, (const int64_t[]){0, 0, 0, 1, 1, 1}));
  CHECK(ints_are(ct, "output_padding", 3, (const int64_t[]){0, 0, 0}));
  const lm_gvalue *ck = &g->values[ct->in[1]];
  /* tfjs [3,3,3,out=1,in=2] -> ONNX [in=2,out=1,3,3,3]: w[1,0,0,0,1] = k[0,0,1,0,1] = 3 */
  CHECK(ck->data && ck->shape[0] == 2 && ck->shape[1] == 1);
  if (ck->data) CHECK_NEAR(((const float *)ck->data)[27 + 1], 3, 0);
  const lm_gnode *cat = nth_op(g, "Concat", 0);
  CHECK_INT(lm_gnode_attr_int(cat, "axis", -9), 1);
  CHECK_INT(count_op(g, "Add"), 1);
  CHECK_INT(nth_op(g, "Add", 0)->out[0], g->outputs[0]);
  lm_graph_free(g);

  /* a truncated shard: the error names the weight */
  write_file(tmp_path("b.bin"), b + 10, n - 20);
  g = NULL;
  CHECK(lm_tfjs_load(tmp_path("model.json"), &g, err, sizeof err) < 0);
  CHECK(g == NULL);
  CHECK_CONTAINS(err, "model.json");
  CHECK_CONTAINS(err, "ct/kernel");
  CHECK_CONTAINS(err, "truncated");
  write_file(tmp_path("b.bin"), b + 10, n - 10);
}

/* Keras 3 inbound nodes ({"args": [keras tensors]}), a single output
** triple, and a Sequential model whose first layer declares the input. */
static void test_tfjs_keras3_and_sequential(void)
{
  const char *k3 =
      "{\"modelTopology\":{\"class_name\":\"Functional\",\"config\":{\"layers\":["
      "{\"class_name\":\"InputLayer\",\"name\":\"in\",\"config\":{\"name\":\"in\","
      "\"batch_shape\":[null,4,5,6,1]},\"inbound_nodes\":[]},"
      "{\"class_name\":\"Conv3D\",\"name\":\"c_gn\",\"config\":{\"name\":\"c_gn\",\"filters\":2,"
      "\"kernel_size\":[1,1,1],\"padding\":\"valid\",\"use_bias\":false,\"activation\":\"linear\"},"
      "\"inbound_nodes\":[{\"args\":[{\"class_name\":\"__keras_tensor__\",\"config\":{\"shape\":"
      "[null,4,5,6,1],\"keras_history\":[\"in\",0,0]}}],\"kwargs\":{}}]},"
      "{\"class_name\":\"LeakyReLU\",\"name\":\"lr\",\"config\":{\"name\":\"lr\",\"negative_slope\":0.2},"
      "\"inbound_nodes\":[{\"args\":[{\"class_name\":\"__keras_tensor__\",\"config\":"
      "{\"keras_history\":[\"c_gn\",0,0]}}],\"kwargs\":{}}]},"
      "{\"class_name\":\"Concatenate\",\"name\":\"cat\",\"config\":{\"name\":\"cat\",\"axis\":4},"
      "\"inbound_nodes\":[{\"args\":[[{\"class_name\":\"__keras_tensor__\",\"config\":"
      "{\"keras_history\":[\"lr\",0,0]}},{\"class_name\":\"__keras_tensor__\",\"config\":"
      "{\"keras_history\":[\"in\",0,0]}}]],\"kwargs\":{}}]}],"
      "\"input_layers\":[\"in\",0,0],\"output_layers\":[\"cat\",0,0]}},"
      "\"weightsManifest\":[{\"paths\":[\"k.bin\"],\"weights\":[{\"name\":\"c_gn/kernel\","
      "\"shape\":[1,1,1,1,2],\"dtype\":\"float32\"}]}]}";
  float k[2] = {0.5f, -2};
  write_file(tmp_path("k.bin"), k, sizeof k);
  write_file(tmp_path("k3.json"), k3, strlen(k3));
  lm_graph *g = NULL;
  char err[512];
  if (lm_tfjs_load(tmp_path("k3.json"), &g, err, sizeof err) < 0) {
    TAP_FAIL("%s", err);
  } else {
    CHECK_INT(g->ninputs, 1);
    const lm_gvalue *in = &g->values[g->inputs[0]];
    CHECK(in->ndim == 5 && in->shape[1] == 1 && in->shape[2] == 4 && in->shape[4] == 6);
    const lm_gnode *norm = nth_op(g, "InstanceNormalization", 0);
    CHECK(norm && norm->in[0] == nth_op(g, "Conv", 0)->out[0]);
    const lm_gnode *lr = nth_op(g, "LeakyRelu", 0);
    CHECK(lr && norm && lr->in[0] == norm->out[0]);
    CHECK_NEAR(lm_gnode_attr_float(lr, "alpha", 0), 0.2, 1e-12);
    const lm_gnode *cat = nth_op(g, "Concat", 0);
    CHECK(cat && cat->nin == 2 && cat->in[1] == g->inputs[0]);
    CHECK_INT(lm_gnode_attr_int(cat, "axis", -9), 1);   /* Keras axis 4 of 5 = channels */
    CHECK_INT(g->noutputs, 1);
    lm_graph_free(g);
  }
  /* a shared layer: conv "c" called twice (inbound nodes 0 and 1) */
  const char *shared =
      "{\"modelTopology\":{\"class_name\":\"Model\",\"config\":{\"layers\":["
      "{\"class_name\":\"InputLayer\",\"name\":\"in\",\"config\":{\"name\":\"in\","
      "\"batch_input_shape\":[null,3,3,3,1]},\"inbound_nodes\":[]},"
      "{\"class_name\":\"ReLU\",\"name\":\"r\",\"config\":{\"name\":\"r\"},"
      "\"inbound_nodes\":[[[\"c\",0,0,{}]]]},"
      "{\"class_name\":\"Conv3D\",\"name\":\"c\",\"config\":{\"name\":\"c\",\"filters\":1,"
      "\"kernel_size\":1,\"use_bias\":false},"
      "\"inbound_nodes\":[[[\"in\",0,0,{}]],[[\"r\",0,0,{}]]]}],"
      "\"input_layers\":[[\"in\",0,0]],\"output_layers\":[[\"c\",1,0]]}},"
      "\"weightsManifest\":[{\"paths\":[\"k.bin\"],\"weights\":[{\"name\":\"c/kernel\","
      "\"shape\":[1,1,1,1,1],\"dtype\":\"float32\"}]}]}";
  write_file(tmp_path("k.bin"), k, 4);
  write_file(tmp_path("k3.json"), shared, strlen(shared));
  g = NULL;
  if (lm_tfjs_load(tmp_path("k3.json"), &g, err, sizeof err) < 0) {
    TAP_FAIL("%s", err);
  } else {
    CHECK_INT(count_op(g, "Conv"), 2);
    const lm_gnode *c0 = nth_op(g, "Conv", 0), *c1 = nth_op(g, "Conv", 1);
    CHECK(c0->in[0] == g->inputs[0]);
    CHECK(c1->in[0] == nth_op(g, "Relu", 0)->out[0]);
    /* both calls read the kernel (a constant each, equal) */
    CHECK(g->values[c1->in[1]].data && ((const float *)g->values[c1->in[1]].data)[0] == 0.5f);
    CHECK_INT(g->outputs[0], c1->out[0]);
    CHECK(value(g, "c:1") != NULL);
    lm_graph_free(g);
  }
  const char *seq =
      "{\"modelTopology\":{\"keras_version\":\"2.x\",\"model_config\":{\"class_name\":\"Sequential\","
      "\"config\":{\"name\":\"s\",\"layers\":[{\"class_name\":\"Conv2D\",\"config\":{\"name\":\"c\","
      "\"batch_input_shape\":[null,5,5,1],\"filters\":1,\"kernel_size\":[2,2],\"padding\":\"same\","
      "\"use_bias\":false,\"activation\":\"softmax\"}},{\"class_name\":\"Dropout\",\"config\":"
      "{\"name\":\"d\",\"rate\":0.5}}]}}},\"weightsManifest\":[{\"paths\":[\"k.bin\"],"
      "\"weights\":[{\"name\":\"c/kernel\",\"shape\":[2,2,1,1],\"dtype\":\"float32\","
      "\"quantization\":{\"dtype\":\"uint16\",\"scale\":0.25,\"min\":-1}}]}]}";
  uint16_t k4[4] = {0, 1, 2, 65535};   /* -> -1, -0.75, -0.5, 16382.75 */
  write_file(tmp_path("k.bin"), k4, sizeof k4);
  write_file(tmp_path("k3.json"), seq, strlen(seq));
  g = NULL;
  if (lm_tfjs_load(tmp_path("k3.json"), &g, err, sizeof err) < 0) {
    TAP_FAIL("%s", err);
    return;
  }
  CHECK_STR(g->values[g->inputs[0]].name, "input");
  CHECK_INT(g->values[g->inputs[0]].ndim, 4);
  const lm_gnode *conv = nth_op(g, "Conv", 0);
  /* k2 'same' stride 1: TF pads 0 before, 1 after */
  CHECK(ints_are(conv, "pads", 4, (const int64_t[]){0, 0, 1, 1}));
  const lm_gvalue *kw = &g->values[conv->in[1]];
  CHECK(kw->data && kw->ndim == 4 && kw->shape[2] == 2);
  if (kw->data) {
    CHECK_NEAR(((const float *)kw->data)[1], -0.75, 0);
    CHECK_NEAR(((const float *)kw->data)[3], 16382.75, 0);
  }
  const lm_gnode *sm = nth_op(g, "Softmax", 0);
  CHECK_INT(lm_gnode_attr_int(sm, "axis", -9), 1);
  CHECK_INT(g->outputs[0], sm->out[0]);   /* Dropout is the identity */
  lm_graph_free(g);
}

static float *run_plan(lm_graph *g, int nd, const int64_t *shape, const float *in,
                       int64_t *oshape);

/* LayerNormalization (Keras: across the channels of each pixel) goes
** channels last and back around ONNX LayerNormalization; checked by value
** through a plan against the formula, with ReLU(max_value) and ELU layers. */
static void test_tfjs_layer_norm_values(void)
{
  const char *seq =
      "{\"modelTopology\":{\"class_name\":\"Sequential\",\"config\":{\"layers\":["
      "{\"class_name\":\"InputLayer\",\"config\":{\"name\":\"x\",\"batch_input_shape\":[null,2,3,4]}},"
      "{\"class_name\":\"LayerNormalization\",\"config\":{\"name\":\"ln\",\"axis\":[3],"
      "\"epsilon\":0.001}},"
      "{\"class_name\":\"ELU\",\"config\":{\"name\":\"elu\",\"alpha\":0.5}},"
      "{\"class_name\":\"ReLU\",\"config\":{\"name\":\"r6\",\"max_value\":0.75}}]}},"
      "\"weightsManifest\":[{\"paths\":[\"k.bin\"],\"weights\":["
      "{\"name\":\"ln/gamma\",\"shape\":[4],\"dtype\":\"float32\"},"
      "{\"name\":\"ln/beta\",\"shape\":[4],\"dtype\":\"float32\"}]}]}";
  float wb[8] = {1, 2, 0.5f, -1, 0, 0.25f, -0.5f, 0.1f};
  write_file(tmp_path("k.bin"), wb, sizeof wb);
  write_file(tmp_path("k3.json"), seq, strlen(seq));
  lm_graph *g = NULL;
  char err[512];
  if (lm_tfjs_load(tmp_path("k3.json"), &g, err, sizeof err) < 0) {
    TAP_FAIL("%s", err);
    return;
  }
  CHECK_INT(count_op(g, "Transpose"), 2);
  CHECK_INT(count_op(g, "LayerNormalization"), 1);
  CHECK_INT(count_op(g, "Clip"), 1);
  /* x: channels first [1, 4, 2, 3] */
  float x[24];
  for (int i = 0; i < 24; i++) x[i] = (float)((i * 7) % 11) / 3.0f - 1.5f;
  int64_t os[LM_MAX_DIMS];
  float *y = run_plan(g, 4, (const int64_t[]){1, 4, 2, 3}, x, os);
  if (y) {
    CHECK(os[1] == 4 && os[2] == 2 && os[3] == 3);
    int bad = 0;
    for (int p = 0; p < 6; p++) {
      double m = 0, v = 0;
      for (int c = 0; c < 4; c++) m += x[c * 6 + p] / 4.0;
      for (int c = 0; c < 4; c++) v += (x[c * 6 + p] - m) * (x[c * 6 + p] - m) / 4.0;
      for (int c = 0; c < 4; c++) {
        double t = (x[c * 6 + p] - m) / sqrt(v + 1e-3) * wb[c] + wb[4 + c];
        t = t > 0 ? t : 0.5 * expm1(t);          /* ELU alpha 0.5 */
        t = t < 0 ? 0 : t > 0.75 ? 0.75 : t;     /* ReLU max_value 0.75 */
        bad += fabs(y[c * 6 + p] - t) > 1e-5;
      }
    }
    CHECK_INT(bad, 0);
    free(y);
  }
  lm_graph_free(g);
}

static void expect_tfjs_error(const char *json, const char *w1, const char *w2)
{
  write_file(tmp_path("bad.json"), json, strlen(json));
  lm_graph *g = NULL;
  char err[512] = "";
  CHECK(lm_tfjs_load(tmp_path("bad.json"), &g, err, sizeof err) < 0);
  CHECK(g == NULL);
  CHECK_CONTAINS(err, "bad.json");
  if (w1) CHECK_CONTAINS(err, w1);
  if (w2) CHECK_CONTAINS(err, w2);
}

static void test_tfjs_errors(void)
{
  expect_tfjs_error("{\"modelTopology\": {", "invalid JSON", NULL);
  expect_tfjs_error("{\"weightsManifest\": []}", "modelTopology", NULL);
  const char *dense =
      "{\"modelTopology\":{\"class_name\":\"Sequential\",\"config\":{\"layers\":["
      "{\"class_name\":\"InputLayer\",\"config\":{\"name\":\"x\",\"batch_input_shape\":[null,4,4,4,1]}},"
      "{\"class_name\":\"Dense\",\"config\":{\"name\":\"fc\",\"units\":3}}]}},\"weightsManifest\":[]}";
  expect_tfjs_error(dense, "layer 'fc' (Dense)", "not supported");
  const char *nokernel =
      "{\"modelTopology\":{\"class_name\":\"Sequential\",\"config\":{\"layers\":["
      "{\"class_name\":\"Conv3D\",\"config\":{\"name\":\"cv\",\"filters\":2,\"kernel_size\":3,"
      "\"batch_input_shape\":[null,4,4,4,1]}}]}},\"weightsManifest\":[]}";
  expect_tfjs_error(nokernel, "layer 'cv' (Conv3D)", "'kernel'");
  /* found by fuzz_model_formats: a huge number cast to an integer */
  const char *huge =
      "{\"modelTopology\":{\"class_name\":\"Sequential\",\"config\":{\"layers\":["
      "{\"class_name\":\"Conv3D\",\"config\":{\"name\":\"cv\",\"filters\":2e121,\"kernel_size\":"
      "1e300,\"batch_input_shape\":[null,4e200,4,4,1]}}]}},\"weightsManifest\":[]}";
  expect_tfjs_error(huge, "layer 'cv' (Conv3D)", "kernel_size");
  const char *badshard =
      "{\"modelTopology\":{\"class_name\":\"Sequential\",\"config\":{\"layers\":[]}},"
      "\"weightsManifest\":[{\"paths\":[\"none.bin\"],\"weights\":[]}]}";
  expect_tfjs_error(badshard, "none.bin", NULL);
  const char *badq =
      "{\"modelTopology\":{\"class_name\":\"Sequential\",\"config\":{\"layers\":[]}},"
      "\"weightsManifest\":[{\"paths\":[\"a.bin\"],\"weights\":[{\"name\":\"w\",\"shape\":[1],"
      "\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"int4\",\"scale\":1,\"min\":0}}]}]}";
  expect_tfjs_error(badq, "weightsManifest[0].weights[0]", "'int4'");
}

/* ---- garbled files ------------------------------------------------------- */

static uint32_t lcg(uint32_t *r)
{
  *r = *r * 1664525u + 1013904223u;
  return *r >> 8;
}

/* Copy src, then flip a few bytes to random values or cut the copy short. */
static size_t garble(unsigned char *dst, const unsigned char *src, size_t n, uint32_t *r)
{
  memcpy(dst, src, n);
  if (lcg(r) % 3 == 0) return lcg(r) % n;
  int flips = 1 + (int)(lcg(r) % 4);
  for (int i = 0; i < flips; i++) {
    size_t at = lcg(r) % n;
    /* half the time a JSON-relevant character, so the parser gets past
    ** the first byte and the loaders see odd structures */
    static const char pick[] = "{}[]\",:0-9e.ab \\";
    dst[at] = lcg(r) % 2 ? (unsigned char)lcg(r) : (unsigned char)pick[lcg(r) % (sizeof pick - 1)];
  }
  return n;
}

/* Random damage to each format must give a result or an error naming the
** file, never a crash or a leak (the suite runs under ASan and valgrind). */
static void test_garbled_files(void)
{
  uint32_t r = 2026;
  unsigned char d[56], good[8 + sizeof st_header + 56], bad[sizeof good];
  size_t dn = st_data(d), hl = strlen(st_header);
  for (int i = 0; i < 8; i++) good[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(good + 8, st_header, hl);
  memcpy(good + 8 + hl, d, dn);
  size_t gn = 8 + hl + dn;
  int opened = 0, failed = 0;
  for (int it = 0; it < 300; it++) {
    size_t n = garble(bad, good, gn, &r);
    write_file(tmp_path("g.safetensors"), bad, n);
    lm_safetensors *s = NULL;
    char err[512] = "";
    if (lm_safetensors_open(tmp_path("g.safetensors"), &s, err, sizeof err) == LM_OK) {
      opened++;
      for (int k = 0; k < lm_safetensors_count(s); k++) {
        size_t nb;
        const void *p;
        lm_safetensors_at(s, k, NULL, NULL, NULL, &p, &nb);
        volatile unsigned char sum = 0;   /* every byte claimed must be readable */
        for (size_t b = 0; b < nb; b++) sum ^= ((const unsigned char *)p)[b];
      }
      lm_safetensors_close(s);
    } else {
      failed++;
      if (!strstr(err, "g.safetensors")) TAP_FAIL("message without the file: %s", err);
    }
  }
  CHECK(opened > 0 && failed > 0);
  /* graph JSON: the synthetic graph's text */
  const char *js =
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2]}],\"outputs\":[\"y\"],\"nodes\":["
      "{\"op\":\"Mul\",\"inputs\":[\"x\",\"k\"],\"outputs\":[\"h\"],\"attrs\":{\"axis\":1,"
      "\"pads\":[1,2],\"mode\":\"a\",\"t\":{\"data\":[1,2],\"shape\":[2]}}},"
      "{\"op\":\"Relu\",\"inputs\":[\"h\"],\"outputs\":[\"y\"]}],"
      "\"weights\":[{\"name\":\"k\",\"shape\":[2],\"data\":[3,4]}]}";
  size_t jn = strlen(js);
  for (int it = 0; it < 300; it++) {
    size_t n = garble(bad, (const unsigned char *)js, jn, &r);
    lm_graph *g = NULL;
    char err[512] = "";
    if (lm_graph_json_load((const char *)bad, n, tmpdir, &g, err, sizeof err) == LM_OK)
      lm_graph_free(g);
    else if (!strstr(err, "graph JSON"))
      TAP_FAIL("message without the source: %s", err);
  }
  /* tfjs: the synthetic functional model.json with its shards in place */
  unsigned char b[300];
  size_t wn = synth_weights(b);
  write_file(tmp_path("a.bin"), b, 10);
  write_file(tmp_path("b.bin"), b + 10, wn - 10);
  size_t mn = strlen(synth_json);
  unsigned char *mb = malloc(mn);
  for (int it = 0; it < 200; it++) {
    size_t n = garble(mb, (const unsigned char *)synth_json, mn, &r);
    write_file(tmp_path("model.json"), mb, n);
    lm_graph *g = NULL;
    char err[512] = "";
    if (lm_tfjs_load(tmp_path("model.json"), &g, err, sizeof err) == LM_OK)
      lm_graph_free(g);
    else if (!strstr(err, "model.json"))
      TAP_FAIL("message without the file: %s", err);
  }
  free(mb);
  unlink(tmp_path("g.safetensors"));
}

/* ---- the three copies of model5 --------------------------------------------- */

static void test_model5_copies_same_weights(void)
{
  char path[512], err[512];
  lm_graph *tf = load_tfjs("model5_gw_ae");
  lm_safetensors *st = NULL;
  lm_graph *ox = NULL;
  snprintf(path, sizeof path, "%s/models/model5_gw_ae/model5_gw_ae.safetensors", data_dir);
  if (lm_safetensors_open(path, &st, err, sizeof err) < 0) TAP_FAIL("%s", err);
  snprintf(path, sizeof path, "%s/models/model5_gw_ae/model5_gw_ae.onnx", data_dir);
  if (lm_onnx_load(path, &ox, err, sizeof err) < 0) TAP_FAIL("%s", err);
  if (!tf || !st || !ox) goto done;
  /* Conv i of each copy, in order; the tfjs and ONNX graphs are plain
  ** chains, and safetensors keys are model.{2i}.weight/bias. */
  for (int i = 0; i < 10; i++) {
    const lm_gnode *ct = nth_op(tf, "Conv", i), *co = nth_op(ox, "Conv", i);
    if (!ct || !co) {
      TAP_FAIL("conv %d missing", i);
      break;
    }
    const lm_gvalue *wt = &tf->values[ct->in[1]];
    const lm_gvalue *wo = &ox->values[lm_graph_resolve(ox, co->in[1])];
    const lm_gvalue *bt = &tf->values[ct->in[2]];
    const lm_gvalue *bo = &ox->values[lm_graph_resolve(ox, co->in[2])];
    char wname[64], bname[64];
    snprintf(wname, sizeof wname, "model.%d.weight", 2 * i);
    snprintf(bname, sizeof bname, "model.%d.bias", 2 * i);
    const float *ws = NULL, *bs = NULL;
    int64_t sh[LM_MAX_DIMS] = {0};
    for (int k = 0; k < lm_safetensors_count(st); k++) {
      const void *p;
      int64_t s2[LM_MAX_DIMS];
      const char *nm = lm_safetensors_at(st, k, NULL, NULL, s2, &p, NULL);
      if (!strcmp(nm, wname)) {
        ws = p;
        memcpy(sh, s2, sizeof sh);
      }
      if (!strcmp(nm, bname)) bs = p;
    }
    if (!ws || !bs || !wt->data || !wo->data || !bt->data || !bo->data) {
      TAP_FAIL("conv %d: weights missing", i);
      continue;
    }
    for (int d = 0; d < 5; d++) {
      CHECK_INT(wt->shape[d], sh[d]);
      CHECK_INT(wo->shape[d], sh[d]);
    }
    int64_t co_n = sh[0], ci = sh[1], k = sh[2];
    int bad_t = 0, bad_o = 0;
    for (int64_t o = 0; o < co_n; o++)
      for (int64_t c = 0; c < ci; c++)
        for (int64_t z = 0; z < k; z++)
          for (int64_t y = 0; y < k; y++)
            for (int64_t x = 0; x < k; x++) {
              int64_t base = (o * ci + c) * k * k * k;
              float s = ws[base + (z * k + y) * k + x];
              bad_t += ((const float *)wt->data)[base + (z * k + y) * k + x] != s;
              bad_o += ((const float *)wo->data)[base + (x * k + y) * k + z] != s;
            }
    CHECK_INT(bad_t, 0);
    CHECK_INT(bad_o, 0);
    for (int64_t o = 0; o < co_n; o++) {
      CHECK(((const float *)bt->data)[o] == bs[o]);
      CHECK(((const float *)bo->data)[o] == bs[o]);
    }
    CHECK_INT(lm_gnode_attr_ints(ct, "dilations", &(int){0})[0],
              lm_gnode_attr_ints(co, "dilations", &(int){0})[0]);
  }
done:
  if (tf) lm_graph_free(tf);
  if (ox) lm_graph_free(ox);
  lm_safetensors_close(st);
}

/* The graph JSON lumen.nn's nn.meshnet writes for model5_gw_ae (its
** safetensors config: 10 layers, dilations 1 2 4 8 16 8 4 2 1 with padding
** equal to the dilation, then a 1x1x1 conv to 3 classes; blocks Conv3d + ReLU,
** so conv i is model.{2i}), loaded with the real safetensors file. */
static lm_graph *load_meshnet_json(void)
{
  static const int dil[10] = {1, 2, 4, 8, 16, 8, 4, 2, 1, 1};
  char *buf = malloc(16384);
  int n = snprintf(buf, 16384, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,-1,-1,-1]}],"
                   "\"nodes\":[");
  const char *x = "input";
  char prev[32];
  for (int i = 0; i < 10; i++) {
    int k = i == 9 ? 1 : 3, p = i == 9 ? 0 : dil[i];
    n += snprintf(buf + n, 16384 - (size_t)n,
                  "%s{\"op\":\"Conv\",\"inputs\":[\"%s\",\"model.%d.weight\",\"model.%d.bias\"],"
                  "\"outputs\":[\"%s%d\"],\"attrs\":{\"kernel_shape\":[%d,%d,%d],"
                  "\"dilations\":[%d,%d,%d],\"pads\":[%d,%d,%d,%d,%d,%d],\"strides\":[1,1,1]}}",
                  i ? "," : "", x, 2 * i, 2 * i, i == 9 ? "output" : "conv", i == 9 ? 0 : i,
                  k, k, k, dil[i], dil[i], dil[i], p, p, p, p, p, p);
    if (i < 9) {
      n += snprintf(buf + n, 16384 - (size_t)n, ",{\"op\":\"Relu\",\"inputs\":[\"conv%d\"],"
                    "\"outputs\":[\"relu%d\"]}", i, i);
      snprintf(prev, sizeof prev, "relu%d", i);
      x = prev;
    }
  }
  n += snprintf(buf + n, 16384 - (size_t)n, "],\"outputs\":[\"output0\"],"
                "\"weights\":\"model5_gw_ae.safetensors\"}");
  char dir[512], err[512];
  snprintf(dir, sizeof dir, "%s/models/model5_gw_ae", data_dir);
  lm_graph *g = NULL;
  if (lm_graph_json_load(buf, (size_t)n, dir, &g, err, sizeof err) < 0) TAP_FAIL("%s", err);
  free(buf);
  return g;
}

static void test_meshnet_json_same_weights(void)
{
  lm_graph *js = load_meshnet_json(), *tf = load_tfjs("model5_gw_ae");
  if (!js || !tf) goto done;
  CHECK_INT(count_op(js, "Conv"), 10);
  for (int i = 0; i < 10; i++) {
    const lm_gnode *a = nth_op(js, "Conv", i), *b = nth_op(tf, "Conv", i);
    for (int k = 1; k < 3; k++) {
      const lm_gvalue *va = &js->values[a->in[k]], *vb = &tf->values[b->in[k]];
      int64_t na = lm_gvalue_numel(va);
      CHECK(va->data && vb->data && na == lm_gvalue_numel(vb) && na > 0);
      if (va->data && vb->data && na == lm_gvalue_numel(vb))
        CHECK(memcmp(va->data, vb->data, (size_t)na * 4) == 0);
    }
    CHECK(ints_are(a, "pads", 6, lm_gnode_attr_ints(b, "pads", &(int){0})));
  }
done:
  if (js) lm_graph_free(js);
  if (tf) lm_graph_free(tf);
}

/* Run g on one input of the given shape; returns the output (malloc'd). */
static float *run_plan(lm_graph *g, int nd, const int64_t *shape, const float *in,
                       int64_t *oshape)
{
  char err[512];
  if (lm_graph_prepare(g) < 0) {
    TAP_FAIL("prepare: %s", g->err);
    return NULL;
  }
  const int64_t *shapes[1] = {shape};
  lm_plan_options opt = {.bf16 = false, .threads = 1};
  lm_plan *p = NULL;
  if (lm_plan_new(g, &nd, shapes, &opt, &p, err, sizeof err) < 0) {
    TAP_FAIL("plan: %s", err);
    return NULL;
  }
  int ond = lm_plan_output_shape(p, 0, oshape);
  int64_t n = 1;
  for (int i = 0; i < ond; i++) n *= oshape[i];
  float *out = malloc(sizeof *out * (size_t)n);
  const float *ins[1] = {in};
  float *outs[1] = {out};
  if (lm_plan_run(p, ins, outs, NULL, err, sizeof err) < 0) {
    TAP_FAIL("run: %s", err);
    free(out);
    out = NULL;
  }
  lm_plan_free(p);
  return out;
}

/* The three copies on a small random input: tfjs and the JSON MeshNet see
** [1,1,X,Y,Z]; the ONNX copy sees the same array as [1,1,Z,Y,X] and its
** output is transposed back. */
static void test_model5_copies_same_output(void)
{
  enum { X = 12, Y = 9, Z = 10, C = 3 };
  char path[512], err[512];
  lm_graph *tf = load_tfjs("model5_gw_ae"), *js = load_meshnet_json(), *ox = NULL;
  snprintf(path, sizeof path, "%s/models/model5_gw_ae/model5_gw_ae.onnx", data_dir);
  if (lm_onnx_load(path, &ox, err, sizeof err) < 0) TAP_FAIL("%s", err);
  float *in = malloc(sizeof *in * X * Y * Z), *in_t = malloc(sizeof *in * X * Y * Z);
  uint32_t r = 12345;
  for (int i = 0; i < X * Y * Z; i++) {
    r = r * 1664525u + 1013904223u;
    in[i] = (float)(r >> 8) / (float)(1u << 24);   /* [0, 1), as brainchop's min-max input */
  }
  for (int x = 0; x < X; x++)
    for (int y = 0; y < Y; y++)
      for (int z = 0; z < Z; z++) in_t[(z * Y + y) * X + x] = in[(x * Y + y) * Z + z];
  float *o_tf = NULL, *o_js = NULL, *o_ox = NULL;
  int64_t s_tf[LM_MAX_DIMS], s_js[LM_MAX_DIMS], s_ox[LM_MAX_DIMS];
  if (tf) o_tf = run_plan(tf, 5, (const int64_t[]){1, 1, X, Y, Z}, in, s_tf);
  if (js) o_js = run_plan(js, 5, (const int64_t[]){1, 1, X, Y, Z}, in, s_js);
  if (ox) o_ox = run_plan(ox, 5, (const int64_t[]){1, 1, Z, Y, X}, in_t, s_ox);
  if (o_tf && o_js && o_ox) {
    CHECK_INT(s_tf[1], C);
    CHECK_INT(s_tf[4], Z);
    CHECK_INT(s_ox[2], Z);
    CHECK_INT(s_ox[4], X);
    double max_js = 0, max_ox = 0, scale = 0;
    for (int c = 0; c < C; c++)
      for (int x = 0; x < X; x++)
        for (int y = 0; y < Y; y++)
          for (int z = 0; z < Z; z++) {
            float a = o_tf[((c * X + x) * Y + y) * Z + z];
            float b = o_js[((c * X + x) * Y + y) * Z + z];
            float d = o_ox[((c * Z + z) * Y + y) * X + x];
            max_js = fmax(max_js, fabs(a - b));
            max_ox = fmax(max_ox, fabs(a - d));
            scale = fmax(scale, fabs(a));
          }
    printf("# model5 on %dx%dx%d: max |tfjs - json| %.3g, |tfjs - onnx| %.3g, max |out| %.3g\n",
           X, Y, Z, max_js, max_ox, scale);
    CHECK(scale > 0.1);
    CHECK(max_js <= 1e-5 * scale);
    CHECK(max_ox <= 1e-5 * scale);
  }
  free(o_tf);
  free(o_js);
  free(o_ox);
  free(in);
  free(in_t);
  if (tf) lm_graph_free(tf);
  if (js) lm_graph_free(js);
  if (ox) lm_graph_free(ox);
}

int main(void)
{
  snprintf(tmpdir, sizeof tmpdir, "/tmp/lumen_formats_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    printf("Bail out! mkdtemp failed\n");
    return 1;
  }
  RUN(test_safetensors_synthetic);
  RUN(test_safetensors_errors);
  RUN(test_graph_json);
  RUN(test_graph_json_errors);
  RUN(test_graph_json_widens_weights);
  RUN(test_tfjs_synthetic);
  RUN(test_tfjs_errors);
  RUN(test_tfjs_keras3_and_sequential);
  RUN(test_tfjs_layer_norm_values);
  RUN(test_garbled_files);
  data_dir = getenv("LUMEN_TEST_DATA");
  char probe[512];
  snprintf(probe, sizeof probe, "%s/models/model5_gw_ae/model.json", data_dir ? data_dir : "");
  if (data_dir && access(probe, R_OK) == 0) {
    RUN(test_safetensors_model5);
    RUN(test_tfjs_model5);
    RUN(test_tfjs_mindgrab);
    RUN(test_tfjs_others);
    RUN(test_model5_copies_same_weights);
    RUN(test_meshnet_json_same_weights);
    RUN(test_model5_copies_same_output);
  } else {
    printf("# LUMEN_TEST_DATA models absent: real-model checks skipped\n");
  }
  /* remove what the tests wrote */
  const char *files[] = {"ok.safetensors", "bad.safetensors", "net.safetensors", "model.json",
                         "a.bin", "b.bin", "bad.json", "k.bin", "k3.json"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(tmp_path(files[i]));
  rmdir(tmpdir);
  TAP_DONE();
}
