/* LabelComponents, KeepLargestConnectedComponent and LabelStats on
 * hand-made label volumes, and the labelling core against a plain flood
 * fill on random volumes large enough to be split into slabs. */
#include <stdint.h>

#include "test_transforms_util.h"

/* A zero (X,Y,Z) float32 volume (strides C order, as lm_tensor_new). */
static lm_tensor *vol(int64_t x, int64_t y, int64_t z)
{
  int64_t sh[3] = {x, y, z};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_F32, 3, sh, LM_CPU, &t);
  return t;
}

static void put(lm_tensor *t, int64_t i, int64_t j, int64_t k, double v)
{
  int64_t idx[3] = {i, j, k};
  lm_tensor_set(t, idx, v);
}

static double get(const lm_tensor *t, int64_t i, int64_t j, int64_t k)
{
  int64_t idx[3] = {i, j, k};
  return lm_tensor_get(t, idx);
}

static lm_tensor *run(const char *op, lm_tensor *in, lm_params *p, int *st,
                      lm_params **res)
{
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  int s = lm_call(E, op, &in, 1, p, out, &nout, res);
  if (st) *st = s;
  lm_params_free(p);
  return s < 0 ? NULL : out[0];
}

static int64_t count_of(lm_tensor *in, int conn)
{
  lm_params *p = params(), *res = NULL;
  lm_params_set_int(p, "connectivity", conn);
  int st;
  lm_tensor *c = run("LabelComponents", in, p, &st, &res);
  const lm_value *v = res ? lm_params_get(res, "count") : NULL;
  int64_t n = v ? v->u.integer : -1;
  lm_tensor_release(c);
  lm_params_free(res);
  return st < 0 ? -100 : n;
}

/* Voxels touching by a corner only, by an edge only, by a face. */
static void test_diagonal_contacts(void)
{
  lm_tensor *corner = vol(3, 3, 3);
  put(corner, 0, 0, 0, 1);
  put(corner, 1, 1, 1, 1);
  CHECK_INT(count_of(corner, 26), 1);
  CHECK_INT(count_of(corner, 18), 2);
  CHECK_INT(count_of(corner, 6), 2);
  lm_tensor *edge = vol(3, 3, 3);
  put(edge, 0, 0, 2, 1);
  put(edge, 1, 1, 2, 1);
  CHECK_INT(count_of(edge, 26), 1);
  CHECK_INT(count_of(edge, 18), 1);
  CHECK_INT(count_of(edge, 6), 2);
  lm_tensor *face = vol(3, 3, 3);
  put(face, 2, 2, 1, 1);
  put(face, 2, 2, 2, 1);
  CHECK_INT(count_of(face, 6), 1);
  lm_tensor_release(corner);
  lm_tensor_release(edge);
  lm_tensor_release(face);
}

/* 2-D: semantics.md's measured case, two diagonal pixels and a 2x2 block:
 * 8-connectivity 2 components, 4-connectivity 3. */
static void test_2d_connectivity(void)
{
  int64_t sh[2] = {6, 6};
  lm_tensor *t = NULL;
  lm_tensor_zeros(E, LM_U8, 2, sh, LM_CPU, &t);
  int64_t px[][2] = {{0, 0}, {1, 1}, {3, 3}, {3, 4}, {4, 3}, {4, 4}};
  for (int i = 0; i < 6; i++) lm_tensor_set(t, px[i], 1);
  CHECK_INT(count_of(t, 8), 2);
  CHECK_INT(count_of(t, 4), 3);
  lm_params *p = params();
  lm_params_set_int(p, "connectivity", 6);
  int st;
  CHECK(run("LabelComponents", t, p, &st, NULL) == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "connectivity");
  lm_tensor_release(t);
}

