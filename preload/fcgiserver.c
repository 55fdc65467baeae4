/*
 * FastCGI requests this process answers (see fcgiserver.h).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "httpmetrics.h"
#include "policy.h"
#include "redact.h"

#include "../common/metrics.h"

/* Each attribute is set once: no replacement scan. */
#define ADD(s, key, type, v, n) dynobs__span_add(s, key, sizeof key - 1, type, v, n)
#define set_str(s, key, v, n) ((n) ? ADD(s, key, DYNOBS_ATTR_STRING, v, n) : 0)

/* A kept CGI variable (not cut) and its length. */
static const char *var(const struct dynobs_fcgi_req *r, int i, size_t *len)
{
    *len = r->cut[i] ? 0 : r->len[i];
    return r->val[i];
}

static void attributes(struct dynobs_span *s, const struct dynobs_fcgi_req *r, size_t ml,
                       const char *method)
{
    size_t n;
    const char *v;
    set_str(s, "http.request.method", method, ml);
    v = var(r, DYNOBS_FCGI_URI, &n);
    size_t pl = 0;
    while (pl < n && v[pl] != '?' && v[pl] != '#')
        pl++;
    set_str(s, "url.path", v, pl);
    v = var(r, DYNOBS_FCGI_SCHEME, &n);
    if (n)
        set_str(s, "url.scheme", v, n);
    else
        ADD(s, "url.scheme", DYNOBS_ATTR_STRING, "http", 4u);
    v = var(r, DYNOBS_FCGI_HOST, &n);
    const char *colon = memchr(v, ':', n);
    set_str(s, "server.address", v, colon && v[0] != '[' ? (size_t)(colon - v) : n);
    v = var(r, DYNOBS_FCGI_SERVER_PORT, &n);
    char num[8];
    if (n && n < sizeof num) {
        memcpy(num, v, n);
        num[n] = '\0';
        int64_t port = atoi(num);
        if (port > 0)
            ADD(s, "server.port", DYNOBS_ATTR_INT, &port, 8);
    }
    v = var(r, DYNOBS_FCGI_REMOTE_ADDR, &n);
    set_str(s, "client.address", v, n);
    v = var(r, DYNOBS_FCGI_USER_AGENT, &n);
    set_str(s, "user_agent.original", v, n);
    v = var(r, DYNOBS_FCGI_PROTOCOL, &n);
    if (n > 5 && !memcmp(v, "HTTP/", 5))
        set_str(s, "network.protocol.version", v + 5, n - 5);
}

static void start(struct dynobs_conn *c)
{
    struct dynobs_fcgis *f = &c->p.fcgis;
    struct dynobs_thread *t = dynobs__thread();
    size_t ml;
    const char *m = var(&f->req, DYNOBS_FCGI_METHOD, &ml);
    if (!t || !ml)
        return;
    ml = ml < sizeof f->method - 1 ? ml : sizeof f->method - 1;
    memcpy(f->method, m, ml);
    f->method[ml] = '\0';
    /* W3C, as the web server passed the caller's headers on. */
    size_t tpl, tsl;
    const char *tp = var(&f->req, DYNOBS_FCGI_TRACEPARENT, &tpl);
    const char *ts = var(&f->req, DYNOBS_FCGI_TRACESTATE, &tsl);
    struct dynobs_ctx remote;
    const struct dynobs_ctx *parent =
        tpl ? dynobs__ctx_from_headers(&remote, tp, tpl, ts, tsl) : NULL;
    /* The span is named "METHOD ROUTE"; the route comes from the URI the
     * client asked for (REQUEST_URI), not the script's name. */
    size_t ul;
    const char *uri = var(&f->req, DYNOBS_FCGI_URI, &ul);
    size_t pl = 0;
    while (pl < ul && uri[pl] != '?' && uri[pl] != '#')
        pl++;
    struct dynobs_rule_facts facts = {.kind = DYNOBS_SPAN_KIND_SERVER,
                                      .method = {f->method, ml},
                                      .url_path = {uri, pl}};
    struct dynobs_decision d;
    dynobs__decide_routes(&d, &facts);
    dynobs__server_route(d.r, d.routes, uri, ul, &f->route);
    char name[sizeof f->method + DYNOBS_ROUTE_MAX];
    dynobs__server_span_name(name, f->method, ml, &f->route);
    facts.span_name.p = name;
    facts.span_name.n = strlen(name);
    const struct dynobs_span_policy *pol = dynobs__decide(&d, &facts, 1);
    /* An ignored request is served as usual but neither written nor
     * counted; a filter may drop either. */
    if (f->route.ignored)
        pol = &dynobs__policy_dropped;
    f->uncounted = f->route.ignored || (d.drop & DYNOBS_DROP_METRICS);
    f->rules = d.r;
    f->redact = d.redact;
    if (dynobs__span_begin_ex(&f->span, name, DYNOBS_SPAN_KIND_SERVER, parent, f->start_ns, pol) <
        0)
        return;
    f->open = 1;
    dynobs__fcgi_resp_start(&f->resp);
    if (f->span.recording) {
        attributes(&f->span, &f->req, ml, f->method);
        set_str(&f->span, "http.route", f->route.text, f->route.len);
    }
    dynobs__conn_facts(c);
    dynobs__serving_begin(t, &f->span, c->blocking, NULL, &f->serving);
}

