/*
** http.h: the HTTP transport of `lumen serve`.
**
** libmicrohttpd (MHD) parses the requests; this layer drives it from a libuv
** loop and gives its user (the Lua binding, lua/src/http_lua.c, or a C
** program such as the fuzz harness) whole requests and a way to answer them
** later.  No lua.h here.
**
** How it runs.  MHD is started with MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME
** and no thread of its own.  Its epoll descriptor is watched with a
** uv_poll_t and a uv_timer_t is armed from MHD_get_timeout() after every
** MHD_run(), so everything happens on the loop thread.  A request is read
** completely (headers, then the body: multipart/form-data through
** MHD_PostProcessor, file parts streamed to temporary files, anything else
** into memory), then its connection is suspended and the request is handed
** to the request callback.  The user answers with lm_http_respond() whenever
** it likes (from the same loop); the connection is then resumed and MHD sends
** the reply.  While the connection is suspended its socket is watched, so a
** client that goes away is noticed at once (the abort callback says so).
**
** Rules that hold for every function below:
**
**  1. Everything is called on the thread that runs the loop given to
**     lm_http_server_start().  Nothing blocks but lm_http_server_start()
**     (it binds the socket and resolves the host name).
**  2. Functions returning int return 0 on success or a negative errno value
**     (-EINVAL, -ENOMEM, -ENOENT, ...); when an `err` buffer is taken, a
**     message naming the field or the file is written there on failure.
**  3. Strings passed in are copied; strings returned are borrowed and live as
**     long as the object they come from.
**  4. Replies always carry Content-Length; nothing is sent chunked (the AIAA
**     Python client parses multipart replies from the raw socket, see
**     ../shared/docs/aiaa-api.md 1.3).
*/
#ifndef LM_HTTP_H
#define LM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct lm_http_server lm_http_server;
typedef struct lm_http_request lm_http_request;
typedef struct lm_http_response lm_http_response;

/*
** Why a request was taken away from its user before it was answered.
*/
enum lm_http_abort {
  LM_HTTP_GONE = 1,    /* the client closed its connection */
  LM_HTTP_TIMEOUT = 2, /* the per-request timeout expired; 504 was sent */
  LM_HTTP_SHUTDOWN = 3 /* the server was stopped (lm_http_server_stop) */
};

/*
** Callbacks.  Each gets the `userdata` of lm_http_options.
**
** on_request: a request has arrived whole.  The callee owns one reference to
**   it: it must eventually call lm_http_respond() (unless the request was
**   aborted meanwhile) and lm_http_request_release().  Called from the loop,
**   never from inside MHD's own callbacks, so it may respond at once, start
**   other requests' replies or close the server.
** on_abort: the request's client is gone, its timeout expired or the server
**   is stopping; the request will not be answered by the user any more
**   (lm_http_respond returns -ECANCELED).  The user still holds its
**   reference and releases it when it is done with the request.  Called at
**   most once per request, never for requests already answered.
** on_closed: the server has stopped: no connection is left and the loop
**   handles are closed.  The server may be freed from here on.
*/
typedef void (*lm_http_request_cb)(lm_http_request *req, void *userdata);
typedef void (*lm_http_abort_cb)(lm_http_request *req, enum lm_http_abort why,
                                 void *userdata);
typedef void (*lm_http_closed_cb)(lm_http_server *srv, void *userdata);

