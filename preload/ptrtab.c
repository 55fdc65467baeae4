#include "ptrtab.h"

#define PROBES 32u
#define TOMBSTONE ((void *)1)

static unsigned home(const void *key)
{
    return (unsigned)(dynobs__mix64((uint64_t)(uintptr_t)key) & (DYNOBS_PTRTAB_SIZE - 1));
}

struct dynobs_ptrslot *dynobs__ptrtab_find(struct dynobs_ptrslot *tab, const void *key)
{
    unsigned h = home(key);
    for (unsigned i = 0; i < PROBES; i++) {
        struct dynobs_ptrslot *e = &tab[(h + i) & (DYNOBS_PTRTAB_SIZE - 1)];
        void *k = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
        if (k == key)
            return e;
        if (!k)
            return NULL;
    }
    return NULL;
}

struct dynobs_ptrslot *dynobs__ptrtab_claim(struct dynobs_ptrslot *tab, const void *key)
{
    unsigned h = home(key);
    for (unsigned i = 0; i < PROBES; i++) {
        struct dynobs_ptrslot *e = &tab[(h + i) & (DYNOBS_PTRTAB_SIZE - 1)];
        void *k = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
        if ((!k || k == TOMBSTONE) &&
            __atomic_compare_exchange_n(&e->key, &k, (void *)key, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return e;
    }
    return NULL;
}

void dynobs__ptrtab_release(struct dynobs_ptrslot *e)
{
    __atomic_store_n(&e->key, TOMBSTONE, __ATOMIC_RELEASE);
}
