/* Convolution and transposed convolution on oneDNN 2.6 (C API, op-desc
 * style).  One primitive per lm_conv (per phase for PHASES), chosen once
 * with format_tag_any so oneDNN picks its fastest layout; the plain f32 source is reordered into
 * that layout and the result back out, through reorder primitives and a
 * workspace that are made once and reused on every run (a sliding window
 * runs the same conv thousands of times).  Weights are reordered once.
 *
 * ConvTranspose goes through stride-1 convolutions: the sub-pixel form
 * (cpu_conv_subpixel.c) or one conv per phase (cpu_conv_phases.c); oneDNN's
 * own f32 deconvolution is 50x slower than its convolutions here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "cpu_conv_internal.h"
#include "lumen.h"

struct lm_conv {
  lm_conv_desc d;
  lm_conv_path path;
  lm_subpixel sp;
  bool bf16;               /* the primitive computes in bf16 */
  bool act_pass;           /* activation not fused: a pass over dst */
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  dnnl_primitive_t prim;
  dnnl_primitive_t src_reorder, dst_reorder;   /* NULL: layouts agree */
  dnnl_memory_t m_src, m_wei, m_bias, m_dst, m_scratch;  /* primitive side */
  dnnl_memory_t m_user_src, m_target;   /* plain src; plain dst or z */
  void *wei_buf;
  float *bias_buf;
  size_t off_src, off_dst, off_z, ws_size;   /* workspace regions */
  void *own_ws;
  lm_phases *phases;       /* PHASES: the per-phase convs do the work */
  /* SUBPIXEL with a 1-tap first dim (k == s) runs over slabs of `chunk`
  ** input planes, so z stays in cache between the conv and the scatter
  ** (0: one run over everything). */
  int64_t chunk;
  size_t src_plane_bytes;  /* one input plane, channels-last */
  dnnl_memory_t m_src_full;
  char impl[192];
};

/* ---- messages ------------------------------------------------------- */

static void describe(const lm_conv_desc *d, char *buf, size_t len) {
  int o = snprintf(buf, len, "%s %lldD %lld->%lld k", d->transposed ? "ConvTranspose" : "Conv",
                   (long long)d->nsp, (long long)d->cin, (long long)d->cout);
  for (int j = 0; j < d->nsp && o > 0 && (size_t)o < len; j++)
    o += snprintf(buf + o, len - (size_t)o, "%s%lld", j ? "x" : "", (long long)d->k[j]);
  if (o > 0 && (size_t)o < len)
    snprintf(buf + o, len - (size_t)o, " s%lld g%lld", (long long)d->stride[0], (long long)d->group);
}

static int fail(char *err, size_t errlen, const lm_conv_desc *d, const char *fmt, ...) {
  if (err && errlen) {
    char what[96];
    describe(d, what, sizeof what);
    int o = snprintf(err, errlen, "cpu_conv: %s: ", what);
    if (o > 0 && (size_t)o < errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(err + o, errlen - (size_t)o, fmt, ap);
      va_end(ap);
    }
  }
  return LM_EINVAL;
}

static int dnnl_fail(char *err, size_t errlen, const lm_conv_desc *d, const char *call,
                     dnnl_status_t st) {
  fail(err, errlen, d, "%s failed: %s", call, dnnl_status2str(st));
  return st == dnnl_out_of_memory ? LM_ENOMEM : st == dnnl_unimplemented ? LM_EUNSUPPORTED
                                                                          : LM_EINTERNAL;
}

/* ---- the descriptor's own consistency ------------------------------- */

