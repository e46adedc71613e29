/* The model IR: arena, value table, nodes, attributes (graph.h). */
#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_MIN (64 * 1024)

struct lm_graph_block {
  lm_graph_block *next;
  size_t used, cap;
  _Alignas(64) unsigned char data[];
};

struct lm_graph_keep_node {
  struct lm_graph_keep_node *next;
  void (*release)(void *);
  void *ctx;
};

lm_graph *lm_graph_new(void)
{
  lm_graph *g = calloc(1, sizeof *g);
  return g;
}

void lm_graph_free(lm_graph *g)
{
  if (!g) return;
  for (struct lm_graph_keep_node *k = g->keeps; k;) {
    struct lm_graph_keep_node *next = k->next;
    k->release(k->ctx);
    free(k);
    k = next;
  }
  for (int i = 0; i < g->nnodes; i++) {
    free(g->nodes[i].in);
    free(g->nodes[i].out);
    free(g->nodes[i].attr);
  }
  free(g->nodes);
  free(g->values);
  free(g->inputs);
  free(g->outputs);
  for (lm_graph_block *b = g->blocks; b;) {
    lm_graph_block *next = b->next;
    free(b);
    b = next;
  }
  free(g);
}

int lm_graph_keep(lm_graph *g, void (*release)(void *), void *ctx)
{
  struct lm_graph_keep_node *k = malloc(sizeof *k);
  if (!k) return lm_graph_error(g, LM_ENOMEM, "out of memory");
  k->release = release;
  k->ctx = ctx;
  k->next = g->keeps;   /* newest first: released in reverse order */
  g->keeps = k;
  return LM_OK;
}

int lm_graph_error(lm_graph *g, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g->err, sizeof g->err, fmt, ap);
  va_end(ap);
  return status;
}

void *lm_graph_alloc(lm_graph *g, size_t n)
{
  n = (n + 63) & ~(size_t)63;
  if (n == 0) n = 64;
  lm_graph_block *b = g->blocks;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > BLOCK_MIN ? n : BLOCK_MIN;
    b = aligned_alloc(64, (sizeof *b + cap + 63) & ~(size_t)63);
    if (!b) {
      lm_graph_error(g, LM_ENOMEM, "out of memory (%zu bytes)", n);
      return NULL;
    }
    b->used = 0;
    b->cap = cap;
    /* A large one-off block goes behind the current one so that the
     * current block's free space stays usable. */
    if (g->blocks && n > BLOCK_MIN) {
      b->next = g->blocks->next;
      g->blocks->next = b;
    } else {
      b->next = g->blocks;
      g->blocks = b;
    }
  }
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

