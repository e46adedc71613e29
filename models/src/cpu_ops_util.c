/* Helpers shared by the CPU op families (cpu_ops_internal.h). */
#include "cpu_ops_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ops_fail(lm_graph *g, const lm_gnode *n, const char *fmt, ...)
{
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lm_graph_error(g, LM_EINVAL, "%s: %s node '%s': %s",
                        g->source ? g->source : "graph", n->op, n->name, msg);
}

int ops_eval_fail(char *err, size_t errlen, const lm_gnode *n, const char *fmt, ...)
{
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (err && errlen) snprintf(err, errlen, "%s node '%s': %s", n->op, n->name, msg);
  return LM_EINVAL;
}

const lm_gvalue *ops_in(const lm_graph *g, const lm_gnode *n, int i)
{
  if (i >= n->nin || n->in[i] < 0) return NULL;
  return &g->values[lm_graph_resolve(g, n->in[i])];
}

bool ops_in_known(const lm_graph *g, const lm_gnode *n, int i)
{
  const lm_gvalue *v = ops_in(g, n, i);
  return v && v->dt_known && v->ndim >= 0;
}

bool ops_is_float(lm_dtype dt)
{
  return dt == LM_F32 || dt == LM_F64 || dt == LM_F16 || dt == LM_BF16;
}

bool ops_is_int(lm_dtype dt) { return !ops_is_float(dt); }

int ops_in_ints(lm_graph *g, const lm_gnode *n, int i, int64_t *out, int max)
{
  const lm_gvalue *v = ops_in(g, n, i);
  if (!v || !v->data) return -1;
  int64_t cnt = lm_gvalue_numel(v);
  if (v->dt != LM_I64 && v->dt != LM_I32)
    return ops_fail(g, n, "input %d ('%s') must be int64, not %s", i, v->name,
                    lm_dtype_name(v->dt));
  if (cnt > max)
    return ops_fail(g, n, "input %d ('%s') has %lld elements (at most %d)", i,
                    v->name, (long long)cnt, max);
  for (int64_t k = 0; k < cnt; k++)
    out[k] = v->dt == LM_I64 ? ((const int64_t *)v->data)[k]
                             : ((const int32_t *)v->data)[k];
  return (int)cnt;
}

int ops_in_floats(lm_graph *g, const lm_gnode *n, int i, double *out, int max)
{
  const lm_gvalue *v = ops_in(g, n, i);
  if (!v || !v->data) return -1;
  int64_t cnt = lm_gvalue_numel(v);
  if (!ops_is_float(v->dt))
    return ops_fail(g, n, "input %d ('%s') must be float, not %s", i, v->name,
                    lm_dtype_name(v->dt));
  if (cnt > max)
    return ops_fail(g, n, "input %d ('%s') has %lld elements (at most %d)", i,
                    v->name, (long long)cnt, max);
  lm_rt_tensor t = {.dt = v->dt, .ndim = 1, .shape = {cnt}, .data = (void *)v->data};
  for (int64_t k = 0; k < cnt; k++) out[k] = ops_get(&t, k);
  return (int)cnt;
}

void ops_set_out(lm_graph *g, const lm_gnode *n, int i, lm_dtype dt, int ndim,
                 const int64_t *shape)
{
  if (i >= n->nout || n->out[i] < 0) return;
  lm_graph_set_type(g, n->out[i], dt, ndim, shape);
}

int ops_infer_same(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input 0 is missing");
  if (!x->dt_known) return LM_OK;
  ops_set_out(g, n, 0, x->dt, x->ndim, x->shape);
  return LM_OK;
}

bool ops_broadcast(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                   int64_t *out)
{
  int no = na > nb ? na : nb;
  int64_t tmp[LM_MAX_DIMS];
  for (int k = 0; k < no; k++) {
    int ia = k - (no - na), ib = k - (no - nb);
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da == 1) tmp[k] = db;
    else if (db == 1) tmp[k] = da;
    else if (da < 0) tmp[k] = db;   /* unknown vs n: must be n (or 1) */
    else if (db < 0) tmp[k] = da;
    else if (da == db) tmp[k] = da;
    else return false;
  }
  *nout = no;
  memcpy(out, tmp, sizeof(int64_t) * (size_t)no);
  return true;
}

