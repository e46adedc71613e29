/* The parallel inflate of single-member gzip (nifti_inflate_par.c, with the
 * marker decoder of nifti_deflate_markers.c): byte-identical to libdeflate on
 * many kinds of data and compressors, taken where it should be, declined
 * (with the sequential path's exact result) on anything odd or corrupt. */
#include <libdeflate.h>
#include <pthread.h>
#include <zlib.h>

#include "nifti_deflate_markers.h"
#include "nifti_format.h"
#include "nifti_inflate_par.h"
#include "tap.h"

/* --- a real two-thread nifti_par, as the engine's pool gives ------------- */

typedef struct half {
  lm_range_fn body;
  void *arg;
  int64_t b, e;
  int st;
} half;
static void *half_main(void *a)
{
  half *h = a;
  h->st = h->body(h->b, h->e, h->arg);
  return NULL;
}
static int run_two_threads(void *ctx, int64_t n, int64_t grain, lm_range_fn body, void *arg)
{
  (void)ctx;
  (void)grain;
  if (n < 2) return body(0, n, arg);
  half h[2] = {{body, arg, 0, n / 2, 0}, {body, arg, n / 2, n, 0}};
  pthread_t t;
  if (pthread_create(&t, NULL, half_main, &h[1]) != 0) return body(0, n, arg);
  half_main(&h[0]);
  pthread_join(t, NULL);
  return h[0].st < 0 ? h[0].st : h[1].st;
}
static const nifti_par two = {run_two_threads, NULL};

/* A pool of one: everything in one call. */
static int run_inline(void *ctx, int64_t n, int64_t grain, lm_range_fn body, void *arg)
{
  (void)ctx;
  (void)grain;
  return body(0, n, arg);
}
static const nifti_par one = {run_inline, NULL};

/* --- data ------------------------------------------------------------------ */

static uint32_t rng_state = 1;
static uint32_t rnd(void)
{
  rng_state = rng_state * 1664525u + 1013904223u;
  return rng_state >> 8;
}
/* Roughly normal noise in [-1, 1): cheap enough for tens of MB. */
static double noise(void)
{
  uint32_t r = rnd();
  return ((double)(r & 0xfff) + (double)((r >> 12) & 0xfff)) / 4096.0 - 1.0;
}

/* int16 slices: air, a body ellipse with organs, bone, noise (compresses
 * like CT: about 2:1, back-references everywhere). */
static uint8_t *ct_like(size_t nbytes)
{
  int16_t *v = malloc(nbytes + 2);
  size_t n = nbytes / 2, side = 256;
  for (size_t i = 0; i < n; i++) {
    size_t k = i % (side * side), z = i / (side * side);
    double x = (double)(k % side) / side * 2 - 1, y = (double)(k / side) / side * 2 - 1;
    double val = -1000;
    if (x * x / 0.64 + y * y / 0.3 < 1) val = 40;
    if ((x - 0.3) * (x - 0.3) / 0.09 + y * y / 0.06 < 1) val = 60 + (double)(z % 7);
    if (x * x + (y - 0.35) * (y - 0.35) < 0.006) val = 700;
    v[i] = (int16_t)(val + 20 * noise());
  }
  if (nbytes & 1) ((uint8_t *)v)[nbytes - 1] = 7;
  return (uint8_t *)v;
}
static uint8_t *random_bytes(size_t n)
{
  uint8_t *p = malloc(n);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
  return p;
}
/* Common words between made-up ones: about 2:1, so a stream holds many
 * blocks (zlib ends one every 16K symbols). */
static const char *words[] = {"voxel ", "affine ", "the ", "segmentation ", "of ", "liver ",
                              "spleen\n", "kidney_left ", "0.78 ", "HU ", "pipeline, ", "a "};
static uint8_t *text_like(size_t n)
{
  uint8_t *p = malloc(n);
  size_t o = 0;
  while (o < n) {
    if (rnd() % 2) {
      const char *w = words[rnd() % 12];
      for (size_t i = 0; w[i] && o < n; i++) p[o++] = (uint8_t)w[i];
    } else {
      for (unsigned i = 0, len = 2 + rnd() % 8; i < len && o < n; i++)
        p[o++] = (uint8_t)(i + 1 < len ? 'a' + rnd() % 26 : ' ');
    }
  }
  return p;
}
/* Long runs of zeros (distance-1 matches of 258) between text and noise:
 * every kind of block in one stream. */
