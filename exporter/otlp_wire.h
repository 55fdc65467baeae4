/*
 * Writing the protobuf wire format by hand: varints, fixed-width
 * numbers, and length-delimited fields whose length is only known once
 * their content is written.
 *
 * Encoders reserve room for the worst case first (dx_wire_room), then
 * write through a plain pointer without further checks; that is what
 * makes a span cost a few dozen stores instead of an allocation per
 * field. Output is what protobuf-c packs for the same message: fields in
 * field-number order and shortest varints, lengths included.
 */
#ifndef DYNOBS_EXPORTER_OTLP_WIRE_H
#define DYNOBS_EXPORTER_OTLP_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A growable output buffer. Its memory is kept from one request to the
 * next (dx_wire_reset), so that a steady stream of batches does not pay
 * for fresh pages every time. */
struct dx_wire {
    uint8_t *p;
    size_t len, cap;
};

/* Makes room for n more bytes after len: 0, or -ENOMEM (the buffer is
 * then unchanged). */
int dx_wire_room(struct dx_wire *w, size_t n) __attribute__((warn_unused_result));
/* Empties the buffer, and releases its memory when it grew past keep
 * bytes (a spike of huge records should not pin its memory for good). */
void dx_wire_reset(struct dx_wire *w, size_t keep);
void dx_wire_free(struct dx_wire *w);

/* Wire types of the tags below: (field << 3) | type. */
#define DX_WT_VARINT 0u
#define DX_WT_I64 1u
#define DX_WT_LEN 2u
#define DX_WT_I32 5u
#define DX_TAG(field, type) ((uint8_t)(((field) << 3) | (type)))

static inline size_t dx_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *dx_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Little-endian whatever the host, as the wire format has it. */
static inline uint8_t *dx_put_fixed64(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
    return p + 8;
}

static inline uint8_t *dx_put_fixed32(uint8_t *p, uint32_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 4);
#else
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
#endif
    return p + 4;
}

/* A length-delimited field of n bytes from s (strings, bytes). */
static inline uint8_t *dx_put_len(uint8_t *p, uint8_t tag, const void *s, size_t n)
{
    *p++ = tag;
    p = dx_put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* protobuf-c takes the length of a string field with strlen(): a value
 * holding a NUL byte was sent cut there, and still is. */
static inline uint8_t *dx_put_str(uint8_t *p, uint8_t tag, const char *s, size_t n)
{
    return dx_put_len(p, tag, s, strnlen(s, n));
}

/* An embedded message: dx_open writes the tag and leaves `guess` bytes
 * for the length (the size its content usually needs), dx_close writes
 * the length in front of the content that now ends at end, moving the
 * content when its length needs a different number of bytes. The room
 * reserved beforehand must allow for 5 length bytes. Returns the end of
 * the field. */
static inline uint8_t *dx_open(uint8_t *p, uint8_t tag, size_t guess)
{
    *p = tag;
    return p + 1 + guess;
}

static inline uint8_t *dx_close(uint8_t *content, size_t guess, uint8_t *end)
{
    size_t n = (size_t)(end - content);
    uint8_t *len = content - guess;
    size_t need = dx_varint_size(n);
    if (need != guess)
        memmove(len + need, content, n);
    dx_put_varint(len, n);
    return len + need + n;
}

#endif
