/*
 * HTTP/1.x messages, byte by byte, with bounded state, named by the
 * message they read rather than by who sends it:
 *   - a request head (dynobs_h1_req): recognised from its first bytes,
 *     with the point just before the empty line that ends its header
 *     block (where a client's header lines can be added) and the headers
 *     propagation needs (traceparent, tracestate, host, user agent). A
 *     client feeds the requests it writes, a server the ones it reads.
 *   - a response's status (dynobs_h1_status): the final status code of a
 *     response head, interim 1xx responses skipped (what a client reads).
 *   - a whole response (dynobs_h1_resp): done when its head and body have
 *     passed (what a server writes).
 * No allocation and no system calls: callers feed whatever pieces the
 * application's calls carry, down to one byte at a time. Requests live in
 * h1_request.c, responses in h1_response.c; HTTP/2 goes beside them.
 */
#ifndef DYNOBS_COMMON_HTTP_H1_H
#define DYNOBS_COMMON_HTTP_H1_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum dynobs_h1_req_phase {
    DYNOBS_H1_REQ_IDLE = 0, /* expecting the first byte of a request */
    DYNOBS_H1_REQ_LINE,     /* inside the request line */
    DYNOBS_H1_REQ_HEADERS,  /* inside the header block */
    DYNOBS_H1_REQ_BODY,     /* header block done: body, or waiting for the response */
    DYNOBS_H1_REQ_OFF,      /* not HTTP/1: never looked at again */
};

#define DYNOBS_H1_REQLINE_MAX 512u
#define DYNOBS_H1_HOST_MAX 256u
#define DYNOBS_H1_TP_MAX 128u
/* tracestate lines as received, joined by ',': twice the 512 characters
 * kept per context, so that whitespace, empty members and a long member
 * can be dropped by the parser (in the spec's order) rather than by this
 * cap. Past the cap the list is cut after its last whole member and the
 * rest of the request's tracestate lines is not kept (ts_cut); a list
 * that long is truncated, as the spec allows, not rejected. */
#define DYNOBS_H1_TS_MAX 1024u
#define DYNOBS_H1_UA_MAX 256u
#define DYNOBS_H1_CORR_MAX 4u        /* correlation headers watched */
#define DYNOBS_H1_CORR_VAL_MAX 128u  /* bytes of one's value kept, NUL included */
#define DYNOBS_H1_BAGGAGE_MAX 8192u  /* W3C Baggage: what must be propagated */

struct dynobs_h1_req {
    uint8_t phase;
    uint8_t tp_count;    /* traceparent headers seen (W3C: two make it invalid) */
    uint8_t capture;     /* also keep tracestate and user agent (a server's view) */
    uint8_t line_start;  /* the next byte starts a header line */
    uint16_t match;      /* which header names the current line may be */
    uint8_t match_len;   /* bytes of the name matched so far */
    /* The head declares a body (Transfer-Encoding, or a Content-Length
     * other than 0): bytes after it are the body's, not a next request's. */
    uint8_t body;
    uint16_t in_value;   /* inside the value of this watched header (its bit) */
    uint8_t skip_ws;
    uint8_t has_traceparent, has_tracestate;
    uint8_t reqline_trunc;
    uint8_t ts_cut; /* tracestate reached its cap: nothing more is kept */
    /* Correlation headers (dynobs__h1_watch_correlation), bit i for name
     * i: seen, seen more than once, value longer than kept. */
    uint8_t corr_seen, corr_dup, corr_cut;
    uint8_t has_baggage; /* a baggage header was seen */
    uint8_t bag_cut;     /* baggage reached its cap: whole members kept */
    uint16_t bag_len;
    uint16_t corr_len[DYNOBS_H1_CORR_MAX];
    uint16_t reqline_len;
    uint16_t host_len, tp_len, ts_len, ua_len;
    uint32_t line_len;
    char reqline[DYNOBS_H1_REQLINE_MAX];
    char host[DYNOBS_H1_HOST_MAX];
    char traceparent[DYNOBS_H1_TP_MAX];
    char tracestate[DYNOBS_H1_TS_MAX]; /* when capture: several headers joined by ',' */
    char user_agent[DYNOBS_H1_UA_MAX];  /* when capture */
    char corr_val[DYNOBS_H1_CORR_MAX][DYNOBS_H1_CORR_VAL_MAX]; /* when capture */
    char baggage[DYNOBS_H1_BAGGAGE_MAX]; /* when capture: several headers joined by ',' */
};

