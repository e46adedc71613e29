/* The CUDA plugin's Orientation, SpatialCrop, CenterCrop, SpatialPad,
 * DivisiblePad and CropForeground against the CPU ops: values exactly, and the same memory
 * order, affine, layout, trace (for RestoreOriginalShape) and results, on
 * the phantom and its label map in several dtypes, permuted and narrowed
 * inputs, every pad mode.  Exits 77 (skipped) without a CUDA device. */
#include "gpu_compare.h"

static const double phantom_shape[3] = {40, 36, 24};

/* An LPS-like oblique affine, so Orientation flips and the crops move the
 * origin along non-axis-aligned columns. */
static void set_affine(lm_tensor *t)
{
  const double A[16] = {-0.8, 0.05, 0, 100, 0, -0.75, 0.1, 120, 0.02, 0, 2.5, -50, 0, 0, 0, 1};
  lm_tensor_set_affine(t, A);
}

/* The image in dtype dt, (1, X, Y, Z), and the label (X, Y, Z) uint8. */
static lm_tensor *image(const char *dt, lm_tensor **label)
{
  lm_tensor *img = gpu_phantom(phantom_shape, label);
  if (!img) return NULL;
  lm_tensor *c = gpu_cast(img, dt);
  lm_tensor_release(img);
  if (c) set_affine(c);
  set_affine(*label);
  return c;
}

static void run_each(const char *what, const char *op, lm_tensor *const *ins, int n,
                     const lm_params *p)
{
  for (int i = 0; i < n; i++) gpu_vs_cpu(what, op, &ins[i], 1, p, 0);
}

static void test_orientation(void)
{
  lm_tensor *label = NULL, *img = image("int16", &label);
  lm_tensor *f = img ? gpu_cast(img, "float32") : NULL;
  CHECK(img && label && f);
  if (!img || !label || !f) return;
  lm_tensor *ins[3] = {img, label, f};
  /* Flips (copy), a pure permutation (view) and the identity. */
  const char *codes[] = {"RAS", "LPS", "PLS", "SAR", "ILA", "RPI"};
  for (int k = 0; k < 6; k++) {
    lm_params *p = params();
    lm_params_set_string(p, "axcodes", codes[k]);
    char what[64];
    snprintf(what, sizeof what, "Orientation %s", codes[k]);
    run_each(what, "Orientation", ins, 3, p);
    lm_params_free(p);
  }
  /* A permuted device input: the flipped copy walks negative and permuted
   * strides. */
  lm_tensor *dev = gpu_to(f, "cuda"), *hv = NULL, *dv = NULL;
  int perm[4] = {0, 2, 1, 3};
  CHECK(dev && lm_tensor_permute(f, perm, &hv) == LM_OK && lm_tensor_permute(dev, perm, &dv) == LM_OK);
  if (hv && dv) {
    lm_params *p = params();
    lm_params_set_string(p, "axcodes", "RAS");
    gpu_vs_cpu_on("Orientation permuted", "Orientation", &hv, &dv, 1, p, 0);
    lm_params_free(p);
  }
  lm_tensor_release(hv);
  lm_tensor_release(dv);
  lm_tensor_release(dev);
  lm_tensor_release(f);
  lm_tensor_release(img);
  lm_tensor_release(label);
}

static void test_crops(void)
{
  lm_tensor *label = NULL, *img = image("int16", &label);
  lm_tensor *f = img ? gpu_cast(img, "float64") : NULL, *h = img ? gpu_cast(img, "float16") : NULL;
  CHECK(img && label && f && h);
  if (!img || !label || !f || !h) return;
  lm_tensor *ins[4] = {img, label, f, h};
  lm_params *p = params();
  double c[3] = {10, 30, 12}, s[3] = {16, 20, 50};
  lm_params_set_numbers(p, "roi_center", c, 3);
  lm_params_set_numbers(p, "roi_size", s, 3);
  run_each("SpatialCrop centre (clipped)", "SpatialCrop", ins, 4, p);
  lm_params_free(p);
  p = params();
  double a[3] = {3, 0, 5}, b[3] = {30, 36, 6};
  lm_params_set_numbers(p, "roi_start", a, 3);
  lm_params_set_numbers(p, "roi_end", b, 3);
  run_each("SpatialCrop bounds", "SpatialCrop", ins, 4, p);
  lm_params_free(p);
  p = params();
  double r[3] = {17, -1, 9};
  lm_params_set_numbers(p, "roi_size", r, 3);
  run_each("CenterCrop", "CenterCrop", ins, 4, p);
  lm_params_free(p);
  /* A narrowed (non-dense) device input. */
  lm_tensor *dev = gpu_to(img, "cuda"), *hn = NULL, *dn = NULL;
  CHECK(dev && lm_tensor_narrow(img, 3, 2, 19, &hn) == LM_OK &&
        lm_tensor_narrow(dev, 3, 2, 19, &dn) == LM_OK);
  if (hn && dn) {
    p = params();
    double r2[3] = {25, 25, 25};
    lm_params_set_numbers(p, "roi_size", r2, 3);
    gpu_vs_cpu_on("CenterCrop narrowed", "CenterCrop", &hn, &dn, 1, p, 0);
    lm_params_free(p);
  }
  lm_tensor_release(hn);
  lm_tensor_release(dn);
  lm_tensor_release(dev);
  lm_tensor_release(f);
  lm_tensor_release(h);
  lm_tensor_release(img);
  lm_tensor_release(label);
}

