/* The wire encoder of span and log batches (otlp_batch.c, otlp_records.c)
 * against the protobuf-c encoder it replaced (otlp_ref_pbc.c): the same
 * batches must give the same bytes. Batches are built from hand-picked
 * records that reach every field (ids, parent, kind, times, attributes of
 * every type, events and their attributes, status, flags, tracestate,
 * dropped counts, several processes, invalid records) and from seeded
 * random ones, with lengths on both sides of every varint size. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "layout.h"
#include "otlp_encode.h"
#include "otlp_ref_pbc.h"
#include "otlp_wire.h"
#include "process_resource.h"
#include "queue.h"
#include "record.h"

#define REC_CAP (96u * 1024u)

static struct dx_resource *resource(const char *service, int pid, int extra)
{
    struct dx_resource *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    r->refs = 1;
    r->pid = pid;
    snprintf(r->service, sizeof r->service, "%s", service);
    r->attrs = calloc(4, sizeof *r->attrs);
    cr_assert_not_null(r->attrs);
    r->attrs[r->nattrs].key = strdup("service.name");
    r->attrs[r->nattrs++].val = strdup(service);
    r->attrs[r->nattrs].key = strdup("host.name");
    r->attrs[r->nattrs++].val = strdup("testhost");
    if (extra) {
        /* Long enough for two-byte lengths in the KeyValue and the Resource. */
        char v[300];
        memset(v, 'v', sizeof v - 1);
        v[sizeof v - 1] = '\0';
        r->attrs[r->nattrs].key = strdup("process.command_line");
        r->attrs[r->nattrs++].val = strdup(v);
    }
    return r;
}

static void resource_free(struct dx_resource *r)
{
    cr_assert_eq(r->refs, 1, "every queued record let go of its resource");
    dx_resource_unref(r);
}

/* Writes the header and the fixed part in front of a body of body bytes
 * already in place; returns the record's length, padded to 16. */
static size_t seal(uint8_t *buf, int type, uint16_t flags, const void *f, size_t flen, size_t body)
{
    struct dynobs_rec_hdr h = {.type = (uint16_t)type, .flags = flags};
    size_t len = (sizeof h + flen + body + 15) & ~(size_t)15;
    cr_assert_leq(len, REC_CAP);
    h.len = (uint32_t)len;
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, f, flen);
    return len;
}

/* A deterministic generator (xorshift), so that a failure repeats. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* n bytes of text, now and then with a NUL in it (protobuf-c cut strings
 * there, and the wire encoder must too). */
static void text(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + below(26));
    if (n && below(8) == 0)
        s[below(n)] = '\0';
}

/* A string length: mostly short, sometimes across a varint boundary. */
static size_t str_len(size_t max)
{
    static const size_t edges[] = {0, 1, 126, 127, 128, 129, 255, 300, 16383, 16384, 20000};
    size_t n = below(4) ? below(24) : edges[below(sizeof edges / sizeof edges[0])];
    return n > max ? max : n;
}

static size_t put_attr(uint8_t *p, size_t room, uint8_t tag)
{
    char key[256], val[20001];
    size_t klen = 1 + (below(6) ? below(30) : below(255));
    text(key, klen);
    int type = (int)(1 + below(4));
    size_t vlen = 0;
    union {
        int64_t i;
        double d;
        uint64_t u;
    } v;
    switch (type) {
    case DYNOBS_ATTR_STRING:
        vlen = str_len(sizeof val - 1);
        text(val, vlen);
        break;
    case DYNOBS_ATTR_BOOL:
        v.i = (int64_t)below(2);
        break;
    case DYNOBS_ATTR_INT: {
        static const int64_t ints[] = {0, 1, -1, 127, 128, INT64_MIN, INT64_MAX, -300};
        v.i = below(2) ? ints[below(8)] : (int64_t)rnd();
        break;
    }
    default:
        v.d = below(3) ? (double)(int64_t)rnd() / 7.0 : -0.0;
        break;
    }
    return dynobs__item_put_attr(p, room, tag, key, klen, type,
                                 type == DYNOBS_ATTR_STRING ? (const void *)val : &v, vlen,
                                 (uint8_t)below(2));
}

static size_t put_event(uint8_t *p, size_t room)
{
    char name[255];
    size_t n = str_len(sizeof name);
    text(name, n);
    size_t used = dynobs__item_put_event(p, room, name, n, rnd());
    if (used) {
        uint16_t dropped = below(3) ? 0 : (uint16_t)below(400);
        memcpy(p + DYNOBS_ITEM_HDR + 8, &dropped, 2);
    }
    return used;
}

