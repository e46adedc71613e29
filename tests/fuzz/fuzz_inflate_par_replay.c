/* Runs fuzz_inflate_par.c without libFuzzer, in the normal suite: over
 * files given on the command line, or over generated gzip streams (CT-like,
 * text-like, zlib and libdeflate at several levels, every control byte
 * class) and their truncations, bit flips and byte overwrites. */
#include <libdeflate.h>
#include <zlib.h>

#include "../c/tap.h"
#include "fuzz_replay_files.h"
#include "nifti_inflate_par.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t rng = 777;
static uint32_t next_rand(void)
{
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}

/* control byte + gzip of data[0..n) */
static uint8_t *seed(const uint8_t *data, size_t n, bool zlib, int level, uint8_t control,
                     size_t *len)
{
  size_t cap = n + n / 8 + 1024;
  uint8_t *out = malloc(cap + 1);
  out[0] = control;
  if (zlib) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)n;
    zs.next_out = out + 1;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    *len = 1 + zs.total_out;
    deflateEnd(&zs);
  } else {
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    *len = 1 + libdeflate_gzip_compress(c, data, n, out + 1, cap);
    libdeflate_free_compressor(c);
  }
  return out;
}

static uint8_t *make_data(size_t n, int kind)
{
  uint8_t *p = malloc(n);
  for (size_t i = 0; i < n; i++) {
    uint32_t r = next_rand();
    if (kind == 0) { /* int16 CT-like: -1000 air and ~40 tissue with noise */
      int16_t v = (int16_t)(((i / 2) % 300 < 180 ? 40 : -1000) + (int)(r % 160) - 80);
      p[i] = (uint8_t)((uint16_t)v >> (8 * (i & 1)));
    } else if (kind == 1) { /* text-like */
      p[i] = r % 6 == 0 ? ' ' : (uint8_t)('a' + r % 7);
    } else { /* runs and noise */
      p[i] = (i / 4096) % 3 == 0 ? 0 : (i / 4096) % 3 == 1 ? (uint8_t)r : (uint8_t)(i / 7);
    }
  }
  return p;
}

static long inputs;

static void mutate_and_run(const uint8_t *s, size_t len)
{
  LLVMFuzzerTestOneInput(s, len);
  inputs++;
  uint8_t *m = malloc(len);
  for (int i = 1; i <= 6; i++) {
    size_t cut = 1 + (len - 1) * (size_t)i / 7;
    memcpy(m, s, cut);
    LLVMFuzzerTestOneInput(m, cut);
    inputs++;
  }
  for (int i = 0; i < 24; i++) {
    memcpy(m, s, len);
    size_t pos = 1 + next_rand() % (len - 1);
    if (i % 2) m[pos] ^= (uint8_t)(1u << (next_rand() % 8));
    else m[pos] = (uint8_t)next_rand();
    m[0] = (uint8_t)next_rand();
    LLVMFuzzerTestOneInput(m, len);
    inputs++;
  }
  free(m);
}

static void test_generated(void)
{
  static const struct {
    bool zlib;
    int level;
  } comps[] = {{true, 1}, {true, 6}, {true, 9}, {false, 1}, {false, 6}, {false, 12}};
  for (int kind = 0; kind < 3; kind++) {
    size_t n = (size_t)(96 + 64 * kind) << 10;
    uint8_t *data = make_data(n, kind);
    for (size_t c = 0; c < sizeof comps / sizeof comps[0]; c++) {
      size_t len;
      uint8_t *s = seed(data, n, comps[c].zlib, comps[c].level, (uint8_t)(40 * c + 30), &len);
      mutate_and_run(s, len);
      free(s);
    }
    free(data);
  }
  printf("# %ld inputs ran through the harness\n", inputs);
  CHECK(inputs > 500);
}

/* The harness is not a no-op: an intact seed goes through the parallel
 * path. */
static void test_harness_takes_parallel_path(void)
{
  uint8_t *data = make_data((size_t)256 << 10, 0);
  size_t len;
  uint8_t *s = seed(data, (size_t)256 << 10, true, 6, 128, &len);
  uint64_t before = nifti_inflate_par_count();
  LLVMFuzzerTestOneInput(s, len);
  CHECK_INT(nifti_inflate_par_count(), before + 1);
  free(s);
  free(data);
}

int main(int argc, char **argv)
{
  if (argc > 1) {
    for (int i = 1; i < argc; i++) fuzz_replay_file(argv[i]);
    printf("replayed %d file(s) without a crash\n", argc - 1);
    return 0;
  }
  RUN(test_harness_takes_parallel_path);
  RUN(test_generated);
  TAP_DONE();
}
