/* libdynobs.so in real processes: the scenario program (linked to the
 * no-op library) is started with and without LD_PRELOAD, and what it
 * recorded is read back from its segment. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dynobs/dynobs.h"
#include "testutil.h"

#ifndef SCENARIO_BIN
#error SCENARIO_BIN must be defined
#endif
#ifndef DYNOBS_LIB
#error DYNOBS_LIB must be defined
#endif

static char *dir;
static char out[600];
static char preload[1024];
static char shm_env[600];

static void setup(void)
{
    dir = tu_tmpdir();
    snprintf(out, sizeof out, "%s/stdout.txt", dir);
    snprintf(shm_env, sizeof shm_env, "DYNOBS_SHM_DIR=%s/shm", dir);
    /* Under AddressSanitizer its runtime must come first in the list. */
    const char *asan = getenv("DYNOBS_TEST_PRELOAD_FIRST");
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s%s%s", asan ? asan : "", asan ? ":" : "",
             DYNOBS_LIB);
}

static void teardown(void)
{
    tu_rmtree(dir);
    free(dir);
}

TestSuite(preload, .init = setup, .fini = teardown, .timeout = 60);

/* Runs the scenario with LD_PRELOAD and extra env; returns exit status. */
static int run(const char *scenario, const char *const *env_extra, int with_preload)
{
    const char *env[16];
    int n = 0;
    if (with_preload)
        env[n++] = preload;
    env[n++] = shm_env;
    for (int i = 0; env_extra && env_extra[i]; i++)
        env[n++] = env_extra[i];
    env[n] = NULL;
    char *argv[] = {SCENARIO_BIN, (char *)scenario, NULL};
    return tu_run(argv, env, out);
}

/* The same for a scenario with arguments, always preloaded. */
static int run_argv(char *const argv[], const char *const *env_extra)
{
    const char *env[16];
    int n = 0;
    env[n++] = preload;
    env[n++] = shm_env;
    for (int i = 0; env_extra && env_extra[i]; i++)
        env[n++] = env_extra[i];
    env[n] = NULL;
    return tu_run(argv, env, out);
}

static char seg_dir[600];

static int segments(char paths[][1024], int max)
{
    snprintf(seg_dir, sizeof seg_dir, "%s/shm", dir);
    return tu_segments(seg_dir, paths, max);
}

/* Looks up "label value" lines in the scenario's stdout. */
static const char *line(const char *text, const char *label, char *val, size_t cap)
{
    size_t l = strlen(label);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, label, l) && p[l] == ' ') {
            size_t n = strcspn(p + l + 1, "\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(val, p + l + 1, n);
            val[n] = 0;
            return val;
        }
    }
    return NULL;
}

