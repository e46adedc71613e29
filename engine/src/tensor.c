/* The tensor object: creation, reference counting and getters. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void identity(double a[16])
{
  memset(a, 0, 16 * sizeof *a);
  for (int i = 0; i < 4; i++) a[i * 5] = 1.0;
}

int lm_shape_check(lm_engine *e, int ndim, const int64_t *shape, int64_t *numel)
{
  if (ndim < 0 || ndim > LM_MAX_DIMS)
    return lm_set_error(e, LM_EINVAL, "ndim %d out of range 0..%d", ndim, LM_MAX_DIMS);
  if (ndim > 0 && !shape) return lm_set_error(e, LM_EINVAL, "shape is NULL");
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return lm_set_error(e, LM_EINVAL, "shape[%d] = %lld is negative", i,
                          (long long)shape[i]);
    if (shape[i] > 0 && n > (INT64_C(1) << 58) / shape[i])
      return lm_set_error(e, LM_EINVAL, "shape too large (dim %d)", i);
    n *= shape[i];
  }
  if (numel) *numel = n;
  return LM_OK;
}

int lm_tensor_make(lm_engine *e, lm_storage *st, lm_dtype dt, int ndim,
                   const int64_t *shape, const int64_t *strides, int64_t offset,
                   lm_tensor **out)
{
  lm_tensor *t = calloc(1, sizeof *t);
  if (!t) {
    lm_storage_release(st);
    return lm_set_error(e, LM_ENOMEM, "out of memory (tensor)");
  }
  atomic_init(&t->refs, 1);
  t->e = e;
  lm_engine_ref(e);
  atomic_fetch_add(&e->live_tensors, 1);
  t->st = st;
  t->offset = offset;
  t->ndim = ndim;
  t->dt = dt;
  t->dev = st->dev;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    t->strides[i] = strides[i];
  }
  identity(t->affine);
  *out = t;
  return LM_OK;
}

static void c_strides(int ndim, const int64_t *shape, int64_t *strides)
{
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i] > 0 ? shape[i] : 1;
  }
}

static int check_dtype_device(lm_engine *e, lm_dtype dt, lm_device dev)
{
  if ((unsigned)dt >= LM_DTYPE_COUNT)
    return lm_set_error(e, LM_EDTYPE, "invalid dtype %d", (int)dt);
  if (dev.type == LM_DEVICE_CUDA) {
    char name[16];
    if (!e->cuda.api)
      return lm_set_error(e, LM_EDEVICE, "cannot create a tensor on %s: %s",
                          lm_device_format(dev, name, sizeof name), e->cuda.status);
    if (dev.index < 0 || dev.index >= e->cuda.ndevices)
      return lm_set_error(e, LM_EDEVICE,
                          "cannot create a tensor on %s: only %d CUDA device(s)",
                          lm_device_format(dev, name, sizeof name), e->cuda.ndevices);
  } else if (dev.type != LM_DEVICE_CPU) {
    return lm_set_error(e, LM_EDEVICE, "unknown device type %d", dev.type);
  }
  return LM_OK;
}

int lm_tensor_new_ordered(lm_engine *e, lm_dtype dt, int ndim, const int64_t *shape,
                          const int *order, lm_device dev, lm_tensor **out)
{
  int64_t numel;
  int st = lm_shape_check(e, ndim, shape, &numel);
  if (st < 0) return st;
  if ((st = check_dtype_device(e, dt, dev)) < 0) return st;
  int64_t strides[LM_MAX_DIMS];
  if (!order) {
    c_strides(ndim, shape, strides);
  } else {
    bool seen[LM_MAX_DIMS] = {false};
    for (int i = 0; i < ndim; i++) {
      if (order[i] < 0 || order[i] >= ndim || seen[order[i]])
        return lm_set_error(e, LM_EINVAL, "order is not a permutation of 0..%d", ndim - 1);
      seen[order[i]] = true;
    }
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
      strides[order[i]] = s;
      s *= shape[order[i]] > 0 ? shape[order[i]] : 1;
    }
  }
  lm_storage *sto;
  if ((st = lm_storage_new(e, dev, (size_t)numel * lm_dtype_size(dt), &sto)) < 0)
    return st;
  return lm_tensor_make(e, sto, dt, ndim, shape, strides, 0, out);
}

int lm_tensor_new(lm_engine *e, lm_dtype dt, int ndim, const int64_t *shape,
                  lm_device dev, lm_tensor **out)
{
  return lm_tensor_new_ordered(e, dt, ndim, shape, NULL, dev, out);
}

int lm_tensor_zeros(lm_engine *e, lm_dtype dt, int ndim, const int64_t *shape,
                    lm_device dev, lm_tensor **out)
{
  if (dev.type != LM_DEVICE_CPU) {
    /* Device memory is filled by uploading zeros. */
    lm_tensor *host;
    int st = lm_tensor_zeros(e, dt, ndim, shape, LM_CPU, &host);
    if (st < 0) return st;
    lm_tensor *t;
    if ((st = lm_tensor_new(e, dt, ndim, shape, dev, &t)) < 0) {
      lm_tensor_release(host);
      return st;
    }
    char err[256] = "";
    st = e->cuda.api->memcpy_h2d(dev.index, lm_tensor_data(t), lm_tensor_data(host),
                                 lm_tensor_nbytes(t), err, sizeof err);
    lm_tensor_release(host);
    if (st < 0) {
      lm_tensor_release(t);
      return lm_set_error(e, LM_ECUDA, "zeros on cuda:%d: %s", dev.index, err);
    }
    *out = t;
    return LM_OK;
  }
  int st = lm_tensor_new(e, dt, ndim, shape, dev, out);
  if (st < 0) return st;
  memset(lm_tensor_data(*out), 0, lm_tensor_nbytes(*out));
  return LM_OK;
}

