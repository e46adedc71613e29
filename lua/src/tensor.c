/*
** The tensor userdata: a pointer box holding one reference to an lm_tensor
** (the C object is shared with jobs and may outlive the box), with liolib's
** pattern: __gc and __close share one function, and a released box raises
** "attempt to use a released tensor".
**
** Voxel indices in get/set are 0-based, as NIfTI voxel coordinates, numpy
** and MONAI count them: t:get(0, 0, 0) is the first voxel.
*/
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lml.h"

typedef struct lml_box {
  lm_tensor *t;
  lml_ctx *ctx;
} lml_box;

void lml_tensor_push(lua_State *L, lml_ctx *ctx, lm_tensor *t)
{
  if (!t) luaL_error(L, "lumen: internal error: no tensor to push");
  lml_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->t = NULL;
  b->ctx = ctx;
  luaL_setmetatable(L, LML_TENSOR_MT);
  b->t = t;
  ctx->live_boxes++;
  lml_ctx_account(L, ctx);
}

static lml_box *check_box(lua_State *L, int idx)
{
  return luaL_checkudata(L, idx, LML_TENSOR_MT);
}

lm_tensor *lml_tensor_check(lua_State *L, int idx)
{
  lml_box *b = check_box(L, idx);
  if (!b->t) luaL_argerror(L, idx, "attempt to use a released tensor");
  return b->t;
}

lm_tensor *lml_tensor_test(lua_State *L, int idx)
{
  lml_box *b = luaL_testudata(L, idx, LML_TENSOR_MT);
  if (!b) return NULL;
  if (!b->t) luaL_argerror(L, idx, "attempt to use a released tensor");
  return b->t;
}

lm_tensor *lml_tensor_peek(lua_State *L, int idx, bool *released)
{
  lml_box *b = luaL_testudata(L, idx, LML_TENSOR_MT);
  *released = b && !b->t;
  return b ? b->t : NULL;
}

/* Raise the engine's message for a failed tensor call. */
static int tensor_fail(lua_State *L, lm_tensor *t, int st, const char *what)
{
  lm_engine *e = lm_tensor_engine(t);
  const char *msg = e ? lm_errmsg(e) : NULL;
  if (!msg || !*msg) msg = lm_status_string(st);
  return lml_error_raise(L, st, what, msg);
}

/* __gc, __close and t:free(): drop the reference now (idempotent). */
static int t_free(lua_State *L)
{
  lml_box *b = check_box(L, 1);
  if (b->t) {
    lm_tensor_release(b->t);
    b->t = NULL;
    b->ctx->live_boxes--;
  }
  return 0;
}

/* t:share() -> a new box holding another reference to the same tensor. */
static int t_share(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1);
  lml_tensor_push(L, lml_ctx_get(L), lm_tensor_retain(t));
  return 1;
}

static int t_is_released(lua_State *L)
{
  lua_pushboolean(L, check_box(L, 1)->t == NULL);
  return 1;
}

static void push_i64_list(lua_State *L, const int64_t *v, int n)
{
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static void push_affine(lua_State *L, const double *a)
{
  lua_createtable(L, 4, 0);
  for (int r = 0; r < 4; r++) {
    lua_createtable(L, 4, 0);
    for (int c = 0; c < 4; c++) {
      lua_pushnumber(L, a[r * 4 + c]);
      lua_rawseti(L, -2, c + 1);
    }
    lua_rawseti(L, -2, r + 1);
  }
}

static int t_shape(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1);
  push_i64_list(L, lm_tensor_shape(t), lm_tensor_ndim(t));
  return 1;
}

static int t_strides(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1);
  push_i64_list(L, lm_tensor_strides(t), lm_tensor_ndim(t));
  return 1;
}

static int t_ndim(lua_State *L)
{
  lua_pushinteger(L, lm_tensor_ndim(lml_tensor_check(L, 1)));
  return 1;
}

static int t_numel(lua_State *L)
{
  lua_pushinteger(L, lm_tensor_numel(lml_tensor_check(L, 1)));
  return 1;
}

static int t_nbytes(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)lm_tensor_nbytes(lml_tensor_check(L, 1)));
  return 1;
}

static int t_dtype(lua_State *L)
{
  lua_pushstring(L, lm_dtype_name(lm_tensor_dtype(lml_tensor_check(L, 1))));
  return 1;
}

