/* Copies: lm_tensor_copy (any strides, any dtypes), contiguous, clone, and
 * element access.  Large copies are split across the compute threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "internal.h"

/* Split large copies in pieces of at least this many elements. */
#define COPY_GRAIN (INT64_C(1) << 16)

typedef struct {
  lm_strided it;
  char *dst;
  const char *src;
  size_t des, ses;          /* element sizes */
  lm_convert_fn cvt, dense; /* dense: when both rows are unit-stride */
  bool same;                /* same dtype: memcpy unit-stride rows */
} copy_job;

/* Elements [begin, end) in iteration order (row-major over the rows). */
static int copy_range(int64_t begin, int64_t end, void *arg)
{
  copy_job *j = arg;
  const lm_strided *it = &j->it;
  int64_t n = it->inner_n;
  bool unit = it->inner_a == 1 && it->inner_b == 1;
  while (begin < end) {
    int64_t row = begin / n, col = begin - row * n;
    int64_t cnt = n - col < end - begin ? n - col : end - begin;
    int64_t oa, ob;
    lm_strided_row(it, row, &oa, &ob);
    char *d = j->dst + (oa + col * it->inner_a) * (int64_t)j->des;
    const char *s = j->src + (ob + col * it->inner_b) * (int64_t)j->ses;
    if (unit && j->same)
      memcpy(d, s, (size_t)cnt * j->des);
    else if (unit)
      j->dense(d, 0, s, 0, cnt);
    else
      j->cvt(d, it->inner_a * (int64_t)j->des, s, it->inner_b * (int64_t)j->ses, cnt);
    begin += cnt;
  }
  return LM_OK;
}

/* Transposing copies: when the source's fastest dim is not the
 * destination's, rows read the source with a large stride and every
 * element costs a cache miss.  Copying in TILE x TILE blocks of the two
 * fast dims keeps the source lines in cache while they are used. */
#define TILE 64

typedef struct {
  copy_job *j;
  int64_t K, sak, sbk;       /* the source-fast dim (an outer dim) */
  int nother;                /* the remaining outer dims */
  int64_t oshape[LM_MAX_DIMS], osa[LM_MAX_DIMS], osb[LM_MAX_DIMS];
  int64_t ktiles;
} tile_job;

static int copy_tiles(int64_t begin, int64_t end, void *arg)
{
  tile_job *t = arg;
  copy_job *j = t->j;
  int64_t n = j->it.inner_n, ia = j->it.inner_a, ib = j->it.inner_b;
  for (int64_t item = begin; item < end; item++) {
    int64_t plane = item / t->ktiles, kt = item - plane * t->ktiles;
    int64_t oa = 0, ob = 0;
    for (int d = t->nother - 1; d >= 0; d--) {
      int64_t q = plane / t->oshape[d], r = plane - q * t->oshape[d];
      oa += r * t->osa[d];
      ob += r * t->osb[d];
      plane = q;
    }
    int64_t k0 = kt * TILE, k1 = k0 + TILE < t->K ? k0 + TILE : t->K;
    for (int64_t i0 = 0; i0 < n; i0 += TILE) {
      int64_t cnt = n - i0 < TILE ? n - i0 : TILE;
      for (int64_t k = k0; k < k1; k++) {
        char *d = j->dst + (oa + k * t->sak + i0 * ia) * (int64_t)j->des;
        const char *s = j->src + (ob + k * t->sbk + i0 * ib) * (int64_t)j->ses;
        j->cvt(d, ia * (int64_t)j->des, s, ib * (int64_t)j->ses, cnt);
      }
    }
  }
  return LM_OK;
}

/* Set up a tiled copy when the source is fastest along an outer dim;
 * false when a plain row copy is as good. */
static bool plan_tiles(copy_job *j, tile_job *t)
{
  const lm_strided *it = &j->it;
  int k = -1;
  for (int d = 0; d < it->nouter; d++)
    if (llabs(it->sb[d]) < llabs(it->inner_b) && (k < 0 || llabs(it->sb[d]) < llabs(it->sb[k])))
      k = d;
  if (k < 0 || it->inner_n < 8) return false;
  t->j = j;
  t->K = it->shape[k];
  t->sak = it->sa[k];
  t->sbk = it->sb[k];
  t->nother = 0;
  int64_t planes = 1;
  for (int d = 0; d < it->nouter; d++) {
    if (d == k) continue;
    t->oshape[t->nother] = it->shape[d];
    t->osa[t->nother] = it->sa[d];
    t->osb[t->nother] = it->sb[d];
    t->nother++;
    planes *= it->shape[d];
  }
  t->ktiles = (t->K + TILE - 1) / TILE;
  (void)planes;
  return true;
}

static bool same_shape(const lm_tensor *a, const lm_tensor *b)
{
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return false;
  return true;
}

static void shape_text(const lm_tensor *t, char *buf, size_t len)
{
  size_t o = (size_t)snprintf(buf, len, "(");
  for (int i = 0; i < t->ndim && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)t->shape[i]);
  if (o < len) snprintf(buf + o, len - o, ")");
}

