/* Metrics made through the C API in real processes: every kind
 * lands in the segment's metric table with its labels and unit, and bad
 * calls are refused with the documented error.
 * Shared set-up: preload_harness.h. */
#include "preload_harness.h"

PRELOAD_SUITE(preload_metrics);

Test(preload_metrics, metrics_land_in_the_segment)
{
    cr_assert_eq(run("metrics", NULL, 1), 0);
    char *text = tu_slurp(out);
    char want[64];
    snprintf(want, sizeof want, "negative %d\nbadlabels %d\nbadname %d\n", DYNOBS_EINVAL,
             DYNOBS_EINVAL, DYNOBS_EINVAL);
    cr_assert_not_null(strstr(text, want), "%s", text);
    snprintf(want, sizeof want, "kindclash %d\n", DYNOBS_EINVAL);
    cr_assert_not_null(strstr(text, want), "%s", text);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], 0), 0);
    int seen = 0;
    for (uint32_t i = 0; i < r->hdr.metric_slots; i++) {
        struct dynobs_metric_view v;
        if (dynobs__reader_metric(r, i, &v) != 0)
            continue;
        seen++;
        if (!strcmp(v.name, "requests") && !strcmp(v.labels, "method=GET"))
            cr_assert_float_eq(v.value, 10.0, 0);
        else if (!strcmp(v.name, "requests") && !strcmp(v.labels, "method=POST"))
            cr_assert_float_eq(v.value, 2.5, 0);
        else if (!strcmp(v.name, "temperature"))
            cr_assert_float_eq(v.value, 19.0, 0);
        else if (!strcmp(v.name, "inflight"))
            cr_assert_float_eq(v.value, 2.0, 0);
        else if (!strcmp(v.name, "latency")) {
            cr_assert_str_eq(v.unit, "s");
            cr_assert_str_eq(v.labels, "route=/x");
            cr_assert_eq(v.count, 6);
            cr_assert_eq(v.buckets[0], 2);
            cr_assert_eq(v.buckets[1], 1);
            cr_assert_eq(v.buckets[2], 1);
            cr_assert_eq(v.buckets[3], 2);
            cr_assert_float_eq(v.min, 0.05, 0);
            cr_assert_float_eq(v.max, 30, 0);
        } else
            cr_assert_fail("unexpected series %s{%s}", v.name, v.labels);
    }
    cr_assert_eq(seen, 5);
    /* The resource: service.name defaults to the executable's name. */
    cr_assert_str_eq(r->service_name, "dynobs-scenario");
    dynobs__reader_close(r);
    free(r);
    free(text);
}
