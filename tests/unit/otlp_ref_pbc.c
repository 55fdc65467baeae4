/*
 * The reference encoder the unit tests compare the wire encoder with:
 * the exporter's span and log encoding as it was before it wrote the
 * protobuf wire format itself (protobuf-c structures in an arena, then
 * protobuf_c_message_pack). Test code only; it pins what the exporter
 * sent, byte for byte.
 */
#define _GNU_SOURCE
#include "otlp_ref_pbc.h"

#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include "record.h"
#include "tracecontext.h"
#include "tracestate_th.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;
typedef Opentelemetry__Proto__Trace__V1__Span Span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event Event;
typedef Opentelemetry__Proto__Trace__V1__Status Status;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans ResourceSpans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans ScopeSpans;
typedef Opentelemetry__Proto__Logs__V1__ResourceLogs ResourceLogs;
typedef Opentelemetry__Proto__Logs__V1__ScopeLogs ScopeLogs;
typedef Opentelemetry__Proto__Logs__V1__LogRecord LogRecord;

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

static KeyValue *kv_item(struct arena *a, const struct dynobs_item *it)
{
    if (it->type == DYNOBS_ATTR_STRING)
        return kv_string(a, it->key, it->key_len, it->str, it->str_len);
    KeyValue *kv = kv_new(a, it->key, it->key_len);
    if (!kv)
        return NULL;
    AnyValue *av = kv->value;
    switch (it->type) {
    case DYNOBS_ATTR_INT:
        av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        av->int_value = it->i;
        break;
    case DYNOBS_ATTR_DOUBLE:
        av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        av->double_value = it->d;
        break;
    default:
        av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
        av->bool_value = it->b;
        break;
    }
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

static Span *span(struct arena *a, const struct dynobs_span_view *v)
{
    Span *sp = arena_alloc(a, sizeof *sp);
    if (!sp)
        return NULL;
    opentelemetry__proto__trace__v1__span__init(sp);
    const struct dynobs_span_rec *f = &v->f;
    /* The view is a stack copy: ids go into the arena with the rest. */
    uint8_t *ids = arena_alloc(a, 32);
    if (!ids)
        return NULL;
    memcpy(ids, f->trace_id, 16);
    memcpy(ids + 16, f->span_id, 8);
    memcpy(ids + 24, f->parent_span_id, 8);
    sp->has_trace_id = sp->has_span_id = 1;
    sp->trace_id.len = 16;
    sp->trace_id.data = ids;
    sp->span_id.len = 8;
    sp->span_id.data = ids + 16;
    if (f->span_flags & DYNOBS_SPANF_HAS_PARENT) {
        sp->has_parent_span_id = 1;
        sp->parent_span_id.len = 8;
        sp->parent_span_id.data = ids + 24;
    }
    if (f->tracestate_len && (v->rec_flags & DYNOBS_RECF_UNSAMPLED)) {
        /* Kept by tail sampling, not at random: a probability threshold
         * would make a backend count it as 1/p spans (tracestate_th.h). */
        char *ts = arena_alloc(a, f->tracestate_len + 1u);
        if (ts)
            ts[dx_tracestate_drop_th(v->tracestate, f->tracestate_len, ts)] = '\0';
        sp->trace_state = ts && *ts ? ts : NULL;
    } else if (f->tracestate_len) {
        sp->trace_state = arena_str(a, v->tracestate, f->tracestate_len);
    }
    /* Span.flags: trace flags, plus whether the parent is known to be
     * remote (bit 8 says "known", bit 9 says "remote"). */
    sp->has_flags = 1;
    sp->flags = f->trace_flags | 0x100u |
                ((f->span_flags & DYNOBS_SPANF_PARENT_REMOTE) ? 0x200u : 0);
    sp->name = arena_str(a, v->name, f->name_len);
    sp->has_kind = 1;
    sp->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)f->kind;
    sp->has_start_time_unix_nano = sp->has_end_time_unix_nano = 1;
    sp->start_time_unix_nano = f->start_ns;
    sp->end_time_unix_nano = f->end_ns;
    if (f->dropped_attrs) {
        sp->has_dropped_attributes_count = 1;
        sp->dropped_attributes_count = f->dropped_attrs;
    }
    if (f->dropped_events) {
        sp->has_dropped_events_count = 1;
        sp->dropped_events_count = f->dropped_events;
    }
    sp->attributes = arena_alloc(a, sizeof(KeyValue *) * (f->attr_count + 1u));
    sp->events = arena_alloc(a, sizeof(Event *) * (f->event_count + 1u));
    if (!sp->attributes || !sp->events || !sp->name)
        return NULL;
    /* Event attributes: counted per event as we go. */
    size_t off = 0;
    struct dynobs_item it;
    Event *ev = NULL;
    KeyValue **ev_attrs = NULL;
    size_t ev_cap = 0;
    while (dynobs__item_next(v->items, v->items_len, &off, &it) == 1) {
        if (it.tag == DYNOBS_ITEM_SPAN_ATTR) {
            KeyValue *kv = kv_item(a, &it);
            if (kv)
                sp->attributes[sp->n_attributes++] = kv;
        } else if (it.tag == DYNOBS_ITEM_EVENT) {
            ev = arena_alloc(a, sizeof *ev);
            if (!ev)
                return NULL;
            opentelemetry__proto__trace__v1__span__event__init(ev);
            ev->has_time_unix_nano = 1;
            ev->time_unix_nano = it.time_ns;
            ev->name = arena_str(a, it.str, it.str_len);
            if (it.dropped_attrs) {
                ev->has_dropped_attributes_count = 1;
                ev->dropped_attributes_count = it.dropped_attrs;
            }
            /* Count this event's attributes to size its array. */
            size_t o2 = off, n = 0;
            struct dynobs_item it2;
            while (dynobs__item_next(v->items, v->items_len, &o2, &it2) == 1 &&
                   it2.tag == DYNOBS_ITEM_EVENT_ATTR)
                n++;
            ev_attrs = n ? arena_alloc(a, sizeof *ev_attrs * n) : NULL;
            ev_cap = n;
            ev->attributes = ev_attrs;
            sp->events[sp->n_events++] = ev;
        } else if (it.tag == DYNOBS_ITEM_EVENT_ATTR && ev && ev_attrs && ev->n_attributes < ev_cap) {
            KeyValue *kv = kv_item(a, &it);
            if (kv)
                ev_attrs[ev->n_attributes++] = kv;
        }
    }
    if (f->status != DYNOBS_STATUS_UNSET) {
        Status *st = arena_alloc(a, sizeof *st);
        if (!st)
            return NULL;
        opentelemetry__proto__trace__v1__status__init(st);
        st->has_code = 1;
        st->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)f->status;
        if (f->status_msg_len)
            st->message = arena_str(a, v->status_msg, f->status_msg_len);
        sp->status = st;
    }
    return sp;
}

