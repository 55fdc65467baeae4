/*
 * dynobs public C API.
 *
 * This is the only installed header. Every function here is safe to call
 * from any thread, never blocks, never allocates with malloc on its hot
 * path, and never crashes on NULL or malformed arguments: it returns one
 * of the negative DYNOBS_E* codes below instead.
 *
 * Two libraries export this API:
 *   libdynobs.so       the real implementation (also the LD_PRELOAD shim);
 *   libdynobs-noop.so  the same symbols, each a cheap no-op that returns
 *                      DYNOBS_EDISABLED (or NULL for dynobs_span_start).
 *
 * A program that links libdynobs-noop.so runs without dynobs, and gets the
 * real implementation whenever it is started with LD_PRELOAD=libdynobs.so,
 * because the dynamic linker resolves symbols in preloaded objects first.
 * A program that links libdynobs.so directly always has it.
 */
#ifndef DYNOBS_DYNOBS_H
#define DYNOBS_DYNOBS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DYNOBS_API __attribute__((visibility("default")))
#else
#define DYNOBS_API
#endif

/* DYNOBS_VERSION_STRING and its parts, generated from the build's
 * project(VERSION ...); dynobs_version() returns the library's own. */
#include <dynobs/version.h>

/* Error codes: every fallible call returns 0 (or a length) on success and
 * one of these on failure. They are negative errno values. */
#define DYNOBS_EINVAL (-22)    /* NULL or malformed argument */
#define DYNOBS_ENOSPC (-28)    /* a bounded table, buffer or ring is full */
#define DYNOBS_ENOENT (-2)     /* no current context / nothing to return */
#define DYNOBS_ERANGE (-34)    /* caller's buffer is too small */
#define DYNOBS_ENOMEM (-12)    /* the shared-memory segment could not be made */
#define DYNOBS_EDISABLED (-1000) /* dynobs is off (OTEL_SDK_DISABLED or noop) */
#define DYNOBS_ETRUNC (-1001)  /* recorded, but truncated to fit the limits */

/* Span kinds: the same numbers as OTLP's Span.SpanKind. */
#define DYNOBS_SPAN_KIND_INTERNAL 1
#define DYNOBS_SPAN_KIND_SERVER 2
#define DYNOBS_SPAN_KIND_CLIENT 3
#define DYNOBS_SPAN_KIND_PRODUCER 4
#define DYNOBS_SPAN_KIND_CONSUMER 5

/* Span status codes: the same numbers as OTLP's Status.StatusCode. */
#define DYNOBS_STATUS_UNSET 0
#define DYNOBS_STATUS_OK 1
#define DYNOBS_STATUS_ERROR 2

/* Attribute value types, for dynobs_attr. */
#define DYNOBS_ATTR_STRING 1
#define DYNOBS_ATTR_BOOL 2
#define DYNOBS_ATTR_INT 3
#define DYNOBS_ATTR_DOUBLE 4

/* Metric kinds, for dynobs_metric_desc. */
#define DYNOBS_METRIC_COUNTER 1   /* monotonic sum; negative adds refused */
#define DYNOBS_METRIC_UPDOWN 2    /* non-monotonic sum */
#define DYNOBS_METRIC_GAUGE 3     /* last value */
#define DYNOBS_METRIC_HISTOGRAM 4 /* explicit buckets, sum, count, min, max */

/* Most explicit bucket bounds one histogram can have. */
#define DYNOBS_HISTOGRAM_MAX_BOUNDS 15

/* Length of a formatted traceparent, without the terminating NUL. */
#define DYNOBS_TRACEPARENT_LEN 55

typedef struct dynobs_span dynobs_span;

typedef struct dynobs_attr {
    const char *key;
    int type; /* DYNOBS_ATTR_* */
    union {
        const char *s;
        int64_t i;
        double d;
        int b;
    } v;
} dynobs_attr;

typedef struct dynobs_metric_desc {
    const char *name;      /* required, e.g. "http.client.request.duration" */
    const char *unit;      /* UCUM unit such as "s" or "By"; NULL for none */
    int kind;              /* DYNOBS_METRIC_* */
    const double *bounds;  /* histograms: ascending bounds; NULL for defaults */
    size_t nbounds;        /* at most DYNOBS_HISTOGRAM_MAX_BOUNDS */
} dynobs_metric_desc;

