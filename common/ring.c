#define _GNU_SOURCE
#include "ring.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

/* How many times a producer retries the head CAS before giving up. Each
 * failure means another producer made progress, so this only bounds the
 * wait of the unluckiest thread under heavy contention. */
#define RESERVE_TRIES 64

static inline void count(struct dynobs_ring *r, enum dynobs_counter c)
{
    __atomic_fetch_add(&r->counters[c], 1, __ATOMIC_RELAXED);
}

/* Backs the data up to at least `upto` (rounded up to a step, at most the
 * ring): 1, or 0 when the memory could not be had. */
static int grow(struct dynobs_ring *r, struct dynobs_ring_room *room, uint64_t upto)
{
    uint64_t b = __atomic_load_n(&room->backed, __ATOMIC_ACQUIRE);
    uint64_t want = (upto + DYNOBS_RING_GROW_STEP - 1) & ~(uint64_t)(DYNOBS_RING_GROW_STEP - 1);
    if (want > r->cap)
        want = r->cap;
    if (want <= b)
        return 1;
#ifdef MADV_POPULATE_WRITE
    /* Faults the pages in, or fails with EFAULT where a write would have
     * raised SIGBUS (tmpfs full): the reason fallocate was used before. */
    if (madvise(r->data + b, want - b, MADV_POPULATE_WRITE) != 0)
        return 0;
#else
    return 0;
#endif
    while (b < want && !__atomic_compare_exchange_n(&room->backed, &b, want, 1, __ATOMIC_RELEASE,
                                                    __ATOMIC_ACQUIRE))
        ;
    return 1;
}

