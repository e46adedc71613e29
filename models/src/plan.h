/* A plan: a prepared graph specialised to concrete input shapes, with its
 * weights repacked for the backend (oneDNN primitives, fused epilogues) and
 * its intermediate buffers laid out once (reused by liveness), so that
 * running it again (every sliding window) allocates nothing.
 *
 * Runtime tensors are dense float32 in C order with the graph's own axis
 * order (NC + spatial for the networks we run).  Integer-valued shape
 * arithmetic is folded when the plan is built.
 *
 * A plan is used by one thread at a time; build several for parallel use. */
#ifndef LM_PLAN_H
#define LM_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

typedef struct lm_plan lm_plan;

typedef struct lm_plan_options {
  bool bf16;       /* convolutions in bfloat16 with float32 accumulation,
                      where the CPU has native bf16 (else float32 and
                      lm_plan_uses_bf16 says false) */
  int threads;     /* OpenMP threads for the kernels; 0 = number of cores */
  bool layout_only;   /* the steps and the memory layout only, for another
                         backend (the GPU plan, transforms/cuda/gpu_plan.c):
                         conv steps keep their lm_conv_desc and weight
                         pointers (plan_step.cdesc) instead of oneDNN
                         primitives, no arena nor conv workspace is
                         allocated, and the plan cannot run */
  bool no_concat_in_place;   /* Concat inputs get their own buffers (a
                                channels-last backend cannot write them as
                                blocks of the output) */
} lm_plan_options;

/* Build a plan for g (prepared with lm_graph_prepare; not modified: the
** plan specialises a clone).  shapes[i] has ndims[i] extents for graph input
** i.  Errors: LM_EINVAL with a message in err naming the node and op. */
int lm_plan_new(const lm_graph *g, const int *ndims,
                const int64_t *const *shapes, const lm_plan_options *opt,
                lm_plan **out, char *err, size_t errlen);
void lm_plan_free(lm_plan *p);

int lm_plan_noutputs(const lm_plan *p);
/* Shape of output i; returns its ndim and fills shape[LM_MAX_DIMS]. */
int lm_plan_output_shape(const lm_plan *p, int i, int64_t *shape);
bool lm_plan_uses_bf16(const lm_plan *p);

/* Run: inputs[i] dense float32 of the planned shapes; outputs[i] dense
** float32 buffers of lm_plan_output_shape's size, written in full.
** cancel (may be NULL) is polled between nodes: LM_ECANCELED when set. */
int lm_plan_run(lm_plan *p, const float *const *inputs, float *const *outputs,
                const volatile int *cancel, char *err, size_t errlen);

/* Introspection (tests, model info, benchmarks). */
int lm_plan_nsteps(const lm_plan *p);
/* "Conv+LeakyRelu 'name'", "InstanceNormalization+Relu 'n'", "Reshape 'r'
** (view)", "copy to output 'y'", ...; NULL out of range. */
const char *lm_plan_step_label(const lm_plan *p, int i);
/* Step i writes its output over its input's buffer. */
bool lm_plan_step_inplace(const lm_plan *p, int i);
/* Bytes of the intermediate arena, and what the same intermediates would
** take with one buffer each. */
size_t lm_plan_arena_bytes(const lm_plan *p);
size_t lm_plan_unplanned_bytes(const lm_plan *p);
/* The most intermediate bytes alive during one step: no layout of these
** buffers fits in less. */
size_t lm_plan_live_peak_bytes(const lm_plan *p);
/* Profiling: with on, every later run adds each step's wall time (seconds)
** to a counter read by lm_plan_step_seconds; off drops the counters. */
int lm_plan_profile(lm_plan *p, bool on);
double lm_plan_step_seconds(const lm_plan *p, int i);

#endif
