/*
** The interactive REPL: libedit for line editing, history and completion,
** with the libuv loop turning while the prompt waits, so coroutines spawned
** at the prompt keep running between lines.
**
** Input.  libedit reads keys through term_getc, which waits with poll() on
** stdin and on the loop's backend fd together, running the loop without
** blocking whenever it has work (the embedding pattern of uv_backend_fd).
** stdin itself stays in blocking mode, so Lua code and the shell see it as
** they expect.
**
** Ctrl-C.  SIGINT has a plain handler that only sets a flag and wakes the
** loop with uv_async_send (async-signal-safe, and SIGINT may land on any
** thread).  Then, on the loop thread:
**  - at the prompt, term_getc returns an error to el_gets, which drops the
**    line being typed (and any unfinished multi-line chunk);
**  - while a chunk waits on an op, the async callback calls
**    lm_host_interrupt, which cancels the op and raises "interrupted";
**  - while a chunk runs Lua code the loop does not turn, so each chunk's
**    coroutine carries a count hook that raises "interrupted" when the flag
**    is set (lua.c's laction/lstop, without touching Lua from the handler).
** Whichever of the hook and the callback sees the flag first clears it, so
** one Ctrl-C interrupts once.
*/
#include <errno.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include <histedit.h>
#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "host.h"
#include "lumen.h"
#include "repl_internal.h"

#define HISTORY_MAX 1000
#define PROMPT_MAIN "lumen> "
#define PROMPT_MORE "  ...> "
#define HOOK_COUNT 1000 /* Lua instructions between checks for Ctrl-C */

typedef struct repl_term {
  lm_host *h;
  lua_State *L;
  uv_loop_t *loop;
  EditLine *el;
  History *hist;
  char *hist_path;
  const char *prompt;
  uv_async_t wake;   /* woken by the SIGINT handler */
  uv_signal_t winch; /* terminal resized */
  struct sigaction old_sigint;
  volatile sig_atomic_t sigint; /* Ctrl-C seen, not yet acted upon */
  int running;                  /* a chunk is running in lm_host_call */
  int run_interrupted;          /* Ctrl-C acted upon while it ran */
  int prompt_interrupted;       /* el_gets ended by Ctrl-C */
} repl_term;

/* The one interactive REPL of the process, for the signal handler and hook. */
static repl_term *the_term;

static void on_sigint(int sig) {
  (void)sig;
  repl_term *t = the_term;
  if (t == NULL) return;
  int saved = errno;
  t->sigint = 1;
  uv_async_send(&t->wake);
  errno = saved;
}

static void on_wake(uv_async_t *a) {
  repl_term *t = a->data;
  if (t->sigint && t->running) {
    t->sigint = 0;
    t->run_interrupted = 1;
    lm_host_interrupt(t->h);
  }
  /* At the prompt the flag is left for term_getc. */
}

static void on_winch(uv_signal_t *s, int signum) {
  (void)signum;
  repl_term *t = s->data;
  el_resize(t->el);
}

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  repl_term *t = the_term;
  if (t != NULL && t->sigint && t->running) {
    t->sigint = 0;
    t->run_interrupted = 1;
    luaL_error(L, "interrupted");
  }
}

/*
** Running chunks.  The chunk is called from a C function so that its
** coroutine can be given the interrupt hook; lua_callk keeps it yieldable.
** Threads the chunk creates inherit the hook (lua_newthread copies it).
*/
static int chunk_done(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L);
}

static int chunk_start(lua_State *L) {
  lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, HOOK_COUNT);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, chunk_done);
  return chunk_done(L, LUA_OK, 0);
}

/* Run the function below its nargs arguments; results as lm_host_call. */
static int term_run(repl_term *t, int nargs, int nresults) {
  lua_State *L = t->L;
  lua_pushcfunction(L, chunk_start);
  lua_insert(L, -(nargs + 2));
  t->sigint = 0;
  t->run_interrupted = 0;
  t->running = 1;
  int status = lm_host_call(t->h, nargs + 1, nresults);
  t->running = 0;
  t->sigint = 0; /* a Ctrl-C that came as the chunk ended is spent */
  return status;
}

