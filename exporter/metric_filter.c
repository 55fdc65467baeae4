#include "metric_filter.h"

#include <string.h>

#include "prometheus.h"
#include "segments.h"
#include "store.h"

int dx_metric_filter_drops(const struct dynobs_rules *r, const char *service, const char *name)
{
    if (!r || !r->hdr || !name)
        return 0;
    /* Everything but the name is unknown (NULL): an entry that names a
     * span's field or an attribute fails, as the README says of unknown
     * facts, and cannot drop a series by accident. */
    const struct dynobs_rule_facts facts = {.metric_name = {name, strlen(name)}};
    for (uint32_t i = 0; i < r->nfilters; i++) {
        const struct dynobs_rule_filter *e = &r->filters[i];
        /* A series sums every process of its service, which may run
         * several executables: an entry that names one cannot hold for
         * the series as a whole, so it never matches here (the empty
         * executable below would match a bare "*"). */
        if (e->match != DYNOBS_RULES_NONE && r->matches[e->match].exe)
            continue;
        if (dynobs__rules_match(r, e->match, service, "", &facts))
            return (e->drop & DYNOBS_DROP_METRICS) != 0;
    }
    return 0;
}

void dx_metric_filter_rules(const struct dynobs_rules *r)
{
    dx_segments_lock();
    dx_store_set_rules(r);
    dx_segments_unlock();
}

void dx_metric_filter_prom(struct dx_buf *b)
{
    dx_prom_self_gauge(b, "dynobs_exporter_metric_series_filtered",
                       "Series left out of /metrics and OTLP by the rules' filters (their values "
                       "are still kept)",
                       dx_store_filtered());
}
