/*
 * The calls bench/ebpf_cost.sh times in one process, so that the same
 * binary can run plain, under LD_PRELOAD=libdynobs.so, or traced by
 * dynobs-exporter --ebpf --pid (which needs the process to exist, with
 * libpq and libssl mapped, before its calls start):
 *   pq    PQexec("SELECT 1") over the unix socket CONNINFO names;
 *   http  a 100-byte HTTP/1.1 request and a 100-byte response over a
 *         loopback TCP connection: write, read, write, read, all in this
 *         thread (four socket calls, no thread switch);
 *   tls   the same exchange through OpenSSL (SSL_write, SSL_read twice
 *         over TLS 1.3 on loopback, client and server in this thread);
 *   noop  calls of an empty function, dynobs_bench_noop, on which the
 *         script puts a bare uprobe (tracefs, no BPF): what a hit costs;
 *   push  the same with dynobs_bench_push (see below).
 *
 *   dynobs-ebpf-bench CONNINFO|- [SCALE [WORKLOADS]]
 *
 * Prints "ready" once connected, waits for a line on stdin ("go", or
 * "go PID" to watch a process: the exporter), then for each workload
 * (default "pq,http,tls"; pq is left out when CONNINFO is "-") prints
 * "NAME NS_PER_EXCHANGE CALLS_PER_EXCHANGE EXCHANGES WATCHED_NS ALL": the
 * median over batches, how many exchanges they held, the CPU time the
 * watched process spent while they ran and until it went idle again (its
 * idle rate, measured just before, taken off), and every exchange made,
 * the warm-up's included. SCALE (default 1) multiplies the number of
 * batches.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchutil.h"

#define MSG 100

static char request[MSG + 1], response[MSG + 1];
static int watch_pid;

static void die(const char *what)
{
    fprintf(stderr, "dynobs-ebpf-bench: %s: %s\n", what, strerror(errno));
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* Pads a message head to exactly MSG bytes with a filler header (the
 * request) or body (the response), so both directions move MSG bytes. */
static void make_messages(void)
{
    const char *req = "GET /bench/items/42 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ";
    size_t n = strlen(req);
    memset(request, 'a', MSG);
    memcpy(request, req, n);
    memcpy(request + MSG - 4, "\r\n\r\n", 4);
    const char *res = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 35\r\n\r\n";
    n = strlen(res);
    memset(response, 'b', MSG);
    memcpy(response, res, n);
    if (n + 35 != MSG) {
        fprintf(stderr, "dynobs-ebpf-bench: response head is %zu bytes\n", n);
        exit(1);
    }
}

/* CPU time of every thread of pid, in ns (schedstat's first field). */
static uint64_t cpu_ns(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    uint64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[320];
        snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", pid, de->d_name);
        FILE *f = fopen(p, "re");
        unsigned long long v;
        if (f && fscanf(f, "%llu", &v) == 1)
            sum += v;
        if (f)
            fclose(f);
    }
    closedir(d);
    return sum;
}

static void nap_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Waits until the watched process has been idle (under 1 ms of CPU in
 * 100 ms) or 3 s passed; returns its idle rate in ns of CPU per ns. */
static double settle(void)
{
    uint64_t prev = cpu_ns(watch_pid), t = bench_now_ns();
    for (int i = 0; i < 30; i++) {
        nap_ms(100);
        uint64_t now = cpu_ns(watch_pid), t2 = bench_now_ns();
        if (now - prev < 1000000)
            return (double)(now - prev) / (double)(t2 - t);
        prev = now;
        t = t2;
    }
    return 0;
}

typedef void (*exchange_fn)(void *);

/* Runs warm exchanges, then batches of per exchanges, and prints the
 * median time of one exchange and the watched process's CPU. */
