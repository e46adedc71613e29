/* The CUDA plugin's device runtime (docs/architecture.md, "GPU runtime"):
 * large copies through the staging chunks (odd sizes, strided views), ready
 * events on kernel outputs, a chain of ops queued back to back with its
 * intermediates released at once (stream-ordered frees, pool reuse) against
 * the same chain on the CPU, and the memory pool's accounting.
 *
 * It also prints timings for the real-GPU run: N small ops with one
 * synchronisation at the end against N ops each followed by ToHost (the
 * first must be clearly faster when ops do not synchronise), and the
 * ToDevice / ToHost bandwidth of a large tensor (staged, overlapped
 * copies).  Timings are printed, not asserted: the values are.
 * Exits 77 (skipped) without a CUDA device. */
#include <stdio.h>
#include <time.h>

#include "../../engine/src/cuda_plugin.h"
#include "gpu_engine.h"

static bool emulated;

/* gpu_engine_start, then the emulation's chunk size. */
static void runtime_engine_start(void)
{
  gpu_engine_start();
  const char *st = lm_engine_cuda_status(E);
  emulated = strstr(st, "emulated") != NULL;
  /* The runtime reads this at the device's first use (below, not at engine
   * start): tiny chunks in the emulation run the staged loops over hundreds
   * of chunks; a GPU keeps the default so the bandwidth printed is real. */
  if (emulated) setenv("LUMEN_CUDA_STAGING_BYTES", "65536", 1);
  printf("# %s\n", st);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A float32 tensor of n elements, values from a cheap hash so that any
 * misplaced chunk shows. */
static lm_tensor *pattern(int64_t n)
{
  lm_tensor *t = NULL;
  if (lm_tensor_new(E, LM_F32, 1, &n, LM_CPU, &t) != LM_OK) return NULL;
  float *p = lm_tensor_data(t);
  for (int64_t i = 0; i < n; i++) p[i] = (float)((uint32_t)(i * 2654435761u) >> 8);
  return t;
}

static bool same_bytes(const lm_tensor *a, const lm_tensor *b)
{
  return a && b && lm_tensor_nbytes(a) == lm_tensor_nbytes(b) &&
         memcmp(lm_tensor_data(a), lm_tensor_data(b), lm_tensor_nbytes(a)) == 0;
}

/* Sizes around the direct/staged threshold and chunk boundaries, through
 * ToDevice and ToHost, and the bandwidth of the largest. */
static void test_copies(void)
{
  const int64_t sizes[] = {1, 1000, 65536 / 4, 65536 / 4 + 1, 262144 / 4 + 3, 9000001};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    lm_tensor *h = pattern(sizes[k]);
    double t0 = now();
    lm_tensor *d = gpu_to(h, "cuda");
    double t1 = now();
    lm_tensor *back = d ? call("ToHost", d, NULL, NULL) : NULL;
    double t2 = now();
    if (!same_bytes(h, back)) TAP_FAIL("round trip of %lld floats differs", (long long)sizes[k]);
    if (sizes[k] == 9000001) {
      /* ToDevice returns once the data is staged; ToHost includes the wait
       * for the upload's last DMA. */
      double mb = (double)lm_tensor_nbytes(h) / 1e6;
      printf("# %.0f MB: ToDevice %.2f ms (%.1f GB/s queued), ToHost %.2f ms (%.1f GB/s)\n", mb,
             (t1 - t0) * 1e3, mb / 1e3 / (t1 - t0), (t2 - t1) * 1e3, mb / 1e3 / (t2 - t1));
    }
    lm_tensor_release(back);
    lm_tensor_release(d);
    lm_tensor_release(h);
  }
}

/* A strided device view comes back through the span copy, staged too. */
static void test_strided_view_to_host(void)
{
  int64_t n = 3 * 1000 * 700;
  lm_tensor *h = pattern(n), *hv = NULL, *d = NULL, *dv = NULL;
  int64_t shape[2] = {700, 1000}, strides[2] = {1, 700 * 3};
  /* Every third column block: (700, 1000) with a gap, starting at 5. */
  CHECK_INT(lm_tensor_view(h, 2, shape, strides, 5, &hv), LM_OK);
  d = gpu_to(h, "cuda");
  CHECK(d != NULL);
  if (d) CHECK_INT(lm_tensor_view(d, 2, shape, strides, 5, &dv), LM_OK);
  lm_tensor *back = dv ? call("ToHost", dv, NULL, NULL) : NULL;
  CHECK(back != NULL);
  int64_t bad = 0;
  for (int64_t p = 0; back && p < 700 * 1000; p++)
    if (at(back, p) != at(hv, p)) bad++;
  CHECK_INT(bad, 0);
  lm_tensor_release(back);
  lm_tensor_release(dv);
  lm_tensor_release(d);
  lm_tensor_release(hv);
  lm_tensor_release(h);
}

static lm_params *sir_params(int k)
{
  /* Alternating windows: each op changes every value, and the chain's
   * result depends on the order of all of them. */
  lm_params *p = params();
  lm_params_set_number(p, "a_min", k % 2 ? -3 : 1);
  lm_params_set_number(p, "a_max", k % 2 ? 5 : 3);
  lm_params_set_number(p, "b_min", k % 3 ? -1 : 0);
  lm_params_set_number(p, "b_max", 2);
  lm_params_set_bool(p, "clip", k % 5 == 0);
  return p;
}

