/* Private interface of the NIfTI code: header parsing and building, gzip,
 * voxel conversion and the in-memory reader.  Everything here works on byte
 * buffers and knows nothing of engines or files, so the unit tests and the
 * fuzzer drive it directly; nifti_ops.c and nifti_file.c put it behind
 * LoadNifti and SaveNifti.
 *
 * Errors: functions return an LM_* status and, on failure, leave a message
 * in a nifti_err.  The message never names the file: the caller prefixes it
 * ("LoadNifti: ct.nii.gz: <message>"). */
#ifndef LM_NIFTI_FORMAT_H
#define LM_NIFTI_FORMAT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lumen.h"

typedef struct nifti_err {
  int code;
  char msg[512];
} nifti_err;

/* Record a failure in err (may be NULL) and return status. */
int nifti_fail(nifti_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* How to run loops in parallel: the op layer plugs lm_parallel_for in, tests
 * and the fuzzer pass NULL (serial). */
typedef struct nifti_par {
  int (*run)(void *ctx, int64_t n, int64_t grain, lm_range_fn body, void *arg);
  void *ctx;
  /* Optional source of large scratch buffers (the engine's caching
   * allocator, so repeated loads do not pay for fresh pages again): alloc
   * returns the buffer and sets *handle for release.  NULL: malloc/free. */
  void *(*alloc)(void *ctx, size_t n, void **handle);
  void (*release)(void *handle);
} nifti_par;
int nifti_par_for(const nifti_par *par, int64_t n, int64_t grain,
                  lm_range_fn body, void *arg);
/* A scratch buffer of n bytes from par's allocator (or malloc); NULL when
 * out of memory.  Give it back with nifti_scratch_free(par, p, handle). */
void *nifti_scratch_alloc(const nifti_par *par, size_t n, void **handle);
void nifti_scratch_free(const nifti_par *par, void *p, void *handle);

/* NIfTI datatype codes. */
enum {
  NIFTI_DT_BINARY = 1, NIFTI_DT_UINT8 = 2, NIFTI_DT_INT16 = 4,
  NIFTI_DT_INT32 = 8, NIFTI_DT_FLOAT32 = 16, NIFTI_DT_COMPLEX64 = 32,
  NIFTI_DT_FLOAT64 = 64, NIFTI_DT_RGB24 = 128, NIFTI_DT_INT8 = 256,
  NIFTI_DT_UINT16 = 512, NIFTI_DT_UINT32 = 768, NIFTI_DT_INT64 = 1024,
  NIFTI_DT_UINT64 = 1280, NIFTI_DT_FLOAT128 = 1536, NIFTI_DT_COMPLEX128 = 1792,
  NIFTI_DT_COMPLEX256 = 2048, NIFTI_DT_RGBA32 = 2304
};

/* Storage types the reader decodes (the lumen dtypes plus uint64, which
 * lumen has no dtype for). */
typedef enum nifti_stype {
  NIFTI_S_U8, NIFTI_S_I8, NIFTI_S_I16, NIFTI_S_U16, NIFTI_S_I32,
  NIFTI_S_U32, NIFTI_S_I64, NIFTI_S_U64, NIFTI_S_F32, NIFTI_S_F64,
  NIFTI_S_COUNT
} nifti_stype;

/* "complex64", "RGB24", ...; NULL for codes that are not NIfTI datatypes. */
const char *nifti_datatype_name(int code);

#define NIFTI1_HDR_SIZE 348
#define NIFTI2_HDR_SIZE 540
/* Bytes the reader needs to see to parse any header. */
#define NIFTI_PEEK_SIZE NIFTI2_HDR_SIZE

/* A parsed header: the raw fields (widened) and what follows from them. */
typedef struct nifti_header {
  int version;        /* 1 or 2 */
  bool big_endian;    /* the file's byte order */
  bool pair_magic;    /* magic "ni1"/"ni2" (header in a .hdr file) */
  int64_t dim[8];
  double pixdim[8];   /* as stored (before nibabel's load-time fixes) */
  double vox_offset_raw;
  int64_t vox_offset; /* where the voxels start (0 in a .nii made 352/544) */
  double scl_slope, scl_inter;
  int datatype, bitpix;
  int qform_code, sform_code; /* as stored */
  double quatern[3], qoffset[3], srow[3][4];
  int xyzt_units, intent_code, slice_code, dim_info;
  double intent_p[3];
  double cal_min, cal_max, slice_duration, toffset;
  int64_t slice_start, slice_end;
  char descrip[81], aux_file[25], intent_name[17];

  /* Derived. */
  int ndim;                 /* dim[0] */
  int64_t shape[7];         /* dim[1..ndim] */
  int64_t numel;
  nifti_stype stype;
  size_t voxel_bytes;
  uint64_t data_bytes;      /* numel * voxel_bytes */
  bool scaled;              /* nibabel applies slope/inter */
  double slope, inter;      /* what is applied (1, 0 when not scaled) */
  int affine_source;        /* 2 sform, 1 qform, 0 base (nibabel's choice) */
  double affine[16];        /* row-major, nibabel's get_best_affine */
  double qform[16], sform[16];
  bool qform_valid;         /* qform[] computed (quaternion usable) */
} nifti_header;

/* Parse and validate a header from the first len bytes of the (decompressed)
 * stream.  single_file: the voxels follow in the same stream (.nii), so
 * vox_offset must leave room for the header; false for .hdr/.img pairs.
 * Every check of docs/semantics.md section 1 is applied here. */
int nifti_header_parse(const uint8_t *buf, size_t len, bool single_file,
                       nifti_header *h, nifti_err *err);

/* The storage type of a datatype code: LM_OK, LM_EDTYPE (a NIfTI type lumen
 * does not read: complex, RGB, float128, binary) or LM_EFORMAT (no such
 * code).  *size gets the bytes per voxel. */
int nifti_stype_of_datatype(int code, nifti_stype *st, size_t *size,
                            nifti_err *err);
/* The lumen dtype of a storage type; LM_EDTYPE for uint64. */
int nifti_stype_to_dtype(nifti_stype st, lm_dtype *out);
/* The inverse: the storage type holding dt's values as they are (LM_EDTYPE
 * for float16 / bfloat16, which nifti_convert does not handle). */
int nifti_stype_of_dtype(lm_dtype dt, nifti_stype *out);

/* nibabel's quaternion to affine (get_qform), base affine, and the reverse
 * (set_qform: polar decomposition, then quaternion).  quat_eps is the
 * tolerance for 1-(b²+c²+d²) < 0 (3 float32 eps for NIfTI-1). */
int nifti_qform_affine(const double quatern[3], const double qoffset[3],
                       const double pixdim[4], double quat_eps, double out[16],
                       nifti_err *err);
void nifti_base_affine(int ndim, const int64_t *shape, const double *pixdim,
                       double out[16]);
/* Quaternion, offsets, qfac and zooms that represent affine as nibabel's
 * set_qform writes them.  LM_EINVAL if the affine is singular or not finite. */
int nifti_affine_to_qform(const double affine[16], double quatern[3],
                          double qoffset[3], double *qfac, double zooms[3],
                          nifti_err *err);

/* What SaveNifti writes. */
typedef struct nifti_write_spec {
  int ndim;                 /* 1..7 */
  int64_t shape[7];
  int datatype;             /* NIfTI code */
  double affine[16];
  int qform_code, sform_code;
  int xyzt_units;
  double pixdim_extra[4];   /* pixdim[4..7] (TR etc.); 0 = write 1 */
  const char *descrip;      /* may be NULL */
} nifti_write_spec;

/* Build a little-endian header (NIfTI-1 unless a dim exceeds int16) followed
 * by the 4 extension bytes, into out (at least NIFTI2_HDR_SIZE + 4 bytes).
 * Returns the header size (352 or 544 = vox_offset) or an error. */
int nifti_header_build(const nifti_write_spec *spec, uint8_t *out,
                       nifti_err *err);
/* The datatype code for a lumen dtype; LM_EDTYPE for float16/bfloat16. */
int nifti_datatype_of_dtype(lm_dtype dt, int *code, nifti_err *err);

/* gzip. */
bool nifti_is_gzip(const uint8_t *buf, size_t len);
/* Inflate up to want bytes from the start of a (multi-member) gzip stream
 * with zlib; *got = bytes produced.  Stopping early (end of stream) is not an
 * error; corrupt data is (LM_EFORMAT). */
int nifti_gunzip_head(const uint8_t *in, size_t in_len, uint8_t *out,
                      size_t want, size_t *got, nifti_err *err);
/* Inflate and discard, counting the bytes the stream holds (up to limit). */
int nifti_gunzip_count(const uint8_t *in, size_t in_len, size_t limit,
                       size_t *got, nifti_err *err);
/* Inflate the first want bytes of a gzip stream into out, with libdeflate,
 * member by member; members written by nifti_gzip_members (whose sizes sit
 * in an extra field) are inflated in parallel.  *got = bytes produced: less
 * than want (LM_OK still) only when the stream ended early. */
int nifti_gunzip(const uint8_t *in, size_t in_len, uint8_t *out, size_t want,
                 size_t *got, const nifti_par *par, nifti_err *err);

/* Compressed output of nifti_gzip_members: one buffer per member. */
typedef struct nifti_gz_members {
  int count;
  uint8_t **data;
  size_t *size;
  size_t total;
} nifti_gz_members;
/* Compress in[0..n) as gzip members of chunk bytes each, in parallel, each
 * member carrying its compressed and uncompressed size in an extra field
 * (subfield "LM"), so readers of ours can inflate them in parallel while any
 * gzip reader still reads the concatenation.  cancelled (may be NULL) is
 * polled between members. */
int nifti_gzip_members(const uint8_t *in, size_t n, int level, size_t chunk,
                       const nifti_par *par, nifti_gz_members *out,
                       nifti_err *err);
void nifti_gz_members_free(nifti_gz_members *m);

/* Voxel conversion.  Converts n voxels of storage type st (byte order of the
 * file: swap = the file's order is not the host's) at src to dst of dtype
 * dt, applying y = x*slope + inter in float64 when scaled (exactly as
 * nibabel: the multiply is skipped for slope 1, the add for inter 0).
 * Float to integer conversions truncate toward zero and saturate; NaN gives
 * 0.  float16/bfloat16 destinations are not handled here (LM_EDTYPE). */
typedef struct nifti_convert_spec {
  nifti_stype st;
  bool swap;
  bool scaled;
  double slope, inter;
  lm_dtype dt;
} nifti_convert_spec;
int nifti_convert(const nifti_convert_spec *cs, const void *src, void *dst,
                  int64_t n, const nifti_par *par);
/* In-place byte swap of n elements of size sz. */
void nifti_swap_inplace(void *buf, size_t sz, int64_t n, const nifti_par *par);

/* Element size of a lumen dtype (0 if invalid), without an engine. */
size_t nifti_dtype_size(lm_dtype dt);
/* True when the file's byte order is not the host's. */
bool nifti_file_needs_swap(bool file_big_endian);

/* The dtype LoadNifti gives for dtype='native': the storage type when not
 * scaled (LM_EDTYPE for uint64), float64 when scaled. */
int nifti_native_dtype(const nifti_header *h, lm_dtype *out, nifti_err *err);

/* Parse the header at the start of a stream (raw or gzip). */
int nifti_stream_header(const uint8_t *buf, size_t len, bool single_file,
                        nifti_header *h, nifti_err *err);
/* The LM_EFORMAT error for a stream holding `have` bytes (header included)
 * when vox_offset + data_bytes are needed. */
int nifti_fail_truncated(nifti_err *err, const nifti_header *h, uint64_t have,
                         bool compressed);
/* The most bytes a gzip stream of len bytes can inflate to. */
uint64_t nifti_gzip_max_output(size_t len);
/* Bring the first `total` decompressed bytes of a gzip stream into out, or
 * fail with the truncation message (counting what the stream holds). */
int nifti_gunzip_exact(const uint8_t *buf, size_t len, const nifti_header *h,
                       uint8_t *out, uint64_t total, const nifti_par *par,
                       nifti_err *err);

/* Read a whole .nii / .nii.gz image held in memory (the fuzzer's entry
 * point; LoadNifti's path for single files reads through the same steps).
 * On success *data is malloc'd: numel values of dtype dt in file order. */
int nifti_read_memory(const uint8_t *buf, size_t len, lm_dtype dt,
                      bool native, nifti_header *h, void **data,
                      lm_dtype *out_dt, const nifti_par *par, nifti_err *err);

#endif
