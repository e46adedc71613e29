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
 *   Add), with or without such an activation after it.
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
 * A plan owns its specialised clone of the graph and copies the constants
 * its steps read at run time, so it does not depend on the graph it was
 * built from once lm_plan_new returns. */
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

typedef enum step_kind {
  STEP_EVAL,        /* the op table's eval */
  STEP_CONV,        /* lm_conv_run */
  STEP_INSTNORM,    /* lm_plan_instnorm_act */
  STEP_GROUPNORM,   /* lm_plan_groupnorm_act */
  STEP_VIEW,        /* the output shares the input's bytes: nothing to do */
  STEP_COPY         /* graph output copied from an input or constant */
} step_kind;

typedef struct plan_step {
  step_kind kind;
  const lm_gnode *node;          /* the node it runs (first of a fused group) */
  const lm_cpu_kernel *k;
  lm_conv *conv;
  int nin, nout;
  int *vin, *vout;               /* value indices, -1 = absent */
  lm_rt_tensor *in, *out;        /* shapes fixed at plan time, data per run */
  bool may_view;
  unsigned inplace_inputs;       /* bit j: the output may overwrite input j */
  /* STEP_INSTNORM, STEP_GROUPNORM */
  int64_t in_n, in_c, in_sp, groups;
  double eps;
  int res_mode;                  /* STEP_INSTNORM residual: 0 none, 1 before, 2 after the act */
  lm_act act;
  float alpha;
  /* STEP_COPY */
  int out_index;
  size_t bytes;
  char label[112];
} plan_step;

typedef enum loc_kind { LOC_NONE, LOC_CONST, LOC_INPUT, LOC_OUTPUT, LOC_ARENA } loc_kind;

struct lm_plan {
  lm_graph *g;                   /* the specialised clone */
  int nsteps;
  plan_step *steps;
  loc_kind *loc;                 /* per value */
  int *loc_index;                /* input/output index, or buffer index */
  size_t *loc_offset;            /* arena offset */
  void **ptr;                    /* per value, filled at each run */
  unsigned char *arena;
  size_t arena_bytes, unplanned_bytes, live_peak_bytes;
  int noutputs;
  int *out_values;               /* resolved value of each graph output */
  bool bf16;
  int threads;
  double *step_seconds;          /* per step, accumulated while profiling */
};

/* ---- errors --------------------------------------------------------------- */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static const char *nname(const lm_gnode *n)
{
  return n->name && *n->name ? n->name : "(unnamed)";
}

static const char *vname(const lm_graph *g, int v)
{
  return *g->values[v].name ? g->values[v].name : "(anonymous)";
}

static const char *gsrc(const lm_graph *g)
{
  return g->source && *g->source ? g->source : "graph";
}

/* ---- builder state -------------------------------------------------------- */

typedef struct builder {
  lm_plan *p;
  lm_graph *g;
  int *uses;          /* reads by run-time nodes + graph outputs */
  int *cstart, *cons; /* consumers per value (CSR over run-time nodes) */
  bool *skip;         /* per node: folded (outputs constant) or absorbed */
  char *err;
  size_t errlen;
} builder;

static bool is_const(const lm_graph *g, int v)
{
  return v >= 0 && g->values[v].data != NULL;
}

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
    return fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
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
static int sole_reader(const builder *b, int v)
{
  if (v < 0 || b->uses[v] != 1 || b->cstart[v + 1] - b->cstart[v] != 1) return -1;
  int c = b->cons[b->cstart[v]];
  return b->skip[c] ? -1 : c;
}

static bool op_is(const lm_gnode *n, const char *op)
{
  return (!n->domain || !*n->domain || !strcmp(n->domain, "ai.onnx")) && !strcmp(n->op, op);
}

/* Value of a one-element float constant. */
static bool scalar_const(const lm_graph *g, int v, double *out)
{
  if (!is_const(g, v)) return false;
  const lm_gvalue *val = &g->values[v];
  if (lm_gvalue_numel(val) != 1) return false;
  if (val->dt == LM_F32) *out = *(const float *)val->data;
  else if (val->dt == LM_F64) *out = *(const double *)val->data;
  else return false;
  return true;
}

static bool near(double a, double b)
{
  return fabs(a - b) <= 1e-6 * fabs(b);
}

/* The other input of a two-input node, given one of them. */
static int other_input(const lm_gnode *n, int v)
{
  if (n->nin != 2) return -1;
  if (n->in[0] == v) return n->in[1];
  if (n->in[1] == v) return n->in[0];
  return -1;
}

/* ---- activation matching --------------------------------------------------- */

typedef struct act_match {
  lm_act act;
  float alpha, beta;
  int final_value;       /* the value the fused step writes */
  int absorbed[6];       /* nodes the fused step replaces */
  int nabsorbed;
  char name[24];
} act_match;

