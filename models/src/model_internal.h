/* The model object behind lm_model (lumen.h) and the model package
 * (metadata.json) reader, shared by model.c, model_run.c, model_package.c
 * and the inference ops.  Internal to liblumen; no Lua here. */
#ifndef LM_MODEL_INTERNAL_H
#define LM_MODEL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "graph.h"
#include "lumen.h"

typedef struct lm_plan_pool lm_plan_pool;

struct lm_model {
  atomic_int refs;
  lm_engine *e;          /* holds an engine reference (output tensors) */
  lm_graph *g;           /* prepared; read-only once the model exists */
  char *name;
  char *metadata;        /* JSON text, see lm_model_metadata */
  char axes[4];          /* "XYZ" or "ZYX" */
  bool bf16;
  char precision[12];    /* as asked at load or by the package ("float32",
                            "bfloat16"); "" when neither said */
  /* GPU plans (transforms/cuda/gpu_plan.c, in the CUDA plugin): opaque
  ** here, freed with the model by gpu_plans_free.  Guarded by mu. */
  void *gpu_plans;
  void (*gpu_plans_free)(void *);
  /* Plans per input shape: a plan is used by one thread at a time, so each
  ** shape keeps a few idle ones for concurrent runs (sliding windows from
  ** several pipelines).  Guarded by mu. */
  pthread_mutex_t mu;
  lm_plan_pool *pools;
  int npools;
  uint64_t tick;
};

/* A model package: the fields of metadata.json that lumen reads, and the
** whole object (free extra fields are kept in the model's metadata). */
typedef struct lm_package {
  char *dir;             /* the folder, as given */
  const char *name;      /* pointers into json; NULL when absent */
  const char *description, *type, *weights, *network, *format, *axes,
      *precision;
  cJSON *json;           /* the parsed metadata.json object */
} lm_package;

/* Read and validate dir/metadata.json.  Errors (LM_ENOENT, LM_EFORMAT,
** LM_EINVAL) name the file and the field in err. */
int lm_package_read(const char *dir, lm_package *pkg, char *err, size_t errlen);
void lm_package_clear(lm_package *pkg);
/* Validate the metadata fields of json (an object) into pkg's pointers;
** errors are "<file>: field '<name>' ...".  Does not check 'weights'. */
int lm_package_fields(const char *file, const cJSON *json, lm_package *pkg, char *err,
                      size_t errlen);

/* Is path a bare package name ("brain_tissue": no slash, no extension)? */
bool lm_model_is_bare_name(const char *path);

/* The format of a model file by its name and content: "onnx", "tfjs" or
** "graph" in *format; errors name the file. */
int lm_model_guess_format(const char *path, const char **format, char *err,
                          size_t errlen);
/* A whole file as a malloc'd NUL-terminated buffer, or NULL. */
char *lm_model_read_text(const char *path, size_t *len);

/* Build the model object around a prepared graph (takes g, also on
** failure).  pkg may be NULL; source is the file the graph came from. */
int lm_model_wrap(lm_engine *e, lm_graph *g, const char *name, const char *format,
                  const char *source, const lm_package *pkg,
                  const lm_model_options *opt, lm_model **out);

/* lm_model_run with the convolutions' precision chosen by the caller (the
** Infer op's precision option) instead of the model's. */
int lm_model_run_prec(lm_model *m, lm_op_ctx *ctx, lm_tensor *const *in, int nin,
                      lm_tensor **out, int nout, bool bf16);

/* Free every cached plan (model destruction). */
void lm_model_plans_free(lm_model *m);

#endif
