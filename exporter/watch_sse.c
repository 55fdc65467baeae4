/*
 * Locks, in the order they are taken: `clients_lock` (the client list),
 * the segments' lock (the store: segments.h), then a client's queue's
 * (event_queue.h). The server's thread reads a queue under the stream's
 * lock (http_stream.h), so a client is woken only once its queue's lock
 * is let go. /metrics reads this part's counters as atomics, without
 * a lock, since it calls in with the segments' lock held.
 *
 * Events:
 *   event: series    the first value seen of a series (the baseline the
 *                    next crossing is measured from)
 *   event: crossing  above: from <= X to > X; below: from >= X to < X;
 *                    change: any new value
 * each with data {"service","name","labels","kind","condition",
 * "threshold","previous","value","time_unix_nano","dropped"}, where
 * dropped counts this client's events lost so far to its full queue.
 * Counters, up/down counters and gauges are watched by their value;
 * histograms are not (their windows are /api/v1/stats').
 */
#define _GNU_SOURCE
#include "watch_sse.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag.h"
#include "event_queue.h"
#include "dynobs/dynobs.h"
#include "http_server.h"
#include "http_stream.h"
#include "json_out.h"
#include "metrics.h"
#include "prometheus.h"
#include "segments.h"
#include "store.h"
#include "util.h"

enum cond { ABOVE, BELOW, CHANGE };
static const char *const cond_name[] = {"above", "below", "change"};

/* A series a client watches: the value it had at the last tick, and
 * the sum being made of its slots' values at this one. */
struct seen {
    const struct dx_series *s;
    double value, sum;
    int fresh;   /* not reported yet: its first value is a "series" event */
    int present; /* some process has it at this tick */
};

struct client {
    struct client *next;
    struct dx_http_stream *stream;
    struct dx_store_query q;
    char name[256];
    enum cond cond;
    double threshold;
    struct seen seen[DX_WATCH_MAX_SERIES];
    int nseen;
    /* The slots of its series in live processes as of the last full
     * look, with the index in seen[] of each and room for their values
     * (watch thread only). */
    struct dx_store_slot_ref *slots;
    int *slot_seen;
    double *values;
    size_t nslots, cap;
    int looked; /* has had a full look */
    uint64_t last_put_ns; /* watch thread only */
    struct dx_event_queue queue;
};

static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static struct client *clients;
static int nclients;
static int running; /* the watch thread: under clients_lock */

/* /metrics' figures: atomics (see above). */
static uint64_t events_sent, events_dropped, clients_now;

/* Queues one whole event or comment, or drops it and counts. */
static void put(struct client *c, const char *text, size_t n, int event)
{
    int rc = dx_event_queue_put(&c->queue, text, n, event);
    if (event)
        __atomic_add_fetch(rc == 0 ? &events_sent : &events_dropped, 1, __ATOMIC_RELAXED);
}

