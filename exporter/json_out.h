/*
 * JSON output for the metrics API (stats_api.h, watch_sse.h): strings
 * escaped as RFC 8259 asks, numbers that JSON can carry. Only values
 * the exporter already shows on /metrics go through here.
 */
#ifndef DYNOBS_EXPORTER_JSON_OUT_H
#define DYNOBS_EXPORTER_JSON_OUT_H

#include "buf.h"

/* "s", with '"', '\\' and control characters escaped (bytes of 0x80 and
 * over are copied: names and labels are UTF-8 or ASCII). */
void dx_json_str(struct dx_buf *b, const char *s);
/* A number as /metrics writes it, or null for NaN and infinities, which
 * JSON has no spelling for. */
void dx_json_num(struct dx_buf *b, double v);
/* {"error":"msg"} with a status: the answer to a bad request. */
struct dx_httpd_response;
void dx_json_error(struct dx_httpd_response *r, unsigned status, const char *msg);
/* The series a metrics API request names: its name argument (required, a
 * metric name) and labels (optional, k=v,k=v) in *name and *labels; 0, or
 * -1 once it has answered 400 with what is wrong. */
int dx_json_series_args(struct dx_httpd_response *r, const char **name, const char **labels);

#endif
