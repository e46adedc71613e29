/* libFuzzer harness: the HTTP transport (lua/src/http.c, http_response.c)
 * on bytes from a client.  The input is what a client sends on one
 * connection; it reaches MHD through a socketpair (lm_http_server_add_fd,
 * no listening socket), and the transport reads headers, query and body,
 * multipart bodies through MHD_PostProcessor into text parts and temporary
 * files.  The request callback answers at once, alternating the reply kinds
 * (body, multipart with a file part, file).
 *
 * Besides not crashing, it checks what the transport promises: every file
 * part's temporary file holds exactly `size` bytes and its filename has no
 * directory; whatever comes back starts with an HTTP status line; and once
 * the connection is closed, the upload folder is empty again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static lm_http_server *server;
static char upload_dir[64];
static unsigned served;

static void check_parts(lm_http_request *req)
{
  for (int i = 0; i < lm_http_request_part_count(req); i++) {
    const lm_http_part *p = lm_http_request_part(req, i);
    if (!p->name) abort();
    if (!p->path) {
      if (!p->data || p->filename || (int64_t)strlen(p->data) > p->size) abort();
      continue;
    }
    if (!p->filename || strchr(p->filename, '/') || strchr(p->filename, '\\')) abort();
    struct stat st;
    if (stat(p->path, &st) != 0 || st.st_size != p->size) {
      fprintf(stderr, "part '%s': %s holds %lld bytes, size says %lld\n", p->name, p->path,
              (long long)st.st_size, (long long)p->size);
      abort();
    }
  }
}

static void on_request(lm_http_request *req, void *ud)
{
  (void)ud;
  check_parts(req);
  for (int i = 0; i < lm_http_request_header_count(req); i++) {
    const char *k, *v;
    lm_http_request_header(req, i, &k, &v);
    for (const char *c = k; *c; c++)
      if (*c >= 'A' && *c <= 'Z') abort(); /* names are lower case */
  }
  lm_http_response *r = lm_http_response_new(200);
  const lm_http_part *file = NULL;
  for (int i = 0; i < lm_http_request_part_count(req); i++)
    if (lm_http_request_part(req, i)->path) file = lm_http_request_part(req, i);
  switch (served++ % 3) {
  case 0: {
    size_t len = 0;
    const char *body = lm_http_request_body(req, &len);
    lm_http_response_body(r, body ? body : "", len);
    lm_http_response_header(r, "Content-Type", "application/octet-stream", NULL, 0);
    break;
  }
  case 1:
    lm_http_response_part(r, "params", NULL, "application/json", "{}", 2, NULL, NULL, 0);
    if (file)
      lm_http_response_part(r, "image", file->filename, NULL, NULL, 0, file->path, NULL, 0);
    break;
  default:
    if (file) lm_http_response_file(r, file->path, NULL, file->filename, NULL, 0);
    break;
  }
  lm_http_respond(req, r);
  lm_http_request_release(req);
}

static void setup(void)
{
  uv_loop_init(&loop);
  snprintf(upload_dir, sizeof upload_dir, "/tmp/lumen-fuzz-http-XXXXXX");
  if (!mkdtemp(upload_dir)) abort();
  lm_http_options o;
  lm_http_options_init(&o);
  o.no_listen = true;
  o.upload_dir = upload_dir;
  o.max_body = 1 << 20;
  o.max_text_part = 64 << 10;
  o.on_request = on_request;
  char err[256];
  if (lm_http_server_start(&loop, &o, &server, err, sizeof err) != 0) {
    fprintf(stderr, "fuzz_http: %s\n", err);
    abort();
  }
}

static bool upload_dir_empty(void)
{
  DIR *d = opendir(upload_dir);
  if (!d) return false;
  struct dirent *e;
  bool empty = true;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
  closedir(d);
  return empty;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!server) setup();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
  struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
  peer.sin_addr.s_addr = htonl(0x7f000001);
  if (lm_http_server_add_fd(server, sv[0], (struct sockaddr *)&peer, sizeof peer) != 0) abort();
  size_t sent = 0, got = 0;
  char first[8] = "";
  char buf[65536];
  int idle = 0;
  /* Feed the input and read the replies until nothing moves any more. */
  for (int round = 0; round < 2000 && idle < 4; round++) {
    bool moved = false;
    if (sent < size) {
      ssize_t n = write(sv[1], data + sent, size - sent);
      if (n > 0) {
        sent += (size_t)n;
        moved = true;
      }
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    ssize_t n;
    while ((n = read(sv[1], buf, sizeof buf)) > 0) {
      if (got < sizeof first - 1) {
        size_t k = sizeof first - 1 - got < (size_t)n ? sizeof first - 1 - got : (size_t)n;
        memcpy(first + got, buf, k);
      }
      got += (size_t)n;
      moved = true;
    }
    idle = moved ? 0 : idle + 1;
  }
  if (got >= 7 && memcmp(first, "HTTP/1.", 7) != 0) {
    fprintf(stderr, "fuzz_http: the reply starts with \"%s\"\n", first);
    abort();
  }
  close(sv[1]);
  for (int round = 0; round < 2000 && lm_http_server_connections(server) > 0; round++)
    uv_run(&loop, UV_RUN_NOWAIT);
  if (lm_http_server_connections(server) != 0 || lm_http_server_inflight(server) != 0) {
    fprintf(stderr, "fuzz_http: a connection outlived its client\n");
    abort();
  }
  if (!upload_dir_empty()) {
    fprintf(stderr, "fuzz_http: an upload's temporary file was left in %s\n", upload_dir);
    abort();
  }
  return 0;
}
