#define _GNU_SOURCE
#include "prometheus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "dynobs/dynobs.h"
#include "http_server.h"
#include "prom_naming.h"
#include "prom_text.h"
#include "queue.h"
#include "segments.h"
#include "stats.h"
#include "store.h"
#include "tail.h"
#include "util.h"

#define EXPOSITION_MAX (256u << 20) /* refuse to build a larger page */

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

/* One sample line: the family's name and suffix, the series' labels (le
 * for a histogram bucket), then the value: an integer (bucket, count)
 * or a number (counter, gauge, sum). */
static void sample_name(struct dx_buf *b, const struct dx_family *f, const char *suffix,
                        const struct dx_series *s, const char *le)
{
    dx_buf_put(b, f->prom_name, f->prom_name_len);
    dx_buf_str(b, suffix);
    labels(b, s, le);
    dx_buf_put(b, " ", 1);
}

static void sample_u64(struct dx_buf *b, const struct dx_family *f, const char *suffix,
                       const struct dx_series *s, const char *le, uint64_t v)
{
    sample_name(b, f, suffix, s, le);
    dx_buf_u64(b, v);
    dx_buf_put(b, "\n", 1);
}

static void sample_num(struct dx_buf *b, const struct dx_family *f, const char *suffix,
                       const struct dx_series *s, double v)
{
    sample_name(b, f, suffix, s, NULL);
    dx_buf_num(b, v);
    dx_buf_put(b, "\n", 1);
}

/* The fast path of a series' lines: room for all of them reserved at
 * once, then written straight into the page (no length check, call or
 * NUL per piece), the numbers by prom_text.c. The text is the one the
 * dx_buf_* functions above write. */
#define LINE_EXTRA (sizeof "_bucket{,le=\"\"} \n" + 40 + DX_PROM_NUM_MAX)

static inline char *put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* "name_suffix{", the start of each line of a family, built once per
 * family: a line then begins with one copy. */
struct head {
    size_t len;
    char text[512 + sizeof "_bucket{"];
};

/* The heads of a family's lines: [0] a counter's or gauge's sample (with
 * _total for a counter), then a histogram's _bucket, _sum and _count.
 * Returns 0, or -1 when the name does not fit (the slow path prints). */
static int heads_init(struct head h[4], const struct dx_family *f, const char *total)
{
    const char *suffix[4] = {total, "_bucket", "_sum", "_count"};
    for (int i = 0; i < 4; i++) {
        size_t sl = strlen(suffix[i]);
        if (f->prom_name_len + sl + 1 > sizeof h[i].text)
            return -1;
        memcpy(h[i].text, f->prom_name, f->prom_name_len);
        memcpy(h[i].text + f->prom_name_len, suffix[i], sl);
        h[i].text[f->prom_name_len + sl] = '{';
        h[i].len = f->prom_name_len + sl + 1;
    }
    return 0;
}

static inline char *line_head(char *p, const struct head *h, const struct dx_series *s,
                              const char *le, size_t lel)
{
    p = put(p, h->text, h->len);
    if (s->prom_labels)
        p = put(p, s->prom_labels, s->prom_labels_len);
    if (le) {
        p = put(p, ",le=\"", 5);
        p = put(p, le, lel);
        *p++ = '"';
    }
    *p++ = '}';
    *p++ = ' ';
    return p;
}

/* Returns 0, or -1 when the room cannot be had (the cap is near, or
 * memory short) or the bounds' texts are missing: the slow path then
 * writes the series and keeps the cap's accounting. */
static int series_fast(struct dx_buf *b, const struct dx_family *f, const struct head h[4],
                       const struct dx_series *s)
{
    int hist = f->kind == DYNOBS_METRIC_HISTOGRAM;
    if (hist && s->nbounds && !s->prom_le)
        return -1;
    size_t line = f->prom_name_len + s->prom_labels_len + LINE_EXTRA;
    char *p = dx_prom_room(b, hist ? line * (s->nbounds + 3) : line);
    if (!p)
        return -1;
    if (!hist) {
        p = line_head(p, &h[0], s, NULL, 0);
        p = dx_prom_num(p, s->now.value);
        *p++ = '\n';
        dx_prom_commit(b, p);
        return 0;
    }
    uint64_t cum = 0;
    const char *le = s->prom_le;
    for (unsigned i = 0; i < s->nbounds; i++) {
        cum += s->now.buckets[i];
        p = line_head(p, &h[1], s, le, s->prom_le_len[i]);
        le += s->prom_le_len[i];
        p = dx_prom_u64(p, cum);
        *p++ = '\n';
    }
    cum += s->now.buckets[s->nbounds];
    p = line_head(p, &h[1], s, "+Inf", 4);
    p = dx_prom_u64(p, cum);
    p = line_head(put(p, "\n", 1), &h[2], s, NULL, 0);
    p = dx_prom_num(p, s->now.value);
    p = line_head(put(p, "\n", 1), &h[3], s, NULL, 0);
    p = dx_prom_u64(p, s->now.count);
    *p++ = '\n';
    dx_prom_commit(b, p);
    return 0;
}

