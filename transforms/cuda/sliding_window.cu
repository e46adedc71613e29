/* SlidingWindowInfer on the GPU.  The options, the window grid and the
 * blending weights are the CPU op's own code (models/src/sliding_window*.c,
 * in liblumen); here the data movement runs on the device:
 *   - one gather per batch writes the windows straight into the GPU plan's
 *     own input buffer (padding rule, mirroring flips and the network's axis
 *     order in the index arithmetic), then the plan runs on its own buffers
 *     (fixed addresses: a CUDA graph captured once replays for every batch);
 *   - each window's prediction is blended into a float32 (C_out, n...) sum,
 *     window after window in stream order, so the float sums happen in the
 *     CPU op's order and the result does not depend on thread timing (no
 *     atomics: overlapping windows of one batch never race);
 *   - the weight sums are one kernel over the image: each voxel adds the
 *     weights of the windows that cover it in window order (the order the
 *     CPU op scatters them), so they are bit-identical to the CPU's;
 *   - one division at the end.
 * Everything is enqueued on the op's stream; nothing waits for the device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_util.h"
#include "gpu_plan.h"
extern "C" {
#include "sliding_window.h"
}

/* Everything but the entry point in a namespace of its own: functor and
 * helper names must not meet another file's in the emulated plugin, where
 * inline functions of the same name are merged by the linker. */
