/* The HTTP server's route table: registration rules and how a request
 * finds its route, through the same dispatch the server uses; then one
 * request over a real socket. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_server.h"

static int calls;

static void hello(void *arg, struct dx_httpd_response *r)
{
    calls++;
    r->content_type = "text/x-hello";
    dx_buf_printf(&r->body, "hello %s\n", (const char *)arg);
}

static void teapot(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    r->status = 418;
    dx_buf_str(&r->body, "short and stout\n");
}

static void huge(void *arg, struct dx_httpd_response *r)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        dx_buf_str(&r->body, "0123456789");
}

static struct dx_httpd_response get(const char *method, const char *url)
{
    struct dx_httpd_response r;
    dx_httpd_dispatch(method, url, &r);
    return r;
}

/* Dispatching method url answers status with body, and with content_type
 * unless that is NULL. */
static void answers(const char *method, const char *url, int status, const char *content_type,
                    const char *body)
{
    struct dx_httpd_response r = get(method, url);
    cr_assert_eq(r.status, status);
    if (content_type)
        cr_assert_str_eq(r.content_type, content_type);
    cr_assert_str_eq(r.body.p, body);
    dx_buf_free(&r.body);
}

Test(exporter_http, routes_are_dispatched_by_exact_path)
{
    dx_httpd_reset();
    cr_assert_eq(dx_httpd_route("/hello", hello, "world", 4096), 0);
    cr_assert_eq(dx_httpd_route("/teapot", teapot, NULL, 4096), 0);
    answers("GET", "/hello", 200, "text/x-hello", "hello world\n");
    cr_assert_eq(calls, 1);
    answers("HEAD", "/teapot", 418, "text/plain", "short and stout\n");
    /* No prefix matching, no query-string guessing. */
    answers("GET", "/hello/", 404, NULL, "not found: try /hello\n");
    cr_assert_eq(calls, 1);
}

Test(exporter_http, only_get_and_head)
{
    dx_httpd_reset();
    cr_assert_eq(dx_httpd_route("/hello", hello, "x", 4096), 0);
    answers("POST", "/hello", 405, NULL, "method not allowed\n");
    cr_assert_eq(calls, 0);
}

Test(exporter_http, registration_rules)
{
    dx_httpd_reset();
    answers("GET", "/anything", 404, NULL, "not found\n");
    cr_assert_eq(dx_httpd_route("/a", hello, NULL, 4096), 0);
    cr_assert_eq(dx_httpd_route("/a", teapot, NULL, 4096), -1, "a path is taken once");
    cr_assert_eq(dx_httpd_route("relative", hello, NULL, 4096), -1);
    cr_assert_eq(dx_httpd_route("/nohandler", NULL, NULL, 4096), -1);
    for (int i = 1; i < DX_HTTPD_MAX_ROUTES; i++) {
        char path[32];
        snprintf(path, sizeof path, "/r%d", i);
        cr_assert_eq(dx_httpd_route(path, hello, NULL, 4096), 0);
    }
    cr_assert_eq(dx_httpd_route("/one-too-many", hello, NULL, 4096), -1);
}

Test(exporter_http, a_body_over_its_cap_is_refused)
{
    dx_httpd_reset();
    cr_assert_eq(dx_httpd_route("/huge", huge, NULL, 512), 0);
    answers("GET", "/huge", 500, NULL, "response too large\n");
}

Test(exporter_http, served_over_a_socket)
{
    dx_httpd_reset();
    cr_assert_eq(dx_httpd_route("/hello", hello, "socket", 4096), 0);
    cr_assert_eq(dx_httpd_route("/healthz", dx_httpd_ok, NULL, 4096), 0);
    /* A free port: bind to 0, read it back, release it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    int port = ntohs(sa.sin_port);
    close(s);
    cr_assert_eq(dx_httpd_start("127.0.0.1", port), 0);
    cr_assert_eq(dx_httpd_route("/late", hello, NULL, 4096), -1, "routes are fixed once serving");
    const char *paths[] = {"/hello", "/healthz", "/nope"};
    const char *expect[] = {"HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 404"};
    const char *body[] = {"\r\n\r\nhello socket\n", "\r\n\r\nok\n", "\r\n\r\nnot found: try /hello\n"};
    for (int i = 0; i < 3; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_eq(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
        char req[128], resp[4096];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                         paths[i]);
        cr_assert_eq(write(c, req, (size_t)n), n);
        size_t got = 0;
        ssize_t k;
        while (got < sizeof resp - 1 && (k = read(c, resp + got, sizeof resp - 1 - got)) > 0)
            got += (size_t)k;
        resp[got] = '\0';
        close(c);
        cr_assert_eq(strncmp(resp, expect[i], strlen(expect[i])), 0, "%s", resp);
        cr_assert(strstr(resp, body[i]), "%s", resp);
    }
    dx_httpd_stop();
}
