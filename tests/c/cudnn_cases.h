/* The convolutions the cuDNN tests run (tests/c/test_cudnn_graph.c without a
 * GPU, tests/gpu/test_gpu_cudnn.c on one): the families by hand, and
 * every Conv / ConvTranspose of the repository's demo model read through the
 * ONNX reader at its 48^3 window. */
#ifndef LM_CUDNN_CASES_H
#define LM_CUDNN_CASES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_conv.h"
#include "graph.h"
#include "loaders.h"

typedef struct conv_case {
  char name[96];
  lm_conv_desc d;
} conv_case;

/* d for a conv with cubic extents: sp = spatial size of the input, k, s
** (stride), dil, pad (both sides), opad (ConvTranspose output_padding). */
static lm_conv_desc cc_make(int nsp, int64_t n, int64_t cin, int64_t cout, int64_t group, int64_t sp,
                            int64_t k, int64_t s, int64_t dil, int64_t pad, bool tr, int64_t opad,
                            lm_act act, float alpha, float beta)
{
  lm_conv_desc d;
  memset(&d, 0, sizeof d);
  d.nsp = nsp;
  d.n = n;
  d.cin = cin;
  d.cout = cout;
  d.group = group;
  d.transposed = tr;
  d.act = act;
  d.alpha = alpha;
  d.beta = beta;
  for (int j = 0; j < nsp; j++) {
    int64_t span = dil * (k - 1) + 1;
    d.in[j] = sp;
    d.k[j] = k;
    d.stride[j] = s;
    d.dil[j] = dil;
    d.pad_lo[j] = d.pad_hi[j] = pad;
    d.out[j] = tr ? s * (sp - 1) + span - 2 * pad + opad : (sp + 2 * pad - span) / s + 1;
  }
  return d;
}

/* The families at spatial size sp (the GPU test passes bigger sizes
** for meaningful timings).  Returns the count (<= 32). */
static int cc_families(conv_case *c, int64_t sp)
{
  int n = 0;
#define CC(nm, ...) do { snprintf(c[n].name, sizeof c[n].name, "%s", nm); c[n].d = cc_make(__VA_ARGS__); n++; } while (0)
  CC("3d k3 32->32 +LeakyReLU", 3, 1, 32, 32, 1, sp, 3, 1, 1, 1, false, 0, LM_ACT_LEAKY_RELU, 0.01f, 0);
  CC("3d k3 32->32 +ReLU", 3, 1, 32, 32, 1, sp, 3, 1, 1, 1, false, 0, LM_ACT_RELU, 0, 0);
  CC("3d k3 32->32 plain", 3, 1, 32, 32, 1, sp, 3, 1, 1, 1, false, 0, LM_ACT_NONE, 0, 0);
  CC("3d k3s2 down 32->64 +ReLU", 3, 1, 32, 64, 1, sp, 3, 2, 1, 1, false, 0, LM_ACT_RELU, 0, 0);
  CC("3d k2s2 ConvTranspose 64->32", 3, 1, 64, 32, 1, sp / 2, 2, 2, 1, 0, true, 0, LM_ACT_NONE, 0, 0);
  CC("3d k3s2 ConvTranspose opad1 64->32", 3, 1, 64, 32, 1, sp / 2, 3, 2, 1, 1, true, 1, LM_ACT_NONE, 0, 0);
  CC("3d k3 dil2 (MeshNet) 21->21 +ELU", 3, 1, 21, 21, 1, sp, 3, 1, 2, 2, false, 0, LM_ACT_ELU, 1.0f, 0);
  CC("3d k3 dil4 (MeshNet) 21->21 +ReLU", 3, 1, 21, 21, 1, sp, 3, 1, 4, 4, false, 0, LM_ACT_RELU, 0, 0);
  CC("3d k3 dil8 (MeshNet) 21->21 +ReLU", 3, 1, 21, 21, 1, sp, 3, 1, 8, 8, false, 0, LM_ACT_RELU, 0, 0);
  CC("3d k3 dil16 (MeshNet) 21->21 +ReLU", 3, 1, 21, 21, 1, sp, 3, 1, 16, 16, false, 0, LM_ACT_RELU, 0, 0);
  CC("3d k3 grouped g4 32->32 +SiLU", 3, 1, 32, 32, 4, sp, 3, 1, 1, 1, false, 0, LM_ACT_SILU, 0, 0);
  CC("3d k3 depthwise 32->32 +GELU", 3, 1, 32, 32, 32, sp, 3, 1, 1, 1, false, 0, LM_ACT_GELU, 0, 0);
  CC("3d k3 Cin=1 first 1->32 +Sigmoid", 3, 1, 1, 32, 1, sp, 3, 1, 1, 1, false, 0, LM_ACT_SIGMOID, 0, 0);
  CC("3d k1 classes last 32->6", 3, 1, 32, 6, 1, sp, 1, 1, 1, 0, false, 0, LM_ACT_NONE, 0, 0);
  CC("3d k3 batch 2 32->32 +Tanh", 3, 2, 32, 32, 1, sp, 3, 1, 1, 1, false, 0, LM_ACT_TANH, 0, 0);
  CC("3d k3 32->32 +Clip(0,6)", 3, 1, 32, 32, 1, sp, 3, 1, 1, 1, false, 0, LM_ACT_CLIP, 0.0f, 6.0f);
  CC("2d k3 64->64 +ReLU", 2, 1, 64, 64, 1, 4 * sp, 3, 1, 1, 1, false, 0, LM_ACT_RELU, 0, 0);
  CC("2d k2s2 ConvTranspose 64->32", 2, 1, 64, 32, 1, 2 * sp, 2, 2, 1, 0, true, 0, LM_ACT_NONE, 0, 0);
  CC("1d k5 16->16 +ReLU", 1, 1, 16, 16, 1, 64 * sp, 5, 1, 1, 2, false, 0, LM_ACT_RELU, 0, 0);
#undef CC
  return n;
}

