/*
** lumen.http_serve: the Lua binding of the HTTP transport (http.h).
**
** Each request runs `handler(req)` in a new managed coroutine (sched.c), so
** a handler may call ops, sleep and await like any script.  The coroutine's
** body is request_main: it calls the handler under lua_pcallk and, in the
** continuation, turns the returned table (or the error) into the reply.  A
** client that goes away, a request timeout or a forced stop interrupts the
** coroutine at its current wait (lml_task_interrupt); the reply is then
** dropped (gone) or was already sent by the transport (504).
**
** An open server is anchored in the registry, but like any loop handle it
** does not keep `lumen run` going: a script serves while it waits, with
** server:wait() (or a loop of its own).  wait() awaits a sleeper task made on
** demand, which on_closed wakes; if the waiting coroutine is interrupted
** (Ctrl-C), the sleeper ends too, so nothing is left keeping the loop busy.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "lml.h"

#define SERVER_MT "lumen.http_server"
#define REQUEST_MT "lumen.http_request"

/* User values of the server box. */
enum { SV_HANDLER = 1, SV_ON_ERROR, SV_THREAD, SV_LIFE, SV_SLEEP, SV_COUNT = SV_SLEEP };
/* User values of a request box: its task handle, the server box. */
enum { RQ_TASK = 1, RQ_SERVER, RQ_COUNT = RQ_SERVER };

typedef struct srv_box {
  lm_http_server *srv;  /* NULL once closed and freed */
  lml_ctx *ctx;
  lua_State *H;         /* a thread of our own to start coroutines from */
  int port;
  int running;          /* handlers whose coroutine has not finished */
  bool closing, closed;
  bool dead;            /* finalized: no more Lua from callbacks */
  lml_task *life;       /* the sleeper that wait() awaits, or NULL */
  int waiting;          /* coroutines inside wait() */
} srv_box;

typedef struct req_box {
  lm_http_request *req; /* NULL once released */
  srv_box *server;
  lml_task *task;
  bool finished;        /* the handler's coroutine is over */
  bool gone;
  int aborted;          /* enum lm_http_abort, 0 if not */
} req_box;

/* ---- the request table ---- */

static int req_gone(lua_State *L)
{
  req_box *b = lua_touserdata(L, lua_upvalueindex(1));
  lua_pushboolean(L, b->gone || (b->req && lm_http_request_gone(b->req)));
  return 1;
}

