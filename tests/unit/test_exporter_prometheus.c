/* Naming for Prometheus: metric names from OpenTelemetry names and units,
 * label names and escaped label values; the exposition of the
 * exporter's own series when no segment is attached; and the fast number
 * writer, which must write what the dx_buf functions write. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dynobs/dynobs.h"
#include "prom_naming.h"
#include "prom_text.h"
#include "prometheus.h"

static const char *name(const char *otel, const char *unit, int kind)
{
    static char out[512];
    dx_prom_name(otel, unit, kind, out, sizeof out);
    return out;
}

Test(exporter_prometheus, metric_names_follow_the_compatibility_spec)
{
    cr_assert_str_eq(name("http.server.request.duration", "s", DYNOBS_METRIC_HISTOGRAM),
                     "http_server_request_duration_seconds");
    cr_assert_str_eq(name("db.client.operation.duration", "ms", DYNOBS_METRIC_HISTOGRAM),
                     "db_client_operation_duration_milliseconds");
    cr_assert_str_eq(name("process.memory", "By", DYNOBS_METRIC_GAUGE), "process_memory_bytes");
    cr_assert_str_eq(name("net.io", "By/s", DYNOBS_METRIC_GAUGE), "net_io_bytes_per_seconds");
    cr_assert_str_eq(name("cpu.utilization", "1", DYNOBS_METRIC_GAUGE), "cpu_utilization_ratio");
    cr_assert_str_eq(name("jobs.done", "1", DYNOBS_METRIC_COUNTER), "jobs_done");
    /* Annotations in braces are no unit. */
    cr_assert_str_eq(name("http.requests", "{request}", DYNOBS_METRIC_COUNTER), "http_requests");
    /* An unknown unit is kept, sanitised. */
    cr_assert_str_eq(name("queue.depth", "items", DYNOBS_METRIC_GAUGE), "queue_depth_items");
    /* The unit is not appended twice. */
    cr_assert_str_eq(name("latency_seconds", "s", DYNOBS_METRIC_GAUGE), "latency_seconds");
}

Test(exporter_prometheus, metric_names_are_sanitised)
{
    cr_assert_str_eq(name("a-b..c d", "", DYNOBS_METRIC_GAUGE), "a_b_c_d");
    cr_assert_str_eq(name("ns:metric", "", DYNOBS_METRIC_GAUGE), "ns:metric");
    cr_assert_str_eq(name("9lives", "", DYNOBS_METRIC_GAUGE), "_9lives");
    cr_assert_str_eq(name("ünï", "", DYNOBS_METRIC_GAUGE), "_n_"); /* per byte, runs collapsed */
    /* A counter's _total is added by the exposition, so it is taken off
     * here; other kinds keep it. */
    cr_assert_str_eq(name("requests_total", "", DYNOBS_METRIC_COUNTER), "requests");
    cr_assert_str_eq(name("requests_total", "", DYNOBS_METRIC_GAUGE), "requests_total");
    /* The output is cut at its buffer, NUL-terminated. */
    char small[8];
    dx_prom_name("a_very_long_metric_name", "", DYNOBS_METRIC_GAUGE, small, sizeof small);
    cr_assert_str_eq(small, "a_very_");
}

static char *label(const char *k, const char *v)
{
    struct dx_buf b;
    dx_buf_init(&b, 1 << 16);
    dx_prom_label(&b, k, strlen(k), v, strlen(v), 1);
    return b.p;
}

/* The label text of k and v (as the first label) is want. */
static void label_is(const char *k, const char *v, const char *want)
{
    char *s = label(k, v);
    cr_assert_str_eq(s, want);
    free(s);
}

/* The label block of a series of service with labels is want. */
static void labels_are(const char *service, const char *labels, const char *want)
{
    char *s = dx_prom_labels(service, labels);
    cr_assert_str_eq(s, want);
    free(s);
}

Test(exporter_prometheus, label_names_and_values_are_escaped)
{
    label_is("http.route", "/a\\b\"c\nd", "http_route=\"/a\\\\b\\\"c\\nd\"");
    label_is("2xx", "v", "key_2xx=\"v\"");
    /* Non-ASCII keys become '_' per byte; values stay UTF-8. */
    label_is("k-é", "é", "k___=\"é\"");
    struct dx_buf b;
    dx_buf_init(&b, 1024);
    dx_prom_label(&b, "a", 1, "1", 1, 1);
    dx_prom_label(&b, "b", 1, "2", 1, 0);
    cr_assert_str_eq(b.p, "a=\"1\",b=\"2\"");
    dx_buf_free(&b);
}

Test(exporter_prometheus, series_label_blocks)
{
    labels_are("check\"out", "http.route=/x,code=200",
               "service_name=\"check\\\"out\",http_route=\"/x\",code=\"200\"");
    /* A service_name label of the series' own is left out: the
     * service's name comes first and only once. */
    labels_are("svc", "service_name=other,a=b", "service_name=\"svc\",a=\"b\"");
    labels_are("svc", "", "service_name=\"svc\"");
}

