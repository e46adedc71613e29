/* Shared helpers of the CPU op table (cpu_ops*.c): error messages that name
 * the node, reading constant inputs at infer time, broadcasting, shapes.
 * Each family file (cpu_ops_<family>.c) exports one table terminated by an
 * entry whose op is NULL; cpu_ops.c chains them. */
#ifndef LM_CPU_OPS_INTERNAL_H
#define LM_CPU_OPS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu_ops.h"

/* The family tables. */
extern const lm_cpu_kernel lm_ops_elementwise[];
extern const lm_cpu_kernel lm_ops_activation[];
extern const lm_cpu_kernel lm_ops_norm[];
extern const lm_cpu_kernel lm_ops_shape[];
extern const lm_cpu_kernel lm_ops_index[];
extern const lm_cpu_kernel lm_ops_const[];
extern const lm_cpu_kernel lm_ops_pool[];
extern const lm_cpu_kernel lm_ops_resize[];
extern const lm_cpu_kernel lm_ops_conv[];
extern const lm_cpu_kernel lm_ops_reduce[];

/* ---- infer side --------------------------------------------------------- */

/* g->err = "<source>: <Op> node '<name>': <message>"; returns LM_EINVAL. */
int ops_fail(lm_graph *g, const lm_gnode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Input i of n (aliases followed), or NULL when absent or left out. */
const lm_gvalue *ops_in(const lm_graph *g, const lm_gnode *n, int i);
/* Input i has a known rank (and dtype); otherwise the outputs stay unknown. */
bool ops_in_known(const lm_graph *g, const lm_gnode *n, int i);
/* Read constant integer input i (int64 or int32) into out[0..max).
** Returns the element count, -1 when the input is not constant (or
** absent), or LM_EINVAL (message set) when it is not an integer tensor or
** has more than max elements. */
int ops_in_ints(lm_graph *g, const lm_gnode *n, int i, int64_t *out, int max);
/* Read constant float input i (any float dtype) as doubles into
** out[0..max); same returns as ops_in_ints. */
int ops_in_floats(lm_graph *g, const lm_gnode *n, int i, double *out, int max);
/* Declare output i's dtype and shape (ndim -1: unknown rank). */
void ops_set_out(lm_graph *g, const lm_gnode *n, int i, lm_dtype dt, int ndim,
                 const int64_t *shape);
/* Output 0 gets input 0's dtype and shape (unary ops). */
int ops_infer_same(lm_graph *g, const lm_gnode *n);
/* Numpy broadcasting of two shapes into out (-1 extents stay unknown).
** Returns false when the shapes cannot broadcast. */
bool ops_broadcast(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                   int64_t *out);
/* Output 0 is the broadcast of every present input; dtype of input 0. */
int ops_infer_broadcast(lm_graph *g, const lm_gnode *n, lm_dtype out_dt,
                        bool out_dt_given);
/* Normalise a possibly negative axis into [0, ndim); false when out of range. */
bool ops_axis(int64_t axis, int ndim, int *out);
bool ops_is_float(lm_dtype dt);
bool ops_is_int(lm_dtype dt);

/* ---- eval side ---------------------------------------------------------- */

int ops_eval_fail(char *err, size_t errlen, const lm_gnode *n, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));
int64_t ops_numel(int ndim, const int64_t *shape);
int64_t ops_rt_numel(const lm_rt_tensor *t);
/* C-order strides in elements. */
void ops_strides(int ndim, const int64_t *shape, int64_t *strides);
/* Strides of t seen through broadcasting to the output shape (0 on
** broadcast dims), aligned right. */
void ops_bcast_strides(int ondim, const int64_t *oshape, const lm_rt_tensor *t,
                       int64_t *st);
/* t broadcasts to the output shape (numpy rules, right-aligned): every
** extent is 1 or the output's.  eval checks it before reading through
** broadcast strides. */
bool ops_rt_bcast_ok(const lm_rt_tensor *out, const lm_rt_tensor *t);
/* Same element count (unary ops, norms): a plan's buffers match. */
bool ops_rt_same_numel(const lm_rt_tensor *a, const lm_rt_tensor *b);
/* Integer tensor t (int64 or int32) into out[0..max): count, or -1 when t is
** absent, not integer or too long. */
int ops_rt_ints(const lm_rt_tensor *t, int64_t *out, int max);
/* Float tensor (f32 or f64) into out[0..max): count, or -1. */
int ops_rt_floats(const lm_rt_tensor *t, double *out, int max);
/* Element i of a tensor of any numeric dtype as double. */
double ops_get(const lm_rt_tensor *t, int64_t i);
/* Store v in element i of t (rounding toward zero for integers; saturating
** is not ONNX's Cast semantic, so it truncates as C does). */
void ops_put(lm_rt_tensor *t, int64_t i, double v);

/* dst (dense, C order, shape[0..nd)) = src read at base + sum(i_k * strides[k])
** (element units; strides may be 0 or negative).  nd may be up to
** 2 * LM_MAX_DIMS (Tile interleaves repeat and source axes).  Any dtype:
** es is the element size. */
void ops_strided_copy(void *dst, const void *src, size_t es, int nd, const int64_t *shape,
                      const int64_t *strides, int64_t base);

/* eval of ops that only copy (Identity, Reshape, Squeeze, ...): out = in
** by bytes (nothing to do when the plan gave them the same buffer). */
int ops_eval_copy(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                  int nout, char *err, size_t errlen);

/* Work split: OpenMP only when there is enough of it. */
#define OPS_PAR_MIN 4096

#endif
