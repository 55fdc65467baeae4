/*
 * /metrics and /healthz over HTTP, served by libmicrohttpd on its own
 * thread. Nothing here parses HTTP by hand.
 */
#define _GNU_SOURCE
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "exporter.h"
#include "util.h"
#include "diag.h"
#include "prometheus.h"

#define EXPOSITION_MAX (256u << 20) /* refuse to build a larger page */

static struct MHD_Daemon *daemon_;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)cls, (void)version, (void)upload, (void)upload_size, (void)state;
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n", 19,
                     MHD_RESPMEM_PERSISTENT);
    if (!strcmp(url, "/healthz"))
        return reply(c, MHD_HTTP_OK, "text/plain", "ok\n", 3, MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/metrics"))
        return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found: try /metrics\n", 24,
                     MHD_RESPMEM_PERSISTENT);
    struct dx_buf b;
    dx_buf_init(&b, EXPOSITION_MAX);
    uint64_t t0 = dynobs__mono_ns();
    dx_prometheus_render(&b);
    dx_log(DX_DEBUG, "/metrics rendered %zu bytes in %.3f ms", b.len,
           (double)(dynobs__mono_ns() - t0) / 1e6);
    if (b.overflow || !b.p) {
        dx_buf_free(&b);
        dx_log(DX_ERROR, "/metrics: exposition larger than %u bytes, refused", EXPOSITION_MAX);
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", "exposition too large\n",
                     21, MHD_RESPMEM_PERSISTENT);
    }
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len,
                 MHD_RESPMEM_MUST_FREE);
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
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    daemon_ = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, NULL,
                               MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
                               (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                               MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!daemon_) {
        dx_log(DX_ERROR, "cannot serve /metrics on %s:%d (address in use?)", host, port);
        return -1;
    }
    dx_log(DX_INFO, "serving /metrics and /healthz on %s:%d", host, port);
    return 0;
}

void dx_httpd_stop(void)
{
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