static int check_desc(const lm_conv_desc *d, char *err, size_t errlen) {
  if (d->nsp < 1 || d->nsp > 3) return fail(err, errlen, d, "nsp = %d, want 1, 2 or 3", d->nsp);
  if (d->n < 1) return fail(err, errlen, d, "n = %lld, want >= 1", (long long)d->n);
  if (d->group < 1 || d->cin < 1 || d->cout < 1)
    return fail(err, errlen, d, "cin, cout and group must be >= 1");
  if (d->cin % d->group || d->cout % d->group)
    return fail(err, errlen, d, "group = %lld does not divide cin = %lld and cout = %lld",
                (long long)d->group, (long long)d->cin, (long long)d->cout);
  if ((int)d->act < LM_ACT_NONE || d->act > LM_ACT_CLIP)
    return fail(err, errlen, d, "act = %d is not an lm_act", (int)d->act);
  for (int j = 0; j < d->nsp; j++) {
    if (d->in[j] < 1 || d->out[j] < 1 || d->k[j] < 1 || d->stride[j] < 1 || d->dil[j] < 1)
      return fail(err, errlen, d, "in, out, k, stride and dil [%d] must be >= 1", j);
    if (d->pad_lo[j] < 0 || d->pad_hi[j] < 0)
      return fail(err, errlen, d, "pad_lo/pad_hi[%d] must be >= 0", j);
    int64_t span = d->dil[j] * (d->k[j] - 1) + 1;
    if (!d->transposed) {
      int64_t padded = d->in[j] + d->pad_lo[j] + d->pad_hi[j];
      int64_t want = padded >= span ? (padded - span) / d->stride[j] + 1 : 0;
      if (d->out[j] != want)
        return fail(err, errlen, d, "out[%d] = %lld, but in, k, stride, dil and pads give %lld",
                    j, (long long)d->out[j], (long long)want);
    } else {
      /* out = s*(in-1) + span - pads + output_padding, output_padding < max(s, dil) */
      int64_t base = d->stride[j] * (d->in[j] - 1) + span - d->pad_lo[j] - d->pad_hi[j];
      int64_t opad_max = d->stride[j] > d->dil[j] ? d->stride[j] : d->dil[j];
      if (d->out[j] < base || d->out[j] - base >= opad_max)
        return fail(err, errlen, d,
                    "out[%d] = %lld, but in, k, stride, dil and pads give %lld plus an "
                    "output_padding below %lld", j, (long long)d->out[j], (long long)base,
                    (long long)opad_max);
    }
  }
  return LM_OK;
}

/* ---- small helpers -------------------------------------------------- */

bool lm_cpu_has_bf16(void) {
  /* The isa values are bit sets: every ISA with native bf16 (avx512_core_bf16,
  ** the AMX ones) contains all the bits of avx512_core_bf16. */
  unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
  unsigned want = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
  return (isa & want) == want;
}

static dnnl_format_tag_t plain_tag(int ndims) {
  static const dnnl_format_tag_t tags[] = {dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd, dnnl_abcde,
                                           dnnl_abcdef};
  return tags[ndims - 1];
}

