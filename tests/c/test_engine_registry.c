/* Engine unit tests: the op registry, params, argument validation, lm_call
 * and the per-engine, per-thread error messages. */
#include <pthread.h>

#include "lumen.h"
#include "tap.h"

static lm_engine *E;

/* TestScale(img, {factor, offset=0, clip=false, mode='linear', window={0, 1},
 * steps=1}) -> img * factor + offset, as float32; result "sum". */
static int scale_check(lm_op_ctx *ctx)
{
  if (lm_arg_number(ctx, "factor") == 0)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'factor' must not be 0");
  return LM_OK;
}

static int scale_run(lm_op_ctx *ctx)
{
  lm_tensor *in = lm_ctx_input(ctx, 0), *out;
  if (lm_tensor_dtype(in) != LM_F32)
    return lm_ctx_error(ctx, LM_EDTYPE, "input must be float32, got %s",
                        lm_dtype_name(lm_tensor_dtype(in)));
  int st = lm_tensor_new_like(in, LM_F32, LM_CPU, &out);
  if (st < 0) return st;
  lm_tensor *c;
  if ((st = lm_tensor_contiguous(in, &c)) < 0) {
    lm_tensor_release(out);
    return st;
  }
  const float *s = lm_tensor_data(c);
  float *d = lm_tensor_data(out);
  double f = lm_arg_number(ctx, "factor"), o = lm_arg_number(ctx, "offset"), sum = 0;
  int64_t steps = lm_arg_int(ctx, "steps");
  for (int64_t k = 0; k < lm_tensor_numel(c); k++) {
    d[k] = (float)(s[k] * f + o + (double)steps - 1);
    sum += d[k];
  }
  lm_tensor_release(c);
  lm_params_set_number(lm_ctx_results(ctx), "sum", sum);
  lm_params_set_string(lm_ctx_results(ctx), "mode", lm_arg_string(ctx, "mode"));
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc scale_args[] = {
  {"factor", LM_ARG_NUMBER, NULL, "multiplier"},
  {"offset", LM_ARG_NUMBER, "0", "added after"},
  {"clip", LM_ARG_BOOL, "false", ""},
  {"mode", LM_ARG_STRING, "'linear'", ""},
  {"window", LM_ARG_NUMBERS, "{0, 1}", ""},
  {"steps", LM_ARG_INT, "1", ""},
  {"label", LM_ARG_STRING, "nil", "optional, no default"},
};

static const lm_op_desc scale_op = {
  .name = "TestScale", .alias = "TestMul", .summary = "scale", .doc = "",
  .inputs = "img", .min_inputs = 1, .max_inputs = 1, .outputs = "img",
  .args = scale_args, .nargs = 7, .check = scale_check, .run_cpu = scale_run,
};

static int noop_run(lm_op_ctx *ctx) { return LM_OK; }

static void test_params(void)
{
  lm_params *p;
  CHECK_INT(lm_params_new(&p), LM_OK);
  CHECK_INT(lm_params_set_number(p, "a", 1.5), LM_OK);
  CHECK_INT(lm_params_set_int(p, "b", -7), LM_OK);
  char name[8] = "shift";
  CHECK_INT(lm_params_set_string(p, name, "hello"), LM_OK);
  name[0] = 'X'; /* names and strings are copied */
  double xs[3] = {1, 2, 3};
  CHECK_INT(lm_params_set_numbers(p, "xs", xs, 3), LM_OK);
  xs[0] = 99;
  CHECK_INT(lm_params_set_bool(p, "flag", true), LM_OK);
  CHECK_INT(lm_params_count(p), 5);
  CHECK_INT(lm_params_set_number(p, "a", 2.5), LM_OK); /* replaces */
  CHECK_INT(lm_params_count(p), 5);
  CHECK_NEAR(lm_params_get(p, "a")->u.number, 2.5, 0);
  CHECK_STR(lm_params_get(p, "shift")->u.string, "hello");
  CHECK_NEAR(lm_params_get(p, "xs")->u.numbers.v[0], 1, 0);
  CHECK_INT(lm_params_get(p, "xs")->u.numbers.n, 3);
  CHECK(lm_params_get(p, "nope") == NULL);
  lm_value v;
  CHECK_STR(lm_params_at(p, 1, &v), "b");
  CHECK_INT(v.type, LM_VALUE_INT);
  CHECK_INT(v.u.integer, -7);
  CHECK(lm_params_at(p, 5, &v) == NULL);
  lm_params_free(p);
  lm_params_free(NULL);
}

static void test_register_and_find(void)
{
  int n0 = lm_op_count(E);
  CHECK_INT(lm_op_register(E, &scale_op), LM_OK);
  CHECK_INT(lm_op_count(E), n0 + 1);
  CHECK(lm_op_find(E, "TestScale") == &scale_op);
  CHECK(lm_op_find(E, "TestMul") == &scale_op);
  CHECK(lm_op_find(E, "testscale") == NULL);
  CHECK_INT(lm_op_register(E, &scale_op), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "'TestScale' already exists");
  static const lm_op_desc alias_clash = {.name = "TestOther", .alias = "TestMul",
                                         .run_cpu = noop_run};
  CHECK_INT(lm_op_register(E, &alias_clash), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "alias 'TestMul'");
  static const lm_op_desc name_is_alias = {.name = "TestMul", .run_cpu = noop_run};
  CHECK_INT(lm_op_register(E, &name_is_alias), LM_EINVAL);
  static const lm_op_desc aaa = {.name = "AAATest", .run_cpu = noop_run, .max_inputs = -1};
  CHECK_INT(lm_op_register(E, &aaa), LM_OK);
  /* Sorted by name. */
  int n = lm_op_count(E), sorted = 1;
  for (int i = 1; i < n; i++)
    if (strcmp(lm_op_at(E, i - 1)->name, lm_op_at(E, i)->name) >= 0) sorted = 0;
  CHECK(sorted);
  CHECK(lm_op_at(E, n) == NULL);
  CHECK(lm_op_at(E, -1) == NULL);
  CHECK_INT(lm_op_count(E), n0 + 2);
  CHECK(lm_op_cuda_kernel(E, &scale_op) == NULL);
  CHECK_INT(lm_op_set_cuda_kernel(E, "TestMul", noop_run), LM_OK);
  CHECK(lm_op_cuda_kernel(E, &scale_op) == noop_run);
  CHECK_INT(lm_op_set_cuda_kernel(E, "TestScale", NULL), LM_OK);
  CHECK_INT(lm_op_set_cuda_kernel(E, "NoSuchOp", noop_run), LM_ENOENT);
}

static void test_bad_defaults(void)
{
  struct {
    lm_arg_type type;
    const char *def;
  } bad[] = {
    {LM_ARG_NUMBERS, "{1, x}"}, {LM_ARG_STRING, "'abc"},  {LM_ARG_BOOL, "tru"},
    {LM_ARG_INT, "1.5"},        {LM_ARG_NUMBER, "'s'"},   {LM_ARG_NUMBER, "1 2"},
    {LM_ARG_NUMBER, "inf"},     {LM_ARG_NUMBERS, "{1, 2"}, {LM_ARG_BOOL, "1"},
    {LM_ARG_STRING, "\"a\" b"}, {LM_ARG_NUMBER, ""},      {LM_ARG_NUMBER, "nan"},
  };
  int n0 = lm_op_count(E);
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    lm_arg_desc arg = {"x", bad[k].type, bad[k].def, ""};
    lm_op_desc d = {.name = "TestBadDefault", .args = &arg, .nargs = 1, .run_cpu = noop_run};
    int st = lm_op_register(E, &d);
    if (st != LM_EINVAL) TAP_FAIL("default \"%s\" accepted", bad[k].def);
    CHECK_CONTAINS(lm_errmsg(E), "default of 'x'");
  }
  CHECK_INT(lm_op_count(E), n0); /* nothing half-registered */
  CHECK(lm_op_find(E, "TestBadDefault") == NULL);
  static const lm_arg_desc twice[] = {{"a", LM_ARG_INT, "1", ""}, {"a", LM_ARG_INT, "2", ""}};
  static const lm_op_desc dup = {.name = "TestDupArg", .args = twice, .nargs = 2,
                                 .run_cpu = noop_run};
  CHECK_INT(lm_op_register(E, &dup), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "declared twice");
  static const lm_op_desc nokernel = {.name = "TestNoKernel"};
  CHECK_INT(lm_op_register(E, &nokernel), LM_EINVAL);
  static const lm_op_desc noname = {.name = "", .run_cpu = noop_run};
  CHECK_INT(lm_op_register(E, &noname), LM_EINVAL);

  /* The accepted forms. */
  static const lm_arg_desc good[] = {
    {"a", LM_ARG_NUMBER, " -1.5e-3 ", ""}, {"b", LM_ARG_STRING, "\"it's\"", ""},
    {"c", LM_ARG_NUMBERS, "{}", ""},      {"d", LM_ARG_NUMBERS, "{ 1, -2.5, 3, }", ""},
    {"e", LM_ARG_BOOL, "true", ""},       {"f", LM_ARG_INT, "-3", ""},
    {"g", LM_ARG_NUMBER, "nil", ""},      {"h", LM_ARG_NUMBERS, "2", ""},
    {"i", LM_ARG_STRING, "'a\\'b'", ""},
  };
  static const lm_op_desc gd = {.name = "TestGoodDefaults", .args = good, .nargs = 9,
                                .run_cpu = noop_run, .flags = LM_OP_SOURCE};
  CHECK_INT(lm_op_register(E, &gd), LM_OK);
}

