/* nnU-Net v2 resample_data_or_seg (semantics.md §4.4) on lumen tensors:
 * nnU-Net's shape rule and separate-z decision, skimage resize per 2-D
 * slice (or per 3-D volume) and order-0/1 resampling across slices, the
 * one-hot label path, and the geometry (affine, trace) nnU-Net leaves
 * implicit.  The numeric kernels are in resample_nnunet_kernels.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resample_nnunet.h"
#include "resample_nnunet_kernels.h"
#include "xf_util.h"

void xf_nnunet_opts_init(xf_nnunet_opts *o)
{
  o->separate_z = -1;
  o->anisotropy_threshold = 3.0;
  o->order = 3;
  o->order_z = 0;
  o->is_label = false;
  o->loop = NULL;
}

/* Errors go to the op context inside a kernel, to the engine's per-thread
 * message when called directly (unit tests, other C code). */
static int nn_error(lm_op_ctx *ctx, lm_engine *e, int st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int nn_error(lm_op_ctx *ctx, lm_engine *e, int st, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ctx) return lm_ctx_error(ctx, st, "%s", msg);
  return lm_set_error(e, st, "%s", msg);
}

/* get_do_separate_z: max/min strictly above the threshold. */
static bool nn_anisotropic(const double sp[3], double threshold)
{
  double lo = sp[0], hi = sp[0];
  for (int d = 1; d < 3; d++) {
    lo = sp[d] < lo ? sp[d] : lo;
    hi = sp[d] > hi ? sp[d] : hi;
  }
  return hi / lo > threshold;
}

/* get_lowres_axis: the axes where max/sp == 1 exactly; -1 unless exactly
 * one (two or three equal coarsest axes turn separate z off). */
static int nn_lowres_axis(const double sp[3])
{
  double hi = sp[0] > sp[1] ? sp[0] : sp[1];
  hi = hi > sp[2] ? hi : sp[2];
  int axis = -1, count = 0;
  for (int d = 0; d < 3; d++)
    if (hi / sp[d] == 1.0) {
      axis = d;
      count++;
    }
  return count == 1 ? axis : -1;
}

int xf_nnunet_separate_axis(const double cur[3], const double new_sp[3],
                            const xf_nnunet_opts *o)
{
  if (o->separate_z == 0) return -1;
  if (o->separate_z > 0) return nn_lowres_axis(cur);
  if (nn_anisotropic(cur, o->anisotropy_threshold)) return nn_lowres_axis(cur);
  if (nn_anisotropic(new_sp, o->anisotropy_threshold))
    return nn_lowres_axis(new_sp);
  return -1;
}

/* ---- the work description shared by the parallel bodies ---- */

typedef struct nn_job {
  lm_op_ctx *ctx;
  const lm_tensor *in;
  lm_tensor *out;
  lm_dtype dt;
  size_t esz;
  bool is_label;
  int64_t nch;            /* leading dims flattened */
  int lead;               /* number of leading dims */
  int64_t n[3], m[3];     /* spatial shapes, X Y Z */
  int64_t is[3];          /* input strides of X Y Z (elements) */
  int64_t os[3];          /* output strides (X fastest, dense) */
  int64_t ovol;           /* output elements per channel */
  /* separate-z: the slice axis a and the plane axes p (faster), q */
  int a, p, q;
  nn_axis ap, aq, az;     /* in-plane axes and the across-slice axis */
  nn_axis ax[3];          /* 3-D path */
  double *tmp;            /* separate z with order_z 1: resized planes */
  /* 3-D path buffers for the channel being processed */
  int64_t ch;
  double *A, *B, *C, *D;
  double lo, hi;
  bool clip;
} nn_job;

int64_t xf_nnunet_lead_offset(const lm_tensor *t, int lead, int64_t c)
{
  const int64_t *sh = lm_tensor_shape(t), *st = lm_tensor_strides(t);
  int64_t off = 0;
  for (int d = lead - 1; d >= 0; d--) {
    off += (c % sh[d]) * st[d];
    c /= sh[d];
  }
  return off;
}

