/*
** lml.h: private interface between the files of the Lua binding (lua/src).
**
** One lml_ctx exists per lua_State that loaded the lumen module.  It owns
** the engine (created on first use), the scheduler of managed coroutines
** ("tasks") and the bookkeeping of jobs in flight.  The ctx is plain C
** memory, not a userdata, because completion callbacks may still arrive
** while the state is being closed; a sentinel userdata's __gc shuts it down.
*/
#ifndef LML_H
#define LML_H

#include <stdbool.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "lumen.h"

/* Lua 5.4.6 renamed lua_resetthread(co) to lua_closethread(co, from). */
#if LUA_VERSION_RELEASE_NUM >= 50406
#define lml_closethread(co) lua_closethread((co), NULL)
#else
#define lml_closethread(co) lua_resetthread(co)
#endif

#define LML_TENSOR_MT "lumen.tensor"
#define LML_TASK_MT "lumen.task"
#define LML_ERROR_MT "lumen.error"
#define LML_MODEL_MT "lumen.model"

typedef struct lml_task lml_task;
typedef struct lml_pending lml_pending;

typedef struct lml_ctx {
  lua_State *L;            /* the main thread */
  lm_engine *engine;       /* NULL until first needed */
  lm_config cfg;           /* used when the engine is created */
  bool have_cfg;
  bool closing;            /* the state is closing: resume nothing */
  bool turning;            /* inside lm_engine_run: no nested turns */
  int64_t live_tasks;      /* managed coroutines not yet finished */
  int64_t live_boxes;      /* tensor userdata still holding a tensor */
  int64_t live_models;     /* Model userdata still holding a model */
  int npending;            /* jobs and timers in flight (each will call back) */
  int nclosing;            /* fired timers whose handle is still closing */
  lua_State *helper;       /* a clean thread for the scheduler's own work */
  int64_t gc_threshold;    /* external bytes that trigger a full collection */
} lml_ctx;

/* ctx.c */
/* The ctx of L's state, created on first call (never NULL: raises on OOM). */
lml_ctx *lml_ctx_get(lua_State *L);
/* Record the engine configuration to use; before the engine exists only. */
void lml_ctx_configure(lua_State *L, const lm_config *cfg);
/* The engine, created on first use (raises if it cannot be created). */
lm_engine *lml_engine(lua_State *L, lml_ctx *ctx);
/* Step the collector when the engine holds many more bytes than it did
** after the last full collection (Lua does not see tensor memory). */
void lml_ctx_account(lua_State *L, lml_ctx *ctx);
/* Turn the loop once (blocking).  Raises if the loop is already running. */
void lml_ctx_turn(lua_State *L, lml_ctx *ctx);

/* tensor.c */
/* Create the metatable; put zeros/tensor into the module table. */
void lml_tensor_open(lua_State *L, int module_idx);
/* Push a new box that takes over the reference t (t NULL: raises). */
void lml_tensor_push(lua_State *L, lml_ctx *ctx, lm_tensor *t);
/* The tensor at idx: raises for a non-tensor or a released box. */
lm_tensor *lml_tensor_check(lua_State *L, int idx);
/* The tensor at idx or NULL if idx is not a tensor box (released: raises). */
lm_tensor *lml_tensor_test(lua_State *L, int idx);

/* The tensor at idx, or NULL (no raise) with *released telling whether
** idx is a released box. */
lm_tensor *lml_tensor_peek(lua_State *L, int idx, bool *released);

/* model.c: the Model userdata, lumen.Model (methods), lumen.load_graph. */
void lml_model_open(lua_State *L, int module_idx);
/* Push a new Model box that takes over the reference m. */
void lml_model_push(lua_State *L, lml_ctx *ctx, lm_model *m);
/* The model at idx, or NULL (no raise) with *released telling whether idx
** is a released Model. */
lm_model *lml_model_peek(lua_State *L, int idx, bool *released);

/* ops.c */
void lml_ops_open(lua_State *L, int module_idx);
/* Push the function of op d (cached per state). */
void lml_op_push(lua_State *L, const lm_op_desc *d);
/* Push a structured error {code, op, message, status} (no raise). */
void lml_error_push(lua_State *L, int status, const char *op, const char *msg);
/* Raise a structured error. */
int lml_error_raise(lua_State *L, int status, const char *op, const char *msg);

/* sched.c */
void lml_sched_open(lua_State *L, int module_idx);
/* The task whose coroutine is L, or NULL when L is not managed. */
lml_task *lml_task_current(lua_State *L);
/* Create a task running the function at -(nargs+1) with nargs arguments,
** start it at once, and leave its handle on the stack (function and
** arguments popped). */
lml_task *lml_task_spawn(lua_State *L, lml_ctx *ctx, int nargs);
bool lml_task_done(const lml_task *t);
/* For hosts: push the results of the finished task whose handle is at hidx
** and return their count; if it failed, push its message with traceback
** and return -1 (the failure counts as observed). */
int lml_task_results(lua_State *L, int hidx);
/* Cancel the task's pending job or wait and make it raise `why`. */
void lml_task_interrupt(lml_task *t, const char *why);
/* Inside a managed coroutine: wait for job (submitted by the caller with
** lml_job_done as callback and the returned pending as userdata), then
** continue in k.  Must be used as `return lml_task_wait_job(...)`. */
lml_pending *lml_pending_new(lml_ctx *ctx, lml_task *t);
int lml_task_wait_job(lua_State *L, lml_task *t, lml_pending *p, lm_job *job,
                      lua_KFunction k);
void lml_job_done(lm_job *job, int status, void *userdata);
/* In a continuation: the finished job of p (p is freed; the caller releases
** the job).  Raises "interrupted" (or the reason given to
** lml_task_interrupt) if the task was interrupted meanwhile. */
lm_job *lml_pending_take(lua_State *L, lml_pending *p);
/* Report on stderr the failures of tasks nobody awaited; their count. */
int lml_sched_report_unobserved(lua_State *L);
/* Cancel everything pending and wait for the callbacks (state closing). */
void lml_sched_shutdown(lml_ctx *ctx);
/* Is anything in flight that will wake a coroutine later? */
bool lml_sched_busy(lml_ctx *ctx);

/* fs.c: lumen.fs (list, stat, mkdir, remove) and lumen.clock. */
void lml_fs_open(lua_State *L, int module_idx);
/* fs_tree.c: lumen.fs.mkdtemp, remove_tree, exchange, lstat (after lml_fs_open). */
void lml_fs_tree_open(lua_State *L, int module_idx);
/* archive.c: lumen.extract_archive (zip and tar, extracted safely by
** extract.c). */
void lml_archive_open(lua_State *L, int module_idx);
/* http_lua.c: lumen.http_serve (after lml_sched_open: it uses lumen.sleep). */
void lml_http_open(lua_State *L, int module_idx);

/* json.c: lumen.json_decode / json_encode / json_null, and the decoder
** used for LM_VALUE_JSON results. */
#define LML_JSON_INT_KEYS 1 /* object keys like "3" become integer keys */
void lml_json_open(lua_State *L, int module_idx);
/* Push the value of the JSON text (flags: LML_JSON_INT_KEYS); on a syntax
** error push nothing, write "what at byte N (line L, column C)" into err
** and return -1.  Raises only on memory errors. */
int lml_json_push(lua_State *L, const char *text, size_t len, int flags,
                  char *err, size_t errlen);

/* module.c */
int luaopen_lumen(lua_State *L);

#endif
