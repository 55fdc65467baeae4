/*
 * The socket transport: reads and writes on TCP sockets, handed to the
 * connection layer (conn.h), which classifies a stream from its first
 * bytes (written by a client, or read from an accepted socket) and
 * traces its requests. This file knows sockets, not protocols.
 *
 * Our header lines go out in the same system call as the application's
 * bytes (sendmsg with one more iovec), at the end of the header block.
 * Whatever the kernel accepts, the count returned to the application is
 * the number of *its* bytes that went out, so short writes, EAGAIN and
 * retries stay exactly consistent, and the peer gets our lines once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "capture.h"
#include "conn.h"
#include "real.h"

static inline int active(void)
{
    return dynobs__layer_on(DYNOBS_LAYER_SOCKET);
}

/* ---- the real calls, with raw system calls while dlsym runs ---- */

DYNOBS_REAL_FN(r_write, write, ssize_t, (int fd, const void *b, size_t n), (fd, b, n),
               syscall(SYS_write, fd, b, n))
DYNOBS_REAL_FN(r_read, read, ssize_t, (int fd, void *b, size_t n), (fd, b, n),
               syscall(SYS_read, fd, b, n))
DYNOBS_REAL_FN(r_recv, recv, ssize_t, (int fd, void *b, size_t n, int flags), (fd, b, n, flags),
               syscall(SYS_recvfrom, fd, b, n, flags, NULL, NULL))
DYNOBS_REAL_FN(r_send, send, ssize_t, (int fd, const void *b, size_t n, int flags),
               (fd, b, n, flags), syscall(SYS_sendto, fd, b, n, flags, NULL, 0))
DYNOBS_REAL_FN(r_writev, writev, ssize_t, (int fd, const struct iovec *iov, int iovcnt),
               (fd, iov, iovcnt), syscall(SYS_writev, fd, iov, iovcnt))

static ssize_t r_sendmsg(int fd, const struct msghdr *m, int flags)
{
    ssize_t (*fn)(int, const struct msghdr *, int) = DYNOBS_REAL(sendmsg);
    return fn ? fn(fd, m, flags) : syscall(SYS_sendmsg, fd, m, flags);
}

/* ---- classification ---- */

/* First write on an fd we have not seen (or that a runtime announced a
 * parent for: pending, with its origin): a TCP socket whose first bytes
 * start a request of a protocol we trace gets a connection; anything else
 * is marked and never looked at again. */
