/*
** lumen.fs and lumen.clock: the few file-system and time helpers pipeline
** scripts need and stock Lua lacks (listing a folder of cases, creating
** an output folder, timing).  Synchronous: they are metadata calls.
**
** Failures follow luv's probe convention: nil, message, code.
*/
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lml.h"

static int push_errno(lua_State *L, const char *what, const char *path)
{
  int err = errno;
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
  lua_pushstring(L, err == ENOENT ? "LM_ENOENT" : "LM_EIO");
  return 3;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* lumen.fs.list(dir) -> sorted list of entry names (no "." or ".."). */
static int fs_list(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return push_errno(L, "cannot list", path);
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  /* Sort in Lua's table through a C array of borrowed strings. */
  const char **names = lua_newuserdatauv(L, sizeof *names * (size_t)(n ? n : 1), 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, -2, i + 1);
    names[i] = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive in the table */
  }
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* lumen.fs.stat(path) -> "file", "dir", "other", or nil, message, code. */
static int fs_stat(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return push_errno(L, "cannot stat", path);
  lua_pushstring(L, S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "file" : "other");
  return 1;
}

/* lumen.fs.mkdir(path) -> true (also when it exists as a folder), or nil,
** message, code. */
static int fs_mkdir(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (mkdir(path, 0777) != 0 && !(errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
    return push_errno(L, "cannot create folder", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* lumen.fs.remove(path) -> true, or nil, message, code. */
static int fs_remove(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  if (remove(path) != 0) return push_errno(L, "cannot remove", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* lumen.clock() -> seconds from a monotonic clock (for timing). */
static int l_clock(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)uv_hrtime() * 1e-9);
  return 1;
}

static const luaL_Reg fs_funcs[] = {
  {"list", fs_list}, {"stat", fs_stat}, {"mkdir", fs_mkdir},
  {"remove", fs_remove}, {NULL, NULL}
};

void lml_fs_open(lua_State *L, int module_idx)
{
  module_idx = lua_absindex(L, module_idx);
  luaL_newlib(L, fs_funcs);
  lua_setfield(L, module_idx, "fs");
  lua_pushcfunction(L, l_clock);
  lua_setfield(L, module_idx, "clock");
}
