/* The memory of a plan (plan_internal.h): where each run-time value lives
 * (the caller's buffers, a view of another value, the buffer of an input it
 * overwrites, a block of a Concat's output, or a buffer of its own), and the
 * offsets of the buffers in one arena, laid out greedily by size (the
 * TFLite / ONNX Runtime "largest first" heuristic):
 * the big activations of a U-Net settle first, smaller ones fill the gaps
 * between them.  Quadratic in the number of buffers, which is a few hundred. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Buffers of the memory plan: a root buffer is laid out in the arena; a
 * buffer embedded in another (a Concat input inside the Concat output) lives
 * at a fixed offset inside its parent. */
typedef struct mem_state {
  lm_plan_buffer *bufs;
  int *parent;
  size_t *sub;
  int n;
} mem_state;

static int mem_root(const mem_state *m, int b)
{
  while (m->parent[b] >= 0) b = m->parent[b];
  return b;
}

static int mem_new(mem_state *m, size_t size, int start, int end)
{
  m->bufs[m->n] = (lm_plan_buffer){.size = size, .start = start, .end = end};
  m->parent[m->n] = -1;
  m->sub[m->n] = 0;
  return m->n++;
}

/* The inputs of a Concat whose blocks are contiguous in its output (every
** axis before the concat axis has extent 1) are written in place: each
** input's buffer is embedded in the output's at its block's offset, and the
** Concat itself does nothing.  All inputs or none. */
static bool concat_in_place(builder *b, mem_state *m, plan_step *st, int ybuf)
{
  lm_graph *g = b->g;
  lm_plan *p = b->p;
  if (st->kind != STEP_EVAL || !op_is(st->node, "Concat") || st->nout != 1) return false;
  const lm_gvalue *y = &g->values[st->vout[0]];
  int64_t axis = lm_gnode_attr_int(st->node, "axis", 0);
  if (axis < 0) axis += y->ndim;
  if (axis < 0 || axis >= y->ndim) return false;
  for (int d = 0; d < axis; d++)
    if (y->shape[d] != 1) return false;
  for (int j = 0; j < st->nin; j++) {
    int v = st->vin[j];
    if (v < 0 || p->loc[v] != LOC_ARENA) return false;
    int bi = p->loc_index[v];
    if (m->parent[bi] >= 0 || bi == ybuf || m->bufs[bi].size != value_bytes(g, v)) return false;
    for (int k = 0; k < j; k++)
      if (p->loc_index[st->vin[k]] == bi) return false;   /* one buffer, two blocks */
  }
  size_t off = 0;
  for (int j = 0; j < st->nin; j++) {
    int bi = p->loc_index[st->vin[j]];
    m->parent[bi] = ybuf;
    m->sub[bi] = off;
    off += m->bufs[bi].size;
    if (m->bufs[bi].start < m->bufs[ybuf].start) m->bufs[ybuf].start = m->bufs[bi].start;
    if (m->bufs[bi].end > m->bufs[ybuf].end) m->bufs[ybuf].end = m->bufs[bi].end;
  }
  st->kind = STEP_VIEW;
  size_t len = strlen(st->label);
  snprintf(st->label + len, sizeof st->label - len, " (in place)");
  return true;
}

/* The input step st (number s) may overwrite with its output of the given
** size: one allowed by the op, in the arena, of the output's size, with
** everything sharing its buffer dead after this step, and no other input of
** the step in that buffer.  -1 when none. */
static int inplace_input(const lm_plan *p, const mem_state *m, const plan_step *st, int s,
                         size_t bytes)
{
  const lm_graph *g = p->g;
  for (int k = 0; k < st->nin && k < 32; k++) {
    int v = st->vin[k];
    if (!(st->inplace_inputs & (1u << k)) || v < 0 || p->loc[v] != LOC_ARENA) continue;
    if (value_bytes(g, v) != bytes) continue;
    int r = mem_root(m, p->loc_index[v]);
    if (m->bufs[r].end != s) continue;
    bool shared = false;
    for (int o = 0; o < st->nin && !shared; o++)
      shared = o != k && st->vin[o] >= 0 && st->vin[o] != v && p->loc[st->vin[o]] == LOC_ARENA &&
               mem_root(m, p->loc_index[st->vin[o]]) == r;
    if (!shared) return k;
  }
  return -1;
}

