/*
** Replies of the HTTP transport (http.h): a body, a file or
** multipart/form-data parts, turned into an MHD response with an exact
** Content-Length.  Multipart replies are streamed by a reader callback from
** a list of segments (boundary lines and part headers in memory, values in
** memory or in open files), so result volumes are never copied into memory.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_internal.h"

enum { BODY_MEMORY, BODY_FILE, BODY_PARTS };

typedef struct header {
  char *name, *value;
} header;

/* One piece of a multipart reply: bytes in memory, or `len` bytes of an
** open file from its start. */
typedef struct segment {
  char *mem;
  int fd;
  uint64_t len;
} segment;

typedef struct out_part {
  char *name, *filename, *content_type;
  char *data;   /* value in memory, or NULL */
  int fd;       /* value in this file, or -1 */
  uint64_t len;
} out_part;

struct lm_http_response {
  int status;
  header *headers;
  int nheaders;
  bool has_content_type;
  int kind;
  char *body;
  size_t body_len;
  int fd;                 /* BODY_FILE */
  uint64_t file_len;
  out_part *parts;        /* BODY_PARTS */
  int nparts;
};

/* What the reader callback streams: the segments and a cursor, since MHD
** reads sequentially. */
typedef struct stream {
  segment *seg;
  int nseg;
  int cur;
  uint64_t cur_start; /* offset in the reply of segment cur */
} stream;

void lm_http_set_err(char *err, size_t errlen, const char *fmt, ...)
{
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int lm_http_response_status(const lm_http_response *resp)
{
  return resp->status;
}

lm_http_response *lm_http_response_new(int status)
{
  if (status < 100 || status > 999) return NULL;
  lm_http_response *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->status = status;
  r->kind = BODY_MEMORY;
  r->fd = -1;
  return r;
}

static void free_parts(out_part *parts, int n)
{
  for (int i = 0; i < n; i++) {
    free(parts[i].name);
    free(parts[i].filename);
    free(parts[i].content_type);
    free(parts[i].data);
    if (parts[i].fd >= 0) close(parts[i].fd);
  }
  free(parts);
}

void lm_http_response_free(lm_http_response *r)
{
  if (!r) return;
  for (int i = 0; i < r->nheaders; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  free(r->headers);
  free(r->body);
  if (r->fd >= 0) close(r->fd);
  free_parts(r->parts, r->nparts);
  free(r);
}

/* A header name is an RFC 7230 token; values may not break the line. */
static bool valid_header(const char *name, const char *value)
{
  if (!*name) return false;
  for (const char *p = name; *p; p++)
    if (*p <= ' ' || *p >= 127 || strchr("()<>@,;:\\\"/[]?={}", *p)) return false;
  for (const char *p = value; *p; p++)
    if (*p == '\r' || *p == '\n') return false;
  return true;
}

int lm_http_response_header(lm_http_response *r, const char *name,
                            const char *value, char *err, size_t errlen)
{
  if (!name || !value || !valid_header(name, value)) {
    lm_http_set_err(err, errlen, "header '%s': not a valid header name and value",
            name ? name : "(null)");
    return -EINVAL;
  }
  if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0) {
    lm_http_set_err(err, errlen, "header '%s': set by the server (replies always carry "
            "an exact Content-Length)", name);
    return -EINVAL;
  }
  header *h = realloc(r->headers, (size_t)(r->nheaders + 1) * sizeof *h);
  if (!h) return -ENOMEM;
  r->headers = h;
  char *n = strdup(name), *v = strdup(value);
  if (!n || !v) {
    free(n);
    free(v);
    return -ENOMEM;
  }
  h[r->nheaders].name = n;
  h[r->nheaders].value = v;
  r->nheaders++;
  if (strcasecmp(name, "Content-Type") == 0) r->has_content_type = true;
  return 0;
}

int lm_http_response_body(lm_http_response *r, const void *data, size_t len)
{
  char *copy = malloc(len + 1);
  if (!copy) return -ENOMEM;
  if (len) memcpy(copy, data, len);
  copy[len] = 0;
  free(r->body);
  r->body = copy;
  r->body_len = len;
  return 0;
}

/* Open a regular file for reading; its size in *len. */
static int open_file(const char *path, uint64_t *len, char *err, size_t errlen)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    lm_http_set_err(err, errlen, "%s: cannot open: %s", path, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    lm_http_set_err(err, errlen, "%s: not a regular file", path);
    return -EINVAL;
  }
  *len = (uint64_t)st.st_size;
  return fd;
}

