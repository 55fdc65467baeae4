/*
 * Metrics: the API's updates, and the instrumentations' histograms and
 * label strings, go straight to the segment's metric table.
 */
#include <errno.h>
#include <string.h>

#include "state.h"

#include "../common/metrics.h"

static int record(const struct dynobs_metric_def *d, double value, const char *labels)
{
    if (!d->name)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct dynobs_segment *s = dynobs__segment();
    if (!s) {
        __atomic_fetch_add(&dynobs__lost, 1, __ATOMIC_RELAXED);
        return DYNOBS_ENOMEM;
    }
    int rc = dynobs__metric_update(&s->metrics, d, value, labels);
    if (rc == -ENOSPC)
        __atomic_fetch_add(&dynobs__ring_of(s, dynobs__thread())
                                ->counters[DYNOBS_CTR_METRIC_UPDATES_REFUSED],
                           1, __ATOMIC_RELAXED);
    return rc;
}

void dynobs__duration_record(struct dynobs_segment *seg, const char *name,
                             const double *bounds, size_t nbounds, double seconds,
                             const char *labels)
{
    struct dynobs_metric_def d = {.name = name, .unit = "s", .kind = DYNOBS_METRIC_HISTOGRAM,
                                  .bounds = bounds, .nbounds = nbounds};
    /* Refused for any reason (table full, labels too long): counted. */
    if (dynobs__metric_update(&seg->metrics, &d, seconds, labels) < 0)
        dynobs__count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
}

/* The API's one-call updates, one per instrument kind: the name alone
 * defines the instrument (no unit, default histogram bounds). */
#define UPDATE(fn, instrument)                                                             \
    DYNOBS_API int fn(const char *name, double value, const char *labels)                  \
    {                                                                                      \
        struct dynobs_metric_def d = {.name = name, .kind = (instrument)};                 \
        return record(&d, value, labels);                                                  \
    }

UPDATE(dynobs_counter_add, DYNOBS_METRIC_COUNTER)
UPDATE(dynobs_updown_add, DYNOBS_METRIC_UPDOWN)
UPDATE(dynobs_gauge_set, DYNOBS_METRIC_GAUGE)
UPDATE(dynobs_histogram_record, DYNOBS_METRIC_HISTOGRAM)

DYNOBS_API int dynobs_metric_record(const dynobs_metric_desc *desc, double value,
                                    const char *labels)
{
    if (!desc)
        return DYNOBS_EINVAL;
    struct dynobs_metric_def d = {
        .name = desc->name,
        .unit = desc->unit,
        .kind = desc->kind,
        .bounds = desc->bounds,
        .nbounds = desc->nbounds,
    };
    if (d.kind == DYNOBS_METRIC_HISTOGRAM && d.bounds && d.nbounds == 0)
        d.bounds = NULL;
    return record(&d, value, labels);
}

void dynobs__labels_join(char *out, size_t cap, const char *(*parts)[2], size_t count)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const char *k = parts[i][0], *v = parts[i][1];
        size_t kl = strlen(k), vl = v ? strlen(v) : 0;
        if (!vl || strpbrk(v, ",=") || n + kl + vl + 3 >= cap)
            continue;
        if (n)
            out[n++] = ',';
        memcpy(out + n, k, kl);
        n += kl;
        out[n++] = '=';
        memcpy(out + n, v, vl);
        n += vl;
        out[n] = '\0';
    }
}
