/*
 * The requests traced threads serve, for the parents of their outbound
 * calls: a thread that read a request and has not answered it serves it;
 * one with two in flight, or that waits in epoll (it serves whatever is
 * ready), serves none that a call can be tied to; in a Go program no
 * thread does (goroutines move between threads). A small table by
 * (process, thread), open addressing over 16 probes: a thread that finds
 * no room is simply not linked.
 */
#include <string.h>

#include "internal.h"

#define THREADS_MAX 4096


struct ethread {
    int pid, tid;
    int inflight;
    int mux;
    struct ectx ctx;
};
static struct ethread threads[THREADS_MAX];

static struct ethread *thread_of(int pid, int tid, int create)
{
    for (int i = 0; i < 16; i++) {
        struct ethread *t = &threads[((unsigned)tid * 2654435761u + (unsigned)i) % THREADS_MAX];
        if (t->pid == pid && t->tid == tid)
            return t;
    }
    for (int i = 0; create && i < 16; i++) {
        struct ethread *t = &threads[((unsigned)tid * 2654435761u + (unsigned)i) % THREADS_MAX];
        if (!t->inflight && !t->mux) {
            t->pid = pid;
            t->tid = tid;
            return t;
        }
    }
    return NULL;
}

const struct ectx *dynobs__ethread_ctx(int pid, int tid)
{
    struct eproc *p = dynobs__eproc(pid, EPROC_FIND);
    if (p && p->go)
        return NULL;
    struct ethread *t = thread_of(pid, tid, 0);
    return t && t->inflight == 1 && !t->mux ? &t->ctx : NULL;
}

void dynobs__ethread_mux(int pid, int tid)
{
    struct ethread *t = thread_of(pid, tid, 1);
    if (t)
        t->mux = 1;
}

void dynobs__ethread_enter(int pid, int tid, const struct ectx *c)
{
    struct ethread *t = thread_of(pid, tid, 1);
    if (!t)
        return;
    t->inflight++;
    t->ctx = *c;
}

void dynobs__ethread_leave(int pid, int tid)
{
    struct ethread *t = thread_of(pid, tid, 0);
    if (t && t->inflight > 0)
        t->inflight--;
}

void dynobs__ethread_forget(int pid)
{
    for (int i = 0; i < THREADS_MAX; i++)
        if (threads[i].pid == pid)
            memset(&threads[i], 0, sizeof threads[i]);
}
