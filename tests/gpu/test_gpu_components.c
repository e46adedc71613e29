/* KeepLargestConnectedComponent on the GPU against the CPU op, exactly:
 * every connectivity, per label and on the union, several components kept,
 * both tie rules (with ties built in), applied labels, integer and float
 * inputs, 2-D maps, a strided device view, the phantom and a crop of a
 * real segmentation.  Exits 77 (skipped) without a CUDA device. */
#include <stdlib.h>

#include "gpu_compare.h"

/* The phantom's labels (X, Y, Z) uint8 with speckles added, so that every
 * label has several components, some of them of equal size. */
static lm_tensor *speckled_labels(void)
{
  double shape[3] = {40, 36, 24};
  lm_tensor *label = NULL, *img = gpu_phantom(shape, &label);
  lm_tensor_release(img);
  if (!label) return NULL;
  uint8_t *l = lm_tensor_data(label);
  const int64_t *sh = lm_tensor_shape(label), *st = lm_tensor_strides(label);
  /* single voxels and 2x2x1 blocks of labels 1..6 on a sparse lattice */
  for (int64_t z = 1; z < sh[2] - 2; z += 5)
    for (int64_t y = 1; y < sh[1] - 2; y += 7)
      for (int64_t x = 1; x < sh[0] - 2; x += 6) {
        uint8_t v = (uint8_t)(1 + (x + y + z) % 6);
        bool block = (x / 6 + y / 7) % 2 == 0;
        for (int64_t dy = 0; dy <= (block ? 1 : 0); dy++)
          for (int64_t dx = 0; dx <= (block ? 1 : 0); dx++)
            l[(x + dx) * st[0] + (y + dy) * st[1] + z * st[2]] = v;
      }
  /* two diagonal neighbours: one component with 18 / 26, two with 6 */
  l[30 * st[0] + 3 * st[1] + 20 * st[2]] = 7;
  l[31 * st[0] + 4 * st[1] + 20 * st[2]] = 7;
  l[31 * st[0] + 4 * st[1] + 21 * st[2]] = 7;
  return label;
}

static void klcc(const char *what, lm_tensor *in, lm_tensor *din, int conn, bool independent,
                 int keep, const char *ties, const double *applied, int napplied)
{
  lm_params *p = params();
  if (conn) lm_params_set_number(p, "connectivity", conn);
  lm_params_set_bool(p, "independent", independent);
  lm_params_set_number(p, "num_components", keep);
  lm_params_set_string(p, "ties", ties);
  if (applied) lm_params_set_numbers(p, "applied_labels", applied, napplied);
  char w[200];
  snprintf(w, sizeof w, "%s conn=%d independent=%d keep=%d ties=%s applied=%d", what, conn,
           independent, keep, ties, napplied);
  if (din) gpu_vs_cpu_on(w, "KeepLargestConnectedComponent", &in, &din, 1, p, 0);
  else gpu_vs_cpu(w, "KeepLargestConnectedComponent", &in, 1, p, 0);
  lm_params_free(p);
}

static void test_phantom_labels(void)
{
  lm_tensor *label = speckled_labels();
  CHECK(label != NULL);
  if (!label) return;
  int conns[] = {6, 18, 26};
  const char *ties[] = {"monai", "all"};
  for (int c = 0; c < 3; c++)
    for (int ind = 0; ind < 2; ind++)
      for (int t = 0; t < 2; t++)
        klcc("phantom", label, NULL, conns[c], ind, 1 + t * 2, ties[t], NULL, 0);
  double applied[2] = {5, 2};
  klcc("phantom", label, NULL, 0, true, 1, "monai", applied, 2);
  klcc("phantom", label, NULL, 0, false, 2, "monai", applied, 2);
  double none[1] = {99};
  klcc("phantom", label, NULL, 0, true, 1, "monai", none, 1);

  /* dtypes: float32 and int16 (values converted as Cast does) */
  const char *dts[] = {"float32", "int16"};
  for (int d = 0; d < 2; d++) {
    lm_tensor *x = gpu_cast(label, dts[d]);
    CHECK(x != NULL);
    if (x) klcc(dts[d], x, NULL, 26, true, 1, "monai", NULL, 0);
    lm_tensor_release(x);
  }

  /* (1, X, Y, Z) as a strided device view (axes reversed in memory) */
  lm_tensor *c = call("ConvertToChannelsFirst", label, NULL, NULL);
  int perm[4] = {0, 3, 2, 1};
  lm_tensor *dev = c ? gpu_to(c, "cuda") : NULL, *dv = NULL, *hv = NULL;
  if (dev && lm_tensor_permute(dev, perm, &dv) == LM_OK &&
      lm_tensor_permute(c, perm, &hv) == LM_OK) {
    lm_tensor_set_layout(hv, "CXYZ");
    lm_tensor_set_layout(dv, "CXYZ");
    klcc("strided view", hv, dv, 6, true, 2, "monai", NULL, 0);
  }
  CHECK(dv != NULL && hv != NULL);
  lm_tensor_release(dv);
  lm_tensor_release(hv);
  lm_tensor_release(dev);
  lm_tensor_release(c);
  lm_tensor_release(label);
}

