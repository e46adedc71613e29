/* A model's graph on the GPU: the CPU planner's steps and memory layout
 * (models/src/plan.c with layout_only: constant folding, fused Conv+act,
 * InstanceNorm/GroupNorm+act(+residual), Add+act, views, in-place steps,
 * liveness-based arena offsets) executed by device kernels: convolutions
 * through cuDNN (cudnn_conv.h) or, in the emulated plugin and for
 * convolutions cuDNN rejects, the direct kernel of infer_kernels.cu; the
 * other steps by infer_kernels.cu.
 *
 * Activations live in one device arena in the plan's precision (float32,
 * float16 or bfloat16; math in float32) and layout (NC+spatial, or
 * channels-last); the plan's own inputs and outputs are dense float32 in the
 * graph's NC+spatial order, converted at the start and the end.  Plain C:
 * compiled into both plugins (the emulated one with -DLMC_EMULATE). */
#ifndef LMC_GPU_PLAN_H
#define LMC_GPU_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cudnn_conv.h" /* lmc_prec */
#include "lumen.h"

struct lm_graph; /* models/src/graph.h */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmc_plan lmc_plan;
typedef struct lmc_plan_options {
  lmc_prec prec;        /* storage of activations and cuDNN I/O precision */
  bool channels_last;   /* activations N, spatial..., C between steps */
  bool cuda_graph;      /* capture the enqueued work once, replay it (not in
                           the emulated plugin, where it is ignored) */
} lmc_plan_options;

/* A GPU plan for graph g (prepared; read-only) at concrete input shapes, on
** `device`; called on the device's executor thread.  Errors name the node
** and op ("node 'x' (Op): no GPU kernel for ...") in err. */
int lmc_plan_new(const struct lm_graph *g, int device, const int *ndims, const int64_t *const *shapes,
                 const lmc_plan_options *o, lmc_plan **out, char *err, size_t errlen);
void lmc_plan_free(lmc_plan *p);
int lmc_plan_noutputs(const lmc_plan *p);
int lmc_plan_output_shape(const lmc_plan *p, int i, int64_t *shape);   /* returns ndim */
/* Inputs: dense float32 device buffers [N, C, spatial...] C order of the
** planned shapes; outputs: dense float32 device buffers of
** lmc_plan_output_shape's size.  Asynchronous: everything is enqueued on
** stream s (stream-ordered), nothing waits. */
int lmc_plan_run(lmc_plan *p, cudaStream_t s, const float *const *in, float *const *out,
                 char *err, size_t errlen);
/* The plan's own float32 input/output buffers (device; fixed for the plan's
** life), and a run on them: with cuda_graph the first call runs plainly (a
** warm-up: nothing lazy may happen inside a capture), the work is captured
** at the second call and replayed afterwards (one capture serves every sliding
** window). */
float *lmc_plan_input(lmc_plan *p, int i);
float *lmc_plan_output(lmc_plan *p, int i);
int lmc_plan_run_own(lmc_plan *p, cudaStream_t s, char *err, size_t errlen);
/* Introspection (tests): number of steps, and how many convolutions run on
** cuDNN (the others on the direct kernel). */
int lmc_plan_nsteps(const lmc_plan *p);
int lmc_plan_cudnn_convs(const lmc_plan *p);
int lmc_plan_direct_convs(const lmc_plan *p);
/* The model's plan for these shapes/options on this device, built on first
** use and cached with the model (freed with it); one plan per (shapes,
** options, device); used by one executor thread (the device's). */
int lmc_model_plan(lm_model *m, int device, const int *ndims, const int64_t *const *shapes,
                   const lmc_plan_options *o, lmc_plan **out, char *err, size_t errlen);
/* precision option value -> lmc_prec: "float32", "float16", "bfloat16",
** "auto" (the package's precision metadata if set, else float16 on CUDA).
** Error names the op and option. */
int lmc_precision_option(lm_op_ctx *ctx, const char *value, const lm_model *m, lmc_prec *out);

#ifdef __cplusplus
}
#endif

#endif