/* Numbering follows scipy: by the first voxel in C order over (X,Y,Z). */
static void test_numbering(void)
{
  lm_tensor *t = vol(4, 3, 3);
  put(t, 3, 0, 0, 5); /* first in memory order (x fastest) ... */
  put(t, 0, 2, 2, 5); /* ... but first in C order (x slowest) */
  lm_tensor *c = run("LabelComponents", t, params(), NULL, NULL);
  CHECK(c != NULL);
  if (c) {
    CHECK_INT(get(c, 0, 2, 2), 1);
    CHECK_INT(get(c, 3, 0, 0), 2);
    CHECK_INT(lm_tensor_dtype(c), LM_I32);
  }
  lm_tensor_release(c);
  lm_tensor_release(t);
}

/* A reference: breadth-first flood fill with the same neighbourhood. */
static int64_t flood_label(const uint8_t *m, int64_t nx, int64_t ny,
                           int64_t nz, int conn, int32_t *lab)
{
  int64_t n = nx * ny * nz, ncomp = 0;
  int64_t *queue = malloc(sizeof *queue * (size_t)n);
  memset(lab, 0, sizeof *lab * (size_t)n);
  for (int64_t s = 0; s < n; s++) {
    if (!m[s] || lab[s]) continue;
    ncomp++;
    int64_t head = 0, tail = 0;
    queue[tail++] = s;
    lab[s] = (int32_t)ncomp;
    while (head < tail) {
      int64_t v = queue[head++];
      int64_t x = v % nx, y = (v / nx) % ny, z = v / (nx * ny);
      for (int dz = -1; dz <= 1; dz++)
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) {
            int nzr = (dx != 0) + (dy != 0) + (dz != 0);
            if (!nzr) continue;
            if (conn == 6 && nzr > 1) continue;
            if (conn == 18 && nzr > 2) continue;
            if ((conn == 4 || conn == 8) && dz) continue;
            if (conn == 4 && nzr > 1) continue;
            int64_t xx = x + dx, yy = y + dy, zz = z + dz;
            if (xx < 0 || yy < 0 || zz < 0 || xx >= nx || yy >= ny || zz >= nz)
              continue;
            int64_t w = xx + nx * (yy + ny * zz);
            if (m[w] && !lab[w]) {
              lab[w] = (int32_t)ncomp;
              queue[tail++] = w;
            }
          }
    }
  }
  free(queue);
  return ncomp;
}

/* Same partition: a bijection between the two numberings. */
static bool same_partition(const int32_t *a, const int32_t *b, int64_t n,
                           int64_t ncomp)
{
  int32_t *ab = calloc((size_t)ncomp + 1, sizeof *ab);
  int32_t *ba = calloc((size_t)ncomp + 1, sizeof *ba);
  bool ok = true;
  for (int64_t v = 0; v < n && ok; v++) {
    if ((a[v] == 0) != (b[v] == 0)) ok = false;
    if (!a[v] || !ok) continue;
    if (a[v] > ncomp || b[v] > ncomp) { ok = false; break; }
    if (!ab[a[v]]) ab[a[v]] = b[v];
    if (!ba[b[v]]) ba[b[v]] = a[v];
    if (ab[a[v]] != b[v] || ba[b[v]] != a[v]) ok = false;
  }
  free(ab);
  free(ba);
  return ok;
}

/* Random volumes big enough for several slabs and seams, every
 * connectivity, against the flood fill. */
