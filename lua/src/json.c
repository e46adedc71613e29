/*
** JSON for Lua: a strict decoder (RFC 8259) into tables, used for the
** structured results of ops (LM_VALUE_JSON) and exposed as
** lumen.json_decode, and an encoder, lumen.json_encode.
**
** Mapping: objects -> tables with string keys (with int_keys, keys that are
** canonical decimal integers such as "3" or "-1" become integer keys, so
** label-keyed results index as res.labels[3]); arrays -> sequences 1..n;
** strings, numbers (integers without fraction or exponent that fit int64
** stay integers), true/false; null -> lumen.json_null, a sentinel (a light
** userdata), so arrays keep their length and keys are not lost.
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lml.h"

#define JSON_MAX_DEPTH 200

/* The sentinel's address is its identity. */
static const char json_null_tag = 0;
#define JSON_NULL ((void *)&json_null_tag)

typedef struct jdec {
  lua_State *L;
  const char *s;
  size_t len, pos;
  int flags;
  char err[200];
} jdec;

static int jfail(jdec *d, const char *what)
{
  size_t line = 1, col = 1;
  for (size_t i = 0; i < d->pos && i < d->len; i++) {
    if (d->s[i] == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  snprintf(d->err, sizeof d->err, "%s at byte %zu (line %zu, column %zu)",
           what, d->pos + 1, line, col);
  return -1;
}

static void jws(jdec *d)
{
  while (d->pos < d->len) {
    char c = d->s[d->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    d->pos++;
  }
}

static int jpeek(jdec *d) { return d->pos < d->len ? (unsigned char)d->s[d->pos] : -1; }

static int hex4(jdec *d, unsigned *u)
{
  *u = 0;
  for (int i = 0; i < 4; i++) {
    int c = jpeek(d), h;
    if (c >= '0' && c <= '9') h = c - '0';
    else if (c >= 'a' && c <= 'f') h = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') h = c - 'A' + 10;
    else return jfail(d, "bad \\u escape (4 hex digits expected)");
    *u = *u * 16 + (unsigned)h;
    d->pos++;
  }
  return 0;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
  char t[4];
  int n;
  if (cp < 0x80) { t[0] = (char)cp; n = 1; }
  else if (cp < 0x800) {
    t[0] = (char)(0xC0 | (cp >> 6)); t[1] = (char)(0x80 | (cp & 0x3F)); n = 2;
  } else if (cp < 0x10000) {
    t[0] = (char)(0xE0 | (cp >> 12)); t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    t[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    t[0] = (char)(0xF0 | (cp >> 18)); t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    t[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); t[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  luaL_addlstring(b, t, (size_t)n);
}

/* Push the string literal at pos. */
static int jstring(jdec *d)
{
  luaL_Buffer b;
  d->pos++; /* the opening quote */
  luaL_buffinit(d->L, &b);
  for (;;) {
    size_t start = d->pos;
    while (d->pos < d->len && d->s[d->pos] != '"' && d->s[d->pos] != '\\' &&
           (unsigned char)d->s[d->pos] >= 0x20)
      d->pos++;
    luaL_addlstring(&b, d->s + start, d->pos - start);
    int c = jpeek(d);
    if (c == '"') {
      d->pos++;
      break;
    }
    if (c < 0) return jfail(d, "unterminated string");
    if (c < 0x20) return jfail(d, "control character in a string");
    d->pos++; /* backslash */
    c = jpeek(d);
    d->pos++;
    unsigned u, lo;
    switch (c) {
    case '"': luaL_addchar(&b, '"'); break;
    case '\\': luaL_addchar(&b, '\\'); break;
    case '/': luaL_addchar(&b, '/'); break;
    case 'b': luaL_addchar(&b, '\b'); break;
    case 'f': luaL_addchar(&b, '\f'); break;
    case 'n': luaL_addchar(&b, '\n'); break;
    case 'r': luaL_addchar(&b, '\r'); break;
    case 't': luaL_addchar(&b, '\t'); break;
    case 'u':
      if (hex4(d, &u) < 0) return -1;
      if (u >= 0xD800 && u <= 0xDBFF) {
        if (jpeek(d) != '\\' || d->pos + 1 >= d->len || d->s[d->pos + 1] != 'u')
          return jfail(d, "high surrogate not followed by a \\u low surrogate");
        d->pos += 2;
        if (hex4(d, &lo) < 0) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
          d->pos -= 6;
          return jfail(d, "high surrogate not followed by a low surrogate");
        }
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
      } else if (u >= 0xDC00 && u <= 0xDFFF) {
        d->pos -= 6;
        return jfail(d, "lone low surrogate");
      }
      add_utf8(&b, u);
      break;
    default:
      d->pos -= 2;
      return jfail(d, "bad escape");
    }
  }
  luaL_pushresult(&b);
  return 0;
}

/* Push the number at pos, checked against JSON's grammar first. */
static int jnumber(jdec *d)
{
  size_t start = d->pos;
  if (jpeek(d) == '-') d->pos++;
  int c = jpeek(d);
  if (c == '0') {
    d->pos++;
    c = jpeek(d);
    if (c >= '0' && c <= '9') return jfail(d, "leading zero in a number");
  } else if (c >= '1' && c <= '9') {
    while ((c = jpeek(d)) >= '0' && c <= '9') d->pos++;
  } else {
    return jfail(d, "bad number");
  }
  if (jpeek(d) == '.') {
    d->pos++;
    if (!((c = jpeek(d)) >= '0' && c <= '9'))
      return jfail(d, "digit expected after '.'");
    while ((c = jpeek(d)) >= '0' && c <= '9') d->pos++;
  }
  if ((c = jpeek(d)) == 'e' || c == 'E') {
    d->pos++;
    if ((c = jpeek(d)) == '+' || c == '-') d->pos++;
    if (!((c = jpeek(d)) >= '0' && c <= '9'))
      return jfail(d, "digit expected in the exponent");
    while ((c = jpeek(d)) >= '0' && c <= '9') d->pos++;
  }
  char buf[64];
  size_t n = d->pos - start;
  if (n >= sizeof buf) {
    /* Long digit strings: strtod in the C locale reads them. */
    char *t = malloc(n + 1);
    if (!t) return jfail(d, "out of memory");
    memcpy(t, d->s + start, n);
    t[n] = 0;
    lua_pushnumber(d->L, strtod(t, NULL));
    free(t);
    return 0;
  }
  memcpy(buf, d->s + start, n);
  buf[n] = 0;
  /* Lua's own conversion: integers stay integers (overflow -> float), and
   * it is independent of the C locale's decimal point. */
  if (lua_stringtonumber(d->L, buf) == 0) return jfail(d, "bad number");
  return 0;
}

static int jvalue(jdec *d, int depth);

/* Is the key at the top a canonical decimal integer ("0", "-3", not "03",
 * "+3" or "1.0")? */
static bool canonical_int(const char *k, size_t n)
{
  size_t i = 0;
  if (n && k[0] == '-') i = 1;
  if (i >= n || n - i > 18) return false;
  if (k[i] == '0' && n - i > 1) return false;
  if (k[i] == '0' && i == 1) return false; /* "-0" */
  for (; i < n; i++)
    if (k[i] < '0' || k[i] > '9') return false;
  return true;
}

static int jobject(jdec *d, int depth)
{
  lua_State *L = d->L;
  d->pos++;
  lua_newtable(L);
  jws(d);
  if (jpeek(d) == '}') {
    d->pos++;
    return 0;
  }
  for (;;) {
    jws(d);
    if (jpeek(d) != '"') return jfail(d, "object key (a string) expected");
    if (jstring(d) < 0) return -1;
    if (d->flags) {
      size_t n;
      const char *k = lua_tolstring(L, -1, &n);
      if (canonical_int(k, n)) {
        lua_Integer v = (lua_Integer)strtoll(k, NULL, 10);
        lua_pop(L, 1);
        lua_pushinteger(L, v);
      }
    }
    jws(d);
    if (jpeek(d) != ':') return jfail(d, "':' expected");
    d->pos++;
    if (jvalue(d, depth + 1) < 0) return -1;
    lua_rawset(L, -3);
    jws(d);
    int c = jpeek(d);
    d->pos++;
    if (c == '}') return 0;
    if (c != ',') {
      d->pos--;
      return jfail(d, "',' or '}' expected");
    }
  }
}

static int jarray(jdec *d, int depth)
{
  lua_State *L = d->L;
  d->pos++;
  lua_newtable(L);
  jws(d);
  if (jpeek(d) == ']') {
    d->pos++;
    return 0;
  }
  for (lua_Integer i = 1;; i++) {
    if (jvalue(d, depth + 1) < 0) return -1;
    lua_rawseti(L, -2, i);
    jws(d);
    int c = jpeek(d);
    d->pos++;
    if (c == ']') return 0;
    if (c != ',') {
      d->pos--;
      return jfail(d, "',' or ']' expected");
    }
  }
}

static int jliteral(jdec *d, const char *word)
{
  size_t n = strlen(word);
  if (d->len - d->pos < n || memcmp(d->s + d->pos, word, n) != 0)
    return jfail(d, "unexpected character");
  d->pos += n;
  return 0;
}

static int jvalue(jdec *d, int depth)
{
  if (depth >= JSON_MAX_DEPTH) return jfail(d, "nesting deeper than 200");
  if (!lua_checkstack(d->L, 4)) return jfail(d, "out of Lua stack");
  jws(d);
  int c = jpeek(d);
  switch (c) {
  case '{': return jobject(d, depth);
  case '[': return jarray(d, depth);
  case '"': return jstring(d);
  case 't':
    if (jliteral(d, "true") < 0) return -1;
    lua_pushboolean(d->L, 1);
    return 0;
  case 'f':
    if (jliteral(d, "false") < 0) return -1;
    lua_pushboolean(d->L, 0);
    return 0;
  case 'n':
    if (jliteral(d, "null") < 0) return -1;
    lua_pushlightuserdata(d->L, JSON_NULL);
    return 0;
  case -1: return jfail(d, "unexpected end of text");
  default:
    if (c == '-' || (c >= '0' && c <= '9')) return jnumber(d);
    return jfail(d, "unexpected character");
  }
}

int lml_json_push(lua_State *L, const char *text, size_t len, int flags,
                  char *err, size_t errlen)
{
  jdec d = {.L = L, .s = text, .len = len, .flags = flags};
  int top = lua_gettop(L);
  int st = jvalue(&d, 0);
  if (st == 0) {
    jws(&d);
    if (d.pos < d.len) st = jfail(&d, "trailing text after the value");
  }
  if (st < 0) {
    lua_settop(L, top);
    if (err) snprintf(err, errlen, "%s", d.err);
    return -1;
  }
  return 0;
}

/* lumen.json_decode(text [, {int_keys = bool}]) */
static int l_json_decode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int flags = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "int_keys");
    flags = lua_toboolean(L, -1) ? LML_JSON_INT_KEYS : 0;
    lua_pop(L, 1);
  }
  char err[200];
  lua_settop(L, 2);
  if (lml_json_push(L, s, len, flags, err, sizeof err) < 0)
    return luaL_error(L, "json_decode: %s", err);
  return 1;
}

/* ---- encoding ---- */

/* The text being built lives in a userdata (freed by __gc), so a
 * luaL_error in the middle of a walk leaks nothing, and the walk may use
 * the Lua stack freely (a luaL_Buffer may not be mixed with pushes). */
typedef struct ebuf {
  char *s;
  size_t len, cap;
} ebuf;

#define EBUF_MT "lumen.json_buffer"

static int ebuf_gc(lua_State *L)
{
  ebuf *b = luaL_checkudata(L, 1, EBUF_MT);
  free(b->s);
  b->s = NULL;
  return 0;
}

static void eadd(lua_State *L, ebuf *b, const char *p, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) luaL_error(L, "json_encode: out of memory");
    b->s = s;
    b->cap = cap;
  }
  memcpy(b->s + b->len, p, n);
  b->len += n;
}

