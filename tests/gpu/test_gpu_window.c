/* SlidingWindowInfer on the GPU against the CPU op: small convolutional
 * networks (lumen graph JSON, deterministic pseudo-random weights) over
 * small images, for both blending modes and rules, every padding mode,
 * mirroring, batches that do and do not divide the windows, a 2-D network
 * over the slices of a volume, a ZYX network, integer and strided inputs.
 * float32 within 1e-4 relative and the same argmax; float16 within a
 * stated tolerance.  Exits 77 (skipped) without a CUDA device; the emulated
 * plugin runs it everywhere. */
#include <math.h>
#include <stdio.h>

#include "gpu_engine.h"

/* Appends n pseudo-random weights in [-scale, scale] to buf as JSON. */
static void json_weights(char *buf, size_t len, int n, uint32_t *seed, double scale)
{
  for (int i = 0; i < n; i++) {
    *seed = *seed * 1664525u + 1013904223u;
    double v = ((double)(*seed >> 8) / 16777216.0 * 2.0 - 1.0) * scale;
    snprintf(buf + strlen(buf), len - strlen(buf), "%s%.6f", i ? "," : "", v);
  }
}

/* x [N, cin, spatial] -> Conv k3 pad 1 (cin -> 4, bias) -> LeakyRelu 0.1
 * -> Conv k1 (4 -> 3, bias) -> y: an asymmetric kernel, so a window read
 * flipped or transposed the wrong way changes the result. */
static lm_model *small_net(int nsp, int cin, const char *axes)
{
  static char json[65536];
  char w1[16384] = "", b1[256] = "", w2[1024] = "", b2[256] = "";
  uint32_t seed = 2024u + (uint32_t)nsp;
  int k1 = nsp == 3 ? 27 : 9;
  json_weights(w1, sizeof w1, 4 * cin * k1, &seed, 0.5);
  json_weights(b1, sizeof b1, 4, &seed, 0.2);
  json_weights(w2, sizeof w2, 3 * 4, &seed, 0.8);
  json_weights(b2, sizeof b2, 3, &seed, 0.2);
  const char *sp = nsp == 3 ? ", -1, -1, -1" : ", -1, -1";
  const char *ks = nsp == 3 ? "[3, 3, 3]" : "[3, 3]";
  const char *pads = nsp == 3 ? "[1, 1, 1, 1, 1, 1]" : "[1, 1, 1, 1]";
  const char *k3 = nsp == 3 ? ", 3, 3, 3" : ", 3, 3";
  const char *k1s = nsp == 3 ? ", 1, 1, 1" : ", 1, 1";
  snprintf(json, sizeof json,
           "{\"inputs\": [{\"name\": \"x\", \"shape\": [-1, %d%s], \"dtype\": \"float32\"}], "
           "\"outputs\": [\"y\"], \"nodes\": ["
           "{\"op\": \"Conv\", \"name\": \"c1\", \"inputs\": [\"x\", \"w1\", \"b1\"], "
           "\"outputs\": [\"h\"], \"attrs\": {\"kernel_shape\": %s, \"pads\": %s}}, "
           "{\"op\": \"LeakyRelu\", \"name\": \"a1\", \"inputs\": [\"h\"], \"outputs\": [\"r\"], "
           "\"attrs\": {\"alpha\": 0.1}}, "
           "{\"op\": \"Conv\", \"name\": \"c2\", \"inputs\": [\"r\", \"w2\", \"b2\"], "
           "\"outputs\": [\"y\"]}], \"weights\": ["
           "{\"name\": \"w1\", \"dtype\": \"float32\", \"shape\": [4, %d%s], \"data\": [%s]}, "
           "{\"name\": \"b1\", \"dtype\": \"float32\", \"shape\": [4], \"data\": [%s]}, "
           "{\"name\": \"w2\", \"dtype\": \"float32\", \"shape\": [3, 4%s], \"data\": [%s]}, "
           "{\"name\": \"b2\", \"dtype\": \"float32\", \"shape\": [3], \"data\": [%s]}]}",
           cin, sp, ks, pads, cin, k3, w1, b1, k1s, w2, b2);
  lm_model_options opt;
  lm_model_options_init(&opt);
  opt.axes = axes;
  lm_model *m = NULL;
  if (lm_model_load_graph(E, json, strlen(json), NULL, &opt, &m) < 0)
    TAP_FAIL("lm_model_load_graph: %s", lm_errmsg(E));
  return m;
}

