/*
 * HTTP/1 requests this process answers (see h1.h): each request read on
 * an accepted stream gets a SERVER span that continues the caller's trace
 * (W3C traceparent and tracestate), ending when the response has been
 * written in full (status line, headers, then Content-Length bytes or the
 * chunked end), or when the stream closes.
 *
 * On a blocking socket, the thread that read the request is the one that
 * serves it (thread-per-connection, fork-per-connection and single-
 * threaded blocking servers), so the request is bound as that thread's
 * context (context.c) until the response is out: outbound calls made
 * while serving it are its children. On a non-blocking socket the same
 * holds for a thread that serves one request at a time (a thread per
 * connection that waits with poll, PHP's built-in server); a thread that
 * multiplexes requests (an event loop: epoll, or two requests in flight)
 * binds none, as no syscall tells which request its next callback serves
 * (context.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "conn.h"
#include "decision_memo.h"
#include "httpmetrics.h"
#include "policy.h"
#include "redact.h"
#include "rulesmap.h"
#include "shortbytes.h"

#include "../common/http/h1_scan.h"
#include "../common/metrics.h"

/* The server sets each attribute of its span once: no replacement scan. */
#define ADD(s, key, type, v, n) dynobs__span_add(s, key, sizeof key - 1, type, v, n)
#define set_str(s, key, v, n) ((n) ? ADD(s, key, DYNOBS_ATTR_STRING, v, n) : 0)

/* The request's correlation headers (config.h): recorded on its span as
 * http.request.header.<name>, and kept as the lines its outbound calls
 * send (out, corr_mask). A header sent twice, or too long to keep whole,
 * is neither. Returns the lines' length. */
static DYNOBS_COLD size_t correlation(struct dynobs_h1s *h, struct dynobs_span *s, int record,
                                      char *out, size_t cap, uint8_t *mask)
{
    const struct dynobs_h1_req *r = &h->head;
    size_t n = 0;
    *mask = 0;
    for (int i = 0; i < dynobs__config.ncorr; i++) {
        uint8_t bit = (uint8_t)(16u << i);
        size_t vl = r->corr_len[i];
        if (!(r->corr_seen & bit) || ((r->corr_dup | r->corr_cut) & bit) || !vl)
            continue;
        const char *name = dynobs__config.corr_names[i];
        size_t nl = dynobs__config.corr_lens[i];
        if (record && s->recording && dynobs__redact_header_ok(h->x.rules, h->x.redact, name, nl)) {
            char key[20 + DYNOBS_CORR_NAME_MAX];
            memcpy(key, "http.request.header.", 20);
            memcpy(key + 20, name, nl);
            dynobs__span_add(s, key, 20 + nl, DYNOBS_ATTR_STRING, r->corr_val[i], vl);
        }
        if (n + nl + vl + 4 > cap)
            continue;
        memcpy(out + n, name, nl);
        memcpy(out + n + nl, ": ", 2);
        memcpy(out + n + nl + 2, r->corr_val[i], vl);
        memcpy(out + n + nl + 2 + vl, "\r\n", 2);
        n += nl + vl + 4;
        *mask |= (uint8_t)(1u << i);
    }
    return n;
}

/* What the rules decide for a request (policy.h), its route and its span
 * name: the route first, as it names the span that the other sections
 * may match on. Returns the policy to begin the span with. */
static const struct dynobs_span_policy *decide(struct dynobs_conn *c,
                                               const struct dynobs_h1_reqline *r,
                                               const struct dynobs_memo_key *k,
                                               struct dynobs_decision *d, char *name)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_h1s_exchange *x = &h->x;
    int tls = c->transport == DYNOBS_TRANSPORT_TLS;
    struct dynobs_rule_facts f = {.kind = DYNOBS_SPAN_KIND_SERVER,
                                  .method = k->method,
                                  .url_path = k->path,
                                  .server_address = k->host};
    dynobs__decide_routes(d, &f);
    /* The span is named "METHOD ROUTE" (semantic conventions), or the
     * method alone for a target that is no path. (x->route is written
     * here and by the memo's recall below, both under start, which has
     * cleared labels_fresh: a writer of it elsewhere must clear it too.) */
    dynobs__server_route(d->r, d->routes, r->target, r->target_len, &x->route);
    dynobs__server_span_name(name, x->method, k->method.n, &x->route);
    f.span_name.p = name;
    f.span_name.n = strlen(name);
    /* Attribute conditions see what the span starts with (gathered only
     * when the rules in force have any). */
    struct dynobs_fact_attrs fa;
    if (d->r && d->r->nconds) {
        fa.n = 0;
        dynobs__fact_attr(&fa, "http.request.method", x->method, k->method.n);
        dynobs__fact_attr(&fa, "url.path", k->path.p, k->path.n);
        dynobs__fact_attr(&fa, "http.route", x->route.text, x->route.len);
        dynobs__fact_attr(&fa, "url.scheme", tls ? "https" : "http", tls ? 5u : 4u);
        dynobs__fact_attr(&fa, "server.address", k->host.p, k->host.n);
        dynobs__fact_attr(&fa, "client.address", c->peer_address, strlen(c->peer_address));
        dynobs__fact_attr(&fa, "user_agent.original", h->head.user_agent, h->head.ua_len);
        dynobs__fact_attr(&fa, "network.protocol.version", r->minor ? "1.1" : "1.0", 3);
        dynobs__facts_with_attrs(&f, &fa);
    }
    return dynobs__decide(d, &f, 1);
}