static const char *base_name(const char *path)
{
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

int lm_http_response_file(lm_http_response *r, const char *path,
                          const char *content_type, const char *filename,
                          char *err, size_t errlen)
{
  if (r->kind == BODY_PARTS) {
    lm_http_set_err(err, errlen, "a reply has either parts or a file");
    return -EINVAL;
  }
  uint64_t len = 0;
  int fd = open_file(path, &len, err, errlen);
  if (fd < 0) return fd;
  if (r->fd >= 0) close(r->fd);
  r->fd = fd;
  r->file_len = len;
  r->kind = BODY_FILE;
  int st = 0;
  if (!r->has_content_type)
    st = lm_http_response_header(r, "Content-Type",
                                 content_type ? content_type : "application/octet-stream",
                                 err, errlen);
  if (st == 0 && filename) {
    /* Quotes and line breaks cannot appear inside the quoted name. */
    char disp[512];
    int n = snprintf(disp, sizeof disp, "attachment; filename=\"");
    for (const char *p = filename; *p && n < (int)sizeof disp - 4; p++)
      if (*p != '"' && *p != '\r' && *p != '\n' && *p != '\\') disp[n++] = *p;
    disp[n++] = '"';
    disp[n] = 0;
    st = lm_http_response_header(r, "Content-Disposition", disp, err, errlen);
  }
  return st;
}

/* Copy s leaving out what would end a quoted header parameter. */
static char *quoted_safe(const char *s)
{
  if (!s) return NULL;
  char *out = malloc(strlen(s) + 1), *o = out;
  if (!out) return NULL;
  for (; *s; s++)
    if (*s != '"' && *s != '\r' && *s != '\n' && *s != '\\') *o++ = *s;
  *o = 0;
  return out;
}

int lm_http_response_part(lm_http_response *r, const char *name,
                          const char *filename, const char *content_type,
                          const void *data, size_t len, const char *path,
                          char *err, size_t errlen)
{
  if (r->kind == BODY_FILE) {
    lm_http_set_err(err, errlen, "a reply has either parts or a file");
    return -EINVAL;
  }
  if (!name) name = "";
  if (content_type && !valid_header("Content-Type", content_type)) {
    lm_http_set_err(err, errlen, "part '%s': content_type has a line break", name);
    return -EINVAL;
  }
  out_part p = {.fd = -1};
  if (path) {
    int fd = open_file(path, &p.len, err, errlen);
    if (fd < 0) return fd;
    p.fd = fd;
    if (!filename) filename = base_name(path);
  } else {
    p.data = malloc(len + 1);
    if (!p.data) return -ENOMEM;
    if (len) memcpy(p.data, data, len);
    p.len = len;
  }
  p.name = quoted_safe(name);
  p.filename = quoted_safe(filename);
  p.content_type = content_type ? strdup(content_type) : NULL;
  out_part *parts = realloc(r->parts, (size_t)(r->nparts + 1) * sizeof *parts);
  if (!p.name || (filename && !p.filename) || (content_type && !p.content_type) || !parts) {
    if (parts) r->parts = parts;
    free(p.name);
    free(p.filename);
    free(p.content_type);
    free(p.data);
    if (p.fd >= 0) close(p.fd);
    return -ENOMEM;
  }
  r->parts = parts;
  parts[r->nparts++] = p;
  r->kind = BODY_PARTS;
  return 0;
}

size_t lm_http_json_quote(const char *s, char *buf, size_t buflen)
{
  if (buflen < 3) {
    if (buflen) buf[0] = 0;
    return 0;
  }
  size_t n = 0;
  buf[n++] = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    size_t k;
    switch (*p) {
    case '"': k = (size_t)snprintf(esc, sizeof esc, "\\\""); break;
    case '\\': k = (size_t)snprintf(esc, sizeof esc, "\\\\"); break;
    case '\n': k = (size_t)snprintf(esc, sizeof esc, "\\n"); break;
    case '\r': k = (size_t)snprintf(esc, sizeof esc, "\\r"); break;
    case '\t': k = (size_t)snprintf(esc, sizeof esc, "\\t"); break;
    default:
      if (*p < 0x20) k = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *p);
      else {
        esc[0] = (char)*p;
        k = 1;
      }
    }
    if (n + k + 2 > buflen) break; /* room for the closing quote and NUL */
    memcpy(buf + n, esc, k);
    n += k;
  }
  buf[n++] = '"';
  buf[n] = 0;
  return n;
}