static struct dynobs_conn *classify(int fd, const struct iovec *iov, int iovcnt,
                                    struct dynobs_conn *pending)
{
    size_t n = 0;
    for (int i = 0; i < iovcnt && n < 4; i++)
        n += iov[i].iov_len;
    if (n == 0)
        return NULL;
    int saved = DYNOBS_ERRNO_ON;
    struct dynobs_conn *c = NULL;
    int type = 0;
    socklen_t tl = sizeof type;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    /* The bytes first: they rule out files and pipes without a system
     * call. */
    enum dynobs_proto p = dynobs__conn_recognise(DYNOBS_ROLE_CLIENT, iov, iovcnt, n);
    if (p && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM &&
        getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
        c = pending ? dynobs__conn_adopt(pending, p)
                    : dynobs__conn_open(DYNOBS_TRANSPORT_SOCKET, p, fd);
    if (c != pending || !c)
        dynobs__fd_set(fd, c ? c : DYNOBS_CONN_IGNORED);
    DYNOBS_ERRNO_ON = saved;
    return c;
}

/* out_conn's way for an fd it has no traced connection for yet (c: what
 * the table holds, NULL or marked accepted or pending): classified, or
 * left to pass through. */
static DYNOBS_COLD struct dynobs_conn *out_conn_new(int fd, const struct iovec *iov, int iovcnt,
                                                    struct dynobs_conn *c)
{
    if (c == DYNOBS_CONN_ACCEPTED) {
        /* It speaks first: an HTTP/2 server (its SETTINGS frame), else not
         * a server we trace. */
        int saved = DYNOBS_ERRNO_ON;
        enum dynobs_proto p = dynobs__conn_recognise_first_write(iov, iovcnt, SIZE_MAX);
        c = p ? dynobs__conn_open(DYNOBS_TRANSPORT_SOCKET, p, fd) : NULL;
        dynobs__fd_set(fd, c ? c : DYNOBS_CONN_IGNORED);
        DYNOBS_ERRNO_ON = saved;
        if (!c)
            return NULL;
    } else {
        c = classify(fd, iov, iovcnt, c);
    }
    if (!c || !dynobs__conn_wants(c, DYNOBS_DIR_OUT))
        return NULL;
    c->fd = fd;
    return c;
}

/* The connection to act on for a write to fd, whose table entry is c, or
 * NULL to pass through. Inlined into each interposer, as in_entry: a
 * traced connection's writes take a few loads and compares, not a call. */
static inline __attribute__((always_inline)) struct dynobs_conn *
out_conn_of(int fd, const struct iovec *iov, int iovcnt, struct dynobs_conn *c)
{
    if (DYNOBS_LIKELY(c == DYNOBS_CONN_IGNORED))
        return NULL;
    if (DYNOBS_UNLIKELY(!c || c == DYNOBS_CONN_ACCEPTED || c->proto == DYNOBS_PROTO_PENDING))
        return out_conn_new(fd, iov, iovcnt, c);
    if (!dynobs__conn_wants(c, DYNOBS_DIR_OUT))
        return NULL;
    c->fd = fd;
    return c;
}

/* The same, the entry looked up here. */
static inline __attribute__((always_inline)) struct dynobs_conn *out_conn(int fd,
                                                                          const struct iovec *iov,
                                                                          int iovcnt)
{
    return active() ? out_conn_of(fd, iov, iovcnt, dynobs__fd_get(fd)) : NULL;
}

/* A read's fd entry, taken before the real call (a connection, or
 * DYNOBS_CONN_ACCEPTED for an accepted socket not read yet), or NULL to
 * pass through. Only the fd table is looked at before the call: the
 * connection's own state is read after it (read_conn), where a read that
 * returns bytes reads it anyway, and a read that finds nothing (EAGAIN)
 * does not touch it at all: its page is one more page walk before the
 * system call otherwise, where system calls empty the TLB (BENCHMARKS.md,
 * "Eighteenth round"). The entry is kept across the call, so the bytes
 * go to the connection the fd named when the read began. */
static inline __attribute__((always_inline)) struct dynobs_conn *in_entry(int fd)
{
    if (!active())
        return NULL;
    struct dynobs_conn *e = dynobs__fd_get(fd);
    return e == DYNOBS_CONN_IGNORED ? NULL : e;
}

/* After the real call: the connection to act on (its protocol wants the
 * bytes), DYNOBS_CONN_ACCEPTED, or NULL to pass through. */
static inline __attribute__((always_inline)) struct dynobs_conn *read_conn(struct dynobs_conn *e,
                                                                          int fd)
{
    if (DYNOBS_LIKELY(!e))
        return NULL;
    struct dynobs_conn *c = dynobs__conn_for_read(e);
    if (c && c != DYNOBS_CONN_ACCEPTED)
        c->fd = fd;
    return c;
}

/* ---- writes ---- */

enum out_kind { O_WRITE, O_WRITEV, O_SEND, O_SENDTO, O_SENDMSG };

struct out_call {
    enum out_kind kind;
    int fd, flags;
    const struct iovec *iov;
    int iovcnt;
    const struct sockaddr *to;
    socklen_t tolen;
    const struct msghdr *msg;
};

static DYNOBS_HOT ssize_t original(const struct out_call *o)
{
    switch (o->kind) {
    case O_WRITE:
        return r_write(o->fd, o->iov[0].iov_base, o->iov[0].iov_len);
    case O_WRITEV:
        return r_writev(o->fd, o->iov, o->iovcnt);
    case O_SEND:
        return r_send(o->fd, o->iov[0].iov_base, o->iov[0].iov_len, o->flags);
    case O_SENDTO: {
        ssize_t (*fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t) =
            DYNOBS_REAL(sendto);
        return fn ? fn(o->fd, o->iov[0].iov_base, o->iov[0].iov_len, o->flags, o->to, o->tolen)
                  : syscall(SYS_sendto, o->fd, o->iov[0].iov_base, o->iov[0].iov_len, o->flags,
                            o->to, o->tolen);
    }
    default:
        return r_sendmsg(o->fd, o->msg, o->flags);
    }
}

#define SPLICE_IOV 64

/* The application's bytes with ours at offset k, in place of the skip
 * bytes there (none for added lines), in one call. */
static ssize_t spliced(const struct out_call *o, size_t k, const struct dynobs_insert *ins,
                       int *fallback)
{
    struct iovec v[SPLICE_IOV];
    int nv = 0;
    size_t off = 0, skip_end = k + ins->skip;
    int inserted = 0, full = 0;
    if (o->iovcnt == 1 && !ins->stop && skip_end <= o->iov[0].iov_len) {
        /* One buffer, the common write: its bytes before ours, ours, and
         * its bytes after those ours replace (the pieces the loop below
         * makes of it, without the loop). */
        const char *b = o->iov[0].iov_base;
        if (k)
            v[nv++] = (struct iovec){(void *)b, k};
        v[nv++] = (struct iovec){(void *)ins->bytes, ins->len};
        if (skip_end < o->iov[0].iov_len)
            v[nv++] = (struct iovec){(void *)(b + skip_end), o->iov[0].iov_len - skip_end};
        inserted = 1;
    } else {
        for (int i = 0; i < o->iovcnt && !full && (!ins->stop || off < ins->stop); i++) {
            const char *b = o->iov[i].iov_base;
            size_t a = off, e = off + o->iov[i].iov_len;
            off = e;
            if (ins->stop && e > ins->stop)
                e = ins->stop;
            if (nv + 3 > SPLICE_IOV) {
                full = 1;
                break;
            }
            if (a < k)
                v[nv++] = (struct iovec){(void *)b, (e < k ? e : k) - a};
            if (!inserted && k <= e) {
                v[nv++] = (struct iovec){(void *)ins->bytes, ins->len};
                inserted = 1;
            }
            size_t from = a > skip_end ? a : skip_end;
            if (inserted && from < e)
                v[nv++] = (struct iovec){(void *)(b + (from - a)), e - from};
        }
    }
    if (!inserted || full) { /* too many pieces to splice: send as the app asked */
        *fallback = 1;
        return original(o);
    }
    struct msghdr m;
    memset(&m, 0, sizeof m);
    if (o->kind == O_SENDMSG) {
        m.msg_name = o->msg->msg_name;
        m.msg_namelen = o->msg->msg_namelen;
        m.msg_control = o->msg->msg_control;
        m.msg_controllen = o->msg->msg_controllen;
    } else if (o->kind == O_SENDTO) {
        m.msg_name = (void *)o->to;
        m.msg_namelen = o->tolen;
    }
    m.msg_iov = v;
    m.msg_iovlen = (size_t)nv;
    int flags = o->kind == O_WRITE || o->kind == O_WRITEV ? 0 : o->flags;
    return r_sendmsg(o->fd, &m, flags);
}

static int nonblocking(const struct out_call *o)
{
    if (o->flags & MSG_DONTWAIT)
        return 1;
    int fl = fcntl(o->fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK);
}

/* A server's write that returned r: its bytes handed over. */
static inline DYNOBS_HOT ssize_t watched(struct dynobs_conn *c, const struct iovec *iov,
                                         int iovcnt, ssize_t r)
{
    if (r > 0 && !dynobs__conn_write_short(c, iov, iovcnt, (size_t)r)) {
        int saved = DYNOBS_ERRNO_ON;
        dynobs__conn_data(c, DYNOBS_DIR_OUT, iov, iovcnt, (size_t)r, 0);
        DYNOBS_ERRNO_ON = saved;
    }
    return r;
}

static DYNOBS_HOT ssize_t out(const struct out_call *o, struct dynobs_conn *c)
{
    /* A server's response is only watched: the real call, then its
     * bytes. */
    if (!dynobs__conn_adds(c))
        return watched(c, o->iov, o->iovcnt, original(o));
    for (;;) {
        struct dynobs_insert ins;
        long k = dynobs__conn_plan(c, o->iov, o->iovcnt, &ins);
        int fallback = 0;
        /* Only a non-blocking caller may be told of a short write. */
        if (k >= 0 && ins.len && ins.stop && !nonblocking(o))
            ins.stop = 0;
        ssize_t r = k >= 0 && ins.len ? spliced(o, (size_t)k, &ins, &fallback) : original(o);
        if (r < 0)
            return r;
        int saved = DYNOBS_ERRNO_ON;
        if (k < 0 || fallback || !ins.len || (size_t)r <= (size_t)k) {
            /* Nothing of ours went out in this call: nothing was planned,
             * the application set its own traceparent, there were too
             * many pieces to splice (the request then goes without our
             * lines), or the call stopped before our point. */
            long ours = k >= 0 && (fallback || !ins.len) ? DYNOBS_INSERT_GIVEN_UP : 0;
            if (r > 0 || ours)
                dynobs__conn_data(c, DYNOBS_DIR_OUT, o->iov, o->iovcnt, (size_t)r, ours);
            DYNOBS_ERRNO_ON = saved;
            return r;
        }
        size_t ours = (size_t)r - (size_t)k < ins.len ? (size_t)r - (size_t)k : ins.len;
        /* The application's bytes that ours replace count once all of
         * ours went out. */
        size_t consumed = (size_t)r - ours + (ours == ins.len ? ins.skip : 0);
        dynobs__conn_data(c, DYNOBS_DIR_OUT, o->iov, o->iovcnt, consumed, (long)ours);
        DYNOBS_ERRNO_ON = saved;
        if (consumed > 0)
            return (ssize_t)consumed;
        /* Only part of our lines went out, none of the application's
         * bytes: a non-blocking caller hears "try again"; a blocking one
         * waits while we send the rest. */
        if (nonblocking(o)) {
            errno = EAGAIN;
            return -1;
        }
    }
}

/* The interposers test "on, and not inside dynobs" first and go straight
 * to the real function otherwise; the work lives out of line. */
__attribute__((noinline)) static DYNOBS_HOT ssize_t write_slow(int fd, const void *buf, size_t n,
                                                               struct dynobs_conn *c)
{
    struct iovec v = {(void *)buf, n};
    c = out_conn_of(fd, &v, 1, c);
    if (!c)
        return r_write(fd, buf, n);
    /* (a server's response: the real call, then its bytes, as writev) */
    if (!dynobs__conn_adds(c))
        return watched(c, &v, 1, r_write(fd, buf, n));
    struct out_call o = {.kind = O_WRITE, .fd = fd, .iov = &v, .iovcnt = 1};
    return out(&o, c);
}

DYNOBS_API DYNOBS_HOT ssize_t write(int fd, const void *buf, size_t n)
{
    if (DYNOBS_LIKELY(!active()))
        return r_write(fd, buf, n);
    if (DYNOBS_UNLIKELY(fd == 2) && dynobs__config.capture_logs)
        return dynobs__stderr_write(&(struct iovec){(void *)buf, n}, 1, 0);
    struct dynobs_conn *c = dynobs__fd_get(fd);
    if (DYNOBS_LIKELY(c == DYNOBS_CONN_IGNORED))
        return r_write(fd, buf, n);
    return write_slow(fd, buf, n, c);
}

/* A writev to stderr, or to an fd we follow or have not looked at yet (e:
 * its entry); on the path after writev. */
static DYNOBS_PATH(31) ssize_t writev_slow(struct dynobs_conn *e, int fd, const struct iovec *iov,
                                           int iovcnt)
{
    if (DYNOBS_UNLIKELY(fd == 2) && dynobs__config.capture_logs && active())
        return dynobs__stderr_write(iov, iovcnt, 1);
    struct dynobs_conn *c = iovcnt > 0 && iovcnt <= IOV_MAX ? out_conn_of(fd, iov, iovcnt, e) : NULL;
    /* (untraced, or a server's response, nginx's: the real call, and then
     * the response's bytes, without out's plan and original's switch) */
    if (!c || !dynobs__conn_adds(c)) {
        ssize_t r = r_writev(fd, iov, iovcnt);
        return c ? watched(c, iov, iovcnt, r) : r;
    }
    struct out_call o = {.kind = O_WRITEV, .fd = fd, .iov = iov, .iovcnt = iovcnt};
    return out(&o, c);
}

/* (the first of the response's part of the path, at a page's start: the
 * read's part fills the page before, and the response's would otherwise
 * begin on it, one page more where it ends) */
DYNOBS_API DYNOBS_PATH(30) __attribute__((aligned(4096))) ssize_t writev(int fd,
                                                                        const struct iovec *iov,
                                                                        int iovcnt)
{
    struct dynobs_conn *e = active() ? dynobs__fd_get(fd) : DYNOBS_CONN_IGNORED;
    if (DYNOBS_LIKELY(e == DYNOBS_CONN_IGNORED && fd != 2))
        return r_writev(fd, iov, iovcnt);
    return writev_slow(e, fd, iov, iovcnt);
}

DYNOBS_API DYNOBS_HOT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    struct iovec v = {(void *)buf, n};
    struct dynobs_conn *c = out_conn(fd, &v, 1);
    if (DYNOBS_LIKELY(!c))
        return r_send(fd, buf, n, flags);
    if (!dynobs__conn_adds(c))
        return watched(c, &v, 1, r_send(fd, buf, n, flags));
    struct out_call o = {.kind = O_SEND, .fd = fd, .flags = flags, .iov = &v, .iovcnt = 1};
    return out(&o, c);
}

