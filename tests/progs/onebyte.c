/*
 * A hand-written HTTP/1.1 client that makes the socket path work hard:
 * non-blocking socket, the request written one byte per call (waiting
 * with poll on EAGAIN), several requests on one keep-alive connection.
 * Prints each response body to stdout.
 *
 *   dynobs-onebyte PORT PATH [COUNT]
 */
#define _GNU_SOURCE
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

static void wait_for(int fd, short ev)
{
    struct pollfd p = {.fd = fd, .events = ev};
    poll(&p, 1, 5000);
}

static int write_all_bytewise(int fd, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        ssize_t w = write(fd, s + i, 1);
        if (w == 1) {
            i++;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_for(fd, POLLOUT);
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

/* One read into buf after the *have bytes already there, waiting when
 * the non-blocking socket has nothing yet: 0, or -1 at the end of the
 * stream or on an error. */
static int read_more(int fd, char *buf, size_t cap, size_t *have)
{
    ssize_t r = read(fd, buf + *have, cap - *have);
    if (r > 0)
        *have += (size_t)r;
    else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        wait_for(fd, POLLIN);
    else
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int count = argc > 3 ? atoi(argv[3]) : 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        return 3;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    static char buf[1 << 20];
    for (int i = 0; i < count; i++) {
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUser-Agent: onebyte\r\n"
                         "X-Request: %d\r\n\r\n",
                         argv[2], argv[1], i);
        if (write_all_bytewise(fd, req, (size_t)n) < 0)
            return 4;
        /* Read the header block, then Content-Length bytes of body. */
        size_t have = 0;
        char *end = NULL;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4)))
            if (read_more(fd, buf, sizeof buf, &have) < 0)
                return 5;
        char *cl = strcasestr(buf, "content-length:");
        size_t body_len = cl ? (size_t)atol(cl + 15) : 0;
        size_t hdr = (size_t)(end + 4 - buf);
        while (have < hdr + body_len)
            if (read_more(fd, buf, sizeof buf, &have) < 0)
                return 6;
        fwrite(buf + hdr, 1, body_len, stdout);
    }
    close(fd);
    return 0;
}
