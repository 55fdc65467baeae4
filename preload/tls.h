/*
 * The shim's thread-local words, and libc's errno, read without the GOT.
 *
 * A thread-local variable of the initial-exec model is reached at a fixed
 * offset from the thread pointer (%fs on x86-64), the same offset in every
 * thread; the compiler loads that offset from the GOT at each access. On a
 * kernel whose system calls empty the TLB (page-table isolation without
 * PCID, as on this project's VMs), the GOT's page is one more page walk in
 * each stretch between two system calls where the shim runs
 * (BENCHMARKS.md, "Eighteenth round"). The hot reads here take the offset
 * from a word on the page of the shim's hot data (DYNOBS_HOT_DATA) instead,
 * learnt once per process: the same load, from a page the request touches
 * anyway. errno, libc's own initial-exec variable, is reached the same way
 * rather than through a call of __errno_location through the PLT.
 *
 * Elsewhere (other architectures, compilers without GCC's named address
 * spaces) the plain thread-local access and errno are used.
 */
#ifndef DYNOBS_PRELOAD_TLS_H
#define DYNOBS_PRELOAD_TLS_H

#include <errno.h>
#include <stdint.h>

#include "../common/clock.h"
#include "../common/ids.h"
#include "../common/util.h"

struct dynobs_thread;

struct dynobs_tls {
    struct dynobs_thread *self; /* the thread's block (state.h, thread.c) */
    /* The words of the thread that its requests read every time (span ids,
     * timestamps, the rules' clock, its ring shard, what it serves): here
     * rather than at the start of its block, where they were one more page
     * in each stretch between system calls that begins or ends a request
     * (BENCHMARKS.md, "Twentieth round"); this block is on a page the
     * stretch touches anyway (self). Set when the thread takes its block
     * (thread.c, adopt), and only ever read by the thread itself. */
    struct dynobs_rng rng;
    struct dynobs_clock_anchor clk;
    uint64_t rules_next_ns; /* dynobs__rules_now_within (rulesmap.h) */
    uint32_t tid;
    uint32_t ordinal; /* picks the ring shard: ordinal % shards */
    /* Requests read on non-blocking streams in flight, as this thread
     * counts them: begun here, less those it ended and those other
     * threads did (the block's serving_elsewhere, folded in when this
     * count reaches 2: context.c). */
    uint32_t serving;
    int guard;            /* dynobs's own code runs (state.h) */
    uint32_t inside;      /* layers running the call (state.h) */
    uint8_t multiplexing; /* the thread multiplexes (context.h) */
    /* (one line, so never across two pages) */
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct dynobs_tls) == 64, "dynobs__tls is one line: never across two pages");
extern __thread struct dynobs_tls dynobs__tls __attribute__((tls_model("initial-exec")))
DYNOBS_INTERNAL;

/* (Not under the sanitizers, which take an access through %fs for one at
 * the address the offset makes, and check its shadow there.) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DYNOBS_TLS_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                     \
    __has_feature(memory_sanitizer)
#define DYNOBS_TLS_PLAIN 1
#endif
#endif

#if defined(__x86_64__) && defined(__SEG_FS) && !defined(DYNOBS_TLS_PLAIN)
#define DYNOBS_TLS_OFFSETS 1
/* The offsets from the thread pointer of dynobs__tls and of libc's errno;
 * 0 until learnt (a static TLS offset is never 0 on x86-64: the blocks lie
 * below the thread control block). */
extern intptr_t dynobs__tls_off DYNOBS_INTERNAL;
extern intptr_t dynobs__errno_off DYNOBS_INTERNAL;
/* Learns both (any thread, any time: the values are the same for all). */
DYNOBS_COLD void dynobs__tls_learn(void) DYNOBS_INTERNAL;

/* One of the two offsets, learnt at its first use. A plain load, not an
 * atomic one, so that the compiler reads it once in a function that asks
 * several times: the only store that can race with it (dynobs__tls_learn,
 * on another thread, at the process's first uses) writes the value it
 * then holds for good, an aligned word that no load can see torn. */
static inline __attribute__((always_inline)) intptr_t dynobs__tls_offset(const intptr_t *off)
{
    intptr_t v = *off;
    if (DYNOBS_UNLIKELY(!v)) {
        dynobs__tls_learn();
        v = __atomic_load_n(off, __ATOMIC_RELAXED);
    }
    return v;
}

/* A field of the calling thread's dynobs__tls, and its errno (lvalues). */
#define DYNOBS_TLS_HERE(field)                                                                 \
    (((struct dynobs_tls __seg_fs *)dynobs__tls_offset(&dynobs__tls_off))->field)
#define DYNOBS_ERRNO (*(int __seg_fs *)dynobs__tls_offset(&dynobs__errno_off))

/* The same where dynobs is known to be on: the caller read dynobs__state
 * == DYNOBS_ON (with acquire), or holds what only exists once it was (a
 * traced connection, a span, a thread block). dynobs__init learns both
 * offsets before it turns the state on, so they are read without the
 * test: on a served request's way the tests were about 30 of its
 * instructions (BENCHMARKS.md, "Nineteenth round"). */
#define DYNOBS_TLS_ON(field) (((struct dynobs_tls __seg_fs *)dynobs__tls_off)->field)
#define DYNOBS_ERRNO_ON (*(int __seg_fs *)dynobs__errno_off)
/* The same where nothing may be called (a fast path that only jumps): the
 * field, or 0 while the offset is not learnt yet. */
#define DYNOBS_TLS_KNOWN(field)                                                                \
    ({                                                                                         \
        intptr_t off_ = dynobs__tls_off;                                                       \
        off_ ? ((struct dynobs_tls __seg_fs *)off_)->field : 0;                                \
    })
/* The calling thread's dynobs__tls, as a plain pointer, where dynobs is
 * known to be on (as DYNOBS_TLS_ON). */
static inline struct dynobs_tls *dynobs__me(void)
{
    return (struct dynobs_tls *)(void *)((char *)__builtin_thread_pointer() + dynobs__tls_off);
}
#else
#define DYNOBS_TLS_HERE(field) (dynobs__tls.field)
#define DYNOBS_ERRNO errno
#define DYNOBS_TLS_ON(field) (dynobs__tls.field)
#define DYNOBS_ERRNO_ON errno
#define DYNOBS_TLS_KNOWN(field) (dynobs__tls.field)
static inline struct dynobs_tls *dynobs__me(void)
{
    return &dynobs__tls;
}
#endif

#endif
