/* The plugin's device runtime (runtime.h; docs/architecture.md, "GPU
 * runtime").
 *
 * State is per device and per process, shared by every engine and thread:
 * a storage is freed by whatever thread drops its last reference, and the
 * free must be queued on the stream that used the memory, so the streams
 * cannot belong to one thread.  Each device has
 *   - a compute stream: every kernel, allocation, free and device-to-device
 *     copy, so work on one device is ordered without host synchronisation;
 *   - a copy stream for large host <-> device copies through two pinned
 *     staging chunks, so the host's memcpy into one chunk overlaps the DMA of
 *     the other, and copies overlap kernels;
 *   - the default memory pool with its release threshold raised: freed
 *     blocks stay in the pool for the next allocation (cudaMallocAsync
 *     reuses them in stream order) instead of going back to the driver;
 *     $LUMEN_CUDA_POOL_KEEP bounds the bytes kept (default: all);
 *   - a free list of events (cudaEventDisableTiming): tensors' ready events
 *     and the cross-stream orderings of the copies.
 *
 * In the emulated plugin (LMC_EMULATE) the same code runs over host memory:
 * copies are memcpy, streams do not exist and waits return at once, but the
 * event objects and the staging loops are real, so the engine's ready-event
 * bookkeeping and the chunk offsets of the staged copies are exercised on
 * the CPU ($LUMEN_CUDA_STAGING_BYTES makes the chunks small in tests). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lumen.h"
#include "runtime.h"

/* Copies up to this size (and up to one chunk) go directly on the compute
 * stream: staging them would only add a host memcpy. */
#define LMC_DIRECT_MAX ((size_t)256 << 10)
#define LMC_STAGING_DEFAULT ((size_t)32 << 20)

struct lmc_event {
  cudaEvent_t ev;
  lmc_event *next;  /* in the device's free list */
};

struct lmc_device {
  pthread_mutex_t mu;  /* guards init and the event free list */
  int ready;           /* streams made (read without mu: __atomic) */
  cudaStream_t compute, copy;
  cudaMemPool_t pool;
  lmc_event *free_events;
  /* Staging: one transfer at a time holds staging_mu. */
  pthread_mutex_t staging_mu;
  size_t chunk;
  bool staging_tried;
  void *buf[2];
  cudaEvent_t buf_done[2];  /* recorded after the DMA that used buf[k] */
};

static lmc_device devices[LMC_MAX_DEVICES];
static pthread_once_t devices_once = PTHREAD_ONCE_INIT;

static void devices_init(void)
{
  for (int i = 0; i < LMC_MAX_DEVICES; i++) {
    pthread_mutex_init(&devices[i].mu, NULL);
    pthread_mutex_init(&devices[i].staging_mu, NULL);
  }
}

/* A byte count from the environment: digits with an optional K, M or G
 * suffix; `def` when unset or malformed. */
static uint64_t env_bytes(const char *name, uint64_t def)
{
  const char *v = getenv(name);
  if (!v || !*v) return def;
  char *end;
  unsigned long long n = strtoull(v, &end, 10);
  if (end == v) return def;
  switch (*end) {
  case 'k': case 'K': n <<= 10; end++; break;
  case 'm': case 'M': n <<= 20; end++; break;
  case 'g': case 'G': n <<= 30; end++; break;
  default: break;
  }
  return *end ? def : (uint64_t)n;
}

#ifndef LMC_EMULATE
static void put_error(char *err, size_t errlen, int device, const char *what, cudaError_t e)
{
  if (err && errlen)
    snprintf(err, errlen, "cuda:%d: %s: %s (%s)", device, what, cudaGetErrorString(e),
             cudaGetErrorName(e));
}
#endif

int lmc_rt_async_error(int device, cudaError_t e, const char *where, char *err, size_t errlen)
{
  /* CUDA reports a failed kernel at the next call that synchronises, so
   * the message must not blame the copy or wait that saw it. */
  if (err && errlen)
    snprintf(err, errlen,
             "cuda:%d: an earlier asynchronous op on this device failed (reported at %s): "
             "%s (%s)",
             device, where, cudaGetErrorString(e), cudaGetErrorName(e));
  return LM_ECUDA;
}