/* The attributes of a served span from url.scheme to
 * network.protocol.version: encoded once and then copied whole while
 * the request's Host, User-Agent and version are the last request's
 * (struct dynobs_h1s_run). A run that was cut or dropped from is not
 * kept: the next request adds its attributes one by one again. */
static void conn_attrs(struct dynobs_conn *c, struct dynobs_span *s, const char *host,
                       size_t hn, int minor)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_h1s_run *m = &h->run;
    const char *ua = h->head.user_agent;
    size_t ual = h->head.ua_len;
    if (m->len && m->hn == hn && m->ual == ual && m->minor == (minor != 0) &&
        m->value_limit == dynobs__config.attr_value_limit && dynobs__same_bytes(m->key, host, hn) &&
        dynobs__same_bytes(m->key + hn, ua, ual) &&
        !dynobs__span_add_items(s, m->items, m->len, m->count))
        return;
    uint32_t used = s->used;
    uint16_t attrs = s->attrs;
    uint8_t cut = s->truncated;
    int tls = c->transport == DYNOBS_TRANSPORT_TLS;
    ADD(s, "url.scheme", DYNOBS_ATTR_STRING, tls ? "https" : "http", tls ? 5u : 4u);
    if (hn)
        set_str(s, "server.address", host, hn);
    else
        set_str(s, "server.address", c->local_address, strlen(c->local_address));
    int64_t port = c->local_port;
    if (port)
        ADD(s, "server.port", DYNOBS_ATTR_INT, &port, 8);
    set_str(s, "client.address", c->peer_address, strlen(c->peer_address));
    set_str(s, "user_agent.original", ua, ual);
    set_str(s, "network.protocol.version", minor ? "1.1" : "1.0", 3);
    size_t n = s->used - used;
    m->len = 0;
    if (cut || s->truncated || n > sizeof m->items || hn + ual > sizeof m->key)
        return;
    memcpy(m->key, host, hn);
    memcpy(m->key + hn, ua, ual);
    memcpy(m->items, s->body + used, n);
    m->hn = (uint16_t)hn;
    m->ual = (uint16_t)ual;
    m->minor = minor != 0;
    m->count = (uint8_t)(s->attrs - attrs);
    m->value_limit = dynobs__config.attr_value_limit;
    m->len = (uint16_t)n;
}

/* The decision the memo gave back for the line's head, kept with it
 * (struct dynobs_h1s_line), with which policy it was: its own, the
 * dropped one or none (any other is not kept). */
static void keep_decision(struct dynobs_h1s_line *ln, const struct dynobs_decision *d,
                          const struct dynobs_span_policy *pol)
{
    ln->decided = 0;
    if (pol && pol != &d->pol && pol != &dynobs__policy_dropped)
        return;
    ln->d = *d;
    /* (its own policy's sampler is its own) */
    if (d->pol.sampler == &d->sampler)
        ln->d.pol.sampler = &ln->d.sampler;
    ln->pol = pol == &d->pol ? DYNOBS_H1S_POL_OWN : pol ? DYNOBS_H1S_POL_DROPPED : DYNOBS_H1S_POL_NONE;
    ln->decided = 1;
}

/* The request line and Host of a head the line does not hold yet, split
 * and kept with it (struct dynobs_h1s_line); -1 for a line that is none. */
static DYNOBS_COLD int split_line(struct dynobs_h1s *h)
{
    struct dynobs_h1s_line *ln = &h->line;
    struct dynobs_h1_reqline r;
    if (dynobs__h1_req_parse(&h->head, &r) < 0)
        return -1;
    size_t ml = r.method_len < sizeof h->x.method - 1 ? r.method_len : sizeof h->x.method - 1;
    size_t hn = h->head.host_len;
    size_t colon = dynobs__h1_find2((const uint8_t *)h->head.host, 0, hn, ':', ':');
    if (colon < hn && h->head.host[0] != '[')
        hn = colon;
    ln->ml = (uint16_t)ml;
    ln->pl = (uint16_t)dynobs__h1_find2((const uint8_t *)r.target, 0, r.target_len, '?', '#');
    ln->hn = (uint16_t)hn;
    ln->target = (uint16_t)(r.target - h->head.reqline);
    ln->target_len = (uint16_t)r.target_len;
    ln->minor = (uint8_t)r.minor;
    ln->named = 0;
    ln->decided = 0;
    ln->ok = 1;
    return 0;
}