/* Load slice s (along axis a) of channel c as an (n_q x n_p) double block. */
static void nn_load_plane(const nn_job *j, int64_t c, int64_t s, double *dst)
{
  const char *base = (const char *)lm_tensor_data(j->in);
  int64_t off = xf_nnunet_lead_offset(j->in, j->lead, c) + s * j->is[j->a];
  for (int64_t iq = 0; iq < j->n[j->q]; iq++)
    xf_load_f64(base + (off + iq * j->is[j->q]) * (int64_t)j->esz,
                j->is[j->p] * (int64_t)j->esz, j->dt, dst + iq * j->n[j->p],
                j->n[j->p]);
}

static void nn_store_plane(const nn_job *j, int64_t c, int64_t oz,
                           const double *src)
{
  char *base = (char *)lm_tensor_data(j->out);
  int64_t off = c * j->ovol + oz * j->os[j->a];
  int64_t mp = j->m[j->p];
  for (int64_t oq = 0; oq < j->m[j->q]; oq++)
    xf_store_f64(src + oq * mp, base + (off + oq * j->os[j->q]) * (int64_t)j->esz,
                 j->os[j->p] * (int64_t)j->esz, j->dt, mp);
}

/* Scratch of one worker for resizing planes. */
typedef struct nn_plane_buf {
  double *in, *mid, *res, *s1, *s2;
} nn_plane_buf;

static int nn_plane_buf_init(const nn_job *j, nn_plane_buf *b)
{
  int64_t np_ = j->n[j->p], nq = j->n[j->q], mp = j->m[j->p], mq = j->m[j->q];
  b->in = malloc((size_t)(np_ * nq) * sizeof(double));
  b->mid = malloc((size_t)(nq * mp) * sizeof(double));
  b->res = malloc((size_t)(mq * mp) * sizeof(double));
  b->s1 = malloc((size_t)nn_axis_scratch(&j->ap) * sizeof(double));
  b->s2 = malloc((size_t)(nn_axis_scratch(&j->aq) * mp) * sizeof(double));
  if (b->in && b->mid && b->res && b->s1 && b->s2) return LM_OK;
  return LM_ENOMEM;
}

static void nn_plane_buf_free(nn_plane_buf *b)
{
  free(b->in);
  free(b->mid);
  free(b->res);
  free(b->s1);
  free(b->s2);
}

/* skimage resize of the loaded plane b->in into b->res (m_q x m_p):
 * data by separable spline passes then clipped to the plane's range;
 * labels by the one-hot vote (corners q outer, p inner, as scipy walks a
 * C-order (q, p) array). */
static void nn_resize_plane(const nn_job *j, nn_plane_buf *b)
{
  const nn_axis *ap = &j->ap, *aq = &j->aq;
  int64_t np_ = ap->n, mp = ap->m, nq = aq->n, mq = aq->m;
  if (j->is_label) {
    for (int64_t oq = 0; oq < mq; oq++)
      for (int64_t op = 0; op < mp; op++) {
        double lab[4], coef[4];
        int k = 0;
        for (int tq = 0; tq < aq->taps; tq++)
          for (int tp = 0; tp < ap->taps; tp++) {
            lab[k] = b->in[aq->idx[oq * aq->taps + tq] * np_ +
                           ap->idx[op * ap->taps + tp]];
            coef[k++] = 1.0 * aq->w[oq * aq->taps + tq] * ap->w[op * ap->taps + tp];
          }
        b->res[oq * mp + op] = nn_label_vote(lab, coef, k, false);
      }
    return;
  }
  for (int64_t iq = 0; iq < nq; iq++)
    nn_resize_line(ap, b->in + iq * np_, b->mid + iq * mp, b->s1);
  nn_resize_rows(aq, b->mid, mp, b->res, mp, mp, b->s2);
  double lo, hi;
  if (nn_minmax(b->in, np_ * nq, &lo, &hi)) {
    for (int64_t i = 0; i < mq * mp; i++) {
      double v = b->res[i];
      b->res[i] = v < lo ? lo : v > hi ? hi : v;
    }
  }
}

/* Separate z, order_z 0: each input slice is resized once and copied to
 * every output slice whose nearest source it is (nnU-Net's map_coordinates
 * order 0 picks whole slices). */