DYNOBS_API ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                          const struct sockaddr *to, socklen_t tolen)
{
    struct iovec v = {(void *)buf, n};
    struct out_call o = {.kind = O_SENDTO, .fd = fd, .flags = flags, .iov = &v, .iovcnt = 1,
                         .to = to, .tolen = tolen};
    struct dynobs_conn *c = out_conn(fd, &v, 1);
    if (DYNOBS_LIKELY(!c))
        return original(&o);
    return out(&o, c);
}

DYNOBS_API ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct out_call o = {.kind = O_SENDMSG, .fd = fd, .flags = flags, .msg = msg};
    struct dynobs_conn *c = NULL;
    if (msg && msg->msg_iovlen > 0 && msg->msg_iovlen <= IOV_MAX) {
        o.iov = msg->msg_iov;
        o.iovcnt = (int)msg->msg_iovlen;
        c = out_conn(fd, o.iov, o.iovcnt);
    }
    if (DYNOBS_LIKELY(!c))
        return r_sendmsg(fd, msg, flags);
    return out(&o, c);
}

/* ---- reads ---- */

/* An accepted socket's first bytes decide what it is, for good. */
static struct dynobs_conn *server_classify(int fd, const struct iovec *iov, int iovcnt, size_t n)
{
    enum dynobs_proto p = dynobs__conn_recognise(DYNOBS_ROLE_SERVER, iov, iovcnt, n);
    struct dynobs_conn *c = p ? dynobs__conn_open(DYNOBS_TRANSPORT_SOCKET, p, fd) : NULL;
    dynobs__fd_set(fd, c ? c : DYNOBS_CONN_IGNORED);
    return c;
}

