/*
 * A concurrency stress of the library for ThreadSanitizer (Criterion does
 * not start under TSan, so this is a plain program; scripts/tsan.sh runs
 * it). Four threads start nested spans with attributes and events, end
 * some of their spans on another thread, update shared counters and
 * histograms and write logs; a consumer thread then drains the segment's
 * ring and reads its metric table. The data race detector watches the
 * ring (reservation and commit), the metric table (lock-free
 * registration and atomic updates), the thread context stacks and the
 * span pool's cross-thread release. Meanwhile four keep-alive HTTP/1
 * connections are served by four threads of the same process (the shim's
 * socket interposers, the server spans and their span templates, which
 * the servers define and refer to concurrently in the segment's table).
 * At the end the accounting must be exact: every span is either read by
 * the consumer or counted as dropped, every served span's url.path is the
 * one its name says, and the counters hold the exact sum.
 *
 *   dynobs-tsan-stress   (exit 0 when the accounting holds)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dynobs/dynobs.h"
#include "reader.h"
#include "record.h"

#define THREADS 4
#define ROUNDS 3000
#define CONNS 4
#define SERVED 400 /* requests per connection */

/* Spans handed from their thread to the next one, which ends them. */
static dynobs_span *handoff[THREADS][ROUNDS];
static int handed[THREADS];
static pthread_mutex_t hand_lock = PTHREAD_MUTEX_INITIALIZER;
static int producers_done;
static int finished[THREADS]; /* a producer has left its loop */
static unsigned long read_spans, read_logs;
static char seg_path[1024];

static void *producer(void *arg)
{
    int id = (int)(long)arg;
    char labels[32];
    snprintf(labels, sizeof labels, "worker=%d", id % 2);
    for (int i = 0; i < ROUNDS; i++) {
        /* The outer spans handed over are not this thread's context (a
         * span that is current stays current until it ends). */
        dynobs_span *outer = dynobs_span_start_ex("outer", DYNOBS_SPAN_KIND_SERVER, NULL, NULL,
                                                  i % 2 ? DYNOBS_SPAN_NO_CONTEXT : 0);
        dynobs_span_set_int(outer, "round", i);
        dynobs_span *inner = dynobs_span_start("inner", DYNOBS_SPAN_KIND_INTERNAL);
        dynobs_span_set_str(inner, "k", "v");
        dynobs_span_add_event(inner, "e");
        dynobs_counter_add("stress.ops", 1, labels);
        dynobs_histogram_record("stress.latency", (double)(i % 100) / 1000.0, NULL);
        /* Handles: every thread asks for the same one (the index), and
         * the first updates race to resolve it. */
        dynobs_counter_add_h(dynobs_counter_get("stress.handle", "via=h"), 1);
        if (i % 50 == 0)
            dynobs_log(DYNOBS_SEVERITY_INFO, "round %d of %d", i, id);
        dynobs_span_end(inner);
        /* Every other outer span is ended by the next thread. */
        if (i % 2) {
            /* Keep what waits for the next thread under the span pool's
             * size (32 per thread): beyond it, starts are refused. */
            int to = (id + 1) % THREADS;
            for (int spins = 0; spins < 100000; spins++) {
                pthread_mutex_lock(&hand_lock);
                int waiting = handed[to];
                pthread_mutex_unlock(&hand_lock);
                if (waiting < 8 || __atomic_load_n(&finished[to], __ATOMIC_ACQUIRE))
                    break;
                sched_yield();
            }
            pthread_mutex_lock(&hand_lock);
            handoff[to][handed[to]++] = outer;
            pthread_mutex_unlock(&hand_lock);
        } else {
            dynobs_span_end(outer);
        }
        pthread_mutex_lock(&hand_lock);
        int n = handed[id];
        dynobs_span *mine[ROUNDS];
        memcpy(mine, handoff[id], sizeof mine[0] * (size_t)n);
        handed[id] = 0;
        pthread_mutex_unlock(&hand_lock);
        for (int k = 0; k < n; k++)
            dynobs_span_end(mine[k]);
    }
    __atomic_store_n(&finished[id], 1, __ATOMIC_RELEASE);
    return NULL;
}

/* The HTTP/1 part: a listening socket, CONNS server threads that each
 * take one connection and answer SERVED requests on it, and CONNS
 * clients, each asking for /p0, /p1 or /p2, twice in a row each time,
 * so that bodies repeat on every connection and the same bodies on all
 * of them. */
static int listener;
static struct sockaddr_in listen_addr;