/* The decision and route of a request whose line has none kept: the
 * decision memo's, or the rules' (then kept in the memo). Sets *d, the
 * span name and *recalled; returns the policy. */
static DYNOBS_COLD const struct dynobs_span_policy *
decide_line(struct dynobs_conn *c, const struct dynobs_h1_reqline *r, struct dynobs_decision *d,
            int *recalled)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_h1s_line *ln = &h->line;
    struct dynobs_h1s_exchange *x = &h->x;
    const struct dynobs_span_policy *pol;
    struct dynobs_memo_key k = {{x->method, ln->ml},
                                {ln->hn ? h->head.host : NULL, ln->hn},
                                {r->target, ln->pl}};
    *recalled = dynobs__memo_recall(&h->memo, &k, d, &x->route, &pol);
    if (*recalled) {
        if (!ln->named)
            dynobs__server_span_name(ln->name, x->method, ln->ml, &x->route);
        ln->named = 1;
        keep_decision(ln, d, pol);
        return pol;
    }
    ln->named = 0;
    ln->decided = 0;
    dynobs__memo_begin(&h->memo);
    pol = decide(c, r, &k, d, ln->name);
    dynobs__memo_keep(&h->memo, &k, d, &x->route, pol);
    /* The first attributes kept belong to another request now. */
    h->first.len = 0;
    return pol;
}

/* The attributes a span's start gives it, one by one or from the blocks
 * kept while they repeat (struct dynobs_h1s_head, struct dynobs_h1s_run). */
static DYNOBS_COLD void start_attrs(struct dynobs_conn *c, struct dynobs_span *s,
                                    const struct dynobs_decision *d,
                                    const struct dynobs_h1_reqline *r, int recalled)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_h1s_exchange *x = &h->x;
    size_t ml = h->line.ml, pl = h->line.pl;
    int query = d->redact && pl < r->target_len && r->target[pl] == '?';
    struct dynobs_h1s_head *f = &h->first;
    if (!recalled || query || !f->len || f->value_limit != dynobs__config.attr_value_limit ||
        dynobs__span_add_items(s, f->items, f->len, f->count)) {
        uint32_t used = s->used;
        uint16_t attrs = s->attrs;
        uint8_t cut = s->truncated;
        set_str(s, "http.request.method", x->method, ml);
        set_str(s, "url.path", r->target, pl);
        if (query) {
            char q[DYNOBS_QUERY_MAX];
            size_t ql = pl + 1;
            while (ql < r->target_len && r->target[ql] != '#')
                ql++;
            size_t n = dynobs__redact_query(d->r, d->redact, r->target + pl + 1, ql - pl - 1, q,
                                            sizeof q);
            set_str(s, "url.query", q, n);
        }
        set_str(s, "http.route", x->route.text, x->route.len);
        /* Kept for the next request the memo decides, when it is a copy
         * of these items and nothing else. */
        size_t n = s->used - used;
        if (!query && !cut && !s->truncated && n <= sizeof f->items && h->memo.p) {
            memcpy(f->items, s->body + used, n);
            f->count = (uint8_t)(s->attrs - attrs);
            f->value_limit = dynobs__config.attr_value_limit;
            f->len = (uint16_t)n;
        }
    }
    conn_attrs(c, s, h->head.host, h->line.hn, r->minor);
}

/* W3C baggage: carried on, normalised (a malformed list is dropped
 * whole); only the keys the operator named are recorded, unless the
 * span's body is kept (they are in it). */
static DYNOBS_COLD void baggage(struct dynobs_h1s *h, struct dynobs_span *s, int again)
{
    struct dynobs_h1s_exchange *x = &h->x;
    int n = dynobs__baggage_normalize(h->head.baggage, h->head.bag_len, x->bag, sizeof x->bag);
    x->bag_len = (uint16_t)(n > 0 ? n : 0);
    for (int i = 0; x->bag_len && s->recording && !again && i < dynobs__config.nbag_keys; i++) {
        size_t vl;
        const char *v = dynobs__baggage_find(x->bag, x->bag_len, dynobs__config.bag_keys[i],
                                             dynobs__config.bag_key_lens[i], &vl);
        if (v && vl)
            dynobs__span_add(s, dynobs__config.bag_keys[i], dynobs__config.bag_key_lens[i],
                             DYNOBS_ATTR_STRING, v, vl);
    }
}

