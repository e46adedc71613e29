/* ONNX TensorProto: dims, data_type, raw_data (in place), the typed
 * repeated fields (converted into arena memory), and external data mapped
 * from a file next to the model that must stay inside the model's folder. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_internal.h"

void onnx_mapped_file_release(void *ctx)
{
  mapped_file *m = ctx;
  if (m->addr) munmap(m->addr, m->len);
  free(m);
}

static const char *const tensor_field_names[T_NFIELDS] = {
  [T_DIMS] = "dims", [T_DATA_TYPE] = "data_type", [T_SEGMENT] = "segment",
  [T_FLOAT] = "float_data", [T_INT32] = "int32_data", [T_STRING] = "string_data",
  [T_INT64] = "int64_data", [T_NAME] = "name", [T_RAW] = "raw_data",
  [T_DOUBLE] = "double_data", [T_UINT64] = "uint64_data", [T_EXTERNAL] = "external_data",
  [T_LOCATION] = "data_location"};


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
    onnx_fail(r, LM_EFORMAT, "%s: wire type %d", name, f->wire);
    return -1;
  }
  if (fixed) {
    if (f->len % fixed) {
      onnx_fail(r, LM_EFORMAT, "%s: packed length %zu is not a multiple of %zu", name, f->len, fixed);
      return -1;
    }
    return (int64_t)(f->len / fixed);
  }
  const char *why = "malformed";
  int64_t n = pb_count_varints(f->data, f->len, &why);
  if (n < 0) onnx_fail(r, LM_EFORMAT, "%s: %s", name, why);
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
    if (*at >= numel) return onnx_fail(r, LM_EFORMAT, "%s: more values than dims give", name);
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
      if (!pb_read_varint(&c, &v, &why)) return onnx_fail(r, LM_EFORMAT, "%s: %s", name, why);
    }
    if (*at >= numel) return onnx_fail(r, LM_EFORMAT, "%s: more values than dims give", name);
    memcpy(out + (size_t)*at * es, &v, es);
    (*at)++;
  }
  return LM_OK;
}

void onnx_ext_files_free(ext_file *e)
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
  onnx_shown(shown_loc, sizeof shown_loc, loc, loc_len);
  if (!r->base_dir)
    return onnx_fail(r, LM_EUNSUPPORTED,
                "external_data '%s': needs the model's folder (load the model from its file)",
                shown_loc);
  if (loc_len == 0 || memchr(loc, 0, loc_len))
    return onnx_fail(r, LM_EFORMAT, "external_data: location is empty or holds a NUL byte");
  for (ext_file *e = r->ext; e; e = e->next)
    if (strlen(e->location) == loc_len && memcmp(e->location, loc, loc_len) == 0) {
      *data = e->data;
      *len = e->len;
      return LM_OK;
    }
  /* Refuse absolute paths and any ".." component before touching the file
   * system, then compare real paths (a symlink may still point outside). */
  if (loc[0] == '/')
    return onnx_fail(r, LM_EINVAL, "external_data '%s': absolute location (must be relative to the model's folder)",
                shown_loc);
  for (size_t i = 0; i < loc_len;) {
    size_t j = i;
    while (j < loc_len && loc[j] != '/' && loc[j] != '\\') j++;
    if (j - i == 2 && loc[i] == '.' && loc[i + 1] == '.')
      return onnx_fail(r, LM_EINVAL, "external_data '%s': location leaves the model's folder", shown_loc);
    i = j + 1;
  }
  size_t blen = strlen(r->base_dir);
  char *path = malloc(blen + loc_len + 2);
  if (!path) return onnx_fail(r, LM_ENOMEM, "out of memory");
  memcpy(path, r->base_dir, blen);
  path[blen] = '/';
  memcpy(path + blen + 1, loc, loc_len);
  path[blen + 1 + loc_len] = 0;
  char *real_base = realpath(r->base_dir, NULL);
  char *real_file = realpath(path, NULL);
  int st = LM_OK;
  if (!real_base || !real_file) {
    st = onnx_fail(r, LM_ENOENT, "external_data '%s': %s", shown_loc, strerror(errno));
  } else {
    size_t rb = strlen(real_base);
    bool inside = strncmp(real_file, real_base, rb) == 0 &&
                  (real_file[rb] == '/' || (rb == 1 && real_base[0] == '/'));
    if (!inside)
      st = onnx_fail(r, LM_EINVAL, "external_data '%s': resolves outside the model's folder", shown_loc);
  }
  free(real_base);
  int fd = -1;
  struct stat sb;
  if (st == LM_OK) {
    fd = open(real_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0)
      st = onnx_fail(r, LM_EIO, "external_data '%s': %s", shown_loc, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
      st = onnx_fail(r, LM_EINVAL, "external_data '%s': not a regular file", shown_loc);
  }
  free(real_file);
  free(path);
  ext_file *e = NULL;
  mapped_file *m = NULL;
  if (st == LM_OK) {
    e = calloc(1, sizeof *e);
    m = calloc(1, sizeof *m);
    if (!e || !m || !(e->location = strndup((const char *)loc, loc_len)))
      st = onnx_fail(r, LM_ENOMEM, "out of memory");
  }
  if (st == LM_OK && sb.st_size > 0) {
    void *a = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (a == MAP_FAILED) {
      st = onnx_fail(r, LM_EIO, "external_data '%s': mmap: %s", shown_loc, strerror(errno));
    } else {
      m->addr = a;
      m->len = (size_t)sb.st_size;
    }
  }
  if (fd >= 0) close(fd);
  if (st == LM_OK && lm_graph_keep(r->g, onnx_mapped_file_release, m) != LM_OK) {
    onnx_mapped_file_release(m);
    m = NULL;
    st = onnx_fail(r, LM_ENOMEM, "out of memory");
  } else if (st != LM_OK) {
    if (m) onnx_mapped_file_release(m);
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
  while ((k = onnx_next(r, &c, &e, NULL, 0, NULL)) > 0) {
    if (e.num == 1 || e.num == 2) {
      if (onnx_want(r, &e, PB_LEN, "external_data entry") < 0) return LM_EFORMAT;
      if (e.num == 1) key = e.data, key_len = e.len;
      else val = e.data, val_len = e.len;
    }
  }
  if (k < 0) return LM_EFORMAT;
  if (!key) return onnx_fail(r, LM_EFORMAT, "external_data: entry without a key");
  if (onnx_str_is(key, key_len, "location")) {
    *loc = val ? val : (const uint8_t *)"";
    *loc_len = val_len;
  } else if (onnx_str_is(key, key_len, "offset") || onnx_str_is(key, key_len, "length")) {
    /* Decimal digits only: the value becomes a file position. */
    int64_t x = 0;
    if (val_len == 0 || val_len > 18)
      return onnx_fail(r, LM_EFORMAT, "external_data: bad %s", key_len == 6 ? "offset" : "length");
    for (size_t i = 0; i < val_len; i++) {
      if (val[i] < '0' || val[i] > '9')
        return onnx_fail(r, LM_EFORMAT, "external_data: bad %s", key_len == 6 ? "offset" : "length");
      x = x * 10 + (val[i] - '0');
    }
    if (onnx_str_is(key, key_len, "offset")) *offset = x;
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

int onnx_read_tensor(reader *r, const uint8_t *buf, size_t len, tensor_info *t)
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
  while ((k = onnx_next(r, &c, &f, tensor_field_names, T_NFIELDS, NULL)) > 0) {
    switch (f.num) {
    case T_DIMS: {
      /* Packed (the usual form) or one varint per occurrence. */
      pb_cursor d = pb_cursor_of(f.data, f.len);
      uint64_t v = f.v;
      if (f.wire != PB_LEN && f.wire != PB_VARINT) return onnx_fail(r, LM_EFORMAT, "dims: wire type %d", f.wire);
      while (f.wire == PB_VARINT || d.p < d.end) {
        const char *why = "malformed";
        if (f.wire == PB_LEN && !pb_read_varint(&d, &v, &why)) return onnx_fail(r, LM_EFORMAT, "dims: %s", why);
        if (ndim >= LM_MAX_DIMS) return onnx_fail(r, LM_EUNSUPPORTED, "dims: more than %d", LM_MAX_DIMS);
        if ((int64_t)v < 0) return onnx_fail(r, LM_EFORMAT, "dims: negative extent %lld", (long long)(int64_t)v);
        dims[ndim++] = (int64_t)v;
        if (f.wire == PB_VARINT) break;
      }
      break;
    }
    case T_DATA_TYPE:
      if (onnx_want(r, &f, PB_VARINT, "data_type") < 0) return LM_EFORMAT;
      data_type = f.v;
      have_type = true;
      break;
    case T_SEGMENT:
      return onnx_fail(r, LM_EUNSUPPORTED, "segment: segmented tensors are not supported");
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
      if (onnx_want(r, &f, PB_LEN, "name") < 0) return LM_EFORMAT;
      t->name = f.data;
      t->name_len = f.len;
      break;
    case T_RAW:
      if (onnx_want(r, &f, PB_LEN, "raw_data") < 0) return LM_EFORMAT;
      raw = f.data;
      raw_len = f.len;
      have_raw = true;
      break;
    case T_EXTERNAL:
      if (onnx_want(r, &f, PB_LEN, "external_data") < 0) return LM_EFORMAT;
      if (read_external(r, &f, &loc, &loc_len, &ext_offset, &ext_length) < 0) return LM_EFORMAT;
      break;
    case T_LOCATION:
      if (onnx_want(r, &f, PB_VARINT, "data_location") < 0) return LM_EFORMAT;
      location = f.v;
      break;
    default:
      break;   /* doc_string, metadata: not needed */
    }
  }
  if (k < 0) return LM_EFORMAT;

  if (!have_type) return onnx_fail(r, LM_EFORMAT, "data_type: missing");
  if (data_type > INT_MAX || lm_dtype_from_onnx((int)data_type, &t->dt) != LM_OK)
    return onnx_fail(r, LM_EDTYPE, "data_type %llu (%s) is not supported", (unsigned long long)data_type,
                onnx_type_name(data_type));
  size_t es = lm_dtype_size(t->dt);
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++)
    if (__builtin_mul_overflow(numel, dims[i], &numel))
      return onnx_fail(r, LM_EFORMAT, "dims: the element count overflows");
  size_t nbytes;
  if (__builtin_mul_overflow((size_t)numel, es, &nbytes) || nbytes > (size_t)PTRDIFF_MAX)
    return onnx_fail(r, LM_EFORMAT, "dims: the byte size overflows");
  t->ndim = ndim;
  memcpy(t->dims, dims, sizeof(int64_t) * (size_t)ndim);
  t->nbytes = nbytes;

  if (location > 1) return onnx_fail(r, LM_EFORMAT, "data_location %llu is not DEFAULT or EXTERNAL",
                                (unsigned long long)location);
  if (location == 1) {
    if (!loc) return onnx_fail(r, LM_EFORMAT, "external_data: no location");
    const uint8_t *fdata = NULL;
    size_t flen = 0;
    int st = ext_map(r, loc, loc_len, &fdata, &flen);
    if (st < 0) return st;
    char shown_loc[96];
    onnx_shown(shown_loc, sizeof shown_loc, loc, loc_len);
    if (ext_length >= 0 && (uint64_t)ext_length != nbytes)
      return onnx_fail(r, LM_EFORMAT, "external_data '%s': length %lld but dims and data_type give %zu bytes",
                  shown_loc, (long long)ext_length, nbytes);
    if ((uint64_t)ext_offset > flen || nbytes > flen - (size_t)ext_offset)
      return onnx_fail(r, LM_EFORMAT, "external_data '%s': offset %lld + %zu bytes runs past the file (%zu bytes)",
                  shown_loc, (long long)ext_offset, nbytes, flen);
    t->data = nbytes ? fdata + ext_offset : NULL;
    return LM_OK;
  }
  if (counts[T_STRING]) return onnx_fail(r, LM_EDTYPE, "string_data: string tensors are not supported");
  int field = typed_field(t->dt);
  for (int i = 0; i < T_NFIELDS; i++)
    if (counts[i] && i != field)
      return onnx_fail(r, LM_EFORMAT, "%s given for data_type %s", tensor_field_names[i],
                  onnx_type_name(data_type));
  if (have_raw) {
    if (counts[field])
      return onnx_fail(r, LM_EFORMAT, "both raw_data and %s are given", tensor_field_names[field]);
    if (raw_len != nbytes)
      return onnx_fail(r, LM_EFORMAT, "raw_data has %zu bytes; dims and data_type give %zu", raw_len, nbytes);
    t->data = nbytes ? raw : NULL;
    return LM_OK;
  }
  if (counts[field] != numel)
    return onnx_fail(r, LM_EFORMAT, "%s has %lld values; dims give %lld", tensor_field_names[field],
                (long long)counts[field], (long long)numel);
  if (numel == 0) return LM_OK;
  uint8_t *out = lm_graph_alloc(r->g, nbytes);
  if (!out) return onnx_fail(r, LM_ENOMEM, "out of memory (%zu bytes)", nbytes);
  int64_t at = 0;
  c = pb_cursor_of(buf, len);
  while (pb_next(&c, &f, &(const char *){NULL}) > 0)
    if ((int)f.num == field && typed_fill(r, &f, out, es, numel, &at) < 0) return LM_EFORMAT;
  t->data = out;
  return LM_OK;
}
