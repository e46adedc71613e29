/* ScaleIntensityRange's per-element map for the GPU kernels (sir.cu and
 * ScaleIntensityRangePercentiles' percentiles.cu): the CPU kernel's
 * operations in the same order, each rounded on its own (the _rn
 * intrinsics stop nvcc from fusing multiply-adds and from using
 * approximate division), so results agree with the CPU bit for bit. */
#ifndef LMC_SIR_MAP_H
#define LMC_SIR_MAP_H
#include <string.h>

#include "cuda_util.h"
#include "intensity.h"

struct lmc_sir_map {
  xf_sir_f32 f;                               /* float32 path */
  double a_min, range, b_range, b_min, b_max; /* float64 path */
  bool has_b_min, has_b_max, clip, affine;
};

static inline void lmc_sir_map_prepare(const xf_sir *p, lmc_sir_map *m)
{
  memset(m, 0, sizeof *m);
  xf_sir_prepare_f32(p, &m->f);
  m->a_min = p->a_min;
  m->range = p->a_max - p->a_min;
  m->b_range = p->b_max - p->b_min;
  m->b_min = p->b_min;
  m->b_max = p->b_max;
  m->has_b_min = p->has_b_min;
  m->has_b_max = p->has_b_max;
  m->clip = p->clip;
  m->affine = p->has_b_min && p->has_b_max;
}

LMC_HD float lmc_sir_f32(const xf_sir_f32 &f, float x)
{
  if (f.mode == 0) {
    float t = lmc_fsub(x, f.a_min);
    return f.add_b_min ? lmc_fadd(t, f.b_min) : t;
  }
  float y = lmc_fdiv(lmc_fsub(x, f.a_min), f.range);
  if (f.mode == 2) y = lmc_fadd(lmc_fmul(y, f.b_range), f.b_min);
  if (f.clip_lo) y = y < f.lo ? f.lo : y;
  if (f.clip_hi) y = f.hi < y ? f.hi : y;
  return y;
}

LMC_HD double lmc_sir_f64(const lmc_sir_map &a, double x)
{
  double t = lmc_dsub(x, a.a_min);
  if (a.range == 0.0) return a.has_b_min ? lmc_dadd(t, a.b_min) : t;
  t = lmc_ddiv(t, a.range);
  if (a.affine) t = lmc_dadd(lmc_dmul(t, a.b_range), a.b_min);
  if (a.clip && a.has_b_min) t = t < a.b_min ? a.b_min : t;
  if (a.clip && a.has_b_max) t = a.b_max < t ? a.b_max : t;
  return t;
}

/* out[o] (dtype out_dt) = map(in[i] (dtype in_dt)): float64 inputs in
 * double, everything else in float32, as the CPU. */
LMC_HD void lmc_sir_element(const lmc_sir_map &m, const void *in, int64_t i, int in_dt,
                            void *out, int64_t o, int out_dt)
{
  if (in_dt == LM_F64) {
    lmc_store_f64(out, o, out_dt, lmc_sir_f64(m, ((const double *)in)[i]));
  } else {
    float y = lmc_sir_f32(m.f, lmc_load_f32(in, i, in_dt));
    if (out_dt == LM_F32) ((float *)out)[o] = y;
    else lmc_store_f64(out, o, out_dt, (double)y);
  }
}

#endif
