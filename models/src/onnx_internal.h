/* Shared by the ONNX reader's files (onnx_reader.c: model, graph, nodes,
 * functions; onnx_tensor.c: TensorProto and external data;
 * onnx_attribute.c: AttributeProto; onnx_common.c: messages and cursor
 * helpers).  Internal to liblumen. */
#ifndef LM_ONNX_INTERNAL_H
#define LM_ONNX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loaders.h"
#include "onnx_wire.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "the ONNX reader supports little-endian hosts only (raw_data is used in place)"
#endif

/* A file mapped read-only, unmapped when the graph is freed
** (onnx_mapped_file_release, registered with lm_graph_keep). */
typedef struct mapped_file {
  void *addr;
  size_t len;
} mapped_file;
void onnx_mapped_file_release(void *ctx);

/* An external-data file already mapped for this model (several tensors
** usually share one). */
typedef struct ext_file {
  struct ext_file *next;
  char *location;
  const uint8_t *data;
  size_t len;
} ext_file;
void onnx_ext_files_free(ext_file *e);

/* A model-local function (ModelProto.functions). */
typedef struct onnx_function {
  const uint8_t *name, *domain, *buf;
  size_t name_len, domain_len, len;
} onnx_function;

typedef struct reader {
  lm_graph *g;
  const char *file;          /* for messages */
  const char *base_dir;      /* external data folder; NULL: refused */
  char ctx[256];             /* path to the field being read */
  char *scratch;             /* NUL-terminated copies of names */
  size_t scratch_cap;
  ext_file *ext;
  int nfunctions;
  onnx_function *functions;
  int ninlined;              /* function calls inlined so far (value prefixes) */
} reader;

/* ---- messages and cursor helpers (onnx_common.c) ------------------------- */

/* Set g->err to "FILE: CONTEXT: message" and return status. */
int onnx_fail(reader *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Append a part to the context path; returns the mark onnx_ctx_pop restores. */
size_t onnx_ctx_push(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void onnx_ctx_pop(reader *r, size_t mark);
/* A printable, bounded copy of a protobuf string for messages. */
const char *onnx_shown(char *buf, size_t cap, const uint8_t *s, size_t n);
/* pb_next with a failure turned into a message (names[num] labels fields,
** counts[num] their occurrence when given). */
int onnx_next(reader *r, pb_cursor *c, pb_field *f, const char *const *names, int nnames,
              int *counts);
/* LM_OK when f has the wire type its declaration implies, else an error. */
int onnx_want(reader *r, const pb_field *f, int wire, const char *what);
/* Scratch memory for n + 1 bytes, valid until the next scratch call. */
char *onnx_scratch(reader *r, size_t n);
/* A NUL-terminated copy of s in scratch memory. */
const char *onnx_scratch_str(reader *r, const uint8_t *s, size_t n);
bool onnx_str_is(const uint8_t *s, size_t n, const char *lit);
/* "" or "ai.onnx". */
bool onnx_default_domain(const uint8_t *s, size_t n);

/* ---- TensorProto (onnx_tensor.c) ----------------------------------------- */

enum {
  T_DIMS = 1, T_DATA_TYPE = 2, T_SEGMENT = 3, T_FLOAT = 4, T_INT32 = 5, T_STRING = 6,
  T_INT64 = 7, T_NAME = 8, T_RAW = 9, T_DOUBLE = 10, T_UINT64 = 11, T_EXTERNAL = 13,
  T_LOCATION = 14, T_NFIELDS = 15
};

typedef struct tensor_info {
  const uint8_t *name;
  size_t name_len;
  lm_dtype dt;
  int ndim;
  int64_t dims[LM_MAX_DIMS];
  const void *data;   /* into the buffer (raw_data, external) or the arena */
  size_t nbytes;
} tensor_info;

/* Parse a TensorProto; the data ends in t->data (zero-copy for raw_data
** and external data, arena memory for typed fields). */
int onnx_read_tensor(reader *r, const uint8_t *buf, size_t len, tensor_info *t);

/* ---- model-local functions (onnx_reader.c) -------------------------------- */

/* The body of a function being inlined: its formal inputs and outputs are
** bound to the caller's values; its other values get a prefix unique to the
** call ("Fn#3/"); its attributes that refer to the caller's (ref_attr_name)
** take the caller's value or the function's default.  NULL scope: the main
** graph. */
typedef struct onnx_scope {
  const struct onnx_scope *parent;
  const onnx_function *fn;
  char prefix[96];
  int depth;
  int nin, nout;                 /* formal inputs and outputs */
  const uint8_t **in_name, **out_name;
  size_t *in_len, *out_len;
  int *in_value, *out_value;     /* the caller's values (-1: left out) */
  const uint8_t *call;           /* the calling NodeProto */
  size_t call_len;
} onnx_scope;

/* ---- AttributeProto (onnx_attribute.c) ------------------------------------ */

/* One AttributeProto onto node `node` of the graph.  Inside a function (sc
** not NULL) a reference (ref_attr_name) takes the caller's attribute, else
** the function's default, else nothing.  as_name (if not NULL) renames the
** attribute: a caller's attribute or a default standing in for a reference. */
int onnx_read_attribute(reader *r, const onnx_scope *sc, int node, int index, const uint8_t *buf,
                        size_t len, const uint8_t *as_name, size_t as_len);

#endif
