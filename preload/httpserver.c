/*
 * HTTP/1 servers: each request read on an accepted connection gets a
 * SERVER span that continues the caller's trace (W3C traceparent and
 * tracestate), ending when the response has been written in full
 * (status line, headers, then Content-Length bytes or the chunked end),
 * or when the connection closes.
 *
 * On a blocking socket, the thread that read the request is the one that
 * serves it (thread-per-connection, fork-per-connection and single-
 * threaded blocking servers), so the request's span becomes that thread's
 * current context until the response is out: outbound calls made while
 * serving it are its children. On a non-blocking socket (event loops such
 * as nginx) the reading thread moves on to other connections, so no
 * context is pushed there: the spans and metrics are still exact per
 * request, but propagation needs the application's own help.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "httpclient.h"

#include "../common/metrics.h"

/* The server sets each attribute of its span once: no replacement scan. */
#define ADD(s, key, type, v, n) dynobs__span_add(s, key, sizeof key - 1, type, v, n)
#define set_str(s, key, v, n) ((n) ? ADD(s, key, DYNOBS_ATTR_STRING, v, n) : 0)

static void addr_of(int fd, int peer, char *out, size_t cap, int *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    out[0] = '\0';
    *port = 0;
    if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
              : getsockname(fd, (struct sockaddr *)&ss, &sl)) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)cap);
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
}

/* What a connection's socket is (addresses, blocking or not), looked up
 * at its first request only: keep-alive requests cost no system call. */
static void sock_info(struct dynobs_conn *c, int fd)
{
    if (c->blocking_known)
        return;
    int port;
    addr_of(fd, 0, c->server_address, sizeof c->server_address, &c->server_port);
    addr_of(fd, 1, c->peer_address, sizeof c->peer_address, &port);
    int fl = fcntl(fd, F_GETFL);
    c->blocking = fl >= 0 && !(fl & O_NONBLOCK);
    c->blocking_known = 1;
}

static void start(struct dynobs_conn *c, int fd)
{
    struct dynobs_thread *t = dynobs__thread();
    struct dynobs_h1_reqline r;
    if (!t || dynobs__h1_req_parse(&c->out, &r) < 0)
        return;
    size_t ml = r.method_len < sizeof c->method - 1 ? r.method_len : sizeof c->method - 1;
    memcpy(c->method, r.method, ml);
    c->method[ml] = '\0';

    /* W3C: a valid, single traceparent continues the trace; anything else
     * starts a new one. tracestate travels only with a valid traceparent,
     * and an invalid tracestate is dropped whole. */
    struct dynobs_ctx remote;
    const struct dynobs_ctx *parent = NULL;
    struct dynobs_traceparent tp;
    if (c->out.has_traceparent && c->out.tp_count == 1 &&
        dynobs__traceparent_parse(c->out.traceparent, c->out.tp_len, &tp) == 0) {
        dynobs__ctx_remote(&remote, &tp);
        if (c->out.has_tracestate) {
            int n = dynobs__tracestate_parse(c->out.tracestate, c->out.ts_len, remote.tracestate,
                                             sizeof remote.tracestate);
            remote.ts_len = (uint16_t)(n > 0 ? n : 0);
        }
        parent = &remote;
    }
    if (dynobs__span_begin(&c->span, c->method, DYNOBS_SPAN_KIND_SERVER, parent,
                           c->req_start_ns) < 0)
        return;
    c->srv_open = 1;
    dynobs__h1_resp_start(&c->resp, ml == 4 && !memcmp(c->method, "HEAD", 4));
    struct dynobs_span *s = &c->span;
    if (s->recording) {
        size_t pl = 0;
        while (pl < r.target_len && r.target[pl] != '?' && r.target[pl] != '#')
            pl++;
        set_str(s, "http.request.method", c->method, ml);
        set_str(s, "url.path", r.target, pl);
        ADD(s, "url.scheme", DYNOBS_ATTR_STRING, c->tls ? "https" : "http", c->tls ? 5u : 4u);
        const char *h = c->out.host;
        size_t hl = c->out.host_len, hn = hl;
        const char *colon = memchr(h, ':', hl);
        if (colon && h[0] != '[')
            hn = (size_t)(colon - h);
        sock_info(c, fd);
        if (hn)
            set_str(s, "server.address", h, hn);
        else
            set_str(s, "server.address", c->server_address, strlen(c->server_address));
        int64_t port = c->server_port;
        if (port)
            ADD(s, "server.port", DYNOBS_ATTR_INT, &port, 8);
        set_str(s, "client.address", c->peer_address, strlen(c->peer_address));
        set_str(s, "user_agent.original", c->out.user_agent, c->out.ua_len);
        set_str(s, "network.protocol.version", r.minor ? "1.1" : "1.0", 3);
    }
    /* The request's span is this thread's context while it serves it, if
     * the socket is blocking (see the top of the file). */
    sock_info(c, fd);
    c->pushed = 0;
    if (c->blocking) {
        struct dynobs_ctx *x = dynobs__ctx_push(t);
        if (x) {
            memcpy(x->trace_id, s->rec.trace_id, 16);
            memcpy(x->span_id, s->rec.span_id, 8);
            x->flags = s->rec.trace_flags;
            x->remote = 0;
            x->span = NULL;
            x->span_gen = 0;
            x->ts_len = s->rec.tracestate_len;
            if (x->ts_len)
                memcpy(x->tracestate, (const char *)s->body + s->rec.name_len, x->ts_len);
            dynobs__ctx_publish(x);
            c->ctx_owner = t;
            c->ctx_idx = (int)(x - t->stack);
            c->pushed = 1;
        }
    }
}

