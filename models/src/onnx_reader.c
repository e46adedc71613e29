/* The ONNX reader (loaders.h): ModelProto bytes -> lm_graph, zero-copy.
 *
 * The file is mapped and parsed in place with the wire cursor of
 * onnx_wire.h.  raw_data weights are not copied: constants point into the
 * mapping, which the graph keeps alive (lm_graph_keep); lm_graph_set_const
 * copies the rare unaligned ones.  Typed repeated fields (float_data,
 * int64_data, ...) are converted into arena memory.  Fields lumen has no use
 * for are skipped; fields it cannot honour (subgraph attributes, sparse or
 * segmented tensors, model-local functions in use) are refused with a
 * message rather than dropped.  Nothing recurses: the nesting of the
 * messages we read is fixed (model > graph > node > attribute > tensor).
 *
 * Error messages name the file, then the path to the field:
 *   "m.onnx: node 12 (Conv 'conv1'): attribute 'pads': truncated varint". */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loaders.h"
#include "onnx_wire.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "the ONNX reader supports little-endian hosts only (raw_data is used in place)"
#endif

/* A file mapped read-only, unmapped when the graph is freed. */
typedef struct mapped_file {
  void *addr;
  size_t len;
} mapped_file;

static void mapped_file_release(void *ctx)
{
  mapped_file *m = ctx;
  if (m->addr) munmap(m->addr, m->len);
  free(m);
}

/* An external-data file already mapped for this model (several tensors
** usually share one). */
typedef struct ext_file {
  struct ext_file *next;
  char *location;
  const uint8_t *data;
  size_t len;
} ext_file;

typedef struct reader {
  lm_graph *g;
  const char *file;          /* for messages */
  const char *base_dir;      /* external data folder; NULL: refused */
  char ctx[256];             /* path to the field being read */
  char *scratch;             /* NUL-terminated copies of names */
  size_t scratch_cap;
  ext_file *ext;
  /* ModelProto.functions: (domain, name) of each, to refuse nodes that
   * call one. */
  int nfunctions;
  const uint8_t **fn_name, **fn_domain;
  size_t *fn_name_len, *fn_domain_len;
} reader;

/* ---- messages ------------------------------------------------------------ */

static int fail(reader *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(reader *r, int status, const char *fmt, ...)
{
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (r->ctx[0])
    return lm_graph_error(r->g, status, "%s: %s: %s", r->file, r->ctx, msg);
  return lm_graph_error(r->g, status, "%s: %s", r->file, msg);
}

/* Append "part" to the context path; returns the mark to restore. */
static size_t ctx_push(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t ctx_push(reader *r, const char *fmt, ...)
{
  size_t mark = strlen(r->ctx);
  size_t at = mark;
  if (at && at + 2 < sizeof r->ctx) {
    memcpy(r->ctx + at, ": ", 3);
    at += 2;
  }
  if (at < sizeof r->ctx) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->ctx + at, sizeof r->ctx - at, fmt, ap);
    va_end(ap);
  }
  return mark;
}

static void ctx_pop(reader *r, size_t mark)
{
  r->ctx[mark] = 0;
}

/* A printable, bounded form of a protobuf string for messages. */
static const char *shown(char *buf, size_t cap, const uint8_t *s, size_t n)
{
  size_t k = 0;
  for (size_t i = 0; i < n && k + 4 < cap; i++) buf[k++] = s[i] >= 32 && s[i] < 127 ? (char)s[i] : '?';
  if (k + 4 >= cap && n > k) {
    memcpy(buf + k, "...", 3);
    k += 3;
  }
  buf[k] = 0;
  return buf;
}

/* ---- cursor helpers ------------------------------------------------------ */

/* pb_next with the failure turned into a message.  names[num] (if given)
** labels the field for the message, with its occurrence index when counts
** tracks them: "node 12: truncated ...". */
static int next(reader *r, pb_cursor *c, pb_field *f, const char *const *names, int nnames,
                int *counts)
{
  const char *why = "malformed";
  f->num = 0;
  int k = pb_next(c, f, &why);
  if (k >= 0) {
    if (k > 0 && counts && f->num < (uint32_t)nnames) counts[f->num]++;
    return k;
  }
  if (names && f->num > 0 && f->num < (uint32_t)nnames && names[f->num]) {
    if (counts)
      fail(r, LM_EFORMAT, "%s %d: %s", names[f->num], counts[f->num], why);
    else
      fail(r, LM_EFORMAT, "%s: %s", names[f->num], why);
  } else {
    fail(r, LM_EFORMAT, "%s", why);
  }
  return -1;
}

/* The field has the wire type its declaration implies, or an error. */
static int want(reader *r, const pb_field *f, int wire, const char *what)
{
  if (f->wire == wire) return LM_OK;
  return fail(r, LM_EFORMAT, "%s: wire type %d where %d was expected", what, f->wire, wire);
}

/* A NUL-terminated copy of s in scratch memory (valid until the next call). */
static const char *scratch_str(reader *r, const uint8_t *s, size_t n)
{
  if (n + 1 > r->scratch_cap) {
    size_t cap = n + 1 > 256 ? n + 1 : 256;
    char *p = realloc(r->scratch, cap);
    if (!p) {
      fail(r, LM_ENOMEM, "out of memory");
      return NULL;
    }
    r->scratch = p;
    r->scratch_cap = cap;
  }
  if (n) memcpy(r->scratch, s, n);
  r->scratch[n] = 0;
  return r->scratch;
}

