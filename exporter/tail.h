/*
 * Tail sampling, the exporter's side: keeping whole the traces that hold
 * an error span (or a slow one) although the head sampler did not keep
 * them.
 *
 * A shim whose rules keep errors writes the spans of the traces it did
 * not sample anyway, flagged DYNOBS_RECF_UNSAMPLED, and flags a span that
 * is a reason to keep its trace DYNOBS_RECF_KEEP (preload/span.h). Here,
 * unsampled spans are held per trace from the arrival of its first one.
 * When a span of that trace arrives flagged KEEP (sampled or not), the
 * held spans go to the export queue, and the trace is remembered as kept
 * (in a bounded set of recent decisions) so that its later spans pass
 * straight through. A trace that has no reason to be kept once its
 * decision wait is over is dropped: sampled out, not a loss. When the
 * buffer is full (num_traces traces, or its byte budget), the oldest
 * undecided trace is evicted, and counted.
 *
 * Spans kept this way are exported with their trace flags as recorded
 * (sampled bit 0) and carry no probability threshold: they are not a
 * random sample, and must not be counted as one.
 *
 * Everything but dx_tail_read runs on the main thread (the drain loop).
 */
#ifndef DYNOBS_EXPORTER_TAIL_H
#define DYNOBS_EXPORTER_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "process_resource.h"

#define DX_TAIL_WAIT_MS_DEFAULT 5000u
#define DX_TAIL_TRACES_DEFAULT 10000u
#define DX_TAIL_BYTES_DEFAULT ((size_t)64 << 20)

/* The decision wait and the most traces held (0: the default of each),
 * from the rules; takes effect at once (a smaller bound evicts). */
void dx_tail_configure(uint32_t decision_wait_ms, uint32_t num_traces);
/* The byte budget of the held spans (0: the default). */
void dx_tail_set_max_bytes(size_t bytes);

/* Takes a span record flagged DYNOBS_RECF_UNSAMPLED or DYNOBS_RECF_KEEP
 * (others may come too: they are queued), at monotonic time now_ns: it is
 * queued, held or dropped as sampled out. Returns 0, or -1 when it could
 * not be queued (out of memory). */
int dx_tail_span(struct dx_resource *res, const struct dynobs_rec_hdr *h, uint64_t now_ns);

/* Drops the traces whose decision wait is over at now_ns. */
void dx_tail_tick(uint64_t now_ns);

/* At exit, once the rings are drained for the last time: the traces
 * still undecided had no reason to be kept so far, and none will come;
 * they are dropped as decided (counted in `dropped`). Frees everything. */
void dx_tail_finish(void);

struct dx_tail_stats {
    uint64_t kept;          /* traces whose unsampled spans were exported */
    uint64_t dropped;       /* traces dropped as decided (no reason to keep) */
    uint64_t evicted;       /* undecided traces dropped because the buffer was full */
    uint64_t spans_dropped; /* unsampled spans not exported, for either reason */
    uint64_t held_spans;    /* now */
    uint64_t held_traces;   /* now */
    uint64_t held_bytes;    /* now */
};

/* Any thread (/metrics). */
void dx_tail_read(struct dx_tail_stats *out);

#endif
