/*
 * What the HTTP/2 client and server share (h2.h): the connection's state
 * and its stream table, self-observation counters, gRPC names.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "conn.h"
#include "h2.h"
#include "lazymap.h"
#include "strbuf.h"

#include "../common/metrics.h"

struct dynobs_h2_state *dynobs__h2_state(struct dynobs_conn *c)
{
    struct dynobs_h2_state *st = c->h2;
    if (!st) {
        /* Mapped without reserving swap: the stream table's spans and the
         * HPACK tables' ends are touched only when used. */
        void *m = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        c->h2 = st = m;
    }
    st->conn = c;
    for (unsigned i = 0; i < DYNOBS_H2_STREAMS; i++)
        __atomic_store_n(&st->streams[i].state, DYNOBS_H2_FREE, __ATOMIC_RELAXED);
    return st;
}

/* A stream's first slot to try: a side's streams are numbered 2 apart,
 * so 64 consecutive ones take 64 different slots and the look-up of an
 * open stream is one probe, not a scan. */
static unsigned home(uint32_t id)
{
    return (id >> 1) & (DYNOBS_H2_STREAMS - 1);
}

struct dynobs_h2_stream *dynobs__h2_find(struct dynobs_h2_state *st, uint32_t id)
{
    struct dynobs_h2_stream *x = &st->streams[home(id)];
    if (__atomic_load_n(&x->state, __ATOMIC_ACQUIRE) == DYNOBS_H2_OPEN && x->id == id)
        return x;
    for (unsigned i = 0; i < DYNOBS_H2_STREAMS; i++) {
        x = &st->streams[i];
        if (__atomic_load_n(&x->state, __ATOMIC_ACQUIRE) == DYNOBS_H2_OPEN && x->id == id)
            return x;
    }
    return NULL;
}

