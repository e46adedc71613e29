/* NRRD header parsing: the text up to the first empty line is collected as
 * "field: value" lines, then the fields lumen uses are interpreted in a
 * fixed order (so their order in the file does not matter) and checked
 * against each other.  Geometry follows ITK / MONAI's NrrdReader: column j of
 * the affine is the space direction of the j-th spatial axis, the origin is
 * `space origin`, and LPS / LAS spaces are turned into RAS+ by negating the
 * x (and y) rows. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nrrd_format.h"

#define MAX_FIELDS 64

typedef struct field {
  char name[32];
  const char *value; /* not NUL-terminated */
  size_t len;
  bool used;
} field;

typedef struct fields {
  field f[MAX_FIELDS];
  int n;
} fields;

/* The canonical name of a field (teem accepts a few spellings). */
static const char *canonical(const char *name)
{
  static const char *const alias[][2] = {
    {"datafile", "data file"}, {"lineskip", "line skip"}, {"byteskip", "byte skip"},
    {"centerings", "centers"}, {"oldmin", "old min"}, {"oldmax", "old max"},
    {"axismins", "axis mins"}, {"axismaxs", "axis maxs"},
  };
  for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
    if (strcmp(name, alias[i][0]) == 0) return alias[i][1];
  return name;
}

static const field *get(fields *fs, const char *name)
{
  for (int i = 0; i < fs->n; i++)
    if (strcmp(fs->f[i].name, name) == 0) {
      fs->f[i].used = true;
      return &fs->f[i];
    }
  return NULL;
}

/* A field's value as a NUL-terminated copy, trimmed (at most cap-1 bytes;
 * longer values are an error). */
static int value_text(const field *f, char *out, size_t cap, nifti_err *err)
{
  const char *v = f->value;
  size_t n = f->len;
  while (n > 0 && isspace((unsigned char)*v)) v++, n--;
  while (n > 0 && isspace((unsigned char)v[n - 1])) n--;
  if (n >= cap)
    return nifti_fail(err, LM_EFORMAT, "field '%s': value too long (%zu bytes)", f->name, n);
  memcpy(out, v, n);
  out[n] = 0;
  return LM_OK;
}

/* Split the header into lines and fields.  *end = offset after the empty
 * line, or len when the buffer ended first (*terminated false). */
static int collect(const char *buf, size_t len, nrrd_header *h, fields *fs, size_t *end,
                   bool *terminated, nifti_err *err)
{
  if (len < 8 || memcmp(buf, "NRRD000", 7) != 0 || buf[7] < '1' || buf[7] > '9')
    return nifti_fail(err, LM_EFORMAT, "not a NRRD file (no \"NRRD000N\" magic line)");
  h->version = buf[7] - '0';
  if (h->version > 5)
    return nifti_fail(err, LM_EUNSUPPORTED, "NRRD000%d is newer than the versions read "
                      "(NRRD0001..NRRD0005)", h->version);
  size_t pos = 8;
  while (pos < len && buf[pos] == '\r') pos++;
  if (pos < len && buf[pos] != '\n')
    return nifti_fail(err, LM_EFORMAT, "the magic line \"NRRD000%d\" is followed by other text",
                      h->version);
  pos++;
  *terminated = false;
  int lineno = 1;
  while (pos < len) {
    lineno++;
    const char *line = buf + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - line) : len - pos;
    pos += n + (nl ? 1 : 0);
    if (n > 0 && line[n - 1] == '\r') n--;
    if (n == 0) {
      *terminated = true;
      break;
    }
    if (memchr(line, 0, n))
      return nifti_fail(err, LM_EFORMAT, "header line %d holds a NUL byte", lineno);
    if (line[0] == '#') continue;
    const char *colon = NULL;
    for (size_t i = 0; i + 1 < n; i++)
      if (line[i] == ':' && (line[i + 1] == ' ' || line[i + 1] == '=')) {
        colon = line + i;
        break;
      }
    if (!colon)
      return nifti_fail(err, LM_EFORMAT, "header line %d is neither a field (\"name: value\"), "
                        "a key/value pair (\"key:=value\") nor a comment: \"%.*s\"", lineno,
                        (int)(n > 60 ? 60 : n), line);
    if (colon[1] == '=') continue; /* key/value pairs carry no geometry */
    size_t nlen = (size_t)(colon - line);
    char name[32];
    if (nlen == 0 || nlen >= sizeof name)
      return nifti_fail(err, LM_EFORMAT, "header line %d: bad field name", lineno);
    for (size_t i = 0; i < nlen; i++) name[i] = (char)tolower((unsigned char)line[i]);
    name[nlen] = 0;
    const char *cname = canonical(name);
    for (int i = 0; i < fs->n; i++)
      if (strcmp(fs->f[i].name, cname) == 0)
        return nifti_fail(err, LM_EFORMAT, "field '%s' is given twice", cname);
    if (fs->n == MAX_FIELDS)
      return nifti_fail(err, LM_EFORMAT, "more than %d header fields", MAX_FIELDS);
    field *f = &fs->f[fs->n++];
    snprintf(f->name, sizeof f->name, "%s", cname);
    f->value = colon + 2;
    f->len = n - nlen - 2;
  }
  *end = pos;
  return LM_OK;
}

