/* Per-engine, per-thread last error (sqlite's model): each thread keeps a
 * small table of messages keyed by engine id, so two threads using one
 * engine, or one thread using two engines, never see each other's errors. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define ERR_SLOTS 8
#define NO_ENGINE_KEY UINT64_MAX /* errors of lm_engine_new (no engine yet) */

typedef struct {
  uint64_t key;    /* 0 = empty */
  uint64_t used;   /* LRU stamp */
  int code;
  char msg[LM_ERRMSG_MAX];
} err_slot;

static __thread err_slot slots[ERR_SLOTS];
static __thread uint64_t clock_;

static uint64_t key_of(const lm_engine *e)
{
  return e ? e->id : NO_ENGINE_KEY;
}

static err_slot *find_slot(uint64_t key, bool create)
{
  err_slot *oldest = &slots[0];
  for (int i = 0; i < ERR_SLOTS; i++) {
    if (slots[i].key == key) {
      slots[i].used = ++clock_;
      return &slots[i];
    }
    if (slots[i].used < oldest->used) oldest = &slots[i];
  }
  if (!create) return NULL;
  oldest->key = key;
  oldest->used = ++clock_;
  oldest->code = LM_OK;
  oldest->msg[0] = '\0';
  return oldest;
}

int lm_error_vset(const lm_engine *e, int status, const char *fmt, va_list ap)
{
  /* Format first: the arguments may point at the current message. */
  char tmp[LM_ERRMSG_MAX];
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  err_slot *s = find_slot(key_of(e), true);
  s->code = status;
  memcpy(s->msg, tmp, sizeof tmp);
  return status;
}

int lm_set_error(lm_engine *e, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  lm_error_vset(e, status, fmt, ap);
  va_end(ap);
  return status;
}

int lm_error_code(const lm_engine *e)
{
  err_slot *s = find_slot(key_of(e), false);
  return s ? s->code : LM_OK;
}

int lm_errcode(const lm_engine *e)
{
  return lm_error_code(e);
}

const char *lm_errmsg(const lm_engine *e)
{
  err_slot *s = find_slot(key_of(e), false);
  return s ? s->msg : "";
}
