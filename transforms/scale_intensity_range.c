/* ScaleIntensityRange: MONAI's intensity window (semantics.md §5.1). */
#include <math.h>
#include <string.h>

#include "intensity.h"
#include "xf_util.h"

void xf_sir_prepare_f32(const xf_sir *p, xf_sir_f32 *f)
{
  memset(f, 0, sizeof *f);
  /* MONAI computes a_max - a_min and b_max - b_min on Python floats
   * (double); torch then rounds each scalar operand to float32. */
  double range = p->a_max - p->a_min;
  f->a_min = (float)p->a_min;
  f->b_min = (float)p->b_min;
  if (range == 0.0) {
    f->mode = 0;
    f->add_b_min = p->has_b_min;
    return; /* MONAI returns before the clip */
  }
  f->range = (float)range;
  if (p->has_b_min && p->has_b_max) {
    f->mode = 2;
    f->b_range = (float)(p->b_max - p->b_min);
  } else {
    f->mode = 1;
  }
  f->clip_lo = p->clip && p->has_b_min;
  f->clip_hi = p->clip && p->has_b_max;
  f->lo = (float)p->b_min;
  f->hi = (float)p->b_max;
}

/* Four lanes of float (SSE2, the x86-64 baseline) with GCC/clang vector extensions: the build's -O2
 * does not vectorise these loops by itself, and ScaleIntensityRange is the
 * op whose speed matters.  Lane arithmetic is the same IEEE float32
 * arithmetic as the scalar tail. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_splat(float x) { return (v4f){x, x, x, x}; }
/* m ? a : b per lane (m all ones or zero). */
static inline v4f v4_select(v4i m, v4f a, v4f b)
{
  return (v4f)(((v4i)a & m) | ((v4i)b & ~m));
}

/* y = map(x) over n values (x may be y).  Each operation is rounded on its
 * own, as torch evaluates the expression op by op (the x86-64 baseline has
 * no FMA for the compiler to contract into). */
static void sir_block_f32(const xf_sir_f32 *f, const float *x, float *y,
                          int64_t n)
{
  const float am = f->a_min, r = f->range, s = f->b_range, bm = f->b_min;
  const float lo = f->lo, hi = f->hi;
  const v4f vam = v4_splat(am), vr = v4_splat(r), vs = v4_splat(s);
  const v4f vbm = v4_splat(bm), vlo = v4_splat(lo), vhi = v4_splat(hi);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    v4f v;
    memcpy(&v, x + j, sizeof v);
    v = v - vam;
    if (f->mode == 0) {
      if (f->add_b_min) v = v + vbm;
    } else {
      v = v / vr;
      if (f->mode == 2) {
        v = v * vs;
        v = v + vbm;
      }
      /* torch.clamp: max with lo then min with hi; NaN kept (comparisons
       * false); lo > hi gives hi. */
      if (f->clip_lo) v = v4_select(v < vlo, vlo, v);
      if (f->clip_hi) v = v4_select(vhi < v, vhi, v);
    }
    memcpy(y + j, &v, sizeof v);
  }
  for (; j < n; j++) {
    float t = x[j] - am;
    if (f->mode == 0) {
      if (f->add_b_min) t = t + bm;
    } else {
      t = t / r;
      if (f->mode == 2) {
        t = t * s;
        t = t + bm;
      }
      if (f->clip_lo) t = t < lo ? lo : t;
      if (f->clip_hi) t = hi < t ? hi : t;
    }
    y[j] = t;
  }
}

/* The float64 twin for float64 inputs (torch computes in the tensor's
 * dtype, with the Python scalars kept as doubles). */
