/*
 * HTTP/2 streams this process opens (see h2.h): each gets a CLIENT span
 * whose parent is the writing thread's current context (or the
 * traceparent the application sent itself, which then wins: we add
 * nothing), ended by the response's END_STREAM or a reset.
 *
 * Our traceparent (and tracestate, baggage) goes into the HEADERS frame
 * that opens the stream, as HPACK literal fields without indexing at the
 * end of its header block, so the peer's dynamic table never changes.
 * The frame's length changes with it, so the transport sends the frame
 * rewritten in place of the application's (struct dynobs_insert.skip).
 * To rewrite it, its block must be decoded before it goes out: the plan
 * reads the application's bytes up to the end of that frame ahead of the
 * write (fed_pos), and what the write then sends is read from there on.
 * When the block goes on in CONTINUATION frames, our fields go into the
 * one that ends it. A block that the application writes in pieces, or
 * whose last frame would outgrow the peer's frame size, goes out as it
 * was (dynobs.http2.not_injected counts it).
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

/* url.full with the values of the query replaced (as the HTTP/1 client
 * records it). */
static size_t url_full(const struct dynobs_h2_head *h, int tls, char *out, size_t cap)
{
    size_t o = 0;
    const char *scheme = h->scheme_len ? h->scheme : (tls ? "https" : "http");
    size_t sl = h->scheme_len ? h->scheme_len : (tls ? 5u : 4u);
    if (sl + 3 + h->authority_len + 1 >= cap)
        return 0;
    memcpy(out, scheme, sl);
    memcpy(out + sl, "://", 3);
    memcpy(out + sl + 3, h->authority, h->authority_len);
    o = sl + 3 + h->authority_len;
    return dynobs__redact_url_values(h->path, h->path_len, out, o, cap);
}

/* Our fields for the stream's frame: traceparent, and tracestate and
 * baggage when the context has them and the application sent none. */
static void fields(struct dynobs_h2_state *st, const struct dynobs_span *s,
                   const struct dynobs_ctx *parent)
{
    char tp[DYNOBS_TRACEPARENT_LEN + 1];
    dynobs__traceparent_format(s->rec.trace_id, s->rec.span_id, s->rec.trace_flags, tp,
                               sizeof tp);
    size_t n = dynobs__hpack_literal(st->lit, sizeof st->lit, "traceparent", 11, tp,
                                     DYNOBS_TRACEPARENT_LEN);
    if (s->rec.tracestate_len && !st->out_head.ts_count)
        n += dynobs__hpack_literal(st->lit + n, sizeof st->lit - n, "tracestate", 10,
                                   dynobs__span_tracestate(s), s->rec.tracestate_len);
    size_t bl;
    const char *bag = parent ? dynobs__ctx_baggage(parent, &bl) : NULL;
    if (bag && bl)
        n += dynobs__hpack_literal(st->lit + n, sizeof st->lit - n, "baggage", 7, bag, bl);
    st->lit_len = (uint16_t)n;
}

