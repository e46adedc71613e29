/* SaveNifti: write a tensor as NIfTI-1 (NIfTI-2 when a dim exceeds int16),
 * sform and qform from its affine, `.nii.gz` compressed in parallel into
 * several gzip members, through a temporary file renamed into place. */
#include <stdlib.h>
#include <string.h>

#include "../image_file.h"
#include "nifti_file.h"
#include "nifti_format.h"
#include "nifti_ops.h"

/* Members of 1 MiB: small enough to spread over the threads, large enough
 * that restarting the 32 KiB deflate window every member costs < 0.1%. */
#define GZ_CHUNK ((size_t)1 << 20)
/* libdeflate's level 1 already compresses CT a little better than zlib's
 * level 1 (nibabel's default) at about twice its speed per core; level 2 saves
 * another ~1.5% for 1.8x the time (bench/ measures both sizes). */
#define GZ_DEFAULT_LEVEL 1

typedef struct save_state {
  lm_op_ctx *ctx;
  const char *path;
  nifti_par par;
  lm_tensor *view;      /* the input with the channel moved last */
  lm_tensor *ordered;   /* a copy in file order, when needed */
  void *converted;      /* voxels in the file's dtype, when needed */
  nifti_gz_members hz, dz;
} save_state;

static int err_out(save_state *s, const nifti_err *e)
{
  return image_file_fail(s->ctx, s->path, e);
}

static int engine_err(save_state *s, int st)
{
  return image_engine_fail(s->ctx, s->path, st);
}

static int save(save_state *s, lm_tensor *img)
{
  lm_op_ctx *ctx = s->ctx;
  lm_engine *e = lm_ctx_engine(ctx);
  nifti_err err = {0};
  int st;

  if (lm_tensor_device(img).type != LM_DEVICE_CPU)
    return lm_ctx_error(ctx, LM_EDEVICE,
                        "%s: the image is on a CUDA device; bring it to the host first "
                        "(img:to('cpu') or ToHost)", s->path);
  lm_dtype dt = lm_tensor_dtype(img);
  const char *dname = lm_arg_string(ctx, "dtype");
  if (dname && lm_dtype_from_name(dname, &dt) != LM_OK)
    return lm_ctx_error(ctx, LM_EINVAL, "option dtype: unknown dtype '%s'", dname);
  nifti_write_spec spec;
  memset(&spec, 0, sizeof spec);
  if ((st = nifti_datatype_of_dtype(dt, &spec.datatype, &err)) < 0) return err_out(s, &err);
  /* Channel-first tensors (layout "C...") are written channel-last, as
   * MONAI's writer does, and a single channel is dropped. */
  if ((st = image_save_view(img, true, &s->view, NULL)) < 0) return engine_err(s, st);

  int nd = lm_tensor_ndim(s->view);
  if (nd < 1 || nd > 7)
    return lm_ctx_error(ctx, LM_ESHAPE, "%s: a tensor of %d dims cannot be stored in NIfTI "
                        "(1..7 dims)", s->path, nd);
  spec.ndim = nd;
  memcpy(spec.shape, lm_tensor_shape(s->view), (size_t)nd * sizeof(int64_t));
  memcpy(spec.affine, lm_tensor_affine(s->view), sizeof spec.affine);
  spec.qform_code = (int)lm_arg_int(ctx, "qform_code");
  spec.sform_code = (int)lm_arg_int(ctx, "sform_code");
  spec.xyzt_units = (int)lm_arg_int(ctx, "xyzt_units");
  spec.descrip = lm_arg_string(ctx, "descrip");
  if (spec.qform_code < 0 || spec.qform_code > 5 || spec.sform_code < 0 || spec.sform_code > 5)
    return lm_ctx_error(ctx, LM_EINVAL, "option qform_code/sform_code: must be 0..5");
  if (spec.xyzt_units < 0 || spec.xyzt_units > 255)
    return lm_ctx_error(ctx, LM_EINVAL, "option xyzt_units: must be 0..255");
  int level = lm_arg_is_set(ctx, "compress_level") ? (int)lm_arg_int(ctx, "compress_level")
                                                   : GZ_DEFAULT_LEVEL;
  if (level < 0 || level > 12)
    return lm_ctx_error(ctx, LM_EINVAL, "option compress_level: %d is out of range 0..12", level);

  uint8_t header[NIFTI2_HDR_SIZE + 4];
  int hlen = nifti_header_build(&spec, header, &err);
  if (hlen < 0) return err_out(s, &err);

  /* The voxels, in file order and the file's dtype. */
  lm_tensor *src = s->view;
  lm_dtype sdt = lm_tensor_dtype(src);
  nifti_stype sst;
  if (!image_tensor_dense(src, true) || nifti_stype_of_dtype(sdt, &sst) != LM_OK) {
    lm_dtype copy_dt = nifti_stype_of_dtype(sdt, &sst) == LM_OK ? sdt : LM_F32;
    if ((st = image_dense_copy(e, src, copy_dt, true, &s->ordered)) < 0) return engine_err(s, st);
    src = s->ordered;
    sdt = copy_dt;
    nifti_stype_of_dtype(sdt, &sst);
  }
  int64_t numel = lm_tensor_numel(src);
  size_t nbytes = (size_t)numel * lm_dtype_size(dt);
  const void *voxels = lm_tensor_data(src);
  if (sdt != dt) {
    s->converted = malloc(nbytes ? nbytes : 1);
    if (!s->converted) return lm_ctx_error(ctx, LM_ENOMEM, "%s: out of memory", s->path);
    nifti_convert_spec cs = {sst, false, false, 1, 0, dt};
    if ((st = nifti_convert(&cs, voxels, s->converted, numel, &s->par)) < 0)
      return lm_ctx_error(ctx, st, "%s: conversion to %s failed", s->path, lm_dtype_name(dt));
    voxels = s->converted;
  }
  if (lm_ctx_cancelled(ctx)) return lm_ctx_error(ctx, LM_ECANCELED, "cancelled");

  bool gz = image_path_ends_with(s->path, ".gz");
  if (image_path_ends_with(s->path, ".hdr") || image_path_ends_with(s->path, ".img") ||
      image_path_ends_with(s->path, ".hdr.gz") || image_path_ends_with(s->path, ".img.gz"))
    return lm_ctx_error(ctx, LM_EUNSUPPORTED,
                        "%s: writing .hdr/.img pairs is not supported; use .nii or .nii.gz",
                        s->path);

  struct iovec *iov = NULL;
  int niov = 0;
  struct iovec plain[2];
  if (gz) {
    if ((st = nifti_gzip_members(header, (size_t)hlen, level, GZ_CHUNK, NULL, &s->hz, &err)) < 0)
      return err_out(s, &err);
    if ((st = nifti_gzip_members(voxels, nbytes, level, GZ_CHUNK, &s->par, &s->dz, &err)) < 0)
      return err_out(s, &err);
    niov = s->hz.count + s->dz.count;
    iov = malloc((size_t)niov * sizeof *iov);
    if (!iov) return lm_ctx_error(ctx, LM_ENOMEM, "%s: out of memory", s->path);
    int k = 0;
    for (int i = 0; i < s->hz.count; i++) iov[k++] = (struct iovec){s->hz.data[i], s->hz.size[i]};
    for (int i = 0; i < s->dz.count; i++) iov[k++] = (struct iovec){s->dz.data[i], s->dz.size[i]};
  } else {
    plain[0] = (struct iovec){header, (size_t)hlen};
    plain[1] = (struct iovec){(void *)voxels, nbytes};
    niov = 2;
  }
  if (lm_ctx_cancelled(ctx)) {
    if (iov) free(iov);
    return lm_ctx_error(ctx, LM_ECANCELED, "cancelled");
  }
  st = nifti_atomic_write(s->path, iov ? iov : plain, niov, &err);
  free(iov);
  if (st < 0) return err_out(s, &err);
  return LM_OK;
}

