/* clock_gettime through the vDSO (common/vdso.c): the function found is
 * the kernel's, not libc's, where the process has a vDSO, and it tells
 * the same time as libc's clock_gettime, for each clock the shim reads. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <sys/auxv.h>
#include <time.h>

#include "vdso.h"

static uint64_t ns_of(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

Test(vdso, finds_the_kernels_function)
{
    dynobs_clock_gettime_fn f = dynobs__vdso_cgt_find();
    cr_assert_not_null(f);
    cr_assert_eq(f, dynobs__vdso_cgt, "the function found is kept");
    if (!getauxval(AT_SYSINFO_EHDR))
        cr_skip("no vDSO in this process (valgrind?): libc's clock_gettime is used");
    /* The vDSO's own symbol, as glibc's loader sees it. */
    void *h = dlopen("linux-vdso.so.1", RTLD_NOLOAD | RTLD_LAZY);
    cr_assert_not_null(h, "the loader knows the vDSO");
    cr_assert_eq((void *)f, dlsym(h, "__vdso_clock_gettime"));
}

Test(vdso, tells_the_same_time_as_libc)
{
    const clockid_t ids[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_COARSE};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct timespec a, b, c;
        cr_assert_eq(clock_gettime(ids[i], &a), 0);
        cr_assert_eq(dynobs__vdso_clock_gettime(ids[i], &b), 0);
        cr_assert_eq(clock_gettime(ids[i], &c), 0);
        /* (the coarse clock moves by ticks: its reads may be equal) */
        cr_assert(ns_of(&a) <= ns_of(&b) && ns_of(&b) <= ns_of(&c),
                  "clock %d: %llu %llu %llu", (int)ids[i], (unsigned long long)ns_of(&a),
                  (unsigned long long)ns_of(&b), (unsigned long long)ns_of(&c));
    }
    struct timespec a, c;
    clock_gettime(CLOCK_REALTIME, &a);
    uint64_t now = dynobs__vdso_now_ns();
    clock_gettime(CLOCK_REALTIME, &c);
    cr_assert(ns_of(&a) <= now && now <= ns_of(&c));
}
