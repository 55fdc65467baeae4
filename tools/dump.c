/*
 * dynobs-dump: prints what dynobs segments hold, for humans. Reads without
 * consuming (the exporter's read position is left alone) unless --drain.
 *
 *   dynobs-dump [--drain] [SEGMENT-OR-DIR ...]   (default: $DYNOBS_SHM_DIR)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dynobs/dynobs.h"

#include "config.h"
#include "metric_meta.h"
#include "metric_window.h"
#include "reader.h"
#include "record.h"
#include "tracecontext.h"

static const char *kind_name[] = {"?", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"};
static const char *status_name[] = {"UNSET", "OK", "ERROR"};
static const char *metric_kind[] = {"?", "counter", "updown", "gauge", "histogram"};

static void print_value(const struct dynobs_item *it)
{
    switch (it->type) {
    case DYNOBS_ATTR_STRING:
        printf("\"%.*s\"%s", (int)it->str_len, it->str,
               it->flags & DYNOBS_ITEMF_TRUNCATED ? "(truncated)" : "");
        break;
    case DYNOBS_ATTR_INT:
        printf("%" PRId64, it->i);
        break;
    case DYNOBS_ATTR_DOUBLE:
        printf("%g", it->d);
        break;
    case DYNOBS_ATTR_BOOL:
        printf("%s", it->b ? "true" : "false");
        break;
    }
}

static void print_span(const struct dynobs_span_view *v)
{
    char tid[33], sid[17], pid[17];
    dynobs__hex_encode(v->f.trace_id, 16, tid);
    dynobs__hex_encode(v->f.span_id, 8, sid);
    dynobs__hex_encode(v->f.parent_span_id, 8, pid);
    tid[32] = sid[16] = pid[16] = 0;
    printf("span %.*s  kind=%s  trace=%s span=%s parent=%s%s  %.3f ms  status=%s",
           (int)v->f.name_len, v->name, kind_name[v->f.kind], tid, sid,
           v->f.span_flags & DYNOBS_SPANF_HAS_PARENT ? pid : "-",
           v->f.span_flags & DYNOBS_SPANF_PARENT_REMOTE ? "(remote)" : "",
           (double)(v->f.end_ns - v->f.start_ns) / 1e6, status_name[v->f.status]);
    if (v->f.status_msg_len)
        printf(" \"%.*s\"", (int)v->f.status_msg_len, v->status_msg);
    printf("\n");
    if (v->f.tracestate_len)
        printf("    tracestate: %.*s\n", (int)v->f.tracestate_len, v->tracestate);
    size_t off = 0;
    struct dynobs_item it;
    while (dynobs__item_next(v->items, v->items_len, &off, &it) == 1) {
        if (it.tag == DYNOBS_ITEM_EVENT) {
            printf("    event %.*s\n", (int)it.str_len, it.str);
            continue;
        }
        printf("    %s%.*s = ", it.tag == DYNOBS_ITEM_EVENT_ATTR ? "  " : "", (int)it.key_len,
               it.key);
        print_value(&it);
        printf("\n");
    }
    if (v->f.dropped_attrs || v->f.dropped_events)
        printf("    (dropped: %u attributes, %u events)\n", v->f.dropped_attrs,
               v->f.dropped_events);
}

static void print_log(const struct dynobs_log_view *v)
{
    printf("log %.*s \"%.*s\" severity=%u", (int)v->f.severity_text_len, v->severity_text,
           (int)v->f.body_len, v->body, v->f.severity);
    static const uint8_t zero[16];
    if (memcmp(v->f.trace_id, zero, 16)) {
        char tid[33], sid[17];
        dynobs__hex_encode(v->f.trace_id, 16, tid);
        dynobs__hex_encode(v->f.span_id, 8, sid);
        tid[32] = sid[16] = 0;
        printf(" trace=%s span=%s", tid, sid);
    }
    printf("\n");
    size_t off = 0;
    struct dynobs_item it;
    while (dynobs__item_next(v->items, v->f.items_len, &off, &it) == 1) {
        printf("    %.*s = ", (int)it.key_len, it.key);
        print_value(&it);
        printf("\n");
    }
    if (v->f.dropped_attrs)
        printf("    (dropped: %u attributes)\n", v->f.dropped_attrs);
}

/* The windowed statistics of a gauge or histogram series: the last
 * 10 s (or as much as the segment keeps) and since start. */
static void print_window(const struct dynobs_reader *r, uint32_t i)
{
    uint64_t now = dynobs__mono_ns();
    uint64_t kept = (uint64_t)(r->hdr.window_slices - 1) * r->hdr.window_slice_ms;
    uint64_t windows[2] = {kept < 10000 ? kept : 10000, 0};
    for (int k = 0; k < 2; k++) {
        struct dynobs_window_stats st;
        if (dynobs__reader_window(r, i, now, windows[k], &st) != 0)
            return;
        if (windows[k])
            printf("  window last %" PRIu64 " ms:", st.window_ms);
        else
            printf("  window since start:");
        printf(" count=%" PRIu64 " sum=%g avg=%g min=%g max=%g\n", st.count, st.sum, st.avg,
               st.min, st.max);
    }
}

