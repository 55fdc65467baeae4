#define _GNU_SOURCE
#include "httpclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../common/metrics.h"

const double dynobs__http_duration_bounds[DYNOBS_HTTP_DURATION_NBOUNDS] = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10};

/* Appending without stdio: snprintf costs a few hundred ns a call, and a
 * request would otherwise make eight of them. */
struct sb {
    char *p;
    size_t len, cap;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->len + n >= b->cap)
        n = b->len + 1 < b->cap ? b->cap - b->len - 1 : 0;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_int(struct sb *b, long v)
{
    char tmp[24];
    int i = 24, neg = v < 0;
    unsigned long u = neg ? (unsigned long)-v : (unsigned long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg)
        tmp[--i] = '-';
    sb_put(b, tmp + i, (size_t)(24 - i));
}

/* Feeds the committed (or, with a copy, the planned) bytes of an iov. */
static long feed_iov(struct dynobs_h1_req *o, const struct iovec *iov, int iovcnt, size_t limit)
{
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < limit; i++) {
        size_t n = iov[i].iov_len < limit - done ? iov[i].iov_len : limit - done;
        long k = dynobs__h1_req_feed(o, iov[i].iov_base, n);
        if (k >= 0)
            return (long)(done + (size_t)k);
        done += n;
    }
    return -1;
}

/* Host header "name:port", "[v6]:port" or "name"; else the peer address. */
static void server_of(struct dynobs_conn *c, const struct dynobs_h1_req *o, int fd)
{
    const char *h = o->host;
    size_t n = o->host_len;
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    int port = c->tls ? 443 : 80;
    size_t name_len = n;
    const char *name = h;
    if (n && h[0] == '[') {
        const char *close_ = memchr(h, ']', n);
        if (close_) {
            name = h + 1;
            name_len = (size_t)(close_ - h - 1);
            if ((size_t)(close_ - h) + 1 < n && close_[1] == ':')
                port = atoi(close_ + 2);
        }
    } else {
        const char *colon = memchr(h, ':', n);
        if (colon) {
            name_len = (size_t)(colon - h);
            port = atoi(colon + 1);
        }
    }
    if (name_len && name_len < sizeof c->server_address) {
        memcpy(c->server_address, name, name_len);
        c->server_address[name_len] = '\0';
        c->server_port = port;
        return;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    c->server_address[0] = '\0';
    c->server_port = port;
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, c->server_address, sizeof c->server_address);
            c->server_port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, c->server_address, sizeof c->server_address);
            c->server_port = ntohs(a->sin6_port);
        }
    }
}

/* url.full without user info, query values redacted: a=REDACTED&b=REDACTED. */
static size_t url_full(const struct dynobs_conn *c, const struct dynobs_h1_reqline *r, char *out,
                       size_t cap)
{
    struct sb b = {out, 0, cap};
    sb_str(&b, c->tls ? "https://" : "http://");
    sb_str(&b, c->server_address);
    if (c->server_port != (c->tls ? 443 : 80)) {
        sb_put(&b, ":", 1);
        sb_int(&b, c->server_port);
    }
    size_t o = b.len;
    const char *t = r->target;
    size_t tl = r->target_len;
    /* An absolute-form target (through a proxy) is used from its path on. */
    if (tl > 7 && (!memcmp(t, "http://", 7) || !memcmp(t, "https://", 8))) {
        const char *slash = memchr(t + 8, '/', tl - 8);
        size_t skip = slash ? (size_t)(slash - t) : tl;
        t += skip;
        tl -= skip;
    }
    int in_query = 0, in_value = 0;
    for (size_t i = 0; i < tl && o + 10 < cap; i++) {
        char ch = t[i];
        if (ch == '#')
            break;
        if (ch == '?' && !in_query) {
            in_query = 1;
        } else if (in_query && ch == '=' && !in_value) {
            out[o++] = '=';
            memcpy(out + o, "REDACTED", 8);
            o += 8;
            in_value = 1;
            continue;
        } else if (in_query && ch == '&') {
            in_value = 0;
        }
        if (!in_value)
            out[o++] = ch;
    }
    out[o < cap ? o : cap - 1] = '\0';
    return o;
}

