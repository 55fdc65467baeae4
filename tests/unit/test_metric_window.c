/* Windowed statistics (common/metric_window.c): what a window reports
 * matches the values recorded in it, slices expire, a window longer than
 * what is kept is refused, and concurrent writers lose nothing. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dynobs/dynobs.h"
#include "metric_window.h"
#include "reader.h"
#include "segment.h"
#include "testutil.h"

static char *dir;
static struct dynobs_segment seg;

static void setup(void)
{
    dir = tu_tmpdir();
}

static void teardown(void)
{
    if (seg.base) {
        unlink(seg.path);
        dynobs__segment_detach(&seg);
    }
    tu_rmtree(dir);
    free(dir);
}

static void make(uint32_t slice_ms, uint32_t slices)
{
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 65536, .ring_shards = 1,
                                      .metric_slots = 64, .window_slice_ms = slice_ms,
                                      .window_slices = slices, .pid = getpid(),
                                      .start_ticks = dynobs__proc_start_ticks(0)};
    cr_assert_eq(dynobs__segment_create(&seg, &p), 0);
}

static uint32_t slot_of(const char *name)
{
    for (uint32_t i = 0; i < seg.metrics.nslots; i++) {
        const struct dynobs_metric_slot *s = &seg.metrics.slots[i];
        if (s->state == DYNOBS_SLOT_READY && strcmp(s->key, name) == 0)
            return i;
    }
    cr_assert_fail("no series %s", name);
    return 0;
}

/* The statistics of slot i as a reader in another process sees them. */
static int read_window(uint32_t i, uint64_t window_ms, struct dynobs_window_stats *out)
{
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, seg.path, 0), 0);
    int rc = dynobs__reader_window(r, i, dynobs__mono_ns(), window_ms, out);
    dynobs__reader_close(r);
    free(r);
    return rc;
}

static void record(const char *name, int kind, double v)
{
    struct dynobs_metric_def d = {.name = name, .kind = kind};
    cr_assert_eq(dynobs__metric_update(&seg.metrics, &d, v, ""), 0);
}

Test(metric_window, matches_recorded_values, .init = setup, .fini = teardown)
{
    make(0, 0); /* the defaults: 1 s x 16 */
    cr_assert_eq(seg.hdr->window_slice_ms, 1000);
    cr_assert_eq(seg.hdr->window_slices, 16);
    srand(7);
    uint64_t n = 2000;
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    for (uint64_t k = 0; k < n; k++) {
        double v = (rand() % 100000) / 7.0 - 3000;
        sum += v;
        mn = fmin(mn, v);
        mx = fmax(mx, v);
        record("queue.depth", DYNOBS_METRIC_GAUGE, v);
        record("latency", DYNOBS_METRIC_HISTOGRAM, v);
    }
    const char *names[] = {"queue.depth", "latency"};
    for (int m = 0; m < 2; m++) {
        uint32_t i = slot_of(names[m]);
        uint64_t windows[] = {10000, 1, 15000, 0};
        for (int w = 0; w < 4; w++) {
            struct dynobs_window_stats st;
            cr_assert_eq(read_window(i, windows[w], &st), 0, "%s %lu", names[m],
                         (unsigned long)windows[w]);
            cr_expect_eq(st.count, n);
            cr_expect_float_eq(st.sum, sum, 1e-6 * fabs(sum) + 1e-6);
            cr_expect_float_eq(st.avg, sum / (double)n, 1e-6);
            cr_expect_eq(st.min, mn, "exact min");
            cr_expect_eq(st.max, mx, "exact max");
            if (windows[w])
                cr_expect_geq(st.window_ms, windows[w]);
            else
                cr_expect_eq(st.window_ms, 0);
        }
    }
}

