/*
** lumen.h: the public C interface of the lumen pipeline engine.
**
** This header is the specification of the library. If a function, type or
** constant is not declared here, it is not part of the published API.
**
** lumen is a processing engine for medical image segmentation: a tensor type
** that carries the geometry of a volume (a voxel-to-world affine, a layout
** string and a trace of the spatial operations applied to it), a registry of
** operations ("ops": LoadNifti, ScaleIntensityRange, Argmax, ...) declared
** once by a descriptor, and an executor that runs ops on a libuv loop: CPU
** kernels on a thread pool, GPU kernels (when the CUDA plugin finds a device)
** on a per-device executor thread.
**
** Rules that hold for every function below (sqlite / libuv conventions):
**
**  1. Functions returning int return a status: LM_OK (0) or a positive value
**     on success, a negative LM_E* code on failure.  When a function fails it
**     leaves a message that lm_errmsg() returns on the same thread.
**  2. If an _async function returns an error, its callback is never called.
**     Otherwise the callback is called exactly once, on the loop thread, also
**     when the job was cancelled (status LM_ECANCELED).
**  3. Every lm_tensor** out parameter gives the caller one new reference,
**     released with lm_tensor_release().  Getters borrow: the pointer they
**     return stays valid while the caller holds its reference.  Inputs are
**     borrowed; asynchronous calls retain what they need internally.
**  4. An engine is not thread-safe: call it from the thread that runs its
**     loop.  The exceptions are lm_job_cancel(), lm_tensor_retain(),
**     lm_tensor_release() and the getters, which any thread may call.
**  5. The library never prints, never exits and never longjmps.
**
** Axis conventions.  A volume loaded from NIfTI has shape (X, Y, Z[, T]) with
** X the file's i axis, and memory in the file's order (i fastest): strides
** (1, X, X*Y, ...).  Logical indices always follow MONAI / nibabel (arr[i,j,k]
** is NIfTI voxel (i,j,k)); memory order is a property of the strides only.
** The affine maps (i, j, k, 1) to RAS+ world coordinates in mm, as nibabel.
*/
#ifndef LUMEN_H
#define LUMEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUMEN_VERSION "0.1.0"
#define LM_MAX_DIMS 8     /* most dimensions a tensor can have */
#define LM_MAX_OUTPUTS 8  /* most tensors one op call can return */

struct uv_loop_s; /* libuv's loop; include <uv.h> to use it */

/*
** Status codes.  0 and positive values mean success.
*/
enum {
  LM_OK = 0,
  LM_EINVAL = -1,       /* invalid argument or option value */
  LM_ENOMEM = -2,       /* out of memory */
  LM_EIO = -3,          /* read or write failed */
  LM_ENOENT = -4,       /* no such file, op or option */
  LM_EFORMAT = -5,      /* malformed or corrupt file */
  LM_EDTYPE = -6,       /* data type not supported here */
  LM_ESHAPE = -7,       /* shapes do not fit together */
  LM_EDEVICE = -8,      /* wrong device, or no kernel for the device */
  LM_ECUDA = -9,        /* CUDA or cuDNN failure */
  LM_ECANCELED = -10,   /* the job was cancelled */
  LM_EBUSY = -11,       /* resource busy / queue full */
  LM_EUNSUPPORTED = -12,/* a valid request this build does not support */
  LM_EINTERNAL = -99    /* a bug in lumen */
};

/* "LM_EINVAL" etc.; a static string, "LM_E?" for unknown codes. */
const char *lm_status_name(int status);
/* A short English description of a status ("invalid argument"). */
const char *lm_status_string(int status);

/*
** Data types.  The numeric order is part of the ABI.
*/
typedef enum lm_dtype {
  LM_U8, LM_I8, LM_I16, LM_U16, LM_I32, LM_U32, LM_I64,
  LM_F16, LM_BF16, LM_F32, LM_F64,
  LM_DTYPE_COUNT
} lm_dtype;

/* "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64",
** "float16", "bfloat16", "float32", "float64". */
const char *lm_dtype_name(lm_dtype dt);
/* Size of one element in bytes; 0 for an invalid dtype. */
size_t lm_dtype_size(lm_dtype dt);
/* Parse a dtype name (also the aliases "u8", "i16", "f32", "float",
** "double", "half").  Returns LM_OK or LM_EINVAL. */
int lm_dtype_from_name(const char *name, lm_dtype *out);
/* True for float16, bfloat16, float32 and float64. */
bool lm_dtype_is_float(lm_dtype dt);

