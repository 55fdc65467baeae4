/*
 * The connection layer (see conn.h): classification, dispatch to the
 * protocols, the stream's facts, and the states' lifetime.
 *
 * States come from mmap and are never unmapped: a thread that still holds
 * one while another closes its fd reads a recycled state at worst, never
 * unmapped memory. Freed states go on a free list guarded by a lock that
 * is only ever tried, never waited for: a thread that cannot take it at
 * once allocates a new state.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "conn.h"

void *dynobs__fd_chunks[DYNOBS_FD_CHUNKS] DYNOBS_HOT_DATA;
struct dynobs_conn *dynobs__fd_near[DYNOBS_FD_NEAR] DYNOBS_HOT_FDS;
static struct dynobs_conn *free_list;
static int free_lock;

static int try_lock(void)
{
    int expect = 0;
    return __atomic_compare_exchange_n(&free_lock, &expect, 1, 0, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

static void unlock(void)
{
    __atomic_store_n(&free_lock, 0, __ATOMIC_RELEASE);
}

/* A state's mapping: its size and room for 16 steps of 64 bytes at least,
 * rounded up to pages; and the steps the state can start at within it
 * (conn_new). */
#define CONN_MAP ((sizeof(struct dynobs_conn) + 15u * 64u + 4095u) / 4096u * 4096u)
#define CONN_COLOURS ((CONN_MAP - sizeof(struct dynobs_conn)) / 64u + 1u)
static uint32_t colours;

