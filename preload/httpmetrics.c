#include "httpmetrics.h"

#include <string.h>

#include "client_memo.h"
#include "route.h"
#include "state.h"
#include "strbuf.h"

#include "../common/metrics.h"

void dynobs__http_client_metric(const char *method, const char *server, long port, long code,
                                const char *error_type, double seconds)
{
    struct dynobs_segment *seg = dynobs__segment();
    if (!seg)
        return;
    char labels[DYNOBS_METRIC_KEY_BYTES];
    dynobs__client_http_labels(labels, sizeof labels, method, server, port, code, error_type);
    dynobs__duration_record(seg, "http.client.request.duration", dynobs__http_duration_bounds,
                            DYNOBS_HTTP_DURATION_NBOUNDS, seconds, labels);
}

/* Adds what a process-wide count grew by since it was last reported
 * (*reported, shared by threads: one of them wins each increase). */
static DYNOBS_COLD void report_growth(struct dynobs_segment *seg, const char *name, uint64_t now,
                                      uint64_t *reported)
{
    uint64_t was = __atomic_load_n(reported, __ATOMIC_RELAXED);
    if (now == was ||
        !__atomic_compare_exchange_n(reported, &was, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    struct dynobs_metric_def d = {.name = name, .kind = DYNOBS_METRIC_COUNTER};
    if (dynobs__metric_update(&seg->metrics, &d, (double)(now - was), "") < 0)
        dynobs__count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
}

/* The reports that ride on every served request. */
static DYNOBS_HOT void server_extras(struct dynobs_segment *seg)
{
    /* The route trie's folds (route.h), reported with the requests that
     * make them: one load and compare per request otherwise. */
    static uint64_t folded DYNOBS_HOT_DATA, pool_full DYNOBS_HOT_DATA;
    uint64_t f = dynobs__route_folded(), full = dynobs__route_pool_full();
    if (DYNOBS_LIKELY(f == __atomic_load_n(&folded, __ATOMIC_RELAXED) &&
                      full == __atomic_load_n(&pool_full, __ATOMIC_RELAXED)))
        return; /* (both, as every request finds them: no call) */
    report_growth(seg, "dynobs.http.route.folds", f, &folded);
    report_growth(seg, "dynobs.http.route.pool_exhausted", full, &pool_full);
}

/* (out of line even in a flattened caller: h1server.c's finish calls it only
 * when the labels are not the connection's last ones) */
__attribute__((noinline)) void dynobs__http_server_metric(struct dynobs_segment *seg,
                                                          const char *labels, double seconds)
{
    dynobs__duration_record(seg, "http.server.request.duration", dynobs__http_duration_bounds,
                            DYNOBS_HTTP_DURATION_NBOUNDS, seconds, labels);
    server_extras(seg);
}

/* The lookup of a memo's series, for its first update or the first in a
 * new segment (a forked child's): registers the series as a by-name
 * update would, applies the value and keeps the slot, the overflow
 * series included, so that a label set sent there keeps going there. */
static __attribute__((noinline)) void server_resolve(struct dynobs_segment *seg,
                                                     const char *labels, double seconds,
                                                     struct dynobs_series_memo *m)
{
    m->slot = NULL;
    /* Read before the lookup, as a metric handle does: a segment made
     * meanwhile has a newer epoch, so this slot is not trusted in it. */
    uint32_t epoch = dynobs__segment_epoch();
    struct dynobs_metric_def d = {.name = "http.server.request.duration",
                                  .unit = "s",
                                  .kind = DYNOBS_METRIC_HISTOGRAM,
                                  .bounds = dynobs__http_duration_bounds,
                                  .nbounds = DYNOBS_HTTP_DURATION_NBOUNDS};
    struct dynobs_metric_slot *slot;
    int rc = dynobs__metric_resolve(&seg->metrics, &d, labels, &slot);
    if (rc < 0) {
        /* A full table or bad labels: refused and counted every time, as
         * by name, and looked up again next time (the table may have
         * room by then only in a new segment, which the epoch covers). */
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

DYNOBS_HOT void dynobs__http_server_metric_memo(struct dynobs_segment *seg, const char *labels,
                                                double seconds, struct dynobs_series_memo *m)
{
    if (DYNOBS_UNLIKELY(!dynobs__metric_value_ok(DYNOBS_METRIC_HISTOGRAM, seconds))) {
        dynobs__count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
    } else if (DYNOBS_LIKELY(m->slot && m->epoch == dynobs__segment_epoch())) {
        dynobs__metric_observe(m->slot, seconds);
        if (DYNOBS_UNLIKELY(m->overflow))
            __atomic_fetch_add(&seg->metrics.counters[DYNOBS_CTR_METRIC_OVERFLOW], 1,
                               __ATOMIC_RELAXED);
    } else {
        server_resolve(seg, labels, seconds, m);
    }
    server_extras(seg);
}

const char *dynobs__http_server_outcome(struct dynobs_span *s, int code, const char *error_type,
                                        char *codestr)
{
    if (code >= 500 && !error_type) {
        dynobs__status_text(code, codestr);
        error_type = codestr;
    }
    int64_t status = code;
    if (code > 0)
        dynobs__span_add(s, "http.response.status_code", 25, DYNOBS_ATTR_INT, &status, 8);
    if (error_type) {
        size_t n = strlen(error_type);
        if (n)
            dynobs__span_add(s, "error.type", 10, DYNOBS_ATTR_STRING, error_type, n);
        dynobs__span_status(s, DYNOBS_STATUS_ERROR, NULL);
    }
    return error_type;
}

void dynobs__status_text(int code, char *out)
{
    out[0] = (char)('0' + code / 100 % 10);
    out[1] = (char)('0' + code / 10 % 10);
    out[2] = (char)('0' + code % 10);
    out[3] = '\0';
}

