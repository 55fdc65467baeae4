/*
 * What the rules decided for a connection's last served request, and its
 * route, kept so that the next request with the same method, host and
 * path (keep-alive clients ask for the same few resources over and over)
 * takes them without matching the rules or folding the path again. The
 * result is the same as computing them anew: the rules are pure functions
 * of these facts while the same table is in force (tables are never freed,
 * so its address names it), and a path whose route the trie has already
 * folded without a count (route.h) folds the same way every time. Nothing
 * is kept when the table has attribute conditions (they see more than
 * this key), when the key is too long, or when the route's fold counted.
 */
#ifndef DYNOBS_PRELOAD_DECISION_MEMO_H
#define DYNOBS_PRELOAD_DECISION_MEMO_H

#include "policy.h"
#include "route.h"

/* Bytes of method + host + path kept; a longer request is decided anew. */
#define DYNOBS_MEMO_KEY_MAX 200u

struct dynobs_decision_memo {
    const struct dynobs_rules_proc *p; /* the table it was decided with; NULL: empty */
    struct dynobs_decision d;
    uint8_t pol;                      /* what dynobs__decide returned: see decision_memo.c */
    uint16_t ml, hn, pl;              /* lengths of method, host and path in key */
    uint64_t folds;                   /* the trie's fold counts before the route was made */
    struct dynobs_route route;
    char key[DYNOBS_MEMO_KEY_MAX];
};

/* The facts a memo is keyed by. */
struct dynobs_memo_key {
    struct dynobs_rule_str method, host, path;
};

/* An empty memo (a new connection). */
static inline void dynobs__memo_clear(struct dynobs_decision_memo *m)
{
    m->p = NULL;
}

/* 1 with *d, *route and *pol as the last request with key k had them,
 * when the rules in force are the ones they were decided with; else 0. */
int dynobs__memo_recall(const struct dynobs_decision_memo *m, const struct dynobs_memo_key *k,
                        struct dynobs_decision *d, struct dynobs_route *route,
                        const struct dynobs_span_policy **pol) DYNOBS_INTERNAL;

/* Before a request is decided anew: notes the trie's fold counts. */
void dynobs__memo_begin(struct dynobs_decision_memo *m) DYNOBS_INTERNAL;

/* After: keeps d (as dynobs__decide_routes and dynobs__decide filled it),
 * route and pol (what dynobs__decide returned) for key k, when they can be
 * reused (see the top of the file); else empties the memo. */
void dynobs__memo_keep(struct dynobs_decision_memo *m, const struct dynobs_memo_key *k,
                       const struct dynobs_decision *d, const struct dynobs_route *route,
                       const struct dynobs_span_policy *pol) DYNOBS_INTERNAL;

#endif