/* A declared description in # HELP: the exposition format escapes a
 * backslash and a line feed there (and nothing else). */
static void help_text(struct dx_buf *b, const char *d)
{
    for (const char *run = d;; d++) {
        if (*d && *d != '\\' && *d != '\n')
            continue;
        dx_buf_put(b, run, (size_t)(d - run));
        if (!*d)
            break;
        dx_buf_str(b, *d == '\n' ? "\\n" : "\\\\");
        run = d + 1;
    }
}

static void family(struct dx_buf *b, const struct dx_family *f)
{
    int any = 0;
    for (const struct dx_series *s = f->series; s && !any; s = s->next_in_family)
        any = dx_series_exported(s) && s->kind == f->kind;
    if (!any)
        return;
    const struct dx_series *first = f->series;
    const char *total = f->kind == DYNOBS_METRIC_COUNTER ? "_total" : "";
    const char *type = f->kind == DYNOBS_METRIC_COUNTER     ? "counter"
                       : f->kind == DYNOBS_METRIC_HISTOGRAM ? "histogram"
                                                            : "gauge";
    if (f->description && f->description[0]) {
        dx_buf_printf(b, "# HELP %s%s ", f->prom_name, total);
        help_text(b, f->description);
    } else {
        dx_buf_printf(b, "# HELP %s%s dynobs metric %s", f->prom_name, total, first->name);
    }
    if (first->unit[0])
        dx_buf_printf(b, " (unit %s)", first->unit);
    dx_buf_printf(b, "\n# TYPE %s%s %s\n", f->prom_name, total, type);
    struct head h[4];
    int fast = heads_init(h, f, total) == 0;
    for (size_t k = 0; k < f->n; k++) {
        const struct dx_series *s = f->all[k];
        /* With 10 000 series the store is out of the nearer caches: the
         * lines of the series a few places on, and of the next ones' label
         * text, are asked for now and arrive while this one prints. */
        if (k + 8 < f->n)
            __builtin_prefetch(f->all[k + 8]);
        if (k + 4 < f->n)
            __builtin_prefetch(f->all[k + 4]->prom_labels);
        if (!dx_series_exported(s) || s->kind != f->kind ||
            (fast && series_fast(b, f, h, s) == 0))
            continue;
        if (f->kind != DYNOBS_METRIC_HISTOGRAM) {
            sample_num(b, f, total, s, s->now.value);
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
            sample_u64(b, f, "_bucket", s, le, cum);
        }
        sample_num(b, f, "_sum", s, s->now.value);
        sample_u64(b, f, "_count", s, NULL, s->now.count);
    }
}

/* target_info: one series per service, its resource attributes as
 * labels (process-specific ones left out: they differ per process). */
static void target_info(struct dx_buf *b)
{
    const char *seen[1024];
    int nseen = 0, header = 0, services = 0;
    /* Once every service has its line no series can add one: the walk
     * stops there instead of reading all the series a second time. */
    struct dx_service_caps c;
    for (const void *it = dx_store_service_next(NULL, &c); it; it = dx_store_service_next(it, &c))
        services++;
    for (const struct dx_family *f = dx_store_families(); f && nseen < services; f = f->next) {
        for (const struct dx_series *s = f->series; s && nseen < services; s = s->next_in_family) {
            if (!dx_series_exported(s))
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
            dx_prom_label(b, "service_name", 12, s->service, strlen(s->service), 1);
            const struct dx_resource *r = s->res;
            for (int i = 0; r && i < r->nattrs; i++) {
                const char *k = r->attrs[i].key;
                if (!strcmp(k, "service.name") || !strncmp(k, "process.", 8))
                    continue;
                dx_prom_label(b, k, strlen(k), r->attrs[i].val, strlen(r->attrs[i].val), 0);
            }
            dx_buf_str(b, "} 1\n");
        }
    }
}

/* The exporter's own families: # HELP and # TYPE, then one series, or
 * one per signal (the first n signals, values v[signal]). */