static uint8_t *mixed(size_t n)
{
  uint8_t *p = calloc(n, 1);
  for (size_t o = 0; o < n;) {
    size_t len = 20000 + rnd() % 40000;
    if (len > n - o) len = n - o;
    unsigned kind = rnd() % 3;
    if (kind == 1) {
      uint8_t *t = text_like(len);
      memcpy(p + o, t, len);
      free(t);
    } else if (kind == 2) {
      for (size_t i = 0; i < len; i++) p[o + i] = (uint8_t)rnd();
    }
    o += len;
  }
  return p;
}

/* Bytes from a skewed alphabet of 200 values and no repeats worth a match:
 * Huffman-coded blocks that barely compress (8.5 MB stays above 8 MiB). */
static uint8_t *skewed_bytes(size_t n)
{
  uint8_t *p = malloc(n);
  for (size_t i = 0; i < n; i++) {
    uint32_t r = rnd();
    p[i] = (uint8_t)((r & 0xff) % 200 + ((r >> 8) & 1 ? 0 : (r >> 9) % 8));
  }
  return p;
}

/* --- compressors ----------------------------------------------------------- */

static uint8_t *gz_zlib(const uint8_t *in, size_t n, int level, size_t *out_len)
{
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return NULL;
  size_t cap = deflateBound(&zs, (uLong)n) + 64;
  uint8_t *out = malloc(cap);
  zs.next_in = (Bytef *)in;
  zs.avail_in = (uInt)n;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  int r = deflate(&zs, Z_FINISH);
  *out_len = zs.total_out;
  deflateEnd(&zs);
  if (r != Z_STREAM_END) {
    free(out);
    return NULL;
  }
  return out;
}
static uint8_t *gz_libdeflate(const uint8_t *in, size_t n, int level, size_t *out_len)
{
  struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
  size_t cap = libdeflate_gzip_compress_bound(c, n);
  uint8_t *out = malloc(cap);
  *out_len = libdeflate_gzip_compress(c, in, n, out, cap);
  libdeflate_free_compressor(c);
  return out;
}

static nifti_pinflate_cfg small_cfg(double split)
{
  nifti_pinflate_cfg cfg;
  nifti_pinflate_defaults(&cfg);
  cfg.min_input = 4096;
  cfg.split = split;
  return cfg;
}

/* The parallel path on gz (of data[0..n)): taken and byte-identical. */
static void expect_taken(const char *what, const uint8_t *data, size_t n, const uint8_t *gz,
                         size_t gz_len, double split)
{
  nifti_pinflate_cfg cfg = small_cfg(split);
  uint8_t *out = malloc(n);
  nifti_pinflate_info info;
  uint64_t before = nifti_inflate_par_count();
  bool ok = nifti_inflate_par(gz, gz_len, out, n, &two, &cfg, &info);
  if (!ok) TAP_FAIL("%s (split %.2f): declined: %s", what, split, info.declined);
  else if (memcmp(out, data, n) != 0) TAP_FAIL("%s (split %.2f): output differs", what, split);
  if (ok) {
    CHECK_INT(nifti_inflate_par_count(), before + 1);
    CHECK_INT(info.a_bytes + info.b_bytes, n);
    CHECK(info.b_bytes > 0 && info.a_bytes >= NIFTI_WINDOW);
    /* B started where it was told, not at the end. */
    CHECK(info.split_bit >= (uint64_t)((double)gz_len * split * 0.9) * 8);
  }
  free(out);
}

typedef uint8_t *(*gen_fn)(size_t);
typedef uint8_t *(*comp_fn)(const uint8_t *, size_t, int, size_t *);

static void matrix(const char *name, gen_fn gen, size_t n, const double *splits, int nsplits)
{
  static const struct {
    const char *name;
    comp_fn fn;
    int level;
  } comps[] = {{"zlib-1", gz_zlib, 1},       {"zlib-6", gz_zlib, 6},
               {"zlib-9", gz_zlib, 9},       {"libdeflate-1", gz_libdeflate, 1},
               {"libdeflate-6", gz_libdeflate, 6}, {"libdeflate-12", gz_libdeflate, 12}};
  uint8_t *data = gen(n);
  for (size_t c = 0; c < sizeof comps / sizeof comps[0]; c++) {
    size_t gl = 0;
    uint8_t *gz = comps[c].fn(data, n, comps[c].level, &gl);
    CHECK(gz != NULL);
    if (!gz) continue;
    char what[128];
    snprintf(what, sizeof what, "%s / %s", name, comps[c].name);
    for (int s = 0; s < nsplits; s++) expect_taken(what, data, n, gz, gl, splits[s]);
    free(gz);
  }
  free(data);
}