static size_t random_span(uint8_t *buf)
{
    memset(buf, 0, REC_CAP);
    struct dynobs_span_rec f = {0};
    for (int i = 0; i < 16; i++)
        f.trace_id[i] = (uint8_t)rnd();
    f.trace_id[0] |= 1;
    for (int i = 0; i < 8; i++) {
        f.span_id[i] = (uint8_t)rnd();
        f.parent_span_id[i] = (uint8_t)rnd();
    }
    f.span_id[7] |= 1;
    f.start_ns = rnd() >> 1;
    f.end_ns = f.start_ns + below(1u << 30);
    f.tid = (uint32_t)rnd();
    f.kind = (uint8_t)(1 + below(5));
    f.status = (uint8_t)below(3);
    f.trace_flags = (uint8_t)rnd();
    f.span_flags = (uint8_t)below(4);
    f.dropped_attrs = below(2) ? 0 : (uint16_t)below(1000);
    f.dropped_events = below(2) ? 0 : (uint16_t)below(1000);
    static const char *states[] = {"ot=th:8;rv:ab,vendor=x", "ot=th:8", "vendor=x,a=b", "ot=th:0"};
    char ts[300];
    size_t tsl = 0;
    if (below(2)) {
        if (below(4)) {
            const char *s = states[below(4)];
            tsl = strlen(s);
            memcpy(ts, s, tsl);
        } else {
            tsl = str_len(sizeof ts);
            text(ts, tsl);
        }
    }
    char name[300], msg[300];
    f.name_len = (uint16_t)str_len(sizeof name);
    text(name, f.name_len);
    f.status_msg_len = f.status == DYNOBS_STATUS_ERROR ? (uint16_t)str_len(sizeof msg) : 0;
    text(msg, f.status_msg_len);
    f.tracestate_len = (uint16_t)tsl;
    uint8_t *body = buf + sizeof(struct dynobs_rec_hdr) + sizeof f;
    size_t room = REC_CAP - sizeof(struct dynobs_rec_hdr) - sizeof f - 16, o = 0;
    memcpy(body + o, name, f.name_len);
    o += f.name_len;
    memcpy(body + o, msg, f.status_msg_len);
    o += f.status_msg_len;
    memcpy(body + o, ts, tsl);
    o += tsl;
    /* Items in any order the decoder accepts: event attributes only
     * after some event, attributes before, between and after events. */
    size_t nitems = below(4) ? below(8) : below(60);
    int seen_event = 0;
    for (size_t i = 0; i < nitems; i++) {
        size_t r = below(10), used;
        if (r < 5) {
            used = put_attr(body + o, room - o, DYNOBS_ITEM_SPAN_ATTR);
            f.attr_count += used ? 1 : 0;
        } else if (r < 7 || !seen_event) {
            used = put_event(body + o, room - o);
            f.event_count += used ? 1 : 0;
            seen_event |= used != 0;
        } else {
            used = put_attr(body + o, room - o, DYNOBS_ITEM_EVENT_ATTR);
        }
        o += used;
    }
    f.body_len = (uint32_t)o;
    static const uint16_t rec_flags[] = {0, DYNOBS_RECF_UNSAMPLED, DYNOBS_RECF_KEEP,
                                         DYNOBS_RECF_UNSAMPLED | DYNOBS_RECF_KEEP,
                                         DYNOBS_RECF_TRUNCATED};
    size_t len = seal(buf, DYNOBS_REC_SPAN, rec_flags[below(5)], &f, sizeof f, o);
    struct dynobs_span_view v;
    cr_assert_eq(dynobs__span_decode(buf, len, &v), 0, "the test's span must be valid");
    return len;
}

