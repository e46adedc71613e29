/*
** Ops as Lua functions, generated from the registry at run time: one generic
** C closure whose upvalues are the op's descriptor and the ctx (anchors R4).
**
**   outputs..., [results] = Op(tensor, ..., {option = value, ...})
**
** Positional tensor inputs come first, then one options table.  A Model
** may also be given positionally (Infer(model, x)) for an op with a MODEL
** option, and a leading string is the 'path' option of a source op without
** tensor outputs (LoadModel("models/demo")).  Options are
** checked against the descriptor before anything is allocated or queued, so
** misuse raises at once with "bad argument #n to 'Op' (...)".  The call
** returns the output tensors, then, if the op gave scalar results (such as
** LoadNifti's header facts), one table of them last.  MODEL results become
** Model objects; an op whose only result is one model and that has no
** tensor output (LoadModel) returns the Model itself.
**
** Inside a coroutine managed by lumen's scheduler the op is submitted with
** lm_call_async and the coroutine yields until the loop resumes it.
** Elsewhere (a stock lua5.4 main chunk, a user's own coroutine, a metamethod
** that cannot yield) the op runs synchronously with lm_call.
**
** Runtime failures raise a structured error, a table
** {code = "LM_ENOENT", op = "LoadNifti", message = "...", status = -4}
** with __tostring, so pcall can inspect it and tracebacks show the message.
*/
#include <stdlib.h>
#include <string.h>

#include "lml.h"

#define LML_MAX_INPUTS 16

static const char opfuncs_key = 'f'; /* name -> function */
static const char opnames_key = 'n'; /* function -> name */

static const char *const arg_type_names[] = {
  "a number", "an integer", "a boolean", "a string", "a list of numbers", "a Model"
};

/* The same without the article, for listings. */
static const char *const arg_type_words[] = {
  "number", "integer", "boolean", "string", "list of numbers", "model"
};

static const char *arg_type_name(lm_arg_type t)
{
  return (unsigned)t < sizeof arg_type_names / sizeof *arg_type_names
             ? arg_type_names[t] : "a value of an unknown type";
}

/* ---- structured errors ---- */

static int err_tostring(lua_State *L)
{
  lua_getfield(L, 1, "op");
  lua_getfield(L, 1, "message");
  const char *op = lua_tostring(L, -2);
  const char *msg = lua_tostring(L, -1);
  if (!msg) msg = "(no message)";
  size_t oplen = op ? strlen(op) : 0;
  if (op && *op && !(strncmp(msg, op, oplen) == 0 && msg[oplen] == ':'))
    lua_pushfstring(L, "%s: %s", op, msg);
  else
    lua_pushstring(L, msg);
  return 1;
}

void lml_error_push(lua_State *L, int status, const char *op, const char *msg)
{
  lua_createtable(L, 0, 4);
  lua_pushstring(L, lm_status_name(status));
  lua_setfield(L, -2, "code");
  lua_pushstring(L, op ? op : "");
  lua_setfield(L, -2, "op");
  lua_pushstring(L, msg && *msg ? msg : lm_status_string(status));
  lua_setfield(L, -2, "message");
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  if (luaL_newmetatable(L, LML_ERROR_MT)) {
    lua_pushcfunction(L, err_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
}

int lml_error_raise(lua_State *L, int status, const char *op, const char *msg)
{
  lml_error_push(L, status, op, msg);
  return lua_error(L);
}

/* lumen.is_error(v): is v a structured lumen error? */
static int l_is_error(lua_State *L)
{
  bool yes = false;
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, LML_ERROR_MT);
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  lua_pushboolean(L, yes);
  return 1;
}

/* ---- option marshalling ---- */

static const lm_arg_desc *find_arg(const lm_op_desc *d, const char *name)
{
  for (int i = 0; i < d->nargs; i++)
    if (strcmp(d->args[i].name, name) == 0) return &d->args[i];
  return NULL;
}

/* luaL_argerror names the function by how it was reached (an alias, a
** local, "?" under pcall); the op's own name is clearer and stable. */
static int op_argerror(lua_State *L, const lm_op_desc *d, int arg, const char *msg)
{
  return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, d->name, msg);
}

