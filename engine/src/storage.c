/* Reference-counted storage: host memory from the caching allocator, device
 * memory from the CUDA plugin, or wrapped memory given back by a deleter. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

int lm_storage_new(lm_engine *e, lm_device dev, size_t nbytes, lm_storage **out)
{
  lm_storage *s = calloc(1, sizeof *s);
  if (!s) return lm_set_error(e, LM_ENOMEM, "out of memory (storage header)");
  atomic_init(&s->refs, 1);
  atomic_init(&s->ready, NULL);
  s->e = e;
  s->dev = dev;
  s->nbytes = nbytes;
  if (dev.type == LM_DEVICE_CPU) {
    s->kind = LM_STORAGE_HOST;
    /* Always ask for at least one byte so a 0-element tensor still has a
     * valid, unique data pointer. */
    s->data = lm_alloc_get(&e->alloc, nbytes ? nbytes : 1, &s->cap);
    if (!s->data) {
      free(s);
      return lm_set_error(e, LM_ENOMEM, "out of memory allocating %zu bytes", nbytes);
    }
    atomic_fetch_add(&e->host_bytes, (long long)s->cap);
  } else if (dev.type == LM_DEVICE_CUDA) {
    char name[16];
    const lm_cuda_api *api = e->cuda.api;
    if (!api || dev.index < 0 || dev.index >= e->cuda.ndevices) {
      free(s);
      return lm_set_error(e, LM_EDEVICE, "cannot allocate on %s: %s",
                          lm_device_format(dev, name, sizeof name),
                          api ? "no such CUDA device" : e->cuda.status);
    }
    s->kind = LM_STORAGE_CUDA;
    s->data = api->malloc(dev.index, nbytes ? nbytes : 1);
    if (!s->data) {
      free(s);
      return lm_set_error(e, LM_ENOMEM, "out of device memory on %s allocating %zu bytes",
                          lm_device_format(dev, name, sizeof name), nbytes);
    }
    s->cap = nbytes ? nbytes : 1;
    atomic_fetch_add(&e->device_bytes, (long long)s->cap);
  } else {
    free(s);
    return lm_set_error(e, LM_EDEVICE, "unknown device type %d", dev.type);
  }
  *out = s;
  return LM_OK;
}

lm_storage *lm_storage_wrap(lm_engine *e, lm_device dev, void *base,
                            size_t nbytes, lm_deleter del, void *del_data,
                            void *del_ctx)
{
  lm_storage *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  atomic_init(&s->refs, 1);
  atomic_init(&s->ready, NULL);
  s->e = e;
  s->dev = dev;
  s->kind = LM_STORAGE_WRAPPED;
  s->data = base;
  s->nbytes = nbytes;
  s->deleter = del;
  s->deleter_data = del_data;
  s->deleter_ctx = del_ctx;
  return s;
}

void lm_storage_retain(lm_storage *s)
{
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void lm_storage_release(lm_storage *s)
{
  if (!s) return;
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
  lm_engine *e = s->e;
  void *ready = atomic_load(&s->ready);
  if (ready && e->cuda.api) e->cuda.api->event_release(s->dev.index, ready);
  switch (s->kind) {
  case LM_STORAGE_HOST:
    atomic_fetch_sub(&e->host_bytes, (long long)s->cap);
    lm_alloc_put(&e->alloc, s->data, s->cap);
    break;
  case LM_STORAGE_CUDA:
    atomic_fetch_sub(&e->device_bytes, (long long)s->cap);
    /* The plugin frees in stream order: kernels queued before this point
     * that still read the block finish first. */
    if (e->cuda.api) e->cuda.api->free(s->dev.index, s->data);
    break;
  case LM_STORAGE_WRAPPED:
    if (s->deleter) s->deleter(s->deleter_data, s->deleter_ctx);
    break;
  }
  free(s);
}

void *lm_tensor_cuda_ready(const lm_tensor *t)
{
  if (!t || t->dev.type != LM_DEVICE_CUDA || !t->st) return NULL;
  return atomic_load(&t->st->ready);
}

void lm_tensor_set_cuda_ready(lm_tensor *t, void *ready)
{
  if (!t || t->dev.type != LM_DEVICE_CUDA || !t->st) return;
  void *old = atomic_exchange(&t->st->ready, ready);
  const lm_cuda_api *api = t->e->cuda.api;
  /* The storage owns one event at a time: a replaced one goes back. */
  if (old && old != ready && api) api->event_release(t->dev.index, old);
}
