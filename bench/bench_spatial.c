/* Times lumen's side of bench/bench_spatial.py with lm_call: ScaleByResolution
 * (MONAI rule) of a NIfTI volume loaded as float32.  Prints "median_s min_s"
 * on stdout, and with OUT given saves the last result as NIfTI there (for
 * the script's agreement check).
 *
 *   bench_spatial PATH PIXDIM MODE RUNS [OUT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lumen.h"

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static lm_engine *E;

static int call(const char *op, lm_tensor *in, lm_params *o, lm_tensor **out)
{
  int n = 1;
  *out = NULL;
  int st = lm_call(E, op, in ? &in : NULL, in ? 1 : 0, o, out, &n, NULL);
  if (st < 0) fprintf(stderr, "%s failed: %s\n", op, lm_errmsg(E));
  return st;
}

int main(int argc, char **argv)
{
  if (argc < 5) {
    fprintf(stderr, "usage: bench_spatial PATH PIXDIM MODE RUNS [OUT]\n");
    return 2;
  }
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  if (lm_engine_new(&cfg, &E) != LM_OK) return 1;
  int runs = atoi(argv[4]);
  if (runs < 1) runs = 1;
  double pix = atof(argv[2]), *t = calloc((size_t)runs, sizeof *t);
  lm_params *o = NULL;
  lm_tensor *img = NULL, *out = NULL;
  lm_params_new(&o);
  lm_params_set_string(o, "path", argv[1]);
  lm_params_set_string(o, "dtype", "float32");
  if (call("LoadNifti", NULL, o, &img) < 0) return 1;
  lm_params_free(o);
  lm_params_new(&o);
  double pd[3] = {pix, pix, pix};
  lm_params_set_numbers(o, "pixdim", pd, 3);
  lm_params_set_string(o, "mode", argv[3]);
  /* One warm-up call (allocator, page faults), as the Python side gets. */
  for (int r = -1; r < runs; r++) {
    lm_tensor_release(out);
    double t0 = now();
    if (call("ScaleByResolution", img, o, &out) < 0) return 1;
    double dt = now() - t0;
    if (r >= 0) t[r] = dt;
  }
  qsort(t, (size_t)runs, sizeof *t, cmp);
  printf("%.6f %.6f\n", t[runs / 2], t[0]);
  if (argc > 5) {
    lm_tensor *s = NULL;
    lm_params_free(o);
    lm_params_new(&o);
    lm_params_set_string(o, "path", argv[5]);
    if (call("SaveNifti", out, o, &s) < 0) return 1;
    lm_tensor_release(s);
  }
  lm_params_free(o);
  lm_tensor_release(out);
  lm_tensor_release(img);
  lm_engine_release(E);
  free(t);
  return 0;
}
