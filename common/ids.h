/*
 * Random trace and span ids: a per-thread wyrand generator seeded from
 * getrandom(). Fast (one multiply per 8 bytes), needs no lock because
 * every thread owns its state, and reseeded in a child after fork() so that
 * parent and child never produce the same ids.
 */
#ifndef DYNOBS_COMMON_IDS_H
#define DYNOBS_COMMON_IDS_H

#include <stdint.h>

struct dynobs_rng {
    uint64_t state;
};

/* Seeds from the kernel (getrandom, falling back to time, pid and the
 * state's address); async-signal-safe. */
void dynobs__rng_seed(struct dynobs_rng *r);

static inline uint64_t dynobs__rng_next(struct dynobs_rng *r)
{
    r->state += 0xa0761d6478bd642full;
    __uint128_t m = (__uint128_t)r->state * (r->state ^ 0xe7037ed1a0b428dbull);
    return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

/* Fills a non-zero id of n bytes (8 or 16). All 16 bytes of a trace id are
 * random, which is what the W3C random flag promises for the right 7. */
void dynobs__rng_id(struct dynobs_rng *r, uint8_t *id, unsigned n);

#endif
