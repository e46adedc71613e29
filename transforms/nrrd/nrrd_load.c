/* LoadNrrd: read a NRRD image (.nrrd with attached data, or a .nhdr header
 * and its detached data file) into a tensor in the file's memory order
 * (axis 0 fastest), with a RAS+ affine.  Raw data of the requested type are
 * read straight into the tensor; anything else (gzip, ascii, skips, a type
 * conversion) goes through nrrd_decode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../image_file.h"
#include "../nifti/nifti_file.h"
#include "../nifti/nifti_ops.h"
#include "nrrd_format.h"
#include "nrrd_ops.h"

/* Headers are small; a header that does not end in the first MiB is not
 * one lumen reads. */
#define HEAD_MAX ((size_t)1 << 20)

typedef struct load_state {
  lm_op_ctx *ctx;
  const char *path;
  nifti_par par;
  nrrd_header h;
  char *head;
  int hfd, dfd;
  uint64_t hsize, dsize, doff; /* the data: file size and where they start */
  char dpath[NRRD_PATH_MAX];
  lm_tensor *scratch, *out;
} load_state;

static int fail(load_state *s, const nifti_err *e, const char *file)
{
  return image_file_fail(s->ctx, file, e);
}

static void set_results(lm_op_ctx *ctx, const nrrd_header *h, const char *dpath)
{
  lm_params *r = lm_ctx_results(ctx);
  if (!r) return;
  static const char *const space[] = {"none", "RAS", "LAS", "LPS"};
  static const char *const enc[] = {"raw", "gzip", "ascii"};
  static const char *const stype[] = {"uint8", "int8", "int16", "uint16", "int32", "uint32",
                                      "int64", "uint64", "float32", "float64"};
  double sizes[NRRD_MAX_DIM];
  for (int a = 0; a < h->dim; a++) sizes[a] = (double)h->sizes[a];
  lm_params_set_int(r, "nrrd_version", h->version);
  lm_params_set_string(r, "storage_dtype", stype[h->stype]);
  lm_params_set_string(r, "encoding", enc[h->encoding]);
  lm_params_set_string(r, "byte_order", h->big_endian ? "big" : "little");
  lm_params_set_string(r, "space", space[h->space]);
  lm_params_set_numbers(r, "sizes", sizes, h->dim);
  char kinds[NRRD_MAX_DIM * 25] = "";
  for (int a = 0; a < h->dim; a++) {
    if (a) strcat(kinds, " ");
    strcat(kinds, *h->kinds[a] ? h->kinds[a] : "???");
  }
  lm_params_set_string(r, "kinds", kinds);
  if (h->has_directions) {
    double dirs[NRRD_MAX_DIM * 3];
    int n = 0;
    for (int a = 0; a < h->dim; a++)
      if (h->axis_spatial[a])
        for (int k = 0; k < 3; k++) dirs[n++] = h->directions[a][k];
    lm_params_set_numbers(r, "space_directions", dirs, n);
  }
  if (h->has_origin) lm_params_set_numbers(r, "space_origin", h->origin, 3);
  lm_params_set_string(r, "data_file", dpath);
}

/* Layout letters: the channel axis 'C', spatial axes X, Y, Z, others T. */
static void layout_of(const nrrd_header *h, char *out)
{
  int k = 0, ns = 0;
  for (int a = 0; a < h->dim; a++)
    out[k++] = a == h->channel_axis ? 'C' : h->axis_spatial[a] ? "XYZ"[ns++] : 'T';
  out[k] = 0;
}

/* The data file of a .nhdr: relative names are relative to its folder. */
static int resolve_data_path(load_state *s)
{
  const char *df = s->h.data_file;
  const char *slash = strrchr(s->path, '/');
  int n;
  if (df[0] == '/' || !slash)
    n = snprintf(s->dpath, sizeof s->dpath, "%s", df);
  else
    n = snprintf(s->dpath, sizeof s->dpath, "%.*s%s", (int)(slash - s->path + 1), s->path, df);
  if (n < 0 || (size_t)n >= sizeof s->dpath)
    return lm_ctx_error(s->ctx, LM_EINVAL, "%s: field 'data file': path too long", s->path);
  return LM_OK;
}

