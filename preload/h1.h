/*
 * HTTP/1 over a connection (conn.h): the protocol's state, and the
 * entries the connection layer dispatches to.
 *   h1client.c  requests this process sends: a CLIENT span each, our
 *               traceparent added to the header block, the response's
 *               status read back, http.client.request.duration.
 *   h1server.c  requests this process answers: a SERVER span each that
 *               continues the caller's trace, bound as the serving
 *               thread's context, ended when the response is out,
 *               http.server.request.duration.
 * One request is in flight at a time on an HTTP/1 connection; its state
 * (the exchange) is kept apart from the connection's.
 */
#ifndef DYNOBS_PRELOAD_H1_H
#define DYNOBS_PRELOAD_H1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "client_memo.h"
#include "context.h"
#include "decision_memo.h"
#include "httpmetrics.h"
#include "route.h"
#include "span.h"

#include "../common/baggage.h"
#include "../common/http/h1.h"
#include "../common/layout.h"

#define DYNOBS_INJECT_MAX (1200u + DYNOBS_BAGGAGE_MAX + 11u)

/* The pieces of the first `left` bytes of an iovec array, in order:
 *   struct dynobs_iov_walk w = {iov, iovcnt, n};
 *   while (dynobs__iov_next(&w)) ... w.p, w.len ...
 * (Every read and write of a traced stream walks its pieces: the walk is
 * kept to a few registers.) */
struct dynobs_iov_walk {
    const struct iovec *iov;
    int iovcnt;
    size_t left;
    int i;
    const uint8_t *p;
    size_t len;
};

static inline int dynobs__iov_next(struct dynobs_iov_walk *w)
{
    if (w->i >= w->iovcnt || !w->left)
        return 0;
    const struct iovec *v = &w->iov[w->i++];
    w->p = v->iov_base;
    w->len = v->iov_len < w->left ? v->iov_len : w->left;
    w->left -= w->len;
    return 1;
}

struct dynobs_conn;
struct dynobs_insert;

/* ---- client ---- */

/* The request a client has in flight. */
struct dynobs_h1c_exchange {
    uint8_t open; /* its span started: waiting for the response */
    uint64_t start_ns;
    char method[24];
    char server_address[DYNOBS_H1_HOST_MAX];
    int server_port;
    struct dynobs_h1_status status; /* the response, as it is read */
    uint8_t uncounted;              /* a filter drops its metrics */
    /* The redaction rule its span takes at its end (policy.h). */
    const struct dynobs_rules *rules;
    const struct dynobs_rule_redact *redact;
    struct dynobs_span span;
};

/* A client connection's last request head as written, when it was one
 * write fed from an idle reader: the reader's state before and after it
 * (its fixed part, and the buffers that a client's reader fills), and
 * where our lines went. A write that repeats it byte for byte from the
 * same state leaves the reader in the same state (h1client.c). */
#define DYNOBS_H1C_HEAD_MAX 1024u
struct dynobs_h1c_head_memo {
    uint16_t len; /* bytes of the write; 0: nothing kept */
    int32_t k;
    uint8_t from[offsetof(struct dynobs_h1_req, reqline)];
    uint8_t to[offsetof(struct dynobs_h1_req, reqline)];
    char reqline[DYNOBS_H1_REQLINE_MAX];
    char host[DYNOBS_H1_HOST_MAX];
    char tp[DYNOBS_H1_TP_MAX];
    uint8_t bytes[DYNOBS_H1C_HEAD_MAX];
};

/* A client connection's last request line and Host header, and what they
 * gave (h1client.c): the same for the next request that repeats both. */
struct dynobs_h1c_memo {
    struct dynobs_h1c_head_memo head;
    uint16_t line_len, host_len; /* line_len 0: nothing kept */
    uint8_t ml;                  /* bytes of the method */
    uint8_t from_head;           /* line and host are those of head's request */
    int labels_code;             /* the status labels was made for; -1: none */
    char line[DYNOBS_H1_REQLINE_MAX];
    char host[DYNOBS_H1_HOST_MAX];
    struct dynobs_client_decision decision;
    struct dynobs_attr_block attrs; /* http.request.method .. network.protocol.version */
    char labels[DYNOBS_METRIC_KEY_BYTES];
    struct dynobs_series_memo series; /* the series labels went to; emptied with it */
};

/* A client span's http.response.status_code, as encoded for the
 * connection's last exchange: the same item while the code repeats. */
struct dynobs_h1c_code {
    uint16_t len; /* bytes of item; 0: nothing kept */
    int code;
    uint8_t item[64];
};

