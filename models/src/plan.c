/* Plans (plan.h): a prepared graph specialised to concrete input shapes and
 * turned into a list of steps.
 *
 * - Conv/ConvTranspose become oneDNN primitives (cpu_conv.h) with the
 *   activation that follows fused when the conv output has no other reader:
 *   Relu, LeakyRelu, PRelu with one slope, Elu, Sigmoid, Tanh, Clip with
 *   constant bounds, Gelu, SiLU (Sigmoid + Mul) and the erf form of GELU that
 *   PyTorch exports (Div(sqrt 2), Erf, Add(1), Mul, Mul(0.5)).
 * - InstanceNormalization followed by Relu/LeakyRelu/PRelu(one slope)/Elu/
 *   Sigmoid/Tanh/Gelu and/or a residual Add runs as one fused kernel
 *   (plan_fused.c); so does the GroupNorm
 *   pattern PyTorch exports (Reshape, InstanceNormalization, Reshape, Mul,
 *   Add), with or without such an activation after it, and an Add of two
 *   run-time values with the activation after it (VNet).
 * - Reshape, Flatten, Squeeze and Unsqueeze of an intermediate are views:
 *   the output shares the input's buffer and nothing runs.  A Concat whose
 *   inputs are contiguous blocks of its output (batch 1, channel axis) runs
 *   in place: the producers write straight into the output's blocks.
 * - Everything else runs through the op table's eval; unary element-wise
 *   ops work in place when their input dies there.
 * - Every intermediate lives in one arena laid out once from lifetimes
 *   (plan_memory.c); graph outputs are written into the caller's buffers.
 *   lm_plan_run allocates nothing (kernels may use scratch internally).
 *
 * This file builds the steps and runs them; plan_match.c makes the fused
 * steps, plan_memory.c places the values, plan_fused.c has the fused norm
 * kernels.  A plan owns its specialised clone of the graph and copies the
 * constants its steps read at run time, so it does not depend on the graph
 * it was built from once lm_plan_new returns. */
#include "plan.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_conv.h"
#include "cpu_ops.h"
#include "plan_internal.h"

/* ---- errors --------------------------------------------------------------- */

int plan_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* ---- builder state -------------------------------------------------------- */

/* A node whose outputs are all constant was folded; the plan skips it. */
static bool node_folded(const lm_graph *g, const lm_gnode *n)
{
  for (int j = 0; j < n->nout; j++)
    if (n->out[j] >= 0 && !is_const(g, n->out[j])) return false;
  return true;
}

static int build_uses(builder *b)
{
  lm_graph *g = b->g;
  int nv = g->nvalues, nn = g->nnodes;
  b->uses = calloc((size_t)nv + 1, sizeof *b->uses);
  b->cstart = calloc((size_t)nv + 2, sizeof *b->cstart);
  b->skip = calloc((size_t)nn + 1, sizeof *b->skip);
  int nedges = 0;
  for (int i = 0; i < nn; i++) nedges += g->nodes[i].nin;
  b->cons = malloc(sizeof *b->cons * ((size_t)nedges + 1));
  int *fill = calloc((size_t)nv + 1, sizeof *fill);
  if (!b->uses || !b->cstart || !b->skip || !b->cons || !fill) {
    free(fill);
    return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  }
  for (int i = 0; i < nn; i++) {
    const lm_gnode *n = &g->nodes[i];
    b->skip[i] = node_folded(g, n);
    if (b->skip[i]) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] >= 0) {
        int v = lm_graph_resolve(g, n->in[j]);
        b->uses[v]++;
        b->cstart[v + 1]++;
      }
  }
  for (int v = 0; v < nv; v++) b->cstart[v + 1] += b->cstart[v];
  for (int i = 0; i < nn; i++) {
    const lm_gnode *n = &g->nodes[i];
    if (b->skip[i]) continue;
    for (int j = 0; j < n->nin; j++)
      if (n->in[j] >= 0) {
        int v = lm_graph_resolve(g, n->in[j]);
        /* A node reading v twice (Mul(x, x)) is listed once per read. */
        b->cons[b->cstart[v] + fill[v]++] = i;
      }
  }
  free(fill);
  for (int i = 0; i < g->noutputs; i++) b->uses[lm_graph_resolve(g, g->outputs[i])]++;
  return LM_OK;
}

