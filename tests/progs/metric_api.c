/*
 * The declared-metric, statistics and watch API of the real library
 * (issue 18), exercised in one process that links libdynobs.so and reads
 * its own segment back as the exporter would. Exits 0 when every check
 * holds; prints each failed check.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dynobs/dynobs.h"
#include "metric_meta.h"
#include "reader.h"
#include "segment.h"

static int failed;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            failed++;                                                                      \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                         \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
        }                                                                                  \
    } while (0)

static void sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* 1 when this process has a thread named dynobs-watch. */
static int watch_thread(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d))) {
        char p[300], name[64] = "";
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (f) {
            if (fgets(name, sizeof name, f) && strncmp(name, "dynobs-watch", 12) == 0)
                found = 1;
            fclose(f);
        }
    }
    if (d)
        closedir(d);
    return found;
}

static struct dynobs_reader *open_own(void)
{
    static char path[600];
    char name[64];
    const char *dir = getenv("DYNOBS_SHM_DIR");
    dynobs__segment_name(name, sizeof name, getpid(), dynobs__proc_start_ticks(0));
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "/dev/shm/dynobs", name);
    struct dynobs_reader *r = malloc(sizeof *r);
    int rc = dynobs__reader_open(r, path, 0);
    CHECK(rc == 0, "open %s: %d", path, rc);
    if (rc) {
        free(r);
        return NULL;
    }
    return r;
}

static const double lat_bounds[] = {0.01, 0.1, 1};

static void declared(void)
{
    dynobs_metric_decl decls[] = {
        {.name = "jobs.done", .description = "Jobs finished", .kind = DYNOBS_METRIC_COUNTER},
        {.name = "queue.depth", .description = "Jobs waiting", .unit = "{job}",
         .kind = DYNOBS_METRIC_GAUGE, .labels = "queue=a"},
        {.name = "job.latency", .description = "Time a job takes", .unit = "s",
         .kind = DYNOBS_METRIC_HISTOGRAM, .bounds = lat_bounds, .nbounds = 3},
        {.name = "workers", .description = "Workers busy", .kind = DYNOBS_METRIC_UPDOWN},
    };
    dynobs_metric *h[4];
    int rc = dynobs_metrics_declare(decls, 4, h);
    CHECK(rc == 0, "declare: %d", rc);
    for (int i = 0; i < 4; i++)
        CHECK(h[i] != NULL, "handle %d", i);
    CHECK(dynobs_counter_add_h(h[0], 2) == 0, "counter");
    CHECK(dynobs_gauge_set_h(h[1], 3) == 0, "gauge");
    CHECK(dynobs_histogram_record_h(h[2], 0.05) == 0, "histogram");
    CHECK(dynobs_updown_add_h(h[3], -1) == 0, "updown");
    /* By name, the declared bounds apply: 0.5 lands in (0.1, 1]. */
    CHECK(dynobs_histogram_record("job.latency", 0.5, "kind=b") == 0, "by name");
    /* Declaring the same again (another component, same struct): fine,
     * and the same handles. */
    dynobs_metric *again[4];
    CHECK(dynobs_metrics_declare(decls, 4, again) == 0, "again");
    CHECK(again[1] == h[1], "same handle");
    /* A conflicting one: refused, counted, no handle; the rest of the
     * array is declared all the same. */
    dynobs_metric_decl clash[] = {
        {.name = "other.ok", .description = "Fine", .kind = DYNOBS_METRIC_GAUGE},
        {.name = "queue.depth", .description = "Something else", .unit = "{job}",
         .kind = DYNOBS_METRIC_GAUGE},
        {.name = "bad name", .kind = DYNOBS_METRIC_GAUGE},
    };
    dynobs_metric *hc[3];
    rc = dynobs_metrics_declare(clash, 3, hc);
    CHECK(rc == DYNOBS_EEXIST, "clash: %d", rc);
    CHECK(hc[0] != NULL && hc[1] == NULL && hc[2] == NULL, "clash handles");
    CHECK(strcmp(dynobs_strerror(DYNOBS_EEXIST), "unknown error") != 0, "strerror");
    CHECK(dynobs_metrics_declare(NULL, 1, NULL) == DYNOBS_EINVAL, "NULL decls");
    CHECK(dynobs_metrics_declare(NULL, 0, NULL) == 0, "nothing to declare");

    struct dynobs_reader *r = open_own();
    if (!r)
        return;
    CHECK(r->live->declare_conflicts == 1, "conflicts %lu",
          (unsigned long)r->live->declare_conflicts);
    int seen = 0;
    for (uint32_t i = 0; i < r->hdr.meta_slots; i++) {
        struct dynobs_metric_meta_view v;
        if (dynobs__reader_meta(r, i, &v) != 0)
            continue;
        seen++;
        if (v.name_len == 11 && memcmp(v.name, "queue.depth", 11) == 0) {
            CHECK(v.kind == DYNOBS_METRIC_GAUGE && strcmp(v.unit, "{job}") == 0 &&
                      v.description_len == 12 && memcmp(v.description, "Jobs waiting", 12) == 0,
                  "queue.depth entry");
        }
    }
    CHECK(seen == 5, "declared entries: %d", seen);
    for (uint32_t i = 0; i < r->hdr.metric_slots; i++) {
        struct dynobs_metric_view m;
        if (dynobs__reader_metric(r, i, &m) == 0 && strcmp(m.name, "job.latency") == 0)
            CHECK(m.nbounds == 3 && strcmp(m.unit, "s") == 0 && m.count == 1,
                  "job.latency{%s}: %u bounds, unit %s", m.labels, m.nbounds, m.unit);
    }
    dynobs__reader_close(r);
    free(r);
}

