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

struct dynobs_span;
struct dynobs_thread;

/* One entry of a thread's context stack: a span of this thread, a remote
 * context made current by dynobs_context_attach, or a bound request. */
struct dynobs_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;  /* W3C trace flags */
    uint8_t remote; /* 1: attached remote context */
    uint8_t ended;  /* its span ended (maybe on another thread) */
    uint8_t valid;  /* fully written: readers skip an entry being written */
    uint16_t ts_len;
    const struct dynobs_span *span; /* owner API span, NULL otherwise */
    uint32_t span_gen;
    char tracestate[DYNOBS_TRACESTATE_MAX];
};

/* The current context of thread t: the innermost live entry of its stack,
 * else the request its event loop is serving (below), or NULL. */
const struct dynobs_ctx *dynobs__ctx_current(struct dynobs_thread *t) DYNOBS_INTERNAL;

/* The parent of an outbound call (HTTP request, libcurl transfer, SQL
 * statement) made now on thread t: the innermost live entry of its stack,
 * else the context its connection was opened in (origin, may be NULL),
 * else the request its event loop is serving. NULL when there is none;
 * then, if the process is serving requests on event loops, the shim
 * cannot tell which one (if any) caused the call: it starts its own
 * trace, and dynobs.context.ambiguous counts it. */
const struct dynobs_ctx *dynobs__ctx_outbound(struct dynobs_thread *t,
                                              const struct dynobs_ctx *origin) DYNOBS_INTERNAL;
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
void dynobs__ctx_enter_span(struct dynobs_thread *t, struct dynobs_span *s) DYNOBS_INTERNAL;
void dynobs__ctx_leave_span(const struct dynobs_span *s,
                            struct dynobs_thread *self) DYNOBS_INTERNAL;

/* A request's context bound to the thread that serves it: its span is
 * that thread's current context until the binding is undone, which may
 * happen on another thread (the one that wrote the response). */
struct dynobs_ctx_binding {
    struct dynobs_thread *owner; /* NULL: not bound */
    int idx;                     /* its entry in owner's stack */
    uint8_t span_id[8];
};

/* Binds span s (started, detached) to the calling thread t. Returns 0, or
 * DYNOBS_ENOSPC when t's stack is full (then nothing is bound). */
int dynobs__ctx_bind(struct dynobs_thread *t, const struct dynobs_span *s,
                     struct dynobs_ctx_binding *b) DYNOBS_INTERNAL;
/* Undoes a binding from any thread (self: the caller's block): the entry
 * is marked ended, and popped at once when the caller is its thread (else
 * by that thread, lazily). */
void dynobs__ctx_unbind(struct dynobs_ctx_binding *b, struct dynobs_thread *self) DYNOBS_INTERNAL;

/* ---- requests served on event loops ----
 *
 * On a non-blocking stream, the thread that reads a request moves on to
 * other streams, so the request cannot be bound to it for as long as it
 * is served. What holds on every event loop is narrower: the handler that
 * a read triggers runs on that thread right after the read, before the
 * loop waits again. So a request whose head was just read is the
 * thread's loop context from then until the thread waits for events
 * (epoll_wait, poll, select and their kin), reads from another stream it
 * has written to or classified (another event's callback is running), or
 * the request ends. Outbound calls made meanwhile, or on connections
 * opened meanwhile (conn.h: a connection's origin), are its children.
 * Anything else is left unattributed, never guessed. */

/* Request req (a process-unique number), of span s read from fd, becomes
 * thread t's loop context. */
void dynobs__loop_enter(struct dynobs_thread *t, const struct dynobs_span *s, int fd,
                        uint64_t req) DYNOBS_INTERNAL;
/* Request req ended: it stops being t's loop context (t: the caller's). */
void dynobs__loop_end(struct dynobs_thread *t, uint64_t req) DYNOBS_INTERNAL;

/* fd + 1 of the stream whose request this thread's loop is serving, 0
 * when none: a word of its own, so that the loop's waits and reads end
 * the loop context with one store. */
extern __thread int dynobs__loop_fd1 __attribute__((tls_model("initial-exec"))) DYNOBS_INTERNAL;

/* The thread waits for events, or starts on another one: one store. */
static inline void dynobs__loop_turn(void)
{
    dynobs__loop_fd1 = 0;
}

/* A read from fd, whose transport entry is known (non-NULL): another
 * stream's data ends the current loop context. */
static inline void dynobs__loop_read(int fd)
{
    if (DYNOBS_UNLIKELY(dynobs__loop_fd1 != 0) && dynobs__loop_fd1 != fd + 1)
        dynobs__loop_fd1 = 0;
}

/* Requests in flight on event loops, process-wide (atomic). */
extern int dynobs__loop_inflight DYNOBS_INTERNAL;

#endif