static dnnl_format_tag_t channels_last_tag(int ndims) {
  return ndims == 3 ? dnnl_acb : ndims == 4 ? dnnl_acdb : dnnl_acdeb;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static int64_t prod(const int64_t *v, int n) {
  int64_t p = 1;
  for (int i = 0; i < n; i++) p *= v[i];
  return p;
}

/* The shapes of the primitive: what oneDNN computes, which for SUBPIXEL is
** the stride-1 convolution, not the ConvTranspose. */
typedef struct prim_shape {
  int nd;                          /* 2 + nsp */
  int wnd;                         /* weight ndims (+1 when grouped) */
  dnnl_dims_t src, wei, bias, dst;
  dnnl_dims_t strides, dil, pad_lo, pad_hi;
  dnnl_dims_t user_wei_strides;    /* layout of the f32 weights we hand in */
} prim_shape;

static void shape_for(const lm_conv *c, prim_shape *ps) {
  const lm_conv_desc *d = &c->d;
  const lm_subpixel *sp = &c->sp;
  int nsp = d->nsp, g = (int)d->group;
  memset(ps, 0, sizeof *ps);
  ps->nd = 2 + nsp;
  bool grouped = g > 1;
  ps->wnd = ps->nd + (grouped ? 1 : 0);
  int64_t cout = c->path == LM_CONV_PATH_SUBPIXEL ? sp->cz : d->cout;
  ps->src[0] = d->n; ps->src[1] = d->cin;
  ps->dst[0] = d->n; ps->dst[1] = cout;
  ps->bias[0] = cout;
  int w = 0;
  if (grouped) ps->wei[w++] = g;
  ps->wei[w++] = cout / g;
  ps->wei[w++] = d->cin / g;
  for (int j = 0; j < nsp; j++) {
    int a = 3 - nsp + j;           /* the sub-pixel plan's 3-D view */
    ps->src[2 + j] = d->in[j];
    if (c->path == LM_CONV_PATH_SUBPIXEL) {
      ps->dst[2 + j] = sp->Q[a];
      ps->wei[w + j] = sp->T[a];
      ps->strides[j] = 1;
      ps->dil[j] = 0;
      ps->pad_lo[j] = sp->cpad_lo[a];
      ps->pad_hi[j] = sp->cpad_hi[a];
    } else {
      ps->dst[2 + j] = d->out[j];
      ps->wei[w + j] = d->k[j];
      ps->strides[j] = d->stride[j];
      ps->dil[j] = d->dil[j] - 1;          /* oneDNN: 0 = dense */
      ps->pad_lo[j] = d->pad_lo[j];
      ps->pad_hi[j] = d->pad_hi[j];
      if (c->path == LM_CONV_PATH_DECONV) {
        /* oneDNN derives dst from the pads, so output_padding comes off
        ** the end pad: out = (in-1)*s + span - lo - hi. */
        int64_t span = d->dil[j] * (d->k[j] - 1) + 1;
        ps->pad_hi[j] = (d->in[j] - 1) * d->stride[j] + span - d->pad_lo[j] - d->out[j];
      }
    }
  }
  /* Weights as handed in: dense in the order of wei for Conv and the
  ** sub-pixel form; ONNX ConvTranspose stores [g][cin/g][cout/g][k...],
  ** i.e. oneDNN's (g, o, i, k...) with i and o swapped in memory. */
  int64_t ksz = prod(ps->wei + w, nsp);
  int64_t s = 1;
  for (int i = ps->wnd - 1; i >= 0; i--) { ps->user_wei_strides[i] = s; s *= ps->wei[i]; }
  if (c->path == LM_CONV_PATH_DECONV) {
    int64_t og = ps->wei[w - 2], ig = ps->wei[w - 1];
    ps->user_wei_strides[w - 2] = ksz;          /* o */
    ps->user_wei_strides[w - 1] = og * ksz;     /* i */
    if (grouped) ps->user_wei_strides[0] = og * ig * ksz;
  }
}

static dnnl_status_t make_attr(const lm_conv_desc *d, bool post_ops, dnnl_primitive_attr_t *attr) {
  dnnl_status_t st = dnnl_primitive_attr_create(attr);
  if (st != dnnl_success) return st;
  st = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
  if (st != dnnl_success || !post_ops || d->act == LM_ACT_NONE) return st;
  dnnl_alg_kind_t alg = dnnl_eltwise_relu;
  float alpha = 0.f, beta = 0.f;
  switch (d->act) {
  case LM_ACT_NONE:
  case LM_ACT_RELU: break;
  case LM_ACT_LEAKY_RELU: alpha = d->alpha; break;
  case LM_ACT_ELU: alg = dnnl_eltwise_elu; alpha = d->alpha; break;
  case LM_ACT_SIGMOID: alg = dnnl_eltwise_logistic; break;
  case LM_ACT_TANH: alg = dnnl_eltwise_tanh; break;
  case LM_ACT_GELU: alg = dnnl_eltwise_gelu_erf; break;
  case LM_ACT_SILU: alg = dnnl_eltwise_swish; alpha = 1.f; break;
  case LM_ACT_CLIP: alg = dnnl_eltwise_clip; alpha = d->alpha; beta = d->beta; break;
  }
  dnnl_post_ops_t po;
  st = dnnl_post_ops_create(&po);
  if (st != dnnl_success) return st;
  st = dnnl_post_ops_append_eltwise(po, 1.f, alg, alpha, beta);
  if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(*attr, po);
  dnnl_post_ops_destroy(po);
  return st;
}

/* One attempt at a primitive descriptor with the given dst layout and
** dtypes; dnnl_unimplemented means "try the next candidate". */
static dnnl_status_t try_pd(const lm_conv *c, const prim_shape *ps, dnnl_data_type_t cdt,
                            dnnl_format_tag_t stag, dnnl_data_type_t ddt,
                            dnnl_format_tag_t dtag, bool post_ops, dnnl_primitive_desc_t *pd) {
  const lm_conv_desc *d = &c->d;
  dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
  dnnl_status_t st;
  if ((st = dnnl_memory_desc_init_by_tag(&src_md, ps->nd, ps->src, cdt, stag)) ||
      (st = dnnl_memory_desc_init_by_tag(&wei_md, ps->wnd, ps->wei, cdt, dnnl_format_tag_any)) ||
      (st = dnnl_memory_desc_init_by_tag(&bias_md, 1, ps->bias, dnnl_f32, dnnl_a)) ||
      (st = dnnl_memory_desc_init_by_tag(&dst_md, ps->nd, ps->dst, ddt, dtag)))
    return st;
  const dnnl_memory_desc_t *bmd = c->bias_buf ? &bias_md : NULL;
  dnnl_convolution_desc_t cd;
  dnnl_deconvolution_desc_t dd;
  const_dnnl_op_desc_t op;
  if (c->path == LM_CONV_PATH_DECONV) {
    st = dnnl_dilated_deconvolution_forward_desc_init(
        &dd, dnnl_forward_inference, dnnl_deconvolution_direct, &src_md, &wei_md, bmd, &dst_md,
        ps->strides, ps->dil, ps->pad_lo, ps->pad_hi);
    op = &dd;
  } else {
    st = dnnl_dilated_convolution_forward_desc_init(
        &cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md, &wei_md, bmd, &dst_md,
        ps->strides, ps->dil, ps->pad_lo, ps->pad_hi);
    op = &cd;
  }
  if (st != dnnl_success) return st;
  dnnl_primitive_attr_t attr;
  if ((st = make_attr(d, post_ops, &attr)) != dnnl_success) return st;
  st = dnnl_primitive_desc_create(pd, op, attr, c->eng, NULL);
  dnnl_primitive_attr_destroy(attr);
  return st;
}

/* Candidates in order of preference: activation fused before not fused
** (then a separate pass applies it); for the sub-pixel form the channels-last
** f32 z its scatter reads before any layout (reordered into z); f32 dst
** before bf16 dst (reordered back to f32).  Slabs (c->chunk) need both src
** and z channels-last, so that a slab is one contiguous piece of each. */
typedef struct dst_choice {
  dnnl_data_type_t dt;
  dnnl_format_tag_t tag;
} dst_choice;

static dnnl_status_t choose_pd(lm_conv *c, const prim_shape *ps, dnnl_primitive_desc_t *pd) {
  dnnl_data_type_t cdt = c->bf16 ? dnnl_bf16 : dnnl_f32;
  dst_choice dsts[3];
  int nd = 0;
  if (c->path == LM_CONV_PATH_SUBPIXEL)
    dsts[nd++] = (dst_choice){dnnl_f32, channels_last_tag(ps->nd)};
  if (!c->chunk) dsts[nd++] = (dst_choice){dnnl_f32, dnnl_format_tag_any};
  if (c->bf16 && !c->chunk) dsts[nd++] = (dst_choice){dnnl_bf16, dnnl_format_tag_any};
  dnnl_format_tag_t stag = c->chunk ? channels_last_tag(ps->nd) : dnnl_format_tag_any;
  dnnl_status_t st = dnnl_unimplemented;
  for (int po = 1; po >= 0; po--) {
    if (!po && c->d.act == LM_ACT_NONE) break;
    for (int i = 0; i < nd; i++) {
      st = try_pd(c, ps, cdt, stag, dsts[i].dt, dsts[i].tag, po, pd);
      if (st == dnnl_success) { c->act_pass = !po && c->d.act != LM_ACT_NONE; return st; }
      if (st != dnnl_unimplemented) return st;
    }
  }
  return st;
}

static dnnl_status_t make_reorder(dnnl_engine_t eng, const dnnl_memory_desc_t *from,
                                  const dnnl_memory_desc_t *to, dnnl_primitive_t *prim) {
  dnnl_primitive_desc_t rpd;
  dnnl_status_t st = dnnl_reorder_primitive_desc_create(&rpd, from, eng, to, eng, NULL);
  if (st != dnnl_success) return st;
  st = dnnl_primitive_create(prim, rpd);
  dnnl_primitive_desc_destroy(rpd);
  return st;
}

static void *aligned_buf(size_t bytes) {
  return aligned_alloc(64, align64(bytes ? bytes : 1));
}

/* Reorder the plain f32 weights (handed in as user_md) into the layout the
** primitive chose, once. */
static dnnl_status_t prepare_weights(lm_conv *c, const dnnl_memory_desc_t *user_md,
                                     const dnnl_memory_desc_t *prim_md, const float *w) {
  size_t bytes = dnnl_memory_desc_get_size(prim_md);
  c->wei_buf = aligned_buf(bytes);
  if (!c->wei_buf) return dnnl_out_of_memory;
  dnnl_status_t st = dnnl_memory_create(&c->m_wei, prim_md, c->eng, c->wei_buf);
  if (st != dnnl_success) return st;
  dnnl_memory_t m_user;
  /* oneDNN only reads a reorder's source; the cast does not let it write. */
  if ((st = dnnl_memory_create(&m_user, user_md, c->eng, (void *)w)) != dnnl_success) return st;
  dnnl_primitive_t r = NULL;
  st = make_reorder(c->eng, user_md, prim_md, &r);
  if (st == dnnl_success) {
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, m_user}, {DNNL_ARG_TO, c->m_wei}};
    st = dnnl_primitive_execute(r, c->stream, 2, args);
    if (st == dnnl_success) st = dnnl_stream_wait(c->stream);
  }
  if (r) dnnl_primitive_destroy(r);
  dnnl_memory_destroy(m_user);
  return st;
}