static void eaddstr(lua_State *L, ebuf *b, const char *s) { eadd(L, b, s, strlen(s)); }
static void eaddchar(lua_State *L, ebuf *b, char c) { eadd(L, b, &c, 1); }

static void enc_string(lua_State *L, ebuf *b, const char *s, size_t n)
{
  eaddchar(L, b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': eaddstr(L, b, "\\\""); break;
    case '\\': eaddstr(L, b, "\\\\"); break;
    case '\n': eaddstr(L, b, "\\n"); break;
    case '\r': eaddstr(L, b, "\\r"); break;
    case '\t': eaddstr(L, b, "\\t"); break;
    case '\b': eaddstr(L, b, "\\b"); break;
    case '\f': eaddstr(L, b, "\\f"); break;
    default:
      if (c < 0x20) {
        char t[8];
        snprintf(t, sizeof t, "\\u%04x", c);
        eaddstr(L, b, t);
      } else {
        eaddchar(L, b, (char)c);
      }
    }
  }
  eaddchar(L, b, '"');
}

static void enc_number(lua_State *L, ebuf *b, int idx)
{
  char t[48];
  if (lua_isinteger(L, idx)) {
    snprintf(t, sizeof t, LUA_INTEGER_FMT, lua_tointeger(L, idx));
  } else {
    double v = lua_tonumber(L, idx);
    if (!isfinite(v)) luaL_error(L, "json_encode: %f is not a JSON number", v);
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(t, sizeof t, "%.*g", prec, v);
      if (strtod(t, NULL) == v) break;
    }
    /* The C locale's decimal point may not be '.'. */
    for (char *p = t; *p; p++)
      if (*p == ',') *p = '.';
    /* A float stays a float when read back by Lua. */
    if (!strpbrk(t, ".eE")) strcat(t, ".0");
  }
  eaddstr(L, b, t);
}

