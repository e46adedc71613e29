/* NRRD data: from the bytes that follow the header (or a detached data file)
 * to values of the requested dtype.  Skips are applied as teem does: `line
 * skip` lines of the file first, then (after inflating, for gzip) `byte skip`
 * bytes; byte skip -1 means the data are the last bytes of a raw file. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nrrd_format.h"

static int skip_lines(const nrrd_header *h, const uint8_t **data, size_t *len, nifti_err *err)
{
  for (int64_t i = 0; i < h->line_skip; i++) {
    const uint8_t *nl = memchr(*data, '\n', *len);
    if (!nl)
      return nifti_fail(err, LM_EFORMAT, "field 'line skip': the data end after %lld of %lld "
                        "lines", (long long)i, (long long)h->line_skip);
    *len -= (size_t)(nl + 1 - *data);
    *data = nl + 1;
  }
  return LM_OK;
}

static int truncated(const nrrd_header *h, uint64_t have, uint64_t need, bool gz,
                     nifti_err *err)
{
  return nifti_fail(err, LM_EFORMAT, "truncated data: %s%llu bytes, %llu needed for %lld "
                    "values of %zu bytes%s", gz ? "the gzip stream inflates to " : "",
                    (unsigned long long)have, (unsigned long long)need, (long long)h->numel,
                    h->elem_size, h->byte_skip > 0 ? " after 'byte skip'" : "");
}

/* ascii: whitespace-separated numbers, stored in the header's type in host
 * order, then converted like binary data. */
static int parse_ascii(const nrrd_header *h, const uint8_t *data, size_t len, void *vals,
                       nifti_err *err)
{
  char *text = malloc(len + 1);
  if (!text) return nifti_fail(err, LM_ENOMEM, "out of memory");
  memcpy(text, data, len);
  text[len] = 0;
  const char *p = text;
  int st = LM_OK;
  for (int64_t i = 0; i < h->numel; i++) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
    char *e;
    errno = 0;
    bool bad = false;
    switch (h->stype) {
    case NIFTI_S_F32: ((float *)vals)[i] = strtof(p, &e); break;
    case NIFTI_S_F64: ((double *)vals)[i] = strtod(p, &e); break;
    case NIFTI_S_U64: ((uint64_t *)vals)[i] = strtoull(p, &e, 10); bad = *p == '-'; break;
    default: {
      long long v = strtoll(p, &e, 10);
      static const long long lo[] = {[NIFTI_S_U8] = 0, [NIFTI_S_I8] = -128,
                                     [NIFTI_S_I16] = -32768, [NIFTI_S_U16] = 0,
                                     [NIFTI_S_I32] = INT32_MIN, [NIFTI_S_U32] = 0,
                                     [NIFTI_S_I64] = INT64_MIN};
      static const long long hi[] = {[NIFTI_S_U8] = 255, [NIFTI_S_I8] = 127,
                                     [NIFTI_S_I16] = 32767, [NIFTI_S_U16] = 65535,
                                     [NIFTI_S_I32] = INT32_MAX, [NIFTI_S_U32] = UINT32_MAX,
                                     [NIFTI_S_I64] = INT64_MAX};
      bad = v < lo[h->stype] || v > hi[h->stype];
      switch (h->stype) {
      case NIFTI_S_U8: ((uint8_t *)vals)[i] = (uint8_t)v; break;
      case NIFTI_S_I8: ((int8_t *)vals)[i] = (int8_t)v; break;
      case NIFTI_S_I16: ((int16_t *)vals)[i] = (int16_t)v; break;
      case NIFTI_S_U16: ((uint16_t *)vals)[i] = (uint16_t)v; break;
      case NIFTI_S_I32: ((int32_t *)vals)[i] = (int32_t)v; break;
      case NIFTI_S_U32: ((uint32_t *)vals)[i] = (uint32_t)v; break;
      default: ((int64_t *)vals)[i] = v; break;
      }
    }
    }
    if (e == p) {
      st = nifti_fail(err, LM_EFORMAT, "ascii data: value %lld of %lld is %s", (long long)i,
                      (long long)h->numel, *p ? "not a number" : "missing (the data end)");
      break;
    }
    if (bad || errno == ERANGE) {
      if (h->stype != NIFTI_S_F32 && h->stype != NIFTI_S_F64) {
        st = nifti_fail(err, LM_EFORMAT, "ascii data: value %lld (\"%.*s\") is out of the "
                        "range of the header's type", (long long)i, (int)(e - p > 30 ? 30 : e - p), p);
        break;
      }
    }
    p = e;
  }
  free(text);
  return st;
}

