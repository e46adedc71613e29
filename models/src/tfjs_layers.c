/* TensorFlow.js loader: Keras layers (channels last) to the channels-first
 * ONNX-style IR.
 *
 * - A Keras tensor [N, d0, d1, d2, C] is the IR value [N, C, d0, d1, d2]
 *   (same spatial order); channel axes of Concatenate, Softmax, BatchNorm
 *   are mapped accordingly.
 * - Conv kernels [k0, k1, k2, in, out] become ONNX [out, in, k0, k1, k2]
 *   (transpose (4, 3, 0, 1, 2)); transposed-conv kernels [k.., out, in]
 *   become ONNX ConvTranspose [in, out, k..] with the same permutation.
 * - padding 'same' with stride 1 becomes explicit pads (TF puts the odd
 *   extra pixel at the end); with larger strides the pads depend on the
 *   input size, so the node says auto_pad SAME_UPPER (TF's rule).
 * - brainchop's convention: a layer whose name ends in "_gn" is followed by
 *   an instance normalisation without affine parameters and epsilon 1e-5
 *   (brainchop's LayerNormInPlace: tf.moments over the spatial axes,
 *   (x - mean) * rsqrt(var + 1e-5)), i.e. ONNX InstanceNormalization with
 *   scale 1 and bias 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfjs_internal.h"

#define MAX_IN 64

typedef struct klayer {
  const char *name, *cls;
  const cJSON *cfg;
} klayer;

/* What a layer produced. */
typedef struct kout {
  int v, rank;
  int64_t channels;
} kout;

static int lfail(tfjs_ctx *c, const klayer *L, int status, const char *what)
{
  return tfjs_fail(c, status, "layer '%s' (%s): %s", L->name, L->cls, what);
}

/* JSON numbers as C integers: absurd values (a garbled file) are clamped to
** +-1e9 (NaN to -1) so the casts are defined; the shape checks against the
** weights then refuse them. */
static double clamp_num(double d)
{
  return d != d ? -1 : d > 1e9 ? 1e9 : d < -1e9 ? -1e9 : d;
}

static const cJSON *cfg_get(const klayer *L, const char *key)
{
  return cJSON_GetObjectItemCaseSensitive(L->cfg, key);
}

static double cfg_num(const klayer *L, const char *key, double def)
{
  const cJSON *j = cfg_get(L, key);
  return cJSON_IsNumber(j) ? clamp_num(j->valuedouble) : def;
}

static bool cfg_bool(const klayer *L, const char *key, bool def)
{
  const cJSON *j = cfg_get(L, key);
  return cJSON_IsBool(j) ? cJSON_IsTrue(j) : def;
}

static const char *cfg_str(const klayer *L, const char *key, const char *def)
{
  const cJSON *j = cfg_get(L, key);
  return cJSON_IsString(j) ? j->valuestring : def;
}

/* An int or a list of n ints (Keras accepts both); def when absent/null. */
static int cfg_ints(tfjs_ctx *c, const klayer *L, const char *key, int n, int64_t def,
                    int64_t *out)
{
  const cJSON *j = cfg_get(L, key);
  if (!j || cJSON_IsNull(j)) {
    for (int i = 0; i < n; i++) out[i] = def;
    return LM_OK;
  }
  if (cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble <= 1e9 &&
      j->valuedouble == floor(j->valuedouble)) {
    for (int i = 0; i < n; i++) out[i] = (int64_t)j->valuedouble;
    return LM_OK;
  }
  if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != n) {
    char msg[128];
    snprintf(msg, sizeof msg, "field '%s' must be an integer or a list of %d", key, n);
    return lfail(c, L, LM_EFORMAT, msg);
  }
  for (int i = 0; i < n; i++) {
    const cJSON *e = cJSON_GetArrayItem(j, i);
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e9 ||
        e->valuedouble != floor(e->valuedouble)) {
      char msg[128];
      snprintf(msg, sizeof msg, "field '%s' entry %d is not a non-negative integer", key, i);
      return lfail(c, L, LM_EFORMAT, msg);
    }
    out[i] = (int64_t)e->valuedouble;
  }
  return LM_OK;
}

/* Keras axis of a channels-last tensor of rank r -> the IR's axis. */
static int map_axis(int axis, int rank)
{
  if (axis < 0) axis += rank;
  if (axis == rank - 1) return 1;
  if (axis == 0) return 0;
  return axis + 1;
}

/* A single Keras axis (int, or a list of one). */
static int cfg_axis(const klayer *L, int def, bool *ok)
{
  const cJSON *j = cfg_get(L, "axis");
  *ok = true;
  if (!j || cJSON_IsNull(j)) return def;
  if (cJSON_IsNumber(j)) return (int)clamp_num(j->valuedouble);
  if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1 && cJSON_IsNumber(j->child))
    return (int)clamp_num(j->child->valuedouble);
  *ok = false;
  return def;
}

/* Names are at most 200 bytes (read_layer), so 300-byte buffers hold
** every suffix used here; the check only keeps a string terminated. */
static char *join(char *buf, size_t n, const char *a, const char *b)
{
  if (snprintf(buf, n, "%s%s", a, b) >= (int)n) buf[n - 1] = 0;
  return buf;
}

static int set_ints(tfjs_ctx *c, int v, const char *attr, const int64_t *x, int n)
{
  return lm_graph_attr_set_ints(c->g, tfjs_producer(c, v), attr, x, n);
}

/* ---- activations --------------------------------------------------------- */

