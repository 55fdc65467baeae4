/*
 * Metric watches: callbacks when a series' value crosses a threshold or
 * changes, run by a thread of dynobs's own that reads the process's
 * segment every 2 ms while at least one watch exists.
 *
 * Nothing here touches the update path: the thread reads the values that
 * updates store anyway. The watches live in a fixed array, mapped by the
 * first watch (lazymap.h) and never freed, so making one never allocates
 * after that and an entry never moves; an entry goes FREE -> SETUP (its maker
 * fills it) -> ACTIVE -> CANCELLED (unwatch) -> FREE, and only the watch
 * thread frees a CANCELLED entry, after its last callback returned, so
 * that an unwatch from inside a callback needs no lock and a concurrent
 * unwatch can wait for the entry to be freed. An id carries the entry's
 * generation, bumped at each free, so an old id never cancels a new
 * watch that reuses its entry.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lazymap.h"
#include "state.h"

#include "../common/metric_window.h"
#include "../common/metrics.h"

#define POLL_NS 2000000L
/* Polls without any watch before the thread ends (about half a second),
 * so that a program that watches and unwatches in turns keeps one thread. */
#define IDLE_POLLS 250
/* How long an unwatch from another thread waits for the watch thread to
 * free the entry: a few polls, unless a callback is slow. */
#define UNWATCH_WAIT_NS (5ull * 1000000000ull)
#define INDEX_BITS 8
_Static_assert(DYNOBS_WATCH_MAX == 1 << INDEX_BITS, "an id holds the index in its low bits");

enum { W_FREE, W_SETUP, W_ACTIVE, W_CANCELLED };

/* An entry's state and generation in one word, changed by compare-and-
 * swap, so that an unwatch of an old id can never cancel a new watch. */
#define WORD(gen, st) ((uint64_t)(gen) << 32 | (st))
#define STATE(word) ((uint32_t)(word))
#define GEN(word) ((uint32_t)((word) >> 32))

struct watch {
    uint64_t word; /* WORD(generation, W_*), atomic; freeing bumps the generation */
    int condition;
    double threshold;
    dynobs_watch_fn fn;
    void *user;
    size_t name_len;
    char key[DYNOBS_METRIC_KEY_BYTES]; /* name NUL labels NUL */
    /* The watch thread's own: the series once found, and the value
     * conditions are evaluated against. */
    struct dynobs_metric_slot *slot;
    uint32_t epoch; /* the segment epoch the slot was found in */
    int seen;       /* `last` holds a value */
    double last;
};

static void *watches;     /* struct watch[DYNOBS_WATCH_MAX]; NULL: never watched */
static uint32_t live;     /* entries not FREE, atomic */
static int running;       /* a watch thread runs or is starting, atomic */
static pid_t running_pid; /* whose: a forked child has no thread of its parent's */
static __thread int on_watch_thread DYNOBS_TLS;

static int make_id(uint32_t gen, unsigned i)
{
    return (int)((((gen & 0x3fffffu) + 1u) << INDEX_BITS) | i);
}

static void release(struct watch *w)
{
    uint64_t word = __atomic_load_n(&w->word, __ATOMIC_ACQUIRE);
    __atomic_store_n(&w->word, WORD(GEN(word) + 1, W_FREE), __ATOMIC_RELEASE);
    __atomic_fetch_sub(&live, 1, __ATOMIC_RELAXED);
}

/* The value a watch follows, 1 when there is one: a histogram's is the
 * average over its last window slice or two, and none when nothing was
 * recorded then. */
static int value_of(struct dynobs_metric_slot *s, uint64_t now, double *v)
{
    if (s->kind != DYNOBS_METRIC_HISTOGRAM) {
        *v = dynobs__u2d(__atomic_load_n(&s->value, __ATOMIC_RELAXED));
        return 1;
    }
    const struct dynobs_metric_window *w = dynobs__slot_window(s);
    struct dynobs_window_stats st;
    if (!w || dynobs__window_stats(s, w, w->slice_ms, w->slices, now, w->slice_ms, &st) < 0 ||
        !st.count)
        return 0;
    *v = st.avg;
    return 1;
}

static int crossed(const struct watch *w, double prev, double v)
{
    switch (w->condition) {
    case DYNOBS_WATCH_ABOVE:
        return prev <= w->threshold && v > w->threshold;
    case DYNOBS_WATCH_BELOW:
        return prev >= w->threshold && v < w->threshold;
    default:
        return v != prev && !(__builtin_fabs(v - prev) <= w->threshold);
    }
}

