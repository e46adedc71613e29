/* Streaming execution of fully convolutional chains, slice by slice along
 * the first spatial axis (conv_stream.h explains the idea). */
#include "conv_stream.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_small.h"
#include "cpu_conv.h"

typedef struct stream_layer {
  lm_conv *conv;         /* oneDNN, or NULL for the few-channel direct path */
  lm_conv_small_desc small;
  const float *w, *b;    /* the graph's constants (direct path) */
  int64_t cin, cout;
  int64_t kd, dd;        /* kernel extent and dilation along axis 0 */
  int64_t halo;          /* dd * (kd - 1) / 2 */
  float *ring;           /* R slots of cout * P floats: this layer's latest
                            output slices, slice s in slot s % R */
  int64_t nring;
  int64_t done;          /* output slices computed so far */
} stream_layer;

struct lm_conv_stream {
  int nl;
  stream_layer *l;
  int64_t d0, d1, d2, plane;
  float *gather;         /* the k input slices of one output slice */
  float *last;           /* the final layer's output slice */
  void *ws;              /* oneDNN workspace shared by every layer */
  size_t bytes;
};

static int fail(char *err, size_t len, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int status, const char *fmt, ...)
{
  if (err && len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
  }
  return status;
}

static void *alloc_floats(int64_t n, size_t *bytes)
{
  size_t sz = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, sz);
  if (p) *bytes += sz;
  return p;
}

static const float *const_f32(const lm_graph *g, int v, int64_t numel)
{
  if (v < 0) return NULL;
  v = lm_graph_resolve(g, v);
  const lm_gvalue *val = &g->values[v];
  if (!val->data || val->dt != LM_F32 || lm_gvalue_numel(val) != numel)
    return NULL;
  return val->data;
}

void lm_conv_stream_free(lm_conv_stream *s)
{
  if (!s) return;
  for (int i = 0; i < s->nl; i++) {
    lm_conv_free(s->l[i].conv);
    free(s->l[i].ring);
  }
  free(s->l);
  free(s->gather);
  free(s->last);
  free(s->ws);
  free(s);
}

/* One Conv node as a streamed layer: weights checked, the convolution
** prepared for k input slices -> 1 output slice. */
static int make_layer(const lm_graph *g, const lm_gnode *n, int64_t cin,
                      stream_layer *L, char *why, size_t whylen)
{
  int wv = n->nin > 1 ? lm_graph_resolve(g, n->in[1]) : -1;
  if (wv < 0 || !g->values[wv].data || g->values[wv].ndim != 5)
    return fail(why, whylen, LM_EUNSUPPORTED, "Conv '%s': weight is not a "
                "constant 5-d tensor", n->name);
  const int64_t *ws = g->values[wv].shape;
  if (lm_gnode_attr_int(n, "group", 1) != 1 || ws[1] != cin)
    return fail(why, whylen, LM_EUNSUPPORTED, "Conv '%s': grouped or channel "
                "mismatch", n->name);
  int ns = 0, nd = 0, np = 0;
  const int64_t *strides = lm_gnode_attr_ints(n, "strides", &ns);
  const int64_t *dil = lm_gnode_attr_ints(n, "dilations", &nd);
  const int64_t *pads = lm_gnode_attr_ints(n, "pads", &np);
  const char *autopad = lm_gnode_attr_string(n, "auto_pad", "NOTSET");
  int64_t k[3], d[3], plo[3], phi[3];
  for (int i = 0; i < 3; i++) {
    k[i] = ws[2 + i];
    d[i] = nd == 3 ? dil[i] : 1;
    if (ns == 3 && strides[i] != 1)
      return fail(why, whylen, LM_EUNSUPPORTED, "Conv '%s': stride %lld",
                  n->name, (long long)strides[i]);
    if (k[i] % 2 == 0)
      return fail(why, whylen, LM_EUNSUPPORTED, "Conv '%s': even kernel",
                  n->name);
    int64_t same = d[i] * (k[i] - 1) / 2;
    if (strcmp(autopad, "SAME_UPPER") == 0 || strcmp(autopad, "SAME_LOWER") == 0) {
      plo[i] = phi[i] = same;
    } else if (strcmp(autopad, "VALID") == 0) {
      plo[i] = phi[i] = 0;
    } else {
      plo[i] = np == 6 ? pads[i] : 0;
      phi[i] = np == 6 ? pads[3 + i] : 0;
    }
    if (plo[i] != same || phi[i] != same)
      return fail(why, whylen, LM_EUNSUPPORTED, "Conv '%s': padding is not "
                  "'same' on axis %d", n->name, i);
  }
  int64_t cout = ws[0];
  if (g->values[wv].dt != LM_F32)
    return fail(why, whylen, LM_EUNSUPPORTED, "Conv '%s': weight not float32",
                n->name);
  if (n->nin > 2 && n->in[2] >= 0 && !const_f32(g, n->in[2], cout))
    return fail(why, whylen, LM_EUNSUPPORTED, "Conv '%s': bias is not a "
                "constant", n->name);
  L->cin = cin;
  L->cout = cout;
  L->kd = k[0];
  L->dd = d[0];
  L->halo = d[0] * (k[0] - 1) / 2;
  return LM_OK;
}

