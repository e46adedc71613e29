/* What the C benchmark drivers share: the clock, the CPU-only engine they
 * time on, one lm_call that reports failures, and the "median_s min_s" line
 * bench/run parses, so every driver measures and reports the same way. */
#ifndef LM_BENCH_UTIL_H
#define LM_BENCH_UTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lumen.h"

static inline double bench_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The timings are CPU figures (the peers run on the CPU): no CUDA plugin. */
static inline int bench_engine_new(lm_engine **e)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  return lm_engine_new(&cfg, e);
}

/* op with at most one input and one output; failures go to stderr. */
static inline int bench_call(lm_engine *e, const char *op, lm_tensor *in, lm_params *o,
                             lm_tensor **out)
{
  int n = 1;
  *out = NULL;
  int st = lm_call(e, op, in ? &in : NULL, in ? 1 : 0, o, out, &n, NULL);
  if (st < 0) fprintf(stderr, "%s failed: %s\n", op, lm_errmsg(e));
  return st;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Sorts t[0..runs) and prints "median_s min_s". */
static inline void bench_report(double *t, int runs)
{
  qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
  printf("%.6f %.6f\n", t[runs / 2], t[0]);
}

#endif
