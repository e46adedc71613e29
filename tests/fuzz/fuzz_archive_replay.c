/* Runs the archive harness (fuzz_archive.c) without libFuzzer: over files or
 * folders given on the command line, or over seed archives written here
 * (tars, zips and gzipped tars, good and hostile), then truncations and byte
 * flips of each, so the harness runs in the normal test suite.  The seeds'
 * own outcomes are checked too (the good ones extract, each hostile one is
 * refused for its reason).
 *
 *   fuzz_archive_replay                      generate and run the corpus (TAP)
 *   fuzz_archive_replay --write-corpus DIR   write the seeds to DIR
 *   fuzz_archive_replay FILE|DIR...          replay inputs (crash reproducers) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "../c/tap.h"
#include "extract.h"
#include "fuzz_replay_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct buf {
  uint8_t *p;
  size_t n, cap;
} buf;

static void put(buf *b, const void *data, size_t n)
{
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 1024;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
}

static void put_zeros(buf *b, size_t n)
{
  static const uint8_t z[512];
  while (n > 0) {
    size_t k = n < sizeof z ? n : sizeof z;
    put(b, z, k);
    n -= k;
  }
}

/* One ustar entry: type '0' file, '5' folder, '2' symlink, '1' hard link,
 * '3' character device, '6' fifo. */
static void tar_entry(buf *b, const char *name, char type, const char *link, const void *data,
                      size_t size)
{
  uint8_t h[512];
  memset(h, 0, sizeof h);
  const char *leaf = name;
  size_t nlen = strlen(name);
  if (nlen > 100) { /* the ustar prefix field carries the folders */
    const char *slash = strrchr(name, '/');
    if (!slash || (size_t)(slash - name) > 155) abort();
    memcpy(h + 345, name, (size_t)(slash - name));
    leaf = slash + 1;
  }
  memcpy(h, leaf, strlen(leaf));
  snprintf((char *)h + 100, 8, "%07o", 0644);
  snprintf((char *)h + 108, 8, "%07o", 0);
  snprintf((char *)h + 116, 8, "%07o", 0);
  snprintf((char *)h + 124, 12, "%011o", (unsigned)size);
  snprintf((char *)h + 136, 12, "%011o", 0);
  memset(h + 148, ' ', 8);
  h[156] = (uint8_t)type;
  if (link) memcpy(h + 157, link, strlen(link));
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++) sum += h[i];
  snprintf((char *)h + 148, 8, "%06o", sum);
  h[155] = ' ';
  put(b, h, sizeof h);
  if (size) {
    if (data) put(b, data, size);
    else put_zeros(b, size);
    put_zeros(b, (512 - size % 512) % 512);
  }
}

static void tar_end(buf *b)
{
  put_zeros(b, 1024);
}

/* A zip of stored entries; mode: the Unix mode in the external attributes
 * (0120777 for a symlink). */
typedef struct zip_entry {
  const char *name;
  const char *data;
  unsigned mode;
} zip_entry;

static void le16(buf *b, unsigned v)
{
  uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  put(b, x, 2);
}

static void le32(buf *b, uint32_t v)
{
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  put(b, x, 4);
}

static void zip(buf *b, const zip_entry *e, int n)
{
  buf cd = {0};
  for (int i = 0; i < n; i++) {
    uint32_t off = (uint32_t)b->n, len = (uint32_t)strlen(e[i].data);
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)e[i].data, len);
    unsigned nlen = (unsigned)strlen(e[i].name);
    le32(b, 0x04034b50); le16(b, 20); le16(b, 0); le16(b, 0); le16(b, 0); le16(b, 0x21);
    le32(b, crc); le32(b, len); le32(b, len); le16(b, nlen); le16(b, 0);
    put(b, e[i].name, nlen);
    put(b, e[i].data, len);
    le32(&cd, 0x02014b50); le16(&cd, (3 << 8) | 20); le16(&cd, 20); le16(&cd, 0); le16(&cd, 0);
    le16(&cd, 0); le16(&cd, 0x21); le32(&cd, crc); le32(&cd, len); le32(&cd, len);
    le16(&cd, nlen); le16(&cd, 0); le16(&cd, 0); le16(&cd, 0); le16(&cd, 0);
    le32(&cd, (uint32_t)(e[i].mode ? e[i].mode : 0100644) << 16); le32(&cd, off);
    put(&cd, e[i].name, nlen);
  }
  uint32_t cd_off = (uint32_t)b->n;
  put(b, cd.p, cd.n);
  le32(b, 0x06054b50); le16(b, 0); le16(b, 0); le16(b, (unsigned)n); le16(b, (unsigned)n);
  le32(b, (uint32_t)cd.n); le32(b, cd_off); le16(b, 0);
  free(cd.p);
}

