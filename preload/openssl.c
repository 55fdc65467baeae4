/*
 * OpenSSL: HTTP/1 requests inside TLS get the same span and traceparent
 * as on plain sockets, because we see the bytes before encryption. The
 * socket underneath only sees TLS records, which it rules out as not
 * HTTP, so a request is traced once.
 *
 * libssl is never linked: its functions are looked up with
 * dlsym(RTLD_NEXT) the first time the application calls one of ours,
 * which only happens in processes that use OpenSSL.
 *
 * Sessions are keyed by their SSL pointer in a small open-addressing
 * table (curl's sessions have no fd: it uses a BIO of its own), and
 * forgotten at SSL_free.
 *
 * Server sessions (SSL_is_server) are classified by the first bytes the
 * server reads, as plain accepted sockets are: an HTTP/1 request makes
 * the session an HTTPS server connection, whose requests get SERVER spans
 * (url.scheme https) from the decrypted bytes read and written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "conn.h"
#include "httpclient.h"
#include "ptrtab.h"

typedef struct ssl_st SSL;

#define SSL_ERROR_WANT_READ 2
#define SSL_ERROR_WANT_WRITE 3
#define SSL_ERROR_ZERO_RETURN 6

static struct {
    void (*free)(SSL *);
    int (*write)(SSL *, const void *, int);
    int (*write_ex)(SSL *, const void *, size_t, size_t *);
    int (*read)(SSL *, void *, int);
    int (*read_ex)(SSL *, void *, size_t, size_t *);
    int (*get_fd)(const SSL *);
    int (*get_error)(const SSL *, int);
    int (*is_server)(const SSL *);
} ssl;

static const char *const libssl[] = {"libssl.so.3", "libssl.so.1.1", "libssl.so", NULL};

#define SSLFN(field, name) ((__typeof__(ssl.field))dynobs__lookup((void **)&ssl.field, name, libssl))

static inline int active(void)
{
    return __atomic_load_n(&dynobs__state, __ATOMIC_RELAXED) == DYNOBS_ON && !dynobs__guard &&
           !dynobs__curl_depth;
}

/* Marks a server session whose first bytes have not been read yet. */
#define SRV_UNKNOWN ((struct dynobs_conn *)DYNOBS_SERVER_CANDIDATE)

/* Sessions: SSL pointer -> connection. */
static struct dynobs_ptrslot sessions[DYNOBS_PTRTAB_SIZE];

static struct dynobs_ptrslot *find(const SSL *s)
{
    return dynobs__ptrtab_find(sessions, s);
}

static struct dynobs_ptrslot *claim(SSL *s)
{
    struct dynobs_ptrslot *e = dynobs__ptrtab_claim(sessions, s);
    if (e)
        __atomic_store_n(&e->val, NULL, __ATOMIC_RELEASE);
    return e;
}

/* The connection of a session for writing `buf`, or NULL to pass through. */
static struct dynobs_conn *out_conn(SSL *s, const void *buf, size_t n, int *fdp)
{
    if (!active() || n == 0 || !s)
        return NULL;
    struct dynobs_ptrslot *e = find(s);
    struct dynobs_conn *c = e ? __atomic_load_n((struct dynobs_conn **)&e->val, __ATOMIC_ACQUIRE) : NULL;
    if (c == DYNOBS_NOT_HTTP || c == SRV_UNKNOWN || (c && c->server))
        return NULL;
    if (!c) {
        int saved = errno;
        if (!e)
            e = claim(s);
        if (!e) {
            errno = saved;
            return NULL;
        }
        c = dynobs__h1_maybe_request(buf, n < 4 ? n : 4) ? dynobs__conn_new() : NULL;
        if (c) {
            c->tls = 1;
            dynobs__conn_ref(c);
        }
        __atomic_store_n(&e->val, c ? (void *)c : (void *)DYNOBS_NOT_HTTP, __ATOMIC_RELEASE);
        errno = saved;
        if (!c)
            return NULL;
    }
    int (*get_fd)(const SSL *) = SSLFN(get_fd, "SSL_get_fd");
    *fdp = get_fd ? get_fd(s) : -1;
    return dynobs__http_watching_out(c) ? c : NULL;
}

static struct dynobs_conn *in_conn(SSL *s)
{
    if (!active() || !s)
        return NULL;
    struct dynobs_ptrslot *e = find(s);
    struct dynobs_conn *c = e ? __atomic_load_n((struct dynobs_conn **)&e->val, __ATOMIC_ACQUIRE) : NULL;
    if (!e) {
        /* The first read of a session we have not seen: a server's. */
        int (*is_server)(const SSL *) = SSLFN(is_server, "SSL_is_server");
        if (!is_server || is_server(s) != 1)
            return NULL;
        int saved = errno;
        e = claim(s);
        errno = saved;
        if (!e)
            return NULL;
        __atomic_store_n(&e->val, (void *)SRV_UNKNOWN, __ATOMIC_RELEASE);
        return SRV_UNKNOWN;
    }
    if (c == SRV_UNKNOWN || (c && c != DYNOBS_NOT_HTTP && c->server))
        return c;
    return c && c != DYNOBS_NOT_HTTP && dynobs__http_watching_in(c) ? c : NULL;
}

