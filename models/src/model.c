/* The model object (lumen.h "Models"): loading by path (a file of a known
 * format, a package folder, or a bare name looked up in the model
 * repository), its metadata, and its lifetime.  Running it is model_run.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h" /* lm_engine_ref / lm_engine_unref */
#include "loaders.h"
#include "model_internal.h"

#define ERRLEN 1024

void lm_model_options_init(lm_model_options *o)
{
  memset(o, 0, sizeof *o);
}

lm_model *lm_model_retain(lm_model *m)
{
  if (m) atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
  return m;
}

void lm_model_release(lm_model *m)
{
  if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
  lm_engine *e = m->e;
  lm_model_plans_free(m);
  if (m->gpu_plans && m->gpu_plans_free) m->gpu_plans_free(m->gpu_plans);
  lm_graph_free(m->g);
  free(m->name);
  free(m->metadata);
  pthread_mutex_destroy(&m->mu);
  free(m);
  lm_engine_unref(e);
}

const char *lm_model_name(const lm_model *m) { return m->name; }
const char *lm_model_metadata(const lm_model *m) { return m->metadata; }
const char *lm_model_axes(const lm_model *m) { return m->axes; }
int lm_model_ninputs(const lm_model *m) { return m->g->ninputs; }
int lm_model_noutputs(const lm_model *m) { return m->g->noutputs; }

const char *lm_model_input_name(const lm_model *m, int i)
{
  if (i < 0 || i >= m->g->ninputs) return NULL;
  return m->g->values[m->g->inputs[i]].name;
}

const char *lm_model_output_name(const lm_model *m, int i)
{
  if (i < 0 || i >= m->g->noutputs) return NULL;
  return m->g->values[m->g->outputs[i]].name;
}

int lm_model_input_shape(const lm_model *m, int i, int64_t *shape)
{
  if (i < 0 || i >= m->g->ninputs) return -1;
  const lm_gvalue *v = &m->g->values[m->g->inputs[i]];
  for (int d = 0; d < v->ndim && d < LM_MAX_DIMS; d++) shape[d] = v->shape[d];
  return v->ndim;
}

/* ---- metadata ---- */

static cJSON *value_list(const lm_graph *g, const int *idx, int n)
{
  cJSON *list = cJSON_CreateArray();
  for (int i = 0; list && i < n; i++) {
    const lm_gvalue *v = &g->values[idx[i]];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", v->name ? v->name : "");
    if (v->ndim >= 0) {
      cJSON *sh = cJSON_AddArrayToObject(o, "shape");
      for (int d = 0; d < v->ndim; d++)
        cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)v->shape[d]));
    } else {
      cJSON_AddNullToObject(o, "shape");
    }
    cJSON_AddStringToObject(o, "dtype", v->dt_known ? lm_dtype_name(v->dt) : "unknown");
    cJSON_AddItemToArray(list, o);
  }
  return list;
}

static void set_string(cJSON *o, const char *key, const char *v)
{
  cJSON_DeleteItemFromObjectCaseSensitive(o, key);
  if (v) cJSON_AddStringToObject(o, key, v);
}

