/*
** The Lua half of the REPL: printing values and finding completion
** candidates.  It is plain Lua over the globals, so it lives as a snippet
** here rather than in C; loaded once and kept in the registry.
*/
#include <lauxlib.h>
#include <lua.h>

#include "repl_internal.h"

static const char repl_lua[] =
    "local G = ...\n"
    "local keywords = {}\n"
    "for w in ([[and break do else elseif end false for function goto if in\n"
    "  local nil not or repeat return then true until while]]):gmatch('%a+') do\n"
    "  keywords[w] = true\n"
    "end\n"
    "local function is_name(k)\n"
    "  return type(k) == 'string' and k:match('^[%a_][%w_]*$') ~= nil and not keywords[k]\n"
    "end\n"
    /* Values print through the prelude's lumen.pretty (tables expanded,
    ** tensors as their one-line summary); strings print as they are, as in
    ** lua.c's REPL. */
    "local function show(...)\n"
    "  local lm = rawget(G, 'lumen')\n"
    "  local pretty = type(lm) == 'table' and rawget(lm, 'pretty')\n"
    "  if type(pretty) ~= 'function' then pretty = tostring end\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do\n"
    "    local v = (select(i, ...))\n"
    "    out[i] = type(v) == 'string' and v or pretty(v)\n"
    "  end\n"
    "  print(table.concat(out, '\\t'))\n"
    "end\n"
    /* Completion: the value named by a dotted path, then the names it offers:
    ** its own keys and those of its metatable's __index, followed when that
    ** is a table or, for a function, through the tables among its upvalues
    ** (where a C or Lua __index usually keeps its methods). */
    "local function resolve(path)\n"
    "  local v = G\n"
    "  for name in path:gmatch('[^.]+') do\n"
    "    local tv = type(v)\n"
    "    if tv ~= 'table' and tv ~= 'userdata' then return nil end\n"
    "    local ok, nv = pcall(function() return v[name] end)\n"
    "    if not ok then return nil end\n"
    "    v = nv\n"
    "  end\n"
    "  return v\n"
    "end\n"
    "local function collect(v, methods, out, seen, depth)\n"
    "  if v == nil or seen[v] or depth > 8 then return end\n"
    "  seen[v] = true\n"
    "  if type(v) == 'table' then\n"
    "    for k, x in next, v do\n"
    "      if is_name(k) and (not methods or type(x) == 'function') then out[k] = true end\n"
    "    end\n"
    /* The lumen module finds ops through a function __index: ask it. */
    "    if v == rawget(G, 'lumen') and type(rawget(v, 'ops')) == 'function' then\n"
    "      local ok, list = pcall(v.ops)\n"
    "      if ok and type(list) == 'table' then\n"
    "        for _, name in ipairs(list) do\n"
    "          if is_name(name) then out[name] = true end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  elseif type(v) == 'function' and debug and debug.getupvalue then\n"
    "    for i = 1, 255 do\n"
    "      local name, up = debug.getupvalue(v, i)\n"
    "      if name == nil then break end\n"
    "      if type(up) == 'table' and up ~= G then collect(up, true, out, seen, depth + 1) end\n"
    "    end\n"
    "    return\n"
    "  end\n"
    "  local mt = getmetatable(v)\n"
    "  if type(mt) == 'table' then collect(rawget(mt, '__index'), methods, out, seen, depth + 1) end\n"
    "end\n"
    "local function complete(base, sep, partial)\n"
    "  local names = {}\n"
    "  if base == '' then\n"
    "    collect(G, false, names, {}, 0)\n"
    "    for k in pairs(keywords) do names[k] = true end\n"
    "  else\n"
    "    local v = resolve(base)\n"
    "    if v == nil then return {} end\n"
    "    collect(v, sep == ':', names, {}, 0)\n"
    "  end\n"
    "  local list = {}\n"
    "  for k in pairs(names) do\n"
    "    if k:sub(1, #partial) == partial then list[#list + 1] = k end\n"
    "  end\n"
    "  table.sort(list)\n"
    "  return list\n"
    "end\n"
    "return {show = show, complete = complete}\n";

int lm_repl_lua_init(lua_State *L) {
  if (luaL_loadbufferx(L, repl_lua, sizeof repl_lua - 1, "=repl", "t") != LUA_OK)
    return -1;
  lua_pushglobaltable(L);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) return -1;
  lua_setfield(L, LUA_REGISTRYINDEX, LM_REPL_REGKEY);
  return 0;
}

int lm_repl_lua_get(lua_State *L, const char *name) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LM_REPL_REGKEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return LUA_TNIL;
  }
  int t = lua_getfield(L, -1, name);
  lua_remove(L, -2);
  return t;
}
