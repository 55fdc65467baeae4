/*
 * Another LD_PRELOAD library that wraps send() and write() (as
 * libfaketime, tracers and proxies do), for the test of two preloaded
 * libraries at once: it forwards to the next definition and, at exit,
 * writes how many calls it saw to $WRAPSEND_OUT.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>

static unsigned long sends, writes;

__attribute__((visibility("default"))) ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    static ssize_t (*next)(int, const void *, size_t, int);
    if (!next)
        next = (ssize_t(*)(int, const void *, size_t, int))dlsym(RTLD_NEXT, "send");
    __atomic_fetch_add(&sends, 1, __ATOMIC_RELAXED);
    return next(fd, buf, n, flags);
}

__attribute__((visibility("default"))) ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*next)(int, const void *, size_t);
    if (!next)
        next = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    __atomic_fetch_add(&writes, 1, __ATOMIC_RELAXED);
    return next(fd, buf, n);
}

__attribute__((destructor)) static void report(void)
{
    const char *out = getenv("WRAPSEND_OUT");
    if (!out)
        return;
    FILE *f = fopen(out, "a");
    if (f) {
        fprintf(f, "sends %lu writes %lu\n", sends, writes);
        fclose(f);
    }
}