static int read_head(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n < 4 || memcmp(buf + n - 4, "\r\n\r\n", 4)) {
        if (n == cap)
            return -1;
        ssize_t r = recv(fd, buf + n, 1, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
    }
    return (int)n;
}

static void *server(void *arg)
{
    (void)arg;
    int fd = accept(listener, NULL, NULL);
    if (fd < 0)
        exit(3);
    char buf[512];
    for (int i = 0; i < SERVED; i++) {
        if (read_head(fd, buf, sizeof buf) < 0)
            exit(3);
        static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (send(fd, resp, sizeof resp - 1, 0) != (ssize_t)(sizeof resp - 1))
            exit(3);
    }
    close(fd);
    return NULL;
}

static void *client(void *arg)
{
    int id = (int)(long)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0)
        exit(3);
    char req[128], buf[512];
    for (int i = 0; i < SERVED; i++) {
        int n = snprintf(req, sizeof req, "GET /p%d HTTP/1.1\r\nHost: stress\r\n\r\n",
                         (i / 2 + id) % 3);
        if (send(fd, req, (size_t)n, 0) != n || read_head(fd, buf, sizeof buf) < 0 ||
            recv(fd, buf, 2, MSG_WAITALL) != 2)
            exit(3);
    }
    close(fd);
    return NULL;
}

/* A served span's url.path must be the path its name ("GET /pN") says. */
static unsigned long served_spans;
static int served_span_ok(const struct dynobs_span_view *v)
{
    if (v->f.kind != DYNOBS_SPAN_KIND_SERVER || v->f.name_len < 6 || memcmp(v->name, "GET /p", 6))
        return 1;
    served_spans++;
    size_t off = 0;
    struct dynobs_item it;
    while (dynobs__item_next(v->items, v->items_len, &off, &it) == 1)
        if (it.key_len == 8 && !memcmp(it.key, "url.path", 8))
            return it.str_len + 4 == v->f.name_len && !memcmp(it.str, v->name + 4, it.str_len);
    return 0;
}

