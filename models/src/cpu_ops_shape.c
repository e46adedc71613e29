/* Shape and data-movement ops: Concat, Split, Slice, Gather, Shape, Size,
 * Unsqueeze, Squeeze, Flatten, Reshape, Transpose, Expand, Tile, Cast,
 * CastLike, ConstantOfShape, Constant, Range, Identity, Dropout,
 * DepthToSpace, SpaceToDepth, GatherElements, GatherND, ScatterElements,
 * ScatterND, Trilu, EyeLike, OneHot, TopK.
 *
 * They move elements of any dtype by element size.  infer reads constant
 * inputs (shapes, axes, starts/ends, repeats) where the output shape
 * depends on them; opset differences (attributes that became inputs) are
 * told apart by what the node carries. */
#include "cpu_ops_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXD LM_MAX_DIMS

static int copy_eval(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                     int nout, char *err, size_t errlen)
{
  if (nin < 1 || !in[0].data) return ops_eval_fail(err, errlen, n, "input 0 is missing");
  size_t bytes = (size_t)ops_rt_numel(&in[0]) * lm_dtype_size(in[0].dt);
  if ((size_t)ops_rt_numel(&out[0]) * lm_dtype_size(out[0].dt) != bytes)
    return ops_eval_fail(err, errlen, n, "output size differs from the input's");
  if (out[0].data != in[0].data && bytes) memmove(out[0].data, in[0].data, bytes);
  return LM_OK;
}

/* Axes from attribute `name` (older opsets) or input idx (newer); -1 when
** neither is there, -2 when the input exists but is not constant. */
static int axes_attr_or_input(lm_graph *g, const lm_gnode *n, const char *name, int idx,
                              int64_t *axes, int *st)
{
  *st = LM_OK;
  int cnt;
  const int64_t *a = lm_gnode_attr_ints(n, name, &cnt);
  if (a) {
    if (cnt > MAXD) {
      *st = ops_fail(g, n, "attribute %s has %d entries", name, cnt);
      return -1;
    }
    memcpy(axes, a, sizeof(int64_t) * (size_t)cnt);
    return cnt;
  }
  if (!ops_in(g, n, idx)) return -1;
  int k = ops_in_ints(g, n, idx, axes, MAXD);
  if (k == -1) return -2;
  if (k < 0) {
    *st = k;
    return -1;
  }
  return k;
}

/* ---- Identity, Dropout -------------------------------------------------- */

static int infer_identity(lm_graph *g, const lm_gnode *n) { return ops_infer_same(g, n); }

static int infer_dropout(lm_graph *g, const lm_gnode *n)
{
  if (n->nin > 2 && ops_in(g, n, 2)) {
    int64_t tm;
    const lm_gvalue *v = ops_in(g, n, 2);
    if (v->data && v->dt == LM_U8 && lm_gvalue_numel(v) == 1 && *(const uint8_t *)v->data) {
      (void)tm;
      return ops_fail(g, n, "input training_mode is true (inference only)");
    }
  }
  int st = ops_infer_same(g, n);
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!st && n->nout > 1 && x && x->dt_known) ops_set_out(g, n, 1, LM_U8, x->ndim, x->shape);
  return st;
}

static int eval_dropout(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                        int nout, char *err, size_t errlen)
{
  int st = copy_eval(n, in, nin, out, nout, err, errlen);
  if (!st && nout > 1 && out[1].data)   /* mask: every element kept */
    memset(out[1].data, 1, (size_t)ops_rt_numel(&out[1]));
  return st;
}

/* ---- Concat ------------------------------------------------------------- */