static void push_option_names(lua_State *L, const lm_op_desc *d)
{
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  for (int i = 0; i < d->nargs; i++) {
    if (i) luaL_addstring(&B, ", ");
    luaL_addstring(&B, d->args[i].name);
  }
  if (d->nargs == 0) luaL_addstring(&B, "none");
  luaL_pushresult(&B);
}

/* Does the value at idx fit type t?  No allocation, no raise. */
static bool value_fits(lua_State *L, int idx, lm_arg_type t)
{
  switch (t) {
  case LM_ARG_NUMBER:
    return lua_type(L, idx) == LUA_TNUMBER;
  case LM_ARG_INT: {
    int ok = 0;
    if (lua_type(L, idx) == LUA_TNUMBER) lua_tointegerx(L, idx, &ok);
    return ok;
  }
  case LM_ARG_BOOL:
    return lua_type(L, idx) == LUA_TBOOLEAN;
  case LM_ARG_STRING:
    return lua_type(L, idx) == LUA_TSTRING;
  case LM_ARG_NUMBERS: {
    if (lua_type(L, idx) != LUA_TTABLE) return false;
    idx = lua_absindex(L, idx);
    lua_Unsigned n = lua_rawlen(L, idx);
    /* A list of numbers, or a list of equally long lists of numbers (points
    ** {{x,y,z},...}), which build_options flattens row by row. */
    bool nested = n > 0 && lua_rawgeti(L, idx, 1) == LUA_TTABLE;
    if (n > 0) lua_pop(L, 1);
    lua_Unsigned inner = 0;
    for (lua_Unsigned i = 1; i <= n; i++) {
      int ty = lua_rawgeti(L, idx, (lua_Integer)i);
      bool ok = ty == (nested ? LUA_TTABLE : LUA_TNUMBER);
      if (ok && nested) {
        if (i == 1) inner = lua_rawlen(L, -1);
        /* A row is a flat list (its first entry a number), not deeper. */
        bool flat = lua_rawgeti(L, -1, 1) == LUA_TNUMBER;
        lua_pop(L, 1);
        ok = flat && lua_rawlen(L, -1) == inner && value_fits(L, -1, LM_ARG_NUMBERS);
      }
      lua_pop(L, 1);
      if (!ok) return false;
    }
    /* Keys beyond the sequence mean a malformed list. */
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      lua_pop(L, 1);
      count++;
    }
    return (lua_Unsigned)count == n;
  }
  case LM_ARG_MODEL: {
    bool released;
    return lml_model_peek(L, idx, &released) != NULL;
  }
  }
  return false;
}

/* Options given positionally (a Model, a leading path string): the index
** of the descriptor's arg and the stack slot holding the value. */
typedef struct positional {
  int arg;
  int idx;
} positional;
#define MAX_POSITIONAL 4

static bool given_positionally(const positional *pos, int npos, int arg)
{
  for (int i = 0; i < npos; i++)
    if (pos[i].arg == arg) return true;
  return false;
}

/* Pass 1: check every option (raises; allocates nothing). */
static void check_options(lua_State *L, const lm_op_desc *d, int optidx, int argpos,
                          const positional *pos, int npos)
{
  if (optidx) {
    lua_pushnil(L);
    while (lua_next(L, optidx)) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        op_argerror(L, d, argpos, lua_pushfstring(L, "option names must be strings, got %s",
                                                 luaL_typename(L, -2)));
      }
      const char *key = lua_tostring(L, -2);
      const lm_arg_desc *a = find_arg(d, key);
      if (!a) {
        push_option_names(L, d);
        op_argerror(L, d, argpos, lua_pushfstring(L, "unknown option '%s' (options: %s)",
                                                 key, lua_tostring(L, -1)));
      }
      if (!value_fits(L, lua_gettop(L), a->type)) {
        op_argerror(L, d, argpos, lua_pushfstring(L, "option '%s' must be %s, got %s",
                                                 key, arg_type_name(a->type),
                                                 luaL_typename(L, -1)));
      }
      if (given_positionally(pos, npos, (int)(a - d->args)))
        op_argerror(L, d, argpos, lua_pushfstring(L, "option '%s' is given twice (as an "
                                                     "argument and in the options)", key));
      lua_pop(L, 1);
    }
  }
  for (int i = 0; i < d->nargs; i++) {
    const lm_arg_desc *a = &d->args[i];
    if (a->def || given_positionally(pos, npos, i)) continue;
    bool present = false;
    if (optidx) {
      present = lua_getfield(L, optidx, a->name) != LUA_TNIL;
      lua_pop(L, 1);
    }
    if (!present)
      op_argerror(L, d, argpos, lua_pushfstring(L, "missing required option '%s' (%s)",
                                               a->name, arg_type_name(a->type)));
  }
}

