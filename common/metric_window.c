#include "metric_window.h"
#include "reader.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* How long a writer waits for another writer's reset of a slice: the
 * reset is four stores, so only a writer preempted in the middle of one
 * makes this run out, and then the update is left out of the window
 * (counted in the window's `dropped`), never waited for. */
#define TURN_SPINS 256

static void reset(struct dynobs_window_slice *sl)
{
    __atomic_store_n(&sl->count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&sl->sum, dynobs__d2u(0.0), __ATOMIC_RELAXED);
    __atomic_store_n(&sl->min, dynobs__d2u(INFINITY), __ATOMIC_RELAXED);
    __atomic_store_n(&sl->max, dynobs__d2u(-INFINITY), __ATOMIC_RELAXED);
}

int dynobs__window_turn(struct dynobs_window_slice *sl, uint64_t cur, uint64_t e)
{
    for (int i = 0; i < TURN_SPINS; i++) {
        if (cur == e)
            return 1;
        uint64_t old = cur & ~DYNOBS_WINDOW_BUSY;
        if (old < e) {
            /* A slice of an earlier lap (or one whose reset was left
             * unfinished by a writer that stopped): ours to reset. */
            if (__atomic_compare_exchange_n(&sl->epoch, &cur, e | DYNOBS_WINDOW_BUSY, 0,
                                            __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
                reset(sl);
                uint64_t busy = e | DYNOBS_WINDOW_BUSY;
                /* A CAS, not a store: a writer of a later lap may have
                 * taken the slice over while this one was preempted. */
                __atomic_compare_exchange_n(&sl->epoch, &busy, e, 0, __ATOMIC_RELEASE,
                                            __ATOMIC_RELAXED);
                cur = __atomic_load_n(&sl->epoch, __ATOMIC_ACQUIRE);
            }
            continue;
        }
        if (cur != (e | DYNOBS_WINDOW_BUSY))
            return 0; /* the slice is already in a later lap than our clock */
        dynobs__cpu_relax();
        cur = __atomic_load_n(&sl->epoch, __ATOMIC_ACQUIRE);
    }
    return 0;
}

void dynobs__window_init(struct dynobs_metric_slot *s, struct dynobs_metric_window *w,
                         uint32_t slice_ms, uint32_t slices)
{
    if (!w || s->kind == DYNOBS_METRIC_COUNTER || s->kind == DYNOBS_METRIC_UPDOWN) {
        s->window_delta = 0;
        return;
    }
    w->slices = slices;
    w->count = 0;
    w->sum = dynobs__d2u(0.0);
    w->min = dynobs__d2u(INFINITY);
    w->max = dynobs__d2u(-INFINITY);
    w->dropped = 0;
    /* Published with the slot (its READY store is a release). */
    w->slice_ms = slice_ms;
    s->window_delta = (int64_t)((uint8_t *)w - (uint8_t *)s);
}

static void finish(struct dynobs_window_stats *out)
{
    if (out->count) {
        out->avg = out->sum / (double)out->count;
    } else {
        out->avg = out->min = out->max = NAN;
        out->sum = 0;
    }
}

/* Adds slice sl when it holds epoch e, read between two loads of its
 * epoch so that a slice reset meanwhile is left out rather than mixed. */
static void add_slice(const struct dynobs_window_slice *sl, uint64_t e,
                      struct dynobs_window_stats *out)
{
    if (__atomic_load_n(&sl->epoch, __ATOMIC_ACQUIRE) != e)
        return;
    uint64_t n = __atomic_load_n(&sl->count, __ATOMIC_RELAXED);
    double sum = dynobs__u2d(__atomic_load_n(&sl->sum, __ATOMIC_RELAXED));
    double mn = dynobs__u2d(__atomic_load_n(&sl->min, __ATOMIC_RELAXED));
    double mx = dynobs__u2d(__atomic_load_n(&sl->max, __ATOMIC_RELAXED));
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&sl->epoch, __ATOMIC_RELAXED) != e || !n)
        return;
    out->count += n;
    out->sum += sum;
    if (mn < out->min)
        out->min = mn;
    if (mx > out->max)
        out->max = mx;
}

