/* Internal to the TensorFlow.js layers loader: tfjs.c reads model.json and
 * the weight shards; tfjs_layers.c translates the Keras layers (channels
 * last) into the channels-first ONNX-style IR; tfjs_emit.c holds the small
 * node and constant builders they share. */
#ifndef LM_TFJS_INTERNAL_H
#define LM_TFJS_INTERNAL_H

#include <cjson/cJSON.h>

#include "graph.h"

/* One weight of the manifest, dequantized to float32 (malloc'd). */
typedef struct tfjs_weight {
  char *name;           /* "conv3d_0/kernel" */
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  float *data;
} tfjs_weight;

/* A Keras tensor ("layer:node:index") and the IR value holding it. */
typedef struct tfjs_tensor {
  char *key;
  int v;                /* value index */
  int rank;             /* N + spatial + C */
  int64_t channels;     /* -1 when not known */
} tfjs_tensor;

typedef struct tfjs_ctx {
  lm_graph *g;
  const char *path;     /* model.json, for messages */
  tfjs_weight *w;
  int nw;
  tfjs_tensor *t;
  int nt, cap_t;
} tfjs_ctx;

/* Messages are "<model.json>: layer '<name>' (<class>): <what>". */
int tfjs_fail(tfjs_ctx *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* tfjs_layers.c: translate the model config ({class_name, config}) into
** c->g: inputs, nodes, outputs. */
int tfjs_translate(tfjs_ctx *c, const cJSON *model);

/* tfjs_emit.c ------------------------------------------------------------ */
/* Append a node with one output value named out (a fresh value; "" gives
** an anonymous one).  Returns the output value or a negative code. */
int tfjs_node(tfjs_ctx *c, const char *op, const char *name, const int *in, int nin,
              const char *out);
/* Index of the node that produced value v (for adding attributes). */
int tfjs_producer(tfjs_ctx *c, int v);
/* A float32 constant named name (copied). */
int tfjs_const_f32(tfjs_ctx *c, const char *name, int ndim, const int64_t *shape,
                   const float *data);
/* A float32 constant of n copies of x, shape [n]. */
int tfjs_const_fill(tfjs_ctx *c, const char *name, int64_t n, float x);
int tfjs_const_i64(tfjs_ctx *c, const char *name, int n, const int64_t *v);
/* The weight named "<layer>/<param>" (also under an enclosing scope:
** ".../<layer>/<param>"), or NULL. */
const tfjs_weight *tfjs_weight_find(const tfjs_ctx *c, const char *layer, const char *param);
/* Transposed copy of w as a constant: out axis i = w axis perm[i]. */
int tfjs_const_permuted(tfjs_ctx *c, const char *name, const tfjs_weight *w, const int *perm);

/* Keras tensors. */
int tfjs_tensor_add(tfjs_ctx *c, const char *key, int v, int rank, int64_t channels);
const tfjs_tensor *tfjs_tensor_find(const tfjs_ctx *c, const char *key);

#endif