Test(preload, nested_spans_from_two_threads)
{
    cr_assert_eq(run("nested", NULL, 1), 0);
    char paths[4][1024];
    cr_assert_eq(segments(paths, 4), 1);
    static struct tu_span sp[16];
    int n = tu_read_spans(paths[0], sp, 16);
    cr_assert_eq(n, 6, "read %d spans", n);
    char *text = tu_slurp(out);
    for (int t = 1; t <= 2; t++) {
        char name[32], tag[8], tps[3][64], cur[64], after[64];
        snprintf(tag, sizeof tag, "t%d", t);
        /* The three traceparents the thread printed, in start order. */
        const char *p = text;
        for (int k = 0; k < 3; k++) {
            p = strstr(p, tag);
            while (p && (p != text && p[-1] != '\n'))
                p = strstr(p + 1, tag);
            cr_assert_not_null(p);
            cr_assert_eq(sscanf(p + strlen(tag), " %63s", tps[k]), 1);
            p += 1;
        }
        snprintf(name, sizeof name, "%s-current", tag);
        cr_assert_not_null(line(text, name, cur, sizeof cur));
        snprintf(name, sizeof name, "%s-after", tag);
        cr_assert_not_null(line(text, name, after, sizeof after));
        snprintf(name, sizeof name, "root-%s", tag);
        const struct tu_span *a = tu_find(sp, n, name);
        snprintf(name, sizeof name, "child-%s", tag);
        const struct tu_span *b = tu_find(sp, n, name);
        snprintf(name, sizeof name, "grandchild-%s", tag);
        const struct tu_span *c = tu_find(sp, n, name);
        cr_assert(a && b && c);
        /* ids match what the program saw; parents link up; one trace. */
        char want[64];
        snprintf(want, sizeof want, "00-%s-%s-03", a->trace_hex, a->span_hex);
        cr_assert_str_eq(tps[0], want);
        snprintf(want, sizeof want, "00-%s-%s-03", b->trace_hex, b->span_hex);
        cr_assert_str_eq(tps[1], want);
        snprintf(want, sizeof want, "00-%s-%s-03", c->trace_hex, c->span_hex);
        cr_assert_str_eq(tps[2], want);
        cr_assert_str_eq(cur, tps[2]);   /* the innermost span is current */
        cr_assert_str_eq(after, tps[0]); /* its grandparent after two ends */
        cr_assert_str_eq(a->parent_hex, "0000000000000000");
        cr_assert_str_eq(b->parent_hex, a->span_hex);
        cr_assert_str_eq(c->parent_hex, b->span_hex);
        cr_assert_str_eq(b->trace_hex, a->trace_hex);
        cr_assert_str_eq(c->trace_hex, a->trace_hex);
        cr_assert_eq(a->kind, DYNOBS_SPAN_KIND_SERVER);
        cr_assert_eq(b->kind, DYNOBS_SPAN_KIND_CLIENT);
        cr_assert_eq(c->kind, DYNOBS_SPAN_KIND_INTERNAL);
        cr_assert_eq(a->tid, b->tid);
        /* Attributes of every type. */
        const struct tu_attr *at = tu_attr(a, "thread.tag");
        cr_assert(at && at->type == DYNOBS_ATTR_STRING && !strcmp(at->s, tag));
        at = tu_attr(a, "answer");
        cr_assert(at && at->type == DYNOBS_ATTR_INT && at->i == 42);
        at = tu_attr(a, "ratio");
        cr_assert(at && at->type == DYNOBS_ATTR_DOUBLE && at->d == 0.25);
        at = tu_attr(a, "flag");
        cr_assert(at && at->type == DYNOBS_ATTR_BOOL && at->b == 1);
        cr_assert_eq(a->nattrs, 4);
        /* Status: OK drops its message; ERROR keeps it. */
        cr_assert_eq(a->status, DYNOBS_STATUS_OK);
        cr_assert_str_eq(a->status_msg, "");
        cr_assert_eq(b->status, DYNOBS_STATUS_UNSET);
        cr_assert_eq(c->status, DYNOBS_STATUS_ERROR);
        cr_assert_str_eq(c->status_msg, "boom");
        /* The event and its attributes. */
        cr_assert_eq(c->nevents, 1);
        cr_assert_str_eq(c->events[0].name, "retrying");
        cr_assert_eq(c->events[0].nattrs, 2);
        cr_assert_str_eq(c->events[0].attrs[0].key, "step");
        cr_assert_eq(c->events[0].attrs[0].i, 3);
        cr_assert_str_eq(c->events[0].attrs[1].s, "retry");
        /* Times nest. */
        cr_assert(a->start_ns <= b->start_ns && b->start_ns <= c->start_ns);
        cr_assert(c->end_ns <= b->end_ns && b->end_ns <= a->end_ns);
        cr_assert_gt(a->start_ns, 1600000000ull * 1000000000ull);
    }
    /* Two threads, two different traces. */
    cr_assert_str_neq(tu_find(sp, n, "root-t1")->trace_hex, tu_find(sp, n, "root-t2")->trace_hex);
    free(text);
}

