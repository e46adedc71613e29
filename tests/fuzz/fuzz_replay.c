/* Runs the fuzz harness without libFuzzer: over files or folders given on
 * the command line, or over a seed corpus generated here (valid images of
 * every kind, then truncations and byte flips of each), so the harness is
 * exercised by the normal test suite and cannot rot.
 *
 *   fuzz_nifti_replay                      generate and run the corpus (TAP)
 *   fuzz_nifti_replay --write-corpus DIR   write the seed corpus to DIR
 *   fuzz_nifti_replay FILE|DIR...          replay inputs (crash reproducers) */
#include <sys/stat.h>

#include "../c/tap.h"
#include "fuzz_replay_files.h"
#include "../c/test_nifti_util.h"
#include "nifti_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef void (*seed_fn)(const uint8_t *buf, size_t len, void *ctx);

/* The valid seeds: every datatype, both versions and byte orders, scaled,
 * qform / sform / base affines, 4-D, gzip and our multi-member gzip. */
static void for_each_seed(seed_fn fn, void *ctx)
{
  static const int types[] = {2, 256, 4, 512, 8, 768, 1024, 1280, 16, 64, 32, 128};
  for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
    for (int v = 1; v <= 2; v++)
      for (int big = 0; big <= 1; big++) {
        tn_spec s = tn_default(types[k], 3, 4, 2);
        s.version = v;
        s.big = big;
        s.vox_offset = v == 1 ? 352 : 544;
        if (k % 3 == 0) { s.slope = 1.5; s.inter = -2; }
        if (k % 4 == 1) { s.sform_code = 0; s.qform_code = 1; s.quatern[0] = 0.3; s.pixdim[0] = -1; }
        if (k % 4 == 2) { s.sform_code = 0; }
        if (k % 5 == 3) { s.ndim = 4; s.dim[3] = 2; }
        size_t len;
        uint8_t *img = tn_image(&s, 0, &len);
        fn(img, len, ctx);
        size_t gl;
        uint8_t *gz = tn_gzip(img, len, &gl);
        fn(gz, gl, ctx);
        free(gz);
        nifti_gz_members m;
        nifti_err e;
        if (nifti_gzip_members(img, len, 1, 100, NULL, &m, &e) == LM_OK) {
          uint8_t *cat = malloc(m.total);
          size_t o = 0;
          for (int i = 0; i < m.count; i++) {
            memcpy(cat + o, m.data[i], m.size[i]);
            o += m.size[i];
          }
          fn(cat, m.total, ctx);
          free(cat);
          nifti_gz_members_free(&m);
        }
        free(img);
      }
}

static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}

typedef struct stats {
  long inputs;
} stats;

static void run_mutations(const uint8_t *buf, size_t len, void *ctx)
{
  stats *st = ctx;
  LLVMFuzzerTestOneInput(buf, len);
  st->inputs++;
  uint8_t *m = malloc(len + 1);
  /* Truncations at a spread of lengths. */
  for (int i = 1; i <= 16; i++) {
    size_t cut = len * (size_t)i / 17;
    memcpy(m, buf, cut);
    LLVMFuzzerTestOneInput(m, cut);
    st->inputs++;
  }
  /* Random byte flips, header-heavy. */
  for (int i = 0; i < 64; i++) {
    memcpy(m, buf, len);
    int flips = 1 + (int)(next_rand() % 4);
    for (int f = 0; f < flips; f++) {
      size_t pos = (i % 2 ? next_rand() % (len < 600 ? len : 600) : next_rand() % len);
      m[pos] ^= (uint8_t)(1 + next_rand() % 255);
    }
    LLVMFuzzerTestOneInput(m, len);
    st->inputs++;
  }
  free(m);
}

static void write_seed(const uint8_t *buf, size_t len, void *ctx)
{
  const char *dir = ctx;
  static int n;
  char p[1024];
  snprintf(p, sizeof p, "%s/seed-%04d", dir, n++);
  tn_write(p, buf, len);
}

static void test_generated_corpus(void)
{
  stats st = {0};
  for_each_seed(run_mutations, &st);
  printf("# %ld inputs ran through the harness\n", st.inputs);
  CHECK(st.inputs > 10000);
}

/* The harness is not a no-op: a valid seed decodes, a damaged one fails. */
static void test_harness_reads(void)
{
  tn_spec s = tn_default(4, 3, 4, 2);
  size_t len;
  uint8_t *img = tn_image(&s, 0, &len);
  nifti_header h;
  nifti_err e;
  void *out;
  lm_dtype dt;
  CHECK_INT(nifti_read_memory(img, len, LM_F32, false, &h, &out, &dt, NULL, &e), LM_OK);
  free(out);
  CHECK_INT(nifti_read_memory(img, len - 1, LM_F32, false, &h, &out, &dt, NULL, &e), LM_EFORMAT);
  free(img);
}

int main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
    mkdir(argv[2], 0755);
    for_each_seed(write_seed, argv[2]);
    return 0;
  }
  if (argc > 1) {
    for (int i = 1; i < argc; i++) fuzz_replay_path(argv[i]);
    printf("replayed %d path(s) without a crash\n", argc - 1);
    return 0;
  }
  RUN(test_harness_reads);
  RUN(test_generated_corpus);
  TAP_DONE();
}
