/* Dump what the ONNX reader (models/src/onnx_reader.c) built from a model,
 * as one JSON object, for test_onnx_reader_parity.py to compare with the
 * onnx Python package's reading of the same file:
 *   {"opset", "producer", "inputs": [{"name", "dtype", "shape"}], "outputs",
 *    "nodes": [{"op", "domain", "name", "in", "out", "attrs": {name: {...}}}],
 *    "consts": {name: {"dtype", "shape", "nbytes", "fnv"}}}
 * Constant data is summarised by the FNV-1a 64 hash of its bytes (little
 * endian, C order), which Python computes from numpy's tobytes().  Unnamed
 * constants (attribute tensors) appear inside their attribute.
 *
 *   onnx_dump MODEL.onnx      exit 1 with the reader's message on stderr */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "loaders.h"

static void json_str(const char *s)
{
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p);
  }
  putchar('"');
}

static const char *dtype_name(const lm_gvalue *v)
{
  return v->dt_known ? lm_dtype_name(v->dt) : "unknown";
}

static void shape(const lm_gvalue *v)
{
  if (v->ndim < 0) {
    printf("null");
    return;
  }
  putchar('[');
  for (int i = 0; i < v->ndim; i++) printf(i ? ",%" PRId64 : "%" PRId64, v->shape[i]);
  putchar(']');
}

static void constant(const lm_gvalue *v)
{
  uint64_t h = 1469598103934665603ull;
  const unsigned char *p = v->data;
  for (size_t i = 0; i < v->nbytes; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  printf("{\"dtype\":\"%s\",\"shape\":", dtype_name(v));
  shape(v);
  printf(",\"nbytes\":%zu,\"fnv\":\"%016" PRIx64 "\"}", v->nbytes, h);
}

static void value_ref(const lm_graph *g, int v)
{
  if (v < 0) printf("null");
  else json_str(g->values[v].name);
}

static void attribute(const lm_graph *g, const lm_gattr *a)
{
  switch (a->kind) {
  case LM_ATTR_FLOAT: printf("{\"kind\":\"float\",\"v\":%.9g}", a->f); break;
  case LM_ATTR_INT: printf("{\"kind\":\"int\",\"v\":%" PRId64 "}", a->i); break;
  case LM_ATTR_STRING:
    printf("{\"kind\":\"string\",\"v\":");
    json_str(a->s);
    putchar('}');
    break;
  case LM_ATTR_FLOATS:
  case LM_ATTR_INTS:
  case LM_ATTR_STRINGS:
    printf("{\"kind\":\"%s\",\"v\":[", a->kind == LM_ATTR_FLOATS ? "floats" : a->kind == LM_ATTR_INTS ? "ints" : "strings");
    for (int i = 0; i < a->n; i++) {
      if (i) putchar(',');
      if (a->kind == LM_ATTR_FLOATS) printf("%.9g", a->floats[i]);
      else if (a->kind == LM_ATTR_INTS) printf("%" PRId64, a->ints[i]);
      else json_str(a->strings[i]);
    }
    printf("]}");
    break;
  case LM_ATTR_TENSOR:
    printf("{\"kind\":\"tensor\",\"v\":");
    constant(&g->values[a->tensor]);
    putchar('}');
    break;
  }
}

static void io_list(const lm_graph *g, const int *vs, int n)
{
  putchar('[');
  for (int i = 0; i < n; i++) {
    const lm_gvalue *v = &g->values[vs[i]];
    printf(i ? ",{\"name\":" : "{\"name\":");
    json_str(v->name);
    printf(",\"dtype\":\"%s\",\"shape\":", dtype_name(v));
    shape(v);
    putchar('}');
  }
  putchar(']');
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: onnx_dump MODEL.onnx\n");
    return 2;
  }
  lm_graph *g;
  char err[512];
  if (lm_onnx_load(argv[1], &g, err, sizeof err) != LM_OK) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  printf("{\"opset\":%d,\"producer\":", g->opset);
  json_str(g->producer ? g->producer : "");
  printf(",\"inputs\":");
  io_list(g, g->inputs, g->ninputs);
  printf(",\"outputs\":");
  io_list(g, g->outputs, g->noutputs);
  printf(",\"nodes\":[");
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    printf(i ? ",{\"op\":" : "{\"op\":");
    json_str(n->op);
    printf(",\"domain\":");
    json_str(n->domain);
    printf(",\"name\":");
    json_str(n->name);
    printf(",\"in\":[");
    for (int j = 0; j < n->nin; j++) {
      if (j) putchar(',');
      value_ref(g, n->in[j]);
    }
    printf("],\"out\":[");
    for (int j = 0; j < n->nout; j++) {
      if (j) putchar(',');
      value_ref(g, n->out[j]);
    }
    printf("],\"attrs\":{");
    for (int j = 0; j < n->nattr; j++) {
      if (j) putchar(',');
      json_str(n->attr[j].name);
      putchar(':');
      attribute(g, &n->attr[j]);
    }
    printf("}}");
  }
  printf("],\"consts\":{");
  int first = 1;
  for (int v = 0; v < g->nvalues; v++) {
    const lm_gvalue *val = &g->values[v];
    /* Constants: data, or no data because they hold no elements. */
    bool is_const = val->data != NULL || (val->dt_known && val->producer < 0 && !val->is_input &&
                                          val->ndim >= 0 && lm_gvalue_numel(val) == 0);
    if (!*val->name || !is_const) continue;
    if (!first) putchar(',');
    first = 0;
    json_str(val->name);
    putchar(':');
    constant(val);
  }
  printf("}}\n");
  lm_graph_free(g);
  return 0;
}
