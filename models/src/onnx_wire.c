/* The protobuf wire format, read in place (onnx_wire.h). */
#include "onnx_wire.h"

bool pb_read_varint(pb_cursor *c, uint64_t *v, const char **why)
{
  uint64_t x = 0;
  /* At most 10 bytes; the 10th may only carry the top bit of 64. */
  for (int shift = 0; shift < 70; shift += 7) {
    if (c->p >= c->end) {
      *why = "truncated varint";
      return false;
    }
    uint8_t b = *c->p++;
    if (shift == 63 && b > 1) {
      *why = "varint overflows 64 bits";
      return false;
    }
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return true;
    }
  }
  *why = "varint longer than 10 bytes";
  return false;
}

int pb_next(pb_cursor *c, pb_field *f, const char **why)
{
  if (c->p >= c->end) return 0;
  uint64_t key;
  if (!pb_read_varint(c, &key, why)) return -1;
  uint64_t num = key >> 3;
  if (num == 0 || num > 0x1fffffff) {
    *why = "invalid field number";
    return -1;
  }
  f->num = (uint32_t)num;
  f->wire = (int)(key & 7);
  f->v = 0;
  f->data = NULL;
  f->len = 0;
  switch (f->wire) {
  case PB_VARINT:
    return pb_read_varint(c, &f->v, why) ? 1 : -1;
  case PB_I64:
    if (c->end - c->p < 8) {
      *why = "truncated 64-bit field";
      return -1;
    }
    f->v = pb_le64(c->p);
    c->p += 8;
    return 1;
  case PB_I32:
    if (c->end - c->p < 4) {
      *why = "truncated 32-bit field";
      return -1;
    }
    f->v = pb_le32(c->p);
    c->p += 4;
    return 1;
  case PB_LEN: {
    uint64_t n;
    if (!pb_read_varint(c, &n, why)) return -1;
    if (n > (uint64_t)(c->end - c->p)) {
      *why = "truncated (length runs past the end of its message)";
      return -1;
    }
    f->data = c->p;
    f->len = (size_t)n;
    c->p += n;
    return 1;
  }
  default:
    /* 3/4 are the deprecated groups (ONNX never writes them), 6/7 invalid:
     * neither can be skipped safely. */
    *why = f->wire == 3 || f->wire == 4 ? "group wire type (not used by ONNX)"
                                        : "invalid wire type";
    return -1;
  }
}

int64_t pb_count_varints(const uint8_t *data, size_t len, const char **why)
{
  int64_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (!(data[i] & 0x80)) n++;
  /* Every varint ends in a byte without the continuation bit, so a payload
   * whose last byte has it set ends inside a varint.  (Overlong varints are
   * caught when the values are decoded.) */
  if (len && (data[len - 1] & 0x80)) {
    *why = "truncated varint in packed field";
    return -1;
  }
  return n;
}
