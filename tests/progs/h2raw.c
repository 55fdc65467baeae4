/*
 * A bare HTTP/2 client in C for test_http2.py: it runs under the shim in
 * the sanitizer builds too (where no packaged HTTP/2 client can), so the
 * shim's HTTP/2 client path (plan, rewritten frames, spliced writes) runs
 * under AddressSanitizer.
 *
 *   dynobs-h2raw PORT N SNDBUF
 *   dynobs-h2raw serve PORT N
 *
 * Connects to 127.0.0.1:PORT with a send buffer of SNDBUF bytes, makes
 * the socket non-blocking and writes the preface, an empty SETTINGS frame
 * and N requests (GET /r/<i>, literal fields; every third one with a
 * 30 KB block split over HEADERS and CONTINUATION frames; the user agent
 * h2raw/odd or h2raw/even as i is) in one buffer,
 * with write() as far as the socket takes it (poll on EAGAIN), reading
 * and discarding what the server sends meanwhile; then reads until the
 * server closes. Prints "ok EAGAINS SHORT_WRITES". Field values: x-fill-<j> is "<i>-<j>-"
 * repeated 100 times.
 *
 * "serve": listens on 127.0.0.1:PORT (printing "ready"), writes its
 * SETTINGS frame first (as HTTP/2 servers do), reads one connection until
 * N header blocks have ended, answers each stream with a HEADERS frame
 * (:status 200, END_STREAM) and closes: the server side of the shim under
 * the sanitizers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/h2.h"
#include "http/hpack.h"

static unsigned char out[4u << 20];
static size_t used;

static void frame(int type, int flags, unsigned stream, const unsigned char *p, size_t n)
{
    unsigned char h[9] = {(unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n,
                          (unsigned char)type,      (unsigned char)flags,
                          (unsigned char)(stream >> 24), (unsigned char)(stream >> 16),
                          (unsigned char)(stream >> 8),  (unsigned char)stream};
    memcpy(out + used, h, 9);
    if (n)
        memcpy(out + used + 9, p, n);
    used += 9 + n;
}

static size_t field(unsigned char *b, size_t at, const char *name, const char *value)
{
    return at + dynobs__hpack_literal(b + at, 65536 - at, name, strlen(name), value,
                                      strlen(value));
}

static void request(unsigned i)
{
    static unsigned char block[65536];
    char path[32], name[32], value[1200];
    size_t n = 0;
    snprintf(path, sizeof path, "/r/%u", i);
    n = field(block, n, ":method", "GET");
    n = field(block, n, ":scheme", "http");
    n = field(block, n, ":path", path);
    n = field(block, n, ":authority", "127.0.0.1");
    /* Two user agents in turn: what a server keeps per connection must
     * follow them. */
    n = field(block, n, "user-agent", i % 2 ? "h2raw/odd" : "h2raw/even");
    int fills = i % 3 == 0 ? 30 : 3;
    for (int j = 0; j < fills; j++) {
        size_t v = 0;
        for (int k = 0; k < 100; k++)
            v += (size_t)snprintf(value + v, sizeof value - v, "%u-%d-", i, j);
        snprintf(name, sizeof name, "x-fill-%d", j);
        n = field(block, n, name, value);
    }
    unsigned stream = 2 * i - 1;
    if (n <= 16384) {
        frame(DYNOBS_H2_HEADERS, DYNOBS_H2_END_STREAM | DYNOBS_H2_END_HEADERS, stream, block, n);
        return;
    }
    frame(DYNOBS_H2_HEADERS, DYNOBS_H2_END_STREAM, stream, block, 16000);
    frame(DYNOBS_H2_CONTINUATION, DYNOBS_H2_END_HEADERS, stream, block + 16000, n - 16000);
}

/* Reads frames from fd until n header blocks have ended; returns the
 * streams they opened in ids. */
static int read_requests(int fd, int n, unsigned *ids)
{
    static unsigned char buf[1u << 20];
    size_t have = 0, at = DYNOBS_H2_PREFACE_LEN;
    int done = 0;
    while (done < n) {
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        if (r <= 0)
            return -1;
        have += (size_t)r;
        while (have >= at + 9) {
            size_t len = (size_t)buf[at] << 16 | (size_t)buf[at + 1] << 8 | buf[at + 2];
            if (have < at + 9 + len)
                break;
            unsigned stream = ((unsigned)buf[at + 5] << 24 | (unsigned)buf[at + 6] << 16 |
                               (unsigned)buf[at + 7] << 8 | buf[at + 8]) & 0x7fffffffu;
            if ((buf[at + 3] == DYNOBS_H2_HEADERS || buf[at + 3] == DYNOBS_H2_CONTINUATION) &&
                (buf[at + 4] & DYNOBS_H2_END_HEADERS))
                ids[done++] = stream;
            at += 9 + len;
        }
    }
    return 0;
}

static int serve(int port, int n)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4) < 0) {
        perror("listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    int fd = accept(ls, NULL, NULL);
    if (fd < 0)
        return 1;
    used = 0;
    frame(DYNOBS_H2_SETTINGS, 0, 0, NULL, 0);
    if (write(fd, out, used) != (ssize_t)used)
        return 1;
    static unsigned ids[4096];
    if (n > 4096 || read_requests(fd, n, ids) < 0) {
        fprintf(stderr, "the requests did not come\n");
        return 1;
    }
    used = 0;
    unsigned char status = 0x88; /* :status 200, static table index 8 */
    for (int i = 0; i < n; i++)
        frame(DYNOBS_H2_HEADERS, DYNOBS_H2_END_STREAM | DYNOBS_H2_END_HEADERS, ids[i], &status, 1);
    if (write(fd, out, used) != (ssize_t)used)
        return 1;
    close(fd);
    close(ls);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "serve"))
        return serve(atoi(argv[2]), atoi(argv[3]));
    if (argc < 4)
        return 2;
    int port = atoi(argv[1]), n = atoi(argv[2]), sndbuf = atoi(argv[3]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        return 1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    memcpy(out, DYNOBS_H2_PREFACE, DYNOBS_H2_PREFACE_LEN);
    used = DYNOBS_H2_PREFACE_LEN;
    frame(DYNOBS_H2_SETTINGS, 0, 0, NULL, 0);
    for (int i = 1; i <= n; i++)
        request((unsigned)i);
    size_t off = 0;
    long eagains = 0, partial = 0;
    char in[65536];
    for (;;) {
        struct pollfd p = {fd, (short)(POLLIN | (off < used ? POLLOUT : 0)), 0};
        if (poll(&p, 1, 10000) <= 0) {
            fprintf(stderr, "stuck at %zu of %zu\n", off, used);
            return 1;
        }
        if (p.revents & POLLIN) {
            ssize_t r = read(fd, in, sizeof in);
            if (r == 0)
                break;
            if (r < 0 && errno != EAGAIN) {
                perror("read");
                return 1;
            }
        }
        if ((p.revents & POLLOUT) && off < used) {
            ssize_t w = write(fd, out + off, used - off);
            if (w > 0) {
                partial += (size_t)w < used - off;
                off += (size_t)w;
            }
            else if (errno == EAGAIN)
                eagains++;
            else {
                perror("write");
                return 1;
            }
        }
    }
    if (off != used) {
        fprintf(stderr, "closed at %zu of %zu\n", off, used);
        return 1;
    }
    printf("ok %ld %ld\n", eagains, partial);
    close(fd);
    return 0;
}