/* x -> N ops -> (optionally ToHost after each) ; intermediates released at
 * once.  Returns the final tensor on the host. */
static lm_tensor *chain(lm_tensor *x, int n, bool on_gpu, bool sync_each)
{
  lm_tensor *cur = on_gpu ? gpu_to(x, "cuda") : lm_tensor_retain(x);
  for (int k = 0; cur && k < n; k++) {
    lm_params *p = sir_params(k);
    lm_tensor *next = call("ScaleIntensityRange", cur, p, NULL);
    lm_params_free(p);
    if (on_gpu && next && k == 0) CHECK(lm_tensor_cuda_ready(next) != NULL);
    /* Released while the kernel reading it may still be queued: the
     * stream-ordered free keeps the block until it has run. */
    lm_tensor_release(cur);
    cur = next;
    if (on_gpu && sync_each && cur) {
      lm_tensor *h = call("ToHost", cur, NULL, NULL);
      CHECK(h != NULL);
      lm_tensor_release(h);
    }
  }
  if (!cur || !on_gpu) return cur;
  lm_tensor *h = call("ToHost", cur, NULL, NULL);
  lm_tensor_release(cur);
  return h;
}

static void test_chain_no_sync(void)
{
  int64_t shape[3] = {64, 48, 32};
  lm_tensor *x = NULL;
  CHECK_INT(lm_tensor_new(E, LM_F32, 3, shape, LM_CPU, &x), LM_OK);
  float *p = lm_tensor_data(x);
  for (int64_t i = 0; i < lm_tensor_numel(x); i++) p[i] = (float)(i % 977) * 0.01f - 2.0f;
  const int n = 40;
  lm_tensor *cpu = chain(x, n, false, false);
  /* Warm-up: streams, pool, staging and the kernels' first launch. */
  lm_tensor *warm = chain(x, 2, true, false);
  lm_tensor_release(warm);
  double t0 = now();
  lm_tensor *gpu = chain(x, n, true, false);
  double t1 = now();
  lm_tensor *gpu_sync = chain(x, n, true, true);
  double t2 = now();
  CHECK(same_bytes(cpu, gpu));      /* ScaleIntensityRange is exact on the GPU */
  CHECK(same_bytes(cpu, gpu_sync));
  printf("# %d ops on %lld floats: queued back to back %.2f ms (%.1f us/op), "
         "ToHost after each %.2f ms (%.1f us/op), ratio %.2f\n",
         n, (long long)lm_tensor_numel(x), (t1 - t0) * 1e3, (t1 - t0) * 1e6 / n,
         (t2 - t1) * 1e3, (t2 - t1) * 1e6 / n, (t2 - t1) / (t1 - t0));
  lm_tensor_release(gpu_sync);
  lm_tensor_release(gpu);
  lm_tensor_release(cpu);
  lm_tensor_release(x);
}

/* Ready events: kernel outputs carry one, the plugin's wait accepts it,
 * views share it. */
static void test_ready_events(void)
{
  lm_tensor *h = pattern(4096);
  lm_tensor *d = gpu_to(h, "cuda");
  lm_params *p = sir_params(1);
  lm_tensor *y = d ? call("ScaleIntensityRange", d, p, NULL) : NULL;
  lm_params_free(p);
  void *ready = lm_tensor_cuda_ready(y);
  CHECK(ready != NULL);
  const lm_cuda_api *api = lm_engine_cuda_api(E);
  char err[256] = "";
  CHECK_INT(api->event_wait(0, ready, err, sizeof err), LM_OK);
  CHECK_INT(api->event_wait(0, NULL, err, sizeof err), LM_OK); /* the whole stream */
  lm_tensor *v = NULL;
  int64_t shape[1] = {100}, strides[1] = {2};
  if (y) CHECK_INT(lm_tensor_view(y, 1, shape, strides, 7, &v), LM_OK);
  CHECK(v && lm_tensor_cuda_ready(v) == ready);
  lm_tensor_release(v);
  lm_tensor_release(y);
  lm_tensor_release(d);
  lm_tensor_release(h);
}

/* Everything released: no live device bytes; a GPU's pool keeps what it
 * had for reuse (the release threshold), the emulation has no pool. */
static void test_pool_accounting(void)
{
  lm_engine_stats s;
  lm_engine_stats_get(E, &s);
  printf("# device bytes live %lld, held by the pool %lld\n", (long long)s.device_bytes,
         (long long)s.device_pool_bytes);
  CHECK_INT(s.device_bytes, 0);
  if (emulated) CHECK_INT(s.device_pool_bytes, 0);
  else CHECK(s.device_pool_bytes >= 36000000); /* the 36 MB copy's block stayed cached */
}

int main(void)
{
  runtime_engine_start();
  RUN(test_copies);
  RUN(test_strided_view_to_host);
  RUN(test_ready_events);
  RUN(test_chain_no_sync);
  RUN(test_pool_accounting);
  lm_engine_release(E);
  TAP_DONE();
}
