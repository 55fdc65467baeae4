#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "diag.h"
#include "guard.h"
#include "metric_filter.h"
#include "prom_naming.h"
#include "metric_meta.h"
#include "util.h"

_Static_assert(offsetof(struct dx_series, now.start_ns) + sizeof(uint64_t) <= 64,
               "a counter's values share the series' first cache line");

static struct dx_family *families;
static struct dx_series *folded_series; /* those with has_folded */
static uint64_t gen;       /* the latest snapshot */
static uint64_t conflicts; /* series left out: kind or bounds disagree */
static const struct dynobs_rules *rules; /* in force: its filters drop series */
static uint64_t filtered;                /* series dropped by them */

#define HBITS 14
static struct dx_series *table[1u << HBITS];

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the "k=v" pairs of a label string by key, so that the same label
 * set written in two orders is one series. */
static char *normalise_labels(const char *labels)
{
    char *copy = strdup(labels), *parts[128];
    if (!copy)
        return NULL;
    int n = 0;
    for (char *save, *p = strtok_r(copy, ",", &save); p && n < 128; p = strtok_r(NULL, ",", &save))
        parts[n++] = p;
    qsort(parts, (size_t)n, sizeof parts[0], cmp_str);
    char *out = malloc(strlen(labels) + 1);
    if (out) {
        size_t o = 0;
        for (int i = 0; i < n; i++) {
            size_t l = strlen(parts[i]);
            if (i)
                out[o++] = ',';
            memcpy(out + o, parts[i], l);
            o += l;
        }
        out[o] = '\0';
    }
    free(copy);
    return out;
}

static struct dx_family *family_for(const char *prom, int kind)
{
    struct dx_family *f, **tail = &families;
    for (f = families; f; f = f->next) {
        if (!strcmp(f->prom_name, prom))
            return f;
        tail = &f->next;
    }
    f = calloc(1, sizeof *f);
    if (!f || !(f->prom_name = strdup(prom))) {
        free(f);
        return NULL;
    }
    f->kind = kind;
    f->prom_name_len = strlen(prom);
    *tail = f;
    return f;
}

/* Service names, interned so that series of one service share a pointer,
 * with the service's cardinality counts. */
struct interned {
    struct interned *next;
    uint64_t overflow_folded; /* shim overflow updates of exited processes */
    uint64_t overflow_live;   /* ... of live ones, as of snapshot overflow_gen */
    uint64_t overflow_gen;
    uint64_t series_folded; /* process series this store mapped to overflow */
    char name[];
};
static struct interned *services;

static struct interned *service(const char *name)
{
    for (struct interned *i = services; i; i = i->next)
        if (!strcmp(i->name, name))
            return i;
    struct interned *i = calloc(1, sizeof *i + strlen(name) + 1);
    if (!i)
        return NULL;
    strcpy(i->name, name);
    i->next = services;
    services = i;
    return i;
}

static const char *intern(const char *name)
{
    struct interned *i = service(name);
    return i ? i->name : NULL;
}

/* The cardinality cap per service and metric name (OpenTelemetry's
 * overflow semantics): at most `limit` attribute sets of their own; a new
 * set past it is folded into the metric's overflow series, labelled
 * DYNOBS_METRIC_OVERFLOW_LABELS, whose values are the sums of everything
 * folded (histograms merged bucket by bucket, min of mins, max of maxes;
 * gauges and up/down counters summed like a service's processes are, so
 * that the sum over a metric's series is the same with or without the
 * cap). Series are never removed and a process slot keeps the series it
 * was mapped to, so a set folded stays folded and a set of its own stays
 * its own: no series flaps between the two across snapshots. */
static uint32_t cardinality_limit = DYNOBS_METRIC_CARDINALITY_DEFAULT;

void dx_store_set_cardinality_limit(uint32_t limit)
{
    cardinality_limit = limit ? limit : DYNOBS_METRIC_CARDINALITY_DEFAULT;
}

/* Attribute sets of their own per (service, metric name). */
struct card {
    struct card *next;
    const char *service; /* interned */
    uint32_t series;
    char name[];
};
#define CBITS 12
static struct card *cards[1u << CBITS];

