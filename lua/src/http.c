/*
** The HTTP transport (http.h): libmicrohttpd driven from a libuv loop.
**
** MHD runs without a thread of its own (MHD_USE_EPOLL): its epoll descriptor
** is watched by a uv_poll_t and MHD_run() is called when it is readable or
** when the uv_timer_t armed from MHD_get_timeout() fires.  MHD parses the
** requests and calls on_access() (below) for the headers and each piece of
** the body; the body goes to the request (multipart/form-data through
** MHD_PostProcessor, file parts to temporary files).  A complete request is
** suspended and put on the ready list; after MHD_run() returns, drive() hands
** the ready requests to the user, so user code never runs inside MHD.
**
** A request has up to four owners, counted in `refs`: MHD (until its
** completion notice), the user (from on_request until it releases it), and
** the two loop handles of a handled request (the client socket watcher and
** the timeout timer, until their close callbacks).  A request holds a
** reference to its server, so a server outlives the requests still held.
*/
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_internal.h"

/* A request's life. */
enum {
  R_READING,  /* MHD is reading the headers and the body */
  R_READY,    /* complete, suspended, on the ready list */
  R_HANDLING, /* handed to the user, suspended until answered */
  R_ANSWERED, /* the user's reply waits for MHD to send it */
  R_ABORTED,  /* gone, timed out (a 504 waits in reply) or shut down */
  R_REPLIED   /* a reply was queued in MHD */
};

typedef struct kv {
  char *k, *v;
} kv;

typedef struct part {
  lm_http_part pub;
  int fd;         /* file parts: open while the body is read */
  size_t cap;     /* text parts: bytes allocated for pub.data */
} part;

struct lm_http_request {
  int refs;
  lm_http_server *srv;
  struct MHD_Connection *conn; /* NULL once MHD has completed the request */
  int state;
  char *method, *path, *version;
  char remote[64];
  kv *headers;
  int nheaders, capheaders;
  kv *query;
  int nquery, capquery;
  /* The body. */
  bool multipart;
  char *boundary;             /* multipart: the boundary, for messages */
  struct MHD_PostProcessor *pp;
  /* The close delimiter "\r\n--BOUNDARY--", looked for in the stream: what
  ** follows it (the epilogue) is not given to MHD, see intake_multipart. */
  char *close_delim;
  size_t close_len;
  char close_tail[256];       /* the last close_len - 1 bytes fed */
  size_t close_tail_len;
  bool epilogue;
  char *body;
  size_t body_len, body_cap;
  part *parts;
  int nparts, capparts;
  int64_t received;           /* body bytes read so far */
  int reject_status;          /* an error reply to send when the body is read */
  char reject_msg[256];
  bool reject_now;            /* ... or at once, closing the connection */
  lm_http_response *reply;
  bool gone;
  bool aborted;               /* taken from the user (gone, timeout, stop) */
  bool resuming;              /* resumed, MHD has not called back yet */
  uv_poll_t sock_watch;       /* the client socket while suspended */
  uv_timer_t timer;           /* the per-request timeout */
  bool watching, timing;
  void *userdata;
  lm_http_request *next;      /* ready list, then list of handled requests */
  lm_http_request *prev;
};

struct lm_http_server {
  uv_loop_t *loop;
  struct MHD_Daemon *daemon;
  lm_http_options opts;       /* strings owned (host, upload_dir) */
  int port;
  uv_poll_t epoll_watch;
  uv_timer_t timer;
  int handles_open;
  int refs;                   /* 1 for the owner + 1 per request alive */
  int active;                 /* requests MHD has started, not completed */
  int inflight;               /* requests in R_HANDLING */
  int resuming;               /* resumed connections MHD has not seen yet */
  lm_http_request *ready_head, *ready_tail;
  lm_http_request handling;   /* sentinel of the list of handled requests */
  bool in_mhd;                /* inside MHD_run */
  bool in_drive;              /* inside drive() (dispatching included) */
  int closing;                /* 0, CLOSE_GRACEFUL or CLOSE_FORCED */
  bool stopped;               /* MHD stopped, handles closing */
  bool closed;                /* handles closed */
  bool owner_gone;            /* lm_http_server_free was called */
  lm_http_closed_cb done;
  void *done_ud;
};

enum { CLOSE_GRACEFUL = 1, CLOSE_FORCED = 2 };

#define PP_BUFFER (64 * 1024)

static void drive(lm_http_server *srv);
static void maybe_stop(lm_http_server *srv);


/* ---- options ---- */

void lm_http_options_init(lm_http_options *o)
{
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  const char *tmp = getenv("TMPDIR");
  o->upload_dir = tmp && *tmp ? tmp : "/tmp";
  o->max_body = (int64_t)1 << 30;
  o->max_plain_body = (int64_t)64 << 20;
  o->max_text_part = (int64_t)1 << 20;
  o->max_connections = 256;
  o->idle_timeout = 120;
}

