/*
 * The exporter's configuration, from the OpenTelemetry environment
 * variables (and DYNOBS_* for what they do not cover).
 */
#ifndef DYNOBS_EXPORTER_XCONFIG_H
#define DYNOBS_EXPORTER_XCONFIG_H

#include <stddef.h>
#include <stdint.h>

enum dx_sink { DX_SINK_NONE = 0, DX_SINK_OTLP, DX_SINK_CONSOLE };

struct dx_signal_cfg {
    enum dx_sink sink;
    char endpoint[1024]; /* full URL for OTLP */
};

struct dx_config {
    char shm_dir[512];
    struct dx_signal_cfg traces, metrics, logs;
    char headers[4096];      /* OTEL_EXPORTER_OTLP_HEADERS, "k=v,k=v" */
    uint64_t timeout_ms;     /* OTEL_EXPORTER_OTLP_TIMEOUT (10000) */
    int gzip;                /* OTEL_EXPORTER_OTLP_COMPRESSION=gzip */
    uint64_t bsp_delay_ms;   /* OTEL_BSP_SCHEDULE_DELAY (5000) */
    uint32_t bsp_batch;      /* OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512) */
    uint32_t bsp_queue;      /* OTEL_BSP_MAX_QUEUE_SIZE (2048) */
    uint64_t metric_interval_ms; /* OTEL_METRIC_EXPORT_INTERVAL (60000) */
    char prom_host[256];     /* OTEL_EXPORTER_PROMETHEUS_HOST (127.0.0.1) */
    int prom_port;           /* OTEL_EXPORTER_PROMETHEUS_PORT (9464); 0 = off */
    uint64_t drain_ms;       /* DYNOBS_DRAIN_INTERVAL (50) */
    uint64_t rescan_ms;      /* DYNOBS_RESCAN_INTERVAL (1000) */
    uint64_t idle_exit_s;    /* DYNOBS_EXPORTER_IDLE_EXIT (0: never) */
    uint64_t retry_initial_ms; /* DYNOBS_RETRY_INITIAL_MS (1000): first backoff */
    uint64_t retry_max_ms;   /* DYNOBS_RETRY_MAX_MS (30000): longest backoff */
    uint64_t retry_total_ms; /* DYNOBS_RETRY_TOTAL_MS (300000): give up after */
    uint64_t shutdown_ms;    /* DYNOBS_SHUTDOWN_MS (5000): time to deliver at exit */
    char rules_path[1024];   /* DYNOBS_RULES: the rules file ("" : built-in defaults) */
    char log_level[16];
    char error[512];         /* set when a value is invalid */
};

/* Reads the process environment. Returns 0, or -1 with cfg->error
 * explaining the bad value. */
int dx_config_load(struct dx_config *cfg);

/* The same from any source of variables (tests pass their own): `get`
 * returns a variable's value or NULL. An empty value counts as unset. */
int dx_config_load_from(struct dx_config *cfg, const char *(*get)(const char *name));

#endif