/* 1 when spans and metrics are being recorded in this process, else 0. */
DYNOBS_API int dynobs_enabled(void);
/* A static English description of a DYNOBS_E* code. */
DYNOBS_API const char *dynobs_strerror(int err);
DYNOBS_API const char *dynobs_version(void);

/* Spans. A started span becomes the calling thread's current span; when it
 * ends, the context that was current before it becomes current again.
 * Returns NULL when dynobs is disabled, the name is NULL, or this thread
 * already has the maximum number of open spans (the refusal is counted);
 * every other span function accepts NULL and then does nothing.
 * A handle must not be used after dynobs_span_end. */
DYNOBS_API dynobs_span *dynobs_span_start(const char *name, int kind);
/* The general form. parent_traceparent NULL: the thread's current context
 * is the parent (as dynobs_span_start); otherwise that W3C traceparent is
 * (with parent_tracestate, which may be NULL), and an invalid one is
 * refused (NULL). Flags: DYNOBS_SPAN_ROOT starts a new trace whatever is
 * current; DYNOBS_SPAN_NO_CONTEXT leaves the thread's current context
 * alone (for callers that track context themselves, such as coroutines);
 * DYNOBS_SPAN_LOCAL_PARENT says parent_traceparent is a span of this
 * process (else it is taken as remote). */
#define DYNOBS_SPAN_ROOT 0x1
#define DYNOBS_SPAN_NO_CONTEXT 0x2
#define DYNOBS_SPAN_LOCAL_PARENT 0x4
DYNOBS_API dynobs_span *dynobs_span_start_ex(const char *name, int kind,
                                             const char *parent_traceparent,
                                             const char *parent_tracestate, int flags);
/* Attributes: setting an existing key replaces its value. Strings longer
 * than OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT are cut (DYNOBS_ETRUNC); beyond
 * OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT attributes, new keys are dropped and
 * counted (DYNOBS_ENOSPC). */
DYNOBS_API int dynobs_span_set_str(dynobs_span *span, const char *key, const char *value);
DYNOBS_API int dynobs_span_set_int(dynobs_span *span, const char *key, int64_t value);
DYNOBS_API int dynobs_span_set_double(dynobs_span *span, const char *key, double value);
DYNOBS_API int dynobs_span_set_bool(dynobs_span *span, const char *key, int value);
DYNOBS_API int dynobs_span_add_event(dynobs_span *span, const char *name);
DYNOBS_API int dynobs_span_add_event_attrs(dynobs_span *span, const char *name,
                                           const dynobs_attr *attrs, size_t nattrs);
/* code is DYNOBS_STATUS_*; message is kept only with DYNOBS_STATUS_ERROR.
 * As the OpenTelemetry API says, OK is final: later calls cannot change it. */
DYNOBS_API int dynobs_span_set_status(dynobs_span *span, int code, const char *message);
/* Finishes the span and hands it to the exporter (when sampled). */
DYNOBS_API int dynobs_span_end(dynobs_span *span);
/* The span's own traceparent, for propagating it by hand. buf needs
 * DYNOBS_TRACEPARENT_LEN + 1 bytes; returns the length written. */
DYNOBS_API int dynobs_span_traceparent(const dynobs_span *span, char *buf, size_t len);

/* Context propagation across boundaries dynobs cannot see. */
/* Writes the current context as a traceparent; DYNOBS_ENOENT when none. */
DYNOBS_API int dynobs_current_traceparent(char *buf, size_t len);
/* Writes the current tracestate (possibly empty, at most 512 characters:
 * a buffer of 513 bytes always fits); returns its length. */
DYNOBS_API int dynobs_current_tracestate(char *buf, size_t len);
/* Makes a remote context current (the parent of spans started next).
 * An invalid traceparent is refused with DYNOBS_EINVAL; an invalid
 * tracestate is dropped as the W3C specification says. Pair every
 * successful attach with one dynobs_context_detach on the same thread. */
