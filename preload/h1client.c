/*
 * HTTP/1 requests this process sends (see h1.h): each gets a CLIENT span
 * whose parent is the thread's current context (or the traceparent the
 * application set itself, which then wins: we add nothing), our
 * traceparent and tracestate lines at the end of its header block, and
 * ends with the response's status or the stream's failure.
 *
 * Adding lines is planned before the transport's real call and committed
 * after it (conn.h): the transport sends our bytes with the
 * application's, in one call, and tells how many of each went out.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "httpmetrics.h"
#include "policy.h"
#include "redact.h"
#include "strbuf.h"

/* A client's request head without what only a server keeps (tracestate,
 * user agent and correlation values: capture is off), which is most of
 * its size: the planned head is copied on every write that may carry our
 * lines. Of its buffers only the bytes their lengths count are read
 * (and written next), except the request line's when it was cut: the
 * reader then rolls its version through the buffer's end. */
static void copy_head(struct dynobs_h1_req *dst, const struct dynobs_h1_req *src)
{
    memcpy(dst, src, offsetof(struct dynobs_h1_req, reqline));
    memcpy(dst->reqline, src->reqline,
           src->reqline_trunc ? sizeof src->reqline : src->reqline_len);
    memcpy(dst->host, src->host, src->host_len);
    memcpy(dst->traceparent, src->traceparent, src->tp_len);
}

/* Feeds the committed (or, with a copy, the planned) bytes of an iov. */
static long feed_iov(struct dynobs_h1_req *o, const struct iovec *iov, int iovcnt, size_t limit)
{
    struct dynobs_iov_walk w = {iov, iovcnt, limit};
    size_t done = 0;
    while (dynobs__iov_next(&w)) {
        long k = dynobs__h1_req_feed(o, w.p, w.len);
        if (k >= 0)
            return (long)(done + (size_t)k);
        done += w.len;
    }
    return -1;
}

/* The decimal port of the n bytes at p (as atoi would read it, but not
 * past them: the header's buffer holds older bytes after its value). */
static int port_of(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n && p[i] >= '0' && p[i] <= '9' && v < 100000; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

/* Host header "name:port", "[v6]:port" or "name"; else the peer address. */
static void server_of(struct dynobs_h1c_exchange *x, const struct dynobs_h1_req *o, int tls,
                      int fd)
{
    const char *h = o->host;
    size_t n = o->host_len;
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    int port = tls ? 443 : 80;
    size_t name_len = n;
    const char *name = h;
    if (n && h[0] == '[') {
        const char *close_ = memchr(h, ']', n);
        if (close_) {
            name = h + 1;
            name_len = (size_t)(close_ - h - 1);
            if ((size_t)(close_ - h) + 1 < n && close_[1] == ':')
                port = port_of(close_ + 2, n - (size_t)(close_ - h) - 2);
        }
    } else {
        const char *colon = memchr(h, ':', n);
        if (colon) {
            name_len = (size_t)(colon - h);
            port = port_of(colon + 1, n - (size_t)(colon - h) - 1);
        }
    }
    if (name_len && name_len < sizeof x->server_address) {
        memcpy(x->server_address, name, name_len);
        x->server_address[name_len] = '\0';
        x->server_port = port;
        return;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    x->server_address[0] = '\0';
    x->server_port = port;
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, x->server_address, sizeof x->server_address);
            x->server_port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, x->server_address, sizeof x->server_address);
            x->server_port = ntohs(a->sin6_port);
        }
    }
}

