/* Phantom: a synthetic abdominal CT with known organs, the built-in demo
 * and test input (no file needed). */
#include <math.h>
#include <string.h>

#include "xf_util.h"

/* Shapes in world millimetres (RAS+: +x patient right... see the doc):
 * ellipsoids, and cylinders along z (the body, the aorta, vertebral
 * bodies) limited to [z0, z1]. */
typedef enum { ELLIPSOID, CYLINDER_Z } shape_kind;

typedef struct organ {
  const char *name;
  int label;          /* TotalSegmentator v2 "total" id; 0 = unlabelled */
  int hu;
  shape_kind kind;
  double c[3], r[3];  /* centre and radii (cylinders: r[2] = half height) */
} organ;

#define BIG 1e9

/* Painted in this order, later ones on top.  RAS+: +x toward the patient's
 * right, +y anterior, +z superior; the origin is the volume's centre. */
static const organ organs[] = {
  {"body: subcutaneous fat", 0, -100, CYLINDER_Z, {0, 0, 0}, {165, 115, BIG}},
  {"body: soft tissue", 0, 40, CYLINDER_Z, {0, 0, 0}, {150, 100, BIG}},
  {"lung_lower_lobe_right", 14, -850, ELLIPSOID, {75, -5, 150}, {60, 75, 75}},
  {"lung_lower_lobe_left", 11, -850, ELLIPSOID, {-75, -5, 150}, {60, 75, 75}},
  {"liver", 5, 60, ELLIPSOID, {65, 10, 45}, {75, 65, 70}},
  {"gallbladder", 4, 10, ELLIPSOID, {45, 55, 5}, {15, 15, 25}},
  {"stomach", 6, 25, ELLIPSOID, {-55, 45, 50}, {45, 35, 40}},
  {"spleen", 1, 45, ELLIPSOID, {-85, -35, 50}, {30, 45, 55}},
  {"kidney_right", 2, 35, ELLIPSOID, {60, -50, -15}, {28, 25, 50}},
  {"kidney_left", 3, 35, ELLIPSOID, {-60, -50, -5}, {28, 25, 50}},
  {"urinary_bladder", 21, 15, ELLIPSOID, {0, 40, -115}, {45, 35, 35}},
  {"aorta", 52, 150, CYLINDER_Z, {-15, -30, 0}, {12, 12, BIG}},
  {"vertebrae_T11", 33, 400, CYLINDER_Z, {0, -70, 99}, {22, 18, 13}},
  {"vertebrae_T12", 32, 400, CYLINDER_Z, {0, -70, 66}, {22, 18, 13}},
  {"vertebrae_L1", 31, 400, CYLINDER_Z, {0, -70, 33}, {22, 18, 13}},
  {"vertebrae_L2", 30, 400, CYLINDER_Z, {0, -70, 0}, {22, 18, 13}},
  {"vertebrae_L3", 29, 400, CYLINDER_Z, {0, -70, -33}, {22, 18, 13}},
  {"vertebrae_L4", 28, 400, CYLINDER_Z, {0, -70, -66}, {22, 18, 13}},
  {"vertebrae_L5", 27, 400, CYLINDER_Z, {0, -70, -99}, {22, 18, 13}},
};
#define NORGANS ((int)(sizeof organs / sizeof organs[0]))
#define AIR_HU (-1000)

static bool inside(const organ *o, double x, double y, double z)
{
  double dx = (x - o->c[0]) / o->r[0], dy = (y - o->c[1]) / o->r[1];
  double dz = (z - o->c[2]) / o->r[2];
  if (o->kind == ELLIPSOID) return dx * dx + dy * dy + dz * dz <= 1.0;
  return dx * dx + dy * dy <= 1.0 && fabs(dz) <= 1.0;
}

/* splitmix64 of the voxel's index: noise that depends only on the seed and
 * the voxel, not on how the work was split across threads. */