DYNOBS_API int dynobs_context_attach(const char *traceparent, const char *tracestate);
DYNOBS_API void dynobs_context_detach(void);

/* W3C Baggage of the current context: what the request being served
 * carried in, and what dynobs_baggage_set added; sent on with the HTTP
 * calls made in that context. */
/* The value of key (NUL-terminated in buf); its length, DYNOBS_ENOENT
 * when the current context has no such entry, DYNOBS_ERANGE when buf is
 * too small. */
DYNOBS_API int dynobs_baggage_get(const char *key, char *buf, size_t len);
/* Makes current a context that carries the current one's baggage with key
 * set to value (value NULL: key removed), in the current trace. key is a
 * token, value printable ASCII without space, '"', ',', ';' or '\'
 * (percent-encode the rest), else DYNOBS_EINVAL; DYNOBS_ENOENT when there
 * is no current context; DYNOBS_ENOSPC past 4 nested sets per thread or
 * 8192 bytes. Pair every success with one dynobs_context_detach. */
DYNOBS_API int dynobs_baggage_set(const char *key, const char *value);

/* For runtimes that carry a request's context across their own callbacks
 * (event loops: Node.js, asyncio), where the shim alone cannot tell which
 * request an outbound call belongs to. */
/* The traceparent of the HTTP request this process is serving on socket
 * fd (read, its response not complete), written to buf (needs
 * DYNOBS_TRACEPARENT_LEN + 1 bytes); returns its length, DYNOBS_ENOENT
 * when no request is being served there. */
DYNOBS_API int dynobs_server_traceparent(int fd, char *buf, size_t len);
/* The parent of the next HTTP request written on socket fd: the CLIENT
 * span of that request continues traceparent (and the traceparent sent
 * with it is that span's). Returns 0, DYNOBS_EINVAL for an invalid
 * traceparent, DYNOBS_ENOENT when fd carries something else. */
DYNOBS_API int dynobs_client_parent(int fd, const char *traceparent);
/* The traceparent of the HTTP/2 or gRPC request this process is serving
 * (read, its response not ended) that arrived with traceparent `caller`,
 * written to buf (DYNOBS_TRACEPARENT_LEN + 1 bytes): for runtimes that
 * run a request's handler on another thread than the one that read it
 * (grpcio's thread pool), which attach it for the handler's duration
 * (dynobs_context_attach). Returns its length, DYNOBS_EINVAL for an
 * invalid caller, DYNOBS_ENOENT when no such request is being served. */
DYNOBS_API int dynobs_served_traceparent(const char *caller, char *buf, size_t len);

/* Metrics. labels is "key=value,key=value" (NULL or "" for none); a value
 * cannot contain ',' . Series are told apart by name and label string. */
DYNOBS_API int dynobs_counter_add(const char *name, double value, const char *labels);
DYNOBS_API int dynobs_updown_add(const char *name, double value, const char *labels);
DYNOBS_API int dynobs_gauge_set(const char *name, double value, const char *labels);
/* Uses the OpenTelemetry SDK's default bucket bounds. */
DYNOBS_API int dynobs_histogram_record(const char *name, double value, const char *labels);
/* The general form: unit and bucket bounds are fixed by the first update
 * of each series. */
DYNOBS_API int dynobs_metric_record(const dynobs_metric_desc *desc, double value,
                                    const char *labels);

/* Metric handles: the series of a name and label string found once, so
 * that each update is only the atomic update of its value (the by-name
 * calls above also remember the series of their last string pointers per
 * thread, but still compare both strings on every call). get returns a
 * handle for the life of the process: the same name, labels and kind give
 * the same handle, at most DYNOBS_METRIC_HANDLES of them (then NULL). It
 * returns NULL for a NULL, malformed or too long name or label string,
 * and a handle whose every update returns DYNOBS_EDISABLED when dynobs is
 * off. The series is registered at the handle's first update, as by name,
 * under the same cardinality cap: a handle whose labels came past the cap
 * updates the metric's overflow series. A forked child's updates go to
 * the child's own series. Updates return 0, DYNOBS_EINVAL for a NULL
 * handle, a handle of another kind, a value the instrument refuses (as by
 * name) or a name registered with another kind, DYNOBS_ENOSPC when the
 * metric table is full. */
