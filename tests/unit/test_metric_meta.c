/* Declared metrics (common/metric_meta.c): entries round-trip through a
 * reader, a redeclaration alike is accepted, one that differs is refused
 * and counted, bad input and a full region are refused, a corrupt entry
 * is reported, and a series registered by name takes the declared unit
 * and bounds. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dynobs/dynobs.h"
#include "metric_meta.h"
#include "reader.h"
#include "segment.h"
#include "testutil.h"

static char *dir;
static struct dynobs_segment seg;
static struct dynobs_reader *rd;

static void setup(void)
{
    dir = tu_tmpdir();
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 65536, .ring_shards = 1,
                                      .metric_slots = 64, .meta_slots = 16, .pid = getpid(),
                                      .start_ticks = dynobs__proc_start_ticks(0)};
    cr_assert_eq(dynobs__segment_create(&seg, &p), 0);
    rd = malloc(sizeof *rd);
}

static void teardown(void)
{
    free(rd);
    unlink(seg.path);
    dynobs__segment_detach(&seg);
    tu_rmtree(dir);
    free(dir);
}

static int declare(const char *name, int kind, const char *unit, const char *desc,
                   const double *bounds, size_t nbounds)
{
    struct dynobs_metric_def d = {.name = name, .unit = unit, .kind = kind, .bounds = bounds,
                                  .nbounds = nbounds};
    return dynobs__meta_declare(&seg.metrics, &d, desc);
}

/* Entry of name as a reader sees it: 0 or the first error met. */
static int find(const char *name, struct dynobs_metric_meta_view *v)
{
    cr_assert_eq(dynobs__reader_open(rd, seg.path, 0), 0);
    int rc = -ENOENT;
    for (uint32_t i = 0; i < rd->hdr.meta_slots; i++) {
        int r = dynobs__reader_meta(rd, i, v);
        if (r == -ENOENT)
            continue;
        if (r < 0) {
            rc = r;
            break;
        }
        if (v->name_len == strlen(name) && memcmp(v->name, name, v->name_len) == 0) {
            rc = 0;
            break;
        }
    }
    dynobs__reader_close(rd);
    return rc;
}

static const double B[] = {1, 2, 5};

Test(metric_meta, round_trip, .init = setup, .fini = teardown)
{
    cr_assert_eq(declare("queue.depth", DYNOBS_METRIC_GAUGE, "{item}", "Jobs waiting", NULL, 0),
                 0);
    cr_assert_eq(declare("req.latency", DYNOBS_METRIC_HISTOGRAM, "s", "", B, 3), 0);
    cr_assert_eq(declare("no.desc", DYNOBS_METRIC_COUNTER, NULL, NULL, NULL, 0), 0);
    struct dynobs_metric_meta_view v;
    cr_assert_eq(find("queue.depth", &v), 0);
    cr_expect_eq(v.kind, DYNOBS_METRIC_GAUGE);
    cr_expect_str_eq(v.unit, "{item}");
    cr_expect_eq(v.description_len, 12);
    cr_expect_eq(memcmp(v.description, "Jobs waiting", 12), 0);
    cr_assert_eq(find("req.latency", &v), 0);
    cr_expect_eq(v.kind, DYNOBS_METRIC_HISTOGRAM);
    cr_expect_str_eq(v.unit, "s");
    cr_expect_eq(v.description_len, 0);
    cr_assert_eq(find("no.desc", &v), 0);
    cr_expect_str_eq(v.unit, "");
    cr_expect_eq(find("never.declared", &v), -ENOENT);
    cr_expect_eq(seg.hdr->declare_conflicts, 0);
}

Test(metric_meta, conflicts_refused_and_counted, .init = setup, .fini = teardown)
{
    cr_assert_eq(declare("m", DYNOBS_METRIC_HISTOGRAM, "s", "Latency", B, 3), 0);
    /* The same again, however often: accepted. */
    cr_expect_eq(declare("m", DYNOBS_METRIC_HISTOGRAM, "s", "Latency", B, 3), 0);
    const double other[] = {1, 2, 6};
    cr_expect_eq(declare("m", DYNOBS_METRIC_GAUGE, "s", "Latency", NULL, 0), -EEXIST);
    cr_expect_eq(declare("m", DYNOBS_METRIC_HISTOGRAM, "ms", "Latency", B, 3), -EEXIST);
    cr_expect_eq(declare("m", DYNOBS_METRIC_HISTOGRAM, "s", "Latency!", B, 3), -EEXIST);
    cr_expect_eq(declare("m", DYNOBS_METRIC_HISTOGRAM, "s", "Latency", other, 3), -EEXIST);
    cr_expect_eq(declare("m", DYNOBS_METRIC_HISTOGRAM, "s", "Latency", B, 2), -EEXIST);
    cr_expect_eq(declare("m", DYNOBS_METRIC_HISTOGRAM, "s", "Latency", NULL, 0), -EEXIST,
                 "default bounds differ from declared ones");
    cr_expect_eq(seg.hdr->declare_conflicts, 6);
    /* The first declaration stands. */
    struct dynobs_metric_meta_view v;
    cr_assert_eq(find("m", &v), 0);
    cr_expect_str_eq(v.unit, "s");
    /* Default bounds are kept as the defaults, so a redeclaration with
     * NULL matches a declaration with NULL. */
    cr_expect_eq(declare("h2", DYNOBS_METRIC_HISTOGRAM, NULL, NULL, NULL, 0), 0);
    cr_expect_eq(declare("h2", DYNOBS_METRIC_HISTOGRAM, NULL, "", NULL, 0), 0);
}