static void test_random_vs_flood(void)
{
  const int64_t nx = 37, ny = 29, nz = 61, n = nx * ny * nz;
  uint8_t *m = malloc((size_t)n);
  int32_t *ref = malloc(sizeof *ref * (size_t)n);
  int32_t *got = malloc(sizeof *got * (size_t)n);
  uint64_t s = 88172645463325252ull;
  int64_t sh[3] = {nx, ny, nz};
  for (int density = 30; density <= 60; density += 30) {
    for (int64_t v = 0; v < n; v++) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      m[v] = (int)(s % 100) < density;
    }
    /* NIfTI order (x fastest), as a loaded volume. */
    int64_t st[3] = {1, nx, nx * ny};
    lm_tensor *t = NULL;
    lm_tensor_wrap(E, m, LM_U8, 3, sh, st, LM_CPU, NULL, NULL, &t);
    const int conns[] = {6, 18, 26, 4, 8};
    for (int c = 0; c < 5; c++) {
      int64_t want = flood_label(m, nx, ny, nz, conns[c], ref);
      lm_params *p = params(), *res = NULL;
      lm_params_set_int(p, "connectivity", conns[c] == 4 || conns[c] == 8 ? 6 : conns[c]);
      if (conns[c] == 4 || conns[c] == 8) {
        /* 2-D connectivity applies to (X,Y) images: label each z plane. */
        int64_t sh2[2] = {nx, ny}, st2[2] = {1, nx};
        int64_t total = 0;
        bool ok = true;
        for (int64_t z = 0; z < nz && ok; z++) {
          lm_tensor *pl = NULL;
          lm_tensor_wrap(E, m + z * nx * ny, LM_U8, 2, sh2, st2, LM_CPU, NULL,
                         NULL, &pl);
          lm_params *q = params(), *r2 = NULL;
          lm_params_set_int(q, "connectivity", conns[c]);
          lm_tensor *o = run("LabelComponents", pl, q, NULL, &r2);
          int64_t k = r2 ? lm_params_get(r2, "count")->u.integer : -1;
          total += k;
          int64_t idx[2];
          for (idx[1] = 0; idx[1] < ny; idx[1]++)
            for (idx[0] = 0; idx[0] < nx; idx[0]++)
              got[z * nx * ny + idx[1] * nx + idx[0]] = o ? (int32_t)lm_tensor_get(o, idx) : -1;
          lm_tensor_release(o);
          lm_tensor_release(pl);
          lm_params_free(r2);
        }
        lm_params_free(p);
        /* Per plane numbering restarts: make ids global before comparing. */
        int32_t base = 0;
        for (int64_t z = 0; z < nz; z++) {
          int32_t mx = 0;
          for (int64_t v = z * nx * ny; v < (z + 1) * nx * ny; v++)
            if (got[v] > 0) {
              if (got[v] > mx) mx = got[v];
              got[v] += base;
            }
          base += mx;
        }
        CHECK_INT(total, want);
        CHECK(same_partition(ref, got, n, want));
        continue;
      }
      lm_tensor *o = run("LabelComponents", t, p, NULL, &res);
      CHECK(o != NULL);
      if (!o) continue;
      CHECK_INT(lm_params_get(res, "count")->u.integer, want);
      memcpy(got, lm_tensor_data(o), sizeof *got * (size_t)n); /* x fastest */
      CHECK(same_partition(ref, got, n, want));
      lm_tensor_release(o);
      lm_params_free(res);
    }
    lm_tensor_release(t);
  }
  free(m);
  free(ref);
  free(got);
}

/* Two components of equal size: MONAI keeps the one skimage numbers
 * higher (first voxel later in C order); ties='all' keeps both. */
static void test_keep_ties(void)
{
  lm_tensor *t = vol(6, 4, 4);
  put(t, 0, 3, 3, 1); put(t, 0, 2, 3, 1);  /* A: first in C order */
  put(t, 4, 0, 0, 1); put(t, 5, 0, 0, 1);  /* B: first in memory order */
  put(t, 2, 0, 3, 1);                      /* C: smaller */
  lm_tensor *k = run("KeepLargestConnectedComponent", t, params(), NULL, NULL);
  CHECK(k != NULL);
  if (k) {
    CHECK_INT(get(k, 4, 0, 0), 1);
    CHECK_INT(get(k, 5, 0, 0), 1);
    CHECK_INT(get(k, 0, 3, 3), 0);
    CHECK_INT(get(k, 2, 0, 3), 0);
    CHECK_INT(lm_tensor_dtype(k), LM_F32);
  }
  lm_params *p = params();
  lm_params_set_string(p, "ties", "all");
  lm_tensor *a = run("KeepLargestConnectedComponent", t, p, NULL, NULL);
  CHECK(a != NULL);
  if (a) {
    CHECK_INT(get(a, 4, 0, 0), 1);
    CHECK_INT(get(a, 0, 3, 3), 1);
    CHECK_INT(get(a, 2, 0, 3), 0);
  }
  p = params();
  lm_params_set_string(p, "ties", "first");
  int st;
  CHECK(run("KeepLargestConnectedComponent", t, p, &st, NULL) == NULL);
  CHECK_CONTAINS(lm_errmsg(E), "'ties'");
  lm_tensor_release(k);
  lm_tensor_release(a);
  lm_tensor_release(t);
}

