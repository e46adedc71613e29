/* LoadNpy / SaveNpy: NumPy .npy arrays (centre lists such as LUNA16's
 * _bboxes.npy, patches, probability maps).  An array in Fortran order becomes
 * a tensor with dim 0 fastest (no transposing copy), and a tensor in either
 * dense order is written as it lies in memory; only other strides are
 * copied.  Values are converted as LoadNifti converts them (nifti_convert:
 * floats to integers truncate and saturate). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_file.h"
#include "nifti/nifti_file.h"
#include "nifti/nifti_format.h"
#include "nifti/nifti_ops.h"
#include "npy_format.h"

/* Storage type of the file's values for nifti_convert. */
static bool stype_of(const npy_header *h, nifti_stype *st)
{
  if (h->kind == NPY_U64) {
    *st = NIFTI_S_U64;
    return true;
  }
  return nifti_stype_of_dtype(h->dt, st) == LM_OK; /* not float16 */
}

typedef struct load_state {
  lm_op_ctx *ctx;
  const char *path;
  nifti_par par;
  int fd;
  uint8_t *head;
  npy_header h;
  lm_tensor *raw, *out;
} load_state;

static int load(load_state *s, const char *dname)
{
  lm_op_ctx *ctx = s->ctx;
  lm_engine *e = lm_ctx_engine(ctx);
  nifti_err err = {0};
  char msg[256];
  uint64_t size;
  int st;
  if ((st = nifti_open_read(s->path, &s->fd, &size, &err)) < 0)
    return image_file_error(ctx, st, s->path, err.msg);
  uint8_t pre[NPY_PREFIX] = {0};
  size_t n = size < NPY_PREFIX ? (size_t)size : NPY_PREFIX;
  if ((st = nifti_pread_exact(s->fd, 0, pre, n, &err)) < 0) return image_file_error(ctx, st, s->path, err.msg);
  size_t total;
  if ((st = npy_header_size(pre, n, &total, msg, sizeof msg)) < 0) return image_file_error(ctx, st, s->path, msg);
  if (total > size)
    return lm_ctx_error(ctx, LM_EFORMAT, "%s: truncated header (%llu of %zu bytes)", s->path,
                        (unsigned long long)size, total);
  if (!(s->head = malloc(total))) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  if ((st = nifti_pread_exact(s->fd, 0, s->head, total, &err)) < 0)
    return image_file_error(ctx, st, s->path, err.msg);
  npy_header *h = &s->h;
  if ((st = npy_header_parse(s->head, total, h, msg, sizeof msg)) < 0)
    return image_file_error(ctx, st, s->path, msg);
  if (size - total < h->data_bytes)
    return lm_ctx_error(ctx, LM_EFORMAT, "%s: truncated data: %llu bytes after the header, "
                        "%llu needed for %lld values of %zu bytes", s->path,
                        (unsigned long long)(size - total), (unsigned long long)h->data_bytes,
                        (long long)h->numel, h->elem_size);

  lm_dtype want = h->dt;
  if (dname && strcmp(dname, "native") != 0 && lm_dtype_from_name(dname, &want) != LM_OK)
    return lm_ctx_error(ctx, LM_EINVAL, "option dtype: unknown dtype '%s' (a dtype name or "
                        "'native')", dname);
  bool native = !dname || strcmp(dname, "native") == 0;
  if (native && h->kind == NPY_U64)
    return lm_ctx_error(ctx, LM_EDTYPE, "%s: field 'descr': uint64 ('%s') has no lumen dtype; "
                        "pass dtype= (e.g. 'int64' or 'float64') to convert", s->path, h->descr);

  /* Dims in the file's memory order: C (last fastest) or Fortran (first). */
  int order[LM_MAX_DIMS];
  for (int i = 0; i < h->ndim; i++) order[i] = h->fortran_order ? h->ndim - 1 - i : i;
  bool swap = nifti_file_needs_swap(h->big_endian) && h->elem_size > 1;
  nifti_stype sst;
  bool direct = h->kind != NPY_U64 && want == h->dt;
  bool convertible = stype_of(h, &sst) && want != LM_F16 && want != LM_BF16;
  if (!direct && !convertible && h->kind == NPY_U64)
    return lm_ctx_error(ctx, LM_EDTYPE, "%s: uint64 converts to integer, float32 or float64 "
                        "dtypes only, not %s", s->path, lm_dtype_name(want));

  if ((st = lm_tensor_new_ordered(e, want, h->ndim, h->shape, order, LM_CPU, &s->out)) < 0)
    return image_engine_fail(ctx, s->path, st);
  lm_tensor *dst = s->out;
  if (!direct) {
    /* The stored values first, then one conversion. */
    if ((st = lm_tensor_new_ordered(e, h->dt, h->ndim, h->shape, order, LM_CPU, &s->raw)) < 0)
      return image_engine_fail(ctx, s->path, st);
    dst = s->raw;
  }
  if ((st = nifti_pread_exact(s->fd, total, lm_tensor_data(dst), (size_t)h->data_bytes, &err)) < 0)
    return image_file_error(ctx, st, s->path, err.msg);
  if (direct) {
    if (swap) nifti_swap_inplace(lm_tensor_data(dst), h->elem_size, h->numel, &s->par);
    return LM_OK;
  }
  if (convertible) {
    nifti_convert_spec cs = {sst, swap, false, 1, 0, want};
    st = nifti_convert(&cs, lm_tensor_data(s->raw), lm_tensor_data(s->out), h->numel, &s->par);
  } else {
    /* float16 storage or a half-precision result: the engine's copy. */
    if (swap) nifti_swap_inplace(lm_tensor_data(s->raw), h->elem_size, h->numel, &s->par);
    st = lm_tensor_copy(s->out, s->raw);
  }
  if (st < 0)
    return lm_ctx_error(ctx, st, "%s: conversion from '%s' to %s failed", s->path, h->descr,
                        lm_dtype_name(want));
  return LM_OK;
}

