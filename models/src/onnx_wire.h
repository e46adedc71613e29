/* The protobuf wire format, read in place: a cursor over a message's bytes
 * that yields one field at a time (number, wire type, and either the scalar
 * or the bounds of a length-delimited payload).  Nothing is copied; every
 * length is checked against the end of the enclosing message, so a payload
 * never reaches past its parent.  Used by onnx_reader.c and by the ONNX
 * conformance test (to list a model's ops before loading it). */
#ifndef LM_ONNX_WIRE_H
#define LM_ONNX_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  PB_VARINT = 0,
  PB_I64 = 1,
  PB_LEN = 2,
  PB_I32 = 5
};

typedef struct pb_cursor {
  const uint8_t *p, *end;
} pb_cursor;

typedef struct pb_field {
  uint32_t num;          /* field number */
  int wire;              /* PB_VARINT, PB_I64, PB_LEN or PB_I32 */
  uint64_t v;            /* VARINT, I64, I32: the value's bits */
  const uint8_t *data;   /* LEN: the payload ... */
  size_t len;            /* ... and its length */
} pb_field;

static inline pb_cursor pb_cursor_of(const void *data, size_t len)
{
  /* No arithmetic on a NULL pointer (an empty buffer may have none). */
  pb_cursor c = {(const uint8_t *)data, (const uint8_t *)data};
  if (len) c.end += len;
  return c;
}

/* The next field: 1 = *f filled, 0 = end of message, -1 = malformed (*why
** says how: "truncated", "varint too long", "wire type 3 (groups)", ...). */
int pb_next(pb_cursor *c, pb_field *f, const char **why);

/* One varint from a packed payload; false (and *why) when malformed. */
bool pb_read_varint(pb_cursor *c, uint64_t *v, const char **why);

/* Number of varints in a packed payload; -1 (and *why) when malformed. */
int64_t pb_count_varints(const uint8_t *data, size_t len, const char **why);

/* Little-endian loads (the reader supports little-endian hosts only). */
static inline uint32_t pb_le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t pb_le64(const uint8_t *p)
{
  return (uint64_t)pb_le32(p) | (uint64_t)pb_le32(p + 4) << 32;
}

#endif