/* Equal-size components, so the cut falls inside a tie: MONAI keeps the one
 * whose first voxel in (X, Y, Z) C order comes last, ties='all' keeps all. */
static void test_ties(void)
{
  int64_t shape[3] = {12, 10, 8};
  lm_tensor *t = NULL;
  CHECK_INT(lm_tensor_new(E, LM_U8, 3, shape, LM_CPU, &t), LM_OK);
  if (!t) return;
  uint8_t *l = lm_tensor_data(t);
  memset(l, 0, (size_t)lm_tensor_numel(t));
  const int64_t *st = lm_tensor_strides(t);
  /* four 2x2x2 cubes of label 3 and one of 12 voxels */
  int64_t at3[4][3] = {{1, 1, 1}, {7, 1, 5}, {1, 6, 5}, {8, 6, 1}};
  for (int k = 0; k < 4; k++)
    for (int dz = 0; dz < 2; dz++)
      for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++)
          l[(at3[k][0] + dx) * st[0] + (at3[k][1] + dy) * st[1] + (at3[k][2] + dz) * st[2]] = 3;
  for (int x = 0; x < 12; x++) l[x * st[0] + 9 * st[1] + 7 * st[2]] = 3;
  const char *ties[] = {"monai", "all"};
  for (int t2 = 0; t2 < 2; t2++)
    for (int keep = 1; keep <= 3; keep++) klcc("ties", t, NULL, 6, true, keep, ties[t2], NULL, 0);
  lm_tensor_release(t);
}

/* 2-D label maps: connectivity 4 and 8. */
static void test_2d(void)
{
  lm_tensor *label = speckled_labels();
  CHECK(label != NULL);
  if (!label) return;
  lm_params *p = params();
  double start[3] = {0, 0, 11}, end[3] = {40, 36, 12};
  lm_params_set_numbers(p, "roi_start", start, 3);
  lm_params_set_numbers(p, "roi_end", end, 3);
  lm_tensor *slab = call("SpatialCrop", label, p, NULL);
  lm_params_free(p);
  lm_tensor *plane = NULL;
  if (slab && lm_tensor_squeeze(slab, 2, &plane) == LM_OK) {
    lm_tensor_set_layout(plane, "XY");
    for (int c = 4; c <= 8; c += 4)
      for (int ind = 0; ind < 2; ind++) klcc("2-D", plane, NULL, c, ind, 1, "monai", NULL, 0);
  }
  CHECK(plane != NULL);
  lm_tensor_release(plane);
  lm_tensor_release(slab);
  lm_tensor_release(label);
}

/* A crop of a real TotalSegmentator segmentation. */
static void test_real_labels(void)
{
  const char *dir = getenv("LUMEN_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/labels/totalseg_example_seg.nii.gz", dir ? dir : "");
  FILE *f = dir ? fopen(path, "rb") : NULL;
  if (!f) {
    printf("# skipped: %s not found (LUMEN_TEST_DATA)\n", path);
    CHECK(true);
    return;
  }
  fclose(f);
  lm_tensor *out[LM_MAX_OUTPUTS] = {0};
  int nout = LM_MAX_OUTPUTS;
  lm_params *p = params();
  lm_params_set_string(p, "path", path);
  int st = lm_call(E, "LoadNifti", NULL, 0, p, out, &nout, NULL);
  lm_params_free(p);
  CHECK(st >= 0);
  if (st < 0) return;
  for (int i = 1; i < nout; i++) lm_tensor_release(out[i]);
  p = params();
  double roi[3] = {48, 40, 32};
  lm_params_set_numbers(p, "roi_size", roi, 3);
  lm_tensor *seg = call("CenterCrop", out[0], p, NULL);
  lm_params_free(p);
  CHECK(seg != NULL);
  if (seg) {
    klcc("real seg", seg, NULL, 26, true, 1, "monai", NULL, 0);
    klcc("real seg", seg, NULL, 6, false, 1, "all", NULL, 0);
  }
  lm_tensor_release(seg);
  lm_tensor_release(out[0]);
}

int main(void)
{
  gpu_engine_start();
  RUN(test_phantom_labels);
  RUN(test_ties);
  RUN(test_2d);
  RUN(test_real_labels);
  lm_engine_release(E);
  TAP_DONE();
}
