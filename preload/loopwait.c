/*
 * Event loops: a thread that waits with epoll serves many streams at
 * once, and from then on it multiplexes requests (context.h): nothing is
 * bound to it any more. Each interposer marks the thread (one test and,
 * the first time, one store) and calls the next definition with the same
 * arguments, returning what it returned, errno included.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>

#include "real.h"
#include "state.h"

/* The first wait of a thread: it multiplexes. */
__attribute__((noinline)) static void first_wait(void)
{
    int saved = errno;
    dynobs__ctx_multiplexing(dynobs__thread_if_any());
    errno = saved;
}

/* One interposer per libc entry point, each with its own cached pointer;
 * order: its place among the path sections (common/util.h, DYNOBS_PATH):
 * epoll_wait and epoll_pwait with the read of a request, epoll_pwait2
 * (rarer) out of that page. A thread that multiplexes already (or any,
 * while dynobs is off), once the pointer is cached, goes to the call with
 * a jump; the rest (the lookup, the first wait) is out of line, where it
 * saved registers on every call. */
#define WAIT(order, ret, name, params, args)                                               \
    static void *name##_slot DYNOBS_HOT_DATA;                                              \
    static DYNOBS_COLD ret name##_first params                                             \
    {                                                                                      \
        DYNOBS_NEXT_IN_OR_ENOSYS(fn, name##_slot, ret, name, params)                       \
        if (!DYNOBS_TLS_HERE(multiplexing) && dynobs__layer_on(DYNOBS_LAYER_PROCESS))         \
            first_wait();                                                                  \
        return fn args;                                                                    \
    }                                                                                      \
    DYNOBS_API DYNOBS_PATH(order) ret name params                                            \
    {                                                                                      \
        ret(*fn) params = (ret(*) params)__atomic_load_n(&name##_slot, __ATOMIC_ACQUIRE);  \
        if (DYNOBS_LIKELY(fn != NULL) &&                                                   \
            (DYNOBS_TLS_KNOWN(multiplexing) ||                                                       \
             __atomic_load_n(&dynobs__state, __ATOMIC_ACQUIRE) != DYNOBS_ON))               \
            return fn args;                                                                \
        return name##_first args;                                                          \
    }

WAIT(14, int, epoll_wait, (int epfd, struct epoll_event *ev, int max, int timeout),
     (epfd, ev, max, timeout))
WAIT(15, int, epoll_pwait,
     (int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask),
     (epfd, ev, max, timeout, mask))
WAIT(35, int, epoll_pwait2,
     (int epfd, struct epoll_event *ev, int max, const struct timespec *timeout,
      const sigset_t *mask),
     (epfd, ev, max, timeout, mask))
