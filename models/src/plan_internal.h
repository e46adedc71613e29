/* Internals of plans (plan.c) shared with their helper files: the fused
 * kernels (plan_fused.c), the pattern matching that makes fused steps
 * (plan_match.c), the memory plan (plan_memory.c).  Not part of the models/
 * interface. */
#ifndef LM_PLAN_INTERNAL_H
#define LM_PLAN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu_conv.h"
#include "cpu_ops.h"
#include "plan.h"

/* InstanceNormalization and the activation after it in one pass over the
** output: y = act((x - mean[n,c]) / sqrt(var[n,c] + eps) * scale[c] +
** bias[c]), statistics over the spatial extent sp, accumulated in double.
** With res (same shape as x): y = act(norm + res), or act(norm) + res when
** res_after_act.  y may be the same buffer as x or as res.  act: NONE, RELU,
** LEAKY_RELU (alpha), ELU (alpha), SIGMOID, TANH, GELU (erf form). */
void lm_plan_instnorm_act(const float *x, float *y, int64_t n, int64_t c, int64_t sp,
                          const float *scale, const float *bias, double eps,
                          lm_act act, float alpha, const float *res, bool res_after_act);

/* PyTorch's exported GroupNorm, Reshape(N, G, -1) -> InstanceNormalization
** (gscale, gbias per group) -> Reshape back -> Mul(gamma) -> Add(beta), and
** the activation after it, in one pass: statistics per (n, group) over its
** c/groups channels; gamma and beta per channel.  x and y may be the same. */
void lm_plan_groupnorm_act(const float *x, float *y, int64_t n, int64_t c, int64_t groups,
                           int64_t sp, const float *gscale, const float *gbias, double eps,
                           const float *gamma, const float *beta, lm_act act, float alpha);

/* y = act(a + b) over n elements (a residual Add and its activation: VNet).
** y may be a or b. */
void lm_plan_add_act(const float *a, const float *b, float *y, int64_t n, lm_act act,
                     float alpha);

/* Buffer layout from lifetimes (plan_memory.c).  Each buffer lives over
** steps [start, end] (inclusive) and needs size bytes; the layout gives each
** an offset, 64-byte aligned, such that buffers alive at the same time do not
** overlap.  Greedy by size, largest first, each at the lowest offset that
** fits.  Returns the arena size, or (size_t)-1 when out of memory. */
typedef struct lm_plan_buffer {
  size_t size;
  int start, end;
  size_t offset;   /* out */
} lm_plan_buffer;
size_t lm_plan_layout(lm_plan_buffer *b, int n);

/* ---- shared by plan.c, plan_match.c, plan_memory.c ----------------------- */

typedef enum step_kind {
  STEP_EVAL,        /* the op table's eval */
  STEP_CONV,        /* lm_conv_run */
  STEP_INSTNORM,    /* lm_plan_instnorm_act */
  STEP_GROUPNORM,   /* lm_plan_groupnorm_act */
  STEP_ADD_ACT,     /* lm_plan_add_act */
  STEP_VIEW,        /* the output shares the input's bytes: nothing to do */
  STEP_COPY         /* graph output copied from an input or constant */
} step_kind;

typedef struct plan_step {
  step_kind kind;
  const lm_gnode *node;          /* the node it runs (first of a fused group) */
  const lm_cpu_kernel *k;
  lm_conv *conv;
  /* STEP_CONV of a layout-only plan: the descriptor (act fused) and the
  ** weight/bias (float32, ONNX layout; bias may be NULL), pointing into the
  ** plan's graph */
  lm_conv_desc cdesc;
  const float *cweight, *cbias;
  int nin, nout;
  int *vin, *vout;               /* value indices, -1 = absent */
  lm_rt_tensor *in, *out;        /* shapes fixed at plan time, data per run */
  bool may_view;
  unsigned inplace_inputs;       /* bit j: the output may overwrite input j */
  /* STEP_INSTNORM, STEP_GROUPNORM */
  int64_t in_n, in_c, in_sp, groups;
  double eps;
  int res_mode;                  /* STEP_INSTNORM residual: 0 none, 1 before, 2 after the act */
  lm_act act;
  float alpha;
  /* STEP_ADD_ACT */
  int64_t count;
  /* STEP_COPY */
  int out_index;
  size_t bytes;
  char label[112];
} plan_step;

typedef enum loc_kind { LOC_NONE, LOC_CONST, LOC_INPUT, LOC_OUTPUT, LOC_ARENA } loc_kind;

struct lm_plan {
  lm_graph *g;                   /* the specialised clone */
  int nsteps;
  plan_step *steps;
  loc_kind *loc;                 /* per value */
  int *loc_index;                /* input/output index, or buffer index */
  size_t *loc_offset;            /* arena offset */
  void **ptr;                    /* per value, filled at each run */
  unsigned char *arena;
  size_t arena_bytes, unplanned_bytes, live_peak_bytes;
  void *conv_ws;                 /* one oneDNN workspace shared by every conv
                                    step (steps run one at a time) */
  size_t conv_ws_bytes;
  int noutputs;
  int *out_values;               /* resolved value of each graph output */
  bool bf16;
  bool layout_only;              /* lm_plan_options.layout_only */
  bool no_concat_in_place;       /* lm_plan_options.no_concat_in_place */
  int threads;
  double *step_seconds;          /* per step, accumulated while profiling */
};

typedef struct builder {
  lm_plan *p;
  lm_graph *g;
  int *uses;          /* reads by run-time nodes + graph outputs */
  int *cstart, *cons; /* consumers per value (CSR over run-time nodes) */
  bool *skip;         /* per node: folded (outputs constant) or absorbed */
  char *err;
  size_t errlen;
} builder;

int plan_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline const char *nname(const lm_gnode *n)
{
  return n->name && *n->name ? n->name : "(unnamed)";
}

static inline const char *vname(const lm_graph *g, int v)
{
  return *g->values[v].name ? g->values[v].name : "(anonymous)";
}

static inline const char *gsrc(const lm_graph *g)
{
  return g->source && *g->source ? g->source : "graph";
}

static inline bool is_const(const lm_graph *g, int v)
{
  return v >= 0 && g->values[v].data != NULL;
}

static inline bool op_is(const lm_gnode *n, const char *op)
{
  return (!n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx")) && !strcmp(n->op, op);
}

static inline size_t value_bytes(const lm_graph *g, int v)
{
  return (size_t)lm_gvalue_numel(&g->values[v]) * lm_dtype_size(g->values[v].dt);
}

/* plan.c */
plan_step *plan_new_step(builder *b, step_kind kind, const lm_gnode *n, int nin, int nout);
void plan_set_rt(const lm_graph *g, lm_rt_tensor *t, int v);
int plan_check_runtime_value(builder *b, const lm_gnode *n, int v);
int plan_sole_reader(const builder *b, int v);
/* plan_match.c: fused steps.  The try_ functions set *done when they made a
** step starting at node ni; otherwise the caller makes a plain one. */
int plan_add_conv_step(builder *b, int ni);
int plan_try_instnorm_step(builder *b, int ni, bool *done);
int plan_try_groupnorm_step(builder *b, int ni, bool *done);
int plan_try_add_act_step(builder *b, int ni, bool *done);
/* plan_memory.c: the location of every run-time value (views, in-place
** steps, in-place Concat) and the arena. */
int plan_lay_out_memory(builder *b);

#endif
