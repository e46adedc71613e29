/* lumen graph JSON (loaders.h): the network text lumen.nn writes, with its
 * weights in safetensors files or inline.
 *
 *   {"inputs":  [{"name": "x", "shape": [1, 1, -1, -1, -1], "dtype": "float32"}],
 *    "outputs": ["y"],
 *    "nodes":   [{"op": "Conv", "name": "conv0", "inputs": ["x", "w0", "b0"],
 *                 "outputs": ["h0"], "attrs": {"dilations": [2, 2, 2]}}, ...],
 *    "weights": "model.safetensors"   or a list of file names and inline
 *               constants {"name", "dtype", "shape", "data": [...]},
 *    "opset": 18, "producer": "lumen.nn"}            (the last two optional)
 *
 * A shape extent of -1, null or a string is dynamic.  An input name "" or
 * null is an optional input left out.  A safetensors tensor becomes the
 * constant value of the same name when a node uses that name; tensors no
 * node uses are ignored.  The files stay mapped as long as the graph.
 * Floating weights of other precisions (F16, BF16, F64) become float32. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "graph_json.h"
#include "loaders.h"

static void st_release(void *ctx)
{
  lm_safetensors_close(ctx);
}

static const char *str_field(const cJSON *j, const char *key)
{
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsString(f) ? f->valuestring : NULL;
}

static int read_inputs(lm_graph *g, const cJSON *arr)
{
  if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0)
    return lm_graph_error(g, LM_EINVAL, "%s: field 'inputs' missing or not a non-empty array",
                          GJ_SOURCE);
  int i = 0;
  for (const cJSON *j = arr->child; j; j = j->next, i++) {
    const char *name = str_field(j, "name");
    if (!name || !*name)
      return lm_graph_error(g, LM_EINVAL, "%s: inputs[%d]: field 'name' missing", GJ_SOURCE, i);
    lm_dtype dt = LM_F32;
    const char *dts = str_field(j, "dtype");
    if (dts && lm_dtype_from_name(dts, &dt) < 0)
      return lm_graph_error(g, LM_EINVAL, "%s: inputs[%d] ('%s'): field 'dtype' '%s' is not a "
                            "dtype", GJ_SOURCE, i, name, dts);
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "shape");
    int ndim = -1;
    int64_t shape[LM_MAX_DIMS];
    if (js && !cJSON_IsNull(js)) {
      if (!cJSON_IsArray(js) || cJSON_GetArraySize(js) > LM_MAX_DIMS)
        return lm_graph_error(g, LM_EINVAL, "%s: inputs[%d] ('%s'): field 'shape' must be an "
                              "array of at most %d extents", GJ_SOURCE, i, name, LM_MAX_DIMS);
      ndim = cJSON_GetArraySize(js);
      int k = 0;
      for (const cJSON *e = js->child; e; e = e->next, k++) {
        if (cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < 1e15 &&
            e->valuedouble == (double)(int64_t)e->valuedouble)
          shape[k] = (int64_t)e->valuedouble;
        else if ((cJSON_IsNumber(e) && e->valuedouble == -1) || cJSON_IsNull(e) ||
                 cJSON_IsString(e))
          shape[k] = -1;   /* dynamic (a symbolic name counts as dynamic) */
        else
          return lm_graph_error(g, LM_EINVAL, "%s: inputs[%d] ('%s'): field 'shape' entry %d "
                                "is not an extent, -1 or null", GJ_SOURCE, i, name, k);
      }
    }
    if (lm_graph_find_value(g, name) >= 0)
      return lm_graph_error(g, LM_EINVAL, "%s: inputs[%d]: name '%s' is used twice", GJ_SOURCE,
                            i, name);
    int v = lm_graph_value(g, name);
    if (v < 0) return LM_ENOMEM;
    lm_graph_set_type(g, v, dt, ndim, shape);
    if (lm_graph_add_input(g, v) < 0) return LM_ENOMEM;
  }
  return LM_OK;
}