static void start_stream(struct dynobs_conn *c, struct dynobs_h2_state *st,
                         const struct dynobs_h2_head *h)
{
    struct dynobs_thread *t = dynobs__thread();
    if (!t || !h->method_len)
        return;
    struct dynobs_h2_stream *x = dynobs__h2_claim(st, h->stream);
    if (!x)
        return;
    int tls = c->transport == DYNOBS_TRANSPORT_TLS;
    x->id = h->stream;
    x->grpc = h->grpc;
    x->status = 0;
    x->grpc_status = -1;
    x->start_ns = dynobs__thread_now();
    memcpy(x->method, h->method, h->method_len);
    x->method[h->method_len] = '\0';
    dynobs__conn_facts(c);
    /* :authority is host[:port], the host maybe an [IPv6] literal. */
    size_t full = dynobs__h2_host_len(h->authority, h->authority_len), hn = full;
    const char *host = h->authority;
    if (hn >= 2 && host[0] == '[') {
        host++;
        hn -= 2;
    }
    x->server_port = tls ? 443 : 80;
    if (full < h->authority_len && h->authority[full] == ':') {
        int port = 0;
        size_t i = full + 1;
        for (; i < h->authority_len && h->authority[i] >= '0' && h->authority[i] <= '9' &&
               port < 65536;
             i++)
            port = port * 10 + (h->authority[i] - '0');
        if (i == h->authority_len && port > 0 && port < 65536)
            x->server_port = port;
    }
    if (hn && hn < sizeof x->server_address) {
        memcpy(x->server_address, host, hn);
        x->server_address[hn] = '\0';
    } else {
        size_t pn = strnlen(c->peer_address, sizeof c->peer_address);
        pn = pn < sizeof x->server_address ? pn : sizeof x->server_address - 1;
        memcpy(x->server_address, c->peer_address, pn);
        x->server_address[pn] = '\0';
    }

    struct dynobs_ctx remote;
    const struct dynobs_ctx *parent;
    int app_tp = h->tp_count > 0;
    if (app_tp)
        parent = h->tp_count == 1 && h->tp_len
                     ? dynobs__ctx_from_headers(&remote, h->traceparent, h->tp_len, NULL, 0)
                     : NULL;
    else if (c->has_origin)
        parent = &c->origin;
    else
        parent = dynobs__ctx_outbound(t);
    c->has_origin = 0;
    size_t pl = 0;
    while (pl < h->path_len && h->path[pl] != '?' && h->path[pl] != '#')
        pl++;
    /* A gRPC call's method, for its metric (a client's own paths). */
    x->route.len = (uint16_t)(pl < sizeof x->route.text ? pl : 0);
    memcpy(x->route.text, h->path, x->route.len);
    x->route.text[x->route.len] = '\0';
    char name[DYNOBS_H2_PATH_MAX];
    if (x->grpc && pl > 1) {
        memcpy(name, h->path + 1, pl - 1);
        name[pl - 1] = '\0';
    } else {
        memcpy(name, x->method, h->method_len + 1u);
    }
    struct dynobs_rule_facts f = {.kind = DYNOBS_SPAN_KIND_CLIENT,
                                  .method = {x->method, h->method_len},
                                  .server_address = {x->server_address,
                                                     strlen(x->server_address)},
                                  .url_path = {h->path, pl},
                                  .span_name = {name, strlen(name)}};
    struct dynobs_decision d;
    const struct dynobs_span_policy *pol = dynobs__decide(&d, &f, 0);
    x->uncounted = (d.drop & DYNOBS_DROP_METRICS) != 0;
    x->rules = d.r;
    x->redact = d.redact;
    struct dynobs_span *s = &x->span;
    if (dynobs__span_begin_ex(s, name, DYNOBS_SPAN_KIND_CLIENT, parent, x->start_ns, pol) < 0) {
        __atomic_store_n(&x->state, DYNOBS_H2_FREE, __ATOMIC_RELEASE);
        return;
    }
    if (s->recording) {
        if (x->grpc) {
            dynobs__h2_rpc_attrs(s, h->path, pl);
        } else {
            char url[1024];
            set_str(s, "http.request.method", x->method, h->method_len);
            size_t ul = url_full(h, tls, url, sizeof url);
            set_str(s, "url.full", url, ul);
        }
        set_str(s, "server.address", x->server_address, strlen(x->server_address));
        int64_t port = x->server_port;
        ADD(s, "server.port", DYNOBS_ATTR_INT, &port, 8);
        ADD(s, "network.protocol.name", DYNOBS_ATTR_STRING, "http", 4);
        ADD(s, "network.protocol.version", DYNOBS_ATTR_STRING, "2", 1);
    }
    if (!app_tp) {
        if (h->stream == st->planning)
            fields(st, s, parent);
        else
            dynobs__event_count("dynobs.http2.not_injected");
    }
    __atomic_store_n(&x->state, DYNOBS_H2_OPEN, __ATOMIC_RELEASE);
}

static void finish(struct dynobs_h2_stream *x, const char *error_type)
{
    if (!dynobs__h2_finishing(x))
        return;
    struct dynobs_span *s = &x->span;
    struct dynobs_thread *t = dynobs__thread();
    char codestr[8];
    if (x->grpc && x->grpc_status >= 0) {
        dynobs__span_set_int(s, "rpc.grpc.status_code", x->grpc_status);
        /* A client's call failed for any status but OK. */
        if (x->grpc_status > 0 && !error_type) {
            struct dynobs_sb b = {codestr, 0, sizeof codestr};
            dynobs__sb_int(&b, x->grpc_status);
            error_type = codestr;
        }
    }
    if (x->status > 0) {
        int64_t code = x->status;
        ADD(s, "http.response.status_code", DYNOBS_ATTR_INT, &code, 8);
        if (x->status >= 400 && !error_type) {
            dynobs__status_text(x->status, codestr);
            error_type = codestr;
        }
    }
    if (error_type) {
        set_str(s, "error.type", error_type, strlen(error_type));
        dynobs__span_status(s, DYNOBS_STATUS_ERROR, NULL);
    }
    if (t && !x->uncounted) {
        uint64_t now = dynobs__thread_now();
        double secs = now > x->start_ns ? (double)(now - x->start_ns) / 1e9 : 0;
        dynobs__http_client_metric(x->method, x->server_address, x->server_port, x->status,
                                   error_type, secs);
        if (x->grpc)
            dynobs__h2_rpc_metric(0, x->route.text, x->route.len, x->grpc_status, secs);
    }
    dynobs__redact_span(s, x->rules, x->redact);
    dynobs__span_finish(s);
    __atomic_store_n(&x->state, DYNOBS_H2_FREE, __ATOMIC_RELEASE);
}

