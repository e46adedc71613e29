/* .npy header parsing and building.  The dict literal is read with a small
 * tokenizer for the subset numpy writes (strings, True/False, tuples of
 * integers); anything else (structured dtypes, object arrays) is refused
 * with a message that says what was found. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy_format.h"

static const uint8_t MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static int fail(char *msg, size_t cap, int st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *msg, size_t cap, int st, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  if (msg && cap) vsnprintf(msg, cap, fmt, ap);
  va_end(ap);
  return st;
}

int npy_header_size(const uint8_t *buf, size_t len, size_t *total, char *msg, size_t cap)
{
  if (len < 10 || memcmp(buf, MAGIC, 6) != 0)
    return fail(msg, cap, LM_EFORMAT, "not a .npy file (no \\x93NUMPY magic)");
  int major = buf[6], minor = buf[7];
  if (major == 1) {
    *total = 10 + (size_t)(buf[8] | buf[9] << 8);
  } else if (major == 2 || major == 3) {
    if (len < 12) return fail(msg, cap, LM_EFORMAT, "truncated header");
    uint32_t n = (uint32_t)buf[8] | (uint32_t)buf[9] << 8 | (uint32_t)buf[10] << 16 |
                 (uint32_t)buf[11] << 24;
    *total = 12 + (size_t)n;
  } else {
    return fail(msg, cap, LM_EUNSUPPORTED, "format version %d.%d (1.0, 2.0 and 3.0 are read)",
                major, minor);
  }
  return LM_OK;
}

typedef struct lex {
  const char *p, *end;
} lex;

static void skip_ws(lex *l)
{
  while (l->p < l->end && isspace((unsigned char)*l->p)) l->p++;
}

static bool eat(lex *l, char c)
{
  skip_ws(l);
  if (l->p < l->end && *l->p == c) {
    l->p++;
    return true;
  }
  return false;
}

/* A quoted string (no escapes: numpy's keys and descrs have none). */
static bool string(lex *l, char *out, size_t cap)
{
  skip_ws(l);
  if (l->p >= l->end || (*l->p != '\'' && *l->p != '"')) return false;
  char q = *l->p++;
  size_t n = 0;
  while (l->p < l->end && *l->p != q) {
    if (*l->p == '\\' || n + 1 >= cap) return false;
    out[n++] = *l->p++;
  }
  if (l->p >= l->end) return false;
  l->p++;
  out[n] = 0;
  return true;
}

static bool word(lex *l, const char *w)
{
  skip_ws(l);
  size_t n = strlen(w);
  if ((size_t)(l->end - l->p) >= n && memcmp(l->p, w, n) == 0) {
    l->p += n;
    return true;
  }
  return false;
}