struct dynobs_h1c {
    struct dynobs_h1_req head;    /* the request head, as it goes out */
    struct dynobs_h1_req planned; /* head, as of our lines' position */
    int64_t inj_at;               /* application bytes until our lines go; -1: none */
    /* Exchanges finished (atomic), and that count when our lines were
     * planned: a client that reads the response on another thread can
     * finish the exchange before the writing thread has accounted for the
     * write that carried our lines. */
    uint32_t done_gen, plan_gen;
    uint16_t inj_len, inj_sent;
    char inj[DYNOBS_INJECT_MAX];
    struct dynobs_h1c_memo memo;
    struct dynobs_h1c_code code;
    struct dynobs_h1c_exchange x;
};

static inline int dynobs__h1c_wants_out(const struct dynobs_h1c *h)
{
    return h->head.phase < DYNOBS_H1_REQ_BODY || h->inj_at >= 0;
}

static inline int dynobs__h1c_wants_in(const struct dynobs_h1c *h)
{
    return h->x.open && h->x.status.phase != DYNOBS_H1_ST_NONE;
}

void dynobs__h1c_init(struct dynobs_conn *c) DYNOBS_INTERNAL;
long dynobs__h1c_plan(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                      struct dynobs_insert *ins) DYNOBS_INTERNAL;
void dynobs__h1c_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n,
                     long ours) DYNOBS_INTERNAL;
void dynobs__h1c_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                    size_t n) DYNOBS_INTERNAL;
void dynobs__h1c_end(struct dynobs_conn *c, const char *error_type) DYNOBS_INTERNAL;

/* ---- server ---- */

/* The request a server is answering. */
struct dynobs_h1s_exchange {
    uint8_t open; /* its span started: the response is being written */

    uint64_t start_ns;
    char method[24];
    struct dynobs_route route;  /* http.route, and whether the request is ignored */
    uint8_t uncounted;          /* ignored, or a filter drops its metrics */
    /* The redaction rule its span takes at its end (policy.h). */
    const struct dynobs_rules *rules;
    const struct dynobs_rule_redact *redact;
    struct dynobs_h1_resp resp; /* the response, as it goes out */
    struct dynobs_serving serving;
    uint16_t bag_len;  /* bytes of bag: the request's baggage, normalised */
    uint32_t bag_gen;  /* bumped when a request ends (atomic): contexts that
                        * point at bag check it */
    struct dynobs_span span;
    char bag[DYNOBS_BAGGAGE_MAX]; /* last: not cleared with the rest */
};

/* A served span's attributes from url.scheme to network.protocol.version,
 * as encoded for the connection's last request: the same while its Host
 * and User-Agent headers and HTTP version repeat (the rest is the
 * connection's), so they are copied whole (h1server.c). */
#define DYNOBS_H1S_RUN_MAX 384u
struct dynobs_h1s_run {
    uint16_t len;         /* bytes of items; 0: nothing kept */
    uint8_t count, minor; /* attributes in items; the HTTP version's */
    uint16_t hn, ual;     /* bytes of host and user agent at the start of key */
    uint32_t value_limit; /* the attribute value limit the items were cut to */
    char key[DYNOBS_H1_HOST_MAX + DYNOBS_H1_UA_MAX];
    uint8_t items[DYNOBS_H1S_RUN_MAX];
};

/* The same span's first attributes, http.request.method, url.path and
 * http.route, as encoded for the request the connection's decision memo
 * holds (decision_memo.h): the same on the next request the memo gives
 * its decision to, unless a query string is recorded between them. */
#define DYNOBS_H1S_HEAD_MAX 512u
struct dynobs_h1s_head {
    uint16_t len;         /* bytes of items; 0: nothing kept */
    uint8_t count;        /* attributes in items */
    uint32_t value_limit; /* the attribute value limit the items were cut to */
    uint8_t items[DYNOBS_H1S_HEAD_MAX];
};

/* The span's http.response.status_code, as encoded for the connection's
 * last request that did not fail: the same item while the code repeats
 * (h1server.c). */
struct dynobs_h1s_status {
    uint16_t len; /* bytes of item; 0: nothing kept */
    int code;
    uint8_t item[64];
};

/* The parts of the request line and Host that a served request's start
 * splits (h1server.c), kept for the head the connection's request memo
 * holds: while that head repeats (its memo says so), they are the same,
 * and so is the span name made of the method and the route the decision
 * memo gives back. */