/* ---- what the frame readers report ---- */

static void out_end(void *arg, uint32_t stream)
{
    struct dynobs_h2_state *st = arg;
    if (dynobs__h2_opens(st, stream))
        start_stream(st->conn, st, &st->out_head);
}

static void out_reset(void *arg, uint32_t stream, uint32_t code)
{
    struct dynobs_h2_state *st = arg;
    (void)code;
    struct dynobs_h2_stream *x = dynobs__h2_find(st, stream);
    if (x)
        finish(x, "cancelled");
}

static const struct dynobs_h2_events out_events = {.block_begin = dynobs__h2_out_begin,
                                                   .field = dynobs__h2_out_field,
                                                   .block_end = out_end,
                                                   .reset = out_reset};

static void in_end(void *arg, uint32_t stream)
{
    struct dynobs_h2_state *st = arg;
    struct dynobs_h2_stream *x = dynobs__h2_response(st, &st->in_head, stream);
    if (x && st->in_head.end_stream)
        finish(x, NULL);
}

static void in_data(void *arg, uint32_t stream, uint32_t len, int end_stream)
{
    struct dynobs_h2_state *st = arg;
    (void)len;
    struct dynobs_h2_stream *x = end_stream ? dynobs__h2_find(st, stream) : NULL;
    if (x)
        finish(x, NULL);
}

static void in_reset(void *arg, uint32_t stream, uint32_t code)
{
    struct dynobs_h2_state *st = arg;
    (void)code;
    struct dynobs_h2_stream *x = dynobs__h2_find(st, stream);
    if (x)
        finish(x, "stream_reset");
}

static void in_setting(void *arg, uint16_t id, uint32_t value)
{
    struct dynobs_h2_state *st = arg;
    if (id == DYNOBS_H2_SETTINGS_MAX_FRAME_SIZE && value >= 16384u)
        __atomic_store_n(&st->peer_max_frame, value, __ATOMIC_RELAXED);
}

static const struct dynobs_h2_events in_events = {.block_begin = dynobs__h2_in_begin,
                                                  .field = dynobs__h2_in_field,
                                                  .block_end = in_end,
                                                  .data = in_data,
                                                  .reset = in_reset,
                                                  .setting = in_setting};

/* ---- the plan: a HEADERS frame rewritten ---- */

static int iov_copy(const struct iovec *iov, int iovcnt, size_t off, uint8_t *out, size_t n)
{
    size_t at = 0, got = 0;
    for (int i = 0; i < iovcnt && got < n; i++) {
        size_t len = iov[i].iov_len;
        if (off + got < at + len) {
            size_t from = off + got - at, take = len - from < n - got ? len - from : n - got;
            memcpy(out + got, (const uint8_t *)iov[i].iov_base + from, take);
            got += take;
        }
        at += len;
    }
    return got == n ? 0 : -1;
}

