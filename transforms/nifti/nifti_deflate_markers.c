/* Raw deflate (RFC 1951) to uint16 symbols with window markers; see
 * nifti_deflate_markers.h.
 *
 * Decoding tables follow zlib's inflate_fast / libdeflate: a primary table
 * indexed by the next LIT_BITS (DIST_BITS) bits, subtables for longer codes,
 * and a 64-bit bit buffer refilled with one unaligned load per symbol.  Each
 * entry packs what to consume and what it means:
 *   bits 0..4   bits to consume at this level
 *   bits 8..12  extra bits (lengths, distances) or subtable index bits
 *   bits 13..15 kind (E_LIT, E_LEN, E_EOB, E_SUB, E_BAD)
 *   bits 16..31 literal byte, length or distance base, subtable offset */
#include "nifti_deflate_markers.h"

#include <string.h>

#define LIT_BITS 10
#define DIST_BITS 8
#define PRE_BITS 7
#define MAX_LEN 15
#define NUM_LIT 288
#define NUM_DIST 32
#define NUM_PRE 19
/* Primary table plus, at worst, one subtable per code longer than the
 * primary bits, each 2^(MAX_LEN - bits) entries (all subtables of a table
 * index the same number of bits, so any complete code fills them). */
#define LIT_TABLE (1024 + 288 * 32)
#define DIST_TABLE (256 + 32 * 128)

enum { E_LIT = 0, E_LEN = 1, E_EOB = 2, E_SUB = 3, E_BAD = 4 };
#define ENTRY(kind, extra, value) \
  (((uint32_t)(value) << 16) | ((uint32_t)(kind) << 13) | ((uint32_t)(extra) << 8))
#define E_NBITS(e) ((e) & 31u)
#define E_KIND(e) (((e) >> 13) & 7u)
#define E_EXTRA(e) (((e) >> 8) & 31u)
#define E_VALUE(e) ((e) >> 16)

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static const uint16_t len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                       6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t pre_order[NUM_PRE] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                           11, 4, 12, 3, 13, 2, 14, 1, 15};

static uint32_t lit_result(unsigned sym)
{
  if (sym < 256) return ENTRY(E_LIT, 0, sym);
  if (sym == 256) return ENTRY(E_EOB, 0, 0);
  if (sym < 286) return ENTRY(E_LEN, len_extra[sym - 257], len_base[sym - 257]);
  return ENTRY(E_BAD, 0, 0); /* 286, 287: libdeflate's meaning is not ours to guess */
}
static uint32_t dist_result(unsigned sym)
{
  if (sym < 30) return ENTRY(E_LIT, dist_extra[sym], dist_base[sym]);
  return ENTRY(E_BAD, 0, 0);
}
static uint32_t pre_result(unsigned sym) { return ENTRY(E_LIT, 0, sym); }

typedef enum code_shape { CODE_BAD, CODE_COMPLETE, CODE_SINGLE, CODE_EMPTY } code_shape;

static unsigned reverse_bits(unsigned code, unsigned len)
{
  unsigned r = 0;
  for (unsigned i = 0; i < len; i++, code >>= 1) r = (r << 1) | (code & 1);
  return r;
}

/* Build a decoding table for the canonical code given by lens[0..n).  As in
 * libdeflate, an over-subscribed code is refused and the only incomplete
 * codes accepted are the empty code (decodes as symbol 0) and a single
 * one-bit code (either bit decodes as that symbol), both consuming one
 * bit; the caller decides whether it accepts those shapes. */