/* in gzipped (a .tar.gz from a .tar). */
static void gzip(buf *out, const buf *in)
{
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  uLong bound = deflateBound(&z, (uLong)in->n) + 64;
  uint8_t *p = malloc(bound);
  if (!p) abort();
  z.next_in = in->p;
  z.avail_in = (uInt)in->n;
  z.next_out = p;
  z.avail_out = (uInt)bound;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
  put(out, p, bound - z.avail_out);
  deflateEnd(&z);
  free(p);
}

/* The seeds: bytes, and what extraction must say of them (NULL: extracts). */
typedef struct seed {
  const char *what;
  buf bytes;
  const char *refusal;
} seed;

#define MAX_SEEDS 32
static seed seeds[MAX_SEEDS];
static int nseeds;

static buf *add(const char *what, const char *refusal)
{
  if (nseeds == MAX_SEEDS) abort();
  seeds[nseeds].what = what;
  seeds[nseeds].refusal = refusal;
  return &seeds[nseeds++].bytes;
}

static void make_seeds(void)
{
  buf *b = add("a package tar", NULL);
  tar_entry(b, "pkg/", '5', NULL, NULL, 0);
  tar_entry(b, "pkg/metadata.json", '0', NULL, "{\"name\": \"x\"}", 13);
  tar_entry(b, "./pkg/sub/weights.bin", '0', NULL, NULL, 3000);
  tar_entry(b, "dddddddddddddddddddddddddddddddddddddddddddddddddddd/eeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
               "eeeeeeeeeeeeeeeeeeeeeeeeeeee/long-name.txt", '0', NULL, "L", 1);
  tar_end(b);
  buf *gz = add("the package tar gzipped", NULL);
  gzip(gz, &seeds[0].bytes);

  b = add("'..' in a tar", "'..' component refused");
  tar_entry(b, "pkg/ok", '0', NULL, "1", 1);
  tar_entry(b, "pkg/../../../escaped", '0', NULL, "x", 1);
  tar_end(b);
  b = add("an absolute path", "absolute path refused");
  tar_entry(b, "/tmp/lumen-fuzz-archive-escaped", '0', NULL, "x", 1);
  tar_end(b);
  b = add("a symbolic link, then a file through it", "symbolic link refused");
  tar_entry(b, "pkg/l", '2', "../../..", NULL, 0);
  tar_entry(b, "pkg/l/escaped", '0', NULL, "x", 1);
  tar_end(b);
  b = add("a hard link", "hard link refused");
  tar_entry(b, "a", '0', NULL, "x", 1);
  tar_entry(b, "b", '1', "a", NULL, 0);
  tar_end(b);
  b = add("a device", "character device refused");
  tar_entry(b, "dev", '3', NULL, NULL, 0);
  tar_end(b);
  b = add("a fifo", "fifo refused");
  tar_entry(b, "p", '6', NULL, NULL, 0);
  tar_end(b);
  b = add("a name twice", "holds this name twice");
  tar_entry(b, "a", '0', NULL, "1", 1);
  tar_entry(b, "./a", '0', NULL, "2", 1);
  tar_end(b);
  b = add("a file used as a folder", "a parent of the entry is a file");
  tar_entry(b, "a", '0', NULL, "1", 1);
  tar_entry(b, "a/b", '0', NULL, "2", 1);
  tar_end(b);
  b = add("more entries than the limit", "more than 64 entries");
  for (int i = 0; i < 70; i++) {
    char name[16];
    snprintf(name, sizeof name, "f%02d", i);
    tar_entry(b, name, '0', NULL, "x", 1);
  }
  tar_end(b);
  buf big = {0};
  tar_entry(&big, "pkg/zeros.bin", '0', NULL, NULL, (1u << 20) + 1);
  tar_end(&big);
  b = add("a gzip bomb over the limit", "over the limit");
  gzip(b, &big);
  free(big.p);

  static const zip_entry good[] = {{"m/metadata.json", "{}", 0}, {"m/w.bin", "abc", 0}};
  zip(add("a package zip", NULL), good, 2);
  static const zip_entry dotdot[] = {{"../escaped", "x", 0}};
  zip(add("'..' in a zip", "'..' component refused"), dotdot, 1);
  static const zip_entry link[] = {{"m/link", "/etc", 0120777}};
  zip(add("a symbolic link in a zip", "symbolic link refused"), link, 1);
  static const zip_entry abs[] = {{"/tmp/lumen-fuzz-archive-escaped", "x", 0}};
  zip(add("an absolute path in a zip", "absolute path refused"), abs, 1);
  put(add("not an archive", "not a zip or tar archive"), "just text\n", 10);
}

