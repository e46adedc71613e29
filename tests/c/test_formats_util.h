/* Helpers for the format tests (NRRD, .npy, Preview): a private temporary
 * folder, whole-file reads and writes, and op calls through lm_call. */
#ifndef LM_TEST_FORMATS_UTIL_H
#define LM_TEST_FORMATS_UTIL_H
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lumen.h"

static char tf_dir[256];

static inline void tf_init(void)
{
  snprintf(tf_dir, sizeof tf_dir, "/tmp/lumen-formats-XXXXXX");
  if (!mkdtemp(tf_dir)) {
    perror("mkdtemp");
    exit(1);
  }
}

static inline void tf_cleanup(void)
{
  DIR *d = opendir(tf_dir);
  struct dirent *de;
  char p[512];
  while (d && (de = readdir(d))) {
    if (de->d_name[0] == '.' && (!de->d_name[1] || de->d_name[1] == '.')) continue;
    snprintf(p, sizeof p, "%s/%s", tf_dir, de->d_name);
    unlink(p);
  }
  if (d) closedir(d);
  rmdir(tf_dir);
}

/* Number of entries in the temporary folder (leftover temporaries show). */
static inline int tf_count_files(void)
{
  DIR *d = opendir(tf_dir);
  struct dirent *de;
  int n = 0;
  while (d && (de = readdir(d)))
    if (de->d_name[0] != '.' || (de->d_name[1] && de->d_name[1] != '.')) n++;
  if (d) closedir(d);
  return n;
}

static inline const char *tf_path(char *buf, size_t n, const char *name)
{
  snprintf(buf, n, "%s/%s", tf_dir, name);
  return buf;
}

static inline void tf_write(const char *path, const void *a, size_t na, const void *b, size_t nb)
{
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(1);
  }
  if (na) fwrite(a, 1, na, f);
  if (nb) fwrite(b, 1, nb, f);
  fclose(f);
}

static inline uint8_t *tf_read(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n + 1 : 1);
  *len = fread(buf, 1, n > 0 ? (size_t)n : 0, f);
  buf[*len] = 0;
  fclose(f);
  return buf;
}

/* A source op with a path and an optional dtype. */
static inline int tf_load(lm_engine *e, const char *op, const char *path, const char *dtype,
                   lm_tensor **out, lm_params **res)
{
  lm_params *o;
  lm_params_new(&o);
  lm_params_set_string(o, "path", path);
  if (dtype) lm_params_set_string(o, "dtype", dtype);
  int n = 1;
  *out = NULL;
  int st = lm_call(e, op, NULL, 0, o, out, &n, res);
  lm_params_free(o);
  return st;
}

/* An op on one or two tensors with options o (may be NULL); the output is
 * released, the results kept in *res when res is not NULL. */
static inline int tf_run(lm_engine *e, const char *op, lm_tensor *a, lm_tensor *b, lm_params *o,
                  lm_params **res)
{
  lm_tensor *in[2] = {a, b}, *out[2] = {NULL, NULL};
  int n = 2;
  int st = lm_call(e, op, in, b ? 2 : 1, o, out, &n, res);
  if (st >= 0)
    for (int i = 0; i < n; i++) lm_tensor_release(out[i]);
  return st;
}

#endif
