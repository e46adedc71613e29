/* ONNX op conformance: every node test of the ONNX test data
 * (/usr/share/libonnx-testdata/data/node/NAME/{model.onnx,test_data_set_0})
 * whose model uses only ops of lm_cpu_supported_ops() is loaded
 * (onnx_reader.c), prepared (graph_passes.c), planned for the shapes of
 * test_data_set_0 (plan.c) and run; every output is compared with
 * output_N.pb: float |a - b| <= 1e-4 + 1e-4 |b| (NaN where NaN is
 * expected), integers exactly.
 *
 * The pytorch-converted, pytorch-operator and simple folders of the same
 * package (same layout) run too, their names prefixed with the folder.
 *
 * Each test runs in a child process: a crash fails that test only.
 * One TAP line per test folder.  Skipped, with the reason counted in the
 * summary: models using an op lumen does not support, tests with non-float
 * inputs or outputs (the plan API takes and gives float32 only), and the
 * short list of known-unsupported attribute variants below.  A test that
 * uses supported ops and fails is a failure.
 *
 *   test_onnx_conformance [SUBSTRING]   only the folders whose name has it
 * LUMEN_ONNX_NODE_DIR overrides the test data folder; exit 77 without it. */
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu_ops.h"
#include "graph.h"
#include "loaders.h"
#include "onnx_wire.h"
#include "plan.h"

#define MAX_IO 16

/* Variants lumen deliberately does not run, with why.  Matched as a prefix
** of the folder name.  Only attribute or mode variants belong here: an op
** that is supported must pass its plain tests. */
static const struct {
  const char *prefix, *reason;
} known_unsupported[] = {
  /* BatchNormalization training mode (outputs running mean / var): lumen
   * runs inference only. */
  {"test_batchnorm_epsilon_training_mode", "BatchNormalization training_mode=1 (inference only)"},
  {"test_batchnorm_example_training_mode", "BatchNormalization training_mode=1 (inference only)"},
};

/* Input slots whose values exported models hold as constants, and which
** lumen's plans need as constants: weights (repacked for oneDNN when the
** plan is built) and values that decide output shapes (Resize scales,
** Reshape shapes, Slice bounds, ...).  The node tests feed them as graph
** inputs; a graph input that feeds only such slots is bound as a constant
** from its test_data_set_0 file, as an exporter would have written it. */
static const struct {
  const char *op;
  unsigned slots;   /* bit i: input i */
} constant_slots[] = {
  {"Conv", 0x6}, {"ConvTranspose", 0x6}, {"Resize", 0xe}, {"Upsample", 0x2}, {"Range", 0x7},
  {"Reshape", 0x2}, {"Expand", 0x2}, {"Tile", 0x2}, {"Slice", 0x1e}, {"Pad", 0xe},
  {"Unsqueeze", 0x2}, {"Squeeze", 0x2}, {"ConstantOfShape", 0x1}, {"Split", 0x2},
  {"ReduceSum", 0x2}, {"ReduceMean", 0x2}, {"ReduceMax", 0x2}, {"ReduceMin", 0x2},
  {"ReduceProd", 0x2}, {"ReduceL1", 0x2}, {"ReduceL2", 0x2}, {"ReduceLogSum", 0x2},
  {"ReduceLogSumExp", 0x2}, {"ReduceSumSquare", 0x2}, {"TopK", 0x2}, {"OneHot", 0x2},
};

static bool constant_slot(const char *op, int slot)
{
  for (size_t i = 0; i < sizeof constant_slots / sizeof constant_slots[0]; i++)
    if (strcmp(constant_slots[i].op, op) == 0) return slot < 32 && (constant_slots[i].slots >> slot & 1);
  return false;
}

/* True when graph input value v feeds constant slots only. */
static bool feeds_constant_slots_only(const lm_graph *g, int v)
{
  int uses = 0;
  for (int i = 0; i < g->nnodes; i++)
    for (int j = 0; j < g->nodes[i].nin; j++)
      if (g->nodes[i].in[j] == v) {
        if (!constant_slot(g->nodes[i].op, j)) return false;
        uses++;
      }
  return uses > 0;
}

