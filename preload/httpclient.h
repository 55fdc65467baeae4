/*
 * HTTP client requests seen on a byte stream (socket or TLS): the span of
 * each request, the header lines added to it, the response status, and
 * the http.client.request.duration metric. The stream layers call these
 * around their real calls.
 */
#ifndef DYNOBS_PRELOAD_HTTPCLIENT_H
#define DYNOBS_PRELOAD_HTTPCLIENT_H

#include <stddef.h>
#include <sys/uio.h>

#include "conn.h"

/* Before sending `total` bytes of iov: returns the offset at which our
 * header lines must go out in this call, or -1 for none. May start the
 * request's span (when the header block ends within these bytes). fd is
 * used for the peer address when there is no Host header (-1: none). */
long dynobs__http_out_plan(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                           size_t total, int fd) DYNOBS_INTERNAL;

/* After the application's bytes [0, consumed) went out. */
void dynobs__http_out_commit(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                             size_t consumed) DYNOBS_INTERNAL;

/* Our lines are out: the rest of the request is body. */
void dynobs__http_out_sent(struct dynobs_conn *c) DYNOBS_INTERNAL;

/* n bytes were read into iov. */
void dynobs__http_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                     size_t n) DYNOBS_INTERNAL;

/* The stream failed or closed before the response headers. */
void dynobs__http_fail(struct dynobs_conn *c, const char *error_type) DYNOBS_INTERNAL;

/* Server side (httpserver.c): bytes read from / written to an accepted
 * connection, body bytes sent by sendfile, and the connection's end. */
void dynobs__srv_in(struct dynobs_conn *c, int fd, const struct iovec *iov, int iovcnt,
                    size_t n) DYNOBS_INTERNAL;
void dynobs__srv_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                     size_t n) DYNOBS_INTERNAL;
void dynobs__srv_sent(struct dynobs_conn *c, size_t n) DYNOBS_INTERNAL;
void dynobs__srv_close(struct dynobs_conn *c) DYNOBS_INTERNAL;

/* 1 when this stream wants to see the bytes written or read. */
static inline int dynobs__http_watching_out(const struct dynobs_conn *c)
{
    return c->out.phase < DYNOBS_H1_REQ_BODY || c->inj_at >= 0;
}

static inline int dynobs__http_watching_in(const struct dynobs_conn *c)
{
    return c->span_open && c->in.phase != DYNOBS_H1_ST_NONE;
}

#endif
