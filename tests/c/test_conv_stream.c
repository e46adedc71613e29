/* models/src/conv_stream.c: streamed execution of a conv chain equals the
 * whole-volume evaluation (the op table's reference kernels, node by node),
 * for logits and for fused argmax labels, with strided inputs and outputs;
 * graphs that are not chains are refused with a reason. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_stream.h"
#include "cpu_ops.h"
#include "graph.h"
#include "lumen.h"
#include "tap.h"

static uint32_t rng = 2024u;
static float frand(void)
{
  rng = rng * 1664525u + 1013904223u;
  return (float)((rng >> 8) * (1.0 / 8388608.0) - 1.0);
}

enum { D0 = 13, D1 = 9, D2 = 11 };

typedef struct layer { int cout, k, dil; const char *act; } layer;

/* input [1, cin, D0, D1, D2] -> chain of layers; returns the graph. */
static lm_graph *chain(int cin, const layer *ls, int nl, bool add_skip)
{
  lm_graph *g = lm_graph_new();
  g->source = "test";
  int x = lm_graph_value(g, "x");
  int64_t shape[5] = {1, cin, D0, D1, D2};
  lm_graph_set_type(g, x, LM_F32, 5, shape);
  lm_graph_add_input(g, x);
  int cur = x, ch = cin;
  for (int i = 0; i < nl; i++) {
    int k = ls[i].k;
    int64_t wshape[5] = {ls[i].cout, ch, k, k, k};
    int64_t nw = (int64_t)ls[i].cout * ch * k * k * k;
    float *w = malloc(sizeof(float) * (size_t)nw), *b = malloc(sizeof(float) * (size_t)ls[i].cout);
    for (int64_t j = 0; j < nw; j++) w[j] = frand() * 0.5f;
    for (int j = 0; j < ls[i].cout; j++) b[j] = frand() * 0.1f;
    int wv = lm_graph_const(g, LM_F32, 5, wshape, w, true);
    int64_t bshape[1] = {ls[i].cout};
    int bv = lm_graph_const(g, LM_F32, 1, bshape, b, true);
    free(w);
    free(b);
    int y = lm_graph_value(g, "");
    int in[3] = {cur, wv, bv};
    int n = lm_graph_add_node(g, "Conv", "conv", 3, in, 1, &y);
    int64_t dil[3] = {ls[i].dil, ls[i].dil, ls[i].dil}, ks[3] = {k, k, k};
    int64_t p = ls[i].dil * (k - 1) / 2, pads[6] = {p, p, p, p, p, p};
    lm_graph_attr_set_ints(g, n, "dilations", dil, 3);
    lm_graph_attr_set_ints(g, n, "kernel_shape", ks, 3);
    lm_graph_attr_set_ints(g, n, "pads", pads, 6);
    cur = y;
    ch = ls[i].cout;
    if (ls[i].act) {
      int z = lm_graph_value(g, "");
      int an = lm_graph_add_node(g, ls[i].act, "act", 1, &cur, 1, &z);
      if (strcmp(ls[i].act, "LeakyRelu") == 0) lm_graph_attr_set_float(g, an, "alpha", 0.1);
      cur = z;
    }
  }
  if (add_skip) {
    int z = lm_graph_value(g, "");
    int in[2] = {cur, cur};
    lm_graph_add_node(g, "Add", "skip", 2, in, 1, &z);
    cur = z;
  }
  lm_graph_add_output(g, cur);
  return g;
}

/* Whole-volume evaluation with the op table, node by node. */
static float *reference(lm_graph *g, const float *x)
{
  float **buf = calloc((size_t)g->nvalues, sizeof *buf);
  buf[g->inputs[0]] = (float *)x;
  for (int i = 0; i < g->nnodes; i++) {
    lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    lm_rt_tensor in[3], out[1];
    for (int j = 0; j < n->nin; j++) {
      int v = lm_graph_resolve(g, n->in[j]);
      lm_gvalue *val = &g->values[v];
      in[j].dt = val->dt;
      in[j].ndim = val->ndim;
      memcpy(in[j].shape, val->shape, sizeof val->shape);
      in[j].data = val->data ? (void *)val->data : buf[v];
    }
    int ov = n->out[0];
    lm_gvalue *o = &g->values[ov];
    out[0].dt = LM_F32;
    out[0].ndim = o->ndim;
    memcpy(out[0].shape, o->shape, sizeof o->shape);
    buf[ov] = malloc(sizeof(float) * (size_t)lm_gvalue_numel(o));
    out[0].data = buf[ov];
    char err[256] = "";
    int st = lm_cpu_kernel_find(n->op)->eval(n, in, n->nin, out, 1, err, sizeof err);
    if (st < 0) TAP_FAIL("eval %s: %s", n->op, err);
  }
  int outv = lm_graph_resolve(g, g->outputs[0]);
  float *res = buf[outv];
  for (int v = 0; v < g->nvalues; v++)
    if (v != outv && v != g->inputs[0]) free(buf[v]);
  free(buf);
  return res;
}

