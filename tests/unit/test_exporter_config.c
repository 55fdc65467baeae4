/* The exporter's configuration: defaults, which variable wins, and a
 * clear error for every invalid value. */
#define _GNU_SOURCE /* testutil.h: nftw, posix_spawn */
#include <criterion/criterion.h>
#include <string.h>

#include "testutil.h"
#include "xconfig.h"


static int load(struct dx_config *c, const char *const *env)
{
    tu_fake_env = env;
    return dx_config_load_from(c, tu_getenv);
}

Test(exporter_config, defaults)
{
    static struct dx_config c;
    cr_assert_eq(load(&c, NULL), 0);
    cr_assert_str_eq(c.shm_dir, "/dev/shm/dynobs");
    cr_assert_eq(c.traces.sink, DX_SINK_OTLP);
    cr_assert_eq(c.metrics.sink, DX_SINK_OTLP);
    cr_assert_eq(c.logs.sink, DX_SINK_OTLP);
    cr_assert_str_eq(c.traces.endpoint, "http://localhost:4318/v1/traces");
    cr_assert_str_eq(c.metrics.endpoint, "http://localhost:4318/v1/metrics");
    cr_assert_str_eq(c.logs.endpoint, "http://localhost:4318/v1/logs");
    cr_assert_str_eq(c.headers, "");
    cr_assert_eq(c.gzip, 0);
    cr_assert_eq(c.timeout_ms, 10000);
    cr_assert_eq(c.bsp_delay_ms, 5000);
    cr_assert_eq(c.bsp_batch, 512);
    cr_assert_eq(c.bsp_queue, 2048);
    cr_assert_eq(c.metric_interval_ms, 60000);
    cr_assert_str_eq(c.prom_host, "127.0.0.1");
    cr_assert_eq(c.prom_port, 9464);
    cr_assert_eq(c.drain_ms, 50);
    cr_assert_eq(c.rescan_ms, 1000);
    cr_assert_eq(c.idle_exit_s, 0);
    cr_assert_eq(c.retry_initial_ms, 1000);
    cr_assert_eq(c.retry_max_ms, 30000);
    cr_assert_eq(c.retry_total_ms, 300000);
    cr_assert_eq(c.shutdown_ms, 5000);
    cr_assert_str_eq(c.log_level, "info");
    cr_assert_str_eq(c.error, "");
}

Test(exporter_config, values_from_the_environment)
{
    static struct dx_config c;
    const char *env[] = {"DYNOBS_SHM_DIR=/tmp/segs",
                         "OTEL_TRACES_EXPORTER=console",
                         "OTEL_METRICS_EXPORTER=NONE",
                         "OTEL_EXPORTER_OTLP_HEADERS=a=1,b=2",
                         "OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
                         "OTEL_EXPORTER_OTLP_TIMEOUT=250",
                         "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=64",
                         "OTEL_BSP_MAX_QUEUE_SIZE=128",
                         "OTEL_EXPORTER_PROMETHEUS_HOST=::1",
                         "OTEL_EXPORTER_PROMETHEUS_PORT=0",
                         "DYNOBS_RETRY_INITIAL_MS=50",
                         "DYNOBS_RETRY_MAX_MS=200",
                         "DYNOBS_RETRY_TOTAL_MS=600000",
                         "DYNOBS_SHUTDOWN_MS=3000",
                         "OTEL_LOG_LEVEL=debug",
                         NULL};
    cr_assert_eq(load(&c, env), 0, "%s", c.error);
    cr_assert_str_eq(c.shm_dir, "/tmp/segs");
    cr_assert_eq(c.traces.sink, DX_SINK_CONSOLE);
    cr_assert_eq(c.metrics.sink, DX_SINK_NONE);
    cr_assert_eq(c.logs.sink, DX_SINK_OTLP);
    cr_assert_str_eq(c.headers, "a=1,b=2");
    cr_assert_eq(c.gzip, 1);
    cr_assert_eq(c.timeout_ms, 250);
    cr_assert_eq(c.bsp_batch, 64);
    cr_assert_eq(c.bsp_queue, 128);
    cr_assert_str_eq(c.prom_host, "::1");
    cr_assert_eq(c.prom_port, 0);
    cr_assert_eq(c.retry_initial_ms, 50);
    cr_assert_eq(c.retry_max_ms, 200);
    cr_assert_eq(c.retry_total_ms, 600000);
    cr_assert_eq(c.shutdown_ms, 3000);
    cr_assert_str_eq(c.log_level, "debug");
}

