/*
 * OTLP protobuf encoding (protobuf-c, schema subset in proto/).
 */
#ifndef DYNOBS_EXPORTER_OTLP_ENCODE_H
#define DYNOBS_EXPORTER_OTLP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "queue.h"

/* Encodes a batch as an ExportTraceServiceRequest (or ExportLogs...),
 * one ResourceSpans per process. *out is malloc'ed. Returns the number of
 * items encoded, or -1. */
long dx_encode_batch(const struct dx_batch *b, uint8_t **out, size_t *len);

/* Encodes the metric store (under the segments' lock, after a
 * snapshot) as an
 * ExportMetricsServiceRequest, one ResourceMetrics per service, cumulative
 * temporality. Returns the number of data points, or -1. */
long dx_encode_metrics(uint64_t now_ns, uint8_t **out, size_t *len);

#endif