static void sir_block_f64(const xf_sir *p, double *restrict y, int64_t n)
{
  const double am = p->a_min, r = p->a_max - p->a_min;
  if (r == 0.0) {
    for (int64_t j = 0; j < n; j++) {
      double t = y[j] - am;
      y[j] = p->has_b_min ? t + p->b_min : t;
    }
    return;
  }
  const bool affine = p->has_b_min && p->has_b_max;
  const double s = p->b_max - p->b_min, bm = p->b_min;
  for (int64_t j = 0; j < n; j++) {
    double t = (y[j] - am) / r;
    if (affine) { t = t * s; t = t + bm; }
    if (p->clip && p->has_b_min) t = t < p->b_min ? p->b_min : t;
    if (p->clip && p->has_b_max) t = p->b_max < t ? p->b_max : t;
    y[j] = t;
  }
}

typedef struct sir_job {
  const xf_sir *p;
  xf_sir_f32 f;
  lm_dtype in_dt, out_dt;
} sir_job;

static int sir_row(char *const *ptr, const int64_t *step, int64_t n,
                   void *arg)
{
  const sir_job *job = arg;
  if (job->in_dt == LM_F64) {
    double buf[XF_BLOCK];
    for (int64_t i = 0; i < n; i += XF_BLOCK) {
      int64_t m = n - i < XF_BLOCK ? n - i : XF_BLOCK;
      xf_load_f64(ptr[0] + i * step[0], step[0], LM_F64, buf, m);
      sir_block_f64(job->p, buf, m);
      xf_store_f64(buf, ptr[1] + i * step[1], step[1], job->out_dt, m);
    }
    return LM_OK;
  }
  /* The path that matters for speed: float32 to float32, computed straight
   * into the output. */
  if (job->out_dt == LM_F32 && step[1] == 4) {
    float *y = (float *)ptr[1];
    if (job->in_dt == LM_F32 && step[0] == 4) {
      sir_block_f32(&job->f, (const float *)ptr[0], y, n);
      return LM_OK;
    }
    for (int64_t i = 0; i < n; i += XF_BLOCK) {
      int64_t m = n - i < XF_BLOCK ? n - i : XF_BLOCK;
      xf_load_f32(ptr[0] + i * step[0], step[0], job->in_dt, y + i, m);
      sir_block_f32(&job->f, y + i, y + i, m);
    }
    return LM_OK;
  }
  float buf[XF_BLOCK];
  for (int64_t i = 0; i < n; i += XF_BLOCK) {
    int64_t m = n - i < XF_BLOCK ? n - i : XF_BLOCK;
    xf_load_f32(ptr[0] + i * step[0], step[0], job->in_dt, buf, m);
    sir_block_f32(&job->f, buf, buf, m);
    xf_store_f32(buf, ptr[1] + i * step[1], step[1], job->out_dt, m);
  }
  return LM_OK;
}

int xf_sir_apply(lm_op_ctx *ctx, lm_tensor *in, lm_tensor *out,
                 const xf_sir *p)
{
  sir_job job = {.p = p, .in_dt = lm_tensor_dtype(in),
                 .out_dt = lm_tensor_dtype(out)};
  xf_sir_prepare_f32(p, &job.f);
  void *base[2] = {lm_tensor_data(in), lm_tensor_data(out)};
  const int64_t *strides[2] = {lm_tensor_strides(in), lm_tensor_strides(out)};
  size_t elsize[2] = {lm_dtype_size(job.in_dt), lm_dtype_size(job.out_dt)};
  xf_iter it;
  xf_iter_init(&it, lm_tensor_ndim(in), lm_tensor_shape(in), 2, base, strides,
               elsize);
  return xf_iter_run(lm_ctx_engine(ctx), ctx, &it, XF_GRAIN, sir_row, &job);
}

