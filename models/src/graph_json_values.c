/* Graph JSON: inline constants and typed node attributes (graph_json.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "graph_json.h"

/* The inline form is meant for small constants (scales, shapes, slopes);
** bulk weights belong in a safetensors file. */
#define GJ_MAX_INLINE (1 << 20)

int gj_inline_tensor(lm_graph *g, const cJSON *j, int v, const char *where)
{
  if (!cJSON_IsObject(j))
    return lm_graph_error(g, LM_EINVAL, "%s: %s: a constant must be an object "
                          "{name, dtype, shape, data}", GJ_SOURCE, where);
  lm_dtype dt = LM_F32;
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(j, "dtype");
  if (jd && (!cJSON_IsString(jd) || lm_dtype_from_name(jd->valuestring, &dt) < 0))
    return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'dtype' is not a dtype name", GJ_SOURCE,
                          where);
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
  if (cJSON_IsNumber(data) || cJSON_IsBool(data)) {
    /* a scalar: shape [] unless stated */
  } else if (!cJSON_IsArray(data)) {
    return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'data' missing or not an array of numbers",
                          GJ_SOURCE, where);
  }
  int count = cJSON_IsArray(data) ? cJSON_GetArraySize(data) : 1;
  if (count > GJ_MAX_INLINE)
    return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'data' has %d numbers (inline constants hold "
                          "at most %d; put weights in a safetensors file)", GJ_SOURCE, where,
                          count, GJ_MAX_INLINE);
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "shape");
  if (js) {
    if (!cJSON_IsArray(js) || cJSON_GetArraySize(js) > LM_MAX_DIMS)
      return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'shape' must be an array of at most %d "
                            "extents", GJ_SOURCE, where, LM_MAX_DIMS);
    ndim = cJSON_GetArraySize(js);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
      const cJSON *e = cJSON_GetArrayItem(js, i);
      if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > GJ_MAX_INLINE ||
          e->valuedouble != floor(e->valuedouble))
        return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'shape' entry %d is not a "
                              "non-negative integer", GJ_SOURCE, where, i);
      shape[i] = (int64_t)e->valuedouble;
      numel *= shape[i];
      if (numel > GJ_MAX_INLINE) numel = GJ_MAX_INLINE + 1;
    }
    if (numel != count)
      return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'data' has %d numbers but 'shape' "
                            "needs %lld", GJ_SOURCE, where, count, (long long)numel);
  } else {
    ndim = cJSON_IsArray(data) ? 1 : 0;
    shape[0] = count;
  }
  double *vals = malloc(sizeof *vals * (size_t)(count ? count : 1));
  if (!vals) return lm_graph_error(g, LM_ENOMEM, "%s: out of memory", GJ_SOURCE);
  for (int i = 0; i < count; i++) {
    const cJSON *e = cJSON_IsArray(data) ? cJSON_GetArrayItem(data, i) : data;
    if (cJSON_IsBool(e)) {
      vals[i] = cJSON_IsTrue(e) ? 1 : 0;
    } else if (cJSON_IsNumber(e)) {
      vals[i] = e->valuedouble;
    } else {
      free(vals);
      return lm_graph_error(g, LM_EINVAL, "%s: %s: field 'data' entry %d is not a number",
                            GJ_SOURCE, where, i);
    }
  }
  size_t nbytes = (size_t)count * lm_dtype_size(dt);
  void *buf = lm_graph_alloc(g, nbytes ? nbytes : 1);
  if (!buf) {
    free(vals);
    return LM_ENOMEM;
  }
  /* JSON numbers are doubles: integers beyond 2^53 are not representable
  ** here, which inline shapes and indices never reach. */
  if (count) lm_convert_get(dt, LM_F64)(buf, (int64_t)lm_dtype_size(dt), (const char *)vals,
                                        sizeof(double), count);
  free(vals);
  if (v < 0) {
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(j, "name");
    v = lm_graph_value(g, cJSON_IsString(jn) ? jn->valuestring : "");
    if (v < 0) return LM_ENOMEM;
  }
  if (g->values[v].is_input || g->values[v].producer >= 0 || g->values[v].data)
    return lm_graph_error(g, LM_EINVAL, "%s: %s: constant '%s' is already defined (a graph "
                          "input, a node output or another constant)", GJ_SOURCE, where,
                          g->values[v].name);
  int rc = lm_graph_set_const(g, v, dt, ndim, shape, buf, false);
  return rc < 0 ? rc : v;
}

/* Attributes that are integers in ONNX (for every op that has them), and
** the few whose type depends on the op. */
static const char *const int_attrs[] = {
  "axis", "group", "keepdims", "ceil_mode", "count_include_pad", "storage_order",
  "select_last_index", "transA", "transB", "exclusive", "reverse", "detect_negative",
  "detect_positive", "largest", "sorted", "stash_type", "to", "exclude_outside",
  "noop_with_empty_axes", "allowzero", "batch_dims", "blocksize", "center_point_box",
  "dtype", "output_dtype", "spatial", "training_mode", "is_test", "upper", "num_outputs",
  "value_int", "new_axis", "broadcast", "fmod", "hidden_size", "input_forget", "layout",
  "linear_before_reset", "time_axis", "batch_axis", "sample_size", "block_size",
  "antialias", NULL};
