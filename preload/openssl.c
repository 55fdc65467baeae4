/*
 * The TLS transport (OpenSSL): the plain bytes of a session, handed to
 * the connection layer (conn.h) as the socket transport hands a socket's,
 * so requests inside TLS get the same spans and traceparent as on plain
 * sockets. The socket underneath only sees TLS records, which no protocol
 * recognises, so a request is traced once.
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
#include "lazymap.h"
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

#define SSLFN(field, name) ((__typeof__(ssl.field))dynobs__lookup((void **)&ssl.field, name, dynobs__libssl))

static inline int active(void)
{
    return dynobs__layer_on(DYNOBS_LAYER_TLS);
}

/* Sessions: SSL pointer -> entry (conn.h). Mapped at the first session
 * claimed (lazymap.h): a process that never uses OpenSSL has none. */
static void *sessions;
#define TABLE_BYTES (DYNOBS_PTRTAB_SIZE * sizeof(struct dynobs_ptrslot))

/* The slot of a session, or NULL (also when no session was ever seen). */
static struct dynobs_ptrslot *find(const SSL *s)
{
    struct dynobs_ptrslot *tab = dynobs__lazymap_peek(&sessions);
    return tab ? dynobs__ptrtab_find(tab, s) : NULL;
}

static struct dynobs_conn *entry_of(const struct dynobs_ptrslot *e)
{
    return e ? __atomic_load_n((struct dynobs_conn *const *)&e->val, __ATOMIC_ACQUIRE) : NULL;
}

static void entry_set(struct dynobs_ptrslot *e, struct dynobs_conn *c)
{
    if (c && !DYNOBS_CONN_IS_MARKER(c))
        dynobs__conn_ref(c);
    __atomic_store_n(&e->val, (void *)c, __ATOMIC_RELEASE);
}

static struct dynobs_ptrslot *claim(SSL *s)
{
    struct dynobs_ptrslot *tab = dynobs__lazymap(&sessions, TABLE_BYTES);
    struct dynobs_ptrslot *e = tab ? dynobs__ptrtab_claim(tab, s) : NULL;
    if (e)
        __atomic_store_n(&e->val, NULL, __ATOMIC_RELEASE);
    return e;
}

/* The fd under a session, for the connection's address look-ups. */
static int fd_of(SSL *s)
{
    int (*get_fd)(const SSL *) = SSLFN(get_fd, "SSL_get_fd");
    return get_fd ? get_fd(s) : -1;
}

/* The first bytes of a session decide what it is, for good; e is its
 * (claimed) entry. */
static struct dynobs_conn *classify(struct dynobs_ptrslot *e, SSL *s, enum dynobs_role role,
                                    const void *buf, size_t n)
{
    struct iovec v = {(void *)buf, n};
    enum dynobs_proto p = dynobs__conn_recognise(role, &v, 1, n);
    struct dynobs_conn *c = p ? dynobs__conn_open(DYNOBS_TRANSPORT_TLS, p, fd_of(s)) : NULL;
    entry_set(e, c ? c : DYNOBS_CONN_IGNORED);
    return c;
}

/* A session written to before it was read: a server's that speaks first
 * (an HTTP/2 server's SETTINGS), or else a client's. */
static struct dynobs_conn *classify_first_write(struct dynobs_ptrslot *e, SSL *s,
                                                const void *buf, size_t n)
{
    int (*is_server)(const SSL *) = SSLFN(is_server, "SSL_is_server");
    if (!is_server || is_server(s) != 1)
        return classify(e, s, DYNOBS_ROLE_CLIENT, buf, n);
    struct iovec v = {(void *)buf, n};
    enum dynobs_proto p = dynobs__conn_recognise_first_write(&v, 1, n);
    struct dynobs_conn *c = p ? dynobs__conn_open(DYNOBS_TRANSPORT_TLS, p, fd_of(s)) : NULL;
    entry_set(e, c ? c : DYNOBS_CONN_IGNORED);
    return c;
}

/* The connection of a session being written to (its protocol wants the
 * bytes), or NULL to pass through. */
static struct dynobs_conn *out_conn(SSL *s, const void *buf, size_t n)
{
    if (!active() || n == 0 || !s)
        return NULL;
    struct dynobs_ptrslot *e = find(s);
    struct dynobs_conn *c = entry_of(e);
    if (c == DYNOBS_CONN_IGNORED || c == DYNOBS_CONN_ACCEPTED)
        return NULL;
    if (!c) {
        int saved = errno;
        if (!e)
            e = claim(s);
        c = e ? classify_first_write(e, s, buf, n) : NULL;
        errno = saved;
        if (!c)
            return NULL;
    }
    if (!dynobs__conn_wants(c, DYNOBS_DIR_OUT))
        return NULL;
    c->fd = fd_of(s);
    return c;
}

/* The connection of a session being read (its protocol wants the bytes),
 * DYNOBS_CONN_ACCEPTED for a server's session not read yet, or NULL. */
