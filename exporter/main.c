/*
 * dynobs-exporter: drains every dynobs segment on the machine to
 * Prometheus (/metrics) and OTLP/HTTP.
 *
 *   dynobs-exporter [--help]        configuration: OTEL_* and DYNOBS_* variables
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "exporter.h"
#include "guard.h"
#include "diag.h"
#include "otlp_encode.h"
#include "otlp_http.h"
#include "prometheus.h"
#include "store.h"
#include "util.h"

struct dx_state dx = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .qlock = PTHREAD_MUTEX_INITIALIZER,
    .qcond = PTHREAD_COND_INITIALIZER,
};

static volatile sig_atomic_t stop_requested;
static volatile int give_up; /* the sender stops retrying at shutdown */

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The exporter must never trace itself: if the shim was preloaded into
 * it, start again without it (and with the SDK disabled, so that nothing
 * inherited can turn it back on). */
static void shed_preload(char **argv)
{
    const char *pre = getenv("LD_PRELOAD");
    if (!pre || !strstr(pre, "libdynobs"))
        return;
    char *kept = calloc(1, strlen(pre) + 1), *copy = strdup(pre);
    if (!kept || !copy)
        return;
    for (char *save, *p = strtok_r(copy, ": ", &save); p; p = strtok_r(NULL, ": ", &save)) {
        if (strstr(p, "libdynobs"))
            continue;
        if (*kept)
            strcat(kept, ":");
        strcat(kept, p);
    }
    if (*kept)
        setenv("LD_PRELOAD", kept, 1);
    else
        unsetenv("LD_PRELOAD");
    setenv("OTEL_SDK_DISABLED", "true", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: the shim stays loaded but disabled from here on. */
}

static void export_batch(struct dx_batch *b)
{
    int sig = b->kind == DX_TRACES ? 0 : 1;
    const struct dx_signal_cfg *sc = b->kind == DX_TRACES ? &dx.cfg.traces : &dx.cfg.logs;
    long items = 0;
    int ok = 1;
    if (sc->sink == DX_SINK_CONSOLE) {
        items = dx_console_batch(b);
    } else if (sc->sink == DX_SINK_OTLP) {
        uint8_t *body = NULL;
        size_t len = 0;
        items = dx_encode_batch(b, &body, &len);
        if (items < 0) {
            dx_log(DX_ERROR, "cannot encode a batch of %u records (out of memory)", b->count);
            ok = 0;
            items = b->count;
        } else if (items > 0) {
            ok = dx_http_send(sig, sc->endpoint, body, len, &give_up) == DX_SENT;
        }
        free(body);
    }
    pthread_mutex_lock(&dx.lock);
    if (ok)
        dx.stats.exported[sig] += (uint64_t)items;
    else
        dx.stats.export_dropped[sig] += (uint64_t)(items > 0 ? items : b->count);
    pthread_mutex_unlock(&dx.lock);
}

static void export_metrics(void)
{
    if (dx.cfg.metrics.sink == DX_SINK_NONE)
        return;
    uint8_t *body = NULL;
    size_t len = 0;
    long points;
    pthread_mutex_lock(&dx.lock);
    dx_store_snapshot();
    if (dx.cfg.metrics.sink == DX_SINK_CONSOLE)
        points = dx_console_metrics();
    else
        points = dx_encode_metrics(dynobs__now_ns(), &body, &len);
    pthread_mutex_unlock(&dx.lock);
    if (dx.cfg.metrics.sink == DX_SINK_OTLP && points > 0) {
        int ok = dx_http_send(2, dx.cfg.metrics.endpoint, body, len, &give_up) == DX_SENT;
        pthread_mutex_lock(&dx.lock);
        if (ok)
            dx.stats.exported[2] += (uint64_t)points;
        else
            dx.stats.export_dropped[2] += (uint64_t)points;
        pthread_mutex_unlock(&dx.lock);
    }
    free(body);
}

static void *sender(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&dx.qlock);
        dx.sender_busy = 0;
        while (!dx.qhead && !dx.metrics_due && !dx.stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&dx.qcond, &dx.qlock, &ts);
        }
        struct dx_batch *b = dx_queue_take();
        int metrics = dx.metrics_due;
        dx.metrics_due = 0;
        int stopping = dx.stopping;
        dx.sender_busy = b || metrics;
        pthread_mutex_unlock(&dx.qlock);
        if (b) {
            export_batch(b);
            dx_batch_free(b);
        }
        if (metrics)
            export_metrics();
        if (!b && !metrics && stopping)
            break;
    }
    return NULL;
}

/* One exporter per segment directory: it holds an exclusive lock on
 * DIR/.exporter.lock (with its pid inside) for as long as it runs, which
 * dynobs-run tests to decide whether to start one. Returns the fd, or -1
 * after saying who holds it. */
static int take_dir_lock(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/.exporter.lock", dx.cfg.shm_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "dynobs-exporter: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        fprintf(stderr, "dynobs-exporter: another exporter (pid %s) already drains %s\n",
                pid[0] ? pid : "?", dx.cfg.shm_dir);
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        dx_log(DX_WARN, "cannot write the pid into %s", path);
    return fd;
}