static bool str_is(const uint8_t *s, size_t n, const char *lit)
{
  return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static bool default_domain(const uint8_t *s, size_t n)
{
  return n == 0 || str_is(s, n, "ai.onnx");
}

/* ---- TensorProto ---------------------------------------------------------- */

enum {
  T_DIMS = 1, T_DATA_TYPE = 2, T_SEGMENT = 3, T_FLOAT = 4, T_INT32 = 5, T_STRING = 6,
  T_INT64 = 7, T_NAME = 8, T_RAW = 9, T_DOUBLE = 10, T_UINT64 = 11, T_EXTERNAL = 13,
  T_LOCATION = 14, T_NFIELDS = 15
};

static const char *const tensor_field_names[T_NFIELDS] = {
  [T_DIMS] = "dims", [T_DATA_TYPE] = "data_type", [T_SEGMENT] = "segment",
  [T_FLOAT] = "float_data", [T_INT32] = "int32_data", [T_STRING] = "string_data",
  [T_INT64] = "int64_data", [T_NAME] = "name", [T_RAW] = "raw_data",
  [T_DOUBLE] = "double_data", [T_UINT64] = "uint64_data", [T_EXTERNAL] = "external_data",
  [T_LOCATION] = "data_location"};

typedef struct tensor_info {
  const uint8_t *name;
  size_t name_len;
  lm_dtype dt;
  int ndim;
  int64_t dims[LM_MAX_DIMS];
  const void *data;   /* into the buffer (raw_data, external) or the arena */
  size_t nbytes;
} tensor_info;

/* The repeated field that holds values of dtype dt when raw_data is not used. */
static int typed_field(lm_dtype dt)
{
  switch (dt) {
  case LM_F32: return T_FLOAT;
  case LM_F64: return T_DOUBLE;
  case LM_I64: return T_INT64;
  case LM_U32: return T_UINT64;
  default: return T_INT32;   /* int32, int16, int8, uint16, uint8, bool, float16, bfloat16 */
  }
}

/* Wire form of one element of a typed field, and its packed size (0: varint). */
static int typed_wire(int field, size_t *fixed)
{
  switch (field) {
  case T_FLOAT: *fixed = 4; return PB_I32;
  case T_DOUBLE: *fixed = 8; return PB_I64;
  default: *fixed = 0; return PB_VARINT;
  }
}

/* Number of values in one occurrence of a typed field, or -1. */
static int64_t typed_count(reader *r, const pb_field *f)
{
  size_t fixed;
  int wire = typed_wire((int)f->num, &fixed);
  const char *name = tensor_field_names[f->num];
  if (f->wire == wire) return 1;
  if (f->wire != PB_LEN) {
    fail(r, LM_EFORMAT, "%s: wire type %d", name, f->wire);
    return -1;
  }
  if (fixed) {
    if (f->len % fixed) {
      fail(r, LM_EFORMAT, "%s: packed length %zu is not a multiple of %zu", name, f->len, fixed);
      return -1;
    }
    return (int64_t)(f->len / fixed);
  }
  const char *why = "malformed";
  int64_t n = pb_count_varints(f->data, f->len, &why);
  if (n < 0) fail(r, LM_EFORMAT, "%s: %s", name, why);
  return n;
}

/* Copy one occurrence of a typed field into out (element size es), starting
** at element *at; the low es bytes of each value are its bits (a
** little-endian host: int32_data holds int8/uint16/float16 bit patterns). */
static int typed_fill(reader *r, const pb_field *f, uint8_t *out, size_t es, int64_t numel,
                      int64_t *at)
{
  size_t fixed;
  int wire = typed_wire((int)f->num, &fixed);
  const char *name = tensor_field_names[f->num];
  if (f->wire == wire) {
    if (*at >= numel) return fail(r, LM_EFORMAT, "%s: more values than dims give", name);
    memcpy(out + (size_t)*at * es, &f->v, es);
    (*at)++;
    return LM_OK;
  }
  pb_cursor c = pb_cursor_of(f->data, f->len);
  while (c.p < c.end) {
    uint64_t v;
    if (fixed) {
      v = fixed == 4 ? pb_le32(c.p) : pb_le64(c.p);
      c.p += fixed;
    } else {
      const char *why = "malformed";
      if (!pb_read_varint(&c, &v, &why)) return fail(r, LM_EFORMAT, "%s: %s", name, why);
    }
    if (*at >= numel) return fail(r, LM_EFORMAT, "%s: more values than dims give", name);
    memcpy(out + (size_t)*at * es, &v, es);
    (*at)++;
  }
  return LM_OK;
}

static void ext_files_free(ext_file *e)
{
  while (e) {
    ext_file *next_e = e->next;
    free(e->location);
    free(e);
    e = next_e;
  }
}

/* Map (once) the external-data file `location`, which must stay inside the
** model's folder. */
static int ext_map(reader *r, const uint8_t *loc, size_t loc_len, const uint8_t **data,
                   size_t *len)
{
  char shown_loc[96];
  shown(shown_loc, sizeof shown_loc, loc, loc_len);
  if (!r->base_dir)
    return fail(r, LM_EUNSUPPORTED,
                "external_data '%s': needs the model's folder (load the model from its file)",
                shown_loc);
  if (loc_len == 0 || memchr(loc, 0, loc_len))
    return fail(r, LM_EFORMAT, "external_data: location is empty or holds a NUL byte");
  for (ext_file *e = r->ext; e; e = e->next)
    if (strlen(e->location) == loc_len && memcmp(e->location, loc, loc_len) == 0) {
      *data = e->data;
      *len = e->len;
      return LM_OK;
    }
  /* Refuse absolute paths and any ".." component before touching the file
   * system, then compare real paths (a symlink may still point outside). */
  if (loc[0] == '/')
    return fail(r, LM_EINVAL, "external_data '%s': absolute location (must be relative to the model's folder)",
                shown_loc);
  for (size_t i = 0; i < loc_len;) {
    size_t j = i;
    while (j < loc_len && loc[j] != '/' && loc[j] != '\\') j++;
    if (j - i == 2 && loc[i] == '.' && loc[i + 1] == '.')
      return fail(r, LM_EINVAL, "external_data '%s': location leaves the model's folder", shown_loc);
    i = j + 1;
  }
  size_t blen = strlen(r->base_dir);
  char *path = malloc(blen + loc_len + 2);
  if (!path) return fail(r, LM_ENOMEM, "out of memory");
  memcpy(path, r->base_dir, blen);
  path[blen] = '/';
  memcpy(path + blen + 1, loc, loc_len);
  path[blen + 1 + loc_len] = 0;
  char *real_base = realpath(r->base_dir, NULL);
  char *real_file = realpath(path, NULL);
  int st = LM_OK;
  if (!real_base || !real_file) {
    st = fail(r, LM_ENOENT, "external_data '%s': %s", shown_loc, strerror(errno));
  } else {
    size_t rb = strlen(real_base);
    bool inside = strncmp(real_file, real_base, rb) == 0 &&
                  (real_file[rb] == '/' || (rb == 1 && real_base[0] == '/'));
    if (!inside)
      st = fail(r, LM_EINVAL, "external_data '%s': resolves outside the model's folder", shown_loc);
  }
  free(real_base);
  int fd = -1;
  struct stat sb;
  if (st == LM_OK) {
    fd = open(real_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0)
      st = fail(r, LM_EIO, "external_data '%s': %s", shown_loc, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
      st = fail(r, LM_EINVAL, "external_data '%s': not a regular file", shown_loc);
  }
  free(real_file);
  free(path);
  ext_file *e = NULL;
  mapped_file *m = NULL;
  if (st == LM_OK) {
    e = calloc(1, sizeof *e);
    m = calloc(1, sizeof *m);
    if (!e || !m || !(e->location = strndup((const char *)loc, loc_len)))
      st = fail(r, LM_ENOMEM, "out of memory");
  }
  if (st == LM_OK && sb.st_size > 0) {
    void *a = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (a == MAP_FAILED) {
      st = fail(r, LM_EIO, "external_data '%s': mmap: %s", shown_loc, strerror(errno));
    } else {
      m->addr = a;
      m->len = (size_t)sb.st_size;
    }
  }
  if (fd >= 0) close(fd);
  if (st == LM_OK && lm_graph_keep(r->g, mapped_file_release, m) != LM_OK) {
    mapped_file_release(m);
    m = NULL;
    st = fail(r, LM_ENOMEM, "out of memory");
  } else if (st != LM_OK) {
    if (m) mapped_file_release(m);
  }
  if (st != LM_OK) {
    if (e) free(e->location);
    free(e);
    return st;
  }
  e->data = m->addr;
  e->len = m->len;
  e->next = r->ext;
  r->ext = e;
  *data = e->data;
  *len = e->len;
  return LM_OK;
}

/* external_data entries: location, offset, length (checksum ignored). */
static int read_external(reader *r, const pb_field *f, const uint8_t **loc, size_t *loc_len,
                         int64_t *offset, int64_t *length)
{
  pb_cursor c = pb_cursor_of(f->data, f->len);
  pb_field e;
  const uint8_t *key = NULL, *val = NULL;
  size_t key_len = 0, val_len = 0;
  int k;
  while ((k = next(r, &c, &e, NULL, 0, NULL)) > 0) {
    if (e.num == 1 || e.num == 2) {
      if (want(r, &e, PB_LEN, "external_data entry") < 0) return LM_EFORMAT;
      if (e.num == 1) key = e.data, key_len = e.len;
      else val = e.data, val_len = e.len;
    }
  }
  if (k < 0) return LM_EFORMAT;
  if (!key) return fail(r, LM_EFORMAT, "external_data: entry without a key");
  if (str_is(key, key_len, "location")) {
    *loc = val ? val : (const uint8_t *)"";
    *loc_len = val_len;
  } else if (str_is(key, key_len, "offset") || str_is(key, key_len, "length")) {
    /* Decimal digits only: the value becomes a file position. */
    int64_t x = 0;
    if (val_len == 0 || val_len > 18)
      return fail(r, LM_EFORMAT, "external_data: bad %s", key_len == 6 ? "offset" : "length");
    for (size_t i = 0; i < val_len; i++) {
      if (val[i] < '0' || val[i] > '9')
        return fail(r, LM_EFORMAT, "external_data: bad %s", key_len == 6 ? "offset" : "length");
      x = x * 10 + (val[i] - '0');
    }
    if (str_is(key, key_len, "offset")) *offset = x;
    else *length = x;
  }
  return LM_OK;
}

static const char *onnx_type_name(uint64_t t)
{
  static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16",
                                      "INT32", "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE",
                                      "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
  return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* Parse a TensorProto; the data ends in t->data (zero-copy for raw_data
** and external data, arena memory for typed fields). */
static int read_tensor(reader *r, const uint8_t *buf, size_t len, tensor_info *t)
{
  memset(t, 0, sizeof *t);
  uint64_t data_type = 0;
  bool have_type = false, have_raw = false;
  const uint8_t *raw = NULL;
  size_t raw_len = 0;
  int64_t counts[T_NFIELDS] = {0};
  const uint8_t *loc = NULL;
  size_t loc_len = 0;
  int64_t ext_offset = 0, ext_length = -1;
  uint64_t location = 0;
  int ndim = 0;
  int64_t dims[LM_MAX_DIMS];

  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  int k;
  while ((k = next(r, &c, &f, tensor_field_names, T_NFIELDS, NULL)) > 0) {
    switch (f.num) {
    case T_DIMS: {
      /* Packed (the usual form) or one varint per occurrence. */
      pb_cursor d = pb_cursor_of(f.data, f.len);
      uint64_t v = f.v;
      if (f.wire != PB_LEN && f.wire != PB_VARINT) return fail(r, LM_EFORMAT, "dims: wire type %d", f.wire);
      while (f.wire == PB_VARINT || d.p < d.end) {
        const char *why = "malformed";
        if (f.wire == PB_LEN && !pb_read_varint(&d, &v, &why)) return fail(r, LM_EFORMAT, "dims: %s", why);
        if (ndim >= LM_MAX_DIMS) return fail(r, LM_EUNSUPPORTED, "dims: more than %d", LM_MAX_DIMS);
        if ((int64_t)v < 0) return fail(r, LM_EFORMAT, "dims: negative extent %lld", (long long)(int64_t)v);
        dims[ndim++] = (int64_t)v;
        if (f.wire == PB_VARINT) break;
      }
      break;
    }
    case T_DATA_TYPE:
      if (want(r, &f, PB_VARINT, "data_type") < 0) return LM_EFORMAT;
      data_type = f.v;
      have_type = true;
      break;
    case T_SEGMENT:
      return fail(r, LM_EUNSUPPORTED, "segment: segmented tensors are not supported");
    case T_FLOAT: case T_INT32: case T_INT64: case T_DOUBLE: case T_UINT64: {
      int64_t n = typed_count(r, &f);
      if (n < 0) return LM_EFORMAT;
      counts[f.num] += n;
      break;
    }
    case T_STRING:
      counts[T_STRING]++;
      break;
    case T_NAME:
      if (want(r, &f, PB_LEN, "name") < 0) return LM_EFORMAT;
      t->name = f.data;
      t->name_len = f.len;
      break;
    case T_RAW:
      if (want(r, &f, PB_LEN, "raw_data") < 0) return LM_EFORMAT;
      raw = f.data;
      raw_len = f.len;
      have_raw = true;
      break;
    case T_EXTERNAL:
      if (want(r, &f, PB_LEN, "external_data") < 0) return LM_EFORMAT;
      if (read_external(r, &f, &loc, &loc_len, &ext_offset, &ext_length) < 0) return LM_EFORMAT;
      break;
    case T_LOCATION:
      if (want(r, &f, PB_VARINT, "data_location") < 0) return LM_EFORMAT;
      location = f.v;
      break;
    default:
      break;   /* doc_string, metadata: not needed */
    }
  }
  if (k < 0) return LM_EFORMAT;

  if (!have_type) return fail(r, LM_EFORMAT, "data_type: missing");
  if (data_type > INT_MAX || lm_dtype_from_onnx((int)data_type, &t->dt) != LM_OK)
    return fail(r, LM_EDTYPE, "data_type %llu (%s) is not supported", (unsigned long long)data_type,
                onnx_type_name(data_type));
  size_t es = lm_dtype_size(t->dt);
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++)
    if (__builtin_mul_overflow(numel, dims[i], &numel))
      return fail(r, LM_EFORMAT, "dims: the element count overflows");
  size_t nbytes;
  if (__builtin_mul_overflow((size_t)numel, es, &nbytes) || nbytes > (size_t)PTRDIFF_MAX)
    return fail(r, LM_EFORMAT, "dims: the byte size overflows");
  t->ndim = ndim;
  memcpy(t->dims, dims, sizeof(int64_t) * (size_t)ndim);
  t->nbytes = nbytes;

  if (location > 1) return fail(r, LM_EFORMAT, "data_location %llu is not DEFAULT or EXTERNAL",
                                (unsigned long long)location);
  if (location == 1) {
    if (!loc) return fail(r, LM_EFORMAT, "external_data: no location");
    const uint8_t *fdata = NULL;
    size_t flen = 0;
    int st = ext_map(r, loc, loc_len, &fdata, &flen);
    if (st < 0) return st;
    char shown_loc[96];
    shown(shown_loc, sizeof shown_loc, loc, loc_len);
    if (ext_length >= 0 && (uint64_t)ext_length != nbytes)
      return fail(r, LM_EFORMAT, "external_data '%s': length %lld but dims and data_type give %zu bytes",
                  shown_loc, (long long)ext_length, nbytes);
    if ((uint64_t)ext_offset > flen || nbytes > flen - (size_t)ext_offset)
      return fail(r, LM_EFORMAT, "external_data '%s': offset %lld + %zu bytes runs past the file (%zu bytes)",
                  shown_loc, (long long)ext_offset, nbytes, flen);
    t->data = nbytes ? fdata + ext_offset : NULL;
    return LM_OK;
  }
  if (counts[T_STRING]) return fail(r, LM_EDTYPE, "string_data: string tensors are not supported");
  int field = typed_field(t->dt);
  for (int i = 0; i < T_NFIELDS; i++)
    if (counts[i] && i != field)
      return fail(r, LM_EFORMAT, "%s given for data_type %s", tensor_field_names[i],
                  onnx_type_name(data_type));
  if (have_raw) {
    if (counts[field])
      return fail(r, LM_EFORMAT, "both raw_data and %s are given", tensor_field_names[field]);
    if (raw_len != nbytes)
      return fail(r, LM_EFORMAT, "raw_data has %zu bytes; dims and data_type give %zu", raw_len, nbytes);
    t->data = nbytes ? raw : NULL;
    return LM_OK;
  }
  if (counts[field] != numel)
    return fail(r, LM_EFORMAT, "%s has %lld values; dims give %lld", tensor_field_names[field],
                (long long)counts[field], (long long)numel);
  if (numel == 0) return LM_OK;
  uint8_t *out = lm_graph_alloc(r->g, nbytes);
  if (!out) return fail(r, LM_ENOMEM, "out of memory (%zu bytes)", nbytes);
  int64_t at = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0)
    if ((int)f.num == field && typed_fill(r, &f, out, es, numel, &at) < 0) return LM_EFORMAT;
  t->data = out;
  return LM_OK;
}

/* A tensor as a constant value of the graph: named (initializer) or
** anonymous (attribute). */
static int tensor_const(reader *r, const tensor_info *t, int v)
{
  return lm_graph_set_const(r->g, v, t->dt, t->ndim, t->dims, t->data, false);
}

/* ---- ValueInfoProto ------------------------------------------------------- */

typedef struct type_info {
  bool dt_known;
  lm_dtype dt;
  int ndim;                      /* -1: unknown rank */
  int64_t shape[LM_MAX_DIMS];
} type_info;

/* TensorShapeProto: dim_value, or -1 for dim_param and unset dims. */
static int read_shape(reader *r, const pb_field *sf, type_info *ti)
{
  ti->ndim = 0;
  pb_cursor c = pb_cursor_of(sf->data, sf->len);
  pb_field f;
  int k;
  while ((k = next(r, &c, &f, NULL, 0, NULL)) > 0) {
    if (f.num != 1) continue;
    if (want(r, &f, PB_LEN, "shape.dim") < 0) return LM_EFORMAT;
    if (ti->ndim >= LM_MAX_DIMS) return fail(r, LM_EUNSUPPORTED, "shape: more than %d dims", LM_MAX_DIMS);
    int64_t extent = -1;
    pb_cursor d = pb_cursor_of(f.data, f.len);
    pb_field df;
    while ((k = next(r, &d, &df, NULL, 0, NULL)) > 0) {
      if (df.num == 1) {
        if (want(r, &df, PB_VARINT, "dim_value") < 0) return LM_EFORMAT;
        if ((int64_t)df.v < 0)
          return fail(r, LM_EFORMAT, "dim_value %lld is negative", (long long)(int64_t)df.v);
        extent = (int64_t)df.v;
      } else if (df.num == 2) {
        extent = -1;   /* dim_param: a named dynamic extent */
      }
    }
    if (k < 0) return LM_EFORMAT;
    ti->shape[ti->ndim++] = extent;
  }
  return k < 0 ? LM_EFORMAT : LM_OK;
}

/* ValueInfoProto: its name and, for tensor types, dtype and shape.  Other
** types (sequences, maps) and element types lumen has no dtype for stay
** unknown: the plan or the passes refuse them where they matter. */
static int read_value_info(reader *r, const uint8_t *buf, size_t len, const uint8_t **name,
                           size_t *name_len, type_info *ti)
{
  memset(ti, 0, sizeof *ti);
  ti->ndim = -1;
  *name = NULL;
  *name_len = 0;
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  int k;
  while ((k = next(r, &c, &f, NULL, 0, NULL)) > 0) {
    if (f.num == 1) {
      if (want(r, &f, PB_LEN, "name") < 0) return LM_EFORMAT;
      *name = f.data;
      *name_len = f.len;
    } else if (f.num == 2) {
      if (want(r, &f, PB_LEN, "type") < 0) return LM_EFORMAT;
      pb_cursor tc = pb_cursor_of(f.data, f.len);
      pb_field tf;
      while ((k = next(r, &tc, &tf, NULL, 0, NULL)) > 0) {
        if (tf.num != 1) continue;   /* tensor_type only */
        if (want(r, &tf, PB_LEN, "type.tensor_type") < 0) return LM_EFORMAT;
        pb_cursor ec = pb_cursor_of(tf.data, tf.len);
        pb_field ef;
        while ((k = next(r, &ec, &ef, NULL, 0, NULL)) > 0) {
          if (ef.num == 1) {
            if (want(r, &ef, PB_VARINT, "elem_type") < 0) return LM_EFORMAT;
            ti->dt_known = ef.v <= INT_MAX && lm_dtype_from_onnx((int)ef.v, &ti->dt) == LM_OK;
          } else if (ef.num == 2) {
            if (want(r, &ef, PB_LEN, "shape") < 0) return LM_EFORMAT;
            if (read_shape(r, &ef, ti) < 0) return LM_EFORMAT;
          }
        }
        if (k < 0) return LM_EFORMAT;
      }
      if (k < 0) return LM_EFORMAT;
    }
  }
  return k < 0 ? LM_EFORMAT : LM_OK;
}

static void apply_type(lm_graph *g, int v, const type_info *ti)
{
  if (ti->dt_known) {
    lm_graph_set_type(g, v, ti->dt, ti->ndim, ti->shape);
  } else {
    g->values[v].ndim = ti->ndim;
    for (int i = 0; i < ti->ndim; i++) g->values[v].shape[i] = ti->shape[i];
  }
}

/* ---- AttributeProto ------------------------------------------------------- */

enum {
  A_FLOAT = 1, A_INT = 2, A_STRING = 3, A_TENSOR = 4, A_GRAPH = 5, A_FLOATS = 6, A_INTS = 7,
  A_STRINGS = 8, A_TENSORS = 9, A_GRAPHS = 10, A_SPARSE_TENSOR = 11, A_SPARSE_TENSORS = 12,
  A_TYPE_PROTO = 13, A_TYPE_PROTOS = 14
};

static int read_attribute(reader *r, int node, int index, const uint8_t *buf, size_t len)
{
  const uint8_t *name = NULL, *s = NULL, *t = NULL;
  size_t name_len = 0, s_len = 0, t_len = 0;
  uint64_t type = 0, i = 0;
  uint32_t fbits = 0;
  bool has[24] = {false};
  int64_t nfloats = 0, nints = 0, nstrings = 0;
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  int k;
  /* The name first, so that every later message can say which attribute. */
  while ((k = next(r, &c, &f, NULL, 0, NULL)) > 0)
    if (f.num == 1 && f.wire == PB_LEN) name = f.data, name_len = f.len;
  if (k < 0) return LM_EFORMAT;
  if (!name || name_len == 0) return fail(r, LM_EFORMAT, "attribute %d: no name", index);
  char shown_name[64];
  size_t mark = ctx_push(r, "attribute '%s'", shown(shown_name, sizeof shown_name, name, name_len));
  int st = LM_OK;
  c = pb_cursor_of(buf, len);
  while ((k = next(r, &c, &f, NULL, 0, NULL)) > 0) {
    if (f.num < sizeof has) has[f.num] = true;
    switch (f.num) {
    case 20: st = want(r, &f, PB_VARINT, "type"); type = f.v; break;
    case 2: st = want(r, &f, PB_I32, "f"); fbits = (uint32_t)f.v; break;
    case 3: st = want(r, &f, PB_VARINT, "i"); i = f.v; break;
    case 4: st = want(r, &f, PB_LEN, "s"); s = f.data, s_len = f.len; break;
    case 5: st = want(r, &f, PB_LEN, "t"); t = f.data, t_len = f.len; break;
    case 7:
      if (f.wire == PB_I32) nfloats++;
      else if (f.wire == PB_LEN && f.len % 4 == 0) nfloats += (int64_t)(f.len / 4);
      else st = fail(r, LM_EFORMAT, "floats: wire type %d, length %zu", f.wire, f.len);
      break;
    case 8:
      if (f.wire == PB_VARINT) {
        nints++;
      } else if (f.wire == PB_LEN) {
        const char *why = "malformed";
        int64_t n = pb_count_varints(f.data, f.len, &why);
        if (n < 0) st = fail(r, LM_EFORMAT, "ints: %s", why);
        nints += n;
      } else {
        st = fail(r, LM_EFORMAT, "ints: wire type %d", f.wire);
      }
      break;
    case 9: st = want(r, &f, PB_LEN, "strings"); nstrings++; break;
    case 21: st = fail(r, LM_EUNSUPPORTED, "ref_attr_name outside a function"); break;
    default: break;
    }
    if (st < 0) goto out;
  }
  if (k < 0) {
    st = LM_EFORMAT;
    goto out;
  }
  if (type == 0) {
    /* Old writers leave `type` out: the field that is set says it. */
    type = has[2] ? A_FLOAT : has[3] ? A_INT : has[4] ? A_STRING : has[5] ? A_TENSOR
         : has[6] ? A_GRAPH : has[7] ? A_FLOATS : has[8] ? A_INTS : has[9] ? A_STRINGS
         : has[10] ? A_TENSORS : has[11] ? A_GRAPHS : has[22] ? A_SPARSE_TENSOR : 0;
    if (type == 0) {
      st = fail(r, LM_EFORMAT, "no type and no value");
      goto out;
    }
  }
  if (nfloats > INT_MAX || nints > INT_MAX || nstrings > INT_MAX) {
    st = fail(r, LM_EFORMAT, "too many values");
    goto out;
  }
  lm_graph *g = r->g;
  lm_gattr *a;
  const char *aname = scratch_str(r, name, name_len);
  if (!aname) {
    st = LM_ENOMEM;
    goto out;
  }
  switch (type) {
  case A_FLOAT: {
    float x;
    memcpy(&x, &fbits, 4);
    st = lm_graph_attr_set_float(g, node, aname, x);
    break;
  }
  case A_INT:
    st = lm_graph_attr_set_int(g, node, aname, (int64_t)i);
    break;
  case A_STRING:
    if (!(a = lm_graph_add_attr(g, node, aname, LM_ATTR_STRING)) ||
        !(a->s = lm_graph_strdup(g, (const char *)(s ? s : (const uint8_t *)""), s_len)))
      st = LM_ENOMEM;
    break;
  case A_TENSOR: {
    if (!t) {
      st = fail(r, LM_EFORMAT, "type TENSOR but no t");
      break;
    }
    tensor_info ti;
    size_t m2 = ctx_push(r, "t");
    st = read_tensor(r, t, t_len, &ti);
    ctx_pop(r, m2);
    if (st < 0) break;
    if (!(a = lm_graph_add_attr(g, node, aname, LM_ATTR_TENSOR))) {
      st = LM_ENOMEM;
      break;
    }
    int v = lm_graph_value(g, "");
    if (v < 0 || tensor_const(r, &ti, v) < 0) {
      st = LM_ENOMEM;
      break;
    }
    a->tensor = v;
    break;
  }
  case A_FLOATS: case A_INTS: case A_STRINGS: {
    lm_attr_kind kind = type == A_FLOATS ? LM_ATTR_FLOATS : type == A_INTS ? LM_ATTR_INTS
                                                                           : LM_ATTR_STRINGS;
    int64_t n = type == A_FLOATS ? nfloats : type == A_INTS ? nints : nstrings;
    size_t es = type == A_FLOATS ? sizeof(double) : type == A_INTS ? sizeof(int64_t)
                                                                   : sizeof(char *);
    void *arr = lm_graph_alloc(g, es * (size_t)(n > 0 ? n : 1));
    if (!arr || !(a = lm_graph_add_attr(g, node, aname, kind))) {
      st = LM_ENOMEM;
      break;
    }
    a->n = (int)n;
    double *fl = arr;
    int64_t *in = arr;
    const char **sv = arr;
    int64_t at = 0;
    c = pb_cursor_of(buf, len);
    while (pb_next(&c, &f, &(const char *){NULL}) > 0 && st == LM_OK) {
      if (type == A_FLOATS && f.num == 7) {
        if (f.wire == PB_I32) {
          uint32_t b = (uint32_t)f.v;
          float x;
          memcpy(&x, &b, 4);
          fl[at++] = x;
        } else {
          for (size_t o = 0; o + 4 <= f.len; o += 4) {
            uint32_t b = pb_le32(f.data + o);
            float x;
            memcpy(&x, &b, 4);
            fl[at++] = x;
          }
        }
      } else if (type == A_INTS && f.num == 8) {
        if (f.wire == PB_VARINT) {
          in[at++] = (int64_t)f.v;
        } else {
          pb_cursor d = pb_cursor_of(f.data, f.len);
          const char *why = "malformed";
          uint64_t v;
          while (d.p < d.end) {
            if (!pb_read_varint(&d, &v, &why)) {
              st = fail(r, LM_EFORMAT, "ints: %s", why);
              break;
            }
            in[at++] = (int64_t)v;
          }
        }
      } else if (type == A_STRINGS && f.num == 9) {
        if (!(sv[at++] = lm_graph_strdup(g, (const char *)f.data, f.len))) st = LM_ENOMEM;
      }
    }
    if (type == A_FLOATS) a->floats = fl;
    else if (type == A_INTS) a->ints = in;
    else a->strings = (const char *const *)sv;
    break;
  }
  case A_GRAPH: case A_GRAPHS:
    st = fail(r, LM_EUNSUPPORTED, "graph attributes (the subgraphs of If, Loop, Scan, ...) are not supported");
    break;
  case A_TENSORS: case A_SPARSE_TENSOR: case A_SPARSE_TENSORS: case A_TYPE_PROTO:
  case A_TYPE_PROTOS:
    st = fail(r, LM_EUNSUPPORTED, "attribute type %llu is not supported", (unsigned long long)type);
    break;
  default:
    st = fail(r, LM_EFORMAT, "unknown attribute type %llu", (unsigned long long)type);
    break;
  }
  if (st == LM_ENOMEM && !strstr(g->err, "memory")) st = fail(r, LM_ENOMEM, "out of memory");
out:
  ctx_pop(r, mark);
  return st;
}

/* ---- NodeProto ------------------------------------------------------------ */

static bool is_function(const reader *r, const uint8_t *dom, size_t dom_len, const uint8_t *op,
                        size_t op_len)
{
  for (int i = 0; i < r->nfunctions; i++)
    if (r->fn_name_len[i] == op_len && memcmp(r->fn_name[i], op, op_len) == 0 &&
        (r->fn_domain_len[i] == dom_len && memcmp(r->fn_domain[i], dom, dom_len) == 0))
      return true;
  return false;
}

/* The value a node output defines: fresh, or an error if something else
** already defines that name (ONNX graphs are in SSA form). */
static int output_value(reader *r, const uint8_t *name, size_t n)
{
  lm_graph *g = r->g;
  if (n == 0) return lm_graph_value(g, "");   /* optional output left out */
  const char *nm = scratch_str(r, name, n);
  if (!nm) return -1;
  int v = lm_graph_value(g, nm);
  if (v < 0) return -1;
  const lm_gvalue *val = &g->values[v];
  if (val->producer >= 0 || val->data || val->is_input) {
    char shown_name[64];
    fail(r, LM_EFORMAT, "output '%s' is already defined%s", shown(shown_name, sizeof shown_name, name, n),
         val->data ? " (an initializer)" : val->is_input ? " (a graph input)" : " (by another node)");
    return -2;
  }
  return v;
}

static int read_node(reader *r, int index, const uint8_t *buf, size_t len)
{
  const uint8_t *op = NULL, *name = NULL, *dom = NULL;
  size_t op_len = 0, name_len = 0, dom_len = 0;
  int nin = 0, nout = 0, nattr = 0;
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  int k;
  size_t mark = ctx_push(r, "node %d", index);
  int st = LM_OK;
  int *in = NULL, *out = NULL;
  while ((k = next(r, &c, &f, NULL, 0, NULL)) > 0) {
    if (f.num >= 1 && f.num <= 7 && f.num != 6 && want(r, &f, PB_LEN, "field") < 0) {
      st = LM_EFORMAT;
      goto done;
    }
    switch (f.num) {
    case 1: nin++; break;
    case 2: nout++; break;
    case 3: name = f.data, name_len = f.len; break;
    case 4: op = f.data, op_len = f.len; break;
    case 5: nattr++; break;
    case 7: dom = f.data, dom_len = f.len; break;
    default: break;
    }
  }
  if (k < 0) {
    st = LM_EFORMAT;
    goto done;
  }
  if (!op || op_len == 0) {
    st = fail(r, LM_EFORMAT, "no op_type");
    goto done;
  }
  char shown_op[64], shown_name[64];
  ctx_pop(r, mark);
  ctx_push(r, "node %d (%s '%s')", index, shown(shown_op, sizeof shown_op, op, op_len),
           shown(shown_name, sizeof shown_name, name ? name : (const uint8_t *)"", name_len));
  if (is_function(r, dom ? dom : (const uint8_t *)"", dom_len, op, op_len)) {
    st = fail(r, LM_EUNSUPPORTED,
              "calls the model-local function '%s' (ModelProto.functions), which lumen does "
              "not inline: export with the functions inlined", shown_op);
    goto done;
  }
  lm_graph *g = r->g;
  in = malloc(sizeof(int) * (size_t)(nin ? nin : 1));
  out = malloc(sizeof(int) * (size_t)(nout ? nout : 1));
  if (!in || !out) {
    st = fail(r, LM_ENOMEM, "out of memory");
    goto done;
  }
  int ii = 0, oi = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num == 1) {
      /* An empty name is an optional input left out.  An undefined name
       * becomes a value without producer: the passes report it. */
      if (f.len == 0) {
        in[ii++] = -1;
        continue;
      }
      const char *nm = scratch_str(r, f.data, f.len);
      int v = nm ? lm_graph_value(g, nm) : -1;
      if (v < 0) {
        st = fail(r, LM_ENOMEM, "out of memory");
        goto done;
      }
      in[ii++] = v;
    } else if (f.num == 2) {
      int v = output_value(r, f.data, f.len);
      if (v < 0) {
        st = v == -2 ? LM_EFORMAT : fail(r, LM_ENOMEM, "out of memory");
        goto done;
      }
      /* The same name twice among this node's outputs. */
      for (int j = 0; j < oi; j++)
        if (out[j] == v && f.len) {
          st = fail(r, LM_EFORMAT, "output %d repeats an earlier output", oi);
          goto done;
        }
      out[oi++] = v;
    }
  }
  const char *opname = lm_graph_strdup(g, (const char *)op, op_len);
  const char *nodename = lm_graph_strdup(g, (const char *)(name ? name : (const uint8_t *)""), name_len);
  int idx = opname && nodename ? lm_graph_add_node(g, opname, nodename, nin, in, nout, out) : -1;
  if (idx < 0) {
    st = fail(r, LM_ENOMEM, "out of memory");
    goto done;
  }
  if (!default_domain(dom, dom_len)) {
    const char *d = lm_graph_strdup(g, (const char *)dom, dom_len);
    if (!d) {
      st = fail(r, LM_ENOMEM, "out of memory");
      goto done;
    }
    g->nodes[idx].domain = d;
  }
  int ai = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0)
    if (f.num == 5 && (st = read_attribute(r, idx, ai++, f.data, f.len)) < 0) goto done;
