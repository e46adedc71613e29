/* skimage resize along one axis (semantics.md §4.3) and nnU-Net's label
 * vote (§4.4).  The arithmetic follows scipy's ni_splines.c and
 * ni_interpolation.c step by step so the results agree to rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "resample_nnunet_kernels.h"

/* scipy's get_spline_interpolation_weights for x already reduced to the
 * offset from the first tap's successor (odd orders: x - floor(x)). */
static void spline_weights(double x, int order, double *w)
{
  if (order == 1) {
    w[0] = 1.0 - x;
  } else if (order == 3) {
    double y = x, z = 1.0 - x;
    w[0] = z * z * z / 6.0;
    w[1] = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
    w[2] = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
  }
  double t = 1.0;
  for (int i = 0; i < order; i++) t -= w[i];
  w[order] = t;
}

static int64_t clamp_index(int64_t i, int64_t n)
{
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

int nn_axis_init(nn_axis *a, int64_t n, int64_t m, int order)
{
  memset(a, 0, sizeof *a);
  a->n = n;
  a->m = m;
  a->order = order;
  a->taps = order + 1;
  a->idx = malloc((size_t)(m * a->taps) * sizeof *a->idx);
  a->w = malloc((size_t)(m * a->taps) * sizeof *a->w);
  if (!a->idx || !a->w) {
    nn_axis_free(a);
    return -1;
  }
  /* ndimage.zoom computes the zoom as n/m in double, then per output
   * ((o + 0.5) * zoom) - 0.5 (grid mode). */
  const double zoom = (double)n / (double)m;
  for (int64_t o = 0; o < m; o++) {
    double cc = (double)o;
    cc += 0.5;
    cc *= zoom;
    cc -= 0.5;
    int64_t *ix = a->idx + o * a->taps;
    double *w = a->w + o * a->taps;
    if (order == 3) {
      /* Inside the padded line the position never leaves the padding. */
      cc += (double)NN_PREPAD;
      double f = floor(cc);
      int64_t start = (int64_t)f - 1;
      spline_weights(cc - f, 3, w);
      for (int k = 0; k < 4; k++)
        ix[k] = clamp_index(start + k, n + 2 * NN_PREPAD);
    } else {
      if (cc < 0) cc = 0;
      if (cc > (double)(n - 1)) cc = (double)(n - 1);
      if (order == 0) {
        /* even orders round half up: floor(c + 0.5) */
        ix[0] = clamp_index((int64_t)floor(cc + 0.5), n);
        w[0] = 1.0;
      } else {
        double f = floor(cc);
        spline_weights(cc - f, 1, w);
        ix[0] = clamp_index((int64_t)f, n);
        ix[1] = clamp_index((int64_t)f + 1, n);
      }
    }
  }
  return 0;
}

void nn_axis_free(nn_axis *a)
{
  free(a->idx);
  free(a->w);
  a->idx = NULL;
  a->w = NULL;
}

int64_t nn_axis_scratch(const nn_axis *a)
{
  return a->order == 3 ? a->n + 2 * NN_PREPAD + 1 : 1;
}

/* The one pole of the cubic B-spline and the gain scipy applies first
 * ((1 - z)(1 - 1/z)). */
#define NN_POLE3 (-0.267949192431122706472553658494127633)

void nn_spline3_prefilter(double *c, int64_t n)
{
  if (n < 2) return;
  const double z = NN_POLE3;
  const double gain = (1.0 - z) * (1.0 - 1.0 / z);
  for (int64_t i = 0; i < n; i++) c[i] *= gain;
  /* _init_causal_reflect */
  double z_i = z;
  const double z_n = pow(z, (double)n);
  const double c0 = c[0];
  double acc = c[0] + z_n * c[n - 1];
  for (int64_t i = 1; i < n; i++) {
    acc += z_i * (c[i] + z_n * c[n - 1 - i]);
    z_i *= z;
  }
  acc *= z / (1 - z_n * z_n);
  c[0] = acc + c0;
  for (int64_t i = 1; i < n; i++) c[i] += z * c[i - 1];
  /* _init_anticausal_reflect */
  c[n - 1] *= z / (z - 1);
  for (int64_t i = n - 2; i >= 0; i--) c[i] = z * (c[i + 1] - c[i]);
}

/* The same filter down the rows of an (n x width) block, a row at a time. */
static void spline3_prefilter_rows(double *c, int64_t n, int64_t width,
                                   double *acc)
{
  if (n < 2) return;
  const double z = NN_POLE3;
  const double gain = (1.0 - z) * (1.0 - 1.0 / z);
  for (int64_t i = 0; i < n * width; i++) c[i] *= gain;
  const double z_n = pow(z, (double)n);
  double *c_first = c, *c_last = c + (n - 1) * width;
  for (int64_t j = 0; j < width; j++) acc[j] = c_first[j] + z_n * c_last[j];
  double z_i = z;
  for (int64_t i = 1; i < n; i++) {
    const double *ci = c + i * width, *cr = c + (n - 1 - i) * width;
    for (int64_t j = 0; j < width; j++) acc[j] += z_i * (ci[j] + z_n * cr[j]);
    z_i *= z;
  }
  const double scale = z / (1 - z_n * z_n);
  for (int64_t j = 0; j < width; j++) c_first[j] = acc[j] * scale + c_first[j];
  for (int64_t i = 1; i < n; i++) {
    double *ci = c + i * width;
    const double *cp = ci - width;
    for (int64_t j = 0; j < width; j++) ci[j] += z * cp[j];
  }
  const double anti = z / (z - 1);
  for (int64_t j = 0; j < width; j++) c_last[j] *= anti;
  for (int64_t i = n - 2; i >= 0; i--) {
    double *ci = c + i * width;
    const double *cn = ci + width;
    for (int64_t j = 0; j < width; j++) ci[j] = z * (cn[j] - ci[j]);
  }
}

void nn_resize_line(const nn_axis *a, const double *src, double *dst,
                    double *scratch)
{
  const double *line = src;
  if (a->order == 3) {
    const int64_t n = a->n;
    for (int k = 0; k < NN_PREPAD; k++) {
      scratch[k] = src[0];
      scratch[NN_PREPAD + n + k] = src[n - 1];
    }
    memcpy(scratch + NN_PREPAD, src, (size_t)n * sizeof *src);
    nn_spline3_prefilter(scratch, n + 2 * NN_PREPAD);
    line = scratch;
  }
  const int taps = a->taps;
  for (int64_t o = 0; o < a->m; o++) {
    const int64_t *ix = a->idx + o * taps;
    const double *w = a->w + o * taps;
    double t = 0.0;
    for (int k = 0; k < taps; k++) t += line[ix[k]] * w[k];
    dst[o] = t;
  }
}

void nn_resize_rows(const nn_axis *a, const double *src, int64_t ss,
                    double *dst, int64_t ds, int64_t width, double *scratch)
{
  const double *rows = src;
  int64_t rs = ss;
  if (a->order == 3) {
    /* Rows 0..11 and the last 12 repeat the edge rows; the prefilter's
     * initial sum needs one more row of accumulators after the block. */
    const int64_t n = a->n, np = n + 2 * NN_PREPAD;
    for (int64_t i = 0; i < np; i++) {
      int64_t s = clamp_index(i - NN_PREPAD, n);
      memcpy(scratch + i * width, src + s * ss, (size_t)width * sizeof *src);
    }
    spline3_prefilter_rows(scratch, np, width, scratch + np * width);
    rows = scratch;
    rs = width;
  }
  const int taps = a->taps;
  for (int64_t o = 0; o < a->m; o++) {
    const int64_t *ix = a->idx + o * taps;
    const double *w = a->w + o * taps;
    double *d = dst + o * ds;
    const double *r0 = rows + ix[0] * rs;
    const double w0 = w[0];
    for (int64_t j = 0; j < width; j++) d[j] = 0.0 + r0[j] * w0;
    for (int k = 1; k < taps; k++) {
      const double *rk = rows + ix[k] * rs;
      const double wk = w[k];
      for (int64_t j = 0; j < width; j++) d[j] += rk[j] * wk;
    }
  }
}

bool nn_minmax(const double *v, int64_t n, double *lo, double *hi)
{
  double a = INFINITY, b = -INFINITY;
  bool any = false;
  for (int64_t i = 0; i < n; i++) {
    double x = v[i];
    if (x != x) continue;
    any = true;
    a = x < a ? x : a;
    b = x > b ? x : b;
  }
  *lo = a;
  *hi = b;
  return any;
}