static int infer_concat(lm_graph *g, const lm_gnode *n)
{
  const lm_gattr *ax = lm_gnode_attr(n, "axis");
  if (!ax) return ops_fail(g, n, "attribute axis is missing");
  if (n->nin < 1) return ops_fail(g, n, "has no inputs");
  const lm_gvalue *first = NULL;
  int axis = 0;
  int64_t shape[MAXD];
  for (int i = 0; i < n->nin; i++) {
    const lm_gvalue *v = ops_in(g, n, i);
    if (!v) return ops_fail(g, n, "input %d is missing", i);
    if (!v->dt_known || v->ndim < 0) return LM_OK;
    if (!first) {
      first = v;
      if (!ops_axis(ax->i, v->ndim, &axis))
        return ops_fail(g, n, "attribute axis=%lld is out of range for %d dims",
                        (long long)ax->i, v->ndim);
      memcpy(shape, v->shape, sizeof shape);
      continue;
    }
    if (v->ndim != first->ndim)
      return ops_fail(g, n, "input %d ('%s') has %d dims, input 0 has %d", i, v->name,
                      v->ndim, first->ndim);
    if (v->dt != first->dt)
      return ops_fail(g, n, "input %d ('%s') is %s, input 0 is %s", i, v->name,
                      lm_dtype_name(v->dt), lm_dtype_name(first->dt));
    for (int k = 0; k < v->ndim; k++) {
      if (k == axis) {
        shape[k] = (shape[k] < 0 || v->shape[k] < 0) ? -1 : shape[k] + v->shape[k];
      } else if (shape[k] >= 0 && v->shape[k] >= 0 && shape[k] != v->shape[k]) {
        return ops_fail(g, n, "input %d ('%s') has extent %lld on axis %d, input 0 has %lld",
                        i, v->name, (long long)v->shape[k], k, (long long)shape[k]);
      } else if (shape[k] < 0) {
        shape[k] = v->shape[k];
      }
    }
  }
  ops_set_out(g, n, 0, first->dt, first->ndim, shape);
  return LM_OK;
}

static int eval_concat(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  int axis;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", 0), out[0].ndim, &axis))
    return ops_eval_fail(err, errlen, n, "attribute axis is out of range");
  size_t es = lm_dtype_size(out[0].dt);
  int64_t outer = ops_numel(axis, out[0].shape);
  int64_t inner = ops_numel(out[0].ndim - axis - 1, out[0].shape + axis + 1);
  int64_t orow = out[0].shape[axis] * inner;
  int64_t pos = 0;
  for (int i = 0; i < nin; i++) {
    if (!in[i].data) return ops_eval_fail(err, errlen, n, "input %d is missing", i);
    int64_t irow = in[i].shape[axis] * inner;
    if (pos + irow > orow) return ops_eval_fail(err, errlen, n, "inputs exceed the output");
#pragma omp parallel for schedule(static) if (outer * irow > OPS_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
      memcpy((char *)out[0].data + (size_t)(o * orow + pos) * es,
             (const char *)in[i].data + (size_t)(o * irow) * es, (size_t)irow * es);
    pos += irow;
  }
  return LM_OK;
}

/* ---- Split -------------------------------------------------------------- */

/* The split sizes: attribute split (< 13), input 1 (13+), num_outputs
** (18) or equal parts. Returns LM_OK, 1 when unknown, or an error. */
static int split_sizes(lm_graph *g, const lm_gnode *n, int64_t dim, int64_t *sizes)
{
  int cnt;
  const int64_t *sp = lm_gnode_attr_ints(n, "split", &cnt);
  int64_t buf[64];
  if (!sp && ops_in(g, n, 1)) {
    int k = ops_in_ints(g, n, 1, buf, 64);
    if (k == -1) return 1;
    if (k < 0) return k;
    sp = buf;
    cnt = k;
  }
  if (sp) {
    if (cnt != n->nout)
      return ops_fail(g, n, "split has %d entries for %d outputs", cnt, n->nout);
    int64_t sum = 0;
    for (int i = 0; i < cnt; i++) {
      if (sp[i] < 0) return ops_fail(g, n, "split entry %d is negative", i);
      sizes[i] = sp[i];
      sum += sp[i];
    }
    if (dim >= 0 && sum != dim)
      return ops_fail(g, n, "split sums to %lld, the axis has %lld", (long long)sum,
                      (long long)dim);
    return LM_OK;
  }
  if (dim < 0) return 1;
  /* Equal parts; with num_outputs (18) the last may be smaller. */
  int64_t parts = n->nout;
  int64_t each = (dim + parts - 1) / parts;
  if (!lm_gnode_attr(n, "num_outputs") && dim % parts)
    return ops_fail(g, n, "axis extent %lld does not split into %d equal parts", (long long)dim,
                    n->nout);
  for (int i = 0; i < n->nout; i++) {
    int64_t left = dim - each * i;
    sizes[i] = left < 0 ? 0 : left < each ? left : each;
  }
  return LM_OK;
}

