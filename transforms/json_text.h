/* JSON text for op results (LM_VALUE_JSON) and the small JSON inputs the
 * post-processing ops accept (a label-name table).  Private to transforms/. */
#ifndef LM_JSON_TEXT_H
#define LM_JSON_TEXT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable text buffer.  Appends never fail loudly: on allocation
 * failure the buffer remembers it (oom) and the final check reports it, so
 * writers need not test every append. */
typedef struct jt_buf {
  char *s;
  size_t len, cap;
  bool oom;
} jt_buf;

void jt_init(jt_buf *b);
void jt_free(jt_buf *b);
void jt_raw(jt_buf *b, const char *text);
void jt_char(jt_buf *b, char c);
/* A JSON string literal with the escapes RFC 8259 requires (control
 * characters as \u00XX; other bytes copied, so UTF-8 passes through). */
void jt_string(jt_buf *b, const char *s);
void jt_int(jt_buf *b, int64_t v);
/* A number that reads back to the same double (%.17g, trimmed to the
 * shortest of %.15g/%.16g/%.17g that round-trips); NaN and infinities,
 * which JSON cannot hold, become null. */
void jt_number(jt_buf *b, double v);

/* A label-name table: a flat JSON object {"1": "spleen", ...} whose keys are
 * integer label ids.  Parsed strictly (RFC 8259 strings with escapes; the
 * values must be strings).  On error returns false and writes a message
 * with the byte offset into err. */
typedef struct jt_names {
  int n;
  int64_t *id;
  char **name;
} jt_names;
bool jt_names_parse(const char *text, jt_names *out, char *err, size_t errlen);
void jt_names_free(jt_names *nm);
/* The name of label id, or NULL. */
const char *jt_names_get(const jt_names *nm, int64_t id);

/* The whole file at path as a NUL-terminated string (malloc'ed), or NULL
 * with errno set. */
char *jt_read_file(const char *path);

/* Write len bytes to path through a temporary file in the same folder and
 * a rename, so a failure leaves no partial file.  Returns 0 or an errno. */
int jt_write_file_atomic(const char *path, const char *data, size_t len);

#endif
