/* Connected-component labelling: union-find over runs, slabs in parallel
 * (connected_components.h). */
#include "connected_components.h"

#include <stdlib.h>
#include <string.h>

/* A row of the grid is (y, z); its neighbour rows that come earlier in
 * memory order, with ext = 1 when the x range widens by one voxel on each
 * side (diagonal contacts within the pair of rows). */
typedef struct nb_row {
  int dy, dz, ext;
} nb_row;

typedef struct cc_job {
  const int32_t *cls;
  int32_t *L;          /* parent links during labelling, then the labels */
  int64_t nx, ny, nz, nrows;
  const nb_row *nb;
  int nnb;
  int64_t nslab;
  int64_t *roots;      /* per slab: roots found, then the first id */
  int64_t *sizes;      /* per component, when asked */
} cc_job;

/* Relaxed atomics: after the seams are merged, threads flatten their own
 * slabs while reading links in other slabs that are being rewritten to
 * their roots; every value seen is an ancestor, so any interleaving ends at
 * the root, but the accesses must be atomic to be well defined. */
static inline int32_t ld(const int32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void st(int32_t *p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/* Root with path halving (single writer: the slab's thread, or the merge). */
static int32_t find_halve(int32_t *L, int32_t v)
{
  while (L[v] != v) {
    L[v] = L[L[v]];
    v = L[v];
  }
  return v;
}

/* The smaller index becomes the root, so each root is its component's
 * first voxel in memory order and renumbering follows raster order. */
static void unite(int32_t *L, int32_t a, int32_t b)
{
  a = find_halve(L, a);
  b = find_halve(L, b);
  if (a == b) return;
  if (a < b) L[b] = a;
  else L[a] = b;
}

static int64_t slab_begin(const cc_job *j, int64_t s) { return s * j->nrows / j->nslab; }

/* Union the run [a, b) of row r (class c, first voxel index ia) with the
 * voxels of the earlier neighbour rows; rows before `lo` are left out
 * (another slab, merged later) and, when only_below_lo, rows at or after
 * `lo` are left out (the seam merge). */
static void join_run(const cc_job *j, int64_t r, int64_t a, int64_t b,
                     int32_t c, int64_t lo, int only_below_lo)
{
  const int64_t nx = j->nx, ny = j->ny;
  int64_t y = r % ny, z = r / ny;
  int32_t ia = (int32_t)(r * nx + a);
  for (int k = 0; k < j->nnb; k++) {
    int64_t yy = y + j->nb[k].dy, zz = z + j->nb[k].dz;
    if (yy < 0 || yy >= ny || zz < 0) continue;
    int64_t rr = zz * ny + yy;
    if (only_below_lo ? rr >= lo : rr < lo) continue;
    int64_t x0 = a - j->nb[k].ext, x1 = b - 1 + j->nb[k].ext;
    if (x0 < 0) x0 = 0;
    if (x1 > nx - 1) x1 = nx - 1;
    const int32_t *crow = j->cls + rr * nx;
    int32_t base = (int32_t)(rr * nx);
    for (int64_t x = x0; x <= x1; x++) {
      if (crow[x] != c) continue;
      unite(j->L, ia, base + (int32_t)x);
      while (x + 1 <= x1 && crow[x + 1] == c) x++; /* same run: joined */
    }
  }
}

/* Pass 1: label slab rows on their own. */
static int slab_label(int64_t begin, int64_t end, void *arg)
{
  const cc_job *j = arg;
  const int64_t nx = j->nx;
  for (int64_t s = begin; s < end; s++) {
    int64_t r0 = slab_begin(j, s), r1 = slab_begin(j, s + 1);
    for (int64_t r = r0; r < r1; r++) {
      const int32_t *crow = j->cls + r * nx;
      int32_t *lrow = j->L + r * nx;
      for (int64_t x = 0; x < nx;) {
        int32_t c = crow[x];
        if (c == 0) {
          lrow[x++] = -1;
          continue;
        }
        int64_t a = x;
        int32_t ia = (int32_t)(r * nx + a);
        while (x < nx && crow[x] == c) lrow[x++] = ia;
        join_run(j, r, a, x, c, r0, 0);
      }
    }
  }
  return LM_OK;
}

/* Seams: rows near a slab's start whose earlier neighbours lie in the slab
 * before. */
static void merge_seams(const cc_job *j)
{
  const int64_t nx = j->nx;
  for (int64_t s = 1; s < j->nslab; s++) {
    int64_t r0 = slab_begin(j, s), r1 = slab_begin(j, s + 1);
    int64_t rend = r0 + j->ny + 1 < r1 ? r0 + j->ny + 1 : r1;
    for (int64_t r = r0; r < rend; r++) {
      const int32_t *crow = j->cls + r * nx;
      for (int64_t x = 0; x < nx;) {
        int32_t c = crow[x];
        if (c == 0) {
          x++;
          continue;
        }
        int64_t a = x;
        while (x < nx && crow[x] == c) x++;
        join_run(j, r, a, x, c, r0, 1);
      }
    }
  }
}

/* Pass 2: point every voxel at its root and count the roots per slab. */
static int slab_flatten(int64_t begin, int64_t end, void *arg)
{
  cc_job *j = arg;
  for (int64_t s = begin; s < end; s++) {
    int64_t v0 = slab_begin(j, s) * j->nx, v1 = slab_begin(j, s + 1) * j->nx;
    int64_t roots = 0;
    for (int64_t v = v0; v < v1; v++) {
      int32_t p = ld(&j->L[v]);
      if (p < 0) continue;
      if (p == v) {
        roots++;
        continue;
      }
      int32_t q;
      while ((q = ld(&j->L[p])) != p) p = q;
      st(&j->L[v], p);
    }
    j->roots[s] = roots;
  }
  return LM_OK;
}

/* Pass 3: number the roots (encoded as -(id) - 2, id from 0, so they stay
 * apart from links, which are >= 0, and background, -1). */
static int slab_number(int64_t begin, int64_t end, void *arg)
{
  cc_job *j = arg;
  for (int64_t s = begin; s < end; s++) {
    int64_t v0 = slab_begin(j, s) * j->nx, v1 = slab_begin(j, s + 1) * j->nx;
    int64_t id = j->roots[s];
    for (int64_t v = v0; v < v1; v++)
      if (j->L[v] == v) j->L[v] = (int32_t)(-id++ - 2);
  }
  return LM_OK;
}

/* Pass 4: links take their root's number (roots are only read here). */
static int slab_resolve(int64_t begin, int64_t end, void *arg)
{
  cc_job *j = arg;
  for (int64_t s = begin; s < end; s++) {
    int64_t v0 = slab_begin(j, s) * j->nx, v1 = slab_begin(j, s + 1) * j->nx;
    for (int64_t v = v0; v < v1; v++) {
      int32_t p = j->L[v];
      if (p >= 0) j->L[v] = -ld(&j->L[p]) - 1;
    }
  }
  return LM_OK;
}

/* Pass 5: decode roots and background; count sizes run by run. */
static int slab_finish(int64_t begin, int64_t end, void *arg)
{
  cc_job *j = arg;
  for (int64_t s = begin; s < end; s++) {
    int64_t v0 = slab_begin(j, s) * j->nx, v1 = slab_begin(j, s + 1) * j->nx;
    for (int64_t v = v0; v < v1; v++) {
      int32_t p = j->L[v];
      if (p == -1) j->L[v] = 0;
      else if (p < -1) j->L[v] = -p - 1;
    }
    if (!j->sizes) continue;
    for (int64_t v = v0; v < v1;) {
      int32_t l = j->L[v];
      int64_t n = 1;
      while (v + n < v1 && j->L[v + n] == l) n++;
      if (l > 0) __atomic_fetch_add(&j->sizes[l], n, __ATOMIC_RELAXED);
      v += n;
    }
  }
  return LM_OK;
}

static const nb_row nb4[] = {{-1, 0, 0}};
static const nb_row nb8[] = {{-1, 0, 1}};
static const nb_row nb6[] = {{-1, 0, 0}, {0, -1, 0}};
static const nb_row nb18[] = {{-1, 0, 1}, {0, -1, 1}, {-1, -1, 0}, {1, -1, 0}};
static const nb_row nb26[] = {{-1, 0, 1}, {-1, -1, 1}, {0, -1, 1}, {1, -1, 1}};

static int fail(lm_engine *e, lm_op_ctx *ctx, int status, const char *msg)
{
  if (ctx) return lm_ctx_error(ctx, status, "%s", msg);
  return lm_set_error(e, status, "connected components: %s", msg);
}

int cc_label(lm_engine *e, lm_op_ctx *ctx, const int32_t *cls, int64_t nx,
             int64_t ny, int64_t nz, int connectivity, int32_t *labels,
             int64_t *ncomp, int64_t **sizes)
{
  cc_job j = {.cls = cls, .L = labels, .nx = nx, .ny = ny, .nz = nz};
  *ncomp = 0;
  if (sizes) *sizes = NULL;
  switch (connectivity) {
  case 4: j.nb = nb4; j.nnb = 1; break;
  case 8: j.nb = nb8; j.nnb = 1; break;
  case 6: j.nb = nb6; j.nnb = 2; break;
  case 18: j.nb = nb18; j.nnb = 4; break;
  case 26: j.nb = nb26; j.nnb = 4; break;
  default:
    return fail(e, ctx, LM_EINVAL, "connectivity must be 4 or 8 (2-D), or 6, "
                "18 or 26 (3-D)");
  }
  if (nx < 0 || ny < 0 || nz < 0)
    return fail(e, ctx, LM_EINVAL, "negative grid size");
  if (nx == 0 || ny == 0 || nz == 0) {
    if (sizes && !(*sizes = calloc(1, sizeof **sizes)))
      return fail(e, ctx, LM_ENOMEM, "out of memory");
    return LM_OK;
  }
  if (nx > INT32_MAX / ny || nx * ny > (INT32_MAX - 2) / nz)
    return fail(e, ctx, LM_EUNSUPPORTED, "grid of 2^31 voxels or more");
  j.nrows = ny * nz;

  lm_engine_stats es;
  lm_engine_stats_get(e, &es);
  int threads = es.threads > 0 ? es.threads : 1;
  /* A few slabs per thread for balance; each seam costs about one plane of
   * sequential merging, so slabs stay well above a plane. */
  int64_t per_slab_min = ny + 1 > 64 ? ny + 1 : 64;
  j.nslab = 4 * (int64_t)threads;
  if (j.nslab > j.nrows / per_slab_min) j.nslab = j.nrows / per_slab_min;
  if (j.nslab < 1) j.nslab = 1;
  j.roots = calloc((size_t)j.nslab, sizeof *j.roots);
  if (!j.roots) return fail(e, ctx, LM_ENOMEM, "out of memory");

  int rc = lm_parallel_for(e, ctx, j.nslab, 1, slab_label, &j);
  if (rc >= 0) {
    merge_seams(&j);
    rc = lm_parallel_for(e, ctx, j.nslab, 1, slab_flatten, &j);
  }
  if (rc >= 0) {
    int64_t total = 0;
    for (int64_t s = 0; s < j.nslab; s++) {
      int64_t n = j.roots[s];
      j.roots[s] = total;
      total += n;
    }
    *ncomp = total;
    rc = lm_parallel_for(e, ctx, j.nslab, 1, slab_number, &j);
  }
  if (rc >= 0) rc = lm_parallel_for(e, ctx, j.nslab, 1, slab_resolve, &j);
  if (rc >= 0 && sizes) {
    j.sizes = calloc((size_t)*ncomp + 1, sizeof *j.sizes);
    if (!j.sizes) {
      free(j.roots);
      *ncomp = 0;
      return fail(e, ctx, LM_ENOMEM, "out of memory");
    }
  }
  if (rc >= 0) rc = lm_parallel_for(e, ctx, j.nslab, 1, slab_finish, &j);
  free(j.roots);
  if (rc < 0) {
    free(j.sizes);
    *ncomp = 0;
    if (rc == LM_ECANCELED) return rc;
    return fail(e, ctx, rc, "labelling failed");
  }
  if (sizes) *sizes = j.sizes;
  return LM_OK;
}

typedef struct rn_job {
  int32_t *labels;
  int64_t nx, ny, nz;
  int64_t *key;        /* per component: first voxel's C-order index */
  const int32_t *map;  /* old id -> new id */
} rn_job;

static int rn_keys(int64_t b, int64_t e, void *arg)
{
  rn_job *j = arg;
  for (int64_t r = b; r < e; r++) { /* r = z*ny + y */
    int64_t y = r % j->ny, z = r / j->ny;
    const int32_t *row = j->labels + r * j->nx;
    for (int64_t x = 0; x < j->nx; x++) {
      int32_t l = row[x];
      if (l <= 0) continue;
      int64_t key = (x * j->ny + y) * j->nz + z;
      int64_t cur = __atomic_load_n(&j->key[l], __ATOMIC_RELAXED);
      while (key < cur &&
             !__atomic_compare_exchange_n(&j->key[l], &cur, key, true,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      }
    }
  }
  return LM_OK;
}

static int rn_apply(int64_t b, int64_t e, void *arg)
{
  rn_job *j = arg;
  for (int64_t v = b * j->nx; v < e * j->nx; v++)
    if (j->labels[v] > 0) j->labels[v] = j->map[j->labels[v]];
  return LM_OK;
}

static int cmp_by_key(const void *a, const void *b, void *arg)
{
  const int64_t *key = arg;
  int64_t x = key[*(const int32_t *)a], y = key[*(const int32_t *)b];
  return x < y ? -1 : x > y;
}

int cc_renumber_c_order(lm_engine *e, lm_op_ctx *ctx, int32_t *labels,
                        int64_t nx, int64_t ny, int64_t nz, int64_t ncomp,
                        int64_t *sizes)
{
  if (ncomp <= 1) return LM_OK;
  rn_job j = {labels, nx, ny, nz, NULL, NULL};
  j.key = malloc(sizeof *j.key * (size_t)(ncomp + 1));
  int32_t *order = malloc(sizeof *order * (size_t)(ncomp + 1));
  int32_t *map = malloc(sizeof *map * (size_t)(ncomp + 1));
  int64_t *tmp = sizes ? malloc(sizeof *tmp * (size_t)(ncomp + 1)) : NULL;
  int rc = LM_OK;
  if (!j.key || !order || !map || (sizes && !tmp)) {
    rc = fail(e, ctx, LM_ENOMEM, "out of memory");
    goto done;
  }
  for (int64_t c = 0; c <= ncomp; c++) j.key[c] = INT64_MAX;
  rc = lm_parallel_for(e, ctx, ny * nz, 16, rn_keys, &j);
  if (rc < 0) goto done;
  for (int64_t c = 0; c < ncomp; c++) order[c] = (int32_t)(c + 1);
  qsort_r(order, (size_t)ncomp, sizeof *order, cmp_by_key, j.key);
  map[0] = 0;
  for (int64_t c = 0; c < ncomp; c++) map[order[c]] = (int32_t)(c + 1);
  j.map = map;
  rc = lm_parallel_for(e, ctx, ny * nz, 16, rn_apply, &j);
  if (rc < 0) goto done;
  if (sizes) {
    memcpy(tmp, sizes, sizeof *tmp * (size_t)(ncomp + 1));
    for (int64_t c = 1; c <= ncomp; c++) sizes[map[c]] = tmp[c];
  }
done:
  free(j.key);
  free(order);
  free(map);
  free(tmp);
  return rc;
}
