/*
 * Small inline helpers shared by every part: clocks, hashing, atomics.
 */
#ifndef DYNOBS_COMMON_UTIL_H
#define DYNOBS_COMMON_UTIL_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#define DYNOBS_LIKELY(x) __builtin_expect(!!(x), 1)
#define DYNOBS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define DYNOBS_INTERNAL __attribute__((visibility("hidden")))

/* ---- where code and data go in the shim (BENCHMARKS.md: process start,
 * and nginx's "Sixth round") ---- */

/* The code the shim runs before main in every process it is loaded in:
 * kept together in the .text.startup part of the text, next to the
 * constructor (which the compiler puts there), so that its pages come in
 * with the constructor's: a fault on a file's page maps the cached pages
 * of the aligned 64 KiB around it too (the kernel's fault-around), and
 * spread over the library's 200 KiB of text, the start-up code cost one
 * or two page faults more per process. */
#define DYNOBS_START_TEXT __attribute__((section(".text.startup.dynobs")))
/* The few variables every process writes at start (or at exit), whether
 * it records or not: on the page the loader writes anyway (relocations:
 * preload/start.ld puts them there), rather than in the zero-filled .bss
 * or elsewhere in .data, where each page written first is one more page
 * fault of every process start (a few microseconds each on a VM). Only
 * what every start writes: a larger variable that a start may write (the
 * environment's list, an application's signal actions) would push
 * .data.hot off that page. */
#define DYNOBS_START_DATA __attribute__((section(".data.dynobs_start")))
/* The few words every traced request reads (the state, the rules'
 * generation, the segment's epoch and pointer, the default policy, the
 * route trie, the real functions, the clock): together, in a few cache
 * lines and on one page, the one the lazily bound functions' table
 * (.got.plt) ends on (preload/path.ld puts them after it and the start's
 * variables, before .data). On a kernel whose system calls empty the
 * TLB, each page the shim's data adds between two system calls is a page
 * walk (BENCHMARKS.md, "Eighteenth round"). Then the two larger objects as hot, after the
 * others on the same page: the configuration (its scalars first) and the
 * entries of the lowest fds (preload/conn.h); tests/bss_test.sh fails when
 * they no longer fit on that page. */
#define DYNOBS_HOT_DATA __attribute__((section(".data.dynobs_hot")))
#define DYNOBS_HOT_CONFIG __attribute__((section(".data.dynobs_hot_config")))
#define DYNOBS_HOT_FDS __attribute__((section(".data.dynobs_hot_fds")))
/* A function only the rare cases of a hot path call: out of line and apart
 * (.text.unlikely), so that the code a repeated request runs stays in few
 * cache lines. */
#define DYNOBS_COLD __attribute__((noinline, cold))
/* A function a repeated request or span runs (its socket calls, its
 * span's start and end, its metric): GCC puts it in .text.hot, which the
 * linker lays out in one piece, so that the code a request runs lies on
 * seven pages rather than on twenty-one of the library's fifty
 * (BENCHMARKS.md, "Eleventh round"; bench/hot_code.py). Its unlikely
 * blocks still go to .text.unlikely, which a section attribute would
 * prevent. */
#define DYNOBS_HOT __attribute__((hot))
/* A function of a served request's usual way (preload/path.ld's list
 * before: BENCHMARKS.md, "Eighteenth round"), in the order the request
 * runs them: the linker's own script lays out .text.sorted.* sections
 * sorted by name, inside .text (where valgrind's tools also find their
 * code), so that they lie in one piece on as few pages as they can. On a
 * kernel whose system calls empty the TLB, each page of code a request
 * runs between two system calls is a page walk. The price: GCC does not
 * split such a function's unlikely blocks into .text.unlikely; they stay
 * at its end, and its rare ways belong in DYNOBS_COLD functions. Never
 * inlined: a copy inlined into a caller elsewhere would run from the
 * caller's pages, not the path's. */
#define DYNOBS_PATH(order)                                                                      \
    __attribute__((hot, noinline, section(".text.sorted.dynobs_" #order)))
/* A hot function whose calls are all inlined into it (GCC's flatten, across
 * files under LTO): the two ends of a repeated request, which are most of
 * its instructions. What it reaches only in rare cases must be
 * DYNOBS_COLD (or noinline), or flattening pulls that in as well. */
#define DYNOBS_FLATTEN __attribute__((flatten, hot))

/* Wall clock in ns since the epoch (the vDSO makes this a few ns). */
static inline uint64_t dynobs__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t dynobs__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t dynobs__mix64(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    return x;
}

/* A fast non-cryptographic hash of a byte string, 8 bytes per step. The
 * tail is read with fixed-size (possibly overlapping) loads, as wyhash
 * does, so that no variable-length copy sits on the metric hot path. */
static inline uint64_t dynobs__hash(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = (const unsigned char *)p;
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
    uint64_t w = 0;
    if (n >= 8) {
        const unsigned char *end = s + n;
        while (end - s > 8) {
            memcpy(&w, s, 8);
            h = (h ^ dynobs__mix64(w)) * 0x9e3779b97f4a7c15ull;
            s += 8;
        }
        memcpy(&w, end - 8, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        w = (uint64_t)a << 32 | b;
    } else if (n > 0) {
        w = (uint64_t)s[0] << 16 | (uint64_t)s[n / 2] << 8 | s[n - 1];
    }
    h = (h ^ dynobs__mix64(w ^ n)) * 0x9e3779b97f4a7c15ull;
    return dynobs__mix64(h);
}

static inline void dynobs__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline uint64_t dynobs__d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static inline double dynobs__u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

#endif
