#include "h1.h"
#include "h1_scan.h"

#include "../util.h" /* DYNOBS_START_TEXT, DYNOBS_START_DATA, DYNOBS_HOT */

#include <stddef.h>
#include <string.h>

enum { HDR_TRACEPARENT = 1, HDR_TRACESTATE = 2, HDR_HOST = 4, HDR_UA = 8, HDR_BAGGAGE = 256 };
/* The headers that say whether a body follows the head: looked at for
 * that alone (struct dynobs_h1_req.body), not kept. */
enum { HDR_CLEN = 512, HDR_TE = 1024 };
static const char body_names[2][18] = {"content-length", "transfer-encoding"};
static const uint16_t body_bits[2] = {HDR_CLEN, HDR_TE};
static const uint8_t body_lens[2] = {14, 17};

/* Correlation header i has bit HDR_CORR << i. */
#define HDR_CORR 16
#define CORR_INDEX(bit) (__builtin_ctz((unsigned)(bit)) - 4)

/* The headers watched: five fixed, then the correlation headers
 * configured (set once, before any request is read). The names are kept
 * here, as arrays: a pointer to each in the table would be a relocation,
 * which the loader writes at every process start, on a page of .data it
 * does not otherwise touch there (name_of). The tables' initial contents
 * are those of the default correlation headers (DYNOBS_CORRELATION_DEFAULT,
 * common/config.h), and dynobs__h1_watch_correlation writes only what
 * differs: a start with the defaults reads these pages and writes none
 * (a page written first is a page fault; tests/unit/test_http1.c checks
 * that the defaults change nothing). */
static const char fixed_names[5][12] = {"traceparent", "tracestate", "host", "user-agent",
                                        "baggage"};
#define NAME_MAX_LEN 64u
static char corr_names[DYNOBS_H1_CORR_MAX][NAME_MAX_LEN] = {"x-correlation-id", "x-request-id"};
static struct {
    uint8_t len;
    uint16_t bit;
} watched[5 + DYNOBS_H1_CORR_MAX] = {
    {11, HDR_TRACEPARENT}, {10, HDR_TRACESTATE}, {4, HDR_HOST}, {10, HDR_UA},
    {7, HDR_BAGGAGE},      {16, HDR_CORR},       {12, HDR_CORR << 1},
};

static inline const char *name_of(unsigned w)
{
    /* (w < nwatched <= the table's size: cppcheck cannot see the bound) */
    // cppcheck-suppress arrayIndexOutOfBoundsCond
    return w < 5 ? fixed_names[w] : corr_names[w - 5];
}
static unsigned nwatched = 7;
static uint8_t corr_bits = HDR_CORR | HDR_CORR << 1;
/* fold[w][k] is 0x20 where watched[w]'s name has a letter at k, else 0:
 * (byte | fold) == letter is then exactly lower(byte) == letter, and any
 * other byte must be equal, so names compare a word at a time. */
#define L4 0x20, 0x20, 0x20, 0x20
static uint8_t fold[5 + DYNOBS_H1_CORR_MAX][NAME_MAX_LEN] = {
    {L4, L4, 0x20, 0x20, 0x20},                         /* traceparent */
    {L4, L4, 0x20, 0x20},                               /* tracestate */
    {L4},                                               /* host */
    {L4, 0, L4, 0x20},                                  /* user-agent */
    {L4, 0x20, 0x20, 0x20},                             /* baggage */
    {0x20, 0, L4, L4, 0x20, 0x20, 0x20, 0, 0x20, 0x20}, /* x-correlation-id */
    {0x20, 0, L4, 0x20, 0x20, 0x20, 0, 0x20, 0x20},     /* x-request-id */
};
/* Bit w is set in by_len[len] when watched[w] is len bytes long: a header
 * line's name is compared only with the watched names of its length. */
#define FIXED_BY_LEN [4] = 1u << 2, [7] = 1u << 4, [10] = 1u << 1 | 1u << 3, [11] = 1u << 0
static uint16_t by_len[NAME_MAX_LEN] = {FIXED_BY_LEN, [12] = 1u << 6, [16] = 1u << 5};