/* The policy kept with the line's decision (keep_decision). */
static inline const struct dynobs_span_policy *kept_policy(const struct dynobs_h1s_line *ln)
{
    return ln->pol == DYNOBS_H1S_POL_OWN       ? &ln->d.pol
           : ln->pol == DYNOBS_H1S_POL_DROPPED ? &dynobs__policy_dropped
                                               : NULL;
}

/* The exchange takes decision d; returns the policy its span begins with
 * (pol, or the dropped one for an ignored request). */
static inline const struct dynobs_span_policy *
take_decision(struct dynobs_h1s_exchange *x, const struct dynobs_decision *d,
              const struct dynobs_span_policy *pol)
{
    /* An ignored request is served as usual but neither written nor
     * counted; a filter may drop either. */
    if (x->route.ignored)
        pol = &dynobs__policy_dropped;
    x->uncounted = x->route.ignored || (d->drop & DYNOBS_DROP_METRICS);
    x->rules = d->r;
    x->redact = d->redact;
    return pol;
}

static inline int is_head(const struct dynobs_h1s_exchange *x, size_t ml)
{
    return ml == 4 && !memcmp(x->method, "HEAD", 4);
}

/* A request's head is read: its span begins. The path of a keep-alive
 * connection's repeated request is kept short (what it does not take is
 * out of line, DYNOBS_COLD): its code is most of what a request served
 * costs the server's instruction cache. */
static DYNOBS_HOT void start(struct dynobs_conn *c)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_h1s_exchange *x = &h->x;
    struct dynobs_h1s_line *ln = &h->line;
    struct dynobs_thread *t = dynobs__thread_on();
    h->short_ok = 0;
    h->labels_fresh = 0; /* (x's method and route are written anew below) */
    if (!t)
        return;
    /* The request line and Host split as for the last request when its
     * head repeats (h1s_in cleared ln when it did not). */
    if (DYNOBS_UNLIKELY(!ln->ok) && split_line(h) < 0)
        return;
    struct dynobs_h1_reqline r;
    size_t ml = ln->ml;
    r.method = h->head.reqline;
    r.method_len = ml;
    r.target = h->head.reqline + ln->target;
    r.target_len = ln->target_len;
    r.minor = ln->minor;
    dynobs__copy_bytes(x->method, r.method, ml);
    x->method[ml] = '\0';

    /* W3C: a valid, single traceparent continues the trace; anything else
     * starts a new one. tracestate travels only with a valid traceparent,
     * and an invalid tracestate is dropped whole. */
    struct dynobs_ctx remote;
    const struct dynobs_ctx *parent = NULL;
    if (h->head.has_traceparent && h->head.tp_count == 1)
        parent = dynobs__ctx_from_headers(&remote, h->head.traceparent, h->head.tp_len,
                                          h->head.tracestate,
                                          h->head.has_tracestate ? h->head.ts_len : 0);
    /* The stream's addresses, looked up once per connection. */
    dynobs__conn_facts(c);
    /* What the rules decide, and the route: as for the connection's last
     * request when method, host and path repeat (decision_memo.h), and
     * without asking the memo while the head repeats and the rules table
     * it was decided with is in force (what the memo would give back is
     * kept with the line, and x->route holds its route still). */
    struct dynobs_decision dl;
    const struct dynobs_decision *d = &dl;
    const struct dynobs_span_policy *pol;
    int recalled = 1, again = 0;
    const struct dynobs_rules_proc *now = dynobs__rules_now();
    if (DYNOBS_LIKELY(ln->decided && now && h->memo.p == now)) {
        /* The same head, decided the same: the same body as the last
         * span's, when that is kept (struct dynobs_h1s_kept). */
        again = h->kept.ok &&
                (parent ? parent->ts_len : 0u) == h->x.span.rec.tracestate_len;
        d = &ln->d;
        pol = kept_policy(ln);
    } else {
        pol = decide_line(c, &r, &dl, &recalled);
    }
    pol = take_decision(x, d, pol);
    struct dynobs_span *s = &x->span;
    if (DYNOBS_LIKELY(again)) {
        if (dynobs__span_begin_kept(s, &h->kept.k, DYNOBS_SPAN_KIND_SERVER, parent, x->start_ns,
                                    pol) < 0)
            return;
    } else {
        /* The body is written anew: what it held is not kept. */
        h->kept.ok = 0;
        if (dynobs__span_begin_ex(s, ln->name, DYNOBS_SPAN_KIND_SERVER, parent, x->start_ns,
                                  pol) < 0)
            return;
    }
    x->open = 1;
    dynobs__h1_resp_start(&x->resp, is_head(x, ml));
    if (s->recording && !again)
        start_attrs(c, s, d, &r, recalled);
    x->bag_len = 0;
    if (DYNOBS_UNLIKELY(h->head.has_baggage && h->head.bag_len))
        baggage(h, s, again);
    char corr[DYNOBS_CORR_LINES_MAX];
    uint8_t corr_mask = 0;
    size_t corr_len = DYNOBS_UNLIKELY(h->head.corr_seen)
                          ? correlation(h, s, !again, corr, sizeof corr, &corr_mask)
                          : 0;
    /* What start gave the span: its body, kept for the next request when
     * its end adds no more than the status code (finish). */
    if (s->recording && !again)
        dynobs__span_keep(s, &h->kept.k);
    /* The request is its thread's context while it is served, unless the
     * thread multiplexes requests (see the top of the file). */
    struct dynobs_ctx_carry carry = {corr, (uint16_t)corr_len, corr_mask, x->bag_len,
                                     __atomic_load_n(&x->bag_gen, __ATOMIC_RELAXED), x->bag,
                                     &x->bag_gen};
    dynobs__serving_begin(t, s, c->blocking, &carry, &x->serving);
    /* The next request that repeats this head byte for byte may take the
     * short path (dynobs__h1s_in_short) when this one was begun as a
     * repeat with nothing of its own: no traceparent (valid or not), no
     * baggage, no correlation header (and DYNOBS_SHORT_PATH is not 0). */
    h->short_ok = again && h->short_on && !h->head.has_traceparent &&
                  !h->head.has_baggage &&
                  !h->head.corr_seen && h->req_memo.repeated && !h->req_memo.tp_len;
}