static LogRecord *log_record(struct arena *a, const struct dynobs_log_view *v)
{
    LogRecord *lr = arena_alloc(a, sizeof *lr);
    AnyValue *body = any_value(a);
    if (!lr || !body)
        return NULL;
    opentelemetry__proto__logs__v1__log_record__init(lr);
    const struct dynobs_log_rec *f = &v->f;
    lr->has_time_unix_nano = lr->has_observed_time_unix_nano = 1;
    lr->time_unix_nano = lr->observed_time_unix_nano = f->time_ns;
    lr->has_severity_number = 1;
    lr->severity_number = f->severity;
    lr->severity_text = arena_str(a, v->severity_text, f->severity_text_len);
    body->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    body->string_value = arena_str(a, v->body, f->body_len);
    lr->body = body;
    if (!dynobs__id_is_zero(f->trace_id, 16)) {
        uint8_t *ids = arena_alloc(a, 24);
        if (!ids)
            return NULL;
        memcpy(ids, f->trace_id, 16);
        memcpy(ids + 16, f->span_id, 8);
        lr->has_trace_id = lr->has_span_id = lr->has_flags = 1;
        lr->trace_id.len = 16;
        lr->trace_id.data = ids;
        lr->span_id.len = 8;
        lr->span_id.data = ids + 16;
        lr->flags = f->trace_flags;
    }
    lr->attributes = arena_alloc(a, sizeof(KeyValue *) * (f->attr_count + 1u));
    if (!lr->attributes)
        return NULL;
    size_t off = 0;
    struct dynobs_item it;
    while (dynobs__item_next(v->items, f->items_len, &off, &it) == 1) {
        KeyValue *kv = kv_item(a, &it);
        if (kv && lr->n_attributes < f->attr_count)
            lr->attributes[lr->n_attributes++] = kv;
    }
    return lr->severity_text && body->string_value ? lr : NULL;
}

/* Distinct resources of a batch, in order of appearance. */
struct group {
    const struct dx_resource *res;
    size_t n, cap;
    void **items;
};

