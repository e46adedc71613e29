/* See fuzz_replay_files.h. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_replay_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_replay_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) return;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = n >= 0 ? malloc(n > 0 ? (size_t)n : 1) : NULL;
  if (!buf) {
    fclose(f);
    return;
  }
  size_t got = fread(buf, 1, n > 0 ? (size_t)n : 0, f);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, got);
  free(buf);
}

void fuzz_replay_path(const char *path)
{
  struct stat sb;
  if (stat(path, &sb) != 0) return;
  if (!S_ISDIR(sb.st_mode)) {
    fuzz_replay_file(path);
    return;
  }
  DIR *d = opendir(path);
  struct dirent *de;
  char p[2048];
  while (d && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", path, de->d_name);
    /* Only the files of this folder: a subfolder holds another harness's
     * inputs (regressions/onnx). */
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
    fuzz_replay_file(p);
  }
  if (d) closedir(d);
}

static uint32_t rng = 6006;
static uint32_t next_rand(void)
{
  rng = rng * 1664525u + 1013904223u;
  return rng >> 8;
}

long fuzz_replay_mutations(const uint8_t *data, size_t len, size_t cuts, int rounds,
                           const uint8_t *pick, size_t npick)
{
  long count = 0;
  LLVMFuzzerTestOneInput(data, len);
  count++;
  uint8_t *m = malloc(len + 1);
  if (!m) abort();
  for (size_t cut = 0; cut < len; cut += 1 + len / cuts) {
    memcpy(m, data, cut);
    LLVMFuzzerTestOneInput(m, cut);
    count++;
  }
  for (int i = 0; i < rounds && len > 0; i++) {
    memcpy(m, data, len);
    int flips = 1 + (int)(next_rand() % 3);
    for (int f = 0; f < flips; f++) {
      size_t pos = next_rand() % len;
      m[pos] = i % 2 ? pick[next_rand() % npick] : (uint8_t)(m[pos] ^ (1u << (next_rand() % 8)));
    }
    LLVMFuzzerTestOneInput(m, len);
    count++;
  }
  free(m);
  return count;
}