static void test_ct_like(void)
{
  const double splits[] = {0.25, 0.5, 0.7};
  matrix("CT-like int16", ct_like, (size_t)1 << 20, splits, 3);
}
static void test_text_like(void)
{
  const double splits[] = {0.3, 0.55};
  matrix("text", text_like, (size_t)1 << 20, splits, 2);
}
static void test_mixed_stored_fixed_runs(void)
{
  const double splits[] = {0.2, 0.5, 0.8};
  matrix("zeros, text and noise", mixed, (size_t)2 << 20, splits, 3);
}

/* Random bytes compress to stored blocks only: no dynamic block to start
 * from, so it declines; nifti_gunzip still inflates them (sequentially). */
static void test_random_declines(void)
{
  size_t n = (size_t)1 << 20, gl;
  uint8_t *data = random_bytes(n);
  uint8_t *gz = gz_zlib(data, n, 6, &gl);
  nifti_pinflate_cfg cfg = small_cfg(0.5);
  uint8_t *out = malloc(n);
  nifti_pinflate_info info;
  CHECK(!nifti_inflate_par(gz, gl, out, n, &two, &cfg, &info));
  CHECK_CONTAINS(info.declined, "no block boundary");
  nifti_err err;
  size_t got = 0;
  CHECK_INT(nifti_gunzip(gz, gl, out, n, &got, &two, &err), LM_OK);
  CHECK_INT(got, n);
  CHECK(memcmp(out, data, n) == 0);
  free(out);
  free(gz);
  free(data);
}

/* One thread, no pool, a stream not exactly want bytes, trailing data. */
static void test_declines(void)
{
  size_t n = (size_t)2 << 20, gl;
  uint8_t *data = ct_like(n);
  uint8_t *gz = gz_zlib(data, n, 1, &gl);
  nifti_pinflate_cfg cfg = small_cfg(0.5);
  uint8_t *out = malloc(n + 1);
  nifti_pinflate_info info;
  CHECK(!nifti_inflate_par(gz, gl, out, n, &one, &cfg, &info));
  CHECK_STR(info.declined, "only one thread");
  CHECK(!nifti_inflate_par(gz, gl, out, n, NULL, &cfg, &info));
  CHECK(!nifti_inflate_par(gz, gl, out, n - 1, &two, &cfg, &info));
  CHECK_CONTAINS(info.declined, "ISIZE");
  cfg.min_input = gl + 1;
  CHECK(!nifti_inflate_par(gz, gl, out, n, &two, &cfg, &info));
  CHECK_CONTAINS(info.declined, "threshold");
  cfg.min_input = gl;
  CHECK(nifti_inflate_par(gz, gl, out, n, &two, &cfg, &info));
  CHECK(memcmp(out, data, n) == 0);
  /* A second member (or any bytes) after this one: not a single member. */
  uint8_t *two_members = malloc(2 * gl);
  memcpy(two_members, gz, gl);
  memcpy(two_members + gl, gz, gl);
  cfg = small_cfg(0.5);
  CHECK(!nifti_inflate_par(two_members, 2 * gl, out, n, &two, &cfg, &info));
  free(two_members);
  free(out);
  free(gz);
  free(data);
}

/* The finder on the bits of a real stream: every block it reports inside a
 * zlib stream decodes, and it skips nothing before the first real one. */
