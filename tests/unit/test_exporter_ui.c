/* The live view's trace pool (exporter/ui_store.c): when it is full, a
 * new trace takes the place of the oldest one that is not among the 16
 * slowest, so the slowest stay however old they are, and the newest come
 * in. The pool holds 192 traces and takes at most 100 new ones a second
 * of the clock each call is given. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "layout.h"
#include "ui_store.h"

#define SEC 1000000000ull
#define POOL 192
#define SLOWEST 16

struct rec {
    struct dynobs_rec_hdr h;
    struct dynobs_span_rec r;
    uint8_t body[16];
};

/* A one-span trace numbered n (its id's bytes 8 and 9, where the view
 * keys its index), lasting ms milliseconds. */
static void put(unsigned n, uint64_t ms, uint64_t now)
{
    struct rec x;
    memset(&x, 0, sizeof x);
    x.h.type = DYNOBS_REC_SPAN;
    x.h.len = (uint32_t)sizeof x;
    x.r.trace_id[0] = 1;
    x.r.trace_id[8] = (uint8_t)(n & 0xff);
    x.r.trace_id[9] = (uint8_t)(n >> 8);
    x.r.span_id[0] = 1;
    x.r.kind = DYNOBS_SPAN_KIND_SERVER;
    x.r.start_ns = now;
    x.r.end_ns = now + ms * 1000000ull;
    x.r.name_len = 1;
    x.r.body_len = 1;
    x.body[0] = 'x';
    dx_ui_span("svc", &x.h, now);
}

struct seen {
    int n;
    unsigned ids[POOL];
};

static void collect(void *u, const struct dx_ui_trace *t)
{
    struct seen *s = u;
    s->ids[s->n++] = t->id[8] | (unsigned)t->id[9] << 8;
}

static int holds(const struct seen *s, unsigned id)
{
    for (int i = 0; i < s->n; i++)
        if (s->ids[i] == id)
            return 1;
    return 0;
}

Test(ui_store, full_pool_keeps_the_slowest_and_takes_the_newest)
{
    dx_ui_clear();
    /* 20 slow traces first (the 16 slowest of them 1 s and up, the other
     * 4 just below), then 400 quick ones: 50 new traces a second. */
    uint64_t now = 1000 * SEC;
    unsigned n = 0;
    for (; n < 20; n++, now += SEC / 50)
        put(n, n < SLOWEST ? 1000 + n : 500, now);
    for (; n < 420; n++, now += SEC / 50)
        put(n, 1, now);

    struct seen all = {0};
    dx_ui_each(0, POOL, collect, &all);
    cr_assert_eq(all.n, POOL, "the pool is full: %d traces", all.n);
    for (unsigned id = 0; id < SLOWEST; id++)
        cr_assert(holds(&all, id), "slow trace %u kept", id);
    for (unsigned id = SLOWEST; id < 20; id++)
        cr_assert(!holds(&all, id), "trace %u, not among the 16 slowest, made room", id);
    /* the rest: the newest 176 quick ones */
    for (unsigned id = 420 - (POOL - SLOWEST); id < 420; id++)
        cr_assert(holds(&all, id), "new trace %u taken", id);
    cr_assert(!holds(&all, 420 - (POOL - SLOWEST) - 1), "the oldest quick trace made room");

    struct seen slow = {0};
    dx_ui_each(1, SLOWEST, collect, &slow);
    cr_assert_eq(slow.n, SLOWEST);
    for (int i = 0; i < slow.n; i++)
        cr_assert_eq(slow.ids[i], SLOWEST - 1 - (unsigned)i, "slowest first: %u at %d",
                     slow.ids[i], i);
}

Test(ui_store, ties_at_the_cut_stay_with_the_slowest)
{
    dx_ui_clear();
    /* 30 traces as slow as each other, then quick ones: the 30 tie for the
     * 16 places, so none of them is made room for; the quick ones take
     * each other's places. */
    uint64_t now = 5000 * SEC;
    unsigned n = 0;
    for (; n < 30; n++, now += SEC / 50)
        put(n, 800, now);
    for (; n < 400; n++, now += SEC / 50)
        put(n, 1, now);
    struct seen all = {0};
    dx_ui_each(0, POOL, collect, &all);
    cr_assert_eq(all.n, POOL);
    for (unsigned id = 0; id < 30; id++)
        cr_assert(holds(&all, id), "tied slow trace %u kept", id);
    for (unsigned id = 400 - (POOL - 30); id < 400; id++)
        cr_assert(holds(&all, id), "new trace %u taken", id);
}
