/*
 * Logs: records correlated with the calling thread's current span, from
 * the API (dynobs_log, dynobs_log_record) and, with DYNOBS_CAPTURE_LOGS=1,
 * from what the service writes to its stderr and passes to syslog().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>

#include "internal.h"
#include "real.h"

#include "../common/ring.h"

#define LOG_BODY_MAX 4096u
#define LOG_ITEMS_MAX 8192u

static const char *severity_text(int s)
{
    static const char *names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
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
        __atomic_fetch_add(&dynobs__lost, 1, __ATOMIC_RELAXED);
        return DYNOBS_ENOMEM;
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
    r.time_ns = dynobs__clock_now(&t->clk);
    r.tid = t->tid;
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
        dynobs__ring_reserve(ring, sizeof r + stl + blen + o.used, DYNOBS_REC_LOG,
                             truncated ? DYNOBS_RECF_TRUNCATED : 0);
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
    if (traceparent) {
        struct dynobs_traceparent tp;
        if (dynobs__traceparent_parse(traceparent, strlen(traceparent), &tp) < 0)
            return DYNOBS_EINVAL;
        dynobs__ctx_remote(&given, &tp);
    }
    return emit(severity, severity_text, body, strnlen(body, LOG_BODY_MAX + 1), attrs, nattrs,
                traceparent ? &given : NULL);
}

/* ---- DYNOBS_CAPTURE_LOGS: stderr lines ---- */

static const dynobs_attr stderr_attrs[] = {
    {.key = "log.iostream", .type = DYNOBS_ATTR_STRING, .v.s = "stderr"}};

/* Each complete line written to fd 2 becomes a record (severity
 * unspecified: the text is the service's own). A line's start waits in
 * the writing thread's buffer for its end; one longer than the buffer is
 * sent in pieces. */
static void stderr_bytes(struct dynobs_thread *t, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        size_t room = sizeof t->errline - t->errlen;
        if (take > room)
            take = room;
        memcpy(t->errline + t->errlen, p, take);
        t->errlen += (uint16_t)take;
        p += take;
        n -= take;
        int full = t->errlen == sizeof t->errline;
        if ((nl && p == nl) || full) {
            size_t len = t->errlen;
            if (len && t->errline[len - 1] == '\r')
                len--;
            if (len)
                emit(0, "", t->errline, len, stderr_attrs, 1, NULL);
            t->errlen = 0;
            if (nl && p == nl)
                p++, n--;
        }
    }
}

void dynobs__stderr_flush(void)
{
    if (!dynobs__config.capture_logs || !dynobs__on())
        return;
    struct dynobs_thread *t = dynobs__thread();
    if (!t || !t->errlen)
        return;
    dynobs__guard++;
    emit(0, "", t->errline, t->errlen, stderr_attrs, 1, NULL);
    t->errlen = 0;
    dynobs__guard--;
}

void dynobs__stderr_written(const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_thread *t = dynobs__thread();
    if (!t)
        return;
    dynobs__guard++;
    for (int i = 0; i < iovcnt && n; i++) {
        size_t len = iov[i].iov_len < n ? iov[i].iov_len : n;
        stderr_bytes(t, iov[i].iov_base, len);
        n -= len;
    }
    dynobs__guard--;
}

/* ---- DYNOBS_CAPTURE_LOGS: syslog ---- */

/* Syslog levels to OpenTelemetry severities, as the log data model maps
 * them, with the level's own name as the severity text. */
static const struct {
    uint8_t severity;
    const char *name;
} syslog_levels[8] = {{21, "emerg"}, {19, "alert"}, {18, "crit"}, {17, "err"},
                      {13, "warning"}, {10, "notice"}, {9, "info"}, {5, "debug"}};

__attribute__((format(printf, 2, 0))) static void syslog_record(int pri, const char *fmt,
                                                                 va_list ap)
{
    if (!fmt || dynobs__guard || !dynobs__config.capture_logs || !dynobs__on())
        return;
    char body[LOG_BODY_MAX + 1];
    int n = vsnprintf(body, sizeof body, fmt, ap); /* glibc's printf knows %m */
    if (n < 0)
        return;
    size_t len = (size_t)n < LOG_BODY_MAX ? (size_t)n : LOG_BODY_MAX;
    while (len && body[len - 1] == '\n')
        len--;
    dynobs__guard++;
    emit(syslog_levels[LOG_PRI(pri)].severity, syslog_levels[LOG_PRI(pri)].name, body,
         (size_t)n > LOG_BODY_MAX ? (size_t)n : len, NULL, 0, NULL);
    dynobs__guard--;
}

/* The real functions: vsyslog for syslog/vsyslog, __vsyslog_chk for the
 * fortified forms (their flag checks %n). errno is kept for %m. */
static void real_vsyslog(int pri, const char *fmt, va_list ap)
{
    void (*f)(int, const char *, va_list) = DYNOBS_REAL(vsyslog);
    if (f)
        f(pri, fmt, ap);
}

static void real_vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
    void (*f)(int, int, const char *, va_list) = DYNOBS_REAL(vsyslog_chk);
    if (f)
        f(pri, flag, fmt, ap);
    else
        real_vsyslog(pri, fmt, ap);
}

DYNOBS_API void vsyslog(int pri, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int saved = errno;
    real_vsyslog(pri, fmt, ap);
    errno = saved;
    syslog_record(pri, fmt, copy);
    va_end(copy);
}

DYNOBS_API void syslog(int pri, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsyslog(pri, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 0))) DYNOBS_API void __vsyslog_chk(int pri, int flag,
                                                                     const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int saved = errno;
    real_vsyslog_chk(pri, flag, fmt, ap);
    errno = saved;
    syslog_record(pri, fmt, copy);
    va_end(copy);
}

__attribute__((format(printf, 3, 4))) DYNOBS_API void __syslog_chk(int pri, int flag,
                                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    __vsyslog_chk(pri, flag, fmt, ap);
    va_end(ap);
}