Test(preload, without_preload_nothing_is_recorded)
{
    cr_assert_eq(run("disabled", NULL, 0), 0);
    char *text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "span null\n"));
    cr_assert_not_null(strstr(text, "enabled 0\n"));
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 0);
    free(text);
}

Test(preload, sdk_disabled_means_off)
{
    const char *env[] = {"OTEL_SDK_DISABLED=true", NULL};
    cr_assert_eq(run("disabled", env, 1), 0);
    char *text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "span null\n"), "%s", text);
    cr_assert_not_null(strstr(text, "enabled 0\n"));
    char want[64];
    snprintf(want, sizeof want, "counter %d\n", DYNOBS_EDISABLED);
    cr_assert_not_null(strstr(text, want), "%s", text);
    snprintf(want, sizeof want, "current %d\n", DYNOBS_EDISABLED);
    cr_assert_not_null(strstr(text, want), "%s", text);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 0); /* no segment, no file at all */
    struct stat st;
    cr_assert_neq(stat(seg_dir, &st), 0);
    free(text);
    /* The same program with the shim on does record. */
    cr_assert_eq(run("disabled", NULL, 1), 0);
    text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "span yes\n"));
    cr_assert_not_null(strstr(text, "enabled 1\n"));
    cr_assert_eq(segments(paths, 2), 1);
    free(text);
}

Test(preload, close_passes_through_exactly)
{
    for (int pre = 0; pre <= 1; pre++) {
        for (int off = 0; off <= 1; off++) {
            const char *env[] = {off ? "OTEL_SDK_DISABLED=true" : "X_UNUSED=1", NULL};
            cr_assert_eq(run("close", env, pre), 0);
            char *text = tu_slurp(out);
            char want[128];
            snprintf(want, sizeof want, "close-bad -1 %d\nclose-ok 0 0\nclose-again -1 %d\n", EBADF,
                     EBADF);
            cr_assert_str_eq(text, want, "preload=%d off=%d", pre, off);
            free(text);
        }
    }
}

Test(preload, attribute_and_event_limits)
{
    const char *env[] = {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=3", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=10",
                         "OTEL_SPAN_EVENT_COUNT_LIMIT=4", NULL};
    cr_assert_eq(run("limits", env, 1), 0);
    char *text = tu_slurp(out);
    char want[64];
    for (int i = 0; i < 10; i++) {
        snprintf(want, sizeof want, "set k%d %d\n", i, i < 3 ? 0 : DYNOBS_ENOSPC);
        cr_assert_not_null(strstr(text, want), "missing '%s' in %s", want, text);
    }
    cr_assert_not_null(strstr(text, "overwrite 0\n"));
    snprintf(want, sizeof want, "long %d\n", DYNOBS_ETRUNC);
    cr_assert_not_null(strstr(text, want));
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[4];
    cr_assert_eq(tu_read_spans(paths[0], sp, 4), 2);
    const struct tu_span *l = tu_find(sp, 2, "limited");
    cr_assert_not_null(l);
    cr_assert_eq(l->nattrs, 3);
    cr_assert_eq(l->dropped_attrs, 7);
    cr_assert_str_eq(tu_attr(l, "k1")->s, "replaced");
    cr_assert_eq(tu_attr(l, "k2")->i, 2);
    cr_assert(l->rec_flags & DYNOBS_RECF_TRUNCATED);
    const struct tu_span *g = tu_find(sp, 2, "long");
    cr_assert_not_null(g);
    cr_assert_eq(tu_attr(g, "v")->slen, 10);
    cr_assert(tu_attr(g, "v")->truncated);
    /* "abcdefgh" + 2-byte 'é' = 10 bytes: kept whole; the rest cut. */
    cr_assert_str_eq(tu_attr(g, "u")->s, "abcdefgh\xc3\xa9");
    cr_assert_eq(g->nevents, 4);
    cr_assert_eq(g->dropped_events, 2);
    free(text);
}

