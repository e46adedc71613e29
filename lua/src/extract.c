/*
** The archive extraction of lumen.extract_archive (archive.c is its Lua
** binding; no Lua here, so the libFuzzer harness tests/fuzz/fuzz_archive.c
** builds it alone): unpack a zip, tar or compressed tar (gzip, bzip2, xz)
** that a client uploaded (the admin API of `lumen serve` takes model
** packages this way), treating its content as hostile.
**
** Refused, with the archive and the entry named: absolute paths, `..`
** components, every kind of link (symbolic and hard: a package needs none,
** and a link is how an archive writes outside its folder), devices, fifos
** and sockets, entries whose data would take the total past max_bytes
** (counted on the decompressed data as it is written, so a zip bomb stops at
** the limit whatever its headers claim), more than max_files entries, and
** two entries with one name.  The entries are written by this file (openat
** with O_NOFOLLOW | O_EXCL under a directory descriptor), not by
** archive_write_disk, so nothing the archive says about owners, modes, times
** or ACLs reaches the disk: files are 0644, folders 0755.
**
** Everything lands in a fresh folder next to the destination (mkdtemp) that
** is renamed to it at the end; on any failure that folder is removed, so the
** destination is either complete or absent.
*/
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "extract.h"

#define MAX_ENTRY_PATH 1024 /* longer names are refused, not truncated */

typedef struct extract {
  const char *archive;   /* the archive's path, for messages */
  int root_fd;           /* the temporary folder everything goes into */
  int64_t max_bytes, max_files;
  int64_t bytes, files, dirs, entries;
  char entry[160];       /* the current entry's name, printable, for messages */
  const char *code;      /* LM_EINVAL or LM_EIO once failed */
  char msg[1024];
} extract;

/* Refuse the archive for what it contains ("archive A: entry E: why"). */
static int refuse(extract *x, const char *fmt, ...)
{
  char why[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  x->code = "LM_EINVAL";
  if (x->entry[0])
    snprintf(x->msg, sizeof x->msg, "archive %s: entry '%s': %s", x->archive, x->entry, why);
  else
    snprintf(x->msg, sizeof x->msg, "archive %s: %s", x->archive, why);
  return -1;
}

/* A failure of the file system while writing the current entry (a name the
** file system cannot hold is the archive's fault: a refusal). */
static int io_fail(extract *x, const char *what)
{
  int err = errno;
  x->code = err == ENAMETOOLONG ? "LM_EINVAL" : "LM_EIO";
  if (x->entry[0])
    snprintf(x->msg, sizeof x->msg, "archive %s: entry '%s': %s: %s", x->archive, x->entry,
             what, strerror(err));
  else
    snprintf(x->msg, sizeof x->msg, "archive %s: %s: %s", x->archive, what, strerror(err));
  return -1;
}

/* The entry's name as messages show it: control bytes become '?' (the name
** comes from the client and ends up in logs), long names are cut. */
static void set_entry_name(extract *x, const char *name)
{
  size_t n = 0;
  for (; name[n] && n + 4 < sizeof x->entry; n++)
    x->entry[n] = ((unsigned char)name[n] < 0x20 || name[n] == 0x7f) ? '?' : name[n];
  if (name[n]) memcpy(x->entry + n, "...", 3), n += 3;
  x->entry[n] = '\0';
}

/* Normalise the entry's path into out: components separated by one '/',
** "." and empty components dropped.  Refuses absolute paths and "..".  An
** entry that names the archive's root ("./") leaves out empty. */
static int normalise_path(extract *x, const char *name, char *out, size_t outsz)
{
  if (name[0] == '/') return refuse(x, "absolute path refused");
  size_t len = strlen(name);
  if (len >= MAX_ENTRY_PATH || len >= outsz)
    return refuse(x, "path longer than %d bytes refused", MAX_ENTRY_PATH);
  size_t o = 0;
  const char *p = name;
  while (*p) {
    const char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == 2 && p[0] == '.' && p[1] == '.') return refuse(x, "'..' component refused");
    if (n > 0 && !(n == 1 && p[0] == '.')) {
      if (o) out[o++] = '/';
      memcpy(out + o, p, n);
      o += n;
    }
    p += n;
    if (*p == '/') p++;
  }
  out[o] = '\0';
  return 0;
}

/* Open (creating as needed) the folder of path's last component under the
** root; *leaf points at that component.  Returns a descriptor, or -1. */
static int open_parent(extract *x, char *path, const char **leaf)
{
  int fd = dup(x->root_fd);
  if (fd < 0) return io_fail(x, "dup");
  char *p = path;
  char *slash;
  while ((slash = strchr(p, '/')) != NULL) {
    *slash = '\0';
    if (mkdirat(fd, p, 0755) != 0 && errno != EEXIST) {
      io_fail(x, "cannot create folder");
      *slash = '/';
      close(fd);
      return -1;
    }
    /* O_NOFOLLOW: a component that exists must be a real folder this
    ** extraction made (no link was ever written, but do not rely on it). */
    int next = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    *slash = '/';
    close(fd);
    if (next < 0) {
      errno = err;
      if (err == ENOTDIR || err == ELOOP) return refuse(x, "a parent of the entry is a file");
      return io_fail(x, "cannot open folder");
    }
    fd = next;
    p = slash + 1;
  }
  *leaf = p;
  return fd;
}

