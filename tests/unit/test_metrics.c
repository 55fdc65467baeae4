/* The metric table: registration, exact concurrent updates, limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "metrics.h"

static struct dynobs_metric_table *table(uint32_t n)
{
    struct dynobs_metric_table *t = calloc(1, sizeof *t);
    t->slots = calloc(n, sizeof *t->slots);
    t->nslots = n;
    t->counters = calloc(DYNOBS_SHARD_COUNTERS, sizeof(uint64_t));
    return t;
}

/* Sums a field over every slot whose name and labels match (a series
 * may legitimately sit in two slots after a registration race). */
static int find(struct dynobs_metric_table *t, const char *name, const char *labels,
                struct dynobs_metric_view *out)
{
    int found = 0;
    for (uint32_t i = 0; i < t->nslots; i++) {
        struct dynobs_metric_view v;
        if (dynobs__metric_read(&t->slots[i], &v) == 0 && !strcmp(v.name, name) &&
            !strcmp(v.labels, labels)) {
            if (!found)
                *out = v;
            else {
                out->value += v.value;
                out->count += v.count;
            }
            found++;
        }
    }
    return found;
}

static struct dynobs_metric_def def(const char *name, int kind)
{
    return (struct dynobs_metric_def){.name = name, .kind = kind};
}

Test(metrics, counter_updown_gauge)
{
    struct dynobs_metric_table *t = table(64);
    struct dynobs_metric_def c = def("requests", DYNOBS_METRIC_COUNTER);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(dynobs__metric_update(t, &c, 1.5, "method=GET"), 0);
    cr_assert_eq(dynobs__metric_update(t, &c, 1, "method=POST"), 0);
    cr_assert_eq(dynobs__metric_update(t, &c, 1, NULL), 0);
    struct dynobs_metric_view v;
    cr_assert_eq(find(t, "requests", "method=GET", &v), 1);
    cr_assert_float_eq(v.value, 15.0, 1e-12);
    cr_assert_eq(v.kind, DYNOBS_METRIC_COUNTER);
    cr_assert_gt(v.start_ns, 0);
    cr_assert_eq(find(t, "requests", "", &v), 1);
    struct dynobs_metric_def u = def("inflight", DYNOBS_METRIC_UPDOWN);
    cr_assert_eq(dynobs__metric_update(t, &u, 5, NULL), 0);
    cr_assert_eq(dynobs__metric_update(t, &u, -7, NULL), 0);
    cr_assert_eq(find(t, "inflight", "", &v), 1);
    cr_assert_float_eq(v.value, -2.0, 1e-12);
    struct dynobs_metric_def g = def("temp", DYNOBS_METRIC_GAUGE);
    cr_assert_eq(dynobs__metric_update(t, &g, 5, NULL), 0);
    cr_assert_eq(dynobs__metric_update(t, &g, 3.25, NULL), 0);
    cr_assert_eq(find(t, "temp", "", &v), 1);
    cr_assert_float_eq(v.value, 3.25, 1e-12);
}

Test(metrics, histogram_buckets_sum_min_max)
{
    struct dynobs_metric_table *t = table(64);
    double b[] = {1, 10, 100};
    struct dynobs_metric_def h = {.name = "lat", .unit = "ms", .kind = DYNOBS_METRIC_HISTOGRAM,
                                  .bounds = b, .nbounds = 3};
    double vals[] = {0.5, 1, 1.5, 10, 50, 100, 1000, -3};
    for (size_t i = 0; i < 8; i++)
        cr_assert_eq(dynobs__metric_update(t, &h, vals[i], "a=b"), 0);
    struct dynobs_metric_view v;
    cr_assert_eq(find(t, "lat", "a=b", &v), 1);
    cr_assert_str_eq(v.unit, "ms");
    cr_assert_eq(v.nbounds, 3);
    /* Buckets are (-inf,1], (1,10], (10,100], (100,+inf). */
    cr_assert_eq(v.buckets[0], 3);
    cr_assert_eq(v.buckets[1], 2);
    cr_assert_eq(v.buckets[2], 2);
    cr_assert_eq(v.buckets[3], 1);
    cr_assert_eq(v.count, 8);
    cr_assert_float_eq(v.value, 1160.0, 1e-9);
    cr_assert_float_eq(v.min, -3.0, 0);
    cr_assert_float_eq(v.max, 1000.0, 0);
    /* No bounds given: the OpenTelemetry defaults. */
    struct dynobs_metric_def d = def("dflt", DYNOBS_METRIC_HISTOGRAM);
    cr_assert_eq(dynobs__metric_update(t, &d, 7, NULL), 0);
    cr_assert_eq(find(t, "dflt", "", &v), 1);
    cr_assert_eq(v.nbounds, 15);
    cr_assert_float_eq(v.bounds[14], 10000.0, 0);
    cr_assert_eq(v.buckets[2], 1); /* (5, 10] */
}

