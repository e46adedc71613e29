/* Files behind LoadNifti / SaveNifti (see nifti_file.c). */
#ifndef LM_NIFTI_FILE_H
#define LM_NIFTI_FILE_H
#include <sys/uio.h>

#include "nifti_format.h"

#define NIFTI_PATH_MAX 4096

typedef struct nifti_paths {
  bool pair;                   /* .hdr/.img */
  char header[NIFTI_PATH_MAX]; /* file holding the header */
  char data[NIFTI_PATH_MAX];   /* file holding the voxels (= header for .nii) */
} nifti_paths;

/* .nii[.gz] and anything else: one file; .hdr[.gz] or .img[.gz]: the pair,
 * each half with or without .gz (whichever exists, the given form first). */
int nifti_resolve_paths(const char *path, nifti_paths *p, nifti_err *err);

int nifti_open_read(const char *path, int *fd, uint64_t *size, nifti_err *err);
int nifti_pread_exact(int fd, uint64_t off, void *buf, size_t n, nifti_err *err);

/* An output being written under a temporary name beside its final path. */
typedef struct nifti_atomic {
  int fd;
  char final[NIFTI_PATH_MAX];
  char tmp[NIFTI_PATH_MAX];
} nifti_atomic;
int nifti_atomic_begin(nifti_atomic *a, const char *path, nifti_err *err);
int nifti_atomic_writev(nifti_atomic *a, const struct iovec *iov, int n,
                        nifti_err *err);
/* Close and rename into place (the temporary is removed on failure). */
int nifti_atomic_commit(nifti_atomic *a, nifti_err *err);
/* Close and remove the temporary (no-op after commit). */
void nifti_atomic_abort(nifti_atomic *a);
/* One whole output: begin, write iov[0..n), commit; on any failure nothing
 * is left behind.  (Outputs of several files, such as NRRD's .nhdr + data,
 * use the steps above to commit only once every file is written.) */
int nifti_atomic_write(const char *path, const struct iovec *iov, int n, nifti_err *err);

#endif
