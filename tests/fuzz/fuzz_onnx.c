/* libFuzzer harness: the ONNX reader (models/src/onnx_reader.c) from a
 * memory buffer.  Besides not crashing, it checks what the reader promises:
 * a refusal leaves a message that names the file, and a graph it returns is
 * consistent (indices in range, constant sizes matching dtype and shape), so
 * the dump and the passes can walk it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loaders.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_graph(const lm_graph *g)
{
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] < -1 || n->in[j] >= g->nvalues) abort();
    for (int j = 0; j < n->nout; j++)
      if (n->out[j] < 0 || n->out[j] >= g->nvalues) abort();
    for (int j = 0; j < n->nattr; j++) {
      const lm_gattr *a = &n->attr[j];
      if (!a->name) abort();
      if (a->kind == LM_ATTR_TENSOR && (a->tensor < 0 || a->tensor >= g->nvalues)) abort();
      if (a->kind == LM_ATTR_STRINGS)
        for (int k = 0; k < a->n; k++)
          if (!a->strings[k]) abort();
    }
  }
  for (int v = 0; v < g->nvalues; v++) {
    const lm_gvalue *val = &g->values[v];
    if (val->ndim < -1 || val->ndim > LM_MAX_DIMS) abort();
    if (!val->data || val->nbytes == 0) continue;
    int64_t numel = lm_gvalue_numel(val);
    if (numel < 0 || (size_t)numel * lm_dtype_size(val->dt) != val->nbytes) abort();
    /* Touch the first and last byte: constant data must be readable. */
    volatile uint8_t sink = ((const uint8_t *)val->data)[0];
    sink = ((const uint8_t *)val->data)[val->nbytes - 1];
    (void)sink;
  }
  for (int i = 0; i < g->ninputs; i++)
    if (g->inputs[i] < 0 || g->inputs[i] >= g->nvalues) abort();
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i] < 0 || g->outputs[i] >= g->nvalues) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  lm_graph *g = NULL;
  char err[512] = "";
  if (lm_onnx_load_buffer(data, size, "fuzz.onnx", &g, err, sizeof err) == LM_OK) {
    check_graph(g);
    free(lm_graph_dump(g));
    lm_graph_free(g);
  } else if (g != NULL || strncmp(err, "fuzz.onnx: ", 11) != 0) {
    fprintf(stderr, "bad refusal: graph %p, message \"%s\"\n", (void *)g, err);
    abort();
  }
  return 0;
}