static void impl_name(lm_conv *c, dnnl_primitive_desc_t pd) {
  const char *info = "?";
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info);
  const char *form = c->path == LM_CONV_PATH_SUBPIXEL ? "subpixel+"
                     : c->path == LM_CONV_PATH_DECONV ? "deconv+" : "";
  char slabs[32] = "";
  if (c->chunk) snprintf(slabs, sizeof slabs, ",slabs%lld", (long long)(c->d.in[0] / c->chunk));
  snprintf(c->impl, sizeof c->impl, "%s%s%s%s%s", form, info, c->bf16 ? ",bf16" : "",
           c->act_pass ? ",act-pass" : "", slabs);
}

/* Slab height for the sub-pixel form: the largest divisor of the input
** depth whose z slab fits in lm_conv_slab_bytes (64 MB), or 0 where slabs do
** not apply (a first dim with more than one tap or with pads) or would be
** the whole input anyway.  What slabs buy is memory: 64->32 64^3 -> 128^3
** keeps 64 MB of z instead of 268 MB.  Time, 2 threads on the loaded
** 2-core machine: whole 0.66-0.87 s, 4 slabs of 64 MB 0.88-0.93 s, 16 of
** 16 MB 1.14-1.17 s, 64 of 4 MB 4.3 s: every slab is two OpenMP regions,
** and under load each can wait a time slice for a descheduled thread
** (1 thread, where that cannot happen: 0.40 s whole, 0.33 s 4 MB slabs). */
size_t lm_conv_slab_bytes = (size_t)64 << 20;

