/*
 * The two header texts the OTLP transport reads: OTEL_EXPORTER_OTLP_HEADERS
 * (what to add to every request) and a response's Retry-After. Both come
 * from outside (the environment, the receiver), so the parsers are pure
 * functions over bytes with hard output caps, fuzzed in tests/fuzz/.
 */
#ifndef DYNOBS_EXPORTER_OTLP_HEADERS_H
#define DYNOBS_EXPORTER_OTLP_HEADERS_H

#include <stddef.h>

/* Longest request header line built from OTEL_EXPORTER_OTLP_HEADERS,
 * terminating NUL included; a longer value is cut there. */
#define DX_HEADER_LINE_MAX 2048

/* The next entry of OTEL_EXPORTER_OTLP_HEADERS ("k=v,k=v", values
 * percent-decoded, CR and LF dropped so that no entry can add a header of
 * its own). *cursor walks the text; start it at the text.
 * Returns 1 with `line` holding "key: value", 0 at the end, or -1 for an
 * entry that is not key=value (or whose key holds a CR or LF), with
 * `line` holding that entry (for the warning) and the cursor past it.
 * Empty entries are skipped. */
int dx_otlp_header_next(const char **cursor, char line[DX_HEADER_LINE_MAX]);

/* One response header line (as libcurl hands it over: "Name: value\r\n",
 * not NUL-terminated). Returns the delay in seconds when it is a
 * Retry-After with a number of seconds, else -1. An HTTP date is not
 * honoured: the exporter's own backoff applies then. */
long dx_retry_after_parse(const char *line, size_t len);

#endif
