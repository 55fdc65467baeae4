/*
 * Loads the kernel side (proc, sock, tls and pq objects, their shared
 * maps made one), names the processes to trace, and reads the ring
 * buffer on a thread of its own, handing each event to procs.c, http.c
 * or pq.c. Anything that stops eBPF from running (privileges, a kernel
 * without BTF or tracepoints) is one clear message from start, and the
 * exporter carries on without it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"
#include "pq.skel.h"
#include "proc.skel.h"
#include "sock.skel.h"
#include "tls.skel.h"

struct dynobs_ebpf_stats dynobs__ebpf_counts;

static struct dynobs_proc *sk_proc;
static struct dynobs_sock *sk_sock;
static struct dynobs_tls *sk_tls;
static struct dynobs_pq *sk_pq;
static struct ring_buffer *rb;
static pthread_t reader;
static int running;
static volatile int stopping;
static void (*log_fn)(int, const char *);
static uint64_t kernel_counts[DYNOBS_EBPF_COUNTERS];

void dynobs__ebpf_log(int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_fn)
        log_fn(level, msg);
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (log_fn && *msg)
        log_fn(level == LIBBPF_WARN ? DYNOBS_EBPF_DEBUG : DYNOBS_EBPF_DEBUG, msg);
    return 0;
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* The kernel side's counters, summed over CPUs. */
static void read_kernel_counts(void)
{
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0 || ncpu > 1024 || !sk_proc)
        return;
    uint64_t v[1024];
    int fd = bpf_map__fd(sk_proc->maps.counters);
    for (uint32_t k = 0; k < DYNOBS_EBPF_COUNTERS; k++) {
        if (bpf_map_lookup_elem(fd, &k, v))
            continue;
        uint64_t sum = 0;
        for (int c = 0; c < ncpu; c++)
            sum += v[c];
        kernel_counts[k] = sum;
    }
    __atomic_store_n(&dynobs__ebpf_counts.lost_ringbuf, kernel_counts[DYNOBS_EBPF_LOST_RINGBUF],
                     __ATOMIC_RELAXED);
    __atomic_store_n(&dynobs__ebpf_counts.lost_args, kernel_counts[DYNOBS_EBPF_LOST_ARGS],
                     __ATOMIC_RELAXED);
}

static void target_add(int pid)
{
    __u32 k = (__u32)pid, one = 1;
    bpf_map_update_elem(bpf_map__fd(sk_proc->maps.targets), &k, &one, BPF_ANY);
}

static void target_del(int pid)
{
    __u32 k = (__u32)pid;
    bpf_map_delete_elem(bpf_map__fd(sk_proc->maps.targets), &k);
}

/* The process of an event, set up at its first; NULL when it is not to
 * be traced here (the shim traces it) or cannot be. */
static struct eproc *process_of(int pid)
{
    struct eproc *p = dynobs__eproc(pid, EPROC_RESOLVED);
    if (p && p->state == EPROC_PRELOADED) {
        target_del(pid);
        return NULL;
    }
    return p;
}

static int on_event(void *ctx, void *data, size_t size)
{
    (void)ctx;
    const struct dynobs_ebpf_ev *e = data;
    size_t hdr = offsetof(struct dynobs_ebpf_ev, data);
    if (size < hdr || e->cap > size - hdr || e->cap > DYNOBS_EBPF_DATA_MAX)
        return 0;
    EBPF_COUNT(events, 1);
    int pid = (int)e->pid;
    if (e->type == DYNOBS_EV_EXEC || e->type == DYNOBS_EV_FORK || e->type == DYNOBS_EV_EXIT)
        dynobs__ebpf_log(DYNOBS_EBPF_DEBUG, "pid %d: %s", pid,
                         e->type == DYNOBS_EV_EXEC   ? "started"
                         : e->type == DYNOBS_EV_FORK ? "forked"
                                                     : "exited");
    switch (e->type) {
    case DYNOBS_EV_EXEC:
        dynobs__eproc_gone(pid); /* a new program in an old pid */
        dynobs__eproc(pid, EPROC_PENDING);
        break;
    case DYNOBS_EV_FORK:
        process_of(pid);
        break;
    case DYNOBS_EV_EXIT:
        dynobs__eproc_gone(pid);
        break;
    case DYNOBS_EV_DATA:
        if (process_of(pid))
            dynobs__http_event(e, size);
        break;
    case DYNOBS_EV_MUX:
        if (process_of(pid))
            dynobs__ethread_mux(pid, (int)e->tid);
        break;
    case DYNOBS_EV_CLOSE:
        if (dynobs__eproc(pid, EPROC_FIND))
            dynobs__http_close(pid, e->src, e->conn, e->ts);
        break;
    case DYNOBS_EV_PQ_BEGIN:
    case DYNOBS_EV_PQ_END:
    case DYNOBS_EV_PQ_RESULT:
        if (process_of(pid))
            dynobs__pq_event(e, size);
        break;
    }
    return 0;
}

