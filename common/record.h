/*
 * Record bodies: the attribute/event item encoding that producers append
 * and consumers decode. Decoding treats its input as hostile: every length
 * is checked before it is used.
 */
#ifndef DYNOBS_COMMON_RECORD_H
#define DYNOBS_COMMON_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "layout.h"

/* libc's memcpy, out of line: dynobs__copy_short's long copies, kept
 * where the compiler does not take the inlined callers' fixed-size values
 * for their sources. */
void dynobs__copy_long(void *dst, const void *src, size_t n);

/* Copies n bytes, reading and writing exactly those: up to 32 bytes with
 * at most four unaligned moves, more with libc's memcpy. The shim's names,
 * keys and values are mostly that short, and the build sends every
 * variable-length memcpy to libc (CMakeLists.txt), whose call and size
 * dispatch cost more than such a copy. */
static inline __attribute__((always_inline)) void dynobs__copy_short(void *dst, const void *src,
                                                                     size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n > 32) {
        dynobs__copy_long(d, s, n);
    } else if (n >= 16) {
        struct { uint64_t w[2]; } a, b;
        memcpy(&a, s, 16);
        memcpy(&b, s + n - 16, 16);
        memcpy(d, &a, 16);
        memcpy(d + n - 16, &b, 16);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

/* Size of an attribute item with these lengths (for overwrite checks). */
static inline size_t dynobs__item_attr_size(size_t klen, int type, size_t vlen)
{
    return DYNOBS_ITEM_HDR + klen + (type == DYNOBS_ATTR_STRING ? 2 + vlen : 8);
}

/* Encodes one attribute item at buf; returns its size, or 0 when it does
 * not fit in cap (nothing is written then). String values are given as
 * (val, vlen); other types as an 8-byte value in *val. Inline: a span's
 * attributes are the shim's hottest path. */
static inline __attribute__((always_inline)) size_t dynobs__item_put_attr(uint8_t *buf, size_t cap, uint8_t tag,
                                           const char *key, size_t klen, int type,
                                           const void *val, size_t vlen, uint8_t flags)
{
    if (klen > 255 || vlen > UINT16_MAX)
        return 0;
    size_t need = dynobs__item_attr_size(klen, type, vlen);
    if (need > cap)
        return 0;
    buf[0] = tag;
    buf[1] = (uint8_t)type;
    buf[2] = (uint8_t)klen;
    buf[3] = flags;
    dynobs__copy_short(buf + DYNOBS_ITEM_HDR, key, klen);
    uint8_t *p = buf + DYNOBS_ITEM_HDR + klen;
    if (type == DYNOBS_ATTR_STRING) {
        uint16_t l = (uint16_t)vlen;
        memcpy(p, &l, 2);
        dynobs__copy_short(p + 2, val, vlen);
    } else {
        memcpy(p, val, 8);
    }
    return need;
}
size_t dynobs__item_put_event(uint8_t *buf, size_t cap, const char *name, size_t nlen,
                              uint64_t time_ns);

struct dynobs_item {
    uint8_t tag;   /* enum dynobs_item_tag */
    uint8_t type;  /* DYNOBS_ATTR_* for attributes */
    uint8_t flags; /* DYNOBS_ITEMF_* */
    const char *key; /* not NUL-terminated: key_len bytes */
    size_t key_len;
    const char *str; /* strings, and event names */
    size_t str_len;
    int64_t i;
    double d;
    int b;
    uint64_t time_ns;         /* events */
    uint16_t dropped_attrs;   /* events */
    size_t off, size;         /* where the item sits in its buffer */
};

/* Decodes the item at *off and advances *off. Returns 1 for an item, 0 at
 * the end, -EBADMSG when the bytes are not a valid item. */
int dynobs__item_next(const uint8_t *buf, size_t len, size_t *off, struct dynobs_item *it);

/* Checks that buf holds exactly count valid items, all tagged tag:
 * 0, or -EBADMSG. */
int dynobs__items_all(const uint8_t *buf, size_t len, int tag, size_t count)
    __attribute__((warn_unused_result));

/* A validated view of a span record held in a caller buffer. */
struct dynobs_span_view {
    struct dynobs_span_rec f; /* the fixed part, copied */
    uint16_t rec_flags;       /* DYNOBS_RECF_* */
    const char *name;         /* f.name_len bytes */
    const char *status_msg;
    const char *tracestate;
    const uint8_t *items; /* items_len bytes of attribute and event items */
    size_t items_len;
};

/* Validates a whole span record (header included) of len bytes. */
int dynobs__span_decode(const void *rec, size_t len, struct dynobs_span_view *v)
    __attribute__((warn_unused_result));

/* A validated view of a log record held in a caller buffer. */
struct dynobs_log_view {
    struct dynobs_log_rec f;
    const char *severity_text; /* f.severity_text_len bytes */
    const char *body;          /* f.body_len bytes */
    const uint8_t *items;      /* f.items_len bytes of LOG_ATTR items */
};

int dynobs__log_decode(const void *rec, size_t len, struct dynobs_log_view *v)
    __attribute__((warn_unused_result));

#endif
