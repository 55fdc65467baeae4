/*
 * The wide compare of repeated heads (h1_scan.h, dynobs__h1_same_wide):
 * AVX2 where the CPU has it, found out at the first call (cpuid, not at
 * process start: on a VM cpuid traps to the hypervisor, and most processes
 * never compare a head).
 */
#include "h1_scan.h"

#ifdef DYNOBS_H1_SAME_WIDE
#include <cpuid.h>
#include <immintrin.h>

#include "../util.h"

/* One copy per side (h1_scan.h), each in its side's path section: the
 * request's with dynobs__h1s_in_short's code, the response's with
 * dynobs__h1s_out_short's (preload/h1server.c). */
#define DYNOBS_H1_SAME_AVX2(name, order)                                                        \
    __attribute__((target("avx2"))) DYNOBS_PATH(order) static int name(                         \
        const uint8_t *a, const uint8_t *b, size_t n)                                           \
    {                                                                                           \
        size_t last = n - 32, i = 0;                                                            \
        __m256i d = xor32(a, b, last);                                                          \
        for (; i + 64 <= last; i += 64)                                                         \
            d = _mm256_or_si256(d, _mm256_or_si256(xor32(a, b, i), xor32(a, b, i + 32)));       \
        for (; i < last; i += 32)                                                               \
            d = _mm256_or_si256(d, xor32(a, b, i));                                             \
        return _mm256_testz_si256(d, d);                                                        \
    }

/* The 32 bytes at a + k and b + k, exclusive-or'ed. */
__attribute__((target("avx2"), always_inline)) static inline __m256i xor32(const uint8_t *a,
                                                                          const uint8_t *b,
                                                                          size_t k)
{
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(a + k)),
                            _mm256_loadu_si256((const __m256i *)(const void *)(b + k)));
}

DYNOBS_H1_SAME_AVX2(same_avx2_req, 12)
DYNOBS_H1_SAME_AVX2(same_avx2_resp, 31)

static int same_sse2(const uint8_t *a, const uint8_t *b, size_t n)
{
    return dynobs__h1_same_sse2(a, b, n);
}

/* AVX2 usable: the CPU has it and the kernel saves the YMM registers. */
static int have_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX))
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6 || __get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & bit_AVX2) != 0;
}

typedef int (*same_fn)(const uint8_t *, const uint8_t *, size_t);

/* The side's compare, once the CPU is known: stored for the next calls
 * (threads racing here store the same pointer). */
static same_fn choose(int side)
{
    same_fn f = !have_avx2() ? same_sse2 : side == DYNOBS_H1_SAME_REQ ? same_avx2_req : same_avx2_resp;
    __atomic_store_n(&dynobs__h1_same_wide[side], f, __ATOMIC_RELAXED);
    return f;
}

static int first_call_req(const uint8_t *a, const uint8_t *b, size_t n)
{
    return choose(DYNOBS_H1_SAME_REQ)(a, b, n);
}

static int first_call_resp(const uint8_t *a, const uint8_t *b, size_t n)
{
    return choose(DYNOBS_H1_SAME_RESP)(a, b, n);
}

same_fn dynobs__h1_same_wide[2] DYNOBS_HOT_DATA = {first_call_req, first_call_resp};

/* For the tests: 1 when the AVX2 compare is in use on both sides (after a
 * first call of each). */
int dynobs__h1_same_is_avx2(void)
{
    return __atomic_load_n(&dynobs__h1_same_wide[DYNOBS_H1_SAME_REQ], __ATOMIC_RELAXED) ==
               same_avx2_req &&
           __atomic_load_n(&dynobs__h1_same_wide[DYNOBS_H1_SAME_RESP], __ATOMIC_RELAXED) ==
               same_avx2_resp;
}
#endif
