/* A small protobuf writer for hand-built ONNX models in tests and fuzz
 * seeds (test_onnx_reader.c, tests/fuzz/fuzz_onnx_replay.c).  Aborts on out
 * of memory: test code only. */
#ifndef LM_TEST_PB_WRITER_H
#define LM_TEST_PB_WRITER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct pbw {
  uint8_t *p;
  size_t n, cap;
} pbw;

static inline void pbw_raw(pbw *w, const void *d, size_t n)
{
  if (w->n + n > w->cap) {
    w->cap = (w->n + n) * 2 + 64;
    w->p = realloc(w->p, w->cap);
    if (!w->p) abort();
  }
  if (n) memcpy(w->p + w->n, d, n);
  w->n += n;
}

static inline void pbw_varint(pbw *w, uint64_t v)
{
  uint8_t b[10];
  int k = 0;
  do {
    b[k] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) b[k] |= 0x80;
    k++;
  } while (v);
  pbw_raw(w, b, (size_t)k);
}

static inline void pbw_key(pbw *w, unsigned num, unsigned wire) { pbw_varint(w, (uint64_t)num << 3 | wire); }
static inline void pbw_int(pbw *w, unsigned num, int64_t v)
{
  pbw_key(w, num, 0);
  pbw_varint(w, (uint64_t)v);
}
static inline void pbw_bytes(pbw *w, unsigned num, const void *d, size_t n)
{
  pbw_key(w, num, 2);
  pbw_varint(w, n);
  pbw_raw(w, d, n);
}
static inline void pbw_str(pbw *w, unsigned num, const char *s) { pbw_bytes(w, num, s, strlen(s)); }
/* Append a finished sub-message and free it. */
static inline void pbw_msg(pbw *w, unsigned num, pbw *sub)
{
  pbw_bytes(w, num, sub->p, sub->n);
  free(sub->p);
  memset(sub, 0, sizeof *sub);
}
static inline void pbw_f32(pbw *w, unsigned num, float f)
{
  pbw_key(w, num, 5);
  pbw_raw(w, &f, 4);
}

/* ValueInfoProto of a float tensor; dims < 0 are written as dim_param. */
static inline void pbw_value_info(pbw *graph, unsigned field, const char *name, int ndim, const int64_t *dims)
{
  pbw vi = {0}, type = {0}, tt = {0}, shape = {0};
  for (int i = 0; i < ndim; i++) {
    pbw dim = {0};
    if (dims[i] >= 0) pbw_int(&dim, 1, dims[i]);
    else pbw_str(&dim, 2, "batch");
    pbw_msg(&shape, 1, &dim);
  }
  pbw_int(&tt, 1, 1);
  pbw_msg(&tt, 2, &shape);
  pbw_msg(&type, 1, &tt);
  pbw_str(&vi, 1, name);
  pbw_msg(&vi, 2, &type);
  pbw_msg(graph, field, &vi);
}

/* A TensorProto with float raw_data. */
static inline void pbw_tensor_f32(pbw *t, const char *name, int ndim, const int64_t *dims, const float *v)
{
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    pbw_int(t, 1, dims[i]);
    n *= dims[i];
  }
  pbw_int(t, 2, 1);
  if (name) pbw_str(t, 8, name);
  pbw_bytes(t, 9, v, sizeof(float) * (size_t)n);
}

/* A model around a graph: opset 17, producer "lumen-test 1". */
static inline pbw pbw_model(pbw *graph)
{
  pbw m = {0}, op = {0};
  pbw_int(&m, 1, 8);
  pbw_str(&m, 2, "lumen-test");
  pbw_str(&m, 3, "1");
  pbw_str(&op, 1, "");
  pbw_int(&op, 2, 17);
  pbw_msg(&m, 8, &op);
  pbw_msg(&m, 7, graph);
  return m;
}

/* The graph every hand-built test starts from:
 *   x[batch,2] -> Gemm-free toy: Mul(x, w) -> LeakyRelu(alpha 0.2) -> y
 * with w an initializer also declared as an input. */
static inline void pbw_toy_graph(pbw *g, pbw *node_extra_attrs)
{
  static const float w[2] = {1.5f, -2.0f};
  int64_t xd[2] = {-1, 2}, wd[1] = {2};
  pbw t = {0}, n1 = {0}, n2 = {0}, a = {0};
  pbw_tensor_f32(&t, "w", 1, wd, w);
  pbw_msg(g, 5, &t);
  pbw_value_info(g, 11, "x", 2, xd);
  pbw_value_info(g, 11, "w", 1, wd);
  pbw_str(&n1, 1, "x");
  pbw_str(&n1, 1, "w");
  pbw_str(&n1, 2, "m");
  pbw_str(&n1, 3, "mul1");
  pbw_str(&n1, 4, "Mul");
  pbw_msg(g, 1, &n1);
  pbw_str(&n2, 1, "m");
  pbw_str(&n2, 2, "y");
  pbw_str(&n2, 3, "act");
  pbw_str(&n2, 4, "LeakyRelu");
  pbw_str(&a, 1, "alpha");
  pbw_f32(&a, 2, 0.2f);
  pbw_int(&a, 20, 1);
  pbw_msg(&n2, 5, &a);
  if (node_extra_attrs) pbw_raw(&n2, node_extra_attrs->p, node_extra_attrs->n);
  pbw_msg(g, 1, &n2);
  pbw_value_info(g, 12, "y", 2, xd);
}

#endif
