/* The HPACK decoder: RFC 7541's examples, cut fields, eviction, a table
 * whose strings wrap its ring, and the malformed inputs it must refuse
 * (tests/integration/test_hpack.py compares it with an independent
 * implementation on random blocks). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http/hpack.h"

struct seen {
    char text[4096];
    size_t len;
    unsigned fields;
};

static void collect(void *arg, const struct dynobs_hpack_field *f)
{
    struct seen *s = arg;
    s->len += (size_t)snprintf(s->text + s->len, sizeof s->text - s->len, "%.*s=%.*s;",
                               (int)f->name_len, f->name, (int)f->value_len, f->value);
    s->fields++;
}

static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static int decode_hex(struct dynobs_hpack *t, const char *h, struct seen *s)
{
    uint8_t b[1024];
    size_t n = unhex(h, b), used;
    memset(s, 0, sizeof *s);
    int r = dynobs__hpack_decode(t, b, n, 1, &used, collect, s);
    if (!r)
        cr_assert_eq(used, n);
    return r;
}

static struct dynobs_hpack table;

/* RFC 7541 C.3: three requests on one connection, no Huffman coding. */
Test(hpack, rfc_requests_without_huffman)
{
    struct seen s;
    dynobs__hpack_init(&table);
    cr_assert_eq(decode_hex(&table, "828684410f7777772e6578616d706c652e636f6d", &s), 0);
    cr_assert_str_eq(s.text, ":method=GET;:scheme=http;:path=/;:authority=www.example.com;");
    cr_assert_eq(table.size, 57);
    cr_assert_eq(decode_hex(&table, "828684be58086e6f2d6361636865", &s), 0);
    cr_assert_str_eq(s.text, ":method=GET;:scheme=http;:path=/;:authority=www.example.com;"
                             "cache-control=no-cache;");
    cr_assert_eq(table.size, 110);
    cr_assert_eq(decode_hex(&table,
                            "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565", &s),
                 0);
    cr_assert_str_eq(s.text, ":method=GET;:scheme=https;:path=/index.html;"
                             ":authority=www.example.com;custom-key=custom-value;");
    cr_assert_eq(table.count, 3);
    cr_assert_eq(table.size, 164);
}

/* RFC 7541 C.4.1: the same first request, Huffman-coded. */
Test(hpack, rfc_request_with_huffman)
{
    struct seen s;
    dynobs__hpack_init(&table);
    cr_assert_eq(decode_hex(&table, "828684418cf1e3c2e5f23a6ba0ab90f4ff", &s), 0);
    cr_assert_str_eq(s.text, ":method=GET;:scheme=http;:path=/;:authority=www.example.com;");
}

/* A field cut anywhere is left whole for the next call. */
Test(hpack, a_cut_field_waits_for_its_rest)
{
    uint8_t b[64];
    size_t n = unhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565", b);
    uint8_t first[64];
    size_t fn = unhex("828684410f7777772e6578616d706c652e636f6d828684be58086e6f2d6361636865",
                      first);
    for (size_t cut = 0; cut <= n; cut++) {
        struct seen s = {0};
        size_t used, u0;
        dynobs__hpack_init(&table);
        cr_assert_eq(dynobs__hpack_decode(&table, first, fn, 1, &u0, NULL, NULL), 0);
        cr_assert_eq(dynobs__hpack_decode(&table, b, cut, 0, &used, collect, &s), 0);
        cr_assert_leq(used, cut);
        uint8_t rest[64];
        memcpy(rest, b + used, n - used);
        size_t used2;
        cr_assert_eq(dynobs__hpack_decode(&table, rest, n - used, 1, &used2, collect, &s), 0);
        cr_assert_eq(used + used2, n);
        cr_assert_str_eq(s.text, ":method=GET;:scheme=https;:path=/index.html;"
                                 ":authority=www.example.com;custom-key=custom-value;",
                         "cut %zu", cut);
    }
}

/* Entries are evicted oldest first; an entry larger than the table
 * empties it; entries whose bytes wrap the ring read back whole. */
