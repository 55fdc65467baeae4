/*
 * Metrics: the API's updates, and the instrumentations' histograms and
 * label strings, go straight to the segment's metric table.
 */
#include <errno.h>
#include <string.h>

#include "state.h"

#include "../common/metric_window.h"
#include "../common/metrics.h"

/* The per-thread cache of by-name updates: a direct-mapped table in the
 * thread's block, indexed by the name and label pointers (and the kind),
 * so that a call site that passes the same strings again skips the hash
 * and the probe of the table. A hit is trusted only when the segment is
 * the one the entry was filled in (a forked child has another) and both
 * strings still equal the slot's key: comparing them is what remains of
 * the lookup, and what makes a buffer reused for other text miss. */
static inline unsigned cache_index(const char *name, const char *labels, int kind)
{
    uint64_t k = ((uint64_t)(uintptr_t)name ^ ((uint64_t)(uintptr_t)labels << 17) ^ (unsigned)kind) *
                 0x9e3779b97f4a7c15ull;
    return (unsigned)(k >> 58) & (DYNOBS_METRIC_CACHE - 1);
}

static inline int cache_hit(const struct dynobs_metric_cache_entry *e, int kind,
                            const char *name, const char *labels)
{
    if (e->name != name || e->labels != labels || e->kind != kind ||
        e->epoch != dynobs__segment_epoch())
        return 0;
    const struct dynobs_metric_slot *s = e->slot;
    return strcmp(name, s->key) == 0 && strcmp(labels ? labels : "", s->key + s->name_len + 1) == 0;
}

/* Filled with the name last (and emptied first), so that a signal
 * handler recording on this thread meanwhile never takes a half-written
 * entry for a hit. */
static void cache_fill(struct dynobs_metric_cache_entry *e, int kind, const char *name,
                       const char *labels, struct dynobs_metric_slot *slot, uint32_t epoch)
{
    __atomic_store_n(&e->name, NULL, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    e->labels = labels;
    e->kind = kind;
    e->slot = slot;
    e->epoch = epoch;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&e->name, name, __ATOMIC_RELAXED);
}

/* The lookup in the segment's table, for a miss of the cache (e may be
 * NULL: no thread block). Series in overflow are not cached: their slot's
 * key is not the caller's label string, so a hit could not be checked. */
static int update_slow(struct dynobs_segment *s, const struct dynobs_metric_def *d, double value,
                       const char *labels, struct dynobs_metric_cache_entry *e)
{
    uint32_t epoch = dynobs__segment_epoch();
    struct dynobs_metric_slot *slot;
    int rc = dynobs__metric_resolve(&s->metrics, d, labels, &slot);
    if (rc < 0)
        return rc;
    dynobs__metric_apply(slot, value);
    if (rc == 1)
        __atomic_fetch_add(&s->metrics.counters[DYNOBS_CTR_METRIC_OVERFLOW], 1, __ATOMIC_RELAXED);
    else if (e && epoch)
        cache_fill(e, d->kind, d->name, labels, slot, epoch);
    return 0;
}

/* One by-name update: through the calling thread's cache, else the
 * table. seg NULL: the segment is found (or made) on a miss. */
static int update(struct dynobs_segment *seg, const struct dynobs_metric_def *d, double value,
                  const char *labels)
{
    if (!dynobs__metric_value_ok(d->kind, value))
        return -EINVAL;
    struct dynobs_thread *t = dynobs__thread();
    struct dynobs_metric_cache_entry *e = NULL;
    if (DYNOBS_LIKELY(t != NULL)) {
        e = &t->mcache[cache_index(d->name, labels, d->kind)];
        if (DYNOBS_LIKELY(cache_hit(e, d->kind, d->name, labels))) {
            dynobs__metric_apply(e->slot, value);
            return 0;
        }
    }
    if (!seg && !(seg = dynobs__segment())) {
        dynobs__count_lost();
        return -ENOMEM;
    }
    return update_slow(seg, d, value, labels, e);
}

static int record(const struct dynobs_metric_def *d, double value, const char *labels)
{
    if (!d->name)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    int rc = update(NULL, d, value, labels);
    if (rc == -ENOSPC)
        __atomic_fetch_add(&dynobs__ring_of(dynobs__segment(), dynobs__thread())
                                ->counters[DYNOBS_CTR_METRIC_UPDATES_REFUSED],
                           1, __ATOMIC_RELAXED);
    return rc;
}