/* The bucket search against the plain scan it replaced, for every count
 * of bounds up to the most a slot holds, at each bound, between and
 * beside them, at the infinities and for a NaN. */
Test(metrics, bucket_of_is_the_scan)
{
    double b[DYNOBS_HISTOGRAM_MAX_BOUNDS];
    srand(7);
    for (int round = 0; round < 200; round++) {
        unsigned n = (unsigned)round % (DYNOBS_HISTOGRAM_MAX_BOUNDS + 1);
        double x = (rand() % 2000) / 10.0 - 100.0;
        for (unsigned i = 0; i < n; i++) {
            x += 0.25 + (rand() % 1000) / 100.0;
            b[i] = x;
        }
        double probes[4 * DYNOBS_HISTOGRAM_MAX_BOUNDS + 5];
        unsigned np = 0;
        for (unsigned i = 0; i < n; i++) {
            probes[np++] = b[i];
            probes[np++] = nextafter(b[i], -INFINITY);
            probes[np++] = nextafter(b[i], INFINITY);
            probes[np++] = i ? (b[i - 1] + b[i]) / 2 : b[i] - 1000;
        }
        probes[np++] = n ? b[n - 1] + 1000 : 0;
        probes[np++] = -INFINITY;
        probes[np++] = INFINITY;
        probes[np++] = NAN;
        probes[np++] = -0.0;
        for (unsigned k = 0; k < np; k++) {
            unsigned want = 0;
            while (want < n && probes[k] > b[want])
                want++;
            cr_assert_eq(dynobs__bucket_of(b, n, probes[k]), want, "n %u, value %.17g: %u, not %u",
                         n, probes[k], dynobs__bucket_of(b, n, probes[k]), want);
        }
    }
}

Test(metrics, bad_input_is_refused)
{
    struct dynobs_metric_table *t = table(64);
    struct dynobs_metric_def c = def("ok", DYNOBS_METRIC_COUNTER);
    cr_assert_eq(dynobs__metric_update(t, &c, -1, NULL), -EINVAL);
    cr_assert_eq(dynobs__metric_update(t, &c, NAN, NULL), -EINVAL);
    cr_assert_eq(dynobs__metric_update(t, &c, INFINITY, NULL), -EINVAL);
    const char *bad_labels[] = {"k", "=v", "k=v,", "k=v,,a=b", "k y=v", "k=a=b", "k=\n"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof *bad_labels; i++)
        cr_expect_eq(dynobs__metric_update(t, &c, 1, bad_labels[i]), -EINVAL, "%s",
                     bad_labels[i]);
    const char *bad_names[] = {"", "9x", "_x", "a b", "a\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        struct dynobs_metric_def b = def(bad_names[i], DYNOBS_METRIC_COUNTER);
        cr_expect_eq(dynobs__metric_update(t, &b, 1, NULL), -EINVAL, "%s", bad_names[i]);
    }
    char longname[300]; /* name and labels over DYNOBS_METRIC_KEY_BYTES */
    memset(longname, 'a', 299);
    longname[299] = 0;
    struct dynobs_metric_def l = def(longname, DYNOBS_METRIC_COUNTER);
    cr_assert_eq(dynobs__metric_update(t, &l, 1, NULL), -EINVAL);
    double unsorted[] = {1, 1, 2};
    struct dynobs_metric_def h = {.name = "h", .kind = DYNOBS_METRIC_HISTOGRAM,
                                  .bounds = unsorted, .nbounds = 3};
    cr_assert_eq(dynobs__metric_update(t, &h, 1, NULL), -EINVAL);
    double many[16] = {0};
    for (int i = 0; i < 16; i++)
        many[i] = i;
    h.bounds = many;
    h.nbounds = 16;
    cr_assert_eq(dynobs__metric_update(t, &h, 1, NULL), -EINVAL);
    struct dynobs_metric_def k = def("ok", 99);
    cr_assert_eq(dynobs__metric_update(t, &k, 1, NULL), -EINVAL);
    /* A name registered as a counter cannot be updated as a gauge. */
    cr_assert_eq(dynobs__metric_update(t, &c, 1, "x=1"), 0);
    struct dynobs_metric_def g = def("ok", DYNOBS_METRIC_GAUGE);
    cr_assert_eq(dynobs__metric_update(t, &g, 1, "x=1"), -EINVAL);
    /* Nothing bad was registered. */
    int used = 0;
    for (uint32_t i = 0; i < t->nslots; i++)
        used += t->slots[i].state != DYNOBS_SLOT_EMPTY;
    cr_assert_eq(used, 1);
}

