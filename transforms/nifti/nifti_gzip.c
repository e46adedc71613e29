/* gzip for NIfTI: libdeflate for the bulk (whole members at a time, several
 * times faster than zlib's streaming inflate), zlib where streaming is needed
 * (the first bytes, for the header; a member longer than the data we want;
 * telling a truncated stream from a corrupt one).
 *
 * Members we write carry, in an FEXTRA subfield "LM" (as BGZF's "BC"), their
 * compressed and uncompressed sizes; a chain of such members is inflated in
 * parallel.  Any other gzip file is inflated member by member, in order. */
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nifti_format.h"
#include "nifti_inflate_par.h"

#define LM_SUBFIELD_LEN 16
#define LM_MEMBER_HEADER 32 /* 10 fixed + 2 XLEN + 4 subfield header + 16 */

bool nifti_is_gzip(const uint8_t *buf, size_t len)
{
  return len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
}

static uint64_t le64(const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* zlib inflate of a (multi-member) gzip stream into out[0..want) (out NULL:
 * inflate and discard, only counting).  Returns LM_OK with *got set;
 * LM_EFORMAT for corrupt data; *truncated set when the input ended inside a
 * member. */
static int zlib_inflate(const uint8_t *in, size_t in_len, uint8_t *out,
                        size_t want, size_t *got, bool *truncated,
                        nifti_err *err)
{
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  *got = 0;
  *truncated = false;
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    return nifti_fail(err, LM_ENOMEM, "zlib inflateInit2 failed");
  size_t pos = 0, produced = 0;
  int status = LM_OK;
  uint8_t scratch[16384];
  bool member_start = true;
  while (produced < want && pos < in_len) {
    if (member_start && !nifti_is_gzip(in + pos, in_len - pos)) {
      if (pos == 0)
        status = nifti_fail(err, LM_EFORMAT, "corrupt gzip data: no gzip magic");
      else
        status = nifti_fail(err, LM_EFORMAT,
                            "corrupt gzip data: unexpected bytes after the gzip "
                            "member ending at byte %zu", pos);
      break;
    }
    size_t chunk_in = in_len - pos;
    size_t chunk_out = want - produced;
    /* zlib counts in uInt: feed at most 1 GiB at a time. */
    const size_t cap = (size_t)1 << 30;
    zs.next_in = (Bytef *)(in + pos);
    zs.avail_in = (uInt)(chunk_in < cap ? chunk_in : cap);
    if (out) {
      zs.next_out = out + produced;
      zs.avail_out = (uInt)(chunk_out < cap ? chunk_out : cap);
    } else {
      zs.next_out = scratch;
      zs.avail_out = (uInt)(chunk_out < sizeof scratch ? chunk_out : sizeof scratch);
    }
    uInt in0 = zs.avail_in, out0 = zs.avail_out;
    int zr = inflate(&zs, Z_NO_FLUSH);
    pos += in0 - zs.avail_in;
    produced += out0 - zs.avail_out;
    member_start = false;
    if (zr == Z_STREAM_END) {
      inflateReset(&zs);
      member_start = true;
      continue;
    }
    if (zr == Z_OK) continue;
    if (zr == Z_BUF_ERROR) {
      if (zs.avail_in == 0 && pos >= in_len) {
        *truncated = true;
        break;
      }
      continue;
    }
    status = nifti_fail(err, LM_EFORMAT, "corrupt gzip data at byte %zu: %s", pos,
                        zs.msg ? zs.msg : "inflate failed");
    break;
  }
  /* Input exhausted in the middle of a member (not at a member boundary). */
  if (status == LM_OK && produced < want && pos >= in_len && zs.total_in > 0)
    *truncated = true;
  inflateEnd(&zs);
  *got = produced;
  return status;
}

int nifti_gunzip_head(const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t want, size_t *got, nifti_err *err)
{
  bool truncated;
  return zlib_inflate(in, in_len, out, want, got, &truncated, err);
}

int nifti_gunzip_count(const uint8_t *in, size_t in_len, size_t limit,
                       size_t *got, nifti_err *err)
{
  bool truncated;
  return zlib_inflate(in, in_len, NULL, limit, got, &truncated, err);
}

/* Diagnose a member libdeflate refused: corrupt, or cut short? */
static int diagnose(const uint8_t *in, size_t in_len, size_t pos, size_t want,
                    nifti_err *err)
{
  size_t got;
  bool truncated;
  int st = zlib_inflate(in + pos, in_len - pos, NULL, want, &got, &truncated, err);
  if (st < 0) return st;
  if (truncated)
    return nifti_fail(err, LM_EFORMAT,
                      "truncated gzip stream: the compressed data ends at byte %zu "
                      "inside a member", in_len);
  return nifti_fail(err, LM_EFORMAT,
                    "corrupt gzip data in the member at byte %zu (bad CRC or length)",
                    pos);
}

/* --- the parallel path for our own members ----------------------------- */

typedef struct member {
  size_t in_off, in_size, out_off, out_size;
} member;

/* Walk a chain of members that all carry the LM subfield.  Returns their
 * count (0 if the stream is not entirely such a chain up to want). */
static int scan_lm_members(const uint8_t *in, size_t in_len, size_t want,
                           member **out)
{
  size_t pos = 0, upos = 0;
  int n = 0, cap = 0;
  member *ms = NULL;
  while (upos < want) {
    if (in_len - pos < LM_MEMBER_HEADER) goto fail;
    const uint8_t *p = in + pos;
    if (p[0] != 0x1f || p[1] != 0x8b || p[2] != 8 || p[3] != 4) goto fail;
    if (p[10] != LM_SUBFIELD_LEN + 4 || p[11] != 0) goto fail;
    if (p[12] != 'L' || p[13] != 'M' || p[14] != LM_SUBFIELD_LEN || p[15] != 0)
      goto fail;
    uint64_t csize = le64(p + 16), usize = le64(p + 24);
    if (csize < LM_MEMBER_HEADER + 8 || csize > in_len - pos) goto fail;
    /* deflate cannot expand more than 1032:1; a larger claim is not ours. */
    if (usize > SIZE_MAX - upos || usize / 1032 > csize) goto fail;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      member *nm = realloc(ms, (size_t)cap * sizeof *nm);
      if (!nm) goto fail;
      ms = nm;
    }
    ms[n++] = (member){pos, (size_t)csize, upos, (size_t)usize};
    pos += (size_t)csize;
    upos += (size_t)usize;
  }
  *out = ms;
  return n;
fail:
  free(ms);
  return 0;
}