/*
** Server options; lm_http_options_init() fills in the defaults shown.
*/
typedef struct lm_http_options {
  const char *host;         /* "127.0.0.1": an IPv4 or IPv6 address or a name */
  int port;                 /* 0: an ephemeral port (lm_http_server_port) */
  const char *upload_dir;   /* $TMPDIR, else "/tmp": where file parts go */
  int64_t max_body;         /* 1 GiB: most bytes of a request body (413) */
  int64_t max_plain_body;   /* 64 MiB: same, for bodies kept in memory
                               (not multipart); the smaller limit applies */
  int64_t max_text_part;    /* 1 MiB: most bytes of one multipart text part */
  double timeout;           /* 0 (none): seconds a request may take from
                               dispatch to reply; then 504 and on_abort */
  int max_connections;      /* 256: connections MHD accepts at once */
  int idle_timeout;         /* 120: seconds of silence before MHD drops a
                               connection (not while a request is handled) */
  bool no_listen;           /* false: true starts no listening socket; the
                               connections come from lm_http_server_add_fd */
  lm_http_request_cb on_request; /* required */
  lm_http_abort_cb on_abort;     /* optional */
  void *userdata;
} lm_http_options;

/* Fill *opts with the defaults (environment read for upload_dir). */
void lm_http_options_init(lm_http_options *opts);

/*
** Start a server on `loop` with `opts` (copied).  On success *out is the
** server, listening (unless opts->no_listen) and driven by the loop; on
** failure *out is NULL and err says why (the host, the port, the option).
*/
int lm_http_server_start(uv_loop_t *loop, const lm_http_options *opts,
                         lm_http_server **out, char *err, size_t errlen);

/* The port the server listens on (the ephemeral one when opts.port was 0);
** 0 when it does not listen. */
int lm_http_server_port(const lm_http_server *srv);

/* Requests handed to on_request and not yet answered or aborted. */
int lm_http_server_inflight(const lm_http_server *srv);

/* Connections MHD holds open (0 once stopped). */
int lm_http_server_connections(const lm_http_server *srv);

/* Serve one more connection on the connected socket `fd` (taken over: the
** server closes it).  `addr` is the peer's address as accept() gives it.
** Used with no_listen, by tests and the fuzz harness. */
int lm_http_server_add_fd(lm_http_server *srv, int fd,
                          const struct sockaddr *addr, size_t addrlen);

/*
** Graceful close: stop accepting connections at once (MHD_quiesce_daemon:
** new connections are refused), let the requests that have started finish,
** then stop MHD (idle keep-alive connections are closed) and close the loop
** handles; `done` (optional) is called when that is over.  Returns at once.
** A second call only replaces the callback.
*/
void lm_http_server_close(lm_http_server *srv, lm_http_closed_cb done,
                          void *userdata);

/*
** Forced stop: like lm_http_server_close, but requests that are still being
** handled are aborted (on_abort with LM_HTTP_SHUTDOWN) and their
** connections closed without a reply.  For process exit and finalizers.
*/
void lm_http_server_stop(lm_http_server *srv, lm_http_closed_cb done,
                         void *userdata);

/* Has the server finished closing (on_closed called or due)? */
bool lm_http_server_closed(const lm_http_server *srv);

/* Give up the server: an open one is stopped (lm_http_server_stop), a
** closing one is freed when it has closed (its callback is no longer
** called), a closed one at once.  Requests still referenced stay valid. */
void lm_http_server_free(lm_http_server *srv);

/*
** A request.  Everything below stays valid until the last reference is
** released, also after the client went away and after the server stopped.
*/
typedef struct lm_http_part {
  const char *name;         /* the form field name ("" if none was given) */
  const char *filename;     /* file parts: basename of the sent filename;
                               NULL for text parts */
  const char *content_type; /* as sent, or NULL */
  const char *path;         /* file parts: the temporary file (removed when
                               the request is freed); NULL for text parts */
  const char *data;         /* text parts: the value (NUL-terminated too) */
  int64_t size;             /* bytes of the value or of the file */
} lm_http_part;

/* Take one more reference / drop one.  The last release frees the request
** and removes its temporary files. */
void lm_http_request_retain(lm_http_request *req);
void lm_http_request_release(lm_http_request *req);

const char *lm_http_request_method(const lm_http_request *req);  /* "GET" */
const char *lm_http_request_path(const lm_http_request *req);    /* decoded, no query */
const char *lm_http_request_version(const lm_http_request *req); /* "HTTP/1.1" */
const char *lm_http_request_remote(const lm_http_request *req);  /* "ip:port", "[ip6]:port" */