/* Pass 2: build the params (no raise; returns a status). */
static int build_options(lua_State *L, const lm_op_desc *d, int optidx, const positional *pos,
                         int npos, lm_params **out)
{
  lm_params *p = NULL;
  int st = lm_params_new(&p);
  if (st < 0) return st;
  for (int i = 0; i < npos && st >= 0; i++) {
    const lm_arg_desc *a = &d->args[pos[i].arg];
    bool released;
    if (a->type == LM_ARG_MODEL)
      st = lm_params_set_model(p, a->name, lml_model_peek(L, pos[i].idx, &released));
    else
      st = lm_params_set_string(p, a->name, lua_tostring(L, pos[i].idx));
  }
  if (optidx) {
    lua_pushnil(L);
    while (st >= 0 && lua_next(L, optidx)) {
      const char *key = lua_tostring(L, -2);
      const lm_arg_desc *a = find_arg(d, key);
      switch (a->type) {
      case LM_ARG_NUMBER:
        st = lm_params_set_number(p, key, lua_tonumber(L, -1));
        break;
      case LM_ARG_INT:
        st = lm_params_set_int(p, key, lua_tointeger(L, -1));
        break;
      case LM_ARG_BOOL:
        st = lm_params_set_bool(p, key, lua_toboolean(L, -1));
        break;
      case LM_ARG_STRING:
        st = lm_params_set_string(p, key, lua_tostring(L, -1));
        break;
      case LM_ARG_NUMBERS: {
        int rows = (int)lua_rawlen(L, -1), cols = 1;
        bool nested = rows > 0 && lua_rawgeti(L, -1, 1) == LUA_TTABLE;
        if (rows > 0) {
          if (nested) cols = (int)lua_rawlen(L, -1);
          lua_pop(L, 1);
        }
        int n = rows * cols;
        double *v = malloc(sizeof *v * (size_t)(n > 0 ? n : 1));
        if (!v) {
          st = LM_ENOMEM;
          break;
        }
        for (int i = 0; i < rows; i++) {
          lua_rawgeti(L, -1, i + 1);
          if (nested) {
            for (int c = 0; c < cols; c++) {
              lua_rawgeti(L, -1, c + 1);
              v[i * cols + c] = lua_tonumber(L, -1);
              lua_pop(L, 1);
            }
          } else {
            v[i] = lua_tonumber(L, -1);
          }
          lua_pop(L, 1);
        }
        st = lm_params_set_numbers(p, key, v, n);
        free(v);
        break;
      }
      case LM_ARG_MODEL: {
        bool released;
        st = lm_params_set_model(p, key, lml_model_peek(L, -1, &released));
        break;
      }
      }
      lua_pop(L, 1);
    }
    if (st < 0) lua_pop(L, 1); /* the key left by the interrupted lua_next */
  }
  if (st < 0) {
    lm_params_free(p);
    return st;
  }
  *out = p;
  return LM_OK;
}

/* ---- pushing results ---- */

static void push_value(lua_State *L, const lm_value *v)
{
  switch (v->type) {
  case LM_VALUE_NUMBER:
    lua_pushnumber(L, v->u.number);
    break;
  case LM_VALUE_INT:
    lua_pushinteger(L, v->u.integer);
    break;
  case LM_VALUE_BOOL:
    lua_pushboolean(L, v->u.boolean);
    break;
  case LM_VALUE_STRING:
    lua_pushstring(L, v->u.string);
    break;
  case LM_VALUE_JSON:
    /* Tables; label-keyed objects index by integer (res.labels[3]).  Ops
    ** produce valid JSON, so the raw text is only a fallback. */
    if (lml_json_push(L, v->u.string, strlen(v->u.string), LML_JSON_INT_KEYS,
                      NULL, 0) < 0)
      lua_pushstring(L, v->u.string);
    break;
  case LM_VALUE_NUMBERS:
    lua_createtable(L, v->u.numbers.n, 0);
    for (int i = 0; i < v->u.numbers.n; i++) {
      lua_pushnumber(L, v->u.numbers.v[i]);
      lua_rawseti(L, -2, i + 1);
    }
    break;
  case LM_VALUE_MODEL:
    lml_model_push(L, lml_ctx_get(L), lm_model_retain(v->u.model));
    break;
  default:
    lua_pushnil(L);
  }
}

