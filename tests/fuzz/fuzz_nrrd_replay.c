/* Runs the NRRD harness without libFuzzer: over files or folders given on
 * the command line, or over a seed corpus generated here (headers with every
 * field and encoding, LUNA16-style gzip LPS files, ascii, skips, detached
 * headers), then truncations and byte flips of each, so the harness runs in
 * the normal test suite.
 *
 *   fuzz_nrrd_replay                      generate and run the corpus (TAP)
 *   fuzz_nrrd_replay --write-corpus DIR   write the seed corpus to DIR
 *   fuzz_nrrd_replay FILE|DIR...          replay inputs (crash reproducers) */
#include <sys/stat.h>

#include "../c/tap.h"
#include "../c/test_nifti_util.h"
#include "fuzz_replay_files.h"
#include "nrrd_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef void (*seed_fn)(const uint8_t *buf, size_t len, void *ctx);

static void for_each_seed(seed_fn fn, void *ctx)
{
  static const char *const types[] = {"uchar", "signed char", "short", "ushort", "int", "uint",
                                      "longlong", "ulonglong", "float", "double"};
  static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8};
  static const char *const extra[] = {
    "space: left-posterior-superior\nspace directions: (0.7,0,0) (0,0.7,0) (0,0,2.5)\n"
    "space origin: (-100,-120.5,-300)\nkinds: domain domain domain\n",
    "space: RAS\nspace directions: (1,0.1,0) (0,1,0) (0,0,3)\n",
    "spacings: 0.5 nan 2\nline skip: 0\nbyte skip: 0\n# comment\nkey:=value\n",
    "space: LAS\nspace directions: (1,0,0) (0,1,0) (0,0,1)\nbyte skip: 2\n",
  };
  uint8_t vals[2 + 4 * 3 * 2 * 8];
  for (size_t i = 0; i < sizeof vals; i++) vals[i] = (uint8_t)(i * 37 + 11);
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    for (int enc = 0; enc < 3; enc++)
      for (size_t x = 0; x < sizeof extra / sizeof extra[0]; x++) {
        char hdr[1024];
        int n = snprintf(hdr, sizeof hdr, "NRRD000%d\ntype: %s\ndimension: 3\nsizes: 4 3 2\n"
                         "endian: %s\nencoding: %s\n%s\n", 1 + (int)(t % 5), types[t],
                         x % 2 ? "big" : "little", enc == 0 ? "raw" : enc == 1 ? "gzip" : "ascii",
                         extra[x]);
        size_t skip = x == 3 ? 2 : 0;
        size_t dlen = skip + 24 * sizes[t];
        uint8_t *data = NULL;
        size_t len = 0;
        if (enc == 0) {
          data = malloc(dlen);
          memcpy(data, vals, dlen);
          len = dlen;
        } else if (enc == 1) {
          data = tn_gzip(vals, dlen, &len);
        } else {
          char *txt = malloc(24 * 24 + 8);
          size_t k = 0;
          if (skip) k += (size_t)sprintf(txt, "%-*d", (int)skip, 9); /* the skipped bytes */
          for (int i = 0; i < 24; i++) k += (size_t)sprintf(txt + k, "%d ", (i * 7) % 100);
          data = (uint8_t *)txt;
          len = k;
        }
        uint8_t *buf = malloc((size_t)n + len);
        memcpy(buf, hdr, (size_t)n);
        memcpy(buf + n, data, len);
        fn(buf, (size_t)n + len, ctx);
        free(buf);
        free(data);
      }
  /* A channel axis and a detached header. */
  const char *vec = "NRRD0004\ntype: float\ndimension: 4\nsizes: 2 2 2 1\nendian: little\n"
                    "encoding: raw\nspace: LPS\nkinds: vector domain domain domain\n"
                    "space directions: none (1,0,0) (0,1,0) (0,0,1)\n\n";
  uint8_t *buf = malloc(strlen(vec) + 32);
  memcpy(buf, vec, strlen(vec));
  memcpy(buf + strlen(vec), vals, 32);
  fn(buf, strlen(vec) + 32, ctx);
  free(buf);
  const char *det = "NRRD0004\ntype: uchar\ndimension: 1\nsizes: 4\nencoding: raw\n"
                    "data file: x.raw\n";
  fn((const uint8_t *)det, strlen(det), ctx);
}

static uint32_t rng = 98765;
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
  for (int i = 1; i <= 12; i++) {
    size_t cut = len * (size_t)i / 13;
    memcpy(m, buf, cut);
    LLVMFuzzerTestOneInput(m, cut);
    (*count)++;
  }
  /* Byte flips, mostly in the header text (digits and separators matter). */
  for (int i = 0; i < 48; i++) {
    memcpy(m, buf, len);
    int flips = 1 + (int)(next_rand() % 3);
    for (int f = 0; f < flips; f++) {
      size_t pos = i % 3 ? next_rand() % (len < 300 ? len : 300) : next_rand() % len;
      static const uint8_t pick[] = {'0', '9', '-', ' ', '\n', ',', '(', ')', ':', 0xff};
      m[pos] = i % 2 ? pick[next_rand() % sizeof pick] : (uint8_t)(m[pos] ^ (1 + next_rand() % 255));
    }
    LLVMFuzzerTestOneInput(m, len);
    (*count)++;
  }
  free(m);
}

static void write_seed(const uint8_t *buf, size_t len, void *ctx)
{
  static int n;
  char p[1024];
  snprintf(p, sizeof p, "%s/seed-%04d.nrrd", (const char *)ctx, n++);
  FILE *f = fopen(p, "wb");
  if (!f) return;
  fwrite(buf, 1, len, f);
  fclose(f);
}

static void count_valid(const uint8_t *buf, size_t len, void *ctx)
{
  nrrd_header h;
  nifti_err err;
  void *out = NULL;
  lm_dtype dt;
  if (nrrd_read_memory(buf, len, LM_F64, false, &h, &out, &dt, &err) == LM_OK) {
    (*(int *)ctx)++;
    free(out);
  } else if (!strstr(err.msg, "detached")) {
    printf("# seed refused: %s\n", err.msg);
  }
}

static void test_seeds_decode(void)
{
  int valid = 0;
  for_each_seed(count_valid, &valid);
  CHECK_INT(valid, 10 * 3 * 4 + 1);
}

static void test_generated_corpus(void)
{
  long count = 0;
  for_each_seed(run_mutations, &count);
  printf("# %ld inputs ran through the harness\n", count);
  CHECK(count > 7000);
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
  RUN(test_seeds_decode);
  RUN(test_generated_corpus);
  TAP_DONE();
}
