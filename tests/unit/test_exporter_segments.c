/* Segments through the exporter's parts: a real segment in a temporary
 * directory is attached, drained into the queue, snapshotted into the
 * metric store and rendered for Prometheus and OTLP; a segment of a
 * process that exited is reaped and its counters stay in the totals. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "dynobs/dynobs.h"
#include "metrics.h"
#include "otlp_encode.h"
#include "prometheus.h"
#include "queue.h"
#include "record.h"
#include "resource.h"
#include "segment.h"
#include "segments.h"
#include "store.h"
#include "testutil.h"

static char *dir;

static void setup(void)
{
    dir = tu_tmpdir();
    dx_queue_configure(512, 2048, 5000);
    cr_assert_eq(dx_segments_init(dir, "testhost"), 0);
}

static void teardown(void)
{
    dx_segments_close_all();
    tu_rmtree(dir);
    free(dir);
}

static void put_span(struct dynobs_ring *r, const char *name)
{
    struct dynobs_span_rec f;
    tu_span_rec(&f, name, DYNOBS_SPAN_KIND_CLIENT);
    f.body_len = f.name_len;
    cr_assert_eq(dynobs__ring_write(r, DYNOBS_REC_SPAN, 0, &f, sizeof f, name, f.name_len), 0);
}

/* The segment of process `pid` (this one, or a child that then exits):
 * three spans, a counter, a gauge and a histogram. */
static void make_segment(int pid)
{
    struct dynobs_resource res;
    dynobs__resource_build(&res, "svc", "deployment.environment=test", "prog");
    struct dynobs_segment s;
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 131072, .ring_shards = 1,
                                      .metric_slots = 16, .pid = pid,
                                      .start_ticks = dynobs__proc_start_ticks(0), .resource = &res};
    cr_assert_eq(dynobs__segment_create(&s, &p), 0);
    for (int i = 0; i < 3; i++)
        put_span(&s.rings[0], "SELECT users");
    struct dynobs_metric_def c = {.name = "http.requests", .kind = DYNOBS_METRIC_COUNTER};
    struct dynobs_metric_def g = {.name = "queue.depth", .kind = DYNOBS_METRIC_GAUGE};
    static const double bounds[] = {0.1, 1};
    struct dynobs_metric_def h = {.name = "op.duration", .unit = "s",
                                  .kind = DYNOBS_METRIC_HISTOGRAM, .bounds = bounds, .nbounds = 2};
    cr_assert_eq(dynobs__metric_update(&s.metrics, &c, 3, "code=200"), 0);
    cr_assert_eq(dynobs__metric_update(&s.metrics, &g, 42, ""), 0);
    cr_assert_eq(dynobs__metric_update(&s.metrics, &h, 0.05, ""), 0);
    cr_assert_eq(dynobs__metric_update(&s.metrics, &h, 0.5, ""), 0);
    cr_assert_eq(dynobs__metric_update(&s.metrics, &h, 5, ""), 0);
    dynobs__segment_detach(&s);
}

static char *exposition(void)
{
    struct dx_buf b;
    dx_buf_init(&b, 1 << 20);
    dx_prometheus_render(&b);
    cr_assert_not_null(b.p);
    return b.p;
}

/* An ExportMetricsServiceRequest as protoc prints it (body is freed). */
static const char *decode_metrics(uint8_t *body, size_t len)
{
    char in[] = "/tmp/dynobs-metrics-XXXXXX";
    int fd = mkstemp(in);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, body, len), (ssize_t)len);
    close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "protoc --decode=opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"
             " -I '%s' opentelemetry/proto/collector/metrics/v1/metrics_service.proto < '%s'",
             DYNOBS_PROTO_DIR, in);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    static char out[1 << 17];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "protoc failed:\n%s", out);
    unlink(in);
    free(body);
    return out;
}

