/* safetensors reader (loaders.h): the file is mapped read-only and each
 * tensor's data points into the mapping, so opening a large weights file
 * costs a header parse and no copy.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *    ..., "__metadata__": {string: string}}
 * then the data; offsets are relative to the first byte after the header.
 * Every offset is checked against the file size and against the tensor's
 * dtype and shape before anything points at it. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loaders.h"

/* A header larger than this is not a weights file (real ones are a few KB
 * to a few MB); refusing it keeps a garbled length from allocating GBs. */
#define ST_MAX_HEADER (100u << 20)

typedef struct st_tensor {
  char *name;
  lm_dtype dt;
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  const void *data;
  size_t nbytes;
} st_tensor;

struct lm_safetensors {
  void *map;
  size_t map_len;
  int n;
  st_tensor *t;
};

static int st_fail(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int st_fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return status;
}

/* The safetensors dtype names; BOOL is held as uint8 (one byte, 0/1). */
static int st_dtype(const char *s, lm_dtype *dt)
{
  static const struct { const char *name; lm_dtype dt; } table[] = {
    {"F32", LM_F32}, {"F16", LM_F16}, {"BF16", LM_BF16}, {"F64", LM_F64},
    {"I64", LM_I64}, {"I32", LM_I32}, {"I16", LM_I16}, {"I8", LM_I8},
    {"U8", LM_U8}, {"BOOL", LM_U8}, {"U16", LM_U16}, {"U32", LM_U32},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(s, table[i].name) == 0) {
      *dt = table[i].dt;
      return LM_OK;
    }
  return LM_EDTYPE;
}

/* A JSON number that is an exact non-negative integer below 2^53 (what a
 * double holds exactly). */
static bool st_uint(const cJSON *j, uint64_t *out)
{
  if (!cJSON_IsNumber(j)) return false;
  double d = j->valuedouble;
  if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return false;
  *out = (uint64_t)d;
  return true;
}

void lm_safetensors_close(lm_safetensors *s)
{
  if (!s) return;
  for (int i = 0; i < s->n; i++) free(s->t[i].name);
  free(s->t);
  if (s->map) munmap(s->map, s->map_len);
  free(s);
}

/* Fill one entry from its header object; data_base/data_len delimit the
 * data section. */
static int st_entry(const char *path, const cJSON *j, const unsigned char *data_base,
                    uint64_t data_len, st_tensor *t, char *err, size_t errlen)
{
  const char *nm = j->string;
  if (!cJSON_IsObject(j))
    return st_fail(err, errlen, LM_EFORMAT, "%s: header entry '%s' is not an object", path, nm);
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(j, "dtype");
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "shape");
  const cJSON *jo = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
  if (!cJSON_IsString(jd))
    return st_fail(err, errlen, LM_EFORMAT, "%s: tensor '%s': field 'dtype' missing or not a string",
                   path, nm);
  if (st_dtype(jd->valuestring, &t->dt) < 0)
    return st_fail(err, errlen, LM_EDTYPE, "%s: tensor '%s': dtype '%s' is not supported "
                   "(F32 F16 BF16 F64 I64 I32 I16 I8 U8 U16 U32 BOOL)", path, nm, jd->valuestring);
  if (!cJSON_IsArray(js))
    return st_fail(err, errlen, LM_EFORMAT, "%s: tensor '%s': field 'shape' missing or not an array",
                   path, nm);
  int nd = cJSON_GetArraySize(js);
  if (nd > LM_MAX_DIMS)
    return st_fail(err, errlen, LM_EFORMAT, "%s: tensor '%s': field 'shape' has %d dims (at most %d)",
                   path, nm, nd, LM_MAX_DIMS);
  uint64_t numel = 1;
  for (int i = 0; i < nd; i++) {
    uint64_t e;
    if (!st_uint(cJSON_GetArrayItem(js, i), &e) || e > (1ull << 40))
      return st_fail(err, errlen, LM_EFORMAT, "%s: tensor '%s': field 'shape' entry %d is not a "
                     "non-negative integer", path, nm, i);
    t->shape[i] = (int64_t)e;
    /* numel stays far from overflow: each extent is below 2^40 and the
     * product is compared with the data size (< 2^53) at each step. */
    numel = e == 0 ? 0 : numel * e;
    if (numel > (1ull << 53))
      return st_fail(err, errlen, LM_EFORMAT, "%s: tensor '%s': field 'shape' is too large", path, nm);
  }
  t->ndim = nd;
  uint64_t b, e;
  if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 ||
      !st_uint(cJSON_GetArrayItem(jo, 0), &b) || !st_uint(cJSON_GetArrayItem(jo, 1), &e))
    return st_fail(err, errlen, LM_EFORMAT, "%s: tensor '%s': field 'data_offsets' is not two "
                   "non-negative integers", path, nm);
  if (b > e || e > data_len)
    return st_fail(err, errlen, LM_EFORMAT, "%s: tensor '%s': field 'data_offsets' [%llu, %llu] "
                   "is outside the data section (%llu bytes; file truncated?)", path, nm,
                   (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_len);
  uint64_t want = numel * lm_dtype_size(t->dt);
  if (e - b != want)
    return st_fail(err, errlen, LM_EFORMAT, "%s: tensor '%s': field 'data_offsets' spans %llu bytes "
                   "but dtype %s and shape need %llu", path, nm, (unsigned long long)(e - b),
                   jd->valuestring, (unsigned long long)want);
  t->data = data_base + b;
  t->nbytes = (size_t)want;
  t->name = strdup(nm);
  if (!t->name) return st_fail(err, errlen, LM_ENOMEM, "%s: out of memory", path);
  return LM_OK;
}

