/* A raw-deflate decoder that can start in the middle of a stream, for the
 * parallel inflate of single-member gzip files (nifti_inflate_par.c).
 *
 * Started at a block boundary without the 32 KiB of output that precede it,
 * it writes uint16 symbols: values below 256 are bytes; a back-reference that
 * reaches before its first output byte writes the marker
 * 0x8000 | w, where w (0..32767) indexes the unknown 32 KiB window that
 * precedes the start (w = 32767 is the byte just before it).  Copies of
 * markers copy the marker.  Once the window is known, each symbol resolves
 * to one byte.
 *
 * Its rules are those of libdeflate or stricter: whatever it accepts,
 * libdeflate decodes the same way, so a caller that falls back to libdeflate
 * on any refusal gives the same result either way.  It never reads outside
 * in[0..in_len) nor writes outside out[0..cap), whatever the input. */
#ifndef LM_NIFTI_DEFLATE_MARKERS_H
#define LM_NIFTI_DEFLATE_MARKERS_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NIFTI_MARKER 0x8000u
#define NIFTI_WINDOW 32768u

typedef enum nifti_mdec_status {
  NIFTI_MDEC_OK = 0,      /* the final block was decoded */
  NIFTI_MDEC_MORE = 1,    /* max_blocks blocks decoded, the stream goes on */
  NIFTI_MDEC_BAD = -1,    /* invalid data (or rules stricter than libdeflate's) */
  NIFTI_MDEC_FULL = -2,   /* more output than cap */
  NIFTI_MDEC_STOPPED = -3 /* *stop was set */
} nifti_mdec_status;

/* Where a decode stands: the bit offset of the next block header in in[]
 * and the number of symbols written so far. */
typedef struct nifti_mdec_pos {
  uint64_t bit;
  size_t out;
} nifti_mdec_pos;

/* Decode blocks from pos->bit on (a block header) into out[pos->out..cap),
 * at most max_blocks of them (0: no limit), until the final block.  pos is
 * advanced past the blocks decoded (after the final block, pos->bit is
 * rounded up to a byte boundary).  stop (may be NULL) is polled between
 * blocks. */
nifti_mdec_status nifti_mdec_decode(const uint8_t *in, size_t in_len,
                                    nifti_mdec_pos *pos, uint16_t *out,
                                    size_t cap, long max_blocks,
                                    const _Atomic int *stop);

/* The block finder: the first bit offset in [from, to) that starts a
 * plausible dynamic-Huffman block (BFINAL 0, BTYPE 10, HLIT and HDIST
 * <= 29, complete code-length code, complete literal/length code with an
 * end-of-block code, complete distance code or a single one-bit code).
 * Returns true with *found set, false if there is none. */
bool nifti_mdec_find_block(const uint8_t *in, size_t in_len, uint64_t from,
                           uint64_t to, uint64_t *found);

/* A cheap plausibility test of the block header at bit (after a block
 * decoded from a found start): not BTYPE 11, a stored block's LEN/NLEN
 * agree, a dynamic header decodes. */
bool nifti_mdec_header_plausible(const uint8_t *in, size_t in_len, uint64_t bit);

#endif
