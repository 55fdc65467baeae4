/*
 * The record ring: many producers, one consumer, variable-length records.
 *
 * Producers reserve space by compare-and-swap on a free-running head
 * counter, write their record, then publish it by storing its stamp
 * (position | COMMITTED) with release order. A producer never waits: when
 * the consumer is too far behind, or the head is too contended, the record
 * is dropped and counted. The consumer reads in order from its own tail;
 * a record that stays uncommitted (its producer died mid-write) is skipped
 * by dynobs__ring_resync, which finds the next record from its stamp.
 */
#ifndef DYNOBS_COMMON_RING_H
#define DYNOBS_COMMON_RING_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "util.h"

struct dynobs_ring {
    uint64_t *head;           /* in the segment header */
    const uint64_t *tail;     /* in the consumer page */
    uint8_t *data;
    uint64_t cap;             /* power of two */
    uint64_t *counters;       /* header counters, enum dynobs_counter */
    /* The consumer's tail as a producer last read it (atomic): never ahead
     * of *tail, which only grows, so the room it shows is there. The
     * reservation reads *tail, on the consumer's page, only when this shows
     * too little: a record costs no look at that page otherwise (on a
     * kernel whose system calls empty the TLB, a page walk: BENCHMARKS.md,
     * "Eighteenth round"). */
    uint64_t tail_seen;
};

/* How much of a ring's data is backed by memory, for a ring that grows:
 * a segment allocates only the first part of each shard up front, and
 * its producers wrap back to the start of the shard early (a PAD record
 * to its end) while the consumer has freed it, and back more of the shard
 * (madvise MADV_POPULATE_WRITE, in DYNOBS_RING_GROW_STEP steps) only when
 * it has not: memory follows the largest backlog, not the ring's size. A
 * refused population (a full tmpfs, a kernel before 5.14) is a full ring:
 * the record is dropped and counted, nothing faults. Private to the
 * producing process; `backed` only grows, so that a thread that read an
 * older value only wraps early where it could have gone on. */
struct dynobs_ring_room {
    uint64_t backed; /* bytes from the start of the data, atomic; cap: all */
};
#define DYNOBS_RING_GROW_STEP (64u * 1024u)

/* Producer side. Reserves a record of type with payload_len bytes after
 * the header; returns the header (payload follows it) or NULL when the
 * record was dropped (counted). The caller fills the payload and calls
 * dynobs__ring_commit with the same header. */
struct dynobs_rec_hdr *dynobs__ring_reserve(struct dynobs_ring *r, size_t payload_len,
                                            uint16_t type, uint16_t flags);
void dynobs__ring_commit(struct dynobs_ring *r, struct dynobs_rec_hdr *h);
/* dynobs__ring_commit in two steps, for a producer that writes many
 * bytes into the record: the count (RECORDS_WRITTEN) right after the
 * reservation, then, once the payload is written, the publication. A
 * locked add after the payload's stores would wait for every one of them
 * to reach the cache (lines the consumer last read, on another CPU);
 * right after the reservation it waits for the header's store alone.
 * Counted before the reservation it would wait for nothing, but a
 * producer killed between the two would leave a count that no record in
 * the ring explains (BENCHMARKS.md, "Eighth round"); here a record the
 * kill interrupts is in the ring, and the consumer counts it abandoned.
 * The count runs ahead of the records published by the ones being
 * written, never behind. */
static inline void dynobs__ring_count_written(struct dynobs_ring *r)
{
    __atomic_fetch_add(&r->counters[DYNOBS_CTR_RECORDS_WRITTEN], 1, __ATOMIC_RELAXED);
}
static inline void dynobs__ring_publish(struct dynobs_rec_hdr *h)
{
    uint64_t stamp = __atomic_load_n(&h->stamp, __ATOMIC_RELAXED);
    __atomic_store_n(&h->stamp,
                     (stamp & ~(uint64_t)DYNOBS_STAMP_STATE_MASK) | DYNOBS_STAMP_COMMITTED,
                     __ATOMIC_RELEASE);
}
/* The same reservation, but a refusal is not counted: for a producer
 * that tries another shard before it drops (the caller counts). */
struct dynobs_rec_hdr *dynobs__ring_try_reserve(struct dynobs_ring *r, size_t payload_len,
                                                uint16_t type, uint16_t flags);
/* Both, in a ring that grows (room: its struct dynobs_ring_room; NULL for
 * a ring backed whole). Every producer of a growing ring must use these. */
struct dynobs_rec_hdr *dynobs__ring_reserve_in(struct dynobs_ring *r, struct dynobs_ring_room *room,
                                               size_t payload_len, uint16_t type, uint16_t flags);
static inline struct dynobs_rec_hdr *dynobs__ring_try_reserve_in(struct dynobs_ring *r,
                                                                  struct dynobs_ring_room *room,
                                                                  size_t payload_len,
                                                                  uint16_t type, uint16_t flags);

