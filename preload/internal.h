/*
 * Internals shared by the files of libdynobs.so.
 */
#ifndef DYNOBS_PRELOAD_INTERNAL_H
#define DYNOBS_PRELOAD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dynobs/dynobs.h"

#include "../common/attrs.h"
#include "../common/clock.h"
#include "../common/config.h"
#include "../common/ids.h"
#include "../common/layout.h"
#include "../common/segment.h"
#include "../common/tracecontext.h"
#include "../common/util.h"

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

/* The process's segment, created at first use; NULL when it cannot be
 * (then records are dropped and counted in dynobs__lost). */
struct dynobs_segment *dynobs__segment(void) DYNOBS_INTERNAL;
extern uint64_t dynobs__lost DYNOBS_INTERNAL;

/* Thread-local state. The static TLS footprint is two words, so that the
 * library can also be dlopen'ed (from Python) without exhausting the
 * static TLS surplus glibc keeps for that; everything else lives in a
 * per-thread block from mmap. initial-exec makes each access one load. */
#define DYNOBS_TLS __attribute__((tls_model("initial-exec")))
extern __thread int dynobs__guard DYNOBS_TLS DYNOBS_INTERNAL;
/* Non-zero while libcurl does its I/O on this thread (curl.c): the socket
 * and TLS layers leave those bytes to the libcurl layer. */
extern __thread int dynobs__curl_depth DYNOBS_TLS DYNOBS_INTERNAL;

#define DYNOBS_STACK_DEPTH 64
#define DYNOBS_SPAN_POOL 32
#define DYNOBS_NAME_MAX 512u
#define DYNOBS_STATUS_MSG_MAX 512u

/* One entry of a thread's context stack: a span of this thread, or a
 * remote context made current by dynobs_context_attach. */
struct dynobs_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;  /* W3C trace flags */
    uint8_t remote; /* 1: attached remote context */
    uint8_t ended;  /* its span ended (maybe on another thread) */
    uint8_t valid;  /* fully written: readers skip an entry being written */
    uint16_t ts_len;
    const struct dynobs_span *span; /* owner span, NULL for remote */
    uint32_t span_gen;
    char tracestate[DYNOBS_TRACESTATE_MAX];
};

struct dynobs_thread;

struct dynobs_span {
    uint32_t live;   /* SPAN_LIVE while started and not ended */
    uint32_t gen;    /* bumped per use of this pool slot */
    uint8_t recording;
    uint8_t status_final;
    uint8_t truncated;
    uint8_t pool_idx;
    int16_t stack_idx; /* -1 when not on the context stack */
    uint16_t attrs;    /* span attributes present */
    uint16_t events;
    uint16_t status_len;
    uint32_t used;      /* bytes used in body: name, tracestate, items */
    uint32_t items_off; /* where the items start in body */
    uint32_t last_event_off;
    struct dynobs_thread *owner;
    struct dynobs_span_rec rec;
    char status_msg[DYNOBS_STATUS_MSG_MAX];
    uint8_t body[DYNOBS_MAX_RECORD_BYTES - sizeof(struct dynobs_rec_hdr) -
                 sizeof(struct dynobs_span_rec)];
};

struct dynobs_thread {
    struct dynobs_thread *next; /* all blocks, push-only list */
    int owned;                  /* a live thread uses this block */
    uint32_t tid;
    uint32_t ordinal;           /* picks the ring shard: ordinal % shards */
    struct dynobs_rng rng;
    struct dynobs_clock_anchor clk;
    int depth; /* entries in stack[] */
    uint64_t pool_used;  /* bit i: spans[i] in use; changed by this thread only */
    uint64_t pool_freed; /* bits set by other threads that ended our spans */
    uint16_t errlen; /* DYNOBS_CAPTURE_LOGS: bytes of a stderr line waiting */
    char errline[1024];
    struct dynobs_ctx stack[DYNOBS_STACK_DEPTH];
    struct dynobs_span spans[DYNOBS_SPAN_POOL];
};

/* The calling thread's block, created on first use; NULL when dynobs is
 * off or no memory could be had. */
struct dynobs_thread *dynobs__thread(void) DYNOBS_INTERNAL;
/* After fork, in the child: keep the caller's block, free the others. */
void dynobs__thread_after_fork(void) DYNOBS_INTERNAL;
void dynobs__thread_init_key(void) DYNOBS_INTERNAL;

/* Crash reports: ends every open API span of thread t with error status
 * and an "exception" event; returns how many. */
int dynobs__span_end_crashed(struct dynobs_thread *t, const char *message,
                             const dynobs_attr *attrs, size_t nattrs) DYNOBS_INTERNAL;
/* Installs the crash handlers (init, when enabled). */
void dynobs__crash_install(void) DYNOBS_INTERNAL;
/* Writes a log record (severity 0-24) with attributes; the crash report's
 * way into the ring. */