/* *at = v, unless it holds v already; *changed set when it did not. */
#define SET_CHANGED(at, v, changed)                                                          \
    do {                                                                                     \
        if (*(at) != (v)) {                                                                  \
            *(at) = (v);                                                                     \
            *(changed) = 1;                                                                  \
        }                                                                                    \
    } while (0)

DYNOBS_START_TEXT
int dynobs__h1_watch_correlation(const char (*names)[64], const uint8_t *lens, int n)
{
    static const uint16_t fixed[NAME_MAX_LEN] = {FIXED_BY_LEN};
    uint16_t want[NAME_MAX_LEN];
    int changed = 0;
    unsigned w = 5;
    uint8_t bits = 0;
    for (unsigned k = 0; k < NAME_MAX_LEN; k++)
        want[k] = fixed[k];
    for (int i = 0; i < n && i < (int)DYNOBS_H1_CORR_MAX; i++, w++) {
        uint8_t bit = (uint8_t)(HDR_CORR << i), len = lens[i];
        /* (past both the name and the one before it, all zeros already) */
        unsigned upto = len > watched[w].len ? len : watched[w].len;
        if (upto > NAME_MAX_LEN)
            upto = NAME_MAX_LEN;
        for (unsigned k = 0; k < upto; k++) {
            char c = k < len ? names[i][k] : 0;
            SET_CHANGED(&corr_names[i][k], c, &changed);
            SET_CHANGED(&fold[w][k], (uint8_t)(c >= 'a' && c <= 'z' ? 0x20 : 0), &changed);
        }
        SET_CHANGED(&watched[w].len, len, &changed);
        SET_CHANGED(&watched[w].bit, bit, &changed);
        if (len && len < NAME_MAX_LEN)
            want[len] |= (uint16_t)(1u << w);
        bits |= bit;
    }
    for (unsigned k = 0; k < NAME_MAX_LEN; k++)
        SET_CHANGED(&by_len[k], want[k], &changed);
    SET_CHANGED(&nwatched, w, &changed);
    SET_CHANGED(&corr_bits, bits, &changed);
    return changed;
}

static const char methods[][5] = {"GET ", "POST", "PUT ", "HEAD", "DELE", "OPTI",
                                  "PATC", "CONN", "TRAC"};

int dynobs__h1_maybe_request(const uint8_t *p, size_t n)
{
    if (n < 4)
        return n > 0 && p[0] >= 'A' && p[0] <= 'Z';
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!memcmp(p, methods[i], 4))
            return 1;
    return 0;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* A whole header name that says whether a body follows: its bit, or 0. */
static int body_name(const uint8_t *name, size_t len)
{
    for (int b = 0; b < 2; b++) {
        if (len != body_lens[b])
            continue;
        size_t k = 0;
        while (k < len && lower(name[k]) == body_names[b][k])
            k++;
        if (k == len)
            return body_bits[b];
    }
    return 0;
}

/* Bytes of a body header's value: a Transfer-Encoding of any value, or a
 * Content-Length with anything but zeros and white space, declares a
 * body. */
static void body_value(struct dynobs_h1_req *o, const uint8_t *p, size_t n)
{
    if (o->in_value == HDR_TE) {
        o->body = 1;
        return;
    }
    for (size_t k = 0; k < n; k++)
        if (p[k] != '0' && p[k] != ' ' && p[k] != '\t' && p[k] != '\r')
            o->body = 1;
}

/* "METHOD SP target SP HTTP/1.x": method of 1-16 upper-case letters. */
static int reqline_ok(const struct dynobs_h1_req *o, const char *tail9)
{
    size_t n = o->reqline_len;
    const char *l = o->reqline;
    size_t m = 0;
    while (m < n && m < 17 && l[m] >= 'A' && l[m] <= 'Z')
        m++;
    if (m == 0 || m > 16 || m >= n || l[m] != ' ')
        return 0;
    return !memcmp(tail9, " HTTP/1.0", 9) || !memcmp(tail9, " HTTP/1.1", 9);
}

