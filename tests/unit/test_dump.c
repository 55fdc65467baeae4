/* dynobs-dump: what it prints of a segment's counters and of the rules
 * generation the exporter published on its consumer page. The segment is
 * made here, its counters and consumer page written as the shim and the
 * exporter would, and the real dynobs-dump binary reads it. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layout.h"
#include "metric_meta.h"
#include "segment.h"
#include "testutil.h"

static char *dir;

static void setup(void)
{
    dir = tu_tmpdir();
}

static void teardown(void)
{
    tu_rmtree(dir);
    free(dir);
}

TestSuite(dump, .init = setup, .fini = teardown);

/* A segment of this process in dir, two shards; returns it mapped. */
static void make_segment(struct dynobs_segment *s)
{
    struct dynobs_resource res;
    dynobs__resource_build(&res, "dumped", "", "prog");
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 131072, .ring_shards = 2,
                                      .metric_slots = 16, .pid = getpid(),
                                      .start_ticks = dynobs__proc_start_ticks(0), .resource = &res};
    cr_assert_eq(dynobs__segment_create(s, &p), 0);
    cr_assert_eq(s->nshards, 2);
}

/* dynobs-dump's output for the segment s. */
static char *dump(const struct dynobs_segment *s)
{
    char out[1100];
    snprintf(out, sizeof out, "%s/dump.txt", dir);
    char *argv[] = {DUMP_BIN, (char *)s->path, NULL};
    cr_assert_eq(tu_run(argv, (const char *const[]){NULL}, out), 0);
    return tu_slurp(out);
}

Test(dump, prints_every_counter_summed_over_shards)
{
    struct dynobs_segment s;
    make_segment(&s);
    /* Distinct values per counter, split over the two shards, so that a
     * counter printed in another's place or from one shard shows. */
    for (unsigned c = 0; c < DYNOBS_CTR_COUNT; c++) {
        s.hdr->shards[0].counters[c] = 100u * (c + 1);
        s.hdr->shards[1].counters[c] = c + 1;
    }
    char *text = dump(&s);
    TU_ASSERT_CONTAINS(text, "service.name=dumped",
                       "records written=101 dropped=202 truncated=303 spans refused=404 "
                       "metric series refused=505 metric updates refused=606 "
                       "metric overflow=707\n");
    free(text);
}

Test(dump, prints_the_rules_generation_of_the_consumer_page)
{
    struct dynobs_segment s;
    make_segment(&s);
    char *text = dump(&s);
    TU_ASSERT_CONTAINS(text, "rules_generation=0 (no table: built-in defaults)\n");
    free(text);
    /* The exporter publishes generation 42 of the rules table. */
    struct dynobs_seg_consumer *cp =
        (struct dynobs_seg_consumer *)(s.base + s.hdr->consumer_offset);
    __atomic_store_n(&cp->rules_generation, 42, __ATOMIC_RELAXED);
    text = dump(&s);
    TU_ASSERT_CONTAINS(text, "rules_generation=42\n");
    free(text);
}

Test(dump, prints_declarations_and_windows)
{
    struct dynobs_segment s;
    make_segment(&s);
    struct dynobs_metric_def d = {.name = "queue.depth", .unit = "{job}",
                                  .kind = DYNOBS_METRIC_GAUGE};
    cr_assert_eq(dynobs__meta_declare(&s.metrics, &d, "Jobs waiting"), 0);
    d.unit = "s";
    cr_assert_eq(dynobs__meta_declare(&s.metrics, &d, "Jobs waiting"), -EEXIST);
    d.unit = NULL;
    cr_assert_eq(dynobs__metric_update(&s.metrics, &d, 4, ""), 0);
    cr_assert_eq(dynobs__metric_update(&s.metrics, &d, 2, ""), 0);
    char *text = dump(&s);
    TU_ASSERT_CONTAINS(text, "windows: 16 slices of 1000 ms; declared metrics: 128 entries, "
                             "conflicts=1 refused=0\n",
                       "declared queue.depth gauge unit={job} \"Jobs waiting\"\n",
                       "metric queue.depth{} gauge unit={job} value=2\n",
                       " count=2 sum=6 avg=3 min=2 max=4\n", "  window since start: count=2");
    free(text);
}
