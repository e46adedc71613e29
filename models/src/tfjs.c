/* TensorFlow.js layers models (loaders.h): model.json holds the Keras
 * topology ("modelTopology") and a "weightsManifest": groups of shard files
 * ("paths", read next to model.json and concatenated in order) and the
 * weights they hold ({name, shape, dtype}, packed back to back in manifest
 * order).  Quantized weights carry "quantization" {dtype: uint8 | uint16 |
 * float16, scale, min}: value = q * scale + min (float16: the half value).
 * Every weight is dequantized to float32 here; tfjs_layers.c lays them out
 * for the channels-first IR. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loaders.h"
#include "tfjs_internal.h"

/* The largest model.json or shard accepted: brainchop's are below 1 MB and
** 30 MB; a bigger file is more likely garbage than a model. */
#define TFJS_MAX_FILE ((size_t)2 << 30)

static int read_file(tfjs_ctx *c, const char *path, char **buf, size_t *len)
{
  *buf = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return tfjs_fail(c, errno == ENOENT ? LM_ENOENT : LM_EIO, "cannot open '%s': %s", path,
                     strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > TFJS_MAX_FILE) {
    fclose(f);
    return tfjs_fail(c, LM_EIO, "'%s' is not a regular file of a sensible size", path);
  }
  size_t n = (size_t)st.st_size;
  char *b = malloc(n + 1);
  if (!b) {
    fclose(f);
    return tfjs_fail(c, LM_ENOMEM, "out of memory reading '%s'", path);
  }
  size_t got = fread(b, 1, n, f);
  fclose(f);
  if (got != n) {
    free(b);
    return tfjs_fail(c, LM_EIO, "cannot read '%s'", path);
  }
  b[n] = 0;
  *buf = b;
  *len = n;
  return LM_OK;
}

static float half_to_float(uint16_t h)
{
  int e = (h >> 10) & 31, m = h & 1023;
  float v = e == 0 ? ldexpf((float)m, -24)
          : e == 31 ? (m ? NAN : INFINITY)
                    : ldexpf((float)(m | 1024), e - 25);
  return (h & 0x8000) ? -v : v;
}

