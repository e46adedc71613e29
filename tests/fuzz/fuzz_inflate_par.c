/* libFuzzer harness for the parallel inflate (nifti_inflate_par.c) and its
 * marker decoder (nifti_deflate_markers.c).  Input: one control byte (where
 * B starts), then a gzip stream.  Crashes when the parallel path claims an
 * output that libdeflate does not give, and (under ASan) on any read or
 * write out of bounds.  The two halves run one after the other on this
 * thread, which the code cannot tell from two threads. */
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>

#include "nifti_deflate_markers.h"
#include "nifti_inflate_par.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_each_chunk(void *ctx, int64_t n, int64_t grain, lm_range_fn body, void *arg)
{
  (void)ctx;
  (void)grain;
  for (int64_t i = 0; i < n; i++) {
    int st = body(i, i + 1, arg);
    if (st < 0) return st;
  }
  return LM_OK;
}

/* The decoder alone, from a bit offset the input picks, into a buffer of
 * exactly cap symbols (so ASan sees any write past it). */
static void decode_raw(const uint8_t *in, size_t len, unsigned control)
{
  if (len == 0) return;
  size_t cap = 1 + (size_t)control * 64;
  uint16_t *out = malloc(cap * sizeof *out);
  uint64_t bit = (uint64_t)(control % 8) + (len > 16 ? 8 * (uint64_t)(control % (len / 2)) : 0);
  nifti_mdec_pos pos = {bit, 0};
  nifti_mdec_decode(in, len, &pos, out, cap, 0, NULL);
  if (pos.out > cap) abort();
  uint64_t found;
  if (nifti_mdec_find_block(in, len, 0, (uint64_t)len * 8, &found)) {
    pos = (nifti_mdec_pos){found, 0};
    nifti_mdec_decode(in, len, &pos, out, cap, 4, NULL);
    if (pos.out > cap) abort();
    nifti_mdec_header_plausible(in, len, pos.bit);
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2) return 0;
  unsigned control = data[0];
  const uint8_t *gz = data + 1;
  size_t len = size - 1;
  decode_raw(gz, len, control);
  if (len < 18) return 0;
  size_t want = (size_t)gz[len - 4] | (size_t)gz[len - 3] << 8 | (size_t)gz[len - 2] << 16 |
                (size_t)gz[len - 1] << 24;
  if (want > ((size_t)16 << 20)) return 0;
  nifti_pinflate_cfg cfg;
  nifti_pinflate_defaults(&cfg);
  cfg.min_input = 0;
  cfg.split = 0.02 + 0.96 * (double)control / 255.0;
  nifti_par par = {run_each_chunk, NULL};
  uint8_t *out = malloc(want ? want : 1), *ref = malloc(want ? want : 1);
  nifti_pinflate_info info;
  if (nifti_inflate_par(gz, len, out, want, &par, &cfg, &info)) {
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    size_t got = 0;
    enum libdeflate_result r = libdeflate_gzip_decompress(d, gz, len, ref, want, &got);
    libdeflate_free_decompressor(d);
    if (r != LIBDEFLATE_SUCCESS || got != want || memcmp(out, ref, want) != 0) abort();
  }
  free(out);
  free(ref);
  return 0;
}