static int unary(tfjs_ctx *c, const char *op, int x, const char *out)
{
  return tfjs_node(c, op, out, &x, 1, out);
}

/* Apply a Keras activation by name to value x; linear returns x itself. */
static int activation(tfjs_ctx *c, const klayer *L, const char *kind, int x, const char *out)
{
  if (!kind || !strcmp(kind, "linear")) return x;
  static const struct { const char *keras, *onnx; } simple[] = {
    {"relu", "Relu"}, {"sigmoid", "Sigmoid"}, {"tanh", "Tanh"}, {"softplus", "Softplus"},
    {"softsign", "Softsign"}, {"exponential", "Exp"}, {"selu", "Selu"},
  };
  for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
    if (!strcmp(kind, simple[i].keras)) return unary(c, simple[i].onnx, x, out);
  int v;
  if (!strcmp(kind, "elu")) {
    if ((v = unary(c, "Elu", x, out)) < 0) return v;
    return lm_graph_attr_set_float(c->g, tfjs_producer(c, v), "alpha", 1.0) < 0 ? LM_ENOMEM : v;
  }
  if (!strcmp(kind, "gelu") || !strcmp(kind, "gelu_new")) {
    /* tfjs 'gelu' is the erf form; 'gelu_new' the tanh approximation. */
    if ((v = unary(c, "Gelu", x, out)) < 0) return v;
    return lm_graph_attr_set_string(c->g, tfjs_producer(c, v), "approximate",
                                    kind[4] ? "tanh" : "none") < 0 ? LM_ENOMEM : v;
  }
  if (!strcmp(kind, "hard_sigmoid")) {
    if ((v = unary(c, "HardSigmoid", x, out)) < 0) return v;
    int n = tfjs_producer(c, v);
    if (lm_graph_attr_set_float(c->g, n, "alpha", 0.2) < 0 ||
        lm_graph_attr_set_float(c->g, n, "beta", 0.5) < 0)
      return LM_ENOMEM;
    return v;
  }
  if (!strcmp(kind, "softmax")) {
    if ((v = unary(c, "Softmax", x, out)) < 0) return v;
    return lm_graph_attr_set_int(c->g, tfjs_producer(c, v), "axis", 1) < 0 ? LM_ENOMEM : v;
  }
  if (!strcmp(kind, "relu6")) {
    int lo = tfjs_const_f32(c, "", 0, NULL, (const float[]){0.0f});
    int hi = tfjs_const_f32(c, "", 0, NULL, (const float[]){6.0f});
    if (lo < 0 || hi < 0) return LM_ENOMEM;
    return tfjs_node(c, "Clip", out, (const int[]){x, lo, hi}, 3, out);
  }
  if (!strcmp(kind, "swish") || !strcmp(kind, "silu")) {
    char nm[300];
    int s = unary(c, "Sigmoid", x, join(nm, sizeof nm, out, "/sigmoid"));
    if (s < 0) return s;
    return tfjs_node(c, "Mul", out, (const int[]){x, s}, 2, out);
  }
  char msg[160];
  snprintf(msg, sizeof msg, "activation '%s' is not supported", kind);
  return lfail(c, L, LM_EUNSUPPORTED, msg);
}

/* ---- convolutions ---------------------------------------------------------- */

