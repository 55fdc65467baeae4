/*
 * The live view, served where /metrics is (same host and port): /ui/ (the
 * page), /ui/app.js and /ui/style.css (embedded in the executable at build
 * time: nothing to install, nothing fetched from elsewhere) and
 * /ui/api/traces, the most recent and the slowest traces of ui_store.c as
 * JSON, with every span's attributes and events and the logs written in
 * the trace. The page computes the services' rates, errors and latency
 * percentiles itself from /metrics' duration histograms.
 */
#include "ui_api.h"

#include <stdio.h>
#include <string.h>

#include "http_server.h"
#include "record.h"
#include "tracecontext.h"
#include "ui_store.h"

extern const unsigned char dx_ui_index_html[], dx_ui_app_js[], dx_ui_style_css[];
extern const unsigned long dx_ui_index_html_len, dx_ui_app_js_len, dx_ui_style_css_len;

#define TRACES_BODY_MAX (16u << 20)
#define RECENT 40

static void asset(struct dx_httpd_response *r, const char *type, const unsigned char *p,
                  unsigned long n)
{
    r->content_type = type;
    dx_buf_put(&r->body, p, n);
}

static void page(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    asset(r, "text/html; charset=utf-8", dx_ui_index_html, dx_ui_index_html_len);
}

static void script(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    asset(r, "text/javascript; charset=utf-8", dx_ui_app_js, dx_ui_app_js_len);
}

static void style(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    asset(r, "text/css; charset=utf-8", dx_ui_style_css, dx_ui_style_css_len);
}

/* A JSON string of n bytes (control characters escaped; invalid UTF-8 is
 * passed as it is, and the browser shows a replacement character). */
static void jstr(struct dx_buf *b, const char *s, size_t n)
{
    dx_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            dx_buf_put(b, e, 2);
        } else if (c < 0x20) {
            dx_buf_printf(b, "\\u%04x", c);
        } else {
            dx_buf_put(b, &s[i], 1);
        }
    }
    dx_buf_put(b, "\"", 1);
}

static void jval(struct dx_buf *b, const struct dynobs_item *it)
{
    switch (it->type) {
    case DYNOBS_ATTR_STRING:
        jstr(b, it->str, it->str_len);
        break;
    case DYNOBS_ATTR_INT:
        dx_buf_printf(b, "%lld", (long long)it->i);
        break;
    case DYNOBS_ATTR_DOUBLE:
        if (it->d == it->d && it->d - it->d == 0)
            dx_buf_printf(b, "%.17g", it->d);
        else
            dx_buf_str(b, "null");
        break;
    case DYNOBS_ATTR_BOOL:
        dx_buf_str(b, it->b ? "true" : "false");
        break;
    default:
        dx_buf_str(b, "null");
    }
}

/* "key":value of an attribute item, after a comma unless it is the first. */
static void member(struct dx_buf *b, const struct dynobs_item *it, int *first)
{
    if (!*first)
        dx_buf_put(b, ",", 1);
    *first = 0;
    jstr(b, it->key, it->key_len);
    dx_buf_put(b, ":", 1);
    jval(b, it);
}

static void hex(struct dx_buf *b, const uint8_t *id, size_t n)
{
    char h[33];
    dynobs__hex_encode(id, n, h);
    h[2 * n] = '\0';
    dx_buf_printf(b, "\"%s\"", h);
}

static const char *const kinds[] = {"unspecified", "internal", "server", "client", "producer",
                                    "consumer"};
static const char *const statuses[] = {"unset", "ok", "error"};

