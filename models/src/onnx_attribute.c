/* ONNX AttributeProto onto a graph node: every kind lumen's IR holds
 * (float, int, string, tensor, floats, ints, strings), the type inferred
 * from the field that is set when old writers leave it out, and references
 * to the attributes of a function's caller (ref_attr_name).  Subgraph,
 * sparse and type attributes are refused with a message. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

enum {
  A_FLOAT = 1, A_INT = 2, A_STRING = 3, A_TENSOR = 4, A_GRAPH = 5, A_FLOATS = 6, A_INTS = 7,
  A_STRINGS = 8, A_TENSORS = 9, A_GRAPHS = 10, A_SPARSE_TENSOR = 11, A_SPARSE_TENSORS = 12,
  A_TYPE_PROTO = 13, A_TYPE_PROTOS = 14
};

/* The attribute named name among the AttributeProtos (field `field`) of a
** message, or NULL. */
static const uint8_t *find_attribute(const uint8_t *msg, size_t msg_len, uint32_t field,
                                     const uint8_t *name, size_t name_len, size_t *len)
{
  pb_cursor c = pb_cursor_of(msg, msg_len);
  pb_field f;
  while (pb_next(&c, &f, &(const char *){NULL}) > 0) {
    if (f.num != field || f.wire != PB_LEN) continue;
    pb_cursor a = pb_cursor_of(f.data, f.len);
    pb_field af;
    while (pb_next(&a, &af, &(const char *){NULL}) > 0)
      if (af.num == 1 && af.wire == PB_LEN && af.len == name_len && memcmp(af.data, name, name_len) == 0) {
        *len = f.len;
        return f.data;
      }
  }
  return NULL;
}

