/* GPU plans (gpu_plan.h): the CPU planner's layout-only plan (steps, fused
 * patterns, views, in-place steps, arena offsets) turned into a list of
 * device launches whose every pointer is fixed when the plan is built: the
 * arena, the uploaded constants, the plan's own float32 inputs and outputs.
 * Running is then a walk over the launches on one stream, and with
 * cuda_graph that walk is captured once and replayed.
 *
 * Values: run-time values live in the arena (the CPU plan's offsets scaled
 * to the storage element size) or in the plan's input/output buffers;
 * constants read by kernels are uploaded once as float32.  With float16 /
 * bfloat16 storage, or channels-last, the graph inputs get their own
 * storage buffers filled by a conversion at the start, and the outputs are
 * converted into the float32 output buffers at the end.
 *
 * Host logic only (plain C, both plugins); the kernels are in
 * infer_kernels.cu, the cuDNN convolutions in cudnn_conv.c (real plugin). */
#include "gpu_plan.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "infer_kernels.h"
#include "model_internal.h"
#include "plan.h"
#include "plan_internal.h"

#ifndef LMC_EMULATE
/* The executor thread's cuDNN handle on the compute stream, and its stream
** for capturing CUDA graphs: cuda_util.h's lmc_cudnn_handle and
** lmc_capture_stream (C++), through infer_cuda.cu. */
cudnnHandle_t lmc_plan_cudnn_handle(int device, char *err, size_t errlen);
cudaStream_t lmc_plan_capture_stream(int device, char *err, size_t errlen);
#endif

typedef enum gkind {
  G_CONV,       /* cuDNN or the direct kernel, then the unfused activation */
  G_NORM,       /* InstanceNorm / GroupNorm (+act, +residual) */
  G_BINARY,     /* broadcast binary (+act) */
  G_UNARY,      /* activation, copy or dtype conversion */
  G_LAYOUT,     /* NC+spatial <-> channels-last (+dtype conversion) */
  G_CONCAT,     /* one slab copy per input */
  G_GATHER,     /* Transpose */
  G_PAD,
  G_POOL,
  G_MEAN,       /* GlobalAveragePool */
  G_SOFTMAX,
  G_RESIZE
} gkind;

typedef struct gstep {
  gkind kind;
  char label[112];
  const void *x, *x2;
  void *y;
  int xdt, x2dt, ydt;
  int64_t n;
  /* G_CONV */
  lmc_k_conv_args conv;
  const float *w, *bias;       /* direct kernel: float32 ONNX layout */
#ifndef LMC_EMULATE
  lmc_conv *cudnn;
  void *cw, *cb;               /* packed for cuDNN */
#endif
  int post_act;
  float post_alpha, post_beta;
  /* G_NORM */
  lmc_k_norm_args norm;
  const float *gscale, *gbias, *gamma, *beta;
  /* G_BINARY, G_GATHER */
  int op, act;
  float alpha, abeta;
  lmc_k_bcast_args bc;
  /* G_CONCAT */
  int ncat;
  const void **cat_x;
  int64_t *cat_inner, *cat_off;
  int64_t outer, inner_y;
  /* G_LAYOUT */
  int64_t ln, lc, lsp;
  int to_cl;
  /* G_PAD, G_POOL, G_RESIZE, G_MEAN, G_SOFTMAX */
  lmc_k_pad_args pad;
  lmc_k_pool_args pool;
  lmc_k_resize_args rs;
  const int *rs_ntap;
  const int64_t *rs_idx;
  const double *rs_w;
  int64_t rows, len, inner;
} gstep;

struct lmc_plan {
  lm_plan *lp;                 /* layout-only CPU plan: owns the graph */
  int device;
  lmc_plan_options o;
  int sdt;                     /* storage dtype of activations */
  size_t esz;
  void *arena;
  int nin, nout;
  float **in_bufs, **out_bufs;
  void **vptr;                 /* per value: device pointer, NULL = none yet */
  int *vdt;
  bool *vcl;                   /* stored channel-interleaved */
  gstep *steps;
  int nsteps, cap_steps;
  double *work;
  size_t work_doubles;
  void *ws;
  size_t ws_bytes;
  void **allocs;
  int nallocs, cap_allocs;
  int ncudnn, ndirect;
#ifndef LMC_EMULATE
  cudnnHandle_t h;
  cudaGraph_t graph;
  cudaGraphExec_t gexec;
  bool warmed_up;              /* ran once without a graph (before capture) */
#endif
};

static int failf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* ---- device memory ------------------------------------------------------------- */

static void *dalloc(lmc_plan *p, size_t bytes)
{
  if (p->nallocs == p->cap_allocs) {
    int cap = p->cap_allocs ? 2 * p->cap_allocs : 64;
    void **a = realloc(p->allocs, sizeof *a * (size_t)cap);
    if (!a) return NULL;
    p->allocs = a;
    p->cap_allocs = cap;
  }
  void *d = NULL;
  size_t n = (bytes + 255) & ~(size_t)255;
#ifdef LMC_EMULATE
  /* Left undefined, as cudaMalloc's: valgrind then reports a kernel that
  ** reads before anything wrote. */
  d = aligned_alloc(256, n ? n : 256);
#else
  cudaError_t e = cudaMalloc(&d, n ? n : 256);
  if (e == cudaErrorMemoryAllocation) {
    /* The stream-ordered pool of runtime.cu keeps the blocks that earlier
    ** ops freed (its release threshold is raised) and cudaMalloc cannot
    ** use them: once those frees have run, give them back to the driver
    ** and try once more (as lmc_rt_alloc does for the pool itself). */
    cudaMemPool_t pool;
    cudaGetLastError();
    if (cudaDeviceSynchronize() == cudaSuccess &&
        cudaDeviceGetDefaultMemPool(&pool, p->device) == cudaSuccess &&
        cudaMemPoolTrimTo(pool, 0) == cudaSuccess)
      e = cudaMalloc(&d, n ? n : 256);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    d = NULL;
  }
#endif
  if (d) p->allocs[p->nallocs++] = d;
  return d;
}

static int upload(void *dst, const void *src, size_t n, char *err, size_t errlen)
{
  if (!n) return LM_OK;
#ifdef LMC_EMULATE
  memcpy(dst, src, n);
  (void)err;
  (void)errlen;
  return LM_OK;
#else
  /* From pageable memory cudaMemcpy returns once the data is staged, before
  ** its DMA (on the legacy default stream) has landed, and the compute
  ** stream is non-blocking: it does not wait for the legacy stream.  The
  ** plan's first run could read weights still in flight without the wait. */
  cudaError_t e = cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = cudaStreamSynchronize(cudaStreamLegacy);
  if (e != cudaSuccess) {
    cudaGetLastError(); /* not left for the next kernel launch to report */
    return failf(err, errlen, LM_ECUDA, "uploading %zu bytes: %s", n, cudaGetErrorString(e));
  }
  return LM_OK;
#endif
}

/* A host buffer on the device (allocated by the plan). */
static void *upload_new(lmc_plan *p, const void *src, size_t n, char *err, size_t errlen)
{
  void *d = dalloc(p, n);
  if (!d) {
    failf(err, errlen, LM_ENOMEM, "out of device memory (%zu bytes)", n);
    return NULL;
  }
  return upload(d, src, n, err, errlen) < 0 ? NULL : d;
}

static int copy_d2d(void *dst, const void *src, size_t n, cudaStream_t s)
{
  if (!n || dst == src) return 0;
#ifdef LMC_EMULATE
  (void)s;
  memmove(dst, src, n);
  return 0;
#else
  cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s);
  if (e != cudaSuccess) cudaGetLastError(); /* reported by the caller, not by the next launch */
  return (int)e;
#endif
}

/* ---- values ---------------------------------------------------------------------- */

static const lm_graph *pg(const lmc_plan *p) { return p->lp->g; }

