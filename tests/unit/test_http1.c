/* HTTP/1 client stream recognition, fed in every possible split. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "http/h1.h"
#include "http/h1_scan.h"

static const char REQ[] = "GET /items?id=7 HTTP/1.1\r\nHost: example.com:8080\r\n"
                          "User-Agent: t\r\nAccept: */*\r\n\r\nBODY";

/* Feeds s in pieces of `step` bytes; returns the absolute offset of the
 * end-of-headers point, or -1. */
static long feed_steps(struct dynobs_h1_req *o, const char *s, size_t n, size_t step)
{
    for (size_t off = 0; off < n; off += step) {
        size_t len = n - off < step ? n - off : step;
        long k = dynobs__h1_req_feed(o, (const uint8_t *)s + off, len);
        if (k >= 0)
            return (long)off + k;
    }
    return -1;
}

Test(http1, finds_the_end_of_headers_in_any_split)
{
    size_t n = strlen(REQ);
    long want = (long)(strstr(REQ, "\r\n\r\n") - REQ) + 2;
    for (size_t step = 1; step <= n; step++) {
        struct dynobs_h1_req o = {0};
        cr_assert_eq(feed_steps(&o, REQ, n, step), want, "step %zu", step);
        cr_assert_eq(o.phase, DYNOBS_H1_REQ_HEADERS);
        cr_assert_eq(o.host_len, 16);
        cr_assert_eq(memcmp(o.host, "example.com:8080", 16), 0);
        cr_assert_not(o.has_traceparent);
        struct dynobs_h1_reqline r;
        cr_assert_eq(dynobs__h1_req_parse(&o, &r), 0);
        cr_assert_eq(r.method_len, 3);
        cr_assert_eq(memcmp(r.method, "GET", 3), 0);
        cr_assert_eq(r.target_len, 11);
        cr_assert_eq(memcmp(r.target, "/items?id=7", 11), 0);
        cr_assert_eq(r.minor, 1);
    }
}

Test(http1, notices_a_traceparent_set_by_the_application)
{
    const char *req = "POST / HTTP/1.0\r\nTRACEPARENT:   00-0af7651916cd43dd8448eb211c80319c-"
                      "b7ad6b7169203331-01\r\ntracestate: a=b\r\n\r\n";
    struct dynobs_h1_req o = {0};
    cr_assert_geq(feed_steps(&o, req, strlen(req), 1), 0);
    cr_assert(o.has_traceparent);
    cr_assert(o.has_tracestate);
    cr_assert_eq(o.tp_len, 55);
    cr_assert_eq(memcmp(o.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                        55), 0);
    struct dynobs_h1_reqline r;
    cr_assert_eq(dynobs__h1_req_parse(&o, &r), 0);
    cr_assert_eq(r.minor, 0);
}

Test(http1, lf_only_line_ends_and_header_lookalikes)
{
    const char *req = "GET / HTTP/1.1\nHost: h\nX-Traceparent: no\nhostname: no\n\n";
    struct dynobs_h1_req o = {0};
    long k = feed_steps(&o, req, strlen(req), 1);
    cr_assert_eq(k, (long)strlen(req) - 1);
    cr_assert_not(o.has_traceparent);
    cr_assert_eq(o.host_len, 1);
}

Test(http1, non_http_is_ruled_out_early)
{
    const char *bad[] = {"\x16\x03\x01\x02\x00", "HTTP/1.1 200 OK\r\n", "get / HTTP/1.1\r\n",
                         "GET / SMTP/1.0\r\n", "SSH-2.0-OpenSSH\r\n", "{\"json\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dynobs_h1_req o = {0};
        feed_steps(&o, bad[i], strlen(bad[i]), 1);
        cr_expect_eq(o.phase, DYNOBS_H1_REQ_OFF, "%s", bad[i]);
    }
    cr_assert(dynobs__h1_maybe_request((const uint8_t *)"GET /", 5));
    cr_assert(dynobs__h1_maybe_request((const uint8_t *)"DELETE", 6));
    cr_assert_not(dynobs__h1_maybe_request((const uint8_t *)"HTTP", 4));
    cr_assert_not(dynobs__h1_maybe_request((const uint8_t *)"\x16\x03\x01\x00", 4));
}

