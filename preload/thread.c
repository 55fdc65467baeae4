/*
 * Per-thread blocks: the context stack (context.c), the span pool
 * (span.c) and the id generator of one thread. Blocks come from mmap (never malloc, which the
 * host may have replaced or be inside of), are reused after their thread
 * exits, and are never unmapped: a span started by a thread that has
 * exited can still be ended from another one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "state.h"

static __thread struct dynobs_thread *self DYNOBS_TLS;
static struct dynobs_thread *all; /* push-only list of every block */
/* (set at start: kept off the .bss, see DYNOBS_START_DATA) */
static pthread_key_t exit_key DYNOBS_START_DATA;
static int have_key DYNOBS_START_DATA;
static uint32_t next_ordinal;

/* Thread exit (the key's destructor runs on the exiting thread). The
 * block goes back for reuse; `self` is cleared first, so that a span made
 * by a later TLS destructor of this thread takes a block of its own
 * instead of sharing this one with the next thread that adopts it. */
static void release(void *p)
{
    struct dynobs_thread *t = p;
    if (!t)
        return;
    if (self == t)
        self = NULL;
    t->depth = 0;
    __atomic_store_n(&t->owned, 0, __ATOMIC_RELEASE);
}

DYNOBS_START_TEXT
void dynobs__thread_init_key(void)
{
    if (!have_key && pthread_key_create(&exit_key, release) == 0)
        have_key = 1;
}

static void adopt(struct dynobs_thread *t)
{
    t->tid = (uint32_t)syscall(SYS_gettid);
    t->ordinal = __atomic_fetch_add(&next_ordinal, 1, __ATOMIC_RELAXED);
    t->depth = 0;
    t->bag_used = 0; /* a previous thread's API baggage went with its stack */
    t->clk.tsc = t->clk.ns = 0;
    dynobs__rng_seed(&t->rng);
    self = t;
    if (have_key)
        pthread_setspecific(exit_key, t);
}

struct dynobs_thread *dynobs__thread(void)
{
    struct dynobs_thread *t = self;
    if (DYNOBS_LIKELY(t != NULL))
        return t;
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
    return self;
}

void dynobs__thread_after_fork(void)
{
    /* Only the forking thread exists in the child: the other blocks are
     * free for its future threads. Their open spans died with them. */
    for (struct dynobs_thread *t = all; t; t = t->next) {
        if (t != self) {
            t->owned = 0;
            t->depth = 0;
            t->pool_used = 0;
            t->pool_freed = 0;
        }
    }
    if (self) {
        self->tid = (uint32_t)syscall(SYS_gettid);
        dynobs__rng_seed(&self->rng);
    }
}
