/* The GPU plan's kernels (infer_kernels.cu), callable from C (gpu_plan.c).
 *
 * Activations are stored in a storage type `dt` (LM_F32, LM_F16 or LM_BF16:
 * lumen.h's dtype codes) and every kernel computes in float32 (statistics in
 * float64), converting on load and store; constants (weights, biases, norm
 * parameters, constant operands) are float32.  Tensors are dense NC+spatial
 * in C order, or channels-last (N, spatial..., C) where a kernel takes a
 * `cl` flag.  Each launcher enqueues on stream s and returns the launch
 * error (a cudaError_t as int: 0 = success).  In the emulated plugin the
 * kernels run as host loops before the launcher returns. */
#ifndef LMC_INFER_KERNELS_H
#define LMC_INFER_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LMC_K_MAXD 8   /* LM_MAX_DIMS */

/* Activation codes: lm_act's (cpu_conv.h) values. */

/* Direct convolution / transposed convolution, one thread per output
** element; 1-3 spatial dims (missing ones as extent 1).  Weights in ONNX
** layout (Conv [cout, cin/g, k...], ConvTranspose [cin, cout/g, k...]). */
typedef struct lmc_k_conv_args {
  int64_t n, cin, cout, group;
  int64_t in[3], out[3], k[3], stride[3], dil[3], pad[3];
  int transposed;
  int act;
  float alpha, beta;
  int xdt, ydt;
  int cl;                 /* channels-last activations */
} lmc_k_conv_args;
int lmc_k_conv_direct(cudaStream_t s, const lmc_k_conv_args *p, const void *x, const float *w,
                      const float *bias, void *y);

/* y = act(y) in place over n elements of type dt (a conv whose activation
** the cuDNN plan did not fuse). */
int lmc_k_act_inplace(cudaStream_t s, void *y, int dt, int64_t n, int act, float alpha,
                      float beta);

/* Normalisation over rows of x: InstanceNormalization (groups = c) or the
** GroupNorm pattern.  Statistics per (n, group) over its c/groups channels
** x sp elements, accumulated in double in chunks (work: 2 doubles per
** (row, chunk) + 2 per row, see lmc_k_norm_work_doubles).  Then
** v = (float)((x - mean) / sqrt(var + eps) * gscale[g] + gbias[g]);
** gamma/beta (per channel, may be NULL): v = v * gamma + beta; res_mode 1:
** act(v + res), 2: act(v) + res, else act(v). */
typedef struct lmc_k_norm_args {
  int64_t n, c, groups, sp;
  double eps;
  int act;
  float alpha;
  int res_mode;
  int xdt, ydt, rdt;
  int cl;
} lmc_k_norm_args;
int64_t lmc_k_norm_work_doubles(const lmc_k_norm_args *p);
int lmc_k_norm(cudaStream_t s, const lmc_k_norm_args *p, const void *x, const float *gscale,
               const float *gbias, const float *gamma, const float *beta, const void *res,
               void *y, double *work);

/* Element-wise with numpy broadcasting: y = act(a OP b); strides in
** elements per output dim (0 where the operand is broadcast). */
enum { LMC_BIN_ADD = 0, LMC_BIN_SUB, LMC_BIN_MUL, LMC_BIN_DIV, LMC_BIN_PRELU };
typedef struct lmc_k_bcast_args {
  int ndim;
  int64_t shape[LMC_K_MAXD];
  int64_t astr[LMC_K_MAXD], bstr[LMC_K_MAXD];
} lmc_k_bcast_args;
int lmc_k_binary(cudaStream_t s, int op, const lmc_k_bcast_args *d, const void *a, int adt,
                 const void *b, int bdt, void *y, int ydt, int act, float alpha, float beta);

/* y[i] = act(x[i]) over n elements, converting x's type to y's (act 0:
** a conversion or copy). */
int lmc_k_unary(cudaStream_t s, const void *x, int xdt, void *y, int ydt, int64_t n, int act,
                float alpha, float beta);

