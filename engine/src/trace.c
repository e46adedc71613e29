/* The trace of spatial ops: an immutable persistent list.  Pushing makes a
 * new head that points at the old one, so tensors derived from one another
 * share their common entries and no entry ever changes after it is pushed. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

lm_trace_node *lm_trace_retain(lm_trace_node *n)
{
  if (n) atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
  return n;
}

void lm_trace_release(lm_trace_node *n)
{
  /* Iterative, so a long trace cannot overflow the stack. */
  while (n && atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) == 1) {
    lm_trace_node *prev = n->prev;
    free(n);
    n = prev;
  }
}

int lm_tensor_trace_length(const lm_tensor *t)
{
  return t->trace ? t->trace->depth : 0;
}

const lm_trace_entry *lm_tensor_trace_at(const lm_tensor *t, int i)
{
  int len = lm_tensor_trace_length(t);
  if (i < 0 || i >= len) return NULL;
  const lm_trace_node *n = t->trace;
  for (int d = len - 1; d > i; d--) n = n->prev;
  return &n->entry;
}

int lm_tensor_trace_push(lm_tensor *t, const char *op, const char *params,
                         int ndim, const int64_t *shape, const double affine[16])
{
  if (!op) op = "";
  if (!params) params = "";
  if (ndim < 0 || ndim > LM_MAX_DIMS || (ndim > 0 && !shape))
    return lm_set_error(t->e, LM_EINVAL, "trace_push: ndim %d out of range", ndim);
  size_t lop = strlen(op) + 1, lpar = strlen(params) + 1;
  lm_trace_node *n = malloc(sizeof *n + lop + lpar);
  if (!n) return lm_set_error(t->e, LM_ENOMEM, "out of memory (trace entry)");
  char *text = (char *)(n + 1);
  memcpy(text, op, lop);
  memcpy(text + lop, params, lpar);
  atomic_init(&n->refs, 1);
  n->prev = t->trace; /* the tensor's reference moves to the new node */
  n->depth = lm_tensor_trace_length(t) + 1;
  memset(&n->entry, 0, sizeof n->entry);
  n->entry.op = text;
  n->entry.params = text + lop;
  n->entry.ndim = ndim;
  if (ndim > 0) memcpy(n->entry.shape, shape, (size_t)ndim * sizeof *shape);
  if (affine) memcpy(n->entry.affine, affine, sizeof n->entry.affine);
  else
    for (int i = 0; i < 4; i++) n->entry.affine[i * 5] = 1.0;
  t->trace = n;
  return LM_OK;
}

void lm_tensor_trace_copy(lm_tensor *t, const lm_tensor *src)
{
  if (t->trace == src->trace) return;
  lm_trace_node *old = t->trace;
  t->trace = lm_trace_retain(src->trace);
  lm_trace_release(old);
}

void lm_tensor_trace_pop(lm_tensor *t)
{
  lm_trace_node *head = t->trace;
  if (!head) return;
  t->trace = lm_trace_retain(head->prev);
  lm_trace_release(head);
}
