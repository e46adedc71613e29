/* Internals of plans (plan.c) shared with their helper files: the fused
 * kernels of plan_fused.c and the buffer layout of plan_memory.c.  Not part
 * of the models/ interface. */
#ifndef LM_PLAN_INTERNAL_H
#define LM_PLAN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu_conv.h"

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

#endif
