#include "ebpf_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "ebpf.h"
#include "prometheus.h"

static struct dynobs_ebpf_opts opts;
static int wanted, started;

int dx_ebpf_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--ebpf")) {
            wanted = 1;
        } else if (!strcmp(a, "--pid") || !strcmp(a, "--exe")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dynobs-exporter: %s needs a value (see --help)\n", a);
                return -1;
            }
            const char *v = argv[++i];
            if (a[2] == 'p') {
                char *end;
                errno = 0;
                long pid = strtol(v, &end, 10);
                if (errno || *end || pid <= 0 || pid > 0x3fffffff) {
                    fprintf(stderr, "dynobs-exporter: --pid %s: not a process id\n", v);
                    return -1;
                }
                if (opts.npids == DYNOBS_EBPF_MAX_PIDS) {
                    fprintf(stderr, "dynobs-exporter: at most %d --pid\n", DYNOBS_EBPF_MAX_PIDS);
                    return -1;
                }
                opts.pids[opts.npids++] = (int)pid;
            } else {
                if (opts.nexes == DYNOBS_EBPF_MAX_EXES) {
                    fprintf(stderr, "dynobs-exporter: at most %d --exe\n", DYNOBS_EBPF_MAX_EXES);
                    return -1;
                }
                opts.exes[opts.nexes++] = v;
            }
        } else {
            fprintf(stderr, "dynobs-exporter: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
    }
    if (!wanted && (opts.npids || opts.nexes)) {
        fprintf(stderr, "dynobs-exporter: --pid and --exe go with --ebpf (see --help)\n");
        return -1;
    }
    if (wanted && !opts.npids && !opts.nexes) {
        fprintf(stderr, "dynobs-exporter: --ebpf needs --pid PID or --exe PATH (see --help)\n");
        return -1;
    }
    return wanted;
}

static void log_line(int level, const char *msg)
{
    enum dx_level l = level == DYNOBS_EBPF_ERROR  ? DX_ERROR
                      : level == DYNOBS_EBPF_WARN ? DX_WARN
                      : level == DYNOBS_EBPF_INFO ? DX_INFO
                                                  : DX_DEBUG;
    dx_log(l, "ebpf: %s", msg);
}

static void self_metrics(struct dx_buf *b)
{
    struct dynobs_ebpf_stats s;
    dynobs__ebpf_stats(&s);
    dx_prom_self_gauge(b, "dynobs_exporter_ebpf_running", "1 when the eBPF source runs",
                       (uint64_t)__atomic_load_n(&started, __ATOMIC_RELAXED));
    dx_prom_self_gauge(b, "dynobs_exporter_ebpf_processes", "Processes traced through eBPF now",
                       s.processes);
    dx_prom_self_counter(b, "dynobs_exporter_ebpf_events_total",
                         "Events read from the eBPF ring buffer", s.events);
    dx_prom_self_counter(b, "dynobs_exporter_ebpf_events_lost_total",
                         "Events dropped in the kernel: the eBPF ring buffer was full",
                         s.lost_ringbuf);
    dx_prom_self_counter(b, "dynobs_exporter_ebpf_calls_lost_total",
                         "Calls not followed: their arguments could not be kept", s.lost_args);
    dx_prom_self_counter(b, "dynobs_exporter_ebpf_spans_total", "Spans made from eBPF events",
                         s.spans);
    dx_prom_self_counter(b, "dynobs_exporter_ebpf_spans_dropped_total",
                         "Spans from eBPF events lost: a full ring, or no segment",
                         s.spans_dropped);
    dx_prom_self_counter(b, "dynobs_exporter_ebpf_preloaded_total",
                         "Processes left to the shim: libdynobs.so is in them", s.preloaded);
    dx_prom_self_counter(b, "dynobs_exporter_ebpf_attach_failures_total",
                         "Uprobes that could not be attached", s.attach_failed);
    dx_prom_self_counter(b, "dynobs_exporter_ebpf_connections_dropped_total",
                         "Connections not followed: the table was full", s.conns_dropped);
}

void dx_ebpf_begin(const char *shm_dir)
{
    if (!wanted)
        return;
    dx_prometheus_self(self_metrics);
    opts.shm_dir = shm_dir;
    opts.log = log_line;
    char why[512];
    if (dynobs__ebpf_start(&opts, why, sizeof why) < 0) {
        dx_log(DX_ERROR, "ebpf: %s; carrying on without eBPF", why);
        return;
    }
    __atomic_store_n(&started, 1, __ATOMIC_RELAXED);
    dx_log(DX_INFO, "ebpf: tracing %d pid(s) and %d executable(s)", opts.npids, opts.nexes);
}

void dx_ebpf_end(void)
{
    if (__atomic_load_n(&started, __ATOMIC_RELAXED))
        dynobs__ebpf_stop();
    __atomic_store_n(&started, 0, __ATOMIC_RELAXED);
}
