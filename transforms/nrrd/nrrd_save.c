/* SaveNrrd: write a tensor as NRRD (.nrrd with attached data, or a .nhdr
 * header with a detached .raw / .raw.gz data file), raw or gzip (one gzip
 * member, compressed in parallel), through temporary files renamed into
 * place (nifti_file.c's atomic writes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../image_file.h"
#include "../nifti/nifti_file.h"
#include "../nifti/nifti_ops.h"
#include "nrrd_format.h"
#include "nrrd_ops.h"

#define GZ_DEFAULT_LEVEL 1

typedef struct save_state {
  lm_op_ctx *ctx;
  const char *path;
  nifti_par par;
  lm_tensor *view, *ordered;
  char *header;
  uint8_t *gz;
  nifti_atomic hfile, dfile;
} save_state;

static int fail(save_state *s, const nifti_err *e)
{
  return image_file_fail(s->ctx, s->path, e);
}

static int engine_fail(save_state *s, int st)
{
  return image_engine_fail(s->ctx, s->path, st);
}

static int options(save_state *s, nrrd_write_spec *spec, int *level)
{
  lm_op_ctx *ctx = s->ctx;
  const char *enc = lm_arg_string(ctx, "encoding");
  if (!enc || strcmp(enc, "gzip") == 0 || strcmp(enc, "gz") == 0) spec->encoding = NRRD_ENC_GZIP;
  else if (strcmp(enc, "raw") == 0) spec->encoding = NRRD_ENC_RAW;
  else return lm_ctx_error(ctx, LM_EINVAL, "option encoding: '%s' is neither 'gzip' nor 'raw'", enc);
  const char *space = lm_arg_string(ctx, "space");
  if (!space || strcasecmp(space, "LPS") == 0) spec->space = NRRD_SPACE_LPS;
  else if (strcasecmp(space, "RAS") == 0) spec->space = NRRD_SPACE_RAS;
  else return lm_ctx_error(ctx, LM_EINVAL, "option space: '%s' is neither 'LPS' nor 'RAS'", space);
  *level = lm_arg_is_set(ctx, "compress_level") ? (int)lm_arg_int(ctx, "compress_level")
                                                : GZ_DEFAULT_LEVEL;
  if (*level < 0 || *level > 9)
    return lm_ctx_error(ctx, LM_EINVAL, "option compress_level: %d is out of range 0..9 for "
                        "NRRD (zlib)", *level);
  const char *dname = lm_arg_string(ctx, "dtype");
  if (dname && lm_dtype_from_name(dname, &spec->dt) != LM_OK)
    return lm_ctx_error(ctx, LM_EINVAL, "option dtype: unknown dtype '%s'", dname);
  if (!nrrd_type_name(spec->dt))
    return lm_ctx_error(ctx, LM_EDTYPE, "%s: %s has no NRRD type; pass dtype='float32' or Cast "
                        "first", s->path, lm_dtype_name(spec->dt));
  return LM_OK;
}

static int save(save_state *s, lm_tensor *img)
{
  lm_op_ctx *ctx = s->ctx;
  lm_engine *e = lm_ctx_engine(ctx);
  nifti_err err = {0};
  int st;
  if (lm_tensor_device(img).type != LM_DEVICE_CPU)
    return lm_ctx_error(ctx, LM_EDEVICE, "%s: the image is on a CUDA device; bring it to the "
                        "host first (img:to('cpu') or ToHost)", s->path);
  bool detached = image_path_ends_with(s->path, ".nhdr");
  if (!detached && !image_path_ends_with(s->path, ".nrrd"))
    return lm_ctx_error(ctx, LM_EINVAL, "%s: option path: NRRD files end in .nrrd or .nhdr",
                        s->path);
  nrrd_write_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.dt = lm_tensor_dtype(img);
  spec.channel_axis = -1;
  int level = GZ_DEFAULT_LEVEL;
  if ((st = options(s, &spec, &level)) < 0) return st;

  /* A channel-first tensor keeps its channel as axis 0 (the fastest, kind
   * "vector"); a single channel is dropped, as SaveNifti does. */
  int nd = lm_tensor_ndim(img);
  if (nd < 1) return lm_ctx_error(ctx, LM_ESHAPE, "%s: a 0-d tensor is not an image", s->path);
  bool channel_first;
  if ((st = image_save_view(img, false, &s->view, &channel_first)) < 0) return engine_fail(s, st);
  if (channel_first) spec.channel_axis = 0;
  nd = lm_tensor_ndim(s->view);
  if (nd > NRRD_MAX_DIM)
    return lm_ctx_error(ctx, LM_ESHAPE, "%s: %d dims (at most %d)", s->path, nd, NRRD_MAX_DIM);
  spec.dim = nd;
  memcpy(spec.sizes, lm_tensor_shape(s->view), (size_t)nd * sizeof(int64_t));
  for (int a = 0; a < nd; a++)
    if (spec.sizes[a] < 1)
      return lm_ctx_error(ctx, LM_ESHAPE, "%s: dim %d has size 0 (NRRD sizes are >= 1)",
                          s->path, a);
  int first = spec.channel_axis == 0 ? 1 : 0;
  spec.nspatial = nd - first < 3 ? nd - first : 3;
  memcpy(spec.affine, lm_tensor_affine(s->view), sizeof spec.affine);

  /* The data file's name, relative to the header (same folder). */
  char dname[NRRD_PATH_MAX];
  const char *dpath = NULL;
  if (detached) {
    const char *slash = strrchr(s->path, '/');
    const char *base = slash ? slash + 1 : s->path;
    snprintf(dname, sizeof dname, "%.*s.raw%s", (int)(strlen(base) - 5), base,
             spec.encoding == NRRD_ENC_GZIP ? ".gz" : "");
    spec.data_file = dname;
  }
  size_t hlen;
  if ((st = nrrd_header_build(&spec, &s->header, &hlen, &err)) < 0) return fail(s, &err);

  /* The values, in file order and the file's dtype. */
  lm_tensor *src = s->view;
  if (!image_tensor_dense(src, true) || lm_tensor_dtype(src) != spec.dt) {
    if ((st = image_dense_copy(e, src, spec.dt, true, &s->ordered)) < 0) return engine_fail(s, st);
    src = s->ordered;
  }
  const uint8_t *data = lm_tensor_data(src);
  size_t nbytes = lm_tensor_nbytes(src);
  if (spec.encoding == NRRD_ENC_GZIP) {
    if ((st = nrrd_gzip_single(data, nbytes, level, &s->par, &s->gz, &nbytes, &err)) < 0)
      return fail(s, &err);
    data = s->gz;
  }
  if (lm_ctx_cancelled(ctx)) return lm_ctx_error(ctx, LM_ECANCELED, "cancelled");

  struct iovec iov[2] = {{s->header, hlen}, {(void *)data, nbytes}};
  if (detached) {
    char full[NRRD_PATH_MAX + 8];
    const char *slash = strrchr(s->path, '/');
    snprintf(full, sizeof full, "%.*s%s", slash ? (int)(slash - s->path + 1) : 0, s->path, dname);
    dpath = full;
    st = nifti_atomic_begin(&s->dfile, dpath, &err);
    if (st >= 0) st = nifti_atomic_writev(&s->dfile, iov + 1, 1, &err);
    if (st >= 0) st = nifti_atomic_begin(&s->hfile, s->path, &err);
    if (st >= 0) st = nifti_atomic_writev(&s->hfile, iov, 1, &err);
    if (st >= 0) st = nifti_atomic_commit(&s->dfile, &err);
    if (st >= 0) st = nifti_atomic_commit(&s->hfile, &err);
  } else {
    st = nifti_atomic_write(s->path, iov, 2, &err);
  }
  if (st < 0) return fail(s, &err);
  return LM_OK;
}

