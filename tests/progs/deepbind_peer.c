/*
 * A library that dynobs-deepbind loads with RTLD_DEEPBIND (the test of
 * preload/dlopen.c): it sends an HTTP request with send() and reads the
 * response with recv(), which the shim must see; it also defines its own
 * write() and deepbind_whoami(), which its own references must keep
 * reaching, as RTLD_DEEPBIND promises, even though the shim interposes
 * write() and the program defines deepbind_whoami() too.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

static int own_writes;

API ssize_t write(int fd, const void *buf, size_t n)
{
    own_writes++;
    return syscall(SYS_write, fd, buf, n);
}

API const char *deepbind_whoami(void)
{
    return "library";
}

API const char *peer_whoami(void)
{
    return deepbind_whoami();
}

/* Writes one byte to fd with write(); returns how many times this
 * library's own write() has run. */
API int peer_write(int fd)
{
    if (write(fd, "x", 1) != 1)
        return -1;
    return own_writes;
}

/* One GET of path on the connected socket fd; returns the status code. */
API int peer_request(int fd, const char *path)
{
    char req[512], resp[4096];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     path);
    if (n <= 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, 0) != n)
        return -1;
    size_t got = 0;
    ssize_t r;
    while (got < sizeof resp - 1 && (r = recv(fd, resp + got, sizeof resp - 1 - got, 0)) > 0)
        got += (size_t)r;
    resp[got] = '\0';
    int status = -1;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    return status;
}