Test(exporter_prometheus, self_metrics_without_segments)
{
    struct dx_buf b;
    dx_buf_init(&b, 1 << 20);
    dx_prometheus_render(&b);
    cr_assert_not_null(b.p);
    cr_assert_eq(b.overflow, 0);
    cr_assert_null(strstr(b.p, "target_info"), "no service, no target_info:\n%s", b.p);
    cr_assert(strstr(b.p, "# TYPE dynobs_exporter_records_drained_total counter\n"
                          "dynobs_exporter_records_drained_total{signal=\"traces\"} 0\n"
                          "dynobs_exporter_records_drained_total{signal=\"logs\"} 0\n"),
              "%s", b.p);
    cr_assert(strstr(b.p, "dynobs_exporter_segments_attached 0\n"), "%s", b.p);
    cr_assert(strstr(b.p, "dynobs_exporter_export_requests_total{signal=\"metrics\","
                          "outcome=\"failure\"} 0\n"),
              "%s", b.p);
    cr_assert(strstr(b.p, "dynobs_exporter_exported_items_total{signal=\"metrics\"} 0\n"), "%s",
              b.p);
    cr_assert(strstr(b.p, "dynobs_exporter_series_conflicts_total 0\n"), "%s", b.p);
    dx_buf_free(&b);
}

/* dx_prom_num (prom_text.c) must write every number as dx_buf_num does:
 * the fast path computes the digits itself and the page must not change. */
static void num_is_as_before(double v)
{
    struct dx_buf b;
    dx_buf_init(&b, 1 << 10);
    dx_buf_num(&b, v);
    char fast[DX_PROM_NUM_MAX + 1];
    char *end = dx_prom_num(fast, v);
    cr_assert_leq(end - fast, DX_PROM_NUM_MAX);
    *end = '\0';
    cr_assert_str_eq(fast, b.p, "%a", v);
    dx_buf_free(&b);
}

Test(exporter_prometheus, numbers_are_written_as_before)
{
    static const double fixed_cases[] = {
        0.1, 0.2, 0.3, 0.1 + 0.2, 1.0 / 3, 2.0 / 3, 0.005, 0.0001, 0.00012345, 0x1p-14,
        0x1p-14 * 1.5, 6.103515625e-05, 1e-05, 123456789012.4375, 1234567890123.4375,
        123456789012.015625, 123456789012.046875, 999999999999999.9, 999999999999999.5,
        1e15 - 0.5, 4503599627370495.5, 0.5, 0.25, 0.125, 1.5, 2.5, 1199.9999999999998,
        3.14159265358979, 2.718281828459045, 1.7976931348623157e308, 4.9e-324,
        2.2250738585072014e-308, 1e300, 1e-300, 1e20, 1e16, 9007199254740993.0,
        9007199254740992.0, 9007199254740991.0, 0.0, -0.0, 42.0, 18446744073709551616.0,
        (double)NAN, (double)INFINITY, -(double)INFINITY};
    for (size_t i = 0; i < sizeof fixed_cases / sizeof fixed_cases[0]; i++) {
        num_is_as_before(fixed_cases[i]);
        num_is_as_before(-fixed_cases[i]);
    }
    /* Neighbours of powers of ten and two (the decimal exponent guess and
     * the smaller gap below a power of two), then random values of the
     * kinds a service reports, and random bit patterns. */
    for (int e = -20; e <= 20; e++) {
        double p = pow(10, e), q = ldexp(1, e);
        num_is_as_before(nextafter(p, 0));
        num_is_as_before(nextafter(p, INFINITY));
        num_is_as_before(nextafter(q, 0));
        num_is_as_before(nextafter(q, INFINITY));
    }
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v;
        switch (i % 5) {
        case 0: /* any bits */
            memcpy(&v, &x, sizeof v);
            break;
        case 1: /* a 53-bit mantissa scaled into and around the fast range */
            v = ldexp((double)(x >> 11), -(int)(x % 70));
            break;
        case 2: /* decimals */
            v = (double)(int64_t)(x % 2000000001 - 1000000000) / pow(10, (double)(x % 12));
            break;
        case 3: /* binary fractions of 12-digit numbers: ties at 17 digits */
            v = (double)(x % 1000000000000ull) + (double)((x >> 40) % 64) / 64.0;
            break;
        default: /* sums of durations */
            v = (double)(x % 100000) * 0.0007 * (double)(x % 97);
            break;
        }
        if (!isnan(v))
            num_is_as_before(v);
    }
}

Test(exporter_prometheus, room_stops_at_the_cap_without_counting)
{
    struct dx_buf b;
    dx_buf_init(&b, 100);
    char *p = dx_prom_room(&b, 50);
    cr_assert_not_null(p);
    p = dx_prom_u64(p, 18446744073709551615ull);
    dx_prom_commit(&b, p);
    cr_assert_str_eq(b.p, "18446744073709551615");
    /* Past the cap: no room, nothing changed, no overflow yet (the
     * caller's dx_buf_put decides and counts it). */
    cr_assert_null(dx_prom_room(&b, 80));
    cr_assert_eq(b.len, 20);
    cr_assert_eq(b.overflow, 0);
    cr_assert_not_null(dx_prom_room(&b, 79));
    dx_buf_free(&b);
}