static int make_dir(extract *x, char *path)
{
  const char *leaf;
  int dfd = open_parent(x, path, &leaf);
  if (dfd < 0) return -1;
  int rc = 0;
  if (mkdirat(dfd, leaf, 0755) != 0) {
    struct stat st;
    if (errno != EEXIST) rc = io_fail(x, "cannot create folder");
    else if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
      rc = refuse(x, "a folder and a file of the same name");
  }
  close(dfd);
  if (rc == 0) x->dirs++;
  return rc;
}

static int write_all(int fd, const void *buf, size_t n, int64_t off)
{
  const char *p = buf;
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
    off += w;
  }
  return 0;
}

/* Write the entry's data, counting its extent (offset + size, so a sparse
** entry cannot claim a huge hole) against max_bytes. */
static int write_file(extract *x, struct archive *a, struct archive_entry *e, char *path)
{
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > x->max_bytes - x->bytes)
    return refuse(x, "%lld bytes, over the limit of %lld bytes for the whole archive",
                  (long long)archive_entry_size(e), (long long)x->max_bytes);
  const char *leaf;
  int dfd = open_parent(x, path, &leaf);
  if (dfd < 0) return -1;
  int fd = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  int err = errno;
  close(dfd);
  if (fd < 0) {
    errno = err;
    if (err == EEXIST) return refuse(x, "the archive holds this name twice");
    return io_fail(x, "cannot create file");
  }
  int64_t extent = 0;
  for (;;) {
    const void *buf;
    size_t size;
    la_int64_t off;
    int r = archive_read_data_block(a, &buf, &size, &off);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      close(fd);
      return refuse(x, "cannot read its data: %s", archive_error_string(a));
    }
    if (off < 0 || (int64_t)size > x->max_bytes - x->bytes - off) {
      close(fd);
      return refuse(x, "data past the limit of %lld bytes for the whole archive",
                    (long long)x->max_bytes);
    }
    if (size > 0 && write_all(fd, buf, size, off) != 0) {
      io_fail(x, "cannot write");
      close(fd);
      return -1;
    }
    if (off + (int64_t)size > extent) extent = off + (int64_t)size;
  }
  /* A sparse entry that ends in a hole: give the file its full length. */
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > extent) {
    extent = archive_entry_size(e);
    if (ftruncate(fd, (off_t)extent) != 0) {
      io_fail(x, "cannot extend");
      close(fd);
      return -1;
    }
  }
  if (close(fd) != 0) return io_fail(x, "cannot write");
  x->bytes += extent;
  x->files++;
  return 0;
}

static const char *kind_of(mode_t type)
{
  switch (type) {
  case AE_IFLNK: return "symbolic link";
  case AE_IFCHR: return "character device";
  case AE_IFBLK: return "block device";
  case AE_IFIFO: return "fifo";
  case AE_IFSOCK: return "socket";
  default: return "entry of unknown type";
  }
}

static int extract_entry(extract *x, struct archive *a, struct archive_entry *e)
{
  const char *name = archive_entry_pathname(e);
  if (!name) name = archive_entry_pathname_utf8(e);
  if (!name) return refuse(x, "an entry whose name cannot be read");
  set_entry_name(x, name);
  if (++x->entries > x->max_files)
    return refuse(x, "more than %lld entries", (long long)x->max_files);
  if (archive_entry_hardlink(e)) return refuse(x, "hard link refused");
  mode_t type = archive_entry_filetype(e);
  if (archive_entry_symlink(e) || (type != AE_IFREG && type != AE_IFDIR))
    return refuse(x, "%s refused (only files and folders are extracted)", kind_of(type));
  char path[MAX_ENTRY_PATH + 1];
  if (normalise_path(x, name, path, sizeof path) != 0) return -1;
  if (!path[0]) {
    if (type == AE_IFDIR) return 0; /* "./": the root itself */
    return refuse(x, "a file without a name");
  }
  return type == AE_IFDIR ? make_dir(x, path) : write_file(x, a, e, path);
}

