/*
** The scheduler of managed coroutines ("tasks").
**
** A task is a userdata (metatable "lumen.task", the handle scripts get from
** spawn) that owns one coroutine.  While the task is unfinished the handle
** is anchored with luaL_ref, and through its user values so are the
** coroutine and the list of tasks awaiting it; every finishing path drops
** the anchor.  A task waits for at most one thing at a time: a job, a timer
** or another task.  Completions arrive on the loop thread (libuv callbacks)
** and resume the coroutine there.
**
** spawn(fn, ...) runs fn at once, until its first wait, and then returns
** the handle.  A bare coroutine.yield() inside a task is a "let others run"
** yield: the task continues on the next loop turn.
**
** User values of a task: 1 the coroutine (nil once finished), 2 the results
** table {n=..., ...} or the error object, 3 the traceback text of a failure,
** 4 the list of tasks awaiting this one.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lml.h"

enum {
  T_RUNNING,
  T_WAIT_JOB,
  T_WAIT_TASK,
  T_WAIT_TIMER,
  T_DONE_OK,
  T_DONE_ERR
};

struct lml_task {
  lml_ctx *ctx;
  lua_State *co;        /* NULL once finished */
  int self_ref;         /* anchors the handle while unfinished */
  int state;
  lml_pending *pending; /* the job or timer waited on */
  lml_task *awaiting;   /* T_WAIT_TASK: the task awaited */
  const char *interrupt;/* raise this when next resumed ("interrupted") */
  bool observed;        /* an error was re-raised by await or reported */
};

enum { P_JOB, P_TIMER };

struct lml_pending {
  int kind;
  lml_ctx *ctx;
  lml_task *task;       /* NULL once the task is gone: only clean up */
  lm_job *job;
  bool done;
  uv_timer_t timer;
};

static const char threads_key = 't';   /* weak table: thread -> task */
static const char unobserved_key = 'u';/* set of failed, unawaited tasks */
static const char helper_key = 'h';

static void task_resume(lml_task *t, lua_State *from, int nargs);

bool lml_task_done(const lml_task *t)
{
  return t->state == T_DONE_OK || t->state == T_DONE_ERR;
}

lml_task *lml_task_current(lua_State *L)
{
  if (lua_pushthread(L)) { /* the main thread is never managed */
    lua_pop(L, 1);
    return NULL;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &threads_key);
  lua_rotate(L, -2, 1);
  lua_rawget(L, -2);
  lml_task *t = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return t;
}

bool lml_sched_busy(lml_ctx *ctx)
{
  return ctx->npending > 0;
}

/* ---- pending jobs and timers ---- */

lml_pending *lml_pending_new(lml_ctx *ctx, lml_task *t)
{
  lml_pending *p = calloc(1, sizeof *p);
  if (p) {
    p->ctx = ctx;
    p->task = t;
    p->kind = P_JOB;
  }
  return p;
}

int lml_task_wait_job(lua_State *L, lml_task *t, lml_pending *p, lm_job *job,
                      lua_KFunction k)
{
  p->job = job;
  t->pending = p;
  t->state = T_WAIT_JOB;
  t->ctx->npending++;
  return lua_yieldk(L, 0, (lua_KContext)p, k);
}

void lml_job_done(lm_job *job, int status, void *userdata)
{
  lml_pending *p = userdata;
  lml_ctx *ctx = p->ctx;
  lml_task *t = p->task;
  (void)status;
  ctx->npending--;
  p->done = true;
  if (ctx->closing || !t || t->pending != p || t->state != T_WAIT_JOB) {
    if (t && t->pending == p) t->pending = NULL;
    lm_job_release(job);
    free(p);
    return;
  }
  task_resume(t, NULL, 0);
}

lm_job *lml_pending_take(lua_State *L, lml_pending *p)
{
  lml_task *t = p->task;
  if (!p->done)
    luaL_error(L, "lumen: a coroutine waiting for an op was resumed by "
                  "someone else (only lumen's scheduler may resume it)");
  lm_job *job = p->job;
  t->pending = NULL;
  free(p);
  if (t->interrupt) {
    const char *why = t->interrupt;
    t->interrupt = NULL;
    lm_job_release(job);
    lua_pushstring(L, why);
    lua_error(L);
  }
  return job;
}