/* reqline_ok for a line kept whole, its version read in place. */
static int whole_reqline_ok(const struct dynobs_h1_req *o)
{
    size_t n = o->reqline_len;
    if (n && o->reqline[n - 1] == '\r')
        n--;
    if (n < 9)
        return 0;
    const char *t = o->reqline + n - 9;
    if (dynobs__h1_load8(t) != dynobs__h1_load8(" HTTP/1.") || (t[8] != '0' && t[8] != '1'))
        return 0;
    size_t m = 0;
    while (m < n && m < 17 && o->reqline[m] >= 'A' && o->reqline[m] <= 'Z')
        m++;
    return m > 0 && m <= 16 && m < n && o->reqline[m] == ' ';
}

/* The last 9 bytes of the request line (without CR), for the version. */
static void tail_of(const struct dynobs_h1_req *o, char out[9])
{
    size_t n = o->reqline_len;
    if (n && o->reqline[n - 1] == '\r')
        n--;
    memset(out, 0, 9);
    if (n >= 9)
        memcpy(out, o->reqline + n - 9, 9);
}

/* A list's capture (tracestate, baggage) is full and byte c does not fit:
 * the list is cut after its last whole member, since a member must never
 * be cut in half (W3C "tracestate Limits", Baggage "Limits"). Only a ','
 * proves the member before it whole: a space may still be inside a value.
 * Runs once per request and list. */
static void list_full(const char *buf, uint16_t *len, uint8_t *cut, uint8_t c)
{
    if (*cut)
        return;
    *cut = 1;
    if (c == ',')
        return;
    uint16_t n = *len;
    while (n && buf[n - 1] != ',')
        n--;
    *len = n ? (uint16_t)(n - 1) : 0;
}

/* One byte more of a list's capture (cap bytes with the NUL), unless it
 * was cut already. */
static void list_put(char *buf, uint16_t *len, uint8_t *cut, size_t cap, uint8_t c)
{
    if (*cut)
        return;
    if (*len < cap - 1)
        buf[(*len)++] = (char)c;
    else
        list_full(buf, len, cut, c);
}

#define TRACESTATE_PUT(o, c) \
    list_put((o)->tracestate, &(o)->ts_len, &(o)->ts_cut, DYNOBS_H1_TS_MAX, c)
#define BAGGAGE_PUT(o, c) \
    list_put((o)->baggage, &(o)->bag_len, &(o)->bag_cut, DYNOBS_H1_BAGGAGE_MAX, c)

/* A watched header begins (its colon was just read): what it holds so far
 * is reset, except tracestate, whose several headers form one list. */
static void begin_value(struct dynobs_h1_req *o, int bit)
{
    if (bit == HDR_TRACEPARENT) {
        o->has_traceparent = 1;
        if (o->tp_count < 255)
            o->tp_count++;
        o->tp_len = 0;
    } else if (bit == HDR_TRACESTATE) {
        /* The previous line's member is whole: a full buffer only stops
         * the capture here. */
        if (o->has_tracestate && o->capture)
            TRACESTATE_PUT(o, ',');
        o->has_tracestate = 1;
    } else if (bit == HDR_HOST) {
        o->host_len = 0;
    } else if (bit == HDR_UA) {
        o->ua_len = 0;
    } else if (bit == HDR_BAGGAGE) {
        /* Several lines form one list, as with tracestate. */
        if (o->has_baggage && o->capture)
            BAGGAGE_PUT(o, ',');
        o->has_baggage = 1;
    } else if (bit == HDR_CLEN || bit == HDR_TE) {
        /* (a Transfer-Encoding declares a body even when empty) */
        if (bit == HDR_TE)
            o->body = 1;
    } else {
        /* A correlation header: one value; a second line makes it
         * ambiguous, and it is then neither recorded nor sent. */
        if (o->corr_seen & bit)
            o->corr_dup |= (uint8_t)bit;
        o->corr_seen |= (uint8_t)bit;
        o->corr_len[CORR_INDEX(bit)] = 0;
    }
    o->in_value = (uint16_t)bit;
    o->skip_ws = 1;
}

