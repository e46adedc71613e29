/* cuDNN convolutions on a GPU (transforms/cuda/cudnn_conv.h) against the CPU
 * convolution (models/src/cpu_conv.h): the families and every conv
 * of the demo model, float32 / float16 / bfloat16 x NCDHW / NDHWC, on random
 * data, with ms and TFLOP/s per conv; then the 32->32 k3 128^3 timing of
 * inference.md section 7 (fused vs plain, layouts, precisions).
 *
 * Tolerances, as max |gpu - cpu| / max |cpu|, where the CPU gets the same
 * inputs rounded to the precision (so only accumulation order and the output
 * rounding differ): float32 1e-4 (TF32 is filtered out), float16 2e-3 (output
 * rounding 2^-11 plus accumulation), bfloat16 1.6e-2 (2^-8 plus accumulation).
 * Exit 77 without a CUDA device.  Not run against the emulated plugin: cuDNN
 * needs a GPU. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "../c/cudnn_cases.h"
#include "../c/tap.h"
#include "cudnn_conv.h"

static cudnnHandle_t H;
static cudaStream_t S;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;   /* [-1, 1) */
}

static int64_t vol(const int64_t *v, int n)
{
  int64_t p = 1;
  for (int i = 0; i < n; i++) p *= v[i];
  return p;
}

/* [n, c, sp] <-> [n, sp, c] */
static void to_channels_last(const float *src, float *dst, int64_t n, int64_t c, int64_t sp)
{
  for (int64_t b = 0; b < n; b++)
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t s = 0; s < sp; s++) dst[(b * sp + s) * c + ch] = src[(b * c + ch) * sp + s];
}
static void from_channels_last(const float *src, float *dst, int64_t n, int64_t c, int64_t sp)
{
  for (int64_t b = 0; b < n; b++)
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t s = 0; s < sp; s++) dst[(b * c + ch) * sp + s] = src[(b * sp + s) * c + ch];
}

/* The activation, for plans that could not fuse it (the caller's job). */
static float act_of(const lm_conv_desc *d, float v)
{
  switch (d->act) {
  case LM_ACT_RELU: return v > 0 ? v : 0;
  case LM_ACT_LEAKY_RELU: return v >= 0 ? v : d->alpha * v;
  case LM_ACT_ELU: return v >= 0 ? v : d->alpha * expm1f(v);
  case LM_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
  case LM_ACT_TANH: return tanhf(v);
  case LM_ACT_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678f));
  case LM_ACT_SILU: return v / (1.0f + expf(-v));
  case LM_ACT_CLIP: return v < d->alpha ? d->alpha : v > d->beta ? d->beta : v;
  default: return v;
  }
}

static double flops_of(const lm_conv_desc *d)
{
  int64_t kv = vol(d->k, d->nsp);
  if (d->transposed) return 2.0 * d->n * d->cin * vol(d->in, d->nsp) * (d->cout / d->group) * kv;
  return 2.0 * d->n * d->cout * vol(d->out, d->nsp) * (d->cin / d->group) * kv;
}

static void round_to(lmc_prec p, float *v, size_t n)
{
  if (p == LMC_PREC_F32) return;
  uint16_t *tmp = malloc(n * 2);
  lmc_prec_from_f32(p, v, tmp, n);
  lmc_prec_to_f32(p, tmp, v, n);
  free(tmp);
}

typedef struct gpu_bufs {
  void *x, *w, *b, *y, *ws;
} gpu_bufs;

static void bufs_free(gpu_bufs *g)
{
  cudaFree(g->x);
  cudaFree(g->w);
  cudaFree(g->b);
  cudaFree(g->y);
  cudaFree(g->ws);
  memset(g, 0, sizeof *g);
}

