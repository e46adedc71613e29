/* Dtype and constant-making ops: Cast, CastLike, ConstantOfShape, Constant,
 * Range.  Constant's output becomes a constant value at infer. */
#include "cpu_ops_internal.h"

#include <math.h>
#include <string.h>

#define MAXD LM_MAX_DIMS

/* ---- Cast --------------------------------------------------------------- */

static int infer_cast(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  const lm_gattr *to = lm_gnode_attr(n, "to");
  lm_dtype dt;
  if (!to || to->kind != LM_ATTR_INT) return ops_fail(g, n, "attribute to is missing");
  if (lm_dtype_from_onnx((int)to->i, &dt) < 0)
    return ops_fail(g, n, "attribute to=%lld is a type lumen does not hold", (long long)to->i);
  if (x->ndim >= 0) ops_set_out(g, n, 0, dt, x->ndim, x->shape);
  return LM_OK;
}

static int eval_cast(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                     int nout, char *err, size_t errlen)
{
  if (!in[0].data) return ops_eval_fail(err, errlen, n, "input is missing");
  int64_t total = ops_rt_numel(&in[0]);
  bool to_bool = lm_gnode_attr_int(n, "to", 0) == 9;
  if (in[0].dt == out[0].dt && !to_bool) return ops_eval_copy(n, in, nin, out, nout, err, errlen);
  if (in[0].dt == LM_I64 && out[0].dt == LM_F32) {
    const int64_t *s = in[0].data;
    float *d = out[0].data;
    for (int64_t i = 0; i < total; i++) d[i] = (float)s[i];
    return LM_OK;
  }
  if (in[0].dt == LM_I64 && !to_bool) {
    /* through double would round int64 beyond 2^53 */
    const int64_t *s = in[0].data;
    for (int64_t i = 0; i < total; i++) {
      switch (out[0].dt) {
      case LM_I32: ((int32_t *)out[0].data)[i] = (int32_t)s[i]; break;
      case LM_U32: ((uint32_t *)out[0].data)[i] = (uint32_t)s[i]; break;
      default: ops_put(&out[0], i, (double)s[i]); break;
      }
    }
    return LM_OK;
  }
#pragma omp parallel for schedule(static) if (total > OPS_PAR_MIN)
  for (int64_t i = 0; i < total; i++) {
    double v = ops_get(&in[0], i);
    ops_put(&out[0], i, to_bool ? (double)(v != 0) : v);
  }
  return LM_OK;
}

static int infer_castlike(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0), *like = ops_in(g, n, 1);
  if (!x || !like) return ops_fail(g, n, "needs inputs input and target_type");
  if (x->ndim >= 0 && like->dt_known) ops_set_out(g, n, 0, like->dt, x->ndim, x->shape);
  return LM_OK;
}

static int eval_castlike(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                         int nout, char *err, size_t errlen)
{
  if (!in[0].data) return ops_eval_fail(err, errlen, n, "input is missing");
  int64_t total = ops_rt_numel(&in[0]);
  if (in[0].dt == out[0].dt) return ops_eval_copy(n, in, nin, out, nout, err, errlen);
  for (int64_t i = 0; i < total; i++) ops_put(&out[0], i, ops_get(&in[0], i));
  return LM_OK;
}

/* ---- ConstantOfShape, Constant, Range ----------------------------------- */

