/* ToDevice and ToHost: the only host <-> CUDA transfers (there are no
 * implicit ones).  The copies go through the CUDA plugin's table, so
 * liblumen itself never links CUDA.
 *
 * ToDevice queues its copy and returns (the device's compute stream waits
 * for it, so the next kernels need nothing); ToHost waits for the input's
 * ready event, i.e. for the kernels that wrote it, and is the one place a
 * pipeline x:to("cuda") ... :to("cpu") synchronises with the GPU
 * (docs/architecture.md, "GPU runtime"). */
#include <stdint.h>
#include <string.h>

#include "cuda_plugin.h"
#include "xf_util.h"

/* The reason lm_engine_cuda_status() gives, without its own "no CUDA
 * device: " prefix, so the message reads "no CUDA device (reason)". */
static int no_device(lm_op_ctx *ctx)
{
  const char *why = lm_engine_cuda_status(lm_ctx_engine(ctx));
  static const char prefix[] = "no CUDA device: ";
  if (!why || !*why) why = "unknown reason";
  if (strncmp(why, prefix, sizeof prefix - 1) == 0) why += sizeof prefix - 1;
  return lm_ctx_error(ctx, LM_EDEVICE, "no CUDA device (%s)", why);
}

static bool nonneg_strides(const lm_tensor *t)
{
  const int64_t *st = lm_tensor_strides(t);
  for (int d = 0; d < lm_tensor_ndim(t); d++)
    if (st[d] < 0) return false;
  return true;
}

/* A block copy is possible when the tensor fills [data, data + nbytes). */
static bool block_copyable(const lm_tensor *t)
{
  return lm_tensor_is_dense(t) && nonneg_strides(t);
}

/* Element span [lo, hi] (in elements, relative to element 0) that a view
 * touches. */
static void span(const lm_tensor *t, int64_t *lo, int64_t *hi)
{
  const int64_t *sh = lm_tensor_shape(t), *st = lm_tensor_strides(t);
  *lo = *hi = 0;
  for (int d = 0; d < lm_tensor_ndim(t); d++) {
    int64_t ext = (sh[d] - 1) * st[d];
    if (ext < 0) *lo += ext;
    else *hi += ext;
  }
}

static void copy_meta(lm_tensor *dst, const lm_tensor *src)
{
  lm_tensor_set_affine(dst, lm_tensor_affine(src));
  lm_tensor_set_layout(dst, lm_tensor_layout(src));
  lm_tensor_trace_copy(dst, src);
}

/* Host -> device.  A dense host tensor is copied as one block into a device
 * tensor with the same memory order; anything else is made dense on the
 * host first (a clone keeps the memory order). */
static int to_cuda(lm_op_ctx *ctx, const lm_cuda_api *api, lm_tensor *in,
                   lm_device dev, lm_tensor **out)
{
  lm_engine *e = lm_ctx_engine(ctx);
  lm_tensor *src = NULL;
  int order[LM_MAX_DIMS], st;
  char err[256] = "";
  if (block_copyable(in)) {
    src = lm_tensor_retain(in);
  } else if ((st = lm_tensor_clone(in, &src)) < 0) {
    return lm_ctx_error(ctx, st, "cannot make the input dense on the host");
  }
  xf_memory_order(src, order);
  st = lm_tensor_new_ordered(e, lm_tensor_dtype(src), lm_tensor_ndim(src),
                             lm_tensor_shape(src), order, dev, out);
  if (st < 0) {
    lm_tensor_release(src);
    return lm_ctx_error(ctx, st, "cannot allocate %zu bytes on cuda:%d",
                        lm_tensor_nbytes(in), dev.index);
  }
  st = lm_tensor_nbytes(src) == 0
           ? LM_OK
           : api->memcpy_h2d(dev.index, lm_tensor_data(*out),
                             lm_tensor_data(src), lm_tensor_nbytes(src), err,
                             sizeof err);
  lm_tensor_release(src);
  if (st < 0) {
    lm_tensor_release(*out);
    *out = NULL;
    return lm_ctx_error(ctx, LM_ECUDA, "host to cuda:%d copy failed: %s",
                        dev.index, err);
  }
  copy_meta(*out, in);
  return LM_OK;
}

