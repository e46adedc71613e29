/* TensorFlow.js loader: node, constant and weight helpers (tfjs_internal.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfjs_internal.h"

int tfjs_fail(tfjs_ctx *c, int status, const char *fmt, ...)
{
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lm_graph_error(c->g, status, "%s: %s", c->path, msg);
}

int tfjs_node(tfjs_ctx *c, const char *op, const char *name, const int *in, int nin,
              const char *out)
{
  int v = lm_graph_value(c->g, "");
  if (v < 0) return LM_ENOMEM;
  /* Named after the Keras layer where we can; a name taken by an earlier
  ** value (a weight called like a layer) keeps the value anonymous. */
  if (out && *out && lm_graph_find_value(c->g, out) < 0) {
    const char *nm = lm_graph_strdup(c->g, out, (size_t)-1);
    if (!nm) return LM_ENOMEM;
    c->g->values[v].name = nm;
  }
  int n = lm_graph_add_node(c->g, op, name, nin, in, 1, &v);
  return n < 0 ? LM_ENOMEM : v;
}

int tfjs_producer(tfjs_ctx *c, int v)
{
  return c->g->values[v].producer;
}

int tfjs_const_f32(tfjs_ctx *c, const char *name, int ndim, const int64_t *shape,
                   const float *data)
{
  int v = lm_graph_find_value(c->g, name) < 0 ? lm_graph_value(c->g, name)
                                              : lm_graph_value(c->g, "");
  if (v < 0) return LM_ENOMEM;
  int rc = lm_graph_set_const(c->g, v, LM_F32, ndim, shape, data, true);
  return rc < 0 ? rc : v;
}

int tfjs_const_fill(tfjs_ctx *c, const char *name, int64_t n, float x)
{
  float *d = malloc(sizeof *d * (size_t)(n > 0 ? n : 1));
  if (!d) return tfjs_fail(c, LM_ENOMEM, "out of memory");
  for (int64_t i = 0; i < n; i++) d[i] = x;
  int v = tfjs_const_f32(c, name, 1, &n, d);
  free(d);
  return v;
}

int tfjs_const_i64(tfjs_ctx *c, const char *name, int n, const int64_t *vals)
{
  int v = lm_graph_find_value(c->g, name) < 0 ? lm_graph_value(c->g, name)
                                              : lm_graph_value(c->g, "");
  if (v < 0) return LM_ENOMEM;
  int64_t shape = n;
  int rc = lm_graph_set_const(c->g, v, LM_I64, 1, &shape, vals, true);
  return rc < 0 ? rc : v;
}

const tfjs_weight *tfjs_weight_find(const tfjs_ctx *c, const char *layer, const char *param)
{
  char want[512];
  snprintf(want, sizeof want, "%s/%s", layer, param);
  size_t wl = strlen(want);
  for (int i = 0; i < c->nw; i++)
    if (strcmp(c->w[i].name, want) == 0) return &c->w[i];
  /* Converters may keep an enclosing scope ("model/conv3d/kernel") or a
  ** TF variable suffix (":0"). */
  for (int i = 0; i < c->nw; i++) {
    const char *n = c->w[i].name;
    size_t nl = strlen(n);
    if (nl > 2 && strcmp(n + nl - 2, ":0") == 0) nl -= 2;
    if (nl == wl && strncmp(n, want, wl) == 0) return &c->w[i];
    if (nl > wl && n[nl - wl - 1] == '/' && strncmp(n + nl - wl, want, wl) == 0)
      return &c->w[i];
  }
  return NULL;
}

int tfjs_const_permuted(tfjs_ctx *c, const char *name, const tfjs_weight *w, const int *perm)
{
  int nd = w->ndim;
  int64_t oshape[LM_MAX_DIMS], istride[LM_MAX_DIMS], numel = 1;
  for (int i = nd - 1; i >= 0; i--) {
    istride[i] = numel;
    numel *= w->shape[i];
  }
  for (int i = 0; i < nd; i++) oshape[i] = w->shape[perm[i]];
  float *d = malloc(sizeof *d * (size_t)(numel > 0 ? numel : 1));
  if (!d) return tfjs_fail(c, LM_ENOMEM, "out of memory");
  /* Walk the output in C order with an odometer over its index. */
  int64_t idx[LM_MAX_DIMS] = {0};
  for (int64_t o = 0; o < numel; o++) {
    int64_t src = 0;
    for (int i = 0; i < nd; i++) src += idx[i] * istride[perm[i]];
    d[o] = w->data[src];
    for (int i = nd - 1; i >= 0; i--) {
      if (++idx[i] < oshape[i]) break;
      idx[i] = 0;
    }
  }
  int v = tfjs_const_f32(c, name, nd, oshape, d);
  free(d);
  return v;
}

int tfjs_tensor_add(tfjs_ctx *c, const char *key, int v, int rank, int64_t channels)
{
  if (c->nt == c->cap_t) {
    int nc = c->cap_t ? c->cap_t * 2 : 32;
    tfjs_tensor *t = realloc(c->t, sizeof *t * (size_t)nc);
    if (!t) return tfjs_fail(c, LM_ENOMEM, "out of memory");
    c->t = t;
    c->cap_t = nc;
  }
  char *k = strdup(key);
  if (!k) return tfjs_fail(c, LM_ENOMEM, "out of memory");
  c->t[c->nt++] = (tfjs_tensor){k, v, rank, channels};
  return LM_OK;
}

const tfjs_tensor *tfjs_tensor_find(const tfjs_ctx *c, const char *key)
{
  for (int i = c->nt - 1; i >= 0; i--)
    if (strcmp(c->t[i].key, key) == 0) return &c->t[i];
  return NULL;
}
