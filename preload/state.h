/*
 * The library's state: whether dynobs is on, its configuration, the
 * process's segment, the per-thread blocks, and the one rule that says
 * which interposing layer stands aside for which.
 *
 * The other concerns have headers of their own: context.h (the current
 * context of a thread, and binding a request's context to it), span.h
 * (spans being built), capture.h (the service's own logs), conn.h (the
 * connection layer under the transports).
 */
#ifndef DYNOBS_PRELOAD_STATE_H
#define DYNOBS_PRELOAD_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "dynobs/dynobs.h"

#include "../common/baggage.h"
#include "../common/clock.h"
#include "../common/config.h"
#include "../common/ids.h"
#include "../common/layout.h"
#include "../common/segment.h"
#include "../common/util.h"
#include "context.h"
#include "span.h"
#include "tls.h"

/* (DYNOBS_START_DATA, DYNOBS_HOT_DATA: util.h.) */

/* Library state. Interposers test `dynobs__state == DYNOBS_ON` and nothing
 * else before doing any work: that is the one branch "off" costs. */
enum {
    DYNOBS_UNINIT = 0, /* constructor not run yet */
    DYNOBS_INITING,    /* one thread is initialising; others pass through */
    DYNOBS_OFF,        /* OTEL_SDK_DISABLED=true: pass-through only */
    DYNOBS_ON,
};
extern int dynobs__state DYNOBS_INTERNAL;
extern struct dynobs_config dynobs__config DYNOBS_INTERNAL;

/* Runs initialisation if nobody has; returns the state afterwards. Never
 * blocks: a thread that finds another one initialising gets DYNOBS_INITING
 * and must behave as if dynobs were off for that call. */
int dynobs__init(void) DYNOBS_INTERNAL;

static inline int dynobs__on(void)
{
    int s = __atomic_load_n(&dynobs__state, __ATOMIC_ACQUIRE);
    if (DYNOBS_LIKELY(s == DYNOBS_ON))
        return 1;
    if (s == DYNOBS_UNINIT)
        return dynobs__init() == DYNOBS_ON;
    return 0;
}

/* Thread-local state. The static TLS footprint is a few words, so that
 * the library can also be dlopen'ed (from Python) without exhausting the
 * static TLS surplus glibc keeps for that; everything else lives in a
 * per-thread block from mmap. initial-exec makes each access one load. */
#define DYNOBS_TLS __attribute__((tls_model("initial-exec")))
/* dynobs__tls.guard (tls.h): non-zero while dynobs's own code runs on
 * this thread: every interposer passes straight through then. */

/* ---- which layer stands aside for which ----
 *
 * A request is traced once, by the highest layer that understands it:
 * libcurl's transfers by the libcurl layer, not again by the TLS or socket
 * layers underneath; a libpq operation by one wrapper, not again by the
 * libpq functions it calls itself. While a library layer runs the
 * application's call, it raises its lane of dynobs__tls.inside on the thread
 * (a nesting count per library), and the layers that yield to it look at
 * that one word. */
enum dynobs_layer {
    DYNOBS_LAYER_PROCESS, /* fds, privileges, signals: bookkeeping only */
    DYNOBS_LAYER_LIBCURL,
    DYNOBS_LAYER_LIBPQ,
    DYNOBS_LAYER_TLS,
    DYNOBS_LAYER_SOCKET,
};
/* (dynobs__tls.inside, tls.h) */
#define DYNOBS_INSIDE_LIBCURL 0x0001u /* lane 0: libcurl's depth */
#define DYNOBS_INSIDE_LIBPQ 0x0100u   /* lane 1: libpq's depth */

static inline uint32_t dynobs__yields_to(enum dynobs_layer l)
{
    switch (l) {
    case DYNOBS_LAYER_LIBPQ:
        return 0xff00u; /* libpq's own inner calls */
    case DYNOBS_LAYER_TLS:
    case DYNOBS_LAYER_SOCKET:
        return 0x00ffu; /* libcurl's I/O */
    default:
        return 0;
    }
}

/* 1 when layer l does its work for the call being made on this thread:
 * dynobs is on, dynobs's own code is not running, and no layer that l
 * yields to is running the call. One load per test once inlined. */