static void measure(const char *name, exchange_fn fn, void *arg, int calls, int batches, int per)
{
    for (int i = 0; i < per * 10; i++)
        fn(arg);
    double idle = 0;
    uint64_t c0 = 0, t0 = 0;
    if (watch_pid) {
        idle = settle();
        c0 = cpu_ns(watch_pid);
        t0 = bench_now_ns();
    }
    double *v = malloc(sizeof *v * (size_t)batches);
    if (!v)
        die("malloc");
    for (int b = 0; b < batches; b++) {
        uint64_t s = bench_now_ns();
        for (int i = 0; i < per; i++)
            fn(arg);
        v[b] = (double)(bench_now_ns() - s) / per;
    }
    double watched = 0;
    if (watch_pid) {
        settle();
        uint64_t spent = cpu_ns(watch_pid) - c0;
        /* the settling's last 100 ms idle are part of the window */
        watched = (double)spent - idle * (double)(bench_now_ns() - t0);
        if (watched < 0)
            watched = 0;
    }
    printf("%s %.1f %d %d %.0f %d\n", name, bench_median(v, batches), calls, batches * per, watched,
           (batches + 10) * per);
    fflush(stdout);
    free(v);
}

/* ---- the functions a bare uprobe is put on ----
 * The kernel emulates some first instructions of a probed function (a
 * push, here since Linux 6.x) and single-steps the others out of line
 * (a second trap): dynobs_bench_noop starts as SSL_read does (sub from
 * the stack pointer), dynobs_bench_push as PQexec does (push %rbp). */

void dynobs_bench_noop(void *arg);
void dynobs_bench_push(void *arg);
#if defined(__x86_64__)
__asm__(".text\n"
        ".globl dynobs_bench_noop\n.type dynobs_bench_noop, @function\n"
        "dynobs_bench_noop:\n\tsub $8, %rsp\n\tadd $8, %rsp\n\tret\n"
        ".size dynobs_bench_noop, .-dynobs_bench_noop\n"
        ".globl dynobs_bench_push\n.type dynobs_bench_push, @function\n"
        "dynobs_bench_push:\n\tpush %rbp\n\tpop %rbp\n\tret\n"
        ".size dynobs_bench_push, .-dynobs_bench_push\n");
#else
__attribute__((noinline)) void dynobs_bench_noop(void *arg)
{
    __asm__ volatile("" : : "r"(arg) : "memory");
}
__attribute__((noinline)) void dynobs_bench_push(void *arg)
{
    __asm__ volatile("" : : "r"(arg) : "memory");
}
#endif

/* ---- pq ---- */

static void pq_exchange(void *arg)
{
    PGresult *r = PQexec(arg, "SELECT 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "dynobs-ebpf-bench: SELECT 1: %s", PQerrorMessage(arg));
        exit(1);
    }
    PQclear(r);
}

/* ---- http over loopback TCP ---- */

struct pair {
    int client, server;
    SSL *cs, *ss;
};

static void tcp_pair(struct pair *p)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &al))
        die("listen");
    p->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->client < 0 || connect(p->client, (struct sockaddr *)&a, sizeof a))
        die("connect");
    p->server = accept(l, NULL, NULL);
    if (p->server < 0)
        die("accept");
    close(l);
    /* nothing may ever wait: everything is in this thread */
    struct timeval tv = {5, 0};
    int one = 1;
    for (int i = 0; i < 2; i++) {
        int fd = i ? p->server : p->client;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
}

/* Reads from fd until the bytes read end a request head (want 0) or
 * reach want bytes; the shim may add a traceparent line to a request. */
static void read_msg(int fd, SSL *ssl, size_t want)
{
    char buf[4096];
    size_t have = 0;
    for (;;) {
        int r = ssl ? SSL_read(ssl, buf + have, (int)(sizeof buf - 1 - have))
                    : (int)read(fd, buf + have, sizeof buf - 1 - have);
        if (r <= 0)
            die("read");
        have += (size_t)r;
        buf[have] = '\0';
        if (want ? have >= want : strstr(buf, "\r\n\r\n") != NULL)
            return;
        if (have == sizeof buf - 1)
            die("read: message too long");
    }
}

static void write_msg(int fd, SSL *ssl, const char *m)
{
    int r = ssl ? SSL_write(ssl, m, MSG) : (int)write(fd, m, MSG);
    if (r != MSG)
        die("write");
}