/* The dims of t ordered slowest to fastest in memory (size-1 dims keep
 * their logical place as far as possible: a stable sort on |stride|). */
static void dims_by_stride(const lm_tensor *t, int *order)
{
  int n = t->ndim;
  for (int i = 0; i < n; i++) order[i] = i;
  for (int i = 1; i < n; i++) {
    int d = order[i], j = i;
    int64_t sd = llabs(t->strides[d]);
    while (j > 0 && llabs(t->strides[order[j - 1]]) < sd) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = d;
  }
}

int lm_tensor_new_like(const lm_tensor *like, lm_dtype dt, lm_device dev,
                       lm_tensor **out)
{
  int order[LM_MAX_DIMS];
  dims_by_stride(like, order);
  int st = lm_tensor_new_ordered(like->e, dt, like->ndim, like->shape, order, dev, out);
  if (st < 0) return st;
  lm_tensor_copy_meta(*out, like);
  return LM_OK;
}

int lm_tensor_wrap(lm_engine *e, void *data, lm_dtype dt, int ndim,
                   const int64_t *shape, const int64_t *strides, lm_device dev,
                   lm_deleter deleter, void *deleter_ctx, lm_tensor **out)
{
  int64_t numel;
  int st = lm_shape_check(e, ndim, shape, &numel);
  if (st < 0) return st;
  if ((unsigned)dt >= LM_DTYPE_COUNT)
    return lm_set_error(e, LM_EDTYPE, "invalid dtype %d", (int)dt);
  if (!data) return lm_set_error(e, LM_EINVAL, "wrap: data is NULL");
  int64_t str[LM_MAX_DIMS];
  if (strides) memcpy(str, strides, (size_t)ndim * sizeof *str);
  else c_strides(ndim, shape, str);
  /* The extent of memory the view reaches, relative to element 0. */
  int64_t lo = 0, hi = 0;
  if (numel > 0)
    for (int i = 0; i < ndim; i++) {
      int64_t span = (shape[i] - 1) * str[i];
      if (span < 0) lo += span;
      else hi += span;
    }
  size_t es = lm_dtype_size(dt);
  char *base = (char *)data + lo * (int64_t)es;
  lm_storage *s = lm_storage_wrap(e, dev, base, (size_t)(hi - lo + 1) * es,
                                  deleter, data, deleter_ctx);
  if (!s) return lm_set_error(e, LM_ENOMEM, "out of memory (storage header)");
  return lm_tensor_make(e, s, dt, ndim, shape, str, -lo, out);
}

lm_tensor *lm_tensor_retain(lm_tensor *t)
{
  if (t) atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
  return t;
}

void lm_tensor_release(lm_tensor *t)
{
  if (!t) return;
  if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
  lm_engine *e = t->e;
  lm_trace_release(t->trace);
  lm_storage_release(t->st);
  free(t);
  atomic_fetch_sub(&e->live_tensors, 1);
  lm_engine_unref(e); /* last: may destroy the engine */
}

void lm_tensor_copy_meta(lm_tensor *dst, const lm_tensor *src)
{
  memcpy(dst->affine, src->affine, sizeof dst->affine);
  memcpy(dst->layout, src->layout, sizeof dst->layout);
  lm_tensor_trace_copy(dst, src);
}

lm_engine *lm_tensor_engine(const lm_tensor *t) { return t->e; }
lm_dtype lm_tensor_dtype(const lm_tensor *t) { return t->dt; }
int lm_tensor_ndim(const lm_tensor *t) { return t->ndim; }
const int64_t *lm_tensor_shape(const lm_tensor *t) { return t->shape; }
const int64_t *lm_tensor_strides(const lm_tensor *t) { return t->strides; }
lm_device lm_tensor_device(const lm_tensor *t) { return t->dev; }

int64_t lm_tensor_numel(const lm_tensor *t)
{
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

size_t lm_tensor_nbytes(const lm_tensor *t)
{
  return (size_t)lm_tensor_numel(t) * lm_dtype_size(t->dt);
}

void *lm_tensor_data(const lm_tensor *t)
{
  return (char *)t->st->data + t->offset * (int64_t)lm_dtype_size(t->dt);
}

bool lm_tensor_is_shared(const lm_tensor *t)
{
  return atomic_load(&t->st->refs) > 1;
}

bool lm_tensor_is_contiguous(const lm_tensor *t)
{
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] == 0) return true;
    if (t->shape[i] != 1 && t->strides[i] != s) return false;
    s *= t->shape[i];
  }
  return true;
}

bool lm_tensor_is_dense(const lm_tensor *t)
{
  int order[LM_MAX_DIMS];
  dims_by_stride(t, order);
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    int d = order[i];
    if (t->shape[d] == 0) return true;
    if (t->shape[d] == 1) continue;
    if (t->strides[d] != s) return false;
    s *= t->shape[d];
  }
  return true;
}

const double *lm_tensor_affine(const lm_tensor *t) { return t->affine; }

void lm_tensor_set_affine(lm_tensor *t, const double affine[16])
{
  memcpy(t->affine, affine, sizeof t->affine);
}

const char *lm_tensor_layout(const lm_tensor *t) { return t->layout; }

void lm_tensor_set_layout(lm_tensor *t, const char *layout)
{
  if (!layout) layout = "";
  size_t n = strlen(layout);
  if (n > LM_MAX_DIMS) n = LM_MAX_DIMS;
  memcpy(t->layout, layout, n);
  t->layout[n] = '\0';
}