namespace lmc_sw {

/* ---- geometry shared by the functors (passed by value) ------------------ */

struct sw_geom {
  int nsp;
  int pad;                       /* sw_pad */
  float cval;
  int64_t n[SW_MAX_SP];          /* image size */
  int64_t roi[SW_MAX_SP];        /* window size (1 on the slice axis) */
  int64_t pad_before[SW_MAX_SP]; /* image voxel 0 on the padded grid */
  int64_t count[SW_MAX_SP];      /* windows per axis */
  int64_t start_at[SW_MAX_SP];   /* axis d's starts in the device table */
};

/* Window `w`'s start on the padded grid along each axis (first axis
 * slowest, as the CPU op numbers the windows). */
LMC_HD void window_start(const sw_geom &g, const int64_t *starts, int64_t w, int64_t *start)
{
  for (int d = g.nsp - 1; d >= 0; d--) {
    start[d] = starts[g.start_at[d] + w % g.count[d]];
    w /= g.count[d];
  }
}

/* ---- kernels ------------------------------------------------------------ */

/* Windows [first, first + nb) of x, flipped along the image axes in `flip`,
 * into the network's input: dense [B, C, network axes...]; element i of the
 * destination reads one image voxel (or cval). */
struct gather_kernel {
  const void *x;
  int dt;
  int64_t xstride[SW_MAX_SP + 1]; /* elements: channel, then image axes */
  float *dst;
  const int64_t *starts;
  sw_geom g;
  int64_t first;
  unsigned flip;
  int64_t per_window, per_channel; /* C * roi voxels, roi voxels */
  int64_t net_stride[SW_MAX_SP];   /* image axis d in the network buffer; 0: slice axis */
  LMC_HD void operator()(int64_t i) const
  {
    int64_t b = i / per_window, c = i % per_window / per_channel, r = i % per_channel;
    int64_t start[SW_MAX_SP];
    window_start(g, starts, first + b, start);
    int64_t off = c * xstride[0];
    for (int d = 0; d < g.nsp; d++) {
      int64_t u = net_stride[d] ? r / net_stride[d] % g.roi[d] : 0;
      int64_t w = (flip >> d & 1) ? g.roi[d] - 1 - u : u;
      int64_t q = sw_pad_index((sw_pad)g.pad, start[d] + w - g.pad_before[d], g.n[d]);
      if (q < 0) {
        dst[i] = g.cval;
        return;
      }
      off += q * xstride[d + 1];
    }
    dst[i] = lmc_load_f32(x, off, dt);
  }
};

struct fill_kernel {
  float *p;
  float v;
  LMC_HD void operator()(int64_t i) const { p[i] = v; }
};

/* acc (the window frame: C order over [B, C_out, roi in image axis
 * order]) = (first ? 0 : acc) + pred flipped back along `flip`, pred in the
 * network's layout. */
struct unflip_kernel {
  const float *pred;
  float *acc;
  sw_layout pl; /* pred's strides */
  sw_layout al; /* acc's strides */
  int nsp;
  int64_t roi[SW_MAX_SP];
  int64_t cout;
  unsigned flip;
  bool first;
  LMC_HD void operator()(int64_t i) const
  {
    int64_t b = i / al.b, c = i % al.b / al.c;
    int64_t src = b * pl.b + c * pl.c;
    for (int d = 0; d < nsp; d++) {
      int64_t u = i / al.axis[d] % roi[d];
      src += ((flip >> d & 1) ? roi[d] - 1 - u : u) * pl.axis[d];
    }
    float v = pred[src];
    acc[i] = first ? v : lmc_fadd(acc[i], v);
  }
};

/* out[c, v] += (pred[c, u] * scale) * w[u] over the part [lo, hi) of one
 * window inside the image (the CPU's sw_scatter, same rounding).  Distinct
 * elements of one launch touch distinct voxels. */
struct scatter_kernel {
  const float *pred; /* channel 0 of the window */
  sw_layout pl;
  float scale;
  const float *w;    /* weight map, C order over roi */
  float *out;        /* (C_out, n...) C order */
  int nsp;
  int64_t lo[SW_MAX_SP], span[SW_MAX_SP], off[SW_MAX_SP];
  int64_t ostride[SW_MAX_SP], wstride[SW_MAX_SP];
  int64_t region, vox; /* voxels of the part, of the image */
  LMC_HD void operator()(int64_t i) const
  {
    int64_t c = i / region, k = i % region;
    int64_t o = c * vox, wi = 0, p = c * pl.c;
    for (int d = nsp - 1; d >= 0; d--) {
      int64_t u = lo[d] + k % span[d];
      k /= span[d];
      o += (off[d] + u) * ostride[d];
      wi += u * wstride[d];
      p += u * pl.axis[d];
    }
    out[o] = lmc_fadd(out[o], lmc_fmul(lmc_fmul(pred[p], scale), w[wi]));
  }
};

/* The first of the sorted starts[0..count) whose window [s, s + roi) reaches
 * past p (count if none). */
LMC_HD int64_t first_covering(const int64_t *starts, int64_t count, int64_t roi, int64_t p)
{
  int64_t lo = 0, hi = count;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (starts[mid] + roi <= p) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* count[v] = the sum of the weights of the windows covering voxel v, added
 * in window order (nested loops over the covering windows of each axis,
 * first axis outermost, are the window numbering's order). */
struct count_kernel {
  float *count;
  const float *w;
  const int64_t *starts;
  sw_geom g;
  int64_t ostride[SW_MAX_SP], wstride[SW_MAX_SP];
  LMC_HD void operator()(int64_t v) const
  {
    /* Axes past nsp: one window of one voxel, weight stride 0. */
    int64_t p[3] = {0, 0, 0}, lo[3] = {0, 0, 0}, cnt[3] = {1, 1, 1}, roi[3] = {1, 1, 1};
    int64_t ws[3] = {0, 0, 0}, zero = 0;
    const int64_t *st[3] = {&zero, &zero, &zero};
    for (int d = 0; d < g.nsp; d++) {
      p[d] = v / ostride[d] % g.n[d] + g.pad_before[d];
      st[d] = starts + g.start_at[d];
      cnt[d] = g.count[d];
      roi[d] = g.roi[d];
      ws[d] = wstride[d];
      lo[d] = first_covering(st[d], cnt[d], roi[d], p[d]);
    }
    float sum = 0.0f;
    for (int64_t a = lo[0]; a < cnt[0] && st[0][a] <= p[0]; a++)
      for (int64_t b = lo[1]; b < cnt[1] && st[1][b] <= p[1]; b++)
        for (int64_t c = lo[2]; c < cnt[2] && st[2][c] <= p[2]; c++) {
          int64_t wi = (p[0] - st[0][a]) * ws[0] + (p[1] - st[1][b]) * ws[1] +
                       (p[2] - st[2][c]) * ws[2];
          sum = lmc_fadd(sum, w[wi]);
        }
    count[v] = sum;
  }
};

struct divide_kernel {
  float *out;
  const float *count;
  int64_t vox;
  LMC_HD void operator()(int64_t i) const { out[i] = lmc_fdiv(out[i], count[i % vox]); }
};

/* ---- the op --------------------------------------------------------------- */

struct sw_gpu {
  sw_setup s;
  sw_grid grid;
  sw_geom g;
  cudaStream_t stream;
  lmc_plan *plan;
  float *w, *count, *acc; /* device scratch */
  int64_t *starts;        /* device copy of the grid's starts */
  lm_tensor *out;
  int64_t cout, roi_vox, vox;
  int64_t ostride[SW_MAX_SP], wstride[SW_MAX_SP];
};

static void gpu_free(lm_op_ctx *ctx, sw_gpu *r)
{
  lmc_scratch_free(ctx, r->stream, r->w);
  lmc_scratch_free(ctx, r->stream, r->count);
  lmc_scratch_free(ctx, r->stream, r->acc);
  lmc_scratch_free(ctx, r->stream, r->starts);
  lm_tensor_release(r->out);
  sw_grid_free(&r->grid);
}

/* The geometry, the weight map and the window starts on the device. */
static int upload_tables(lm_op_ctx *ctx, sw_gpu *r)
{
  const sw_setup *s = &r->s;
  memset(&r->g, 0, sizeof r->g);
  r->g.nsp = s->nsp;
  r->g.pad = s->pad;
  r->g.cval = (float)s->cval;
  int64_t nstarts = 0;
  r->roi_vox = r->vox = 1;
  for (int d = s->nsp - 1; d >= 0; d--) {
    r->ostride[d] = r->vox;
    r->wstride[d] = r->roi_vox;
    r->vox *= s->n[d];
    r->roi_vox *= s->roi[d];
  }
  for (int d = 0; d < s->nsp; d++) {
    r->g.n[d] = s->n[d];
    r->g.roi[d] = s->roi[d];
    r->g.pad_before[d] = r->grid.pad_before[d];
    r->g.count[d] = r->grid.count[d];
    r->g.start_at[d] = nstarts;
    nstarts += r->grid.count[d];
  }
  float *w = (float *)malloc(sizeof(float) * (size_t)r->roi_vox);
  int64_t *starts = (int64_t *)malloc(sizeof(int64_t) * (size_t)nstarts);
  int st = LM_OK;
  if (!w || !starts) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory for the weight map");
    goto done;
  }
  if (sw_weight_map(s->rule, s->blend, s->nsp, s->roi, s->sigma_scale, w) < 0) {
    st = lm_ctx_error(ctx, LM_ENOMEM, "out of memory for the weight map");
    goto done;
  }
  for (int d = 0; d < s->nsp; d++)
    memcpy(starts + r->g.start_at[d], r->grid.starts[d], sizeof(int64_t) * (size_t)r->grid.count[d]);
  r->w = (float *)lmc_scratch_alloc(ctx, r->stream, sizeof(float) * (size_t)r->roi_vox);
  r->starts = (int64_t *)lmc_scratch_alloc(ctx, r->stream, sizeof(int64_t) * (size_t)nstarts);
  r->count = (float *)lmc_scratch_alloc(ctx, r->stream, sizeof(float) * (size_t)r->vox);
  if (!r->w || !r->starts || !r->count) {
    st = LM_ENOMEM;
    goto done;
  }
  if ((st = lmc_copy_to_device(ctx, r->stream, r->w, w, sizeof(float) * (size_t)r->roi_vox)) < 0)
    goto done;
  st = lmc_copy_to_device(ctx, r->stream, r->starts, starts, sizeof(int64_t) * (size_t)nstarts);
done:
  free(w);
  free(starts);
  return st;
}

/* The model's GPU plan for [batch, C, roi in the network's axis order], and
 * the shape check of the blended output. */
static int get_plan(lm_op_ctx *ctx, sw_gpu *r)
{
  const sw_setup *s = &r->s;
  int64_t shape[LM_MAX_DIMS];
  shape[0] = s->batch;
  shape[1] = s->channels;
  for (int d = 0; d < s->nsp; d++)
    if (s->model_axis[d] >= 0) shape[s->model_axis[d]] = s->roi[d];
  lmc_plan_options o;
  memset(&o, 0, sizeof o);
  int st = lmc_precision_option(ctx, lm_arg_string(ctx, "precision"), s->model, &o.prec);
  if (st < 0) return st;
  o.channels_last = lm_arg_bool(ctx, "channels_last");
  /* One capture serves every batch of windows: the plan's buffers are its
   * own (fixed addresses). */
  o.cuda_graph = lm_arg_bool(ctx, "cuda_graph");
  int nd = s->model_ndim;
  const int64_t *shapes[1] = {shape};
  char err[512] = "";
  st = lmc_model_plan(s->model, lmc_ctx_device(ctx), &nd, shapes, &o, &r->plan, err, sizeof err);
  if (st < 0) return lm_ctx_error(ctx, st, "model '%s': %s", lm_model_name(s->model), err);
  int64_t ps[LM_MAX_DIMS];
  int pnd = s->output < lmc_plan_noutputs(r->plan) ? lmc_plan_output_shape(r->plan, s->output, ps) : -1;
  bool ok = pnd == s->model_ndim && ps[0] == s->batch && ps[1] >= 1;
  for (int d = 0; d < s->nsp && ok; d++)
    if (s->model_axis[d] >= 0 && ps[s->model_axis[d]] != s->roi[d]) ok = false;
  if (!ok) {
    char got[160] = "";
    for (int d = 0; d < pnd; d++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)ps[d]);
    return lm_ctx_error(ctx, LM_ESHAPE, "model '%s' output %d has shape (%s); SlidingWindowInfer "
                        "needs (%lld, C_out, ...) with the window's spatial size (outputs at "
                        "another resolution are not supported)", lm_model_name(s->model),
                        s->output, got, (long long)s->batch);
  }
  r->cout = ps[1];
  return LM_OK;
}

/* One run of the plan on windows [first, first + nb) flipped along `flip`;
 * the prediction is then in lmc_plan_output(plan, s.output). */
static int run_plan(lm_op_ctx *ctx, sw_gpu *r, const lm_tensor *x, int64_t first, int64_t nb,
                    unsigned flip, cudaError_t *launch)
{
  const sw_setup *s = &r->s;
  sw_layout nl = sw_network_layout(s, s->channels);
  gather_kernel k;
  memset(&k, 0, sizeof k);
  k.x = lm_tensor_data(x);
  k.dt = lm_tensor_dtype(x);
  for (int d = 0; d <= s->nsp; d++) k.xstride[d] = lm_tensor_strides(x)[d];
  k.dst = lmc_plan_input(r->plan, 0);
  k.starts = r->starts;
  k.g = r->g;
  k.first = first;
  k.flip = flip;
  k.per_window = nl.b;
  k.per_channel = nl.c;
  for (int d = 0; d < s->nsp; d++) k.net_stride[d] = nl.axis[d];
  cudaError_t e = lmc_for_each(r->stream, nb * nl.b, k);
  /* The rest of a full-size batch (the last one): zeros, so the network
   * reads defined values; their outputs are never read. */
  if (e == cudaSuccess && nb < s->batch)
    e = lmc_for_each(r->stream, (s->batch - nb) * nl.b, fill_kernel{k.dst + nb * nl.b, 0.0f});
  if (e != cudaSuccess) {
    *launch = e;
    return LM_OK;
  }
  char err[512] = "";
  int st = lmc_plan_run_own(r->plan, r->stream, err, sizeof err);
  if (st < 0) return lm_ctx_error(ctx, st, "model '%s': %s", lm_model_name(s->model), err);
  return LM_OK;
}

/* Blend windows [first, first + nb) into r->out. */
static int blend_batch(lm_op_ctx *ctx, sw_gpu *r, const lm_tensor *x, int64_t first, int64_t nb,
                       cudaError_t *launch)
{
  const sw_setup *s = &r->s;
  const float *src = lmc_plan_output(r->plan, s->output);
  sw_layout pl = sw_network_layout(s, r->cout);
  float scale = 1.0f;
  int st;
  if (!s->mirror) {
    if ((st = run_plan(ctx, r, x, first, nb, 0, launch)) < 0 || *launch != cudaSuccess) return st;
  } else {
    /* nnU-Net: (net(x) + sum over the non-empty subsets S of the mirror axes
     * of flip(net(flip(x, S)), S)) / 2^k, summed in the window frame. */
    unsigned subs[1 << SW_MAX_SP];
    int nsub = sw_mirror_subsets(s->mirror, subs);
    sw_layout al = sw_window_layout(s, r->cout);
    for (int i = 0; i < nsub; i++) {
      if ((st = run_plan(ctx, r, x, first, nb, subs[i], launch)) < 0 || *launch != cudaSuccess)
        return st;
      unflip_kernel u;
      memset(&u, 0, sizeof u);
      u.pred = src;
      u.acc = r->acc;
      u.pl = pl;
      u.al = al;
      u.nsp = s->nsp;
      for (int d = 0; d < s->nsp; d++) u.roi[d] = s->roi[d];
      u.cout = r->cout;
      u.flip = subs[i];
      u.first = i == 0;
      if ((*launch = lmc_for_each(r->stream, nb * al.b, u)) != cudaSuccess) return LM_OK;
    }
    src = r->acc;
    pl = al;
    scale = 1.0f / (float)nsub; /* 1 / 2^k: exact */
  }
  /* Window after window (two windows of a batch may overlap): stream order
   * keeps the CPU's order of the float sums. */
  for (int64_t b = 0; b < nb; b++) {
    int64_t start[SW_MAX_SP];
    int64_t win = first + b;
    for (int d = s->nsp - 1; d >= 0; d--) {
      start[d] = r->grid.starts[d][win % r->grid.count[d]];
      win /= r->grid.count[d];
    }
    scatter_kernel k;
    memset(&k, 0, sizeof k);
    k.pred = src + b * pl.b;
    k.pl = pl;
    k.scale = scale;
    k.w = r->w;
    k.out = (float *)lm_tensor_data(r->out);
    k.nsp = s->nsp;
    k.region = 1;
    k.vox = r->vox;
    for (int d = 0; d < s->nsp; d++) {
      k.off[d] = start[d] - r->grid.pad_before[d];
      k.lo[d] = k.off[d] < 0 ? -k.off[d] : 0;
      int64_t hi = s->n[d] - k.off[d] < s->roi[d] ? s->n[d] - k.off[d] : s->roi[d];
      k.span[d] = hi - k.lo[d];
      k.region *= k.span[d];
      k.ostride[d] = r->ostride[d];
      k.wstride[d] = r->wstride[d];
    }
    if ((*launch = lmc_for_each(r->stream, r->cout * k.region, k)) != cudaSuccess) return LM_OK;
  }
  return LM_OK;
}

} /* namespace lmc_sw */