static int load_npy_run(lm_op_ctx *ctx)
{
  load_state s;
  memset(&s, 0, sizeof s);
  s.ctx = ctx;
  s.fd = -1;
  s.par = (nifti_par){nifti_par_engine, ctx};
  s.path = lm_arg_string(ctx, "path");
  int st;
  if (!s.path || !*s.path) st = lm_ctx_error(ctx, LM_EINVAL, "option path is required");
  else st = load(&s, lm_arg_string(ctx, "dtype"));
  if (s.fd >= 0) close(s.fd);
  free(s.head);
  lm_tensor_release(s.raw);
  if (st < 0) {
    lm_tensor_release(s.out);
    return st;
  }
  lm_params *r = lm_ctx_results(ctx);
  if (r) {
    double shape[LM_MAX_DIMS];
    for (int i = 0; i < s.h.ndim; i++) shape[i] = (double)s.h.shape[i];
    char version[8];
    snprintf(version, sizeof version, "%d.%d", s.h.major, s.h.minor);
    lm_params_set_string(r, "descr", s.h.descr);
    lm_params_set_bool(r, "fortran_order", s.h.fortran_order);
    lm_params_set_numbers(r, "shape", shape, s.h.ndim);
    lm_params_set_string(r, "format_version", version);
  }
  return lm_ctx_set_output(ctx, 0, s.out);
}

