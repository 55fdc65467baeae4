/*
 * dynobs-exporter: drains every dynobs segment on the machine to
 * Prometheus (/metrics) and OTLP/HTTP. This file only wires the parts
 * together; each part keeps its own state behind its own header. Three
 * threads, and a fourth while a client watches a metric (watch_sse.h):
 *   main      drain_loop: segments are found, drained into the queue
 *             and reaped; metric exports are scheduled
 *   sender    sender: batches and metrics leave through otlp_encode and
 *             otlp_http (or console)
 *   server    http_server (libmicrohttpd's thread): the routes, of which
 *             prometheus registers /metrics, stats_api /api/v1/stats and
 *             watch_sse /api/v1/watch
 * Settings all come from xconfig; the exporter's own counters from stats.
 *
 *   dynobs-exporter [--help]        configuration: OTEL_* and DYNOBS_* variables
 *   dynobs-exporter --check-rules FILE   validates a rules file, exits 0 or 1
 *   dynobs-exporter --ebpf [--pid PID]... [--exe PATH]...   also traces
 *             processes through eBPF (ebpf_source.h)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diag.h"
#include "dir_lock.h"
#include "drain_loop.h"
#include "ebpf_source.h"
#include "guard.h"
#include "http_server.h"
#include "metric_filter.h"
#include "otlp_http.h"
#include "prometheus.h"
#include "queue.h"
#include "rules.h"
#include "rules_publish.h"
#include "segments.h"
#include "sender.h"
#include "shed_preload.h"
#include "stats_api.h"
#include "store.h"
#include "tail.h"
#include "ui_api.h"
#include "watch_sse.h"
#include "xconfig.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* A rules table came into force (rules_publish.h): the settings of the
 * whole file that exporter parts keep. On the main thread. */
static void on_rules(const struct dynobs_rules *r)
{
    dx_segments_lock(); /* the store's lock */
    dx_store_set_cardinality_limit(r->hdr->cardinality_limit);
    dx_segments_unlock();
    dx_tail_configure(r->hdr->tail_decision_wait_ms, r->hdr->tail_num_traces);
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
           "  0, the default, never), DYNOBS_RULES (the rules file, reloaded when it changes;\n"
           "  rules/README.md).\n"
           "A live view of the services and their recent and slowest traces is at /ui/, where\n"
           "/metrics is served.\n"
           "One exporter runs per directory: it locks DIR/.exporter.lock, and a second one\n"
           "exits with status 3.\n\n"
           "usage: dynobs-exporter --ebpf [--pid PID]... [--exe PATH]...\n\n"
           "Also traces, through eBPF uprobes and socket tracepoints, processes that cannot be\n"
           "preloaded: the processes named by --pid, and every process of an executable named by\n"
           "--exe (those running and those started later). Needs root, or CAP_BPF and CAP_PERFMON;\n"
           "without them the exporter says why and carries on without eBPF.\n\n"
           "usage: dynobs-exporter --check-rules FILE\n\n"
           "Compiles a rules file (rules/README.md) without running: prints\n"
           "\"FILE: ok (N routes, N samplers, N filters, N redactions)\" and exits 0, or\n"
           "prints FILE:LINE:COLUMN: KEY.PATH: MESSAGE on stderr and exits 1.\n");
}

