/* Engine unit tests: the CUDA plugin loader without a GPU (the real plugin
 * or none: "no GPU" with a reason, never an error), and with the fake
 * plugin: device tensors, the per-device executor thread, ready events
 * (kept by the storage, passed to the copy to the host, given back when the
 * storage goes) and asynchronous failures surfacing in ToHost. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include "cuda_plugin.h"
#include "lumen.h"
#include "tap.h"

static const char *fake_path;

static lm_engine *engine_with(const char *plugin, bool no_cuda)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.threads = 2;
  cfg.cuda_plugin = plugin;
  cfg.no_cuda = no_cuda;
  lm_engine *e = NULL;
  if (lm_engine_new(&cfg, &e) != LM_OK) TAP_FAIL("lm_engine_new: %s", lm_errmsg(NULL));
  return e;
}

static void test_no_gpu_here(void)
{
  /* Whatever plugin this build finds, this machine has no usable GPU. */
  lm_engine *e = engine_with(NULL, false);
  if (!e) return;
  CHECK_INT(lm_engine_cuda_devices(e), 0);
  CHECK(lm_engine_cuda_api(e) == NULL);
  const char *why = lm_engine_cuda_status(e);
  printf("# cuda status: %s\n", why);
  CHECK(why && strlen(why) > 5);
  lm_tensor *t = NULL;
  int64_t sh[2] = {4, 4};
  CHECK_INT(lm_tensor_new(e, LM_F32, 2, sh, (lm_device){LM_DEVICE_CUDA, 0}, &t), LM_EDEVICE);
  CHECK(t == NULL);
  CHECK_CONTAINS(lm_errmsg(e), "cannot create a tensor on cuda:0");
  CHECK_CONTAINS(lm_errmsg(e), why);
  lm_engine_release(e);
}

static void test_disabled_and_missing(void)
{
  lm_engine *e = engine_with(NULL, true);
  CHECK_STR(lm_engine_cuda_status(e), "CUDA disabled by the configuration (no_cuda)");
  lm_engine_release(e);
  e = engine_with("/nonexistent/liblumen_cuda.so", false);
  CHECK_INT(lm_engine_cuda_devices(e), 0);
  CHECK_CONTAINS(lm_engine_cuda_status(e), "CUDA plugin not loaded");
  CHECK_CONTAINS(lm_engine_cuda_status(e), "/nonexistent/liblumen_cuda.so");
  lm_engine_release(e);
}

static void test_fake_plugin_no_device(void)
{
  setenv("FAKE_CUDA_DEVICES", "0", 1);
  lm_engine *e = engine_with(fake_path, false);
  CHECK_INT(lm_engine_cuda_devices(e), 0);
  CHECK_STR(lm_engine_cuda_status(e), "no CUDA device: fake driver has none");
  CHECK(lm_op_find(e, "FakeNegate") == NULL); /* kernels only with a device */
  lm_engine_release(e);
}

static void on_done(lm_job *job, int status, void *ud)
{
  int *st = ud;
  *st = status;
}

