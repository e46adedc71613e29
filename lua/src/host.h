/*
** The host: one engine, one lua_State and the coroutine scheduler, as the
** `lumen` command (run, repl, ops) and the embedded module use them.
**
** Everything here runs on the loop thread.
*/
#ifndef LM_HOST_H
#define LM_HOST_H

#include <lua.h>
#include "lumen.h"

typedef struct lm_host lm_host;

/* A new host: an engine (cfg may be NULL), a lua_State with the standard
** libraries, the lumen module loaded as the global `lumen`, every op and the
** prelude's helpers (spawn, all, help, ...) installed as globals. */
int lm_host_new(const lm_config *cfg, lm_host **out);
/* Cancels what is still running, closes the state, releases the engine. */
void lm_host_free(lm_host *h);

lua_State *lm_host_lua(lm_host *h);
lm_engine *lm_host_engine(lm_host *h);

/* Call the function at the top of the stack, below its nargs arguments, as a
** managed coroutine, and turn the loop until that coroutine has finished.
** Spawned coroutines keep running while the loop turns; they are not waited
** for.  Returns LUA_OK with nresults results (LUA_MULTRET allowed) on the
** stack, or an error status with one value on the stack: the error message
** with a traceback (structured op errors are converted with __tostring). */
int lm_host_call(lm_host *h, int nargs, int nresults);

/* Turn the loop until every managed coroutine has finished (what `lumen run`
** does after the main chunk returns). */
int lm_host_drain(lm_host *h);

/* Interrupt the coroutine that lm_host_call is running: cancel its pending
** jobs and raise "interrupted" in it at its next Lua instruction.  Call it
** from the loop thread (a uv_signal_t callback). */
void lm_host_interrupt(lm_host *h);

/* The `lumen repl` front end (lua/src/repl.c): interactive when stdin is a
** terminal, quiet chunk-by-chunk execution of piped input otherwise.
** Returns a process exit status. */
int lm_repl_main(lm_host *h, int argc, char **argv);

#endif
