/*
 * A batch of span (or log) records into one ExportTraceServiceRequest
 * (or ExportLogsServiceRequest), written straight into the wire format.
 *
 * The request holds one ResourceSpans per process, in the order of each
 * process's first valid record, and in it that process's spans in batch
 * order: what protobuf-c packed from the structures the exporter built
 * before, byte for byte (tests/unit/test_exporter_otlp_wire.c compares
 * the two). The first process's records are encoded as the batch is
 * walked; those of any other process are noted on the way and encoded
 * after, so that a batch from one process, the common case, is read
 * once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "otlp_encode.h"
#include "otlp_records.h"
#include "otlp_wire.h"
#include "record.h"

/* ExportTraceServiceRequest.resource_spans and ResourceSpans.resource,
 * ResourceSpans.scope_spans, ScopeSpans.scope; the logs' messages use
 * the same numbers. */
#define T_REQ_RESOURCE DX_TAG(1, DX_WT_LEN)
#define T_RESOURCE DX_TAG(1, DX_WT_LEN)
#define T_RESOURCE_ATTR DX_TAG(1, DX_WT_LEN)
#define T_SCOPES DX_TAG(2, DX_WT_LEN)
#define T_SCOPE DX_TAG(1, DX_WT_LEN)
#define T_SCOPE_NAME DX_TAG(1, DX_WT_LEN)
#define T_SCOPE_VERSION DX_TAG(2, DX_WT_LEN)

/* One process of the batch. */
struct group {
    const struct dx_resource *res;
    uint32_t n;     /* records noted for after the walk */
    uint32_t first; /* where they start in the sorted list */
};

/* A record noted for after the walk: its offset in the batch, its group. */
struct later {
    size_t off;
    uint32_t group;
};

union view {
    struct dynobs_span_view span;
    struct dynobs_log_view log;
};

struct enc {
    const struct dx_batch *b;
    struct dx_wire *out;
    size_t open[2]; /* content offsets of the open ResourceSpans and ScopeSpans */
    struct group *groups, first_groups[8];
    size_t ngroups, cap;
    struct later *later;
    size_t nlater;
};

static int decode(const struct enc *e, size_t off, union view *v)
{
    struct dx_entry en;
    memcpy(&en, e->b->data + off, sizeof en);
    const uint8_t *rec = e->b->data + off + sizeof en;
    if (e->b->kind == DX_TRACES)
        return dynobs__span_decode(rec, en.len, &v->span);
    return dynobs__log_decode(rec, en.len, &v->log);
}

static int put_record(struct enc *e, const union view *v, uint32_t len)
{
    struct dx_wire *w = e->out;
    if (dx_wire_room(w, dx_otlp_record_bound(len)) < 0)
        return -ENOMEM;
    uint8_t *p = w->p + w->len;
    p = e->b->kind == DX_TRACES ? dx_otlp_span(p, &v->span) : dx_otlp_log(p, &v->log);
    w->len = (size_t)(p - w->p);
    return 0;
}

/* Opens the entry of a process: its Resource (process.pid as an int
 * after the string attributes) and its one scope, whose records follow.
 * The two lengths left open are closed by close_group. */
static int open_group(struct enc *e, const struct dx_resource *r)
{
    static const char version[] = DYNOBS_VERSION_STRING;
    struct dx_wire *w = e->out;
    size_t need = 64 + sizeof version + 11 + 24;
    for (int i = 0; i < r->nattrs; i++)
        need += strlen(r->attrs[i].key) + strlen(r->attrs[i].val) + 24;
    if (dx_wire_room(w, need) < 0)
        return -ENOMEM;
    uint8_t *rs = dx_open(w->p + w->len, T_REQ_RESOURCE, 3);
    uint8_t *res = dx_open(rs, T_RESOURCE, 2);
    uint8_t *p = res;
    for (int i = 0; i < r->nattrs; i++)
        p = dx_otlp_kv_str(p, T_RESOURCE_ATTR, r->attrs[i].key, strlen(r->attrs[i].key),
                           r->attrs[i].val, strlen(r->attrs[i].val));
    p = dx_otlp_kv_int(p, T_RESOURCE_ATTR, "process.pid", 11, r->pid);
    p = dx_close(res, 2, p);
    uint8_t *ss = dx_open(p, T_SCOPES, 3);
    uint8_t *sc = dx_open(ss, T_SCOPE, 1);
    p = dx_put_len(sc, T_SCOPE_NAME, "dynobs", 6);
    p = dx_put_len(p, T_SCOPE_VERSION, version, sizeof version - 1);
    p = dx_close(sc, 1, p);
    e->open[0] = (size_t)(rs - w->p);
    e->open[1] = (size_t)(ss - w->p);
    w->len = (size_t)(p - w->p);
    return 0;
}

