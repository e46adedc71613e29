/* The ONNX reader (loaders.h): ModelProto bytes -> lm_graph, zero-copy.
 *
 * This file: the model, graph, nodes and value infos, and the inlining of
 * model-local functions; TensorProto is onnx_tensor.c, AttributeProto
 * onnx_attribute.c.  The
 * file is mapped and parsed in place with the wire cursor of onnx_wire.h.
 * raw_data weights are not copied: constants point into the mapping, which
 * the graph keeps alive (lm_graph_keep); lm_graph_set_const copies the rare
 * unaligned ones.  Fields lumen has no use for are skipped; fields it cannot
 * honour (subgraph attributes, sparse or segmented tensors) are refused
 * with a message rather than dropped.  Model-local functions are inlined (calls
 * nest at most MAX_INLINE_DEPTH deep); otherwise nothing recurses: the
 * nesting of the messages we read is fixed (model > graph > node >
 * attribute > tensor).
 *
 * Error messages name the file, then the path to the field:
 *   "m.onnx: node 12 (Conv 'conv1'): attribute 'pads': truncated varint". */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_internal.h"

/* A tensor as a constant value of the graph: named (initializer) or
** anonymous (attribute). */
static int tensor_const(reader *r, const tensor_info *t, int v)
{
  return lm_graph_set_const(r->g, v, t->dt, t->ndim, t->dims, t->data, false);
}

/* ---- ValueInfoProto ------------------------------------------------------- */

typedef struct type_info {
  bool dt_known;
  lm_dtype dt;
  int ndim;                      /* -1: unknown rank */
  int64_t shape[LM_MAX_DIMS];
} type_info;

/* TensorShapeProto: dim_value, or -1 for dim_param and unset dims. */
static int read_shape(reader *r, const pb_field *sf, type_info *ti)
{
  ti->ndim = 0;
  pb_cursor c = pb_cursor_of(sf->data, sf->len);
  pb_field f;
  int k;
  while ((k = onnx_next(r, &c, &f, NULL, 0, NULL)) > 0) {
    if (f.num != 1) continue;
    if (onnx_want(r, &f, PB_LEN, "shape.dim") < 0) return LM_EFORMAT;
    if (ti->ndim >= LM_MAX_DIMS) return onnx_fail(r, LM_EUNSUPPORTED, "shape: more than %d dims", LM_MAX_DIMS);
    int64_t extent = -1;
    pb_cursor d = pb_cursor_of(f.data, f.len);
    pb_field df;
    while ((k = onnx_next(r, &d, &df, NULL, 0, NULL)) > 0) {
      if (df.num == 1) {
        if (onnx_want(r, &df, PB_VARINT, "dim_value") < 0) return LM_EFORMAT;
        if ((int64_t)df.v < 0)
          return onnx_fail(r, LM_EFORMAT, "dim_value %lld is negative", (long long)(int64_t)df.v);
        extent = (int64_t)df.v;
      } else if (df.num == 2) {
        extent = -1;   /* dim_param: a named dynamic extent */
      }
    }
    if (k < 0) return LM_EFORMAT;
    ti->shape[ti->ndim++] = extent;
  }
  return k < 0 ? LM_EFORMAT : LM_OK;
}

