/*
 * Segments: finding them (inotify, with a periodic rescan as fallback),
 * attaching them after checks, draining their rings into the batch
 * queue, and reaping those of processes that are gone: drain to the end,
 * fold their counters into the running totals, unlink.
 *
 * The main thread alone changes the list (attach, reap) and drains; it
 * walks the list without the lock. Other threads (the sender's metric
 * export, /metrics) read the segments' metric tables: they take the
 * segments' lock, which also guards the metric store (store.h) and the
 * totals folded in from reaped segments, and under which the main thread
 * adds and removes segments.
 */
#ifndef DYNOBS_EXPORTER_SEGMENTS_H
#define DYNOBS_EXPORTER_SEGMENTS_H

#include <stddef.h>
#include <stdint.h>

/* Creates the directory when missing and starts watching it; `host` is
 * the host.name of every resource. Call once, before the threads start. */
int dx_segments_init(const char *dir, const char *host);
void dx_segments_scan(void);           /* attach what is new in the directory */
int dx_segments_inotify_fd(void);      /* for poll(); -1 without inotify */
void dx_segments_inotify_drain(void);  /* handle inotify events: attach new */
size_t dx_segments_drain(void);        /* drain rings into batches; returns records moved */
/* How much of a ring shard the last dx_segments_drain read from the
 * segment it read most from (its records' bytes over a shard's size; what
 * was left as well where the queue stopped it), 0 to 1: what the drain
 * loop paces itself by. */
double dx_segments_fullest(void);
void dx_segments_reap(void);           /* drain, fold and unlink dead ones; drop broken */
int dx_segments_any_broken(void);      /* a mapping faulted: reap soon */
int dx_segments_count(void);           /* attached segments (main thread, or under the lock) */
void dx_segments_close_all(void);

/* The rules table every shim should use (rules_publish.h): written into
 * each segment's consumer page at its next drain, so a shim sees it
 * within one drain interval. 0: the shims' built-in defaults. */
void dx_segments_publish_rules(uint64_t generation);

/* Readers on other threads. */
void dx_segments_lock(void);
void dx_segments_unlock(void);
/* Under the lock: a store snapshot of every live segment (store.h). */
void dx_segments_snapshot(void);
/* Under the lock: fn for each live segment's store source (the metrics
 * API's windowed statistics); a source whose mapping faults (fn returns
 * -1) is marked broken. */
struct dx_store_source;
void dx_segments_each(int (*fn)(struct dx_store_source *src, void *arg), void *arg);
/* Under the lock: a number that changes whenever a segment is attached
 * or removed, so that a part holding store sources between two times it
 * takes the lock (the watch thread) knows whether they are still there. */
uint64_t dx_segments_generation(void);
/* Under the lock: records written to and dropped by the rings of every
 * process, the live ones and the reaped ones. */
void dx_segments_ring_totals(uint64_t *written, uint64_t *dropped);

#endif