/* The one node reading v, when v has exactly one reader and is no graph
** output; else -1. */
int plan_sole_reader(const builder *b, int v)
{
  if (v < 0 || b->uses[v] != 1 || b->cstart[v + 1] - b->cstart[v] != 1) return -1;
  int c = b->cons[b->cstart[v]];
  return b->skip[c] ? -1 : c;
}

/* ---- steps ------------------------------------------------------------------ */

plan_step *plan_new_step(builder *b, step_kind kind, const lm_gnode *n, int nin, int nout)
{
  plan_step *s = &b->p->steps[b->p->nsteps];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->node = n;
  s->nin = nin;
  s->nout = nout;
  s->vin = calloc((size_t)(nin > 0 ? nin : 1), sizeof *s->vin);
  s->vout = calloc((size_t)(nout > 0 ? nout : 1), sizeof *s->vout);
  s->in = calloc((size_t)(nin > 0 ? nin : 1), sizeof *s->in);
  s->out = calloc((size_t)(nout > 0 ? nout : 1), sizeof *s->out);
  b->p->nsteps++;   /* counted even on failure, so lm_plan_free frees it */
  if (!s->vin || !s->vout || !s->in || !s->out) return NULL;
  return s;
}

void plan_set_rt(const lm_graph *g, lm_rt_tensor *t, int v)
{
  memset(t, 0, sizeof *t);
  if (v < 0) return;
  const lm_gvalue *val = &g->values[v];
  t->dt = val->dt;
  t->ndim = val->ndim;
  memcpy(t->shape, val->shape, sizeof t->shape);
}

/* A value computed at run time must be dense float32 of known shape. */
int plan_check_runtime_value(builder *b, const lm_gnode *n, int v)
{
  const lm_gvalue *val = &b->g->values[v];
  if (!val->dt_known || lm_gvalue_numel(val) < 0)
    return plan_fail(b->err, b->errlen, LM_EINVAL,
                "%s: node '%s' (%s): the shape of output '%s' is not known for these input "
                "shapes", gsrc(b->g), nname(n), n->op, vname(b->g, v));
  if (val->dt != LM_F32)
    return plan_fail(b->err, b->errlen, LM_EINVAL,
                "%s: node '%s' (%s): output '%s' is %s at run time; only float32 values run "
                "(other types must fold to constants at plan time)",
                gsrc(b->g), nname(n), n->op, vname(b->g, v), lm_dtype_name(val->dt));
  return LM_OK;
}

static const char *const unary_inplace_ops[] = {
  "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish",
  "Tanh", "Softplus", "Softsign", "Clip", "ThresholdedRelu", "Erf", "Exp", "Log",
  "Sqrt", "Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos",
  "Gelu", NULL};
static const char *const binary_inplace_ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "PRelu",
                                                 NULL};
