/* lm_graph_clone (graph.h): a copy of the graph's nodes, attributes, value
 * table and strings in a new arena.  Constant data is shared, not copied:
 * the original must outlive the clone (plans copy what they keep reading). */
#include <stdlib.h>
#include <string.h>

#include "graph.h"

static const char *dup_str(lm_graph *c, const char *s, bool *fail)
{
  if (!s) return NULL;
  const char *d = lm_graph_strdup(c, s, (size_t)-1);
  if (!d) *fail = true;
  return d;
}

static const void *dup_mem(lm_graph *c, const void *p, size_t n, bool *fail)
{
  if (!p) return NULL;
  void *d = lm_graph_alloc(c, n ? n : 1);
  if (!d) {
    *fail = true;
    return NULL;
  }
  memcpy(d, p, n);
  return d;
}

lm_graph *lm_graph_clone(const lm_graph *g)
{
  lm_graph *c = lm_graph_new();
  if (!c) return NULL;
  bool fail = false;
  c->opset = g->opset;
  c->source = dup_str(c, g->source, &fail);
  c->producer = dup_str(c, g->producer, &fail);
  c->values = malloc(sizeof *c->values * ((size_t)g->nvalues + 1));
  c->nodes = calloc((size_t)g->nnodes + 1, sizeof *c->nodes);
  c->inputs = malloc(sizeof(int) * ((size_t)g->ninputs + 1));
  c->outputs = malloc(sizeof(int) * ((size_t)g->noutputs + 1));
  if (!c->values || !c->nodes || !c->inputs || !c->outputs) goto fail;
  c->cap_values = g->nvalues + 1;
  c->cap_nodes = g->nnodes + 1;
  /* Constant data stays shared with g, which must outlive the clone (plans
   * copy what they keep reading). */
  /* (memcpy from NULL is undefined even for 0 bytes: graphs without inputs,
   * values or outputs exist, e.g. ONNX node tests of Constant) */
  if (g->nvalues) memcpy(c->values, g->values, sizeof *c->values * (size_t)g->nvalues);
  c->nvalues = g->nvalues;
  for (int v = 0; v < c->nvalues; v++) c->values[v].name = dup_str(c, g->values[v].name, &fail);
  if (g->ninputs) memcpy(c->inputs, g->inputs, sizeof(int) * (size_t)g->ninputs);
  if (g->noutputs) memcpy(c->outputs, g->outputs, sizeof(int) * (size_t)g->noutputs);
  c->ninputs = g->ninputs;
  c->noutputs = g->noutputs;
  for (int i = 0; i < g->nnodes && !fail; i++) {
    const lm_gnode *s = &g->nodes[i];
    lm_gnode *d = &c->nodes[i];
    c->nnodes = i + 1;
    *d = *s;
    d->in = malloc(sizeof(int) * (size_t)(s->nin > 0 ? s->nin : 1));
    d->out = malloc(sizeof(int) * (size_t)(s->nout > 0 ? s->nout : 1));
    d->attr = s->nattr ? malloc(sizeof *d->attr * (size_t)s->nattr) : NULL;
    if (!d->in || !d->out || (s->nattr && !d->attr)) {
      free(d->in);
      free(d->out);
      free(d->attr);
      d->in = d->out = NULL;
      d->attr = NULL;
      d->nin = d->nout = d->nattr = 0;
      goto fail;
    }
    if (s->nin) memcpy(d->in, s->in, sizeof(int) * (size_t)s->nin);
    if (s->nout) memcpy(d->out, s->out, sizeof(int) * (size_t)s->nout);
    d->op = dup_str(c, s->op, &fail);
    d->domain = dup_str(c, s->domain ? s->domain : "", &fail);
    d->name = dup_str(c, s->name, &fail);
    for (int a = 0; a < s->nattr; a++) {
      const lm_gattr *sa = &s->attr[a];
      lm_gattr *da = &d->attr[a];
      *da = *sa;
      da->name = dup_str(c, sa->name, &fail);
      da->s = dup_str(c, sa->s, &fail);
      da->floats = dup_mem(c, sa->floats, sizeof(double) * (size_t)sa->n, &fail);
      da->ints = dup_mem(c, sa->ints, sizeof(int64_t) * (size_t)sa->n, &fail);
      if (sa->strings) {
        const char **ss = lm_graph_alloc(c, sizeof *ss * (size_t)(sa->n ? sa->n : 1));
        if (!ss) fail = true;
        for (int k = 0; ss && k < sa->n; k++) ss[k] = dup_str(c, sa->strings[k], &fail);
        da->strings = ss;
      }
    }
  }
  if (fail) goto fail;
  return c;
fail:
  lm_graph_free(c);
  return NULL;
}