Test(http1, very_long_request_line_and_headers)
{
    static char req[20000];
    int n = sprintf(req, "GET /");
    memset(req + n, 'a', 3000);
    n += 3000;
    n += sprintf(req + n, " HTTP/1.1\r\nHost: h\r\nX-Big: ");
    memset(req + n, 'b', 10000);
    n += 10000;
    n += sprintf(req + n, "\r\n\r\n");
    struct dynobs_h1_req o = {0};
    long k = feed_steps(&o, req, (size_t)n, 7);
    cr_assert_eq(k, n - 2);
    cr_assert(o.reqline_trunc);
}

Test(http1, keep_alive_reset)
{
    struct dynobs_h1_req o = {0};
    cr_assert_geq(feed_steps(&o, REQ, strlen(REQ), 5), 0);
    dynobs__h1_req_done(&o);
    cr_assert_eq(dynobs__h1_req_feed(&o, (const uint8_t *)"BODY", 4), -1);
    cr_assert_eq(o.phase, DYNOBS_H1_REQ_BODY);
    dynobs__h1_req_reset(&o);
    cr_assert_eq(o.phase, DYNOBS_H1_REQ_IDLE);
    cr_assert_eq(o.host_len, 0);
    cr_assert_geq(feed_steps(&o, REQ, strlen(REQ), 3), 0);
}

