/*
 * /metrics with 10 000 series (issue 15): the exporter's render alone,
 * its store snapshot alone, and the HTTP round trip, timed over many
 * scrapes of one live segment.
 *
 *   build/bench/dynobs-metrics-render-bench [--quick] [--mixed] [--scrapes N]
 *                                           [--dump FILE] [--no-http]
 *
 * The series come from the real shim: the program runs itself again
 * under LD_PRELOAD=libdynobs.so with --gen, and that child creates them
 * through the C API, then waits (its segment stays live) until its
 * standard input closes. This process plays the exporter: it attaches
 * the segment, renders as the /metrics route does, and serves the route
 * on loopback for the round trip. The default series are 10 000
 * counters, five metric names of 2 000 label sets each (the default
 * cardinality cap per metric is 2 000: more would fold into one overflow
 * series and shrink the page); --mixed makes them 5 000 counters, 2 000
 * gauges and 2 000 up/down counters with fractional values, and 1 000
 * histograms of the default 15 bounds, whose bucket lines dominate.
 * --dump writes the last page, so that two builds can be compared
 * byte for byte. Under callgrind, `--toggle-collect=render_once` counts
 * the renders after the first (which creates the series), and
 * `--toggle-collect=snapshot_once` the snapshots alone.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "diag.h"
#include "guard.h"
#include "http_server.h"
#include "prometheus.h"
#include "segments.h"

#include "benchutil.h"

#ifndef DYNOBS_LIB_PATH
#define DYNOBS_LIB_PATH "libdynobs.so"
#endif

typedef int (*metric_fn)(const char *name, double value, const char *labels);

static metric_fn api(const char *name)
{
    metric_fn f = (metric_fn)(uintptr_t)dlsym(RTLD_DEFAULT, name);
    if (!f) {
        fprintf(stderr, "gen: %s not found: is libdynobs.so preloaded?\n", name);
        exit(1);
    }
    return f;
}

/* The child: creates the series under the shim, says so, and keeps its
 * segment live until the parent closes our standard input. */
static int gen(int mixed)
{
    metric_fn counter = api("dynobs_counter_add"), gauge = api("dynobs_gauge_set"),
              updown = api("dynobs_updown_add"), hist = api("dynobs_histogram_record");
    static const char *names[] = {"http.server.requests", "http.client.requests", "db.queries",
                                  "cache.lookups", "queue.messages"};
    char labels[96];
    int refused = 0, n = 0;
    for (int m = 0; m < 5; m++) {
        int per = mixed ? 1000 : 2000;
        for (int i = 0; i < per; i++, n++) {
            snprintf(labels, sizeof labels, "route=/api/v1/item/%d,method=GET", i);
            refused += counter(names[m], 1 + i % 7, labels) != 0;
        }
    }
    if (mixed) {
        for (int i = 0; i < 2000; i++, n += 2) {
            snprintf(labels, sizeof labels, "pool=p%d,host=db-%d.internal", i, i % 13);
            refused += gauge("pool.utilization", (double)i / 7.0, labels) != 0;
            refused += updown("pool.active", i % 5 == 0 ? -(double)i : i * 0.25, labels) != 0;
        }
        for (int i = 0; i < 1000; i++, n++) {
            snprintf(labels, sizeof labels, "http.route=/api/v1/item/%d,method=GET", i);
            for (int k = 0; k < 1 + i % 11; k++)
                refused += hist("http.server.request.duration", 0.0007 * (k + 1) * (i % 97),
                                labels) != 0;
        }
    }
    printf("series %d refused %d\n", n, refused);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0)
        ;
    return 0;
}

/* Starts the child under the shim; returns its pid and the pipe end
 * whose closing ends it. */