/* Mean ms of reps runs after a warm-up; < 0 on failure. */
static double time_runs(lmc_conv *c, const gpu_bufs *g, int reps)
{
  char err[512];
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  double ms = -1;
  if (lmc_conv_run(c, H, g->x, g->w, g->b, g->y, g->ws, err, sizeof err) == LM_OK) {
    cudaEventRecord(e0, S);
    int ok = 1;
    for (int i = 0; i < reps && ok; i++) ok = lmc_conv_run(c, H, g->x, g->w, g->b, g->y, g->ws, err, sizeof err) == LM_OK;
    cudaEventRecord(e1, S);
    float f = 0;
    if (ok && cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&f, e0, e1) == cudaSuccess)
      ms = f / reps;
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ms;
}

/* One conv in one precision and layout: GPU vs CPU, then timing. */
static void run_case(const char *name, const lm_conv_desc *d, lmc_prec prec, bool cl)
{
  static const double tol[] = {1e-4, 2e-3, 1.6e-2};
  char err[512] = "";
  const char *lay = cl ? "channels-last" : "channels-first";
  int64_t insp = vol(d->in, d->nsp), outsp = vol(d->out, d->nsp), kv = vol(d->k, d->nsp);
  int64_t nx = d->n * d->cin * insp, ny = d->n * d->cout * outsp;
  int64_t nw = (d->transposed ? d->cin * (d->cout / d->group) : d->cout * (d->cin / d->group)) * kv;
  float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(d->cout * 4), *ref = malloc(ny * 4),
        *got = malloc(ny * 4), *tmp = malloc((nx > ny ? nx : ny) * 4);
  void *xh = malloc(nx * 4), *yh = malloc(ny * 4);
  float wscale = 1.0f / sqrtf((float)(nw / (d->transposed ? d->cin : d->cout)));
  for (int64_t i = 0; i < nx; i++) x[i] = frand();
  for (int64_t i = 0; i < nw; i++) w[i] = frand() * wscale;
  for (int64_t i = 0; i < d->cout; i++) b[i] = frand() * 0.1f;
  round_to(prec, x, nx);
  round_to(prec, w, nw);
  round_to(prec, b, d->cout);

  lm_conv_desc cd = *d;
  cd.bf16 = false;
  lm_conv *cpu = NULL;
  if (lm_conv_new(&cd, w, b, &cpu, err, sizeof err) < 0 || lm_conv_run(cpu, x, ref) < 0) {
    TAP_FAIL("%s: CPU conv: %s", name, err);
    goto out;
  }

  lmc_conv *c = NULL;
  lm_act fused = LM_ACT_NONE;
  int rc = lmc_conv_new(H, d, prec, cl, &c, &fused, err, sizeof err);
  if (rc < 0) {
    TAP_FAIL("%s %s %s: lmc_conv_new: %s", name, lmc_prec_name(prec), lay, err);
    goto out;
  }
  lmc_conv *again = NULL;
  CHECK_INT(lmc_conv_new(H, d, prec, cl, &again, NULL, err, sizeof err), LM_OK);
  CHECK(again == c);   /* the plan cache */
  lmc_conv_free(again);

  void *wp = NULL, *bp = NULL;
  size_t wb = 0, bb = 0;
  CHECK_INT(lmc_conv_pack_weights(c, w, b, &wp, &wb, &bp, &bb, err, sizeof err), LM_OK);
  size_t es = lmc_prec_size(prec), wsz = lmc_conv_workspace_size(c);
  gpu_bufs g = {0};
  bool ok = cudaMalloc(&g.x, nx * es) == cudaSuccess && cudaMalloc(&g.w, wb) == cudaSuccess &&
            cudaMalloc(&g.b, bb) == cudaSuccess && cudaMalloc(&g.y, ny * es) == cudaSuccess &&
            (wsz == 0 || cudaMalloc(&g.ws, wsz) == cudaSuccess);
  if (!ok) {
    TAP_FAIL("%s: cudaMalloc failed", name);
    goto gpu_out;
  }
  if (cl) to_channels_last(x, tmp, d->n, d->cin, insp);
  else memcpy(tmp, x, nx * 4);
  lmc_prec_from_f32(prec, tmp, xh, nx);
  cudaMemcpy(g.x, xh, nx * es, cudaMemcpyHostToDevice);
  cudaMemcpy(g.w, wp, wb, cudaMemcpyHostToDevice);
  cudaMemcpy(g.b, bp, bb, cudaMemcpyHostToDevice);
  cudaMemset(g.y, 0xff, ny * es);   /* NaNs: every output must be written */
  cudaDeviceSynchronize();           /* the memset ran on the legacy stream, S does not wait for it */
  rc = lmc_conv_run(c, H, g.x, g.w, g.b, g.y, g.ws, err, sizeof err);
  cudaError_t ce = cudaStreamSynchronize(S);
  if (rc < 0 || ce != cudaSuccess) {
    TAP_FAIL("%s %s %s: run: %s %s", name, lmc_prec_name(prec), lay, err, cudaGetErrorString(ce));
    goto gpu_out;
  }
  cudaMemcpy(yh, g.y, ny * es, cudaMemcpyDeviceToHost);
  lmc_prec_to_f32(prec, yh, tmp, ny);
  if (cl) from_channels_last(tmp, got, d->n, d->cout, outsp);
  else memcpy(got, tmp, ny * 4);
  if (fused == LM_ACT_NONE && d->act != LM_ACT_NONE)
    for (int64_t i = 0; i < ny; i++) got[i] = act_of(d, got[i]);
  double maxref = 1e-6, maxerr = 0;
  int64_t bad = -1;
  for (int64_t i = 0; i < ny; i++) {
    double e = fabs((double)got[i] - ref[i]);
    if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    if (!(e <= maxerr)) {
      maxerr = isnan(e) ? INFINITY : e;
      bad = i;
    }
  }
  double rel = maxerr / maxref;
  if (!(rel <= tol[prec]))
    TAP_FAIL("%s %s %s: max error %.3g of max %.3g (rel %.3g > %.3g) at %lld: gpu %g cpu %g", name,
             lmc_prec_name(prec), lay, maxerr, maxref, rel, tol[prec], (long long)bad, bad >= 0 ? got[bad] : 0,
             bad >= 0 ? ref[bad] : 0);
  double ms = time_runs(c, &g, 20);
  char what[128];
  lmc_conv_describe(c, what, sizeof what);
  printf("# %-40s %-8s %-14s %8.3f ms %7.2f TFLOP/s  rel err %.2e  %s\n", name, lmc_prec_name(prec), lay, ms,
         ms > 0 ? flops_of(d) / (ms * 1e9) : 0, rel, what);
gpu_out:
  bufs_free(&g);
  free(wp);
  free(bp);
  lmc_conv_free(c);
out:
  lm_conv_free(cpu);
  free(x);
  free(w);
  free(b);
  free(ref);
  free(got);
  free(tmp);
  free(xh);
  free(yh);
}

