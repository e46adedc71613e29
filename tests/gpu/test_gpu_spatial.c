/* Resize, ScaleByResolution and RestoreOriginalShape on the GPU against the
 * CPU ops: every interpolation and padding, label and float inputs, strided
 * device views, on the phantom and on a crop of a real CT.  Nearest and
 * label paths must be equal; float paths within 1e-5 relative (the kernels
 * repeat the CPU's arithmetic, so they are usually equal too).  Exits 77
 * (skipped) without a CUDA device. */
#include <stdlib.h>

#include "gpu_compare.h"

static lm_tensor *op1(const char *op, lm_tensor *in, lm_params *p)
{
  lm_tensor *out = call(op, in, p, NULL);
  if (!out) printf("# %s: %s\n", op, lm_errmsg(E));
  lm_params_free(p);
  return out;
}

/* A small phantom (1, X, Y, Z) float32 (2 mm voxels) and its labels
 * (X, Y, Z) uint8. */
static lm_tensor *small_phantom(lm_tensor **label)
{
  double shape[3] = {34, 30, 20};
  lm_tensor *img = gpu_phantom(shape, label);
  if (!img) return NULL;
  lm_tensor *f = gpu_cast(img, "float32");
  lm_tensor_release(img);
  return f;
}

static void spacing_case(const char *what, lm_tensor *in, const double *pixdim,
                         const char *mode, const char *pad, bool is_label, double rtol)
{
  lm_params *p = params();
  lm_params_set_numbers(p, "pixdim", pixdim, 3);
  if (mode) lm_params_set_string(p, "mode", mode);
  if (pad) lm_params_set_string(p, "padding_mode", pad);
  if (is_label) lm_params_set_bool(p, "is_label", true);
  gpu_vs_cpu(what, "ScaleByResolution", &in, 1, p, rtol);
  lm_params_free(p);
}

static void test_scale_by_resolution(void)
{
  lm_tensor *label = NULL, *img = small_phantom(&label);
  CHECK(img != NULL);
  if (!img) return;
  const char *modes[] = {"nearest", "bilinear", "cubic"};
  const char *pads[] = {"border", "zeros", "reflection"};
  /* up and down, and an axis kept (a target within 1e-3 keeps it) */
  double pix[3] = {2.7, 1.3, 2.0005};
  char what[128];
  for (int m = 0; m < 3; m++)
    for (int q = 0; q < 3; q++) {
      snprintf(what, sizeof what, "ScaleByResolution mode=%s padding=%s", modes[m], pads[q]);
      spacing_case(what, img, pix, modes[m], pads[q], false, m ? 1e-5 : 0);
    }
  /* labels: nearest, dtype kept; half-way ties (2 mm -> 4 mm: c = 2 o) */
  double lab_pix[3] = {4, 1.5, 2.5};
  spacing_case("ScaleByResolution labels", label, lab_pix, NULL, NULL, true, 0);
  /* nothing changes: the values copied (MONAI's early exit), float32 out */
  double same[3] = {2, 2, 2};
  spacing_case("ScaleByResolution same spacing (uint8 -> float32 copy)", label, same, NULL, NULL,
               false, 0);
  /* output_shape, and an integer input resampled linearly */
  lm_params *p = params();
  double shape[3] = {17, 41, 9};
  lm_params_set_numbers(p, "output_shape", shape, 3);
  gpu_vs_cpu("ScaleByResolution output_shape", "ScaleByResolution", &label, 1, p, 1e-5);
  lm_params_free(p);

  /* A strided device view (axes reversed): the CPU's fast axis changes. */
  int perm[4] = {0, 3, 2, 1};
  lm_tensor *dev = gpu_to(img, "cuda"), *dv = NULL, *hv = NULL;
  if (dev && lm_tensor_permute(dev, perm, &dv) == LM_OK &&
      lm_tensor_permute(img, perm, &hv) == LM_OK) {
    for (int m = 0; m < 3; m++) {
      p = params();
      lm_params_set_numbers(p, "pixdim", pix, 3);
      lm_params_set_string(p, "mode", modes[m]);
      snprintf(what, sizeof what, "ScaleByResolution strided view mode=%s", modes[m]);
      gpu_vs_cpu_on(what, "ScaleByResolution", &hv, &dv, 1, p, m ? 1e-5 : 0);
      lm_params_free(p);
    }
  }
  CHECK(dv != NULL && hv != NULL);
  lm_tensor_release(dv);
  lm_tensor_release(hv);

  lm_tensor_release(dev);
  lm_tensor_release(label);
  lm_tensor_release(img);
}

