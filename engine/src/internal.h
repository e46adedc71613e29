/* Private structures of the engine core.  Only the engine sources include it;
 * the transforms and the CUDA plugin see lumen.h and cuda_plugin.h only. */
#ifndef LM_INTERNAL_H
#define LM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cuda_plugin.h"
#include "lumen.h"

#define LM_ERRMSG_MAX 1024

/* ---- allocator (alloc.c) ------------------------------------------------ */

/* Size classes: four steps per power of two above 64 bytes, so a reused
 * buffer wastes at most a quarter of its size. */
#define LM_ALLOC_CLASSES 240

typedef struct lm_free_block lm_free_block;
typedef struct lm_allocator {
  pthread_mutex_t mu;
  size_t bound;          /* most bytes kept in the cache */
  size_t cached;         /* bytes in the cache now */
  size_t held;           /* bytes handed out and not returned */
  lm_free_block *lists[LM_ALLOC_CLASSES]; /* per class, newest first */
  lm_free_block *lru_head, *lru_tail;     /* all cached blocks, newest first */
  uint64_t hits, misses;
} lm_allocator;

void lm_alloc_init(lm_allocator *a, size_t bound);
void lm_alloc_destroy(lm_allocator *a);
/* A 64-byte aligned block of at least n bytes; *cap receives its real size
 * (pass it back to lm_alloc_put).  NULL when out of memory. */
void *lm_alloc_get(lm_allocator *a, size_t n, size_t *cap);
void lm_alloc_put(lm_allocator *a, void *p, size_t cap);
void lm_alloc_trim(lm_allocator *a);
void lm_alloc_stats(lm_allocator *a, size_t *held, size_t *cached);
size_t lm_alloc_class_size(size_t n);

/* ---- errors (error.c) --------------------------------------------------- */