/* Split a value into whitespace-separated words (in place in a copy). */
static int words(char *text, char **w, int cap)
{
  int n = 0;
  char *save = NULL;
  for (char *t = strtok_r(text, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
    if (n == cap) return cap + 1;
    w[n++] = t;
  }
  return n;
}

static bool parse_i64(const char *s, int64_t *v)
{
  char *e;
  errno = 0;
  long long x = strtoll(s, &e, 10);
  if (e == s || *e || errno) return false;
  *v = x;
  return true;
}

static bool parse_f64(const char *s, double *v)
{
  char *e;
  *v = strtod(s, &e);
  return e != s && *e == 0;
}

static int parse_type(const field *f, nrrd_header *h, nifti_err *err)
{
  char t[64];
  int st = value_text(f, t, sizeof t, err);
  if (st < 0) return st;
  for (char *p = t; *p; p++) *p = (char)tolower((unsigned char)*p);
  static const struct { const char *name; nifti_stype st; size_t size; } types[] = {
    {"signed char", NIFTI_S_I8, 1}, {"int8", NIFTI_S_I8, 1}, {"int8_t", NIFTI_S_I8, 1},
    {"uchar", NIFTI_S_U8, 1}, {"unsigned char", NIFTI_S_U8, 1}, {"uint8", NIFTI_S_U8, 1},
    {"uint8_t", NIFTI_S_U8, 1},
    {"short", NIFTI_S_I16, 2}, {"short int", NIFTI_S_I16, 2}, {"signed short", NIFTI_S_I16, 2},
    {"signed short int", NIFTI_S_I16, 2}, {"int16", NIFTI_S_I16, 2}, {"int16_t", NIFTI_S_I16, 2},
    {"ushort", NIFTI_S_U16, 2}, {"unsigned short", NIFTI_S_U16, 2},
    {"unsigned short int", NIFTI_S_U16, 2}, {"uint16", NIFTI_S_U16, 2},
    {"uint16_t", NIFTI_S_U16, 2},
    {"int", NIFTI_S_I32, 4}, {"signed int", NIFTI_S_I32, 4}, {"int32", NIFTI_S_I32, 4},
    {"int32_t", NIFTI_S_I32, 4},
    {"uint", NIFTI_S_U32, 4}, {"unsigned int", NIFTI_S_U32, 4}, {"uint32", NIFTI_S_U32, 4},
    {"uint32_t", NIFTI_S_U32, 4},
    {"longlong", NIFTI_S_I64, 8}, {"long long", NIFTI_S_I64, 8},
    {"long long int", NIFTI_S_I64, 8}, {"signed long long", NIFTI_S_I64, 8},
    {"signed long long int", NIFTI_S_I64, 8}, {"int64", NIFTI_S_I64, 8},
    {"int64_t", NIFTI_S_I64, 8},
    {"ulonglong", NIFTI_S_U64, 8}, {"unsigned long long", NIFTI_S_U64, 8},
    {"unsigned long long int", NIFTI_S_U64, 8}, {"uint64", NIFTI_S_U64, 8},
    {"uint64_t", NIFTI_S_U64, 8},
    {"float", NIFTI_S_F32, 4}, {"double", NIFTI_S_F64, 8},
  };
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(t, types[i].name) == 0) {
      h->stype = types[i].st;
      h->elem_size = types[i].size;
      return LM_OK;
    }
  if (strcmp(t, "block") == 0)
    return nifti_fail(err, LM_EDTYPE, "field 'type': \"block\" data are not supported");
  return nifti_fail(err, LM_EFORMAT, "field 'type': unknown type \"%s\"", t);
}

