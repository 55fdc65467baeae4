/* Spans made through the C API in real processes: nesting and
 * attributes across two threads, the limits on attributes and events,
 * spans ended on another thread than the one that started them, and
 * spans started inside signal handlers.
 * Shared set-up: preload_harness.h. */
#include "preload_harness.h"

PRELOAD_SUITE(preload_spans);

Test(preload_spans, nested_spans_from_two_threads)
{
    /* The two threads' first spans race to make the segment, and the one
     * that waits gives up after 20 ms (init.c, wait_for_creation): on a
     * loaded machine (sanitizers, a parallel build) its span may be
     * dropped, counted. Such a run is checked for the count and run
     * again; one of five must give all six spans. */
    char paths[4][1024];
    static struct tu_span sp[16];
    int n = 0;
    for (int attempt = 0; attempt < 5 && n != 6; attempt++) {
        cr_assert_eq(run("nested", NULL, 1), 0);
        cr_assert_eq(segments(paths, 4), 1);
        n = tu_read_spans(paths[0], sp, 16);
        if (n == 6)
            break;
        struct dynobs_reader *r = malloc(sizeof *r);
        cr_assert_eq(dynobs__reader_open(r, paths[0], 0), 0);
        uint64_t written = dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_WRITTEN);
        uint64_t dropped = dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_DROPPED);
        dynobs__reader_close(r);
        free(r);
        cr_assert(n >= 0 && (uint64_t)n == written && dropped > 0 && written + dropped == 6,
                  "read %d spans: written %llu, dropped %llu", n, (unsigned long long)written,
                  (unsigned long long)dropped);
        cr_assert_eq(unlink(paths[0]), 0);
    }
    cr_assert_eq(n, 6, "read %d spans in each of five runs", n);
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

Test(preload_spans, attribute_and_event_limits)
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

Test(preload_spans, setting_a_key_again_replaces_it)
{
    cr_assert_eq(run("overwrites", NULL, 1), 0);
    char *text = tu_slurp(out);
    cr_assert_str_eq(text, "overwrites 0\n");
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[2];
    cr_assert_eq(tu_read_spans(paths[0], sp, 2), 1);
    cr_assert_eq(sp[0].nattrs, 20);
    cr_assert_eq(sp[0].nevents, 1);
    for (int i = 0; i < 20; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, i % 2 ? "key.%d" : "attribute.number.%d", i);
        snprintf(val, sizeof val, "new-%d", i);
        const struct tu_attr *a = tu_attr(&sp[0], key);
        cr_assert_not_null(a, "%s missing", key);
        cr_assert_eq(a->type, DYNOBS_ATTR_STRING);
        cr_assert_str_eq(a->s, val);
    }
    free(text);
}

Test(preload_spans, spans_ended_on_another_thread_free_their_slots)
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

Test(preload_spans, spans_from_signal_handlers_interleave_safely)
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

/* Two threads whose first spans end together race to make the process's
 * segment: the one that waits for the other's creation must then write
 * into it, and a record that cannot be written is counted, never lost
 * without a count (a wait that read the state twice once took a creation
 * that ended between the reads for a failure, and its drop, counted
 * after the creation had moved the earlier ones, was seen nowhere). */
Test(preload_spans, first_records_of_racing_threads_are_written_or_counted)
{
    enum { RUNS = 15 };
    for (int i = 0; i < RUNS; i++)
        cr_assert_eq(run("nested", NULL, 1), 0);
    char paths[RUNS][1024];
    cr_assert_eq(segments(paths, RUNS), RUNS);
    struct dynobs_reader *r = malloc(sizeof *r);
    for (int i = 0; i < RUNS; i++) {
        cr_assert_eq(dynobs__reader_open(r, paths[i], 0), 0);
        uint64_t written = dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_WRITTEN);
        uint64_t dropped = dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_DROPPED);
        cr_assert_eq(written + dropped, 6, "%s: written %llu, dropped %llu", paths[i],
                     (unsigned long long)written, (unsigned long long)dropped);
        dynobs__reader_close(r);
    }
    free(r);
}