static uint32_t len24(const uint8_t *h)
{
    return (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
}

/* A header block that opens a stream, whole in the bytes of a write: its
 * HEADERS frame at start, the frame that ends it (the HEADERS frame
 * itself, or its last CONTINUATION frame) at last, last_len bytes of
 * payload, the block's frames ending at end. */
struct opening {
    size_t start, last, end;
    uint32_t last_len;
};

static uint32_t stream_of(const uint8_t *h)
{
    return ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
           0x7fffffffu;
}

/* The next header block in iov (total bytes, the first `from` already
 * read) that opens a stream; 0, or -1 when there is none whole in these
 * bytes. */
static int next_opening(const struct dynobs_h2_state *st, const struct iovec *iov, int iovcnt,
                        size_t from, size_t total, struct opening *o)
{
    const struct dynobs_h2_reader *r = &st->out;
    size_t off = from;
    uint8_t h[DYNOBS_H2_FRAME_HEADER];
    /* First what the reader is in the middle of. */
    if (r->preface_left) {
        off += r->preface_left;
    } else if (r->head_have == DYNOBS_H2_FRAME_HEADER) {
        off += r->left;
    } else if (r->head_have) {
        memcpy(h, r->head, r->head_have);
        size_t need = DYNOBS_H2_FRAME_HEADER - r->head_have;
        if (iov_copy(iov, iovcnt, off, h + r->head_have, need) < 0)
            return -1;
        off += need + len24(h);
    }
    while (off + DYNOBS_H2_FRAME_HEADER <= total) {
        if (iov_copy(iov, iovcnt, off, h, sizeof h) < 0)
            return -1;
        uint32_t n = len24(h), stream = stream_of(h);
        if (h[3] != DYNOBS_H2_HEADERS || !(stream & 1u) || stream <= st->last_stream) {
            off += DYNOBS_H2_FRAME_HEADER + n;
            continue;
        }
        /* The block's frames, to the one with END_HEADERS (RFC 9113
         * section 6.10: CONTINUATION frames of the stream, nothing else). */
        o->start = off;
        while (!(h[4] & DYNOBS_H2_END_HEADERS)) {
            off += DYNOBS_H2_FRAME_HEADER + n;
            if (off + DYNOBS_H2_FRAME_HEADER > total ||
                iov_copy(iov, iovcnt, off, h, sizeof h) < 0)
                return -1;
            n = len24(h);
            if (h[3] != DYNOBS_H2_CONTINUATION || stream_of(h) != stream)
                return -1;
        }
        if (off + DYNOBS_H2_FRAME_HEADER + n > total)
            return -1;
        o->last = off;
        o->last_len = n;
        o->end = off + DYNOBS_H2_FRAME_HEADER + n;
        return 0;
    }
    return -1;
}

/* The block o with our fields at its end (in the frame that ends it,
 * before that frame's padding), written at out (cap bytes). Returns its
 * size, or -E2BIG when it would not fit there or in the peer's frame
 * size. */
static long rewrite(struct dynobs_h2_state *st, const struct iovec *iov, int iovcnt,
                    const struct opening *o, uint8_t *out, size_t cap)
{
    uint32_t max = __atomic_load_n(&st->peer_max_frame, __ATOMIC_RELAXED);
    uint32_t n = o->last_len, nn = n + st->lit_len;
    size_t before = o->last - o->start;
    if (before + DYNOBS_H2_FRAME_HEADER + (size_t)nn > cap || nn > (max ? max : 16384u))
        return -E2BIG;
    if (iov_copy(iov, iovcnt, o->start, out, before + DYNOBS_H2_FRAME_HEADER + n) < 0)
        return -EINVAL;
    uint8_t *f = out + before;
    /* Only a HEADERS frame has padding (a CONTINUATION frame has none). */
    uint32_t pad = f[3] == DYNOBS_H2_HEADERS && (f[4] & DYNOBS_H2_PADDED)
                       ? f[DYNOBS_H2_FRAME_HEADER]
                       : 0;
    if (pad && pad >= n)
        return -EINVAL;
    uint8_t *end = f + DYNOBS_H2_FRAME_HEADER + n - pad;
    memmove(end + st->lit_len, end, pad);
    memcpy(end, st->lit, st->lit_len);
    f[0] = (uint8_t)(nn >> 16);
    f[1] = (uint8_t)(nn >> 8);
    f[2] = (uint8_t)nn;
    return (long)(before + DYNOBS_H2_FRAME_HEADER + nn);
}

static void lost(struct dynobs_conn *c)
{
    dynobs__event_count("dynobs.http2.connections_lost");
    dynobs__h2c_end(c, "http2_lost");
}

long dynobs__h2c_plan(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                      struct dynobs_insert *ins)
{
    struct dynobs_h2_state *st = c->h2;
    ins->skip = 0;
    ins->len = 0;
    ins->stop = 0;
    if (!st || st->out.lost || st->in.lost)
        return -1;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (st->inj_pos != DYNOBS_H2_NO_PLAN) {
        /* A frame of ours planned by an earlier call: the application
         * writes its frame again (its write stopped before or inside it). */
        uint64_t k = st->inj_pos - st->out_pos;
        if (k + st->inj_skip > total)
            return -1;
        ins->bytes = (const char *)st->inj + st->inj_sent;
        ins->len = st->inj_len - st->inj_sent;
        ins->skip = st->inj_skip;
        /* What follows is planned when this is out. */
        ins->stop = (size_t)k + st->inj_skip;
        return (long)k;
    }
    /* Each HEADERS frame that opens a stream in these bytes is read now
     * (its block says whether the application sent a traceparent, and
     * starts the stream's span) and rewritten with our fields; the run
     * from the first rewritten frame to the end of the last one goes out
     * from st->inj in place of the application's bytes. */
    size_t from = st->fed_pos > st->out_pos ? (size_t)(st->fed_pos - st->out_pos) : 0;
    long region = -1;
    size_t used = 0, prev = 0;
    struct opening o;
    while (from < total && next_opening(st, iov, iovcnt, from, total, &o) == 0) {
        size_t k = o.start, end = o.end;
        if (region >= 0 && used + (end - prev) + sizeof st->lit > sizeof st->inj) {
            /* No room for this one: it is left unread, for the call that
             * starts there (a non-blocking write ends before it). */
            ins->stop = k;
            break;
        }
        uint8_t hdr[DYNOBS_H2_FRAME_HEADER];
        st->lit_len = 0;
        st->planning = 0;
        if (iov_copy(iov, iovcnt, k, hdr, sizeof hdr) == 0)
            st->planning = stream_of(hdr);
        int e = dynobs__h2_feed_range(&st->out, &out_events, st, iov, iovcnt, from, end);
        st->fed_pos = st->out_pos + end;
        st->planning = 0;
        from = end;
        if (e) {
            lost(c);
            return -1;
        }
        if (!st->lit_len)
            continue;
        size_t start = region < 0 ? k : prev, gap = k - start;
        long w = gap <= sizeof st->inj - used
                     ? rewrite(st, iov, iovcnt, &o, st->inj + used + gap,
                               sizeof st->inj - used - gap)
                     : -E2BIG;
        if (w < 0) {
            /* This block, and whatever follows, go out as written. */
            dynobs__event_count("dynobs.http2.not_injected");
            break;
        }
        if (region < 0)
            region = (long)k;
        if (iov_copy(iov, iovcnt, start, st->inj + used, gap) < 0)
            return -1;
        used += gap + (size_t)w;
        prev = end;
    }
    if (region < 0)
        return -1;
    st->inj_pos = st->out_pos + (size_t)region;
    st->inj_skip = (uint32_t)(prev - (size_t)region);
    st->inj_len = (uint32_t)used;
    st->inj_sent = 0;
    ins->bytes = (const char *)st->inj;
    ins->len = used;
    ins->skip = st->inj_skip;
    return region;
}

void dynobs__h2c_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n,
                     long ours)
{
    struct dynobs_h2_state *st = c->h2;
    if (!st)
        return;
    if (st->inj_pos != DYNOBS_H2_NO_PLAN) {
        if (ours == DYNOBS_INSERT_GIVEN_UP) {
            /* The application's frame went out as it was. */
            dynobs__event_count("dynobs.http2.not_injected");
            st->inj_pos = DYNOBS_H2_NO_PLAN;
        } else {
            st->inj_sent += (uint32_t)ours;
            if (st->inj_sent >= st->inj_len && st->out_pos + n >= st->inj_pos + st->inj_skip)
                st->inj_pos = DYNOBS_H2_NO_PLAN;
        }
    }
    uint64_t end = st->out_pos + n;
    if (end > st->fed_pos && !st->out.lost && !st->in.lost) {
        size_t from = (size_t)(st->fed_pos - st->out_pos);
        if (dynobs__h2_feed_range(&st->out, &out_events, st, iov, iovcnt, from, n) < 0)
            lost(c);
        st->fed_pos = end;
    }
    st->out_pos = end;
}