static code_shape build_table(uint32_t *table, unsigned tbits, const uint8_t *lens,
                              unsigned n, uint32_t (*result)(unsigned))
{
  unsigned count[MAX_LEN + 1] = {0};
  for (unsigned s = 0; s < n; s++) count[lens[s]]++;
  count[0] = 0;
  int32_t left = 1;
  unsigned maxlen = 0, used = 0;
  for (unsigned l = 1; l <= MAX_LEN; l++) {
    left = 2 * left - (int32_t)count[l];
    if (left < 0) return CODE_BAD;
    if (count[l]) maxlen = l;
    used += count[l];
  }
  unsigned tsize = 1u << tbits;
  if (left > 0) {
    unsigned sym = 0;
    code_shape shape = CODE_EMPTY;
    if (used != 0) {
      if (used != 1 || count[1] != 1) return CODE_BAD;
      while (lens[sym] == 0) sym++;
      shape = CODE_SINGLE;
    }
    uint32_t e = result(sym) | 1;
    for (unsigned i = 0; i < tsize; i++) table[i] = e;
    return shape;
  }
  unsigned next[MAX_LEN + 2];
  next[1] = 0;
  for (unsigned l = 1; l <= MAX_LEN; l++) next[l + 1] = (next[l] + count[l]) << 1;
  unsigned subbits = maxlen > tbits ? maxlen - tbits : 0;
  unsigned free_at = tsize;
  int16_t sub_of[1u << LIT_BITS];
  if (subbits) memset(sub_of, 0xff, sizeof(int16_t) * tsize);
  for (unsigned s = 0; s < n; s++) {
    unsigned len = lens[s];
    if (!len) continue;
    unsigned rev = reverse_bits(next[len]++, len);
    uint32_t r = result(s);
    if (len <= tbits) {
      for (unsigned i = rev; i < tsize; i += 1u << len) table[i] = r | len;
      continue;
    }
    unsigned prefix = rev & (tsize - 1);
    if (sub_of[prefix] < 0) {
      sub_of[prefix] = (int16_t)free_at;
      table[prefix] = ENTRY(E_SUB, subbits, free_at) | tbits;
      free_at += 1u << subbits;
    }
    unsigned base = (unsigned)sub_of[prefix], l2 = len - tbits;
    for (unsigned i = rev >> tbits; i < (1u << subbits); i += 1u << l2)
      table[base + i] = r | l2;
  }
  return CODE_COMPLETE;
}

/* --- random-access bit reading, for headers ----------------------------- */