static void test_fake_plugin_device(void)
{
  setenv("FAKE_CUDA_DEVICES", "1", 1);
  lm_engine *e = engine_with(fake_path, false);
  CHECK_INT(lm_engine_cuda_devices(e), 1);
  CHECK_STR(lm_engine_cuda_status(e), "1 device: Fake GPU");
  CHECK(lm_engine_cuda_api(e) != NULL);
  int64_t sh[1] = {5};
  lm_tensor *h, *d;
  CHECK_INT(lm_tensor_new(e, LM_F32, 1, sh, LM_CPU, &h), LM_OK);
  for (int k = 0; k < 5; k++) ((float *)lm_tensor_data(h))[k] = (float)k + 1;
  CHECK_INT(lm_tensor_zeros(e, LM_F32, 1, sh, (lm_device){LM_DEVICE_CUDA, 0}, &d), LM_OK);
  CHECK_INT(((float *)lm_tensor_data(d))[4], 0);
  const lm_cuda_api *api = lm_engine_cuda_api(e);
  char err[64];
  CHECK_INT(api->memcpy_h2d(0, lm_tensor_data(d), lm_tensor_data(h), 20, err, sizeof err), 0);
  lm_engine_stats s;
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.device_bytes, 20);
  /* cuda:1 does not exist. */
  lm_tensor *x = NULL;
  CHECK_INT(lm_tensor_new(e, LM_F32, 1, sh, (lm_device){LM_DEVICE_CUDA, 1}, &x), LM_EDEVICE);
  CHECK_CONTAINS(lm_errmsg(e), "only 1 CUDA device");

  /* The op runs its CUDA kernel on the device thread, async and sync. */
  int status = 1;
  lm_job *job;
  CHECK_INT(lm_call_async(e, "FakeNegate", &d, 1, NULL, on_done, &status, &job), LM_OK);
  lm_engine_run(e, 0);
  CHECK_INT(status, LM_OK);
  CHECK_STR(lm_job_errmsg(job), "");
  lm_tensor *out = lm_job_output(job, 0);
  CHECK(out && lm_tensor_device(out).type == LM_DEVICE_CUDA);
  if (out) CHECK_NEAR(((float *)lm_tensor_data(out))[4], -5, 0);
  lm_job_release(job);
  lm_tensor *o2 = NULL;
  int nout = 1;
  CHECK_INT(lm_call(e, "FakeNegate", &d, 1, NULL, &o2, &nout, NULL), LM_OK);
  CHECK_INT(nout, 1);
  if (o2) CHECK_NEAR(((float *)lm_tensor_data(o2))[0], -1, 0);
  lm_tensor_release(o2);
  /* A CPU input runs the CPU kernel (here: a failing one). */
  lm_tensor *both[1] = {h};
  CHECK_INT(lm_call(e, "FakeNegate", both, 1, NULL, &o2, &nout, NULL), LM_EINTERNAL);
  CHECK_STR(lm_errmsg(e), "FakeNegate: the CPU kernel must not run for device inputs");
  lm_tensor_release(h);
  lm_tensor_release(d);
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.device_bytes, 0);
  CHECK_INT(s.device_pool_bytes, 4096); /* the fake pool's answer, summed over devices */
  lm_engine_release(e);
}

typedef void (*counters_fn)(int *live, int *waits, int *finis, int *bad, void **d2h_ready);

/* The fake plugin's counters.  The engine has it open already; *dl keeps
 * it loaded (with its counters) after the engine has gone. */
static counters_fn fake_counters(void **dl)
{
  *dl = dlopen(fake_path, RTLD_NOW | RTLD_NOLOAD);
  counters_fn fn = NULL;
  if (*dl) *(void **)&fn = dlsym(*dl, "fake_cuda_counters");
  return fn;
}

static lm_tensor *call1(lm_engine *e, const char *op, lm_tensor *in)
{
  lm_tensor *out = NULL;
  int nout = 1;
  if (lm_call(e, op, &in, 1, NULL, &out, &nout, NULL) < 0) return NULL;
  return out;
}

