/* The HTTP/1 head memos (h1.h: dynobs_h1_req_memo, dynobs_h1_resp_memo)
 * against reading. An input is a first head A and a second head B made
 * from it (the same bytes, with more after them, with one byte changed,
 * or cut short, as the input's first bytes choose; and, when A has a
 * traceparent line, A with that value rewritten): A goes through a
 * reader with the memo, the reader starts over (the next request on the
 * connection), then B; another reader reads B without a memo. Property:
 * the same outcome and the same state (the request reader's fixed part
 * and the fields it captured; the response tracker's whole state), so a
 * memo's answer is always the one reading gives. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "http/h1.h"

/* B from A: kind 0 the same bytes, 1 A and the rest of the input after
 * it, 2 A with byte at changed to x, 3 A cut to at bytes. */
static size_t make_b(uint8_t *b, const uint8_t *a, size_t an, const uint8_t *rest, size_t rn,
                     unsigned kind, size_t at, uint8_t x)
{
    memcpy(b, a, an);
    switch (kind) {
    case 1:
        memcpy(b + an, rest, rn);
        return an + rn;
    case 2:
        if (an)
            b[at % an] = x;
        return an;
    case 3:
        return an ? at % an : 0;
    default:
        return an;
    }
}

#define SAME_FIELD(x, y, f, len) ((x).len == (y).len && !memcmp((x).f, (y).f, (x).len))

static void check_req(const uint8_t *a, size_t an, const uint8_t *b, size_t bn, uint8_t capture)
{
    static struct dynobs_h1_req o, plain;
    static struct dynobs_h1_req_memo m;
    memset(&o, 0, DYNOBS_H1_REQ_FIXED);
    o.capture = capture;
    m.len = 0;
    dynobs__h1_req_feed_memo(&o, &m, a, an);
    dynobs__h1_req_reset(&o);
    /* (the same state before B: a reader that found no HTTP stays off) */
    memcpy(&plain, &o, DYNOBS_H1_REQ_FIXED);
    long k = dynobs__h1_req_feed_memo(&o, &m, b, bn);
    long want = dynobs__h1_req_feed(&plain, b, bn);
    CHECK(k == want);
    CHECK(!memcmp(&o, &plain, DYNOBS_H1_REQ_FIXED));
    CHECK(SAME_FIELD(o, plain, reqline, reqline_len));
    CHECK(SAME_FIELD(o, plain, host, host_len));
    CHECK(SAME_FIELD(o, plain, traceparent, tp_len));
    CHECK(SAME_FIELD(o, plain, tracestate, ts_len));
    CHECK(SAME_FIELD(o, plain, user_agent, ua_len));
    CHECK(SAME_FIELD(o, plain, baggage, bag_len));
}

static int same_resp(const struct dynobs_h1_resp *x, const struct dynobs_h1_resp *y)
{
    return x->phase == y->phase && x->line_start == y->line_start && x->match == y->match &&
           x->in_value == y->in_value && x->chunked == y->chunked &&
           x->has_length == y->has_length && x->head_request == y->head_request &&
           x->bad == y->bad && x->status_len == y->status_len && x->te_len == y->te_len &&
           x->code == y->code && x->line_len == y->line_len && x->length == y->length &&
           x->remaining == y->remaining && x->chunk == y->chunk &&
           !memcmp(x->status, y->status, x->status_len) && !memcmp(x->te, y->te, x->te_len);
}

static void check_resp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn, int head)
{
    static struct dynobs_h1_resp_memo m;
    struct dynobs_h1_resp r, plain;
    m.len = 0;
    dynobs__h1_resp_start(&r, head);
    dynobs__h1_resp_feed_memo(&r, &m, a, an);
    dynobs__h1_resp_start(&r, head);
    int rc = dynobs__h1_resp_feed_memo(&r, &m, b, bn);
    dynobs__h1_resp_start(&plain, head);
    int want = dynobs__h1_resp_feed(&plain, b, bn);
    CHECK(rc == want);
    CHECK(same_resp(&r, &plain));
}

/* B from A with its first traceparent line's value rewritten from the
 * rest of the input (the bytes a traced caller changes from one request
 * to the next; any bytes, so that runs that are not visible bytes, or
 * that hold a line end, are tried too): its length, 0 when A has no
 * "traceparent:" line. */
static size_t retrace(uint8_t *b, const uint8_t *a, size_t an, const uint8_t *rest, size_t rn)
{
    static const char key[] = "\ntraceparent:";
    const uint8_t *at = an >= sizeof key ? memmem(a, an, key, sizeof key - 1) : NULL;
    if (!at)
        return 0;
    memcpy(b, a, an);
    size_t v = (size_t)(at - a) + sizeof key - 1;
    while (v < an && b[v] == ' ')
        v++;
    for (size_t k = 0; v + k < an && k < rn && a[v + k] != '\r' && a[v + k] != '\n'; k++)
        b[v + k] = rest[k];
    return an;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t b[2 * 4096];
    if (size < 5 || size > 4096)
        return 0;
    unsigned kind = data[0] & 3;
    size_t at = data[1];
    uint8_t x = data[2];
    size_t an = data[3] < size - 4 ? data[3] + (size_t)(data[0] >> 2) * 256 : size - 4;
    if (an > size - 4)
        an = size - 4;
    const uint8_t *a = data + 4;
    size_t bn = make_b(b, a, an, a + an, size - 4 - an, kind, at, x);
    for (uint8_t capture = 0; capture < 2; capture++)
        check_req(a, an, b, bn, capture);
    for (int head = 0; head < 2; head++)
        check_resp(a, an, b, bn, head);
    bn = retrace(b, a, an, a + an, size - 4 - an);
    for (uint8_t capture = 0; bn && capture < 2; capture++)
        check_req(a, an, b, bn, capture);
    return 0;
}
