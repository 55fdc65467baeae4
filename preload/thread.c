/*
 * Per-thread blocks: the context stack (context.c), the span pool
 * (span.c) and the id generator of one thread. Blocks come from mmap (never malloc, which the
 * host may have replaced or be inside of), are reused after their thread
 * exits, and are never unmapped: a span started by a thread that has
 * exited can still be ended from another one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "state.h"

__thread struct dynobs_tls dynobs__tls DYNOBS_TLS;
#ifdef DYNOBS_TLS_OFFSETS
intptr_t dynobs__tls_off DYNOBS_HOT_DATA;
intptr_t dynobs__errno_off DYNOBS_HOT_DATA;

DYNOBS_COLD void dynobs__tls_learn(void)
{
    char *tp = __builtin_thread_pointer();
    __atomic_store_n(&dynobs__errno_off, (intptr_t)((char *)&errno - tp), __ATOMIC_RELAXED);
    __atomic_store_n(&dynobs__tls_off, (intptr_t)((char *)&dynobs__tls - tp), __ATOMIC_RELAXED);
}
#endif
static struct dynobs_thread *all; /* push-only list of every block */
/* The key whose destructor gives a thread's block back at its exit. It
 * is made when the process takes its first block, not at start: at start
 * pthread_key_create cost every process a lazy binding and a page of
 * libc's data (about 800 instructions and a page fault), for nothing in
 * one that never records. KEY_MAKING elects the one thread that makes it;
 * the others wait for it (see key_ready). */
enum { KEY_NONE, KEY_MAKING, KEY_MADE, KEY_FAILED };
static pthread_key_t exit_key;
static int key_state;
static uint32_t next_ordinal;

/* Thread exit (the key's destructor runs on the exiting thread). The
 * block goes back for reuse; `dynobs__tls.self` is cleared first, so that a span made
 * by a later TLS destructor of this thread takes a block of its own
 * instead of sharing this one with the next thread that adopts it. */
static void release(void *p)
{
    struct dynobs_thread *t = p;
    if (!t)
        return;
    if (dynobs__tls.self == t) {
        /* Its requests still in flight stay counted on the block, for
         * the thread that takes it next (context.c). */
        __atomic_fetch_sub(&t->serving_elsewhere, dynobs__tls.serving, __ATOMIC_RELAXED);
        dynobs__tls.serving = 0;
        dynobs__tls.self = NULL;
    }
    t->depth = 0;
    __atomic_store_n(&t->owned, 0, __ATOMIC_RELEASE);
}

/* 1 once the key is made. A thread that finds another making it waits
 * (a few microseconds), so that no block goes without it; that other
 * thread is never this one interrupted by a signal: adopt() sets `dynobs__tls.self`
 * before it gets here, and a handler on a thread with a block never
 * comes here. The wait is bounded all the same: a child forked while a
 * thread of its parent was making the key finds it being made forever
 * (dynobs__thread_after_fork starts it over). */
static int key_ready(void)
{
    int s = __atomic_load_n(&key_state, __ATOMIC_ACQUIRE);
    if (DYNOBS_LIKELY(s == KEY_MADE))
        return 1;
    if (s == KEY_NONE && __atomic_compare_exchange_n(&key_state, &s, KEY_MAKING, 0,
                                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        s = pthread_key_create(&exit_key, release) == 0 ? KEY_MADE : KEY_FAILED;
        __atomic_store_n(&key_state, s, __ATOMIC_RELEASE);
        return s == KEY_MADE;
    }
    if (s == KEY_MAKING) {
        uint64_t deadline = dynobs__mono_ns() + 20 * 1000 * 1000;
        while ((s = __atomic_load_n(&key_state, __ATOMIC_ACQUIRE)) == KEY_MAKING &&
               dynobs__mono_ns() < deadline)
            sched_yield();
    }
    return s == KEY_MADE;
}

static void adopt(struct dynobs_thread *t)
{
    struct dynobs_tls *me = &dynobs__tls;
    me->tid = (uint32_t)syscall(SYS_gettid);
    me->ordinal = __atomic_fetch_add(&next_ordinal, 1, __ATOMIC_RELAXED);
    me->serving = 0;
    me->rules_next_ns = 0;
    me->clk.tsc = me->clk.ns = 0;
    dynobs__rng_seed(&me->rng);
    t->depth = 0;
    t->bag_used = 0; /* a previous thread's API baggage went with its stack */
    dynobs__tls.self = t; /* (before the key: see key_ready) */
    if (key_ready())
        pthread_setspecific(exit_key, t);
}

DYNOBS_COLD struct dynobs_thread *dynobs__thread_new(void)
{
    struct dynobs_thread *t;
    if (!dynobs__on())
        return NULL;
    dynobs__first_use();
    /* Reuse the block of a thread that has exited. */
    for (t = __atomic_load_n(&all, __ATOMIC_ACQUIRE); t; t = t->next) {
        int free_ = 0;
        if (__atomic_load_n(&t->owned, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&t->owned, &free_, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            adopt(t);
            return t;
        }
    }
    void *m = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    t = m; /* zero-filled */
    t->owned = 1;
    struct dynobs_thread *head = __atomic_load_n(&all, __ATOMIC_RELAXED);
    do
        t->next = head;
    while (!__atomic_compare_exchange_n(&all, &head, t, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    adopt(t);
    return t;
}

struct dynobs_thread *dynobs__thread_if_any(void)
{
    return dynobs__tls.self;
}

void dynobs__thread_after_fork(void)
{
    /* Only the forking thread exists in the child: the other blocks are
     * free for its future threads. Their open spans died with them. */
    for (struct dynobs_thread *t = all; t; t = t->next) {
        if (t != dynobs__tls.self) {
            t->owned = 0;
            t->depth = 0;
            t->serving_elsewhere = 0;
            t->pool_used = 0;
            t->pool_freed = 0;
        }
    }
    /* A key being made by a thread of the parent is never finished here. */
    int making = KEY_MAKING;
    __atomic_compare_exchange_n(&key_state, &making, KEY_NONE, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_RELAXED);
    if (dynobs__tls.self) {
        dynobs__tls.tid = (uint32_t)syscall(SYS_gettid);
        dynobs__rng_seed(&dynobs__tls.rng);
    }
}
