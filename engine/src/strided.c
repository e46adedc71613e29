/* Walking one or two strided tensors of the same shape row by row. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void lm_strided_init(lm_strided *it, int ndim, const int64_t *shape,
                     const int64_t *sa, const int64_t *sb)
{
  /* Order the dims slowest to fastest by the first operand's strides (so
   * the destination of a copy is written linearly), dropping size-1 dims. */
  int order[LM_MAX_DIMS], n = 0;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] == 1) continue;
    int j = n++;
    while (j > 0 && llabs(sa[order[j - 1]]) < llabs(sa[i])) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
  int64_t sh[LM_MAX_DIMS], a[LM_MAX_DIMS], b[LM_MAX_DIMS];
  int m = 0;
  for (int k = 0; k < n; k++) {
    int d = order[k];
    int64_t bd = sb ? sb[d] : 0;
    /* Merge into the previous dim when stepping over this whole dim is the
     * previous dim's stride in both operands. */
    if (m > 0 && a[m - 1] == sa[d] * shape[d] && b[m - 1] == bd * shape[d]) {
      sh[m - 1] *= shape[d];
      a[m - 1] = sa[d];
      b[m - 1] = bd;
      continue;
    }
    sh[m] = shape[d];
    a[m] = sa[d];
    b[m] = bd;
    m++;
  }
  memset(it, 0, sizeof *it);
  bool empty = false;
  for (int i = 0; i < ndim; i++) empty |= shape[i] == 0;
  if (m == 0) { /* a scalar or all size-1 dims: one row of one element */
    it->inner_n = empty ? 0 : 1;
    it->rows = empty ? 0 : 1;
    return;
  }
  it->nouter = m - 1;
  it->inner_n = sh[m - 1];
  it->inner_a = a[m - 1];
  it->inner_b = b[m - 1];
  it->rows = empty ? 0 : 1;
  for (int i = 0; i < m - 1; i++) {
    it->shape[i] = sh[i];
    it->sa[i] = a[i];
    it->sb[i] = b[i];
    it->rows *= sh[i];
  }
}

void lm_strided_row(const lm_strided *it, int64_t row, int64_t *oa, int64_t *ob)
{
  int64_t a = 0, b = 0;
  for (int i = it->nouter - 1; i >= 0; i--) {
    int64_t q = row / it->shape[i], r = row - q * it->shape[i];
    a += r * it->sa[i];
    b += r * it->sb[i];
    row = q;
  }
  *oa = a;
  if (ob) *ob = b;
}