Test(hpack, evicts_and_wraps)
{
    uint8_t b[8192];
    struct seen s;
    size_t used;
    dynobs__hpack_init(&table);
    /* Many literals with incremental indexing, 20-byte values: the ring
     * (16384 bytes) wraps many times at the default 4096 size. */
    for (int i = 0; i < 2000; i++) {
        char v[21];
        snprintf(v, sizeof v, "value-%014d", i);
        size_t n = 0;
        b[n++] = 0x40;
        b[n++] = 5;
        memcpy(b + n, "x-key", 5);
        n += 5;
        b[n++] = 20;
        memcpy(b + n, v, 20);
        n += 20;
        b[n++] = 0x80 | 62; /* the newest entry: the one just added */
        if (i)
            b[n++] = 0x80 | 63; /* the one before */
        memset(&s, 0, sizeof s);
        cr_assert_eq(dynobs__hpack_decode(&table, b, n, 1, &used, collect, &s), 0);
        char want[128], prev[21];
        snprintf(prev, sizeof prev, "value-%014d", i - 1);
        snprintf(want, sizeof want, "x-key=%s;x-key=%s;x-key=%s;", v, v, prev);
        if (i)
            cr_assert_str_eq(s.text, want, "i %d", i);
        cr_assert_leq(table.size, table.max_size);
    }
    cr_assert_eq(table.count, 4096 / (5 + 20 + 32));
    /* A size update to 0 empties it; 16384 is the cap, one more is refused. */
    cr_assert_eq(decode_hex(&table, "20", &s), 0);
    cr_assert_eq(table.count, 0);
    cr_assert_eq(decode_hex(&table, "3fe17f", &s), 0);
    cr_assert_eq(table.max_size, 16384);
    cr_assert_eq(decode_hex(&table, "3fe27f", &s), -E2BIG);
}

Test(hpack, refuses_malformed_blocks)
{
    struct seen s;
    dynobs__hpack_init(&table);
    cr_assert_eq(decode_hex(&table, "80", &s), -EPROTO);           /* index 0 */
    cr_assert_eq(decode_hex(&table, "be", &s), -EPROTO);           /* past the table */
    cr_assert_eq(decode_hex(&table, "ff8080808001", &s), -EPROTO); /* integer too long */
    cr_assert_eq(decode_hex(&table, "0f", &s), -EPROTO);           /* cut at the end */
    /* Huffman: EOS inside, padding of zeros, padding of 8 bits. */
    cr_assert_eq(decode_hex(&table, "000178" "84ffffffff", &s), -EPROTO);
    cr_assert_eq(decode_hex(&table, "000178" "8100", &s), -EPROTO);
    cr_assert_eq(decode_hex(&table, "000178" "82f8ff", &s), -EPROTO);
    /* "a" is 00011, then three 1 bits of padding: fine. */
    cr_assert_eq(decode_hex(&table, "000178" "811f", &s), 0);
    cr_assert_str_eq(s.text, "x=a;");
}

Test(hpack, the_literal_field_reads_back_and_leaves_the_table)
{
    uint8_t b[512];
    char longv[300];
    memset(longv, 'v', sizeof longv);
    size_t n = dynobs__hpack_literal(b, sizeof b, "traceparent", 11, longv, sizeof longv);
    cr_assert_eq(n, dynobs__hpack_literal_size(11, sizeof longv));
    cr_assert_eq(n, 1 + 1 + 11 + 3 + 300);
    cr_assert_eq(dynobs__hpack_literal(b, n - 1, "traceparent", 11, longv, sizeof longv), 0);
    struct seen s = {0};
    size_t used;
    dynobs__hpack_init(&table);
    cr_assert_eq(dynobs__hpack_decode(&table, b, n, 1, &used, collect, &s), 0);
    cr_assert_eq(s.fields, 1);
    cr_assert_eq(strncmp(s.text, "traceparent=vvv", 15), 0);
    cr_assert_eq(table.count, 0);
}