/* A server session's first bytes decide what it is. */
static struct dynobs_conn *srv_classify(SSL *s, const void *buf, size_t n)
{
    struct dynobs_ptrslot *e = find(s);
    if (!e)
        return NULL;
    struct dynobs_conn *c =
        dynobs__h1_maybe_request(buf, n < 4 ? n : 4) ? dynobs__conn_new() : NULL;
    if (c) {
        c->server = 1;
        c->tls = 1;
        c->out.capture = 1;
        dynobs__conn_ref(c);
    }
    __atomic_store_n(&e->val, c ? (void *)c : (void *)DYNOBS_NOT_HTTP, __ATOMIC_RELEASE);
    return c;
}

/* The server connection of a session being written to, or NULL. */
static struct dynobs_conn *srv_out_conn(SSL *s)
{
    if (!active() || !s)
        return NULL;
    struct dynobs_ptrslot *e = find(s);
    struct dynobs_conn *c = e ? __atomic_load_n((struct dynobs_conn **)&e->val, __ATOMIC_ACQUIRE) : NULL;
    return c && c != SRV_UNKNOWN && c != DYNOBS_NOT_HTTP && c->server ? c : NULL;
}

DYNOBS_API void SSL_free(SSL *s)
{
    void (*fn)(SSL *) = SSLFN(free, "SSL_free");
    struct dynobs_ptrslot *e = s ? find(s) : NULL;
    if (e) {
        int saved = errno;
        struct dynobs_conn *c = __atomic_exchange_n((struct dynobs_conn **)&e->val, NULL,
                                                    __ATOMIC_ACQ_REL);
        dynobs__ptrtab_release(e);
        dynobs__conn_unref(c);
        errno = saved;
    }
    if (fn)
        fn(s);
}

/* One write call of the application: *written gets the count of its own
 * bytes that went out. Returns what the real call returned when it
 * failed (<= 0), else 1. */
typedef int (*writer_fn)(SSL *, const void *, size_t, size_t *);

static int out(SSL *s, struct dynobs_conn *c, int fd, const void *buf, size_t num, writer_fn w,
               size_t *written)
{
    struct iovec v = {(void *)buf, num};
    for (;;) {
        long k = dynobs__http_out_plan(c, &v, 1, num, fd);
        size_t rest = k >= 0 ? (size_t)c->inj_len - c->inj_sent : 0;
        if (k < 0 || rest == 0 || num + rest > DYNOBS_TLS_SCRATCH) {
            /* Nothing of ours to add here (or too much to splice into one
             * record run: the request then goes without our header). */
            int rc = w(s, buf, num, written);
            if (rc > 0) {
                int saved = errno;
                dynobs__http_out_commit(c, &v, 1, *written);
                if (k >= 0 && *written >= (size_t)k)
                    dynobs__http_out_sent(c);
                errno = saved;
            }
            return rc;
        }
        if (!c->scratch) {
            void *m = mmap(NULL, DYNOBS_TLS_SCRATCH, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED)
                return w(s, buf, num, written);
            c->scratch = m;
        }
        /* The same bytes at the same address on every retry, as OpenSSL
         * requires of a write that returned WANT_WRITE. */
        memcpy(c->scratch, buf, (size_t)k);
        memcpy(c->scratch + k, c->inj + c->inj_sent, rest);
        memcpy(c->scratch + k + rest, (const char *)buf + k, num - (size_t)k);
        size_t r = 0;
        int rc = w(s, c->scratch, num + rest, &r);
        if (rc <= 0)
            return rc;
        int saved = errno;
        if (r <= (size_t)k) { /* partial-write mode */
            dynobs__http_out_commit(c, &v, 1, r);
            *written = r;
            errno = saved;
            return 1;
        }
        size_t ours = r - (size_t)k < rest ? r - (size_t)k : rest;
        dynobs__http_out_commit(c, &v, 1, (size_t)k);
        c->inj_sent = (uint16_t)(c->inj_sent + ours);
        if (c->inj_sent == c->inj_len)
            dynobs__http_out_sent(c);
        errno = saved;
        if (r - ours > 0) {
            *written = r - ours;
            return 1;
        }
        /* Only part of our lines went out (partial-write mode): send the
         * rest before any of the application's bytes. */
    }
}