static struct dynobs_conn *in_conn(SSL *s)
{
    if (!active() || !s)
        return NULL;
    struct dynobs_ptrslot *e = find(s);
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
        entry_set(e, DYNOBS_CONN_ACCEPTED);
        return DYNOBS_CONN_ACCEPTED;
    }
    struct dynobs_conn *c = dynobs__conn_for_read(entry_of(e));
    if (c && c != DYNOBS_CONN_ACCEPTED)
        c->fd = fd_of(s);
    return c;
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

/* The session's splice buffer, mapped at its first use. */
static char *scratch_of(struct dynobs_conn *c)
{
    if (!c->scratch) {
        void *m = mmap(NULL, DYNOBS_TLS_SCRATCH, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        c->scratch = m;
    }
    return c->scratch;
}

/* One write call of the application: *written gets the count of its own
 * bytes that went out. Returns what the real call returned when it
 * failed (<= 0), else 1. */
typedef int (*writer_fn)(SSL *, const void *, size_t, size_t *);

static int out(SSL *s, struct dynobs_conn *c, const void *buf, size_t num, writer_fn w,
               size_t *written)
{
    struct iovec v = {(void *)buf, num};
    for (;;) {
        struct dynobs_insert ins;
        long k = dynobs__conn_plan(c, &v, 1, &ins);
        if (k < 0 || ins.len == 0 || num - ins.skip + ins.len > DYNOBS_TLS_SCRATCH ||
            !scratch_of(c)) {
            /* Nothing of ours to add here (or too much to splice into one
             * record run, or no buffer: the request then goes without our
             * lines). */
            int rc = w(s, buf, num, written);
            if (rc > 0) {
                int saved = errno;
                dynobs__conn_data(c, DYNOBS_DIR_OUT, &v, 1, *written,
                                  k >= 0 ? DYNOBS_INSERT_GIVEN_UP : 0);
                errno = saved;
            }
            return rc;
        }
        /* The same bytes at the same address on every retry, as OpenSSL
         * requires of a write that returned WANT_WRITE. */
        /* (SSL_write writes all or nothing: ins.stop is not used; what
         * lies past it goes out as the application wrote it.) */
        size_t after = (size_t)k + ins.skip;
        memcpy(c->scratch, buf, (size_t)k);
        memcpy(c->scratch + k, ins.bytes, ins.len);
        memcpy(c->scratch + k + ins.len, (const char *)buf + after, num - after);
        size_t r = 0;
        int rc = w(s, c->scratch, num - ins.skip + ins.len, &r);
        if (rc <= 0)
            return rc;
        int saved = errno;
        if (r <= (size_t)k) { /* partial-write mode */
            dynobs__conn_data(c, DYNOBS_DIR_OUT, &v, 1, r, 0);
            *written = r;
            errno = saved;
            return 1;
        }
        size_t ours = r - (size_t)k < ins.len ? r - (size_t)k : ins.len;
        size_t consumed = r - ours + (ours == ins.len ? ins.skip : 0);
        dynobs__conn_data(c, DYNOBS_DIR_OUT, &v, 1, consumed, (long)ours);
        errno = saved;
        if (consumed > 0) {
            *written = consumed;
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

DYNOBS_API int SSL_write(SSL *s, const void *buf, int num)
{
    int (*fn)(SSL *, const void *, int) = SSLFN(write, "SSL_write");
    struct dynobs_conn *c = num > 0 ? out_conn(s, buf, (size_t)num) : NULL;
    if (!c || !fn)
        return fn ? fn(s, buf, num) : -1;
    size_t written = 0;
    int rc = out(s, c, buf, (size_t)num, write_via_write, &written);
    return rc > 0 ? (int)written : rc;
}

DYNOBS_API int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written)
{
    int (*fn)(SSL *, const void *, size_t, size_t *) = SSLFN(write_ex, "SSL_write_ex");
    struct dynobs_conn *c = out_conn(s, buf, num);
    if (!c || !fn)
        return fn ? fn(s, buf, num, written) : 0;
    size_t w = 0;
    int rc = out(s, c, buf, num, write_via_ex, &w);
    if (written)
        *written = rc > 0 ? w : 0;
    return rc > 0 ? 1 : rc;
}

static void after_read(SSL *s, struct dynobs_conn *c, void *buf, int rc, size_t n)
{
    int saved = errno;
    if (c == DYNOBS_CONN_ACCEPTED) {
        struct dynobs_ptrslot *e = find(s);
        c = rc > 0 && n && e ? classify(e, s, DYNOBS_ROLE_SERVER, buf, n) : NULL;
        if (!c) {
            errno = saved;
            return;
        }
    }
    if (rc > 0 && n) {
        struct iovec v = {buf, n};
        dynobs__conn_data(c, DYNOBS_DIR_IN, &v, 1, n, 0);
    } else if (rc <= 0) {
        int (*get_error)(const SSL *, int) = SSLFN(get_error, "SSL_get_error");
        int e = get_error ? get_error(s, rc) : 0;
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            dynobs__conn_end(c, e == SSL_ERROR_ZERO_RETURN ? DYNOBS_END_EOF
                                                           : DYNOBS_END_TLS_ERROR);
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