typedef struct par_inflate {
  const uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t want;
  const member *ms;
  nifti_err *errs; /* one per member: written only by its owner */
} par_inflate;

static int inflate_members(int64_t begin, int64_t end, void *arg)
{
  par_inflate *pi = arg;
  struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  if (!d) return nifti_fail(&pi->errs[begin], LM_ENOMEM, "out of memory");
  int status = LM_OK;
  for (int64_t i = begin; i < end && status == LM_OK; i++) {
    const member *m = &pi->ms[i];
    size_t need = pi->want - m->out_off;
    bool partial = need < m->out_size;
    uint8_t *dst = pi->out + m->out_off, *tmp = NULL;
    if (partial) {
      tmp = malloc(m->out_size ? m->out_size : 1);
      if (!tmp) {
        status = nifti_fail(&pi->errs[i], LM_ENOMEM, "out of memory");
        break;
      }
      dst = tmp;
    }
    size_t actual = 0;
    enum libdeflate_result r = libdeflate_gzip_decompress(
        d, pi->in + m->in_off, m->in_size, dst, m->out_size, &actual);
    if (r != LIBDEFLATE_SUCCESS || actual != m->out_size)
      status = diagnose(pi->in, m->in_off + m->in_size, m->in_off,
                        m->out_size ? m->out_size : 1, &pi->errs[i]);
    else if (partial)
      memcpy(pi->out + m->out_off, tmp, need);
    free(tmp);
  }
  libdeflate_free_decompressor(d);
  return status;
}

int nifti_gunzip(const uint8_t *in, size_t in_len, uint8_t *out, size_t want,
                 size_t *got, const nifti_par *par, nifti_err *err)
{
  *got = 0;
  if (want == 0) return LM_OK;
  if (!nifti_is_gzip(in, in_len))
    return nifti_fail(err, LM_EFORMAT, "corrupt gzip data: no gzip magic");

  member *ms = NULL;
  int nm = scan_lm_members(in, in_len, want, &ms);
  if (nm > 0) {
    nifti_err *errs = calloc((size_t)nm, sizeof *errs);
    if (!errs) {
      free(ms);
      return nifti_fail(err, LM_ENOMEM, "out of memory");
    }
    par_inflate pi = {in, in_len, out, want, ms, errs};
    int st = nifti_par_for(par, nm, 1, inflate_members, &pi);
    if (st < 0) {
      int first = -1;
      for (int i = 0; i < nm && first < 0; i++)
        if (errs[i].code < 0) first = i;
      if (first >= 0 && err) *err = errs[first];
      else nifti_fail(err, st, "inflating gzip members failed");
    } else {
      *got = want;
    }
    free(errs);
    free(ms);
    return st < 0 ? st : LM_OK;
  }

  /* One large member (nibabel, most tools): two threads when it can be
   * done and proven by the trailer; otherwise, or on any doubt, below. */
  if (nifti_inflate_par(in, in_len, out, want, par, NULL, NULL)) {
    *got = want;
    return LM_OK;
  }

  struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  if (!d) return nifti_fail(err, LM_ENOMEM, "out of memory");
  size_t pos = 0, produced = 0;
  int status = LM_OK;
  while (produced < want && pos < in_len) {
    if (!nifti_is_gzip(in + pos, in_len - pos)) {
      status = nifti_fail(err, LM_EFORMAT,
                          "corrupt gzip data: unexpected bytes after the gzip "
                          "member ending at byte %zu", pos);
      break;
    }
    size_t in_used = 0, out_used = 0;
    enum libdeflate_result r = libdeflate_gzip_decompress_ex(
        d, in + pos, in_len - pos, out + produced, want - produced, &in_used,
        &out_used);
    if (r == LIBDEFLATE_SUCCESS) {
      pos += in_used;
      produced += out_used;
      continue;
    }
    if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
      /* This member holds more than we want (trailing data after the
       * voxels): stream just the part we need. */
      size_t g = 0;
      bool truncated;
      status = zlib_inflate(in + pos, in_len - pos, out + produced,
                            want - produced, &g, &truncated, err);
      produced += g;
      break;
    }
    status = diagnose(in, in_len, pos, want - produced, err);
    break;
  }
  libdeflate_free_decompressor(d);
  *got = produced;
  return status;
}

