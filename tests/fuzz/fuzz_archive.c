/* libFuzzer harness: the archive extraction behind the admin API of lumen
 * serve (lua/src/extract.c, lumen.extract_archive) on arbitrary bytes, with
 * a 1 MiB and 64-entry limit.
 *
 * Besides not crashing, it checks what extraction promises: on success the
 * destination holds only regular files and folders (no link, device or fifo),
 * their sizes add up to the reported bytes and stay within the limit, and the
 * file count is the reported one; on failure the destination does not exist
 * and the message starts with "archive "; either way nothing else appears
 * next to the destination or two levels above it (no '..' or absolute-path
 * escape, no staging folder left behind). */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT_BYTES ((int64_t)1 << 20)
#define LIMIT_FILES 64

static char top[64];      /* TMP/lumen-fuzz-archive-XXXXXX */
static char nest[128];    /* top/a/b: the destination's folder */
static char input[160], dest[160];

static void setup(void)
{
  const char *tmp = getenv("TMPDIR");
  snprintf(top, sizeof top, "%s/lumen-fuzz-archive-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(top)) abort();
  snprintf(nest, sizeof nest, "%s/a", top);
  if (mkdir(nest, 0755) != 0) abort();
  snprintf(nest, sizeof nest, "%s/a/b", top);
  if (mkdir(nest, 0755) != 0) abort();
  snprintf(input, sizeof input, "%s/in.bin", nest);
  snprintf(dest, sizeof dest, "%s/out", nest);
}

static void cleanup(void)
{
  lm_remove_tree(top);
}

/* The names in dir must be exactly the given ones (NULL-terminated). */
static void expect_only(const char *dir, const char *const *names)
{
  DIR *d = opendir(dir);
  if (!d) abort();
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    int known = 0;
    for (const char *const *n = names; *n; n++) known |= strcmp(e->d_name, *n) == 0;
    if (!known) {
      fprintf(stderr, "unexpected '%s' in %s\n", e->d_name, dir);
      abort();
    }
  }
  closedir(d);
}

static int64_t seen_files, seen_bytes;

static int check_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)ftw;
  if (flag == FTW_F) {
    if (!S_ISREG(st->st_mode)) {
      fprintf(stderr, "%s is not a regular file\n", path);
      abort();
    }
    seen_files++;
    seen_bytes += st->st_size;
  } else if (flag != FTW_D) {
    fprintf(stderr, "%s: a link or an unreadable entry (nftw flag %d)\n", path, flag);
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!top[0]) {
    setup();
    atexit(cleanup);
  }
  FILE *f = fopen(input, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  if (fclose(f) != 0) abort();

  lm_extract_stats st;
  char msg[1024];
  const char *code = NULL;
  int rc = lm_extract_archive(input, dest, LIMIT_BYTES, LIMIT_FILES, &st, msg, sizeof msg, &code);
  struct stat sb;
  if (rc == 0) {
    seen_files = seen_bytes = 0;
    if (nftw(dest, check_one, 16, FTW_PHYS) != 0) abort();
    if (seen_files != st.files || seen_bytes != st.bytes || st.bytes > LIMIT_BYTES ||
        st.files + st.dirs > LIMIT_FILES) {
      fprintf(stderr, "reported %lld files, %lld bytes; found %lld files, %lld bytes\n",
              (long long)st.files, (long long)st.bytes, (long long)seen_files,
              (long long)seen_bytes);
      abort();
    }
  } else {
    if (lstat(dest, &sb) == 0 || errno != ENOENT) {
      fprintf(stderr, "refused (%s) but %s exists\n", msg, dest);
      abort();
    }
    if (strncmp(msg, "archive ", 8) != 0 || !code ||
        (strcmp(code, "LM_EINVAL") != 0 && strcmp(code, "LM_EIO") != 0)) {
      fprintf(stderr, "bad failure report: %s (%s)\n", msg, code ? code : "no code");
      abort();
    }
  }
  static const char *const in_nest[] = {"in.bin", "out", NULL};
  static const char *const in_top[] = {"a", NULL};
  static const char *const in_a[] = {"b", NULL};
  expect_only(nest, in_nest);
  expect_only(top, in_top);
  char a[160];
  snprintf(a, sizeof a, "%s/a", top);
  expect_only(a, in_a);
  if (lm_remove_tree(dest) != 0) abort();
  return 0;
}