static void stats(void)
{
    dynobs_metric *g = dynobs_gauge_get("temp", "room=a");
    double vals[] = {21.5, 19, 23.25, 20};
    for (int i = 0; i < 4; i++)
        dynobs_gauge_set_h(g, vals[i]);
    dynobs_gauge_set("temp", 18, "room=a"); /* by name, same series */
    struct dynobs_metric_stats st;
    int rc = dynobs_metric_stats("temp", "room=a", DYNOBS_STATS_WINDOW_DEFAULT_MS, &st);
    CHECK(rc == 0, "stats: %d", rc);
    CHECK(st.count == 5 && st.min == 18 && st.max == 23.25 && st.sum == 101.75 &&
              fabs(st.avg - 20.35) < 1e-9 && st.value == 18 && st.kind == DYNOBS_METRIC_GAUGE,
          "temp: count %lu min %g max %g sum %g avg %g value %g", (unsigned long)st.count,
          st.min, st.max, st.sum, st.avg, st.value);
    CHECK(st.window_ms >= 10000 && st.window_ms <= 11000, "covered %lu",
          (unsigned long)st.window_ms);
    rc = dynobs_metric_stats("temp", "room=a", DYNOBS_STATS_SINCE_START, &st);
    CHECK(rc == 0 && st.count == 5 && st.window_ms == 0, "since start");
    for (int i = 1; i <= 100; i++)
        dynobs_histogram_record("h.ms", i, NULL);
    rc = dynobs_metric_stats("h.ms", NULL, 1000, &st);
    CHECK(rc == 0 && st.count == 100 && st.min == 1 && st.max == 100 && st.avg == 50.5,
          "histogram: %d %lu %g %g %g", rc, (unsigned long)st.count, st.min, st.max, st.avg);
    dynobs_counter_add("c.total", 3, NULL);
    rc = dynobs_metric_stats("c.total", NULL, 1000, &st);
    CHECK(rc == 0 && st.value == 3 && st.count == 0 && isnan(st.avg), "counter");
    CHECK(dynobs_metric_stats("temp", "room=b", 1000, &st) == DYNOBS_ENOENT, "no series");
    CHECK(dynobs_metric_stats("temp", "room=a", 15000, &st) == 0, "15 s is kept");
    CHECK(dynobs_metric_stats("temp", "room=a", 16000, &st) == DYNOBS_EINVAL, "16 s is not");
    CHECK(dynobs_metric_stats(NULL, NULL, 1000, &st) == DYNOBS_EINVAL, "NULL name");
}

/* ---- watches ---- */

struct counts {
    int fired;
    double value, previous;
    int unwatch_self; /* the callback cancels its own watch */
    int unwatch_rc;
    pthread_t thread;
};

/* The callbacks write, the test reads: under this lock (ThreadSanitizer
 * runs this program too). */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void on_event(const dynobs_watch_event *ev, void *user)
{
    struct counts *c = user;
    int rc = c->unwatch_self ? dynobs_metric_unwatch(ev->id) : 0;
    pthread_mutex_lock(&mu);
    c->fired++;
    c->value = ev->value;
    c->previous = ev->previous;
    c->thread = pthread_self();
    c->unwatch_rc = rc;
    pthread_mutex_unlock(&mu);
}

/* A consistent copy of what the callbacks wrote so far. */
static struct counts snap(const struct counts *c)
{
    pthread_mutex_lock(&mu);
    struct counts x = *c;
    pthread_mutex_unlock(&mu);
    return x;
}

/* Sets the gauge and leaves the watch thread a few polls to see it. */
static void set(const char *name, double v)
{
    dynobs_gauge_set(name, v, NULL);
    sleep_ms(40);
}

#define MANY 200

