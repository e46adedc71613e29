/* cuDNN graph construction without a GPU (transforms/cuda/cudnn_conv.h):
 * for the conv families and every conv of the demo model, in
 * float32 / float16 / bfloat16 x NCDHW / NDHWC, the operation graph
 * (conv + bias + activation) finalizes and heuristics return at least one
 * engine config; the TF32 filter leaves float32 configs; bad descriptors
 * fail with a message naming the field.  Plans and execution need a GPU
 * (tests/gpu/test_gpu_cudnn.c).  Exit 77 when cuDNN's libraries cannot be
 * loaded. */
#include <cuda_runtime.h>
#include <dlfcn.h>

#include "cudnn_cases.h"
#include "cudnn_conv.h"
#include "cudnn_internal.h"
#include "tap.h"

static const lmc_prec precs[] = {LMC_PREC_F32, LMC_PREC_F16, LMC_PREC_BF16};

/* Every case x precision x layout: graph_check gives >= 1 config; records
** which ones lost the fused activation. */
static void check_cases(const conv_case *c, int n)
{
  int unfused = 0;
  for (int i = 0; i < n; i++)
    for (int p = 0; p < 3; p++)
      for (int cl = 0; cl < 2; cl++) {
        char err[512] = "";
        int nc = -1;
        int rc = lmc_conv_graph_check(&c[i].d, precs[p], cl, &nc, err, sizeof err);
        if (rc != LM_OK || nc < 1)
          TAP_FAIL("%s %s %s: rc %d, %d configs: %s", c[i].name, lmc_prec_name(precs[p]),
                   cl ? "NDHWC" : "NCDHW", rc, nc, err);
        if (c[i].d.act != LM_ACT_NONE) {
          int nf = -1;
          rc = lmc_conv_graph_configs(&c[i].d, precs[p], cl, true, &nf, NULL, err, sizeof err);
          CHECK_INT(rc, LM_OK);
          if (nf < 1) {
            unfused++;
            printf("# %s %s %s: no proposal with the activation fused (the caller applies it)\n", c[i].name,
                   lmc_prec_name(precs[p]), cl ? "NDHWC" : "NCDHW");
          }
        }
      }
  printf("# %d cases x 3 precisions x 2 layouts; %d fused graphs got no proposals\n", n, unfused);
}

static void test_families(void)
{
  conv_case c[32];
  int n = cc_families(c, 16);
  CHECK(n >= 19);
  check_cases(c, n);
}

static void test_demo_model(void)
{
  conv_case c[64];
  char err[512] = "";
  int n = cc_demo_model(c, 64, err, sizeof err);
  if (n < 0) {
    TAP_FAIL("demo model: %s", err);
    return;
  }
  /* 4 levels of two convs down and up, 3 ConvTransposes, the head. */
  CHECK(n >= 10);
  int ntr = 0;
  for (int i = 0; i < n; i++) ntr += c[i].d.transposed;
  CHECK_INT(ntr, 3);
  check_cases(c, n);
}

/* Both fusion levels get proposals for the canonical 3-D case; without a GPU
** none passes cuDNN's device support checks (with one, some must). */
static void test_fusion_levels(void)
{
  lm_conv_desc d = cc_make(3, 1, 32, 32, 1, 32, 3, 1, 1, 1, false, 0, LM_ACT_LEAKY_RELU, 0.01f, 0);
  char err[512] = "";
  int fused = 0, plain = 0, ufused = -1, uplain = -1, f32 = 0, uf32 = -1;
  CHECK_INT(lmc_conv_graph_configs(&d, LMC_PREC_F16, true, true, &fused, &ufused, err, sizeof err), LM_OK);
  CHECK_INT(lmc_conv_graph_configs(&d, LMC_PREC_F16, true, false, &plain, &uplain, err, sizeof err), LM_OK);
  CHECK_INT(lmc_conv_graph_configs(&d, LMC_PREC_F32, false, false, &f32, &uf32, err, sizeof err), LM_OK);
  printf("# 3d k3 32->32 f16 NDHWC: %d proposals (%d usable here) fused with bias + LeakyReLU, %d (%d) conv + "
         "bias; f32 NCDHW conv + bias: %d (%d without TF32)\n", fused, ufused, plain, uplain, f32, uf32);
  CHECK(fused >= 1);
  CHECK(plain >= 1);
  CHECK(f32 >= 1);
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    CHECK_INT(uplain, 0);
  } else {
    CHECK(uplain >= 1);
    CHECK(uf32 >= 1);
  }
}

