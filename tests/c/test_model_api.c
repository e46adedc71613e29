/* The model API (lumen.h "Models"): loading a lumen graph (inline weights)
 * and model packages, metadata, errors naming the file and the field, the
 * repository, lm_model_run (values, dtype/stride conversion, plan reuse,
 * concurrent runs), MODEL values in params, and the LoadModel / Infer ops
 * on the engine's inference thread.
 *
 * The network: x (1, 1, D, H, W) -> Conv 1->2 channels, kernel (2, 1, 1),
 * no padding -> Relu, so y[c, i, j, k] = relu(s_c * (x[i,j,k] + 10 x[i+1,j,k])
 * + b_c) with s = (1, -1), b = (0.5, 0.25): values are checked by hand, and
 * the first spatial axis shrinks by one, which shows which axis the network
 * saw (axes "XYZ" or "ZYX"). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lumen.h"
#include "tap.h"

static const char graph_json[] =
    "{\"name\": \"tiny\", \"opset\": 17, \"producer\": \"test\","
    " \"inputs\": [{\"name\": \"x\", \"shape\": [1, 1, -1, -1, -1], \"dtype\": \"float32\"}],"
    " \"outputs\": [\"y\"],"
    " \"nodes\": ["
    "  {\"op\": \"Conv\", \"name\": \"conv\", \"inputs\": [\"x\", \"w\", \"b\"],"
    "   \"outputs\": [\"h\"], \"attrs\": {\"kernel_shape\": [2, 1, 1]}},"
    "  {\"op\": \"Relu\", \"name\": \"relu\", \"inputs\": [\"h\"], \"outputs\": [\"y\"]}],"
    " \"weights\": ["
    "  {\"name\": \"w\", \"dtype\": \"float32\", \"shape\": [2, 1, 2, 1, 1],"
    "   \"data\": [1, 10, -1, -10]},"
    "  {\"name\": \"b\", \"dtype\": \"float32\", \"shape\": [2], \"data\": [0.5, 0.25]}]}";

static pthread_t main_thread;
static char tmp_root[256];

static lm_engine *new_engine(bool synchronous)
{
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  cfg.threads = 2;
  cfg.io_threads = 2;
  cfg.synchronous = synchronous;
  lm_engine *e;
  if (lm_engine_new(&cfg, &e) != LM_OK) {
    printf("Bail out! %s\n", lm_errmsg(NULL));
    exit(1);
  }
  return e;
}

static lm_model *tiny(lm_engine *e)
{
  lm_model *m = NULL;
  int st = lm_model_load_graph(e, graph_json, strlen(graph_json), NULL, NULL, &m);
  if (st < 0) {
    printf("Bail out! load_graph: %s\n", lm_errmsg(e));
    exit(1);
  }
  return m;
}

/* The value x takes at (i, j, k): small integers of both signs. */
static float xval(int64_t i, int64_t j, int64_t k)
{
  return (float)((int)((i * 7 + j * 3 + k * 5) % 7) - 3);
}

static float expect(int c, float a, float b)
{
  float s = c == 0 ? 1.0f : -1.0f, bias = c == 0 ? 0.5f : 0.25f;
  float v = s * (a + 10.0f * b) + bias;
  return v > 0 ? v : 0;
}

/* x as (1, 1, D, H, W) float32 C order. */
static lm_tensor *make_x(lm_engine *e, int64_t d, int64_t h, int64_t w)
{
  int64_t sh[5] = {1, 1, d, h, w};
  lm_tensor *t;
  lm_tensor_new(e, LM_F32, 5, sh, LM_CPU, &t);
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < h; j++)
      for (int64_t k = 0; k < w; k++) {
        int64_t idx[5] = {0, 0, i, j, k};
        lm_tensor_set(t, idx, xval(i, j, k));
      }
  return t;
}

/* Count mismatches of y (1, 2, d-1, h, w) against the formula. */
static int check_y(const lm_tensor *y, int64_t d, int64_t h, int64_t w)
{
  int bad = 0;
  for (int c = 0; c < 2; c++)
    for (int64_t i = 0; i + 1 < d; i++)
      for (int64_t j = 0; j < h; j++)
        for (int64_t k = 0; k < w; k++) {
          int64_t idx[5] = {0, c, i, j, k};
          float want = expect(c, xval(i, j, k), xval(i + 1, j, k));
          if (fabs(lm_tensor_get(y, idx) - want) > 1e-5) bad++;
        }
  return bad;
}

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  if (!f) {
    printf("Bail out! cannot write %s\n", path);
    exit(1);
  }
  fputs(text, f);
  fclose(f);
}

