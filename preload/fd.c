/*
 * File-descriptor lifetime: close() resets what dynobs knows about an fd.
 * Nothing is tracked per fd yet; the interposer exists so that the
 * pass-through, the re-entry guard and "off means off" are in place and
 * tested before the socket interposers build on them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "real.h"

static int real_close(int fd)
{
    int (*fn)(int) = __atomic_load_n(&dynobs__real.close, __ATOMIC_ACQUIRE);
    if (DYNOBS_UNLIKELY(!fn)) {
        dynobs__real_bind();
        fn = __atomic_load_n(&dynobs__real.close, __ATOMIC_ACQUIRE);
        if (!fn) /* called from inside dlsym: nothing bound yet */
            return (int)syscall(SYS_close, fd);
    }
    return fn(fd);
}

DYNOBS_API int close(int fd)
{
    if (DYNOBS_LIKELY(__atomic_load_n(&dynobs__state, __ATOMIC_RELAXED) == DYNOBS_ON) &&
        !dynobs__guard) {
        /* Per-fd state is reset here once the socket interposers keep any. */
    }
    return real_close(fd);
}
