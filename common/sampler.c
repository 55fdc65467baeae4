#include "sampler.h"

#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RANDOM_BITS 56
#define RANDOM_SPAN (1ull << RANDOM_BITS)

static const struct {
    char name[28];
    enum dynobs_sampler_kind kind;
} names[] = {
    {"always_on", DYNOBS_SAMPLER_ALWAYS_ON},
    {"always_off", DYNOBS_SAMPLER_ALWAYS_OFF},
    {"traceidratio", DYNOBS_SAMPLER_RATIO},
    {"parentbased_always_on", DYNOBS_SAMPLER_PARENT_ALWAYS_ON},
    {"parentbased_always_off", DYNOBS_SAMPLER_PARENT_ALWAYS_OFF},
    {"parentbased_traceidratio", DYNOBS_SAMPLER_PARENT_RATIO},
};

const char *dynobs__sampler_name(enum dynobs_sampler_kind k)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].kind == k)
            return names[i].name;
    return "unknown";
}

uint64_t dynobs__sampler_threshold(double r)
{
    /* threshold = (1 - r) * 2^56, so that P(random >= threshold) = r. */
    double t = ceil((1.0 - r) * (double)RANDOM_SPAN);
    return t >= (double)RANDOM_SPAN ? RANDOM_SPAN : (uint64_t)t;
}

static void set_ratio(struct dynobs_sampler *s, double r)
{
    s->ratio = r;
    s->threshold = dynobs__sampler_threshold(r);
}

DYNOBS_START_TEXT /* (called at start, by the configuration) */
int dynobs__sampler_init(struct dynobs_sampler *s, const char *name, const char *arg)
{
    int rc = 0;
    s->kind = DYNOBS_SAMPLER_PARENT_ALWAYS_ON;
    set_ratio(s, 1.0);
    if (name && *name) {
        size_t i;
        for (i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcmp(name, names[i].name) == 0)
                break;
        if (i == sizeof names / sizeof names[0])
            return -EINVAL;
        s->kind = names[i].kind;
    }
    if (s->kind == DYNOBS_SAMPLER_RATIO || s->kind == DYNOBS_SAMPLER_PARENT_RATIO) {
        if (arg && *arg) {
            char *end;
            errno = 0;
            double r = strtod(arg, &end);
            if (errno || *end || end == arg || !(r >= 0.0 && r <= 1.0))
                rc = -EINVAL; /* the spec's default ratio is 1.0 */
            else
                set_ratio(s, r);
        }
    }
    return rc;
}