/* y[o * inner_y + offset + r] = x[o * inner_x + r] for o < outer, r < inner_x
** (Concat: one launch per input). */
int lmc_k_slab_copy(cudaStream_t s, const void *x, int xdt, void *y, int ydt, int64_t outer,
                    int64_t inner_x, int64_t inner_y, int64_t offset);

/* y (dense, shape d->shape) gathers x with strides d->astr per output dim
** (Transpose; Expand with stride 0 on broadcast dims); d->bstr[k] > 0 makes
** output index k read input index k mod bstr[k] (Tile), 0 = none. */
int lmc_k_gather(cudaStream_t s, const lmc_k_bcast_args *d, const void *x, int xdt, void *y,
                 int ydt);

/* Constant Pad: y (shape oshape) = x (shape ishape) moved by lo, value
** elsewhere (negative lo/hi crop). */
typedef struct lmc_k_pad_args {
  int ndim;
  int64_t ishape[LMC_K_MAXD], oshape[LMC_K_MAXD], lo[LMC_K_MAXD];
  float value;
} lmc_k_pad_args;
int lmc_k_pad_const(cudaStream_t s, const lmc_k_pad_args *p, const void *x, int xdt, void *y,
                    int ydt);

/* MaxPool / AveragePool as the CPU op table computes them (average in
** double over the taps inside the input, or over those inside the padded
** input with count_include_pad). */
typedef struct lmc_k_pool_args {
  int64_t nc;
  int nsp;
  int64_t in[3], out[3], k[3], s[3], d[3], lo[3], hi[3];
  int is_max, include_pad;
} lmc_k_pool_args;
int lmc_k_pool(cudaStream_t s, const lmc_k_pool_args *p, const void *x, int xdt, void *y, int ydt);

/* GlobalAveragePool: rows of len elements -> their mean (work as
** lmc_k_norm_work_doubles of rows x len). */
int64_t lmc_k_mean_work_doubles(int64_t rows, int64_t len);
int lmc_k_row_mean(cudaStream_t s, const void *x, int xdt, void *y, int ydt, int64_t rows,
                   int64_t len, double *work);

/* Softmax over the middle axis of [outer, len, inner], as the op table. */
int lmc_k_softmax(cudaStream_t s, const void *x, int xdt, void *y, int ydt, int64_t outer,
                  int64_t len, int64_t inner);

/* Resize / Upsample from per-axis tap tables made on the host by the CPU
** op's own rules (lm_resize_taps, cpu_ops.h): output index o on axis k has
** ntap[base[k] + o] taps idx[4 * (base[k] + o) + t] with weights w[...];
** the value is the sum over all axes' tap combinations in double (the CPU
** sums axis by axis, rounding each pass to float: within 1e-6 relative). */
typedef struct lmc_k_resize_args {
  int ndim;
  int64_t ishape[LMC_K_MAXD], oshape[LMC_K_MAXD], base[LMC_K_MAXD];
} lmc_k_resize_args;
int lmc_k_resize(cudaStream_t s, const lmc_k_resize_args *p, const int *ntap, const int64_t *idx,
                 const double *w, const void *x, int xdt, void *y, int ydt);

/* y (dense float32, shape d->shape) = x converted from any lumen dtype xdt,
** gathered with strides d->astr (elements, may be negative: x points at the
** element the output's first one reads).  The Infer op's input and output
** views (batch axis, reversed spatial axes). */
int lmc_k_gather_any(cudaStream_t s, const lmc_k_bcast_args *d, const void *x, int xdt,
                     float *y);

/* Labels over axis 0 of dense float32 x [nch, nvox]: the first maximum, a
** NaN wins (as lm_logits_argmax); y uint8 (ydt LM_U8) or int32. */
int lmc_k_argmax0(cudaStream_t s, const float *x, int64_t nch, int64_t nvox, void *y, int ydt);

/* Reorder between NC+spatial and channels-last: to_cl 1: x [n, c, sp] ->
** y [n, sp, c]; 0: the reverse. */
int lmc_k_layout(cudaStream_t s, const void *x, int xdt, void *y, int ydt, int64_t n,
                 int64_t c, int64_t sp, int to_cl);

#ifdef __cplusplus
}
#endif

#endif
