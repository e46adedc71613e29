/* Private interface of the NRRD code: header parsing and building, and the
 * in-memory reader.  Like transforms/nifti's core it works on byte buffers
 * only (no engine, no files), so the unit tests and the fuzzer drive it
 * directly; nrrd_load.c and nrrd_save.c put it behind LoadNrrd / SaveNrrd.
 * It reuses the NIfTI core for what both formats share: gzip members
 * (nifti_gunzip), voxel conversion with byte swapping (nifti_convert) and the
 * error record (nifti_err; messages never name the file, the caller prefixes
 * it).
 *
 * Format: http://teem.sourceforge.net/nrrd/format.html (NRRD0001..0005). */
#ifndef LM_NRRD_FORMAT_H
#define LM_NRRD_FORMAT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumen.h"
#include "../nifti/nifti_format.h"

#define NRRD_MAX_DIM 8   /* lumen's tensor limit (teem allows 16) */
#define NRRD_PATH_MAX 4096

typedef enum nrrd_encoding {
  NRRD_ENC_RAW, NRRD_ENC_GZIP, NRRD_ENC_ASCII
} nrrd_encoding;

/* Spaces whose axes lumen knows how to turn into RAS+; NRRD_SPACE_NONE when
 * the header names no space (then `spacings` give a diagonal affine). */
typedef enum nrrd_space {
  NRRD_SPACE_NONE, NRRD_SPACE_RAS, NRRD_SPACE_LAS, NRRD_SPACE_LPS
} nrrd_space;

typedef struct nrrd_header {
  int version;                  /* the digit of "NRRD000N" */
  int dim;                      /* dimension: */
  int64_t sizes[NRRD_MAX_DIM];  /* sizes: axis 0 is the fastest in memory */
  nifti_stype stype;            /* type: */
  size_t elem_size;
  bool big_endian;              /* endian: (absent = little, allowed only
                                   where it cannot matter) */
  nrrd_encoding encoding;
  nrrd_space space;
  bool space_time;              /* the space has a time axis (RAS-time ...) */
  int space_dim;                /* space dimension (3 for RAS etc.), 0 none */
  bool has_directions;
  bool axis_spatial[NRRD_MAX_DIM]; /* has a space direction (not "none") */
  double directions[NRRD_MAX_DIM][3]; /* in the header's space */
  bool has_origin;
  double origin[3];             /* in the header's space */
  double spacings[NRRD_MAX_DIM]; /* NaN where absent or "nan" */
  char kinds[NRRD_MAX_DIM][24]; /* "" where absent */
  char data_file[NRRD_PATH_MAX]; /* "" = data attached after the header */
  int64_t line_skip, byte_skip; /* byte_skip -1: data are the file's last
                                   bytes (raw only) */
  size_t header_bytes;          /* offset of attached data (after the blank
                                   line); the whole text for a .nhdr */
  /* Derived. */
  int64_t numel;
  uint64_t data_bytes;          /* numel * elem_size */
  int channel_axis;             /* a leading non-spatial axis, or -1 */
  double affine[16];            /* RAS+, row-major, columns = spatial axes
                                   in order */
} nrrd_header;

/* Parse and validate the header at the start of buf (len bytes).  The
 * header ends at the first empty line; with attached data a missing empty
 * line is an error, for a detached header (.nhdr) the end of the buffer
 * ends it.  Every field lumen uses is checked; messages name the field. */
int nrrd_header_parse(const char *buf, size_t len, nrrd_header *h,
                      nifti_err *err);

/* The lumen dtype for dtype='native': the stored type (LM_EDTYPE for
 * uint64). */
int nrrd_native_dtype(const nrrd_header *h, lm_dtype *out, nifti_err *err);

/* A cheap check, before allocating, that len bytes of data (after the
 * header, line skips not counted) can hold what the header claims. */
int nrrd_check_size(const nrrd_header *h, uint64_t len, nifti_err *err);

/* Decode the data that begin at `data` (len bytes of the data file, or of
 * what follows the header) into n = h->numel values of dtype dt at out:
 * line/byte skips, gzip, ascii, byte order, conversion.  The most bytes
 * gzip may inflate is bounded by the stream, so a hostile size claim fails
 * cleanly. */
int nrrd_decode(const nrrd_header *h, const uint8_t *data, size_t len,
                lm_dtype dt, void *out, const nifti_par *par, nifti_err *err);

/* Read a whole NRRD with attached data held in memory (the fuzzer's entry
 * point): *data is malloc'd, numel values of dtype dt (native: the stored
 * type) in file order. */
int nrrd_read_memory(const uint8_t *buf, size_t len, lm_dtype dt, bool native,
                     nrrd_header *h, void **data, lm_dtype *out_dt,
                     nifti_err *err);

/* What SaveNrrd writes. */
typedef struct nrrd_write_spec {
  lm_dtype dt;
  int dim;                      /* axes in the file, fastest first */
  int64_t sizes[NRRD_MAX_DIM];
  int channel_axis;             /* 0 when axis 0 is a channel axis, else -1 */
  int nspatial;                 /* spatial axes (after the channel axis) */
  double affine[16];            /* RAS+ */
  nrrd_space space;             /* RAS or LPS */
  nrrd_encoding encoding;       /* raw or gzip */
  const char *data_file;        /* detached data file name, or NULL */
} nrrd_write_spec;

/* The header text (NRRD0004, little-endian), ending with the empty line
 * (attached data) or without it (.nhdr).  malloc'd, length in *len. */
int nrrd_header_build(const nrrd_write_spec *spec, char **out, size_t *len,
                      nifti_err *err);

/* teem's type name for a dtype ("short", "uchar", ...); NULL for
 * float16/bfloat16 (no NRRD type). */
const char *nrrd_type_name(lm_dtype dt);

#endif