static DYNOBS_PATH(13) void after_read(struct dynobs_conn *c, int fd, const struct iovec *iov,
                                  int iovcnt, ssize_t r, size_t asked, int flags)
{
    int saved = DYNOBS_ERRNO_ON;
    if (c == DYNOBS_CONN_ACCEPTED &&
        (r <= 0 || (flags & MSG_PEEK) || !(c = server_classify(fd, iov, iovcnt, (size_t)r)))) {
        DYNOBS_ERRNO_ON = saved;
        return;
    }
    if (r > 0 && !(flags & MSG_PEEK))
        dynobs__conn_data(c, DYNOBS_DIR_IN, iov, iovcnt, (size_t)r, 0);
    else if (r == 0 && asked > 0)
        dynobs__conn_end(c, DYNOBS_END_EOF);
    else if (r < 0 && saved != EAGAIN && saved != EWOULDBLOCK && saved != EINTR)
        dynobs__conn_end(c, saved == ECONNRESET ? DYNOBS_END_RESET : DYNOBS_END_ERROR);
    DYNOBS_ERRNO_ON = saved;
}

__attribute__((noinline)) static DYNOBS_HOT ssize_t read_slow(struct dynobs_conn *c, int fd,
                                                              void *buf, size_t n)
{
    ssize_t r = r_read(fd, buf, n);
    c = read_conn(c, fd);
    if (!c)
        return r;
    if (r > 0 && c != DYNOBS_CONN_ACCEPTED && dynobs__conn_read_short(c, buf, (size_t)r))
        return r;
    struct iovec v = {buf, n};
    after_read(c, fd, &v, 1, r, n, 0);
    return r;
}