Test(preload, fork_child_gets_own_segment_and_keeps_context)
{
    cr_assert_eq(run("fork", NULL, 1), 0);
    char *text = tu_slurp(out);
    char ptp[64], ctp[64], croot[64], proot[64];
    cr_assert_not_null(line(text, "parent-span", ptp, sizeof ptp));
    cr_assert_not_null(line(text, "child-span", ctp, sizeof ctp));
    cr_assert_not_null(line(text, "child-root", croot, sizeof croot));
    cr_assert_not_null(line(text, "parent-root", proot, sizeof proot));
    /* Same trace across the fork, and the child's span is a child of the
     * parent's span. */
    cr_assert_eq(strncmp(ptp, ctp, 35), 0, "%s vs %s", ptp, ctp);
    /* New roots after fork: different ids in parent and child. */
    cr_assert_neq(strncmp(croot + 3, proot + 3, 32), 0);
    char paths[4][1024];
    cr_assert_eq(segments(paths, 4), 2);
    static struct tu_span a[8], b[8];
    int na = tu_read_spans(paths[0], a, 8), nb = tu_read_spans(paths[1], b, 8);
    cr_assert_eq(na + nb, 5);
    const struct tu_span *child = tu_find(a, na, "in-child") ? tu_find(a, na, "in-child")
                                                            : tu_find(b, nb, "in-child");
    const struct tu_span *parent = tu_find(a, na, "before-fork");
    if (!parent || !tu_find(a, na, "parent-root"))
        parent = tu_find(b, nb, "parent-root") ? tu_find(b, nb, "before-fork") : parent;
    cr_assert_not_null(child);
    cr_assert_not_null(parent);
    cr_assert_str_eq(child->parent_hex, parent->span_hex);
    cr_assert_str_eq(child->trace_hex, parent->trace_hex);
    free(text);
}

Test(preload, attach_remote_context)
{
    cr_assert_eq(run("attach", NULL, 1), 0);
    char *text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "attach 0\n"), "%s", text);
    cr_assert_not_null(strstr(text, "tracestate congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\n"), "%s",
                       text);
    char want[64];
    snprintf(want, sizeof want, "after-detach %d\n", DYNOBS_ENOENT);
    cr_assert_not_null(strstr(text, want), "%s", text);
    snprintf(want, sizeof want, "bad-attach %d\n", DYNOBS_EINVAL);
    cr_assert_not_null(strstr(text, want), "%s", text);
    /* Unsampled remote parent: children keep the trace, flag 00, and are
     * not recorded; a bad tracestate was dropped whole. */
    cr_assert_not_null(strstr(text, "unsampled 00-0af7651916cd43dd8448eb211c80319c-"), "%s", text);
    char v[64];
    cr_assert_not_null(line(text, "unsampled2", v, sizeof v));
    cr_assert_str_eq(v + 53, "00");
    cr_assert_not_null(strstr(text, "tracestate2 []\n"), "%s", text);
    cr_assert_not_null(strstr(text, "attach3 0\ntracestate3 [foo@=1,bar=2,z@z=4]\n"), "%s", text);
    cr_assert_not_null(strstr(text, "attach4 0\ntracestate4 512 0\n"), "%s", text);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[8];
    cr_assert_eq(tu_read_spans(paths[0], sp, 8), 1);
    cr_assert_str_eq(sp[0].name, "remote-child");
    cr_assert_str_eq(sp[0].trace_hex, "0af7651916cd43dd8448eb211c80319c");
    cr_assert_str_eq(sp[0].parent_hex, "b7ad6b7169203331");
    cr_assert_eq(sp[0].trace_flags, 0x01); /* the remote had no random flag */
    cr_assert(sp[0].span_flags & 0x1);     /* parent is remote */
    cr_assert_str_eq(sp[0].tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    free(text);
}

Test(preload, metrics_land_in_the_segment)
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