int plan_lay_out_memory(builder *b)
{
  lm_plan *p = b->p;
  lm_graph *g = b->g;
  int nv = g->nvalues;
  int *def = malloc(sizeof *def * ((size_t)nv + 1));
  int *last = malloc(sizeof *last * ((size_t)nv + 1));
  mem_state m = {.bufs = calloc((size_t)nv + 1, sizeof *m.bufs),
                 .parent = calloc((size_t)nv + 1, sizeof *m.parent),
                 .sub = calloc((size_t)nv + 1, sizeof *m.sub)};
  lm_plan_buffer *roots = calloc((size_t)nv + 1, sizeof *roots);
  int *root_of = calloc((size_t)nv + 1, sizeof *root_of);
  int rc = LM_OK;
  if (!def || !last || !m.bufs || !m.parent || !m.sub || !roots || !root_of) {
    rc = plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
    goto done;
  }
  for (int v = 0; v < nv; v++) def[v] = last[v] = -1;
  for (int s = 0; s < p->nsteps; s++) {
    const plan_step *st = &p->steps[s];
    for (int j = 0; j < st->nin; j++)
      if (st->vin[j] >= 0) last[st->vin[j]] = s;
    for (int j = 0; j < st->nout; j++)
      if (st->vout[j] >= 0 && def[st->vout[j]] < 0) def[st->vout[j]] = last[st->vout[j]] = s;
  }
  /* Run-time outputs of steps that are not graph outputs go to the arena;
   * views and in-place steps join their input's buffer, Concat inputs may
   * move into the Concat's.  A buffer may be overwritten in place only when
   * everything sharing its root is dead after this step. */
  size_t unplanned = 0;
  for (int s = 0; s < p->nsteps; s++) {
    plan_step *st = &p->steps[s];
    if (st->kind == STEP_COPY) continue;
    for (int j = 0; j < st->nout; j++) {
      int v = st->vout[j];
      if (v < 0 || p->loc[v] != LOC_NONE) continue;
      size_t bytes = value_bytes(g, v);
      unplanned += (bytes + 63) & ~(size_t)63;
      int in0 = st->nin ? st->vin[0] : -1;
      if (j == 0 && st->may_view && in0 >= 0 && p->loc[in0] == LOC_ARENA &&
          value_bytes(g, in0) == bytes) {
        int r = mem_root(&m, p->loc_index[in0]);
        if (last[v] > m.bufs[r].end) m.bufs[r].end = last[v];
        p->loc[v] = LOC_ARENA;
        p->loc_index[v] = p->loc_index[in0];
        st->kind = STEP_VIEW;
        size_t len = strlen(st->label);
        snprintf(st->label + len, sizeof st->label - len, " (view)");
        continue;
      }
      int k = j == 0 ? inplace_input(p, &m, st, s, bytes) : -1;
      if (k >= 0) {
        int r = mem_root(&m, p->loc_index[st->vin[k]]);
        if (last[v] > m.bufs[r].end) m.bufs[r].end = last[v];
        p->loc[v] = LOC_ARENA;
        p->loc_index[v] = p->loc_index[st->vin[k]];
        continue;
      }
      p->loc[v] = LOC_ARENA;
      p->loc_index[v] = mem_new(&m, bytes, s, last[v]);
      if (j == 0 && !p->no_concat_in_place) concat_in_place(b, &m, st, p->loc_index[v]);
    }
  }
  /* Lay out the roots; everything else sits at an offset inside one. */
  int nroots = 0;
  for (int i = 0; i < m.n; i++)
    if (m.parent[i] < 0) {
      root_of[i] = nroots;
      roots[nroots++] = m.bufs[i];
    }
  /* What is alive at once bounds any layout from below. */
  for (int t = 0; t < p->nsteps; t++) {
    size_t live = 0;
    for (int i = 0; i < nroots; i++)
      if (roots[i].start <= t && t <= roots[i].end) live += (roots[i].size + 63) & ~(size_t)63;
    if (live > p->live_peak_bytes) p->live_peak_bytes = live;
  }
  size_t total = lm_plan_layout(roots, nroots);
  if (total == (size_t)-1) {
    rc = plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
    goto done;
  }
  p->arena_bytes = total;
  p->unplanned_bytes = unplanned;
  if (total && !p->layout_only) {
    p->arena = aligned_alloc(64, total);
    if (!p->arena) {
      rc = plan_fail(b->err, b->errlen, LM_ENOMEM, "%s: out of memory for the %zu-byte arena",
                gsrc(g), total);
      goto done;
    }
  }
  for (int v = 0; v < nv; v++) {
    if (p->loc[v] != LOC_ARENA) continue;
    size_t off = 0;
    int bi = p->loc_index[v];
    for (; m.parent[bi] >= 0; bi = m.parent[bi]) off += m.sub[bi];
    p->loc_offset[v] = roots[root_of[bi]].offset + off;
  }
done:
  free(def);
  free(last);
  free(m.bufs);
  free(m.parent);
  free(m.sub);
  free(roots);
  free(root_of);
  return rc;
}
