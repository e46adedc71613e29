/*
** The per-state context: the engine (created lazily, so `require "lumen"`
** costs nothing until the first op), external-memory accounting for the
** collector, and the shutdown that runs when the lua_State closes.
*/
#include <stdlib.h>

#include "lml.h"

/* Registry keys: addresses of these statics. */
static const char ctx_key = 'c';
static const char sentinel_key = 's';

/* Full collections start once the engine holds this many bytes more than
** it did after the previous one (torch's heap tracking, anchors §2). */
#define LML_GC_BASE ((int64_t)256 << 20)

/* Runs when the state closes (or the sentinel is otherwise collected, which
** cannot happen earlier since the registry holds it).  Finalizers run in
** reverse order of creation, so every tensor box and task is gone by now. */
static int sentinel_gc(lua_State *L)
{
  lml_ctx **box = lua_touserdata(L, 1);
  lml_ctx *ctx = *box;
  if (!ctx) return 0;
  *box = NULL;
  ctx->closing = true;
  lml_sched_shutdown(ctx);
  if (ctx->engine) lm_engine_release(ctx->engine);
  ctx->engine = NULL;
  free(ctx);
  return 0;
}

lml_ctx *lml_ctx_get(lua_State *L)
{
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ctx_key) == LUA_TLIGHTUSERDATA) {
    lml_ctx *ctx = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return ctx;
  }
  lua_pop(L, 1);
  /* The sentinel first, so that a failed allocation leaves nothing behind. */
  lml_ctx **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  lml_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) luaL_error(L, "lumen: out of memory");
  *box = ctx;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, sentinel_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &sentinel_key);
  lua_geti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  ctx->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  ctx->gc_threshold = LML_GC_BASE;
  lm_config_init(&ctx->cfg);
  lua_pushlightuserdata(L, ctx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
  return ctx;
}

void lml_ctx_configure(lua_State *L, const lm_config *cfg)
{
  lml_ctx *ctx = lml_ctx_get(L);
  if (cfg && !ctx->engine) {
    ctx->cfg = *cfg;
    ctx->have_cfg = true;
  }
}

lm_engine *lml_engine(lua_State *L, lml_ctx *ctx)
{
  if (ctx->engine) return ctx->engine;
  if (ctx->closing) luaL_error(L, "lumen: the engine is shutting down");
  lm_engine *e = NULL;
  int st = lm_engine_new(ctx->have_cfg ? &ctx->cfg : NULL, &e);
  if (st < 0) {
    /* No engine means no per-engine message; the status says enough. */
    return (lm_engine *)(intptr_t)luaL_error(
        L, "lumen: cannot create the engine: %s (%s)", lm_status_string(st),
        lm_status_name(st));
  }
  ctx->engine = e;
  return e;
}

void lml_ctx_account(lua_State *L, lml_ctx *ctx)
{
  if (!ctx->engine) return;
  lm_engine_stats s;
  lm_engine_stats_get(ctx->engine, &s);
  int64_t bytes = s.host_bytes + s.device_bytes;
  if (bytes <= ctx->gc_threshold) return;
  lua_gc(L, LUA_GCCOLLECT);
  lm_engine_stats_get(ctx->engine, &s);
  bytes = s.host_bytes + s.device_bytes;
  /* Doubling keeps live data that Lua cannot free from causing a full
  ** collection on every new tensor. */
  ctx->gc_threshold = bytes * 2 > LML_GC_BASE ? bytes * 2 : LML_GC_BASE;
}

void lml_ctx_turn(lua_State *L, lml_ctx *ctx)
{
  if (ctx->turning)
    luaL_error(L, "lumen: cannot wait here: the loop is already running "
                  "(wait from a coroutine started by spawn or lumen.run)");
  lm_engine *e = lml_engine(L, ctx);
  ctx->turning = true;
  lm_engine_run(e, 1);
  ctx->turning = false;
}