/* A phantom with the given voxel size: (1, X, Y, Z) float32 and its labels. */
static lm_tensor *phantom_spaced(const double *spacing, lm_tensor **label)
{
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  lm_params *p = params();
  double shape[3] = {30, 26, 9};
  lm_params_set_numbers(p, "shape", shape, 3);
  lm_params_set_numbers(p, "spacing", spacing, 3);
  int st = lm_call(E, "Phantom", NULL, 0, p, out, &nout, NULL);
  lm_params_free(p);
  if (st < 0) return NULL;
  *label = out[1];
  lm_tensor *c = call("ConvertToChannelsFirst", out[0], NULL, NULL);
  lm_tensor_release(out[0]);
  lm_tensor *f = c ? gpu_cast(c, "float32") : NULL;
  lm_tensor_release(c);
  return f;
}

static void nnunet_case(const char *what, lm_tensor *in, const double *pixdim,
                        const double *shape, bool is_label, const char *sep, int order,
                        int order_z, double rtol)
{
  lm_params *p = params();
  lm_params_set_string(p, "rule", "nnunet");
  if (pixdim) lm_params_set_numbers(p, "pixdim", pixdim, 3);
  if (shape) lm_params_set_numbers(p, "output_shape", shape, 3);
  if (is_label) lm_params_set_bool(p, "is_label", true);
  if (sep) lm_params_set_string(p, "separate_z", sep);
  if (order >= 0) lm_params_set_number(p, "order", order);
  lm_params_set_number(p, "order_z", order_z);
  gpu_vs_cpu(what, "ScaleByResolution", &in, 1, p, rtol);
  lm_params_free(p);
}

/* rule='nnunet': the 3-D path and separate z (order 3 in-plane, order_z 0
 * or 1 across), data and one-hot labels, output_shape, and the copy when
 * nothing changes. */
static void test_nnunet(void)
{
  double iso[3] = {2, 2, 2}, aniso[3] = {1.1, 0.9, 4.5};
  lm_tensor *lab_iso = NULL, *iso_img = phantom_spaced(iso, &lab_iso);
  lm_tensor *lab_an = NULL, *an_img = phantom_spaced(aniso, &lab_an);
  CHECK(iso_img && an_img);
  if (!iso_img || !an_img) goto done;
  {
    double pix3[3] = {1.5, 2.6, 3.1};
    nnunet_case("nnunet 3-D order 3", iso_img, pix3, NULL, false, NULL, -1, 0, 1e-5);
    nnunet_case("nnunet 3-D order 1", iso_img, pix3, NULL, false, NULL, 1, 0, 1e-5);
    nnunet_case("nnunet 3-D order 0", iso_img, pix3, NULL, false, NULL, 0, 0, 0);
    nnunet_case("nnunet 3-D labels", lab_iso, pix3, NULL, true, NULL, -1, 0, 0);
    nnunet_case("nnunet 3-D labels order 0", lab_iso, pix3, NULL, true, NULL, 0, 0, 0);
    double pixa[3] = {0.8, 1.3, 3.0};
    for (int oz = 0; oz < 2; oz++) {
      char what[96];
      snprintf(what, sizeof what, "nnunet separate z data order_z=%d", oz);
      nnunet_case(what, an_img, pixa, NULL, false, NULL, -1, oz, 1e-5);
      snprintf(what, sizeof what, "nnunet separate z labels order_z=%d", oz);
      nnunet_case(what, lab_an, pixa, NULL, true, NULL, -1, oz, 0);
    }
    /* separate z forced on an isotropic grid: the coarsest axis is not
     * unique, so nnU-Net resamples in 3-D; and forced off on the
     * anisotropic one */
    nnunet_case("nnunet separate_z=false", an_img, pixa, NULL, false, "false", -1, 0, 1e-5);
    double shape[3] = {21, 33, 14};
    nnunet_case("nnunet output_shape", an_img, NULL, shape, false, NULL, -1, 1, 1e-5);
    nnunet_case("nnunet same shape (copy)", lab_iso, iso, NULL, true, NULL, -1, 0, 0);
  }
done:
  lm_tensor_release(iso_img);
  lm_tensor_release(lab_iso);
  lm_tensor_release(an_img);
  lm_tensor_release(lab_an);
}