static void set_string(lua_State *L, const char *k, const char *v)
{
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* Push the req table of box b (documented in http_serve's comment). */
static void push_request_table(lua_State *L, int box_idx, lm_http_request *r)
{
  lua_createtable(L, 0, 12);
  set_string(L, "method", lm_http_request_method(r));
  set_string(L, "path", lm_http_request_path(r));
  set_string(L, "version", lm_http_request_version(r));
  set_string(L, "remote", lm_http_request_remote(r));
  lua_newtable(L);
  for (int i = 0, n = lm_http_request_query_count(r); i < n; i++) {
    const char *k, *v;
    lm_http_request_query(r, i, &k, &v);
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
  }
  lua_setfield(L, -2, "query");
  lua_newtable(L);
  for (int i = 0, n = lm_http_request_header_count(r); i < n; i++) {
    const char *k, *v;
    lm_http_request_header(r, i, &k, &v);
    /* Repeated headers combine as RFC 9110 5.3 says. */
    if (lua_getfield(L, -1, k) == LUA_TSTRING) {
      lua_pushliteral(L, ", ");
      lua_pushstring(L, v);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushstring(L, v);
    }
    lua_setfield(L, -2, k);
  }
  lua_setfield(L, -2, "headers");
  if (lm_http_request_is_multipart(r)) {
    lua_newtable(L);
    int form = lua_gettop(L);
    lua_newtable(L);
    int files = form + 1;
    for (int i = 0, n = lm_http_request_part_count(r); i < n; i++) {
      const lm_http_part *p = lm_http_request_part(r, i);
      if (p->path) {
        lua_createtable(L, 0, 4);
        set_string(L, "path", p->path);
        set_string(L, "filename", p->filename);
        lua_pushinteger(L, p->size);
        lua_setfield(L, -2, "size");
        if (p->content_type) set_string(L, "content_type", p->content_type);
        lua_setfield(L, files, p->name);
      } else {
        lua_pushlstring(L, p->data, (size_t)p->size);
        lua_setfield(L, form, p->name);
      }
    }
    lua_setfield(L, form - 1, "files");
    lua_setfield(L, form - 1, "form");
  } else {
    size_t len = 0;
    const char *body = lm_http_request_body(r, &len);
    lua_pushlstring(L, body, len);
    lua_setfield(L, -2, "body");
  }
  lua_pushvalue(L, box_idx);
  lua_pushcclosure(L, req_gone, 1);
  lua_setfield(L, -2, "gone");
}

/* ---- the reply table ---- */

typedef struct build {
  lm_http_response *resp;
  char err[512];
} build;

static const char *opt_string_field(lua_State *L, int idx, const char *k, const char *where)
{
  int t = lua_getfield(L, idx, k);
  const char *s = NULL;
  if (t == LUA_TSTRING || t == LUA_TNUMBER) s = lua_tostring(L, -1);
  else if (t != LUA_TNIL)
    luaL_error(L, "%s.%s: expected a string, got %s", where, k, luaL_typename(L, -1));
  lua_pop(L, 1); /* the string stays reachable from the table */
  return s;
}

/* Arguments: 1 the build (light userdata), 2 the value the handler
** returned.  Fills b->resp or raises a message naming the field. */
static int build_response(lua_State *L)
{
  build *b = lua_touserdata(L, 1);
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, 2, &len);
    b->resp = lm_http_response_new(200);
    if (!b->resp || lm_http_response_body(b->resp, s, len) != 0) return luaL_error(L, "out of memory");
    return 0;
  }
  if (!lua_istable(L, 2))
    return luaL_error(L, "the handler returned %s instead of a response table "
                      "{status=, headers=, body= | parts= | file=}", luaL_typename(L, 2));
  lua_Integer status = 200;
  if (lua_getfield(L, 2, "status") != LUA_TNIL) {
    int isnum;
    status = lua_tointegerx(L, -1, &isnum);
    if (!isnum || status < 100 || status > 999)
      return luaL_error(L, "resp.status: expected an integer from 100 to 999");
  }
  lua_pop(L, 1);
  b->resp = lm_http_response_new((int)status);
  if (!b->resp) return luaL_error(L, "out of memory");
  if (lua_getfield(L, 2, "headers") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING ||
          (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
        return luaL_error(L, "resp.headers: names and values must be strings");
      const char *v = lua_tostring(L, -1);
      if (lm_http_response_header(b->resp, lua_tostring(L, -2), v, b->err, sizeof b->err) != 0)
        return luaL_error(L, "resp.headers: %s", b->err);
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    return luaL_error(L, "resp.headers: expected a table");
  }
  lua_pop(L, 1);
  int kinds = 0;
  if (lua_getfield(L, 2, "body") != LUA_TNIL) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (!s || lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "resp.body: expected a string");
    if (lm_http_response_body(b->resp, s, len) != 0) return luaL_error(L, "out of memory");
    kinds++;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 2, "file") != LUA_TNIL) {
    if (!lua_istable(L, -1))
      return luaL_error(L, "resp.file: expected a table {path=, content_type=, filename=}");
    int f = lua_gettop(L);
    const char *path = opt_string_field(L, f, "path", "resp.file");
    if (!path) return luaL_error(L, "resp.file.path: missing");
    const char *ct = opt_string_field(L, f, "content_type", "resp.file");
    const char *fn = opt_string_field(L, f, "filename", "resp.file");
    if (lm_http_response_file(b->resp, path, ct, fn, b->err, sizeof b->err) != 0)
      return luaL_error(L, "resp.file.path: %s", b->err);
    kinds++;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 2, "parts") != LUA_TNIL) {
    if (!lua_istable(L, -1)) return luaL_error(L, "resp.parts: expected a list of parts");
    int ps = lua_gettop(L);
    lua_Integer n = luaL_len(L, ps);
    for (lua_Integer i = 1; i <= n; i++) {
      char where[48];
      snprintf(where, sizeof where, "resp.parts[%lld]", (long long)i);
      if (lua_geti(L, ps, i) != LUA_TTABLE) return luaL_error(L, "%s: expected a table", where);
      int p = lua_gettop(L);
      const char *name = opt_string_field(L, p, "name", where);
      if (!name) return luaL_error(L, "%s.name: missing", where);
      const char *fn = opt_string_field(L, p, "filename", where);
      const char *ct = opt_string_field(L, p, "content_type", where);
      const char *path = opt_string_field(L, p, "path", where);
      size_t len = 0;
      const char *data = NULL;
      if (lua_getfield(L, p, "body") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "%s.body: expected a string", where);
        data = lua_tolstring(L, -1, &len);
      }
      if (!data == !path)
        return luaL_error(L, "%s: give exactly one of body= and path=", where);
      if (lm_http_response_part(b->resp, name, fn, ct, data, len, path, b->err, sizeof b->err) != 0)
        return luaL_error(L, "%s: %s", where, b->err);
      lua_settop(L, ps);
    }
    kinds++;
  }
  lua_pop(L, 1);
  if (kinds > 1) return luaL_error(L, "resp: give one of body=, file= and parts=");
  return 0;
}

