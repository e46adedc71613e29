/* The HTTP transport's C API (lua/src/http.h) without Lua: requests over a
 * socketpair (no listening socket), replies given later from the loop, a
 * client that goes away, graceful close, and the reply builders' checks. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "tap.h"

static uv_loop_t loop;
static lm_http_request *held[4];
static int nheld, naborted, nclosed;
static enum lm_http_abort last_abort;
static char upload_dir[64];

/* Keep requests to answer them later, as the Lua binding does. */
static void on_request(lm_http_request *req, void *ud)
{
  (void)ud;
  held[nheld++] = req;
}

static void on_abort(lm_http_request *req, enum lm_http_abort why, void *ud)
{
  (void)req;
  (void)ud;
  naborted++;
  last_abort = why;
}

static void on_closed(lm_http_server *srv, void *ud)
{
  (void)srv;
  (void)ud;
  nclosed++;
}

static lm_http_server *start(void)
{
  lm_http_options o;
  lm_http_options_init(&o);
  o.no_listen = true;
  o.upload_dir = upload_dir;
  o.on_request = on_request;
  o.on_abort = on_abort;
  lm_http_server *srv = NULL;
  char err[256] = "";
  int st = lm_http_server_start(&loop, &o, &srv, err, sizeof err);
  if (st != 0) printf("# start: %s\n", err);
  return srv;
}

/* A client connection: the peer end of a socketpair given to the server. */
static int connect_client(lm_http_server *srv)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return -1;
  struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(1234)};
  peer.sin_addr.s_addr = htonl(0x7f000001);
  if (lm_http_server_add_fd(srv, sv[0], (struct sockaddr *)&peer, sizeof peer) != 0) return -1;
  return sv[1];
}

static void turn(int n)
{
  for (int i = 0; i < n; i++) uv_run(&loop, UV_RUN_NOWAIT);
}

/* Read what has arrived on fd (after turning the loop) into buf. */
static size_t read_reply(int fd, char *buf, size_t cap)
{
  size_t got = 0;
  for (int i = 0; i < 200; i++) {
    turn(1);
    ssize_t n;
    while (got < cap - 1 && (n = read(fd, buf + got, cap - 1 - got)) > 0) got += (size_t)n;
  }
  buf[got] = 0;
  return got;
}

static void test_request_and_late_reply(void)
{
  lm_http_server *srv = start();
  CHECK(srv != NULL);
  int fd = connect_client(srv);
  const char *body = "--b\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{}\r\n"
                     "--b\r\nContent-Disposition: form-data; name=\"image\"; "
                     "filename=\"dir/x.nii\"\r\n\r\nABCDEF\r\n--b--\r\n";
  char req[512];
  snprintf(req, sizeof req, "POST /v1/x%%20y?model=m&flag HTTP/1.1\r\nHost: h\r\nX-Thing: 1\r\n"
           "Content-Type: multipart/form-data; boundary=\"b\"\r\nContent-Length: %zu\r\n\r\n%s",
           strlen(body), body);
  CHECK_INT(write(fd, req, strlen(req)), (long long)strlen(req));
  for (int i = 0; i < 100 && nheld == 0; i++) turn(1);
  CHECK_INT(nheld, 1);
  if (nheld != 1) return;
  lm_http_request *r = held[0];
  CHECK_STR(lm_http_request_method(r), "POST");
  CHECK_STR(lm_http_request_path(r), "/v1/x y");
  CHECK_STR(lm_http_request_remote(r), "127.0.0.1:1234");
  CHECK_STR(lm_http_request_header_get(r, "x-thing"), "1");
  CHECK_INT(lm_http_request_query_count(r), 2);
  CHECK_INT(lm_http_request_part_count(r), 2);
  const lm_http_part *img = lm_http_request_part(r, 1);
  CHECK_STR(img->filename, "x.nii");
  CHECK_INT(img->size, 6);
  struct stat st;
  CHECK(stat(img->path, &st) == 0 && st.st_size == 6);
  char *path = strdup(img->path);
  CHECK_INT(lm_http_server_inflight(srv), 1);
  /* Nothing is sent while the request is handled. */
  char buf[4096];
  CHECK_INT(read_reply(fd, buf, sizeof buf), 0);
  lm_http_response *resp = lm_http_response_new(201);
  CHECK_INT(lm_http_response_part(resp, "params", NULL, "application/json", "{\"a\":1}", 7, NULL,
                                  NULL, 0), 0);
  CHECK_INT(lm_http_response_part(resp, "image", "out.nii", NULL, NULL, 0, img->path, NULL, 0), 0);
  CHECK_INT(lm_http_respond(r, resp), 0);
  CHECK_INT(lm_http_respond(r, lm_http_response_new(200)), -EALREADY);
  lm_http_request_release(r);
  size_t n = read_reply(fd, buf, sizeof buf);
  CHECK(n > 0);
  CHECK_CONTAINS(buf, "HTTP/1.1 201");
  CHECK_CONTAINS(buf, "multipart/form-data; boundary=lumen-");
  CHECK_CONTAINS(buf, "filename=\"out.nii\"");
  CHECK_CONTAINS(buf, "ABCDEF");
  /* The Content-Length is the body's exact size. */
  const char *cl = strcasestr(buf, "Content-Length: ");
  const char *start = strstr(buf, "\r\n\r\n");
  CHECK(cl && start && (size_t)atol(cl + 16) == n - (size_t)(start + 4 - buf));
  close(fd);
  for (int i = 0; i < 100 && lm_http_server_connections(srv) > 0; i++) turn(1);
  CHECK(access(path, F_OK) != 0); /* the upload went with its request */
  free(path);
  lm_http_server_close(srv, on_closed, NULL);
  for (int i = 0; i < 100 && !nclosed; i++) turn(1);
  CHECK_INT(nclosed, 1);
  lm_http_server_free(srv);
  nheld = 0;
  nclosed = 0;
}

