/*
 * A small blocking HTTP/1.1 server, knowing nothing of dynobs: the
 * benchmark's server and the end-to-end test's middle service.
 *
 *   dynobs-sample-server PORT thread|fork|single [UPSTREAM-URL [CONNINFO]]
 *
 * thread: one thread per connection; fork: one process per connection;
 * single: one connection at a time. With UPSTREAM-URL, every request
 * first fetches that URL with libcurl, with CONNINFO it also runs one
 * PostgreSQL query, and it renders inside a span of the C API. /fail
 * answers 500. Keep-alive as HTTP/1.1 says; request bodies are read and
 * ignored.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dynobs/dynobs.h"

static const char *upstream, *conninfo;

struct worker {
    CURL *curl;
    PGconn *pg;
};

static size_t discard(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    (void)user;
    return size * n;
}

/* The calls a request makes before it answers; returns what to report. */
static long call_out(struct worker *w, char *note, size_t cap)
{
    long code = 0;
    snprintf(note, cap, "-");
    if (!upstream)
        return 200;
    if (!w->curl) {
        w->curl = curl_easy_init();
        curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, discard);
    }
    curl_easy_setopt(w->curl, CURLOPT_URL, upstream);
    if (curl_easy_perform(w->curl) == CURLE_OK)
        curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &code);
    if (conninfo) {
        if (!w->pg)
            w->pg = PQconnectdb(conninfo);
        PGresult *r = PQexec(w->pg, "SELECT count(*) FROM pg_class WHERE relkind = 'r'");
        snprintf(note, cap, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? "db ok" : "db error");
        PQclear(r);
    }
    dynobs_span *render = dynobs_span_start("render", DYNOBS_SPAN_KIND_INTERNAL);
    dynobs_span_set_int(render, "upstream.status", code);
    dynobs_span_end(render);
    return code == 200 ? 200 : 502;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static long header_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, name, nl) == 0 && l[2 + nl] == ':') {
            const char *v = l + 3 + nl, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            size_t n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return (long)n;
        }
    }
    return -1;
}

static void serve(int fd)
{
    struct worker w = {0};
    char buf[16384];
    size_t have = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof buf - 1)
                goto out;
            ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                goto out;
            have += (size_t)r;
        }
        end[2] = '\0'; /* the head, up to its last header line's CRLF */
        size_t head_len = (size_t)(end + 4 - buf);
        char method[16] = "", path[1024] = "", version[16] = "", v[64];
        if (sscanf(buf, "%15s %1023s %15s", method, path, version) != 3)
            goto out;
        int keep = strcmp(version, "HTTP/1.1") == 0;
        if (header_value(buf, "Connection", v, sizeof v) >= 0)
            keep = strcasecmp(v, "close") != 0 && (keep || strcasecmp(v, "keep-alive") == 0);
        size_t body = header_value(buf, "Content-Length", v, sizeof v) >= 0
                          ? strtoul(v, NULL, 10)
                          : 0;
        /* Drop the head and the body, keeping what follows (pipelining). */
        size_t skip = head_len + body;
        while (skip > have) {
            skip -= have;
            ssize_t r = read(fd, buf, sizeof buf - 1);
            if (r < 0 && errno == EINTR)
                r = 0;
            else if (r <= 0)
                goto out;
            have = (size_t)r;
        }
        memmove(buf, buf + skip, have - skip);
        have -= skip;

        char note[64], resp[2048], text[1200];
        long status = strcmp(path, "/fail") == 0 ? 500 : call_out(&w, note, sizeof note);
        if (status == 500)
            snprintf(note, sizeof note, "failed");
        int tl = snprintf(text, sizeof text, "%s %s %s\n", method, path, note);
        int rl = snprintf(resp, sizeof resp,
                          "HTTP/1.1 %ld %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                          "%s\r\n",
                          status, status == 200 ? "OK" : "Error", tl,
                          keep ? "" : "Connection: close\r\n");
        /* Head and body in one write: two small writes would meet Nagle's
         * algorithm and the client's delayed ACK. */
        if (strcmp(method, "HEAD") != 0) {
            memcpy(resp + rl, text, (size_t)tl);
            rl += tl;
        }
        if (write_all(fd, resp, (size_t)rl) < 0 || !keep)
            break;
    }
out:
    close(fd);
    if (w.curl)
        curl_easy_cleanup(w.curl);
    if (w.pg)
        PQfinish(w.pg);
}

static void *thread_main(void *arg)
{
    serve((int)(intptr_t)arg);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT thread|fork|single [UPSTREAM-URL [CONNINFO]]\n", argv[0]);
        return 2;
    }
    upstream = argc > 3 ? argv[3] : NULL;
    conninfo = argc > 4 ? argv[4] : NULL;
    const char *mode = argv[2];
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(mode, "fork") == 0)
        signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 512) < 0) {
        perror("bind/listen");
        return 1;
    }
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            perror("accept");
            return 1;
        }
        if (strcmp(mode, "thread") == 0) {
            pthread_t t;
            pthread_attr_t at;
            pthread_attr_init(&at);
            pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
            if (pthread_create(&t, &at, thread_main, (void *)(intptr_t)fd) != 0)
                close(fd);
            pthread_attr_destroy(&at);
        } else if (strcmp(mode, "fork") == 0) {
            pid_t p = fork();
            if (p == 0) {
                close(ls);
                serve(fd);
                _exit(0);
            }
            close(fd);
        } else {
            serve(fd);
        }
    }
}
