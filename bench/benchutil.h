/*
 * What the C benchmarks share: a monotonic clock, the median of a sample,
 * and an in-process HTTP/1.1 keep-alive responder that calls libc's own
 * read and write (so that only the client under test pays for dynobs).
 * Include it with _GNU_SOURCE defined (memmem).
 */
#ifndef DYNOBS_BENCHUTIL_H
#define DYNOBS_BENCHUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v and returns its median. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

typedef ssize_t (*bench_read_fn)(int, void *, size_t);
typedef ssize_t (*bench_write_fn)(int, const void *, size_t);

/* Answers every request head read on fd with "200 ok" until the peer
 * closes; bodies are not expected. */
static inline void bench_answer(int fd, bench_read_fn rd, bench_write_fn wr)
{
    static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t r = rd(fd, buf + have, sizeof buf - have);
        if (r <= 0)
            return;
        have += (size_t)r;
        char *end;
        while ((end = memmem(buf, have, "\r\n\r\n", 4))) {
            size_t used = (size_t)(end + 4 - buf);
            wr(fd, response, sizeof response - 1);
            memmove(buf, buf + used, have - used);
            have -= used;
        }
    }
}

#endif
