/*
 * libc calls of the shim made as system calls (common/glibc_symver.h): the
 * libc functions of the same names come at symbol versions of their own
 * (GLIBC_2.4, 2.25, 2.33 on x86-64), and a version a library needs is a
 * cost at every process start, whether the call is ever made or not.
 * Same results and errno as the libc functions, which on Linux are these
 * system calls; where an architecture lacks one, the libc function.
 */
#ifndef DYNOBS_COMMON_SYS_H
#define DYNOBS_COMMON_SYS_H

#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static inline int dynobs__openat(int dfd, const char *path, int flags, mode_t mode)
{
    return (int)syscall(SYS_openat, dfd, path, flags, mode);
}

static inline int dynobs__unlinkat(int dfd, const char *path, int flags)
{
    return (int)syscall(SYS_unlinkat, dfd, path, flags);
}

static inline int dynobs__renameat(int from_dfd, const char *from, int to_dfd, const char *to)
{
#ifdef SYS_renameat
    return (int)syscall(SYS_renameat, from_dfd, from, to_dfd, to);
#else
    return renameat(from_dfd, from, to_dfd, to);
#endif
}

static inline int dynobs__fstat(int fd, struct stat *st)
{
#if defined(SYS_fstat) && defined(__x86_64__)
    /* (x86-64: the kernel's struct stat is libc's) */
    return (int)syscall(SYS_fstat, fd, st);
#else
    return fstat(fd, st);
#endif
}

static inline ssize_t dynobs__getrandom(void *buf, size_t n, unsigned flags)
{
    return (ssize_t)syscall(SYS_getrandom, buf, n, flags);
}

#endif
