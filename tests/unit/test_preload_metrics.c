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

/* The series of one segment, looked up by name and labels. */
struct seg_series {
    int n;
    struct dynobs_metric_view v[64];
    uint64_t overflow_updates;
    int pid;
};

static void read_series(const char *path, struct seg_series *s)
{
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, path, 0), 0);
    s->n = 0;
    for (uint32_t i = 0; i < r->hdr.metric_slots && s->n < 64; i++)
        if (dynobs__reader_metric(r, i, &s->v[s->n]) == 0)
            s->n++;
    s->overflow_updates = dynobs__reader_counter(r, DYNOBS_CTR_METRIC_OVERFLOW);
    s->pid = r->hdr.pid;
    dynobs__reader_close(r);
    free(r);
}

/* The one series of that name and labels (the test fails on none or two). */
static const struct dynobs_metric_view *find(const struct seg_series *s, const char *name,
                                             const char *labels)
{
    const struct dynobs_metric_view *found = NULL;
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].name, name) || strcmp(s->v[i].labels, labels))
            continue;
        cr_assert_null(found, "two series %s{%s}", name, labels);
        found = &s->v[i];
    }
    cr_assert_not_null(found, "no series %s{%s}", name, labels);
    return found;
}

static void one_segment(struct seg_series *s)
{
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    read_series(paths[0], s);
}

static void want_line(const char *text, const char *label, int value)
{
    char got[64];
    cr_assert_not_null(line(text, label, got, sizeof got), "no '%s' in:\n%s", label, text);
    cr_assert_eq(atoi(got), value, "%s: %s, want %d", label, got, value);
}

Test(preload_metrics, handles_update_the_series_of_their_name_and_labels)
{
    cr_assert_eq(run("handles", NULL, 1), 0);
    char *text = tu_slurp(out);
    want_line(text, "same", 1);
    want_line(text, "other", 1);
    want_line(text, "null", DYNOBS_EINVAL);
    want_line(text, "wrongkind", DYNOBS_EINVAL);
    want_line(text, "negative", DYNOBS_EINVAL);
    want_line(text, "badname", 1);
    want_line(text, "badlabels", 1);
    want_line(text, "nullname", 1);
    want_line(text, "kindclash", DYNOBS_EINVAL);
    struct seg_series *s = malloc(sizeof *s);
    one_segment(s);
    /* Five adds through the handle and two by name, in one series. */
    cr_assert_float_eq(find(s, "hreq", "method=GET")->value, 7.0, 0);
    cr_assert_eq(find(s, "hreq", "method=GET")->kind, DYNOBS_METRIC_COUNTER);
    cr_assert_float_eq(find(s, "hinflight", "")->value, 2.0, 0);
    cr_assert_float_eq(find(s, "htemp", "room=a")->value, 19.0, 0);
    const struct dynobs_metric_view *l = find(s, "hlat", "route=/h");
    cr_assert_str_eq(l->unit, "s");
    cr_assert_eq(l->nbounds, 3);
    cr_assert_eq(l->count, 3);
    cr_assert_eq(l->buckets[0], 1);
    cr_assert_eq(l->buckets[2], 1);
    cr_assert_eq(l->buckets[3], 1);
    cr_assert_float_eq(l->value, 22.05, 1e-9);
    cr_assert_float_eq(l->min, 0.05, 0);
    cr_assert_float_eq(l->max, 20, 0);
    const struct dynobs_metric_view *dh = find(s, "hdefault", "");
    cr_assert_eq(dh->nbounds, 15);
    cr_assert_eq(dh->count, 1);
    cr_assert_eq(dh->buckets[2], 1); /* (5, 10] */
    /* Handles never updated (method=PUT, the refused gauge) made no series. */
    cr_assert_eq(s->n, 5, "%d series", s->n);
    free(s);
    free(text);
}