static void timer_closed(uv_handle_t *h)
{
  lml_pending *p = h->data;
  p->ctx->nclosing--;
  free(p);
}

/* Close a timer (fired or stopped): from then on it is no longer pending,
** only closing. */
static void timer_close(lml_pending *p)
{
  p->done = true;
  p->ctx->npending--;
  p->ctx->nclosing++;
  uv_close((uv_handle_t *)&p->timer, timer_closed);
}

static void timer_fired(uv_timer_t *h)
{
  lml_pending *p = h->data;
  lml_task *t = p->task;
  timer_close(p);
  if (p->ctx->closing || !t || t->pending != p) return;
  t->pending = NULL;
  task_resume(t, NULL, 0);
}

/* Resume t after ms milliseconds (0: on the next loop turn).  Returns false
** without side effects if no timer could be made. */
static bool task_sleep(lml_task *t, lua_State *L, double ms)
{
  lml_pending *p = lml_pending_new(t->ctx, t);
  if (!p) return false;
  p->kind = P_TIMER;
  uv_loop_t *loop = lm_engine_loop(lml_engine(L, t->ctx));
  if (uv_timer_init(loop, &p->timer) != 0) {
    free(p);
    return false;
  }
  p->timer.data = p;
  t->ctx->npending++; /* until it fires or is stopped */
  uv_timer_start(&p->timer, timer_fired, ms > 0 ? (uint64_t)ms : 0, 0);
  t->pending = p;
  t->state = T_WAIT_TIMER;
  return true;
}

/* ---- finishing and waking ---- */

static int tostring_safe(lua_State *L)
{
  luaL_tolstring(L, 1, NULL);
  return 1;
}

static void unobserved_set(lua_State *H, int handle_idx, bool on)
{
  handle_idx = lua_absindex(H, handle_idx);
  lua_rawgetp(H, LUA_REGISTRYINDEX, &unobserved_key);
  lua_pushvalue(H, handle_idx);
  if (on) lua_pushboolean(H, 1);
  else lua_pushnil(H);
  lua_rawset(H, -3);
  lua_pop(H, 1);
}

/* The coroutine returned (LUA_OK, nres results on its stack) or failed. */
static void task_finish(lml_task *t, int st, int nres)
{
  lml_ctx *ctx = t->ctx;
  lua_State *co = t->co, *H = ctx->helper;
  int top = lua_gettop(H);
  lua_checkstack(H, nres + 8);
  lua_rawgeti(H, LUA_REGISTRYINDEX, t->self_ref);
  int h = lua_gettop(H);
  if (st == LUA_OK) {
    lua_createtable(H, nres, 1);
    lua_xmove(co, H, nres);
    for (int i = nres; i >= 1; i--) lua_rawseti(H, h + 1, i);
    lua_pushinteger(H, nres);
    lua_setfield(H, h + 1, "n");
    lua_setiuservalue(H, h, 2);
    t->state = T_DONE_OK;
  } else {
    lua_pushvalue(co, -1);
    lua_xmove(co, H, 1);
    lua_pushvalue(H, -1);
    lua_setiuservalue(H, h, 2);
    lua_pushcfunction(H, tostring_safe);
    lua_rotate(H, -2, 1);
    const char *msg = lua_pcall(H, 1, 1, 0) == LUA_OK ? lua_tostring(H, -1) : NULL;
    luaL_traceback(H, co, msg ? msg : "(error object is not a string)", 0);
    lua_setiuservalue(H, h, 3);
    lua_pop(H, 1);
    t->state = T_DONE_ERR;
  }
  /* Forget the coroutine: run its pending __close variables (after an
  ** error), drop it from the map of managed threads. */
  lua_rawgetp(H, LUA_REGISTRYINDEX, &threads_key);
  lua_getiuservalue(H, h, 1);
  lua_pushnil(H);
  lua_rawset(H, -3);
  lua_pop(H, 1);
  t->co = NULL;
  lml_closethread(co);
  lua_pushnil(H);
  lua_setiuservalue(H, h, 1);
  ctx->live_tasks--;

  /* Wake the tasks awaiting this one, in the order they started waiting. */
  lua_getiuservalue(H, h, 4);
  lua_pushnil(H);
  lua_setiuservalue(H, h, 4);
  int waiters = lua_gettop(H);
  int woken = 0;
  lua_Integer n = luaL_len(H, waiters);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(H, waiters, i);
    lml_task *w = lua_touserdata(H, -1);
    lua_pop(H, 1);
    if (w && w->state == T_WAIT_TASK && w->awaiting == t) {
      w->awaiting = NULL;
      woken++;
      task_resume(w, NULL, 0);
    }
  }
  if (t->state == T_DONE_ERR && !t->observed && woken == 0)
    unobserved_set(H, h, true);
  luaL_unref(H, LUA_REGISTRYINDEX, t->self_ref);
  t->self_ref = LUA_NOREF;
  lua_settop(H, top);
}