/* Value indices for a node's "inputs" or "outputs" list. */
static int name_list(lm_graph *g, const cJSON *arr, const char *field, bool allow_empty,
                     const char *where, int **out, int *n)
{
  if (!cJSON_IsArray(arr))
    return lm_graph_error(g, LM_EINVAL, "%s: %s: field '%s' missing or not an array", GJ_SOURCE,
                          where, field);
  *n = cJSON_GetArraySize(arr);
  *out = lm_graph_alloc(g, sizeof(int) * (size_t)(*n ? *n : 1));
  if (!*out) return LM_ENOMEM;
  int k = 0;
  for (const cJSON *e = arr->child; e; e = e->next, k++) {
    const char *nm = cJSON_IsString(e) ? e->valuestring : NULL;
    if ((!nm && !cJSON_IsNull(e)) || ((!nm || !*nm) && !allow_empty))
      return lm_graph_error(g, LM_EINVAL, "%s: %s: field '%s' entry %d is not a value name",
                            GJ_SOURCE, where, field, k);
    if (!nm || !*nm) {
      (*out)[k] = -1;
      continue;
    }
    int v = lm_graph_value(g, nm);
    if (v < 0) return LM_ENOMEM;
    (*out)[k] = v;
  }
  return LM_OK;
}

static int read_node(lm_graph *g, const cJSON *j, int idx)
{
  char where[200];
  const char *op = str_field(j, "op");
  const char *name = str_field(j, "name");
  snprintf(where, sizeof where, "nodes[%d]%s%.80s%s", idx, name ? " ('" : "", name ? name : "",
           name ? "')" : "");
  if (!cJSON_IsObject(j))
    return lm_graph_error(g, LM_EINVAL, "%s: %s: not an object", GJ_SOURCE, where);
  if (!op || !*op)
    return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'op' missing or not a string", GJ_SOURCE,
                          where);
  int *in, *out, nin, nout;
  int rc = name_list(g, cJSON_GetObjectItemCaseSensitive(j, "inputs"), "inputs", true, where,
                     &in, &nin);
  if (rc < 0) return rc;
  rc = name_list(g, cJSON_GetObjectItemCaseSensitive(j, "outputs"), "outputs", false, where,
                 &out, &nout);
  if (rc < 0) return rc;
  if (nout == 0)
    return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'outputs' is empty", GJ_SOURCE, where);
  for (int k = 0; k < nout; k++) {
    const lm_gvalue *v = &g->values[out[k]];
    if (v->is_input || v->producer >= 0)
      return lm_graph_error(g, LM_EINVAL, "%s: %s: output '%s' is already a graph input or "
                            "another node's output", GJ_SOURCE, where, v->name);
  }
  int node = lm_graph_add_node(g, op, name, nin, in, nout, out);
  if (node < 0) return LM_ENOMEM;
  const char *domain = str_field(j, "domain");
  if (domain && !(g->nodes[node].domain = lm_graph_strdup(g, domain, (size_t)-1)))
    return LM_ENOMEM;
  const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(j, "attrs");
  /* An empty array is an empty object to Lua's encoders (lumen.json_encode). */
  if (attrs && !cJSON_IsNull(attrs) && !(cJSON_IsArray(attrs) && !attrs->child)) {
    if (!cJSON_IsObject(attrs))
      return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'attrs' is not an object", GJ_SOURCE,
                            where);
    for (const cJSON *a = attrs->child; a; a = a->next)
      if ((rc = gj_attr(g, node, op, a, where)) < 0) return rc;
  }
  return LM_OK;
}

static int bind_as_f32(lm_graph *g, int v, lm_dtype dt, int ndim, const int64_t *shape,
                       const void *data)
{
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) numel *= shape[i];
  size_t esize = lm_dtype_size(dt);
  /* an aligned copy first: the mapping gives no alignment guarantee */
  void *src = lm_graph_alloc(g, (size_t)numel * esize + 1);
  float *dst = lm_graph_alloc(g, (size_t)numel * sizeof(float) + 1);
  if (!src || !dst) return LM_ENOMEM;
  if (numel) {
    memcpy(src, data, (size_t)numel * esize);
    lm_convert_get(LM_F32, dt)((char *)dst, sizeof(float), src, (int64_t)esize, numel);
  }
  return lm_graph_set_const(g, v, LM_F32, ndim, shape, dst, false);
}