int ops_infer_broadcast(lm_graph *g, const lm_gnode *n, lm_dtype out_dt,
                        bool out_dt_given)
{
  int nd = 0;
  int64_t shape[LM_MAX_DIMS];
  bool first = true;
  lm_dtype dt = LM_F32;
  for (int i = 0; i < n->nin; i++) {
    const lm_gvalue *v = ops_in(g, n, i);
    if (!v) continue;
    if (!v->dt_known || v->ndim < 0) return LM_OK;   /* stays unknown */
    if (first) {
      dt = v->dt;
      nd = v->ndim;
      memcpy(shape, v->shape, sizeof(int64_t) * (size_t)nd);
      first = false;
      continue;
    }
    if (!ops_broadcast(nd, shape, v->ndim, v->shape, &nd, shape)) {
      char a[128] = "", b[128] = "";
      for (int k = 0; k < nd; k++)
        snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", k ? "," : "",
                 (long long)shape[k]);
      for (int k = 0; k < v->ndim; k++)
        snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", k ? "," : "",
                 (long long)v->shape[k]);
      return ops_fail(g, n, "input %d ('%s') shape [%s] does not broadcast with [%s]",
                      i, v->name, b, a);
    }
  }
  if (first) return ops_fail(g, n, "has no inputs");
  ops_set_out(g, n, 0, out_dt_given ? out_dt : dt, nd, shape);
  return LM_OK;
}

bool ops_axis(int64_t axis, int ndim, int *out)
{
  if (axis < -ndim || axis >= ndim) return false;
  *out = (int)(axis < 0 ? axis + ndim : axis);
  return true;
}

