/* Configuration from the environment. */
#define _GNU_SOURCE /* testutil.h: nftw, posix_spawn */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "config.h"
#include "layout.h"
#include "testutil.h"


static void load(struct dynobs_config *c, const char *const *env)
{
    tu_fake_env = env;
    dynobs__config_load(c, tu_getenv);
}

Test(config, defaults)
{
    struct dynobs_config c;
    load(&c, NULL);
    cr_assert_eq(c.disabled, 0);
    cr_assert_str_eq(c.shm_dir, "/dev/shm/dynobs");
    cr_assert_eq(c.ring_bytes, DYNOBS_RING_BYTES_DEFAULT);
    cr_assert_eq(c.metric_slots, DYNOBS_METRIC_SLOTS_DEFAULT);
    cr_assert_eq(c.attr_count_limit, 128);
    cr_assert_eq(c.event_count_limit, 128);
    cr_assert_eq(c.sampler.kind, DYNOBS_SAMPLER_PARENT_ALWAYS_ON);
    cr_assert_eq(c.bad_setting, 0);
}

Test(config, values)
{
    struct dynobs_config c;
    const char *env[] = {"OTEL_SDK_DISABLED=TRUE",
                         "DYNOBS_SHM_DIR=/tmp/x",
                         "DYNOBS_RING_BYTES=3M",
                         "DYNOBS_METRIC_SLOTS=1000",
                         "OTEL_ATTRIBUTE_COUNT_LIMIT=7",
                         "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=5",
                         "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=64",
                         "OTEL_TRACES_SAMPLER=traceidratio",
                         "OTEL_TRACES_SAMPLER_ARG=0.25",
                         NULL};
    load(&c, env);
    cr_assert_eq(c.disabled, 1);
    cr_assert_str_eq(c.shm_dir, "/tmp/x");
    cr_assert_eq(c.ring_bytes, 2u << 20);   /* rounded down to a power of two */
    cr_assert_eq(c.metric_slots, 512);
    cr_assert_eq(c.attr_count_limit, 5);    /* the span-specific one wins */
    cr_assert_eq(c.attr_value_limit, 64);
    cr_assert_eq(c.sampler.kind, DYNOBS_SAMPLER_RATIO);
    cr_assert_float_eq(c.sampler.ratio, 0.25, 1e-12);
    cr_assert_eq(c.bad_setting, 0);
}

Test(config, malformed_values_fall_back)
{
    struct dynobs_config c;
    const char *env[] = {"OTEL_SDK_DISABLED=yes", "DYNOBS_RING_BYTES=lots",
                         "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=-3", "OTEL_TRACES_SAMPLER=random",
                         NULL};
    load(&c, env);
    cr_assert_eq(c.disabled, 0); /* only "true" disables */
    cr_assert_eq(c.ring_bytes, DYNOBS_RING_BYTES_DEFAULT);
    cr_assert_eq(c.attr_count_limit, 128);
    cr_assert_eq(c.sampler.kind, DYNOBS_SAMPLER_PARENT_ALWAYS_ON);
    cr_assert_eq(c.bad_setting, 1);
    cr_assert_str_eq(c.bad_name, "DYNOBS_RING_BYTES");
    const char *env2[] = {"DYNOBS_RING_BYTES=1K", NULL}; /* below the minimum */
    load(&c, env2);
    cr_assert_eq(c.ring_bytes, DYNOBS_RING_BYTES_DEFAULT);
    cr_assert_eq(c.bad_setting, 1);
}

Test(config, parse_size)
{
    uint64_t v;
    cr_assert_eq(dynobs__parse_size("4096", &v), 0);
    cr_assert_eq(v, 4096);
    cr_assert_eq(dynobs__parse_size("64K", &v), 0);
    cr_assert_eq(v, 65536);
    cr_assert_eq(dynobs__parse_size("2MiB", &v), 0);
    cr_assert_eq(v, 2u << 20);
    cr_assert_eq(dynobs__parse_size("", &v), -EINVAL);
    cr_assert_eq(dynobs__parse_size("12X", &v), -EINVAL);
    cr_assert_eq(dynobs__parse_size("5i", &v), -EINVAL);
    cr_assert_eq(dynobs__parse_size("99999999999999999999", &v), -EINVAL);
    cr_assert_eq(dynobs__parse_size("17179869184G", &v), -EINVAL);
}

Test(config, correlation_headers)
{
    struct dynobs_config c;
    load(&c, (const char *const[]){NULL});
    cr_assert_eq(c.ncorr, 2);
    cr_assert_str_eq(c.corr_names[0], "x-correlation-id");
    cr_assert_str_eq(c.corr_names[1], "x-request-id");
    load(&c, (const char *const[]){"DYNOBS_CORRELATION_HEADERS= X-Trace-Me ,, x-b", NULL});
    cr_assert_eq(c.ncorr, 2);
    cr_assert_str_eq(c.corr_names[0], "x-trace-me");
    cr_assert_eq(c.corr_lens[0], 10);
    cr_assert_str_eq(c.corr_names[1], "x-b");
    cr_assert_eq(c.bad_setting, 0);
    load(&c, (const char *const[]){"DYNOBS_CORRELATION_HEADERS=", NULL});
    cr_assert_eq(c.ncorr, 0, "an empty list turns it off");
    /* Not a header name, one dynobs handles itself, or too many: the
     * default, reported. */
    const char *bad[] = {"DYNOBS_CORRELATION_HEADERS=x-a,b@d",
                         "DYNOBS_CORRELATION_HEADERS=traceparent",
                         "DYNOBS_CORRELATION_HEADERS=a,b,c,d,e",
                         /* Credentials would go to every destination. */
                         "DYNOBS_CORRELATION_HEADERS=x-request-id,Authorization",
                         "DYNOBS_CORRELATION_HEADERS=cookie",
                         "DYNOBS_CORRELATION_HEADERS=set-cookie",
                         "DYNOBS_CORRELATION_HEADERS=proxy-authorization"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        load(&c, (const char *const[]){bad[i], NULL});
        cr_assert_eq(c.ncorr, 2, "%s", bad[i]);
        cr_assert_eq(c.bad_setting, 1, "%s", bad[i]);
        cr_assert_str_eq(c.bad_name, "DYNOBS_CORRELATION_HEADERS");
    }
}

Test(config, baggage_attributes)
{
    struct dynobs_config c;
    load(&c, (const char *const[]){NULL});
    cr_assert_eq(c.nbag_keys, 0, "none by default");
    load(&c, (const char *const[]){"DYNOBS_BAGGAGE_ATTRIBUTES=userId, tier", NULL});
    cr_assert_eq(c.nbag_keys, 2);
    cr_assert_str_eq(c.bag_keys[0], "userId", "case is kept");
    cr_assert_str_eq(c.bag_keys[1], "tier");
    load(&c, (const char *const[]){"DYNOBS_BAGGAGE_ATTRIBUTES=a=b", NULL});
    cr_assert_eq(c.nbag_keys, 0);
    cr_assert_str_eq(c.bad_name, "DYNOBS_BAGGAGE_ATTRIBUTES");
}
