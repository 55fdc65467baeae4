/*
 * HTTP/1 from data events: each connection (process, source, socket fd or
 * SSL object) that starts with a request is followed with the shim's own
 * readers (common/http/h1.h). A process that reads the request serves it:
 * a SERVER span from the request's first bytes to its response's last,
 * continuing the traceparent received, and bound to the thread that read
 * it while it is answered. A process that writes the request makes it: a
 * CLIENT span, child of the request its thread serves alone. The same
 * attributes and duration metrics as the shim's; nothing is injected
 * (uprobes cannot add headers). Bytes past a call's first
 * DYNOBS_EBPF_DATA_MAX are counted, not seen: a head that long is given
 * up; a body that long is skipped by its length.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "internal.h"
#include "metrics.h"
#include "tracecontext.h"

#define CONNS_MAX 4096

enum { ROLE_SERVER = 1, ROLE_CLIENT };
enum { ST_IDLE = 0, ST_HEAD, ST_RESPONSE };

struct hconn {
    int pid;
    uint8_t src, role, state;
    uint64_t conn;
    uint64_t start;
    int tid;
    int bound; /* the thread's request while answered (server) */
    struct dynobs_h1_req req;
    struct dynobs_h1_resp resp;
    struct espan span;
    char method[32];
    char route[DYNOBS_ROUTE_MAX];
    char server[256];
    long port;
};

static struct hconn *conns[CONNS_MAX];
static int nconns;


static unsigned hash(int pid, int src, uint64_t conn)
{
    uint64_t h = (conn ^ ((uint64_t)pid << 32) ^ (uint64_t)src) * 0x9e3779b97f4a7c15ull;
    return (unsigned)(h >> 40) % CONNS_MAX;
}

static int find(int pid, int src, uint64_t conn)
{
    unsigned h = hash(pid, src, conn);
    for (unsigned i = 0; i < CONNS_MAX; i++) {
        struct hconn *c = conns[(h + i) % CONNS_MAX];
        if (!c)
            return -1;
        if (c->pid == pid && c->src == src && c->conn == conn)
            return (int)((h + i) % CONNS_MAX);
    }
    return -1;
}

static struct hconn *create(int pid, int src, uint64_t conn, int role)
{
    if (nconns >= CONNS_MAX / 2) {
        EBPF_COUNT(conns_dropped, 1);
        return NULL;
    }
    struct hconn *c = calloc(1, sizeof *c);
    if (!c) {
        EBPF_COUNT(conns_dropped, 1);
        return NULL;
    }
    c->pid = pid;
    c->src = (uint8_t)src;
    c->conn = conn;
    c->role = (uint8_t)role;
    c->req.capture = role == ROLE_SERVER;
    dynobs__h1_req_reset(&c->req);
    unsigned h = hash(pid, src, conn);
    while (conns[h])
        h = (h + 1) % CONNS_MAX;
    conns[h] = c;
    nconns++;
    return c;
}

static void unbind(struct hconn *c)
{
    if (c->bound)
        dynobs__ethread_leave(c->pid, c->tid);
    c->bound = 0;
}

static void remove_at(int i)
{
    struct hconn *c = conns[i];
    unbind(c);
    free(c);
    conns[i] = NULL;
    nconns--;
    for (int j = (i + 1) % CONNS_MAX; conns[j]; j = (j + 1) % CONNS_MAX) {
        struct hconn *m = conns[j];
        conns[j] = NULL;
        unsigned h = hash(m->pid, m->src, m->conn);
        while (conns[h])
            h = (h + 1) % CONNS_MAX;
        conns[h] = m;
    }
}

static void idle(struct hconn *c)
{
    unbind(c);
    c->state = ST_IDLE;
    dynobs__h1_req_reset(&c->req);
}

/* Host header -> server.address and server.port ([v6]:port too). */
static void host_port(const char *host, size_t n, char *out, size_t cap, long *port)
{
    *port = 0;
    const char *end = host + n, *colon = NULL;
    if (n && host[0] == '[') {
        const char *rb = memchr(host, ']', n);
        if (rb) {
            snprintf(out, cap, "%.*s", (int)(rb - host - 1), host + 1);
            if (rb + 1 < end && rb[1] == ':')
                *port = strtol(rb + 2, NULL, 10);
            return;
        }
    }
    colon = memchr(host, ':', n);
    snprintf(out, cap, "%.*s", (int)((colon ? colon : end) - host), host);
    if (colon)
        *port = strtol(colon + 1, NULL, 10);
}

static void addr_text(const struct dynobs_ebpf_ev *e, const __u8 *a, char *out, size_t cap)
{
    out[0] = '\0';
    if (e->flags & DYNOBS_EVF_INET)
        inet_ntop(e->flags & DYNOBS_EVF_INET6 ? AF_INET6 : AF_INET, a, out, (socklen_t)cap);
}

static void status_text(int code, char *out)
{
    snprintf(out, 8, "%d", code % 1000);
}