static void run_all(const conv_case *c, int n)
{
  static const lmc_prec precs[] = {LMC_PREC_F32, LMC_PREC_F16, LMC_PREC_BF16};
  for (int i = 0; i < n; i++)
    for (int p = 0; p < 3; p++)
      for (int cl = 0; cl < 2; cl++) run_case(c[i].name, &c[i].d, precs[p], cl);
}

static void test_families(void)
{
  conv_case c[32];
  int n = cc_families(c, 32);
  run_all(c, n);
}

static void test_demo_model(void)
{
  conv_case c[64];
  char err[512];
  int n = cc_demo_model(c, 64, err, sizeof err);
  if (n < 1) {
    TAP_FAIL("demo model: %s", n < 0 ? err : "no convs");
    return;
  }
  run_all(c, n);
}

/* inference.md section 7.1: 32->32 k3 at 128^3, fused bias + LeakyReLU vs
** conv + bias, every precision and layout (timing only); tune: with
** LUMEN_CUDNN_AUTOTUNE=8 (the fastest of the first 8 plans that finalize). */
static void time_128(bool tune, bool fuse, lmc_prec prec, bool cl)
{
  if (tune)
    setenv("LUMEN_CUDNN_AUTOTUNE", "8", 1);
  else
    unsetenv("LUMEN_CUDNN_AUTOTUNE");
  lm_conv_desc d = cc_make(3, 1, 32, 32, 1, 128, 3, 1, 1, 1, false, 0, fuse ? LM_ACT_LEAKY_RELU : LM_ACT_NONE,
                           0.01f, 0);
  char err[512] = "";
  lmc_conv *c = NULL;
  int rc = lmc_conv_new(H, &d, prec, cl, &c, NULL, err, sizeof err);
  unsetenv("LUMEN_CUDNN_AUTOTUNE");
  if (rc < 0) {
    TAP_FAIL("128^3 %s: %s", lmc_prec_name(prec), err);
    return;
  }
  size_t es = lmc_prec_size(prec), nx = (size_t)32 * 128 * 128 * 128, nw = 32 * 32 * 27,
         wsz = lmc_conv_workspace_size(c);
  gpu_bufs g = {0};
  if (cudaMalloc(&g.x, nx * es) == cudaSuccess && cudaMalloc(&g.y, nx * es) == cudaSuccess &&
      cudaMalloc(&g.w, nw * es) == cudaSuccess && cudaMalloc(&g.b, 32 * es) == cudaSuccess &&
      (wsz == 0 || cudaMalloc(&g.ws, wsz) == cudaSuccess)) {
    cudaMemset(g.x, 0, nx * es);
    cudaMemset(g.w, 0, nw * es);
    cudaMemset(g.b, 0, 32 * es);
    cudaDeviceSynchronize();
    double ms = time_runs(c, &g, 20);
    CHECK(ms > 0);
    char what[128];
    lmc_conv_describe(c, what, sizeof what);
    printf("# 128^3 32->32 k3 %-16s %-8s %-14s%s %8.3f ms %7.2f TFLOP/s  %s\n",
           fuse ? "+bias+LeakyReLU" : "+bias", lmc_prec_name(prec), cl ? "channels-last" : "channels-first",
           tune ? " autotuned" : "", ms, ms > 0 ? flops_of(&d) / (ms * 1e9) : 0, what);
  } else {
    TAP_FAIL("128^3: cudaMalloc failed");
  }
  bufs_free(&g);
  lmc_conv_free(c);
}