static void *read_loop(void *arg)
{
    (void)arg;
    uint64_t next_sync = 0, next_tick = 0;
    while (!stopping) {
        int rc = ring_buffer__poll(rb, 100);
        /* and whatever came without a wakeup (the kernel skips some when
         * the reader looks behind) */
        if (rc >= 0)
            rc = ring_buffer__consume(rb);
        if (rc < 0 && rc != -EINTR) {
            dynobs__ebpf_log(DYNOBS_EBPF_ERROR, "ring buffer: %s; eBPF stops", strerror(-rc));
            break;
        }
        uint64_t now = mono_ns();
        if (now >= next_sync) {
            dynobs__ebpf_clock_sync();
            next_sync = now + 10000000000ull;
        }
        /* (processes and counters twice a second, not per wakeup) */
        if (now >= next_tick) {
            dynobs__eproc_tick(now);
            read_kernel_counts();
            next_tick = now + 100000000ull;
        }
    }
    return NULL;
}

/* Tracepoints need tracefs; mounted where the kernel offers it when
 * nothing is (we run as root: a kernel mount, not a system change). */
static void tracefs_ready(void)
{
    if (access("/sys/kernel/tracing/events/syscalls", F_OK) == 0 ||
        access("/sys/kernel/debug/tracing/events/syscalls", F_OK) == 0)
        return;
    if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) == 0)
        dynobs__ebpf_log(DYNOBS_EBPF_INFO, "mounted tracefs on /sys/kernel/tracing");
}

#define REUSE(skel, m)                                                                         \
    (bpf_map__reuse_fd((skel)->maps.m, bpf_map__fd(sk_proc->maps.m)))

static int load_all(char *why, size_t len)
{
    int rc;
    sk_proc = dynobs_proc__open();
    sk_sock = dynobs_sock__open();
    sk_tls = dynobs_tls__open();
    sk_pq = dynobs_pq__open();
    if (!sk_proc || !sk_sock || !sk_tls || !sk_pq) {
        snprintf(why, len, "cannot open the BPF objects: %s", strerror(errno));
        return -1;
    }
    if ((rc = dynobs_proc__load(sk_proc)) < 0)
        goto refused;
    if (REUSE(sk_sock, targets) || REUSE(sk_sock, events) || REUSE(sk_sock, counters) ||
        REUSE(sk_sock, scratch) || REUSE(sk_tls, targets) || REUSE(sk_tls, events) ||
        REUSE(sk_tls, counters) || REUSE(sk_tls, scratch) || REUSE(sk_pq, targets) ||
        REUSE(sk_pq, events) || REUSE(sk_pq, counters) || REUSE(sk_pq, scratch)) {
        snprintf(why, len, "cannot share the BPF maps: %s", strerror(errno));
        return -1;
    }
    if ((rc = dynobs_sock__load(sk_sock)) < 0 || (rc = dynobs_tls__load(sk_tls)) < 0 ||
        (rc = dynobs_pq__load(sk_pq)) < 0)
        goto refused;
    if ((rc = dynobs_proc__attach(sk_proc)) < 0) {
        snprintf(why, len, "cannot attach the process tracepoints (sched_process_exec/fork/exit): %s",
                 strerror(-rc));
        return -1;
    }
    tracefs_ready();
    if ((rc = dynobs_sock__attach(sk_sock)) < 0) {
        snprintf(why, len,
                 "cannot attach the socket system-call tracepoints: %s (is tracefs mounted? "
                 "mount -t tracefs nodev /sys/kernel/tracing)",
                 strerror(-rc));
        return -1;
    }
    struct dynobs_ebpf_progs *g = &dynobs__ebpf_progs;
    g->ssl_read = sk_tls->progs.ssl_read_enter;
    g->ssl_read_ex = sk_tls->progs.ssl_read_ex_enter;
    g->ssl_write = sk_tls->progs.ssl_write_enter;
    g->ssl_write_ex = sk_tls->progs.ssl_write_ex_enter;
    g->ssl_leave = sk_tls->progs.ssl_leave;
    g->ssl_free = sk_tls->progs.ssl_free_enter;
    g->pq_exec = sk_pq->progs.pq_exec;
    g->pq_prepare = sk_pq->progs.pq_prepare;
    g->pq_exec_prepared = sk_pq->progs.pq_exec_prepared;
    g->pq_send = sk_pq->progs.pq_send;
    g->pq_send_prepare = sk_pq->progs.pq_send_prepare;
    g->pq_send_prepared = sk_pq->progs.pq_send_prepared;
    g->pq_sync_leave = sk_pq->progs.pq_sync_leave;
    g->pq_getresult_enter = sk_pq->progs.pq_getresult_enter;
    g->pq_getresult_leave = sk_pq->progs.pq_getresult_leave;
    return 0;
refused:
    if (rc == -EPERM || rc == -EACCES)
        snprintf(why, len,
                 "the kernel refused to load the BPF programs (%s): eBPF needs root, or "
                 "CAP_BPF and CAP_PERFMON",
                 strerror(-rc));
    else
        snprintf(why, len, "the kernel refused to load the BPF programs: %s (BTF, uprobes and "
                 "BPF ring buffers need Linux 5.8 or later)",
                 strerror(-rc));
    return -1;
}