/* ---- one request's coroutine ---- */

static void request_release(req_box *b)
{
  if (!b->req) return;
  lm_http_request_set_userdata(b->req, NULL);
  lm_http_request_release(b->req);
  b->req = NULL;
}

static void respond_error(req_box *b, int status, const char *msg)
{
  lm_http_response *r = lm_http_response_error(status, msg);
  if (r) lm_http_respond(b->req, r);
}

/* Try to answer with the table at the top of L's stack; false with the
** message pushed when it is not a valid reply. */
static bool respond_with(lua_State *L, req_box *b)
{
  int v = lua_gettop(L);
  build bd = {0};
  lua_pushcfunction(L, build_response);
  lua_pushlightuserdata(L, &bd);
  lua_pushvalue(L, v);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lm_http_response_free(bd.resp);
    return false;
  }
  lm_http_respond(b->req, bd.resp);
  return true;
}

/* A file the reply marks `remove = true`: the handler's temporary result,
** deleted once the reply has opened it (or was not sent at all). */
static void remove_marked_file(lua_State *L, int t)
{
  if (!lua_istable(L, t)) return;
  bool rm = lua_getfield(L, t, "remove") == LUA_TBOOLEAN && lua_toboolean(L, -1);
  if (rm && lua_getfield(L, t, "path") == LUA_TSTRING) unlink(lua_tostring(L, -1));
  lua_settop(L, t);
}

/* The files of a reply table at index v marked for removal. */
static void remove_marked_files(lua_State *L, int v)
{
  if (!lua_istable(L, v)) return;
  int top = lua_gettop(L);
  lua_getfield(L, v, "file");
  remove_marked_file(L, lua_gettop(L));
  lua_settop(L, top);
  if (lua_getfield(L, v, "parts") == LUA_TTABLE) {
    int ps = lua_gettop(L);
    for (lua_Integer i = 1, n = luaL_len(L, ps); i <= n; i++) {
      lua_geti(L, ps, i);
      remove_marked_file(L, lua_gettop(L));
      lua_settop(L, ps);
    }
  }
  lua_settop(L, top);
}

/* The handler returned (status LUA_OK or LUA_YIELD: its result on top) or
** failed (its error on top). */
static int request_done(lua_State *L, int status, lua_KContext kctx)
{
  (void)kctx;
  req_box *b = lua_touserdata(L, 3);
  b->finished = true;
  b->server->running--;
  int result = lua_gettop(L);
  bool returned = status == LUA_OK || status == LUA_YIELD;
  if (b->req && !lm_http_request_finished(b->req)) {
    bool ok = status == LUA_OK || status == LUA_YIELD;
    if (ok && respond_with(L, b)) {
      /* answered */
    } else {
      /* The handler's error, or why its result is no reply. */
      const char *msg = luaL_tolstring(L, -1, NULL);
      int on_error = 0;
      if (ok) lua_pushfstring(L, "bad response: %s", msg);
      else lua_pushvalue(L, -1);
      msg = lua_tostring(L, -1);
      lua_getiuservalue(L, 4, SV_ON_ERROR);
      if (lua_isfunction(L, -1)) {
        /* on_error(message, req) may log and may return a reply of its own. */
        lua_pushvalue(L, -2);
        lua_pushvalue(L, 2);
        on_error = lua_pcall(L, 2, 1, 0) == LUA_OK && lua_istable(L, -1);
      }
      if (!on_error || !respond_with(L, b)) respond_error(b, 500, msg);
    }
  }
  if (returned) remove_marked_files(L, result);
  request_release(b);
  return 0;
}