/* url.full without user info, query values redacted: a=REDACTED&b=REDACTED. */
static size_t url_full(const struct dynobs_h1c_exchange *x, int tls,
                       const struct dynobs_h1_reqline *r, char *out, size_t cap)
{
    struct dynobs_sb b = {out, 0, cap};
    dynobs__sb_str(&b, tls ? "https://" : "http://");
    dynobs__sb_str(&b, x->server_address);
    if (x->server_port != (tls ? 443 : 80)) {
        dynobs__sb_put(&b, ":", 1);
        dynobs__sb_int(&b, x->server_port);
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
    o = dynobs__redact_url_values(t, tl, out, o, cap);
    out[o < cap ? o : cap - 1] = '\0';
    return o;
}

/* Each attribute of a client span is set once: no replacement scan. */
#define ADD(s, key, type, v, n) dynobs__span_add(s, key, sizeof key - 1, type, v, n)

/* The correlation header lines of the parent context (config.h), each
 * unless the application sends that header itself, as long as they fit. */
static void correlation_lines(struct dynobs_sb *b, const struct dynobs_ctx *parent,
                              const struct dynobs_h1_req *o)
{
    const char *p = parent->corr, *end = parent->corr + parent->corr_len;
    for (int i = 0; i < 8 && p < end; i++) {
        if (!(parent->corr_mask & (1u << i)))
            continue;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return;
        size_t len = (size_t)(nl + 1 - p);
        if (!(o->corr_seen & (16u << i)) && b->len + len + 2 < b->cap)
            dynobs__sb_put(b, p, len);
        p = nl + 1;
    }
}

/* 1 when o's request line and Host header are those m was made for. */
static int same_request(const struct dynobs_h1c_memo *m, const struct dynobs_h1_req *o)
{
    return m->line_len && m->line_len == o->reqline_len && m->host_len == o->host_len &&
           !o->reqline_trunc && !memcmp(m->line, o->reqline, m->line_len) &&
           !memcmp(m->host, o->host, m->host_len);
}

/* A request unlike the connection's last: what was kept for that one is
 * emptied, and the key of this one kept when it fits. */
static void memo_renew(struct dynobs_h1c_memo *m, const struct dynobs_h1_req *o, size_t ml)
{
    dynobs__client_decision_clear(&m->decision);
    m->attrs.len = 0;
    m->labels_code = -1;
    m->series.slot = NULL;
    m->line_len = 0;
    if (o->reqline_trunc || !o->reqline_len || o->reqline_len > sizeof m->line ||
        o->host_len > sizeof m->host)
        return;
    memcpy(m->line, o->reqline, o->reqline_len);
    memcpy(m->host, o->host, o->host_len);
    m->host_len = o->host_len;
    m->ml = (uint8_t)ml;
    m->line_len = o->reqline_len;
}

/* The span's first attributes, one by one; kept whole in m for the
 * connection's next request when m has its key. */
static void first_attrs(struct dynobs_h1c_memo *m, struct dynobs_h1c_exchange *x,
                        struct dynobs_span *s, const struct dynobs_h1_reqline *r, size_t ml,
                        int tls)
{
    char url[1024];
    struct dynobs_attr_mark k = dynobs__attr_mark(s);
    ADD(s, "http.request.method", DYNOBS_ATTR_STRING, x->method, ml);
    size_t ul = url_full(x, tls, r, url, sizeof url);
    ADD(s, "url.full", DYNOBS_ATTR_STRING, url, ul < sizeof url ? ul : sizeof url - 1);
    ADD(s, "server.address", DYNOBS_ATTR_STRING, x->server_address, strlen(x->server_address));
    int64_t port = x->server_port;
    ADD(s, "server.port", DYNOBS_ATTR_INT, &port, 8);
    ADD(s, "network.protocol.version", DYNOBS_ATTR_STRING, r->minor ? "1.1" : "1.0", 3);
    if (m->line_len)
        dynobs__attr_block_keep(&m->attrs, s, k);
}

/* The header block ends in the bytes about to go out (o: the request
 * head at that point): start the span and prepare the lines to add.
 * While the request line and Host header repeat the connection's last
 * request, what they gave is taken from its memo (client_memo.h). head:
 * 1 when o was recalled from the head memo, 2 when it was just kept
 * there, else 0. */
static void start_request(struct dynobs_conn *c, const struct dynobs_h1_req *o, int head)
{
    struct dynobs_h1c *h = &c->p.h1c;
    struct dynobs_h1c_exchange *x = &h->x;
    struct dynobs_h1c_memo *m = &h->memo;
    struct dynobs_thread *t = dynobs__thread();
    struct dynobs_h1_reqline r;
    int tls = c->transport == DYNOBS_TRANSPORT_TLS;
    h->inj_len = 0;
    if (!t)
        return;
    /* A head recalled whole has the request line and Host header the
     * memo was made for, when it was made from that head. */
    int same = (head == 1 && m->from_head) || same_request(m, o), parsed = !same;
    m->from_head = 0;
    size_t ml;
    if (same) {
        ml = m->ml; /* method, server address and port are still in x */
    } else {
        if (dynobs__h1_req_parse(o, &r) < 0) {
            m->line_len = 0;
            return;
        }
        ml = r.method_len < sizeof x->method - 1 ? r.method_len : sizeof x->method - 1;
        memo_renew(m, o, ml);
    }
    m->from_head = head && m->line_len;
    if (!x->start_ns)
        x->start_ns = dynobs__thread_now();
    if (!same) {
        memcpy(x->method, r.method, ml);
        x->method[ml] = '\0';
        server_of(x, o, tls, c->fd);
    }

    /* Parent: a traceparent the application set itself wins (we then add
     * nothing); else the thread's current context. */
    struct dynobs_ctx remote;
    const struct dynobs_ctx *parent = NULL;
    int app_tp = o->has_traceparent;
    if (app_tp)
        parent = dynobs__ctx_from_headers(&remote, o->traceparent, o->tp_len, NULL, 0);
    else if (c->has_origin)
        parent = &c->origin; /* announced by the runtime for this request */
    else
        parent = dynobs__ctx_outbound(t);
    c->has_origin = 0;
    struct dynobs_decision d;
    const struct dynobs_span_policy *pol;
    if (!same || !dynobs__client_decision_recall(&m->decision, &d, &pol)) {
        if (!parsed && dynobs__h1_req_parse(o, &r) < 0)
            return;
        parsed = 1;
        size_t pl = 0;
        while (pl < r.target_len && r.target[pl] != '?' && r.target[pl] != '#')
            pl++;
        struct dynobs_rule_facts f = {.kind = DYNOBS_SPAN_KIND_CLIENT,
                                      .method = {x->method, ml},
                                      .server_address = {x->server_address,
                                                         strlen(x->server_address)},
                                      .url_path = {r.target, pl},
                                      .span_name = {x->method, ml}};
        pol = dynobs__decide(&d, &f, 0);
        /* The facts are the request line's and the Host header's. */
        if (m->line_len)
            dynobs__client_decision_keep(&m->decision, &d, pol);
    }
    x->uncounted = (d.drop & DYNOBS_DROP_METRICS) != 0;
    x->rules = d.r;
    x->redact = d.redact;
    if (dynobs__span_begin_ex(&x->span, x->method, DYNOBS_SPAN_KIND_CLIENT, parent, x->start_ns,
                              pol) < 0)
        return;
    x->open = 1;
    struct dynobs_span *s = &x->span;
    if (s->recording && (!same || dynobs__attr_block_put(&m->attrs, s))) {
        if (parsed || dynobs__h1_req_parse(o, &r) == 0)
            first_attrs(m, x, s, &r, ml, tls);
    }
    if (!app_tp) {
        struct dynobs_sb b = {h->inj, 0, sizeof h->inj};
        /* Formatted in place (its NUL is overwritten by the CRLF). */
        _Static_assert(sizeof h->inj > 13 + DYNOBS_TRACEPARENT_LEN + 2, "traceparent line");
        memcpy(h->inj, "traceparent: ", 13);
        dynobs__traceparent_format(s->rec.trace_id, s->rec.span_id, s->rec.trace_flags,
                                   h->inj + 13, DYNOBS_TRACEPARENT_LEN + 1);
        memcpy(h->inj + 13 + DYNOBS_TRACEPARENT_LEN, "\r\n", 2);
        b.len = 13 + DYNOBS_TRACEPARENT_LEN + 2;
        h->inj[b.len] = '\0';
        if (s->rec.tracestate_len && !o->has_tracestate &&
            b.len + 16 + s->rec.tracestate_len < sizeof h->inj) {
            dynobs__sb_put(&b, "tracestate: ", 12);
            dynobs__sb_put(&b, dynobs__span_tracestate(s), s->rec.tracestate_len);
            dynobs__sb_put(&b, "\r\n", 2);
        }
        if (parent && parent->corr_len)
            correlation_lines(&b, parent, o);
        size_t bl;
        const char *bag = parent && !o->has_baggage ? dynobs__ctx_baggage(parent, &bl) : NULL;
        if (bag && b.len + 9 + bl + 2 < b.cap) {
            dynobs__sb_put(&b, "baggage: ", 9);
            dynobs__sb_put(&b, bag, bl);
            dynobs__sb_put(&b, "\r\n", 2);
        }
        h->inj_len = (uint16_t)b.len;
    }
    h->inj_sent = 0;
    h->plan_gen = __atomic_load_n(&h->done_gen, __ATOMIC_ACQUIRE);
    x->status.phase = DYNOBS_H1_ST_LINE;
    x->status.status_len = 0;
}

/* http.response.status_code, copied as encoded for the connection's last
 * exchange while the code repeats (struct dynobs_h1c_code), else added
 * and kept when it went in whole. */
static void status_code(struct dynobs_h1c *h, struct dynobs_span *s, int code)
{
    struct dynobs_h1c_code *k = &h->code;
    if (k->len && k->code == code && !dynobs__span_add_items(s, k->item, k->len, 1))
        return;
    uint32_t used = s->used;
    uint16_t attrs = s->attrs;
    uint8_t cut = s->truncated;
    int64_t status = code;
    ADD(s, "http.response.status_code", DYNOBS_ATTR_INT, &status, 8);
    size_t n = s->used - used;
    k->len = 0;
    if (s->recording && !cut && !s->truncated && s->attrs == attrs + 1 && n <= sizeof k->item) {
        memcpy(k->item, s->body + used, n);
        k->code = code;
        k->len = (uint16_t)n;
    }
}

void dynobs__h1c_init(struct dynobs_conn *c)
{
    struct dynobs_h1c *h = &c->p.h1c;
    /* The state only, not the buffers it fills (most of its size: the
     * planned head is copied from the head before use, inj is written
     * before it is sent). */
    memset(&h->head, 0, offsetof(struct dynobs_h1_req, reqline));
    h->inj_at = -1;
    h->inj_len = h->inj_sent = 0;
    h->done_gen = h->plan_gen = 0;
    h->memo.line_len = 0;
    h->memo.from_head = 0;
    h->memo.head.len = 0;
    h->code.len = 0;
    memset(&h->x, 0, offsetof(struct dynobs_h1c_exchange, span));
    h->x.span.live = 0;
}

/* The reader's state after a write that repeats the connection's last
 * request head (struct dynobs_h1c_head_memo), without reading it again:
 * 1 with planned set and *k where our lines go, else 0. */
static int head_recall(struct dynobs_h1c *h, const struct iovec *iov, int iovcnt, size_t total,
                       long *k)
{
    const struct dynobs_h1c_head_memo *m = &h->memo.head;
    if (!m->len || m->len != total || h->head.phase != DYNOBS_H1_REQ_IDLE ||
        memcmp(&h->head, m->from, sizeof m->from))
        return 0;
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len && memcmp(m->bytes + off, iov[i].iov_base, iov[i].iov_len))
            return 0;
        off += iov[i].iov_len;
    }
    struct dynobs_h1_req *o = &h->planned;
    memcpy(o, m->to, sizeof m->to);
    memcpy(o->reqline, m->reqline, o->reqline_trunc ? sizeof o->reqline : o->reqline_len);
    memcpy(o->host, m->host, o->host_len);
    memcpy(o->traceparent, m->tp, o->tp_len);
    *k = m->k;
    return 1;
}