/* The request head was read (server) or written (client): its span. */
static int head_done(struct eproc *p, struct hconn *c, const struct dynobs_ebpf_ev *e)
{
    struct dynobs_h1_reqline rl;
    dynobs__h1_req_done(&c->req);
    if (dynobs__h1_req_parse(&c->req, &rl) < 0 || rl.method_len >= sizeof c->method)
        return -1;
    memcpy(c->method, rl.method, rl.method_len);
    c->method[rl.method_len] = '\0';
    const char *q = memchr(rl.target, '?', rl.target_len);
    size_t pl = q ? (size_t)(q - rl.target) : rl.target_len;
    int tls = c->src == DYNOBS_SRC_TLS;
    host_port(c->req.host, c->req.host_len, c->server, sizeof c->server, &c->port);
    struct espan *s = &c->span;
    if (c->role == ROLE_SERVER) {
        struct ectx parent, *pp = NULL;
        struct dynobs_traceparent tp;
        if (c->req.has_traceparent && c->req.tp_count == 1 &&
            dynobs__traceparent_parse(c->req.traceparent, c->req.tp_len, &tp) == 0) {
            memcpy(parent.trace_id, tp.trace_id, 16);
            memcpy(parent.span_id, tp.parent_id, 8);
            parent.flags = tp.flags;
            parent.remote = 1;
            pp = &parent;
        }
        size_t rlen = 0;
        if (rl.target_len && rl.target[0] == '/')
            rlen = dynobs__route_fold(&p->trie, rl.target, pl, DYNOBS_ROUTE_F_HEURISTIC,
                                      DYNOBS_ROUTE_VALUES, c->route, sizeof c->route);
        c->route[rlen < sizeof c->route ? rlen : 0] = '\0';
        char name[200];
        snprintf(name, sizeof name, "%s%s%s", c->method, rlen ? " " : "", c->route);
        dynobs__espan_begin(s, DYNOBS_SPAN_KIND_SERVER, name, pp, c->start, c->tid);
        dynobs__espan_str(s, "http.request.method", c->method, rl.method_len);
        dynobs__espan_str(s, "url.path", rl.target, pl);
        dynobs__espan_str(s, "http.route", c->route, rlen);
        dynobs__espan_str(s, "url.scheme", tls ? "https" : "http", tls ? 5 : 4);
        char local[64], peer[64];
        addr_text(e, e->laddr, local, sizeof local);
        addr_text(e, e->raddr, peer, sizeof peer);
        long port = c->port;
        if (*c->server) {
            dynobs__espan_str(s, "server.address", c->server, strlen(c->server));
        } else {
            dynobs__espan_str(s, "server.address", local, strlen(local));
            port = e->lport;
        }
        if (port > 0)
            dynobs__espan_int(s, "server.port", port);
        dynobs__espan_str(s, "client.address", peer, strlen(peer));
        dynobs__espan_str(s, "user_agent.original", c->req.user_agent, c->req.ua_len);
        dynobs__espan_str(s, "network.protocol.version", rl.minor ? "1.1" : "1.0", 3);
        struct ectx mine;
        dynobs__espan_ctx(s, &mine);
        dynobs__ethread_enter(c->pid, c->tid, &mine);
        c->bound = 1;
    } else {
        if (!c->port)
            c->port = tls ? 443 : 80;
        dynobs__espan_begin(s, DYNOBS_SPAN_KIND_CLIENT, c->method,
                            dynobs__ethread_ctx(c->pid, c->tid), c->start, c->tid);
        char url[2048];
        int ul = snprintf(url, sizeof url, "%s://%.*s%.*s", tls ? "https" : "http",
                          (int)c->req.host_len, c->req.host, (int)rl.target_len, rl.target);
        dynobs__espan_str(s, "http.request.method", c->method, rl.method_len);
        dynobs__espan_str(s, "url.full", url, ul < (int)sizeof url ? (size_t)ul : sizeof url - 1);
        dynobs__espan_str(s, "server.address", c->server, strlen(c->server));
        dynobs__espan_int(s, "server.port", c->port);
        dynobs__espan_str(s, "network.protocol.version", rl.minor ? "1.1" : "1.0", 3);
    }
    dynobs__h1_resp_start(&c->resp, !strcmp(c->method, "HEAD"));
    c->state = ST_RESPONSE;
    return 0;
}

/* The response is whole (or the connection closed after it): the span
 * ends, the duration is recorded. */