/* ValueInfoProto: its name and, for tensor types, dtype and shape.  Other
** types (sequences, maps) and element types lumen has no dtype for stay
** unknown: the plan or the passes refuse them where they matter. */
static int read_value_info(reader *r, const uint8_t *buf, size_t len, const uint8_t **name,
                           size_t *name_len, type_info *ti)
{
  memset(ti, 0, sizeof *ti);
  ti->ndim = -1;
  *name = NULL;
  *name_len = 0;
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  int k;
  while ((k = onnx_next(r, &c, &f, NULL, 0, NULL)) > 0) {
    if (f.num == 1) {
      if (onnx_want(r, &f, PB_LEN, "name") < 0) return LM_EFORMAT;
      *name = f.data;
      *name_len = f.len;
    } else if (f.num == 2) {
      if (onnx_want(r, &f, PB_LEN, "type") < 0) return LM_EFORMAT;
      pb_cursor tc = pb_cursor_of(f.data, f.len);
      pb_field tf;
      while ((k = onnx_next(r, &tc, &tf, NULL, 0, NULL)) > 0) {
        if (tf.num != 1) continue;   /* tensor_type only */
        if (onnx_want(r, &tf, PB_LEN, "type.tensor_type") < 0) return LM_EFORMAT;
        pb_cursor ec = pb_cursor_of(tf.data, tf.len);
        pb_field ef;
        while ((k = onnx_next(r, &ec, &ef, NULL, 0, NULL)) > 0) {
          if (ef.num == 1) {
            if (onnx_want(r, &ef, PB_VARINT, "elem_type") < 0) return LM_EFORMAT;
            ti->dt_known = ef.v <= INT_MAX && lm_dtype_from_onnx((int)ef.v, &ti->dt) == LM_OK;
          } else if (ef.num == 2) {
            if (onnx_want(r, &ef, PB_LEN, "shape") < 0) return LM_EFORMAT;
            if (read_shape(r, &ef, ti) < 0) return LM_EFORMAT;
          }
        }
        if (k < 0) return LM_EFORMAT;
      }
      if (k < 0) return LM_EFORMAT;
    }
  }
  return k < 0 ? LM_EFORMAT : LM_OK;
}

static void apply_type(lm_graph *g, int v, const type_info *ti)
{
  if (ti->dt_known) {
    lm_graph_set_type(g, v, ti->dt, ti->ndim, ti->shape);
  } else {
    g->values[v].ndim = ti->ndim;
    for (int i = 0; i < ti->ndim; i++) g->values[v].shape[i] = ti->shape[i];
  }
}

/* ---- function scopes --------------------------------------------------------- */

/* Calls of model-local functions nest at most this deep (a function that
** calls itself would otherwise never end). */
#define MAX_INLINE_DEPTH 16
/* ... and at most this many calls in all (a few bytes of nesting can
** otherwise ask for exponentially many copies). */
#define MAX_INLINED_CALLS 10000

/* The name a value has in the graph: as written at the top level, with the
** call's prefix inside a function (in scratch memory). */
static const char *scoped_name(reader *r, const onnx_scope *sc, const uint8_t *name, size_t n)
{
  if (!sc) return onnx_scratch_str(r, name, n);
  size_t pl = strlen(sc->prefix);
  char *p = onnx_scratch(r, pl + n);
  if (!p) return NULL;
  memcpy(p, sc->prefix, pl);
  if (n) memcpy(p + pl, name, n);
  p[pl + n] = 0;
  return p;
}

/* A formal parameter of the scope by name: index into names, or -1. */
static int formal(const uint8_t *const *names, const size_t *lens, int count, const uint8_t *name,
                  size_t n)
{
  for (int i = 0; i < count; i++)
    if (lens[i] == n && memcmp(names[i], name, n) == 0) return i;
  return -1;
}

/* ---- NodeProto ------------------------------------------------------------ */

static const onnx_function *find_function(const reader *r, const uint8_t *dom, size_t dom_len,
                                           const uint8_t *op, size_t op_len)
{
  for (int i = 0; i < r->nfunctions; i++) {
    const onnx_function *fn = &r->functions[i];
    if (fn->name_len == op_len && memcmp(fn->name, op, op_len) == 0 && fn->domain_len == dom_len &&
        memcmp(fn->domain, dom, dom_len) == 0)
      return fn;
  }
  return NULL;
}

/* The value a node input names: -1 for an optional input left out, -2 on
** error.  An undefined name becomes a value without producer: the passes
** report it. */
static int input_value(reader *r, const onnx_scope *sc, const uint8_t *name, size_t n)
{
  if (n == 0) return -1;
  if (sc) {
    int i = formal(sc->in_name, sc->in_len, sc->nin, name, n);
    if (i >= 0) return sc->in_value[i];
    i = formal(sc->out_name, sc->out_len, sc->nout, name, n);
    if (i >= 0) return sc->out_value[i];
  }
  const char *nm = scoped_name(r, sc, name, n);
  int v = nm ? lm_graph_value(r->g, nm) : -1;
  if (v < 0) onnx_fail(r, LM_ENOMEM, "out of memory");
  return v < 0 ? -2 : v;
}

