/*
 * DYNOBS_CAPTURE_LOGS=1: what the service writes to its stderr and passes
 * to syslog() becomes log records, its output unchanged.
 *   - stderr: write()/writev() on fd 2 (handed over by the socket
 *     transport, which owns those interposers) and C's stdio on stderr
 *     (glibc's stdio writes through its own internal write, which no
 *     preload can see, so the functions that print to stderr are
 *     interposed here). Each complete line is a record.
 *   - syslog, vsyslog and their fortified forms: one record per message,
 *     with the log data model's severity for its level.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include "capture.h"
#include "real.h"
#include "state.h"

#define LOG_BODY_MAX DYNOBS_LOG_BODY_MAX

/* ---- stderr lines ---- */

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
                dynobs__log_write(0, "", t->errline, len, stderr_attrs, 1);
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
    /* (a thread that never wrote to stderr has nothing waiting: no block
     * is made for it at exit) */
    struct dynobs_thread *t = dynobs__thread_if_any();
    if (!t || !t->errlen)
        return;
    dynobs__tls.guard++;
    dynobs__log_write(0, "", t->errline, t->errlen, stderr_attrs, 1);
    t->errlen = 0;
    dynobs__tls.guard--;
}

static void stderr_written(const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_thread *t = dynobs__thread();
    if (!t)
        return;
    dynobs__tls.guard++;
    for (int i = 0; i < iovcnt && n; i++) {
        size_t len = iov[i].iov_len < n ? iov[i].iov_len : n;
        stderr_bytes(t, iov[i].iov_base, len);
        n -= len;
    }
    dynobs__tls.guard--;
}

ssize_t dynobs__stderr_write(const struct iovec *iov, int iovcnt, int vectored)
{
    ssize_t r;
    if (vectored) {
        ssize_t (*fn)(int, const struct iovec *, int) = DYNOBS_REAL(writev);
        r = fn ? fn(2, iov, iovcnt) : syscall(SYS_writev, 2, iov, iovcnt);
    } else {
        ssize_t (*fn)(int, const void *, size_t) = DYNOBS_REAL(write);
        r = fn ? fn(2, iov[0].iov_base, iov[0].iov_len)
               : syscall(SYS_write, 2, iov[0].iov_base, iov[0].iov_len);
    }
    if (r > 0) {
        int saved = errno;
        stderr_written(iov, iovcnt, (size_t)r);
        errno = saved;
    }
    return r;
}

/* ---- syslog ---- */

/* Syslog levels to OpenTelemetry severities, as the log data model maps
 * them, with the level's own name as the severity text. */
static const struct {
    uint8_t severity;
    char name[8];
} syslog_levels[8] = {{21, "emerg"}, {19, "alert"}, {18, "crit"}, {17, "err"},
                      {13, "warning"}, {10, "notice"}, {9, "info"}, {5, "debug"}};

