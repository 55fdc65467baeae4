/*
 * Logs: records correlated with the calling thread's current span, from
 * the API (dynobs_log, dynobs_log_record), crash reports and the capture
 * of the service's own logs (capture.c), all through one writer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>

#include "rulesmap.h"
#include "state.h"

#include "../common/attrs.h"
#include "../common/ring.h"

#define LOG_BODY_MAX DYNOBS_LOG_BODY_MAX
#define LOG_ITEMS_MAX 8192u

static const char *severity_text(int s)
{
    static const char names[][6] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
    return s <= 0 ? "" : names[(s - 1) / 4];
}

/* Writes one log record. body is cut at LOG_BODY_MAX (the record is then
 * flagged truncated). */
static int emit(int severity, const char *stext, const char *body, size_t blen,
                const dynobs_attr *attrs, size_t nattrs, const struct dynobs_ctx *given)
{
    struct dynobs_thread *t = dynobs__thread();
    struct dynobs_segment *seg = dynobs__segment();
    if (!t || !seg) {
        dynobs__count_lost();
        return DYNOBS_ENOMEM;
    }
    /* A filter of the rules in force may drop this process's logs (it
     * matches on service.name and the executable: a log record has no
     * span fields). Dropped by the operator's choice, not lost. */
    const struct dynobs_rules_proc *rules = dynobs__rules_now();
    if (rules && rules->n[DYNOBS_RS_FILTERS]) {
        const struct dynobs_rule_facts none = {0};
        const struct dynobs_rule_filter *flt = dynobs__rules_filter(rules, &none);
        if (flt && (flt->drop & DYNOBS_DROP_LOGS))
            return 0;
    }
    int truncated = blen > LOG_BODY_MAX;
    if (truncated)
        blen = LOG_BODY_MAX;
    uint8_t items[LOG_ITEMS_MAX];
    struct dynobs_attrs_out o = {0};
    int rc = nattrs ? dynobs__attrs_put(items, sizeof items, DYNOBS_ITEM_LOG_ATTR, attrs, nattrs,
                                        dynobs__config.log_attr_limit,
                                        dynobs__config.attr_value_limit, &o)
                    : 0;
    struct dynobs_log_rec r;
    memset(&r, 0, sizeof r);
    const struct dynobs_ctx *c = given ? given : dynobs__ctx_current(t);
    if (c) {
        memcpy(r.trace_id, c->trace_id, 16);
        memcpy(r.span_id, c->span_id, 8);
        r.trace_flags = c->flags;
    }
    r.time_ns = dynobs__thread_now();
    r.tid = dynobs__me()->tid;
    r.severity = (uint8_t)severity;
    if (!stext)
        stext = severity_text(severity);
    size_t stl = strnlen(stext, 32);
    r.severity_text_len = (uint16_t)stl;
    r.body_len = (uint32_t)blen;
    r.attr_count = o.kept;
    r.dropped_attrs = o.dropped;
    r.items_len = (uint32_t)o.used;
    truncated |= o.truncated;
    struct dynobs_ring *ring = dynobs__ring_of(seg, t);
    struct dynobs_rec_hdr *h =
        dynobs__ring_reserve_in(ring, dynobs__ring_room(seg, ring), sizeof r + stl + blen + o.used,
                                DYNOBS_REC_LOG, truncated ? DYNOBS_RECF_TRUNCATED : 0);
    if (!h)
        return DYNOBS_ENOSPC;
    uint8_t *p = (uint8_t *)(h + 1);
    memcpy(p, &r, sizeof r);
    memcpy(p + sizeof r, stext, stl);
    memcpy(p + sizeof r + stl, body, blen);
    memcpy(p + sizeof r + stl + blen, items, o.used);
    dynobs__ring_commit(ring, h);
    if (truncated)
        __atomic_fetch_add(&ring->counters[DYNOBS_CTR_RECORDS_TRUNCATED], 1, __ATOMIC_RELAXED);
    return rc ? rc : truncated ? DYNOBS_ETRUNC : 0;
}

int dynobs__log_write(int severity, const char *severity_text, const char *body, size_t blen,
                      const dynobs_attr *attrs, size_t nattrs)
{
    return emit(severity, severity_text, body, blen, attrs, nattrs, NULL);
}

DYNOBS_API int dynobs_log(int severity, const char *fmt, ...)
{
    if (!fmt || severity < 1 || severity > 24)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    char body[LOG_BODY_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (n < 0)
        return DYNOBS_EINVAL;
    return emit(severity, NULL, body, (size_t)n, NULL, 0, NULL);
}

DYNOBS_API int dynobs_log_record(int severity, const char *severity_text, const char *body,
                                 const dynobs_attr *attrs, size_t nattrs,
                                 const char *traceparent)
{
    if (!body || severity < 0 || severity > 24 || (nattrs && !attrs))
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct dynobs_ctx given;
    if (traceparent &&
        !dynobs__ctx_from_headers(&given, traceparent, strlen(traceparent), NULL, 0))
        return DYNOBS_EINVAL;
    return emit(severity, severity_text, body, strnlen(body, LOG_BODY_MAX + 1), attrs, nattrs,
                traceparent ? &given : NULL);
}