/* Bind the tensors of one safetensors file to the values of the same name. */
static int bind_file(lm_graph *g, const char *file, const char *base_dir, const char *where)
{
  char path[4096];
  if (file[0] == '/' || !base_dir || !*base_dir)
    snprintf(path, sizeof path, "%s", file);
  else
    snprintf(path, sizeof path, "%s/%s", base_dir, file);
  lm_safetensors *s;
  char err[400];
  int rc = lm_safetensors_open(path, &s, err, sizeof err);
  if (rc < 0) return lm_graph_error(g, rc, "%s: %s: %s", GJ_SOURCE, where, err);
  if (lm_graph_keep(g, st_release, s) < 0) {
    lm_safetensors_close(s);
    return LM_ENOMEM;
  }
  for (int i = 0; i < lm_safetensors_count(s); i++) {
    lm_dtype dt;
    int ndim;
    int64_t shape[LM_MAX_DIMS];
    const void *data;
    const char *name = lm_safetensors_at(s, i, &dt, &ndim, shape, &data, NULL);
    int v = lm_graph_find_value(g, name);
    if (v < 0) continue;   /* a tensor this network does not use */
    const lm_gvalue *val = &g->values[v];
    if (val->is_input || val->producer >= 0 || val->data)
      return lm_graph_error(g, LM_EINVAL, "%s: %s: tensor '%s' of %s has the name of a graph "
                            "input, a node output or an earlier constant", GJ_SOURCE, where,
                            name, path);
    if (dt == LM_F16 || dt == LM_BF16 || dt == LM_F64) {
      /* Networks compute in float32 (bfloat16 is a plan option), so
      ** half-precision or double weights are widened once here. */
      if ((rc = bind_as_f32(g, v, dt, ndim, shape, data)) < 0) return rc;
    } else if ((rc = lm_graph_set_const(g, v, dt, ndim, shape, data, false)) < 0) {
      return rc;
    }
  }
  return LM_OK;
}

static int read_weights(lm_graph *g, const cJSON *w, const char *base_dir)
{
  if (!w || cJSON_IsNull(w)) return LM_OK;
  if (cJSON_IsString(w)) return bind_file(g, w->valuestring, base_dir, "weights");
  if (!cJSON_IsArray(w))
    return lm_graph_error(g, LM_EINVAL, "%s: field 'weights' must be a file name or a list of "
                          "file names and constants", GJ_SOURCE);
  int i = 0;
  for (const cJSON *e = w->child; e; e = e->next, i++) {
    char where[64];
    snprintf(where, sizeof where, "weights[%d]", i);
    int rc;
    if (cJSON_IsString(e)) {
      rc = bind_file(g, e->valuestring, base_dir, where);
    } else {
      const char *name = str_field(e, "name");
      if (!name || !*name)
        return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'name' missing", GJ_SOURCE, where);
      rc = gj_inline_tensor(g, e, -1, where);
    }
    if (rc < 0) return rc;
  }
  return LM_OK;
}

/* Every node input and graph output must be a graph input, a constant or
** some node's output. */
static int check_defined(lm_graph *g)
{
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    for (int k = 0; k < n->nin; k++) {
      const lm_gvalue *v = n->in[k] >= 0 ? &g->values[n->in[k]] : NULL;
      if (v && !v->is_input && !v->data && v->producer < 0)
        return lm_graph_error(g, LM_EINVAL, "%s: nodes[%d] ('%s'): input '%s' is neither a graph "
                              "input, a weight nor a node output", GJ_SOURCE, i, n->name,
                              v->name);
    }
  }
  for (int i = 0; i < g->noutputs; i++) {
    const lm_gvalue *v = &g->values[g->outputs[i]];
    if (!v->is_input && !v->data && v->producer < 0)
      return lm_graph_error(g, LM_EINVAL, "%s: outputs[%d]: '%s' is not produced by any node",
                            GJ_SOURCE, i, v->name);
  }
  return LM_OK;
}