/* The server's thread takes what is queued (http_stream.h). */
static long take(void *arg, char *out, size_t max)
{
    struct client *c = arg;
    return (long)dx_event_queue_take(&c->queue, out, max);
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void event(struct client *c, const char *type, const struct dx_series *s, double prev,
                  double value)
{
    char text[2048];
    struct dx_buf b;
    dx_buf_init(&b, sizeof text);
    uint64_t dropped = dx_event_queue_dropped(&c->queue);
    dx_buf_printf(&b, "event: %s\ndata: {\"service\":", type);
    dx_json_str(&b, s->service);
    dx_buf_str(&b, ",\"name\":");
    dx_json_str(&b, s->name);
    dx_buf_str(&b, ",\"labels\":");
    dx_json_str(&b, s->labels);
    dx_buf_printf(&b, ",\"kind\":\"%s\",\"condition\":\"%s\",\"threshold\":",
                  s->kind == DYNOBS_METRIC_COUNTER  ? "counter"
                  : s->kind == DYNOBS_METRIC_UPDOWN ? "updown_counter"
                                                    : "gauge",
                  cond_name[c->cond]);
    dx_json_num(&b, c->cond == CHANGE ? NAN : c->threshold);
    dx_buf_str(&b, ",\"previous\":");
    dx_json_num(&b, prev);
    dx_buf_str(&b, ",\"value\":");
    dx_json_num(&b, value);
    dx_buf_printf(&b, ",\"time_unix_nano\":%llu,\"dropped\":%llu}\n\n",
                  (unsigned long long)wall_ns(), (unsigned long long)dropped);
    /* Names and labels are capped well below the buffer; an event that
     * still does not fit is not sent cut. */
    if (!b.overflow && b.p)
        put(c, b.p, b.len, 1);
    dx_buf_free(&b);
}

static int crossed(const struct client *c, double prev, double v)
{
    switch (c->cond) {
    case ABOVE:
        return prev <= c->threshold && v > c->threshold;
    case BELOW:
        return prev >= c->threshold && v < c->threshold;
    case CHANGE:
        return !(prev == v || (isnan(prev) && isnan(v)));
    }
    return 0;
}

/* Room for twice as many slots: 0, or -ENOMEM. */
static int grow(struct client *c)
{
    size_t cap = c->cap ? 2 * c->cap : 16;
    struct dx_store_slot_ref *s = realloc(c->slots, cap * sizeof *s);
    if (s)
        c->slots = s;
    int *k = realloc(c->slot_seen, cap * sizeof *k);
    if (k)
        c->slot_seen = k;
    double *v = realloc(c->values, cap * sizeof *v);
    if (v)
        c->values = v;
    if (!s || !k || !v)
        return -ENOMEM;
    c->cap = cap;
    return 0;
}

/* A full look (under the segments' lock, after a snapshot): the slots
 * of the client's series in every live process. */
static void add_slot(void *arg, const struct dx_series *s, struct dx_store_source *src,
                     uint32_t slot)
{
    struct client *c = arg;
    if (s->kind == DYNOBS_METRIC_HISTOGRAM)
        return;
    int k = 0;
    while (k < c->nseen && c->seen[k].s != s)
        k++;
    if (k == c->nseen) {
        if (c->nseen == DX_WATCH_MAX_SERIES)
            return;
        c->seen[c->nseen++] = (struct seen){.s = s, .value = NAN, .fresh = 1};
    }
    if (c->nslots == c->cap && grow(c) < 0)
        return; /* out of memory: this slot is not watched until the next look */
    /* The source's pointer stays valid while the segments' generation
     * does (segments.h): a full look comes first when it changes. */
    c->slots[c->nslots] = (struct dx_store_slot_ref){src, slot, s};
    c->slot_seen[c->nslots++] = k;
}

static int look_in(struct dx_store_source *src, void *arg)
{
    struct client *c = arg;
    return dx_store_query_slots(src, &c->q, add_slot, c);
}

/* One tick of a client: its slots' values summed per series as /metrics
 * sums a service's processes (with what exited processes added to a
 * counter), then compared with the last tick's. */
static void evaluate(struct client *c)
{
    for (int k = 0; k < c->nseen; k++) {
        c->seen[k].sum = 0;
        c->seen[k].present = 0;
    }
    /* A mapping that faulted is skipped for this tick; the next full
     * look's snapshot marks its segment broken, and it is dropped. */
    if (dx_store_slot_values(c->slots, c->nslots, c->values) < 0)
        return;
    for (size_t i = 0; i < c->nslots; i++) {
        struct seen *e = &c->seen[c->slot_seen[i]];
        if (!isnan(c->values[i])) {
            e->sum += c->values[i];
            e->present = 1;
        }
    }
    for (int k = 0; k < c->nseen; k++) {
        struct seen *e = &c->seen[k];
        if (!e->present)
            continue; /* every process of it is gone */
        double v = e->sum;
        if (e->s->kind == DYNOBS_METRIC_COUNTER && e->s->has_folded)
            v += e->s->folded.value;
        if (e->fresh)
            event(c, "series", e->s, NAN, v);
        else if (crossed(c, e->value, v))
            event(c, "crossing", e->s, e->value, v);
        e->fresh = 0;
        e->value = v;
    }
}

static void free_client(struct client *c)
{
    free(c->slots);
    free(c->slot_seen);
    free(c->values);
    dx_http_stream_release(c->stream);
    dx_store_query_free(&c->q);
    dx_event_queue_destroy(&c->queue);
    free(c);
}

/* Drops the clients the server has let go of. Under clients_lock. */
static void reap(void)
{
    for (struct client **p = &clients; *p;) {
        struct client *c = *p;
        if (!dx_http_stream_closed(c->stream)) {
            p = &c->next;
            continue;
        }
        *p = c->next;
        nclients--;
        __atomic_store_n(&clients_now, (uint64_t)nclients, __ATOMIC_RELAXED);
        free_client(c);
    }
}

/* A full look: a snapshot, so that slots first used since are mapped,
 * then every client's slots found again. Done when a segment came or
 * went (the slots' sources may be gone), for a new client, and every
 * DX_WATCH_LOOK_MS for series first recorded since in a process already
 * attached. A snapshot walks every slot of every segment; a tick in
 * between reads only the watched slots. */
static uint64_t looked_gen, looked_ns;

static void tick(void)
{
    uint64_t t = dynobs__mono_ns();
    dx_segments_lock();
    int full = dx_segments_generation() != looked_gen ||
               t - looked_ns >= DX_WATCH_LOOK_MS * 1000000ull;
    for (struct client *c = clients; c && !full; c = c->next)
        full = !c->looked;
    if (full) {
        dx_segments_snapshot();
        for (struct client *c = clients; c; c = c->next) {
            c->nslots = 0;
            c->looked = 1;
            dx_segments_each(look_in, c);
        }
        looked_gen = dx_segments_generation();
        looked_ns = t;
    }
    for (struct client *c = clients; c; c = c->next)
        evaluate(c);
    dx_segments_unlock();
    uint64_t now = dynobs__mono_ns();
    for (struct client *c = clients; c; c = c->next) {
        if (now - c->last_put_ns >= DX_WATCH_KEEPALIVE_MS * 1000000ull)
            put(c, ": keepalive\n\n", 13, 0);
        if (dx_event_queue_filled(&c->queue)) {
            c->last_put_ns = now;
            dx_http_stream_wake(c->stream);
        }
    }
}

/* Runs while clients watch: a tick every DX_WATCH_TICK_MS, on a fixed
 * schedule so that a slow tick does not push the next ones back. */
static void *watch_thread(void *arg)
{
    (void)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        pthread_mutex_lock(&clients_lock);
        reap();
        if (!clients) {
            running = 0;
            pthread_mutex_unlock(&clients_lock);
            return NULL;
        }
        tick();
        pthread_mutex_unlock(&clients_lock);
        next.tv_nsec += DX_WATCH_TICK_MS * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
            next = now; /* behind: start again from now */
        else
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
}

/* A finite number: 0, or -1. */
static int parse_number(const char *s, double *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    *out = strtod(s, &end);
    return *end || errno || !isfinite(*out) ? -1 : 0;
}

/* The condition of a request: 0, or -1 with *why set. */
static int parse_condition(struct dx_httpd_response *r, struct client *c, const char **why)
{
    const char *above = dx_httpd_arg(r, "above"), *below = dx_httpd_arg(r, "below");
    const char *change = dx_httpd_arg(r, "change");
    if ((above != NULL) + (below != NULL) + (change != NULL) != 1) {
        *why = "one of above=X, below=X or change is required";
        return -1;
    }
    c->cond = above ? ABOVE : below ? BELOW : CHANGE;
    if (change) {
        if (*change) {
            *why = "change takes no value";
            return -1;
        }
        return 0;
    }
    if (parse_number(above ? above : below, &c->threshold) < 0) {
        *why = "above and below take a finite number";
        return -1;
    }
    return 0;
}

static void watch_route(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    static const char *const known[] = {"name", "labels", "above", "below", "change", NULL};
    const char *unknown, *why = NULL;
    const char *name, *labels;
    dx_httpd_unknown_arg(r, known, &unknown);
    if (unknown) {
        dx_json_error(r, 400, "unknown parameter (name, labels, above, below and change are known)");
        return;
    }
    if (dx_json_series_args(r, &name, &labels) < 0)
        return;
    struct client *c = calloc(1, sizeof *c);
    if (!c) {
        dx_json_error(r, 503, "out of memory");
        return;
    }
    dx_event_queue_init(&c->queue);
    snprintf(c->name, sizeof c->name, "%s", name);
    if (parse_condition(r, c, &why) < 0 || dx_store_query_init(&c->q, c->name, labels) < 0 ||
        !(c->stream = dx_http_stream_new(take, c))) {
        dx_json_error(r, why ? 400 : 503, why ? why : "out of memory");
        free_client(c);
        return;
    }
    /* The first bytes go out at once: the client knows it is subscribed. */
    put(c, "retry: 1000\n: watching\n\n", 24, 0);
    (void)dx_event_queue_filled(&c->queue); /* read at the first request for bytes */
    c->last_put_ns = dynobs__mono_ns();
    pthread_mutex_lock(&clients_lock);
    if (nclients == DX_WATCH_MAX_CLIENTS) {
        pthread_mutex_unlock(&clients_lock);
        dx_json_error(r, 503, "too many watching clients");
        free_client(c);
        return;
    }
    c->next = clients;
    clients = c;
    nclients++;
    __atomic_store_n(&clients_now, (uint64_t)nclients, __ATOMIC_RELAXED);
    if (!running) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        running = pthread_create(&t, &attr, watch_thread, NULL) == 0;
        pthread_attr_destroy(&attr);
        if (!running)
            dx_log(DX_ERROR, "/api/v1/watch: cannot start the watch thread");
    }
    pthread_mutex_unlock(&clients_lock);
    r->content_type = "text/event-stream";
    r->stream = c->stream; /* the server takes a reference of its own */
}

static void self_metrics(struct dx_buf *b)
{
    dx_prom_self_gauge(b, "dynobs_exporter_watch_clients", "Clients of /api/v1/watch",
                       __atomic_load_n(&clients_now, __ATOMIC_RELAXED));
    dx_prom_self_counter(b, "dynobs_exporter_watch_events_total",
                         "Events queued for clients of /api/v1/watch",
                         __atomic_load_n(&events_sent, __ATOMIC_RELAXED));
    dx_prom_self_counter(b, "dynobs_exporter_watch_events_dropped_total",
                         "Events of /api/v1/watch dropped because their client's queue was full",
                         __atomic_load_n(&events_dropped, __ATOMIC_RELAXED));
}

int dx_watch_register(void)
{
    if (dx_prometheus_self(self_metrics) < 0)
        return -1;
    return dx_httpd_route("/api/v1/watch", watch_route, NULL, 4096);
}