static int nn_body_sep_nearest(int64_t begin, int64_t end, void *arg)
{
  const nn_job *j = arg;
  nn_plane_buf b;
  int st = nn_plane_buf_init(j, &b);
  int64_t na = j->n[j->a], ma = j->m[j->a];
  for (int64_t t = begin; t < end && st == LM_OK; t++) {
    int64_t c = t / na, s = t % na;
    /* the output slices sourced from s form one run (idx is monotone) */
    int64_t first = -1, last = -1;
    for (int64_t oz = 0; oz < ma; oz++)
      if (j->az.idx[oz] == s) {
        if (first < 0) first = oz;
        last = oz;
      }
    if (first < 0) continue;
    if (lm_ctx_cancelled(j->ctx)) {
      st = LM_ECANCELED;
      break;
    }
    nn_load_plane(j, c, s, b.in);
    nn_resize_plane(j, &b);
    for (int64_t oz = first; oz <= last; oz++) nn_store_plane(j, c, oz, b.res);
  }
  nn_plane_buf_free(&b);
  return st;
}

/* Separate z with order_z 1, first half: every slice resized into tmp. */
static int nn_body_sep_planes(int64_t begin, int64_t end, void *arg)
{
  const nn_job *j = arg;
  nn_plane_buf b;
  int st = nn_plane_buf_init(j, &b);
  int64_t plane = j->m[j->p] * j->m[j->q];
  for (int64_t t = begin; t < end && st == LM_OK; t++) {
    if (lm_ctx_cancelled(j->ctx)) {
      st = LM_ECANCELED;
      break;
    }
    nn_load_plane(j, t / j->n[j->a], t % j->n[j->a], b.in);
    nn_resize_plane(j, &b);
    memcpy(j->tmp + t * plane, b.res, (size_t)plane * sizeof(double));
  }
  nn_plane_buf_free(&b);
  return st;
}

/* Second half: linear interpolation across slices (map_coordinates order 1,
 * mode 'nearest'); labels per label with rint(value) > 0.5. */
static int nn_body_sep_linear(int64_t begin, int64_t end, void *arg)
{
  const nn_job *j = arg;
  int64_t plane = j->m[j->p] * j->m[j->q], na = j->n[j->a], ma = j->m[j->a];
  double *res = malloc((size_t)plane * sizeof(double));
  if (!res) return LM_ENOMEM;
  for (int64_t t = begin; t < end; t++) {
    int64_t c = t / ma, oz = t % ma;
    const int64_t *ix = j->az.idx + oz * 2;
    const double *w = j->az.w + oz * 2;
    const double *s0 = j->tmp + (c * na + ix[0]) * plane;
    const double *s1 = j->tmp + (c * na + ix[1]) * plane;
    if (j->is_label) {
      for (int64_t i = 0; i < plane; i++) {
        double lab[2] = {s0[i], s1[i]};
        res[i] = nn_label_vote(lab, w, 2, true);
      }
    } else {
      for (int64_t i = 0; i < plane; i++) res[i] = 0.0 + s0[i] * w[0] + s1[i] * w[1];
    }
    nn_store_plane(j, c, oz, res);
  }
  free(res);
  return LM_OK;
}

/* ---- the 3-D path (no separate axis) for one channel ---- */

static int nn_body_load3(int64_t begin, int64_t end, void *arg)
{
  const nn_job *j = arg;
  const char *base = (const char *)lm_tensor_data(j->in);
  int64_t off = xf_nnunet_lead_offset(j->in, j->lead, j->ch);
  int64_t nx = j->n[0], ny = j->n[1];
  for (int64_t r = begin; r < end; r++) {  /* r = z * ny + y */
    int64_t z = r / ny, y = r % ny;
    xf_load_f64(base + (off + y * j->is[1] + z * j->is[2]) * (int64_t)j->esz,
                j->is[0] * (int64_t)j->esz, j->dt, j->A + r * nx, nx);
  }
  return LM_OK;
}

static int nn_body_pass_x(int64_t begin, int64_t end, void *arg)
{
  const nn_job *j = arg;
  double *s = malloc((size_t)nn_axis_scratch(&j->ax[0]) * sizeof(double));
  if (!s) return LM_ENOMEM;
  for (int64_t r = begin; r < end; r++)
    nn_resize_line(&j->ax[0], j->A + r * j->n[0], j->B + r * j->m[0], s);
  free(s);
  return LM_OK;
}