static int in_steps(const char *s, size_t step)
{
    struct dynobs_h1_status in = {.phase = DYNOBS_H1_ST_LINE};
    size_t n = strlen(s);
    for (size_t off = 0; off < n; off += step) {
        size_t len = n - off < step ? n - off : step;
        int rc = dynobs__h1_status_feed(&in, (const uint8_t *)s + off, len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

Test(http1, response_status)
{
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    const char *cont = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nA: b\r\n\r\n";
    for (size_t step = 1; step < 60; step++) {
        cr_assert_eq(in_steps(ok, step), 200);
        cr_assert_eq(in_steps(cont, step), 404);
        cr_assert_eq(in_steps("HTTP/1.0 503 Busy\n\n", step), 503);
        cr_assert_eq(in_steps("HTTP/1.1 101 Switching\r\n\r\n", step), 101);
        cr_assert_eq(in_steps("SSH-2.0\r\n", step), -1);
        cr_assert_eq(in_steps("HTTP/1.1 2x0 what\r\n\r\n", step), -1);
        cr_assert_eq(in_steps("HTTP/1.1 200 OK\r\nA: b\r\n", step), 0); /* not finished */
    }
}

static int resp_steps(const char *s, size_t n, size_t step, int head)
{
    struct dynobs_h1_resp r;
    dynobs__h1_resp_start(&r, head);
    for (size_t off = 0; off < n; off += step) {
        size_t len = n - off < step ? n - off : step;
        int rc = dynobs__h1_resp_feed(&r, (const uint8_t *)s + off, len);
        if (rc != 0)
            return rc == 1 && off + len == n ? r.code : -(int)(off + len);
    }
    return 0;
}

Test(http1, response_completion)
{
    const char *cl = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    const char *ch = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n";
    const char *cont = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 No\r\nContent-Length: 2\r\n\r\nno";
    const char *nob = "HTTP/1.1 204 No Content\r\n\r\n";
    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n";
    for (size_t step = 1; step < 90; step++) {
        cr_assert_eq(resp_steps(cl, strlen(cl), step, 0), 200, "step %zu", step);
        cr_assert_eq(resp_steps(ch, strlen(ch), step, 0), 201, "step %zu", step);
        cr_assert_eq(resp_steps(cont, strlen(cont), step, 0), 404, "step %zu", step);
        cr_assert_eq(resp_steps(nob, strlen(nob), step, 0), 204);
        cr_assert_eq(resp_steps(head, strlen(head), step, 1), 200);
        cr_assert_eq(resp_steps(cl, strlen(cl) - 1, step, 0), 0); /* body not finished */
    }
    struct dynobs_h1_resp r;
    dynobs__h1_resp_start(&r, 0);
    const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
    cr_assert_eq(dynobs__h1_resp_feed(&r, (const uint8_t *)h, strlen(h)), 0);
    cr_assert_eq(dynobs__h1_resp_body(&r, 60000), 0); /* sendfile */
    cr_assert_eq(dynobs__h1_resp_body(&r, 40000), 1);
}

/* What a server captures (host, traceparent, joined tracestate, user
 * agent) is the same whether a header arrives whole or byte by byte. */
Test(http1, server_capture_in_any_split)
{
    const char *req = "PUT /x HTTP/1.1\r\nhost:  h.example:81 \r\nAccept: */*\r\n"
                      "Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
                      "tracestate: a=1\r\nUser-Agent: ua/1.0 (x)\r\nTRACESTATE: b=2\r\n"
                      "Content-Type: text/plain\r\n\r\n";
    size_t n = strlen(req);
    for (size_t step = 1; step <= n; step++) {
        struct dynobs_h1_req o = {.capture = 1};
        cr_assert_eq(feed_steps(&o, req, n, step), (long)n - 2, "step %zu", step);
        cr_assert_eq(o.host_len, 13, "step %zu", step);
        cr_assert_eq(memcmp(o.host, "h.example:81 ", 13), 0);
        cr_assert_eq(o.tp_len, 55, "step %zu", step);
        cr_assert_eq(o.tp_count, 1);
        cr_assert_eq(o.ts_len, 7, "step %zu", step);
        cr_assert_eq(memcmp(o.tracestate, "a=1,b=2", 7), 0);
        cr_assert_eq(o.ua_len, 10, "step %zu", step);
        cr_assert_eq(memcmp(o.user_agent, "ua/1.0 (x)", 10), 0);
    }
}

Test(http1, response_headers_in_any_split)
{
    const char *r = "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\n"
                    "content-length: 4\r\nConnection: keep-alive\r\nX: Content-Length: 9\r\n"
                    "Transfer-Encodings: chunked\r\n\r\nabcd";
    for (size_t step = 1; step <= strlen(r); step++)
        cr_assert_eq(resp_steps(r, strlen(r), step, 0), 200, "step %zu", step);
    const char *bad = "HTTP/2 200 OK\r\n\r\n";
    for (size_t step = 1; step <= strlen(bad); step++)
        cr_assert_lt(resp_steps(bad, strlen(bad), step, 0), 0, "step %zu", step);
}

/* Several tracestate lines form one list (RFC 9110 field order), a long
 * second line included: the conformance suite's 256-character key. */
Test(http1, tracestate_lines_joined_with_a_256_character_key)
{
    char req[700], want[300];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: h\r\ntracestate: foo=1\r\n"
                     "traceparent: 00-12345678901234567890123456789012-1234567890123456-00\r\n"
                     "TraceState:  %0256d=1 \r\n\r\n", 0);
    memset(req + n - 263, 'z', 256); /* the digits */
    strcpy(want, "foo=1,");
    memset(want + 6, 'z', 256);
    strcpy(want + 262, "=1 ");
    for (int step = 1; step <= n; step++) {
        struct dynobs_h1_req o = {.capture = 1};
        cr_assert_eq(feed_steps(&o, req, (size_t)n, (size_t)step), n - 2, "step %d", step);
        cr_assert_eq(o.ts_len, 265, "step %d: %u", step, o.ts_len);
        cr_assert_eq(memcmp(o.tracestate, want, 265), 0, "step %d", step);
        cr_assert_not(o.ts_cut);
    }
}

/* Builds a request whose tracestate lines are the given values. */
static int ts_request(char *req, size_t cap, const char *const *lines, size_t count)
{
    int n = snprintf(req, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (size_t i = 0; i < count; i++)
        n += snprintf(req + n, cap - (size_t)n, "tracestate: %s\r\n", lines[i]);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    return n;
}

/* "a=1" and ten members of 99 characters: 1003 bytes joined. */
static void ten_members(char *line, char *joined)
{
    size_t o = 0;
    for (int i = 0; i < 10; i++) {
        o += (size_t)sprintf(line + o, "%sm%02d=", i ? "," : "", i);
        memset(line + o, 'x', 95);
        o += 95;
    }
    line[o] = '\0';
    sprintf(joined, "a=1,%s", line);
}

/* Past its cap (1023 bytes) the capture ends after the last whole member:
 * a member cut in half would be propagated as another value. Later lines
 * are not kept. */
Test(http1, tracestate_over_the_cap_keeps_whole_members)
{
    static char line[1100], joined[1100], second[1200], req[2600];
    ten_members(line, joined);
    cr_assert_eq(strlen(joined), 1003);
    /* An eleventh member crosses the cap at its 20th byte. */
    snprintf(second, sizeof second, "%s,m10=%095d", line, 0);
    const char *lines[] = {"a=1", second, "late=1"};
    int n = ts_request(req, sizeof req, lines, 3);
    for (int step = 1; step <= n; step++) {
        struct dynobs_h1_req o = {.capture = 1};
        cr_assert_eq(feed_steps(&o, req, (size_t)n, (size_t)step), n - 2, "step %d", step);
        cr_assert(o.ts_cut, "step %d", step);
        cr_assert_eq(o.ts_len, 1003, "step %d: %u", step, o.ts_len);
        cr_assert_eq(memcmp(o.tracestate, joined, 1003), 0, "step %d", step);
    }
    /* A single member longer than the cap leaves nothing. */
    static char huge[1100];
    memset(huge, 'v', 1050);
    memcpy(huge, "k=", 2);
    huge[1050] = '\0';
    const char *one[] = {huge, "b=2"};
    n = ts_request(req, sizeof req, one, 2);
    for (int step = 1; step <= n; step += 7) {
        struct dynobs_h1_req o = {.capture = 1};
        cr_assert_eq(feed_steps(&o, req, (size_t)n, (size_t)step), n - 2, "step %d", step);
        cr_assert(o.ts_cut);
        cr_assert_eq(o.ts_len, 0, "step %d: %u", step, o.ts_len);
    }
}

/* A capture that fills up exactly at a member's end keeps that member:
 * the ',' after it, on the same line or the next, proves it whole. */
Test(http1, tracestate_full_at_a_member_end_keeps_it)
{
    static char line[1100], joined[1100], last[1200], req[2600];
    ten_members(line, joined);
    /* 1003 + ",n=" + 17 = 1023 bytes: exactly the cap. */
    snprintf(last, sizeof last, "%s,n=%017d", line, 0);
    snprintf(joined + 1003, sizeof joined - 1003, ",n=%017d", 0);
    const char *next_line[] = {"a=1", last, "b=2"};
    static char same_line[1300];
    snprintf(same_line, sizeof same_line, "%s,b=2", last);
    const char *same[] = {"a=1", same_line};
    const char *const *cases[] = {next_line, same};
    size_t counts[] = {3, 2};
    for (size_t c = 0; c < 2; c++) {
        int n = ts_request(req, sizeof req, cases[c], counts[c]);
        for (int step = 1; step <= n; step++) {
            struct dynobs_h1_req o = {.capture = 1};
            cr_assert_eq(feed_steps(&o, req, (size_t)n, (size_t)step), n - 2, "step %d", step);
            cr_assert(o.ts_cut, "case %zu step %d", c, step);
            cr_assert_eq(o.ts_len, 1023, "case %zu step %d: %u", c, step, o.ts_len);
            cr_assert_eq(memcmp(o.tracestate, joined, 1023), 0, "case %zu step %d", c, step);
        }
    }
}

Test(http1, correlation_headers_in_any_split)
{
    static const char names[2][64] = {"x-correlation-id", "x-request-id"};
    static const uint8_t lens[2] = {16, 12};
    dynobs__h1_watch_correlation(names, lens, 2);
    static const char req[] = "GET / HTTP/1.1\r\nHost: h\r\nX-Request-ID:  abc-1 \r\n"
                              "x-correlation-id: c\r\nX-Other: z\r\n\r\n";
    for (size_t step = 1; step <= sizeof req; step++) {
        struct dynobs_h1_req o;
        memset(&o, 0, sizeof o);
        o.capture = 1;
        cr_assert_geq(feed_steps(&o, req, sizeof req - 1, step), 0);
        cr_assert_eq(o.corr_seen, 16 | 32, "step %zu", step);
        cr_assert_eq(o.corr_dup | o.corr_cut, 0);
        /* Values as sent after the colon's white space (trailing kept). */
        cr_assert_eq(o.corr_len[1], 6, "step %zu: %u", step, o.corr_len[1]);
        cr_assert(!memcmp(o.corr_val[1], "abc-1 ", 6));
        cr_assert_eq(o.corr_len[0], 1);
        cr_assert_eq(o.corr_val[0][0], 'c');
    }
    /* Twice: ambiguous. Too long: cut, flagged. Not captured: seen only. */
    static const char twice[] = "GET / HTTP/1.1\r\nX-Request-ID: a\r\nx-request-id: b\r\n\r\n";
    struct dynobs_h1_req o;
    memset(&o, 0, sizeof o);
    o.capture = 1;
    cr_assert_geq(feed_steps(&o, twice, sizeof twice - 1, 3), 0);
    cr_assert_eq(o.corr_dup, 32);
    char longreq[400];
    int n = snprintf(longreq, sizeof longreq, "GET / HTTP/1.1\r\nx-request-id: %0200d\r\n\r\n", 7);
    memset(&o, 0, sizeof o);
    o.capture = 1;
    cr_assert_geq(feed_steps(&o, longreq, (size_t)n, 7), 0);
    cr_assert_eq(o.corr_cut, 32);
    memset(&o, 0, sizeof o);
    cr_assert_geq(feed_steps(&o, req, sizeof req - 1, 5), 0);
    cr_assert_eq(o.corr_seen, 16 | 32);
    cr_assert_eq(o.corr_len[1], 0, "a client's view keeps no value");
    dynobs__h1_watch_correlation(names, lens, 0);
}

static const char *no_env(const char *name)
{
    (void)name;
    return NULL;
}

/* The reader's tables start out holding the default correlation headers,
 * so that a process started with them writes none of the tables' pages
 * (h1_request.c); another list replaces them whole, and the defaults
 * come back. */
Test(http1, default_correlation_headers_change_nothing)
{
    static struct dynobs_config c;
    dynobs__config_load(&c, no_env);
    cr_assert_eq(c.ncorr, 2);
    cr_assert_eq(dynobs__h1_watch_correlation(c.corr_names, c.corr_lens, c.ncorr), 0,
                 "the tables' initial contents are not those of DYNOBS_CORRELATION_DEFAULT");
    static const char names[1][64] = {"x-b3-flags"};
    static const uint8_t lens[1] = {10};
    cr_assert_eq(dynobs__h1_watch_correlation(names, lens, 1), 1);
    static const char req[] = "GET / HTTP/1.1\r\nX-Request-ID: a\r\nX-B3-Flags: 1\r\n"
                              "user-agent: u\r\n\r\n";
    for (size_t step = 1; step <= sizeof req; step += 3) {
        struct dynobs_h1_req o;
        memset(&o, 0, sizeof o);
        o.capture = 1;
        cr_assert_geq(feed_steps(&o, req, sizeof req - 1, step), 0);
        cr_assert_eq(o.corr_seen, 16, "step %zu: %u", step, o.corr_seen);
        cr_assert_eq(o.corr_len[0], 1);
        cr_assert_eq(o.corr_val[0][0], '1');
        cr_assert_eq(o.ua_len, 1, "a fixed name of the same length (10) still matches");
    }
    cr_assert_eq(dynobs__h1_watch_correlation(c.corr_names, c.corr_lens, c.ncorr), 1);
    cr_assert_eq(dynobs__h1_watch_correlation(c.corr_names, c.corr_lens, c.ncorr), 0);
    struct dynobs_h1_req o;
    memset(&o, 0, sizeof o);
    o.capture = 1;
    cr_assert_geq(feed_steps(&o, req, sizeof req - 1, 4), 0);
    cr_assert_eq(o.corr_seen, 32, "x-request-id is the second default: %u", o.corr_seen);
}

/* A correlation header's name may be shorter than the word the names are
 * compared by: it is found whole in one buffer as in any split. */
Test(http1, short_correlation_header_names)
{
    static const char names[2][64] = {"rid", "x-id"};
    static const uint8_t lens[2] = {3, 4};
    cr_assert_eq(dynobs__h1_watch_correlation(names, lens, 2), 1);
    static const char req[] = "GET / HTTP/1.1\r\nRID: 7\r\nX-Id: 8\r\nRi: 9\r\n\r\n";
    for (size_t step = 1; step <= sizeof req; step++) {
        struct dynobs_h1_req o;
        memset(&o, 0, sizeof o);
        o.capture = 1;
        cr_assert_geq(feed_steps(&o, req, sizeof req - 1, step), 0);
        cr_assert_eq(o.corr_seen, 16 | 32, "step %zu: %u", step, o.corr_seen);
        cr_assert_eq(o.corr_len[0], 1, "step %zu", step);
        cr_assert_eq(o.corr_val[0][0], '7');
        cr_assert_eq(o.corr_len[1], 1, "step %zu", step);
        cr_assert_eq(o.corr_val[1][0], '8');
    }
}

/* Whether a head declares a body (the server tells a pipelined request
 * from a body by it): Content-Length other than zero, or any
 * Transfer-Encoding, case-insensitive, the line whole or in pieces of
 * every size; look-alike names and a zero length declare none. */
Test(http1, body_declared_in_any_split)
{
    static const struct {
        const char *head;
        int body;
    } cases[] = {
        {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", 1},
        {"POST /a HTTP/1.1\r\ncontent-LENGTH:1\r\nHost: x\r\n\r\n", 1},
        {"POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0},
        {"POST /a HTTP/1.1\r\nContent-Length:  00 \r\n\r\n", 0},
        {"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 1},
        {"POST /a HTTP/1.1\r\nTRANSFER-ENCODING:\r\n\r\n", 1},
        {"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 0},
        {"GET /a HTTP/1.1\r\nContent-Lengthy: 5\r\nX-Content-Length: 5\r\n"
         "Content-Lengt: 5\r\nTransfer-Encodings: x\r\n\r\n",
         0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = strlen(cases[c].head);
        for (size_t step = 1; step <= n; step++) {
            struct dynobs_h1_req o;
            memset(&o, 0, sizeof o);
            o.capture = 1;
            cr_assert_eq(feed_steps(&o, cases[c].head, n, step), (long)n - 2, "case %zu step %zu",
                         c, step);
            cr_assert_eq(o.body, cases[c].body, "case %zu step %zu", c, step);
        }
        /* and reset with the rest of the state for the next request */
        struct dynobs_h1_req o;
        memset(&o, 0, sizeof o);
        feed_steps(&o, cases[c].head, n, n);
        dynobs__h1_req_reset(&o);
        cr_assert_eq(o.body, 0);
    }
}

/* The memos' compare (h1_scan.h), every way (the inline one, and each
 * side's for long heads, AVX2 where the CPU has it): every length up to 300, a
 * difference at each byte found, one just past the end ignored. */
Test(http1, memo_compare_is_exact)
{
    uint8_t a[320], b[320];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (uint8_t)(i * 7 + 3);
    int (*const ways[])(const uint8_t *, const uint8_t *, size_t) = {
        dynobs__h1_same_sse2, dynobs__h1_same, dynobs__h1_same_resp};
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        int (*same)(const uint8_t *, const uint8_t *, size_t) = ways[w];
        for (size_t n = 0; n <= 300; n++) {
            cr_assert(same(a, b, n), "way %zu: equal, n %zu", w, n);
            for (size_t k = 0; k < n; k++) {
                b[k] ^= 0x40;
                cr_assert(!same(a, b, n), "way %zu: byte %zu differs, n %zu", w, k, n);
                b[k] ^= 0x40;
            }
            b[n] ^= 1;
            cr_assert(same(a, b, n), "way %zu: a byte past n %zu is not compared", w, n);
            b[n] ^= 1;
        }
    }
#ifdef DYNOBS_H1_SAME_WIDE
    __builtin_cpu_init();
    cr_assert_eq(dynobs__h1_same_is_avx2(), __builtin_cpu_supports("avx2") != 0,
                 "the long heads' compare is AVX2 exactly where the CPU has it");
#endif
}

/* A traced caller's heads differ in the traceparent value only: the memo
 * takes the new value without reading the head again (repeated), and
 * gives what reading gives; a value that is not all visible bytes, or a
 * change outside it, is read again. */
Test(http1, memo_takes_a_new_traceparent_only)
{
    static const char a[] = "GET /x HTTP/1.1\r\nHost: h\r\ntraceparent: "
                            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
    char b[sizeof a];
    static struct dynobs_h1_req o, plain;
    static struct dynobs_h1_req_memo m;
    const size_t vat = strstr(a, "00-") - a;
    const struct {
        size_t at;
        char c;
        int repeated;
    } cases[] = {{vat + 5, 'a', 1}, {vat + 54, '0', 1}, {vat + 10, ' ', 0},
                 {vat + 10, '\x7f', 0}, {vat - 1, '\t', 0}, {3, '/', 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&o, 0, DYNOBS_H1_REQ_FIXED);
        o.capture = 1;
        m.len = 0;
        cr_assert_geq(dynobs__h1_req_feed_memo(&o, &m, (const uint8_t *)a, sizeof a - 1), 0);
        cr_assert_eq(m.tp_len, 55);
        dynobs__h1_req_reset(&o);
        memcpy(&plain, &o, DYNOBS_H1_REQ_FIXED);
        memcpy(b, a, sizeof a);
        b[cases[i].at] = cases[i].c;
        long k = dynobs__h1_req_feed_memo(&o, &m, (const uint8_t *)b, sizeof a - 1);
        cr_assert_eq(k, dynobs__h1_req_feed(&plain, (const uint8_t *)b, sizeof a - 1), "case %zu", i);
        cr_assert_eq(m.repeated, cases[i].repeated, "case %zu", i);
        cr_assert(!memcmp(&o, &plain, DYNOBS_H1_REQ_FIXED), "case %zu", i);
        cr_assert_eq(o.tp_len, plain.tp_len);
        cr_assert(!memcmp(o.traceparent, plain.traceparent, o.tp_len), "case %zu", i);
    }
    /* The same value elsewhere than in a traceparent line is not taken
     * for it: two lines, or none. */
    static const char two[] = "GET / HTTP/1.1\r\nx-tp: 00-ab\r\ntraceparent: 00-ab\r\n\r\n";
    memset(&o, 0, DYNOBS_H1_REQ_FIXED);
    m.len = 0;
    dynobs__h1_req_feed_memo(&o, &m, (const uint8_t *)two, sizeof two - 1);
    cr_assert_eq(m.tp_len, 5);
    cr_assert_eq(m.tp_at, strstr(two, "traceparent: ") - two + 13);
}