static struct card *card_for(const char *service, const char *name)
{
    uint64_t h = dynobs__hash(name, strlen(name), (uint64_t)(uintptr_t)service);
    struct card **head = &cards[h & ((1u << CBITS) - 1)];
    for (struct card *c = *head; c; c = c->next)
        if (c->service == service && !strcmp(c->name, name))
            return c;
    struct card *c = calloc(1, sizeof *c + strlen(name) + 1);
    if (!c)
        return NULL;
    c->service = service;
    strcpy(c->name, name);
    c->next = *head;
    *head = c;
    return c;
}

static uint64_t key_hash(const char *service, const char *name, const char *labels)
{
    uint64_t h = dynobs__hash(service, strlen(service), 1);
    h = dynobs__hash(name, strlen(name), h);
    return dynobs__hash(labels, strlen(labels), h);
}

static struct dx_series *find(const char *service, const char *name, const char *labels)
{
    uint64_t h = key_hash(service, name, labels) & ((1u << HBITS) - 1);
    for (struct dx_series *s = table[h]; s; s = s->hnext)
        if (!strcmp(s->service, service) && !strcmp(s->name, name) && !strcmp(s->labels, labels))
            return s;
    return NULL;
}

static struct dx_series *create(const struct dx_resource *res, const struct dynobs_metric_view *v,
                                char *labels);

/* Decides whether the rules in force drop a series, keeping the count. */
static void decide(struct dx_series *s)
{
    int drop = dx_metric_filter_drops(rules, s->service, s->name);
    if (drop && !s->dropped)
        filtered++;
    else if (!drop && s->dropped)
        filtered--;
    s->dropped = drop;
}

/* Finds or creates the series of this service for a metric view: its
 * own, or its metric's overflow series (*folded set) past the cap. */
static struct dx_series *series_for(const struct dx_resource *res,
                                    const struct dynobs_metric_view *v, int *folded)
{
    char *labels = normalise_labels(v->labels);
    if (!labels)
        return NULL;
    struct dx_series *s = find(res->service, v->name, labels);
    if (s) {
        free(labels);
        return s;
    }
    if (!strcmp(labels, DYNOBS_METRIC_OVERFLOW_LABELS))
        return create(res, v, labels); /* a shim's overflow series: not capped */
    const char *svc = intern(res->service);
    struct card *c = svc ? card_for(svc, v->name) : NULL;
    if (!c) {
        free(labels);
        return NULL;
    }
    if (c->series < cardinality_limit) {
        s = create(res, v, labels);
        c->series += s != NULL;
        return s;
    }
    free(labels);
    *folded = 1;
    s = find(res->service, v->name, DYNOBS_METRIC_OVERFLOW_LABELS);
    if (s)
        return s;
    char *over = strdup(DYNOBS_METRIC_OVERFLOW_LABELS);
    return over ? create(res, v, over) : NULL;
}

/* The bounds of a histogram as le="..." prints them, once per series
 * instead of once per bucket line and scrape. */
static void le_texts(struct dx_series *s)
{
    char text[DYNOBS_METRIC_MAX_BUCKETS - 1][40];
    size_t total = 0;
    for (unsigned i = 0; i < s->nbounds; i++) {
        int n = dx_fmt_double(text[i], sizeof text[i], s->bounds[i]);
        if (n <= 0 || n >= (int)sizeof text[i])
            return; /* cannot happen for a finite double; printed per scrape then */
        s->prom_le_len[i] = (uint8_t)n;
        total += (size_t)n;
    }
    char *p = malloc(total + 1);
    if (!p)
        return;
    s->prom_le = p;
    for (unsigned i = 0; i < s->nbounds; i++) {
        memcpy(p, text[i], s->prom_le_len[i]);
        p += s->prom_le_len[i];
    }
}

/* Room for one more series in the family's array. */
static int room_in_family(struct dx_family *f)
{
    if (f->n < f->cap)
        return 0;
    size_t cap = f->cap ? f->cap * 2 : 16;
    struct dx_series **all = realloc(f->all, cap * sizeof *all);
    if (!all)
        return -1;
    f->all = all;
    f->cap = cap;
    return 0;
}

