#define _GNU_SOURCE
#include "otlp_records.h"

#include "dynobs/dynobs.h"
#include "otlp_wire.h"
#include "tracecontext.h"
#include "tracestate_th.h"

/* Field tags of the messages written here (opentelemetry/proto/...). */
enum {
    T_KV_KEY = DX_TAG(1, DX_WT_LEN),
    T_KV_VALUE = DX_TAG(2, DX_WT_LEN),
    T_ANY_STRING = DX_TAG(1, DX_WT_LEN),
    T_ANY_BOOL = DX_TAG(2, DX_WT_VARINT),
    T_ANY_INT = DX_TAG(3, DX_WT_VARINT),
    T_ANY_DOUBLE = DX_TAG(4, DX_WT_I64),
    T_SCOPE_ITEM = DX_TAG(2, DX_WT_LEN), /* ScopeSpans.spans, ScopeLogs.log_records */
    T_SPAN_TRACE_ID = DX_TAG(1, DX_WT_LEN),
    T_SPAN_SPAN_ID = DX_TAG(2, DX_WT_LEN),
    T_SPAN_TRACE_STATE = DX_TAG(3, DX_WT_LEN),
    T_SPAN_PARENT = DX_TAG(4, DX_WT_LEN),
    T_SPAN_NAME = DX_TAG(5, DX_WT_LEN),
    T_SPAN_KIND = DX_TAG(6, DX_WT_VARINT),
    T_SPAN_START = DX_TAG(7, DX_WT_I64),
    T_SPAN_END = DX_TAG(8, DX_WT_I64),
    T_SPAN_ATTR = DX_TAG(9, DX_WT_LEN),
    T_SPAN_DROPPED_ATTRS = DX_TAG(10, DX_WT_VARINT),
    T_SPAN_EVENT = DX_TAG(11, DX_WT_LEN),
    T_SPAN_DROPPED_EVENTS = DX_TAG(12, DX_WT_VARINT),
    T_SPAN_STATUS = DX_TAG(15, DX_WT_LEN),
    T_EVENT_TIME = DX_TAG(1, DX_WT_I64),
    T_EVENT_NAME = DX_TAG(2, DX_WT_LEN),
    T_EVENT_ATTR = DX_TAG(3, DX_WT_LEN),
    T_EVENT_DROPPED = DX_TAG(4, DX_WT_VARINT),
    T_STATUS_MESSAGE = DX_TAG(2, DX_WT_LEN),
    T_STATUS_CODE = DX_TAG(3, DX_WT_VARINT),
    T_LOG_TIME = DX_TAG(1, DX_WT_I64),
    T_LOG_SEVERITY = DX_TAG(2, DX_WT_VARINT),
    T_LOG_SEVERITY_TEXT = DX_TAG(3, DX_WT_LEN),
    T_LOG_BODY = DX_TAG(5, DX_WT_LEN),
    T_LOG_ATTR = DX_TAG(6, DX_WT_LEN),
    T_LOG_FLAGS = DX_TAG(8, DX_WT_I32),
    T_LOG_TRACE_ID = DX_TAG(9, DX_WT_LEN),
    T_LOG_SPAN_ID = DX_TAG(10, DX_WT_LEN),
    T_LOG_OBSERVED = DX_TAG(11, DX_WT_I64),
};
/* Span.flags is field 16, whose tag takes two bytes. */
#define SPAN_FLAGS_TAG0 0x85u
#define SPAN_FLAGS_TAG1 0x01u

/* The records were validated whole (dynobs__span_decode and
 * dynobs__log_decode walk every item) in memory that nobody else writes,
 * so the items are read here without checking their bounds again. */
static size_t item_size(const uint8_t *q)
{
    size_t klen = q[2];
    if (q[0] == DYNOBS_ITEM_EVENT)
        return DYNOBS_ITEM_HDR + DYNOBS_EVENT_FIXED + klen;
    if (q[1] == DYNOBS_ATTR_STRING) {
        uint16_t vl;
        memcpy(&vl, q + DYNOBS_ITEM_HDR + klen, 2);
        return DYNOBS_ITEM_HDR + klen + 2 + vl;
    }
    return DYNOBS_ITEM_HDR + klen + 8;
}