/* Which watched header a whole name is (case-insensitive), or 0. */
static int watched_name(const struct dynobs_h1_req *o, const uint8_t *name, size_t len)
{
    if (len >= NAME_MAX_LEN)
        return 0;
    for (unsigned m = by_len[len]; m; m &= m - 1) {
        unsigned w = (unsigned)__builtin_ctz(m);
        if ((watched[w].bit == HDR_UA && !o->capture) ||
            !dynobs__h1_same_name(name, name_of(w), fold[w], len))
            continue;
        return watched[w].bit;
    }
    return 0;
}

/* run bytes of a watched header's value (no CR among them): copied into
 * its field, as much as fits, or left out when it is not kept. */
static void value_copy(struct dynobs_h1_req *o, const uint8_t *p, size_t run)
{
    char *dst;
    uint16_t *len;
    size_t cap;
    switch (o->in_value) {
    case HDR_HOST:
        dst = o->host, len = &o->host_len, cap = DYNOBS_H1_HOST_MAX - 1;
        break;
    case HDR_TRACEPARENT:
        dst = o->traceparent, len = &o->tp_len, cap = DYNOBS_H1_TP_MAX - 1;
        break;
    case HDR_TRACESTATE:
        if (!o->capture || o->ts_cut)
            return;
        dst = o->tracestate, len = &o->ts_len, cap = DYNOBS_H1_TS_MAX - 1;
        break;
    case HDR_UA:
        dst = o->user_agent, len = &o->ua_len, cap = DYNOBS_H1_UA_MAX - 1;
        break;
    case HDR_BAGGAGE:
        if (!o->capture || o->bag_cut)
            return;
        dst = o->baggage, len = &o->bag_len, cap = DYNOBS_H1_BAGGAGE_MAX - 1;
        break;
    case HDR_CLEN:
    case HDR_TE:
        body_value(o, p, run);
        return;
    default:
        if (!o->capture || (o->corr_dup & o->in_value))
            return;
        dst = o->corr_val[CORR_INDEX(o->in_value)];
        len = &o->corr_len[CORR_INDEX(o->in_value)];
        cap = DYNOBS_H1_CORR_VAL_MAX - 1;
        break;
    }
    size_t room = cap > *len ? cap - *len : 0, k = run < room ? run : room;
    char *d = dst + *len;
    if (k >= 8 && k <= 16) { /* (most values: two words, no call) */
        uint64_t a = dynobs__h1_load8(p), b = dynobs__h1_load8(p + k - 8);
        memcpy(d, &a, 8);
        memcpy(d + k - 8, &b, 8);
    } else {
        memcpy(d, p, k);
    }
    *len = (uint16_t)(*len + k);
    if (k < run && o->in_value == HDR_TRACESTATE)
        list_full(o->tracestate, &o->ts_len, &o->ts_cut, p[k]);
    else if (k < run && o->in_value == HDR_BAGGAGE)
        list_full(o->baggage, &o->bag_len, &o->bag_cut, p[k]);
    else if (k < run)
        o->corr_cut |= (uint8_t)o->in_value;
}

/* The bytes of p[from..nl), nl a line feed, without the CR before it:
 * how many, or 0 when there are none or another CR among them (those go
 * byte by byte, which drops every CR of a value). */
static size_t clean_run(const uint8_t *p, size_t from, size_t nl)
{
    size_t end = nl;
    if (end > from && p[end - 1] == '\r')
        end--;
    return end > from && dynobs__h1_find2(p, from, end, '\r', '\r') == end ? end - from : 0;
}

/* The rest of a watched header's value when its line end is in this
 * buffer and it holds no stray CR: copied at once (as much as fits), *i
 * moved to the line end's CR or LF. 0 when the bytes must go one by one. */
