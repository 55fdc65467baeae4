/*
 * The live view's traces (/ui/, ui_api.c): the most recent and the
 * slowest traces the exporter drained, whole (spans and the logs written
 * in them), in a bounded pool. The drain loop offers every span and log
 * record; the pool takes a few new traces a second.
 */
#ifndef DYNOBS_EXPORTER_UI_STORE_H
#define DYNOBS_EXPORTER_UI_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* Main thread, for each span and log record drained. */
void dx_ui_span(const char *service, const struct dynobs_rec_hdr *h);
void dx_ui_log(const char *service, const struct dynobs_rec_hdr *h);

/* One trace as the pool holds it, valid during the callback. */
struct dx_ui_trace {
    const uint8_t *id; /* 16 bytes */
    uint64_t start_ns, end_ns;
    int nspans;
    const uint8_t *const *spans; /* records, header included */
    const uint32_t *span_len;
    const char *const *span_service;
    int nlogs;
    const uint8_t *const *logs;
    const uint32_t *log_len;
    const char *const *log_service;
    int dropped; /* spans past the per-trace cap */
};
typedef void (*dx_ui_trace_fn)(void *u, const struct dx_ui_trace *t);

/* Calls fn for at most max traces, the most recent first (or the slowest
 * first), under the pool's lock. */
void dx_ui_each(int slowest, size_t max, dx_ui_trace_fn fn, void *u);
/* New traces not taken (more than the pool takes a second). */
uint64_t dx_ui_dropped_traces(void);
void dx_ui_clear(void);

#endif