static void finish(struct dynobs_conn *c, int code, const char *error_type)
{
    struct dynobs_span *s = &c->span;
    struct dynobs_thread *t = dynobs__thread();
    char codestr[8];
    if (code >= 500 && !error_type) {
        dynobs__status_text(code, codestr);
        error_type = codestr;
    }
    int64_t status = code;
    if (code > 0)
        ADD(s, "http.response.status_code", DYNOBS_ATTR_INT, &status, 8);
    if (error_type) {
        set_str(s, "error.type", error_type, strlen(error_type));
        dynobs__span_status(s, DYNOBS_STATUS_ERROR, NULL);
    }
    struct dynobs_segment *seg = dynobs__segment();
    if (seg && t) {
        uint64_t now = dynobs__clock_now(&t->clk);
        char failed[DYNOBS_METRIC_KEY_BYTES];
        const char *labels = c->labels;
        if (error_type || code != c->labels_code || strcmp(c->method, c->labels_method)) {
            const char *parts[][2] = {{"http.request.method", c->method},
                                      {"http.response.status_code", NULL},
                                      {"url.scheme", c->tls ? "https" : "http"},
                                      {"error.type", error_type}};
            char cs[8] = "";
            if (code > 0) {
                dynobs__status_text(code, cs);
                parts[1][1] = cs;
            }
            char *out = error_type ? failed : c->labels;
            dynobs__labels_join(out, sizeof failed, parts, sizeof parts / sizeof parts[0]);
            if (!error_type) {
                c->labels_code = code;
                memcpy(c->labels_method, c->method, sizeof c->method);
            }
            labels = out;
        }
        double secs = now > c->req_start_ns ? (double)(now - c->req_start_ns) / 1e9 : 0;
        dynobs__duration_record(seg, "http.server.request.duration", dynobs__http_duration_bounds,
                                DYNOBS_HTTP_DURATION_NBOUNDS, secs, labels);
    }
    if (c->pushed) {
        /* Give the thread its previous context back (lazily, if another
         * thread wrote the response). */
        struct dynobs_ctx *x = &c->ctx_owner->stack[c->ctx_idx];
        if (!memcmp(x->span_id, s->rec.span_id, 8))
            __atomic_store_n(&x->ended, 1, __ATOMIC_RELEASE);
        if (c->ctx_owner == t)
            dynobs__ctx_pop_ended(t);
        c->pushed = 0;
    }
    dynobs__span_finish(s);
    c->srv_open = 0;
    c->req_start_ns = 0;
    dynobs__h1_req_reset(&c->out);
}

void dynobs__srv_in(struct dynobs_conn *c, int fd, const struct iovec *iov, int iovcnt, size_t n)
{
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < n && c->out.phase < DYNOBS_H1_REQ_BODY; i++) {
        size_t len = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
        if (c->out.phase == DYNOBS_H1_REQ_IDLE && !c->req_start_ns && len) {
            struct dynobs_thread *t = dynobs__thread();
            c->req_start_ns = t ? dynobs__clock_now(&t->clk) : 0;
        }
        long k = dynobs__h1_req_feed(&c->out, iov[i].iov_base, len);
        if (k >= 0) {
            dynobs__h1_req_done(&c->out);
            if (!c->srv_open)
                start(c, fd);
        }
        done += len;
    }
}

void dynobs__srv_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < n && c->srv_open; i++) {
        size_t len = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
        int rc = dynobs__h1_resp_feed(&c->resp, iov[i].iov_base, len);
        if (rc == 1)
            finish(c, c->resp.code, NULL);
        else if (rc < 0) {
            finish(c, 0, "malformed_response");
            c->out.phase = DYNOBS_H1_REQ_OFF; /* not an HTTP/1 server after all */
        }
        done += len;
    }
}

void dynobs__srv_sent(struct dynobs_conn *c, size_t n)
{
    if (c->srv_open && dynobs__h1_resp_body(&c->resp, n) == 1)
        finish(c, c->resp.code, NULL);
}

void dynobs__srv_close(struct dynobs_conn *c)
{
    if (!c->srv_open)
        return;
    /* A body without a length ends with the connection: a complete
     * response. Anything else was cut short. */
    if (c->resp.phase == DYNOBS_H1_R_UNTIL_CLOSE)
        finish(c, c->resp.code, NULL);
    else
        finish(c, c->resp.code, "connection_closed");
}
