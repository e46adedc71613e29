/* Names and descriptions of the LM_* status codes. */
#include "lumen.h"

#define STATUS_TABLE(X)                                   \
  X(LM_OK, "success")                                     \
  X(LM_EINVAL, "invalid argument")                        \
  X(LM_ENOMEM, "out of memory")                           \
  X(LM_EIO, "input/output error")                         \
  X(LM_ENOENT, "no such file, op or option")              \
  X(LM_EFORMAT, "malformed or corrupt file")              \
  X(LM_EDTYPE, "data type not supported")                 \
  X(LM_ESHAPE, "shapes do not fit together")              \
  X(LM_EDEVICE, "wrong device or no kernel for the device") \
  X(LM_ECUDA, "CUDA or cuDNN failure")                    \
  X(LM_ECANCELED, "operation cancelled")                  \
  X(LM_EBUSY, "resource busy")                            \
  X(LM_EUNSUPPORTED, "not supported by this build")       \
  X(LM_EINTERNAL, "internal error")

const char *lm_status_name(int status)
{
  if (status > 0) return "LM_OK";
#define NAME(code, text) if (status == code) return #code;
  STATUS_TABLE(NAME)
#undef NAME
  return "LM_E?";
}

const char *lm_status_string(int status)
{
  if (status > 0) return "success";
#define TEXT(code, text) if (status == code) return text;
  STATUS_TABLE(TEXT)
#undef TEXT
  return "unknown status";
}