static void test_bad_descriptors(void)
{
  char err[512] = "";
  int nc = 7;
  lm_conv_desc d = cc_make(3, 1, 32, 32, 1, 16, 3, 1, 1, 1, false, 0, LM_ACT_NONE, 0, 0);
  d.out[1] = 15;
  CHECK_INT(lmc_conv_graph_check(&d, LMC_PREC_F16, true, &nc, err, sizeof err), LM_EINVAL);
  CHECK_CONTAINS(err, "out[1] = 15");
  CHECK_INT(nc, 0);
  d = cc_make(3, 1, 30, 32, 4, 16, 3, 1, 1, 1, false, 0, LM_ACT_NONE, 0, 0);
  CHECK_INT(lmc_conv_graph_check(&d, LMC_PREC_F32, false, &nc, err, sizeof err), LM_EINVAL);
  CHECK_CONTAINS(err, "group = 4");
  d = cc_make(2, 1, 8, 8, 1, 16, 3, 2, 1, 1, true, 1, LM_ACT_NONE, 0, 0);
  d.out[0] += 2;   /* output_padding 3 >= stride */
  CHECK_INT(lmc_conv_graph_check(&d, LMC_PREC_F32, false, &nc, err, sizeof err), LM_EINVAL);
  CHECK_CONTAINS(err, "output_padding");
  d = cc_make(3, 1, 8, 8, 1, 16, 3, 1, 1, 1, false, 0, LM_ACT_NONE, 0, 0);
  d.nsp = 4;
  CHECK_INT(lmc_conv_graph_check(&d, LMC_PREC_F32, false, &nc, err, sizeof err), LM_EINVAL);
  CHECK_CONTAINS(err, "nsp = 4");
  /* No handle: building a plan needs one (and a GPU). */
  lmc_conv *c = (lmc_conv *)1;
  d = cc_make(3, 1, 8, 8, 1, 16, 3, 1, 1, 1, false, 0, LM_ACT_NONE, 0, 0);
  CHECK_INT(lmc_conv_new(NULL, &d, LMC_PREC_F32, false, &c, NULL, err, sizeof err), LM_EINVAL);
  CHECK(c == NULL);
  CHECK_CONTAINS(err, "handle");
}

/* cuDNN's own op finalize checks the geometry (so the passes above mean the
** dims, pads, group and ConvTranspose mapping are consistent): an output one
** voxel short, or a ConvTranspose output one row long, is refused. */
static void test_cudnn_checks_geometry(void)
{
  char err[512] = "";
  lmc_geom g;
  lmc_bag bag = {0};
  cudnnBackendDescriptor_t graph;
  lm_conv_desc d = cc_make(3, 1, 32, 32, 1, 16, 3, 2, 1, 1, false, 0, LM_ACT_RELU, 0, 0);
  CHECK_INT(lmc_geom_of(&d, true, &g, err, sizeof err), LM_OK);
  CHECK_INT(lmc_graph_build(NULL, &d, &g, LMC_PREC_F16, LMC_FUSE_BIAS_ACT, &bag, &graph, err, sizeof err), LM_OK);
  lmc_bag_free(&bag);
  g.y[4]--;
  CHECK(lmc_graph_build(NULL, &d, &g, LMC_PREC_F16, LMC_FUSE_BIAS_ACT, &bag, &graph, err, sizeof err) < 0);
  CHECK_CONTAINS(err, "convolution forward op");
  CHECK_INT(bag.n, 0);
  /* grouped: W [cout, cin/g, k...]; a W with all of cin is a different conv */
  d = cc_make(3, 1, 32, 32, 4, 16, 3, 1, 1, 1, false, 0, LM_ACT_NONE, 0, 0);
  CHECK_INT(lmc_geom_of(&d, false, &g, err, sizeof err), LM_OK);
  CHECK_INT(g.w[1], 8);
  CHECK_INT(lmc_graph_build(NULL, &d, &g, LMC_PREC_F32, LMC_FUSE_BIAS_ACT, &bag, &graph, err, sizeof err), LM_OK);
  lmc_bag_free(&bag);
  /* k3s2 ConvTranspose with output_padding 1: DX is 2*in; one more is wrong */
  d = cc_make(3, 1, 64, 32, 1, 8, 3, 2, 1, 1, true, 1, LM_ACT_NONE, 0, 0);
  CHECK_INT(d.out[0], 16);
  CHECK_INT(lmc_geom_of(&d, true, &g, err, sizeof err), LM_OK);
  CHECK_INT(lmc_graph_build(NULL, &d, &g, LMC_PREC_BF16, LMC_FUSE_CONV, &bag, &graph, err, sizeof err), LM_OK);
  lmc_bag_free(&bag);
  g.y[2] += 2;
  CHECK(lmc_graph_build(NULL, &d, &g, LMC_PREC_BF16, LMC_FUSE_CONV, &bag, &graph, err, sizeof err) < 0);
  CHECK_CONTAINS(err, "backward-data");
}

