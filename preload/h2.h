/*
 * HTTP/2 over a connection (conn.h): both directions read with the frame
 * reader (common/http/h2.h), a span per stream.
 *   h2server.c  streams this process answers: a SERVER span each that
 *               continues the caller's trace, ended by the response's
 *               END_STREAM or a reset; gRPC calls get the RPC attributes
 *               and status from the trailers.
 *   h2client.c  streams this process opens: a CLIENT span each, and our
 *               traceparent appended to the HEADERS frame that opens it
 *               (the frame rewritten before it goes out).
 *   h2stream.c  what both share: the stream table, counters, RPC names.
 * The state is large (two HPACK tables and a span per stream), so it is
 * mapped once per connection state at its first HTTP/2 use and kept with
 * it across reuses (struct dynobs_conn.h2).
 */
#ifndef DYNOBS_PRELOAD_H2_H
#define DYNOBS_PRELOAD_H2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "context.h"
#include "decision_memo.h"
#include "httpmetrics.h"
#include "route.h"
#include "span.h"

#include "../common/http/h1.h"
#include "../common/http/h2.h"

/* Streams followed at once on a connection; a stream past them is served
 * untraced and counted (dynobs.http2.streams_untraced). */
#define DYNOBS_H2_STREAMS 64u
#define DYNOBS_H2_PATH_MAX 512u
#define DYNOBS_H2_VALUE_MAX 256u

/* A request's header block, as its fields are decoded. A field sent
 * twice or cut is counted in its *_count and treated as absent where
 * that matters (traceparent). */
struct dynobs_h2_head {
    uint32_t stream;
    uint8_t end_stream; /* its HEADERS frame ended the stream */
    uint8_t grpc;   /* content-type application/grpc... */
    uint8_t tp_count;
    uint8_t ts_count;
    uint8_t method_len;
    uint8_t scheme_len;
    uint16_t path_len;
    uint16_t authority_len;
    uint16_t ua_len;
    uint16_t tp_len;
    uint16_t ts_len;
    int status;      /* :status of a response block, 0 none */
    int grpc_status; /* grpc-status of a response or trailers block, -1 none */
    char method[24];
    char scheme[8];
    char path[DYNOBS_H2_PATH_MAX];
    char authority[DYNOBS_H1_HOST_MAX];
    char user_agent[DYNOBS_H2_VALUE_MAX];
    char traceparent[64];
    char tracestate[DYNOBS_TRACESTATE_MAX];
};

/* One stream with a span open. state: 0 free, 1 being started, 2 open,
 * 3 being finished (claimed by compare-and-swap: the response side and a
 * reset from the request side may end it at once). */
struct dynobs_h2_stream {
    uint32_t state;
    uint32_t id;
    uint8_t grpc;
    uint8_t uncounted;
    int server_port; /* a client's: the peer's */
    char server_address[DYNOBS_H1_HOST_MAX];
    int status;
    int grpc_status;
    uint64_t start_ns;
    char method[24];
    struct dynobs_route route;
    const struct dynobs_rules *rules;
    const struct dynobs_rule_redact *redact;
    struct dynobs_serving serving;
    int16_t served; /* its entry of the served table (a server's), -1 none */
    struct dynobs_span span;
};

/* Room for the rewritten frames of one write (with what lies between
 * them). A frame past it goes out as the application wrote it (counted). */
#define DYNOBS_H2_INJ_MAX (64u * 1024u)
#define DYNOBS_H2_NO_PLAN UINT64_MAX

/* A server's connection-wide attributes, encoded once (h2server.c). */
struct dynobs_h2_run {
    uint16_t len;         /* bytes of items; 0: nothing kept */
    uint8_t count, sl;    /* attributes in items; bytes of :scheme in key */
    uint16_t hn, ual;     /* bytes of host and user agent in key, after the scheme */
    uint32_t value_limit; /* the attribute value limit the items were cut to */
    char key[8 + DYNOBS_H1_HOST_MAX + DYNOBS_H2_VALUE_MAX];
    uint8_t items[1024];
};