static pid_t spawn_gen(const char *self, const char *dir, int mixed, int *keep_fd)
{
    int in[2], out[2];
    if (pipe(in) < 0 || pipe(out) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        const char *lib = getenv("DYNOBS_BENCH_LIB");
        setenv("LD_PRELOAD", lib ? lib : DYNOBS_LIB_PATH, 1);
        setenv("DYNOBS_SHM_DIR", dir, 1);
        setenv("DYNOBS_METRIC_SLOTS", "16384", 1);
        setenv("OTEL_SERVICE_NAME", "render-bench", 1);
        execl(self, self, "--gen", mixed ? "mixed" : "counters", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[128] = "";
    FILE *f = fdopen(out[0], "r");
    if (!f || !fgets(line, sizeof line, f)) {
        fprintf(stderr, "the series generator failed\n");
        return -1;
    }
    fclose(f);
    fprintf(stderr, "generator: %s", line);
    *keep_fd = in[1];
    return pid;
}

/* What the /metrics route does for one scrape, page freed. Not inlined:
 * callgrind collects this function (--toggle-collect=render_once). */
__attribute__((noinline)) size_t render_once(struct dx_buf *keep)
{
    struct dx_httpd_response r;
    dx_httpd_dispatch("GET", "/metrics", &r);
    size_t n = r.body.len;
    if (keep) {
        dx_buf_free(keep);
        *keep = r.body;
    } else {
        dx_buf_free(&r.body);
    }
    return n;
}

/* The first scrape creates the series: kept out of the collection. */
__attribute__((noinline)) size_t render_first(void)
{
    struct dx_httpd_response r;
    dx_httpd_dispatch("GET", "/metrics", &r);
    size_t n = r.body.len;
    dx_buf_free(&r.body);
    return n;
}

__attribute__((noinline)) void snapshot_once(void)
{
    dx_segments_lock();
    dx_segments_snapshot();
    dx_segments_unlock();
}

/* This process's resident memory (the store's share of it shows as
 * the difference between builds). */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

/* One GET /metrics over a new connection; returns the bytes received
 * (head included), or -1. */
static long http_get(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    static const char req[] =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    static char buf[1 << 16];
    long total = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        total += r;
    close(fd);
    return total;
}

struct stats {
    double median, p10, p90, min;
};

static struct stats summarise(double *v, int n)
{
    struct stats s;
    s.median = bench_median(v, n); /* sorts */
    s.p10 = v[n / 10];
    s.p90 = v[n * 9 / 10];
    s.min = v[0];
    return s;
}

static void print(const char *what, struct stats s)
{
    printf("%-34s median %7.3f ms  p10 %7.3f  p90 %7.3f  min %7.3f\n", what, s.median, s.p10,
           s.p90, s.min);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    int scrapes = 200, mixed = 0, http = 1;
    const char *dump = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gen") && i + 1 < argc)
            return gen(!strcmp(argv[i + 1], "mixed"));
        if (!strcmp(argv[i], "--quick"))
            scrapes = 40;
        else if (!strcmp(argv[i], "--mixed"))
            mixed = 1;
        else if (!strcmp(argv[i], "--no-http"))
            http = 0;
        else if (!strcmp(argv[i], "--scrapes") && i + 1 < argc)
            scrapes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            dump = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--mixed] [--scrapes N] [--dump FILE] "
                            "[--no-http]\n", argv[0]);
            return 2;
        }
    }
    if (scrapes < 1)
        scrapes = 1;
    signal(SIGPIPE, SIG_IGN);
    dx_log_init("warn");
    dx_guard_install();
    char dir[] = "/tmp/dynobs-render-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    int keep_fd = -1;
    /* argv[0], not /proc/self/exe: under valgrind that names valgrind. */
    char self[4096];
    if (!realpath(argv[0], self)) {
        perror(argv[0]);
        return 1;
    }
    pid_t child = spawn_gen(self, dir, mixed, &keep_fd);
    if (child < 0) {
        remove_dir(dir);
        return 1;
    }
    dx_segments_init(dir, "bench-host");
    dx_segments_scan();
    if (dx_segments_count() != 1 || dx_prometheus_register() < 0) {
        fprintf(stderr, "no segment attached\n");
        return 1;
    }
    double *t = malloc(sizeof(double) * (size_t)scrapes);
    uint64_t t0 = bench_now_ns();
    size_t bytes = render_first();
    printf("first render (series created): %.3f ms, %zu bytes; RSS %ld KiB\n",
           (double)(bench_now_ns() - t0) / 1e6, bytes, rss_kib());
    for (int i = 0; i < scrapes; i++) {
        t0 = bench_now_ns();
        snapshot_once();
        t[i] = (double)(bench_now_ns() - t0) / 1e6;
    }
    print("store snapshot alone", summarise(t, scrapes));
    struct dx_buf page = {0};
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    for (int i = 0; i < scrapes; i++) {
        t0 = bench_now_ns();
        bytes = render_once(i == scrapes - 1 ? &page : NULL);
        t[i] = (double)(bench_now_ns() - t0) / 1e6;
    }
    getrusage(RUSAGE_SELF, &ru1);
    printf("page: %zu bytes; minor page faults per render: %.1f\n", bytes,
           (double)(ru1.ru_minflt - ru0.ru_minflt) / scrapes);
    print("render (snapshot + text)", summarise(t, scrapes));
    int port = http ? free_port() : -1;
    if (port > 0 && dx_httpd_route("/healthz", dx_httpd_ok, NULL, 4096) == 0 &&
        dx_httpd_start("127.0.0.1", port) == 0) {
        long got = http_get(port); /* warm-up */
        for (int i = 0; i < scrapes; i++) {
            t0 = bench_now_ns();
            got = http_get(port);
            t[i] = (double)(bench_now_ns() - t0) / 1e6;
        }
        printf("HTTP response: %ld bytes\n", got);
        print("HTTP round trip (new connection)", summarise(t, scrapes));
        dx_httpd_stop();
    }
    if (dump && page.p) {
        FILE *f = fopen(dump, "w");
        if (f) {
            fwrite(page.p, 1, page.len, f);
            fclose(f);
        }
    }
    dx_buf_free(&page);
    free(t);
    close(keep_fd);
    waitpid(child, NULL, 0);
    dx_segments_close_all();
    remove_dir(dir);
    return 0;
}