/* Header i (0 <= i < count) with its name in lower case; query argument i
** (decoded; a key without '=' has value ""). */
int lm_http_request_header_count(const lm_http_request *req);
void lm_http_request_header(const lm_http_request *req, int i,
                            const char **name, const char **value);
int lm_http_request_query_count(const lm_http_request *req);
void lm_http_request_query(const lm_http_request *req, int i,
                           const char **key, const char **value);
/* The value of the header `name` (any case), or NULL. */
const char *lm_http_request_header_get(const lm_http_request *req,
                                       const char *name);

/* The body of a request that was not multipart/form-data (NUL-terminated
** too; "" with *len 0 when there was none).  NULL for multipart requests. */
const char *lm_http_request_body(const lm_http_request *req, size_t *len);

/* Is the body multipart/form-data?  Its parts, in the order they came. */
bool lm_http_request_is_multipart(const lm_http_request *req);
int lm_http_request_part_count(const lm_http_request *req);
const lm_http_part *lm_http_request_part(const lm_http_request *req, int i);

/* Has the client gone away (noticed while the request was handled)? */
bool lm_http_request_gone(const lm_http_request *req);
/* Has the request been answered or aborted (no more lm_http_respond)? */
bool lm_http_request_finished(const lm_http_request *req);

/* The user's pointer for this request (NULL at first). */
void lm_http_request_set_userdata(lm_http_request *req, void *ud);
void *lm_http_request_userdata(const lm_http_request *req);

/*
** Responses.  A response is built, then given to lm_http_respond(), which
** takes it over whatever it returns.  It carries one of: a body (the
** default, empty), a file, or multipart/form-data parts.
*/

/* A new response with HTTP status `status` (100..999); NULL without memory. */
lm_http_response *lm_http_response_new(int status);
/* Free a response that was not given to lm_http_respond. */
void lm_http_response_free(lm_http_response *resp);

/* Add a header.  Content-Length and Transfer-Encoding are refused (-EINVAL):
** the length is always computed here.  A Content-Type replaces the one a
** file or multipart response would carry. */
int lm_http_response_header(lm_http_response *resp, const char *name,
                            const char *value, char *err, size_t errlen);
/* Set the body (copied). */
int lm_http_response_body(lm_http_response *resp, const void *data, size_t len);
/* Send the file at `path` as the body (opened now, so a missing file is an
** error here); content_type defaults to application/octet-stream, filename
** (optional) goes into Content-Disposition. */
int lm_http_response_file(lm_http_response *resp, const char *path,
                          const char *content_type, const char *filename,
                          char *err, size_t errlen);
/* Append a multipart/form-data part: its value is `data` (copied) when
** `path` is NULL, else the file at `path` (opened now).  `filename` makes it
** a file part (and defaults to the basename of path when path is given);
** content_type is optional (file parts default to application/octet-stream).
** The reply gets a boundary that occurs in no part and an exact
** Content-Length. */
int lm_http_response_part(lm_http_response *resp, const char *name,
                          const char *filename, const char *content_type,
                          const void *data, size_t len, const char *path,
                          char *err, size_t errlen);

/* A response with status and body {"error": "<msg>"} (msg JSON-escaped,
** Content-Type application/json). */
lm_http_response *lm_http_response_error(int status, const char *msg);

/*
** Answer req with resp (taken over, freed here in every case) and resume
** its connection.  -ECANCELED when the request was aborted meanwhile (gone,
** timed out, server stopped), -EALREADY when it was answered before.
*/
int lm_http_respond(lm_http_request *req, lm_http_response *resp);

/* Write s into buf as a JSON string (with quotes), truncating to fit (never
** inside an escape); returns the length written. */
size_t lm_http_json_quote(const char *s, char *buf, size_t buflen);

#endif