static int infer_split(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  if (n->nout > 64) return ops_fail(g, n, "has %d outputs (at most 64)", n->nout);
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int axis;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", 0), x->ndim, &axis))
    return ops_fail(g, n, "attribute axis is out of range for %d dims", x->ndim);
  int64_t sizes[64];
  int st = split_sizes(g, n, x->shape[axis], sizes);
  if (st < 0) return st;
  for (int i = 0; i < n->nout; i++) {
    int64_t sh[MAXD];
    memcpy(sh, x->shape, sizeof sh);
    sh[axis] = st == 1 ? -1 : sizes[i];
    ops_set_out(g, n, i, x->dt, x->ndim, sh);
  }
  return LM_OK;
}

static int eval_split(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                      int nout, char *err, size_t errlen)
{
  if (!in[0].data) return ops_eval_fail(err, errlen, n, "input is missing");
  int axis;
  if (!ops_axis(lm_gnode_attr_int(n, "axis", 0), in[0].ndim, &axis))
    return ops_eval_fail(err, errlen, n, "attribute axis is out of range");
  size_t es = lm_dtype_size(in[0].dt);
  int64_t outer = ops_numel(axis, in[0].shape);
  int64_t inner = ops_numel(in[0].ndim - axis - 1, in[0].shape + axis + 1);
  int64_t irow = in[0].shape[axis] * inner, pos = 0;
  for (int i = 0; i < nout; i++) {
    /* the output shapes (from infer) carry the split sizes */
    int64_t orow = out[i].shape[axis] * inner;
    if (pos + orow > irow) return ops_eval_fail(err, errlen, n, "outputs exceed the input");
    if (out[i].data)
      for (int64_t o = 0; o < outer; o++)
        memcpy((char *)out[i].data + (size_t)(o * orow) * es,
               (const char *)in[0].data + (size_t)(o * irow + pos) * es, (size_t)orow * es);
    pos += orow;
  }
  return LM_OK;
}

/* ---- Slice -------------------------------------------------------------- */

typedef struct slice_plan {
  int64_t start[MAXD], step[MAXD], count[MAXD];
} slice_plan;

/* Resolve starts/ends/axes/steps against a shape (ONNX clamping rules). */
static const char *slice_resolve(int ndim, const int64_t *shape, const int64_t *starts,
                                 const int64_t *ends, int cnt, const int64_t *axes, int naxes,
                                 const int64_t *steps, int nsteps, slice_plan *p)
{
  for (int k = 0; k < ndim; k++) {
    p->start[k] = 0;
    p->step[k] = 1;
    p->count[k] = shape[k];
  }
  if (naxes >= 0 && naxes != cnt) return "axes and starts have different lengths";
  if (nsteps >= 0 && nsteps != cnt) return "steps and starts have different lengths";
  bool seen[MAXD] = {false};
  for (int i = 0; i < cnt; i++) {
    int ax;
    if (!ops_axis(naxes >= 0 ? axes[i] : i, ndim, &ax)) return "an axis is out of range";
    if (seen[ax]) return "an axis is repeated";
    seen[ax] = true;
    int64_t step = nsteps >= 0 ? steps[i] : 1;
    if (step == 0) return "a step is 0";
    int64_t dim = shape[ax];
    if (dim < 0) {
      p->count[ax] = -1;
      continue;
    }
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = s < 0 ? 0 : s > dim ? dim : s;
      e = e < 0 ? 0 : e > dim ? dim : e;
      p->count[ax] = e > s ? (e - s + step - 1) / step : 0;
    } else {
      s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
      e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
      p->count[ax] = s > e ? (s - e + (-step) - 1) / (-step) : 0;
    }
    /* Large negative ends (INT64_MIN) clamp as above; starts too. */
    p->start[ax] = s;
    p->step[ax] = step;
  }
  return NULL;
}

