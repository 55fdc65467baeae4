/*
 * Metric series into an OTLP metrics request through protobuf-c.
 * Everything one request needs is allocated from an arena and freed at
 * once after packing. (Spans and logs are written straight into the wire
 * format: otlp_batch.c.)
 */
#define _GNU_SOURCE
#include "otlp_encode.h"

#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "store.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics ResourceMetrics;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics ScopeMetrics;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__Sum Sum;
typedef Opentelemetry__Proto__Metrics__V1__Gauge Gauge;
typedef Opentelemetry__Proto__Metrics__V1__Histogram Histogram;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumberDataPoint;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistogramDataPoint;

/* A bump allocator in 64 KiB chunks (or larger for large requests). */
struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};
struct arena {
    struct chunk *head;
    int failed;
};

static void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof *c + cap);
        if (!c) {
            a->failed = 1;
            return NULL;
        }
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void *arena_zalloc(struct arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

static char *arena_str(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void arena_free(struct arena *a)
{
    while (a->head) {
        struct chunk *c = a->head;
        a->head = c->next;
        free(c);
    }
}

/* Packs any message into a malloc'ed buffer: 0, or -1 on no memory. */
static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    *out = malloc(*len ? *len : 1);
    if (!*out)
        return -1;
    protobuf_c_message_pack(m, *out);
    return 0;
}

/* An empty AnyValue, or NULL when the arena ran out (the whole encoding
 * then fails). */
static AnyValue *any_value(struct arena *a)
{
    AnyValue *av = arena_alloc(a, sizeof *av);
    if (av)
        opentelemetry__proto__common__v1__any_value__init(av);
    return av;
}

/* A KeyValue with key k and an empty AnyValue for the caller to fill in;
 * NULL when the arena ran out. */
static KeyValue *kv_new(struct arena *a, const char *k, size_t kl)
{
    KeyValue *kv = arena_alloc(a, sizeof *kv);
    AnyValue *av = any_value(a);
    if (!kv || !av)
        return NULL;
    opentelemetry__proto__common__v1__key_value__init(kv);
    kv->key = arena_str(a, k, kl);
    kv->value = av;
    return kv->key ? kv : NULL;
}

static KeyValue *kv_string(struct arena *a, const char *k, size_t kl, const char *v, size_t vl)
{
    KeyValue *kv = kv_new(a, k, kl);
    if (!kv)
        return NULL;
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    kv->value->string_value = arena_str(a, v, vl);
    return kv->value->string_value ? kv : NULL;
}

static KeyValue *kv_int(struct arena *a, const char *k, int64_t v)
{
    KeyValue *kv = kv_new(a, k, strlen(k));
    if (!kv)
        return NULL;
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    kv->value->int_value = v;
    return kv;
}

/* A process's resource; process.pid as an int, the rest strings. */
static Resource *resource(struct arena *a, const struct dx_resource *r, int with_pid)
{
    Resource *res = arena_alloc(a, sizeof *res);
    KeyValue **kvs = arena_alloc(a, sizeof *kvs * (size_t)(r->nattrs + 1));
    if (!res || !kvs)
        return NULL;
    opentelemetry__proto__resource__v1__resource__init(res);
    size_t n = 0;
    for (int i = 0; i < r->nattrs; i++) {
        if (!with_pid && !strncmp(r->attrs[i].key, "process.", 8))
            continue;
        KeyValue *kv = kv_string(a, r->attrs[i].key, strlen(r->attrs[i].key), r->attrs[i].val,
                                 strlen(r->attrs[i].val));
        if (kv)
            kvs[n++] = kv;
    }
    if (with_pid) {
        KeyValue *kv = kv_int(a, "process.pid", r->pid);
        if (kv)
            kvs[n++] = kv;
    }
    res->n_attributes = n;
    res->attributes = kvs;
    return res;
}

static Scope *scope(struct arena *a)
{
    Scope *s = arena_alloc(a, sizeof *s);
    if (!s)
        return NULL;
    opentelemetry__proto__common__v1__instrumentation_scope__init(s);
    s->name = "dynobs";
    s->version = DYNOBS_VERSION_STRING;
    return s;
}

/* A request's entry for one resource, into out: its Resource and one
 * scope holding the n items of list; NULL when the arena ran out. A
 * macro from when spans and logs went through protobuf-c too: the
 * signals' entries differ only in their types, init functions and field
 * names (scopes: scope_metrics, items: metrics). */
#define RESOURCE_ENTRY(out, a, RType, SType, rinit, sinit, scopes, items, res, with_pid, n, \
                       list)                                                               \
    do {                                                                                   \
        RType *r_ = arena_alloc(a, sizeof *r_);                                            \
        SType *s_ = arena_alloc(a, sizeof *s_);                                            \
        SType **sv_ = arena_alloc(a, sizeof *sv_);                                         \
        (out) = NULL;                                                                      \
        if (r_ && s_ && sv_) {                                                             \
            rinit(r_);                                                                     \
            sinit(s_);                                                                     \
            r_->resource = resource(a, res, with_pid);                                     \
            s_->scope = scope(a);                                                          \
            s_->n_##items = (n);                                                           \
            s_->items = (list);                                                            \
            sv_[0] = s_;                                                                   \
            r_->n_##scopes = 1;                                                            \
            r_->scopes = sv_;                                                              \
            (out) = r_;                                                                    \
        }                                                                                  \
    } while (0)

