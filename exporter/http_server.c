/*
 * Nothing here parses HTTP by hand: libmicrohttpd does, and hands each
 * request to dispatch, which looks the path up in the route table.
 */
#define _GNU_SOURCE
#include "http_server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "diag.h"
#include "http_stream.h"

struct route {
    char path[128];
    dx_httpd_handler handler;
    void *arg;
    size_t max_body;
};

/* Filled before the server starts and only read once it runs (its thread
 * is created after the last registration), so no lock is needed. */
static struct route routes[DX_HTTPD_MAX_ROUTES];
static int nroutes;
static struct MHD_Daemon *daemon_;

int dx_httpd_route(const char *path, dx_httpd_handler h, void *arg, size_t max_body)
{
    if (daemon_ || nroutes == DX_HTTPD_MAX_ROUTES || !h || path[0] != '/' ||
        strlen(path) >= sizeof routes[0].path)
        return -1;
    for (int i = 0; i < nroutes; i++)
        if (!strcmp(routes[i].path, path))
            return -1;
    struct route *r = &routes[nroutes++];
    snprintf(r->path, sizeof r->path, "%s", path);
    r->handler = h;
    r->arg = arg;
    r->max_body = max_body;
    return 0;
}

void dx_httpd_reset(void)
{
    memset(routes, 0, sizeof routes);
    nroutes = 0;
}

void dx_httpd_ok(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    dx_buf_str(&r->body, "ok\n");
}

/* Short fixed answers (errors) go in a small buffer of their own. */
static void fixed(struct dx_httpd_response *r, unsigned status, const char *text)
{
    dx_buf_free(&r->body);
    dx_buf_init(&r->body, 4096);
    r->status = status;
    r->content_type = "text/plain";
    dx_buf_str(&r->body, text);
}

const char *dx_httpd_arg(const struct dx_httpd_response *r, const char *key)
{
    const char *v = NULL;
    if (!r->conn || MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, key,
                                                  strlen(key), &v, NULL) != MHD_YES)
        return NULL;
    return v ? v : "";
}

struct unknown_walk {
    const char *const *known;
    const char *first;
};

static enum MHD_Result unknown_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind, (void)value;
    struct unknown_walk *w = cls;
    for (const char *const *k = w->known; *k; k++)
        if (!strcmp(*k, key))
            return MHD_YES;
    w->first = key;
    return MHD_NO;
}

void dx_httpd_unknown_arg(const struct dx_httpd_response *r, const char *const *known,
                          const char **unknown)
{
    struct unknown_walk w = {known, NULL};
    if (r->conn)
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, unknown_one, &w);
    *unknown = w.first;
}

/* Answers a request on connection conn (NULL for tests). */
static void dispatch(const char *method, const char *url, void *conn, struct dx_httpd_response *r)
{
    dx_buf_init(&r->body, 4096);
    r->stream = NULL;
    r->conn = conn;
    r->status = 200;
    r->content_type = "text/plain";
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        fixed(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
        return;
    }
    for (int i = 0; i < nroutes; i++) {
        if (strcmp(routes[i].path, url))
            continue;
        dx_buf_free(&r->body);
        dx_buf_init(&r->body, routes[i].max_body);
        routes[i].handler(routes[i].arg, r);
        if (r->body.overflow && !r->stream)
            fixed(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "response too large\n");
        return;
    }
    if (nroutes) {
        fixed(r, MHD_HTTP_NOT_FOUND, "not found: try ");
        dx_buf_str(&r->body, routes[0].path);
        dx_buf_str(&r->body, "\n");
    } else {
        fixed(r, MHD_HTTP_NOT_FOUND, "not found\n");
    }
}

void dx_httpd_dispatch(const char *method, const char *url, struct dx_httpd_response *r)
{
    dispatch(method, url, NULL, r);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)cls, (void)version, (void)upload, (void)upload_size, (void)state;
    struct dx_httpd_response r;
    dispatch(method, url, c, &r);
    struct MHD_Response *resp;
    if (r.stream) {
        dx_buf_free(&r.body);
        resp = dx_http_stream_response(r.stream, c);
        if (!resp)
            return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", r.content_type);
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, r.status, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    /* An empty body is a valid answer; the buffer may then be NULL. */
    resp = MHD_create_response_from_buffer(
        r.body.len, r.body.p ? r.body.p : (void *)"", r.body.p ? MHD_RESPMEM_MUST_FREE
                                                               : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        dx_buf_free(&r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", r.content_type);
    enum MHD_Result ret = MHD_queue_response(c, r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* libmicrohttpd's messages, in the exporter's log. A client that goes
 * away in the middle of a streamed response is how an event stream
 * normally ends: that is not worth a warning. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    dx_log(strstr(msg, "no longer available") ? DX_DEBUG : DX_WARN, "http server: %s", msg);
}

/* "/a", "/a and /b", "/a, /b and /c": for the start-up message. */
static void route_list(char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < nroutes && o < cap; i++) {
        const char *sep = i == 0 ? "" : i == nroutes - 1 ? " and " : ", ";
        int n = snprintf(out + o, cap - o, "%s%s", sep, routes[i].path);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

int dx_httpd_start(const char *host, int port)
{
    if (port <= 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc != 0 || !ai) {
        dx_log(DX_ERROR, "prometheus endpoint %s:%d: %s", host, port, gai_strerror(rc));
        return -1;
    }
    /* Suspend and resume: streamed responses (http_stream.h) sleep while
     * they have nothing to send. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger first, as libmicrohttpd asks, so that it gets every message. */
    daemon_ = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, NULL,
                               MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                               ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    freeaddrinfo(ai);
    char list[512];
    route_list(list, sizeof list);
    if (!daemon_) {
        dx_log(DX_ERROR, "cannot serve %s on %s:%d (address in use?)", list, host, port);
        return -1;
    }
    dx_log(DX_INFO, "serving %s on %s:%d", list, host, port);
    return 0;
}

void dx_httpd_stop(void)
{
    if (daemon_) {
        dx_http_stream_stop_all();
        MHD_stop_daemon(daemon_);
    }
    daemon_ = NULL;
}
