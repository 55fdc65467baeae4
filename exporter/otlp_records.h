/*
 * One record into its OTLP message, straight from the record's bytes to
 * the wire format (otlp_wire.h): a span into a ScopeSpans.spans field, a
 * log record into a ScopeLogs.log_records field, attributes into
 * KeyValue fields. No intermediate structures and no allocation: the
 * caller reserves dx_otlp_record_bound() bytes and the encoder writes
 * them in one pass.
 */
#ifndef DYNOBS_EXPORTER_OTLP_RECORDS_H
#define DYNOBS_EXPORTER_OTLP_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* The most bytes dx_otlp_span or dx_otlp_log writes for a record of len
 * bytes (header included). An item never takes more than twice its
 * record bytes on the wire (the worst is a negative int with a one-byte
 * key: 13 record bytes, 18 wire bytes), and the fixed fields of a span
 * or a log record take less than twice theirs plus 64. */
static inline size_t dx_otlp_record_bound(size_t len)
{
    return 2 * len + 256;
}

/* The span of a validated view (dynobs__span_decode) as field 2 of a
 * ScopeSpans, at p; returns the end. */
uint8_t *dx_otlp_span(uint8_t *p, const struct dynobs_span_view *v);

/* The log record of a validated view as field 2 of a ScopeLogs. */
uint8_t *dx_otlp_log(uint8_t *p, const struct dynobs_log_view *v);

/* A KeyValue field with a string value (resource attributes); key and
 * value are cut at a NUL byte as protobuf-c cut them. At most
 * klen + vlen + 24 bytes. */
uint8_t *dx_otlp_kv_str(uint8_t *p, uint8_t tag, const char *key, size_t klen, const char *val,
                        size_t vlen);

/* A KeyValue field with an int value: at most klen + 24 bytes. */
uint8_t *dx_otlp_kv_int(uint8_t *p, uint8_t tag, const char *key, size_t klen, int64_t val);

#endif
