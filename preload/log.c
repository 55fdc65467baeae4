/*
 * Logs: dynobs_log() writes a log record correlated with the current span.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#include "../common/ring.h"

#define LOG_BODY_MAX 4096u

static const char *severity_text(int s)
{
    static const char *names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
    return s <= 0 ? "" : names[(s - 1) / 4];
}

DYNOBS_API int dynobs_log(int severity, const char *fmt, ...)
{
    if (!fmt || severity < 1 || severity > 24)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct dynobs_thread *t = dynobs__thread();
    struct dynobs_segment *seg = dynobs__segment();
    if (!t || !seg) {
        __atomic_fetch_add(&dynobs__lost, 1, __ATOMIC_RELAXED);
        return DYNOBS_ENOMEM;
    }
    char body[LOG_BODY_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (n < 0)
        return DYNOBS_EINVAL;
    int truncated = (size_t)n > LOG_BODY_MAX;
    size_t blen = truncated ? LOG_BODY_MAX : (size_t)n;
    struct dynobs_log_rec r;
    memset(&r, 0, sizeof r);
    const struct dynobs_ctx *c = dynobs__ctx_current(t);
    if (c) {
        memcpy(r.trace_id, c->trace_id, 16);
        memcpy(r.span_id, c->span_id, 8);
        r.trace_flags = c->flags;
    }
    r.time_ns = dynobs__clock_now(&t->clk);
    r.tid = t->tid;
    r.severity = (uint8_t)severity;
    const char *st = severity_text(severity);
    r.severity_text_len = (uint16_t)strlen(st);
    r.body_len = (uint32_t)blen;
    struct dynobs_ring *ring = dynobs__ring_of(seg, t);
    struct dynobs_rec_hdr *h =
        dynobs__ring_reserve(ring, sizeof r + r.severity_text_len + blen, DYNOBS_REC_LOG,
                             truncated ? DYNOBS_RECF_TRUNCATED : 0);
    if (!h)
        return DYNOBS_ENOSPC;
    uint8_t *p = (uint8_t *)(h + 1);
    memcpy(p, &r, sizeof r);
    memcpy(p + sizeof r, st, r.severity_text_len);
    memcpy(p + sizeof r + r.severity_text_len, body, blen);
    dynobs__ring_commit(ring, h);
    if (truncated)
        __atomic_fetch_add(&ring->counters[DYNOBS_CTR_RECORDS_TRUNCATED], 1, __ATOMIC_RELAXED);
    return truncated ? DYNOBS_ETRUNC : 0;
}