static int infer_slice(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input data is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int64_t starts[MAXD], ends[MAXD], axes[MAXD], steps[MAXD];
  int cnt, ce, na = -1, ns = -1;
  const int64_t *a;
  if ((a = lm_gnode_attr_ints(n, "starts", &cnt))) {   /* opset < 10 */
    if (cnt > MAXD) return ops_fail(g, n, "attribute starts is too long");
    memcpy(starts, a, sizeof(int64_t) * (size_t)cnt);
    const int64_t *e = lm_gnode_attr_ints(n, "ends", &ce);
    if (!e || ce != cnt) return ops_fail(g, n, "attribute ends is missing or differs in length");
    memcpy(ends, e, sizeof(int64_t) * (size_t)cnt);
    const int64_t *ax = lm_gnode_attr_ints(n, "axes", &na);
    if (ax) {
      if (na > MAXD) return ops_fail(g, n, "attribute axes is too long");
      memcpy(axes, ax, sizeof(int64_t) * (size_t)na);
    } else {
      na = -1;
    }
  } else {
    if (n->nin < 3) return ops_fail(g, n, "needs inputs starts and ends");
    int64_t sh[MAXD];
    for (int k = 0; k < x->ndim; k++) sh[k] = -1;
    cnt = ops_in_ints(g, n, 1, starts, MAXD);
    ce = ops_in_ints(g, n, 2, ends, MAXD);
    if (cnt < -1) return cnt;
    if (ce < -1) return ce;
    na = ops_in(g, n, 3) ? ops_in_ints(g, n, 3, axes, MAXD) : -1;
    ns = ops_in(g, n, 4) ? ops_in_ints(g, n, 4, steps, MAXD) : -1;
    if (na < -1) return na;
    if (ns < -1) return ns;
    bool unknown = cnt < 0 || ce < 0 || (ops_in(g, n, 3) && na < 0) ||
                   (ops_in(g, n, 4) && ns < 0);
    if (unknown) {   /* not constant: rank known, extents not */
      ops_set_out(g, n, 0, x->dt, x->ndim, sh);
      return LM_OK;
    }
    if (ce != cnt) return ops_fail(g, n, "starts has %d entries, ends %d", cnt, ce);
  }
  slice_plan p;
  const char *why = slice_resolve(x->ndim, x->shape, starts, ends, cnt, axes, na, steps, ns, &p);
  if (why) return ops_fail(g, n, "%s", why);
  ops_set_out(g, n, 0, x->dt, x->ndim, p.count);
  return LM_OK;
}

