/*
** ct_window: window a CT volume to [0, 1] with the C API alone, no Lua.
**
**   ct_window IN.nii.gz OUT.nii.gz [a_min a_max]
**
** LoadNifti -> ConvertToChannelsFirst -> ScaleIntensityRange(clip) -> SaveNifti.
** The load runs asynchronously on the engine's loop (the way an embedding
** application that owns an event loop would call it); the remaining steps use
** the synchronous lm_call, which is simpler when the caller may block.
*/
#include <lumen.h>
#include <stdio.h>
#include <stdlib.h>

struct load_state {
  lm_tensor *img;
  int status;
  char msg[512];
};

static void on_loaded(lm_job *job, int status, void *userdata)
{
  struct load_state *st = userdata;
  st->status = status;
  if (status >= 0)
    st->img = lm_tensor_retain(lm_job_output(job, 0));
  else
    snprintf(st->msg, sizeof st->msg, "%s", lm_job_errmsg(job));
  lm_job_release(job);
}

static int fail(lm_engine *e, const char *what)
{
  fprintf(stderr, "ct_window: %s: %s (%s)\n", what, lm_errmsg(e),
          lm_status_name(lm_errcode(e)));
  return 1;
}

int main(int argc, char **argv)
{
  if (argc != 3 && argc != 5) {
    fprintf(stderr, "usage: ct_window IN.nii[.gz] OUT.nii[.gz] [a_min a_max]\n");
    return 2;
  }
  double a_min = argc == 5 ? atof(argv[3]) : -1000.0;
  double a_max = argc == 5 ? atof(argv[4]) : 1000.0;

  lm_engine *e = NULL;
  if (lm_engine_new(NULL, &e) < 0) {
    fprintf(stderr, "ct_window: cannot create the engine\n");
    return 1;
  }
  int rc = 1;
  lm_params *opts = NULL;
  lm_tensor *chw = NULL, *scaled = NULL;
  lm_params_new(&opts);

  /* 1. Load, asynchronously: queue the job, then turn the loop until its
  **    callback has run. */
  struct load_state load = {0};
  lm_params_set_string(opts, "dtype", "float32");
  lm_params_set_string(opts, "path", argv[1]);
  lm_job *job = NULL;
  if (lm_call_async(e, "LoadNifti", NULL, 0, opts, on_loaded, &load, &job) < 0) {
    fail(e, "LoadNifti");
    goto out;
  }
  lm_engine_run(e, 0);
  if (load.status < 0) {
    fprintf(stderr, "ct_window: %s\n", load.msg);
    goto out;
  }

  /* 2. Channels first (a view), then the intensity window, synchronously. */
  int nout = 1;
  if (lm_call(e, "ConvertToChannelsFirst", &load.img, 1, NULL, &chw, &nout, NULL) < 0) {
    fail(e, "ConvertToChannelsFirst");
    goto out;
  }
  lm_params_free(opts);
  lm_params_new(&opts);
  lm_params_set_number(opts, "a_min", a_min);
  lm_params_set_number(opts, "a_max", a_max);
  lm_params_set_number(opts, "b_min", 0.0);
  lm_params_set_number(opts, "b_max", 1.0);
  lm_params_set_bool(opts, "clip", true);
  nout = 1;
  if (lm_call(e, "ScaleIntensityRange", &chw, 1, opts, &scaled, &nout, NULL) < 0) {
    fail(e, "ScaleIntensityRange");
    goto out;
  }

  /* 3. Save: written to a temporary name and renamed, so a failure leaves
  **    nothing behind. */
  lm_params_free(opts);
  lm_params_new(&opts);
  lm_params_set_string(opts, "path", argv[2]);
  nout = 0;
  if (lm_call(e, "SaveNifti", &scaled, 1, opts, NULL, &nout, NULL) < 0) {
    fail(e, "SaveNifti");
    goto out;
  }

  lm_tensor_stats s;
  lm_tensor_stats_compute(scaled, &s);
  char orient[4];
  const int64_t *shape = lm_tensor_shape(scaled);
  printf("%s: %lldx%lldx%lldx%lld %s, range [%g, %g], mean %.4f -> %s\n",
         argv[1], (long long)shape[0], (long long)shape[1], (long long)shape[2],
         (long long)shape[3], lm_tensor_orientation(scaled, orient), s.min,
         s.max, s.mean, argv[2]);
  rc = 0;

out:
  lm_tensor_release(scaled);
  lm_tensor_release(chw);
  lm_tensor_release(load.img);
  lm_params_free(opts);
  lm_engine_release(e);
  return rc;
}
