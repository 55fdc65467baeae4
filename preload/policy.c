#include "policy.h"

#include <string.h>

#include "rulesmap.h"

/* Spans a filter drops from traces are not sampled at all: their
 * children are not recorded either, and the services they call are told
 * so, as with an always_off sampler for that request. */
static const struct dynobs_sampler always_off = {DYNOBS_SAMPLER_ALWAYS_OFF, 0.0, 0};
const struct dynobs_span_policy dynobs__policy_dropped = {&always_off, 0, 0, 1};

static int lookup(void *ctx, const char *key, size_t klen, struct dynobs_rule_str *val)
{
    const struct dynobs_fact_attrs *fa = ctx;
    for (int i = 0; i < fa->n; i++)
        if (strlen(fa->a[i].key) == klen && !memcmp(fa->a[i].key, key, klen)) {
            *val = fa->a[i].val;
            return 1;
        }
    return 0;
}

void dynobs__facts_with_attrs(struct dynobs_rule_facts *f, struct dynobs_fact_attrs *fa)
{
    f->attr = lookup;
    f->attr_ctx = fa;
}

void dynobs__rule_sampler(const struct dynobs_rule_sampler *e, struct dynobs_sampler *out)
{
    out->kind = (enum dynobs_sampler_kind)e->kind;
    out->ratio = e->ratio;
    out->threshold = e->threshold;
}

static void start(struct dynobs_decision *d)
{
    d->p = dynobs__rules_now();
    d->r = d->p ? d->p->r : NULL;
    d->routes = NULL;
    d->redact = NULL;
    d->drop = 0;
    memset(&d->pol, 0, sizeof d->pol);
}

void dynobs__decide_routes(struct dynobs_decision *d, const struct dynobs_rule_facts *f)
{
    start(d);
    if (d->p)
        d->routes = dynobs__rules_routes(d->p, f);
}

const struct dynobs_span_policy *dynobs__decide(struct dynobs_decision *d,
                                                const struct dynobs_rule_facts *f, int started)
{
    if (!started)
        start(d);
    const struct dynobs_rules_proc *p = d->p;
    if (!p)
        return NULL;
    d->redact = dynobs__rules_redact(p, f);
    const struct dynobs_rule_filter *flt = dynobs__rules_filter(p, f);
    d->drop = flt ? flt->drop : 0;
    if (d->drop & DYNOBS_DROP_TRACES)
        return &dynobs__policy_dropped;
    const struct dynobs_rule_sampler *e = dynobs__rules_sampler(p, f);
    if (!e)
        return NULL;
    dynobs__rule_sampler(e, &d->sampler);
    d->pol.sampler = &d->sampler;
    d->pol.keep = e->keep;
    d->pol.keep_slower_ms = e->keep_slower_ms;
    return &d->pol;
}
