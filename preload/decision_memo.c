#include "decision_memo.h"

#include <string.h>

#include "rulesmap.h"
#include "shortbytes.h"

/* What dynobs__decide returned, as the memo keeps it: its pointers to the
 * decision itself must be made again in the copy. */
enum { POL_DEFAULT, POL_DROPPED, POL_OWN };

static uint64_t folds(void)
{
    return dynobs__route_folded() + dynobs__route_pool_full();
}

int dynobs__memo_recall(const struct dynobs_decision_memo *m, const struct dynobs_memo_key *k,
                        struct dynobs_decision *d, struct dynobs_route *route,
                        const struct dynobs_span_policy **pol)
{
    const struct dynobs_rules_proc *p = m->p;
    if (!p || m->ml != k->method.n || m->hn != k->host.n || m->pl != k->path.n ||
        p != dynobs__rules_now())
        return 0;
    /* The path first: it is what differs most often between requests. */
    const char *key = m->key;
    if (!dynobs__same_bytes(key + m->ml + m->hn, k->path.p, m->pl) ||
        !dynobs__same_bytes(key, k->method.p, m->ml) ||
        (m->hn && !dynobs__same_bytes(key + m->ml, k->host.p, m->hn)))
        return 0;
    *d = m->d;
    *route = m->route;
    if (m->pol == POL_OWN) {
        d->pol.sampler = &d->sampler;
        *pol = &d->pol;
    } else {
        *pol = m->pol == POL_DROPPED ? &dynobs__policy_dropped : NULL;
    }
    return 1;
}

void dynobs__memo_begin(struct dynobs_decision_memo *m)
{
    m->folds = folds();
}

void dynobs__memo_keep(struct dynobs_decision_memo *m, const struct dynobs_memo_key *k,
                       const struct dynobs_decision *d, const struct dynobs_route *route,
                       const struct dynobs_span_policy *pol)
{
    size_t n = k->method.n + k->host.n + k->path.n;
    m->p = NULL;
    /* A fold that counted must count again on the next request. */
    if (!d->p || (d->r && d->r->nconds) || n > sizeof m->key || folds() != m->folds)
        return;
    if (pol && pol != &dynobs__policy_dropped && pol != &d->pol)
        return; /* not a policy this memo knows how to give back */
    memcpy(m->key, k->method.p, k->method.n);
    if (k->host.n)
        memcpy(m->key + k->method.n, k->host.p, k->host.n);
    memcpy(m->key + k->method.n + k->host.n, k->path.p, k->path.n);
    m->ml = (uint16_t)k->method.n;
    m->hn = (uint16_t)k->host.n;
    m->pl = (uint16_t)k->path.n;
    m->d = *d;
    m->route = *route;
    m->pol = !pol ? POL_DEFAULT : pol == &dynobs__policy_dropped ? POL_DROPPED : POL_OWN;
    m->p = d->p;
}
