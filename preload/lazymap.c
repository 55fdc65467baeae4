#include "lazymap.h"

#include <sys/mman.h>

void *dynobs__lazymap_map(void **slot, size_t bytes)
{
    /* Private anonymous memory is zeroed, as the .bss it replaces. No
     * swap is reserved for it: only the pages a table fills are touched,
     * and a table is sized for the busiest process. */
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return dynobs__lazymap_peek(slot); /* another thread's, or NULL */
    void *none = NULL;
    if (__atomic_compare_exchange_n(slot, &none, m, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return m;
    /* Another thread installed its mapping first; nobody has seen ours. */
    munmap(m, bytes);
    return none;
}