typedef struct counts {
  int passed, failed, skipped_op, skipped_io, skipped_variant;
  int bound;   /* passed with inputs bound as constants */
} counts;

static const char *const *supported;

static bool op_supported(const char *op, size_t n)
{
  for (int i = 0; supported[i]; i++)
    if (strlen(supported[i]) == n && memcmp(supported[i], op, n) == 0) return true;
  return false;
}

/* The first op of the model's main graph that lumen does not support
** (copied into buf), or NULL when all are supported.  Reads the wire form
** directly so that models the reader refuses (subgraphs) are classified
** too; a malformed file gives "?" (the load then reports it). */
static const char *first_unsupported_op(const uint8_t *buf, size_t len, char *out, size_t cap)
{
  const char *why;
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  const uint8_t *graph = NULL;
  size_t graph_len = 0;
  int k;
  while ((k = pb_next(&c, &f, &why)) > 0)
    if (f.num == 7 && f.wire == PB_LEN) graph = f.data, graph_len = f.len;
  if (k < 0 || !graph) return NULL;
  c = pb_cursor_of(graph, graph_len);
  while ((k = pb_next(&c, &f, &why)) > 0) {
    if (f.num != 1 || f.wire != PB_LEN) continue;
    pb_cursor nc = pb_cursor_of(f.data, f.len);
    pb_field nf;
    const uint8_t *op = NULL, *dom = NULL;
    size_t op_len = 0, dom_len = 0;
    while (pb_next(&nc, &nf, &why) > 0) {
      if (nf.num == 4 && nf.wire == PB_LEN) op = nf.data, op_len = nf.len;
      if (nf.num == 7 && nf.wire == PB_LEN) dom = nf.data, dom_len = nf.len;
    }
    bool default_domain = dom_len == 0 || (dom_len == 7 && memcmp(dom, "ai.onnx", 7) == 0);
    if (!op || !default_domain || !op_supported((const char *)op, op_len)) {
      size_t n = op_len < cap - 1 ? op_len : cap - 1;
      if (op) memcpy(out, op, n);
      out[op ? n : 0] = 0;
      if (!default_domain) snprintf(out, cap, "%.*s (domain %.*s)", (int)(op_len < 40 ? op_len : 40),
                                    op ? (const char *)op : "", (int)(dom_len < 40 ? dom_len : 40), dom);
      return out;
    }
  }
  return NULL;
}

static uint8_t *read_all(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  *len = buf ? fread(buf, 1, n > 0 ? (size_t)n : 0, f) : 0;
  fclose(f);
  return buf;
}

typedef struct io_tensor {
  lm_dtype dt;
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  void *data;
  size_t nbytes;
} io_tensor;

/* The files prefix_0.pb, prefix_1.pb, ... of test_data_set_0; their count,
** or -1 with msg set. */
static int read_io(const char *dir, const char *prefix, io_tensor *t, char *msg, size_t cap)
{
  int n = 0;
  for (; n < MAX_IO; n++) {
    char p[1200];
    snprintf(p, sizeof p, "%s/test_data_set_0/%s_%d.pb", dir, prefix, n);
    struct stat sb;
    if (stat(p, &sb) != 0) break;
    char err[512];
    if (lm_onnx_read_tensor_file(p, &t[n].dt, &t[n].ndim, t[n].shape, &t[n].data, &t[n].nbytes, err,
                                 sizeof err) != LM_OK) {
      snprintf(msg, cap, "%s", err);
      return -1 - n;
    }
  }
  return n;
}

static void free_io(io_tensor *t, int n)
{
  for (int i = 0; i < n; i++) free(t[i].data);
}

