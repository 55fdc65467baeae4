/*
 * The HTTP/2 frame reader (h2.h). A frame is read in three parts, each
 * of which may arrive in any number of pieces: its 9-byte header, the
 * "lead" of its payload (pad length, priority, promised stream: what
 * comes before a header block fragment or DATA), then the rest, of which
 * a header block fragment goes to the HPACK decoder and padding is
 * skipped.
 */
#include "h2.h"

#include <errno.h>
#include <string.h>

static const char preface[] = DYNOBS_H2_PREFACE;

void dynobs__h2_init(struct dynobs_h2_reader *r, int client_preface)
{
    r->lost = 0;
    r->preface_left = client_preface ? DYNOBS_H2_PREFACE_LEN : 0;
    r->head_have = 0;
    r->block_stream = 0;
    r->carry_len = 0;
    dynobs__hpack_init(&r->hpack);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int has_block(uint8_t type)
{
    return type == DYNOBS_H2_HEADERS || type == DYNOBS_H2_PUSH_PROMISE ||
           type == DYNOBS_H2_CONTINUATION;
}

/* The frame header is complete: check it against the open header block
 * and learn how its payload reads. */
static int frame_start(struct dynobs_h2_reader *r, const struct dynobs_h2_events *ev, void *arg)
{
    const uint8_t *h = r->head;
    r->len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
    r->type = h[3];
    r->flags = h[4];
    r->stream = be32(h + 5) & 0x7fffffffu;
    r->left = r->len;
    r->lead_have = 0;
    r->lead_need = 0;
    r->ctl_have = 0;
    r->pad = 0;
    r->frag_left = 0;
    /* RFC 9113 section 6.10: nothing but the block's CONTINUATION frames
     * between its first frame and END_HEADERS. */
    if (r->block_stream ? r->type != DYNOBS_H2_CONTINUATION || r->stream != r->block_stream
                        : r->type == DYNOBS_H2_CONTINUATION)
        return -EPROTO;
    int padded = (r->flags & DYNOBS_H2_PADDED) != 0;
    switch (r->type) {
    case DYNOBS_H2_HEADERS:
        if (!r->stream)
            return -EPROTO;
        r->lead_need = (uint8_t)(padded + (r->flags & DYNOBS_H2_PRIORITY_FLAG ? 5 : 0));
        r->block_stream = r->stream;
        r->block_id = r->stream;
        if (ev->block_begin)
            ev->block_begin(arg, r->stream, r->flags & DYNOBS_H2_END_STREAM, 0);
        break;
    case DYNOBS_H2_PUSH_PROMISE:
        if (!r->stream)
            return -EPROTO;
        r->lead_need = (uint8_t)(padded + 4);
        r->block_stream = r->stream;
        break;
    case DYNOBS_H2_DATA:
        r->lead_need = (uint8_t)padded;
        break;
    default:
        break;
    }
    if (r->lead_need > r->len)
        return -EPROTO;
    if (has_block(r->type) && !r->lead_need)
        r->frag_left = r->len;
    return 0;
}

/* The lead is complete: the padding and the fragment are known. */
static int lead_done(struct dynobs_h2_reader *r, const struct dynobs_h2_events *ev, void *arg)
{
    if (r->flags & DYNOBS_H2_PADDED)
        r->pad = r->lead[0];
    if ((uint32_t)r->lead_need + r->pad > r->len)
        return -EPROTO;
    if (has_block(r->type))
        r->frag_left = r->len - r->lead_need - r->pad;
    if (r->type == DYNOBS_H2_PUSH_PROMISE) {
        r->block_id = be32(r->lead + r->lead_need - 4) & 0x7fffffffu;
        if (ev->block_begin)
            ev->block_begin(arg, r->block_id, 0, 1);
    }
    return 0;
}

/* Header block bytes: decoded at once when no field is cut; a cut one is
 * carried (with what follows it) until its end arrives. */
static int fragment(struct dynobs_h2_reader *r, const uint8_t *p, size_t n,
                    const struct dynobs_h2_events *ev, void *arg)
{
    size_t used;
    while (n) {
        if (!r->carry_len) {
            int e = dynobs__hpack_decode(&r->hpack, p, n, 0, &used, ev->field, arg);
            if (e)
                return e;
            if (n - used > sizeof r->carry)
                return -E2BIG;
            memcpy(r->carry, p + used, n - used);
            r->carry_len = (uint32_t)(n - used);
            return 0;
        }
        size_t take = sizeof r->carry - r->carry_len;
        take = take < n ? take : n;
        if (!take)
            return -E2BIG;
        memcpy(r->carry + r->carry_len, p, take);
        r->carry_len += (uint32_t)take;
        p += take;
        n -= take;
        int e = dynobs__hpack_decode(&r->hpack, r->carry, r->carry_len, 0, &used, ev->field, arg);
        if (e)
            return e;
        memmove(r->carry, r->carry + used, r->carry_len - used);
        r->carry_len -= (uint32_t)used;
    }
    return 0;
}

/* Control frames whose payload matters keep its first bytes in ctl;
 * SETTINGS are reported entry by entry (6 bytes each). */
static void control(struct dynobs_h2_reader *r, const uint8_t *p, size_t n,
                    const struct dynobs_h2_events *ev, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        if (r->ctl_have < sizeof r->ctl)
            r->ctl[r->ctl_have++] = p[i];
        if (r->type == DYNOBS_H2_SETTINGS && r->ctl_have == 6) {
            if (ev->setting && !(r->flags & DYNOBS_H2_ACK))
                ev->setting(arg, (uint16_t)(r->ctl[0] << 8 | r->ctl[1]), be32(r->ctl + 2));
            r->ctl_have = 0;
        }
    }
}

