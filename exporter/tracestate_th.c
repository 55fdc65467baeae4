#include "tracestate_th.h"

#include <string.h>

static int ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Appends n bytes at out + *o. */
static void put(char *out, size_t *o, const char *p, size_t n)
{
    memcpy(out + *o, p, n);
    *o += n;
}

/* Whether the n bytes of an `ot` value are a list of sub-keys, each a
 * non-empty key, ':' and a value; counts those whose key is th. */
static int ot_value_ok(const char *v, size_t n, size_t *nth)
{
    *nth = 0;
    if (!n)
        return 0;
    for (size_t i = 0; i <= n;) {
        const char *semi = memchr(v + i, ';', n - i);
        size_t e = semi ? (size_t)(semi - v) : n;
        const char *colon = memchr(v + i, ':', e - i);
        if (!colon || colon == v + i)
            return 0;
        *nth += (size_t)(colon - (v + i)) == 2 && !memcmp(v + i, "th", 2);
        i = e + 1;
    }
    return 1;
}

size_t dx_tracestate_drop_th(const char *s, size_t n, char *out)
{
    /* The first member whose key is `ot`: [mb, me) its raw bytes between
     * commas, [b, e) the same without the whitespace W3C allows around
     * a member. */
    size_t mb = 0, me = 0, b = 0, e = 0;
    int found = 0;
    for (size_t i = 0; i <= n && !found;) {
        const char *comma = memchr(s + i, ',', n - i);
        mb = i;
        me = comma ? (size_t)(comma - s) : n;
        for (b = mb; b < me && ows(s[b]); b++)
            ;
        for (e = me; e > b && ows(s[e - 1]); e--)
            ;
        found = e - b >= 3 && !memcmp(s + b, "ot=", 3);
        i = me + 1;
    }
    size_t nth;
    if (!found || !ot_value_ok(s + b + 3, e - b - 3, &nth) || !nth) {
        memcpy(out, s, n);
        return n;
    }
    /* The member up to its value, then the sub-keys other than th,
     * joined by ';' as they were, then the rest of the list. The output
     * is never longer than the input. */
    const char *v = s + b + 3;
    size_t vn = e - b - 3, o = 0;
    put(out, &o, s, b + 3);
    const size_t start = o;
    for (size_t i = 0; i <= vn;) {
        const char *semi = memchr(v + i, ';', vn - i);
        size_t end = semi ? (size_t)(semi - v) : vn;
        if (end - i < 3 || memcmp(v + i, "th:", 3)) {
            if (o > start)
                out[o++] = ';';
            put(out, &o, v + i, end - i);
        }
        i = end + 1;
    }
    if (o > start) {
        put(out, &o, s + e, n - e);
        return o;
    }
    o = 0;
    /* Nothing left: the member goes, with the comma before it, or when
     * it is the first, the comma after it and the whitespace that
     * follows, so that the list still starts with a member. */
    if (mb > 0) {
        put(out, &o, s, mb - 1);
        put(out, &o, s + me, n - me);
    } else if (me < n) {
        size_t rest = me + 1;
        while (rest < n && ows(s[rest]))
            rest++;
        put(out, &o, s + rest, n - rest);
    }
    return o;
}