struct dynobs_h2_state {
    struct dynobs_h2_reader in;
    struct dynobs_h2_reader out;
    struct dynobs_h2_head in_head;  /* the block being read in */
    struct dynobs_h2_head out_head; /* the block being written out */
    struct dynobs_conn *conn;
    /* A client's plan (h2client.c), in offsets of the bytes the
     * application writes: out_pos of them went out, fed_pos were read by
     * the out reader (ahead of out_pos while a rewritten frame is
     * planned: the frame and what precedes it in the same call). */
    uint64_t out_pos;
    uint64_t fed_pos;
    uint64_t inj_pos;       /* where the planned frame starts; DYNOBS_H2_NO_PLAN */
    uint32_t inj_skip;      /* its bytes as the application wrote them */
    uint32_t inj_len;       /* its bytes as we send them */
    uint32_t inj_sent;      /* of which gone out */
    uint32_t last_stream;   /* the highest stream the client opened */
    /* A server's rules decision and route for its last stream's method,
     * authority and path (decision_memo.h). */
    struct dynobs_decision_memo memo;
    struct dynobs_h2_run run;
    /* A server's duration label string for its last stream's method,
     * status and route, and the series it went to (h2server.c). */
    uint32_t labels_busy;
    int labels_code;
    char labels_method[24];
    char labels_route[DYNOBS_ROUTE_MAX];
    char labels[DYNOBS_METRIC_KEY_BYTES];
    struct dynobs_series_memo series;
    uint32_t planning;      /* the stream whose frame is being planned, 0 none */
    uint32_t peer_max_frame; /* the server's SETTINGS_MAX_FRAME_SIZE */
    uint16_t lit_len;       /* our fields for the planned frame */
    uint8_t lit[1024];
    uint8_t inj[DYNOBS_H2_INJ_MAX];
    struct dynobs_h2_stream streams[DYNOBS_H2_STREAMS];
};

struct dynobs_conn;

/* ---- server ---- */

/* The connection's state, mapped or reset; -ENOMEM leaves the
 * connection untraced. */
int dynobs__h2s_init(struct dynobs_conn *c) DYNOBS_INTERNAL;
void dynobs__h2s_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                    size_t n) DYNOBS_INTERNAL;
void dynobs__h2s_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                     size_t n) DYNOBS_INTERNAL;
void dynobs__h2s_end(struct dynobs_conn *c) DYNOBS_INTERNAL;
/* Both directions are followed until one is lost. */
int dynobs__h2s_wants(const struct dynobs_conn *c) DYNOBS_INTERNAL;

/* ---- client ---- */

int dynobs__h2c_init(struct dynobs_conn *c) DYNOBS_INTERNAL;
struct dynobs_insert;
long dynobs__h2c_plan(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                      struct dynobs_insert *ins) DYNOBS_INTERNAL;
void dynobs__h2c_out(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n,
                     long ours) DYNOBS_INTERNAL;
void dynobs__h2c_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt,
                    size_t n) DYNOBS_INTERNAL;
void dynobs__h2c_end(struct dynobs_conn *c, const char *error_type) DYNOBS_INTERNAL;

/* ---- shared (h2stream.c) ---- */

/* The state of c, mapped at its first use (client_preface: the reader
 * of what this side writes expects the client preface). */
struct dynobs_h2_state *dynobs__h2_state(struct dynobs_conn *c) DYNOBS_INTERNAL;
/* An open stream's entry, or NULL. */
struct dynobs_h2_stream *dynobs__h2_find(struct dynobs_h2_state *st,
                                         uint32_t id) DYNOBS_INTERNAL;
/* A free entry for stream id, claimed (state STARTING), or NULL when all
 * are taken (counted). */
struct dynobs_h2_stream *dynobs__h2_claim(struct dynobs_h2_state *st,
                                          uint32_t id) DYNOBS_INTERNAL;
