#include "xconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h" /* DYNOBS_SHM_DIR_DEFAULT, dynobs__parse_size */

/* Where variables come from: getenv, or a test's table. Set for the
 * duration of one load only (loads happen once, at start-up). */
static const char *(*source)(const char *name);

static const char *env(const char *n)
{
    const char *v = source(n);
    return v && *v ? v : NULL;
}

static const char *from_environ(const char *name)
{
    return getenv(name);
}

static int number(struct dx_config *c, const char *name, uint64_t def, uint64_t max,
                  uint64_t *out)
{
    const char *v = env(name);
    *out = def;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || end == v || n > max || v[0] == '-') {
        snprintf(c->error, sizeof c->error, "%s=%s: expected a number up to %llu", name, v,
                 (unsigned long long)max);
        return -1;
    }
    *out = n;
    return 0;
}

static int sink(struct dx_config *c, const char *name, struct dx_signal_cfg *s)
{
    const char *v = env(name);
    s->sink = DX_SINK_OTLP;
    if (!v)
        return 0;
    if (!strcasecmp(v, "otlp"))
        s->sink = DX_SINK_OTLP;
    else if (!strcasecmp(v, "console"))
        s->sink = DX_SINK_CONSOLE;
    else if (!strcasecmp(v, "none"))
        s->sink = DX_SINK_NONE;
    else {
        snprintf(c->error, sizeof c->error, "%s=%s: expected otlp, console or none", name, v);
        return -1;
    }
    return 0;
}

/* OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT is used as given; otherwise the
 * base endpoint gets /v1/<signal> appended (after a single '/'). */
static int endpoint(struct dx_config *c, const char *specific, const char *path,
                    struct dx_signal_cfg *s)
{
    const char *v = env(specific);
    if (v) {
        if (strlen(v) >= sizeof s->endpoint)
            goto bad;
        strcpy(s->endpoint, v);
    } else {
        const char *base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (!base)
            base = "http://localhost:4318";
        size_t bl = strlen(base);
        while (bl && base[bl - 1] == '/')
            bl--;
        if (bl + strlen(path) + 1 >= sizeof s->endpoint)
            goto bad;
        snprintf(s->endpoint, sizeof s->endpoint, "%.*s%s", (int)bl, base, path);
    }
    if (strncmp(s->endpoint, "http://", 7) && strncmp(s->endpoint, "https://", 8)) {
        snprintf(c->error, sizeof c->error, "OTLP endpoint '%.160s': expected http:// or https://",
                 s->endpoint);
        return -1;
    }
    return 0;
bad:
    snprintf(c->error, sizeof c->error, "%s: URL too long", specific);
    return -1;
}

int dx_config_load(struct dx_config *c)
{
    return dx_config_load_from(c, from_environ);
}

int dx_config_load_from(struct dx_config *c, const char *(*get)(const char *name))
{
    source = get;
    memset(c, 0, sizeof *c);
    const char *v = env("DYNOBS_SHM_DIR");
    snprintf(c->shm_dir, sizeof c->shm_dir, "%s", v ? v : DYNOBS_SHM_DIR_DEFAULT);
    v = env("DYNOBS_RULES");
    snprintf(c->rules_path, sizeof c->rules_path, "%s", v ? v : "");
    if (sink(c, "OTEL_TRACES_EXPORTER", &c->traces) || sink(c, "OTEL_METRICS_EXPORTER", &c->metrics) ||
        sink(c, "OTEL_LOGS_EXPORTER", &c->logs))
        return -1;
    if (endpoint(c, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/v1/traces", &c->traces) ||
        endpoint(c, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "/v1/metrics", &c->metrics) ||
        endpoint(c, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "/v1/logs", &c->logs))
        return -1;
    v = env("OTEL_EXPORTER_OTLP_HEADERS");
    if (v) {
        if (strlen(v) >= sizeof c->headers) {
            snprintf(c->error, sizeof c->error, "OTEL_EXPORTER_OTLP_HEADERS: too long");
            return -1;
        }
        strcpy(c->headers, v);
    }
    v = env("OTEL_EXPORTER_OTLP_COMPRESSION");
    if (v && !strcasecmp(v, "gzip"))
        c->gzip = 1;
    else if (v && strcasecmp(v, "none")) {
        snprintf(c->error, sizeof c->error, "OTEL_EXPORTER_OTLP_COMPRESSION=%s: expected gzip or none", v);
        return -1;
    }
    uint64_t n;
    if (number(c, "OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 3600000, &c->timeout_ms) ||
        number(c, "OTEL_BSP_SCHEDULE_DELAY", 5000, 3600000, &c->bsp_delay_ms) ||
        number(c, "OTEL_METRIC_EXPORT_INTERVAL", 60000, 86400000, &c->metric_interval_ms) ||
        number(c, "DYNOBS_DRAIN_INTERVAL", 50, 10000, &c->drain_ms) ||
        number(c, "DYNOBS_RESCAN_INTERVAL", 1000, 600000, &c->rescan_ms) ||
        number(c, "DYNOBS_EXPORTER_IDLE_EXIT", 0, 31536000, &c->idle_exit_s) ||
        number(c, "DYNOBS_RETRY_INITIAL_MS", 1000, 3600000, &c->retry_initial_ms) ||
        number(c, "DYNOBS_RETRY_MAX_MS", 30000, 3600000, &c->retry_max_ms) ||
        number(c, "DYNOBS_RETRY_TOTAL_MS", 300000, 86400000, &c->retry_total_ms) ||
        number(c, "DYNOBS_SHUTDOWN_MS", 5000, 3600000, &c->shutdown_ms))
        return -1;
    if (number(c, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1000000, &n))
        return -1;
    c->bsp_batch = (uint32_t)(n ? n : 1);
    if (number(c, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, 100000000, &n))
        return -1;
    c->bsp_queue = (uint32_t)(n ? n : 1);
    if (c->bsp_batch > c->bsp_queue)
        c->bsp_batch = c->bsp_queue; /* the spec: the batch never exceeds the queue */
    if (c->metric_interval_ms == 0)
        c->metric_interval_ms = 60000;
    v = env("OTEL_EXPORTER_PROMETHEUS_HOST");
    snprintf(c->prom_host, sizeof c->prom_host, "%s", v ? v : "127.0.0.1");
    if (number(c, "OTEL_EXPORTER_PROMETHEUS_PORT", 9464, 65535, &n))
        return -1;
    c->prom_port = (int)n;
    v = env("OTEL_LOG_LEVEL");
    snprintf(c->log_level, sizeof c->log_level, "%s", v ? v : "info");
    return 0;
}