static const layer meshnet_like[] = {
  {4, 3, 1, "Relu"}, {4, 3, 2, "Elu"}, {4, 3, 4, "LeakyRelu"},
  {4, 3, 8, "Relu"}, {4, 3, 2, "Relu"}, {3, 1, 1, NULL},
};

static void test_logits_and_labels(void)
{
  lm_graph *g = chain(2, meshnet_like, 6, false);
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int64_t n = 2 * D0 * D1 * D2, plane = D1 * D2;
  float *x = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = frand();
  float *want = reference(g, x);
  int64_t shape[5] = {1, 2, D0, D1, D2};
  lm_conv_stream *s = NULL;
  char why[256] = "";
  CHECK_INT(lm_conv_stream_check(g, shape, why, sizeof why), LM_OK);
  CHECK_INT(lm_conv_stream_new(g, shape, false, &s, why, sizeof why), LM_OK);
  if (!s) {
    TAP_FAIL("refused: %s", why);
    return;
  }
  CHECK_INT(lm_conv_stream_out_channels(s), 3);
  /* The rings hold 2h+1 slices per layer, not the volume. */
  CHECK(lm_conv_stream_bytes(s) < (size_t)(6 * 4 * D0 * plane * 4));
  /* Logits, written in Fortran order (d2 slowest) to exercise strides. */
  float *got = malloc(sizeof(float) * (size_t)(3 * D0 * plane));
  lm_stream_io io = {.in = x, .in_stride = {D0 * plane, plane, D2, 1},
                     .logits = got,
                     .logits_stride = {1, 3, 3 * D0, 3 * D0 * D1}};
  char err[256] = "";
  CHECK_INT(lm_conv_stream_run(s, &io, NULL, err, sizeof err), LM_OK);
  double maxerr = 0, maxref = 0;
  for (int c = 0; c < 3; c++)
    for (int z = 0; z < D0; z++)
      for (int i = 0; i < D1; i++)
        for (int j = 0; j < D2; j++) {
          double a = got[c + 3 * (z + D0 * (i + D1 * j))];
          double b = want[((c * D0 + z) * D1 + i) * D2 + j];
          if (fabs(a - b) > maxerr) maxerr = fabs(a - b);
          if (fabs(b) > maxref) maxref = fabs(b);
        }
  CHECK(maxref > 0.01);
  CHECK_NEAR(maxerr / maxref, 0, 1e-5);
  /* Labels: argmax of the reference where the top two differ clearly. */
  uint8_t *lab = malloc((size_t)(D0 * plane));
  lm_stream_io io2 = {.in = x, .in_stride = {D0 * plane, plane, D2, 1},
                      .labels = lab, .labels_dt = LM_U8,
                      .labels_stride = {plane, D2, 1}};
  CHECK_INT(lm_conv_stream_run(s, &io2, NULL, err, sizeof err), LM_OK);
  int64_t mismatched = 0;
  for (int64_t p = 0; p < D0 * plane; p++) {
    int best = 0;
    for (int c = 1; c < 3; c++)
      if (want[c * D0 * plane + p] > want[best * D0 * plane + p]) best = c;
    if (lab[p] != best) mismatched++;
  }
  CHECK_INT(mismatched, 0);
  /* Cancellation between slices. */
  volatile int cancel = 1;
  CHECK_INT(lm_conv_stream_run(s, &io2, &cancel, err, sizeof err), LM_ECANCELED);
  free(lab);
  free(got);
  free(want);
  free(x);
  lm_conv_stream_free(s);
  lm_graph_free(g);
}

