/* What the file-format ops (LoadNifti/SaveNifti, LoadNrrd/SaveNrrd,
 * LoadNpy/SaveNpy, LoadImage/SaveImage) have in common: file-name suffixes,
 * memory-order tests, the dtype option of the loaders, the view a channel-
 * first tensor is saved from, and the "path: message" form of their errors.
 * Kept here so each format states the rule once and they cannot drift. */
#ifndef LM_IMAGE_FILE_H
#define LM_IMAGE_FILE_H
#include "lumen.h"
#include "nifti/nifti_format.h"

/* Does path end in suffix, ignoring case (".NII.GZ" is a .nii.gz)? */
bool image_path_ends_with(const char *path, const char *suffix);

/* Is t dense with dim 0 fastest (first_fastest: the order NIfTI and NRRD
 * files and Fortran-order .npy store) or with the last dim fastest (C order)?
 * Dims of size 1 may have any stride. */
bool image_tensor_dense(const lm_tensor *t, bool first_fastest);

/* A dense CPU copy of src in dtype dt, dim 0 fastest (first_fastest: file
 * order) or the last (C order): what a Save op writes when the tensor is not
 * already laid out as the file stores it.  Returns the engine's status; on
 * failure *out may hold a tensor the caller releases. */
int image_dense_copy(lm_engine *e, lm_tensor *src, lm_dtype dt, bool first_fastest,
                     lm_tensor **out);

/* Errors about a file, as "path: msg": image_file_error with a message,
 * image_file_fail with a nifti_err's code and message, image_engine_fail
 * with the engine's last message. */
int image_file_error(lm_op_ctx *ctx, int code, const char *path, const char *msg);
int image_file_fail(lm_op_ctx *ctx, const char *path, const nifti_err *e);
int image_engine_fail(lm_op_ctx *ctx, const char *path, int st);

/* The dtype option of LoadNifti and LoadNrrd: a dtype name, or 'native'
 * (*native set; the caller takes the stored type).  Unset: float32.  Errors
 * name the option. */
int image_arg_load_dtype(lm_op_ctx *ctx, lm_dtype *dt, bool *native);

/* The loaders decode half-precision results as float32 (nifti_convert has no
 * half types), then the engine's copy makes *out a `want` tensor; *out is
 * replaced (the float32 one released) or, on failure, released and NULL. */
int image_to_half(lm_op_ctx *ctx, const char *path, lm_dtype want, lm_tensor **out);

/* The tensor a Save op writes.  A channel-first image (layout "C..." and 2+
 * dims) with a single channel loses it, as MONAI's writers do.  With several
 * channels, channel_last permutes the channel to the last dim (NIfTI, as
 * MONAI's NibabelWriter); otherwise the view keeps it as dim 0 and
 * *channel_first (may be NULL) is set (NRRD's "vector" axis).  Anything
 * else is retained as it is.  Returns the engine's status. */
int image_save_view(lm_tensor *img, bool channel_last, lm_tensor **view, bool *channel_first);

#endif
