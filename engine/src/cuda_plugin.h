/*
** The contract between the engine and its CUDA plugin (liblumen_cuda.so).
**
** The engine never links CUDA.  At lm_engine_new (unless cfg->no_cuda) it
** dlopen()s the plugin and calls lm_cuda_plugin_entry(LM_CUDA_ABI).  The
** plugin links cudart and cuDNN and returns this table.  A missing plugin, a
** missing driver or zero devices all mean "no GPU": reported once through
** lm_engine_cuda_status(), never an error.
**
** Ordering model (docs/architecture.md, "GPU runtime"): each device has one
** compute stream on which every kernel, allocation and free is queued, so
** work on one device is ordered without any host synchronisation.  A tensor
** written by a kernel carries a ready event (an opaque `void *`, recorded on
** the compute stream after the writing kernel); the host waits on it only
** when it reads the data (ToHost).  A tensor without one (NULL) is ready once
** everything queued on the compute stream so far has run.
**
** Threading: the engine runs every CUDA job on one executor thread per
** device, so thread_init / thread_fini are called from that thread.
** malloc/free, the copies and the event calls may be called from any thread
** (ToDevice / ToHost run on the CPU pool, storages are released wherever the
** last reference drops); the plugin guards its per-device state.
*/
#ifndef LM_CUDA_PLUGIN_H
#define LM_CUDA_PLUGIN_H
#include <stddef.h>
#include "lumen.h"

/* 2: stream-ordered memory, asynchronous copies and per-tensor ready
** events. */
#define LM_CUDA_ABI 2

typedef struct lm_cuda_api {
  int abi;  /* LM_CUDA_ABI */
  /* Probe the driver and devices.  Returns the number of devices (>= 0) and
  ** writes a one-line description into msg ("no CUDA device: CUDA driver
  ** version is insufficient for CUDA runtime version", or "1 device:
  ** NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)"). */
  int (*init)(char *msg, size_t msglen);
  /* Device memory from the device's stream-ordered pool: usable by work
  ** queued on the compute stream after this call.  NULL on failure. */
  void *(*malloc)(int device, size_t nbytes);
  /* Queued on the compute stream: the block is reused only after the work
  ** queued before the free has run, so a tensor released while kernels still
  ** read it stays valid for them. */
  void (*free)(int device, void *ptr);
  /* Host -> device: queued (through pinned staging buffers and the copy
  ** stream when large); returns once src may be reused, and work queued on
  ** the compute stream afterwards sees the data.  LM_OK or LM_ECUDA with the
  ** message in err. */
  int (*memcpy_h2d)(int device, void *dst, const void *src, size_t n,
                    char *err, size_t errlen);
  /* Device -> host: waits for `ready` (the source's ready event; NULL: for
  ** everything queued on the compute stream), copies, and returns when dst
  ** holds the data.  An error left by an earlier asynchronous kernel
  ** surfaces here, and the message says so. */
  int (*memcpy_d2h)(int device, void *dst, const void *src, size_t n,
                    void *ready, char *err, size_t errlen);
  /* Device -> device: queued on the compute stream. */
  int (*memcpy_d2d)(int device, void *dst, const void *src, size_t n,
                    char *err, size_t errlen);
  /* Called once on each device executor thread before its first job, and
  ** thread_fini (may be NULL) when that thread ends. */
  int (*thread_init)(int device, char *err, size_t errlen);
  void (*thread_fini)(int device);
  /* Install the plugin's kernels with lm_op_set_cuda_kernel(). */
  int (*register_kernels)(lm_engine *e);
  /* Block the calling thread until the work before `ready` has run (NULL:
  ** everything queued on the compute stream).  LM_OK, or LM_ECUDA with a
  ** message naming the device when an earlier asynchronous op failed. */
  int (*event_wait)(int device, void *ready, char *err, size_t errlen);
  /* Give a ready event back to the plugin (its storage is gone). */
  void (*event_release)(int device, void *ready);
  /* Bytes the device's memory pool holds from the driver: in use plus freed
  ** blocks kept for reuse (0 when unknown). */
  size_t (*pool_bytes)(int device);
} lm_cuda_api;

typedef const lm_cuda_api *(*lm_cuda_plugin_entry_fn)(int abi);
#define LM_CUDA_PLUGIN_ENTRY "lm_cuda_plugin_entry"

/* Engine side, for code inside liblumen (ToDevice) and the plugin. */
#ifdef __cplusplus
extern "C" {
#endif

/* The loaded table, or NULL when no GPU is usable. */
const lm_cuda_api *lm_engine_cuda_api(lm_engine *e);

/* The ready event of a CUDA tensor's storage (NULL: none recorded; always
** NULL for host tensors).  Views share their storage, hence its event. */
void *lm_tensor_cuda_ready(const lm_tensor *t);
/* Attach `ready` to t's storage (the plugin's lmc_finish does, after the
** kernels that wrote t).  The storage owns it from then on: a previous event
** and, when the storage goes, this one are given back with event_release. */
void lm_tensor_set_cuda_ready(lm_tensor *t, void *ready);

#ifdef __cplusplus
}
#endif

#endif