/* The coroutine: 1 handler, 2 req table, 3 request box, 4 server box. */
static int request_main(lua_State *L)
{
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  int st = lua_pcallk(L, 1, 1, 0, 0, request_done);
  return request_done(L, st, 0);
}

/* On the server's thread, protected: 1 server box, 2 request pointer. */
static int spawn_request(lua_State *L)
{
  srv_box *s = lua_touserdata(L, 1);
  lm_http_request *r = lua_touserdata(L, 2);
  req_box *b = lua_newuserdatauv(L, sizeof *b, RQ_COUNT);
  memset(b, 0, sizeof *b);
  b->server = s;
  luaL_setmetatable(L, REQUEST_MT);
  int bidx = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, bidx, RQ_SERVER);
  /* From here the box owns the request (its __gc releases it). */
  b->req = r;
  lm_http_request_set_userdata(r, b);
  lua_pushcfunction(L, request_main);
  lua_getiuservalue(L, 1, SV_HANDLER);
  push_request_table(L, bidx, r);
  lua_pushvalue(L, bidx);
  lua_pushvalue(L, 1);
  s->running++;
  lml_task *t = lml_task_spawn(L, s->ctx, 4);
  lua_setiuservalue(L, bidx, RQ_TASK);
  b->task = t;
  return 0;
}

static void on_request(lm_http_request *r, void *ud)
{
  srv_box *s = ud;
  if (s->dead) {
    lm_http_request_release(r);
    return;
  }
  lua_State *H = s->H;
  int top = lua_gettop(H);
  lua_pushcfunction(H, spawn_request);
  lua_pushlightuserdata(H, s);
  lua_rawgetp(H, LUA_REGISTRYINDEX, s); /* the server box, anchored below */
  lua_remove(H, -2);
  lua_pushlightuserdata(H, r);
  if (lua_pcall(H, 2, 0, 0) != LUA_OK) {
    /* No coroutine could be started (no memory, state closing). */
    const char *msg = lua_tostring(H, -1);
    if (lm_http_request_userdata(r)) {
      /* The box took the request: answer through it; its __gc releases. */
      req_box *b = lm_http_request_userdata(r);
      if (!b->finished) {
        b->finished = true;
        s->running--;
      }
      if (b->req && !lm_http_request_finished(b->req))
        respond_error(b, 500, msg ? msg : "cannot start the handler");
      request_release(b);
    } else {
      lm_http_response *resp = lm_http_response_error(500, msg ? msg : "cannot start the handler");
      if (resp) lm_http_respond(r, resp);
      lm_http_request_release(r);
    }
  }
  lua_settop(H, top);
}

static void on_abort(lm_http_request *r, enum lm_http_abort why, void *ud)
{
  srv_box *s = ud;
  req_box *b = lm_http_request_userdata(r);
  if (s->dead || !b) return;
  b->aborted = why;
  if (why == LM_HTTP_GONE) b->gone = true;
  if (b->finished || !b->task || lml_task_done(b->task)) return;
  lml_task_interrupt(b->task, why == LM_HTTP_GONE ? "cancelled: the client went away"
                              : why == LM_HTTP_TIMEOUT ? "cancelled: the request timed out"
                                                       : "cancelled: the server is stopping");
}

static int request_gc(lua_State *L)
{
  req_box *b = lua_touserdata(L, 1);
  request_release(b);
  return 0;
}

/* ---- the server ---- */

static int life_k(lua_State *L, int status, lua_KContext k)
{
  (void)L;
  (void)status;
  (void)k;
  return 0; /* interrupted or not, the server's life is over */
}

/* The sleeper task: 1 lumen.sleep, 2 the server box.  Sleeps until
** on_closed (or the last interrupted wait) interrupts it. */
static int server_life(lua_State *L)
{
  lua_pushvalue(L, 1);
  lua_pushnumber(L, 1e9);
  int st = lua_pcallk(L, 1, 0, 0, 0, life_k);
  return life_k(L, st, 0);
}

