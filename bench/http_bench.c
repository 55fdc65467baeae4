/*
 * Cost of the socket interposers, measured against libc's own functions
 * in the same run (this program links libdynobs.so, so plain calls go
 * through the interposers; libc's are fetched from libc by name).
 *
 *   1. added latency per HTTP/1.1 request on a keep-alive loopback
 *      connection (span, traceparent, response parse, metric);
 *   2. a non-HTTP write+read pair on a socketpair, enabled;
 *   3. the same with OTEL_SDK_DISABLED=true (the program re-runs itself);
 *   4. added CPU per request served on an accepted socket (server span,
 *      W3C extraction, response tracking, metric), blocking and not.
 *
 *   build/bench/dynobs-http-bench [--quick]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

typedef bench_read_fn rw_fn;
typedef bench_write_fn wr_fn;

static rw_fn libc_read;
static wr_fn libc_write;
static int quick;

/* A keep-alive server answering every request with a fixed response; it
 * uses libc's functions directly, so only the client pays for dynobs. */
static const char RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void *server(void *arg)
{
    bench_answer(*(int *)arg, libc_read, libc_write);
    return NULL;
}

static int tcp_pair(int *client, int *srv)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t al = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &al))
        return -1;
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*client, (struct sockaddr *)&a, sizeof a))
        return -1;
    *srv = accept(l, NULL, NULL);
    int one = 1;
    setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*srv, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    close(l);
    return 0;
}

/* Reads want bytes from fd through r (the benchmark stops on EOF). */
static void read_exactly(int fd, rw_fn r, size_t want)
{
    char buf[512];
    for (size_t have = 0; have < want;) {
        ssize_t n = r(fd, buf + have, sizeof buf - have);
        if (n <= 0)
            exit(1);
        have += (size_t)n;
    }
}

/* One request-response on the connection, through w/r. */
static void request(int fd, wr_fn w, rw_fn r)
{
    static const char REQ[] = "GET /api/items?id=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "User-Agent: bench\r\nAccept: */*\r\n\r\n";
    w(fd, REQ, sizeof REQ - 1);
    read_exactly(fd, r, sizeof RESPONSE - 1);
}

/* The server's side of one request, in this thread: the request is put
 * on the connection with libc, read and answered through r/w on the
 * accepted socket, and the answer taken off with libc. */
static int srv_client_fd;

static void serve_one(int fd, wr_fn w, rw_fn r)
{
    static const char REQ[] = "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                              "User-Agent: bench\r\nAccept: */*\r\n\r\n";
    libc_write(srv_client_fd, REQ, sizeof REQ - 1);
    read_exactly(fd, r, sizeof REQ - 1);
    w(fd, RESPONSE, sizeof RESPONSE - 1);
    read_exactly(srv_client_fd, libc_read, sizeof RESPONSE - 1);
}

static ssize_t our_write(int fd, const void *b, size_t n)
{
    return write(fd, b, n);
}

static ssize_t our_read(int fd, void *b, size_t n)
{
    return read(fd, b, n);
}

/* Alternates batches with and without dynobs so both see the same noise;
 * returns the median per-operation difference in ns. */
static void compare(const char *label, void (*op)(int, wr_fn, rw_fn), int fd, int batch,
                    int batches)
{
    double *with = malloc(sizeof(double) * (size_t)batches);
    double *without = malloc(sizeof(double) * (size_t)batches);
    for (int i = 0; i < 2 * batch; i++) /* warm-up: classification, calibration */
        op(fd, our_write, our_read);
    for (int b = 0; b < batches; b++) {
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < batch; i++)
            op(fd, libc_write, libc_read);
        uint64_t t1 = bench_now_ns();
        for (int i = 0; i < batch; i++)
            op(fd, our_write, our_read);
        uint64_t t2 = bench_now_ns();
        without[b] = (double)(t1 - t0) / batch;
        with[b] = (double)(t2 - t1) / batch;
    }
    double a = bench_median(without, batches), w = bench_median(with, batches);
    printf("%-58s %10.1f %10.1f %10.1f\n", label, a, w, w - a);
    free(with);
    free(without);
}

static void pair_op(int fd, wr_fn w, rw_fn r)
{
    char c = 'x';
    w(fd, &c, 1);
    r(fd ^ 0x40000000 ? fd : fd, &c, 1); /* same end: socketpair echo below */
}

static int echo_fd;

static void nonhttp_op(int fd, wr_fn w, rw_fn r)
{
    char c = 'x';
    w(fd, &c, 1);
    r(echo_fd, &c, 1);
}

int main(int argc, char **argv)
{
    quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (!getenv("DYNOBS_SHM_DIR")) {
        char dir[] = "/tmp/dynobs-httpbench-XXXXXX";
        if (!mkdtemp(dir))
            return 1;
        setenv("DYNOBS_SHM_DIR", dir, 1);
        setenv("DYNOBS_RING_BYTES", "8M", 1);
        execv("/proc/self/exe", argv);
        return 1;
    }
    void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    libc_read = (rw_fn)dlsym(libc, "read");
    libc_write = (wr_fn)dlsym(libc, "write");
    int disabled = getenv("OTEL_SDK_DISABLED") != NULL;
    int batches = quick ? 50 : 300;
    (void)pair_op;

    if (!disabled) {
        printf("%-58s %10s %10s %10s\n", "operation (median ns)", "libc", "dynobs", "added");
        int c, s;
        if (tcp_pair(&c, &s) < 0)
            return 1;
        pthread_t th;
        pthread_create(&th, NULL, server, &s);
        usleep(60000); /* let the span clock calibrate */
        compare("HTTP/1.1 request on keep-alive loopback (socket path)", request, c, 20, batches);
        shutdown(c, SHUT_RDWR);
        pthread_join(th, NULL);
        /* Server side: a blocking socket (the span becomes the thread's
         * context) and a non-blocking one, as event loops have. */
        for (int nb = 0; nb < 2; nb++) {
            if (tcp_pair(&srv_client_fd, &s) < 0)
                return 1;
            if (nb)
                fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
            compare(nb ? "HTTP/1.1 request served, non-blocking socket (server span)"
                       : "HTTP/1.1 request served, blocking socket (server span)",
                    serve_one, s, 20, batches);
            close(srv_client_fd);
            close(s);
        }
    }
    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    echo_fd = sp[1];
    compare(disabled ? "non-HTTP write+read, OTEL_SDK_DISABLED=true (pair)"
                     : "non-HTTP write+read, enabled (pair)",
            nonhttp_op, sp[0], 1000, batches);
    fflush(stdout);
    if (!disabled) {
        pid_t pid = fork();
        if (pid == 0) {
            setenv("OTEL_SDK_DISABLED", "true", 1);
            execv("/proc/self/exe", argv);
            _exit(1);
        }
        waitpid(pid, NULL, 0);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", getenv("DYNOBS_SHM_DIR"));
        if (system(cmd) != 0)
            return 1;
    }
    return 0;
}
