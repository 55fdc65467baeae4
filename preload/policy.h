/*
 * What the rules in force (rulesmap.h) decide for one span, from what the
 * protocol knows when the span begins: its sampler and tail keeping, a
 * filter's drops, the redaction that applies and, for a served request,
 * its routes entry. One call per span; with the built-in defaults it is a
 * handful of glob tests on the path.
 */
#ifndef DYNOBS_PRELOAD_POLICY_H
#define DYNOBS_PRELOAD_POLICY_H

#include "span.h"

#include "../common/rules.h"
#include "../common/sampler.h"
#include "../common/util.h"

struct dynobs_decision {
    const struct dynobs_rules_proc *p; /* the rules in force; NULL: none could be had */
    const struct dynobs_rules *r;      /* p's table */
    const struct dynobs_rule_routes *routes;
    const struct dynobs_rule_redact *redact;
    uint32_t drop; /* DYNOBS_DROP_* of the first filter that matched */
    struct dynobs_sampler sampler;
    struct dynobs_span_policy pol;
};

/* The policy of spans dropped from traces (filters, ignored routes):
 * not sampled, not written, and neither are the spans under them. */
extern const struct dynobs_span_policy dynobs__policy_dropped DYNOBS_INTERNAL;

/* A served request's routes entry, looked up first (the route names the
 * span, which the other sections may match on). Starts *d. */
void dynobs__decide_routes(struct dynobs_decision *d, const struct dynobs_rule_facts *f)
    DYNOBS_INTERNAL;

/* Fills the rest of *d for a span with facts f (starting *d unless
 * dynobs__decide_routes did). Returns the policy to begin the span with,
 * or NULL for the process's default (no sampler entry and no drop). */
const struct dynobs_span_policy *dynobs__decide(struct dynobs_decision *d,
                                                const struct dynobs_rule_facts *f, int started)
    DYNOBS_INTERNAL;

/* The attributes a span has when it begins, for the rules' attribute
 * conditions (struct dynobs_rule_facts.attr): string values by key. */
#define DYNOBS_FACT_ATTRS 12
struct dynobs_fact_attrs {
    int n;
    struct {
        const char *key;
        struct dynobs_rule_str val;
    } a[DYNOBS_FACT_ATTRS];
};

/* Adds one (a NULL or empty value is left out; past the cap, dropped). */
static inline void dynobs__fact_attr(struct dynobs_fact_attrs *fa, const char *key,
                                     const char *v, size_t n)
{
    if (v && n && fa->n < DYNOBS_FACT_ATTRS) {
        fa->a[fa->n].key = key;
        fa->a[fa->n].val.p = v;
        fa->a[fa->n].val.n = n;
        fa->n++;
    }
}

/* Points f's attribute lookup at fa. */
void dynobs__facts_with_attrs(struct dynobs_rule_facts *f, struct dynobs_fact_attrs *fa)
    DYNOBS_INTERNAL;

/* A sampler of a table's entry, as the sampler code takes it. */
void dynobs__rule_sampler(const struct dynobs_rule_sampler *e, struct dynobs_sampler *out)
    DYNOBS_INTERNAL;

#endif