/* Format into the calling thread's slot for e (e may be NULL). */
int lm_error_vset(const lm_engine *e, int status, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* The thread's code for e, LM_OK when none. */
int lm_error_code(const lm_engine *e);

/* ---- storage (storage.c) ------------------------------------------------ */

typedef enum { LM_STORAGE_HOST, LM_STORAGE_CUDA, LM_STORAGE_WRAPPED } lm_storage_kind;

typedef struct lm_storage {
  atomic_int refs;
  lm_engine *e;          /* not a reference: every tensor holds one */
  lm_storage_kind kind;
  lm_device dev;
  void *data;
  size_t nbytes;         /* usable bytes */
  size_t cap;            /* allocator block size (host) */
  /* CUDA: the plugin's ready event, recorded after the last kernel that
   * wrote the data (NULL: none); swapped atomically (cuda_plugin.h). */
  _Atomic(void *) ready;
  lm_deleter deleter;
  void *deleter_data, *deleter_ctx;
} lm_storage;

int lm_storage_new(lm_engine *e, lm_device dev, size_t nbytes, lm_storage **out);
lm_storage *lm_storage_wrap(lm_engine *e, lm_device dev, void *base,
                            size_t nbytes, lm_deleter del, void *del_data,
                            void *del_ctx);
void lm_storage_retain(lm_storage *s);
void lm_storage_release(lm_storage *s);

/* ---- trace (trace.c) ---------------------------------------------------- */

typedef struct lm_trace_node {
  atomic_int refs;
  struct lm_trace_node *prev;
  int depth;             /* entries up to and including this one */
  lm_trace_entry entry;  /* op/params point into the node's own block */
} lm_trace_node;

lm_trace_node *lm_trace_retain(lm_trace_node *n);
void lm_trace_release(lm_trace_node *n);

/* ---- tensors (tensor.c) ------------------------------------------------- */

struct lm_tensor {
  atomic_int refs;
  lm_engine *e;          /* holds an engine reference */
  lm_storage *st;
  int64_t offset;        /* of element (0,...,0) in the storage, elements */
  int ndim;
  lm_dtype dt;
  lm_device dev;
  int64_t shape[LM_MAX_DIMS];
  int64_t strides[LM_MAX_DIMS];
  double affine[16];
  char layout[LM_MAX_DIMS + 1];
  lm_trace_node *trace;
};

/* A tensor object over st (takes over the caller's storage reference). */
int lm_tensor_make(lm_engine *e, lm_storage *st, lm_dtype dt, int ndim,
                   const int64_t *shape, const int64_t *strides,
                   int64_t offset, lm_tensor **out);
/* Copy affine, layout and trace from src. */
void lm_tensor_copy_meta(lm_tensor *dst, const lm_tensor *src);
int lm_shape_check(lm_engine *e, int ndim, const int64_t *shape, int64_t *numel);

/* ---- strided iteration (strided.c) -------------------------------------- */

/* Up to two tensors of one shape walked together as rows: the dims are put
 * in the first operand's memory order, dims that can be merged are, and
 * the fastest dim becomes the row. */
typedef struct lm_strided {
  int nouter;
  int64_t shape[LM_MAX_DIMS];
  int64_t sa[LM_MAX_DIMS], sb[LM_MAX_DIMS];
  int64_t inner_n, inner_a, inner_b;
  int64_t rows;
} lm_strided;

void lm_strided_init(lm_strided *it, int ndim, const int64_t *shape,
                     const int64_t *sa, const int64_t *sb);
void lm_strided_row(const lm_strided *it, int64_t row, int64_t *oa, int64_t *ob);

/* ---- params (params.c) -------------------------------------------------- */

/* Deep copy of a value (strings and arrays duplicated); free with
 * lm_value_clear. */
int lm_value_copy(lm_value *dst, const lm_value *src);
void lm_value_clear(lm_value *v);

/* ---- registry (registry.c) ---------------------------------------------- */

typedef struct lm_op_entry {
  const lm_op_desc *desc;
  lm_value *defaults;    /* parsed arg defaults, nargs of them (NIL = none) */
  bool *required;        /* def == NULL */
  lm_kernel_fn cuda;     /* installed CUDA kernel (else desc->run_cuda) */
} lm_op_entry;

typedef struct lm_registry {
  lm_op_entry **ops;     /* sorted by name */
  int n, cap;
  struct { const char *name; lm_op_entry *op; } *aliases; /* sorted */
  int nalias, calias;
} lm_registry;

void lm_registry_free(lm_registry *r);
lm_op_entry *lm_registry_find(lm_registry *r, const char *name);
lm_op_entry *lm_registry_entry(lm_registry *r, const lm_op_desc *d);
/* Parse a default written in Lua syntax into v for an arg of type t. */
int lm_parse_default(const char *text, lm_arg_type t, lm_value *v);

/* ---- op calls (call.c) -------------------------------------------------- */

typedef struct lm_job_s lm_job_s;

struct lm_op_ctx {
  lm_engine *e;
  lm_op_entry *op;
  int nin;
  lm_tensor **in;        /* retained */
  lm_value *args;        /* resolved, one per descriptor arg (owned copies) */
  bool *set;
  lm_tensor *out[LM_MAX_OUTPUTS];
  int nout;
  lm_params *results;
  int err_status;
  char errmsg[LM_ERRMSG_MAX];
  atomic_bool *cancel;   /* the job's flag, or NULL */
  /* The same flag as an int, for model plans (plan.h polls a volatile int
   * between nodes); NULL outside jobs. */
  const volatile int *cancel_word;
  bool use_cuda;         /* run the CUDA kernel */
  int cuda_device;
};

/* Resolve op, inputs and options into ctx (no check() yet).  On failure the
 * engine's error is set and ctx is cleaned. */
int lm_ctx_prepare(lm_engine *e, const char *op, lm_tensor *const *in, int nin,
                   const lm_params *opts, lm_op_ctx *ctx);
/* Run check() on ctx; errors are set on the engine, prefixed. */
int lm_ctx_check(lm_op_ctx *ctx);
/* Run the kernel on this thread; on failure ctx->errmsg holds the full
 * message ("Op: ...") and outputs were dropped. */
int lm_ctx_run(lm_op_ctx *ctx);
void lm_ctx_clear(lm_op_ctx *ctx);

/* ---- compute pool (parallel.c) ------------------------------------------ */

typedef struct lm_pool lm_pool;
int lm_pool_new(int threads, lm_pool **out);
void lm_pool_free(lm_pool *p);

/* ---- executor (executor.c) ---------------------------------------------- */

typedef struct lm_exec lm_exec;
int lm_exec_new(lm_engine *e, lm_exec **out);
/* Loop thread: cancel every job in flight. */
void lm_exec_cancel_all(lm_exec *x);
int lm_exec_pending(lm_exec *x);
/* Loop thread: close the async handle once no job is pending (now, or when
 * the last one completes).  cb(e) runs when it is closed. */
void lm_exec_shutdown(lm_exec *x, void (*closed)(lm_engine *e));
/* lm_call on CUDA inputs: run ctx on its device's thread and wait. */
int lm_exec_run_cuda_sync(lm_exec *x, lm_op_ctx *ctx);
/* lm_call of an LM_OP_MODEL op: run ctx on the inference thread and wait
** (inline when called on that thread). */
int lm_exec_run_model_sync(lm_exec *x, lm_op_ctx *ctx);
/* Any thread: stop the CUDA executor threads (engine destruction). */
void lm_exec_free(lm_exec *x);

/* ---- CUDA plugin (cuda_loader.c) ---------------------------------------- */

typedef struct lm_cuda_state {
  void *dl;
  const lm_cuda_api *api;     /* NULL when no GPU is usable */
  int ndevices;
  char status[256];
} lm_cuda_state;

void lm_cuda_load(lm_engine *e, const lm_config *cfg, lm_cuda_state *cs);
void lm_cuda_unload(lm_cuda_state *cs);

/* ---- the engine (engine.c) ---------------------------------------------- */

struct lm_engine {
  atomic_int refs;           /* handle + tensors + jobs + async handle */
  uint64_t id;               /* key of the per-thread error table */
  bool released;
  int running;               /* lm_engine_run depth (loop thread) */
  atomic_bool destroy_deferred;
  lm_config cfg;
  uv_loop_t *loop;
  uv_loop_t *owned_loop;
  lm_allocator alloc;
  lm_registry reg;
  lm_pool *pool;
  lm_exec *exec;
  lm_cuda_state cuda;
  int threads;
  atomic_llong live_tensors, live_jobs, host_bytes, device_bytes;
};

void lm_engine_ref(lm_engine *e);
void lm_engine_unref(lm_engine *e);
int lm_engine_threads(lm_engine *e);
lm_pool *lm_engine_pool(lm_engine *e);

#endif
