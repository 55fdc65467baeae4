/*
 * The metric table in the segment: series found by name and labels with
 * open addressing, registered by any thread without locks, updated with
 * atomics so that every update lands.
 */
#ifndef DYNOBS_COMMON_METRICS_H
#define DYNOBS_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "layout.h"
#include "metric_window.h"
#include "util.h"

/* How many slots a lookup probes before the table counts as full. */
#define DYNOBS_METRIC_PROBES 32u

/* Cardinality cap, with OpenTelemetry's overflow semantics: a metric
 * keeps at most `limit` attribute sets of its own; an update that would
 * make one more goes to the metric's overflow series, labelled
 * DYNOBS_METRIC_OVERFLOW_LABELS, so that every measurement lands in
 * exactly one series. In a process the limit is also at most a quarter
 * of the table (DYNOBS_METRIC_SHARE), so one metric never fills it and
 * its overflow series can still be claimed. */
#define DYNOBS_METRIC_CARDINALITY_DEFAULT 2000u
#define DYNOBS_METRIC_SHARE 4u
#define DYNOBS_METRIC_OVERFLOW_KEY "otel.metric.overflow"
#define DYNOBS_METRIC_OVERFLOW_LABELS DYNOBS_METRIC_OVERFLOW_KEY "=true"

/* Series per metric name, in process memory: names whose counts do not
 * fit (more names than entries) send every new series to overflow. */
#define DYNOBS_METRIC_NAMES 256u
struct dynobs_metric_name_count {
    uint64_t hash;   /* of the name, never 0; 0: a free entry */
    uint32_t series; /* attribute sets of its own, overflow not counted */
    uint32_t reserved;
};

struct dynobs_metric_table {
    struct dynobs_metric_slot *slots;
    uint32_t nslots; /* power of two */
    uint64_t *counters;
    /* Layout 3: one window per slot (NULL: no windows kept), and the
     * declared metrics (metric_meta.h) with the header's counters of
     * refused declarations (NULL: not counted). */
    struct dynobs_metric_window *windows;
    uint32_t window_slice_ms, window_slices;
    struct dynobs_metric_meta *metas;
    uint32_t nmetas; /* power of two */
    uint64_t *declare_conflicts, *declare_refused;
    /* Zeroed with the table (segment creation zeroes the segment struct).
     * Last: the words above, which every update reads, then lie on one
     * page with the segment's other hot words (segment.h). */
    struct dynobs_metric_name_count names[DYNOBS_METRIC_NAMES];
};

struct dynobs_metric_def {
    const char *name;
    const char *unit;     /* may be NULL */
    int kind;             /* DYNOBS_METRIC_* */
    const double *bounds; /* histograms; NULL for the default bounds */
    size_t nbounds;
};

extern const double dynobs__default_bounds[15];

/* The cardinality limit of every metric table in this process (0: the
 * default). Takes effect for series registered from now on. */
void dynobs__metric_cardinality_set(uint32_t limit);
/* The cap in force for table t: min(limit, nslots / DYNOBS_METRIC_SHARE). */
uint32_t dynobs__metric_cap(const struct dynobs_metric_table *t);

/* Applies one update: to its own series, or to the metric's overflow
 * series when a new attribute set would pass the cap (counted in
 * DYNOBS_CTR_METRIC_OVERFLOW). Returns 0, -EINVAL (bad name, labels, value or a
 * kind that disagrees with the registered series) or -ENOSPC (the table
 * is full; counted in the header). */
int dynobs__metric_update(struct dynobs_metric_table *t, const struct dynobs_metric_def *d,
                          double value, const char *labels)
    __attribute__((warn_unused_result));

/* Finds the slot an update of d with labels goes to, registering the
 * series when it is new (with the cardinality cap, as an update would),
 * but changes no value: the caller applies updates with
 * dynobs__metric_apply. Returns 0 for the series' own slot, 1 for the
 * metric's overflow series (each update applied there must be counted in
 * DYNOBS_CTR_METRIC_OVERFLOW), or -EINVAL / -ENOSPC as
 * dynobs__metric_update. A slot stays valid for the life of the table. */
int dynobs__metric_resolve(struct dynobs_metric_table *t, const struct dynobs_metric_def *d,
                           const char *labels, struct dynobs_metric_slot **slot)
    __attribute__((warn_unused_result));

/* The slot of an existing series (any kind), registering nothing:
 * 0, -ENOENT when there is none (yet), -EINVAL. */
int dynobs__metric_find(const struct dynobs_metric_table *t, const char *name, const char *labels,
                        struct dynobs_metric_slot **slot);

/* What every update path accepts: a finite value, not negative for a
 * monotonic counter. */
static inline int dynobs__metric_value_ok(int kind, double v)
{
    /* (finite: not all the exponent's bits set, tested on the bits, which
     * takes no constant from .rodata as isfinite does: one page fewer in
     * the stretch of a request's metric, BENCHMARKS.md, "Eighteenth
     * round") */
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x7ff0000000000000ull) != 0x7ff0000000000000ull &&
           !(kind == DYNOBS_METRIC_COUNTER && v < 0);
}

/* The updates of a resolved slot, inline because they are the whole hot
 * path of the handle API and of the per-thread cache. Doubles are kept
 * as bit patterns, so adds, minima and maxima are compare-and-swap loops;
 * bucket counts are one fetch-and-add. */