Test(metric_window, slices_expire, .init = setup, .fini = teardown)
{
    make(20, 4); /* windows up to 60 ms */
    record("g", DYNOBS_METRIC_GAUGE, 5);
    record("h", DYNOBS_METRIC_HISTOGRAM, 5);
    uint32_t g = slot_of("g"), h = slot_of("h");
    struct dynobs_window_stats st;
    cr_assert_eq(read_window(g, 60, &st), 0);
    cr_assert_eq(st.count, 1);
    cr_assert_eq(st.max, 5);
    usleep(150 * 1000);
    for (int k = 0; k < 2; k++) {
        uint32_t i = k ? h : g;
        cr_assert_eq(read_window(i, 60, &st), 0);
        cr_expect_eq(st.count, 0, "a value older than the window is gone");
        cr_expect(isnan(st.avg) && isnan(st.min) && isnan(st.max));
        cr_expect_eq(st.sum, 0);
        cr_assert_eq(read_window(i, 0, &st), 0);
        cr_expect_eq(st.count, 1, "but stays in the totals since start");
        cr_expect_eq(st.min, 5);
    }
    record("g", DYNOBS_METRIC_GAUGE, 7);
    record("g", DYNOBS_METRIC_GAUGE, -1);
    cr_assert_eq(read_window(g, 60, &st), 0);
    cr_expect_eq(st.count, 2);
    cr_expect_eq(st.min, -1);
    cr_expect_eq(st.max, 7);
    cr_expect_eq(st.avg, 3);
    cr_assert_eq(read_window(g, 0, &st), 0);
    cr_expect_eq(st.count, 3);
    cr_expect_eq(st.min, -1);
    cr_expect_eq(st.sum, 11);
}

Test(metric_window, longer_than_kept_is_einval, .init = setup, .fini = teardown)
{
    make(20, 4);
    record("g", DYNOBS_METRIC_GAUGE, 1);
    record("c", DYNOBS_METRIC_COUNTER, 1);
    struct dynobs_window_stats st;
    cr_expect_eq(read_window(slot_of("g"), 60, &st), 0);
    cr_expect_eq(read_window(slot_of("g"), 61, &st), -EINVAL);
    cr_expect_eq(read_window(slot_of("g"), 100000, &st), -EINVAL);
    cr_expect_eq(read_window(slot_of("c"), 60, &st), -ENOENT, "counters have no windows");
    uint32_t empty = 0;
    while (seg.metrics.slots[empty].state == DYNOBS_SLOT_READY)
        empty++;
    cr_expect_eq(read_window(empty, 60, &st), -ENOENT);
}

Test(metric_window, geometry_refused, .init = setup, .fini = teardown)
{
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 65536, .ring_shards = 1,
                                      .metric_slots = 64, .pid = getpid(),
                                      .start_ticks = dynobs__proc_start_ticks(0)};
    struct dynobs_segment s;
    uint32_t bad[][3] = {{3, 100, 0}, {32, 100, 0}, {16, 5, 0}, {16, 100, 100}, {16, 100, 8192}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.window_slices = bad[i][0];
        p.window_slice_ms = bad[i][1];
        p.meta_slots = bad[i][2];
        cr_expect_eq(dynobs__segment_create(&s, &p), -EINVAL, "case %zu", i);
    }
}

Test(metric_window, corrupt_window_is_ebadmsg, .init = setup, .fini = teardown)
{
    make(20, 4);
    record("g", DYNOBS_METRIC_GAUGE, 1);
    uint32_t g = slot_of("g");
    seg.metrics.windows[g].slices = 99;
    struct dynobs_window_stats st;
    cr_expect_eq(read_window(g, 60, &st), -EBADMSG);
    seg.metrics.windows[g].slices = 4;
    seg.metrics.windows[g].slice_ms = 21;
    cr_expect_eq(read_window(g, 60, &st), -EBADMSG);
}

/* A value the slices cannot take (its slice already in a later lap than
 * its clock: a writer preempted for longer than the window, which loaded
 * CI machines do) is counted as dropped from the slices, and still
 * counted since start. */
