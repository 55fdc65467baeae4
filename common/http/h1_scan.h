/*
 * Small scanning steps that the HTTP/1 request and response readers share
 * (and h1server.c, for the parts of a request it splits).
 */
#ifndef DYNOBS_COMMON_HTTP_H1_SCAN_H
#define DYNOBS_COMMON_HTTP_H1_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define DYNOBS_H1_INLINE static inline __attribute__((always_inline))

/* The offset of the first byte a or b in p[from..n), or n when there is
 * none. Request and response heads are read line by line, and most lines
 * are shorter than what a libc memchr call costs to set up: on x86-64 the
 * bytes are compared 16 at a time inline. No byte outside p[0..n) is
 * read: a buffer of 16 bytes or more ends with a chunk that overlaps the
 * previous one (or starts before from), and its bits below from are
 * shifted out; a shorter buffer is read byte by byte. */
static inline size_t dynobs__h1_find2(const uint8_t *p, size_t from, size_t n, uint8_t a,
                                      uint8_t b)
{
#if defined(__SSE2__)
    if (n >= 16) {
        const __m128i va = _mm_set1_epi8((char)a), vb = _mm_set1_epi8((char)b);
        for (size_t i = from; i < n; i += 16) {
            size_t at = i + 16 <= n ? i : n - 16;
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + at));
            unsigned m = (unsigned)_mm_movemask_epi8(
                _mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)));
            m >>= i - at;
            if (m)
                return i + (size_t)__builtin_ctz(m);
        }
        return n;
    }
#endif
    for (size_t i = from; i < n; i++)
        if (p[i] == a || p[i] == b)
            return i;
    return n;
}

/* The offset of the next line feed in p[from..n), or n. */
static inline size_t dynobs__h1_find_nl(const uint8_t *p, size_t from, size_t n)
{
    return dynobs__h1_find2(p, from, n, '\n', '\n');
}

/* The bytes equal to c among the 16 from p[i] (fewer at the end of
 * p[0..n)), as bits: bit j for p[i + j]. i < n. */
static inline uint32_t dynobs__h1_mask16(const uint8_t *p, size_t i, size_t n, uint8_t c)
{
#if defined(__SSE2__)
    if (n >= 16) {
        size_t at = i + 16 <= n ? i : n - 16;
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + at));
        return (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8((char)c))) >> (i - at);
    }
#endif
    uint32_t m = 0;
    for (size_t j = 0; j < 16 && i + j < n; j++)
        m |= (uint32_t)(p[i + j] == c) << j;
    return m;
}

/* The positions of one byte value in a buffer, in order, found 16 bytes
 * at a time: a head's line ends (or colons) cost one compare per 16 bytes
 * and a bit scan each, rather than a search per line. */
struct dynobs_h1_scan {
    const uint8_t *p;
    size_t n, base; /* mask: the bytes p[base..base+16) */
    uint32_t mask;
    uint8_t c;
};

DYNOBS_H1_INLINE void dynobs__h1_scan_init(struct dynobs_h1_scan *s, const uint8_t *p, size_t from,
                                        size_t n, uint8_t c)
{
    s->p = p;
    s->n = n;
    s->base = from;
    s->c = c;
    s->mask = from < n ? dynobs__h1_mask16(p, from, n, c) : 0;
}

/* The next position (n when there is none), which stays next until
 * dynobs__h1_scan_pop. */
DYNOBS_H1_INLINE size_t dynobs__h1_scan_peek(struct dynobs_h1_scan *s)
{
    if (!s->mask) {
#if defined(__SSE2__)
        /* Whole chunks first: no overlap to mind. */
        const __m128i v = _mm_set1_epi8((char)s->c);
        while (s->base + 32 <= s->n) {
            s->base += 16;
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s->p + s->base));
            s->mask = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, v));
            if (s->mask)
                return s->base + (size_t)__builtin_ctz(s->mask);
        }