static int conv_layer(tfjs_ctx *c, const klayer *L, const tfjs_tensor *x, bool transpose,
                      const char *out, kout *o)
{
  int nsp = x->rank - 2;
  if (nsp < 1 || nsp > 3) return lfail(c, L, LM_EUNSUPPORTED, "input rank must be 3 to 5");
  if (strcmp(cfg_str(L, "data_format", "channels_last"), "channels_last") != 0)
    return lfail(c, L, LM_EUNSUPPORTED, "only data_format channels_last is supported");
  int64_t filters = (int64_t)cfg_num(L, "filters", -1);
  int64_t k[3], s[3], d[3], groups = (int64_t)cfg_num(L, "groups", 1);
  int rc;
  if ((rc = cfg_ints(c, L, "kernel_size", nsp, -1, k)) < 0 ||
      (rc = cfg_ints(c, L, "strides", nsp, 1, s)) < 0 ||
      (rc = cfg_ints(c, L, "dilation_rate", nsp, 1, d)) < 0)
    return rc;
  if (filters < 1 || k[0] < 1 || groups < 1)
    return lfail(c, L, LM_EFORMAT, "fields 'filters' and 'kernel_size' must be positive");
  const tfjs_weight *w = tfjs_weight_find(c, L->name, "kernel");
  if (!w) return lfail(c, L, LM_EFORMAT, "weight 'kernel' is missing from weightsManifest");
  bool shape_ok = w->ndim == nsp + 2 && w->shape[transpose ? nsp : nsp + 1] == filters;
  for (int i = 0; i < nsp && shape_ok; i++) shape_ok = w->shape[i] == k[i];
  if (x->channels > 0 && shape_ok)
    shape_ok = w->shape[transpose ? nsp + 1 : nsp] * (transpose ? 1 : groups) == x->channels;
  if (!shape_ok) return lfail(c, L, LM_EFORMAT, "weight 'kernel' has a shape that does not fit "
                              "kernel_size, filters and the input channels");
  char nm[300];
  int perm[LM_MAX_DIMS] = {nsp + 1, nsp};
  for (int i = 0; i < nsp; i++) perm[2 + i] = i;
  int in[3] = {x->v, tfjs_const_permuted(c, join(nm, sizeof nm, L->name, "/kernel"), w, perm), -1};
  if (in[1] < 0) return in[1];
  int nin = 2;
  if (cfg_bool(L, "use_bias", true)) {
    const tfjs_weight *b = tfjs_weight_find(c, L->name, "bias");
    if (!b || b->ndim != 1 || b->shape[0] != filters)
      return lfail(c, L, LM_EFORMAT, "weight 'bias' is missing or not of shape [filters]");
    if ((in[2] = tfjs_const_f32(c, join(nm, sizeof nm, L->name, "/bias"), 1, b->shape,
                                b->data)) < 0)
      return in[2];
    nin = 3;
  }
  const char *act = cfg_str(L, "activation", "linear");
  bool has_act = strcmp(act, "linear") != 0;
  const char *conv_out = has_act ? join(nm, sizeof nm, out, "/conv") : out;
  int v = tfjs_node(c, transpose ? "ConvTranspose" : "Conv", L->name, in, nin, conv_out);
  if (v < 0) return v;
  const char *padding = cfg_str(L, "padding", "valid");
  bool same = !strcmp(padding, "same");
  if (!same && strcmp(padding, "valid") != 0)
    return lfail(c, L, LM_EUNSUPPORTED, "padding must be 'same' or 'valid'");
  int64_t pads[6] = {0}, opad[3] = {0};
  bool unit_stride = true, auto_same = false;
  for (int i = 0; i < nsp; i++) unit_stride &= s[i] == 1;
  if (!transpose) {
    if (same && unit_stride) {
      for (int i = 0; i < nsp; i++) {
        int64_t total = (k[i] - 1) * d[i];
        pads[i] = total / 2;
        pads[nsp + i] = total - total / 2;
      }
    } else if (same) {
      auto_same = true;   /* the pads depend on the input extent */
    }
  } else {
    int64_t op[3];
    const cJSON *jop = cfg_get(L, "output_padding");
    bool have_op = jop && !cJSON_IsNull(jop);
    if (have_op && (rc = cfg_ints(c, L, "output_padding", nsp, 0, op)) < 0) return rc;
    for (int i = 0; i < nsp; i++) {
      /* Keras' output length is (n-1)*s + keff - T; TF crops floor(T/2)
      ** at the start (SAME rule) and a negative T is zeros at the end. */
      int64_t keff = (k[i] - 1) * d[i] + 1, t;
      if (have_op) t = 2 * (same ? keff / 2 : 0) - op[i];
      else t = same ? keff - s[i] : (keff - s[i] < 0 ? keff - s[i] : 0);
      if (t >= 0) {
        pads[i] = t / 2;
        pads[nsp + i] = t - t / 2;
      } else {
        opad[i] = -t;
      }
    }
    if (set_ints(c, v, "output_padding", opad, nsp) < 0) return LM_ENOMEM;
  }
  int node = tfjs_producer(c, v);
  if (lm_graph_attr_set_ints(c->g, node, "kernel_shape", k, nsp) < 0 ||
      lm_graph_attr_set_ints(c->g, node, "strides", s, nsp) < 0 ||
      lm_graph_attr_set_ints(c->g, node, "dilations", d, nsp) < 0 ||
      lm_graph_attr_set_int(c->g, node, "group", transpose ? 1 : groups) < 0)
    return LM_ENOMEM;
  if (auto_same ? lm_graph_attr_set_string(c->g, node, "auto_pad", "SAME_UPPER") < 0
                : lm_graph_attr_set_ints(c->g, node, "pads", pads, 2 * nsp) < 0)
    return LM_ENOMEM;
  if ((v = activation(c, L, act, v, out)) < 0) return v;
  *o = (kout){v, x->rank, filters};
  return LM_OK;
}

/* ---- normalisations ------------------------------------------------------ */

static int instance_norm(tfjs_ctx *c, const char *name, int x, int64_t channels, double eps,
                         const char *out)
{
  char nm[300];
  int sc = tfjs_const_fill(c, join(nm, sizeof nm, name, "/gn_scale"), channels, 1.0f);
  int b = tfjs_const_fill(c, join(nm, sizeof nm, name, "/gn_bias"), channels, 0.0f);
  if (sc < 0 || b < 0) return sc < 0 ? sc : b;
  int v = tfjs_node(c, "InstanceNormalization", join(nm, sizeof nm, name, "/gn"),
                    (const int[]){x, sc, b}, 3, out);
  if (v < 0) return v;
  return lm_graph_attr_set_float(c->g, tfjs_producer(c, v), "epsilon", eps) < 0 ? LM_ENOMEM : v;
}

/* An optional per-channel parameter: the weight, or a constant fill. */
static int channel_param(tfjs_ctx *c, const klayer *L, const char *param, bool present,
                         int64_t channels, float fill)
{
  char nm[300];
  snprintf(nm, sizeof nm, "%s/%s", L->name, param);
  if (!present) {
    if (channels < 1) return lfail(c, L, LM_EFORMAT, "the channel count is not known");
    return tfjs_const_fill(c, nm, channels, fill);
  }
  const tfjs_weight *w = tfjs_weight_find(c, L->name, param);
  if (!w || w->ndim != 1 || (channels > 0 && w->shape[0] != channels)) {
    char msg[160];
    snprintf(msg, sizeof msg, "weight '%s' is missing or not of shape [channels]", param);
    return lfail(c, L, LM_EFORMAT, msg);
  }
  return tfjs_const_f32(c, nm, 1, w->shape, w->data);
}