static int payload(struct dynobs_h2_reader *r, const uint8_t *p, size_t n,
                   const struct dynobs_h2_events *ev, void *arg)
{
    while (n) {
        size_t take;
        if (r->lead_have < r->lead_need) {
            take = (size_t)(r->lead_need - r->lead_have);
            take = take < n ? take : n;
            memcpy(r->lead + r->lead_have, p, take);
            r->lead_have = (uint8_t)(r->lead_have + take);
            if (r->lead_have == r->lead_need) {
                int e = lead_done(r, ev, arg);
                if (e)
                    return e;
            }
        } else if (r->frag_left) {
            take = r->frag_left < n ? r->frag_left : n;
            int e = fragment(r, p, take, ev, arg);
            if (e)
                return e;
            r->frag_left -= (uint32_t)take;
        } else {
            take = n;
            if (r->type == DYNOBS_H2_SETTINGS || r->type == DYNOBS_H2_RST_STREAM ||
                r->type == DYNOBS_H2_GOAWAY)
                control(r, p, n, ev, arg);
        }
        p += take;
        n -= take;
    }
    return 0;
}

/* The whole payload has passed. */
static int frame_end(struct dynobs_h2_reader *r, const struct dynobs_h2_events *ev, void *arg)
{
    r->head_have = 0;
    if (has_block(r->type) && (r->flags & DYNOBS_H2_END_HEADERS)) {
        /* A field begun in this block must have ended in it. */
        if (r->carry_len)
            return -EPROTO;
        r->block_stream = 0;
        if (ev->block_end)
            ev->block_end(arg, r->block_id);
        return 0;
    }
    switch (r->type) {
    case DYNOBS_H2_DATA:
        if (ev->data)
            ev->data(arg, r->stream, r->len - r->lead_need - r->pad,
                     r->flags & DYNOBS_H2_END_STREAM);
        break;
    case DYNOBS_H2_RST_STREAM:
        if (ev->reset && r->len == 4)
            ev->reset(arg, r->stream, be32(r->ctl));
        break;
    case DYNOBS_H2_GOAWAY:
        if (ev->goaway && r->len >= 8)
            ev->goaway(arg, be32(r->ctl) & 0x7fffffffu, be32(r->ctl + 4));
        break;
    default:
        break;
    }
    return 0;
}

static int step(struct dynobs_h2_reader *r, const uint8_t *p, size_t n, size_t *took,
                const struct dynobs_h2_events *ev, void *arg)
{
    size_t take;
    int e = 0;
    if (r->preface_left) {
        size_t at = DYNOBS_H2_PREFACE_LEN - r->preface_left;
        take = r->preface_left < n ? r->preface_left : n;
        if (memcmp(p, preface + at, take))
            return -EPROTO;
        r->preface_left = (uint8_t)(r->preface_left - take);
    } else if (r->head_have < DYNOBS_H2_FRAME_HEADER) {
        take = (size_t)(DYNOBS_H2_FRAME_HEADER - r->head_have);
        take = take < n ? take : n;
        memcpy(r->head + r->head_have, p, take);
        r->head_have = (uint8_t)(r->head_have + take);
        if (r->head_have == DYNOBS_H2_FRAME_HEADER) {
            e = frame_start(r, ev, arg);
            if (!e && !r->left)
                e = frame_end(r, ev, arg);
        }
    } else {
        take = r->left < n ? r->left : n;
        e = payload(r, p, take, ev, arg);
        r->left -= (uint32_t)take;
        if (!e && !r->left)
            e = frame_end(r, ev, arg);
    }
    *took = take;
    return e;
}

int dynobs__h2_feed(struct dynobs_h2_reader *r, const uint8_t *p, size_t n,
                    const struct dynobs_h2_events *ev, void *arg)
{
    if (r->lost)
        return -EPROTO;
    while (n) {
        size_t took;
        int e = step(r, p, n, &took, ev, arg);
        if (e) {
            r->lost = 1;
            return e;
        }
        p += took;
        n -= took;
    }
    return 0;
}