static size_t random_log(uint8_t *buf)
{
    memset(buf, 0, REC_CAP);
    struct dynobs_log_rec f = {0};
    if (below(2)) {
        for (int i = 0; i < 16; i++)
            f.trace_id[i] = (uint8_t)rnd();
        for (int i = 0; i < 8; i++)
            f.span_id[i] = (uint8_t)rnd();
    }
    f.time_ns = rnd();
    f.tid = (uint32_t)rnd();
    f.severity = (uint8_t)below(25);
    f.trace_flags = (uint8_t)rnd();
    f.dropped_attrs = (uint16_t)below(3);
    char sev[300], body[20001];
    f.severity_text_len = (uint16_t)str_len(sizeof sev);
    text(sev, f.severity_text_len);
    f.body_len = (uint32_t)str_len(sizeof body - 1);
    text(body, f.body_len);
    uint8_t *p = buf + sizeof(struct dynobs_rec_hdr) + sizeof f;
    size_t room = REC_CAP - sizeof(struct dynobs_rec_hdr) - sizeof f - 16, o = 0;
    memcpy(p + o, sev, f.severity_text_len);
    o += f.severity_text_len;
    memcpy(p + o, body, f.body_len);
    o += f.body_len;
    size_t items_at = o, n = below(3) ? below(6) : below(40);
    for (size_t i = 0; i < n; i++) {
        size_t used = put_attr(p + o, room - o, DYNOBS_ITEM_LOG_ATTR);
        f.attr_count += used ? 1 : 0;
        o += used;
    }
    f.items_len = (uint32_t)(o - items_at);
    size_t len = seal(buf, DYNOBS_REC_LOG, 0, &f, sizeof f, o);
    struct dynobs_log_view v;
    cr_assert_eq(dynobs__log_decode(buf, len, &v), 0, "the test's log record must be valid");
    return len;
}

/* Spoils a valid record so that the decoder refuses it. */
static void spoil(uint8_t *rec, enum dx_signal sig)
{
    if (sig == DX_TRACES) {
        struct dynobs_span_rec f;
        memcpy(&f, rec + sizeof(struct dynobs_rec_hdr), sizeof f);
        f.end_ns = f.start_ns - 1;
        memcpy(rec + sizeof(struct dynobs_rec_hdr), &f, sizeof f);
    } else {
        struct dynobs_log_rec f;
        memcpy(&f, rec + sizeof(struct dynobs_rec_hdr), sizeof f);
        f.severity = 99;
        memcpy(rec + sizeof(struct dynobs_rec_hdr), &f, sizeof f);
    }
}

/* Queues n records of sig, each owned by one of the resources, then takes
 * the batch the queue hands over. */
static struct dx_batch *queue_batch(enum dx_signal sig, struct dx_resource **res, size_t nres,
                                    size_t n, int invalid_first)
{
    dx_queue_configure(100000, 100000, 60000);
    uint8_t *rec = malloc(REC_CAP);
    cr_assert_not_null(rec);
    /* Runs of records from one process, as the drain loop queues them,
     * and now and then a lone one from another. */
    size_t owner = below(nres);
    for (size_t i = 0; i < n; i++) {
        if (below(8) == 0)
            owner = below(nres);
        size_t len = sig == DX_TRACES ? random_span(rec) : random_log(rec);
        if ((i == 0 && invalid_first) || below(20) == 0)
            spoil(rec, sig);
        cr_assert_eq(dx_queue_put(sig, res[owner], rec, (uint32_t)len), 0);
    }
    free(rec);
    dx_queue_flush_due(1);
    int metrics, stopping;
    struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
    cr_assert_not_null(b);
    cr_assert_eq(b->count, (uint32_t)n);
    return b;
}

/* Both encoders on one batch: the same item count, the same bytes. The
 * wire encoder writes into w, reused from batch to batch. */
static void same_bytes(const struct dx_batch *b, struct dx_wire *w, const char *what)
{
    uint8_t *ref = NULL;
    size_t ref_len = 0;
    long ref_items = ref_encode_batch(b, &ref, &ref_len);
    long items = dx_encode_batch_into(b, w);
    cr_assert_geq(ref_items, 0);
    cr_assert_eq(items, ref_items, "%s: %ld items, the reference %ld", what, items, ref_items);
    cr_assert_eq(w->len, ref_len, "%s: %zu bytes, the reference %zu", what, w->len, ref_len);
    size_t at = 0;
    while (at < ref_len && w->p[at] == ref[at])
        at++;
    cr_assert_eq(at, ref_len, "%s: first difference at byte %zu of %zu", what, at, ref_len);
    /* And the malloc'ed form the tests and the console use. */
    uint8_t *body = NULL;
    size_t len = 0;
    cr_assert_eq(dx_encode_batch(b, &body, &len), ref_items);
    cr_assert_eq(len, ref_len);
    cr_assert(!memcmp(body, ref, len), "%s", what);
    free(body);
    free(ref);
}

