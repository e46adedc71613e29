/* Reading an image held in memory: the steps LoadNifti takes for a single
 * file, without files or engines (the fuzzer's entry point). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nifti_format.h"

int nifti_stream_header(const uint8_t *buf, size_t len, bool single_file,
                        nifti_header *h, nifti_err *err)
{
  uint8_t head[NIFTI_PEEK_SIZE];
  size_t got = 0;
  if (nifti_is_gzip(buf, len)) {
    int st = nifti_gunzip_head(buf, len, head, sizeof head, &got, err);
    if (st < 0) return st;
  } else {
    got = len < sizeof head ? len : sizeof head;
    memcpy(head, buf, got);
  }
  return nifti_header_parse(head, got, single_file, h, err);
}

int nifti_fail_truncated(nifti_err *err, const nifti_header *h, uint64_t have,
                         bool compressed)
{
  uint64_t after = have > (uint64_t)h->vox_offset ? have - (uint64_t)h->vox_offset : 0;
  char dims[160];
  size_t k = 0;
  dims[0] = 0;
  for (int i = 0; i < h->ndim && k < sizeof dims - 24; i++)
    k += (size_t)snprintf(dims + k, sizeof dims - k, "%s%lld", i ? "x" : "",
                          (long long)h->shape[i]);
  return nifti_fail(err, LM_EFORMAT,
                    "truncated file or dims that disagree with its size: expected "
                    "%llu bytes of voxel data after vox_offset %lld (dims %s, %s), "
                    "%s has %llu",
                    (unsigned long long)h->data_bytes, (long long)h->vox_offset, dims,
                    nifti_datatype_name(h->datatype),
                    compressed ? "the decompressed file" : "file",
                    (unsigned long long)after);
}

uint64_t nifti_gzip_max_output(size_t len)
{
  return (uint64_t)len * 1032u + 65536u;
}

int nifti_gunzip_exact(const uint8_t *buf, size_t len, const nifti_header *h,
                       uint8_t *out, uint64_t total, const nifti_par *par,
                       nifti_err *err)
{
  size_t got = 0;
  int st;
  if (!out) {
    /* The caller knows the stream cannot be that long: count what it holds
     * for the message. */
    st = nifti_gunzip_count(buf, len, (size_t)total, &got, err);
  } else {
    st = nifti_gunzip(buf, len, out, (size_t)total, &got, par, err);
  }
  if (st < 0) return st;
  if (got < total) return nifti_fail_truncated(err, h, got, true);
  return LM_OK;
}

int nifti_read_memory(const uint8_t *buf, size_t len, lm_dtype dt, bool native,
                      nifti_header *h, void **data, lm_dtype *out_dt,
                      const nifti_par *par, nifti_err *err)
{
  *data = NULL;
  int st = nifti_stream_header(buf, len, true, h, err);
  if (st < 0) return st;
  if (native && (st = nifti_native_dtype(h, &dt, err)) < 0) return st;
  if (dt == LM_F16 || dt == LM_BF16 || nifti_dtype_size(dt) == 0)
    return nifti_fail(err, LM_EDTYPE, "cannot decode into dtype %d here", (int)dt);
  uint64_t total = (uint64_t)h->vox_offset + h->data_bytes;
  if (total < h->data_bytes) return nifti_fail(err, LM_EFORMAT, "vox_offset + data size overflow");
  bool gz = nifti_is_gzip(buf, len);
  const uint8_t *src;
  uint8_t *stream = NULL;
  if (gz) {
    if (total > nifti_gzip_max_output(len)) {
      return nifti_gunzip_exact(buf, len, h, NULL, total, par, err);
    }
    stream = malloc(total ? (size_t)total : 1);
    if (!stream) return nifti_fail(err, LM_ENOMEM, "out of memory (%llu bytes)",
                                   (unsigned long long)total);
    st = nifti_gunzip_exact(buf, len, h, stream, total, par, err);
    if (st < 0) {
      free(stream);
      return st;
    }
    src = stream + h->vox_offset;
  } else {
    if (len < total) return nifti_fail_truncated(err, h, len, false);
    src = buf + h->vox_offset;
  }
  size_t osz = nifti_dtype_size(dt);
  void *out = malloc(h->numel ? (size_t)h->numel * osz : 1);
  if (!out) {
    free(stream);
    return nifti_fail(err, LM_ENOMEM, "out of memory");
  }
  nifti_convert_spec cs = {h->stype, nifti_file_needs_swap(h->big_endian), h->scaled,
                           h->slope, h->inter, dt};
  st = nifti_convert(&cs, src, out, h->numel, par);
  free(stream);
  if (st < 0) {
    free(out);
    return nifti_fail(err, st, "conversion failed");
  }
  *data = out;
  *out_dt = dt;
  return LM_OK;
}