/* ---- server lifetime ---- */

static void server_free_now(lm_http_server *srv)
{
  free((char *)srv->opts.host);
  free((char *)srv->opts.upload_dir);
  free(srv);
}

static void server_unref(lm_http_server *srv)
{
  if (--srv->refs == 0) server_free_now(srv);
}

/* ---- requests ---- */

static void part_close(part *p)
{
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
}

static void request_free(lm_http_request *req)
{
  for (int i = 0; i < req->nheaders; i++) {
    free(req->headers[i].k);
    free(req->headers[i].v);
  }
  free(req->headers);
  for (int i = 0; i < req->nquery; i++) {
    free(req->query[i].k);
    free(req->query[i].v);
  }
  free(req->query);
  for (int i = 0; i < req->nparts; i++) {
    part *p = &req->parts[i];
    part_close(p);
    /* Uploads never outlive their request, whatever happened to it. */
    if (p->pub.path) unlink(p->pub.path);
    free((char *)p->pub.name);
    free((char *)p->pub.filename);
    free((char *)p->pub.content_type);
    free((char *)p->pub.path);
    free((char *)p->pub.data);
  }
  free(req->parts);
  if (req->pp) MHD_destroy_post_processor(req->pp);
  free(req->boundary);
  free(req->close_delim);
  free(req->body);
  free(req->method);
  free(req->path);
  free(req->version);
  if (req->reply) lm_http_response_free(req->reply);
  lm_http_server *srv = req->srv;
  free(req);
  server_unref(srv);
}

void lm_http_request_retain(lm_http_request *req)
{
  req->refs++;
}

void lm_http_request_release(lm_http_request *req)
{
  if (req && --req->refs == 0) request_free(req);
}

static bool push_kv(kv **arr, int *n, int *cap, const char *k, const char *v, bool lower)
{
  if (*n == *cap) {
    int nc = *cap ? *cap * 2 : 16;
    kv *a = realloc(*arr, (size_t)nc * sizeof *a);
    if (!a) return false;
    *arr = a;
    *cap = nc;
  }
  char *kc = strdup(k ? k : ""), *vc = strdup(v ? v : "");
  if (!kc || !vc) {
    free(kc);
    free(vc);
    return false;
  }
  if (lower)
    for (char *p = kc; *p; p++) *p = (char)tolower((unsigned char)*p);
  (*arr)[*n] = (kv){kc, vc};
  (*n)++;
  return true;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
  lm_http_request *req = cls;
  (void)kind;
  return push_kv(&req->headers, &req->nheaders, &req->capheaders, key, value, true)
             ? MHD_YES : MHD_NO;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
  lm_http_request *req = cls;
  (void)kind;
  return push_kv(&req->query, &req->nquery, &req->capquery, key, value, false)
             ? MHD_YES : MHD_NO;
}

static void format_remote(struct MHD_Connection *c, char *out, size_t outlen)
{
  snprintf(out, outlen, "unknown");
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (!ci || !ci->client_addr) return;
  char ip[INET6_ADDRSTRLEN] = "";
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(out, outlen, "%s:%u", ip, ntohs(a->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(out, outlen, "[%s]:%u", ip, ntohs(a->sin6_port));
  }
}

static lm_http_request *request_new(lm_http_server *srv, struct MHD_Connection *c,
                                    const char *url, const char *method, const char *version)
{
  lm_http_request *req = calloc(1, sizeof *req);
  if (!req) return NULL;
  req->refs = 1; /* MHD's, dropped at the completion notice */
  req->srv = srv;
  srv->refs++;
  req->conn = c;
  req->state = R_READING;
  req->method = strdup(method);
  req->path = strdup(url);
  req->version = strdup(version);
  format_remote(c, req->remote, sizeof req->remote);
  if (!req->method || !req->path || !req->version ||
      MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, req) < 0 ||
      MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_query, req) < 0) {
    request_free(req);
    return NULL;
  }
  return req;
}

/* Remember the first error; the reply is sent when the body has been read
** (or at once when `now`: the connection is then closed). */
static void reject(lm_http_request *req, int status, bool now, const char *fmt, ...)
{
  if (req->reject_status) return;
  req->reject_status = status;
  req->reject_now = now;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(req->reject_msg, sizeof req->reject_msg, fmt, ap);
  va_end(ap);
}

/* ---- the body ---- */

static const char *base_name(const char *name)
{
  const char *b = name;
  for (const char *p = name; *p; p++)
    if (*p == '/' || *p == '\\') b = p + 1;
  return b;
}