static void on_closed(lm_http_server *srv, void *ud)
{
  srv_box *s = ud;
  (void)srv;
  s->closed = true;
  lm_http_server_free(s->srv);
  s->srv = NULL;
  if (s->dead) return;
  lua_State *H = s->H;
  lua_pushnil(H);
  lua_rawsetp(H, LUA_REGISTRYINDEX, s); /* the box may go now */
  if (s->life && !lml_task_done(s->life)) lml_task_interrupt(s->life, "server closed");
}

static srv_box *check_server(lua_State *L)
{
  return luaL_checkudata(L, 1, SERVER_MT);
}

/* server:close(): stop accepting now; requests in flight finish; then the
** server stops.  Returns at once. */
static int server_close(lua_State *L)
{
  srv_box *s = check_server(L);
  if (s->srv && !s->closing) {
    s->closing = true;
    lm_http_server_close(s->srv, on_closed, s);
  }
  return 0;
}

static int wait_k(lua_State *L, int status, lua_KContext k)
{
  srv_box *s = lua_touserdata(L, 1);
  (void)k;
  s->waiting--;
  if (status == LUA_OK || status == LUA_YIELD) return 0;
  /* The waiter was interrupted: a sleeper nobody awaits would keep the
  ** loop busy for nothing. */
  if (s->waiting == 0 && s->life && !lml_task_done(s->life))
    lml_task_interrupt(s->life, "nobody waits");
  return lua_error(L);
}

/* server:wait(): until the server has closed (after close()). */
static int server_wait(lua_State *L)
{
  srv_box *s = check_server(L);
  lua_settop(L, 1);
  if (s->closed) return 0;
  if (!s->life || lml_task_done(s->life)) {
    lua_pushcfunction(L, server_life);
    lua_getiuservalue(L, 1, SV_SLEEP);
    lua_pushvalue(L, 1);
    s->life = lml_task_spawn(L, s->ctx, 2);
    lua_setiuservalue(L, 1, SV_LIFE);
  }
  lua_getiuservalue(L, 1, SV_LIFE);
  lua_getfield(L, -1, "await");
  lua_insert(L, -2);
  s->waiting++;
  int st = lua_pcallk(L, 1, 0, 0, 0, wait_k);
  return wait_k(L, st, 0);
}

static int server_index(lua_State *L)
{
  srv_box *s = check_server(L);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "port") == 0) lua_pushinteger(L, s->port);
  else if (strcmp(k, "inflight") == 0) lua_pushinteger(L, s->running);
  else if (strcmp(k, "closed") == 0) lua_pushboolean(L, s->closed);
  else if (strcmp(k, "close") == 0) lua_pushcfunction(L, server_close);
  else if (strcmp(k, "wait") == 0) lua_pushcfunction(L, server_wait);
  else lua_pushnil(L);
  return 1;
}

static int server_tostring(lua_State *L)
{
  srv_box *s = check_server(L);
  lua_pushfstring(L, "http_server<port %d, %s>", s->port,
                  s->closed ? "closed" : s->closing ? "closing" : "open");
  return 1;
}

static int server_gc(lua_State *L)
{
  srv_box *s = lua_touserdata(L, 1);
  s->dead = true;
  if (s->srv) {
    /* State closing: stop at once, no Lua from now on. */
    lm_http_server_free(s->srv);
    s->srv = NULL;
  }
  return 0;
}

static lua_Integer opt_int_field(lua_State *L, const char *k, lua_Integer def, lua_Integer lo,
                                 lua_Integer hi)
{
  lua_Integer v = def;
  if (lua_getfield(L, 1, k) != LUA_TNIL) {
    int isnum;
    v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < lo || v > hi)
      luaL_error(L, "lumen.http_serve: %s: expected an integer from %I to %I", k, lo, hi);
  }
  lua_pop(L, 1);
  return v;
}

