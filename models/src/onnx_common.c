/* The ONNX reader's messages and cursor helpers (onnx_internal.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

int onnx_fail(reader *r, int status, const char *fmt, ...)
{
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (r->ctx[0])
    return lm_graph_error(r->g, status, "%s: %s: %s", r->file, r->ctx, msg);
  return lm_graph_error(r->g, status, "%s: %s", r->file, msg);
}

/* Append "part" to the context path; returns the mark to restore. */
size_t onnx_ctx_push(reader *r, const char *fmt, ...)
{
  size_t mark = strlen(r->ctx);
  size_t at = mark;
  if (at && at + 2 < sizeof r->ctx) {
    memcpy(r->ctx + at, ": ", 3);
    at += 2;
  }
  if (at < sizeof r->ctx) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->ctx + at, sizeof r->ctx - at, fmt, ap);
    va_end(ap);
  }
  return mark;
}

void onnx_ctx_pop(reader *r, size_t mark)
{
  r->ctx[mark] = 0;
}

const char *onnx_shown(char *buf, size_t cap, const uint8_t *s, size_t n)
{
  size_t k = 0;
  for (size_t i = 0; i < n && k + 4 < cap; i++) buf[k++] = s[i] >= 32 && s[i] < 127 ? (char)s[i] : '?';
  if (k + 4 >= cap && n > k) {
    memcpy(buf + k, "...", 3);
    k += 3;
  }
  buf[k] = 0;
  return buf;
}

/* pb_next with the failure turned into a message.  names[num] (if given)
** labels the field for the message, with its occurrence index when counts
** tracks them: "node 12: truncated ...". */
int onnx_next(reader *r, pb_cursor *c, pb_field *f, const char *const *names, int nnames,
                int *counts)
{
  const char *why = "malformed";
  f->num = 0;
  int k = pb_next(c, f, &why);
  if (k >= 0) {
    if (k > 0 && counts && f->num < (uint32_t)nnames) counts[f->num]++;
    return k;
  }
  if (names && f->num > 0 && f->num < (uint32_t)nnames && names[f->num]) {
    if (counts)
      onnx_fail(r, LM_EFORMAT, "%s %d: %s", names[f->num], counts[f->num], why);
    else
      onnx_fail(r, LM_EFORMAT, "%s: %s", names[f->num], why);
  } else {
    onnx_fail(r, LM_EFORMAT, "%s", why);
  }
  return -1;
}

/* The field has the wire type its declaration implies, or an error. */
int onnx_want(reader *r, const pb_field *f, int wire, const char *what)
{
  if (f->wire == wire) return LM_OK;
  return onnx_fail(r, LM_EFORMAT, "%s: wire type %d where %d was expected", what, f->wire, wire);
}

/* A NUL-terminated copy of s in scratch memory (valid until the next call). */
char *onnx_scratch(reader *r, size_t n)
{
  if (n + 1 > r->scratch_cap) {
    size_t cap = n + 1 > 256 ? n + 1 : 256;
    char *p = realloc(r->scratch, cap);
    if (!p) {
      onnx_fail(r, LM_ENOMEM, "out of memory");
      return NULL;
    }
    r->scratch = p;
    r->scratch_cap = cap;
  }
  return r->scratch;
}

const char *onnx_scratch_str(reader *r, const uint8_t *s, size_t n)
{
  char *p = onnx_scratch(r, n);
  if (!p) return NULL;
  if (n) memcpy(p, s, n);
  p[n] = 0;
  return p;
}

bool onnx_str_is(const uint8_t *s, size_t n, const char *lit)
{
  return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

bool onnx_default_domain(const uint8_t *s, size_t n)
{
  return n == 0 || onnx_str_is(s, n, "ai.onnx");
}