/* A package folder tmp_root/name with the tiny graph and metadata text. */
static void make_package(const char *name, const char *metadata)
{
  char p[512];
  snprintf(p, sizeof p, "%s/%s", tmp_root, name);
  mkdir(p, 0777);
  snprintf(p, sizeof p, "%s/%s/net.json", tmp_root, name);
  write_file(p, graph_json);
  snprintf(p, sizeof p, "%s/%s/metadata.json", tmp_root, name);
  write_file(p, metadata);
}

/* ---- loading and metadata ---- */

static void test_load_graph_fields(void)
{
  lm_engine *e = new_engine(false);
  lm_model *m = tiny(e);
  CHECK_STR(lm_model_name(m), "tiny");
  CHECK_STR(lm_model_axes(m), "XYZ");
  CHECK_INT(lm_model_ninputs(m), 1);
  CHECK_INT(lm_model_noutputs(m), 1);
  CHECK_STR(lm_model_input_name(m, 0), "x");
  CHECK_STR(lm_model_output_name(m, 0), "y");
  CHECK(lm_model_input_name(m, 1) == NULL);
  int64_t sh[LM_MAX_DIMS];
  CHECK_INT(lm_model_input_shape(m, 0, sh), 5);
  CHECK_INT(sh[0], 1);
  CHECK_INT(sh[1], 1);
  CHECK_INT(sh[2], -1);
  const char *meta = lm_model_metadata(m);
  CHECK_CONTAINS(meta, "\"format\":\"graph\"");
  CHECK_CONTAINS(meta, "\"precision\":\"float32\"");
  CHECK_CONTAINS(meta, "\"inputs\":[{\"name\":\"x\",\"shape\":[1,1,-1,-1,-1]");
  lm_model_release(m);
  lm_engine_release(e);
}

static void test_load_graph_errors(void)
{
  lm_engine *e = new_engine(false);
  lm_model *m = (lm_model *)1;
  const char *bad = "{\"inputs\": [], \"outputs\": [], \"nodes\": []}";
  CHECK(lm_model_load_graph(e, bad, strlen(bad), NULL, NULL, &m) < 0);
  CHECK(m == NULL);
  CHECK_CONTAINS(lm_errmsg(e), "inputs");
  lm_model_options o;
  lm_model_options_init(&o);
  o.axes = "XY";
  CHECK_INT(lm_model_load_graph(e, graph_json, strlen(graph_json), NULL, &o, &m), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(e), "option 'axes'");
  lm_model_options_init(&o);
  o.precision = "float16";
  CHECK_INT(lm_model_load_graph(e, graph_json, strlen(graph_json), NULL, &o, &m), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(e), "option 'precision'");
  lm_engine_release(e);
}

static void test_package_metadata(void)
{
  make_package("tinypkg",
               "{\"name\": \"Tiny net\", \"description\": \"two channels\","
               " \"type\": \"segmentation\", \"labels\": {\"1\": \"A\", \"2\": \"B\"},"
               " \"weights\": \"net.json\", \"axes\": \"ZYX\", \"spacing\": [1, 1, 2.5],"
               " \"roi\": [4, 4, 4], \"precision\": \"float32\", \"extra\": {\"kept\": true}}");
  lm_engine *e = new_engine(false);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/tinypkg", tmp_root);
  lm_model *m = NULL;
  CHECK_INT(lm_model_load(e, dir, NULL, &m), LM_OK);
  if (m) {
    CHECK_STR(lm_model_name(m), "Tiny net");
    CHECK_STR(lm_model_axes(m), "ZYX");
    const char *meta = lm_model_metadata(m);
    CHECK_CONTAINS(meta, "\"labels\":{\"1\":\"A\",\"2\":\"B\"}");
    CHECK_CONTAINS(meta, "\"extra\":{\"kept\":true}");
    CHECK_CONTAINS(meta, "\"type\":\"segmentation\"");
    CHECK_CONTAINS(meta, "\"format\":\"graph\"");
    CHECK_CONTAINS(meta, "\"spacing\":[1,1,2.5]");
    lm_model_release(m);
  }
  /* Options win over the package. */
  lm_model_options o;
  lm_model_options_init(&o);
  o.axes = "XYZ";
  CHECK_INT(lm_model_load(e, dir, &o, &m), LM_OK);
  if (m) {
    CHECK_STR(lm_model_axes(m), "XYZ");
    lm_model_release(m);
  }
  /* The graph file on its own: named after the file. */
  char file[600];
  snprintf(file, sizeof file, "%s/net.json", dir);
  CHECK_INT(lm_model_load(e, file, NULL, &m), LM_OK);
  if (m) {
    CHECK_STR(lm_model_name(m), "net");
    lm_model_release(m);
  }
  lm_engine_release(e);
}