static int value_run(struct dynobs_h1_req *o, const uint8_t *p, size_t n, size_t *i)
{
    size_t nl = dynobs__h1_find_nl(p, 0, n);
    size_t run = nl < n ? clean_run(p, 0, nl) : 0;
    if (!run)
        return 0;
    value_copy(o, p, run);
    o->line_len += (uint32_t)run;
    *i += run - 1;
    return 1;
}

/* What header lines read whole (whole_lines) left to the byte path. */
enum { LINES_PARTIAL = -2, LINES_VALUE = -3 };

/* Header lines from p[*at] (the first byte of a line, not a line end),
 * one after another for as long as each is whole in these bytes: a line
 * nobody watches is passed over, a watched header's value is copied at
 * once (as value_run would, from its first byte that is not white
 * space). Returns the offset of the empty line that ends the block when
 * it is reached, -1 when the bytes ran out at a line end, else
 * LINES_PARTIAL (a line not whole here starts at *at: the state is a
 * line start's) or LINES_VALUE (a watched header's value goes byte by
 * byte: the state is just after its colon, at *at). */
static long whole_lines(struct dynobs_h1_req *o, const uint8_t *p, size_t n, size_t *at)
{
    size_t i = *at;
    for (;;) {
        size_t e = dynobs__h1_find2(p, i, n, ':', '\n');
        size_t nl = e < n && p[e] == ':' ? dynobs__h1_find_nl(p, e + 1, n) : e;
        if (nl == n) {
            *at = i;
            return LINES_PARTIAL;
        }
        int bit = e < nl ? watched_name(o, p + i, e - i) : 0;
        if (!bit && e < nl && (e - i == 14 || e - i == 17))
            bit = body_name(p + i, e - i);
        if (bit) {
            o->line_start = 0;
            o->match = 0;
            o->line_len = (uint32_t)(e - i) + 1;
            begin_value(o, bit);
            size_t v = e + 1;
            while (v < nl && (p[v] == ' ' || p[v] == '\t'))
                v++;
            size_t run = v < nl ? clean_run(p, v, nl) : 0;
            if (run) {
                value_copy(o, p + v, run);
            } else if (v < nl && (nl - v > 1 || p[v] != '\r')) {
                *at = e; /* a CR inside the value */
                return LINES_VALUE;
            }
            o->line_start = 1;
            o->in_value = 0;
            o->skip_ws = 0;
        }
        i = nl + 1;
        if (i == n)
            return -1;
        if (p[i] == '\r' || p[i] == '\n')
            return (long)i; /* the empty line: headers end here */
    }
}

