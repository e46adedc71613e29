/* Calling an op: resolving inputs and options against the descriptor,
 * check(), the kernel run, and the kernel context accessors. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *arg_type_text(lm_arg_type t)
{
  switch (t) {
  case LM_ARG_NUMBER: return "a number";
  case LM_ARG_INT: return "an integer";
  case LM_ARG_BOOL: return "a boolean";
  case LM_ARG_STRING: return "a string";
  case LM_ARG_NUMBERS: return "a list of numbers";
  case LM_ARG_MODEL: return "a model";
  }
  return "?";
}

static const char *value_type_text(lm_value_type t)
{
  switch (t) {
  case LM_VALUE_NIL: return "nil";
  case LM_VALUE_NUMBER:
  case LM_VALUE_INT: return "number";
  case LM_VALUE_BOOL: return "boolean";
  case LM_VALUE_STRING: return "string";
  case LM_VALUE_NUMBERS: return "list of numbers";
  case LM_VALUE_JSON: return "table";
  case LM_VALUE_MODEL: return "model";
  }
  return "?";
}

/* Convert an option value to the argument's type into *out (owned copy). */
static int coerce(lm_engine *e, const char *opname, const lm_arg_desc *a,
                  const lm_value *v, lm_value *out)
{
  lm_value tmp = {.type = LM_VALUE_NIL};
  switch (a->type) {
  case LM_ARG_NUMBER:
    if (v->type == LM_VALUE_NUMBER) tmp = *v;
    else if (v->type == LM_VALUE_INT) {
      tmp.type = LM_VALUE_NUMBER;
      tmp.u.number = (double)v->u.integer;
    }
    break;
  case LM_ARG_INT:
    if (v->type == LM_VALUE_INT) tmp = *v;
    else if (v->type == LM_VALUE_NUMBER) {
      double x = v->u.number;
      if (x != floor(x) || !(fabs(x) <= 9007199254740992.0))
        return lm_set_error(e, LM_EINVAL, "%s: option '%s' must be an integer, got %g",
                            opname, a->name, x);
      tmp.type = LM_VALUE_INT;
      tmp.u.integer = (int64_t)x;
    }
    break;
  case LM_ARG_BOOL:
    if (v->type == LM_VALUE_BOOL) tmp = *v;
    break;
  case LM_ARG_STRING:
    if (v->type == LM_VALUE_STRING) tmp = *v;
    break;
  case LM_ARG_NUMBERS:
    if (v->type == LM_VALUE_NUMBERS) tmp = *v;
    else if (v->type == LM_VALUE_NUMBER || v->type == LM_VALUE_INT) {
      /* A single number is a list of one; the op decides whether it may be
       * broadcast. */
      static __thread double one;
      one = v->type == LM_VALUE_NUMBER ? v->u.number : (double)v->u.integer;
      tmp.type = LM_VALUE_NUMBERS;
      tmp.u.numbers.v = &one;
      tmp.u.numbers.n = 1;
    }
    break;
  case LM_ARG_MODEL:
    if (v->type == LM_VALUE_MODEL && v->u.model) tmp = *v;
    break;
  }
  if (tmp.type == LM_VALUE_NIL)
    return lm_set_error(e, LM_EINVAL, "%s: option '%s' must be %s, got %s", opname, a->name,
                        arg_type_text(a->type), value_type_text(v->type));
  if (lm_value_copy(out, &tmp) < 0) return lm_set_error(e, LM_ENOMEM, "out of memory");
  return LM_OK;
}

void lm_ctx_clear(lm_op_ctx *ctx)
{
  for (int i = 0; i < ctx->nin; i++) lm_tensor_release(ctx->in[i]);
  free(ctx->in);
  if (ctx->args)
    for (int i = 0; i < ctx->op->desc->nargs; i++) lm_value_clear(&ctx->args[i]);
  free(ctx->args);
  free(ctx->set);
  for (int i = 0; i < LM_MAX_OUTPUTS; i++) lm_tensor_release(ctx->out[i]);
  lm_params_free(ctx->results);
  ctx->in = NULL;
  ctx->nin = 0;
  ctx->args = NULL;
  ctx->set = NULL;
  memset(ctx->out, 0, sizeof ctx->out);
  ctx->nout = 0;
  ctx->results = NULL;
}

