/* The NRRD header SaveNrrd writes: NRRD0004 (what ITK and pynrrd write),
 * little-endian, the geometry as `space` (LPS, ITK's choice, or RAS), `space
 * directions` and `space origin`, numbers in the shortest text that reads
 * back to the same double. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrrd_format.h"

const char *nrrd_type_name(lm_dtype dt)
{
  switch (dt) {
  case LM_U8: return "uchar";
  case LM_I8: return "signed char";
  case LM_I16: return "short";
  case LM_U16: return "ushort";
  case LM_I32: return "int";
  case LM_U32: return "uint";
  case LM_I64: return "longlong";
  case LM_F32: return "float";
  case LM_F64: return "double";
  default: return NULL;
  }
}

typedef struct text {
  char *p;
  size_t len, cap;
  bool oom;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
  if (t->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->oom = true;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = (t->cap + (size_t)n) * 2;
    char *np = realloc(t->p, cap);
    if (!np) {
      t->oom = true;
      return;
    }
    t->p = np;
    t->cap = cap;
  }
}

/* The shortest of %.15g..%.17g that reads back exactly; 0 for -0. */
static void add_num(text *t, double v)
{
  if (v == 0) v = 0;
  char buf[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  add(t, "%s", buf);
}

static void add_vec(text *t, const double *v)
{
  add(t, "(");
  for (int i = 0; i < 3; i++) {
    if (i) add(t, ",");
    add_num(t, v[i]);
  }
  add(t, ")");
}

int nrrd_header_build(const nrrd_write_spec *spec, char **out, size_t *len, nifti_err *err)
{
  *out = NULL;
  const char *type = nrrd_type_name(spec->dt);
  if (!type)
    return nifti_fail(err, LM_EDTYPE, "%s has no NRRD type; Cast to float32 first",
                      lm_dtype_name(spec->dt));
  if (spec->dim < 1 || spec->dim > NRRD_MAX_DIM)
    return nifti_fail(err, LM_ESHAPE, "%d dims (NRRD files here hold 1..%d)", spec->dim,
                      NRRD_MAX_DIM);
  int first = spec->channel_axis == 0 ? 1 : 0;
  if (spec->nspatial < 0 || spec->nspatial > 3 || first + spec->nspatial > spec->dim)
    return nifti_fail(err, LM_ESHAPE, "%d spatial axes in %d dims", spec->nspatial, spec->dim);
  if (spec->space != NRRD_SPACE_LPS && spec->space != NRRD_SPACE_RAS)
    return nifti_fail(err, LM_EINVAL, "only RAS and LPS spaces are written");
  for (int i = 0; i < 16; i++)
    if (!isfinite(spec->affine[i]))
      return nifti_fail(err, LM_EINVAL, "the affine holds a non-finite value");

  /* RAS+ to the file's space: LPS negates the x and y rows. */
  double A[16];
  memcpy(A, spec->affine, sizeof A);
  if (spec->space == NRRD_SPACE_LPS)
    for (int r = 0; r < 2; r++)
      for (int c = 0; c < 4; c++) A[r * 4 + c] = -A[r * 4 + c];

  text t = {malloc(1024), 0, 1024, false};
  if (!t.p) return nifti_fail(err, LM_ENOMEM, "out of memory");
  add(&t, "NRRD0004\n# Complete NRRD file format specification at:\n"
          "# http://teem.sourceforge.net/nrrd/format.html\n");
  add(&t, "type: %s\ndimension: %d\n", type, spec->dim);
  if (spec->nspatial > 0)
    add(&t, "space: %s\n", spec->space == NRRD_SPACE_LPS ? "left-posterior-superior"
                                                         : "right-anterior-superior");
  add(&t, "sizes:");
  for (int a = 0; a < spec->dim; a++) add(&t, " %lld", (long long)spec->sizes[a]);
  add(&t, "\n");
  if (spec->nspatial > 0) {
    add(&t, "space directions:");
    for (int a = 0; a < spec->dim; a++) {
      int c = a - first;
      if (c >= 0 && c < spec->nspatial) {
        double v[3] = {A[c], A[4 + c], A[8 + c]};
        add(&t, " ");
        add_vec(&t, v);
      } else {
        add(&t, " none");
      }
    }
    add(&t, "\n");
  }
  add(&t, "kinds:");
  for (int a = 0; a < spec->dim; a++) {
    int c = a - first;
    add(&t, " %s", a < first ? "vector" : c < spec->nspatial ? "domain" : "list");
  }
  add(&t, "\n");
  if (nifti_dtype_size(spec->dt) > 1) add(&t, "endian: little\n");
  add(&t, "encoding: %s\n", spec->encoding == NRRD_ENC_GZIP ? "gzip" : "raw");
  if (spec->nspatial > 0) {
    double o[3] = {A[3], A[7], A[11]};
    add(&t, "space origin: ");
    add_vec(&t, o);
    add(&t, "\n");
  }
  if (spec->data_file) {
    if (strchr(spec->data_file, '\n')) {
      free(t.p);
      return nifti_fail(err, LM_EINVAL, "the data file name holds a newline");
    }
    add(&t, "data file: %s\n", spec->data_file);
  } else {
    add(&t, "\n");
  }
  if (t.oom) {
    free(t.p);
    return nifti_fail(err, LM_ENOMEM, "out of memory");
  }
  *out = t.p;
  *len = t.len;
  return LM_OK;
}