using namespace lmc_sw;

extern "C" int lmc_sliding_window_infer(lm_op_ctx *ctx)
{
  sw_gpu r;
  memset(&r, 0, sizeof r);
  int st = sw_prepare(ctx, &r.s);
  if (st < 0) return st;
  if ((st = lmc_stream(ctx, &r.stream)) < 0) return st;
  sw_setup *s = &r.s;
  lm_tensor *x = lm_ctx_input(ctx, 0);
  cudaError_t e = cudaSuccess;
  if ((st = sw_grid_build(ctx, s, &r.grid)) < 0) goto done;
  /* No batch larger than the windows there are, unless the network only
   * takes batches of exactly sw_batch_size (as the CPU op). */
  if (!s->static_batch && r.grid.nwin < s->batch) s->batch = r.grid.nwin;
  if ((st = get_plan(ctx, &r)) < 0) goto done;
  if ((st = upload_tables(ctx, &r)) < 0) goto done;
  {
    int64_t oshape[SW_MAX_SP + 1];
    oshape[0] = r.cout;
    for (int d = 0; d < s->nsp; d++) oshape[d + 1] = s->n[d];
    if ((st = lm_tensor_new(lm_ctx_engine(ctx), LM_F32, s->nsp + 1, oshape, lm_tensor_device(x),
                            &r.out)) < 0) {
      st = lm_ctx_error(ctx, st, "out of memory on the device for the output");
      goto done;
    }
  }
  if (s->mirror) {
    r.acc = (float *)lmc_scratch_alloc(ctx, r.stream, sizeof(float) * (size_t)(s->batch * r.cout * r.roi_vox));
    if (!r.acc) {
      st = LM_ENOMEM;
      goto done;
    }
  }
  e = lmc_for_each(r.stream, r.cout * r.vox, fill_kernel{(float *)lm_tensor_data(r.out), 0.0f});
  if (e == cudaSuccess) {
    count_kernel k;
    memset(&k, 0, sizeof k);
    k.count = r.count;
    k.w = r.w;
    k.starts = r.starts;
    k.g = r.g;
    for (int d = 0; d < s->nsp; d++) {
      k.ostride[d] = r.ostride[d];
      k.wstride[d] = r.wstride[d];
    }
    e = lmc_for_each(r.stream, r.vox, k);
  }
  for (int64_t first = 0; first < r.grid.nwin && e == cudaSuccess; first += s->batch) {
    if (lm_ctx_cancelled(ctx)) {
      st = LM_ECANCELED;
      goto done;
    }
    int64_t nb = r.grid.nwin - first < s->batch ? r.grid.nwin - first : s->batch;
    if ((st = blend_batch(ctx, &r, x, first, nb, &e)) < 0) goto done;
  }
  if (e == cudaSuccess)
    e = lmc_for_each(r.stream, r.cout * r.vox, divide_kernel{(float *)lm_tensor_data(r.out), r.count, r.vox});
  /* The logits lie on x's grid. */
  lm_tensor_set_affine(r.out, lm_tensor_affine(x));
  lm_tensor_set_layout(r.out, lm_tensor_layout(x));
  lm_tensor_trace_copy(r.out, x);
  {
    lm_params *res = lm_ctx_results(ctx);
    if (res) lm_params_set_int(res, "windows", r.grid.nwin);
  }
  {
    lm_tensor *out = r.out;
    r.out = NULL; /* lmc_finish owns it now */
    gpu_free(ctx, &r);
    return lmc_finish(ctx, r.stream, e, "SlidingWindowInfer kernel", &out, 1);
  }
done:
  gpu_free(ctx, &r);
  return st;
}