static int extract_all(extract *x, const char *path)
{
  struct archive *a = archive_read_new();
  if (!a) {
    errno = ENOMEM;
    return io_fail(x, "archive_read_new");
  }
  /* Only the formats a model package comes in, and filters through the
  ** libraries (never _all, which may run external programs). */
  archive_read_support_format_zip(a);
  archive_read_support_format_tar(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_bzip2(a);
  archive_read_support_filter_xz(a);
  int rc = 0;
  /* Opened here so that a file that cannot be read (an I/O failure) is told
  ** apart from one libarchive does not recognise (a refusal). */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    rc = io_fail(x, "cannot open");
  } else if (!S_ISREG(st.st_mode)) {
    rc = refuse(x, "not a regular file");
  } else if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
    rc = refuse(x, "not a zip or tar archive: %s", archive_error_string(a));
  } else {
    for (;;) {
      struct archive_entry *e;
      int r = archive_read_next_header(a, &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        rc = refuse(x, "%s%s", x->entries ? "damaged after the entries read: "
                    : "not a zip or tar archive, or a damaged one: ", archive_error_string(a));
        break;
      }
      if ((rc = extract_entry(x, a, e)) != 0) break;
      x->entry[0] = '\0';
    }
    if (rc == 0 && x->entries == 0) rc = refuse(x, "the archive is empty");
  }
  archive_read_free(a);
  if (fd >= 0) close(fd);
  return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st, (void)flag, (void)ftw;
  /* Keep going past one failure so that as much as possible goes; the
  ** caller sees the failure through the root, which then still exists. */
  remove(path);
  return 0;
}

int lm_remove_tree(const char *path)
{
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
  /* FTW_PHYS: a symbolic link inside is removed, never followed; FTW_MOUNT:
  ** never cross into another file system mounted below. */
  if (nftw(path, remove_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0) return -1;
  if (lstat(path, &st) == 0) {
    errno = ENOTEMPTY;
    return -1;
  }
  return 0;
}

int lm_extract_archive(const char *path, const char *dest, int64_t max_bytes, int64_t max_files,
                       lm_extract_stats *stats, char *msg, size_t msglen, const char **code)
{
  extract x;
  memset(&x, 0, sizeof x);
  x.archive = path;
  x.root_fd = -1;
  x.max_bytes = max_bytes < 0 ? 0 : max_bytes;
  x.max_files = max_files < 0 ? 0 : max_files;
  if (stats) memset(stats, 0, sizeof *stats);

  size_t dlen = strlen(dest);
  while (dlen > 1 && dest[dlen - 1] == '/') dlen--;
  /* The temporary folder sits beside dest (same file system, so the final
  ** rename is atomic) and is hidden: ".NAME.extract-XXXXXX". */
  size_t base = 0;
  for (size_t i = 0; i < dlen; i++)
    if (dest[i] == '/') base = i + 1;
  size_t tlen = dlen + sizeof ".extract-XXXXXX" + 1;
  char *tmp = malloc(tlen), *final = malloc(dlen + 1);
  int rc = 0;
  struct stat st;
  if (!tmp || !final) {
    errno = ENOMEM;
    rc = io_fail(&x, "out of memory");
  } else if (dlen == 0 || base == dlen) {
    x.code = "LM_EINVAL";
    snprintf(x.msg, sizeof x.msg, "archive %s: no destination folder name in '%s'", path, dest);
    rc = -1;
  } else {
    snprintf(tmp, tlen, "%.*s.%.*s.extract-XXXXXX", (int)base, dest, (int)(dlen - base), dest + base);
    memcpy(final, dest, dlen);
    final[dlen] = '\0';
    if (lstat(final, &st) == 0) {
      x.code = "LM_EINVAL";
      snprintf(x.msg, sizeof x.msg, "archive %s: destination %s already exists", path, final);
      rc = -1;
    } else if (!mkdtemp(tmp)) {
      x.code = "LM_EIO";
      snprintf(x.msg, sizeof x.msg, "archive %s: cannot create a folder next to %s: %s", path,
               final, strerror(errno));
      rc = -1;
      tmp[0] = '\0'; /* nothing to remove */
    } else {
      x.root_fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      rc = x.root_fd < 0 ? io_fail(&x, "cannot open the temporary folder") : extract_all(&x, path);
      if (x.root_fd >= 0) close(x.root_fd);
      x.entry[0] = '\0';
      /* mkdtemp made it 0700 (nobody else could look in while it filled). */
      if (rc == 0 && chmod(tmp, 0755) != 0) rc = io_fail(&x, "chmod");
      if (rc == 0 && rename(tmp, final) != 0) {
        int err = errno;
        x.code = err == EEXIST || err == ENOTEMPTY || err == ENOTDIR ? "LM_EINVAL" : "LM_EIO";
        snprintf(x.msg, sizeof x.msg, "archive %s: cannot move into %s: %s", path, final,
                 strerror(err));
        rc = -1;
      }
      if (rc != 0) lm_remove_tree(tmp);
    }
  }
  free(tmp);
  free(final);
  if (rc != 0) {
    if (msg && msglen) snprintf(msg, msglen, "%s", x.msg);
    if (code) *code = x.code;
    return -1;
  }
  if (stats) {
    stats->files = x.files;
    stats->dirs = x.dirs;
    stats->bytes = x.bytes;
  }
  return 0;
}