static struct dynobs_conn *conn_new(void)
{
    struct dynobs_conn *c = NULL;
    if (try_lock()) {
        c = free_list;
        if (c)
            free_list = c->next_free;
        unlock();
    }
    if (!c) {
        void *m = mmap(NULL, CONN_MAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        /* Each state at its own offset in its mapping (a multiple of 64
         * bytes, in turn): states that all began at a page's start would
         * put the same lines of every connection (the phase, the memos,
         * the span's header) in the same sets of the first-level cache,
         * which has 8 places in each; an event loop's request would then
         * find its connection's lines evicted by the others'. */
        uint32_t k = __atomic_fetch_add(&colours, 1, __ATOMIC_RELAXED) % CONN_COLOURS;
        c = (struct dynobs_conn *)((char *)m + (size_t)k * 64u);
    }
    /* The connection's own part is reset here, the protocol's by its
     * init; the TLS scratch buffer keeps its mapping. */
    char *scratch = c->scratch;
    struct dynobs_h2_state *h2 = c->h2;
    memset(c, 0, offsetof(struct dynobs_conn, p));
    c->local_port = 0;
    c->local_address[0] = c->peer_address[0] = '\0';
    c->scratch = scratch;
    c->h2 = h2;
    c->fd = -1;
    return c;
}

/* ---- classification and dispatch ---- */

enum dynobs_proto dynobs__conn_recognise(enum dynobs_role role, const struct iovec *iov,
                                         int iovcnt, size_t n)
{
    uint8_t head[8];
    size_t h = 0;
    for (int i = 0; i < iovcnt && h < 8 && h < n; i++)
        for (size_t j = 0; j < iov[i].iov_len && h < 8 && h < n; j++)
            head[h++] = ((const uint8_t *)iov[i].iov_base)[j];
    /* A web server passing a request on to an application server (nginx
     * to php-fpm) speaks FastCGI; a client speaking HTTP/2 starts with its
     * preface ("PRI * HTTP/2.0", no HTTP/1 method). */
    if (role == DYNOBS_ROLE_SERVER && dynobs__fcgi_maybe_request(head, h))
        return DYNOBS_PROTO_FCGI_SERVER;
    if (role == DYNOBS_ROLE_SERVER && h >= 4 && !memcmp(head, DYNOBS_H2_PREFACE, 4))
        return DYNOBS_PROTO_H2_SERVER;
    if (role == DYNOBS_ROLE_CLIENT && h >= 4 && !memcmp(head, DYNOBS_H2_PREFACE, 4))
        return DYNOBS_PROTO_H2_CLIENT;
    if (h == 0 || !dynobs__h1_maybe_request(head, h < 4 ? h : 4))
        return 0;
    return role == DYNOBS_ROLE_SERVER ? DYNOBS_PROTO_H1_SERVER : DYNOBS_PROTO_H1_CLIENT;
}

enum dynobs_proto dynobs__conn_recognise_first_write(const struct iovec *iov, int iovcnt,
                                                     size_t n)
{
    uint8_t h[DYNOBS_H2_FRAME_HEADER] = {0};
    size_t k = 0;
    for (int i = 0; i < iovcnt && k < sizeof h && k < n; i++)
        for (size_t j = 0; j < iov[i].iov_len && k < sizeof h && k < n; j++)
            h[k++] = ((const uint8_t *)iov[i].iov_base)[j];
    /* A SETTINGS frame (type 4, no flags, stream 0) of whole 6-byte
     * entries: what RFC 9113 section 3.4 makes a server send first. */
    uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
    if (k < sizeof h || h[3] != DYNOBS_H2_SETTINGS || h[4] || len % 6 || len > 600 ||
        (h[5] | h[6] | h[7] | h[8]))
        return 0;
    return DYNOBS_PROTO_H2_SERVER;
}

struct dynobs_conn *dynobs__conn_adopt(struct dynobs_conn *c, enum dynobs_proto p)
{
    c->proto = (uint8_t)p;
    if (p == DYNOBS_PROTO_H1_SERVER)
        dynobs__h1s_init(c);
    else if (p == DYNOBS_PROTO_H2_SERVER && dynobs__h2s_init(c) < 0)
        c->proto = 0; /* no memory for its state: not followed */
    else if (p == DYNOBS_PROTO_H2_CLIENT && dynobs__h2c_init(c) < 0)
        c->proto = 0;
    else if (p == DYNOBS_PROTO_FCGI_SERVER)
        dynobs__fcgis_init(c);
    else if (p == DYNOBS_PROTO_H1_CLIENT)
        dynobs__h1c_init(c);
    return c;
}

struct dynobs_conn *dynobs__conn_open(enum dynobs_transport tr, enum dynobs_proto p, int fd)
{
    struct dynobs_conn *c = conn_new();
    if (!c)
        return NULL;
    c->transport = (uint8_t)tr;
    c->fd = fd;
    return dynobs__conn_adopt(c, p);
}

struct dynobs_conn *dynobs__conn_pending(enum dynobs_transport tr, int fd,
                                         const struct dynobs_ctx *origin)
{
    struct dynobs_conn *c = conn_new();
    if (!c)
        return NULL;
    c->transport = (uint8_t)tr;
    c->fd = fd;
    c->origin = *origin;
    c->has_origin = 1;
    return c;
}

const struct dynobs_span *dynobs__conn_serving(const struct dynobs_conn *c)
{
    if (c->proto == DYNOBS_PROTO_H1_SERVER && c->p.h1s.x.open)
        return &c->p.h1s.x.span;
    if (c->proto == DYNOBS_PROTO_FCGI_SERVER && c->p.fcgis.open)
        return &c->p.fcgis.span;
    return NULL;
}

void dynobs__conn_unseen_out(struct dynobs_conn *c, size_t n)
{
    if (c->proto == DYNOBS_PROTO_H1_SERVER)
        dynobs__h1s_unseen_out(c, n);
}

void dynobs__conn_end(struct dynobs_conn *c, enum dynobs_conn_end how)
{
    static const char client_error[][18] = {
        [DYNOBS_END_CLOSED] = "connection_closed",
        [DYNOBS_END_EOF] = "connection_closed",
        [DYNOBS_END_RESET] = "connection_reset",
        [DYNOBS_END_ERROR] = "connection_error",
        [DYNOBS_END_TLS_ERROR] = "tls_error",
    };
    switch (c->proto) {
    case DYNOBS_PROTO_H1_CLIENT:
        dynobs__h1c_end(c, client_error[how]);
        break;
    case DYNOBS_PROTO_H2_CLIENT:
        dynobs__h2c_end(c, client_error[how]);
        break;
    case DYNOBS_PROTO_H2_SERVER:
        /* Not at the end of the client's bytes: the server may still be
         * writing its responses (and the thread writing one may not have
         * passed it to us yet, although the client already has it). The
         * streams left end when the connection is closed. */
        if (how == DYNOBS_END_CLOSED || how == DYNOBS_END_TLS_ERROR)
            dynobs__h2s_end(c);
        break;
    case DYNOBS_PROTO_H1_SERVER:
    case DYNOBS_PROTO_FCGI_SERVER:
        /* A failed read does not cut a response short: the server may
         * still write it, and the stream's close ends it. Nor does the
         * end of an HTTP/1 client's bytes: a client that shuts its side
         * down after its request still reads the response. */
        if (how != DYNOBS_END_CLOSED && how != DYNOBS_END_TLS_ERROR &&
            (how != DYNOBS_END_EOF || c->proto == DYNOBS_PROTO_H1_SERVER))
            break;
        if (c->proto == DYNOBS_PROTO_H1_SERVER)
            dynobs__h1s_end(c);
        else
            dynobs__fcgis_end(c);
        break;
    default:
        break;
    }
}

/* ---- facts about the stream ---- */

static void addr_of(int fd, int peer, char *out, size_t cap, int *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    out[0] = '\0';
    *port = 0;
    if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
              : getsockname(fd, (struct sockaddr *)&ss, &sl)) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)cap);
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
}