static int64_t pick_chunk(const lm_conv_desc *d, const lm_subpixel *sp) {
  if (!lm_conv_slab_bytes || d->nsp != 3 || sp->T[0] != 1 || sp->cpad_lo[0] ||
      sp->cpad_hi[0] || sp->q0[0] || sp->Q[0] != d->in[0])
    return 0;
  size_t plane = (size_t)(sp->Q[1] * sp->Q[2] * sp->cz) * sizeof(float);
  int64_t best = 1;
  for (int64_t h = 1; h <= d->in[0]; h++)
    if (d->in[0] % h == 0 && (size_t)h * plane <= lm_conv_slab_bytes) best = h;
  return best == d->in[0] && d->n == 1 ? 0 : best;
}

/* True when OpenMP's waiting threads sleep (OMP_WAIT_POLICY=passive, read
** by libgomp at start) instead of spinning for a while first. */
static bool omp_waits_passively(void) {
  const char *p = getenv("OMP_WAIT_POLICY");
  return p && !strcasecmp(p, "passive");
}

/* ConvTranspose, measured on this machine's AMX Xeon:
**  k2s2 64->32 64^3, 1 thread: sub-pixel 0.42 s f32, 0.37 s bf16; oneDNN
**    deconv 7.9 s f32, 0.52 s bf16.
**  k3s2 256->128 12^3, 1 thread: per phase 54 ms f32, 25 ms bf16; sub-pixel
**    99 ms f32 (its zero taps: 64 computed for 27), 22 ms bf16; oneDNN
**    deconv 178 ms f32, 16.5 ms bf16 (AMX).
**  The same k3s2, 2 threads, machine shared with other jobs (load 6): per
**    phase 24 ms with OMP_WAIT_POLICY=passive but 177 ms with libgomp's
**    default policy (25 OpenMP regions, each waiting on a thread that spun
**    and lost its time slice); sub-pixel 48 ms passive, 62 ms default.
** So: the sub-pixel form where it has no zero taps (k a multiple of s);
** else oneDNN's deconvolution in bf16; else one conv per phase where
** threads wait passively, the sub-pixel form where they spin; else oneDNN's
** f32 deconvolution. */
static lm_conv_path auto_path(const lm_conv_desc *d, bool bf16, lm_subpixel *sp) {
  if (!d->transposed) return LM_CONV_PATH_DIRECT;
  bool subpixel = lm_subpixel_plan(d, sp);
  if (subpixel && sp->phases * prod(sp->T, 3) == prod(d->k, d->nsp)) return LM_CONV_PATH_SUBPIXEL;
  if (bf16) return LM_CONV_PATH_DECONV;
  bool phases = lm_phases_apply(d);
  if (phases && (omp_waits_passively() || !subpixel)) return LM_CONV_PATH_PHASES;
  return subpixel ? LM_CONV_PATH_SUBPIXEL : LM_CONV_PATH_DECONV;
}

