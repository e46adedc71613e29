/* A small TAP producer for the C test programs (libuv's test style: typed
 * asserts that print both values). */
#ifndef LM_TAP_H
#define LM_TAP_H
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n __attribute__((unused)), tap_failed __attribute__((unused)),
    tap_case_failed __attribute__((unused));
static const char *tap_case __attribute__((unused));

#define TAP_FAIL(...)                                                     \
  do {                                                                    \
    printf("#   %s:%d: ", __FILE__, __LINE__);                            \
    printf(__VA_ARGS__);                                                  \
    printf("\n");                                                         \
    tap_case_failed = 1;                                                  \
  } while (0)

#define CHECK(cond)                                                       \
  do { if (!(cond)) TAP_FAIL("CHECK(%s) failed", #cond); } while (0)
#define CHECK_INT(a, b)                                                   \
  do {                                                                    \
    long long a_ = (long long)(a), b_ = (long long)(b);                   \
    if (a_ != b_) TAP_FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);     \
  } while (0)
#define CHECK_NEAR(a, b, tol)                                             \
  do {                                                                    \
    double a_ = (double)(a), b_ = (double)(b);                            \
    if (!(fabs(a_ - b_) <= (tol)))                                        \
      TAP_FAIL("%s ~= %s: %.17g != %.17g (tol %g)", #a, #b, a_, b_,       \
               (double)(tol));                                            \
  } while (0)
#define CHECK_STR(a, b)                                                   \
  do {                                                                    \
    const char *a_ = (a), *b_ = (b);                                      \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                \
      TAP_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",  \
               b_ ? b_ : "(null)");                                       \
  } while (0)
#define CHECK_CONTAINS(hay, needle)                                       \
  do {                                                                    \
    const char *h_ = (hay), *n_ = (needle);                               \
    if (!h_ || !strstr(h_, n_))                                           \
      TAP_FAIL("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
  } while (0)

/* Run one test function as one TAP point. */
#define RUN(fn)                                                           \
  do {                                                                    \
    tap_case = #fn;                                                       \
    tap_case_failed = 0;                                                  \
    fn();                                                                 \
    tap_n++;                                                              \
    if (tap_case_failed) tap_failed++;                                    \
    printf("%s %d - %s\n", tap_case_failed ? "not ok" : "ok", tap_n, #fn); \
    fflush(stdout);                                                       \
  } while (0)

#define TAP_DONE()                                                        \
  do {                                                                    \
    printf("1..%d\n", tap_n);                                             \
    return tap_failed ? 1 : 0;                                            \
  } while (0)

/* Skip the whole program with exit status 77.  Register such programs with
 * meson's exitcode protocol: it reads 77 as SKIP, while its TAP parser (meson
 * 1.0) reports exit 77 as an ERROR. */
#define TAP_SKIP_ALL(reason)                                              \
  do {                                                                    \
    printf("1..0 # SKIP %s\n", reason);                                   \
    exit(77);                                                             \
  } while (0)

#endif
