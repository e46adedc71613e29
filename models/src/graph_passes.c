/* Graph passes (graph.h, "passes"): topological sort, Identity/Dropout
 * aliasing, shape and dtype inference, constant and shape folding,
 * BatchNormalization folded into a preceding Conv/ConvTranspose, dead-node
 * removal.  lm_graph_prepare and lm_graph_specialize run the same pipeline;
 * specialize first forgets what the previous shapes implied.
 *
 * Folding and input shapes.  A node folded from constants alone is gone for
 * good (its outputs become plain constants, producer -1).  A node folded
 * because shapes were known (Shape, Size, and everything computed from their
 * results) depends on the graph input shapes: it stays in the graph with its
 * outputs holding data, so that specialising to other input shapes can fold
 * it again with the new ones.  A plan skips nodes whose outputs are all
 * constant. */
#include "graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"

/* Constants larger than this are left to run time rather than folded, so a
 * constant Expand to a whole volume does not bloat the graph. */
#define FOLD_MAX_BYTES ((size_t)64 << 20)

static const char *src_name(const lm_graph *g)
{
  return g->source && *g->source ? g->source : "graph";
}

static const char *node_name(const lm_gnode *n)
{
  return n->name && *n->name ? n->name : "(unnamed)";
}

static const char *value_name(const lm_graph *g, int v)
{
  return *g->values[v].name ? g->values[v].name : "(anonymous)";
}

/* Ops the passes handle themselves, whatever the CPU table says. */
static bool pass_handled(const char *op)
{
  return !strcmp(op, "Identity") || !strcmp(op, "Dropout") ||
         !strcmp(op, "Constant");
}

static bool default_domain(const lm_gnode *n)
{
  return !n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx");
}

/* ---- unsupported ops ------------------------------------------------------ */

static bool node_supported(const lm_gnode *n)
{
  return default_domain(n) && (pass_handled(n->op) || lm_cpu_kernel_find(n->op) != NULL);
}

static int check_supported(lm_graph *g)
{
  char list[300] = "";
  size_t len = 0;
  int count = 0;
  const char *first_node = NULL;
  bool *bad = calloc((size_t)g->nnodes + 1, sizeof *bad);
  if (!bad) return lm_graph_error(g, LM_ENOMEM, "out of memory");
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead || node_supported(n)) continue;
    bad[i] = true;
    /* List each op type once. */
    bool seen = false;
    for (int j = 0; j < i && !seen; j++)
      seen = bad[j] && !strcmp(g->nodes[j].op, n->op) &&
             !strcmp(g->nodes[j].domain ? g->nodes[j].domain : "", n->domain ? n->domain : "");
    if (seen) continue;
    if (!first_node) first_node = node_name(n);
    count++;
    int w = default_domain(n)
                ? snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", n->op)
                : snprintf(list + len, sizeof list - len, "%s%s::%s", len ? ", " : "",
                           n->domain, n->op);
    if (w > 0) len = len + (size_t)w < sizeof list ? len + (size_t)w : sizeof list - 1;
  }
  free(bad);
  if (!count) return LM_OK;
  return lm_graph_error(g, LM_EINVAL,
                        "%s: %d op type%s not supported by the CPU backend: %s "
                        "(first at node '%s')",
                        src_name(g), count, count > 1 ? "s" : "", list, first_node);
}

/* ---- topological sort ----------------------------------------------------- */

/* Min-heap of node indices, so that a graph already in order keeps it. */
typedef struct heap {
  int *a;
  int n;
} heap;

static void heap_push(heap *h, int x)
{
  int i = h->n++;
  h->a[i] = x;
  while (i > 0 && h->a[(i - 1) / 2] > h->a[i]) {
    int p = (i - 1) / 2, t = h->a[p];
    h->a[p] = h->a[i];
    h->a[i] = t;
    i = p;
  }
}

