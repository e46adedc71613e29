/* Direct few-channel convolution of one output slice (conv_small.h). */
#include "conv_small.h"

#include "cpu_conv_internal.h"

/* One output row i of every output channel.  Cloned per ISA so that the
** inner column loop vectorises with the widest vectors the CPU has (no
** fused multiply-add: the build has -ffp-contract=off, so every clone
** rounds alike and results do not depend on the CPU). */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void conv_row(const lm_conv_small_desc *d, const float *in, const float *w,
                     const float *bias, float *out, int64_t i)
{
  const int64_t H = d->h, W = d->w, P = H * W;
  const int64_t ca = d->ka / 2, cb = d->kb / 2;
  const int64_t wstride = d->cin * d->kd * d->ka * d->kb;
  for (int64_t co = 0; co < d->cout; co++) {
    float *o = out + co * P + i * W;
    float b0 = bias ? bias[co] : 0.0f;
    for (int64_t j = 0; j < W; j++) o[j] = b0;
  }
  for (int64_t ci = 0; ci < d->cin; ci++)
    for (int64_t t = 0; t < d->kd; t++)
      for (int64_t a = 0; a < d->ka; a++) {
        int64_t ii = i + (a - ca) * d->dila;
        if (ii < 0 || ii >= H) continue;
        const float *restrict row = in + (ci * d->kd + t) * P + ii * W;
        for (int64_t b = 0; b < d->kb; b++) {
          int64_t s = (b - cb) * d->dilb;
          int64_t j0 = s < 0 ? -s : 0, j1 = s > 0 ? W - s : W;
          if (j1 <= j0) continue;
          const float *wt = w + (((ci * d->kd + t) * d->ka + a) * d->kb + b);
          for (int64_t co = 0; co < d->cout; co++) {
            float *restrict o = out + co * P + i * W;
            const float wv = wt[co * wstride];
            for (int64_t j = j0; j < j1; j++) o[j] += wv * row[j + s];
          }
        }
      }
}

void lm_conv_small_slice(const lm_conv_small_desc *d, const float *in,
                         const float *w, const float *bias, float *out)
{
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < d->h; i++) conv_row(d, in, w, bias, out, i);
  /* The same activation pass oneDNN convolutions use when they cannot fuse. */
  lm_conv_act_apply(d->act, d->alpha, d->beta, out, (size_t)(d->cout * d->h * d->w));
}