/* (c, nx, ny, nz) of dtype dt, values in [-1, 1] (integers: [-500, 500]),
 * held X fastest as LoadNifti gives it: a strided view on the device too. */
static lm_tensor *test_image(lm_dtype dt, int c, int nx, int ny, int nz)
{
  int64_t fshape[4] = {nz, ny, nx, c};
  lm_tensor *f = NULL, *x = NULL;
  if (lm_tensor_new(E, dt, 4, fshape, LM_CPU, &f) < 0) return NULL;
  int perm[4] = {3, 2, 1, 0};
  lm_tensor_permute(f, perm, &x);
  lm_tensor_release(f);
  uint32_t seed = 777;
  int64_t idx[4];
  bool integer = dt != LM_F32 && dt != LM_F64;
  for (idx[0] = 0; idx[0] < c; idx[0]++)
    for (idx[1] = 0; idx[1] < nx; idx[1]++)
      for (idx[2] = 0; idx[2] < ny; idx[2]++)
        for (idx[3] = 0; idx[3] < nz; idx[3]++) {
          seed = seed * 1664525u + 1013904223u;
          int v = (int)(seed >> 8) % 1001 - 500;
          lm_tensor_set(x, idx, integer ? (double)v : v / 500.0);
        }
  lm_tensor_set_layout(x, "CXYZ");
  double aff[16] = {2, 0, 0, -10, 0, 3, 0, 5, 0, 0, 4, 7, 0, 0, 0, 1};
  lm_tensor_set_affine(x, aff);
  return x;
}

typedef struct sw_case {
  const char *what;
  int64_t roi[3];
  int nroi;
  double overlap;
  const char *mode, *rule, *padding, *precision;
  bool channels_last;
  double cval;
  int batch;
  int nmirror;
  double mirror[3];
  int slice_axis; /* -1: not set */
} sw_case;

static lm_tensor *run_sw(lm_model *m, lm_tensor *x, const sw_case *k, int64_t *windows)
{
  lm_params *p = params(), *res = NULL;
  lm_params_set_model(p, "model", m);
  double roi[3];
  for (int d = 0; d < k->nroi; d++) roi[d] = (double)k->roi[d];
  if (k->nroi) lm_params_set_numbers(p, "roi", roi, k->nroi);
  lm_params_set_number(p, "overlap", k->overlap);
  if (k->mode) lm_params_set_string(p, "mode", k->mode);
  if (k->rule) lm_params_set_string(p, "rule", k->rule);
  if (k->padding) lm_params_set_string(p, "padding_mode", k->padding);
  if (k->cval != 0) lm_params_set_number(p, "cval", k->cval);
  if (k->batch) lm_params_set_int(p, "sw_batch_size", k->batch);
  if (k->nmirror) lm_params_set_numbers(p, "mirror_axes", k->mirror, k->nmirror);
  if (k->slice_axis >= 0) lm_params_set_int(p, "slice_axis", k->slice_axis);
  /* The CPU runs float32 (its default); on the device the default is
   * float16, so float32 is asked for unless the case says otherwise. */
  bool gpu = lm_tensor_device(x).type == LM_DEVICE_CUDA;
  if (gpu) lm_params_set_string(p, "precision", k->precision ? k->precision : "float32");
  if (gpu && k->channels_last) lm_params_set_bool(p, "channels_last", true);
  lm_tensor *out = NULL;
  int nout = 1;
  int st = lm_call(E, "SlidingWindowInfer", &x, 1, p, &out, &nout, &res);
  if (st < 0) TAP_FAIL("%s (%s): %s", k->what, gpu ? "cuda" : "cpu", lm_errmsg(E));
  if (windows) {
    const lm_value *v = res ? lm_params_get(res, "windows") : NULL;
    *windows = v && v->type == LM_VALUE_INT ? v->u.integer : -1;
  }
  lm_params_free(res);
  lm_params_free(p);
  return out;
}