/* The value a node output defines: fresh, or an error if something else
** already defines that name (ONNX graphs are in SSA form).  -2 on error. */
static int output_value(reader *r, const onnx_scope *sc, const uint8_t *name, size_t n)
{
  lm_graph *g = r->g;
  int v;
  char shown_name[64];
  if (n == 0) {
    v = lm_graph_value(g, "");   /* optional output left out */
  } else if (sc && formal(sc->in_name, sc->in_len, sc->nin, name, n) >= 0) {
    onnx_fail(r, LM_EFORMAT, "output '%s' is an input of the function",
              onnx_shown(shown_name, sizeof shown_name, name, n));
    return -2;
  } else if (sc && formal(sc->out_name, sc->out_len, sc->nout, name, n) >= 0) {
    v = sc->out_value[formal(sc->out_name, sc->out_len, sc->nout, name, n)];
  } else {
    const char *nm = scoped_name(r, sc, name, n);
    v = nm ? lm_graph_value(g, nm) : -1;
  }
  if (v < 0) {
    onnx_fail(r, LM_ENOMEM, "out of memory");
    return -2;
  }
  const lm_gvalue *val = &g->values[v];
  if (n && (val->producer >= 0 || val->data || val->is_input)) {
    onnx_fail(r, LM_EFORMAT, "output '%s' is already defined%s",
              onnx_shown(shown_name, sizeof shown_name, name, n),
              val->data ? " (an initializer)" : val->is_input ? " (a graph input)" : " (by another node)");
    return -2;
  }
  return v;
}

static int read_node(reader *r, const onnx_scope *sc, int index, const uint8_t *buf, size_t len);

/* A strings field (FunctionProto.input / output) as arrays in the arena. */
static int read_names(reader *r, const onnx_function *fn, uint32_t field, int *count,
                      const uint8_t ***names, size_t **lens)
{
  int n = 0;
  pb_cursor c = pb_cursor_of(fn->buf, fn->len);
  pb_field f;
  int k;
  while ((k = onnx_next(r, &c, &f, NULL, 0, NULL)) > 0)
    if (f.num == field) {
      if (onnx_want(r, &f, PB_LEN, field == 4 ? "input" : "output") < 0) return LM_EFORMAT;
      n++;
    }
  if (k < 0) return LM_EFORMAT;
  *names = lm_graph_alloc(r->g, sizeof **names * (size_t)(n ? n : 1));
  *lens = lm_graph_alloc(r->g, sizeof **lens * (size_t)(n ? n : 1));
  if (!*names || !*lens) return onnx_fail(r, LM_ENOMEM, "out of memory");
  n = 0;
  c = pb_cursor_of(fn->buf, fn->len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0)
    if (f.num == field) {
      (*names)[n] = f.data;
      (*lens)[n++] = f.len;
    }
  *count = n;
  return LM_OK;
}

/* Inline a call of fn: the function's nodes join the graph, its inputs and
** outputs bound to the call's. */
static int inline_call(reader *r, const onnx_scope *parent, const onnx_function *fn, const uint8_t *buf,
                       size_t len, int nin, int nout)
{
  char shown_fn[64];
  onnx_shown(shown_fn, sizeof shown_fn, fn->name, fn->name_len);
  int depth = parent ? parent->depth + 1 : 1;
  if (depth > MAX_INLINE_DEPTH)
    return onnx_fail(r, LM_EUNSUPPORTED, "model-local functions nest deeper than %d (a recursive function?)",
                     MAX_INLINE_DEPTH);
  if (r->ninlined >= MAX_INLINED_CALLS)
    return onnx_fail(r, LM_EUNSUPPORTED, "more than %d calls of model-local functions", MAX_INLINED_CALLS);
  onnx_scope sc = {.parent = parent, .fn = fn, .depth = depth, .call = buf, .call_len = len};
  snprintf(sc.prefix, sizeof sc.prefix, "%s#%d/", shown_fn, r->ninlined++);
  int st = read_names(r, fn, 4, &sc.nin, &sc.in_name, &sc.in_len);
  if (st == LM_OK) st = read_names(r, fn, 5, &sc.nout, &sc.out_name, &sc.out_len);
  if (st < 0) return st;
  if (nin > sc.nin || nout > sc.nout)
    return onnx_fail(r, LM_EFORMAT, "the call has %d inputs and %d outputs; function '%s' has %d and %d", nin,
                     nout, shown_fn, sc.nin, sc.nout);
  sc.in_value = lm_graph_alloc(r->g, sizeof(int) * (size_t)(sc.nin + 1));
  sc.out_value = lm_graph_alloc(r->g, sizeof(int) * (size_t)(sc.nout + 1));
  if (!sc.in_value || !sc.out_value) return onnx_fail(r, LM_ENOMEM, "out of memory");
  /* The call's values, named in the caller's scope; inputs and outputs the
   * call leaves out are absent (-1) and fresh anonymous values. */
  int ii = 0, oi = 0;
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num == 1) {
      int v = input_value(r, parent, f.data, f.len);
      if (v == -2) return LM_ENOMEM;
      sc.in_value[ii++] = v;
    } else if (f.num == 2) {
      int v = output_value(r, parent, f.data, f.len);
      if (v == -2) return LM_EFORMAT;
      sc.out_value[oi++] = v;
    }
  }
  for (; ii < sc.nin; ii++) sc.in_value[ii] = -1;
  for (; oi < sc.nout; oi++) {
    sc.out_value[oi] = lm_graph_value(r->g, "");
    if (sc.out_value[oi] < 0) return onnx_fail(r, LM_ENOMEM, "out of memory");
  }
  int n = 0;
  c = pb_cursor_of(fn->buf, fn->len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num != 7) continue;
    if (f.wire != PB_LEN) return onnx_fail(r, LM_EFORMAT, "function '%s': node: wire type %d", shown_fn, f.wire);
    size_t mark = onnx_ctx_push(r, "function '%s'", shown_fn);
    st = read_node(r, &sc, n++, f.data, f.len);
    onnx_ctx_pop(r, mark);
    if (st < 0) return st;
  }
  return LM_OK;
}