static void usage(void)
{
    printf("usage: dynobs-exporter\n\n"
           "Drains every dynobs segment in $DYNOBS_SHM_DIR (default /dev/shm/dynobs) to\n"
           "Prometheus and OTLP/HTTP. Configuration comes from the environment:\n"
           "  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT,\n"
           "  OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_EXPORTER_OTLP_COMPRESSION,\n"
           "  OTEL_{TRACES,METRICS,LOGS}_EXPORTER (otlp|console|none), OTEL_BSP_SCHEDULE_DELAY,\n"
           "  OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_METRIC_EXPORT_INTERVAL,\n"
           "  OTEL_EXPORTER_PROMETHEUS_HOST, OTEL_EXPORTER_PROMETHEUS_PORT (0 disables),\n"
           "  OTEL_LOG_LEVEL, DYNOBS_DRAIN_INTERVAL, DYNOBS_RESCAN_INTERVAL (ms),\n"
           "  DYNOBS_EXPORTER_IDLE_EXIT (s: exit once no segment has been attached for that long;\n"
           "  0, the default, never).\n"
           "One exporter runs per directory: it locks DIR/.exporter.lock, and a second one\n"
           "exits with status 3.\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage();
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "dynobs-exporter: unexpected argument '%s' (see --help)\n", argv[1]);
        return 2;
    }
    shed_preload(argv);
    if (dx_config_load(&dx.cfg) < 0) {
        fprintf(stderr, "dynobs-exporter: %s\n", dx.cfg.error);
        return 2;
    }
    dx_log_init(dx.cfg.log_level);
    if (gethostname(dx.host, sizeof dx.host - 1) < 0)
        strcpy(dx.host, "localhost");
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    dx_guard_install();
    if (dx_http_init() < 0) {
        dx_log(DX_ERROR, "libcurl initialisation failed");
        return 1;
    }
    dx_segments_init();
    if (take_dir_lock() < 0)
        return 3;
    dx_segments_scan();
    if (dx_httpd_start(dx.cfg.prom_host, dx.cfg.prom_port) < 0)
        return 1;
    pthread_t th;
    if (pthread_create(&th, NULL, sender, NULL) != 0) {
        dx_log(DX_ERROR, "cannot start the sender thread");
        return 1;
    }
    dx_log(DX_INFO, "draining %s; traces to %s, metrics to %s every %llu ms", dx.cfg.shm_dir,
           dx.cfg.traces.sink == DX_SINK_OTLP ? dx.cfg.traces.endpoint
                                               : dx.cfg.traces.sink == DX_SINK_CONSOLE ? "console"
                                                                                       : "nowhere",
           dx.cfg.metrics.sink == DX_SINK_OTLP ? dx.cfg.metrics.endpoint
                                                : dx.cfg.metrics.sink == DX_SINK_CONSOLE ? "console"
                                                                                         : "nowhere",
           (unsigned long long)dx.cfg.metric_interval_ms);

    uint64_t last_scan = dynobs__mono_ns(), last_reap = 0, last_metrics = dynobs__mono_ns();
    uint64_t last_busy = dynobs__mono_ns();
    struct pollfd pfd = {.fd = dx_segments_inotify_fd(), .events = POLLIN};
    size_t moved = 0;
    while (!stop_requested) {
        /* Under load, come back at once: a busy application fills its
         * ring shard in a few milliseconds, and waiting the full interval
         * would make it drop. Idle, sleep the configured interval. */
        int wait_ms = moved >= 256 ? 1 : (int)dx.cfg.drain_ms;
        poll(&pfd, pfd.fd >= 0 ? 1 : 0, wait_ms);
        dx_segments_inotify_drain();
        uint64_t now = dynobs__mono_ns();
        if (now - last_scan >= dx.cfg.rescan_ms * 1000000ull) {
            dx_segments_scan();
            last_scan = now;
        }
        moved = dx_segments_drain();
        if (now - last_reap >= 200 * 1000000ull || dx_segments_any_broken()) {
            dx_segments_reap();
            last_reap = now;
        }
        dx_queue_flush_due(0);
        if (dx.nsegments > 0)
            last_busy = now;
        else if (dx.cfg.idle_exit_s && now - last_busy >= dx.cfg.idle_exit_s * 1000000000ull) {
            dx_log(DX_INFO, "no segment for %llu s: exiting",
                   (unsigned long long)dx.cfg.idle_exit_s);
            break;
        }
        if (now - last_metrics >= dx.cfg.metric_interval_ms * 1000000ull) {
            pthread_mutex_lock(&dx.qlock);
            dx.metrics_due = 1;
            pthread_cond_signal(&dx.qcond);
            pthread_mutex_unlock(&dx.qlock);
            last_metrics = now;
        }
    }
    dx_log(DX_INFO, "stopping: draining what is left");
    dx_segments_scan();
    dx_segments_drain();
    dx_segments_reap();
    dx_queue_flush_due(1);
    pthread_mutex_lock(&dx.qlock);
    dx.metrics_due = 1;
    dx.stopping = 1;
    pthread_cond_signal(&dx.qcond);
    pthread_mutex_unlock(&dx.qlock);
    /* Leave the sender DYNOBS_SHUTDOWN_MS (default 5 s) to deliver. */
    const char *sd = getenv("DYNOBS_SHUTDOWN_MS");
    uint64_t deadline = dynobs__mono_ns() + (sd ? strtoull(sd, NULL, 10) : 5000) * 1000000ull;
    for (;;) {
        pthread_mutex_lock(&dx.qlock);
        int idle = !dx.qhead && !dx.sender_busy && !dx.metrics_due;
        pthread_mutex_unlock(&dx.qlock);
        if (idle || dynobs__mono_ns() > deadline)
            break;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    give_up = 1;
    pthread_join(th, NULL);
    dx_httpd_stop();
    dx_segments_close_all();
    dx_http_cleanup();
    return 0;
}