static void self_header(struct dx_buf *b, const char *name, const char *help, const char *type)
{
    dx_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void self_one(struct dx_buf *b, const char *name, const char *help, const char *type,
                     uint64_t v)
{
    self_header(b, name, help, type);
    dx_buf_printf(b, "%s ", name);
    dx_buf_u64(b, v);
    dx_buf_put(b, "\n", 1);
}

static void self_counter(struct dx_buf *b, const char *name, const char *help, uint64_t v)
{
    self_one(b, name, help, "counter", v);
}

static void self_gauge(struct dx_buf *b, const char *name, const char *help, uint64_t v)
{
    self_one(b, name, help, "gauge", v);
}

void dx_prom_self_counter(struct dx_buf *b, const char *name, const char *help, uint64_t v)
{
    self_counter(b, name, help, v);
}

void dx_prom_self_gauge(struct dx_buf *b, const char *name, const char *help, uint64_t v)
{
    self_gauge(b, name, help, v);
}

#define MAX_SELF_SOURCES 8
static dx_prom_self_fn self_sources[MAX_SELF_SOURCES];
static int nself_sources;

int dx_prometheus_self(dx_prom_self_fn fn)
{
    for (int i = 0; i < nself_sources; i++)
        if (self_sources[i] == fn)
            return 0;
    if (nself_sources == MAX_SELF_SOURCES)
        return -1;
    self_sources[nself_sources++] = fn;
    return 0;
}

static void self_per_signal(struct dx_buf *b, const char *name, const char *help,
                            const char *type, int n, const uint64_t *v)
{
    self_header(b, name, help, type);
    for (int k = 0; k < n; k++) {
        dx_buf_printf(b, "%s{signal=\"%s\"} ", name, dx_signal_name((enum dx_signal)k));
        dx_buf_u64(b, v[k]);
        dx_buf_put(b, "\n", 1);
    }
}

/* Cardinality caps, one series per service: updates the shims sent to
 * overflow series, and process series the store folded into them. */
static void caps(struct dx_buf *b)
{
    static const struct {
        const char *name, *help;
    } fam[] = {
        {"dynobs_metric_overflow_updates_total",
         "Metric updates a process sent to an overflow series (cardinality cap)"},
        {"dynobs_exporter_metric_series_folded_total",
         "Process series the exporter folded into an overflow series (cardinality cap)"},
    };
    for (int k = 0; k < 2; k++) {
        self_header(b, fam[k].name, fam[k].help, "counter");
        struct dx_service_caps c;
        for (const void *it = dx_store_service_next(NULL, &c); it;
             it = dx_store_service_next(it, &c)) {
            dx_buf_printf(b, "%s{", fam[k].name);
            dx_prom_label(b, "service_name", 12, c.service, strlen(c.service), 1);
            dx_buf_put(b, "} ", 2);
            dx_buf_u64(b, k == 0 ? c.overflow_updates : c.series_folded);
            dx_buf_put(b, "\n", 1);
        }
    }
}

/* Tail sampling (tail.h): what was kept, dropped and evicted, and what
 * is held now. */
static void tail_sampling(struct dx_buf *b)
{
    struct dx_tail_stats tail;
    dx_tail_read(&tail);
    self_counter(b, "dynobs_exporter_tail_traces_kept_total",
                 "Unsampled traces exported whole: a span was an error or slow", tail.kept);
    self_counter(b, "dynobs_exporter_tail_traces_dropped_total",
                 "Unsampled traces dropped: no reason to keep them within the decision wait",
                 tail.dropped);
    self_counter(b, "dynobs_exporter_tail_evictions_total",
                 "Unsampled traces dropped undecided because the tail buffer was full",
                 tail.evicted);
    self_counter(b, "dynobs_exporter_tail_spans_dropped_total",
                 "Unsampled spans not exported (traces dropped or evicted)", tail.spans_dropped);
    self_gauge(b, "dynobs_exporter_tail_held_spans", "Unsampled spans held for a decision",
               tail.held_spans);
    self_gauge(b, "dynobs_exporter_tail_held_traces", "Unsampled traces held for a decision",
               tail.held_traces);
    self_gauge(b, "dynobs_exporter_tail_held_bytes", "Memory of the spans held for a decision",
               tail.held_bytes);
}

/* The exporter's own series. Under the segments' lock, so that the
 * ring totals and the segment count agree with the reaped count. */
static void self_metrics(struct dx_buf *b)
{
    struct dx_stats st;
    dx_stats_read(&st);
    self_per_signal(b, "dynobs_exporter_records_drained_total", "Records taken from segment rings",
                    "counter", DX_QUEUED_SIGNALS, st.per_signal[DX_RECORDS_DRAINED]);
    uint64_t ring_written, ring_dropped;
    dx_segments_ring_totals(&ring_written, &ring_dropped);
    self_counter(b, "dynobs_exporter_ring_records_written_total",
                 "Records applications wrote to their rings", ring_written);
    self_counter(b, "dynobs_exporter_ring_records_dropped_total",
                 "Records applications dropped because their ring was full", ring_dropped);
    self_counter(b, "dynobs_exporter_records_corrupt_total", "Malformed records skipped",
                 st.counter[DX_RECORDS_CORRUPT]);
    self_counter(b, "dynobs_exporter_records_abandoned_total",
                 "Records skipped because their writer died mid-write",
                 st.counter[DX_RECORDS_ABANDONED]);
    self_counter(b, "dynobs_exporter_records_unresolved_total",
                 "Span records skipped because they refer to a template the exporter never "
                 "read (it started or restarted while the application ran)",
                 st.counter[DX_RECORDS_UNRESOLVED]);
    self_counter(b, "dynobs_exporter_segments_rejected_total",
                 "Segments refused: corrupt, foreign or not regular files",
                 st.counter[DX_SEGMENTS_REJECTED]);
    self_counter(b, "dynobs_exporter_segments_reaped_total",
                 "Segments of exited processes drained and removed",
                 st.counter[DX_SEGMENTS_REAPED]);
    self_gauge(b, "dynobs_exporter_segments_attached", "Segments being drained",
               (uint64_t)dx_segments_count());
    uint64_t queued[DX_QUEUED_SIGNALS];
    for (int k = 0; k < DX_QUEUED_SIGNALS; k++)
        queued[k] = dx_queue_queued((enum dx_signal)k);
    self_per_signal(b, "dynobs_exporter_queue_records", "Records waiting to be exported", "gauge",
                    DX_QUEUED_SIGNALS, queued);
    self_header(b, "dynobs_exporter_export_requests_total", "OTLP export requests by outcome",
                "counter");
    for (int k = 0; k < DX_SIGNALS; k++) {
        static const enum dx_signal_counter c[] = {DX_REQUESTS_OK, DX_REQUESTS_RETRIED,
                                                   DX_REQUESTS_FAILED};
        static const char *outcome[] = {"success", "retry", "failure"};
        for (int o = 0; o < 3; o++) {
            dx_buf_printf(b, "dynobs_exporter_export_requests_total{signal=\"%s\",outcome=\"%s\"} ",
                          dx_signal_name((enum dx_signal)k), outcome[o]);
            dx_buf_u64(b, st.per_signal[c[o]][k]);
            dx_buf_put(b, "\n", 1);
        }
    }
    self_per_signal(b, "dynobs_exporter_exported_items_total",
                    "Spans, log records and metric points delivered", "counter", DX_SIGNALS,
                    st.per_signal[DX_EXPORTED]);
    self_per_signal(b, "dynobs_exporter_dropped_items_total",
                    "Items given up on (rejected by the receiver or out of retries)", "counter",
                    DX_SIGNALS, st.per_signal[DX_EXPORT_DROPPED]);
    self_counter(b, "dynobs_exporter_series_conflicts_total",
                 "Series left out because processes disagree on their kind or buckets",
                 dx_store_conflicts());
    caps(b);
    tail_sampling(b);
    for (int i = 0; i < nself_sources; i++)
        self_sources[i](b);
}

/* The last page's length, under the segments' lock: the next page gets
 * its memory at once rather than by doubling from 4 KiB (eight reallocs
 * for a 1 MB page). */
static size_t last_page;

void dx_prometheus_render(struct dx_buf *b)
{
    dx_segments_lock();
    if (last_page)
        (void)dx_prom_room(b, last_page + last_page / 16);
    dx_segments_snapshot();
    target_info(b);
    for (const struct dx_family *f = dx_store_families(); f; f = f->next)
        family(b, f);
    self_metrics(b);
    last_page = b->len;
    dx_segments_unlock();
}

/* GET /metrics. */
static void metrics_route(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    uint64_t t0 = dynobs__mono_ns();
    dx_prometheus_render(&r->body);
    dx_log(DX_DEBUG, "/metrics rendered %zu bytes in %.3f ms", r->body.len,
           (double)(dynobs__mono_ns() - t0) / 1e6);
    if (r->body.overflow || !r->body.p) {
        dx_log(DX_ERROR, "/metrics: exposition larger than %u bytes, refused", EXPOSITION_MAX);
        dx_buf_free(&r->body);
        dx_buf_init(&r->body, 4096);
        dx_buf_str(&r->body, "exposition too large\n");
        r->status = 500;
        return;
    }
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

int dx_prometheus_register(void)
{
    return dx_httpd_route("/metrics", metrics_route, NULL, EXPOSITION_MAX);
}