/* The short path of a read: the bytes begin with the head the request
 * memo holds, whole, read from idle (what follows it is the request's
 * body, or the line feed that ends the head, which the memo leaves out:
 * h1s_in does not look at either); the connection's last request was begun as a
 * repeat with nothing of its own (short_ok: start), its body is still
 * kept and the rules are those its decision was made under. This one is
 * then begun exactly as start would begin it, without reading its head,
 * walking the read's pieces or looking at the decision again: a few lines
 * of code and of the connection, where the way through h1s_in and start
 * takes several times as many (BENCHMARKS.md, "Thirteenth round"). */
DYNOBS_FLATTEN DYNOBS_PATH(11) int dynobs__h1s_in_short(struct dynobs_conn *c, const uint8_t *p,
                                                    size_t n)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_h1_req_memo *m = &h->req_memo;
    struct dynobs_h1s_exchange *x = &h->x;
    size_t len = m->len;
    /* (more bytes than the head and its last line feed, when it declares
     * no body: pipelined, the long way's to see) */
    if (!h->short_ok || !len || n < len ||
        (n > len && !(n == len + 1 && p[len] == '\n') &&
         !m->after[offsetof(struct dynobs_h1_req, body)]) ||
        h->head.phase != DYNOBS_H1_REQ_IDLE || x->open ||
        x->start_ns || !h->kept.ok ||
        m->after[offsetof(struct dynobs_h1_req, capture)] != h->head.capture ||
        !dynobs__h1_same(p, m->head, len))
        return 0;
    struct dynobs_thread *t = dynobs__thread_on();
    if (!t)
        return 0;
    int saved = DYNOBS_ERRNO_ON;
    uint64_t start_ns = dynobs__thread_now();
    const struct dynobs_rules_proc *now = dynobs__rules_now_within(&dynobs__me()->rules_next_ns, start_ns);
    if (!now || h->memo.p != now) {
        DYNOBS_ERRNO_ON = saved;
        return 0;
    }
    /* What h1s_in does with the memo's head: the reader's state after it. */
    x->start_ns = start_ns;
    memcpy(&h->head, m->after, DYNOBS_H1_REQ_FIXED);
    m->repeated = 1;
    dynobs__h1_req_done(&h->head);
    /* What start does with a repeat that has nothing of its own. */
    const struct dynobs_span_policy *pol = take_decision(x, &h->line.d, kept_policy(&h->line));
    struct dynobs_span *s = &x->span;
    if (dynobs__span_begin_kept(s, &h->kept.k, DYNOBS_SPAN_KIND_SERVER, NULL, x->start_ns,
                                pol) == 0) {
        x->open = 1;
        dynobs__h1_resp_start(&x->resp, is_head(x, h->line.ml));
        x->bag_len = 0;
        /* (nothing to carry: no baggage, correlation ids or tracestate) */
        dynobs__serving_begin(t, s, c->blocking, NULL, &x->serving);
    }
    DYNOBS_ERRNO_ON = saved;
    return 1;
}

