/* Spatial grids of label maps for the post-processing ops (label_grid.h). */
#include "label_grid.h"

#include <string.h>

int lg_grid_of_any(lm_op_ctx *ctx, const lm_tensor *t, const char *what,
                   lg_grid *g)
{
  int nd = lm_tensor_ndim(t);
  const int64_t *sh = lm_tensor_shape(t);
  const char *lay = lm_tensor_layout(t);
  memset(g, 0, sizeof *g);
  if (nd == 2 || (nd == 3 && lay[0] != 'C')) {
    g->nsp = nd;
    g->first = 0;
  } else if (nd == 3 || nd == 4) {
    g->nsp = nd - 1;
    g->first = 1;
    if (sh[0] != 1)
      return lm_ctx_error(ctx, LM_ESHAPE, "%s has %lld channels; pass a "
                          "(1, ...) label map (Argmax a one-hot or "
                          "probability tensor first)", what,
                          (long long)sh[0]);
  } else {
    return lm_ctx_error(ctx, LM_ESHAPE, "%s must be (X,Y,Z), (1,X,Y,Z), "
                        "(X,Y) or (1,X,Y); got %d dims", what, nd);
  }
  g->n[2] = 1;
  for (int d = 0; d < g->nsp; d++) g->n[d] = sh[g->first + d];
  g->numel = g->n[0] * g->n[1] * g->n[2];
  return LM_OK;
}

int lg_grid_of(lm_op_ctx *ctx, const lm_tensor *t, const char *what,
               lg_grid *g)
{
  int st = lg_grid_of_any(ctx, t, what, g);
  if (st < 0) return st;
  if (lm_device_equal(lm_tensor_device(t), LM_CPU) == false)
    return lm_ctx_error(ctx, LM_EDEVICE, "%s is on a CUDA device; call "
                        "ToHost first", what);
  return LM_OK;
}

int lg_spatial_view(lm_op_ctx *ctx, lm_tensor *t, const lg_grid *g,
                    lm_tensor **out)
{
  int st = g->first ? lm_tensor_squeeze(t, 0, out)
                    : (*out = lm_tensor_retain(t), LM_OK);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot make a view");
  return LM_OK;
}

static int load_as(lm_op_ctx *ctx, lm_tensor *t, const lg_grid *g, void *dst,
                   lm_dtype dt)
{
  lm_tensor *sp = NULL, *w = NULL;
  int st = lg_spatial_view(ctx, t, g, &sp);
  if (st < 0) return st;
  int64_t strides[3] = {1, g->n[0], g->n[0] * g->n[1]};
  st = lm_tensor_wrap(lm_ctx_engine(ctx), dst, dt, g->nsp, g->n, strides,
                      LM_CPU, NULL, NULL, &w);
  if (st >= 0) st = lm_tensor_copy(w, sp);
  lm_tensor_release(w);
  lm_tensor_release(sp);
  if (st < 0) return lm_ctx_error(ctx, st, "cannot read the input values");
  return LM_OK;
}

int lg_load_int32(lm_op_ctx *ctx, lm_tensor *t, const lg_grid *g,
                  int32_t *dst)
{
  return load_as(ctx, t, g, dst, LM_I32);
}

int lg_load_f64(lm_op_ctx *ctx, lm_tensor *t, const lg_grid *g, double *dst)
{
  return load_as(ctx, t, g, dst, LM_F64);
}

void lg_world(const double *A, double i, double j, double k, double w[3])
{
  for (int r = 0; r < 3; r++)
    w[r] = A[4 * r] * i + A[4 * r + 1] * j + A[4 * r + 2] * k + A[4 * r + 3];
}