static int parse_descr(const char *d, npy_header *h, char *msg, size_t cap)
{
  snprintf(h->descr, sizeof h->descr, "%s", d);
  char order = d[0];
  if (order != '<' && order != '>' && order != '|' && order != '=')
    return fail(msg, cap, LM_EFORMAT, "field 'descr': '%s' has no byte-order character", d);
  char kind = d[1];
  char *e;
  long size = strtol(d + 2, &e, 10);
  if (kind == 'O')
    return fail(msg, cap, LM_EDTYPE, "field 'descr': '%s' is an object array (pickled Python "
                "objects); lumen reads numeric arrays only", d);
  if (e == d + 2 || *e)
    return fail(msg, cap, LM_EDTYPE, "field 'descr': '%s' is not a numeric dtype lumen reads", d);
  h->big_endian = order == '>';
  h->elem_size = (size_t)size;
  h->kind = NPY_LUMEN;
  switch (kind) {
  case 'b':
    if (size == 1) {
      h->kind = NPY_BOOL;
      h->dt = LM_U8;
      return LM_OK;
    }
    break;
  case 'u':
    if (size == 1) { h->dt = LM_U8; return LM_OK; }
    if (size == 2) { h->dt = LM_U16; return LM_OK; }
    if (size == 4) { h->dt = LM_U32; return LM_OK; }
    if (size == 8) { h->kind = NPY_U64; h->dt = LM_I64; return LM_OK; }
    break;
  case 'i':
    if (size == 1) { h->dt = LM_I8; return LM_OK; }
    if (size == 2) { h->dt = LM_I16; return LM_OK; }
    if (size == 4) { h->dt = LM_I32; return LM_OK; }
    if (size == 8) { h->dt = LM_I64; return LM_OK; }
    break;
  case 'f':
    if (size == 2) { h->dt = LM_F16; return LM_OK; }
    if (size == 4) { h->dt = LM_F32; return LM_OK; }
    if (size == 8) { h->dt = LM_F64; return LM_OK; }
    break;
  default:
    break;
  }
  static const char *const kinds = "cUSVMma";
  if (strchr(kinds, kind))
    return fail(msg, cap, LM_EDTYPE, "field 'descr': '%s' (%s) is not a numeric type lumen "
                "reads", d, kind == 'c' ? "complex" : kind == 'M' || kind == 'm' ? "datetime"
                : kind == 'V' ? "raw bytes" : "text");
  return fail(msg, cap, LM_EDTYPE, "field 'descr': '%s' is not a dtype lumen reads", d);
}

static int parse_shape(lex *l, npy_header *h, char *msg, size_t cap)
{
  if (!eat(l, '(')) return fail(msg, cap, LM_EFORMAT, "field 'shape' is not a tuple");
  h->ndim = 0;
  h->numel = 1;
  for (;;) {
    if (eat(l, ')')) break;
    skip_ws(l);
    if (l->p >= l->end || !isdigit((unsigned char)*l->p))
      return fail(msg, cap, LM_EFORMAT, "field 'shape': not a tuple of integers >= 0");
    errno = 0;
    char *e;
    long long v = strtoll(l->p, &e, 10);
    if (errno || e > l->end) return fail(msg, cap, LM_EFORMAT, "field 'shape': size too large");
    l->p = e;
    if (l->p < l->end && *l->p == 'L') l->p++; /* Python 2 longs */
    if (h->ndim == LM_MAX_DIMS)
      return fail(msg, cap, LM_ESHAPE, "field 'shape': more than %d dims (lumen's limit)",
                  LM_MAX_DIMS);
    h->shape[h->ndim++] = v;
    if (v > 0 && h->numel > ((int64_t)1 << 50) / v)
      return fail(msg, cap, LM_EFORMAT, "field 'shape': more than 2^50 elements");
    h->numel *= v;
    if (eat(l, ',')) continue;
    if (eat(l, ')')) break;
    return fail(msg, cap, LM_EFORMAT, "field 'shape': expected ',' or ')'");
  }
  return LM_OK;
}