lm_http_response *lm_http_response_error(int status, const char *msg)
{
  lm_http_response *r = lm_http_response_new(status);
  if (!r) return NULL;
  size_t cap = strlen(msg) * 6 + 32;
  char *q = malloc(cap), *body = malloc(cap + 16);
  if (!q || !body) {
    free(q);
    free(body);
    lm_http_response_free(r);
    return NULL;
  }
  lm_http_json_quote(msg, q, cap);
  int n = snprintf(body, cap + 16, "{\"error\": %s}", q);
  free(q);
  if (lm_http_response_body(r, body, (size_t)n) != 0 ||
      lm_http_response_header(r, "Content-Type", "application/json", NULL, 0) != 0) {
    free(body);
    lm_http_response_free(r);
    return NULL;
  }
  free(body);
  return r;
}

/* ---- multipart streaming ---- */

static void stream_free(void *cls)
{
  stream *s = cls;
  for (int i = 0; i < s->nseg; i++) {
    free(s->seg[i].mem);
    if (s->seg[i].fd >= 0) close(s->seg[i].fd);
  }
  free(s->seg);
  free(s);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  stream *s = cls;
  /* MHD reads forward; start over only if it ever asks for an earlier pos. */
  if (pos < s->cur_start) {
    s->cur = 0;
    s->cur_start = 0;
  }
  while (s->cur < s->nseg && pos >= s->cur_start + s->seg[s->cur].len) {
    s->cur_start += s->seg[s->cur].len;
    s->cur++;
  }
  if (s->cur >= s->nseg) return MHD_CONTENT_READER_END_OF_STREAM;
  segment *g = &s->seg[s->cur];
  uint64_t off = pos - s->cur_start, left = g->len - off;
  size_t n = left < max ? (size_t)left : max;
  if (g->mem) {
    memcpy(buf, g->mem + off, n);
    return (ssize_t)n;
  }
  ssize_t got;
  do got = pread(g->fd, buf, n, (off_t)off);
  while (got < 0 && errno == EINTR);
  /* A file that shrank after it was opened cannot fill the promised
  ** Content-Length: end the connection rather than send a short reply. */
  if (got <= 0) return MHD_CONTENT_READER_END_WITH_ERROR;
  return got;
}

static bool occurs_in(const char *hay, uint64_t len, const char *needle)
{
  return memmem(hay, (size_t)len, needle, strlen(needle)) != NULL;
}

/* A boundary of 32 random hex digits; in-memory parts are checked not to
** contain it (files are not read for that: 128 random bits do not collide
** by chance). */
static void make_boundary(const lm_http_response *r, char *out, size_t outlen)
{
  for (int attempt = 0; attempt < 16; attempt++) {
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
      /* No entropy yet (early boot): mix the clock, the pid and the try. */
      uint64_t x = (uint64_t)time(NULL) * 6364136223846793005ULL + (uint64_t)getpid() +
                   (uint64_t)attempt * 1442695040888963407ULL + (uint64_t)(uintptr_t)r;
      for (size_t i = 0; i < sizeof rnd; i++) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        rnd[i] = (unsigned char)(x >> 56);
      }
    }
    int n = snprintf(out, outlen, "lumen-");
    for (size_t i = 0; i < sizeof rnd; i++)
      n += snprintf(out + n, outlen - (size_t)n, "%02x", rnd[i]);
    bool clash = false;
    for (int i = 0; i < r->nparts && !clash; i++)
      if (r->parts[i].data && occurs_in(r->parts[i].data, r->parts[i].len, out)) clash = true;
    if (!clash) return;
  }
}

