/*
 * Routes of served requests (route.h): the process-wide segment trie and
 * the choice between a rules entry's patterns and its `unmatched` mode.
 */
#include "route.h"
#include "lazymap.h"
#include "shortbytes.h"

#include <string.h>

/* One trie per process: the routes of one service. A forked child starts
 * with its parent's copy and grows its own. Its node pool is mapped by
 * the first route folded through it (lazymap.h): a process that serves
 * no request never has one. */
static void *nodes;
static struct dynobs_route_trie trie DYNOBS_HOT_DATA =
    DYNOBS_ROUTE_TRIE_INIT(NULL, DYNOBS_ROUTE_NODES);
/* Where the pool cannot be mapped: a trie of a root alone, whose pool is
 * spent, so that paths fold and are counted as in a full pool. (Hot: every
 * served request reads its count of folds, dynobs__route_pool_full.) */
static struct dynobs_route_node root_only[1];
static struct dynobs_route_trie spent DYNOBS_HOT_DATA = DYNOBS_ROUTE_TRIE_INIT(root_only, 1);

/* The process's trie, its pool mapped. trie.nodes is written once, by a
 * compare-and-swap, and read by the trie's code (atomically: another
 * thread's compare-and-swap may be finding it set meanwhile) only after
 * this load or that compare-and-swap has seen it set. */
static struct dynobs_route_trie *trie_of(void)
{
    if (DYNOBS_LIKELY(__atomic_load_n(&trie.nodes, __ATOMIC_ACQUIRE) != NULL))
        return &trie;
    struct dynobs_route_node *pool =
        dynobs__lazymap(&nodes, DYNOBS_ROUTE_NODES * sizeof(struct dynobs_route_node));
    if (!pool)
        return &spent;
    struct dynobs_route_node *none = NULL;
    __atomic_compare_exchange_n(&trie.nodes, &none, pool, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return &trie;
}

/* The path of a target: from its first '/' (after "scheme://authority"
 * in absolute form) to its query or fragment; NULL when it has none. */
static const char *path_of(const char *t, size_t n, size_t *len)
{
    size_t i = 0;
    if (!n)
        return NULL;
    if (t[0] != '/') {
        const char *sep = n >= 3 ? memchr(t, ':', n) : NULL;
        if (!sep || (size_t)(t + n - sep) < 3 || memcmp(sep, "://", 3) != 0)
            return NULL;
        i = (size_t)(sep - t) + 3;
        while (i < n && t[i] != '/' && t[i] != '?' && t[i] != '#')
            i++;
    }
    size_t e = i;
    while (e < n && t[e] != '?' && t[e] != '#')
        e++;
    /* "http://host" and "http://host?q" are the root. */
    *len = e > i ? e - i : 1;
    return e > i ? t + i : "/";
}

/* The first pattern of a list that matches (its index + 1), or 0. */
static int any_match(const struct dynobs_rules *r, uint32_t first, uint32_t count,
                     const struct dynobs_route_split *sp)
{
    for (uint32_t i = 0; i < count; i++)
        if (dynobs__route_match_split(dynobs__rules_list(r, first, i), sp))
            return (int)i + 1;
    return 0;
}

void dynobs__server_route(const struct dynobs_rules *r, const struct dynobs_rule_routes *rr,
                          const char *target, size_t n, struct dynobs_route *out)
{
    size_t pl = 0;
    const char *path = path_of(target, n, &pl);
    out->ignored = 0;
    out->len = 0;
    out->text[0] = '\0';
    if (!path)
        return;
    unsigned unmatched = DYNOBS_ROUTE_HEURISTIC, values = DYNOBS_ROUTE_VALUES;
    size_t len;
    if (r && rr && (rr->ignored_count || rr->patterns_count)) {
        struct dynobs_route_split sp;
        dynobs__route_split(path, pl, &sp);
        out->ignored = any_match(r, rr->ignored_first, rr->ignored_count, &sp) > 0;
        int m = any_match(r, rr->patterns_first, rr->patterns_count, &sp);
        if (m) {
            const char *pat = dynobs__rules_list(r, rr->patterns_first, (uint32_t)m - 1);
            out->len = (uint16_t)dynobs__route_pattern(pat, out->text, sizeof out->text);
            return;
        }
    }
    if (r && rr) {
        if (rr->unmatched)
            unmatched = rr->unmatched;
        if (rr->max_segment_values)
            values = rr->max_segment_values;
    }
    struct dynobs_route_trie *t = unmatched == DYNOBS_ROUTE_WILDCARD ? NULL : trie_of();
    switch (unmatched) {
    case DYNOBS_ROUTE_WILDCARD:
        memcpy(out->text, "/*", 3);
        len = 2;
        break;
    case DYNOBS_ROUTE_PATH:
        len = dynobs__route_fold(t, path, pl, 0, values, out->text, sizeof out->text);
        break;
    case DYNOBS_ROUTE_LOW_CARDINALITY:
        len = dynobs__route_fold(t, path, pl, DYNOBS_ROUTE_F_HEURISTIC | DYNOBS_ROUTE_F_FIRST,
                                 values, out->text, sizeof out->text);
        break;
    default:
        len = dynobs__route_fold(t, path, pl, DYNOBS_ROUTE_F_HEURISTIC, values, out->text,
                                 sizeof out->text);
        break;
    }
    out->len = (uint16_t)len;
}

void dynobs__server_span_name(char *out, const char *method, size_t ml,
                              const struct dynobs_route *r)
{
    dynobs__copy_bytes(out, method, ml);
    if (r->len) {
        out[ml++] = ' ';
        dynobs__copy_bytes(out + ml, r->text, r->len);
        ml += r->len;
    }
    out[ml] = '\0';
}

uint64_t dynobs__route_pool_full(void)
{
    return __atomic_load_n(&trie.full, __ATOMIC_RELAXED) +
           __atomic_load_n(&spent.full, __ATOMIC_RELAXED);
}

uint64_t dynobs__route_folded(void)
{
    return __atomic_load_n(&trie.folded, __ATOMIC_RELAXED);
}

uint32_t dynobs__route_nodes_used(void)
{
    uint32_t u = __atomic_load_n(&trie.used, __ATOMIC_RELAXED);
    return u < trie.cap ? u : trie.cap;
}
