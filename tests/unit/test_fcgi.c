/* FastCGI as an application server reads and writes it, in every split. */
#include <criterion/criterion.h>
#include <string.h>

#include "fcgi.h"

static size_t record(uint8_t *out, int type, const void *content, size_t n, size_t pad)
{
    const uint8_t hdr[8] = {1, (uint8_t)type, 0, 1, (uint8_t)(n >> 8), (uint8_t)n, (uint8_t)pad, 0};
    memcpy(out, hdr, 8);
    memcpy(out + 8, content, n);
    memset(out + 8 + n, 0, pad);
    return 8 + n + pad;
}

/* A name-value pair, with a 4-byte length for a value of 128 bytes or more. */
static size_t nv(uint8_t *out, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value), o = 0;
    out[o++] = (uint8_t)nl;
    if (vl < 128) {
        out[o++] = (uint8_t)vl;
    } else {
        out[o++] = (uint8_t)(0x80 | (vl >> 24));
        out[o++] = (uint8_t)(vl >> 16);
        out[o++] = (uint8_t)(vl >> 8);
        out[o++] = (uint8_t)vl;
    }
    memcpy(out + o, name, nl);
    memcpy(out + o + nl, value, vl);
    return o + nl + vl;
}

static uint8_t req[4096];
static size_t req_len;
static char longua[300];

static void build(void)
{
    memset(longua, 'u', sizeof longua - 1);
    uint8_t params[2048];
    size_t p = 0;
    p += nv(params + p, "SCRIPT_FILENAME", "/srv/hop.php");
    p += nv(params + p, "REQUEST_METHOD", "GET");
    p += nv(params + p, "REQUEST_URI", "/hop?id=3");
    p += nv(params + p, "HTTP_TRACEPARENT",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    p += nv(params + p, "HTTP_USER_AGENT", longua);
    p += nv(params + p, "SERVER_PROTOCOL", "HTTP/1.1");
    static const uint8_t begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    size_t o = record(req, 1, begin, 8, 0);
    /* The variables split over two PARAMS records, one with padding. */
    o += record(req + o, 4, params, 100, 4);
    o += record(req + o, 4, params + 100, p - 100, 0);
    o += record(req + o, 4, "", 0, 0);
    o += record(req + o, 5, "", 0, 0);
    req_len = o;
}

Test(fcgi, request_variables_in_any_split)
{
    build();
    cr_assert(dynobs__fcgi_maybe_request(req, 8));
    for (size_t step = 1; step <= req_len; step++) {
        struct dynobs_fcgi_req r;
        dynobs__fcgi_req_reset(&r);
        int done = 0;
        for (size_t off = 0; off < req_len && !done; off += step) {
            size_t n = req_len - off < step ? req_len - off : step;
            int rc = dynobs__fcgi_req_feed(&r, req + off, n);
            cr_assert_geq(rc, 0, "step %zu", step);
            done = rc == 1;
        }
        cr_assert(done, "step %zu: the PARAMS never ended", step);
        cr_assert_eq(r.len[DYNOBS_FCGI_METHOD], 3);
        cr_assert(!memcmp(r.val[DYNOBS_FCGI_METHOD], "GET", 3));
        cr_assert_eq(r.len[DYNOBS_FCGI_URI], 9);
        cr_assert_eq(r.len[DYNOBS_FCGI_TRACEPARENT], 55);
        cr_assert(!memcmp(r.val[DYNOBS_FCGI_PROTOCOL], "HTTP/1.1", 8));
        cr_assert_eq(r.len[DYNOBS_FCGI_USER_AGENT], 299, "a 4-byte length");
        cr_assert_eq(r.len[DYNOBS_FCGI_HOST], 0);
    }
}

Test(fcgi, not_fastcgi)
{
    struct dynobs_fcgi_req r;
    dynobs__fcgi_req_reset(&r);
    cr_assert_not(dynobs__fcgi_maybe_request((const uint8_t *)"GET / HTTP/1.1\r\n", 16));
    cr_assert_eq(dynobs__fcgi_req_feed(&r, (const uint8_t *)"GET / HTTP/1.1\r\n", 16), -1);
}

Test(fcgi, response_status_and_end_in_any_split)
{
    static const char head[] = "Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nno";
    static const char head2[] = "Content-type: text/plain\r\n\r\nStatus: 500 in the body";
    static const uint8_t end[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    uint8_t out[512];
    const char *heads[] = {head, head2};
    const int codes[] = {404, 200};
    for (int h = 0; h < 2; h++) {
        size_t o = record(out, 6, heads[h], strlen(heads[h]), 3);
        o += record(out + o, 7, "warn", 4, 0);
        o += record(out + o, 6, "", 0, 0);
        o += record(out + o, 3, end, 8, 0);
        for (size_t step = 1; step <= o; step++) {
            struct dynobs_fcgi_resp r;
            dynobs__fcgi_resp_start(&r);
            int rc = 0;
            size_t off = 0;
            for (; off < o && rc == 0; off += step) {
                size_t n = o - off < step ? o - off : step;
                rc = dynobs__fcgi_resp_feed(&r, out + off, n);
            }
            cr_assert_eq(rc, 1, "step %zu", step);
            cr_assert_eq(r.code, codes[h], "step %zu: %d", step, r.code);
        }
    }
}
