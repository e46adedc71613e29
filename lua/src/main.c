/*
** The `lumen` command: run scripts, the REPL, and the op reference.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <uv.h>

#include "host.h"

static const char usage[] =
    "usage: lumen [options] [command] [arguments]\n"
    "\n"
    "commands:\n"
    "  run SCRIPT [ARGS...]  run a Lua script as a managed coroutine; its\n"
    "                        arguments are in `arg` (arg[0] is the script)\n"
    "  run [--models DIR] PACKAGE IN OUT\n"
    "                        run a model package (a folder, or a name in the\n"
    "                        model repository) on image IN, save the labels to OUT\n"
    "  run --shard K/N PACKAGE IN... OUT_DIR | SCRIPT ITEMS...\n"
    "                        process only the items i with i % N == K (0-based):\n"
    "                        one slice of a file list per Slurm array task or\n"
    "                        Kubernetes indexed-job pod; a package writes each\n"
    "                        result to OUT_DIR/<input's file name>\n"
    "  serve [--models DIR] [--host H] [--port N] [--queue N] [--timeout S]\n"
    "        [--session-expiry S] [--max-sessions N] [--admin-token T]\n"
    "        [--access-log FILE|-]\n"
    "                        AIAA / MONAI Label inference server (docs/serve.md);\n"
    "                        SIGTERM or SIGINT: finish the requests in flight, exit\n"
    "  models [DIR]          list the model packages of a repository folder\n"
    "  convert-aiaa CONFIG   print the lumen pipeline equivalent to a Clara AIAA\n"
    "                        config_aiaa.json (v2/v3; docs/aiaa-config.md)\n"
    "  repl                  interactive prompt (the default with no command)\n"
    "  ops [NAME]            list every op with its summary, or describe one\n"
    "  SCRIPT.lua [ARGS...]  short for `run SCRIPT.lua [ARGS...]`\n"
    "\n"
    "options:\n"
    "  -j N, --threads N     compute threads (default: number of cores)\n"
    "  --sync                debug mode: run every kernel inline on the loop thread\n"
    "  --no-cuda             do not load the CUDA plugin\n"
    "  --models DIR          the model repository (default $LUMEN_MODELS, else\n"
    "                        the models/ folder of lumen's sources or install)\n"
    "  --version             print the version\n"
    "  -h, --help            print this help\n";

static int fail(const char *fmt, const char *arg)
{
  fprintf(stderr, "lumen: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  return 1;
}

static int host_or_fail(const lm_config *cfg, lm_host **h)
{
  int st = lm_host_new(cfg, h);
  if (st < 0) {
    fprintf(stderr, "lumen: cannot start the engine: %s (%s)\n",
            lm_status_string(st), lm_status_name(st));
    return 1;
  }
  return 0;
}

/*
** Ctrl-C during `lumen run`: the first cancels the running op and raises
** "interrupted" in the script; a second one ends the process.  The handler
** only sets a flag and wakes the loop (async-signal-safe).  A script waiting
** on an op is interrupted from the loop (lm_host_interrupt); a script running
** Lua code never lets the loop turn, so its coroutine carries a count hook
** that raises "interrupted" when the flag is set (coroutines it spawns
** inherit the hook).  The REPL does the same in repl_term.c.
*/
#define RUN_HOOK_COUNT 1000 /* Lua instructions between checks for Ctrl-C */

static struct {
  lm_host *h;
  uv_async_t wake;
  volatile sig_atomic_t pending; /* Ctrl-C seen, not yet acted upon */
  volatile sig_atomic_t presses;
} run_int;

static void run_sigint(int sig)
{
  int saved = errno;
  if (++run_int.presses > 1) {
    signal(SIGINT, SIG_DFL);
    raise(sig);
  }
  run_int.pending = 1;
  uv_async_send(&run_int.wake);
  errno = saved;
}

static void run_wake(uv_async_t *a)
{
  (void)a;
  if (run_int.pending) {
    run_int.pending = 0;
    lm_host_interrupt(run_int.h);
  }
}

static void run_hook(lua_State *L, lua_Debug *ar)
{
  (void)ar;
  if (run_int.pending) {
    run_int.pending = 0;
    luaL_error(L, "interrupted");
  }
}