static void test_resize(void)
{
  lm_tensor *label = NULL, *img = small_phantom(&label);
  CHECK(img != NULL);
  if (!img) return;
  const char *modes[] = {"nearest", "nearest-exact", "bilinear"};
  double size[3] = {23, 47, -1};
  char what[128];
  for (int m = 0; m < 3; m++) {
    lm_params *p = params();
    lm_params_set_numbers(p, "spatial_size", size, 3);
    lm_params_set_string(p, "mode", modes[m]);
    snprintf(what, sizeof what, "Resize image mode=%s", modes[m]);
    gpu_vs_cpu(what, "Resize", &img, 1, p, m == 2 ? 1e-5 : 0);
    /* labels (X, Y, Z) uint8: the nearest modes keep the dtype */
    snprintf(what, sizeof what, "Resize labels mode=%s", modes[m]);
    gpu_vs_cpu(what, "Resize", &label, 1, p, m == 2 ? 1e-5 : 0);
    lm_params_free(p);
  }
  lm_tensor_release(label);
  lm_tensor_release(img);
}

/* pred on ref's grid, mapped back through ref's trace: resamplings, a crop
 * (gathered exactly) and a pad (zeros where the crop had cut). */
static void test_restore(void)
{
  lm_tensor *label = NULL, *img = small_phantom(&label);
  CHECK(img != NULL);
  if (!img) return;
  lm_params *p = params();
  double pix[3] = {2.5, 1.6, 3};
  lm_params_set_numbers(p, "pixdim", pix, 3);
  lm_tensor *ref = op1("ScaleByResolution", img, p);
  p = params();
  double start[3] = {2, 3, 1}, end[3] = {25, 30, 12};
  lm_params_set_numbers(p, "roi_start", start, 3);
  lm_params_set_numbers(p, "roi_end", end, 3);
  lm_tensor *cropped = ref ? op1("SpatialCrop", ref, p) : (lm_params_free(p), NULL);
  p = params();
  double size[3] = {31, 19, 15};
  lm_params_set_numbers(p, "spatial_size", size, 3);
  lm_tensor *resized = cropped ? op1("Resize", cropped, p) : (lm_params_free(p), NULL);
  CHECK(resized != NULL);
  if (resized) {
    /* a label prediction and a float one on the final grid */
    p = params();
    lm_params_set_number(p, "threshold", 40);
    lm_tensor *mask = op1("Threshold", resized, p);
    p = params();
    lm_params_set_string(p, "dtype", "uint8");
    lm_tensor *lab = mask ? op1("Cast", mask, p) : (lm_params_free(p), NULL);
    CHECK(lab != NULL);
    const char *roundings[] = {"monai", "exact"};
    const char *modes[] = {"auto", "nearest", "linear"};
    char what[160];
    for (int r = 0; lab && r < 2; r++)
      for (int m = 0; m < 3; m++) {
        lm_tensor *in[2] = {m == 2 ? resized : lab, resized};
        p = params();
        lm_params_set_string(p, "rounding", roundings[r]);
        lm_params_set_string(p, "mode", modes[m]);
        snprintf(what, sizeof what, "RestoreOriginalShape rounding=%s mode=%s", roundings[r],
                 modes[m]);
        gpu_vs_cpu(what, "RestoreOriginalShape", in, 2, p, m == 2 ? 1e-5 : 0);
        lm_params_free(p);
      }
    lm_tensor_release(mask);
    lm_tensor_release(lab);
  }
  /* ties: 2 mm -> 2.5 mm and back maps slice k to 1.25 k */
  if (ref) {
    lm_tensor *in[2] = {ref, ref};
    p = params();
    lm_params_set_string(p, "mode", "nearest");
    gpu_vs_cpu("RestoreOriginalShape nearest ties", "RestoreOriginalShape", in, 2, p, 0);
    lm_params_free(p);
  }
  lm_tensor_release(resized);
  lm_tensor_release(cropped);
  lm_tensor_release(ref);
  lm_tensor_release(label);
  lm_tensor_release(img);
}

/* A recorded step whose index map rotates (not axis-aligned): the kernel
 * that maps every output voxel on its own, nearest and linear, every
 * padding. */