/* Compare one output; false with msg set on a mismatch. */
static bool compare(const float *got, const io_tensor *want, int64_t numel, char *msg, size_t cap)
{
  const float *w = want->data;
  int64_t bad = 0, first = -1;
  double worst = 0;
  for (int64_t i = 0; i < numel; i++) {
    double a = got[i], b = w[i];
    bool ok = isnan(b) ? isnan(a) : (isinf(b) ? a == b : fabs(a - b) <= 1e-4 + 1e-4 * fabs(b));
    if (!ok) {
      if (first < 0) first = i;
      bad++;
      double d = fabs(a - b);
      if (!(d <= worst)) worst = d;
    }
  }
  if (!bad) return true;
  snprintf(msg, cap, "%lld of %lld values differ; first at %lld: got %.9g, want %.9g; max |diff| %.3g",
           (long long)bad, (long long)numel, (long long)first, (double)got[first], (double)w[first], worst);
  return false;
}

typedef enum { R_PASS, R_FAIL, R_SKIP_OP, R_SKIP_IO, R_SKIP_VARIANT } result;

static result run_one(const char *dir, const char *name, char *msg, size_t cap, bool *bound)
{
  for (size_t i = 0; i < sizeof known_unsupported / sizeof known_unsupported[0]; i++)
    if (strncmp(name, known_unsupported[i].prefix, strlen(known_unsupported[i].prefix)) == 0) {
      snprintf(msg, cap, "%s", known_unsupported[i].reason);
      return R_SKIP_VARIANT;
    }
  char path[1100];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  size_t len;
  uint8_t *buf = read_all(path, &len);
  if (!buf) {
    snprintf(msg, cap, "cannot read %.600s", path);
    return R_FAIL;
  }
  char op[128];
  const char *unsupported = first_unsupported_op(buf, len, op, sizeof op);
  free(buf);
  if (unsupported) {
    snprintf(msg, cap, "op %s not supported", unsupported);
    return R_SKIP_OP;
  }

  io_tensor in[MAX_IO] = {0}, out[MAX_IO] = {0};
  int nin = read_io(dir, "input", in, msg, cap);
  if (nin < 0) {
    free_io(in, -1 - nin);
    return R_SKIP_IO;   /* a dtype lumen has no type for (string, ...) */
  }
  int nout = read_io(dir, "output", out, msg, cap);
  if (nout < 0) {
    free_io(in, nin);
    free_io(out, -1 - nout);
    return R_SKIP_IO;
  }
  result res = R_FAIL;
  lm_graph *g = NULL;
  lm_plan *plan = NULL;
  float *outs[MAX_IO] = {0};
  for (int i = 0; i < nout; i++)
    if (out[i].dt != LM_F32) {
      snprintf(msg, cap, "output %d is %s", i, lm_dtype_name(out[i].dt));
      res = R_SKIP_IO;
      goto done;
    }
  char err[512];
  if (lm_onnx_load(path, &g, err, sizeof err) != LM_OK) {
    snprintf(msg, cap, "load: %s", err);
    goto done;
  }
  if (g->ninputs != nin || g->noutputs != nout) {
    snprintf(msg, cap, "graph has %d inputs, %d outputs; test_data_set_0 has %d, %d", g->ninputs,
             g->noutputs, nin, nout);
    goto done;
  }
  /* Bind weights and shape-deciding inputs as constants (see constant_slots);
   * what stays an input must be float32. */
  bool bind[MAX_IO] = {false};
  int kept = 0;
  for (int i = 0; i < nin; i++) {
    int v = g->inputs[i];
    bind[i] = feeds_constant_slots_only(g, v);
    if (!bind[i] && in[i].dt != LM_F32) {
      snprintf(msg, cap, "input %d is %s", i, lm_dtype_name(in[i].dt));
      res = R_SKIP_IO;
      goto done;
    }
  }
  for (int i = 0; i < nin; i++) {
    int v = g->inputs[i];
    if (!bind[i]) {
      /* The kept inputs move down (no slot keeps a pointer twice). */
      g->inputs[kept] = v;
      if (kept != i) {
        in[kept] = in[i];
        in[i].data = NULL;
      }
      kept++;
      continue;
    }
    g->values[v].is_input = false;
    if (lm_graph_set_const(g, v, in[i].dt, in[i].ndim, in[i].shape, in[i].data, true) != LM_OK) {
      snprintf(msg, cap, "binding input %d: %s", i, g->err);
      goto done;
    }
    free(in[i].data);
    in[i].data = NULL;
    *bound = true;
  }
  g->ninputs = kept;
  nin = kept;
  if (lm_graph_prepare(g) != LM_OK) {
    snprintf(msg, cap, "prepare: %s", g->err);
    goto done;
  }
  int ndims[MAX_IO];
  const int64_t *shapes[MAX_IO];
  const float *inputs[MAX_IO];
  for (int i = 0; i < nin; i++) {
    ndims[i] = in[i].ndim;
    shapes[i] = in[i].shape;
    inputs[i] = in[i].data;
  }
  lm_plan_options opt = {.bf16 = false, .threads = 0};
  if (lm_plan_new(g, ndims, shapes, &opt, &plan, err, sizeof err) != LM_OK) {
    snprintf(msg, cap, "plan: %s", err);
    goto done;
  }
  if (lm_plan_noutputs(plan) != nout) {
    snprintf(msg, cap, "plan has %d outputs, want %d", lm_plan_noutputs(plan), nout);
    goto done;
  }
  for (int i = 0; i < nout; i++) {
    int64_t shape[LM_MAX_DIMS];
    int nd = lm_plan_output_shape(plan, i, shape);
    bool same = nd == out[i].ndim;
    for (int d = 0; same && d < nd; d++) same = shape[d] == out[i].shape[d];
    if (!same) {
      char a[128] = "", b[128] = "";
      for (int d = 0, k = 0; d < nd && d < LM_MAX_DIMS; d++)
        k += snprintf(a + k, sizeof a - (size_t)k, d ? ",%lld" : "%lld", (long long)shape[d]);
      for (int d = 0, k = 0; d < out[i].ndim; d++)
        k += snprintf(b + k, sizeof b - (size_t)k, d ? ",%lld" : "%lld", (long long)out[i].shape[d]);
      snprintf(msg, cap, "output %d has shape [%s], want [%s]", i, a, b);
      goto done;
    }
    outs[i] = malloc(out[i].nbytes ? out[i].nbytes : 4);
    if (!outs[i]) {
      snprintf(msg, cap, "out of memory");
      goto done;
    }
    /* Poison: an output the plan does not write in full shows up. */
    memset(outs[i], 0xff, out[i].nbytes);
  }
  if (lm_plan_run(plan, inputs, outs, NULL, err, sizeof err) != LM_OK) {
    snprintf(msg, cap, "run: %s", err);
    goto done;
  }
  res = R_PASS;
  for (int i = 0; i < nout && res == R_PASS; i++) {
    char m[400];
    if (!compare(outs[i], &out[i], (int64_t)(out[i].nbytes / 4), m, sizeof m)) {
      snprintf(msg, cap, "output %d: %s", i, m);
      res = R_FAIL;
    }
  }
done:
  for (int i = 0; i < nout; i++) free(outs[i]);
  lm_plan_free(plan);
  lm_graph_free(g);
  free_io(in, nin);
  free_io(out, nout);
  return res;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
  return strcmp((*a)->d_name, (*b)->d_name);
}