/* Per label vs union, applied labels, num_components, connectivity, and
 * labels not applied left alone. */
static void test_keep_modes(void)
{
  lm_tensor *t = vol(8, 3, 3);
  /* label 1: a 3-voxel bar and a 1-voxel speck; label 2: a 2-voxel bar
   * touching the big bar of 1 and a 1-voxel speck; label 3: two specks. */
  put(t, 0, 0, 0, 1); put(t, 1, 0, 0, 1); put(t, 2, 0, 0, 1);
  put(t, 7, 2, 2, 1);
  put(t, 3, 0, 0, 2); put(t, 4, 0, 0, 2);
  put(t, 0, 2, 2, 2);
  put(t, 6, 2, 0, 3); put(t, 3, 2, 2, 3);
  lm_tensor *k = run("KeepLargestConnectedComponent", t, params(), NULL, NULL);
  CHECK(k && get(k, 7, 2, 2) == 0 && get(k, 0, 2, 2) == 0);
  CHECK(k && get(k, 2, 0, 0) == 1 && get(k, 3, 0, 0) == 2);
  CHECK(k && get(k, 6, 2, 0) + get(k, 3, 2, 2) == 3); /* one speck of 3 left */
  lm_tensor_release(k);

  double applied[] = {1};
  lm_params *p = params();
  lm_params_set_numbers(p, "applied_labels", applied, 1);
  k = run("KeepLargestConnectedComponent", t, p, NULL, NULL);
  CHECK(k && get(k, 7, 2, 2) == 0 && get(k, 0, 2, 2) == 2 &&
        get(k, 6, 2, 0) == 3 && get(k, 3, 2, 2) == 3);
  lm_tensor_release(k);

  p = params();
  lm_params_set_bool(p, "independent", false);
  k = run("KeepLargestConnectedComponent", t, p, NULL, NULL);
  /* the union's largest is the 5-voxel bar 1+2; every other voxel goes */
  CHECK(k && get(k, 0, 0, 0) == 1 && get(k, 4, 0, 0) == 2);
  CHECK(k && get(k, 7, 2, 2) == 0 && get(k, 0, 2, 2) == 0 &&
        get(k, 6, 2, 0) == 0 && get(k, 3, 2, 2) == 0);
  lm_tensor_release(k);

  p = params();
  lm_params_set_int(p, "num_components", 2);
  k = run("KeepLargestConnectedComponent", t, p, NULL, NULL);
  CHECK(k && get(k, 7, 2, 2) == 1 && get(k, 0, 2, 2) == 2 && get(k, 3, 2, 2) == 3);
  lm_tensor_release(k);

  p = params();
  lm_params_set_int(p, "num_components", 0);
  int st;
  CHECK(run("KeepLargestConnectedComponent", t, p, &st, NULL) == NULL);
  CHECK_INT(st, LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "num_components");

  /* A (1,X,Y,Z) int16 label map keeps shape and dtype. */
  lm_tensor *c = NULL, *u = NULL;
  lm_tensor_unsqueeze(t, 0, &u);
  lm_tensor_set_layout(u, "CXYZ");
  lm_tensor_new_like(u, LM_I16, LM_CPU, &c);
  lm_tensor_copy(c, u);
  k = run("KeepLargestConnectedComponent", c, params(), NULL, NULL);
  CHECK(k && lm_tensor_ndim(k) == 4 && lm_tensor_dtype(k) == LM_I16);
  if (k) {
    int64_t i0[4] = {0, 7, 2, 2}, i1[4] = {0, 2, 0, 0};
    CHECK_INT(lm_tensor_get(k, i0), 0);
    CHECK_INT(lm_tensor_get(k, i1), 1);
  }
  lm_tensor_release(k);
  /* Two channels: not a label map. */
  int64_t sh4[4] = {2, 3, 3, 3};
  lm_tensor *two = NULL;
  lm_tensor_zeros(E, LM_F32, 4, sh4, LM_CPU, &two);
  CHECK(run("KeepLargestConnectedComponent", two, params(), &st, NULL) == NULL);
  CHECK_INT(st, LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(E), "channels");
  lm_tensor_release(two);
  lm_tensor_release(c);
  lm_tensor_release(u);
  lm_tensor_release(t);
}

