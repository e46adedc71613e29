/*
** The Model userdata: a pointer box holding one reference to an lm_model,
** with the tensor box's pattern (__gc and __close share one function;
** m:free() releases now; a released model raises on use).
**
** Fields (computed on access from the model): name, axes, inputs and
** outputs ({name, shape, dtype} lists), labels (label number -> name),
** metadata (the whole metadata table).  Methods live in lumen.Model (the
** prelude adds m:infer(x, opts), which calls Infer).
**
** lumen.load_graph(json_text, base_dir, opts) builds a model from lumen
** graph JSON (what lumen.nn writes).
*/
#include <string.h>

#include "lml.h"

typedef struct lml_mbox {
  lm_model *m;
  lml_ctx *ctx;
} lml_mbox;

void lml_model_push(lua_State *L, lml_ctx *ctx, lm_model *m)
{
  if (!m) luaL_error(L, "lumen: internal error: no model to push");
  lml_mbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->m = NULL;
  b->ctx = ctx;
  luaL_setmetatable(L, LML_MODEL_MT);
  b->m = m;
  ctx->live_models++;
}

lm_model *lml_model_peek(lua_State *L, int idx, bool *released)
{
  lml_mbox *b = luaL_testudata(L, idx, LML_MODEL_MT);
  *released = b && !b->m;
  return b ? b->m : NULL;
}

static lm_model *check_model(lua_State *L, int idx)
{
  lml_mbox *b = luaL_checkudata(L, idx, LML_MODEL_MT);
  if (!b->m) luaL_argerror(L, idx, "attempt to use a released model");
  return b->m;
}

/* __gc, __close and m:free(). */
static int m_free(lua_State *L)
{
  lml_mbox *b = luaL_checkudata(L, 1, LML_MODEL_MT);
  if (b->m) {
    lm_model_release(b->m);
    b->m = NULL;
    b->ctx->live_models--;
  }
  return 0;
}

static int m_is_released(lua_State *L)
{
  lml_mbox *b = luaL_checkudata(L, 1, LML_MODEL_MT);
  lua_pushboolean(L, b->m == NULL);
  return 1;
}

/* Push metadata[key] decoded (or the whole metadata when key is NULL). */
static void push_meta(lua_State *L, lm_model *m, const char *key, int flags)
{
  const char *text = lm_model_metadata(m);
  char err[128];
  if (lml_json_push(L, text, strlen(text), flags, err, sizeof err) < 0) {
    lua_pushnil(L);
    return;
  }
  if (key) {
    lua_getfield(L, -1, key);
    lua_remove(L, -2);
  }
}

static int f_name(lua_State *L)
{
  lua_pushstring(L, lm_model_name(check_model(L, 1)));
  return 1;
}

static int f_axes(lua_State *L)
{
  lua_pushstring(L, lm_model_axes(check_model(L, 1)));
  return 1;
}

static int f_inputs(lua_State *L)
{
  push_meta(L, check_model(L, 1), "inputs", 0);
  return 1;
}

static int f_outputs(lua_State *L)
{
  push_meta(L, check_model(L, 1), "outputs", 0);
  return 1;
}

static int f_metadata(lua_State *L)
{
  push_meta(L, check_model(L, 1), NULL, 0);
  return 1;
}

/* labels[label number] = name, from either form metadata.json allows:
** {"1": "White Matter"} or ["background", "White Matter", ...] (entry i is
** label i - 1).  Decoded without integer keys, so the two forms differ: an
** object gives string keys, a list a sequence. */
static int f_labels(lua_State *L)
{
  push_meta(L, check_model(L, 1), "labels", 0);
  int src = lua_gettop(L);
  lua_newtable(L);
  if (!lua_istable(L, src)) {
    lua_remove(L, src);
    return 1;
  }
  lua_pushnil(L);
  while (lua_next(L, src)) {
    if (lua_type(L, -2) == LUA_TNUMBER) {
      lua_pushinteger(L, lua_tointeger(L, -2) - 1);
    } else {
      int ok = 0;
      lua_Integer k = lua_tointegerx(L, -2, &ok);
      if (!ok) {
        lua_pop(L, 1);
        continue;
      }
      lua_pushinteger(L, k);
    }
    lua_pushvalue(L, -2);
    lua_rawset(L, src + 1);
    lua_pop(L, 1);
  }
  lua_remove(L, src);
  return 1;
}

static const luaL_Reg fields[] = {
  {"name", f_name}, {"axes", f_axes}, {"inputs", f_inputs}, {"outputs", f_outputs},
  {"labels", f_labels}, {"metadata", f_metadata}, {NULL, NULL}
};

static void shape_text(luaL_Buffer *B, lua_State *L, int ndim, const int64_t *sh)
{
  luaL_addchar(B, '(');
  for (int d = 0; d < ndim; d++) {
    if (d) luaL_addstring(B, ", ");
    if (sh[d] < 0) luaL_addchar(B, '?');
    else {
      lua_pushfstring(L, "%I", (lua_Integer)sh[d]);
      luaL_addvalue(B);
    }
  }
  luaL_addchar(B, ')');
}

