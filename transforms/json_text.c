/* JSON text building and the label-name table parser (json_text.h). */
#include "json_text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void jt_init(jt_buf *b) { memset(b, 0, sizeof *b); }

void jt_free(jt_buf *b)
{
  free(b->s);
  memset(b, 0, sizeof *b);
}

static bool jt_reserve(jt_buf *b, size_t extra)
{
  if (b->oom) return false;
  if (b->len + extra + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->oom = true;
    return false;
  }
  b->s = s;
  b->cap = cap;
  return true;
}

static void jt_mem(jt_buf *b, const char *p, size_t n)
{
  if (!jt_reserve(b, n)) return;
  memcpy(b->s + b->len, p, n);
  b->len += n;
  b->s[b->len] = 0;
}

void jt_raw(jt_buf *b, const char *text) { jt_mem(b, text, strlen(text)); }
void jt_char(jt_buf *b, char c) { jt_mem(b, &c, 1); }

void jt_string(jt_buf *b, const char *s)
{
  jt_char(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    switch (*p) {
    case '"': jt_raw(b, "\\\""); break;
    case '\\': jt_raw(b, "\\\\"); break;
    case '\n': jt_raw(b, "\\n"); break;
    case '\r': jt_raw(b, "\\r"); break;
    case '\t': jt_raw(b, "\\t"); break;
    default:
      if (*p < 0x20) {
        snprintf(esc, sizeof esc, "\\u%04x", *p);
        jt_raw(b, esc);
      } else {
        jt_char(b, (char)*p);
      }
    }
  }
  jt_char(b, '"');
}

void jt_int(jt_buf *b, int64_t v)
{
  char t[32];
  snprintf(t, sizeof t, "%" PRId64, v);
  jt_raw(b, t);
}

void jt_number(jt_buf *b, double v)
{
  char t[40];
  if (!isfinite(v)) {
    jt_raw(b, "null");
    return;
  }
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(t, sizeof t, "%.0f", v);
    if (strcmp(t, "-0") == 0) strcpy(t, "0");
    jt_raw(b, t);
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(t, sizeof t, "%.*g", prec, v);
    if (strtod(t, NULL) == v) break;
  }
  jt_raw(b, t);
}

/* ---- the label-name table ---- */

typedef struct jt_parser {
  const char *s;
  size_t pos;
  char *err;
  size_t errlen;
} jt_parser;

static bool perr(jt_parser *p, const char *what)
{
  snprintf(p->err, p->errlen, "%s at byte %zu", what, p->pos);
  return false;
}

static void skip_ws(jt_parser *p)
{
  while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
         p->s[p->pos] == '\r')
    p->pos++;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool read_hex4(jt_parser *p, unsigned *u)
{
  *u = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p->s[p->pos]);
    if (h < 0) return perr(p, "bad \\u escape");
    *u = *u * 16 + (unsigned)h;
    p->pos++;
  }
  return true;
}