static int init_locked(lmc_device *d, int device, char *err, size_t errlen)
{
  d->chunk = (size_t)env_bytes("LUMEN_CUDA_STAGING_BYTES", LMC_STAGING_DEFAULT);
  if (d->chunk < 4096) d->chunk = 4096;
#ifndef LMC_EMULATE
  const char *what = "cannot select the device";
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) {
    what = "cannot create the compute stream";
    e = cudaStreamCreateWithFlags(&d->compute, cudaStreamNonBlocking);
  }
  if (e == cudaSuccess) {
    what = "cannot create the copy stream";
    e = cudaStreamCreateWithFlags(&d->copy, cudaStreamNonBlocking);
  }
  if (e == cudaSuccess) {
    what = "no default memory pool";
    e = cudaDeviceGetDefaultMemPool(&d->pool, device);
  }
  if (e == cudaSuccess) {
    /* Freed blocks up to this many bytes stay in the pool at each
     * synchronisation instead of going back to the driver. */
    uint64_t keep = env_bytes("LUMEN_CUDA_POOL_KEEP", UINT64_MAX);
    what = "cannot set the memory pool's release threshold";
    e = cudaMemPoolSetAttribute(d->pool, cudaMemPoolAttrReleaseThreshold, &keep);
  }
  for (int k = 0; k < 2 && e == cudaSuccess; k++) {
    what = "cannot create the staging events";
    e = cudaEventCreateWithFlags(&d->buf_done[k], cudaEventDisableTiming);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    put_error(err, errlen, device, what, e);
    for (int k = 0; k < 2; k++)
      if (d->buf_done[k]) cudaEventDestroy(d->buf_done[k]);
    if (d->copy) cudaStreamDestroy(d->copy);
    if (d->compute) cudaStreamDestroy(d->compute);
    d->buf_done[0] = d->buf_done[1] = NULL;
    d->copy = d->compute = NULL;
    return LM_ECUDA;
  }
#else
  (void)device;
  (void)err;
  (void)errlen;
#endif
  __atomic_store_n(&d->ready, 1, __ATOMIC_RELEASE);
  return LM_OK;
}

int lmc_rt_init(int device, char *err, size_t errlen)
{
  if (device < 0 || device >= LMC_MAX_DEVICES) {
    if (err && errlen)
      snprintf(err, errlen, "cuda:%d: device index out of range (at most %d devices)", device,
               LMC_MAX_DEVICES);
    return LM_EDEVICE;
  }
  pthread_once(&devices_once, devices_init);
  lmc_device *d = &devices[device];
  if (__atomic_load_n(&d->ready, __ATOMIC_ACQUIRE)) return LM_OK;
  pthread_mutex_lock(&d->mu);
  int st = d->ready ? LM_OK : init_locked(d, device, err, errlen);
  pthread_mutex_unlock(&d->mu);
  return st;
}

/* Per thread: a capture runs on the thread that makes it. */
static thread_local cudaStream_t tl_capture[LMC_MAX_DEVICES];

cudaStream_t lmc_capture_stream(int device, char *err, size_t errlen)
{
  if (err && errlen) err[0] = 0;
  if (lmc_rt_init(device, err, errlen) < 0) return NULL;
#ifdef LMC_EMULATE
  return NULL;
#else
  if (tl_capture[device]) return tl_capture[device];
  cudaStream_t s = NULL;
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    cudaGetLastError();
    put_error(err, errlen, device, "cannot create a capture stream", e);
    return NULL;
  }
  tl_capture[device] = s;
  return s;
#endif
}

void lmc_rt_thread_fini(int device)
{
  if (device < 0 || device >= LMC_MAX_DEVICES || !tl_capture[device]) return;
#ifndef LMC_EMULATE
  cudaStreamDestroy(tl_capture[device]);
#endif
  tl_capture[device] = NULL;
}

