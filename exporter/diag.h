/*
 * The exporter's own diagnostics (what it does and what goes wrong; not
 * the telemetry it exports, and not the shim's preload/log.c): one line
 * per event on stderr, filtered by OTEL_LOG_LEVEL (debug, info, warn,
 * error; default info).
 */
#ifndef DYNOBS_EXPORTER_DIAG_H
#define DYNOBS_EXPORTER_DIAG_H

enum dx_level { DX_DEBUG = 0, DX_INFO, DX_WARN, DX_ERROR, DX_NONE };

void dx_log_init(const char *level);
void dx_log(enum dx_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int dx_log_enabled(enum dx_level level);

#endif