static int read_node(reader *r, const onnx_scope *sc, int index, const uint8_t *buf, size_t len)
{
  const uint8_t *op = NULL, *name = NULL, *dom = NULL;
  size_t op_len = 0, name_len = 0, dom_len = 0;
  int nin = 0, nout = 0;
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  int k;
  size_t mark = onnx_ctx_push(r, "node %d", index);
  int st = LM_OK;
  int *in = NULL, *out = NULL;
  static const char *const node_fields[8] = {NULL, "input", "output", "name", "op_type", "attribute",
                                             NULL, "domain"};
  while ((k = onnx_next(r, &c, &f, NULL, 0, NULL)) > 0) {
    if (f.num < 8 && node_fields[f.num] && onnx_want(r, &f, PB_LEN, node_fields[f.num]) < 0) {
      st = LM_EFORMAT;
      goto done;
    }
    switch (f.num) {
    case 1: nin++; break;
    case 2: nout++; break;
    case 3: name = f.data, name_len = f.len; break;
    case 4: op = f.data, op_len = f.len; break;
    case 7: dom = f.data, dom_len = f.len; break;
    default: break;
    }
  }
  if (k < 0) {
    st = LM_EFORMAT;
    goto done;
  }
  if (!op || op_len == 0) {
    st = onnx_fail(r, LM_EFORMAT, "no op_type");
    goto done;
  }
  char shown_op[64], shown_name[64];
  onnx_ctx_pop(r, mark);
  onnx_ctx_push(r, "node %d (%s '%s')", index, onnx_shown(shown_op, sizeof shown_op, op, op_len),
                onnx_shown(shown_name, sizeof shown_name, name ? name : (const uint8_t *)"", name_len));
  const onnx_function *fn = find_function(r, dom ? dom : (const uint8_t *)"", dom_len, op, op_len);
  if (fn) {
    st = inline_call(r, sc, fn, buf, len, nin, nout);
    goto done;
  }
  lm_graph *g = r->g;
  in = malloc(sizeof(int) * (size_t)(nin ? nin : 1));
  out = malloc(sizeof(int) * (size_t)(nout ? nout : 1));
  if (!in || !out) {
    st = onnx_fail(r, LM_ENOMEM, "out of memory");
    goto done;
  }
  int ii = 0, oi = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num == 1) {
      int v = input_value(r, sc, f.data, f.len);
      if (v == -2) {
        st = LM_ENOMEM;
        goto done;
      }
      in[ii++] = v;
    } else if (f.num == 2) {
      int v = output_value(r, sc, f.data, f.len);
      if (v == -2) {
        st = LM_EFORMAT;
        goto done;
      }
      /* The same name twice among this node's outputs. */
      for (int j = 0; j < oi; j++)
        if (out[j] == v && f.len) {
          st = onnx_fail(r, LM_EFORMAT, "output %d repeats an earlier output", oi);
          goto done;
        }
      out[oi++] = v;
    }
  }
  const char *opname = lm_graph_strdup(g, (const char *)op, op_len);
  const char *nodename = lm_graph_strdup(g, (const char *)(name ? name : (const uint8_t *)""), name_len);
  int idx = opname && nodename ? lm_graph_add_node(g, opname, nodename, nin, in, nout, out) : -1;
  if (idx < 0) {
    st = onnx_fail(r, LM_ENOMEM, "out of memory");
    goto done;
  }
  if (!onnx_default_domain(dom, dom_len)) {
    const char *d = lm_graph_strdup(g, (const char *)dom, dom_len);
    if (!d) {
      st = onnx_fail(r, LM_ENOMEM, "out of memory");
      goto done;
    }
    g->nodes[idx].domain = d;
  }
  int ai = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0)
    if (f.num == 5 && (st = onnx_read_attribute(r, sc, idx, ai++, f.data, f.len, NULL, 0)) < 0) goto done;