/* The correlation headers the request reader also watches (names in lower
 * case, copied; at most DYNOBS_H1_CORR_MAX). Set once, before any request
 * is read. Returns 1 when the reader's tables changed, 0 when they held
 * these names already (the default ones: h1_request.c). */
int dynobs__h1_watch_correlation(const char (*names)[64], const uint8_t *lens, int n);

/* Feeds n bytes of a request stream. Returns the offset (0..n-1)
 * of the end-of-headers point when it lies in these bytes, the state then
 * positioned just before it (the caller adds its header lines there and
 * calls dynobs__h1_req_done); returns -1 when the bytes were all consumed
 * without reaching it. */
long dynobs__h1_req_feed(struct dynobs_h1_req *o, const uint8_t *p, size_t n);

/* The header lines were added (or deliberately not): the rest of this
 * request is body, passed through untouched. (This and the other few-line
 * steps below are inline: each runs once per request on a server's way.) */
static inline void dynobs__h1_req_done(struct dynobs_h1_req *o)
{
    o->phase = DYNOBS_H1_REQ_BODY;
}

/* A response completed: expect the next request. */
static inline void dynobs__h1_req_reset(struct dynobs_h1_req *o)
{
    uint8_t off = o->phase == DYNOBS_H1_REQ_OFF, capture = o->capture;
    memset(o, 0, offsetof(struct dynobs_h1_req, reqline));
    o->phase = off ? DYNOBS_H1_REQ_OFF : DYNOBS_H1_REQ_IDLE;
    o->capture = capture;
}

/* A connection's last request head, as a reader fed it from idle in one
 * call, with the reader's state after it (its fixed part: the buffers
 * hold what that call wrote, as nothing else writes them): a head that
 * repeats it byte for byte, fed from idle again, is not read a second
 * time. What the reader does is a function of the bytes it looks at,
 * up to the empty line, and of its state before them, so the outcome is
 * the one reading would give. Kept by the caller, for one reader.
 *
 * A traced caller sends a traceparent of its own with every request, the
 * rest of its head repeating: when the head's one traceparent value was
 * copied whole from a run of visible bytes (tp_at, tp_len), a head that
 * differs from it only inside that run, with visible bytes there too, is
 * read to the same state but for the traceparent field, which then holds
 * the new run (a visible byte inside a value is copied and nothing
 * else: no white space to skip, no line end). */
#define DYNOBS_H1_REQ_MEMO_MAX 256u
#define DYNOBS_H1_REQ_FIXED offsetof(struct dynobs_h1_req, reqline)
struct dynobs_h1_req_memo {
    uint16_t len; /* bytes of head, the empty line's first byte included; 0: none */
    uint8_t repeated; /* the last feed was this head again, its traceparent aside */
    uint8_t tp_len;   /* the traceparent value's run in head, 0: none (not memoised) */
    uint16_t tp_at;
    uint8_t after[DYNOBS_H1_REQ_FIXED];
    uint8_t head[DYNOBS_H1_REQ_MEMO_MAX];
};

/* dynobs__h1_req_feed(o, p, n), with the memo m: every feed of o must go
 * through here while m is kept (one that reads the bytes replaces it). */
long dynobs__h1_req_feed_memo(struct dynobs_h1_req *o, struct dynobs_h1_req_memo *m,
                              const uint8_t *p, size_t n);

/* Parts of the request line: method, target, minor version (0 or 1). */
struct dynobs_h1_reqline {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int minor;
};
int dynobs__h1_req_parse(const struct dynobs_h1_req *o, struct dynobs_h1_reqline *r);

