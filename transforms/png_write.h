/* Writing 8-bit RGB and grayscale PNG files (libpng's simplified API,
 * which keeps its setjmp/longjmp error handling inside libpng). */
#ifndef LM_PNG_WRITE_H
#define LM_PNG_WRITE_H
#include <stddef.h>
#include <stdint.h>

/* Write width x height RGB pixels (rows top to bottom, 3 bytes a pixel) to
 * path, under a temporary name renamed into place.  LM_OK or an LM_E*
 * status with the reason in msg (cap bytes). */
int png_write_rgb(const char *path, const uint8_t *rgb, uint32_t width, uint32_t height,
                  char *msg, size_t cap);
/* The same for 8-bit grayscale pixels (1 byte a pixel). */
int png_write_gray(const char *path, const uint8_t *gray, uint32_t width, uint32_t height,
                   char *msg, size_t cap);

#endif