/* float16 / bfloat16 conversions (round to nearest even). */
float lm_f16_to_f32(uint16_t h);
uint16_t lm_f32_to_f16(float f);
float lm_bf16_to_f32(uint16_t h);
uint16_t lm_f32_to_bf16(float f);

/*
** Devices.
*/
typedef enum lm_device_type { LM_DEVICE_CPU = 0, LM_DEVICE_CUDA = 1 } lm_device_type;
typedef struct lm_device {
  int type;   /* lm_device_type */
  int index;  /* device ordinal; 0 for the CPU */
} lm_device;
#define LM_CPU ((lm_device){LM_DEVICE_CPU, 0})

/* Parse "cpu", "cuda" (= "cuda:0") or "cuda:N".  LM_OK or LM_EINVAL. */
int lm_device_parse(const char *s, lm_device *out);
/* Write "cpu" or "cuda:N" into buf (at least 16 bytes); returns buf. */
char *lm_device_format(lm_device d, char *buf, size_t len);
bool lm_device_equal(lm_device a, lm_device b);

/*
** The engine.
*/
typedef struct lm_engine lm_engine;

typedef struct lm_config {
  int threads;             /* compute threads for kernels; 0 = number of cores */
  int io_threads;          /* libuv pool size, applied before its first use;
                              0 = keep UV_THREADPOOL_SIZE or max(4, threads) */
  struct uv_loop_s *loop;  /* a loop to borrow; NULL = the engine owns one */
  size_t host_cache_bytes; /* bound on freed host memory kept for reuse;
                              0 = default (1 GiB), (size_t)-1 = no caching */
  bool synchronous;        /* debug mode: run every kernel inline on the loop
                              thread (completions are still delivered by
                              the loop) */
  bool no_cuda;            /* do not try to load the CUDA plugin */
  const char *cuda_plugin; /* path of liblumen_cuda.so; NULL = next to the
                              library, then the installed libdir */
} lm_config;

/* Fill cfg with the defaults above. */
void lm_config_init(lm_config *cfg);

/* Create an engine with the built-in ops registered.  cfg may be NULL. */
int lm_engine_new(const lm_config *cfg, lm_engine **out);

/* Release the caller's handle.  The engine is destroyed once no tensor and
** no job refers to it any more ("zombie" semantics, as sqlite3_close_v2), so
** host languages may collect objects in any order.  An owned loop is closed
** then; pending jobs are cancelled first. */
void lm_engine_release(lm_engine *e);

/* The loop the engine runs on (owned or borrowed). */
struct uv_loop_s *lm_engine_loop(lm_engine *e);

/* Run the loop: mode 0 = until no work is left, 1 = once, 2 = no wait
** (uv_run's UV_RUN_DEFAULT / ONCE / NOWAIT).  Returns uv_run's value. */
int lm_engine_run(lm_engine *e, int mode);

/* The status and message of the last failed call made on this thread with
** this engine.  The message stays valid until the next call on this thread. */
int lm_errcode(const lm_engine *e);
const char *lm_errmsg(const lm_engine *e);