/* A new series for a view, under the labels given (taken over). */
static struct dx_series *create(const struct dx_resource *res, const struct dynobs_metric_view *v,
                                char *labels)
{
    uint64_t h = key_hash(res->service, v->name, labels) & ((1u << HBITS) - 1);
    char prom[512];
    dx_prom_name(v->name, v->unit, v->kind, prom, sizeof prom);
    struct dx_family *f = family_for(prom, v->kind);
    struct dx_series *s = calloc(1, sizeof *s);
    if (!f || !s || room_in_family(f) < 0 || !(s->service = intern(res->service)) ||
        !(s->name = strdup(v->name))) {
        free(s);
        free(labels);
        return NULL;
    }
    s->labels = labels;
    s->prom_labels = dx_prom_labels(res->service, labels);
    s->prom_labels_len = s->prom_labels ? strlen(s->prom_labels) : 0;
    s->family = f;
    s->kind = v->kind;
    memcpy(s->unit, v->unit, sizeof s->unit);
    s->nbounds = v->nbounds;
    memcpy(s->bounds, v->bounds, sizeof s->bounds);
    s->res = (struct dx_resource *)res;
    dx_resource_ref(s->res);
    if (s->kind == DYNOBS_METRIC_HISTOGRAM)
        le_texts(s);
    decide(s);
    f->all[f->n++] = s;
    s->hnext = table[h];
    table[h] = s;
    /* Append, so that series print in the order they appeared. */
    if (f->last)
        f->last->next_in_family = s;
    else
        f->series = s;
    f->last = s;
    return s;
}

static int compatible(const struct dx_series *s, const struct dynobs_metric_view *v)
{
    if (s->kind != v->kind || s->family->kind != v->kind)
        return 0;
    if (v->kind != DYNOBS_METRIC_HISTOGRAM)
        return 1;
    return s->nbounds == v->nbounds &&
           !memcmp(s->bounds, v->bounds, sizeof(double) * v->nbounds);
}

static void add_values(struct dx_values *to, const struct dynobs_metric_view *v, int kind)
{
    if (!to->start_ns || (v->start_ns && v->start_ns < to->start_ns))
        to->start_ns = v->start_ns;
    to->value += v->value;
    if (kind == DYNOBS_METRIC_HISTOGRAM) {
        if (to->count == 0 || v->min < to->min)
            to->min = v->min;
        if (to->count == 0 || v->max > to->max)
            to->max = v->max;
        to->count += v->count;
        for (unsigned i = 0; i <= v->nbounds; i++)
            to->buckets[i] += v->buckets[i];
    }
}

/* The description a process declared for a metric, looked up when a
 * series of a family without one is first seen. The metadata table is
 * small (meta_slots entries, 128 by default) and this runs once per new
 * series, so it is walked rather than hashed: the hash is the shim's
 * business. A description declared after a family's first series was
 * seen is picked up with the family's next new series. */
static void find_description(struct dx_family *f, const struct dynobs_reader *rd, const char *name)
{
    if (f->description)
        return;
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < rd->hdr.meta_slots; i++) {
        struct dynobs_metric_meta_view m;
        if (dynobs__reader_meta(rd, i, &m) != 0 || m.name_len != nl || memcmp(m.name, name, nl))
            continue;
        if (m.description_len)
            f->description = strndup(m.description, m.description_len);
        return;
    }
}

/* First sight of a slot: find its series, and remember it only when the
 * slot agrees with the series on kind and buckets. */
static int compatible_or_new(struct dx_store_source *seg, uint32_t i,
                             const struct dynobs_metric_view *v)
{
    int folded = 0;
    struct dx_series *s = series_for(seg->res, v, &folded);
    if (!s)
        return 0;
    if (!compatible(s, v)) {
        conflicts++;
        return 0;
    }
    find_description(s->family, seg->rd, v->name);
    if (folded) {
        struct interned *svc = service(s->service);
        if (svc)
            svc->series_folded++;
    }
    seg->slot_series[i] = s;
    return 1;
}