/* out NULL: only recognise the chain (no convolutions built). */
static int stream_build(const lm_graph *g, const int64_t in_shape[5], bool bf16,
                        lm_conv_stream **out, char *why, size_t whylen)
{
  if (out) *out = NULL;
  if (g->ninputs != 1 || g->noutputs != 1)
    return fail(why, whylen, LM_EUNSUPPORTED, "not one input and one output");
  int cur = lm_graph_resolve(g, g->inputs[0]);
  for (int i = 0; i < 5; i++)
    if (in_shape[i] <= 0)
      return fail(why, whylen, LM_EUNSUPPORTED, "input shape unknown");
  lm_conv_stream *s = calloc(1, sizeof *s);
  if (!s) return fail(why, whylen, LM_ENOMEM, "out of memory");
  s->d0 = in_shape[2];
  s->d1 = in_shape[3];
  s->d2 = in_shape[4];
  s->plane = s->d1 * s->d2;
  /* Pass 1: the chain, its layers and their fused activations. */
  int cap = 0;
  int64_t ch = in_shape[1];
  const lm_gnode **convs = NULL, **acts = NULL;  /* per layer */
  int st = LM_OK;
  for (int i = 0; i < g->nnodes && st == LM_OK; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (n->dead) continue;
    if (n->nin < 1 || lm_graph_resolve(g, n->in[0]) != cur || n->nout < 1) {
      st = fail(why, whylen, LM_EUNSUPPORTED, "node %s '%s' is not on a chain",
                n->op, n->name);
      break;
    }
    if (strcmp(n->op, "Identity") == 0 || strcmp(n->op, "Dropout") == 0) {
      cur = lm_graph_resolve(g, n->out[0]);
      continue;
    }
    if (strcmp(n->op, "Conv") == 0) {
      if (s->nl == cap) {
        cap = cap ? cap * 2 : 16;
        stream_layer *nlay = realloc(s->l, sizeof *nlay * (size_t)cap);
        if (nlay) s->l = nlay;
        const lm_gnode **nc = realloc(convs, sizeof *nc * (size_t)cap);
        if (nc) convs = nc;
        const lm_gnode **na = realloc(acts, sizeof *na * (size_t)cap);
        if (na) acts = na;
        if (!nlay || !nc || !na) {
          st = fail(why, whylen, LM_ENOMEM, "out of memory");
          break;
        }
      }
      stream_layer *L = &s->l[s->nl];
      memset(L, 0, sizeof *L);
      st = make_layer(g, n, ch, L, why, whylen);
      if (st < 0) break;
      acts[s->nl] = NULL;
      convs[s->nl++] = n;
      ch = L->cout;
      cur = lm_graph_resolve(g, n->out[0]);
      continue;
    }
    lm_act act;
    float a, b;
    if (s->nl > 0 && lm_act_of_node(g, n, &act, &a, &b) &&
        lm_graph_resolve(g, convs[s->nl - 1]->out[0]) == cur) {
      if (acts[s->nl - 1]) {
        st = fail(why, whylen, LM_EUNSUPPORTED, "two activations after Conv "
                  "'%s'", convs[s->nl - 1]->name);
        break;
      }
      acts[s->nl - 1] = n;
      cur = lm_graph_resolve(g, n->out[0]);
      continue;
    }
    st = fail(why, whylen, LM_EUNSUPPORTED, "op %s ('%s') cannot be streamed",
              n->op, n->name);
  }
  if (st == LM_OK && s->nl == 0)
    st = fail(why, whylen, LM_EUNSUPPORTED, "no convolution");
  if (st == LM_OK && cur != lm_graph_resolve(g, g->outputs[0]))
    st = fail(why, whylen, LM_EUNSUPPORTED, "the chain does not end at the "
              "graph output");
  if (st < 0 || !out) {
    free(convs);
    free(acts);
    lm_conv_stream_free(s);
    return st;
  }
  /* Pass 2: build each layer's k-slices -> 1-slice convolution with its
   * fused activation, and its ring. */
  size_t ws_max = 0;
  int64_t gather_max = 0;
  for (int li = 0; li < s->nl && st == LM_OK; li++) {
    stream_layer *L = &s->l[li];
    const lm_gnode *n = convs[li];
    lm_conv_desc d;
    memset(&d, 0, sizeof d);
    d.nsp = 3;
    d.n = 1;
    d.cin = L->cin;
    d.cout = L->cout;
    d.group = 1;
    int wv = lm_graph_resolve(g, n->in[1]);
    const int64_t *wsh = g->values[wv].shape;
    int nd = 0;
    const int64_t *dil = lm_gnode_attr_ints(n, "dilations", &nd);
    d.in[0] = L->kd;
    d.out[0] = 1;
    d.k[0] = L->kd;
    d.dil[0] = 1;
    for (int a = 1; a < 3; a++) {
      d.in[a] = d.out[a] = a == 1 ? s->d1 : s->d2;
      d.k[a] = wsh[2 + a];
      d.dil[a] = nd == 3 ? dil[a] : 1;
      d.pad_lo[a] = d.pad_hi[a] = d.dil[a] * (d.k[a] - 1) / 2;
    }
    for (int a = 0; a < 3; a++) d.stride[a] = 1;
    d.bf16 = bf16;
    d.act = LM_ACT_NONE;
    if (acts[li]) lm_act_of_node(g, acts[li], &d.act, &d.alpha, &d.beta);
    const float *b = n->nin > 2 && n->in[2] >= 0 ? const_f32(g, n->in[2], L->cout) : NULL;
    if (!bf16 && L->cin <= LM_CONV_SMALL_MAX_CH && L->cout <= LM_CONV_SMALL_MAX_CH) {
      /* Few channels: the direct kernel (conv_small.h) is many times faster
       * than oneDNN's 16-channel blocks here. */
      L->small = (lm_conv_small_desc){.cin = L->cin, .cout = L->cout, .kd = L->kd,
                                      .h = s->d1, .w = s->d2, .ka = d.k[1], .kb = d.k[2],
                                      .dila = d.dil[1], .dilb = d.dil[2], .act = d.act,
                                      .alpha = d.alpha, .beta = d.beta};
      L->w = g->values[wv].data;
      L->b = b;
    } else {
      st = lm_conv_new(&d, g->values[wv].data, b, &L->conv, why, whylen);
      if (st < 0) break;
      size_t w = lm_conv_workspace_size(L->conv);
      if (w > ws_max) ws_max = w;
    }
    if (L->cin * L->kd > gather_max) gather_max = L->cin * L->kd;
    if (li + 1 < s->nl) {
      /* The next layer needs 2*h+1 of this layer's slices at a time. */
      L->nring = 2 * s->l[li + 1].halo + 1;
      if (L->nring > s->d0) L->nring = s->d0;
      L->ring = alloc_floats(L->nring * L->cout * s->plane, &s->bytes);
      if (!L->ring) st = fail(why, whylen, LM_ENOMEM, "out of memory");
    }
  }
  free(convs);
  free(acts);
  if (st == LM_OK) {
    s->gather = alloc_floats(gather_max * s->plane, &s->bytes);
    s->last = alloc_floats(s->l[s->nl - 1].cout * s->plane, &s->bytes);
    if (ws_max) {
      s->ws = aligned_alloc(64, (ws_max + 63) & ~(size_t)63);
      s->bytes += ws_max;
    }
    if (!s->gather || !s->last || (ws_max && !s->ws))
      st = fail(why, whylen, LM_ENOMEM, "out of memory");
  }
  if (st < 0) {
    lm_conv_stream_free(s);
    return st;
  }
  *out = s;
  return LM_OK;
}

