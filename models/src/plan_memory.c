/* Offsets of a plan's intermediate buffers in one arena (plan_internal.h).
 * Greedy by size (the TFLite / ONNX Runtime "largest first" heuristic):
 * the big activations of a U-Net settle first, smaller ones fill the gaps
 * between them.  Quadratic in the number of buffers, which is a few hundred. */
#include <stdbool.h>
#include <stdlib.h>

#include "plan_internal.h"

#define ALIGN 64

static size_t align_up(size_t n)
{
  return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

/* Larger first; among equals, the earlier one first (a stable layout). */
static bool goes_before(const lm_plan_buffer *b, int x, int y)
{
  if (b[x].size != b[y].size) return b[x].size > b[y].size;
  if (b[x].start != b[y].start) return b[x].start < b[y].start;
  return x < y;
}

typedef struct span {
  size_t lo, hi;
} span;

static int by_lo(const void *a, const void *b)
{
  const span *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

size_t lm_plan_layout(lm_plan_buffer *b, int n)
{
  if (n == 0) return 0;
  int *order = malloc(sizeof *order * (size_t)n);
  int *placed = malloc(sizeof *placed * (size_t)n);
  span *busy = malloc(sizeof *busy * (size_t)n);
  if (!order || !placed || !busy) {
    free(order);
    free(placed);
    free(busy);
    return (size_t)-1;
  }
  for (int i = 0; i < n; i++) order[i] = i;
  /* Insertion sort: qsort has no context argument for b. */
  for (int i = 1; i < n; i++) {
    int x = order[i], j = i;
    while (j > 0 && goes_before(b, x, order[j - 1])) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = x;
  }
  size_t total = 0;
  int nplaced = 0;
  for (int k = 0; k < n; k++) {
    lm_plan_buffer *cur = &b[order[k]];
    size_t need = align_up(cur->size ? cur->size : 1);
    int nb = 0;
    for (int j = 0; j < nplaced; j++) {
      const lm_plan_buffer *o = &b[placed[j]];
      if (o->start <= cur->end && cur->start <= o->end)
        busy[nb++] = (span){o->offset, o->offset + align_up(o->size ? o->size : 1)};
    }
    qsort(busy, (size_t)nb, sizeof *busy, by_lo);
    size_t at = 0;
    for (int j = 0; j < nb; j++) {
      if (busy[j].lo >= at + need) break;   /* the gap before it fits */
      if (busy[j].hi > at) at = busy[j].hi;
    }
    cur->offset = at;
    if (at + need > total) total = at + need;
    placed[nplaced++] = order[k];
  }
  free(order);
  free(placed);
  free(busy);
  return total;
}
