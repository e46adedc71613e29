/* Times lumen's side of bench/run_cc with lm_call.  Prints "median_s min_s"
 * on stdout.
 *
 *   bench_cc label MASK CONN RUNS     LabelComponents (connectivity CONN) of
 *                                     MASK (a uint8 NIfTI, loaded once)
 *   bench_cc keep LABEL RUNS          KeepLargestConnectedComponent (26)
 */
#include <string.h>

#include "bench_util.h"

int main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: bench_cc label MASK CONN RUNS | keep LABEL RUNS\n");
    return 2;
  }
  lm_engine *E;
  if (bench_engine_new(&E) != LM_OK) return 1;
  bool label = strcmp(argv[1], "label") == 0;
  int runs = atoi(argv[argc - 1]);
  if (runs < 1) runs = 1;
  lm_params *lo, *o;
  lm_params_new(&lo);
  lm_params_new(&o);
  lm_params_set_string(lo, "path", argv[2]);
  lm_params_set_string(lo, "dtype", "native");
  lm_tensor *img = NULL;
  int n = 1;
  if (lm_call(E, "LoadNifti", NULL, 0, lo, &img, &n, NULL) < 0) {
    fprintf(stderr, "LoadNifti: %s\n", lm_errmsg(E));
    return 1;
  }
  const char *op = label ? "LabelComponents" : "KeepLargestConnectedComponent";
  if (label) lm_params_set_int(o, "connectivity", atoi(argv[3]));
  double *t = calloc((size_t)runs, sizeof *t);
  for (int r = -1; r < runs; r++) { /* one warm-up */
    lm_tensor *out[LM_MAX_OUTPUTS] = {0};
    lm_params *res = NULL;
    n = LM_MAX_OUTPUTS;
    double t0 = bench_now();
    if (lm_call(E, op, &img, 1, o, out, &n, &res) < 0) {
      fprintf(stderr, "%s: %s\n", op, lm_errmsg(E));
      return 1;
    }
    double dt = bench_now() - t0;
    if (r >= 0) t[r] = dt;
    for (int i = 0; i < n; i++) lm_tensor_release(out[i]);
    lm_params_free(res);
  }
  bench_report(t, runs);
  free(t);
  lm_tensor_release(img);
  lm_params_free(lo);
  lm_params_free(o);
  lm_engine_release(E);
  return 0;
}