done:
  free(in);
  free(out);
  onnx_ctx_pop(r, mark);
  return st;
}

/* ---- GraphProto ----------------------------------------------------------- */

enum { G_NODE = 1, G_INITIALIZER = 5, G_INPUT = 11, G_OUTPUT = 12, G_VALUE_INFO = 13,
       G_SPARSE_INITIALIZER = 15, G_NFIELDS = 16 };

static const char *const graph_field_names[G_NFIELDS] = {
  [G_NODE] = "node", [2] = "name", [G_INITIALIZER] = "initializer", [10] = "doc_string",
  [G_INPUT] = "input", [G_OUTPUT] = "output", [G_VALUE_INFO] = "value_info",
  [14] = "quantization_annotation", [G_SPARSE_INITIALIZER] = "sparse_initializer"};

/* GraphProto, in passes: wire check, initializers, inputs, nodes, outputs
** and value_info, so that the order of the fields in the file does not
** matter. */
static int read_graph(reader *r, const uint8_t *buf, size_t len)
{
  lm_graph *g = r->g;
  size_t mark = strlen(r->ctx);   /* graph fields are named at the top level */
  int counts[G_NFIELDS];
  pb_cursor c;
  pb_field f;
  int k, st = LM_OK;
  char shown_name[64];

  /* Pass 1: the wire structure (so later passes cannot fail on it) and the
   * wire types of the repeated messages. */
  memset(counts, 0, sizeof counts);
  c = pb_cursor_of(buf, len);
  while ((k = onnx_next(r, &c, &f, graph_field_names, G_NFIELDS, counts)) > 0) {
    if (f.num == G_SPARSE_INITIALIZER) {
      st = onnx_fail(r, LM_EUNSUPPORTED, "sparse_initializer: sparse tensors are not supported");
      goto out;
    }
    if ((f.num == G_NODE || f.num == G_INITIALIZER || f.num == G_INPUT || f.num == G_OUTPUT ||
         f.num == G_VALUE_INFO) && onnx_want(r, &f, PB_LEN, graph_field_names[f.num]) < 0) {
      st = LM_EFORMAT;
      goto out;
    }
  }
  if (k < 0) {
    st = LM_EFORMAT;
    goto out;
  }

  /* Pass 2: initializers become named constants. */
  int n = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num != G_INITIALIZER) continue;
    tensor_info t;
    /* The name first, for the messages of read_tensor. */
    const uint8_t *tname = NULL;
    size_t tname_len = 0;
    pb_cursor tc = pb_cursor_of(f.data, f.len);
    pb_field tf;
    while (pb_next(&tc, &tf, &(const char *){NULL}) > 0)
      if (tf.num == T_NAME && tf.wire == PB_LEN) tname = tf.data, tname_len = tf.len;
    size_t m2 = tname_len ? onnx_ctx_push(r, "initializer '%s'", onnx_shown(shown_name, sizeof shown_name, tname, tname_len))
                          : onnx_ctx_push(r, "initializer %d", n);
    n++;
    st = onnx_read_tensor(r, f.data, f.len, &t);
    if (st == LM_OK && t.name_len == 0) st = onnx_fail(r, LM_EFORMAT, "no name");
    if (st == LM_OK) {
      const char *nm = onnx_scratch_str(r, t.name, t.name_len);
      int v = nm ? lm_graph_value(g, nm) : -1;
      if (v < 0) st = onnx_fail(r, LM_ENOMEM, "out of memory");
      else if (g->values[v].data) st = onnx_fail(r, LM_EFORMAT, "defined twice");
      else st = tensor_const(r, &t, v);
    }
    onnx_ctx_pop(r, m2);
    if (st < 0) goto out;
  }

  /* Pass 3: inputs; those that are initializers are constants. */
  n = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num != G_INPUT) continue;
    const uint8_t *name;
    size_t name_len;
    type_info ti;
    size_t m2 = onnx_ctx_push(r, "input %d", n++);
    st = read_value_info(r, f.data, f.len, &name, &name_len, &ti);
    if (st == LM_OK && name_len == 0) st = onnx_fail(r, LM_EFORMAT, "no name");
    onnx_ctx_pop(r, m2);
    if (st < 0) goto out;
    const char *nm = onnx_scratch_str(r, name, name_len);
    int v = nm ? lm_graph_value(g, nm) : -1;
    if (v < 0) {
      st = onnx_fail(r, LM_ENOMEM, "out of memory");
      goto out;
    }
    if (g->values[v].data) continue;
    if (g->values[v].is_input) {
      st = onnx_fail(r, LM_EFORMAT, "input '%s' is declared twice",
                onnx_shown(shown_name, sizeof shown_name, name, name_len));
      goto out;
    }
    apply_type(g, v, &ti);
    if ((st = lm_graph_add_input(g, v)) < 0) goto out;
  }

  /* Pass 4: nodes. */
  n = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0)
    if (f.num == G_NODE && (st = read_node(r, NULL, n++, f.data, f.len)) < 0) goto out;

  /* Pass 5: outputs and the declared types of intermediate values. */
  n = 0;
  int nv = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num != G_OUTPUT && f.num != G_VALUE_INFO) continue;
    const uint8_t *name;
    size_t name_len;
    type_info ti;
    size_t m2 = f.num == G_OUTPUT ? onnx_ctx_push(r, "output %d", n++) : onnx_ctx_push(r, "value_info %d", nv++);
    st = read_value_info(r, f.data, f.len, &name, &name_len, &ti);
    if (st == LM_OK && name_len == 0) st = onnx_fail(r, LM_EFORMAT, "no name");
    onnx_ctx_pop(r, m2);
    if (st < 0) goto out;
    const char *nm = onnx_scratch_str(r, name, name_len);
    if (!nm) {
      st = LM_ENOMEM;
      goto out;
    }
    /* value_info for a name nothing uses says nothing we need. */
    int v = f.num == G_OUTPUT ? lm_graph_value(g, nm) : lm_graph_find_value(g, nm);
    if (v < 0) {
      if (f.num == G_VALUE_INFO) continue;
      st = onnx_fail(r, LM_ENOMEM, "out of memory");
      goto out;
    }
    if (!g->values[v].data && !g->values[v].is_input) apply_type(g, v, &ti);
    if (f.num == G_OUTPUT && (st = lm_graph_add_output(g, v)) < 0) goto out;
  }