const char *lm_graph_strdup(lm_graph *g, const char *s, size_t n)
{
  if (!s) s = "";
  if (n == (size_t)-1) n = strlen(s);
  char *p = lm_graph_alloc(g, n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

static int grow(lm_graph *g, void **arr, int *cap, int need, size_t elem)
{
  if (need <= *cap) return LM_OK;
  int nc = *cap ? *cap * 2 : 16;
  while (nc < need) nc *= 2;
  void *p = realloc(*arr, (size_t)nc * elem);
  if (!p) return lm_graph_error(g, LM_ENOMEM, "out of memory");
  *arr = p;
  *cap = nc;
  return LM_OK;
}

int lm_graph_find_value(const lm_graph *g, const char *name)
{
  if (!name || !*name) return -1;
  for (int i = g->nvalues - 1; i >= 0; i--)
    if (strcmp(g->values[i].name, name) == 0) return i;
  return -1;
}

int lm_graph_value(lm_graph *g, const char *name)
{
  int v = lm_graph_find_value(g, name);
  if (v >= 0) return v;
  if (grow(g, (void **)&g->values, &g->cap_values, g->nvalues + 1,
           sizeof *g->values) < 0)
    return -1;
  const char *nm = lm_graph_strdup(g, name ? name : "", (size_t)-1);
  if (!nm) return -1;
  lm_gvalue *val = &g->values[g->nvalues];
  memset(val, 0, sizeof *val);
  val->name = nm;
  val->ndim = -1;
  val->producer = -1;
  val->alias = -1;
  return g->nvalues++;
}

void lm_graph_set_type(lm_graph *g, int v, lm_dtype dt, int ndim,
                       const int64_t *shape)
{
  lm_gvalue *val = &g->values[v];
  val->dt = dt;
  val->dt_known = true;
  val->ndim = ndim;
  for (int i = 0; i < ndim && i < LM_MAX_DIMS; i++) val->shape[i] = shape[i];
}

int lm_graph_set_const(lm_graph *g, int v, lm_dtype dt, int ndim,
                       const int64_t *shape, const void *data, bool copy)
{
  if (ndim < 0 || ndim > LM_MAX_DIMS)
    return lm_graph_error(g, LM_EINVAL, "%s: constant '%s' has %d dims (at most %d)",
                          g->source ? g->source : "graph", g->values[v].name, ndim,
                          LM_MAX_DIMS);
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return lm_graph_error(g, LM_EINVAL, "%s: constant '%s' has a negative extent",
                            g->source ? g->source : "graph", g->values[v].name);
    numel *= shape[i];
  }
  size_t nbytes = (size_t)numel * lm_dtype_size(dt);
  const void *p = data;
  if (copy || ((uintptr_t)data % lm_dtype_size(dt)) != 0) {
    void *q = lm_graph_alloc(g, nbytes ? nbytes : 1);
    if (!q) return LM_ENOMEM;
    if (nbytes) memcpy(q, data, nbytes);
    p = q;
  }
  lm_graph_set_type(g, v, dt, ndim, shape);
  g->values[v].data = p;
  g->values[v].nbytes = nbytes;
  return LM_OK;
}

int lm_graph_const(lm_graph *g, lm_dtype dt, int ndim, const int64_t *shape,
                   const void *data, bool copy)
{
  int v = lm_graph_value(g, "");
  if (v < 0) return -1;
  if (lm_graph_set_const(g, v, dt, ndim, shape, data, copy) < 0) return -1;
  return v;
}

int lm_graph_add_input(lm_graph *g, int v)
{
  int cap = g->ninputs;
  if (grow(g, (void **)&g->inputs, &cap, g->ninputs + 1, sizeof(int)) < 0)
    return LM_ENOMEM;
  g->inputs[g->ninputs++] = v;
  g->values[v].is_input = true;
  return LM_OK;
}

int lm_graph_add_output(lm_graph *g, int v)
{
  int cap = g->noutputs;
  if (grow(g, (void **)&g->outputs, &cap, g->noutputs + 1, sizeof(int)) < 0)
    return LM_ENOMEM;
  g->outputs[g->noutputs++] = v;
  g->values[v].is_output = true;
  return LM_OK;
}

int lm_graph_add_node(lm_graph *g, const char *op, const char *name,
                      int nin, const int *in, int nout, const int *out)
{
  if (grow(g, (void **)&g->nodes, &g->cap_nodes, g->nnodes + 1,
           sizeof *g->nodes) < 0)
    return -1;
  lm_gnode *n = &g->nodes[g->nnodes];
  memset(n, 0, sizeof *n);
  n->op = lm_graph_strdup(g, op, (size_t)-1);
  n->domain = "";
  n->name = lm_graph_strdup(g, name ? name : "", (size_t)-1);
  n->in = malloc(sizeof(int) * (size_t)(nin > 0 ? nin : 1));
  n->out = malloc(sizeof(int) * (size_t)(nout > 0 ? nout : 1));
  if (!n->op || !n->name || !n->in || !n->out) {
    free(n->in);
    free(n->out);
    lm_graph_error(g, LM_ENOMEM, "out of memory");
    return -1;
  }
  n->nin = nin;
  n->nout = nout;
  if (nin) memcpy(n->in, in, sizeof(int) * (size_t)nin);
  if (nout) memcpy(n->out, out, sizeof(int) * (size_t)nout);
  for (int i = 0; i < nout; i++)
    if (out[i] >= 0) g->values[out[i]].producer = g->nnodes;
  return g->nnodes++;
}

lm_gattr *lm_graph_add_attr(lm_graph *g, int node, const char *name,
                            lm_attr_kind kind)
{
  lm_gnode *n = &g->nodes[node];
  lm_gattr *a = realloc(n->attr, sizeof *a * (size_t)(n->nattr + 1));
  if (!a) {
    lm_graph_error(g, LM_ENOMEM, "out of memory");
    return NULL;
  }
  n->attr = a;
  lm_gattr *at = &a[n->nattr];
  memset(at, 0, sizeof *at);
  at->name = lm_graph_strdup(g, name, (size_t)-1);
  if (!at->name) return NULL;
  at->kind = kind;
  at->tensor = -1;
  n->nattr++;
  return at;
}

int lm_graph_attr_set_int(lm_graph *g, int node, const char *name, int64_t v)
{
  lm_gattr *a = lm_graph_add_attr(g, node, name, LM_ATTR_INT);
  if (!a) return LM_ENOMEM;
  a->i = v;
  return LM_OK;
}

int lm_graph_attr_set_float(lm_graph *g, int node, const char *name, double v)
{
  lm_gattr *a = lm_graph_add_attr(g, node, name, LM_ATTR_FLOAT);
  if (!a) return LM_ENOMEM;
  a->f = v;
  return LM_OK;
}

int lm_graph_attr_set_string(lm_graph *g, int node, const char *name,
                             const char *s)
{
  lm_gattr *a = lm_graph_add_attr(g, node, name, LM_ATTR_STRING);
  if (!a) return LM_ENOMEM;
  a->s = lm_graph_strdup(g, s, (size_t)-1);
  return a->s ? LM_OK : LM_ENOMEM;
}

int lm_graph_attr_set_ints(lm_graph *g, int node, const char *name,
                           const int64_t *v, int n)
{
  lm_gattr *a = lm_graph_add_attr(g, node, name, LM_ATTR_INTS);
  if (!a) return LM_ENOMEM;
  int64_t *p = lm_graph_alloc(g, sizeof *p * (size_t)(n > 0 ? n : 1));
  if (!p) return LM_ENOMEM;
  if (n) memcpy(p, v, sizeof *p * (size_t)n);
  a->ints = p;
  a->n = n;
  return LM_OK;
}

int lm_graph_attr_set_floats(lm_graph *g, int node, const char *name,
                             const double *v, int n)
{
  lm_gattr *a = lm_graph_add_attr(g, node, name, LM_ATTR_FLOATS);
  if (!a) return LM_ENOMEM;
  double *p = lm_graph_alloc(g, sizeof *p * (size_t)(n > 0 ? n : 1));
  if (!p) return LM_ENOMEM;
  if (n) memcpy(p, v, sizeof *p * (size_t)n);
  a->floats = p;
  a->n = n;
  return LM_OK;
}

const lm_gattr *lm_gnode_attr(const lm_gnode *n, const char *name)
{
  for (int i = 0; i < n->nattr; i++)
    if (strcmp(n->attr[i].name, name) == 0) return &n->attr[i];
  return NULL;
}

int64_t lm_gnode_attr_int(const lm_gnode *n, const char *name, int64_t def)
{
  const lm_gattr *a = lm_gnode_attr(n, name);
  if (!a) return def;
  if (a->kind == LM_ATTR_INT) return a->i;
  if (a->kind == LM_ATTR_FLOAT) return (int64_t)a->f;
  return def;
}

double lm_gnode_attr_float(const lm_gnode *n, const char *name, double def)
{
  const lm_gattr *a = lm_gnode_attr(n, name);
  if (!a) return def;
  if (a->kind == LM_ATTR_FLOAT) return a->f;
  if (a->kind == LM_ATTR_INT) return (double)a->i;
  return def;
}

const char *lm_gnode_attr_string(const lm_gnode *n, const char *name,
                                 const char *def)
{
  const lm_gattr *a = lm_gnode_attr(n, name);
  return a && a->kind == LM_ATTR_STRING ? a->s : def;
}

const int64_t *lm_gnode_attr_ints(const lm_gnode *n, const char *name,
                                  int *count)
{
  const lm_gattr *a = lm_gnode_attr(n, name);
  if (!a || a->kind != LM_ATTR_INTS) {
    *count = 0;
    return NULL;
  }
  *count = a->n;
  return a->ints;
}

int lm_graph_resolve(const lm_graph *g, int v)
{
  for (int hops = 0; v >= 0 && g->values[v].alias >= 0 && hops < g->nvalues; hops++)
    v = g->values[v].alias;
  return v;
}

int64_t lm_gvalue_numel(const lm_gvalue *v)
{
  if (v->ndim < 0) return -1;
  int64_t n = 1;
  for (int i = 0; i < v->ndim; i++) {
    if (v->shape[i] < 0) return -1;
    n *= v->shape[i];
  }
  return n;
}

/* ONNX TensorProto.DataType numbers. */
int lm_dtype_from_onnx(int t, lm_dtype *out)
{
  switch (t) {
  case 1: *out = LM_F32; return LM_OK;
  case 2: *out = LM_U8; return LM_OK;
  case 3: *out = LM_I8; return LM_OK;
  case 4: *out = LM_U16; return LM_OK;
  case 5: *out = LM_I16; return LM_OK;
  case 6: *out = LM_I32; return LM_OK;
  case 7: *out = LM_I64; return LM_OK;
  case 9: *out = LM_U8; return LM_OK;   /* bool */
  case 10: *out = LM_F16; return LM_OK;
  case 11: *out = LM_F64; return LM_OK;
  case 12: *out = LM_U32; return LM_OK;
  case 16: *out = LM_BF16; return LM_OK;
  default: return LM_EINVAL;
  }
}

int lm_dtype_to_onnx(lm_dtype dt)
{
  switch (dt) {
  case LM_F32: return 1;
  case LM_U8: return 2;
  case LM_I8: return 3;
  case LM_U16: return 4;
  case LM_I16: return 5;
  case LM_I32: return 6;
  case LM_I64: return 7;
  case LM_F16: return 10;
  case LM_F64: return 11;
  case LM_U32: return 12;
  case LM_BF16: return 16;
  default: return -1;
  }
}

static void dump_value(char **buf, size_t *len, FILE *f, const lm_graph *g, int v)
{
  (void)buf; (void)len;
  if (v < 0) {
    fputs("-", f);
    return;
  }
  const lm_gvalue *val = &g->values[v];
  fprintf(f, "%s", *val->name ? val->name : "(anon)");
  if (val->ndim >= 0) {
    fputc('[', f);
    for (int i = 0; i < val->ndim; i++)
      fprintf(f, i ? ",%lld" : "%lld", (long long)val->shape[i]);
    fputc(']', f);
  }
  if (val->data) fputs("=const", f);
}

char *lm_graph_dump(const lm_graph *g)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  fprintf(f, "graph %s opset %d: %d inputs, %d outputs, %d nodes\n",
          g->source ? g->source : "", g->opset, g->ninputs, g->noutputs, g->nnodes);
  for (int i = 0; i < g->ninputs; i++) {
    fputs("  input ", f);
    dump_value(&buf, &len, f, g, g->inputs[i]);
    fputc('\n', f);
  }
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    fprintf(f, "  %s %s(", n->op, n->name);
    for (int j = 0; j < n->nin; j++) {
      if (j) fputs(", ", f);
      dump_value(&buf, &len, f, g, n->in[j]);
    }
    fputs(") -> ", f);
    for (int j = 0; j < n->nout; j++) {
      if (j) fputs(", ", f);
      dump_value(&buf, &len, f, g, n->out[j]);
    }
    fputc('\n', f);
  }
  for (int i = 0; i < g->noutputs; i++) {
    fputs("  output ", f);
    dump_value(&buf, &len, f, g, g->outputs[i]);
    fputc('\n', f);
  }
  fclose(f);
  return buf;
}
