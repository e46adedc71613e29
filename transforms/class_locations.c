/* ClassLocations: nnU-Net v2's foreground class locations
 * (DefaultPreprocessor._sample_foreground_locations), which its training
 * sampler uses to centre oversampled patches on each class. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lumen.h"
#include "transforms.h"
#include "xf_util.h"

/* splitmix64: a small, well-mixed seeded generator (the sample is lumen's
 * own: numpy's RandomState stream is not reproduced). */
static uint64_t cl_next(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias (Lemire's rejection). */
static uint64_t cl_below(uint64_t *s, uint64_t n)
{
  uint64_t lim = -n % n, x;
  do x = cl_next(s); while (x < lim);
  return x % n;
}

typedef struct cl_text {
  char *s;
  size_t len, cap;
  bool oom;
} cl_text;

static void cl_put(cl_text *t, const char *s, size_t n)
{
  if (t->oom) return;
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 4096;
    while (cap < t->len + n + 1) cap *= 2;
    char *p = realloc(t->s, cap);
    if (!p) {
      t->oom = true;
      return;
    }
    t->s = p;
    t->cap = cap;
  }
  memcpy(t->s + t->len, s, n);
  t->len += n;
  t->s[t->len] = 0;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int cl_check(lm_op_ctx *ctx)
{
  lm_tensor *t = lm_ctx_input(ctx, 0);
  int nd = lm_tensor_ndim(t);
  if (nd < 3)
    return lm_ctx_error(ctx, LM_ESHAPE, "label: needs 3 spatial dims, got %d dims", nd);
  const int64_t *sh = lm_tensor_shape(t);
  for (int d = 0; d < nd - 3; d++)
    if (sh[d] != 1)
      return lm_ctx_error(ctx, LM_ESHAPE,
                          "label: leading dim %d has size %" PRId64 " (one label map expected)",
                          d, sh[d]);
  if (lm_arg_int(ctx, "num_samples") < 1)
    return lm_ctx_error(ctx, LM_EINVAL, "num_samples must be at least 1");
  double cov = lm_arg_number(ctx, "min_percent_coverage");
  if (!(cov >= 0 && cov <= 1))
    return lm_ctx_error(ctx, LM_EINVAL, "min_percent_coverage %g must be in [0, 1]", cov);
  return LM_OK;
}

static int cl_run(lm_op_ctx *ctx)
{
  lm_tensor *t = lm_ctx_input(ctx, 0);
  const int nd = lm_tensor_ndim(t);
  const int64_t *sh = lm_tensor_shape(t) + nd - 3;
  const int64_t *st = lm_tensor_strides(t) + nd - 3;
  const int64_t nx = sh[0], ny = sh[1], nz = sh[2], n = nx * ny * nz;
  const lm_dtype dt = lm_tensor_dtype(t);
  const size_t esz = lm_dtype_size(dt);
  const char *base = lm_tensor_data(t);
  int64_t *lab = malloc((size_t)(n > 0 ? n : 1) * sizeof *lab);
  if (!lab) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  /* Voxels in nnU-Net's argwhere order on its (z, y, x) array: x fastest. */
  for (int64_t z = 0; z < nz; z++)
    for (int64_t y = 0; y < ny; y++)
      xf_load_i64(base + (z * st[2] + y * st[1]) * (int64_t)esz, st[0] * (int64_t)esz, dt,
                  lab + (z * ny + y) * nx, nx);
  /* The classes: given, or every label > 0 present, ascending. */
  int nclass = 0;
  int64_t *cls = NULL;
  const double *given = lm_arg_is_set(ctx, "classes") ? lm_arg_numbers(ctx, "classes", &nclass)
                                                      : NULL;
  if (given) {
    cls = malloc((size_t)(nclass ? nclass : 1) * sizeof *cls);
    for (int i = 0; cls && i < nclass; i++) cls[i] = (int64_t)given[i];
  } else {
    int64_t *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof *tmp), m = 0;
    for (int64_t i = 0; tmp && i < n; i++)
      if (lab[i] > 0) tmp[m++] = lab[i];
    if (tmp) {
      qsort(tmp, (size_t)m, sizeof *tmp, cmp_i64);
      for (int64_t i = 0; i < m; i++)
        if (i == 0 || tmp[i] != tmp[i - 1]) tmp[nclass++] = tmp[i];
      cls = tmp;
    }
  }
  int64_t *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
  if (!cls || !idx) {
    free(lab);
    free(cls);
    free(idx);
    return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  }
  const int64_t want = lm_arg_int(ctx, "num_samples");
  const double cov = lm_arg_number(ctx, "min_percent_coverage");
  uint64_t rng = (uint64_t)lm_arg_int(ctx, "seed");
  cl_text js = {0}, counts = {0};
  cl_put(&js, "{", 1);
  cl_put(&counts, "{", 1);
  char num[96];
  for (int c = 0; c < nclass; c++) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
      if (lab[i] == cls[c]) idx[m++] = i;
    /* nnU-Net: min(num_samples, n), at least ceil(n * coverage) */
    int64_t k = m < want ? m : want;
    int64_t kmin = (int64_t)ceil((double)m * cov);
    if (k < kmin) k = kmin;
    for (int64_t i = 0; i < k; i++) {  /* partial Fisher-Yates */
      int64_t j = i + (int64_t)cl_below(&rng, (uint64_t)(m - i));
      int64_t s = idx[i];
      idx[i] = idx[j];
      idx[j] = s;
    }
    int len = snprintf(num, sizeof num, "%s\"%" PRId64 "\":[", c ? "," : "", cls[c]);
    cl_put(&js, num, (size_t)len);
    for (int64_t i = 0; i < k; i++) {
      int64_t v = idx[i];
      len = snprintf(num, sizeof num, "%s[%" PRId64 ",%" PRId64 ",%" PRId64 "]", i ? "," : "",
                     v % nx, (v / nx) % ny, v / (nx * ny));
      cl_put(&js, num, (size_t)len);
    }
    cl_put(&js, "]", 1);
    len = snprintf(num, sizeof num, "%s\"%" PRId64 "\":%" PRId64, c ? "," : "", cls[c], m);
    cl_put(&counts, num, (size_t)len);
  }
  cl_put(&js, "}", 1);
  cl_put(&counts, "}", 1);
  free(lab);
  free(cls);
  free(idx);
  int rc = LM_OK;
  if (js.oom || counts.oom) {
    rc = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  } else {
    lm_params *res = lm_ctx_results(ctx);
    if (!res || lm_params_set_json(res, "locations", js.s) < 0 ||
        lm_params_set_json(res, "counts", counts.s) < 0)
      rc = lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  }
  free(js.s);
  free(counts.s);
  return rc;
}

