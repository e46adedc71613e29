/* Convolutions on cuDNN's graph (backend) API, from plain C.
 *
 * One lmc_conv is one operation graph: a convolution (fprop, or BACKWARD_DATA
 * for a ConvTranspose) with the bias ADD and the activation fused as pointwise
 * ops, its execution plan and workspace size.  Tensors are in one precision
 * (float32, float16 or bfloat16 I/O, float32 compute, float32 virtual
 * intermediates) and one layout (NC[D]HW, or channels-last N[D]HWC through
 * strides).  1-D convolutions run as 2-D ones with a leading unit dim.
 *
 * Layouts at this interface (all dense, element type = prec):
 *   x  [n, cin,  in...]   NC[D]HW, or N[D]HWC when channels_last
 *   y  [n, cout, out...]  the same
 *   w  what lmc_conv_pack_weights writes: ONNX's order (Conv [cout, cin/g, k...],
 *      ConvTranspose [cin, cout/g, k...]); channels-last puts the second dim
 *      innermost ([cout, k..., cin/g] / [cin, k..., cout/g])
 *   bias [cout]
 * Channels are never padded: cuDNN 9 has engines for channel counts that
 * are not multiples of 8 (Cin = 1 first convs, Cout = classes last convs) in
 * float16/bfloat16 channels-last, heuristics return configs for them
 * (tests/c/test_cudnn_graph.c checks it), and padding Cin = 1 to 8 would
 * move 8x the bytes of a layer that is memory bound anyway.  Whether those
 * engines are fast enough is measured by tests/gpu/test_gpu_cudnn.c.
 *
 * F32 mode forbids TF32: engine configs whose engine carries the numerical
 * notes TENSOR_CORE or DOWN_CONVERT_INPUTS are skipped, so results can be
 * checked against the CPU at 1e-4.
 *
 * Finalized plans are cached process-wide, keyed by the whole descriptor,
 * precision, layout and handle: lmc_conv_new on a key already built returns
 * the same (reference-counted) object.  An lmc_conv is used by one thread at
 * a time (its handle's executor thread). */
#ifndef LMC_CUDNN_CONV_H
#define LMC_CUDNN_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cudnn.h>

#include "cpu_conv.h" /* lm_conv_desc, lm_act (models/src) */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lmc_prec { LMC_PREC_F32 = 0, LMC_PREC_F16, LMC_PREC_BF16 } lmc_prec;
typedef struct lmc_conv lmc_conv;

/* Operation graph of one convolution with the bias add and d->act fused,
** finalized, then heuristics (mode A, then FALLBACK) -> *nconfigs, the number
** of engine configs they propose.  cuDNN 9.19 support-checks configs against
** the current device when handing them out, so without a GPU this count (not
** the usable configs) is what can be checked.  When the fused graph gets
** none, the graph without the activation is tried (as lmc_conv_new does).
** Works WITHOUT a GPU: no handle is used. */
int lmc_conv_graph_check(const lm_conv_desc *d, lmc_prec prec, bool channels_last, int *nconfigs,
                         char *err, size_t errlen);
/* The same for exactly one graph: with the activation fused (fuse_act) or
** conv + bias alone; *nusable (may be NULL): the configs that pass cuDNN's
** support checks on the current device and the TF32 filter (0 without a
** GPU).  Zero counts are not an error. */
int lmc_conv_graph_configs(const lm_conv_desc *d, lmc_prec prec, bool channels_last, bool fuse_act,
                           int *nconfigs, int *nusable, char *err, size_t errlen);

/* Full build on a device: graph, heuristics, the first config whose execution
** plan finalizes, workspace size.  With LUMEN_CUDNN_AUTOTUNE=k in the
** environment the first k plans that finalize are timed and the fastest is
** kept.  Fusion ladder: conv + bias + act; else conv + bias (*fused_act =
** LM_ACT_NONE: the caller applies d->act); else the conv alone, and
** lmc_conv_run adds the bias with cudnnAddTensor (legacy, deprecated in 9.x
** but the one way to keep the contract when no fused graph has an engine).
** The error of a failed build gives each level's reason. */
int lmc_conv_new(cudnnHandle_t h, const lm_conv_desc *d, lmc_prec prec, bool channels_last,
                 lmc_conv **out, lm_act *fused_act, char *err, size_t errlen);
size_t lmc_conv_workspace_size(const lmc_conv *c);
/* "engine 9, conv + bias + act, workspace 0 B": what the plan runs (logs, GPU test). */
void lmc_conv_describe(const lmc_conv *c, char *buf, size_t len);
/* Weights in the layout/precision of the plan (see the top of this file),
** from ONNX's float32 layout; bias float32 [cout] (NULL: zeros) -> prec.
** Host buffers malloc'd by the call (free() them); sizes in bytes. */
int lmc_conv_pack_weights(const lmc_conv *c, const float *w, const float *bias, void **w_out,
                          size_t *w_bytes, void **b_out, size_t *b_bytes, char *err, size_t errlen);
/* y = act(conv(x) + bias) on the handle's stream; device pointers (16-byte
** aligned) in the planned layout; workspace: lmc_conv_workspace_size bytes
** (may be NULL when that is 0). */
int lmc_conv_run(lmc_conv *c, cudnnHandle_t h, const void *x, const void *w, const void *bias,
                 void *y, void *workspace, char *err, size_t errlen);
void lmc_conv_free(lmc_conv *c);

/* Element size of a precision in bytes, and its name ("float32", ...). */
size_t lmc_prec_size(lmc_prec p);
const char *lmc_prec_name(lmc_prec p);
/* float32 <-> the precision's storage (round to nearest even), n elements. */
void lmc_prec_from_f32(lmc_prec p, const float *src, void *dst, size_t n);
void lmc_prec_to_f32(lmc_prec p, const void *src, float *dst, size_t n);

#ifdef __cplusplus
}
#endif

#endif