__attribute__((noinline)) struct dynobs_rec_hdr *
dynobs__ring_reserve_slow(struct dynobs_ring *r, struct dynobs_ring_room *room, uint32_t need,
                          uint16_t type, uint16_t flags)
{
    const uint64_t mask = r->cap - 1;
    uint64_t pos = __atomic_load_n(r->head, __ATOMIC_RELAXED);
    uint64_t pad = 0;
    int ok = 0;
    for (int i = 0; i < RESERVE_TRIES; i++) {
        uint64_t tail = __atomic_load_n(r->tail, __ATOMIC_ACQUIRE);
        uint64_t off = pos & mask;
        uint64_t used = pos - tail; /* huge when a bad tail is ahead: full */
        if (used > r->cap)
            break;
        uint64_t limit = dynobs__ring_room_limit(r, room);
        if (off + need <= limit) {
            pad = 0;
        } else if (off + need > r->cap || (used + need <= off && used <= limit / 2)) {
            /* The end of the data, or the end of what is backed while the
             * consumer is less than half of it behind: wrap to the start.
             * Until the consumer passes the PAD, the space it stands for
             * is not free, so only the part of the start the consumer has
             * freed can take records: wrapping early with a larger backlog
             * would leave too little, and the shard grows instead. */
            pad = r->cap - off;
        } else if (grow(r, room, off + need + DYNOBS_REC_ALIGN)) {
            continue; /* the same position, with more room */
        } else {
            break;
        }
        if (pad + need > r->cap - used)
            break;
        if (__atomic_compare_exchange_n(r->head, &pos, pos + pad + need, 1, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            ok = 1;
            break;
        }
    }
    if (!ok)
        return NULL;
    if (pad) {
        struct dynobs_rec_hdr *p = (struct dynobs_rec_hdr *)(r->data + (pos & mask));
        p->len = (uint32_t)pad;
        p->type = DYNOBS_REC_PAD;
        p->flags = 0;
        __atomic_store_n(&p->stamp, pos | DYNOBS_STAMP_COMMITTED, __ATOMIC_RELEASE);
        pos += pad;
    }
    return dynobs__ring_reserved_at(r, pos, need, type, flags);
}

struct dynobs_rec_hdr *dynobs__ring_try_reserve(struct dynobs_ring *r, size_t payload_len,
                                                uint16_t type, uint16_t flags)
{
    return dynobs__ring_try_reserve_in(r, NULL, payload_len, type, flags);
}

struct dynobs_rec_hdr *dynobs__ring_reserve_in(struct dynobs_ring *r, struct dynobs_ring_room *room,
                                               size_t payload_len, uint16_t type, uint16_t flags)
{
    struct dynobs_rec_hdr *h = dynobs__ring_try_reserve_in(r, room, payload_len, type, flags);
    if (!h)
        count(r, DYNOBS_CTR_RECORDS_DROPPED);
    return h;
}

struct dynobs_rec_hdr *dynobs__ring_reserve(struct dynobs_ring *r, size_t payload_len,
                                            uint16_t type, uint16_t flags)
{
    return dynobs__ring_reserve_in(r, NULL, payload_len, type, flags);
}

void dynobs__ring_commit(struct dynobs_ring *r, struct dynobs_rec_hdr *h)
{
    dynobs__ring_publish(h);
    dynobs__ring_count_written(r);
}

int dynobs__ring_write(struct dynobs_ring *r, uint16_t type, uint16_t flags, const void *a,
                       size_t alen, const void *b, size_t blen)
{
    struct dynobs_rec_hdr *h = dynobs__ring_reserve(r, alen + blen, type, flags);
    if (!h)
        return -ENOSPC;
    uint8_t *p = (uint8_t *)(h + 1);
    if (alen)
        memcpy(p, a, alen);
    if (blen)
        memcpy(p + alen, b, blen);
    dynobs__ring_commit(r, h);
    return 0;
}

/* A header at pos is plausible when its length keeps it inside the ring,
 * before the end of the data, and below the head. */
static int plausible(const struct dynobs_ring_view *v, uint64_t pos, uint64_t head,
                     uint32_t len)
{
    uint64_t off = pos & (v->cap - 1);
    return len >= sizeof(struct dynobs_rec_hdr) && len % DYNOBS_REC_ALIGN == 0 &&
           off + len <= v->cap && len <= head - pos;
}

enum dynobs_peek dynobs__ring_peek(const struct dynobs_ring_view *v, uint64_t *tailp,
                                   void *buf, size_t bufcap)
{
    const uint64_t mask = v->cap - 1;
    uint64_t tail = *tailp;
    for (;;) {
        uint64_t head = __atomic_load_n(v->head, __ATOMIC_ACQUIRE);
        if (head == tail)
            return DYNOBS_PEEK_EMPTY;
        if (head - tail > v->cap || tail % DYNOBS_REC_ALIGN)
            return DYNOBS_PEEK_CORRUPT;
        const struct dynobs_rec_hdr *h = (const void *)(v->data + (tail & mask));
        uint64_t stamp = __atomic_load_n(&h->stamp, __ATOMIC_ACQUIRE);
        /* Not committed: a producer is still writing (its stamp says
         * RESERVED, or it has not written the header yet and the bytes are
         * an older lap's). Only time, or the producer's death, tells this
         * apart from a producer that died here; the caller decides. */
        if (stamp != (tail | DYNOBS_STAMP_COMMITTED))
            return DYNOBS_PEEK_STALLED;
        uint32_t len = __atomic_load_n(&h->len, __ATOMIC_RELAXED);
        uint16_t type = __atomic_load_n(&h->type, __ATOMIC_RELAXED);
        if (!plausible(v, tail, head, len))
            return DYNOBS_PEEK_CORRUPT;
        if (type == DYNOBS_REC_PAD) {
            /* Padding always runs to the end of the data. */
            if ((tail & mask) + len != v->cap)
                return DYNOBS_PEEK_CORRUPT;
            tail += len;
            *tailp = tail;
            continue;
        }
        if (len > v->max_record || len > bufcap)
            return DYNOBS_PEEK_CORRUPT;
        memcpy(buf, h, len);
        /* The stamp must not have changed while we copied: a producer that
         * was skipped as dead and came back could otherwise tear it. */
        if (__atomic_load_n(&h->stamp, __ATOMIC_ACQUIRE) != stamp)
            return DYNOBS_PEEK_CORRUPT;
        *tailp = tail + len;
        return DYNOBS_PEEK_RECORD;
    }
}

uint64_t dynobs__ring_resync(const struct dynobs_ring_view *v, uint64_t tail)
{
    const uint64_t mask = v->cap - 1;
    uint64_t head = __atomic_load_n(v->head, __ATOMIC_ACQUIRE);
    if (head - tail > v->cap || tail % DYNOBS_REC_ALIGN)
        return head; /* the tail itself makes no sense: start over at head */
    const struct dynobs_rec_hdr *h = (const void *)(v->data + (tail & mask));
    uint64_t stamp = __atomic_load_n(&h->stamp, __ATOMIC_ACQUIRE);
    uint32_t len = __atomic_load_n(&h->len, __ATOMIC_RELAXED);
    if ((stamp == (tail | DYNOBS_STAMP_RESERVED) || stamp == (tail | DYNOBS_STAMP_COMMITTED)) &&
        plausible(v, tail, head, len))
        return tail + len;
    for (uint64_t p = tail + DYNOBS_REC_ALIGN; p < head; p += DYNOBS_REC_ALIGN) {
        const struct dynobs_rec_hdr *q = (const void *)(v->data + (p & mask));
        uint64_t s = __atomic_load_n(&q->stamp, __ATOMIC_ACQUIRE);
        if (s == (p | DYNOBS_STAMP_RESERVED) || s == (p | DYNOBS_STAMP_COMMITTED))
            return p;
    }
    return head;
}