cudaStream_t lmc_rt_compute(int device)
{
  char err[8];
  if (lmc_rt_init(device, err, sizeof err) < 0) return NULL;
  return devices[device].compute;
}

/* When the plugin is unloaded (the last engine using it went away) or the
 * process ends: free what the device table holds.  The tables live in this
 * library's data, so anything left would be lost once it is unmapped (and
 * reported by valgrind and LeakSanitizer).  Storages are gone by then: an
 * engine unloads the plugin only after its last tensor.  At process exit the
 * CUDA runtime may already be shut down; its calls then fail harmlessly. */
__attribute__((destructor)) static void devices_fini(void)
{
  for (int i = 0; i < LMC_MAX_DEVICES; i++) {
    lmc_device *d = &devices[i];
    while (d->free_events) {
      lmc_event *ev = d->free_events;
      d->free_events = ev->next;
#ifndef LMC_EMULATE
      cudaEventDestroy(ev->ev);
#endif
      free(ev);
    }
    for (int k = 0; k < 2; k++) {
#ifdef LMC_EMULATE
      free(d->buf[k]);
#else
      if (d->buf[k]) cudaFreeHost(d->buf[k]);
      if (d->buf_done[k]) cudaEventDestroy(d->buf_done[k]);
#endif
      d->buf[k] = NULL;
    }
#ifndef LMC_EMULATE
    if (d->copy) cudaStreamDestroy(d->copy);
    if (d->compute) cudaStreamDestroy(d->compute);
    cudaGetLastError();
#endif
  }
}

/* ---- memory ------------------------------------------------------------- */

void *lmc_rt_alloc(int device, cudaStream_t s, size_t n, char *err, size_t errlen)
{
  if (lmc_rt_init(device, err, errlen) < 0) return NULL;
  if (n == 0) n = 1; /* a valid, unique pointer for empty tensors */
#ifdef LMC_EMULATE
  (void)s;
  /* cudaMalloc's alignment. */
  void *p = aligned_alloc(256, (n + 255) & ~(size_t)255);
  if (!p && err && errlen) snprintf(err, errlen, "cuda:%d: out of memory (%zu bytes)", device, n);
  return p;
#else
  lmc_device *d = &devices[device];
  if (!s) s = d->compute;
  void *p = NULL;
  cudaError_t e = cudaMallocAsync(&p, n, s);
  if (e == cudaErrorMemoryAllocation) {
    /* The pool may hold freed blocks of other sizes: once the frees queued
     * on s have run, give its unused memory back and try once more. */
    cudaGetLastError();
    e = cudaStreamSynchronize(s);
    if (e == cudaSuccess) e = cudaMemPoolTrimTo(d->pool, 0);
    if (e == cudaSuccess) e = cudaMallocAsync(&p, n, s);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    char what[64];
    snprintf(what, sizeof what, "cannot allocate %zu bytes", n);
    put_error(err, errlen, device, what, e);
    return NULL;
  }
  return p;
#endif
}

void lmc_rt_free(int device, cudaStream_t s, void *p)
{
  if (!p || device < 0 || device >= LMC_MAX_DEVICES) return;
#ifdef LMC_EMULATE
  (void)s;
  free(p);
#else
  lmc_device *d = &devices[device];
  /* After the driver has shut down (static destructors at exit) this
   * fails harmlessly; nothing to report to. */
  if (cudaFreeAsync(p, s ? s : d->compute) != cudaSuccess) cudaGetLastError();
#endif
}

