/*
 * OTLP/HTTP transport: POST with libcurl, optional gzip (zlib), retries
 * with exponential backoff and jitter for 429, 502, 503, 504 and
 * connection errors, honouring Retry-After; other failures are final.
 */
#ifndef DYNOBS_EXPORTER_OTLP_HTTP_H
#define DYNOBS_EXPORTER_OTLP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "signals.h"

enum dx_send_result { DX_SENT = 0, DX_REJECTED, DX_GAVE_UP };

/* What the transport needs of the configuration (xconfig.h). */
struct dx_http_cfg {
    const char *headers;     /* OTEL_EXPORTER_OTLP_HEADERS; read at init only */
    int gzip;
    uint64_t timeout_ms;
    uint64_t retry_initial_ms, retry_max_ms, retry_total_ms;
};

/* Sets up libcurl and the request headers. Returns 0 or -1. */
int dx_http_init(const struct dx_http_cfg *cfg);
void dx_http_cleanup(void);

/* Sends body to url; retries until success, a final failure, or
 * `give_up` (a flag another thread sets, read atomically between
 * attempts) is set. Outcomes are counted
 * in stats.h under `signal`. Sender thread only. */
enum dx_send_result dx_http_send(enum dx_signal signal, const char *url, const uint8_t *body,
                                 size_t len, const int *give_up);

#endif