/* A single-node activation reading v as its data input. */
static bool match_simple_act(const builder *b, int node, int v, act_match *m)
{
  const lm_graph *g = b->g;
  const lm_gnode *a = &g->nodes[node];
  if (a->nin < 1 || a->in[0] != v || a->nout != 1 || a->out[0] < 0) return false;
  m->alpha = m->beta = 0;
  if (op_is(a, "Relu")) m->act = LM_ACT_RELU;
  else if (op_is(a, "LeakyRelu")) {
    m->act = LM_ACT_LEAKY_RELU;
    m->alpha = (float)lm_gnode_attr_float(a, "alpha", 0.01);
  } else if (op_is(a, "PRelu")) {
    double s;
    if (a->nin != 2 || !scalar_const(g, a->in[1], &s)) return false;
    m->act = LM_ACT_LEAKY_RELU;
    m->alpha = (float)s;
  } else if (op_is(a, "Elu")) {
    m->act = LM_ACT_ELU;
    m->alpha = (float)lm_gnode_attr_float(a, "alpha", 1.0);
  } else if (op_is(a, "Sigmoid")) m->act = LM_ACT_SIGMOID;
  else if (op_is(a, "Tanh")) m->act = LM_ACT_TANH;
  else if (op_is(a, "Gelu")) {
    if (strcmp(lm_gnode_attr_string(a, "approximate", "none"), "none")) return false;
    m->act = LM_ACT_GELU;
  } else if (op_is(a, "Clip")) {
    double lo = -FLT_MAX, hi = FLT_MAX;
    if (a->nin >= 2 && a->in[1] >= 0 && !scalar_const(g, a->in[1], &lo)) return false;
    if (a->nin >= 3 && a->in[2] >= 0 && !scalar_const(g, a->in[2], &hi)) return false;
    lo = lm_gnode_attr_float(a, "min", lo);   /* opset < 11 */
    hi = lm_gnode_attr_float(a, "max", hi);
    m->act = LM_ACT_CLIP;
    m->alpha = (float)lo;
    m->beta = (float)hi;
  } else
    return false;
  snprintf(m->name, sizeof m->name, "%s", a->op);
  m->final_value = a->out[0];
  m->absorbed[0] = node;
  m->nabsorbed = 1;
  return true;
}

/* x * sigmoid(x): Sigmoid(v) read only by Mul(v, s). */
static bool match_silu(const builder *b, int v, act_match *m)
{
  const lm_graph *g = b->g;
  if (b->uses[v] != 2 || b->cstart[v + 1] - b->cstart[v] != 2) return false;
  int c0 = b->cons[b->cstart[v]], c1 = b->cons[b->cstart[v] + 1];
  for (int pass = 0; pass < 2; pass++) {
    int si = pass ? c1 : c0, mi = pass ? c0 : c1;
    const lm_gnode *s = &g->nodes[si], *mul = &g->nodes[mi];
    if (b->skip[si] || b->skip[mi] || !op_is(s, "Sigmoid") || !op_is(mul, "Mul")) continue;
    if (s->in[0] != v || s->nout != 1 || sole_reader(b, s->out[0]) != mi) continue;
    if (other_input(mul, v) != s->out[0] || mul->nout != 1) continue;
    m->act = LM_ACT_SILU;
    m->alpha = m->beta = 0;
    m->final_value = mul->out[0];
    m->absorbed[0] = si;
    m->absorbed[1] = mi;
    m->nabsorbed = 2;
    snprintf(m->name, sizeof m->name, "SiLU");
    return true;
  }
  return false;
}

/* PyTorch's exported GELU: Div(v, sqrt 2) -> Erf -> Add(1) -> Mul(v, .)
** -> Mul(., 0.5). */
static bool match_erf_gelu(const builder *b, int v, act_match *m)
{
  const lm_graph *g = b->g;
  if (b->uses[v] != 2 || b->cstart[v + 1] - b->cstart[v] != 2) return false;
  for (int pass = 0; pass < 2; pass++) {
    int di = b->cons[b->cstart[v] + pass], m1i = b->cons[b->cstart[v] + 1 - pass];
    if (b->skip[di] || b->skip[m1i]) continue;
    const lm_gnode *d = &g->nodes[di];
    double c;
    bool div_ok = op_is(d, "Div") && d->nin == 2 && d->in[0] == v &&
                  scalar_const(g, d->in[1], &c) && near(c, sqrt(2.0));
    bool mul_ok = op_is(d, "Mul") && scalar_const(g, other_input(d, v), &c) &&
                  near(c, 1 / sqrt(2.0));
    if (!(div_ok || mul_ok) || d->nout != 1) continue;
    int ei = sole_reader(b, d->out[0]);
    if (ei < 0 || !op_is(&g->nodes[ei], "Erf")) continue;
    const lm_gnode *e = &g->nodes[ei];
    int ai = sole_reader(b, e->out[0]);
    if (ai < 0 || !op_is(&g->nodes[ai], "Add")) continue;
    const lm_gnode *a = &g->nodes[ai];
    if (!scalar_const(g, other_input(a, e->out[0]), &c) || !near(c, 1.0)) continue;
    if (sole_reader(b, a->out[0]) != m1i) continue;
    const lm_gnode *m1 = &g->nodes[m1i];
    if (!op_is(m1, "Mul") || other_input(m1, v) != a->out[0]) continue;
    int m2i = sole_reader(b, m1->out[0]);
    if (m2i < 0 || !op_is(&g->nodes[m2i], "Mul")) continue;
    const lm_gnode *m2 = &g->nodes[m2i];
    if (!scalar_const(g, other_input(m2, m1->out[0]), &c) || !near(c, 0.5)) continue;
    m->act = LM_ACT_GELU;
    m->alpha = m->beta = 0;
    m->final_value = m2->out[0];
    int ids[5] = {di, ei, ai, m1i, m2i};
    memcpy(m->absorbed, ids, sizeof ids);
    m->nabsorbed = 5;
    snprintf(m->name, sizeof m->name, "Gelu(erf)");
    return true;
  }
  return false;
}

static bool match_conv_act(const builder *b, int v, act_match *m)
{
  int r = sole_reader(b, v);
  if (r >= 0) return match_simple_act(b, r, v, m);
  return match_silu(b, v, m) || match_erf_gelu(b, v, m);
}