static int parse_space(const field *f, nrrd_header *h, nifti_err *err)
{
  char s[64];
  int st = value_text(f, s, sizeof s, err);
  if (st < 0) return st;
  static const struct { const char *a, *b; nrrd_space sp; bool time; } spaces[] = {
    {"right-anterior-superior", "ras", NRRD_SPACE_RAS, false},
    {"left-anterior-superior", "las", NRRD_SPACE_LAS, false},
    {"left-posterior-superior", "lps", NRRD_SPACE_LPS, false},
    {"right-anterior-superior-time", "rast", NRRD_SPACE_RAS, true},
    {"left-anterior-superior-time", "last", NRRD_SPACE_LAS, true},
    {"left-posterior-superior-time", "lpst", NRRD_SPACE_LPS, true},
  };
  for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++)
    if (strcasecmp(s, spaces[i].a) == 0 || strcasecmp(s, spaces[i].b) == 0) {
      h->space = spaces[i].sp;
      h->space_time = spaces[i].time;
      h->space_dim = spaces[i].time ? 4 : 3;
      return LM_OK;
    }
  static const char *const known[] = {"scanner-xyz", "scanner-xyz-time", "3d-right-handed",
                                      "3d-left-handed", "3d-right-handed-time",
                                      "3d-left-handed-time"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcasecmp(s, known[i]) == 0)
      return nifti_fail(err, LM_EUNSUPPORTED, "field 'space': \"%s\" has no patient "
                        "orientation; lumen reads RAS, LAS and LPS spaces", s);
  return nifti_fail(err, LM_EFORMAT, "field 'space': unknown space \"%s\"", s);
}

/* "(x,y,z)" with n components into v; "none" sets *none. */
static int parse_vector(const char *s, int n, double *v, bool *none, const char *fname,
                        int axis, nifti_err *err)
{
  *none = false;
  if (strcmp(s, "none") == 0) {
    *none = true;
    return LM_OK;
  }
  const char *p = s;
  if (*p++ != '(') goto bad;
  for (int i = 0; i < n; i++) {
    char *e;
    while (*p == ' ') p++;
    v[i] = strtod(p, &e);
    if (e == p || !isfinite(v[i])) goto bad;
    p = e;
    while (*p == ' ') p++;
    if (*p != (i + 1 < n ? ',' : ')')) goto bad;
    p++;
  }
  if (*p) goto bad;
  return LM_OK;
bad:
  if (axis >= 0)
    return nifti_fail(err, LM_EFORMAT, "field '%s': axis %d: \"%s\" is not a vector of %d "
                      "finite numbers \"(a,b,...)\" or none", fname, axis, s, n);
  return nifti_fail(err, LM_EFORMAT, "field '%s': \"%s\" is not a vector of %d finite numbers "
                    "\"(a,b,...)\"", fname, s, n);
}

/* A per-axis field: exactly dim words. */
static int axis_words(const field *f, int dim, char *text, size_t cap, char **w, nifti_err *err)
{
  int st = value_text(f, text, cap, err);
  if (st < 0) return st;
  int n = words(text, w, NRRD_MAX_DIM);
  if (n != dim)
    return nifti_fail(err, LM_EFORMAT, "field '%s': %s%d value%s for dimension %d", f->name,
                      n > NRRD_MAX_DIM ? "more than " : "", n > NRRD_MAX_DIM ? NRRD_MAX_DIM : n,
                      n == 1 ? "" : "s", dim);
  return LM_OK;
}

static bool spatial_kind(const char *k)
{
  return !*k || strcmp(k, "domain") == 0 || strcmp(k, "space") == 0 || strcmp(k, "???") == 0 ||
         strcmp(k, "none") == 0;
}

