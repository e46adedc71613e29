/* The engine of a GPU test: exit 77 (skipped) without a CUDA device, the
 * reason in the TAP plan; and ToDevice as one call.  Shared by every test in
 * tests/gpu (the emulated plugin provides a device everywhere). */
#ifndef LM_GPU_ENGINE_H
#define LM_GPU_ENGINE_H
#include <stdio.h>

#include "../c/test_transforms_util.h"

static void gpu_engine_start(void)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.threads = 2;
  if (lm_engine_new(&cfg, &E) != LM_OK) {
    printf("Bail out! lm_engine_new failed\n");
    exit(1);
  }
  if (lm_engine_cuda_devices(E) == 0) {
    char why[512];
    const char *st = lm_engine_cuda_status(E);
    snprintf(why, sizeof why, "%s%s",
             strncmp(st, "no CUDA device", 14) == 0 ? "" : "no CUDA device: ", st);
    lm_engine_release(E);
    TAP_SKIP_ALL(why);
  }
}

static lm_tensor *gpu_to(lm_tensor *t, const char *device)
{
  lm_params *p = params();
  lm_params_set_string(p, "device", device);
  lm_tensor *out = call("ToDevice", t, p, NULL);
  lm_params_free(p);
  return out;
}

#endif