Test(preload, service_name_and_resource_from_env)
{
    const char *env[] = {"OTEL_SERVICE_NAME=checkout",
                         "OTEL_RESOURCE_ATTRIBUTES=service.name=ignored,deployment.environment=prod,bad",
                         NULL};
    cr_assert_eq(run("metrics", env, 1), 0);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], 0), 0);
    cr_assert_str_eq(r->service_name, "checkout");
    size_t off = 0;
    struct dynobs_item it;
    int env_seen = 0, exe_seen = 0;
    while (dynobs__reader_resource_next(r, &off, &it) == 1) {
        if (it.key_len == 22 && !memcmp(it.key, "deployment.environment", 22))
            env_seen = it.str_len == 4 && !memcmp(it.str, "prod", 4);
        if (it.key_len == 23 && !memcmp(it.key, "process.executable.name", 23))
            exe_seen = 1;
        cr_assert(!(it.key_len == 12 && !memcmp(it.key, "service.name", 12)));
    }
    cr_assert(env_seen && exe_seen);
    dynobs__reader_close(r);
    free(r);
}

Test(preload, sampler_from_env)
{
    const char *env[] = {"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.25",
                         "SCENARIO_N=4000", NULL};
    cr_assert_eq(run("ratio", env, 1), 0);
    char *text = tu_slurp(out);
    int k = -1, n = -1;
    cr_assert_eq(sscanf(text, "sampled %d of %d", &k, &n), 2, "%s", text);
    /* 4000 draws at p=0.25: mean 1000, sd 27.4; 5 sd is 137. */
    cr_assert(k > 1000 - 137 && k < 1000 + 137, "sampled %d", k);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[1];
    /* Only sampled spans are written. */
    cr_assert_eq(tu_read_spans(paths[0], sp, 1), k);
    free(text);
    const char *off[] = {"OTEL_TRACES_SAMPLER=always_off", "SCENARIO_N=100", NULL};
    cr_assert_eq(run("ratio", off, 1), 0);
    text = tu_slurp(out);
    cr_assert_str_eq(text, "sampled 0 of 100\n");
    free(text);
}

Test(preload, spans_ended_on_another_thread_free_their_slots)
{
    cr_assert_eq(run("crossthread", NULL, 1), 0);
    char *text = tu_slurp(out);
    /* 32 open spans per thread at most; the rest are refused and counted.
     * Every round gets all 32 back after another thread ended them. */
    cr_assert_str_eq(text, "round 0 started 32 refused 8\nround 1 started 32 refused 8\n"
                           "round 2 started 32 refused 8\n");
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[100];
    cr_assert_eq(tu_read_spans(paths[0], sp, 100), 96);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], 0), 0);
    cr_assert_eq(dynobs__reader_counter(r, DYNOBS_CTR_SPANS_REFUSED), 24);
    cr_assert_eq(dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_WRITTEN), 96);
    cr_assert_eq(dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_DROPPED), 0);
    dynobs__reader_close(r);
    free(r);
    free(text);
}