static void set_str(struct dynobs_span *s, const char *k, const char *v, size_t n)
{
    dynobs__span_set(s, k, DYNOBS_ATTR_STRING, v, n);
}

static void set_int(struct dynobs_span *s, const char *k, int64_t v)
{
    dynobs__span_set(s, k, DYNOBS_ATTR_INT, &v, 8);
}

/* The header block ends in the bytes about to go out (o: the stream state
 * at that point): start the span and prepare the lines to add. */
static void start_request(struct dynobs_conn *c, const struct dynobs_h1_req *o, int fd)
{
    struct dynobs_thread *t = dynobs__thread();
    struct dynobs_h1_reqline r;
    c->inj_len = 0;
    if (!t || dynobs__h1_req_parse(o, &r) < 0)
        return;
    if (!c->req_start_ns)
        c->req_start_ns = dynobs__clock_now(&t->clk);
    size_t ml = r.method_len < sizeof c->method - 1 ? r.method_len : sizeof c->method - 1;
    memcpy(c->method, r.method, ml);
    c->method[ml] = '\0';
    server_of(c, o, fd);

    /* Parent: a traceparent the application set itself wins (we then add
     * nothing); else the thread's current context. */
    struct dynobs_ctx remote;
    const struct dynobs_ctx *parent = NULL;
    struct dynobs_traceparent tp;
    int app_tp = o->has_traceparent;
    if (app_tp && dynobs__traceparent_parse(o->traceparent, o->tp_len, &tp) == 0) {
        dynobs__ctx_remote(&remote, &tp);
        parent = &remote;
    } else if (!app_tp) {
        parent = dynobs__ctx_current(t);
    }
    if (dynobs__span_begin(&c->span, c->method, DYNOBS_SPAN_KIND_CLIENT, parent,
                           c->req_start_ns) < 0)
        return;
    c->span_open = 1;
    struct dynobs_span *s = &c->span;
    if (s->recording) {
        char url[1024];
        set_str(s, "http.request.method", c->method, ml);
        size_t ul = url_full(c, &r, url, sizeof url);
        set_str(s, "url.full", url, ul < sizeof url ? ul : sizeof url - 1);
        set_str(s, "server.address", c->server_address, strlen(c->server_address));
        set_int(s, "server.port", c->server_port);
        set_str(s, "network.protocol.version", r.minor ? "1.1" : "1.0", 3);
    }
    c->inj_len = 0;
    if (!app_tp) {
        struct sb b = {c->inj, 0, sizeof c->inj};
        char ours[DYNOBS_TRACEPARENT_LEN + 1];
        dynobs__traceparent_format(s->rec.trace_id, s->rec.span_id, s->rec.trace_flags, ours,
                                   sizeof ours);
        sb_put(&b, "traceparent: ", 13);
        sb_put(&b, ours, DYNOBS_TRACEPARENT_LEN);
        sb_put(&b, "\r\n", 2);
        if (s->rec.tracestate_len && !o->has_tracestate &&
            b.len + 16 + s->rec.tracestate_len < sizeof c->inj) {
            sb_put(&b, "tracestate: ", 12);
            sb_put(&b, (const char *)s->body + s->rec.name_len, s->rec.tracestate_len);
            sb_put(&b, "\r\n", 2);
        }
        c->inj_len = (uint16_t)b.len;
    }
    c->inj_sent = 0;
    c->in.phase = DYNOBS_H1_ST_LINE;
    c->in.status_len = 0;
}

long dynobs__http_out_plan(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                           size_t total, int fd)
{
    if (c->inj_at >= 0)
        return (size_t)c->inj_at <= total ? c->inj_at : -1;
    if (c->out.phase >= DYNOBS_H1_REQ_BODY)
        return -1;
    if (c->out.phase == DYNOBS_H1_REQ_IDLE && total)
        c->req_start_ns = 0; /* a new request starts with these bytes */
    c->planned = c->out;
    long k = feed_iov(&c->planned, iov, iovcnt, total);
    if (k < 0)
        return -1;
    start_request(c, &c->planned, fd);
    c->inj_at = k;
    return k;
}