done:
  free(in);
  free(out);
  ctx_pop(r, mark);
  return st;
}

/* ---- GraphProto ----------------------------------------------------------- */

enum { G_NODE = 1, G_INITIALIZER = 5, G_INPUT = 11, G_OUTPUT = 12, G_VALUE_INFO = 13,
       G_SPARSE_INITIALIZER = 15, G_NFIELDS = 16 };

static const char *const graph_field_names[G_NFIELDS] = {
  [G_NODE] = "node", [2] = "name", [G_INITIALIZER] = "initializer", [10] = "doc_string",
  [G_INPUT] = "input", [G_OUTPUT] = "output", [G_VALUE_INFO] = "value_info",
  [14] = "quantization_annotation", [G_SPARSE_INITIALIZER] = "sparse_initializer"};

/* GraphProto, in passes: wire check, initializers, inputs, nodes, outputs
** and value_info, so that the order of the fields in the file does not
** matter. */
static int read_graph(reader *r, const uint8_t *buf, size_t len)
{
  lm_graph *g = r->g;
  size_t mark = strlen(r->ctx);   /* graph fields are named at the top level */
  int counts[G_NFIELDS];
  pb_cursor c;
  pb_field f;
  int k, st = LM_OK;
  char shown_name[64];

  /* Pass 1: the wire structure (so later passes cannot fail on it) and the
   * wire types of the repeated messages. */
  memset(counts, 0, sizeof counts);
  c = pb_cursor_of(buf, len);
  while ((k = next(r, &c, &f, graph_field_names, G_NFIELDS, counts)) > 0) {
    if (f.num == G_SPARSE_INITIALIZER) {
      st = fail(r, LM_EUNSUPPORTED, "sparse_initializer: sparse tensors are not supported");
      goto out;
    }
    if ((f.num == G_NODE || f.num == G_INITIALIZER || f.num == G_INPUT || f.num == G_OUTPUT ||
         f.num == G_VALUE_INFO) && want(r, &f, PB_LEN, graph_field_names[f.num]) < 0) {
      st = LM_EFORMAT;
      goto out;
    }
  }
  if (k < 0) {
    st = LM_EFORMAT;
    goto out;
  }

  /* Pass 2: initializers become named constants. */
  int n = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num != G_INITIALIZER) continue;
    tensor_info t;
    /* The name first, for the messages of read_tensor. */
    const uint8_t *tname = NULL;
    size_t tname_len = 0;
    pb_cursor tc = pb_cursor_of(f.data, f.len);
    pb_field tf;
    while (pb_next(&tc, &tf, &(const char *){NULL}) > 0)
      if (tf.num == T_NAME && tf.wire == PB_LEN) tname = tf.data, tname_len = tf.len;
    size_t m2 = tname_len ? ctx_push(r, "initializer '%s'", shown(shown_name, sizeof shown_name, tname, tname_len))
                          : ctx_push(r, "initializer %d", n);
    n++;
    st = read_tensor(r, f.data, f.len, &t);
    if (st == LM_OK && t.name_len == 0) st = fail(r, LM_EFORMAT, "no name");
    if (st == LM_OK) {
      const char *nm = scratch_str(r, t.name, t.name_len);
      int v = nm ? lm_graph_value(g, nm) : -1;
      if (v < 0) st = fail(r, LM_ENOMEM, "out of memory");
      else if (g->values[v].data) st = fail(r, LM_EFORMAT, "defined twice");
      else st = tensor_const(r, &t, v);
    }
    ctx_pop(r, m2);
    if (st < 0) goto out;
  }

  /* Pass 3: inputs; those that are initializers are constants. */
  n = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num != G_INPUT) continue;
    const uint8_t *name;
    size_t name_len;
    type_info ti;
    size_t m2 = ctx_push(r, "input %d", n++);
    st = read_value_info(r, f.data, f.len, &name, &name_len, &ti);
    if (st == LM_OK && name_len == 0) st = fail(r, LM_EFORMAT, "no name");
    ctx_pop(r, m2);
    if (st < 0) goto out;
    const char *nm = scratch_str(r, name, name_len);
    int v = nm ? lm_graph_value(g, nm) : -1;
    if (v < 0) {
      st = fail(r, LM_ENOMEM, "out of memory");
      goto out;
    }
    if (g->values[v].data) continue;
    if (g->values[v].is_input) {
      st = fail(r, LM_EFORMAT, "input '%s' is declared twice",
                shown(shown_name, sizeof shown_name, name, name_len));
      goto out;
    }
    apply_type(g, v, &ti);
    if ((st = lm_graph_add_input(g, v)) < 0) goto out;
  }

  /* Pass 4: nodes. */
  n = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0)
    if (f.num == G_NODE && (st = read_node(r, n++, f.data, f.len)) < 0) goto out;

  /* Pass 5: outputs and the declared types of intermediate values. */
  n = 0;
  int nv = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num != G_OUTPUT && f.num != G_VALUE_INFO) continue;
    const uint8_t *name;
    size_t name_len;
    type_info ti;
    size_t m2 = f.num == G_OUTPUT ? ctx_push(r, "output %d", n++) : ctx_push(r, "value_info %d", nv++);
    st = read_value_info(r, f.data, f.len, &name, &name_len, &ti);
    if (st == LM_OK && name_len == 0) st = fail(r, LM_EFORMAT, "no name");
    ctx_pop(r, m2);
    if (st < 0) goto out;
    const char *nm = scratch_str(r, name, name_len);
    if (!nm) {
      st = LM_ENOMEM;
      goto out;
    }
    /* value_info for a name nothing uses says nothing we need. */
    int v = f.num == G_OUTPUT ? lm_graph_value(g, nm) : lm_graph_find_value(g, nm);
    if (v < 0) {
      if (f.num == G_VALUE_INFO) continue;
      st = fail(r, LM_ENOMEM, "out of memory");
      goto out;
    }
    if (!g->values[v].data && !g->values[v].is_input) apply_type(g, v, &ti);
    if (f.num == G_OUTPUT && (st = lm_graph_add_output(g, v)) < 0) goto out;
  }
