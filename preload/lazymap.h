/*
 * Tables mapped at first use. A fixed table sized for a busy process
 * (route trie nodes, curl handles, watches...) kept in .bss makes the
 * loader map anonymous memory for it in every process that preloads the
 * library, also in the many that never use the feature (host-wide mode:
 * every process on the host). Such a table is a pointer instead, NULL
 * until the first use that needs to write it, then an anonymous mapping,
 * zeroed as .bss was, and never unmapped: other threads may hold pointers
 * into it. A forked child inherits the mapping (its own copy, as .bss).
 */
#ifndef DYNOBS_PRELOAD_LAZYMAP_H
#define DYNOBS_PRELOAD_LAZYMAP_H

#include <stddef.h>

#include "../common/util.h"

/* The table at *slot, mapped (bytes long, zeroed) when it is not yet;
 * NULL when the mapping fails, and the caller fails open as it does when
 * the table is full. Threads racing to map it agree on one mapping (the
 * losers unmap theirs). Not async-signal-safe in the first call only:
 * paths that cannot map (the crash handler, the fork handlers) use
 * dynobs__lazymap_peek and treat NULL as "nothing there". */
void *dynobs__lazymap_map(void **slot, size_t bytes) DYNOBS_INTERNAL;

/* The table at *slot, or NULL when nobody has needed it yet: for lookups
 * that only read (a key never stored in a table never mapped is simply
 * not found). */
static inline void *dynobs__lazymap_peek(void *const *slot)
{
    return __atomic_load_n(slot, __ATOMIC_ACQUIRE);
}

/* Inline: one load and a well-predicted test once the table is mapped. */
static inline void *dynobs__lazymap(void **slot, size_t bytes)
{
    void *t = dynobs__lazymap_peek(slot);
    return DYNOBS_LIKELY(t != NULL) ? t : dynobs__lazymap_map(slot, bytes);
}

#endif