/* The activation node that alone consumes value v, if any. */
static const lm_gnode *cc_only_consumer(const lm_graph *g, int v)
{
  const lm_gnode *found = NULL;
  int uses = 0;
  for (int i = 0; i < g->nnodes; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] >= 0 && lm_graph_resolve(g, n->in[j]) == v) {
        uses++;
        found = n;
      }
  }
  return uses == 1 ? found : NULL;
}

/* Every Conv / ConvTranspose of models/demo_ct_unet/model.onnx at input
** [1, 1, 48, 48, 48] (its metadata's roi), with the activation that follows
** when one alone consumes the output.  Count, or -1 with err filled. */
static int cc_demo_model(conv_case *c, int max, char *err, size_t errlen)
{
  const char *root = getenv("LUMEN_SOURCE_ROOT");
  char path[1024];
  snprintf(path, sizeof path, "%s/models/demo_ct_unet/model.onnx", root ? root : ".");
  lm_graph *g0 = NULL, *g = NULL;
  if (lm_onnx_load(path, &g0, err, errlen) < 0) return -1;
  int rc = lm_graph_prepare(g0);
  int64_t shape[5] = {1, 1, 48, 48, 48};
  const int64_t *shapes[1] = {shape};
  int ndims[1] = {5};
  if (rc == LM_OK) g = lm_graph_clone(g0);
  if (rc == LM_OK && g) rc = lm_graph_specialize(g, ndims, shapes);
  if (rc < 0 || !g) {
    /* The graph's message names the file. */
    snprintf(err, errlen, "%s", g && g->err[0] ? g->err : g0->err);
    if (g) lm_graph_free(g);
    lm_graph_free(g0);
    return -1;
  }
  int n = 0;
  for (int i = 0; i < g->nnodes && n < max; i++) {
    const lm_gnode *nd = &g->nodes[i];
    bool tr = !strcmp(nd->op, "ConvTranspose");
    if (nd->dead || (!tr && strcmp(nd->op, "Conv"))) continue;
    const lm_gvalue *x = &g->values[lm_graph_resolve(g, nd->in[0])];
    const lm_gvalue *w = &g->values[lm_graph_resolve(g, nd->in[1])];
    const lm_gvalue *y = &g->values[nd->out[0]];
    lm_conv_desc *d = &c[n].d;
    memset(d, 0, sizeof *d);
    d->nsp = x->ndim - 2;
    d->n = x->shape[0];
    d->cin = x->shape[1];
    d->group = lm_gnode_attr_int(nd, "group", 1);
    d->cout = tr ? w->shape[1] * d->group : w->shape[0];
    d->transposed = tr;
    int cnt;
    const int64_t *st = lm_gnode_attr_ints(nd, "strides", &cnt);
    const int64_t *dl = lm_gnode_attr_ints(nd, "dilations", &cnt);
    const int64_t *pads = lm_gnode_attr_ints(nd, "pads", &cnt);
    for (int j = 0; j < d->nsp; j++) {
      d->in[j] = x->shape[2 + j];
      d->out[j] = y->shape[2 + j];
      d->k[j] = w->shape[2 + j];
      d->stride[j] = st ? st[j] : 1;
      d->dil[j] = dl ? dl[j] : 1;
      d->pad_lo[j] = pads ? pads[j] : 0;
      d->pad_hi[j] = pads ? pads[d->nsp + j] : 0;
    }
    const lm_gnode *a = cc_only_consumer(g, nd->out[0]);
    if (a && !lm_act_of_node(g, a, &d->act, &d->alpha, &d->beta)) d->act = LM_ACT_NONE;
    snprintf(c[n].name, sizeof c[n].name, "demo %s '%s' %lld->%lld%s%s", nd->op, nd->name,
             (long long)d->cin, (long long)d->cout, d->act ? " +" : "", d->act ? a->op : "");
    n++;
  }
  lm_graph_free(g);
  lm_graph_free(g0);
  return n;
}

#endif