static int heap_pop(heap *h)
{
  int top = h->a[0];
  h->a[0] = h->a[--h->n];
  int i = 0;
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && h->a[l] < h->a[m]) m = l;
    if (r < h->n && h->a[r] < h->a[m]) m = r;
    if (m == i) break;
    int t = h->a[m];
    h->a[m] = h->a[i];
    h->a[i] = t;
    i = m;
  }
  return top;
}

/* A value is defined without a producer when it is a graph input, a
 * constant, or an alias of such a value. */
static bool defined_without_producer(const lm_graph *g, int v)
{
  int r = lm_graph_resolve(g, v);
  const lm_gvalue *val = &g->values[r];
  return val->is_input || val->data != NULL || val->producer >= 0;
}

static void recompute_producers(lm_graph *g)
{
  for (int v = 0; v < g->nvalues; v++) g->values[v].producer = -1;
  for (int i = 0; i < g->nnodes; i++) {
    if (g->nodes[i].dead) continue;
    for (int j = 0; j < g->nodes[i].nout; j++)
      if (g->nodes[i].out[j] >= 0) g->values[g->nodes[i].out[j]].producer = i;
  }
}

static int topo_sort(lm_graph *g)
{
  int nn = g->nnodes;
  /* Producers, checking that no value has two. */
  for (int v = 0; v < g->nvalues; v++) g->values[v].producer = -1;
  for (int i = 0; i < nn; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nout; j++) {
      int v = n->out[j];
      if (v < 0) continue;
      if (g->values[v].producer >= 0)
        return lm_graph_error(g, LM_EINVAL,
                              "%s: value '%s' is produced by node '%s' and by node '%s'",
                              src_name(g), value_name(g, v),
                              node_name(&g->nodes[g->values[v].producer]), node_name(n));
      if (g->values[v].is_input)
        return lm_graph_error(g, LM_EINVAL,
                              "%s: node '%s' (%s) writes '%s', which is a graph input",
                              src_name(g), node_name(n), n->op, value_name(g, v));
      g->values[v].producer = i;
    }
  }
  /* Every input defined. */
  for (int i = 0; i < nn; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++) {
      int v = n->in[j];
      if (v < 0) continue;
      if (!defined_without_producer(g, v))
        return lm_graph_error(g, LM_EINVAL,
                              "%s: input %d '%s' of node '%s' (%s) is not defined (no node "
                              "produces it and it is neither a graph input nor a constant)",
                              src_name(g), j, value_name(g, v), node_name(n), n->op);
    }
  }
  for (int i = 0; i < g->noutputs; i++)
    if (!defined_without_producer(g, g->outputs[i]))
      return lm_graph_error(g, LM_EINVAL, "%s: graph output '%s' is not defined",
                            src_name(g), value_name(g, g->outputs[i]));

  /* Kahn's algorithm over producer -> consumer edges. */
  int *indeg = calloc((size_t)nn + 1, sizeof *indeg);
  int *order = malloc(sizeof *order * ((size_t)nn + 1));
  int *cstart = calloc((size_t)nn + 2, sizeof *cstart);
  int nedges = 0;
  for (int i = 0; i < nn; i++)
    if (!g->nodes[i].dead) nedges += g->nodes[i].nin;
  int *cons = malloc(sizeof *cons * ((size_t)nedges + 1));
  heap h = {malloc(sizeof(int) * ((size_t)nn + 1)), 0};
  int rc = LM_OK;
  if (!indeg || !order || !cstart || !cons || !h.a) {
    rc = lm_graph_error(g, LM_ENOMEM, "out of memory");
    goto done;
  }
  for (int i = 0; i < nn; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++) {
      int v = n->in[j] >= 0 ? lm_graph_resolve(g, n->in[j]) : -1;
      int p = v >= 0 ? g->values[v].producer : -1;
      if (p >= 0) {
        cstart[p + 1]++;
        indeg[i]++;
      }
    }
  }
  for (int i = 0; i < nn; i++) cstart[i + 1] += cstart[i];
  int *fill = calloc((size_t)nn + 1, sizeof *fill);
  if (!fill) {
    rc = lm_graph_error(g, LM_ENOMEM, "out of memory");
    goto done;
  }
  for (int i = 0; i < nn; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++) {
      int v = n->in[j] >= 0 ? lm_graph_resolve(g, n->in[j]) : -1;
      int p = v >= 0 ? g->values[v].producer : -1;
      if (p >= 0) cons[cstart[p] + fill[p]++] = i;
    }
  }
  free(fill);
  int nlive = 0, nout = 0;
  for (int i = 0; i < nn; i++) {
    if (g->nodes[i].dead) continue;
    nlive++;
    if (indeg[i] == 0) heap_push(&h, i);
  }
  while (h.n) {
    int i = heap_pop(&h);
    order[nout++] = i;
    for (int e = cstart[i]; e < cstart[i + 1]; e++)
      if (--indeg[cons[e]] == 0) heap_push(&h, cons[e]);
  }
  if (nout < nlive) {
    /* Name a value on the cycle: an input of a stuck node whose producer is
     * stuck too. */
    for (int i = 0; i < nn; i++) {
      const lm_gnode *n = &g->nodes[i];
      if (n->dead || indeg[i] == 0) continue;
      for (int j = 0; j < n->nin; j++) {
        int v = n->in[j] >= 0 ? lm_graph_resolve(g, n->in[j]) : -1;
        int p = v >= 0 ? g->values[v].producer : -1;
        if (p >= 0 && indeg[p] > 0) {
          rc = lm_graph_error(g, LM_EINVAL,
                              "%s: the graph has a cycle through value '%s' (node '%s' "
                              "(%s) reads it, node '%s' (%s) writes it)",
                              src_name(g), value_name(g, v), node_name(n), n->op,
                              node_name(&g->nodes[p]), g->nodes[p].op);
          goto done;
        }
      }
    }
    rc = lm_graph_error(g, LM_EINVAL, "%s: the graph has a cycle", src_name(g));
    goto done;
  }
  /* Permute: live nodes in order, then the dead ones. */
  lm_gnode *sorted = malloc(sizeof *sorted * ((size_t)nn + 1));
  if (!sorted) {
    rc = lm_graph_error(g, LM_ENOMEM, "out of memory");
    goto done;
  }
  int k = 0;
  for (int i = 0; i < nout; i++) sorted[k++] = g->nodes[order[i]];
  for (int i = 0; i < nn; i++)
    if (g->nodes[i].dead) sorted[k++] = g->nodes[i];
  memcpy(g->nodes, sorted, sizeof *sorted * (size_t)nn);
  free(sorted);
  recompute_producers(g);
