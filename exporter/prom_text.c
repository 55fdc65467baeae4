/*
 * Numbers for the exposition without printf. A page of 10 000 series is
 * mostly numbers, and snprintf("%.15g") followed by strtod costs a few
 * thousand instructions per non-integer (glibc works in multi-precision
 * arithmetic); the same text comes out of a few 128-bit multiplications
 * for the values a service reports. Anything outside that range is
 * handed to dx_fmt_double, so the text never differs.
 */
#include "prom_text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

char *dx_prom_room(struct dx_buf *b, size_t n)
{
    if (b->overflow)
        return NULL;
    if (b->len + n + 1 <= b->cap)
        return b->p + b->len;
    /* Grown as buf.c grows it (doubling from 4 KiB, at most the cap), so
     * that a page takes the same memory as before. */
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    if (b->len + n + 1 > cap)
        return NULL;
    char *p = realloc(b->p, cap);
    if (!p)
        return NULL;
    b->p = p;
    b->cap = cap;
    return b->p + b->len;
}

static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                            "34353637383940414243444546474849505152535455565758596061626364656667"
                            "6869707172737475767778798081828384858687888990919293949596979899";

char *dx_prom_u64(char *p, uint64_t v)
{
    char tmp[20], *end = tmp + sizeof tmp, *q = end;
    while (v >= 100) {
        q -= 2;
        memcpy(q, pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        q -= 2;
        memcpy(q, pairs + 2 * v, 2);
    } else {
        *--q = (char)('0' + v);
    }
    memcpy(p, q, (size_t)(end - q));
    return p + (end - q);
}

static const uint64_t pow10_u64[20] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull, 100000000ull,
    1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull, 10000000000000ull,
    100000000000000ull, 1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
    1000000000000000000ull, 10000000000000000000ull};

static u128 pow10_wide(int k)
{
    return k < 20 ? pow10_u64[k] : (u128)pow10_u64[19] * pow10_u64[k - 19];
}

/* v, positive and not an integer, rounded to `prec` significant digits
 * as printf rounds (to nearest, ties to even), when that decimal reads
 * back as v: its digits in *digits and the power of ten of the first in
 * *x10, and 1; 0 when it would not read back; -1 outside the range
 * handled; -2 or -3 when x, the guess of v's power of ten, is one too
 * low or too high (the digits come out one too many or too few).
 * v = m / 2^s exactly; with k = prec - 1 - x10, the digits are
 * m * 10^k / 2^s, and reading back is the decimal lying within half a
 * gap of v (a quarter of the gap above below a power of two). Every
 * product fits 128 bits for 2^-14 <= v < 10^15, the range this serves. */
static int round_to(uint64_t m, int s, int x, int prec, uint64_t *digits, int *x10)
{
    int k = prec - 1 - x;
    if (k < 0 || k > 21)
        return -1;
    u128 p10 = pow10_wide(k), n = (u128)m * p10, d = n >> s;
    if (d >= pow10_u64[prec] || d < pow10_u64[prec - 1]) /* x off by one: the caller retries */
        return d >= pow10_u64[prec] ? -2 : -3;
    u128 rem = n & (((u128)1 << s) - 1), half = (u128)1 << (s - 1);
    if (rem > half || (rem == half && (d & 1)))
        d++;
    u128 scaled = d << s, diff = scaled > n ? scaled - n : n - scaled;
    /* Below a power of two the gap to the next double down is half the
     * gap above (in this range a power of two is an integer or has at
     * most 11 digits, so this never decides; it keeps the test right if
     * the range grows). Ties go to the even mantissa. */
    int lower_half = scaled < n && m == (1ull << 52);
    u128 bound = lower_half ? diff * 4 : diff * 2;
    if (bound > p10 || (bound == p10 && (m & 1)))
        return 0;
    if (d == pow10_u64[prec]) {
        d = pow10_u64[prec - 1];
        x++;
    }
    *digits = (uint64_t)d;
    *x10 = x;
    return 1;
}

/* The %g text of a positive non-integer v in fixed notation, or 0 when v
 * is outside the range handled here. */
static int fixed(char *out, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int exp = (int)(bits >> 52) & 0x7ff;
    if (exp == 0 || !(v >= 0x1p-14 && v < 1e15))
        return 0;
    uint64_t m = (bits & ((1ull << 52) - 1)) | (1ull << 52);
    int s = 1075 - exp;
    int x = (int)floor(log10(v)); /* may be off by one: round_to says so */
    uint64_t d = 0;
    int x10 = 0, ok = 0;
    for (int prec = 15; prec <= 17 && ok != 1; prec++) {
        ok = round_to(m, s, x, prec, &d, &x10);
        if (ok == -2 || ok == -3) {
            x += ok == -2 ? 1 : -1;
            ok = round_to(m, s, x, prec, &d, &x10);
        }
        if (ok < 0)
            return 0;
    }
    if (ok != 1 || x10 < -4 || x10 >= 15) /* %g would use an exponent */
        return 0;
    while (d % 10 == 0) /* %g drops trailing zeros */
        d /= 10;
    char dig[20];
    int nd = (int)(dx_prom_u64(dig, d) - dig), o = 0;
    if (x10 >= 0) {
        for (int i = 0; i <= x10; i++)
            out[o++] = i < nd ? dig[i] : '0';
        if (nd > x10 + 1) {
            out[o++] = '.';
            memcpy(out + o, dig + x10 + 1, (size_t)(nd - x10 - 1));
            o += nd - x10 - 1;
        }
    } else {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -x10 - 1; i++)
            out[o++] = '0';
        memcpy(out + o, dig, (size_t)nd);
        o += nd;
    }
    return o;
}

char *dx_prom_num(char *p, double v)
{
    /* Integers first (counters, most gauges): inside +-2^53 the cast is
     * defined and exact, and comparing back is cheaper than floor(). */
    if (v > -9007199254740992.0 && v < 9007199254740992.0) {
        int64_t i = (int64_t)v;
        if ((double)i == v) {
            if (i < 0) {
                *p++ = '-';
                return dx_prom_u64(p, (uint64_t)-i);
            }
            return dx_prom_u64(p, (uint64_t)i);
        }
    }
    if (isnan(v)) {
        memcpy(p, "NaN", 3);
        return p + 3;
    }
    if (isinf(v)) {
        memcpy(p, v > 0 ? "+Inf" : "-Inf", 4);
        return p + 4;
    }
    /* Integers of 2^53 and more: dx_fmt_double, as before (below). */
    char *start = p;
    double a = v;
    if (v < 0) {
        *p++ = '-';
        a = -v;
    }
    int n = fixed(p, a);
    if (n > 0)
        return p + n;
    char tmp[40];
    n = dx_fmt_double(tmp, sizeof tmp, v);
    memcpy(start, tmp, (size_t)n);
    return start + n;
}
