/* Polygon sets: JSON in and out, rasterisation (polygon.h). */
#include "polygon.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

void pg_set_free(pg_set *set)
{
  for (int64_t s = 0; s < set->n; s++) {
    for (int64_t p = 0; p < set->s[s].n; p++) free(set->s[s].p[p].xy);
    free(set->s[s].p);
  }
  free(set->s);
  memset(set, 0, sizeof *set);
}

/* Where an error is: "slice 3, polygon 1, vertex 7" (0-based, as the
 * indices AIAA sends), as far as known. */
static void where(char *buf, size_t len, bool per_slice, int64_t s, int64_t p,
                  int64_t v)
{
  int n = 0;
  buf[0] = 0;
  if (per_slice && s >= 0) n = snprintf(buf, len, "slice %lld", (long long)s);
  if (p >= 0 && n >= 0 && (size_t)n < len)
    n += snprintf(buf + n, len - (size_t)n, "%spolygon %lld", n ? ", " : "",
                  (long long)p);
  if (v >= 0 && n >= 0 && (size_t)n < len)
    snprintf(buf + n, len - (size_t)n, ", vertex %lld", (long long)v);
}

static bool parse_slice(const cJSON *j, pg_slice *out, bool per_slice,
                        int64_t si, char *err, size_t errlen)
{
  char at[96];
  if (!cJSON_IsArray(j)) {
    where(at, sizeof at, per_slice, si, -1, -1);
    snprintf(err, errlen, "%s%sexpected a list of polygons", at, *at ? ": " : "");
    return false;
  }
  out->n = cJSON_GetArraySize(j);
  out->p = calloc((size_t)(out->n ? out->n : 1), sizeof *out->p);
  if (!out->p) {
    out->n = 0;
    snprintf(err, errlen, "out of memory");
    return false;
  }
  int64_t pi = 0;
  for (const cJSON *poly = j->child; poly; poly = poly->next, pi++) {
    pg_poly *pp = &out->p[pi];
    int64_t nv = cJSON_IsArray(poly) ? cJSON_GetArraySize(poly) : 0;
    if (nv == 0) {
      where(at, sizeof at, per_slice, si, pi, -1);
      snprintf(err, errlen, "%s: expected a non-empty list of [x, y] "
               "vertices", at);
      return false;
    }
    pp->xy = malloc(sizeof *pp->xy * (size_t)(2 * nv));
    if (!pp->xy) {
      snprintf(err, errlen, "out of memory");
      return false;
    }
    pp->n = nv;
    int64_t vi = 0;
    for (const cJSON *v = poly->child; v; v = v->next, vi++) {
      const cJSON *x = cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2 ? v->child : NULL;
      const cJSON *y = x ? x->next : NULL;
      if (!x || !cJSON_IsNumber(x) || !cJSON_IsNumber(y) ||
          !isfinite(x->valuedouble) || !isfinite(y->valuedouble) ||
          fabs(x->valuedouble) > 1e8 || fabs(y->valuedouble) > 1e8) {
        where(at, sizeof at, per_slice, si, pi, vi);
        snprintf(err, errlen, "%s: expected [x, y] with two numbers of "
                 "magnitude at most 1e8", at);
        return false;
      }
      pp->xy[2 * vi] = (int64_t)nearbyint(x->valuedouble);
      pp->xy[2 * vi + 1] = (int64_t)nearbyint(y->valuedouble);
    }
  }
  return true;
}

bool pg_parse(const char *json, bool per_slice, pg_set *out, char *err,
              size_t errlen)
{
  memset(out, 0, sizeof *out);
  cJSON *root = cJSON_Parse(json);
  if (!root) {
    const char *e = cJSON_GetErrorPtr();
    snprintf(err, errlen, "not valid JSON (at byte %lld)",
             e ? (long long)(e - json) : 0LL);
    return false;
  }
  bool ok = true;
  if (!per_slice) {
    out->n = 1;
    out->s = calloc(1, sizeof *out->s);
    ok = out->s && parse_slice(root, &out->s[0], false, 0, err, errlen);
    if (!out->s) snprintf(err, errlen, "out of memory");
  } else if (!cJSON_IsArray(root)) {
    snprintf(err, errlen, "expected a list with one list of polygons per "
             "slice");
    ok = false;
  } else {
    out->n = cJSON_GetArraySize(root);
    out->s = calloc((size_t)(out->n ? out->n : 1), sizeof *out->s);
    if (!out->s) {
      snprintf(err, errlen, "out of memory");
      ok = false;
    }
    int64_t si = 0;
    for (const cJSON *s = root->child; ok && s; s = s->next, si++)
      ok = parse_slice(s, &out->s[si], true, si, err, errlen);
  }
  cJSON_Delete(root);
  if (!ok) {
    if (!out->s) out->n = 0;
    pg_set_free(out);
  }
  return ok;
}

void pg_emit_slice(jt_buf *b, const pg_slice *s)
{
  jt_char(b, '[');
  for (int64_t p = 0; p < s->n; p++) {
    if (p) jt_char(b, ',');
    jt_char(b, '[');
    for (int64_t v = 0; v < s->p[p].n; v++) {
      jt_raw(b, v ? ",[" : "[");
      jt_int(b, s->p[p].xy[2 * v]);
      jt_char(b, ',');
      jt_int(b, s->p[p].xy[2 * v + 1]);
      jt_char(b, ']');
    }
    jt_char(b, ']');
  }
  jt_char(b, ']');
}