Test(metrics, full_table_counts_refusals)
{
    struct dynobs_metric_table *t = table(16);
    int ok = 0, refused = 0;
    char name[32];
    /* One series per name, so that the per-metric cap never applies. */
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "c%d", i);
        struct dynobs_metric_def c = def(name, DYNOBS_METRIC_COUNTER);
        int rc = dynobs__metric_update(t, &c, 1, "a=b");
        cr_assert(rc == 0 || rc == -ENOSPC);
        rc == 0 ? ok++ : refused++;
    }
    cr_assert_eq(ok, 16);
    cr_assert_eq(refused, 24);
    cr_assert_eq(t->counters[DYNOBS_CTR_METRIC_SERIES_REFUSED], 24);
    cr_assert_eq(t->counters[DYNOBS_CTR_METRIC_OVERFLOW], 0);
    /* Existing series keep working on a full table. */
    struct dynobs_metric_def c0 = def("c0", DYNOBS_METRIC_COUNTER);
    cr_assert_eq(dynobs__metric_update(t, &c0, 1, "a=b"), 0);
}

/* Series of one metric and the sum of their values and counts. */
static int series_of(struct dynobs_metric_table *t, const char *name, double *sum,
                     uint64_t *count, struct dynobs_metric_view *overflow)
{
    int n = 0;
    *sum = 0;
    *count = 0;
    for (uint32_t i = 0; i < t->nslots; i++) {
        struct dynobs_metric_view v;
        if (dynobs__metric_read(&t->slots[i], &v) != 0 || strcmp(v.name, name))
            continue;
        n++;
        *sum += v.value;
        *count += v.count;
        if (!strcmp(v.labels, DYNOBS_METRIC_OVERFLOW_LABELS))
            *overflow = v;
    }
    return n;
}