/* Compare the device result with the CPU's: the largest difference relative
 * to the CPU's largest magnitude (a plain relative error is meaningless for
 * logits near 0), and the share of voxels whose argmax over the channels
 * differs. */
static void compare(const char *what, lm_tensor *cpu, lm_tensor *gpu_dev, double tol,
                    double max_label_diff)
{
  if (!cpu || !gpu_dev) return;
  CHECK_INT(lm_tensor_device(gpu_dev).type, LM_DEVICE_CUDA);
  lm_tensor *gpu = call("ToHost", gpu_dev, NULL, NULL);
  if (!gpu) {
    TAP_FAIL("%s: ToHost: %s", what, lm_errmsg(E));
    return;
  }
  int nd = lm_tensor_ndim(cpu);
  bool same = lm_tensor_ndim(gpu) == nd && lm_tensor_dtype(gpu) == LM_F32;
  for (int d = 0; same && d < nd; d++) same = lm_tensor_shape(gpu)[d] == lm_tensor_shape(cpu)[d];
  if (!same) {
    TAP_FAIL("%s: the device result has another shape or dtype", what);
    lm_tensor_release(gpu);
    return;
  }
  CHECK_STR(lm_tensor_layout(gpu), lm_tensor_layout(cpu));
  for (int i = 0; i < 16; i++) CHECK(lm_tensor_affine(gpu)[i] == lm_tensor_affine(cpu)[i]);
  int64_t n = lm_tensor_numel(cpu), nc = lm_tensor_shape(cpu)[0], vox = n / nc;
  double scale = 0, worst = 0;
  for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(at(cpu, i)));
  for (int64_t i = 0; i < n; i++) {
    double dif = fabs(at(gpu, i) - at(cpu, i)) / (scale > 0 ? scale : 1);
    if (!(dif <= worst)) worst = dif;
  }
  int64_t label_diff = 0;
  for (int64_t v = 0; v < vox; v++) {
    int64_t a = 0, b = 0;
    for (int64_t c = 1; c < nc; c++) {
      if (at(cpu, c * vox + v) > at(cpu, a * vox + v)) a = c;
      if (at(gpu, c * vox + v) > at(gpu, b * vox + v)) b = c;
    }
    label_diff += a != b;
  }
  double frac = (double)label_diff / (double)vox;
  printf("# %s: max difference %.3g of the largest |logit| %.3g, argmax differs at %lld of "
         "%lld voxels\n", what, worst, scale, (long long)label_diff, (long long)vox);
  if (!(worst <= tol)) TAP_FAIL("%s: max relative difference %g > %g", what, worst, tol);
  if (!(frac <= max_label_diff))
    TAP_FAIL("%s: argmax differs at %lld voxels", what, (long long)label_diff);
  lm_tensor_release(gpu);
}

static void check_case(lm_model *m, lm_tensor *x, lm_tensor *xd, const sw_case *k, double tol,
                       double max_label_diff)
{
  int64_t wc = -1, wg = -2;
  lm_tensor *cpu = run_sw(m, x, k, &wc);
  lm_tensor *gpu = run_sw(m, xd, k, &wg);
  CHECK_INT(wg, wc);
  compare(k->what, cpu, gpu, tol, max_label_diff);
  lm_tensor_release(cpu);
  lm_tensor_release(gpu);
}