static int find_segment(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".seg") && e->d_name[0] != '.') {
            snprintf(seg_path, sizeof seg_path, "%s/%s", dir, e->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

static void *consumer(void *arg)
{
    const char *dir = arg;
    while (!find_segment(dir))
        usleep(1000);
    static struct dynobs_reader r;
    if (dynobs__reader_open(&r, seg_path, DYNOBS_READER_CONSUME) < 0) {
        fprintf(stderr, "cannot open %s\n", seg_path);
        exit(2);
    }
    /* Nothing is read before the producers are done: a shard whose
     * records are read goes back to its start rather than grow (ring.h),
     * and ThreadSanitizer, which cannot see the reads (another mapping),
     * would take the reuse for a race. The ring (32 MiB) holds them all. */
    while (!__atomic_load_n(&producers_done, __ATOMIC_ACQUIRE))
        usleep(1000);
    for (;;) {
        int done = __atomic_load_n(&producers_done, __ATOMIC_ACQUIRE);
        const struct dynobs_rec_hdr *h;
        int got = 0;
        while (dynobs__reader_next(&r, &h) == 1) {
            got = 1;
            struct dynobs_span_view v;
            struct dynobs_log_view lv;
            if (h->type == DYNOBS_REC_SPAN && dynobs__span_decode(h, h->len, &v) == 0) {
                read_spans++;
                if (!served_span_ok(&v)) {
                    fprintf(stderr, "a served span whose url.path is not its name's\n");
                    exit(2);
                }
            }
            else if (h->type == DYNOBS_REC_LOG && dynobs__log_decode(h, h->len, &lv) == 0)
                read_logs++;
            else {
                fprintf(stderr, "malformed record\n");
                exit(2);
            }
        }
        for (uint32_t i = 0; i < r.hdr.metric_slots; i++) {
            struct dynobs_metric_view m;
            (void)dynobs__reader_metric(&r, i, &m);
        }
        if (done && !got)
            break;
        if (!got)
            usleep(200);
    }
    uint64_t dropped = dynobs__reader_counter(&r, DYNOBS_CTR_RECORDS_DROPPED);
    uint64_t written = dynobs__reader_counter(&r, DYNOBS_CTR_RECORDS_WRITTEN);
    uint64_t refused = dynobs__reader_counter(&r, DYNOBS_CTR_SPANS_REFUSED);
    /* the served spans went through templates, not only whole */
    uint64_t templates = __atomic_load_n(&r.live->tmpl_next, __ATOMIC_RELAXED);
    printf("counters: written %llu, dropped %llu, spans refused %llu, corrupt %llu, "
           "abandoned %llu, unresolved %llu; served spans read %lu, templates %llu\n",
           (unsigned long long)written, (unsigned long long)dropped,
           (unsigned long long)refused, (unsigned long long)r.corrupt,
           (unsigned long long)r.abandoned, (unsigned long long)r.unresolved, served_spans,
           (unsigned long long)templates);
    /* (each request is a client span of its client thread too) */
    uint64_t want_spans = (uint64_t)THREADS * ROUNDS * 2 + 2ull * CONNS * SERVED,
             want_logs = THREADS * (ROUNDS / 50);
    double ops = 0, handled = 0;
    uint64_t hist = 0;
    for (uint32_t i = 0; i < r.hdr.metric_slots; i++) {
        struct dynobs_metric_view m;
        if (dynobs__reader_metric(&r, i, &m) != 0)
            continue;
        if (!strcmp(m.name, "stress.ops"))
            ops += m.value;
        if (!strcmp(m.name, "stress.latency"))
            hist += m.count;
        if (!strcmp(m.name, "stress.handle"))
            handled += m.value;
    }
    printf("spans read %lu, logs read %lu, records dropped %llu (of %llu); ops %.0f, "
           "histogram count %llu, through a handle %.0f\n",
           read_spans, read_logs, (unsigned long long)dropped,
           (unsigned long long)(want_spans + want_logs), ops, (unsigned long long)hist, handled);
    int ok = read_spans + read_logs + dropped + refused == want_spans + want_logs &&
             ops == (double)THREADS * ROUNDS && hist == (uint64_t)THREADS * ROUNDS &&
             handled == (double)THREADS * ROUNDS &&
             served_spans + refused >= (uint64_t)CONNS * SERVED && templates > 0 && r.corrupt == 0 &&
             r.unresolved == 0;
    dynobs__reader_close(&r);
    return (void *)(long)ok;
}

int main(void)
{
    if (!getenv("DYNOBS_SHM_DIR")) {
        /* The library reads its settings when it loads: run again with them. */
        char dir[] = "/tmp/dynobs-tsan-XXXXXX";
        if (!mkdtemp(dir))
            return 2;
        char shm[600];
        snprintf(shm, sizeof shm, "%s/shm", dir);
        setenv("DYNOBS_SHM_DIR", shm, 1);
        /* Large enough never to wrap: the consumer reads through its own
         * mapping of the segment (as the exporter, another process, does),
         * and ThreadSanitizer cannot see that two addresses are one
         * memory, so reuse of ring space after consumption would look
         * like a race. Producer against producer is what is checked. */
        setenv("DYNOBS_RING_BYTES", "32M", 1);
        extern char **environ;
        char *argv[] = {"/proc/self/exe", NULL};
        execve("/proc/self/exe", argv, environ);
        return 2;
    }
    if (!dynobs_enabled())
        return 2;
    /* The segment is made at the first record or update; threads that
     * come while it is being made wait a bounded 20 ms and then count
     * their record as lost (by design). Under TSan that can take longer,
     * so it is made here, before the threads start: the accounting below
     * is about their concurrency, not the start-up. */
    dynobs_gauge_set("stress.started", 1, NULL);
    listener = socket(AF_INET, SOCK_STREAM, 0);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof listen_addr;
    if (listener < 0 || bind(listener, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0 ||
        listen(listener, CONNS) < 0 ||
        getsockname(listener, (struct sockaddr *)&listen_addr, &al) < 0)
        return 3;
    pthread_t c, p[THREADS], sv[CONNS], cl[CONNS];
    pthread_create(&c, NULL, consumer, (void *)getenv("DYNOBS_SHM_DIR"));
    for (long i = 0; i < THREADS; i++)
        pthread_create(&p[i], NULL, producer, (void *)i);
    for (long i = 0; i < CONNS; i++) {
        pthread_create(&sv[i], NULL, server, NULL);
        pthread_create(&cl[i], NULL, client, (void *)i);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(p[i], NULL);
    for (int i = 0; i < CONNS; i++) {
        pthread_join(cl[i], NULL);
        pthread_join(sv[i], NULL);
    }
    close(listener);
    /* Whatever is still handed over belongs to no thread now: end it. */
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < handed[i]; k++)
            dynobs_span_end(handoff[i][k]);
    __atomic_store_n(&producers_done, 1, __ATOMIC_RELEASE);
    void *ok;
    pthread_join(c, &ok);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && rmdir \"$(dirname '%s')\"", getenv("DYNOBS_SHM_DIR"),
             getenv("DYNOBS_SHM_DIR"));
    if (system(cmd) != 0)
        return 2;
    return ok ? 0 : 1;
}