/* run_one in a child process, so that a kernel that crashes fails its own
** test and the others still run (and say what they say). */
typedef struct child_report {
  int result;
  bool bound;
  char msg[768];
} child_report;

static result run_isolated(const char *dir, const char *name, char *msg, size_t cap, bool *bound)
{
  int fds[2];
  if (pipe(fds) != 0) return run_one(dir, name, msg, cap, bound);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return run_one(dir, name, msg, cap, bound);
  }
  if (pid == 0) {
    close(fds[0]);
    child_report rep = {0};
    rep.result = run_one(dir, name, rep.msg, sizeof rep.msg, &rep.bound);
    ssize_t w = write(fds[1], &rep, sizeof rep);
    _exit(w == (ssize_t)sizeof rep ? 0 : 3);
  }
  close(fds[1]);
  child_report rep;
  size_t got = 0;
  while (got < sizeof rep) {
    ssize_t k = read(fds[0], (char *)&rep + got, sizeof rep - got);
    if (k <= 0) break;
    got += (size_t)k;
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got == sizeof rep && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    snprintf(msg, cap, "%s", rep.msg);
    *bound = rep.bound;
    return (result)rep.result;
  }
  if (WIFSIGNALED(status))
    snprintf(msg, cap, "crashed (signal %d: %s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(msg, cap, "the test process exited with status %d", WEXITSTATUS(status));
  return R_FAIL;
}