out:
  ctx_pop(r, mark);
  return st;
}

/* ---- ModelProto ----------------------------------------------------------- */

static const char *const model_field_names[26] = {
  [1] = "ir_version", [2] = "producer_name", [3] = "producer_version", [4] = "domain",
  [5] = "model_version", [6] = "doc_string", [7] = "graph", [8] = "opset_import",
  [14] = "metadata_props", [20] = "training_info", [25] = "functions"};

/* FunctionProto: name 1, domain 10. */
static int read_function_id(reader *r, const pb_field *f, int i)
{
  pb_cursor c = pb_cursor_of(f->data, f->len);
  pb_field ff;
  int k;
  r->fn_name[i] = r->fn_domain[i] = (const uint8_t *)"";
  r->fn_name_len[i] = r->fn_domain_len[i] = 0;
  while ((k = next(r, &c, &ff, NULL, 0, NULL)) > 0) {
    if ((ff.num == 1 || ff.num == 10) && want(r, &ff, PB_LEN, ff.num == 1 ? "name" : "domain") < 0)
      return LM_EFORMAT;
    if (ff.num == 1) r->fn_name[i] = ff.data, r->fn_name_len[i] = ff.len;
    else if (ff.num == 10) r->fn_domain[i] = ff.data, r->fn_domain_len[i] = ff.len;
  }
  return k < 0 ? LM_EFORMAT : LM_OK;
}