out:
  onnx_ctx_pop(r, mark);
  return st;
}

/* ---- ModelProto ----------------------------------------------------------- */

static const char *const model_field_names[26] = {
  [1] = "ir_version", [2] = "producer_name", [3] = "producer_version", [4] = "domain",
  [5] = "model_version", [6] = "doc_string", [7] = "graph", [8] = "opset_import",
  [14] = "metadata_props", [20] = "training_info", [25] = "functions"};

/* FunctionProto: name 1, domain 10; the rest is read when a node calls it. */
static int read_function_id(reader *r, const pb_field *f, onnx_function *fn)
{
  pb_cursor c = pb_cursor_of(f->data, f->len);
  pb_field ff;
  int k;
  fn->name = fn->domain = (const uint8_t *)"";
  fn->name_len = fn->domain_len = 0;
  fn->buf = f->data;
  fn->len = f->len;
  while ((k = onnx_next(r, &c, &ff, NULL, 0, NULL)) > 0) {
    if ((ff.num == 1 || ff.num == 10) && onnx_want(r, &ff, PB_LEN, ff.num == 1 ? "name" : "domain") < 0)
      return LM_EFORMAT;
    if (ff.num == 1) fn->name = ff.data, fn->name_len = ff.len;
    else if (ff.num == 10) fn->domain = ff.data, fn->domain_len = ff.len;
  }
  return k < 0 ? LM_EFORMAT : LM_OK;
}

