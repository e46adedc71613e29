/* LoadPng / SavePng: grayscale PNG images as 2-D tensors, for AIAA's 2-D
 * fixpolygon, whose clients send a PNG slice and expect the mask back as a
 * PNG.  The tensor is the image as numpy, PIL and OpenCV hold it: dim 0 the
 * row (top to bottom), dim 1 the column, so polygon vertices [x, y] of
 * MaskToPolygon / FixPolygon are PNG pixel coordinates. */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_file.h"
#include "png_write.h"

static int load_png_run(lm_op_ctx *ctx)
{
  const char *path = lm_arg_string(ctx, "path");
  if (!path || !*path) return lm_ctx_error(ctx, LM_EINVAL, "option 'path' is required");
  FILE *f = fopen(path, "rb");
  if (!f)
    return image_file_error(ctx, errno == ENOENT ? LM_ENOENT : LM_EIO, path, strerror(errno));
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_stdio(&img, f)) {
    char msg[128];
    snprintf(msg, sizeof msg, "not a readable PNG: %s", img.message);
    png_image_free(&img);
    fclose(f);
    return image_file_error(ctx, LM_EFORMAT, path, msg);
  }
  /* 16-bit files stay 16-bit (libpng's linear form, the stored values);
   * everything else becomes 8-bit gray (colour through libpng's sRGB
   * luminance). */
  bool wide = (img.format & PNG_FORMAT_FLAG_LINEAR) != 0;
  img.format = wide ? PNG_FORMAT_LINEAR_Y : PNG_FORMAT_GRAY;
  int64_t shape[2] = {img.height, img.width};
  lm_tensor *out = NULL;
  int st = lm_tensor_new(lm_ctx_engine(ctx), wide ? LM_U16 : LM_U8, 2, shape, LM_CPU, &out);
  if (st < 0) {
    png_image_free(&img);
    fclose(f);
    return image_engine_fail(ctx, path, st);
  }
  bool ok = png_image_finish_read(&img, NULL, lm_tensor_data(out), 0, NULL);
  fclose(f);
  if (!ok) {
    char msg[128];
    snprintf(msg, sizeof msg, "PNG decoding failed: %s", img.message);
    png_image_free(&img);
    lm_tensor_release(out);
    return image_file_error(ctx, LM_EFORMAT, path, msg);
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static int save_png_run(lm_op_ctx *ctx)
{
  lm_tensor *t = lm_ctx_input(ctx, 0), *dense = NULL;
  const char *path = lm_arg_string(ctx, "path");
  if (!path || !*path) return lm_ctx_error(ctx, LM_EINVAL, "option 'path' is required");
  if (!lm_device_equal(lm_tensor_device(t), LM_CPU))
    return image_file_error(ctx, LM_EDEVICE, path, "img is on a CUDA device; call ToHost first");
  int nd = lm_tensor_ndim(t);
  const int64_t *sh = lm_tensor_shape(t);
  if (!(nd == 2 || (nd == 3 && sh[0] == 1)))
    return image_file_error(ctx, LM_ESHAPE, path, "SavePng writes a 2-D (rows, columns) "
                            "or (1, rows, columns) tensor");
  int64_t h = sh[nd - 2], w = sh[nd - 1];
  if (h < 1 || w < 1 || h > 1000000 || w > 1000000)
    return image_file_error(ctx, LM_ESHAPE, path, "a PNG needs 1..1000000 rows and columns");
  /* C order uint8: row after row, values converted as Cast converts. */
  int st = image_dense_copy(lm_ctx_engine(ctx), t, LM_U8, false, &dense);
  if (st < 0) {
    lm_tensor_release(dense);
    return image_engine_fail(ctx, path, st);
  }
  char msg[256];
  st = png_write_gray(path, lm_tensor_data(dense), (uint32_t)w, (uint32_t)h, msg, sizeof msg);
  lm_tensor_release(dense);
  if (st < 0) return image_file_error(ctx, st, path, msg);
  return lm_ctx_set_output(ctx, 0, lm_tensor_retain(t));
}

static const lm_arg_desc load_png_args[] = {
  {"path", LM_ARG_STRING, NULL, "file to read (.png)"},
};

static const lm_arg_desc save_png_args[] = {
  {"path", LM_ARG_STRING, NULL, "output file (.png)"},
};

const lm_op_desc lm_op_load_png = {
  .name = "LoadPng",
  .alias = NULL,
  .summary = "Read a PNG as a 2-D grayscale tensor (rows, columns)",
  .doc =
    "The image as numpy/PIL/OpenCV hold it: shape (height, width), dim 0 the "
    "row from the top, dim 1 the column, so [x, y] pixel coordinates (and "
    "MaskToPolygon / FixPolygon vertices) are [column, row]. 8-bit files "
    "give uint8; 16-bit files give uint16 with the stored values. Colour "
    "and palette images are converted to gray by libpng (sRGB luminance), "
    "an alpha channel composited away by libpng. Identity affine, empty "
    "layout (a PNG has no geometry). A missing or malformed file: an error naming it.",
  .inputs = "",
  .min_inputs = 0,
  .max_inputs = 0,
  .outputs = "img",
  .args = load_png_args,
  .nargs = (int)(sizeof load_png_args / sizeof load_png_args[0]),
  .flags = LM_OP_SOURCE | LM_OP_IO,
  .check = NULL,
  .run_cpu = load_png_run,
  .run_cuda = NULL,
};

const lm_op_desc lm_op_save_png = {
  .name = "SavePng",
  .alias = NULL,
  .summary = "Write a 2-D tensor (rows, columns) as an 8-bit grayscale PNG",
  .doc =
    "img is (height, width) or (1, height, width), dim 0 the row from the "
    "top (LoadPng's layout); values are converted to uint8 as Cast converts "
    "(truncation toward zero, saturation at 0 and 255), so a 0/1 mask is "
    "written as 0/1 (AIAA's fixpolygon mask). Written under a temporary "
    "name and renamed. Returns img.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = save_png_args,
  .nargs = (int)(sizeof save_png_args / sizeof save_png_args[0]),
  .flags = LM_OP_IO,
  .check = NULL,
  .run_cpu = save_png_run,
  .run_cuda = NULL,
};
