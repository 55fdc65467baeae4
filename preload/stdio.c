/*
 * DYNOBS_CAPTURE_LOGS for C's stdio: glibc's stdio writes through its own
 * internal write, which no preload can see, so the functions that print
 * to stderr are interposed here. Each calls the real function, then, when
 * the stream is stderr and capture is on, hands the same bytes to the
 * stderr line splitter (log.c). Every other stream costs one comparison.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "internal.h"

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
    return f == stderr && dynobs__config.capture_logs && !dynobs__guard &&
           __atomic_load_n(&dynobs__state, __ATOMIC_RELAXED) == DYNOBS_ON;
}

static void captured(const void *p, size_t n)
{
    int saved = errno;
    struct iovec v = {(void *)p, n};
    dynobs__stderr_written(&v, 1, n);
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
