/*
** Folder trees for staging uploads (the admin API of `lumen serve` builds a
** model folder beside the repository's folders, then renames it in place):
** lumen.fs.mkdtemp(prefix), lumen.fs.remove_tree(path), lumen.fs.exchange(a,
** b) and lumen.fs.lstat(path), added to the lumen.fs table of fs.c.
** Failures follow lumen.fs: nil, message, code.
*/
#include <errno.h>
#include <fcntl.h> /* AT_FDCWD */
#include <stdio.h> /* renameat2 (glibc 2.28, _GNU_SOURCE) */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "extract.h" /* lm_remove_tree */
#include "lml.h"

/* lumen.fs.remove_tree(path) -> true (also when path does not exist): the
** file, or the folder with everything in it; links are removed, not
** followed. */
static int fs_remove_tree(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  if (path[0] == '\0' || strcmp(path, "/") == 0)
    return luaL_argerror(L, 1, "refusing to remove the root or an empty path");
  if (lm_remove_tree(path) != 0) {
    int err = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot remove %s: %s", path, strerror(err));
    lua_pushstring(L, "LM_EIO");
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* lumen.fs.mkdtemp(prefix) -> the path of a new folder (mode 0700) named
** prefix followed by six random characters, or nil, message, code. */
static int fs_mkdtemp(lua_State *L)
{
  size_t n;
  const char *prefix = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, n + 7);
  memcpy(p, prefix, n);
  memcpy(p + n, "XXXXXX", 7);
  if (!mkdtemp(p)) {
    int err = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot create a folder %sXXXXXX: %s", prefix, strerror(err));
    lua_pushstring(L, err == ENOENT ? "LM_ENOENT" : "LM_EIO");
    return 3;
  }
  luaL_pushresultsize(&b, n + 6);
  return 1;
}

/* lumen.fs.exchange(a, b) -> true: swap two paths (folders included) in one
** atomic step (renameat2 RENAME_EXCHANGE), so a model folder is replaced
** without an instant where its name is missing.  Both must exist on one
** file system.  A file system without the operation gives nil, message,
** "LM_ENOTSUP" (the caller may then fall back to two renames). */
static int fs_exchange(lua_State *L)
{
  const char *a = luaL_checkstring(L, 1);
  const char *b = luaL_checkstring(L, 2);
  if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0) {
    int err = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot exchange %s and %s: %s", a, b, strerror(err));
    lua_pushstring(L, err == EINVAL || err == ENOSYS || err == EOPNOTSUPP ? "LM_ENOTSUP"
                      : err == ENOENT ? "LM_ENOENT" : "LM_EIO");
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* lumen.fs.lstat(path) -> "file", "dir", "link", "other" (the path itself,
** a link not followed), or nil, message, code. */
static int fs_lstat(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (lstat(path, &st) != 0) {
    int err = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot stat %s: %s", path, strerror(err));
    lua_pushstring(L, err == ENOENT ? "LM_ENOENT" : "LM_EIO");
    return 3;
  }
  lua_pushstring(L, S_ISLNK(st.st_mode) ? "link" : S_ISDIR(st.st_mode) ? "dir"
                    : S_ISREG(st.st_mode) ? "file" : "other");
  return 1;
}

void lml_fs_tree_open(lua_State *L, int module_idx)
{
  module_idx = lua_absindex(L, module_idx);
  if (lua_getfield(L, module_idx, "fs") != LUA_TTABLE)
    luaL_error(L, "lml_fs_tree_open: lumen.fs must be opened first");
  lua_pushcfunction(L, fs_remove_tree);
  lua_setfield(L, -2, "remove_tree");
  lua_pushcfunction(L, fs_mkdtemp);
  lua_setfield(L, -2, "mkdtemp");
  lua_pushcfunction(L, fs_exchange);
  lua_setfield(L, -2, "exchange");
  lua_pushcfunction(L, fs_lstat);
  lua_setfield(L, -2, "lstat");
  lua_pop(L, 1);
}