/* Decode one weight of the manifest from bytes p (avail bytes left). */
static int decode_weight(tfjs_ctx *c, const cJSON *jw, const char *where, const unsigned char *p,
                         size_t avail, size_t *used, tfjs_weight *w)
{
  const cJSON *jn = cJSON_GetObjectItemCaseSensitive(jw, "name");
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(jw, "shape");
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(jw, "dtype");
  if (!cJSON_IsString(jn))
    return tfjs_fail(c, LM_EFORMAT, "%s: field 'name' missing", where);
  if (!cJSON_IsArray(js) || cJSON_GetArraySize(js) > LM_MAX_DIMS)
    return tfjs_fail(c, LM_EFORMAT, "%s ('%s'): field 'shape' missing or over %d dims", where,
                     jn->valuestring, LM_MAX_DIMS);
  w->ndim = cJSON_GetArraySize(js);
  int64_t numel = 1;
  for (int i = 0; i < w->ndim; i++) {
    const cJSON *e = cJSON_GetArrayItem(js, i);
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (double)(1 << 30) ||
        e->valuedouble != floor(e->valuedouble))
      return tfjs_fail(c, LM_EFORMAT, "%s ('%s'): field 'shape' entry %d is not an extent",
                       where, jn->valuestring, i);
    w->shape[i] = (int64_t)e->valuedouble;
    numel *= w->shape[i];
    if (numel > ((int64_t)1 << 34))
      return tfjs_fail(c, LM_EFORMAT, "%s ('%s'): field 'shape' is too large", where,
                       jn->valuestring);
  }
  const char *dt = cJSON_IsString(jd) ? jd->valuestring : "float32";
  const cJSON *q = cJSON_GetObjectItemCaseSensitive(jw, "quantization");
  const char *store = dt;   /* how the bytes are stored */
  double scale = 1, qmin = 0;
  if (q) {
    const cJSON *qd = cJSON_GetObjectItemCaseSensitive(q, "dtype");
    if (!cJSON_IsString(qd))
      return tfjs_fail(c, LM_EFORMAT, "%s ('%s'): field 'quantization.dtype' missing", where,
                       jn->valuestring);
    store = qd->valuestring;
    if (strcmp(store, "float16") != 0) {
      const cJSON *qs = cJSON_GetObjectItemCaseSensitive(q, "scale");
      const cJSON *qm = cJSON_GetObjectItemCaseSensitive(q, "min");
      if (!cJSON_IsNumber(qs) || !cJSON_IsNumber(qm))
        return tfjs_fail(c, LM_EFORMAT, "%s ('%s'): field 'quantization' needs numbers 'scale' "
                         "and 'min'", where, jn->valuestring);
      scale = qs->valuedouble;
      qmin = qm->valuedouble;
    }
  }
  size_t esize;
  if (!strcmp(store, "float32") || !strcmp(store, "int32")) esize = 4;
  else if (!strcmp(store, "uint16") || !strcmp(store, "float16")) esize = 2;
  else if (!strcmp(store, "uint8") || !strcmp(store, "bool")) esize = 1;
  else
    return tfjs_fail(c, LM_EDTYPE, "%s ('%s'): dtype '%s' is not supported (float32, int32, "
                     "bool; quantized uint8, uint16, float16)", where, jn->valuestring, store);
  if (strcmp(dt, "float32") != 0 && strcmp(dt, "int32") != 0 && strcmp(dt, "bool") != 0)
    return tfjs_fail(c, LM_EDTYPE, "%s ('%s'): field 'dtype' '%s' is not supported", where,
                     jn->valuestring, dt);
  size_t nbytes = (size_t)numel * esize;
  if (nbytes > avail)
    return tfjs_fail(c, LM_EFORMAT, "%s ('%s'): needs %zu bytes but the shards have %zu left "
                     "(a shard is truncated or missing)", where, jn->valuestring, nbytes, avail);
  w->data = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
  w->name = strdup(jn->valuestring);
  if (!w->data || !w->name) return tfjs_fail(c, LM_ENOMEM, "out of memory");
  for (int64_t i = 0; i < numel; i++) {
    const unsigned char *e = p + (size_t)i * esize;
    float v;
    if (!q && !strcmp(store, "float32")) {
      memcpy(&v, e, 4);   /* little-endian, as tfjs writes them */
    } else if (!strcmp(store, "int32")) {
      int32_t x;
      memcpy(&x, e, 4);
      v = (float)x;
    } else if (!strcmp(store, "float16")) {
      v = half_to_float((uint16_t)(e[0] | e[1] << 8));
    } else if (!strcmp(store, "uint16")) {
      v = (float)((e[0] | e[1] << 8) * scale + qmin);
    } else {   /* uint8, bool */
      v = q ? (float)(e[0] * scale + qmin) : (float)e[0];
    }
    w->data[i] = v;
  }
  *used = nbytes;
  return LM_OK;
}