static int check_rules(const char *file)
{
    void *table;
    size_t len;
    struct dynobs_rules_error err;
    struct dynobs_rules r;
    if (dynobs__rules_compile_file(file, &table, &len, &err) < 0) {
        char msg[1024];
        dynobs__rules_error_format(&err, msg, sizeof msg);
        fprintf(stderr, "%s\n", msg);
        return 1;
    }
    int rc = dynobs__rules_open(&r, table, len);
    if (rc == 0)
        printf("%s: ok (%u routes, %u samplers, %u filters, %u redactions)\n", file, r.nroutes,
               r.nsamplers, r.nfilters, r.nredacts);
    else
        fprintf(stderr, "%s: the compiled table does not validate (a bug)\n", file);
    free(table);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage();
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--check-rules")) {
        if (argc != 3) {
            fprintf(stderr, "dynobs-exporter: --check-rules FILE (see --help)\n");
            return 2;
        }
        return check_rules(argv[2]);
    }
    if (dx_ebpf_args(argc, argv) < 0)
        return 2;
    dx_shed_preload(argv);
    static struct dx_config cfg; /* large: not on the stack */
    if (dx_config_load(&cfg) < 0) {
        fprintf(stderr, "dynobs-exporter: %s\n", cfg.error);
        return 2;
    }
    dx_log_init(cfg.log_level);
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0)
        strcpy(host, "localhost");
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    dx_guard_install();
    const struct dx_http_cfg http = {
        .headers = cfg.headers,
        .gzip = cfg.gzip,
        .timeout_ms = cfg.timeout_ms,
        .retry_initial_ms = cfg.retry_initial_ms,
        .retry_max_ms = cfg.retry_max_ms,
        .retry_total_ms = cfg.retry_total_ms,
    };
    if (dx_http_init(&http) < 0) {
        dx_log(DX_ERROR, "libcurl initialisation failed");
        return 1;
    }
    dx_queue_configure(cfg.bsp_batch, cfg.bsp_queue, cfg.bsp_delay_ms);
    if (cfg.traces.sink == DX_SINK_NONE)
        dx_queue_discard(DX_TRACES);
    if (cfg.logs.sink == DX_SINK_NONE)
        dx_queue_discard(DX_LOGS);
    dx_segments_init(cfg.shm_dir, host);
    if (dx_dir_lock_take(cfg.shm_dir) < 0)
        return 3;
    /* Parts that act on rules listen before the first table comes into
     * force: the file's settings, and the metric filters that drop whole
     * series here. */
    if (dx_rules_listen(on_rules) < 0 || dx_rules_listen(dx_metric_filter_rules) < 0 ||
        dx_prometheus_self(dx_metric_filter_prom) < 0) {
        dx_log(DX_ERROR, "too many parts listen for rules");
        return 1;
    }
    /* Rules before the first scan, so that every segment attached gets the
     * generation in force at its first drain. */
    dx_rules_init(cfg.shm_dir, cfg.rules_path);
    dx_segments_scan();
    dx_ebpf_begin(cfg.shm_dir);
    /* /metrics first: a request for an unknown path is pointed to it. */
    if (dx_prometheus_register() < 0 || dx_httpd_route("/healthz", dx_httpd_ok, NULL, 4096) < 0 ||
        dx_stats_api_register() < 0 || dx_watch_register() < 0 || dx_ui_register() < 0 ||
        dx_httpd_start(cfg.prom_host, cfg.prom_port) < 0)
        return 1;
    if (dx_sender_start(&cfg) < 0) {
        dx_log(DX_ERROR, "cannot start the sender thread");
        return 1;
    }
    dx_log(DX_INFO, "draining %s; traces to %s, metrics to %s every %llu ms", cfg.shm_dir,
           cfg.traces.sink == DX_SINK_OTLP      ? cfg.traces.endpoint
           : cfg.traces.sink == DX_SINK_CONSOLE ? "console"
                                                : "nowhere",
           cfg.metrics.sink == DX_SINK_OTLP      ? cfg.metrics.endpoint
           : cfg.metrics.sink == DX_SINK_CONSOLE ? "console"
                                                 : "nowhere",
           (unsigned long long)cfg.metric_interval_ms);

    dx_drain_loop_run(&cfg, &stop_requested);

    dx_log(DX_INFO, "stopping: draining what is left");
    dx_ebpf_end();
    dx_drain_loop_finish();
    dx_sender_finish(cfg.shutdown_ms);
    dx_httpd_stop();
    dx_segments_close_all();
    dx_http_cleanup();
    return 0;
}