/* Each bad package gives an error naming metadata.json and the field. */
static void test_package_errors(void)
{
  static const struct {
    const char *name, *metadata, *want;
    int status;
  } cases[] = {
    {"bad_json", "{\"weights\": \"net.json\",", "not valid JSON", LM_EFORMAT},
    {"bad_top", "[1, 2]", "the top level must be a JSON object", LM_EFORMAT},
    {"no_weights", "{\"name\": \"x\"}", "field 'weights' is missing", LM_EINVAL},
    {"weights_gone", "{\"weights\": \"gone.onnx\"}", "field 'weights': no file", LM_ENOENT},
    {"weights_path", "{\"weights\": \"../net.json\"}", "field 'weights' must be a file name",
     LM_EINVAL},
    {"bad_axes", "{\"weights\": \"net.json\", \"axes\": \"XY\"}", "field 'axes' is \"XY\"",
     LM_EINVAL},
    {"bad_format", "{\"weights\": \"net.json\", \"format\": \"pt\"}", "field 'format'", LM_EINVAL},
    {"bad_precision", "{\"weights\": \"net.json\", \"precision\": 16}",
     "field 'precision' must be a string", LM_EINVAL},
    {"bad_labels", "{\"weights\": \"net.json\", \"labels\": [\"bg\", 3]}",
     "field 'labels': entry 1 must be a string", LM_EINVAL},
    {"bad_label_key", "{\"weights\": \"net.json\", \"labels\": {\"one\": \"A\"}}",
     "field 'labels': key \"one\"", LM_EINVAL},
    {"bad_spacing", "{\"weights\": \"net.json\", \"spacing\": [1, -1, 1]}",
     "field 'spacing' must be a list of positive numbers", LM_EINVAL},
    {"bad_roi", "{\"weights\": \"net.json\", \"roi\": [96, 96.5, 96]}",
     "field 'roi' must be a list of positive integers", LM_EINVAL},
    {"lua_network", "{\"weights\": \"net.json\", \"network\": \"net.lua\"}",
     "field 'network'", LM_EUNSUPPORTED},
  };
  lm_engine *e = new_engine(false);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    make_package(cases[i].name, cases[i].metadata);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp_root, cases[i].name);
    lm_model *m = (lm_model *)1;
    int st = lm_model_load(e, dir, NULL, &m);
    if (st != cases[i].status) TAP_FAIL("%s: status %d, want %d", cases[i].name, st,
                                        cases[i].status);
    CHECK(m == NULL);
    char file[600];
    snprintf(file, sizeof file, "%s/metadata.json", dir);
    CHECK_CONTAINS(lm_errmsg(e), file);
    CHECK_CONTAINS(lm_errmsg(e), cases[i].want);
  }
  /* Files. */
  lm_model *m;
  CHECK_INT(lm_model_load(e, "/nonexistent/net.onnx", NULL, &m), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(e), "/nonexistent/net.onnx");
  char txt[512];
  snprintf(txt, sizeof txt, "%s/weights.txt", tmp_root);
  write_file(txt, "not a model");
  CHECK_INT(lm_model_load(e, txt, NULL, &m), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(e), txt);
  CHECK_CONTAINS(lm_errmsg(e), "unknown model format");
  /* An empty folder is no package. */
  char empty[512];
  snprintf(empty, sizeof empty, "%s/empty_dir", tmp_root);
  mkdir(empty, 0777);
  CHECK_INT(lm_model_load(e, empty, NULL, &m), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(e), "metadata.json");
  lm_engine_release(e);
}

static void test_repository(void)
{
  make_package("repo_tiny", "{\"weights\": \"net.json\", \"type\": \"segmentation\"}");
  setenv("LUMEN_MODELS", tmp_root, 1);
  char buf[512];
  CHECK_STR(lm_model_repository(buf, sizeof buf), tmp_root);
  lm_engine *e = new_engine(false);
  lm_model *m = NULL;
  CHECK_INT(lm_model_load(e, "repo_tiny", NULL, &m), LM_OK);
  if (m) {
    CHECK_STR(lm_model_name(m), "repo_tiny"); /* no name field: the folder's */
    lm_model_release(m);
  }
  CHECK_INT(lm_model_load(e, "no_such_model", NULL, &m), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(e), "model 'no_such_model' is not in the model repository");
  CHECK_CONTAINS(lm_errmsg(e), tmp_root);
  unsetenv("LUMEN_MODELS");
  lm_engine_release(e);
}

/* ---- running ---- */