/* The last rung of lmc_conv_new's ladder, the conv alone (bias then added
** by cudnnAddTensor), gets proposals too: forward and backward-data. */
static void test_conv_only_graphs(void)
{
  char err[512] = "";
  const lm_conv_desc ds[2] = {cc_make(3, 1, 32, 32, 1, 16, 3, 1, 1, 1, false, 0, LM_ACT_RELU, 0, 0),
                              cc_make(3, 1, 64, 32, 1, 8, 2, 2, 1, 0, true, 0, LM_ACT_NONE, 0, 0)};
  for (int i = 0; i < 2; i++)
    for (int p = 0; p < 3; p++) {
      lmc_geom g;
      lmc_bag bag = {0};
      cudnnBackendDescriptor_t graph, *cfgs = NULL;
      int n = -1, raw = -1;
      CHECK_INT(lmc_geom_of(&ds[i], true, &g, err, sizeof err), LM_OK);
      CHECK_INT(lmc_graph_build(NULL, &ds[i], &g, precs[p], LMC_FUSE_CONV, &bag, &graph, err, sizeof err), LM_OK);
      CHECK_INT(bag.n, 6);   /* X, W, Y, convolution, its op, the graph: no bias, no pointwise op */
      CHECK_INT(lmc_heuristics(graph, precs[p], &cfgs, &n, &raw, err, sizeof err), LM_OK);
      CHECK(raw >= 1);
      lmc_cfgs_free(cfgs, n);
      lmc_bag_free(&bag);
    }
}

/* Weights as the plan's W descriptor says: ONNX order in channels-first,
** the second dim innermost in channels-last, in the precision; a missing
** bias is zeros.  A grouped ConvTranspose [cin, cout/g, k...] checks the
** dgrad mapping (K = cin). */
static void test_pack_weights(void)
{
  char err[256] = "";
  lmc_geom g;
  /* ConvTranspose 4 -> 6, group 2, k 2x3 (2-D): W [4, 3, 2, 3] */
  lm_conv_desc d = cc_make(2, 1, 4, 6, 2, 5, 2, 2, 1, 0, true, 0, LM_ACT_NONE, 0, 0);
  d.k[1] = 3;
  d.out[1] = 2 * (5 - 1) + 3;
  float w[72], bias[6] = {0.5f, -1, 2, 3, 4, 1.0009765625f};
  for (int i = 0; i < 72; i++) w[i] = (float)i;
  CHECK_INT(lmc_geom_of(&d, true, &g, err, sizeof err), LM_OK);
  CHECK_INT(g.w[0], 4);
  CHECK_INT(g.w[1], 3);
  void *wp = NULL, *bp = NULL;
  size_t wb = 0, bb = 0;
  CHECK_INT(lmc_pack_weights(&g, LMC_PREC_F32, true, w, bias, &wp, &wb, &bp, &bb, err, sizeof err), LM_OK);
  CHECK_INT(wb, 72 * 4);
  CHECK_INT(bb, 6 * 4);
  const float *pw = wp;
  /* channels-last index (o, kh, kw, i) holds ONNX (o, i, kh, kw) */
  for (int o = 0; o < 4; o++)
    for (int i = 0; i < 3; i++)
      for (int s = 0; s < 6; s++) CHECK(pw[(o * 6 + s) * 3 + i] == w[(o * 3 + i) * 6 + s]);
  CHECK(((const float *)bp)[5] == bias[5]);
  free(wp);
  free(bp);
  CHECK_INT(lmc_pack_weights(&g, LMC_PREC_F16, false, w, NULL, &wp, &wb, &bp, &bb, err, sizeof err), LM_OK);
  CHECK_INT(wb, 72 * 2);
  CHECK_INT(bb, 6 * 2);
  float back[72], bback[6];
  lmc_prec_to_f32(LMC_PREC_F16, wp, back, 72);
  lmc_prec_to_f32(LMC_PREC_F16, bp, bback, 6);
  for (int i = 0; i < 72; i++) CHECK(back[i] == w[i]);
  for (int i = 0; i < 6; i++) CHECK(bback[i] == 0);
  free(wp);
  free(bp);
  CHECK_INT(lmc_pack_weights(&g, LMC_PREC_BF16, false, w, bias, &wp, &wb, &bp, &bb, err, sizeof err), LM_OK);
  lmc_prec_to_f32(LMC_PREC_BF16, bp, bback, 6);
  CHECK(bback[5] == 1.0f);   /* 1 + 2^-10 rounds to 1 in bfloat16 */
  CHECK(bback[1] == -1.0f);
  free(wp);
  free(bp);
}