int onnx_read_attribute(reader *r, const onnx_scope *sc, int node, int index, const uint8_t *buf,
                          size_t len, const uint8_t *as_name, size_t as_len)
{
  const uint8_t *name = NULL, *s = NULL, *t = NULL, *ref = NULL;
  size_t name_len = 0, s_len = 0, t_len = 0, ref_len = 0;
  uint64_t type = 0, i = 0;
  uint32_t fbits = 0;
  bool has[24] = {false};
  int64_t nfloats = 0, nints = 0, nstrings = 0;
  pb_cursor c = pb_cursor_of(buf, len);
  pb_field f;
  int k;
  /* The name first, so that every later message can say which attribute. */
  while ((k = onnx_next(r, &c, &f, NULL, 0, NULL)) > 0) {
    if (f.num == 1 && f.wire == PB_LEN) name = f.data, name_len = f.len;
    if (f.num == 21 && f.wire == PB_LEN) ref = f.data, ref_len = f.len;
  }
  if (k < 0) return LM_EFORMAT;
  if (!name || name_len == 0) return onnx_fail(r, LM_EFORMAT, "attribute %d: no name", index);
  if (as_name) name = as_name, name_len = as_len;
  char shown_name[64];
  size_t mark = onnx_ctx_push(r, "attribute '%s'", onnx_shown(shown_name, sizeof shown_name, name, name_len));
  int st = LM_OK;
  if (ref) {
    /* Inside a function: the caller's attribute of that name, else the
     * function's default (FunctionProto.attribute_proto), else none. */
    const uint8_t *src;
    size_t src_len;
    if (!sc) {
      st = onnx_fail(r, LM_EFORMAT, "ref_attr_name outside a function");
    } else if ((src = find_attribute(sc->call, sc->call_len, 5, ref, ref_len, &src_len))) {
      st = onnx_read_attribute(r, sc->parent, node, index, src, src_len, name, name_len);
    } else if ((src = find_attribute(sc->fn->buf, sc->fn->len, 11, ref, ref_len, &src_len))) {
      st = onnx_read_attribute(r, NULL, node, index, src, src_len, name, name_len);
    }
    onnx_ctx_pop(r, mark);
    return st;
  }
  c = pb_cursor_of(buf, len);
  while ((k = onnx_next(r, &c, &f, NULL, 0, NULL)) > 0) {
    if (f.num < sizeof has) has[f.num] = true;
    switch (f.num) {
    case 20: st = onnx_want(r, &f, PB_VARINT, "type"); type = f.v; break;
    case 2: st = onnx_want(r, &f, PB_I32, "f"); fbits = (uint32_t)f.v; break;
    case 3: st = onnx_want(r, &f, PB_VARINT, "i"); i = f.v; break;
    case 4: st = onnx_want(r, &f, PB_LEN, "s"); s = f.data, s_len = f.len; break;
    case 5: st = onnx_want(r, &f, PB_LEN, "t"); t = f.data, t_len = f.len; break;
    case 7:
      if (f.wire == PB_I32) nfloats++;
      else if (f.wire == PB_LEN && f.len % 4 == 0) nfloats += (int64_t)(f.len / 4);
      else st = onnx_fail(r, LM_EFORMAT, "floats: wire type %d, length %zu", f.wire, f.len);
      break;
    case 8:
      if (f.wire == PB_VARINT) {
        nints++;
      } else if (f.wire == PB_LEN) {
        const char *why = "malformed";
        int64_t n = pb_count_varints(f.data, f.len, &why);
        if (n < 0) st = onnx_fail(r, LM_EFORMAT, "ints: %s", why);
        nints += n;
      } else {
        st = onnx_fail(r, LM_EFORMAT, "ints: wire type %d", f.wire);
      }
      break;
    case 9: st = onnx_want(r, &f, PB_LEN, "strings"); nstrings++; break;
    default: break;
    }
    if (st < 0) goto out;
  }
  if (k < 0) {
    st = LM_EFORMAT;
    goto out;
  }
  if (type == 0) {
    /* Old writers leave `type` out: the field that is set says it. */
    type = has[2] ? A_FLOAT : has[3] ? A_INT : has[4] ? A_STRING : has[5] ? A_TENSOR
         : has[6] ? A_GRAPH : has[7] ? A_FLOATS : has[8] ? A_INTS : has[9] ? A_STRINGS
         : has[10] ? A_TENSORS : has[11] ? A_GRAPHS : has[22] ? A_SPARSE_TENSOR : 0;
    if (type == 0) {
      st = onnx_fail(r, LM_EFORMAT, "no type and no value");
      goto out;
    }
  }
  if (nfloats > INT_MAX || nints > INT_MAX || nstrings > INT_MAX) {
    st = onnx_fail(r, LM_EFORMAT, "too many values");
    goto out;
  }
  lm_graph *g = r->g;
  lm_gattr *a;
  const char *aname = onnx_scratch_str(r, name, name_len);
  if (!aname) {
    st = LM_ENOMEM;
    goto out;
  }
  switch (type) {
  case A_FLOAT: {
    float x;
    memcpy(&x, &fbits, 4);
    st = lm_graph_attr_set_float(g, node, aname, x);
    break;
  }
  case A_INT:
    st = lm_graph_attr_set_int(g, node, aname, (int64_t)i);
    break;
  case A_STRING:
    if (!(a = lm_graph_add_attr(g, node, aname, LM_ATTR_STRING)) ||
        !(a->s = lm_graph_strdup(g, (const char *)(s ? s : (const uint8_t *)""), s_len)))
      st = LM_ENOMEM;
    break;
  case A_TENSOR: {
    if (!t) {
      st = onnx_fail(r, LM_EFORMAT, "type TENSOR but no t");
      break;
    }
    tensor_info ti;
    size_t m2 = onnx_ctx_push(r, "t");
    st = onnx_read_tensor(r, t, t_len, &ti);
    onnx_ctx_pop(r, m2);
    if (st < 0) break;
    if (!(a = lm_graph_add_attr(g, node, aname, LM_ATTR_TENSOR))) {
      st = LM_ENOMEM;
      break;
    }
    int v = lm_graph_value(g, "");
    if (v < 0 || lm_graph_set_const(g, v, ti.dt, ti.ndim, ti.dims, ti.data, false) < 0) {
      st = LM_ENOMEM;
      break;
    }
    a->tensor = v;
    break;
  }
  case A_FLOATS: case A_INTS: case A_STRINGS: {
    lm_attr_kind kind = type == A_FLOATS ? LM_ATTR_FLOATS : type == A_INTS ? LM_ATTR_INTS
                                                                           : LM_ATTR_STRINGS;
    int64_t n = type == A_FLOATS ? nfloats : type == A_INTS ? nints : nstrings;
    size_t es = type == A_FLOATS ? sizeof(double) : type == A_INTS ? sizeof(int64_t)
                                                                   : sizeof(char *);
    void *arr = lm_graph_alloc(g, es * (size_t)(n > 0 ? n : 1));
    if (!arr || !(a = lm_graph_add_attr(g, node, aname, kind))) {
      st = LM_ENOMEM;
      break;
    }
    a->n = (int)n;
    double *fl = arr;
    int64_t *in = arr;
    const char **sv = arr;
    int64_t at = 0;
    c = pb_cursor_of(buf, len);
    while (pb_next(&c, &f, &(const char *){NULL}) > 0 && st == LM_OK) {
      if (type == A_FLOATS && f.num == 7) {
        if (f.wire == PB_I32) {
          uint32_t b = (uint32_t)f.v;
          float x;
          memcpy(&x, &b, 4);
          fl[at++] = x;
        } else {
          for (size_t o = 0; o + 4 <= f.len; o += 4) {
            uint32_t b = pb_le32(f.data + o);
            float x;
            memcpy(&x, &b, 4);
            fl[at++] = x;
          }
        }
      } else if (type == A_INTS && f.num == 8) {
        if (f.wire == PB_VARINT) {
          in[at++] = (int64_t)f.v;
        } else {
          pb_cursor d = pb_cursor_of(f.data, f.len);
          const char *why = "malformed";
          uint64_t v;
          while (d.p < d.end) {
            if (!pb_read_varint(&d, &v, &why)) {
              st = onnx_fail(r, LM_EFORMAT, "ints: %s", why);
              break;
            }
            in[at++] = (int64_t)v;
          }
        }
      } else if (type == A_STRINGS && f.num == 9) {
        if (!(sv[at++] = lm_graph_strdup(g, (const char *)f.data, f.len))) st = LM_ENOMEM;
      }
    }
    if (type == A_FLOATS) a->floats = fl;
    else if (type == A_INTS) a->ints = in;
    else a->strings = (const char *const *)sv;
    break;
  }
  case A_GRAPH: case A_GRAPHS:
    st = onnx_fail(r, LM_EUNSUPPORTED, "graph attributes (the subgraphs of If, Loop, Scan, ...) are not supported");
    break;
  case A_TENSORS: case A_SPARSE_TENSOR: case A_SPARSE_TENSORS: case A_TYPE_PROTO:
  case A_TYPE_PROTOS:
    st = onnx_fail(r, LM_EUNSUPPORTED, "attribute type %llu is not supported", (unsigned long long)type);
    break;
  default:
    st = onnx_fail(r, LM_EFORMAT, "unknown attribute type %llu", (unsigned long long)type);
    break;
  }
  if (st == LM_ENOMEM && !strstr(g->err, "memory")) st = onnx_fail(r, LM_ENOMEM, "out of memory");
out:
  onnx_ctx_pop(r, mark);
  return st;
}