static lm_tensor *ramp(int64_t n)
{
  lm_tensor *t;
  int64_t sh[1] = {n};
  lm_tensor_new(E, LM_F32, 1, sh, LM_CPU, &t);
  for (int64_t k = 0; k < n; k++) ((float *)lm_tensor_data(t))[k] = (float)k;
  return t;
}

static void test_call(void)
{
  lm_tensor *in = ramp(10), *out[2] = {NULL, NULL};
  lm_params *o, *res = NULL;
  lm_params_new(&o);
  lm_params_set_int(o, "factor", 2); /* an integer for a number option */
  lm_params_set_number(o, "offset", 0.5);
  lm_params_set_number(o, "steps", 3.0); /* an integral number for an int */
  int nout = 2;
  CHECK_INT(lm_call(E, "TestScale", &in, 1, o, out, &nout, &res), LM_OK);
  CHECK_INT(nout, 1);
  CHECK(out[1] == NULL);
  int64_t i9[1] = {9};
  CHECK_NEAR(lm_tensor_get(out[0], i9), 9 * 2 + 0.5 + 2, 0);
  CHECK(res != NULL);
  CHECK_NEAR(lm_params_get(res, "sum")->u.number, 45 * 2 + 10 * 2.5, 1e-9);
  CHECK_STR(lm_params_get(res, "mode")->u.string, "linear");
  lm_params_free(res);
  lm_tensor_release(out[0]);

  /* By alias, without results, outputs capacity 0: output dropped. */
  nout = 0;
  CHECK_INT(lm_call(E, "TestMul", &in, 1, o, NULL, &nout, NULL), LM_OK);
  CHECK_INT(nout, 0);
  lm_params_free(o);
  lm_tensor_release(in);
}