/* Keeps a write that took an idle reader to the end of a request head
 * (planned, our lines' point at k) for head_recall; 1 when kept. */
static int head_keep(struct dynobs_h1c *h, const struct iovec *iov, int iovcnt, size_t total,
                     long k)
{
    struct dynobs_h1c_head_memo *m = &h->memo.head;
    const struct dynobs_h1_req *o = &h->planned;
    m->len = 0;
    h->memo.from_head = 0; /* another head from now on */
    if (h->head.phase != DYNOBS_H1_REQ_IDLE || total > sizeof m->bytes || k > INT32_MAX)
        return 0;
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len)
            memcpy(m->bytes + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    memcpy(m->from, &h->head, sizeof m->from);
    memcpy(m->to, o, sizeof m->to);
    memcpy(m->reqline, o->reqline, o->reqline_trunc ? sizeof o->reqline : o->reqline_len);
    memcpy(m->host, o->host, o->host_len);
    memcpy(m->tp, o->traceparent, o->tp_len);
    m->k = (int32_t)k;
    m->len = (uint16_t)total;
    return 1;
}

long dynobs__h1c_plan(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                      struct dynobs_insert *ins)
{
    struct dynobs_h1c *h = &c->p.h1c;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    long k = -1;
    if (h->inj_at >= 0) {
        k = (size_t)h->inj_at <= total ? h->inj_at : -1;
    } else if (h->head.phase < DYNOBS_H1_REQ_BODY) {
        if (h->head.phase == DYNOBS_H1_REQ_IDLE && total)
            h->x.start_ns = 0; /* a new request starts with these bytes */
        int head = 1;
        if (!head_recall(h, iov, iovcnt, total, &k)) {
            copy_head(&h->planned, &h->head);
            k = feed_iov(&h->planned, iov, iovcnt, total);
            head = k >= 0 && head_keep(h, iov, iovcnt, total, k) ? 2 : 0;
        }
        if (k >= 0) {
            start_request(c, &h->planned, head);
            h->inj_at = k;
        }
    }
    ins->bytes = h->inj + h->inj_sent;
    ins->len = k >= 0 ? (size_t)h->inj_len - h->inj_sent : 0;
    ins->skip = 0;
    ins->stop = 0;
    return k;
}