static int read_model(reader *r, const uint8_t *buf, size_t len)
{
  lm_graph *g = r->g;
  const uint8_t *graph = NULL, *pname = NULL, *pver = NULL;
  size_t graph_len = 0, pname_len = 0, pver_len = 0;
  int counts[26] = {0};
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  int k;
  while ((k = onnx_next(r, &c, &f, model_field_names, 26, counts)) > 0) {
    switch (f.num) {
    case 2: case 3: case 7: case 8: case 25:
      if (onnx_want(r, &f, PB_LEN, model_field_names[f.num]) < 0) return LM_EFORMAT;
      if (f.num == 2) pname = f.data, pname_len = f.len;
      if (f.num == 3) pver = f.data, pver_len = f.len;
      if (f.num == 7) graph = f.data, graph_len = f.len;
      break;
    case 1:
      if (onnx_want(r, &f, PB_VARINT, "ir_version") < 0) return LM_EFORMAT;
      break;
    default:
      break;
    }
    if (f.num == 8) {
      /* OperatorSetIdProto: domain 1, version 2. */
      pb_cursor oc = pb_cursor_of(f.data, f.len);
      pb_field of;
      const uint8_t *dom = NULL;
      size_t dom_len = 0;
      uint64_t version = 0;
      size_t m2 = onnx_ctx_push(r, "opset_import %d", counts[8] - 1);
      while ((k = onnx_next(r, &oc, &of, NULL, 0, NULL)) > 0) {
        if (of.num == 1 && onnx_want(r, &of, PB_LEN, "domain") == LM_OK) dom = of.data, dom_len = of.len;
        else if (of.num == 2 && onnx_want(r, &of, PB_VARINT, "version") == LM_OK) version = of.v;
        else if (of.num == 1 || of.num == 2) k = -1;
        if (k < 0) break;
      }
      onnx_ctx_pop(r, m2);
      if (k < 0) return LM_EFORMAT;
      if (onnx_default_domain(dom, dom_len)) {
        if (version == 0 || version > 1000)
          return onnx_fail(r, LM_EFORMAT, "opset_import: default-domain version %llu",
                      (unsigned long long)version);
        g->opset = (int)version;
      }
    }
  }
  if (k < 0) return LM_EFORMAT;
  if (!graph) return onnx_fail(r, LM_EFORMAT, "graph: missing (not an ONNX model?)");

  if (pname_len || pver_len) {
    char *p = lm_graph_alloc(g, pname_len + pver_len + 2);
    if (!p) return onnx_fail(r, LM_ENOMEM, "out of memory");
    if (pname_len) memcpy(p, pname, pname_len);
    if (pname_len && pver_len) p[pname_len] = ' ';
    if (pver_len) memcpy(p + pname_len + (pname_len ? 1 : 0), pver, pver_len);
    g->producer = p;
  }

  int nfn = counts[25];
  if (nfn) {
    r->functions = lm_graph_alloc(g, sizeof *r->functions * (size_t)nfn);
    if (!r->functions) return onnx_fail(r, LM_ENOMEM, "out of memory");
    c = pb_cursor_of(buf, len);
    while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
      if (f.num != 25) continue;
      size_t m2 = onnx_ctx_push(r, "functions %d", r->nfunctions);
      int st = read_function_id(r, &f, &r->functions[r->nfunctions]);
      onnx_ctx_pop(r, m2);
      if (st < 0) return st;
      r->nfunctions++;
    }
  }
  return read_graph(r, graph, graph_len);
}

/* ---- entry points --------------------------------------------------------- */

