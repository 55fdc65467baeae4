#include "h1.h"
#include "h1_scan.h"

#include <stddef.h>
#include <string.h>

enum { HDR_TRACEPARENT = 1, HDR_TRACESTATE = 2, HDR_HOST = 4, HDR_UA = 8, HDR_BAGGAGE = 256 };

/* Correlation header i has bit HDR_CORR << i. */
#define HDR_CORR 16
#define CORR_INDEX(bit) (__builtin_ctz((unsigned)(bit)) - 4)

/* The headers watched: four fixed, then the correlation headers
 * configured (set once, before any request is read). */
static struct {
    const char *name;
    uint8_t len;
    uint16_t bit;
} watched[5 + DYNOBS_H1_CORR_MAX] = {
    {"traceparent", 11, HDR_TRACEPARENT},
    {"tracestate", 10, HDR_TRACESTATE},
    {"host", 4, HDR_HOST},
    {"user-agent", 10, HDR_UA},
    {"baggage", 7, HDR_BAGGAGE},
};
static unsigned nwatched = 5;
static uint8_t corr_bits;

void dynobs__h1_watch_correlation(const char (*names)[64], const uint8_t *lens, int n)
{
    nwatched = 5;
    corr_bits = 0;
    for (int i = 0; i < n && i < (int)DYNOBS_H1_CORR_MAX; i++) {
        uint8_t bit = (uint8_t)(HDR_CORR << i);
        watched[nwatched].name = names[i];
        watched[nwatched].len = lens[i];
        watched[nwatched].bit = bit;
        nwatched++;
        corr_bits |= bit;
    }
}

static const char *const methods[] = {"GET ", "POST", "PUT ", "HEAD", "DELE", "OPTI",
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

void dynobs__h1_req_reset(struct dynobs_h1_req *o)
{
    uint8_t off = o->phase == DYNOBS_H1_REQ_OFF, capture = o->capture;
    memset(o, 0, offsetof(struct dynobs_h1_req, reqline));
    o->phase = off ? DYNOBS_H1_REQ_OFF : DYNOBS_H1_REQ_IDLE;
    o->capture = capture;
}

void dynobs__h1_req_done(struct dynobs_h1_req *o)
{
    o->phase = DYNOBS_H1_REQ_BODY;
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
    for (size_t w = 0; w < nwatched; w++) {
        if (len != watched[w].len || (watched[w].bit == HDR_UA && !o->capture))
            continue;
        size_t k = 0;
        while (k < len && lower(name[k]) == watched[w].name[k])
            k++;
        if (k == len)
            return watched[w].bit;
    }
    return 0;
}

/* The rest of a watched header's value when its line end is in this
 * buffer and it holds no stray CR: copied at once (as much as fits), *i
 * moved to the line end's CR or LF. 0 when the bytes must go one by one. */
static int value_run(struct dynobs_h1_req *o, const uint8_t *p, size_t n, size_t *i)
{
    const uint8_t *nl = memchr(p, '\n', n);
    if (!nl)
        return 0;
    size_t run = (size_t)(nl - p);
    if (run && p[run - 1] == '\r')
        run--;
    if (!run || memchr(p, '\r', run))
        return 0;
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
            goto skip;
        dst = o->tracestate, len = &o->ts_len, cap = DYNOBS_H1_TS_MAX - 1;
        break;
    case HDR_UA:
        dst = o->user_agent, len = &o->ua_len, cap = DYNOBS_H1_UA_MAX - 1;
        break;
    case HDR_BAGGAGE:
        if (!o->capture || o->bag_cut)
            goto skip;
        dst = o->baggage, len = &o->bag_len, cap = DYNOBS_H1_BAGGAGE_MAX - 1;
        break;
    default:
        if (!o->capture || (o->corr_dup & o->in_value))
            goto skip;
        dst = o->corr_val[CORR_INDEX(o->in_value)];
        len = &o->corr_len[CORR_INDEX(o->in_value)];
        cap = DYNOBS_H1_CORR_VAL_MAX - 1;
        break;
    }
    size_t room = cap > *len ? cap - *len : 0, k = run < room ? run : room;
    memcpy(dst + *len, p, k);
    *len = (uint16_t)(*len + k);
    if (k < run && o->in_value == HDR_TRACESTATE)
        list_full(o->tracestate, &o->ts_len, &o->ts_cut, p[k]);
    else if (k < run && o->in_value == HDR_BAGGAGE)
        list_full(o->baggage, &o->bag_len, &o->bag_cut, p[k]);
    else if (k < run)
        o->corr_cut |= (uint8_t)o->in_value;
skip:
    o->line_len += (uint32_t)run;
    *i += run - 1;
    return 1;
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
            /* The whole line in this buffer (the usual case): copy it at
             * once and check it at its line end, next round. */
            {
                const uint8_t *nl = memchr(p + i, '\n', n - i);
                size_t run = nl ? (size_t)(nl - (p + i)) : 0;
                if (nl && run <= DYNOBS_H1_REQLINE_MAX - 10) {
                    memcpy(o->reqline, p + i, run);
                    o->reqline_len = (uint16_t)run;
                    i += run - 1;
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
                /* A whole header line in this buffer: its name is looked at
                 * once; a header we do not watch is skipped in one go, the
                 * value of one we do is read from after its colon. */
                const uint8_t *nl = memchr(p + i, '\n', n - i);
                if (nl) {
                    const uint8_t *colon = memchr(p + i, ':', (size_t)(nl - (p + i)));
                    int bit = colon ? watched_name(o, p + i, (size_t)(colon - (p + i))) : 0;
                    if (!bit) {
                        i = (size_t)(nl - p);
                        break;
                    }
                    o->line_start = 0;
                    o->match = 0;
                    o->line_len = (uint32_t)(colon - (p + i)) + 1;
                    begin_value(o, bit);
                    i = (size_t)(colon - p);
                    break;
                }
                o->line_start = 0;
                o->line_len = 0;
                o->match = HDR_TRACEPARENT | HDR_TRACESTATE | HDR_HOST | HDR_BAGGAGE |
                           (o->capture ? HDR_UA : 0) | corr_bits;
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
                    o->match = 0;
                } else {
                    for (size_t w = 0; w < nwatched; w++)
                        if ((o->match & watched[w].bit) &&
                            (o->line_len >= watched[w].len ||
                             watched[w].name[o->line_len] != lower(c)))
                            o->match &= (uint16_t)~watched[w].bit;
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

int dynobs__h1_req_parse(const struct dynobs_h1_req *o, struct dynobs_h1_reqline *r)
{
    const char *l = o->reqline;
    size_t n = o->reqline_len;
    const char *sp1 = memchr(l, ' ', n);
    if (!sp1)
        return -1;
    r->method = l;
    r->method_len = (size_t)(sp1 - l);
    r->target = sp1 + 1;
    const char *end = l + n;
    if (end > l && end[-1] == '\r')
        end--;
    /* The target runs to the last space (before HTTP/1.x), or to what was
     * kept of a truncated line. */
    const char *sp2 = end;
    while (sp2 > r->target && sp2[-1] != ' ')
        sp2--;
    r->target_len = o->reqline_trunc ? (size_t)(end - r->target)
                                     : (sp2 > r->target ? (size_t)(sp2 - 1 - r->target) : 0);
    r->minor = 1;
    if (!o->reqline_trunc && end - l >= 3 && end[-1] == '0')
        r->minor = 0;
    return 0;
}