static int read_model(reader *r, const uint8_t *buf, size_t len)
{
  lm_graph *g = r->g;
  const uint8_t *graph = NULL, *pname = NULL, *pver = NULL;
  size_t graph_len = 0, pname_len = 0, pver_len = 0;
  int counts[26] = {0};
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  int k;
  while ((k = next(r, &c, &f, model_field_names, 26, counts)) > 0) {
    switch (f.num) {
    case 2: case 3: case 7: case 8: case 25:
      if (want(r, &f, PB_LEN, model_field_names[f.num]) < 0) return LM_EFORMAT;
      if (f.num == 2) pname = f.data, pname_len = f.len;
      if (f.num == 3) pver = f.data, pver_len = f.len;
      if (f.num == 7) graph = f.data, graph_len = f.len;
      break;
    case 1:
      if (want(r, &f, PB_VARINT, "ir_version") < 0) return LM_EFORMAT;
      break;
    default:
      break;
    }
    if (f.num == 8) {
      /* OperatorSetIdProto: domain 1, version 2. */
      pb_cursor oc = pb_cursor_of(f.data, f.len);
      pb_field of;
      const uint8_t *dom = NULL;
      size_t dom_len = 0;
      uint64_t version = 0;
      size_t m2 = ctx_push(r, "opset_import %d", counts[8] - 1);
      while ((k = next(r, &oc, &of, NULL, 0, NULL)) > 0) {
        if (of.num == 1 && want(r, &of, PB_LEN, "domain") == LM_OK) dom = of.data, dom_len = of.len;
        else if (of.num == 2 && want(r, &of, PB_VARINT, "version") == LM_OK) version = of.v;
        else if (of.num == 1 || of.num == 2) k = -1;
        if (k < 0) break;
      }
      ctx_pop(r, m2);
      if (k < 0) return LM_EFORMAT;
      if (default_domain(dom, dom_len)) {
        if (version == 0 || version > 1000)
          return fail(r, LM_EFORMAT, "opset_import: default-domain version %llu",
                      (unsigned long long)version);
        g->opset = (int)version;
      }
    }
  }
  if (k < 0) return LM_EFORMAT;
  if (!graph) return fail(r, LM_EFORMAT, "graph: missing (not an ONNX model?)");

  if (pname_len || pver_len) {
    char *p = lm_graph_alloc(g, pname_len + pver_len + 2);
    if (!p) return fail(r, LM_ENOMEM, "out of memory");
    if (pname_len) memcpy(p, pname, pname_len);
    if (pname_len && pver_len) p[pname_len] = ' ';
    if (pver_len) memcpy(p + pname_len + (pname_len ? 1 : 0), pver, pver_len);
    g->producer = p;
  }

  int nfn = counts[25];
  if (nfn) {
    r->fn_name = lm_graph_alloc(g, sizeof(void *) * (size_t)nfn);
    r->fn_domain = lm_graph_alloc(g, sizeof(void *) * (size_t)nfn);
    r->fn_name_len = lm_graph_alloc(g, sizeof(size_t) * (size_t)nfn);
    r->fn_domain_len = lm_graph_alloc(g, sizeof(size_t) * (size_t)nfn);
    if (!r->fn_name || !r->fn_domain || !r->fn_name_len || !r->fn_domain_len)
      return fail(r, LM_ENOMEM, "out of memory");
    c = pb_cursor_of(buf, len);
    while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
      if (f.num != 25) continue;
      size_t m2 = ctx_push(r, "functions %d", r->nfunctions);
      int st = read_function_id(r, &f, r->nfunctions);
      ctx_pop(r, m2);
      if (st < 0) return st;
      r->nfunctions++;
    }
  }
  return read_graph(r, graph, graph_len);
}