static const char *node_name(const lm_gnode *n)
{
  return n && n->name && *n->name ? n->name : "(unnamed)";
}

static int64_t vnumel(const lmc_plan *p, int v)
{
  return lm_gvalue_numel(&pg(p)->values[v]);
}

/* Channels interleaved in storage: a run-time value of a channels-last
** plan with more than one channel and more than one position. */
static bool interleaved_shape(const lmc_plan *p, int v)
{
  const lm_gvalue *val = &pg(p)->values[v];
  if (!p->o.channels_last || val->ndim < 3 || val->shape[1] <= 1) return false;
  int64_t sp = 1;
  for (int d = 2; d < val->ndim; d++) sp *= val->shape[d];
  return sp > 1;
}

/* A constant as float32 on the device (uploaded once). */
static int const_ptr(lmc_plan *p, int v, const lm_gnode *n, char *err, size_t errlen)
{
  if (p->vptr[v]) return LM_OK;
  const lm_gvalue *val = &pg(p)->values[v];
  int64_t cnt = lm_gvalue_numel(val);
  float *host = malloc(sizeof *host * (size_t)(cnt > 0 ? cnt : 1));
  if (!host) return failf(err, errlen, LM_ENOMEM, "out of memory");
  if (val->dt == LM_F32) memcpy(host, val->data, sizeof *host * (size_t)cnt);
  else if (val->dt == LM_F64)
    for (int64_t i = 0; i < cnt; i++) host[i] = (float)((const double *)val->data)[i];
  else {
    free(host);
    return failf(err, errlen, LM_EINVAL, "node '%s' (%s): constant '%s' is %s; GPU kernels read "
                 "float32 constants", node_name(n), n->op, val->name, lm_dtype_name(val->dt));
  }
  p->vptr[v] = upload_new(p, host, sizeof *host * (size_t)(cnt > 0 ? cnt : 1), err, errlen);
  free(host);
  if (!p->vptr[v]) return LM_ENOMEM;
  p->vdt[v] = LM_F32;
  p->vcl[v] = false;
  return LM_OK;
}

/* Resolve the device pointers of every run-time value; constants come on
** demand (only those a kernel reads). */
static int place_values(lmc_plan *p, char *err, size_t errlen)
{
  const lm_plan *lp = p->lp;
  const lm_graph *g = pg(p);
  bool direct = p->sdt == LM_F32 && !p->o.channels_last;
  for (int v = 0; v < g->nvalues; v++) {
    switch (lp->loc[v]) {
    case LOC_INPUT:
      p->vptr[v] = direct ? p->in_bufs[lp->loc_index[v]] : dalloc(p, (size_t)vnumel(p, v) * p->esz);
      break;
    case LOC_OUTPUT:
      p->vptr[v] = direct ? p->out_bufs[lp->loc_index[v]] : dalloc(p, (size_t)vnumel(p, v) * p->esz);
      break;
    case LOC_ARENA:
      p->vptr[v] = (unsigned char *)p->arena + lp->loc_offset[v] / 4 * p->esz;
      break;
    default: continue;
    }
    if (!p->vptr[v]) return failf(err, errlen, LM_ENOMEM, "out of device memory");
    p->vdt[v] = p->sdt;
    p->vcl[v] = interleaved_shape(p, v);
  }
  return LM_OK;
}

/* ---- steps ------------------------------------------------------------------------- */

