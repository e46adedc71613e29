/* Private interface between the engine and the built-in transforms. */
#ifndef LM_TRANSFORMS_H
#define LM_TRANSFORMS_H
#include "lumen.h"

/* Register every built-in op (called by lm_engine_new). */
int lm_register_builtin_ops(lm_engine *e);

#endif
