/*
 * Windowed statistics of gauges and histograms: count, sum, min and max
 * per time slice of the monotonic clock, kept next to the metric table
 * (layout.h, struct dynobs_metric_window), so that anyone who maps the
 * segment can tell the average, minimum and maximum of the last seconds.
 *
 * Min and max are exact, not bucket estimates: every value recorded is
 * compared with its slice's min and max. A window of W ms is made of the
 * slice being written and the ceil(W / slice) slices before it, so it
 * covers at least W and at most W + one slice; a window longer than
 * (slices - 1) slices is refused, since its oldest slice is gone.
 */
#ifndef DYNOBS_COMMON_METRIC_WINDOW_H
#define DYNOBS_COMMON_METRIC_WINDOW_H

#include <math.h>
#include <stdint.h>
#include <time.h>

#include "dynobs/dynobs.h"
#include "layout.h"
#include "util.h"
#include "vdso.h"

struct dynobs_reader;

struct dynobs_window_stats {
    uint64_t count;
    double sum, avg, min, max; /* avg/min/max NaN when count == 0 */
    uint64_t window_ms;        /* what was covered (0: since start) */
};

/* Windowed statistics of the series in metric slot i over the last
 * window_ms (0: since the series started), at monotonic time now_ns.
 * 0, -ENOENT (empty slot, or a kind without windows: counters), -EINVAL
 * (window longer than kept), -EBADMSG. */
int dynobs__reader_window(const struct dynobs_reader *r, uint32_t i, uint64_t now_ns,
                          uint64_t window_ms, struct dynobs_window_stats *out);

/* The same for a slot and its window in any mapping (the reader's, or
 * the producer's own for dynobs_metric_stats). slice_ms and slices are
 * the segment header's: a window that disagrees is -EBADMSG. */
int dynobs__window_stats(const struct dynobs_metric_slot *s, const struct dynobs_metric_window *w,
                         uint32_t slice_ms, uint32_t slices, uint64_t now_ns, uint64_t window_ms,
                         struct dynobs_window_stats *out);

/* Producer side. The epoch of the slice of ms milliseconds an update
 * goes into: 1 + the slices the coarse monotonic clock has counted (the
 * tick's time, one vDSO read without the TSC arithmetic: exact enough for
 * slices of 10 ms and more). Slices of a second, the default, are the
 * clock's seconds: no division, whose latency comes before the slice's
 * address is known. */
static inline uint64_t dynobs__window_slice_of(uint32_t ms)
{
    struct timespec ts;
    dynobs__vdso_clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    if (DYNOBS_LIKELY(ms == 1000u))
        return (uint64_t)ts.tv_sec + 1;
    return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) /
               ((uint64_t)ms * 1000000u) + 1;
}

/* Makes slice sl carry epoch e (resetting it) when it carries an older
 * one: 1 when the update may go in, 0 when it cannot (the slice moved on
 * past this update's clock, or a busy slice stayed busy). Out of line:
 * it runs once per slice and series. */
int dynobs__window_turn(struct dynobs_window_slice *sl, uint64_t cur, uint64_t e);

static inline void dynobs__window_min(uint64_t *p, double v)
{
    uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < dynobs__u2d(old) &&
           !__atomic_compare_exchange_n(p, &old, dynobs__d2u(v), 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
}

static inline void dynobs__window_max(uint64_t *p, double v)
{
    uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v > dynobs__u2d(old) &&
           !__atomic_compare_exchange_n(p, &old, dynobs__d2u(v), 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
}

static inline void dynobs__window_sum(uint64_t *p, double v)
{
    uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(p, &old, dynobs__d2u(dynobs__u2d(old) + v), 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* One value into the current slice of w (and, for gauges, into the
 * totals since start). Lock-free: atomics on the slice, and a reset by
 * compare-and-swap when the slice is new. */
static inline void dynobs__window_add(struct dynobs_metric_window *w, int gauge, double v)
{
    uint32_t ms = w->slice_ms;
    if (DYNOBS_UNLIKELY(!ms))
        return;
    /* The totals first: a value the slices drop (below) is still one
     * since start. */
    if (gauge) {
        __atomic_fetch_add(&w->count, 1, __ATOMIC_RELAXED);
        dynobs__window_sum(&w->sum, v);
        dynobs__window_min(&w->min, v);
        dynobs__window_max(&w->max, v);
    }
    uint64_t e = dynobs__window_slice_of(ms);
    struct dynobs_window_slice *sl = &w->slice[e & (w->slices - 1)]; /* a power of two */
    uint64_t cur = __atomic_load_n(&sl->epoch, __ATOMIC_ACQUIRE);
    if (DYNOBS_UNLIKELY(cur != e) && !dynobs__window_turn(sl, cur, e)) {
        __atomic_fetch_add(&w->dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_fetch_add(&sl->count, 1, __ATOMIC_RELAXED);
    dynobs__window_sum(&sl->sum, v);
    dynobs__window_min(&sl->min, v);
    dynobs__window_max(&sl->max, v);
}

/* The window of a slot, from the producer's pointer in it (NULL: none). */
static inline struct dynobs_metric_window *dynobs__slot_window(struct dynobs_metric_slot *s)
{
    int64_t d = s->window_delta;
    return d ? (struct dynobs_metric_window *)(void *)((uint8_t *)s + d) : NULL;
}

/* Prepares the window of a slot being registered (before it is READY). */
void dynobs__window_init(struct dynobs_metric_slot *s, struct dynobs_metric_window *w,
                         uint32_t slice_ms, uint32_t slices);

#endif