int lm_conv_stream_new(const lm_graph *g, const int64_t in_shape[5], bool bf16,
                       lm_conv_stream **out, char *why, size_t whylen)
{
  return stream_build(g, in_shape, bf16, out, why, whylen);
}

int lm_conv_stream_check(const lm_graph *g, const int64_t in_shape[5], char *why,
                         size_t whylen)
{
  return stream_build(g, in_shape, false, NULL, why, whylen);
}

int64_t lm_conv_stream_out_channels(const lm_conv_stream *s)
{
  return s->l[s->nl - 1].cout;
}

size_t lm_conv_stream_bytes(const lm_conv_stream *s)
{
  return s->bytes;
}

/* The kd input slices of output slice z of layer li into s->gather
** ([cin][kd][plane]); slices outside the volume are zeros (the padding). */
static void gather_slices(lm_conv_stream *s, int li, int64_t z,
                          const lm_stream_io *io)
{
  stream_layer *L = &s->l[li];
  const int64_t P = s->plane;
  const int64_t nrows = L->cin * L->kd;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < nrows; r++) {
    int64_t ci = r / L->kd, t = r % L->kd;
    int64_t zz = z + (t - (L->kd - 1) / 2) * L->dd;
    float *dst = s->gather + r * P;
    if (zz < 0 || zz >= s->d0) {
      memset(dst, 0, sizeof(float) * (size_t)P);
      continue;
    }
    if (li > 0) {
      const stream_layer *prev = &s->l[li - 1];
      const float *src = prev->ring + ((zz % prev->nring) * prev->cout + ci) * P;
      memcpy(dst, src, sizeof(float) * (size_t)P);
      continue;
    }
    const int64_t *st = io->in_stride;
    const float *base = io->in + ci * st[0] + zz * st[1];
    if (st[3] == 1 && st[2] == s->d2) {
      memcpy(dst, base, sizeof(float) * (size_t)P);
      continue;
    }
    for (int64_t i = 0; i < s->d1; i++) {
      const float *row = base + i * st[2];
      float *o = dst + i * s->d2;
      for (int64_t j = 0; j < s->d2; j++) o[j] = row[j * st[3]];
    }
  }
}