static part *part_begin(lm_http_request *req, const char *key, const char *filename,
                        const char *content_type)
{
  if (req->nparts == req->capparts) {
    int nc = req->capparts ? req->capparts * 2 : 4;
    part *a = realloc(req->parts, (size_t)nc * sizeof *a);
    if (!a) return NULL;
    req->parts = a;
    req->capparts = nc;
  }
  part *p = &req->parts[req->nparts];
  memset(p, 0, sizeof *p);
  p->fd = -1;
  req->nparts++;
  p->pub.name = strdup(key ? key : "");
  p->pub.content_type = content_type ? strdup(content_type) : NULL;
  if (!p->pub.name || (content_type && !p->pub.content_type)) return NULL;
  if (filename) {
    /* Clients send the path they were given ("test-data/image.nii.gz"). */
    const char *b = base_name(filename);
    p->pub.filename = strdup(*b ? b : "upload");
    size_t dl = strlen(req->srv->opts.upload_dir);
    char *path = malloc(dl + 32);
    if (!p->pub.filename || !path) {
      free(path);
      return NULL;
    }
    snprintf(path, dl + 32, "%s/lumen-upload-XXXXXX", req->srv->opts.upload_dir);
    p->fd = mkostemp(path, O_CLOEXEC);
    if (p->fd < 0) {
      reject(req, 500, false, "upload_dir %s: cannot create a temporary file: %s",
             req->srv->opts.upload_dir, strerror(errno));
      free(path);
      return NULL;
    }
    p->pub.path = path;
  } else {
    p->pub.data = calloc(1, 1);
    if (!p->pub.data) return NULL;
    p->cap = 1;
  }
  return p;
}

static bool write_all(int fd, const char *data, size_t size)
{
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= (size_t)n;
  }
  return true;
}

static bool text_append(part *p, const char *data, size_t size)
{
  size_t len = (size_t)p->pub.size;
  if (len + size + 1 > p->cap) {
    size_t nc = p->cap * 2 > len + size + 1 ? p->cap * 2 : len + size + 1;
    char *d = realloc((char *)p->pub.data, nc);
    if (!d) return false;
    p->pub.data = d;
    p->cap = nc;
  }
  char *d = (char *)p->pub.data;
  memcpy(d + len, data, size);
  d[len + size] = 0;
  p->pub.size += (int64_t)size;
  return true;
}

/* MHD_PostProcessor's iterator: one piece of one part's value.  A part
** starts where the offset goes back to 0. */
static enum MHD_Result on_part_data(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *filename, const char *content_type,
                                    const char *transfer_encoding, const char *data,
                                    uint64_t off, size_t size)
{
  lm_http_request *req = cls;
  (void)kind;
  (void)transfer_encoding;
  if (req->reject_status) return MHD_NO;
  part *p = req->nparts ? &req->parts[req->nparts - 1] : NULL;
  /* MHD may announce a part with an empty piece before its data. */
  bool same = p && (off > 0 || p->pub.size == 0) && strcmp(p->pub.name, key ? key : "") == 0 &&
              (p->pub.filename != NULL) == (filename != NULL);
  if (!same) {
    if (p) part_close(p);
    p = part_begin(req, key, filename, content_type);
    if (!p) {
      reject(req, 500, false, "out of memory reading multipart part '%s'", key ? key : "");
      return MHD_NO;
    }
  }
  if (size == 0) return MHD_YES;
  if (p->fd >= 0) {
    if (!write_all(p->fd, data, size)) {
      reject(req, 500, false, "upload_dir %s: cannot write %s: %s", req->srv->opts.upload_dir,
             p->pub.path, strerror(errno));
      return MHD_NO;
    }
    p->pub.size += (int64_t)size;
    return MHD_YES;
  }
  if (p->pub.size + (int64_t)size > req->srv->opts.max_text_part) {
    reject(req, 413, false, "multipart text part '%s' exceeds %lld bytes", p->pub.name,
           (long long)req->srv->opts.max_text_part);
    return MHD_NO;
  }
  if (!text_append(p, data, size)) {
    reject(req, 500, false, "out of memory reading multipart part '%s'", p->pub.name);
    return MHD_NO;
  }
  return MHD_YES;
}

/* The boundary parameter of a multipart Content-Type, unquoted, in *out
** (malloc'ed); false with a message when there is none or it cannot be
** handed to MHD as it is. */
static bool parse_boundary(lm_http_request *req, const char *ctype)
{
  const char *b = NULL;
  for (const char *p = ctype; *p; p++)
    if (strncasecmp(p, "boundary=", 9) == 0 && (p == ctype || p[-1] == ';' || p[-1] == ' ')) {
      b = p + 9;
      break;
    }
  if (!b || !*b) {
    reject(req, 400, true, "Content-Type multipart/form-data without a boundary");
    return false;
  }
  size_t len;
  const char *rest;
  if (*b == '"') {
    const char *q = strchr(b + 1, '"');
    if (!q) {
      reject(req, 400, true, "Content-Type: the boundary's quote is not closed");
      return false;
    }
    b++;
    len = (size_t)(q - b);
    rest = q + 1;
  } else {
    len = strcspn(b, ";");
    while (len > 0 && b[len - 1] == ' ') len--;
    rest = b + len;
  }
  /* MHD 0.9.75 takes everything after "boundary=" as the boundary (it only
  ** strips enclosing quotes), so a parameter after it would make every part
  ** unrecognisable and the body would parse as empty.  Refuse it clearly. */
  while (*rest == ' ') rest++;
  if (*rest) {
    reject(req, 400, true, "Content-Type: parameters after boundary= are not supported (%s)",
           ctype);
    return false;
  }
  if (len == 0 || len > 200) {
    reject(req, 400, true, "Content-Type: the multipart boundary must have 1 to 200 characters");
    return false;
  }
  req->boundary = strndup(b, len);
  if (req->boundary && asprintf(&req->close_delim, "\r\n--%s--", req->boundary) >= 0)
    req->close_len = strlen(req->close_delim);
  else
    req->close_delim = NULL;
  return req->boundary != NULL && req->close_delim != NULL;
}