static inline int dynobs__layer_on(enum dynobs_layer l)
{
    /* One test of both thread-local words (an OR, not two branches). The
     * state read with acquire: the offsets of the words (tls.h), stored
     * before it was turned on, are read after it (a plain load on x86). */
    return __atomic_load_n(&dynobs__state, __ATOMIC_ACQUIRE) == DYNOBS_ON &&
           !((uint32_t)DYNOBS_TLS_ON(guard) | (DYNOBS_TLS_ON(inside) & dynobs__yields_to(l)));
}

/* A library layer runs the application's call: enter before, leave after. */
static inline void dynobs__enter(uint32_t lane)
{
    dynobs__tls.inside += lane;
}

static inline void dynobs__leave(uint32_t lane)
{
    dynobs__tls.inside -= lane;
}

/* ---- the segment ---- */

/* The process's segment, created at first use; NULL when it cannot be
 * (then records are dropped and counted with dynobs__count_lost). */
struct dynobs_segment *dynobs__segment(void) DYNOBS_INTERNAL;
extern uint64_t dynobs__lost DYNOBS_INTERNAL;
/* One record or update dropped for want of a segment: counted in
 * dynobs__lost, which the segment's creation moves into its drop count;
 * a drop counted while or after that happens is moved by its counter
 * (init.c), so none is left behind. */
void dynobs__count_lost(void) DYNOBS_INTERNAL;

/* The identity of the segment in force: 0 while the process has none,
 * then a number never used before in this process or its parents (a
 * forked child's own segment gets a new one). What keeps a pointer into
 * the segment (a metric handle, the per-thread metric cache) keeps this
 * number with it and trusts the pointer only while it is current. */
extern uint32_t dynobs__seg_epoch DYNOBS_INTERNAL;

static inline uint32_t dynobs__segment_epoch(void)
{
    return __atomic_load_n(&dynobs__seg_epoch, __ATOMIC_ACQUIRE);
}

/* ---- per-thread blocks ---- */

#define DYNOBS_STACK_DEPTH 64
#define DYNOBS_BAGGAGE_SLOTS 4 /* nested dynobs_baggage_set per thread */
#define DYNOBS_SPAN_POOL 32
#define DYNOBS_METRIC_CACHE 64 /* per-thread cache of by-name metric updates */

/* One entry of a thread's metric cache (metrics_api.c): the series a
 * by-name update with these very string pointers went to last. The
 * strings are compared with the slot's key on every hit, so a buffer
 * reused for another name or label string never hits a wrong series. */
struct dynobs_metric_cache_entry {
    const char *name, *labels;
    struct dynobs_metric_slot *slot;
    uint32_t epoch; /* dynobs__seg_epoch when slot was found */
    int kind;
};

struct dynobs_thread {
    struct dynobs_thread *next; /* all blocks, push-only list */
    int owned;                  /* a live thread uses this block */
    /* (its owner's hot words are in its dynobs__tls: tls.h) */
    int depth; /* entries in stack[] (context.c) */
    /* Requests this block's thread read on non-blocking streams that other
     * threads ended (atomic): its own count is in dynobs__tls.serving. */
    uint32_t serving_elsewhere;
    /* Baggage set through the API (context.c): one list per slot, in use
     * while its context entry is; the generation is bumped on release. */
    uint8_t bag_used;
    uint16_t bag_slot_len[DYNOBS_BAGGAGE_SLOTS];
    uint32_t bag_slot_gen[DYNOBS_BAGGAGE_SLOTS];
    char bag_slot[DYNOBS_BAGGAGE_SLOTS][DYNOBS_BAGGAGE_MAX];
    uint64_t pool_used;  /* bit i: spans[i] in use; changed by this thread only */
    uint64_t pool_freed; /* bits set by other threads that ended our spans */
    uint16_t errlen; /* DYNOBS_CAPTURE_LOGS: bytes of a stderr line waiting */
    char errline[1024];
    struct dynobs_ctx stack[DYNOBS_STACK_DEPTH];
    struct dynobs_span spans[DYNOBS_SPAN_POOL];
    struct dynobs_metric_cache_entry mcache[DYNOBS_METRIC_CACHE];
};

/* The calling thread's block (thread.c), and its making on the thread's
 * first use (the calling thread has none yet). */
/* (dynobs__tls.self, tls.h) */
struct dynobs_thread *dynobs__thread_new(void) DYNOBS_INTERNAL;

/* The calling thread's block, created on first use; NULL when dynobs is
 * off or no memory could be had. Inline: every interposed call on the
 * way of a request asks for it. */