/* Which axes are spatial, the channel axis, and the RAS+ affine. */
static int geometry(nrrd_header *h, nifti_err *err)
{
  int sp[NRRD_MAX_DIM], ns = 0;
  for (int a = 0; a < h->dim; a++) {
    bool s = h->has_directions ? h->axis_spatial[a]
                               : (spatial_kind(h->kinds[a]) && ns < 3);
    if (!h->has_directions && s && strcmp(h->kinds[a], "time") == 0) s = false;
    h->axis_spatial[a] = s;
    if (s) sp[ns++] = a;
  }
  if (ns > 3)
    return nifti_fail(err, LM_EUNSUPPORTED, "field 'space directions': %d spatial axes "
                      "(lumen's affine holds 3)", ns);
  h->channel_axis = (h->dim >= 2 && !h->axis_spatial[0] && ns > 0) ? 0 : -1;
  /* Non-spatial axes other than a leading channel go after the spatial ones
   * (as NIfTI's t), so the affine's columns stay the tensor's first spatial
   * dims. */
  for (int i = 0; i < ns; i++)
    if (sp[i] != i + (h->channel_axis == 0 ? 1 : 0))
      return nifti_fail(err, LM_EUNSUPPORTED, "field 'kinds': axis %d is not spatial but "
                        "comes before spatial axis %d (lumen keeps one leading channel axis "
                        "and trailing non-spatial axes)", sp[i] - 1, sp[i]);
  double *A = h->affine;
  memset(A, 0, 16 * sizeof *A);
  A[15] = 1;
  for (int c = 0; c < 3; c++) {
    if (c < ns) {
      int a = sp[c];
      for (int r = 0; r < 3; r++) {
        if (h->has_directions) A[r * 4 + c] = h->directions[a][r];
        else if (r == c) A[r * 4 + c] = isfinite(h->spacings[a]) ? h->spacings[a] : 1.0;
      }
    }
  }
  /* Fewer than 3 spatial axes (a 2-D image): the missing columns are unit
   * vectors normal to the others, so the affine stays invertible. */
  if (ns == 2) {
    double *u = (double[3]){A[0], A[4], A[8]}, *v = (double[3]){A[1], A[5], A[9]};
    double n[3] = {u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]};
    double len = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    for (int r = 0; r < 3; r++) A[r * 4 + 2] = len > 0 ? n[r] / len : (r == 2);
  } else if (ns < 2) {
    for (int c = ns; c < 3; c++) A[c * 4 + c] = 1;
  }
  if (h->has_origin)
    for (int r = 0; r < 3; r++) A[r * 4 + 3] = h->origin[r];
  int flip = h->space == NRRD_SPACE_LPS ? 2 : h->space == NRRD_SPACE_LAS ? 1 : 0;
  for (int r = 0; r < flip; r++)
    for (int c = 0; c < 4; c++) A[r * 4 + c] = A[r * 4 + c] == 0 ? 0 : -A[r * 4 + c];
  return LM_OK;
}

