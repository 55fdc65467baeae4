/*
 * Spans and metrics of eBPF events, written into the traced process's
 * segment in the records the shim writes (layout.h), so that the
 * exporter cannot tell them apart but by the resource's dynobs.source.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ids.h"
#include "internal.h"
#include "metrics.h"
#include "record.h"
#include "ring.h"
#include "tracecontext.h"

static struct dynobs_rng rng;
static int seeded;
static int64_t wall_offset; /* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */

static uint64_t clock_ns(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

void dynobs__ebpf_clock_sync(void)
{
    wall_offset = (int64_t)(clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC));
}

uint64_t dynobs__ebpf_wall(uint64_t mono_ns)
{
    return (uint64_t)((int64_t)mono_ns + wall_offset);
}

void dynobs__espan_begin(struct espan *s, int kind, const char *name, const struct ectx *parent,
                         uint64_t start_mono, int tid)
{
    if (!seeded) {
        dynobs__rng_seed(&rng);
        seeded = 1;
    }
    memset(&s->f, 0, sizeof s->f);
    s->items_len = 0;
    snprintf(s->name, sizeof s->name, "%s", name);
    if (parent) {
        memcpy(s->f.trace_id, parent->trace_id, 16);
        memcpy(s->f.parent_span_id, parent->span_id, 8);
        s->f.trace_flags = parent->flags;
        s->f.span_flags |= DYNOBS_SPANF_HAS_PARENT;
        if (parent->remote)
            s->f.span_flags |= DYNOBS_SPANF_PARENT_REMOTE;
    } else {
        dynobs__rng_id(&rng, s->f.trace_id, 16);
        s->f.trace_flags = DYNOBS_FLAG_SAMPLED | DYNOBS_FLAG_RANDOM;
    }
    dynobs__rng_id(&rng, s->f.span_id, 8);
    /* parent-based, always on at the root: the shim's default sampler */
    s->recording = (s->f.trace_flags & DYNOBS_FLAG_SAMPLED) != 0;
    s->f.kind = (uint8_t)kind;
    s->f.tid = (uint32_t)tid;
    s->f.start_ns = dynobs__ebpf_wall(start_mono);
}

static void add(struct espan *s, const char *key, int type, const void *v, size_t n)
{
    size_t klen = strlen(key);
    if (n > 1024)
        n = 1024; /* the shim's default value limit */
    size_t w = dynobs__item_put_attr(s->items + s->items_len, sizeof s->items - s->items_len,
                                     DYNOBS_ITEM_SPAN_ATTR, key, klen, type, v, n, 0);
    if (!w) {
        s->f.dropped_attrs++;
        return;
    }
    s->items_len += w;
    s->f.attr_count++;
}

void dynobs__espan_str(struct espan *s, const char *key, const char *v, size_t n)
{
    if (v && n)
        add(s, key, DYNOBS_ATTR_STRING, v, n);
}

void dynobs__espan_int(struct espan *s, const char *key, int64_t v)
{
    add(s, key, DYNOBS_ATTR_INT, &v, 8);
}

void dynobs__espan_error(struct espan *s)
{
    s->f.status = DYNOBS_STATUS_ERROR;
}

void dynobs__espan_ctx(const struct espan *s, struct ectx *out)
{
    memcpy(out->trace_id, s->f.trace_id, 16);
    memcpy(out->span_id, s->f.span_id, 8);
    out->flags = s->f.trace_flags;
    out->remote = 0;
}

void dynobs__espan_end(struct eproc *p, struct espan *s, uint64_t end_mono)
{
    if (!s->recording)
        return;
    struct dynobs_segment *seg = dynobs__eproc_segment(p);
    if (!seg) {
        EBPF_COUNT(spans_dropped, 1);
        return;
    }
    s->f.end_ns = dynobs__ebpf_wall(end_mono);
    if (s->f.end_ns < s->f.start_ns)
        s->f.end_ns = s->f.start_ns;
    size_t nl = strlen(s->name);
    uint8_t body[sizeof s->name + ESPAN_ITEMS];
    memcpy(body, s->name, nl);
    memcpy(body + nl, s->items, s->items_len);
    s->f.name_len = (uint16_t)nl;
    s->f.body_len = (uint32_t)(nl + s->items_len);
    /* one shard: a single writer, in order; the ring grows with the
     * backlog (events come in batches of up to 100 ms) */
    struct dynobs_ring *r = &seg->rings[0];
    struct dynobs_rec_hdr *h = dynobs__ring_reserve_in(r, dynobs__ring_room(seg, r),
                                                       sizeof s->f + s->f.body_len,
                                                       DYNOBS_REC_SPAN, 0);
    if (!h) {
        EBPF_COUNT(spans_dropped, 1);
        return;
    }
    memcpy(h + 1, &s->f, sizeof s->f);
    memcpy((uint8_t *)(h + 1) + sizeof s->f, body, s->f.body_len);
    dynobs__ring_commit(r, h);
    EBPF_COUNT(spans, 1);
}

void dynobs__ebpf_histogram(struct eproc *p, const char *name, const double *bounds,
                            unsigned nbounds, double v, const char *labels)
{
    struct dynobs_segment *seg = dynobs__eproc_segment(p);
    if (!seg)
        return;
    struct dynobs_metric_def d = {.name = name, .unit = "s", .kind = DYNOBS_METRIC_HISTOGRAM,
                                  .bounds = bounds, .nbounds = nbounds};
    if (dynobs__metric_update(&seg->metrics, &d, v, labels) < 0)
        __atomic_fetch_add(&seg->metrics.counters[DYNOBS_CTR_METRIC_UPDATES_REFUSED], 1,
                           __ATOMIC_RELAXED);
}
