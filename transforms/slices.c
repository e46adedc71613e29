/* SplitSlices / StackSlices: run 2-D models per slice of a volume and put
 * their results back on the volume's grid (issue 3 item 7). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xf_util.h"

/* The volume's channel and spatial dims: (C,X,Y,Z) (a 4-d tensor, or a
 * 3-d one whose layout starts with 'C' is refused as 2-D) or (X,Y,Z). */
typedef struct sl_vol {
  bool has_c;
  int64_t c;
  int64_t n[3];
  char letters[4];   /* the spatial axes' letters */
} sl_vol;

static int sl_vol_of(lm_op_ctx *ctx, const lm_tensor *t, const char *what,
                     sl_vol *v)
{
  int nd = lm_tensor_ndim(t);
  const int64_t *sh = lm_tensor_shape(t);
  const char *lay = lm_tensor_layout(t);
  memset(v, 0, sizeof *v);
  if (nd == 4) {
    v->has_c = true;
    v->c = sh[0];
  } else if (nd == 3 && lay[0] != 'C') {
    v->c = 1;
  } else {
    return lm_ctx_error(ctx, LM_ESHAPE, "%s must be a volume (C,X,Y,Z) or "
                        "(X,Y,Z); got %d dims (layout \"%s\")", what, nd, lay);
  }
  for (int d = 0; d < 3; d++) v->n[d] = sh[nd - 3 + d];
  if ((int)strlen(lay) == nd) memcpy(v->letters, lay + nd - 3, 3);
  else memcpy(v->letters, "XYZ", 3);
  if (!lm_device_equal(lm_tensor_device(t), LM_CPU))
    return lm_ctx_error(ctx, LM_EDEVICE, "%s is on a CUDA device; call ToHost "
                        "first", what);
  return LM_OK;
}

static int sl_axis(lm_op_ctx *ctx, int *axis)
{
  int64_t a = lm_arg_int(ctx, "axis");
  if (a < -3 || a > 2)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'axis' = %lld: must be a "
                        "spatial axis 0, 1 or 2 (negative counts from the "
                        "end)", (long long)a);
  *axis = (int)(a < 0 ? a + 3 : a);
  return LM_OK;
}

/* The other two spatial axes, in order. */
static void plane_axes(int axis, int *u, int *v)
{
  *u = axis == 0 ? 1 : 0;
  *v = axis == 2 ? 1 : 2;
}

/* ---- SplitSlices ---- */

static int split_check(lm_op_ctx *ctx)
{
  sl_vol v;
  int axis, st = sl_vol_of(ctx, lm_ctx_input(ctx, 0), "img", &v);
  return st < 0 ? st : sl_axis(ctx, &axis);
}

