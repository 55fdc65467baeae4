/*
 * State shared by the exporter's parts. Three threads:
 *   main    discovers, drains and reaps segments, fills batches, and runs
 *           the periodic metric export;
 *   sender  encodes batches and sends them (OTLP) or prints them (console);
 *   httpd   libmicrohttpd's thread, rendering /metrics on request.
 * The segment list and the metric store are guarded by dx.lock; the batch
 * queue by dx.qlock.
 */
#ifndef DYNOBS_EXPORTER_H
#define DYNOBS_EXPORTER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "reader.h"
#include "xconfig.h"

/* A process's resource, shared by its segment and by queued records that
 * outlive the segment. Attributes are string key/value pairs except
 * process.pid. */
struct dx_resource {
    int refs; /* atomic */
    int pid;
    char service[DYNOBS_SERVICE_NAME_MAX + 1];
    int nattrs;
    struct dx_kv {
        char *key, *val;
    } *attrs;
};

struct dx_resource *dx_resource_new(const struct dynobs_reader *r, const char *host);
void dx_resource_ref(struct dx_resource *res);
void dx_resource_unref(struct dx_resource *res);

/* One attached segment. */
struct dx_segment {
    struct dx_segment *next;
    char path[1024];
    struct dynobs_reader *rd;
    struct dx_resource *res;
    struct dx_series **slot_series; /* metric slot -> store entry cache */
    int dead;
    int broken; /* its mapping faulted (file truncated): drop and refuse it */
};

/* Batches of records (spans or logs) on their way to the sender. Records
 * are stored back to back: a struct dx_entry, then the record. */
enum dx_kind { DX_TRACES = 0, DX_LOGS = 1, DX_KINDS = 2 };

struct dx_entry {
    struct dx_resource *res;
    uint32_t len; /* record bytes that follow, header included */
    uint32_t pad;
};

struct dx_batch {
    struct dx_batch *next;
    enum dx_kind kind;
    uint32_t count;
    size_t used, cap;
    uint64_t opened_ns; /* monotonic time the first record went in */
    uint8_t *data;
};

/* Counters about the exporter itself, shown on /metrics. */
struct dx_stats {
    uint64_t records_drained[DX_KINDS];
    uint64_t records_corrupt;     /* malformed records skipped in rings */
    uint64_t records_abandoned;   /* records of producers that died mid-write */
    uint64_t segments_rejected;   /* unreadable, corrupt or foreign segments */
    uint64_t segments_reaped;
    uint64_t exported[DX_KINDS + 1];     /* items delivered (+ metric points) */
    uint64_t export_dropped[DX_KINDS + 1]; /* items given up on */
    uint64_t requests_ok[DX_KINDS + 1];
    uint64_t requests_retried[DX_KINDS + 1];
    uint64_t requests_failed[DX_KINDS + 1];
    uint64_t folded_ring_dropped; /* ring drops of reaped processes */
    uint64_t folded_ring_written;
};

struct dx_state {
    struct dx_config cfg;
    char host[256];
    pthread_mutex_t lock; /* segments, store, stats */
    struct dx_segment *segments;
    int nsegments;
    struct dx_stats stats;

    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct dx_batch *filling[DX_KINDS];
    struct dx_batch *qhead, *qtail; /* full batches waiting for the sender */
    uint64_t queued[DX_KINDS];      /* records queued or filling */
    int metrics_due;                /* the sender should export metrics */
    int stopping;
    int sender_busy;
};

extern struct dx_state dx;

/* segments.c (main thread) */
int dx_segments_init(void);
void dx_segments_scan(void);           /* attach what is new in the directory */
int dx_segments_inotify_fd(void);
void dx_segments_inotify_drain(void);  /* handle inotify events: attach new */
size_t dx_segments_drain(void);        /* drain rings into batches */
void dx_segments_reap(void);           /* drain, fold and unlink dead ones; drop broken */
/* A segment's broken flag is set by whichever thread's access faulted
 * (the drain loop, or /metrics rendering) and read by the others. */
static inline int dx_seg_broken(const struct dx_segment *s)
{
    return __atomic_load_n(&s->broken, __ATOMIC_RELAXED);
}
static inline void dx_seg_set_broken(struct dx_segment *s)
{
    __atomic_store_n(&s->broken, 1, __ATOMIC_RELAXED);
}
int dx_segments_any_broken(void);
void dx_segments_close_all(void);

/* queue.c */
int dx_queue_room(enum dx_kind k);     /* records that may still be queued */
int dx_queue_put(enum dx_kind k, struct dx_resource *res, const void *rec, uint32_t len);
void dx_queue_flush_due(int force);    /* move filling batches due to the sender */
struct dx_batch *dx_queue_take(void);  /* sender: next batch or NULL */
void dx_batch_free(struct dx_batch *b);

#endif