static void test_pads(void)
{
  lm_tensor *label = NULL, *img = image("int16", &label);
  lm_tensor *f = img ? gpu_cast(img, "float32") : NULL, *u = img ? gpu_cast(img, "uint32") : NULL;
  CHECK(img && label && f && u);
  if (!img || !label || !f || !u) return;
  /* A tiny volume, so reflect / symmetric pads wider than the axis repeat. */
  int64_t tiny_shape[4] = {2, 3, 1, 4};
  double tv[24];
  for (int i = 0; i < 24; i++) tv[i] = i * 1.5 - 7;
  lm_tensor *tiny = mk(LM_F32, 4, tiny_shape, tv);
  set_affine(tiny);
  lm_tensor *ins[5] = {img, label, f, u, tiny};
  const char *modes[] = {"constant", "edge", "reflect", "symmetric", "replicate"};
  for (int m = 0; m < 5; m++)
    for (int end = 0; end < 2; end++) {
      char what[96];
      lm_params *p = params();
      lm_params_set_string(p, "mode", modes[m]);
      lm_params_set_string(p, "method", end ? "end" : "symmetric");
      lm_params_set_number(p, "value", -3.5);
      double sz[3] = {45, 11, 31};
      lm_params_set_numbers(p, "spatial_size", sz, 3);
      snprintf(what, sizeof what, "SpatialPad %s %s", modes[m], end ? "end" : "symmetric");
      run_each(what, "SpatialPad", ins, 5, p);
      double k[3] = {16, 7, 32};
      lm_params_set_numbers(p, "k", k, 3);
      snprintf(what, sizeof what, "DivisiblePad %s %s", modes[m], end ? "end" : "symmetric");
      lm_params *q = params();
      lm_params_set_string(q, "mode", modes[m]);
      lm_params_set_string(q, "method", end ? "end" : "symmetric");
      lm_params_set_numbers(q, "k", k, 3);
      run_each(what, "DivisiblePad", ins, 5, q);
      lm_params_free(q);
      lm_params_free(p);
    }
  lm_tensor_release(tiny);
  lm_tensor_release(f);
  lm_tensor_release(u);
  lm_tensor_release(img);
  lm_tensor_release(label);
}

static void cf_case(const char *what, lm_tensor *img, lm_tensor *lab, lm_params *p)
{
  lm_tensor *in[2] = {img, lab};
  gpu_vs_cpu(what, "CropForeground", in, lab ? 2 : 1, p, 0);
}

/* Both rules; the second output (label crop or nnU-Net seg) is compared
 * through a second call that keeps only it (gpu_vs_cpu compares output 0). */
