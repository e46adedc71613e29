/* Suzuki-Abe border following with OpenCV's conventions (contour_trace.h).
 * The structure follows cvFindNextContour / icvFetchContour of OpenCV 4.6
 * for mode RETR_EXTERNAL and method CHAIN_APPROX_SIMPLE, so that start
 * points, directions and the points kept are the same, not only the
 * shapes. */
#include "contour_trace.h"

/* Chain code directions 0..7: right, up-right, up, up-left, left,
 * down-left, down, down-right (y grows downwards). */
static const int code_dx[8] = {1, 1, 0, -1, -1, -1, 0, 1};
static const int code_dy[8] = {0, -1, -1, -1, 0, 1, 1, 1};

/* The border marks OpenCV writes: 2 on a border pixel, 2 | -128 on one
 * whose right neighbour was found to be background (the "right bound"
 * the raster scan uses to tell outside from inside). */
#define NBD 2
#define NBD_RIGHT ((int8_t)(NBD | -128))

/* Follow the outer border that starts at i0 (pixel (x, y)); store the
 * points where the chain turns. */
static int64_t fetch_contour(int8_t *i0, int step, int x, int y, int32_t *pts)
{
  int deltas[16];
  int64_t n = 0;
  const int d[8] = {1, -step + 1, -step, -step - 1, -1, step - 1, step, step + 1};
  for (int k = 0; k < 8; k++) deltas[k] = deltas[k + 8] = d[k];

  int s, s_end, prev_s;
  int8_t *i1, *i3, *i4 = 0;
  s_end = s = 4; /* an outer border: the pixel on the left is background */
  do {
    s = (s - 1) & 7;
    i1 = i0 + deltas[s];
  } while (*i1 == 0 && s != s_end);

  if (s == s_end) { /* a single pixel */
    *i0 = NBD_RIGHT;
    pts[0] = x;
    pts[1] = y;
    return 1;
  }
  i3 = i0;
  prev_s = s ^ 4;
  for (;;) {
    s_end = s;
    while (s < 15) {
      i4 = i3 + deltas[++s];
      if (*i4 != 0) break;
    }
    s &= 7;
    if ((unsigned)(s - 1) < (unsigned)s_end) *i3 = NBD_RIGHT;
    else if (*i3 == 1) *i3 = NBD;
    if (s != prev_s) { /* CHAIN_APPROX_SIMPLE: only where the chain turns */
      pts[2 * n] = x;
      pts[2 * n + 1] = y;
      n++;
      prev_s = s;
    }
    x += code_dx[s];
    y += code_dy[s];
    if (i4 == i0 && i3 == i1) break;
    i3 = i4;
    s = (s + 4) & 7;
  }
  return n;
}

int ct_find_external(int8_t *img, int w, int h, int ox, int oy,
                     int32_t *pts_buf, ct_sink_fn sink, void *arg)
{
  for (int y = 1; y < h - 1; y++) {
    int8_t *row = img + (int64_t)y * w;
    int lnbd = 0; /* column of the last border met on this row */
    int prev = 0;
    for (int x = 1; x < w - 1; x++) {
      int p = row[x];
      if (p == prev) continue;
      if (prev == 0 && p == 1 && row[lnbd] <= 0) {
        /* The first pixel of an outer border that lies outside every
         * traced component (a positive mark on the left would mean the
         * scan is inside one): trace it. */
        lnbd = x;
        int64_t n = fetch_contour(row + x, w, x, y, pts_buf);
        for (int64_t k = 0; k < n; k++) {
          pts_buf[2 * k] += ox;
          pts_buf[2 * k + 1] += oy;
        }
        int st = sink(pts_buf, n, arg);
        if (st < 0) return st;
        prev = row[x];
        continue;
      }
      /* A hole border (p == 0 after a foreground pixel) is not traced in
       * RETR_EXTERNAL mode; only the last-border column moves. */
      if (p == 0 && prev >= 1 && (prev & -2)) lnbd = x - 1;
      prev = p;
      if (prev & -2) lnbd = x;
    }
  }
  return 0;
}