/* Run the loaded chunk on top of the stack and print what it returns. */
static void term_eval(repl_term *t) {
  lua_State *L = t->L;
  int base = lua_gettop(L) - 1;
  int status = term_run(t, 0, LUA_MULTRET);
  if (status != LUA_OK) {
    if (t->run_interrupted) fputc('\n', stderr); /* after the terminal's "^C" */
    lm_repl_report(L, NULL);
    return;
  }
  int n = lua_gettop(L) - base;
  if (n > 0) {
    if (lm_repl_lua_get(L, "show") != LUA_TFUNCTION) {
      lua_pop(L, 1);
      lua_getglobal(L, "print");
    }
    lua_insert(L, base + 1);
    if (term_run(t, n, 0) != LUA_OK) lm_repl_report(L, "error printing the result: ");
  }
  lua_settop(L, base);
}

/* lua.c's checklocal: a top-level local is gone when the chunk ends. */
static void check_local(const char *chunk) {
  chunk += strspn(chunk, " \t");
  if (strncmp(chunk, "local", 5) == 0 && (chunk[5] == ' ' || chunk[5] == '\t')) {
    fputs("warning: locals do not survive across lines in interactive mode\n", stderr);
    fflush(stderr);
  }
}

/*
** Input.  One byte from stdin, turning the loop while waiting.  Returns 1,
** 0 at end of input, -1 on error or Ctrl-C (t->prompt_interrupted says which).
*/
static int term_read_byte(repl_term *t, unsigned char *b) {
  for (;;) {
    if (t->sigint) {
      t->sigint = 0;
      t->prompt_interrupted = 1;
      errno = EINTR;
      return -1;
    }
    struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                            {.fd = uv_backend_fd(t->loop), .events = POLLIN}};
    int r = poll(fds, 2, uv_backend_timeout(t->loop));
    if (r < 0 && errno != EINTR) return -1;
    if (r > 0 && fds[0].revents) {
      ssize_t n = read(STDIN_FILENO, b, 1);
      if (n == 1) return 1;
      if (n == 0) return 0;
      if (errno != EINTR && errno != EAGAIN) return -1;
    }
    uv_run(t->loop, UV_RUN_NOWAIT);
  }
}

/* libedit's read function: bytes to one wide character (the locale's
** multibyte encoding; an invalid sequence gives its first byte). */
static int term_getc(EditLine *el, wchar_t *wc) {
  repl_term *t = NULL;
  el_get(el, EL_CLIENTDATA, &t);
  char buf[MB_LEN_MAX];
  size_t len = 0;
  mbstate_t st;
  memset(&st, 0, sizeof st);
  for (;;) {
    unsigned char b;
    int r = term_read_byte(t, &b);
    if (r != 1) return r;
    buf[len++] = (char)b;
    size_t k = mbrtowc(wc, buf, len, &st);
    if (k == (size_t)-2 && len < sizeof buf) continue; /* more bytes to come */
    if (k == (size_t)-1 || k == (size_t)-2) *wc = (wchar_t)(unsigned char)buf[0];
    return 1;
  }
}

static unsigned char term_complete(EditLine *el, int ch) {
  (void)ch;
  repl_term *t = NULL;
  el_get(el, EL_CLIENTDATA, &t);
  return lm_repl_complete(el, t->L);
}

static char *term_prompt(EditLine *el) {
  repl_term *t = NULL;
  el_get(el, EL_CLIENTDATA, &t);
  return (char *)t->prompt;
}

static int term_open(repl_term *t) {
  HistEvent ev;
  t->hist = history_init();
  if (t->hist == NULL) return -1;
  history(t->hist, &ev, H_SETSIZE, HISTORY_MAX);
  t->hist_path = lm_repl_history_path();
  if (t->hist_path != NULL && lm_repl_history_load(t->hist, t->hist_path, HISTORY_MAX) != 0)
    fprintf(stderr, "lumen: cannot read history file %s: %s\n", t->hist_path, strerror(errno));

  t->el = el_init("lumen", stdin, stdout, stderr);
  if (t->el == NULL) return -1;
  el_set(t->el, EL_CLIENTDATA, t);
  el_set(t->el, EL_EDITOR, "emacs");
  el_set(t->el, EL_PROMPT, term_prompt);
  el_set(t->el, EL_HIST, history, t->hist);
  el_set(t->el, EL_GETCFN, term_getc);
  /* The wide form: libedit keeps these strings as given, where the narrow
  ** EL_ADDFN leaks its copies. */
  el_wset(t->el, EL_ADDFN, L"lumen-complete", L"Complete a Lua name", term_complete);
  el_set(t->el, EL_BIND, "^I", "lumen-complete", NULL);
  el_source(t->el, NULL); /* ~/.editrc, as other libedit programs */

  if (uv_async_init(t->loop, &t->wake, on_wake) != 0) return -1;
  t->wake.data = t;
  uv_unref((uv_handle_t *)&t->wake); /* never keeps the loop alive */
  if (uv_signal_init(t->loop, &t->winch) == 0) {
    t->winch.data = t;
    uv_signal_start(&t->winch, on_winch, SIGWINCH);
    uv_unref((uv_handle_t *)&t->winch);
  }
  the_term = t;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &t->old_sigint);
  return 0;
}