static void test_crop_foreground(void)
{
  lm_tensor *label = NULL, *img = image("int16", &label);
  CHECK(img && label);
  if (!img || !label) return;
  lm_tensor *lab4 = NULL;
  CHECK_INT(lm_tensor_unsqueeze(label, 0, &lab4), LM_OK);
  lm_params *p = params();
  cf_case("CropForeground monai", img, NULL, p);
  lm_params_set_number(p, "select_threshold", 150);
  double margin[3] = {2, 3, 1}, k[3] = {16, 16, 16};
  lm_params_set_numbers(p, "margin", margin, 3);
  lm_params_set_numbers(p, "k_divisible", k, 3);
  lm_params_set_string(p, "mode", "edge");
  cf_case("CropForeground monai margin k edge", img, lab4, p);
  lm_params_set_bool(p, "allow_smaller", true);
  lm_params_set_string(p, "mode", "reflect");
  cf_case("CropForeground monai allow_smaller", img, lab4, p);
  lm_params_set_number(p, "select_threshold", 1e9);
  cf_case("CropForeground monai empty", img, NULL, p);
  lm_params_free(p);
  /* nnU-Net: an image that is 0 outside the organs, with a hollow cube
   * (its inside is filled by binary_fill_holes: not -1 in the seg). */
  lm_tensor *f = gpu_cast(lab4, "float32");
  if (f) {
    for (int64_t x = 3; x < 12; x++)
      for (int64_t y = 3; y < 12; y++)
        for (int64_t z = 3; z < 12; z++) {
          bool shell = x == 3 || x == 11 || y == 3 || y == 11 || z == 3 || z == 11;
          lm_tensor_set(f, (int64_t[]){0, x, y, z}, shell ? 5.5 : 0);
        }
    set_affine(f);
    p = params();
    lm_params_set_string(p, "rule", "nnunet");
    cf_case("CropForeground nnunet", f, NULL, p);
    cf_case("CropForeground nnunet with label", f, lab4, p);
    lm_params_set_int(p, "connectivity", 3);
    cf_case("CropForeground nnunet connectivity 3", f, label, p);
    /* The seg (output 1) against the CPU's. */
    for (int with_lab = 0; with_lab < 2; with_lab++) {
      lm_tensor *in[2] = {f, lab4}, *din[2] = {gpu_to(f, "cuda"), gpu_to(lab4, "cuda")};
      lm_tensor *co[LM_MAX_OUTPUTS] = {0}, *go[LM_MAX_OUTPUTS] = {0};
      int nc = LM_MAX_OUTPUTS, ng = LM_MAX_OUTPUTS;
      int n_in = with_lab ? 2 : 1;
      CHECK(lm_call(E, "CropForeground", in, n_in, p, co, &nc, NULL) >= 0);
      CHECK(lm_call(E, "CropForeground", din, n_in, p, go, &ng, NULL) >= 0);
      CHECK_INT(ng, nc);
      if (nc == 2 && ng == 2) {
        lm_tensor *h = call("ToHost", go[1], NULL, NULL);
        CHECK(h != NULL);
        if (h) {
          CHECK_INT(lm_tensor_dtype(h), lm_tensor_dtype(co[1]));
          CHECK_INT(lm_tensor_numel(h), lm_tensor_numel(co[1]));
          for (int d = 0; d < lm_tensor_ndim(h); d++)
            CHECK_INT(lm_tensor_strides(go[1])[d], lm_tensor_strides(co[1])[d]);
          CHECK_INT(gpu_count_diff(co[1], h, 0), 0);
          CHECK_STR(lm_tensor_layout(go[1]), lm_tensor_layout(co[1]));
          for (int i = 0; i < 16; i++) CHECK_NEAR(lm_tensor_affine(go[1])[i], lm_tensor_affine(co[1])[i], 0);
          CHECK_INT(lm_tensor_trace_length(go[1]), lm_tensor_trace_length(co[1]));
          int last = lm_tensor_trace_length(co[1]) - 1;
          if (last >= 0 && lm_tensor_trace_length(go[1]) == last + 1)
            CHECK_STR(lm_tensor_trace_at(go[1], last)->params, lm_tensor_trace_at(co[1], last)->params);
          /* The hollow cube's inside is filled: 0 there, not -1. */
          if (!with_lab) CHECK_NEAR(at(h, 0), -1, 0);
        }
        lm_tensor_release(h);
      }
      for (int i = 0; i < LM_MAX_OUTPUTS; i++) {
        lm_tensor_release(co[i]);
        lm_tensor_release(go[i]);
      }
      lm_tensor_release(din[0]);
      lm_tensor_release(din[1]);
    }
    lm_params_free(p);
  }
  lm_tensor_release(f);
  lm_tensor_release(lab4);
  lm_tensor_release(img);
  lm_tensor_release(label);
}

/* The GPU outputs carry the trace RestoreOriginalShape needs: undoing a
 * pad and an orientation of the GPU result gives back the input. */