static void test_call_errors(void)
{
  lm_tensor *in = ramp(4), *out = NULL;
  lm_params *o;
  lm_params_new(&o);
  int nout = 1;

  CHECK_INT(lm_call(E, "NoSuchOp", &in, 1, o, &out, &nout, NULL), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(E), "unknown op 'NoSuchOp'");
  CHECK_INT(lm_errcode(E), LM_ENOENT);

  CHECK_INT(lm_call(E, "TestScale", &in, 1, o, &out, &nout, NULL), LM_EINVAL);
  CHECK_STR(lm_errmsg(E), "TestScale: missing required option 'factor'");

  lm_params_set_number(o, "factor", 2);
  lm_params_set_number(o, "fator", 2);
  CHECK_INT(lm_call(E, "TestScale", &in, 1, o, &out, &nout, NULL), LM_EINVAL);
  CHECK_STR(lm_errmsg(E), "TestScale: unknown option 'fator'");
  lm_params_free(o);

  lm_params_new(&o);
  lm_params_set_number(o, "factor", 2);
  lm_params_set_string(o, "clip", "yes");
  CHECK_INT(lm_call(E, "TestScale", &in, 1, o, &out, &nout, NULL), LM_EINVAL);
  CHECK_STR(lm_errmsg(E), "TestScale: option 'clip' must be a boolean, got string");
  lm_params_set_bool(o, "clip", true);
  lm_params_set_number(o, "steps", 2.5);
  CHECK_INT(lm_call(E, "TestScale", &in, 1, o, &out, &nout, NULL), LM_EINVAL);
  CHECK_STR(lm_errmsg(E), "TestScale: option 'steps' must be an integer, got 2.5");
  lm_params_set_int(o, "steps", 1);
  lm_params_set_bool(o, "window", false);
  CHECK_INT(lm_call(E, "TestScale", &in, 1, o, &out, &nout, NULL), LM_EINVAL);
  CHECK_STR(lm_errmsg(E), "TestScale: option 'window' must be a list of numbers, got boolean");
  lm_params_set_numbers(o, "window", (double[]){-1, 1}, 2);

  /* Input count and NULL inputs. */
  lm_tensor *two[2] = {in, in};
  CHECK_INT(lm_call(E, "TestScale", two, 2, o, &out, &nout, NULL), LM_EINVAL);
  CHECK_STR(lm_errmsg(E), "TestScale: expects 1 input (img), got 2");
  lm_tensor *null_in = NULL;
  CHECK_INT(lm_call(E, "TestScale", &null_in, 1, o, &out, &nout, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(E), "TestScale: input 1 is NULL");

  /* check() failures are prefixed with the op name. */
  lm_params_set_number(o, "factor", 0);
  CHECK_INT(lm_call(E, "TestScale", &in, 1, o, &out, &nout, NULL), LM_EINVAL);
  CHECK_STR(lm_errmsg(E), "TestScale: option 'factor' must not be 0");

  /* Kernel failures too, and nothing is output. */
  lm_params_set_number(o, "factor", 1);
  lm_tensor *i16;
  int64_t sh[1] = {4};
  lm_tensor_new(E, LM_I16, 1, sh, LM_CPU, &i16);
  nout = 1;
  CHECK_INT(lm_call(E, "TestScale", &i16, 1, o, &out, &nout, NULL), LM_EDTYPE);
  CHECK_STR(lm_errmsg(E), "TestScale: input must be float32, got int16");
  CHECK_INT(nout, 0);
  CHECK(out == NULL);

  /* A CUDA input to an op without CUDA kernel (wrapped: no device needed). */
  float fake[4];
  lm_tensor *gpu;
  CHECK_INT(lm_tensor_wrap(E, fake, LM_F32, 1, sh, NULL, (lm_device){LM_DEVICE_CUDA, 0}, NULL,
                           NULL, &gpu),
            LM_OK);
  CHECK_INT(lm_call(E, "TestScale", &gpu, 1, o, &out, &nout, NULL), LM_EDEVICE);
  CHECK_STR(lm_errmsg(E), "TestScale: input 1 is on cuda:0 but the op has no CUDA kernel; "
                          "call :to('cpu') first");
  lm_tensor_release(gpu);
  lm_tensor_release(i16);
  lm_params_free(o);
  lm_tensor_release(in);
}

/* Errors are per thread and per engine. */
static lm_engine *E2;
static void *other_thread(void *arg)
{
  int *ok = arg;
  *ok = strcmp(lm_errmsg(E), "") == 0 && lm_errcode(E) == LM_OK;
  lm_set_error(E, LM_EIO, "thread %d", 2);
  *ok = *ok && strcmp(lm_errmsg(E), "thread 2") == 0;
  return NULL;
}

static void test_errors_per_thread(void)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  CHECK_INT(lm_engine_new(&cfg, &E2), LM_OK);
  CHECK_INT(lm_set_error(E, LM_EFORMAT, "main %s", "thread"), LM_EFORMAT);
  CHECK_STR(lm_errmsg(E2), "");
  pthread_t th;
  int ok = 0;
  pthread_create(&th, NULL, other_thread, &ok);
  pthread_join(th, NULL);
  CHECK(ok);
  CHECK_STR(lm_errmsg(E), "main thread");
  CHECK_INT(lm_errcode(E), LM_EFORMAT);
  lm_set_error(E2, LM_EIO, "second engine");
  CHECK_STR(lm_errmsg(E), "main thread");
  CHECK_STR(lm_errmsg(E2), "second engine");
  /* A message may quote the current one. */
  lm_set_error(E, LM_EIO, "wrapped: %s", lm_errmsg(E));
  CHECK_STR(lm_errmsg(E), "wrapped: main thread");
  lm_engine_release(E2);
  /* Engine creation errors are reported under NULL. */
  cfg.threads = -1;
  lm_engine *bad = NULL;
  CHECK_INT(lm_engine_new(&cfg, &bad), LM_EINVAL);
  CHECK(bad == NULL);
  CHECK_CONTAINS(lm_errmsg(NULL), "threads");
}

int main(void)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  cfg.threads = 2;
  if (lm_engine_new(&cfg, &E) != LM_OK) {
    printf("Bail out! lm_engine_new: %s\n", lm_errmsg(NULL));
    return 1;
  }
  RUN(test_params);
  RUN(test_register_and_find);
  RUN(test_bad_defaults);
  RUN(test_call);
  RUN(test_call_errors);
  RUN(test_errors_per_thread);
  lm_engine_release(E);
  TAP_DONE();
}
