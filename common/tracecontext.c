#include "tracecontext.h"

#include <errno.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Two hex characters per byte value. */
static const char hexpairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

void dynobs__hex_encode(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + 2 * i, hexpairs + 2 * in[i], 2);
}

int dynobs__id_is_zero(const uint8_t *id, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= id[i];
    return acc == 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim_ows(const char **s, size_t *n)
{
    while (*n && is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_ows((*s)[*n - 1]))
        (*n)--;
}

/* A lowercase hex pair decodes as HI[first] + LO[second]: both tables carry
 * the digit's value (shifted into place for HI) plus 0x100 for a valid
 * digit and are 0 elsewhere, so the sum has bit 9 set exactly when both
 * characters are digits and the byte value in its low 8 bits. One add per
 * byte, and all the validity tests fold into one AND. */
#define H(c, v) [c] = 0x100 | (v) << 4
#define L(c, v) [c] = 0x100 | (v)
static const uint16_t hexhi[256] = {
    H('0', 0),  H('1', 1),  H('2', 2),  H('3', 3),  H('4', 4),  H('5', 5),  H('6', 6),
    H('7', 7),  H('8', 8),  H('9', 9),  H('a', 10), H('b', 11), H('c', 12), H('d', 13),
    H('e', 14), H('f', 15),
};
static const uint16_t hexlo[256] = {
    L('0', 0),  L('1', 1),  L('2', 2),  L('3', 3),  L('4', 4),  L('5', 5),  L('6', 6),
    L('7', 7),  L('8', 8),  L('9', 9),  L('a', 10), L('b', 11), L('c', 12), L('d', 13),
    L('e', 14), L('f', 15),
};
#undef H
#undef L
#define PAIR_OK 0x200u

static inline unsigned pair(const char *s)
{
    return (unsigned)hexhi[(unsigned char)s[0]] + hexlo[(unsigned char)s[1]];
}

#ifndef __SSE2__
/* Fixed counts, so the compiler unrolls it; *ok loses PAIR_OK on a bad digit.
 * (With SSE2, decode16 below.) */
static inline void decode(const char *s, size_t nbytes, uint8_t *out, unsigned *ok)
{
    unsigned acc = *ok;
#pragma GCC unroll 16
    for (size_t i = 0; i < nbytes; i++) {
        unsigned x = pair(s + 2 * i);
        acc &= x;
        out[i] = (uint8_t)x;
    }
    *ok = acc;
}
#else
/* 16 lowercase hex characters into 8 bytes at once: each character's
 * value (digits and a-f told apart by range; a byte of 0x80 or more is
 * negative to the signed compares, so neither), then each pair joined in
 * its 16-bit lane, the first character the high nibble. Returns 0 when
 * any character is not a lowercase hex digit. */
static inline int decode16(const char *s, uint8_t *out)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                  _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('a' - 1)),
                                   _mm_cmplt_epi8(v, _mm_set1_epi8('f' + 1)));
    __m128i nib = _mm_or_si128(_mm_and_si128(digit, _mm_sub_epi8(v, _mm_set1_epi8('0'))),
                               _mm_and_si128(letter, _mm_sub_epi8(v, _mm_set1_epi8('a' - 10))));
    __m128i hi = _mm_slli_epi16(_mm_and_si128(nib, _mm_set1_epi16(0x00ff)), 4);
    __m128i bytes = _mm_or_si128(hi, _mm_srli_epi16(nib, 8));
    _mm_storel_epi64((__m128i *)(void *)out, _mm_packus_epi16(bytes, bytes));
    return _mm_movemask_epi8(_mm_or_si128(digit, letter)) == 0xffff;
}
#endif

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

