/* Indexing ops: Gather, GatherElements, GatherND, ScatterElements (and the
 * deprecated Scatter), ScatterND, DepthToSpace, SpaceToDepth, Trilu,
 * EyeLike, OneHot, TopK.  Any dtype, moved by element size; indices may be
 * negative (counted from the end) and are checked. */
#include "cpu_ops_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAXD LM_MAX_DIMS

/* ---- Gather ------------------------------------------------------------- */

static int infer_gather(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0), *idx = ops_in(g, n, 1);
  if (!x || !idx) return ops_fail(g, n, "needs inputs data and indices");
  if (!ops_in_known(g, n, 0) || !ops_in_known(g, n, 1)) return LM_OK;
  if (idx->dt != LM_I64 && idx->dt != LM_I32)
    return ops_fail(g, n, "indices '%s' must be int64 or int32, not %s", idx->name,
                    lm_dtype_name(idx->dt));
  int axis;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", 0), x->ndim, &axis))
    return ops_fail(g, n, "attribute axis is out of range for %d dims", x->ndim);
  int nd = x->ndim - 1 + idx->ndim;
  if (nd > MAXD) return ops_fail(g, n, "output would have %d dims", nd);
  int64_t sh[MAXD];
  int k = 0;
  for (int i = 0; i < axis; i++) sh[k++] = x->shape[i];
  for (int i = 0; i < idx->ndim; i++) sh[k++] = idx->shape[i];
  for (int i = axis + 1; i < x->ndim; i++) sh[k++] = x->shape[i];
  /* Constant indices out of range are an error now rather than at run. */
  if (idx->data && x->shape[axis] >= 0) {
    int64_t cnt = lm_gvalue_numel(idx), dim = x->shape[axis];
    for (int64_t i = 0; i < cnt; i++) {
      int64_t v = idx->dt == LM_I64 ? ((const int64_t *)idx->data)[i]
                                    : ((const int32_t *)idx->data)[i];
      if (v < -dim || v >= dim)
        return ops_fail(g, n, "index %lld is out of range for extent %lld", (long long)v,
                        (long long)dim);
    }
  }
  ops_set_out(g, n, 0, x->dt, nd, sh);
  return LM_OK;
}

static int eval_gather(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0], *idx = &in[1];
  if (nin < 2 || !x->data || !idx->data) return ops_eval_fail(err, errlen, n, "needs data and indices");
  int axis;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", 0), x->ndim, &axis))
    return ops_eval_fail(err, errlen, n, "attribute axis is out of range");
  size_t es = lm_dtype_size(x->dt);
  int64_t outer = ops_numel(axis, x->shape), dim = x->shape[axis];
  int64_t inner = ops_numel(x->ndim - axis - 1, x->shape + axis + 1);
  int64_t ni = ops_rt_numel(idx);
  if (ops_rt_numel(&out[0]) != outer * ni * inner)
    return ops_eval_fail(err, errlen, n, "output size differs from the gather's");
  for (int64_t j = 0; j < ni; j++) {
    int64_t v = (int64_t)ops_get(idx, j);
    if (v < -dim || v >= dim)
      return ops_eval_fail(err, errlen, n, "index %lld is out of range for extent %lld",
                           (long long)v, (long long)dim);
  }
#pragma omp parallel for schedule(static) if (outer * ni * inner > OPS_PAR_MIN)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < ni; j++) {
      int64_t v = idx->dt == LM_I64 ? ((const int64_t *)idx->data)[j]
                                    : ((const int32_t *)idx->data)[j];
      if (v < 0) v += dim;
      memcpy((char *)out[0].data + (size_t)((o * ni + j) * inner) * es,
             (const char *)x->data + (size_t)((o * dim + v) * inner) * es, (size_t)inner * es);
    }
  return LM_OK;
}

/* ---- DepthToSpace, SpaceToDepth: a reshape, a transpose, a reshape ----- */

