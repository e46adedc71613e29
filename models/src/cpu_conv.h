/* Convolution and transposed convolution on the CPU through oneDNN, with
 * the bias and one activation fused as post-ops.  Weights are reordered
 * once into the layout the chosen kernel wants (lm_conv_new); each run
 * reorders the plain source in and the result out when the kernel prefers
 * a blocked or channels-last layout.
 *
 * Tensors at this interface are dense float32 in C order: src
 * [n, cin, spatial...], dst [n, cout, spatial...]; weight as ONNX stores
 * it: Conv [cout, cin/group, k...], ConvTranspose [cin, cout/group, k...]. */
#ifndef LM_CPU_CONV_H
#define LM_CPU_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lm_act {
  LM_ACT_NONE = 0,
  LM_ACT_RELU,
  LM_ACT_LEAKY_RELU,   /* alpha = negative slope */
  LM_ACT_ELU,          /* alpha */
  LM_ACT_SIGMOID,
  LM_ACT_TANH,
  LM_ACT_GELU,         /* exact (erf) form */
  LM_ACT_SILU,         /* x * sigmoid(x) */
  LM_ACT_CLIP          /* clamp to [alpha, beta] */
} lm_act;

struct lm_graph;
struct lm_gnode;
/* The activation a graph node computes, as one a convolution can fuse:
** Relu, LeakyRelu, PRelu with one constant slope, Elu, Sigmoid, Tanh, exact
** Gelu, Clip with constant bounds.  False for anything else.  (plan_match.c;
** shared by plans and streamed chains.) */
bool lm_act_of_node(const struct lm_graph *g, const struct lm_gnode *n, lm_act *act,
                    float *alpha, float *beta);

typedef struct lm_conv_desc {
  int nsp;                       /* spatial dims: 1, 2 or 3 */
  int64_t n, cin, cout, group;
  int64_t in[3], out[3];         /* spatial extents of src and dst */
  int64_t k[3], stride[3], dil[3];   /* dil as ONNX: 1 = dense */
  int64_t pad_lo[3], pad_hi[3];  /* explicit pads (auto_pad resolved) */
  bool transposed;               /* ConvTranspose (out includes output_padding) */
  lm_act act;
  float alpha, beta;
  bool bf16;                     /* bf16 compute, f32 in/out, where supported */
} lm_conv_desc;

typedef struct lm_conv lm_conv;

/* Prepare: choose the primitive, reorder the weights, keep the bias.
** weight/bias are read during the call only.  err gets a message on failure. */
int lm_conv_new(const lm_conv_desc *d, const float *weight, const float *bias,
                lm_conv **out, char *err, size_t errlen);
/* dst = act(conv(src) + bias).  Not thread-safe per object. */
int lm_conv_run(lm_conv *c, const float *src, float *dst);
/* The same with a caller-owned workspace (64-byte aligned, at least
** lm_conv_workspace_size bytes), so that a plan can share one buffer among
** all its convolutions instead of each keeping its own (lm_conv_run
** allocates and keeps one at its first call). */
size_t lm_conv_workspace_size(const lm_conv *c);
int lm_conv_run_ws(lm_conv *c, const float *src, float *dst, void *ws);
void lm_conv_free(lm_conv *c);
/* The oneDNN implementation chosen ("brgconv:avx512_core", ...). */
const char *lm_conv_impl(const lm_conv *c);
/* True when the CPU can run bf16 convolutions natively (AVX512-BF16/AMX). */
bool lm_cpu_has_bf16(void);

#endif
