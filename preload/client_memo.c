#include "client_memo.h"

#include <string.h>

#include "rulesmap.h"
#include "state.h"
#include "strbuf.h"

#include "../common/metrics.h"

/* What dynobs__decide returned, as kept: its pointers into the decision
 * itself must be made again in the copy. */
enum { POL_DEFAULT, POL_DROPPED, POL_OWN };

int dynobs__client_decision_recall(const struct dynobs_client_decision *m,
                                   struct dynobs_decision *d,
                                   const struct dynobs_span_policy **pol)
{
    if (!m->p || m->p != dynobs__rules_now())
        return 0;
    /* What the caller reads of a decision; the policy stays the memo's
     * (made to point at its own sampler when kept). */
    d->p = m->d.p;
    d->r = m->d.r;
    d->routes = m->d.routes;
    d->redact = m->d.redact;
    d->drop = m->d.drop;
    *pol = m->pol == POL_OWN ? &m->d.pol : m->pol == POL_DROPPED ? &dynobs__policy_dropped : NULL;
    return 1;
}

void dynobs__client_decision_keep(struct dynobs_client_decision *m,
                                  const struct dynobs_decision *d,
                                  const struct dynobs_span_policy *pol)
{
    m->p = NULL;
    if (!d->p || (pol && pol != &dynobs__policy_dropped && pol != &d->pol))
        return;
    m->d = *d;
    m->d.pol.sampler = &m->d.sampler;
    m->pol = !pol ? POL_DEFAULT : pol == &dynobs__policy_dropped ? POL_DROPPED : POL_OWN;
    m->p = d->p;
}

int dynobs__attr_block_put(const struct dynobs_attr_block *b, struct dynobs_span *s)
{
    /* Items cut to another limit would not be what adding them gives. */
    if (!b->len || b->value_limit != dynobs__config.attr_value_limit)
        return 1;
    return dynobs__span_add_items(s, b->items, b->len, b->count) != 0;
}

void dynobs__attr_block_keep(struct dynobs_attr_block *b, const struct dynobs_span *s,
                             struct dynobs_attr_mark k)
{
    size_t n = s->used - k.used;
    b->len = 0;
    if (!s->recording || k.truncated || s->truncated || n > sizeof b->items ||
        s->rec.dropped_attrs != k.dropped)
        return;
    memcpy(b->items, s->body + k.used, n);
    b->count = (uint8_t)(s->attrs - k.attrs);
    b->value_limit = dynobs__config.attr_value_limit;
    b->len = (uint16_t)n;
}

/* The lookup of a memo's series, for its first update or the first in a
 * new segment (a forked child's): registers the series as a by-name
 * update would, applies the value and keeps the slot, the overflow
 * series included, so that a label set sent there keeps going there. */
static __attribute__((noinline)) void resolve(struct dynobs_segment *seg,
                                              const struct dynobs_metric_def *d,
                                              const char *labels, double seconds,
                                              struct dynobs_series_memo *m)
{
    m->slot = NULL;
    /* Read before the lookup, as a metric handle does: a segment made
     * meanwhile has a newer epoch, so this slot is not trusted in it. */
    uint32_t epoch = dynobs__segment_epoch();
    struct dynobs_metric_slot *slot;
    int rc = dynobs__metric_resolve(&seg->metrics, d, labels, &slot);
    if (rc < 0) {
        /* Refused and counted every time, as by name. */
        dynobs__count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
        return;
    }
    dynobs__metric_apply(slot, seconds);
    if (rc == 1)
        __atomic_fetch_add(&seg->metrics.counters[DYNOBS_CTR_METRIC_OVERFLOW], 1,
                           __ATOMIC_RELAXED);
    if (epoch) {
        m->overflow = rc == 1;
        m->epoch = epoch;
        m->slot = slot;
    }
}

void dynobs__duration_memo(struct dynobs_segment *seg, const char *name, const double *bounds,
                           size_t nbounds, double seconds, const char *labels,
                           struct dynobs_series_memo *m)
{
    if (DYNOBS_UNLIKELY(!dynobs__metric_value_ok(DYNOBS_METRIC_HISTOGRAM, seconds))) {
        dynobs__count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
    } else if (DYNOBS_LIKELY(m->slot && m->epoch == dynobs__segment_epoch())) {
        dynobs__metric_observe(m->slot, seconds);
        if (DYNOBS_UNLIKELY(m->overflow))
            __atomic_fetch_add(&seg->metrics.counters[DYNOBS_CTR_METRIC_OVERFLOW], 1,
                               __ATOMIC_RELAXED);
    } else {
        struct dynobs_metric_def d = {.name = name, .unit = "s", .kind = DYNOBS_METRIC_HISTOGRAM,
                                      .bounds = bounds, .nbounds = nbounds};
        resolve(seg, &d, labels, seconds, m);
    }
}

void dynobs__client_http_labels(char *out, size_t cap, const char *method, const char *server,
                                long port, long code, const char *error_type)
{
    struct dynobs_sb b = {out, 0, cap};
    out[0] = '\0';
    dynobs__sb_str(&b, "http.request.method=");
    dynobs__sb_str(&b, method);
    if (server && *server) {
        dynobs__sb_str(&b, ",server.address=");
        dynobs__sb_str(&b, server);
    }
    if (port > 0) {
        dynobs__sb_str(&b, ",server.port=");
        dynobs__sb_int(&b, port);
    }
    if (code > 0) {
        dynobs__sb_str(&b, ",http.response.status_code=");
        dynobs__sb_int(&b, code);
    }
    if (error_type) {
        dynobs__sb_str(&b, ",error.type=");
        dynobs__sb_str(&b, error_type);
    }
}