/* Truncations (an upload cut anywhere) and byte flips: type flags, size
 * digits, name bytes ('/', '.'). */
static long run_mutations(const uint8_t *data, size_t len)
{
  static const uint8_t pick[] = {0, '/', '.', '1', '2', '5', '7', ' ', 0xff};
  return fuzz_replay_mutations(data, len, 30, 30, pick, sizeof pick);
}

/* Each seed's outcome, called directly (the harness only checks
 * invariants). */
static void test_seed_outcomes(void)
{
  const char *tmp = getenv("TMPDIR");
  char path[256], dest[256];
  char tdir[200];
  snprintf(tdir, sizeof tdir, "%s/lumen-archive-seeds-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  CHECK(mkdtemp(tdir) != NULL);
  for (int k = 0; k < nseeds; k++) {
    snprintf(path, sizeof path, "%s/seed.bin", tdir);
    snprintf(dest, sizeof dest, "%s/out", tdir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) continue;
    fwrite(seeds[k].bytes.p, 1, seeds[k].bytes.n, f);
    fclose(f);
    lm_extract_stats st;
    char msg[1024] = "";
    const char *code = NULL;
    int rc = lm_extract_archive(path, dest, (int64_t)1 << 20, 64, &st, msg, sizeof msg, &code);
    if (!seeds[k].refusal) {
      if (rc != 0) TAP_FAIL("%s: %s", seeds[k].what, msg);
    } else if (rc == 0 || !strstr(msg, seeds[k].refusal) || strcmp(code, "LM_EINVAL") != 0) {
      TAP_FAIL("%s: got '%s', want a refusal with '%s'", seeds[k].what, rc ? msg : "success",
               seeds[k].refusal);
    }
    lm_remove_tree(dest);
  }
  struct stat sb;
  CHECK(lstat("/tmp/lumen-fuzz-archive-escaped", &sb) != 0);
  lm_remove_tree(tdir);
}

static void test_generated_corpus(void)
{
  long count = 0;
  for (int k = 0; k < nseeds; k++) count += run_mutations(seeds[k].bytes.p, seeds[k].bytes.n);
  printf("# %ld inputs ran through the harness\n", count);
  CHECK(count > 500);
}

int main(int argc, char **argv)
{
  make_seeds();
  if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
    mkdir(argv[2], 0755);
    for (int k = 0; k < nseeds; k++) {
      char p[1024];
      snprintf(p, sizeof p, "%s/seed-%02d.bin", argv[2], k);
      FILE *f = fopen(p, "wb");
      if (!f) continue;
      fwrite(seeds[k].bytes.p, 1, seeds[k].bytes.n, f);
      fclose(f);
    }
    return 0;
  }
  if (argc > 1) {
    for (int i = 1; i < argc; i++) fuzz_replay_path(argv[i]);
    printf("# replayed\n");
    return 0;
  }
  RUN(test_seed_outcomes);
  RUN(test_generated_corpus);
  for (int k = 0; k < nseeds; k++) free(seeds[k].bytes.p);
  TAP_DONE();
}