static int check_inputs(lm_engine *e, lm_op_ctx *ctx, lm_tensor *const *in, int nin)
{
  const lm_op_desc *d = ctx->op->desc;
  char a[16], b[16];
  if (nin < d->min_inputs || (d->max_inputs >= 0 && nin > d->max_inputs)) {
    if (d->min_inputs == d->max_inputs)
      return lm_set_error(e, LM_EINVAL, "%s: expects %d input%s (%s), got %d", d->name,
                          d->min_inputs, d->min_inputs == 1 ? "" : "s",
                          d->inputs ? d->inputs : "", nin);
    if (d->max_inputs < 0)
      return lm_set_error(e, LM_EINVAL, "%s: expects at least %d inputs (%s), got %d",
                          d->name, d->min_inputs, d->inputs ? d->inputs : "", nin);
    return lm_set_error(e, LM_EINVAL, "%s: expects %d to %d inputs (%s), got %d", d->name,
                        d->min_inputs, d->max_inputs, d->inputs ? d->inputs : "", nin);
  }
  int cuda_in = -1;
  for (int i = 0; i < nin; i++) {
    if (!in[i])
      return lm_set_error(e, LM_EINVAL, "%s: input %d is NULL (a released tensor?)", d->name,
                          i + 1);
    if (in[i]->e != e)
      return lm_set_error(e, LM_EINVAL, "%s: input %d belongs to another engine", d->name,
                          i + 1);
    if (in[i]->dev.type == LM_DEVICE_CUDA && cuda_in < 0) cuda_in = i;
  }
  if (d->flags & LM_OP_ANY_DEVICE) return LM_OK;
  lm_kernel_fn cuda = lm_op_cuda_kernel(e, d);
  if (cuda_in >= 0) {
    lm_device dev = in[cuda_in]->dev;
    if (!cuda)
      return lm_set_error(e, LM_EDEVICE,
                          "%s: input %d is on %s but the op has no CUDA kernel; call "
                          ":to('cpu') first",
                          d->name, cuda_in + 1, lm_device_format(dev, a, sizeof a));
    for (int i = 0; i < nin; i++)
      if (!lm_device_equal(in[i]->dev, dev))
        return lm_set_error(e, LM_EDEVICE,
                            "%s: input %d is on %s but input %d is on %s; move them to "
                            "one device with :to()",
                            d->name, i + 1, lm_device_format(in[i]->dev, a, sizeof a),
                            cuda_in + 1, lm_device_format(dev, b, sizeof b));
    ctx->use_cuda = true;
    ctx->cuda_device = dev.index;
  } else if (!d->run_cpu) {
    return lm_set_error(e, LM_EDEVICE, "%s: the op has only a CUDA kernel; move the input "
                                       "to a CUDA device with :to('cuda') first",
                        d->name);
  }
  return LM_OK;
}

int lm_ctx_prepare(lm_engine *e, const char *opname, lm_tensor *const *in, int nin,
                   const lm_params *opts, lm_op_ctx *ctx)
{
  memset(ctx, 0, sizeof *ctx);
  ctx->e = e;
  ctx->op = lm_registry_find(&e->reg, opname);
  if (!ctx->op) return lm_set_error(e, LM_ENOENT, "unknown op '%s'", opname ? opname : "");
  const lm_op_desc *d = ctx->op->desc;
  if (nin < 0 || (nin > 0 && !in))
    return lm_set_error(e, LM_EINVAL, "%s: bad input array", d->name);
  int st = check_inputs(e, ctx, in, nin);
  if (st < 0) return st;
  int na = d->nargs;
  ctx->in = calloc((size_t)(nin ? nin : 1), sizeof *ctx->in);
  ctx->args = calloc((size_t)(na ? na : 1), sizeof *ctx->args);
  ctx->set = calloc((size_t)(na ? na : 1), sizeof *ctx->set);
  if (!ctx->in || !ctx->args || !ctx->set) {
    lm_ctx_clear(ctx);
    return lm_set_error(e, LM_ENOMEM, "out of memory");
  }
  for (int i = 0; i < nin; i++) ctx->in[i] = lm_tensor_retain(in[i]);
  ctx->nin = nin;
  int nopt = lm_params_count(opts);
  for (int k = 0; k < nopt; k++) {
    lm_value v;
    const char *name = lm_params_at(opts, k, &v);
    int i = 0;
    while (i < na && strcmp(d->args[i].name, name) != 0) i++;
    if (i == na) {
      lm_ctx_clear(ctx);
      return lm_set_error(e, LM_EINVAL, "%s: unknown option '%s'", d->name, name);
    }
    if (v.type == LM_VALUE_NIL) continue; /* nil = not given */
    if ((st = coerce(e, d->name, &d->args[i], &v, &ctx->args[i])) < 0) {
      lm_ctx_clear(ctx);
      return st;
    }
    ctx->set[i] = true;
  }
  for (int i = 0; i < na; i++) {
    if (ctx->set[i]) continue;
    if (ctx->op->required[i]) {
      lm_ctx_clear(ctx);
      return lm_set_error(e, LM_EINVAL, "%s: missing required option '%s'", d->name,
                          d->args[i].name);
    }
    if (ctx->op->defaults[i].type == LM_VALUE_NIL) continue;
    if (lm_value_copy(&ctx->args[i], &ctx->op->defaults[i]) < 0) {
      lm_ctx_clear(ctx);
      return lm_set_error(e, LM_ENOMEM, "out of memory");
    }
    ctx->set[i] = true;
  }
  return LM_OK;
}