static int t_spacing(lua_State *L)
{
  double sp[3];
  lm_tensor_spacing(lml_tensor_check(L, 1), sp);
  lua_createtable(L, 3, 0);
  for (int i = 0; i < 3; i++) {
    lua_pushnumber(L, sp[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int t_affine(lua_State *L)
{
  push_affine(L, lm_tensor_affine(lml_tensor_check(L, 1)));
  return 1;
}

static int t_orientation(lua_State *L)
{
  char buf[8] = {0};
  lua_pushstring(L, lm_tensor_orientation(lml_tensor_check(L, 1), buf));
  return 1;
}

static int t_layout(lua_State *L)
{
  lua_pushstring(L, lm_tensor_layout(lml_tensor_check(L, 1)));
  return 1;
}

static int t_device(lua_State *L)
{
  char buf[32];
  lua_pushstring(L, lm_device_format(lm_tensor_device(lml_tensor_check(L, 1)),
                                     buf, sizeof buf));
  return 1;
}

static int t_is_contiguous(lua_State *L)
{
  lua_pushboolean(L, lm_tensor_is_contiguous(lml_tensor_check(L, 1)));
  return 1;
}

static int t_clone(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1), *out = NULL;
  int st = lm_tensor_clone(t, &out);
  if (st < 0) return tensor_fail(L, t, st, "clone");
  lml_tensor_push(L, lml_ctx_get(L), out);
  return 1;
}

static int t_contiguous(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1), *out = NULL;
  int st = lm_tensor_contiguous(t, &out);
  if (st < 0) return tensor_fail(L, t, st, "contiguous");
  lml_tensor_push(L, lml_ctx_get(L), out);
  return 1;
}

static int t_stats(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1);
  lm_tensor_stats s;
  int st = lm_tensor_stats_compute(t, &s);
  if (st < 0) return tensor_fail(L, t, st, "stats");
  lua_createtable(L, 0, 6);
  lua_pushnumber(L, s.min);
  lua_setfield(L, -2, "min");
  lua_pushnumber(L, s.max);
  lua_setfield(L, -2, "max");
  lua_pushnumber(L, s.mean);
  lua_setfield(L, -2, "mean");
  lua_pushnumber(L, s.std);
  lua_setfield(L, -2, "std");
  lua_pushinteger(L, s.count);
  lua_setfield(L, -2, "count");
  lua_pushinteger(L, s.nan_count);
  lua_setfield(L, -2, "nan_count");
  return 1;
}

/* Read a 0-based voxel index: either a table {i, j, k} at `first`, or
** integers first..first+ndim-1.  Returns the stack index after it. */
static int read_index(lua_State *L, lm_tensor *t, int first, int64_t *idx)
{
  int nd = lm_tensor_ndim(t);
  const int64_t *shape = lm_tensor_shape(t);
  bool table = lua_type(L, first) == LUA_TTABLE;
  if (table && (int)luaL_len(L, first) != nd)
    luaL_argerror(L, first, lua_pushfstring(L, "index needs %d values, got %d",
                                            nd, (int)luaL_len(L, first)));
  for (int d = 0; d < nd; d++) {
    int isnum = 0;
    lua_Integer v;
    if (table) {
      lua_geti(L, first, d + 1);
      v = lua_tointegerx(L, -1, &isnum);
      lua_pop(L, 1);
      if (!isnum)
        luaL_argerror(L, first, lua_pushfstring(L, "index %d is not an integer", d + 1));
    } else {
      v = lua_tointegerx(L, first + d, &isnum);
      if (!isnum)
        luaL_argerror(L, first + d, lua_pushfstring(L,
                      "integer index expected for dim %d of %d (0-based)", d + 1, nd));
    }
    if (v < 0 || v >= shape[d])
      luaL_error(L, "index %d out of range for dim %d of size %d (indices are 0-based)",
                 (int)v, d + 1, (int)shape[d]);
    idx[d] = v;
  }
  return table ? first + 1 : first + nd;
}

static void check_cpu(lua_State *L, lm_tensor *t, const char *what)
{
  if (lm_tensor_device(t).type != LM_DEVICE_CPU)
    luaL_error(L, "%s: tensor is on a CUDA device; call :to('cpu') first", what);
}

static int t_get(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1);
  check_cpu(L, t, "get");
  int64_t idx[LM_MAX_DIMS];
  read_index(L, t, 2, idx);
  double v = lm_tensor_get(t, idx);
  if (lm_dtype_is_float(lm_tensor_dtype(t))) lua_pushnumber(L, v);
  else lua_pushinteger(L, (lua_Integer)v);
  return 1;
}

static int t_set(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1);
  check_cpu(L, t, "set");
  int64_t idx[LM_MAX_DIMS];
  int vi = read_index(L, t, 2, idx);
  lm_tensor_set(t, idx, luaL_checknumber(L, vi));
  return 0;
}