Test(preload_metrics, a_handle_past_the_cardinality_cap_updates_the_overflow_series)
{
    const char *env[] = {"DYNOBS_METRIC_SLOTS=16", NULL};
    cr_assert_eq(run("handle-overflow", env, 1), 0);
    char *text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "over 0\nover 0\n"), "%s", text);
    struct seg_series *s = malloc(sizeof *s);
    one_segment(s);
    cr_assert_float_eq(find(s, "capped", "n=0")->value, 11.0, 0);
    for (int i = 1; i < 4; i++) {
        char labels[16];
        snprintf(labels, sizeof labels, "n=%d", i);
        cr_assert_float_eq(find(s, "capped", labels)->value, 1.0, 0);
    }
    /* 1 + 2 through the handle of n=4, 4 by name for n=5. */
    cr_assert_float_eq(find(s, "capped", DYNOBS_METRIC_OVERFLOW_LABELS)->value, 7.0, 0);
    cr_assert_eq(s->overflow_updates, 3);
    cr_assert_eq(s->n, 5, "%d series", s->n);
    free(s);
    free(text);
}

Test(preload_metrics, handles_and_the_cache_follow_a_fork_into_the_childs_segment)
{
    cr_assert_eq(run("handle-fork", NULL, 1), 0);
    char *text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "child 0 0 0\n"), "%s", text);
    char v[32];
    cr_assert_not_null(line(text, "child-pid", v, sizeof v), "%s", text);
    int child = atoi(v);
    cr_assert_not_null(line(text, "parent-pid", v, sizeof v), "%s", text);
    int parent = atoi(v);
    char paths[3][1024];
    cr_assert_eq(segments(paths, 3), 2);
    struct seg_series *s = malloc(2 * sizeof *s);
    read_series(paths[0], &s[0]);
    read_series(paths[1], &s[1]);
    const struct seg_series *p = s[0].pid == parent ? &s[0] : &s[1];
    const struct seg_series *c = s[0].pid == child ? &s[0] : &s[1];
    cr_assert_eq(p->pid, parent);
    cr_assert_eq(c->pid, child);
    /* The parent's series hold only the parent's updates... */
    cr_assert_float_eq(find(p, "forked", "")->value, 2.0, 0);
    cr_assert_float_eq(find(p, "byname", "k=v")->value, 3.0, 0);
    cr_assert_eq(p->n, 2, "%d series in the parent", p->n);
    /* ...and the child's segment the child's. */
    cr_assert_float_eq(find(c, "forked", "")->value, 10.0, 0);
    cr_assert_float_eq(find(c, "byname", "k=v")->value, 5.0, 0);
    cr_assert_eq(find(c, "forked.late", "")->count, 1);
    cr_assert_eq(c->n, 3, "%d series in the child", c->n);
    free(s);
    free(text);
}

Test(preload_metrics, handles_report_dynobs_off)
{
    const char *env[] = {"OTEL_SDK_DISABLED=true", NULL};
    for (int preloaded = 0; preloaded < 2; preloaded++) {
        cr_assert_eq(run("handle-disabled", preloaded ? env : NULL, preloaded), 0);
        char *text = tu_slurp(out);
        want_line(text, "handle", 1);
        want_line(text, "add", DYNOBS_EDISABLED);
        want_line(text, "record", DYNOBS_EDISABLED);
        want_line(text, "gauge", DYNOBS_EDISABLED);
        free(text);
    }
    char paths[1][1024];
    cr_assert_eq(segments(paths, 1), 0);
}

Test(preload_metrics, the_by_name_cache_never_hits_a_wrong_series)
{
    cr_assert_eq(run("cache", NULL, 1), 0);
    char *text = tu_slurp(out);
    want_line(text, "kindclash", DYNOBS_EINVAL);
    struct seg_series *s = malloc(sizeof *s);
    one_segment(s);
    cr_assert_float_eq(find(s, "cached", "k=a")->value, 13.0, 0);
    cr_assert_float_eq(find(s, "cached", "k=b")->value, 2.0, 0);
    cr_assert_float_eq(find(s, "cached", "k=ab")->value, 1.0, 0);
    cr_assert_float_eq(find(s, "cachedx", "k=ab")->value, 1.0, 0);
    cr_assert_float_eq(find(s, "heap0", "i=0")->value, 1.0, 0);
    cr_assert_float_eq(find(s, "heap0", "i=2")->value, 1.0, 0);
    cr_assert_float_eq(find(s, "heap1", "i=1")->value, 1.0, 0);
    cr_assert_float_eq(find(s, "heap1", "i=3")->value, 1.0, 0);
    cr_assert_eq(s->n, 8, "%d series", s->n);
    free(s);
    free(text);
}