static int nn_body_pass_y(int64_t begin, int64_t end, void *arg)
{
  const nn_job *j = arg;
  int64_t w = j->m[0];
  double *s = malloc((size_t)(nn_axis_scratch(&j->ax[1]) * w) * sizeof(double));
  if (!s) return LM_ENOMEM;
  for (int64_t z = begin; z < end; z++)
    nn_resize_rows(&j->ax[1], j->B + z * j->n[1] * w, w,
                   j->C + z * j->m[1] * w, w, w, s);
  free(s);
  return LM_OK;
}

/* Columns of the (Z x mY*mX) block in chunks that keep the scratch small. */
#define NN_COLS 512
static int nn_body_pass_z(int64_t begin, int64_t end, void *arg)
{
  const nn_job *j = arg;
  int64_t width = j->m[0] * j->m[1];
  double *s = malloc((size_t)(nn_axis_scratch(&j->ax[2]) * NN_COLS) * sizeof(double));
  if (!s) return LM_ENOMEM;
  for (int64_t k = begin; k < end; k++) {
    int64_t c0 = k * NN_COLS, w = width - c0 < NN_COLS ? width - c0 : NN_COLS;
    nn_resize_rows(&j->ax[2], j->C + c0, width, j->D + c0, width, w, s);
  }
  free(s);
  return LM_OK;
}

/* Labels in 3-D: scipy's corner walk over the C-order (Z, Y, X) array
 * (nnU-Net's axis order for a volume whose slice axis is Z). */
static int nn_body_label3(int64_t begin, int64_t end, void *arg)
{
  const nn_job *j = arg;
  const nn_axis *ax = &j->ax[0], *ay = &j->ax[1], *az = &j->ax[2];
  int64_t nx = j->n[0], ny = j->n[1], mx = j->m[0], my = j->m[1];
  for (int64_t r = begin; r < end; r++) {  /* r = oz * my + oy */
    int64_t oz = r / my, oy = r % my;
    double *d = j->D + r * mx;
    for (int64_t ox = 0; ox < mx; ox++) {
      double lab[8], coef[8];
      int k = 0;
      for (int tz = 0; tz < az->taps; tz++)
        for (int ty = 0; ty < ay->taps; ty++)
          for (int tx = 0; tx < ax->taps; tx++) {
            int64_t iz = az->idx[oz * az->taps + tz];
            int64_t iy = ay->idx[oy * ay->taps + ty];
            int64_t ix = ax->idx[ox * ax->taps + tx];
            lab[k] = j->A[(iz * ny + iy) * nx + ix];
            coef[k++] = 1.0 * az->w[oz * az->taps + tz] *
                        ay->w[oy * ay->taps + ty] * ax->w[ox * ax->taps + tx];
          }
      d[ox] = nn_label_vote(lab, coef, k, false);
    }
  }
  return LM_OK;
}

static int nn_body_store3(int64_t begin, int64_t end, void *arg)
{
  const nn_job *j = arg;
  char *base = (char *)lm_tensor_data(j->out);
  int64_t mx = j->m[0];
  double *row = malloc((size_t)mx * sizeof(double));
  if (!row) return LM_ENOMEM;
  for (int64_t r = begin; r < end; r++) {
    const double *src = j->D + r * mx;
    if (j->clip) {
      for (int64_t i = 0; i < mx; i++)
        row[i] = src[i] < j->lo ? j->lo : src[i] > j->hi ? j->hi : src[i];
      src = row;
    }
    xf_store_f64(src, base + (j->ch * j->ovol + r * mx) * (int64_t)j->esz,
                 (int64_t)j->esz, j->dt, mx);
  }
  free(row);
  return LM_OK;
}