static int key_cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void enc_value(lua_State *L, ebuf *b, int idx, int depth);

/* Encode the value at the top of the stack and pop it. */
static void enc_top(lua_State *L, ebuf *b, int depth)
{
  enc_value(L, b, lua_gettop(L), depth);
  lua_pop(L, 1);
}

static void enc_table(lua_State *L, ebuf *b, int idx, int depth)
{
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
  bool array = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 ||
        lua_tointeger(L, -2) > n)
      array = false;
    lua_pop(L, 1);
  }
  if (array && count == n) {
    eaddchar(L, b, '[');
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1) eaddchar(L, b, ',');
      lua_rawgeti(L, idx, i);
      enc_top(L, b, depth + 1);
    }
    eaddchar(L, b, ']');
    return;
  }
  /* An object: keys as strings, sorted so the text is reproducible. */
  char **keys = lua_newuserdatauv(L, sizeof *keys * (size_t)count, 0);
  int keys_idx = lua_gettop(L);
  lua_Integer k = 0;
  lua_newtable(L); /* key text -> original key (anchors the texts) */
  int map = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      lua_pushvalue(L, -1);
    } else if (lua_isinteger(L, -1)) {
      lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
    } else {
      luaL_error(L, "json_encode: object key of type %s (strings and "
                 "integers only)", luaL_typename(L, -1));
    }
    lua_pushvalue(L, -1);
    if (lua_rawget(L, map) != LUA_TNIL)
      luaL_error(L, "json_encode: key '%s' appears twice (as a string and "
                 "an integer)", lua_tostring(L, -2));
    lua_pop(L, 1);
    keys[k++] = (char *)lua_tostring(L, -1);
    lua_pushvalue(L, -2);
    lua_rawset(L, map);
  }
  qsort(keys, (size_t)count, sizeof *keys, key_cmp);
  eaddchar(L, b, '{');
  for (lua_Integer i = 0; i < count; i++) {
    if (i) eaddchar(L, b, ',');
    enc_string(L, b, keys[i], strlen(keys[i]));
    eaddchar(L, b, ':');
    lua_pushstring(L, keys[i]);
    lua_rawget(L, map);
    lua_gettable(L, idx);
    enc_top(L, b, depth + 1);
  }
  eaddchar(L, b, '}');
  lua_remove(L, map);
  lua_remove(L, keys_idx);
}

