/* libFuzzer harness: the safetensors, lumen graph JSON and TensorFlow.js
 * readers (models/src/safetensors.c, graph_json*.c, tfjs*.c).  The first
 * byte picks the reader, the rest is the file: graph JSON is read from the
 * buffer (weights bound from a small valid safetensors file beside it), the
 * other two from a file written under /dev/shm (with valid weight shards
 * beside model.json).  Besides not crashing: every tensor a safetensors file
 * is accepted with must be readable to its last byte.
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true && ninja -C build-fuzz fuzz_model_formats
 *   build-fuzz/tests/fuzz/fuzz_model_formats -max_len=4096 CORPUS_DIR
 * (tests/c/test_model_formats.c runs garbled inputs in the normal suite.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loaders.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void put(const char *name, const void *p, size_t n)
{
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (n && fwrite(p, 1, n, f) != n) abort();
  fclose(f);
}

static void setup(void)
{
  snprintf(dir, sizeof dir, "/dev/shm/fuzz_model_formats_%d", (int)getpid());
  mkdir(dir, 0700);
  const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  unsigned char b[128] = {0};
  size_t hl = strlen(h);
  b[0] = (unsigned char)hl;
  memcpy(b + 8, h, hl);
  put("w.safetensors", b, 8 + hl + 8);
  static unsigned char zeros[4096];
  put("a.bin", zeros, 100);
  put("b.bin", zeros, sizeof zeros);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!dir[0]) setup();
  if (size < 1) return 0;
  char err[512], path[128];
  int which = data[0] % 3;
  data++;
  size--;
  if (which == 0) {
    lm_graph *g = NULL;
    if (lm_graph_json_load((const char *)data, size, dir, &g, err, sizeof err) == LM_OK)
      lm_graph_free(g);
  } else if (which == 1) {
    put("f.safetensors", data, size);
    snprintf(path, sizeof path, "%s/f.safetensors", dir);
    lm_safetensors *s = NULL;
    if (lm_safetensors_open(path, &s, err, sizeof err) == LM_OK) {
      for (int k = 0; k < lm_safetensors_count(s); k++) {
        const void *p;
        size_t nb;
        lm_safetensors_at(s, k, NULL, NULL, NULL, &p, &nb);
        volatile unsigned char sink = 0;
        if (nb) sink ^= ((const unsigned char *)p)[0] ^ ((const unsigned char *)p)[nb - 1];
        (void)sink;
      }
      lm_safetensors_close(s);
    }
  } else {
    put("model.json", data, size);
    snprintf(path, sizeof path, "%s/model.json", dir);
    lm_graph *g = NULL;
    if (lm_tfjs_load(path, &g, err, sizeof err) == LM_OK) lm_graph_free(g);
  }
  return 0;
}
