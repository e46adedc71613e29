/* Parity and bench helper: load a NIfTI with lumen, resample it with
 * xf_resample_nnunet (nnU-Net's rules), save the result; optionally time
 * the resampling alone (repeats, median printed in ms).
 *
 * usage: nnunet_resample_tool IN OUT DTYPE TX TY TZ IS_LABEL ORDER ORDER_Z
 *                             [SEPARATE_Z(-1|0|1) [REPEATS]]
 * OUT "-" skips saving.  Exit 0 on success, 3 on a lumen error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lumen.h"
#include "resample_nnunet.h"

static int fail(lm_engine *e, int st)
{
  fprintf(stderr, "ERROR %s: %s\n", lm_status_name(st), e ? lm_errmsg(e) : "");
  return 3;
}

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
  if (argc < 10) {
    fprintf(stderr, "usage: nnunet_resample_tool IN OUT DTYPE TX TY TZ IS_LABEL ORDER "
                    "ORDER_Z [SEPARATE_Z [REPEATS]]\n");
    return 2;
  }
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  lm_engine *e;
  if (lm_engine_new(&cfg, &e) != LM_OK) return fail(NULL, LM_EINTERNAL);
  lm_params *p;
  lm_params_new(&p);
  lm_params_set_string(p, "path", argv[1]);
  lm_params_set_string(p, "dtype", argv[3]);
  lm_tensor *in = NULL;
  int n = 1;
  int st = lm_call(e, "LoadNifti", NULL, 0, p, &in, &n, NULL);
  lm_params_free(p);
  if (st < 0) return fail(e, st);
  double target[3] = {atof(argv[4]), atof(argv[5]), atof(argv[6])};
  xf_nnunet_opts o;
  xf_nnunet_opts_init(&o);
  o.is_label = atoi(argv[7]) != 0;
  o.order = atoi(argv[8]);
  o.order_z = atoi(argv[9]);
  if (argc > 10) o.separate_z = atoi(argv[10]);
  int repeats = argc > 11 ? atoi(argv[11]) : 1;
  if (repeats < 1) repeats = 1;
  double *ms = calloc((size_t)repeats, sizeof *ms);
  lm_tensor *out = NULL;
  for (int r = 0; r < repeats && st >= 0; r++) {
    lm_tensor_release(out);
    out = NULL;
    double t0 = now_ms();
    st = xf_resample_nnunet(NULL, in, target, &o, &out);
    ms[r] = now_ms() - t0;
  }
  if (st >= 0 && repeats > 1) {
    qsort(ms, (size_t)repeats, sizeof *ms, cmp_double);
    const int64_t *sh = lm_tensor_shape(out);
    printf("lumen nnunet resample: %lld x %lld x %lld, median %.1f ms over %d runs\n",
           (long long)sh[0], (long long)sh[1], (long long)sh[2], ms[repeats / 2], repeats);
  }
  free(ms);
  lm_tensor_release(in);
  if (st < 0) return fail(e, st);
  if (strcmp(argv[2], "-") != 0) {
    lm_params_new(&p);
    lm_params_set_string(p, "path", argv[2]);
    n = 0;
    st = lm_call(e, "SaveNifti", &out, 1, p, NULL, &n, NULL);
    lm_params_free(p);
    if (st < 0) {
      lm_tensor_release(out);
      return fail(e, st);
    }
  }
  lm_tensor_release(out);
  lm_engine_release(e);
  return 0;
}
