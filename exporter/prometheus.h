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

/* Registers GET /metrics with the HTTP server. Returns 0 or -1. */
int dx_prometheus_register(void);

#endif