int lm_tensor_copy(lm_tensor *dst, const lm_tensor *src)
{
  lm_engine *e = dst->e;
  if (dst->dev.type != LM_DEVICE_CPU || src->dev.type != LM_DEVICE_CPU)
    return lm_set_error(e, LM_EDEVICE, "copy: both tensors must be on the CPU; "
                                       "use ToDevice to move data between devices");
  if (!same_shape(dst, src)) {
    char a[160], b[160];
    shape_text(dst, a, sizeof a);
    shape_text(src, b, sizeof b);
    return lm_set_error(e, LM_ESHAPE, "copy: destination shape %s differs from source %s",
                        a, b);
  }
  copy_job j;
  lm_strided_init(&j.it, dst->ndim, dst->shape, dst->strides, src->strides);
  j.dst = lm_tensor_data(dst);
  j.src = lm_tensor_data(src);
  j.des = lm_dtype_size(dst->dt);
  j.ses = lm_dtype_size(src->dt);
  j.cvt = lm_convert_get(dst->dt, src->dt);
  j.dense = lm_convert_get_dense(dst->dt, src->dt);
  j.same = dst->dt == src->dt;
  int64_t total = j.it.rows * j.it.inner_n;
  if (total == 0) return LM_OK;
  tile_job t;
  if (plan_tiles(&j, &t)) {
    int64_t items = j.it.rows / t.K * t.ktiles;
    int64_t per_item = TILE * j.it.inner_n;
    int64_t grain = COPY_GRAIN / per_item > 1 ? COPY_GRAIN / per_item : 1;
    if (total < 2 * COPY_GRAIN) return copy_tiles(0, items, &t);
    return lm_parallel_for(e, NULL, items, grain, copy_tiles, &t);
  }
  if (total < 2 * COPY_GRAIN) return copy_range(0, total, &j);
  return lm_parallel_for(e, NULL, total, COPY_GRAIN, copy_range, &j);
}

int lm_tensor_contiguous(lm_tensor *t, lm_tensor **out)
{
  if (lm_tensor_is_contiguous(t)) {
    *out = lm_tensor_retain(t);
    return LM_OK;
  }
  if (t->dev.type != LM_DEVICE_CPU)
    return lm_set_error(t->e, LM_EDEVICE,
                        "contiguous: a strided CUDA tensor cannot be made contiguous "
                        "here; call :to('cpu') first");
  lm_tensor *c;
  int st = lm_tensor_new(t->e, t->dt, t->ndim, t->shape, t->dev, &c);
  if (st < 0) return st;
  lm_tensor_copy_meta(c, t);
  if ((st = lm_tensor_copy(c, t)) < 0) {
    lm_tensor_release(c);
    return st;
  }
  *out = c;
  return LM_OK;
}

int lm_tensor_clone(lm_tensor *t, lm_tensor **out)
{
  lm_tensor *c;
  int st = lm_tensor_new_like(t, t->dt, t->dev, &c);
  if (st < 0) return st;
  if (t->dev.type == LM_DEVICE_CPU) {
    st = lm_tensor_copy(c, t);
  } else if (!lm_tensor_is_dense(t)) {
    st = lm_set_error(t->e, LM_EDEVICE,
                      "clone: a strided CUDA tensor cannot be cloned; call :to('cpu') first");
  } else {
    char err[256] = "";
    /* Dense with positive strides: element 0 is the lowest address and the
     * memory order matches the new tensor's, so one block copy does it. */
    st = t->e->cuda.api->memcpy_d2d(t->dev.index, lm_tensor_data(c), lm_tensor_data(t),
                                    lm_tensor_nbytes(t), err, sizeof err);
    if (st < 0) st = lm_set_error(t->e, LM_ECUDA, "clone on cuda:%d: %s", t->dev.index, err);
  }
  if (st < 0) {
    lm_tensor_release(c);
    return st;
  }
  *out = c;
  return LM_OK;
}

static char *element(const lm_tensor *t, const int64_t *idx)
{
  int64_t off = 0;
  for (int i = 0; i < t->ndim; i++) off += idx[i] * t->strides[i];
  return (char *)lm_tensor_data(t) + off * (int64_t)lm_dtype_size(t->dt);
}

static bool in_bounds(const lm_tensor *t, const int64_t *idx)
{
  if (t->dev.type != LM_DEVICE_CPU) return false;
  for (int i = 0; i < t->ndim; i++)
    if (idx[i] < 0 || idx[i] >= t->shape[i]) return false;
  return true;
}

double lm_tensor_get(const lm_tensor *t, const int64_t *idx)
{
  if (!in_bounds(t, idx)) return NAN;
  double v;
  lm_convert_get(LM_F64, t->dt)((char *)&v, 0, element(t, idx), 0, 1);
  return v;
}

void lm_tensor_set(lm_tensor *t, const int64_t *idx, double v)
{
  if (!in_bounds(t, idx)) return;
  lm_convert_get(t->dt, LM_F64)(element(t, idx), 0, (const char *)&v, 0, 1);
}
