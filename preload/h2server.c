/*
 * HTTP/2 streams this process answers (see h2.h): each request's header
 * block read on an accepted connection starts a SERVER span that
 * continues the caller's trace; the response's END_STREAM (on its DATA,
 * its headers or its trailers) ends it, and so do a reset from either
 * side and the connection's end. gRPC calls (content-type
 * application/grpc) are named "package.Service/Method" and carry the RPC
 * attributes, with rpc.grpc.status_code from the trailers.
 *
 * Streams are multiplexed: requests may be in flight together on one
 * connection and read by one thread, so the context layer decides, as for
 * any request read by a thread that multiplexes, whether one is bound to
 * the thread (dynobs__serving_begin).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "conn.h"
#include "h2.h"
#include "httpmetrics.h"
#include "policy.h"
#include "redact.h"
#include "strbuf.h"

#define ADD(s, key, type, v, n) dynobs__span_add(s, key, sizeof key - 1, type, v, n)
#define set_str(s, key, v, n) ((n) ? ADD(s, key, DYNOBS_ATTR_STRING, v, n) : 0)

/* The attributes of a stream from url.scheme to network.protocol.version:
 * encoded once and then copied whole while the stream's scheme, host and
 * user agent are the connection's last stream's (struct dynobs_h2_run);
 * a run that was cut is not kept. Only the thread that reads the
 * connection starts its streams, so the run has one user at a time. */
static void conn_attrs(struct dynobs_conn *c, struct dynobs_h2_state *st, struct dynobs_span *s,
                       const struct dynobs_h2_head *h, size_t hn)
{
    struct dynobs_h2_run *m = &st->run;
    size_t sl = h->scheme_len, ual = h->ua_len;
    if (m->len && m->sl == sl && m->hn == hn && m->ual == ual &&
        m->value_limit == dynobs__config.attr_value_limit && !memcmp(m->key, h->scheme, sl) &&
        !memcmp(m->key + sl, h->authority, hn) && !memcmp(m->key + sl + hn, h->user_agent, ual) &&
        !dynobs__span_add_items(s, m->items, m->len, m->count))
        return;
    uint32_t used = s->used;
    uint16_t attrs = s->attrs;
    uint8_t cut = s->truncated;
    int tls = c->transport == DYNOBS_TRANSPORT_TLS;
    if (sl)
        set_str(s, "url.scheme", h->scheme, sl);
    else
        ADD(s, "url.scheme", DYNOBS_ATTR_STRING, tls ? "https" : "http", tls ? 5u : 4u);
    if (hn)
        set_str(s, "server.address", h->authority, hn);
    else
        set_str(s, "server.address", c->local_address, strlen(c->local_address));
    int64_t port = c->local_port;
    if (port)
        ADD(s, "server.port", DYNOBS_ATTR_INT, &port, 8);
    set_str(s, "client.address", c->peer_address, strlen(c->peer_address));
    set_str(s, "user_agent.original", h->user_agent, ual);
    ADD(s, "network.protocol.name", DYNOBS_ATTR_STRING, "http", 4);
    ADD(s, "network.protocol.version", DYNOBS_ATTR_STRING, "2", 1);
    size_t n = s->used - used;
    m->len = 0;
    if (cut || s->truncated || n > sizeof m->items || sl + hn + ual > sizeof m->key)
        return;
    memcpy(m->key, h->scheme, sl);
    memcpy(m->key + sl, h->authority, hn);
    memcpy(m->key + sl + hn, h->user_agent, ual);
    memcpy(m->items, s->body + used, n);
    m->sl = (uint8_t)sl;
    m->hn = (uint16_t)hn;
    m->ual = (uint16_t)ual;
    m->count = (uint8_t)(s->attrs - attrs);
    m->value_limit = dynobs__config.attr_value_limit;
    m->len = (uint16_t)n;
}

/* "package.Service/Method" for a gRPC call, else "METHOD route". */
static void span_name(const struct dynobs_h2_stream *x, const struct dynobs_h2_head *h, size_t pl,
                      char *name, size_t cap)
{
    if (x->grpc && pl > 1 && pl < cap) {
        memcpy(name, h->path + 1, pl - 1);
        name[pl - 1] = '\0';
    } else {
        dynobs__server_span_name(name, x->method, h->method_len, &x->route);
    }
}