__attribute__((format(printf, 2, 0))) static void syslog_record(int pri, const char *fmt,
                                                                 va_list ap)
{
    if (!fmt || dynobs__tls.guard || !dynobs__config.capture_logs || !dynobs__on())
        return;
    char body[LOG_BODY_MAX + 1];
    int n = vsnprintf(body, sizeof body, fmt, ap); /* glibc's printf knows %m */
    if (n < 0)
        return;
    size_t len = (size_t)n < LOG_BODY_MAX ? (size_t)n : LOG_BODY_MAX;
    while (len && body[len - 1] == '\n')
        len--;
    dynobs__tls.guard++;
    dynobs__log_write(syslog_levels[LOG_PRI(pri)].severity, syslog_levels[LOG_PRI(pri)].name,
                      body, (size_t)n > LOG_BODY_MAX ? (size_t)n : len, NULL, 0);
    dynobs__tls.guard--;
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

/* ---- C stdio on stderr ---- */

typedef int (*vfprintf_fn)(FILE *, const char *, va_list);
typedef int (*vfprintf_chk_fn)(FILE *, int, const char *, va_list);
typedef int (*fputs_fn)(const char *, FILE *);
typedef size_t (*fwrite_fn)(const void *, size_t, size_t, FILE *);
typedef int (*fputc_fn)(int, FILE *);
typedef void (*perror_fn)(const char *);

static void *real_vfprintf, *real_vfprintf_chk, *real_fputs, *real_fwrite, *real_fputc,
    *real_putc, *real_perror;

static inline int capturing(FILE *f)
{
    return f == stderr && dynobs__config.capture_logs && dynobs__layer_on(DYNOBS_LAYER_PROCESS);
}

static void captured(const void *p, size_t n)
{
    int saved = errno;
    struct iovec v = {(void *)p, n};
    stderr_written(&v, 1, n);
    errno = saved;
}

/* The text a printf call produced, formatted again into a bounded buffer
 * (only for stderr with capture on). */
__attribute__((format(printf, 1, 0))) static void captured_fmt(const char *fmt, va_list ap)
{
    char buf[4096];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n > 0)
        captured(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

#define REAL(var, type, name) ((type)dynobs__lookup(&var, name, NULL))

/* vfprintf and __vfprintf_chk (flag < 0 for the former). */
__attribute__((format(printf, 3, 0))) static int print(FILE *f, int flag, const char *fmt,
                                                       va_list ap)
{
    vfprintf_chk_fn chk =
        flag >= 0 ? REAL(real_vfprintf_chk, vfprintf_chk_fn, "__vfprintf_chk") : NULL;
    vfprintf_fn plain = chk ? NULL : REAL(real_vfprintf, vfprintf_fn, "vfprintf");
    if (!capturing(f))
        return chk ? chk(f, flag, fmt, ap) : plain(f, fmt, ap);
    va_list copy;
    va_copy(copy, ap);
    int saved = errno; /* for %m in the copy */
    int r = chk ? chk(f, flag, fmt, ap) : plain(f, fmt, ap);
    if (r > 0) {
        int after = errno;
        errno = saved;
        captured_fmt(fmt, copy);
        errno = after;
    }
    va_end(copy);
    return r;
}

DYNOBS_API int vfprintf(FILE *f, const char *fmt, va_list ap)
{
    return print(f, -1, fmt, ap);
}

DYNOBS_API int fprintf(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = print(f, -1, fmt, ap);
    va_end(ap);
    return r;
}

__attribute__((format(printf, 3, 0))) DYNOBS_API int __vfprintf_chk(FILE *f, int flag,
                                                                    const char *fmt, va_list ap)
{
    return print(f, flag < 0 ? 0 : flag, fmt, ap);
}

__attribute__((format(printf, 3, 4))) DYNOBS_API int __fprintf_chk(FILE *f, int flag,
                                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = print(f, flag < 0 ? 0 : flag, fmt, ap);
    va_end(ap);
    return r;
}

DYNOBS_API int fputs(const char *s, FILE *f)
{
    int r = REAL(real_fputs, fputs_fn, "fputs")(s, f);
    if (r >= 0 && capturing(f))
        captured(s, strlen(s));
    return r;
}

DYNOBS_API size_t fwrite(const void *p, size_t size, size_t n, FILE *f)
{
    size_t r = REAL(real_fwrite, fwrite_fn, "fwrite")(p, size, n, f);
    if (r && size && capturing(f))
        captured(p, r * size);
    return r;
}

static int one_char(fputc_fn real, int c, FILE *f)
{
    int r = real(c, f);
    if (r != EOF && capturing(f)) {
        char ch = (char)r;
        captured(&ch, 1);
    }
    return r;
}

DYNOBS_API int fputc(int c, FILE *f)
{
    return one_char(REAL(real_fputc, fputc_fn, "fputc"), c, f);
}

DYNOBS_API int putc(int c, FILE *f)
{
    return one_char(REAL(real_putc, fputc_fn, "putc"), c, f);
}

DYNOBS_API void perror(const char *s)
{
    int saved = errno;
    REAL(real_perror, perror_fn, "perror")(s);
    if (capturing(stderr)) {
        char buf[1024];
        int n = snprintf(buf, sizeof buf, "%s%s%s\n", s && *s ? s : "", s && *s ? ": " : "",
                         strerror(saved));
        if (n > 0)
            captured(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    }
    errno = saved;
}