static void task_resume(lml_task *t, lua_State *from, int nargs)
{
  lua_State *co = t->co;
  if (!co) return;
  t->state = T_RUNNING;
  int nres = 0;
  int st = lua_resume(co, from, nargs, &nres);
  if (st == LUA_YIELD) {
    if (t->state == T_RUNNING) {
      /* A bare coroutine.yield(): let the others run, continue later. */
      lua_pop(co, nres);
      if (!task_sleep(t, t->ctx->L, 0)) {
        lua_pushliteral(co, "lumen: cannot schedule a yielded coroutine");
        task_finish(t, LUA_ERRRUN, 0);
      }
    }
    return;
  }
  task_finish(t, st, nres);
}

/* ---- spawn, await, interrupt ---- */

lml_task *lml_task_spawn(lua_State *L, lml_ctx *ctx, int nargs)
{
  int fidx = lua_gettop(L) - nargs;
  luaL_checktype(L, fidx, LUA_TFUNCTION);
  if (ctx->closing) luaL_error(L, "lumen: cannot spawn while shutting down");
  lml_engine(L, ctx); /* timers need the loop */
  luaL_checkstack(L, 6, NULL);
  lml_task *t = lua_newuserdatauv(L, sizeof *t, 4);
  memset(t, 0, sizeof *t);
  t->ctx = ctx;
  t->self_ref = LUA_NOREF;
  t->state = T_DONE_OK; /* inert until fully set up */
  luaL_setmetatable(L, LML_TASK_MT);
  lua_State *co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 4);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &threads_key);
  lua_getiuservalue(L, -2, 1);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->co = co;
  t->state = T_RUNNING;
  ctx->live_tasks++;
  lua_rotate(L, fidx, 1); /* handle below the function and its arguments */
  lua_xmove(L, co, nargs + 1);
  task_resume(t, L, nargs);
  return t;
}

