/*
 * HTTP/2 framing (RFC 9113), read from one direction of a connection in
 * whatever pieces the transport sees, with the header blocks decoded
 * (hpack.h) as they pass. The reader tells what happens to streams
 * through callbacks; it keeps no per-stream state of its own.
 *
 * The bytes are untrusted: a direction the reader cannot follow (no
 * preface where one must be, a frame out of order, a header block HPACK
 * refuses, a field longer than the carry buffer) is marked lost and
 * ignored from then on; the caller counts it.
 */
#ifndef DYNOBS_COMMON_HTTP_H2_H
#define DYNOBS_COMMON_HTTP_H2_H

#include <stddef.h>
#include <stdint.h>

#include "hpack.h"

#define DYNOBS_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define DYNOBS_H2_PREFACE_LEN 24u
#define DYNOBS_H2_FRAME_HEADER 9u

enum dynobs_h2_type {
    DYNOBS_H2_DATA = 0,
    DYNOBS_H2_HEADERS = 1,
    DYNOBS_H2_PRIORITY = 2,
    DYNOBS_H2_RST_STREAM = 3,
    DYNOBS_H2_SETTINGS = 4,
    DYNOBS_H2_PUSH_PROMISE = 5,
    DYNOBS_H2_PING = 6,
    DYNOBS_H2_GOAWAY = 7,
    DYNOBS_H2_WINDOW_UPDATE = 8,
    DYNOBS_H2_CONTINUATION = 9,
};

#define DYNOBS_H2_END_STREAM 0x1u
#define DYNOBS_H2_ACK 0x1u
#define DYNOBS_H2_END_HEADERS 0x4u
#define DYNOBS_H2_PADDED 0x8u
#define DYNOBS_H2_PRIORITY_FLAG 0x20u

#define DYNOBS_H2_SETTINGS_HEADER_TABLE_SIZE 0x1u
#define DYNOBS_H2_SETTINGS_MAX_FRAME_SIZE 0x5u

/* What the reader reports. Any callback may be NULL. */
struct dynobs_h2_events {
    /* A header block starts on stream (HEADERS; PUSH_PROMISE with
     * promised set, stream then being the promised one); end_stream is the
     * HEADERS frame's END_STREAM flag. Its fields follow, then
     * block_end. */
    void (*block_begin)(void *arg, uint32_t stream, int end_stream, int promised);
    dynobs_hpack_fn *field;
    void (*block_end)(void *arg, uint32_t stream);
    /* A DATA frame's payload (padding included) has passed. */
    void (*data)(void *arg, uint32_t stream, uint32_t len, int end_stream);
    void (*reset)(void *arg, uint32_t stream, uint32_t code);
    void (*goaway)(void *arg, uint32_t last_stream, uint32_t code);
    /* One setting of a SETTINGS frame that is not an acknowledgement. */
    void (*setting)(void *arg, uint16_t id, uint32_t value);
};

/* Bytes of a header field kept between pieces; a longer field loses the
 * direction. */
#define DYNOBS_H2_CARRY (DYNOBS_HPACK_TABLE_MAX + 64u)

struct dynobs_h2_reader {
    uint8_t lost;
    uint8_t preface_left; /* bytes of the client preface still expected */
    uint8_t head_have;    /* bytes of the frame header so far */
    uint8_t head[DYNOBS_H2_FRAME_HEADER];
    /* The frame being read. */
    uint8_t type;
    uint8_t flags;
    uint8_t lead_need; /* payload bytes before a fragment: pad length, priority, promised id */
    uint8_t lead_have;
    uint8_t lead[8];
    uint8_t ctl_have; /* bytes of a control frame's payload kept (RST_STREAM, GOAWAY, SETTINGS) */
    uint8_t ctl[8];
    uint8_t pad;        /* padding at the payload's end */
    uint32_t stream;
    uint32_t len;       /* payload length */
    uint32_t left;      /* payload bytes still to come */
    uint32_t frag_left; /* of which header block fragment */
    /* The header block being read: the stream of its frames (0 when none
     * is open), and the stream it is reported for (the promised one of a
     * PUSH_PROMISE). */
    uint32_t block_stream;
    uint32_t block_id;
    uint32_t carry_len;
    struct dynobs_hpack hpack;
    uint8_t carry[DYNOBS_H2_CARRY];
};

/* A reader for one direction: client_preface for the bytes a client
 * writes (they start with the 24-byte preface). */
void dynobs__h2_init(struct dynobs_h2_reader *r, int client_preface);

/* The next n bytes of the direction. Returns 0, or a negative errno when
 * the direction is (now) lost. */
int dynobs__h2_feed(struct dynobs_h2_reader *r, const uint8_t *p, size_t n,
                    const struct dynobs_h2_events *ev, void *arg);

#endif
