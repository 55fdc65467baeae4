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

/* Copies n bytes. Most strings of a span are short: up to 16 bytes they
 * are copied with two overlapping loads and stores, without a call. */
static inline void dx_copy(uint8_t *d, const void *src, size_t n)
{
    const uint8_t *s = src;
    if (n > 16) {
        memcpy(d, s, n);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        /* cppcheck pairs n here with the shorter array of some other
         * caller; every caller passes n bytes that exist. */
        // cppcheck-suppress pointerOutOfBoundsCond
        memcpy(&b, s + (n - 8), 8);
        memcpy(d, &a, 8);
        memcpy(d + (n - 8), &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + (n - 4), 4);
        memcpy(d, &a, 4);
        memcpy(d + (n - 4), &b, 4);
    } else if (n) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

/* strnlen(s, n), short strings inline: two overlapping words cover
 * them, and a word holds a zero byte when (w - 0x01..01) & ~w & 0x80..80
 * is not zero. */
static inline size_t dx_strnlen(const char *s, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
        memcpy(&a, s, 8);
        memcpy(&b, s + (n - 8), 8);
        if (!(((a - ones) & ~a & highs) | ((b - ones) & ~b & highs)))
            return n;
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        const uint32_t ones = 0x01010101u, highs = 0x80808080u;
        memcpy(&a, s, 4);
        memcpy(&b, s + (n - 4), 4);
        if (!(((a - ones) & ~a & highs) | ((b - ones) & ~b & highs)))
            return n;
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            if (!s[i])
                return i;
        return n;
    }
    return strnlen(s, n);
}

/* A length-delimited field of n bytes from s (strings, bytes). */
static inline uint8_t *dx_put_len(uint8_t *p, uint8_t tag, const void *s, size_t n)
{
    *p++ = tag;
    p = dx_put_varint(p, n);
    dx_copy(p, s, n);
    return p + n;
}

/* protobuf-c takes the length of a string field with strlen(): a value
 * holding a NUL byte was sent cut there, and still is. */
static inline uint8_t *dx_put_str(uint8_t *p, uint8_t tag, const char *s, size_t n)
{
    return dx_put_len(p, tag, s, dx_strnlen(s, n));
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