DYNOBS_API DYNOBS_HOT ssize_t read(int fd, void *buf, size_t n)
{
    struct dynobs_conn *c = in_entry(fd);
    if (DYNOBS_LIKELY(!c))
        return r_read(fd, buf, n);
    return read_slow(c, fd, buf, n);
}

DYNOBS_API ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    ssize_t (*fn)(int, void *, size_t, size_t) = DYNOBS_REAL(read_chk);
    struct dynobs_conn *c = in_entry(fd);
    ssize_t r = fn ? fn(fd, buf, n, buflen) : r_read(fd, buf, n);
    c = read_conn(c, fd);
    if (DYNOBS_UNLIKELY(c != NULL)) {
        struct iovec v = {buf, n};
        after_read(c, fd, &v, 1, r, n, 0);
    }
    return r;
}

DYNOBS_API DYNOBS_HOT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    ssize_t (*fn)(int, const struct iovec *, int) = DYNOBS_REAL(readv);
    struct dynobs_conn *c = in_entry(fd);
    ssize_t r = fn ? fn(fd, iov, iovcnt) : syscall(SYS_readv, fd, iov, iovcnt);
    c = read_conn(c, fd);
    if (DYNOBS_UNLIKELY(c != NULL) && iovcnt > 0) {
        size_t asked = 0;
        for (int i = 0; i < iovcnt; i++)
            asked += iov[i].iov_len;
        after_read(c, fd, iov, iovcnt, r, asked, 0);
    }
    return r;
}