int lm_conv_new_path(const lm_conv_desc *d, const float *weight, const float *bias,
                     lm_conv_path path, lm_conv **out, char *err, size_t errlen) {
  *out = NULL;
  int rc = check_desc(d, err, errlen);
  if (rc != LM_OK) return rc;
  lm_conv *c = calloc(1, sizeof *c);
  if (!c) return LM_ENOMEM;
  c->d = *d;
  c->bf16 = d->bf16 && lm_cpu_has_bf16();
  if (path == LM_CONV_PATH_AUTO) path = auto_path(d, c->bf16, &c->sp);
  bool ok = (path == LM_CONV_PATH_DIRECT) != d->transposed;
  if (path == LM_CONV_PATH_SUBPIXEL) ok = ok && lm_subpixel_plan(d, &c->sp);
  if (path == LM_CONV_PATH_PHASES) ok = ok && lm_phases_apply(d);
  if (!ok) {
    free(c);
    return fail(err, errlen, d, "path %d does not apply", (int)path);
  }
  if (path == LM_CONV_PATH_PHASES) {
    c->path = path;
    rc = lm_phases_new(d, weight, bias, &c->phases, err, errlen);
    if (rc != LM_OK) { free(c); return rc; }
    c->ws_size = lm_phases_workspace_size(c->phases);
    snprintf(c->impl, sizeof c->impl, "%s", lm_phases_impl(c->phases));
    *out = c;
    return LM_OK;
  }
  c->path = path;
  const char *call = "dnnl_engine_create";
  dnnl_status_t st = dnnl_engine_create(&c->eng, dnnl_cpu, 0);
  if (st == dnnl_success) {
    call = "dnnl_stream_create";
    st = dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags);
  }
  if (st != dnnl_success) goto dnnl_error;

  prim_shape ps, full;
  shape_for(c, &ps);
  full = ps;
  if (path == LM_CONV_PATH_SUBPIXEL && (c->chunk = pick_chunk(d, &c->sp))) {
    ps.src[0] = ps.dst[0] = 1;
    ps.src[2] = ps.dst[2] = c->chunk;
  }
  float *vbuf = NULL;                      /* sub-pixel weights and bias */
  const float *wsrc = weight, *bsrc = bias;
  if (path == LM_CONV_PATH_SUBPIXEL) {
    size_t vn = (size_t)(c->sp.cz * (d->cin / d->group) * prod(c->sp.T, 3));
    vbuf = malloc((vn + (size_t)c->sp.cz) * sizeof *vbuf);
    if (!vbuf) { lm_conv_free(c); return LM_ENOMEM; }
    lm_subpixel_weights(d, &c->sp, weight, vbuf);
    wsrc = vbuf;
    if (bias) { lm_subpixel_bias(d, &c->sp, bias, vbuf + vn); bsrc = vbuf + vn; }
  }
  if (bsrc) {
    c->bias_buf = aligned_buf((size_t)ps.bias[0] * sizeof(float));
    if (!c->bias_buf) { free(vbuf); lm_conv_free(c); return LM_ENOMEM; }
    memcpy(c->bias_buf, bsrc, (size_t)ps.bias[0] * sizeof(float));
  }

  dnnl_primitive_desc_t pd = NULL;
  call = "dnnl_primitive_desc_create";
  st = choose_pd(c, &ps, &pd);
  if (st == dnnl_unimplemented && c->chunk) {
    c->chunk = 0;               /* no channels-last kernel: whole runs */
    ps = full;
    st = choose_pd(c, &ps, &pd);
  }
  if (st == dnnl_unimplemented && c->bf16) {
    c->bf16 = false;            /* no bf16 kernel for this shape: f32 */
    st = choose_pd(c, &ps, &pd);
  }
  if (st != dnnl_success) { free(vbuf); goto dnnl_error; }
  impl_name(c, pd);

  const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
  const dnnl_memory_desc_t *wei_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  const dnnl_memory_desc_t *scr_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  dnnl_memory_desc_t user_src_md, target_md, user_wei_md, bias_md, src_full_md;
  dnnl_memory_desc_init_by_tag(&user_src_md, ps.nd, full.src, dnnl_f32, plain_tag(ps.nd));
  /* slabs: the whole src reordered once into channels-last, then sliced */
  dnnl_memory_desc_init_by_tag(&src_full_md, ps.nd, full.src, c->bf16 ? dnnl_bf16 : dnnl_f32,
                               channels_last_tag(ps.nd));
  if (c->chunk) {
    src_md = &src_full_md;
    c->src_plane_bytes = dnnl_memory_desc_get_size(&src_full_md) / (size_t)(d->n * d->in[0]);
  }
  dnnl_memory_desc_init_by_tag(&target_md, ps.nd, ps.dst, dnnl_f32,
                               path == LM_CONV_PATH_SUBPIXEL ? channels_last_tag(ps.nd)
                                                             : plain_tag(ps.nd));
  dnnl_memory_desc_init_by_strides(&user_wei_md, ps.wnd, ps.wei, dnnl_f32, ps.user_wei_strides);
  dnnl_memory_desc_init_by_tag(&bias_md, 1, ps.bias, dnnl_f32, dnnl_a);

  call = "dnnl_primitive_create";
  st = dnnl_primitive_create(&c->prim, pd);
  if (st == dnnl_success) {
    call = "weights reorder";
    st = prepare_weights(c, &user_wei_md, wei_md, wsrc);
  }
  free(vbuf);
  bool src_same = dnnl_memory_desc_equal(&user_src_md, src_md);
  bool dst_same = dnnl_memory_desc_equal(&target_md, dst_md);
  if (st == dnnl_success && !src_same) {
    call = "src reorder";
    st = make_reorder(c->eng, &user_src_md, src_md, &c->src_reorder);
  }
  if (st == dnnl_success && !dst_same) {
    call = "dst reorder";
    st = make_reorder(c->eng, dst_md, &target_md, &c->dst_reorder);
  }
  /* Memory objects made once; run only swaps their data handles. */
  if (st == dnnl_success) {
    call = "dnnl_memory_create";
    void *none = DNNL_MEMORY_NONE;
    st = dnnl_memory_create(&c->m_src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                            c->eng, none);
    if (st == dnnl_success && c->chunk)
      st = dnnl_memory_create(&c->m_src_full, &src_full_md, c->eng, none);
    if (st == dnnl_success) st = dnnl_memory_create(&c->m_dst, dst_md, c->eng, none);
    if (st == dnnl_success) st = dnnl_memory_create(&c->m_scratch, scr_md, c->eng, none);
    if (st == dnnl_success) st = dnnl_memory_create(&c->m_user_src, &user_src_md, c->eng, none);
    if (st == dnnl_success) st = dnnl_memory_create(&c->m_target, &target_md, c->eng, none);
    if (st == dnnl_success && c->bias_buf)
      st = dnnl_memory_create(&c->m_bias, &bias_md, c->eng, c->bias_buf);
  }
  /* Workspace: [scratchpad][reordered src][primitive dst][z]. */
  size_t off = align64(dnnl_memory_desc_get_size(scr_md));
  c->off_src = off;
  if (!src_same) off += align64(dnnl_memory_desc_get_size(src_md));
  c->off_dst = off;
  if (!dst_same) off += align64(dnnl_memory_desc_get_size(dst_md));
  c->off_z = off;
  if (path == LM_CONV_PATH_SUBPIXEL) off += align64(dnnl_memory_desc_get_size(&target_md));
  c->ws_size = off;
  dnnl_primitive_desc_destroy(pd);
  if (st != dnnl_success) goto dnnl_error;
  *out = c;
  return LM_OK;

