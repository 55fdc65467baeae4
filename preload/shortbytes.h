/*
 * Compares and copies of the few bytes a served request's facts are made
 * of (a method, a host, a path, a route): up to 16 bytes are moved as two
 * overlapping words, without the call into libc that memcmp and memcpy
 * cost for every length they are not told at compile time. Nothing
 * outside [p, p + n) is read or written.
 */
#ifndef DYNOBS_PRELOAD_SHORTBYTES_H
#define DYNOBS_PRELOAD_SHORTBYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t dynobs__ld8(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t dynobs__ld4(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* a and b hold the same n bytes. */
static inline int dynobs__same_bytes(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    if (n >= 8 && n <= 16)
        return dynobs__ld8(x) == dynobs__ld8(y) && dynobs__ld8(x + n - 8) == dynobs__ld8(y + n - 8);
    if (n >= 4 && n < 8)
        return dynobs__ld4(x) == dynobs__ld4(y) && dynobs__ld4(x + n - 4) == dynobs__ld4(y + n - 4);
    if (n < 4) {
        for (size_t i = 0; i < n; i++)
            if (x[i] != y[i])
                return 0;
        return 1;
    }
    return !memcmp(a, b, n);
}

/* memcpy(dst, src, n), for buffers that do not overlap. */
static inline void dynobs__copy_bytes(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n >= 8 && n <= 16) {
        uint64_t a = dynobs__ld8(s), b = dynobs__ld8(s + n - 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a = dynobs__ld4(s), b = dynobs__ld4(s + n - 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else {
        memcpy(d, s, n);
    }
}

#endif