/* Our lines are out (or given up): the rest of the request is body. */
static void lines_sent(struct dynobs_h1c *h)
{
    h->inj_at = -1;
    h->inj_len = h->inj_sent = 0;
    dynobs__h1_req_done(&h->head);
}

void dynobs__h1c_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n,
                     long ours)
{
    struct dynobs_h1c *h = &c->p.h1c;
    if (h->head.phase == DYNOBS_H1_REQ_IDLE && n && !h->x.start_ns) {
        struct dynobs_thread *t = dynobs__thread();
        if (t)
            h->x.start_ns = dynobs__thread_now();
    }
    if (h->inj_at < 0) {
        if (h->head.phase < DYNOBS_H1_REQ_BODY)
            feed_iov(&h->head, iov, iovcnt, n);
        return;
    }
    if (__atomic_load_n(&h->done_gen, __ATOMIC_ACQUIRE) != h->plan_gen) {
        /* The response was read and the exchange finished on another
         * thread meanwhile: its end reset the request head, which this
         * late account must not overwrite with the planned one (the
         * connection's next requests would pass as body). */
        h->inj_at = -1;
        h->inj_len = h->inj_sent = 0;
        return;
    }
    /* Only the application's bytes before our lines' point are fed; when
     * all of them went out, the planned head is exactly the result. */
    size_t before = n < (size_t)h->inj_at ? n : (size_t)h->inj_at;
    size_t sent = ours == DYNOBS_INSERT_GIVEN_UP ? h->inj_len : h->inj_sent + (size_t)ours;
    if (before == (size_t)h->inj_at && sent >= h->inj_len) {
        /* All of it and our lines: the rest is body, and nothing reads
         * the head but its phase until the response resets it, so the
         * planned head is not copied. */
        lines_sent(h);
        return;
    }
    if (before == (size_t)h->inj_at)
        copy_head(&h->head, &h->planned);
    else
        feed_iov(&h->head, iov, iovcnt, before);
    h->inj_at -= (int64_t)before;
    if (ours == DYNOBS_INSERT_GIVEN_UP)
        h->inj_sent = h->inj_len;
    else
        h->inj_sent = (uint16_t)(h->inj_sent + (size_t)ours);
    /* Past the point with all of our lines out (or none to send): done. */
    if (h->inj_at == 0 && h->inj_sent == h->inj_len)
        lines_sent(h);
}

