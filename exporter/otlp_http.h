/*
 * OTLP/HTTP transport: POST with libcurl, optional gzip (zlib), retries
 * with exponential backoff and jitter for 429, 502, 503, 504 and
 * connection errors, honouring Retry-After; other failures are final.
 */
#ifndef DYNOBS_EXPORTER_OTLP_HTTP_H
#define DYNOBS_EXPORTER_OTLP_HTTP_H

#include <stddef.h>
#include <stdint.h>

enum dx_send_result { DX_SENT = 0, DX_REJECTED, DX_GAVE_UP };

int dx_http_init(void);
void dx_http_cleanup(void);

/* Sends body to url; retries until success, a final failure, or
 * `give_up` (a flag checked between attempts) is set. `signal` indexes the
 * statistics (0 traces, 1 logs, 2 metrics). */
enum dx_send_result dx_http_send(int signal, const char *url, const uint8_t *body, size_t len,
                                 const volatile int *give_up);

#endif