static uint64_t splitmix64(uint64_t x)
{
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/* One standard normal deviate per voxel (Box-Muller on two 26-bit halves;
 * u1 is never 0). */
static double gauss(uint64_t seed, int64_t index)
{
  uint64_t h = splitmix64(splitmix64(seed) ^ (uint64_t)index);
  double u1 = ((double)(h >> 38) + 0.5) / 67108864.0;
  double u2 = (double)((h >> 12) & 0x3FFFFFF) / 67108864.0;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

typedef struct phantom_job {
  int64_t n[3];
  double sp[3], origin[3];
  uint64_t seed;
  double noise;
  int16_t *img;
  uint8_t *label;
} phantom_job;

/* One z slice per item. */
static int phantom_slices(int64_t k0, int64_t k1, void *arg)
{
  const phantom_job *job = arg;
  const int64_t nx = job->n[0], ny = job->n[1];
  for (int64_t k = k0; k < k1; k++) {
    double z = job->origin[2] + job->sp[2] * (double)k;
    /* Organs this slice cuts, in painting order. */
    const organ *live[NORGANS];
    int nlive = 0;
    for (int o = 0; o < NORGANS; o++)
      if (fabs(z - organs[o].c[2]) <= organs[o].r[2]) live[nlive++] = &organs[o];
    for (int64_t j = 0; j < ny; j++) {
      double y = job->origin[1] + job->sp[1] * (double)j;
      for (int64_t i = 0; i < nx; i++) {
        double x = job->origin[0] + job->sp[0] * (double)i;
        int hu = AIR_HU, lab = 0;
        for (int o = 0; o < nlive; o++)
          if (inside(live[o], x, y, z)) {
            hu = live[o]->hu;
            lab = live[o]->label;
          }
        int64_t idx = i + nx * (j + ny * k);
        double v = rint(hu + job->noise * gauss(job->seed, idx));
        job->img[idx] = (int16_t)(v < INT16_MIN ? INT16_MIN
                                  : v > INT16_MAX ? INT16_MAX : v);
        job->label[idx] = (uint8_t)lab;
      }
    }
  }
  return LM_OK;
}

typedef struct phantom_opts {
  int64_t n[3];
  double sp[3];
  uint64_t seed;
  double noise;
} phantom_opts;

static int phantom_options(lm_op_ctx *ctx, phantom_opts *o)
{
  int nshape = 0, nsp = 0;
  const double *shape = lm_arg_numbers(ctx, "shape", &nshape);
  const double *sp = lm_arg_numbers(ctx, "spacing", &nsp);
  if (nshape != 3)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'shape' needs 3 numbers "
                        "{X, Y, Z} (got %d)", nshape);
  if (nsp != 3)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'spacing' needs 3 numbers "
                        "{sx, sy, sz} in mm (got %d)", nsp);
  for (int d = 0; d < 3; d++) {
    if (!(shape[d] >= 1 && shape[d] <= 4096 && shape[d] == floor(shape[d])))
      return lm_ctx_error(ctx, LM_EINVAL, "option 'shape': entry %d = %g is "
                          "not an integer in 1..4096", d + 1, shape[d]);
    if (!(sp[d] > 0 && isfinite(sp[d])))
      return lm_ctx_error(ctx, LM_EINVAL, "option 'spacing': entry %d = %g "
                          "is not a positive number", d + 1, sp[d]);
    o->n[d] = (int64_t)shape[d];
    o->sp[d] = sp[d];
  }
  o->seed = (uint64_t)lm_arg_int(ctx, "seed");
  o->noise = lm_arg_number(ctx, "noise");
  if (!(o->noise >= 0 && isfinite(o->noise)))
    return lm_ctx_error(ctx, LM_EINVAL, "option 'noise' = %g must be >= 0",
                        o->noise);
  return LM_OK;
}

static int phantom_check(lm_op_ctx *ctx)
{
  phantom_opts o;
  return phantom_options(ctx, &o);
}

static int phantom_run(lm_op_ctx *ctx)
{
  lm_engine *e = lm_ctx_engine(ctx);
  phantom_opts o;
  lm_tensor *img = NULL, *label = NULL;
  int order[3] = {2, 1, 0}; /* z slowest, i fastest: as LoadNifti gives */
  int st = phantom_options(ctx, &o);
  if (st < 0) return st;
  st = lm_tensor_new_ordered(e, LM_I16, 3, o.n, order, LM_CPU, &img);
  if (st >= 0)
    st = lm_tensor_new_ordered(e, LM_U8, 3, o.n, order, LM_CPU, &label);
  if (st < 0) {
    lm_tensor_release(img);
    return lm_ctx_error(ctx, st, "cannot allocate %lldx%lldx%lld voxels",
                        (long long)o.n[0], (long long)o.n[1],
                        (long long)o.n[2]);
  }
  phantom_job job = {.seed = o.seed, .noise = o.noise,
                     .img = lm_tensor_data(img), .label = lm_tensor_data(label)};
  double affine[16] = {0};
  for (int d = 0; d < 3; d++) {
    job.n[d] = o.n[d];
    job.sp[d] = o.sp[d];
    /* Voxel centre (n-1)/2 at the world origin. */
    job.origin[d] = -o.sp[d] * (double)(o.n[d] - 1) / 2.0;
    affine[d * 4 + d] = o.sp[d];
    affine[d * 4 + 3] = job.origin[d];
  }
  affine[15] = 1.0;
  st = lm_parallel_for(e, ctx, o.n[2], 1, phantom_slices, &job);
  if (st < 0) {
    lm_tensor_release(img);
    lm_tensor_release(label);
    return st;
  }
  lm_tensor *outs[2] = {img, label};
  for (int i = 0; i < 2; i++) {
    lm_tensor_set_affine(outs[i], affine);
    lm_tensor_set_layout(outs[i], "XYZ");
  }
  st = lm_ctx_set_output(ctx, 0, img);
  if (st < 0) {
    lm_tensor_release(label);
    return st;
  }
  return lm_ctx_set_output(ctx, 1, label);
}