static void finish(struct dynobs_conn *c, int code, const char *error_type)
{
    struct dynobs_fcgis *f = &c->p.fcgis;
    struct dynobs_span *s = &f->span;
    struct dynobs_thread *t = dynobs__thread();
    char codestr[8] = "";
    error_type = dynobs__http_server_outcome(s, code, error_type, codestr);
    if (code > 0)
        dynobs__status_text(code, codestr);
    /* An ignored request is not counted either. */
    struct dynobs_segment *seg = t && !f->uncounted ? dynobs__segment() : NULL;
    if (seg) {
        size_t sl;
        const char *scheme = var(&f->req, DYNOBS_FCGI_SCHEME, &sl);
        char sch[8] = "http";
        if (sl && sl < sizeof sch) {
            memcpy(sch, scheme, sl);
            sch[sl] = '\0';
        }
        const char *parts[][2] = {{"http.request.method", f->method},
                                  {"http.response.status_code", code > 0 ? codestr : NULL},
                                  {"url.scheme", sch},
                                  {"http.route", f->route.text},
                                  {"error.type", error_type}};
        char labels[DYNOBS_METRIC_KEY_BYTES];
        dynobs__labels_join(labels, sizeof labels, parts, sizeof parts / sizeof parts[0]);
        uint64_t now = dynobs__thread_now();
        dynobs__http_server_metric(seg, labels,
                                   now > f->start_ns ? (double)(now - f->start_ns) / 1e9 : 0);
    }
    dynobs__serving_end(&f->serving, t);
    dynobs__redact_span(s, f->rules, f->redact);
    dynobs__span_finish(s);
    f->open = 0;
    f->start_ns = 0;
    dynobs__fcgi_req_reset(&f->req);
}

void dynobs__fcgis_init(struct dynobs_conn *c)
{
    struct dynobs_fcgis *f = &c->p.fcgis;
    dynobs__fcgi_req_reset(&f->req);
    f->open = 0;
    f->start_ns = 0;
    f->route.len = 0;
    f->route.ignored = 0;
    f->route.text[0] = '\0';
    f->uncounted = 0;
    f->rules = NULL;
    f->redact = NULL;
    f->span.live = 0;
}

void dynobs__fcgis_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_fcgis *f = &c->p.fcgis;
    struct dynobs_iov_walk w = {iov, iovcnt, n};
    while (f->req.phase < DYNOBS_FCGI_BODY && dynobs__iov_next(&w)) {
        if (f->req.phase == DYNOBS_FCGI_IDLE && !f->start_ns && w.len) {
            struct dynobs_thread *t = dynobs__thread();
            f->start_ns = t ? dynobs__thread_now() : 0;
        }
        if (dynobs__fcgi_req_feed(&f->req, w.p, w.len) == 1 && !f->open)
            start(c);
    }
}

void dynobs__fcgis_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_fcgis *f = &c->p.fcgis;
    struct dynobs_iov_walk w = {iov, iovcnt, n};
    while (f->open && dynobs__iov_next(&w)) {
        int rc = dynobs__fcgi_resp_feed(&f->resp, w.p, w.len);
        if (rc == 1) {
            finish(c, f->resp.code, NULL);
        } else if (rc < 0) {
            finish(c, 0, "malformed_response");
            f->req.phase = DYNOBS_FCGI_OFF;
        }
    }
}

void dynobs__fcgis_end(struct dynobs_conn *c)
{
    if (c->p.fcgis.open)
        finish(c, c->p.fcgis.resp.code, "connection_closed");
}
