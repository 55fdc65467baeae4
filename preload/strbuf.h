/*
 * Appending to a bounded buffer without stdio: snprintf costs a few
 * hundred ns a call, and a request would otherwise make several. What
 * does not fit is cut; the buffer stays NUL-terminated.
 */
#ifndef DYNOBS_PRELOAD_STRBUF_H
#define DYNOBS_PRELOAD_STRBUF_H

#include <stddef.h>
#include <string.h>

struct dynobs_sb {
    char *p;
    size_t len, cap;
};

static inline void dynobs__sb_put(struct dynobs_sb *b, const char *s, size_t n)
{
    if (b->len + n >= b->cap)
        n = b->len + 1 < b->cap ? b->cap - b->len - 1 : 0;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void dynobs__sb_str(struct dynobs_sb *b, const char *s)
{
    dynobs__sb_put(b, s, strlen(s));
}

static inline void dynobs__sb_int(struct dynobs_sb *b, long v)
{
    char tmp[24];
    int i = 24, neg = v < 0;
    unsigned long u = neg ? 0ul - (unsigned long)v : (unsigned long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg)
        tmp[--i] = '-';
    dynobs__sb_put(b, tmp + i, (size_t)(24 - i));
}

#endif
