/*
 * The connection layer: one byte stream that the application reads and
 * writes (a TCP socket, or the plain side of a TLS session), whatever
 * transport carries it.
 *
 *   transports    socket.c, openssl.c (later eBPF events)
 *       |  classify once, then (connection, bytes, direction) per call
 *   connection    conn.c: the stream's facts, its protocol, dispatch
 *       |
 *   protocols     h1client.c, h1server.c (HTTP/2 next, beside them)
 *       |
 *   spans and context   span.c, context.c
 *
 * A stream's state is a struct dynobs_conn: what is known of the stream
 * itself (transport, role, addresses, blocking mode: looked up once), and
 * apart from it the protocol's state, which holds the request in flight
 * (HTTP/1 has one at a time; pipelined requests and HTTP/2 streams will
 * hold more there without touching the layers around it).
 *
 * A transport keeps one entry per stream (fd, SSL session): NULL (not
 * looked at yet), DYNOBS_CONN_IGNORED (ruled out: one compare per call
 * from then on), DYNOBS_CONN_ACCEPTED (a server's stream whose first
 * bytes have not been read yet) or a connection, shared by the entries
 * that refer to one stream (fds made by dup()).
 */
#ifndef DYNOBS_PRELOAD_CONN_H
#define DYNOBS_PRELOAD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "fcgiserver.h"
#include "h1.h"
#include "h2.h"
#include "lazymap.h"
#include "state.h"

#define DYNOBS_CONN_IGNORED ((struct dynobs_conn *)1)
#define DYNOBS_CONN_ACCEPTED ((struct dynobs_conn *)2)
#define DYNOBS_CONN_IS_MARKER(c) ((uintptr_t)(c) <= 2)

enum dynobs_transport { DYNOBS_TRANSPORT_SOCKET = 0, DYNOBS_TRANSPORT_TLS = 1 };
enum dynobs_role { DYNOBS_ROLE_CLIENT = 0, DYNOBS_ROLE_SERVER = 1 };
enum dynobs_dir { DYNOBS_DIR_OUT = 0, DYNOBS_DIR_IN = 1 };

/* The protocol a connection was classified as, with its role: what the
 * layer dispatches on. */
enum dynobs_proto {
    DYNOBS_PROTO_PENDING = 0, /* opened by this process, no bytes written yet */
    DYNOBS_PROTO_H1_CLIENT = 1,
    DYNOBS_PROTO_H1_SERVER = 2,
    DYNOBS_PROTO_FCGI_SERVER = 3,
    DYNOBS_PROTO_H2_SERVER = 4,
    DYNOBS_PROTO_H2_CLIENT = 5,
};

/* How a stream ended under a request in flight. */
enum dynobs_conn_end {
    DYNOBS_END_CLOSED,    /* orderly end of the stream (its last reference closed) */
    DYNOBS_END_EOF,       /* a read met the end of the peer's bytes */
    DYNOBS_END_RESET,     /* ECONNRESET */
    DYNOBS_END_ERROR,     /* another error of the transport */
    DYNOBS_END_TLS_ERROR, /* the TLS layer failed */
};

/* The buffer a TLS transport splices our header lines into (OpenSSL wants
 * the same bytes at the same address when it retries a write). */
#define DYNOBS_TLS_SCRATCH (64u * 1024u)

struct dynobs_conn {
    struct dynobs_conn *next_free;
    char *scratch; /* TLS: DYNOBS_TLS_SCRATCH bytes from mmap, kept on reuse */
    struct dynobs_h2_state *h2; /* HTTP/2: mapped at first use, kept on reuse */
    int refs;      /* entries that refer to it; atomic */
    /* What is known of the stream itself. */
    uint8_t transport; /* enum dynobs_transport */
    uint8_t proto;     /* enum dynobs_proto */
    uint8_t facts_known;
    uint8_t blocking;  /* the socket was blocking when looked at */
    int fd;            /* the socket of the call being handled, for address and
                        * mode look-ups (-1: none); set by the transport */
    /* The parent a runtime announced for the next request written on the
     * connection (bridge.c): exact where the shim alone cannot tell. */
    uint8_t has_origin;
    /* The protocol's state: the request (later the streams) in flight.
     * Right after the few words above, so that what a repeated request
     * reads and writes (each protocol's state puts it first) begins in
     * the connection's first line and runs on from there. */
    union {
        struct dynobs_h1c h1c;
        struct dynobs_h1s h1s;
        struct dynobs_fcgis fcgis;
    } p;
    /* Looked up once per stream (dynobs__conn_facts); origin while
     * has_origin. */
    int local_port;
    char local_address[48];
    char peer_address[48];
    struct dynobs_ctx origin;
};

