/* Foreground masks and bounding boxes over the spatial dims. */
#include "crop_mask.h"

#include <stdlib.h>
#include <string.h>

#include "xf_util.h"

typedef struct mask_job {
  lm_tensor *t;
  int nsp, lead, fast;       /* fast: the spatial dim with the smallest stride */
  int64_t c0, nch;
  const int64_t *n;          /* spatial shape */
  int64_t mstride[3];        /* C-order strides of the mask */
  xf_select sel;
  double thr;
  uint8_t *mask;
} mask_job;

static int mask_rows(int64_t begin, int64_t end, void *arg)
{
  const mask_job *j = arg;
  const lm_tensor *t = j->t;
  const int nd = lm_tensor_ndim(t);
  const int64_t *st = lm_tensor_strides(t), *sh = lm_tensor_shape(t);
  const lm_dtype dt = lm_tensor_dtype(t);
  const int64_t es = (int64_t)lm_dtype_size(dt);
  const int fs = j->lead + j->fast;
  const int64_t nf = j->n[j->fast];
  double buf[XF_BLOCK];
  for (int64_t row = begin; row < end; row++) {
    int64_t r = row, soff = 0, moff = 0;
    for (int d = j->nsp - 1; d >= 0; d--) {
      if (d == j->fast) continue;
      int64_t i = r % j->n[d];
      r /= j->n[d];
      soff += i * st[j->lead + d];
      moff += i * j->mstride[d];
    }
    uint8_t *m = j->mask + moff;
    for (int64_t o = 0; o < nf; o++) m[o * j->mstride[j->fast]] = 0;
    for (int64_t c = j->c0; c < j->nch; c++) {
      int64_t coff = 0, cr = c;
      for (int d = j->lead - 1; d >= 0; d--) {
        coff += (cr % sh[d]) * st[d];
        cr /= sh[d];
      }
      const char *src = (const char *)lm_tensor_data(t) + (soff + coff) * es;
      for (int64_t o = 0; o < nf; o += XF_BLOCK) {
        int64_t k = nf - o < XF_BLOCK ? nf - o : XF_BLOCK;
        xf_load_f64(src + o * st[fs] * es, st[fs] * es, dt, buf, k);
        uint8_t *mm = m + o * j->mstride[j->fast];
        const int64_t ms = j->mstride[j->fast];
        if (j->sel == XF_SELECT_GT) {
          for (int64_t q = 0; q < k; q++) mm[q * ms] |= buf[q] > j->thr;
        } else {
          for (int64_t q = 0; q < k; q++) mm[q * ms] |= buf[q] != 0;
        }
      }
    }
  }
  (void)nd;
  return LM_OK;
}

int xf_spatial_any(lm_op_ctx *ctx, lm_tensor *t, int nsp, int64_t first_channel,
                   xf_select sel, double threshold, uint8_t *mask)
{
  mask_job j;
  memset(&j, 0, sizeof j);
  const int nd = lm_tensor_ndim(t);
  j.t = t;
  j.nsp = nsp;
  j.lead = nd - nsp;
  j.n = lm_tensor_shape(t) + j.lead;
  j.nch = 1;
  for (int d = 0; d < j.lead; d++) j.nch *= lm_tensor_shape(t)[d];
  j.c0 = first_channel;
  j.sel = sel;
  j.thr = threshold;
  j.mask = mask;
  int64_t vox = 1;
  for (int d = nsp - 1; d >= 0; d--) {
    j.mstride[d] = vox;
    vox *= j.n[d];
  }
  if (vox == 0) return LM_OK;
  const int64_t *ts = lm_tensor_strides(t);
  j.fast = nsp - 1;
  for (int d = 0; d < nsp; d++)
    if (j.n[d] > 1 && (j.n[j.fast] <= 1 ||
                       llabs(ts[j.lead + d]) < llabs(ts[j.lead + j.fast])))
      j.fast = d;
  int64_t rows = vox / j.n[j.fast];
  int64_t grain = XF_GRAIN / (j.n[j.fast] * (j.nch > 0 ? j.nch : 1)) + 1;
  if (j.fast == nsp - 1)
    return lm_parallel_for(lm_ctx_engine(ctx), ctx, rows, grain, mask_rows, &j);
  /* The input's fastest dim is not the mask's (a NIfTI volume is i-fastest,
   * the mask C order): build the mask with that dim contiguous, so that
   * both the reads and the writes stream, then transpose it with the
   * engine's tiled copy. */
  uint8_t *tmp = malloc((size_t)vox);
  if (!tmp) return lm_ctx_error(ctx, LM_ENOMEM, "cannot allocate the mask");
  int64_t s = j.n[j.fast];
  j.mstride[j.fast] = 1;
  for (int d = nsp - 1; d >= 0; d--)
    if (d != j.fast) {
      j.mstride[d] = s;
      s *= j.n[d];
    }
  j.mask = tmp;
  int st = lm_parallel_for(lm_ctx_engine(ctx), ctx, rows, grain, mask_rows, &j);
  lm_tensor *src = NULL, *dst = NULL;
  lm_engine *e = lm_ctx_engine(ctx);
  if (st >= 0 &&
      (st = lm_tensor_wrap(e, tmp, LM_U8, nsp, j.n, j.mstride, LM_CPU, NULL,
                           NULL, &src)) >= 0 &&
      (st = lm_tensor_wrap(e, mask, LM_U8, nsp, j.n, NULL, LM_CPU, NULL, NULL,
                           &dst)) >= 0)
    st = lm_tensor_copy(dst, src);
  lm_tensor_release(src);
  lm_tensor_release(dst);
  free(tmp);
  if (st < 0 && st != LM_ECANCELED)
    return lm_ctx_error(ctx, st, "cannot build the mask");
  return st;
}

bool xf_mask_bbox(const uint8_t *mask, int nsp, const int64_t *n, int64_t *lo,
                  int64_t *hi)
{
  int64_t vox = 1, idx[3] = {0, 0, 0};
  for (int d = 0; d < nsp; d++) {
    vox *= n[d];
    lo[d] = INT64_MAX;
    hi[d] = -1;
  }
  bool any = false;
  for (int64_t p = 0; p < vox; p++) {
    if (mask[p]) {
      any = true;
      for (int d = 0; d < nsp; d++) {
        if (idx[d] < lo[d]) lo[d] = idx[d];
        if (idx[d] + 1 > hi[d]) hi[d] = idx[d] + 1;
      }
    }
    for (int d = nsp - 1; d >= 0; d--) {
      if (++idx[d] < n[d]) break;
      idx[d] = 0;
    }
  }
  if (!any)
    for (int d = 0; d < nsp; d++) lo[d] = hi[d] = 0;
  return any;
}
