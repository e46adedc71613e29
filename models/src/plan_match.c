/* The fused steps of plans (plan_internal.h): pattern matching over the
 * specialised graph, starting at a Conv, an InstanceNormalization or the
 * first Reshape of PyTorch's GroupNorm, and the oneDNN convolution
 * descriptors.  A pattern is fused only when each intermediate value has its
 * next node as its one reader and is no graph output. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plan_internal.h"

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

bool lm_act_of_node(const lm_graph *g, const lm_gnode *a, lm_act *act, float *alpha,
                    float *beta)
{
  *alpha = *beta = 0;
  if (op_is(a, "Relu")) *act = LM_ACT_RELU;
  else if (op_is(a, "LeakyRelu")) {
    *act = LM_ACT_LEAKY_RELU;
    *alpha = (float)lm_gnode_attr_float(a, "alpha", 0.01);
  } else if (op_is(a, "PRelu")) {
    double s;
    if (a->nin != 2 || !scalar_const(g, a->in[1], &s)) return false;
    *act = LM_ACT_LEAKY_RELU;
    *alpha = (float)s;
  } else if (op_is(a, "Elu")) {
    *act = LM_ACT_ELU;
    *alpha = (float)lm_gnode_attr_float(a, "alpha", 1.0);
  } else if (op_is(a, "Sigmoid")) *act = LM_ACT_SIGMOID;
  else if (op_is(a, "Tanh")) *act = LM_ACT_TANH;
  else if (op_is(a, "Gelu")) {
    if (strcmp(lm_gnode_attr_string(a, "approximate", "none"), "none")) return false;
    *act = LM_ACT_GELU;
  } else if (op_is(a, "Clip")) {
    double lo = -FLT_MAX, hi = FLT_MAX;
    if (a->nin >= 2 && a->in[1] >= 0 && !scalar_const(g, a->in[1], &lo)) return false;
    if (a->nin >= 3 && a->in[2] >= 0 && !scalar_const(g, a->in[2], &hi)) return false;
    lo = lm_gnode_attr_float(a, "min", lo);   /* opset < 11 */
    hi = lm_gnode_attr_float(a, "max", hi);
    *act = LM_ACT_CLIP;
    *alpha = (float)lo;
    *beta = (float)hi;
  } else
    return false;
  return true;
}