void pg_emit(jt_buf *b, const pg_set *set, bool per_slice)
{
  if (!per_slice) {
    pg_emit_slice(b, &set->s[0]);
    return;
  }
  jt_char(b, '[');
  for (int64_t s = 0; s < set->n; s++) {
    if (s) jt_char(b, ',');
    pg_emit_slice(b, &set->s[s]);
  }
  jt_char(b, ']');
}

/* ---- rasterisation ---- */

typedef struct pg_canvas {
  uint8_t *m;
  int64_t w, h, rs, cs;
} pg_canvas;

static void put(const pg_canvas *c, int64_t x, int64_t y)
{
  if (x >= 0 && x < c->w && y >= 0 && y < c->h) c->m[y * c->rs + x * c->cs] = 1;
}

/* floor(a / b) for b > 0. */
static int64_t floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* The 8-connected line from (x0, y0) to (x1, y1), both ends included: one
 * pixel per step along the major axis, the other coordinate rounded to the
 * nearest integer (exact halves upwards).  Only the steps inside the canvas
 * along the major axis are walked, so far-away vertices cost nothing. */
static void line(const pg_canvas *c, int64_t x0, int64_t y0, int64_t x1,
                 int64_t y1)
{
  int64_t dx = x1 - x0, dy = y1 - y0;
  int64_t steps = llabs(dx) > llabs(dy) ? llabs(dx) : llabs(dy);
  if (steps == 0) {
    put(c, x0, y0);
    return;
  }
  bool xmajor = llabs(dx) >= llabs(dy);
  int64_t start = xmajor ? x0 : y0, size = xmajor ? c->w : c->h;
  int64_t dir = (xmajor ? dx : dy) > 0 ? 1 : -1;
  /* k such that 0 <= start + dir * k <= size - 1. */
  int64_t klo = dir > 0 ? -start : start - (size - 1);
  int64_t khi = dir > 0 ? size - 1 - start : start;
  if (klo < 0) klo = 0;
  if (khi > steps) khi = steps;
  for (int64_t k = klo; k <= khi; k++) {
    int64_t minor = floor_div(2 * k * (xmajor ? dy : dx) + steps, 2 * steps);
    if (xmajor) put(c, x0 + dir * k, y0 + minor);
    else put(c, x0 + minor, y0 + dir * k);
  }
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Even-odd scanline fill of the centres inside p; xs holds p->n doubles. */
static void fill_inside(const pg_canvas *c, const pg_poly *p, double *xs)
{
  int64_t ylo = INT64_MAX, yhi = INT64_MIN;
  for (int64_t v = 0; v < p->n; v++) {
    if (p->xy[2 * v + 1] < ylo) ylo = p->xy[2 * v + 1];
    if (p->xy[2 * v + 1] > yhi) yhi = p->xy[2 * v + 1];
  }
  if (ylo < 0) ylo = 0;
  if (yhi > c->h - 1) yhi = c->h - 1;
  for (int64_t y = ylo; y <= yhi; y++) {
    int64_t nx = 0;
    for (int64_t v = 0; v < p->n; v++) {
      const int64_t *a = p->xy + 2 * v, *b = p->xy + 2 * ((v + 1) % p->n);
      /* Half-open in y, so a vertex on the scanline is crossed once. */
      if ((a[1] <= y && y < b[1]) || (b[1] <= y && y < a[1]))
        xs[nx++] = (double)a[0] + (double)(y - a[1]) * (double)(b[0] - a[0]) /
                                      (double)(b[1] - a[1]);
    }
    qsort(xs, (size_t)nx, sizeof *xs, cmp_double);
    for (int64_t k = 0; k + 1 < nx; k += 2) {
      double lo = ceil(xs[k]), hi = floor(xs[k + 1]);
      if (lo < 0) lo = 0;
      if (hi > (double)(c->w - 1)) hi = (double)(c->w - 1);
      for (int64_t x = (int64_t)lo; x <= (int64_t)hi; x++) put(c, x, y);
    }
  }
}

bool pg_fill(const pg_slice *s, uint8_t *mask, int64_t w, int64_t h,
             int64_t row_stride, int64_t col_stride)
{
  pg_canvas c = {mask, w, h, row_stride, col_stride};
  int64_t most = 1;
  for (int64_t p = 0; p < s->n; p++)
    if (s->p[p].n > most) most = s->p[p].n;
  double *xs = malloc(sizeof *xs * (size_t)most);
  if (!xs) return false;
  for (int64_t p = 0; p < s->n; p++) {
    const pg_poly *pp = &s->p[p];
    if (pp->n >= 3) fill_inside(&c, pp, xs);
    for (int64_t v = 0; v < pp->n; v++) {
      const int64_t *a = pp->xy + 2 * v, *b = pp->xy + 2 * ((v + 1) % pp->n);
      line(&c, a[0], a[1], b[0], b[1]);
    }
  }
  free(xs);
  return true;
}
