/*
 * HTTP/1.x client streams, byte by byte, with bounded state: recognising a
 * request from the bytes written, finding where a header can be added
 * (just before the empty line that ends the header block), noticing a
 * traceparent the application set itself, and reading the status of the
 * response. No allocation and no system calls: the socket and TLS
 * interposers feed it whatever the application passes, in whatever
 * pieces, down to one byte at a time.
 */
#ifndef DYNOBS_COMMON_HTTP1_H
#define DYNOBS_COMMON_HTTP1_H

#include <stddef.h>
#include <stdint.h>

enum dynobs_h1_out_phase {
    DYNOBS_H1_IDLE = 0,  /* expecting the first byte of a request */
    DYNOBS_H1_REQLINE,   /* inside the request line */
    DYNOBS_H1_HEADERS,   /* inside the header block */
    DYNOBS_H1_PASS,      /* header block done: body or waiting for the response */
    DYNOBS_H1_OFF,       /* not HTTP/1: never looked at again */
};

#define DYNOBS_H1_REQLINE_MAX 512u
#define DYNOBS_H1_HOST_MAX 256u
#define DYNOBS_H1_TP_MAX 128u
#define DYNOBS_H1_TS_MAX 512u
#define DYNOBS_H1_UA_MAX 256u

struct dynobs_h1_out {
    uint8_t phase;
    uint8_t tp_count;    /* traceparent headers seen (W3C: two make it invalid) */
    uint8_t capture;     /* server side: also keep tracestate and user agent */
    uint8_t line_start;  /* the next byte starts a header line */
    uint8_t match;       /* which header name the current line may be */
    uint8_t match_len;   /* bytes of the name matched so far */
    uint8_t in_value;    /* 1: inside the value of a captured header */
    uint8_t skip_ws;
    uint8_t has_traceparent, has_tracestate;
    uint8_t reqline_trunc;
    uint16_t reqline_len;
    uint16_t host_len, tp_len, ts_len, ua_len;
    uint32_t line_len;
    char reqline[DYNOBS_H1_REQLINE_MAX];
    char host[DYNOBS_H1_HOST_MAX];
    char traceparent[DYNOBS_H1_TP_MAX];
    char tracestate[DYNOBS_H1_TS_MAX]; /* when capture: several headers joined by ',' */
    char user_agent[DYNOBS_H1_UA_MAX];  /* when capture */
};

/* Feeds n bytes written by the application. Returns the offset (0..n-1)
 * of the end-of-headers point when it lies in these bytes, the state then
 * positioned just before it (the caller adds its header lines there and
 * calls dynobs__h1_out_done); returns -1 when the bytes were all consumed
 * without reaching it. */
long dynobs__h1_out_feed(struct dynobs_h1_out *o, const uint8_t *p, size_t n);

/* The header lines were added (or deliberately not): the rest of this
 * request is body, passed through untouched. */
void dynobs__h1_out_done(struct dynobs_h1_out *o);

/* A response completed: expect the next request. */
void dynobs__h1_out_reset(struct dynobs_h1_out *o);

/* Parts of the request line: method, target, minor version (0 or 1). */
struct dynobs_h1_request {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int minor;
};
int dynobs__h1_request_parse(const struct dynobs_h1_out *o, struct dynobs_h1_request *r);

/* 1 when 4 bytes could begin an HTTP request ("GET ", "POST", ...). */
int dynobs__h1_maybe_request(const uint8_t *p, size_t n);

enum dynobs_h1_in_phase {
    DYNOBS_H1_IN_NONE = 0, /* no response expected */
    DYNOBS_H1_IN_STATUS,   /* reading the status line */
    DYNOBS_H1_IN_HEADERS,  /* reading response headers */
};

struct dynobs_h1_in {
    uint8_t phase;
    uint8_t line_start;
    uint8_t status_len;
    uint8_t bad;
    uint32_t line_len;
    int code;
    char status[16];
};

/* Feeds bytes read. Returns the final status code (>= 200, or 101) when
 * the response header block ends in these bytes, -1 when the bytes are
 * not an HTTP/1 response, 0 when more is needed. Interim 1xx responses
 * are skipped. */
int dynobs__h1_in_feed(struct dynobs_h1_in *in, const uint8_t *p, size_t n);

/* The response a server writes: done when its status line, headers and
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
void dynobs__h1_resp_start(struct dynobs_h1_resp *r, int head_request);
/* Feeds bytes written. Returns 1 when the response completed within them,
 * -1 when they are not an HTTP/1 response, else 0. */
int dynobs__h1_resp_feed(struct dynobs_h1_resp *r, const uint8_t *p, size_t n);
/* Body bytes sent without being seen (sendfile). Returns 1 when done. */
int dynobs__h1_resp_body(struct dynobs_h1_resp *r, uint64_t n);

#endif