/* The package's metadata.json with what the loader found on top. */
static char *build_metadata(const lm_model *m, const char *format, const char *source,
                            const lm_package *pkg)
{
  cJSON *o = pkg ? cJSON_Duplicate(pkg->json, 1) : cJSON_CreateObject();
  if (!o) return NULL;
  set_string(o, "name", m->name);
  set_string(o, "format", format);
  set_string(o, "axes", m->axes);
  set_string(o, "precision", m->bf16 ? "bfloat16" : "float32");
  if (source) set_string(o, "source", source);
  if (pkg) set_string(o, "package", pkg->dir);
  if (m->g->producer) set_string(o, "producer", m->g->producer);
  cJSON_DeleteItemFromObjectCaseSensitive(o, "inputs");
  cJSON_DeleteItemFromObjectCaseSensitive(o, "outputs");
  cJSON_AddItemToObject(o, "inputs", value_list(m->g, m->g->inputs, m->g->ninputs));
  cJSON_AddItemToObject(o, "outputs", value_list(m->g, m->g->outputs, m->g->noutputs));
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

/* ---- construction ---- */

/* The file name without folder and extension ("model5_gw_ae"). */
static char *stem(const char *path)
{
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  const char *b = path;
  for (size_t i = 0; i < n; i++)
    if (path[i] == '/') b = path + i + 1;
  size_t len = (size_t)(path + n - b);
  const char *dot = memchr(b, '.', len);
  if (dot && dot != b) len = (size_t)(dot - b);
  return strndup(b, len);
}

static int check_choice(lm_engine *e, const char *what, const char *field, const char *v,
                        const char *a, const char *b)
{
  if (!v || strcmp(v, a) == 0 || strcmp(v, b) == 0) return LM_OK;
  return lm_set_error(e, LM_EINVAL, "%s: %s is \"%s\"; expected \"%s\" or \"%s\"", what, field,
                      v, a, b);
}

int lm_model_wrap(lm_engine *e, lm_graph *g, const char *name, const char *format,
                  const char *source, const lm_package *pkg, const lm_model_options *opt,
                  lm_model **out)
{
  *out = NULL;
  const char *what = source ? source : "model";
  const char *axes = opt && opt->axes ? opt->axes : pkg && pkg->axes ? pkg->axes : "XYZ";
  const char *prec = opt && opt->precision ? opt->precision
                     : pkg && pkg->precision ? pkg->precision
                                             : "float32";
  int st;
  if ((st = check_choice(e, what, "option 'axes'", axes, "XYZ", "ZYX")) < 0 ||
      (st = check_choice(e, what, "option 'precision'", prec, "float32", "bfloat16")) < 0) {
    lm_graph_free(g);
    return st;
  }
  for (int i = 0; i < g->ninputs; i++)
    if (g->values[g->inputs[i]].data) {
      lm_graph_free(g);
      return lm_set_error(e, LM_EINTERNAL, "%s: graph input '%s' is a constant", what,
                          g->values[g->inputs[i]].name);
    }
  lm_model *m = calloc(1, sizeof *m);
  if (!m) {
    lm_graph_free(g);
    return lm_set_error(e, LM_ENOMEM, "%s: out of memory", what);
  }
  atomic_init(&m->refs, 1);
  m->e = e;
  m->g = g;
  pthread_mutex_init(&m->mu, NULL);
  snprintf(m->axes, sizeof m->axes, "%s", axes);
  m->bf16 = strcmp(prec, "bfloat16") == 0;
  if ((opt && opt->precision) || (pkg && pkg->precision))
    snprintf(m->precision, sizeof m->precision, "%s", prec);
  lm_engine_ref(e);
  m->name = strdup(name && *name ? name : "model");
  if (m->name) m->metadata = build_metadata(m, format, source, pkg);
  if (!m->name || !m->metadata) {
    lm_model_release(m);
    return lm_set_error(e, LM_ENOMEM, "%s: out of memory", what);
  }
  *out = m;
  return LM_OK;
}

/* Read a graph of the given format from path and prepare it. */
static int load_graph_file(lm_engine *e, const char *path, const char *format, lm_graph **g)
{
  char err[ERRLEN] = "";
  int st;
  *g = NULL;
  if (strcmp(format, "onnx") == 0) {
    st = lm_onnx_load(path, g, err, sizeof err);
  } else if (strcmp(format, "tfjs") == 0) {
    st = lm_tfjs_load(path, g, err, sizeof err);
  } else if (strcmp(format, "graph") == 0) {
    size_t len;
    char *text = lm_model_read_text(path, &len);
    if (!text) return lm_set_error(e, LM_ENOENT, "%s: cannot read the graph file", path);
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash) *slash = '\0';
    st = lm_graph_json_load(text, len, slash ? dir : ".", g, err, sizeof err);
    free(dir);
    free(text);
  } else {
    return lm_set_error(e, LM_EINVAL, "%s: option 'format' is \"%s\"; expected \"onnx\", "
                                      "\"tfjs\" or \"graph\"", path, format);
  }
  if (st < 0) return lm_set_error(e, st, "%s", err[0] ? err : lm_status_string(st));
  if ((st = lm_graph_prepare(*g)) < 0) {
    lm_set_error(e, st, "%s", (*g)->err[0] ? (*g)->err : lm_status_string(st));
    lm_graph_free(*g);
    *g = NULL;
  }
  return st;
}

static int load_package(lm_engine *e, const char *dir, const lm_model_options *opt,
                        lm_model **out)
{
  char err[ERRLEN];
  lm_package pkg;
  int st = lm_package_read(dir, &pkg, err, sizeof err);
  if (st < 0) return lm_set_error(e, st, "%s", err);
  if (pkg.network) {
    /* lumen.nn networks are Lua programs: only the Lua binding can build
    ** them (it reads the same metadata and calls lm_model_load_graph). */
    lm_set_error(e, LM_EUNSUPPORTED,
                 "%s/metadata.json: field 'network': %s is a Lua network (lumen.nn); load "
                 "the package from Lua with lumen.load_package or lumen.load_model",
                 pkg.dir, pkg.network);
    lm_package_clear(&pkg);
    return LM_EUNSUPPORTED;
  }
  char wpath[4096];
  snprintf(wpath, sizeof wpath, "%s/%s", pkg.dir, pkg.weights);
  const char *format = opt && opt->format ? opt->format : pkg.format;
  if (!format && (st = lm_model_guess_format(wpath, &format, err, sizeof err)) < 0) {
    lm_set_error(e, st, "%s/metadata.json: field 'weights': %s", pkg.dir, err);
    lm_package_clear(&pkg);
    return st;
  }
  lm_graph *g;
  if ((st = load_graph_file(e, wpath, format, &g)) < 0) {
    lm_package_clear(&pkg);
    return st;
  }
  char *name = pkg.name ? strdup(pkg.name) : stem(pkg.dir);
  st = lm_model_wrap(e, g, name, format, wpath, &pkg, opt, out);
  free(name);
  lm_package_clear(&pkg);
  return st;
}

