/* W3C Trace Context Level 2: traceparent and tracestate conformance. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>

#include "tracecontext.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

static int tp(const char *s, struct dynobs_traceparent *out)
{
    return dynobs__traceparent_parse(s, strlen(s), out);
}

Test(traceparent, valid_version_00)
{
    struct dynobs_traceparent p;
    cr_assert_eq(tp("00-" TID "-" PID "-01", &p), 0);
    char hex[33];
    dynobs__hex_encode(p.trace_id, 16, hex);
    hex[32] = 0;
    cr_assert_str_eq(hex, TID);
    dynobs__hex_encode(p.parent_id, 8, hex);
    hex[16] = 0;
    cr_assert_str_eq(hex, PID);
    cr_assert_eq(p.flags, DYNOBS_FLAG_SAMPLED);
    cr_assert_eq(tp("00-" TID "-" PID "-00", &p), 0);
    cr_assert_eq(p.flags, 0);
}

Test(traceparent, random_flag_and_unknown_flags)
{
    struct dynobs_traceparent p;
    cr_assert_eq(tp("00-" TID "-" PID "-03", &p), 0);
    cr_assert_eq(p.flags, DYNOBS_FLAG_SAMPLED | DYNOBS_FLAG_RANDOM);
    /* Unknown flag bits are ignored when parsing, never propagated. */
    cr_assert_eq(tp("00-" TID "-" PID "-ff", &p), 0);
    cr_assert_eq(p.flags, DYNOBS_FLAG_SAMPLED | DYNOBS_FLAG_RANDOM);
    cr_assert_eq(tp("00-" TID "-" PID "-08", &p), 0);
    cr_assert_eq(p.flags, 0);
}

Test(traceparent, optional_whitespace_around_value)
{
    struct dynobs_traceparent p;
    cr_assert_eq(tp(" \t00-" TID "-" PID "-01\t ", &p), 0);
    cr_assert_eq(p.flags, 1);
}

Test(traceparent, higher_versions)
{
    struct dynobs_traceparent p;
    /* A higher version is parsed as 00 by its first four fields. */
    cr_assert_eq(tp("01-" TID "-" PID "-01", &p), 0);
    cr_assert_eq(tp("cc-" TID "-" PID "-01-what-the-future-will-be-like", &p), 0);
    cr_assert_eq(p.flags, 1);
    /* ...but what follows must start with '-'. */
    cr_assert_eq(tp("cc-" TID "-" PID "-01.what-the-future-will-be-like", &p), -EINVAL);
    cr_assert_eq(tp("cc-" TID "-" PID "-0", &p), -EINVAL);
    /* Version ff is invalid. */
    cr_assert_eq(tp("ff-" TID "-" PID "-01", &p), -EINVAL);
}

