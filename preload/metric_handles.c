/*
 * Metric handles: a series looked up once by name and labels, then
 * updated with nothing but the atomic update of its slot.
 *
 * Handles live in one array mapped at the first get and never freed, so
 * a handle is valid for the life of the process, and in forked children,
 * whose copy of the array is their own. A lock-free hash index finds a
 * handle again, so that asking for the same name, labels and kind twice
 * does not use up the array. A handle keeps its whole key (name, labels,
 * unit, bounds) because a forked child has a segment of its own, where
 * the series must be registered again: the slot address is trusted only
 * while the segment epoch it was found in is current.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include "lazymap.h"
#include "state.h"

#include "../common/metric_meta.h"
#include "../common/metrics.h"

struct dynobs_metric {
    /* What an update reads comes first, in one cache line. */
    uint32_t epoch; /* atomic: dynobs__seg_epoch when slot was found; 0: never */
    uint8_t kind;   /* DYNOBS_METRIC_*; 0: the handle of a disabled process */
    uint8_t name_len, labels_len, nbounds;
    uintptr_t slot; /* atomic: the slot's address, | 1 for the overflow series */
    uint64_t hash;  /* of the kind and key: what the index is keyed by */
    char unit[DYNOBS_METRIC_UNIT_BYTES];
    double bounds[DYNOBS_HISTOGRAM_MAX_BOUNDS];
    char key[DYNOBS_METRIC_KEY_BYTES]; /* name NUL labels NUL */
};

#define SLOT_OVERFLOW ((uintptr_t)1)
/* Twice as many index entries as handles keeps the probes short. */
#define INDEX_SLOTS (2u * DYNOBS_METRIC_HANDLES)
#define ARRAY_BYTES (sizeof(struct dynobs_metric) * DYNOBS_METRIC_HANDLES)

/* Both mapped at the first get (lazymap.h), never freed; only the pages
 * of handles actually made are ever touched (about 450 bytes a handle). */
static void *handles;                 /* struct dynobs_metric[DYNOBS_METRIC_HANDLES] */
static void *index_;                  /* uint32_t[INDEX_SLOTS]: a handle's number + 1; 0: free */
static uint32_t used;                 /* handles handed out, or lost to a race */
static struct dynobs_metric disabled; /* kind 0: every update says so */

static struct dynobs_metric *array(void)
{
    return dynobs__lazymap(&handles, ARRAY_BYTES);
}

static int same(const struct dynobs_metric *h, uint64_t hash, int kind, const char *key,
                size_t nl, size_t ll)
{
    return h->hash == hash && h->kind == kind && h->name_len == nl && h->labels_len == ll &&
           memcmp(h->key, key, nl + ll + 2) == 0;
}

/* A new handle, not yet in the index; NULL when all are taken. The
 * caller sees NULL from get, so the refusal needs no counter. */
static struct dynobs_metric *make(const struct dynobs_metric_def *d, uint64_t hash,
                                  const char *key, size_t nl, size_t ll)
{
    struct dynobs_metric *a = array();
    if (!a)
        return NULL;
    uint32_t n = __atomic_fetch_add(&used, 1, __ATOMIC_RELAXED);
    if (n >= DYNOBS_METRIC_HANDLES)
        return NULL;
    struct dynobs_metric *h = &a[n];
    h->kind = (uint8_t)d->kind;
    h->name_len = (uint8_t)nl;
    h->labels_len = (uint8_t)ll;
    h->hash = hash;
    if (d->unit)
        strncpy(h->unit, d->unit, sizeof h->unit - 1);
    if (d->bounds) {
        memcpy(h->bounds, d->bounds, d->nbounds * sizeof *d->bounds);
        h->nbounds = (uint8_t)d->nbounds;
    }
    memcpy(h->key, key, nl + ll + 2);
    return h;
}

