/* The list of built-in ops: every descriptor the engine registers at start. */
#include "lumen.h"
#include "transforms.h"

/* Weak while the transforms are being written in parallel; made strong when
 * every one of them exists (a missing op must be a link error, not a silent
 * gap). */
#define OPS(X)                                   \
  X(lm_op_load_nifti)                            \
  X(lm_op_save_nifti)                            \
  X(lm_op_convert_to_channels_first)             \
  X(lm_op_scale_intensity_range)                 \
  X(lm_op_scale_intensity_range_percentiles)     \
  X(lm_op_cast)                                  \
  X(lm_op_argmax)                                \
  X(lm_op_softmax)                               \
  X(lm_op_sigmoid)                               \
  X(lm_op_threshold)                             \
  X(lm_op_to_device)                             \
  X(lm_op_to_host)                               \
  X(lm_op_phantom)

#define DECLARE(sym) extern const lm_op_desc sym __attribute__((weak));
OPS(DECLARE)

int lm_register_builtin_ops(lm_engine *e)
{
#define REGISTER(sym)                                  \
  if (&sym != NULL) {                                  \
    int st_ = lm_op_register(e, &sym);                 \
    if (st_ < 0) return st_;                           \
  }
  OPS(REGISTER)
  return LM_OK;
}
