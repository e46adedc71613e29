/* The model IR: one graph of nodes with typed attributes over a table of
 * values.  Every loader (ONNX, lumen graph JSON + safetensors, TensorFlow.js
 * layers) builds it through the functions below; the passes (graph_passes.c)
 * infer shapes and fold constants; a plan (plan.h) runs it.
 *
 * Internal to liblumen: not part of lumen.h.  No Lua here.
 *
 * Conventions
 * - Op names and attribute names are ONNX's ("Conv", "dilations", ...), with
 *   ONNX's semantics, whatever the source format was.  Loaders translate.
 * - A value is a tensor in the graph: a graph input, a constant (initializer
 *   or folded), or a node output.  Values are referred to by index.
 * - Constant data is dense, C order, little-endian, aligned to its element
 *   size (loaders copy when the source is not aligned; otherwise they may
 *   point into a mapping kept alive with lm_graph_keep).
 * - Errors: functions returning int return LM_OK or a negative LM_E* code
 *   and leave a message in g->err that names the file and the field. */
#ifndef LM_GRAPH_H
#define LM_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumen.h"

typedef enum lm_attr_kind {
  LM_ATTR_FLOAT, LM_ATTR_INT, LM_ATTR_STRING,
  LM_ATTR_FLOATS, LM_ATTR_INTS, LM_ATTR_STRINGS,
  LM_ATTR_TENSOR   /* the attribute holds a constant value (v.tensor) */
} lm_attr_kind;

typedef struct lm_gattr {
  const char *name;
  lm_attr_kind kind;
  double f;                /* FLOAT */
  int64_t i;               /* INT */
  const char *s;           /* STRING (NUL-terminated copy) */
  int n;                   /* FLOATS, INTS, STRINGS: count */
  const double *floats;
  const int64_t *ints;
  const char *const *strings;
  int tensor;              /* TENSOR: index of a constant value */
} lm_gattr;

typedef struct lm_gnode {
  const char *op;          /* "Conv", "Relu", ... */
  const char *domain;      /* "" for the default ONNX domain */
  const char *name;        /* may be "" */
  int nin, nout;
  int *in;                 /* value indices; -1 = optional input left out */
  int *out;
  int nattr;
  lm_gattr *attr;
  bool dead;               /* removed by a pass; skip it */
} lm_gnode;

typedef struct lm_gvalue {
  const char *name;
  lm_dtype dt;
  bool dt_known;
  int ndim;                       /* -1 = unknown rank */
  int64_t shape[LM_MAX_DIMS];     /* -1 = unknown (dynamic) extent */
  const void *data;               /* constant data, or NULL */
  size_t nbytes;
  int producer;                   /* node index, or -1 */
  bool is_input, is_output;
  int alias;                      /* -1, or the value this one is the same
                                     tensor as (Identity, Dropout) */
} lm_gvalue;

typedef struct lm_graph_block lm_graph_block;

typedef struct lm_graph {
  int nnodes, cap_nodes;
  lm_gnode *nodes;               /* in topological order once sorted */
  int nvalues, cap_values;
  lm_gvalue *values;
  int ninputs, noutputs;
  int *inputs, *outputs;         /* value indices, in declaration order */
  int opset;                     /* default-domain opset (0 = unknown) */
  const char *source;            /* the file the graph came from */
  const char *producer;          /* "pytorch 2.2.1", "tfjs-layers", ... */
  lm_graph_block *blocks;        /* arena */
  void (*keep_release)(void *);  /* mapping kept alive (lm_graph_keep) */
  void *keep_ctx;
  struct lm_graph_keep_node *keeps;
  char err[512];
} lm_graph;

/* A new empty graph; NULL when out of memory. */
lm_graph *lm_graph_new(void);
/* Frees the graph, its arena and everything kept with lm_graph_keep. */
void lm_graph_free(lm_graph *g);
/* Keep ctx alive as long as the graph: release(ctx) runs at lm_graph_free
** (e.g. munmap of the file that constant data points into).  Several may be
** registered; they run in reverse order. */
int lm_graph_keep(lm_graph *g, void (*release)(void *), void *ctx);

/* Arena memory, freed with the graph: zeroed, 64-byte aligned.  NULL when
** out of memory (and g->err says so). */
void *lm_graph_alloc(lm_graph *g, size_t n);
/* A NUL-terminated copy of s[0..n) in the arena (n = (size_t)-1: strlen). */
const char *lm_graph_strdup(lm_graph *g, const char *s, size_t n);