/* ---- what transports call ---- */

/* Classification, once per stream. The first bytes of a stream (written
 * by a client, or read by a server, n of them in iov) say which protocol
 * it speaks, as seen from the given role: 0 when none that we trace
 * starts this way (the transport then marks the stream
 * DYNOBS_CONN_IGNORED). Cheap: no system call. */
enum dynobs_proto dynobs__conn_recognise(enum dynobs_role role, const struct iovec *iov,
                                         int iovcnt, size_t n) DYNOBS_INTERNAL;
/* The same for a server's stream that it writes to before reading (a
 * server that speaks first): an HTTP/2 server's SETTINGS frame. */
enum dynobs_proto dynobs__conn_recognise_first_write(const struct iovec *iov, int iovcnt,
                                                     size_t n) DYNOBS_INTERNAL;
/* A new connection of that protocol, or NULL when no memory could be had.
 * It has no reference yet: the transport's entry takes the first. */
struct dynobs_conn *dynobs__conn_open(enum dynobs_transport tr, enum dynobs_proto p,
                                      int fd) DYNOBS_INTERNAL;

/* A connection of this process not written to yet, with the parent a
 * runtime announced for its first request (origin); its first bytes will
 * tell its protocol. NULL when no memory could be had. */
struct dynobs_conn *dynobs__conn_pending(enum dynobs_transport tr, int fd,
                                         const struct dynobs_ctx *origin) DYNOBS_INTERNAL;
/* A pending connection's first bytes said protocol p: it becomes one
 * (its origin is kept). Returns c. */
struct dynobs_conn *dynobs__conn_adopt(struct dynobs_conn *c, enum dynobs_proto p) DYNOBS_INTERNAL;

/* 1 when the connection's protocol wants to see the next bytes moved in
 * direction dir: the transport passes straight through otherwise. Inline:
 * every read and write of a classified stream asks it. */
static inline int dynobs__conn_wants(const struct dynobs_conn *c, enum dynobs_dir dir)
{
    /* (an HTTP/1 server's first: a test and a branch rather than the
     * switch's jump through a table, on a server's every read and write) */
    if (c->proto == DYNOBS_PROTO_H1_SERVER)
        return dir == DYNOBS_DIR_OUT ? dynobs__h1s_wants_out(&c->p.h1s)
                                     : dynobs__h1s_wants_in(&c->p.h1s);
    switch (c->proto) {
    case DYNOBS_PROTO_H1_CLIENT:
        return dir == DYNOBS_DIR_OUT ? dynobs__h1c_wants_out(&c->p.h1c)
                                     : dynobs__h1c_wants_in(&c->p.h1c);
    case DYNOBS_PROTO_FCGI_SERVER:
        return dir == DYNOBS_DIR_OUT ? dynobs__fcgis_wants_out(&c->p.fcgis)
                                     : dynobs__fcgis_wants_in(&c->p.fcgis);
    case DYNOBS_PROTO_H2_SERVER:
    case DYNOBS_PROTO_H2_CLIENT:
        return dynobs__h2s_wants(c);
    default:
        return 0;
    }
}

/* The span of the request being served on a server connection (read,
 * response not complete), or NULL. */
const struct dynobs_span *dynobs__conn_serving(const struct dynobs_conn *c) DYNOBS_INTERNAL;

/* A transport's entry for a stream about to be read: the connection when
 * its protocol wants the bytes, DYNOBS_CONN_ACCEPTED for a server's stream
 * not read yet (its first bytes classify it), else NULL. */
