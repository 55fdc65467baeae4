/*
 * OTLP protobuf encoding: span and log batches written straight into the
 * wire format (otlp_batch.c), metrics through protobuf-c (schema subset
 * in proto/).
 */
#ifndef DYNOBS_EXPORTER_OTLP_ENCODE_H
#define DYNOBS_EXPORTER_OTLP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "queue.h"

struct dx_wire;

/* Encodes a batch as an ExportTraceServiceRequest (or ExportLogs...),
 * one ResourceSpans per process, into out (emptied first, its memory
 * reused). Records that fail validation are left out. Returns the number
 * of items encoded, or -1 when out of memory. */
long dx_encode_batch_into(const struct dx_batch *b, struct dx_wire *out);

/* The same into a malloc'ed *out. */
long dx_encode_batch(const struct dx_batch *b, uint8_t **out, size_t *len);

/* Encodes the metric store (under the segments' lock, after a
 * snapshot) as an
 * ExportMetricsServiceRequest, one ResourceMetrics per service, cumulative
 * temporality. Returns the number of data points, or -1. */
long dx_encode_metrics(uint64_t now_ns, uint8_t **out, size_t *len);

#endif