static int nn_run_3d(lm_engine *e, nn_job *j)
{
  int64_t nvol = j->n[0] * j->n[1] * j->n[2];
  int64_t mvol = j->m[0] * j->m[1] * j->m[2];
  j->A = malloc((size_t)nvol * sizeof(double));
  j->D = malloc((size_t)mvol * sizeof(double));
  if (!j->is_label) {
    j->B = malloc((size_t)(j->n[2] * j->n[1] * j->m[0]) * sizeof(double));
    j->C = malloc((size_t)(j->n[2] * j->m[1] * j->m[0]) * sizeof(double));
  }
  if (!j->A || !j->D || (!j->is_label && (!j->B || !j->C))) return LM_ENOMEM;
  int st = LM_OK;
  int64_t width = j->m[0] * j->m[1];
  for (j->ch = 0; j->ch < j->nch && st == LM_OK; j->ch++) {
    st = lm_parallel_for(e, j->ctx, j->n[2] * j->n[1], 16, nn_body_load3, j);
    if (st != LM_OK) break;
    if (j->is_label) {
      j->clip = false;
      st = lm_parallel_for(e, j->ctx, j->m[2] * j->m[1], 4, nn_body_label3, j);
    } else {
      j->clip = nn_minmax(j->A, nvol, &j->lo, &j->hi);
      st = lm_parallel_for(e, j->ctx, j->n[2] * j->n[1], 16, nn_body_pass_x, j);
      if (st == LM_OK)
        st = lm_parallel_for(e, j->ctx, j->n[2], 1, nn_body_pass_y, j);
      if (st == LM_OK)
        st = lm_parallel_for(e, j->ctx, (width + NN_COLS - 1) / NN_COLS, 1,
                             nn_body_pass_z, j);
    }
    if (st == LM_OK)
      st = lm_parallel_for(e, j->ctx, j->m[2] * j->m[1], 16, nn_body_store3, j);
  }
  return st;
}

/* ---- geometry, validation and the entry points ---- */

/* Output voxel o samples input index (o + 0.5) * r - 0.5 = r*o + (r-1)/2
 * with r = n/m: columns scale by r, the origin moves by A·(r-1)/2. */
static void nn_affine(const double *a, const int64_t n[3], const int64_t m[3],
                      double *out)
{
  memcpy(out, a, 16 * sizeof(double));
  for (int d = 0; d < 3; d++) {
    double r = (double)n[d] / (double)m[d];
    for (int row = 0; row < 3; row++) {
      out[row * 4 + d] = a[row * 4 + d] * r;
      out[row * 4 + 3] += a[row * 4 + d] * 0.5 * (r - 1.0);
    }
  }
}

static int nn_check(lm_op_ctx *ctx, lm_engine *e, const lm_tensor *in,
                    const xf_nnunet_opts *o)
{
  if (!o->loop && lm_tensor_device(in).type != LM_DEVICE_CPU)
    return nn_error(ctx, e, LM_EDEVICE,
                    "nnunet resampling runs on the CPU: call to('cpu') first");
  if (lm_tensor_ndim(in) < 3)
    return nn_error(ctx, e, LM_ESHAPE,
                    "nnunet resampling needs 3 spatial dims (X, Y, Z), got %d dims",
                    lm_tensor_ndim(in));
  if (o->order != 0 && o->order != 1 && o->order != 3)
    return nn_error(ctx, e, LM_EINVAL, "order %d: nnunet resampling supports 0, 1 or 3",
                    o->order);
  if (o->is_label && o->order == 3)
    return nn_error(ctx, e, LM_EINVAL,
                    "order 3 for labels: nnunet resamples labels with order 0 or 1");
  if (o->order_z != 0 && o->order_z != 1)
    return nn_error(ctx, e, LM_EINVAL, "order_z %d: nnunet resampling supports 0 or 1",
                    o->order_z);
  if (!(o->anisotropy_threshold > 0) || !isfinite(o->anisotropy_threshold))
    return nn_error(ctx, e, LM_EINVAL, "anisotropy_threshold %g must be positive",
                    o->anisotropy_threshold);
  return LM_OK;
}

static int nn_spacing_ok(lm_op_ctx *ctx, lm_engine *e, const char *what,
                         const double sp[3])
{
  for (int d = 0; d < 3; d++)
    if (!(sp[d] > 0) || !isfinite(sp[d]))
      return nn_error(ctx, e, LM_EINVAL, "%s[%d] = %g must be a positive number",
                      what, d, sp[d]);
  return LM_OK;
}

