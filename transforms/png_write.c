/* PNG output for Preview: encode in memory with libpng's simplified API,
 * then write through the atomic temporary-file helpers of the NIfTI code. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nifti/nifti_file.h"
#include "png_write.h"

/* Encode pixels of the given libpng format and write them to path. */
static int png_write_format(const char *path, const uint8_t *rgb, uint32_t width,
                            uint32_t height, uint32_t format, char *msg, size_t cap)
{
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = width;
  img.height = height;
  img.format = format;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&img, NULL, &size, 0, rgb, 0, NULL)) {
    snprintf(msg, cap, "PNG encoding failed: %s", img.message);
    png_image_free(&img);
    return LM_EINVAL;
  }
  void *buf = malloc(size ? size : 1);
  if (!buf) {
    snprintf(msg, cap, "out of memory for the PNG");
    return LM_ENOMEM;
  }
  if (!png_image_write_to_memory(&img, buf, &size, 0, rgb, 0, NULL)) {
    snprintf(msg, cap, "PNG encoding failed: %s", img.message);
    png_image_free(&img);
    free(buf);
    return LM_EINTERNAL;
  }
  nifti_atomic file;
  nifti_err err = {0};
  struct iovec iov = {buf, size};
  int st = nifti_atomic_begin(&file, path, &err);
  if (st >= 0) st = nifti_atomic_writev(&file, &iov, 1, &err);
  if (st >= 0) st = nifti_atomic_commit(&file, &err);
  else nifti_atomic_abort(&file);
  free(buf);
  if (st < 0) snprintf(msg, cap, "%s", err.msg);
  return st;
}

int png_write_rgb(const char *path, const uint8_t *rgb, uint32_t width, uint32_t height,
                  char *msg, size_t cap)
{
  return png_write_format(path, rgb, width, height, PNG_FORMAT_RGB, msg, cap);
}

int png_write_gray(const char *path, const uint8_t *gray, uint32_t width, uint32_t height,
                   char *msg, size_t cap)
{
  return png_write_format(path, gray, width, height, PNG_FORMAT_GRAY, msg, cap);
}