/* A recv on a connection we follow (c: its fd entry, in_entry); after
 * recv on the path, with the short read it calls. Out of recv, so that
 * recv on a socket we do not follow saves no registers. */
static DYNOBS_PATH(11) ssize_t recv_slow(struct dynobs_conn *c, int fd, void *buf, size_t n,
                                          int flags)
{
    ssize_t r = r_recv(fd, buf, n, flags);
    c = read_conn(c, fd);
    if (DYNOBS_UNLIKELY(c != NULL)) {
        if (r > 0 && !(flags & MSG_PEEK) && c != DYNOBS_CONN_ACCEPTED &&
            dynobs__conn_read_short(c, buf, (size_t)r))
            return r;
        struct iovec v = {buf, n};
        after_read(c, fd, &v, 1, r, n, flags);
    }
    return r;
}

/* (the first of the path: at a page's start, so that a read's stretches,
 * recv, in_short and the wait, take one page of code) */
DYNOBS_API DYNOBS_PATH(10) __attribute__((aligned(4096))) ssize_t recv(int fd, void *buf,
                                                                      size_t n, int flags)
{
    struct dynobs_conn *c = in_entry(fd);
    if (DYNOBS_LIKELY(!c))
        return r_recv(fd, buf, n, flags);
    return recv_slow(c, fd, buf, n, flags);
}

DYNOBS_API ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    ssize_t (*fn)(int, void *, size_t, size_t, int) = DYNOBS_REAL(recv_chk);
    struct dynobs_conn *c = in_entry(fd);
    ssize_t r = fn ? fn(fd, buf, n, buflen, flags)
                   : syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
    c = read_conn(c, fd);
    if (DYNOBS_UNLIKELY(c != NULL)) {
        struct iovec v = {buf, n};
        after_read(c, fd, &v, 1, r, n, flags);
    }
    return r;
}

DYNOBS_API ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
                            socklen_t *fromlen)
{
    ssize_t (*fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *) = DYNOBS_REAL(recvfrom);
    struct dynobs_conn *c = in_entry(fd);
    ssize_t r = fn ? fn(fd, buf, n, flags, from, fromlen)
                   : syscall(SYS_recvfrom, fd, buf, n, flags, from, fromlen);
    c = read_conn(c, fd);
    if (DYNOBS_UNLIKELY(c != NULL)) {
        struct iovec v = {buf, n};
        after_read(c, fd, &v, 1, r, n, flags);
    }
    return r;
}

