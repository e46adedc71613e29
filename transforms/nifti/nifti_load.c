/* LoadNifti: read a NIfTI image into a tensor in the file's memory order.
 * The compressed file is read whole and inflated with libdeflate; voxels are
 * converted in parallel straight into the tensor's storage, or, when no
 * conversion is needed, the inflated buffer itself becomes the storage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../image_file.h"
#include "nifti_file.h"
#include "nifti_format.h"
#include "nifti_ops.h"

int nifti_par_engine(void *c, int64_t n, int64_t grain, lm_range_fn body, void *arg)
{
  lm_op_ctx *ctx = c;
  return lm_parallel_for(lm_ctx_engine(ctx), ctx, n, grain, body, arg);
}

/* nifti_par's scratch source: uint8 tensors, i.e. the engine's caching
 * allocator. */
static void *par_scratch_alloc(void *c, size_t n, void **handle)
{
  lm_op_ctx *ctx = c;
  int64_t len = (int64_t)(n ? n : 1);
  lm_tensor *t = NULL;
  if (lm_tensor_new(lm_ctx_engine(ctx), LM_U8, 1, &len, LM_CPU, &t) < 0) return NULL;
  *handle = t;
  return lm_tensor_data(t);
}

static void par_scratch_release(void *handle)
{
  lm_tensor_release(handle);
}

/* A scratch byte buffer from the engine's caching allocator. */
static int scratch_new(lm_op_ctx *ctx, uint64_t n, lm_tensor **t, uint8_t **p)
{
  *p = NULL;
  int64_t len = (int64_t)(n ? n : 1);
  int st = lm_tensor_new(lm_ctx_engine(ctx), LM_U8, 1, &len, LM_CPU, t);
  if (st < 0) return lm_ctx_error(ctx, st, "out of memory for %llu bytes",
                                  (unsigned long long)n);
  *p = lm_tensor_data(*t);
  return LM_OK;
}

static void release_scratch(void *data, void *tensor)
{
  (void)data;
  lm_tensor_release(tensor);
}

static const char *layout_for(int ndim)
{
  static const char *names[] = {"", "X", "XY", "XYZ", "XYZT", "XYZTU", "XYZTUV", "XYZTUVW"};
  return ndim >= 0 && ndim <= 7 ? names[ndim] : "";
}

static void set_results(lm_op_ctx *ctx, const nifti_header *h)
{
  lm_params *r = lm_ctx_results(ctx);
  if (!r) return;
  double dim[8], pixdim[8], qf[16], sf[16];
  for (int i = 0; i < 8; i++) {
    dim[i] = (double)h->dim[i];
    pixdim[i] = h->pixdim[i];
  }
  memcpy(qf, h->qform, sizeof qf);
  memcpy(sf, h->sform, sizeof sf);
  lm_params_set_int(r, "nifti_version", h->version);
  lm_params_set_int(r, "datatype", h->datatype);
  lm_params_set_string(r, "storage_dtype", nifti_datatype_name(h->datatype));
  lm_params_set_string(r, "byte_order", h->big_endian ? "big" : "little");
  lm_params_set_numbers(r, "dim", dim, h->ndim + 1);
  lm_params_set_numbers(r, "pixdim", pixdim, 8);
  lm_params_set_int(r, "qform_code", h->qform_code);
  lm_params_set_int(r, "sform_code", h->sform_code);
  lm_params_set_string(r, "affine_source",
                       h->affine_source == 2 ? "sform" : h->affine_source == 1 ? "qform" : "base");
  if (h->qform_valid) lm_params_set_numbers(r, "qform", qf, 16);
  lm_params_set_numbers(r, "sform", sf, 16);
  lm_params_set_number(r, "scl_slope", h->scl_slope);
  lm_params_set_number(r, "scl_inter", h->scl_inter);
  lm_params_set_bool(r, "scaled", h->scaled);
  lm_params_set_int(r, "xyzt_units", h->xyzt_units);
  static const char *space[] = {"unknown", "m", "mm", "um"};
  int su = h->xyzt_units & 7;
  lm_params_set_string(r, "space_unit", su <= 3 ? space[su] : "unknown");
  int tu = h->xyzt_units & 0x38;
  lm_params_set_string(r, "time_unit", tu == 8 ? "s" : tu == 16 ? "ms" : tu == 24 ? "us"
                                       : tu == 32 ? "Hz" : tu == 40 ? "ppm"
                                       : tu == 48 ? "rad/s" : "unknown");
  lm_params_set_number(r, "TR", h->ndim >= 4 ? h->pixdim[4] : 0);
  lm_params_set_number(r, "toffset", h->toffset);
  lm_params_set_int(r, "intent_code", h->intent_code);
  lm_params_set_string(r, "intent_name", h->intent_name);
  lm_params_set_string(r, "descrip", h->descrip);
  lm_params_set_string(r, "aux_file", h->aux_file);
  lm_params_set_number(r, "cal_min", h->cal_min);
  lm_params_set_number(r, "cal_max", h->cal_max);
  lm_params_set_int(r, "vox_offset", h->vox_offset);
}