static int load(load_state *s, lm_dtype want, bool native)
{
  lm_op_ctx *ctx = s->ctx;
  lm_engine *e = lm_ctx_engine(ctx);
  nifti_err err = {0};
  int st;

  if ((st = nifti_open_read(s->path, &s->hfd, &s->hsize, &err)) < 0) return fail(s, &err, s->path);
  size_t hn = s->hsize < HEAD_MAX ? (size_t)s->hsize : HEAD_MAX;
  if (!(s->head = malloc(hn + 1))) return lm_ctx_error(ctx, LM_ENOMEM, "out of memory");
  if ((st = nifti_pread_exact(s->hfd, 0, s->head, hn, &err)) < 0) return fail(s, &err, s->path);
  if ((st = nrrd_header_parse(s->head, hn, &s->h, &err)) < 0) return fail(s, &err, s->path);
  nrrd_header *h = &s->h;

  if (*h->data_file) {
    if ((st = resolve_data_path(s)) < 0) return st;
    if ((st = nifti_open_read(s->dpath, &s->dfd, &s->dsize, &err)) < 0)
      return lm_ctx_error(ctx, err.code, "%s: field 'data file': %s: %s", s->path, s->dpath,
                          err.msg);
    s->doff = 0;
  } else {
    snprintf(s->dpath, sizeof s->dpath, "%s", s->path);
    s->dfd = s->hfd;
    s->dsize = s->hsize;
    s->doff = h->header_bytes;
  }
  uint64_t dlen = s->dsize - s->doff;
  if ((st = nrrd_check_size(h, dlen, &err)) < 0) return fail(s, &err, s->dpath);
  if (native && (st = nrrd_native_dtype(h, &want, &err)) < 0) return fail(s, &err, s->path);
  lm_dtype decode_dt = (want == LM_F16 || want == LM_BF16) ? LM_F32 : want;

  int64_t shape[NRRD_MAX_DIM];
  int order[NRRD_MAX_DIM];
  for (int a = 0; a < h->dim; a++) {
    shape[a] = h->sizes[a];
    order[a] = h->dim - 1 - a; /* axis 0 fastest: the file's order */
  }
  if ((st = lm_tensor_new_ordered(e, decode_dt, h->dim, shape, order, LM_CPU, &s->out)) < 0)
    return image_engine_fail(ctx, s->path, st);

  lm_dtype stored;
  bool same = nifti_stype_to_dtype(h->stype, &stored) == LM_OK && stored == decode_dt;
  if (same && h->encoding == NRRD_ENC_RAW && h->line_skip == 0) {
    /* Straight into the tensor. */
    uint64_t off = s->doff + (h->byte_skip == -1 ? dlen - h->data_bytes : (uint64_t)h->byte_skip);
    if ((st = nifti_pread_exact(s->dfd, off, lm_tensor_data(s->out), (size_t)h->data_bytes,
                                &err)) < 0)
      return fail(s, &err, s->dpath);
    if (nifti_file_needs_swap(h->big_endian))
      nifti_swap_inplace(lm_tensor_data(s->out), h->elem_size, h->numel, &s->par);
    return LM_OK;
  }
  int64_t n = (int64_t)(dlen ? dlen : 1);
  if ((st = lm_tensor_new(e, LM_U8, 1, &n, LM_CPU, &s->scratch)) < 0)
    return lm_ctx_error(ctx, st, "%s: out of memory for %llu bytes", s->path,
                        (unsigned long long)dlen);
  uint8_t *buf = lm_tensor_data(s->scratch);
  if ((st = nifti_pread_exact(s->dfd, s->doff, buf, (size_t)dlen, &err)) < 0)
    return fail(s, &err, s->dpath);
  if (lm_ctx_cancelled(ctx)) return lm_ctx_error(ctx, LM_ECANCELED, "cancelled");
  if ((st = nrrd_decode(h, buf, (size_t)dlen, decode_dt, lm_tensor_data(s->out), &s->par,
                        &err)) < 0)
    return fail(s, &err, s->dpath);
  return LM_OK;
}

