/*
** lumen.extract_archive(path, dest_dir [, {max_bytes =, max_files =}]): the
** Lua binding of extract.c (read its header for what is refused and why).
** Defaults: max_bytes 1 GiB, max_files 10000.
**
** Returns {files = N, dirs = N, bytes = N}, or nil, message, code (luv's
** probe convention, as lumen.fs): code "LM_EINVAL" for an archive refused for
** its content or format, "LM_EIO" for a failure of the file system.
** Synchronous: it runs on the loop thread, bounded by max_bytes.
*/
#include <string.h>

#include "extract.h"
#include "lml.h"

#define DEFAULT_MAX_BYTES ((int64_t)1 << 30)
#define DEFAULT_MAX_FILES 10000

static int64_t opt_int(lua_State *L, int idx, const char *key, int64_t dflt)
{
  if (lua_isnoneornil(L, idx)) return dflt;
  int t = lua_getfield(L, idx, key);
  int64_t v = dflt;
  if (t != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
      luaL_error(L, "extract_archive: option '%s' must be a non-negative integer", key);
    v = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static int push_fail(lua_State *L, const char *msg, const char *code)
{
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

static int l_extract_archive(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  const char *dest = luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (strcmp(k, "max_bytes") != 0 && strcmp(k, "max_files") != 0)
        return luaL_error(L, "extract_archive: unknown option '%s' (max_bytes, max_files)", k);
      lua_pop(L, 1);
    }
  }
  int64_t max_bytes = opt_int(L, 3, "max_bytes", DEFAULT_MAX_BYTES);
  int64_t max_files = opt_int(L, 3, "max_files", DEFAULT_MAX_FILES);
  lm_extract_stats st;
  char msg[1024];
  const char *code = "LM_EIO";
  if (lm_extract_archive(path, dest, max_bytes, max_files, &st, msg, sizeof msg, &code) != 0)
    return push_fail(L, msg, code);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, st.files);
  lua_setfield(L, -2, "files");
  lua_pushinteger(L, st.dirs);
  lua_setfield(L, -2, "dirs");
  lua_pushinteger(L, st.bytes);
  lua_setfield(L, -2, "bytes");
  return 1;
}

void lml_archive_open(lua_State *L, int module_idx)
{
  module_idx = lua_absindex(L, module_idx);
  lua_pushcfunction(L, l_extract_archive);
  lua_setfield(L, module_idx, "extract_archive");
}
