/*
 * Socket interposers: HTTP/1 client requests on TCP sockets, recognised
 * from the bytes written, get a span and a traceparent header; the
 * response status ends the span.
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

#include "conn.h"
#include "httpclient.h"
#include "real.h"

static inline int active(void)
{
    return __atomic_load_n(&dynobs__state, __ATOMIC_RELAXED) == DYNOBS_ON && !dynobs__guard &&
           !dynobs__curl_depth;
}

/* ---- the real calls, with raw system calls while dlsym runs ---- */

static ssize_t r_write(int fd, const void *b, size_t n)
{
    ssize_t (*fn)(int, const void *, size_t) = DYNOBS_REAL(write);
    return fn ? fn(fd, b, n) : syscall(SYS_write, fd, b, n);
}

static ssize_t r_read(int fd, void *b, size_t n)
{
    ssize_t (*fn)(int, void *, size_t) = DYNOBS_REAL(read);
    return fn ? fn(fd, b, n) : syscall(SYS_read, fd, b, n);
}

static ssize_t r_sendmsg(int fd, const struct msghdr *m, int flags)
{
    ssize_t (*fn)(int, const struct msghdr *, int) = DYNOBS_REAL(sendmsg);
    return fn ? fn(fd, m, flags) : syscall(SYS_sendmsg, fd, m, flags);
}

/* ---- classification ---- */

/* First write on an fd we have not seen: a TCP socket whose first bytes
 * can start an HTTP request gets a connection state; anything else is
 * marked and never looked at again. */
static struct dynobs_conn *classify(int fd, const struct iovec *iov, int iovcnt)
{
    uint8_t head[4];
    size_t n = 0;
    for (int i = 0; i < iovcnt && n < 4; i++)
        for (size_t j = 0; j < iov[i].iov_len && n < 4; j++)
            head[n++] = ((const uint8_t *)iov[i].iov_base)[j];
    if (n == 0)
        return NULL;
    int saved = errno;
    struct dynobs_conn *c = DYNOBS_NOT_HTTP;
    int type = 0;
    socklen_t tl = sizeof type;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (dynobs__h1_maybe_request(head, n) &&
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM &&
        getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
        struct dynobs_conn *n_ = dynobs__conn_new();
        if (n_)
            c = n_;
    }
    dynobs__fd_set(fd, c);
    errno = saved;
    return c == DYNOBS_NOT_HTTP ? NULL : c;
}

/* The connection to act on for a write, or NULL to pass through. */
static inline struct dynobs_conn *out_conn(int fd, const struct iovec *iov, int iovcnt)
{
    if (!active())
        return NULL;
    struct dynobs_conn *c = dynobs__fd_get(fd);
    if (DYNOBS_LIKELY(c == DYNOBS_NOT_HTTP))
        return NULL;
    if (c == DYNOBS_SERVER_CANDIDATE) { /* it speaks first: not an HTTP server */
        int saved = errno;
        dynobs__fd_set(fd, DYNOBS_NOT_HTTP);
        errno = saved;
        return NULL;
    }
    if (!c)
        c = classify(fd, iov, iovcnt);
    if (c && c->server)
        return c->srv_open ? c : NULL;
    return c && dynobs__http_watching_out(c) ? c : NULL;
}

/* The connection to act on for a read: a client waiting for its
 * response, a server reading a request head, or an accepted socket not
 * read yet; NULL to pass through. */
