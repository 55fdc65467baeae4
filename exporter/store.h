/*
 * The metric store: every series of every service, summed across the
 * service's processes, plus the running totals folded in from processes
 * that have exited, so that counters and histograms never go backwards.
 * Gauges and up/down counters of exited processes are not kept: their
 * last value says nothing about the live service.
 *
 * All functions run under dx.lock.
 */
#ifndef DYNOBS_EXPORTER_STORE_H
#define DYNOBS_EXPORTER_STORE_H

#include <stdint.h>

#include "exporter.h"
#include "metrics.h"

struct dx_values {
    double value; /* sum for counter/updown/histogram; gauge value */
    double min, max;
    uint64_t count;
    uint64_t buckets[DYNOBS_METRIC_MAX_BUCKETS];
    uint64_t start_ns;
};

struct dx_family;

struct dx_series {
    struct dx_series *next_in_family;
    struct dx_series *hnext; /* hash chain */
    struct dx_family *family;
    const char *service; /* interned: one pointer per service name */
    char *name;   /* OpenTelemetry name */
    char *labels; /* "k=v,k=v" sorted by key */
    char *prom_labels; /* service_name="..",k="v" ready for the exposition */
    size_t prom_labels_len;
    struct dx_resource *res; /* a resource of the service, for OTLP */
    int kind;
    char unit[DYNOBS_METRIC_UNIT_BYTES + 1];
    unsigned nbounds;
    double bounds[DYNOBS_METRIC_MAX_BUCKETS - 1];
    int has_folded;
    struct dx_values folded; /* totals of exited processes */
    uint64_t gen;            /* snapshot that last filled `now` */
    struct dx_values now;    /* folded + live, as of snapshot gen */
};

/* Series grouped by Prometheus name, so that each family prints one
 * HELP and TYPE line. */
struct dx_family {
    struct dx_family *next;
    char *prom_name; /* base name, unit suffix included, without _total */
    size_t prom_name_len;
    int kind;
    struct dx_series *series, *last;
};

extern struct dx_family *dx_families;
extern uint64_t dx_store_gen;
extern uint64_t dx_store_conflicts; /* series left out: kind or bounds disagree */

/* Recomputes every series from the live segments and the folded totals;
 * series that have neither are skipped (gen != dx_store_gen). */
void dx_store_snapshot(void);

/* A process is gone: adds its counters and histograms to the totals. */
void dx_store_fold(struct dx_segment *s);

/* The Prometheus form of an OpenTelemetry metric name and unit. */
void dx_prom_name(const char *name, const char *unit, int kind, char *out, size_t cap);

#endif