static int st_parse(const char *path, lm_safetensors *s, char *err, size_t errlen)
{
  const unsigned char *p = s->map;
  if (s->map_len < 8)
    return st_fail(err, errlen, LM_EFORMAT, "%s: %zu bytes: too short for the 8-byte header "
                   "length", path, s->map_len);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | p[i];
  if (hl > ST_MAX_HEADER || hl > s->map_len - 8)
    return st_fail(err, errlen, LM_EFORMAT, "%s: header length %llu does not fit the file "
                   "(%zu bytes; truncated or not safetensors?)", path, (unsigned long long)hl,
                   s->map_len);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hl, &end, 0);
  if (!root) {
    size_t at = end ? (size_t)(end - (const char *)p - 8) : 0;
    return st_fail(err, errlen, LM_EFORMAT, "%s: header: invalid JSON near byte %zu", path, at);
  }
  int rc = LM_OK;
  if (!cJSON_IsObject(root)) {
    rc = st_fail(err, errlen, LM_EFORMAT, "%s: header is not a JSON object", path);
    goto done;
  }
  int count = 0;
  for (const cJSON *j = root->child; j; j = j->next)
    if (strcmp(j->string, "__metadata__") != 0) count++;
  s->t = calloc((size_t)(count ? count : 1), sizeof *s->t);
  if (!s->t) {
    rc = st_fail(err, errlen, LM_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  const unsigned char *data = p + 8 + hl;
  uint64_t data_len = s->map_len - 8 - hl;
  for (const cJSON *j = root->child; j; j = j->next) {
    if (strcmp(j->string, "__metadata__") == 0) continue;   /* free-form strings */
    rc = st_entry(path, j, data, data_len, &s->t[s->n], err, errlen);
    if (rc < 0) goto done;
    s->n++;
  }
done:
  cJSON_Delete(root);
  return rc;
}

int lm_safetensors_open(const char *path, lm_safetensors **out, char *err, size_t errlen)
{
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return st_fail(err, errlen, errno == ENOENT ? LM_ENOENT : LM_EIO, "%s: cannot open: %s",
                   path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return st_fail(err, errlen, LM_EIO, "%s: not a regular file", path);
  }
  lm_safetensors *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return st_fail(err, errlen, LM_ENOMEM, "%s: out of memory", path);
  }
  s->map_len = (size_t)st.st_size;
  if (s->map_len > 0) {
    s->map = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (s->map == MAP_FAILED) {
      s->map = NULL;
      int e = errno;
      close(fd);
      free(s);
      return st_fail(err, errlen, LM_EIO, "%s: cannot map: %s", path, strerror(e));
    }
  }
  close(fd);   /* the mapping keeps the file */
  int rc = st_parse(path, s, err, errlen);
  if (rc < 0) {
    lm_safetensors_close(s);
    return rc;
  }
  *out = s;
  return LM_OK;
}

int lm_safetensors_count(const lm_safetensors *s)
{
  return s ? s->n : 0;
}

const char *lm_safetensors_at(const lm_safetensors *s, int i, lm_dtype *dt, int *ndim,
                              int64_t *shape, const void **data, size_t *nbytes)
{
  if (!s || i < 0 || i >= s->n) return NULL;
  const st_tensor *t = &s->t[i];
  if (dt) *dt = t->dt;
  if (ndim) *ndim = t->ndim;
  if (shape)
    for (int k = 0; k < t->ndim; k++) shape[k] = t->shape[k];
  if (data) *data = t->data;
  if (nbytes) *nbytes = t->nbytes;
  return t->name;
}