static int eval_slice(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                      int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  if (!x->data) return ops_eval_fail(err, errlen, n, "input data is missing");
  int64_t starts[MAXD], ends[MAXD], axes[MAXD], steps[MAXD];
  int cnt, ce, na = -1, ns = -1;
  const int64_t *a;
  if ((a = lm_gnode_attr_ints(n, "starts", &cnt))) {
    memcpy(starts, a, sizeof(int64_t) * (size_t)(cnt > MAXD ? MAXD : cnt));
    const int64_t *e = lm_gnode_attr_ints(n, "ends", &ce);
    if (e) memcpy(ends, e, sizeof(int64_t) * (size_t)(ce > MAXD ? MAXD : ce));
    const int64_t *ax = lm_gnode_attr_ints(n, "axes", &na);
    if (ax) memcpy(axes, ax, sizeof(int64_t) * (size_t)(na > MAXD ? MAXD : na));
    else na = -1;
  } else {
    cnt = nin > 1 ? ops_rt_ints(&in[1], starts, MAXD) : -1;
    ce = nin > 2 ? ops_rt_ints(&in[2], ends, MAXD) : -1;
    if (nin > 3 && in[3].data) na = ops_rt_ints(&in[3], axes, MAXD);
    if (nin > 4 && in[4].data) ns = ops_rt_ints(&in[4], steps, MAXD);
    if (cnt < 0 || ce < 0 || (nin > 3 && in[3].data && na < 0) || (nin > 4 && in[4].data && ns < 0))
      return ops_eval_fail(err, errlen, n, "starts/ends/axes/steps must be int tensors");
  }
  if (cnt != ce || cnt > MAXD) return ops_eval_fail(err, errlen, n, "starts and ends differ in length");
  slice_plan p;
  const char *why = slice_resolve(x->ndim, x->shape, starts, ends, cnt, axes, na, steps, ns, &p);
  if (why) return ops_eval_fail(err, errlen, n, "%s", why);
  int64_t str[MAXD], st2[MAXD], base = 0;
  ops_strides(x->ndim, x->shape, str);
  for (int k = 0; k < x->ndim; k++) {
    if (p.count[k] != out[0].shape[k])
      return ops_eval_fail(err, errlen, n, "output extent %lld on axis %d, slice gives %lld",
                           (long long)out[0].shape[k], k, (long long)p.count[k]);
    base += p.start[k] * str[k];
    st2[k] = p.step[k] * str[k];
  }
  ops_strided_copy(out[0].data, x->data, lm_dtype_size(x->dt), x->ndim, p.count, st2, base);
  return LM_OK;
}

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

/* ---- Shape, Size -------------------------------------------------------- */

static void shape_range(const lm_gnode *n, int ndim, int *lo, int *hi)
{
  int64_t s = lm_gnode_attr_int(n, "start", 0), e = lm_gnode_attr_int(n, "end", ndim);
  if (s < 0) s += ndim;
  if (e < 0) e += ndim;
  s = s < 0 ? 0 : s > ndim ? ndim : s;
  e = e < 0 ? 0 : e > ndim ? ndim : e;
  *lo = (int)s;
  *hi = (int)(e > s ? e : s);
}

static int infer_shape(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  if (x->ndim < 0) return LM_OK;
  int lo, hi;
  shape_range(n, x->ndim, &lo, &hi);
  int64_t len = hi - lo;
  ops_set_out(g, n, 0, LM_I64, 1, &len);
  return LM_OK;
}

static int eval_shape(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                      int nout, char *err, size_t errlen)
{
  int lo, hi;
  shape_range(n, in[0].ndim, &lo, &hi);
  if (out[0].dt != LM_I64 || ops_rt_numel(&out[0]) != hi - lo)
    return ops_eval_fail(err, errlen, n, "output must be int64 [%d]", hi - lo);
  for (int k = lo; k < hi; k++) ((int64_t *)out[0].data)[k - lo] = in[0].shape[k];
  return LM_OK;
}

static int infer_size(lm_graph *g, const lm_gnode *n)
{
  if (!ops_in(g, n, 0)) return ops_fail(g, n, "input is missing");
  ops_set_out(g, n, 0, LM_I64, 0, NULL);
  return LM_OK;
}

static int eval_size(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                     int nout, char *err, size_t errlen)
{
  if (out[0].dt != LM_I64) return ops_eval_fail(err, errlen, n, "output must be int64");
  *(int64_t *)out[0].data = ops_rt_numel(&in[0]);
  return LM_OK;
}

/* ---- Unsqueeze, Squeeze, Flatten, Reshape ------------------------------- */

