/* LoadImage / SaveImage: pick the format from the file name and run that
 * format's kernel (LoadNifti, LoadNrrd, LoadNpy, and their Save ops) on the
 * same call, so there is one implementation of each format.  The kernels
 * read their options by name from the call, so these descriptors declare
 * every option the kernels read, with the same defaults. */
#include "image_file.h"
#include "lumen.h"

extern const lm_op_desc lm_op_load_nifti, lm_op_save_nifti, lm_op_load_nrrd,
    lm_op_save_nrrd, lm_op_load_npy, lm_op_save_npy;

typedef enum image_format { FMT_UNKNOWN, FMT_NIFTI, FMT_NRRD, FMT_NPY } image_format;

static image_format format_of(const char *path)
{
  static const struct { const char *ext; image_format f; } exts[] = {
    {".nii", FMT_NIFTI}, {".nii.gz", FMT_NIFTI}, {".hdr", FMT_NIFTI}, {".hdr.gz", FMT_NIFTI},
    {".img", FMT_NIFTI}, {".img.gz", FMT_NIFTI}, {".nrrd", FMT_NRRD}, {".nhdr", FMT_NRRD},
    {".npy", FMT_NPY},
  };
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
    if (image_path_ends_with(path, exts[i].ext)) return exts[i].f;
  return FMT_UNKNOWN;
}

static const char *format_name(image_format f)
{
  return f == FMT_NIFTI ? "nifti" : f == FMT_NRRD ? "nrrd" : "npy";
}

static int path_format(lm_op_ctx *ctx, image_format *f)
{
  const char *path = lm_arg_string(ctx, "path");
  if (!path || !*path) return lm_ctx_error(ctx, LM_EINVAL, "option path is required");
  *f = format_of(path);
  if (*f == FMT_UNKNOWN)
    return lm_ctx_error(ctx, LM_EUNSUPPORTED, "option path: %s: unknown file type (.nii, "
                        ".nii.gz, .hdr/.img, .nrrd, .nhdr or .npy)", path);
  return LM_OK;
}

static int load_image_check(lm_op_ctx *ctx)
{
  image_format f;
  return path_format(ctx, &f);
}

static int load_image_run(lm_op_ctx *ctx)
{
  image_format f;
  int st = path_format(ctx, &f);
  if (st < 0) return st;
  const lm_op_desc *d = f == FMT_NIFTI ? &lm_op_load_nifti : f == FMT_NRRD ? &lm_op_load_nrrd
                                                                         : &lm_op_load_npy;
  st = d->run_cpu(ctx);
  if (st >= 0) {
    lm_params *r = lm_ctx_results(ctx);
    if (r) lm_params_set_string(r, "format", format_name(f));
  }
  return st;
}

/* Options of one format given for another: an error rather than ignored
 * (those with defaults cannot be told apart from unset, and are ignored). */
static int save_image_check(lm_op_ctx *ctx)
{
  image_format f;
  int st = path_format(ctx, &f);
  if (st < 0) return st;
  static const struct { const char *opt; image_format only; } own[] = {
    {"encoding", FMT_NRRD}, {"space", FMT_NRRD}, {"descrip", FMT_NIFTI},
  };
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (f != own[i].only && lm_arg_is_set(ctx, own[i].opt))
      return lm_ctx_error(ctx, LM_EINVAL, "option %s applies to %s files only, not to %s",
                          own[i].opt, own[i].only == FMT_NRRD ? "NRRD" : "NIfTI",
                          lm_arg_string(ctx, "path"));
  if (f == FMT_NPY && lm_arg_is_set(ctx, "compress_level"))
    return lm_ctx_error(ctx, LM_EINVAL, "option compress_level: .npy files are not compressed");
  return LM_OK;
}

static int save_image_run(lm_op_ctx *ctx)
{
  image_format f;
  int st = save_image_check(ctx);
  if (st < 0) return st;
  path_format(ctx, &f);
  const lm_op_desc *d = f == FMT_NIFTI ? &lm_op_save_nifti : f == FMT_NRRD ? &lm_op_save_nrrd
                                                                         : &lm_op_save_npy;
  return d->run_cpu(ctx);
}

static const lm_arg_desc load_args[] = {
  {"path", LM_ARG_STRING, NULL,
   "file to read: .nii, .nii.gz, .hdr/.img (NIfTI), .nrrd, .nhdr (NRRD) or .npy (NumPy)"},
  {"dtype", LM_ARG_STRING, "'float32'",
   "dtype of the result: a dtype name, or 'native' (the stored type)"},
};

const lm_op_desc lm_op_load_image = {
  .name = "LoadImage",
  .alias = NULL,
  .summary = "Read an image, choosing NIfTI, NRRD or NumPy by the file name",
  .doc =
      "Runs LoadNifti (.nii, .nii.gz, .hdr, .img and their .gz forms), LoadNrrd (.nrrd, .nhdr)\n"
      "or LoadNpy (.npy) with the same options, so the result, the results table and the\n"
      "errors are that op's; the results table also gets format = 'nifti', 'nrrd' or 'npy'.\n"
      "dtype defaults to float32 for every format, as MONAI's LoadImage (LoadNpy alone keeps\n"
      "the stored type).  Other extensions are refused with LM_EUNSUPPORTED.",
  .inputs = "",
  .min_inputs = 0,
  .max_inputs = 0,
  .outputs = "img",
  .args = load_args,
  .nargs = sizeof load_args / sizeof load_args[0],
  .flags = LM_OP_SOURCE | LM_OP_IO,
  .check = load_image_check,
  .run_cpu = load_image_run,
};

static const lm_arg_desc save_args[] = {
  {"path", LM_ARG_STRING, NULL,
   "output file: .nii, .nii.gz (NIfTI), .nrrd, .nhdr (NRRD) or .npy (NumPy)"},
  {"dtype", LM_ARG_STRING, "nil", "dtype stored in the file (default: the tensor's)"},
  {"compress_level", LM_ARG_INT, "nil",
   "gzip level: NIfTI 0..12 (libdeflate, default 1), NRRD 0..9 (zlib, default 1)"},
  {"qform_code", LM_ARG_INT, "1", "NIfTI only: qform_code written"},
  {"sform_code", LM_ARG_INT, "1", "NIfTI only: sform_code written"},
  {"xyzt_units", LM_ARG_INT, "0", "NIfTI only: xyzt_units byte"},
  {"descrip", LM_ARG_STRING, "nil", "NIfTI only: header description"},
  {"encoding", LM_ARG_STRING, "nil", "NRRD only: 'gzip' (default) or 'raw'"},
  {"space", LM_ARG_STRING, "nil", "NRRD only: 'LPS' (default) or 'RAS'"},
};

const lm_op_desc lm_op_save_image = {
  .name = "SaveImage",
  .alias = NULL,
  .summary = "Write an image as NIfTI, NRRD or NumPy, chosen by the file name",
  .doc =
      "Runs SaveNifti (.nii, .nii.gz), SaveNrrd (.nrrd, .nhdr) or SaveNpy (.npy) with the same\n"
      "options.  Options of one format given for another (encoding or space for NIfTI,\n"
      "descrip for NRRD, compress_level for .npy) are errors; qform_code, sform_code and\n"
      "xyzt_units have defaults and are ignored outside NIfTI.  Returns the input image.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = save_args,
  .nargs = sizeof save_args / sizeof save_args[0],
  .flags = LM_OP_IO,
  .check = save_image_check,
  .run_cpu = save_image_run,
};
