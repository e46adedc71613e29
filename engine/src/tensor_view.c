/* Views: new tensor objects over the same storage (no data copied). */
#include <string.h>

#include "internal.h"

/* A view of t with the given geometry; metadata and trace copied. */
static int make_view(lm_tensor *t, int ndim, const int64_t *shape,
                     const int64_t *strides, int64_t offset, lm_tensor **out)
{
  lm_storage_retain(t->st);
  int st = lm_tensor_make(t->e, t->st, t->dt, ndim, shape, strides, offset, out);
  if (st < 0) return st;
  lm_tensor_copy_meta(*out, t);
  return LM_OK;
}

int lm_tensor_permute(lm_tensor *t, const int *perm, lm_tensor **out)
{
  int64_t shape[LM_MAX_DIMS], strides[LM_MAX_DIMS];
  bool seen[LM_MAX_DIMS] = {false};
  for (int i = 0; i < t->ndim; i++) {
    int p = perm ? perm[i] : -1;
    if (p < 0 || p >= t->ndim || seen[p])
      return lm_set_error(t->e, LM_EINVAL,
                          "permute: perm is not a permutation of 0..%d", t->ndim - 1);
    seen[p] = true;
    shape[i] = t->shape[p];
    strides[i] = t->strides[p];
  }
  return make_view(t, t->ndim, shape, strides, t->offset, out);
}

int lm_tensor_unsqueeze(lm_tensor *t, int axis, lm_tensor **out)
{
  if (t->ndim >= LM_MAX_DIMS)
    return lm_set_error(t->e, LM_EINVAL, "unsqueeze: tensor already has %d dims",
                        LM_MAX_DIMS);
  if (axis < 0 || axis > t->ndim)
    return lm_set_error(t->e, LM_EINVAL, "unsqueeze: axis %d out of range 0..%d",
                        axis, t->ndim);
  int64_t shape[LM_MAX_DIMS], strides[LM_MAX_DIMS];
  for (int i = 0, j = 0; i <= t->ndim; i++) {
    if (i == axis) {
      shape[i] = 1;
      /* Any stride works for a size-1 dim; this one keeps a contiguous
       * tensor contiguous. */
      strides[i] = axis < t->ndim ? t->strides[axis] * t->shape[axis] : 1;
      if (strides[i] == 0) strides[i] = 1;
    } else {
      shape[i] = t->shape[j];
      strides[i] = t->strides[j];
      j++;
    }
  }
  return make_view(t, t->ndim + 1, shape, strides, t->offset, out);
}

int lm_tensor_squeeze(lm_tensor *t, int axis, lm_tensor **out)
{
  if (axis < 0 || axis >= t->ndim)
    return lm_set_error(t->e, LM_EINVAL, "squeeze: axis %d out of range 0..%d", axis,
                        t->ndim - 1);
  if (t->shape[axis] != 1)
    return lm_set_error(t->e, LM_ESHAPE, "squeeze: dim %d has size %lld, not 1", axis,
                        (long long)t->shape[axis]);
  int64_t shape[LM_MAX_DIMS], strides[LM_MAX_DIMS];
  for (int i = 0, j = 0; i < t->ndim; i++) {
    if (i == axis) continue;
    shape[j] = t->shape[i];
    strides[j] = t->strides[i];
    j++;
  }
  return make_view(t, t->ndim - 1, shape, strides, t->offset, out);
}

int lm_tensor_narrow(lm_tensor *t, int axis, int64_t start, int64_t length,
                     lm_tensor **out)
{
  if (axis < 0 || axis >= t->ndim)
    return lm_set_error(t->e, LM_EINVAL, "narrow: axis %d out of range 0..%d", axis,
                        t->ndim - 1);
  if (start < 0 || length < 0 || start > t->shape[axis] ||
      length > t->shape[axis] - start)
    return lm_set_error(t->e, LM_EINVAL,
                        "narrow: [%lld, %lld) is outside dim %d of size %lld",
                        (long long)start, (long long)(start + length), axis,
                        (long long)t->shape[axis]);
  int64_t shape[LM_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[axis] = length;
  int64_t off = t->offset + (length > 0 ? start * t->strides[axis] : 0);
  return make_view(t, t->ndim, shape, t->strides, off, out);
}

int lm_tensor_view(lm_tensor *t, int ndim, const int64_t *shape,
                   const int64_t *strides, int64_t offset, lm_tensor **out)
{
  int64_t numel;
  int st = lm_shape_check(t->e, ndim, shape, &numel);
  if (st < 0) return st;
  if (ndim > 0 && !strides) return lm_set_error(t->e, LM_EINVAL, "view: strides is NULL");
  int64_t first = t->offset + offset;
  if (numel > 0) {
    int64_t lo = first, hi = first;
    for (int i = 0; i < ndim; i++) {
      int64_t span = (shape[i] - 1) * strides[i];
      if (span < 0) lo += span;
      else hi += span;
    }
    int64_t limit = (int64_t)(t->st->nbytes / lm_dtype_size(t->dt));
    if (lo < 0 || hi >= limit)
      return lm_set_error(t->e, LM_EINVAL,
                          "view: elements [%lld, %lld] fall outside the storage "
                          "(%lld elements)",
                          (long long)(lo - t->offset), (long long)(hi - t->offset),
                          (long long)limit);
  }
  return make_view(t, ndim, shape, strides, numel > 0 ? first : t->offset, out);
}