static int infer_unsqueeze(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  int64_t axes[MAXD];
  int st, na = axes_attr_or_input(g, n, "axes", 1, axes, &st);
  if (st) return st;
  if (na == -1) return ops_fail(g, n, "axes (attribute or input 1) is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  if (na == -2) return LM_OK;   /* axes not constant: rank unknown */
  int nd = x->ndim + na;
  if (nd > MAXD) return ops_fail(g, n, "output would have %d dims", nd);
  bool ins[MAXD] = {false};
  for (int i = 0; i < na; i++) {
    int a;
    if (!ops_axis(axes[i], nd, &a)) return ops_fail(g, n, "axis %lld is out of range", (long long)axes[i]);
    if (ins[a]) return ops_fail(g, n, "axis %lld is repeated", (long long)axes[i]);
    ins[a] = true;
  }
  int64_t sh[MAXD];
  for (int k = 0, j = 0; k < nd; k++) sh[k] = ins[k] ? 1 : x->shape[j++];
  ops_set_out(g, n, 0, x->dt, nd, sh);
  return LM_OK;
}

static int infer_squeeze(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  int64_t axes[MAXD];
  int st, na = axes_attr_or_input(g, n, "axes", 1, axes, &st);
  if (st) return st;
  if (!ops_in_known(g, n, 0) || na == -2) return LM_OK;
  bool drop[MAXD] = {false};
  if (na < 0) {
    for (int k = 0; k < x->ndim; k++) {
      if (x->shape[k] < 0) return LM_OK;   /* cannot tell which go */
      drop[k] = x->shape[k] == 1;
    }
  } else {
    for (int i = 0; i < na; i++) {
      int a;
      if (!ops_axis(axes[i], x->ndim, &a))
        return ops_fail(g, n, "axis %lld is out of range", (long long)axes[i]);
      if (x->shape[a] >= 0 && x->shape[a] != 1)
        return ops_fail(g, n, "axis %d has extent %lld, not 1", a, (long long)x->shape[a]);
      drop[a] = true;
    }
  }
  int64_t sh[MAXD];
  int nd = 0;
  for (int k = 0; k < x->ndim; k++)
    if (!drop[k]) sh[nd++] = x->shape[k];
  ops_set_out(g, n, 0, x->dt, nd, sh);
  return LM_OK;
}

static int infer_flatten(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int64_t axis = lm_gnode_attr_int(n, "axis", 1);
  if (axis < 0) axis += x->ndim;
  if (axis < 0 || axis > x->ndim) return ops_fail(g, n, "attribute axis is out of range");
  int64_t sh[2] = {1, 1};
  for (int k = 0; k < x->ndim; k++) {
    int64_t *d = &sh[k < axis ? 0 : 1];
    *d = (*d < 0 || x->shape[k] < 0) ? -1 : *d * x->shape[k];
  }
  ops_set_out(g, n, 0, x->dt, 2, sh);
  return LM_OK;
}

/* Output shape of Reshape from the target spec; false with why set. */
static bool reshape_resolve(int ndim, const int64_t *in, const int64_t *spec, int cnt,
                            bool allowzero, int64_t *out, const char **why)
{
  int minus = -1;
  int64_t known = 1, total = 1;
  bool in_known = true;
  for (int k = 0; k < ndim; k++) {
    if (in[k] < 0) in_known = false;
    else total *= in[k];
  }
  for (int i = 0; i < cnt; i++) {
    int64_t d = spec[i];
    if (d == -1) {
      if (minus >= 0) {
        *why = "shape has more than one -1";
        return false;
      }
      minus = i;
      out[i] = -1;
      continue;
    }
    if (d < -1) {
      *why = "shape has an entry below -1";
      return false;
    }
    if (d == 0 && !allowzero) {
      if (i >= ndim) {
        *why = "shape has a 0 beyond the input's rank";
        return false;
      }
      d = in[i];
    }
    out[i] = d;
    if (d < 0) in_known = false;   /* copied unknown extent */
    else known *= d;
  }
  if (minus >= 0 && in_known) {
    if (known == 0 || total % known) {
      *why = "input size does not divide by the known extents";
      return false;
    }
    out[minus] = total / known;
  } else if (minus < 0 && in_known && known != total) {
    *why = "shape gives a different number of elements than the input has";
    return false;
  }
  return true;
}

static int infer_reshape(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0), *s = ops_in(g, n, 1);
  if (!x || !s) return ops_fail(g, n, "needs inputs data and shape");
  int64_t spec[MAXD], out[MAXD];
  int cnt = ops_in_ints(g, n, 1, spec, MAXD);
  if (cnt < -1) return cnt;
  if (!x->dt_known) return LM_OK;
  if (cnt == -1) {
    /* shape not constant: rank from the shape input's length if known */
    int64_t len = s->ndim == 1 ? s->shape[0] : -1;
    if (len < 0 || len > MAXD) return LM_OK;
    for (int i = 0; i < len; i++) out[i] = -1;
    ops_set_out(g, n, 0, x->dt, (int)len, out);
    return LM_OK;
  }
  if (x->ndim < 0) return LM_OK;
  const char *why = NULL;
  if (!reshape_resolve(x->ndim, x->shape, spec, cnt, lm_gnode_attr_int(n, "allowzero", 0) != 0,
                       out, &why))
    return ops_fail(g, n, "input shape '%s': %s", s->name, why);
  ops_set_out(g, n, 0, x->dt, cnt, out);
  return LM_OK;
}

