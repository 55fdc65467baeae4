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

/* (the response's compare: placed with the code of a response's stretch,
 * dynobs__h1s_out_short's, preload/h1server.c) */
__attribute__((target("avx2"))) DYNOBS_PATH(31) static int
same_avx2(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t last = n - 32, i = 0;
#define DYNOBS_H1_XOR32(k)                                                                      \
    _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(a + (k))),            \
                     _mm256_loadu_si256((const __m256i *)(const void *)(b + (k))))
    __m256i d = DYNOBS_H1_XOR32(last);
    for (; i + 64 <= last; i += 64)
        d = _mm256_or_si256(d, _mm256_or_si256(DYNOBS_H1_XOR32(i), DYNOBS_H1_XOR32(i + 32)));
    for (; i < last; i += 32)
        d = _mm256_or_si256(d, DYNOBS_H1_XOR32(i));
#undef DYNOBS_H1_XOR32
    return _mm256_testz_si256(d, d);
}

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

static int first_call(const uint8_t *a, const uint8_t *b, size_t n)
{
    int (*f)(const uint8_t *, const uint8_t *, size_t) = have_avx2() ? same_avx2 : same_sse2;
    /* (threads racing here store the same pointer) */
    __atomic_store_n(&dynobs__h1_same_wide, f, __ATOMIC_RELAXED);
    return f(a, b, n);
}

int (*dynobs__h1_same_wide)(const uint8_t *, const uint8_t *, size_t) DYNOBS_HOT_DATA = first_call;

/* For the tests: 1 when the AVX2 compare is in use (after a first call). */
int dynobs__h1_same_is_avx2(void)
{
    return __atomic_load_n(&dynobs__h1_same_wide, __ATOMIC_RELAXED) == same_avx2;
}
#endif