/* ---- entry points --------------------------------------------------------- */

static int load(const void *buf, size_t len, const char *name, const char *base_dir,
                mapped_file *mapping, lm_graph **out, char *err, size_t errlen)
{
  *out = NULL;
  lm_graph *g = lm_graph_new();
  if (!g) {
    if (mapping) mapped_file_release(mapping);
    snprintf(err, errlen, "%s: out of memory", name);
    return LM_ENOMEM;
  }
  if (mapping && lm_graph_keep(g, mapped_file_release, mapping) != LM_OK) {
    mapped_file_release(mapping);
    snprintf(err, errlen, "%s: out of memory", name);
    lm_graph_free(g);
    return LM_ENOMEM;
  }
  reader r = {.g = g, .file = name, .base_dir = base_dir};
  g->source = lm_graph_strdup(g, name, (size_t)-1);
  int st = g->source ? read_model(&r, buf, len) : lm_graph_error(g, LM_ENOMEM, "%s: out of memory", name);
  free(r.scratch);
  ext_files_free(r.ext);
  if (st < 0) {
    snprintf(err, errlen, "%s", g->err);
    lm_graph_free(g);
    return st;
  }
  *out = g;
  return LM_OK;
}

int lm_onnx_load_buffer(const void *buf, size_t len, const char *name, lm_graph **out, char *err,
                        size_t errlen)
{
  return load(buf, len, name ? name : "(buffer)", NULL, NULL, out, err, errlen);
}

