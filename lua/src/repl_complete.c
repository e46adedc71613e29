/*
** Tab completion at the prompt.  The word before the cursor is split at its
** last '.' or ':' into a base path and a partial name ("lumen.Sca" ->
** "lumen", ".", "Sca"); the Lua helper lists the names the base offers
** (globals when there is no base, methods after ':'), and the common part of
** the candidates is inserted.  When nothing more can be inserted, the
** candidates are listed under the line.
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <histedit.h>
#include <lauxlib.h>
#include <lua.h>

#include "repl_internal.h"

#define WORD_MAX 512
#define LIST_MAX 300 /* candidates shown; the rest are counted */

static int is_word_char(char c) {
  return isalnum((unsigned char)c) || c == '_' || c == '.' || c == ':';
}

/* base: empty, or names separated by single dots; no ':' before the last
** separator. */
static int valid_base(const char *s, size_t n) {
  int at_start = 1;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '.') {
      if (at_start) return 0;
      at_start = 1;
    } else if (isalpha((unsigned char)c) || c == '_' || (!at_start && isdigit((unsigned char)c))) {
      at_start = 0;
    } else {
      return 0;
    }
  }
  return n == 0 || !at_start;
}

static void list_candidates(EditLine *el, char **names, size_t n) {
  int cols = 80;
  if (el_get(el, EL_GETTC, "co", &cols) != 0 || cols < 20) cols = 80;
  size_t shown = n < LIST_MAX ? n : LIST_MAX, width = 0;
  for (size_t i = 0; i < shown; i++)
    if (strlen(names[i]) > width) width = strlen(names[i]);
  width += 2;
  size_t per_row = (size_t)cols / width ? (size_t)cols / width : 1;
  size_t rows = (shown + per_row - 1) / per_row;
  fputc('\n', stdout);
  for (size_t r = 0; r < rows; r++) {
    for (size_t c = 0; c < per_row; c++) {
      size_t i = c * rows + r; /* down the columns, as ls does */
      if (i >= shown) break;
      int last = c + 1 == per_row || i + rows >= shown;
      if (last)
        fputs(names[i], stdout);
      else
        fprintf(stdout, "%-*s", (int)width, names[i]);
    }
    fputc('\n', stdout);
  }
  if (shown < n) fprintf(stdout, "... and %zu more\n", n - shown);
  fflush(stdout);
}

unsigned char lm_repl_complete(EditLine *el, lua_State *L) {
  const LineInfo *li = el_line(el);
  const char *start = li->cursor;
  while (start > li->buffer && is_word_char(start[-1])) start--;
  size_t wlen = (size_t)(li->cursor - start);
  if (wlen == 0) {
    /* At the start of a line or after a blank, Tab indents. */
    if (start == li->buffer || isspace((unsigned char)start[-1])) {
      el_insertstr(el, "  ");
      return CC_REFRESH;
    }
    return CC_REFRESH_BEEP;
  }
  if (wlen >= WORD_MAX) return CC_REFRESH_BEEP;
  char word[WORD_MAX];
  memcpy(word, start, wlen);
  word[wlen] = '\0';

  size_t sep = wlen;
  while (sep > 0 && word[sep - 1] != '.' && word[sep - 1] != ':') sep--;
  const char *partial = word + sep;
  char sepch[2] = {sep > 0 ? word[sep - 1] : '\0', '\0'};
  size_t base_len = sep > 0 ? sep - 1 : 0;
  if (!valid_base(word, base_len) || (sep > 0 && base_len == 0) ||
      isdigit((unsigned char)partial[0]) || strchr(partial, ':') != NULL)
    return CC_REFRESH_BEEP;
  if (sep == 0 && isdigit((unsigned char)word[0])) return CC_REFRESH_BEEP;

  int top = lua_gettop(L);
  if (lm_repl_lua_get(L, "complete") != LUA_TFUNCTION) {
    lua_settop(L, top);
    return CC_REFRESH_BEEP;
  }
  lua_pushlstring(L, word, base_len);
  lua_pushstring(L, sepch);
  lua_pushstring(L, partial);
  if (lua_pcall(L, 3, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    lua_settop(L, top);
    return CC_REFRESH_BEEP;
  }
  size_t n = (size_t)luaL_len(L, -1);
  char **names = n ? calloc(n, sizeof *names) : NULL;
  size_t got = 0;
  for (size_t i = 0; names != NULL && i < n; i++) {
    lua_geti(L, -1, (lua_Integer)i + 1);
    const char *s = lua_tostring(L, -1);
    if (s != NULL && (names[got] = strdup(s)) != NULL) got++;
    lua_pop(L, 1);
  }
  lua_settop(L, top);

  unsigned char rc = CC_REFRESH_BEEP;
  if (got > 0) {
    size_t plen = strlen(partial), common = strlen(names[0]);
    for (size_t i = 1; i < got; i++) {
      size_t k = 0;
      while (k < common && names[i][k] == names[0][k]) k++;
      common = k;
    }
    if (common > plen) {
      char insert[WORD_MAX];
      size_t m = common - plen < sizeof insert - 1 ? common - plen : sizeof insert - 1;
      memcpy(insert, names[0] + plen, m);
      insert[m] = '\0';
      rc = el_insertstr(el, insert) == 0 ? CC_REFRESH : CC_REFRESH_BEEP;
    } else if (got == 1) {
      rc = CC_REFRESH; /* already complete */
    } else {
      list_candidates(el, names, got);
      rc = CC_REDISPLAY;
    }
  }
  for (size_t i = 0; i < got; i++) free(names[i]);
  free(names);
  return rc;
}