int npy_header_parse(const uint8_t *buf, size_t len, npy_header *h, char *msg, size_t cap)
{
  memset(h, 0, sizeof *h);
  size_t total;
  int st = npy_header_size(buf, len, &total, msg, cap);
  if (st < 0) return st;
  if (total > len) return fail(msg, cap, LM_EFORMAT, "truncated header (%zu of %zu bytes)", len,
                               total);
  h->major = buf[6];
  h->minor = buf[7];
  h->data_offset = total;
  size_t start = h->major == 1 ? 10 : 12;
  lex l = {(const char *)buf + start, (const char *)buf + total};
  for (const char *p = l.p; p < l.end; p++)
    if (*p == 0) return fail(msg, cap, LM_EFORMAT, "header holds a NUL byte");
  if (!eat(&l, '{')) return fail(msg, cap, LM_EFORMAT, "header is not a dict literal");
  bool got_descr = false, got_order = false, got_shape = false;
  for (;;) {
    if (eat(&l, '}')) break;
    char key[32];
    if (!string(&l, key, sizeof key) || !eat(&l, ':'))
      return fail(msg, cap, LM_EFORMAT, "header dict: expected a quoted key and ':'");
    if (strcmp(key, "descr") == 0) {
      char d[32];
      skip_ws(&l);
      if (l.p < l.end && *l.p == '[')
        return fail(msg, cap, LM_EDTYPE, "field 'descr': a structured dtype (a list of "
                    "fields); lumen reads plain numeric arrays");
      if (!string(&l, d, sizeof d))
        return fail(msg, cap, LM_EFORMAT, "field 'descr' is not a dtype string");
      if ((st = parse_descr(d, h, msg, cap)) < 0) return st;
      got_descr = true;
    } else if (strcmp(key, "fortran_order") == 0) {
      if (word(&l, "True")) h->fortran_order = true;
      else if (word(&l, "False")) h->fortran_order = false;
      else return fail(msg, cap, LM_EFORMAT, "field 'fortran_order' is neither True nor False");
      got_order = true;
    } else if (strcmp(key, "shape") == 0) {
      if ((st = parse_shape(&l, h, msg, cap)) < 0) return st;
      got_shape = true;
    } else {
      return fail(msg, cap, LM_EFORMAT, "header dict: unexpected key '%s'", key);
    }
    if (eat(&l, ',')) continue;
    if (eat(&l, '}')) break;
    return fail(msg, cap, LM_EFORMAT, "header dict: expected ',' or '}'");
  }
  if (!got_descr || !got_order || !got_shape)
    return fail(msg, cap, LM_EFORMAT, "header dict: missing key '%s'",
                !got_descr ? "descr" : !got_order ? "fortran_order" : "shape");
  h->data_bytes = (uint64_t)h->numel * h->elem_size;
  return LM_OK;
}

static const char *descr_of(lm_dtype dt)
{
  switch (dt) {
  case LM_U8: return "|u1";
  case LM_I8: return "|i1";
  case LM_I16: return "<i2";
  case LM_U16: return "<u2";
  case LM_I32: return "<i4";
  case LM_U32: return "<u4";
  case LM_I64: return "<i8";
  case LM_F16: return "<f2";
  case LM_F32: return "<f4";
  case LM_F64: return "<f8";
  default: return NULL;
  }
}

int npy_header_build(lm_dtype dt, int ndim, const int64_t *shape, bool fortran_order,
                     uint8_t **out, size_t *len, char *msg, size_t cap)
{
  *out = NULL;
  const char *descr = descr_of(dt);
  if (!descr)
    return fail(msg, cap, LM_EDTYPE, "%s has no NumPy dtype; Cast to float32 first",
                lm_dtype_name(dt));
  char dict[64 + 24 * LM_MAX_DIMS];
  int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': (", descr,
                   fortran_order ? "True" : "False");
  for (int i = 0; i < ndim; i++)
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape[i],
                  i + 1 < ndim ? " " : "");
  /* numpy writes (5,) for one dim and (3, 4) for more. */
  if (ndim > 1) n--;
  n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
  /* Pad with spaces and a final newline so the data start 64-aligned. */
  size_t pre = 10;
  size_t total = (pre + (size_t)n + 1 + 63) / 64 * 64;
  int major = 1;
  if (total - pre > 65535) {
    pre = 12;
    total = (pre + (size_t)n + 1 + 63) / 64 * 64;
    major = 2;
  }
  uint8_t *b = malloc(total);
  if (!b) return fail(msg, cap, LM_ENOMEM, "out of memory");
  memcpy(b, MAGIC, 6);
  b[6] = (uint8_t)major;
  b[7] = 0;
  size_t hl = total - pre;
  for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (uint8_t)(hl >> (8 * i));
  memcpy(b + pre, dict, (size_t)n);
  memset(b + pre + n, ' ', total - pre - (size_t)n - 1);
  b[total - 1] = '\n';
  *out = b;
  *len = total;
  return LM_OK;
}
