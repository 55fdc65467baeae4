/* The HTTP/1 recognisers on arbitrary bytes, fed whole and in the pieces
 * the input's first bytes choose. Properties: no crash, and the same
 * outcome whatever the split (the whole-line fast paths and the
 * byte-by-byte paths must agree): the client/server request recogniser's
 * end of headers and captured fields, the response-status reader's
 * result, and the server response tracker's completion point. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "fcgi.h"
#include "http/h1.h"
#include "fuzz.h"


/* Piece lengths from a seed: 1..16 bytes, deterministic per input. */
static size_t piece(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return 1 + (*seed >> 16) % 16;
}

static long feed_out(struct dynobs_h1_req *o, const uint8_t *p, size_t n, uint32_t seed,
                     int split)
{
    for (size_t off = 0; off < n;) {
        size_t len = split ? piece(&seed) : n;
        if (len > n - off)
            len = n - off;
        long k = dynobs__h1_req_feed(o, p + off, len);
        if (k >= 0)
            return (long)off + k;
        if (o->phase == DYNOBS_H1_REQ_OFF)
            return -2;
        off += len;
    }
    return -1;
}

static int feed_in(const uint8_t *p, size_t n, uint32_t seed, int split)
{
    struct dynobs_h1_status in = {.phase = DYNOBS_H1_ST_LINE};
    for (size_t off = 0; off < n;) {
        size_t len = split ? piece(&seed) : n;
        if (len > n - off)
            len = n - off;
        int rc = dynobs__h1_status_feed(&in, p + off, len);
        if (rc != 0)
            return rc;
        off += len;
    }
    return 0;
}

/* FastCGI: the request's outcome (and what it kept) and the response's
 * outcome and status, fed whole or in pieces. */
static int feed_fcgi(const uint8_t *p, size_t n, uint32_t seed, int split,
                     struct dynobs_fcgi_req *r, struct dynobs_fcgi_resp *w, int *wrc)
{
    int rc = 0;
    dynobs__fcgi_req_reset(r);
    dynobs__fcgi_resp_start(w);
    *wrc = 0;
    for (size_t off = 0; off < n;) {
        size_t len = split ? piece(&seed) : n;
        if (len > n - off)
            len = n - off;
        if (rc == 0)
            rc = dynobs__fcgi_req_feed(r, p + off, len);
        if (*wrc == 0)
            *wrc = dynobs__fcgi_resp_feed(w, p + off, len);
        off += len;
    }
    return rc;
}

/* Where the response completes (offset after the last byte), -1 when it
 * is refused, 0 when it needs more. */
static long feed_resp(const uint8_t *p, size_t n, uint32_t seed, int split, int head)
{
    struct dynobs_h1_resp r;
    dynobs__h1_resp_start(&r, head);
    for (size_t off = 0; off < n;) {
        size_t len = split ? piece(&seed) : n;
        if (len > n - off)
            len = n - off;
        int rc = dynobs__h1_resp_feed(&r, p + off, len);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            /* Completion is reported within the piece that holds the last
             * byte: compare pieces, not bytes, so split runs can differ
             * only by where that piece ends. Report the code too. */
            return (long)r.code;
        }
        off += len;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = (uint32_t)data[0] << 8 | data[1];
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    for (int capture = 0; capture < 2; capture++) {
        struct dynobs_h1_req whole = {.capture = (uint8_t)capture};
        struct dynobs_h1_req split = {.capture = (uint8_t)capture};
        long a = feed_out(&whole, p, n, seed, 0), b = feed_out(&split, p, n, seed, 1);
        CHECK(a == b);
        if (a >= 0) {
            CHECK(whole.host_len == split.host_len &&
                   !memcmp(whole.host, split.host, whole.host_len));
            CHECK(whole.tp_len == split.tp_len && whole.tp_count == split.tp_count &&
                   !memcmp(whole.traceparent, split.traceparent, whole.tp_len));
            CHECK(whole.ts_len == split.ts_len && whole.ts_cut == split.ts_cut &&
                   !memcmp(whole.tracestate, split.tracestate, whole.ts_len));
            CHECK(whole.ua_len == split.ua_len &&
                   !memcmp(whole.user_agent, split.user_agent, whole.ua_len));
            CHECK(whole.reqline_len == split.reqline_len &&
                   !memcmp(whole.reqline, split.reqline, whole.reqline_len));
            struct dynobs_h1_reqline r;
            if (dynobs__h1_req_parse(&whole, &r) == 0)
                CHECK(r.target + r.target_len <= whole.reqline + whole.reqline_len);
        }
    }
    CHECK(feed_in(p, n, seed, 0) == feed_in(p, n, seed, 1));
    static struct dynobs_fcgi_req fa, fb;
    struct dynobs_fcgi_resp wa, wb;
    int wra, wrb;
    int ra = feed_fcgi(p, n, seed, 0, &fa, &wa, &wra), rb = feed_fcgi(p, n, seed, 1, &fb, &wb, &wrb);
    CHECK(ra == rb && wra == wrb && wa.code == wb.code);
    for (int i = 0; ra == 1 && i < DYNOBS_FCGI_NPARAMS; i++)
        CHECK(fa.len[i] == fb.len[i] && fa.cut[i] == fb.cut[i] &&
              !memcmp(fa.val[i], fb.val[i], fa.len[i]));
    for (int head = 0; head < 2; head++)
        CHECK(feed_resp(p, n, seed, 0, head) == feed_resp(p, n, seed, 1, head));
    return 0;
}