/* ---- Transpose ---------------------------------------------------------- */

static int transpose_perm(const lm_gnode *n, int ndim, int *perm)
{
  int cnt;
  const int64_t *p = lm_gnode_attr_ints(n, "perm", &cnt);
  if (!p) {
    for (int k = 0; k < ndim; k++) perm[k] = ndim - 1 - k;
    return 0;
  }
  if (cnt != ndim) return -1;
  bool seen[MAXD] = {false};
  for (int k = 0; k < ndim; k++) {
    int a;
    if (!ops_axis(p[k], ndim, &a) || seen[a]) return -1;
    seen[a] = true;
    perm[k] = a;
  }
  return 0;
}

static int infer_transpose(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x) return ops_fail(g, n, "input is missing");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int perm[MAXD];
  if (transpose_perm(n, x->ndim, perm))
    return ops_fail(g, n, "attribute perm is not a permutation of %d axes", x->ndim);
  int64_t sh[MAXD];
  for (int k = 0; k < x->ndim; k++) sh[k] = x->shape[perm[k]];
  ops_set_out(g, n, 0, x->dt, x->ndim, sh);
  return LM_OK;
}

static int eval_transpose(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                          int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  int perm[MAXD];
  if (transpose_perm(n, x->ndim, perm))
    return ops_eval_fail(err, errlen, n, "attribute perm is not a permutation");
  int64_t str[MAXD], st2[MAXD], sh[MAXD];
  ops_strides(x->ndim, x->shape, str);
  for (int k = 0; k < x->ndim; k++) {
    sh[k] = x->shape[perm[k]];
    st2[k] = str[perm[k]];
  }
  ops_strided_copy(out[0].data, x->data, lm_dtype_size(x->dt), x->ndim, sh, st2, 0);
  return LM_OK;
}

/* ---- Expand, Tile ------------------------------------------------------- */

static int infer_expand(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0), *s = ops_in(g, n, 1);
  if (!x || !s) return ops_fail(g, n, "needs inputs input and shape");
  int64_t spec[MAXD], sh[MAXD];
  int cnt = ops_in_ints(g, n, 1, spec, MAXD);
  if (cnt < -1) return cnt;
  if (!ops_in_known(g, n, 0)) return LM_OK;
  if (cnt == -1) {
    int64_t len = s->ndim == 1 ? s->shape[0] : -1;
    if (len < 0 || len > MAXD) return LM_OK;
    int nd = (int)len > x->ndim ? (int)len : x->ndim;
    for (int i = 0; i < nd; i++) sh[i] = -1;
    ops_set_out(g, n, 0, x->dt, nd, sh);
    return LM_OK;
  }
  int nd;
  if (!ops_broadcast(x->ndim, x->shape, cnt, spec, &nd, sh))
    return ops_fail(g, n, "input shape '%s' does not broadcast with the input", s->name);
  ops_set_out(g, n, 0, x->dt, nd, sh);
  return LM_OK;
}