/* Push the results of finished task at handle index hidx; raise its error. */
static int push_results_or_raise(lua_State *L, int hidx, lml_task *t)
{
  if (t->state == T_DONE_ERR) {
    t->observed = true;
    unobserved_set(L, hidx, false);
    lua_getiuservalue(L, hidx, 2);
    return lua_error(L);
  }
  lua_getiuservalue(L, hidx, 2);
  int res = lua_gettop(L);
  lua_getfield(L, res, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (int i = 1; i <= n; i++) lua_geti(L, res, i);
  lua_remove(L, res);
  return n;
}

int lml_task_results(lua_State *L, int hidx)
{
  hidx = lua_absindex(L, hidx);
  lml_task *t = luaL_checkudata(L, hidx, LML_TASK_MT);
  if (t->state == T_DONE_ERR) {
    t->observed = true;
    unobserved_set(L, hidx, false);
    lua_getiuservalue(L, hidx, 3);
    return -1;
  }
  return push_results_or_raise(L, hidx, t);
}

static lml_task *check_task(lua_State *L, int idx)
{
  return luaL_checkudata(L, idx, LML_TASK_MT);
}

static int await_k(lua_State *L, int status, lua_KContext kctx)
{
  lml_task *self = (lml_task *)kctx;
  (void)status;
  if (self->interrupt) {
    const char *why = self->interrupt;
    self->interrupt = NULL;
    lua_pushstring(L, why);
    return lua_error(L);
  }
  lml_task *t = check_task(L, 1);
  if (!lml_task_done(t))
    return luaL_error(L, "lumen: a coroutine awaiting a task was resumed by "
                         "someone else (only lumen's scheduler may resume it)");
  return push_results_or_raise(L, 1, t);
}

/* handle:await() -> the task's results; raises its error.  In a managed
** coroutine it yields; elsewhere (the main chunk of a stock lua5.4 script)
** it turns the loop until the task is done. */
static int t_await(lua_State *L)
{
  lml_task *t = check_task(L, 1);
  lua_settop(L, 1);
  lml_ctx *ctx = t->ctx;
  if (lml_task_done(t)) return push_results_or_raise(L, 1, t);
  lml_task *self = lml_task_current(L);
  if (self == t) return luaL_error(L, "a task cannot await itself");
  if (self && lua_isyieldable(L)) {
    lua_getiuservalue(L, 1, 4);
    lua_rawgeti(L, LUA_REGISTRYINDEX, self->self_ref);
    lua_seti(L, -2, luaL_len(L, -2) + 1);
    lua_pop(L, 1);
    self->awaiting = t;
    self->state = T_WAIT_TASK;
    return lua_yieldk(L, 0, (lua_KContext)self, await_k);
  }
  while (!lml_task_done(t)) {
    if (!lml_sched_busy(ctx))
      return luaL_error(L, "lumen: deadlock: the awaited task waits for "
                           "something that can never happen");
    lml_ctx_turn(L, ctx);
  }
  return push_results_or_raise(L, 1, t);
}

void lml_task_interrupt(lml_task *t, const char *why)
{
  switch (t->state) {
  case T_WAIT_JOB:
    t->interrupt = why;
    lm_job_cancel(t->pending->job); /* the callback resumes it */
    break;
  case T_WAIT_TIMER: {
    lml_pending *p = t->pending;
    t->interrupt = why;
    t->pending = NULL;
    p->task = NULL;
    uv_timer_stop(&p->timer);
    timer_close(p);
    task_resume(t, NULL, 0);
    break;
  }
  case T_WAIT_TASK:
    t->interrupt = why;
    t->awaiting = NULL;
    task_resume(t, NULL, 0);
    break;
  default:
    break; /* running Lua cannot be reached from the loop thread; done */
  }
}

static int sleep_k(lua_State *L, int status, lua_KContext kctx)
{
  lml_task *self = (lml_task *)kctx;
  (void)status;
  if (self->interrupt) {
    const char *why = self->interrupt;
    self->interrupt = NULL;
    lua_pushstring(L, why);
    return lua_error(L);
  }
  return 0;
}

/* lumen.sleep(seconds): in a managed coroutine, let the others run for that
** long; elsewhere, turn the loop for that long. */
static int l_sleep(lua_State *L)
{
  double s = luaL_optnumber(L, 1, 0);
  luaL_argcheck(L, s >= 0, 1, "negative time");
  lml_ctx *ctx = lml_ctx_get(L);
  lml_task *self = lml_task_current(L);
  if (self && lua_isyieldable(L)) {
    if (!task_sleep(self, L, s * 1000.0)) return luaL_error(L, "lumen.sleep: cannot start a timer");
    return lua_yieldk(L, 0, (lua_KContext)self, sleep_k);
  }
  uv_loop_t *loop = lm_engine_loop(lml_engine(L, ctx));
  uint64_t end = uv_now(loop) + (uint64_t)(s * 1000.0);
  uv_update_time(loop);
  while (uv_now(loop) < end) {
    if (!lml_sched_busy(ctx)) {
      uv_sleep((unsigned)(end - uv_now(loop)));
      break;
    }
    lml_ctx_turn(L, ctx);
    uv_update_time(loop);
  }
  return 0;
}

static int l_spawn(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lml_task_spawn(L, lml_ctx_get(L), lua_gettop(L) - 1);
  return 1;
}

/* handle:cancel(): the task raises "cancelled" at its current wait. */
static int t_cancel(lua_State *L)
{
  lml_task *t = check_task(L, 1);
  if (lml_task_current(L) == t) return luaL_error(L, "a task cannot cancel itself; use error()");
  lml_task_interrupt(t, "cancelled");
  return 0;
}

static int t_done(lua_State *L)
{
  lua_pushboolean(L, lml_task_done(check_task(L, 1)));
  return 1;
}

static int t_status(lua_State *L)
{
  static const char *const names[] = {"running", "waiting", "waiting",
                                      "waiting", "ok", "error"};
  lua_pushstring(L, names[check_task(L, 1)->state]);
  return 1;
}

static int t_tostring(lua_State *L)
{
  lml_task *t = check_task(L, 1);
  lua_pushfstring(L, "task<%p %s>", (void *)t,
                  lml_task_done(t) ? (t->state == T_DONE_OK ? "ok" : "error")
                                   : "running");
  return 1;
}

/* handle:traceback() -> the failure's message and traceback, or nil. */
static int t_traceback(lua_State *L)
{
  check_task(L, 1);
  lua_getiuservalue(L, 1, 3);
  return 1;
}

static void report(lml_task *t, const char *tb)
{
  (void)t;
  fprintf(stderr, "lumen: error in a spawned coroutine that nobody awaited:\n%s\n",
          tb ? tb : "(no message)");
  fflush(stderr);
}

/* At state close: a failed task nobody awaited is reported, not lost; a
** task still waiting detaches from its job or timer. */
static int t_gc(lua_State *L)
{
  lml_task *t = lua_touserdata(L, 1);
  if (t->state == T_DONE_ERR && !t->observed) {
    t->observed = true;
    lua_getiuservalue(L, 1, 3);
    report(t, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lml_pending *p = t->pending;
  if (p) {
    t->pending = NULL;
    p->task = NULL;
    if (p->kind == P_JOB) {
      lm_job_cancel(p->job);
    } else if (!p->done) {
      uv_timer_stop(&p->timer);
      timer_close(p);
    }
  }
  if (!lml_task_done(t)) {
    t->state = T_DONE_ERR;
    t->observed = true;
    t->ctx->live_tasks--;
  }
  return 0;
}

int lml_sched_report_unobserved(lua_State *L)
{
  int count = 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &unobserved_key);
  int set = lua_gettop(L);
  /* Collect first: the set is changed while reporting. */
  lua_newtable(L);
  int list = set + 1;
  lua_pushnil(L);
  while (lua_next(L, set)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_seti(L, list, ++count);
  }
  for (int i = 1; i <= count; i++) {
    lua_geti(L, list, i);
    lml_task *t = lua_touserdata(L, -1);
    t->observed = true;
    lua_getiuservalue(L, -1, 3);
    report(t, lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawset(L, set);
  }
  lua_settop(L, set - 1);
  return count;
}

void lml_sched_shutdown(lml_ctx *ctx)
{
  ctx->closing = true;
  /* Every task was finalized before this (it cancelled its job or closed
  ** its timer); wait for those callbacks so no one writes freed memory. */
  while (ctx->npending + ctx->nclosing > 0 && ctx->engine) lm_engine_run(ctx->engine, 1);
}

static const luaL_Reg task_methods[] = {
  {"await", t_await},   {"cancel", t_cancel},   {"done", t_done},
  {"status", t_status}, {"traceback", t_traceback}, {NULL, NULL}
};

/* lumen.istask(v): is v a task handle? */
static int l_istask(lua_State *L)
{
  lua_pushboolean(L, luaL_testudata(L, 1, LML_TASK_MT) != NULL);
  return 1;
}

static const luaL_Reg sched_funcs[] = {
  {"spawn", l_spawn},
  {"istask", l_istask},
  {"sleep", l_sleep},
  {NULL, NULL}
};

void lml_sched_open(lua_State *L, int module_idx)
{
  module_idx = lua_absindex(L, module_idx);
  lml_ctx *ctx = lml_ctx_get(L);
  if (luaL_newmetatable(L, LML_TASK_MT)) {
    lua_pushcfunction(L, t_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, t_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, task_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &threads_key) != LUA_TTABLE) {
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &threads_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &unobserved_key);
    ctx->helper = lua_newthread(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &helper_key);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, module_idx);
  luaL_setfuncs(L, sched_funcs, 0);
  lua_pop(L, 1);
}
