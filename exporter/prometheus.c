#define _GNU_SOURCE
#include "prometheus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "exporter.h"
#include "guard.h"
#include "store.h"

static void label_name(struct dx_buf *b, const char *k, size_t n)
{
    /* Label names: [a-zA-Z_][a-zA-Z0-9_]*; anything else becomes '_'. */
    if (n && k[0] >= '0' && k[0] <= '9')
        dx_buf_put(b, "key_", 4);
    char tmp[256];
    for (size_t i = 0; i < n; i += sizeof tmp) {
        size_t m = n - i < sizeof tmp ? n - i : sizeof tmp;
        for (size_t j = 0; j < m; j++) {
            char c = k[i + j];
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '_';
            tmp[j] = ok ? c : '_';
        }
        dx_buf_put(b, tmp, m);
    }
}

static void label_value(struct dx_buf *b, const char *v, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = v[i] == '\\' ? "\\\\" : v[i] == '"' ? "\\\"" : v[i] == '\n' ? "\\n" : NULL;
        if (esc) {
            dx_buf_put(b, v + start, i - start);
            dx_buf_str(b, esc);
            start = i + 1;
        }
    }
    dx_buf_put(b, v + start, n - start);
}

static void label(struct dx_buf *b, const char *k, size_t kl, const char *v, size_t vl, int first)
{
    if (!first)
        dx_buf_put(b, ",", 1);
    label_name(b, k, kl);
    dx_buf_put(b, "=\"", 2);
    label_value(b, v, vl);
    dx_buf_put(b, "\"", 1);
}

char *dx_prom_labels(const char *service, const char *labels_)
{
    struct dx_buf b;
    dx_buf_init(&b, 1 << 20);
    label(&b, "service_name", 12, service, strlen(service), 1);
    for (const char *p = labels_; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq && !(eq - p == 12 && !memcmp(p, "service_name", 12)))
            label(&b, p, (size_t)(eq - p), eq + 1, n - (size_t)(eq - p) - 1, 0);
        p += n + (comma ? 1 : 0);
    }
    if (!b.p)
        dx_buf_put(&b, "", 0);
    return b.p;
}

/* {service_name="...",k="v",...[,le="..."]}, from the series' cached text. */
static void labels(struct dx_buf *b, const struct dx_series *s, const char *le)
{
    dx_buf_put(b, "{", 1);
    if (s->prom_labels)
        dx_buf_put(b, s->prom_labels, s->prom_labels_len);
    if (le) {
        dx_buf_put(b, ",le=\"", 5);
        dx_buf_str(b, le);
        dx_buf_put(b, "\"", 1);
    }
    dx_buf_put(b, "}", 1);
}

static void family(struct dx_buf *b, const struct dx_family *f)
{
    int any = 0;
    for (const struct dx_series *s = f->series; s && !any; s = s->next_in_family)
        any = s->gen == dx_store_gen && s->kind == f->kind;
    if (!any)
        return;
    const struct dx_series *first = f->series;
    const char *total = f->kind == DYNOBS_METRIC_COUNTER ? "_total" : "";
    const char *type = f->kind == DYNOBS_METRIC_COUNTER     ? "counter"
                       : f->kind == DYNOBS_METRIC_HISTOGRAM ? "histogram"
                                                            : "gauge";
    dx_buf_printf(b, "# HELP %s%s dynobs metric %s", f->prom_name, total, first->name);
    if (first->unit[0])
        dx_buf_printf(b, " (unit %s)", first->unit);
    dx_buf_printf(b, "\n# TYPE %s%s %s\n", f->prom_name, total, type);
    for (const struct dx_series *s = f->series; s; s = s->next_in_family) {
        if (s->gen != dx_store_gen || s->kind != f->kind)
            continue;
        if (f->kind != DYNOBS_METRIC_HISTOGRAM) {
            dx_buf_put(b, f->prom_name, f->prom_name_len);
            dx_buf_str(b, total);
            labels(b, s, NULL);
            dx_buf_put(b, " ", 1);
            dx_buf_num(b, s->now.value);
            dx_buf_put(b, "\n", 1);
            continue;
        }
        uint64_t cum = 0;
        for (unsigned i = 0; i <= s->nbounds; i++) {
            char le[40];
            if (i < s->nbounds)
                dx_fmt_double(le, sizeof le, s->bounds[i]);
            else
                strcpy(le, "+Inf");
            cum += s->now.buckets[i];
            dx_buf_str(b, f->prom_name);
            dx_buf_str(b, "_bucket");
            labels(b, s, le);
            dx_buf_put(b, " ", 1);
            dx_buf_u64(b, cum);
            dx_buf_put(b, "\n", 1);
        }
        dx_buf_str(b, f->prom_name);
        dx_buf_str(b, "_sum");
        labels(b, s, NULL);
        dx_buf_put(b, " ", 1);
        dx_buf_num(b, s->now.value);
        dx_buf_put(b, "\n", 1);
        dx_buf_str(b, f->prom_name);
        dx_buf_str(b, "_count");
        labels(b, s, NULL);
        dx_buf_put(b, " ", 1);
        dx_buf_u64(b, s->now.count);
        dx_buf_put(b, "\n", 1);
    }
}

