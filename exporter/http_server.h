/*
 * The exporter's HTTP server (libmicrohttpd, on its own thread) and its
 * route table. Each endpoint is a route, a path and a handler, that the
 * part serving it registers before the server starts; the server knows
 * nothing of what the routes return. Only GET and HEAD are served.
 */
#ifndef DYNOBS_EXPORTER_HTTP_SERVER_H
#define DYNOBS_EXPORTER_HTTP_SERVER_H

#include <stddef.h>

#include "buf.h"

#define DX_HTTPD_MAX_ROUTES 16

struct dx_http_stream;

/* What a handler fills in. The body starts empty, capped at the route's
 * max_body: a handler that overflows it gets a 500 "response too large"
 * unless it replaces the body itself. A handler that streams its answer
 * (http_stream.h) sets `stream` instead, keeping its own reference (the
 * server takes one): the status and content type are sent, then what the
 * stream yields. */
struct dx_httpd_response {
    unsigned status;          /* 200 unless the handler sets another */
    const char *content_type; /* a static string; "text/plain" unless set */
    struct dx_buf body;
    struct dx_http_stream *stream;
    void *conn; /* the request's connection: dx_httpd_arg; NULL in dispatch */
};

/* Called on the server's thread, one request at a time. */
typedef void (*dx_httpd_handler)(void *arg, struct dx_httpd_response *r);

/* Registers a route for an exact path. The first route registered is the
 * one a "not found" answer points to. Returns 0, or -1 when the table is
 * full, the path is already taken or does not start with '/', or the
 * server has started. */
int dx_httpd_route(const char *path, dx_httpd_handler h, void *arg, size_t max_body);

/* A query argument of the request ("?key=value"), decoded by
 * libmicrohttpd: its value ("" for "?key" alone), or NULL when absent.
 * *unknown, when not NULL, is set to the first argument whose key is
 * not in `known` (a NULL-terminated list), or NULL. */
const char *dx_httpd_arg(const struct dx_httpd_response *r, const char *key);
void dx_httpd_unknown_arg(const struct dx_httpd_response *r, const char *const *known,
                          const char **unknown);

/* A handler that answers "ok" (liveness probes). */
void dx_httpd_ok(void *arg, struct dx_httpd_response *r);

/* Answers one request as the server does: 405 for methods other than GET
 * and HEAD, 404 for unknown paths, else the route's answer. The caller
 * frees r->body. Used by the server and by tests. */
void dx_httpd_dispatch(const char *method, const char *url, struct dx_httpd_response *r);

/* Serves the routes on host:port (port 0: no server, returns 0). Returns
 * 0, or -1 when the address cannot be bound (logged). */
int dx_httpd_start(const char *host, int port);
void dx_httpd_stop(void);

/* Forgets every route; for tests, with the server stopped. */
void dx_httpd_reset(void);

#endif