/* Device -> host.  A dense device tensor comes back as one block in its
 * memory order; a strided device view brings back the span it covers and
 * is made dense on the host. */
static int to_cpu(lm_op_ctx *ctx, const lm_cuda_api *api, lm_tensor *in,
                  lm_tensor **out)
{
  lm_engine *e = lm_ctx_engine(ctx);
  int dev = lm_tensor_device(in).index, order[LM_MAX_DIMS], st;
  char err[256] = "";
  size_t es = lm_dtype_size(lm_tensor_dtype(in));
  if (block_copyable(in)) {
    xf_memory_order(in, order);
    st = lm_tensor_new_ordered(e, lm_tensor_dtype(in), lm_tensor_ndim(in),
                               lm_tensor_shape(in), order, LM_CPU, out);
    if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
    st = lm_tensor_nbytes(in) == 0
             ? LM_OK
             : api->memcpy_d2h(dev, lm_tensor_data(*out), lm_tensor_data(in),
                               lm_tensor_nbytes(in), lm_tensor_cuda_ready(in), err,
                               sizeof err);
  } else {
    int64_t lo, hi;
    span(in, &lo, &hi);
    int64_t n = hi - lo + 1;
    lm_tensor *raw = NULL, *view = NULL;
    st = lm_tensor_new(e, lm_tensor_dtype(in), 1, &n, LM_CPU, &raw);
    if (st < 0) return lm_ctx_error(ctx, st, "cannot allocate the output");
    st = api->memcpy_d2h(dev, lm_tensor_data(raw),
                         (const char *)lm_tensor_data(in) + lo * (int64_t)es,
                         (size_t)n * es, lm_tensor_cuda_ready(in), err, sizeof err);
    if (st >= 0) {
      st = lm_tensor_view(raw, lm_tensor_ndim(in), lm_tensor_shape(in),
                          lm_tensor_strides(in), -lo, &view);
      if (st >= 0) st = lm_tensor_clone(view, out);
      if (st < 0) {
        lm_tensor_release(raw);
        lm_tensor_release(view);
        return lm_ctx_error(ctx, st, "cannot make the copy dense");
      }
    }
    lm_tensor_release(raw);
    lm_tensor_release(view);
  }
  if (st < 0) {
    lm_tensor_release(*out);
    *out = NULL;
    /* The plugin's message names the device and, for a failure of an
     * earlier asynchronous kernel that surfaced here, says so. */
    return lm_ctx_error(ctx, LM_ECUDA, "copy from cuda:%d to the host failed: %s", dev,
                        err);
  }
  copy_meta(*out, in);
  return LM_OK;
}

/* Move `in` to `dev`: the same tensor when it is there already. */
static int move_to(lm_op_ctx *ctx, lm_tensor *in, lm_device dev)
{
  lm_tensor *out = NULL;
  lm_device from = lm_tensor_device(in);
  int st;
  if (lm_device_equal(from, dev))
    return lm_ctx_set_output(ctx, 0, lm_tensor_retain(in));
  const lm_cuda_api *api = lm_engine_cuda_api(lm_ctx_engine(ctx));
  if (!api) return no_device(ctx);
  if (dev.type == LM_DEVICE_CUDA && from.type == LM_DEVICE_CUDA) {
    /* Device to device through the host: rare, and keeps one code path. */
    lm_tensor *host = NULL;
    st = to_cpu(ctx, api, in, &host);
    if (st < 0) return st;
    st = to_cuda(ctx, api, host, dev, &out);
    lm_tensor_release(host);
  } else if (dev.type == LM_DEVICE_CUDA) {
    st = to_cuda(ctx, api, in, dev, &out);
  } else {
    st = to_cpu(ctx, api, in, &out);
  }
  if (st < 0) return st;
  return lm_ctx_set_output(ctx, 0, out);
}