static int read_manifest(tfjs_ctx *c, const cJSON *man, const char *dir)
{
  if (!cJSON_IsArray(man))
    return tfjs_fail(c, LM_EFORMAT, "field 'weightsManifest' missing or not an array");
  int total = 0;
  for (const cJSON *grp = man->child; grp; grp = grp->next)
    total += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(grp, "weights"));
  c->w = calloc((size_t)(total ? total : 1), sizeof *c->w);
  if (!c->w) return tfjs_fail(c, LM_ENOMEM, "out of memory");
  int gi = 0;
  for (const cJSON *grp = man->child; grp; grp = grp->next, gi++) {
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(grp, "paths");
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(grp, "weights");
    if (!cJSON_IsArray(paths) || !cJSON_IsArray(ws))
      return tfjs_fail(c, LM_EFORMAT, "weightsManifest[%d]: fields 'paths' and 'weights' must be "
                       "arrays", gi);
    /* The group's shards, concatenated: weights may straddle shard ends. */
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = LM_OK;
    for (const cJSON *p = paths->child; p && rc == LM_OK; p = p->next) {
      if (!cJSON_IsString(p) || strstr(p->valuestring, "..") || p->valuestring[0] == '/') {
        rc = tfjs_fail(c, LM_EFORMAT, "weightsManifest[%d]: field 'paths' holds a name that is "
                       "not a file beside model.json", gi);
        break;
      }
      char path[4096];
      if (snprintf(path, sizeof path, "%s/%s", dir, p->valuestring) >= (int)sizeof path) {
        rc = tfjs_fail(c, LM_EFORMAT, "weightsManifest[%d]: a shard path is too long", gi);
        break;
      }
      char *part;
      size_t plen;
      if ((rc = read_file(c, path, &part, &plen)) < 0) break;
      unsigned char *nb = realloc(buf, len + plen + 1);
      if (!nb) {
        free(part);
        rc = tfjs_fail(c, LM_ENOMEM, "out of memory");
        break;
      }
      buf = nb;
      memcpy(buf + len, part, plen);
      len += plen;
      free(part);
    }
    const unsigned char *base = buf ? buf : (const unsigned char *)"";
    size_t off = 0;
    int wi = 0;
    for (const cJSON *jw = ws->child; jw && rc == LM_OK; jw = jw->next, wi++) {
      char where[64];
      snprintf(where, sizeof where, "weightsManifest[%d].weights[%d]", gi, wi);
      size_t used = 0;
      rc = decode_weight(c, jw, where, base + off, len - off, &used, &c->w[c->nw]);
      if (c->w[c->nw].name || c->w[c->nw].data) c->nw++;   /* freed with the rest */
      off += used;
    }
    free(buf);
    if (rc < 0) return rc;
  }
  return LM_OK;
}

static void ctx_free(tfjs_ctx *c)
{
  for (int i = 0; i < c->nw; i++) {
    free(c->w[i].name);
    free(c->w[i].data);
  }
  free(c->w);
  for (int i = 0; i < c->nt; i++) free(c->t[i].key);
  free(c->t);
}

/* The Keras model config {class_name, config} inside modelTopology. */
static const cJSON *find_model(const cJSON *topo)
{
  if (!cJSON_IsObject(topo)) return NULL;
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(topo, "model_config");
  if (cJSON_IsObject(m)) return m;
  if (cJSON_GetObjectItemCaseSensitive(topo, "class_name")) return topo;
  m = cJSON_GetObjectItemCaseSensitive(topo, "config");
  return cJSON_IsObject(m) && cJSON_GetObjectItemCaseSensitive(m, "class_name") ? m : topo;
}

int lm_tfjs_load(const char *model_json_path, lm_graph **out, char *err, size_t errlen)
{
  *out = NULL;
  tfjs_ctx c = {0};
  c.g = lm_graph_new();
  if (!c.g) {
    if (err && errlen) snprintf(err, errlen, "%s: out of memory", model_json_path);
    return LM_ENOMEM;
  }
  c.g->source = lm_graph_strdup(c.g, model_json_path, (size_t)-1);
  c.g->producer = "tfjs-layers";
  c.path = c.g->source ? c.g->source : model_json_path;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", model_json_path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");

  char *text = NULL;
  size_t len = 0;
  cJSON *root = NULL;
  int rc = read_file(&c, model_json_path, &text, &len);
  if (rc == LM_OK) {
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root)
      rc = tfjs_fail(&c, LM_EFORMAT, "invalid JSON near byte %zu",
                     end ? (size_t)(end - text) : (size_t)0);
  }
  const cJSON *model = NULL;
  if (rc == LM_OK) {
    const cJSON *topo = cJSON_GetObjectItemCaseSensitive(root, "modelTopology");
    model = topo ? find_model(topo) : NULL;
    if (!model)
      rc = tfjs_fail(&c, LM_EFORMAT, "field 'modelTopology' missing or not an object (not a "
                     "tfjs layers model?)");
  }
  if (rc == LM_OK)
    rc = read_manifest(&c, cJSON_GetObjectItemCaseSensitive(root, "weightsManifest"), dir);
  if (rc == LM_OK) rc = tfjs_translate(&c, model);
  cJSON_Delete(root);
  free(text);
  ctx_free(&c);
  if (rc < 0) {
    if (err && errlen) snprintf(err, errlen, "%s", c.g->err);
    lm_graph_free(c.g);
    return rc;
  }
  c.g->opset = 18;
  *out = c.g;
  return LM_OK;
}