/* otel.metric.overflow=true, a bool in OTLP as the specification has it;
 * NULL for any other label. */
static KeyValue *overflow_kv(struct arena *a, const char *label, size_t l)
{
    static const char over[] = DYNOBS_METRIC_OVERFLOW_LABELS;
    if (l != sizeof over - 1 || memcmp(label, over, l))
        return NULL;
    KeyValue *kv = kv_new(a, DYNOBS_METRIC_OVERFLOW_KEY, sizeof DYNOBS_METRIC_OVERFLOW_KEY - 1);
    if (!kv)
        return NULL;
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    kv->value->bool_value = 1;
    return kv;
}

static KeyValue **label_kvs(struct arena *a, const char *labels, size_t *n)
{
    size_t count = *labels ? 1 : 0;
    for (const char *p = labels; *p; p++)
        count += *p == ',';
    KeyValue **kvs = arena_alloc(a, sizeof *kvs * (count + 1));
    *n = 0;
    if (!kvs)
        return NULL;
    for (const char *p = labels; *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', l);
        if (eq) {
            KeyValue *kv = overflow_kv(a, p, l);
            if (!kv)
                kv = kv_string(a, p, (size_t)(eq - p), eq + 1, l - (size_t)(eq - p) - 1);
            if (kv)
                kvs[(*n)++] = kv;
        }
        p += l + (comma ? 1 : 0);
    }
    return kvs;
}

/* What a histogram and a number data point share: init, the series'
 * labels as attributes, its start time and the time t of this export. */
#define POINT_INIT(p, init, kvs, nl, s, t)                                                 \
    do {                                                                                   \
        init(p);                                                                           \
        (p)->attributes = (kvs);                                                           \
        (p)->n_attributes = (nl);                                                          \
        (p)->has_start_time_unix_nano = (p)->has_time_unix_nano = 1;                       \
        (p)->start_time_unix_nano = (s)->now.start_ns;                                     \
        (p)->time_unix_nano = (t);                                                         \
    } while (0)

static void *data_point(struct arena *a, const struct dx_series *s, uint64_t now)
{
    size_t nl;
    KeyValue **kvs = label_kvs(a, s->labels, &nl);
    if (s->kind == DYNOBS_METRIC_HISTOGRAM) {
        HistogramDataPoint *p = arena_alloc(a, sizeof *p);
        uint64_t *bc = arena_alloc(a, sizeof *bc * (s->nbounds + 1));
        double *eb = arena_alloc(a, sizeof *eb * (s->nbounds + 1));
        if (!p || !bc || !eb)
            return NULL;
        POINT_INIT(p, opentelemetry__proto__metrics__v1__histogram_data_point__init, kvs, nl, s,
                   now);
        p->has_count = 1;
        p->count = s->now.count;
        p->has_sum = 1;
        p->sum = s->now.value;
        if (s->now.count) {
            p->has_min = p->has_max = 1;
            p->min = s->now.min;
            p->max = s->now.max;
        }
        memcpy(bc, s->now.buckets, sizeof *bc * (s->nbounds + 1));
        memcpy(eb, s->bounds, sizeof *eb * s->nbounds);
        p->n_bucket_counts = s->nbounds + 1;
        p->bucket_counts = bc;
        p->n_explicit_bounds = s->nbounds;
        p->explicit_bounds = eb;
        return p;
    }
    NumberDataPoint *p = arena_alloc(a, sizeof *p);
    if (!p)
        return NULL;
    POINT_INIT(p, opentelemetry__proto__metrics__v1__number_data_point__init, kvs, nl, s, now);
    p->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    p->as_double = s->now.value;
    return p;
}