/* Everything one load needs; freed in one place. */
typedef struct load_state {
  lm_op_ctx *ctx;
  const char *path;
  nifti_paths paths;
  nifti_par par;
  nifti_header h;
  int hfd, dfd;
  uint64_t hsize, dsize;
  lm_tensor *compressed;  /* whole .gz file */
  lm_tensor *stream;      /* inflated stream (or raw voxels) */
  lm_tensor *out;
} load_state;

static int fail_err(load_state *s, const nifti_err *e, const char *which)
{
  return image_file_fail(s->ctx, which, e);
}

/* Read a whole file into an engine buffer. */
static int slurp(load_state *s, int fd, uint64_t size, const char *name, lm_tensor **t)
{
  uint8_t *p;
  nifti_err e = {0};
  int st = scratch_new(s->ctx, size, t, &p);
  if (st < 0) return st;
  st = nifti_pread_exact(fd, 0, p, (size_t)size, &e);
  if (st < 0) return fail_err(s, &e, name);
  return LM_OK;
}

static int load(load_state *s)
{
  lm_op_ctx *ctx = s->ctx;
  lm_engine *e = lm_ctx_engine(ctx);
  nifti_err err = {0};
  int st;

  bool native;
  lm_dtype want;
  if ((st = image_arg_load_dtype(s->ctx, &want, &native)) < 0) return st;
  if ((st = nifti_resolve_paths(s->path, &s->paths, &err)) < 0) return fail_err(s, &err, s->path);
  const char *hname = s->paths.header, *dname = s->paths.data;

  /* The header. */
  if ((st = nifti_open_read(hname, &s->hfd, &s->hsize, &err)) < 0)
    return fail_err(s, &err, hname);
  uint8_t magic[2] = {0, 0};
  if (s->hsize >= 2 && (st = nifti_pread_exact(s->hfd, 0, magic, 2, &err)) < 0)
    return fail_err(s, &err, hname);
  bool hgz = nifti_is_gzip(magic, 2);
  bool single = !s->paths.pair;
  if (hgz) {
    if ((st = slurp(s, s->hfd, s->hsize, hname, &s->compressed)) < 0) return st;
    st = nifti_stream_header(lm_tensor_data(s->compressed), (size_t)s->hsize, single,
                             &s->h, &err);
  } else {
    uint8_t head[NIFTI_PEEK_SIZE];
    size_t n = s->hsize < sizeof head ? (size_t)s->hsize : sizeof head;
    if ((st = nifti_pread_exact(s->hfd, 0, head, n, &err)) < 0) return fail_err(s, &err, hname);
    st = nifti_header_parse(head, n, single, &s->h, &err);
  }
  if (st < 0) return fail_err(s, &err, hname);
  nifti_header *h = &s->h;

  /* The voxels' file. */
  bool dgz = hgz;
  if (s->paths.pair) {
    if (s->compressed) {
      lm_tensor_release(s->compressed);
      s->compressed = NULL;
    }
    if ((st = nifti_open_read(dname, &s->dfd, &s->dsize, &err)) < 0)
      return fail_err(s, &err, dname);
    magic[0] = magic[1] = 0;
    if (s->dsize >= 2 && (st = nifti_pread_exact(s->dfd, 0, magic, 2, &err)) < 0)
      return fail_err(s, &err, dname);
    dgz = nifti_is_gzip(magic, 2);
    if (dgz && (st = slurp(s, s->dfd, s->dsize, dname, &s->compressed)) < 0) return st;
  } else {
    s->dfd = s->hfd;
    s->dsize = s->hsize;
  }

  if (native && (st = nifti_native_dtype(h, &want, &err)) < 0) return fail_err(s, &err, hname);
  /* Half types: decode to float32, then convert. */
  lm_dtype decode_dt = (want == LM_F16 || want == LM_BF16) ? LM_F32 : want;
  lm_dtype stored;
  bool same_type = nifti_stype_to_dtype(h->stype, &stored) == LM_OK && stored == decode_dt;
  bool swap = nifti_file_needs_swap(h->big_endian);
  bool no_convert = same_type && !h->scaled;

  int ndim = h->ndim;
  int64_t shape[7], strides[7];
  int order[7];
  int64_t stride = 1;
  for (int i = 0; i < ndim; i++) {
    shape[i] = h->shape[i];
    order[i] = ndim - 1 - i; /* dim 0 fastest: the file's order */
    strides[i] = stride;
    stride *= shape[i] ? shape[i] : 1;
  }
  uint64_t off = (uint64_t)h->vox_offset;
  uint64_t total = off + h->data_bytes;
  nifti_convert_spec cs = {h->stype, swap, h->scaled, h->slope, h->inter, decode_dt};
  const uint8_t *voxels;

  if (dgz) {
    const uint8_t *cz = lm_tensor_data(s->compressed);
    size_t clen = (size_t)s->dsize;
    if (total > nifti_gzip_max_output(clen))
      return fail_err(s, (nifti_gunzip_exact(cz, clen, h, NULL, total, &s->par, &err), &err),
                      dname);
    uint8_t *p;
    if ((st = scratch_new(ctx, total, &s->stream, &p)) < 0) return st;
    if ((st = nifti_gunzip_exact(cz, clen, h, p, total, &s->par, &err)) < 0)
      return fail_err(s, &err, dname);
    lm_tensor_release(s->compressed);
    s->compressed = NULL;
    voxels = p + off;
    /* The inflated buffer becomes the storage when nothing changes. */
    if (no_convert && ((uintptr_t)voxels % h->voxel_bytes) == 0 && h->numel > 0) {
      if (swap) nifti_swap_inplace((void *)voxels, h->voxel_bytes, h->numel, &s->par);
      st = lm_tensor_wrap(e, (void *)voxels, decode_dt, ndim, shape, strides, LM_CPU,
                          release_scratch, s->stream, &s->out);
      if (st < 0) return image_engine_fail(ctx, s->path, st);
      s->stream = NULL; /* owned by the wrapped tensor now */
      return LM_OK;
    }
  } else {
    if (s->dsize < total) return fail_err(s, (nifti_fail_truncated(&err, h, s->dsize, false), &err), dname);
    if (no_convert) {
      /* Read straight into the tensor. */
      if ((st = lm_tensor_new_ordered(e, decode_dt, ndim, shape, order, LM_CPU, &s->out)) < 0)
        return image_engine_fail(ctx, s->path, st);
      if ((st = nifti_pread_exact(s->dfd, off, lm_tensor_data(s->out), (size_t)h->data_bytes,
                                  &err)) < 0)
        return fail_err(s, &err, dname);
      if (swap) nifti_swap_inplace(lm_tensor_data(s->out), h->voxel_bytes, h->numel, &s->par);
      return LM_OK;
    }
    uint8_t *p;
    if ((st = scratch_new(ctx, h->data_bytes, &s->stream, &p)) < 0) return st;
    if ((st = nifti_pread_exact(s->dfd, off, p, (size_t)h->data_bytes, &err)) < 0)
      return fail_err(s, &err, dname);
    voxels = p;
  }

  if (lm_ctx_cancelled(ctx)) return lm_ctx_error(ctx, LM_ECANCELED, "cancelled");
  if ((st = lm_tensor_new_ordered(e, decode_dt, ndim, shape, order, LM_CPU, &s->out)) < 0)
    return image_engine_fail(ctx, s->path, st);
  st = nifti_convert(&cs, voxels, lm_tensor_data(s->out), h->numel, &s->par);
  if (st < 0) return lm_ctx_error(ctx, st, "%s: voxel conversion failed", s->path);
  return LM_OK;
}

