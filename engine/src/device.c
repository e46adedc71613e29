/* Device names: "cpu", "cuda", "cuda:N". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lumen.h"

int lm_device_parse(const char *s, lm_device *out)
{
  if (!s || !out) return LM_EINVAL;
  if (strcmp(s, "cpu") == 0) {
    *out = LM_CPU;
    return LM_OK;
  }
  if (strncmp(s, "cuda", 4) != 0) return LM_EINVAL;
  if (s[4] == '\0') {
    *out = (lm_device){LM_DEVICE_CUDA, 0};
    return LM_OK;
  }
  if (s[4] != ':' || s[5] < '0' || s[5] > '9') return LM_EINVAL;
  char *end;
  errno = 0;
  long idx = strtol(s + 5, &end, 10);
  if (*end != '\0' || errno || idx > 1024) return LM_EINVAL;
  *out = (lm_device){LM_DEVICE_CUDA, (int)idx};
  return LM_OK;
}

char *lm_device_format(lm_device d, char *buf, size_t len)
{
  if (d.type == LM_DEVICE_CPU)
    snprintf(buf, len, "cpu");
  else if (d.type == LM_DEVICE_CUDA)
    snprintf(buf, len, "cuda:%d", d.index);
  else
    snprintf(buf, len, "device?%d", d.type);
  return buf;
}

bool lm_device_equal(lm_device a, lm_device b)
{
  if (a.type != b.type) return false;
  return a.type == LM_DEVICE_CPU || a.index == b.index;
}
