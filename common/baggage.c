#include "baggage.h"

#include <string.h>

/* RFC 9110 token characters. */
static int tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* W3C Baggage's baggage-octet: printable US-ASCII but for space, '"',
 * ',', ';' and '\'. */
static int boctet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
           (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Appends n bytes to out when they fit (b->o + n <= cap); else marks the
 * member as not fitting. */
struct out {
    char *buf;
    size_t o, cap;
    int fits;
};

static void put(struct out *b, const char *s, size_t n)
{
    if (!b->fits || b->o + n > b->cap) {
        b->fits = 0;
        return;
    }
    memcpy(b->buf + b->o, s, n);
    b->o += n;
}

/* "key OWS = OWS value" (or, where bare is allowed, a property's lone
 * key) at *pp, written to b without white space. Returns 0 or -1 when
 * malformed. */
static int pair(const char **pp, const char *end, int bare, struct out *b)
{
    const char *p = *pp, *k = p;
    while (p < end && tchar((unsigned char)*p))
        p++;
    if (p == k)
        return -1;
    put(b, k, (size_t)(p - k));
    p = skip_ows(p, end);
    if (p < end && *p == '=') {
        p = skip_ows(p + 1, end);
        const char *v = p;
        while (p < end && boctet((unsigned char)*p))
            p++;
        put(b, "=", 1);
        put(b, v, (size_t)(p - v));
        p = skip_ows(p, end);
    } else if (!bare) {
        return -1;
    }
    *pp = p;
    return 0;
}

/* One list-member at *pp: its key, value and properties. */
static int member(const char **pp, const char *end, struct out *b)
{
    if (pair(pp, end, 0, b) < 0)
        return -1;
    while (*pp < end && **pp == ';') {
        *pp = skip_ows(*pp + 1, end);
        put(b, ";", 1);
        if (pair(pp, end, 1, b) < 0)
            return -1;
    }
    return *pp < end && **pp != ',' ? -1 : 0;
}

int dynobs__baggage_normalize(const char *in, size_t n, char *out, size_t cap)
{
    const char *p = in, *end = in + n;
    struct out b = {out, 0, cap, 1};
    size_t members = 0;
    int room = 1; /* every member so far fitted */
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p >= end)
            break;
        if (++members > DYNOBS_BAGGAGE_MEMBERS_MAX)
            return -1;
        /* Past the first member that does not fit, the rest is still
         * checked (a malformed list is dropped whole) but not written:
         * members are dropped from the end. */
        size_t start = b.o;
        b.fits = room;
        if (b.o)
            put(&b, ",", 1);
        if (member(&p, end, &b) < 0)
            return -1;
        if (!b.fits) {
            room = 0;
            b.o = start;
        }
    }
    return (int)b.o;
}

const char *dynobs__baggage_find(const char *bag, size_t n, const char *key, size_t kl,
                                 size_t *vl)
{
    const char *p = bag, *end = bag + n;
    while (p < end) {
        const char *m = memchr(p, ',', (size_t)(end - p));
        const char *me = m ? m : end;
        const char *eq = memchr(p, '=', (size_t)(me - p));
        if (eq && (size_t)(eq - p) == kl && !memcmp(p, key, kl)) {
            const char *v = eq + 1, *ve = memchr(v, ';', (size_t)(me - v));
            *vl = (size_t)((ve ? ve : me) - v);
            return v;
        }
        p = me + 1;
    }
    return NULL;
}