/* Set g->err (printf style) and return status.  The message should name the
** source file and the node/field. */
int lm_graph_error(lm_graph *g, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The value named name, added (unknown dtype and shape) if new; -1 when out
** of memory.  The empty name is never looked up: each call with "" adds a
** fresh anonymous value. */
int lm_graph_value(lm_graph *g, const char *name);
/* The value named name, or -1. */
int lm_graph_find_value(const lm_graph *g, const char *name);
/* Declare the dtype and shape of value v (ndim -1: unknown rank). */
void lm_graph_set_type(lm_graph *g, int v, lm_dtype dt, int ndim,
                       const int64_t *shape);
/* Make v a constant.  copy=false: data must stay valid as long as the graph
** (arena memory or a kept mapping) and be aligned to the element size;
** copy=true: it is copied into the arena. */
int lm_graph_set_const(lm_graph *g, int v, lm_dtype dt, int ndim,
                       const int64_t *shape, const void *data, bool copy);
/* Add a fresh anonymous constant value and return its index (-1 on error). */
int lm_graph_const(lm_graph *g, lm_dtype dt, int ndim, const int64_t *shape,
                   const void *data, bool copy);

int lm_graph_add_input(lm_graph *g, int v);
int lm_graph_add_output(lm_graph *g, int v);

/* Append a node; returns its index or -1.  in/out are copied; a -1 input
** is an optional input left out.  Sets the producer of each output. */
int lm_graph_add_node(lm_graph *g, const char *op, const char *name,
                      int nin, const int *in, int nout, const int *out);
/* Append an attribute to node and return it for the caller to fill (kind
** and name are set; arrays must point into the arena).  NULL on error. */
lm_gattr *lm_graph_add_attr(lm_graph *g, int node, const char *name,
                            lm_attr_kind kind);
/* Convenience setters (arrays copied into the arena). */
int lm_graph_attr_set_int(lm_graph *g, int node, const char *name, int64_t v);
int lm_graph_attr_set_float(lm_graph *g, int node, const char *name, double v);
int lm_graph_attr_set_string(lm_graph *g, int node, const char *name,
                             const char *s);
int lm_graph_attr_set_ints(lm_graph *g, int node, const char *name,
                           const int64_t *v, int n);
int lm_graph_attr_set_floats(lm_graph *g, int node, const char *name,
                             const double *v, int n);

/* Attribute lookup on a node: NULL when absent. */
const lm_gattr *lm_gnode_attr(const lm_gnode *n, const char *name);
/* Typed lookups with a default when absent. */
int64_t lm_gnode_attr_int(const lm_gnode *n, const char *name, int64_t def);
double lm_gnode_attr_float(const lm_gnode *n, const char *name, double def);
const char *lm_gnode_attr_string(const lm_gnode *n, const char *name,
                                 const char *def);
/* INTS: pointer to the array and *count; NULL (count 0) when absent. */
const int64_t *lm_gnode_attr_ints(const lm_gnode *n, const char *name,
                                  int *count);

/* Follow aliases to the value that holds the data. */
int lm_graph_resolve(const lm_graph *g, int v);
/* numel of a value with fully known shape, else -1. */
int64_t lm_gvalue_numel(const lm_gvalue *v);

/* One-line-per-node text dump for debugging and `lumen` model inspection. */
char *lm_graph_dump(const lm_graph *g);  /* malloc'd */

/* ---- passes (graph_passes.c) --------------------------------------------
** lm_graph_prepare runs, in order: topological sort (error on a cycle or an
** undefined input), Identity/Dropout aliasing, shape and dtype inference
** from the declared input shapes (where known), folding of every node whose
** inputs are all constant, BatchNormalization folded into a preceding Conv,
** and dead-node removal.  Idempotent. */
int lm_graph_prepare(lm_graph *g);

/* Shape inference and folding again with concrete input shapes (one per
** graph input, ndim of each as in shapes_ndim).  Used by plans: works on a
** copy the caller made with lm_graph_clone (which shares constant data with
** g: g must outlive the clone). */
lm_graph *lm_graph_clone(const lm_graph *g);
int lm_graph_specialize(lm_graph *g, const int *ndims,
                        const int64_t *const *shapes);

/* ONNX element type number <-> lm_dtype (bool maps to uint8).  -1 / LM_EINVAL
** for types lumen does not hold (string, complex). */
int lm_dtype_from_onnx(int onnx_type, lm_dtype *out);
int lm_dtype_to_onnx(lm_dtype dt);

#endif
