/*
** Private interface between the parts of the `lumen repl` front end:
** repl.c (chunks: loading, running, printing, piped input), repl_term.c
** (the interactive terminal: libedit, history, Ctrl-C) and repl_complete.c
** (tab completion).  Everything runs on the loop thread.
*/
#ifndef LM_REPL_INTERNAL_H
#define LM_REPL_INTERNAL_H

#include <stddef.h>
#include <lua.h>

#include "host.h"

/* A growable NUL-terminated text buffer. */
typedef struct lm_repl_buf {
  char *data;
  size_t len, cap;
} lm_repl_buf;

int lm_repl_buf_append(lm_repl_buf *b, const char *s, size_t n);
void lm_repl_buf_reset(lm_repl_buf *b);
void lm_repl_buf_free(lm_repl_buf *b);

/* Load text as a chunk whose first line is line first_line of the input.
** Returns lua_load's status with the function or the message on the stack. */
int lm_repl_load(lua_State *L, const char *text, size_t len, size_t first_line,
                 const char *chunkname);
/* After a failed load: true when the chunk is merely unfinished. */
int lm_repl_incomplete(lua_State *L, int status);
/* True when text is only whitespace. */
int lm_repl_blank(const char *text, size_t len);
/* Print the error value on top of the stack to stderr and pop it. */
void lm_repl_report(lua_State *L, const char *prefix);

/* The Lua helpers (repl_lua.c): a table {show = f(...), complete =
** f(base, sep, partial) -> sorted names} kept in the registry.  init returns
** 0, or -1 with the message on the stack; get pushes one helper (or nil) and
** returns its type. */
#define LM_REPL_REGKEY "lumen.repl"
int lm_repl_lua_init(lua_State *L);
int lm_repl_lua_get(lua_State *L, const char *name);

/* History (repl_history.c).  The file's path from $LUMEN_HISTORY or $HOME, or
** NULL for none (malloc'd).  load: enter the newest max_entries lines of the
** file into hist and trim the file to them; add: enter a line (without its
** newline, skipping blanks and repeats) and append it to the file.  Both
** return 0, or -1 when the file could not be read or written (errno set). */
typedef struct history History;
char *lm_repl_history_path(void);
int lm_repl_history_load(History *hist, const char *path, int max_entries);
int lm_repl_history_add(History *hist, const char *path, const char *line, size_t len);

/* Tab completion (repl_complete.c): an EditLine function (returns a CC_*
** code) completing the word before the cursor from L's globals. */
typedef struct editline EditLine;
unsigned char lm_repl_complete(EditLine *el, lua_State *L);

/* The interactive REPL (repl_term.c); returns a process exit status. */
int lm_repl_interactive(lm_host *h);

#endif