static void put_utf8(jt_buf *b, unsigned cp)
{
  if (cp < 0x80) {
    jt_char(b, (char)cp);
  } else if (cp < 0x800) {
    jt_char(b, (char)(0xC0 | (cp >> 6)));
    jt_char(b, (char)(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    jt_char(b, (char)(0xE0 | (cp >> 12)));
    jt_char(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
    jt_char(b, (char)(0x80 | (cp & 0x3F)));
  } else {
    jt_char(b, (char)(0xF0 | (cp >> 18)));
    jt_char(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
    jt_char(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
    jt_char(b, (char)(0x80 | (cp & 0x3F)));
  }
}

/* A string literal into a fresh malloc'ed buffer. */
static bool read_string(jt_parser *p, char **out)
{
  jt_buf b;
  jt_init(&b);
  jt_raw(&b, "");
  if (p->s[p->pos] != '"') return perr(p, "expected a string");
  p->pos++;
  for (;;) {
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c == '"') {
      p->pos++;
      break;
    }
    if (c < 0x20) {
      jt_free(&b);
      return perr(p, c ? "control character in a string" : "unterminated string");
    }
    if (c != '\\') {
      jt_char(&b, (char)c);
      p->pos++;
      continue;
    }
    p->pos++;
    char e = p->s[p->pos++];
    unsigned u;
    switch (e) {
    case '"': case '\\': case '/': jt_char(&b, e); break;
    case 'b': jt_char(&b, '\b'); break;
    case 'f': jt_char(&b, '\f'); break;
    case 'n': jt_char(&b, '\n'); break;
    case 'r': jt_char(&b, '\r'); break;
    case 't': jt_char(&b, '\t'); break;
    case 'u':
      if (!read_hex4(p, &u)) {
        jt_free(&b);
        return false;
      }
      if (u >= 0xD800 && u < 0xDC00) {
        unsigned lo;
        if (p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
          jt_free(&b);
          return perr(p, "lone high surrogate");
        }
        p->pos += 2;
        if (!read_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
          jt_free(&b);
          return perr(p, "bad low surrogate");
        }
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
      } else if (u >= 0xDC00 && u < 0xE000) {
        jt_free(&b);
        return perr(p, "lone low surrogate");
      }
      put_utf8(&b, u);
      break;
    default:
      p->pos--;
      jt_free(&b);
      return perr(p, "bad escape");
    }
  }
  if (b.oom) {
    jt_free(&b);
    return perr(p, "out of memory");
  }
  *out = b.s;
  return true;
}

static bool parse_label_id(const char *key, int64_t *id)
{
  char *end;
  if (!*key) return false;
  errno = 0;
  long long v = strtoll(key, &end, 10);
  if (*end || errno) return false;
  *id = v;
  return true;
}

bool jt_names_parse(const char *text, jt_names *out, char *err, size_t errlen)
{
  jt_parser p = {text, 0, err, errlen};
  memset(out, 0, sizeof *out);
  int cap = 0;
  skip_ws(&p);
  if (text[p.pos] != '{') return perr(&p, "expected '{'");
  p.pos++;
  skip_ws(&p);
  if (text[p.pos] == '}') {
    p.pos++;
  } else {
    for (;;) {
      char *key = NULL, *val = NULL;
      int64_t id;
      skip_ws(&p);
      size_t key_pos = p.pos;
      if (!read_string(&p, &key)) goto fail;
      if (!parse_label_id(key, &id)) {
        free(key);
        p.pos = key_pos;
        perr(&p, "key is not an integer label id");
        goto fail;
      }
      free(key);
      skip_ws(&p);
      if (text[p.pos] != ':') {
        perr(&p, "expected ':'");
        goto fail;
      }
      p.pos++;
      skip_ws(&p);
      if (!read_string(&p, &val)) goto fail;
      if (out->n == cap) {
        cap = cap ? 2 * cap : 16;
        int64_t *ids = realloc(out->id, sizeof *ids * (size_t)cap);
        if (ids) out->id = ids;
        char **names = realloc(out->name, sizeof *names * (size_t)cap);
        if (names) out->name = names;
        if (!ids || !names) {
          free(val);
          perr(&p, "out of memory");
          goto fail;
        }
      }
      out->id[out->n] = id;
      out->name[out->n] = val;
      out->n++;
      skip_ws(&p);
      if (text[p.pos] == ',') {
        p.pos++;
        continue;
      }
      if (text[p.pos] == '}') {
        p.pos++;
        break;
      }
      perr(&p, "expected ',' or '}'");
      goto fail;
    }
  }
  skip_ws(&p);
  if (text[p.pos]) {
    perr(&p, "trailing text after the object");
    goto fail;
  }
  return true;
fail:
  jt_names_free(out);
  return false;
}

void jt_names_free(jt_names *nm)
{
  for (int i = 0; i < nm->n; i++) free(nm->name[i]);
  free(nm->name);
  free(nm->id);
  memset(nm, 0, sizeof *nm);
}

const char *jt_names_get(const jt_names *nm, int64_t id)
{
  /* The last entry wins, as a JSON object read into a table would. */
  for (int i = nm->n - 1; i >= 0; i--)
    if (nm->id[i] == id) return nm->name[i];
  return NULL;
}

char *jt_read_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  jt_buf b;
  jt_init(&b);
  jt_raw(&b, "");
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) jt_mem(&b, chunk, n);
  int bad = ferror(f) || b.oom;
  fclose(f);
  if (bad || memchr(b.s, 0, b.len)) {
    jt_free(&b);
    errno = bad ? EIO : EINVAL;
    return NULL;
  }
  return b.s;
}

int jt_write_file_atomic(const char *path, const char *data, size_t len)
{
  size_t n = strlen(path);
  char *tmp = malloc(n + 16);
  if (!tmp) return ENOMEM;
  snprintf(tmp, n + 16, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return e;
  }
  int e = 0;
  for (size_t off = 0; off < len && !e;) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno != EINTR) e = errno;
    } else {
      off += (size_t)w;
    }
  }
  /* mkstemp makes the file 0600; result files are ordinary files. */
  if (!e && fchmod(fd, 0644) != 0) e = errno;
  if (close(fd) != 0 && !e) e = errno;
  if (!e && rename(tmp, path) != 0) e = errno;
  if (e) unlink(tmp);
  free(tmp);
  return e;
}