static int batch_norm(tfjs_ctx *c, const klayer *L, const tfjs_tensor *x, const char *out,
                      kout *o)
{
  bool ok;
  int axis = cfg_axis(L, -1, &ok);
  if (!ok || map_axis(axis, x->rank) != 1)
    return lfail(c, L, LM_EUNSUPPORTED, "only normalisation over the channel axis is supported");
  const tfjs_weight *mean = tfjs_weight_find(c, L->name, "moving_mean");
  int64_t ch = mean && mean->ndim == 1 ? mean->shape[0] : x->channels;
  int in[5] = {x->v,
               channel_param(c, L, "gamma", cfg_bool(L, "scale", true), ch, 1.0f),
               channel_param(c, L, "beta", cfg_bool(L, "center", true), ch, 0.0f),
               channel_param(c, L, "moving_mean", true, ch, 0.0f),
               channel_param(c, L, "moving_variance", true, ch, 1.0f)};
  for (int i = 1; i < 5; i++)
    if (in[i] < 0) return in[i];
  int v = tfjs_node(c, "BatchNormalization", L->name, in, 5, out);
  if (v < 0) return v;
  if (lm_graph_attr_set_float(c->g, tfjs_producer(c, v), "epsilon",
                              cfg_num(L, "epsilon", 1e-3)) < 0)
    return LM_ENOMEM;
  *o = (kout){v, x->rank, ch};
  return LM_OK;
}

/* Keras LayerNormalization over the channel axis (its default): per voxel
** across channels.  ONNX normalises trailing axes, so the IR goes channels
** last for the node and back. */
static int layer_norm(tfjs_ctx *c, const klayer *L, const tfjs_tensor *x, const char *out,
                      kout *o)
{
  bool ok;
  int axis = cfg_axis(L, -1, &ok);
  if (!ok || map_axis(axis, x->rank) != 1)
    return lfail(c, L, LM_EUNSUPPORTED, "only normalisation over the last (channel) axis is "
                 "supported");
  int r = x->rank;
  int64_t to_last[LM_MAX_DIMS], to_first[LM_MAX_DIMS];
  to_last[0] = to_first[0] = 0;
  for (int i = 1; i < r - 1; i++) to_last[i] = i + 1;
  to_last[r - 1] = 1;
  to_first[1] = r - 1;
  for (int i = 2; i < r; i++) to_first[i] = i - 1;
  char nm[300];
  int t = tfjs_node(c, "Transpose", L->name, &x->v, 1, join(nm, sizeof nm, out, "/nhwc"));
  if (t < 0 || set_ints(c, t, "perm", to_last, r) < 0) return t < 0 ? t : LM_ENOMEM;
  int in[3] = {t, channel_param(c, L, "gamma", cfg_bool(L, "scale", true), x->channels, 1.0f),
               channel_param(c, L, "beta", cfg_bool(L, "center", true), x->channels, 0.0f)};
  if (in[1] < 0 || in[2] < 0) return in[1] < 0 ? in[1] : in[2];
  int n = tfjs_node(c, "LayerNormalization", L->name, in, 3, join(nm, sizeof nm, out, "/ln"));
  if (n < 0) return n;
  int node = tfjs_producer(c, n);
  if (lm_graph_attr_set_int(c->g, node, "axis", -1) < 0 ||
      lm_graph_attr_set_float(c->g, node, "epsilon", cfg_num(L, "epsilon", 1e-3)) < 0)
    return LM_ENOMEM;
  int v = tfjs_node(c, "Transpose", L->name, &n, 1, out);
  if (v < 0 || set_ints(c, v, "perm", to_first, r) < 0) return v < 0 ? v : LM_ENOMEM;
  *o = (kout){v, r, x->channels};
  return LM_OK;
}

/* ---- pooling, resampling, padding ---------------------------------------- */

static int pool_layer(tfjs_ctx *c, const klayer *L, const tfjs_tensor *x, const char *op,
                      const char *out, kout *o)
{
  int nsp = x->rank - 2;
  if (nsp < 1 || nsp > 3) return lfail(c, L, LM_EUNSUPPORTED, "input rank must be 3 to 5");
  int64_t k[3], s[3], pads[6] = {0};
  int rc;
  if ((rc = cfg_ints(c, L, "pool_size", nsp, 2, k)) < 0) return rc;
  if ((rc = cfg_ints(c, L, "strides", nsp, -1, s)) < 0) return rc;
  for (int i = 0; i < nsp; i++)
    if (s[i] < 0) s[i] = k[i];   /* Keras: strides default to pool_size */
  bool same = !strcmp(cfg_str(L, "padding", "valid"), "same");
  bool unit = true;
  for (int i = 0; i < nsp; i++) unit &= s[i] == 1;
  int v = tfjs_node(c, op, L->name, &x->v, 1, out);
  if (v < 0) return v;
  int node = tfjs_producer(c, v);
  if (same && unit)
    for (int i = 0; i < nsp; i++) {
      pads[i] = (k[i] - 1) / 2;
      pads[nsp + i] = (k[i] - 1) - (k[i] - 1) / 2;
    }
  if (lm_graph_attr_set_ints(c->g, node, "kernel_shape", k, nsp) < 0 ||
      lm_graph_attr_set_ints(c->g, node, "strides", s, nsp) < 0 ||
      (same && !unit ? lm_graph_attr_set_string(c->g, node, "auto_pad", "SAME_UPPER")
                     : lm_graph_attr_set_ints(c->g, node, "pads", pads, 2 * nsp)) < 0)
    return LM_ENOMEM;
  /* TF averages over the window's valid part only (ONNX's default
  ** count_include_pad = 0). */
  *o = (kout){v, x->rank, x->channels};
  return LM_OK;
}