static inline struct dynobs_conn *dynobs__conn_for_read(struct dynobs_conn *c)
{
    if (!c || c == DYNOBS_CONN_IGNORED)
        return NULL;
    if (c == DYNOBS_CONN_ACCEPTED)
        return c;
    return dynobs__conn_wants(c, DYNOBS_DIR_IN) ? c : NULL;
}

/* Writing, with header lines of ours to add: before the real call, where
 * they go in the bytes of iov and what is left of them to send.
 * Returns the offset, or -1 when nothing of ours goes out in this call. */
struct dynobs_insert {
    const char *bytes;
    size_t len;  /* 0: nothing of ours to add (the application set its own) */
    size_t skip; /* the application's bytes at the offset that ours replace
                  * (an HTTP/2 frame rewritten); 0: ours are only added */
    size_t stop; /* 0, or where the call should end in the application's
                  * bytes (more of ours to plan from there on): a transport
                  * may end it there where a short write is allowed */
};

/* 1 when the connection's protocol adds bytes of ours to what the
 * application writes (a client's); a server's writes are only watched. */
static inline int dynobs__conn_adds(const struct dynobs_conn *c)
{
    return c->proto == DYNOBS_PROTO_H1_CLIENT || c->proto == DYNOBS_PROTO_H2_CLIENT;
}
static inline long dynobs__conn_plan(struct dynobs_conn *c, const struct iovec *iov,
                                     int iovcnt, struct dynobs_insert *ins)
{
    /* Only a client adds to what it writes: a server's response is
     * watched, never changed. */
    if (c->proto == DYNOBS_PROTO_H1_CLIENT)
        return dynobs__h1c_plan(c, iov, iovcnt, ins);
    if (c->proto == DYNOBS_PROTO_H2_CLIENT)
        return dynobs__h2c_plan(c, iov, iovcnt, ins);
    return -1;
}

/* The one entry after a call moved bytes: n of the application's bytes of
 * iov went in direction dir (for a rewritten frame, its bytes count once
 * all of ours that replace them went out); for a write, `ours` of our
 * planned bytes went with them (DYNOBS_INSERT_GIVEN_UP: the transport could not send them
 * and never will; the request then goes without them). */
#define DYNOBS_INSERT_GIVEN_UP (-1L)
static inline DYNOBS_HOT void dynobs__conn_data(struct dynobs_conn *c, enum dynobs_dir dir,
                                                const struct iovec *iov, int iovcnt, size_t n,
                                                long ours)
{
    /* Inline: the dispatch costs a compare, not another call, on every
     * read and write of a traced stream (an HTTP/1 server's first, as in
     * dynobs__conn_wants). */
    if (c->proto == DYNOBS_PROTO_H1_SERVER) {
        if (dir == DYNOBS_DIR_OUT)
            dynobs__h1s_out(c, iov, iovcnt, n);
        else
            dynobs__h1s_in(c, iov, iovcnt, n);
        return;
    }
    switch (c->proto) {
    case DYNOBS_PROTO_H1_CLIENT:
        if (dir == DYNOBS_DIR_OUT)
            dynobs__h1c_out(c, iov, iovcnt, n, ours);
        else
            dynobs__h1c_in(c, iov, iovcnt, n);
        break;
    case DYNOBS_PROTO_FCGI_SERVER:
        if (dir == DYNOBS_DIR_OUT)
            dynobs__fcgis_out(c, iov, iovcnt, n);
        else
            dynobs__fcgis_in(c, iov, iovcnt, n);
        break;
    case DYNOBS_PROTO_H2_SERVER:
        if (dir == DYNOBS_DIR_OUT)
            dynobs__h2s_out(c, iov, iovcnt, n);
        else
            dynobs__h2s_in(c, iov, iovcnt, n);
        break;
    case DYNOBS_PROTO_H2_CLIENT:
        if (dir == DYNOBS_DIR_OUT)
            dynobs__h2c_out(c, iov, iovcnt, n, ours);
        else
            dynobs__h2c_in(c, iov, iovcnt, n);
        break;
    default:
        break;
    }
}

/* A read that moved n > 0 bytes, all in one buffer: 1 when the
 * connection's protocol took them on its short path (an HTTP/1 server's
 * request that repeats the last one, h1.h), errno as it was; 0 when
 * nothing was done, and the transport hands them over as usual. */