/* The attribute item at q as a KeyValue field with this tag. */
static uint8_t *kv_item(uint8_t *p, uint8_t tag, const uint8_t *q)
{
    size_t klen = q[2];
    const uint8_t *v = q + DYNOBS_ITEM_HDR + klen;
    uint8_t *kv = dx_open(p, tag, 1);
    p = dx_put_str(kv, T_KV_KEY, (const char *)q + DYNOBS_ITEM_HDR, klen);
    uint8_t *av = dx_open(p, T_KV_VALUE, 1);
    uint64_t raw;
    if (q[1] == DYNOBS_ATTR_STRING) {
        uint16_t vl;
        memcpy(&vl, v, 2);
        p = dx_put_str(av, T_ANY_STRING, (const char *)v + 2, vl);
    } else {
        memcpy(&raw, v, 8);
        switch (q[1]) {
        case DYNOBS_ATTR_INT:
            *av = T_ANY_INT;
            p = dx_put_varint(av + 1, raw);
            break;
        case DYNOBS_ATTR_DOUBLE:
            *av = T_ANY_DOUBLE;
            p = dx_put_fixed64(av + 1, raw);
            break;
        default: /* DYNOBS_ATTR_BOOL, 0 or 1 */
            av[0] = T_ANY_BOOL;
            av[1] = (uint8_t)raw;
            p = av + 2;
            break;
        }
    }
    p = dx_close(av, 1, p);
    return dx_close(kv, 1, p);
}

uint8_t *dx_otlp_kv_str(uint8_t *p, uint8_t tag, const char *key, size_t klen, const char *val,
                        size_t vlen)
{
    uint8_t *kv = dx_open(p, tag, 1);
    p = dx_put_str(kv, T_KV_KEY, key, klen);
    uint8_t *av = dx_open(p, T_KV_VALUE, 1);
    p = dx_put_str(av, T_ANY_STRING, val, vlen);
    p = dx_close(av, 1, p);
    return dx_close(kv, 1, p);
}

uint8_t *dx_otlp_kv_int(uint8_t *p, uint8_t tag, const char *key, size_t klen, int64_t val)
{
    uint8_t *kv = dx_open(p, tag, 1);
    p = dx_put_str(kv, T_KV_KEY, key, klen);
    uint8_t *av = dx_open(p, T_KV_VALUE, 1);
    *av = T_ANY_INT;
    p = dx_put_varint(av + 1, (uint64_t)val);
    p = dx_close(av, 1, p);
    return dx_close(kv, 1, p);
}

/* The events of a span, in the order of their items. An event's
 * attributes are the EVENT_ATTR items right after it; the earlier
 * encoder sized each event's list by that run and dropped any other, and
 * so does this one. */
static uint8_t *events(uint8_t *p, const uint8_t *q, const uint8_t *end)
{
    uint8_t *ev = NULL;
    uint16_t dropped = 0;
    int in_run = 0;
    for (; q < end; q += item_size(q)) {
        if (q[0] == DYNOBS_ITEM_EVENT_ATTR && in_run) {
            p = kv_item(p, T_EVENT_ATTR, q);
            continue;
        }
        in_run = 0;
        if (q[0] != DYNOBS_ITEM_EVENT)
            continue;
        if (ev) {
            if (dropped) {
                *p++ = T_EVENT_DROPPED;
                p = dx_put_varint(p, dropped);
            }
            p = dx_close(ev, 1, p);
        }
        uint64_t t;
        memcpy(&t, q + DYNOBS_ITEM_HDR, 8);
        memcpy(&dropped, q + DYNOBS_ITEM_HDR + 8, 2);
        ev = dx_open(p, T_SPAN_EVENT, 1);
        *ev = T_EVENT_TIME;
        p = dx_put_fixed64(ev + 1, t);
        p = dx_put_str(p, T_EVENT_NAME, (const char *)q + DYNOBS_ITEM_HDR + DYNOBS_EVENT_FIXED,
                       q[2]);
        in_run = 1;
    }
    if (ev) {
        if (dropped) {
            *p++ = T_EVENT_DROPPED;
            p = dx_put_varint(p, dropped);
        }
        p = dx_close(ev, 1, p);
    }
    return p;
}

/* Span.trace_state. A span kept by tail sampling, not at random, loses
 * its probability threshold: a backend would count it as 1/p spans
 * (tracestate_th.h). An empty result is left out. */
static uint8_t *trace_state(uint8_t *p, const struct dynobs_span_view *v)
{
    size_t n = v->f.tracestate_len;
    if (!n)
        return p;
    if (!(v->rec_flags & DYNOBS_RECF_UNSAMPLED))
        return dx_put_str(p, T_SPAN_TRACE_STATE, v->tracestate, n);
    uint8_t *ts = dx_open(p, T_SPAN_TRACE_STATE, 1);
    n = dx_tracestate_drop_th(v->tracestate, n, (char *)ts);
    n = strnlen((const char *)ts, n);
    return n ? dx_close(ts, 1, ts + n) : p;
}

