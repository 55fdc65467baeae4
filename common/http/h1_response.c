#include "h1.h"
#include "h1_scan.h"

#include "../util.h" /* DYNOBS_HOT */

#include <stddef.h>
#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* A status line whole in p[i..n) (from its first byte to its line feed,
 * which is at nl), taken at once: the outcome and the code are what
 * feeding it byte by byte would give (the code from its first 16 bytes,
 * as status keeps them; the text itself is not needed once the line is
 * read). Returns -1 when it is not a status line, else 1. */
static int status_line(struct dynobs_h1_status *in, const uint8_t *p, size_t i, size_t nl)
{
    size_t len = nl - i, keep = len < sizeof in->status ? len : sizeof in->status;
    /* (A constant length for the usual case: the compiler compares it
     * inline.) */
    if (len >= 7 ? memcmp(p + i, "HTTP/1.", 7) != 0 : memcmp(p + i, "HTTP/1.", len) != 0)
        return -1;
    in->status_len = (uint8_t)keep;
    in->code = dynobs__h1_status_code((const char *)p + i, keep);
    return in->code < 0 ? -1 : 1;
}

int dynobs__h1_status_feed(struct dynobs_h1_status *in, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        int st; /* dynobs__h1_status_step */
        const uint8_t *nl;
        switch (in->phase) {
        case DYNOBS_H1_ST_LINE:
            if (in->status_len == 0 && (c == '\r' || c == '\n'))
                break;
            /* The usual case: the whole line in these bytes. */
            nl = in->status_len == 0 ? memchr(p + i, '\n', n - i) : NULL;
            if (nl) {
                st = status_line(in, p, i, (size_t)(nl - p));
                i = (size_t)(nl - p);
            } else {
                st = dynobs__h1_status_step(in->status, sizeof in->status, &in->status_len, c,
                                            &in->code);
            }
            if (st < 0) {
                in->bad = 1;
                in->phase = DYNOBS_H1_ST_NONE;
                return -1;
            }
            if (st > 0) {
                in->phase = DYNOBS_H1_ST_HEADERS;
                in->line_start = 1;
            }
            break;
        case DYNOBS_H1_ST_HEADERS:
            if (in->line_start && c == '\r')
                break; /* the empty line's CR: wait for its LF */
            if (in->line_start && c == '\n') {
                if (in->code / 100 == 1 && in->code != 101) {
                    /* 100 Continue and friends: the real status follows. */
                    in->phase = DYNOBS_H1_ST_LINE;
                    in->status_len = 0;
                    break;
                }
                in->phase = DYNOBS_H1_ST_NONE;
                return in->code;
            }
            /* Header lines: from line feed to line feed at once, until the
             * empty line, or the end of these bytes (where the byte steps
             * take over). */
            for (;;) {
                nl = memchr(p + i, '\n', n - i);
                if (!nl) {
                    in->line_start = 0;
                    i = n - 1;
                    break;
                }
                size_t j = (size_t)(nl - p) + 1;
                size_t end = j < n && p[j] == '\n' ? j : j + 1 < n && p[j] == '\r' && p[j + 1] == '\n' ? j + 1 : 0;
                if (end && (in->code / 100 != 1 || in->code == 101)) {
                    in->phase = DYNOBS_H1_ST_NONE;
                    return in->code;
                }
                if (end || j >= n || p[j] == '\r') {
                    /* An interim response's end, or a line feed the next
                     * bytes decide about: one step at a time from here. */
                    in->line_start = 1;
                    i = j - 1;
                    break;
                }
                i = j;
            }
            break;
        default:
            return 0;
        }
    }
    return 0;
}

enum { RH_LENGTH = 1, RH_TE = 2 };