long dynobs__h1_req_feed(struct dynobs_h1_req *o, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        switch (o->phase) {
        case DYNOBS_H1_REQ_IDLE:
            if (c == '\r' || c == '\n')
                break; /* stray line ends between requests are allowed */
            if (c < 'A' || c > 'Z') {
                o->phase = DYNOBS_H1_REQ_OFF;
                return -1;
            }
            o->phase = DYNOBS_H1_REQ_LINE;
            o->reqline_len = 0;
            o->reqline_trunc = 0;
            /* The whole line in this buffer (the usual case): copied at
             * once and checked as at its line end below. */
            {
                size_t nl = dynobs__h1_find_nl(p, i, n), run = nl - i;
                if (nl < n && run <= DYNOBS_H1_REQLINE_MAX - 10) {
                    memcpy(o->reqline, p + i, run);
                    o->reqline_len = (uint16_t)run;
                    i = nl;
                    if (!whole_reqline_ok(o)) {
                        o->phase = DYNOBS_H1_REQ_OFF;
                        return -1;
                    }
                    o->phase = DYNOBS_H1_REQ_HEADERS;
                    o->line_start = 1;
                    break;
                }
            }
            /* fall through */
        case DYNOBS_H1_REQ_LINE:
            /* Past the method, copy up to the end of the line at once. */
            if (o->reqline_len > 17 && !o->reqline_trunc && c != '\n') {
                size_t run = dynobs__h1_line_run(p, n, i);
                size_t room = DYNOBS_H1_REQLINE_MAX - 10 - o->reqline_len;
                if (run <= room) {
                    memcpy(o->reqline + o->reqline_len, p + i, run);
                    o->reqline_len = (uint16_t)(o->reqline_len + run);
                    i += run - 1;
                    break;
                }
            }
            if (c == '\n') {
                char tail[9];
                if (o->reqline_trunc) {
                    /* A very long target: the version is in the rolling
                     * last bytes kept at the end of the buffer. */
                    const char *w = o->reqline + DYNOBS_H1_REQLINE_MAX - 10;
                    memcpy(tail, w[9] == '\r' ? w : w + 1, 9);
                } else {
                    tail_of(o, tail);
                }
                if (!reqline_ok(o, tail)) {
                    o->phase = DYNOBS_H1_REQ_OFF;
                    return -1;
                }
                o->phase = DYNOBS_H1_REQ_HEADERS;
                o->line_start = 1;
                break;
            }
            if (o->reqline_len < DYNOBS_H1_REQLINE_MAX - 10) {
                o->reqline[o->reqline_len++] = (char)c;
            } else {
                /* Keep the head for the attributes and roll the last 10
                 * bytes through the end of the buffer for the version. */
                if (!o->reqline_trunc) {
                    o->reqline_trunc = 1;
                    memset(o->reqline + o->reqline_len, 0, DYNOBS_H1_REQLINE_MAX - o->reqline_len);
                }
                memmove(o->reqline + DYNOBS_H1_REQLINE_MAX - 10,
                        o->reqline + DYNOBS_H1_REQLINE_MAX - 9, 9);
                o->reqline[DYNOBS_H1_REQLINE_MAX - 1] = (char)c;
            }
            /* The method must come first, in capitals, within 17 bytes. */
            if (o->reqline_len <= 17 && !o->reqline_trunc && c != ' ' &&
                (c < 'A' || c > 'Z') && !memchr(o->reqline, ' ', o->reqline_len - 1)) {
                o->phase = DYNOBS_H1_REQ_OFF;
                return -1;
            }
            break;
        case DYNOBS_H1_REQ_HEADERS:
            /* Inside a header we do not care about: skip to its end. */
            if (!o->line_start && !o->in_value && !o->match && c != '\n') {
                dynobs__h1_skip_line(p, n, &i, &o->line_len);
                break;
            }
            if (o->line_start) {
                if (c == '\r' || c == '\n')
                    return (long)i; /* the empty line: headers end here */
                /* Whole header lines in this buffer: each name is looked
                 * at once; a header we do not watch is passed over in one
                 * go, the value of one we do is copied in one go. */
                long end = whole_lines(o, p, n, &i);
                if (end != LINES_PARTIAL && end != LINES_VALUE)
                    return end;
                if (end == LINES_VALUE)
                    break;
                c = p[i];
                o->line_start = 0;
                o->line_len = 0;
                o->match = HDR_TRACEPARENT | HDR_TRACESTATE | HDR_HOST | HDR_BAGGAGE |
                           (o->capture ? HDR_UA : 0) | corr_bits | HDR_CLEN | HDR_TE;
                o->in_value = 0;
            }
            if (c == '\n') {
                o->line_start = 1;
                o->in_value = 0;
                break;
            }
            if (o->in_value) {
                if (o->skip_ws && (c == ' ' || c == '\t'))
                    break;
                o->skip_ws = 0;
                if (c == '\r')
                    break;
                if (value_run(o, p + i, n - i, &i))
                    break;
                if (o->in_value == HDR_HOST && o->host_len < DYNOBS_H1_HOST_MAX - 1) {
                    o->host[o->host_len++] = (char)c;
                } else if (o->in_value == HDR_TRACEPARENT && o->tp_len < DYNOBS_H1_TP_MAX - 1) {
                    o->traceparent[o->tp_len++] = (char)c;
                } else if (o->in_value == HDR_TRACESTATE) {
                    if (o->capture)
                        TRACESTATE_PUT(o, c);
                } else if (o->in_value == HDR_UA) {
                    if (o->ua_len < DYNOBS_H1_UA_MAX - 1)
                        o->user_agent[o->ua_len++] = (char)c;
                } else if (o->in_value == HDR_BAGGAGE) {
                    if (o->capture)
                        BAGGAGE_PUT(o, c);
                } else if (o->in_value == HDR_CLEN || o->in_value == HDR_TE) {
                    body_value(o, &c, 1);
                } else if (o->in_value >= HDR_CORR && o->capture) {
                    int ci = CORR_INDEX(o->in_value);
                    if (o->corr_len[ci] < DYNOBS_H1_CORR_VAL_MAX - 1)
                        o->corr_val[ci][o->corr_len[ci]++] = (char)c;
                    else
                        o->corr_cut |= (uint8_t)o->in_value;
                }
                break;
            }
            if (o->match) {
                if (c == ':') {
                    for (size_t w = 0; w < nwatched; w++)
                        if ((o->match & watched[w].bit) && o->line_len == watched[w].len)
                            begin_value(o, watched[w].bit);
                    for (int b = 0; b < 2; b++)
                        if ((o->match & body_bits[b]) && o->line_len == body_lens[b])
                            begin_value(o, body_bits[b]);
                    o->match = 0;
                } else {
                    for (size_t w = 0; w < nwatched; w++)
                        if ((o->match & watched[w].bit) &&
                            (o->line_len >= watched[w].len ||
                             name_of(w)[o->line_len] != lower(c)))
                            o->match &= (uint16_t)~watched[w].bit;
                    for (int b = 0; b < 2; b++)
                        if ((o->match & body_bits[b]) &&
                            (o->line_len >= body_lens[b] ||
                             body_names[b][o->line_len] != lower(c)))
                            o->match &= (uint16_t)~body_bits[b];
                }
            }
            o->line_len++;
            break;
        default:
            return -1;
        }
    }
    return -1;
}