static int save_npy_run(lm_op_ctx *ctx)
{
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *img = lm_ctx_input(ctx, 0), *copy = NULL;
  const char *path = lm_arg_string(ctx, "path");
  if (!path || !*path) return lm_ctx_error(ctx, LM_EINVAL, "option path is required");
  if (lm_tensor_device(img).type != LM_DEVICE_CPU)
    return lm_ctx_error(ctx, LM_EDEVICE, "%s: the tensor is on a CUDA device; bring it to the "
                        "host first (img:to('cpu') or ToHost)", path);
  lm_dtype dt = lm_tensor_dtype(img);
  const char *dname = lm_arg_string(ctx, "dtype");
  if (dname && lm_dtype_from_name(dname, &dt) != LM_OK)
    return lm_ctx_error(ctx, LM_EINVAL, "option dtype: unknown dtype '%s'", dname);
  int nd = lm_tensor_ndim(img);
  const int64_t *shape = lm_tensor_shape(img);
  char msg[256];
  uint8_t *header = NULL;
  size_t hlen;
  int st;
  bool fortran = !image_tensor_dense(img, false) && image_tensor_dense(img, true);
  if ((st = npy_header_build(dt, nd, shape, fortran, &header, &hlen, msg, sizeof msg)) < 0)
    return image_file_error(ctx, st, path, msg);
  lm_tensor *src = img;
  if (dt != lm_tensor_dtype(img) || (!fortran && !image_tensor_dense(img, false))) {
    if ((st = image_dense_copy(e, img, dt, fortran, &copy)) < 0) {
      free(header);
      lm_tensor_release(copy);
      return image_engine_fail(ctx, path, st);
    }
    src = copy;
  }
  nifti_err err = {0};
  struct iovec iov[2] = {{header, hlen}, {lm_tensor_data(src), lm_tensor_nbytes(src)}};
  st = nifti_atomic_write(path, iov, 2, &err);
  free(header);
  lm_tensor_release(copy);
  if (st < 0) return image_file_error(ctx, st, path, err.msg);
  return lm_ctx_set_output(ctx, 0, lm_tensor_retain(img));
}

static const lm_arg_desc load_args[] = {
  {"path", LM_ARG_STRING, NULL, "file to read (.npy, format 1.0, 2.0 or 3.0)"},
  {"dtype", LM_ARG_STRING, "'native'",
   "dtype of the result: 'native' (the stored type; bool as uint8) or a dtype name"},
};

const lm_op_desc lm_op_load_npy = {
  .name = "LoadNpy",
  .alias = NULL,
  .summary = "Read a NumPy .npy array into a tensor",
  .doc =
      "Reads .npy format versions 1.0, 2.0 and 3.0: bool, int8..int64, uint8..uint32,\n"
      "float16, float32 and float64 in either byte order ('<', '>', '|'), 0 to 8 dims, C or\n"
      "Fortran order.  A Fortran-order array becomes a tensor whose dim 0 is fastest in\n"
      "memory (the same logical indices, no transposing copy).  bool reads as uint8 (0/1);\n"
      "uint64 needs a dtype= to convert to.  Object arrays (pickles), structured, complex,\n"
      "string and datetime dtypes are refused (LM_EDTYPE).  The tensor has an identity affine\n"
      "and an empty layout (a .npy has no geometry).  Centre lists such as LUNA16's\n"
      "_bboxes.npy (float64, N x 4) load as they are: read them with t:values() or t:get{i, j}.\n"
      "Scalar results: descr, fortran_order, shape, format_version.",
  .inputs = "",
  .min_inputs = 0,
  .max_inputs = 0,
  .outputs = "array",
  .args = load_args,
  .nargs = sizeof load_args / sizeof load_args[0],
  .flags = LM_OP_SOURCE | LM_OP_IO,
  .check = NULL,
  .run_cpu = load_npy_run,
};

static const lm_arg_desc save_args[] = {
  {"path", LM_ARG_STRING, NULL, "output file (.npy)"},
  {"dtype", LM_ARG_STRING, "nil",
   "dtype stored (default: the tensor's; bfloat16 has no NumPy dtype)"},
};

const lm_op_desc lm_op_save_npy = {
  .name = "SaveNpy",
  .alias = NULL,
  .summary = "Write a tensor as a NumPy .npy array",
  .doc =
      "Writes format 1.0 (little-endian, header padded to 64 bytes, as numpy.save).  A tensor\n"
      "stored with its first dim fastest (as LoadNifti returns volumes) is written with\n"
      "fortran_order True and no copy; other strides are copied to C order.  numpy.load gives\n"
      "an array with the tensor's shape and values (arr[i, j, k] = t:get{i, j, k}).  The\n"
      "file is written under a temporary name and renamed.  Returns the input tensor.",
  .inputs = "array",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "array",
  .args = save_args,
  .nargs = sizeof save_args / sizeof save_args[0],
  .flags = LM_OP_IO,
  .check = NULL,
  .run_cpu = save_npy_run,
};