#endif
        while (!s->mask) {
            if (s->base + 16 >= s->n) {
                s->base = s->n;
                return s->n;
            }
            s->base += 16;
            s->mask = dynobs__h1_mask16(s->p, s->base, s->n, s->c);
        }
    }
    return s->base + (size_t)__builtin_ctz(s->mask);
}

DYNOBS_H1_INLINE void dynobs__h1_scan_pop(struct dynobs_h1_scan *s)
{
    s->mask &= s->mask - 1;
}

static inline uint64_t dynobs__h1_load8(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t dynobs__h1_load4(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* a and b hold the same n bytes: 16 at a time on x86-64 (the last block
 * overlapping the one before it), words below 16; nothing outside
 * [a, a + n) and [b, b + n) is read. For the heads a connection repeats
 * (h1_request.c, h1_response.c: a memo's compare), where a libc memcmp
 * call costs more than most of them take. The blocks' differences are
 * gathered and tested once at the end: the heads compared are mostly
 * equal, so stopping at the first difference would save nothing where it
 * matters and cost a branch per block. */
static inline int dynobs__h1_same_sse2(const uint8_t *a, const uint8_t *b, size_t n)
{
#if defined(__SSE2__)
    if (n >= 16) {
        size_t last = n - 16, i = 0;
#define DYNOBS_H1_XOR16(k)                                                                      \
    _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(a + (k))),                  \
                  _mm_loadu_si128((const __m128i *)(const void *)(b + (k))))
        __m128i d = DYNOBS_H1_XOR16(last);
        for (; i + 32 <= last; i += 32)
            d = _mm_or_si128(d, _mm_or_si128(DYNOBS_H1_XOR16(i), DYNOBS_H1_XOR16(i + 16)));
        for (; i < last; i += 16)
            d = _mm_or_si128(d, DYNOBS_H1_XOR16(i));
#undef DYNOBS_H1_XOR16
        return _mm_movemask_epi8(_mm_cmpeq_epi8(d, _mm_setzero_si128())) == 0xffff;
    }
#endif
    if (n >= 8 && n <= 16)
        return dynobs__h1_load8(a) == dynobs__h1_load8(b) &&
               dynobs__h1_load8(a + n - 8) == dynobs__h1_load8(b + n - 8);
    return !memcmp(a, b, n);
}

/* Which side's memo a compare is for: each side has its own copy of the
 * wide compare, placed with the code of the stretch it runs in (a
 * request's read, a response's write), so that neither stretch touches
 * the other's code page for it (preload/path.ld, BENCHMARKS.md "Twentieth
 * round"). */
enum { DYNOBS_H1_SAME_REQ, DYNOBS_H1_SAME_RESP };

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__AVX2__)
/* Heads of DYNOBS_H1_SAME_WIDE bytes or more (a response's, typically a
 * few hundred) are compared 32 bytes at a time where the CPU has AVX2,
 * out of line (h1_same.c: about half the instructions of the loop above
 * for a 240-byte head, BENCHMARKS.md "Nineteenth round"). The pointers,
 * among the hot words, are set at their first call: to the AVX2 compare or
 * to the loop above. */
#define DYNOBS_H1_SAME_WIDE 64
extern int (*dynobs__h1_same_wide[2])(const uint8_t *a, const uint8_t *b, size_t n);
/* 1 when the AVX2 compare is the one in use on both sides (after a first
 * call of each; tests). */
int dynobs__h1_same_is_avx2(void);
#endif

/* a and b hold the same n bytes; side: DYNOBS_H1_SAME_REQ or _RESP (a
 * constant). */
static inline int dynobs__h1_same_on(int side, const uint8_t *a, const uint8_t *b, size_t n)
{
#ifdef DYNOBS_H1_SAME_WIDE
    if (n >= DYNOBS_H1_SAME_WIDE)
        return dynobs__h1_same_wide[side](a, b, n);
#else
    (void)side;
#endif
    return dynobs__h1_same_sse2(a, b, n);
}