Test(preload, spans_from_signal_handlers_interleave_safely)
{
    /* A big ring: this test is about interleaving, not about drops. */
    const char *env[] = {"DYNOBS_RING_BYTES=64M", NULL};
    cr_assert_eq(run("signals", env, 1), 0);
    char *text = tu_slurp(out);
    int main_spans, handler, refused, current;
    cr_assert_eq(sscanf(text, "main %d handler %d refused %d current %d", &main_spans, &handler,
                        &refused, &current), 4, "%s", text);
    cr_assert_geq(handler, 50);
    cr_assert_eq(refused, 0);
    cr_assert_eq(current, DYNOBS_ENOENT); /* every span ended: nothing current */
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], DYNOBS_READER_CONSUME), 0);
    const struct dynobs_rec_hdr *h;
    int n_outer = 0, n_inner = 0, n_handler = 0;
    /* Outer span ids, to check that handler spans parent to a real span. */
    static uint8_t outer_ids[400000][8];
    while (dynobs__reader_next(r, &h) == 1) {
        struct dynobs_span_view v;
        cr_assert_eq(dynobs__span_decode(h, h->len, &v), 0);
        struct tu_span s;
        tu_span_from_view(&s, &v);
        if (!strcmp(s.name, "main-outer")) {
            cr_assert_str_eq(s.parent_hex, "0000000000000000");
            if (n_outer < 400000)
                memcpy(outer_ids[n_outer], s.span_id, 8);
            n_outer++;
        } else if (!strcmp(s.name, "main-inner")) {
            cr_assert_eq(s.nattrs, 1);
            cr_assert_str_eq(tu_attr(&s, "k")->s, "v");
            n_inner++;
        } else if (!strcmp(s.name, "in-handler")) {
            cr_assert_eq(s.nattrs, 1);
            cr_assert_eq(tu_attr(&s, "signal")->i, 14);
            n_handler++;
        } else {
            cr_assert_fail("unexpected span '%s'", s.name);
        }
    }
    cr_assert_eq(n_outer + n_inner, main_spans);
    cr_assert_eq(n_outer, n_inner);
    /* A handler that interrupts its own thread while that thread creates
     * the segment cannot wait for it: its span is dropped and counted.
     * Nothing else may be lost. */
    uint64_t dropped = dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_DROPPED);
    cr_assert_eq((uint64_t)n_handler + dropped, (uint64_t)handler, "%d read, %lu dropped, %d made",
                 n_handler, (unsigned long)dropped, handler);
    cr_assert_eq(dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_WRITTEN),
                 (uint64_t)(main_spans + n_handler));
    cr_assert_eq(r->corrupt, 0);
    dynobs__reader_close(r);
    free(r);
    free(text);
}

Test(preload, library_can_be_dlopened)
{
    /* Loaded at run time (no LD_PRELOAD), as ctypes does: its small
     * initial-exec TLS must fit, and it must record. */
    char *argv[] = {SCENARIO_BIN, "dlopen", DYNOBS_LIB, NULL};
    const char *env[] = {shm_env, NULL};
    if (getenv("DYNOBS_TEST_PRELOAD_FIRST"))
        cr_skip_test("an instrumented library cannot be dlopened into an ASan process this way");
    cr_assert_eq(tu_run(argv, env, out), 0);
    char *text = tu_slurp(out);
    cr_assert_str_eq(text, "enabled 1 span yes end 0\n");
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[2];
    cr_assert_eq(tu_read_spans(paths[0], sp, 2), 1);
    cr_assert_str_eq(sp[0].name, "from-dlopen");
    free(text);
}

/* Explicit parents (dynobs_span_start_ex), dynobs_set_service_name, log
 * records with attributes and an explicit span, and the capture of stderr
 * lines and syslog calls (DYNOBS_CAPTURE_LOGS=1). */