int64_t ops_numel(int ndim, const int64_t *shape)
{
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

int64_t ops_rt_numel(const lm_rt_tensor *t) { return ops_numel(t->ndim, t->shape); }

void ops_strides(int ndim, const int64_t *shape, int64_t *strides)
{
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
}

void ops_bcast_strides(int ondim, const int64_t *oshape, const lm_rt_tensor *t,
                       int64_t *st)
{
  (void)oshape;   /* t's extents are 1 or the output's: only its own shape matters */
  int64_t own[LM_MAX_DIMS];
  ops_strides(t->ndim, t->shape, own);
  for (int k = 0; k < ondim; k++) {
    int it = k - (ondim - t->ndim);
    st[k] = (it >= 0 && t->shape[it] != 1) ? own[it] : 0;
  }
}

bool ops_rt_bcast_ok(const lm_rt_tensor *out, const lm_rt_tensor *t)
{
  if (t->ndim > out->ndim) return false;
  for (int k = 0; k < t->ndim; k++) {
    int64_t d = t->shape[k], o = out->shape[k + out->ndim - t->ndim];
    if (d != 1 && d != o) return false;
  }
  return true;
}

bool ops_rt_same_numel(const lm_rt_tensor *a, const lm_rt_tensor *b)
{
  return ops_rt_numel(a) == ops_rt_numel(b);
}

int ops_rt_ints(const lm_rt_tensor *t, int64_t *out, int max)
{
  if (!t || !t->data || (t->dt != LM_I64 && t->dt != LM_I32)) return -1;
  int64_t cnt = ops_rt_numel(t);
  if (cnt > max) return -1;
  for (int64_t k = 0; k < cnt; k++)
    out[k] = t->dt == LM_I64 ? ((const int64_t *)t->data)[k]
                             : ((const int32_t *)t->data)[k];
  return (int)cnt;
}

int ops_rt_floats(const lm_rt_tensor *t, double *out, int max)
{
  if (!t || !t->data || !ops_is_float(t->dt)) return -1;
  int64_t cnt = ops_rt_numel(t);
  if (cnt > max) return -1;
  for (int64_t k = 0; k < cnt; k++) out[k] = ops_get(t, k);
  return (int)cnt;
}

double ops_get(const lm_rt_tensor *t, int64_t i)
{
  switch (t->dt) {
  case LM_U8: return ((const uint8_t *)t->data)[i];
  case LM_I8: return ((const int8_t *)t->data)[i];
  case LM_I16: return ((const int16_t *)t->data)[i];
  case LM_U16: return ((const uint16_t *)t->data)[i];
  case LM_I32: return ((const int32_t *)t->data)[i];
  case LM_U32: return ((const uint32_t *)t->data)[i];
  case LM_I64: return (double)((const int64_t *)t->data)[i];
  case LM_F16: return lm_f16_to_f32(((const uint16_t *)t->data)[i]);
  case LM_BF16: return lm_bf16_to_f32(((const uint16_t *)t->data)[i]);
  case LM_F32: return ((const float *)t->data)[i];
  case LM_F64: return ((const double *)t->data)[i];
  default: return 0;
  }
}

void ops_put(lm_rt_tensor *t, int64_t i, double v)
{
  switch (t->dt) {
  case LM_U8: ((uint8_t *)t->data)[i] = (uint8_t)(int64_t)v; break;
  case LM_I8: ((int8_t *)t->data)[i] = (int8_t)(int64_t)v; break;
  case LM_I16: ((int16_t *)t->data)[i] = (int16_t)(int64_t)v; break;
  case LM_U16: ((uint16_t *)t->data)[i] = (uint16_t)(int64_t)v; break;
  case LM_I32: ((int32_t *)t->data)[i] = (int32_t)(int64_t)v; break;
  case LM_U32: ((uint32_t *)t->data)[i] = (uint32_t)(int64_t)v; break;
  case LM_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
  case LM_F16: ((uint16_t *)t->data)[i] = lm_f32_to_f16((float)v); break;
  case LM_BF16: ((uint16_t *)t->data)[i] = lm_f32_to_bf16((float)v); break;
  case LM_F32: ((float *)t->data)[i] = (float)v; break;
  case LM_F64: ((double *)t->data)[i] = v; break;
  default: break;
  }
}

void ops_strided_copy(void *dst, const void *src, size_t es, int nd, const int64_t *shape,
                      const int64_t *strides, int64_t base)
{
  int64_t total = ops_numel(nd, shape);
  if (total == 0) return;
  int64_t inner = nd ? shape[nd - 1] : 1, rows = total / inner;
  int64_t last = nd ? strides[nd - 1] : 0;
  const char *s = src;
  char *d = dst;
#pragma omp parallel for schedule(static) if (total > OPS_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t off = base, rr = r;
    for (int k = nd - 2; k >= 0; k--) {
      off += (rr % shape[k]) * strides[k];
      rr /= shape[k];
    }
    char *po = d + (size_t)(r * inner) * es;
    if (last == 1) {
      memcpy(po, s + (size_t)off * es, (size_t)inner * es);
    } else if (es == 4) {
      for (int64_t j = 0; j < inner; j++)
        memcpy(po + 4 * (size_t)j, s + (size_t)(off + j * last) * 4, 4);
    } else {
      for (int64_t j = 0; j < inner; j++)
        memcpy(po + (size_t)j * es, s + (size_t)(off + j * last) * es, es);
    }
  }
}

int ops_eval_copy(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                  int nout, char *err, size_t errlen)
{
  if (nin < 1 || !in[0].data) return ops_eval_fail(err, errlen, n, "input 0 is missing");
  size_t bytes = (size_t)ops_rt_numel(&in[0]) * lm_dtype_size(in[0].dt);
  if ((size_t)ops_rt_numel(&out[0]) * lm_dtype_size(out[0].dt) != bytes)
    return ops_eval_fail(err, errlen, n, "output size differs from the input's");
  if (out[0].data != in[0].data && bytes) memmove(out[0].data, in[0].data, bytes);
  return LM_OK;
}
