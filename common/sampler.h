/*
 * The OpenTelemetry built-in samplers. A decision depends only on the
 * trace id and the parent's context, so it costs a few instructions.
 */
#ifndef DYNOBS_COMMON_SAMPLER_H
#define DYNOBS_COMMON_SAMPLER_H

#include <stdint.h>

#include "util.h"

enum dynobs_sampler_kind {
    DYNOBS_SAMPLER_ALWAYS_ON = 1,
    DYNOBS_SAMPLER_ALWAYS_OFF,
    DYNOBS_SAMPLER_RATIO,
    DYNOBS_SAMPLER_PARENT_ALWAYS_ON,
    DYNOBS_SAMPLER_PARENT_ALWAYS_OFF,
    DYNOBS_SAMPLER_PARENT_RATIO,
};

struct dynobs_sampler {
    enum dynobs_sampler_kind kind;
    double ratio;
    /* Sample when the trace id's 56 random bits are >= threshold: the
     * rejection threshold of OpenTelemetry's consistent probability
     * sampling, so a trace sampled at ratio r is sampled at every r' > r. */
    uint64_t threshold;
};

/* Sets up a sampler from OTEL_TRACES_SAMPLER / _ARG values (either may be
 * NULL). Returns 0, or -EINVAL when a value was malformed (the sampler is
 * then the default, parentbased_always_on, or the ratio defaults to 1.0). */
int dynobs__sampler_init(struct dynobs_sampler *s, const char *name, const char *arg);

/* Whether the trace id's random part passes a ratio sampler. */
static inline int dynobs__sampler_ratio(const struct dynobs_sampler *s, const uint8_t trace_id[16])
{
    /* The rightmost 7 bytes are the random part (W3C Level 2). */
    uint64_t rnd = 0;
    for (int i = 9; i < 16; i++)
        rnd = rnd << 8 | trace_id[i];
    return rnd >= s->threshold;
}

/* has_parent: there is a valid parent context; parent_sampled: its flag.
 * Inline: every span begun asks. */
static inline int dynobs__sampler_decide(const struct dynobs_sampler *s,
                                         const uint8_t trace_id[16], int has_parent,
                                         int parent_sampled)
{
    /* The default first, without the switch's jump table. */
    if (DYNOBS_LIKELY(s->kind == DYNOBS_SAMPLER_PARENT_ALWAYS_ON))
        return has_parent ? parent_sampled : 1;
    switch (s->kind) {
    case DYNOBS_SAMPLER_ALWAYS_ON:
        return 1;
    case DYNOBS_SAMPLER_ALWAYS_OFF:
        return 0;
    case DYNOBS_SAMPLER_RATIO:
        return dynobs__sampler_ratio(s, trace_id);
    case DYNOBS_SAMPLER_PARENT_ALWAYS_ON:
        return has_parent ? parent_sampled : 1;
    case DYNOBS_SAMPLER_PARENT_ALWAYS_OFF:
        return has_parent ? parent_sampled : 0;
    case DYNOBS_SAMPLER_PARENT_RATIO:
        return has_parent ? parent_sampled : dynobs__sampler_ratio(s, trace_id);
    }
    return 1;
}

/* The rejection threshold of ratio r (0..1), as the samplers above use it;
 * the rules compiler writes it into its table (rules_layout.h). */
uint64_t dynobs__sampler_threshold(double r);

const char *dynobs__sampler_name(enum dynobs_sampler_kind k);

#endif
