/* Convolution plans on cuDNN's graph API (cudnn_conv.h): graph checks,
 * plan building with a process-wide cache, weight packing, execution.
 * Descriptors and heuristics are in cudnn_desc.c. */
#include <cuda_runtime.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudnn_internal.h"
#include "lumen.h"

/* ---- precisions ---------------------------------------------------------- */

size_t lmc_prec_size(lmc_prec p) { return p == LMC_PREC_F32 ? 4 : 2; }

const char *lmc_prec_name(lmc_prec p)
{
  return p == LMC_PREC_F16 ? "float16" : p == LMC_PREC_BF16 ? "bfloat16" : "float32";
}

static uint32_t f32_bits(float f)
{
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float f32_of_bits(uint32_t u)
{
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* IEEE binary16, round to nearest even, overflow to inf, NaN kept quiet. */
static uint16_t f16_of(float f)
{
  uint32_t x = f32_bits(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);   /* >= 65520 rounds to inf */
  if (ax < 0x38800000u) {                                       /* subnormal half or zero */
    if (ax < 0x33000000u) return (uint16_t)sign;                /* < 2^-25: rounds to 0 */
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    /* value = m * 2^(e-150), half's subnormal unit 2^-24: q = m / 2^(126-e) */
    uint32_t shift = 126 - e;
    uint32_t q = m >> (shift), rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t r = ax + 0xfffu + ((ax >> 13) & 1);                  /* round mantissa to 10 bits */
  return (uint16_t)(sign | (((r >> 13) - (112u << 10)) & 0x7fffu));
}

static float f32_of_f16(uint16_t h)
{
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu;
  if (e == 0x1f) return f32_of_bits(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    float v = (float)m * (1.0f / 16777216.0f);                  /* m * 2^-24, exact */
    return sign ? -v : v;
  }
  return f32_of_bits(sign | ((e + 112) << 23) | (m << 13));
}

static uint16_t bf16_of(float f)
{
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

void lmc_prec_from_f32(lmc_prec p, const float *src, void *dst, size_t n)
{
  uint16_t *h = dst;
  if (p == LMC_PREC_F32)
    memcpy(dst, src, n * 4);
  else if (p == LMC_PREC_F16)
    for (size_t i = 0; i < n; i++) h[i] = f16_of(src[i]);
  else
    for (size_t i = 0; i < n; i++) h[i] = bf16_of(src[i]);
}

void lmc_prec_to_f32(lmc_prec p, const void *src, float *dst, size_t n)
{
  const uint16_t *h = src;
  if (p == LMC_PREC_F32)
    memcpy(dst, src, n * 4);
  else if (p == LMC_PREC_F16)
    for (size_t i = 0; i < n; i++) dst[i] = f32_of_f16(h[i]);
  else
    for (size_t i = 0; i < n; i++) dst[i] = f32_of_bits((uint32_t)h[i] << 16);
}

/* ---- the plan and its cache ------------------------------------------------ */

/* What makes two plans the same (memcmp'd: built zeroed). */
typedef struct lmc_key {
  lm_conv_desc d;            /* bf16 (a CPU option) cleared */
  lmc_prec prec;
  bool channels_last;
  cudnnHandle_t h;
} lmc_key;

struct lmc_conv {
  lmc_key key;
  int refs;
  lmc_conv *next;            /* cache list */
  lmc_geom geo;
  lmc_bag bag;               /* the graph's descriptors, alive as long as the plan */
  cudnnBackendDescriptor_t cfg;   /* the plan's engine config, kept with it */
  cudnnBackendDescriptor_t plan;
  int64_t workspace;
  lmc_fusion fusion;
  lm_act fused;
  /* LMC_FUSE_CONV: the bias is added by cudnnAddTensor over these. */
  cudnnTensorDescriptor_t bias_td, y_td;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static lmc_conv *cache_head;

static void key_of(lmc_key *k, cudnnHandle_t h, const lm_conv_desc *d, lmc_prec prec, bool cl)
{
  memset(k, 0, sizeof *k);
  /* Field by field so that padding bytes stay zero. */
  k->d.nsp = d->nsp;
  k->d.n = d->n;
  k->d.cin = d->cin;
  k->d.cout = d->cout;
  k->d.group = d->group;
  for (int j = 0; j < d->nsp && j < 3; j++) {
    k->d.in[j] = d->in[j];
    k->d.out[j] = d->out[j];
    k->d.k[j] = d->k[j];
    k->d.stride[j] = d->stride[j];
    k->d.dil[j] = d->dil[j];
    k->d.pad_lo[j] = d->pad_lo[j];
    k->d.pad_hi[j] = d->pad_hi[j];
  }
  k->d.transposed = d->transposed;
  k->d.act = d->act;
  if (d->act == LM_ACT_LEAKY_RELU || d->act == LM_ACT_ELU || d->act == LM_ACT_CLIP) k->d.alpha = d->alpha;
  if (d->act == LM_ACT_CLIP) k->d.beta = d->beta;
  k->prec = prec;
  k->channels_last = cl;
  k->h = h;
}

static void conv_destroy(lmc_conv *c)
{
  if (c->plan) cudnnBackendDestroyDescriptor(c->plan);
  if (c->cfg) cudnnBackendDestroyDescriptor(c->cfg);
  if (c->bias_td) cudnnDestroyTensorDescriptor(c->bias_td);
  if (c->y_td) cudnnDestroyTensorDescriptor(c->y_td);
  lmc_bag_free(&c->bag);
  free(c);
}

/* ---- graph checks (no GPU) ------------------------------------------------- */

static int graph_configs_at(const lm_conv_desc *d, lmc_prec prec, bool channels_last, lmc_fusion fuse,
                            int *nconfigs, int *nusable, char *err, size_t errlen)
{
  lmc_geom g;
  lmc_bag bag = {0};
  cudnnBackendDescriptor_t graph, *cfgs = NULL;
  *nconfigs = 0;
  if (nusable) *nusable = 0;
  int rc = lmc_geom_of(d, channels_last, &g, err, errlen);
  if (rc < 0) return rc;
  if ((rc = lmc_graph_build(NULL, d, &g, prec, fuse, &bag, &graph, err, errlen)) < 0) return rc;
  int n = 0, raw = 0;
  rc = lmc_heuristics(graph, prec, &cfgs, &n, &raw, err, errlen);
  lmc_cfgs_free(cfgs, n);
  lmc_bag_free(&bag);
  if (rc < 0) return rc;
  *nconfigs = raw;
  if (nusable) *nusable = n;
  return LM_OK;
}

int lmc_conv_graph_configs(const lm_conv_desc *d, lmc_prec prec, bool channels_last, bool fuse_act,
                           int *nconfigs, int *nusable, char *err, size_t errlen)
{
  return graph_configs_at(d, prec, channels_last, fuse_act ? LMC_FUSE_BIAS_ACT : LMC_FUSE_BIAS, nconfigs,
                          nusable, err, errlen);
}

int lmc_conv_graph_check(const lm_conv_desc *d, lmc_prec prec, bool channels_last, int *nconfigs,
                         char *err, size_t errlen)
{
  *nconfigs = 0;
  /* The ladder lmc_conv_new climbs down. */
  for (int f = d->act != LM_ACT_NONE ? LMC_FUSE_BIAS_ACT : LMC_FUSE_BIAS; f >= LMC_FUSE_CONV; f--) {
    int rc = graph_configs_at(d, prec, channels_last, (lmc_fusion)f, nconfigs, NULL, err, errlen);
    if (rc < 0) return rc;
    if (*nconfigs > 0) return LM_OK;
  }
  return lmc_conv_bad(err, errlen, "cudnn: heuristics (modes A and FALLBACK) gave no engine config for "
                      "this %s convolution in %s %s", d->transposed ? "transposed" : "forward",
                      lmc_prec_name(prec), channels_last ? "channels-last" : "channels-first");
}

/* ---- building plans (on a device) -------------------------------------------- */

static int plan_finalize(cudnnHandle_t h, cudnnBackendDescriptor_t cfg, cudnnBackendDescriptor_t *plan,
                         int64_t *ws)
{
  cudnnBackendDescriptor_t p = NULL;
  cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &p);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                  &cfg);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(p);
  int64_t n = 0;
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendGetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, ws);
  if (st != CUDNN_STATUS_SUCCESS) {
    if (p) cudnnBackendDestroyDescriptor(p);
    return (int)st;
  }
  *plan = p;
  return 0;
}

/* The plan on x, w, bias (left out of the variant pack when NULL: a plan
** without the bias add), y. */
static int execute(cudnnHandle_t h, cudnnBackendDescriptor_t plan, const void *x, const void *w,
                   const void *bias, void *y, void *ws, char *err, size_t errlen)
{
  int64_t uids[4] = {LMC_UID_X, LMC_UID_W, LMC_UID_Y, LMC_UID_B};
  void *ptrs[4] = {(void *)x, (void *)w, y, (void *)bias};
  int64_t n = bias ? 4 : 3;
  cudnnBackendDescriptor_t vp = NULL;
  const char *step = "variant pack";
  cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(vp);
  if (st == CUDNN_STATUS_SUCCESS) {
    step = "execute";
    st = cudnnBackendExecute(h, plan, vp);
  }
  if (vp) cudnnBackendDestroyDescriptor(vp);
  return st == CUDNN_STATUS_SUCCESS ? LM_OK : lmc_cudnn_fail(err, errlen, step, st);
}

/* LUMEN_CUDNN_AUTOTUNE=k: how many finalized plans to time (0: take the first). */
static int autotune_k(void)
{
  const char *s = getenv("LUMEN_CUDNN_AUTOTUNE");
  int k = s ? atoi(s) : 0;
  return k < 0 ? 0 : k > 16 ? 16 : k;
}

/* Mean ms of `reps` runs after one warm-up, on the handle's stream, into
** scratch buffers; < 0 when a run fails. */
static float time_plan(cudnnHandle_t h, cudnnBackendDescriptor_t plan, void *const buf[4], void *ws,
                       bool with_bias)
{
  const void *b = with_bias ? buf[2] : NULL;
  cudaStream_t s = NULL;
  cudnnGetStream(h, &s);
  cudaEvent_t e0, e1;
  if (cudaEventCreate(&e0) != cudaSuccess) return -1;
  if (cudaEventCreate(&e1) != cudaSuccess) {
    cudaEventDestroy(e0);
    return -1;
  }
  char err[64];
  float ms = -1;
  const int reps = 3;
  if (execute(h, plan, buf[0], buf[1], b, buf[3], ws, err, sizeof err) == LM_OK &&
      cudaEventRecord(e0, s) == cudaSuccess) {
    int ok = 1;
    for (int i = 0; i < reps && ok; i++) ok = execute(h, plan, buf[0], buf[1], b, buf[3], ws, err, sizeof err) == LM_OK;
    if (ok && cudaEventRecord(e1, s) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess &&
        cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess)
      ms /= reps;
    else
      ms = -1;
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return ms;
}

static int64_t prod(const int64_t *v, int n)
{
  int64_t p = 1;
  for (int i = 0; i < n; i++) p *= v[i];
  return p;
}

/* Of the finalized plans[0..n), the fastest on zeroed buffers (index).
** 0 when timing is impossible (no memory: the first one is kept). */
static int autotune_pick(cudnnHandle_t h, const lmc_conv *c, cudnnBackendDescriptor_t *plans,
                         const int64_t *ws, int n)
{
  const lmc_geom *g = &c->geo;
  size_t es = lmc_prec_size(c->key.prec);
  size_t bytes[4] = {(size_t)prod(g->x, g->nd) * es, (size_t)prod(g->w, g->nd) * es,
                     (size_t)prod(g->b, g->nd) * es, (size_t)prod(g->y, g->nd) * es};
  int64_t wmax = 0;
  for (int i = 0; i < n; i++) wmax = ws[i] > wmax ? ws[i] : wmax;
  void *buf[4] = {0}, *wsp = NULL;
  int best = 0, ok = 1;
  cudaStream_t s = NULL;
  cudnnGetStream(h, &s);
  /* Zeroed on the stream the plans run on (which may not synchronise with
   * the legacy default stream). */
  for (int i = 0; i < 4 && ok; i++)
    ok = cudaMalloc(&buf[i], bytes[i]) == cudaSuccess && cudaMemsetAsync(buf[i], 0, bytes[i], s) == cudaSuccess;
  if (ok && wmax > 0) ok = cudaMalloc(&wsp, (size_t)wmax) == cudaSuccess;
  if (ok) {
    float best_ms = -1;
    for (int i = 0; i < n; i++) {
      float ms = time_plan(h, plans[i], buf, wsp, c->fusion != LMC_FUSE_CONV);
      if (ms >= 0 && (best_ms < 0 || ms < best_ms)) {
        best_ms = ms;
        best = i;
      }
    }
  }
  cudaGetLastError();   /* a failed cudaMalloc must not stick to later calls */
  for (int i = 0; i < 4; i++) cudaFree(buf[i]);
  cudaFree(wsp);
  return best;
}

/* Graph at one fusion level -> c->plan.  LM_OK; LM_EUNSUPPORTED when no
** config finalizes (err says why); other errors as they come. */
static int build_level(cudnnHandle_t h, lmc_conv *c, lmc_fusion fuse, char *err, size_t errlen)
{
  cudnnBackendDescriptor_t graph, *cfgs = NULL;
  int n = 0, raw = 0;
  c->fusion = fuse;   /* autotune_pick reads it */
  int rc = lmc_graph_build(h, &c->key.d, &c->geo, c->key.prec, fuse, &c->bag, &graph, err, errlen);
  if (rc < 0) return rc;
  if ((rc = lmc_heuristics(graph, c->key.prec, &cfgs, &n, &raw, err, errlen)) < 0) {
    lmc_bag_free(&c->bag);
    return rc;
  }
  int want = autotune_k(), got = 0;
  if (want < 1) want = 1;
  cudnnBackendDescriptor_t plans[16];
  int64_t ws[16];
  int cfg_of[16];
  cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
  for (int i = 0; i < n && got < want; i++) {
    int st = plan_finalize(h, cfgs[i], &plans[got], &ws[got]);
    if (st == 0)
      cfg_of[got++] = i;
    else
      last = (cudnnStatus_t)st;
  }
  if (got == 0) {
    lmc_cfgs_free(cfgs, n);
    lmc_bag_free(&c->bag);
    if (n == 0)
      lmc_conv_bad(err, errlen, "cudnn: heuristics (modes A and FALLBACK): none of their %d engine configs "
                   "passed cuDNN's support checks on this device%s", raw,
                   c->key.prec == LMC_PREC_F32 ? " without TF32" : "");
    else
      lmc_cudnn_fail(err, errlen, "execution plan finalize (every engine config)", last);
    return LM_EUNSUPPORTED;
  }
  int best = got > 1 ? autotune_pick(h, c, plans, ws, got) : 0;
  for (int i = 0; i < got; i++)
    if (i != best) cudnnBackendDestroyDescriptor(plans[i]);
  c->cfg = cfgs[cfg_of[best]];
  cfgs[cfg_of[best]] = NULL;
  lmc_cfgs_free(cfgs, n);
  c->plan = plans[best];
  c->workspace = ws[best];
  c->fused = fuse == LMC_FUSE_BIAS_ACT ? c->key.d.act : LM_ACT_NONE;
  return LM_OK;
}

/* cudnnAddTensor's descriptors for y += bias (LMC_FUSE_CONV plans). */
static int legacy_bias_descs(lmc_conv *c, char *err, size_t errlen)
{
  const lmc_geom *g = &c->geo;
  int yd[5], ys[5], bd[5], bs[5];
  for (int i = 0; i < g->nd; i++) {
    if (g->y[i] > INT_MAX || g->ys[i] > INT_MAX)
      return lmc_conv_bad(err, errlen, "cudnn: output too large for cudnnAddTensor's int dims");
    yd[i] = (int)g->y[i];
    ys[i] = (int)g->ys[i];
    bd[i] = (int)g->b[i];
    bs[i] = (int)g->bs[i];
  }
  cudnnDataType_t dt = c->key.prec == LMC_PREC_F16    ? CUDNN_DATA_HALF
                       : c->key.prec == LMC_PREC_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  cudnnStatus_t st = cudnnCreateTensorDescriptor(&c->bias_td);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnCreateTensorDescriptor(&c->y_td);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetTensorNdDescriptor(c->bias_td, dt, g->nd, bd, bs);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetTensorNdDescriptor(c->y_td, dt, g->nd, yd, ys);
  return st == CUDNN_STATUS_SUCCESS ? LM_OK : lmc_cudnn_fail(err, errlen, "bias tensor descriptors", st);
}

int lmc_conv_new(cudnnHandle_t h, const lm_conv_desc *d, lmc_prec prec, bool channels_last,
                 lmc_conv **out, lm_act *fused_act, char *err, size_t errlen)
{
  *out = NULL;
  if (!h) return lmc_conv_bad(err, errlen, "cudnn: lmc_conv_new needs a cuDNN handle");
  lmc_key k;
  key_of(&k, h, d, prec, channels_last);
  /* The lock is held while building so that two threads sharing a handle
   * never build the same plan twice; builds are one-time costs. */
  pthread_mutex_lock(&cache_lock);
  for (lmc_conv *c = cache_head; c; c = c->next)
    if (!memcmp(&c->key, &k, sizeof k)) {
      c->refs++;
      pthread_mutex_unlock(&cache_lock);
      *out = c;
      if (fused_act) *fused_act = c->fused;
      return LM_OK;
    }
  lmc_conv *c = calloc(1, sizeof *c);
  int rc;
  if (!c) {
    rc = LM_ENOMEM;
    lmc_conv_bad(err, errlen, "cudnn: out of memory");
  } else {
    c->key = k;
    c->refs = 1;
    rc = lmc_geom_of(&k.d, channels_last, &c->geo, err, errlen);
    /* Down the ladder: everything fused; conv + bias (the caller applies
     * the activation); the conv alone with the bias added by cudnnAddTensor.
     * Each level's reason is kept for the error when none builds. */
    char why[3][400] = {"", "", ""};
    int top = d->act != LM_ACT_NONE ? LMC_FUSE_BIAS_ACT : LMC_FUSE_BIAS;
    for (int f = top; rc == LM_OK && f >= LMC_FUSE_CONV; f--) {
      int lrc = build_level(h, c, (lmc_fusion)f, why[f], sizeof why[f]);
      if (lrc == LM_OK) break;
      if (lrc == LM_ENOMEM || f == LMC_FUSE_CONV) {
        rc = lrc;
        snprintf(err, errlen, "%s%s%s%s%s", why[LMC_FUSE_CONV],
                 why[LMC_FUSE_BIAS][0] ? "; with the bias fused: " : "", why[LMC_FUSE_BIAS],
                 why[LMC_FUSE_BIAS_ACT][0] ? "; with bias and activation fused: " : "",
                 why[LMC_FUSE_BIAS_ACT]);
        if (lrc == LM_ENOMEM) snprintf(err, errlen, "%s", why[f]);
      }
    }
    if (rc == LM_OK && c->fusion == LMC_FUSE_CONV) rc = legacy_bias_descs(c, err, errlen);
  }
  if (rc < 0) {
    if (c) conv_destroy(c);
    pthread_mutex_unlock(&cache_lock);
    return rc;
  }
  c->next = cache_head;
  cache_head = c;
  pthread_mutex_unlock(&cache_lock);
  *out = c;
  if (fused_act) *fused_act = c->fused;
  return LM_OK;
}

void lmc_conv_free(lmc_conv *c)
{
  if (!c) return;
  pthread_mutex_lock(&cache_lock);
  if (--c->refs > 0) {
    pthread_mutex_unlock(&cache_lock);
    return;
  }
  for (lmc_conv **p = &cache_head; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  pthread_mutex_unlock(&cache_lock);
  conv_destroy(c);
}

size_t lmc_conv_workspace_size(const lmc_conv *c) { return (size_t)c->workspace; }

void lmc_conv_describe(const lmc_conv *c, char *buf, size_t len)
{
  int64_t engine = -1, n = 0;
  cudnnBackendDescriptor_t eng = NULL;
  if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) == CUDNN_STATUS_SUCCESS) {
    if (cudnnBackendGetAttribute(c->cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                 &eng) == CUDNN_STATUS_SUCCESS && n == 1)
      cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &engine);
    cudnnBackendDestroyDescriptor(eng);
  }
  static const char *const fusion[] = {"conv, bias by cudnnAddTensor", "conv + bias", "conv + bias + act"};
  snprintf(buf, len, "engine %lld, %s%s, workspace %lld B", (long long)engine, fusion[c->fusion],
           c->fusion != LMC_FUSE_BIAS_ACT && c->key.d.act != LM_ACT_NONE ? " (act by the caller)" : "",
           (long long)c->workspace);
}

int lmc_conv_run(lmc_conv *c, cudnnHandle_t h, const void *x, const void *w, const void *bias, void *y,
                 void *workspace, char *err, size_t errlen)
{
  if (c->workspace > 0 && !workspace)
    return lmc_conv_bad(err, errlen, "cudnn: the plan needs a workspace of %lld bytes",
                        (long long)c->workspace);
  if (c->fusion != LMC_FUSE_CONV) return execute(h, c->plan, x, w, bias, y, workspace, err, errlen);
  int rc = execute(h, c->plan, x, w, NULL, y, workspace, err, errlen);
  if (rc < 0) return rc;
  const float one = 1.0f;   /* float scalars: the data is float, half or bfloat16 */
  cudnnStatus_t st = cudnnAddTensor(h, &one, c->bias_td, bias, &one, c->y_td, y);
  return st == CUDNN_STATUS_SUCCESS ? LM_OK : lmc_cudnn_fail(err, errlen, "cudnnAddTensor (bias)", st);
}

/* ---- weights ---------------------------------------------------------------- */

int lmc_pack_weights(const lmc_geom *g, lmc_prec prec, bool channels_last, const float *w, const float *bias,
                     void **w_out, size_t *w_bytes, void **b_out, size_t *b_bytes, char *err, size_t errlen)
{
  size_t es = lmc_prec_size(prec);
  int64_t K = g->w[0], C = g->w[1], kvol = prod(g->w + 2, g->nd - 2), n = K * C * kvol;
  int64_t cout = g->y[1];
  *w_out = *b_out = NULL;
  float *tmp = malloc((size_t)(n > cout ? n : cout) * sizeof *tmp);
  void *wo = malloc((size_t)n * es), *bo = malloc((size_t)cout * es);
  if (!tmp || !wo || !bo) {
    free(tmp);
    free(wo);
    free(bo);
    lmc_conv_bad(err, errlen, "cudnn: out of memory packing %lld weights", (long long)n);
    return LM_ENOMEM;
  }
  if (!channels_last) {
    memcpy(tmp, w, (size_t)n * sizeof *tmp);
  } else {
    /* [K, C, k...] -> [K, k..., C] */
    for (int64_t o = 0; o < K; o++)
      for (int64_t i = 0; i < C; i++)
        for (int64_t s = 0; s < kvol; s++) tmp[(o * kvol + s) * C + i] = w[(o * C + i) * kvol + s];
  }
  lmc_prec_from_f32(prec, tmp, wo, (size_t)n);
  if (bias)
    memcpy(tmp, bias, (size_t)cout * sizeof *tmp);
  else
    memset(tmp, 0, (size_t)cout * sizeof *tmp);
  lmc_prec_from_f32(prec, tmp, bo, (size_t)cout);
  free(tmp);
  *w_out = wo;
  *w_bytes = (size_t)n * es;
  *b_out = bo;
  *b_bytes = (size_t)cout * es;
  return LM_OK;
}

int lmc_conv_pack_weights(const lmc_conv *c, const float *w, const float *bias, void **w_out,
                          size_t *w_bytes, void **b_out, size_t *b_bytes, char *err, size_t errlen)
{
  return lmc_pack_weights(&c->geo, c->key.prec, c->key.channels_last, w, bias, w_out, w_bytes, b_out, b_bytes,
                          err, errlen);
}
