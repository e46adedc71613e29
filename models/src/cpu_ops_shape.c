/* Shape and data-movement ops: Concat, Split, Slice, Shape, Size,
 * Unsqueeze, Squeeze, Flatten, Reshape, Transpose, Expand, Tile, Identity,
 * Dropout.
 *
 * They move elements of any dtype by element size.  infer reads constant
 * inputs (shapes, axes, starts/ends, repeats) where the output shape
 * depends on them; opset differences (attributes that became inputs) are
 * told apart by what the node carries. */
#include "cpu_ops_internal.h"

#include <string.h>

#define MAXD LM_MAX_DIMS

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
  const lm_gvalue *tm = ops_in(g, n, 2);   /* training_mode (opset 12+) */
  if (tm && tm->data && tm->dt == LM_U8 && lm_gvalue_numel(tm) == 1 && *(const uint8_t *)tm->data)
    return ops_fail(g, n, "input training_mode is true (inference only)");
  int st = ops_infer_same(g, n);
  const lm_gvalue *x = ops_in(g, n, 0);
  if (!st && n->nout > 1 && x && x->dt_known) ops_set_out(g, n, 1, LM_U8, x->ndim, x->shape);
  return st;
}

static int eval_dropout(const lm_gnode *n, const lm_rt_tensor *in, int nin, lm_rt_tensor *out,
                        int nout, char *err, size_t errlen)
{
  int st = ops_eval_copy(n, in, nin, out, nout, err, errlen);
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
    if (in[i].ndim != out[0].ndim) return ops_eval_fail(err, errlen, n, "input %d has another rank", i);
    for (int k = 0; k < in[i].ndim; k++)
      if (k != axis && in[i].shape[k] != out[0].shape[k])
        return ops_eval_fail(err, errlen, n, "input %d differs from the output off the axis", i);
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
    if (pos + orow > irow || out[i].ndim != in[0].ndim ||
        ops_rt_numel(&out[i]) != outer * orow)
      return ops_eval_fail(err, errlen, n, "outputs do not fit the input");
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
  if (!ops_rt_same_numel(x, &out[0])) return ops_eval_fail(err, errlen, n, "output size differs");
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
  if (!ops_rt_bcast_ok(&out[0], &in[0]))
    return ops_eval_fail(err, errlen, n, "input does not broadcast to the output");
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
    if (out[0].ndim != x->ndim || out[0].shape[k] != x->shape[k] * rep[k])
      return ops_eval_fail(err, errlen, n, "output extent differs from input x repeats");
    sh[2 * k] = rep[k];
    st[2 * k] = 0;
    sh[2 * k + 1] = x->shape[k];
    st[2 * k + 1] = str[k];
  }
  ops_strided_copy(out[0].data, x->data, lm_dtype_size(x->dt), 2 * x->ndim, sh, st, 0);
  return LM_OK;
}

const lm_cpu_kernel lm_ops_shape[] = {
  {"Identity", infer_identity, ops_eval_copy, false},
  {"Dropout", infer_dropout, eval_dropout, false},
  {"Concat", infer_concat, eval_concat, false},
  {"Split", infer_split, eval_split, false},
  {"Slice", infer_slice, eval_slice, false},
  {"Shape", infer_shape, eval_shape, true},
  {"Size", infer_size, eval_size, true},
  {"Unsqueeze", infer_unsqueeze, ops_eval_copy, false},
  {"Squeeze", infer_squeeze, ops_eval_copy, false},
  {"Flatten", infer_flatten, ops_eval_copy, false},
  {"Reshape", infer_reshape, ops_eval_copy, false},
  {"Transpose", infer_transpose, eval_transpose, false},
  {"Expand", infer_expand, eval_expand, false},
  {"Tile", infer_tile, eval_tile, false},
  {NULL, NULL, NULL, false},
};