static void unload_all(void)
{
    dynobs__eproc_all_gone();
    dynobs__eproc_reaper_stop();
    ring_buffer__free(rb);
    rb = NULL;
    dynobs_pq__destroy(sk_pq);
    dynobs_tls__destroy(sk_tls);
    dynobs_sock__destroy(sk_sock);
    dynobs_proc__destroy(sk_proc);
    sk_pq = NULL;
    sk_tls = NULL;
    sk_sock = NULL;
    sk_proc = NULL;
}

/* The kernel's encoding of a device number (MKDEV), as s_dev holds it. */
static uint64_t kdev(dev_t d)
{
    return ((uint64_t)major(d) << 20) | minor(d);
}

/* Adds every running process whose executable is one of exes. */
static void scan_exes(const struct stat *exes, int n)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        int pid = atoi(de->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/%d/exe", pid);
        if (stat(path, &st) < 0)
            continue;
        for (int i = 0; i < n; i++)
            if (st.st_dev == exes[i].st_dev && st.st_ino == exes[i].st_ino) {
                target_add(pid);
                process_of(pid);
            }
    }
    closedir(d);
}

int dynobs__ebpf_start(const struct dynobs_ebpf_opts *o, char *why, size_t len)
{
    log_fn = o->log;
    if (running) {
        snprintf(why, len, "eBPF is already running");
        return -1;
    }
    struct stat exes[DYNOBS_EBPF_MAX_EXES];
    for (int i = 0; i < o->nexes; i++) {
        if (stat(o->exes[i], &exes[i]) < 0 || !S_ISREG(exes[i].st_mode)) {
            snprintf(why, len, "--exe %s: %s", o->exes[i],
                     errno ? strerror(errno) : "not a regular file");
            return -1;
        }
    }
    for (int i = 0; i < o->npids; i++) {
        if (!dynobs__proc_start_ticks(o->pids[i])) {
            snprintf(why, len, "--pid %d: no such process", o->pids[i]);
            return -1;
        }
    }
    libbpf_set_print(libbpf_quiet);
    dynobs__ebpf_clock_sync();
    dynobs__eproc_set_dir(o->shm_dir);
    if (load_all(why, len) < 0) {
        unload_all();
        return -1;
    }
    for (int i = 0; i < o->nexes; i++) {
        struct dynobs_ebpf_exe k = {kdev(exes[i].st_dev), exes[i].st_ino};
        __u32 one = 1;
        bpf_map_update_elem(bpf_map__fd(sk_proc->maps.exes), &k, &one, BPF_ANY);
    }
    rb = ring_buffer__new(bpf_map__fd(sk_proc->maps.events), on_event, NULL, NULL);
    if (!rb) {
        snprintf(why, len, "cannot read the BPF ring buffer: %s", strerror(errno));
        unload_all();
        return -1;
    }
    for (int i = 0; i < o->npids; i++) {
        target_add(o->pids[i]);
        process_of(o->pids[i]);
    }
    scan_exes(exes, o->nexes);
    stopping = 0;
    if (pthread_create(&reader, NULL, read_loop, NULL)) {
        snprintf(why, len, "cannot start the eBPF thread");
        unload_all();
        return -1;
    }
    running = 1;
    return 0;
}

void dynobs__ebpf_stop(void)
{
    if (!running)
        return;
    stopping = 1;
    pthread_join(reader, NULL);
    /* what is left in the ring buffer, then everything detached */
    ring_buffer__consume(rb);
    unload_all();
    running = 0;
}

void dynobs__ebpf_stats(struct dynobs_ebpf_stats *s)
{
    uint64_t *in = (uint64_t *)&dynobs__ebpf_counts, *out = (uint64_t *)s;
    for (size_t i = 0; i < sizeof *s / sizeof(uint64_t); i++)
        out[i] = __atomic_load_n(&in[i], __ATOMIC_RELAXED);
}