/* Every test folder of one root; "label/" prefixes the names it prints. */
static void run_root(const char *root, const char *label, const char *filter, counts *c, int *tap)
{
  struct dirent **ents;
  int n = scandir(root, &ents, NULL, by_name);
  if (n < 0) return;
  for (int i = 0; i < n; i++) {
    const char *name = ents[i]->d_name;
    char dir[1024], model[1100], shown[600];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    snprintf(shown, sizeof shown, "%s%s", label, name);
    struct stat sb;
    if (name[0] == '.' || (filter && !strstr(shown, filter)) || stat(model, &sb) != 0) {
      free(ents[i]);
      continue;
    }
    char msg[768] = "";
    bool bound = false;
    result r = run_isolated(dir, name, msg, sizeof msg, &bound);
    int t = ++*tap;
    switch (r) {
    case R_PASS:
      c->passed++;
      c->bound += bound;
      printf("ok %d - %s%s\n", t, shown, bound ? " (weights / shape inputs bound as constants)" : "");
      break;
    case R_FAIL: c->failed++; printf("not ok %d - %s\n#   %s\n", t, shown, msg); break;
    case R_SKIP_OP: c->skipped_op++; printf("ok %d - %s # SKIP %s\n", t, shown, msg); break;
    case R_SKIP_IO: c->skipped_io++; printf("ok %d - %s # SKIP non-float I/O: %s\n", t, shown, msg); break;
    case R_SKIP_VARIANT:
      c->skipped_variant++;
      printf("ok %d - %s # SKIP known-unsupported variant: %s\n", t, shown, msg);
      break;
    }
    fflush(stdout);
    free(ents[i]);
  }
  free(ents);
}

int main(int argc, char **argv)
{
  const char *filter = argc > 1 ? argv[1] : NULL;
  const char *one = getenv("LUMEN_ONNX_NODE_DIR");
  const char *data = "/usr/share/libonnx-testdata/data";
  char node[256];
  snprintf(node, sizeof node, "%s/node", data);
  struct stat sb;
  if (!(one && *one) && stat(node, &sb) != 0) {
    printf("1..0 # SKIP no ONNX node test data in %s (Debian package libonnx-testdata)\n", node);
    return 77;
  }
  supported = lm_cpu_supported_ops();
  counts c = {0};
  int tap = 0;
  if (one && *one) {
    run_root(one, "", filter, &c, &tap);
  } else {
    /* The node tests, then the same layout exported from PyTorch modules
     * (Conv3d, BatchNorm3d, PReLU, pools) and small multi-node models. */
    static const char *const roots[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
      char root[512], label[64];
      snprintf(root, sizeof root, "%s/%s", data, roots[i]);
      snprintf(label, sizeof label, "%s/", roots[i]);
      run_root(root, i == 0 ? "" : label, filter, &c, &tap);
    }
  }
  printf("# summary: %d passed (%d of them with inputs bound as constants), %d failed; skipped: "
         "%d unsupported op, %d non-float I/O, %d known-unsupported variant\n",
         c.passed, c.bound, c.failed, c.skipped_op, c.skipped_io, c.skipped_variant);
  printf("1..%d\n", tap);
  return c.failed ? 1 : 0;
}