static void test_client_gone_and_close(void)
{
  lm_http_server *srv = start();
  int fd = connect_client(srv);
  const char *req = "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK_INT(write(fd, req, strlen(req)), (long long)strlen(req));
  for (int i = 0; i < 100 && nheld == 0; i++) turn(1);
  CHECK_INT(nheld, 1);
  if (nheld != 1) return;
  /* Closing waits for the request in flight. */
  lm_http_server_close(srv, on_closed, NULL);
  turn(20);
  CHECK_INT(nclosed, 0);
  close(fd);
  for (int i = 0; i < 100 && naborted == 0; i++) turn(1);
  CHECK_INT(naborted, 1);
  CHECK_INT(last_abort, LM_HTTP_GONE);
  CHECK(lm_http_request_gone(held[0]));
  CHECK_INT(lm_http_respond(held[0], lm_http_response_new(200)), -ECANCELED);
  CHECK_INT(lm_http_server_inflight(srv), 0);
  for (int i = 0; i < 100 && !nclosed; i++) turn(1);
  CHECK_INT(nclosed, 1);
  CHECK(lm_http_server_closed(srv));
  /* The request outlives its server and its connection. */
  lm_http_server_free(srv);
  CHECK_STR(lm_http_request_path(held[0]), "/slow");
  lm_http_request_release(held[0]);
  nheld = 0;
}

static void test_forced_stop(void)
{
  lm_http_server *srv = start();
  int fd = connect_client(srv);
  const char *req = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK_INT(write(fd, req, strlen(req)), (long long)strlen(req));
  for (int i = 0; i < 100 && nheld == 0; i++) turn(1);
  CHECK_INT(nheld, 1);
  naborted = 0;
  lm_http_server_free(srv); /* stops at once: the request is aborted */
  CHECK_INT(naborted, 1);
  CHECK_INT(last_abort, LM_HTTP_SHUTDOWN);
  turn(5);
  if (nheld == 1) lm_http_request_release(held[0]);
  nheld = 0;
  char c;
  ssize_t n = read(fd, &c, 1);
  CHECK_INT(n, 0); /* closed without a reply */
  close(fd);
}

static void test_response_checks(void)
{
  lm_http_response *r = lm_http_response_new(200);
  char err[256];
  CHECK_INT(lm_http_response_header(r, "X-A", "b\r\nInjected: 1", err, sizeof err), -EINVAL);
  CHECK_INT(lm_http_response_header(r, "Content-Length", "5", err, sizeof err), -EINVAL);
  CHECK_INT(lm_http_response_header(r, "Bad Name", "v", err, sizeof err), -EINVAL);
  CHECK_INT(lm_http_response_file(r, "/nonexistent/file", NULL, NULL, err, sizeof err), -ENOENT);
  CHECK_CONTAINS(err, "/nonexistent/file");
  CHECK_INT(lm_http_response_part(r, "p", NULL, NULL, "x", 1, NULL, err, sizeof err), 0);
  CHECK_INT(lm_http_response_file(r, "/etc/hostname", NULL, NULL, err, sizeof err), -EINVAL);
  lm_http_response_free(r);
  CHECK(lm_http_response_new(42) == NULL);
  char q[64];
  lm_http_json_quote("a\"b\\c\n\x01", q, sizeof q);
  CHECK_STR(q, "\"a\\\"b\\\\c\\n\\u0001\"");
  lm_http_json_quote("abcdef\"\"\"", q, 10); /* truncated, never inside an escape */
  CHECK_STR(q, "\"abcdef\"");
}

int main(void)
{
  uv_loop_init(&loop);
  snprintf(upload_dir, sizeof upload_dir, "/tmp/lumen-test-http-XXXXXX");
  if (!mkdtemp(upload_dir)) TAP_SKIP_ALL("cannot make a temporary folder");
  RUN(test_request_and_late_reply);
  RUN(test_client_gone_and_close);
  RUN(test_forced_stop);
  RUN(test_response_checks);
  turn(5);
  rmdir(upload_dir);
  uv_loop_close(&loop);
  TAP_DONE();
}