_Static_assert(sizeof(((struct dynobs_h1s_line *)0)->name) >=
                   sizeof(((struct dynobs_h1s_exchange *)0)->method) + DYNOBS_ROUTE_MAX,
               "a span name is the method, a space and the route");
_Static_assert(DYNOBS_H1_REQLINE_MAX <= UINT16_MAX, "request line offsets fit in 16 bits");

_Static_assert(sizeof(((struct dynobs_h1s *)0)->labels_method) ==
                   sizeof(((struct dynobs_h1s_exchange *)0)->method),
               "labels_method is a copy of the exchange's method array");

/* The duration metric's labels: the connection's last ones while method,
 * route and status repeat and nothing failed, else made anew. */
static DYNOBS_COLD const char *labels_anew(struct dynobs_conn *c, int code,
                                           const char *error_type, char *failed, size_t cap)
{
    struct dynobs_h1s *h = &c->p.h1s;
    const struct dynobs_route *rt = &h->x.route;
    int tls = c->transport == DYNOBS_TRANSPORT_TLS;
    const char *parts[][2] = {{"http.request.method", h->x.method},
                              {"http.response.status_code", NULL},
                              {"url.scheme", tls ? "https" : "http"},
                              {"http.route", rt->text},
                              {"error.type", error_type}};
    char cs[8] = "";
    if (code > 0) {
        dynobs__status_text(code, cs);
        parts[1][1] = cs;
    }
    char *out = error_type ? failed : h->labels;
    dynobs__labels_join(out, error_type ? cap : sizeof h->labels, parts,
                        sizeof parts / sizeof parts[0]);
    if (!error_type) {
        h->series.slot = NULL; /* found for the string just replaced */
        h->labels_code = code;
        memcpy(h->labels_method, h->x.method, sizeof h->x.method);
        memcpy(h->labels_route, rt->text, rt->len + 1u);
        h->labels_fresh = 1;
    }
    return out;
}

static inline const char *labels_of(struct dynobs_conn *c, int code, const char *error_type,
                                    char *failed, size_t cap)
{
    struct dynobs_h1s *h = &c->p.h1s;
    const struct dynobs_route *rt = &h->x.route;
    if (DYNOBS_LIKELY(!error_type && code == h->labels_code)) {
        if (DYNOBS_LIKELY(h->labels_fresh))
            return h->labels;
        /* (the method's whole array: a difference after its NUL only
         * makes the labels anew) */
        if (!memcmp(h->x.method, h->labels_method, sizeof h->labels_method) &&
            dynobs__same_bytes(h->labels_route, rt->text, rt->len + 1u)) {
            h->labels_fresh = 1;
            return h->labels;
        }
    }
    return labels_anew(c, code, error_type, failed, cap);
}

/* The request's outcome on its span (dynobs__http_server_outcome). For a
 * request that did not fail, the status code's attribute is copied as
 * encoded for the connection's last such request with the same code. */
static const char *outcome(struct dynobs_conn *c, struct dynobs_span *s, int code,
                           const char *error_type, char *codestr)
{
    struct dynobs_h1s_status *st = &c->p.h1s.status;
    if (error_type || code <= 0 || code >= 500)
        return dynobs__http_server_outcome(s, code, error_type, codestr);
    if (st->len && st->code == code && !dynobs__span_add_items(s, st->item, st->len, 1))
        return NULL;
    uint32_t used = s->used;
    uint16_t attrs = s->attrs;
    uint8_t cut = s->truncated;
    error_type = dynobs__http_server_outcome(s, code, NULL, codestr);
    size_t n = s->used - used;
    st->len = 0;
    if (!error_type && s->recording && !cut && !s->truncated && s->attrs == attrs + 1 &&
        n <= sizeof st->item) {
        memcpy(st->item, s->body + used, n);
        st->code = code;
        st->len = (uint16_t)n;
    }
    return error_type;
}

/* The outcome of a request whose span's end is not the last one's
 * (finish): its items added, and the body kept when the end added the
 * status code's item alone and no redaction rewrites it. */
static DYNOBS_COLD const char *end_anew(struct dynobs_conn *c, struct dynobs_span *s, int code,
                                        const char *error_type, int as_start, char *codestr)
{
    struct dynobs_h1s_exchange *x = &c->p.h1s.x;
    struct dynobs_h1s_kept *kp = &c->p.h1s.kept;
    error_type = outcome(c, s, code, error_type, codestr);
    kp->ok = 0;
    if (s->recording && as_start && !error_type && code > 0 && code < 500 &&
        s->attrs == kp->k.attrs + 1 && !s->status_len && s->used - kp->k.used <= UINT16_MAX &&
        !(x->rules && x->redact && x->redact->replace_count)) {
        kp->code = code;
        kp->code_len = (uint16_t)(s->used - kp->k.used);
        kp->ok = 1;
    }
    return error_type;
}

