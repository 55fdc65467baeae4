/*
 * Span timestamps: wall-clock nanoseconds that cost one rdtsc instead of a
 * clock_gettime call (11 vs 28 ns on the reference VM, two per span).
 *
 * Each thread keeps an anchor: a (TSC, CLOCK_REALTIME) pair taken together.
 * A timestamp is the anchor's time plus the TSC ticks since, converted with
 * a frequency measured against CLOCK_MONOTONIC_RAW. Anchors are renewed
 * every 100 ms, so NTP slewing and calibration error stay within
 * microseconds. The TSC is used only where the kernel itself trusts it
 * (x86-64, invariant TSC, clocksource "tsc"); everywhere else, and until
 * the first calibration is done (50 ms after the first timestamp: nothing
 * is measured before a process first needs the time), this is
 * clock_gettime(CLOCK_REALTIME). DYNOBS_CLOCK=system turns the TSC off.
 */
#ifndef DYNOBS_COMMON_CLOCK_H
#define DYNOBS_COMMON_CLOCK_H

#include <stdint.h>

#include "util.h"
#include "vdso.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

struct dynobs_clock_anchor {
    uint64_t tsc;
    uint64_t ns;
};

struct dynobs_clock {
    int ready;      /* mult and limit are valid */
    /* The TSC is not used in this process (the kernel does not trust it,
     * or DYNOBS_CLOCK=system): every timestamp is CLOCK_REALTIME, taken
     * inline rather than through dynobs__clock_slow. */
    int system;
    uint64_t mult;  /* ns per tick, 32.32 fixed point */
    uint64_t limit; /* ticks after which an anchor is renewed */
};
extern struct dynobs_clock dynobs__clock DYNOBS_INTERNAL;

/* Records whether the TSC may be used: `allow` is 0 when the
 * configuration says DYNOBS_CLOCK=system. Whether it can be (and the first
 * calibration sample) is decided at the first timestamp. */
void dynobs__clock_init(int allow) DYNOBS_INTERNAL;

uint64_t dynobs__clock_slow(struct dynobs_clock_anchor *a) DYNOBS_INTERNAL;

static inline uint64_t dynobs__clock_now(struct dynobs_clock_anchor *a)
{
#if defined(__x86_64__)
    if (DYNOBS_LIKELY(__atomic_load_n(&dynobs__clock.ready, __ATOMIC_ACQUIRE))) {
        /* Relaxed loads: plain moves on x86, and race-free for the
         * thread that recalibrates meanwhile. */
        uint64_t d = __rdtsc() - a->tsc;
        if (DYNOBS_LIKELY(d < __atomic_load_n(&dynobs__clock.limit, __ATOMIC_RELAXED)))
            return a->ns + (uint64_t)(((__uint128_t)d *
                                       __atomic_load_n(&dynobs__clock.mult, __ATOMIC_RELAXED)) >>
                                      32);
    }
#endif
    if (DYNOBS_LIKELY(__atomic_load_n(&dynobs__clock.system, __ATOMIC_RELAXED)))
        return dynobs__vdso_now_ns();
    return dynobs__clock_slow(a);
}

#endif
