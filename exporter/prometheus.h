/*
 * Prometheus text exposition (format 0.0.4) of the metric store and of
 * the exporter's own series, and the HTTP endpoint serving it.
 */
#ifndef DYNOBS_EXPORTER_PROMETHEUS_H
#define DYNOBS_EXPORTER_PROMETHEUS_H

#include "buf.h"

/* Takes dx.lock, snapshots the store and renders everything into b. */
void dx_prometheus_render(struct dx_buf *b);

/* Starts the /metrics and /healthz server (libmicrohttpd, own thread).
 * Returns 0, or -1 when the address cannot be bound (logged). */
int dx_httpd_start(const char *host, int port);
void dx_httpd_stop(void);

/* The label block of a series: service_name="svc",k="v" (escaped and
 * sanitised), malloc'ed; built once per series. */
char *dx_prom_labels(const char *service, const char *labels);

#endif
