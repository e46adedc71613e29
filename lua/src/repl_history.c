/*
** The REPL's history file: one entered line per line of text, newest last,
** in ~/.lumen_history or $LUMEN_HISTORY ("" turns the file off).  Lines are
** appended as they are entered, so a crash loses nothing; at start the file
** is read and, when it has grown past the bound, rewritten with only the
** newest entries (to a temporary name, then renamed).
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <histedit.h>

#include "repl_internal.h"

char *lm_repl_history_path(void) {
  const char *env = getenv("LUMEN_HISTORY");
  if (env != NULL) return env[0] ? strdup(env) : NULL;
  const char *home = getenv("HOME");
  if (home == NULL || home[0] == '\0') return NULL;
  char *path = NULL;
  if (asprintf(&path, "%s/.lumen_history", home) < 0) return NULL;
  return path;
}

/* History may hold paths and names worth keeping private: the file is
** created readable by its owner only, as shells do. */
static FILE *open_private(const char *path, int flags, const char *mode) {
  int fd = open(path, flags | O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return NULL;
  FILE *f = fdopen(fd, mode);
  if (f == NULL) close(fd);
  return f;
}

/* Rewrite path with lines[first..n-1]; a failure leaves the old file. */
static void history_rewrite(const char *path, char **lines, size_t first, size_t n) {
  char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp%ld", path, (long)getpid()) < 0) return;
  FILE *f = open_private(tmp, O_TRUNC, "w");
  int ok = f != NULL;
  for (size_t i = first; ok && i < n; i++) ok = fprintf(f, "%s\n", lines[i]) >= 0;
  if (f != NULL && fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) unlink(tmp);
  free(tmp);
}

int lm_repl_history_load(History *hist, const char *path, int max_entries) {
  HistEvent ev;
  FILE *f = fopen(path, "r");
  if (f == NULL) return errno == ENOENT ? 0 : -1;
  char **lines = NULL, *line = NULL;
  size_t n = 0, cap = 0, linecap = 0;
  ssize_t len;
  int rc = 0;
  while ((len = getline(&line, &linecap, f)) >= 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    if (len == 0) continue;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 256;
      char **p = realloc(lines, ncap * sizeof *p);
      if (p == NULL) { rc = -1; break; }
      lines = p;
      cap = ncap;
    }
    if ((lines[n] = strdup(line)) == NULL) { rc = -1; break; }
    n++;
  }
  free(line);
  fclose(f);
  size_t first = n > (size_t)max_entries ? n - (size_t)max_entries : 0;
  for (size_t i = first; i < n; i++) history(hist, &ev, H_ENTER, lines[i]);
  if (rc == 0 && first > 0) history_rewrite(path, lines, first, n);
  for (size_t i = 0; i < n; i++) free(lines[i]);
  free(lines);
  return rc;
}

int lm_repl_history_add(History *hist, const char *path, const char *line, size_t len) {
  HistEvent ev;
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
  if (lm_repl_blank(line, len)) return 0;
  char *entry = strndup(line, len);
  if (entry == NULL) return -1;
  /* H_SETUNIQUE drops a repeat of the previous entry; keep the file the same. */
  int repeat = history(hist, &ev, H_FIRST) == 0 && strcmp(ev.str, entry) == 0;
  int rc = 0;
  if (!repeat) {
    history(hist, &ev, H_ENTER, entry);
    if (path != NULL) {
      FILE *f = open_private(path, O_APPEND, "a");
      if (f == NULL || fprintf(f, "%s\n", entry) < 0) rc = -1;
      if (f != NULL && fclose(f) != 0) rc = -1;
    }
  }
  free(entry);
  return rc;
}
