/* Polygon sets of the AIAA annotation endpoints (mask2polygon, fixpolygon):
 * slices of polygons of integer [x, y] vertices, their JSON form, and their
 * rasterisation.  Private to transforms/.
 *
 * Coordinates follow what AIAA's clients exchange: on a slice seen as a
 * numpy array a[row, col] of the tensor's logical index (a volume's slice
 * t[:, :, k], so row = i, col = j), a vertex is [x, y] = [col, row]
 * (OpenCV's convention on that array; the MITK client reads x as its ITK
 * index[1]). */
#ifndef LM_POLYGON_H
#define LM_POLYGON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_text.h"

typedef struct pg_poly {
  int64_t n;      /* vertices */
  int64_t *xy;    /* 2n values: x0, y0, x1, y1, ... */
} pg_poly;

typedef struct pg_slice {
  int64_t n;      /* polygons */
  pg_poly *p;
} pg_slice;

typedef struct pg_set {
  int64_t n;      /* slices */
  pg_slice *s;
} pg_set;

void pg_set_free(pg_set *set);

/* Parse JSON text: depth 3 ([[[x,y],...],...], the polygons of one slice)
 * when per_slice is false, depth 4 (a list of such lists, one per slice)
 * when true.  Coordinates must be finite numbers; they are rounded to the
 * nearest integer.  An empty polygon is an error.  On error returns false
 * with a message (naming the slice, polygon and vertex) in err. */
bool pg_parse(const char *json, bool per_slice, pg_set *out, char *err,
              size_t errlen);

/* Append the JSON form of one slice ([[[x,y],...],...]) to b. */
void pg_emit_slice(jt_buf *b, const pg_slice *s);
/* The whole set: per_slice = a list of slices, else slice 0's polygons. */
void pg_emit(jt_buf *b, const pg_set *set, bool per_slice);

/* Set to 1 the pixels of one slice covered by its polygons (their union):
 * the pixels whose centre (x, y) lies inside a polygon by the even-odd
 * rule, plus the pixels of every edge drawn as an 8-connected line (one
 * pixel per step along the major axis, the other coordinate rounded to
 * nearest, halves up), so a one-vertex polygon is its pixel and a
 * two-vertex one a line.
 * Pixel (x, y) is mask[y * row_stride + x * col_stride]; rows < h, cols <
 * w; what falls outside is clipped.  Returns false when out of memory. */
bool pg_fill(const pg_slice *s, uint8_t *mask, int64_t w, int64_t h,
             int64_t row_stride, int64_t col_stride);

#endif