/* failed: error_type is a failure's, not the status code's text. */
static void record_metric(struct dynobs_h1c *h, int code, const char *error_type, int failed)
{
    struct dynobs_h1c_exchange *x = &h->x;
    struct dynobs_h1c_memo *m = &h->memo;
    struct dynobs_thread *t = dynobs__thread();
    if (!t || !x->start_ns || x->uncounted)
        return;
    uint64_t now = dynobs__thread_now();
    double secs = now > x->start_ns ? (double)(now - x->start_ns) / 1e9 : 0;
    /* The labels are the memo's request's and the status code's: made
     * once per status while the request repeats. */
    if (failed || !m->line_len) {
        dynobs__http_client_metric(x->method, x->server_address, x->server_port, code,
                                   error_type, secs);
        return;
    }
    struct dynobs_segment *seg = dynobs__segment();
    if (!seg)
        return;
    if (m->labels_code != code) {
        dynobs__client_http_labels(m->labels, sizeof m->labels, x->method, x->server_address,
                                   x->server_port, code, error_type);
        m->labels_code = code;
        m->series.slot = NULL;
    }
    dynobs__duration_memo(seg, "http.client.request.duration", dynobs__http_duration_bounds,
                          DYNOBS_HTTP_DURATION_NBOUNDS, secs, m->labels, &m->series);
}

