/*
 * Prometheus text exposition (format 0.0.4) of the metric store and of
 * the exporter's own series, served as the /metrics route.
 */
#ifndef DYNOBS_EXPORTER_PROMETHEUS_H
#define DYNOBS_EXPORTER_PROMETHEUS_H

#include "buf.h"

/* Takes the segments' lock, snapshots the store and renders everything
 * into b. */
void dx_prometheus_render(struct dx_buf *b);

/* Parts with counters of their own (rules, tail sampling, ...) register
 * a function that renders them with the two helpers below; it runs after
 * the exporter's own families, under the segments' lock. Call before the
 * HTTP server starts. Returns 0, or -1 when the table is full. */
typedef void (*dx_prom_self_fn)(struct dx_buf *b);
int dx_prometheus_self(dx_prom_self_fn fn);
void dx_prom_self_counter(struct dx_buf *b, const char *name, const char *help, uint64_t v);
void dx_prom_self_gauge(struct dx_buf *b, const char *name, const char *help, uint64_t v);

/* Registers GET /metrics with the HTTP server. Returns 0 or -1. */
int dx_prometheus_register(void);

#endif
