/* Parallel inflate of a single-member gzip stream; see nifti_inflate_par.h. */
#include "nifti_inflate_par.h"

#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "nifti_deflate_markers.h"

/* B's decoder runs at about 0.6 of libdeflate's speed on CT-like data (both
 * measured on the 512x512x200 int16 benchmark volume), and A also copies its
 * input and checksums its output, so A takes the first ~60% of the
 * compressed bytes and both finish together. */
#define DEFAULT_SPLIT 0.60
#define DEFAULT_MIN_INPUT ((size_t)8 << 20)
#define DEFAULT_SEARCH ((size_t)4 << 20)
/* B's output is resolved and checksummed in pieces of this many symbols. */
#define RESOLVE_PIECE ((size_t)1 << 20)

static uint64_t taken;

uint64_t nifti_inflate_par_count(void) { return __atomic_load_n(&taken, __ATOMIC_RELAXED); }

void nifti_pinflate_defaults(nifti_pinflate_cfg *cfg)
{
  cfg->min_input = DEFAULT_MIN_INPUT;
  cfg->split = DEFAULT_SPLIT;
  cfg->search = DEFAULT_SEARCH;
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint32_t le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Offset of the deflate data after the gzip header, or 0 when the header
 * is one we leave to the sequential path (reserved flags, a header CRC,
 * fields running off the end). */
static size_t deflate_start(const uint8_t *in, size_t len)
{
  enum { FEXTRA = 4, FNAME = 8, FCOMMENT = 16, FHCRC = 2, RESERVED = 0xe0 };
  if (len < 18 || in[0] != 0x1f || in[1] != 0x8b || in[2] != 8) return 0;
  unsigned flg = in[3];
  if (flg & (RESERVED | FHCRC)) return 0;
  size_t pos = 10;
  if (flg & FEXTRA) {
    size_t xlen = (size_t)in[10] | (size_t)in[11] << 8;
    if (xlen > len - 12) return 0;
    pos = 12 + xlen;
  }
  for (unsigned f = FNAME; f <= FCOMMENT; f <<= 1) {
    if (!(flg & f)) continue;
    const uint8_t *z = memchr(in + pos, 0, len - pos);
    if (!z) return 0;
    pos = (size_t)(z - in) + 1;
  }
  return pos < len ? pos : 0;
}

typedef struct job {
  const uint8_t *in;
  size_t in_len, want, d0;
  uint8_t *out;
  uint64_t split_bit;
  /* A */
  uint8_t *abuf;
  void *abuf_handle;
  size_t alen;
  size_t a_out;
  uint32_t a_crc;
  bool a_ok;
  double t_a;
  /* B */
  uint16_t *bbuf;
  void *bbuf_handle;
  size_t bcap;
  nifti_mdec_pos bpos;
  bool b_ok;
  double t_b;
  _Atomic int stop; /* A failed: B may give up */
  bool serial;
  /* resolve */
  size_t npieces;
  uint32_t *crcs;
  uint8_t lut[65536]; /* symbol -> byte, once A's window is known */
} job;

static void run_a(job *j)
{
  double t0 = now();
  /* A's input: the deflate data up to P, then an empty final block with
   * fixed codes (bits 1, 10, then the 7-bit end-of-block code 0000000), so
   * that libdeflate stops exactly at P. */
  size_t pbyte = (size_t)(j->split_bit >> 3);
  unsigned pbits = (unsigned)(j->split_bit & 7);
  size_t head = pbyte - j->d0;
  memcpy(j->abuf, j->in + j->d0, head);
  uint32_t tail = (j->in[pbyte] & ((1u << pbits) - 1)) | (3u << pbits);
  for (size_t i = head; i < j->alen; i++, tail >>= 8) j->abuf[i] = (uint8_t)tail;
  struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  if (d) {
    size_t in_used = 0, out_used = 0;
    enum libdeflate_result r = libdeflate_deflate_decompress_ex(
        d, j->abuf, j->alen, j->out, j->want, &in_used, &out_used);
    libdeflate_free_decompressor(d);
    if (r == LIBDEFLATE_SUCCESS && in_used == j->alen) {
      j->a_out = out_used;
      j->a_crc = (uint32_t)libdeflate_crc32(0, j->out, out_used);
      j->a_ok = true;
    }
  }
  if (!j->a_ok) atomic_store_explicit(&j->stop, 1, memory_order_relaxed);
  j->t_a = now() - t0;
}

static void run_b(job *j)
{
  double t0 = now();
  nifti_mdec_status st = nifti_mdec_decode(j->in, j->in_len, &j->bpos, j->bbuf, j->bcap, 0,
                                           &j->stop);
  /* The member must end exactly where the trailer begins. */
  j->b_ok = st == NIFTI_MDEC_OK && j->bpos.bit / 8 == j->in_len - 8;
  j->t_b = now() - t0;
}

static int run_ab(int64_t begin, int64_t end, void *arg)
{
  job *j = arg;
  /* Both halves handed to one call: there is only one thread. */
  if (end - begin > 1) {
    j->serial = true;
    return LM_OK;
  }
  if (begin == 0) run_a(j);
  else run_b(j);
  return LM_OK;
}

/* Resolve B's symbols into bytes and checksum them, a piece at a time.
 * Markers are everywhere in CT data (copies of copies of the window), so
 * rather than branch on each symbol, look every symbol up in a table of
 * all 65536 values: bytes map to themselves, markers to the window. */
static int resolve_pieces(int64_t begin, int64_t end, void *arg)
{
  job *j = arg;
  size_t total = j->bpos.out;
  for (int64_t p = begin; p < end; p++) {
    size_t off = (size_t)p * RESOLVE_PIECE;
    size_t n = total - off < RESOLVE_PIECE ? total - off : RESOLVE_PIECE;
    const uint16_t *src = j->bbuf + off;
    uint8_t *dst = j->out + j->a_out + off;
    const uint8_t *lut = j->lut;
    for (size_t i = 0; i < n; i++) dst[i] = lut[src[i]];
    j->crcs[p] = (uint32_t)libdeflate_crc32(0, dst, n);
  }
  return LM_OK;
}

static bool decline(nifti_pinflate_info *info, const char *why)
{
  if (info) info->declined = why;
  return false;
}

/* Find B's first block at or after the target and decode it, which checks
 * it much harder than its header alone; the header after it must be
 * plausible too.  On success j->bpos stands after that block. */
static bool find_start(job *j, uint64_t from, uint64_t to)
{
  while (from < to) {
    uint64_t bit;
    if (!nifti_mdec_find_block(j->in, j->in_len, from, to, &bit)) return false;
    nifti_mdec_pos pos = {bit, 0};
    nifti_mdec_status st = nifti_mdec_decode(j->in, j->in_len, &pos, j->bbuf, j->bcap, 1, NULL);
    if (st == NIFTI_MDEC_MORE && nifti_mdec_header_plausible(j->in, j->in_len, pos.bit)) {
      j->split_bit = bit;
      j->bpos = pos;
      return true;
    }
    from = bit + 1;
  }
  return false;
}

bool nifti_inflate_par(const uint8_t *in, size_t in_len, uint8_t *out, size_t want,
                       const nifti_par *par, const nifti_pinflate_cfg *cfg,
                       nifti_pinflate_info *info)
{
  nifti_pinflate_cfg defaults;
  if (!cfg) {
    nifti_pinflate_defaults(&defaults);
    cfg = &defaults;
  }
  if (info) memset(info, 0, sizeof *info);
  if (!par || !par->run) return decline(info, "no thread pool");
  if (in_len < cfg->min_input || in_len < 64) return decline(info, "input below the threshold");
  size_t d0 = deflate_start(in, in_len);
  if (!d0) return decline(info, "gzip header left to the sequential path");
  /* ISIZE first: a stream that is not exactly want bytes long (or has
   * another member or trailing data after it) is not ours to guess about. */
  if (le32(in + in_len - 4) != (uint32_t)want) return decline(info, "ISIZE is not the size wanted");
  if (want < 2 * NIFTI_WINDOW) return decline(info, "output too small");
  if (want > SIZE_MAX / 2) return decline(info, "output too large");
  if (!(cfg->split > 0 && cfg->split < 1)) return decline(info, "split out of range");

  job *j = calloc(1, sizeof *j);
  if (!j) return decline(info, "out of memory");
  *j = (job){.in = in, .in_len = in_len, .want = want, .d0 = d0, .out = out};
  bool ok = false;
  const char *why = NULL;
  double t0 = now(), t_find = 0, t1 = 0;
  size_t body = in_len - 8 - d0;
  uint64_t from = ((uint64_t)d0 + (uint64_t)((double)body * cfg->split)) * 8;
  uint64_t to = from + (uint64_t)cfg->search * 8;
  if (to > (uint64_t)(in_len - 8) * 8) to = (uint64_t)(in_len - 8) * 8;
  /* B holds at most want symbols (A produces at least one byte). */
  j->bcap = want;
  j->bbuf = nifti_scratch_alloc(par, want * sizeof(uint16_t), &j->bbuf_handle);
  if (!j->bbuf) {
    why = "out of memory";
    goto out;
  }
  if (!find_start(j, from, to)) {
    why = "no block boundary found near the split point";
    goto out;
  }
  t_find = now() - t0;
  j->alen = (size_t)(j->split_bit >> 3) - d0 + ((j->split_bit & 7) + 10 + 7) / 8;
  j->abuf = nifti_scratch_alloc(par, j->alen, &j->abuf_handle);
  if (!j->abuf) {
    why = "out of memory";
    goto out;
  }
  int st = nifti_par_for(par, 2, 1, run_ab, j);
  if (j->serial) {
    why = "only one thread";
    goto out;
  }
  if (st < 0 || !j->a_ok || !j->b_ok) {
    why = st < 0      ? "cancelled"
          : !j->a_ok ? "the first part did not inflate"
                     : "the second part did not decode";
    goto out;
  }
  if (j->a_out + j->bpos.out != want || j->a_out < NIFTI_WINDOW) {
    why = "the parts do not add up to the size wanted";
    goto out;
  }
  t1 = now();
  for (unsigned v = 0; v < 256; v++) j->lut[v] = (uint8_t)v;
  memcpy(j->lut + NIFTI_MARKER, out + j->a_out - NIFTI_WINDOW, NIFTI_WINDOW);
  j->npieces = (j->bpos.out + RESOLVE_PIECE - 1) / RESOLVE_PIECE;
  j->crcs = malloc((j->npieces ? j->npieces : 1) * sizeof *j->crcs);
  if (!j->crcs) {
    why = "out of memory";
    goto out;
  }
  st = nifti_par_for(par, (int64_t)j->npieces, 1, resolve_pieces, j);
  if (st < 0) {
    why = "cancelled";
    goto out;
  }
  uLong crc = j->a_crc;
  for (size_t p = 0; p < j->npieces; p++) {
    size_t n = j->bpos.out - p * RESOLVE_PIECE;
    if (n > RESOLVE_PIECE) n = RESOLVE_PIECE;
    crc = crc32_combine(crc, j->crcs[p], (z_off_t)n);
  }
  if ((uint32_t)crc != le32(in + in_len - 8)) {
    why = "CRC mismatch";
    goto out;
  }
  ok = true;
  __atomic_add_fetch(&taken, 1, __ATOMIC_RELAXED);
out:
  if (info) {
    info->declined = why;
    info->split_bit = j->split_bit;
    info->a_bytes = j->a_out;
    info->b_bytes = j->bpos.out;
    info->t_find = t_find;
    info->t_a = j->t_a;
    info->t_b = j->t_b;
    info->t_resolve = ok ? now() - t1 : 0;
  }
  free(j->crcs);
  if (j->abuf) nifti_scratch_free(par, j->abuf, j->abuf_handle);
  if (j->bbuf) nifti_scratch_free(par, j->bbuf, j->bbuf_handle);
  free(j);
  return ok;
}