static inline struct dynobs_conn *in_conn(int fd)
{
    if (!active())
        return NULL;
    struct dynobs_conn *c = dynobs__fd_get(fd);
    if (!c || c == DYNOBS_NOT_HTTP)
        return NULL;
    if (c == DYNOBS_SERVER_CANDIDATE)
        return c;
    if (c->server)
        return c->out.phase < DYNOBS_H1_REQ_BODY || c->srv_open ? c : NULL;
    return dynobs__http_watching_in(c) ? c : NULL;
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

static ssize_t original(const struct out_call *o)
{
    switch (o->kind) {
    case O_WRITE:
        return r_write(o->fd, o->iov[0].iov_base, o->iov[0].iov_len);
    case O_WRITEV: {
        ssize_t (*fn)(int, const struct iovec *, int) = DYNOBS_REAL(writev);
        return fn ? fn(o->fd, o->iov, o->iovcnt) : syscall(SYS_writev, o->fd, o->iov, o->iovcnt);
    }
    case O_SEND: {
        ssize_t (*fn)(int, const void *, size_t, int) = DYNOBS_REAL(send);
        return fn ? fn(o->fd, o->iov[0].iov_base, o->iov[0].iov_len, o->flags)
                  : syscall(SYS_sendto, o->fd, o->iov[0].iov_base, o->iov[0].iov_len, o->flags,
                            NULL, 0);
    }
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

/* The application's bytes with ours inserted at offset k, in one call. */
static ssize_t spliced(const struct out_call *o, size_t k, const char *ins, size_t inslen,
                       int *fallback)
{
    struct iovec v[SPLICE_IOV];
    int nv = 0;
    size_t off = 0;
    int inserted = 0;
    for (int i = 0; i < o->iovcnt; i++) {
        const char *b = o->iov[i].iov_base;
        size_t len = o->iov[i].iov_len;
        if (!inserted && k <= off + len) {
            size_t head = k - off;
            if (nv + 3 > SPLICE_IOV)
                break;
            if (head)
                v[nv++] = (struct iovec){(void *)b, head};
            v[nv++] = (struct iovec){(void *)ins, inslen};
            if (len > head)
                v[nv++] = (struct iovec){(void *)(b + head), len - head};
            inserted = 1;
        } else {
            if (nv + 1 > SPLICE_IOV)
                break;
            v[nv++] = o->iov[i];
        }
        off += len;
    }
    if (!inserted) { /* too many pieces to splice: send as the app asked */
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

static ssize_t out(const struct out_call *o, struct dynobs_conn *c)
{
    size_t total = 0;
    for (int i = 0; !c->server && i < o->iovcnt; i++)
        total += o->iov[i].iov_len;
    for (;;) {
        /* A server's response is watched, never changed. */
        long k = c->server ? -1 : dynobs__http_out_plan(c, o->iov, o->iovcnt, total, o->fd);
        if (k < 0) {
            ssize_t r = original(o);
            if (r > 0) {
                int saved = errno;
                if (c->server)
                    dynobs__srv_out(c, o->iov, o->iovcnt, (size_t)r);
                else
                    dynobs__http_out_commit(c, o->iov, o->iovcnt, (size_t)r);
                errno = saved;
            }
            return r;
        }
        size_t rest = (size_t)c->inj_len - c->inj_sent;
        int fallback = 0;
        ssize_t r = rest ? spliced(o, (size_t)k, c->inj + c->inj_sent, rest, &fallback)
                         : original(o);
        if (r < 0)
            return r;
        int saved = errno;
        if (fallback || !rest) {
            /* Nothing of ours goes out in this call (the application set
             * its own traceparent, or too many pieces): the header block
             * counts as sent once the point is passed. */
            dynobs__http_out_commit(c, o->iov, o->iovcnt, (size_t)r);
            if ((size_t)r >= (size_t)k)
                dynobs__http_out_sent(c);
            errno = saved;
            return r;
        }
        if ((size_t)r <= (size_t)k) {
            dynobs__http_out_commit(c, o->iov, o->iovcnt, (size_t)r);
            errno = saved;
            return r;
        }
        size_t ours = (size_t)r - (size_t)k < rest ? (size_t)r - (size_t)k : rest;
        size_t consumed = (size_t)r - ours;
        dynobs__http_out_commit(c, o->iov, o->iovcnt, (size_t)k);
        c->inj_sent = (uint16_t)(c->inj_sent + ours);
        if (c->inj_sent == c->inj_len)
            dynobs__http_out_sent(c);
        errno = saved;
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
__attribute__((noinline)) static ssize_t write_slow(int fd, const void *buf, size_t n)
{
    struct iovec v = {(void *)buf, n};
    struct dynobs_conn *c = out_conn(fd, &v, 1);
    if (!c)
        return r_write(fd, buf, n);
    struct out_call o = {.kind = O_WRITE, .fd = fd, .iov = &v, .iovcnt = 1};
    return out(&o, c);
}

/* DYNOBS_CAPTURE_LOGS: what the service writes to its stderr. */
__attribute__((noinline)) static ssize_t stderr_write(const struct iovec *iov, int iovcnt,
                                                      int vectored)
{
    ssize_t r = vectored ? DYNOBS_REAL(writev)(2, iov, iovcnt)
                         : r_write(2, iov[0].iov_base, iov[0].iov_len);
    if (r > 0) {
        int saved = errno;
        dynobs__stderr_written(iov, iovcnt, (size_t)r);
        errno = saved;
    }
    return r;
}

DYNOBS_API ssize_t write(int fd, const void *buf, size_t n)
{
    if (DYNOBS_LIKELY(!active()))
        return r_write(fd, buf, n);
    if (DYNOBS_UNLIKELY(fd == 2) && dynobs__config.capture_logs)
        return stderr_write(&(struct iovec){(void *)buf, n}, 1, 0);
    struct dynobs_conn *c = dynobs__fd_get(fd);
    if (DYNOBS_LIKELY(c == DYNOBS_NOT_HTTP))
        return r_write(fd, buf, n);
    return write_slow(fd, buf, n);
}

DYNOBS_API ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (DYNOBS_UNLIKELY(fd == 2) && dynobs__config.capture_logs && active())
        return stderr_write(iov, iovcnt, 1);
    struct dynobs_conn *c = iovcnt > 0 && iovcnt <= IOV_MAX ? out_conn(fd, iov, iovcnt) : NULL;
    struct out_call o = {.kind = O_WRITEV, .fd = fd, .iov = iov, .iovcnt = iovcnt};
    if (DYNOBS_LIKELY(!c))
        return original(&o);
    return out(&o, c);
}

DYNOBS_API ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    struct iovec v = {(void *)buf, n};
    struct out_call o = {.kind = O_SEND, .fd = fd, .flags = flags, .iov = &v, .iovcnt = 1};
    struct dynobs_conn *c = out_conn(fd, &v, 1);
    if (DYNOBS_LIKELY(!c))
        return original(&o);
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

/* An accepted socket's first bytes: an HTTP request makes it a server
 * connection, anything else is left alone for good. */
static struct dynobs_conn *server_classify(int fd, const struct iovec *iov, int iovcnt, size_t n)
{
    uint8_t head[4];
    size_t h = 0;
    for (int i = 0; i < iovcnt && h < 4 && h < n; i++)
        for (size_t j = 0; j < iov[i].iov_len && h < 4 && h < n; j++)
            head[h++] = ((const uint8_t *)iov[i].iov_base)[j];
    struct dynobs_conn *c = dynobs__h1_maybe_request(head, h) ? dynobs__conn_new() : NULL;
    if (c) {
        c->server = 1;
        c->out.capture = 1;
    }
    dynobs__fd_set(fd, c ? c : DYNOBS_NOT_HTTP);
    return c;
}

static void after_read(struct dynobs_conn *c, int fd, const struct iovec *iov, int iovcnt,
                       ssize_t r, size_t asked, int flags)
{
    int saved = errno;
    if (c == DYNOBS_SERVER_CANDIDATE) {
        if (r <= 0 || (flags & MSG_PEEK) || !(c = server_classify(fd, iov, iovcnt, (size_t)r))) {
            errno = saved;
            return;
        }
    }
    if (c->server) {
        if (r > 0 && !(flags & MSG_PEEK))
            dynobs__srv_in(c, fd, iov, iovcnt, (size_t)r);
        else if (r == 0 && asked > 0)
            dynobs__srv_close(c);
        errno = saved;
        return;
    }
    if (r > 0 && !(flags & MSG_PEEK))
        dynobs__http_in(c, iov, iovcnt, (size_t)r);
    else if (r == 0 && asked > 0)
        dynobs__http_fail(c, "connection_closed");
    else if (r < 0 && saved != EAGAIN && saved != EWOULDBLOCK && saved != EINTR)
        dynobs__http_fail(c, saved == ECONNRESET ? "connection_reset" : "connection_error");
    errno = saved;
}

__attribute__((noinline)) static ssize_t read_slow(struct dynobs_conn *c, int fd, void *buf,
                                                   size_t n)
{
    ssize_t r = r_read(fd, buf, n);
    struct iovec v = {buf, n};
    after_read(c, fd, &v, 1, r, n, 0);
    return r;
}

DYNOBS_API ssize_t read(int fd, void *buf, size_t n)
{
    if (DYNOBS_LIKELY(!active()))
        return r_read(fd, buf, n);
    struct dynobs_conn *c = in_conn(fd);
    if (DYNOBS_LIKELY(!c))
        return r_read(fd, buf, n);
    return read_slow(c, fd, buf, n);
}

DYNOBS_API ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    ssize_t (*fn)(int, void *, size_t, size_t) = DYNOBS_REAL(read_chk);
    struct dynobs_conn *c = in_conn(fd);
    ssize_t r = fn ? fn(fd, buf, n, buflen) : r_read(fd, buf, n);
    if (DYNOBS_UNLIKELY(c != NULL)) {
        struct iovec v = {buf, n};
        after_read(c, fd, &v, 1, r, n, 0);
    }
    return r;
}

DYNOBS_API ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    ssize_t (*fn)(int, const struct iovec *, int) = DYNOBS_REAL(readv);
    struct dynobs_conn *c = in_conn(fd);
    ssize_t r = fn ? fn(fd, iov, iovcnt) : syscall(SYS_readv, fd, iov, iovcnt);
    if (DYNOBS_UNLIKELY(c != NULL) && iovcnt > 0) {
        size_t asked = 0;
        for (int i = 0; i < iovcnt; i++)
            asked += iov[i].iov_len;
        after_read(c, fd, iov, iovcnt, r, asked, 0);
    }
    return r;
}

DYNOBS_API ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    ssize_t (*fn)(int, void *, size_t, int) = DYNOBS_REAL(recv);
    struct dynobs_conn *c = in_conn(fd);
    ssize_t r = fn ? fn(fd, buf, n, flags) : syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
    if (DYNOBS_UNLIKELY(c != NULL)) {
        struct iovec v = {buf, n};
        after_read(c, fd, &v, 1, r, n, flags);
    }
    return r;
}

DYNOBS_API ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    ssize_t (*fn)(int, void *, size_t, size_t, int) = DYNOBS_REAL(recv_chk);
    struct dynobs_conn *c = in_conn(fd);
    ssize_t r = fn ? fn(fd, buf, n, buflen, flags)
                   : syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
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
    struct dynobs_conn *c = in_conn(fd);
    ssize_t r = fn ? fn(fd, buf, n, flags, from, fromlen)
                   : syscall(SYS_recvfrom, fd, buf, n, flags, from, fromlen);
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
    struct dynobs_conn *c = in_conn(fd);
    ssize_t r = fn ? fn(fd, buf, n, buflen, flags, from, fromlen)
                   : syscall(SYS_recvfrom, fd, buf, n, flags, from, fromlen);
    if (DYNOBS_UNLIKELY(c != NULL)) {
        struct iovec v = {buf, n};
        after_read(c, fd, &v, 1, r, n, flags);
    }
    return r;
}

DYNOBS_API ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    ssize_t (*fn)(int, struct msghdr *, int) = DYNOBS_REAL(recvmsg);
    struct dynobs_conn *c = in_conn(fd);
    ssize_t r = fn ? fn(fd, msg, flags) : syscall(SYS_recvmsg, fd, msg, flags);
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
        int saved = errno;
        dynobs__fd_set(fd, DYNOBS_SERVER_CANDIDATE);
        errno = saved;
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
    if (c && !DYNOBS_IS_MARKER(c) && c->server && c->srv_open) {
        int saved = errno;
        dynobs__srv_sent(c, (size_t)r);
        errno = saved;
    }
}

DYNOBS_API ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    ssize_t (*fn)(int, int, off_t *, size_t) = DYNOBS_REAL(sendfile);
    ssize_t r = fn ? fn(out_fd, in_fd, offset, count)
                   : syscall(SYS_sendfile, out_fd, in_fd, offset, count);
    sent_file(out_fd, r);
    return r;
}

DYNOBS_API ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count)
{
    ssize_t (*fn)(int, int, off_t *, size_t) = DYNOBS_REAL(sendfile64);
    ssize_t r = fn ? fn(out_fd, in_fd, offset, count)
                   : syscall(SYS_sendfile, out_fd, in_fd, offset, count);
    sent_file(out_fd, r);
    return r;
}