/* The fill value and dtype of ConstantOfShape from its `value` tensor
** attribute (default float 0).  eval has no graph to read the tensor from,
** so infer copies it into the scalar attribute lumen_fill. */
static int infer_constant_of_shape(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *s = ops_in(g, n, 0);
  if (!s) return ops_fail(g, n, "input is missing");
  lm_dtype dt = LM_F32;
  double fill = 0;
  const lm_gattr *va = lm_gnode_attr(n, "value");
  if (va) {
    if (va->kind != LM_ATTR_TENSOR || va->tensor < 0 || !g->values[va->tensor].data ||
        lm_gvalue_numel(&g->values[va->tensor]) != 1)
      return ops_fail(g, n, "attribute value must be a one-element tensor");
    const lm_gvalue *t = &g->values[va->tensor];
    dt = t->dt;
    lm_rt_tensor rt = {.dt = t->dt, .ndim = 0, .data = (void *)t->data};
    fill = ops_get(&rt, 0);
  }
  if (!lm_gnode_attr(n, "lumen_fill")) {
    int idx = (int)(n - g->nodes);
    if (idx < 0 || idx >= g->nnodes || lm_graph_attr_set_float(g, idx, "lumen_fill", fill) < 0)
      return ops_fail(g, n, "cannot record the fill value");
  }
  int64_t spec[MAXD];
  int cnt = ops_in_ints(g, n, 0, spec, MAXD);
  if (cnt < -1) return cnt;
  if (cnt == -1) {
    int64_t len = s->ndim == 1 ? s->shape[0] : -1;
    if (len < 0 || len > MAXD) return LM_OK;
    for (int i = 0; i < len; i++) spec[i] = -1;
    cnt = (int)len;
  } else {
    for (int i = 0; i < cnt; i++)
      if (spec[i] < 0) return ops_fail(g, n, "input shape has a negative entry");
  }
  ops_set_out(g, n, 0, dt, cnt, spec);
  return LM_OK;
}

static int eval_constant_of_shape(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                                  lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  const lm_gattr *f = lm_gnode_attr(n, "lumen_fill");
  if (!f && lm_gnode_attr(n, "value"))
    return ops_eval_fail(err, errlen, n, "run infer first (it records the fill value)");
  double v = f ? f->f : 0;
  int64_t total = ops_rt_numel(&out[0]);
  if (out[0].dt == LM_I64) {
    for (int64_t i = 0; i < total; i++) ((int64_t *)out[0].data)[i] = (int64_t)v;
    return LM_OK;
  }
  for (int64_t i = 0; i < total; i++) ops_put(&out[0], i, v);
  return LM_OK;
}

/* Constant: the output becomes a constant value at infer (the `value`
** tensor attribute is not reachable from eval); eval serves the scalar and
** list forms. */
static int infer_constant(lm_graph *g, const lm_gnode *n)
{
  if (n->nout < 1 || n->out[0] < 0) return ops_fail(g, n, "has no output");
  int v = n->out[0];
  const lm_gattr *a;
  if ((a = lm_gnode_attr(n, "value"))) {
    if (a->kind != LM_ATTR_TENSOR || a->tensor < 0 || a->tensor >= g->nvalues)
      return ops_fail(g, n, "attribute value is not a tensor");
    const lm_gvalue *t = &g->values[a->tensor];
    if (!t->data && lm_gvalue_numel(t) != 0) return ops_fail(g, n, "attribute value has no data");
    if (g->values[v].data) return LM_OK;
    return lm_graph_set_const(g, v, t->dt, t->ndim, t->shape, t->data ? t->data : "", false);
  }
  if ((a = lm_gnode_attr(n, "value_float"))) {
    float f = (float)a->f;
    return lm_graph_set_const(g, v, LM_F32, 0, NULL, &f, true);
  }
  if ((a = lm_gnode_attr(n, "value_int"))) return lm_graph_set_const(g, v, LM_I64, 0, NULL, &a->i, true);
  if ((a = lm_gnode_attr(n, "value_ints"))) {
    int64_t len = a->n;
    return lm_graph_set_const(g, v, LM_I64, 1, &len, a->n ? (const void *)a->ints : "", true);
  }
  if ((a = lm_gnode_attr(n, "value_floats"))) {
    int64_t len = a->n;
    float *f = lm_graph_alloc(g, sizeof(float) * (size_t)(a->n ? a->n : 1));
    if (!f) return LM_ENOMEM;
    for (int i = 0; i < a->n; i++) f[i] = (float)a->floats[i];
    return lm_graph_set_const(g, v, LM_F32, 1, &len, f, false);
  }
  return ops_fail(g, n, "has none of the attributes value, value_float(s), value_int(s) "
                        "(sparse and string values are not supported)");
}