Test(exporter_segments, attach_drain_and_render, .init = setup, .fini = teardown)
{
    make_segment(getpid());
    dx_segments_scan();
    cr_assert_eq(dx_segments_count(), 1);
    dx_segments_scan(); /* attached once */
    cr_assert_eq(dx_segments_count(), 1);
    cr_assert_eq(dx_segments_drain(), 3);
    cr_assert_eq(dx_queue_queued(DX_TRACES), 3);
    char *text = exposition();
    cr_assert(strstr(text, "# TYPE http_requests_total counter\n"
                           "http_requests_total{service_name=\"svc\",code=\"200\"} 3\n"),
              "%s", text);
    cr_assert(strstr(text, "queue_depth{service_name=\"svc\"} 42\n"), "%s", text);
    cr_assert(strstr(text, "op_duration_seconds_bucket{service_name=\"svc\",le=\"0.1\"} 1\n"
                           "op_duration_seconds_bucket{service_name=\"svc\",le=\"1\"} 2\n"
                           "op_duration_seconds_bucket{service_name=\"svc\",le=\"+Inf\"} 3\n"
                           "op_duration_seconds_sum{service_name=\"svc\"} 5.55\n"
                           "op_duration_seconds_count{service_name=\"svc\"} 3\n"),
              "%s", text);
    cr_assert(strstr(text, "target_info{service_name=\"svc\",deployment_environment=\"test\","
                           "host_name=\"testhost\""),
              "%s", text);
    TU_ASSERT_CONTAINS(text, "dynobs_exporter_records_drained_total{signal=\"traces\"} 3\n",
                       "dynobs_exporter_ring_records_written_total 3\n",
                       "dynobs_exporter_segments_attached 1\n",
                       "dynobs_exporter_queue_records{signal=\"traces\"} 3\n");
    free(text);

    /* The same series as an OTLP metrics request. */
    uint8_t *body = NULL;
    size_t len = 0;
    dx_segments_lock();
    dx_segments_snapshot();
    long points = dx_encode_metrics(1700000000000000000ull, &body, &len);
    dx_segments_unlock();
    cr_assert_eq(points, 3);
    const char *out = decode_metrics(body, len);
    TU_ASSERT_CONTAINS(out, "name: \"http.requests\"", "is_monotonic: true",
                       "aggregation_temporality: AGGREGATION_TEMPORALITY_CUMULATIVE",
                       "name: \"queue.depth\"", "name: \"op.duration\"", "unit: \"s\"", "count: 3",
                       "explicit_bounds: 0.1\n");
}

Test(exporter_segments, reaped_counters_stay_in_the_totals, .init = setup, .fini = teardown)
{
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        make_segment(getpid());
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    dx_segments_scan();
    cr_assert_eq(dx_segments_count(), 1);
    dx_segments_reap(); /* drains what is left, folds, unlinks */
    cr_assert_eq(dx_segments_count(), 0);
    cr_assert_eq(dx_queue_queued(DX_TRACES), 3, "the ring is drained before the segment goes");
    DIR *d = opendir(dir);
    struct dirent *e;
    int left = 0;
    while ((e = readdir(d)))
        left += strstr(e->d_name, ".seg") != NULL;
    closedir(d);
    cr_assert_eq(left, 0, "the segment file is removed");
    char *text = exposition();
    /* Counters and histograms keep their totals; a gauge of an exited
     * process says nothing about the service and goes. */
    cr_assert(strstr(text, "http_requests_total{service_name=\"svc\",code=\"200\"} 3\n"), "%s",
              text);
    cr_assert(strstr(text, "op_duration_seconds_count{service_name=\"svc\"} 3\n"), "%s", text);
    cr_assert_null(strstr(text, "queue_depth{"), "%s", text);
    cr_assert(strstr(text, "dynobs_exporter_segments_reaped_total 1\n"), "%s", text);
    cr_assert(strstr(text, "dynobs_exporter_ring_records_written_total 3\n"), "%s", text);
    cr_assert(strstr(text, "dynobs_exporter_segments_attached 0\n"), "%s", text);
    free(text);
}

/* A process of service "svc" (this one, or a child that then exits)
 * with the counter "wide" at i + 1 and the histogram "wide.h" at i for
 * labels i = from .. to - 1. */
static void make_wide_segment(int pid, int from, int to, int narrow)
{
    struct dynobs_resource res;
    dynobs__resource_build(&res, "svc", "", "prog");
    struct dynobs_segment s;
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 131072, .ring_shards = 1,
                                      .metric_slots = 64, .pid = pid,
                                      .start_ticks = dynobs__proc_start_ticks(0), .resource = &res};
    cr_assert_eq(dynobs__segment_create(&s, &p), 0);
    struct dynobs_metric_def c = {.name = "wide", .kind = DYNOBS_METRIC_COUNTER};
    struct dynobs_metric_def h = {.name = "wide.h", .kind = DYNOBS_METRIC_HISTOGRAM};
    char labels[32];
    for (int i = from; i < to; i++) {
        snprintf(labels, sizeof labels, "i=%d", i);
        cr_assert_eq(dynobs__metric_update(&s.metrics, &c, i + 1, labels), 0);
        cr_assert_eq(dynobs__metric_update(&s.metrics, &h, i, labels), 0);
    }
    if (narrow) { /* the shim's own cap: 2 sets, the third to overflow */
        struct dynobs_metric_def n = {.name = "narrow", .kind = DYNOBS_METRIC_COUNTER};
        dynobs__metric_cardinality_set(2);
        for (int i = 0; i < 3; i++) {
            snprintf(labels, sizeof labels, "i=%d", i);
            cr_assert_eq(dynobs__metric_update(&s.metrics, &n, 1, labels), 0);
        }
        dynobs__metric_cardinality_set(0);
    }
    dynobs__segment_detach(&s);
}