/* The headers are in: decide how the body will be read, or refuse it. */
static void intake_start(lm_http_request *req)
{
  lm_http_server *srv = req->srv;
  const char *ctype = lm_http_request_header_get(req, "content-type");
  req->multipart = ctype && strncasecmp(ctype, "multipart/form-data", 19) == 0;
  int64_t limit = req->multipart ? srv->opts.max_body
                  : (srv->opts.max_plain_body < srv->opts.max_body ? srv->opts.max_plain_body
                                                                    : srv->opts.max_body);
  const char *cl = lm_http_request_header_get(req, "content-length");
  if (cl) {
    char *end;
    errno = 0;
    long long n = strtoll(cl, &end, 10);
    /* MHD has validated the number; this is the size limit only. */
    if (errno == 0 && end != cl && n > limit) {
      reject(req, 413, true, "request body of %lld bytes exceeds the limit of %lld bytes", n,
             (long long)limit);
      return;
    }
  }
  if (!req->multipart) return;
  if (!parse_boundary(req, ctype)) return;
  req->pp = MHD_create_post_processor(req->conn, PP_BUFFER, on_part_data, req);
  if (!req->pp) reject(req, 400, true, "Content-Type: cannot parse multipart/form-data (%s)", ctype);
}

/* Where the close delimiter ends in this chunk (bytes of data up to and
** including it), or 0 when it does not end here.  A delimiter that started
** in earlier chunks is found through close_tail. */
static size_t close_delimiter_end(lm_http_request *req, const char *data, size_t size)
{
  size_t n = req->close_len, tl = req->close_tail_len;
  char probe[512];
  size_t head = size < n - 1 ? size : n - 1;
  memcpy(probe, req->close_tail, tl);
  memcpy(probe + tl, data, head);
  const char *hit = memmem(probe, tl + head, req->close_delim, n);
  if (hit && (size_t)(hit - probe) + n > tl) return (size_t)(hit - probe) + n - tl;
  hit = memmem(data, size, req->close_delim, n);
  if (hit) return (size_t)(hit - data) + n;
  /* keep the last n - 1 bytes of tail + data for the next chunk */
  if (size >= n - 1) {
    memcpy(req->close_tail, data + size - (n - 1), n - 1);
    req->close_tail_len = n - 1;
  } else {
    size_t keep = tl + size > n - 1 ? n - 1 - size : tl;
    memmove(req->close_tail, req->close_tail + tl - keep, keep);
    memcpy(req->close_tail + keep, data, size);
    req->close_tail_len = keep + size;
  }
  return 0;
}

/* A multipart chunk to MHD's post processor, up to the close delimiter.
** RFC 2046 5.1.1 says an epilogue after it is to be ignored; MHD 0.9.75
** fails on one, and the AIAA Python client and MONAI Label's client end
** every body with "--B--\r\n\r\n" (one CRLF after the delimiter's own). */
static void intake_multipart(lm_http_request *req, const char *data, size_t size)
{
  if (req->epilogue) return;
  size_t end = close_delimiter_end(req, data, size);
  if (end) {
    req->epilogue = true;
    size = end;
  }
  if (MHD_post_process(req->pp, data, size) != MHD_YES)
    reject(req, 400, false, "malformed multipart/form-data body");
}

static void intake_data(lm_http_request *req, const char *data, size_t size)
{
  lm_http_server *srv = req->srv;
  req->received += (int64_t)size;
  if (req->multipart) {
    if (req->received > srv->opts.max_body) {
      reject(req, 413, true, "request body exceeds the limit of %lld bytes",
             (long long)srv->opts.max_body);
      return;
    }
    intake_multipart(req, data, size);
    return;
  }
  int64_t limit = srv->opts.max_plain_body < srv->opts.max_body ? srv->opts.max_plain_body
                                                                : srv->opts.max_body;
  if (req->received > limit) {
    reject(req, 413, true, "request body exceeds the limit of %lld bytes", (long long)limit);
    return;
  }
  if (req->body_len + size + 1 > req->body_cap) {
    size_t nc = req->body_cap ? req->body_cap * 2 : 4096;
    while (nc < req->body_len + size + 1) nc *= 2;
    char *b = realloc(req->body, nc);
    if (!b) {
      reject(req, 500, true, "out of memory reading the request body");
      return;
    }
    req->body = b;
    req->body_cap = nc;
  }
  memcpy(req->body + req->body_len, data, size);
  req->body_len += size;
  req->body[req->body_len] = 0;
}