/* Map a whole file read-only; NULL mapping for an empty file is an error. */
static int map_file(const char *path, mapped_file **out, char *err, size_t errlen)
{
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return errno == ENOENT ? LM_ENOENT : LM_EIO;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    snprintf(err, errlen, "%s: not a regular file", path);
    close(fd);
    return LM_EIO;
  }
  if (sb.st_size == 0) {
    snprintf(err, errlen, "%s: empty file", path);
    close(fd);
    return LM_EFORMAT;
  }
  mapped_file *m = calloc(1, sizeof *m);
  void *a = m ? mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  int e = errno;
  close(fd);
  if (a == MAP_FAILED) {
    snprintf(err, errlen, "%s: %s", path, m ? strerror(e) : "out of memory");
    free(m);
    return m ? LM_EIO : LM_ENOMEM;
  }
  m->addr = a;
  m->len = (size_t)sb.st_size;
  *out = m;
  return LM_OK;
}

int lm_onnx_load(const char *path, lm_graph **out, char *err, size_t errlen)
{
  *out = NULL;
  mapped_file *m;
  int st = map_file(path, &m, err, errlen);
  if (st < 0) return st;
  /* Weights are read once, front to back, when plans repack them. */
  madvise(m->addr, m->len, MADV_SEQUENTIAL);
  char *dir = strdup(path);
  if (!dir) {
    mapped_file_release(m);
    snprintf(err, errlen, "%s: out of memory", path);
    return LM_ENOMEM;
  }
  char *slash = strrchr(dir, '/');
  const char *base = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
  st = load(m->addr, m->len, path, base, m, out, err, errlen);
  free(dir);
  return st;
}