static void start(struct dynobs_conn *c, struct dynobs_h2_state *st, const struct dynobs_h2_head *h)
{
    struct dynobs_thread *t = dynobs__thread();
    if (!t || !h->method_len)
        return;
    struct dynobs_h2_stream *x = dynobs__h2_claim(st, h->stream);
    if (!x)
        return;
    x->id = h->stream;
    x->grpc = h->grpc;
    x->status = 0;
    x->grpc_status = -1;
    x->start_ns = dynobs__thread_now();
    memcpy(x->method, h->method, h->method_len);
    x->method[h->method_len] = '\0';

    struct dynobs_ctx remote;
    const struct dynobs_ctx *parent = NULL;
    if (h->tp_count == 1 && h->tp_len)
        parent = dynobs__ctx_from_headers(&remote, h->traceparent, h->tp_len, h->tracestate,
                                          h->ts_len);
    dynobs__conn_facts(c);
    size_t pl = 0;
    while (pl < h->path_len && h->path[pl] != '?' && h->path[pl] != '#')
        pl++;
    size_t hn = dynobs__h2_host_len(h->authority, h->authority_len);
    /* What the rules decide and the route: as for the connection's last
     * stream when method, authority and path repeat (decision_memo.h; a
     * gRPC call is named otherwise, so it keys apart). */
    char mkey[sizeof x->method + 1];
    size_t mkl = h->method_len + (x->grpc ? 1u : 0u);
    memcpy(mkey, x->method, h->method_len);
    mkey[h->method_len] = 'g';
    struct dynobs_memo_key k = {{mkey, mkl}, {hn ? h->authority : NULL, hn}, {h->path, pl}};
    struct dynobs_decision d;
    const struct dynobs_span_policy *pol;
    char name[sizeof x->method + DYNOBS_ROUTE_MAX];
    int recalled = dynobs__memo_recall(&st->memo, &k, &d, &x->route, &pol);
    if (!recalled) {
        struct dynobs_rule_facts f = {.kind = DYNOBS_SPAN_KIND_SERVER,
                                      .method = {x->method, h->method_len},
                                      .url_path = {h->path, pl},
                                      .server_address = {hn ? h->authority : NULL, hn}};
        dynobs__memo_begin(&st->memo);
        dynobs__decide_routes(&d, &f);
        dynobs__server_route(d.r, d.routes, h->path, h->path_len, &x->route);
        span_name(x, h, pl, name, sizeof name);
        f.span_name.p = name;
        f.span_name.n = strlen(name);
        pol = dynobs__decide(&d, &f, 1);
        dynobs__memo_keep(&st->memo, &k, &d, &x->route, pol);
    } else {
        span_name(x, h, pl, name, sizeof name);
    }
    if (x->route.ignored)
        pol = &dynobs__policy_dropped;
    x->uncounted = x->route.ignored || (d.drop & DYNOBS_DROP_METRICS);
    x->rules = d.r;
    x->redact = d.redact;
    struct dynobs_span *s = &x->span;
    if (dynobs__span_begin_ex(s, name, DYNOBS_SPAN_KIND_SERVER, parent, x->start_ns, pol) < 0) {
        __atomic_store_n(&x->state, DYNOBS_H2_FREE, __ATOMIC_RELEASE);
        return;
    }
    if (s->recording) {
        if (x->grpc) {
            dynobs__h2_rpc_attrs(s, h->path, pl);
        } else {
            set_str(s, "http.request.method", x->method, h->method_len);
            set_str(s, "url.path", h->path, pl);
            if (d.redact && pl < h->path_len && h->path[pl] == '?') {
                char q[DYNOBS_QUERY_MAX];
                size_t ql = pl + 1;
                while (ql < h->path_len && h->path[ql] != '#')
                    ql++;
                size_t n = dynobs__redact_query(d.r, d.redact, h->path + pl + 1, ql - pl - 1, q,
                                                sizeof q);
                set_str(s, "url.query", q, n);
            }
            set_str(s, "http.route", x->route.text, x->route.len);
        }
        conn_attrs(c, st, s, h, hn);
    }
    struct dynobs_ctx_carry carry = {0};
    dynobs__serving_begin(t, s, c->blocking, &carry, &x->serving);
    x->served = -1;
    if (parent)
        dynobs__served_add(s, parent, &x->served);
    __atomic_store_n(&x->state, DYNOBS_H2_OPEN, __ATOMIC_RELEASE);
}

