/* Runs the ONNX harness without libFuzzer: over files or folders given on
 * the command line, or over seed models built here (every attribute kind,
 * every typed data field, Constant nodes, value_info, dim_param, a
 * model-local function with attribute references), then
 * truncations and byte flips of each, so the harness runs in the normal
 * test suite.
 *
 *   fuzz_onnx_replay                      generate and run the corpus (TAP)
 *   fuzz_onnx_replay --write-corpus DIR   write the seeds to DIR, with the
 *                                         ONNX node test models when installed
 *   fuzz_onnx_replay FILE|DIR...          replay inputs (crash reproducers) */
#include <dirent.h>
#include <sys/stat.h>

#include "../c/pb_writer.h"
#include "../c/tap.h"
#include "fuzz_replay_files.h"
#include "loaders.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef void (*seed_fn)(const uint8_t *buf, size_t len, void *ctx);

#define NSEEDS 6

/* Seed k: the toy graph of pb_writer.h plus one group of features. */
static pbw make_seed(int k)
{
  pbw g = {0}, attrs = {0}, a = {0}, t = {0}, n = {0};
  if (k == 1) {   /* every attribute kind on the activation node */
    float fl[3] = {0.5f, -1, 2};
    pbw_str(&a, 1, "fl");
    pbw_bytes(&a, 7, fl, sizeof fl);
    pbw_int(&a, 20, 6);
    pbw_msg(&attrs, 5, &a);
    pbw_str(&a, 1, "in");
    pbw_bytes(&a, 8, "\x01\x02\xff\x01", 4);
    pbw_int(&a, 20, 7);
    pbw_msg(&attrs, 5, &a);
    pbw_str(&a, 1, "ss");
    pbw_str(&a, 9, "a");
    pbw_str(&a, 9, "bc");
    pbw_int(&a, 20, 8);
    pbw_msg(&attrs, 5, &a);
    pbw_str(&a, 1, "s");
    pbw_str(&a, 4, "SAME_UPPER");
    pbw_int(&a, 20, 3);
    pbw_msg(&attrs, 5, &a);
    pbw_str(&a, 1, "i");
    pbw_int(&a, 3, -7);
    pbw_msg(&attrs, 5, &a);
  }
  pbw_toy_graph(&g, k == 1 ? &attrs : NULL);
  free(attrs.p);
  if (k == 2) {   /* typed data fields */
    pbw_int(&t, 1, 2);
    pbw_int(&t, 2, 7);
    pbw_str(&t, 8, "i64");
    pbw_int(&t, 7, -5);
    pbw_int(&t, 7, 9);
    pbw_msg(&g, 5, &t);
    pbw_int(&t, 1, 2);
    pbw_int(&t, 2, 10);
    pbw_str(&t, 8, "h");
    pbw_bytes(&t, 5, "\x80\x78\x00", 3);
    pbw_msg(&g, 5, &t);
    double d[2] = {1, -2};
    pbw_int(&t, 1, 2);
    pbw_int(&t, 2, 11);
    pbw_str(&t, 8, "d");
    pbw_bytes(&t, 10, d, sizeof d);
    pbw_msg(&g, 5, &t);
    pbw_int(&t, 1, 1);
    pbw_int(&t, 2, 12);
    pbw_str(&t, 8, "u32");
    pbw_int(&t, 11, 4000000000u);
    pbw_msg(&g, 5, &t);
  }
  if (k == 3) {   /* a Constant node feeding an Add */
    float v[3] = {1, 2, 3};
    int64_t dims[1] = {3};
    pbw_tensor_f32(&t, NULL, 1, dims, v);
    pbw_str(&a, 1, "value");
    pbw_msg(&a, 5, &t);
    pbw_int(&a, 20, 4);
    pbw_str(&n, 2, "c");
    pbw_str(&n, 4, "Constant");
    pbw_msg(&n, 5, &a);
    pbw_msg(&g, 1, &n);
    pbw_str(&n, 1, "y");
    pbw_str(&n, 1, "c");
    pbw_str(&n, 1, "");
    pbw_str(&n, 2, "z");
    pbw_str(&n, 4, "Add");
    pbw_str(&n, 7, "ai.onnx");
    pbw_msg(&g, 1, &n);
  }
  if (k == 4) {   /* value_info with dim_param; a second, rank-0 declaration of m */
    int64_t dims[3] = {-1, 2, 4};
    pbw_value_info(&g, 13, "m", 3, dims);
    pbw_value_info(&g, 12, "m", 0, NULL);
  }
  if (k == 5) {   /* a call of a model-local function */
    pbw_str(&n, 1, "y");
    pbw_str(&n, 1, "w");
    pbw_str(&n, 2, "z");
    pbw_str(&n, 4, "Blk");
    pbw_str(&n, 7, "local");
    pbw_str(&a, 1, "alpha");
    pbw_f32(&a, 2, 0.25f);
    pbw_msg(&n, 5, &a);
    pbw_msg(&g, 1, &n);
  }
  pbw m = pbw_model(&g);
  if (k == 5) {
    pbw fn = {0};
    pbw_str(&fn, 1, "Blk");
    pbw_str(&fn, 10, "local");
    pbw_str(&fn, 4, "p");
    pbw_str(&fn, 4, "q");
    pbw_str(&fn, 5, "r");
    pbw_str(&n, 1, "p");
    pbw_str(&n, 1, "q");
    pbw_str(&n, 2, "u");
    pbw_str(&n, 4, "Add");
    pbw_msg(&fn, 7, &n);
    pbw_str(&n, 1, "u");
    pbw_str(&n, 2, "r");
    pbw_str(&n, 4, "LeakyRelu");
    pbw_str(&a, 1, "alpha");
    pbw_str(&a, 21, "alpha");
    pbw_int(&a, 20, 1);
    pbw_msg(&n, 5, &a);
    pbw_str(&a, 1, "beta");
    pbw_str(&a, 21, "b");
    pbw_msg(&n, 5, &a);
    pbw_msg(&fn, 7, &n);
    pbw_str(&a, 1, "b");
    pbw_int(&a, 3, 3);
    pbw_msg(&fn, 11, &a);
    pbw_msg(&m, 25, &fn);
  }
  return m;
}