/* The current values of slot i of a segment and the series they belong
 * to, or NULL for an empty, unfinished, corrupt or conflicting slot. */
static struct dx_series *slot_values(struct dx_store_source *seg, uint32_t i,
                                     struct dynobs_metric_view *v)
{
    struct dynobs_reader *rd = seg->rd;
    struct dx_series *s = seg->slot_series[i];
    if (s) /* known slot: its key was checked and cannot change */
        return dynobs__metric_read_values(&rd->slots[i], s->kind, s->nbounds, v) == 0 ? s : NULL;
    if (dynobs__reader_metric(rd, i, v) != 0 || !compatible_or_new(seg, i, v))
        return NULL;
    return seg->slot_series[i];
}

/* Only a histogram's buckets are ever written (add_values), so another
 * kind's stay zero from calloc and are not rewritten: its series then
 * costs the snapshot one cache line. */
static void start_gen(struct dx_series *s)
{
    if (s->gen == gen)
        return;
    s->gen = gen;
    if (s->kind == DYNOBS_METRIC_HISTOGRAM) {
        if (s->has_folded)
            s->now = s->folded;
        else
            memset(&s->now, 0, sizeof s->now);
        return;
    }
    if (s->has_folded) {
        s->now.value = s->folded.value;
        s->now.start_ns = s->folded.start_ns;
        s->now.min = s->folded.min;
        s->now.max = s->folded.max;
        s->now.count = s->folded.count;
    } else {
        s->now.value = 0;
        s->now.start_ns = 0;
        s->now.min = s->now.max = 0;
        s->now.count = 0;
    }
}

void dx_store_snapshot_begin(void)
{
    gen++;
}

void dx_store_snapshot_end(void)
{
    /* Series whose processes all exited still show their totals. They
     * have a list of their own, so that the other series are not read
     * once more here. */
    for (struct dx_series *s = folded_series; s; s = s->next_folded)
        start_gen(s);
}

#define PREFETCH_SLOTS 8

int dx_store_snapshot_add(struct dx_store_source *src)
{
    struct dynobs_reader *rd = src->rd;
    sigjmp_buf jb;
    if (!DX_GUARD_BEGIN(jb)) {
        DX_GUARD_END();
        return -1;
    }
    const uint32_t n = rd->hdr.metric_slots;
    for (uint32_t i = 0; i < n; i++) {
        /* The slots are 640 bytes apart in a table of megabytes: the state
         * and value lines of a slot a few places on, and its series, are
         * asked for now (a prefetch never faults, even past a truncated
         * mapping). */
        if (i + PREFETCH_SLOTS < n) {
            const struct dynobs_metric_slot *ahead = &rd->slots[i + PREFETCH_SLOTS];
            __builtin_prefetch(ahead);
            __builtin_prefetch(&ahead->value);
            if (src->slot_series[i + PREFETCH_SLOTS])
                __builtin_prefetch(src->slot_series[i + PREFETCH_SLOTS], 1);
        }
        /* An unused slot (most of a large table) costs one load. */
        if (!src->slot_series[i] &&
            __atomic_load_n(&rd->slots[i].state, __ATOMIC_ACQUIRE) != DYNOBS_SLOT_READY)
            continue;
        struct dynobs_metric_view v;
        struct dx_series *s = slot_values(src, i, &v);
        if (!s)
            continue;
        start_gen(s);
        add_values(&s->now, &v, s->kind);
    }
    struct interned *svc = service(src->res->service);
    if (svc) {
        if (svc->overflow_gen != gen) {
            svc->overflow_gen = gen;
            svc->overflow_live = 0;
        }
        svc->overflow_live += dynobs__reader_counter(rd, DYNOBS_CTR_METRIC_OVERFLOW);
    }
    DX_GUARD_END();
    return 0;
}