done:
  free(indeg);
  free(order);
  free(cstart);
  free(cons);
  free(h.a);
  return rc;
}

/* ---- uses ----------------------------------------------------------------- */

/* uses[v]: live node inputs reading v (aliases resolved) plus graph outputs. */
static void count_uses(const lm_graph *g, int *uses)
{
  memset(uses, 0, sizeof *uses * (size_t)g->nvalues);
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] >= 0) uses[lm_graph_resolve(g, n->in[j])]++;
  }
  for (int i = 0; i < g->noutputs; i++) uses[lm_graph_resolve(g, g->outputs[i])]++;
}

/* ---- aliasing ------------------------------------------------------------- */

static int alias_pass(lm_graph *g)
{
  int *uses = malloc(sizeof *uses * ((size_t)g->nvalues + 1));
  if (!uses) return lm_graph_error(g, LM_ENOMEM, "out of memory");
  count_uses(g, uses);
  for (int i = 0; i < g->nnodes; i++) {
    lm_gnode *n = &g->nodes[i];
    if (n->dead || !default_domain(n)) continue;
    bool identity = !strcmp(n->op, "Identity");
    bool dropout = !strcmp(n->op, "Dropout");
    if (!identity && !dropout) continue;
    if (n->nin < 1 || n->in[0] < 0 || n->nout < 1 || n->out[0] < 0) {
      free(uses);
      return lm_graph_error(g, LM_EINVAL, "%s: node '%s' (%s) needs one input and one output",
                            src_name(g), node_name(n), n->op);
    }
    /* Dropout's mask (eval mode: all ones) is not produced by an alias. */
    if (dropout && n->nout > 1 && n->out[1] >= 0 && uses[n->out[1]] > 0) {
      free(uses);
      return lm_graph_error(g, LM_EINVAL,
                            "%s: node '%s' (Dropout): its mask output '%s' is used; only "
                            "inference-mode Dropout without a mask is supported",
                            src_name(g), node_name(n), value_name(g, n->out[1]));
    }
    int src = lm_graph_resolve(g, n->in[0]);
    g->values[n->out[0]].alias = src;
    g->values[n->out[0]].producer = -1;
    if (n->nout > 1 && n->out[1] >= 0) g->values[n->out[1]].producer = -1;
    n->dead = true;
  }
  free(uses);
  /* Readers see the value that holds the data. */
  for (int i = 0; i < g->nnodes; i++) {
    lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] >= 0) n->in[j] = lm_graph_resolve(g, n->in[j]);
  }
  return LM_OK;
}

