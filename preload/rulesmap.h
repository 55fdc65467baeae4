/*
 * The rules in force in this process (rules/README.md): the table the
 * exporter published (DIR/.rules.<generation>, named by the generation in
 * the segment's consumer page), or the built-in defaults (the compiled
 * rules/default.yaml) when none was published. Looking them up costs one
 * load and one compare; a new generation is mapped, validated like any
 * untrusted input and bound to this process by the first thread that
 * sees it. A table that cannot be read or does not validate is counted
 * (dynobs.rules.load_failures, on /metrics per service) and the rules in
 * force stay; it is tried again a second later.
 */
#ifndef DYNOBS_PRELOAD_RULESMAP_H
#define DYNOBS_PRELOAD_RULESMAP_H

#include <stdint.h>

#include "../common/rules.h"
#include "../common/util.h"

struct dynobs_segment;

extern const uint64_t *dynobs__rules_gen_word DYNOBS_INTERNAL;
extern uint64_t dynobs__rules_seen DYNOBS_INTERNAL;
extern const struct dynobs_rules_proc *dynobs__rules_cur DYNOBS_INTERNAL;

const struct dynobs_rules_proc *dynobs__rules_refresh(uint64_t gen) DYNOBS_INTERNAL;

/* The rules in force, bound to this process; NULL only when not even the
 * defaults could be set up (callers then keep the behaviour built in). */
static inline const struct dynobs_rules_proc *dynobs__rules_now(void)
{
    /* The word moves once, to the segment's page when it exists: both
     * loads are atomic (plain loads on x86 and AArch64). */
    const uint64_t *word = __atomic_load_n(&dynobs__rules_gen_word, __ATOMIC_ACQUIRE);
    uint64_t gen = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    const struct dynobs_rules_proc *p = __atomic_load_n(&dynobs__rules_cur, __ATOMIC_ACQUIRE);
    if (DYNOBS_LIKELY(p && gen == __atomic_load_n(&dynobs__rules_seen, __ATOMIC_RELAXED)))
        return p;
    return dynobs__rules_refresh(gen);
}

/* dynobs__rules_now on the short way of a repeated request, at now_ns
 * (the thread's clock): the generation's word, on the segment's consumer
 * page, a page touch of its own where the request touches no other page
 * of the segment (BENCHMARKS.md, "Nineteenth round"), is read at most once
 * a millisecond per thread (*next_ns, the thread's). In between, the rules
 * the process bound last stay in force: a new generation is taken up to
 * a millisecond later there than elsewhere. */
#define DYNOBS_RULES_RECHECK_NS 1000000u
static inline const struct dynobs_rules_proc *dynobs__rules_now_within(uint64_t *next_ns,
                                                                      uint64_t now_ns)
{
    const struct dynobs_rules_proc *p = __atomic_load_n(&dynobs__rules_cur, __ATOMIC_ACQUIRE);
    if (DYNOBS_LIKELY(p && now_ns < *next_ns))
        return p;
    *next_ns = now_ns + DYNOBS_RULES_RECHECK_NS;
    return dynobs__rules_now();
}

/* The segment exists: its consumer page says which generation is in force. */
void dynobs__rules_attach(struct dynobs_segment *seg) DYNOBS_INTERNAL;

/* In a forked child, before the parent's segment is unmapped: the rules
 * in force stay (the child runs the same program), but the generation is
 * read from the child's own segment once it has one. */
void dynobs__rules_detach(void) DYNOBS_INTERNAL;

#endif