static int load_nrrd_run(lm_op_ctx *ctx)
{
  load_state s;
  memset(&s, 0, sizeof s);
  s.ctx = ctx;
  s.hfd = s.dfd = -1;
  s.par = (nifti_par){nifti_par_engine, ctx};
  s.path = lm_arg_string(ctx, "path");
  lm_dtype want;
  bool native;
  int st = image_arg_load_dtype(ctx, &want, &native);
  if (st < 0) return st;
  if (!s.path || !*s.path) return lm_ctx_error(ctx, LM_EINVAL, "option path is required");
  st = load(&s, want, native);
  if (s.dfd >= 0 && s.dfd != s.hfd) close(s.dfd);
  if (s.hfd >= 0) close(s.hfd);
  free(s.head);
  lm_tensor_release(s.scratch);
  if (st < 0) {
    lm_tensor_release(s.out);
    return st;
  }
  lm_tensor *out = s.out;
  if (!native && (want == LM_F16 || want == LM_BF16) &&
      (st = image_to_half(ctx, s.path, want, &out)) < 0)
    return st;
  char layout[NRRD_MAX_DIM + 1];
  layout_of(&s.h, layout);
  lm_tensor_set_affine(out, s.h.affine);
  lm_tensor_set_layout(out, layout);
  set_results(ctx, &s.h, s.dpath);
  return lm_ctx_set_output(ctx, 0, out);
}

static const lm_arg_desc load_args[] = {
  {"path", LM_ARG_STRING, NULL,
   "file to read: .nrrd (attached data) or .nhdr (detached data file)"},
  {"dtype", LM_ARG_STRING, "'float32'",
   "dtype of the result: a dtype name, or 'native' (the stored type)"},
};

const lm_op_desc lm_op_load_nrrd = {
  .name = "LoadNrrd",
  .alias = NULL,
  .summary = "Read a NRRD image (.nrrd, .nhdr + data file) into a tensor",
  .doc =
      "Reads NRRD0001..NRRD0005: every integer type, float and double; raw, gzip and ascii\n"
      "encodings; either byte order; attached data or a single detached 'data file' (relative\n"
      "to the header's folder); 'line skip' and 'byte skip'.  The tensor has shape sizes (axis 0\n"
      "first) in the file's memory order (axis 0 fastest), as LoadNifti.  Geometry as ITK and\n"
      "MONAI's NrrdReader: affine column j is the space direction of the j-th spatial axis,\n"
      "the translation is 'space origin', and LPS / LAS spaces are turned into RAS+ by negating\n"
      "the x (and y) rows.  Without 'space directions', 'spacings' (1 where absent) give a\n"
      "diagonal affine.  An axis whose direction is 'none' (or whose kind is not a domain\n"
      "kind: vector, list, RGB-color, ...) is not spatial: a leading one becomes the channel\n"
      "axis (layout \"CXYZ\"), later ones trail the spatial axes (\"XYZT\").  Scalar results:\n"
      "nrrd_version, storage_dtype, encoding, byte_order, space, sizes, kinds,\n"
      "space_directions, space_origin (as in the file), data_file.  Spaces without a patient\n"
      "orientation (scanner-xyz, 3D-right-handed, ...), block data, bzip2 and hex encodings\n"
      "and numbered data file series are refused with LM_EUNSUPPORTED.",
  .inputs = "",
  .min_inputs = 0,
  .max_inputs = 0,
  .outputs = "img",
  .args = load_args,
  .nargs = sizeof load_args / sizeof load_args[0],
  .flags = LM_OP_SOURCE | LM_OP_IO,
  .check = NULL,
  .run_cpu = load_nrrd_run,
};