/* Alias values carry the type (and data) of the value they stand for. */
static void sync_aliases(lm_graph *g)
{
  for (int v = 0; v < g->nvalues; v++) {
    lm_gvalue *a = &g->values[v];
    if (a->alias < 0) continue;
    const lm_gvalue *r = &g->values[lm_graph_resolve(g, v)];
    a->dt = r->dt;
    a->dt_known = r->dt_known;
    a->ndim = r->ndim;
    memcpy(a->shape, r->shape, sizeof a->shape);
    a->data = r->data;
    a->nbytes = r->nbytes;
  }
}

/* ---- Constant ------------------------------------------------------------- */

static int fold_constant_node(lm_graph *g, lm_gnode *n)
{
  if (n->nout < 1 || n->out[0] < 0)
    return lm_graph_error(g, LM_EINVAL, "%s: Constant node '%s' has no output",
                          src_name(g), node_name(n));
  int v = n->out[0];
  const lm_gattr *a;
  int rc;
  if ((a = lm_gnode_attr(n, "value")) && a->kind == LM_ATTR_TENSOR && a->tensor >= 0) {
    const lm_gvalue *t = &g->values[a->tensor];
    if (!t->data && lm_gvalue_numel(t) != 0)
      return lm_graph_error(g, LM_EINVAL, "%s: Constant node '%s': attribute 'value' has no data",
                            src_name(g), node_name(n));
    rc = lm_graph_set_const(g, v, t->dt, t->ndim, t->shape, t->data ? t->data : "", false);
  } else if ((a = lm_gnode_attr(n, "value_float")) && a->kind == LM_ATTR_FLOAT) {
    float f = (float)a->f;
    rc = lm_graph_set_const(g, v, LM_F32, 0, NULL, &f, true);
  } else if ((a = lm_gnode_attr(n, "value_int")) && a->kind == LM_ATTR_INT) {
    rc = lm_graph_set_const(g, v, LM_I64, 0, NULL, &a->i, true);
  } else if ((a = lm_gnode_attr(n, "value_ints")) && a->kind == LM_ATTR_INTS) {
    int64_t len = a->n;
    rc = lm_graph_set_const(g, v, LM_I64, 1, &len, a->n ? (const void *)a->ints : "", true);
  } else if ((a = lm_gnode_attr(n, "value_floats")) && a->kind == LM_ATTR_FLOATS) {
    int64_t len = a->n;
    float *f = lm_graph_alloc(g, sizeof *f * (size_t)(a->n ? a->n : 1));
    if (!f) return LM_ENOMEM;
    for (int i = 0; i < a->n; i++) f[i] = (float)a->floats[i];
    rc = lm_graph_set_const(g, v, LM_F32, 1, &len, f, false);
  } else {
    return lm_graph_error(g, LM_EINVAL,
                          "%s: Constant node '%s': no supported attribute (value, value_float, "
                          "value_floats, value_int, value_ints)",
                          src_name(g), node_name(n));
  }
  if (rc < 0) return rc;
  n->dead = true;
  g->values[v].producer = -1;
  return LM_OK;
}