static inline struct dynobs_thread *dynobs__thread(void)
{
    struct dynobs_thread *t = DYNOBS_TLS_HERE(self);
    return DYNOBS_LIKELY(t != NULL) ? t : dynobs__thread_new();
}
/* The same where dynobs is known to be on (DYNOBS_TLS_ON, tls.h). */
static inline struct dynobs_thread *dynobs__thread_on(void)
{
    struct dynobs_thread *t = DYNOBS_TLS_ON(self);
    return DYNOBS_LIKELY(t != NULL) ? t : dynobs__thread_new();
}
/* The wall clock in ns through the calling thread's clock anchor (in its
 * dynobs__tls), for a thread that has a block. */
static inline uint64_t dynobs__thread_now(void)
{
    return dynobs__clock_now(&dynobs__me()->clk);
}
/* The calling thread's block if it has one already (never creates one). */
struct dynobs_thread *dynobs__thread_if_any(void) DYNOBS_INTERNAL;
/* After fork, in the child: keep the caller's block, free the others. */
void dynobs__thread_after_fork(void) DYNOBS_INTERNAL;

/* The ring shard of the calling thread, t its block (or NULL: the first
 * shard). */
static inline struct dynobs_ring *dynobs__ring_of(struct dynobs_segment *s,
                                                  const struct dynobs_thread *t)
{
    return &s->rings[(t ? dynobs__me()->ordinal : 0) & (s->nshards - 1)];
}

/* Counts an event in the calling thread's shard counters. */
static inline void dynobs__count(unsigned c)
{
    struct dynobs_segment *s = dynobs__segment();
    if (s)
        __atomic_fetch_add(&dynobs__ring_of(s, dynobs__thread())->counters[c], 1,
                           __ATOMIC_RELAXED);
    else
        dynobs__count_lost();
}

/* ---- what the instrumentations share ---- */

/* One event more in a counter of the instrumentations (no labels), in
 * the segment's metric table; a refusal is counted. */
void dynobs__event_count(const char *name) DYNOBS_INTERNAL;

/* One duration (seconds) into a histogram of the instrumentations
 * (unit s); a refusal is counted. */
void dynobs__duration_record(struct dynobs_segment *seg, const char *name,
                             const double *bounds, size_t nbounds, double seconds,
                             const char *labels) DYNOBS_INTERNAL;

/* Writes a log record (severity 0-24) with attributes, in the calling
 * thread's current context (log.c). A body longer than
 * DYNOBS_LOG_BODY_MAX is cut there and the record flagged truncated. */
#define DYNOBS_LOG_BODY_MAX 4096u
int dynobs__log_write(int severity, const char *severity_text, const char *body, size_t blen,
                      const dynobs_attr *attrs, size_t nattrs) DYNOBS_INTERNAL;

/* Crash reports: installs the handlers (init, when enabled: a few
 * sigaction calls), unless reports_env (DYNOBS_CRASH_REPORTS) is "0". */
void dynobs__crash_install(const char *reports_env) DYNOBS_INTERNAL;
/* Loads the backtrace library (a dlopen, about 160 000 instructions and a
 * dozen system calls: too much for every process start), once, when the
 * process first records; never from the crash handler itself. */
void dynobs__crash_prepare(void) DYNOBS_INTERNAL;

/* What a process needs once it records, done once, by the first thread
 * block or segment made: dynobs__crash_prepare. */
void dynobs__first_use(void) DYNOBS_INTERNAL;

/* Finds a function of a library the application uses: first after us in
 * the global scope (RTLD_NEXT), else in a copy already loaded privately
 * (dlopen'ed with RTLD_LOCAL, as Python does), by one of the given
 * sonames. Never loads anything. Cached in *slot. */
void *dynobs__lookup(void **slot, const char *name, const char *const *sonames) DYNOBS_INTERNAL;

/* The sonames under which each library we wrap is looked for, and the
 * list for one of our interposers' names (NULL for libc's). */
extern const char *const dynobs__libcurl[] DYNOBS_INTERNAL;
extern const char *const dynobs__libssl[] DYNOBS_INTERNAL;
extern const char *const dynobs__libpq[] DYNOBS_INTERNAL;
const char *const *dynobs__sonames_of(const char *name) DYNOBS_INTERNAL;

#endif