/* A request's duration in seconds is its nanoseconds divided by this: a
 * word of the hot data (volatile: never folded into a constant, which the
 * compiler would take from .rodata, one more page in the stretch where a
 * request ends; BENCHMARKS.md, "Eighteenth round"). Division rather than a
 * product with 1e-9 rounds a duration on a bucket's bound into it. */
static volatile double ns_per_second DYNOBS_HOT_DATA = 1e9;

static DYNOBS_FLATTEN DYNOBS_PATH(40) void finish(struct dynobs_conn *c, int code,
                                                   const char *error_type)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_h1s_exchange *x = &h->x;
    struct dynobs_span *s = &x->span;
    struct dynobs_thread *t = dynobs__thread_on();
    char codestr[8];
    struct dynobs_h1s_kept *kp = &h->kept;
    /* A span begun with the kept body (start) that ends with the same
     * status code ends with the last span's body: its item is still
     * there, and the template is the last one (span.h). */
    int as_start = s->used == kp->k.used && s->attrs == kp->k.attrs;
    if (DYNOBS_LIKELY(kp->ok && as_start && !error_type && code == kp->code) &&
        !dynobs__span_add_kept(s, kp->code_len, 1))
        h->tmpl.same = s->recording;
    else
        error_type = end_anew(c, s, code, error_type, as_start, codestr);
    /* An ignored request is not counted either. */
    struct dynobs_segment *seg = t && !x->uncounted ? dynobs__segment() : NULL;
    uint64_t now = 0;
    if (seg) {
        now = dynobs__thread_now();
        char failed[DYNOBS_METRIC_KEY_BYTES];
        const char *labels = labels_of(c, code, error_type, failed, sizeof failed);
        double secs = now > x->start_ns ? (double)(now - x->start_ns) / ns_per_second : 0;
        if (labels == h->labels)
            dynobs__http_server_metric_memo(seg, labels, secs, &h->series);
        else
            dynobs__http_server_metric(seg, labels, secs);
    }
    dynobs__serving_end(&x->serving, t);
    /* Contexts that still point at this request's baggage (API spans that
     * outlive it) see it gone. Only the thread serving the connection
     * writes the count, so a store publishes it (no locked add, which
     * would wait for every store before it); a request without baggage
     * gave no context any (dynobs__ctx_baggage reads none of length 0). */
    if (x->bag_len)
        __atomic_store_n(&x->bag_gen, x->bag_gen + 1, __ATOMIC_RELEASE);
    dynobs__redact_span(s, x->rules, x->redact);
    if (!dynobs__span_end_same(s, now, &h->tmpl, seg, t))
        dynobs__span_finish_as(s, now, &h->tmpl);
    x->open = 0;
    x->start_ns = 0;
    dynobs__h1_req_reset(&h->head);
}

void dynobs__h1s_init(struct dynobs_conn *c)
{
    struct dynobs_h1s *h = &c->p.h1s;
    /* The state only, not the buffers it fills (most of its size, whose
     * pages stay untouched until used). */
    memset(&h->head, 0, offsetof(struct dynobs_h1_req, reqline));
    h->head.capture = 1;
    h->short_on = !dynobs__config.short_path_off;
    h->short_ok = 0;
    h->req_memo.len = 0;
    h->req_memo.repeated = 0;
    h->line.ok = 0;
    h->line.decided = 0;
    h->kept.ok = 0;
    h->resp_memo.len = 0;
    h->labels_code = 0;
    h->labels_fresh = 0;
    h->labels_method[0] = '\0';
    h->labels_route[0] = '\0';
    h->series.slot = NULL;
    dynobs__memo_clear(&h->memo);
    h->run.len = 0;
    h->first.len = 0;
    h->status.len = 0;
    h->tmpl = (struct dynobs_span_tmpl){0};
    /* (the baggage count goes on from where the stream that had this
     * state left it, so that a context of one of its requests does not
     * take a new request's baggage for its own) */
    uint32_t bag_gen = h->x.bag_gen;
    memset(&h->x, 0, offsetof(struct dynobs_h1s_exchange, span));
    h->x.bag_gen = bag_gen + 1;
    h->x.span.live = 0;
}

/* A read whose head ended at w->p[at] ends between requests: the bytes
 * after that head are line ends only (allowed between requests), or end
 * as a head does, with an empty line (whole pipelined requests: they get
 * no span, and the next read begins at a request's start). */