static int script_done(lua_State *L, int status, lua_KContext ctx)
{
  (void)status;
  (void)ctx;
  return lua_gettop(L);
}

/* Runs in the script's coroutine: give it the hook, then call the script
** (lua_callk keeps it yieldable). */
static int script_start(lua_State *L)
{
  lua_sethook(L, run_hook, LUA_MASKCOUNT, RUN_HOOK_COUNT);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, script_done);
  return script_done(L, LUA_OK, 0);
}

/* Names resolve in the repository inside the library (lm_model_load), so
** the command line's choice travels as the environment variable. */
static void set_models_dir(const char *dir)
{
  setenv("LUMEN_MODELS", dir, 1);
}

static bool is_dir(const char *path)
{
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* A package run: lumen.run_package(PACKAGE, IN, OUT) as a managed
** coroutine. */
static int run_package(const lm_config *cfg, int argc, char **argv)
{
  if (argc != 3)
    return fail("%s", "run: a model package takes an input and an output image "
                      "(lumen run PACKAGE IN OUT)");
  lm_host *h;
  if (host_or_fail(cfg, &h)) return 1;
  lua_State *L = lm_host_lua(h);
  lua_getglobal(L, "lumen");
  lua_getfield(L, -1, "run_package");
  lua_remove(L, -2);
  for (int i = 0; i < 3; i++) lua_pushstring(L, argv[i]);
  int rc = 0;
  if (lm_host_call(h, 3, 1) != LUA_OK) {
    fprintf(stderr, "lumen: %s\n", lua_tostring(L, -1));
    rc = 1;
  } else {
    printf("%s: %s\n", argv[2], lua_tostring(L, -1) ? lua_tostring(L, -1) : "saved");
  }
  lua_pop(L, 1);
  if (lm_host_drain(h) != 0) rc = 1;
  lm_host_free(h);
  return rc;
}

/* A batch of package runs: lumen.run_package_batch(PACKAGE, {IN...}, OUT_DIR,
** K, N) as a managed coroutine; the inputs whose index i has i % N == K. */
static int run_package_batch(const lm_config *cfg, int argc, char **argv, int shard_k,
                             int shard_n)
{
  if (argc < 3)
    return fail("%s", "run: a batch takes inputs and an output folder "
                      "(lumen run [--shard K/N] PACKAGE IN... OUT_DIR)");
  lm_host *h;
  if (host_or_fail(cfg, &h)) return 1;
  lua_State *L = lm_host_lua(h);
  lua_getglobal(L, "lumen");
  lua_getfield(L, -1, "run_package_batch");
  lua_remove(L, -2);
  lua_pushstring(L, argv[0]);
  lua_createtable(L, argc - 2, 0);
  for (int i = 1; i < argc - 1; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_pushstring(L, argv[argc - 1]);
  lua_pushinteger(L, shard_k);
  lua_pushinteger(L, shard_n);
  int rc = 0;
  if (lm_host_call(h, 5, 1) != LUA_OK) {
    fprintf(stderr, "lumen: %s\n", lua_tostring(L, -1));
    rc = 1;
  } else if (lua_tointeger(L, -1) > 0) {
    rc = 1; /* some inputs failed; each was reported */
  }
  lua_pop(L, 1);
  if (lm_host_drain(h) != 0) rc = 1;
  lm_host_free(h);
  return rc;
}

/* "K/N" with 0 <= K < N. */
static bool parse_shard(const char *s, int *k, int *n)
{
  char *end;
  long kk = strtol(s, &end, 10);
  if (end == s || *end != '/') return false;
  const char *ns = end + 1;
  long nn = strtol(ns, &end, 10);
  if (end == ns || *end || nn < 1 || nn > 1000000 || kk < 0 || kk >= nn) return false;
  *k = (int)kk;
  *n = (int)nn;
  return true;
}

static bool is_bare_name(const char *s)
{
  return *s && !strchr(s, '/') && !strchr(s, '.');
}

static int cmd_run(const lm_config *cfg, int argc, char **argv, const char *self)
{
  int shard_k = 0, shard_n = 0; /* --shard K/N; n 0: no sharding */
  while (argc >= 2 && (strcmp(argv[0], "--models") == 0 || strcmp(argv[0], "--shard") == 0)) {
    if (strcmp(argv[0], "--shard") == 0) {
      if (!parse_shard(argv[1], &shard_k, &shard_n))
        return fail("run: --shard '%s': expected K/N with 0 <= K < N", argv[1]);
    } else {
      set_models_dir(argv[1]);
    }
    argc -= 2;
    argv += 2;
  }
  if (argc < 1) return fail("%s", "run: no script given (lumen run SCRIPT [ARGS...])");
  /* A folder is a model package; so is a bare name that is no file here
  ** (it names a package of the repository). */
  struct stat sb;
  if (is_dir(argv[0]) || (is_bare_name(argv[0]) && stat(argv[0], &sb) != 0)) {
    if (shard_n > 0 || argc > 3)
      return run_package_batch(cfg, argc, argv, shard_k, shard_n > 0 ? shard_n : 1);
    return run_package(cfg, argc, argv);
  }
  /* A sharded script sees only its slice of the items: arg[1..] keeps the
  ** items i (0-based) with i % N == K, in order. */
  if (shard_n > 0) {
    int kept = 1;
    for (int i = 1; i < argc; i++)
      if ((i - 1) % shard_n == shard_k) argv[kept++] = argv[i];
    argc = kept;
  }
  const char *script = argv[0];
  lm_host *h;
  if (host_or_fail(cfg, &h)) return 1;
  lua_State *L = lm_host_lua(h);

  /* arg as lua.c builds it: arg[0] the script, arg[1..] its arguments,
  ** arg[-1] the interpreter. */
  lua_createtable(L, argc, 2);
  lua_pushstring(L, self);
  lua_rawseti(L, -2, -1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");

  int rc = 0;
  if (luaL_loadfile(L, script) != LUA_OK) {
    fprintf(stderr, "lumen: %s\n", lua_tostring(L, -1));
    lm_host_free(h);
    return 1;
  }
  luaL_checkstack(L, argc, "too many arguments");
  for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);

  run_int.h = h;
  uv_async_init(lm_engine_loop(lm_host_engine(h)), &run_int.wake, run_wake);
  uv_unref((uv_handle_t *)&run_int.wake); /* never keeps the loop alive */
  struct sigaction sa, old_sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = run_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &old_sa);

  lua_pushcfunction(L, script_start);
  lua_insert(L, -(argc - 1) - 2);
  if (lm_host_call(h, argc, 0) != LUA_OK) {
    fprintf(stderr, "lumen: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    rc = 1;
  }
  if (lm_host_drain(h) != 0) rc = 1;

  sigaction(SIGINT, &old_sa, NULL);
  uv_close((uv_handle_t *)&run_int.wake, NULL);
  lm_engine_run(lm_host_engine(h), 2); /* let the close complete */
  lm_host_free(h);
  return rc;
}

/* Call lumen.<fn>(name) in the host and print the text it returns. */
static int print_from_prelude(lm_host *h, const char *fn, const char *name)
{
  lua_State *L = lm_host_lua(h);
  lua_getglobal(L, "lumen");
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  int nargs = 0;
  if (name) {
    lua_pushstring(L, name);
    nargs = 1;
  }
  if (lm_host_call(h, nargs, 2) != LUA_OK) {
    fprintf(stderr, "lumen: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 1;
  }
  int rc = 0;
  if (lua_isstring(L, -2)) {
    fputs(lua_tostring(L, -2), stdout);
    fputc('\n', stdout);
  } else {
    fprintf(stderr, "lumen: %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "no text");
    rc = 1;
  }
  lua_pop(L, 2);
  return rc;
}

static int cmd_ops(const lm_config *cfg, int argc, char **argv)
{
  if (argc > 1) return fail("%s", "ops: at most one op name");
  lm_host *h;
  if (host_or_fail(cfg, &h)) return 1;
  int rc = argc == 1 ? print_from_prelude(h, "describe", argv[0])
                     : print_from_prelude(h, "op_list", NULL);
  lm_host_free(h);
  return rc;
}

static int cmd_models(const lm_config *cfg, int argc, char **argv)
{
  if (argc > 1) return fail("%s", "models: at most one folder");
  lm_host *h;
  if (host_or_fail(cfg, &h)) return 1;
  int rc = print_from_prelude(h, "model_table", argc == 1 ? argv[0] : NULL);
  lm_host_free(h);
  return rc;
}

/* lumen.aiaa_convert(CONFIG): the generated pipeline's text, or
** the config's errors (every unknown transform at once). */
static int cmd_convert_aiaa(const lm_config *cfg, int argc, char **argv)
{
  if (argc != 1) return fail("%s", "convert-aiaa: one config_aiaa.json expected");
  lm_host *h;
  if (host_or_fail(cfg, &h)) return 1;
  int rc = print_from_prelude(h, "aiaa_convert", argv[0]);
  lm_host_free(h);
  return rc;
}

/*
** `lumen serve`: lumen.serve(opts) (lua/lib/serve.lua) as a managed coroutine.
** SIGTERM and SIGINT only set a flag, which the serve loop polls through
** opts.stop (it sleeps 0.1 s between looks); it then closes the server,
** lets the requests in flight finish and returns, and the command exits 0.
** A second signal ends the process at once.
*/
static volatile sig_atomic_t serve_stop_flag;

static void serve_signal(int sig)
{
  if (serve_stop_flag) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
  serve_stop_flag = 1;
}

static int serve_should_stop(lua_State *L)
{
  lua_pushboolean(L, serve_stop_flag != 0);
  return 1;
}

/* A number option: *out = the value, within [lo, hi]. */
static bool serve_number(const char *opt, const char *s, double lo, double hi, double *out)
{
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "lumen: serve: %s '%s': expected a number from %g to %g\n", opt, s, lo, hi);
    return false;
  }
  *out = v;
  return true;
}

static int cmd_serve(const lm_config *cfg, int argc, char **argv)
{
  static const char *const string_opts[][2] = {
    {"--models", "models"}, {"--host", "host"}, {"--admin-token", "admin_token"},
    {"--access-log", "access_log"},
  };
  static const struct { const char *opt, *field; double lo, hi; bool integer; } number_opts[] = {
    {"--port", "port", 0, 65535, true},       {"--queue", "queue", 1, 100000, true},
    {"--timeout", "timeout", 0.001, 1e9, false}, {"--session-expiry", "session_expiry", 1, 1e9, false},
    {"--max-sessions", "max_sessions", 1, 1e6, true},
  };
  enum { NNUM = sizeof number_opts / sizeof number_opts[0] };
  const char *strings[4] = {getenv("LUMEN_MODELS"), NULL, getenv("LUMEN_ADMIN_TOKEN"), NULL};
  double numbers[NNUM];
  bool have_number[NNUM] = {false};
  for (int i = 0; i < argc; i++) {
    bool known = false;
    for (int j = 0; j < 4 && !known; j++) {
      if (strcmp(argv[i], string_opts[j][0]) == 0) {
        if (++i >= argc) return fail("serve: %s needs a value", string_opts[j][0]);
        strings[j] = argv[i];
        known = true;
      }
    }
    for (int j = 0; j < NNUM && !known; j++) {
      if (strcmp(argv[i], number_opts[j].opt) == 0) {
        if (++i >= argc) return fail("serve: %s needs a value", number_opts[j].opt);
        if (!serve_number(number_opts[j].opt, argv[i], number_opts[j].lo, number_opts[j].hi,
                          &numbers[j]))
          return 2;
        if (number_opts[j].integer && numbers[j] != (double)(long long)numbers[j])
          return fail("serve: %s: expected an integer", number_opts[j].opt);
        have_number[j] = true;
        known = true;
      }
    }
    if (!known) {
      fprintf(stderr, "lumen: serve: unknown argument '%s'\n%s", argv[i], usage);
      return 2;
    }
  }
  lm_host *h;
  if (host_or_fail(cfg, &h)) return 1;
  lua_State *L = lm_host_lua(h);
  lua_getglobal(L, "lumen");
  lua_getfield(L, -1, "serve");
  lua_remove(L, -2);
  lua_createtable(L, 0, 10);
  for (int j = 0; j < 4; j++) {
    if (!strings[j]) continue;
    lua_pushstring(L, strings[j]);
    lua_setfield(L, -2, string_opts[j][1]);
  }
  for (int j = 0; j < NNUM; j++) {
    if (!have_number[j]) continue;
    if (number_opts[j].integer)
      lua_pushinteger(L, (lua_Integer)numbers[j]);
    else
      lua_pushnumber(L, numbers[j]);
    lua_setfield(L, -2, number_opts[j].field);
  }
  lua_pushcfunction(L, serve_should_stop);
  lua_setfield(L, -2, "stop");

  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = serve_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  signal(SIGPIPE, SIG_IGN); /* a client gone mid-reply is an error, not a death */

  int rc = 0;
  if (lm_host_call(h, 1, 0) != LUA_OK) {
    fprintf(stderr, "lumen: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    rc = 1;
  }
  if (lm_host_drain(h) != 0) rc = 1;
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  lm_host_free(h);
  return rc;
}

static int cmd_repl(const lm_config *cfg, int argc, char **argv)
{
  lm_host *h;
  if (host_or_fail(cfg, &h)) return 1;
  int rc = lm_repl_main(h, argc, argv);
  lm_host_free(h);
  return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* OpenMP threads (oneDNN and the model kernels) spin after each parallel
** region by default.  lumen has its own threads too (libuv's pool, the
** compute pool, other pipelines), and spinning OpenMP threads starve them:
** in one measurement a MONAI UNet window took 3x longer with one other busy
** process on 2 cores.  libgomp
** reads OMP_WAIT_POLICY once, when it is loaded, so the command sets it and
** runs itself again unless the user chose a policy. */
static void prefer_passive_openmp(char **argv)
{
  if (getenv("OMP_WAIT_POLICY")) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);
  /* exec failed: go on with libgomp's default policy */
}

int main(int argc, char **argv)
{
  prefer_passive_openmp(argv);
  lm_config cfg;
  lm_config_init(&cfg);
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage, stdout);
      return 0;
    } else if (strcmp(a, "--version") == 0) {
      printf("lumen %s (%s, libuv %s)\n", LUMEN_VERSION, LUA_RELEASE, uv_version_string());
      return 0;
    } else if (strcmp(a, "-j") == 0 || strcmp(a, "--threads") == 0) {
      if (++i >= argc) return fail("%s needs a number", a);
      char *end;
      long n = strtol(argv[i], &end, 10);
      if (*end || n < 0 || n > 1024) return fail("bad thread count '%s'", argv[i]);
      cfg.threads = (int)n;
    } else if (strncmp(a, "-j", 2) == 0 && a[2]) {
      char *end;
      long n = strtol(a + 2, &end, 10);
      if (*end || n < 0 || n > 1024) return fail("bad thread count '%s'", a + 2);
      cfg.threads = (int)n;
    } else if (strcmp(a, "--sync") == 0) {
      cfg.synchronous = true;
    } else if (strcmp(a, "--no-cuda") == 0) {
      cfg.no_cuda = true;
    } else if (strcmp(a, "--models") == 0) {
      if (++i >= argc) return fail("%s needs a folder", a);
      set_models_dir(argv[i]);
    } else if (strcmp(a, "--") == 0) {
      i++;
      break;
    } else {
      fprintf(stderr, "lumen: unknown option '%s'\n%s", a, usage);
      return 2;
    }
  }
  if (i >= argc) return cmd_repl(&cfg, 0, argv + i);
  const char *cmd = argv[i];
  if (strcmp(cmd, "run") == 0) return cmd_run(&cfg, argc - i - 1, argv + i + 1, argv[0]);
  if (strcmp(cmd, "ops") == 0) return cmd_ops(&cfg, argc - i - 1, argv + i + 1);
  if (strcmp(cmd, "models") == 0) return cmd_models(&cfg, argc - i - 1, argv + i + 1);
  if (strcmp(cmd, "serve") == 0) return cmd_serve(&cfg, argc - i - 1, argv + i + 1);
  if (strcmp(cmd, "convert-aiaa") == 0)
    return cmd_convert_aiaa(&cfg, argc - i - 1, argv + i + 1);
  if (strcmp(cmd, "repl") == 0) return cmd_repl(&cfg, argc - i - 1, argv + i + 1);
  if (ends_with(cmd, ".lua")) return cmd_run(&cfg, argc - i, argv + i, argv[0]);
  fprintf(stderr, "lumen: unknown command '%s'\n%s", cmd, usage);
  return 2;
}
