/*
 * Routes (route.h): pattern matching, the id heuristic and the segment
 * trie. Every function here runs on the request path of a served
 * request, so none allocates, locks or makes a system call.
 */
#include "route.h"

#include <string.h>

#define ID "{id}"
#define ID_LEN 4u

/* A path split on '/': the next non-empty segment from *pos. */
struct seg {
    const char *p;
    size_t n;
};

static int next_seg(const char *path, size_t n, size_t *pos, struct seg *s)
{
    size_t i = *pos;
    while (i < n && path[i] == '/')
        i++;
    if (i >= n)
        return 0;
    size_t start = i;
    while (i < n && path[i] != '/')
        i++;
    s->p = path + start;
    s->n = i - start;
    *pos = i;
    return 1;
}

/* The same over a NUL-terminated pattern. */
static int next_pat(const char **pat, struct seg *s)
{
    const char *p = *pat;
    while (*p == '/')
        p++;
    if (!*p)
        return 0;
    s->p = p;
    while (*p && *p != '/')
        p++;
    s->n = (size_t)(p - s->p);
    *pat = p;
    return 1;
}

static int is_param(const struct seg *s)
{
    return (s->n >= 2 && s->p[0] == ':') || (s->n >= 2 && s->p[0] == '{' && s->p[s->n - 1] == '}');
}

int dynobs__route_match(const char *pattern, const char *path, size_t n)
{
    struct seg ps = {NULL, 0}, xs = {NULL, 0};
    size_t pos = 0;
    for (;;) {
        int hp = next_pat(&pattern, &ps);
        if (hp && ps.n == 1 && ps.p[0] == '*') {
            const char *rest = pattern;
            struct seg more;
            if (!next_pat(&rest, &more))
                return 1; /* a last "*": any rest, nothing included */
        }
        int hx = next_seg(path, n, &pos, &xs);
        if (!hp || !hx)
            return hp == hx;
        if (is_param(&ps) || (ps.n == 1 && ps.p[0] == '*'))
            continue;
        if (ps.n != xs.n || memcmp(ps.p, xs.p, ps.n) != 0)
            return 0;
    }
}

void dynobs__route_split(const char *path, size_t n, struct dynobs_route_split *sp)
{
    struct seg s;
    size_t pos = 0;
    sp->path = path;
    sp->len = n;
    sp->n = 0;
    sp->more = 0;
    while (next_seg(path, n, &pos, &s)) {
        if (sp->n == DYNOBS_ROUTE_SPLIT) {
            sp->more = 1;
            return;
        }
        sp->off[sp->n] = (uint16_t)(s.p - path);
        sp->seglen[sp->n++] = (uint16_t)s.n;
    }
}

/* Compares a pattern's literal segment at p with n bytes of a path
 * segment without scanning the pattern first: most patterns differ at
 * their first byte. Returns the pattern's bytes consumed, or 0. */
static size_t literal_at(const char *p, const char *seg, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != seg[k] || !p[k])
            return 0;
    return p[n] == '/' || !p[n] ? n : 0;
}

int dynobs__route_match_split(const char *pattern, const struct dynobs_route_split *sp)
{
    /* A path too long to split (or to index with 16 bits) takes the
     * general walk. */
    if (sp->more || sp->len > UINT16_MAX)
        return dynobs__route_match(pattern, sp->path, sp->len);
    const char *p = pattern;
    for (unsigned i = 0;; i++) {
        while (*p == '/')
            p++;
        if (!*p)
            return i == sp->n;
        if (p[0] == '*' && (p[1] == '/' || !p[1])) {
            const char *rest = p + 1;
            while (*rest == '/')
                rest++;
            if (!*rest)
                return 1; /* a last "*" */
        }
        if (i == sp->n)
            return 0;
        if (p[0] == '*' || p[0] == ':' || p[0] == '{') {
            const char *q = p;
            struct seg ps;
            next_pat(&q, &ps);
            if ((ps.n == 1 && p[0] == '*') || is_param(&ps)) {
                p = q;
                continue;
            }
        }
        size_t used = literal_at(p, sp->path + sp->off[i], sp->seglen[i]);
        if (!used)
            return 0;
        p += used;
    }
}

/* A route being written: out holds cap bytes; every segment appended
 * leaves room for a final "/" "*" and the NUL. */
struct out {
    char *p;
    size_t len, cap;
};

static int put(struct out *o, const char *s, size_t n)
{
    if (o->len + 1 + n + 3 > o->cap)
        return -1;
    o->p[o->len++] = '/';
    memcpy(o->p + o->len, s, n);
    o->len += n;
    return 0;
}