static void random_batches(enum dx_signal sig, uint64_t seed, int rounds)
{
    rng_state = seed;
    struct dx_resource *res[3] = {resource("checkout", 4242, 0), resource("payments", 7, 1),
                                  resource("ledger", 2147483647, 0)};
    struct dx_wire w = {0};
    for (int r = 0; r < rounds; r++) {
        size_t n = below(4) ? 1 + below(12) : 1 + below(200);
        char what[64];
        snprintf(what, sizeof what, "seed %llu round %d", (unsigned long long)seed, r);
        struct dx_batch *b = queue_batch(sig, res, 1 + below(3), n, below(4) == 0);
        same_bytes(b, &w, what);
        dx_batch_free(b);
    }
    dx_wire_free(&w);
    for (int i = 0; i < 3; i++)
        resource_free(res[i]);
}

Test(exporter_otlp_wire, random_span_batches_match_protobuf_c)
{
    random_batches(DX_TRACES, 0x9e3779b97f4a7c15ull, 400);
}

Test(exporter_otlp_wire, random_log_batches_match_protobuf_c)
{
    random_batches(DX_LOGS, 0xd1b54a32d192ed03ull, 300);
}

/* Every field of a span at once, in one process, as a known case beside
 * the random ones. */
Test(exporter_otlp_wire, a_span_with_every_field)
{
    uint8_t *buf = calloc(1, REC_CAP);
    cr_assert_not_null(buf);
    struct dynobs_span_rec f = {0};
    memset(f.trace_id, 0x11, 16);
    memset(f.span_id, 0x22, 8);
    memset(f.parent_span_id, 0x33, 8);
    f.start_ns = 1700000000000000000ull;
    f.end_ns = f.start_ns + 1234;
    f.kind = DYNOBS_SPAN_KIND_CLIENT;
    f.status = DYNOBS_STATUS_ERROR;
    f.trace_flags = 1;
    f.span_flags = DYNOBS_SPANF_HAS_PARENT | DYNOBS_SPANF_PARENT_REMOTE;
    f.dropped_attrs = 3;
    f.dropped_events = 200;
    const char name[] = "GET /items", msg[] = "timed out", ts[] = "ot=th:8;rv:ab,vendor=x";
    f.name_len = sizeof name - 1;
    f.status_msg_len = sizeof msg - 1;
    f.tracestate_len = sizeof ts - 1;
    uint8_t *body = buf + sizeof(struct dynobs_rec_hdr) + sizeof f;
    size_t room = REC_CAP / 2, o = 0;
    memcpy(body + o, name, f.name_len), o += f.name_len;
    memcpy(body + o, msg, f.status_msg_len), o += f.status_msg_len;
    memcpy(body + o, ts, f.tracestate_len), o += f.tracestate_len;
    int64_t i = -42, t = 1;
    double d = 2.5;
    o += dynobs__item_put_attr(body + o, room - o, DYNOBS_ITEM_SPAN_ATTR, "s", 1,
                               DYNOBS_ATTR_STRING, "text", 4, 0);
    o += dynobs__item_put_attr(body + o, room - o, DYNOBS_ITEM_SPAN_ATTR, "i", 1, DYNOBS_ATTR_INT,
                               &i, 0, 0);
    o += dynobs__item_put_event(body + o, room - o, "retry", 5, f.start_ns + 10);
    o += dynobs__item_put_attr(body + o, room - o, DYNOBS_ITEM_EVENT_ATTR, "d", 1,
                               DYNOBS_ATTR_DOUBLE, &d, 0, 0);
    o += dynobs__item_put_attr(body + o, room - o, DYNOBS_ITEM_EVENT_ATTR, "b", 1,
                               DYNOBS_ATTR_BOOL, &t, 0, 0);
    o += dynobs__item_put_attr(body + o, room - o, DYNOBS_ITEM_SPAN_ATTR, "late", 4,
                               DYNOBS_ATTR_BOOL, &t, 0, 0);
    /* Not right after its event: neither encoder sends it. */
    o += dynobs__item_put_attr(body + o, room - o, DYNOBS_ITEM_EVENT_ATTR, "stray", 5,
                               DYNOBS_ATTR_INT, &i, 0, 0);
    o += dynobs__item_put_event(body + o, room - o, "", 0, f.start_ns + 20);
    f.attr_count = 3;
    f.event_count = 2;
    f.body_len = (uint32_t)o;
    struct dx_resource *res[2] = {resource("checkout", 1, 1), resource("payments", 2, 0)};
    struct dx_wire w = {0};
    for (uint16_t flags = 0; flags <= DYNOBS_RECF_UNSAMPLED; flags += DYNOBS_RECF_UNSAMPLED) {
        size_t len = seal(buf, DYNOBS_REC_SPAN, flags, &f, sizeof f, o);
        dx_queue_configure(100, 100, 60000);
        /* Two processes, the first of them with an invalid first record:
         * the order of the processes is that of their first valid one. */
        uint8_t *bad = malloc(len);
        cr_assert_not_null(bad);
        memcpy(bad, buf, len);
        spoil(bad, DX_TRACES);
        cr_assert_eq(dx_queue_put(DX_TRACES, res[0], bad, (uint32_t)len), 0);
        cr_assert_eq(dx_queue_put(DX_TRACES, res[1], buf, (uint32_t)len), 0);
        cr_assert_eq(dx_queue_put(DX_TRACES, res[0], buf, (uint32_t)len), 0);
        cr_assert_eq(dx_queue_put(DX_TRACES, res[1], buf, (uint32_t)len), 0);
        free(bad);
        dx_queue_flush_due(1);
        int metrics, stopping;
        struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
        cr_assert_not_null(b);
        same_bytes(b, &w, flags ? "every field, unsampled" : "every field");
        cr_assert_eq(dx_encode_batch_into(b, &w), 3);
        /* Spot checks of the bytes themselves: the flags field (16,
         * fixed32: sampled, parent known and remote), the stripped or
         * kept threshold. */
        static const uint8_t flags_field[] = {0x85, 0x01, 0x01, 0x03, 0x00, 0x00};
        cr_assert_not_null(memmem(w.p, w.len, flags_field, sizeof flags_field));
        cr_assert_eq(memmem(w.p, w.len, "th:8", 4) != NULL, !flags);
        cr_assert_null(memmem(w.p, w.len, "stray", 5));
        dx_batch_free(b);
    }
    dx_wire_free(&w);
    free(buf);
    resource_free(res[0]);
    resource_free(res[1]);
}