static void test_run_values(void)
{
  lm_engine *e = new_engine(false);
  lm_model *m = tiny(e);
  lm_tensor *x = make_x(e, 4, 3, 2), *y = NULL;
  CHECK_INT(lm_model_run(m, NULL, &x, 1, &y, 1), LM_OK);
  if (y) {
    CHECK_INT(lm_tensor_dtype(y), LM_F32);
    CHECK_INT(lm_tensor_ndim(y), 5);
    CHECK_INT(lm_tensor_shape(y)[1], 2);
    CHECK_INT(lm_tensor_shape(y)[2], 3);
    CHECK_INT(lm_tensor_shape(y)[3], 3);
    CHECK_INT(lm_tensor_shape(y)[4], 2);
    CHECK_INT(check_y(y, 4, 3, 2), 0);
    lm_tensor_release(y);
  }
  /* Another dtype, and a strided (non-C-order) view of the same values. */
  lm_tensor *xi;
  lm_tensor_new(e, LM_I16, 5, lm_tensor_shape(x), LM_CPU, &xi);
  lm_tensor_copy(xi, x);
  CHECK_INT(lm_model_run(m, NULL, &xi, 1, &y, 1), LM_OK);
  if (y) {
    CHECK_INT(check_y(y, 4, 3, 2), 0);
    lm_tensor_release(y);
  }
  int order[5] = {4, 3, 2, 1, 0};
  lm_tensor *xf;
  lm_tensor_new_ordered(e, LM_F32, 5, lm_tensor_shape(x), order, LM_CPU, &xf);
  lm_tensor_copy(xf, x);
  CHECK(!lm_tensor_is_contiguous(xf));
  CHECK_INT(lm_model_run(m, NULL, &xf, 1, &y, 1), LM_OK);
  if (y) {
    CHECK_INT(check_y(y, 4, 3, 2), 0);
    lm_tensor_release(y);
  }
  /* A second shape gets its own plan; the first is still right. */
  lm_tensor *x2 = make_x(e, 6, 2, 5);
  CHECK_INT(lm_model_run(m, NULL, &x2, 1, &y, 1), LM_OK);
  if (y) {
    CHECK_INT(check_y(y, 6, 2, 5), 0);
    lm_tensor_release(y);
  }
  CHECK_INT(lm_model_run(m, NULL, &x, 1, &y, 1), LM_OK);
  if (y) {
    CHECK_INT(check_y(y, 4, 3, 2), 0);
    lm_tensor_release(y);
  }
  lm_tensor_release(x);
  lm_tensor_release(xi);
  lm_tensor_release(xf);
  lm_tensor_release(x2);
  lm_model_release(m);
  lm_engine_stats s;
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.live_tensors, 0);
  lm_engine_release(e);
}

static void test_run_errors(void)
{
  lm_engine *e = new_engine(false);
  lm_model *m = tiny(e);
  lm_tensor *y = (lm_tensor *)1;
  int64_t sh4[4] = {1, 4, 3, 2};
  lm_tensor *x4;
  lm_tensor_zeros(e, LM_F32, 4, sh4, LM_CPU, &x4);
  CHECK_INT(lm_model_run(m, NULL, &x4, 1, &y, 1), LM_ESHAPE);
  CHECK(y == NULL);
  CHECK_CONTAINS(lm_errmsg(e), "model 'tiny': input 'x' has 4 dims (1, 4, 3, 2)");
  int64_t sh5[5] = {1, 3, 4, 3, 2};
  lm_tensor *x3c;
  lm_tensor_zeros(e, LM_F32, 5, sh5, LM_CPU, &x3c);
  CHECK_INT(lm_model_run(m, NULL, &x3c, 1, &y, 1), LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(e), "has 3 channels");
  CHECK_INT(lm_model_run(m, NULL, &x3c, 2, &y, 1), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(e), "takes 1 input, got 2");
  lm_tensor *outs[2];
  CHECK_INT(lm_model_run(m, NULL, &x3c, 1, outs, 2), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(e), "gives 1 output; asked for 2");
  lm_tensor_release(x4);
  lm_tensor_release(x3c);
  lm_model_release(m);
  lm_engine_release(e);
}

typedef struct {
  lm_model *m;
  lm_tensor *x;
  int64_t d, h, w;
  int bad;
} runner;

static void *run_many(void *arg)
{
  runner *r = arg;
  for (int k = 0; k < 20; k++) {
    lm_tensor *y = NULL;
    if (lm_model_run(r->m, NULL, &r->x, 1, &y, 1) != LM_OK) r->bad++;
    else r->bad += check_y(y, r->d, r->h, r->w);
    lm_tensor_release(y);
  }
  return NULL;
}