int nrrd_check_size(const nrrd_header *h, uint64_t len, nifti_err *err)
{
  uint64_t skip = h->byte_skip > 0 ? (uint64_t)h->byte_skip : 0;
  switch (h->encoding) {
  case NRRD_ENC_RAW:
    if (len < skip + h->data_bytes)
      return truncated(h, len > skip ? len - skip : 0, h->data_bytes, false, err);
    break;
  case NRRD_ENC_GZIP:
    if (skip + h->data_bytes > nifti_gzip_max_output((size_t)len))
      return nifti_fail(err, LM_EFORMAT, "truncated data: %llu gzip bytes cannot hold the %llu "
                        "bytes of %lld values", (unsigned long long)len,
                        (unsigned long long)(skip + h->data_bytes), (long long)h->numel);
    break;
  case NRRD_ENC_ASCII:
    if ((uint64_t)h->numel > len)
      return nifti_fail(err, LM_EFORMAT, "truncated data: %llu bytes of text cannot hold %lld "
                        "values", (unsigned long long)len, (long long)h->numel);
    break;
  }
  return LM_OK;
}

int nrrd_decode(const nrrd_header *h, const uint8_t *data, size_t len, lm_dtype dt, void *out,
                const nifti_par *par, nifti_err *err)
{
  int st = skip_lines(h, &data, &len, err);
  if (st < 0) return st;
  nifti_convert_spec cs = {h->stype, nifti_file_needs_swap(h->big_endian), false, 1, 0, dt};
  const uint8_t *src = NULL;
  uint8_t *tmp = NULL;
  uint64_t need = h->data_bytes;

  if (h->encoding == NRRD_ENC_RAW) {
    uint64_t start = (uint64_t)h->byte_skip;
    if (h->byte_skip == -1) {
      if (len < need) return truncated(h, len, need, false, err);
      start = len - need;
    }
    if (start > len || len - start < need)
      return truncated(h, start > len ? 0 : len - start, need, false, err);
    src = data + start;
  } else if (h->encoding == NRRD_ENC_GZIP) {
    uint64_t want = (uint64_t)h->byte_skip + need;
    if (!nifti_is_gzip(data, len))
      return nifti_fail(err, LM_EFORMAT, "field 'encoding' says gzip but the data do not start "
                        "with the gzip magic bytes");
    if (want > nifti_gzip_max_output(len)) {
      size_t got = 0;
      nifti_err e2;
      if (nifti_gunzip_count(data, len, (size_t)want, &got, &e2) < 0) {
        if (err) *err = e2;
        return e2.code;
      }
      return truncated(h, got, want, true, err);
    }
    tmp = malloc(want ? (size_t)want : 1);
    if (!tmp) return nifti_fail(err, LM_ENOMEM, "out of memory for %llu bytes",
                                (unsigned long long)want);
    size_t got = 0;
    st = nifti_gunzip(data, len, tmp, (size_t)want, &got, par, err);
    if (st >= 0 && got < want) st = truncated(h, got, want, true, err);
    src = tmp + h->byte_skip;
  } else {
    uint64_t skip = (uint64_t)h->byte_skip;
    if (skip > len) return truncated(h, 0, need, false, err);
    tmp = malloc(need ? (size_t)need : 1);
    if (!tmp) return nifti_fail(err, LM_ENOMEM, "out of memory for %llu bytes",
                                (unsigned long long)need);
    st = parse_ascii(h, data + skip, len - (size_t)skip, tmp, err);
    cs.swap = false;
    src = tmp;
  }
  if (st >= 0) {
    st = nifti_convert(&cs, src, out, h->numel, par);
    if (st < 0) st = nifti_fail(err, st, "converting the values to dtype %d failed", (int)dt);
  }
  free(tmp);
  return st;
}

int nrrd_read_memory(const uint8_t *buf, size_t len, lm_dtype dt, bool native, nrrd_header *h,
                     void **data, lm_dtype *out_dt, nifti_err *err)
{
  *data = NULL;
  int st = nrrd_header_parse((const char *)buf, len, h, err);
  if (st < 0) return st;
  if (*h->data_file)
    return nifti_fail(err, LM_EUNSUPPORTED, "field 'data file': detached data cannot be read "
                      "from memory");
  if (native && (st = nrrd_native_dtype(h, &dt, err)) < 0) return st;
  if (dt == LM_F16 || dt == LM_BF16) dt = LM_F32;
  if ((st = nrrd_check_size(h, len - h->header_bytes, err)) < 0) return st;
  size_t es = nifti_dtype_size(dt);
  size_t bytes = (size_t)h->numel * es;
  void *out = malloc(bytes ? bytes : 1);
  if (!out) return nifti_fail(err, LM_ENOMEM, "out of memory");
  st = nrrd_decode(h, buf + h->header_bytes, len - h->header_bytes, dt, out, NULL, err);
  if (st < 0) {
    free(out);
    return st;
  }
  *data = out;
  *out_dt = dt;
  return LM_OK;
}