/* Flat list of every value in C order (last axis fastest): for tests and
** small tensors. */
static int t_values(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1);
  check_cpu(L, t, "values");
  int64_t n = lm_tensor_numel(t);
  if (n > (1 << 24)) luaL_error(L, "values: %d elements are too many for a Lua table", (int)n);
  int nd = lm_tensor_ndim(t);
  const int64_t *shape = lm_tensor_shape(t);
  bool isfloat = lm_dtype_is_float(lm_tensor_dtype(t));
  int64_t idx[LM_MAX_DIMS] = {0};
  lua_createtable(L, (int)n, 0);
  for (int64_t k = 0; k < n; k++) {
    double v = lm_tensor_get(t, idx);
    if (isfloat) lua_pushnumber(L, v);
    else lua_pushinteger(L, (lua_Integer)v);
    lua_rawseti(L, -2, k + 1);
    for (int d = nd - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return 1;
}

static int t_trace(lua_State *L)
{
  lm_tensor *t = lml_tensor_check(L, 1);
  int n = lm_tensor_trace_length(t);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    const lm_trace_entry *e = lm_tensor_trace_at(t, i);
    if (!e) break;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, e->op ? e->op : "");
    lua_setfield(L, -2, "op");
    lua_pushstring(L, e->params ? e->params : "");
    lua_setfield(L, -2, "params");
    push_i64_list(L, e->shape, e->ndim);
    lua_setfield(L, -2, "shape");
    push_affine(L, e->affine);
    lua_setfield(L, -2, "affine");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* tensor<float32 1x192x192x128 spacing 2x2x2 RAS cpu range [-1000, 1523]> */
static int t_tostring(lua_State *L)
{
  lml_box *b = check_box(L, 1);
  if (!b->t) {
    lua_pushliteral(L, "tensor<released>");
    return 1;
  }
  lm_tensor *t = b->t;
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  luaL_addstring(&B, "tensor<");
  luaL_addstring(&B, lm_dtype_name(lm_tensor_dtype(t)));
  luaL_addchar(&B, ' ');
  int nd = lm_tensor_ndim(t);
  const int64_t *shape = lm_tensor_shape(t);
  char num[64];
  if (nd == 0) luaL_addstring(&B, "scalar");
  for (int d = 0; d < nd; d++) {
    snprintf(num, sizeof num, "%s%" PRId64, d ? "x" : "", shape[d]);
    luaL_addstring(&B, num);
  }
  double sp[3];
  lm_tensor_spacing(t, sp);
  snprintf(num, sizeof num, " spacing %.6gx%.6gx%.6g ", sp[0], sp[1], sp[2]);
  luaL_addstring(&B, num);
  char orient[8] = {0};
  luaL_addstring(&B, lm_tensor_orientation(t, orient));
  luaL_addchar(&B, ' ');
  const char *layout = lm_tensor_layout(t);
  if (layout && *layout) {
    luaL_addstring(&B, layout);
    luaL_addchar(&B, ' ');
  }
  lm_device dev = lm_tensor_device(t);
  luaL_addstring(&B, lm_device_format(dev, num, sizeof num));
  lm_tensor_stats s;
  if (dev.type == LM_DEVICE_CPU && lm_tensor_numel(t) > 0 &&
      lm_tensor_stats_compute(t, &s) >= 0) {
    if (s.count > 0) {
      snprintf(num, sizeof num, " range [%.6g, %.6g]", s.min, s.max);
      luaL_addstring(&B, num);
    }
    if (s.nan_count > 0) {
      snprintf(num, sizeof num, " %" PRId64 " NaN", s.nan_count);
      luaL_addstring(&B, num);
    }
  }
  luaL_addchar(&B, '>');
  luaL_pushresult(&B);
  return 1;
}

static int t_eq(lua_State *L)
{
  lml_box *a = luaL_testudata(L, 1, LML_TENSOR_MT);
  lml_box *b = luaL_testudata(L, 2, LML_TENSOR_MT);
  lua_pushboolean(L, a && b && a->t && a->t == b->t);
  return 1;
}

/* Shape table at idx -> shape[], returns ndim. */
static int read_shape(lua_State *L, int idx, int64_t *shape)
{
  luaL_checktype(L, idx, LUA_TTABLE);
  int nd = (int)luaL_len(L, idx);
  if (nd > LM_MAX_DIMS)
    luaL_argerror(L, idx, lua_pushfstring(L, "at most %d dims", LM_MAX_DIMS));
  for (int d = 0; d < nd; d++) {
    lua_geti(L, idx, d + 1);
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || v < 0)
      luaL_argerror(L, idx, lua_pushfstring(L, "shape[%d] must be a non-negative integer", d + 1));
    shape[d] = v;
  }
  return nd;
}

