/*
 * The three OpenTelemetry signals the exporter handles. Traces and logs
 * travel as records through the batch queue; metrics are read from the
 * segments' metric tables and are never queued, so they come last and
 * DX_QUEUED_SIGNALS counts only the first two.
 */
#ifndef DYNOBS_EXPORTER_SIGNALS_H
#define DYNOBS_EXPORTER_SIGNALS_H

enum dx_signal {
    DX_TRACES = 0,
    DX_LOGS = 1,
    DX_METRICS = 2,
};

#define DX_QUEUED_SIGNALS 2 /* DX_TRACES and DX_LOGS */
#define DX_SIGNALS 3

/* The name used in labels and messages: "traces", "logs", "metrics". */
static inline const char *dx_signal_name(enum dx_signal s)
{
    static const char *const names[DX_SIGNALS] = {"traces", "logs", "metrics"};
    return (unsigned)s < DX_SIGNALS ? names[s] : "?";
}

#endif
