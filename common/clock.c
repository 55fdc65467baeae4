#define _GNU_SOURCE
#include "clock.h"


#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

struct dynobs_clock dynobs__clock DYNOBS_HOT_DATA;

#define RENEW_NS (100ull * 1000 * 1000)
#define FIRST_CALIBRATION_NS (50ull * 1000 * 1000)

/* Set up at the first timestamp rather than at start: deciding whether
 * the TSC can be trusted costs a cpuid (a trap to the hypervisor on a VM)
 * and three system calls, which a process that never records should not
 * pay. 0: not yet; 1: one thread is at it; 2: done. */
static int setup;
static int allowed = 1;             /* DYNOBS_CLOCK is not "system" */
static int usable;                  /* the TSC may be used at all */
static uint64_t cal_tsc0, cal_raw0; /* the first calibration sample */
static uint64_t next_cal_rt;        /* CLOCK_REALTIME of the next calibration */
static uint64_t cal_step;           /* its distance from the first sample */

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
static int kernel_trusts_tsc(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8)))
        return 0; /* no invariant TSC */
    /* System calls, not the functions: this runs at a process's first
     * timestamp, in the middle of the shim's own work, and open, read and
     * close are among those the shim interposes. */
    char buf[32] = {0};
    int fd = (int)syscall(SYS_openat, AT_FDCWD,
                          "/sys/devices/system/clocksource/clocksource0/current_clocksource",
                          O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    return n >= 3 && strncmp(buf, "tsc", 3) == 0 && (buf[3] == '\n' || buf[3] == '\0');
}
#endif

DYNOBS_START_TEXT
void dynobs__clock_init(int allow)
{
    allowed = allow;
}

/* Decides whether the TSC can be used and takes the first calibration
 * sample, once. Threads that come meanwhile read the system clock. */
static int clock_setup(void)
{
    int s = __atomic_load_n(&setup, __ATOMIC_ACQUIRE);
    if (DYNOBS_LIKELY(s == 2))
        return 1;
    if (s == 1 || !__atomic_compare_exchange_n(&setup, &s, 1, 0, __ATOMIC_ACQ_REL,
                                               __ATOMIC_ACQUIRE))
        return s == 2;
#if defined(__x86_64__)
    usable = allowed && kernel_trusts_tsc();
    if (usable) {
        cal_raw0 = clock_ns(CLOCK_MONOTONIC_RAW);
        cal_tsc0 = __rdtsc();
        cal_step = FIRST_CALIBRATION_NS;
        next_cal_rt = clock_ns(CLOCK_REALTIME) + cal_step;
    }
#else
    usable = 0;
#endif
    if (!usable)
        __atomic_store_n(&dynobs__clock.system, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&setup, 2, __ATOMIC_RELEASE);
    return 1;
}

#if defined(__x86_64__)
/* Computes the frequency over a window that grows tenfold each time
 * (50 ms, 0.5 s, 5 s, 50 s): each step ten times more precise. One thread
 * wins each step; the others keep their anchors. */
static void calibrate(uint64_t tsc, uint64_t rt)
{
    uint64_t due = __atomic_load_n(&next_cal_rt, __ATOMIC_RELAXED);
    if (rt < due || __atomic_load_n(&cal_step, __ATOMIC_RELAXED) > 50ull * 1000 * 1000 * 1000 ||
        !__atomic_compare_exchange_n(&next_cal_rt, &due, UINT64_MAX, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return;
    uint64_t span = clock_ns(CLOCK_MONOTONIC_RAW) - cal_raw0;
    uint64_t ticks = tsc - cal_tsc0;
    /* Only the winner writes; others may read it meanwhile (relaxed). */
    uint64_t step = __atomic_load_n(&cal_step, __ATOMIC_RELAXED) * 10;
    __atomic_store_n(&cal_step, step, __ATOMIC_RELAXED);
    __atomic_store_n(&next_cal_rt, rt + step, __ATOMIC_RELEASE);
    uint64_t mult = ticks ? (uint64_t)(((__uint128_t)span << 32) / ticks) : 0;
    if (mult == 0)
        return;
    __atomic_store_n(&dynobs__clock.mult, mult, __ATOMIC_RELAXED);
    __atomic_store_n(&dynobs__clock.limit, (uint64_t)(((__uint128_t)RENEW_NS << 32) / mult),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&dynobs__clock.ready, 1, __ATOMIC_RELEASE);
}
#endif

uint64_t dynobs__clock_slow(struct dynobs_clock_anchor *a)
{
    int ready = clock_setup();
    uint64_t ns = clock_ns(CLOCK_REALTIME);
#if defined(__x86_64__)
    if (ready && usable) {
        uint64_t tsc = __rdtsc();
        a->tsc = tsc;
        a->ns = ns;
        calibrate(tsc, ns);
    }
#else
    (void)a, (void)ready;
#endif
    return ns;
}