/* ---- inference and folding ------------------------------------------------ */

static bool shape_known(const lm_gvalue *v)
{
  return v->dt_known && lm_gvalue_numel(v) >= 0;
}

/* Evaluate n into fresh constants when its inputs allow it.  *folded says
** whether it did; *shape_dep whether the result depends on input shapes. */
static int try_fold(lm_graph *g, lm_gnode *n, const lm_cpu_kernel *k,
                    const bool *shape_dep_in, bool *folded, bool *shape_dep)
{
  *folded = false;
  *shape_dep = false;
  if (!k->eval) return LM_OK;
  bool all_const = true, shapes_ok = true, dep = false;
  for (int j = 0; j < n->nin; j++) {
    int v = n->in[j];
    if (v < 0) continue;
    const lm_gvalue *val = &g->values[v];
    if (!val->data) all_const = false;
    else if (shape_dep_in[v]) dep = true;
    if (!shape_known(val)) shapes_ok = false;
  }
  if (!all_const && !(k->shape_only && shapes_ok)) return LM_OK;
  if (!all_const) dep = true;   /* read the shape of a run-time value */
  size_t total = 0;
  for (int j = 0; j < n->nout; j++) {
    int v = n->out[j];
    if (v < 0) continue;
    if (!shape_known(&g->values[v])) return LM_OK;   /* infer could not tell */
    total += (size_t)lm_gvalue_numel(&g->values[v]) * lm_dtype_size(g->values[v].dt);
  }
  if (total > FOLD_MAX_BYTES) return LM_OK;

  /* Shape-only ops read no data: give run-time inputs a non-NULL pointer so
   * they do not look like left-out optional inputs. */
  static const max_align_t no_data;
  /* Run-time tensor descriptors: on the stack for the usual few inputs
   * (Concat of shape pieces may have many). */
  lm_rt_tensor in_stack[16], out_stack[8];
  lm_rt_tensor *in = n->nin > 16 ? calloc((size_t)n->nin, sizeof *in) : in_stack;
  lm_rt_tensor *out = n->nout > 8 ? calloc((size_t)n->nout, sizeof *out) : out_stack;
  int rc = LM_OK;
  if (!in || !out) {
    rc = lm_graph_error(g, LM_ENOMEM, "out of memory");
    goto done;
  }
  for (int j = 0; j < n->nin; j++) {
    memset(&in[j], 0, sizeof in[j]);
    int v = n->in[j];
    if (v < 0) continue;
    const lm_gvalue *val = &g->values[v];
    in[j].dt = val->dt;
    in[j].ndim = val->ndim;
    memcpy(in[j].shape, val->shape, sizeof in[j].shape);
    in[j].data = val->data ? (void *)val->data : (void *)&no_data;
  }
  for (int j = 0; j < n->nout; j++) {
    memset(&out[j], 0, sizeof out[j]);
    int v = n->out[j];
    if (v < 0) continue;
    const lm_gvalue *val = &g->values[v];
    out[j].dt = val->dt;
    out[j].ndim = val->ndim;
    memcpy(out[j].shape, val->shape, sizeof out[j].shape);
    size_t nb = (size_t)lm_gvalue_numel(val) * lm_dtype_size(val->dt);
    out[j].data = lm_graph_alloc(g, nb ? nb : 1);
    if (!out[j].data) {
      rc = LM_ENOMEM;
      goto done;
    }
  }
  char err[256] = "";
  rc = k->eval(n, in, n->nin, out, n->nout, err, sizeof err);
  if (rc < 0) {
    lm_graph_error(g, rc, "%s: folding node '%s' (%s): %s", src_name(g), node_name(n), n->op,
                   err[0] ? err : lm_status_string(rc));
    goto done;
  }
  rc = LM_OK;
  for (int j = 0; j < n->nout; j++) {
    int v = n->out[j];
    if (v < 0) continue;
    lm_gvalue *val = &g->values[v];
    val->data = out[j].data;
    val->nbytes = (size_t)lm_gvalue_numel(val) * lm_dtype_size(val->dt);
  }
  *folded = true;
  *shape_dep = dep;
done:
  if (in != in_stack) free(in);
  if (out != out_stack) free(out);
  return rc;
}