size_t lmc_rt_pool_bytes(int device)
{
#ifdef LMC_EMULATE
  (void)device;
  return 0;
#else
  if (device < 0 || device >= LMC_MAX_DEVICES) return 0;
  pthread_once(&devices_once, devices_init);
  lmc_device *d = &devices[device];
  if (!__atomic_load_n(&d->ready, __ATOMIC_ACQUIRE)) return 0;
  uint64_t v = 0; /* the attribute is a cuuint64_t */
  if (cudaMemPoolGetAttribute(d->pool, cudaMemPoolAttrReservedMemCurrent, &v) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return (size_t)v;
#endif
}

/* ---- events ------------------------------------------------------------- */

static lmc_event *event_get(int device, char *err, size_t errlen)
{
  lmc_device *d = &devices[device];
  pthread_mutex_lock(&d->mu);
  lmc_event *ev = d->free_events;
  if (ev) d->free_events = ev->next;
  pthread_mutex_unlock(&d->mu);
  if (ev) return ev;
  ev = (lmc_event *)calloc(1, sizeof *ev);
  if (!ev) {
    if (err && errlen) snprintf(err, errlen, "cuda:%d: out of memory (event)", device);
    return NULL;
  }
#ifndef LMC_EMULATE
  /* Events belong to the device current when they are made. */
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaEventCreateWithFlags(&ev->ev, cudaEventDisableTiming);
  if (e != cudaSuccess) {
    cudaGetLastError();
    put_error(err, errlen, device, "cannot create an event", e);
    free(ev);
    return NULL;
  }
#endif
  return ev;
}

void lmc_rt_event_release(int device, void *p)
{
  if (!p || device < 0 || device >= LMC_MAX_DEVICES) return;
  /* Kept for reuse: re-recording an event is fine even while an earlier
   * record is pending (waits already queued refer to that record). */
  lmc_event *ev = (lmc_event *)p;
  lmc_device *d = &devices[device];
  pthread_mutex_lock(&d->mu);
  ev->next = d->free_events;
  d->free_events = ev;
  pthread_mutex_unlock(&d->mu);
}

void *lmc_rt_event_record(int device, cudaStream_t s, char *err, size_t errlen)
{
  if (lmc_rt_init(device, err, errlen) < 0) return NULL;
  lmc_event *ev = event_get(device, err, errlen);
  if (!ev) return NULL;
#ifdef LMC_EMULATE
  (void)s;
#else
  cudaError_t e = cudaEventRecord(ev->ev, s ? s : devices[device].compute);
  if (e != cudaSuccess) {
    cudaGetLastError();
    put_error(err, errlen, device, "cannot record an event", e);
    lmc_rt_event_release(device, ev);
    return NULL;
  }
#endif
  return ev;
}

int lmc_rt_event_wait(int device, void *p, const char *where, char *err, size_t errlen)
{
  int st = lmc_rt_init(device, err, errlen);
  if (st < 0) return st;
#ifdef LMC_EMULATE
  (void)p;
  (void)where;
  return LM_OK;
#else
  cudaError_t e = p ? cudaEventSynchronize(((lmc_event *)p)->ev)
                    : cudaStreamSynchronize(devices[device].compute);
  if (e != cudaSuccess) return lmc_rt_async_error(device, e, where, err, errlen);
  return LM_OK;
#endif
}

/* `waiter` waits (on the device, not the host) for the work queued on
 * `on` so far. */
static int stream_after(int device, cudaStream_t waiter, cudaStream_t on, char *err,
                        size_t errlen)
{
  lmc_event *ev = (lmc_event *)lmc_rt_event_record(device, on, err, errlen);
  if (!ev) return LM_ECUDA;
#ifndef LMC_EMULATE
  cudaError_t e = cudaStreamWaitEvent(waiter, ev->ev, 0);
  if (e != cudaSuccess) {
    cudaGetLastError();
    lmc_rt_event_release(device, ev);
    return lmc_rt_async_error(device, e, "a stream wait", err, errlen);
  }
#else
  (void)waiter;
#endif
  lmc_rt_event_release(device, ev);
  return LM_OK;
}

/* ---- copies ------------------------------------------------------------- */

/* The primitives the staged loops are written with: CUDA calls, or their
 * host equivalents in the emulation. */
static cudaError_t copy_async(void *dst, const void *src, size_t n, cudaMemcpyKind k,
                              cudaStream_t s)
{
#ifdef LMC_EMULATE
  (void)k;
  (void)s;
  memcpy(dst, src, n);
  return cudaSuccess;
#else
  return cudaMemcpyAsync(dst, src, n, k, s);
#endif
}

static cudaError_t record(cudaEvent_t ev, cudaStream_t s)
{
#ifdef LMC_EMULATE
  (void)ev;
  (void)s;
  return cudaSuccess;
#else
  return cudaEventRecord(ev, s);
#endif
}

static cudaError_t host_wait(cudaEvent_t ev)
{
#ifdef LMC_EMULATE
  (void)ev;
  return cudaSuccess;
#else
  return cudaEventSynchronize(ev);
#endif
}

/* The two pinned chunks, made on the first large copy (staging_mu held).
 * false when pinned memory cannot be had: copies then go direct. */
static bool staging_ready(lmc_device *d, int device)
{
  if (d->buf[0]) return true;
  if (d->staging_tried) return false;
  d->staging_tried = true;
  for (int k = 0; k < 2; k++) {
#ifdef LMC_EMULATE
    (void)device;
    d->buf[k] = malloc(d->chunk);
    bool ok = d->buf[k] != NULL;
#else
    bool ok = cudaSetDevice(device) == cudaSuccess &&
              cudaHostAlloc(&d->buf[k], d->chunk, cudaHostAllocDefault) == cudaSuccess;
    if (!ok) {
      cudaGetLastError();
      d->buf[k] = NULL;
    }
#endif
    if (!ok) {
      if (k == 1) {
#ifdef LMC_EMULATE
        free(d->buf[0]);
#else
        cudaFreeHost(d->buf[0]);
#endif
      }
      d->buf[0] = NULL;
      return false;
    }
  }
  return true;
}

static bool direct(const lmc_device *d, size_t n)
{
  return n <= LMC_DIRECT_MAX && n <= d->chunk;
}

int lmc_rt_h2d(int device, void *dst, const void *src, size_t n, char *err, size_t errlen)
{
  if (n == 0) return LM_OK;
  int st = lmc_rt_init(device, err, errlen);
  if (st < 0) return st;
  lmc_device *d = &devices[device];
  cudaError_t e = cudaSuccess;
  if (!direct(d, n)) {
    pthread_mutex_lock(&d->staging_mu);
    if (staging_ready(d, device)) {
      /* The destination may be a block whose previous owner's readers are
       * still queued on the compute stream: the copy starts after them. */
      st = stream_after(device, d->copy, d->compute, err, errlen);
      size_t off = 0;
      for (int k = 0; st >= 0 && off < n; k ^= 1) {
        size_t len = n - off < d->chunk ? n - off : d->chunk;
        /* The DMA of the chunk before last (same buffer) must be over
         * before the host overwrites it; the host memcpy then overlaps the
         * DMA of the previous chunk. */
        e = host_wait(d->buf_done[k]);
        if (e == cudaSuccess) {
          memcpy(d->buf[k], (const char *)src + off, len);
          e = copy_async((char *)dst + off, d->buf[k], len, cudaMemcpyHostToDevice, d->copy);
        }
        if (e == cudaSuccess) e = record(d->buf_done[k], d->copy);
        if (e != cudaSuccess) {
          cudaGetLastError();
          st = lmc_rt_async_error(device, e, "a copy to the device", err, errlen);
        }
        off += len;
      }
      /* Kernels queued on the compute stream from now on see the data,
       * without the host waiting for the last DMA.  Also after a failure:
       * the caller then frees dst on the compute stream, and the block must
       * not be reused while chunks already queued still write into it. */
      char err2[8];
      int st2 = stream_after(device, d->compute, d->copy, st >= 0 ? err : err2,
                             st >= 0 ? errlen : sizeof err2);
      if (st >= 0) st = st2;
      pthread_mutex_unlock(&d->staging_mu);
      return st;
    }
    pthread_mutex_unlock(&d->staging_mu);
  }
  /* Small (or no pinned memory): pageable memory is staged by the driver
   * before the call returns, so src may be reused at once. */
  e = copy_async(dst, src, n, cudaMemcpyHostToDevice, d->compute);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return lmc_rt_async_error(device, e, "a copy to the device", err, errlen);
  }
  return LM_OK;
}