static int upsampling(tfjs_ctx *c, const klayer *L, const tfjs_tensor *x, const char *out,
                      kout *o)
{
  int nsp = x->rank - 2;
  if (nsp < 1 || nsp > 3) return lfail(c, L, LM_EUNSUPPORTED, "input rank must be 3 to 5");
  if (strcmp(cfg_str(L, "interpolation", "nearest"), "nearest") != 0)
    return lfail(c, L, LM_EUNSUPPORTED, "only interpolation 'nearest' is supported");
  int64_t size[3];
  int rc = cfg_ints(c, L, "size", nsp, 2, size);
  if (rc < 0) return rc;
  float scales[5] = {1, 1};
  for (int i = 0; i < nsp; i++) scales[2 + i] = (float)size[i];
  char nm[300];
  int64_t n = x->rank;
  int sv = tfjs_const_f32(c, join(nm, sizeof nm, L->name, "/scales"), 1, &n, scales);
  if (sv < 0) return sv;
  /* Repeat each voxel: nearest with asymmetric coordinates and floor. */
  int v = tfjs_node(c, "Resize", L->name, (const int[]){x->v, -1, sv}, 3, out);
  if (v < 0) return v;
  int node = tfjs_producer(c, v);
  if (lm_graph_attr_set_string(c->g, node, "mode", "nearest") < 0 ||
      lm_graph_attr_set_string(c->g, node, "coordinate_transformation_mode", "asymmetric") < 0 ||
      lm_graph_attr_set_string(c->g, node, "nearest_mode", "floor") < 0)
    return LM_ENOMEM;
  *o = (kout){v, x->rank, x->channels};
  return LM_OK;
}

static int zero_padding(tfjs_ctx *c, const klayer *L, const tfjs_tensor *x, const char *out,
                        kout *o)
{
  int nsp = x->rank - 2, r = x->rank;
  int64_t pads[2 * LM_MAX_DIMS] = {0};
  const cJSON *j = cfg_get(L, "padding");
  for (int i = 0; i < nsp; i++) {
    const cJSON *e = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, i) : j;
    const cJSON *a = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 0) : e;
    const cJSON *b = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 1) : e;
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !(a->valuedouble >= 0) ||
        !(b->valuedouble >= 0) || a->valuedouble > 1e9 || b->valuedouble > 1e9)
      return lfail(c, L, LM_EFORMAT, "field 'padding' must be an int, ints or pairs of ints");
    pads[2 + i] = (int64_t)a->valuedouble;
    pads[r + 2 + i] = (int64_t)b->valuedouble;
  }
  char nm[300];
  int pv = tfjs_const_i64(c, join(nm, sizeof nm, L->name, "/pads"), 2 * r, pads);
  if (pv < 0) return pv;
  int v = tfjs_node(c, "Pad", L->name, (const int[]){x->v, pv}, 2, out);
  if (v < 0) return v;
  *o = (kout){v, r, x->channels};
  return LM_OK;
}

/* ---- merges ------------------------------------------------------------ */

static int merge(tfjs_ctx *c, const klayer *L, const tfjs_tensor *const *in, int nin,
                 const char *op, const char *out, kout *o)
{
  if (nin < 2) return lfail(c, L, LM_EFORMAT, "a merge layer needs at least two inputs");
  bool average = !strcmp(op, "Average");
  const char *bin = average ? "Add" : op;
  char nm[300];
  int acc = in[0]->v;
  for (int i = 1; i < nin; i++) {
    bool last = i == nin - 1 && !average;
    if (snprintf(nm, sizeof nm, "%s/%d", out, i) >= (int)sizeof nm) nm[0] = 0;
    acc = tfjs_node(c, bin, L->name, (const int[]){acc, in[i]->v}, 2, last ? out : nm);
    if (acc < 0) return acc;
  }
  if (average) {
    int k = tfjs_const_f32(c, join(nm, sizeof nm, L->name, "/1_over_n"), 0, NULL,
                           (const float[]){1.0f / (float)nin});
    if (k < 0) return k;
    if ((acc = tfjs_node(c, "Mul", L->name, (const int[]){acc, k}, 2, out)) < 0) return acc;
  }
  *o = (kout){acc, in[0]->rank, in[0]->channels};
  return LM_OK;
}

static int concat(tfjs_ctx *c, const klayer *L, const tfjs_tensor *const *in, int nin,
                  const char *out, kout *o)
{
  int r = in[0]->rank;
  int axis = (int)cfg_num(L, "axis", -1);
  if (axis < -r || axis >= r) return lfail(c, L, LM_EFORMAT, "field 'axis' is out of range");
  int iv[MAX_IN];
  int64_t ch = 0;
  for (int i = 0; i < nin; i++) {
    if (in[i]->rank != r) return lfail(c, L, LM_ESHAPE, "inputs differ in rank");
    iv[i] = in[i]->v;
    ch = ch >= 0 && in[i]->channels > 0 ? ch + in[i]->channels : -1;
  }
  int ax = map_axis(axis, r);
  int v = tfjs_node(c, "Concat", L->name, iv, nin, out);
  if (v < 0) return v;
  if (lm_graph_attr_set_int(c->g, tfjs_producer(c, v), "axis", ax) < 0) return LM_ENOMEM;
  *o = (kout){v, r, ax == 1 ? ch : in[0]->channels};
  return LM_OK;
}

/* ---- one layer ------------------------------------------------------------ */