/* Ends a route: a last "*" segment when cut, "/" when nothing was written. */
static size_t end(struct out *o, int cut)
{
    if (cut) {
        memcpy(o->p + o->len, "/*", 2);
        o->len += 2;
    } else if (!o->len) {
        o->p[o->len++] = '/';
    }
    o->p[o->len] = '\0';
    return o->len;
}

size_t dynobs__route_pattern(const char *pattern, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    struct seg s;
    while (next_pat(&pattern, &s)) {
        /* ":name" is written "{name}": the name, then braces around it. */
        int colon = s.p[0] == ':' && s.n >= 2;
        if (put(&o, s.p, s.n + colon) < 0)
            return end(&o, 1);
        if (colon) {
            char *name = o.p + o.len - s.n - 1;
            memmove(name + 1, s.p + 1, s.n - 1);
            name[0] = '{';
            o.p[o.len - 1] = '}';
        }
    }
    return end(&o, 0);
}

/* What the heuristic asks of each byte, looked up once per byte: a
 * classification table costs less than the comparisons it replaces. */
enum { C_DIGIT = 1, C_HEX = 2, C_B64 = 4, C_UNSAFE = 8 };

static const uint8_t cls[256] = {
    /* Bytes a metric label cannot carry (dynobs__labels_join leaves out a
     * value holding ',' or '='), or that would need escaping everywhere:
     * control bytes, space, '"', ',', '=', '\\', DEL. */
    [0 ... ' '] = C_UNSAFE, ['"'] = C_UNSAFE, [','] = C_UNSAFE, ['='] = C_UNSAFE,
    ['\\'] = C_UNSAFE, [0x7f] = C_UNSAFE,
    ['0' ... '9'] = C_DIGIT | C_HEX | C_B64,
    ['a' ... 'f'] = C_HEX | C_B64, ['A' ... 'F'] = C_HEX | C_B64,
    ['g' ... 'z'] = C_B64, ['G' ... 'Z'] = C_B64,
    ['-'] = C_B64, ['_'] = C_B64, ['+'] = C_B64,
};

static int is_uuid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !(cls[(unsigned char)s[i]] & C_HEX))
            return 0;
    }
    return 1;
}

static int label_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cls[(unsigned char)s[i]] & C_UNSAFE)
            return 0;
    return 1;
}

int dynobs__route_is_id(const char *seg, size_t n)
{
    /* One pass gathers what every rule needs: the bits all bytes share,
     * any byte's bits, and the count of digits. */
    unsigned all = C_DIGIT | C_HEX | C_B64, any = 0;
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = cls[(unsigned char)seg[i]];
        all &= c;
        any |= c;
        digits += c & C_DIGIT;
    }
    if (!n)
        return 0;
    if (any & C_UNSAFE)
        return 1;
    if (all & C_DIGIT)
        return 1;
    if ((all & C_HEX) && n >= 8 && digits)
        return 1;
    if ((all & C_B64) && n >= 16 && digits)
        return 1;
    return is_uuid(seg, n);
}

size_t dynobs__route_heuristic(const char *path, size_t n, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    struct seg s;
    size_t pos = 0;
    unsigned depth = 0;
    while (next_seg(path, n, &pos, &s)) {
        int id = dynobs__route_is_id(s.p, s.n);
        if (depth++ == DYNOBS_ROUTE_DEPTH || put(&o, id ? ID : s.p, id ? ID_LEN : s.n) < 0)
            return end(&o, 1);
    }
    return end(&o, 0);
}

/* ---- the trie ---- */

/* The trie's pool. A process's trie gets it by a compare-and-swap when its
 * first route is folded (preload/route.c) while other threads may be
 * folding theirs: read atomically (a plain move on x86), so that a
 * compare-and-swap that finds it set already is no race with these reads. */
static inline struct dynobs_route_node *pool_of(const struct dynobs_route_trie *t)
{
    return __atomic_load_n(&t->nodes, __ATOMIC_RELAXED);
}

static uint16_t lits_of(const struct dynobs_route_trie *t, uint32_t head)
{
    return head ? pool_of(t)[head - 1].lits : 0;
}

/* Searches the sibling list from head (an index + 1) down to, not
 * including, stop; returns the node's index + 1 or 0. */
static uint32_t find(const struct dynobs_route_trie *t, uint32_t head, uint32_t stop,
                     const char *s, size_t n)
{
    for (uint32_t i = head; i && i != stop; i = pool_of(t)[i - 1].next) {
        const struct dynobs_route_node *c = &pool_of(t)[i - 1];
        if (c->len == n && memcmp(c->seg, s, n) == 0)
            return i;
    }
    return 0;
}