uint8_t *dx_otlp_span(uint8_t *p, const struct dynobs_span_view *v)
{
    const struct dynobs_span_rec *f = &v->f;
    const uint8_t *items = v->items, *end = v->items + v->items_len;
    /* The span's length takes as many bytes as its body's length plus
     * the fixed fields would (64, about): guessed right, the content is
     * not moved. */
    size_t guess = dx_varint_size(64u + f->body_len);
    uint8_t *sp = dx_open(p, T_SCOPE_ITEM, guess);
    p = dx_put_len(sp, T_SPAN_TRACE_ID, f->trace_id, 16);
    p = dx_put_len(p, T_SPAN_SPAN_ID, f->span_id, 8);
    p = trace_state(p, v);
    if (f->span_flags & DYNOBS_SPANF_HAS_PARENT)
        p = dx_put_len(p, T_SPAN_PARENT, f->parent_span_id, 8);
    p = dx_put_str(p, T_SPAN_NAME, v->name, f->name_len);
    *p++ = T_SPAN_KIND;
    p = dx_put_varint(p, f->kind);
    *p++ = T_SPAN_START;
    p = dx_put_fixed64(p, f->start_ns);
    *p++ = T_SPAN_END;
    p = dx_put_fixed64(p, f->end_ns);
    if (f->attr_count)
        for (const uint8_t *q = items; q < end; q += item_size(q))
            if (q[0] == DYNOBS_ITEM_SPAN_ATTR)
                p = kv_item(p, T_SPAN_ATTR, q);
    if (f->dropped_attrs) {
        *p++ = T_SPAN_DROPPED_ATTRS;
        p = dx_put_varint(p, f->dropped_attrs);
    }
    if (f->event_count)
        p = events(p, items, end);
    if (f->dropped_events) {
        *p++ = T_SPAN_DROPPED_EVENTS;
        p = dx_put_varint(p, f->dropped_events);
    }
    if (f->status != DYNOBS_STATUS_UNSET) {
        uint8_t *st = dx_open(p, T_SPAN_STATUS, 1);
        p = f->status_msg_len ? dx_put_str(st, T_STATUS_MESSAGE, v->status_msg, f->status_msg_len)
                              : st;
        *p++ = T_STATUS_CODE;
        p = dx_put_varint(p, f->status);
        p = dx_close(st, 1, p);
    }
    /* Span.flags: the trace flags, plus whether the parent is known to be
     * remote (bit 8 says "known", bit 9 says "remote"). */
    *p++ = SPAN_FLAGS_TAG0;
    *p++ = SPAN_FLAGS_TAG1;
    p = dx_put_fixed32(p, f->trace_flags | 0x100u |
                              ((f->span_flags & DYNOBS_SPANF_PARENT_REMOTE) ? 0x200u : 0));
    return dx_close(sp, guess, p);
}

uint8_t *dx_otlp_log(uint8_t *p, const struct dynobs_log_view *v)
{
    const struct dynobs_log_rec *f = &v->f;
    size_t guess = dx_varint_size(48u + f->severity_text_len + f->body_len + f->items_len);
    uint8_t *lr = dx_open(p, T_SCOPE_ITEM, guess);
    *lr = T_LOG_TIME;
    p = dx_put_fixed64(lr + 1, f->time_ns);
    *p++ = T_LOG_SEVERITY;
    p = dx_put_varint(p, f->severity);
    p = dx_put_str(p, T_LOG_SEVERITY_TEXT, v->severity_text, f->severity_text_len);
    uint8_t *body = dx_open(p, T_LOG_BODY, 1);
    p = dx_put_str(body, T_ANY_STRING, v->body, f->body_len);
    p = dx_close(body, 1, p);
    const uint8_t *end = v->items + f->items_len;
    for (const uint8_t *q = v->items; q < end; q += item_size(q))
        p = kv_item(p, T_LOG_ATTR, q);
    /* The earlier encoder did not send dropped_attributes_count; neither
     * does this one, so that nothing changes on the wire. */
    if (!dynobs__id_is_zero(f->trace_id, 16)) {
        *p++ = T_LOG_FLAGS;
        p = dx_put_fixed32(p, f->trace_flags);
        p = dx_put_len(p, T_LOG_TRACE_ID, f->trace_id, 16);
        p = dx_put_len(p, T_LOG_SPAN_ID, f->span_id, 8);
    }
    *p++ = T_LOG_OBSERVED;
    p = dx_put_fixed64(p, f->time_ns);
    return dx_close(lr, guess, p);
}