static void http_exchange(void *arg)
{
    struct pair *p = arg;
    write_msg(p->client, p->cs, request);
    read_msg(p->server, p->ss, 0);
    write_msg(p->server, p->ss, response);
    read_msg(p->client, p->cs, MSG);
}

/* ---- tls ---- */

/* A self-signed P-256 certificate made here: no files to find. */
static SSL_CTX *server_ctx(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!k || !x)
        die("key");
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (!X509_sign(x, k, EVP_sha256()))
        die("sign");
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (!c || SSL_CTX_use_certificate(c, x) != 1 || SSL_CTX_use_PrivateKey(c, k) != 1)
        die("server context");
    X509_free(x);
    EVP_PKEY_free(k);
    return c;
}

static void set_blocking(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

/* Both ends' handshakes, stepped in turn on non-blocking sockets. */
static void tls_pair(struct pair *p)
{
    tcp_pair(p);
    SSL_CTX *sc = server_ctx(), *cc = SSL_CTX_new(TLS_client_method());
    if (!cc)
        die("client context");
    SSL_CTX_set_verify(cc, SSL_VERIFY_NONE, NULL);
    p->cs = SSL_new(cc);
    p->ss = SSL_new(sc);
    SSL_set_fd(p->cs, p->client);
    SSL_set_fd(p->ss, p->server);
    set_blocking(p->client, 0);
    set_blocking(p->server, 0);
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 1000 && !(cdone && sdone); i++) {
        if (!cdone) {
            int r = SSL_connect(p->cs);
            cdone = r == 1;
            if (r != 1 && SSL_get_error(p->cs, r) != SSL_ERROR_WANT_READ &&
                SSL_get_error(p->cs, r) != SSL_ERROR_WANT_WRITE)
                die("SSL_connect");
        }
        if (!sdone) {
            int r = SSL_accept(p->ss);
            sdone = r == 1;
            if (r != 1 && SSL_get_error(p->ss, r) != SSL_ERROR_WANT_READ &&
                SSL_get_error(p->ss, r) != SSL_ERROR_WANT_WRITE)
                die("SSL_accept");
        }
    }
    if (!(cdone && sdone))
        die("handshake");
    set_blocking(p->client, 1);
    set_blocking(p->server, 1);
}

static int wanted(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *s = list; (s = strstr(s, name)); s += n)
        if ((s == list || s[-1] == ',') && (s[n] == ',' || s[n] == '\0'))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: dynobs-ebpf-bench CONNINFO|- [SCALE [WORKLOADS]]\n");
        return 2;
    }
    double scale = argc > 2 ? atof(argv[2]) : 1;
    const char *list = argc > 3 ? argv[3] : "pq,http,tls";
    if (scale <= 0)
        scale = 1;
    make_messages();
    PGconn *pq = NULL;
    if (strcmp(argv[1], "-") && wanted(list, "pq")) {
        pq = PQconnectdb(argv[1]);
        if (PQstatus(pq) != CONNECTION_OK) {
            fprintf(stderr, "dynobs-ebpf-bench: %s", PQerrorMessage(pq));
            return 3;
        }
    }
    struct pair h = {0}, t = {0};
    tcp_pair(&h);
    tls_pair(&t);
    printf("ready\n");
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 0;
    if (!strncmp(line, "go ", 3))
        watch_pid = atoi(line + 3);
    if (pq)
        measure("pq", pq_exchange, pq, 1, (int)(60 * scale), 20);
    if (wanted(list, "http"))
        measure("http", http_exchange, &h, 4, (int)(100 * scale), 50);
    if (wanted(list, "tls"))
        measure("tls", http_exchange, &t, 4, (int)(100 * scale), 50);
    if (wanted(list, "noop"))
        measure("noop", dynobs_bench_noop, NULL, 1, (int)(100 * scale), 200);
    if (wanted(list, "push"))
        measure("push", dynobs_bench_push, NULL, 1, (int)(100 * scale), 200);
    if (pq)
        PQfinish(pq);
    return 0;
}