static void test_fake_plugin_ready_events(void)
{
  setenv("FAKE_CUDA_DEVICES", "1", 1);
  lm_engine *e = engine_with(fake_path, false);
  void *dl = NULL;
  counters_fn counters = fake_counters(&dl);
  CHECK(counters != NULL);
  if (!counters) {
    if (dl) dlclose(dl);
    lm_engine_release(e);
    return;
  }
  int live, waits, finis, bad;
  void *seen;
  int64_t sh[2] = {3, 4};
  lm_tensor *h;
  CHECK_INT(lm_tensor_new(e, LM_F32, 2, sh, LM_CPU, &h), LM_OK);
  for (int k = 0; k < 12; k++) ((float *)lm_tensor_data(h))[k] = (float)k;
  CHECK(lm_tensor_cuda_ready(h) == NULL); /* host tensors have none */
  lm_tensor *d = call1(e, "ToDevice", h);
  CHECK(d && lm_tensor_cuda_ready(d) == NULL); /* copies are ordered by the stream */

  /* A kernel's output carries its event; a view shares it (same storage). */
  lm_tensor *n = call1(e, "FakeNegate", d);
  void *ready = n ? lm_tensor_cuda_ready(n) : NULL;
  CHECK(ready != NULL);
  counters(&live, &waits, &finis, &bad, &seen);
  CHECK_INT(live, 1);
  lm_tensor *v = NULL;
  int64_t vs[1] = {12}, vst[1] = {1};
  CHECK_INT(lm_tensor_view(n, 1, vs, vst, 0, &v), LM_OK);
  CHECK(v && lm_tensor_cuda_ready(v) == ready);

  /* ToHost hands the event to the copy, which waits for it. */
  lm_tensor *back = call1(e, "ToHost", v);
  CHECK(back != NULL);
  counters(&live, &waits, &finis, &bad, &seen);
  CHECK(seen == ready);
  if (back) CHECK_NEAR(((float *)lm_tensor_data(back))[11], -11, 0);
  const lm_cuda_api *api = lm_engine_cuda_api(e);
  char err[256] = "";
  CHECK_INT(api->event_wait(0, ready, err, sizeof err), LM_OK);
  counters(&live, &waits, &finis, &bad, &seen);
  CHECK_INT(waits, 1);

  /* Replacing the event gives the old one back. */
  lm_tensor *n2 = call1(e, "FakeNegate", n);
  counters(&live, &waits, &finis, &bad, &seen);
  CHECK_INT(live, 2);
  lm_tensor_release(v);
  lm_tensor_release(n);  /* the storage and its event go with the last view */
  counters(&live, &waits, &finis, &bad, &seen);
  CHECK_INT(live, 1);

  /* A kernel that fails after its op returned: the next synchronisation
   * (ToHost) reports it, naming the device and the earlier op. */
  lm_tensor *f = call1(e, "FakeAsyncFault", n2);
  CHECK(f != NULL);
  lm_tensor *out = NULL;
  int nout = 1;
  CHECK_INT(lm_call(e, "ToHost", &f, 1, NULL, &out, &nout, NULL), LM_ECUDA);
  CHECK_CONTAINS(lm_errmsg(e), "ToHost: copy from cuda:0 to the host failed");
  CHECK_CONTAINS(lm_errmsg(e), "an earlier asynchronous op on this device failed");
  CHECK(out == NULL);
  lm_tensor_release(f);
  lm_tensor_release(n2);
  lm_tensor_release(back);
  lm_tensor_release(d);
  lm_tensor_release(h);
  counters(&live, &waits, &finis, &bad, &seen);
  CHECK_INT(live, 0);
  CHECK_INT(bad, 0);
  lm_engine_release(e);
  /* The executor thread ended and let the plugin drop its thread state. */
  counters(&live, &waits, &finis, &bad, &seen);
  CHECK_INT(finis, 1);
  dlclose(dl);
}

int main(int argc, char **argv)
{
  /* The fake plugin's path: the first argument (meson passes it). */
  fake_path = argc > 1 ? argv[1] : getenv("LUMEN_FAKE_CUDA_PLUGIN");
  unsetenv("LUMEN_CUDA_PLUGIN");
  RUN(test_no_gpu_here);
  RUN(test_disabled_and_missing);
  if (fake_path) {
    RUN(test_fake_plugin_no_device);
    RUN(test_fake_plugin_device);
    RUN(test_fake_plugin_ready_events);
  } else {
    printf("# no fake plugin path given: fake plugin tests not run\n");
  }
  TAP_DONE();
}