/* One output slice of layer L from s->gather into dst. */
static int run_layer(lm_conv_stream *s, stream_layer *L, float *dst)
{
  if (!L->conv) {
    lm_conv_small_slice(&L->small, s->gather, L->w, L->b, dst);
    return LM_OK;
  }
  return lm_conv_run_ws(L->conv, s->gather, dst, s->ws);
}

/* Compute layer li's slices until it has done `target` of them. */
static int advance(lm_conv_stream *s, int li, int64_t target,
                   const lm_stream_io *io, char *err, size_t errlen)
{
  stream_layer *L = &s->l[li];
  if (target > s->d0) target = s->d0;
  while (L->done < target) {
    int64_t z = L->done;
    if (li > 0) {
      int st = advance(s, li - 1, z + L->halo + 1, io, err, errlen);
      if (st < 0) return st;
    }
    gather_slices(s, li, z, io);
    float *dst = L->ring + (z % L->nring) * L->cout * s->plane;
    int st = run_layer(s, L, dst);
    if (st < 0)
      return fail(err, errlen, st, "streamed convolution %d failed", li);
    L->done++;
  }
  return LM_OK;
}

/* The final layer's slice z (in s->last, [cout][plane]) to the caller. */
static void emit(lm_conv_stream *s, int64_t z, const lm_stream_io *io)
{
  const int64_t P = s->plane, C = s->l[s->nl - 1].cout;
  if (io->logits) {
    const int64_t *st = io->logits_stride;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < C * s->d1; r++) {
      int64_t c = r / s->d1, i = r % s->d1;
      const float *src = s->last + c * P + i * s->d2;
      float *o = io->logits + c * st[0] + z * st[1] + i * st[2];
      for (int64_t j = 0; j < s->d2; j++) o[j * st[3]] = src[j];
    }
    return;
  }
  const int64_t *st = io->labels_stride;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < s->d1; i++) {
    for (int64_t j = 0; j < s->d2; j++) {
      int64_t p = i * s->d2 + j;
      int64_t best = 0;
      float bv = s->last[p];
      /* torch.argmax: first maximum wins; NaN counts as the maximum. */
      for (int64_t c = 1; c < C && !isnan(bv); c++) {
        float v = s->last[c * P + p];
        if (v > bv || isnan(v)) {
          best = c;
          bv = v;
        }
      }
      int64_t off = z * st[0] + i * st[1] + j * st[2];
      switch (io->labels_dt) {
      case LM_U8: ((uint8_t *)io->labels)[off] = (uint8_t)best; break;
      case LM_I16: ((int16_t *)io->labels)[off] = (int16_t)best; break;
      default: ((int32_t *)io->labels)[off] = (int32_t)best; break;
      }
    }
  }
}

int lm_conv_stream_run(lm_conv_stream *s, const lm_stream_io *io,
                       const volatile int *cancel, char *err, size_t errlen)
{
  if (!io->in || (!io->logits) == (!io->labels))
    return fail(err, errlen, LM_EINVAL, "conv stream: bad outputs");
  if (io->labels && io->labels_dt != LM_U8 && io->labels_dt != LM_I16 &&
      io->labels_dt != LM_I32)
    return fail(err, errlen, LM_EDTYPE, "conv stream: label dtype %s",
                lm_dtype_name(io->labels_dt));
  for (int i = 0; i < s->nl; i++) s->l[i].done = 0;
  stream_layer *last = &s->l[s->nl - 1];
  for (int64_t z = 0; z < s->d0; z++) {
    if (cancel && *cancel) return fail(err, errlen, LM_ECANCELED, "cancelled");
    if (s->nl > 1) {
      int st = advance(s, s->nl - 2, z + last->halo + 1, io, err, errlen);
      if (st < 0) return st;
    }
    gather_slices(s, s->nl - 1, z, io);
    int st = run_layer(s, last, s->last);
    if (st < 0)
      return fail(err, errlen, st, "streamed convolution %d failed", s->nl - 1);
    emit(s, z, io);
  }
  return LM_OK;
}
