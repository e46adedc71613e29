/* Sampling positions as MONAI 1.4 computes them on torch 1.13's CPU path, so
 * that a nearest-neighbour resampling breaks exact half-way ties where
 * MONAI's does.  Such ties are common: undoing 2 mm -> 2.5 mm maps output
 * slice k to 1.25 k, and every fourth slice lies half-way between two.  The
 * exact position is k.5; which neighbour MONAI takes depends on the last
 * bits its float64 arithmetic leaves, so this file repeats that arithmetic
 * operation by operation (checked against MONAI's Invertd on every slice in
 * tests/parity/test_restore_monai.py).  Compiled with -ffp-contract=off:
 * the only fused operations are the explicit fma() calls that mirror
 * torch's AVX2 kernel. */
#include <math.h>

#include "resample.h"

/* torch.linspace(-1, 1, n)[i] in float64: the AVX2 kernel fills 4-wide
 * vectors, two per step while 8 elements remain, from a base computed with
 * a fused multiply-add (from the start below the half-way index, from the
 * end above it) plus j * step; the tail goes element by element. */
static double torch_linspace_at(int64_t n, int64_t i)
{
  double step = (1.0 - -1.0) / (double)(n - 1);
  int64_t half = n / 2, body = n / 8 * 8;
  int64_t b = i < body ? i / 4 * 4 : i;
  double base = b < half ? fma(step, (double)b, -1.0)
                         : fma(-step, (double)(n - b - 1), 1.0);
  return i == b ? base : base + (double)(i - b) * step;
}

double xf_torch_grid_coord(double xs, double xt, int64_t n_in, int64_t n_out,
                           int64_t o)
{
  /* monai.networks.utils.normalize_transform (align_corners=False): scale
   * 2/n, shift 1/n - 1; the output side inverted by LAPACK's dgesv. */
  double s = 2.0 / (double)n_in, s_shift = 1.0 / (double)n_in - 1.0;
  double d = 2.0 / (double)n_out, d_shift = 1.0 / (double)n_out - 1.0;
  double di = 1.0 / d, di_shift = -d_shift / d;
  /* to_norm_affine: (src_norm @ xform) @ inv(dst_norm), torch's small bmm
   * summing products in index order. */
  double p = s * xs, p_shift = s * xt + s_shift;
  double r = p * di, r_shift = p * di_shift + p_shift;
  /* affine_grid: base = linspace * (n - 1) / n, then the grid bmm (BLAS) */
  double base = 0;
  if (n_out > 1)
    base = torch_linspace_at(n_out, o) * (double)(n_out - 1) / (double)n_out;
  double g = base * r + r_shift;
  /* grid_sampler_unnormalize (align_corners=False) */
  return ((g + 1.0) * (double)n_in - 1.0) / 2.0;
}
