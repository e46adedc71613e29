/* Single-member gzip, compressed in parallel.  Each chunk is deflated on its
 * own with zlib (raw deflate); all but the last end with Z_SYNC_FLUSH (an
 * empty stored block: byte-aligned, not final), the last with Z_FINISH, so
 * the chunks concatenate into one deflate stream.  The CRC is combined from
 * per-chunk CRCs.  Chunks of 1 MiB lose well under 1% of compression for
 * not sharing the 32 KiB window. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nrrd_ops.h"

#define CHUNK ((size_t)1 << 20)

typedef struct gz_job {
  const uint8_t *in;
  size_t n, nchunks;
  int level;
  uint8_t **buf;
  size_t *len;
  uLong *crc;
} gz_job;

static int deflate_chunks(int64_t begin, int64_t end, void *arg)
{
  gz_job *j = arg;
  for (int64_t i = begin; i < end; i++) {
    size_t off = (size_t)i * CHUNK, len = j->n - off < CHUNK ? j->n - off : CHUNK;
    bool last = (size_t)i == j->nchunks - 1;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, j->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return LM_ENOMEM;
    size_t cap = deflateBound(&zs, len) + 16;
    uint8_t *out = malloc(cap);
    if (!out) {
      deflateEnd(&zs);
      return LM_ENOMEM;
    }
    zs.next_in = (Bytef *)(j->in + off);
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int zr = deflate(&zs, last ? Z_FINISH : Z_SYNC_FLUSH);
    bool ok = last ? zr == Z_STREAM_END : (zr == Z_OK && zs.avail_in == 0);
    size_t produced = cap - zs.avail_out;
    deflateEnd(&zs);
    if (!ok) {
      free(out);
      return LM_EINTERNAL;
    }
    j->buf[i] = out;
    j->len[i] = produced;
    j->crc[i] = crc32(crc32(0, Z_NULL, 0), j->in + off, (uInt)len);
  }
  return LM_OK;
}

int nrrd_gzip_single(const uint8_t *in, size_t n, int level, const nifti_par *par,
                     uint8_t **out, size_t *out_len, nifti_err *err)
{
  *out = NULL;
  *out_len = 0;
  if (level < 0 || level > 9)
    return nifti_fail(err, LM_EINVAL, "compress_level %d out of range 0..9", level);
  size_t nchunks = n == 0 ? 1 : (n + CHUNK - 1) / CHUNK;
  gz_job j = {in, n, nchunks, level, calloc(nchunks, sizeof(uint8_t *)),
              calloc(nchunks, sizeof(size_t)), calloc(nchunks, sizeof(uLong))};
  int st = LM_ENOMEM;
  if (j.buf && j.len && j.crc) st = nifti_par_for(par, (int64_t)nchunks, 1, deflate_chunks, &j);
  if (st >= 0) {
    size_t total = 18;
    for (size_t i = 0; i < nchunks; i++) total += j.len[i];
    uint8_t *o = malloc(total);
    if (!o) {
      st = LM_ENOMEM;
    } else {
      static const uint8_t head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
      memcpy(o, head, 10);
      size_t pos = 10;
      uLong crc = j.crc[0];
      for (size_t i = 0; i < nchunks; i++) {
        memcpy(o + pos, j.buf[i], j.len[i]);
        pos += j.len[i];
        if (i > 0) {
          size_t clen = i == nchunks - 1 ? n - i * CHUNK : CHUNK;
          crc = crc32_combine(crc, j.crc[i], (z_off_t)clen);
        }
      }
      for (int k = 0; k < 4; k++) o[pos + k] = (uint8_t)(crc >> (8 * k));
      for (int k = 0; k < 4; k++) o[pos + 4 + k] = (uint8_t)((uint64_t)n >> (8 * k));
      *out = o;
      *out_len = total;
    }
  }
  if (j.buf)
    for (size_t i = 0; i < nchunks; i++) free(j.buf[i]);
  free(j.buf);
  free(j.len);
  free(j.crc);
  if (st == LM_ECANCELED) return nifti_fail(err, st, "cancelled");
  if (st < 0)
    return nifti_fail(err, st, "gzip compression failed (%s)",
                      st == LM_ENOMEM ? "out of memory" : "zlib error");
  return LM_OK;
}
