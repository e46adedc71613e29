/*
** extract.h: unpacking uploaded archives safely (extract.c), for
** lumen.extract_archive (archive.c) and the fuzz harness.  No Lua.
*/
#ifndef LM_EXTRACT_H
#define LM_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

typedef struct lm_extract_stats {
  int64_t files;  /* regular files written */
  int64_t dirs;   /* folder entries (folders made for a file's parents not counted) */
  int64_t bytes;  /* bytes of the files, holes of sparse entries included */
} lm_extract_stats;

/* Extract the zip or tar (gzip, bzip2 or xz compressed, or not) at path into
** the folder dest, which must not exist, writing at most max_bytes bytes and
** max_files entries.  Only regular files and folders are extracted; absolute
** paths, '..', links, devices, fifos, sockets and duplicate names refuse the
** whole archive.  The entries go into a fresh folder beside dest that is
** renamed to dest at the end, so on failure nothing is left.
**
** Returns 0 (stats filled when not NULL), or -1 with msg holding
** "archive PATH: entry 'NAME': why" and *code "LM_EINVAL" (the archive is
** refused for its content or format) or "LM_EIO" (a file system failure). */
int lm_extract_archive(const char *path, const char *dest, int64_t max_bytes, int64_t max_files,
                       lm_extract_stats *stats, char *msg, size_t msglen, const char **code);

/* Remove path and everything below it, never following links (a link is
** removed, not its target) nor crossing into other file systems; 0 (also
** when path does not exist), or -1 with errno set. */
int lm_remove_tree(const char *path);

#endif