static const char *const view_ops[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", NULL};

static bool in_list(const char *const *list, const lm_gnode *n)
{
  for (int i = 0; list[i]; i++)
    if (op_is(n, list[i])) return true;
  return false;
}

/* Nodes that copy their data input unchanged at these shapes: Pad with
** all-zero pads (ResEncUNet's skip path), Cast to the same type, Expand and
** Tile to the same shape.  They become views. */
static bool is_identity_node(const lm_graph *g, const lm_gnode *n, int x)
{
  if (x < 0 || n->nout != 1 || n->out[0] < 0) return false;
  const lm_gvalue *xv = &g->values[x], *yv = &g->values[n->out[0]];
  if (xv->dt != yv->dt || xv->ndim != yv->ndim ||
      memcmp(xv->shape, yv->shape, sizeof(int64_t) * (size_t)(xv->ndim > 0 ? xv->ndim : 0)))
    return false;
  if (op_is(n, "Cast") || op_is(n, "Expand") || op_is(n, "Tile")) return true;
  if (!op_is(n, "Pad")) return false;
  /* Same shape is not enough: pads of -1 and +1 shift the data. */
  int cnt;
  const int64_t *pads = lm_gnode_attr_ints(n, "pads", &cnt);   /* opset < 11 */
  if (pads) {
    for (int i = 0; i < cnt; i++)
      if (pads[i]) return false;
    return true;
  }
  if (n->nin < 2 || !is_const(g, n->in[1])) return false;
  const lm_gvalue *pv = &g->values[n->in[1]];
  if (pv->dt != LM_I64) return false;
  const int64_t *pd = pv->data;
  for (int64_t i = 0; i < lm_gvalue_numel(pv); i++)
    if (pd[i]) return false;
  return true;
}

static int add_eval_step(builder *b, int ni)
{
  const lm_gnode *n = &b->g->nodes[ni];
  const lm_cpu_kernel *k = lm_cpu_kernel_find(n->op);
  if (!k || !k->eval)
    return plan_fail(b->err, b->errlen, LM_EINVAL, "%s: node '%s': op %s has no CPU kernel",
                gsrc(b->g), nname(n), n->op);
  for (int j = 0; j < n->nout; j++) {
    int rc;
    if (n->out[j] >= 0 && (rc = plan_check_runtime_value(b, n, n->out[j])) < 0) return rc;
  }
  plan_step *s = plan_new_step(b, STEP_EVAL, n, n->nin, n->nout);
  if (!s) return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  s->k = k;
  for (int j = 0; j < n->nin; j++) {
    s->vin[j] = n->in[j] >= 0 ? lm_graph_resolve(b->g, n->in[j]) : -1;
    plan_set_rt(b->g, &s->in[j], s->vin[j]);
  }
  for (int j = 0; j < n->nout; j++) {
    s->vout[j] = n->out[j];
    plan_set_rt(b->g, &s->out[j], s->vout[j]);
  }
  bool data_in_runtime = n->nin >= 1 && s->vin[0] >= 0 && !is_const(b->g, s->vin[0]);
  s->may_view = data_in_runtime && n->nout == 1 &&
                (in_list(view_ops, n) || is_identity_node(b->g, n, s->vin[0]));
  if (data_in_runtime && n->nout == 1 && in_list(unary_inplace_ops, n)) s->inplace_inputs = 1;
  /* The op table's binary kernel reads element i of an input of the
   * output's shape before it writes element i of the output. */
  if (n->nin == 2 && n->nout == 1 && in_list(binary_inplace_ops, n)) s->inplace_inputs = 3;
  snprintf(s->label, sizeof s->label, "%s '%s'", n->op, nname(n));
  return LM_OK;
}

/* ---- outputs ------------------------------------------------------------------ */

/* Graph outputs: the producing step writes the caller's buffer directly,
** unless the output is an input, a constant, or listed twice; those are
** copied by steps at the end. */
static int plan_outputs(builder *b)
{
  lm_plan *p = b->p;
  lm_graph *g = b->g;
  for (int i = 0; i < g->noutputs; i++) {
    int v = lm_graph_resolve(g, g->outputs[i]);
    p->out_values[i] = v;
    const lm_gvalue *val = &g->values[v];
    if (val->dt != LM_F32 || lm_gvalue_numel(val) < 0)
      return plan_fail(b->err, b->errlen, LM_EINVAL,
                  "%s: graph output '%s' is %s%s; outputs must be float32 of known shape",
                  gsrc(g), vname(g, g->outputs[i]), lm_dtype_name(val->dt),
                  lm_gvalue_numel(val) < 0 ? " of unknown shape" : "");
    if (p->loc[v] == LOC_NONE && !val->data && !val->is_input) {
      p->loc[v] = LOC_OUTPUT;
      p->loc_index[v] = i;
      continue;
    }
    plan_step *s = plan_new_step(b, STEP_COPY, NULL, 1, 0);
    if (!s) return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
    s->vin[0] = v;
    s->out_index = i;
    s->bytes = value_bytes(g, v);
    snprintf(s->label, sizeof s->label, "copy to output '%s'", vname(g, g->outputs[i]));
  }
  return LM_OK;
}

/* ---- plan_new ------------------------------------------------------------------ */

static int build(builder *b)
{
  lm_plan *p = b->p;
  lm_graph *g = b->g;
  int rc;
  for (int i = 0; i < g->ninputs; i++) {
    int v = g->inputs[i];
    if (g->values[v].dt != LM_F32)
      return plan_fail(b->err, b->errlen, LM_EINVAL, "%s: input '%s' is %s; plans take float32",
                  gsrc(g), vname(g, v), lm_dtype_name(g->values[v].dt));
    p->loc[v] = LOC_INPUT;
    p->loc_index[v] = i;
  }
  for (int v = 0; v < g->nvalues; v++)
    if (g->values[v].data && g->values[v].alias < 0) p->loc[v] = LOC_CONST;
  if ((rc = build_uses(b)) < 0) return rc;
  p->steps = calloc((size_t)g->nnodes + (size_t)g->noutputs + 1, sizeof *p->steps);
  if (!p->steps) return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  for (int i = 0; i < g->nnodes; i++) {
    if (b->skip[i]) continue;
    const lm_gnode *n = &g->nodes[i];
    if (op_is(n, "Conv") || op_is(n, "ConvTranspose")) {
      rc = plan_add_conv_step(b, i);
    } else if (op_is(n, "InstanceNormalization")) {
      bool done;
      rc = plan_try_instnorm_step(b, i, &done);
      if (rc == LM_OK && !done) rc = add_eval_step(b, i);
    } else if (op_is(n, "Reshape")) {
      bool done;
      rc = plan_try_groupnorm_step(b, i, &done);
      if (rc == LM_OK && !done) rc = add_eval_step(b, i);
    } else if (op_is(n, "Add")) {
      bool done;
      rc = plan_try_add_act_step(b, i, &done);
      if (rc == LM_OK && !done) rc = add_eval_step(b, i);
    } else {
      rc = add_eval_step(b, i);
    }
    if (rc < 0) return rc;
  }
  if ((rc = plan_outputs(b)) < 0) return rc;
  if ((rc = plan_lay_out_memory(b)) < 0) return rc;
  /* The plan keeps reading the constants of its eval steps: own them. */
  bool *copied = calloc((size_t)g->nvalues + 1, sizeof *copied);
  if (!copied) return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  for (int s = 0; s < p->nsteps; s++) {
    const plan_step *st = &p->steps[s];
    if (st->kind == STEP_CONV || st->kind == STEP_VIEW) continue;
    for (int j = 0; j < st->nin; j++) {
      int v = st->vin[j];
      if (v < 0 || !g->values[v].data || copied[v]) continue;
      void *d = lm_graph_alloc(g, g->values[v].nbytes ? g->values[v].nbytes : 1);
      if (!d) {
        free(copied);
        return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
      }
      memcpy(d, g->values[v].data, g->values[v].nbytes);
      g->values[v].data = d;
      copied[v] = true;
    }
  }
  free(copied);
  return LM_OK;
}

int lm_plan_new(const lm_graph *g, const int *ndims, const int64_t *const *shapes,
                const lm_plan_options *opt, lm_plan **out, char *err, size_t errlen)
{
  *out = NULL;
  if (err && errlen) err[0] = 0;
  lm_plan *p = calloc(1, sizeof *p);
  if (!p) return plan_fail(err, errlen, LM_ENOMEM, "out of memory");
  p->threads = opt && opt->threads > 0 ? opt->threads : omp_get_num_procs();
  p->layout_only = opt && opt->layout_only;
  p->no_concat_in_place = opt && opt->no_concat_in_place;
  p->bf16 = opt && opt->bf16 && lm_cpu_has_bf16() && !p->layout_only;
  p->g = lm_graph_clone(g);
  if (!p->g) {
    free(p);
    return plan_fail(err, errlen, LM_ENOMEM, "out of memory");
  }
  int rc = lm_graph_specialize(p->g, ndims, shapes);
  if (rc < 0) {
    plan_fail(err, errlen, rc, "%s", p->g->err);
    lm_plan_free(p);
    return rc;
  }
  int nv = p->g->nvalues;
  p->loc = calloc((size_t)nv + 1, sizeof *p->loc);
  p->loc_index = calloc((size_t)nv + 1, sizeof *p->loc_index);
  p->loc_offset = calloc((size_t)nv + 1, sizeof *p->loc_offset);
  p->ptr = calloc((size_t)nv + 1, sizeof *p->ptr);
  p->noutputs = p->g->noutputs;
  p->out_values = calloc((size_t)p->noutputs + 1, sizeof *p->out_values);
  if (!p->loc || !p->loc_index || !p->loc_offset || !p->ptr || !p->out_values) {
    lm_plan_free(p);
    return plan_fail(err, errlen, LM_ENOMEM, "out of memory");
  }
  builder b = {.p = p, .g = p->g, .err = err, .errlen = errlen};
  /* oneDNN picks its kernels for the thread count current at creation. */
  int prev_threads = omp_get_max_threads();
  omp_set_num_threads(p->threads);
  rc = build(&b);
  omp_set_num_threads(prev_threads);
  free(b.uses);
  free(b.cstart);
  free(b.cons);
  free(b.skip);
  if (rc >= 0) {
    /* Each conv would otherwise keep its own workspace (its src and dst in
     * oneDNN's layout): gigabytes for a large network. */
    for (int s = 0; s < p->nsteps; s++)
      if (p->steps[s].conv) {
        size_t w = lm_conv_workspace_size(p->steps[s].conv);
        if (w > p->conv_ws_bytes) p->conv_ws_bytes = w;
      }
    if (p->conv_ws_bytes && !p->layout_only) {
      p->conv_ws = aligned_alloc(64, (p->conv_ws_bytes + 63) & ~(size_t)63);
      if (!p->conv_ws) rc = plan_fail(err, errlen, LM_ENOMEM, "out of memory (conv workspace)");
    }
  }
  if (rc < 0) {
    lm_plan_free(p);
    return rc;
  }
  *out = p;
  return LM_OK;
}

void lm_plan_free(lm_plan *p)
{
  if (!p) return;
  for (int s = 0; s < p->nsteps; s++) {
    plan_step *st = &p->steps[s];
    if (st->conv) lm_conv_free(st->conv);
    free(st->vin);
    free(st->vout);
    free(st->in);
    free(st->out);
  }
  free(p->steps);
  free(p->step_seconds);
  free(p->loc);
  free(p->loc_index);
  free(p->loc_offset);
  free(p->ptr);
  free(p->out_values);
  free(p->arena);
  free(p->conv_ws);
  lm_graph_free(p->g);
  free(p);
}

int lm_plan_noutputs(const lm_plan *p)
{
  return p->noutputs;
}

int lm_plan_output_shape(const lm_plan *p, int i, int64_t *shape)
{
  if (i < 0 || i >= p->noutputs) return LM_EINVAL;
  const lm_gvalue *v = &p->g->values[p->out_values[i]];
  for (int d = 0; d < v->ndim; d++) shape[d] = v->shape[d];
  return v->ndim;
}

bool lm_plan_uses_bf16(const lm_plan *p)
{
  return p->bf16;
}

int lm_plan_nsteps(const lm_plan *p)
{
  return p->nsteps;
}

const char *lm_plan_step_label(const lm_plan *p, int i)
{
  if (i < 0 || i >= p->nsteps) return NULL;
  const plan_step *s = &p->steps[i];
  return s->label;
}

bool lm_plan_step_inplace(const lm_plan *p, int i)
{
  if (i < 0 || i >= p->nsteps) return false;
  const plan_step *s = &p->steps[i];
  if (s->kind == STEP_VIEW || !s->nout || s->vout[0] < 0 || p->loc[s->vout[0]] != LOC_ARENA)
    return false;
  for (int k = 0; k < s->nin; k++)
    if (s->vin[k] >= 0 && p->loc[s->vin[k]] == LOC_ARENA &&
        p->loc_offset[s->vin[k]] == p->loc_offset[s->vout[0]])
      return true;
  return false;
}

int lm_plan_profile(lm_plan *p, bool on)
{
  free(p->step_seconds);
  p->step_seconds = NULL;
  if (on && !(p->step_seconds = calloc((size_t)p->nsteps + 1, sizeof *p->step_seconds)))
    return LM_ENOMEM;
  return LM_OK;
}

double lm_plan_step_seconds(const lm_plan *p, int i)
{
  return p->step_seconds && i >= 0 && i < p->nsteps ? p->step_seconds[i] : 0.0;
}

size_t lm_plan_arena_bytes(const lm_plan *p)
{
  return p->arena_bytes;
}

size_t lm_plan_live_peak_bytes(const lm_plan *p)
{
  return p->live_peak_bytes;
}

size_t lm_plan_unplanned_bytes(const lm_plan *p)
{
  return p->unplanned_bytes;
}

/* ---- run ------------------------------------------------------------------------ */

static int run_steps(lm_plan *p, const float *const *inputs, float *const *outputs,
                     const volatile int *cancel, char *err, size_t errlen)
{
  lm_graph *g = p->g;
  for (int v = 0; v < g->nvalues; v++) {
    switch (p->loc[v]) {
    case LOC_CONST: p->ptr[v] = (void *)g->values[v].data; break;
    case LOC_INPUT: p->ptr[v] = (void *)inputs[p->loc_index[v]]; break;
    case LOC_OUTPUT: p->ptr[v] = outputs[p->loc_index[v]]; break;
    case LOC_ARENA: p->ptr[v] = p->arena + p->loc_offset[v]; break;
    default: p->ptr[v] = NULL; break;
    }
  }
  for (int si = 0; si < p->nsteps; si++) {
    if (cancel && *cancel) return plan_fail(err, errlen, LM_ECANCELED, "cancelled");
    plan_step *s = &p->steps[si];
    struct timespec t0, t1;
    if (p->step_seconds) clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = LM_OK;
    switch (s->kind) {
    case STEP_CONV:
      rc = lm_conv_run_ws(s->conv, p->ptr[s->vin[0]], p->ptr[s->vout[0]], p->conv_ws);
      if (rc < 0)
        return plan_fail(err, errlen, rc, "%s: %s failed (%s)", gsrc(g), s->label,
                    lm_status_string(rc));
      break;
    case STEP_INSTNORM:
      lm_plan_instnorm_act(p->ptr[s->vin[0]], p->ptr[s->vout[0]], s->in_n, s->in_c, s->in_sp,
                           p->ptr[s->vin[1]], p->ptr[s->vin[2]], s->eps, s->act, s->alpha,
                           s->res_mode ? p->ptr[s->vin[3]] : NULL, s->res_mode == 2);
      break;
    case STEP_GROUPNORM:
      lm_plan_groupnorm_act(p->ptr[s->vin[0]], p->ptr[s->vout[0]], s->in_n, s->in_c, s->groups,
                            s->in_sp, p->ptr[s->vin[1]], p->ptr[s->vin[2]], s->eps,
                            p->ptr[s->vin[3]], p->ptr[s->vin[4]], s->act, s->alpha);
      break;
    case STEP_ADD_ACT:
      lm_plan_add_act(p->ptr[s->vin[0]], p->ptr[s->vin[1]], p->ptr[s->vout[0]], s->count,
                      s->act, s->alpha);
      break;
    case STEP_EVAL: {
      for (int j = 0; j < s->nin; j++) s->in[j].data = s->vin[j] >= 0 ? p->ptr[s->vin[j]] : NULL;
      for (int j = 0; j < s->nout; j++)
        s->out[j].data = s->vout[j] >= 0 ? p->ptr[s->vout[j]] : NULL;
      char kerr[256] = "";
      rc = s->k->eval(s->node, s->in, s->nin, s->out, s->nout, kerr, sizeof kerr);
      if (rc < 0)
        return plan_fail(err, errlen, rc, "%s: %s: %s", gsrc(g), s->label,
                    kerr[0] ? kerr : lm_status_string(rc));
      break;
    }
    case STEP_VIEW: break;
    case STEP_COPY:
      memcpy(outputs[s->out_index], p->ptr[s->vin[0]], s->bytes);
      break;
    }
    if (p->step_seconds) {
      clock_gettime(CLOCK_MONOTONIC, &t1);
      p->step_seconds[si] += (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    }
  }
  return LM_OK;
}

int lm_plan_run(lm_plan *p, const float *const *inputs, float *const *outputs,
                const volatile int *cancel, char *err, size_t errlen)
{
  if (err && errlen) err[0] = 0;
  if (p->layout_only)
    return plan_fail(err, errlen, LM_EINVAL, "%s: a layout-only plan cannot run", gsrc(p->g));
  int prev_threads = omp_get_max_threads();
  omp_set_num_threads(p->threads);
  int rc = run_steps(p, inputs, outputs, cancel, err, errlen);
  omp_set_num_threads(prev_threads);
  return rc;
}