#define DYNOBS_H2_FREE 0u
#define DYNOBS_H2_STARTING 1u
#define DYNOBS_H2_OPEN 2u
#define DYNOBS_H2_FINISHING 3u
/* Claims an open stream for its end: 1 for the one caller that may end it. */
int dynobs__h2_finishing(struct dynobs_h2_stream *x) DYNOBS_INTERNAL;
/* host[:port] without the port. */
size_t dynobs__h2_host_len(const char *authority, size_t n) DYNOBS_INTERNAL;
/* rpc.system, rpc.service and rpc.method of a gRPC path. */
void dynobs__h2_rpc_attrs(struct dynobs_span *s, const char *path, size_t n) DYNOBS_INTERNAL;
/* rpc.server.duration (server) or rpc.client.duration of a gRPC call on
 * path (for a server, its route: folded as http.route is, so a flood of
 * unknown methods makes few series), in milliseconds as the semantic
 * conventions for RPC have it, by service, method and status code. */
void dynobs__h2_rpc_metric(int server, const char *path, size_t n, int code,
                           double seconds) DYNOBS_INTERNAL;
/* Requests served over HTTP/2 that continue a caller's traceparent, by
 * that traceparent, for runtimes whose handlers run on threads that never
 * read the request (grpcio's thread pool): dynobs_served_traceparent.
 * Added when a server span begins (parent: its caller), removed at its
 * end; a full table only means a handler that cannot be found. */
void dynobs__served_add(const struct dynobs_span *s, const struct dynobs_ctx *caller,
                        int16_t *slot) DYNOBS_INTERNAL;
void dynobs__served_remove(int16_t *slot) DYNOBS_INTERNAL;
/* The traceparent of the span serving the request that came with caller
 * (trace and span id), into out (DYNOBS_TRACEPARENT_LEN + 1 bytes):
 * returns its length, or -ENOENT. */
int dynobs__served_find(const uint8_t trace[16], const uint8_t caller[8], char *out,
                        size_t cap) DYNOBS_INTERNAL;
/* Feeds bytes [from, to) of an iovec array to reader r. */
int dynobs__h2_feed_range(struct dynobs_h2_reader *r, const struct dynobs_h2_events *ev,
                          void *arg, const struct iovec *iov, int iovcnt, size_t from,
                          size_t to) DYNOBS_INTERNAL;

/* The readers' callbacks that keep the fields of the block being read in
 * (in_head) or written out (out_head); arg is the connection's state. */
void dynobs__h2_in_begin(void *arg, uint32_t stream, int end_stream, int promised) DYNOBS_INTERNAL;
void dynobs__h2_in_field(void *arg, const struct dynobs_hpack_field *f) DYNOBS_INTERNAL;
void dynobs__h2_out_begin(void *arg, uint32_t stream, int end_stream, int promised) DYNOBS_INTERNAL;
void dynobs__h2_out_field(void *arg, const struct dynobs_hpack_field *f) DYNOBS_INTERNAL;
/* 1 when a request block that ended on stream opens it (a client's
 * streams are odd and increase), remembering it; 0 for another block on
 * a stream already seen (the client's trailers). */
static inline int dynobs__h2_opens(struct dynobs_h2_state *st, uint32_t stream)
{
    if (!(stream & 1u) || stream <= st->last_stream)
        return 0;
    st->last_stream = stream;
    return 1;
}
/* A response's block h ended on stream: its status and gRPC status go to
 * the open stream, returned (NULL: none); h->end_stream says whether the
 * block ends it. */
struct dynobs_h2_stream *dynobs__h2_response(struct dynobs_h2_state *st,
                                             const struct dynobs_h2_head *h,
                                             uint32_t stream) DYNOBS_INTERNAL;

/* The fields of a block that matter to a span, kept in h as they pass
 * (shared by both roles). */
void dynobs__h2_head_begin(struct dynobs_h2_head *h, uint32_t stream) DYNOBS_INTERNAL;
void dynobs__h2_head_field(struct dynobs_h2_head *h,
                           const struct dynobs_hpack_field *f) DYNOBS_INTERNAL;

#endif
