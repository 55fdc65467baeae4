/*
 * Event loops waiting: epoll_wait, poll, select and their kin. A thread
 * that waits for events has finished what the last read triggered, so its
 * loop context (context.h) ends here, before and after the wait. Nothing
 * else changes: each interposer calls the next definition with the same
 * arguments and returns what it returned, errno included.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include "context.h"
#include "state.h"

/* One interposer per libc entry point, each with its own cached pointer. */
#define WAIT(ret, name, params, args)                                                      \
    DYNOBS_API ret name params                                                             \
    {                                                                                      \
        static void *slot;                                                                 \
        ret(*fn) params = (ret(*) params)dynobs__lookup(&slot, #name, NULL);               \
        if (!fn) {                                                                         \
            errno = ENOSYS;                                                                \
            return -1;                                                                     \
        }                                                                                  \
        dynobs__loop_turn();                                                               \
        ret r_ = fn args;                                                                  \
        dynobs__loop_turn();                                                               \
        return r_;                                                                         \
    }

WAIT(int, epoll_wait, (int epfd, struct epoll_event *ev, int max, int timeout),
     (epfd, ev, max, timeout))
WAIT(int, epoll_pwait,
     (int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask),
     (epfd, ev, max, timeout, mask))
WAIT(int, epoll_pwait2,
     (int epfd, struct epoll_event *ev, int max, const struct timespec *timeout,
      const sigset_t *mask),
     (epfd, ev, max, timeout, mask))
WAIT(int, poll, (struct pollfd *fds, nfds_t n, int timeout), (fds, n, timeout))
WAIT(int, __poll_chk, (struct pollfd *fds, nfds_t n, int timeout, size_t fdslen),
     (fds, n, timeout, fdslen))
WAIT(int, ppoll,
     (struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask),
     (fds, n, timeout, mask))
WAIT(int, __ppoll_chk,
     (struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask,
      size_t fdslen),
     (fds, n, timeout, mask, fdslen))
WAIT(int, select, (int n, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *timeout),
     (n, rd, wr, ex, timeout))
WAIT(int, pselect,
     (int n, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *timeout,
      const sigset_t *mask),
     (n, rd, wr, ex, timeout, mask))