static int since_start(const struct dynobs_metric_slot *s, const struct dynobs_metric_window *w,
                       int kind, unsigned nbounds, struct dynobs_window_stats *out)
{
    if (kind == DYNOBS_METRIC_HISTOGRAM) {
        for (unsigned i = 0; i <= nbounds; i++)
            out->count += __atomic_load_n(&s->buckets[i], __ATOMIC_RELAXED);
        out->sum = dynobs__u2d(__atomic_load_n(&s->value, __ATOMIC_RELAXED));
        out->min = dynobs__u2d(__atomic_load_n(&s->min, __ATOMIC_RELAXED));
        out->max = dynobs__u2d(__atomic_load_n(&s->max, __ATOMIC_RELAXED));
    } else {
        out->count = __atomic_load_n(&w->count, __ATOMIC_RELAXED);
        out->sum = dynobs__u2d(__atomic_load_n(&w->sum, __ATOMIC_RELAXED));
        out->min = dynobs__u2d(__atomic_load_n(&w->min, __ATOMIC_RELAXED));
        out->max = dynobs__u2d(__atomic_load_n(&w->max, __ATOMIC_RELAXED));
    }
    out->window_ms = 0;
    finish(out);
    return 0;
}

int dynobs__window_stats(const struct dynobs_metric_slot *s, const struct dynobs_metric_window *w,
                         uint32_t slice_ms, uint32_t slices, uint64_t now_ns, uint64_t window_ms,
                         struct dynobs_window_stats *out)
{
    memset(out, 0, sizeof *out);
    out->min = INFINITY;
    out->max = -INFINITY;
    if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != DYNOBS_SLOT_READY)
        return -ENOENT;
    int kind = s->kind;
    unsigned nbounds = s->nbounds;
    if (kind == DYNOBS_METRIC_COUNTER || kind == DYNOBS_METRIC_UPDOWN)
        return -ENOENT;
    if ((kind != DYNOBS_METRIC_GAUGE && kind != DYNOBS_METRIC_HISTOGRAM) ||
        nbounds >= DYNOBS_METRIC_MAX_BUCKETS || w->slice_ms != slice_ms || w->slices != slices ||
        !slice_ms || slices < DYNOBS_WINDOW_SLICES_MIN || slices > DYNOBS_WINDOW_SLICES_MAX ||
        (slices & (slices - 1)))
        return -EBADMSG;
    if (window_ms == 0)
        return since_start(s, w, kind, nbounds, out);
    /* The slice being written and the ceil(window / slice) before it. */
    uint64_t k = (window_ms + slice_ms - 1) / slice_ms + 1;
    if (k > slices)
        return -EINVAL;
    uint64_t slice_ns = (uint64_t)slice_ms * 1000000u;
    uint64_t cur = now_ns / slice_ns; /* slice number; its epoch is cur + 1 */
    for (uint64_t j = 0; j < k && j <= cur; j++) {
        uint64_t e = cur + 1 - j;
        add_slice(&w->slice[e & (slices - 1)], e, out);
    }
    uint64_t first = cur + 1 >= k ? cur + 1 - k : 0;
    out->window_ms = (now_ns - first * slice_ns) / 1000000u;
    finish(out);
    return 0;
}

int dynobs__reader_window(const struct dynobs_reader *r, uint32_t i, uint64_t now_ns,
                          uint64_t window_ms, struct dynobs_window_stats *out)
{
    if (i >= r->hdr.metric_slots || !r->windows)
        return -EINVAL;
    struct dynobs_metric_view v;
    /* The whole slot checked as the metric readers check it. */
    int rc = dynobs__metric_read(&r->slots[i], &v);
    if (rc < 0)
        return rc;
    return dynobs__window_stats(&r->slots[i], &r->windows[i], r->hdr.window_slice_ms,
                                r->hdr.window_slices, now_ns, window_ms, out);
}
