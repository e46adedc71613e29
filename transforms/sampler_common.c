/* Seeded generator, patch batches and centre lists for the samplers. */
#include "sampler_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xf_util.h"

static uint64_t splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void xf_rng_seed(xf_rng *r, uint64_t seed)
{
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t xf_rng_next(xf_rng *r)
{
  uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

int64_t xf_rng_below(xf_rng *r, int64_t n)
{
  if (n <= 1) return 0;
  uint64_t un = (uint64_t)n, limit = UINT64_MAX - UINT64_MAX % un, x;
  do x = xf_rng_next(r); while (x >= limit);
  return (int64_t)(x % un);
}

double xf_rng_unit(xf_rng *r)
{
  return (double)(xf_rng_next(r) >> 11) * 0x1.0p-53;
}

int xf_check_same_spatial(lm_op_ctx *ctx, lm_tensor *a, lm_tensor *b, int nsp)
{
  int na = lm_tensor_ndim(a), nb = lm_tensor_ndim(b);
  for (int d = 0; d < nsp; d++)
    if (nb < nsp || lm_tensor_shape(b)[nb - nsp + d] != lm_tensor_shape(a)[na - nsp + d])
      return lm_ctx_error(ctx, LM_ESHAPE, "the label's spatial shape does not "
                          "match the image's (spatial dim %d)", d + 1);
  return LM_OK;
}

int xf_patch_batch(lm_op_ctx *ctx, lm_tensor *in, int nsp, int64_t n,
                   const int64_t *starts, const int64_t *size,
                   xf_pad_mode mode, double value, const char *op, int slot)
{
  const int nd = lm_tensor_ndim(in);
  if (nd + 1 > LM_MAX_DIMS)
    return lm_ctx_error(ctx, LM_ESHAPE, "a %d-d input leaves no room for the "
                        "batch axis", nd);
  int64_t shape[LM_MAX_DIMS];
  int order[LM_MAX_DIMS], iorder[LM_MAX_DIMS];
  shape[0] = n;
  for (int d = 0; d < nd; d++)
    shape[d + 1] = d < nd - nsp ? lm_tensor_shape(in)[d] : size[d - (nd - nsp)];
  xf_memory_order(in, iorder);
  order[0] = 0;
  for (int d = 0; d < nd; d++) order[d + 1] = iorder[d] + 1;
  lm_tensor *out = NULL;
  int st = lm_tensor_new_ordered(lm_ctx_engine(ctx), lm_tensor_dtype(in),
                                 nd + 1, shape, order, LM_CPU, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the patches");
  for (int64_t i = 0; i < n && st >= 0; i++) {
    lm_tensor *one = NULL, *patch = NULL;
    st = lm_tensor_narrow(out, 0, i, 1, &one);
    if (st >= 0) st = lm_tensor_squeeze(one, 0, &patch);
    if (st >= 0)
      st = xf_crop_box_into(ctx, in, nsp, starts + i * nsp, mode, value, patch);
    lm_tensor_release(patch);
    lm_tensor_release(one);
  }
  if (st < 0) {
    lm_tensor_release(out);
    return st == LM_ECANCELED ? st : lm_ctx_error(ctx, st, "cannot copy the "
                                                  "patches");
  }
  double aff[16];
  static const int64_t zero[3] = {0, 0, 0};
  xf_box_affine(lm_tensor_affine(in), nsp, n > 0 ? starts : zero, aff);
  lm_tensor_set_affine(out, aff);
  const char *lay = lm_tensor_layout(in);
  if ((int)strlen(lay) == nd) {
    char l2[LM_MAX_DIMS + 2] = "N";
    memcpy(l2 + 1, lay, (size_t)nd + 1);
    lm_tensor_set_layout(out, l2);
  }
  lm_tensor_trace_copy(out, in);
  /* The params text holds every start, so it is sized by n. */
  size_t cap = (size_t)(n * nsp + nsp) * 24 + 96;
  char *params = malloc(cap), sz[96];
  if (!params) {
    lm_tensor_release(out);
    return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  }
  xf_format_ints(sz, sizeof sz, size, nsp);
  size_t used = (size_t)snprintf(params, cap, "starts=");
  xf_format_ints(params + used, cap - used, starts, (int)(n * nsp));
  used = strlen(params);
  snprintf(params + used, cap - used, ";size=%s;num_samples=%lld", sz,
           (long long)n);
  st = lm_tensor_trace_push(out, op, params, nd, lm_tensor_shape(in),
                            lm_tensor_affine(in));
  free(params);
  if (st < 0) {
    lm_tensor_release(out);
    return lm_ctx_error(ctx, st, "cannot record the trace");
  }
  return lm_ctx_set_output(ctx, slot, out);
}

/* Invert the spatial block of the affine (nsp x nsp, Gauss-Jordan with
 * partial pivoting); false when singular. */
static bool solve(const double *aff, int nsp, const double *w, double *v)
{
  double m[3][4];
  for (int r = 0; r < nsp; r++) {
    for (int c = 0; c < nsp; c++) m[r][c] = aff[r * 4 + c];
    m[r][nsp] = w[r] - aff[r * 4 + 3];
  }
  for (int c = 0; c < nsp; c++) {
    int p = c;
    for (int r = c + 1; r < nsp; r++)
      if (fabs(m[r][c]) > fabs(m[p][c])) p = r;
    if (fabs(m[p][c]) < 1e-12) return false;
    for (int k = 0; k <= nsp; k++) {
      double t = m[c][k]; m[c][k] = m[p][k]; m[p][k] = t;
    }
    for (int r = 0; r < nsp; r++) {
      if (r == c) continue;
      double f = m[r][c] / m[c][c];
      for (int k = c; k <= nsp; k++) m[r][k] -= f * m[c][k];
    }
  }
  for (int r = 0; r < nsp; r++) v[r] = m[r][nsp] / m[r][r];
  return true;
}

int xf_arg_centers(lm_op_ctx *ctx, const char *opt, lm_tensor *in, int nsp,
                   int64_t **out, int64_t *count)
{
  *out = NULL;
  *count = 0;
  if (!lm_arg_is_set(ctx, opt)) return LM_OK;
  int n = 0;
  const double *v = lm_arg_numbers(ctx, opt, &n);
  if (n % nsp != 0)
    return lm_ctx_error(ctx, LM_EINVAL, "option '%s' has %d numbers, not a "
                        "multiple of %d (one centre = %d coordinates)", opt, n,
                        nsp, nsp);
  const char *coords = lm_arg_string(ctx, "coords");
  bool world = coords && !strcmp(coords, "world");
  if (coords && !world && strcmp(coords, "voxel"))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'coords' = '%s' is not "
                        "'voxel' or 'world'", coords);
  if (n == 0) return LM_OK;
  int64_t *c = malloc(sizeof(int64_t) * (size_t)n);
  if (!c) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  for (int i = 0; i < n / nsp; i++) {
    double p[3];
    for (int d = 0; d < nsp; d++) p[d] = v[i * nsp + d];
    if (world && !solve(lm_tensor_affine(in), nsp, v + i * nsp, p)) {
      free(c);
      return lm_ctx_error(ctx, LM_EINVAL, "the image's affine is singular: "
                          "world centres cannot be mapped to voxels");
    }
    for (int d = 0; d < nsp; d++) {
      if (!isfinite(p[d]) || fabs(p[d]) > 1e15) {
        free(c);
        return lm_ctx_error(ctx, LM_EINVAL, "option '%s': centre %d is not "
                            "finite", opt, i + 1);
      }
      c[i * nsp + d] = (int64_t)nearbyint(p[d]);
    }
  }
  *out = c;
  *count = n / nsp;
  return LM_OK;
}
