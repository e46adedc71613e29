/* Times lumen's side of bench/bench_nnunet.py: nnU-Net resampling
 * (xf_resample_nnunet, separate z decided by nnU-Net's rule) of a NIfTI
 * loaded as float32, on the compute pool (all cores).  Prints
 * "median_s min_s" on stdout.
 *
 *   bench_nnunet PATH TX TY TZ RUNS [OUT]    OUT: save the last result */
#include "bench_util.h"
#include "resample_nnunet.h"

int main(int argc, char **argv)
{
  if (argc < 6) {
    fprintf(stderr, "usage: bench_nnunet PATH TX TY TZ RUNS [OUT]\n");
    return 2;
  }
  lm_engine *e;
  if (bench_engine_new(&e) != LM_OK) return 3;
  lm_params *p;
  lm_params_new(&p);
  lm_params_set_string(p, "path", argv[1]);
  lm_tensor *in = NULL;
  int n = 1, st = lm_call(e, "LoadNifti", NULL, 0, p, &in, &n, NULL);
  lm_params_free(p);
  if (st < 0) {
    fprintf(stderr, "bench_nnunet: %s\n", lm_errmsg(e));
    return 3;
  }
  double target[3] = {atof(argv[2]), atof(argv[3]), atof(argv[4])};
  int runs = atoi(argv[5]);
  if (runs < 1) runs = 1;
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  double *t = calloc((size_t)runs, sizeof *t);
  lm_tensor *out = NULL;
  for (int r = 0; r <= runs && st >= 0; r++) { /* run 0 warms the allocator */
    lm_tensor_release(out);
    out = NULL;
    double t0 = bench_now();
    st = xf_resample_nnunet(NULL, in, target, &o, &out);
    if (r > 0) t[r - 1] = bench_now() - t0;
  }
  if (st < 0) {
    fprintf(stderr, "bench_nnunet: %s\n", lm_errmsg(e));
    return 3;
  }
  if (argc > 6) {
    lm_params_new(&p);
    lm_params_set_string(p, "path", argv[6]);
    n = 0;
    st = lm_call(e, "SaveNifti", &out, 1, p, NULL, &n, NULL);
    lm_params_free(p);
  }
  bench_report(t, runs);
  free(t);
  lm_tensor_release(out);
  lm_tensor_release(in);
  lm_engine_release(e);
  return st < 0 ? 3 : 0;
}