static int close_group(struct enc *e)
{
    struct dx_wire *w = e->out;
    /* A length that needs more bytes than guessed moves its content up. */
    if (dx_wire_room(w, 8) < 0)
        return -ENOMEM;
    uint8_t *p = dx_close(w->p + e->open[1], 3, w->p + w->len);
    p = dx_close(w->p + e->open[0], 3, p);
    w->len = (size_t)(p - w->p);
    return 0;
}

/* The group of res, added when new; -ENOMEM. Batches come mostly from
 * one process at a time, so the last group found is tried first. */
static long group_of(struct enc *e, const struct dx_resource *res, size_t *last)
{
    if (*last < e->ngroups && e->groups[*last].res == res)
        return (long)*last;
    for (size_t i = 0; i < e->ngroups; i++)
        if (e->groups[i].res == res)
            return (long)(*last = i);
    if (e->ngroups == e->cap) {
        size_t cap = e->cap * 2;
        struct group *g = malloc(sizeof *g * cap);
        if (!g)
            return -ENOMEM;
        memcpy(g, e->groups, sizeof *g * e->ngroups);
        if (e->groups != e->first_groups)
            free(e->groups);
        e->groups = g;
        e->cap = cap;
    }
    e->groups[e->ngroups] = (struct group){.res = res};
    return (long)(*last = e->ngroups++);
}

/* Encodes the records noted for groups after the first, group by group
 * in batch order: a counting sort of the notes by group. */
static int encode_later(struct enc *e)
{
    size_t *order = malloc(sizeof *order * e->nlater);
    if (!order)
        return -ENOMEM;
    uint32_t at = 0;
    for (size_t g = 1; g < e->ngroups; g++) {
        e->groups[g].first = at;
        at += e->groups[g].n;
        e->groups[g].n = 0;
    }
    for (size_t i = 0; i < e->nlater; i++) {
        struct group *g = &e->groups[e->later[i].group];
        order[g->first + g->n++] = e->later[i].off;
    }
    int rc = 0;
    for (size_t g = 1; g < e->ngroups && !rc; g++) {
        rc = open_group(e, e->groups[g].res);
        for (uint32_t i = 0; i < e->groups[g].n && !rc; i++) {
            union view v;
            size_t off = order[e->groups[g].first + i];
            struct dx_entry en;
            memcpy(&en, e->b->data + off, sizeof en);
            /* Valid when noted, and the batch has not changed since. */
            rc = decode(e, off, &v) < 0 ? -EBADMSG : put_record(e, &v, en.len);
        }
        if (!rc)
            rc = close_group(e);
    }
    free(order);
    return rc;
}

static long encode(struct enc *e)
{
    const struct dx_batch *b = e->b;
    size_t last = 0;
    long items = 0;
    int rc = 0;
    for (size_t off = 0; off < b->used && !rc;) {
        struct dx_entry en;
        memcpy(&en, b->data + off, sizeof en);
        size_t at = off;
        off += sizeof en + ((en.len + 7u) & ~7u);
        union view v;
        if (decode(e, at, &v) < 0)
            continue;
        long g = group_of(e, en.res, &last);
        if (g < 0)
            return -1;
        items++;
        if (g == 0) {
            if (items == 1)
                rc = open_group(e, en.res);
            if (!rc)
                rc = put_record(e, &v, en.len);
            continue;
        }
        if (!e->later && !(e->later = malloc(sizeof *e->later * b->count)))
            return -1;
        e->later[e->nlater++] = (struct later){.off = at, .group = (uint32_t)g};
        e->groups[g].n++;
    }
    if (!rc && items)
        rc = close_group(e);
    if (!rc && e->nlater)
        rc = encode_later(e);
    return rc < 0 ? -1 : items;
}

long dx_encode_batch_into(const struct dx_batch *b, struct dx_wire *out)
{
    struct enc e = {.b = b, .out = out, .cap = 8};
    e.groups = e.first_groups;
    out->len = 0;
    long items = encode(&e);
    if (e.groups != e.first_groups)
        free(e.groups);
    free(e.later);
    return items;
}

long dx_encode_batch(const struct dx_batch *b, uint8_t **out, size_t *len)
{
    struct dx_wire w = {0};
    long items = dx_encode_batch_into(b, &w);
    if (items < 0 || (!w.p && dx_wire_room(&w, 1) < 0)) {
        dx_wire_free(&w);
        return -1;
    }
    *out = w.p;
    *len = w.len;
    return items;
}