/* ---- steps ------------------------------------------------------------------ */

static plan_step *new_step(builder *b, step_kind kind, const lm_gnode *n, int nin, int nout)
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

static void set_rt(const lm_graph *g, lm_rt_tensor *t, int v)
{
  memset(t, 0, sizeof *t);
  if (v < 0) return;
  const lm_gvalue *val = &g->values[v];
  t->dt = val->dt;
  t->ndim = val->ndim;
  memcpy(t->shape, val->shape, sizeof t->shape);
}

/* A value computed at run time must be dense float32 of known shape. */
static int check_runtime_value(builder *b, const lm_gnode *n, int v)
{
  const lm_gvalue *val = &b->g->values[v];
  if (!val->dt_known || lm_gvalue_numel(val) < 0)
    return fail(b->err, b->errlen, LM_EINVAL,
                "%s: node '%s' (%s): the shape of output '%s' is not known for these input "
                "shapes", gsrc(b->g), nname(n), n->op, vname(b->g, v));
  if (val->dt != LM_F32)
    return fail(b->err, b->errlen, LM_EINVAL,
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
    return fail(b->err, b->errlen, LM_EINVAL, "%s: node '%s': op %s has no CPU kernel",
                gsrc(b->g), nname(n), n->op);
  for (int j = 0; j < n->nout; j++) {
    int rc;
    if (n->out[j] >= 0 && (rc = check_runtime_value(b, n, n->out[j])) < 0) return rc;
  }
  plan_step *s = new_step(b, STEP_EVAL, n, n->nin, n->nout);
  if (!s) return fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  s->k = k;
  for (int j = 0; j < n->nin; j++) {
    s->vin[j] = n->in[j] >= 0 ? lm_graph_resolve(b->g, n->in[j]) : -1;
    set_rt(b->g, &s->in[j], s->vin[j]);
  }
  for (int j = 0; j < n->nout; j++) {
    s->vout[j] = n->out[j];
    set_rt(b->g, &s->out[j], s->vout[j]);
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

/* The activations the fused norm kernels apply (plan_fused.c). */
static bool norm_act_supported(lm_act act)
{
  return act == LM_ACT_RELU || act == LM_ACT_LEAKY_RELU || act == LM_ACT_ELU ||
         act == LM_ACT_SIGMOID || act == LM_ACT_TANH || act == LM_ACT_GELU;
}

/* The other input of Add node ai when it can be added element by element
** inside a step placed at node ni: a run-time float32 of shape like x, made
** before node ni.  -1 otherwise. */
static int residual_input(const builder *b, int ai, int v, const lm_gvalue *xv, int ni)
{
  const lm_graph *g = b->g;
  const lm_gnode *a = &g->nodes[ai];
  if (!op_is(a, "Add") || a->nout != 1) return -1;
  int r = other_input(a, v);
  if (r < 0 || r == v || is_const(g, r)) return -1;
  const lm_gvalue *rv = &g->values[r];
  if (rv->dt != LM_F32 || rv->ndim != xv->ndim ||
      memcmp(rv->shape, xv->shape, sizeof(int64_t) * (size_t)xv->ndim))
    return -1;
  if (!rv->is_input && (rv->producer < 0 || rv->producer >= ni)) return -1;
  return r;
}

/* InstanceNormalization with what follows it when it has one reader each:
** an activation, and a residual Add before or after the activation
** (ResEncUNet: IN, Add, LeakyRelu; MONAI UNet: IN, PRelu, Add). */
static int try_instnorm_step(builder *b, int ni, bool *done)
{
  *done = false;
  lm_graph *g = b->g;
  const lm_gnode *n = &g->nodes[ni];
  if (n->nin != 3 || n->nout != 1 || n->in[0] < 0) return LM_OK;
  int x = lm_graph_resolve(g, n->in[0]);
  const lm_gvalue *xv = &g->values[x];
  if (is_const(g, x) || xv->dt != LM_F32 || xv->ndim < 3) return LM_OK;
  int64_t c = xv->shape[1];
  for (int j = 1; j < 3; j++) {
    const lm_gvalue *pv = &g->values[lm_graph_resolve(g, n->in[j])];
    if (!pv->data || pv->dt != LM_F32 || lm_gvalue_numel(pv) != c) return LM_OK;
  }
  act_match m = {.act = LM_ACT_NONE};
  int cur = n->out[0], absorbed[3], nabs = 0, res = -1, res_mode = 0;
  int r = sole_reader(b, cur);
  act_match mm;
  if (r >= 0 && match_simple_act(b, r, cur, &mm) && norm_act_supported(mm.act)) {
    m = mm;
    absorbed[nabs++] = r;
    cur = m.final_value;
    int a = sole_reader(b, cur);
    if (a >= 0 && (res = residual_input(b, a, cur, xv, ni)) >= 0) {
      res_mode = 2;
      absorbed[nabs++] = a;
      cur = g->nodes[a].out[0];
    }
  } else if (r >= 0 && (res = residual_input(b, r, cur, xv, ni)) >= 0) {
    res_mode = 1;
    absorbed[nabs++] = r;
    cur = g->nodes[r].out[0];
    int ac = sole_reader(b, cur);
    if (ac >= 0 && match_simple_act(b, ac, cur, &mm) && norm_act_supported(mm.act)) {
      m = mm;
      absorbed[nabs++] = ac;
      cur = m.final_value;
    }
  }
  if (!nabs) return LM_OK;
  int rc = check_runtime_value(b, &g->nodes[absorbed[nabs - 1]], cur);
  if (rc < 0) return rc;
  plan_step *s = new_step(b, STEP_INSTNORM, n, res >= 0 ? 4 : 3, 1);
  if (!s) return fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  for (int j = 0; j < 3; j++) {
    s->vin[j] = lm_graph_resolve(g, n->in[j]);
    set_rt(g, &s->in[j], s->vin[j]);
  }
  if (res >= 0) {
    s->vin[3] = res;
    set_rt(g, &s->in[3], res);
  }
  s->vout[0] = cur;
  set_rt(g, &s->out[0], cur);
  s->in_n = xv->shape[0];
  s->in_c = c;
  s->in_sp = 1;
  for (int d = 2; d < xv->ndim; d++) s->in_sp *= xv->shape[d];
  s->eps = lm_gnode_attr_float(n, "epsilon", 1e-5);
  s->act = m.act;
  s->alpha = m.alpha;
  s->res_mode = res_mode;
  /* Each element of x and of the residual is read before it is written. */
  s->inplace_inputs = res >= 0 ? (1u | 8u) : 1u;
  for (int i = 0; i < nabs; i++) b->skip[absorbed[i]] = true;
  snprintf(s->label, sizeof s->label, "InstanceNormalization%s%s%s%s '%s'",
           res_mode == 1 ? "+Add" : "", m.act != LM_ACT_NONE ? "+" : "",
           m.act != LM_ACT_NONE ? m.name : "", res_mode == 2 ? "+Add" : "", nname(n));
  *done = true;
  return LM_OK;
}

/* A constant holding one float per channel of an x of rank xnd,
** broadcastable against it along axis 1 only ([C,1,1,1], [1,C,1,1,1]). */
static const float *per_channel(const lm_graph *g, int v, int xnd, int64_t c)
{
  if (!is_const(g, v)) return NULL;
  const lm_gvalue *val = &g->values[v];
  if (val->dt != LM_F32 || lm_gvalue_numel(val) != c || val->ndim > xnd) return NULL;
  int ci = val->ndim - (xnd - 1);   /* x's axis 1, right-aligned */
  for (int d = 0; d < val->ndim; d++)
    if (val->shape[d] != (d == ci ? c : 1)) return NULL;
  if (ci < 0 && c != 1) return NULL;
  return val->data;
}

/* Reshape(x -> [N, G, -1]) -> InstanceNormalization -> Reshape(-> x's shape)
** -> Mul(gamma) -> Add(beta) [-> activation], starting at the first Reshape. */
static int try_groupnorm_step(builder *b, int ri, bool *done)
{
  *done = false;
  lm_graph *g = b->g;
  const lm_gnode *r1 = &g->nodes[ri];
  if (r1->nin < 1 || r1->nout != 1 || r1->in[0] < 0) return LM_OK;
  int x = lm_graph_resolve(g, r1->in[0]);
  const lm_gvalue *xv = &g->values[x], *r1v = &g->values[r1->out[0]];
  if (is_const(g, x) || xv->dt != LM_F32 || xv->ndim < 3 || r1v->ndim != 3) return LM_OK;
  int64_t n = xv->shape[0], c = xv->shape[1], groups = r1v->shape[1];
  int64_t sp = 1;
  for (int d = 2; d < xv->ndim; d++) sp *= xv->shape[d];
  if (r1v->shape[0] != n || groups < 1 || c % groups || r1v->shape[2] != c / groups * sp)
    return LM_OK;
  int ini = sole_reader(b, r1->out[0]);
  if (ini < 0 || !op_is(&g->nodes[ini], "InstanceNormalization")) return LM_OK;
  const lm_gnode *in = &g->nodes[ini];
  if (in->nin != 3 || in->in[0] != r1->out[0] || in->nout != 1) return LM_OK;
  for (int j = 1; j < 3; j++) {
    const lm_gvalue *pv = &g->values[in->in[j]];
    if (!is_const(g, in->in[j]) || pv->dt != LM_F32 || lm_gvalue_numel(pv) != groups)
      return LM_OK;
  }
  int r2i = sole_reader(b, in->out[0]);
  if (r2i < 0 || !op_is(&g->nodes[r2i], "Reshape")) return LM_OK;
  const lm_gnode *r2 = &g->nodes[r2i];
  const lm_gvalue *r2v = &g->values[r2->out[0]];
  if (r2->in[0] != in->out[0] || r2->nout != 1 || r2v->ndim != xv->ndim ||
      memcmp(r2v->shape, xv->shape, sizeof(int64_t) * (size_t)xv->ndim))
    return LM_OK;
  int mi = sole_reader(b, r2->out[0]);
  if (mi < 0 || !op_is(&g->nodes[mi], "Mul")) return LM_OK;
  const lm_gnode *mul = &g->nodes[mi];
  const float *gamma = per_channel(g, other_input(mul, r2->out[0]), xv->ndim, c);
  if (!gamma || mul->nout != 1) return LM_OK;
  int ai = sole_reader(b, mul->out[0]);
  if (ai < 0 || !op_is(&g->nodes[ai], "Add")) return LM_OK;
  const lm_gnode *add = &g->nodes[ai];
  const float *beta = per_channel(g, other_input(add, mul->out[0]), xv->ndim, c);
  if (!beta || add->nout != 1) return LM_OK;
  act_match m = {.act = LM_ACT_NONE, .final_value = add->out[0]};
  int acti = sole_reader(b, add->out[0]);
  act_match mm;
  if (acti >= 0 && match_simple_act(b, acti, add->out[0], &mm) && norm_act_supported(mm.act))
    m = mm;
  int rc = check_runtime_value(b, add, m.final_value);
  if (rc < 0) return rc;
  plan_step *s = new_step(b, STEP_GROUPNORM, in, 5, 1);
  if (!s) return fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  int vins[5] = {x, in->in[1], in->in[2], other_input(mul, r2->out[0]),
                 other_input(add, mul->out[0])};
  for (int j = 0; j < 5; j++) {
    s->vin[j] = lm_graph_resolve(g, vins[j]);
    set_rt(g, &s->in[j], s->vin[j]);
  }
  s->vout[0] = m.final_value;
  set_rt(g, &s->out[0], m.final_value);
  s->in_n = n;
  s->in_c = c;
  s->groups = groups;
  s->in_sp = sp;
  s->eps = lm_gnode_attr_float(in, "epsilon", 1e-5);
  s->act = m.act;
  s->alpha = m.alpha;
  s->inplace_inputs = 1;   /* each element is read before it is written */
  b->skip[ini] = b->skip[r2i] = b->skip[mi] = b->skip[ai] = true;
  if (m.nabsorbed) b->skip[acti] = true;
  snprintf(s->label, sizeof s->label, "GroupNorm%s%s '%s'", m.nabsorbed ? "+" : "",
           m.nabsorbed ? m.name : "", nname(in));
  *done = true;
  return LM_OK;
}

/* ---- convolutions ------------------------------------------------------------ */

static int conv_fail(builder *b, const lm_gnode *n, const char *what)
{
  return fail(b->err, b->errlen, LM_EINVAL, "%s: node '%s' (%s): %s", gsrc(b->g), nname(n),
              n->op, what);
}

/* Fill d from the node's attributes and its inferred shapes. */
static int conv_desc(builder *b, const lm_gnode *n, lm_conv_desc *d)
{
  lm_graph *g = b->g;
  bool tr = op_is(n, "ConvTranspose");
  memset(d, 0, sizeof *d);
  if (n->nin < 2 || n->in[0] < 0 || n->in[1] < 0 || n->nout != 1)
    return conv_fail(b, n, "needs inputs X and W and one output");
  const lm_gvalue *x = &g->values[lm_graph_resolve(g, n->in[0])];
  const lm_gvalue *w = &g->values[lm_graph_resolve(g, n->in[1])];
  const lm_gvalue *y = &g->values[n->out[0]];
  if (!w->data) return conv_fail(b, n, "the weight is not a constant");
  if (w->dt != LM_F32) return conv_fail(b, n, "the weight is not float32");
  if (x->ndim < 3 || x->ndim > 5 || w->ndim != x->ndim || y->ndim != x->ndim)
    return conv_fail(b, n, "1, 2 or 3 spatial dims are supported");
  if (n->nin > 2 && n->in[2] >= 0) {
    const lm_gvalue *bv = &g->values[lm_graph_resolve(g, n->in[2])];
    if (!bv->data || bv->dt != LM_F32) return conv_fail(b, n, "the bias is not a float32 constant");
  }
  int nsp = x->ndim - 2;
  d->nsp = nsp;
  d->n = x->shape[0];
  d->cin = x->shape[1];
  d->group = lm_gnode_attr_int(n, "group", 1);
  if (d->group < 1) return conv_fail(b, n, "attribute 'group' must be at least 1");
  d->cout = tr ? w->shape[1] * d->group : w->shape[0];
  if (y->shape[1] != d->cout) return conv_fail(b, n, "output channels do not match the weight");
  d->transposed = tr;
  int cnt;
  const int64_t *strides = lm_gnode_attr_ints(n, "strides", &cnt);
  if (strides && cnt != nsp) return conv_fail(b, n, "attribute 'strides' has the wrong length");
  const int64_t *dil = lm_gnode_attr_ints(n, "dilations", &cnt);
  if (dil && cnt != nsp) return conv_fail(b, n, "attribute 'dilations' has the wrong length");
  const int64_t *pads = lm_gnode_attr_ints(n, "pads", &cnt);
  if (pads && cnt != 2 * nsp) return conv_fail(b, n, "attribute 'pads' has the wrong length");
  const int64_t *opad = lm_gnode_attr_ints(n, "output_padding", &cnt);
  if (opad && cnt != nsp) opad = NULL;
  const int64_t *oshape = lm_gnode_attr_ints(n, "output_shape", &cnt);
  if (oshape && cnt != nsp) oshape = NULL;
  const char *auto_pad = lm_gnode_attr_string(n, "auto_pad", "NOTSET");
  bool same_upper = !strcmp(auto_pad, "SAME_UPPER"), same_lower = !strcmp(auto_pad, "SAME_LOWER");
  for (int i = 0; i < nsp; i++) {
    d->in[i] = x->shape[2 + i];
    d->out[i] = y->shape[2 + i];
    d->k[i] = w->shape[2 + i];
    d->stride[i] = strides ? strides[i] : 1;
    d->dil[i] = dil ? dil[i] : 1;
    d->pad_lo[i] = pads ? pads[i] : 0;
    d->pad_hi[i] = pads ? pads[nsp + i] : 0;
    int64_t ext = (d->k[i] - 1) * d->dil[i] + 1;
    if (!strcmp(auto_pad, "VALID")) {
      d->pad_lo[i] = d->pad_hi[i] = 0;
    } else if (!tr && (same_upper || same_lower)) {
      int64_t o = (d->in[i] + d->stride[i] - 1) / d->stride[i];
      int64_t total = (o - 1) * d->stride[i] + ext - d->in[i];
      if (total < 0) total = 0;
      d->pad_lo[i] = same_upper ? total / 2 : total - total / 2;
      d->pad_hi[i] = total - d->pad_lo[i];
    } else if (tr && (same_upper || same_lower || oshape)) {
      /* ONNX ConvTranspose: total padding from the wanted output extent. */
      int64_t want = oshape ? oshape[i] : d->in[i] * d->stride[i];
      int64_t total = d->stride[i] * (d->in[i] - 1) + (opad ? opad[i] : 0) + ext - want;
      if (total < 0) total = 0;
      if (same_upper) {
        d->pad_lo[i] = total / 2;
        d->pad_hi[i] = total - total / 2;
      } else {
        d->pad_lo[i] = total - total / 2;
        d->pad_hi[i] = total / 2;
      }
    }
  }
  d->bf16 = b->p->bf16;
  return LM_OK;
}

static int add_conv_step(builder *b, int ni)
{
  lm_graph *g = b->g;
  const lm_gnode *n = &g->nodes[ni];
  lm_conv_desc d;
  int rc = conv_desc(b, n, &d);
  if (rc < 0) return rc;
  act_match m = {.act = LM_ACT_NONE, .final_value = n->out[0]};
  if (!g->values[n->out[0]].is_output) {
    act_match mm;
    if (match_conv_act(b, n->out[0], &mm)) m = mm;
  }
  const lm_gnode *last = m.nabsorbed ? &g->nodes[m.absorbed[m.nabsorbed - 1]] : n;
  if ((rc = check_runtime_value(b, last, m.final_value)) < 0) return rc;
  d.act = m.act;
  d.alpha = m.alpha;
  d.beta = m.beta;
  const float *w = g->values[lm_graph_resolve(g, n->in[1])].data;
  const float *bias = n->nin > 2 && n->in[2] >= 0
                          ? g->values[lm_graph_resolve(g, n->in[2])].data : NULL;
  plan_step *s = new_step(b, STEP_CONV, n, 1, 1);
  if (!s) return fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  char cerr[256] = "";
  rc = lm_conv_new(&d, w, bias, &s->conv, cerr, sizeof cerr);
  if (rc < 0)
    return fail(b->err, b->errlen, rc, "%s: node '%s' (%s): %s", gsrc(g), nname(n), n->op,
                cerr[0] ? cerr : lm_status_string(rc));
  s->vin[0] = lm_graph_resolve(g, n->in[0]);
  set_rt(g, &s->in[0], s->vin[0]);
  s->vout[0] = m.final_value;
  set_rt(g, &s->out[0], m.final_value);
  for (int i = 0; i < m.nabsorbed; i++) b->skip[m.absorbed[i]] = true;
  if (m.nabsorbed)
    snprintf(s->label, sizeof s->label, "%s+%s '%s'", n->op, m.name, nname(n));
  else
    snprintf(s->label, sizeof s->label, "%s '%s'", n->op, nname(n));
  return LM_OK;
}

/* ---- memory ------------------------------------------------------------------ */

static size_t value_bytes(const lm_graph *g, int v)
{
  return (size_t)lm_gvalue_numel(&g->values[v]) * lm_dtype_size(g->values[v].dt);
}

/* Buffers of the memory plan: a root buffer is laid out in the arena; a
 * buffer embedded in another (a Concat input inside the Concat output) lives
 * at a fixed offset inside its parent. */
typedef struct mem_state {
  lm_plan_buffer *bufs;
  int *parent;
  size_t *sub;
  int n;
} mem_state;

static int mem_root(const mem_state *m, int b)
{
  while (m->parent[b] >= 0) b = m->parent[b];
  return b;
}

static int mem_new(mem_state *m, size_t size, int start, int end)
{
  m->bufs[m->n] = (lm_plan_buffer){.size = size, .start = start, .end = end};
  m->parent[m->n] = -1;
  m->sub[m->n] = 0;
  return m->n++;
}

/* The inputs of a Concat whose blocks are contiguous in its output (every
** axis before the concat axis has extent 1) are written in place: each
** input's buffer is embedded in the output's at its block's offset, and the
** Concat itself does nothing.  All inputs or none. */
static bool concat_in_place(builder *b, mem_state *m, plan_step *st, int ybuf)
{
  lm_graph *g = b->g;
  lm_plan *p = b->p;
  if (st->kind != STEP_EVAL || !op_is(st->node, "Concat") || st->nout != 1) return false;
  const lm_gvalue *y = &g->values[st->vout[0]];
  int64_t axis = lm_gnode_attr_int(st->node, "axis", 0);
  if (axis < 0) axis += y->ndim;
  if (axis < 0 || axis >= y->ndim) return false;
  for (int d = 0; d < axis; d++)
    if (y->shape[d] != 1) return false;
  for (int j = 0; j < st->nin; j++) {
    int v = st->vin[j];
    if (v < 0 || p->loc[v] != LOC_ARENA) return false;
    int bi = p->loc_index[v];
    if (m->parent[bi] >= 0 || bi == ybuf || m->bufs[bi].size != value_bytes(g, v)) return false;
    for (int k = 0; k < j; k++)
      if (p->loc_index[st->vin[k]] == bi) return false;   /* one buffer, two blocks */
  }
  size_t off = 0;
  for (int j = 0; j < st->nin; j++) {
    int bi = p->loc_index[st->vin[j]];
    m->parent[bi] = ybuf;
    m->sub[bi] = off;
    off += m->bufs[bi].size;
    if (m->bufs[bi].start < m->bufs[ybuf].start) m->bufs[ybuf].start = m->bufs[bi].start;
    if (m->bufs[bi].end > m->bufs[ybuf].end) m->bufs[ybuf].end = m->bufs[bi].end;
  }
  st->kind = STEP_VIEW;
  size_t len = strlen(st->label);
  snprintf(st->label + len, sizeof st->label - len, " (in place)");
  return true;
}

/* The input step st (number s) may overwrite with its output of the given
** size: one allowed by the op, in the arena, of the output's size, with
** everything sharing its buffer dead after this step, and no other input of
** the step in that buffer.  -1 when none. */
static int inplace_input(const lm_plan *p, const mem_state *m, const plan_step *st, int s,
                         size_t bytes)
{
  const lm_graph *g = p->g;
  for (int k = 0; k < st->nin && k < 32; k++) {
    int v = st->vin[k];
    if (!(st->inplace_inputs & (1u << k)) || v < 0 || p->loc[v] != LOC_ARENA) continue;
    if (value_bytes(g, v) != bytes) continue;
    int r = mem_root(m, p->loc_index[v]);
    if (m->bufs[r].end != s) continue;
    bool shared = false;
    for (int o = 0; o < st->nin && !shared; o++)
      shared = o != k && st->vin[o] >= 0 && st->vin[o] != v && p->loc[st->vin[o]] == LOC_ARENA &&
               mem_root(m, p->loc_index[st->vin[o]]) == r;
    if (!shared) return k;
  }
  return -1;
}

static int plan_memory(builder *b)
{
  lm_plan *p = b->p;
  lm_graph *g = b->g;
  int nv = g->nvalues;
  int *def = malloc(sizeof *def * ((size_t)nv + 1));
  int *last = malloc(sizeof *last * ((size_t)nv + 1));
  mem_state m = {.bufs = calloc((size_t)nv + 1, sizeof *m.bufs),
                 .parent = calloc((size_t)nv + 1, sizeof *m.parent),
                 .sub = calloc((size_t)nv + 1, sizeof *m.sub)};
  lm_plan_buffer *roots = calloc((size_t)nv + 1, sizeof *roots);
  int *root_of = calloc((size_t)nv + 1, sizeof *root_of);
  int rc = LM_OK;
  if (!def || !last || !m.bufs || !m.parent || !m.sub || !roots || !root_of) {
    rc = fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
    goto done;
  }
  for (int v = 0; v < nv; v++) def[v] = last[v] = -1;
  for (int s = 0; s < p->nsteps; s++) {
    const plan_step *st = &p->steps[s];
    for (int j = 0; j < st->nin; j++)
      if (st->vin[j] >= 0) last[st->vin[j]] = s;
    for (int j = 0; j < st->nout; j++)
      if (st->vout[j] >= 0 && def[st->vout[j]] < 0) def[st->vout[j]] = last[st->vout[j]] = s;
  }
  /* Run-time outputs of steps that are not graph outputs go to the arena;
   * views and in-place steps join their input's buffer, Concat inputs may
   * move into the Concat's.  A buffer may be overwritten in place only when
   * everything sharing its root is dead after this step. */
  size_t unplanned = 0;
  for (int s = 0; s < p->nsteps; s++) {
    plan_step *st = &p->steps[s];
    if (st->kind == STEP_COPY) continue;
    for (int j = 0; j < st->nout; j++) {
      int v = st->vout[j];
      if (v < 0 || p->loc[v] != LOC_NONE) continue;
      size_t bytes = value_bytes(g, v);
      unplanned += (bytes + 63) & ~(size_t)63;
      int in0 = st->nin ? st->vin[0] : -1;
      if (j == 0 && st->may_view && in0 >= 0 && p->loc[in0] == LOC_ARENA &&
          value_bytes(g, in0) == bytes) {
        int r = mem_root(&m, p->loc_index[in0]);
        if (last[v] > m.bufs[r].end) m.bufs[r].end = last[v];
        p->loc[v] = LOC_ARENA;
        p->loc_index[v] = p->loc_index[in0];
        st->kind = STEP_VIEW;
        size_t len = strlen(st->label);
        snprintf(st->label + len, sizeof st->label - len, " (view)");
        continue;
      }
      int k = j == 0 ? inplace_input(p, &m, st, s, bytes) : -1;
      if (k >= 0) {
        int r = mem_root(&m, p->loc_index[st->vin[k]]);
        if (last[v] > m.bufs[r].end) m.bufs[r].end = last[v];
        p->loc[v] = LOC_ARENA;
        p->loc_index[v] = p->loc_index[st->vin[k]];
        continue;
      }
      p->loc[v] = LOC_ARENA;
      p->loc_index[v] = mem_new(&m, bytes, s, last[v]);
      if (j == 0) concat_in_place(b, &m, st, p->loc_index[v]);
    }
  }
  /* Lay out the roots; everything else sits at an offset inside one. */
  int nroots = 0;
  for (int i = 0; i < m.n; i++)
    if (m.parent[i] < 0) {
      root_of[i] = nroots;
      roots[nroots++] = m.bufs[i];
    }
  /* What is alive at once bounds any layout from below. */
  for (int t = 0; t < p->nsteps; t++) {
    size_t live = 0;
    for (int i = 0; i < nroots; i++)
      if (roots[i].start <= t && t <= roots[i].end) live += (roots[i].size + 63) & ~(size_t)63;
    if (live > p->live_peak_bytes) p->live_peak_bytes = live;
  }
  size_t total = lm_plan_layout(roots, nroots);
  if (total == (size_t)-1) {
    rc = fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
    goto done;
  }
  p->arena_bytes = total;
  p->unplanned_bytes = unplanned;
  if (total) {
    p->arena = aligned_alloc(64, total);
    if (!p->arena) {
      rc = fail(b->err, b->errlen, LM_ENOMEM, "%s: out of memory for the %zu-byte arena",
                gsrc(g), total);
      goto done;
    }
  }
  for (int v = 0; v < nv; v++) {
    if (p->loc[v] != LOC_ARENA) continue;
    size_t off = 0;
    int bi = p->loc_index[v];
    for (; m.parent[bi] >= 0; bi = m.parent[bi]) off += m.sub[bi];
    p->loc_offset[v] = roots[root_of[bi]].offset + off;
  }
done:
  free(def);
  free(last);
  free(m.bufs);
  free(m.parent);
  free(m.sub);
  free(roots);
  free(root_of);
  return rc;
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
      return fail(b->err, b->errlen, LM_EINVAL,
                  "%s: graph output '%s' is %s%s; outputs must be float32 of known shape",
                  gsrc(g), vname(g, g->outputs[i]), lm_dtype_name(val->dt),
                  lm_gvalue_numel(val) < 0 ? " of unknown shape" : "");
    if (p->loc[v] == LOC_NONE && !val->data && !val->is_input) {
      p->loc[v] = LOC_OUTPUT;
      p->loc_index[v] = i;
      continue;
    }
    plan_step *s = new_step(b, STEP_COPY, NULL, 1, 0);
    if (!s) return fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
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
      return fail(b->err, b->errlen, LM_EINVAL, "%s: input '%s' is %s; plans take float32",
                  gsrc(g), vname(g, v), lm_dtype_name(g->values[v].dt));
    p->loc[v] = LOC_INPUT;
    p->loc_index[v] = i;
  }
  for (int v = 0; v < g->nvalues; v++)
    if (g->values[v].data && g->values[v].alias < 0) p->loc[v] = LOC_CONST;
  if ((rc = build_uses(b)) < 0) return rc;
  p->steps = calloc((size_t)g->nnodes + (size_t)g->noutputs + 1, sizeof *p->steps);
  if (!p->steps) return fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  for (int i = 0; i < g->nnodes; i++) {
    if (b->skip[i]) continue;
    const lm_gnode *n = &g->nodes[i];
    if (op_is(n, "Conv") || op_is(n, "ConvTranspose")) {
      rc = add_conv_step(b, i);
    } else if (op_is(n, "InstanceNormalization")) {
      bool done;
      rc = try_instnorm_step(b, i, &done);
      if (rc == LM_OK && !done) rc = add_eval_step(b, i);
    } else if (op_is(n, "Reshape")) {
      bool done;
      rc = try_groupnorm_step(b, i, &done);
      if (rc == LM_OK && !done) rc = add_eval_step(b, i);
    } else {
      rc = add_eval_step(b, i);
    }
    if (rc < 0) return rc;
  }
  if ((rc = plan_outputs(b)) < 0) return rc;
  if ((rc = plan_memory(b)) < 0) return rc;
  /* The plan keeps reading the constants of its eval steps: own them. */
  bool *copied = calloc((size_t)g->nvalues + 1, sizeof *copied);
  if (!copied) return fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  for (int s = 0; s < p->nsteps; s++) {
    const plan_step *st = &p->steps[s];
    if (st->kind == STEP_CONV || st->kind == STEP_VIEW) continue;
    for (int j = 0; j < st->nin; j++) {
      int v = st->vin[j];
      if (v < 0 || !g->values[v].data || copied[v]) continue;
      void *d = lm_graph_alloc(g, g->values[v].nbytes ? g->values[v].nbytes : 1);
      if (!d) {
        free(copied);
        return fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
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
  if (!p) return fail(err, errlen, LM_ENOMEM, "out of memory");
  p->threads = opt && opt->threads > 0 ? opt->threads : omp_get_num_procs();
  p->bf16 = opt && opt->bf16 && lm_cpu_has_bf16();
  p->g = lm_graph_clone(g);
  if (!p->g) {
    free(p);
    return fail(err, errlen, LM_ENOMEM, "out of memory");
  }
  int rc = lm_graph_specialize(p->g, ndims, shapes);
  if (rc < 0) {
    fail(err, errlen, rc, "%s", p->g->err);
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
    return fail(err, errlen, LM_ENOMEM, "out of memory");
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
    if (cancel && *cancel) return fail(err, errlen, LM_ECANCELED, "cancelled");
    plan_step *s = &p->steps[si];
    struct timespec t0, t1;
    if (p->step_seconds) clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = LM_OK;
    switch (s->kind) {
    case STEP_CONV:
      rc = lm_conv_run(s->conv, p->ptr[s->vin[0]], p->ptr[s->vout[0]]);
      if (rc < 0)
        return fail(err, errlen, rc, "%s: %s failed (%s)", gsrc(g), s->label,
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
    case STEP_EVAL: {
      for (int j = 0; j < s->nin; j++) s->in[j].data = s->vin[j] >= 0 ? p->ptr[s->vin[j]] : NULL;
      for (int j = 0; j < s->nout; j++)
        s->out[j].data = s->vout[j] >= 0 ? p->ptr[s->vout[j]] : NULL;
      char kerr[256] = "";
      rc = s->k->eval(s->node, s->in, s->nin, s->out, s->nout, kerr, sizeof kerr);
      if (rc < 0)
        return fail(err, errlen, rc, "%s: %s: %s", gsrc(g), s->label,
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
  int prev_threads = omp_get_max_threads();
  omp_set_num_threads(p->threads);
  int rc = run_steps(p, inputs, outputs, cancel, err, errlen);
  omp_set_num_threads(prev_threads);
  return rc;
}
