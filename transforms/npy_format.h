/* NumPy .npy headers (format versions 1.0, 2.0, 3.0): parsing and building
 * on byte buffers, for LoadNpy / SaveNpy (npy.c) and the unit tests.
 * Format: numpy/lib/format.py (magic "\x93NUMPY", version, header length,
 * then a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape':
 * ...} padded with spaces to a multiple of 64 bytes and ended by '\n'). */
#ifndef LM_NPY_FORMAT_H
#define LM_NPY_FORMAT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumen.h"

/* Stored element types: lumen's dtypes, plus bool (read as uint8) and
 * uint64 (read only through a conversion). */
typedef enum npy_kind { NPY_LUMEN, NPY_BOOL, NPY_U64 } npy_kind;

typedef struct npy_header {
  int major, minor;
  size_t data_offset;           /* where the array's bytes start */
  char descr[32];
  npy_kind kind;
  lm_dtype dt;                  /* the stored type (NPY_BOOL: uint8;
                                   NPY_U64: int64, same size) */
  size_t elem_size;
  bool big_endian;
  bool fortran_order;
  int ndim;
  int64_t shape[LM_MAX_DIMS];
  int64_t numel;
  uint64_t data_bytes;
} npy_header;

/* Bytes to read before the header length is known. */
#define NPY_PREFIX 12

/* The total header size (magic to the end of the dict) from the first
 * NPY_PREFIX (or more) bytes; errors in msg (cap bytes). */
int npy_header_size(const uint8_t *buf, size_t len, size_t *total, char *msg, size_t cap);

/* Parse the whole header (len >= the size npy_header_size gave). */
int npy_header_parse(const uint8_t *buf, size_t len, npy_header *h, char *msg, size_t cap);

/* The header for an array of dtype dt (little-endian), ndim dims, in C or
 * Fortran order: version 1.0 when it fits, else 2.0.  *out malloc'd. */
int npy_header_build(lm_dtype dt, int ndim, const int64_t *shape, bool fortran_order,
                     uint8_t **out, size_t *len, char *msg, size_t cap);

#endif