Test(metric_meta, bad_input_and_full, .init = setup, .fini = teardown)
{
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    char longdesc[300];
    memset(longdesc, 'd', sizeof longdesc - 1);
    longdesc[sizeof longdesc - 1] = '\0';
    const double bad[] = {2, 1};
    cr_expect_eq(declare(longname, DYNOBS_METRIC_GAUGE, NULL, NULL, NULL, 0), -EINVAL);
    cr_expect_eq(declare("1bad", DYNOBS_METRIC_GAUGE, NULL, NULL, NULL, 0), -EINVAL);
    cr_expect_eq(declare("ok", 9, NULL, NULL, NULL, 0), -EINVAL);
    cr_expect_eq(declare("ok", DYNOBS_METRIC_GAUGE, "0123456789abcdef", NULL, NULL, 0), -EINVAL);
    cr_expect_eq(declare("ok", DYNOBS_METRIC_GAUGE, NULL, longdesc, NULL, 0), -EINVAL);
    cr_expect_eq(declare("ok", DYNOBS_METRIC_GAUGE, NULL, "a\nb", NULL, 0), -EINVAL);
    cr_expect_eq(declare("ok", DYNOBS_METRIC_HISTOGRAM, NULL, NULL, bad, 2), -EINVAL);
    cr_expect_eq(dynobs__meta_declare(&seg.metrics, NULL, NULL), -EINVAL);
    for (int i = 0; i < 16; i++) {
        char n[16];
        snprintf(n, sizeof n, "m%d", i);
        cr_assert_eq(declare(n, DYNOBS_METRIC_COUNTER, NULL, "x", NULL, 0), 0);
    }
    cr_expect_eq(declare("one.more", DYNOBS_METRIC_COUNTER, NULL, NULL, NULL, 0), -ENOSPC);
    cr_expect_eq(seg.hdr->declare_refused, 1);
    cr_expect_eq(declare("m3", DYNOBS_METRIC_COUNTER, NULL, "x", NULL, 0), 0, "still found");
}

Test(metric_meta, corrupt_entry, .init = setup, .fini = teardown)
{
    cr_assert_eq(declare("m", DYNOBS_METRIC_GAUGE, "s", "d", NULL, 0), 0);
    struct dynobs_metric_meta *m = NULL;
    for (uint32_t i = 0; i < seg.metrics.nmetas; i++)
        if (seg.metrics.metas[i].state == DYNOBS_SLOT_READY)
            m = &seg.metrics.metas[i];
    cr_assert(m);
    struct dynobs_metric_meta good = *m;
    struct dynobs_metric_meta_view v;
    m->description_len = 300;
    cr_expect_eq(find("m", &v), -EBADMSG);
    *m = good;
    memset(m->unit, 'u', sizeof m->unit);
    cr_expect_eq(find("m", &v), -EBADMSG);
    *m = good;
    m->kind = 7;
    cr_expect_eq(find("m", &v), -EBADMSG);
    *m = good;
    m->name[1] = 'x'; /* past name_len: no NUL there any more */
    cr_expect_eq(find("m", &v), -EBADMSG);
    *m = good;
    m->nbounds = 3; /* bounds on a gauge */
    cr_expect_eq(find("m", &v), -EBADMSG);
    *m = good;
    cr_expect_eq(find("m", &v), 0);
}

Test(metric_meta, by_name_series_takes_declaration, .init = setup, .fini = teardown)
{
    cr_assert_eq(declare("lat", DYNOBS_METRIC_HISTOGRAM, "ms", "Latency", B, 3), 0);
    struct dynobs_metric_def d = {.name = "lat", .kind = DYNOBS_METRIC_HISTOGRAM};
    cr_assert_eq(dynobs__metric_update(&seg.metrics, &d, 4, "a=1"), 0);
    struct dynobs_metric_slot *s;
    cr_assert_eq(dynobs__metric_resolve(&seg.metrics, &d, "a=1", &s), 0);
    cr_expect_str_eq(s->unit, "ms");
    cr_expect_eq(s->nbounds, 3);
    cr_expect_eq(s->bounds[2], 5);
    cr_expect_eq(s->buckets[2], 1, "4 lands in (2, 5]");
}

static void *declarer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++) {
        char n[16];
        snprintf(n, sizeof n, "race.%d", i);
        cr_assert_eq(declare(n, DYNOBS_METRIC_GAUGE, "s", "Raced", NULL, 0), 0);
    }
    return NULL;
}

/* Threads declaring the same names at once: one entry a name. */
Test(metric_meta, concurrent_declarations_make_one_entry, .init = setup, .fini = teardown)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, declarer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    int ready = 0;
    for (uint32_t i = 0; i < seg.metrics.nmetas; i++)
        ready += seg.metrics.metas[i].state == DYNOBS_SLOT_READY;
    cr_expect_eq(ready, 8);
    cr_expect_eq(seg.hdr->declare_conflicts, 0);
}