static int load_nifti_run(lm_op_ctx *ctx)
{
  load_state s;
  memset(&s, 0, sizeof s);
  s.ctx = ctx;
  s.hfd = s.dfd = -1;
  s.par = (nifti_par){nifti_par_engine, ctx, par_scratch_alloc, par_scratch_release};
  s.path = lm_arg_string(ctx, "path");
  if (!s.path) return lm_ctx_error(ctx, LM_EINVAL, "option path is required");
  int st = load(&s);
  if (s.dfd >= 0 && s.dfd != s.hfd) close(s.dfd);
  if (s.hfd >= 0) close(s.hfd);
  lm_tensor_release(s.compressed);
  lm_tensor_release(s.stream);
  if (st < 0) {
    lm_tensor_release(s.out);
    return st;
  }
  lm_tensor *out = s.out;
  lm_dtype want;
  bool native;
  image_arg_load_dtype(ctx, &want, &native);
  if (!native && (want == LM_F16 || want == LM_BF16) &&
      (st = image_to_half(ctx, s.path, want, &out)) < 0)
    return st;
  lm_tensor_set_affine(out, s.h.affine);
  lm_tensor_set_layout(out, layout_for(s.h.ndim));
  set_results(ctx, &s.h);
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc load_args[] = {
  {"path", LM_ARG_STRING, NULL,
   "file to read: .nii, .nii.gz, .hdr/.img (also .hdr.gz/.img.gz); NIfTI-1 or -2, either byte order"},
  {"dtype", LM_ARG_STRING, "'float32'",
   "dtype of the result: a dtype name, or 'native' (the stored type, float64 when the "
   "header scales the data: nibabel's np.asanyarray(img.dataobj))"},
};

const lm_op_desc lm_op_load_nifti = {
  .name = "LoadNifti",
  .alias = NULL,
  .summary = "Read a NIfTI image (.nii, .nii.gz, .hdr/.img) into a tensor",
  .doc =
      "Returns the voxels with shape dim[1..n] (X, Y, Z[, T, ...]) in the file's memory order\n"
      "(i fastest), layout \"XYZ\"/\"XYZT\", and the affine nibabel gives (sform if its code is\n"
      "non-zero, else qform, else nibabel's x-flipped centred base affine).  scl_slope and\n"
      "scl_inter are applied as nibabel does (slope 0 or not finite: no scaling; (1, 0): raw)\n"
      "in float64, then cast once to dtype, so the default float32 equals MONAI's LoadImage.\n"
      "Float to integer dtypes truncate toward zero and saturate.  Scalar results: nifti_version,\n"
      "datatype, storage_dtype, byte_order, dim, pixdim, qform_code, sform_code, affine_source,\n"
      "qform, sform, scl_slope, scl_inter, scaled, xyzt_units, space_unit, time_unit, TR,\n"
      "toffset, intent_code, intent_name, descrip, aux_file, cal_min, cal_max, vox_offset.\n"
      "Complex, RGB, float128 and binary data are refused (LM_EDTYPE); a single file's\n"
      "vox_offset of 0 is read as 352 (544 for NIfTI-2), as niftilib does.",
  .inputs = "",
  .min_inputs = 0,
  .max_inputs = 0,
  .outputs = "img",
  .args = load_args,
  .nargs = sizeof load_args / sizeof load_args[0],
  .flags = LM_OP_SOURCE | LM_OP_IO,
  .check = NULL,
  .run_cpu = load_nifti_run,
};