static bool is_class(const klayer *L, const char *const *names)
{
  for (; *names; names++)
    if (!strcmp(L->cls, *names)) return true;
  return false;
}

static int emit_layer(tfjs_ctx *c, const klayer *L, const tfjs_tensor *const *in, int nin,
                      const char *out, kout *o)
{
  static const char *const convs[] = {"Conv1D", "Conv2D", "Conv3D", NULL};
  static const char *const deconvs[] = {"Conv2DTranspose", "Conv3DTranspose", NULL};
  static const char *const identities[] = {"Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", NULL};
  static const char *const maxpools[] = {"MaxPooling1D", "MaxPooling2D", "MaxPooling3D", NULL};
  static const char *const avgpools[] = {"AveragePooling1D", "AveragePooling2D",
                                         "AveragePooling3D", NULL};
  static const char *const ups[] = {"UpSampling1D", "UpSampling2D", "UpSampling3D", NULL};
  static const char *const zpads[] = {"ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", NULL};
  static const struct { const char *cls, *op; } merges[] = {
    {"Add", "Add"}, {"Subtract", "Sub"}, {"Multiply", "Mul"}, {"Maximum", "Max"},
    {"Minimum", "Min"}, {"Average", "Average"}};
  const tfjs_tensor *x = in[0];
  *o = (kout){x->v, x->rank, x->channels};
  if (is_class(L, convs)) return conv_layer(c, L, x, false, out, o);
  if (is_class(L, deconvs)) return conv_layer(c, L, x, true, out, o);
  if (is_class(L, identities)) return LM_OK;   /* inference: the input itself */
  if (is_class(L, maxpools)) return pool_layer(c, L, x, "MaxPool", out, o);
  if (is_class(L, avgpools)) return pool_layer(c, L, x, "AveragePool", out, o);
  if (is_class(L, ups)) return upsampling(c, L, x, out, o);
  if (is_class(L, zpads)) return zero_padding(c, L, x, out, o);
  for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++)
    if (!strcmp(L->cls, merges[i].cls)) return merge(c, L, in, nin, merges[i].op, out, o);
  if (!strcmp(L->cls, "Concatenate")) return concat(c, L, in, nin, out, o);
  if (!strcmp(L->cls, "BatchNormalization")) return batch_norm(c, L, x, out, o);
  if (!strcmp(L->cls, "LayerNormalization")) return layer_norm(c, L, x, out, o);
  int v;
  if (!strcmp(L->cls, "Activation")) {
    v = activation(c, L, cfg_str(L, "activation", "linear"), x->v, out);
  } else if (!strcmp(L->cls, "ReLU")) {
    double maxv = cfg_num(L, "max_value", -1), slope = cfg_num(L, "negative_slope", 0);
    if (cfg_num(L, "threshold", 0) != 0 || (maxv >= 0 && slope != 0))
      return lfail(c, L, LM_EUNSUPPORTED, "threshold, or max_value with negative_slope, is not "
                   "supported");
    if (slope != 0) {
      if ((v = unary(c, "LeakyRelu", x->v, out)) >= 0 &&
          lm_graph_attr_set_float(c->g, tfjs_producer(c, v), "alpha", slope) < 0)
        v = LM_ENOMEM;
    } else if (maxv >= 0) {
      int lo = tfjs_const_f32(c, "", 0, NULL, (const float[]){0.0f});
      int hi = tfjs_const_f32(c, "", 0, NULL, (const float[]){(float)maxv});
      v = lo < 0 || hi < 0 ? LM_ENOMEM : tfjs_node(c, "Clip", L->name, (const int[]){x->v, lo, hi},
                                                  3, out);
    } else {
      v = unary(c, "Relu", x->v, out);
    }
  } else if (!strcmp(L->cls, "ELU") || !strcmp(L->cls, "LeakyReLU")) {
    bool elu = L->cls[0] == 'E';
    double alpha = cfg_num(L, "alpha", cfg_num(L, "negative_slope", elu ? 1.0 : 0.3));
    if ((v = unary(c, elu ? "Elu" : "LeakyRelu", x->v, out)) >= 0 &&
        lm_graph_attr_set_float(c->g, tfjs_producer(c, v), "alpha", alpha) < 0)
      v = LM_ENOMEM;
  } else if (!strcmp(L->cls, "Softmax")) {
    int axis = (int)cfg_num(L, "axis", -1);
    if (axis < -x->rank || axis >= x->rank)
      return lfail(c, L, LM_EFORMAT, "field 'axis' is out of range");
    if ((v = unary(c, "Softmax", x->v, out)) >= 0 &&
        lm_graph_attr_set_int(c->g, tfjs_producer(c, v), "axis", map_axis(axis, x->rank)) < 0)
      v = LM_ENOMEM;
  } else {
    return lfail(c, L, LM_EUNSUPPORTED, "this layer class is not supported");
  }
  if (v < 0) return v;
  o->v = v;
  return LM_OK;
}