static int ends_between_requests(const struct dynobs_iov_walk *w, size_t at)
{
    struct dynobs_iov_walk rest = *w;
    const uint8_t *p = w->p + at + 1;
    size_t len = w->len - at - 1;
    int only_ends = 1;
    uint8_t last[3] = {0, 0, 0}; /* the read's last three bytes, the last at [2] */
    for (;;) {
        for (size_t k = 0; k < len; k++) {
            only_ends &= p[k] == '\r' || p[k] == '\n';
            last[0] = last[1];
            last[1] = last[2];
            last[2] = p[k];
        }
        if (!dynobs__iov_next(&rest))
            break;
        p = rest.p;
        len = rest.len;
    }
    return only_ends || (last[2] == '\n' && (last[1] == '\n' || (last[1] == '\r' && last[0] == '\n')));
}

void dynobs__h1s_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_iov_walk w = {iov, iovcnt, n};
    while (h->head.phase < DYNOBS_H1_REQ_BODY && dynobs__iov_next(&w)) {
        if (h->head.phase == DYNOBS_H1_REQ_IDLE && !h->x.start_ns && w.len) {
            struct dynobs_thread *t = dynobs__thread_on();
            h->x.start_ns = t ? dynobs__thread_now() : 0;
        }
        long at = dynobs__h1_req_feed_memo(&h->head, &h->req_memo, w.p, w.len);
        if (at >= 0) {
            /* Another head than the memo's: its parts are split anew. */
            if (!h->req_memo.repeated)
                h->line.ok = 0;
            dynobs__h1_req_done(&h->head);
            if (!h->x.open)
                start(c);
            /* More bytes than the head, and it declares no body: the next
             * requests' bytes (pipelined), which this read took from the
             * stream. When the read ends inside one of them, where the
             * next read begins is not a request's start: rather than read
             * one from its middle, the connection is traced no further
             * (this request's span still ends with its response). */
            if (!h->head.body && !ends_between_requests(&w, (size_t)at)) {
                h->head.phase = DYNOBS_H1_REQ_OFF;
                dynobs__event_count("dynobs.http.server.pipelined");
            }
        }
    }
}

void dynobs__h1s_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_iov_walk w = {iov, iovcnt, n};
    while (h->x.open && dynobs__iov_next(&w)) {
        int rc = dynobs__h1_resp_feed_memo(&h->x.resp, &h->resp_memo, w.p, w.len);
        if (rc == 1) {
            finish(c, h->x.resp.code, NULL);
        } else if (rc < 0) {
            finish(c, 0, "malformed_response");
            h->head.phase = DYNOBS_H1_REQ_OFF; /* not an HTTP/1 server after all */
        }
    }
}

/* The short path of a write: its first piece begins with the response
 * head the memo holds, whole, written from the response's start, and
 * what the memo says of it is that it ends the response or starts a body
 * of a given length. The state is then the one h1s_out reaches through
 * the memo, the rest of the write counted as body as h1s_out counts it
 * piece by piece, without walking the pieces. */
DYNOBS_PATH(31) int dynobs__h1s_out_short(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                                     size_t n)
{
    struct dynobs_h1s *h = &c->p.h1s;
    struct dynobs_h1_resp_memo *m = &h->resp_memo;
    struct dynobs_h1_resp *r = &h->x.resp;
    size_t len = m->len;
    if (!h->short_on || !h->x.open || iovcnt < 1 || r->phase != DYNOBS_H1_R_STATUS || r->status_len || r->bad ||
        !len || n < len || iov[0].iov_len < len || m->after.head_request != r->head_request ||
        (!m->done && m->after.phase != DYNOBS_H1_R_BODY) ||
        !dynobs__h1_same_resp(iov[0].iov_base, m->head, len))
        return 0;
    int saved = DYNOBS_ERRNO_ON;
    *r = m->after;
    /* (no byte after the head: nothing counted, as h1s_out counts none) */
    if (m->done || (n > len && dynobs__h1_resp_body(r, n - len) == 1))
        finish(c, r->code, NULL);
    DYNOBS_ERRNO_ON = saved;
    return 1;
}

void dynobs__h1s_unseen_out(struct dynobs_conn *c, size_t n)
{
    struct dynobs_h1s *h = &c->p.h1s;
    if (h->x.open && dynobs__h1_resp_body(&h->x.resp, n) == 1)
        finish(c, h->x.resp.code, NULL);
}

void dynobs__h1s_end(struct dynobs_conn *c)
{
    struct dynobs_h1s *h = &c->p.h1s;
    if (!h->x.open)
        return;
    /* A body without a length ends with the connection: a complete
     * response. Anything else was cut short. */
    if (h->x.resp.phase == DYNOBS_H1_R_UNTIL_CLOSE)
        finish(c, h->x.resp.code, NULL);
    else
        finish(c, h->x.resp.code, "connection_closed");
}