Test(exporter_config, endpoint_precedence)
{
    static struct dx_config c;
    /* The base endpoint gets /v1/<signal>, after a single '/'; a
     * signal's own endpoint is used as given. */
    const char *env[] = {"OTEL_EXPORTER_OTLP_ENDPOINT=https://collector:4318///",
                         "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=http://logs.example/ingest", NULL};
    cr_assert_eq(load(&c, env), 0, "%s", c.error);
    cr_assert_str_eq(c.traces.endpoint, "https://collector:4318/v1/traces");
    cr_assert_str_eq(c.metrics.endpoint, "https://collector:4318/v1/metrics");
    cr_assert_str_eq(c.logs.endpoint, "http://logs.example/ingest");
}

Test(exporter_config, empty_values_count_as_unset)
{
    static struct dx_config c;
    const char *env[] = {"OTEL_BSP_MAX_QUEUE_SIZE=", "OTEL_TRACES_EXPORTER=", NULL};
    cr_assert_eq(load(&c, env), 0, "%s", c.error);
    cr_assert_eq(c.bsp_queue, 2048);
    cr_assert_eq(c.traces.sink, DX_SINK_OTLP);
}

Test(exporter_config, adjustments)
{
    static struct dx_config c;
    /* The batch never exceeds the queue; zero sizes mean one; a zero
     * metric interval means the default. */
    const char *env[] = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1000", "OTEL_BSP_MAX_QUEUE_SIZE=10",
                         "OTEL_METRIC_EXPORT_INTERVAL=0", NULL};
    cr_assert_eq(load(&c, env), 0, "%s", c.error);
    cr_assert_eq(c.bsp_queue, 10);
    cr_assert_eq(c.bsp_batch, 10);
    cr_assert_eq(c.metric_interval_ms, 60000);
    const char *zero[] = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE=0", "OTEL_BSP_MAX_QUEUE_SIZE=0", NULL};
    cr_assert_eq(load(&c, zero), 0, "%s", c.error);
    cr_assert_eq(c.bsp_queue, 1);
    cr_assert_eq(c.bsp_batch, 1);
}

/* Loading with one bad variable fails with an error that names it. */
static void bad(const char *assignment, const char *expected)
{
    static struct dx_config c;
    const char *env[] = {assignment, NULL};
    cr_assert_eq(load(&c, env), -1, "%s was accepted", assignment);
    cr_assert(strstr(c.error, expected), "error for %s: '%s', expected '%s'", assignment,
              c.error, expected);
}

Test(exporter_config, invalid_values_get_clear_errors)
{
    bad("OTEL_TRACES_EXPORTER=zipkin", "OTEL_TRACES_EXPORTER=zipkin: expected otlp, console or none");
    bad("OTEL_LOGS_EXPORTER=stdout", "OTEL_LOGS_EXPORTER=stdout: expected otlp, console or none");
    bad("OTEL_EXPORTER_OTLP_COMPRESSION=br",
        "OTEL_EXPORTER_OTLP_COMPRESSION=br: expected gzip or none");
    bad("OTEL_EXPORTER_OTLP_TIMEOUT=10s", "OTEL_EXPORTER_OTLP_TIMEOUT=10s: expected a number up to 3600000");
    bad("OTEL_BSP_SCHEDULE_DELAY=-1", "OTEL_BSP_SCHEDULE_DELAY=-1: expected a number");
    bad("OTEL_EXPORTER_PROMETHEUS_PORT=70000",
        "OTEL_EXPORTER_PROMETHEUS_PORT=70000: expected a number up to 65535");
    bad("DYNOBS_DRAIN_INTERVAL=99999", "DYNOBS_DRAIN_INTERVAL=99999: expected a number up to 10000");
    bad("DYNOBS_RETRY_MAX_MS=soon", "DYNOBS_RETRY_MAX_MS=soon: expected a number");
    bad("DYNOBS_SHUTDOWN_MS=1e3", "DYNOBS_SHUTDOWN_MS=1e3: expected a number");
    bad("OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318",
        "OTLP endpoint 'collector:4318/v1/traces': expected http:// or https://");
    bad("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=ftp://x/",
        "OTLP endpoint 'ftp://x/': expected http:// or https://");
}

Test(exporter_config, overlong_values_are_refused)
{
    static char url[1100], headers[5000];
    strcpy(url, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://");
    memset(url + strlen(url), 'h', sizeof url - strlen(url) - 1);
    bad(url, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: URL too long");
    strcpy(headers, "OTEL_EXPORTER_OTLP_HEADERS=a=");
    memset(headers + strlen(headers), 'v', sizeof headers - strlen(headers) - 1);
    bad(headers, "OTEL_EXPORTER_OTLP_HEADERS: too long");
}