Test(traceparent, invalid_inputs)
{
    struct dynobs_traceparent p;
    memset(&p, 0x55, sizeof p);
    const char *bad[] = {
        "",
        "00",
        "00-" TID "-" PID "-01-",          /* version 00 with trailing data */
        "00-" TID "-" PID "-01-extra",
        "00-" TID "-" PID "-1",            /* short flags */
        "00-" TID "-" PID,                 /* missing flags */
        "00-" TID "-" PID "-0x",           /* non-hex flags */
        "00-" TID "-" PID "-0G",
        "0-" TID "-" PID "-01",            /* short version */
        "0A-" TID "-" PID "-01",           /* uppercase version */
        "0g-" TID "-" PID "-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01", /* uppercase trace id */
        "00-" TID "-00F067AA0BA902B7-01",  /* uppercase parent id */
        "00-00000000000000000000000000000000-" PID "-01", /* all-zero trace id */
        "00-" TID "-0000000000000000-01",  /* all-zero parent id */
        "00-4bf92f3577b34da6a3ce929d0e0e473-" PID "-01",  /* short trace id */
        "00-" TID "-00f067aa0ba902b-01",   /* short parent id */
        "00_" TID "-" PID "-01",           /* wrong separators */
        "00-" TID "_" PID "-01",
        "00-" TID "-" PID "_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-" PID "-01", /* non-hex */
        "00-" TID "-00f067aa0ba9 2b7-01",  /* space inside */
        "00 -" TID "-" PID "-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(tp(bad[i], &p), -EINVAL, "accepted: '%s'", bad[i]);
    /* A refused parse leaves the output untouched. */
    cr_assert_eq(p.flags, 0x55);
    cr_assert_eq(dynobs__traceparent_parse(NULL, 0, &p), -EINVAL);
}

Test(traceparent, format_round_trip)
{
    uint8_t t[16], s[8];
    for (int i = 0; i < 16; i++)
        t[i] = (uint8_t)(i * 17 + 1);
    for (int i = 0; i < 8; i++)
        s[i] = (uint8_t)(0xf0 + i);
    char buf[56];
    cr_assert_eq(dynobs__traceparent_format(t, s, 0x03, buf, sizeof buf), 55);
    cr_assert_str_eq(buf, "00-0112233445566778899aabbccddeef00-f0f1f2f3f4f5f6f7-03");
    struct dynobs_traceparent p;
    cr_assert_eq(tp(buf, &p), 0);
    cr_assert_eq(memcmp(p.trace_id, t, 16), 0);
    cr_assert_eq(memcmp(p.parent_id, s, 8), 0);
    cr_assert_eq(p.flags, 3);
    cr_assert_eq(dynobs__traceparent_format(t, s, 1, buf, 55), -ERANGE);
}

/* A reference traceparent parser written for reading, not speed: one
 * character at a time, in the order the spec states the rules. The
 * library's table-driven parser must agree with it on every input. */
static int ref_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int ref_parse(const char *s, size_t n, struct dynobs_traceparent *out)
{
    while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n < 55)
        return -EINVAL;
    uint8_t b[28]; /* version, 16 trace id bytes, 8 parent id bytes, flags */
    size_t nb = 0;
    for (size_t i = 0; i < 55; i += 2) {
        if (i == 2 || i == 35 || i == 52) {
            if (s[i] != '-')
                return -EINVAL;
            i--; /* the next field starts right after the dash */
            continue;
        }
        int hi = ref_hex(s[i]), lo = ref_hex(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        b[nb++] = (uint8_t)(hi * 16 + lo);
    }
    cr_assert_eq(nb, 26);
    uint8_t version = b[0];
    if (version == 0xff)
        return -EINVAL;
    if (version == 0 && n != 55)
        return -EINVAL;
    if (version != 0 && n > 55 && s[55] != '-')
        return -EINVAL;
    int zt = 1, zp = 1;
    for (int i = 0; i < 16; i++)
        zt &= b[1 + i] == 0;
    for (int i = 0; i < 8; i++)
        zp &= b[17 + i] == 0;
    if (zt || zp)
        return -EINVAL;
    memcpy(out->trace_id, b + 1, 16);
    memcpy(out->parent_id, b + 17, 8);
    out->flags = b[25] & DYNOBS_FLAGS_KNOWN;
    return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static size_t accepted, rejected;

/* Both parsers on one input: same verdict, same result, and the output
 * left untouched on a rejection. */
static void same(const char *s, size_t n)
{
    struct dynobs_traceparent got, want;
    memset(&got, 0xa5, sizeof got);
    memset(&want, 0xa5, sizeof want);
    int rc = dynobs__traceparent_parse(s, n, &got);
    int ref = ref_parse(s, n, &want);
    cr_assert_eq(rc, ref, "parse gives %d, the reference %d, on \"%.*s\"", rc, ref, (int)n, s);
    cr_assert_eq(memcmp(&got, &want, sizeof got), 0, "results differ on \"%.*s\"", (int)n, s);
    if (rc == 0)
        accepted++;
    else
        rejected++;
}

static void random_header(char *buf, const char *version)
{
    static const char hex[] = "0123456789abcdef";
    memcpy(buf, version, 2);
    buf[2] = buf[35] = buf[52] = '-';
    for (int i = 3; i < 55; i++)
        if (i != 35 && i != 52)
            buf[i] = hex[rnd() % 16];
}

Test(traceparent, agrees_with_a_reference_parser)
{
    /* Every byte value may matter to a table: all 256 are tried in every
     * position of a few valid headers, version 00 and a later one. */
    static const char *versions[] = {"00", "01", "cc", "fe", "ff", "0f", "f0"};
    char buf[128];
    for (size_t v = 0; v < sizeof versions / sizeof *versions; v++) {
        for (int round = 0; round < 3; round++) {
            random_header(buf, versions[v]);
            if (round == 1) {
                /* All-zero ids: the mutations below then make each id
                 * non-zero through each of its digits in turn. */
                memset(buf + 3, '0', 32);
                memset(buf + 36, '0', 16);
            }
            same(buf, 55);
            for (size_t pos = 0; pos < 55; pos++) {
                char keep = buf[pos];
                for (int c = 0; c < 256; c++) {
                    buf[pos] = (char)c;
                    same(buf, 55);
                }
                buf[pos] = keep;
            }
            /* Truncations, and extensions by each of a set of characters,
             * one and several. */
            for (size_t n = 0; n < 55; n++)
                same(buf, n);
            static const char ext[] = "-0aAf \t.xff-";
            for (size_t e = 0; e < sizeof ext - 1; e++) {
                for (size_t k = 1; k <= 8; k++) {
                    memset(buf + 55, ext[e], k);
                    same(buf, 55 + k);
                    buf[55] = '-';
                    same(buf, 55 + k);
                }
            }
            /* Optional whitespace around, with and without the rest. */
            char pad[140];
            for (int lead = 0; lead < 3; lead++) {
                for (int trail = 0; trail < 3; trail++) {
                    memset(pad, ' ', (size_t)lead);
                    if (lead)
                        pad[0] = '\t';
                    memcpy(pad + lead, buf, 55);
                    memset(pad + lead + 55, '\t', (size_t)trail);
                    same(pad, (size_t)lead + 55 + (size_t)trail);
                    same(pad, (size_t)lead + 54 + (size_t)trail);
                }
            }
        }
    }
    /* Random strings over the characters that matter, at and around the
     * lengths that matter, with the dashes mostly in place. */
    static const char alpha[] = "0123456789abcdefABCDEF- \tg\xff";
    for (int round = 0; round < 200000; round++) {
        size_t n = 50 + rnd() % 15;
        random_header(buf, (rnd() & 1) ? "00" : "01");
        for (size_t i = 55; i < n; i++)
            buf[i] = alpha[rnd() % (sizeof alpha - 1)];
        int edits = (int)(rnd() % 3);
        for (int k = 0; k < edits; k++)
            buf[rnd() % n] = alpha[rnd() % (sizeof alpha - 1)];
        if (rnd() % 4 == 0) /* small ids, so that zero ones come up */
            memset(buf + 3 + rnd() % 32, '0', 32 - rnd() % 32);
        same(buf, n);
    }
    cr_assert_gt(accepted, 10000);
    cr_assert_gt(rejected, 10000);
}

Test(traceparent, format_agrees_with_snprintf)
{
    uint8_t t[16], s[8];
    char buf[56], want[56];
    for (int round = 0; round < 100000; round++) {
        for (int i = 0; i < 16; i++)
            t[i] = (uint8_t)rnd();
        for (int i = 0; i < 8; i++)
            s[i] = (uint8_t)rnd();
        uint8_t flags = (uint8_t)rnd();
        if (round < 256) { /* every byte value in every position */
            memset(t, round, 16);
            memset(s, round, 8);
            flags = (uint8_t)round;
        }
        int o = 0;
        o += snprintf(want + o, sizeof want - (size_t)o, "00-");
        for (int i = 0; i < 16; i++)
            o += snprintf(want + o, sizeof want - (size_t)o, "%02x", t[i]);
        o += snprintf(want + o, sizeof want - (size_t)o, "-");
        for (int i = 0; i < 8; i++)
            o += snprintf(want + o, sizeof want - (size_t)o, "%02x", s[i]);
        snprintf(want + o, sizeof want - (size_t)o, "-%02x", flags);
        cr_assert_eq(dynobs__traceparent_format(t, s, flags, buf, sizeof buf), 55);
        cr_assert_str_eq(buf, want);
    }
}

static int ts(const char *in, char *out, size_t cap)
{
    return dynobs__tracestate_parse(in, strlen(in), out, cap);
}

/* ts(in) into a 513-byte buffer returns rc and keeps the list want. */
static void ts_gives(const char *in, int rc, const char *want)
{
    char out[513];
    cr_assert_eq(ts(in, out, sizeof out), rc, "%s", in);
    cr_assert_str_eq(out, want);
}

Test(tracestate, valid_and_normalised)
{
    char out[513];
    ts_gives("", 0, "");
    cr_assert_eq(ts("foo=1", out, sizeof out), 5);
    ts_gives("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", 39, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    /* Optional whitespace around members is removed; empty members too. */
    cr_assert_gt(ts(" foo=1 ,\tbar=2\t, ,, baz=a b ", out, sizeof out), 0);
    cr_assert_str_eq(out, "foo=1,bar=2,baz=a b");
    /* Multi-tenant keys, and every allowed key character. */
    ts_gives("1tenant@sys=x,a_-*/9=y,t0@s_-*/1=z", 34, "1tenant@sys=x,a_-*/9=y,t0@s_-*/1=z");
    /* Value characters: printable ASCII except ',' and '='. */
    cr_assert_gt(ts("k=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~", out, sizeof out), 0);
}

Test(tracestate, invalid_headers_are_dropped_whole)
{
    char out[513];
    const char *bad[] = {
        "foo",            /* no '=' */
        "=1",             /* empty key */
        "foo=",           /* empty value */
        "Foo=1",          /* uppercase key */
        "foo=1,bar",      /* one bad member spoils the header */
        "foo=a=b",        /* '=' in value */
        "foo=a\x01",      /* control character */
        "foo=caf\xc3\xa9",/* non-ASCII */
        "@sys=1",         /* a key cannot start with '@' */
        "@foo=1,bar=2",
        "_foo=1",         /* ... nor with anything but a letter or digit */
        "fo o=1",
        "foo =1",         /* whitespace is only allowed around members */
        "foo.bar=1",
        "foo=bar=baz",
        "foo=,bar=3",
        "foo=a\tb",       /* a tab is not a value character */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(ts(bad[i], out, sizeof out), -EINVAL, "accepted: '%s'", bad[i]);
}

Test(tracestate, length_limits_of_keys_and_values)
{
    char in[600], out[600];
    /* simple key: 256 ok, 257 not */
    memset(in, 'a', 256);
    strcpy(in + 256, "=1");
    cr_assert_gt(ts(in, out, sizeof out), 0);
    memset(in, 'a', 257);
    strcpy(in + 257, "=1");
    cr_assert_eq(ts(in, out, sizeof out), -EINVAL);
    /* Level 2 limits a key with '@' by its whole length only: Level 1's
     * tenant (241) and system (14) parts are gone. */
    memset(in, 't', 241);
    strcpy(in + 241, "@abcdefghijklmn=1");
    cr_assert_eq(ts(in, out, sizeof out), 258);
    cr_assert_str_eq(out, in);
    memset(in, 't', 242);
    strcpy(in + 242, "@sys=1");
    cr_assert_eq(ts(in, out, sizeof out), 248);
    cr_assert_str_eq(out, in);
    memset(in, 't', 252);
    strcpy(in + 252, "@abcd=1"); /* 257 */
    cr_assert_eq(ts(in, out, sizeof out), -EINVAL);
    /* value: 256 ok, 257 not */
    strcpy(in, "k=");
    memset(in + 2, 'v', 256);
    in[258] = 0;
    cr_assert_gt(ts(in, out, sizeof out), 0);
    memset(in + 2, 'v', 257);
    in[259] = 0;
    cr_assert_eq(ts(in, out, sizeof out), -EINVAL);
}

Test(tracestate, at_most_32_members)
{
    char in[1024], out[1024];
    size_t o = 0;
    for (int i = 0; i < 32; i++)
        o += (size_t)sprintf(in + o, "%sk%d=v", i ? "," : "", i);
    cr_assert_gt(ts(in, out, sizeof out), 0);
    sprintf(in + o, ",k32=v");
    cr_assert_eq(ts(in, out, sizeof out), -EINVAL);
}

Test(tracestate, truncation_drops_long_members_first)
{
    /* Over 512 bytes: members longer than 128 go first, the rest stay. */
    char in[1200], out[513];
    size_t o = (size_t)sprintf(in, "a=1,");
    o += (size_t)sprintf(in + o, "big=");
    memset(in + o, 'x', 200);
    o += 200;
    for (int i = 0; i < 20; i++)
        o += (size_t)sprintf(in + o, ",k%02d=%s", i, "0123456789abcdef");
    in[o] = 0;
    int n = ts(in, out, sizeof out);
    cr_assert_gt(n, 0);
    cr_assert_leq((size_t)n, 512);
    cr_assert_null(strstr(out, "big="));
    cr_assert(strncmp(out, "a=1,k00=", 8) == 0, "got %s", out);
    cr_assert_not_null(strstr(out, "k19="));
    /* With a small buffer, members go from the end. */
    char small[16];
    n = ts("a=1,b=2,c=3,d=4,e=5", small, sizeof small);
    cr_assert_str_eq(small, "a=1,b=2,c=3,d=4");
    cr_assert_eq(n, 15);
}

/* Level 2 key grammar: ( lcalpha / DIGIT ) 0*255( keychar ), '@' being a
 * key character anywhere but first (the conformance suite's
 * test_tracestate_key_illegal_vendor_format). */
Test(tracestate, at_signs_in_keys)
{
    char out[513];
    const char *same[] = {
        "foo@=1,bar=2",        "foo@@bar=1,bar=2", "foo@bar@baz=1,bar=2",
        "1foo=1",              "t@1sys=1",         "t@=1",
        "t@sys@x=1",           "t@abcdefghijklmno=1",
        "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/=v",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        cr_expect_eq(ts(same[i], out, sizeof out), (int)strlen(same[i]), "%s", same[i]);
        cr_expect_str_eq(out, same[i]);
    }
}

/* The suite's test_tracestate_key_length_limit: a key of 256 characters
 * in a second header line, joined to the first by ','. */
Test(tracestate, key_of_256_after_another_member)
{
    char in[300], want[300], out[513];
    strcpy(in, "foo=1,");
    memset(in + 6, 'z', 256);
    strcpy(in + 262, "=1");
    strcpy(want, in);
    cr_assert_eq(ts(in, out, sizeof out), 264);
    cr_assert_str_eq(out, want);
    /* Several lines may leave empty members and whitespace between. */
    char spaced[320];
    snprintf(spaced, sizeof spaced, "foo=1 , ,\t%s", in + 6);
    cr_assert_eq(ts(spaced, out, sizeof out), 264);
    cr_assert_str_eq(out, want);
    /* 257 spoils the list, the other line's member too. */
    char longer[300];
    strcpy(longer, "foo=1,");
    memset(longer + 6, 'z', 257);
    strcpy(longer + 263, "=1");
    cr_assert_eq(ts(longer, out, sizeof out), -EINVAL);
}

/* A repeated key keeps the list: its first member stays, later ones go
 * (the spec lets a vendor discard duplicates it did not make; the suite's
 * test_tracestate_duplicated_keys accepts the first). */
Test(tracestate, repeated_keys_keep_the_first)
{
    char out[513];
    ts_gives("foo=1,foo=2", 5, "foo=1");
    ts_gives("foo=1,foo=1", 5, "foo=1");
    ts_gives("foo=1,bar=2, foo=3 ,baz=4,bar=5", 17, "foo=1,bar=2,baz=4");
    /* The repeat is checked like any member. */
    cr_assert_eq(ts("foo=1,foo=", out, sizeof out), -EINVAL);
    /* and counts towards the 32 list-members. */
    char in[1024];
    size_t o = 0;
    for (int i = 0; i < 31; i++)
        o += (size_t)sprintf(in + o, "k%d=v,", i);
    sprintf(in + o, "k0=w");
    cr_assert_eq(ts(in, out, sizeof out), (int)o - 1);
    sprintf(in + o, "k0=w,k0=x");
    cr_assert_eq(ts(in, out, sizeof out), -EINVAL);
}

/* Empty and whitespace-only list-members are allowed and dropped. */
Test(tracestate, empty_members)
{
    ts_gives(",,foo=1, ,\t,bar=2,,", 11, "foo=1,bar=2");
    ts_gives(" , \t,", 0, "");
    ts_gives("foo=1 \t , \t bar=2, \t baz=3", 17, "foo=1,bar=2,baz=3");
}

/* Leading spaces belong to a value, trailing ones are whitespace. */
Test(tracestate, value_spaces)
{
    char out[513];
    ts_gives("foo=  a b  ,bar= 2", 16, "foo=  a b,bar= 2");
    cr_assert_eq(ts("foo= ", out, sizeof out), -EINVAL);
}

/* The suite's test_tracestate_member_count_limit: 32 across four header
 * lines pass, 33 drop the list. */
Test(tracestate, thirty_two_members_over_lines)
{
    char in[1024], out[513];
    size_t o = 0;
    for (int i = 1; i <= 33; i++)
        o += (size_t)sprintf(in + o, "%sbar%02d=%02d", i == 1 ? "" : (i % 10 == 1 ? ", " : ","),
                             i, i);
    cr_assert_eq(dynobs__tracestate_parse(in, o, out, sizeof out), -EINVAL);
    size_t o32 = (size_t)(strstr(in, ",bar33") - in);
    cr_assert_eq(dynobs__tracestate_parse(in, o32, out, sizeof out), 32 * 8 + 31);
    cr_assert_eq(strncmp(out, "bar01=01,bar02=02,", 18), 0, "%s", out);
    cr_assert_not_null(strstr(out, ",bar10=10,bar11=11,"));
    cr_assert_eq(strcmp(out + strlen(out) - 8, "bar32=32"), 0);
}

/* The 512 characters the spec says to propagate at least are kept. */
Test(tracestate, five_hundred_and_twelve_are_kept)
{
    char in[600], out[DYNOBS_TRACESTATE_MAX];
    /* a=<254 v>,b=<253 w>: 256 + 1 + 255 = 512 */
    size_t o = (size_t)sprintf(in, "a=");
    memset(in + o, 'v', 254);
    o += 254;
    o += (size_t)sprintf(in + o, ",b=");
    memset(in + o, 'w', 253);
    o += 253;
    in[o] = 0;
    cr_assert_eq(o, 512);
    cr_assert_eq(ts(in, out, sizeof out), 512);
    cr_assert_str_eq(out, in);
    /* One more character: one member goes whole; of two as long, the
     * right-most. */
    strcpy(in + o, "w");
    cr_assert_eq(ts(in, out, sizeof out), 256);
    cr_assert_eq(strncmp(out, "a=vvv", 5), 0);
    cr_assert_eq(strlen(out), 256);
}

/* Over the limit, members longer than 128 go first, the longest first;
 * only then members from the end; none is ever cut. */
Test(tracestate, truncation_drops_the_longest_first)
{
    char in[1200], out[513];
    /* a=1, m=<148>, l=<254>, then 20 members of 20: 3+1+150+1+256+20*21 = 831 */
    size_t o = (size_t)sprintf(in, "a=1,m=");
    memset(in + o, 'm', 148);
    o += 148;
    o += (size_t)sprintf(in + o, ",l=");
    memset(in + o, 'l', 254);
    o += 254;
    for (int i = 0; i < 20; i++)
        o += (size_t)sprintf(in + o, ",k%02d=%s", i, "0123456789abcdef");
    in[o] = 0;
    /* Without l: 831 - 257 = 574, still over 512; then m goes: 423. With
     * room for 600, only l goes (had m gone first, 680 would not fit). */
    char mid[601];
    cr_assert_eq(ts(in, mid, sizeof mid), 574, "%s", mid);
    cr_assert_eq(strncmp(mid, "a=1,m=mmm", 9), 0);
    cr_assert_null(strstr(mid, "l=l"));
    cr_assert_not_null(strstr(mid, ",k19=0123456789abcdef"));
    cr_assert_eq(ts(in, out, sizeof out), 423);
    cr_assert_null(strstr(out, "m=m"));
    cr_assert_eq(strncmp(out, "a=1,k00=", 8), 0);
    cr_assert_not_null(strstr(out, ",k19=0123456789abcdef"));
    /* All short: from the end, whole members only. */
    o = 0;
    for (int i = 0; i < 30; i++)
        o += (size_t)sprintf(in + o, "%sk%02d=%s", i ? "," : "", i, "0123456789abcdef-x");
    cr_assert_eq(o, 30 * 23 - 1);
    cr_assert_eq(ts(in, out, sizeof out), 22 * 23 - 1);
    cr_assert_eq(strcmp(out + strlen(out) - 22, "k21=0123456789abcdef-x"), 0, "%s", out);
}
