/* Times lumen's side of bench/run with lm_call (no Lua, no process start in
 * the figures).  Prints "median_s min_s" on stdout.
 *
 *   bench_nifti load PATH RUNS           LoadNifti(PATH) to float32
 *   bench_nifti save IN OUT RUNS         SaveNifti of IN (loaded native) to OUT
 *   bench_nifti scale IN RUNS            ScaleIntensityRange(-1000..1000 -> 0..1,
 *                                        clip) on IN loaded as float32
 * Exit 77 when an op is not registered. */
#include <string.h>

#include "bench_util.h"

static lm_engine *E;

static lm_tensor *load(const char *path, const char *dtype)
{
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_string(o, "path", path);
  lm_params_set_string(o, "dtype", dtype);
  lm_tensor *t;
  int st = bench_call(E, "LoadNifti", NULL, o, &t);
  lm_params_free(o);
  return st < 0 ? NULL : t;
}

int main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: bench_nifti load PATH RUNS | save IN OUT RUNS | scale IN RUNS\n");
    return 2;
  }
  if (bench_engine_new(&E) != LM_OK) return 1;
  const char *mode = argv[1];
  int runs = atoi(argv[argc - 1]);
  if (runs < 1) runs = 1;
  double *t = calloc((size_t)runs, sizeof *t);
  lm_tensor *img = NULL;
  lm_params *o = NULL;
  const char *op = NULL;
  lm_params_new(&o);
  if (strcmp(mode, "load") == 0) {
    op = "LoadNifti";
    lm_params_set_string(o, "path", argv[2]);
    lm_params_set_string(o, "dtype", "float32");
  } else if (strcmp(mode, "save") == 0 && argc == 5) {
    op = "SaveNifti";
    img = load(argv[2], "native");
    lm_params_set_string(o, "path", argv[3]);
  } else if (strcmp(mode, "scale") == 0) {
    op = "ScaleIntensityRange";
    if (!lm_op_find(E, op)) {
      printf("skip: %s is not registered\n", op);
      return 77;
    }
    img = load(argv[2], "float32");
    lm_params_set_number(o, "a_min", -1000);
    lm_params_set_number(o, "a_max", 1000);
    lm_params_set_number(o, "b_min", 0);
    lm_params_set_number(o, "b_max", 1);
    lm_params_set_bool(o, "clip", true);
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  if (strcmp(mode, "load") != 0 && !img) return 1;
  /* One warm-up call (page cache, allocator), as the Python side gets. */
  for (int r = -1; r < runs; r++) {
    lm_tensor *out;
    double t0 = bench_now();
    if (bench_call(E, op, img, o, &out) < 0) return 1;
    double dt = bench_now() - t0;
    lm_tensor_release(out);
    if (r >= 0) t[r] = dt;
  }
  bench_report(t, runs);
  lm_params_free(o);
  lm_tensor_release(img);
  lm_engine_release(E);
  free(t);
  return 0;
}