static const struct { const char *op, *attr; } op_int_attrs[] = {
  {"LpPool", "p"}, {"LpNormalization", "p"}, {"LRN", "size"}, {"EyeLike", "k"},
};
/* Arrays of numbers that are FLOATS even when every element is integral. */
static const char *const float_array_attrs[] = {
  "scales", "value_floats", "activation_alpha", "activation_beta", NULL};

static bool in_list(const char *const *list, const char *s)
{
  for (; *list; list++)
    if (strcmp(*list, s) == 0) return true;
  return false;
}

static bool is_int_attr(const char *op, const char *name)
{
  if (in_list(int_attrs, name)) return true;
  for (size_t i = 0; i < sizeof op_int_attrs / sizeof op_int_attrs[0]; i++)
    if (strcmp(op_int_attrs[i].op, op) == 0 && strcmp(op_int_attrs[i].attr, name) == 0)
      return true;
  return false;
}

static bool integral(double d)
{
  return d == floor(d) && fabs(d) < 9007199254740992.0;
}

static int attr_array(lm_graph *g, int node, const char *op, const cJSON *j,
                      const char *where)
{
  const char *name = j->string;
  int n = cJSON_GetArraySize(j);
  bool all_num = true, all_str = true, all_int = true;
  for (const cJSON *e = j->child; e; e = e->next) {
    if (cJSON_IsNumber(e)) {
      all_str = false;
      if (!integral(e->valuedouble)) all_int = false;
    } else if (cJSON_IsString(e)) {
      all_num = false;
    } else {
      all_num = all_str = false;
    }
  }
  if (n > 0 && all_str) {
    lm_gattr *a = lm_graph_add_attr(g, node, name, LM_ATTR_STRINGS);
    const char **s = a ? lm_graph_alloc(g, sizeof *s * (size_t)n) : NULL;
    if (!s) return LM_ENOMEM;
    int i = 0;
    for (const cJSON *e = j->child; e; e = e->next, i++)
      if (!(s[i] = lm_graph_strdup(g, e->valuestring, (size_t)-1))) return LM_ENOMEM;
    a->strings = s;
    a->n = n;
    return LM_OK;
  }
  if (!all_num)
    return lm_graph_error(g, LM_EINVAL, "%s: %s: attribute '%s' mixes numbers and strings or "
                          "holds other values", GJ_SOURCE, where, name);
  bool want_float = in_list(float_array_attrs, name);
  if (!all_int && !want_float && is_int_attr(op, name))
    return lm_graph_error(g, LM_EINVAL, "%s: %s: attribute '%s' must hold integers", GJ_SOURCE,
                          where, name);
  if (all_int && !want_float) {
    int64_t *v = lm_graph_alloc(g, sizeof *v * (size_t)(n ? n : 1));
    if (!v) return LM_ENOMEM;
    int i = 0;
    for (const cJSON *e = j->child; e; e = e->next, i++) v[i] = (int64_t)e->valuedouble;
    return lm_graph_attr_set_ints(g, node, name, v, n);
  }
  double *v = lm_graph_alloc(g, sizeof *v * (size_t)(n ? n : 1));
  if (!v) return LM_ENOMEM;
  int i = 0;
  for (const cJSON *e = j->child; e; e = e->next, i++) v[i] = e->valuedouble;
  return lm_graph_attr_set_floats(g, node, name, v, n);
}

int gj_attr(lm_graph *g, int node, const char *op, const cJSON *j, const char *where)
{
  const char *name = j->string;
  if (cJSON_IsBool(j)) return lm_graph_attr_set_int(g, node, name, cJSON_IsTrue(j) ? 1 : 0);
  if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (is_int_attr(op, name)) {
      if (!integral(d))
        return lm_graph_error(g, LM_EINVAL, "%s: %s: attribute '%s' must be an integer "
                              "(got %g)", GJ_SOURCE, where, name, d);
      return lm_graph_attr_set_int(g, node, name, (int64_t)d);
    }
    return lm_graph_attr_set_float(g, node, name, d);
  }
  if (cJSON_IsString(j)) return lm_graph_attr_set_string(g, node, name, j->valuestring);
  if (cJSON_IsArray(j)) return attr_array(g, node, op, j, where);
  if (cJSON_IsObject(j)) {
    char w[256];
    snprintf(w, sizeof w, "%s: attribute '%s'", where, name);
    int v = gj_inline_tensor(g, j, -1, w);
    if (v < 0) return v;
    lm_gattr *a = lm_graph_add_attr(g, node, name, LM_ATTR_TENSOR);
    if (!a) return LM_ENOMEM;
    a->tensor = v;
    return LM_OK;
  }
  return lm_graph_error(g, LM_EINVAL, "%s: %s: attribute '%s' is null or of no ONNX type",
                        GJ_SOURCE, where, name);
}