static bool add_mem(stream *s, char *mem, size_t len)
{
  if (!mem) return false;
  s->seg[s->nseg++] = (segment){.mem = mem, .fd = -1, .len = len};
  return true;
}

static char *format(size_t *len, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *out = NULL;
  int n = vasprintf(&out, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  *len = (size_t)n;
  return out;
}

/* The parts as segments; the response's values and files move over. */
static struct MHD_Response *parts_to_mhd(lm_http_response *r, char *boundary)
{
  stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->seg = calloc((size_t)r->nparts * 3 + 1, sizeof *s->seg);
  if (!s->seg) {
    free(s);
    return NULL;
  }
  uint64_t total = 0;
  bool ok = true;
  for (int i = 0; i < r->nparts && ok; i++) {
    out_part *p = &r->parts[i];
    size_t hl = 0;
    char *head;
    const char *ct = p->content_type ? p->content_type
                     : (p->filename ? "application/octet-stream" : NULL);
    if (p->filename)
      head = format(&hl, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "%s%s%s\r\n", boundary, p->name, p->filename,
                    ct ? "Content-Type: " : "", ct ? ct : "", ct ? "\r\n" : "");
    else
      head = format(&hl, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n%s%s%s\r\n",
                    boundary, p->name, ct ? "Content-Type: " : "", ct ? ct : "", ct ? "\r\n" : "");
    ok = add_mem(s, head, hl);
    total += hl;
    if (!ok) break;
    if (p->fd >= 0) {
      s->seg[s->nseg++] = (segment){.fd = p->fd, .len = p->len};
      p->fd = -1;
    } else {
      s->seg[s->nseg++] = (segment){.mem = p->data, .fd = -1, .len = p->len};
      p->data = NULL;
    }
    total += p->len;
    ok = add_mem(s, strdup("\r\n"), 2);
    total += 2;
  }
  size_t tl = 0;
  if (ok) {
    char *tail = format(&tl, "--%s--\r\n", boundary);
    ok = add_mem(s, tail, tl);
    total += tl;
  }
  if (!ok) {
    stream_free(s);
    return NULL;
  }
  struct MHD_Response *m = MHD_create_response_from_callback(total, 64 * 1024, stream_read, s,
                                                             stream_free);
  if (!m) stream_free(s);
  return m;
}

struct MHD_Response *lm_http_response_to_mhd(lm_http_response *r, bool close_conn)
{
  struct MHD_Response *m = NULL;
  char boundary[64];
  const char *default_type = "text/plain; charset=utf-8";
  char parts_type[128];
  switch (r->kind) {
  case BODY_FILE:
    m = MHD_create_response_from_fd64(r->file_len, r->fd);
    if (m) r->fd = -1; /* MHD closes it */
    break;
  case BODY_PARTS:
    make_boundary(r, boundary, sizeof boundary);
    snprintf(parts_type, sizeof parts_type, "multipart/form-data; boundary=%s", boundary);
    default_type = parts_type;
    m = parts_to_mhd(r, boundary);
    break;
  default:
    /* An empty body has no buffer to hand over (MHD may not free one of
    ** size 0); a static "" is never freed. */
    if (r->body_len == 0) {
      m = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
      m = MHD_create_response_from_buffer_with_free_callback(r->body_len, r->body, free);
      if (m) r->body = NULL;
    }
    break;
  }
  if (!m) return NULL;
  bool typed = false;
  for (int i = 0; i < r->nheaders; i++) {
    /* A multipart reply's own boundary wins over a Content-Type given by the
    ** user: any other would not match the body. */
    if (strcasecmp(r->headers[i].name, "Content-Type") == 0) {
      if (r->kind == BODY_PARTS || typed) continue;
      typed = true;
    }
    if (MHD_add_response_header(m, r->headers[i].name, r->headers[i].value) != MHD_YES) {
      MHD_destroy_response(m);
      return NULL;
    }
  }
  if (!typed && MHD_add_response_header(m, "Content-Type", default_type) != MHD_YES) {
    MHD_destroy_response(m);
    return NULL;
  }
  if (close_conn && MHD_add_response_header(m, "Connection", "close") != MHD_YES) {
    MHD_destroy_response(m);
    return NULL;
  }
  return m;
}