dnnl_error:
  rc = dnnl_fail(err, errlen, d, call, st);
  lm_conv_free(c);
  return rc;
}

int lm_conv_new(const lm_conv_desc *d, const float *weight, const float *bias, lm_conv **out,
                char *err, size_t errlen) {
  return lm_conv_new_path(d, weight, bias, LM_CONV_PATH_AUTO, out, err, errlen);
}

size_t lm_conv_workspace_size(const lm_conv *c) { return c->ws_size; }

static dnnl_status_t exec2(lm_conv *c, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to) {
  dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  return dnnl_primitive_execute(p, c->stream, 2, args);
}

static dnnl_status_t exec_prim(lm_conv *c) {
  dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, c->m_src}, {DNNL_ARG_WEIGHTS, c->m_wei},
                             {DNNL_ARG_DST, c->m_dst}, {DNNL_ARG_SCRATCHPAD, c->m_scratch}};
  int nargs = 4;
  if (c->m_bias) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, c->m_bias};
  return dnnl_primitive_execute(c->prim, c->stream, nargs, args);
}

/* The sub-pixel form over slabs: src reordered once, then per slab the
** conv into the cache-sized z and its scatter into dst. */
static dnnl_status_t run_slabs(lm_conv *c, const float *src, float *dst, char *w) {
  const lm_conv_desc *d = &c->d;
  /* (one input channel: plain is channels-last already, nothing to reorder) */
  char *sbase = c->src_reorder ? w + c->off_src : (char *)src;
  dnnl_status_t st = dnnl_success;
  if (c->src_reorder) {
    dnnl_memory_set_data_handle(c->m_user_src, (void *)src);
    dnnl_memory_set_data_handle(c->m_src_full, sbase);
    st = exec2(c, c->src_reorder, c->m_user_src, c->m_src_full);
  }
  dnnl_memory_set_data_handle(c->m_scratch, w);
  dnnl_memory_set_data_handle(c->m_dst, w + c->off_z);
  for (int64_t n = 0; n < d->n && st == dnnl_success; n++)
    for (int64_t q = 0; q < d->in[0] && st == dnnl_success; q += c->chunk) {
      size_t plane = (size_t)(n * d->in[0] + q);
      dnnl_memory_set_data_handle(c->m_src, sbase + plane * c->src_plane_bytes);
      st = exec_prim(c);
      if (st == dnnl_success) st = dnnl_stream_wait(c->stream);
      if (st == dnnl_success)
        lm_subpixel_scatter(d, &c->sp, (const float *)(w + c->off_z), dst, n, n + 1, q,
                            q + c->chunk);
    }
  return st;
}