int nrrd_header_parse(const char *buf, size_t len, nrrd_header *h, nifti_err *err)
{
  memset(h, 0, sizeof *h);
  h->channel_axis = -1;
  for (int a = 0; a < NRRD_MAX_DIM; a++) h->spacings[a] = NAN;
  fields *fs = calloc(1, sizeof *fs);
  if (!fs) return nifti_fail(err, LM_ENOMEM, "out of memory");
  char *text = malloc(8192);
  if (!text) {
    free(fs);
    return nifti_fail(err, LM_ENOMEM, "out of memory");
  }
  char *w[NRRD_MAX_DIM + 1];
  bool terminated;
  const field *f;
  int st = collect(buf, len, h, fs, &h->header_bytes, &terminated, err);
  if (st < 0) goto done;

  /* dimension, sizes, type */
  if (!(f = get(fs, "dimension"))) {
    st = nifti_fail(err, LM_EFORMAT, "field 'dimension' is missing");
    goto done;
  }
  int64_t d;
  if ((st = value_text(f, text, 8192, err)) < 0) goto done;
  if (!parse_i64(text, &d) || d < 1) {
    st = nifti_fail(err, LM_EFORMAT, "field 'dimension': \"%s\" is not a positive integer", text);
    goto done;
  }
  if (d > NRRD_MAX_DIM) {
    st = nifti_fail(err, LM_EUNSUPPORTED, "field 'dimension': %lld axes (lumen tensors hold "
                    "at most %d)", (long long)d, NRRD_MAX_DIM);
    goto done;
  }
  h->dim = (int)d;
  if (!(f = get(fs, "sizes"))) {
    st = nifti_fail(err, LM_EFORMAT, "field 'sizes' is missing");
    goto done;
  }
  if ((st = axis_words(f, h->dim, text, 8192, w, err)) < 0) goto done;
  h->numel = 1;
  for (int a = 0; a < h->dim; a++) {
    if (!parse_i64(w[a], &h->sizes[a]) || h->sizes[a] < 1) {
      st = nifti_fail(err, LM_EFORMAT, "field 'sizes': axis %d: \"%s\" is not a positive "
                      "integer", a, w[a]);
      goto done;
    }
    if (h->sizes[a] > ((int64_t)1 << 40) / h->numel) {
      st = nifti_fail(err, LM_EFORMAT, "field 'sizes': more than 2^40 elements");
      goto done;
    }
    h->numel *= h->sizes[a];
  }
  if (!(f = get(fs, "type"))) {
    st = nifti_fail(err, LM_EFORMAT, "field 'type' is missing");
    goto done;
  }
  if ((st = parse_type(f, h, err)) < 0) goto done;
  h->data_bytes = (uint64_t)h->numel * h->elem_size;

  /* encoding, endian */
  if (!(f = get(fs, "encoding"))) {
    st = nifti_fail(err, LM_EFORMAT, "field 'encoding' is missing");
    goto done;
  }
  if ((st = value_text(f, text, 64, err)) < 0) goto done;
  if (strcasecmp(text, "raw") == 0) h->encoding = NRRD_ENC_RAW;
  else if (strcasecmp(text, "gzip") == 0 || strcasecmp(text, "gz") == 0) h->encoding = NRRD_ENC_GZIP;
  else if (strcasecmp(text, "ascii") == 0 || strcasecmp(text, "text") == 0 ||
           strcasecmp(text, "txt") == 0) h->encoding = NRRD_ENC_ASCII;
  else if (strcasecmp(text, "bzip2") == 0 || strcasecmp(text, "bz2") == 0 ||
           strcasecmp(text, "hex") == 0 || strcasecmp(text, "zstd") == 0) {
    st = nifti_fail(err, LM_EUNSUPPORTED, "field 'encoding': \"%s\" is not supported (raw, "
                    "gzip and ascii are)", text);
    goto done;
  } else {
    st = nifti_fail(err, LM_EFORMAT, "field 'encoding': unknown encoding \"%s\"", text);
    goto done;
  }
  if ((f = get(fs, "endian"))) {
    if ((st = value_text(f, text, 64, err)) < 0) goto done;
    if (strcasecmp(text, "little") == 0) h->big_endian = false;
    else if (strcasecmp(text, "big") == 0) h->big_endian = true;
    else {
      st = nifti_fail(err, LM_EFORMAT, "field 'endian': \"%s\" is neither little nor big", text);
      goto done;
    }
  } else if (h->elem_size > 1 && h->encoding != NRRD_ENC_ASCII) {
    st = nifti_fail(err, LM_EFORMAT, "field 'endian' is missing (required for %zu-byte "
                    "types in %s encoding)", h->elem_size,
                    h->encoding == NRRD_ENC_RAW ? "raw" : "gzip");
    goto done;
  }

  /* space, space dimension */
  if ((f = get(fs, "space")) && (st = parse_space(f, h, err)) < 0) goto done;
  if ((f = get(fs, "space dimension"))) {
    int64_t sd;
    if ((st = value_text(f, text, 64, err)) < 0) goto done;
    if (!parse_i64(text, &sd) || sd < 1 || sd > 4) {
      st = nifti_fail(err, LM_EFORMAT, "field 'space dimension': \"%s\" is not 1..4", text);
      goto done;
    }
    if (h->space != NRRD_SPACE_NONE && sd != h->space_dim) {
      st = nifti_fail(err, LM_EFORMAT, "field 'space dimension': %lld contradicts field "
                      "'space' (%d)", (long long)sd, h->space_dim);
      goto done;
    }
    if (h->space == NRRD_SPACE_NONE) {
      st = nifti_fail(err, LM_EUNSUPPORTED, "field 'space dimension' without field 'space': "
                      "the axes have no patient orientation (lumen reads RAS, LAS and LPS)");
      goto done;
    }
  }

  /* kinds, spacings */
  if ((f = get(fs, "kinds"))) {
    if ((st = axis_words(f, h->dim, text, 8192, w, err)) < 0) goto done;
    for (int a = 0; a < h->dim; a++) {
      snprintf(h->kinds[a], sizeof h->kinds[a], "%s", w[a]);
      for (char *p = h->kinds[a]; *p; p++) *p = (char)tolower((unsigned char)*p);
    }
  }
  if ((f = get(fs, "spacings"))) {
    if ((st = axis_words(f, h->dim, text, 8192, w, err)) < 0) goto done;
    for (int a = 0; a < h->dim; a++)
      if (!parse_f64(w[a], &h->spacings[a]) || h->spacings[a] == 0 || isinf(h->spacings[a])) {
        st = nifti_fail(err, LM_EFORMAT, "field 'spacings': axis %d: \"%s\" is not a non-zero "
                        "number or nan", a, w[a]);
        goto done;
      }
  }

  /* space directions, space origin */
  if ((f = get(fs, "space directions"))) {
    if (h->space == NRRD_SPACE_NONE) {
      st = nifti_fail(err, LM_EFORMAT, "field 'space directions' needs field 'space'");
      goto done;
    }
    if ((st = axis_words(f, h->dim, text, 8192, w, err)) < 0) goto done;
    h->has_directions = true;
    int nsp = 0;
    for (int a = 0; a < h->dim; a++) {
      double v[4];
      bool none;
      if ((st = parse_vector(w[a], h->space_dim, v, &none, "space directions", a, err)) < 0)
        goto done;
      h->axis_spatial[a] = !none;
      if (!none) {
        memcpy(h->directions[a], v, 3 * sizeof *v);
        nsp++;
      }
    }
    int want = h->space_time ? h->space_dim - 1 : h->space_dim;
    if (nsp > want || nsp == 0) {
      st = nifti_fail(err, LM_EFORMAT, "field 'space directions': %d axes have directions in "
                      "a %d-D space", nsp, want);
      goto done;
    }
  }
  if ((f = get(fs, "space origin"))) {
    if (h->space == NRRD_SPACE_NONE) {
      st = nifti_fail(err, LM_EFORMAT, "field 'space origin' needs field 'space'");
      goto done;
    }
    if ((st = value_text(f, text, 8192, err)) < 0) goto done;
    double v[4];
    bool none;
    if ((st = parse_vector(text, h->space_dim, v, &none, "space origin", -1, err)) < 0) goto done;
    if (none) {
      st = nifti_fail(err, LM_EFORMAT, "field 'space origin': \"none\" is not an origin");
      goto done;
    }
    h->has_origin = true;
    memcpy(h->origin, v, 3 * sizeof *v);
  }

  /* data file, skips */
  if ((f = get(fs, "data file"))) {
    if ((st = value_text(f, h->data_file, sizeof h->data_file, err)) < 0) goto done;
    if (!*h->data_file || strncmp(h->data_file, "LIST", 4) == 0 ||
        (strchr(h->data_file, '%') && strchr(h->data_file, ' '))) {
      st = nifti_fail(err, LM_EUNSUPPORTED, "field 'data file': \"%s\": lumen reads one "
                      "detached data file (not LIST or a numbered series)", h->data_file);
      goto done;
    }
  }
  if ((f = get(fs, "line skip"))) {
    if ((st = value_text(f, text, 64, err)) < 0) goto done;
    if (!parse_i64(text, &h->line_skip) || h->line_skip < 0) {
      st = nifti_fail(err, LM_EFORMAT, "field 'line skip': \"%s\" is not an integer >= 0", text);
      goto done;
    }
  }
  if ((f = get(fs, "byte skip"))) {
    if ((st = value_text(f, text, 64, err)) < 0) goto done;
    if (!parse_i64(text, &h->byte_skip) || h->byte_skip < -1) {
      st = nifti_fail(err, LM_EFORMAT, "field 'byte skip': \"%s\" is not an integer >= -1", text);
      goto done;
    }
    if (h->byte_skip == -1 && h->encoding != NRRD_ENC_RAW) {
      st = nifti_fail(err, LM_EFORMAT, "field 'byte skip': -1 is only meaningful with raw "
                      "encoding");
      goto done;
    }
  }
  if (!terminated && !*h->data_file) {
    st = nifti_fail(err, LM_EFORMAT, "the header does not end with an empty line and names "
                    "no 'data file' (truncated file?)");
    goto done;
  }
  st = geometry(h, err);
done:
  free(text);
  free(fs);
  return st;
}

int nrrd_native_dtype(const nrrd_header *h, lm_dtype *out, nifti_err *err)
{
  if (nifti_stype_to_dtype(h->stype, out) != LM_OK)
    return nifti_fail(err, LM_EDTYPE, "field 'type': uint64 has no lumen dtype; pass dtype= "
                      "(e.g. 'int64' or 'float64') to convert");
  return LM_OK;
}