/* One model, four threads, two shapes: plans are never shared by two runs
** at once (a shared plan would mix the buffers of two runs). */
static void test_run_concurrent(void)
{
  lm_engine *e = new_engine(false);
  lm_model *m = tiny(e);
  runner r[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    r[i].m = m;
    r[i].d = i % 2 ? 5 : 3;
    r[i].h = 4;
    r[i].w = i % 2 ? 3 : 6;
    r[i].x = make_x(e, r[i].d, r[i].h, r[i].w);
    r[i].bad = 0;
    pthread_create(&th[i], NULL, run_many, &r[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK_INT(r[i].bad, 0);
    lm_tensor_release(r[i].x);
  }
  lm_model_release(m);
  lm_engine_release(e);
}

/* ---- MODEL values ---- */

static void test_params_model(void)
{
  lm_engine *e = new_engine(false);
  lm_model *m = tiny(e);
  lm_params *p;
  lm_params_new(&p);
  CHECK_INT(lm_params_set_model(p, "model", NULL), LM_EINVAL);
  CHECK_INT(lm_params_set_model(p, "model", m), LM_OK);
  lm_model_release(m); /* the params keep it alive */
  const lm_value *v = lm_params_get(p, "model");
  CHECK(v && v->type == LM_VALUE_MODEL);
  if (v) CHECK_STR(lm_model_name(v->u.model), "tiny");
  /* Replacing and freeing release the reference (valgrind checks). */
  lm_model *m2 = tiny(e);
  CHECK_INT(lm_params_set_model(p, "model", m2), LM_OK);
  CHECK_INT(lm_params_set_int(p, "model", 3), LM_OK);
  CHECK_INT(lm_params_set_model(p, "other", m2), LM_OK);
  lm_model_release(m2);
  lm_params_free(p);
  lm_engine_release(e);
}

/* ---- the ops and the inference thread ---- */

typedef struct {
  atomic_int runs;
  pthread_t thread[8];
  char name[8][32];
} where_log;
static where_log wlog;
static atomic_bool release_blocker;

/* TestWhere records the thread it ran on; TestModelWhere does the same
** with LM_OP_MODEL. */
static int where_run(lm_op_ctx *ctx)
{
  int k = atomic_fetch_add(&wlog.runs, 1);
  if (k < 8) {
    wlog.thread[k] = pthread_self();
    pthread_getname_np(pthread_self(), wlog.name[k], sizeof wlog.name[k]);
  }
  return LM_OK;
}
static int block_run(lm_op_ctx *ctx)
{
  while (!atomic_load(&release_blocker)) {
    if (lm_ctx_cancelled(ctx)) return LM_ECANCELED;
    usleep(1000);
  }
  return where_run(ctx);
}
static const lm_op_desc where_op = {.name = "TestWhere", .flags = LM_OP_SOURCE,
                                    .run_cpu = where_run};
static const lm_op_desc model_where_op = {.name = "TestModelWhere",
                                          .flags = LM_OP_SOURCE | LM_OP_MODEL,
                                          .run_cpu = where_run};
static const lm_op_desc model_block_op = {.name = "TestModelBlock",
                                          .flags = LM_OP_SOURCE | LM_OP_MODEL,
                                          .run_cpu = block_run};

typedef struct {
  int calls, status;
  char msg[256];
} outcome;

static void record(lm_job *job, int status, void *ud)
{
  outcome *o = ud;
  o->calls++;
  o->status = status;
  snprintf(o->msg, sizeof o->msg, "%s", lm_job_errmsg(job));
}

static void test_model_ops_run_on_inference_thread(void)
{
  lm_engine *e = new_engine(false);
  /* The real ops carry the flags the executor dispatches on. */
  CHECK(lm_op_find(e, "Infer")->flags & LM_OP_MODEL);
  CHECK(lm_op_find(e, "LoadModel")->flags & LM_OP_IO);
  CHECK(!(lm_op_find(e, "LoadModel")->flags & LM_OP_MODEL));
  lm_op_register(e, &where_op);
  lm_op_register(e, &model_where_op);
  memset(&wlog, 0, sizeof wlog);
  outcome o[3] = {{0}};
  CHECK_INT(lm_call_async(e, "TestWhere", NULL, 0, NULL, record, &o[0], NULL), LM_OK);
  lm_engine_run(e, 0);
  CHECK_INT(lm_call_async(e, "TestModelWhere", NULL, 0, NULL, record, &o[1], NULL), LM_OK);
  CHECK_INT(lm_call_async(e, "TestModelWhere", NULL, 0, NULL, record, &o[2], NULL), LM_OK);
  lm_engine_run(e, 0);
  CHECK_INT(atomic_load(&wlog.runs), 3);
  for (int i = 0; i < 3; i++) CHECK_INT(o[i].status, LM_OK);
  /* The pool job ran on a libuv worker, the model jobs on one other
  ** thread, named, that is neither the loop thread nor that worker. */
  CHECK(!pthread_equal(wlog.thread[0], main_thread));
  CHECK(strcmp(wlog.name[0], "lumen-infer") != 0);
  CHECK_STR(wlog.name[1], "lumen-infer");
  CHECK_STR(wlog.name[2], "lumen-infer");
  CHECK(pthread_equal(wlog.thread[1], wlog.thread[2]));
  CHECK(!pthread_equal(wlog.thread[1], main_thread));
  CHECK(!pthread_equal(wlog.thread[1], wlog.thread[0]));
  /* The blocking call goes to the same thread and waits for it. */
  int n0 = 0;
  CHECK_INT(lm_call(e, "TestModelWhere", NULL, 0, NULL, NULL, &n0, NULL), LM_OK);
  CHECK_INT(atomic_load(&wlog.runs), 4);
  CHECK(pthread_equal(wlog.thread[3], wlog.thread[1]));
  lm_engine_release(e);

  /* Synchronous mode: inline on the loop thread, as every op. */
  e = new_engine(true);
  lm_op_register(e, &model_where_op);
  memset(&wlog, 0, sizeof wlog);
  outcome s = {0};
  CHECK_INT(lm_call_async(e, "TestModelWhere", NULL, 0, NULL, record, &s, NULL), LM_OK);
  lm_engine_run(e, 0);
  CHECK_INT(s.status, LM_OK);
  CHECK(pthread_equal(wlog.thread[0], main_thread));
  CHECK_INT(lm_call(e, "TestModelWhere", NULL, 0, NULL, NULL, &n0, NULL), LM_OK);
  CHECK(pthread_equal(wlog.thread[1], main_thread));
  lm_engine_release(e);
}

/* FIFO on one thread: a job queued behind a running one is dropped when
** cancelled; the running one sees its flag. */
static void test_inference_thread_cancel(void)
{
  lm_engine *e = new_engine(false);
  lm_op_register(e, &model_block_op);
  memset(&wlog, 0, sizeof wlog);
  atomic_store(&release_blocker, false);
  outcome a = {0}, b = {0}, c = {0};
  lm_job *ja, *jb, *jc;
  CHECK_INT(lm_call_async(e, "TestModelBlock", NULL, 0, NULL, record, &a, &ja), LM_OK);
  CHECK_INT(lm_call_async(e, "TestModelBlock", NULL, 0, NULL, record, &b, &jb), LM_OK);
  CHECK_INT(lm_call_async(e, "TestModelBlock", NULL, 0, NULL, record, &c, &jc), LM_OK);
  lm_job_cancel(jb);
  usleep(20000);
  atomic_store(&release_blocker, true);
  lm_engine_run(e, 0);
  CHECK_INT(a.status, LM_OK);
  CHECK_INT(b.status, LM_ECANCELED);
  CHECK_CONTAINS(b.msg, "TestModelBlock: cancelled");
  CHECK_INT(c.status, LM_OK);
  CHECK_INT(atomic_load(&wlog.runs), 2); /* the cancelled one never ran */
  lm_job_release(ja);
  lm_job_release(jb);
  lm_job_release(jc);
  /* A running job cancelled. */
  atomic_store(&release_blocker, false);
  outcome d = {0};
  lm_job *jd;
  CHECK_INT(lm_call_async(e, "TestModelBlock", NULL, 0, NULL, record, &d, &jd), LM_OK);
  usleep(20000);
  lm_job_cancel(jd);
  lm_engine_run(e, 0);
  CHECK_INT(d.status, LM_ECANCELED);
  lm_job_release(jd);
  /* Released with a job still queued: cancelled, the thread joined. */
  lm_call_async(e, "TestModelBlock", NULL, 0, NULL, record, &d, NULL);
  lm_engine_release(e);
}

static void test_load_model_and_infer_ops(void)
{
  make_package("ops_tiny",
               "{\"weights\": \"net.json\", \"axes\": \"ZYX\", \"labels\": [\"bg\", \"fg\"]}");
  lm_engine *e = new_engine(false);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/ops_tiny", tmp_root);
  lm_params *p;
  lm_params_new(&p);
  lm_params_set_string(p, "path", dir);
  lm_tensor *out[2];
  int nout = 2;
  lm_params *res = NULL;
  CHECK_INT(lm_call(e, "LoadModel", NULL, 0, p, out, &nout, &res), LM_OK);
  CHECK_INT(nout, 0);
  const lm_value *v = lm_params_get(res, "model");
  CHECK(v && v->type == LM_VALUE_MODEL);
  lm_model *m = v ? lm_model_retain(v->u.model) : NULL;
  lm_params_free(res);
  lm_params_free(p);
  if (!m) {
    lm_engine_release(e);
    return;
  }
  CHECK_STR(lm_model_axes(m), "ZYX");

  /* x is (C=1, X=3, Y=4, Z=5) with a layout, an affine and a trace.  The
  ** network (ZYX) sees (1, 1, Z, Y, X): its kernel runs along Z, so the
  ** logits are (2, X, Y, Z - 1) and logits[c, i, j, k] uses x[.., k] and
  ** x[.., k + 1]. */
  int64_t sh[4] = {1, 3, 4, 5};
  lm_tensor *x;
  lm_tensor_new(e, LM_F32, 4, sh, LM_CPU, &x);
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < 4; j++)
      for (int64_t k = 0; k < 5; k++) {
        int64_t idx[4] = {0, i, j, k};
        lm_tensor_set(x, idx, xval(i, j, k));
      }
  double aff[16] = {2, 0, 0, 10, 0, 3, 0, 20, 0, 0, 4, 30, 0, 0, 0, 1};
  lm_tensor_set_affine(x, aff);
  lm_tensor_set_layout(x, "CXYZ");
  lm_tensor_trace_push(x, "Before", "a=1", 4, sh, aff);
  lm_params_new(&p);
  lm_params_set_model(p, "model", m);
  outcome o = {0};
  lm_job *job;
  CHECK_INT(lm_call_async(e, "Infer", &x, 1, p, record, &o, &job), LM_OK);
  lm_engine_run(e, 0);
  CHECK_INT(o.status, LM_OK);
  lm_tensor *y = o.status == LM_OK ? lm_job_output(job, 0) : NULL;
  if (y) {
    CHECK_INT(lm_tensor_ndim(y), 4);
    CHECK_INT(lm_tensor_shape(y)[0], 2);
    CHECK_INT(lm_tensor_shape(y)[1], 3);
    CHECK_INT(lm_tensor_shape(y)[2], 4);
    CHECK_INT(lm_tensor_shape(y)[3], 4);
    int bad = 0;
    for (int c = 0; c < 2; c++)
      for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 4; j++)
          for (int64_t k = 0; k < 4; k++) {
            int64_t idx[4] = {c, i, j, k};
            float want = expect(c, xval(i, j, k), xval(i, j, k + 1));
            if (fabs(lm_tensor_get(y, idx) - want) > 1e-5) bad++;
          }
    CHECK_INT(bad, 0);
    CHECK_STR(lm_tensor_layout(y), "CXYZ");
    CHECK_NEAR(lm_tensor_affine(y)[3], 10, 0);
    CHECK_NEAR(lm_tensor_affine(y)[5], 3, 0);
    CHECK_INT(lm_tensor_trace_length(y), 1);
  }
  lm_job_release(job);

  /* (N, C, ...) input: no batch axis added, none removed. */
  lm_tensor *xb;
  lm_tensor_unsqueeze(x, 0, &xb);
  CHECK_INT(lm_call(e, "Infer", &xb, 1, p, out, &(int){1}, NULL), LM_OK);
  CHECK_INT(lm_tensor_ndim(out[0]), 5);
  CHECK_INT(lm_tensor_shape(out[0])[4], 4);
  lm_tensor_release(out[0]);
  lm_tensor_release(xb);

  /* Errors: rank, option types, missing model, output index. */
  int64_t sh2[2] = {3, 4};
  lm_tensor *x2;
  lm_tensor_zeros(e, LM_F32, 2, sh2, LM_CPU, &x2);
  nout = 1;
  CHECK_INT(lm_call(e, "Infer", &x2, 1, p, out, &nout, NULL), LM_ESHAPE);
  CHECK_CONTAINS(lm_errmsg(e), "Infer: x has 2 dims");
  lm_params_set_int(p, "output", 1);
  CHECK_INT(lm_call(e, "Infer", &x, 1, p, out, &nout, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(e), "option 'output' is 1");
  lm_params_free(p);
  lm_params_new(&p);
  lm_params_set_string(p, "model", "tiny");
  CHECK_INT(lm_call(e, "Infer", &x, 1, p, out, &nout, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(e), "Infer: option 'model' must be a model, got string");
  lm_params_free(p);
  CHECK_INT(lm_call(e, "Infer", &x, 1, NULL, out, &nout, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(e), "missing required option 'model'");
  lm_params_new(&p);
  lm_params_set_string(p, "path", dir);
  lm_params_set_string(p, "axes", "YXZ");
  CHECK_INT(lm_call(e, "LoadModel", NULL, 0, p, out, &nout, NULL), LM_EINVAL);
  CHECK_CONTAINS(lm_errmsg(e), "LoadModel: option 'axes' is \"YXZ\"");
  lm_params_set_string(p, "axes", "XYZ");
  lm_params_set_string(p, "path", "/nonexistent/model.onnx");
  CHECK_INT(lm_call(e, "LoadModel", NULL, 0, p, out, &nout, NULL), LM_ENOENT);
  CHECK_CONTAINS(lm_errmsg(e), "LoadModel: /nonexistent/model.onnx");
  lm_params_free(p);
  lm_tensor_release(x2);
  lm_tensor_release(x);
  lm_model_release(m);
  lm_engine_stats s;
  lm_engine_stats_get(e, &s);
  CHECK_INT(s.live_tensors, 0);
  CHECK_INT(s.live_jobs, 0);
  lm_engine_release(e);
}

/* A model may outlive the engine handle (zombie semantics). */
static void test_model_outlives_engine_handle(void)
{
  lm_engine *e = new_engine(false);
  lm_model *m = tiny(e);
  lm_tensor *x = make_x(e, 3, 2, 2), *y = NULL;
  lm_engine_release(e);
  CHECK_INT(lm_model_run(m, NULL, &x, 1, &y, 1), LM_OK);
  if (y) CHECK_INT(check_y(y, 3, 2, 2), 0);
  lm_tensor_release(y);
  lm_tensor_release(x);
  lm_model_release(m); /* the engine goes with its last reference */
}

/* precision = bfloat16 reaches the plan: the values stay within bf16's
** rounding (8 significant bits) of the float32 ones. */
static void test_bfloat16_option(void)
{
  lm_engine *e = new_engine(false);
  lm_model_options o;
  lm_model_options_init(&o);
  o.precision = "bfloat16";
  lm_model *m = NULL;
  CHECK_INT(lm_model_load_graph(e, graph_json, strlen(graph_json), NULL, &o, &m), LM_OK);
  if (!m) {
    lm_engine_release(e);
    return;
  }
  CHECK_CONTAINS(lm_model_metadata(m), "\"precision\":\"bfloat16\"");
  lm_tensor *x = make_x(e, 5, 3, 4), *y = NULL;
  CHECK_INT(lm_model_run(m, NULL, &x, 1, &y, 1), LM_OK);
  int bad = 0;
  for (int c = 0; y && c < 2; c++)
    for (int64_t i = 0; i < 4; i++)
      for (int64_t j = 0; j < 3; j++)
        for (int64_t k = 0; k < 4; k++) {
          int64_t idx[5] = {0, c, i, j, k};
          float want = expect(c, xval(i, j, k), xval(i + 1, j, k));
          if (fabs(lm_tensor_get(y, idx) - want) > 0.02 * fabs(want) + 0.02) bad++;
        }
  CHECK_INT(bad, 0);
  lm_tensor_release(y);
  lm_tensor_release(x);
  lm_model_release(m);
  lm_engine_release(e);
}

/* One model, two engines: outputs belong to the engine of the inputs. */
static void test_model_shared_by_engines(void)
{
  lm_engine *a = new_engine(false), *b = new_engine(false);
  lm_model *m = tiny(a);
  lm_tensor *x = make_x(b, 3, 2, 2), *y = NULL;
  CHECK_INT(lm_model_run(m, NULL, &x, 1, &y, 1), LM_OK);
  if (y) {
    CHECK(lm_tensor_engine(y) == b);
    CHECK_INT(check_y(y, 3, 2, 2), 0);
  }
  lm_tensor_release(y);
  lm_tensor_release(x);
  lm_engine_stats s;
  lm_engine_stats_get(a, &s);
  CHECK_INT(s.live_tensors, 0);
  lm_model_release(m);
  lm_engine_release(a);
  lm_engine_release(b);
}

static void remove_tree(const char *dir)
{
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
}

int main(void)
{
  main_thread = pthread_self();
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(tmp_root, sizeof tmp_root, "%s/lumen_model_api_XXXXXX", base);
  if (!mkdtemp(tmp_root)) {
    printf("Bail out! mkdtemp failed\n");
    return 1;
  }
  RUN(test_load_graph_fields);
  RUN(test_load_graph_errors);
  RUN(test_package_metadata);
  RUN(test_package_errors);
  RUN(test_repository);
  RUN(test_run_values);
  RUN(test_run_errors);
  RUN(test_run_concurrent);
  RUN(test_params_model);
  RUN(test_model_ops_run_on_inference_thread);
  RUN(test_inference_thread_cancel);
  RUN(test_load_model_and_infer_ops);
  RUN(test_model_outlives_engine_handle);
  RUN(test_model_shared_by_engines);
  RUN(test_bfloat16_option);
  remove_tree(tmp_root);
  TAP_DONE();
}