static lm_dtype read_dtype(lua_State *L, int idx)
{
  const char *name = luaL_optstring(L, idx, "float32");
  lm_dtype dt;
  if (lm_dtype_from_name(name, &dt) < 0)
    luaL_argerror(L, idx, lua_pushfstring(L, "unknown dtype '%s'", name));
  return dt;
}

/* lumen.zeros(shape [, dtype="float32"]): a C-contiguous CPU tensor of 0. */
static int l_zeros(lua_State *L)
{
  int64_t shape[LM_MAX_DIMS];
  int nd = read_shape(L, 1, shape);
  lm_dtype dt = read_dtype(L, 2);
  lml_ctx *ctx = lml_ctx_get(L);
  lm_engine *e = lml_engine(L, ctx);
  lm_tensor *t = NULL;
  int st = lm_tensor_zeros(e, dt, nd, shape, LM_CPU, &t);
  if (st < 0) return lml_error_raise(L, st, "zeros", lm_errmsg(e));
  lml_tensor_push(L, ctx, t);
  return 1;
}

/* lumen.tensor(values, shape [, dtype="float32"]): values is a flat list in
** C order (last axis fastest), as t:values() returns it. */
static int l_tensor(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  int64_t shape[LM_MAX_DIMS];
  int nd = read_shape(L, 2, shape);
  lm_dtype dt = read_dtype(L, 3);
  int64_t n = 1;
  for (int d = 0; d < nd; d++) n *= shape[d];
  if ((int64_t)luaL_len(L, 1) != n)
    luaL_argerror(L, 1, lua_pushfstring(L, "%d values given for a shape of %d elements",
                                        (int)luaL_len(L, 1), (int)n));
  lml_ctx *ctx = lml_ctx_get(L);
  lm_engine *e = lml_engine(L, ctx);
  lm_tensor *t = NULL;
  int st = lm_tensor_zeros(e, dt, nd, shape, LM_CPU, &t);
  if (st < 0) return lml_error_raise(L, st, "tensor", lm_errmsg(e));
  lml_tensor_push(L, ctx, t); /* owned by Lua now: a raise below frees it */
  int64_t idx[LM_MAX_DIMS] = {0};
  for (int64_t k = 0; k < n; k++) {
    lua_geti(L, 1, k + 1);
    int isnum;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum) luaL_argerror(L, 1, lua_pushfstring(L, "value %d is not a number", (int)k + 1));
    lm_tensor_set(t, idx, v);
    for (int d = nd - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return 1;
}

/* lumen.istensor(v): true for a tensor box (released or not). */
static int l_istensor(lua_State *L)
{
  lua_pushboolean(L, luaL_testudata(L, 1, LML_TENSOR_MT) != NULL);
  return 1;
}

static const luaL_Reg tensor_methods[] = {
  {"shape", t_shape},         {"strides", t_strides},
  {"ndim", t_ndim},           {"numel", t_numel},
  {"nbytes", t_nbytes},       {"dtype", t_dtype},
  {"spacing", t_spacing},     {"affine", t_affine},
  {"orientation", t_orientation}, {"layout", t_layout},
  {"device", t_device},       {"is_contiguous", t_is_contiguous},
  {"clone", t_clone},         {"contiguous", t_contiguous},
  {"stats", t_stats},         {"get", t_get},
  {"set", t_set},             {"values", t_values},
  {"trace", t_trace},         {"free", t_free},
  {"is_released", t_is_released}, {"share", t_share},
  {NULL, NULL}
};

static const luaL_Reg tensor_meta[] = {
  {"__index", NULL}, /* the method table, set below */
  {"__gc", t_free},
  {"__close", t_free},
  {"__tostring", t_tostring},
  {"__eq", t_eq},
  {NULL, NULL}
};

static const luaL_Reg tensor_module_funcs[] = {
  {"zeros", l_zeros},
  {"tensor", l_tensor},
  {"istensor", l_istensor},
  {NULL, NULL}
};

void lml_tensor_open(lua_State *L, int module_idx)
{
  module_idx = lua_absindex(L, module_idx);
  if (luaL_newmetatable(L, LML_TENSOR_MT)) {
    luaL_setfuncs(L, tensor_meta, 0);
    luaL_newlib(L, tensor_methods);
    lua_setfield(L, -2, "__index");
  }
  /* The prelude adds methods written in Lua (t:to) to this table. */
  lua_getfield(L, -1, "__index");
  lua_setfield(L, module_idx, "tensor_methods");
  lua_pop(L, 1);
  lua_pushvalue(L, module_idx);
  luaL_setfuncs(L, tensor_module_funcs, 0);
  lua_pop(L, 1);
}