static void for_each_seed(seed_fn fn, void *ctx)
{
  for (int k = 0; k < NSEEDS; k++) {
    pbw m = make_seed(k);
    fn(m.p, m.n, ctx);
    free(m.p);
  }
}

static uint32_t rng = 4242;
static uint32_t next_rand(void)
{
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}

static void run_mutations(const uint8_t *buf, size_t len, void *ctx)
{
  long *count = ctx;
  LLVMFuzzerTestOneInput(buf, len);
  (*count)++;
  uint8_t *m = malloc(len + 1);
  for (size_t cut = 0; cut < len; cut++) {
    memcpy(m, buf, cut);
    LLVMFuzzerTestOneInput(m, cut);
    (*count)++;
  }
  /* Byte flips: lengths, keys and varint continuation bits matter most. */
  for (int i = 0; i < 400; i++) {
    memcpy(m, buf, len);
    int flips = 1 + (int)(next_rand() % 3);
    for (int f = 0; f < flips; f++) {
      size_t pos = next_rand() % len;
      static const uint8_t pick[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x12, 0x0a, 0x3a};
      m[pos] = i % 2 ? pick[next_rand() % sizeof pick] : (uint8_t)(m[pos] ^ (1u << (next_rand() % 8)));
    }
    LLVMFuzzerTestOneInput(m, len);
    (*count)++;
  }
  free(m);
}

static void count_valid(const uint8_t *buf, size_t len, void *ctx)
{
  lm_graph *g = NULL;
  char err[512];
  if (lm_onnx_load_buffer(buf, len, "seed.onnx", &g, err, sizeof err) == LM_OK) (*(int *)ctx)++;
  else printf("# seed refused: %s\n", err);
  lm_graph_free(g);
}

static void test_seeds_load(void)
{
  int valid = 0;
  for_each_seed(count_valid, &valid);
  CHECK_INT(valid, NSEEDS);
}

static void test_generated_corpus(void)
{
  long count = 0;
  for_each_seed(run_mutations, &count);
  printf("# %ld inputs ran through the harness\n", count);
  CHECK(count > 3000);
}

static void write_file(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f) return;
  fwrite(buf, 1, len, f);
  fclose(f);
}

static void write_seed(const uint8_t *buf, size_t len, void *ctx)
{
  static int n;
  char name[64];
  snprintf(name, sizeof name, "seed-%04d.onnx", n++);
  write_file(ctx, name, buf, len);
}

/* The node test models are real exporter output: good seeds. */
static void write_node_models(const char *dir)
{
  const char *root = "/usr/share/libonnx-testdata/data/node";
  DIR *d = opendir(root);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/model.onnx", root, e->d_name);
    FILE *f = fopen(p, "rb");
    if (!f) continue;
    uint8_t buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    bool whole = feof(f);
    fclose(f);
    char name[512];
    snprintf(name, sizeof name, "node-%s.onnx", e->d_name);
    if (whole) write_file(dir, name, buf, n);
  }
  closedir(d);
}

int main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
    mkdir(argv[2], 0755);
    for_each_seed(write_seed, argv[2]);
    write_node_models(argv[2]);
    return 0;
  }
  if (argc > 1) {
    for (int i = 1; i < argc; i++) fuzz_replay_path(argv[i]);
    printf("replayed %d path(s) without a crash\n", argc - 1);
    return 0;
  }
  RUN(test_seeds_load);
  RUN(test_generated_corpus);
  TAP_DONE();
}