static void intake_finish(lm_http_request *req)
{
  if (!req->multipart || req->reject_status) return;
  enum MHD_Result ok = MHD_destroy_post_processor(req->pp);
  req->pp = NULL;
  if (req->nparts) part_close(&req->parts[req->nparts - 1]);
  if (ok != MHD_YES)
    reject(req, 400, false, "malformed multipart/form-data body: truncated, or no closing "
           "boundary '--%s--'", req->boundary);
  else if (req->nparts == 0)
    reject(req, 400, false, "multipart/form-data body has no part delimited by boundary '%s'",
           req->boundary);
}

/* ---- replies through MHD ---- */

static enum MHD_Result queue_reply(lm_http_request *req, lm_http_response *resp)
{
  lm_http_server *srv = req->srv;
  int status = lm_http_response_status(resp);
  struct MHD_Response *m = lm_http_response_to_mhd(resp, srv->closing != 0);
  lm_http_response_free(resp);
  if (!m) return MHD_NO;
  enum MHD_Result r = MHD_queue_response(req->conn, (unsigned)status, m);
  MHD_destroy_response(m);
  req->state = R_REPLIED;
  return r;
}

static enum MHD_Result queue_reject(lm_http_request *req)
{
  lm_http_response *resp = lm_http_response_error(req->reject_status, req->reject_msg);
  if (!resp) return MHD_NO;
  return queue_reply(req, resp);
}

/* ---- watching a suspended request ---- */

static void handle_closed(uv_handle_t *h)
{
  lm_http_request_release(h->data);
}

static void stop_watching(lm_http_request *req)
{
  if (req->watching) {
    req->watching = false;
    uv_poll_stop(&req->sock_watch);
    uv_close((uv_handle_t *)&req->sock_watch, handle_closed);
  }
  if (req->timing) {
    req->timing = false;
    uv_timer_stop(&req->timer);
    uv_close((uv_handle_t *)&req->timer, handle_closed);
  }
}

static void list_remove(lm_http_request *req)
{
  if (req->prev) {
    req->prev->next = req->next;
    req->next->prev = req->prev;
    req->prev = req->next = NULL;
  }
}

/* Hand the connection back to MHD, which calls on_access again. */
static void resume(lm_http_request *req)
{
  lm_http_server *srv = req->srv;
  stop_watching(req);
  list_remove(req);
  req->resuming = true;
  srv->resuming++;
  MHD_resume_connection(req->conn);
  if (!srv->in_drive) drive(srv);
}

static void abort_request(lm_http_request *req, enum lm_http_abort why)
{
  lm_http_server *srv = req->srv;
  if (req->state != R_HANDLING) return;
  req->state = R_ABORTED;
  req->aborted = true;
  srv->inflight--;
  if (why == LM_HTTP_TIMEOUT)
    req->reply = lm_http_response_error(504, "the request took longer than the server's timeout");
  /* The user is told before the connection moves on, and keeps its
  ** reference. */
  lm_http_request_retain(req);
  resume(req);
  if (srv->opts.on_abort) srv->opts.on_abort(req, why, srv->opts.userdata);
  lm_http_request_release(req);
}

static void on_socket(uv_poll_t *h, int status, int events)
{
  lm_http_request *req = h->data;
  char c;
  uv_os_fd_t fd = -1;
  uv_fileno((uv_handle_t *)h, &fd);
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  int e = errno;
  if (status < 0 || n == 0 || (n < 0 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR) ||
      (n > 0 && (events & UV_DISCONNECT))) {
    req->gone = true;
    abort_request(req, LM_HTTP_GONE);
    return;
  }
  /* Bytes of a next (pipelined) request: MHD reads them later; only a hang-up
  ** matters now, and watching for input would spin. */
  if (n > 0) uv_poll_start(h, UV_DISCONNECT, on_socket);
}

static void on_request_timeout(uv_timer_t *t)
{
  abort_request(t->data, LM_HTTP_TIMEOUT);
}

static void start_watching(lm_http_request *req)
{
  lm_http_server *srv = req->srv;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci && uv_poll_init(srv->loop, &req->sock_watch, ci->connect_fd) == 0) {
    req->sock_watch.data = req;
    req->refs++; /* until handle_closed */
    req->watching = true;
    uv_poll_start(&req->sock_watch, UV_READABLE | UV_DISCONNECT, on_socket);
  }
  if (srv->opts.timeout > 0 && uv_timer_init(srv->loop, &req->timer) == 0) {
    req->timer.data = req;
    req->refs++;
    req->timing = true;
    uv_timer_start(&req->timer, on_request_timeout, (uint64_t)(srv->opts.timeout * 1000.0), 0);
  }
}

