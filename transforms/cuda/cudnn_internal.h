/* Internals shared by cudnn_conv.c (plans, cache, run) and cudnn_desc.c
 * (backend descriptors, operation graphs, heuristics). */
#ifndef LMC_CUDNN_INTERNAL_H
#define LMC_CUDNN_INTERNAL_H

#include "cudnn_conv.h"

/* Unique ids of the graph's tensors (the variant pack names them). */
enum { LMC_UID_X = 1, LMC_UID_W, LMC_UID_B, LMC_UID_Y, LMC_UID_CONV_OUT, LMC_UID_ADD_OUT };

/* The convolution as cuDNN sees it: rank 4 or 5 tensors (1-D as 2-D with a
** leading unit spatial dim), x = the op's input (DY of BACKWARD_DATA for a
** ConvTranspose), y = its output (DX). */
typedef struct lmc_geom {
  int nd;                                   /* 4 or 5 */
  int64_t x[5], w[5], y[5], b[5];           /* dims */
  int64_t xs[5], ws[5], ys[5], bs[5];       /* strides (elements) */
  int64_t pre[3], post[3], stride[3], dil[3];
} lmc_geom;

/* Every descriptor made for one graph, destroyed together. */
#define LMC_BAG_MAX 16
typedef struct lmc_bag {
  int n;
  cudnnBackendDescriptor_t d[LMC_BAG_MAX];
} lmc_bag;
void lmc_bag_free(lmc_bag *b);

/* Checks d (the rules of lm_conv_new's) and fills g.  LM_OK or an error in err. */
int lmc_geom_of(const lm_conv_desc *d, bool channels_last, lmc_geom *g, char *err, size_t errlen);

/* What the graph fuses after the convolution, from most to least. */
typedef enum lmc_fusion {
  LMC_FUSE_CONV = 0,       /* the conv alone, Y its output (bias added by cudnnAddTensor) */
  LMC_FUSE_BIAS = 1,       /* conv + bias add */
  LMC_FUSE_BIAS_ACT = 2    /* conv + bias add + d->act (= BIAS when d->act is NONE) */
} lmc_fusion;

/* The finalized operation graph at that fusion level, descriptors in bag
** (graph = the op graph). */
int lmc_graph_build(cudnnHandle_t h, const lm_conv_desc *d, const lmc_geom *g, lmc_prec prec,
                    lmc_fusion fuse, lmc_bag *bag, cudnnBackendDescriptor_t *graph, char *err,
                    size_t errlen);

/* Engine configs of graph from heuristics mode A then FALLBACK (A's first):
** the ones that pass cuDNN's support checks on the current device (cuDNN 9.19
** checks them when handing them out: none pass without a GPU) less the ones
** F32 mode forbids (TF32).  *cfgs malloc'd, each a finalized ENGINECFG
** descriptor the caller destroys (lmc_cfgs_free).  *nraw: how many results
** the heuristics proposed before those checks. */
int lmc_heuristics(cudnnBackendDescriptor_t graph, lmc_prec prec, cudnnBackendDescriptor_t **cfgs,
                   int *ncfgs, int *nraw, char *err, size_t errlen);
void lmc_cfgs_free(cudnnBackendDescriptor_t *cfgs, int n);

/* lmc_conv_pack_weights on a geometry (so that tests can check the layout
** without a GPU). */
int lmc_pack_weights(const lmc_geom *g, lmc_prec prec, bool channels_last, const float *w, const float *bias,
                     void **w_out, size_t *w_bytes, void **b_out, size_t *b_bytes, char *err, size_t errlen);

/* err = "cudnn: <step>: <status string> (<cuDNN's last error>)"; returns LM_ECUDA
** style negative status. */
int lmc_cudnn_fail(char *err, size_t errlen, const char *step, cudnnStatus_t st);
/* err = printf-style message; returns LM_EINVAL. */
int lmc_conv_bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