Test(metrics, cardinality_cap_folds_into_overflow)
{
    struct dynobs_metric_table *t = table(64); /* cap: 64 / 4 = 16 */
    dynobs__metric_cardinality_set(0);
    cr_assert_eq(dynobs__metric_cap(t), 16);
    struct dynobs_metric_def c = def("c", DYNOBS_METRIC_COUNTER);
    struct dynobs_metric_def h = def("h", DYNOBS_METRIC_HISTOGRAM);
    char labels[32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 100; i++) {
            snprintf(labels, sizeof labels, "i=%d", i);
            cr_assert_eq(dynobs__metric_update(t, &c, i, labels), 0);
            cr_assert_eq(dynobs__metric_update(t, &h, i, labels), 0);
        }
    double sum;
    uint64_t count;
    struct dynobs_metric_view o = {0};
    /* 16 attribute sets of their own plus the overflow series; every
     * measurement in exactly one of them. */
    cr_assert_eq(series_of(t, "c", &sum, &count, &o), 17);
    cr_assert_float_eq(sum, 2 * 4950.0, 0);
    cr_assert_float_eq(o.value, 2 * (4950.0 - 120), 0); /* i = 16..99 */
    cr_assert_eq(series_of(t, "h", &sum, &count, &o), 17);
    cr_assert_float_eq(sum, 2 * 4950.0, 0);
    cr_assert_eq(count, 200);
    cr_assert_eq(o.count, 2 * 84);
    cr_assert_float_eq(o.min, 16, 0);
    cr_assert_float_eq(o.max, 99, 0);
    cr_assert_eq(t->counters[DYNOBS_CTR_METRIC_OVERFLOW], 2 * 2 * 84);
    /* A series under the cap stays its own. */
    cr_assert_eq(dynobs__metric_update(t, &c, 1000, "i=3"), 0);
    struct dynobs_metric_view v;
    cr_assert_eq(find(t, "c", "i=3", &v), 1);
    cr_assert_float_eq(v.value, 1006, 0);
    cr_assert_eq(t->counters[DYNOBS_CTR_METRIC_SERIES_REFUSED], 0);
}

Test(metrics, cardinality_limit_setter_and_gauges)
{
    struct dynobs_metric_table *t = table(1024); /* share 256 */
    dynobs__metric_cardinality_set(3);
    cr_assert_eq(dynobs__metric_cap(t), 3);
    struct dynobs_metric_def g = def("g", DYNOBS_METRIC_GAUGE);
    char labels[32];
    for (int i = 0; i < 10; i++) {
        snprintf(labels, sizeof labels, "i=%d", i);
        cr_assert_eq(dynobs__metric_update(t, &g, i, labels), 0);
    }
    double sum;
    uint64_t count;
    struct dynobs_metric_view o = {0};
    cr_assert_eq(series_of(t, "g", &sum, &count, &o), 4);
    /* A gauge's overflow series holds the last value set to it. */
    cr_assert_float_eq(o.value, 9, 0);
    dynobs__metric_cardinality_set(100000);
    cr_assert_eq(dynobs__metric_cap(t), 256);
    dynobs__metric_cardinality_set(0);
    cr_assert_eq(dynobs__metric_cap(t), 256);
}

/* A new series with no free slot within reach goes to its metric's
 * overflow series when that one can be had. */
Test(metrics, no_slot_within_reach_overflows)
{
    struct dynobs_metric_table *t = table(256); /* cap 64 */
    struct dynobs_metric_def c = def("c", DYNOBS_METRIC_COUNTER);
    cr_assert_eq(dynobs__metric_update(t, &c, 1, DYNOBS_METRIC_OVERFLOW_LABELS), 0);
    /* Every other slot taken by other metrics. */
    char name[32];
    uint32_t used = 1;
    for (int i = 0; used < t->nslots && i < 100000; i++) {
        snprintf(name, sizeof name, "f%d", i);
        struct dynobs_metric_def f = def(name, DYNOBS_METRIC_COUNTER);
        used += dynobs__metric_update(t, &f, 1, NULL) == 0;
    }
    cr_assert_eq(used, t->nslots);
    uint64_t over = t->counters[DYNOBS_CTR_METRIC_OVERFLOW];
    t->counters[DYNOBS_CTR_METRIC_SERIES_REFUSED] = 0;
    cr_assert_eq(dynobs__metric_update(t, &c, 5, "new=1"), 0);
    struct dynobs_metric_view v;
    cr_assert_eq(find(t, "c", DYNOBS_METRIC_OVERFLOW_LABELS, &v), 1);
    cr_assert_float_eq(v.value, 6, 0);
    cr_assert_eq(t->counters[DYNOBS_CTR_METRIC_OVERFLOW], over + 1);
    cr_assert_eq(t->counters[DYNOBS_CTR_METRIC_SERIES_REFUSED], 0);
}

/* More names than the count entries: the names without one send new
 * series to overflow (counted), never past the cap. */