/* Emit a layer call and record its output tensor "name:node:0". */
static int call_layer(tfjs_ctx *c, const klayer *L, const tfjs_tensor *const *in, int nin,
                      int node_index)
{
  char key[300], out[300];
  snprintf(key, sizeof key, "%s:%d:0", L->name, node_index);
  size_t nl = strlen(L->name);
  bool gn = nl >= 3 && strcmp(L->name + nl - 3, "_gn") == 0;
  char base[300];
  if (node_index) snprintf(base, sizeof base, "%s:%d", L->name, node_index);
  else snprintf(base, sizeof base, "%s", L->name);
  if (snprintf(out, sizeof out, "%s%s", base, gn ? "/pre_gn" : "") >= (int)sizeof out)
    return lfail(c, L, LM_EFORMAT, "the layer name is too long");
  kout o;
  int rc = emit_layer(c, L, in, nin, out, &o);
  if (rc < 0) return rc;
  if (gn) {
    if (o.channels < 1) return lfail(c, L, LM_EFORMAT, "'_gn' layer: channel count not known");
    if ((o.v = instance_norm(c, L->name, o.v, o.channels, 1e-5, base)) < 0) return o.v;
  }
  return tfjs_tensor_add(c, key, o.v, o.rank, o.channels);
}

/* ---- inputs and topology ---------------------------------------------- */

static int input_layer(tfjs_ctx *c, const klayer *L)
{
  const cJSON *s = cfg_get(L, "batch_input_shape");
  if (!s) s = cfg_get(L, "batch_shape");   /* Keras 3 */
  if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) < 3 || cJSON_GetArraySize(s) > 5)
    return lfail(c, L, LM_EFORMAT, "field 'batch_input_shape' missing or not of rank 3 to 5");
  int r = cJSON_GetArraySize(s);
  int64_t ks[LM_MAX_DIMS] = {0}, shape[LM_MAX_DIMS] = {0};
  for (int i = 0; i < r; i++) {
    const cJSON *e = cJSON_GetArrayItem(s, i);
    ks[i] = cJSON_IsNumber(e) && e->valuedouble > 0 ? (int64_t)clamp_num(e->valuedouble) : -1;
  }
  shape[0] = ks[0];
  shape[1] = ks[r - 1];
  for (int i = 1; i < r - 1; i++) shape[i + 1] = ks[i];
  const char *dts = cfg_str(L, "dtype", "float32");
  if (strcmp(dts, "float32") != 0)
    return lfail(c, L, LM_EDTYPE, "field 'dtype' must be float32");
  if (lm_graph_find_value(c->g, L->name) >= 0)
    return lfail(c, L, LM_EFORMAT, "the input name is used twice");
  int v = lm_graph_value(c->g, L->name);
  if (v < 0) return LM_ENOMEM;
  lm_graph_set_type(c->g, v, LM_F32, r, shape);
  if (lm_graph_add_input(c->g, v) < 0) return LM_ENOMEM;
  char key[300];
  snprintf(key, sizeof key, "%s:0:0", L->name);
  return tfjs_tensor_add(c, key, v, r, shape[1]);
}

static int read_layer(tfjs_ctx *c, const cJSON *j, int i, klayer *L)
{
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(j, "class_name");
  L->cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
  const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
  if (!cJSON_IsString(nm)) nm = cJSON_GetObjectItemCaseSensitive(L->cfg, "name");
  if (!cJSON_IsString(cls) || !cJSON_IsObject(L->cfg) || !cJSON_IsString(nm))
    return tfjs_fail(c, LM_EFORMAT, "layers[%d]: fields 'class_name', 'config' and 'name' are "
                     "required", i);
  if (strlen(nm->valuestring) > 200)
    return tfjs_fail(c, LM_EFORMAT, "layers[%d]: field 'name' is over 200 bytes", i);
  L->cls = cls->valuestring;
  L->name = nm->valuestring;
  return LM_OK;
}

/* Keras tensor references of one inbound node, in order: Keras 2 writes
** [[name, node, tensor, kwargs], ...]; Keras 3 {"args": [...]} with
** {"class_name": "__keras_tensor__", "config": {"keras_history": [...]}}. */
static void collect_refs(const cJSON *j, char keys[][300], int *n)
{
  if (cJSON_IsArray(j) && cJSON_GetArraySize(j) >= 3 && cJSON_IsString(j->child) &&
      cJSON_IsNumber(j->child->next) && cJSON_IsNumber(j->child->next->next)) {
    if (*n < MAX_IN)
      snprintf(keys[(*n)++], 300, "%s:%d:%d", j->child->valuestring,
               (int)clamp_num(j->child->next->valuedouble),
               (int)clamp_num(j->child->next->next->valuedouble));
    return;
  }
  if (cJSON_IsObject(j)) {
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cfg, "keras_history");
    if (h) {
      collect_refs(h, keys, n);
      return;
    }
    collect_refs(cJSON_GetObjectItemCaseSensitive(j, "args"), keys, n);
    return;
  }
  if (cJSON_IsArray(j))
    for (const cJSON *e = j->child; e; e = e->next) collect_refs(e, keys, n);
}

/* [name, node, tensor] or a list of them -> keys. */
static int endpoint_keys(const cJSON *j, char keys[][300], int *n)
{
  *n = 0;
  if (!cJSON_IsArray(j)) return LM_EFORMAT;
  collect_refs(j, keys, n);
  return *n > 0 ? LM_OK : LM_EFORMAT;
}

