/*
** http_internal.h: what the transport's two files share (http.c drives MHD
** and owns requests, http_response.c builds replies).  Not installed, no
** lua.h.
*/
#ifndef LM_HTTP_INTERNAL_H
#define LM_HTTP_INTERNAL_H

#include <microhttpd.h>

#include "http.h"

/* printf into err[errlen] (an error message for the caller); nothing when
** err is NULL or errlen 0. */
void lm_http_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The status of a response. */
int lm_http_response_status(const lm_http_response *resp);

/* Turn resp into an MHD response (resp keeps nothing MHD needs: open files
** and buffers move into the MHD response).  `close` adds Connection: close.
** NULL without memory. */
struct MHD_Response *lm_http_response_to_mhd(lm_http_response *resp, bool close);

#endif