static inline void dynobs__metric_add_double(uint64_t *p, double v)
{
    uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, dynobs__d2u(dynobs__u2d(old) + v), 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* The bucket of v among n ascending bounds b (checked so at registration):
 * bucket i holds (b[i-1], b[i]], the last (b[n-1], +inf), so i is the
 * number of bounds below v (a NaN is below none). The first bound decides
 * at once for the values under it (most requests' durations); past it,
 * halving takes four steps for the default fifteen bounds, where a scan
 * took up to fifteen. */
static inline unsigned dynobs__bucket_of(const double *b, unsigned n, double v)
{
    if (!n || !(v > b[0]))
        return 0;
    unsigned lo = 1, len = n - 1;
    while (len) {
        unsigned half = len >> 1;
        if (v > b[lo + half]) {
            lo += half + 1;
            len -= half + 1;
        } else {
            len = half;
        }
    }
    return lo;
}

/* (one copy per file that uses it, out of line: DYNOBS_PATH) */
static __attribute__((unused)) DYNOBS_PATH(32) void dynobs__metric_observe(struct dynobs_metric_slot *s,
                                                                         double v)
{
    unsigned i = dynobs__bucket_of(s->bounds, s->nbounds, v);
    __atomic_fetch_add(&s->buckets[i], 1, __ATOMIC_RELAXED);
    dynobs__metric_add_double(&s->value, v);
    /* min and max change rarely: a plain load first, a CAS only then. */
    uint64_t old = __atomic_load_n(&s->min, __ATOMIC_RELAXED);
    while (v < dynobs__u2d(old) &&
           !__atomic_compare_exchange_n(&s->min, &old, dynobs__d2u(v), 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
    old = __atomic_load_n(&s->max, __ATOMIC_RELAXED);
    while (v > dynobs__u2d(old) &&
           !__atomic_compare_exchange_n(&s->max, &old, dynobs__d2u(v), 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
    /* And the current slice of its window, for windowed statistics. */
    struct dynobs_metric_window *w = dynobs__slot_window(s);
    if (w)
        dynobs__window_add(w, 0, v);
}

/* A gauge's set: the value, then its window (metric_window.h). */
static inline void dynobs__metric_set(struct dynobs_metric_slot *s, double v)
{
    __atomic_store_n(&s->value, dynobs__d2u(v), __ATOMIC_RELAXED);
    struct dynobs_metric_window *w = dynobs__slot_window(s);
    if (w)
        dynobs__window_add(w, 1, v);
}

/* One update of a slot, by the kind registered in it. */
static inline void dynobs__metric_apply(struct dynobs_metric_slot *s, double v)
{
    switch (s->kind) {
    case DYNOBS_METRIC_COUNTER:
    case DYNOBS_METRIC_UPDOWN:
        dynobs__metric_add_double(&s->value, v);
        break;
    case DYNOBS_METRIC_GAUGE:
        dynobs__metric_set(s, v);
        break;
    case DYNOBS_METRIC_HISTOGRAM:
        dynobs__metric_observe(s, v);
        break;
    }
}

/* Consumer side: a validated copy of one slot. */
struct dynobs_metric_view {
    int kind;
    char name[DYNOBS_METRIC_KEY_BYTES];
    char labels[DYNOBS_METRIC_KEY_BYTES];
    char unit[DYNOBS_METRIC_UNIT_BYTES + 1];
    double value; /* sum for counters, updown and histograms; gauge value */
    double min, max;
    uint64_t count;
    uint64_t start_ns;
    unsigned nbounds;
    double bounds[DYNOBS_METRIC_MAX_BUCKETS - 1];
    uint64_t buckets[DYNOBS_METRIC_MAX_BUCKETS];
};

/* Returns 0 for a ready, valid slot; -ENOENT for an empty or unfinished
 * one; -EBADMSG when the slot's contents break the layout's rules. */
int dynobs__metric_read(const struct dynobs_metric_slot *s, struct dynobs_metric_view *v);

/* The values of a slot already read once with dynobs__metric_read: its
 * key is immutable, so only the values are read again (atomically), for
 * the kind and bucket count the caller validated then. Returns 0, or
 * -ENOENT if the slot is no longer ready. */
int dynobs__metric_read_values(const struct dynobs_metric_slot *s, int kind, unsigned nbounds,
                               struct dynobs_metric_view *v);

/* Name and label syntax checks, shared with the reader. */
int dynobs__metric_name_ok(const char *s, size_t n);
int dynobs__metric_labels_ok(const char *s, size_t n);

/* Joins key=value pairs into a metric label string ("k1=v1,k2=v2"),
 * leaving out empty values and values that hold ',' or '=' (which the
 * format cannot carry), and what would not fit in cap. The shim's
 * instrumentations and the exporter's eBPF source make their labels so. */
void dynobs__labels_join(char *out, size_t cap, const char *(*parts)[2], size_t n);

/* The semantic conventions' buckets for HTTP request durations (s). */
#define DYNOBS_HTTP_DURATION_NBOUNDS 14
extern const double dynobs__http_duration_bounds[DYNOBS_HTTP_DURATION_NBOUNDS];

#endif
