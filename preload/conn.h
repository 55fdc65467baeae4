/*
 * Connections: what dynobs knows about one HTTP/1 client stream (a TCP
 * socket, later a TLS session), and the table that maps file descriptors
 * to them.
 *
 * A table entry is NULL (not looked at yet), DYNOBS_NOT_HTTP (ruled out:
 * one compare per call from then on) or a connection, shared by the fds
 * that dup() made of one socket.
 */
#ifndef DYNOBS_PRELOAD_CONN_H
#define DYNOBS_PRELOAD_CONN_H

#include <stdint.h>

#include "internal.h"

#include "../common/http/h1.h"

#define DYNOBS_NOT_HTTP ((struct dynobs_conn *)1)
/* An accepted socket whose first bytes have not been read yet. */
#define DYNOBS_SERVER_CANDIDATE ((struct dynobs_conn *)2)
#define DYNOBS_IS_MARKER(c) ((uintptr_t)(c) <= 2)
#define DYNOBS_INJECT_MAX 700u

#define DYNOBS_TLS_SCRATCH (64u * 1024u)

struct dynobs_conn {
    struct dynobs_conn *next_free;
    char *scratch; /* TLS: the app's bytes with ours spliced in (stable
                    * across retries, as OpenSSL wants the same buffer) */
    int refs;            /* fds (or sessions) that use it; atomic */
    uint8_t tls;         /* 1: https (bytes seen inside TLS) */
    uint8_t server;      /* 1: the server end of an accepted connection */
    uint8_t srv_open;    /* server: a request is being answered */
    uint8_t blocking_known, blocking, pushed;
    uint8_t span_open;   /* a request is waiting for its response */
    uint8_t sent;        /* the header block (with our lines) is out */
    int64_t inj_at;      /* app bytes until our lines go out; -1: none */
    uint16_t inj_len, inj_sent;
    uint64_t req_start_ns;
    struct dynobs_h1_req out;
    struct dynobs_h1_req planned; /* out, as of our lines' position */
    struct dynobs_h1_status in;
    char inj[DYNOBS_INJECT_MAX];
    /* The request, for the span's end and the metric. */
    char method[24];
    char server_address[DYNOBS_H1_HOST_MAX];
    int server_port;
    /* Server side: the response being written, and the context pushed on
     * the handling thread while the request is served. */
    struct dynobs_h1_resp resp;
    char peer_address[48]; /* server: the client, with server_address and
                            * server_port the local end (looked up once) */
    struct dynobs_thread *ctx_owner;
    int ctx_idx;
    /* Server: the duration metric's labels of the last request that did
     * not fail, kept while method and status repeat (keep-alive). */
    int labels_code;
    char labels_method[24];
    char labels[DYNOBS_METRIC_KEY_BYTES];
    struct dynobs_span span; /* detached span of the request in flight */
};

struct dynobs_conn *dynobs__conn_new(void) DYNOBS_INTERNAL;
void dynobs__conn_ref(struct dynobs_conn *c) DYNOBS_INTERNAL;
/* Drops a reference; the last one ends an unfinished request as failed. */
void dynobs__conn_unref(struct dynobs_conn *c) DYNOBS_INTERNAL;

/* Two tables: the plain bytes of sockets, and the plain bytes of TLS
 * sessions, keyed by the session's fd. */
enum dynobs_table { DYNOBS_TAB_SOCKET = 0, DYNOBS_TAB_TLS = 1 };

#define DYNOBS_FD_CHUNK_BITS 12
#define DYNOBS_FD_CHUNKS 256 /* fds up to 2^20 */
extern struct dynobs_conn **dynobs__fd_chunks[2][DYNOBS_FD_CHUNKS] DYNOBS_INTERNAL;

/* The entry of fd: NULL, DYNOBS_NOT_HTTP or a connection. Inline: every
 * read and write of the process asks this. */
static inline struct dynobs_conn *dynobs__tab_get(enum dynobs_table t, int fd)
{
    unsigned u = (unsigned)fd;
    if (DYNOBS_UNLIKELY(u >= (DYNOBS_FD_CHUNKS << DYNOBS_FD_CHUNK_BITS)))
        return NULL;
    struct dynobs_conn **ch =
        __atomic_load_n(&dynobs__fd_chunks[t][u >> DYNOBS_FD_CHUNK_BITS], __ATOMIC_ACQUIRE);
    return ch ? __atomic_load_n(&ch[u & ((1u << DYNOBS_FD_CHUNK_BITS) - 1)], __ATOMIC_ACQUIRE)
              : NULL;
}
/* Replaces the entry of fd (taking a reference on c when it is a
 * connection, dropping the old one's). */
void dynobs__tab_set(enum dynobs_table t, int fd, struct dynobs_conn *c) DYNOBS_INTERNAL;

static inline struct dynobs_conn *dynobs__fd_get(int fd)
{
    return dynobs__tab_get(DYNOBS_TAB_SOCKET, fd);
}

static inline void dynobs__fd_set(int fd, struct dynobs_conn *c)
{
    dynobs__tab_set(DYNOBS_TAB_SOCKET, fd, c);
}

#endif
