/*
** The contract between the engine and its CUDA plugin (liblumen_cuda.so).
**
** The engine never links CUDA.  At lm_engine_new (unless cfg->no_cuda) it
** dlopen()s the plugin and calls lm_cuda_plugin_entry(LM_CUDA_ABI).  The
** plugin links cudart (and cuDNN later) and returns this table.  A missing
** plugin, a missing driver or zero devices all mean "no GPU": reported once
** through lm_engine_cuda_status(), never an error.
**
** Threading: the engine runs every CUDA job on one executor thread per
** device, so plugin functions that take a device are only called from that
** device's thread, except malloc/free/memcpy, which the engine may call from
** any thread (they set the device themselves).
*/
#ifndef LM_CUDA_PLUGIN_H
#define LM_CUDA_PLUGIN_H
#include <stddef.h>
#include "lumen.h"

#define LM_CUDA_ABI 1

typedef struct lm_cuda_api {
  int abi;  /* LM_CUDA_ABI */
  /* Probe the driver and devices.  Returns the number of devices (>= 0) and
  ** writes a one-line description into msg ("no CUDA device: CUDA driver
  ** version is insufficient for CUDA runtime version", or "1 device:
  ** NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)"). */
  int (*init)(char *msg, size_t msglen);
  /* Device memory; NULL on failure. */
  void *(*malloc)(int device, size_t nbytes);
  void (*free)(int device, void *ptr);
  /* Blocking copies; return LM_OK or LM_ECUDA with the CUDA error text in
  ** err. */
  int (*memcpy_h2d)(int device, void *dst, const void *src, size_t n,
                    char *err, size_t errlen);
  int (*memcpy_d2h)(int device, void *dst, const void *src, size_t n,
                    char *err, size_t errlen);
  int (*memcpy_d2d)(int device, void *dst, const void *src, size_t n,
                    char *err, size_t errlen);
  /* Called once on each device executor thread before its first job. */
  int (*thread_init)(int device, char *err, size_t errlen);
  /* Install the plugin's kernels with lm_op_set_cuda_kernel(). */
  int (*register_kernels)(lm_engine *e);
} lm_cuda_api;

typedef const lm_cuda_api *(*lm_cuda_plugin_entry_fn)(int abi);
#define LM_CUDA_PLUGIN_ENTRY "lm_cuda_plugin_entry"

/* Engine side, for code inside liblumen (ToDevice): the loaded table or
** NULL when no GPU is usable. */
const lm_cuda_api *lm_engine_cuda_api(lm_engine *e);

#endif