/* gRPC status codes that make a server span an error (the semantic
 * conventions for gRPC: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
 * INTERNAL, UNAVAILABLE, DATA_LOSS). */
static int grpc_server_error(int code)
{
    return code == 2 || code == 4 || code == 12 || code == 13 || code == 14 || code == 15;
}

/* http.server.request.duration for a stream: under the connection's
 * last label string and series while method, status and route repeat
 * and nothing failed (the look-up of a series by its labels is most of
 * the metric's cost), else made anew. The kept labels are taken with a
 * compare-and-swap: a stream ended at once on another thread (a reset
 * read while a response is written) makes its own. */
static void server_metric(struct dynobs_conn *c, struct dynobs_segment *seg,
                          const struct dynobs_h2_stream *x, const char *error_type, double secs)
{
    struct dynobs_h2_state *st = c->h2;
    uint32_t free_ = 0;
    int kept = !error_type && __atomic_compare_exchange_n(&st->labels_busy, &free_, 1, 0,
                                                          __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    if (kept && st->labels_code == x->status && !strcmp(st->labels_method, x->method) &&
        !strcmp(st->labels_route, x->route.text)) {
        dynobs__http_server_metric_memo(seg, st->labels, secs, &st->series);
        __atomic_store_n(&st->labels_busy, 0, __ATOMIC_RELEASE);
        return;
    }
    int tls = c->transport == DYNOBS_TRANSPORT_TLS;
    char cs[8] = "";
    if (x->status > 0)
        dynobs__status_text(x->status, cs);
    const char *parts[][2] = {{"http.request.method", x->method},
                              {"http.response.status_code", cs[0] ? cs : NULL},
                              {"url.scheme", tls ? "https" : "http"},
                              {"http.route", x->route.text},
                              {"error.type", error_type}};
    char labels[DYNOBS_METRIC_KEY_BYTES];
    char *out = kept ? st->labels : labels;
    dynobs__labels_join(out, sizeof labels, parts, sizeof parts / sizeof parts[0]);
    if (!kept) {
        dynobs__http_server_metric(seg, labels, secs);
        return;
    }
    st->series.slot = NULL; /* found for the string just replaced */
    st->labels_code = x->status;
    memcpy(st->labels_method, x->method, sizeof st->labels_method);
    memcpy(st->labels_route, x->route.text, sizeof st->labels_route);
    dynobs__http_server_metric_memo(seg, st->labels, secs, &st->series);
    __atomic_store_n(&st->labels_busy, 0, __ATOMIC_RELEASE);
}

static void finish(struct dynobs_conn *c, struct dynobs_h2_stream *x, const char *error_type)
{
    if (!dynobs__h2_finishing(x))
        return;
    struct dynobs_span *s = &x->span;
    struct dynobs_thread *t = dynobs__thread();
    char codestr[8];
    if (x->grpc && x->grpc_status >= 0) {
        dynobs__span_set_int(s, "rpc.grpc.status_code", x->grpc_status);
        if (grpc_server_error(x->grpc_status)) {
            dynobs__span_status(s, DYNOBS_STATUS_ERROR, NULL);
            if (!error_type) {
                struct dynobs_sb b = {codestr, 0, sizeof codestr};
                dynobs__sb_int(&b, x->grpc_status);
                error_type = codestr;
            }
        }
    }
    char http_code[8];
    error_type = dynobs__http_server_outcome(s, x->status, error_type, http_code);
    struct dynobs_segment *seg = t && !x->uncounted ? dynobs__segment() : NULL;
    if (seg) {
        uint64_t now = dynobs__thread_now();
        double secs = now > x->start_ns ? (double)(now - x->start_ns) / 1e9 : 0;
        server_metric(c, seg, x, error_type, secs);
        if (x->grpc)
            dynobs__h2_rpc_metric(1, x->route.text, x->route.len, x->grpc_status, secs);
    }
    dynobs__serving_end(&x->serving, t);
    dynobs__served_remove(&x->served);
    dynobs__redact_span(s, x->rules, x->redact);
    dynobs__span_finish(s);
    __atomic_store_n(&x->state, DYNOBS_H2_FREE, __ATOMIC_RELEASE);
}

/* ---- what the frame readers report ---- */

static void in_end(void *arg, uint32_t stream)
{
    struct dynobs_h2_state *st = arg;
    if (dynobs__h2_opens(st, stream))
        start(st->conn, st, &st->in_head);
}

static void in_reset(void *arg, uint32_t stream, uint32_t code)
{
    struct dynobs_h2_state *st = arg;
    (void)code;
    struct dynobs_h2_stream *x = dynobs__h2_find(st, stream);
    if (x)
        finish(st->conn, x, "stream_reset");
}

static const struct dynobs_h2_events in_events = {.block_begin = dynobs__h2_in_begin,
                                                  .field = dynobs__h2_in_field,
                                                  .block_end = in_end,
                                                  .reset = in_reset};

static void out_end(void *arg, uint32_t stream)
{
    struct dynobs_h2_state *st = arg;
    struct dynobs_h2_stream *x = dynobs__h2_response(st, &st->out_head, stream);
    if (x && st->out_head.end_stream)
        finish(st->conn, x, NULL);
}

static void out_data(void *arg, uint32_t stream, uint32_t len, int end_stream)
{
    struct dynobs_h2_state *st = arg;
    (void)len;
    struct dynobs_h2_stream *x = end_stream ? dynobs__h2_find(st, stream) : NULL;
    if (x)
        finish(st->conn, x, NULL);
}

static void out_reset(void *arg, uint32_t stream, uint32_t code)
{
    struct dynobs_h2_state *st = arg;
    (void)code;
    struct dynobs_h2_stream *x = dynobs__h2_find(st, stream);
    if (x)
        finish(st->conn, x, "stream_reset");
}

static const struct dynobs_h2_events out_events = {.block_begin = dynobs__h2_out_begin,
                                                   .field = dynobs__h2_out_field,
                                                   .block_end = out_end,
                                                   .data = out_data,
                                                   .reset = out_reset};

/* ---- the connection layer's entries ---- */

int dynobs__h2s_init(struct dynobs_conn *c)
{
    struct dynobs_h2_state *st = dynobs__h2_state(c);
    if (!st)
        return -ENOMEM;
    dynobs__h2_init(&st->in, 1);
    dynobs__h2_init(&st->out, 0);
    st->last_stream = 0;
    dynobs__memo_clear(&st->memo);
    st->run.len = 0;
    st->labels_busy = 0;
    st->labels_code = -1;
    st->labels_method[0] = '\0';
    st->labels_route[0] = '\0';
    st->series.slot = NULL;
    return 0;
}

int dynobs__h2s_wants(const struct dynobs_conn *c)
{
    const struct dynobs_h2_state *st = c->h2;
    return st && !st->in.lost && !st->out.lost;
}

/* A direction the reader gave up on: its streams can no longer be
 * followed to their end, and none is guessed. */
static void lost(struct dynobs_conn *c)
{
    dynobs__event_count("dynobs.http2.connections_lost");
    dynobs__h2s_end(c);
}

static void feed(struct dynobs_conn *c, struct dynobs_h2_reader *r,
                 const struct dynobs_h2_events *ev, const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_h2_state *st = c->h2;
    struct dynobs_iov_walk w = {iov, iovcnt, n};
    while (dynobs__iov_next(&w))
        if (dynobs__h2_feed(r, w.p, w.len, ev, st) < 0) {
            lost(c);
            return;
        }
}

void dynobs__h2s_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_h2_state *st = c->h2;
    if (st && !st->in.lost && !st->out.lost)
        feed(c, &st->in, &in_events, iov, iovcnt, n);
}

void dynobs__h2s_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_h2_state *st = c->h2;
    if (st && !st->in.lost && !st->out.lost)
        feed(c, &st->out, &out_events, iov, iovcnt, n);
}

void dynobs__h2s_end(struct dynobs_conn *c)
{
    struct dynobs_h2_state *st = c->h2;
    if (!st)
        return;
    for (unsigned i = 0; i < DYNOBS_H2_STREAMS; i++)
        if (__atomic_load_n(&st->streams[i].state, __ATOMIC_ACQUIRE) == DYNOBS_H2_OPEN)
            finish(c, &st->streams[i], "connection_closed");
}
