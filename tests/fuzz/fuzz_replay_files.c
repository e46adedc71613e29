/* See fuzz_replay_files.h. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