/* One watch at one poll: finds its series (again, in a forked child's
 * new segment), reads the value and calls back on a crossing. */
static void poll_one(struct watch *w, unsigned i, uint64_t now)
{
    uint32_t epoch = dynobs__segment_epoch();
    if (!epoch)
        return;
    if (!w->slot || w->epoch != epoch) {
        struct dynobs_segment *seg = dynobs__segment();
        struct dynobs_metric_slot *s;
        if (!seg || dynobs__metric_find(&seg->metrics, w->key, w->key + w->name_len + 1, &s) < 0)
            return;
        w->slot = s;
        w->epoch = epoch;
        w->seen = 0;
    }
    double v;
    if (!value_of(w->slot, now, &v))
        return;
    if (!w->seen) {
        w->seen = 1;
        w->last = v;
        return;
    }
    double prev = w->last;
    int fire = crossed(w, prev, v);
    if (w->condition != DYNOBS_WATCH_CHANGE || fire)
        w->last = v;
    if (!fire)
        return;
    dynobs_watch_event ev = {
        .id = make_id(GEN(__atomic_load_n(&w->word, __ATOMIC_RELAXED)), i),
        .condition = w->condition,
        .name = w->key,
        .labels = w->key + w->name_len + 1,
        .threshold = w->threshold,
        .value = v,
        .previous = prev,
        .time_ns = now,
    };
    w->fn(&ev, w->user);
}

/* The value when the watch is made is its starting point, when the
 * series exists by then: a crossing right after the call is not missed
 * for want of a poll in between. */
static void start_from_now(struct watch *w)
{
    uint32_t epoch = dynobs__segment_epoch();
    struct dynobs_segment *seg = epoch ? dynobs__segment() : NULL;
    struct dynobs_metric_slot *s;
    if (!seg || dynobs__metric_find(&seg->metrics, w->key, w->key + w->name_len + 1, &s) < 0)
        return;
    w->slot = s;
    w->epoch = epoch;
    w->seen = value_of(s, dynobs__mono_ns(), &w->last);
}

static void poll_all(void)
{
    uint64_t now = dynobs__mono_ns();
    struct watch *tab = dynobs__lazymap_peek(&watches); /* mapped before the thread started */
    for (unsigned i = 0; tab && i < DYNOBS_WATCH_MAX; i++) {
        struct watch *w = &tab[i];
        if (STATE(__atomic_load_n(&w->word, __ATOMIC_ACQUIRE)) == W_ACTIVE)
            poll_one(w, i, now);
        /* Cancelled before this poll or by its own callback. */
        if (STATE(__atomic_load_n(&w->word, __ATOMIC_ACQUIRE)) == W_CANCELLED)
            release(w);
    }
}

static void *loop(void *arg)
{
    (void)arg;
    on_watch_thread = 1;
    struct timespec pause = {0, POLL_NS};
    int idle = 0;
    for (;;) {
        poll_all();
        if (__atomic_load_n(&live, __ATOMIC_ACQUIRE) != 0) {
            idle = 0;
        } else if (++idle >= IDLE_POLLS) {
            /* Stop, unless a watch came meanwhile: its maker saw `running`
             * set and started no thread, so this one must carry on. */
            __atomic_store_n(&running, 0, __ATOMIC_SEQ_CST);
            int none = 0;
            if (__atomic_load_n(&live, __ATOMIC_SEQ_CST) == 0 ||
                !__atomic_compare_exchange_n(&running, &none, 1, 0, __ATOMIC_SEQ_CST,
                                             __ATOMIC_SEQ_CST))
                return NULL;
            idle = 0;
        }
        nanosleep(&pause, NULL);
    }
}