/* Builds the Metric of one (service, name) from its series. */
static Metric *metric(struct arena *a, const struct dx_series *first, size_t npoints,
                      const struct dx_series **series, uint64_t now)
{
    Metric *m = arena_alloc(a, sizeof *m);
    void **points = arena_alloc(a, sizeof *points * (npoints + 1));
    if (!m || !points)
        return NULL;
    opentelemetry__proto__metrics__v1__metric__init(m);
    m->name = first->name;
    m->unit = (char *)first->unit;
    if (first->family->description && first->family->description[0])
        m->description = first->family->description; /* declared (metric_meta.h) */
    size_t n = 0;
    for (size_t i = 0; i < npoints; i++) {
        void *p = data_point(a, series[i], now);
        if (p)
            points[n++] = p;
    }
    switch (first->kind) {
    case DYNOBS_METRIC_COUNTER:
    case DYNOBS_METRIC_UPDOWN: {
        Sum *sum = arena_alloc(a, sizeof *sum);
        if (!sum)
            return NULL;
        opentelemetry__proto__metrics__v1__sum__init(sum);
        sum->has_aggregation_temporality = sum->has_is_monotonic = 1;
        sum->aggregation_temporality =
            OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
        sum->is_monotonic = first->kind == DYNOBS_METRIC_COUNTER;
        sum->n_data_points = n;
        sum->data_points = (NumberDataPoint **)points;
        m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
        m->sum = sum;
        break;
    }
    case DYNOBS_METRIC_GAUGE: {
        Gauge *g = arena_alloc(a, sizeof *g);
        if (!g)
            return NULL;
        opentelemetry__proto__metrics__v1__gauge__init(g);
        g->n_data_points = n;
        g->data_points = (NumberDataPoint **)points;
        m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
        m->gauge = g;
        break;
    }
    default: {
        Histogram *h = arena_alloc(a, sizeof *h);
        if (!h)
            return NULL;
        opentelemetry__proto__metrics__v1__histogram__init(h);
        h->has_aggregation_temporality = 1;
        h->aggregation_temporality =
            OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
        h->n_data_points = n;
        h->data_points = (HistogramDataPoint **)points;
        m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
        m->histogram = h;
        break;
    }
    }
    return m;
}

long dx_encode_metrics(uint64_t now, uint8_t **out, size_t *len)
{
    struct arena a = {0};
    /* Every live series, grouped by service, then by metric name. */
    size_t total = 0;
    for (struct dx_family *f = dx_store_families(); f; f = f->next)
        for (struct dx_series *s = f->series; s; s = s->next_in_family)
            total += dx_series_exported(s) && s->kind == f->kind;
    const struct dx_series **list = arena_alloc(&a, sizeof *list * (total + 1));
    if (!list) {
        arena_free(&a);
        return -1;
    }
    size_t n = 0;
    for (struct dx_family *f = dx_store_families(); f; f = f->next)
        for (struct dx_series *s = f->series; s; s = s->next_in_family)
            if (dx_series_exported(s) && s->kind == f->kind)
                list[n++] = s;
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest req;
    opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__init(&req);
    req.resource_metrics = arena_alloc(&a, sizeof(ResourceMetrics *) * (n + 1));
    char *done = arena_zalloc(&a, n + 1);
    const struct dx_series **same = arena_alloc(&a, sizeof *same * (n + 1));
    Metric **metrics = arena_alloc(&a, sizeof *metrics * (n + 1));
    if (!req.resource_metrics || !done || !same || !metrics) {
        arena_free(&a);
        return -1;
    }
    long points = 0;
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        /* A new service: collect its metrics. */
        const char *service = list[i]->service;
        size_t nm = 0;
        for (size_t j = i; j < n; j++) {
            if (done[j] || strcmp(list[j]->service, service))
                continue;
            size_t ns = 0;
            for (size_t k = j; k < n; k++)
                if (!done[k] && !strcmp(list[k]->service, service) &&
                    !strcmp(list[k]->name, list[j]->name)) {
                    same[ns++] = list[k];
                    done[k] = 1;
                }
            Metric *m = metric(&a, list[j], ns, same, now);
            if (m) {
                metrics[nm++] = m;
                points += (long)ns;
            }
        }
        Metric **mv = arena_alloc(&a, sizeof *mv * (nm + 1));
        if (!mv)
            break;
        memcpy(mv, metrics, sizeof *mv * nm);
        ResourceMetrics *rm;
        RESOURCE_ENTRY(rm, &a, ResourceMetrics, ScopeMetrics,
                       opentelemetry__proto__metrics__v1__resource_metrics__init,
                       opentelemetry__proto__metrics__v1__scope_metrics__init, scope_metrics,
                       metrics, list[i]->res, 0, nm, mv);
        if (!rm)
            break;
        req.resource_metrics[req.n_resource_metrics++] = rm;
    }
    int rc = a.failed ? -1 : pack(&req.base, out, len);
    arena_free(&a);
    return rc < 0 ? -1 : points;
}