/* target_info: one series per service, its resource attributes as
 * labels (process-specific ones left out: they differ per process). */
static void target_info(struct dx_buf *b)
{
    const char *seen[1024];
    int nseen = 0, header = 0;
    for (const struct dx_family *f = dx_families; f; f = f->next) {
        for (const struct dx_series *s = f->series; s; s = s->next_in_family) {
            if (s->gen != dx_store_gen)
                continue;
            int dup = 0;
            for (int i = 0; i < nseen && !dup; i++)
                dup = seen[i] == s->service; /* interned */
            if (dup || nseen == 1024)
                continue;
            seen[nseen++] = s->service;
            if (!header) {
                dx_buf_str(b, "# HELP target_info Target metadata\n# TYPE target_info gauge\n");
                header = 1;
            }
            dx_buf_str(b, "target_info{");
            label(b, "service_name", 12, s->service, strlen(s->service), 1);
            const struct dx_resource *r = s->res;
            for (int i = 0; r && i < r->nattrs; i++) {
                const char *k = r->attrs[i].key;
                if (!strcmp(k, "service.name") || !strncmp(k, "process.", 8))
                    continue;
                label(b, k, strlen(k), r->attrs[i].val, strlen(r->attrs[i].val), 0);
            }
            dx_buf_str(b, "} 1\n");
        }
    }
}

static void self_counter(struct dx_buf *b, const char *name, const char *help, uint64_t v)
{
    dx_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s ", name, help, name, name);
    dx_buf_u64(b, v);
    dx_buf_put(b, "\n", 1);
}

static void self_gauge(struct dx_buf *b, const char *name, const char *help, uint64_t v)
{
    dx_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s ", name, help, name, name);
    dx_buf_u64(b, v);
    dx_buf_put(b, "\n", 1);
}