int xf_resample_nnunet_to_shape(lm_op_ctx *ctx, lm_tensor *in,
                                const int64_t new_shape[3],
                                const double cur[3], const double new_sp[3],
                                const xf_nnunet_opts *o, lm_tensor **out)
{
  lm_engine *e = lm_tensor_engine(in);
  *out = NULL;
  int st = nn_check(ctx, e, in, o);
  if (st == LM_OK) st = nn_spacing_ok(ctx, e, "current spacing", cur);
  if (st == LM_OK) st = nn_spacing_ok(ctx, e, "new spacing", new_sp);
  if (st != LM_OK) return st;
  const int nd = lm_tensor_ndim(in), lead = nd - 3;
  const int64_t *shape = lm_tensor_shape(in);
  nn_job j;
  memset(&j, 0, sizeof j);
  j.ctx = ctx;
  j.in = in;
  j.dt = lm_tensor_dtype(in);
  j.esz = lm_dtype_size(j.dt);
  j.is_label = o->is_label;
  j.lead = lead;
  j.nch = 1;
  for (int d = 0; d < lead; d++) j.nch *= shape[d];
  for (int d = 0; d < 3; d++) {
    j.n[d] = shape[lead + d];
    j.m[d] = new_shape[d];
    j.is[d] = lm_tensor_strides(in)[lead + d];
    if (new_shape[d] < 1 || new_shape[d] > ((int64_t)1 << 31))
      return nn_error(ctx, e, LM_EINVAL,
                      "output shape[%d] = %lld: the target spacing gives an empty or "
                      "absurd grid", d, (long long)new_shape[d]);
  }
  /* Output memory: leading dims slowest, then Z, Y, X (NIfTI order). */
  int64_t oshape[LM_MAX_DIMS];
  int order[LM_MAX_DIMS];
  for (int d = 0; d < lead; d++) {
    oshape[d] = shape[d];
    order[d] = d;
  }
  for (int d = 0; d < 3; d++) {
    oshape[lead + d] = j.m[d];
    order[lead + d] = lead + 2 - d;
  }
  st = lm_tensor_new_ordered(e, j.dt, nd, oshape, order, lm_tensor_device(in), &j.out);
  if (st != LM_OK) return nn_error(ctx, e, st, "nnunet resampling: cannot allocate the output");
  j.os[0] = 1;
  j.os[1] = j.m[0];
  j.os[2] = j.m[0] * j.m[1];
  j.ovol = j.os[2] * j.m[2];

  int axis = xf_nnunet_separate_axis(cur, new_sp, o);
  bool same = j.n[0] == j.m[0] && j.n[1] == j.m[1] && j.n[2] == j.m[2];
  if (o->loop) {
    xf_nnunet_loop l = {.in = in, .out = j.out, .is_label = o->is_label, .same = same,
                        .lead = lead, .nch = j.nch, .axis = same ? -1 : axis};
    memcpy(l.n, j.n, sizeof l.n);
    memcpy(l.m, j.m, sizeof l.m);
    int ord = o->is_label ? (o->order == 0 ? 0 : 1) : o->order;
    if (!same && axis >= 0) {
      l.p = axis == 0 ? 1 : 0;
      l.q = axis == 2 ? 1 : 2;
      if (nn_axis_init(&j.ap, j.n[l.p], j.m[l.p], ord) ||
          nn_axis_init(&j.aq, j.n[l.q], j.m[l.q], ord) ||
          nn_axis_init(&j.az, j.n[axis], j.m[axis], j.n[axis] == j.m[axis] ? 0 : o->order_z))
        st = LM_ENOMEM;
      l.ap = &j.ap;
      l.aq = &j.aq;
      l.az = &j.az;
    } else if (!same) {
      for (int d = 0; d < 3 && st == LM_OK; d++) {
        if (nn_axis_init(&j.ax[d], j.n[d], j.m[d], ord)) st = LM_ENOMEM;
        l.ax[d] = &j.ax[d];
      }
    }
    if (st == LM_OK) st = o->loop(ctx, &l);
  } else if (same) {
    st = lm_tensor_copy(j.out, in);  /* nnU-Net returns its input as is */
  } else if (axis >= 0) {
    j.a = axis;
    j.p = axis == 0 ? 1 : 0;
    j.q = axis == 2 ? 1 : 2;
    int in_order = o->is_label ? (o->order == 0 ? 0 : 1) : o->order;
    if (nn_axis_init(&j.ap, j.n[j.p], j.m[j.p], in_order) ||
        nn_axis_init(&j.aq, j.n[j.q], j.m[j.q], in_order) ||
        nn_axis_init(&j.az, j.n[j.a], j.m[j.a], j.n[j.a] == j.m[j.a] ? 0 : o->order_z)) {
      st = LM_ENOMEM;
    } else if (j.az.order == 0) {
      st = lm_parallel_for(e, ctx, j.nch * j.n[j.a], 1, nn_body_sep_nearest, &j);
    } else {
      j.tmp = malloc((size_t)(j.nch * j.n[j.a] * j.m[j.p] * j.m[j.q]) * sizeof(double));
      if (!j.tmp) st = LM_ENOMEM;
      if (st == LM_OK)
        st = lm_parallel_for(e, ctx, j.nch * j.n[j.a], 1, nn_body_sep_planes, &j);
      if (st == LM_OK)
        st = lm_parallel_for(e, ctx, j.nch * j.m[j.a], 1, nn_body_sep_linear, &j);
    }
  } else {
    int ord = o->is_label ? (o->order == 0 ? 0 : 1) : o->order;
    for (int d = 0; d < 3 && st == LM_OK; d++)
      if (nn_axis_init(&j.ax[d], j.n[d], j.m[d], ord)) st = LM_ENOMEM;
    if (st == LM_OK) st = nn_run_3d(e, &j);
  }
  nn_axis_free(&j.ap);
  nn_axis_free(&j.aq);
  nn_axis_free(&j.az);
  for (int d = 0; d < 3; d++) nn_axis_free(&j.ax[d]);
  free(j.tmp);
  free(j.A);
  free(j.B);
  free(j.C);
  free(j.D);
  if (st == LM_OK) {
    double aff[16];
    nn_affine(lm_tensor_affine(in), j.n, j.m, aff);
    lm_tensor_set_affine(j.out, aff);
    lm_tensor_set_layout(j.out, lm_tensor_layout(in));
    lm_tensor_trace_copy(j.out, in);
    char params[512];
    snprintf(params, sizeof params,
             "rule=nnunet;spacing_in=%.17g,%.17g,%.17g;spacing_out=%.17g,%.17g,%.17g;"
             "separate_z=%d;axis=%d;order=%d;order_z=%d;is_label=%d",
             cur[0], cur[1], cur[2], new_sp[0], new_sp[1], new_sp[2], axis >= 0,
             axis, o->order, o->order_z, o->is_label ? 1 : 0);
    st = lm_tensor_trace_push(j.out, "ScaleByResolution", params, nd, shape,
                              lm_tensor_affine(in));
  }
  if (st != LM_OK) {
    lm_tensor_release(j.out);
    if (st == LM_ECANCELED) return st;
    if (st == LM_ENOMEM)
      return nn_error(ctx, e, st, "nnunet resampling: out of memory");
    return st;
  }
  *out = j.out;
  return LM_OK;
}

int xf_resample_nnunet(lm_op_ctx *ctx, lm_tensor *in,
                       const double target_spacing[3],
                       const xf_nnunet_opts *o, lm_tensor **out)
{
  lm_engine *e = lm_tensor_engine(in);
  *out = NULL;
  int st = nn_check(ctx, e, in, o);
  if (st == LM_OK) st = nn_spacing_ok(ctx, e, "target spacing", target_spacing);
  if (st != LM_OK) return st;
  double cur[3];
  lm_tensor_spacing(in, cur);
  const int64_t *shape = lm_tensor_shape(in);
  int lead = lm_tensor_ndim(in) - 3;
  int64_t new_shape[3];
  for (int d = 0; d < 3; d++) {
    /* compute_new_shape: int(round(old_spacing / new_spacing * old_shape)) */
    double v = rint(cur[d] / target_spacing[d] * (double)shape[lead + d]);
    new_shape[d] = v < 1 ? 0 : v > 1e12 ? (int64_t)1e12 : (int64_t)v;
  }
  return xf_resample_nnunet_to_shape(ctx, in, new_shape, cur, target_spacing, o, out);
}