/* Set the calling thread's error for e; returns status.  For op authors and
** binding layers. */
int lm_set_error(lm_engine *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Number of usable CUDA devices (0 without plugin, driver or device).
** lm_engine_cuda_status() says why in words ("no CUDA device: driver version
** is insufficient", "CUDA plugin not built", "2 devices: NVIDIA H100 ..."). */
int lm_engine_cuda_devices(lm_engine *e);
const char *lm_engine_cuda_status(lm_engine *e);

typedef struct lm_engine_stats {
  int64_t live_tensors;      /* lm_tensor objects alive */
  int64_t live_jobs;         /* jobs submitted and not yet released */
  int64_t host_bytes;        /* host bytes held by live storages */
  int64_t host_cached_bytes; /* freed host bytes kept by the allocator */
  int64_t device_bytes;      /* device bytes held by live storages */
  int64_t device_pool_bytes; /* device bytes the CUDA memory pools hold from
                                the driver: live plus freed blocks kept for
                                reuse ($LUMEN_CUDA_POOL_KEEP bounds those) */
  int threads;               /* compute threads */
} lm_engine_stats;
void lm_engine_stats_get(lm_engine *e, lm_engine_stats *out);

/* Return the cached host memory to the system, and (glibc) the free pages
** of malloc's heap that kernels used for scratch. */
void lm_engine_trim(lm_engine *e);

/*
** Tensors.
**
** A tensor is a strided view of a reference-counted storage, with a dtype,
** up to LM_MAX_DIMS dims, a device, a 4x4 row-major affine (voxel to world,
** float64), a layout string naming the axes ("XYZ", "CXYZ", ...; may be
** empty) and a trace of the spatial ops applied to it.  Shapes and strides
** are in elements.  Views share the storage; metadata is per tensor.
** A tensor's metadata may be changed with the setters only while the caller
** holds the only reference (right after creating it).
*/
typedef struct lm_tensor lm_tensor;

/* A new tensor, uninitialised, C-contiguous (last axis fastest).  ndim may be
** 0 (a scalar).  The affine is the identity and the layout empty. */
int lm_tensor_new(lm_engine *e, lm_dtype dt, int ndim, const int64_t *shape,
                  lm_device dev, lm_tensor **out);

/* As lm_tensor_new but zero-filled. */
int lm_tensor_zeros(lm_engine *e, lm_dtype dt, int ndim, const int64_t *shape,
                    lm_device dev, lm_tensor **out);

/* A new dense tensor with the shape of like, the dims in the same memory order
** (so elementwise kernels can walk both buffers linearly), the given dtype
** and device, and like's affine, layout and trace. */
int lm_tensor_new_like(const lm_tensor *like, lm_dtype dt, lm_device dev,
                       lm_tensor **out);

/* A new dense tensor with the given shape whose dims are laid out in memory
** in the order given by order[] (order[0] the slowest dim, order[ndim-1] the
** fastest).  order NULL = C order. */
int lm_tensor_new_ordered(lm_engine *e, lm_dtype dt, int ndim,
                          const int64_t *shape, const int *order,
                          lm_device dev, lm_tensor **out);

/* Wrap external memory.  deleter(data, ctx) is called when the last view is
** gone (NULL = the caller keeps ownership and keeps data alive longer than
** every view).  strides NULL = C-contiguous. */
typedef void (*lm_deleter)(void *data, void *ctx);
int lm_tensor_wrap(lm_engine *e, void *data, lm_dtype dt, int ndim,
                   const int64_t *shape, const int64_t *strides, lm_device dev,
                   lm_deleter deleter, void *deleter_ctx, lm_tensor **out);

lm_tensor *lm_tensor_retain(lm_tensor *t);   /* returns t */
void lm_tensor_release(lm_tensor *t);        /* NULL is a no-op */

lm_engine *lm_tensor_engine(const lm_tensor *t);
lm_dtype lm_tensor_dtype(const lm_tensor *t);
int lm_tensor_ndim(const lm_tensor *t);
const int64_t *lm_tensor_shape(const lm_tensor *t);
const int64_t *lm_tensor_strides(const lm_tensor *t);
int64_t lm_tensor_numel(const lm_tensor *t);
size_t lm_tensor_nbytes(const lm_tensor *t);   /* numel * element size */
lm_device lm_tensor_device(const lm_tensor *t);
/* Address of element (0,...,0).  For CUDA tensors a device pointer. */
void *lm_tensor_data(const lm_tensor *t);
/* True if the storage is shared with another tensor (a view or its base).
** Ops use it to decide whether they may write their output in place. */
bool lm_tensor_is_shared(const lm_tensor *t);

/* C-contiguous: last axis fastest, no gaps. */
bool lm_tensor_is_contiguous(const lm_tensor *t);
/* Dense: the elements fill one block without gaps or overlap, in any dim
** order (a permutation of a contiguous tensor is dense). */
bool lm_tensor_is_dense(const lm_tensor *t);

const double *lm_tensor_affine(const lm_tensor *t);  /* 16 doubles, row-major */
void lm_tensor_set_affine(lm_tensor *t, const double affine[16]);
/* Spacing as MONAI defines it: norms of the first 3 affine columns. */
void lm_tensor_spacing(const lm_tensor *t, double spacing[3]);
/* Orientation code of the affine ("RAS", "LPS", ...), nibabel's
** aff2axcodes; buf of at least 4 bytes. */
char *lm_tensor_orientation(const lm_tensor *t, char *buf);
const char *lm_tensor_layout(const lm_tensor *t);    /* never NULL */
void lm_tensor_set_layout(lm_tensor *t, const char *layout); /* <= 8 chars */

/* Views (no data copied; metadata and trace copied from t). */
/* Reorder dims: out dim i is t's dim perm[i]. */
int lm_tensor_permute(lm_tensor *t, const int *perm, lm_tensor **out);
/* Insert a dim of size 1 at position axis (0..ndim). */
int lm_tensor_unsqueeze(lm_tensor *t, int axis, lm_tensor **out);
/* Remove dim axis, which must have size 1. */
int lm_tensor_squeeze(lm_tensor *t, int axis, lm_tensor **out);
/* Elements start..stop-1 (step 1) of dim axis. */
int lm_tensor_narrow(lm_tensor *t, int axis, int64_t start, int64_t length,
                     lm_tensor **out);
/* A general view: any shape and strides over t's storage, offset in
** elements relative to t's first element.  Bounds are checked. */
int lm_tensor_view(lm_tensor *t, int ndim, const int64_t *shape,
                   const int64_t *strides, int64_t offset, lm_tensor **out);

/* A C-contiguous tensor with t's values: t itself (retained) if it already
** is, else a copy. */
int lm_tensor_contiguous(lm_tensor *t, lm_tensor **out);
/* A deep copy, same memory order, same metadata. */
int lm_tensor_clone(lm_tensor *t, lm_tensor **out);
/* Copy the values of src into dst (same shape, any strides, any dtypes:
** values are converted as C casts do, floats to integers rounding toward
** zero).  Both on the CPU. */
int lm_tensor_copy(lm_tensor *dst, const lm_tensor *src);

/* Element access for tests and small tools (slow): the value at idx[]
** converted to double, and the reverse. */
double lm_tensor_get(const lm_tensor *t, const int64_t *idx);
void lm_tensor_set(lm_tensor *t, const int64_t *idx, double v);

typedef struct lm_tensor_stats {
  double min, max, mean, std; /* std is the population std (ddof 0) */
  int64_t count;              /* values counted (NaN excluded) */
  int64_t nan_count;
} lm_tensor_stats;
/* Statistics over all elements, computed in double, on the CPU. */
int lm_tensor_stats_compute(const lm_tensor *t, lm_tensor_stats *out);

/*
** The trace of spatial ops (MONAI's applied_operations).  Each entry records
** the op, its parameters as text ("key=value;key=value"), and the shape and
** affine before the op.  Entries are shared between tensors derived from one
** another and never change once pushed.
*/
typedef struct lm_trace_entry {
  const char *op;       /* op name */
  const char *params;   /* "key=value;..." as the op wrote it */
  int ndim;
  int64_t shape[LM_MAX_DIMS];  /* shape before the op */
  double affine[16];           /* affine before the op */
} lm_trace_entry;
int lm_tensor_trace_length(const lm_tensor *t);
/* Entry i, 0 = oldest.  NULL if out of range. */
const lm_trace_entry *lm_tensor_trace_at(const lm_tensor *t, int i);
/* Append an entry recording t's current shape and affine (the state before
** the op that is about to produce t's successor is applied): call it on the
** output tensor with the input's shape and affine. */
int lm_tensor_trace_push(lm_tensor *t, const char *op, const char *params,
                         int ndim, const int64_t *shape,
                         const double affine[16]);
/* Replace t's trace by a copy of src's (shared, no copy made). */
void lm_tensor_trace_copy(lm_tensor *t, const lm_tensor *src);
/* Remove the newest entry (used by inverse ops). */
void lm_tensor_trace_pop(lm_tensor *t);

/*
** Named values: op options in, and scalar op results out.
*/
typedef enum lm_value_type {
  LM_VALUE_NIL = 0, LM_VALUE_NUMBER, LM_VALUE_INT, LM_VALUE_BOOL,
  LM_VALUE_STRING, LM_VALUE_NUMBERS,
  LM_VALUE_JSON,   /* structured data as JSON text in u.string (nested lists
                      and objects, e.g. contours); the Lua binding turns it
                      into tables */
  LM_VALUE_MODEL   /* a model (u.model); the holder owns one reference */
} lm_value_type;

typedef struct lm_value {
  lm_value_type type;
  union {
    double number;
    int64_t integer;
    bool boolean;
    const char *string;                         /* STRING and JSON; owned by
                                                   the holder */
    struct { const double *v; int n; } numbers; /* owned by the holder */
    struct lm_model *model;                     /* MODEL */
  } u;
} lm_value;

typedef struct lm_params lm_params;
int lm_params_new(lm_params **out);
void lm_params_free(lm_params *p);
/* Setting a name again replaces its value.  Strings and arrays are copied. */
int lm_params_set_number(lm_params *p, const char *name, double v);
int lm_params_set_int(lm_params *p, const char *name, int64_t v);
int lm_params_set_bool(lm_params *p, const char *name, bool v);
int lm_params_set_string(lm_params *p, const char *name, const char *v);
int lm_params_set_numbers(lm_params *p, const char *name, const double *v, int n);
/* A structured value: json must be one valid JSON value (object, array,
** string, number, true, false or null); it is stored as given. */
int lm_params_set_json(lm_params *p, const char *name, const char *json);
/* A model: the params take their own reference (lm_model_retain). */
int lm_params_set_model(lm_params *p, const char *name, struct lm_model *m);
int lm_params_count(const lm_params *p);
/* Entry i (insertion order): its name, and its value in *v (borrowed). */
const char *lm_params_at(const lm_params *p, int i, lm_value *v);
/* The value of name, or NULL. */
const lm_value *lm_params_get(const lm_params *p, const char *name);

/*
** Op descriptors.  Every op is declared once by an lm_op_desc; the C call
** API, the Lua binding, `help`, `lumen ops` and the server all read it.
*/
typedef enum lm_arg_type {
  LM_ARG_NUMBER,   /* double */
  LM_ARG_INT,      /* integer (a number with an integral value) */
  LM_ARG_BOOL,
  LM_ARG_STRING,
  LM_ARG_NUMBERS,  /* a list of numbers */
  LM_ARG_MODEL     /* a model (lm_model; from Lua a Model object); the
                      Lua binding also accepts it as a positional argument */
} lm_arg_type;

typedef struct lm_arg_desc {
  const char *name;
  lm_arg_type type;
  /* Default in Lua syntax: "0.5", "true", "'float32'", "{1, 1, 1}".
  ** NULL = required.  "nil" = optional with no value (lm_arg_is_set false). */
  const char *def;
  const char *doc;
} lm_arg_desc;

enum {
  LM_OP_SOURCE = 1 << 0,   /* takes no tensor input (LoadNifti, Phantom) */
  LM_OP_IO = 1 << 1,       /* does file I/O */
  LM_OP_INLINE = 1 << 2,   /* cheap (views, metadata): runs on the calling
                              thread, never on a pool */
  LM_OP_ANY_DEVICE = 1 << 3,/* run_cpu handles inputs on any device (ToDevice) */
  LM_OP_MODEL = 1 << 4     /* network inference: runs on the engine's
                              inference executor thread, never on libuv's
                              pool or the loop thread */
};

typedef struct lm_op_ctx lm_op_ctx;
typedef int (*lm_kernel_fn)(lm_op_ctx *ctx);

typedef struct lm_op_desc {
  const char *name;      /* "ScaleIntensityRange" */
  const char *alias;     /* another name, or NULL */
  const char *summary;   /* one line, no final period */
  const char *doc;       /* longer text: semantics, oracle, examples */
  const char *inputs;    /* names of the tensor inputs: "img" or "img, label";
                            "" for source ops */
  int min_inputs, max_inputs;
  const char *outputs;   /* names of the tensor outputs: "img" */
  const lm_arg_desc *args;
  int nargs;
  unsigned flags;        /* LM_OP_* */
  /* Loop thread, before anything is queued: validate inputs and options
  ** (cheap; no data access).  May be NULL. */
  lm_kernel_fn check;
  /* Worker thread (or inline when synchronous): do the work. */
  lm_kernel_fn run_cpu;
  /* GPU executor thread, for inputs on a CUDA device; NULL = no kernel.
  ** The CUDA plugin sets it with lm_op_set_cuda_kernel(). */
  lm_kernel_fn run_cuda;
} lm_op_desc;

/* Register an op (the descriptor must outlive the engine).  LM_EINVAL if the
** name is taken or a default does not parse. */
int lm_op_register(lm_engine *e, const lm_op_desc *desc);
/* Look an op up by name or alias; NULL if unknown. */
const lm_op_desc *lm_op_find(lm_engine *e, const char *name);
int lm_op_count(lm_engine *e);
const lm_op_desc *lm_op_at(lm_engine *e, int i);  /* sorted by name */
/* Install or replace the CUDA kernel of an op. */
int lm_op_set_cuda_kernel(lm_engine *e, const char *name, lm_kernel_fn fn);
/* The CUDA kernel installed for an op, or NULL. */
lm_kernel_fn lm_op_cuda_kernel(lm_engine *e, const lm_op_desc *desc);

/*
** The kernel context, for op authors.  All functions take the ctx a kernel
** received.  Arguments are looked up by the name used in the descriptor.
*/
lm_engine *lm_ctx_engine(lm_op_ctx *ctx);
const lm_op_desc *lm_ctx_op(lm_op_ctx *ctx);
int lm_ctx_ninputs(lm_op_ctx *ctx);
lm_tensor *lm_ctx_input(lm_op_ctx *ctx, int i);           /* borrowed */
bool lm_arg_is_set(lm_op_ctx *ctx, const char *name);
double lm_arg_number(lm_op_ctx *ctx, const char *name);
int64_t lm_arg_int(lm_op_ctx *ctx, const char *name);
bool lm_arg_bool(lm_op_ctx *ctx, const char *name);
const char *lm_arg_string(lm_op_ctx *ctx, const char *name); /* NULL if unset */
const double *lm_arg_numbers(lm_op_ctx *ctx, const char *name, int *n);
struct lm_model *lm_arg_model(lm_op_ctx *ctx, const char *name); /* borrowed */
/* Hand an output to the caller (the ctx takes over the reference). */
int lm_ctx_set_output(lm_op_ctx *ctx, int i, lm_tensor *t);
/* Scalar results returned beside the tensors (created on first use). */
lm_params *lm_ctx_results(lm_op_ctx *ctx);
/* Record a failure: the message is prefixed with the op name by the caller.
** Returns status so kernels can write `return lm_ctx_error(ctx, ...)`. */
int lm_ctx_error(lm_op_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* True once the job was cancelled; long kernels poll it and return
** LM_ECANCELED. */
bool lm_ctx_cancelled(lm_op_ctx *ctx);

/* Run body(begin, end, arg) over [0, n) split into chunks of at least grain
** items across the compute threads; the calling thread takes part.  Returns
** LM_OK, or LM_ECANCELED if ctx was cancelled (ctx may be NULL), or the first
** negative value a body returned.  Safe to call from any thread, nested
** calls included. */
typedef int (*lm_range_fn)(int64_t begin, int64_t end, void *arg);
int lm_parallel_for(lm_engine *e, lm_op_ctx *ctx, int64_t n, int64_t grain,
                    lm_range_fn body, void *arg);

/*
** Calling ops.
*/
typedef struct lm_job lm_job;
typedef void (*lm_done_cb)(lm_job *job, int status, void *userdata);

/* Run an op to completion on the calling thread (its kernel may use the
** compute threads).  On success *nout (in: capacity of out[]) is set to the
** number of outputs stored in out[], and *results (if results is not NULL)
** to the op's scalar results or NULL; free them with lm_params_free().
** Errors: LM_ENOENT for an unknown op; LM_EINVAL for an unknown option, a
** wrong type or a missing required option, with a message naming the op and
** the option; anything the op returns. */
int lm_call(lm_engine *e, const char *op, lm_tensor *const *in, int nin,
            const lm_params *opts, lm_tensor **out, int *nout,
            lm_params **results);

/* Validate, then queue an op; cb(job, status, userdata) runs on the loop
** thread when it is done.  Options are validated before this returns (a bad
** option is returned here, and cb is not called). */
int lm_call_async(lm_engine *e, const char *op, lm_tensor *const *in, int nin,
                  const lm_params *opts, lm_done_cb cb, void *userdata,
                  lm_job **job);

/* Ask a job to stop.  A job not yet started is dropped; a running kernel
** stops at its next check.  The callback still runs, with LM_ECANCELED if
** the job did not finish first.  Any thread.  Returns LM_OK. */
int lm_job_cancel(lm_job *job);
/* Results of a finished job (valid inside the callback and until
** lm_job_release). */
int lm_job_status(const lm_job *job);
const char *lm_job_errmsg(const lm_job *job);  /* "" on success */
const lm_op_desc *lm_job_op(const lm_job *job);
int lm_job_noutputs(const lm_job *job);
lm_tensor *lm_job_output(const lm_job *job, int i);   /* borrowed */
const lm_params *lm_job_results(const lm_job *job);   /* borrowed; may be NULL */
/* Release the job (call it once, after the callback ran or from it). */
void lm_job_release(lm_job *job);

/*
** Models (models/): networks loaded from ONNX, TensorFlow.js layers models
** (model.json + weight shards), or lumen graph JSON (what lumen.nn in Lua
** writes) with safetensors weights; run on the CPU through oneDNN.  A model
** package is a folder holding the weights, metadata.json (name, labels,
** type, input axis order, spacing, description) and pipeline.lua.
*/
typedef struct lm_model lm_model;

typedef struct lm_model_options {
  const char *format;    /* "onnx", "tfjs", "graph", or NULL: guessed from
                            the path (a package folder reads metadata.json) */
  const char *precision; /* "float32" (default) or "bfloat16": convolutions in
                            bf16 with f32 accumulation where the CPU has it */
  const char *axes;      /* spatial axis order the network expects, in terms
                            of lumen's array axes: "XYZ" (the network sees
                            the image array as lumen holds it) or "ZYX"
                            (reversed, e.g. an ONNX export that took a C-order
                            NIfTI buffer); NULL = from the package, else XYZ */
} lm_model_options;

/* Fill o with the defaults (all NULL). */
void lm_model_options_init(lm_model_options *o);
/* Load a model file or a model package folder.  opt may be NULL.  Errors
** name the file and the field (LM_EINVAL, LM_EIO, LM_ENOMEM). */
int lm_model_load(lm_engine *e, const char *path, const lm_model_options *opt,
                  lm_model **out);
/* Build a model from lumen graph JSON text (what lumen.nn writes); weight
** files it names are read relative to base_dir (NULL = current folder). */
int lm_model_load_graph(lm_engine *e, const char *json, size_t len,
                        const char *base_dir, const lm_model_options *opt,
                        lm_model **out);
/* The model repository, where lm_model_load resolves a bare name ("demo":
** no slash, no extension) to the package folder <repository>/demo:
** $LUMEN_MODELS, else the source tree's models/ folder in a build tree,
** else <prefix>/share/lumen/models.  Written into buf; returns buf. */
char *lm_model_repository(char *buf, size_t len);
lm_model *lm_model_retain(lm_model *m);   /* returns m */
void lm_model_release(lm_model *m);       /* NULL is a no-op */
/* The package name, or the file name without extension. */
const char *lm_model_name(const lm_model *m);
/* Metadata as JSON text: the package's metadata.json merged with what the
** loader found (format, inputs, outputs, axes, precision); never NULL. */
const char *lm_model_metadata(const lm_model *m);
/* "XYZ" or "ZYX" (see lm_model_options.axes). */
const char *lm_model_axes(const lm_model *m);
int lm_model_ninputs(const lm_model *m);
int lm_model_noutputs(const lm_model *m);
const char *lm_model_input_name(const lm_model *m, int i);
const char *lm_model_output_name(const lm_model *m, int i);
/* Declared shape of input i: returns its rank (-1 unknown) and fills
** shape[LM_MAX_DIMS]; -1 marks a dynamic extent. */
int lm_model_input_shape(const lm_model *m, int i, int64_t *shape);
/* Run the network on the calling thread: in[i] are CPU tensors in the
** network's own axis order ([N, C, spatial...]), any dtype (converted to
** float32); out[i] receive new float32 tensors.  Plans are built per input
** shape and cached; one model may be run from several threads at once.
** ctx may be NULL; when given, errors go to the op and cancellation is
** polled between layers. */
int lm_model_run(lm_model *m, lm_op_ctx *ctx, lm_tensor *const *in, int nin,
                 lm_tensor **out, int nout);

#ifdef __cplusplus
}
#endif
#endif /* LUMEN_H */
