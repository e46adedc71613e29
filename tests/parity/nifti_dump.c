/* Parity helper: load or re-save a NIfTI file with lumen (lm_call, no Lua)
 * so tests/parity/test_nifti_parity.py can compare against nibabel.
 *
 *   nifti_dump load IN DTYPE OUT   LoadNifti(IN, {dtype=DTYPE}); writes OUT.npy
 *                                  (the array, Fortran order = the file's) and
 *                                  OUT.affine.npy (4x4 float64)
 *   nifti_dump resave IN OUT       LoadNifti(IN, {dtype='native'}) then
 *                                  SaveNifti(OUT)
 * Failures print "ERROR <status>: <message>" on stderr and exit 3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lumen.h"

static const char *npy_descr(lm_dtype dt)
{
  switch (dt) {
  case LM_U8: return "|u1";
  case LM_I8: return "|i1";
  case LM_I16: return "<i2";
  case LM_U16: return "<u2";
  case LM_I32: return "<i4";
  case LM_U32: return "<u4";
  case LM_I64: return "<i8";
  case LM_F16: return "<f2";
  case LM_F32: return "<f4";
  case LM_F64: return "<f8";
  default: return NULL;
  }
}

/* .npy version 1.0: magic, header length, a dict padded to 64 bytes. */
static int write_npy(const char *path, const char *descr, bool fortran, int nd,
                     const int64_t *shape, const void *data, size_t nbytes)
{
  char dict[512];
  int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': (",
                   descr, fortran ? "True" : "False");
  for (int i = 0; i < nd; i++)
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape[i],
                  i + 1 < nd ? " " : "");
  n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
  int total = 10 + n + 1;
  int pad = (64 - total % 64) % 64;
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  unsigned short hl = (unsigned short)(n + pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fputc(hl & 0xff, f);
  fputc(hl >> 8, f);
  fwrite(dict, 1, (size_t)n, f);
  for (int i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
  size_t w = fwrite(data, 1, nbytes, f);
  return fclose(f) == 0 && w == nbytes ? 0 : -1;
}

static int fail(lm_engine *e, int st)
{
  fprintf(stderr, "ERROR %s: %s\n", lm_status_name(st), lm_errmsg(e));
  return 3;
}

static int load(lm_engine *e, const char *path, const char *dtype, lm_tensor **t)
{
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_string(o, "path", path);
  lm_params_set_string(o, "dtype", dtype);
  int n = 1;
  int st = lm_call(e, "LoadNifti", NULL, 0, o, t, &n, NULL);
  lm_params_free(o);
  return st;
}

int main(int argc, char **argv)
{
  if (argc < 4 || (strcmp(argv[1], "load") == 0 && argc != 5)) {
    fprintf(stderr, "usage: nifti_dump load IN DTYPE OUT | nifti_dump resave IN OUT\n");
    return 2;
  }
  lm_config cfg;
  lm_config_init(&cfg);
  cfg.no_cuda = true;
  lm_engine *e;
  if (lm_engine_new(&cfg, &e) != LM_OK) return fail(NULL, LM_EINTERNAL);
  lm_tensor *t = NULL;
  int rc = 0;
  if (strcmp(argv[1], "load") == 0) {
    int st = load(e, argv[2], argv[3], &t);
    if (st < 0) {
      rc = fail(e, st);
    } else {
      /* The array in the file's order is Fortran order for numpy. */
      lm_tensor *f = t;
      int nd = lm_tensor_ndim(t);
      int order[LM_MAX_DIMS];
      for (int i = 0; i < nd; i++) order[i] = nd - 1 - i;
      const int64_t *str = lm_tensor_strides(t), *sh = lm_tensor_shape(t);
      int64_t expect = 1;
      bool ok = true;
      for (int i = 0; i < nd; i++) {
        if (sh[i] != 1 && str[i] != expect) ok = false;
        expect *= sh[i];
      }
      if (!ok) {
        lm_tensor_new_ordered(e, lm_tensor_dtype(t), nd, sh, order, LM_CPU, &f);
        lm_tensor_copy(f, t);
      }
      char p[4096];
      snprintf(p, sizeof p, "%s.npy", argv[4]);
      if (write_npy(p, npy_descr(lm_tensor_dtype(f)), true, nd, sh, lm_tensor_data(f),
                    lm_tensor_nbytes(f)) != 0)
        rc = 4;
      snprintf(p, sizeof p, "%s.affine.npy", argv[4]);
      int64_t four[2] = {4, 4};
      if (write_npy(p, "<f8", false, 2, four, lm_tensor_affine(t), 16 * sizeof(double)) != 0)
        rc = 4;
      if (f != t) lm_tensor_release(f);
    }
  } else if (strcmp(argv[1], "resave") == 0) {
    int st = load(e, argv[2], "native", &t);
    if (st >= 0) {
      lm_params *o;
      lm_params_new(&o);
      lm_params_set_string(o, "path", argv[3]);
      lm_tensor *out = NULL;
      int n = 1;
      st = lm_call(e, "SaveNifti", &t, 1, o, &out, &n, NULL);
      lm_params_free(o);
      lm_tensor_release(out);
    }
    if (st < 0) rc = fail(e, st);
  } else {
    fprintf(stderr, "unknown command %s\n", argv[1]);
    rc = 2;
  }
  lm_tensor_release(t);
  lm_engine_release(e);
  return rc;
}