static dynobs_metric *get(const struct dynobs_metric_def *d, const char *labels)
{
    if (!d->name)
        return NULL;
    /* A handle made while another thread initialises dynobs works once
     * it is on; only a process where dynobs is off gets the dummy. */
    if (!dynobs__on() && __atomic_load_n(&dynobs__state, __ATOMIC_ACQUIRE) != DYNOBS_INITING)
        return &disabled;
    if (!labels)
        labels = "";
    size_t nl = strlen(d->name), ll = strlen(labels);
    /* The checks an update makes when it registers a series, but for the
     * bounds (a bad table is refused at the first update, as by name). */
    if (nl + ll + 2 > DYNOBS_METRIC_KEY_BYTES || d->kind < DYNOBS_METRIC_COUNTER ||
        d->kind > DYNOBS_METRIC_HISTOGRAM || !dynobs__metric_name_ok(d->name, nl) ||
        !dynobs__metric_labels_ok(labels, ll) || d->nbounds > DYNOBS_HISTOGRAM_MAX_BOUNDS)
        return NULL;
    char key[DYNOBS_METRIC_KEY_BYTES];
    memcpy(key, d->name, nl + 1);
    memcpy(key + nl + 1, labels, ll + 1);
    uint64_t hash = dynobs__hash(key, nl + ll + 2, 0x64796e6f62730002ull + (unsigned)d->kind);
    struct dynobs_metric *a = array(), *mine = NULL;
    uint32_t *index = dynobs__lazymap(&index_, INDEX_SLOTS * sizeof(uint32_t));
    if (!a || !index)
        return NULL;
    for (uint32_t p = 0; p < INDEX_SLOTS; p++) {
        uint32_t *x = &index[(hash + p) & (INDEX_SLOTS - 1)];
        uint32_t v = __atomic_load_n(x, __ATOMIC_ACQUIRE);
        if (v == 0) {
            if (!mine && !(mine = make(d, hash, key, nl, ll)))
                return NULL;
            /* Publishing the number publishes the handle filled above. */
            if (__atomic_compare_exchange_n(x, &v, (uint32_t)(mine - a) + 1, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return mine;
            /* Lost the race for this entry: v now holds the winner's. */
        }
        if (same(&a[v - 1], hash, d->kind, key, nl, ll))
            return &a[v - 1]; /* `mine`, if made, stays unused */
    }
    return mine; /* cannot happen: the index has room for every handle */
}

#define GET(fn, instrument)                                                                \
    DYNOBS_API dynobs_metric *fn(const char *name, const char *labels)                     \
    {                                                                                      \
        struct dynobs_metric_def d = {.name = name, .kind = (instrument)};                 \
        return get(&d, labels);                                                            \
    }

GET(dynobs_counter_get, DYNOBS_METRIC_COUNTER)
GET(dynobs_updown_get, DYNOBS_METRIC_UPDOWN)
GET(dynobs_gauge_get, DYNOBS_METRIC_GAUGE)
GET(dynobs_histogram_get, DYNOBS_METRIC_HISTOGRAM)

DYNOBS_API dynobs_metric *dynobs_metric_get(const dynobs_metric_desc *desc, const char *labels)
{
    if (!desc)
        return NULL;
    struct dynobs_metric_def d = {.name = desc->name, .unit = desc->unit, .kind = desc->kind};
    /* As dynobs_metric_record: bounds only for histograms, none when empty. */
    if (desc->kind == DYNOBS_METRIC_HISTOGRAM && desc->bounds && desc->nbounds) {
        d.bounds = desc->bounds;
        d.nbounds = desc->nbounds;
    }
    return get(&d, labels);
}

/* One declaration: written to the segment's metadata (when dynobs is on
 * and the segment can be had), and a handle unless the declaration is
 * malformed or conflicts, since the metric is usable either way. */
static int declare(const dynobs_metric_decl *x, dynobs_metric **handle)
{
    struct dynobs_metric_def d = {.name = x->name, .unit = x->unit, .kind = x->kind};
    if (x->kind == DYNOBS_METRIC_HISTOGRAM && x->bounds && x->nbounds) {
        d.bounds = x->bounds;
        d.nbounds = x->nbounds;
    }
    int rc = DYNOBS_EDISABLED;
    if (dynobs__on()) {
        struct dynobs_segment *s = dynobs__segment();
        if (s) {
            rc = dynobs__meta_declare(&s->metrics, &d, x->description);
        } else {
            dynobs__count_lost();
            rc = DYNOBS_ENOMEM;
        }
    }
    if (handle)
        *handle = rc == DYNOBS_EEXIST || rc == DYNOBS_EINVAL ? NULL : get(&d, x->labels);
    return rc;
}

DYNOBS_API int dynobs_metrics_declare(const dynobs_metric_decl *decls, size_t n,
                                      dynobs_metric **out)
{
    if (!decls)
        return n ? DYNOBS_EINVAL : 0;
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = declare(&decls[i], out ? &out[i] : NULL);
        if (rc < 0 && !first)
            first = rc;
    }
    return first;
}

static __attribute__((noinline)) void count(unsigned c)
{
    dynobs__count(c);
}

/* The first update through a handle, or the first in a new segment:
 * registers the series (or finds it) and remembers its slot. */
static __attribute__((noinline)) int resolve(struct dynobs_metric *h, double value)
{
    if (!dynobs__on())
        return DYNOBS_EDISABLED; /* still initialising */
    struct dynobs_segment *s = dynobs__segment();
    if (!s) {
        dynobs__count_lost();
        return DYNOBS_ENOMEM;
    }
    uint32_t epoch = dynobs__segment_epoch();
    struct dynobs_metric_def d = {
        .name = h->key,
        .unit = h->unit[0] ? h->unit : NULL,
        .kind = h->kind,
        .bounds = h->nbounds ? h->bounds : NULL,
        .nbounds = h->nbounds,
    };
    struct dynobs_metric_slot *slot;
    int rc = dynobs__metric_resolve(&s->metrics, &d, h->key + h->name_len + 1, &slot);
    if (rc < 0) {
        if (rc == -ENOSPC)
            count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
        return rc;
    }
    /* The slot before the epoch: a thread that sees this epoch sees this
     * slot (or one another thread found for the same key since). */
    if (epoch) {
        __atomic_store_n(&h->slot, (uintptr_t)slot | (rc == 1 ? SLOT_OVERFLOW : 0),
                         __ATOMIC_RELAXED);
        __atomic_store_n(&h->epoch, epoch, __ATOMIC_RELEASE);
    }
    dynobs__metric_apply(slot, value);
    if (rc == 1)
        count(DYNOBS_CTR_METRIC_OVERFLOW);
    return 0;
}

/* An update through a handle. kind is a constant in every caller but the
 * general one, so the switch below folds to the one update of the kind. */
static inline __attribute__((always_inline)) int update(struct dynobs_metric *h, int kind,
                                                        double value)
{
    if (DYNOBS_UNLIKELY(!h))
        return DYNOBS_EINVAL;
    if (DYNOBS_UNLIKELY(h->kind != kind || !kind))
        return h->kind ? DYNOBS_EINVAL : DYNOBS_EDISABLED;
    if (DYNOBS_UNLIKELY(!dynobs__metric_value_ok(kind, value)))
        return DYNOBS_EINVAL;
    uint32_t epoch = __atomic_load_n(&h->epoch, __ATOMIC_ACQUIRE);
    uintptr_t sw = __atomic_load_n(&h->slot, __ATOMIC_RELAXED);
    if (DYNOBS_UNLIKELY(epoch != dynobs__segment_epoch() || !sw))
        return resolve(h, value);
    struct dynobs_metric_slot *s = (struct dynobs_metric_slot *)(sw & ~SLOT_OVERFLOW);
    switch (kind) {
    case DYNOBS_METRIC_COUNTER:
    case DYNOBS_METRIC_UPDOWN:
        dynobs__metric_add_double(&s->value, value);
        break;
    case DYNOBS_METRIC_GAUGE:
        dynobs__metric_set(s, value); /* with its window */
        break;
    default:
        dynobs__metric_observe(s, value);
        break;
    }
    if (DYNOBS_UNLIKELY(sw & SLOT_OVERFLOW))
        count(DYNOBS_CTR_METRIC_OVERFLOW);
    return 0;
}

DYNOBS_API int dynobs_counter_add_h(dynobs_metric *h, double value)
{
    return update(h, DYNOBS_METRIC_COUNTER, value);
}

DYNOBS_API int dynobs_updown_add_h(dynobs_metric *h, double value)
{
    return update(h, DYNOBS_METRIC_UPDOWN, value);
}

DYNOBS_API int dynobs_gauge_set_h(dynobs_metric *h, double value)
{
    return update(h, DYNOBS_METRIC_GAUGE, value);
}

DYNOBS_API int dynobs_histogram_record_h(dynobs_metric *h, double value)
{
    return update(h, DYNOBS_METRIC_HISTOGRAM, value);
}

DYNOBS_API int dynobs_metric_record_h(dynobs_metric *h, double value)
{
    return update(h, h ? h->kind : 0, value);
}