enum { DYNOBS_H1S_POL_NONE, DYNOBS_H1S_POL_OWN, DYNOBS_H1S_POL_DROPPED };
struct dynobs_h1s_line {
    uint8_t ok;    /* kept for the request memo's head; 0: none */
    uint8_t named; /* name: for the decision memo's route, as recalled */
    uint8_t decided; /* d and pol: what the decision memo gave back for it */
    uint8_t pol;     /* DYNOBS_H1S_POL_* */
    uint8_t minor;
    uint16_t ml, pl, hn; /* method, path (the target to ? or #), Host to its port */
    uint16_t target, target_len; /* in the head's request line */
    char name[24 + DYNOBS_ROUTE_MAX];
    struct dynobs_decision d;
};

/* The connection's last span, left in x.span when it ended: while ok, its
 * body holds what start gave it (k: the name, the tracestate and the
 * attributes), then the item of status code `code` (code_len bytes): the
 * body of a request with the head the request memo holds (line.ok) under
 * the decision kept with the line (line.decided), which is then begun
 * with that body as it is and, when its code is the same, ended as the
 * template of the last (h1server.c). */
struct dynobs_h1s_kept {
    uint8_t ok;
    uint16_t code_len;
    int code;
    struct dynobs_span_kept k; /* also, while a span is open: what its start gave it */
};

/* In the order a repeated request (keep-alive, the same head) touches
 * its members, the ones it does not touch last: what it reads and writes
 * is one run of lines, on one or two pages, where the same members in
 * their natural order were spread over five. The exchange's span comes
 * last of the first run: its header and record begin it, its body (as
 * far as used) and buffers follow. head is after it: its state is its
 * first line, its buffers the rest. */
struct dynobs_h1s {
    /* The short path of a read (dynobs__h1s_in_short) is open: the last
     * request was begun as a repeat (the kept decision and body) and
     * carried no traceparent, baggage or correlation header, so one whose
     * head is the request memo's again is begun the same way unread. */
    uint8_t short_ok;
    uint8_t short_on; /* the short paths may be taken (DYNOBS_SHORT_PATH) */
    /* The last request and response heads, read once while they repeat
     * (keep-alive: h1.h's memos). */
    struct dynobs_h1_req_memo req_memo;
    struct dynobs_h1_resp_memo resp_memo;
    struct dynobs_h1s_line line;
    struct dynobs_h1s_kept kept;
    /* The duration metric's labels of the last request that did not fail,
     * kept while method, route and status repeat (keep-alive). */
    int labels_code;
    /* x's method and route are still those labels_method and labels_route
     * hold (start clears it: only it writes them), so that a repeat
     * compares neither. */
    uint8_t labels_fresh;
    char labels_method[24];
    char labels_route[DYNOBS_ROUTE_MAX];
    struct dynobs_series_memo series; /* the series `labels` went to; emptied with it */
    struct dynobs_decision_memo memo; /* the rules' decision and route of the last request */
    struct dynobs_h1s_status status;
    /* The last span body, a template while it repeats (span.h). */
    struct dynobs_span_tmpl tmpl;
    struct dynobs_h1s_exchange x;
    struct dynobs_h1_req head; /* the request head, as it is read */
    char labels[DYNOBS_METRIC_KEY_BYTES];
    struct dynobs_h1s_run run;
    struct dynobs_h1s_head first;
};

static inline int dynobs__h1s_wants_out(const struct dynobs_h1s *h)
{
    return h->x.open;
}

static inline int dynobs__h1s_wants_in(const struct dynobs_h1s *h)
{
    return h->head.phase < DYNOBS_H1_REQ_BODY || h->x.open;
}

void dynobs__h1s_init(struct dynobs_conn *c) DYNOBS_INTERNAL;
void dynobs__h1s_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                    size_t n) DYNOBS_INTERNAL;
/* A read of n bytes at p, all of them, that begins a request the short
 * way when the connection's last request opened it (short_ok) and the
 * bytes begin with the memo's head whole, under the same rules: 1 when it did
 * (errno as it was), 0 when it did nothing (the read goes to
 * dynobs__h1s_in). */
int dynobs__h1s_in_short(struct dynobs_conn *c, const uint8_t *p, size_t n) DYNOBS_INTERNAL;
void dynobs__h1s_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                     size_t n) DYNOBS_INTERNAL;
/* A write of n bytes of iov that the response's short way takes whole
 * when its first piece begins with the response memo's head, written
 * from the response's start: 1 when it did (errno as it was), 0 when it
 * did nothing (the write goes to dynobs__h1s_out). */
int dynobs__h1s_out_short(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                          size_t n) DYNOBS_INTERNAL;
void dynobs__h1s_unseen_out(struct dynobs_conn *c, size_t n) DYNOBS_INTERNAL;
void dynobs__h1s_end(struct dynobs_conn *c) DYNOBS_INTERNAL;

#endif