/* --- compression --------------------------------------------------------- */

typedef struct par_deflate {
  const uint8_t *in;
  size_t n, chunk;
  int level;
  nifti_gz_members *out;
} par_deflate;

static void put_le32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int deflate_members(int64_t begin, int64_t end, void *arg)
{
  par_deflate *pd = arg;
  struct libdeflate_compressor *c = libdeflate_alloc_compressor(pd->level);
  if (!c) return LM_ENOMEM;
  int status = LM_OK;
  for (int64_t i = begin; i < end; i++) {
    size_t off = (size_t)i * pd->chunk;
    size_t len = pd->n - off < pd->chunk ? pd->n - off : pd->chunk;
    size_t bound = libdeflate_deflate_compress_bound(c, len);
    uint8_t *buf = malloc(LM_MEMBER_HEADER + bound + 8);
    if (!buf) {
      status = LM_ENOMEM;
      break;
    }
    size_t clen = libdeflate_deflate_compress(c, pd->in + off, len,
                                              buf + LM_MEMBER_HEADER, bound);
    if (clen == 0) {
      free(buf);
      status = LM_EINTERNAL;
      break;
    }
    size_t total = LM_MEMBER_HEADER + clen + 8;
    static const uint8_t head[16] = {0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255,
                                     LM_SUBFIELD_LEN + 4, 0, 'L', 'M',
                                     LM_SUBFIELD_LEN, 0};
    memcpy(buf, head, 16);
    put_le64(buf + 16, total);
    put_le64(buf + 24, len);
    put_le32(buf + LM_MEMBER_HEADER + clen, libdeflate_crc32(0, pd->in + off, len));
    put_le32(buf + LM_MEMBER_HEADER + clen + 4, (uint32_t)len);
    pd->out->data[i] = buf;
    pd->out->size[i] = total;
  }
  libdeflate_free_compressor(c);
  return status;
}

void nifti_gz_members_free(nifti_gz_members *m)
{
  if (m->data)
    for (int i = 0; i < m->count; i++) free(m->data[i]);
  free(m->data);
  free(m->size);
  memset(m, 0, sizeof *m);
}

int nifti_gzip_members(const uint8_t *in, size_t n, int level, size_t chunk,
                       const nifti_par *par, nifti_gz_members *out,
                       nifti_err *err)
{
  memset(out, 0, sizeof *out);
  if (level < 0 || level > 12)
    return nifti_fail(err, LM_EINVAL, "compress_level %d out of range 0..12", level);
  if (chunk == 0) chunk = 1;
  size_t count = n == 0 ? 1 : (n + chunk - 1) / chunk;
  if (count > INT32_MAX) return nifti_fail(err, LM_EINVAL, "too many gzip members");
  out->count = (int)count;
  out->data = calloc(count, sizeof *out->data);
  out->size = calloc(count, sizeof *out->size);
  if (!out->data || !out->size) {
    nifti_gz_members_free(out);
    return nifti_fail(err, LM_ENOMEM, "out of memory compressing");
  }
  par_deflate pd = {in, n, chunk, level, out};
  int st = nifti_par_for(par, (int64_t)count, 1, deflate_members, &pd);
  if (st < 0) {
    nifti_gz_members_free(out);
    if (st == LM_ECANCELED) return nifti_fail(err, st, "cancelled");
    return nifti_fail(err, st, "gzip compression failed (%s)",
                      st == LM_ENOMEM ? "out of memory" : "libdeflate error");
  }
  for (size_t i = 0; i < count; i++) out->total += out->size[i];
  return LM_OK;
}
