/* Tail sampling in the exporter: unsampled spans held per trace, released
 * whole when a span of the trace is a reason to keep it (before or after
 * they came), dropped once the decision wait is over, evicted oldest
 * first when the buffer is full (traces or bytes). The clock is the
 * now_ns each call is given. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "process_resource.h"
#include "queue.h"
#include "tail.h"

#define MS 1000000ull

static struct dx_resource *res;

static void setup(void)
{
    res = calloc(1, sizeof *res);
    cr_assert_not_null(res);
    res->refs = 1;
    strcpy(res->service, "svc");
    dx_queue_configure(100000, 100000, 60000);
}

/* A span record of trace `trace` (its first byte), span `span`, with
 * record flags `flags` and `pad` bytes of body. */
struct rec {
    struct dynobs_rec_hdr h;
    struct dynobs_span_rec r;
    uint8_t body[4096];
};

static const struct dynobs_rec_hdr *rec(uint8_t trace, uint8_t span, uint16_t flags, size_t pad)
{
    static struct rec x;
    memset(&x, 0, sizeof x);
    x.h.type = DYNOBS_REC_SPAN;
    x.h.flags = flags;
    x.h.len = (uint32_t)((sizeof x.h + sizeof x.r + pad + 15) & ~(size_t)15);
    x.r.trace_id[0] = trace;
    x.r.trace_id[15] = 0x5a;
    x.r.span_id[0] = span;
    return &x.h;
}

static int put(uint8_t trace, uint8_t span, uint16_t flags, uint64_t now)
{
    return dx_tail_span(res, rec(trace, span, flags, 0), now);
}

#define U DYNOBS_RECF_UNSAMPLED
#define K DYNOBS_RECF_KEEP

/* The (trace, span) pairs queued so far, in order, as "t.s" words. */
static void queued(char *out, size_t cap)
{
    out[0] = '\0';
    if (dx_queue_queued(DX_TRACES) == 0)
        return;
    dx_queue_flush_due(1);
    int metrics, stopping;
    struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
    cr_assert_not_null(b);
    size_t n = 0;
    for (size_t off = 0; off < b->used;) {
        struct dx_entry e;
        memcpy(&e, b->data + off, sizeof e);
        const struct dynobs_span_rec *r =
            (const void *)(b->data + off + sizeof e + sizeof(struct dynobs_rec_hdr));
        if (n + 16 < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%d.%d", n ? " " : "", r->trace_id[0],
                                  r->span_id[0]);
        off += sizeof e + ((e.len + 7u) & ~7u);
    }
    dx_batch_free(b);
}

static struct dx_tail_stats stats(void)
{
    struct dx_tail_stats s;
    dx_tail_read(&s);
    return s;
}

TestSuite(exporter_tail, .init = setup);

Test(exporter_tail, unflagged_spans_pass_and_unsampled_ones_are_held)
{
    char q[256];
    cr_assert_eq(put(1, 1, 0, 0), 0);
    cr_assert_eq(put(2, 1, U, 0), 0);
    cr_assert_eq(put(2, 2, U, 0), 0);
    cr_assert_eq(put(3, 1, U, 0), 0);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "1.1");
    struct dx_tail_stats s = stats();
    cr_assert_eq(s.held_spans, 3);
    cr_assert_eq(s.held_traces, 2);
    cr_assert_gt(s.held_bytes, 3 * sizeof(struct rec) - 3 * 4096);
    cr_assert_eq(res->refs, 4, "each held span holds its resource");
    dx_tail_finish();
    s = stats();
    cr_assert_eq(s.held_spans, 0);
    cr_assert_eq(s.held_bytes, 0);
    cr_assert_eq(s.dropped, 2, "undecided at exit: dropped as decided");
    cr_assert_eq(s.spans_dropped, 3);
    cr_assert_eq(res->refs, 1);
}

Test(exporter_tail, an_error_after_held_spans_releases_them_first)
{
    char q[256];
    put(7, 1, U, 0);
    put(7, 2, U, 1 * MS);
    put(8, 1, U, 1 * MS);
    put(7, 3, U | K, 2 * MS);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "7.1 7.2 7.3");
    /* Later spans of the kept trace pass straight through. */
    put(7, 4, U, 3 * MS);
    dx_tail_tick(10000 * MS);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "7.4");
    struct dx_tail_stats s = stats();
    cr_assert_eq(s.kept, 1);
    cr_assert_eq(s.dropped, 1, "trace 8 had no reason to be kept");
    cr_assert_eq(s.held_spans, 0);
    dx_tail_finish();
    cr_assert_eq(res->refs, 1);
}

Test(exporter_tail, an_error_before_the_other_spans_keeps_them)
{
    char q[256];
    put(5, 1, U | K, 0);
    put(5, 2, U, 1 * MS);
    /* A sampled error marks its trace too: unsampled spans of it (from
     * a process with other rules) go out with it. */
    put(6, 1, K, 1 * MS);
    put(6, 2, U, 2 * MS);
    put(9, 1, K, 2 * MS);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "5.1 5.2 6.1 6.2 9.1");
    struct dx_tail_stats s = stats();
    cr_assert_eq(s.kept, 2, "trace 9 had no unsampled span: not a tail keep");
    cr_assert_eq(s.held_spans, 0);
}