int lmc_rt_d2h(int device, void *dst, const void *src, size_t n, void *ready, char *err,
               size_t errlen)
{
  if (n == 0) return LM_OK;
  int st = lmc_rt_init(device, err, errlen);
  if (st < 0) return st;
  lmc_device *d = &devices[device];
  static const char *where = "a copy to the host";
  /* The copy stream waits (on the device) for the kernel that wrote src:
   * its ready event, or everything queued on compute so far. */
#ifndef LMC_EMULATE
  if (ready) {
    cudaError_t e = cudaStreamWaitEvent(d->copy, ((lmc_event *)ready)->ev, 0);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return lmc_rt_async_error(device, e, where, err, errlen);
    }
  } else if ((st = stream_after(device, d->copy, d->compute, err, errlen)) < 0) {
    return st;
  }
#else
  (void)ready;
#endif
  cudaError_t e = cudaSuccess;
  if (!direct(d, n)) {
    pthread_mutex_lock(&d->staging_mu);
    if (staging_ready(d, device)) {
      size_t nchunks = (n + d->chunk - 1) / d->chunk;
      /* DMA of chunk k into buf[k % 2]; two in flight, the host copies one
       * out while the next arrives. */
      for (size_t k = 0; k < nchunks && k < 2 && e == cudaSuccess; k++) {
        size_t off = k * d->chunk, len = n - off < d->chunk ? n - off : d->chunk;
        e = copy_async(d->buf[k], (const char *)src + off, len, cudaMemcpyDeviceToHost, d->copy);
        if (e == cudaSuccess) e = record(d->buf_done[k], d->copy);
      }
      for (size_t k = 0; k < nchunks && e == cudaSuccess; k++) {
        int b = (int)(k & 1);
        size_t off = k * d->chunk, len = n - off < d->chunk ? n - off : d->chunk;
        e = host_wait(d->buf_done[b]);
        if (e != cudaSuccess) break;
        memcpy((char *)dst + off, d->buf[b], len);
        if (k + 2 < nchunks) {
          size_t off2 = (k + 2) * d->chunk, len2 = n - off2 < d->chunk ? n - off2 : d->chunk;
          e = copy_async(d->buf[b], (const char *)src + off2, len2, cudaMemcpyDeviceToHost,
                         d->copy);
          if (e == cudaSuccess) e = record(d->buf_done[b], d->copy);
        }
      }
      pthread_mutex_unlock(&d->staging_mu);
      if (e != cudaSuccess) {
        cudaGetLastError();
        return lmc_rt_async_error(device, e, where, err, errlen);
      }
      return LM_OK;
    }
    pthread_mutex_unlock(&d->staging_mu);
  }
  /* Direct: to pageable memory the call returns once the data is there;
   * waiting on an event after it catches an error of the copy itself. */
  e = copy_async(dst, src, n, cudaMemcpyDeviceToHost, d->copy);
  if (e == cudaSuccess) {
    lmc_event *ev = (lmc_event *)lmc_rt_event_record(device, d->copy, err, errlen);
    if (!ev) return LM_ECUDA;
    e = host_wait(ev->ev);
    lmc_rt_event_release(device, ev);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    return lmc_rt_async_error(device, e, where, err, errlen);
  }
  return LM_OK;
}

int lmc_rt_d2d(int device, void *dst, const void *src, size_t n, char *err, size_t errlen)
{
  if (n == 0) return LM_OK;
  int st = lmc_rt_init(device, err, errlen);
  if (st < 0) return st;
  cudaError_t e = copy_async(dst, src, n, cudaMemcpyDeviceToDevice, devices[device].compute);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return lmc_rt_async_error(device, e, "a copy on the device", err, errlen);
  }
  return LM_OK;
}
