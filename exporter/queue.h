/*
 * The batch queue between the draining main thread and the sender.
 *
 * The main thread fills one batch per queued signal (traces, logs)
 * without locks and hands full (or old enough) batches over under the
 * queue's own lock. The number of queued records is bounded by
 * OTEL_BSP_MAX_QUEUE_SIZE: when it is reached the main thread stops
 * draining, records wait in the applications' rings, and if those fill
 * the applications drop and count. The exporter's memory stays bounded
 * however slow the receiver is.
 *
 * The queue also carries the main thread's other requests to the sender
 * (export the metrics now; stop once everything is out), so that the
 * sender waits on one condition for all of its work.
 */
#ifndef DYNOBS_EXPORTER_QUEUE_H
#define DYNOBS_EXPORTER_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "process_resource.h"
#include "signals.h"

/* Records are stored back to back in a batch: a struct dx_entry, then
 * the record, padded to 8 bytes. */
struct dx_entry {
    struct dx_resource *res; /* one reference held per entry */
    uint32_t len;            /* record bytes that follow, header included */
    uint32_t pad;
};

/* Consecutive entries of one resource: how many references the batch
 * holds on it, counted as it fills so that releasing the batch need not
 * read its records again. */
struct dx_run {
    struct dx_resource *res;
    uint32_t n;
};

struct dx_batch {
    struct dx_batch *next;
    enum dx_signal kind; /* DX_TRACES or DX_LOGS */
    uint32_t count;
    size_t used, cap;
    uint64_t opened_ns; /* monotonic time the first record went in */
    uint8_t *data;
    struct dx_run *runs;
    size_t nruns, runs_cap;
};

/* The bounds, from the configuration (call before the threads start):
 * records per batch, records queued per signal, and how long a batch may
 * fill before it is sent anyway. */
void dx_queue_configure(uint32_t batch_max, uint32_t queue_max, uint64_t delay_ms);

/* Records of signal k go nowhere (its exporter is "none"): dx_queue_put
 * takes them without queueing them, so that a process that exports its
 * spans to no one costs no batches and no sender wake-ups. Before the
 * threads start. */
void dx_queue_discard(enum dx_signal k);

/* Main thread. */
int dx_queue_room(enum dx_signal k); /* records that may still be queued */
int dx_queue_put(enum dx_signal k, struct dx_resource *res, const void *rec, uint32_t len);
void dx_queue_flush_due(int force);  /* move filling batches due to the sender */
void dx_queue_request_metrics(void); /* the sender should export the metrics */
void dx_queue_stop(void);            /* a last metric export, then the sender ends */
/* Nothing queued, nothing due and the sender idle. */
int dx_queue_idle(void);

/* Sender: waits until there is work, then returns the next batch (or
 * NULL) and whether a metric export is due and a stop was asked for. The
 * sender counts as busy from this return until its next call. */
struct dx_batch *dx_queue_wait(int *metrics_due, int *stopping);

/* Records queued or filling, for /metrics (any thread). */
uint64_t dx_queue_queued(enum dx_signal k);

/* Releases a batch taken from the queue and its room. Its memory may be
 * kept for a batch to come. */
void dx_batch_free(struct dx_batch *b);

#endif