int xf_sir_options(lm_op_ctx *ctx, xf_sir *p, lm_dtype *dt)
{
  memset(p, 0, sizeof *p);
  p->a_min = lm_arg_number(ctx, "a_min");
  p->a_max = lm_arg_number(ctx, "a_max");
  p->has_b_min = lm_arg_is_set(ctx, "b_min");
  p->has_b_max = lm_arg_is_set(ctx, "b_max");
  if (p->has_b_min) p->b_min = lm_arg_number(ctx, "b_min");
  if (p->has_b_max) p->b_max = lm_arg_number(ctx, "b_max");
  p->clip = lm_arg_bool(ctx, "clip");
  if (!isfinite(p->a_min) || !isfinite(p->a_max))
    return lm_ctx_error(ctx, LM_EINVAL, "options 'a_min' and 'a_max' must be "
                        "finite (got %g and %g)", p->a_min, p->a_max);
  if (p->clip && !p->has_b_min && !p->has_b_max)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'clip' needs 'b_min' or "
                        "'b_max' (MONAI fails on clamp(None, None))");
  return xf_arg_dtype(ctx, "dtype", LM_F32, dt);
}

static int sir_check(lm_op_ctx *ctx)
{
  xf_sir p;
  lm_dtype dt;
  return xf_sir_options(ctx, &p, &dt);
}

static int sir_run(lm_op_ctx *ctx)
{
  xf_sir p;
  lm_dtype dt;
  lm_tensor *in = lm_ctx_input(ctx, 0), *out = NULL;
  int st = xf_sir_options(ctx, &p, &dt);
  if (st < 0) return st;
  st = lm_tensor_new_like(in, dt, LM_CPU, &out);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
  st = xf_sir_apply(ctx, in, out, &p);
  if (st < 0) {
    lm_tensor_release(out);
    return st;
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc sir_args[] = {
  {"a_min", LM_ARG_NUMBER, NULL, "input intensity mapped to b_min"},
  {"a_max", LM_ARG_NUMBER, NULL, "input intensity mapped to b_max"},
  {"b_min", LM_ARG_NUMBER, "nil", "output value of a_min; nil = no output "
   "affine (only (x - a_min) / (a_max - a_min))"},
  {"b_max", LM_ARG_NUMBER, "nil", "output value of a_max; nil = no output "
   "affine"},
  {"clip", LM_ARG_BOOL, "false", "clamp the output to [b_min, b_max] (after "
   "the affine map); needs b_min or b_max"},
  {"dtype", LM_ARG_STRING, "'float32'", "output dtype (floats to integers "
   "truncate toward zero and saturate, NaN -> 0, as Cast)"},
};

const lm_op_desc lm_op_scale_intensity_range = {
  .name = "ScaleIntensityRange",
  .alias = NULL,
  .summary = "Map the intensity window [a_min, a_max] linearly to "
             "[b_min, b_max], optionally clipped",
  .doc =
    "MONAI ScaleIntensityRange (monai/transforms/intensity/array.py), the "
    "oracle, step by step:\n"
    "  if a_max - a_min == 0: y = x - a_min (+ b_min when set); no division, "
    "no clip\n"
    "  else y = (x - a_min) / (a_max - a_min)\n"
    "       if b_min and b_max are set: y = y * (b_max - b_min) + b_min\n"
    "       if clip: y = clamp(y, b_min, b_max) (torch.clamp: a missing bound "
    "is not applied; b_min > b_max gives b_max everywhere)\n"
    "Arithmetic is float32 in exactly this order, each step rounded (as torch "
    "on a float32 tensor, scalars rounded to float32), so results agree with "
    "MONAI to 1 ulp; float64 inputs are computed in float64. NaN stays NaN "
    "(then 0 if dtype is an integer type). a_max < a_min inverts the window.\n"
    "Example (spleen CT window): a_min=-57, a_max=164, b_min=0, b_max=1, "
    "clip=true maps -1000 -> 0, 53.5 -> 0.5, 500 -> 1.\n"
    "Any input dtype; output dtype float32 unless dtype says otherwise; "
    "shape, memory order, affine, layout and trace of the input. "
    "Also runs on CUDA tensors when the CUDA plugin is loaded.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = sir_args,
  .nargs = (int)(sizeof sir_args / sizeof sir_args[0]),
  .flags = 0,
  .check = sir_check,
  .run_cpu = sir_run,
  .run_cuda = NULL,
};