static int save_nrrd_run(lm_op_ctx *ctx)
{
  save_state s;
  memset(&s, 0, sizeof s);
  s.ctx = ctx;
  s.hfile.fd = s.dfile.fd = -1;
  s.par = (nifti_par){nifti_par_engine, ctx};
  s.path = lm_arg_string(ctx, "path");
  lm_tensor *img = lm_ctx_input(ctx, 0);
  int st;
  if (!s.path || !*s.path) st = lm_ctx_error(ctx, LM_EINVAL, "option path is required");
  else st = save(&s, img);
  nifti_atomic_abort(&s.hfile);
  nifti_atomic_abort(&s.dfile);
  free(s.header);
  free(s.gz);
  lm_tensor_release(s.ordered);
  lm_tensor_release(s.view);
  if (st < 0) return st;
  return lm_ctx_set_output(ctx, 0, lm_tensor_retain(img));
}

static const lm_arg_desc save_args[] = {
  {"path", LM_ARG_STRING, NULL,
   "output file: .nrrd (data attached) or .nhdr (data in <name>.raw or <name>.raw.gz beside it)"},
  {"encoding", LM_ARG_STRING, "'gzip'", "'gzip' or 'raw'"},
  {"space", LM_ARG_STRING, "'LPS'",
   "space the geometry is written in: 'LPS' (left-posterior-superior, as ITK writes) or 'RAS'"},
  {"dtype", LM_ARG_STRING, "nil",
   "dtype stored in the file (default: the tensor's; float16/bfloat16 have no NRRD type)"},
  {"compress_level", LM_ARG_INT, "nil", "gzip level 0..9 (zlib; default 1)"},
};

const lm_op_desc lm_op_save_nrrd = {
  .name = "SaveNrrd",
  .alias = NULL,
  .summary = "Write a tensor as a NRRD file (.nrrd or .nhdr + data file)",
  .doc =
      "Writes NRRD0004, little-endian, with 'space' (LPS unless space='RAS'), 'space directions'\n"
      "(the affine's columns, turned from RAS+ into the space) and 'space origin', so ITK,\n"
      "Slicer, pynrrd and LoadNrrd read back the same affine.  Axes are written in the tensor's\n"
      "dim order with dim 0 fastest (the order LoadNrrd and LoadNifti return).  A layout\n"
      "starting with 'C' keeps the channel as axis 0 (direction none, kind vector); a single\n"
      "channel is dropped.  At most 3 axes are spatial; later ones are written as kind list.\n"
      "gzip data are one gzip member (pynrrd reads only the first), compressed in parallel.\n"
      "The files are written under temporary names and renamed, so a failure leaves nothing\n"
      "behind.  Returns the input image.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = save_args,
  .nargs = sizeof save_args / sizeof save_args[0],
  .flags = LM_OP_IO,
  .check = NULL,
  .run_cpu = save_nrrd_run,
};