static const lm_arg_desc cl_args[] = {
  {"classes", LM_ARG_NUMBERS, "nil",
   "labels to sample (nnU-Net: the plans' foreground labels); nil = every label > 0 present"},
  {"num_samples", LM_ARG_INT, "10000", "voxels sampled per class at most (nnU-Net: 10000)"},
  {"min_percent_coverage", LM_ARG_NUMBER, "0.01",
   "but at least this fraction of the class's voxels (nnU-Net: 0.01)"},
  {"seed", LM_ARG_INT, "1234", "seed of the sampler (nnU-Net: 1234)"},
};

const lm_op_desc lm_op_class_locations = {
  .name = "ClassLocations",
  .alias = NULL,
  .summary = "Seeded sample of voxel coordinates per foreground class (nnU-Net's class_locations)",
  .doc =
    "nnU-Net v2 DefaultPreprocessor._sample_foreground_locations: per class c (ascending), "
    "the voxels with label == c, of which k = max(min(num_samples, n), ceil(n * "
    "min_percent_coverage)) are drawn without replacement; a class with no voxel gets an "
    "empty list. nnU-Net's training sampler centres its oversampled foreground patches on "
    "these. The draw is seeded and reproducible (splitmix64 + partial Fisher-Yates over the "
    "voxels in x-fastest order), but it is lumen's own stream, not numpy "
    "RandomState(seed).choice: the coordinates are an equally valid sample, not the same "
    "sample. Input: one label map (X, Y, Z) or (1, X, Y, Z), any dtype (values truncated to "
    "integers). Results: locations = JSON {\"c\": [[x, y, z], ...]} (logical indices of the "
    "spatial dims, lumen's X Y Z order: nnU-Net's arrays are (z, y, x)), counts = JSON "
    "{\"c\": voxels of that class}. No tensor output.",
  .inputs = "label",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "",
  .args = cl_args,
  .nargs = sizeof cl_args / sizeof cl_args[0],
  .flags = 0,
  .check = cl_check,
  .run_cpu = cl_run,
  .run_cuda = NULL,
};
