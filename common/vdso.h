/*
 * clock_gettime through the kernel's vDSO directly, rather than through
 * libc's clock_gettime (a call through the caller's PLT, then libc's
 * wrapper, which calls the vDSO). The same function answers either way;
 * what this saves is two pages of code between the caller and it: the
 * PLT's and libc's wrapper's, which on a kernel whose system calls empty
 * the TLB are two more page walks wherever a request reads the clock
 * (BENCHMARKS.md, "Eighteenth round"). Where there is no vDSO (valgrind,
 * other architectures), libc's clock_gettime is called.
 */
#ifndef DYNOBS_COMMON_VDSO_H
#define DYNOBS_COMMON_VDSO_H

#include <time.h>

#include "util.h"

typedef int (*dynobs_clock_gettime_fn)(clockid_t, struct timespec *);
/* The function to call; NULL until first asked for. */
extern dynobs_clock_gettime_fn dynobs__vdso_cgt DYNOBS_INTERNAL;
/* Finds it (the vDSO's __vdso_clock_gettime, else libc's clock_gettime)
 * and keeps it: async-signal-safe, any thread, any time. */
DYNOBS_COLD dynobs_clock_gettime_fn dynobs__vdso_cgt_find(void) DYNOBS_INTERNAL;

static inline int dynobs__vdso_clock_gettime(clockid_t id, struct timespec *ts)
{
    dynobs_clock_gettime_fn f = __atomic_load_n(&dynobs__vdso_cgt, __ATOMIC_RELAXED);
    if (DYNOBS_UNLIKELY(!f))
        f = dynobs__vdso_cgt_find();
    return f(id, ts);
}

static inline uint64_t dynobs__vdso_now_ns(void)
{
    struct timespec ts;
    dynobs__vdso_clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