/* ---- MHD callbacks ---- */

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
  lm_http_server *srv = cls;
  lm_http_request *req = *con_cls;
  if (!req) {
    req = request_new(srv, c, url, method, version);
    if (!req) return MHD_NO;
    *con_cls = req;
    srv->active++;
    intake_start(req);
    /* Refused from the headers alone: answer before the body is sent (no
    ** 100 Continue is sent then). */
    if (req->reject_status) return queue_reject(req);
    return MHD_YES;
  }
  if (req->resuming) {
    req->resuming = false;
    srv->resuming--;
  }
  switch (req->state) {
  case R_READING:
    if (*upload_data_size) {
      if (!req->reject_status) intake_data(req, upload_data, *upload_data_size);
      *upload_data_size = 0;
      /* MHD 0.9.75 accepts no reply while the body is arriving; dropping
      ** the connection is the answer to a body that will not stop. */
      if (req->reject_status && req->reject_now) return MHD_NO;
      return MHD_YES;
    }
    intake_finish(req);
    if (req->reject_status) return queue_reject(req);
    req->state = R_READY;
    MHD_suspend_connection(c);
    if (srv->ready_tail) srv->ready_tail->next = req;
    else srv->ready_head = req;
    srv->ready_tail = req;
    return MHD_YES;
  case R_ANSWERED:
  case R_ABORTED: {
    lm_http_response *resp = req->reply;
    req->reply = NULL;
    if (!resp) return MHD_NO; /* gone or shut down: close without a reply */
    return queue_reply(req, resp);
  }
  default:
    return MHD_YES;
  }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  lm_http_server *srv = cls;
  lm_http_request *req = *con_cls;
  (void)c;
  (void)toe;
  if (!req) return;
  *con_cls = NULL;
  if (req->pp) {
    MHD_destroy_post_processor(req->pp);
    req->pp = NULL;
  }
  for (int i = 0; i < req->nparts; i++) part_close(&req->parts[i]);
  if (req->resuming) {
    req->resuming = false;
    srv->resuming--;
  }
  req->conn = NULL;
  srv->active--;
  lm_http_request_release(req);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  (void)cls;
  /* MHD reports protocol errors of clients here; they are answered by MHD
  ** itself and are not the server's failures.  Kept for debugging only. */
  if (getenv("LUMEN_HTTP_DEBUG")) {
    fprintf(stderr, "lumen http: ");
    vfprintf(stderr, fmt, ap);
  }
}

/* ---- driving MHD from the loop ---- */

static void server_handle_closed(uv_handle_t *h);

static void on_timer(uv_timer_t *t)
{
  drive(t->data);
}

static void on_epoll(uv_poll_t *h, int status, int events)
{
  (void)status;
  (void)events;
  drive(h->data);
}

static void arm_timer(lm_http_server *srv)
{
  if (!srv->daemon) return;
  MHD_UNSIGNED_LONG_LONG ms = 0;
  if (MHD_get_timeout(srv->daemon, &ms) == MHD_YES)
    uv_timer_start(&srv->timer, on_timer, (uint64_t)ms, 0);
  else
    uv_timer_stop(&srv->timer);
}

static void dispatch_ready(lm_http_server *srv)
{
  while (srv->ready_head) {
    lm_http_request *req = srv->ready_head;
    srv->ready_head = req->next;
    if (!srv->ready_head) srv->ready_tail = NULL;
    req->next = NULL;
    if (srv->closing == CLOSE_FORCED) {
      /* Never shown to the user: just let MHD close the connection. */
      req->state = R_ABORTED;
      resume(req);
      continue;
    }
    req->state = R_HANDLING;
    srv->inflight++;
    /* Link into the list of handled requests (for a forced stop). */
    req->next = srv->handling.next;
    req->prev = &srv->handling;
    srv->handling.next->prev = req;
    srv->handling.next = req;
    start_watching(req);
    req->refs++; /* the user's */
    srv->opts.on_request(req, srv->opts.userdata);
  }
}

static void drive(lm_http_server *srv)
{
  if (srv->in_drive || !srv->daemon) return;
  srv->in_drive = true;
  srv->refs++; /* a callback may free the server's last owner */
  for (int round = 0; srv->daemon && round < 64; round++) {
    srv->in_mhd = true;
    MHD_run(srv->daemon);
    srv->in_mhd = false;
    if (!srv->ready_head) break;
    dispatch_ready(srv);
    /* A reply given at once resumed its connection: run MHD again. */
    if (!srv->resuming) break;
  }
  srv->in_drive = false;
  maybe_stop(srv);
  arm_timer(srv);
  server_unref(srv);
}