static void push_params(lua_State *L, const lm_params *p)
{
  int n = lm_params_count(p);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    lm_value v;
    const char *name = lm_params_at(p, i, &v);
    if (!name) continue;
    push_value(L, &v);
    lua_setfield(L, -2, name);
  }
}

/* Push the outputs (the array's references move to Lua boxes); returns
** their count. */
static int push_outputs(lua_State *L, lml_ctx *ctx, lm_tensor **out, int nout)
{
  luaL_checkstack(L, nout + 2, "too many outputs");
  for (int i = 0; i < nout; i++) {
    lm_tensor *t = out[i];
    out[i] = NULL;
    lml_tensor_push(L, ctx, t);
  }
  return nout;
}

/* The one model of results that hold nothing else, or NULL. */
static lm_model *sole_model(const lm_params *res)
{
  lm_value v;
  if (lm_params_count(res) != 1 || !lm_params_at(res, 0, &v)) return NULL;
  return v.type == LM_VALUE_MODEL ? v.u.model : NULL;
}

/* Push outputs then results (a table, or the Model itself for an op that
** returns only a model); the out[] references move to Lua.  Returns the
** count pushed. */
static int push_returns(lua_State *L, lml_ctx *ctx, lm_tensor **out, int nout,
                        const lm_params *res)
{
  if (!res || lm_params_count(res) == 0) return push_outputs(L, ctx, out, nout);
  lm_model *only = nout == 0 ? sole_model(res) : NULL;
  if (only) {
    lml_model_push(L, ctx, lm_model_retain(only));
    return 1;
  }
  /* Results are converted first (they may be freed right after), then
  ** moved behind the outputs. */
  push_params(L, res);
  int rt = lua_gettop(L);
  int n = push_outputs(L, ctx, out, nout);
  lua_pushvalue(L, rt);
  lua_remove(L, rt);
  return n + 1;
}

/* ---- the generic op call ---- */

static int op_k(lua_State *L, int status, lua_KContext kctx)
{
  lml_pending *p = (lml_pending *)kctx;
  const lm_op_desc *d = lua_touserdata(L, lua_upvalueindex(1));
  lml_ctx *ctx = lua_touserdata(L, lua_upvalueindex(2));
  (void)status;
  lm_job *job = lml_pending_take(L, p);
  int st = lm_job_status(job);
  if (st < 0) {
    lml_error_push(L, st, d->name, lm_job_errmsg(job));
    lm_job_release(job);
    return lua_error(L);
  }
  int nout = lm_job_noutputs(job);
  if (nout > LM_MAX_OUTPUTS) nout = LM_MAX_OUTPUTS;
  lm_tensor *out[LM_MAX_OUTPUTS];
  for (int i = 0; i < nout; i++) out[i] = lm_tensor_retain(lm_job_output(job, i));
  /* The tensors were retained above; the job (which owns the results) is
  ** released once they have been converted. */
  int n = push_returns(L, ctx, out, nout, lm_job_results(job));
  lm_job_release(job);
  return n;
}

/* Is the argument at idx an option given positionally?  A Model fills
** the op's first MODEL option not yet given; a string in first position
** fills the op's 'path' option.  Returns the arg index, or -1. */
static int positional_option(lua_State *L, const lm_op_desc *d, int idx,
                             const positional *pos, int npos)
{
  bool released;
  if (lml_model_peek(L, idx, &released)) {
    for (int a = 0; a < d->nargs; a++)
      if (d->args[a].type == LM_ARG_MODEL && !given_positionally(pos, npos, a)) return a;
    return -1;
  }
  /* Only for ops that return a value rather than tensors (LoadModel): the
  ** image loaders keep the options-table form. */
  if (idx == 1 && lua_type(L, idx) == LUA_TSTRING && (d->flags & LM_OP_SOURCE) &&
      (!d->outputs || !*d->outputs)) {
    const lm_arg_desc *a = find_arg(d, "path");
    if (a && a->type == LM_ARG_STRING) return (int)(a - d->args);
  }
  return -1;
}

