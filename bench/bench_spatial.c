/* Times lumen's side of bench/bench_spatial.py with lm_call: ScaleByResolution
 * (MONAI rule) of a NIfTI volume loaded as float32.  Prints "median_s min_s"
 * on stdout, and with OUT given saves the last result as NIfTI there (for
 * the script's agreement check).
 *
 *   bench_spatial PATH PIXDIM MODE RUNS [OUT]
 */
#include <string.h>

#include "bench_util.h"

static lm_engine *E;

int main(int argc, char **argv)
{
  if (argc < 5) {
    fprintf(stderr, "usage: bench_spatial PATH PIXDIM MODE RUNS [OUT]\n");
    return 2;
  }
  if (bench_engine_new(&E) != LM_OK) return 1;
  int runs = atoi(argv[4]);
  if (runs < 1) runs = 1;
  double pix = atof(argv[2]), *t = calloc((size_t)runs, sizeof *t);
  lm_params *o = NULL;
  lm_tensor *img = NULL, *out = NULL;
  lm_params_new(&o);
  lm_params_set_string(o, "path", argv[1]);
  lm_params_set_string(o, "dtype", "float32");
  if (bench_call(E, "LoadNifti", NULL, o, &img) < 0) return 1;
  lm_params_free(o);
  lm_params_new(&o);
  double pd[3] = {pix, pix, pix};
  lm_params_set_numbers(o, "pixdim", pd, 3);
  lm_params_set_string(o, "mode", argv[3]);
  /* One warm-up call (allocator, page faults), as the Python side gets. */
  for (int r = -1; r < runs; r++) {
    lm_tensor_release(out);
    double t0 = bench_now();
    if (bench_call(E, "ScaleByResolution", img, o, &out) < 0) return 1;
    double dt = bench_now() - t0;
    if (r >= 0) t[r] = dt;
  }
  bench_report(t, runs);
  if (argc > 5) {
    lm_tensor *s = NULL;
    lm_params_free(o);
    lm_params_new(&o);
    lm_params_set_string(o, "path", argv[5]);
    if (bench_call(E, "SaveNifti", out, o, &s) < 0) return 1;
    lm_tensor_release(s);
  }
  lm_params_free(o);
  lm_tensor_release(out);
  lm_tensor_release(img);
  lm_engine_release(E);
  free(t);
  return 0;
}
