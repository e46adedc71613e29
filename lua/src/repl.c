/*
** The `lumen repl` front end: lua.c's REPL adapted to the lumen host.
**
** Every chunk runs through lm_host_call, that is as a managed coroutine while
** the host turns the libuv loop, so ops that yield (LoadNifti, ...) work at
** the prompt exactly as in a script.  With a terminal on stdin the REPL is
** interactive (repl_term.c: libedit, history, completion, Ctrl-C); without
** one it reads complete chunks and runs them quietly, like `lua - < file`
** but chunk by chunk.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "host.h"
#include "repl_internal.h"

/* A syntax error whose message ends with this mark means "the chunk is not
** finished yet": keep reading (lua.c's `incomplete`). */
#define EOFMARK "<eof>"
#define EOFMARK_LEN (sizeof(EOFMARK) - 1)

int lm_repl_incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  return msg != NULL && len >= EOFMARK_LEN &&
         strcmp(msg + len - EOFMARK_LEN, EOFMARK) == 0;
}

/*
** Loading with a line offset: the chunk is preceded by `pad_lines` newlines
** fed from a static block, so that error messages and tracebacks of piped
** input name the line of the input rather than the line of the chunk.
*/
typedef struct padded_reader {
  size_t pad_left;
  const char *text;
  size_t len;
  int text_done;
} padded_reader;

static const char *read_padded(lua_State *L, void *ud, size_t *size) {
  static const char newlines[256] = {[0 ... 255] = '\n'};
  padded_reader *r = ud;
  (void)L;
  if (r->pad_left > 0) {
    *size = r->pad_left < sizeof newlines ? r->pad_left : sizeof newlines;
    r->pad_left -= *size;
    return newlines;
  }
  if (r->text_done) return NULL;
  r->text_done = 1;
  *size = r->len;
  return r->text;
}

int lm_repl_load(lua_State *L, const char *text, size_t len, size_t first_line,
                 const char *chunkname) {
  padded_reader r = {first_line > 1 ? first_line - 1 : 0, text, len, 0};
  return lua_load(L, read_padded, &r, chunkname, "t");
}

/* True when text holds nothing but blanks (nothing worth a coroutine). */
int lm_repl_blank(const char *text, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!strchr(" \t\r\n\f\v", text[i])) return 0;
  return 1;
}

/* A growable text buffer for the chunk being assembled. */
int lm_repl_buf_append(lm_repl_buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) return -1;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

void lm_repl_buf_reset(lm_repl_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void lm_repl_buf_free(lm_repl_buf *b) {
  free(b->data);
  *b = (lm_repl_buf){0};
}

/* Print the error value on top of the stack to stderr and pop it.  The host
** already gives a string with its traceback; anything else is shown through
** luaL_tolstring, which honours __tostring. */
void lm_repl_report(lua_State *L, const char *prefix) {
  const char *msg = luaL_tolstring(L, -1, NULL);
  fflush(stdout);
  fprintf(stderr, "%s%s\n", prefix ? prefix : "", msg);
  fflush(stderr);
  lua_pop(L, 2);
}

/*
** Piped input: read complete chunks (a chunk ends at the first line where
** what was read so far compiles) and run each in turn.  Nothing is echoed;
** errors go to stderr and make the exit status 1, later chunks still run.
*/
static int repl_piped(lm_host *h, FILE *in) {
  lua_State *L = lm_host_lua(h);
  lm_repl_buf chunk = {0};
  char *line = NULL;
  size_t cap = 0, line_no = 0, first_line = 1;
  ssize_t n;
  int failed = 0;

  while ((n = getline(&line, &cap, in)) >= 0) {
    line_no++;
    if (line_no == 1 && line[0] == '#') n = 0; /* a #! line, as lua skips it */
    if (chunk.len == 0) first_line = line_no;
    if (lm_repl_buf_append(&chunk, line, (size_t)n) != 0) {
      fprintf(stderr, "lumen: out of memory reading line %zu of stdin\n", line_no);
      failed = 1;
      break;
    }
    if (lm_repl_blank(chunk.data, chunk.len)) {
      lm_repl_buf_reset(&chunk);
      continue;
    }
    int status = lm_repl_load(L, chunk.data, chunk.len, first_line, "=stdin");
    if (lm_repl_incomplete(L, status)) {
      lua_pop(L, 1);
      continue;
    }
    lm_repl_buf_reset(&chunk);
    if (status == LUA_OK) status = lm_host_call(h, 0, 0);
    if (status != LUA_OK) {
      lm_repl_report(L, "lumen: ");
      failed = 1;
    }
  }
  if (chunk.len > 0) { /* input ended inside a chunk: say where */
    int status = lm_repl_load(L, chunk.data, chunk.len, first_line, "=stdin");
    if (status != LUA_OK) {
      lm_repl_report(L, "lumen: ");
    } else {
      lua_pop(L, 1);
      fprintf(stderr, "lumen: stdin: unfinished chunk at end of input\n");
    }
    failed = 1;
  }
  if (ferror(in)) {
    fprintf(stderr, "lumen: error reading stdin\n");
    failed = 1;
  }
  free(line);
  lm_repl_buf_free(&chunk);
  fflush(stdout);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int lm_repl_main(lm_host *h, int argc, char **argv) {
  if (argc > 0) {
    fprintf(stderr, "lumen repl: unexpected argument '%s' (the REPL takes none; "
                    "`lumen run SCRIPT` runs a script)\n", argv[0]);
    return 2;
  }
  if (isatty(STDIN_FILENO)) return lm_repl_interactive(h);
  return repl_piped(h, stdin);
}