static void test_restore(void)
{
  lm_tensor *label = NULL, *img = image("float32", &label);
  CHECK(img != NULL);
  if (!img) return;
  lm_tensor *dev = gpu_to(img, "cuda");
  lm_params *p = params(), *q = params();
  lm_params_set_string(p, "axcodes", "RAS");
  double k[3] = {16, 16, 16};
  lm_params_set_numbers(q, "k", k, 3);
  lm_params_set_string(q, "mode", "reflect");
  lm_tensor *o = dev ? call("Orientation", dev, p, NULL) : NULL;
  lm_tensor *d = o ? call("DivisiblePad", o, q, NULL) : NULL;
  lm_tensor *hd = d ? call("ToHost", d, NULL, NULL) : NULL;
  CHECK(hd != NULL);
  lm_tensor *back = NULL;
  if (hd) {
    /* pred = ref = the padded volume: every trace entry is undone. */
    lm_tensor *in[2] = {hd, hd}, *out[LM_MAX_OUTPUTS] = {0};
    int nout = LM_MAX_OUTPUTS;
    if (lm_call(E, "RestoreOriginalShape", in, 2, NULL, out, &nout, NULL) < 0)
      printf("# RestoreOriginalShape: %s\n", lm_errmsg(E));
    back = out[0];
  }
  CHECK(back != NULL);
  if (back) {
    CHECK_INT(lm_tensor_trace_length(back), 0);
    CHECK_INT(gpu_count_diff(img, back, 0), 0);
    for (int i = 0; i < 16; i++) CHECK_NEAR(lm_tensor_affine(back)[i], lm_tensor_affine(img)[i], 1e-12);
  }
  lm_tensor_release(back);
  lm_tensor_release(hd);
  lm_tensor_release(d);
  lm_tensor_release(o);
  lm_tensor_release(dev);
  lm_params_free(p);
  lm_params_free(q);
  lm_tensor_release(img);
  lm_tensor_release(label);
}

static lm_tensor *load_real(const char *rel)
{
  const char *dir = getenv("LUMEN_TEST_DATA");
  char path[1024];
  if (!dir || !*dir) return NULL;
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fclose(f);
  lm_params *p = params();
  lm_params_set_string(p, "path", path);
  lm_tensor *t = call("LoadNifti", NULL, p, NULL);
  lm_params_free(p);
  lm_tensor *c = t ? call("ConvertToChannelsFirst", t, NULL, NULL) : NULL;
  lm_tensor_release(t);
  return c;
}

/* A real CT and its segmentation (../shared/data; skipped where absent):
 * the preprocessing chain's ops, each GPU vs CPU. */
static void test_real_ct(void)
{
  lm_tensor *ct = load_real("ct/totalseg_example_ct_sm.nii.gz");
  lm_tensor *seg = load_real("labels/totalseg_example_seg.nii.gz");
  if (!ct || !seg) {
    printf("# skipped: LUMEN_TEST_DATA/ct/totalseg_example_ct_sm.nii.gz or its seg not found\n");
    lm_tensor_release(ct);
    lm_tensor_release(seg);
    return;
  }
  lm_params *p = params();
  lm_params_set_string(p, "axcodes", "RAS");
  gpu_vs_cpu("real: Orientation RAS", "Orientation", &ct, 1, p, 0);
  gpu_vs_cpu("real: Orientation RAS (seg)", "Orientation", &seg, 1, p, 0);
  lm_params_set_string(p, "axcodes", "LPI");
  gpu_vs_cpu("real: Orientation LPI", "Orientation", &ct, 1, p, 0);
  lm_params_free(p);
  p = params();
  lm_params_set_number(p, "select_threshold", -500);
  double margin[3] = {5, 5, 5};
  lm_params_set_numbers(p, "margin", margin, 3);
  lm_tensor *in[2] = {ct, seg};
  gpu_vs_cpu("real: CropForeground", "CropForeground", in, 2, p, 0);
  lm_params_free(p);
  p = params();
  double k[3] = {32, 32, 32};
  lm_params_set_numbers(p, "k", k, 3);
  lm_params_set_string(p, "mode", "symmetric");
  gpu_vs_cpu("real: DivisiblePad", "DivisiblePad", &ct, 1, p, 0);
  lm_params_free(p);
  p = params();
  lm_params_set_number(p, "lower", 0.5);
  lm_params_set_number(p, "upper", 99.5);
  lm_params_set_number(p, "b_min", 0);
  lm_params_set_number(p, "b_max", 1);
  lm_params_set_bool(p, "clip", true);
  gpu_vs_cpu("real: ScaleIntensityRangePercentiles", "ScaleIntensityRangePercentiles", &ct, 1, p, 0);
  lm_params_free(p);
  p = params();
  lm_params_set_bool(p, "nonzero", true);
  gpu_vs_cpu("real: NormalizeIntensity", "NormalizeIntensity", &ct, 1, p, 1e-5);
  lm_params_free(p);
  lm_tensor_release(ct);
  lm_tensor_release(seg);
}

int main(void)
{
  gpu_engine_start();
  RUN(test_orientation);
  RUN(test_crops);
  RUN(test_pads);
  RUN(test_crop_foreground);
  RUN(test_restore);
  RUN(test_real_ct);
  lm_engine_release(E);
  TAP_DONE();
}