/* View of x as 6-D and the permutation that gives the output. */
static const char *d2s_view(const lm_gnode *n, const int64_t *xs, bool to_space, int64_t *v6,
                            int *perm, int64_t *osh)
{
  int64_t b = lm_gnode_attr_int(n, "blocksize", 0);
  if (b < 1) return "attribute blocksize must be >= 1";
  int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3];
  if (to_space) {
    if (C % (b * b)) return "channels are not a multiple of blocksize^2";
    bool crd = !strcmp(lm_gnode_attr_string(n, "mode", "DCR"), "CRD");
    int64_t c = C / (b * b);
    int64_t dcr[6] = {N, b, b, c, H, W}, crdv[6] = {N, c, b, b, H, W};
    static const int pd[6] = {0, 3, 4, 1, 5, 2}, pc[6] = {0, 1, 4, 2, 5, 3};
    memcpy(v6, crd ? crdv : dcr, sizeof dcr);
    memcpy(perm, crd ? pc : pd, sizeof pd);
    osh[0] = N; osh[1] = c; osh[2] = H * b; osh[3] = W * b;
  } else {
    if (H % b || W % b) return "height or width is not a multiple of blocksize";
    int64_t v[6] = {N, C, H / b, b, W / b, b};
    static const int p[6] = {0, 3, 5, 1, 2, 4};
    memcpy(v6, v, sizeof v);
    memcpy(perm, p, sizeof p);
    osh[0] = N; osh[1] = C * b * b; osh[2] = H / b; osh[3] = W / b;
  }
  return NULL;
}

static int infer_d2s(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  if (x->ndim != 4) return ops_fail(g, n, "input '%s' must be 4-D", x->name);
  int64_t v6[6], osh[4];
  int perm[6];
  const char *why = d2s_view(n, x->shape, !strcmp(n->op, "DepthToSpace"), v6, perm, osh);
  if (why) return ops_fail(g, n, "%s", why);
  ops_set_out(g, n, 0, x->dt, 4, osh);
  return LM_OK;
}

static int eval_d2s(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                    int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data || x->ndim != 4) return ops_eval_fail(err, errlen, n, "input must be 4-D");
  int64_t v6[6], osh[4], str[6], sh[6], st[6];
  int perm[6];
  const char *why = d2s_view(n, x->shape, !strcmp(n->op, "DepthToSpace"), v6, perm, osh);
  if (why) return ops_eval_fail(err, errlen, n, "%s", why);
  ops_strides(6, v6, str);
  for (int k = 0; k < 6; k++) {
    sh[k] = v6[perm[k]];
    st[k] = str[perm[k]];
  }
  ops_strided_copy(out[0].data, x->data, lm_dtype_size(x->dt), 6, sh, st, 0);
  return LM_OK;
}

/* ---- GatherElements, Trilu ---------------------------------------------- */

static int infer_gather_elements(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0), *idx = ops_in(g, n, 1);
  if (!x || !idx) return ops_fail(g, n, "needs inputs data and indices");
  if (!ops_in_known(g, n, 0) || !ops_in_known(g, n, 1)) return LM_OK;
  int a;
  if (idx->ndim != x->ndim || !ops_axis(lm_gnode_attr_int(n, "axis", 0), x->ndim, &a))
    return ops_fail(g, n, "indices must have data's rank and axis must be in range");
  ops_set_out(g, n, 0, x->dt, idx->ndim, idx->shape);
  return LM_OK;
}

static int eval_gather_elements(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                                lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0], *idx = &in[1];
  int a;
  if (nin < 2 || !x->data || !idx->data || !ops_axis(lm_gnode_attr_int(n, "axis", 0), x->ndim, &a))
    return ops_eval_fail(err, errlen, n, "needs data, indices and an axis in range");
  int64_t str[MAXD], total = ops_rt_numel(idx);
  ops_strides(x->ndim, x->shape, str);
  size_t es = lm_dtype_size(x->dt);
  for (int64_t o = 0; o < total; o++) {
    int64_t rem = o, off = 0;
    int64_t v = (int64_t)ops_get(idx, o);
    if (v < 0) v += x->shape[a];
    if (v < 0 || v >= x->shape[a])
      return ops_eval_fail(err, errlen, n, "index %lld is out of range", (long long)v);
    for (int k = idx->ndim - 1; k >= 0; k--) {
      int64_t c = rem % idx->shape[k];
      rem /= idx->shape[k];
      off += (k == a ? v : c) * str[k];
    }
    memcpy((char *)out[0].data + (size_t)o * es, (const char *)x->data + (size_t)off * es, es);
  }
  return LM_OK;
}

static int infer_trilu(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  if (ops_in_known(g, n, 0) && x->ndim < 2) return ops_fail(g, n, "input must have 2 or more dims");
  return ops_infer_same(g, n);
}

static int eval_trilu(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                      int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data || x->ndim < 2) return ops_eval_fail(err, errlen, n, "input must have 2+ dims");
  int64_t k = 0;
  if (nin > 1 && in[1].data && ops_rt_ints(&in[1], &k, 1) != 1)
    return ops_eval_fail(err, errlen, n, "input k must be one int");
  bool upper = lm_gnode_attr_int(n, "upper", 1) != 0;
  int64_t R = x->shape[x->ndim - 2], C = x->shape[x->ndim - 1];
  int64_t mats = ops_numel(x->ndim - 2, x->shape);
  size_t es = lm_dtype_size(x->dt);
  for (int64_t m = 0; m < mats; m++)
    for (int64_t i = 0; i < R; i++)
      for (int64_t j = 0; j < C; j++) {
        size_t at = (size_t)((m * R + i) * C + j) * es;
        bool keep = upper ? j - i >= k : j - i <= k;
        if (keep) memcpy((char *)out[0].data + at, (const char *)x->data + at, es);
        else memset((char *)out[0].data + at, 0, es);
      }
  return LM_OK;
}