Test(preload, explicit_parents_log_records_and_captured_logs)
{
    const char *env[] = {"DYNOBS_CAPTURE_LOGS=1", NULL};
    cr_assert_eq(run("capture", env, 1), 0);
    char *text = tu_slurp(out);
    cr_assert(strstr(text, "name 0\n") && strstr(text, "late -16\n"), "%s", text);
    cr_assert(strstr(text, "bad null\n") && strstr(text, "wrote 1529\n"), "%s", text);
    cr_assert(strstr(text, "rec 0\n") && strstr(text, "rec2 0\n") && strstr(text, "rec3 -22\n"),
              "%s", text);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], DYNOBS_READER_CONSUME), 0);
    cr_assert_str_eq(r->service_name, "renamed");
    static struct tu_span sp[8];
    int nsp = 0;
    char bodies[16][64];
    int sev[16] = {0}, attrs_of[16] = {0}, correlated[16] = {0}, nlog = 0;
    size_t biglen = 0;
    const struct dynobs_rec_hdr *h;
    while (dynobs__reader_next(r, &h) == 1) {
        struct dynobs_span_view v;
        struct dynobs_log_view lv;
        if (h->type == DYNOBS_REC_SPAN && dynobs__span_decode(h, h->len, &v) == 0 && nsp < 8) {
            tu_span_from_view(&sp[nsp++], &v);
        } else if (h->type == DYNOBS_REC_LOG && dynobs__log_decode(h, h->len, &lv) == 0 &&
                   nlog < 16) {
            if (lv.f.body_len > 1000)
                biglen += lv.f.body_len;
            snprintf(bodies[nlog], sizeof bodies[nlog], "%.*s", (int)(lv.f.body_len < 60 ? lv.f.body_len : 60), lv.body);
            sev[nlog] = lv.f.severity;
            attrs_of[nlog] = lv.f.attr_count;
            correlated[nlog] = lv.f.trace_id[0] || lv.f.trace_id[1];
            nlog++;
        }
    }
    dynobs__reader_close(r);
    free(r);
    const struct tu_span *outer = tu_find(sp, nsp, "outer"), *side = tu_find(sp, nsp, "side"),
                         *next = tu_find(sp, nsp, "next"), *root = tu_find(sp, nsp, "root"),
                         *remote = tu_find(sp, nsp, "remote");
    cr_assert(outer && side && next && root && remote);
    cr_assert_str_eq(side->parent_hex, outer->span_hex);
    cr_assert_not(side->span_flags & DYNOBS_SPANF_PARENT_REMOTE);
    cr_assert_str_eq(next->parent_hex, outer->span_hex, "NO_CONTEXT left the context alone");
    cr_assert_not(root->span_flags & DYNOBS_SPANF_HAS_PARENT);
    cr_assert_str_neq(root->trace_hex, outer->trace_hex);
    cr_assert_str_eq(remote->trace_hex, "0af7651916cd43dd8448eb211c80319c");
    cr_assert_str_eq(remote->parent_hex, "b7ad6b7169203331");
    cr_assert(remote->span_flags & DYNOBS_SPANF_PARENT_REMOTE);
    /* stderr: three lines, the long one in pieces (1024 + the rest), the
     * vectored one; syslog with %m; the two records. */
    cr_assert_str_eq(bodies[0], "first line");
    cr_assert_str_eq(bodies[1], "second line");
    cr_assert_str_eq(bodies[2], "third");
    cr_assert_eq(biglen, 1024, "the first piece of the long line");
    cr_assert_eq(sev[0], 0);
    cr_assert_eq(attrs_of[0], 1); /* log.iostream */
    int i = 3;
    while (i < nlog && strcmp(bodies[i], "vectored"))
        i++;
    cr_assert_lt(i, nlog, "the writev line");
    cr_assert_str_eq(bodies[i + 1], "open failed: No such file or directory (7)");
    cr_assert_eq(sev[i + 1], 17);
    cr_assert_str_eq(bodies[i + 2], "with attrs");
    cr_assert_eq(attrs_of[i + 2], 2);
    cr_assert_str_eq(bodies[i + 3], "explicit span");
    cr_assert(correlated[0] && correlated[i + 1] && correlated[i + 3]);
    free(text);
}

/* Reads the crash report of a segment: the FATAL log record's body and
 * stack trace, and the span "doomed" (its status and first event). */
struct crash_seen {
    char body[128], trace[4096], span_status_msg[600], event[256];
    int fatal, span_status;
};