/* ---- start, close, stop ---- */

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                   char *err, size_t errlen)
{
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  int rc = getaddrinfo(host, portstr, &hints, &res);
  if (rc != 0 || !res) {
    lm_http_set_err(err, errlen, "host '%s': %s", host, rc ? gai_strerror(rc) : "no address");
    return -EINVAL;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

int lm_http_server_start(uv_loop_t *loop, const lm_http_options *opts, lm_http_server **out,
                         char *err, size_t errlen)
{
  *out = NULL;
  if (!opts->on_request) {
    lm_http_set_err(err, errlen, "on_request: a request callback is required");
    return -EINVAL;
  }
  if (opts->port < 0 || opts->port > 65535) {
    lm_http_set_err(err, errlen, "port %d: not in 0..65535", opts->port);
    return -EINVAL;
  }
  if (opts->max_body <= 0 || opts->max_plain_body <= 0 || opts->max_text_part <= 0 ||
      opts->max_connections <= 0 || opts->timeout < 0 || opts->idle_timeout < 0) {
    lm_http_set_err(err, errlen, "max_body, max_connections and the timeouts must be positive");
    return -EINVAL;
  }
  lm_http_server *srv = calloc(1, sizeof *srv);
  if (!srv) return -ENOMEM;
  srv->loop = loop;
  srv->refs = 1;
  srv->opts = *opts;
  srv->opts.host = strdup(opts->host ? opts->host : "127.0.0.1");
  srv->opts.upload_dir = strdup(opts->upload_dir ? opts->upload_dir : "/tmp");
  srv->handling.next = srv->handling.prev = &srv->handling;
  if (!srv->opts.host || !srv->opts.upload_dir) {
    server_free_now(srv);
    return -ENOMEM;
  }
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (opts->no_listen) {
    flags |= MHD_USE_NO_LISTEN_SOCKET;
  } else {
    int st = resolve(srv->opts.host, opts->port, &ss, &sslen, err, errlen);
    if (st < 0) {
      server_free_now(srv);
      return st;
    }
    if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  }
  struct MHD_OptionItem sock_opt[] = {
    {opts->no_listen ? MHD_OPTION_END : MHD_OPTION_SOCK_ADDR, 0, &ss},
    {MHD_OPTION_END, 0, NULL}
  };
  srv->daemon = MHD_start_daemon(
      flags, (uint16_t)opts->port, NULL, NULL, on_access, srv,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)opts->max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opts->idle_timeout,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
      MHD_OPTION_ARRAY, sock_opt,
      MHD_OPTION_END);
  if (!srv->daemon) {
    int e = errno ? errno : EADDRINUSE;
    lm_http_set_err(err, errlen, "cannot listen on %s port %d: %s", srv->opts.host, opts->port,
            strerror(e));
    server_free_now(srv);
    return -e;
  }
  if (!opts->no_listen) {
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : opts->port;
  }
  const union MHD_DaemonInfo *ei = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  uv_timer_init(loop, &srv->timer);
  srv->timer.data = srv;
  if (!ei || uv_poll_init(loop, &srv->epoll_watch, ei->epoll_fd) != 0) {
    lm_http_set_err(err, errlen, "cannot watch the HTTP daemon's epoll descriptor from the loop");
    MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    /* The timer is a loop handle now: freed by its close callback. */
    srv->handles_open = 1;
    srv->owner_gone = true;
    uv_close((uv_handle_t *)&srv->timer, server_handle_closed);
    return -EIO;
  }
  srv->epoll_watch.data = srv;
  srv->handles_open = 2;
  uv_poll_start(&srv->epoll_watch, UV_READABLE, on_epoll);
  arm_timer(srv);
  *out = srv;
  return 0;
}

int lm_http_server_port(const lm_http_server *srv)
{
  return srv->port;
}

int lm_http_server_inflight(const lm_http_server *srv)
{
  return srv->inflight;
}

int lm_http_server_connections(const lm_http_server *srv)
{
  if (!srv->daemon) return 0;
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  return di ? (int)di->num_connections : 0;
}

int lm_http_server_add_fd(lm_http_server *srv, int fd, const struct sockaddr *addr,
                          size_t addrlen)
{
  if (!srv->daemon || srv->closing) {
    close(fd);
    return -ECANCELED;
  }
  if (MHD_add_connection(srv->daemon, fd, addr, (socklen_t)addrlen) != MHD_YES) {
    /* MHD closes the socket when it refuses it. */
    return -EIO;
  }
  if (!srv->in_drive) drive(srv);
  return 0;
}

static void server_handle_closed(uv_handle_t *h)
{
  lm_http_server *srv = h->data;
  if (--srv->handles_open > 0) return;
  srv->closed = true;
  srv->refs++;
  if (srv->done) srv->done(srv, srv->done_ud);
  /* The owner's reference goes here if it freed the server while it was
  ** closing (the temporary one above keeps refs positive until then). */
  if (srv->owner_gone) srv->refs--;
  server_unref(srv);
}

static void stop_now(lm_http_server *srv)
{
  /* libuv must stop watching the epoll descriptor before MHD closes it. */
  uv_poll_stop(&srv->epoll_watch);
  uv_timer_stop(&srv->timer);
  MHD_stop_daemon(srv->daemon);
  srv->daemon = NULL;
  srv->stopped = true;
  uv_close((uv_handle_t *)&srv->epoll_watch, server_handle_closed);
  uv_close((uv_handle_t *)&srv->timer, server_handle_closed);
}

/* A closing server stops once MHD has no request left in progress and no
** suspended connection (stopping MHD with one is an API violation). */
static void maybe_stop(lm_http_server *srv)
{
  if (!srv->closing || !srv->daemon || srv->in_drive) return;
  if (srv->inflight > 0 || srv->ready_head || srv->resuming > 0) return;
  if (srv->closing == CLOSE_GRACEFUL && srv->active > 0) return;
  stop_now(srv);
}

void lm_http_server_close(lm_http_server *srv, lm_http_closed_cb done, void *userdata)
{
  srv->done = done;
  srv->done_ud = userdata;
  if (srv->closing) return;
  srv->closing = CLOSE_GRACEFUL;
  if (srv->daemon) {
    MHD_socket lfd = MHD_quiesce_daemon(srv->daemon);
    /* MHD leaves the listening socket to its caller: closed now, so new
    ** connections are refused rather than left waiting. */
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
  }
  maybe_stop(srv);
  if (srv->daemon && !srv->in_drive) arm_timer(srv);
}

void lm_http_server_stop(lm_http_server *srv, lm_http_closed_cb done, void *userdata)
{
  lm_http_server_close(srv, done, userdata);
  srv->closing = CLOSE_FORCED;
  if (!srv->daemon) return;
  srv->refs++;
  while (srv->handling.next != &srv->handling)
    abort_request(srv->handling.next, LM_HTTP_SHUTDOWN);
  if (!srv->in_drive) {
    /* Let MHD see the resumed connections and close them; then stop. */
    for (int i = 0; i < 16 && srv->daemon && (srv->resuming > 0 || srv->ready_head); i++)
      drive(srv);
    maybe_stop(srv);
  }
  server_unref(srv);
}

bool lm_http_server_closed(const lm_http_server *srv)
{
  return srv->closed;
}

void lm_http_server_free(lm_http_server *srv)
{
  if (!srv) return;
  if (!srv->closing) lm_http_server_stop(srv, NULL, NULL);
  srv->done = NULL; /* the owner is gone: nobody to tell */
  if (srv->closed) server_unref(srv);
  else srv->owner_gone = true;
}

/* ---- request accessors ---- */

const char *lm_http_request_method(const lm_http_request *req) { return req->method; }
const char *lm_http_request_path(const lm_http_request *req) { return req->path; }
const char *lm_http_request_version(const lm_http_request *req) { return req->version; }
const char *lm_http_request_remote(const lm_http_request *req) { return req->remote; }
int lm_http_request_header_count(const lm_http_request *req) { return req->nheaders; }
int lm_http_request_query_count(const lm_http_request *req) { return req->nquery; }
bool lm_http_request_is_multipart(const lm_http_request *req) { return req->multipart; }
int lm_http_request_part_count(const lm_http_request *req) { return req->nparts; }
bool lm_http_request_gone(const lm_http_request *req) { return req->gone; }
void lm_http_request_set_userdata(lm_http_request *req, void *ud) { req->userdata = ud; }
void *lm_http_request_userdata(const lm_http_request *req) { return req->userdata; }

bool lm_http_request_finished(const lm_http_request *req)
{
  return req->state != R_HANDLING;
}

void lm_http_request_header(const lm_http_request *req, int i, const char **name,
                            const char **value)
{
  *name = req->headers[i].k;
  *value = req->headers[i].v;
}

void lm_http_request_query(const lm_http_request *req, int i, const char **key,
                           const char **value)
{
  *key = req->query[i].k;
  *value = req->query[i].v;
}

const char *lm_http_request_header_get(const lm_http_request *req, const char *name)
{
  for (int i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].k, name) == 0) return req->headers[i].v;
  return NULL;
}

const char *lm_http_request_body(const lm_http_request *req, size_t *len)
{
  if (req->multipart) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = req->body_len;
  return req->body ? req->body : "";
}

const lm_http_part *lm_http_request_part(const lm_http_request *req, int i)
{
  return i >= 0 && i < req->nparts ? &req->parts[i].pub : NULL;
}

/* ---- answering ---- */

int lm_http_respond(lm_http_request *req, lm_http_response *resp)
{
  if (req->aborted) {
    lm_http_response_free(resp);
    return -ECANCELED;
  }
  if (req->state != R_HANDLING) {
    lm_http_response_free(resp);
    return -EALREADY;
  }
  lm_http_server *srv = req->srv;
  req->reply = resp;
  req->state = R_ANSWERED;
  srv->inflight--;
  resume(req);
  return 0;
}