/* A node from the pool (index + 1), or 0 when it is spent. The load
 * first keeps a full pool's counter from running on forever. */
static uint32_t take(struct dynobs_route_trie *t)
{
    if (__atomic_load_n(&t->used, __ATOMIC_RELAXED) >= t->cap)
        return 0;
    uint32_t i = __atomic_fetch_add(&t->used, 1, __ATOMIC_ACQ_REL);
    return i < t->cap ? i + 1 : 0;
}

/* A node taken but never published goes back when it is still the last
 * one handed out (two threads adding the same segment at once). */
static void give_back(struct dynobs_route_trie *t, uint32_t node)
{
    uint32_t want = node;
    __atomic_compare_exchange_n(&t->used, &want, node - 1, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_RELAXED);
}

enum { ADD_FULL = -1, ADD_CAPPED = -2 };

/* The child of node p with this segment (index + 1): found, or added.
 * A literal is refused (ADD_CAPPED) when p already has max literal
 * children; ADD_FULL when the pool is spent. */
static int64_t child(struct dynobs_route_trie *t, uint32_t p, const char *s, size_t n, int lit,
                     unsigned max)
{
    uint32_t *headp = &pool_of(t)[p].head;
    uint32_t head = __atomic_load_n(headp, __ATOMIC_ACQUIRE);
    uint32_t got = find(t, head, 0, s, n);
    if (got)
        return got;
    uint32_t mine = 0;
    for (;;) {
        if (lit && lits_of(t, head) >= max)
            break;
        if (!mine && !(mine = take(t)))
            return ADD_FULL;
        struct dynobs_route_node *c = &pool_of(t)[mine - 1];
        __atomic_store_n(&c->head, 0, __ATOMIC_RELAXED);
        c->next = head;
        c->lits = (uint16_t)(lits_of(t, head) + (lit ? 1 : 0));
        c->len = (uint8_t)n;
        memcpy(c->seg, s, n);
        uint32_t seen = head;
        if (__atomic_compare_exchange_n(headp, &head, mine, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return mine;
        /* Another thread pushed first: it may have added this very
         * segment (head now holds what it pushed, down to seen). */
        if ((got = find(t, head, seen, s, n)))
            break;
    }
    if (mine)
        give_back(t, mine);
    return got ? (int64_t)got : ADD_CAPPED;
}

size_t dynobs__route_fold(struct dynobs_route_trie *t, const char *path, size_t n,
                          unsigned flags, unsigned max_values, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    struct seg s;
    size_t pos = 0;
    unsigned depth = 0;
    uint32_t node = 0;
    if (max_values > UINT16_MAX)
        max_values = UINT16_MAX;
    while (next_seg(path, n, &pos, &s)) {
        if (depth == DYNOBS_ROUTE_DEPTH || (depth == 1 && (flags & DYNOBS_ROUTE_F_FIRST)))
            return end(&o, 1);
        depth++;
        /* A segment the trie cannot keep, or a label cannot carry, is
         * {id} whatever the mode; so is one that reads "{id}" (it must
         * not take one of the N places). */
        int id = s.n > DYNOBS_ROUTE_SEG_MAX ||
                 (s.n == ID_LEN && !memcmp(s.p, ID, ID_LEN)) ||
                 ((flags & DYNOBS_ROUTE_F_HEURISTIC) ? dynobs__route_is_id(s.p, s.n)
                                                     : !label_safe(s.p, s.n));
        const char *text = id ? ID : s.p;
        size_t tn = id ? ID_LEN : s.n;
        int64_t c = child(t, node, text, tn, !id, max_values);
        if (c == ADD_CAPPED) {
            __atomic_fetch_add(&t->folded, 1, __ATOMIC_RELAXED);
            text = ID;
            tn = ID_LEN;
            c = child(t, node, ID, ID_LEN, 0, max_values);
        }
        if (c == ADD_FULL) {
            /* Nothing below an unknown segment can be kept bounded. */
            __atomic_fetch_add(&t->full, 1, __ATOMIC_RELAXED);
            if (put(&o, ID, ID_LEN) < 0)
                return end(&o, 1);
            struct seg more;
            size_t p2 = pos;
            return end(&o, next_seg(path, n, &p2, &more));
        }
        if (put(&o, text, tn) < 0)
            return end(&o, 1);
        node = (uint32_t)c - 1;
    }
    return end(&o, 0);
}