static int l_op_call(lua_State *L)
{
  const lm_op_desc *d = lua_touserdata(L, lua_upvalueindex(1));
  lml_ctx *ctx = lua_touserdata(L, lua_upvalueindex(2));
  lm_engine *e = lml_engine(L, ctx);
  int top = lua_gettop(L);
  int optidx = 0, nin = top;
  if (top > 0 && lua_type(L, top) == LUA_TTABLE) {
    optidx = top;
    nin = top - 1;
  }
  int maxin = d->max_inputs < LML_MAX_INPUTS ? d->max_inputs : LML_MAX_INPUTS;
  if (maxin < 0) maxin = LML_MAX_INPUTS;
  lm_tensor *in[LML_MAX_INPUTS];
  positional pos[MAX_POSITIONAL];
  int npos = 0, ntensors = 0;
  for (int i = 1; i <= nin; i++) {
    int slot = positional_option(L, d, i, pos, npos);
    if (slot >= 0) {
      if (npos == MAX_POSITIONAL)
        return op_argerror(L, d, i, "too many positional options");
      pos[npos].arg = slot;
      pos[npos].idx = i;
      npos++;
      continue;
    }
    if (ntensors + 1 > maxin) {
      if (luaL_testudata(L, i, LML_TENSOR_MT))
        return op_argerror(L, d, i, lua_pushfstring(L, "too many tensor inputs (at most %d: %s)",
                                                   maxin, d->inputs ? d->inputs : ""));
      return op_argerror(L, d, i, lua_pushfstring(L, "options table expected, got %s",
                                                 luaL_typename(L, i)));
    }
    bool released;
    in[ntensors] = lml_tensor_peek(L, i, &released);
    if (released) return op_argerror(L, d, i, "attempt to use a released tensor");
    if (!in[ntensors]) {
      lml_model_peek(L, i, &released);
      if (released) return op_argerror(L, d, i, "attempt to use a released model");
      return op_argerror(L, d, i, lua_pushfstring(L, LML_TENSOR_MT " expected, got %s",
                                                  luaL_typename(L, i)));
    }
    ntensors++;
  }
  if (ntensors < d->min_inputs)
    return op_argerror(L, d, nin + 1, lua_pushfstring(L, "tensor input expected (inputs: %s), got %s",
                                                     d->inputs ? d->inputs : "",
                                                     luaL_typename(L, nin + 1)));
  check_options(L, d, optidx, optidx ? optidx : nin + 1, pos, npos);
  nin = ntensors;

  lm_params *params = NULL;
  int st = build_options(L, d, optidx, pos, npos, &params);
  if (st < 0) return lml_error_raise(L, st, d->name, "cannot build the options");

  lml_task *task = lml_task_current(L);
  if (task && lua_isyieldable(L)) {
    lml_pending *p = lml_pending_new(ctx, task);
    if (!p) {
      lm_params_free(params);
      return lml_error_raise(L, LM_ENOMEM, d->name, "out of memory");
    }
    lm_job *job = NULL;
    st = lm_call_async(e, d->name, in, nin, params, lml_job_done, p, &job);
    lm_params_free(params);
    if (st < 0) {
      free(p);
      return lml_error_raise(L, st, d->name, lm_errmsg(e));
    }
    return lml_task_wait_job(L, task, p, job, op_k);
  }

  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  lm_params *res = NULL;
  st = lm_call(e, d->name, in, nin, params, out, &nout, &res);
  lm_params_free(params);
  if (st < 0) return lml_error_raise(L, st, d->name, lm_errmsg(e));
  int n = push_returns(L, ctx, out, nout, res);
  lm_params_free(res);
  return n;
}