/* One float32 3-D image (19 x 17 x 6, X fastest) under every option that
 * moves data: the z axis is shorter than the window (padding). */
static void window_3d(void)
{
  lm_model *m = small_net(3, 1, NULL);
  lm_tensor *x = test_image(LM_F32, 1, 19, 17, 6);
  lm_tensor *xd = x ? gpu_to(x, "cuda") : NULL;
  CHECK(m && x && xd);
  if (!m || !x || !xd) goto done;
  sw_case cases[] = {
      {.what = "monai constant 0.25 batch 1", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.25},
      {.what = "monai gaussian 0.25 batch 1", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.25,
       .mode = "gaussian"},
      {.what = "monai gaussian 0.5 batch 3", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.5,
       .mode = "gaussian", .batch = 3},
      {.what = "monai constant 0.5 batch 4 (last batch short)", .roi = {8, 8, 8}, .nroi = 3,
       .overlap = 0.5, .batch = 4},
      {.what = "monai gaussian non-cubic window", .roi = {10, 6, 8}, .nroi = 3, .overlap = 0.25,
       .mode = "gaussian", .batch = 3},
      {.what = "pad constant cval 0.7", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.25,
       .padding = "constant", .cval = 0.7, .batch = 3},
      {.what = "pad replicate", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.25,
       .padding = "replicate", .mode = "gaussian", .batch = 3},
      {.what = "pad reflect", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.25,
       .padding = "reflect", .batch = 3},
      {.what = "pad circular", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.5,
       .padding = "circular", .mode = "gaussian", .batch = 3},
      {.what = "window larger than the image", .roi = {24, 8, 12}, .nroi = 3, .overlap = 0.25,
       .padding = "reflect", .mode = "gaussian", .batch = 3},
      {.what = "nnunet gaussian 0.5", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.5,
       .rule = "nnunet", .batch = 3},
      {.what = "nnunet mirror 3 axes batch 4", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.5,
       .rule = "nnunet", .batch = 4, .nmirror = 3, .mirror = {0, 1, 2}},
      {.what = "monai mirror axes 2, 0 batch 1", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.25,
       .mode = "gaussian", .nmirror = 2, .mirror = {2, 0}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cases[i].slice_axis = -1;
    check_case(m, x, xd, &cases[i], 1e-4, 0);
  }
done:
  lm_tensor_release(xd);
  lm_tensor_release(x);
  lm_model_release(m);
}

/* An int16 two-channel image read as float32, and a ZYX network, which sees
 * each window's axes reversed (a non-cubic window scrambles if that is
 * wrong). */
static void window_int16_zyx(void)
{
  lm_model *m = small_net(3, 2, "ZYX");
  lm_tensor *x = test_image(LM_I16, 2, 15, 11, 9);
  lm_tensor *xd = x ? gpu_to(x, "cuda") : NULL;
  CHECK(m && x && xd);
  if (!m || !x || !xd) goto done;
  sw_case k = {.what = "int16 ZYX gaussian", .roi = {10, 7, 4}, .nroi = 3, .overlap = 0.25,
               .mode = "gaussian", .batch = 3, .slice_axis = -1};
  check_case(m, x, xd, &k, 1e-4, 0);
  sw_case km = {.what = "int16 ZYX mirrored", .roi = {10, 7, 4}, .nroi = 3, .overlap = 0.5,
                .rule = "nnunet", .batch = 2, .nmirror = 2, .mirror = {1, 2}, .slice_axis = -1};
  check_case(m, x, xd, &km, 1e-4, 0);
done:
  lm_tensor_release(xd);
  lm_tensor_release(x);
  lm_model_release(m);
}

/* A 2-D network stepped over the slices of a volume along each axis. */
static void window_slices(void)
{
  lm_model *m = small_net(2, 1, NULL);
  lm_tensor *x = test_image(LM_F32, 1, 13, 11, 7);
  lm_tensor *xd = x ? gpu_to(x, "cuda") : NULL;
  CHECK(m && x && xd);
  if (!m || !x || !xd) goto done;
  for (int a = 0; a < 3; a++) {
    char what[64];
    snprintf(what, sizeof what, "2-D network, slice_axis %d", a);
    sw_case k = {.what = what, .roi = {8, 6}, .nroi = 2, .overlap = 0.25, .mode = "gaussian",
                 .batch = 5, .slice_axis = a};
    if (a == 1) k.nmirror = 1, k.mirror[0] = 0;
    check_case(m, x, xd, &k, 1e-4, 0);
  }
done:
  lm_tensor_release(xd);
  lm_tensor_release(x);
  lm_model_release(m);
}

/* float16 activations (float32 accumulation): within 5e-3 of the largest
 * logit, labels the same at 99% of the voxels or more.  bfloat16 (8 bits of
 * mantissa): 2e-2, 98%.  (Emulated: 4e-4 and 3e-3.) */
static void window_half(void)
{
  lm_model *m = small_net(3, 1, NULL);
  lm_tensor *x = test_image(LM_F32, 1, 19, 17, 6);
  lm_tensor *xd = x ? gpu_to(x, "cuda") : NULL;
  CHECK(m && x && xd);
  if (!m || !x || !xd) goto done;
  sw_case k = {.what = "float16 gaussian batch 3", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.25,
               .mode = "gaussian", .batch = 3, .precision = "float16", .slice_axis = -1};
  check_case(m, x, xd, &k, 5e-3, 0.01);
  k.what = "bfloat16 gaussian batch 3";
  k.precision = "bfloat16";
  check_case(m, x, xd, &k, 2e-2, 0.02);
  k.what = "float16 channels-last batch 4";
  k.precision = "float16";
  k.channels_last = true;
  k.batch = 4;
  check_case(m, x, xd, &k, 5e-3, 0.01);
done:
  lm_tensor_release(xd);
  lm_tensor_release(x);
  lm_model_release(m);
}

/* Errors name the op's option. */
static void window_errors(void)
{
  lm_model *m = small_net(3, 1, NULL);
  lm_tensor *x = test_image(LM_F32, 1, 9, 9, 9);
  lm_tensor *xd = x ? gpu_to(x, "cuda") : NULL;
  if (!m || !xd) goto done;
  sw_case k = {.what = "bad precision", .roi = {8, 8, 8}, .nroi = 3, .overlap = 0.25,
               .precision = "float8", .slice_axis = -1};
  lm_params *p = params();
  lm_params_set_model(p, "model", m);
  double roi[3] = {8, 8, 8};
  lm_params_set_numbers(p, "roi", roi, 3);
  lm_params_set_string(p, "precision", k.precision);
  lm_tensor *out = NULL;
  int nout = 1;
  CHECK(lm_call(E, "SlidingWindowInfer", &xd, 1, p, &out, &nout, NULL) < 0);
  CHECK_CONTAINS(lm_errmsg(E), "option 'precision' is 'float8'");
  lm_tensor_release(out);
  out = NULL;
  /* float16 is a CUDA precision: on the CPU an error naming the option */
  lm_params_set_string(p, "precision", "float16");
  CHECK(lm_call(E, "SlidingWindowInfer", &x, 1, p, &out, &nout, NULL) < 0);
  CHECK_CONTAINS(lm_errmsg(E), "option 'precision': float16 runs on CUDA only");
  lm_tensor_release(out);
  lm_params_free(p);
done:
  lm_tensor_release(xd);
  lm_tensor_release(x);
  lm_model_release(m);
}

int main(void)
{
  gpu_engine_start();
  RUN(window_3d);
  RUN(window_int16_zyx);
  RUN(window_slices);
  RUN(window_half);
  RUN(window_errors);
  lm_engine_release(E);
  TAP_DONE();
}