/* 1 when 4 bytes could begin an HTTP request ("GET ", "POST", ...). */
int dynobs__h1_maybe_request(const uint8_t *p, size_t n);

enum dynobs_h1_status_phase {
    DYNOBS_H1_ST_NONE = 0, /* no response expected */
    DYNOBS_H1_ST_LINE,   /* reading the status line */
    DYNOBS_H1_ST_HEADERS,  /* reading response headers */
};

struct dynobs_h1_status {
    uint8_t phase;
    uint8_t line_start;
    uint8_t status_len;
    uint8_t bad;
    uint32_t line_len;
    int code;
    char status[16];
};

/* Feeds bytes of a response. Returns the final status code (>= 200, or 101) when
 * the response header block ends in these bytes, -1 when the bytes are
 * not an HTTP/1 response, 0 when more is needed. Interim 1xx responses
 * are skipped. */
int dynobs__h1_status_feed(struct dynobs_h1_status *in, const uint8_t *p, size_t n);

/* A whole response: done when its status line, headers and
 * body (Content-Length bytes, or the chunked encoding's end; none for
 * HEAD, 1xx, 204 and 304) have gone out. */
enum dynobs_h1_resp_phase {
    DYNOBS_H1_R_STATUS = 0,
    DYNOBS_H1_R_HEADERS,
    DYNOBS_H1_R_BODY,      /* Content-Length bytes to go */
    DYNOBS_H1_R_CHUNK_SIZE,
    DYNOBS_H1_R_CHUNK_EXT, /* after the size, to the end of the line */
    DYNOBS_H1_R_CHUNK_DATA,
    DYNOBS_H1_R_CHUNK_CRLF,
    DYNOBS_H1_R_TRAILER,
    DYNOBS_H1_R_UNTIL_CLOSE, /* no length: the body ends with the connection */
    DYNOBS_H1_R_DONE,
};

struct dynobs_h1_resp {
    uint8_t phase;
    uint8_t line_start;
    uint8_t match;      /* header name candidates on this line */
    uint8_t in_value;   /* 1 content-length, 2 transfer-encoding */
    uint8_t chunked, has_length, head_request, bad;
    uint8_t status_len, te_len;
    int code;
    uint32_t line_len;
    uint64_t length, remaining, chunk;
    char status[16];
    char te[16];
};

/* Starts tracking the response to a request (HEAD: no body). */
static inline void dynobs__h1_resp_start(struct dynobs_h1_resp *r, int head_request)
{
    memset(r, 0, sizeof *r);
    r->head_request = (uint8_t)head_request;
}
/* Feeds bytes of the response. Returns 1 when it completed within them,
 * -1 when they are not an HTTP/1 response, else 0. */
int dynobs__h1_resp_feed(struct dynobs_h1_resp *r, const uint8_t *p, size_t n);
/* A connection's last response head, as a tracker fed it from its start
 * in one call (interim responses included), with the tracker's state
 * right after its empty line, and whether the response was complete
 * there (no body): a head that repeats it byte for byte is not read a
 * second time (as with dynobs_h1_req_memo). */
#define DYNOBS_H1_RESP_MEMO_MAX 512u
struct dynobs_h1_resp_memo {
    uint16_t len; /* bytes of head, to the empty line's line feed; 0: none */
    uint8_t done;
    struct dynobs_h1_resp after;
    uint8_t head[DYNOBS_H1_RESP_MEMO_MAX];
};

/* dynobs__h1_resp_feed(r, p, n), with the memo m. */
int dynobs__h1_resp_feed_memo(struct dynobs_h1_resp *r, struct dynobs_h1_resp_memo *m,
                              const uint8_t *p, size_t n);
/* Body bytes sent without being seen (sendfile). Returns 1 when done. */
static inline int dynobs__h1_resp_body(struct dynobs_h1_resp *r, uint64_t n)
{
    if (r->phase != DYNOBS_H1_R_BODY)
        return 0;
    r->remaining = n < r->remaining ? r->remaining - n : 0;
    if (!r->remaining) {
        r->phase = DYNOBS_H1_R_DONE;
        return 1;
    }
    return 0;
}

#endif