int dynobs__log_write(int severity, const char *severity_text, const char *body, size_t blen,
                      const dynobs_attr *attrs, size_t nattrs) DYNOBS_INTERNAL;

/* DYNOBS_CAPTURE_LOGS: n bytes of iov were written to fd 2. */
void dynobs__stderr_written(const struct iovec *iov, int iovcnt, size_t n) DYNOBS_INTERNAL;
/* At exit: the exiting thread's last stderr line, if it had no newline. */
void dynobs__stderr_flush(void) DYNOBS_INTERNAL;

/* Context stack. */
const struct dynobs_ctx *dynobs__ctx_current(struct dynobs_thread *t) DYNOBS_INTERNAL;
struct dynobs_ctx *dynobs__ctx_push(struct dynobs_thread *t) DYNOBS_INTERNAL;
void dynobs__ctx_publish(struct dynobs_ctx *c) DYNOBS_INTERNAL;
void dynobs__ctx_pop_ended(struct dynobs_thread *t) DYNOBS_INTERNAL;

/* The ring shard of the calling thread's block. */
static inline struct dynobs_ring *dynobs__ring_of(struct dynobs_segment *s,
                                                  const struct dynobs_thread *t)
{
    return &s->rings[(t ? t->ordinal : 0) & (s->nshards - 1)];
}

/* Counts an event in the calling thread's shard counters. */
/* A remote context (no tracestate) from a parsed traceparent. */
void dynobs__ctx_remote(struct dynobs_ctx *c, const struct dynobs_traceparent *tp) DYNOBS_INTERNAL;

/* Finds a function of a library the application uses: first after us in
 * the global scope (RTLD_NEXT), else in a copy already loaded privately
 * (dlopen'ed with RTLD_LOCAL, as Python does), by one of the given
 * sonames. Never loads anything. Cached in *slot. */
void *dynobs__lookup(void **slot, const char *name, const char *const *sonames) DYNOBS_INTERNAL;

/* One duration (seconds) into a histogram of the instrumentations
 * (unit s); a refusal is counted. */
void dynobs__duration_record(struct dynobs_segment *seg, const char *name,
                             const double *bounds, size_t nbounds, double seconds,
                             const char *labels) DYNOBS_INTERNAL;

/* The semantic conventions' buckets for HTTP request durations, shared by
 * the client and server metrics. */
#define DYNOBS_HTTP_DURATION_NBOUNDS 14
extern const double dynobs__http_duration_bounds[DYNOBS_HTTP_DURATION_NBOUNDS] DYNOBS_INTERNAL;

/* Records http.client.request.duration (exact, whatever the sampling). */
void dynobs__http_client_metric(const char *method, const char *server, long port, long code,
                                const char *error_type, double seconds) DYNOBS_INTERNAL;

/* Detached spans: the caller owns the storage (a connection's state), the
 * span is not on any thread's context stack, and its parent and start
 * time are given. parent NULL starts a new trace. */
int dynobs__span_begin(struct dynobs_span *s, const char *name, int kind,
                       const struct dynobs_ctx *parent, uint64_t start_ns) DYNOBS_INTERNAL;
int dynobs__span_set(struct dynobs_span *s, const char *key, int type, const void *val,
                     size_t vlen) DYNOBS_INTERNAL;
/* Adds an attribute the span does not have yet (no scan for one to
 * replace); key of klen bytes, 1-255. */
int dynobs__span_add(struct dynobs_span *s, const char *key, size_t klen, int type,
                     const void *val, size_t vlen) DYNOBS_INTERNAL;
int dynobs__span_set_int(struct dynobs_span *s, const char *key, int64_t value) DYNOBS_INTERNAL;
int dynobs__span_status(struct dynobs_span *s, int code, const char *message) DYNOBS_INTERNAL;
int dynobs__span_finish(struct dynobs_span *s) DYNOBS_INTERNAL;

static inline void dynobs__count(unsigned c)
{
    struct dynobs_segment *s = dynobs__segment();
    if (s)
        __atomic_fetch_add(&dynobs__ring_of(s, dynobs__thread())->counters[c], 1,
                           __ATOMIC_RELAXED);
    else
        __atomic_fetch_add(&dynobs__lost, 1, __ATOMIC_RELAXED);
}

/* A three-digit status code as text ("404"); out holds at least 4. */
void dynobs__status_text(int code, char *out) DYNOBS_INTERNAL;

/* Joins key=value pairs into a metric label string ("k1=v1,k2=v2"),
 * leaving out empty values and values that hold ',' or '=' (which the
 * format cannot carry), and what would not fit in cap. */
void dynobs__labels_join(char *out, size_t cap, const char *(*parts)[2], size_t n)
    DYNOBS_INTERNAL;

#endif