static struct group *group_of(struct arena *a, struct group *g, size_t *ng, size_t max,
                              const struct dx_resource *res)
{
    for (size_t i = 0; i < *ng; i++)
        if (g[i].res == res)
            return &g[i];
    if (*ng == max)
        return NULL;
    struct group *n = &g[(*ng)++];
    n->res = res;
    n->n = 0;
    n->cap = 0;
    n->items = NULL;
    (void)a;
    return n;
}

/* A request's entry for one resource, into out: its Resource and one
 * scope holding the n items of list; NULL when the arena ran out. The
 * three signals' entries differ only in their protobuf-c types, init
 * functions and field names (scopes: scope_spans..., items: spans...),
 * hence a macro. */
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

static long pack_logs(struct arena *a, struct group *groups, size_t ngroups, uint8_t **out,
                      size_t *len)
{
    Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest req;
    opentelemetry__proto__collector__logs__v1__export_logs_service_request__init(&req);
    req.resource_logs = arena_alloc(a, sizeof(ResourceLogs *) * (ngroups + 1));
    if (!req.resource_logs)
        return -1;
    for (size_t i = 0; i < ngroups; i++) {
        ResourceLogs *rl;
        RESOURCE_ENTRY(rl, a, ResourceLogs, ScopeLogs,
                       opentelemetry__proto__logs__v1__resource_logs__init,
                       opentelemetry__proto__logs__v1__scope_logs__init, scope_logs, log_records,
                       groups[i].res, 1, groups[i].n, (LogRecord **)groups[i].items);
        if (!rl)
            return -1;
        req.resource_logs[req.n_resource_logs++] = rl;
    }
    if (a->failed)
        return -1;
    return pack(&req.base, out, len);
}

long ref_encode_batch(const struct dx_batch *b, uint8_t **out, size_t *len)
{
    struct arena a = {0};
    size_t max_groups = b->count ? b->count : 1;
    struct group *groups = arena_zalloc(&a, sizeof *groups * max_groups);
    void **all = arena_alloc(&a, sizeof *all * (b->count + 1u));
    const struct dx_resource **owner = arena_alloc(&a, sizeof *owner * (b->count + 1u));
    if (!groups || !all || !owner) {
        arena_free(&a);
        return -1;
    }
    size_t ngroups = 0, nitems = 0;
    /* First pass: build each item and note its resource. */
    for (size_t off = 0; off < b->used;) {
        struct dx_entry e;
        memcpy(&e, b->data + off, sizeof e);
        const uint8_t *rec = b->data + off + sizeof e;
        off += sizeof e + ((e.len + 7u) & ~7u);
        void *item = NULL;
        if (b->kind == DX_TRACES) {
            struct dynobs_span_view v;
            if (dynobs__span_decode(rec, e.len, &v) == 0)
                item = span(&a, &v);
        } else {
            struct dynobs_log_view v;
            if (dynobs__log_decode(rec, e.len, &v) == 0)
                item = log_record(&a, &v);
        }
        if (!item)
            continue;
        struct group *g = group_of(&a, groups, &ngroups, max_groups, e.res);
        if (!g)
            continue;
        g->n++;
        all[nitems] = item;
        owner[nitems] = e.res;
        nitems++;
    }
    for (size_t i = 0; i < ngroups; i++) {
        groups[i].items = arena_alloc(&a, sizeof(void *) * (groups[i].n + 1));
        groups[i].cap = groups[i].n;
        groups[i].n = 0;
    }
    for (size_t i = 0; i < nitems; i++) {
        struct group *g = group_of(&a, groups, &ngroups, max_groups, owner[i]);
        if (g && g->items)
            g->items[g->n++] = all[i];
    }
    if (b->kind == DX_LOGS) {
        long n = pack_logs(&a, groups, ngroups, out, len);
        arena_free(&a);
        return n < 0 ? -1 : (long)nitems;
    }
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req;
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(&req);
    req.resource_spans = arena_alloc(&a, sizeof(ResourceSpans *) * (ngroups + 1));
    if (!req.resource_spans || a.failed) {
        arena_free(&a);
        return -1;
    }
    for (size_t i = 0; i < ngroups; i++) {
        ResourceSpans *rs;
        RESOURCE_ENTRY(rs, &a, ResourceSpans, ScopeSpans,
                       opentelemetry__proto__trace__v1__resource_spans__init,
                       opentelemetry__proto__trace__v1__scope_spans__init, scope_spans, spans,
                       groups[i].res, 1, groups[i].n, (Span **)groups[i].items);
        if (!rs)
            break;
        req.resource_spans[req.n_resource_spans++] = rs;
    }
    int rc = a.failed ? -1 : pack(&req.base, out, len);
    arena_free(&a);
    return rc < 0 ? -1 : (long)nitems;
}

