/*
 * Issue 18: what windows add to a gauge set and a histogram record, and
 * how long a watch takes to call back after a crossing.
 *
 *   build/bench/dynobs-stats-bench [--quick] [--notify N]
 *
 * The update rows use only calls that predate windows, so that the same
 * binary run against an older libdynobs.so (LD_LIBRARY_PATH) measures
 * "before". The notify row (needs dynobs_metric_watch) sets a gauge above
 * a threshold N times, each after a random pause of 4-8 ms below it (more
 * than one poll: a dip shorter than a poll can be missed, see dynobs.h), and
 * reports the time from the set to the callback (CLOCK_MONOTONIC): the
 * watch thread polls every 2 ms, so about 1 ms on average is expected.
 * DYNOBS_SHM_DIR is set to a fresh directory when unset (and removed).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"
#include "dynobs/dynobs.h"

/* Weak: an older library has no watches; the notify row is skipped. */
#pragma weak dynobs_metric_watch
#pragma weak dynobs_metric_unwatch

static dynobs_metric *gauge_h, *histogram_h;

static __attribute__((noinline)) void op_gauge(int n)
{
    for (int i = 0; i < n; i++)
        dynobs_gauge_set("queue.depth", (double)(i & 1023), "queue=a");
}

static __attribute__((noinline)) void op_gauge_h(int n)
{
    for (int i = 0; i < n; i++)
        dynobs_gauge_set_h(gauge_h, (double)(i & 1023));
}

static __attribute__((noinline)) void op_histogram(int n)
{
    for (int i = 0; i < n; i++)
        dynobs_histogram_record("http.server.duration", (double)(i & 1023), "method=GET");
}

static __attribute__((noinline)) void op_histogram_h(int n)
{
    for (int i = 0; i < n; i++)
        dynobs_histogram_record_h(histogram_h, (double)(i & 1023));
}

/* Median and 90th percentile of batches of `batch` calls, ns per call. */
static void row(const char *what, void (*fn)(int), int batch, int batches)
{
    double *v = malloc(sizeof(double) * (size_t)batches);
    fn(batch); /* warm */
    for (int b = 0; b < batches; b++) {
        uint64_t t0 = bench_now_ns();
        fn(batch);
        v[b] = (double)(bench_now_ns() - t0) / batch;
    }
    double med = bench_median(v, batches);
    printf("%-44s %10.1f %10.1f\n", what, med, v[batches * 9 / 10]);
    free(v);
}

static volatile uint64_t set_at, called_at;

static void on_cross(const dynobs_watch_event *ev, void *user)
{
    (void)ev, (void)user;
    __atomic_store_n(&called_at, bench_now_ns(), __ATOMIC_RELEASE);
}

static void notify(int n)
{
    if (!dynobs_metric_watch) {
        printf("%-44s (this library has no watches)\n", "watch callback after a crossing");
        return;
    }
    dynobs_gauge_set("bench.level", 0, NULL);
    int id = dynobs_metric_watch("bench.level", NULL, DYNOBS_WATCH_ABOVE, 10, on_cross, NULL);
    double *lat = malloc(sizeof(double) * (size_t)n);
    int got = 0, missed = 0;
    srand(1);
    for (int i = 0; i < n; i++) {
        dynobs_gauge_set("bench.level", 0, NULL);
        usleep(4000 + (useconds_t)(rand() % 4000));
        __atomic_store_n(&called_at, 0, __ATOMIC_RELEASE);
        uint64_t t0 = bench_now_ns();
        set_at = t0;
        dynobs_gauge_set("bench.level", 20, NULL);
        while (!__atomic_load_n(&called_at, __ATOMIC_ACQUIRE) && bench_now_ns() - t0 < 100000000)
            usleep(50);
        uint64_t t1 = __atomic_load_n(&called_at, __ATOMIC_ACQUIRE);
        if (t1)
            lat[got++] = (double)(t1 - t0) / 1000.0;
        else
            missed++;
        usleep(3000); /* the thread sees 20 before the next 0 */
    }
    dynobs_metric_unwatch(id);
    if (got) {
        double med = bench_median(lat, got);
        printf("%-44s p50 %.0f us, p90 %.0f us, p99 %.0f us, max %.0f us (%d crossings, %d "
               "missed)\n",
               "watch callback after a crossing", med, lat[got * 9 / 10], lat[got * 99 / 100],
               lat[got - 1], got, missed);
    }
    free(lat);
}

int main(int argc, char **argv)
{
    int quick = 0, crossings = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--notify") && i + 1 < argc)
            crossings = atoi(argv[++i]);
    }
    char tmp[] = "/tmp/dynobs-stats-bench-XXXXXX";
    int own_dir = !getenv("DYNOBS_SHM_DIR");
    if (own_dir) {
        /* The library reads its configuration at load: set it, run again. */
        if (!mkdtemp(tmp))
            return 1;
        setenv("DYNOBS_SHM_DIR", tmp, 1);
        char cmd[4096];
        int n = snprintf(cmd, sizeof cmd, "'%s'", argv[0]);
        for (int i = 1; i < argc; i++)
            n += snprintf(cmd + n, sizeof cmd - (size_t)n, " '%s'", argv[i]);
        int rc = system(cmd);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
        return rc == 0 ? 0 : 1;
    }
    if (!dynobs_enabled()) {
        fprintf(stderr, "dynobs is off\n");
        return 1;
    }
    gauge_h = dynobs_gauge_get("queue.depth", "queue=a");
    histogram_h = dynobs_histogram_get("http.server.duration", "method=GET");
    int batches = quick ? 200 : 2000;
    printf("%-44s %10s %10s\n", "operation", "median ns", "p90 ns");
    row("gauge set (name + 1 label)", op_gauge, 1000, batches);
    row("gauge set through a handle", op_gauge_h, 1000, batches);
    row("histogram record (default 15 bounds)", op_histogram, 1000, batches);
    row("histogram record through a handle", op_histogram_h, 1000, batches);
    if (crossings)
        notify(crossings);
    return 0;
}