Test(exporter_tail, a_trace_without_reason_is_dropped_after_the_wait)
{
    char q[256];
    dx_tail_configure(5000, 0);
    put(4, 1, U, 1000 * MS);
    put(4, 2, U, 5999 * MS); /* the wait counts from the first span */
    dx_tail_tick(5999 * MS);
    cr_assert_eq(stats().held_spans, 2);
    dx_tail_tick(6000 * MS);
    struct dx_tail_stats s = stats();
    cr_assert_eq(s.held_spans, 0);
    cr_assert_eq(s.dropped, 1);
    cr_assert_eq(s.spans_dropped, 2);
    cr_assert_eq(s.evicted, 0, "sampled out, not a loss");
    /* A late span of the dropped trace follows the decision; a late
     * reason to keep is still exported, alone. */
    put(4, 3, U, 6001 * MS);
    cr_assert_eq(stats().held_spans, 0);
    cr_assert_eq(stats().spans_dropped, 3);
    put(4, 4, U | K, 6002 * MS);
    put(4, 5, U, 6003 * MS);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "4.4 4.5");
    cr_assert_eq(stats().kept, 1);
    cr_assert_eq(res->refs, 1);
}

Test(exporter_tail, the_oldest_trace_is_evicted_when_full)
{
    char q[256];
    dx_tail_configure(5000, 3);
    for (uint8_t t = 1; t <= 4; t++) {
        put(t, 1, U, t * MS);
        put(t, 2, U, t * MS);
    }
    struct dx_tail_stats s = stats();
    cr_assert_eq(s.evicted, 1);
    cr_assert_eq(s.held_traces, 3);
    cr_assert_eq(s.spans_dropped, 2);
    /* Trace 1 is gone: its error comes out alone; trace 2 comes whole. */
    put(1, 3, U | K, 5 * MS);
    put(2, 3, U | K, 5 * MS);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "1.3 2.1 2.2 2.3");
    /* A smaller bound evicts at once. */
    dx_tail_configure(5000, 1);
    s = stats();
    cr_assert_eq(s.evicted, 2);
    cr_assert_eq(s.held_traces, 1);
    put(4, 3, U | K, 6 * MS);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "4.1 4.2 4.3");
    dx_tail_finish();
    cr_assert_eq(res->refs, 1);
}

Test(exporter_tail, the_byte_budget_holds)
{
    char q[256];
    const size_t span = 1024;
    /* Room for about five spans of 1 KiB with their overhead. */
    dx_tail_set_max_bytes(5 * (span + 200));
    for (uint8_t t = 1; t <= 8; t++)
        cr_assert_eq(dx_tail_span(res, rec(t, 1, U, span - 96), t * MS), 0);
    struct dx_tail_stats s = stats();
    cr_assert_leq(s.held_bytes, 5 * (span + 200));
    cr_assert_geq(s.held_traces, 4);
    cr_assert_eq(s.evicted, 8 - s.held_traces, "each trace pushed out is counted");
    /* The newest traces stay. */
    cr_assert_eq(dx_tail_span(res, rec(8, 2, U | K, 0), 9 * MS), 0);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "8.1 8.2");
    /* One trace that alone outgrows the budget is evicted itself. */
    uint64_t ev = stats().evicted;
    for (int i = 0; i < 8; i++)
        dx_tail_span(res, rec(20, (uint8_t)i, U, span - 96), 10 * MS);
    s = stats();
    cr_assert_leq(s.held_bytes, 5 * (span + 200));
    cr_assert_gt(s.evicted, ev);
    dx_tail_finish();
    cr_assert_eq(stats().held_bytes, 0);
    cr_assert_eq(res->refs, 1);
}

Test(exporter_tail, decisions_are_remembered_in_a_bounded_set)
{
    char q[256];
    /* 64 traces held at most: room for 256 decisions. */
    dx_tail_configure(5000, 64);
    put(200, 1, U | K, 0);
    for (int i = 0; i < 300; i++) {
        struct dynobs_rec_hdr *h = (struct dynobs_rec_hdr *)rec((uint8_t)i, 1, K, 0);
        ((struct dynobs_span_rec *)(h + 1))->trace_id[1] = (uint8_t)(1 + (i >> 8));
        dx_tail_span(res, h, 0);
    }
    /* Trace 200's decision was pushed out: its late span is held again. */
    queued(q, sizeof q);
    put(200, 2, U, 1 * MS);
    cr_assert_eq(stats().held_spans, 1);
    dx_tail_finish();
    cr_assert_eq(res->refs, 1);
}

Test(exporter_tail, decisions_outlive_a_new_bound)
{
    char q[256];
    dx_tail_configure(5000, 16); /* room for 64 decisions */
    for (int i = 0; i < 100; i++)
        put((uint8_t)i, 1, K, 0);
    queued(q, sizeof q);
    /* Larger: the decisions made stay. */
    dx_tail_configure(5000, 1000);
    put(99, 2, U, 0);
    put(36, 2, U, 0);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "99.2 36.2");
    for (int i = 100; i < 140; i++)
        put((uint8_t)i, 1, K, 0);
    queued(q, sizeof q);
    /* Smaller: the most recent ones stay (76 to 139), the older ones are
     * forgotten. */
    dx_tail_configure(5000, 16);
    put(139, 3, U, 0);
    put(76, 3, U, 0);
    put(75, 3, U, 0);
    queued(q, sizeof q);
    cr_assert_str_eq(q, "139.3 76.3");
    cr_assert_eq(stats().held_spans, 1, "trace 75's decision was forgotten");
    dx_tail_finish();
    cr_assert_eq(res->refs, 1);
}