static void read_crash(struct crash_seen *c) /* zero when there is no segment */
{
    memset(c, 0, sizeof *c);
    char paths[2][1024];
    int nseg = segments(paths, 2);
    cr_assert_leq(nseg, 1, "segments in %s: %d", seg_dir, nseg);
    if (nseg == 0)
        return; /* nothing was written at all */
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], DYNOBS_READER_CONSUME), 0);
    const struct dynobs_rec_hdr *h;
    while (dynobs__reader_next(r, &h) == 1) {
        struct dynobs_log_view lv;
        struct dynobs_span_view v;
        if (h->type == DYNOBS_REC_LOG && dynobs__log_decode(h, h->len, &lv) == 0 &&
            lv.f.severity == DYNOBS_SEVERITY_FATAL) {
            c->fatal++;
            snprintf(c->body, sizeof c->body, "%.*s", (int)lv.f.body_len, lv.body);
            size_t off = 0;
            struct dynobs_item it;
            while (dynobs__item_next(lv.items, lv.f.items_len, &off, &it) == 1)
                if (it.key_len == 20 && !memcmp(it.key, "exception.stacktrace", 20))
                    snprintf(c->trace, sizeof c->trace, "%.*s", (int)it.str_len, it.str);
        } else if (h->type == DYNOBS_REC_SPAN && dynobs__span_decode(h, h->len, &v) == 0 &&
                   v.f.name_len == 6 && !memcmp(v.name, "doomed", 6)) {
            struct tu_span s;
            tu_span_from_view(&s, &v);
            c->span_status = s.status;
            snprintf(c->span_status_msg, sizeof c->span_status_msg, "%s", s.status_msg);
            if (s.nevents)
                snprintf(c->event, sizeof c->event, "%s", s.events[0].name);
        }
    }
    dynobs__reader_close(r);
    free(r);
}

Test(preload, crash_reports_and_the_process_dies_as_it_would)
{
    if (getenv("DYNOBS_TEST_PRELOAD_FIRST"))
        cr_skip_test("AddressSanitizer handles SIGSEGV itself in this build");
    static const struct {
        const char *how;
        int status;
        const char *sig;
    } cases[] = {{"segv", 128 + SIGSEGV, "SIGSEGV"},
                 {"abort", 128 + SIGABRT, "SIGABRT"},
                 {"fpe", 128 + SIGFPE, "SIGFPE"},
                 {"reraise", 128 + SIGSEGV, "SIGSEGV"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {SCENARIO_BIN, "crash", (char *)cases[i].how, NULL};
        const char *env[] = {NULL};
        cr_assert_eq(run_argv(argv, env), cases[i].status, "%s", cases[i].how);
        struct crash_seen c;
        read_crash(&c);
        cr_assert_eq(c.fatal, 1, "%s: one report", cases[i].how);
        char want[64];
        snprintf(want, sizeof want, "process crashed: %s", cases[i].sig);
        cr_assert(!strncmp(c.body, want, strlen(want)), "%s: %s", cases[i].how, c.body);
        cr_assert(strstr(c.trace, "#0 0x"), "%s: backtrace: %s", cases[i].how, c.trace);
        if (!strcmp(cases[i].how, "segv"))
            cr_assert(strstr(c.trace, "crash_here") && strstr(c.trace, "main"), "%s", c.trace);
        cr_assert_eq(c.span_status, DYNOBS_STATUS_ERROR, "%s", cases[i].how);
        cr_assert_str_eq(c.event, "exception");
        char *text = tu_slurp(out);
        if (!strcmp(cases[i].how, "reraise"))
            cr_assert(strstr(text, "app handler re-raises"), "%s", text);
        free(text);
        tu_rmtree(dir);
        mkdir(dir, 0700);
    }
    /* The application's own handler, installed after dynobs, runs (and the
     * process exits as it says); it did not die, so no crash report. */
    char *argv[] = {SCENARIO_BIN, "crash", "handler", NULL};
    const char *env[] = {NULL};
    cr_assert_eq(run_argv(argv, env), 42);
    char *text = tu_slurp(out);
    cr_assert(strstr(text, "app handler ran"), "%s", text);
    free(text);
    struct crash_seen c;
    read_crash(&c);
    cr_assert_eq(c.fatal, 0);
    /* A handler installed before dynobs was loaded (dlopen, no preload)
     * keeps working: dynobs's handler passes the fault on to it. */
    char *argv2[] = {SCENARIO_BIN, "crash-before", DYNOBS_LIB, NULL};
    const char *env2[] = {shm_env, NULL};
    cr_assert_eq(tu_run(argv2, env2, out), 42);
    text = tu_slurp(out);
    cr_assert(strstr(text, "dynobs handler installed: yes") && strstr(text, "app handler ran"),
              "%s", text);
    free(text);
}
