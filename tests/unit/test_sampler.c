/* The built-in samplers and their configuration. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "ids.h"
#include "sampler.h"

static int count_sampled(const struct dynobs_sampler *s, int n, int has_parent, int psampled)
{
    struct dynobs_rng r;
    dynobs__rng_seed(&r);
    int k = 0;
    uint8_t id[16];
    for (int i = 0; i < n; i++) {
        dynobs__rng_id(&r, id, 16);
        k += dynobs__sampler_decide(s, id, has_parent, psampled);
    }
    return k;
}

Test(sampler, default_is_parentbased_always_on)
{
    struct dynobs_sampler s;
    cr_assert_eq(dynobs__sampler_init(&s, NULL, NULL), 0);
    cr_assert_eq(s.kind, DYNOBS_SAMPLER_PARENT_ALWAYS_ON);
    cr_assert_eq(count_sampled(&s, 1000, 0, 0), 1000); /* roots sampled */
    cr_assert_eq(count_sampled(&s, 1000, 1, 1), 1000); /* sampled parent */
    cr_assert_eq(count_sampled(&s, 1000, 1, 0), 0);    /* unsampled parent */
}

Test(sampler, always_on_and_off_ignore_parent)
{
    struct dynobs_sampler s;
    cr_assert_eq(dynobs__sampler_init(&s, "always_on", NULL), 0);
    cr_assert_eq(count_sampled(&s, 500, 1, 0), 500);
    cr_assert_eq(dynobs__sampler_init(&s, "always_off", NULL), 0);
    cr_assert_eq(count_sampled(&s, 500, 1, 1), 0);
    cr_assert_eq(count_sampled(&s, 500, 0, 0), 0);
}

Test(sampler, parentbased_always_off)
{
    struct dynobs_sampler s;
    cr_assert_eq(dynobs__sampler_init(&s, "parentbased_always_off", NULL), 0);
    cr_assert_eq(count_sampled(&s, 500, 0, 0), 0);
    cr_assert_eq(count_sampled(&s, 500, 1, 1), 500);
    cr_assert_eq(count_sampled(&s, 500, 1, 0), 0);
}

/* With n draws at ratio p, the count is within 5 standard deviations of
 * n*p except with probability below 1e-6: a failure means a real bias. */
static void expect_ratio(const char *name, double p)
{
    struct dynobs_sampler s;
    char arg[32];
    snprintf(arg, sizeof arg, "%g", p);
    cr_assert_eq(dynobs__sampler_init(&s, name, arg), 0);
    const int n = 200000;
    int k = count_sampled(&s, n, 0, 0);
    double sd = sqrt(n * p * (1 - p));
    cr_expect(fabs(k - n * p) <= 5 * sd + 1, "%s %g: %d of %d", name, p, k, n);
}

Test(sampler, traceidratio_within_statistical_bounds)
{
    expect_ratio("traceidratio", 0.5);
    expect_ratio("traceidratio", 0.1);
    expect_ratio("traceidratio", 0.01);
    expect_ratio("traceidratio", 0.9);
    expect_ratio("parentbased_traceidratio", 0.25);
}

Test(sampler, ratio_edges_and_monotonicity)
{
    struct dynobs_sampler s0, s1, a, b;
    cr_assert_eq(dynobs__sampler_init(&s0, "traceidratio", "0"), 0);
    cr_assert_eq(dynobs__sampler_init(&s1, "traceidratio", "1"), 0);
    cr_assert_eq(count_sampled(&s0, 10000, 0, 0), 0);
    cr_assert_eq(count_sampled(&s1, 10000, 0, 0), 10000);
    /* Deterministic per trace id, and whatever 0.1 keeps, 0.2 keeps. */
    cr_assert_eq(dynobs__sampler_init(&a, "traceidratio", "0.1"), 0);
    cr_assert_eq(dynobs__sampler_init(&b, "traceidratio", "0.2"), 0);
    struct dynobs_rng r;
    dynobs__rng_seed(&r);
    uint8_t id[16];
    for (int i = 0; i < 20000; i++) {
        dynobs__rng_id(&r, id, 16);
        int da = dynobs__sampler_decide(&a, id, 0, 0);
        cr_assert_eq(da, dynobs__sampler_decide(&a, id, 0, 0));
        if (da)
            cr_assert(dynobs__sampler_decide(&b, id, 0, 0));
    }
    /* The decision uses the random rightmost 7 bytes only. */
    memset(id, 0, 16);
    memset(id + 9, 0xff, 7);
    cr_assert(dynobs__sampler_decide(&a, id, 0, 0));
    memset(id, 0xff, 9);
    memset(id + 9, 0, 7);
    cr_assert_not(dynobs__sampler_decide(&a, id, 0, 0));
}

Test(sampler, parentbased_ratio_honours_remote_parent)
{
    struct dynobs_sampler s;
    cr_assert_eq(dynobs__sampler_init(&s, "parentbased_traceidratio", "0"), 0);
    cr_assert_eq(count_sampled(&s, 1000, 1, 1), 1000);
    cr_assert_eq(count_sampled(&s, 1000, 1, 0), 0);
    cr_assert_eq(count_sampled(&s, 1000, 0, 0), 0);
}

Test(sampler, bad_configuration)
{
    struct dynobs_sampler s;
    cr_assert_eq(dynobs__sampler_init(&s, "sometimes", NULL), -EINVAL);
    cr_assert_eq(dynobs__sampler_init(&s, "traceidratio", "1.5"), -EINVAL);
    cr_assert_eq(s.ratio, 1.0); /* the spec's default ratio */
    cr_assert_eq(dynobs__sampler_init(&s, "traceidratio", "half"), -EINVAL);
    cr_assert_eq(dynobs__sampler_init(&s, "traceidratio", "-0.1"), -EINVAL);
    cr_assert_eq(dynobs__sampler_init(&s, "traceidratio", NULL), 0);
    cr_assert_eq(s.ratio, 1.0);
}