static int eval_constant(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                         int nout, char *err, size_t errlen)
{
  const lm_gattr *a;
  if ((a = lm_gnode_attr(n, "value_float")) && out[0].dt == LM_F32) {
    *(float *)out[0].data = (float)a->f;
    return LM_OK;
  }
  if ((a = lm_gnode_attr(n, "value_int")) && out[0].dt == LM_I64) {
    *(int64_t *)out[0].data = a->i;
    return LM_OK;
  }
  if ((a = lm_gnode_attr(n, "value_ints")) && out[0].dt == LM_I64 && ops_rt_numel(&out[0]) == a->n) {
    memcpy(out[0].data, a->ints, sizeof(int64_t) * (size_t)a->n);
    return LM_OK;
  }
  if ((a = lm_gnode_attr(n, "value_floats")) && out[0].dt == LM_F32 &&
      ops_rt_numel(&out[0]) == a->n) {
    for (int i = 0; i < a->n; i++) ((float *)out[0].data)[i] = (float)a->floats[i];
    return LM_OK;
  }
  return ops_eval_fail(err, errlen, n, "its value is made constant at infer; nothing to evaluate");
}

static int infer_range(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *s = ops_in(g, n, 0);
  if (!s || !ops_in(g, n, 1) || !ops_in(g, n, 2))
    return ops_fail(g, n, "needs inputs start, limit and delta");
  if (!s->dt_known) return LM_OK;
  double v[3];
  int64_t len = -1;
  bool all = true;
  for (int i = 0; i < 3; i++) {
    const lm_gvalue *x = ops_in(g, n, i);
    if (!x->data) {
      all = false;
      continue;
    }
    lm_rt_tensor t = {.dt = x->dt, .ndim = 0, .data = (void *)x->data};
    v[i] = ops_get(&t, 0);
  }
  if (all) {
    if (v[2] == 0) return ops_fail(g, n, "delta is 0");
    double cnt = ceil((v[1] - v[0]) / v[2]);
    len = cnt > 0 ? (int64_t)cnt : 0;
  }
  ops_set_out(g, n, 0, s->dt, 1, &len);
  return LM_OK;
}

static int eval_range(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                      int nout, char *err, size_t errlen)
{
  if (nin < 3 || !in[0].data || !in[2].data) return ops_eval_fail(err, errlen, n, "needs 3 inputs");
  int64_t total = ops_rt_numel(&out[0]);
  if (out[0].dt == LM_I64) {
    int64_t s = *(const int64_t *)in[0].data, d = *(const int64_t *)in[2].data;
    for (int64_t i = 0; i < total; i++) ((int64_t *)out[0].data)[i] = s + i * d;
    return LM_OK;
  }
  if (out[0].dt == LM_F32) {
    /* Accumulate in float as the ONNX reference (numpy arange) does. */
    float s = *(const float *)in[0].data, d = *(const float *)in[2].data;
    for (int64_t i = 0; i < total; i++) ((float *)out[0].data)[i] = s + (float)i * d;
    return LM_OK;
  }
  double s = ops_get(&in[0], 0), d = ops_get(&in[2], 0);
  for (int64_t i = 0; i < total; i++) ops_put(&out[0], i, s + (double)i * d);
  return LM_OK;
}

const lm_cpu_kernel lm_ops_const[] = {
  {"Cast", infer_cast, eval_cast, false},
  {"CastLike", infer_castlike, eval_castlike, false},
  {"ConstantOfShape", infer_constant_of_shape, eval_constant_of_shape, false},
  {"Constant", infer_constant, eval_constant, false},
  {"Range", infer_range, eval_range, false},
  {NULL, NULL, NULL, false},
};