static void test_timing_128(void)
{
  static const lmc_prec precs[] = {LMC_PREC_F32, LMC_PREC_F16, LMC_PREC_BF16};
  for (int fuse = 1; fuse >= 0; fuse--)
    for (int p = 0; p < 3; p++)
      for (int cl = 1; cl >= 0; cl--) time_128(false, fuse, precs[p], cl);
  /* Autotuning only where it matters: half precisions, channels-last. */
  for (int fuse = 1; fuse >= 0; fuse--)
    for (int p = 1; p < 3; p++) time_128(true, fuse, precs[p], true);
}

int main(void)
{
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    char why[256];
    snprintf(why, sizeof why, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorName(e) : "0 devices");
    TAP_SKIP_ALL(why);
  }
  cudnnStatus_t st = cudnnCreate(&H);
  if (st != CUDNN_STATUS_SUCCESS) {
    printf("Bail out! cudnnCreate: %s\n", cudnnGetErrorString(st));
    return 1;
  }
  cudaStreamCreateWithFlags(&S, cudaStreamNonBlocking);
  cudnnSetStream(H, S);
  struct cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  printf("# %s, cuDNN %zu (built against %d)\n", prop.name, cudnnGetVersion(), CUDNN_VERSION);
  RUN(test_families);
  RUN(test_demo_model);
  RUN(test_timing_128);
  cudnnDestroy(H);
  cudaStreamDestroy(S);
  TAP_DONE();
}