static int build(lm_graph *g, const cJSON *root, const char *base_dir)
{
  if (!cJSON_IsObject(root))
    return lm_graph_error(g, LM_EINVAL, "%s: the text is not a JSON object", GJ_SOURCE);
  int rc = read_inputs(g, cJSON_GetObjectItemCaseSensitive(root, "inputs"));
  if (rc < 0) return rc;
  const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
  if (!cJSON_IsArray(nodes))
    return lm_graph_error(g, LM_EINVAL, "%s: field 'nodes' missing or not an array", GJ_SOURCE);
  int i = 0;
  for (const cJSON *n = nodes->child; n; n = n->next, i++)
    if ((rc = read_node(g, n, i)) < 0) return rc;
  const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
  if (!cJSON_IsArray(outs) || cJSON_GetArraySize(outs) == 0)
    return lm_graph_error(g, LM_EINVAL, "%s: field 'outputs' missing or not a non-empty array "
                          "of names", GJ_SOURCE);
  i = 0;
  for (const cJSON *o = outs->child; o; o = o->next, i++) {
    if (!cJSON_IsString(o) || !*o->valuestring)
      return lm_graph_error(g, LM_EINVAL, "%s: outputs[%d] is not a value name", GJ_SOURCE, i);
    int v = lm_graph_find_value(g, o->valuestring);
    if (v < 0)
      return lm_graph_error(g, LM_EINVAL, "%s: outputs[%d]: '%s' is not produced by any node",
                            GJ_SOURCE, i, o->valuestring);
    if (lm_graph_add_output(g, v) < 0) return LM_ENOMEM;
  }
  if ((rc = read_weights(g, cJSON_GetObjectItemCaseSensitive(root, "weights"), base_dir)) < 0)
    return rc;
  const cJSON *opset = cJSON_GetObjectItemCaseSensitive(root, "opset");
  if (opset) {
    if (!cJSON_IsNumber(opset) || opset->valuedouble < 1 || opset->valuedouble > 1000)
      return lm_graph_error(g, LM_EINVAL, "%s: field 'opset' is not an opset number", GJ_SOURCE);
    g->opset = (int)opset->valuedouble;
  } else {
    g->opset = 18;   /* lumen.nn writes ONNX ops with opset 18 semantics */
  }
  const char *producer = str_field(root, "producer");
  g->producer = lm_graph_strdup(g, producer ? producer : "lumen graph JSON", (size_t)-1);
  return check_defined(g);
}

int lm_graph_json_load(const char *json, size_t len, const char *base_dir, lm_graph **out,
                       char *err, size_t errlen)
{
  *out = NULL;
  lm_graph *g = lm_graph_new();
  if (!g) {
    if (err && errlen) snprintf(err, errlen, "%s: out of memory", GJ_SOURCE);
    return LM_ENOMEM;
  }
  g->source = GJ_SOURCE;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  int rc;
  if (!root) {
    /* cJSON reports where it stopped: give the line and a bit of context. */
    size_t at = end && end >= json ? (size_t)(end - json) : 0;
    int line = 1;
    for (size_t k = 0; k < at && k < len; k++) line += json[k] == '\n';
    int show = at < len ? (int)(len - at < 20 ? len - at : 20) : 0;
    rc = lm_graph_error(g, LM_EINVAL, "%s: invalid JSON at line %d (byte %zu): '%.*s'",
                        GJ_SOURCE, line, at, show, show ? json + at : "");
  } else {
    rc = build(g, root, base_dir);
    cJSON_Delete(root);
  }
  if (rc < 0) {
    if (err && errlen) snprintf(err, errlen, "%s", g->err);
    lm_graph_free(g);
    return rc;
  }
  *out = g;
  return LM_OK;
}