/* A batch whose ScopeSpans takes more than 2 MiB: its length needs four
 * bytes, one more than the encoder leaves for it. */
Test(exporter_otlp_wire, a_request_over_two_mebibytes)
{
    rng_state = 42;
    struct dx_resource *res = resource("big", 3, 0);
    dx_queue_configure(100000, 100000, 60000);
    uint8_t *rec = calloc(1, REC_CAP);
    cr_assert_not_null(rec);
    size_t total = 0;
    for (int i = 0; total < (3u << 20); i++) {
        size_t len;
        do
            len = random_span(rec);
        while (len < 1000);
        cr_assert_eq(dx_queue_put(DX_TRACES, res, rec, (uint32_t)len), 0);
        total += len;
    }
    free(rec);
    dx_queue_flush_due(1);
    int metrics, stopping;
    struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
    cr_assert_not_null(b);
    struct dx_wire w = {0};
    same_bytes(b, &w, "over 2 MiB");
    cr_assert_gt(w.len, (size_t)2 << 20);
    dx_batch_free(b);
    dx_wire_free(&w);
    resource_free(res);
}

/* A batch of nothing valid encodes to an empty request, as before. */
Test(exporter_otlp_wire, no_valid_record_gives_an_empty_request)
{
    rng_state = 7;
    struct dx_resource *res = resource("none", 3, 0);
    dx_queue_configure(100, 100, 60000);
    uint8_t *rec = calloc(1, REC_CAP);
    cr_assert_not_null(rec);
    size_t len = random_span(rec);
    spoil(rec, DX_TRACES);
    cr_assert_eq(dx_queue_put(DX_TRACES, res, rec, (uint32_t)len), 0);
    free(rec);
    dx_queue_flush_due(1);
    int metrics, stopping;
    struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
    cr_assert_not_null(b);
    struct dx_wire w = {0};
    same_bytes(b, &w, "nothing valid");
    cr_assert_eq(w.len, 0);
    dx_batch_free(b);
    dx_wire_free(&w);
    resource_free(res);
}

/* The inline string helpers against libc, at every length up to past
 * their word paths and with a NUL at every place. */
Test(exporter_otlp_wire, short_string_helpers_agree_with_libc)
{
    char s[48], d[48], want[48];
    for (size_t n = 0; n <= 40; n++) {
        for (size_t nul = 0; nul <= n; nul++) {
            for (size_t i = 0; i < n; i++)
                s[i] = (char)('A' + i);
            if (nul < n)
                s[nul] = '\0';
            cr_assert_eq(dx_strnlen(s, n), strnlen(s, n), "n %zu, NUL at %zu", n, nul);
            memset(d, '#', sizeof d);
            memset(want, '#', sizeof want);
            dx_copy((uint8_t *)d, s, n);
            memcpy(want, s, n);
            cr_assert(!memcmp(d, want, sizeof d), "dx_copy of %zu bytes", n);
        }
    }
}
