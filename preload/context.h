/*
 * Context: which trace the work a thread does right now belongs to.
 *
 * context.c is the one owner of it. Each thread has a stack of entries:
 * its own API spans, remote contexts attached through the API, and the
 * server requests it is serving (bound by the HTTP server layer while the
 * thread answers them). Spans, log records and outbound requests take
 * their parent from the innermost live entry.
 *
 * The stack is pushed and popped by its own thread only, but a signal
 * handler may interrupt that thread anywhere, and an entry may be ended
 * by another thread (a span ended elsewhere, a response written by
 * another thread): entries are marked ended, and their thread pops them.
 */
#ifndef DYNOBS_PRELOAD_CONTEXT_H
#define DYNOBS_PRELOAD_CONTEXT_H

#include <stdint.h>

#include "../common/tracecontext.h"
#include "../common/util.h"
#include "tls.h"

struct dynobs_span;
struct dynobs_thread;

/* What pushed a context entry (struct dynobs_ctx.kind). */
enum {
    DYNOBS_CTX_SPAN = 0, /* an API span (or a context given to a call, not pushed) */
    DYNOBS_CTX_ATTACHED, /* dynobs_context_attach: dynobs_context_detach ends it */
    DYNOBS_CTX_BOUND,    /* a served request bound to its thread (blocking socket) */
    DYNOBS_CTX_BOUND_NB, /* the same read from a non-blocking socket: unbound when the
                          * thread turns out to multiplex */
    DYNOBS_CTX_BAGGAGE,  /* dynobs_baggage_set: dynobs_context_detach ends it */
};

#define DYNOBS_CORR_LINES_MAX 400u

/* One entry of a thread's context stack: a span of this thread, a remote
 * context made current by dynobs_context_attach, or a bound request. */
struct dynobs_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;  /* W3C trace flags */
    uint8_t remote; /* 1: attached remote context */
    uint8_t ended;  /* its span ended (maybe on another thread) */
    uint8_t valid;  /* fully written: readers skip an entry being written */
    uint8_t kind;   /* DYNOBS_CTX_*: what pushed it */
    uint8_t keep;   /* DYNOBS_KEEP_* of an unsampled span recorded for tail
                     * sampling: the spans started under it are recorded too */
    uint16_t ts_len;
    const struct dynobs_span *span; /* owner API span, NULL otherwise */
    uint32_t span_gen;
    /* Correlation headers of the request this context comes from, as the
     * lines to send ("name: value\r\n"), bit i of corr_mask for
     * configured name i (config.h). */
    uint8_t corr_mask;
    uint16_t corr_len;
    /* W3C baggage of the request this context comes from: bag_len bytes at
     * bag (in that request's state), valid while *bag_gen_p == bag_gen
     * (the request has not ended since). */
    uint16_t bag_len;
    uint32_t bag_gen;
    const char *bag;
    const uint32_t *bag_gen_p;
    char tracestate[DYNOBS_TRACESTATE_MAX];
    char corr[DYNOBS_CORR_LINES_MAX];
};

/* The current context of thread t: the innermost live entry of its
 * stack, or NULL. */
const struct dynobs_ctx *dynobs__ctx_current(struct dynobs_thread *t) DYNOBS_INTERNAL;

/* The parent of an outbound call (HTTP request, libcurl transfer, SQL
 * statement) made now on thread t: its current context. NULL when there
 * is none; then, if the thread multiplexes requests in flight, the shim
 * cannot tell which one (if any) caused the call: it starts its own
 * trace, and dynobs.context.ambiguous counts it. */
const struct dynobs_ctx *dynobs__ctx_outbound(struct dynobs_thread *t) DYNOBS_INTERNAL;
/* A new innermost entry to fill (NULL when the stack is full), then
 * published: readers see it only once it is complete. */
struct dynobs_ctx *dynobs__ctx_push(struct dynobs_thread *t) DYNOBS_INTERNAL;
void dynobs__ctx_publish(struct dynobs_ctx *c) DYNOBS_INTERNAL;
/* Pops the ended entries on top of t's stack (t's own thread only). */
void dynobs__ctx_pop_ended(struct dynobs_thread *t) DYNOBS_INTERNAL;

/* A remote context (no tracestate) from a parsed traceparent. */
void dynobs__ctx_remote(struct dynobs_ctx *c, const struct dynobs_traceparent *tp) DYNOBS_INTERNAL;
/* The same, continuing a request's W3C headers: a traceparent (taken only
 * when valid) and its tracestate (dropped whole when invalid). Returns c,
 * or NULL when the traceparent is not valid. */
struct dynobs_ctx *dynobs__ctx_from_headers(struct dynobs_ctx *c, const char *tp, size_t tp_len,
                                            const char *ts, size_t ts_len) DYNOBS_INTERNAL;

/* An API span is its thread's current context while it is open: entered
 * at its start (s->stack_idx then names its entry; it stays -1 when the
 * stack is full), left at its end on any thread (self: the caller's
 * block), which marks the entry ended and pops it at once on its own
 * thread. */