static inline uint64_t load_le64(const uint8_t *p)
{
  uint64_t w;
  memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

/* The 57+ bits from bit on (zeros past the end). */
static inline uint64_t peek_bits(const uint8_t *in, size_t len, uint64_t bit)
{
  uint64_t byte = bit >> 3, w = 0;
  if (byte + 8 <= len) {
    w = load_le64(in + byte);
  } else {
    for (unsigned i = 0; i < 8 && byte + i < len; i++) w |= (uint64_t)in[byte + i] << (8 * i);
  }
  return w >> (bit & 7);
}

typedef struct bitpos {
  const uint8_t *in;
  size_t len;
  uint64_t bit;
} bitpos;

static inline unsigned take(bitpos *b, unsigned n)
{
  unsigned v = (unsigned)(peek_bits(b->in, b->len, b->bit) & ((1u << n) - 1));
  b->bit += n;
  return v;
}

static inline bool within(const bitpos *b) { return b->bit <= (uint64_t)b->len * 8; }

typedef struct tables {
  uint32_t lit[LIT_TABLE];
  uint32_t dist[DIST_TABLE];
} tables;

/* Read a dynamic block's header (after its 3 header bits) and build its
 * tables.  strict: the block finder's rules (complete codes, an
 * end-of-block code, at most a single one-bit distance code). */
static bool read_dynamic_header(bitpos *b, tables *t, bool strict)
{
  unsigned nlit = take(b, 5) + 257, ndist = take(b, 5) + 1, npre = take(b, 4) + 4;
  if (nlit > 286 || ndist > 30) return false;
  uint8_t pre_lens[NUM_PRE] = {0};
  for (unsigned i = 0; i < npre; i++) pre_lens[pre_order[i]] = (uint8_t)take(b, 3);
  uint32_t pre[1u << PRE_BITS];
  code_shape ps = build_table(pre, PRE_BITS, pre_lens, NUM_PRE, pre_result);
  if (ps == CODE_BAD || (strict && ps != CODE_COMPLETE)) return false;
  uint8_t lens[NUM_LIT + NUM_DIST];
  unsigned total = nlit + ndist, i = 0;
  while (i < total) {
    if (!within(b)) return false;
    uint32_t e = pre[peek_bits(b->in, b->len, b->bit) & ((1u << PRE_BITS) - 1)];
    b->bit += E_NBITS(e);
    unsigned sym = E_VALUE(e), rep;
    uint8_t val = 0;
    if (sym < 16) {
      lens[i++] = (uint8_t)sym;
      continue;
    } else if (sym == 16) {
      if (i == 0) return false;
      val = lens[i - 1];
      rep = 3 + take(b, 2);
    } else if (sym == 17) {
      rep = 3 + take(b, 3);
    } else {
      rep = 11 + take(b, 7);
    }
    if (rep > total - i) return false;
    memset(lens + i, val, rep);
    i += rep;
  }
  if (!within(b)) return false;
  uint8_t lit_lens[NUM_LIT] = {0}, dist_lens[NUM_DIST] = {0};
  memcpy(lit_lens, lens, nlit);
  memcpy(dist_lens, lens + nlit, ndist);
  if (strict && lit_lens[256] == 0) return false;
  code_shape ls = build_table(t->lit, LIT_BITS, lit_lens, NUM_LIT, lit_result);
  if (ls == CODE_BAD || (strict && ls != CODE_COMPLETE)) return false;
  code_shape ds = build_table(t->dist, DIST_BITS, dist_lens, NUM_DIST, dist_result);
  if (ds == CODE_BAD || (strict && ds == CODE_EMPTY)) return false;
  return true;
}

static void fixed_tables(tables *t)
{
  uint8_t lens[NUM_LIT];
  memset(lens, 8, 144);
  memset(lens + 144, 9, 112);
  memset(lens + 256, 7, 24);
  memset(lens + 280, 8, 8);
  build_table(t->lit, LIT_BITS, lens, NUM_LIT, lit_result);
  uint8_t dl[NUM_DIST];
  memset(dl, 5, sizeof dl);
  build_table(t->dist, DIST_BITS, dl, NUM_DIST, dist_result);
}

/* --- the hot loop ---------------------------------------------------------- */

/* Decode one Huffman-coded block's data from bit *bitp with tables t into
 * out[*op..cap).  On NIFTI_MDEC_OK *bitp is just past the end-of-block code. */
static nifti_mdec_status decode_huffman(const uint8_t *in, size_t in_len, uint64_t *bitp,
                                        const tables *t, uint16_t *out, size_t cap,
                                        size_t *op)
{
  const uint8_t *ip = in + (*bitp >> 3), *in_end = in + in_len;
  uint64_t bitbuf = 0;
  unsigned bitcnt = 0, overrun = 0;
  size_t o = *op;
  const uint32_t *lit = t->lit, *dist_t = t->dist;
  nifti_mdec_status st = NIFTI_MDEC_BAD;
  if (*bitp > (uint64_t)in_len * 8) return NIFTI_MDEC_BAD;
  /* Start mid-byte: load the first byte and drop the bits before *bitp. */
  if (ip < in_end) {
    bitbuf = *ip++ >> (*bitp & 7);
    bitcnt = 8 - (unsigned)(*bitp & 7);
  }

  for (;;) {
    /* Refill to at least 56 bits: one symbol with its distance needs 48. */
    if (likely(in_end - ip >= 8)) {
      bitbuf |= load_le64(ip) << bitcnt;
      ip += (63 - bitcnt) >> 3;
      bitcnt |= 56;
    } else {
      while (bitcnt <= 56) {
        uint64_t byte = 0;
        if (ip < in_end) byte = *ip++;
        else overrun++;
        bitbuf |= byte << bitcnt;
        bitcnt += 8;
      }
      /* Bits past the end were consumed: the stream is cut short. */
      if (overrun * 8 > bitcnt) goto done;
    }
    uint32_t e = lit[bitbuf & ((1u << LIT_BITS) - 1)];
    if (unlikely(E_KIND(e) == E_SUB)) {
      bitbuf >>= LIT_BITS;
      bitcnt -= LIT_BITS;
      e = lit[E_VALUE(e) + (bitbuf & ((1u << E_EXTRA(e)) - 1))];
    }
    bitbuf >>= E_NBITS(e);
    bitcnt -= E_NBITS(e);
    unsigned kind = E_KIND(e);
    if (likely(kind == E_LIT)) {
      if (unlikely(o >= cap)) {
        st = NIFTI_MDEC_FULL;
        goto done;
      }
      out[o++] = (uint16_t)E_VALUE(e);
      /* A second literal fits in the bits left (15 + 15 <= 56). */
      e = lit[bitbuf & ((1u << LIT_BITS) - 1)];
      if (E_KIND(e) == E_LIT && o < cap) {
        bitbuf >>= E_NBITS(e);
        bitcnt -= E_NBITS(e);
        out[o++] = (uint16_t)E_VALUE(e);
      }
      continue;
    }
    if (kind == E_EOB) {
      st = NIFTI_MDEC_OK;
      goto done;
    }
    if (unlikely(kind != E_LEN)) goto done;
    size_t len = E_VALUE(e) + (size_t)(bitbuf & ((1u << E_EXTRA(e)) - 1));
    bitbuf >>= E_EXTRA(e);
    bitcnt -= E_EXTRA(e);
    e = dist_t[bitbuf & ((1u << DIST_BITS) - 1)];
    if (unlikely(E_KIND(e) == E_SUB)) {
      bitbuf >>= DIST_BITS;
      bitcnt -= DIST_BITS;
      e = dist_t[E_VALUE(e) + (bitbuf & ((1u << E_EXTRA(e)) - 1))];
    }
    bitbuf >>= E_NBITS(e);
    bitcnt -= E_NBITS(e);
    if (unlikely(E_KIND(e) != E_LIT)) goto done;
    size_t dist = E_VALUE(e) + (size_t)(bitbuf & ((1u << E_EXTRA(e)) - 1));
    bitbuf >>= E_EXTRA(e);
    bitcnt -= E_EXTRA(e);
    if (unlikely(len > cap - o)) {
      st = NIFTI_MDEC_FULL;
      goto done;
    }
    uint16_t *dst = out + o;
    if (likely(dist <= o)) {
      const uint16_t *src = dst - dist;
      if (dist >= 8 && cap - o >= len + 8) {
        /* 8 symbols at a time; the overshoot lands in space still free. */
        uint16_t *end = dst + len;
        do {
          memcpy(dst, src, 16);
          dst += 8;
          src += 8;
        } while (dst < end);
      } else if (cap - o >= len + 16) {
        /* A short period: lay down one period of at least 8 symbols one
         * by one, then repeat it 8 symbols at a time (runs of air in CT are
         * distance 1 or 2). */
        size_t period = dist * ((8 + dist - 1) / dist);
        size_t first = period < len ? period : len;
        for (size_t i = 0; i < first; i++) dst[i] = src[i];
        uint16_t *end = dst + len;
        dst += first;
        while (dst < end) {
          memcpy(dst, dst - period, 16);
          dst += 8;
        }
      } else {
        for (size_t i = 0; i < len; i++) dst[i] = src[i];
      }
    } else {
      /* Reaches into the unknown window before the start. */
      if (unlikely(dist - o > NIFTI_WINDOW)) goto done;
      for (size_t i = 0; i < len; i++) {
        ptrdiff_t s = (ptrdiff_t)(o + i) - (ptrdiff_t)dist;
        dst[i] = s >= 0 ? out[s]
                        : (uint16_t)(NIFTI_MARKER | (uint16_t)(s + (ptrdiff_t)NIFTI_WINDOW));
      }
    }
    o += len;
  }
done:;
  uint64_t consumed = (uint64_t)(ip - in) * 8 + (uint64_t)overrun * 8 - bitcnt;
  if (st == NIFTI_MDEC_OK && consumed > (uint64_t)in_len * 8) st = NIFTI_MDEC_BAD;
  *bitp = consumed;
  *op = o;
  return st;
}

nifti_mdec_status nifti_mdec_decode(const uint8_t *in, size_t in_len, nifti_mdec_pos *pos,
                                    uint16_t *out, size_t cap, long max_blocks,
                                    const _Atomic int *stop)
{
  tables t;
  for (long n = 0; max_blocks <= 0 || n < max_blocks; n++) {
    if (stop && atomic_load_explicit(stop, memory_order_relaxed))
      return NIFTI_MDEC_STOPPED;
    bitpos b = {in, in_len, pos->bit};
    unsigned final = take(&b, 1), type = take(&b, 2);
    if (type == 0) {
      b.bit = (b.bit + 7) & ~(uint64_t)7;
      unsigned len = take(&b, 16), nlen = take(&b, 16);
      if (!within(&b) || len != (~nlen & 0xffffu)) return NIFTI_MDEC_BAD;
      uint64_t byte = b.bit >> 3;
      if (len > in_len - byte) return NIFTI_MDEC_BAD;
      if (len > cap - pos->out) return NIFTI_MDEC_FULL;
      const uint8_t *src = in + byte;
      uint16_t *dst = out + pos->out;
      for (unsigned i = 0; i < len; i++) dst[i] = src[i];
      pos->out += len;
      pos->bit = (byte + len) * 8;
    } else if (type == 3) {
      return NIFTI_MDEC_BAD;
    } else {
      if (type == 1) fixed_tables(&t);
      else if (!read_dynamic_header(&b, &t, false)) return NIFTI_MDEC_BAD;
      uint64_t bit = b.bit;
      nifti_mdec_status st = decode_huffman(in, in_len, &bit, &t, out, cap, &pos->out);
      if (st != NIFTI_MDEC_OK) return st;
      pos->bit = bit;
    }
    if (final) {
      pos->bit = (pos->bit + 7) & ~(uint64_t)7;
      return NIFTI_MDEC_OK;
    }
  }
  return NIFTI_MDEC_MORE;
}

bool nifti_mdec_find_block(const uint8_t *in, size_t in_len, uint64_t from, uint64_t to,
                           uint64_t *found)
{
  uint64_t end = (uint64_t)in_len * 8;
  if (to > end) to = end;
  tables local, *t = &local;
  for (uint64_t bit = from; bit < to; bit++) {
    /* BFINAL 0, BTYPE 10 (bits 0,0,1), HLIT <= 29, HDIST <= 29, and every
     * code-length length read: a quick look at 17 bits rejects most. */
    uint64_t w = peek_bits(in, in_len, bit);
    if ((w & 7) != 4) continue;
    if (((w >> 3) & 31) > 29 || ((w >> 8) & 31) > 29) continue;
    bitpos b = {in, in_len, bit + 3};
    if (read_dynamic_header(&b, t, true)) {
      *found = bit;
      return true;
    }
  }
  return false;
}

bool nifti_mdec_header_plausible(const uint8_t *in, size_t in_len, uint64_t bit)
{
  bitpos b = {in, in_len, bit};
  take(&b, 1);
  unsigned type = take(&b, 2);
  if (!within(&b) || type == 3) return false;
  if (type == 0) {
    b.bit = (b.bit + 7) & ~(uint64_t)7;
    unsigned len = take(&b, 16), nlen = take(&b, 16);
    return within(&b) && len == (~nlen & 0xffffu);
  }
  if (type == 1) return true;
  tables t;
  return read_dynamic_header(&b, &t, false);
}
