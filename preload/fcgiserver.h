/*
 * FastCGI over a connection (conn.h), the application server's side
 * (php-fpm behind nginx): each request gets a SERVER span from its CGI
 * variables, continuing the HTTP_TRACEPARENT the web server passed on,
 * served like an HTTP/1 request (bound to its thread when it serves one
 * at a time), ended by END_REQUEST with the status of the CGI head.
 */
#ifndef DYNOBS_PRELOAD_FCGISERVER_H
#define DYNOBS_PRELOAD_FCGISERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "context.h"
#include "route.h"
#include "span.h"

#include "../common/fcgi.h"

struct dynobs_conn;

struct dynobs_fcgis {
    struct dynobs_fcgi_req req;   /* the request, as it is read */
    struct dynobs_fcgi_resp resp; /* the response, as it goes out */
    uint8_t open;                 /* its span started */
    uint64_t start_ns;
    char method[24];
    struct dynobs_route route; /* http.route, and whether the request is ignored */
    uint8_t uncounted;         /* ignored, or a filter drops its metrics */
    const struct dynobs_rules *rules; /* the redaction its span takes at its end */
    const struct dynobs_rule_redact *redact;
    struct dynobs_serving serving;
    struct dynobs_span span;
};

static inline int dynobs__fcgis_wants_out(const struct dynobs_fcgis *f)
{
    return f->open;
}

static inline int dynobs__fcgis_wants_in(const struct dynobs_fcgis *f)
{
    return f->req.phase < DYNOBS_FCGI_BODY || f->open;
}

void dynobs__fcgis_init(struct dynobs_conn *c) DYNOBS_INTERNAL;
void dynobs__fcgis_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                      size_t n) DYNOBS_INTERNAL;
void dynobs__fcgis_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                       size_t n) DYNOBS_INTERNAL;
void dynobs__fcgis_end(struct dynobs_conn *c) DYNOBS_INTERNAL;

#endif
