/*
 * Context propagation API: reading the current context as W3C headers and
 * making a remote context current.
 */
#include <stddef.h>
#include <string.h>

#include "internal.h"

DYNOBS_API int dynobs_current_traceparent(char *buf, size_t len)
{
    if (!buf)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    if (len < DYNOBS_TRACEPARENT_LEN + 1)
        return DYNOBS_ERANGE;
    struct dynobs_thread *t = dynobs__thread();
    const struct dynobs_ctx *c = t ? dynobs__ctx_current(t) : NULL;
    if (!c)
        return DYNOBS_ENOENT;
    return dynobs__traceparent_format(c->trace_id, c->span_id, c->flags, buf, len);
}

DYNOBS_API int dynobs_current_tracestate(char *buf, size_t len)
{
    if (!buf || len == 0)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct dynobs_thread *t = dynobs__thread();
    const struct dynobs_ctx *c = t ? dynobs__ctx_current(t) : NULL;
    if (!c)
        return DYNOBS_ENOENT;
    if (len < (size_t)c->ts_len + 1)
        return DYNOBS_ERANGE;
    memcpy(buf, c->tracestate, c->ts_len);
    buf[c->ts_len] = '\0';
    return c->ts_len;
}

DYNOBS_API int dynobs_context_attach(const char *traceparent, const char *tracestate)
{
    if (!traceparent)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct dynobs_traceparent tp;
    if (dynobs__traceparent_parse(traceparent, strlen(traceparent), &tp) < 0)
        return DYNOBS_EINVAL;
    struct dynobs_thread *t = dynobs__thread();
    if (!t)
        return DYNOBS_ENOMEM;
    dynobs__ctx_pop_ended(t);
    struct dynobs_ctx *c = dynobs__ctx_push(t);
    if (!c)
        return DYNOBS_ENOSPC;
    memcpy(c->trace_id, tp.trace_id, 16);
    memcpy(c->span_id, tp.parent_id, 8);
    c->flags = tp.flags;
    c->remote = 1;
    c->span = NULL;
    c->span_gen = 0;
    c->ts_len = 0;
    if (tracestate) {
        /* An invalid tracestate is dropped whole; the traceparent stays. */
        int n = dynobs__tracestate_parse(tracestate, strlen(tracestate), c->tracestate,
                                         sizeof c->tracestate);
        c->ts_len = (uint16_t)(n > 0 ? n : 0);
    }
    dynobs__ctx_publish(c);
    return 0;
}

DYNOBS_API void dynobs_context_detach(void)
{
    if (!dynobs__on())
        return;
    struct dynobs_thread *t = dynobs__thread();
    if (!t)
        return;
    /* End the innermost attached context still open; spans started under
     * it and not ended yet stay current until they end. */
    for (int d = t->depth; d > 0; d--) {
        struct dynobs_ctx *c = &t->stack[d - 1];
        if (c->remote && c->valid && !c->ended) {
            __atomic_store_n(&c->ended, 1, __ATOMIC_RELEASE);
            break;
        }
    }
    dynobs__ctx_pop_ended(t);
}

void dynobs__ctx_remote(struct dynobs_ctx *c, const struct dynobs_traceparent *tp)
{
    memset(c, 0, offsetof(struct dynobs_ctx, tracestate));
    memcpy(c->trace_id, tp->trace_id, 16);
    memcpy(c->span_id, tp->parent_id, 8);
    c->flags = tp->flags;
    c->remote = 1;
}