static void self_metrics(struct dx_buf *b)
{
    const struct dx_stats *st = &dx.stats;
    static const char *sig[] = {"traces", "logs", "metrics"};
    dx_buf_str(b, "# HELP dynobs_exporter_records_drained_total Records taken from segment rings\n"
                  "# TYPE dynobs_exporter_records_drained_total counter\n");
    for (int k = 0; k < DX_KINDS; k++) {
        dx_buf_printf(b, "dynobs_exporter_records_drained_total{signal=\"%s\"} ", sig[k]);
        dx_buf_u64(b, st->records_drained[k]);
        dx_buf_put(b, "\n", 1);
    }
    uint64_t ring_dropped = st->folded_ring_dropped, ring_written = st->folded_ring_written;
    for (struct dx_segment *s = dx.segments; s; s = s->next) {
        sigjmp_buf jb;
        if (!dx_seg_broken(s) && DX_GUARD_BEGIN(jb)) {
            ring_dropped += dynobs__reader_counter(s->rd, DYNOBS_CTR_RECORDS_DROPPED);
            ring_written += dynobs__reader_counter(s->rd, DYNOBS_CTR_RECORDS_WRITTEN);
        } else {
            dx_seg_set_broken(s);
        }
        DX_GUARD_END();
    }
    self_counter(b, "dynobs_exporter_ring_records_written_total",
                 "Records applications wrote to their rings", ring_written);
    self_counter(b, "dynobs_exporter_ring_records_dropped_total",
                 "Records applications dropped because their ring was full", ring_dropped);
    self_counter(b, "dynobs_exporter_records_corrupt_total", "Malformed records skipped",
                 st->records_corrupt);
    self_counter(b, "dynobs_exporter_records_abandoned_total",
                 "Records skipped because their writer died mid-write", st->records_abandoned);
    self_counter(b, "dynobs_exporter_segments_rejected_total",
                 "Segments refused: corrupt, foreign or not regular files", st->segments_rejected);
    self_counter(b, "dynobs_exporter_segments_reaped_total",
                 "Segments of exited processes drained and removed", st->segments_reaped);
    self_gauge(b, "dynobs_exporter_segments_attached", "Segments being drained",
               (uint64_t)dx.nsegments);
    dx_buf_str(b, "# HELP dynobs_exporter_queue_records Records waiting to be exported\n"
                  "# TYPE dynobs_exporter_queue_records gauge\n");
    for (int k = 0; k < DX_KINDS; k++) {
        dx_buf_printf(b, "dynobs_exporter_queue_records{signal=\"%s\"} ", sig[k]);
        dx_buf_u64(b, __atomic_load_n(&dx.queued[k], __ATOMIC_RELAXED));
        dx_buf_put(b, "\n", 1);
    }
    dx_buf_str(b, "# HELP dynobs_exporter_export_requests_total OTLP export requests by outcome\n"
                  "# TYPE dynobs_exporter_export_requests_total counter\n");
    for (int k = 0; k <= DX_KINDS; k++) {
        const uint64_t *v[] = {&st->requests_ok[k], &st->requests_retried[k],
                               &st->requests_failed[k]};
        static const char *outcome[] = {"success", "retry", "failure"};
        for (int o = 0; o < 3; o++) {
            dx_buf_printf(b, "dynobs_exporter_export_requests_total{signal=\"%s\",outcome=\"%s\"} ",
                          sig[k], outcome[o]);
            dx_buf_u64(b, *v[o]);
            dx_buf_put(b, "\n", 1);
        }
    }
    dx_buf_str(b, "# HELP dynobs_exporter_exported_items_total Spans, log records and metric "
                  "points delivered\n# TYPE dynobs_exporter_exported_items_total counter\n");
    for (int k = 0; k <= DX_KINDS; k++) {
        dx_buf_printf(b, "dynobs_exporter_exported_items_total{signal=\"%s\"} ", sig[k]);
        dx_buf_u64(b, st->exported[k]);
        dx_buf_put(b, "\n", 1);
    }
    dx_buf_str(b, "# HELP dynobs_exporter_dropped_items_total Items given up on (rejected by "
                  "the receiver or out of retries)\n"
                  "# TYPE dynobs_exporter_dropped_items_total counter\n");
    for (int k = 0; k <= DX_KINDS; k++) {
        dx_buf_printf(b, "dynobs_exporter_dropped_items_total{signal=\"%s\"} ", sig[k]);
        dx_buf_u64(b, st->export_dropped[k]);
        dx_buf_put(b, "\n", 1);
    }
    self_counter(b, "dynobs_exporter_series_conflicts_total",
                 "Series left out because processes disagree on their kind or buckets",
                 dx_store_conflicts);
}

void dx_prometheus_render(struct dx_buf *b)
{
    pthread_mutex_lock(&dx.lock);
    dx_store_snapshot();
    target_info(b);
    for (const struct dx_family *f = dx_families; f; f = f->next)
        family(b, f);
    self_metrics(b);
    pthread_mutex_unlock(&dx.lock);
}