static int infer_and_fold(lm_graph *g)
{
  bool *dep = calloc((size_t)g->nvalues + 1, sizeof *dep);
  if (!dep) return lm_graph_error(g, LM_ENOMEM, "out of memory");
  int rc = LM_OK;
  for (int i = 0; i < g->nnodes && rc == LM_OK; i++) {
    lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    if (!strcmp(n->op, "Constant")) {
      rc = fold_constant_node(g, n);
      continue;
    }
    const lm_cpu_kernel *k = lm_cpu_kernel_find(n->op);
    if (!k) {   /* check_supported ran first; a table change is a bug */
      rc = lm_graph_error(g, LM_EINVAL, "%s: node '%s': op %s is not supported",
                          src_name(g), node_name(n), n->op);
      break;
    }
    if (k->infer) {
      g->err[0] = 0;
      rc = k->infer(g, n);
      if (rc < 0) {
        if (!g->err[0])
          lm_graph_error(g, rc, "%s: shape inference failed at node '%s' (%s)",
                         src_name(g), node_name(n), n->op);
        break;
      }
      rc = LM_OK;
    }
    bool folded, shape_dep;
    rc = try_fold(g, n, k, dep, &folded, &shape_dep);
    if (rc < 0 || !folded) continue;
    if (shape_dep) {
      for (int j = 0; j < n->nout; j++)
        if (n->out[j] >= 0) dep[n->out[j]] = true;
    } else {
      /* Folded for good: the outputs are plain constants now. */
      for (int j = 0; j < n->nout; j++)
        if (n->out[j] >= 0) g->values[n->out[j]].producer = -1;
      n->dead = true;
    }
  }
  free(dep);
  return rc;
}

/* ---- BatchNormalization into Conv ----------------------------------------- */

static const float *const_f32(const lm_graph *g, int v, int64_t numel)
{
  if (v < 0) return NULL;
  const lm_gvalue *val = &g->values[v];
  if (!val->data || !val->dt_known || val->dt != LM_F32) return NULL;
  if (numel >= 0 && lm_gvalue_numel(val) != numel) return NULL;
  return val->data;
}

static bool only_output_used(const lm_gnode *n, const int *uses)
{
  for (int j = 1; j < n->nout; j++)
    if (n->out[j] >= 0 && uses[n->out[j]] > 0) return false;
  return n->nout >= 1 && n->out[0] >= 0;
}