int lm_conv_run_ws(lm_conv *c, const float *src, float *dst, void *ws) {
  if (c->phases) return lm_phases_run(c->phases, src, dst, ws);
  if (c->chunk) {
    dnnl_status_t st = run_slabs(c, src, dst, ws);
    if (st != dnnl_success) return st == dnnl_out_of_memory ? LM_ENOMEM : LM_EINTERNAL;
    if (c->act_pass)
      lm_conv_act_apply(c->d.act, c->d.alpha, c->d.beta, dst,
                        (size_t)(c->d.n * c->d.cout * prod(c->d.out, c->d.nsp)));
    return LM_OK;
  }
  char *w = ws;
  const lm_conv_desc *d = &c->d;
  void *target = c->path == LM_CONV_PATH_SUBPIXEL ? (void *)(w + c->off_z) : (void *)dst;
  dnnl_status_t st = dnnl_success;
  if (c->src_reorder) {
    dnnl_memory_set_data_handle(c->m_user_src, (void *)src);
    dnnl_memory_set_data_handle(c->m_src, w + c->off_src);
    st = exec2(c, c->src_reorder, c->m_user_src, c->m_src);
  } else {
    dnnl_memory_set_data_handle(c->m_src, (void *)src);
  }
  dnnl_memory_set_data_handle(c->m_dst, c->dst_reorder ? (void *)(w + c->off_dst) : target);
  dnnl_memory_set_data_handle(c->m_scratch, w);
  if (st == dnnl_success) st = exec_prim(c);
  if (st == dnnl_success && c->dst_reorder) {
    dnnl_memory_set_data_handle(c->m_target, target);
    st = exec2(c, c->dst_reorder, c->m_dst, c->m_target);
  }
  if (st == dnnl_success) st = dnnl_stream_wait(c->stream);
  if (st != dnnl_success) return st == dnnl_out_of_memory ? LM_ENOMEM : LM_EINTERNAL;
  if (c->path == LM_CONV_PATH_SUBPIXEL)
    lm_subpixel_scatter(d, &c->sp, target, dst, 0, d->n, 0, c->sp.Q[0]);
  if (c->act_pass)
    lm_conv_act_apply(d->act, d->alpha, d->beta, dst,
                      (size_t)(d->n * d->cout * prod(d->out, d->nsp)));
  return LM_OK;
}

int lm_conv_run(lm_conv *c, const float *src, float *dst) {
  if (!c->own_ws) {
    c->own_ws = aligned_buf(c->ws_size);
    if (!c->own_ws) return LM_ENOMEM;
  }
  return lm_conv_run_ws(c, src, dst, c->own_ws);
}

const char *lm_conv_impl(const lm_conv *c) { return c->impl; }

void lm_conv_free(lm_conv *c) {
  if (!c) return;
  dnnl_primitive_t prims[] = {c->prim, c->src_reorder, c->dst_reorder};
  for (size_t i = 0; i < sizeof prims / sizeof *prims; i++)
    if (prims[i]) dnnl_primitive_destroy(prims[i]);
  dnnl_memory_t mems[] = {c->m_src, c->m_wei, c->m_bias, c->m_dst, c->m_scratch,
                          c->m_user_src, c->m_target, c->m_src_full};
  for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
    if (mems[i]) dnnl_memory_destroy(mems[i]);
  lm_phases_free(c->phases);
  if (c->stream) dnnl_stream_destroy(c->stream);
  if (c->eng) dnnl_engine_destroy(c->eng);
  free(c->wei_buf);
  free(c->bias_buf);
  free(c->own_ws);
  free(c);
}
