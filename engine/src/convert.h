/* Element conversion between dtypes, as C casts do (floats to integers
 * round toward zero; out-of-range values saturate and NaN becomes 0, where
 * C leaves the result undefined). */
#ifndef LM_CONVERT_H
#define LM_CONVERT_H
#include <stdint.h>

#include "lumen.h"

/* Convert n elements; strides in bytes. */
typedef void (*lm_convert_fn)(char *dst, int64_t ds, const char *src, int64_t ss,
                              int64_t n);
lm_convert_fn lm_convert_get(lm_dtype dst, lm_dtype src);
/* The same, for dense runs (stride = element size), vectorisable. */
lm_convert_fn lm_convert_get_dense(lm_dtype dst, lm_dtype src);

#endif