#define DYNOBS_METRIC_HANDLES 4096
typedef struct dynobs_metric dynobs_metric;
DYNOBS_API dynobs_metric *dynobs_counter_get(const char *name, const char *labels);
DYNOBS_API dynobs_metric *dynobs_updown_get(const char *name, const char *labels);
DYNOBS_API dynobs_metric *dynobs_gauge_get(const char *name, const char *labels);
DYNOBS_API dynobs_metric *dynobs_histogram_get(const char *name, const char *labels);
/* The general form: unit and bounds as dynobs_metric_record (copied). */
DYNOBS_API dynobs_metric *dynobs_metric_get(const dynobs_metric_desc *desc, const char *labels);
DYNOBS_API int dynobs_counter_add_h(dynobs_metric *h, double value);
DYNOBS_API int dynobs_updown_add_h(dynobs_metric *h, double value);
DYNOBS_API int dynobs_gauge_set_h(dynobs_metric *h, double value);
DYNOBS_API int dynobs_histogram_record_h(dynobs_metric *h, double value);
/* Any kind of handle (what the handle's kind does with a value). */
DYNOBS_API int dynobs_metric_record_h(dynobs_metric *h, double value);

/* Declared metrics: what a component says about each metric it keeps,
 * once, so that the exporter prints the description in # HELP and in the
 * OTLP metric, and every update agrees on unit and bounds (a series of a
 * declared name registered by the by-name calls takes them too).
 * dynobs_metrics_declare declares decls[0..n) (a component's "metrics
 * struct") and, when handles is not NULL, sets handles[i] to the handle of
 * decls[i]'s series (its labels, NULL for none), as dynobs_metric_get
 * would (NULL when decls[i] is malformed or conflicts; a declaration
 * refused for want of room still gets its handle, the metric works
 * without its description). It returns 0 when all are declared; else the
 * first refusal: DYNOBS_EEXIST for a name declared
 * before with another kind, unit, description or bounds (the first
 * declaration stands; counted in the segment's declare_conflicts),
 * DYNOBS_EINVAL for a malformed one (a name over 127 bytes, a unit over
 * 15, a description over 255 or with control characters), DYNOBS_ENOSPC
 * when the segment's 128 declarations are used up (counted). Declaring
 * makes the process's segment, as a first update does (so
 * dynobs_set_service_name comes first). Declaring again alike is 0. */
#define DYNOBS_EEXIST (-17)
typedef struct dynobs_metric_decl {
    const char *name;        /* required */
    const char *description; /* NULL or "" for none */
    const char *unit;        /* NULL for none */
    int kind;                /* DYNOBS_METRIC_* */
    const double *bounds;    /* histograms: NULL for the defaults */
    size_t nbounds;
    const char *labels;      /* the series handles[i] updates; NULL for none */
} dynobs_metric_decl;
DYNOBS_API int dynobs_metrics_declare(const dynobs_metric_decl *decls, size_t n,
                                      dynobs_metric **handles);

/* Composite statistics of a gauge or histogram series of this process,
 * read from its own segment (no round trip): count, sum, avg, min and
 * max of the values recorded in the last window_ms (the segment keeps
 * slices of 1 s: windows up to 15000 ms, each covering from window_ms to
 * window_ms + 1 s, what it covered in window_ms), or since the series
 * started (window_ms DYNOBS_STATS_SINCE_START). Min and max are exact.
 * value is the series' current value (a gauge's last, a histogram's sum),
 * also for counters and updown counters, which have no windows (their
 * count is 0 and avg/min/max NaN). Returns 0, DYNOBS_ENOENT when the
 * series does not exist (yet), DYNOBS_EINVAL for a window longer than
 * kept or a NULL argument, DYNOBS_EDISABLED. */
#define DYNOBS_STATS_SINCE_START 0u
#define DYNOBS_STATS_WINDOW_DEFAULT_MS 10000u
struct dynobs_metric_stats {
    uint64_t count;
    double sum, avg, min, max; /* avg/min/max NaN when count is 0 */
    uint64_t window_ms;        /* the time covered; 0: since start */
    double value;
    int kind;                  /* DYNOBS_METRIC_* */
};
DYNOBS_API int dynobs_metric_stats(const char *name, const char *labels, uint32_t window_ms,
                                   struct dynobs_metric_stats *out);

