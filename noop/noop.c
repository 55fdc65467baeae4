/*
 * libdynobs-noop.so: the public API with nothing behind it. Programs link
 * this to call the API unconditionally; started with
 * LD_PRELOAD=libdynobs.so they get the real implementation instead,
 * because preloaded objects come first in symbol resolution.
 */
#include "dynobs/dynobs.h"

DYNOBS_API int dynobs_enabled(void) { return 0; }
DYNOBS_API const char *dynobs_version(void) { return DYNOBS_VERSION_STRING; }
DYNOBS_API dynobs_span *dynobs_span_start(const char *name, int kind)
{
    (void)name, (void)kind;
    return 0;
}
DYNOBS_API int dynobs_span_set_str(dynobs_span *s, const char *k, const char *v)
{
    (void)s, (void)k, (void)v;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_span_set_int(dynobs_span *s, const char *k, int64_t v)
{
    (void)s, (void)k, (void)v;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_span_set_double(dynobs_span *s, const char *k, double v)
{
    (void)s, (void)k, (void)v;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_span_set_bool(dynobs_span *s, const char *k, int v)
{
    (void)s, (void)k, (void)v;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_span_add_event(dynobs_span *s, const char *n)
{
    (void)s, (void)n;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_span_add_event_attrs(dynobs_span *s, const char *n, const dynobs_attr *a,
                                           size_t na)
{
    (void)s, (void)n, (void)a, (void)na;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_span_set_status(dynobs_span *s, int c, const char *m)
{
    (void)s, (void)c, (void)m;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_span_end(dynobs_span *s)
{
    (void)s;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_span_traceparent(const dynobs_span *s, char *b, size_t l)
{
    (void)s, (void)b, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_current_traceparent(char *b, size_t l)
{
    (void)b, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_current_tracestate(char *b, size_t l)
{
    (void)b, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_baggage_get(const char *k, char *b, size_t l)
{
    (void)k, (void)b, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_baggage_set(const char *k, const char *v)
{
    (void)k, (void)v;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_server_traceparent(int fd, char *b, size_t l)
{
    (void)fd, (void)b, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_client_parent(int fd, const char *tp)
{
    (void)fd, (void)tp;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_served_traceparent(const char *caller, char *b, size_t l)
{
    (void)caller, (void)b, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_context_attach(const char *tp, const char *ts)
{
    (void)tp, (void)ts;
    return DYNOBS_EDISABLED;
}
DYNOBS_API void dynobs_context_detach(void) {}
DYNOBS_API int dynobs_counter_add(const char *n, double v, const char *l)
{
    (void)n, (void)v, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_updown_add(const char *n, double v, const char *l)
{
    (void)n, (void)v, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_gauge_set(const char *n, double v, const char *l)
{
    (void)n, (void)v, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_histogram_record(const char *n, double v, const char *l)
{
    (void)n, (void)v, (void)l;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_metric_record(const dynobs_metric_desc *d, double v, const char *l)
{
    (void)d, (void)v, (void)l;
    return DYNOBS_EDISABLED;
}
/* Handles: one dummy, whose every update reports dynobs off. */
static struct dynobs_metric *dummy(const void *name)
{
    static char d;
    return name ? (struct dynobs_metric *)(void *)&d : 0;
}
DYNOBS_API dynobs_metric *dynobs_counter_get(const char *n, const char *l)
{
    (void)l;
    return dummy(n);
}
DYNOBS_API dynobs_metric *dynobs_updown_get(const char *n, const char *l)
{
    (void)l;
    return dummy(n);
}
DYNOBS_API dynobs_metric *dynobs_gauge_get(const char *n, const char *l)
{
    (void)l;
    return dummy(n);
}
DYNOBS_API dynobs_metric *dynobs_histogram_get(const char *n, const char *l)
{
    (void)l;
    return dummy(n);
}
DYNOBS_API dynobs_metric *dynobs_metric_get(const dynobs_metric_desc *d, const char *l)
{
    (void)l;
    return dummy(d);
}
DYNOBS_API int dynobs_counter_add_h(dynobs_metric *h, double v)
{
    (void)h, (void)v;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_updown_add_h(dynobs_metric *h, double v)
{
    (void)h, (void)v;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_gauge_set_h(dynobs_metric *h, double v)
{
    (void)h, (void)v;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_histogram_record_h(dynobs_metric *h, double v)
{
    (void)h, (void)v;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_metric_record_h(dynobs_metric *h, double v)
{
    (void)h, (void)v;
    return DYNOBS_EDISABLED;
}
/* Declared metrics get the dummy handle; nothing is kept to read back or
 * watch. */
DYNOBS_API int dynobs_metrics_declare(const dynobs_metric_decl *decls, size_t n,
                                      dynobs_metric **handles)
{
    for (size_t i = 0; handles && decls && i < n; i++)
        handles[i] = dummy(decls[i].name);
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_metric_stats(const char *name, const char *labels, uint32_t window_ms,
                                   struct dynobs_metric_stats *out)
{
    (void)name, (void)labels, (void)window_ms, (void)out;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_metric_watch(const char *name, const char *labels, int condition,
                                   double threshold, dynobs_watch_fn callback, void *user_data)
{
    (void)name, (void)labels, (void)condition, (void)threshold, (void)callback, (void)user_data;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_metric_unwatch(int id)
{
    (void)id;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_log(int severity, const char *fmt, ...)
{
    (void)severity, (void)fmt;
    return DYNOBS_EDISABLED;
}
DYNOBS_API dynobs_span *dynobs_span_start_ex(const char *name, int kind, const char *tp,
                                             const char *ts, int flags)
{
    (void)name, (void)kind, (void)tp, (void)ts, (void)flags;
    return 0;
}
DYNOBS_API int dynobs_log_record(int severity, const char *st, const char *body,
                                 const dynobs_attr *attrs, size_t nattrs, const char *tp)
{
    (void)severity, (void)st, (void)body, (void)attrs, (void)nattrs, (void)tp;
    return DYNOBS_EDISABLED;
}
DYNOBS_API int dynobs_set_service_name(const char *name)
{
    (void)name;
    return DYNOBS_EDISABLED;
}
