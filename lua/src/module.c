/*
** luaopen_lumen: the `lumen` module table, for the lumen command and for
** `require "lumen"` from a stock lua5.4 (lumen.so).
**
** The engine is created on first use (first op, first tensor), so loading
** the module is cheap; `lumen.configure{...}` may set threads or the
** synchronous mode before that.  Ops are found through the module's
** __index (`lumen.LoadNifti`), and the embedded prelude (the files in lua/lib) adds
** the helpers written in Lua.
*/
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lml.h"
#include "lml_prelude.h"

/* lumen.configure{threads=N, io_threads=N, synchronous=bool, no_cuda=bool}:
** engine settings; only before the engine exists (first op or tensor). */
static int l_configure(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lml_ctx *ctx = lml_ctx_get(L);
  if (ctx->engine)
    return luaL_error(L, "lumen.configure: the engine already runs; configure before the first op");
  lm_config cfg = ctx->cfg;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "threads") == 0) cfg.threads = (int)luaL_checkinteger(L, -1);
    else if (strcmp(k, "io_threads") == 0) cfg.io_threads = (int)luaL_checkinteger(L, -1);
    else if (strcmp(k, "synchronous") == 0) cfg.synchronous = lua_toboolean(L, -1);
    else if (strcmp(k, "no_cuda") == 0) cfg.no_cuda = lua_toboolean(L, -1);
    else return luaL_argerror(L, 1, lua_pushfstring(L, "unknown setting '%s' "
                              "(threads, io_threads, synchronous, no_cuda)", k));
    lua_pop(L, 1);
  }
  lml_ctx_configure(L, &cfg);
  return 0;
}

/* lumen.isatty([stream = "stdout"]): is it a terminal ("stdin", "stdout",
** "stderr" or a file descriptor number)? */
static int l_isatty(lua_State *L)
{
  int fd = 1;
  if (lua_type(L, 1) == LUA_TNUMBER) fd = (int)lua_tointeger(L, 1);
  else if (!lua_isnoneornil(L, 1)) {
    static const char *const names[] = {"stdin", "stdout", "stderr", NULL};
    fd = luaL_checkoption(L, 1, NULL, names);
  }
  lua_pushboolean(L, isatty(fd));
  return 1;
}

/* lumen.debug.live() -> counts of what is alive: tensors (engine-wide),
** jobs, tasks (managed coroutines not finished), boxes (tensor userdata
** holding a tensor), models (Model userdata holding a model), pending (jobs
** and timers in flight), host_bytes, device_bytes.  Zeros before the engine
** exists. */
static int l_live(lua_State *L)
{
  lml_ctx *ctx = lml_ctx_get(L);
  lm_engine_stats s;
  memset(&s, 0, sizeof s);
  if (ctx->engine) lm_engine_stats_get(ctx->engine, &s);
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, s.live_tensors);
  lua_setfield(L, -2, "tensors");
  lua_pushinteger(L, s.live_jobs);
  lua_setfield(L, -2, "jobs");
  lua_pushinteger(L, ctx->live_tasks);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, ctx->live_boxes);
  lua_setfield(L, -2, "boxes");
  lua_pushinteger(L, ctx->live_models);
  lua_setfield(L, -2, "models");
  lua_pushinteger(L, ctx->npending);
  lua_setfield(L, -2, "pending");
  lua_pushinteger(L, s.host_bytes);
  lua_setfield(L, -2, "host_bytes");
  lua_pushinteger(L, s.device_bytes);
  lua_setfield(L, -2, "device_bytes");
  return 1;
}

/* lumen.engine_info() -> {threads, host_cached_bytes, cuda_devices,
** cuda_status, synchronous} (creates the engine). */
static int l_engine_info(lua_State *L)
{
  lml_ctx *ctx = lml_ctx_get(L);
  lm_engine *e = lml_engine(L, ctx);
  lm_engine_stats s;
  lm_engine_stats_get(e, &s);
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, s.threads);
  lua_setfield(L, -2, "threads");
  lua_pushinteger(L, s.host_cached_bytes);
  lua_setfield(L, -2, "host_cached_bytes");
  /* held by live tensors (lumen serve's /metrics reports both) */
  lua_pushinteger(L, s.host_bytes);
  lua_setfield(L, -2, "host_bytes");
  lua_pushinteger(L, s.device_bytes);
  lua_setfield(L, -2, "device_bytes");
  lua_pushinteger(L, lm_engine_cuda_devices(e));
  lua_setfield(L, -2, "cuda_devices");
  lua_pushstring(L, lm_engine_cuda_status(e));
  lua_setfield(L, -2, "cuda_status");
  lua_pushboolean(L, ctx->have_cfg && ctx->cfg.synchronous);
  lua_setfield(L, -2, "synchronous");
  return 1;
}

/* lumen.trim(): give the allocator's cached host memory back. */
static int l_trim(lua_State *L)
{
  lml_ctx *ctx = lml_ctx_get(L);
  if (ctx->engine) lm_engine_trim(ctx->engine);
  return 0;
}

static const luaL_Reg module_funcs[] = {
  {"configure", l_configure},
  {"isatty", l_isatty},
  {"engine_info", l_engine_info},
  {"trim", l_trim},
  {NULL, NULL}
};

static void load_prelude(lua_State *L, int module_idx)
{
  for (const lml_chunk *c = lml_prelude; c->name; c++) {
    char chunkname[128];
    snprintf(chunkname, sizeof chunkname, "=[lumen prelude %s]", c->name);
    if (luaL_loadbufferx(L, c->src, c->len, chunkname, "t") != LUA_OK)
      lua_error(L);
    lua_pushvalue(L, module_idx);
    lua_call(L, 1, 0);
  }
}

int luaopen_lumen(lua_State *L)
{
  luaL_checkversion(L);
  lml_ctx_get(L);
  lua_newtable(L);
  int m = lua_gettop(L);
  luaL_setfuncs(L, module_funcs, 0);
  lua_pushliteral(L, LUMEN_VERSION);
  lua_setfield(L, m, "version");
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_live);
  lua_setfield(L, -2, "live");
  lua_setfield(L, m, "debug");
  lml_tensor_open(L, m);
  lml_model_open(L, m);
  lml_sched_open(L, m);
  lml_ops_open(L, m);
  lml_fs_open(L, m);
  lml_fs_tree_open(L, m);
  lml_archive_open(L, m);
  lml_json_open(L, m);
  lml_http_open(L, m);
  load_prelude(L, m);
  return 1;
}
