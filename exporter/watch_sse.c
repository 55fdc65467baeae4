/*
 * Locks, in the order they are taken: `clients_lock` (the client list),
 * the segments' lock (the store: segments.h), then a client's own lock
 * (its queue). The server's thread reads a queue under the stream's lock
 * then the client's (http_stream.h), so a client is woken only once its
 * lock is let go. /metrics reads this part's counters as atomics, without
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

struct seen {
    const struct dx_series *s;
    double value;
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
    uint64_t last_put_ns; /* watch thread only */
    pthread_mutex_t lock; /* the queue and dropped */
    size_t off, len;      /* the queue: bytes [off, off + len) of buf */
    uint64_t dropped;
    int woken; /* bytes were queued this tick: wake the stream */
    char buf[DX_WATCH_QUEUE_BYTES];
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
    pthread_mutex_lock(&c->lock);
    if (c->len + n > sizeof c->buf) {
        c->dropped += event;
        pthread_mutex_unlock(&c->lock);
        if (event)
            __atomic_add_fetch(&events_dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    if (c->off + c->len + n > sizeof c->buf) {
        memmove(c->buf, c->buf + c->off, c->len);
        c->off = 0;
    }
    memcpy(c->buf + c->off + c->len, text, n);
    c->len += n;
    c->woken = 1;
    pthread_mutex_unlock(&c->lock);
    if (event)
        __atomic_add_fetch(&events_sent, 1, __ATOMIC_RELAXED);
}

/* The server's thread takes what is queued (http_stream.h). */
static long take(void *arg, char *out, size_t max)
{
    struct client *c = arg;
    pthread_mutex_lock(&c->lock);
    size_t n = c->len < max ? c->len : max;
    memcpy(out, c->buf + c->off, n);
    c->off += n;
    c->len -= n;
    if (!c->len)
        c->off = 0;
    pthread_mutex_unlock(&c->lock);
    return (long)n;
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
    pthread_mutex_lock(&c->lock);
    uint64_t dropped = c->dropped;
    pthread_mutex_unlock(&c->lock);
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

/* One series of a client in this tick's snapshot. */
static void evaluate(void *arg, const struct dx_series *s)
{
    struct client *c = arg;
    if (s->kind == DYNOBS_METRIC_HISTOGRAM)
        return;
    double v = s->now.value;
    for (int i = 0; i < c->nseen; i++) {
        if (c->seen[i].s != s)
            continue;
        if (crossed(c, c->seen[i].value, v))
            event(c, "crossing", s, c->seen[i].value, v);
        c->seen[i].value = v;
        return;
    }
    if (c->nseen == DX_WATCH_MAX_SERIES)
        return;
    c->seen[c->nseen++] = (struct seen){s, v};
    event(c, "series", s, NAN, v);
}

static void free_client(struct client *c)
{
    dx_http_stream_release(c->stream);
    dx_store_query_free(&c->q);
    pthread_mutex_destroy(&c->lock);
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

static void tick(void)
{
    dx_segments_lock();
    dx_segments_snapshot();
    for (struct client *c = clients; c; c = c->next)
        dx_store_query_series(&c->q, evaluate, c);
    dx_segments_unlock();
    uint64_t now = dynobs__mono_ns();
    for (struct client *c = clients; c; c = c->next) {
        if (now - c->last_put_ns >= DX_WATCH_KEEPALIVE_MS * 1000000ull) {
            put(c, ": keepalive\n\n", 13, 0);
        }
        pthread_mutex_lock(&c->lock);
        int wake = c->woken;
        c->woken = 0;
        pthread_mutex_unlock(&c->lock);
        if (wake) {
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
    const char *name = dx_httpd_arg(r, "name"), *labels = dx_httpd_arg(r, "labels");
    dx_httpd_unknown_arg(r, known, &unknown);
    if (unknown) {
        dx_json_error(r, 400, "unknown parameter (name, labels, above, below and change are known)");
        return;
    }
    if (!name || !dynobs__metric_name_ok(name, strlen(name))) {
        dx_json_error(r, 400, "name: a metric name is required");
        return;
    }
    if (labels && *labels && !dynobs__metric_labels_ok(labels, strlen(labels))) {
        dx_json_error(r, 400, "labels: k=v,k=v expected");
        return;
    }
    struct client *c = calloc(1, sizeof *c);
    if (!c) {
        dx_json_error(r, 503, "out of memory");
        return;
    }
    pthread_mutex_init(&c->lock, NULL);
    snprintf(c->name, sizeof c->name, "%s", name);
    if (parse_condition(r, c, &why) < 0 || dx_store_query_init(&c->q, c->name, labels) < 0 ||
        !(c->stream = dx_http_stream_new(take, c))) {
        dx_json_error(r, why ? 400 : 503, why ? why : "out of memory");
        free_client(c);
        return;
    }
    /* The first bytes go out at once: the client knows it is subscribed. */
    put(c, "retry: 1000\n: watching\n\n", 24, 0);
    c->woken = 0;
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
