/*
** The host (host.h): one engine, one lua_State with the lumen module, the
** ops and the prelude's helpers as globals, and the loop turned until the
** managed coroutines are done.  Used by `lumen run`, `lumen repl` and
** `lumen ops`.
*/
#include <stdio.h>
#include <stdlib.h>

#include <lualib.h>

#include "host.h"
#include "lml.h"

struct lm_host {
  lua_State *L;
  lml_ctx *ctx;
  lml_task *current; /* the coroutine lm_host_call runs, while it runs */
};

/* Protected part of lm_host_new: open the libraries, adopt the engine,
** load the module and install the globals. */
static int host_init(lua_State *L)
{
  lm_engine *e = lua_touserdata(L, 1);
  luaL_openlibs(L);
  lml_ctx *ctx = lml_ctx_get(L);
  ctx->engine = e;
  luaL_requiref(L, "lumen", luaopen_lumen, 1);
  lua_getfield(L, -1, "install_globals");
  lua_pushglobaltable(L);
  lua_call(L, 1, 0);
  return 0;
}

int lm_host_new(const lm_config *cfg, lm_host **out)
{
  *out = NULL;
  lm_host *h = calloc(1, sizeof *h);
  if (!h) return LM_ENOMEM;
  lm_engine *e = NULL;
  int st = lm_engine_new(cfg, &e);
  if (st < 0) {
    free(h);
    return st;
  }
  h->L = luaL_newstate();
  if (!h->L) {
    lm_engine_release(e);
    free(h);
    return LM_ENOMEM;
  }
  lua_pushcfunction(h->L, host_init);
  lua_pushlightuserdata(h->L, e);
  if (lua_pcall(h->L, 1, 0, 0) != LUA_OK) {
    /* The ctx took the engine if it got that far; closing releases it. */
    bool adopted = lml_ctx_get(h->L)->engine == e;
    lua_close(h->L);
    if (!adopted) lm_engine_release(e);
    free(h);
    return LM_EINTERNAL;
  }
  h->ctx = lml_ctx_get(h->L);
  if (cfg) {
    h->ctx->cfg = *cfg;
    h->ctx->have_cfg = true;
  }
  *out = h;
  return LM_OK;
}

void lm_host_free(lm_host *h)
{
  if (!h) return;
  lua_close(h->L); /* tasks cancel their jobs, then the ctx waits for them */
  free(h);
}

lua_State *lm_host_lua(lm_host *h)
{
  return h->L;
}

lm_engine *lm_host_engine(lm_host *h)
{
  return h->ctx->engine;
}

static int host_spawn(lua_State *L)
{
  lml_task_spawn(L, lml_ctx_get(L), lua_gettop(L) - 1);
  return 1;
}

/* Turn the loop once; false if nothing could ever wake a coroutine. */
static bool host_turn(lm_host *h)
{
  if (!lml_sched_busy(h->ctx)) return false;
  h->ctx->turning = true;
  lm_engine_run(h->ctx->engine, 1);
  h->ctx->turning = false;
  return true;
}

int lm_host_call(lm_host *h, int nargs, int nresults)
{
  lua_State *L = h->L;
  int fidx = lua_gettop(L) - nargs;
  lua_pushcfunction(L, host_spawn);
  lua_rotate(L, fidx, 1);
  int st = lua_pcall(L, nargs + 1, 1, 0);
  if (st != LUA_OK) return st;
  int hidx = lua_gettop(L);
  lml_task *t = luaL_checkudata(L, hidx, LML_TASK_MT);
  lml_task *outer = h->current;
  h->current = t;
  bool broke_deadlock = false;
  while (!lml_task_done(t)) {
    if (host_turn(h)) continue;
    if (broke_deadlock) break;
    broke_deadlock = true;
    lml_task_interrupt(t, "deadlock: the coroutine waits for something "
                          "that can never happen");
  }
  h->current = outer;
  if (!lml_task_done(t)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "lumen: the coroutine is stuck and cannot be resumed");
    return LUA_ERRRUN;
  }
  int n = lml_task_results(L, hidx);
  if (n < 0) {
    lua_remove(L, hidx);
    return LUA_ERRRUN;
  }
  lua_remove(L, hidx);
  if (nresults != LUA_MULTRET) lua_settop(L, hidx - 1 + nresults);
  return LUA_OK;
}

/* Returns the number of failures reported on stderr: errors of spawned
** coroutines that nobody awaited, plus one if coroutines were left waiting
** for each other; 0 when everything finished cleanly. */
int lm_host_drain(lm_host *h)
{
  int deadlocked = 0;
  while (h->ctx->live_tasks > 0) {
    if (!host_turn(h)) {
      deadlocked = 1;
      fprintf(stderr, "lumen: %lld coroutine(s) wait for each other and can never finish\n",
              (long long)h->ctx->live_tasks);
      break;
    }
  }
  int n = lml_sched_report_unobserved(h->L);
  return n + deadlocked;
}

void lm_host_interrupt(lm_host *h)
{
  if (h->current && !lml_task_done(h->current))
    lml_task_interrupt(h->current, "interrupted");
}