/*
** lumen.http_serve{host = "127.0.0.1", port = 0, handler = fn,
**   upload_dir = $TMPDIR or "/tmp", max_body = 1 GiB, timeout = nil,
**   max_connections = 256, on_error = nil} -> server
**
** handler(req) runs in a new coroutine per request with
**   req = {method, path, query = {k = v}, headers = {lowercased = value},
**          version, remote = "ip:port", body (non-multipart), form = {name =
**          string}, files = {name = {path, filename, size, content_type}},
**          gone = function() -> true once the client has disconnected}
** and returns {status = 200, headers = {...}, body = string} or
** {status =, parts = {{name =, body = | path =, filename =, content_type =}}}
** (multipart/form-data with Content-Length) or {status =, file = {path =,
** content_type =, filename =}}; a string is a 200 body.  A file or part
** with `remove = true` is deleted once the reply has opened it (also when
** no reply is sent): a temporary result streams from disk.  An error gives 500
** {"error": "..."}; on_error(message, req) is called first and may return a
** reply of its own.  server.port, server.inflight, server.closed,
** server:close(), server:wait() (until closed; a script serves while it
** waits: an open server alone does not keep `lumen run` going).
*/
static int l_http_serve(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lml_ctx *ctx = lml_ctx_get(L);
  lm_engine *e = lml_engine(L, ctx);
  lm_http_options o;
  lm_http_options_init(&o);
  if (lua_getfield(L, 1, "handler") != LUA_TFUNCTION)
    return luaL_error(L, "lumen.http_serve: handler: expected a function");
  int handler = lua_gettop(L);
  if (lua_getfield(L, 1, "on_error") != LUA_TNIL && !lua_isfunction(L, -1))
    return luaL_error(L, "lumen.http_serve: on_error: expected a function");
  int on_error = lua_gettop(L);
  if (lua_getfield(L, 1, "host") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "lumen.http_serve: host: expected a string");
    o.host = lua_tostring(L, -1);
  }
  if (lua_getfield(L, 1, "upload_dir") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "lumen.http_serve: upload_dir: expected a string");
    o.upload_dir = lua_tostring(L, -1);
  }
  o.port = (int)opt_int_field(L, "port", 0, 0, 65535);
  o.max_body = opt_int_field(L, "max_body", o.max_body, 1, INT64_MAX);
  o.max_connections = (int)opt_int_field(L, "max_connections", o.max_connections, 1, 1 << 20);
  if (lua_getfield(L, 1, "timeout") != LUA_TNIL) {
    int isnum;
    o.timeout = lua_tonumberx(L, -1, &isnum);
    if (!isnum || !(o.timeout > 0))
      return luaL_error(L, "lumen.http_serve: timeout: expected a positive number of seconds");
  }
  lua_pop(L, 1);
  o.on_request = on_request;
  o.on_abort = on_abort;

  srv_box *s = lua_newuserdatauv(L, sizeof *s, SV_COUNT);
  memset(s, 0, sizeof *s);
  s->ctx = ctx;
  luaL_setmetatable(L, SERVER_MT);
  int sidx = lua_gettop(L);
  lua_pushvalue(L, handler);
  lua_setiuservalue(L, sidx, SV_HANDLER);
  lua_pushvalue(L, on_error);
  lua_setiuservalue(L, sidx, SV_ON_ERROR);
  s->H = lua_newthread(L);
  lua_setiuservalue(L, sidx, SV_THREAD);
  o.userdata = s;
  char err[256] = "";
  if (lm_http_server_start(lm_engine_loop(e), &o, &s->srv, err, sizeof err) != 0)
    return luaL_error(L, "lumen.http_serve: %s", err);
  s->port = lm_http_server_port(s->srv);
  /* Reachable from C callbacks through the registry while open. */
  lua_pushvalue(L, sidx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, s);
  lua_pushvalue(L, lua_upvalueindex(1)); /* lumen.sleep, for wait() */
  lua_setiuservalue(L, sidx, SV_SLEEP);
  lua_pushvalue(L, sidx);
  return 1;
}

void lml_http_open(lua_State *L, int module_idx)
{
  module_idx = lua_absindex(L, module_idx);
  if (luaL_newmetatable(L, SERVER_MT)) {
    lua_pushcfunction(L, server_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, server_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, server_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, REQUEST_MT)) {
    lua_pushcfunction(L, request_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_getfield(L, module_idx, "sleep"); /* lml_sched_open put it there */
  luaL_argcheck(L, lua_isfunction(L, -1), 1, "lml_http_open: lumen.sleep is missing");
  lua_pushcclosure(L, l_http_serve, 1);
  lua_setfield(L, module_idx, "http_serve");
}
