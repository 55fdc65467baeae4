/*
 * HTTP/2 over a connection (conn.h): both directions read with the frame
 * reader (common/http/h2.h), a span per stream.
 *   h2server.c  streams this process answers: a SERVER span each that
 *               continues the caller's trace, ended by the response's
 *               END_STREAM or a reset; gRPC calls get the RPC attributes
 *               and status from the trailers.
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
    int status;
    int grpc_status;
    uint64_t start_ns;
    char method[24];
    struct dynobs_route route;
    const struct dynobs_rules *rules;
    const struct dynobs_rule_redact *redact;
    struct dynobs_serving serving;
    struct dynobs_span span;
};

struct dynobs_h2_state {
    struct dynobs_h2_reader in;
    struct dynobs_h2_reader out;
    struct dynobs_h2_head in_head;  /* the block being read in */
    struct dynobs_h2_head out_head; /* the block being written out */
    struct dynobs_conn *conn;
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

/* The fields of a block that matter to a span, kept in h as they pass
 * (shared by both roles). */
void dynobs__h2_head_begin(struct dynobs_h2_head *h, uint32_t stream) DYNOBS_INTERNAL;
void dynobs__h2_head_field(struct dynobs_h2_head *h,
                           const struct dynobs_hpack_field *f) DYNOBS_INTERNAL;

#endif
