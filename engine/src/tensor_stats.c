/* Statistics over all elements, in double, NaN counted apart.  Elements are
 * converted in small batches into a double buffer; each batch gives a
 * count, mean and sum of squared deviations, merged with Chan's formula so
 * the std stays accurate on large volumes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "internal.h"

#define BATCH 1024
#define MAX_BLOCKS 64

typedef struct {
  int64_t n, nan;
  double mean, m2, min, max;
} acc;

static void acc_merge(acc *a, const acc *b)
{
  a->nan += b->nan;
  if (b->n == 0) return;
  if (a->n == 0) {
    int64_t nan = a->nan;
    *a = *b;
    a->nan = nan;
    return;
  }
  double n = (double)(a->n + b->n), d = b->mean - a->mean;
  a->mean += d * (double)b->n / n;
  a->m2 += b->m2 + d * d * (double)a->n * (double)b->n / n;
  a->n += b->n;
  if (b->min < a->min) a->min = b->min;
  if (b->max > a->max) a->max = b->max;
}

static void acc_batch(acc *a, const double *v, int64_t cnt)
{
  acc b = {0, 0, 0, 0, INFINITY, -INFINITY};
  double sum = 0;
  for (int64_t i = 0; i < cnt; i++) {
    if (isnan(v[i])) {
      b.nan++;
      continue;
    }
    b.n++;
    sum += v[i];
    if (v[i] < b.min) b.min = v[i];
    if (v[i] > b.max) b.max = v[i];
  }
  if (b.n > 0) {
    b.mean = sum / (double)b.n;
    for (int64_t i = 0; i < cnt; i++)
      if (!isnan(v[i])) b.m2 += (v[i] - b.mean) * (v[i] - b.mean);
  }
  acc_merge(a, &b);
}

typedef struct {
  lm_strided it;
  const char *data;
  size_t es;
  lm_convert_fn load;
  int64_t total, per_block;
  acc blocks[MAX_BLOCKS];
} stats_job;

static int stats_blocks(int64_t b0, int64_t b1, void *arg)
{
  stats_job *j = arg;
  double buf[BATCH];
  for (int64_t b = b0; b < b1; b++) {
    acc *a = &j->blocks[b];
    *a = (acc){0, 0, 0, 0, INFINITY, -INFINITY};
    int64_t begin = b * j->per_block;
    int64_t end = begin + j->per_block < j->total ? begin + j->per_block : j->total;
    int64_t n = j->it.inner_n, fill = 0;
    while (begin < end) {
      int64_t row = begin / n, col = begin - row * n;
      int64_t cnt = n - col;
      if (cnt > end - begin) cnt = end - begin;
      if (cnt > BATCH - fill) cnt = BATCH - fill;
      int64_t oa;
      lm_strided_row(&j->it, row, &oa, NULL);
      const char *s = j->data + (oa + col * j->it.inner_a) * (int64_t)j->es;
      j->load((char *)(buf + fill), sizeof(double), s, j->it.inner_a * (int64_t)j->es, cnt);
      fill += cnt;
      begin += cnt;
      if (fill == BATCH || begin == end) {
        acc_batch(a, buf, fill);
        fill = 0;
      }
    }
  }
  return LM_OK;
}

int lm_tensor_stats_compute(const lm_tensor *t, lm_tensor_stats *out)
{
  if (t->dev.type != LM_DEVICE_CPU)
    return lm_set_error(t->e, LM_EDEVICE, "stats: tensor is on cuda:%d; call :to('cpu') first",
                        t->dev.index);
  stats_job *j = malloc(sizeof *j);
  if (!j) return lm_set_error(t->e, LM_ENOMEM, "out of memory (stats)");
  lm_strided_init(&j->it, t->ndim, t->shape, t->strides, NULL);
  j->data = lm_tensor_data(t);
  j->es = lm_dtype_size(t->dt);
  j->load = lm_convert_get(LM_F64, t->dt);
  j->total = j->it.rows * j->it.inner_n;
  /* Fixed blocks, so the result does not depend on the thread count. */
  int64_t nblocks = (j->total + (1 << 16) - 1) >> 16;
  if (nblocks > MAX_BLOCKS) nblocks = MAX_BLOCKS;
  if (nblocks < 1) nblocks = 1;
  j->per_block = (j->total + nblocks - 1) / nblocks;
  if (j->per_block < 1) j->per_block = 1;
  int st = nblocks > 1 ? lm_parallel_for(t->e, NULL, nblocks, 1, stats_blocks, j)
                       : stats_blocks(0, 1, j);
  if (st < 0) {
    free(j);
    return st;
  }
  acc all = {0, 0, 0, 0, INFINITY, -INFINITY};
  for (int64_t b = 0; b < nblocks; b++) acc_merge(&all, &j->blocks[b]);
  free(j);
  out->count = all.n;
  out->nan_count = all.nan;
  if (all.n == 0) {
    out->min = out->max = out->mean = out->std = NAN;
  } else {
    out->min = all.min;
    out->max = all.max;
    out->mean = all.mean;
    out->std = sqrt(all.m2 / (double)all.n);
  }
  return LM_OK;
}