/* A single-node activation reading v as its data input. */
static bool match_simple_act(const builder *b, int node, int v, act_match *m)
{
  const lm_gnode *a = &b->g->nodes[node];
  if (a->nin < 1 || a->in[0] != v || a->nout != 1 || a->out[0] < 0) return false;
  if (!lm_act_of_node(b->g, a, &m->act, &m->alpha, &m->beta)) return false;
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
    if (s->in[0] != v || s->nout != 1 || plan_sole_reader(b, s->out[0]) != mi) continue;
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
    int ei = plan_sole_reader(b, d->out[0]);
    if (ei < 0 || !op_is(&g->nodes[ei], "Erf")) continue;
    const lm_gnode *e = &g->nodes[ei];
    int ai = plan_sole_reader(b, e->out[0]);
    if (ai < 0 || !op_is(&g->nodes[ai], "Add")) continue;
    const lm_gnode *a = &g->nodes[ai];
    if (!scalar_const(g, other_input(a, e->out[0]), &c) || !near(c, 1.0)) continue;
    if (plan_sole_reader(b, a->out[0]) != m1i) continue;
    const lm_gnode *m1 = &g->nodes[m1i];
    if (!op_is(m1, "Mul") || other_input(m1, v) != a->out[0]) continue;
    int m2i = plan_sole_reader(b, m1->out[0]);
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
  int r = plan_sole_reader(b, v);
  if (r >= 0) return match_simple_act(b, r, v, m);
  return match_silu(b, v, m) || match_erf_gelu(b, v, m);
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
int plan_try_instnorm_step(builder *b, int ni, bool *done)
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
  int r = plan_sole_reader(b, cur);
  act_match mm;
  if (r >= 0 && match_simple_act(b, r, cur, &mm) && norm_act_supported(mm.act)) {
    m = mm;
    absorbed[nabs++] = r;
    cur = m.final_value;
    int a = plan_sole_reader(b, cur);
    if (a >= 0 && (res = residual_input(b, a, cur, xv, ni)) >= 0) {
      res_mode = 2;
      absorbed[nabs++] = a;
      cur = g->nodes[a].out[0];
    }
  } else if (r >= 0 && (res = residual_input(b, r, cur, xv, ni)) >= 0) {
    res_mode = 1;
    absorbed[nabs++] = r;
    cur = g->nodes[r].out[0];
    int ac = plan_sole_reader(b, cur);
    if (ac >= 0 && match_simple_act(b, ac, cur, &mm) && norm_act_supported(mm.act)) {
      m = mm;
      absorbed[nabs++] = ac;
      cur = m.final_value;
    }
  }
  if (!nabs) return LM_OK;
  int rc = plan_check_runtime_value(b, &g->nodes[absorbed[nabs - 1]], cur);
  if (rc < 0) return rc;
  plan_step *s = plan_new_step(b, STEP_INSTNORM, n, res >= 0 ? 4 : 3, 1);
  if (!s) return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  for (int j = 0; j < 3; j++) {
    s->vin[j] = lm_graph_resolve(g, n->in[j]);
    plan_set_rt(g, &s->in[j], s->vin[j]);
  }
  if (res >= 0) {
    s->vin[3] = res;
    plan_set_rt(g, &s->in[3], res);
  }
  s->vout[0] = cur;
  plan_set_rt(g, &s->out[0], cur);
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
int plan_try_groupnorm_step(builder *b, int ri, bool *done)
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
  int ini = plan_sole_reader(b, r1->out[0]);
  if (ini < 0 || !op_is(&g->nodes[ini], "InstanceNormalization")) return LM_OK;
  const lm_gnode *in = &g->nodes[ini];
  if (in->nin != 3 || in->in[0] != r1->out[0] || in->nout != 1) return LM_OK;
  for (int j = 1; j < 3; j++) {
    const lm_gvalue *pv = &g->values[in->in[j]];
    if (!is_const(g, in->in[j]) || pv->dt != LM_F32 || lm_gvalue_numel(pv) != groups)
      return LM_OK;
  }
  int r2i = plan_sole_reader(b, in->out[0]);
  if (r2i < 0 || !op_is(&g->nodes[r2i], "Reshape")) return LM_OK;
  const lm_gnode *r2 = &g->nodes[r2i];
  const lm_gvalue *r2v = &g->values[r2->out[0]];
  if (r2->in[0] != in->out[0] || r2->nout != 1 || r2v->ndim != xv->ndim ||
      memcmp(r2v->shape, xv->shape, sizeof(int64_t) * (size_t)xv->ndim))
    return LM_OK;
  int mi = plan_sole_reader(b, r2->out[0]);
  if (mi < 0 || !op_is(&g->nodes[mi], "Mul")) return LM_OK;
  const lm_gnode *mul = &g->nodes[mi];
  const float *gamma = per_channel(g, other_input(mul, r2->out[0]), xv->ndim, c);
  if (!gamma || mul->nout != 1) return LM_OK;
  int ai = plan_sole_reader(b, mul->out[0]);
  if (ai < 0 || !op_is(&g->nodes[ai], "Add")) return LM_OK;
  const lm_gnode *add = &g->nodes[ai];
  const float *beta = per_channel(g, other_input(add, mul->out[0]), xv->ndim, c);
  if (!beta || add->nout != 1) return LM_OK;
  act_match m = {.act = LM_ACT_NONE, .final_value = add->out[0]};
  int acti = plan_sole_reader(b, add->out[0]);
  act_match mm;
  if (acti >= 0 && match_simple_act(b, acti, add->out[0], &mm) && norm_act_supported(mm.act))
    m = mm;
  int rc = plan_check_runtime_value(b, add, m.final_value);
  if (rc < 0) return rc;
  plan_step *s = plan_new_step(b, STEP_GROUPNORM, in, 5, 1);
  if (!s) return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  int vins[5] = {x, in->in[1], in->in[2], other_input(mul, r2->out[0]),
                 other_input(add, mul->out[0])};
  for (int j = 0; j < 5; j++) {
    s->vin[j] = lm_graph_resolve(g, vins[j]);
    plan_set_rt(g, &s->in[j], s->vin[j]);
  }
  s->vout[0] = m.final_value;
  plan_set_rt(g, &s->out[0], m.final_value);
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

/* Add of two run-time values of one shape followed by an activation that is
** its one reader (VNet's residual Add + Elu). */
int plan_try_add_act_step(builder *b, int ni, bool *done)
{
  *done = false;
  lm_graph *g = b->g;
  const lm_gnode *n = &g->nodes[ni];
  if (n->nin != 2 || n->nout != 1 || n->in[0] < 0 || n->in[1] < 0) return LM_OK;
  const lm_gvalue *av = &g->values[n->in[0]], *bv = &g->values[n->in[1]];
  if (is_const(g, n->in[0]) || is_const(g, n->in[1]) || av->dt != LM_F32 || bv->dt != LM_F32 ||
      av->ndim != bv->ndim || lm_gvalue_numel(av) < 0 ||
      memcmp(av->shape, bv->shape, sizeof(int64_t) * (size_t)(av->ndim > 0 ? av->ndim : 0)))
    return LM_OK;
  int r = plan_sole_reader(b, n->out[0]);
  act_match m;
  if (r < 0 || !match_simple_act(b, r, n->out[0], &m) || !norm_act_supported(m.act))
    return LM_OK;
  int rc = plan_check_runtime_value(b, &g->nodes[r], m.final_value);
  if (rc < 0) return rc;
  plan_step *s = plan_new_step(b, STEP_ADD_ACT, n, 2, 1);
  if (!s) return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  for (int j = 0; j < 2; j++) {
    s->vin[j] = n->in[j];
    plan_set_rt(g, &s->in[j], n->in[j]);
  }
  s->vout[0] = m.final_value;
  plan_set_rt(g, &s->out[0], m.final_value);
  s->count = lm_gvalue_numel(av);
  s->act = m.act;
  s->alpha = m.alpha;
  s->inplace_inputs = 3;
  b->skip[r] = true;
  snprintf(s->label, sizeof s->label, "Add+%s '%s'", m.name, nname(n));
  *done = true;
  return LM_OK;
}

/* ---- convolutions ------------------------------------------------------------ */

static int conv_fail(builder *b, const lm_gnode *n, const char *what)
{
  return plan_fail(b->err, b->errlen, LM_EINVAL, "%s: node '%s' (%s): %s", gsrc(b->g), nname(n),
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

int plan_add_conv_step(builder *b, int ni)
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
  if ((rc = plan_check_runtime_value(b, last, m.final_value)) < 0) return rc;
  d.act = m.act;
  d.alpha = m.alpha;
  d.beta = m.beta;
  const float *w = g->values[lm_graph_resolve(g, n->in[1])].data;
  const float *bias = n->nin > 2 && n->in[2] >= 0
                          ? g->values[lm_graph_resolve(g, n->in[2])].data : NULL;
  plan_step *s = plan_new_step(b, STEP_CONV, n, 1, 1);
  if (!s) return plan_fail(b->err, b->errlen, LM_ENOMEM, "out of memory");
  char cerr[256] = "";
  s->cdesc = d;
  s->cweight = w;
  s->cbias = bias;
  rc = b->p->layout_only ? LM_OK : lm_conv_new(&d, w, bias, &s->conv, cerr, sizeof cerr);
  if (rc < 0)
    return plan_fail(b->err, b->errlen, rc, "%s: node '%s' (%s): %s", gsrc(g), nname(n), n->op,
                cerr[0] ? cerr : lm_status_string(rc));
  s->vin[0] = lm_graph_resolve(g, n->in[0]);
  plan_set_rt(g, &s->in[0], s->vin[0]);
  s->vout[0] = m.final_value;
  plan_set_rt(g, &s->out[0], m.final_value);
  for (int i = 0; i < m.nabsorbed; i++) b->skip[m.absorbed[i]] = true;
  if (m.nabsorbed)
    snprintf(s->label, sizeof s->label, "%s+%s '%s'", n->op, m.name, nname(n));
  else
    snprintf(s->label, sizeof s->label, "%s '%s'", n->op, nname(n));
  return LM_OK;
}