/* The final message of a failed kernel or check: "Op: what went wrong". */
static void finish_error(lm_op_ctx *ctx, int st)
{
  char msg[LM_ERRMSG_MAX];
  const char *why;
  if (ctx->err_status < 0 && ctx->errmsg[0]) why = ctx->errmsg;
  else if (lm_error_code(ctx->e) == st && lm_errmsg(ctx->e)[0]) why = lm_errmsg(ctx->e);
  else why = st == LM_ECANCELED ? "cancelled" : lm_status_string(st);
  snprintf(msg, sizeof msg, "%s: %.960s", ctx->op->desc->name, why);
  memcpy(ctx->errmsg, msg, sizeof msg);
  ctx->err_status = st;
}

int lm_ctx_check(lm_op_ctx *ctx)
{
  if (!ctx->op->desc->check) return LM_OK;
  int st = ctx->op->desc->check(ctx);
  if (st >= 0) return LM_OK;
  finish_error(ctx, st);
  return lm_set_error(ctx->e, st, "%s", ctx->errmsg);
}

int lm_ctx_run(lm_op_ctx *ctx)
{
  ctx->err_status = LM_OK;
  ctx->errmsg[0] = '\0';
  int st;
  if (ctx->cancel && atomic_load(ctx->cancel)) {
    st = LM_ECANCELED;
  } else {
    lm_kernel_fn fn = ctx->use_cuda ? lm_op_cuda_kernel(ctx->e, ctx->op->desc)
                                    : ctx->op->desc->run_cpu;
    st = fn(ctx);
  }
  if (st >= 0) return LM_OK;
  finish_error(ctx, st);
  /* Nothing half-made leaves a failed op. */
  for (int i = 0; i < LM_MAX_OUTPUTS; i++) {
    lm_tensor_release(ctx->out[i]);
    ctx->out[i] = NULL;
  }
  ctx->nout = 0;
  lm_params_free(ctx->results);
  ctx->results = NULL;
  return st;
}

int lm_call(lm_engine *e, const char *op, lm_tensor *const *in, int nin,
            const lm_params *opts, lm_tensor **out, int *nout, lm_params **results)
{
  int cap = nout ? *nout : 0;
  if (nout) *nout = 0;
  if (results) *results = NULL;
  lm_op_ctx ctx;
  int st = lm_ctx_prepare(e, op, in, nin, opts, &ctx);
  if (st < 0) return st;
  if ((st = lm_ctx_check(&ctx)) < 0) {
    lm_ctx_clear(&ctx);
    return st;
  }
  /* Device work belongs to the device's executor thread, networks to the
  ** inference thread (except in synchronous mode); wait for them. */
  if (ctx.use_cuda) st = lm_exec_run_cuda_sync(e->exec, &ctx);
  else if ((ctx.op->desc->flags & LM_OP_MODEL) && !e->cfg.synchronous)
    st = lm_exec_run_model_sync(e->exec, &ctx);
  else st = lm_ctx_run(&ctx);
  if (st < 0) {
    lm_set_error(e, st, "%s", ctx.errmsg);
    lm_ctx_clear(&ctx);
    return st;
  }
  int n = 0;
  for (int i = 0; i < ctx.nout; i++) {
    if (i < cap && out) {
      out[i] = ctx.out[i];
      ctx.out[i] = NULL;
      n = i + 1;
    }
  }
  if (nout) *nout = n;
  if (results) {
    *results = ctx.results;
    ctx.results = NULL;
  }
  lm_ctx_clear(&ctx);
  return st;
}