Test(metric_window, dropped_from_the_slices_still_counts_since_start, .init = setup,
     .fini = teardown)
{
    make(10, 16);
    record("late", DYNOBS_METRIC_GAUGE, 1);
    uint32_t g = slot_of("late");
    struct dynobs_metric_window *w = &seg.metrics.windows[g];
    for (uint32_t k = 0; k < w->slices; k++)
        w->slice[k].epoch = 1ull << 40; /* a lap no clock of this test reaches */
    record("late", DYNOBS_METRIC_GAUGE, 5);
    cr_expect_eq(w->dropped, 1);
    struct dynobs_window_stats st;
    cr_assert_eq(read_window(g, 0, &st), 0);
    cr_expect_eq(st.count, 2);
    cr_expect_eq(st.max, 5);
}

#define THREADS 4
#define PER_THREAD 50000

static void *writer(void *arg)
{
    double base = (double)(intptr_t)arg;
    for (int k = 0; k < PER_THREAD; k++) {
        record("shared", DYNOBS_METRIC_GAUGE, base + k % 100);
        record("shared.h", DYNOBS_METRIC_HISTOGRAM, base + k % 100);
    }
    return NULL;
}

/* Writers racing over slice turns (10 ms slices) lose no update: each
 * one is in a slice or counted as dropped. A writer that finds a series'
 * slot still being claimed by a preempted thread moves on to another
 * (metrics.c, resolve: a duplicate series, which the consumer merges),
 * so the series' figures are those of every slot with its key, merged
 * as the exporter merges them. */
Test(metric_window, concurrent_writers, .init = setup, .fini = teardown)
{
    make(10, 16);
    pthread_t t[THREADS];
    for (intptr_t k = 0; k < THREADS; k++)
        pthread_create(&t[k], NULL, writer, (void *)(k * 1000));
    for (int k = 0; k < THREADS; k++)
        pthread_join(t[k], NULL);
    const char *names[] = {"shared", "shared.h"};
    for (int m = 0; m < 2; m++) {
        uint64_t count = 0, sliced = 0;
        double mn = INFINITY, mx = -INFINITY;
        int found = 0;
        for (uint32_t i = 0; i < seg.metrics.nslots; i++) {
            const struct dynobs_metric_slot *s = &seg.metrics.slots[i];
            if (s->state != DYNOBS_SLOT_READY || strcmp(s->key, names[m]) != 0)
                continue;
            found++;
            struct dynobs_window_stats st;
            cr_assert_eq(read_window(i, 0, &st), 0);
            count += st.count;
            mn = fmin(mn, st.min);
            mx = fmax(mx, st.max);
            /* The slices: whatever is still within reach of them, plus
             * what they dropped, never more than was recorded. */
            cr_assert_eq(read_window(i, 150, &st), 0);
            sliced += st.count + seg.metrics.windows[i].dropped;
        }
        cr_assert_geq(found, 1, "no series %s", names[m]);
        cr_expect_eq(count, (uint64_t)THREADS * PER_THREAD, "%s in %d slot(s)", names[m], found);
        cr_expect_eq(mn, 0);
        cr_expect_eq(mx, (THREADS - 1) * 1000 + 99);
        cr_expect_leq(sliced, (uint64_t)THREADS * PER_THREAD);
    }
}

/* The slices of a window that was written for longer than it keeps
 * only hold the last ones: values recorded at known times. */
Test(metric_window, sliding, .init = setup, .fini = teardown)
{
    make(50, 4); /* up to 150 ms */
    for (int k = 1; k <= 6; k++) {
        record("g", DYNOBS_METRIC_GAUGE, k);
        usleep(50 * 1000);
    }
    struct dynobs_window_stats st;
    cr_assert_eq(read_window(slot_of("g"), 150, &st), 0);
    /* 300 ms of values, one per slice: a 150 ms window holds the last
     * two to four of them, never the first ones. */
    cr_expect(st.count >= 2 && st.count <= 4, "count %lu", (unsigned long)st.count);
    cr_expect_eq(st.max, 6);
    cr_expect_geq(st.min, 3);
}