static void term_close(repl_term *t) {
  if (the_term == t) {
    sigaction(SIGINT, &t->old_sigint, NULL);
    the_term = NULL;
  }
  if (t->wake.loop != NULL) uv_close((uv_handle_t *)&t->wake, NULL);
  if (t->winch.loop != NULL) uv_close((uv_handle_t *)&t->winch, NULL);
  uv_run(t->loop, UV_RUN_NOWAIT); /* lets the closes complete */
  if (t->el != NULL) el_end(t->el);
  if (t->hist != NULL) history_end(t->hist);
  free(t->hist_path);
}

static void banner(void) {
  printf("lumen %s (%s)  help() for help, help(Op) for an op; Tab completes;\n"
         "Ctrl-C cancels the line or the running op; Ctrl-D exits.\n",
         LUMEN_VERSION, LUA_RELEASE);
  fflush(stdout);
}

int lm_repl_interactive(lm_host *h) {
  repl_term t = {.h = h, .L = lm_host_lua(h), .loop = lm_engine_loop(lm_host_engine(h))};
  setlocale(LC_CTYPE, ""); /* libedit's character widths follow the terminal */
  if (lm_repl_lua_init(t.L) != 0) {
    lm_repl_report(t.L, "lumen: repl helpers: ");
    return EXIT_FAILURE;
  }
  if (term_open(&t) != 0) {
    fprintf(stderr, "lumen: cannot set up the terminal\n");
    term_close(&t);
    return EXIT_FAILURE;
  }
  banner();

  lm_repl_buf chunk = {0};
  int exit_status = EXIT_SUCCESS;
  for (;;) {
    t.prompt = chunk.len ? PROMPT_MORE : PROMPT_MAIN;
    t.prompt_interrupted = 0;
    int count = 0;
    const char *line = el_gets(t.el, &count);
    if (line == NULL || count <= 0) {
      if (t.prompt_interrupted) { /* Ctrl-C: drop the line and the chunk */
        fputs("^C\n", stdout);
        fflush(stdout);
        lm_repl_buf_reset(&chunk);
        continue;
      }
      if (count < 0) {
        fprintf(stderr, "lumen: reading the terminal: %s\n", strerror(errno));
        exit_status = EXIT_FAILURE;
      }
      fputc('\n', stdout);
      break;
    }
    if (lm_repl_history_add(t.hist, t.hist_path, line, (size_t)count) != 0 && t.hist_path) {
      fprintf(stderr, "lumen: cannot write history file %s: %s\n", t.hist_path, strerror(errno));
      free(t.hist_path); /* say it once, then keep history in memory only */
      t.hist_path = NULL;
    }
    if (chunk.len == 0) {
      if (lm_repl_blank(line, (size_t)count)) continue;
      /* An expression first, so that its value prints (lua.c's addreturn). */
      lm_repl_buf ret = {0};
      int loaded = -1;
      if (lm_repl_buf_append(&ret, "return ", 7) == 0 &&
          lm_repl_buf_append(&ret, line, (size_t)count) == 0)
        loaded = lm_repl_load(t.L, ret.data, ret.len, 1, "=stdin");
      lm_repl_buf_free(&ret);
      if (loaded == LUA_OK) {
        term_eval(&t);
        continue;
      }
      if (loaded != -1) lua_pop(t.L, 1); /* not an expression: a statement */
    }
    if (lm_repl_buf_append(&chunk, line, (size_t)count) != 0) {
      fputs("lumen: out of memory\n", stderr);
      lm_repl_buf_reset(&chunk);
      continue;
    }
    int load = lm_repl_load(t.L, chunk.data, chunk.len, 1, "=stdin");
    if (lm_repl_incomplete(t.L, load)) {
      lua_pop(t.L, 1);
      continue;
    }
    if (load == LUA_OK) {
      check_local(chunk.data);
      term_eval(&t);
    } else {
      lm_repl_report(t.L, NULL);
    }
    lm_repl_buf_reset(&chunk);
  }
  lm_repl_buf_free(&chunk);
  term_close(&t);
  return exit_status;
}