static int save_nifti_run(lm_op_ctx *ctx)
{
  save_state s;
  memset(&s, 0, sizeof s);
  s.ctx = ctx;
  s.par = (nifti_par){nifti_par_engine, ctx};
  s.path = lm_arg_string(ctx, "path");
  lm_tensor *img = lm_ctx_input(ctx, 0);
  int st;
  if (!s.path || !*s.path) st = lm_ctx_error(ctx, LM_EINVAL, "option path is required");
  else st = save(&s, img);
  nifti_gz_members_free(&s.hz);
  nifti_gz_members_free(&s.dz);
  free(s.converted);
  lm_tensor_release(s.ordered);
  lm_tensor_release(s.view);
  if (st < 0) return st;
  /* The image passes through, so pipelines can go on with it. */
  return lm_ctx_set_output(ctx, 0, lm_tensor_retain(img));
}

static const lm_arg_desc save_args[] = {
  {"path", LM_ARG_STRING, NULL, "output file: .nii or .nii.gz"},
  {"dtype", LM_ARG_STRING, "nil",
   "dtype stored in the file (default: the tensor's; float16/bfloat16 must be Cast first)"},
  {"compress_level", LM_ARG_INT, "nil",
   "gzip level for .nii.gz, 0..12 (libdeflate; default 1, the size of zlib's level 1)"},
  {"qform_code", LM_ARG_INT, "1", "qform_code written (MONAI writes 1)"},
  {"sform_code", LM_ARG_INT, "1", "sform_code written (MONAI writes 1)"},
  {"xyzt_units", LM_ARG_INT, "0", "xyzt_units byte (0 unknown, as nibabel; 10 = mm + s)"},
  {"descrip", LM_ARG_STRING, "nil", "header description (80 bytes at most)"},
};

const lm_op_desc lm_op_save_nifti = {
  .name = "SaveNifti",
  .alias = NULL,
  .summary = "Write a tensor as a NIfTI file (.nii or .nii.gz)",
  .doc =
      "Writes NIfTI-1 (NIfTI-2 when a dim exceeds 32767) with sform and qform both set from\n"
      "the tensor's affine, as MONAI's NibabelWriter does (qform by nibabel's set_qform: the\n"
      "nearest rotation, qfac from the determinant's sign; pixdim = the affine's column norms),\n"
      "so nibabel reads back the same affine and zooms.  A layout starting with 'C' (channel\n"
      "first) is written with the channel last, and a single channel is dropped.  Float to\n"
      "integer dtypes truncate toward zero and saturate.  .nii.gz files are compressed in\n"
      "parallel as several gzip members (each records its sizes in an 'LM' extra field so\n"
      "LoadNifti inflates them in parallel; every gzip reader reads them).  The file is\n"
      "written under a temporary name in the same folder and renamed, so a failure leaves\n"
      "nothing behind.  Returns the input image.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = save_args,
  .nargs = sizeof save_args / sizeof save_args[0],
  .flags = LM_OP_IO,
  .check = NULL,
  .run_cpu = save_nifti_run,
};