void lml_op_push(lua_State *L, const lm_op_desc *d)
{
  lua_rawgetp(L, LUA_REGISTRYINDEX, &opfuncs_key);
  if (lua_getfield(L, -1, d->name) == LUA_TFUNCTION) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  lua_pushlightuserdata(L, (void *)d);
  lua_pushlightuserdata(L, lml_ctx_get(L));
  lua_pushcclosure(L, l_op_call, 2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, d->name);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &opnames_key);
  lua_pushvalue(L, -2);
  lua_pushstring(L, d->name);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_remove(L, -2);
}

/* The descriptor named by the string or op function at idx, or NULL. */
static const lm_op_desc *find_op(lua_State *L, int idx)
{
  lm_engine *e = lml_engine(L, lml_ctx_get(L));
  if (lua_type(L, idx) == LUA_TFUNCTION) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &opnames_key);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    const char *name = lua_tostring(L, -1);
    const lm_op_desc *d = name ? lm_op_find(e, name) : NULL;
    lua_pop(L, 2);
    return d;
  }
  const char *name = lua_tostring(L, idx);
  return name ? lm_op_find(e, name) : NULL;
}

/* lumen.op(name) -> the op's function, or nil if there is no such op. */
static int l_op(lua_State *L)
{
  const lm_op_desc *d = find_op(L, 1);
  if (!d) return 0;
  lml_op_push(L, d);
  return 1;
}

/* lumen.ops() -> sorted list of op names. */
static int l_ops(lua_State *L)
{
  lm_engine *e = lml_engine(L, lml_ctx_get(L));
  int n = lm_op_count(e);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, lm_op_at(e, i)->name);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static void set_str(lua_State *L, const char *k, const char *v)
{
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* lumen.op_info(name_or_op) -> {name, alias, summary, doc, inputs, outputs,
** min_inputs, max_inputs, source, io, args = {{name, type, default,
** required, doc}, ...}} or nil. */
static int l_op_info(lua_State *L)
{
  const lm_op_desc *d = find_op(L, 1);
  if (!d) return 0;
  lua_createtable(L, 0, 12);
  set_str(L, "name", d->name);
  set_str(L, "alias", d->alias);
  set_str(L, "summary", d->summary);
  set_str(L, "doc", d->doc);
  set_str(L, "inputs", d->inputs);
  set_str(L, "outputs", d->outputs);
  lua_pushinteger(L, d->min_inputs);
  lua_setfield(L, -2, "min_inputs");
  lua_pushinteger(L, d->max_inputs);
  lua_setfield(L, -2, "max_inputs");
  lua_pushboolean(L, (d->flags & LM_OP_SOURCE) != 0);
  lua_setfield(L, -2, "source");
  lua_pushboolean(L, (d->flags & LM_OP_IO) != 0);
  lua_setfield(L, -2, "io");
  lua_pushboolean(L, d->run_cuda != NULL ||
                         lm_op_cuda_kernel(lml_engine(L, lml_ctx_get(L)), d) != NULL);
  lua_setfield(L, -2, "cuda");
  lua_createtable(L, d->nargs, 0);
  for (int i = 0; i < d->nargs; i++) {
    const lm_arg_desc *a = &d->args[i];
    lua_createtable(L, 0, 5);
    set_str(L, "name", a->name);
    set_str(L, "type", (unsigned)a->type < sizeof arg_type_words / sizeof *arg_type_words
                           ? arg_type_words[a->type] : "?");
    set_str(L, "default", a->def);
    set_str(L, "doc", a->doc);
    lua_pushboolean(L, a->def == NULL);
    lua_setfield(L, -2, "required");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "args");
  return 1;
}

/* Module __index: `lumen.ScaleIntensityRange` finds the op on first use. */
static int module_index(lua_State *L)
{
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  lm_engine *e = lml_engine(L, lml_ctx_get(L));
  const lm_op_desc *d = lm_op_find(e, lua_tostring(L, 2));
  if (!d) return 0;
  lml_op_push(L, d);
  return 1;
}

static const luaL_Reg op_funcs[] = {
  {"op", l_op},
  {"ops", l_ops},
  {"op_info", l_op_info},
  {"is_error", l_is_error},
  {NULL, NULL}
};

void lml_ops_open(lua_State *L, int module_idx)
{
  module_idx = lua_absindex(L, module_idx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &opfuncs_key) != LUA_TTABLE) {
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &opfuncs_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &opnames_key);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, module_idx);
  luaL_setfuncs(L, op_funcs, 0);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, module_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}