static void test_block_finder(void)
{
  size_t n = (size_t)1 << 20, gl;
  uint8_t *data = ct_like(n);
  uint8_t *gz = gz_zlib(data, n, 1, &gl);
  uint64_t bit = 0;
  CHECK(nifti_mdec_find_block(gz, gl, 10 * 8, (uint64_t)gl * 8, &bit));
  /* zlib's first block starts right after the 10-byte header. */
  CHECK_INT(bit, 80);
  uint16_t *sym = malloc(n * sizeof *sym);
  nifti_mdec_pos pos = {bit, 0};
  CHECK_INT(nifti_mdec_decode(gz, gl, &pos, sym, n, 0, NULL), NIFTI_MDEC_OK);
  CHECK_INT(pos.out, n);
  CHECK_INT(pos.bit / 8, gl - 8);
  size_t diff = 0;
  for (size_t i = 0; i < n; i++) diff += sym[i] != data[i];
  CHECK_INT(diff, 0);
  /* Too little room: FULL, never a write past cap. */
  pos = (nifti_mdec_pos){bit, 0};
  CHECK_INT(nifti_mdec_decode(gz, gl, &pos, sym, n / 2, 0, NULL), NIFTI_MDEC_FULL);
  CHECK(pos.out <= n / 2);
  /* Nothing in noise-free ranges of the header bytes. */
  CHECK(!nifti_mdec_find_block(gz, gl, 0, 3, &bit));
  free(sym);
  free(gz);
  free(data);
}

/* --- through nifti_gunzip, at the real threshold -------------------------- */

typedef struct big_case {
  uint8_t *data, *gz;
  size_t n, gl;
} big_case;
static big_case big;

/* A stream just above 8 MiB compressed (zlib level 1, as nibabel). */
static void make_big(void)
{
  big.n = (size_t)17 << 19;
  big.data = skewed_bytes(big.n);
  big.gz = gz_zlib(big.data, big.n, 1, &big.gl);
}

static void test_gunzip_above_threshold(void)
{
  nifti_pinflate_cfg cfg;
  nifti_pinflate_defaults(&cfg);
  CHECK(big.gl >= cfg.min_input);
  uint8_t *out = malloc(big.n);
  uint64_t before = nifti_inflate_par_count();
  nifti_err err;
  size_t got = 0;
  CHECK_INT(nifti_gunzip(big.gz, big.gl, out, big.n, &got, &two, &err), LM_OK);
  CHECK_INT(got, big.n);
  CHECK(memcmp(out, big.data, big.n) == 0);
  CHECK_INT(nifti_inflate_par_count(), before + 1);
  free(out);
}

static void test_gunzip_below_threshold(void)
{
  nifti_pinflate_cfg cfg;
  nifti_pinflate_defaults(&cfg);
  /* The same kind of data, cut to just under the threshold compressed. */
  size_t n = (size_t)((double)big.n * ((double)cfg.min_input - 65536) / (double)big.gl);
  size_t gl;
  uint8_t *gz = gz_zlib(big.data, n, 1, &gl);
  CHECK(gl < cfg.min_input && gl > cfg.min_input - ((size_t)1 << 20));
  uint8_t *out = malloc(n);
  uint64_t before = nifti_inflate_par_count();
  nifti_err err;
  size_t got = 0;
  CHECK_INT(nifti_gunzip(gz, gl, out, n, &got, &two, &err), LM_OK);
  CHECK_INT(got, n);
  CHECK(memcmp(out, big.data, n) == 0);
  CHECK_INT(nifti_inflate_par_count(), before);
  free(out);
  free(gz);
}

/* nifti_gunzip with two threads must give exactly what it gives with none
 * (status, bytes produced, message, output when it succeeds). */
static void same_as_sequential(const char *what, const uint8_t *gz, size_t gl, size_t want)
{
  uint8_t *a = calloc(want, 1), *b = calloc(want, 1);
  nifti_err ea, eb;
  memset(&ea, 0, sizeof ea);
  memset(&eb, 0, sizeof eb);
  size_t ga = 0, gb = 0;
  int sa = nifti_gunzip(gz, gl, a, want, &ga, &two, &ea);
  int sb = nifti_gunzip(gz, gl, b, want, &gb, NULL, &eb);
  if (sa != sb) TAP_FAIL("%s: status %d with threads, %d without", what, sa, sb);
  if (ga != gb) TAP_FAIL("%s: got %zu with threads, %zu without", what, ga, gb);
  if (sa < 0 && strcmp(ea.msg, eb.msg) != 0)
    TAP_FAIL("%s: \"%s\" vs \"%s\"", what, ea.msg, eb.msg);
  if (sa == LM_OK && memcmp(a, b, ga) != 0) TAP_FAIL("%s: outputs differ", what);
  free(a);
  free(b);
}