static int fold_bn_into(lm_graph *g, lm_gnode *bn, int ci, lm_gnode *conv)
{
  bool transposed = !strcmp(conv->op, "ConvTranspose");
  const lm_gvalue *wv = &g->values[conv->in[1]];
  if (!const_f32(g, conv->in[1], -1) || wv->ndim < 3) return LM_OK;
  int64_t group = lm_gnode_attr_int(conv, "group", 1);
  if (group < 1) return LM_OK;
  int64_t cout = transposed ? wv->shape[1] * group : wv->shape[0];
  int64_t wnumel = lm_gvalue_numel(wv);
  const float *bias = NULL;
  if (conv->nin > 2 && conv->in[2] >= 0) {
    bias = const_f32(g, conv->in[2], cout);
    if (!bias) return LM_OK;
  }
  const float *scale = const_f32(g, bn->in[1], cout), *beta = const_f32(g, bn->in[2], cout);
  const float *mean = const_f32(g, bn->in[3], cout), *var = const_f32(g, bn->in[4], cout);
  if (!scale || !beta || !mean || !var) return LM_OK;
  double eps = lm_gnode_attr_float(bn, "epsilon", 1e-5);

  const float *w = wv->data;
  float *nw = lm_graph_alloc(g, sizeof *nw * (size_t)wnumel);
  float *nb = lm_graph_alloc(g, sizeof *nb * (size_t)cout);
  double *f = malloc(sizeof *f * (size_t)cout);
  if (!nw || !nb || !f) {
    free(f);
    return lm_graph_error(g, LM_ENOMEM, "out of memory");
  }
  for (int64_t c = 0; c < cout; c++) {
    f[c] = scale[c] / sqrt((double)var[c] + eps);
    nb[c] = (float)(((bias ? bias[c] : 0.0) - mean[c]) * f[c] + beta[c]);
  }
  int64_t ksize = 1;
  for (int d = 2; d < wv->ndim; d++) ksize *= wv->shape[d];
  if (!transposed) {
    /* [cout, cin/group, k...]: output channel = first axis */
    for (int64_t c = 0; c < cout; c++)
      for (int64_t i = 0; i < wnumel / cout; i++)
        nw[c * (wnumel / cout) + i] = (float)(w[c * (wnumel / cout) + i] * f[c]);
  } else {
    /* [cin, cout/group, k...]: output channel = group(ci) * cout/group + co */
    int64_t cin = wv->shape[0], cog = wv->shape[1], cig = cin / group;
    for (int64_t ci2 = 0; ci2 < cin; ci2++)
      for (int64_t co = 0; co < cog; co++) {
        double s = f[(ci2 / cig) * cog + co];
        int64_t base = (ci2 * cog + co) * ksize;
        for (int64_t k = 0; k < ksize; k++) nw[base + k] = (float)(w[base + k] * s);
      }
  }
  free(f);
  int wc = lm_graph_const(g, LM_F32, wv->ndim, wv->shape, nw, false);
  int64_t bshape[1] = {cout};
  int bc = lm_graph_const(g, LM_F32, 1, bshape, nb, false);
  if (wc < 0 || bc < 0) return LM_ENOMEM;
  if (conv->nin < 3) {
    int *in = realloc(conv->in, sizeof *in * 3);
    if (!in) return lm_graph_error(g, LM_ENOMEM, "out of memory");
    conv->in = in;
    conv->nin = 3;
  }
  conv->in[1] = wc;
  conv->in[2] = bc;
  /* The conv now writes the BN's output; its old output is orphaned. */
  g->values[conv->out[0]].producer = -1;
  conv->out[0] = bn->out[0];
  g->values[bn->out[0]].producer = ci;
  bn->dead = true;
  return LM_OK;
}

static int fold_batchnorm(lm_graph *g)
{
  int *uses = malloc(sizeof *uses * ((size_t)g->nvalues + 1));
  if (!uses) return lm_graph_error(g, LM_ENOMEM, "out of memory");
  count_uses(g, uses);
  int rc = LM_OK;
  for (int i = 0; i < g->nnodes && rc == LM_OK; i++) {
    lm_gnode *bn = &g->nodes[i];
    if (bn->dead || !default_domain(bn) || strcmp(bn->op, "BatchNormalization")) continue;
    if (bn->nin < 5 || bn->in[0] < 0 || !only_output_used(bn, uses)) continue;
    if (lm_gnode_attr_int(bn, "training_mode", 0) != 0) continue;
    int x = bn->in[0];
    int p = g->values[x].producer;
    if (p < 0 || uses[x] != 1 || g->values[x].is_output) continue;
    lm_gnode *conv = &g->nodes[p];
    if (conv->dead || !default_domain(conv) || conv->nout != 1 || conv->nin < 2 ||
        (strcmp(conv->op, "Conv") && strcmp(conv->op, "ConvTranspose")))
      continue;
    rc = fold_bn_into(g, bn, p, conv);
  }
  free(uses);
  return rc;
}