struct dynobs_h2_stream *dynobs__h2_claim(struct dynobs_h2_state *st, uint32_t id)
{
    for (unsigned k = 0; k < DYNOBS_H2_STREAMS; k++) {
        uint32_t free_ = DYNOBS_H2_FREE;
        struct dynobs_h2_stream *x = &st->streams[(home(id) + k) & (DYNOBS_H2_STREAMS - 1)];
        if (__atomic_load_n(&x->state, __ATOMIC_RELAXED) == DYNOBS_H2_FREE &&
            __atomic_compare_exchange_n(&x->state, &free_, DYNOBS_H2_STARTING, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return x;
    }
    dynobs__event_count("dynobs.http2.streams_untraced");
    return NULL;
}

int dynobs__h2_finishing(struct dynobs_h2_stream *x)
{
    uint32_t open = DYNOBS_H2_OPEN;
    return __atomic_compare_exchange_n(&x->state, &open, DYNOBS_H2_FINISHING, 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

size_t dynobs__h2_host_len(const char *a, size_t n)
{
    if (n && a[0] == '[') {
        const char *close_ = memchr(a, ']', n);
        return close_ ? (size_t)(close_ - a) + 1 : n;
    }
    const char *colon = memchr(a, ':', n);
    return colon ? (size_t)(colon - a) : n;
}

void dynobs__h2_rpc_attrs(struct dynobs_span *s, const char *path, size_t n)
{
    /* "/package.Service/Method" */
    const char *p = n && path[0] == '/' ? path + 1 : path;
    size_t m = n && path[0] == '/' ? n - 1 : n;
    const char *slash = memchr(p, '/', m);
    dynobs__span_add(s, "rpc.system", 10, DYNOBS_ATTR_STRING, "grpc", 4);
    if (!slash)
        return;
    if (slash > p)
        dynobs__span_add(s, "rpc.service", 11, DYNOBS_ATTR_STRING, p, (size_t)(slash - p));
    size_t ml = m - (size_t)(slash - p) - 1;
    if (ml)
        dynobs__span_add(s, "rpc.method", 10, DYNOBS_ATTR_STRING, slash + 1, ml);
}

int dynobs__h2_feed_range(struct dynobs_h2_reader *r, const struct dynobs_h2_events *ev,
                          void *arg, const struct iovec *iov, int iovcnt, size_t from, size_t to)
{
    size_t off = 0;
    for (int i = 0; i < iovcnt && off < to; i++) {
        size_t len = iov[i].iov_len, a = from > off ? from - off : 0;
        size_t b = to - off < len ? to - off : len;
        if (a < b) {
            int e = dynobs__h2_feed(r, (const uint8_t *)iov[i].iov_base + a, b - a, ev, arg);
            if (e)
                return e;
        }
        off += len;
    }
    return 0;
}

void dynobs__h2_rpc_metric(int server, const char *path, size_t n, int code, double seconds)
{
    struct dynobs_segment *seg = dynobs__segment();
    if (!seg)
        return;
    /* "/package.Service/Method", as rpc_attrs splits it. */
    char svc[128] = "", meth[128] = "", cs[12] = "";
    const char *p = n && path[0] == '/' ? path + 1 : path;
    size_t m = n && path[0] == '/' ? n - 1 : n;
    const char *slash = memchr(p, '/', m);
    size_t sl = slash ? (size_t)(slash - p) : m, ml = slash ? m - sl - 1 : 0;
    if (sl < sizeof svc)
        memcpy(svc, p, sl), svc[sl] = '\0';
    if (slash && ml < sizeof meth)
        memcpy(meth, slash + 1, ml), meth[ml] = '\0';
    if (code >= 0) {
        struct dynobs_sb b = {cs, 0, sizeof cs};
        dynobs__sb_int(&b, code);
    }
    const char *parts[][2] = {{"rpc.system", "grpc"},
                              {"rpc.service", svc},
                              {"rpc.method", meth},
                              {"rpc.grpc.status_code", cs[0] ? cs : NULL}};
    char labels[DYNOBS_METRIC_KEY_BYTES];
    dynobs__labels_join(labels, sizeof labels, parts, sizeof parts / sizeof parts[0]);
    struct dynobs_metric_def d = {.name = server ? "rpc.server.duration" : "rpc.client.duration",
                                  .unit = "ms",
                                  .kind = DYNOBS_METRIC_HISTOGRAM,
                                  .bounds = dynobs__default_bounds,
                                  .nbounds = 15};
    if (dynobs__metric_update(&seg->metrics, &d, seconds * 1000.0, labels) < 0)
        dynobs__count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
}

/* ---- served requests by caller ---- */

#define SERVED 256

/* An entry is claimed by compare-and-swap on used, written, then
 * published by an even seq; a reader trusts what it read only when seq
 * was the same even number before and after. */
struct served {
    uint32_t used;
    uint32_t seq;
    uint8_t trace[16];
    uint8_t caller[8];
    uint8_t span[8];
    uint8_t flags;
};

/* struct served[SERVED], mapped by the first request served on an HTTP/2
 * stream (lazymap.h); NULL before: nothing to find. */
static void *served;

void dynobs__served_add(const struct dynobs_span *s, const struct dynobs_ctx *caller,
                        int16_t *slot)
{
    struct served *tab = dynobs__lazymap(&served, SERVED * sizeof *tab);
    *slot = -1;
    for (int i = 0; tab && i < SERVED; i++) {
        struct served *e = &tab[i];
        uint32_t no = 0;
        if (__atomic_load_n(&e->used, __ATOMIC_RELAXED) ||
            !__atomic_compare_exchange_n(&e->used, &no, 1, 0, __ATOMIC_ACQUIRE,
                                         __ATOMIC_RELAXED))
            continue;
        __atomic_add_fetch(&e->seq, 1, __ATOMIC_ACQ_REL); /* odd: being written */
        memcpy(e->trace, caller->trace_id, 16);
        memcpy(e->caller, caller->span_id, 8);
        memcpy(e->span, s->rec.span_id, 8);
        e->flags = s->rec.trace_flags;
        __atomic_add_fetch(&e->seq, 1, __ATOMIC_RELEASE);
        *slot = (int16_t)i;
        return;
    }
}

void dynobs__served_remove(int16_t *slot)
{
    if (*slot < 0)
        return;
    /* A slot was given out: the table is mapped. */
    struct served *e = (struct served *)dynobs__lazymap_peek(&served) + *slot;
    *slot = -1;
    __atomic_add_fetch(&e->seq, 1, __ATOMIC_ACQ_REL);
    memset(e->caller, 0, 8);
    __atomic_add_fetch(&e->seq, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&e->used, 0, __ATOMIC_RELEASE);
}

int dynobs__served_find(const uint8_t trace[16], const uint8_t caller[8], char *out, size_t cap)
{
    const struct served *tab = dynobs__lazymap_peek(&served);
    for (int i = 0; tab && i < SERVED; i++) {
        const struct served *e = &tab[i];
        if (!__atomic_load_n(&e->used, __ATOMIC_ACQUIRE))
            continue;
        uint32_t before = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
        uint8_t t[16], c[8], sp[8], fl;
        memcpy(t, e->trace, 16);
        memcpy(c, e->caller, 8);
        memcpy(sp, e->span, 8);
        fl = e->flags;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if ((before & 1u) || __atomic_load_n(&e->seq, __ATOMIC_RELAXED) != before)
            continue;
        if (!memcmp(t, trace, 16) && !memcmp(c, caller, 8))
            return dynobs__traceparent_format(t, sp, fl, out, cap) < 0 ? -ENOENT
                                                                         : DYNOBS_TRACEPARENT_LEN;
    }
    return -ENOENT;
}