static int load(const void *buf, size_t len, const char *name, const char *base_dir,
                mapped_file *mapping, lm_graph **out, char *err, size_t errlen)
{
  *out = NULL;
  lm_graph *g = lm_graph_new();
  if (!g) {
    if (mapping) onnx_mapped_file_release(mapping);
    snprintf(err, errlen, "%s: out of memory", name);
    return LM_ENOMEM;
  }
  if (mapping && lm_graph_keep(g, onnx_mapped_file_release, mapping) != LM_OK) {
    onnx_mapped_file_release(mapping);
    snprintf(err, errlen, "%s: out of memory", name);
    lm_graph_free(g);
    return LM_ENOMEM;
  }
  reader r = {.g = g, .file = name, .base_dir = base_dir};
  g->source = lm_graph_strdup(g, name, (size_t)-1);
  int st = g->source ? read_model(&r, buf, len) : lm_graph_error(g, LM_ENOMEM, "%s: out of memory", name);
  free(r.scratch);
  onnx_ext_files_free(r.ext);
  if (st < 0) {
    snprintf(err, errlen, "%s", g->err);
    lm_graph_free(g);
    return st;
  }
  *out = g;
  return LM_OK;
}

int lm_onnx_load_buffer(const void *buf, size_t len, const char *name, lm_graph **out, char *err,
                        size_t errlen)
{
  return load(buf, len, name ? name : "(buffer)", NULL, NULL, out, err, errlen);
}

/* Map a whole file read-only; NULL mapping for an empty file is an error. */
static int map_file(const char *path, mapped_file **out, char *err, size_t errlen)
{
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return errno == ENOENT ? LM_ENOENT : LM_EIO;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    snprintf(err, errlen, "%s: not a regular file", path);
    close(fd);
    return LM_EIO;
  }
  if (sb.st_size == 0) {
    snprintf(err, errlen, "%s: empty file", path);
    close(fd);
    return LM_EFORMAT;
  }
  mapped_file *m = calloc(1, sizeof *m);
  void *a = m ? mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  int e = errno;
  close(fd);
  if (a == MAP_FAILED) {
    snprintf(err, errlen, "%s: %s", path, m ? strerror(e) : "out of memory");
    free(m);
    return m ? LM_EIO : LM_ENOMEM;
  }
  m->addr = a;
  m->len = (size_t)sb.st_size;
  *out = m;
  return LM_OK;
}

int lm_onnx_load(const char *path, lm_graph **out, char *err, size_t errlen)
{
  *out = NULL;
  mapped_file *m;
  int st = map_file(path, &m, err, errlen);
  if (st < 0) return st;
  /* Weights are read once, front to back, when plans repack them. */
  madvise(m->addr, m->len, MADV_SEQUENTIAL);
  char *dir = strdup(path);
  if (!dir) {
    onnx_mapped_file_release(m);
    snprintf(err, errlen, "%s: out of memory", path);
    return LM_ENOMEM;
  }
  char *slash = strrchr(dir, '/');
  const char *base = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
  st = load(m->addr, m->len, path, base, m, out, err, errlen);
  free(dir);
  return st;
}

int lm_onnx_read_tensor_file(const char *path, lm_dtype *dt, int *ndim, int64_t *shape,
                             void **data, size_t *nbytes, char *err, size_t errlen)
{
  *data = NULL;
  *nbytes = 0;
  mapped_file *m;
  int st = map_file(path, &m, err, errlen);
  if (st < 0) return st;
  /* A scratch graph is the arena for typed fields and holds the message. */
  lm_graph *g = lm_graph_new();
  if (!g) {
    onnx_mapped_file_release(m);
    snprintf(err, errlen, "%s: out of memory", path);
    return LM_ENOMEM;
  }
  reader r = {.g = g, .file = path};
  tensor_info t;
  st = onnx_read_tensor(&r, m->addr, m->len, &t);
  free(r.scratch);
  if (st == LM_OK) {
    void *copy = malloc(t.nbytes ? t.nbytes : 1);
    if (!copy) {
      st = lm_graph_error(g, LM_ENOMEM, "%s: out of memory (%zu bytes)", path, t.nbytes);
    } else {
      if (t.nbytes) memcpy(copy, t.data, t.nbytes);
      *data = copy;
      *nbytes = t.nbytes;
      *dt = t.dt;
      *ndim = t.ndim;
      for (int i = 0; i < t.ndim; i++) shape[i] = t.dims[i];
    }
  }
  if (st < 0) snprintf(err, errlen, "%s", g->err);
  lm_graph_free(g);
  onnx_mapped_file_release(m);
  return st;
}