/* ---- GatherND, ScatterElements, ScatterND ------------------------------- */

static int infer_gather_nd(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0), *idx = ops_in(g, n, 1);
  if (!x || !idx) return ops_fail(g, n, "needs inputs data and indices");
  if (!ops_in_known(g, n, 0) || !ops_in_known(g, n, 1)) return LM_OK;
  int64_t b = lm_gnode_attr_int(n, "batch_dims", 0), q = idx->ndim, r = x->ndim;
  int64_t last = q ? idx->shape[q - 1] : -1;
  if (q < 1 || last < 1 || b < 0 || b >= q || b + last > r)
    return ops_fail(g, n, "indices' last extent %lld and batch_dims %lld do not fit data's rank %lld",
                    (long long)last, (long long)b, (long long)r);
  int64_t sh[MAXD];
  int nd = 0;
  for (int64_t k = 0; k < q - 1; k++) sh[nd++] = idx->shape[k];
  for (int64_t k = b + last; k < r; k++) {
    if (nd >= MAXD) return ops_fail(g, n, "output has too many dims");
    sh[nd++] = x->shape[k];
  }
  ops_set_out(g, n, 0, x->dt, nd, sh);
  return LM_OK;
}

static int eval_gather_nd(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                          int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0], *idx = &in[1];
  if (nin < 2 || !x->data || !idx->data) return ops_eval_fail(err, errlen, n, "needs data and indices");
  int64_t b = lm_gnode_attr_int(n, "batch_dims", 0), q = idx->ndim, last = idx->shape[q - 1];
  int64_t str[MAXD];
  ops_strides(x->ndim, x->shape, str);
  int64_t batch = ops_numel((int)b, x->shape);
  int64_t per_batch = ops_numel((int)(q - 1 - b), idx->shape + b);   /* index tuples per batch */
  int64_t slice = ops_numel((int)(x->ndim - b - last), x->shape + b + last);
  size_t es = lm_dtype_size(x->dt);
  for (int64_t bi = 0; bi < batch; bi++)
    for (int64_t t = 0; t < per_batch; t++) {
      int64_t off = b > 0 ? bi * str[b - 1] : 0;   /* the batch's block of data */
      const int64_t tup = (bi * per_batch + t) * last;
      for (int64_t k = 0; k < last; k++) {
        int64_t v = (int64_t)ops_get(idx, tup + k), dim = x->shape[b + k];
        if (v < 0) v += dim;
        if (v < 0 || v >= dim) return ops_eval_fail(err, errlen, n, "index out of range");
        off += v * str[b + k];
      }
      memcpy((char *)out[0].data + (size_t)((bi * per_batch + t) * slice) * es,
             (const char *)x->data + (size_t)off * es, (size_t)slice * es);
    }
  return LM_OK;
}

static int infer_scatter(lm_graph *g, const lm_gnode *n)
{
  if (!ops_in(g, n, 0) || !ops_in(g, n, 1) || !ops_in(g, n, 2))
    return ops_fail(g, n, "needs inputs data, indices and updates");
  const char *red = lm_gnode_attr_string(n, "reduction", "none");
  if (strcmp(red, "none") && strcmp(red, "add") && strcmp(red, "mul") && strcmp(red, "max") &&
      strcmp(red, "min"))
    return ops_fail(g, n, "attribute reduction '%s' is unknown", red);
  return ops_infer_same(g, n);
}

static void scatter_put(lm_rt_tensor *o, int64_t at, double u, const char *red)
{
  double v = ops_get(o, at);
  if (!strcmp(red, "add")) u += v;
  else if (!strcmp(red, "mul")) u *= v;
  else if (!strcmp(red, "max")) u = u > v ? u : v;
  else if (!strcmp(red, "min")) u = u < v ? u : v;
  ops_put(o, at, u);
}

