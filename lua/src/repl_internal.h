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

/* The interactive REPL (repl_term.c); returns a process exit status. */
int lm_repl_interactive(lm_host *h);

#endif
