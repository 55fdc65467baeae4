/*
 * Filters of metric series: the rules' `filters` entries with `drop:
 * [metrics]` that name `metric.name` (rules/README.md) are applied here,
 * in the exporter, to whole series, so that the shims pay nothing for
 * them. The store (store.h) keeps every series and its values; a dropped
 * one is only left out of /metrics and the OTLP and console exports, so
 * that it comes back with its full cumulative totals when a later rules
 * file stops dropping it.
 */
#ifndef DYNOBS_EXPORTER_METRIC_FILTER_H
#define DYNOBS_EXPORTER_METRIC_FILTER_H

#include "buf.h"
#include "rules.h"

/* Does table r (NULL: none) drop the series of metric `name` (its
 * OpenTelemetry name) of `service`? The first filter entry whose match
 * holds decides: it drops when its drop list holds metrics, and keeps
 * otherwise. Only metric.name and service.name are known of a series, so
 * an entry naming anything else (a span's fields, attributes, an
 * executable) never matches. */
int dx_metric_filter_drops(const struct dynobs_rules *r, const char *service, const char *name);

/* The rules listener (rules_publish.h): brings a table's filters into
 * force for every series, under the segments' lock. */
void dx_metric_filter_rules(const struct dynobs_rules *r);

/* /metrics (prometheus.h, dx_prometheus_self): the series left out. */
void dx_metric_filter_prom(struct dx_buf *b);

#endif