static int functional(tfjs_ctx *c, const cJSON *cfg)
{
  const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cfg, "layers");
  if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0)
    return tfjs_fail(c, LM_EFORMAT, "field 'config.layers' missing or empty");
  int n = cJSON_GetArraySize(layers);
  klayer *L = calloc((size_t)n, sizeof *L);
  const cJSON **nodes = calloc((size_t)n, sizeof *nodes);
  int *done = calloc((size_t)n, sizeof *done);   /* inbound nodes emitted */
  char(*keys)[300] = malloc(sizeof(char[300]) * MAX_IN);
  int rc = L && nodes && done && keys ? LM_OK : tfjs_fail(c, LM_ENOMEM, "out of memory");
  int i = 0;
  for (const cJSON *j = layers->child; j && rc == LM_OK; j = j->next, i++) {
    rc = read_layer(c, j, i, &L[i]);
    nodes[i] = cJSON_GetObjectItemCaseSensitive(j, "inbound_nodes");
  }
  /* Inputs first, in input_layers order, so graph inputs keep it. */
  int nk = 0;
  if (rc == LM_OK &&
      endpoint_keys(cJSON_GetObjectItemCaseSensitive(cfg, "input_layers"), keys, &nk) < 0)
    rc = tfjs_fail(c, LM_EFORMAT, "field 'config.input_layers' missing or empty");
  for (int k = 0; k < nk && rc == LM_OK; k++) {
    int found = -1;
    for (i = 0; i < n; i++)
      if (!strcmp(L[i].cls, "InputLayer") && !strncmp(keys[k], L[i].name, strlen(L[i].name)) &&
          keys[k][strlen(L[i].name)] == ':')
        found = i;
    if (found < 0) {
      rc = tfjs_fail(c, LM_EFORMAT, "config.input_layers[%d]: '%s' is not an InputLayer", k,
                     keys[k]);
    } else if (!done[found]) {
      rc = input_layer(c, &L[found]);
      done[found] = 1;
    }
  }
  /* Layers in listed order, repeated while some wait for later ones. */
  bool progress = true;
  while (rc == LM_OK && progress) {
    progress = false;
    for (i = 0; i < n && rc == LM_OK; i++) {
      if (!strcmp(L[i].cls, "InputLayer")) continue;
      int nn = cJSON_GetArraySize(nodes[i]);
      while (done[i] < nn && rc == LM_OK) {
        int nr = 0;
        collect_refs(cJSON_GetArrayItem(nodes[i], done[i]), keys, &nr);
        const tfjs_tensor *in[MAX_IN];
        bool ready = nr > 0;
        for (int k = 0; k < nr && ready; k++) ready = (in[k] = tfjs_tensor_find(c, keys[k])) != NULL;
        if (!ready) break;
        rc = call_layer(c, &L[i], in, nr, done[i]);
        done[i]++;
        progress = true;
      }
    }
  }
  for (i = 0; i < n && rc == LM_OK; i++)
    if (strcmp(L[i].cls, "InputLayer") && done[i] < cJSON_GetArraySize(nodes[i]))
      rc = tfjs_fail(c, LM_EFORMAT, "layer '%s' (%s): its inputs are never produced (field "
                     "'inbound_nodes')", L[i].name, L[i].cls);
  if (rc == LM_OK &&
      endpoint_keys(cJSON_GetObjectItemCaseSensitive(cfg, "output_layers"), keys, &nk) < 0)
    rc = tfjs_fail(c, LM_EFORMAT, "field 'config.output_layers' missing or empty");
  for (int k = 0; k < nk && rc == LM_OK; k++) {
    const tfjs_tensor *t = tfjs_tensor_find(c, keys[k]);
    if (!t) rc = tfjs_fail(c, LM_EFORMAT, "config.output_layers[%d]: '%s' is never produced", k,
                           keys[k]);
    else if (lm_graph_add_output(c->g, t->v) < 0) rc = LM_ENOMEM;
  }
  free(L);
  free(nodes);
  free(done);
  free(keys);
  return rc;
}

static int sequential(tfjs_ctx *c, const cJSON *layers)
{
  if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0)
    return tfjs_fail(c, LM_EFORMAT, "field 'config.layers' missing or empty");
  const tfjs_tensor *prev = NULL;
  int i = 0, rc;
  for (const cJSON *j = layers->child; j; j = j->next, i++) {
    klayer L;
    if ((rc = read_layer(c, j, i, &L)) < 0) return rc;
    char key[300];
    if (!prev) {
      /* The first layer declares the input (an InputLayer or its own
      ** batch_input_shape). */
      klayer in = L;
      if (strcmp(L.cls, "InputLayer") != 0) in.name = "input";
      if ((rc = input_layer(c, &in)) < 0) return rc;
      snprintf(key, sizeof key, "%s:0:0", in.name);
      prev = tfjs_tensor_find(c, key);
      if (!strcmp(L.cls, "InputLayer")) continue;
    }
    if ((rc = call_layer(c, &L, &prev, 1, 0)) < 0) return rc;
    snprintf(key, sizeof key, "%s:0:0", L.name);
    prev = tfjs_tensor_find(c, key);
  }
  return lm_graph_add_output(c->g, prev->v) < 0 ? LM_ENOMEM : LM_OK;
}

int tfjs_translate(tfjs_ctx *c, const cJSON *model)
{
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(model, "class_name");
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(model, "config");
  if (!cJSON_IsString(cls) || !cfg)
    return tfjs_fail(c, LM_EFORMAT, "modelTopology: fields 'class_name' and 'config' are "
                     "required");
  if (!strcmp(cls->valuestring, "Sequential"))
    return sequential(c, cJSON_IsArray(cfg) ? cfg : cJSON_GetObjectItemCaseSensitive(cfg, "layers"));
  if (!strcmp(cls->valuestring, "Functional") || !strcmp(cls->valuestring, "Model"))
    return functional(c, cfg);
  return tfjs_fail(c, LM_EUNSUPPORTED, "modelTopology: model class '%s' is not supported "
                   "(Sequential, Functional, Model)", cls->valuestring);
}