void dynobs__http_out_commit(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                             size_t consumed)
{
    if (c->out.phase == DYNOBS_H1_REQ_IDLE && consumed && !c->req_start_ns) {
        struct dynobs_thread *t = dynobs__thread();
        if (t)
            c->req_start_ns = dynobs__clock_now(&t->clk);
    }
    if (c->inj_at >= 0) {
        /* Only bytes before our lines can be committed here. When all of
         * them went out, the planned state is exactly the result. */
        size_t before = consumed < (size_t)c->inj_at ? consumed : (size_t)c->inj_at;
        if (before == (size_t)c->inj_at)
            c->out = c->planned;
        else
            feed_iov(&c->out, iov, iovcnt, before);
        c->inj_at -= (int64_t)before;
        return;
    }
    if (c->out.phase < DYNOBS_H1_REQ_BODY)
        feed_iov(&c->out, iov, iovcnt, consumed);
}

void dynobs__http_out_sent(struct dynobs_conn *c)
{
    c->inj_at = -1;
    c->inj_len = c->inj_sent = 0;
    dynobs__h1_req_done(&c->out);
}

void dynobs__http_client_metric(const char *method, const char *server, long port, long code,
                                const char *error_type, double seconds)
{
    struct dynobs_segment *seg = dynobs__segment();
    if (!seg)
        return;
    char labels[DYNOBS_METRIC_KEY_BYTES];
    struct sb b = {labels, 0, sizeof labels};
    labels[0] = '\0';
    sb_str(&b, "http.request.method=");
    sb_str(&b, method);
    if (server && *server) {
        sb_str(&b, ",server.address=");
        sb_str(&b, server);
    }
    if (port > 0) {
        sb_str(&b, ",server.port=");
        sb_int(&b, port);
    }
    if (code > 0) {
        sb_str(&b, ",http.response.status_code=");
        sb_int(&b, code);
    }
    if (error_type) {
        sb_str(&b, ",error.type=");
        sb_str(&b, error_type);
    }
    dynobs__duration_record(seg, "http.client.request.duration", dynobs__http_duration_bounds,
                            DYNOBS_HTTP_DURATION_NBOUNDS, seconds, labels);
}

static void record_metric(struct dynobs_conn *c, int code, const char *error_type)
{
    struct dynobs_thread *t = dynobs__thread();
    if (!t || !c->req_start_ns)
        return;
    uint64_t now = dynobs__clock_now(&t->clk);
    double secs = now > c->req_start_ns ? (double)(now - c->req_start_ns) / 1e9 : 0;
    dynobs__http_client_metric(c->method, c->server_address, c->server_port, code, error_type,
                               secs);
}

static void finish(struct dynobs_conn *c, int code, const char *error_type)
{
    struct dynobs_span *s = &c->span;
    char codestr[16];
    if (code >= 400 && !error_type) {
        struct sb b = {codestr, 0, sizeof codestr};
        sb_int(&b, code);
        error_type = codestr;
    }
    if (code > 0)
        set_int(s, "http.response.status_code", code);
    if (error_type) {
        set_str(s, "error.type", error_type, strlen(error_type));
        dynobs__span_status(s, DYNOBS_STATUS_ERROR, code > 0 ? NULL : error_type);
    }
    record_metric(c, code, error_type);
    dynobs__span_finish(s);
    c->span_open = 0;
    c->in.phase = DYNOBS_H1_ST_NONE;
    c->req_start_ns = 0;
    if (code == 101)
        c->out.phase = DYNOBS_H1_REQ_OFF; /* switched protocols: not HTTP/1 any more */
    else
        dynobs__h1_req_reset(&c->out);
}

void dynobs__http_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < n && c->span_open; i++) {
        size_t len = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
        int rc = dynobs__h1_status_feed(&c->in, iov[i].iov_base, len);
        if (rc > 0)
            finish(c, rc, NULL);
        else if (rc < 0)
            finish(c, 0, "malformed_response");
        done += len;
    }
}

void dynobs__http_fail(struct dynobs_conn *c, const char *error_type)
{
    if (c->span_open)
        finish(c, 0, error_type);
}