/* End of a response header block: what the body will be. */
static int headers_done(struct dynobs_h1_resp *r)
{
    if (r->code / 100 == 1 && r->code != 101) { /* interim: the real status follows */
        int head = r->head_request;
        dynobs__h1_resp_start(r, head);
        return 0;
    }
    if (r->head_request || r->code == 204 || r->code == 304 || r->code == 101) {
        r->phase = DYNOBS_H1_R_DONE;
        return 1;
    }
    if (r->chunked) {
        r->phase = DYNOBS_H1_R_CHUNK_SIZE;
        r->chunk = 0;
        return 0;
    }
    if (r->has_length) {
        r->remaining = r->length;
        r->phase = r->remaining ? DYNOBS_H1_R_BODY : DYNOBS_H1_R_DONE;
        return r->phase == DYNOBS_H1_R_DONE;
    }
    r->phase = DYNOBS_H1_R_UNTIL_CLOSE;
    return 0;
}

/* The two names, and where their letters are (dynobs__h1_same_name). */
#define L4 0x20, 0x20, 0x20, 0x20
static const uint8_t fold_length[14] = {L4, 0x20, 0x20, 0x20, 0, L4, 0x20, 0x20};
static const uint8_t fold_te[17] = {L4, L4, 0, L4, L4};

/* One byte of the value of Content-Length or Transfer-Encoding, the two
 * headers that shape a response's body. */
static void value_byte(struct dynobs_h1_resp *r, uint8_t c)
{
    if (r->in_value == RH_LENGTH) {
        if (c >= '0' && c <= '9' && r->length < (UINT64_MAX - 9) / 10) {
            r->length = r->length * 10 + (uint64_t)(c - '0');
            r->has_length = 1;
        }
        return;
    }
    if (c != ' ' && c != '\t' && c != '\r' && r->te_len < sizeof r->te)
        r->te[r->te_len++] = (char)lower(c);
    if (r->te_len >= 7 && !memcmp(r->te + r->te_len - 7, "chunked", 7))
        r->chunked = 1;
}

/* Header lines from p[*at] (the first byte of a line, not a line end),
 * one after another for as long as each is whole in these bytes: those
 * that are neither Content-Length nor Transfer-Encoding are passed over,
 * those two read at once. Returns 1 with *at at the empty line that ends
 * the block, 0 when the bytes ran out at a line end, or -1 when a line
 * not whole here starts at *at (the byte path reads it). */
static int whole_lines(struct dynobs_h1_resp *r, const uint8_t *p, size_t n, size_t *at)
{
    size_t i = *at;
    struct dynobs_h1_scan nls;
    dynobs__h1_scan_init(&nls, p, i, n, '\n');
    for (;;) {
        size_t nl = dynobs__h1_scan_peek(&nls);
        dynobs__h1_scan_pop(&nls);
        if (nl == n) {
            *at = i;
            return -1;
        }
        const uint8_t *l = p + i;
        size_t len = nl - i;
        /* Only a line that starts with a C or a T can be either (the
         * colon is tested before the letters). */
        uint8_t first = l[0] | 0x20;
        if (first == 'c' && len > 14 && l[14] == ':' &&
            dynobs__h1_same_name(l, "content-length", fold_length, 14)) {
            /* (value_byte's digits, in registers) */
            uint64_t v = 0;
            for (size_t k = 15; k < len; k++)
                if (l[k] >= '0' && l[k] <= '9' && v < (UINT64_MAX - 9) / 10) {
                    v = v * 10 + (uint64_t)(l[k] - '0');
                    r->has_length = 1;
                }
            r->length = v;
        } else if (first == 't' && len > 17 && l[17] == ':' &&
                   dynobs__h1_same_name(l, "transfer-encoding", fold_te, 17)) {
            r->in_value = RH_TE;
            for (size_t k = 18; k < len; k++)
                value_byte(r, l[k]);
            r->in_value = 0;
        }
        i = nl + 1;
        if (i == n)
            return 0;
        if (p[i] == '\r' || p[i] == '\n') {
            *at = i;
            return 1;
        }
    }
}