void dynobs__h2c_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)
{
    struct dynobs_h2_state *st = c->h2;
    if (!st || st->out.lost || st->in.lost)
        return;
    if (dynobs__h2_feed_range(&st->in, &in_events, st, iov, iovcnt, 0, n) < 0)
        lost(c);
}

int dynobs__h2c_init(struct dynobs_conn *c)
{
    struct dynobs_h2_state *st = dynobs__h2_state(c);
    if (!st)
        return -ENOMEM;
    dynobs__h2_init(&st->out, 1);
    dynobs__h2_init(&st->in, 0);
    st->out_pos = st->fed_pos = 0;
    st->inj_pos = DYNOBS_H2_NO_PLAN;
    st->inj_len = st->inj_sent = st->inj_skip = 0;
    st->last_stream = 0;
    st->planning = 0;
    st->peer_max_frame = 16384u;
    return 0;
}

void dynobs__h2c_end(struct dynobs_conn *c, const char *error_type)
{
    struct dynobs_h2_state *st = c->h2;
    if (!st)
        return;
    for (unsigned i = 0; i < DYNOBS_H2_STREAMS; i++)
        if (__atomic_load_n(&st->streams[i].state, __ATOMIC_ACQUIRE) == DYNOBS_H2_OPEN)
            finish(&st->streams[i], error_type);
}
