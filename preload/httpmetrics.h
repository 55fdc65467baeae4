/*
 * The HTTP metrics of the semantic conventions, shared by the HTTP/1
 * client and server and the libcurl layer: http.client.request.duration
 * and http.server.request.duration (exact, whatever the sampling).
 */
#ifndef DYNOBS_PRELOAD_HTTPMETRICS_H
#define DYNOBS_PRELOAD_HTTPMETRICS_H

#include <stddef.h>
#include <stdint.h>

struct dynobs_segment;

#include "../common/metrics.h"
#include "../common/util.h"

/* The semantic conventions' buckets: dynobs__http_duration_bounds (common/metrics.h). */

/* Records http.client.request.duration. server NULL or "", port <= 0 and
 * code <= 0 leave their labels out; error_type NULL: no error. */
void dynobs__http_client_metric(const char *method, const char *server, long port, long code,
                                const char *error_type, double seconds) DYNOBS_INTERNAL;

/* Records http.server.request.duration under a label string made by
 * dynobs__labels_join (common/metrics.h). */
void dynobs__http_server_metric(struct dynobs_segment *seg, const char *labels,
                                double seconds) DYNOBS_INTERNAL;

struct dynobs_metric_slot;

/* The series a label string kept by its owner (a connection) went to, so
 * that the next update under the same string skips the lookup. The owner
 * empties it (slot NULL) whenever it changes the string; the slot is
 * trusted only while the segment epoch it was found in is current. */
struct dynobs_series_memo {
    struct dynobs_metric_slot *slot; /* NULL: nothing kept */
    uint32_t epoch;                  /* dynobs__segment_epoch() when found */
    uint8_t overflow;                /* the slot is the metric's overflow series */
};

/* As dynobs__http_server_metric, for a label string that stays the same
 * while m is kept (m is filled at the first update, then used). */
void dynobs__http_server_metric_memo(struct dynobs_segment *seg, const char *labels,
                                     double seconds, struct dynobs_series_memo *m) DYNOBS_INTERNAL;

struct dynobs_span;

/* A served request's outcome on its span: http.response.status_code when
 * code > 0, and for a 5xx or a failure (error_type) error.type and the
 * error status. Returns the error type (a 5xx's text is written to
 * codestr, 4 bytes at least), or NULL. */
const char *dynobs__http_server_outcome(struct dynobs_span *s, int code, const char *error_type,
                                        char *codestr) DYNOBS_INTERNAL;

/* A three-digit status code as text ("404"); out holds at least 4. */
void dynobs__status_text(int code, char *out) DYNOBS_INTERNAL;

#endif
