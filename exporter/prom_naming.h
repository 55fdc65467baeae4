/*
 * Naming for Prometheus: metric names from OpenTelemetry names and units,
 * label names from attribute keys, and escaped label values. Used by the
 * metric store (which caches each series' names once) and by the
 * exposition; it knows nothing of either.
 */
#ifndef DYNOBS_EXPORTER_PROM_NAMING_H
#define DYNOBS_EXPORTER_PROM_NAMING_H

#include <stddef.h>

#include "buf.h"

/* The Prometheus form of an OpenTelemetry metric name and unit: invalid
 * characters become '_' (runs collapsed), the unit is spelled out and
 * appended unless the name already ends with it ("ms" -> _milliseconds,
 * "By" -> _bytes, "A/B" -> _a_per_b with each unit spelled out, "1" ->
 * _ratio for gauges and nothing otherwise), annotations in
 * braces are dropped, a counter's trailing _total is taken off (the
 * exposition adds it), and a leading digit gets a '_' before it. `kind`
 * is a DYNOBS_METRIC_* value. */
void dx_prom_name(const char *name, const char *unit, int kind, char *out, size_t cap);

/* Appends `k="v"` (preceded by ',' unless first): the key as a label name
 * ([a-zA-Z0-9_], "key_" before a leading digit), the value with '\\', '"'
 * and newline escaped. */
void dx_prom_label(struct dx_buf *b, const char *k, size_t kl, const char *v, size_t vl,
                   int first);

/* The label block of a series: service_name="svc",k="v" from a "k=v,k=v"
 * string (a service_name label of its own is left out), malloc'ed, or
 * NULL when out of memory; built once per series. */
char *dx_prom_labels(const char *service, const char *labels);

#endif