void dynobs__ctx_enter_span(struct dynobs_thread *t, struct dynobs_span *s,
                            const struct dynobs_ctx *parent) DYNOBS_INTERNAL;
void dynobs__ctx_leave_span(const struct dynobs_span *s,
                            struct dynobs_thread *self) DYNOBS_INTERNAL;

/* A request's context bound to the thread that serves it: its span is
 * that thread's current context until the binding is undone, which may
 * happen on another thread (the one that wrote the response). */
struct dynobs_ctx_binding {
    struct dynobs_thread *owner; /* NULL: not bound */
    struct dynobs_ctx *entry;    /* its entry in owner's stack */
    uint8_t span_id[8];
};

/* What a context carries besides the trace: set in a request's context
 * and inherited by the contexts started in it (fields as in struct
 * dynobs_ctx). */
struct dynobs_ctx_carry {
    const char *corr;
    uint16_t corr_len;
    uint8_t corr_mask;
    uint16_t bag_len;
    uint32_t bag_gen;
    const char *bag;
    const uint32_t *bag_gen_p;
};

/* The baggage a context carries, when still valid; NULL else. */
static inline const char *dynobs__ctx_baggage(const struct dynobs_ctx *c, size_t *len)
{
    if (!c->bag || !c->bag_len ||
        __atomic_load_n(c->bag_gen_p, __ATOMIC_ACQUIRE) != c->bag_gen)
        return NULL;
    *len = c->bag_len;
    return c->bag;
}

/* Binds span s (started, detached) to the calling thread t, with what
 * its context carries (carry may be NULL). Returns 0, or DYNOBS_ENOSPC
 * when t's stack is full (then nothing is bound). */
int dynobs__ctx_bind(struct dynobs_thread *t, const struct dynobs_span *s,
                     const struct dynobs_ctx_carry *carry,
                     struct dynobs_ctx_binding *b) DYNOBS_INTERNAL;
/* Undoes a binding from any thread (self: the caller's block): the entry
 * is marked ended, and popped at once when the caller is its thread (else
 * by that thread, lazily). */
void dynobs__ctx_unbind(struct dynobs_ctx_binding *b, struct dynobs_thread *self) DYNOBS_INTERNAL;

/* ---- threads that serve many requests at once ----
 *
 * A request read on a non-blocking stream is bound to the thread that
 * read it, as one read on a blocking socket is, as long as that thread
 * serves one request at a time (a thread per connection that waits with
 * poll, a process that runs one request after another). A thread that
 * waits with epoll, or that reads a request while another one it read is
 * still in flight, multiplexes: the code it runs next may belong to any
 * of its requests (a callback, a timer, a task resumed), and nothing seen
 * from below tells which. There, no request is bound; the runtime's own
 * context (runtimes/node, the Python package) says which request an
 * outbound call belongs to, and a call without one starts its own trace,
 * counted as ambiguous. A wrong link is worse than none. */

/* (dynobs__tls.multiplexing, tls.h: 1 once the calling thread multiplexes,
 * set by the epoll interposers and by the HTTP server layer.) */

/* The calling thread multiplexes from now on: the requests bound to it
 * (t: its block, or NULL when it has none) are unbound. */
void dynobs__ctx_multiplexing(struct dynobs_thread *t) DYNOBS_INTERNAL;

/* Requests in flight on multiplexing threads, process-wide (atomic). */
extern int dynobs__mux_inflight DYNOBS_INTERNAL;

/* One request being served, as context sees it: bound to the thread that
 * read it, or counted as in flight on a multiplexing thread. */
struct dynobs_serving {
    struct dynobs_ctx_binding bound;
    struct dynobs_thread *reader; /* the thread that read it (non-blocking) */
    uint8_t on_mux;               /* read by a multiplexing thread */
    int16_t reg;                  /* its entry in the multiplexed requests' table, -1 */
};

/* Request span s, read by the calling thread t on a blocking socket or
 * not, starts being served: the rule above decides whether it is bound
 * (with what carry says its context carries; NULL: nothing besides its ids). */
void dynobs__serving_begin(struct dynobs_thread *t, const struct dynobs_span *s, int blocking,
                           const struct dynobs_ctx_carry *carry,
                           struct dynobs_serving *sv) DYNOBS_INTERNAL;
/* The request's response is out (self: the caller's block). */
void dynobs__serving_end(struct dynobs_serving *sv, struct dynobs_thread *self) DYNOBS_INTERNAL;

/* A runtime named the request (by its server span's id) that a call
 * belongs to: c, a context of that trace made from its traceparent, gets
 * what that request's context carries (tracestate, correlation ids,
 * baggage) when it is being served on a multiplexing thread here.
 * Returns 1 when found. */
int dynobs__serving_carry(struct dynobs_ctx *c) DYNOBS_INTERNAL;

#endif