static void finish(struct dynobs_h1c *h, int code, const char *error_type)
{
    struct dynobs_h1c_exchange *x = &h->x;
    struct dynobs_span *s = &x->span;
    char codestr[16];
    int failed = error_type != NULL;
    if (code >= 400 && !error_type) {
        struct dynobs_sb b = {codestr, 0, sizeof codestr};
        dynobs__sb_int(&b, code);
        error_type = codestr;
    }
    if (code > 0)
        status_code(h, s, code);
    if (error_type) {
        ADD(s, "error.type", DYNOBS_ATTR_STRING, error_type, strlen(error_type));
        dynobs__span_status(s, DYNOBS_STATUS_ERROR, code > 0 ? NULL : error_type);
    }
    record_metric(h, code, error_type, failed);
    dynobs__redact_span(s, x->rules, x->redact);
    dynobs__span_finish(s);
    x->open = 0;
    x->status.phase = DYNOBS_H1_ST_NONE;
    x->start_ns = 0;
    if (code == 101)
        h->head.phase = DYNOBS_H1_REQ_OFF; /* switched protocols: not HTTP/1 any more */
    else
        dynobs__h1_req_reset(&h->head);
    __atomic_add_fetch(&h->done_gen, 1, __ATOMIC_RELEASE);
}

void dynobs__h1c_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_h1c *h = &c->p.h1c;
    struct dynobs_iov_walk w = {iov, iovcnt, n};
    while (h->x.open && dynobs__iov_next(&w)) {
        int rc = dynobs__h1_status_feed(&h->x.status, w.p, w.len);
        if (rc != 0)
            finish(h, rc > 0 ? rc : 0, rc > 0 ? NULL : "malformed_response");
    }
}

void dynobs__h1c_end(struct dynobs_conn *c, const char *error_type)
{
    if (c->p.h1c.x.open)
        finish(&c->p.h1c, 0, error_type);
}