static void span_json(struct dx_buf *b, const uint8_t *rec, uint32_t len, const char *svc,
                      uint64_t t0)
{
    struct dynobs_span_view v;
    if (dynobs__span_decode(rec, len, &v) < 0) {
        dx_buf_str(b, "null");
        return;
    }
    dx_buf_str(b, "{\"span_id\":");
    hex(b, v.f.span_id, 8);
    dx_buf_str(b, ",\"parent_id\":");
    if (v.f.span_flags & DYNOBS_SPANF_HAS_PARENT)
        hex(b, v.f.parent_span_id, 8);
    else
        dx_buf_str(b, "null");
    dx_buf_str(b, ",\"name\":");
    jstr(b, v.name, v.f.name_len);
    dx_buf_str(b, ",\"service\":");
    jstr(b, svc, strlen(svc));
    dx_buf_printf(b, ",\"kind\":\"%s\",\"status\":\"%s\",\"start_ms\":%.3f,\"duration_ms\":%.3f",
                  kinds[v.f.kind < 6 ? v.f.kind : 0], statuses[v.f.status < 3 ? v.f.status : 0],
                  (double)(v.f.start_ns - t0) / 1e6,
                  v.f.end_ns > v.f.start_ns ? (double)(v.f.end_ns - v.f.start_ns) / 1e6 : 0.0);
    if (v.f.status_msg_len) {
        dx_buf_str(b, ",\"status_message\":");
        jstr(b, v.status_msg, v.f.status_msg_len);
    }
    dx_buf_str(b, ",\"attributes\":{");
    size_t off = 0;
    struct dynobs_item it;
    int first = 1;
    while (dynobs__item_next(v.items, v.items_len, &off, &it) == 1)
        if (it.tag == DYNOBS_ITEM_SPAN_ATTR)
            member(b, &it, &first);
    dx_buf_str(b, "},\"events\":[");
    off = 0;
    int nev = 0, in_event = 0;
    while (dynobs__item_next(v.items, v.items_len, &off, &it) == 1) {
        if (it.tag == DYNOBS_ITEM_EVENT) {
            dx_buf_str(b, in_event ? "}}," : (nev ? "," : ""));
            dx_buf_str(b, "{\"name\":");
            jstr(b, it.str, it.str_len);
            dx_buf_printf(b, ",\"time_ms\":%.3f,\"attributes\":{",
                          it.time_ns > t0 ? (double)(it.time_ns - t0) / 1e6 : 0.0);
            in_event = 1;
            first = 1;
            nev++;
        } else if (it.tag == DYNOBS_ITEM_EVENT_ATTR && in_event) {
            member(b, &it, &first);
        }
    }
    dx_buf_str(b, in_event ? "}}]}" : "]}");
}

static void log_json(struct dx_buf *b, const uint8_t *rec, uint32_t len, const char *svc,
                     uint64_t t0)
{
    struct dynobs_log_view v;
    if (dynobs__log_decode(rec, len, &v) < 0) {
        dx_buf_str(b, "null");
        return;
    }
    dx_buf_str(b, "{\"span_id\":");
    hex(b, v.f.span_id, 8);
    dx_buf_printf(b, ",\"time_ms\":%.3f,\"severity\":",
                  v.f.time_ns > t0 ? (double)(v.f.time_ns - t0) / 1e6 : 0.0);
    jstr(b, v.severity_text, v.f.severity_text_len);
    dx_buf_str(b, ",\"service\":");
    jstr(b, svc, strlen(svc));
    dx_buf_str(b, ",\"body\":");
    jstr(b, v.body, v.f.body_len);
    dx_buf_str(b, "}");
}

struct out {
    struct dx_buf *b;
    int n;
};

static void trace_json(void *u, const struct dx_ui_trace *t)
{
    struct out *o = u;
    struct dx_buf *b = o->b;
    if (o->n++)
        dx_buf_put(b, ",", 1);
    dx_buf_str(b, "{\"trace_id\":");
    hex(b, t->id, 16);
    dx_buf_printf(b, ",\"start_unix_ms\":%.3f,\"duration_ms\":%.3f,\"dropped_spans\":%d,\"spans\":[",
                  (double)t->start_ns / 1e6,
                  t->end_ns > t->start_ns ? (double)(t->end_ns - t->start_ns) / 1e6 : 0.0,
                  t->dropped);
    for (int i = 0; i < t->nspans; i++) {
        if (i)
            dx_buf_put(b, ",", 1);
        span_json(b, t->spans[i], t->span_len[i], t->span_service[i], t->start_ns);
    }
    dx_buf_str(b, "],\"logs\":[");
    for (int i = 0; i < t->nlogs; i++) {
        if (i)
            dx_buf_put(b, ",", 1);
        log_json(b, t->logs[i], t->log_len[i], t->log_service[i], t->start_ns);
    }
    dx_buf_str(b, "]}");
}

static void traces(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    r->content_type = "application/json";
    struct out o = {&r->body, 0};
    dx_buf_str(&r->body, "{\"recent\":[");
    dx_ui_each(0, RECENT, trace_json, &o);
    dx_buf_str(&r->body, "],\"slowest\":[");
    o.n = 0;
    dx_ui_each(1, 16, trace_json, &o);
    dx_buf_printf(&r->body, "],\"traces_not_kept\":%llu}\n",
                  (unsigned long long)dx_ui_dropped_traces());
}

int dx_ui_register(void)
{
    if (dx_httpd_route("/ui/", page, NULL, 1u << 20) < 0 ||
        dx_httpd_route("/ui", page, NULL, 1u << 20) < 0 ||
        dx_httpd_route("/ui/app.js", script, NULL, 1u << 20) < 0 ||
        dx_httpd_route("/ui/style.css", style, NULL, 1u << 20) < 0 ||
        dx_httpd_route("/ui/api/traces", traces, NULL, TRACES_BODY_MAX) < 0)
        return -1;
    return 0;
}