int lm_onnx_read_tensor_file(const char *path, lm_dtype *dt, int *ndim, int64_t *shape,
                             void **data, size_t *nbytes, char *err, size_t errlen)
{
  *data = NULL;
  *nbytes = 0;
  mapped_file *m;
  int st = map_file(path, &m, err, errlen);
  if (st < 0) return st;
  /* A scratch graph is the arena for typed fields and holds the message. */
  lm_graph *g = lm_graph_new();
  if (!g) {
    mapped_file_release(m);
    snprintf(err, errlen, "%s: out of memory", path);
    return LM_ENOMEM;
  }
  reader r = {.g = g, .file = path};
  tensor_info t;
  st = read_tensor(&r, m->addr, m->len, &t);
  free(r.scratch);
  if (st == LM_OK) {
    void *copy = malloc(t.nbytes ? t.nbytes : 1);
    if (!copy) {
      st = lm_graph_error(g, LM_ENOMEM, "%s: out of memory (%zu bytes)", path, t.nbytes);
    } else {
      if (t.nbytes) memcpy(copy, t.data, t.nbytes);
      *data = copy;
      *nbytes = t.nbytes;
      *dt = t.dt;
      *ndim = t.ndim;
      for (int i = 0; i < t.ndim; i++) shape[i] = t.dims[i];
    }
  }
  if (st < 0) snprintf(err, errlen, "%s", g->err);
  lm_graph_free(g);
  mapped_file_release(m);
  return st;
}