void dynobs__event_count(const char *name)
{
    struct dynobs_segment *seg = dynobs__segment();
    if (!seg)
        return;
    struct dynobs_metric_def d = {.name = name, .kind = DYNOBS_METRIC_COUNTER};
    if (dynobs__metric_update(&seg->metrics, &d, 1, NULL) < 0)
        dynobs__count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
}

void dynobs__duration_record(struct dynobs_segment *seg, const char *name,
                             const double *bounds, size_t nbounds, double seconds,
                             const char *labels)
{
    struct dynobs_metric_def d = {.name = name, .unit = "s", .kind = DYNOBS_METRIC_HISTOGRAM,
                                  .bounds = bounds, .nbounds = nbounds};
    /* Refused for any reason (table full, labels too long): counted. */
    if (update(seg, &d, seconds, labels) < 0)
        dynobs__count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
}

/* The API's one-call updates, one per instrument kind: the name alone
 * defines the instrument (no unit, default histogram bounds). */
#define UPDATE(fn, instrument)                                                             \
    DYNOBS_API int fn(const char *name, double value, const char *labels)                  \
    {                                                                                      \
        struct dynobs_metric_def d = {.name = name, .kind = (instrument)};                 \
        return record(&d, value, labels);                                                  \
    }

UPDATE(dynobs_counter_add, DYNOBS_METRIC_COUNTER)
UPDATE(dynobs_updown_add, DYNOBS_METRIC_UPDOWN)
UPDATE(dynobs_gauge_set, DYNOBS_METRIC_GAUGE)
UPDATE(dynobs_histogram_record, DYNOBS_METRIC_HISTOGRAM)

DYNOBS_API int dynobs_metric_record(const dynobs_metric_desc *desc, double value,
                                    const char *labels)
{
    if (!desc)
        return DYNOBS_EINVAL;
    struct dynobs_metric_def d = {
        .name = desc->name,
        .unit = desc->unit,
        .kind = desc->kind,
        .bounds = desc->bounds,
        .nbounds = desc->nbounds,
    };
    if (d.kind == DYNOBS_METRIC_HISTOGRAM && d.bounds && d.nbounds == 0)
        d.bounds = NULL;
    return record(&d, value, labels);
}

/* Statistics read back from this process's own segment: the series is
 * found without registering it, and its window read as any reader would
 * (common/metric_window.c). Not a hot path, but lock-free all the same. */
DYNOBS_API int dynobs_metric_stats(const char *name, const char *labels, uint32_t window_ms,
                                   struct dynobs_metric_stats *out)
{
    if (!name || !out)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    /* No segment yet: no series either, and none is made to say so. */
    struct dynobs_segment *seg = dynobs__segment_epoch() ? dynobs__segment() : NULL;
    if (!seg)
        return DYNOBS_ENOENT;
    const struct dynobs_metric_table *t = &seg->metrics;
    if (!t->windows || !t->window_slice_ms)
        return DYNOBS_ENOENT;
    uint64_t k = ((uint64_t)window_ms + t->window_slice_ms - 1) / t->window_slice_ms + 1;
    if (window_ms && k > t->window_slices)
        return DYNOBS_EINVAL;
    struct dynobs_metric_slot *s;
    if (dynobs__metric_find(t, name, labels, &s) < 0)
        return DYNOBS_ENOENT;
    struct dynobs_window_stats w;
    int rc = dynobs__window_stats(s, &t->windows[s - t->slots], t->window_slice_ms,
                                  t->window_slices, dynobs__mono_ns(), window_ms, &w);
    if (rc == -ENOENT) { /* counters: no windows, a value all the same */
        memset(&w, 0, sizeof w);
        w.avg = w.min = w.max = __builtin_nan("");
        w.window_ms = window_ms;
    } else if (rc < 0) {
        return rc;
    }
    out->count = w.count;
    out->sum = w.sum;
    out->avg = w.avg;
    out->min = w.min;
    out->max = w.max;
    out->window_ms = w.window_ms;
    out->kind = s->kind;
    out->value = dynobs__u2d(__atomic_load_n(&s->value, __ATOMIC_RELAXED));
    return 0;
}