static void finish(struct eproc *p, struct hconn *c, uint64_t ts)
{
    struct espan *s = &c->span;
    int code = c->resp.code;
    char cs[8] = "", *error_type = NULL;
    if (code > 0) {
        status_text(code, cs);
        dynobs__espan_int(s, "http.response.status_code", code);
    }
    if (code >= 500 || (c->role == ROLE_CLIENT && code >= 400)) {
        error_type = cs;
        dynobs__espan_str(s, "error.type", cs, strlen(cs));
        dynobs__espan_error(s);
    }
    dynobs__espan_end(p, s, ts);
    double secs = ts > c->start ? (double)(ts - c->start) / 1e9 : 0;
    char labels[DYNOBS_METRIC_KEY_BYTES];
    if (c->role == ROLE_SERVER) {
        int tls = c->src == DYNOBS_SRC_TLS;
        const char *parts[][2] = {{"http.request.method", c->method},
                                  {"http.response.status_code", cs},
                                  {"url.scheme", tls ? "https" : "http"},
                                  {"http.route", c->route},
                                  {"error.type", error_type}};
        dynobs__labels_join(labels, sizeof labels, parts, sizeof parts / sizeof parts[0]);
        dynobs__ebpf_histogram(p, "http.server.request.duration", dynobs__http_duration_bounds,
                               DYNOBS_HTTP_DURATION_NBOUNDS, secs, labels);
    } else {
        char port[16];
        snprintf(port, sizeof port, "%ld", c->port);
        const char *parts[][2] = {{"http.request.method", c->method},
                                  {"server.address", c->server},
                                  {"server.port", port},
                                  {"http.response.status_code", cs},
                                  {"error.type", error_type}};
        dynobs__labels_join(labels, sizeof labels, parts, sizeof parts / sizeof parts[0]);
        dynobs__ebpf_histogram(p, "http.client.request.duration", dynobs__http_duration_bounds,
                               DYNOBS_HTTP_DURATION_NBOUNDS, secs, labels);
    }
    idle(c);
}

/* Bytes of the request stream (server: read; client: written). */
static void request_bytes(struct eproc *p, struct hconn *c, const struct dynobs_ebpf_ev *e)
{
    const uint8_t *d = (const uint8_t *)e->data;
    if (c->state == ST_RESPONSE)
        return; /* a body, or a request pipelined: not followed */
    if (c->state == ST_IDLE) {
        if (!e->cap || !dynobs__h1_maybe_request(d, e->cap))
            return;
        c->state = ST_HEAD;
        c->start = e->ts;
        c->tid = (int)e->tid;
    }
    long end = dynobs__h1_req_feed(&c->req, d, e->cap);
    if (end >= 0) {
        if (head_done(p, c, e) < 0)
            idle(c);
    } else if ((e->flags & DYNOBS_EVF_CUT) || c->req.phase == DYNOBS_H1_REQ_OFF) {
        idle(c); /* a head not seen whole, or not HTTP/1 */
    }
}

/* Bytes of the response stream (server: written; client: read). */
static void response_bytes(struct eproc *p, struct hconn *c, const struct dynobs_ebpf_ev *e)
{
    if (c->state != ST_RESPONSE)
        return;
    int r = dynobs__h1_resp_feed(&c->resp, (const uint8_t *)e->data, e->cap);
    if (r == 0 && (uint64_t)e->len > e->cap) {
        if (c->resp.phase < DYNOBS_H1_R_BODY) {
            r = -1; /* its head went past what was copied */
        } else {
            r = dynobs__h1_resp_body(&c->resp, (uint64_t)e->len - e->cap);
        }
    }
    if (r == 1)
        finish(p, c, e->ts);
    else if (r < 0)
        idle(c);
}

void dynobs__http_event(const struct dynobs_ebpf_ev *e, size_t len)
{
    (void)len;
    struct eproc *p = dynobs__eproc((int)e->pid, EPROC_FIND);
    if (!p)
        return;
    int i = find((int)e->pid, e->src, e->conn);
    struct hconn *c = i >= 0 ? conns[i] : NULL;
    if (!c) {
        if (!e->cap || !dynobs__h1_maybe_request((const uint8_t *)e->data, e->cap))
            return;
        c = create((int)e->pid, e->src, e->conn, e->dir ? ROLE_CLIENT : ROLE_SERVER);
        if (!c)
            return;
    }
    int request_side = (c->role == ROLE_SERVER) == (e->dir == 0);
    if (request_side)
        request_bytes(p, c, e);
    else
        response_bytes(p, c, e);
}

void dynobs__http_close(int pid, int src, uint64_t conn, uint64_t ts)
{
    int i = find(pid, src, conn);
    if (i < 0)
        return;
    struct hconn *c = conns[i];
    struct eproc *p = dynobs__eproc(pid, EPROC_FIND);
    /* a body that runs to the close ends there */
    if (p && c->state == ST_RESPONSE && c->resp.phase == DYNOBS_H1_R_UNTIL_CLOSE)
        finish(p, c, ts);
    remove_at(i);
}

void dynobs__http_forget(int pid)
{
    /* removing moves entries up: again until a pass finds none */
    for (int again = 1; again;) {
        again = 0;
        for (int i = 0; i < CONNS_MAX; i++)
            if (conns[i] && conns[i]->pid == pid) {
                remove_at(i);
                again = 1;
            }
    }
}
