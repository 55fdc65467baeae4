/*
 * The console exporter: one readable line per span, log record or metric
 * point on stdout, for humans.
 */
#define _GNU_SOURCE
#include "console.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "record.h"
#include "store.h"
#include "tracecontext.h"

static const char *kinds[] = {"?", "internal", "server", "client", "producer", "consumer"};
static const char *statuses[] = {"unset", "ok", "error"};

static void value(FILE *f, const struct dynobs_item *it)
{
    switch (it->type) {
    case DYNOBS_ATTR_STRING:
        fprintf(f, "\"%.*s\"", (int)it->str_len, it->str);
        break;
    case DYNOBS_ATTR_INT:
        fprintf(f, "%" PRId64, it->i);
        break;
    case DYNOBS_ATTR_DOUBLE:
        fprintf(f, "%g", it->d);
        break;
    default:
        fprintf(f, "%s", it->b ? "true" : "false");
    }
}

long dx_console_batch(const struct dx_batch *b)
{
    long n = 0;
    for (size_t off = 0; off < b->used;) {
        struct dx_entry e;
        memcpy(&e, b->data + off, sizeof e);
        const uint8_t *rec = b->data + off + sizeof e;
        off += sizeof e + ((e.len + 7u) & ~7u);
        if (b->kind == DX_LOGS) {
            struct dynobs_log_view lv;
            if (dynobs__log_decode(rec, e.len, &lv) < 0)
                continue;
            char t[33] = "-", s[17] = "-";
            if (!dynobs__id_is_zero(lv.f.trace_id, 16)) {
                dynobs__hex_encode(lv.f.trace_id, 16, t);
                dynobs__hex_encode(lv.f.span_id, 8, s);
                t[32] = s[16] = 0;
            }
            printf("log service=%s severity=%.*s trace_id=%s span_id=%s body=\"%.*s\"\n",
                   e.res->service, (int)lv.f.severity_text_len, lv.severity_text, t, s,
                   (int)lv.f.body_len, lv.body);
            n++;
            continue;
        }
        struct dynobs_span_view v;
        if (dynobs__span_decode(rec, e.len, &v) < 0)
            continue;
        char t[33], s[17], p[17];
        dynobs__hex_encode(v.f.trace_id, 16, t);
        dynobs__hex_encode(v.f.span_id, 8, s);
        dynobs__hex_encode(v.f.parent_span_id, 8, p);
        t[32] = s[16] = p[16] = 0;
        printf("span service=%s name=\"%.*s\" kind=%s trace_id=%s span_id=%s parent_id=%s "
               "duration_ms=%.3f status=%s",
               e.res->service, (int)v.f.name_len, v.name, kinds[v.f.kind], t, s,
               (v.f.span_flags & DYNOBS_SPANF_HAS_PARENT) ? p : "-",
               (double)(v.f.end_ns - v.f.start_ns) / 1e6, statuses[v.f.status]);
        if (v.f.status_msg_len)
            printf(" status_message=\"%.*s\"", (int)v.f.status_msg_len, v.status_msg);
        size_t o = 0;
        struct dynobs_item it;
        while (dynobs__item_next(v.items, v.items_len, &o, &it) == 1) {
            if (it.tag == DYNOBS_ITEM_SPAN_ATTR) {
                printf(" %.*s=", (int)it.key_len, it.key);
                value(stdout, &it);
            } else if (it.tag == DYNOBS_ITEM_EVENT) {
                printf(" event=\"%.*s\"", (int)it.str_len, it.str);
            }
        }
        printf("\n");
        n++;
    }
    fflush(stdout);
    return n;
}

long dx_console_metrics(void)
{
    long n = 0;
    static const char *mk[] = {"?", "counter", "updown", "gauge", "histogram"};
    for (struct dx_family *f = dx_store_families(); f; f = f->next)
        for (struct dx_series *s = f->series; s; s = s->next_in_family) {
            if (!dx_series_exported(s))
                continue;
            printf("metric service=%s name=%s kind=%s labels={%s} unit=%s ", s->service, s->name,
                   mk[s->kind], s->labels, s->unit);
            if (s->kind == DYNOBS_METRIC_HISTOGRAM)
                printf("count=%" PRIu64 " sum=%g min=%g max=%g\n", s->now.count, s->now.value,
                       s->now.min, s->now.max);
            else
                printf("value=%g\n", s->now.value);
            n++;
        }
    fflush(stdout);
    return n;
}