int dynobs__traceparent_parse(const char *s, size_t n, struct dynobs_traceparent *out)
{
    if (!s || !out)
        return -EINVAL;
    if (n && (is_ows(s[0]) || is_ows(s[n - 1])))
        trim_ows(&s, &n);
    /* version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55.
     * Every test below only rejects, so their order is free: the cheap
     * fixed-offset ones come first. */
    if (n < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -EINVAL;
    unsigned ver = pair(s);
    unsigned ok = ver;
    ver &= 0xff;
    /* Version ff is invalid; 00 is exactly 55 characters; a future version
     * may append fields, always after another '-'. */
    if (ver == 0xff || (ver == 0 ? n != 55 : n > 55 && s[55] != '-'))
        return -EINVAL;
    struct dynobs_traceparent tp;
#ifdef __SSE2__
    if (!(decode16(s + 3, tp.trace_id) & decode16(s + 19, tp.trace_id + 8) &
          decode16(s + 36, tp.parent_id)))
        return -EINVAL;
#else
    decode(s + 3, 16, tp.trace_id, &ok);
    decode(s + 36, 8, tp.parent_id, &ok);
#endif
    unsigned fl = pair(s + 53);
    ok &= fl;
    if (!(ok & PAIR_OK))
        return -EINVAL;
    if ((load64(tp.trace_id) | load64(tp.trace_id + 8)) == 0 || load64(tp.parent_id) == 0)
        return -EINVAL;
    tp.flags = (uint8_t)(fl & DYNOBS_FLAGS_KNOWN);
    *out = tp;
    return 0;
}

#ifndef __SSE2__
/* Fixed counts and an unrolled loop: one byte load, one table load and
 * one two-byte store per byte (faster here than computing the digits
 * eight at a time in a 64-bit word, which was tried). */
static inline void hex_fixed(const uint8_t *in, size_t n, char *out)
{
#pragma GCC unroll 16
    for (size_t i = 0; i < n; i++)
        memcpy(out + 2 * i, hexpairs + 2 * in[i], 2);
}
#else
/* The lowercase hex of 8 bytes (lo: the next 8 in the high half too when
 * wide), 16 digits per 16-byte store: each byte split into its two
 * nibbles, interleaved high first, then '0' + n, plus the gap to 'a'
 * where n > 9. SSE2 is part of x86-64, so no run-time check is needed. */
static inline __m128i hex_digits(__m128i nibbles)
{
    __m128i gap = _mm_and_si128(_mm_cmpgt_epi8(nibbles, _mm_set1_epi8(9)),
                                _mm_set1_epi8('a' - '0' - 10));
    return _mm_add_epi8(_mm_add_epi8(nibbles, _mm_set1_epi8('0')), gap);
}

static inline void hex_16(const uint8_t *in, char *out, int wide)
{
    __m128i v = wide ? _mm_loadu_si128((const __m128i *)(const void *)in)
                     : _mm_loadl_epi64((const __m128i *)(const void *)in);
    __m128i mask = _mm_set1_epi8(0x0f);
    __m128i lo = _mm_and_si128(v, mask);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
    _mm_storeu_si128((__m128i *)(void *)out, hex_digits(_mm_unpacklo_epi8(hi, lo)));
    if (wide)
        _mm_storeu_si128((__m128i *)(void *)(out + 16), hex_digits(_mm_unpackhi_epi8(hi, lo)));
}
#endif

int dynobs__traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8],
                               uint8_t flags, char *buf, size_t len)
{
    if (!buf || len < 56)
        return -ERANGE;
    buf[0] = '0';
    buf[1] = '0';
    buf[2] = '-';
#ifdef __SSE2__
    hex_16(trace_id, buf + 3, 1);
    buf[35] = '-';
    hex_16(span_id, buf + 36, 0);
#else
    hex_fixed(trace_id, 16, buf + 3);
    buf[35] = '-';
    hex_fixed(span_id, 8, buf + 36);
#endif
    buf[52] = '-';
    memcpy(buf + 53, hexpairs + 2 * flags, 2);
    buf[55] = '\0';
    return 55;
}

/* tracestate grammar (Level 2, "tracestate Header Field Values"):
 *   list        = list-member 0*31( OWS "," OWS list-member )
 *   list-member = ( key "=" value ) / OWS
 *   key         = ( lcalpha / DIGIT ) 0*255( keychar )
 *   keychar     = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
 *   value       = 0*255( chr ) nblk-chr
 *   chr         = %x20 / nblk-chr
 *   nblk-chr    = %x21-2B / %x2D-3C / %x3E-7E
 * Level 1 split a key at '@' into a tenant (up to 241 characters) and a
 * system (up to 14, starting with a letter); Level 2 dropped that split:
 * '@' is a key character like the others, anywhere but first, and only
 * the key's whole length (256) is limited. The conformance suite checks
 * it ("foo@", "foo@@bar", "t@" plus 15 characters are all valid keys). */
