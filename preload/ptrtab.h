/*
 * Tables keyed by a pointer the application owns (an SSL session, a curl
 * handle, a PGconn): open addressing, lock-free. A key is claimed with a
 * compare-and-swap and released as a tombstone; the value of a released
 * slot is kept, so that the memory it points to can serve the next key.
 */
#ifndef DYNOBS_PRELOAD_PTRTAB_H
#define DYNOBS_PRELOAD_PTRTAB_H

#include "state.h"

#define DYNOBS_PTRTAB_SIZE 4096u /* slots per table, a power of two */

struct dynobs_ptrslot {
    void *key;
    void *val;
};

/* The slot of key, or NULL. */
struct dynobs_ptrslot *dynobs__ptrtab_find(struct dynobs_ptrslot *tab, const void *key)
    DYNOBS_INTERNAL;
/* A slot for a key that is not in the table; NULL when the neighbourhood
 * is full (the caller then goes untraced for that key). */
struct dynobs_ptrslot *dynobs__ptrtab_claim(struct dynobs_ptrslot *tab, const void *key)
    DYNOBS_INTERNAL;
void dynobs__ptrtab_release(struct dynobs_ptrslot *e) DYNOBS_INTERNAL;

/* The state kept for key (a value of `size` bytes): the one found, or,
 * with create, a slot claimed for key whose state is the one its previous
 * key left or a new mapping; *fresh is 1 then, and the caller resets what
 * it needs. NULL when there is none. */
void *dynobs__ptrtab_state_new(struct dynobs_ptrslot *tab, const void *key, size_t size,
                               int *fresh) DYNOBS_INTERNAL;
/* Inline: the lookup of a known key is on every libpq and libcurl call. */
static inline void *dynobs__ptrtab_state(struct dynobs_ptrslot *tab, const void *key,
                                         size_t size, int create, int *fresh)
{
    struct dynobs_ptrslot *e = dynobs__ptrtab_find(tab, key);
    *fresh = 0;
    if (e || !create)
        return e ? e->val : NULL;
    return dynobs__ptrtab_state_new(tab, key, size, fresh);
}

#endif
