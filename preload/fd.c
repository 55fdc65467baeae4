/*
 * File-descriptor lifetime: close, dup, dup2 and dup3 keep the fd table
 * right, so that a reused fd number never inherits a stale connection and
 * a dup'ed socket shares its connection state.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn.h"
#include "real.h"

static inline int active(void)
{
    return dynobs__layer_on(DYNOBS_LAYER_PROCESS);
}

DYNOBS_REAL_FN(r_close, close, int, (int fd), (fd), syscall(SYS_close, fd))

/* The close of an fd the table has an entry for: the entry goes first. */
static DYNOBS_PATH(33) int close_entry(int fd)
{
    int saved = DYNOBS_ERRNO_ON;
    dynobs__fd_set(fd, NULL);
    DYNOBS_ERRNO_ON = saved;
    return r_close(fd);
}

/* (every other close, a file's most often, goes to the real call with a
 * jump) */
DYNOBS_API DYNOBS_PATH(33) int close(int fd)
{
    if (active() && dynobs__fd_get(fd))
        return close_entry(fd);
    return r_close(fd);
}

static void carry(int from, int to)
{
    int saved = errno;
    struct dynobs_conn *c = dynobs__fd_get(from);
    if (c || dynobs__fd_get(to))
        dynobs__fd_set(to, c);
    errno = saved;
}

DYNOBS_API int dup(int fd)
{
    int (*fn)(int) = DYNOBS_REAL(dup);
    int r = fn ? fn(fd) : (int)syscall(SYS_dup, fd);
    if (r >= 0 && active())
        carry(fd, r);
    return r;
}

DYNOBS_API int dup2(int fd, int fd2)
{
    int (*fn)(int, int) = DYNOBS_REAL(dup2);
    int r = fn ? fn(fd, fd2) : (int)syscall(SYS_dup3, fd, fd2, 0);
    if (r >= 0 && fd != fd2 && active())
        carry(fd, fd2);
    return r;
}

DYNOBS_API int dup3(int fd, int fd2, int flags)
{
    int (*fn)(int, int, int) = DYNOBS_REAL(dup3);
    int r = fn ? fn(fd, fd2, flags) : (int)syscall(SYS_dup3, fd, fd2, flags);
    if (r >= 0 && active())
        carry(fd, fd2);
    return r;
}
