/* The CPU op table (cpu_ops.h): the family tables of cpu_ops_*.c chained,
 * looked up by ONNX op name. */
#include "cpu_ops_internal.h"

#include <pthread.h>
#include <string.h>

static const lm_cpu_kernel *const families[] = {
  lm_ops_elementwise, lm_ops_activation, lm_ops_norm,   lm_ops_shape, lm_ops_index,
  lm_ops_const,       lm_ops_pool,       lm_ops_resize, lm_ops_conv,  lm_ops_reduce,
};
#define NFAMILIES (sizeof families / sizeof families[0])

const lm_cpu_kernel *lm_cpu_kernel_find(const char *op)
{
  if (!op) return NULL;
  for (size_t f = 0; f < NFAMILIES; f++)
    for (const lm_cpu_kernel *k = families[f]; k->op; k++)
      if (strcmp(k->op, op) == 0) return k;
  return NULL;
}

static const char *names[256];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void names_fill(void)
{
  size_t n = 0;
  for (size_t f = 0; f < NFAMILIES; f++)
    for (const lm_cpu_kernel *k = families[f]; k->op && n + 1 < sizeof names / sizeof names[0]; k++)
      names[n++] = k->op;
  names[n] = NULL;
}

const char *const *lm_cpu_supported_ops(void)
{
  pthread_once(&names_once, names_fill);
  return names;
}