/* Reserve, copy two pieces, commit. Returns 0 or -ENOSPC (dropped). */
int dynobs__ring_write(struct dynobs_ring *r, uint16_t type, uint16_t flags, const void *a,
                       size_t alen, const void *b, size_t blen);

/* Consumer side, on a read-only mapping. */
struct dynobs_ring_view {
    const uint64_t *head;
    const uint8_t *data;
    uint64_t cap;
    uint32_t max_record;
};

enum dynobs_peek {
    DYNOBS_PEEK_RECORD = 1, /* a record was copied out */
    DYNOBS_PEEK_EMPTY = 0,
    DYNOBS_PEEK_STALLED = -1, /* the record at tail is not committed (yet) */
    DYNOBS_PEEK_CORRUPT = -2, /* the bytes at tail are not a valid record */
};

/* Copies the record at *tail into buf (bufcap >= max_record) and advances
 * *tail past it and past any padding before it. Only committed records
 * are returned; every length is checked against the ring's bounds. */
enum dynobs_peek dynobs__ring_peek(const struct dynobs_ring_view *v, uint64_t *tail,
                                   void *buf, size_t bufcap);

/* Returns the position to continue from after an uncommitted or corrupt
 * record at tail: past a reserved record of valid length, else the next
 * position whose stamp names itself, else the head. Bounded by the head. */
uint64_t dynobs__ring_resync(const struct dynobs_ring_view *v, uint64_t tail);

static inline uint32_t dynobs__rec_size(size_t payload_len)
{
    size_t n = sizeof(struct dynobs_rec_hdr) + payload_len;
    return (uint32_t)((n + DYNOBS_REC_ALIGN - 1) & ~(size_t)(DYNOBS_REC_ALIGN - 1));
}

/* ---- the reservation's usual case, inline in every producer ---- */

/* Where records may go without more memory: short of the backed end by
 * one record header, so that a PAD can always be written at the end of
 * the last record. */
static inline uint64_t dynobs__ring_room_limit(const struct dynobs_ring *r,
                                               struct dynobs_ring_room *room)
{
    if (room) {
        uint64_t b = __atomic_load_n(&room->backed, __ATOMIC_ACQUIRE);
        if (b < r->cap)
            return b - DYNOBS_REC_ALIGN;
    }
    return r->cap;
}

/* The header of a record of `need` bytes reserved at pos, marked
 * reserved. */
static inline struct dynobs_rec_hdr *dynobs__ring_reserved_at(struct dynobs_ring *r, uint64_t pos,
                                                              uint32_t need, uint16_t type,
                                                              uint16_t flags)
{
    struct dynobs_rec_hdr *h = (struct dynobs_rec_hdr *)(r->data + (pos & (r->cap - 1)));
    h->len = need;
    h->type = type;
    h->flags = flags;
    __atomic_store_n(&h->stamp, pos | DYNOBS_STAMP_RESERVED, __ATOMIC_RELEASE);
    return h;
}

/* The reservation's every case (ring.c): retries, the wrap to the start
 * (a PAD) and the growth of what is backed. */
struct dynobs_rec_hdr *dynobs__ring_reserve_slow(struct dynobs_ring *r,
                                                 struct dynobs_ring_room *room, uint32_t need,
                                                 uint16_t type, uint16_t flags);

static inline struct dynobs_rec_hdr *dynobs__ring_try_reserve_in(struct dynobs_ring *r,
                                                              struct dynobs_ring_room *room,
                                                              size_t payload_len, uint16_t type,
                                                              uint16_t flags)
{
    if (payload_len > DYNOBS_MAX_RECORD_BYTES)
        return NULL;
    const uint32_t need = dynobs__rec_size(payload_len);
    /* The usual case, the slow path's first try when it needs neither a
     * PAD nor more memory: room at the head, taken at once. Kept apart
     * so that it costs a few registers, not the loop's. */
    uint64_t pos = __atomic_load_n(r->head, __ATOMIC_RELAXED);
    /* (acquire and release on tail_seen: a producer that trusts another's
     * reading of the tail sees the consumer's reads as done, as that one
     * did) */
    uint64_t used = pos - __atomic_load_n(&r->tail_seen, __ATOMIC_ACQUIRE);
    if (DYNOBS_UNLIKELY(used > r->cap || need > r->cap - used)) {
        uint64_t tail = __atomic_load_n(r->tail, __ATOMIC_ACQUIRE);
        __atomic_store_n(&r->tail_seen, tail, __ATOMIC_RELEASE);
        used = pos - tail;
        if (used > r->cap || need > r->cap - used)
            return dynobs__ring_reserve_slow(r, room, need, type, flags);
    }
    if (DYNOBS_LIKELY((pos & (r->cap - 1)) + need <= dynobs__ring_room_limit(r, room)) &&
        __atomic_compare_exchange_n(r->head, &pos, pos + need, 1, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
        return dynobs__ring_reserved_at(r, pos, need, type, flags);
    return dynobs__ring_reserve_slow(r, room, need, type, flags);
}

#endif
