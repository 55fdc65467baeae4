/*
 * A query is answered from the live segments, under the segments' lock:
 * a store snapshot first (so that slots first used since the last one
 * are mapped to their series), then each matching slot's window read
 * from its segment and merged into its series: counts and sums added,
 * the least minimum and the greatest maximum kept. Processes that have
 * exited are left out: their windows went with their segments.
 *
 *   name    as recorded, or as exported to Prometheus (required)
 *   labels  "k=v,k=v" as recorded, in any order; absent: every series
 *   window  milliseconds (default 10000); 0: since each series started
 */
#define _GNU_SOURCE
#include "stats_api.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "http_server.h"
#include "json_out.h"
#include "metrics.h"
#include "segments.h"
#include "store.h"
#include "metric_window.h"
#include "util.h"

#define DEFAULT_WINDOW_MS 10000u
#define MAX_WINDOW_MS 86400000u /* a day: longer is a mistake, whatever segments keep */
#define MAX_SERIES 2048 /* per answer; past it the answer says "truncated" */
#define MAX_BODY (4u << 20)


struct acc {
    const struct dx_series *s;
    struct dynobs_window_stats w;
};

struct query {
    struct dx_store_query q;
    uint64_t now_ns, window_ms;
    struct acc *acc;
    size_t n;
    int truncated;
    int too_long; /* a window longer than the segments keep */
};

static struct acc *acc_for(struct query *qu, const struct dx_series *s)
{
    for (size_t k = qu->n; k-- > 0;) /* a series' slots tend to come together */
        if (qu->acc[k].s == s)
            return &qu->acc[k];
    if (qu->n == MAX_SERIES) {
        qu->truncated = 1;
        return NULL;
    }
    struct acc *a = &qu->acc[qu->n++];
    a->s = s;
    memset(&a->w, 0, sizeof a->w);
    return a;
}

static void merge(struct dynobs_window_stats *to, const struct dynobs_window_stats *w)
{
    if (!w->count)
        return;
    if (!to->count || w->min < to->min)
        to->min = w->min;
    if (!to->count || w->max > to->max)
        to->max = w->max;
    to->count += w->count;
    to->sum += w->sum;
}

static void one_slot(void *arg, const struct dx_series *s, struct dx_store_source *src,
                     uint32_t slot)
{
    struct query *qu = arg;
    struct dynobs_window_stats w;
    int rc = dynobs__reader_window(src->rd, slot, qu->now_ns, qu->window_ms, &w);
    if (rc == -EINVAL)
        qu->too_long = 1;
    if (rc != 0)
        return;
    struct acc *a = acc_for(qu, s);
    if (a)
        merge(&a->w, &w);
}

static int one_source(struct dx_store_source *src, void *arg)
{
    struct query *qu = arg;
    return dx_store_query_slots(src, &qu->q, one_slot, qu);
}

static const char *kind_name(int kind)
{
    return kind == DYNOBS_METRIC_HISTOGRAM ? "histogram" : "gauge";
}

static int by_service(const void *a, const void *b)
{
    const struct acc *x = a, *y = b;
    int c = strcmp(x->s->service, y->s->service);
    if (c)
        return c;
    c = strcmp(x->s->name, y->s->name);
    return c ? c : strcmp(x->s->labels, y->s->labels);
}

static void series_json(struct dx_buf *b, const struct acc *a)
{
    const struct dynobs_window_stats *w = &a->w;
    dx_buf_str(b, "{\"name\":");
    dx_json_str(b, a->s->name);
    dx_buf_str(b, ",\"labels\":");
    dx_json_str(b, a->s->labels);
    dx_buf_printf(b, ",\"kind\":\"%s\",\"unit\":", kind_name(a->s->kind));
    dx_json_str(b, a->s->unit);
    dx_buf_str(b, ",\"count\":");
    dx_buf_u64(b, w->count);
    dx_buf_str(b, ",\"sum\":");
    dx_json_num(b, w->sum);
    dx_buf_str(b, ",\"avg\":");
    dx_json_num(b, w->count ? w->sum / (double)w->count : NAN);
    dx_buf_str(b, ",\"min\":");
    dx_json_num(b, w->count ? w->min : NAN);
    dx_buf_str(b, ",\"max\":");
    dx_json_num(b, w->count ? w->max : NAN);
    dx_buf_str(b, "}");
}

static void answer(struct dx_buf *b, struct query *qu)
{
    qsort(qu->acc, qu->n, sizeof *qu->acc, by_service);
    dx_buf_str(b, "{\"name\":");
    dx_json_str(b, qu->q.name);
    dx_buf_str(b, ",\"window_ms\":");
    dx_buf_u64(b, qu->window_ms);
    dx_buf_str(b, ",\"services\":[");
    for (size_t k = 0; k < qu->n; k++) {
        int first = k == 0 || qu->acc[k - 1].s->service != qu->acc[k].s->service;
        if (first) {
            dx_buf_str(b, k ? "]},{\"service\":" : "{\"service\":");
            dx_json_str(b, qu->acc[k].s->service);
            dx_buf_str(b, ",\"series\":[");
        } else {
            dx_buf_str(b, ",");
        }
        series_json(b, &qu->acc[k]);
    }
    dx_buf_str(b, qu->n ? "]}]" : "]");
    dx_buf_printf(b, ",\"truncated\":%s}\n", qu->truncated ? "true" : "false");
}

/* A window in decimal milliseconds: 0, or -1 when it is not one. */
static int parse_window(const char *s, uint64_t *out)
{
    if (!s) {
        *out = DEFAULT_WINDOW_MS;
        return 0;
    }
    if (!*s || strlen(s) > 12 || strspn(s, "0123456789") != strlen(s))
        return -1;
    *out = strtoull(s, NULL, 10);
    return *out > MAX_WINDOW_MS ? -1 : 0;
}

static void stats_route(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    static const char *const known[] = {"name", "labels", "window", NULL};
    const char *unknown, *name, *labels;
    struct query qu = {.now_ns = dynobs__mono_ns()};
    dx_httpd_unknown_arg(r, known, &unknown);
    if (unknown) {
        dx_json_error(r, 400, "unknown parameter (name, labels and window are known)");
        return;
    }
    if (dx_json_series_args(r, &name, &labels) < 0)
        return;
    if (parse_window(dx_httpd_arg(r, "window"), &qu.window_ms) < 0) {
        dx_json_error(r, 400, "window: milliseconds (0: since start, at most a day) expected");
        return;
    }
    qu.acc = malloc(sizeof *qu.acc * MAX_SERIES);
    if (!qu.acc || dx_store_query_init(&qu.q, name, labels) < 0) {
        free(qu.acc);
        dx_json_error(r, 503, "out of memory");
        return;
    }
    dx_segments_lock();
    dx_segments_snapshot();
    dx_segments_each(one_source, &qu);
    dx_segments_unlock();
    if (qu.too_long && !qu.n) {
        dx_json_error(r, 400, "window: longer than the segments keep");
    } else {
        r->content_type = "application/json";
        answer(&r->body, &qu);
    }
    dx_store_query_free(&qu.q);
    free(qu.acc);
}

int dx_stats_api_register(void)
{
    return dx_httpd_route("/api/v1/stats", stats_route, NULL, MAX_BODY);
}