static int dump(const char *path, int drain)
{
    struct dynobs_reader *r = malloc(sizeof *r);
    int rc = dynobs__reader_open(r, path, drain ? DYNOBS_READER_CONSUME : 0);
    if (rc < 0) {
        fprintf(stderr, "dynobs-dump: %s: %s\n", path, strerror(-rc));
        free(r);
        return 1;
    }
    printf("== %s\nservice.name=%s pid=%d shards=%u ring=%" PRIu64 " bytes metric slots=%u%s\n",
           path, r->service_name, r->hdr.pid, r->hdr.ring_shards, r->hdr.ring_bytes,
           r->hdr.metric_slots, dynobs__reader_producer_alive(r) ? "" : " (process gone)");
    size_t off = 0;
    struct dynobs_item it;
    while (dynobs__reader_resource_next(r, &off, &it) == 1) {
        printf("resource %.*s = ", (int)it.key_len, it.key);
        print_value(&it);
        printf("\n");
    }
    printf("records written=%" PRIu64 " dropped=%" PRIu64 " truncated=%" PRIu64
           " spans refused=%" PRIu64 " metric series refused=%" PRIu64
           " metric updates refused=%" PRIu64 " metric overflow=%" PRIu64 "\n",
           dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_WRITTEN),
           dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_DROPPED),
           dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_TRUNCATED),
           dynobs__reader_counter(r, DYNOBS_CTR_SPANS_REFUSED),
           dynobs__reader_counter(r, DYNOBS_CTR_METRIC_SERIES_REFUSED),
           dynobs__reader_counter(r, DYNOBS_CTR_METRIC_UPDATES_REFUSED),
           dynobs__reader_counter(r, DYNOBS_CTR_METRIC_OVERFLOW));
    /* The consumer page is written by the exporter: read it as the shim
     * does, one relaxed load (the reader checked its offset). */
    const struct dynobs_seg_consumer *cp =
        (const struct dynobs_seg_consumer *)(r->map + r->hdr.consumer_offset);
    uint64_t gen = __atomic_load_n(&cp->rules_generation, __ATOMIC_RELAXED);
    printf("rules_generation=%" PRIu64 "%s\n", gen, gen ? "" : " (no table: built-in defaults)");
    printf("windows: %u slices of %u ms; declared metrics: %u entries, conflicts=%" PRIu64
           " refused=%" PRIu64 "\n",
           r->hdr.window_slices, r->hdr.window_slice_ms, r->hdr.meta_slots,
           __atomic_load_n(&r->live->declare_conflicts, __ATOMIC_RELAXED),
           __atomic_load_n(&r->live->declare_refused, __ATOMIC_RELAXED));
    for (uint32_t i = 0; i < r->hdr.meta_slots; i++) {
        struct dynobs_metric_meta_view d;
        if (dynobs__reader_meta(r, i, &d) == 0)
            printf("declared %.*s %s%s%s \"%.*s\"\n", (int)d.name_len, d.name,
                   metric_kind[d.kind], d.unit[0] ? " unit=" : "", d.unit,
                   (int)d.description_len, d.description);
    }
    const struct dynobs_rec_hdr *h;
    r->stall_timeout_ns = 0;
    while (dynobs__reader_next(r, &h) == 1) {
        struct dynobs_span_view v;
        struct dynobs_log_view lv;
        if (h->type == DYNOBS_REC_SPAN && dynobs__span_decode(h, h->len, &v) == 0)
            print_span(&v);
        else if (h->type == DYNOBS_REC_LOG && dynobs__log_decode(h, h->len, &lv) == 0)
            print_log(&lv);
        else
            printf("(record of type %u, %u bytes, not understood)\n", h->type, h->len);
    }
    for (uint32_t i = 0; i < r->hdr.metric_slots; i++) {
        struct dynobs_metric_view m;
        if (dynobs__reader_metric(r, i, &m) != 0)
            continue;
        printf("metric %s{%s} %s%s%s", m.name, m.labels, metric_kind[m.kind], m.unit[0] ? " unit=" : "",
               m.unit);
        if (m.kind == DYNOBS_METRIC_HISTOGRAM) {
            printf(" count=%" PRIu64 " sum=%g min=%g max=%g buckets=", m.count, m.value, m.min, m.max);
            for (unsigned b = 0; b <= m.nbounds; b++)
                printf("%s%" PRIu64, b ? "," : "", m.buckets[b]);
            printf("\n");
        } else {
            printf(" value=%g\n", m.value);
        }
        print_window(r, i);
    }
    if (r->corrupt || r->abandoned)
        printf("(skipped: %" PRIu64 " corrupt, %" PRIu64 " abandoned records)\n", r->corrupt,
               r->abandoned);
    dynobs__reader_close(r);
    free(r);
    return 0;
}

static int dump_dir(const char *dir, int drain)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "dynobs-dump: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 5 || strcmp(e->d_name + l - 4, ".seg"))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        rc |= dump(path, drain);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    int drain = 0, rc = 0, any = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--drain")) {
            drain = 1;
            continue;
        }
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: dynobs-dump [--drain] [SEGMENT-OR-DIR ...]\n");
            return 0;
        }
        struct stat st;
        any = 1;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc |= dump_dir(argv[i], drain);
        else
            rc |= dump(argv[i], drain);
    }
    if (!any) {
        const char *d = getenv("DYNOBS_SHM_DIR");
        rc = dump_dir(d && *d ? d : DYNOBS_SHM_DIR_DEFAULT, drain);
    }
    return rc;
}
