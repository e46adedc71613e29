/* Micro-benchmark of the oneDNN convolutions (models/src/cpu_conv*.c) on the
 * layer shapes that dominate the 3-D U-Nets: one line per case,
 *   NAME DTYPE IMPL median_s min_s GFLOP/s median_cpu_s
 * after one warm-up run (JIT, first touch of the buffers); median_cpu_s is
 * the process CPU time of a run (all threads), the work done whatever the
 * machine's load (run with OMP_WAIT_POLICY=passive so waiting threads do
 * not spin it up).  GFLOP/s counts
 * the layer's own multiply-adds (2 per tap), not the zero taps the
 * sub-pixel form of ConvTranspose adds.  bench/bench_conv.py runs it next to
 * torch.
 *
 * usage: bench_conv [--runs N] [--bf16] [--path subpixel|phases|deconv] [--slab-mb M] [CASE...]
 *   --path  force how ConvTranspose is computed (default: lm_conv_new's
 *           choice); deconv is oneDNN's own deconvolution.
 *   --slab-mb  the sub-pixel form's slab size (lm_conv_slab_bytes); 0: none.
 * OpenMP threads from OMP_NUM_THREADS. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cpu_conv_internal.h"

typedef struct bench_case {
  const char *name;
  int64_t cin, cout, in, k, stride, pad, opad;
  bool transposed;
} bench_case;

static const bench_case cases[] = {
    {"conv32_k3_96", 32, 32, 96, 3, 1, 1, 0, false},
    {"conv32_k3_128", 32, 32, 128, 3, 1, 1, 0, false},
    {"conv1to32_k3_128", 1, 32, 128, 3, 1, 1, 0, false},
    {"deconv64to32_k2s2_64", 64, 32, 64, 2, 2, 0, 0, true},
    {"deconv256to128_k3s2_12", 256, 128, 12, 3, 2, 1, 1, true},
};

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static lm_conv_desc case_desc(const bench_case *bc, bool bf16) {
  lm_conv_desc d = {0};
  d.nsp = 3; d.n = 1; d.cin = bc->cin; d.cout = bc->cout; d.group = 1;
  d.transposed = bc->transposed; d.bf16 = bf16;
  d.act = LM_ACT_LEAKY_RELU; d.alpha = 0.01f;   /* nnU-Net's epilogue */
  for (int j = 0; j < 3; j++) {
    d.in[j] = bc->in; d.k[j] = bc->k; d.stride[j] = bc->stride; d.dil[j] = 1;
    d.pad_lo[j] = d.pad_hi[j] = bc->pad;
    int64_t span = bc->k;
    d.out[j] = bc->transposed ? bc->stride * (bc->in - 1) + span - 2 * bc->pad + bc->opad
                              : (bc->in + 2 * bc->pad - span) / bc->stride + 1;
  }
  return d;
}

static int run_case(const bench_case *bc, bool bf16, lm_conv_path tpath, int runs) {
  lm_conv_desc d = case_desc(bc, bf16);
  size_t in_n = (size_t)(d.cin * d.in[0] * d.in[1] * d.in[2]);
  size_t out_n = (size_t)(d.cout * d.out[0] * d.out[1] * d.out[2]);
  size_t w_n = (size_t)(d.cin * d.cout * d.k[0] * d.k[1] * d.k[2]);
  float *x = malloc(in_n * sizeof *x), *w = malloc(w_n * sizeof *w);
  float *b = malloc((size_t)d.cout * sizeof *b), *y = malloc(out_n * sizeof *y);
  if (!x || !w || !b || !y) return 1;
  uint32_t s = 1;
  for (size_t i = 0; i < in_n; i++) x[i] = (float)((s = s * 1664525u + 1013904223u) >> 9) / 8388608.f - 1.f;
  for (size_t i = 0; i < w_n; i++) w[i] = (float)((s = s * 1664525u + 1013904223u) >> 9) / 8388608.f * 0.1f - 0.05f;
  for (int64_t i = 0; i < d.cout; i++) b[i] = 0.01f * (float)i;
  lm_conv *c = NULL;
  char err[256];
  lm_conv_path path = d.transposed ? tpath : LM_CONV_PATH_AUTO;
  if (lm_conv_new_path(&d, w, b, path, &c, err, sizeof err) != LM_OK) {
    fprintf(stderr, "%s: %s\n", bc->name, err);
    return 1;
  }
  double *t = malloc((size_t)runs * sizeof *t), *cpu = malloc((size_t)runs * sizeof *cpu);
  int rc = lm_conv_run(c, x, y);                  /* warm-up */
  for (int r = 0; r < runs && rc == LM_OK; r++) {
    double t0 = bench_now(), c0 = cpu_now();
    rc = lm_conv_run(c, x, y);
    t[r] = bench_now() - t0;
    cpu[r] = cpu_now() - c0;
  }
  if (rc != LM_OK) {
    fprintf(stderr, "%s: lm_conv_run failed (%d)\n", bc->name, rc);
    return 1;
  }
  qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
  qsort(cpu, (size_t)runs, sizeof *cpu, bench_cmp_double);
  /* multiply-adds of the layer itself: every (ci, co, tap) pair per input
  ** voxel for ConvTranspose, per output voxel for Conv */
  double vox = (double)(d.transposed ? in_n / (size_t)d.cin : out_n / (size_t)d.cout);
  double flop = 2.0 * vox * (double)(d.cin * d.cout * d.k[0] * d.k[1] * d.k[2]);
  printf("%s %s %s %.6f %.6f %.1f %.6f\n", bc->name, bf16 ? "bf16" : "f32", lm_conv_impl(c),
         t[runs / 2], t[0], flop / t[runs / 2] * 1e-9, cpu[runs / 2]);
  fflush(stdout);
  lm_conv_free(c);
  free(t); free(cpu); free(x); free(w); free(b); free(y);
  return 0;
}

int main(int argc, char **argv) {
  int runs = 5, rc = 0;
  bool bf16 = false;
  lm_conv_path tpath = LM_CONV_PATH_AUTO;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--bf16")) bf16 = true;
    else if (!strcmp(argv[i], "--slab-mb") && i + 1 < argc)
      lm_conv_slab_bytes = (size_t)atoi(argv[++i]) << 20;
    else if (!strcmp(argv[i], "--path") && i + 1 < argc) {
      const char *p = argv[++i];
      tpath = !strcmp(p, "subpixel") ? LM_CONV_PATH_SUBPIXEL
              : !strcmp(p, "phases") ? LM_CONV_PATH_PHASES
              : !strcmp(p, "deconv") ? LM_CONV_PATH_DECONV : LM_CONV_PATH_AUTO;
    }
  }
  if (runs < 1) runs = 1;
  if (bf16 && !lm_cpu_has_bf16()) {
    fprintf(stderr, "bench_conv: no native bf16 on this CPU\n");
    return 2;
  }
  const char *names[16];
  int nnames = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") || !strcmp(argv[i], "--path") || !strcmp(argv[i], "--slab-mb")) i++;
    else if (argv[i][0] != '-' && nnames < 16) names[nnames++] = argv[i];
  }
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    bool want = nnames == 0;
    for (int i = 0; i < nnames; i++) want |= !strcmp(names[i], cases[k].name);
    if (want) rc |= run_case(&cases[k], bf16, tpath, runs);
  }
  return rc;
}