DYNOBS_API ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                                  struct sockaddr *from, socklen_t *fromlen)
{
    ssize_t (*fn)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *) =
        DYNOBS_REAL(recvfrom_chk);
    struct dynobs_conn *c = in_entry(fd);
    ssize_t r = fn ? fn(fd, buf, n, buflen, flags, from, fromlen)
                   : syscall(SYS_recvfrom, fd, buf, n, flags, from, fromlen);
    c = read_conn(c, fd);
    if (DYNOBS_UNLIKELY(c != NULL)) {
        struct iovec v = {buf, n};
        after_read(c, fd, &v, 1, r, n, flags);
    }
    return r;
}

DYNOBS_API ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    ssize_t (*fn)(int, struct msghdr *, int) = DYNOBS_REAL(recvmsg);
    struct dynobs_conn *c = in_entry(fd);
    ssize_t r = fn ? fn(fd, msg, flags) : syscall(SYS_recvmsg, fd, msg, flags);
    c = read_conn(c, fd);
    if (DYNOBS_UNLIKELY(c != NULL) && msg && msg->msg_iovlen > 0 &&
        msg->msg_iovlen <= IOV_MAX) {
        size_t asked = 0;
        for (size_t i = 0; i < msg->msg_iovlen; i++)
            asked += msg->msg_iov[i].iov_len;
        after_read(c, fd, msg->msg_iov, (int)msg->msg_iovlen, r, asked, flags);
    }
    return r;
}

/* A socket that connects starts afresh: whatever the fd number carried
 * before (a file closed by other means, say) is forgotten. */
DYNOBS_API int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int (*fn)(int, const struct sockaddr *, socklen_t) = DYNOBS_REAL(connect);
    if (active() && dynobs__fd_get(fd))
        dynobs__fd_set(fd, NULL);
    return fn ? fn(fd, addr, len) : (int)syscall(SYS_connect, fd, addr, len);
}

/* ---- servers ---- */

static void accepted(int fd)
{
    if (fd >= 0 && active()) {
        int saved = DYNOBS_ERRNO_ON;
        dynobs__fd_set(fd, DYNOBS_CONN_ACCEPTED);
        DYNOBS_ERRNO_ON = saved;
    }
}

DYNOBS_API int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    int (*fn)(int, struct sockaddr *, socklen_t *) = DYNOBS_REAL(accept);
    int r = fn ? fn(fd, addr, len) : (int)syscall(SYS_accept, fd, addr, len);
    accepted(r);
    return r;
}

DYNOBS_API int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int (*fn)(int, struct sockaddr *, socklen_t *, int) = DYNOBS_REAL(accept4);
    int r = fn ? fn(fd, addr, len, flags) : (int)syscall(SYS_accept4, fd, addr, len, flags);
    accepted(r);
    return r;
}

/* Response bodies sent from a file (nginx) count towards their length. */
static void sent_file(int out_fd, ssize_t r)
{
    if (r <= 0 || !active())
        return;
    struct dynobs_conn *c = dynobs__fd_get(out_fd);
    if (c && !DYNOBS_CONN_IS_MARKER(c) && dynobs__conn_wants(c, DYNOBS_DIR_OUT)) {
        int saved = DYNOBS_ERRNO_ON;
        dynobs__conn_unseen_out(c, (size_t)r);
        DYNOBS_ERRNO_ON = saved;
    }
}

typedef ssize_t (*sendfile_fn)(int, int, off_t *, size_t);

static ssize_t send_file(sendfile_fn fn, int out_fd, int in_fd, off_t *offset, size_t count)
{
    ssize_t r = fn ? fn(out_fd, in_fd, offset, count)
                   : syscall(SYS_sendfile, out_fd, in_fd, offset, count);
    sent_file(out_fd, r);
    return r;
}

DYNOBS_API ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    return send_file(DYNOBS_REAL(sendfile), out_fd, in_fd, offset, count);
}

DYNOBS_API ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count)
{
    return send_file(DYNOBS_REAL(sendfile64), out_fd, in_fd, offset, count);
}
