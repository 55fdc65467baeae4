#include "ptrtab.h"

#include <sys/mman.h>

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

void *dynobs__ptrtab_state_new(struct dynobs_ptrslot *tab, const void *key, size_t size,
                               int *fresh)
{
    struct dynobs_ptrslot *e = dynobs__ptrtab_claim(tab, key);
    if (!e)
        return NULL;
    if (!e->val) {
        void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            dynobs__ptrtab_release(e);
            return NULL;
        }
        e->val = m;
    }
    *fresh = 1;
    return e->val;
}
