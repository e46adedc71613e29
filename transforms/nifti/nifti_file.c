/* File access for NIfTI: which files make an image (.nii, .hdr/.img pairs,
 * gzip variants), whole-file reads, and atomic writes (temporary name in the
 * same folder, renamed when complete, removed on any failure). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../image_file.h"
#include "nifti_file.h"

static bool exists(const char *p)
{
  struct stat sb;
  return stat(p, &sb) == 0;
}

/* base (without the .hdr/.img[.gz] suffix) + ext, trying the .gz variant
 * (or the plain one) when the preferred one does not exist. */
static void pair_name(char *out, size_t n, const char *base, size_t blen,
                      const char *ext, bool gz)
{
  snprintf(out, n, "%.*s%s%s", (int)blen, base, ext, gz ? ".gz" : "");
  if (exists(out)) return;
  char alt[NIFTI_PATH_MAX];
  snprintf(alt, sizeof alt, "%.*s%s%s", (int)blen, base, ext, gz ? "" : ".gz");
  if (exists(alt)) snprintf(out, n, "%s", alt);
}

int nifti_resolve_paths(const char *path, nifti_paths *p, nifti_err *err)
{
  memset(p, 0, sizeof *p);
  if (!path || !*path) return nifti_fail(err, LM_EINVAL, "empty path");
  if (strlen(path) >= NIFTI_PATH_MAX - 8)
    return nifti_fail(err, LM_EINVAL, "path too long");
  bool gz = image_path_ends_with(path, ".gz");
  size_t len = strlen(path) - (gz ? 3 : 0);
  const char *tail = path + len - 4;
  if (len >= 4 && (strncasecmp(tail, ".hdr", 4) == 0 || strncasecmp(tail, ".img", 4) == 0)) {
    p->pair = true;
    pair_name(p->header, sizeof p->header, path, len - 4, ".hdr", gz);
    pair_name(p->data, sizeof p->data, path, len - 4, ".img", gz);
  } else {
    snprintf(p->header, sizeof p->header, "%s", path);
    snprintf(p->data, sizeof p->data, "%s", path);
  }
  return LM_OK;
}

static int errno_status(int e)
{
  switch (e) {
  case ENOENT: case ENOTDIR: return LM_ENOENT;
  case ENOMEM: return LM_ENOMEM;
  default: return LM_EIO;
  }
}

int nifti_open_read(const char *path, int *fd, uint64_t *size, nifti_err *err)
{
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0) return nifti_fail(err, errno_status(errno), "cannot open: %s", strerror(errno));
  struct stat sb;
  if (fstat(f, &sb) != 0) {
    int e = errno;
    close(f);
    return nifti_fail(err, LM_EIO, "cannot stat: %s", strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(f);
    return nifti_fail(err, LM_EIO, "not a regular file");
  }
  *fd = f;
  *size = (uint64_t)sb.st_size;
  return LM_OK;
}

int nifti_pread_exact(int fd, uint64_t off, void *buf, size_t n, nifti_err *err)
{
  uint8_t *p = buf;
  while (n > 0) {
    size_t step = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
    ssize_t r = pread(fd, p, step, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return nifti_fail(err, LM_EIO, "read failed: %s", strerror(errno));
    }
    if (r == 0) return nifti_fail(err, LM_EIO, "unexpected end of file at byte %llu",
                                  (unsigned long long)off);
    p += r;
    off += (uint64_t)r;
    n -= (size_t)r;
  }
  return LM_OK;
}

/* --- atomic writes ------------------------------------------------------ */

int nifti_atomic_begin(nifti_atomic *a, const char *path, nifti_err *err)
{
  memset(a, 0, sizeof *a);
  a->fd = -1;
  if (!path || !*path) return nifti_fail(err, LM_EINVAL, "empty path");
  if (strlen(path) >= NIFTI_PATH_MAX - 32) return nifti_fail(err, LM_EINVAL, "path too long");
  snprintf(a->final, sizeof a->final, "%s", path);
  const char *slash = strrchr(path, '/');
  size_t dlen = slash ? (size_t)(slash - path + 1) : 0;
  const char *base = slash ? slash + 1 : path;
  if (!*base) return nifti_fail(err, LM_EINVAL, "path names a folder");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  unsigned seed = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16) ^ (unsigned)(uintptr_t)a;
  for (int attempt = 0; attempt < 100; attempt++) {
    seed = seed * 1103515245u + 12345u;
    snprintf(a->tmp, sizeof a->tmp, "%.*s.%s.tmp%08x", (int)dlen, path, base, seed);
    /* 0666 so the final file gets the umask's permissions, as fopen gives. */
    int fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      a->fd = fd;
      return LM_OK;
    }
    if (errno != EEXIST)
      return nifti_fail(err, errno_status(errno), "cannot create %s: %s", a->tmp,
                        strerror(errno));
  }
  return nifti_fail(err, LM_EIO, "cannot find a free temporary name beside the output");
}

int nifti_atomic_writev(nifti_atomic *a, const struct iovec *iov, int n, nifti_err *err)
{
  struct iovec local[64];
  while (n > 0) {
    int k = n < 64 ? n : 64;
    memcpy(local, iov, (size_t)k * sizeof *iov);
    int i = 0;
    while (i < k) {
      ssize_t w = writev(a->fd, local + i, k - i);
      if (w < 0) {
        if (errno == EINTR) continue;
        return nifti_fail(err, LM_EIO, "write failed: %s", strerror(errno));
      }
      size_t left = (size_t)w;
      while (i < k && left >= local[i].iov_len) {
        left -= local[i].iov_len;
        i++;
      }
      if (i < k) {
        local[i].iov_base = (uint8_t *)local[i].iov_base + left;
        local[i].iov_len -= left;
      }
    }
    iov += k;
    n -= k;
  }
  return LM_OK;
}

int nifti_atomic_commit(nifti_atomic *a, nifti_err *err)
{
  int fd = a->fd;
  a->fd = -1;
  if (close(fd) != 0) {
    int e = errno;
    unlink(a->tmp);
    return nifti_fail(err, LM_EIO, "write failed: %s", strerror(e));
  }
  if (rename(a->tmp, a->final) != 0) {
    int e = errno;
    unlink(a->tmp);
    return nifti_fail(err, LM_EIO, "cannot rename the temporary file into place: %s",
                      strerror(e));
  }
  return LM_OK;
}

void nifti_atomic_abort(nifti_atomic *a)
{
  if (a->fd >= 0) {
    close(a->fd);
    a->fd = -1;
    unlink(a->tmp);
  }
}

int nifti_atomic_write(const char *path, const struct iovec *iov, int n, nifti_err *err)
{
  nifti_atomic a;
  int st = nifti_atomic_begin(&a, path, err);
  if (st >= 0) st = nifti_atomic_writev(&a, iov, n, err);
  if (st >= 0) st = nifti_atomic_commit(&a, err);
  nifti_atomic_abort(&a); /* after a failed begin or write; no-op after commit */
  return st;
}