/* A strided input (a permuted view: the first spatial axis fastest in
** memory, as a NIfTI buffer seen in (i,j,k) order is). */
static void test_strided_input(void)
{
  static const layer ls[] = {{3, 3, 2, "Relu"}, {2, 3, 1, NULL}};
  lm_graph *g = chain(1, ls, 2, false);
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int64_t n = D0 * D1 * D2, plane = D1 * D2;
  float *x = malloc(sizeof(float) * (size_t)n), *xf = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = frand();
  for (int z = 0; z < D0; z++)            /* xf: Fortran order of x */
    for (int i = 0; i < D1; i++)
      for (int j = 0; j < D2; j++) xf[z + D0 * (i + D1 * j)] = x[(z * D1 + i) * D2 + j];
  float *want = reference(g, x);
  int64_t shape[5] = {1, 1, D0, D1, D2};
  lm_conv_stream *s = NULL;
  char why[256] = "", err[256] = "";
  CHECK_INT(lm_conv_stream_new(g, shape, false, &s, why, sizeof why), LM_OK);
  float *got = malloc(sizeof(float) * (size_t)(2 * n));
  lm_stream_io io = {.in = xf, .in_stride = {n, 1, D0, D0 * D1}, .logits = got,
                     .logits_stride = {n, plane, D2, 1}};
  CHECK_INT(lm_conv_stream_run(s, &io, NULL, err, sizeof err), LM_OK);
  double maxerr = 0;
  for (int64_t i = 0; i < 2 * n; i++)
    if (fabs(got[i] - want[i]) > maxerr) maxerr = fabs(got[i] - want[i]);
  CHECK_NEAR(maxerr, 0, 1e-5);
  free(got);
  free(want);
  free(x);
  free(xf);
  lm_conv_stream_free(s);
  lm_graph_free(g);
}

/* More than LM_CONV_SMALL_MAX_CH channels: the layers go through oneDNN
** instead of the direct few-channel kernel; same contract. */
static void test_wide_layers(void)
{
  static const layer ls[] = {{18, 3, 2, "Relu"}, {17, 3, 1, "Gelu"}, {2, 1, 1, NULL}};
  lm_graph *g = chain(1, ls, 3, false);
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int64_t n = D0 * D1 * D2;
  float *x = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = frand();
  float *want = reference(g, x);
  int64_t shape[5] = {1, 1, D0, D1, D2};
  lm_conv_stream *s = NULL;
  char why[256] = "", err[256] = "";
  CHECK_INT(lm_conv_stream_new(g, shape, false, &s, why, sizeof why), LM_OK);
  float *got = malloc(sizeof(float) * (size_t)(2 * n));
  lm_stream_io io = {.in = x, .in_stride = {n, D1 * D2, D2, 1}, .logits = got,
                     .logits_stride = {n, D1 * D2, D2, 1}};
  CHECK_INT(lm_conv_stream_run(s, &io, NULL, err, sizeof err), LM_OK);
  double maxerr = 0, maxref = 0;
  for (int64_t i = 0; i < 2 * n; i++) {
    if (fabs(got[i] - want[i]) > maxerr) maxerr = fabs(got[i] - want[i]);
    if (fabs(want[i]) > maxref) maxref = fabs(want[i]);
  }
  CHECK_NEAR(maxerr / maxref, 0, 1e-5);
  free(got);
  free(want);
  free(x);
  lm_conv_stream_free(s);
  lm_graph_free(g);
}

static void test_not_a_chain(void)
{
  static const layer ls[] = {{3, 3, 1, "Relu"}};
  lm_graph *g = chain(1, ls, 1, true);
  CHECK_INT(lm_graph_prepare(g), LM_OK);
  int64_t shape[5] = {1, 1, D0, D1, D2};
  lm_conv_stream *s = NULL;
  char why[256] = "";
  CHECK_INT(lm_conv_stream_check(g, shape, why, sizeof why), LM_EUNSUPPORTED);
  CHECK_INT(lm_conv_stream_new(g, shape, false, &s, why, sizeof why), LM_EUNSUPPORTED);
  CHECK(s == NULL);
  CHECK_CONTAINS(why, "Add");
  lm_graph_free(g);
}

int main(void)
{
  RUN(test_logits_and_labels);
  RUN(test_strided_input);
  RUN(test_wide_layers);
  RUN(test_not_a_chain);
  TAP_DONE();
}