static void test_corrupt_like_sequential(void)
{
  uint8_t *gz = malloc(big.gl);
  uint64_t before = nifti_inflate_par_count();
  /* Bit flips spread over A's and B's parts (and the padding at the end). */
  for (int k = 0; k < 6; k++) {
    memcpy(gz, big.gz, big.gl);
    size_t at = 10 + (size_t)((double)(big.gl - 20) * (k + 0.5) / 6);
    gz[at] ^= (uint8_t)(1u << (k % 8));
    char what[64];
    snprintf(what, sizeof what, "bit flip at byte %zu", at);
    same_as_sequential(what, gz, big.gl, big.n);
  }
  /* The last deflate byte (padding bits may not matter). */
  memcpy(gz, big.gz, big.gl);
  gz[big.gl - 9] ^= 0x80;
  same_as_sequential("flip in the last deflate byte", gz, big.gl, big.n);
  /* Wrong CRC, wrong ISIZE. */
  memcpy(gz, big.gz, big.gl);
  gz[big.gl - 8] ^= 1;
  same_as_sequential("wrong CRC", gz, big.gl, big.n);
  memcpy(gz, big.gz, big.gl);
  gz[big.gl - 4] ^= 1;
  same_as_sequential("wrong ISIZE", gz, big.gl, big.n);
  /* Truncations: inside B's part, inside the trailer. */
  same_as_sequential("truncated at 90%", big.gz, big.gl * 9 / 10, big.n);
  same_as_sequential("truncated in the trailer", big.gz, big.gl - 3, big.n);
  /* Want less than the stream holds (trailing voxels unread). */
  same_as_sequential("want less", big.gz, big.gl, big.n - 1000);
  /* Trailing garbage after the member. */
  uint8_t *longer = malloc(big.gl + 5);
  memcpy(longer, big.gz, big.gl);
  memcpy(longer + big.gl, "junk!", 5);
  same_as_sequential("trailing bytes", longer, big.gl + 5, big.n);
  free(longer);
  /* The untouched stream once more: it still takes the parallel path. */
  uint64_t mid = nifti_inflate_par_count();
  same_as_sequential("intact", big.gz, big.gl, big.n);
  CHECK_INT(nifti_inflate_par_count(), mid + 1);
  (void)before;
  free(gz);
}

/* Mutations of small streams straight into nifti_inflate_par: it either
 * declines or gives exactly libdeflate's output (which then succeeds). */
static void test_mutations_never_wrong(void)
{
  size_t n = (size_t)256 << 10, gl;
  uint8_t *data = ct_like(n);
  uint8_t *gz = gz_zlib(data, n, 6, &gl);
  uint8_t *m = malloc(gl), *out = malloc(n), *ref = malloc(n);
  struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  int taken = 0;
  for (int k = 0; k < 160; k++) {
    memcpy(m, gz, gl);
    size_t len = gl;
    unsigned what = (unsigned)k % 4;
    if (what == 0) m[10 + rnd() % (gl - 10)] ^= (uint8_t)(1u << (rnd() % 8));
    else if (what == 1) len = 10 + rnd() % (gl - 10);
    else if (what == 2) m[10 + rnd() % (gl - 10)] = (uint8_t)rnd();
    nifti_pinflate_cfg cfg = small_cfg(0.2 + 0.4 * (double)(rnd() % 100) / 100);
    nifti_pinflate_info info;
    bool ok = nifti_inflate_par(m, len, out, n, &two, &cfg, &info);
    size_t got = 0;
    enum libdeflate_result r = libdeflate_gzip_decompress(d, m, len, ref, n, &got);
    if (ok) {
      taken++;
      if (r != LIBDEFLATE_SUCCESS || got != n || memcmp(out, ref, n) != 0)
        TAP_FAIL("mutation %d (kind %u): parallel output where libdeflate says %d", k, what,
                 (int)r);
    }
  }
  /* The unmutated quarter (and harmless flips) went parallel. */
  printf("# %d of 160 taken\n", taken);
  CHECK(taken >= 40);
  libdeflate_free_decompressor(d);
  free(m);
  free(out);
  free(ref);
  free(gz);
  free(data);
}

int main(void)
{
  RUN(test_block_finder);
  RUN(test_ct_like);
  RUN(test_text_like);
  RUN(test_mixed_stored_fixed_runs);
  RUN(test_random_declines);
  RUN(test_declines);
  RUN(test_mutations_never_wrong);
  make_big();
  RUN(test_gunzip_above_threshold);
  RUN(test_gunzip_below_threshold);
  RUN(test_corrupt_like_sequential);
  free(big.data);
  free(big.gz);
  TAP_DONE();
}