/* Starts the watch thread unless this process has one. */
static int ensure_thread(void)
{
    pid_t pid = getpid();
    if (__atomic_load_n(&running, __ATOMIC_SEQ_CST) &&
        __atomic_load_n(&running_pid, __ATOMIC_RELAXED) == pid)
        return 0;
    int cur = __atomic_load_n(&running, __ATOMIC_SEQ_CST);
    if (cur && __atomic_load_n(&running_pid, __ATOMIC_RELAXED) != pid)
        __atomic_compare_exchange_n(&running, &cur, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    int none = 0;
    if (!__atomic_compare_exchange_n(&running, &none, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return 0;
    __atomic_store_n(&running_pid, pid, __ATOMIC_RELAXED);
    /* The thread takes no signal of the process's: it starts with all
     * of them blocked (a new thread inherits its creator's mask). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &a, loop, NULL);
    pthread_attr_destroy(&a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        __atomic_store_n(&running, 0, __ATOMIC_SEQ_CST);
        return DYNOBS_ENOMEM;
    }
    /* Named here, so that it is named as soon as it exists (ps, top).
     * Looked up rather than bound: pthread_setname_np comes at a symbol
     * version of its own, a cost at every process start
     * (common/glibc_symver.h). */
    static void *setname_slot;
    int (*setname)(pthread_t, const char *) =
        (int (*)(pthread_t, const char *))dynobs__lookup(&setname_slot, "pthread_setname_np", NULL);
    if (setname)
        setname(t, "dynobs-watch");
    return 0;
}

DYNOBS_API int dynobs_metric_watch(const char *name, const char *labels, int condition,
                                   double threshold, dynobs_watch_fn callback, void *user_data)
{
    if (!name || !callback || condition < DYNOBS_WATCH_ABOVE ||
        condition > DYNOBS_WATCH_CHANGE || !__builtin_isfinite(threshold))
        return DYNOBS_EINVAL;
    if (!labels)
        labels = "";
    size_t nl = strlen(name), ll = strlen(labels);
    if (nl + ll + 2 > DYNOBS_METRIC_KEY_BYTES || !dynobs__metric_name_ok(name, nl) ||
        !dynobs__metric_labels_ok(labels, ll))
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct watch *tab = dynobs__lazymap(&watches, DYNOBS_WATCH_MAX * sizeof *tab);
    if (!tab)
        return DYNOBS_ENOMEM;
    for (unsigned i = 0; i < DYNOBS_WATCH_MAX; i++) {
        struct watch *w = &tab[i];
        uint64_t word = __atomic_load_n(&w->word, __ATOMIC_ACQUIRE);
        uint32_t gen = GEN(word);
        if (STATE(word) != W_FREE ||
            !__atomic_compare_exchange_n(&w->word, &word, WORD(gen, W_SETUP), 0,
                                         __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            continue;
        w->condition = condition;
        w->threshold = threshold;
        w->fn = callback;
        w->user = user_data;
        w->name_len = nl;
        memcpy(w->key, name, nl + 1);
        memcpy(w->key + nl + 1, labels, ll + 1);
        w->slot = NULL;
        w->seen = 0;
        start_from_now(w);
        int id = make_id(gen, i);
        __atomic_fetch_add(&live, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&w->word, WORD(gen, W_ACTIVE), __ATOMIC_RELEASE);
        int rc = ensure_thread();
        if (rc < 0) {
            uint64_t active = WORD(gen, W_ACTIVE);
            if (__atomic_compare_exchange_n(&w->word, &active, WORD(gen, W_CANCELLED), 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                release(w);
            return rc;
        }
        return id;
    }
    return DYNOBS_ENOSPC;
}

DYNOBS_API int dynobs_metric_unwatch(int id)
{
    if (id <= 0)
        return DYNOBS_ENOENT;
    struct watch *tab = dynobs__lazymap_peek(&watches);
    if (!tab)
        return DYNOBS_ENOENT; /* no watch was ever made */
    unsigned i = (unsigned)id & (DYNOBS_WATCH_MAX - 1);
    struct watch *w = &tab[i];
    uint32_t gen = GEN(__atomic_load_n(&w->word, __ATOMIC_ACQUIRE));
    if (make_id(gen, i) != id)
        return DYNOBS_ENOENT;
    uint64_t active = WORD(gen, W_ACTIVE);
    if (!__atomic_compare_exchange_n(&w->word, &active, WORD(gen, W_CANCELLED), 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return DYNOBS_ENOENT;
    /* From a callback: the watch thread frees the entry once it returns. */
    if (on_watch_thread)
        return 0;
    /* No thread in this process (a forked child's inherited watches):
     * nobody else will free it. */
    if (!__atomic_load_n(&running, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&running_pid, __ATOMIC_RELAXED) != getpid()) {
        release(w);
        return 0;
    }
    /* Else wait until the thread has let go of it, so that the callback
     * is not running and never runs again when this returns. */
    struct timespec pause = {0, 200000};
    for (uint64_t waited = 0; waited < UNWATCH_WAIT_NS; waited += 200000) {
        if (GEN(__atomic_load_n(&w->word, __ATOMIC_ACQUIRE)) != gen)
            break;
        nanosleep(&pause, NULL);
    }
    return 0;
}