#if defined(__SSE2__)
/* The bytes of a 16-byte block that are visible ASCII (0x21-0x7e), as a
 * mask: saturating subtractions, 0x21 - byte is 0 for a byte from 0x21
 * up, byte - 0x7e for one up to 0x7e. */
static inline int visible16(const uint8_t *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p), zero = _mm_setzero_si128();
    return _mm_movemask_epi8(
        _mm_and_si128(_mm_cmpeq_epi8(_mm_subs_epu8(_mm_set1_epi8(0x21), v), zero),
                      _mm_cmpeq_epi8(_mm_subs_epu8(v, _mm_set1_epi8(0x7e)), zero)));
}
#endif

/* n bytes at p are all visible ASCII (0x21-0x7e): 16 at a time, the last
 * block overlapping the one before it. */
static int visible(const uint8_t *p, size_t n)
{
#if defined(__SSE2__)
    if (n >= 16) {
        int all = visible16(p + n - 16);
        for (size_t i = 0; i + 16 < n; i += 16)
            all &= visible16(p + i);
        return all == 0xffff;
    }
#endif
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e)
            return 0;
    return 1;
}

/* Where the reader's one traceparent value (tp_len bytes) lies in the
 * head it just read, when it is a run of visible bytes copied whole from
 * a "traceparent:" line: its offset, or -1. Only line starts are looked
 * at (found 16 bytes at a time), so a head without the line costs a pass
 * over its line ends; the value must be what the reader copied, ended by
 * the line end. */
