/*
 * FastCGI (the responder role) as an application server such as php-fpm
 * reads and writes it, byte by byte, with bounded state: the request
 * (BEGIN_REQUEST, then PARAMS records carrying CGI variables, HTTP_*
 * headers among them) and the response (STDOUT records carrying a CGI
 * response head, then END_REQUEST). No allocation and no system calls:
 * callers feed whatever pieces the application's calls carry.
 */
#ifndef DYNOBS_COMMON_FCGI_H
#define DYNOBS_COMMON_FCGI_H

#include <stddef.h>
#include <stdint.h>

/* 1 when n (>= 8) first bytes are a FastCGI BEGIN_REQUEST record. */
int dynobs__fcgi_maybe_request(const uint8_t *p, size_t n);

/* Record framing, either direction. */
struct dynobs_fcgi_rec {
    uint8_t hdr[8];
    uint8_t hlen;         /* header bytes collected */
    uint8_t type;
    uint8_t padding_left;
    uint32_t content_left;
};

/* The CGI variables kept, by index. */
enum dynobs_fcgi_param {
    DYNOBS_FCGI_METHOD, /* REQUEST_METHOD */
    DYNOBS_FCGI_URI,    /* REQUEST_URI */
    DYNOBS_FCGI_HOST,   /* HTTP_HOST */
    DYNOBS_FCGI_SERVER_PORT,
    DYNOBS_FCGI_REMOTE_ADDR,
    DYNOBS_FCGI_USER_AGENT, /* HTTP_USER_AGENT */
    DYNOBS_FCGI_PROTOCOL,   /* SERVER_PROTOCOL */
    DYNOBS_FCGI_SCHEME,     /* REQUEST_SCHEME */
    DYNOBS_FCGI_TRACEPARENT,
    DYNOBS_FCGI_TRACESTATE,
    DYNOBS_FCGI_NPARAMS
};
#define DYNOBS_FCGI_VAL_MAX 512u

struct dynobs_fcgi_req {
    uint8_t phase;   /* enum below */
    uint8_t nv;      /* name-value decoding step */
    uint8_t lenpos;  /* bytes of the current length read */
    int8_t field;    /* the kept variable being read, or -1 */
    uint8_t namebuf_len;
    uint32_t name_len, value_len, got;
    uint8_t lenbuf[4];
    char namebuf[24]; /* the longest name kept */
    struct dynobs_fcgi_rec rec;
    uint16_t len[DYNOBS_FCGI_NPARAMS];
    uint8_t cut[DYNOBS_FCGI_NPARAMS];
    char val[DYNOBS_FCGI_NPARAMS][DYNOBS_FCGI_VAL_MAX];
};

enum {
    DYNOBS_FCGI_IDLE = 0, /* waiting for BEGIN_REQUEST */
    DYNOBS_FCGI_PARAMS,   /* reading PARAMS */
    DYNOBS_FCGI_BODY,     /* PARAMS ended: the request's head is complete */
    DYNOBS_FCGI_OFF,      /* not FastCGI after all */
};

/* Feeds n bytes the server read. Returns 1 when the request's PARAMS end
 * in these bytes (its head is complete; the rest is passed over), -1 when
 * they are not FastCGI, else 0. */
int dynobs__fcgi_req_feed(struct dynobs_fcgi_req *r, const uint8_t *p, size_t n);
/* The next request on the connection. */
void dynobs__fcgi_req_reset(struct dynobs_fcgi_req *r);

/* The response: the status of its CGI head ("Status: 404 ..."; 200 when
 * absent), done at END_REQUEST. */
struct dynobs_fcgi_resp {
    struct dynobs_fcgi_rec rec;
    uint8_t in_head;   /* still in the CGI response head */
    uint8_t line_len;
    uint8_t line_skip; /* the current line is longer than kept */
    int code;
    char line[32];
};

void dynobs__fcgi_resp_start(struct dynobs_fcgi_resp *r);
/* Feeds n bytes the server wrote. Returns 1 when END_REQUEST ended in
 * them, -1 when they are not FastCGI, else 0. */
int dynobs__fcgi_resp_feed(struct dynobs_fcgi_resp *r, const uint8_t *p, size_t n);

#endif
