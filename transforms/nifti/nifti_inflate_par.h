/* Parallel inflate of one large single-member gzip stream (the kind nibabel
 * and most tools write), in the manner of pugz / rapidgzip:
 *
 *   thread A  inflates from the start with libdeflate up to a block boundary
 *             P, given a private copy of the compressed bytes before P that
 *             ends in an empty final block;
 *   thread B  finds a dynamic-Huffman block at or after P (nifti_mdec_find_
 *             block) and decodes from there to the end with window markers
 *             (nifti_deflate_markers.h);
 *   then      B's symbols are resolved against the last 32 KiB of A's output
 *             and the whole output is checked against the gzip trailer's
 *             CRC32 and ISIZE.
 *
 * It declines (returns false, output contents unspecified) whenever
 * anything is not as expected, and the caller then inflates sequentially,
 * which gives the normal result or the normal error.  A true result is
 * proven by length and CRC, so both paths give the same bytes. */
#ifndef LM_NIFTI_INFLATE_PAR_H
#define LM_NIFTI_INFLATE_PAR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nifti_format.h"

typedef struct nifti_pinflate_cfg {
  size_t min_input; /* compressed bytes below which it declines */
  double split;     /* where B starts, as a fraction of the deflate data */
  size_t search;    /* compressed bytes past the split point searched for a block */
} nifti_pinflate_cfg;

/* The defaults nifti_gunzip uses: 8 MiB, a split tuned to the relative
 * speed of the two decoders, 4 MiB. */
void nifti_pinflate_defaults(nifti_pinflate_cfg *cfg);

/* What happened, for tests and tuning. */
typedef struct nifti_pinflate_info {
  const char *declined; /* NULL: out holds the verified output; else why not */
  uint64_t split_bit;   /* B's first block, in bits from the start of in */
  size_t a_bytes, b_bytes;
  double t_find, t_a, t_b, t_resolve; /* seconds */
} nifti_pinflate_info;

/* Inflate the single gzip member in[0..in_len) into out[0..want) with two
 * threads from par (a par that runs everything on one thread: declined).
 * True only when the member is exactly in_len bytes, inflates to exactly
 * want bytes and its CRC32 matches.  cfg NULL: the defaults; info may be
 * NULL. */
bool nifti_inflate_par(const uint8_t *in, size_t in_len, uint8_t *out, size_t want,
                       const nifti_par *par, const nifti_pinflate_cfg *cfg,
                       nifti_pinflate_info *info);

/* How many times nifti_inflate_par produced the output in this process
 * (tests check that nifti_gunzip took the parallel path). */
uint64_t nifti_inflate_par_count(void);

#endif