/* The lines of one family's samples (name followed by '{'), in order,
 * and the sum of their values. */
static int samples(const char *text, const char *name, double *sum, char *lines, size_t cap)
{
    int n = 0;
    size_t nl = strlen(name), used = 0;
    *sum = 0;
    lines[0] = '\0';
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) || p[nl] != '{')
            continue;
        const char *end = strchr(p, '\n'), *v = end;
        while (v > p && v[-1] != ' ')
            v--;
        *sum += strtod(v, NULL);
        size_t l = (size_t)(end - p + 1);
        if (used + l < cap) {
            memcpy(lines + used, p, l);
            used += l;
            lines[used] = '\0';
        }
        n++;
    }
    return n;
}

Test(exporter_segments, cardinality_cap_per_service, .init = setup, .fini = teardown)
{
    dx_store_set_cardinality_limit(4);
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) {
        make_wide_segment(getpid(), 0, 6, 0);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    make_wide_segment(getpid(), 3, 10, 1);
    dx_segments_scan();
    cr_assert_eq(dx_segments_count(), 2);

    /* 10 attribute sets between the two processes: 4 of their own, the
     * other 6 folded into the overflow series, nothing lost: the values
     * are 1..6 and 4..10, the histogram's 13 measurements. */
    char *text = exposition();
    static char before[8192], after[8192];
    double sum;
    cr_assert_eq(samples(text, "wide_total", &sum, before, sizeof before), 5, "%s", text);
    cr_assert_float_eq(sum, 21 + 49, 0, "%s", text);
    TU_ASSERT_CONTAINS(text, "wide_total{service_name=\"svc\",otel_metric_overflow=\"true\"} ",
                       "wide_h_count{service_name=\"svc\",otel_metric_overflow=\"true\"} ",
                       "narrow_total{service_name=\"svc\",otel_metric_overflow=\"true\"} 1\n",
                       "dynobs_metric_overflow_updates_total{service_name=\"svc\"} 1\n");
    double hcount;
    static char scratch[8192];
    cr_assert_eq(samples(text, "wide_h_count", &hcount, scratch, sizeof scratch), 5);
    cr_assert_float_eq(hcount, 13, 0);
    cr_assert_eq(samples(text, "wide_h_sum", &sum, scratch, sizeof scratch), 5);
    cr_assert_float_eq(sum, 15 + 42, 0);
    /* Each process slot folded is counted once: at least the 6 sets of
     * their own that did not fit, per metric. */
    cr_assert(strstr(text, "dynobs_exporter_metric_series_folded_total{service_name=\"svc\"} "),
              "%s", text);
    free(text);

    /* The child is gone: its totals stay, in the same series. */
    dx_segments_reap();
    cr_assert_eq(dx_segments_count(), 1);
    text = exposition();
    cr_assert_eq(samples(text, "wide_total", &sum, after, sizeof after), 5, "%s", text);
    cr_assert_str_eq(after, before, "a series kept its own place or its fold");
    cr_assert_eq(samples(text, "wide_h_count", &hcount, scratch, sizeof scratch), 5);
    cr_assert_float_eq(hcount, 13, 0);
    free(text);

    /* OTLP: the overflow series' attribute is a bool. */
    uint8_t *body = NULL;
    size_t len = 0;
    dx_segments_lock();
    dx_segments_snapshot();
    cr_assert_gt(dx_encode_metrics(1700000000000000000ull, &body, &len), 0);
    dx_segments_unlock();
    const char *out = decode_metrics(body, len);
    TU_ASSERT_CONTAINS(out, "key: \"otel.metric.overflow\"\n", "bool_value: true\n");
    dx_store_set_cardinality_limit(0);
}

Test(exporter_segments, foreign_files_are_refused, .init = setup, .fini = teardown)
{
    char path[512];
    /* Named like a segment, but garbage inside. */
    snprintf(path, sizeof path, "%s/%d-%llu.seg", dir, getpid(),
             (unsigned long long)dynobs__proc_start_ticks(0));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("not a segment", f);
    fclose(f);
    /* Not named like a segment: never looked at. */
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    dx_segments_scan();
    dx_segments_scan(); /* a refused file is refused (and counted) once */
    cr_assert_eq(dx_segments_count(), 0);
    char *text = exposition();
    cr_assert(strstr(text, "dynobs_exporter_segments_rejected_total 1\n"), "%s", text);
    free(text);
}
