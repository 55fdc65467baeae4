/*
 * The exporter's eBPF source (--ebpf): spans and metrics of processes
 * that cannot be preloaded, from uprobes on libpq and OpenSSL and from
 * socket system calls, written into segments like the shim's (one per
 * traced process) so that the exporter drains them like any other.
 * Built only with DYNOBS_WITH_EBPF (ebpf/CMakeLists.txt); otherwise start
 * says why it cannot run.
 */
#ifndef DYNOBS_EBPF_EBPF_H
#define DYNOBS_EBPF_EBPF_H

#include <stddef.h>
#include <stdint.h>

#define DYNOBS_EBPF_MAX_PIDS 64
#define DYNOBS_EBPF_MAX_EXES 16

enum dynobs_ebpf_level { DYNOBS_EBPF_ERROR = 1, DYNOBS_EBPF_WARN, DYNOBS_EBPF_INFO, DYNOBS_EBPF_DEBUG };

struct dynobs_ebpf_opts {
    int pids[DYNOBS_EBPF_MAX_PIDS]; /* --pid */
    int npids;
    const char *exes[DYNOBS_EBPF_MAX_EXES]; /* --exe */
    int nexes;
    const char *shm_dir; /* where the segments go */
    void (*log)(int level, const char *msg);
};

/* Loads the programs and starts tracing on a thread of its own. Returns
 * 0, or -1 with the reason in why (built without eBPF, no privileges, a
 * kernel without BTF or uprobes, an executable that cannot be read). */
int dynobs__ebpf_start(const struct dynobs_ebpf_opts *o, char *why, size_t len);

/* Stops the thread and detaches everything (segments are left to the
 * exporter's last drain). */
void dynobs__ebpf_stop(void);

struct dynobs_ebpf_stats {
    uint64_t events;         /* events read from the ring buffer */
    uint64_t lost_ringbuf;   /* dropped in the kernel: the ring buffer was full */
    uint64_t lost_args;      /* calls missed: their arguments could not be kept */
    uint64_t spans;          /* spans written */
    uint64_t spans_dropped;  /* spans lost: a full ring, or no segment */
    uint64_t processes;      /* processes traced now */
    uint64_t preloaded;      /* processes skipped: the shim traces them */
    uint64_t attach_failed;  /* probes that could not be attached */
    uint64_t conns_dropped;  /* connections not followed: the table was full */
    uint64_t not_http;       /* connections given up: not HTTP/1 */
};
void dynobs__ebpf_stats(struct dynobs_ebpf_stats *s);

#endif