static inline DYNOBS_HOT int dynobs__conn_read_short(struct dynobs_conn *c, const void *p,
                                                     size_t n)
{
    return c->proto == DYNOBS_PROTO_H1_SERVER && dynobs__h1s_in_short(c, p, n);
}

/* The same for a write that moved n > 0 bytes of iov (a server's, which
 * adds nothing: dynobs__conn_adds is 0). */
static inline DYNOBS_HOT int dynobs__conn_write_short(struct dynobs_conn *c,
                                                      const struct iovec *iov, int iovcnt,
                                                      size_t n)
{
    return c->proto == DYNOBS_PROTO_H1_SERVER && dynobs__h1s_out_short(c, iov, iovcnt, n);
}

/* n bytes written that the transport did not see (sendfile). */
void dynobs__conn_unseen_out(struct dynobs_conn *c, size_t n) DYNOBS_INTERNAL;

/* The stream ended, or failed, under whatever is in flight. */
void dynobs__conn_end(struct dynobs_conn *c, enum dynobs_conn_end how) DYNOBS_INTERNAL;

/* The stream's addresses and blocking mode, looked up once. */
void dynobs__conn_facts_lookup(struct dynobs_conn *c) DYNOBS_INTERNAL;
static inline void dynobs__conn_facts(struct dynobs_conn *c)
{
    if (DYNOBS_UNLIKELY(!c->facts_known))
        dynobs__conn_facts_lookup(c);
}

void dynobs__conn_ref(struct dynobs_conn *c) DYNOBS_INTERNAL;
/* Drops a reference (markers and NULL are ignored); the last one ends
 * what is in flight as if the stream had closed. */
void dynobs__conn_unref(struct dynobs_conn *c) DYNOBS_INTERNAL;

/* ---- the socket transport's table: fd -> entry ---- */

#define DYNOBS_FD_CHUNK_BITS 16
#define DYNOBS_FD_CHUNKS 16 /* fds up to 2^20 */
/* Each chunk an array of 2^DYNOBS_FD_CHUNK_BITS entries (struct
 * dynobs_conn *), mapped at its first fd (lazymap.h): 512 KiB of address
 * space, with no swap reserved, of which only the pages of the fds in use
 * are ever touched. Large chunks keep the pointers to them few (16, 128
 * bytes among the hot words, util.h) rather than a table of 2 KiB. */
extern void *dynobs__fd_chunks[DYNOBS_FD_CHUNKS] DYNOBS_INTERNAL;
/* The entries of the lowest fds, those of most processes' sockets, are
 * not in a chunk but on the hot words' page (DYNOBS_HOT_FDS, util.h): a
 * served request looks up its socket's entry, or its file's, in three of
 * the stretches between its system calls, each a page touch of its own
 * in a chunk (BENCHMARKS.md, "Nineteenth round"). */
#define DYNOBS_FD_NEAR 128
extern struct dynobs_conn *dynobs__fd_near[DYNOBS_FD_NEAR] DYNOBS_INTERNAL;

/* The entry of fd: NULL, a marker or a connection. Inline: every read and
 * write of the process asks this. */
static inline struct dynobs_conn *dynobs__fd_get(int fd)
{
    unsigned u = (unsigned)fd;
    if (DYNOBS_LIKELY(u < DYNOBS_FD_NEAR))
        return __atomic_load_n(&dynobs__fd_near[u], __ATOMIC_ACQUIRE);
    if (DYNOBS_UNLIKELY(u >= (DYNOBS_FD_CHUNKS << DYNOBS_FD_CHUNK_BITS)))
        return NULL;
    struct dynobs_conn **ch = dynobs__lazymap_peek(&dynobs__fd_chunks[u >> DYNOBS_FD_CHUNK_BITS]);
    return ch ? __atomic_load_n(&ch[u & ((1u << DYNOBS_FD_CHUNK_BITS) - 1)], __ATOMIC_ACQUIRE)
              : NULL;
}

/* Replaces the entry of fd (taking a reference on c when it is a
 * connection, dropping the old one's). */
void dynobs__fd_set(int fd, struct dynobs_conn *c) DYNOBS_INTERNAL;

#endif