static void watches(void)
{
    CHECK(!watch_thread(), "no watch thread before the first watch");
    set("level", 5);
    struct counts above = {0}, below = {0}, change = {0}, self = {.unwatch_self = 1};
    int a = dynobs_metric_watch("level", NULL, DYNOBS_WATCH_ABOVE, 10, on_event, &above);
    int b = dynobs_metric_watch("level", NULL, DYNOBS_WATCH_BELOW, 10, on_event, &below);
    int c = dynobs_metric_watch("level", NULL, DYNOBS_WATCH_CHANGE, 0, on_event, &change);
    int s = dynobs_metric_watch("level", NULL, DYNOBS_WATCH_ABOVE, 10, on_event, &self);
    CHECK(a > 0 && b > 0 && c > 0 && s > 0, "ids %d %d %d %d", a, b, c, s);
    CHECK(watch_thread(), "the watch thread runs");
    sleep_ms(15);
    set("level", 15); /* above: once */
    set("level", 20); /* still above: no new crossing */
    set("level", 10); /* not below 10 */
    set("level", 3);  /* below: once */
    set("level", 12); /* above again */
    struct counts x = snap(&above);
    CHECK(x.fired == 2, "above fired %d", x.fired);
    CHECK(x.value == 12 && x.previous == 3, "above %g from %g", x.value, x.previous);
    CHECK(!pthread_equal(x.thread, pthread_self()), "called from another thread");
    x = snap(&below);
    CHECK(x.fired == 1, "below fired %d", x.fired);
    x = snap(&change);
    CHECK(x.fired == 5, "change fired %d", x.fired);
    x = snap(&self);
    CHECK(x.fired == 1 && x.unwatch_rc == 0, "self-unwatch: fired %d, rc %d", x.fired,
          x.unwatch_rc);
    CHECK(dynobs_metric_unwatch(s) == DYNOBS_ENOENT, "already gone");
    CHECK(dynobs_metric_unwatch(a) == 0 && dynobs_metric_unwatch(a) == DYNOBS_ENOENT, "unwatch");
    set("level", 0);
    set("level", 30);
    CHECK(snap(&above).fired == 2, "no call after unwatch: %d", snap(&above).fired);
    dynobs_metric_unwatch(b);
    dynobs_metric_unwatch(c);

    /* Many watchers of one series, each called once per crossing; half of
     * them cancel themselves in their callback. */
    static struct counts many[MANY];
    static int ids[MANY];
    set("crowd", 0);
    for (int i = 0; i < MANY; i++) {
        many[i] = (struct counts){.unwatch_self = i % 2};
        ids[i] = dynobs_metric_watch("crowd", NULL, DYNOBS_WATCH_ABOVE, 1, on_event, &many[i]);
        CHECK(ids[i] > 0, "watch %d: %d", i, ids[i]);
    }
    int extra[DYNOBS_WATCH_MAX];
    int n = 0, rc;
    while (n < DYNOBS_WATCH_MAX &&
           (rc = dynobs_metric_watch("crowd", NULL, DYNOBS_WATCH_ABOVE, 1e9, on_event, &self)) > 0)
        extra[n++] = rc;
    CHECK(n == DYNOBS_WATCH_MAX - MANY && rc == DYNOBS_ENOSPC, "%d more, then %d", n, rc);
    for (int i = 0; i < n; i++)
        dynobs_metric_unwatch(extra[i]);
    sleep_ms(10);
    set("crowd", 2);
    set("crowd", 0);
    set("crowd", 2);
    int wrong = 0;
    for (int i = 0; i < MANY; i++)
        wrong += snap(&many[i]).fired != (i % 2 ? 1 : 2);
    CHECK(wrong == 0, "%d watchers called a wrong number of times", wrong);
    for (int i = 0; i < MANY; i++)
        CHECK(dynobs_metric_unwatch(ids[i]) == (i % 2 ? DYNOBS_ENOENT : 0), "unwatch %d", i);

    /* A series made after its watch is watched from its first value. */
    struct counts late = {0};
    int l = dynobs_metric_watch("late.gauge", "k=v", DYNOBS_WATCH_ABOVE, 1, on_event, &late);
    sleep_ms(10);
    dynobs_gauge_set("late.gauge", 0, "k=v");
    sleep_ms(15);
    dynobs_gauge_set("late.gauge", 5, "k=v");
    sleep_ms(15);
    CHECK(snap(&late).fired == 1, "late series: %d", snap(&late).fired);
    dynobs_metric_unwatch(l);

    CHECK(dynobs_metric_watch("x", NULL, 9, 0, on_event, NULL) == DYNOBS_EINVAL, "condition");
    CHECK(dynobs_metric_watch("x", NULL, DYNOBS_WATCH_ABOVE, 0, NULL, NULL) == DYNOBS_EINVAL,
          "callback");
    CHECK(dynobs_metric_watch("x", NULL, DYNOBS_WATCH_ABOVE, NAN, on_event, NULL) ==
              DYNOBS_EINVAL,
          "threshold");
    CHECK(dynobs_metric_unwatch(0) == DYNOBS_ENOENT && dynobs_metric_unwatch(12345) ==
              DYNOBS_ENOENT,
          "unknown ids");
    /* With no watch left, the thread ends (after about half a second). */
    sleep_ms(1500);
    CHECK(!watch_thread(), "the watch thread ended");
}

int main(void)
{
    if (!dynobs_enabled()) {
        printf("dynobs is off\n");
        return 1;
    }
    declared();
    stats();
    watches();
    printf("%s (%d failed)\n", failed ? "FAILED" : "ok", failed);
    return failed ? 1 : 0;
}