static inline int dynobs__h1_same(const uint8_t *a, const uint8_t *b, size_t n)
{
    return dynobs__h1_same_on(DYNOBS_H1_SAME_REQ, a, b, n);
}

static inline int dynobs__h1_same_resp(const uint8_t *a, const uint8_t *b, size_t n)
{
    return dynobs__h1_same_on(DYNOBS_H1_SAME_RESP, a, b, n);
}

/* name (len bytes) is the lower-case lc, letters in any case. fold[k] is
 * 0x20 where lc[k] is a letter, else 0: (byte | fold) == lc[k] is then
 * exactly lower(byte) == lc[k] (any other byte must be equal), so the
 * names compare a word at a time, the last word overlapping the one
 * before; a name shorter than a word (a correlation header's may be)
 * byte by byte. */
static inline int dynobs__h1_same_name(const uint8_t *name, const char *lc, const uint8_t *fold,
                                       size_t len)
{
    if (len < 4) {
        for (size_t k = 0; k < len; k++)
            if ((name[k] | fold[k]) != (uint8_t)lc[k])
                return 0;
        return 1;
    }
    if (len < 8) {
        size_t last = len - 4;
        return (dynobs__h1_load4(name) | dynobs__h1_load4(fold)) == dynobs__h1_load4(lc) &&
               (dynobs__h1_load4(name + last) | dynobs__h1_load4(fold + last)) ==
                   dynobs__h1_load4(lc + last);
    }
    size_t last = len - 8;
    for (size_t k = 0; k < last; k += 8)
        if ((dynobs__h1_load8(name + k) | dynobs__h1_load8(fold + k)) != dynobs__h1_load8(lc + k))
            return 0;
    return (dynobs__h1_load8(name + last) | dynobs__h1_load8(fold + last)) ==
           dynobs__h1_load8(lc + last);
}

/* The bytes from p[i] up to the next line feed, or to the end of the
 * buffer when there is none in it. */
static inline size_t dynobs__h1_line_run(const uint8_t *p, size_t n, size_t i)
{
    return dynobs__h1_find_nl(p, i, n) - i;
}

/* The code of a complete status line "HTTP/1.x NNN ...", or -1 when the
 * line is not one (a class outside 1xx-5xx included). */
static inline int dynobs__h1_status_code(const char *s, size_t len)
{
    if (len < 12 || memcmp(s, "HTTP/1.", 7) || s[8] != ' ' || s[9] < '1' || s[9] > '5' ||
        s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
        return -1;
    return (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
}

/* One byte of a status line, kept while status (cap bytes, *len used)
 * has room: 0, or -1 when the line can no longer start "HTTP/1.". */
static inline int dynobs__h1_status_byte(char *status, size_t cap, uint8_t *len, uint8_t c)
{
    if (*len < cap)
        status[(*len)++] = (char)c;
    return *len <= 7 && c != (uint8_t) "HTTP/1."[*len - 1] ? -1 : 0;
}

/* One byte of a status line: 1 at its line feed, with *code set from the
 * whole line; 0 for more; -1 when it is not a status line. */
static inline int dynobs__h1_status_step(char *status, size_t cap, uint8_t *len, uint8_t c,
                                         int *code)
{
    if (c == '\n') {
        *code = dynobs__h1_status_code(status, *len); /* "HTTP/1.x NNN" */
        return *code < 0 ? -1 : 1;
    }
    return dynobs__h1_status_byte(status, cap, len, c);
}

/* Skips the rest of a header line nobody watches: i to the byte before
 * its line feed (or the buffer's last byte), *line_len grown by as much. */
static inline void dynobs__h1_skip_line(const uint8_t *p, size_t n, size_t *i, uint32_t *line_len)
{
    size_t run = dynobs__h1_line_run(p, n, *i);
    *line_len += (uint32_t)run;
    *i += run - 1;
}

#endif