static int split_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *c = NULL, *view = NULL, *out = NULL;
  sl_vol v;
  int axis = 2, u, w, st = sl_vol_of(ctx, in, "img", &v);
  if (st < 0 || (st = sl_axis(ctx, &axis)) < 0) return st;
  plane_axes(axis, &u, &w);
  /* A (C,X,Y,Z) view, then (N,C,A,B) as a permutation of it. */
  st = v.has_c ? (c = lm_tensor_retain(in), LM_OK) : lm_tensor_unsqueeze(in, 0, &c);
  int perm[4] = {1 + axis, 0, 1 + u, 1 + w};
  if (st >= 0) st = lm_tensor_permute(c, perm, &view);
  int64_t shape[4] = {v.n[axis], v.c, v.n[u], v.n[w]};
  if (st >= 0) st = lm_tensor_new(lm_ctx_engine(ctx), lm_tensor_dtype(in), 4,
                                  shape, LM_CPU, &out);
  if (st >= 0) st = lm_tensor_copy(out, view);
  lm_tensor_release(view);
  lm_tensor_release(c);
  if (st < 0) {
    lm_tensor_release(out);
    return lm_ctx_error(ctx, st, "cannot build the slice stack");
  }
  /* The stack's affine maps (a, b, n): slice n's own 2-D affine is this
   * matrix with n times the third column folded into the translation. */
  const double *A = lm_tensor_affine(in);
  double B[16];
  memcpy(B, A, sizeof B);
  const int cols[3] = {u, w, axis};
  for (int r = 0; r < 4; r++)
    for (int k = 0; k < 3; k++) B[4 * r + k] = A[4 * r + cols[k]];
  lm_tensor_set_affine(out, B);
  char lay[5] = {'N', 'C', v.letters[u], v.letters[w], 0};
  lm_tensor_set_layout(out, lay);
  lm_tensor_trace_copy(out, in);
  char params[64];
  snprintf(params, sizeof params, "axis=%d;channel_added=%d", axis, !v.has_c);
  st = lm_tensor_trace_push(out, "SplitSlices", params, lm_tensor_ndim(in),
                            lm_tensor_shape(in), A);
  if (st < 0) {
    lm_tensor_release(out);
    return lm_ctx_error(ctx, st, "cannot record the trace");
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc split_args[] = {
  {"axis", LM_ARG_INT, "2", "spatial axis to slice along: 0 = X, 1 = Y, 2 = "
   "Z (negative counts from the end)"},
};

const lm_op_desc lm_op_split_slices = {
  .name = "SplitSlices",
  .alias = NULL,
  .summary = "Cut a volume into a stack of 2-D slices (N, C, A, B) for a 2-D "
             "model",
  .doc =
    "img (C,X,Y,Z) or (X,Y,Z) (then C = 1) becomes ONE C-contiguous tensor "
    "(N, C, A, B): N slices along axis, each a (C, A, B) image whose axes A "
    "and B are the other two spatial axes in order (axis=2: A = X, B = Y). "
    "That is the batch a 2-D model takes (N as the batch), and each slice "
    "stack[n] is contiguous. Layout \"NC\" plus the letters of A and B "
    "(\"NCXY\"). Affine: the volume's columns reordered to (A, B, axis), so "
    "it maps (a, b, n) to world; the 2-D affine of slice n is that matrix "
    "with n times its third column folded into the translation. The trace "
    "gets a SplitSlices entry (axis, channel_added, and the volume's shape "
    "and affine) that StackSlices undoes. Any dtype.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "stack",
  .args = split_args,
  .nargs = (int)(sizeof split_args / sizeof split_args[0]),
  .flags = 0,
  .check = split_check,
  .run_cpu = split_run,
  .run_cuda = NULL,
};

/* ---- StackSlices ---- */

typedef struct stack_plan {
  int axis, u, w;
  int64_t n, c, a, b;      /* the stack's dims */
  bool out_has_c;
  int64_t vol[3];
  const double *affine;    /* of the volume */
  double own_affine[16];
  char letters[4];
} stack_plan;

/* The newest trace entry when it is a SplitSlices one, else NULL. */
static const lm_trace_entry *split_entry(const lm_tensor *t)
{
  int n = lm_tensor_trace_length(t);
  const lm_trace_entry *e = n > 0 ? lm_tensor_trace_at(t, n - 1) : NULL;
  return e && strcmp(e->op, "SplitSlices") == 0 ? e : NULL;
}

static int stack_plan_of(lm_op_ctx *ctx, stack_plan *p)
{
  lm_tensor *s = lm_ctx_input(ctx, 0);
  int nd = lm_tensor_ndim(s), st = sl_axis(ctx, &p->axis);
  if (st < 0) return st;
  plane_axes(p->axis, &p->u, &p->w);
  const int64_t *sh = lm_tensor_shape(s);
  if (nd != 4 && nd != 3)
    return lm_ctx_error(ctx, LM_ESHAPE, "stack must be (N, C, A, B) or (N, A, "
                        "B); got %d dims", nd);
  p->n = sh[0];
  p->c = nd == 4 ? sh[1] : 1;
  p->a = sh[nd - 2];
  p->b = sh[nd - 1];
  if (!lm_device_equal(lm_tensor_device(s), LM_CPU))
    return lm_ctx_error(ctx, LM_EDEVICE, "stack is on a CUDA device; call "
                        "ToHost first");
  if (lm_ctx_ninputs(ctx) > 1) {
    sl_vol v;
    if ((st = sl_vol_of(ctx, lm_ctx_input(ctx, 1), "ref", &v)) < 0) return st;
    memcpy(p->vol, v.n, sizeof p->vol);
    memcpy(p->letters, v.letters, 4);
    p->out_has_c = v.has_c || p->c != 1;
    p->affine = lm_tensor_affine(lm_ctx_input(ctx, 1));
  } else {
    /* Undo SplitSlices' column order on the stack's own affine. */
    const double *B = lm_tensor_affine(s);
    const int cols[3] = {p->u, p->w, p->axis};
    memcpy(p->own_affine, B, sizeof p->own_affine);
    for (int r = 0; r < 4; r++)
      for (int k = 0; k < 3; k++) p->own_affine[4 * r + cols[k]] = B[4 * r + k];
    p->affine = p->own_affine;
    p->vol[p->axis] = p->n;
    p->vol[p->u] = p->a;
    p->vol[p->w] = p->b;
    const lm_trace_entry *e = split_entry(s);
    p->out_has_c = !(e && strstr(e->params, "channel_added=1") && p->c == 1);
    const char *lay = lm_tensor_layout(s);
    memcpy(p->letters, "XYZ", 4);
    if (strlen(lay) == 4 && lay[0] == 'N') {
      p->letters[p->u] = lay[2];
      p->letters[p->w] = lay[3];
    }
  }
  if (p->vol[p->axis] != p->n || p->vol[p->u] != p->a || p->vol[p->w] != p->b)
    return lm_ctx_error(ctx, LM_ESHAPE, "stack (%lld slices of %lldx%lld) does "
                        "not fit ref's grid (%lld,%lld,%lld) along axis %d",
                        (long long)p->n, (long long)p->a, (long long)p->b,
                        (long long)p->vol[0], (long long)p->vol[1],
                        (long long)p->vol[2], p->axis);
  return LM_OK;
}

static int stack_check(lm_op_ctx *ctx)
{
  stack_plan p;
  memset(&p, 0, sizeof p);
  return stack_plan_of(ctx, &p);
}

static int stack_run(lm_op_ctx *ctx)
{
  lm_tensor *s = lm_ctx_input(ctx, 0), *out = NULL, *cview = NULL, *view = NULL;
  lm_tensor *src = NULL;
  stack_plan p;
  memset(&p, 0, sizeof p);
  int st = stack_plan_of(ctx, &p);
  if (st < 0) return st;
  /* Output (C,X,Y,Z) in NIfTI order (x fastest, channels slowest). */
  int64_t shape[4] = {p.c, p.vol[0], p.vol[1], p.vol[2]};
  int order[4] = {0, 3, 2, 1};
  st = lm_tensor_new_ordered(lm_ctx_engine(ctx), lm_tensor_dtype(s), 4, shape,
                             order, LM_CPU, &out);
  int perm[4] = {1 + p.axis, 0, 1 + p.u, 1 + p.w};
  if (st >= 0) st = lm_tensor_permute(out, perm, &view);
  if (st >= 0)
    st = lm_tensor_ndim(s) == 4 ? (src = lm_tensor_retain(s), LM_OK)
                                : lm_tensor_unsqueeze(s, 1, &src);
  if (st >= 0) st = lm_tensor_copy(view, src);
  lm_tensor_release(view);
  lm_tensor_release(src);
  if (st >= 0 && !p.out_has_c) {
    st = lm_tensor_squeeze(out, 0, &cview);
    lm_tensor_release(out);
    out = cview;
  }
  if (st < 0) {
    lm_tensor_release(out);
    return lm_ctx_error(ctx, st, "cannot build the volume");
  }
  lm_tensor_set_affine(out, p.affine);
  char lay[5] = {0};
  if (p.out_has_c) snprintf(lay, sizeof lay, "C%s", p.letters);
  else memcpy(lay, p.letters, 3);
  lm_tensor_set_layout(out, lay);
  if (lm_ctx_ninputs(ctx) > 1) {
    lm_tensor_trace_copy(out, lm_ctx_input(ctx, 1));
  } else {
    lm_tensor_trace_copy(out, s);
    if (split_entry(s)) lm_tensor_trace_pop(out);
  }
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc stack_args[] = {
  {"axis", LM_ARG_INT, "2", "the axis SplitSlices cut along"},
};

const lm_op_desc lm_op_stack_slices = {
  .name = "StackSlices",
  .alias = NULL,
  .summary = "Put a stack of 2-D results (N, C, A, B) back into a volume "
             "(C, X, Y, Z), keeping the affine",
  .doc =
    "The inverse of SplitSlices: stack[n] becomes slice n along axis. The "
    "channel count may differ from the volume's (a 2-D model's "
    "probabilities), and a 3-d stack (N, A, B) counts as one channel. With "
    "ref (the volume that was split, or anything on its grid) the output "
    "takes ref's spatial shape (checked), affine, trace and axis letters; "
    "the output is (X,Y,Z) when ref is and the stack has one channel, else "
    "(C,X,Y,Z). Without ref the grid comes from the stack itself: its "
    "affine's columns are put back in (X, Y, Z) order and its newest trace "
    "entry, when it is SplitSlices, is removed. Memory order: x fastest "
    "(NIfTI order). Any dtype (kept).",
  .inputs = "stack, ref",
  .min_inputs = 1,
  .max_inputs = 2,
  .outputs = "img",
  .args = stack_args,
  .nargs = (int)(sizeof stack_args / sizeof stack_args[0]),
  .flags = 0,
  .check = stack_check,
  .run_cpu = stack_run,
  .run_cuda = NULL,
};
