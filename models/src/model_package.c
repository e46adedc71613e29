/* Model packages: a folder with metadata.json, the weights and
 * pipeline.lua.  This file reads and validates metadata.json (every error
 * names the file and the field) and finds the model repository. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lumen_config.h"
#include "model_internal.h"

#define META_FILE "metadata.json"

static int fail(char *err, size_t errlen, int st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int st, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return st;
}

static char *read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* A string field or NULL when absent; a non-string is an error. */
static int string_field(const char *file, const cJSON *obj, const char *field,
                        const char **out, char *err, size_t errlen)
{
  *out = NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
  if (!v || cJSON_IsNull(v)) return LM_OK;
  if (!cJSON_IsString(v))
    return fail(err, errlen, LM_EINVAL, "%s: field '%s' must be a string", file, field);
  *out = v->valuestring;
  return LM_OK;
}

static int one_of(const char *file, const char *field, const char *v, const char *const *allowed,
                  char *err, size_t errlen)
{
  if (!v) return LM_OK;
  for (const char *const *a = allowed; *a; a++)
    if (strcmp(v, *a) == 0) return LM_OK;
  char list[128] = "";
  for (const char *const *a = allowed; *a; a++) {
    if (a != allowed) strncat(list, ", ", sizeof list - strlen(list) - 1);
    strncat(list, *a, sizeof list - strlen(list) - 1);
  }
  return fail(err, errlen, LM_EINVAL, "%s: field '%s' is \"%s\"; expected one of %s", file, field,
              v, list);
}

/* labels: {"1": "White Matter", ...} with integer keys, or a list of
** names (index = label). */
static int check_labels(const char *file, const cJSON *obj, char *err, size_t errlen)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "labels");
  if (!v || cJSON_IsNull(v)) return LM_OK;
  if (cJSON_IsArray(v)) {
    int i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++)
      if (!cJSON_IsString(it))
        return fail(err, errlen, LM_EINVAL, "%s: field 'labels': entry %d must be a string", file,
                    i);
    return LM_OK;
  }
  if (!cJSON_IsObject(v))
    return fail(err, errlen, LM_EINVAL,
                "%s: field 'labels' must be an object {\"1\": \"name\", ...} or a list of names",
                file);
  for (const cJSON *it = v->child; it; it = it->next) {
    char *end;
    long k = strtol(it->string, &end, 10);
    if (!*it->string || *end || k < 0)
      return fail(err, errlen, LM_EINVAL,
                  "%s: field 'labels': key \"%s\" is not a label number", file, it->string);
    if (!cJSON_IsString(it))
      return fail(err, errlen, LM_EINVAL, "%s: field 'labels': label %s must be a string name",
                  file, it->string);
  }
  return LM_OK;
}

/* A list of positive numbers (integers when integral is set). */
static int check_numbers(const char *file, const cJSON *obj, const char *field, bool integral,
                         char *err, size_t errlen)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
  if (!v || cJSON_IsNull(v)) return LM_OK;
  const char *what = integral ? "positive integers" : "positive numbers";
  if (!cJSON_IsArray(v) || !v->child)
    return fail(err, errlen, LM_EINVAL, "%s: field '%s' must be a list of %s", file, field, what);
  for (const cJSON *it = v->child; it; it = it->next) {
    double x = cJSON_IsNumber(it) ? it->valuedouble : -1;
    if (!(x > 0) || (integral && x != (double)(long long)x))
      return fail(err, errlen, LM_EINVAL, "%s: field '%s' must be a list of %s", file, field,
                  what);
  }
  return LM_OK;
}

int lm_package_fields(const char *file, const cJSON *json, lm_package *pkg, char *err,
                      size_t errlen)
{
  int st;
  static const char *const formats[] = {"onnx", "tfjs", "graph", NULL};
  static const char *const axes[] = {"XYZ", "ZYX", NULL};
  static const char *const precisions[] = {"float32", "bfloat16", NULL};
  if ((st = string_field(file, json, "name", &pkg->name, err, errlen)) < 0 ||
      (st = string_field(file, json, "description", &pkg->description, err, errlen)) < 0 ||
      (st = string_field(file, json, "type", &pkg->type, err, errlen)) < 0 ||
      (st = string_field(file, json, "weights", &pkg->weights, err, errlen)) < 0 ||
      (st = string_field(file, json, "network", &pkg->network, err, errlen)) < 0 ||
      (st = string_field(file, json, "format", &pkg->format, err, errlen)) < 0 ||
      (st = string_field(file, json, "axes", &pkg->axes, err, errlen)) < 0 ||
      (st = string_field(file, json, "precision", &pkg->precision, err, errlen)) < 0 ||
      (st = one_of(file, "format", pkg->format, formats, err, errlen)) < 0 ||
      (st = one_of(file, "axes", pkg->axes, axes, err, errlen)) < 0 ||
      (st = one_of(file, "precision", pkg->precision, precisions, err, errlen)) < 0 ||
      (st = check_labels(file, json, err, errlen)) < 0 ||
      (st = check_numbers(file, json, "spacing", false, err, errlen)) < 0 ||
      (st = check_numbers(file, json, "roi", true, err, errlen)) < 0)
    return st;
  return LM_OK;
}

