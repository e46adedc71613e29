/* Outer contours of a binary 2-D image, exactly as OpenCV's
 * findContours(RETR_EXTERNAL, CHAIN_APPROX_SIMPLE) computes them (the
 * Suzuki-Abe border following of imgproc/src/contours.cpp).  Private to
 * transforms/. */
#ifndef LM_CONTOUR_TRACE_H
#define LM_CONTOUR_TRACE_H
#include <stdint.h>

/* Called for each contour, in raster order of the start points (top-most
 * row, then left-most): n points (x, y) in pts[2*n].  Return < 0 to stop. */
typedef int (*ct_sink_fn)(const int32_t *pts, int64_t n, void *arg);

/* img: w*h bytes, 1 = foreground, 0 = background, whose outermost rows and
 * columns are all 0 (the frame OpenCV adds with copyMakeBorder); the
 * values are overwritten with border marks.  Points are reported in img's
 * coordinates plus (ox, oy).  pts_buf is scratch for up to 2*(w*h + 1)
 * int32.  Returns 0 or what the sink returned. */
int ct_find_external(int8_t *img, int w, int h, int ox, int oy,
                     int32_t *pts_buf, ct_sink_fn sink, void *arg);

#endif