void dx_store_fold(struct dx_store_source *seg)
{
    struct dynobs_reader *rd = seg->rd;
    for (uint32_t i = 0; i < rd->hdr.metric_slots; i++) {
        struct dynobs_metric_view v;
        struct dx_series *s = slot_values(seg, i, &v);
        if (!s)
            continue;
        if (s->kind != DYNOBS_METRIC_COUNTER && s->kind != DYNOBS_METRIC_HISTOGRAM)
            continue;
        add_values(&s->folded, &v, s->kind);
        if (!s->has_folded) {
            s->next_folded = folded_series;
            folded_series = s;
        }
        s->has_folded = 1;
    }
    struct interned *svc = service(seg->res->service);
    if (svc)
        svc->overflow_folded += dynobs__reader_counter(rd, DYNOBS_CTR_METRIC_OVERFLOW);
}

struct dx_family *dx_store_families(void)
{
    return families;
}

int dx_series_current(const struct dx_series *s)
{
    return s->gen == gen;
}

int dx_series_exported(const struct dx_series *s)
{
    return s->gen == gen && !s->dropped;
}

void dx_store_set_rules(const struct dynobs_rules *r)
{
    rules = r;
    for (struct dx_family *f = families; f; f = f->next)
        for (struct dx_series *s = f->series; s; s = s->next_in_family)
            decide(s);
}

uint64_t dx_store_filtered(void)
{
    return filtered;
}

uint64_t dx_store_conflicts(void)
{
    return conflicts;
}

const void *dx_store_service_next(const void *it, struct dx_service_caps *out)
{
    const struct interned *i = it ? ((const struct interned *)it)->next : services;
    if (!i)
        return NULL;
    out->service = i->name;
    out->overflow_updates = i->overflow_folded + (i->overflow_gen == gen ? i->overflow_live : 0);
    out->series_folded = i->series_folded;
    return i;
}

int dx_store_query_init(struct dx_store_query *q, const char *name, const char *labels)
{
    q->name = name;
    q->labels = NULL;
    if (labels && !(q->labels = normalise_labels(labels)))
        return -ENOMEM;
    return 0;
}

void dx_store_query_free(struct dx_store_query *q)
{
    free(q->labels);
    q->labels = NULL;
}

/* The family's Prometheus name, with a counter's _total or without. */
static int family_named(const struct dx_family *f, const char *name)
{
    if (!strncmp(f->prom_name, name, f->prom_name_len) &&
        (name[f->prom_name_len] == '\0' ||
         (f->kind == DYNOBS_METRIC_COUNTER && !strcmp(name + f->prom_name_len, "_total"))))
        return 1;
    return 0;
}

int dx_store_query_matches(const struct dx_store_query *q, const struct dx_series *s)
{
    if (strcmp(s->name, q->name) && !family_named(s->family, q->name))
        return 0;
    return !q->labels || !strcmp(s->labels, q->labels);
}

int dx_store_query_slots(struct dx_store_source *src, const struct dx_store_query *q,
                         void (*fn)(void *arg, const struct dx_series *s,
                                    struct dx_store_source *src, uint32_t slot),
                         void *arg)
{
    sigjmp_buf jb;
    if (!DX_GUARD_BEGIN(jb)) {
        DX_GUARD_END();
        return -1;
    }
    for (uint32_t i = 0; i < src->rd->hdr.metric_slots; i++) {
        const struct dx_series *s = src->slot_series[i];
        if (s && dx_store_query_matches(q, s))
            fn(arg, s, src, i);
    }
    DX_GUARD_END();
    return 0;
}

int dx_store_slot_values(const struct dx_store_slot_ref *refs, size_t n, double *values)
{
    sigjmp_buf jb;
    if (!DX_GUARD_BEGIN(jb)) {
        DX_GUARD_END();
        return -EFAULT;
    }
    for (size_t k = 0; k < n; k++) {
        struct dynobs_metric_view v;
        const struct dx_store_slot_ref *r = &refs[k];
        values[k] = dynobs__metric_read_values(&r->src->rd->slots[r->slot], r->s->kind,
                                               r->s->nbounds, &v) == 0
                        ? v.value
                        : NAN;
    }
    DX_GUARD_END();
    return 0;
}