static const uint8_t keychar[256] = {
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['_'] = 1, ['-'] = 1, ['*'] = 1, ['/'] = 1,
    ['@'] = 1,
};

static int valid_key(const char *k, size_t n)
{
    if (n == 0 || n > 256)
        return 0;
    unsigned char c0 = (unsigned char)k[0];
    if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= '0' && c0 <= '9')))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!keychar[(unsigned char)k[i]])
            return 0;
    return 1;
}

static int nblk_chr(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != ',' && c != '=';
}

static int valid_value(const char *v, size_t n)
{
    if (n == 0 || n > 256 || !nblk_chr((unsigned char)v[n - 1]))
        return 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (v[i] != ' ' && !nblk_chr((unsigned char)v[i]))
            return 0;
    return 1;
}

struct member {
    const char *p; /* "key=value", OWS trimmed */
    size_t n;
    size_t keylen;
    int keep;
};

/* Drops whole members until the list, joined by ',', fits in cap bytes:
 * members longer than 128 characters first, the longest of them first
 * (the right-most of equals), then members from the end ("tracestate
 * Limits": whole entries, those over 128 first, then from the end). */
static void fit(struct member *m, size_t count, size_t cap)
{
    /* Each member counted with one separator: the list is total - 1. */
    size_t total = 0;
    for (size_t k = 0; k < count; k++)
        total += m[k].n + 1;
    while (total > cap + 1) {
        size_t big = count;
        for (size_t k = 0; k < count; k++)
            if (m[k].keep && m[k].n > 128 && (big == count || m[k].n >= m[big].n))
                big = k;
        if (big == count)
            break;
        m[big].keep = 0;
        total -= m[big].n + 1;
    }
    for (size_t k = count; k-- > 0 && total > cap + 1;) {
        if (m[k].keep) {
            m[k].keep = 0;
            total -= m[k].n + 1;
        }
    }
}

int dynobs__tracestate_parse(const char *s, size_t n, char *out, size_t outcap)
{
    if (!s || !out || outcap == 0)
        return -EINVAL;
    struct member m[DYNOBS_TRACESTATE_MEMBERS];
    size_t count = 0, seen = 0;
    size_t i = 0;
    while (i <= n) {
        const char *comma = memchr(s + i, ',', n - i);
        size_t j = comma ? (size_t)(comma - s) : n;
        const char *p = s + i;
        size_t len = j - i;
        i = j + 1;
        trim_ows(&p, &len);
        if (len == 0)
            continue; /* empty and whitespace-only members are allowed */
        const char *eq = memchr(p, '=', len);
        if (!eq)
            return -EINVAL;
        size_t kl = (size_t)(eq - p);
        if (!valid_key(p, kl) || !valid_value(eq + 1, len - kl - 1))
            return -EINVAL;
        /* The limit is on list-members as received, repeated keys too. */
        if (++seen > DYNOBS_TRACESTATE_MEMBERS)
            return -EINVAL;
        /* A repeated key is not the sender's to make, but the list stays:
         * the spec lets a vendor drop duplicates it did not generate, and
         * keeping the first keeps the position the sender gave it. */
        size_t k = 0;
        while (k < count && !(m[k].keylen == kl && memcmp(m[k].p, p, kl) == 0))
            k++;
        if (k < count)
            continue;
        m[count++] = (struct member){.p = p, .n = len, .keylen = kl, .keep = 1};
    }
    fit(m, count, outcap - 1);
    size_t o = 0;
    for (size_t k = 0; k < count; k++) {
        if (!m[k].keep)
            continue;
        if (o)
            out[o++] = ',';
        memcpy(out + o, m[k].p, m[k].n);
        o += m[k].n;
    }
    out[o] = '\0';
    return (int)o;
}
