/* The plugin's device runtime (runtime.cu): per-device compute and copy
 * streams, the stream-ordered memory pool, the pool of ready events and the
 * pinned staging buffers of host <-> device copies.  plugin.cu exposes it to
 * the engine (cuda_plugin.h), op_support.cu to kernels (cuda_util.h).
 * Every function may be called from any thread; device indices are checked.
 * Errors: LM_OK / LM_ECUDA (or NULL) with a message naming the device. */
#ifndef LMC_RUNTIME_H
#define LMC_RUNTIME_H
#include <cuda_runtime.h>
#include <stddef.h>

#define LMC_MAX_DEVICES 16

/* Create the device's streams and configure its pool (first call only). */
int lmc_rt_init(int device, char *err, size_t errlen);
/* The device's compute stream (NULL in the emulated plugin, or when
 * lmc_rt_init fails). */
cudaStream_t lmc_rt_compute(int device);

/* Device memory from the pool, ordered on stream s (NULL: the compute
 * stream).  When the pool cannot grow, it waits for s, returns the pool's
 * unused memory to the driver and tries once more. */
void *lmc_rt_alloc(int device, cudaStream_t s, size_t n, char *err, size_t errlen);
/* Stream-ordered free on s (NULL: the compute stream). */
void lmc_rt_free(int device, cudaStream_t s, void *p);

/* An event from the device's pool, recorded on s (NULL: compute). */
void *lmc_rt_event_record(int device, cudaStream_t s, char *err, size_t errlen);
void lmc_rt_event_release(int device, void *ev);
/* Block until ev (NULL: all of the compute stream) has completed.  `where`
 * names the synchronisation point in the message of an asynchronous
 * failure. */
int lmc_rt_event_wait(int device, void *ev, const char *where, char *err, size_t errlen);
/* The message for a CUDA error seen at a synchronisation point: it comes
 * from earlier asynchronous work on the device. */
int lmc_rt_async_error(int device, cudaError_t e, const char *where, char *err, size_t errlen);

/* The copies of cuda_plugin.h (memcpy_h2d / d2h / d2d). */
int lmc_rt_h2d(int device, void *dst, const void *src, size_t n, char *err, size_t errlen);
int lmc_rt_d2h(int device, void *dst, const void *src, size_t n, void *ready, char *err,
               size_t errlen);
int lmc_rt_d2d(int device, void *dst, const void *src, size_t n, char *err, size_t errlen);

/* Bytes the device's pool holds from the driver (live and cached). */
size_t lmc_rt_pool_bytes(int device);

/* Destroy the calling thread's capture stream for device (thread end). */
void lmc_rt_thread_fini(int device);

/* cudnn_handle.cu: destroy the calling thread's cuDNN handle for device. */
void lmc_cudnn_thread_fini(int device);

#endif