/* Callbacks on a series' value, from a thread dynobs owns (started at the
 * first watch, polling every 2 ms while any watch exists, gone when none
 * is left for a while). The value watched is a gauge's value, a counter's
 * or updown counter's total, a histogram's average over the last second.
 *   ABOVE:  fires when the value goes from <= threshold to > threshold;
 *   BELOW:  fires when the value goes from >= threshold to < threshold;
 *   CHANGE: fires when the value differs from the one last reported by
 *           more than threshold (0: any change).
 * Once per crossing; the value when the watch is made is the starting
 * point (a watch of a value already above fires at the next crossing, not
 * at once), and a series that does not exist yet is watched from its
 * first value the watch thread sees. A
 * crossing and its return within one poll can be missed. The callback
 * runs on the watch thread, one at a time: a slow one delays the others.
 * dynobs_metric_watch returns an id (> 0) or DYNOBS_EINVAL, DYNOBS_ENOSPC
 * (DYNOBS_WATCH_MAX watches), DYNOBS_EDISABLED, DYNOBS_ENOMEM (no thread, or
 * no memory for the watch table, which is mapped at the first watch).
 * dynobs_metric_unwatch(id) returns 0 or DYNOBS_ENOENT; from any thread
 * but the watch thread it returns once a callback of that watch running
 * meanwhile has returned; from a callback (any watch's) it returns at
 * once, and the watch fires no more. */
#define DYNOBS_WATCH_ABOVE 1
#define DYNOBS_WATCH_BELOW 2
#define DYNOBS_WATCH_CHANGE 3
#define DYNOBS_WATCH_MAX 256
typedef struct dynobs_watch_event {
    int id;
    int condition;      /* DYNOBS_WATCH_* */
    const char *name;
    const char *labels; /* "" for none */
    double threshold;
    double value;       /* the value that crossed */
    double previous;    /* the value before it */
    uint64_t time_ns;   /* CLOCK_MONOTONIC when it was seen */
} dynobs_watch_event;
typedef void (*dynobs_watch_fn)(const dynobs_watch_event *event, void *user_data);
DYNOBS_API int dynobs_metric_watch(const char *name, const char *labels, int condition,
                                   double threshold, dynobs_watch_fn callback, void *user_data);
DYNOBS_API int dynobs_metric_unwatch(int id);

/* Logs. severity is an OpenTelemetry SeverityNumber (1-24); the constants
 * below are the first of each range. The record carries the trace and
 * span ids of the calling thread's current span, if any. The message is
 * cut at 4 KiB (DYNOBS_ETRUNC). */
#define DYNOBS_SEVERITY_TRACE 1
#define DYNOBS_SEVERITY_DEBUG 5
#define DYNOBS_SEVERITY_INFO 9
#define DYNOBS_SEVERITY_WARN 13
#define DYNOBS_SEVERITY_ERROR 17
#define DYNOBS_SEVERITY_FATAL 21

DYNOBS_API int dynobs_log(int severity, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The general form: severity 0-24 (0: unspecified), severity_text NULL for
 * the name of the severity's range, the body as given (cut at 4 KiB),
 * attributes (beyond OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT, 128 by
 * default, they are dropped and counted in the record), and the span the
 * record belongs to: traceparent NULL for the thread's current context,
 * else that span's traceparent (an invalid one: DYNOBS_EINVAL). */
DYNOBS_API int dynobs_log_record(int severity, const char *severity_text, const char *body,
                                 const dynobs_attr *attrs, size_t nattrs,
                                 const char *traceparent);

/* Sets service.name for this process. Only possible before its first
 * span, metric or log (the name is part of the segment made then):
 * DYNOBS_EBUSY afterwards; DYNOBS_ENOMEM when the memory that holds it
 * (mapped at the first call) cannot be had. */
#define DYNOBS_EBUSY (-16)
DYNOBS_API int dynobs_set_service_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* DYNOBS_DYNOBS_H */