/* ---- dead nodes ----------------------------------------------------------- */

static int remove_dead(lm_graph *g)
{
  int *uses = malloc(sizeof *uses * ((size_t)g->nvalues + 1));
  if (!uses) return lm_graph_error(g, LM_ENOMEM, "out of memory");
  count_uses(g, uses);
  /* Reverse topological order: a node's consumers are decided first. */
  for (int i = g->nnodes - 1; i >= 0; i--) {
    lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    bool used = false;
    for (int j = 0; j < n->nout && !used; j++)
      used = n->out[j] >= 0 && uses[n->out[j]] > 0;
    if (used) continue;
    n->dead = true;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] >= 0) uses[lm_graph_resolve(g, n->in[j])]--;
  }
  free(uses);
  /* Compact the node array. */
  int k = 0;
  for (int i = 0; i < g->nnodes; i++) {
    lm_gnode *n = &g->nodes[i];
    if (n->dead) {
      free(n->in);
      free(n->out);
      free(n->attr);
      continue;
    }
    g->nodes[k++] = *n;
  }
  g->nnodes = k;
  recompute_producers(g);
  return LM_OK;
}

/* ---- the pipeline --------------------------------------------------------- */

/* Forget what earlier shapes implied: folded-but-kept outputs lose their
 * data; with forget_shapes, every node output loses its type too. */
static void reset_derived(lm_graph *g, bool forget_shapes)
{
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nout; j++) {
      int v = n->out[j];
      if (v < 0) continue;
      lm_gvalue *val = &g->values[v];
      val->data = NULL;
      val->nbytes = 0;
      if (forget_shapes) {
        val->dt_known = false;
        val->ndim = -1;
      }
    }
  }
  /* Aliases of node outputs follow on the next sync. */
}

static int run_passes(lm_graph *g, bool forget_shapes)
{
  int rc;
  g->err[0] = 0;
  if ((rc = check_supported(g)) < 0) return rc;
  reset_derived(g, forget_shapes);
  if ((rc = topo_sort(g)) < 0) return rc;
  if ((rc = alias_pass(g)) < 0) return rc;
  if ((rc = infer_and_fold(g)) < 0) return rc;
  if ((rc = fold_batchnorm(g)) < 0) return rc;
  if ((rc = remove_dead(g)) < 0) return rc;
  sync_aliases(g);
  return LM_OK;
}

int lm_graph_prepare(lm_graph *g)
{
  return run_passes(g, false);
}

int lm_graph_specialize(lm_graph *g, const int *ndims, const int64_t *const *shapes)
{
  for (int i = 0; i < g->ninputs; i++) {
    int v = g->inputs[i];
    lm_gvalue *val = &g->values[v];
    if (ndims[i] < 0 || ndims[i] > LM_MAX_DIMS)
      return lm_graph_error(g, LM_EINVAL, "%s: input '%s': %d dims (at most %d)",
                            src_name(g), value_name(g, v), ndims[i], LM_MAX_DIMS);
    if (val->ndim >= 0 && val->ndim != ndims[i])
      return lm_graph_error(g, LM_EINVAL, "%s: input '%s' has %d dims, given %d",
                            src_name(g), value_name(g, v), val->ndim, ndims[i]);
    for (int d = 0; d < ndims[i]; d++)
      if (shapes[i][d] < 0)
        return lm_graph_error(g, LM_EINVAL, "%s: input '%s': extent %d is negative",
                              src_name(g), value_name(g, v), d);
    lm_graph_set_type(g, v, val->dt_known ? val->dt : LM_F32, ndims[i], shapes[i]);
  }
  return run_passes(g, true);
}