/* ---- the kernel context ---- */

lm_engine *lm_ctx_engine(lm_op_ctx *ctx) { return ctx->e; }
const lm_op_desc *lm_ctx_op(lm_op_ctx *ctx) { return ctx->op->desc; }
int lm_ctx_ninputs(lm_op_ctx *ctx) { return ctx->nin; }

lm_tensor *lm_ctx_input(lm_op_ctx *ctx, int i)
{
  return i >= 0 && i < ctx->nin ? ctx->in[i] : NULL;
}

static const lm_value *arg(lm_op_ctx *ctx, const char *name)
{
  const lm_op_desc *d = ctx->op->desc;
  for (int i = 0; i < d->nargs; i++)
    if (strcmp(d->args[i].name, name) == 0) return ctx->set[i] ? &ctx->args[i] : NULL;
  return NULL;
}

bool lm_arg_is_set(lm_op_ctx *ctx, const char *name) { return arg(ctx, name) != NULL; }

double lm_arg_number(lm_op_ctx *ctx, const char *name)
{
  const lm_value *v = arg(ctx, name);
  if (!v) return NAN;
  if (v->type == LM_VALUE_INT) return (double)v->u.integer;
  if (v->type == LM_VALUE_NUMBER) return v->u.number;
  if (v->type == LM_VALUE_BOOL) return v->u.boolean;
  return NAN;
}

int64_t lm_arg_int(lm_op_ctx *ctx, const char *name)
{
  const lm_value *v = arg(ctx, name);
  if (!v) return 0;
  if (v->type == LM_VALUE_INT) return v->u.integer;
  if (v->type == LM_VALUE_NUMBER && fabs(v->u.number) < 9.2e18) return (int64_t)v->u.number;
  if (v->type == LM_VALUE_BOOL) return v->u.boolean;
  return 0;
}

bool lm_arg_bool(lm_op_ctx *ctx, const char *name)
{
  const lm_value *v = arg(ctx, name);
  return v && v->type == LM_VALUE_BOOL && v->u.boolean;
}

const char *lm_arg_string(lm_op_ctx *ctx, const char *name)
{
  const lm_value *v = arg(ctx, name);
  return v && v->type == LM_VALUE_STRING ? v->u.string : NULL;
}

const double *lm_arg_numbers(lm_op_ctx *ctx, const char *name, int *n)
{
  const lm_value *v = arg(ctx, name);
  if (!v || v->type != LM_VALUE_NUMBERS) {
    if (n) *n = 0;
    return NULL;
  }
  if (n) *n = v->u.numbers.n;
  return v->u.numbers.v;
}

struct lm_model *lm_arg_model(lm_op_ctx *ctx, const char *name)
{
  const lm_value *v = arg(ctx, name);
  return v && v->type == LM_VALUE_MODEL ? v->u.model : NULL;
}

int lm_ctx_set_output(lm_op_ctx *ctx, int i, lm_tensor *t)
{
  if (i < 0 || i >= LM_MAX_OUTPUTS) {
    lm_tensor_release(t);
    return lm_ctx_error(ctx, LM_EINTERNAL, "output index %d out of range 0..%d", i,
                        LM_MAX_OUTPUTS - 1);
  }
  lm_tensor_release(ctx->out[i]);
  ctx->out[i] = t;
  if (t && i + 1 > ctx->nout) ctx->nout = i + 1;
  return LM_OK;
}

lm_params *lm_ctx_results(lm_op_ctx *ctx)
{
  if (!ctx->results) lm_params_new(&ctx->results);
  return ctx->results;
}

int lm_ctx_error(lm_op_ctx *ctx, int status, const char *fmt, ...)
{
  char tmp[LM_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  memcpy(ctx->errmsg, tmp, sizeof tmp);
  ctx->err_status = status;
  return status;
}

bool lm_ctx_cancelled(lm_op_ctx *ctx)
{
  return ctx && ctx->cancel && atomic_load_explicit(ctx->cancel, memory_order_relaxed);
}