void dynobs__conn_facts_lookup(struct dynobs_conn *c)
{
    int port;
    addr_of(c->fd, 0, c->local_address, sizeof c->local_address, &c->local_port);
    addr_of(c->fd, 1, c->peer_address, sizeof c->peer_address, &port);
    int fl = c->fd >= 0 ? fcntl(c->fd, F_GETFL) : -1;
    c->blocking = fl >= 0 && !(fl & O_NONBLOCK);
    c->facts_known = 1;
}

/* ---- lifetime ---- */

void dynobs__conn_ref(struct dynobs_conn *c)
{
    __atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
}

void dynobs__conn_unref(struct dynobs_conn *c)
{
    if (!c || DYNOBS_CONN_IS_MARKER(c) || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    dynobs__conn_end(c, DYNOBS_END_CLOSED);
    if (try_lock()) {
        c->next_free = free_list;
        free_list = c;
        unlock();
    }
    /* else: leaked to nobody, but still mapped; rare and bounded by
     * contention on closing sockets. */
}

/* ---- the socket transport's table ---- */

static struct dynobs_conn **slot(int fd, int create)
{
    if (fd < 0 || fd >= (DYNOBS_FD_CHUNKS << DYNOBS_FD_CHUNK_BITS))
        return NULL;
    if (fd < DYNOBS_FD_NEAR)
        return &dynobs__fd_near[fd];
    unsigned ci = (unsigned)fd >> DYNOBS_FD_CHUNK_BITS;
    void **chunk = &dynobs__fd_chunks[ci];
    const size_t bytes = sizeof(struct dynobs_conn *) << DYNOBS_FD_CHUNK_BITS;
    struct dynobs_conn **ch = create ? dynobs__lazymap(chunk, bytes) : dynobs__lazymap_peek(chunk);
    if (!ch)
        return NULL;
    return &ch[(unsigned)fd & ((1u << DYNOBS_FD_CHUNK_BITS) - 1)];
}

void dynobs__fd_set(int fd, struct dynobs_conn *c)
{
    struct dynobs_conn **s = slot(fd, c != NULL);
    if (!s)
        return;
    if (c && !DYNOBS_CONN_IS_MARKER(c))
        dynobs__conn_ref(c);
    struct dynobs_conn *old = __atomic_exchange_n(s, c, __ATOMIC_ACQ_REL);
    dynobs__conn_unref(old);
}