void lm_package_clear(lm_package *pkg)
{
  free(pkg->dir);
  cJSON_Delete(pkg->json);
  memset(pkg, 0, sizeof *pkg);
}

int lm_package_read(const char *dir, lm_package *pkg, char *err, size_t errlen)
{
  memset(pkg, 0, sizeof *pkg);
  char file[4096];
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/') dl--;
  snprintf(file, sizeof file, "%.*s/%s", (int)dl, dir, META_FILE);
  size_t len;
  char *text = read_file(file, &len);
  if (!text)
    return fail(err, errlen, LM_ENOENT, "%s: cannot read the package metadata (a model package "
                                        "folder holds metadata.json)", file);
  cJSON *json = cJSON_ParseWithLength(text, len);
  if (!json) {
    const char *at = cJSON_GetErrorPtr();
    long off = at && at >= text && at <= text + len ? (long)(at - text) : -1;
    free(text);
    return fail(err, errlen, LM_EFORMAT, "%s: not valid JSON (near byte %ld)", file, off);
  }
  free(text);
  int st = LM_OK;
  pkg->json = json;
  pkg->dir = strndup(dir, dl);
  if (!pkg->dir) {
    lm_package_clear(pkg);
    return fail(err, errlen, LM_ENOMEM, "%s: out of memory", file);
  }
  if (!cJSON_IsObject(json)) {
    st = fail(err, errlen, LM_EFORMAT, "%s: the top level must be a JSON object", file);
    goto out;
  }
  if ((st = lm_package_fields(file, json, pkg, err, errlen)) < 0) goto out;
  if (!pkg->weights || !*pkg->weights) {
    st = fail(err, errlen, LM_EINVAL, "%s: field 'weights' is missing (the file name of the "
                                      "network's weights in the folder)", file);
    goto out;
  }
  if (strchr(pkg->weights, '/') || strcmp(pkg->weights, "..") == 0) {
    st = fail(err, errlen, LM_EINVAL, "%s: field 'weights' must be a file name in the package "
                                      "folder, got \"%s\"", file, pkg->weights);
    goto out;
  }
  char wpath[4096];
  struct stat sb;
  snprintf(wpath, sizeof wpath, "%s/%s", pkg->dir, pkg->weights);
  if (stat(wpath, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    st = fail(err, errlen, LM_ENOENT, "%s: field 'weights': no file %s", file, wpath);
    goto out;
  }
  if (pkg->network) {
    size_t n = strlen(pkg->network);
    if (n < 5 || strcmp(pkg->network + n - 4, ".lua") != 0 || strchr(pkg->network, '/')) {
      st = fail(err, errlen, LM_EINVAL, "%s: field 'network' must name a .lua file in the "
                                        "package folder, got \"%s\"", file, pkg->network);
      goto out;
    }
  }
out:
  if (st < 0) lm_package_clear(pkg);
  return st;
}

static bool is_dir(const char *p)
{
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

char *lm_model_repository(char *buf, size_t len)
{
  const char *env = getenv("LUMEN_MODELS");
  if (env && *env) {
    snprintf(buf, len, "%s", env);
    return buf;
  }
  /* A build tree runs against its sources; an installed lumen has no
  ** source tree and uses the data folder. */
  snprintf(buf, len, "%s/models", LUMEN_SOURCE_ROOT);
  if (is_dir(buf)) return buf;
  snprintf(buf, len, "%s/lumen/models", LUMEN_DATADIR);
  return buf;
}

bool lm_model_is_bare_name(const char *path)
{
  return *path && !strchr(path, '/') && !strchr(path, '.');
}

int lm_model_guess_format(const char *path, const char **format, char *err, size_t errlen)
{
  *format = NULL;
  size_t n = strlen(path);
  if (n >= 5 && strcmp(path + n - 5, ".onnx") == 0) {
    *format = "onnx";
    return LM_OK;
  }
  if (n >= 5 && strcmp(path + n - 5, ".json") == 0) {
    /* tfjs layers models and lumen graphs are both JSON: a tfjs model.json
    ** has a modelTopology member. */
    size_t len;
    char *text = read_file(path, &len);
    if (!text) return fail(err, errlen, LM_ENOENT, "%s: cannot read the model file", path);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) return fail(err, errlen, LM_EFORMAT, "%s: not valid JSON", path);
    bool tfjs = cJSON_GetObjectItemCaseSensitive(j, "modelTopology") != NULL;
    cJSON_Delete(j);
    *format = tfjs ? "tfjs" : "graph";
    return LM_OK;
  }
  return fail(err, errlen, LM_EINVAL,
              "%s: unknown model format (expected .onnx, a tfjs model.json, a lumen graph "
              ".json or a package folder with metadata.json; or give the format option)",
              path);
}

char *lm_model_read_text(const char *path, size_t *len)
{
  return read_file(path, len);
}
