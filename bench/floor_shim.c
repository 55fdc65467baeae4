/*
 * The floor of a served request's cost (BENCHMARKS.md, "Twelfth round"):
 * a preloadable library that does, for each HTTP/1 request a server reads
 * and answers on a keep-alive connection, the least work a tracing shim
 * must do, in the fewest lines, and nothing else. It is not a shim: it
 * parses nothing, checks nothing, propagates nothing and records into a
 * ring nobody reads. Measured in place of libdynobs.so, it tells what a
 * rewrite of the shim's request path could reach on a machine:
 *
 *   mkdir -p /tmp/floor/exporter
 *   cc -O2 -shared -fPIC -o /tmp/floor/libdynobs.so bench/floor_shim.c
 *   ln -s "$PWD/build/exporter/dynobs-exporter" /tmp/floor/exporter/
 *   bash bench/nginx_symbols.sh /tmp/floor      # against plain nginx
 *
 * (x86-64 only: rdtsc.) Per request, on the connection's fd (a table of
 * 4096):
 *   recv:   the request's first 64 bytes compared with the connection's
 *           last (a memo), a start time (rdtsc), trace and span ids
 *           (xorshift);
 *   writev: the response's first 256 bytes compared likewise, an end
 *           time, a 384-byte record copied from the connection's
 *           template into a 4 MiB ring with the ids and times written
 *           in, and a duration histogram's bucket and sum (atomic adds);
 *   close:  the fd's entry cleared.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <x86intrin.h>

#define FDS 4096
#define HEAD 64
#define RESP 256
#define REC 384
#define RING (4u << 20)

struct conn {
    uint64_t start, span_id, trace_hi, trace_lo;
    int open;
    uint8_t head[HEAD];
    uint8_t resp[RESP];
    uint8_t rec[REC];
};

static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_close)(int);
static struct conn conns[FDS];
static uint8_t ring[RING];
static uint64_t ring_at, seed = 0x9e3779b97f4a7c15ull;
static uint64_t buckets[16], sum;

__attribute__((constructor)) static void init(void)
{
    real_recv = (ssize_t(*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
    real_writev = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
    real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
}

static uint64_t next_id(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    ssize_t r = real_recv(fd, buf, n, flags);
    if (r >= 16 && (unsigned)fd < FDS && !memcmp(buf, "GET ", 4)) {
        struct conn *c = &conns[fd];
        size_t k = (size_t)r < HEAD ? (size_t)r : HEAD;
        if (memcmp(c->head, buf, k))
            memcpy(c->head, buf, k); /* (a shim would parse the head here) */
        c->start = __rdtsc();
        c->span_id = next_id();
        c->trace_hi = next_id();
        c->trace_lo = next_id();
        c->open = 1;
    }
    return r;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    ssize_t r = real_writev(fd, iov, iovcnt);
    if (r > 0 && (unsigned)fd < FDS && conns[fd].open && iovcnt > 0) {
        struct conn *c = &conns[fd];
        size_t k = iov[0].iov_len < RESP ? iov[0].iov_len : RESP;
        if (memcmp(c->resp, iov[0].iov_base, k))
            memcpy(c->resp, iov[0].iov_base, k); /* (and the response's here) */
        uint64_t end = __rdtsc();
        uint64_t at = __atomic_fetch_add(&ring_at, REC, __ATOMIC_RELAXED) & (RING - 1);
        if (at + REC > RING)
            at = 0;
        uint8_t *rec = ring + at;
        memcpy(rec, c->rec, REC);
        memcpy(rec + 8, &c->trace_hi, 8);
        memcpy(rec + 16, &c->trace_lo, 8);
        memcpy(rec + 24, &c->span_id, 8);
        memcpy(rec + 32, &c->start, 8);
        memcpy(rec + 40, &end, 8);
        uint64_t d = end - c->start;
        unsigned b = d ? (unsigned)(63 - __builtin_clzll(d)) / 4 : 0;
        __atomic_fetch_add(&buckets[b & 15], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&sum, d, __ATOMIC_RELAXED);
        c->open = 0;
    }
    return r;
}

int close(int fd)
{
    if ((unsigned)fd < FDS)
        conns[fd].open = 0;
    return real_close(fd);
}