/* The host conversions round to nearest even as the GPU's do. */
static void test_precision_conversions(void)
{
  const float in[] = {1.0f, -2.5f, 65504.0f, 65520.0f, 1e-8f, 5.9604645e-08f, 1.0009765625f, 1.00048828125f,
                      1.00146484375f, 6.103515625e-05f, 3.0517578125e-05f, 0.0f};
  const float want16[] = {1.0f, -2.5f, 65504.0f, INFINITY, 0.0f, 5.9604645e-08f, 1.0009765625f, 1.0f,
                          1.001953125f, 6.103515625e-05f, 3.0517578125e-05f, 0.0f};
  uint16_t h[12];
  float back[12];
  lmc_prec_from_f32(LMC_PREC_F16, in, h, 12);
  lmc_prec_to_f32(LMC_PREC_F16, h, back, 12);
  for (int i = 0; i < 12; i++) CHECK(back[i] == want16[i]);
  CHECK_INT(h[0], 0x3c00);
  CHECK_INT(h[1], 0xc100);
  const float bin[] = {1.0f, 1.00390625f, 1.005859375f, -3.0f};
  const float want_bf[] = {1.0f, 1.0f, 1.0078125f, -3.0f};
  lmc_prec_from_f32(LMC_PREC_BF16, bin, h, 4);
  lmc_prec_to_f32(LMC_PREC_BF16, h, back, 4);
  for (int i = 0; i < 4; i++) CHECK_NEAR(back[i], want_bf[i], 0);
  float nanv = NAN;
  lmc_prec_from_f32(LMC_PREC_F16, &nanv, h, 1);
  lmc_prec_to_f32(LMC_PREC_F16, h, back, 1);
  CHECK(isnan(back[0]));
}

int main(void)
{
  /* cuDNN 9 loads its sub-libraries on demand: graph and heuristics are what
   * this test needs.  They stay open: cuDNN registers engines from them at
   * first use, and a dlclose() before that crashes its loader (seen in 9.19). */
  const char *libs[] = {"libcudnn_graph.so.9", "libcudnn_heuristic.so.9"};
  for (int i = 0; i < 2; i++) {
    void *h = dlopen(libs[i], RTLD_LAZY | RTLD_LOCAL);
    if (!h) {
      char why[512];
      snprintf(why, sizeof why, "cannot load %s: %s", libs[i], dlerror());
      TAP_SKIP_ALL(why);
    }
  }
  printf("# cuDNN %zu (built against %d)\n", cudnnGetVersion(), CUDNN_VERSION);
  RUN(test_precision_conversions);
  RUN(test_bad_descriptors);
  RUN(test_cudnn_checks_geometry);
  RUN(test_pack_weights);
  RUN(test_conv_only_graphs);
  RUN(test_fusion_levels);
  RUN(test_families);
  RUN(test_demo_model);
  TAP_DONE();
}
