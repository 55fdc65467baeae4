/* Filters of metric series in the exporter (metric_filter.h): which
 * entries of a compiled rules file drop which series, and a real segment
 * whose series are left out of /metrics and OTLP while a filter drops
 * them, then come back with their full totals when a new table does not. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "dynobs/dynobs.h"
#include "metric_filter.h"
#include "metrics.h"
#include "otlp_encode.h"
#include "prometheus.h"
#include "queue.h"
#include "resource.h"
#include "rules.h"
#include "segment.h"
#include "segments.h"
#include "store.h"
#include "testutil.h"

#define HEAD "file_format: \"1.0\"\ndynobs:\n  version: 1\n"

/* Tables compiled in a test stay valid until it ends, as the exporter's
 * stay valid for its life. */
struct table {
    void *buf;
    struct dynobs_rules r;
};

static struct table compile(const char *yaml)
{
    struct table t = {0};
    size_t len;
    struct dynobs_rules_error e;
    int rc = dynobs__rules_compile(yaml, strlen(yaml), "t.yaml", &t.buf, &len, &e);
    char msg[1024];
    dynobs__rules_error_format(&e, msg, sizeof msg);
    cr_assert_eq(rc, 0, "%s", msg);
    cr_assert_eq(dynobs__rules_open(&t.r, t.buf, len), 0);
    return t;
}

Test(metric_filter, first_match_wins_and_span_fields_never_match)
{
    struct table t = compile(HEAD "  filters:\n"
                                  /* Entries that name what a series does not have. */
                                  "    - match: {url.path: /healthz}\n"
                                  "      drop: [metrics]\n"
                                  "    - match: {span.kind: server}\n"
                                  "      drop: all\n"
                                  "    - match: {http.request.method: GET}\n"
                                  "      drop: [metrics]\n"
                                  "    - match: {span.name: \"*\"}\n"
                                  "      drop: [metrics]\n"
                                  "    - match: {attributes: {code: \"200\"}}\n"
                                  "      drop: [metrics]\n"
                                  "    - match: {process.executable.path: \"*\"}\n"
                                  "      drop: [metrics]\n"
                                  /* An exception, then the broader rule. */
                                  "    - match: {metric.name: app.debug.keep}\n"
                                  "      drop: []\n"
                                  "    - match: {metric.name: \"app.trace.*\"}\n"
                                  "      drop: [traces, logs]\n"
                                  "    - match: {service.name: checkout, metric.name: \"app.*\"}\n"
                                  "      drop: [metrics]\n"
                                  "    - match: {metric.name: [\"x.?\", \"all.*\"]}\n"
                                  "      drop: all\n");
    const struct dynobs_rules *r = &t.r;
    cr_assert(dx_metric_filter_drops(r, "checkout", "app.debug.x"));
    cr_assert(dx_metric_filter_drops(r, "checkout", "app.keep.y"));
    cr_assert_not(dx_metric_filter_drops(r, "cart", "app.debug.x"), "another service");
    cr_assert_not(dx_metric_filter_drops(r, "checkout", "app.debug.keep"), "the exception keeps");
    cr_assert_not(dx_metric_filter_drops(r, "checkout", "app.trace.z"),
                  "an entry without metrics keeps, and stops the search");
    cr_assert_not(dx_metric_filter_drops(r, "checkout", "http.server.request.duration"));
    cr_assert(dx_metric_filter_drops(r, "cart", "x.1"));
    cr_assert(dx_metric_filter_drops(r, "cart", "all.of.it"));
    cr_assert_not(dx_metric_filter_drops(r, "cart", "x.12"));
    cr_assert_not(dx_metric_filter_drops(NULL, "cart", "x.1"), "no table drops nothing");
    free(t.buf);
}

Test(metric_filter, an_entry_without_match_drops_everything)
{
    struct table t = compile(HEAD "  filters:\n"
                                  "    - match: {service.name: gateway}\n"
                                  "      drop: [traces]\n"
                                  "    - match: {}\n"
                                  "      drop: [metrics]\n");
    cr_assert(dx_metric_filter_drops(&t.r, "checkout", "anything"));
    cr_assert_not(dx_metric_filter_drops(&t.r, "gateway", "anything"),
                  "the service's traces entry matches first and keeps its metrics");
    free(t.buf);
}

/* ---- through the store, /metrics and OTLP ---- */

static char *dir;
static struct dynobs_segment seg;
static const struct dynobs_metric_def debug = {.name = "app.debug.x",
                                               .kind = DYNOBS_METRIC_COUNTER};
static const struct dynobs_metric_def keep = {.name = "app.keep.y", .kind = DYNOBS_METRIC_COUNTER};