/* Counts, volumes from the affine's determinant, image statistics. */
static void test_label_stats(void)
{
  lm_tensor *t = vol(4, 3, 2), *img = vol(4, 3, 2);
  put(t, 0, 0, 0, 2); put(t, 1, 0, 0, 2); put(t, 3, 2, 1, 2);
  put(t, 2, 1, 1, 7);
  put(img, 0, 0, 0, 10); put(img, 1, 0, 0, -4); put(img, 3, 2, 1, 3);
  put(img, 2, 1, 1, 0.5);
  /* a permuted, flipped affine: |det| = 8 * 12.5 * 10 = 1000 mm^3 = 1 ml */
  double A[16] = {0, -8, 0, 5, 12.5, 0, 0, 1, 0, 0, 10, 0, 0, 0, 0, 1};
  lm_tensor_set_affine(t, A);
  lm_tensor *in[2] = {t, img};
  lm_tensor *out[LM_MAX_OUTPUTS];
  int nout = LM_MAX_OUTPUTS;
  lm_params *res = NULL;
  int st = lm_call(E, "LabelStats", in, 2, NULL, out, &nout, &res);
  CHECK_INT(st, LM_OK);
  CHECK_INT(nout, 0);
  const lm_value *v = res ? lm_params_get(res, "labels") : NULL;
  CHECK(v && v->type == LM_VALUE_JSON);
  if (v)
    CHECK_STR(v->u.string,
              "{\"2\":{\"count\":3,\"volume_ml\":3,\"mean\":3,\"min\":-4,"
              "\"max\":10},\"7\":{\"count\":1,\"volume_ml\":1,\"mean\":0.5,"
              "\"min\":0.5,\"max\":0.5}}");
  v = res ? lm_params_get(res, "voxel_volume_ml") : NULL;
  CHECK(v && v->u.number == 1.0);
  lm_params_free(res);
  res = NULL;
  lm_params *p = params();
  lm_params_set_bool(p, "include_background", true);
  st = lm_call(E, "LabelStats", in, 1, p, out, &nout, &res);
  lm_params_free(p);
  v = res ? lm_params_get(res, "labels") : NULL;
  CHECK(v && strstr(v->u.string, "\"0\":{\"count\":20,"));
  CHECK(v && !strstr(v->u.string, "mean"));
  lm_params_free(res);
  /* mismatched image */
  lm_tensor *small = vol(4, 3, 1);
  in[1] = small;
  st = lm_call(E, "LabelStats", in, 2, NULL, out, &nout, NULL);
  CHECK_INT(st, LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(E), "img's spatial shape");
  lm_tensor_release(small);
  lm_tensor_release(t);
  lm_tensor_release(img);
}

int main(void)
{
  engine_start();
  RUN(test_diagonal_contacts);
  RUN(test_2d_connectivity);
  RUN(test_numbering);
  RUN(test_random_vs_flood);
  RUN(test_keep_ties);
  RUN(test_keep_modes);
  RUN(test_label_stats);
  lm_engine_release(E);
  TAP_DONE();
}
