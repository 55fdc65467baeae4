/*
 * Counters about the exporter itself, shown on /metrics. Every thread
 * adds to them; they are plain atomic counters, so no lock orders against
 * any other part's lock and a reader sees each counter whole (not all of
 * them at one instant, which nothing needs).
 */
#ifndef DYNOBS_EXPORTER_STATS_H
#define DYNOBS_EXPORTER_STATS_H

#include <stdint.h>

#include "signals.h"

enum dx_counter {
    DX_RECORDS_CORRUPT = 0, /* malformed records skipped in rings */
    DX_RECORDS_ABANDONED,   /* records of producers that died mid-write */
    DX_RECORDS_UNRESOLVED,  /* span references to a template not seen (reader.h) */
    DX_SEGMENTS_REJECTED,   /* unreadable, corrupt or foreign segments */
    DX_SEGMENTS_REAPED,     /* segments of exited processes drained and removed */
    DX_COUNTERS
};

/* Counters kept once per signal. */
enum dx_signal_counter {
    DX_RECORDS_DRAINED = 0, /* taken from rings (traces and logs only) */
    DX_EXPORTED,            /* items delivered (spans, log records, metric points) */
    DX_EXPORT_DROPPED,      /* items given up on */
    DX_REQUESTS_OK,
    DX_REQUESTS_RETRIED,
    DX_REQUESTS_FAILED,
    DX_SIGNAL_COUNTERS
};

struct dx_stats {
    uint64_t counter[DX_COUNTERS];
    uint64_t per_signal[DX_SIGNAL_COUNTERS][DX_SIGNALS];
};

void dx_stats_add(enum dx_counter c, uint64_t n);
void dx_stats_add_signal(enum dx_signal_counter c, enum dx_signal s, uint64_t n);
/* Copies the current values. */
void dx_stats_read(struct dx_stats *out);

#endif