static void setup(void)
{
    dir = tu_tmpdir();
    dx_queue_configure(512, 2048, 5000);
    cr_assert_eq(dx_segments_init(dir, "testhost"), 0);
    cr_assert_eq(dx_prometheus_self(dx_metric_filter_prom), 0);
    struct dynobs_resource res;
    dynobs__resource_build(&res, "checkout", "", "prog");
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 131072, .ring_shards = 1,
                                      .metric_slots = 16, .pid = getpid(),
                                      .start_ticks = dynobs__proc_start_ticks(0), .resource = &res};
    cr_assert_eq(dynobs__segment_create(&seg, &p), 0);
}

static void teardown(void)
{
    dx_segments_close_all();
    dynobs__segment_detach(&seg);
    tu_rmtree(dir);
    free(dir);
}

static void add(const struct dynobs_metric_def *d, double v)
{
    cr_assert_eq(dynobs__metric_update(&seg.metrics, d, v, "k=v"), 0);
}

static char *exposition(void)
{
    struct dx_buf b;
    dx_buf_init(&b, 1 << 20);
    dx_prometheus_render(&b);
    cr_assert_not_null(b.p);
    return b.p;
}

/* The OTLP request's points, and whether a metric name is in it (a
 * protobuf string is its bytes as they are). */
static long otlp(const char *name, int *has)
{
    uint8_t *body = NULL;
    size_t len = 0;
    dx_segments_lock();
    dx_segments_snapshot();
    long points = dx_encode_metrics(1700000000000000000ull, &body, &len);
    dx_segments_unlock();
    cr_assert(points >= 0);
    *has = body && memmem(body, len, name, strlen(name)) != NULL;
    free(body);
    return points;
}

static const char *DROP = HEAD "  filters:\n"
                               "    - match: {service.name: checkout, metric.name: \"app.debug.*\"}\n"
                               "      drop: [metrics]\n";
static const char *NO_DROP = HEAD "  filters:\n"
                                  "    - match: {url.path: /healthz}\n"
                                  "      drop: [metrics]\n";

Test(metric_filter, dropped_series_come_back_with_their_totals, .init = setup,
     .fini = teardown)
{
    struct table drop = compile(DROP), none = compile(NO_DROP);
    add(&debug, 3);
    add(&keep, 5);
    dx_segments_scan();
    cr_assert_eq(dx_segments_count(), 1);
    char *text = exposition(); /* the series exist before the rules do */
    TU_ASSERT_CONTAINS(text, "app_debug_x_total{service_name=\"checkout\",k=\"v\"} 3\n",
                       "dynobs_exporter_metric_series_filtered 0\n");
    free(text);

    dx_metric_filter_rules(&drop.r);
    add(&debug, 4);
    add(&keep, 1);
    text = exposition();
    TU_ASSERT_CONTAINS(text, "app_keep_y_total{service_name=\"checkout\",k=\"v\"} 6\n",
                       "dynobs_exporter_metric_series_filtered 1\n");
    cr_assert_null(strstr(text, "app_debug_x"), "%s", text);
    free(text);
    int has;
    cr_assert_eq(otlp("app.debug.x", &has), 1);
    cr_assert_not(has, "a dropped series in OTLP");
    cr_assert_eq(otlp("app.keep.y", &has), 1);
    cr_assert(has);

    /* The store kept counting: the series comes back whole. */
    dx_metric_filter_rules(&none.r);
    add(&debug, 10);
    text = exposition();
    TU_ASSERT_CONTAINS(text, "app_debug_x_total{service_name=\"checkout\",k=\"v\"} 17\n",
                       "app_keep_y_total{service_name=\"checkout\",k=\"v\"} 6\n",
                       "dynobs_exporter_metric_series_filtered 0\n");
    free(text);
    cr_assert_eq(otlp("app.debug.x", &has), 2);
    cr_assert(has);
    free(drop.buf);
    free(none.buf);
}

Test(metric_filter, new_series_are_decided_when_created, .init = setup, .fini = teardown)
{
    struct table drop = compile(DROP);
    dx_metric_filter_rules(&drop.r);
    add(&debug, 2);
    add(&keep, 1);
    dx_segments_scan();
    char *text = exposition();
    TU_ASSERT_CONTAINS(text, "app_keep_y_total{service_name=\"checkout\",k=\"v\"} 1\n",
                       "dynobs_exporter_metric_series_filtered 1\n");
    cr_assert_null(strstr(text, "app_debug_x"), "%s", text);
    free(text);
    /* A second series of the dropped metric is dropped too. */
    cr_assert_eq(dynobs__metric_update(&seg.metrics, &debug, 1, "k=w"), 0);
    text = exposition();
    TU_ASSERT_CONTAINS(text, "dynobs_exporter_metric_series_filtered 2\n");
    cr_assert_null(strstr(text, "app_debug_x"), "%s", text);
    free(text);
    free(drop.buf);
}