int lm_model_load(lm_engine *e, const char *path, const lm_model_options *opt, lm_model **out)
{
  *out = NULL;
  if (!path || !*path) return lm_set_error(e, LM_EINVAL, "LoadModel: empty path");
  char resolved[4096];
  struct stat sb;
  if (lm_model_is_bare_name(path)) {
    char repo[4000];
    lm_model_repository(repo, sizeof repo);
    snprintf(resolved, sizeof resolved, "%s/%s", repo, path);
    if (stat(resolved, &sb) != 0 || !S_ISDIR(sb.st_mode))
      return lm_set_error(e, LM_ENOENT,
                          "model '%s' is not in the model repository %s (set LUMEN_MODELS or "
                          "`lumen run --models DIR`; a path with a slash loads a folder)",
                          path, repo);
    return load_package(e, resolved, opt, out);
  }
  if (stat(path, &sb) != 0) return lm_set_error(e, LM_ENOENT, "%s: no such file or folder", path);
  if (S_ISDIR(sb.st_mode)) return load_package(e, path, opt, out);
  char err[ERRLEN];
  const char *format = opt && opt->format ? opt->format : NULL;
  int st;
  if (!format && (st = lm_model_guess_format(path, &format, err, sizeof err)) < 0)
    return lm_set_error(e, st, "%s", err);
  lm_graph *g;
  if ((st = load_graph_file(e, path, format, &g)) < 0) return st;
  char *name = stem(path);
  /* tfjs models are all called model.json: the folder names them. */
  if (name && strcmp(name, "model") == 0 && strchr(path, '/')) {
    char *dir = strndup(path, (size_t)(strrchr(path, '/') - path));
    free(name);
    name = dir ? stem(dir) : NULL;
    free(dir);
  }
  st = lm_model_wrap(e, g, name, format, path, NULL, opt, out);
  free(name);
  return st;
}

int lm_model_load_graph(lm_engine *e, const char *json, size_t len, const char *base_dir,
                        const lm_model_options *opt, lm_model **out)
{
  *out = NULL;
  if (!json) return lm_set_error(e, LM_EINVAL, "lumen graph: no JSON text");
  char err[ERRLEN] = "";
  lm_graph *g = NULL;
  int st = lm_graph_json_load(json, len, base_dir ? base_dir : ".", &g, err, sizeof err);
  if (st < 0) return lm_set_error(e, st, "%s", err[0] ? err : lm_status_string(st));
  if ((st = lm_graph_prepare(g)) < 0) {
    lm_set_error(e, st, "%s", g->err[0] ? g->err : lm_status_string(st));
    lm_graph_free(g);
    return st;
  }
  /* The graph may carry its own name, and package metadata (a Lua
  ** network package: lumen.load_package puts metadata.json there). */
  char *name = NULL;
  lm_package pkg, *pp = NULL;
  memset(&pkg, 0, sizeof pkg);
  cJSON *j = cJSON_ParseWithLength(json, len);
  const cJSON *n = j ? cJSON_GetObjectItemCaseSensitive(j, "name") : NULL;
  const cJSON *meta = j ? cJSON_GetObjectItemCaseSensitive(j, "metadata") : NULL;
  if (cJSON_IsString(n)) name = strdup(n->valuestring);
  if (cJSON_IsObject(meta)) {
    char err2[ERRLEN];
    st = lm_package_fields("lumen graph JSON: field 'metadata'", meta, &pkg, err2,
                           sizeof err2);
    if (st < 0) {
      lm_set_error(e, st, "%s", err2);
      cJSON_Delete(j);
      free(name);
      lm_graph_free(g);
      return st;
    }
    pkg.json = (cJSON *)meta;
    pp = &pkg;
    if (pkg.name) {
      free(name);
      name = strdup(pkg.name);
    }
  }
  st = lm_model_wrap(e, g, name ? name : "graph", "graph", NULL, pp, opt, out);
  cJSON_Delete(j); /* pkg pointed into it */
  free(name);
  return st;
}