/* "Model model5_gw_ae (onnx, axes ZYX, input input (?, 1, 256, 256, 256),
** 1 output, 3 labels)". */
static int m_tostring(lua_State *L)
{
  lml_mbox *b = luaL_checkudata(L, 1, LML_MODEL_MT);
  if (!b->m) {
    lua_pushliteral(L, "Model (released)");
    return 1;
  }
  lm_model *m = b->m;
  push_meta(L, m, "format", 0);
  const char *format = lua_tostring(L, -1);
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  lua_pushfstring(L, "Model %s (%s, axes %s", lm_model_name(m), format ? format : "?",
                  lm_model_axes(m));
  luaL_addvalue(&B);
  for (int i = 0; i < lm_model_ninputs(m); i++) {
    int64_t sh[LM_MAX_DIMS];
    int nd = lm_model_input_shape(m, i, sh);
    lua_pushfstring(L, ", input %s ", lm_model_input_name(m, i));
    luaL_addvalue(&B);
    if (nd >= 0) shape_text(&B, L, nd, sh);
    else luaL_addstring(&B, "(any shape)");
  }
  int no = lm_model_noutputs(m);
  lua_pushfstring(L, ", %d output%s", no, no == 1 ? "" : "s");
  luaL_addvalue(&B);
  lua_pushcfunction(L, f_labels);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  int nl = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    nl++;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (nl > 0) {
    lua_pushfstring(L, ", %d labels", nl);
    luaL_addvalue(&B);
  }
  luaL_addchar(&B, ')');
  luaL_pushresult(&B);
  lua_remove(L, -2); /* format */
  return 1;
}

/* __index(m, key): a field (upvalue 1: name -> getter) or a method
** (upvalue 2: lumen.Model).  Both upvalues are tables of functions, which
** is what the REPL's completion looks through. */
static int m_index(lua_State *L)
{
  if (lua_type(L, 2) == LUA_TSTRING) {
    if (lua_getfield(L, lua_upvalueindex(1), lua_tostring(L, 2)) == LUA_TFUNCTION) {
      lua_pushvalue(L, 1);
      lua_call(L, 1, 1);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, 2);
  lua_gettable(L, lua_upvalueindex(2));
  return 1;
}

static int opt_string(lua_State *L, int idx, const char *key, const char **out)
{
  *out = NULL;
  int t = lua_getfield(L, idx, key);
  if (t == LUA_TNIL) return 0;
  if (t != LUA_TSTRING)
    return luaL_argerror(L, 3, lua_pushfstring(L, "option '%s' must be a string", key));
  *out = lua_tostring(L, -1); /* stays on the stack, so it stays alive */
  return 1;
}

/* lumen.load_graph(json_text, base_dir = ".", {precision, axes}) -> Model */
static int l_load_graph(lua_State *L)
{
  size_t len;
  const char *json = luaL_checklstring(L, 1, &len);
  const char *base = luaL_optstring(L, 2, ".");
  lm_model_options opt;
  lm_model_options_init(&opt);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (strcmp(k, "precision") && strcmp(k, "axes"))
        return luaL_argerror(L, 3, lua_pushfstring(L, "unknown option '%s' (options: "
                                                      "precision, axes)", k));
      lua_pop(L, 1);
    }
    opt_string(L, 3, "precision", &opt.precision);
    opt_string(L, 3, "axes", &opt.axes);
  }
  lml_ctx *ctx = lml_ctx_get(L);
  lm_engine *e = lml_engine(L, ctx);
  lm_model *m = NULL;
  int st = lm_model_load_graph(e, json, len, base, &opt, &m);
  if (st < 0) return lml_error_raise(L, st, "load_graph", lm_errmsg(e));
  lml_model_push(L, ctx, m);
  return 1;
}

/* lumen.model_repository() -> the folder bare model names resolve in. */
static int l_model_repository(lua_State *L)
{
  char buf[4096];
  lua_pushstring(L, lm_model_repository(buf, sizeof buf));
  return 1;
}

/* lumen.ismodel(v) */
static int l_ismodel(lua_State *L)
{
  lua_pushboolean(L, luaL_testudata(L, 1, LML_MODEL_MT) != NULL);
  return 1;
}

static const luaL_Reg methods[] = {
  {"free", m_free}, {"is_released", m_is_released}, {NULL, NULL}
};

void lml_model_open(lua_State *L, int module_idx)
{
  module_idx = lua_absindex(L, module_idx);
  luaL_newlib(L, methods); /* lumen.Model: the prelude adds infer */
  lua_pushvalue(L, -1);
  lua_setfield(L, module_idx, "Model");
  int mt_methods = lua_gettop(L);
  if (luaL_newmetatable(L, LML_MODEL_MT)) {
    lua_pushcfunction(L, m_free);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, m_free);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, m_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, fields);
    lua_pushvalue(L, mt_methods);
    lua_pushcclosure(L, m_index, 2);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 2);
  lua_pushcfunction(L, l_load_graph);
  lua_setfield(L, module_idx, "load_graph");
  lua_pushcfunction(L, l_ismodel);
  lua_setfield(L, module_idx, "ismodel");
  lua_pushcfunction(L, l_model_repository);
  lua_setfield(L, module_idx, "model_repository");
}