/* Serial: later updates of the same position win (or reduce) in order. */
static int eval_scatter_elements(const lm_gnode *n, const lm_rt_tensor *in, int nin,
                                 lm_rt_tensor *out, int nout, char *err, size_t errlen)
{
  if (nin < 3 || !in[0].data || !in[1].data || !in[2].data)
    return ops_eval_fail(err, errlen, n, "needs data, indices and updates");
  const lm_rt_tensor *x = &in[0], *idx = &in[1], *up = &in[2];
  int a;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", 0), x->ndim, &a))
    return ops_eval_fail(err, errlen, n, "attribute axis is out of range");
  const char *red = lm_gnode_attr_string(n, "reduction", "none");
  memcpy(out[0].data, x->data, (size_t)ops_rt_numel(x) * lm_dtype_size(x->dt));
  int64_t str[MAXD], total = ops_rt_numel(idx);
  ops_strides(x->ndim, x->shape, str);
  for (int64_t e = 0; e < total; e++) {
    int64_t rem = e, off = 0;
    int64_t v = (int64_t)ops_get(idx, e);
    if (v < 0) v += x->shape[a];
    if (v < 0 || v >= x->shape[a]) return ops_eval_fail(err, errlen, n, "index out of range");
    for (int k = idx->ndim - 1; k >= 0; k--) {
      int64_t c = rem % idx->shape[k];
      rem /= idx->shape[k];
      off += (k == a ? v : c) * str[k];
    }
    scatter_put(&out[0], off, ops_get(up, e), red);
  }
  return LM_OK;
}

static int eval_scatter_nd(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                           int nout, char *err, size_t errlen)
{
  if (nin < 3 || !in[0].data || !in[1].data || !in[2].data)
    return ops_eval_fail(err, errlen, n, "needs data, indices and updates");
  const lm_rt_tensor *x = &in[0], *idx = &in[1], *up = &in[2];
  const char *red = lm_gnode_attr_string(n, "reduction", "none");
  memcpy(out[0].data, x->data, (size_t)ops_rt_numel(x) * lm_dtype_size(x->dt));
  int64_t last = idx->shape[idx->ndim - 1], str[MAXD];
  if (last > x->ndim) return ops_eval_fail(err, errlen, n, "index tuples are longer than data's rank");
  ops_strides(x->ndim, x->shape, str);
  int64_t tuples = ops_numel(idx->ndim - 1, idx->shape);
  int64_t slice = ops_numel(x->ndim - (int)last, x->shape + last);
  for (int64_t t = 0; t < tuples; t++) {
    int64_t off = 0;
    for (int64_t k = 0; k < last; k++) {
      int64_t v = (int64_t)ops_get(idx, t * last + k);
      if (v < 0) v += x->shape[k];
      if (v < 0 || v >= x->shape[k]) return ops_eval_fail(err, errlen, n, "index out of range");
      off += v * str[k];
    }
    for (int64_t i = 0; i < slice; i++) scatter_put(&out[0], off + i, ops_get(up, t * slice + i), red);
  }
  return LM_OK;
}

/* ---- EyeLike, OneHot, TopK ---------------------------------------------- */

static int infer_eyelike(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  if (x->ndim != 2) return ops_fail(g, n, "input '%s' must be 2-D", x->name);
  lm_dtype dt = x->dt;
  const lm_gattr *d = lm_gnode_attr(n, "dtype");
  if (d && lm_dtype_from_onnx((int)d->i, &dt) < 0) return ops_fail(g, n, "attribute dtype is unknown");
  ops_set_out(g, n, 0, dt, 2, x->shape);
  return LM_OK;
}

static int eval_eyelike(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                        int nout, char *err, size_t errlen)
{
  int64_t R = out[0].shape[0], C = out[0].shape[1], k = lm_gnode_attr_int(n, "k", 0);
  for (int64_t i = 0; i < R; i++)
    for (int64_t j = 0; j < C; j++) ops_put(&out[0], i * C + j, j - i == k);
  return LM_OK;
}

static int infer_onehot(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *idx = ops_in(g, n, 0), *vals = ops_in(g, n, 2);
  if (!idx || !ops_in(g, n, 1) || !vals) return ops_fail(g, n, "needs inputs indices, depth and values");
  if (!ops_in_known(g, n, 0) || !vals->dt_known) return LM_OK;
  int nd = idx->ndim + 1, a;
  if (nd > MAXD || !ops_axis(lm_gnode_attr_int(n, "axis", -1), nd, &a))
    return ops_fail(g, n, "attribute axis is out of range");
  const lm_gvalue *dv = ops_in(g, n, 1);
  int64_t depth = -1;
  if (dv->data) {
    lm_rt_tensor t = {.dt = dv->dt, .ndim = 0, .data = (void *)dv->data};
    depth = (int64_t)ops_get(&t, 0);
  }
  int64_t sh[MAXD];
  for (int k = 0, j = 0; k < nd; k++) sh[k] = k == a ? depth : idx->shape[j++];
  ops_set_out(g, n, 0, vals->dt, nd, sh);
  return LM_OK;
}