static gstep *new_step(lmc_plan *p, gkind kind, const char *label)
{
  if (p->nsteps == p->cap_steps) {
    int cap = p->cap_steps ? 2 * p->cap_steps : 64;
    gstep *s = realloc(p->steps, sizeof *s * (size_t)cap);
    if (!s) return NULL;
    p->steps = s;
    p->cap_steps = cap;
  }
  gstep *s = &p->steps[p->nsteps++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  snprintf(s->label, sizeof s->label, "%s", label);
  return s;
}

static void need_work(lmc_plan *p, int64_t doubles)
{
  if ((size_t)doubles > p->work_doubles) p->work_doubles = (size_t)doubles;
}

static int64_t spatial(const lm_gvalue *v)
{
  int64_t sp = 1;
  for (int d = 2; d < v->ndim; d++) sp *= v->shape[d];
  return sp;
}

static int unsupported(const plan_step *st, const char *why, char *err, size_t errlen)
{
  return failf(err, errlen, LM_EUNSUPPORTED, "node '%s' (%s): no GPU kernel for %s",
               node_name(st->node), st->node->op, why);
}

/* Input j of a step as a device pointer (uploading a constant). */
static int in_ptr(lmc_plan *p, const plan_step *st, int j, const void **ptr, int *dt,
                  char *err, size_t errlen)
{
  int v = st->vin[j];
  if (v < 0) {
    *ptr = NULL;
    *dt = LM_F32;
    return LM_OK;
  }
  if (!p->vptr[v]) {
    if (!pg(p)->values[v].data)
      return failf(err, errlen, LM_EINTERNAL, "node '%s' (%s): input %d has no device buffer",
                   node_name(st->node), st->node->op, j);
    int rc = const_ptr(p, v, st->node, err, errlen);
    if (rc < 0) return rc;
  }
  *ptr = p->vptr[v];
  *dt = p->vdt[v];
  return LM_OK;
}

static int add_conv(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  const lm_conv_desc *d = &st->cdesc;
  int x = st->vin[0], y = st->vout[0];
  gstep *s = new_step(p, G_CONV, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  s->x = p->vptr[x];
  s->xdt = p->vdt[x];
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  s->n = vnumel(p, y);
  lmc_k_conv_args *c = &s->conv;
  c->n = d->n;
  c->cin = d->cin;
  c->cout = d->cout;
  c->group = d->group;
  for (int i = 0; i < 3; i++) {
    bool has = i < d->nsp;
    c->in[i] = has ? d->in[i] : 1;
    c->out[i] = has ? d->out[i] : 1;
    c->k[i] = has ? d->k[i] : 1;
    c->stride[i] = has ? d->stride[i] : 1;
    c->dil[i] = has ? d->dil[i] : 1;
    c->pad[i] = has ? d->pad_lo[i] : 0;
  }
  c->transposed = d->transposed;
  c->act = d->act;
  c->alpha = d->alpha;
  c->beta = d->beta;
  c->xdt = s->xdt;
  c->ydt = s->ydt;
  /* A value that is not interleaved in a channels-last plan has one
  ** channel or one position, where both layouts are the same bytes. */
  c->cl = p->vcl[x] || p->vcl[y];
  int64_t wcnt = d->transposed ? d->cin * (d->cout / d->group) : d->cout * (d->cin / d->group);
  for (int i = 0; i < d->nsp; i++) wcnt *= d->k[i];
#ifndef LMC_EMULATE
  /* cuDNN first; the direct kernel when cuDNN has no plan for it or the
  ** buffers are not 16-byte aligned (an in-place Concat block). */
  bool aligned = ((uintptr_t)s->x % 16) == 0 && ((uintptr_t)s->y % 16) == 0;
  if (p->h && aligned) {
    lm_act fused = LM_ACT_NONE;
    char cerr[256] = "";
    bool cl = p->o.channels_last;
    if (lmc_conv_new(p->h, d, p->o.prec, cl, &s->cudnn, &fused, cerr, sizeof cerr) == LM_OK) {
      void *hw = NULL, *hb = NULL;
      size_t wb = 0, bb = 0;
      int rc = lmc_conv_pack_weights(s->cudnn, st->cweight, st->cbias, &hw, &wb, &hb, &bb, err,
                                     errlen);
      if (rc == LM_OK) {
        s->cw = upload_new(p, hw, wb, err, errlen);
        s->cb = s->cw ? upload_new(p, hb, bb, err, errlen) : NULL;
        if (!s->cw || !s->cb) rc = LM_ENOMEM;
      }
      free(hw);
      free(hb);
      if (rc < 0) return rc;
      size_t ws = lmc_conv_workspace_size(s->cudnn);
      if (ws > p->ws_bytes) p->ws_bytes = ws;
      if (fused != d->act) {
        s->post_act = d->act;
        s->post_alpha = d->alpha;
        s->post_beta = d->beta;
      }
      p->ncudnn++;
      return LM_OK;
    }
    s->cudnn = NULL;
  }
#endif
  s->w = upload_new(p, st->cweight, sizeof(float) * (size_t)wcnt, err, errlen);
  if (!s->w) return LM_ENOMEM;
  if (st->cbias) {
    s->bias = upload_new(p, st->cbias, sizeof(float) * (size_t)d->cout, err, errlen);
    if (!s->bias) return LM_ENOMEM;
  }
  p->ndirect++;
  return LM_OK;
}

static int add_norm(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  gstep *s = new_step(p, G_NORM, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  int x = st->vin[0], y = st->vout[0];
  lmc_k_norm_args *a = &s->norm;
  a->n = st->in_n;
  a->c = st->in_c;
  a->sp = st->in_sp;
  a->groups = st->kind == STEP_GROUPNORM ? st->groups : st->in_c;
  a->eps = st->eps;
  a->act = st->act;
  a->alpha = st->alpha;
  a->res_mode = st->kind == STEP_INSTNORM ? st->res_mode : 0;
  a->xdt = p->vdt[x];
  a->ydt = p->vdt[y];
  a->cl = p->vcl[x];
  s->x = p->vptr[x];
  s->y = p->vptr[y];
  int dt, rc;
  const void *ptr;
  if ((rc = in_ptr(p, st, 1, &ptr, &dt, err, errlen)) < 0) return rc;
  s->gscale = ptr;
  if ((rc = in_ptr(p, st, 2, &ptr, &dt, err, errlen)) < 0) return rc;
  s->gbias = ptr;
  if (st->kind == STEP_GROUPNORM) {
    if ((rc = in_ptr(p, st, 3, &ptr, &dt, err, errlen)) < 0) return rc;
    s->gamma = ptr;
    if ((rc = in_ptr(p, st, 4, &ptr, &dt, err, errlen)) < 0) return rc;
    s->beta = ptr;
  } else if (a->res_mode) {
    if ((rc = in_ptr(p, st, 3, &s->x2, &a->rdt, err, errlen)) < 0) return rc;
    if (p->vcl[st->vin[3]] != a->cl) return unsupported(st, "a residual in another layout", err, errlen);
  }
  need_work(p, lmc_k_norm_work_doubles(a));
  return LM_OK;
}

/* An InstanceNormalization the CPU planner left unfused (no activation or
** residual after it: ResEncUNet's skip path): the norm kernel without act. */
static int add_instnorm_eval(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  const lm_graph *g = pg(p);
  if (st->nin != 3 || st->vin[0] < 0 || st->vin[1] < 0 || st->vin[2] < 0)
    return unsupported(st, "these inputs", err, errlen);
  const lm_gvalue *xv = &g->values[st->vin[0]];
  if (xv->ndim < 3) return unsupported(st, "this rank", err, errlen);
  plan_step tmp = *st;
  tmp.kind = STEP_INSTNORM;
  tmp.in_n = xv->shape[0];
  tmp.in_c = xv->shape[1];
  tmp.in_sp = 1;
  for (int k = 2; k < xv->ndim; k++) tmp.in_sp *= xv->shape[k];
  tmp.eps = lm_gnode_attr_float(st->node, "epsilon", 1e-5);
  tmp.act = LM_ACT_NONE;
  tmp.alpha = 0;
  tmp.res_mode = 0;
  return add_norm(p, &tmp, err, errlen);
}

/* Strides (elements) of operand v broadcast against output y's logical
** shape, in y's storage order. */
static int bcast_strides(const lmc_plan *p, int v, int y, int64_t *str)
{
  const lm_gvalue *vv = &pg(p)->values[v], *yv = &pg(p)->values[y];
  int nd = yv->ndim, off = nd - vv->ndim;
  int64_t lstr[LMC_K_MAXD], st = 1;
  if (off < 0) return -1;
  for (int k = nd - 1; k >= 0; k--) {
    int vk = k - off;
    int64_t ext = vk >= 0 ? vv->shape[vk] : 1;
    if (ext != 1 && ext != yv->shape[k]) return -1;
    lstr[k] = ext == 1 ? 0 : st;
    if (vk >= 0) st *= vv->shape[vk];
  }
  if (p->vcl[v] && !p->vcl[y]) return -1;
  if (p->vcl[y]) {
    /* storage order N, spatial..., C; an interleaved operand has y's shape
    ** (else it was broadcast) and so y's strides */
    if (p->vcl[v]) {
      const lm_gvalue *val = vv;
      if (val->ndim != nd || memcmp(val->shape, yv->shape, sizeof(int64_t) * (size_t)nd)) return -1;
      int64_t s2 = 1;
      str[nd - 1] = 1;   /* C */
      s2 = yv->shape[1];
      for (int k = nd - 2; k >= 1; k--) {
        str[k] = s2;
        s2 *= yv->shape[k + 1];
      }
      str[0] = s2;
      return 0;
    }
    str[0] = lstr[0];
    for (int k = 2; k < nd; k++) str[k - 1] = lstr[k];
    str[nd - 1] = lstr[1];
    return 0;
  }
  memcpy(str, lstr, sizeof(int64_t) * (size_t)nd);
  return 0;
}

static void storage_shape(const lmc_plan *p, int y, lmc_k_bcast_args *b)
{
  const lm_gvalue *yv = &pg(p)->values[y];
  b->ndim = yv->ndim;
  if (p->vcl[y]) {
    b->shape[0] = yv->shape[0];
    for (int k = 2; k < yv->ndim; k++) b->shape[k - 1] = yv->shape[k];
    b->shape[yv->ndim - 1] = yv->shape[1];
  } else {
    memcpy(b->shape, yv->shape, sizeof(int64_t) * (size_t)yv->ndim);
  }
}

static int add_binary(lmc_plan *p, const plan_step *st, int op, int act, float alpha,
                      char *err, size_t errlen)
{
  int y = st->vout[0];
  if (st->nin != 2 || st->vin[0] < 0 || st->vin[1] < 0 || pg(p)->values[y].ndim > LMC_K_MAXD)
    return unsupported(st, "these inputs", err, errlen);
  gstep *s = new_step(p, G_BINARY, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  int rc;
  if ((rc = in_ptr(p, st, 0, &s->x, &s->xdt, err, errlen)) < 0 ||
      (rc = in_ptr(p, st, 1, &s->x2, &s->x2dt, err, errlen)) < 0)
    return rc;
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  s->op = op;
  s->act = act;
  s->alpha = alpha;
  storage_shape(p, y, &s->bc);
  if (bcast_strides(p, st->vin[0], y, s->bc.astr) < 0 || bcast_strides(p, st->vin[1], y, s->bc.bstr) < 0)
    return unsupported(st, "this broadcast (or layout)", err, errlen);
  return LM_OK;
}

static int add_unary(lmc_plan *p, const plan_step *st, int act, float alpha, float beta,
                     char *err, size_t errlen)
{
  int x = st->vin[0], y = st->vout[0];
  if (x < 0 || vnumel(p, x) != vnumel(p, y)) return unsupported(st, "a change of size", err, errlen);
  gstep *s = new_step(p, G_UNARY, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  int rc = in_ptr(p, st, 0, &s->x, &s->xdt, err, errlen);
  if (rc < 0) return rc;
  if (p->vcl[x] != p->vcl[y] && p->vptr[x] && pg(p)->values[x].data == NULL)
    return unsupported(st, "a view of a channels-last tensor (use channels_last = false)", err,
                       errlen);
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  s->n = vnumel(p, y);
  s->act = act;
  s->alpha = alpha;
  s->abeta = beta;
  return LM_OK;
}

static int add_concat(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  const lm_graph *g = pg(p);
  int y = st->vout[0];
  const lm_gvalue *yv = &g->values[y];
  int axis = (int)lm_gnode_attr_int(st->node, "axis", 1);
  if (axis < 0) axis += yv->ndim;
  if (axis < 0 || axis >= yv->ndim) return unsupported(st, "this axis", err, errlen);
  bool cl = p->vcl[y];
  if (cl && axis != 1) return unsupported(st, "channels-last Concat off the channel axis", err, errlen);
  gstep *s = new_step(p, G_CONCAT, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  s->ncat = st->nin;
  s->cat_x = calloc((size_t)st->nin + 1, sizeof *s->cat_x);
  s->cat_inner = calloc((size_t)st->nin + 1, sizeof *s->cat_inner);
  s->cat_off = calloc((size_t)st->nin + 1, sizeof *s->cat_off);
  int *dts = calloc((size_t)st->nin + 1, sizeof *dts);
  if (!s->cat_x || !s->cat_inner || !s->cat_off || !dts) {
    free(dts);
    return failf(err, errlen, LM_ENOMEM, "out of memory");
  }
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  int64_t after = 1;   /* elements per unit of the axis in storage */
  if (cl) {
    s->outer = yv->shape[0] * spatial(yv);
    after = 1;
  } else {
    s->outer = 1;
    for (int k = 0; k < axis; k++) s->outer *= yv->shape[k];
    for (int k = axis + 1; k < yv->ndim; k++) after *= yv->shape[k];
  }
  s->inner_y = yv->shape[axis] * after;
  int64_t off = 0;
  for (int j = 0; j < st->nin; j++) {
    int rc = in_ptr(p, st, j, &s->cat_x[j], &dts[j], err, errlen);
    if (rc < 0) {
      free(dts);
      return rc;
    }
    int v = st->vin[j];
    if (v < 0) continue;
    if (dts[j] != s->ydt) {
      free(dts);
      return unsupported(st, "a constant input in a reduced-precision plan", err, errlen);
    }
    /* (an input that is not interleaved in a channels-last plan has one
    ** channel or one position: the same bytes in both layouts) */
    s->cat_inner[j] = g->values[v].shape[axis] * after;
    s->cat_off[j] = off;
    off += s->cat_inner[j];
  }
  free(dts);
  return LM_OK;
}

static int add_transpose(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  int x = st->vin[0], y = st->vout[0];
  const lm_gvalue *xv = &pg(p)->values[x], *yv = &pg(p)->values[y];
  if (p->vcl[x] || p->vcl[y]) return unsupported(st, "channels-last Transpose", err, errlen);
  int cnt;
  const int64_t *perm = lm_gnode_attr_ints(st->node, "perm", &cnt);
  int nd = xv->ndim;
  if (nd > LMC_K_MAXD || (perm && cnt != nd)) return unsupported(st, "this perm", err, errlen);
  gstep *s = new_step(p, G_GATHER, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  int rc = in_ptr(p, st, 0, &s->x, &s->xdt, err, errlen);
  if (rc < 0) return rc;
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  int64_t xstr[LMC_K_MAXD], t = 1;
  for (int k = nd - 1; k >= 0; k--) {
    xstr[k] = t;
    t *= xv->shape[k];
  }
  s->bc.ndim = nd;
  for (int k = 0; k < nd; k++) {
    int64_t src = perm ? perm[k] : nd - 1 - k;
    if (src < 0 || src >= nd) return unsupported(st, "this perm", err, errlen);
    s->bc.shape[k] = yv->shape[k];
    s->bc.astr[k] = xstr[src];
  }
  return LM_OK;
}

/* Expand and Tile that change the size: a gather whose broadcast dims read
** with stride 0 and whose tiled dims wrap around the input's extent. */
static int add_expand_tile(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  int x = st->vin[0], y = st->vout[0];
  const lm_gvalue *xv = &pg(p)->values[x], *yv = &pg(p)->values[y];
  if (p->vcl[x] || p->vcl[y])
    return unsupported(st, "a channels-last Expand or Tile (use channels_last = false)", err, errlen);
  int nd = yv->ndim, off = nd - xv->ndim;
  if (nd > LMC_K_MAXD || off < 0) return unsupported(st, "this rank", err, errlen);
  gstep *s = new_step(p, G_GATHER, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  int rc = in_ptr(p, st, 0, &s->x, &s->xdt, err, errlen);
  if (rc < 0) return rc;
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  int64_t xstr[LMC_K_MAXD], t = 1;
  for (int k = xv->ndim - 1; k >= 0; k--) {
    xstr[k] = t;
    t *= xv->shape[k];
  }
  s->bc.ndim = nd;
  for (int k = 0; k < nd; k++) {
    int vk = k - off;
    int64_t ext = vk >= 0 ? xv->shape[vk] : 1;
    s->bc.shape[k] = yv->shape[k];
    s->bc.astr[k] = ext == 1 ? 0 : xstr[vk];
    s->bc.bstr[k] = ext != 1 && ext != yv->shape[k] ? ext : 0;
  }
  return LM_OK;
}

static int add_instnorm_eval(lmc_plan *p, const plan_step *st, char *err, size_t errlen);

static int add_pad(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  const lm_graph *g = pg(p);
  int x = st->vin[0], y = st->vout[0];
  const lm_gvalue *xv = &g->values[x], *yv = &g->values[y];
  if (p->vcl[x] || p->vcl[y]) return unsupported(st, "channels-last Pad", err, errlen);
  if (strcmp(lm_gnode_attr_string(st->node, "mode", "constant"), "constant"))
    return unsupported(st, "Pad modes other than constant", err, errlen);
  int nd = xv->ndim, cnt;
  int64_t pads[2 * LMC_K_MAXD];
  const int64_t *ap = lm_gnode_attr_ints(st->node, "pads", &cnt);
  float value = (float)lm_gnode_attr_float(st->node, "value", 0);
  if (ap) {
    if (cnt != 2 * nd) return unsupported(st, "these pads", err, errlen);
    memcpy(pads, ap, sizeof(int64_t) * (size_t)cnt);
  } else {
    if (st->nin < 2 || st->vin[1] < 0 || !g->values[st->vin[1]].data ||
        g->values[st->vin[1]].dt != LM_I64 || lm_gvalue_numel(&g->values[st->vin[1]]) != 2 * nd ||
        (st->nin > 3 && st->vin[3] >= 0))
      return unsupported(st, "pads that are not a constant over every axis", err, errlen);
    memcpy(pads, g->values[st->vin[1]].data, sizeof(int64_t) * 2 * (size_t)nd);
    if (st->nin > 2 && st->vin[2] >= 0) {
      const lm_gvalue *cv = &g->values[st->vin[2]];
      if (!cv->data || lm_gvalue_numel(cv) != 1 || (cv->dt != LM_F32 && cv->dt != LM_F64))
        return unsupported(st, "a constant_value that is not a float constant", err, errlen);
      value = cv->dt == LM_F32 ? *(const float *)cv->data : (float)*(const double *)cv->data;
    }
  }
  gstep *s = new_step(p, G_PAD, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  int rc = in_ptr(p, st, 0, &s->x, &s->xdt, err, errlen);
  if (rc < 0) return rc;
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  s->pad.ndim = nd;
  s->pad.value = value;
  for (int k = 0; k < nd; k++) {
    s->pad.ishape[k] = xv->shape[k];
    s->pad.oshape[k] = yv->shape[k];
    s->pad.lo[k] = pads[k];
  }
  return LM_OK;
}

static int add_pool(lmc_plan *p, const plan_step *st, bool is_max, char *err, size_t errlen)
{
  const lm_graph *g = pg(p);
  int x = st->vin[0], y = st->vout[0];
  const lm_gvalue *xv = &g->values[x], *yv = &g->values[y];
  if (p->vcl[x] || p->vcl[y]) return unsupported(st, "channels-last pooling", err, errlen);
  if (st->nout > 1 && st->vout[1] >= 0) return unsupported(st, "MaxPool's Indices", err, errlen);
  int nsp = xv->ndim - 2, cnt;
  if (nsp < 1 || nsp > 3) return unsupported(st, "this rank", err, errlen);
  const int64_t *k = lm_gnode_attr_ints(st->node, "kernel_shape", &cnt);
  if (!k || cnt != nsp) return unsupported(st, "this kernel_shape", err, errlen);
  const int64_t *sa = lm_gnode_attr_ints(st->node, "strides", &cnt);
  if (sa && cnt != nsp) sa = NULL;
  const int64_t *da = lm_gnode_attr_ints(st->node, "dilations", &cnt);
  if (da && cnt != nsp) da = NULL;
  const int64_t *pads = lm_gnode_attr_ints(st->node, "pads", &cnt);
  if (pads && cnt != 2 * nsp) pads = NULL;
  const char *ap = lm_gnode_attr_string(st->node, "auto_pad", "NOTSET");
  gstep *s = new_step(p, G_POOL, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  int rc = in_ptr(p, st, 0, &s->x, &s->xdt, err, errlen);
  if (rc < 0) return rc;
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  lmc_k_pool_args *a = &s->pool;
  a->nc = xv->shape[0] * xv->shape[1];
  a->nsp = nsp;
  a->is_max = is_max;
  a->include_pad = lm_gnode_attr_int(st->node, "count_include_pad", 0) != 0;
  for (int i = 0; i < nsp; i++) {
    a->in[i] = xv->shape[2 + i];
    a->out[i] = yv->shape[2 + i];
    a->k[i] = k[i];
    a->s[i] = sa ? sa[i] : 1;
    a->d[i] = da ? da[i] : 1;
    int64_t eff = (a->k[i] - 1) * a->d[i] + 1;
    if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
      /* the CPU op's rule (cpu_ops_pool.c pool_geometry) */
      int64_t total = (a->out[i] - 1) * a->s[i] + eff - a->in[i];
      if (total < 0) total = 0;
      a->lo[i] = !strcmp(ap, "SAME_UPPER") ? total / 2 : (total + 1) / 2;
      a->hi[i] = total - a->lo[i];
    } else if (!strcmp(ap, "VALID")) {
      a->lo[i] = a->hi[i] = 0;
    } else {
      a->lo[i] = pads ? pads[i] : 0;
      a->hi[i] = pads ? pads[nsp + i] : 0;
    }
  }
  return LM_OK;
}

static int add_global_avg(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  int x = st->vin[0], y = st->vout[0];
  const lm_gvalue *xv = &pg(p)->values[x];
  if (p->vcl[x]) return unsupported(st, "channels-last GlobalAveragePool", err, errlen);
  gstep *s = new_step(p, G_MEAN, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  int rc = in_ptr(p, st, 0, &s->x, &s->xdt, err, errlen);
  if (rc < 0) return rc;
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  s->rows = xv->shape[0] * xv->shape[1];
  s->len = spatial(xv);
  need_work(p, lmc_k_mean_work_doubles(s->rows, s->len));
  return LM_OK;
}

static int add_softmax(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  int x = st->vin[0], y = st->vout[0];
  const lm_gvalue *xv = &pg(p)->values[x];
  if (p->vcl[x] || p->vcl[y]) return unsupported(st, "channels-last Softmax", err, errlen);
  bool legacy = lm_gnode_attr_int(st->node, "lumen_coerce_2d", 0) != 0;
  int64_t axis = lm_gnode_attr_int(st->node, "axis", legacy ? 1 : -1);
  int nd = xv->ndim;
  if (axis < 0) axis += nd;
  if (nd == 0) axis = 0;
  else if (axis < 0 || axis >= nd) return unsupported(st, "this axis", err, errlen);
  gstep *s = new_step(p, G_SOFTMAX, st->label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  int rc = in_ptr(p, st, 0, &s->x, &s->xdt, err, errlen);
  if (rc < 0) return rc;
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  s->rows = 1;
  for (int k = 0; k < axis; k++) s->rows *= xv->shape[k];
  s->len = 1;
  s->inner = 1;
  if (legacy) {
    for (int k = (int)axis; k < nd; k++) s->len *= xv->shape[k];
  } else if (nd) {
    s->len = xv->shape[axis];
    for (int k = (int)axis + 1; k < nd; k++) s->inner *= xv->shape[k];
  }
  return LM_OK;
}

static int add_resize(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  const lm_graph *g = pg(p);
  int x = st->vin[0], y = st->vout[0];
  const lm_gvalue *xv = &g->values[x], *yv = &g->values[y];
  if (p->vcl[x] || p->vcl[y]) return unsupported(st, "channels-last Resize", err, errlen);
  if (xv->ndim > LMC_K_MAXD) return unsupported(st, "this rank", err, errlen);
  lm_rt_tensor in[5];
  int nin = st->nin < 5 ? st->nin : 5;
  for (int j = 0; j < nin; j++) {
    plan_set_rt(g, &in[j], st->vin[j]);
    in[j].data = st->vin[j] >= 0 ? (void *)g->values[st->vin[j]].data : NULL;
    if (j > 0 && st->vin[j] >= 0 && !in[j].data)
      return unsupported(st, "scales, sizes or roi computed at run time", err, errlen);
  }
  int *ntap;
  int64_t *idx, base[LMC_K_MAXD];
  double *w;
  char kerr[256] = "";
  int rc = lm_resize_taps(st->node, in, nin, yv->shape, &ntap, &idx, &w, base, kerr, sizeof kerr);
  if (rc < 0) return failf(err, errlen, rc, "%s", kerr);
  int64_t ttl = 0;
  for (int k = 0; k < yv->ndim; k++) ttl += yv->shape[k];
  gstep *s = new_step(p, G_RESIZE, st->label);
  if (s) {
    s->rs_ntap = upload_new(p, ntap, sizeof *ntap * (size_t)(ttl ? ttl : 1), err, errlen);
    s->rs_idx = s->rs_ntap ? upload_new(p, idx, sizeof *idx * 4 * (size_t)(ttl ? ttl : 1), err, errlen) : NULL;
    s->rs_w = s->rs_idx ? upload_new(p, w, sizeof *w * 4 * (size_t)(ttl ? ttl : 1), err, errlen) : NULL;
  }
  free(ntap);
  free(idx);
  free(w);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  if (!s->rs_w) return LM_ENOMEM;
  if ((rc = in_ptr(p, st, 0, &s->x, &s->xdt, err, errlen)) < 0) return rc;
  s->y = p->vptr[y];
  s->ydt = p->vdt[y];
  s->rs.ndim = xv->ndim;
  for (int k = 0; k < xv->ndim; k++) {
    s->rs.ishape[k] = xv->shape[k];
    s->rs.oshape[k] = yv->shape[k];
    s->rs.base[k] = base[k];
  }
  return LM_OK;
}

static bool op_is_any(const lm_gnode *n, const char *const *ops)
{
  for (int i = 0; ops[i]; i++)
    if (op_is(n, ops[i])) return true;
  return false;
}

static int add_eval(lmc_plan *p, const plan_step *st, char *err, size_t errlen)
{
  static const char *const copies[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity",
                                       "Dropout", "Cast", "Expand", "Tile", NULL};
  const lm_gnode *n = st->node;
  const lm_graph *g = pg(p);
  for (int j = 0; j < st->nout; j++)
    if (st->vout[j] >= 0 && !p->vptr[st->vout[j]])
      return unsupported(st, "an output without a buffer", err, errlen);
  lm_act act;
  float alpha, beta;
  if ((op_is(n, "Expand") || op_is(n, "Tile")) && st->vin[0] >= 0 &&
      vnumel(p, st->vin[0]) != vnumel(p, st->vout[0]))
    return add_expand_tile(p, st, err, errlen);
  if (op_is(n, "InstanceNormalization")) return add_instnorm_eval(p, st, err, errlen);
  if (op_is_any(n, copies)) {
    if (op_is(n, "Dropout") && st->nout > 1 && st->vout[1] >= 0)
      return unsupported(st, "Dropout's mask", err, errlen);
    return add_unary(p, st, LM_ACT_NONE, 0, 0, err, errlen);
  }
  if (lm_act_of_node(g, n, &act, &alpha, &beta)) return add_unary(p, st, act, alpha, beta, err, errlen);
  if (op_is(n, "Add")) return add_binary(p, st, LMC_BIN_ADD, LM_ACT_NONE, 0, err, errlen);
  if (op_is(n, "Sub")) return add_binary(p, st, LMC_BIN_SUB, LM_ACT_NONE, 0, err, errlen);
  if (op_is(n, "Mul")) return add_binary(p, st, LMC_BIN_MUL, LM_ACT_NONE, 0, err, errlen);
  if (op_is(n, "Div")) return add_binary(p, st, LMC_BIN_DIV, LM_ACT_NONE, 0, err, errlen);
  if (op_is(n, "PRelu")) return add_binary(p, st, LMC_BIN_PRELU, LM_ACT_NONE, 0, err, errlen);
  if (op_is(n, "Concat")) return add_concat(p, st, err, errlen);
  if (op_is(n, "Transpose")) return add_transpose(p, st, err, errlen);
  if (op_is(n, "Pad")) return add_pad(p, st, err, errlen);
  if (op_is(n, "MaxPool")) return add_pool(p, st, true, err, errlen);
  if (op_is(n, "AveragePool")) return add_pool(p, st, false, err, errlen);
  if (op_is(n, "GlobalAveragePool")) return add_global_avg(p, st, err, errlen);
  if (op_is(n, "Softmax")) return add_softmax(p, st, err, errlen);
  if (op_is(n, "Resize") || op_is(n, "Upsample")) return add_resize(p, st, err, errlen);
  return unsupported(st, "this op", err, errlen);
}

/* Graph input i from the plan's float32 buffer into its storage. */
static int add_input_conversion(lmc_plan *p, int v, char *err, size_t errlen)
{
  const lm_gvalue *val = &pg(p)->values[v];
  float *src = p->in_bufs[p->lp->loc_index[v]];
  if (p->vptr[v] == src) return LM_OK;
  char label[112];
  snprintf(label, sizeof label, "input '%s' to %s%s", val->name, lm_dtype_name(p->sdt),
           p->vcl[v] ? " channels-last" : "");
  gstep *s = new_step(p, p->vcl[v] ? G_LAYOUT : G_UNARY, label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  s->x = src;
  s->xdt = LM_F32;
  s->y = p->vptr[v];
  s->ydt = p->vdt[v];
  s->n = vnumel(p, v);
  s->ln = val->shape[0];
  s->lc = val->ndim > 1 ? val->shape[1] : 1;
  s->lsp = spatial(val);
  s->to_cl = 1;
  return LM_OK;
}

/* A value into float32 output buffer i (NC order). */
static int add_output_conversion(lmc_plan *p, int v, int i, char *err, size_t errlen)
{
  const lm_gvalue *val = &pg(p)->values[v];
  float *dst = p->out_bufs[i];
  if (p->vptr[v] == dst) return LM_OK;
  char label[112];
  snprintf(label, sizeof label, "output %d to float32", i);
  bool cl = p->vcl[v];
  gstep *s = new_step(p, cl ? G_LAYOUT : G_UNARY, label);
  if (!s) return failf(err, errlen, LM_ENOMEM, "out of memory");
  s->x = p->vptr[v];
  s->xdt = p->vdt[v];
  s->y = dst;
  s->ydt = LM_F32;
  s->n = vnumel(p, v);
  s->ln = val->shape[0];
  s->lc = val->ndim > 1 ? val->shape[1] : 1;
  s->lsp = spatial(val);
  s->to_cl = 0;
  return LM_OK;
}

static int build(lmc_plan *p, char *err, size_t errlen)
{
  const lm_plan *lp = p->lp;
  const lm_graph *g = pg(p);
  int rc;
  size_t arena = lp->arena_bytes / 4 * p->esz;
  if (arena && !(p->arena = dalloc(p, arena)))
    return failf(err, errlen, LM_ENOMEM, "out of device memory for the %zu-byte arena", arena);
  for (int i = 0; i < p->nin; i++) {
    int v = g->inputs[i];
    p->in_bufs[i] = dalloc(p, sizeof(float) * (size_t)vnumel(p, v));
    if (!p->in_bufs[i]) return failf(err, errlen, LM_ENOMEM, "out of device memory");
  }
  for (int i = 0; i < p->nout; i++) {
    p->out_bufs[i] = dalloc(p, sizeof(float) * (size_t)vnumel(p, lp->out_values[i]));
    if (!p->out_bufs[i]) return failf(err, errlen, LM_ENOMEM, "out of device memory");
  }
  if ((rc = place_values(p, err, errlen)) < 0) return rc;
  for (int i = 0; i < p->nin; i++)
    if ((rc = add_input_conversion(p, g->inputs[i], err, errlen)) < 0) return rc;
  for (int si = 0; si < lp->nsteps; si++) {
    const plan_step *st = &lp->steps[si];
    switch (st->kind) {
    case STEP_CONV: rc = add_conv(p, st, err, errlen); break;
    case STEP_INSTNORM:
    case STEP_GROUPNORM: rc = add_norm(p, st, err, errlen); break;
    case STEP_ADD_ACT:
      rc = p->vcl[st->vin[0]] != p->vcl[st->vin[1]]
               ? unsupported(st, "inputs in two layouts", err, errlen)
               : add_binary(p, st, LMC_BIN_ADD, st->act, st->alpha, err, errlen);
      break;
    case STEP_VIEW:
      if (p->vcl[st->vin[0]] || p->vcl[st->vout[0]]) {
        const lm_gvalue *a = &g->values[st->vin[0]], *b = &g->values[st->vout[0]];
        if (a->ndim != b->ndim || memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim))
          rc = unsupported(st, "a view of a channels-last tensor (use channels_last = false)",
                           err, errlen);
      }
      break;
    case STEP_COPY: {
      const void *src;
      int dt;
      rc = in_ptr(p, st, 0, &src, &dt, err, errlen);
      if (rc < 0) break;
      /* an input or a constant listed as an output: convert it out */
      int v = st->vin[0];
      rc = add_output_conversion(p, v, st->out_index, err, errlen);
      break;
    }
    case STEP_EVAL: rc = add_eval(p, st, err, errlen); break;
    }
    if (rc < 0) return rc;
  }
  for (int i = 0; i < p->nout; i++) {
    int v = lp->out_values[i];
    if (lp->loc[v] == LOC_OUTPUT && lp->loc_index[v] == i &&
        (rc = add_output_conversion(p, v, i, err, errlen)) < 0)
      return rc;
  }
  if (p->work_doubles && !(p->work = dalloc(p, sizeof(double) * p->work_doubles)))
    return failf(err, errlen, LM_ENOMEM, "out of device memory");
  if (p->ws_bytes && !(p->ws = dalloc(p, p->ws_bytes)))
    return failf(err, errlen, LM_ENOMEM, "out of device memory (cuDNN workspace)");
  return LM_OK;
}

int lmc_plan_new(const lm_graph *g, int device, const int *ndims, const int64_t *const *shapes,
                 const lmc_plan_options *o, lmc_plan **out, char *err, size_t errlen)
{
  *out = NULL;
  if (err && errlen) err[0] = 0;
  lmc_plan *p = calloc(1, sizeof *p);
  if (!p) return failf(err, errlen, LM_ENOMEM, "out of memory");
  p->device = device;
  p->o = *o;
#ifdef LMC_EMULATE
  p->o.cuda_graph = false;
#else
  cudaError_t ce = cudaSetDevice(device);
  if (ce != cudaSuccess) {
    free(p);
    return failf(err, errlen, LM_ECUDA, "cuda:%d: %s", device, cudaGetErrorString(ce));
  }
  {
    /* No handle (cuDNN failed to start): every conv takes the direct kernel. */
    char herr[256] = "";
    p->h = lmc_plan_cudnn_handle(device, herr, sizeof herr);
  }
#endif
  p->sdt = o->prec == LMC_PREC_F16 ? LM_F16 : o->prec == LMC_PREC_BF16 ? LM_BF16 : LM_F32;
  p->esz = p->sdt == LM_F32 ? 4 : 2;
  lm_plan_options po = {.layout_only = true, .no_concat_in_place = o->channels_last};
  int rc = lm_plan_new(g, ndims, shapes, &po, &p->lp, err, errlen);
  if (rc < 0) {
    free(p);
    return rc;
  }
  const lm_graph *pgr = pg(p);
  p->nin = pgr->ninputs;
  p->nout = p->lp->noutputs;
  p->in_bufs = calloc((size_t)p->nin + 1, sizeof *p->in_bufs);
  p->out_bufs = calloc((size_t)p->nout + 1, sizeof *p->out_bufs);
  p->vptr = calloc((size_t)pgr->nvalues + 1, sizeof *p->vptr);
  p->vdt = calloc((size_t)pgr->nvalues + 1, sizeof *p->vdt);
  p->vcl = calloc((size_t)pgr->nvalues + 1, sizeof *p->vcl);
  if (!p->in_bufs || !p->out_bufs || !p->vptr || !p->vdt || !p->vcl)
    rc = failf(err, errlen, LM_ENOMEM, "out of memory");
  else
    rc = build(p, err, errlen);
  if (rc < 0) {
    lmc_plan_free(p);
    return rc;
  }
  *out = p;
  return LM_OK;
}

void lmc_plan_free(lmc_plan *p)
{
  if (!p) return;
#ifndef LMC_EMULATE
  /* Freed by whichever thread drops the model: possibly another device's
  ** executor thread, whose current device must stay its own (its kernels
  ** launch on the current device). */
  int prev = -1;
  if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
  cudaSetDevice(p->device);
  /* Work queued on the plan's buffers must be done before they go. */
  cudaDeviceSynchronize();
  if (p->gexec) cudaGraphExecDestroy(p->gexec);
  if (p->graph) cudaGraphDestroy(p->graph);
#endif
  for (int i = 0; i < p->nsteps; i++) {
    gstep *s = &p->steps[i];
#ifndef LMC_EMULATE
    if (s->cudnn) lmc_conv_free(s->cudnn);
#endif
    free(s->cat_x);
    free(s->cat_inner);
    free(s->cat_off);
  }
  free(p->steps);
  for (int i = 0; i < p->nallocs; i++) {
#ifdef LMC_EMULATE
    free(p->allocs[i]);
#else
    cudaFree(p->allocs[i]);
#endif
  }
#ifndef LMC_EMULATE
  if (prev >= 0 && prev != p->device) cudaSetDevice(prev);
  cudaGetLastError(); /* at process exit the runtime may be gone: nothing to report to */
#endif
  free(p->allocs);
  free(p->in_bufs);
  free(p->out_bufs);
  free(p->vptr);
  free(p->vdt);
  free(p->vcl);
  lm_plan_free(p->lp);
  free(p);
}

int lmc_plan_noutputs(const lmc_plan *p) { return p->nout; }

int lmc_plan_output_shape(const lmc_plan *p, int i, int64_t *shape)
{
  return lm_plan_output_shape(p->lp, i, shape);
}

float *lmc_plan_input(lmc_plan *p, int i) { return i >= 0 && i < p->nin ? p->in_bufs[i] : NULL; }
float *lmc_plan_output(lmc_plan *p, int i) { return i >= 0 && i < p->nout ? p->out_bufs[i] : NULL; }
int lmc_plan_nsteps(const lmc_plan *p) { return p->nsteps; }
int lmc_plan_cudnn_convs(const lmc_plan *p) { return p->ncudnn; }
int lmc_plan_direct_convs(const lmc_plan *p) { return p->ndirect; }

/* ---- run ----------------------------------------------------------------------------- */

static int run_step(lmc_plan *p, gstep *s, cudaStream_t st, char *err, size_t errlen)
{
  int e = 0;
  switch (s->kind) {
  case G_CONV:
#ifndef LMC_EMULATE
    if (s->cudnn) {
      int rc = lmc_conv_run(s->cudnn, p->h, s->x, s->cw, s->cb, s->y, p->ws, err, errlen);
      if (rc < 0) return rc;
      if (s->post_act != LM_ACT_NONE)
        e = lmc_k_act_inplace(st, s->y, s->ydt, s->n, s->post_act, s->post_alpha, s->post_beta);
      break;
    }
#endif
    e = lmc_k_conv_direct(st, &s->conv, s->x, s->w, s->bias, s->y);
    break;
  case G_NORM:
    e = lmc_k_norm(st, &s->norm, s->x, s->gscale, s->gbias, s->gamma, s->beta, s->x2, s->y,
                   p->work);
    break;
  case G_BINARY:
    e = lmc_k_binary(st, s->op, &s->bc, s->x, s->xdt, s->x2, s->x2dt, s->y, s->ydt, s->act,
                     s->alpha, 0);
    break;
  case G_UNARY:
    if (s->act == LM_ACT_NONE && s->xdt == s->ydt)
      e = copy_d2d(s->y, s->x, (size_t)s->n * (s->ydt == LM_F32 ? 4 : 2), st);
    else
      e = lmc_k_unary(st, s->x, s->xdt, s->y, s->ydt, s->n, s->act, s->alpha, s->abeta);
    break;
  case G_LAYOUT:
    e = lmc_k_layout(st, s->x, s->xdt, s->y, s->ydt, s->ln, s->lc, s->lsp, s->to_cl);
    break;
  case G_CONCAT:
    for (int j = 0; j < s->ncat && !e; j++)
      if (s->cat_x[j] && s->cat_inner[j])
        e = lmc_k_slab_copy(st, s->cat_x[j], s->ydt, s->y, s->ydt, s->outer, s->cat_inner[j],
                            s->inner_y, s->cat_off[j]);
    break;
  case G_GATHER: e = lmc_k_gather(st, &s->bc, s->x, s->xdt, s->y, s->ydt); break;
  case G_PAD: e = lmc_k_pad_const(st, &s->pad, s->x, s->xdt, s->y, s->ydt); break;
  case G_POOL: e = lmc_k_pool(st, &s->pool, s->x, s->xdt, s->y, s->ydt); break;
  case G_MEAN: e = lmc_k_row_mean(st, s->x, s->xdt, s->y, s->ydt, s->rows, s->len, p->work); break;
  case G_SOFTMAX:
    e = lmc_k_softmax(st, s->x, s->xdt, s->y, s->ydt, s->rows, s->len, s->inner);
    break;
  case G_RESIZE:
    e = lmc_k_resize(st, &s->rs, s->rs_ntap, s->rs_idx, s->rs_w, s->x, s->xdt, s->y, s->ydt);
    break;
  }
  if (e)
    return failf(err, errlen, LM_ECUDA, "%s: %s", s->label,
                 cudaGetErrorString((cudaError_t)e));
  return LM_OK;
}

static int enqueue_all(lmc_plan *p, cudaStream_t s, char *err, size_t errlen)
{
#ifndef LMC_EMULATE
  if (p->h && cudnnSetStream(p->h, s) != CUDNN_STATUS_SUCCESS)
    return failf(err, errlen, LM_ECUDA, "cannot bind cuDNN to the stream");
#endif
  for (int i = 0; i < p->nsteps; i++) {
    int rc = run_step(p, &p->steps[i], s, err, errlen);
    if (rc < 0) return rc;
  }
  return LM_OK;
}

int lmc_plan_run_own(lmc_plan *p, cudaStream_t s, char *err, size_t errlen)
{
  if (err && errlen) err[0] = 0;
#ifndef LMC_EMULATE
  if (p->o.cuda_graph) {
    if (!p->warmed_up) {
      /* The first run goes without a graph: lazy initialisation on first use
      ** (cuDNN's per-plan setup, kernels loaded on first launch, allocations
      ** inside libraries) is not allowed during a capture and would
      ** invalidate it, turning the graph off for good.  The capture comes
      ** at the second run, as PyTorch's warm-up before torch.cuda.graph. */
      p->warmed_up = true;
      return enqueue_all(p, s, err, errlen);
    }
    if (!p->gexec) {
      /* Captured on the thread's own capture stream (other threads queue
      ** frees and copies on the compute stream at any time), launched on s.
      ** Work enqueued while capturing is recorded, not run: when the capture
      ** fails (a cuDNN engine that cannot be captured), the plan runs
      ** without a graph from then on. */
      char cerr[256] = "";
      cudaStream_t cs = lmc_plan_capture_stream(p->device, cerr, sizeof cerr);
      cudaError_t e = cs ? cudaStreamBeginCapture(cs, cudaStreamCaptureModeThreadLocal)
                         : cudaErrorInvalidResourceHandle;
      if (e != cudaSuccess) {
        cudaGetLastError();
        p->o.cuda_graph = false;
        return enqueue_all(p, s, err, errlen);
      }
      int rc = enqueue_all(p, cs, err, errlen);
      cudaGraph_t graph = NULL;
      e = cudaStreamEndCapture(cs, &graph);
      /* the handle back on the compute stream */
      if (p->h) cudnnSetStream(p->h, s);
      if (rc == LM_OK && e == cudaSuccess) e = cudaGraphInstantiateWithFlags(&p->gexec, graph, 0);
      if (rc < 0 || e != cudaSuccess) {
        if (graph) cudaGraphDestroy(graph);
        p->gexec = NULL;
        cudaGetLastError();
        p->o.cuda_graph = false;
        if (err && errlen) err[0] = 0;
        return enqueue_all(p, s, err, errlen);
      }
      p->graph = graph;
    }
    cudaError_t e = cudaGraphLaunch(p->gexec, s);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return failf(err, errlen, LM_ECUDA, "cuda:%d: CUDA graph launch: %s", p->device,
                   cudaGetErrorString(e));
    }
    return LM_OK;
  }
#endif
  return enqueue_all(p, s, err, errlen);
}

int lmc_plan_run(lmc_plan *p, cudaStream_t s, const float *const *in, float *const *out,
                 char *err, size_t errlen)
{
  const lm_graph *g = pg(p);
  for (int i = 0; i < p->nin; i++) {
    int e = copy_d2d(p->in_bufs[i], in[i], sizeof(float) * (size_t)vnumel(p, g->inputs[i]), s);
    if (e) return failf(err, errlen, LM_ECUDA, "copying input %d: %s", i,
                        cudaGetErrorString((cudaError_t)e));
  }
  int rc = lmc_plan_run_own(p, s, err, errlen);
  if (rc < 0) return rc;
  for (int i = 0; i < p->nout; i++) {
    if (!out[i]) continue;
    int e = copy_d2d(out[i], p->out_bufs[i],
                     sizeof(float) * (size_t)vnumel(p, p->lp->out_values[i]), s);
    if (e) return failf(err, errlen, LM_ECUDA, "copying output %d: %s", i,
                        cudaGetErrorString((cudaError_t)e));
  }
  return LM_OK;
}

/* ---- the model's cache ------------------------------------------------------------- */

#define MAX_GPU_PLANS 8   /* distinct (shapes, options, device); least recent goes */

typedef struct cached_plan {
  int nkey;
  int64_t key[LM_MAX_DIMS * 4 + 12];
  lmc_plan *plan;
  uint64_t used;
} cached_plan;

typedef struct plan_cache {
  cached_plan e[MAX_GPU_PLANS];
  int n;
  uint64_t tick;
} plan_cache;

static void cache_free(void *c)
{
  plan_cache *pc = c;
  for (int i = 0; i < pc->n; i++) lmc_plan_free(pc->e[i].plan);
  free(pc);
}

int lmc_model_plan(lm_model *m, int device, const int *ndims, const int64_t *const *shapes,
                   const lmc_plan_options *o, lmc_plan **out, char *err, size_t errlen)
{
  *out = NULL;
  int nin = m->g->ninputs;
  if (nin > 4) return failf(err, errlen, LM_EUNSUPPORTED, "model '%s': more than 4 inputs", m->name);
  int64_t key[LM_MAX_DIMS * 4 + 12];
  int nkey = 0;
  key[nkey++] = device;
  key[nkey++] = o->prec;
  key[nkey++] = o->channels_last;
  key[nkey++] = o->cuda_graph;
  for (int i = 0; i < nin; i++) {
    key[nkey++] = ndims[i];
    for (int d = 0; d < ndims[i] && d < LM_MAX_DIMS; d++) key[nkey++] = shapes[i][d];
  }
  /* The plan is built and used on the device's executor thread; the lock
  ** only guards the table (the model may also be used on other devices). */
  pthread_mutex_lock(&m->mu);
  plan_cache *pc = m->gpu_plans;
  if (!pc) {
    pc = calloc(1, sizeof *pc);
    if (!pc) {
      pthread_mutex_unlock(&m->mu);
      return failf(err, errlen, LM_ENOMEM, "out of memory");
    }
    m->gpu_plans = pc;
    m->gpu_plans_free = cache_free;
  }
  for (int i = 0; i < pc->n; i++)
    if (pc->e[i].nkey == nkey && !memcmp(pc->e[i].key, key, sizeof *key * (size_t)nkey)) {
      pc->e[i].used = ++pc->tick;
      *out = pc->e[i].plan;
      pthread_mutex_unlock(&m->mu);
      return LM_OK;
    }
  pthread_mutex_unlock(&m->mu);
  lmc_plan *p;
  int rc = lmc_plan_new(m->g, device, ndims, shapes, o, &p, err, errlen);
  if (rc < 0) return rc;
  pthread_mutex_lock(&m->mu);
  int slot = pc->n;
  if (slot == MAX_GPU_PLANS) {
    /* Plans of another device may still be running on its thread: only
    ** this device's least recent one goes (this thread is the only user). */
    slot = -1;
    for (int i = 0; i < pc->n; i++)
      if (pc->e[i].key[0] == device && (slot < 0 || pc->e[i].used < pc->e[slot].used)) slot = i;
    if (slot < 0) {
      pthread_mutex_unlock(&m->mu);
      lmc_plan_free(p);
      return failf(err, errlen, LM_EBUSY, "model '%s': too many GPU plans", m->name);
    }
    lmc_plan_free(pc->e[slot].plan);
  } else {
    pc->n++;
  }
  pc->e[slot].nkey = nkey;
  memcpy(pc->e[slot].key, key, sizeof *key * (size_t)nkey);
  pc->e[slot].plan = p;
  pc->e[slot].used = ++pc->tick;
  pthread_mutex_unlock(&m->mu);
  *out = p;
  return LM_OK;
}

int lmc_precision_option(lm_op_ctx *ctx, const char *value, const lm_model *m, lmc_prec *out)
{
  const char *v = value && *value ? value : "auto";
  if (!strcmp(v, "auto")) v = m && m->precision[0] ? m->precision : "float16";
  if (!strcmp(v, "float32")) *out = LMC_PREC_F32;
  else if (!strcmp(v, "float16")) *out = LMC_PREC_F16;
  else if (!strcmp(v, "bfloat16")) *out = LMC_PREC_BF16;
  else
    return lm_ctx_error(ctx, LM_EINVAL, "option 'precision' is \"%s\"; expected auto, float32, "
                        "float16 or bfloat16", value);
  return LM_OK;
}