static void test_restore_rotated(void)
{
  lm_tensor *label = NULL, *img = small_phantom(&label);
  CHECK(img != NULL);
  if (!img) return;
  lm_params *p = params();
  lm_params_set_string(p, "dtype", "float32");
  lm_tensor *ref = op1("Cast", img, p); /* a copy whose trace we extend */
  CHECK(ref != NULL);
  if (ref) {
    const double *A = lm_tensor_affine(ref);
    double c = cos(0.3), s = sin(0.3);
    double T[16] = {0.9 * c, -0.9 * s, 0.05, 1.3,  1.1 * s, 1.1 * c, 0, -0.7,
                    0.02,    0,        1.2,  0.4,  0,       0,       0, 1};
    double B[16] = {0};
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++)
        for (int k = 0; k < 4; k++) B[i * 4 + j] += A[i * 4 + k] * T[k * 4 + j];
    int64_t before[4] = {1, 31, 27, 17};
    CHECK_INT(lm_tensor_trace_push(ref, "Rotate", "", 4, before, B), LM_OK);
    lm_params *q = params();
    lm_params_set_number(q, "threshold", 40);
    lm_tensor *lab = op1("Threshold", img, q);
    const char *pads[] = {"border", "zeros", "reflection"};
    char what[160];
    for (int m = 0; lab && m < 2; m++)
      for (int k = 0; k < 3; k++) {
        lm_tensor *in[2] = {m ? img : lab, ref};
        q = params();
        lm_params_set_string(q, "padding_mode", pads[k]);
        snprintf(what, sizeof what, "RestoreOriginalShape rotated %s padding=%s",
                 m ? "linear" : "nearest", pads[k]);
        gpu_vs_cpu(what, "RestoreOriginalShape", in, 2, q, m ? 1e-5 : 0);
        lm_params_free(q);
      }
    lm_tensor_release(lab);
  }
  lm_tensor_release(ref);
  lm_tensor_release(label);
  lm_tensor_release(img);
}

/* A crop of a real CT (int16 on disk, anisotropic voxels). */
static void test_real_ct(void)
{
  const char *dir = getenv("LUMEN_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/ct/totalseg_example_ct_sm.nii.gz", dir ? dir : "");
  FILE *f = dir ? fopen(path, "rb") : NULL;
  if (!f) {
    printf("# skipped: %s not found (LUMEN_TEST_DATA)\n", path);
    CHECK(true);
    return;
  }
  fclose(f);
  lm_tensor *arg = NULL, *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  lm_params *p = params();
  lm_params_set_string(p, "path", path);
  int st = lm_call(E, "LoadNifti", NULL, 0, p, out, &nout, NULL);
  lm_params_free(p);
  CHECK(st >= 0);
  if (st < 0) {
    printf("# LoadNifti: %s\n", lm_errmsg(E));
    return;
  }
  for (int i = 1; i < nout; i++) lm_tensor_release(out[i]);
  arg = out[0];
  lm_tensor *c = call("ConvertToChannelsFirst", arg, NULL, NULL);
  p = params();
  double roi[3] = {28, 24, 16};
  lm_params_set_numbers(p, "roi_size", roi, 3);
  lm_tensor *ct = c ? op1("CenterCrop", c, p) : (lm_params_free(p), NULL);
  CHECK(ct != NULL);
  if (ct) {
    double sp[3];
    lm_tensor_spacing(ct, sp);
    double pix[3] = {sp[0] * 0.7, sp[1] * 1.45, sp[2] * 0.55};
    const char *modes[] = {"nearest", "bilinear", "cubic"};
    char what[128];
    for (int m = 0; m < 3; m++) {
      snprintf(what, sizeof what, "real CT ScaleByResolution mode=%s", modes[m]);
      spacing_case(what, ct, pix, modes[m], "border", false, m ? 1e-5 : 0);
    }
    p = params();
    double size[3] = {40, 13, 21};
    lm_params_set_numbers(p, "spatial_size", size, 3);
    gpu_vs_cpu("real CT Resize bilinear", "Resize", &ct, 1, p, 1e-5);
    lm_params_free(p);
  }
  lm_tensor_release(ct);
  lm_tensor_release(c);
  lm_tensor_release(arg);
}

int main(void)
{
  gpu_engine_start();
  RUN(test_scale_by_resolution);
  RUN(test_nnunet);
  RUN(test_resize);
  RUN(test_restore);
  RUN(test_restore_rotated);
  RUN(test_real_ct);
  lm_engine_release(E);
  TAP_DONE();
}