static const lm_arg_desc phantom_args[] = {
  {"shape", LM_ARG_NUMBERS, "{192, 192, 128}", "voxels {X, Y, Z}"},
  {"spacing", LM_ARG_NUMBERS, "{2, 2, 2}", "voxel size in mm {sx, sy, sz}"},
  {"seed", LM_ARG_INT, "0", "noise seed: equal seeds give equal volumes"},
  {"noise", LM_ARG_NUMBER, "12", "standard deviation of the Gaussian noise "
   "in HU (0 = none: every voxel has its tissue's exact value)"},
};

const lm_op_desc lm_op_phantom = {
  .name = "Phantom",
  .alias = NULL,
  .summary = "Synthetic abdominal CT (int16 HU) with its organ label map",
  .doc =
    "A deterministic CT-like volume for demos and tests. Outputs img (int16, "
    "HU) and label (uint8, TotalSegmentator v2 'total' ids), layout \"XYZ\", "
    "memory order i fastest (as LoadNifti returns a NIfTI), RAS+ affine "
    "diag(sx, sy, sz) with the centre voxel ((n-1)/2) at the world origin. "
    "Shapes are in mm in world space (x toward the patient's right, "
    "y anterior, z superior), so other shapes and spacings crop or resample "
    "the same body. Painted in this order (later on top); voxel centres "
    "inside the shape take its HU and label:\n"
    "  label name                    HU  shape      centre (mm)    radii (mm)\n"
    "  -     air (outside)        -1000\n"
    "  0     body: fat             -100  cylinder z (0,0)          165 x 115\n"
    "  0     body: soft tissue       40  cylinder z (0,0)          150 x 100\n"
    "  14    lung_lower_lobe_right -850  ellipsoid  (75,-5,150)    60,75,75\n"
    "  11    lung_lower_lobe_left  -850  ellipsoid  (-75,-5,150)   60,75,75\n"
    "  5     liver                   60  ellipsoid  (65,10,45)     75,65,70\n"
    "  4     gallbladder             10  ellipsoid  (45,55,5)      15,15,25\n"
    "  6     stomach                 25  ellipsoid  (-55,45,50)    45,35,40\n"
    "  1     spleen                  45  ellipsoid  (-85,-35,50)   30,45,55\n"
    "  2     kidney_right            35  ellipsoid  (60,-50,-15)   28,25,50\n"
    "  3     kidney_left             35  ellipsoid  (-60,-50,-5)   28,25,50\n"
    "  21    urinary_bladder         15  ellipsoid  (0,40,-115)    45,35,35\n"
    "  52    aorta (contrast)       150  cylinder z (-15,-30)      12 x 12\n"
    "  33..27 vertebrae_T11..L5     400  cylinder z (0,-70), z = 99, 66, 33, "
    "0, -33, -66, -99 (T11, T12, L1, L2, L3, L4, L5), 22 x 18, half height "
    "13 (discs between them are soft tissue)\n"
    "Then Gaussian noise of standard deviation `noise` HU is added to every "
    "voxel (a counter-based generator: splitmix64 of seed and voxel index, "
    "Box-Muller), rounded to nearest even and saturated to int16. The label "
    "map has no noise.",
  .inputs = "",
  .min_inputs = 0,
  .max_inputs = 0,
  .outputs = "img, label",
  .args = phantom_args,
  .nargs = (int)(sizeof phantom_args / sizeof phantom_args[0]),
  .flags = LM_OP_SOURCE,
  .check = phantom_check,
  .run_cpu = phantom_run,
  .run_cuda = NULL,
};