static void enc_value(lua_State *L, ebuf *b, int idx, int depth)
{
  if (depth > JSON_MAX_DEPTH)
    luaL_error(L, "json_encode: nesting deeper than 200 (a cycle?)");
  luaL_checkstack(L, 8, "json_encode");
  switch (lua_type(L, idx)) {
  case LUA_TNIL: eaddstr(L, b, "null"); break;
  case LUA_TBOOLEAN: eaddstr(L, b, lua_toboolean(L, idx) ? "true" : "false"); break;
  case LUA_TNUMBER: enc_number(L, b, idx); break;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    enc_string(L, b, s, n);
    break;
  }
  case LUA_TTABLE: enc_table(L, b, idx, depth); break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == JSON_NULL) {
      eaddstr(L, b, "null");
      break;
    }
    /* fall through */
  default:
    luaL_error(L, "json_encode: cannot encode a %s", luaL_typename(L, idx));
  }
}

/* lumen.json_encode(value): JSON text.  Tables whose keys are exactly
 * 1..#t (and empty tables) are arrays; others are objects with string or
 * integer keys, written sorted. */
static int l_json_encode(lua_State *L)
{
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  ebuf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, EBUF_MT);
  lua_pushvalue(L, 1);
  enc_top(L, b, 0);
  lua_pushlstring(L, b->s ? b->s : "", b->len);
  return 1;
}

void lml_json_open(lua_State *L, int module_idx)
{
  if (luaL_newmetatable(L, EBUF_MT)) {
    lua_pushcfunction(L, ebuf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_json_decode);
  lua_setfield(L, module_idx, "json_decode");
  lua_pushcfunction(L, l_json_encode);
  lua_setfield(L, module_idx, "json_encode");
  lua_pushlightuserdata(L, JSON_NULL);
  lua_setfield(L, module_idx, "json_null");
}