static int eval_expand(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                       int nout, char *err, size_t errlen)
{
  if (!in[0].data) return ops_eval_fail(err, errlen, n, "input is missing");
  int64_t st[MAXD];
  ops_bcast_strides(out[0].ndim, out[0].shape, &in[0], st);
  ops_strided_copy(out[0].data, in[0].data, lm_dtype_size(in[0].dt), out[0].ndim,
                   out[0].shape, st, 0);
  return LM_OK;
}

static int infer_tile(lm_graph *g, const lm_gnode *n)
{
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!x || !ops_in(g, n, 1)) return ops_fail(g, n, "needs inputs input and repeats");
  if (!ops_in_known(g, n, 0)) return LM_OK;
  int64_t rep[MAXD], sh[MAXD];
  int cnt = ops_in_ints(g, n, 1, rep, MAXD);
  if (cnt < -1) return cnt;
  if (cnt == -1) {
    for (int k = 0; k < x->ndim; k++) sh[k] = -1;
  } else {
    if (cnt != x->ndim)
      return ops_fail(g, n, "repeats has %d entries, input has %d dims", cnt, x->ndim);
    for (int k = 0; k < x->ndim; k++) {
      if (rep[k] < 0) return ops_fail(g, n, "repeats entry %d is negative", k);
      sh[k] = x->shape[k] < 0 ? -1 : x->shape[k] * rep[k];
    }
  }
  ops_set_out(g, n, 0, x->dt, x->ndim, sh);
  return LM_OK;
}

static int eval_tile(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                     int nout, char *err, size_t errlen)
{
  const lm_rt_tensor *x = &in[0];
  int64_t rep[MAXD];
  if (nin < 2 || ops_rt_ints(&in[1], rep, MAXD) != x->ndim)
    return ops_eval_fail(err, errlen, n, "repeats must have one entry per input dim");
  /* The output viewed as (r0, s0, r1, s1, ...): repeat axes have stride 0. */
  int64_t sh[2 * MAXD], st[2 * MAXD], str[MAXD];
  ops_strides(x->ndim, x->shape, str);
  for (int k = 0; k < x->ndim; k++) {
    sh[2 * k] = rep[k];
    st[2 * k] = 0;
    sh[2 * k + 1] = x->shape[k];
    st[2 * k + 1] = str[k];
  }
  ops_strided_copy(out[0].data, x->data, lm_dtype_size(x->dt), 2 * x->ndim, sh, st, 0);
  return LM_OK;
}

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
  if (in[0].dt == out[0].dt && !to_bool) return copy_eval(n, in, nin, out, nout, err, errlen);
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
  if (in[0].dt == out[0].dt) return copy_eval(n, in, nin, out, nout, err, errlen);
  for (int64_t i = 0; i < total; i++) ops_put(&out[0], i, ops_get(&in[0], i));
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

const lm_cpu_kernel lm_ops_shape[] = {
  {"Identity", infer_identity, copy_eval, false},
  {"Dropout", infer_dropout, eval_dropout, false},
  {"Concat", infer_concat, eval_concat, false},
  {"Split", infer_split, eval_split, false},
  {"Slice", infer_slice, eval_slice, false},
  {"Gather", infer_gather, eval_gather, false},
  {"Shape", infer_shape, eval_shape, true},
  {"Size", infer_size, eval_size, true},
  {"Unsqueeze", infer_unsqueeze, copy_eval, false},
  {"Squeeze", infer_squeeze, copy_eval, false},
  {"Flatten", infer_flatten, copy_eval, false},
  {"Reshape", infer_reshape, copy_eval, false},
  {"Transpose", infer_transpose, eval_transpose, false},
  {"Expand", infer_expand, eval_expand, false},
  {"Tile", infer_tile, eval_tile, false},
  {"Cast", infer_cast, eval_cast, false},
  {"CastLike", infer_castlike, eval_castlike, false},
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
  {"ConstantOfShape", infer_constant_of_shape, eval_constant_of_shape, false},
  {"Constant", infer_constant, eval_constant, false},
  {"Range", infer_range, eval_range, false},
  {NULL, NULL, NULL, false},
};