static long traceparent_run(const struct dynobs_h1_req *o, const uint8_t *h, size_t len)
{
    static const char name[] = "traceparent:";
    size_t v = o->tp_len;
    if (!o->has_traceparent || o->tp_count != 1 || !v || v > 255 || v + 14 > len)
        return -1;
    for (size_t nl = dynobs__h1_find_nl(h, 0, len); nl + 13 + v < len;
         nl = dynobs__h1_find_nl(h, nl + 1, len)) {
        const uint8_t *l = h + nl + 1;
        if ((l[0] | 0x20) != 't')
            continue;
        /* (a byte or 0x20 is a lower-case letter only for that letter in
         * either case; the colon is compared as it is) */
        size_t k = 1;
        while (k < 11 && (l[k] | 0x20) == (uint8_t)name[k])
            k++;
        if (k < 11 || l[11] != ':')
            continue;
        size_t at = nl + 13;
        while (at < len && (h[at] == ' ' || h[at] == '\t'))
            at++;
        if (at + v < len && (h[at + v] == '\r' || h[at + v] == '\n') &&
            !memcmp(h + at, o->traceparent, v) && visible(h + at, v))
            return (long)at;
        return -1; /* the one traceparent line, and its value is not a run */
    }
    return -1;
}

DYNOBS_HOT long dynobs__h1_req_feed_memo(struct dynobs_h1_req *o, struct dynobs_h1_req_memo *m,
                                         const uint8_t *p, size_t n)
{
    /* From idle, the fixed part is the reset state but for capture, and
     * capture does not change while a head is read: the memo's state
     * before its head was this one when their capture agrees. */
    if (o->phase == DYNOBS_H1_REQ_IDLE) {
        size_t len = m->len;
        if (len && len <= n && m->after[offsetof(struct dynobs_h1_req, capture)] == o->capture) {
            size_t at = m->tp_at, tl = m->tp_len;
            /* (with a traceparent run, the head around it and the run's
             * bytes; the run in m->head is then never compared again, so
             * it keeps the first head's) */
            if (tl ? dynobs__h1_same(p, m->head, at) &&
                         dynobs__h1_same(p + at + tl, m->head + at + tl, len - at - tl) &&
                         visible(p + at, tl)
                   : dynobs__h1_same(p, m->head, len)) {
                memcpy(o, m->after, DYNOBS_H1_REQ_FIXED);
                if (tl)
                    memcpy(o->traceparent, p + at, tl);
                m->repeated = 1;
                return (long)len - 1;
            }
        }
    }
    m->len = 0; /* the buffers are written from here on */
    m->repeated = 0;
    int idle = o->phase == DYNOBS_H1_REQ_IDLE;
    long k = dynobs__h1_req_feed(o, p, n);
    if (idle && k >= 0 && (size_t)k < sizeof m->head) {
        memcpy(m->head, p, (size_t)k + 1);
        memcpy(m->after, o, DYNOBS_H1_REQ_FIXED);
        long at = traceparent_run(o, m->head, (size_t)k + 1);
        m->tp_at = (uint16_t)(at >= 0 ? at : 0);
        m->tp_len = (uint8_t)(at >= 0 ? o->tp_len : 0);
        m->len = (uint16_t)(k + 1);
    }
    return k;
}

int dynobs__h1_req_parse(const struct dynobs_h1_req *o, struct dynobs_h1_reqline *r)
{
    const char *l = o->reqline;
    size_t n = o->reqline_len;
    /* (the method is short: a loop beats a call) */
    size_t m = 0;
    while (m < n && l[m] != ' ')
        m++;
    if (m == n)
        return -1;
    const char *sp1 = l + m;
    r->method = l;
    r->method_len = (size_t)(sp1 - l);
    r->target = sp1 + 1;
    const char *end = l + n;
    if (end > l && end[-1] == '\r')
        end--;
    /* The target runs to the last space (before HTTP/1.x), or to what was
     * kept of a truncated line. */
    const char *sp2 = end;
    if (end - r->target >= 9 && !memcmp(end - 9, " HTTP/1.", 8))
        sp2 = end - 8; /* the usual ending, without a search */
    while (sp2 > r->target && sp2[-1] != ' ')
        sp2--;
    r->target_len = o->reqline_trunc ? (size_t)(end - r->target)
                                     : (sp2 > r->target ? (size_t)(sp2 - 1 - r->target) : 0);
    r->minor = 1;
    if (!o->reqline_trunc && end - l >= 3 && end[-1] == '0')
        r->minor = 0;
    return 0;
}

