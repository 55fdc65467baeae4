/*
 * The metric store: every series of every service, summed across the
 * service's processes, plus the running totals folded in from processes
 * that have exited, so that counters and histograms never go backwards.
 * Gauges and up/down counters of exited processes are not kept: their
 * last value says nothing about the live service.
 *
 * The store keeps no lock of its own: it mirrors the segment list, and
 * every function runs under the segments' lock (segments.h), taken by
 * whichever thread reads or changes the list.
 */
#ifndef DYNOBS_EXPORTER_STORE_H
#define DYNOBS_EXPORTER_STORE_H

#include <stdint.h>

#include "metrics.h"
#include "process_resource.h"
#include "reader.h"
#include "rules.h"

/* The start time follows the sum so that a counter's values share the
 * series' first cache line (struct dx_series). */
struct dx_values {
    double value; /* sum for counter/updown/histogram; gauge value */
    uint64_t start_ns;
    double min, max;
    uint64_t count;
    uint64_t buckets[DYNOBS_METRIC_MAX_BUCKETS];
};

struct dx_family;

/* The fields every snapshot and every scrape reads come first, so that a
 * counter or gauge series costs them one cache line: with 10 000 series
 * the store is larger than the caches, and a scrape is mostly misses. */
struct dx_series {
    struct dx_series *next_in_family;
    char *prom_labels; /* service_name="..",k="v" ready for the exposition */
    size_t prom_labels_len;
    uint64_t gen; /* snapshot that last filled `now` */
    int kind;
    int dropped; /* a rules filter leaves it out of the exports (metric_filter.h) */
    unsigned nbounds;
    int has_folded;
    struct dx_values now; /* folded + live, as of snapshot gen */
    struct dx_series *hnext; /* hash chain */
    struct dx_family *family;
    const char *service; /* interned: one pointer per service name */
    char *name;   /* OpenTelemetry name */
    char *labels; /* "k=v,k=v" sorted by key */
    struct dx_resource *res; /* a resource of the service, for OTLP */
    char unit[DYNOBS_METRIC_UNIT_BYTES + 1];
    double bounds[DYNOBS_METRIC_MAX_BUCKETS - 1];
    /* The bounds as the exposition prints them in le="..": their texts
     * one after the other, prom_le_len[i] bytes each; NULL when out of
     * memory (then printed at each scrape) and for other kinds. */
    char *prom_le;
    uint8_t prom_le_len[DYNOBS_METRIC_MAX_BUCKETS - 1];
    struct dx_series *next_folded; /* the store's list of series with has_folded */
    struct dx_values folded;       /* totals of exited processes */
};

/* Series grouped by Prometheus name, so that each family prints one
 * HELP and TYPE line. */
struct dx_family {
    struct dx_family *next;
    char *prom_name; /* base name, unit suffix included, without _total */
    size_t prom_name_len;
    int kind;
    struct dx_series *series, *last;
    /* The same series in an array, in the same order: a walk that loads
     * them through the array can have the next ones' cache lines on the
     * way while it prints one (a list walk waits for each in turn). */
    struct dx_series **all;
    size_t n, cap;
    /* What a process declared for the metric (metric_meta.h), found when
     * a series of the family is first seen; NULL, or "", when undeclared
     * (# HELP then says "dynobs metric NAME"). */
    char *description;
};

/* Where the store reads one process's metrics: its segment's reader and
 * resource, and a cache from metric slot to series (metric_slots
 * entries, zeroed) that the store fills. Owned by the segment. */
struct dx_store_source {
    struct dynobs_reader *rd;
    struct dx_resource *res;
    struct dx_series **slot_series;
};

/* A snapshot recomputes every series from the live sources and the
 * folded totals: begin, add each live source, end. Series that have
 * neither are left out of it (dx_series_current() is false). */
void dx_store_snapshot_begin(void);
/* Returns 0, or -1 when the source's mapping faulted (SIGBUS): the
 * caller marks its segment broken. */
int dx_store_snapshot_add(struct dx_store_source *src);
void dx_store_snapshot_end(void);

/* A process is gone: adds its counters and histograms to the totals.
 * The caller guards against SIGBUS. */
void dx_store_fold(struct dx_store_source *src);

/* The families, in the order they appeared. */
struct dx_family *dx_store_families(void);
/* Whether a series has values in the latest snapshot. */
int dx_series_current(const struct dx_series *s);
/* Whether a series is exported (/metrics, OTLP, console): it has values
 * in the latest snapshot and no filter of the rules in force drops it. */
int dx_series_exported(const struct dx_series *s);
/* Series left out because processes disagree on their kind or buckets. */
uint64_t dx_store_conflicts(void);

/* The rules table in force (valid for the life of the exporter): its
 * filters decide which series are dropped from the exports, for every
 * series now and for each new one when it is created. Dropped series
 * keep accumulating, so that they come back with their full totals. */
void dx_store_set_rules(const struct dynobs_rules *r);
/* Series the rules in force drop. */
uint64_t dx_store_filtered(void);

/* At most `limit` attribute sets per service and metric name (0: the
 * default, DYNOBS_METRIC_CARDINALITY_DEFAULT); new sets past it fold
 * into the metric's overflow series (otel.metric.overflow=true). Applies
 * to series first seen from now on. */
void dx_store_set_cardinality_limit(uint32_t limit);

/* A query of the metrics API (stats_api.h, watch_sse.h): series named
 * `name` as recorded ("http.server.request.duration") or as exported to
 * Prometheus ("http_server_request_duration_seconds", a counter's with or
 * without _total), and with exactly the labels given ("k=v,k=v", in any
 * order), or any labels when NULL. */
struct dx_store_query {
    const char *name;
    char *labels; /* sorted by key, or NULL */
};
/* 0, or -ENOMEM. */
int dx_store_query_init(struct dx_store_query *q, const char *name, const char *labels);
void dx_store_query_free(struct dx_store_query *q);
int dx_store_query_matches(const struct dx_store_query *q, const struct dx_series *s);
/* Calls fn for every slot of a live source whose series matches q (the
 * slots seen by the latest snapshot), under the SIGBUS guard. Returns
 * 0, or -1 when the mapping faulted. */
int dx_store_query_slots(struct dx_store_source *src, const struct dx_store_query *q,
                         void (*fn)(void *arg, const struct dx_series *s,
                                    struct dx_store_source *src, uint32_t slot),
                         void *arg);

/* A slot of a live source known to hold series s (dx_store_query_slots). */
struct dx_store_slot_ref {
    struct dx_store_source *src;
    uint32_t slot;
    const struct dx_series *s;
};
/* The values of n such slots read again without a snapshot, under one
 * SIGBUS guard: values[k] is refs[k]'s value, or NaN when the slot is no
 * longer ready (recorded values are finite). 0, or -EFAULT when a
 * mapping faulted (values then unset). For a counter, what exited
 * processes added is not in it (s->folded). */
int dx_store_slot_values(const struct dx_store_slot_ref *refs, size_t n, double *values);

/* A service's cardinality counts: updates its processes sent to overflow
 * series (live and exited, as of the latest snapshot), and process
 * series the store folded into overflow series. */
struct dx_service_caps {
    const char *service;
    uint64_t overflow_updates;
    uint64_t series_folded;
};
/* Iterates the services: start with NULL, pass back what it returned;
 * NULL at the end. */
const void *dx_store_service_next(const void *it, struct dx_service_caps *out);

#endif