static int write_via_write(SSL *s, const void *b, size_t n, size_t *written)
{
    int (*fn)(SSL *, const void *, int) = SSLFN(write, "SSL_write");
    int rc = fn(s, b, (int)n);
    *written = rc > 0 ? (size_t)rc : 0;
    return rc;
}

static int write_via_ex(SSL *s, const void *b, size_t n, size_t *written)
{
    int (*fn)(SSL *, const void *, size_t, size_t *) = SSLFN(write_ex, "SSL_write_ex");
    return fn(s, b, n, written);
}

/* What a server wrote: its response, watched. */
static void srv_wrote(struct dynobs_conn *c, const void *buf, size_t n)
{
    int saved = errno;
    struct iovec v = {(void *)buf, n};
    dynobs__srv_out(c, &v, 1, n);
    errno = saved;
}

DYNOBS_API int SSL_write(SSL *s, const void *buf, int num)
{
    int (*fn)(SSL *, const void *, int) = SSLFN(write, "SSL_write");
    struct dynobs_conn *sc = srv_out_conn(s);
    if (DYNOBS_UNLIKELY(sc != NULL) && fn) {
        int rc = fn(s, buf, num);
        if (rc > 0)
            srv_wrote(sc, buf, (size_t)rc);
        return rc;
    }
    int fd = -1;
    struct dynobs_conn *c = num > 0 ? out_conn(s, buf, (size_t)num, &fd) : NULL;
    if (!c || !fn)
        return fn ? fn(s, buf, num) : -1;
    size_t written = 0;
    int rc = out(s, c, fd, buf, (size_t)num, write_via_write, &written);
    return rc > 0 ? (int)written : rc;
}

DYNOBS_API int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written)
{
    int (*fn)(SSL *, const void *, size_t, size_t *) = SSLFN(write_ex, "SSL_write_ex");
    struct dynobs_conn *sc = srv_out_conn(s);
    if (DYNOBS_UNLIKELY(sc != NULL) && fn) {
        size_t w = 0;
        int rc = fn(s, buf, num, &w);
        if (rc > 0 && w)
            srv_wrote(sc, buf, w);
        if (written)
            *written = w;
        return rc;
    }
    int fd = -1;
    struct dynobs_conn *c = out_conn(s, buf, num, &fd);
    if (!c || !fn)
        return fn ? fn(s, buf, num, written) : 0;
    size_t w = 0;
    int rc = out(s, c, fd, buf, num, write_via_ex, &w);
    if (written)
        *written = rc > 0 ? w : 0;
    return rc > 0 ? 1 : rc;
}

static void after_read(SSL *s, struct dynobs_conn *c, void *buf, int rc, size_t n)
{
    int saved = errno;
    if (c == SRV_UNKNOWN) {
        c = rc > 0 && n ? srv_classify(s, buf, n) : NULL;
        if (!c) {
            errno = saved;
            return;
        }
    }
    if (c->server) {
        if (rc > 0 && n) {
            int (*get_fd)(const SSL *) = SSLFN(get_fd, "SSL_get_fd");
            struct iovec v = {buf, n};
            dynobs__srv_in(c, get_fd ? get_fd(s) : -1, &v, 1, n);
        } else {
            int (*get_error)(const SSL *, int) = SSLFN(get_error, "SSL_get_error");
            int e = get_error ? get_error(s, rc) : 0;
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                dynobs__srv_close(c);
        }
        errno = saved;
        return;
    }
    if (rc > 0) {
        struct iovec v = {buf, n};
        dynobs__http_in(c, &v, 1, n);
    } else {
        int (*get_error)(const SSL *, int) = SSLFN(get_error, "SSL_get_error");
        int e = get_error ? get_error(s, rc) : 0;
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            dynobs__http_fail(c, e == SSL_ERROR_ZERO_RETURN ? "connection_closed" : "tls_error");
    }
    errno = saved;
}

DYNOBS_API int SSL_read(SSL *s, void *buf, int num)
{
    int (*fn)(SSL *, void *, int) = SSLFN(read, "SSL_read");
    struct dynobs_conn *c = in_conn(s);
    int rc = fn ? fn(s, buf, num) : -1;
    if (DYNOBS_UNLIKELY(c != NULL))
        after_read(s, c, buf, rc, rc > 0 ? (size_t)rc : 0);
    return rc;
}

DYNOBS_API int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes)
{
    int (*fn)(SSL *, void *, size_t, size_t *) = SSLFN(read_ex, "SSL_read_ex");
    struct dynobs_conn *c = in_conn(s);
    int rc = fn ? fn(s, buf, num, readbytes) : 0;
    if (DYNOBS_UNLIKELY(c != NULL))
        after_read(s, c, buf, rc, rc > 0 && readbytes ? *readbytes : 0);
    return rc;
}
