/*
** http_internal.h: what the transport's two files share (http.c drives MHD
** and owns requests, http_response.c builds replies).  Not installed, no
** lua.h.
*/
#ifndef LM_HTTP_INTERNAL_H
#define LM_HTTP_INTERNAL_H

#include <microhttpd.h>

#include "http.h"

/* The status of a response. */
int lm_http_response_status(const lm_http_response *resp);

/* Turn resp into an MHD response (resp keeps nothing MHD needs: open files
** and buffers move into the MHD response).  `close` adds Connection: close.
** NULL without memory. */
struct MHD_Response *lm_http_response_to_mhd(lm_http_response *resp, bool close);

#endif