static int target_device(lm_op_ctx *ctx, lm_device *dev)
{
  const char *name = lm_arg_string(ctx, "device");
  if (!name) name = "cuda";
  if (lm_device_parse(name, dev) != LM_OK)
    return lm_ctx_error(ctx, LM_EINVAL, "option 'device': '%s' is not a "
                        "device (expected \"cpu\", \"cuda\" or \"cuda:N\")",
                        name);
  if (dev->type == LM_DEVICE_CUDA) {
    int n = lm_engine_cuda_devices(lm_ctx_engine(ctx));
    if (n == 0) return no_device(ctx);
    if (dev->index >= n)
      return lm_ctx_error(ctx, LM_EDEVICE, "option 'device': cuda:%d does "
                          "not exist (%d CUDA device%s)", dev->index, n,
                          n == 1 ? "" : "s");
  }
  return LM_OK;
}

static int to_device_check(lm_op_ctx *ctx)
{
  lm_device dev;
  lm_tensor *in = lm_ctx_input(ctx, 0);
  /* Already there: nothing to check about CUDA. */
  const char *name = lm_arg_string(ctx, "device");
  if (name && lm_device_parse(name, &dev) == LM_OK &&
      lm_device_equal(dev, lm_tensor_device(in)))
    return LM_OK;
  return target_device(ctx, &dev);
}

static int to_device_run(lm_op_ctx *ctx)
{
  lm_device dev;
  lm_tensor *in = lm_ctx_input(ctx, 0);
  const char *name = lm_arg_string(ctx, "device");
  if (!(name && lm_device_parse(name, &dev) == LM_OK &&
        lm_device_equal(dev, lm_tensor_device(in)))) {
    int st = target_device(ctx, &dev);
    if (st < 0) return st;
  }
  return move_to(ctx, in, dev);
}

static int to_host_run(lm_op_ctx *ctx)
{
  return move_to(ctx, lm_ctx_input(ctx, 0), LM_CPU);
}

static const lm_arg_desc to_device_args[] = {
  {"device", LM_ARG_STRING, "'cuda'", "\"cuda\" (= \"cuda:0\"), \"cuda:N\" "
   "or \"cpu\""},
};

const lm_op_desc lm_op_to_device = {
  .name = "ToDevice",
  .alias = NULL,
  .summary = "Copy a tensor to a device (\"cuda\", \"cuda:N\" or \"cpu\")",
  .doc =
    "The explicit host/GPU transfer (lumen never moves data implicitly). "
    "Copies the values to the device, keeping shape, memory order, dtype, "
    "affine, layout and trace; a tensor already on that device is returned "
    "as it is (no copy). Dense tensors travel as one block; strided views "
    "are made dense first. Without a usable GPU it fails with LM_EDEVICE: "
    "\"ToDevice: no CUDA device (reason)\", the reason from "
    "lm_engine_cuda_status().",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = to_device_args,
  .nargs = (int)(sizeof to_device_args / sizeof to_device_args[0]),
  .flags = LM_OP_ANY_DEVICE,
  .check = to_device_check,
  .run_cpu = to_device_run,
  .run_cuda = NULL,
};

const lm_op_desc lm_op_to_host = {
  .name = "ToHost",
  .alias = NULL,
  .summary = "Copy a tensor to host memory (the CPU)",
  .doc =
    "ToDevice(img, {device='cpu'}): copies a CUDA tensor back to the host, "
    "keeping shape, memory order, dtype, affine, layout and trace; a host "
    "tensor is returned as it is.",
  .inputs = "img",
  .min_inputs = 1,
  .max_inputs = 1,
  .outputs = "img",
  .args = NULL,
  .nargs = 0,
  .flags = LM_OP_ANY_DEVICE,
  .check = NULL,
  .run_cpu = to_host_run,
  .run_cuda = NULL,
};
