/*
 * The user side of the eBPF source, between its files: loader.c (the
 * programs, the ring buffer and the thread that reads it), procs.c (the
 * traced processes, their segments and their threads' requests),
 * attach.c (uprobes on each process's libssl, libpq and executable),
 * emit.c (spans and metrics in record format), http.c (HTTP/1 over
 * sockets and TLS) and pq.c (libpq statements). Everything runs on the
 * reading thread but the counters, which /metrics reads.
 */
#ifndef DYNOBS_EBPF_INTERNAL_H
#define DYNOBS_EBPF_INTERNAL_H

#include <linux/types.h>
#include <stddef.h>
#include <stdint.h>

#include "ebpf.h"
#include "events.h"
#include "layout.h"
#include "resource.h"
#include "route.h"
#include "segment.h"

struct bpf_link;
struct bpf_program;

void dynobs__ebpf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The counters of struct dynobs_ebpf_stats, by field. */
extern struct dynobs_ebpf_stats dynobs__ebpf_counts;
#define EBPF_COUNT(field, n) __atomic_fetch_add(&dynobs__ebpf_counts.field, (n), __ATOMIC_RELAXED)

/* A span's context, as a parent. */
struct ectx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;
    uint8_t remote; /* from another process (a traceparent received) */
};

/* ---- procs.c ---- */

#define EPROC_MAX_LINKS 96
#define EPROC_MAX_FILES 16

enum eproc_state {
    EPROC_TRACED = 1,
    EPROC_PRELOADED, /* libdynobs.so is in it: the shim's spans win */
};

struct eproc {
    int pid;
    int state;
    uint64_t ticks; /* start time: with the pid, one process */
    int pending;             /* just exec'd: not looked at yet */
    int go;                  /* a Go program: goroutines move between threads */
    uint64_t pending_since;
    int seg_tried, seg_ok;
    int res_ok;
    struct dynobs_resource res;
    struct dynobs_segment seg;
    struct dynobs_route_trie trie;
    struct dynobs_route_node *nodes;
    uint64_t next_scan_ns; /* when its mapped files are looked at again */
    struct {
        uint64_t dev, ino;
    } files[EPROC_MAX_FILES]; /* files whose probes are attached */
    int nfiles;
    struct bpf_link *links[EPROC_MAX_LINKS];
    int nlinks;
};

enum eproc_how {
    EPROC_FIND = 0,  /* only a process already known */
    EPROC_RESOLVED,  /* set up now: checked for the shim, probes attached */
    EPROC_PENDING,   /* just exec'd: set up at its first event, or soon */
};
/* The process, found or set up (how): a process seen for the first time
 * is checked for the shim (EPROC_PRELOADED) and its probes are attached.
 * NULL when it is gone or the table is full. */
struct eproc *dynobs__eproc(int pid, int how);
/* The process ended (or ran another program): its connections and
 * statements are dropped, its segment left to the exporter's reaping. */
void dynobs__eproc_gone(int pid);
/* Periodic work: newly mapped libraries get their probes, processes that
 * vanished without an exit event are dropped. */
void dynobs__eproc_tick(uint64_t now_ns);
void dynobs__eproc_all_gone(void);
/* Waits for the links of processes that ended to be destroyed. */
void dynobs__eproc_reaper_stop(void);
/* The process's segment, made at its first span. NULL on failure. */
struct dynobs_segment *dynobs__eproc_segment(struct eproc *p);
void dynobs__eproc_set_dir(const char *dir);

/* The request a thread serves (a server span opened on it and not yet
 * answered), for its outbound calls: NULL when it serves none or more
 * than one (an event loop: a wrong parent is worse than none). */
const struct ectx *dynobs__ethread_ctx(int pid, int tid);
void dynobs__ethread_enter(int pid, int tid, const struct ectx *c);
/* The thread waits in epoll: it serves requests by turns, none is its own. */
void dynobs__ethread_mux(int pid, int tid);
void dynobs__ethread_leave(int pid, int tid);
void dynobs__ethread_forget(int pid);

/* ---- attach.c ---- */

/* Attaches the uprobes to the files p has mapped that carry OpenSSL or
 * libpq (its executable included), once per file. */
void dynobs__attach_process(struct eproc *p);
/* The programs attach.c attaches, set by the loader. */
struct dynobs_ebpf_progs {
    struct bpf_program *ssl_read, *ssl_read_ex, *ssl_write, *ssl_write_ex, *ssl_leave, *ssl_free;
    struct bpf_program *pq_exec, *pq_prepare, *pq_exec_prepared, *pq_send, *pq_send_prepare,
        *pq_send_prepared, *pq_sync_leave, *pq_getresult_enter, *pq_getresult_leave;
};
extern struct dynobs_ebpf_progs dynobs__ebpf_progs;

/* ---- emit.c ---- */

#define ESPAN_ITEMS 3072u

struct espan {
    struct dynobs_span_rec f;
    int recording;
    char name[256];
    uint8_t items[ESPAN_ITEMS];
    size_t items_len;
};

/* Monotonic (the events' clock) to wall-clock ns. */
uint64_t dynobs__ebpf_wall(uint64_t mono_ns);
void dynobs__ebpf_clock_sync(void);

/* Opens a span: a child of parent (or a root), recorded when the parent
 * was sampled or there is none. */
void dynobs__espan_begin(struct espan *s, int kind, const char *name, const struct ectx *parent,
                         uint64_t start_mono, int tid);
void dynobs__espan_str(struct espan *s, const char *key, const char *v, size_t n);
void dynobs__espan_int(struct espan *s, const char *key, int64_t v);
void dynobs__espan_error(struct espan *s);
void dynobs__espan_ctx(const struct espan *s, struct ectx *out);
/* Writes the span into p's segment. */
void dynobs__espan_end(struct eproc *p, struct espan *s, uint64_t end_mono);
/* A histogram observation in p's segment. */
void dynobs__ebpf_histogram(struct eproc *p, const char *name, const double *bounds,
                            unsigned nbounds, double v, const char *labels);

/* ---- http.c, pq.c ---- */

void dynobs__http_event(const struct dynobs_ebpf_ev *e, size_t len);
void dynobs__http_close(int pid, int src, uint64_t conn, uint64_t ts);
void dynobs__http_forget(int pid);
void dynobs__pq_event(const struct dynobs_ebpf_ev *e, size_t len);
void dynobs__pq_forget(int pid);

#endif