static int eval_onehot(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  if (nin < 3 || !in[0].data || !in[1].data || !in[2].data)
    return ops_eval_fail(err, errlen, n, "needs indices, depth and values");
  int nd = out[0].ndim, a;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", -1), nd, &a))
    return ops_eval_fail(err, errlen, n, "attribute axis is out of range");
  int64_t depth = out[0].shape[a];
  int64_t outer = ops_numel(a, out[0].shape), inner = ops_numel(nd - a - 1, out[0].shape + a + 1);
  double off = ops_get(&in[2], 0), on = ops_get(&in[2], 1);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t v = (int64_t)ops_get(&in[0], o * inner + i);
      if (v < 0) v += depth;
      for (int64_t d = 0; d < depth; d++) ops_put(&out[0], (o * depth + d) * inner + i, d == v ? on : off);
    }
  return LM_OK;
}

static int infer_topk(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x || !ops_in(g, n, 1)) return ops_fail(g, n, "needs inputs X and K");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int a;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", -1), x->ndim, &a))
    return ops_fail(g, n, "attribute axis is out of range");
  int64_t k;
  int cnt = ops_in_ints(g, n, 1, &k, 1);
  if (cnt < -1) return cnt;
  int64_t sh[MAXD];
  memcpy(sh, x->shape, sizeof sh);
  sh[a] = cnt == 1 ? k : -1;
  if (cnt == 1 && x->shape[a] >= 0 && (k < 0 || k > x->shape[a]))
    return ops_fail(g, n, "K=%lld is out of range for extent %lld", (long long)k, (long long)x->shape[a]);
  ops_set_out(g, n, 0, x->dt, x->ndim, sh);
  ops_set_out(g, n, 1, LM_I64, x->ndim, sh);
  return LM_OK;
}

static int eval_topk(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                     int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  int a;
  if (!x->data || !ops_axis(lm_gnode_attr_int(n, "axis", -1), x->ndim, &a))
    return ops_eval_fail(err, errlen, n, "needs X and an axis in range");
  bool largest = lm_gnode_attr_int(n, "largest", 1) != 0;
  int64_t len = x->shape[a], k = out[0].shape[a];
  int64_t outer = ops_numel(a, x->shape), inner = ops_numel(x->ndim - a - 1, x->shape + a + 1);
  int64_t *order = malloc(sizeof(int64_t) * (size_t)(len ? len : 1));
  if (!order) return ops_eval_fail(err, errlen, n, "out of memory");
  for (int64_t oi = 0; oi < outer * inner; oi++) {
    int64_t o = oi / inner, i = oi % inner;
    /* selection of the k best, stable: ties keep the lower index first */
    for (int64_t j = 0; j < len; j++) order[j] = j;
    for (int64_t s = 0; s < k; s++) {
      int64_t best = s;
      for (int64_t j = s + 1; j < len; j++) {
        double vj = ops_get(x, (o * len + order[j]) * inner + i);
        double vb = ops_get(x, (o * len + order[best]) * inner + i);
        bool better = largest ? vj > vb : vj < vb;
        if (better || (vj == vb && order[j] < order[best])) best = j;
      }
      int64_t tmp = order[s];
      order[s] = order[best];
      order[best] = tmp;
      int64_t at = (o * k + s) * inner + i;
      ops_put(&out[0], at, ops_get(x, (o * len + order[s]) * inner + i));
      if (nout > 1 && out[1].data) ((int64_t *)out[1].data)[at] = order[s];
    }
  }
  free(order);
  return LM_OK;
}

const lm_cpu_kernel lm_ops_index[] = {
  {"Gather", infer_gather, eval_gather, false},
  {"DepthToSpace", infer_d2s, eval_d2s, false},
  {"SpaceToDepth", infer_d2s, eval_d2s, false},
  {"GatherElements", infer_gather_elements, eval_gather_elements, false},
  {"Trilu", infer_trilu, eval_trilu, false},
  {"GatherND", infer_gather_nd, eval_gather_nd, false},
  {"ScatterElements", infer_scatter, eval_scatter_elements, false},
  {"Scatter", infer_scatter, eval_scatter_elements, false},   /* deprecated alias */
  {"ScatterND", infer_scatter, eval_scatter_nd, false},
  {"EyeLike", infer_eyelike, eval_eyelike, false},
  {"OneHot", infer_onehot, eval_onehot, false},
  {"TopK", infer_topk, eval_topk, false},
  {NULL, NULL, NULL, false},
};