static int hexdigit(uint8_t c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The end of a response head, its final status read (not an interim
 * response's, which starts the tracker over): the state there is what a
 * memo keeps (snap, when wanted: the state, and the head's length). */
#define HEAD_END(r, i, snap, head_end)                              \
    do {                                                            \
        if ((snap) && (r)->phase != DYNOBS_H1_R_STATUS) {           \
            *(snap) = *(r);                                         \
            *(head_end) = (i) + 1;                                  \
        }                                                           \
    } while (0)

/* dynobs__h1_resp_feed from p[i] on. */
static inline __attribute__((always_inline)) int
feed(struct dynobs_h1_resp *r, const uint8_t *p, size_t n, size_t i,
     struct dynobs_h1_resp *snap, size_t *head_end)
{
    for (; i < n; i++) {
        uint8_t c = p[i];
        int st; /* dynobs__h1_status_step */
        switch (r->phase) {
        case DYNOBS_H1_R_STATUS:
            if (!r->status_len && c != '\n') {
                /* The whole status line in this buffer: copied at once,
                 * and checked as at its line feed below. */
                size_t nl = dynobs__h1_find_nl(p, i, n);
                if (nl < n) {
                    size_t run = nl - i;
                    r->status_len = (uint8_t)(run < sizeof r->status ? run : sizeof r->status);
                    memcpy(r->status, p + i, r->status_len);
                    i = nl;
                    c = '\n';
                }
            }
            st = dynobs__h1_status_step(r->status, sizeof r->status, &r->status_len, c, &r->code);
            if (st < 0) {
                r->bad = 1;
                return -1;
            }
            if (st > 0) {
                r->phase = DYNOBS_H1_R_HEADERS;
                r->line_start = 1;
            }
            break;
        case DYNOBS_H1_R_HEADERS:
            /* Inside a header we do not care about: skip to its end. */
            if (!r->line_start && !r->in_value && !r->match && c != '\n') {
                dynobs__h1_skip_line(p, n, &i, &r->line_len);
                break;
            }
            if (r->line_start) {
                if (c == '\r')
                    break;
                if (c == '\n') {
                    int done = headers_done(r);
                    HEAD_END(r, i, snap, head_end);
                    if (done)
                        return 1;
                    break;
                }
                /* Whole lines in this buffer: read in one go each. */
                int k = whole_lines(r, p, n, &i);
                if (k == 0)
                    return 0;
                if (k == 1) {
                    /* The empty line: CR LF (or LF) ends the block as the
                     * byte path below would; anything else goes that way. */
                    size_t lf = i + (p[i] == '\r');
                    if (lf < n && p[lf] == '\n') {
                        i = lf;
                        int done = headers_done(r);
                        HEAD_END(r, i, snap, head_end);
                        if (done)
                            return 1;
                        break;
                    }
                    i--;
                    break;
                }
                c = p[i];
                r->line_start = 0;
                r->line_len = 0;
                r->match = RH_LENGTH | RH_TE;
                r->in_value = 0;
            }
            if (c == '\n') {
                r->line_start = 1;
                r->in_value = 0;
                break;
            }
            if (r->in_value) {
                value_byte(r, c);
            } else if (r->match) {
                static const char *const names[] = {"content-length", "transfer-encoding"};
                if (c == ':') {
                    if ((r->match & RH_LENGTH) && r->line_len == 14) {
                        r->in_value = RH_LENGTH;
                        r->length = 0;
                    } else if ((r->match & RH_TE) && r->line_len == 17) {
                        r->in_value = RH_TE;
                    }
                    r->match = 0;
                } else {
                    for (int w = 0; w < 2; w++)
                        if ((r->match & (1 << w)) &&
                            (r->line_len >= (w ? 17u : 14u) || names[w][r->line_len] != lower(c)))
                            r->match &= (uint8_t)~(1 << w);
                }
            }
            r->line_len++;
            break;
        case DYNOBS_H1_R_BODY: {
            uint64_t take = n - i < r->remaining ? n - i : r->remaining;
            r->remaining -= take;
            i += take - 1;
            if (!r->remaining) {
                r->phase = DYNOBS_H1_R_DONE;
                return 1;
            }
            break;
        }
        case DYNOBS_H1_R_CHUNK_SIZE: {
            int h = hexdigit(c);
            if (h >= 0 && r->chunk < (UINT64_MAX >> 4))
                r->chunk = r->chunk << 4 | (uint64_t)h;
            else if (c == '\n')
                r->phase = r->chunk ? DYNOBS_H1_R_CHUNK_DATA : DYNOBS_H1_R_TRAILER,
                r->line_start = 1;
            else
                r->phase = DYNOBS_H1_R_CHUNK_EXT;
            break;
        }
        case DYNOBS_H1_R_CHUNK_EXT:
            if (c == '\n') {
                r->phase = r->chunk ? DYNOBS_H1_R_CHUNK_DATA : DYNOBS_H1_R_TRAILER;
                r->line_start = 1;
            }
            break;
        case DYNOBS_H1_R_CHUNK_DATA: {
            uint64_t take = n - i < r->chunk ? n - i : r->chunk;
            r->chunk -= take;
            i += take - 1;
            if (!r->chunk)
                r->phase = DYNOBS_H1_R_CHUNK_CRLF;
            break;
        }
        case DYNOBS_H1_R_CHUNK_CRLF:
            if (c == '\n') {
                r->phase = DYNOBS_H1_R_CHUNK_SIZE;
                r->chunk = 0;
            }
            break;
        case DYNOBS_H1_R_TRAILER:
            if (r->line_start && c == '\n') {
                r->phase = DYNOBS_H1_R_DONE;
                return 1;
            }
            if (c == '\r')
                break;
            r->line_start = c == '\n';
            break;
        default:
            return r->phase == DYNOBS_H1_R_DONE;
        }
    }
    return 0;
}

DYNOBS_HOT int dynobs__h1_resp_feed(struct dynobs_h1_resp *r, const uint8_t *p, size_t n)
{
    /* A body's bytes, the usual piece after a head (a response written
     * with writev): counted as feed counts them, without its loop. */
    if (r->phase == DYNOBS_H1_R_BODY)
        return dynobs__h1_resp_body(r, n);
    return feed(r, p, n, 0, NULL, NULL);
}

/* A head not in the memo, from the tracker's start: read, and kept when
 * it ends in these bytes. */
static __attribute__((noinline)) int feed_keep(struct dynobs_h1_resp *r,
                                               struct dynobs_h1_resp_memo *m, const uint8_t *p,
                                               size_t n)
{
    struct dynobs_h1_resp snap;
    size_t end = 0;
    int rc = feed(r, p, n, 0, &snap, &end);
    m->len = 0;
    if (end && end <= sizeof m->head) {
        memcpy(m->head, p, end);
        m->after = snap;
        m->done = snap.phase == DYNOBS_H1_R_DONE;
        m->len = (uint16_t)end;
    }
    return rc;
}

DYNOBS_HOT int dynobs__h1_resp_feed_memo(struct dynobs_h1_resp *r, struct dynobs_h1_resp_memo *m,
                                         const uint8_t *p, size_t n)
{
    /* At its start (or an interim response's end) the tracker's state is
     * the one dynobs__h1_resp_start left: a status line not begun, and
     * whether the request was a HEAD. */
    if (r->phase != DYNOBS_H1_R_STATUS || r->status_len || r->bad)
        return dynobs__h1_resp_feed(r, p, n);
    size_t len = m->len;
    if (!len || len > n || m->after.head_request != r->head_request ||
        !dynobs__h1_same_resp(p, m->head, len))
        return feed_keep(r, m, p, n);
    *r = m->after;
    /* (the bytes after the head, read from where reading them after it
     * would: nothing before them is looked at) */
    if (m->done)
        return 1;
    return len < n ? dynobs__h1_resp_feed(r, p + len, n - len) : 0;
}