Test(metrics, names_beyond_the_count_table_overflow)
{
    struct dynobs_metric_table *t = table(4096);
    char name[32];
    for (unsigned i = 0; i < DYNOBS_METRIC_NAMES + 10; i++) {
        snprintf(name, sizeof name, "n%u", i);
        struct dynobs_metric_def c = def(name, DYNOBS_METRIC_COUNTER);
        cr_assert_eq(dynobs__metric_update(t, &c, 1, "a=b"), 0);
    }
    cr_assert_eq(t->counters[DYNOBS_CTR_METRIC_OVERFLOW], 10);
    int own = 0, over = 0;
    for (uint32_t i = 0; i < t->nslots; i++) {
        struct dynobs_metric_view v;
        if (dynobs__metric_read(&t->slots[i], &v) == 0)
            !strcmp(v.labels, "a=b") ? own++ : over++;
    }
    cr_assert_eq(own, DYNOBS_METRIC_NAMES);
    cr_assert_eq(over, 10);
}

#define THREADS 4
#define ADDS 200000

static struct dynobs_metric_table *shared_t;

static void *adder(void *arg)
{
    long id = (long)arg;
    struct dynobs_metric_def c = def("hits", DYNOBS_METRIC_COUNTER);
    struct dynobs_metric_def h = def("sizes", DYNOBS_METRIC_HISTOGRAM);
    char labels[32];
    for (int i = 0; i < ADDS; i++) {
        /* Everyone hammers one series and registers eight new ones. */
        if (dynobs__metric_update(shared_t, &c, 1, "shared=1") != 0)
            abort();
        snprintf(labels, sizeof labels, "k=%d", i % 8);
        if (dynobs__metric_update(shared_t, &h, (double)(i % 100), labels) != 0)
            abort();
    }
    (void)id;
    return NULL;
}

Test(metrics, concurrent_updates_are_exact, .timeout = 120)
{
    shared_t = table(256);
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, adder, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    struct dynobs_metric_view v;
    cr_assert_geq(find(shared_t, "hits", "shared=1", &v), 1);
    cr_assert_float_eq(v.value, (double)THREADS * ADDS, 0);
    uint64_t total = 0;
    double sum = 0;
    char labels[32];
    for (int k = 0; k < 8; k++) {
        snprintf(labels, sizeof labels, "k=%d", k);
        cr_assert_geq(find(shared_t, "sizes", labels, &v), 1);
        total += v.count;
        sum += v.value;
    }
    cr_assert_eq(total, (uint64_t)THREADS * ADDS);
    /* Every thread adds 0..99 2000 times over: 4 * 2000 * 4950. */
    cr_assert_float_eq(sum, (double)THREADS * (ADDS / 100) * 4950.0, 0);
}

Test(metrics, corrupt_slots_are_rejected)
{
    struct dynobs_metric_table *t = table(16);
    struct dynobs_metric_def c = def("ok", DYNOBS_METRIC_COUNTER);
    cr_assert_eq(dynobs__metric_update(t, &c, 1, "a=b"), 0);
    uint32_t i;
    for (i = 0; t->slots[i].state != DYNOBS_SLOT_READY; i++)
        ;
    struct dynobs_metric_slot good = t->slots[i], *s = &t->slots[i];
    struct dynobs_metric_view v;
    cr_assert_eq(dynobs__metric_read(s, &v), 0);
    s->kind = 9;
    cr_assert_eq(dynobs__metric_read(s, &v), -EBADMSG);
    *s = good;
    s->name_len = 200;
    cr_assert_eq(dynobs__metric_read(s, &v), -EBADMSG);
    *s = good;
    s->key[2] = 'X'; /* the NUL after the name is gone */
    cr_assert_eq(dynobs__metric_read(s, &v), -EBADMSG);
    *s = good;
    memset(s->unit, 'u', sizeof s->unit);
    cr_assert_eq(dynobs__metric_read(s, &v), -EBADMSG);
    *s = good;
    s->kind = DYNOBS_METRIC_HISTOGRAM;
    s->nbounds = 200;
    cr_assert_eq(dynobs__metric_read(s, &v), -EBADMSG);
    *s = good;
    s->state = DYNOBS_SLOT_CLAIMED;
    cr_assert_eq(dynobs__metric_read(s, &v), -ENOENT);
}
