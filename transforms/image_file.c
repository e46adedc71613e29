/* Shared by the file-format ops; see image_file.h. */
#include <string.h>
#include <strings.h>

#include "image_file.h"

bool image_path_ends_with(const char *path, const char *suffix)
{
  size_t n = strlen(path), k = strlen(suffix);
  return n >= k && strcasecmp(path + n - k, suffix) == 0;
}

bool image_tensor_dense(const lm_tensor *t, bool first_fastest)
{
  int nd = lm_tensor_ndim(t);
  const int64_t *sh = lm_tensor_shape(t), *str = lm_tensor_strides(t);
  int64_t expect = 1;
  for (int k = 0; k < nd; k++) {
    int i = first_fastest ? k : nd - 1 - k;
    if (sh[i] != 1 && str[i] != expect) return false;
    expect *= sh[i];
  }
  return true;
}

int image_dense_copy(lm_engine *e, lm_tensor *src, lm_dtype dt, bool first_fastest,
                     lm_tensor **out)
{
  int nd = lm_tensor_ndim(src);
  int order[LM_MAX_DIMS]; /* slowest dim first */
  for (int i = 0; i < nd; i++) order[i] = first_fastest ? nd - 1 - i : i;
  int st = lm_tensor_new_ordered(e, dt, nd, lm_tensor_shape(src), order, LM_CPU, out);
  if (st >= 0) st = lm_tensor_copy(*out, src);
  return st;
}

int image_file_error(lm_op_ctx *ctx, int code, const char *path, const char *msg)
{
  return lm_ctx_error(ctx, code, "%s: %s", path, msg);
}

int image_file_fail(lm_op_ctx *ctx, const char *path, const nifti_err *e)
{
  return image_file_error(ctx, e->code, path, e->msg);
}

int image_engine_fail(lm_op_ctx *ctx, const char *path, int st)
{
  return image_file_error(ctx, st, path, lm_errmsg(lm_ctx_engine(ctx)));
}

int image_arg_load_dtype(lm_op_ctx *ctx, lm_dtype *dt, bool *native)
{
  const char *name = lm_arg_string(ctx, "dtype");
  *native = false;
  *dt = LM_F32;
  if (!name) return LM_OK;
  if (strcmp(name, "native") == 0) {
    *native = true;
    return LM_OK;
  }
  if (lm_dtype_from_name(name, dt) != LM_OK)
    return lm_ctx_error(ctx, LM_EINVAL,
                        "option dtype: unknown dtype '%s' (a dtype name or 'native')", name);
  return LM_OK;
}

int image_to_half(lm_op_ctx *ctx, const char *path, lm_dtype want, lm_tensor **out)
{
  lm_tensor *half = NULL;
  int st = lm_tensor_new_like(*out, want, LM_CPU, &half);
  if (st >= 0) st = lm_tensor_copy(half, *out);
  lm_tensor_release(*out);
  *out = NULL;
  if (st < 0) {
    lm_tensor_release(half);
    return lm_ctx_error(ctx, st, "%s: conversion to %s failed", path, lm_dtype_name(want));
  }
  *out = half;
  return LM_OK;
}

int image_save_view(lm_tensor *img, bool channel_last, lm_tensor **view, bool *channel_first)
{
  int nd = lm_tensor_ndim(img);
  if (channel_first) *channel_first = false;
  if (lm_tensor_layout(img)[0] != 'C' || nd < 2) {
    *view = lm_tensor_retain(img);
    return LM_OK;
  }
  if (lm_tensor_shape(img)[0] == 1) return lm_tensor_squeeze(img, 0, view);
  if (!channel_last) {
    *view = lm_tensor_retain(img);
    if (channel_first) *channel_first = true;
    return LM_OK;
  }
  int perm[LM_MAX_DIMS];
  for (int i = 0; i < nd - 1; i++) perm[i] = i + 1;
  perm[nd - 1] = 0;
  return lm_tensor_permute(img, perm, view);
}
