/*
 * The real functions behind every interposer, in one table, each entry
 * bound with dlsym(RTLD_NEXT, ...) at its first use.
 */
#ifndef DYNOBS_PRELOAD_REAL_H
#define DYNOBS_PRELOAD_REAL_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../common/util.h"

struct dynobs_real_fns {
    /* The calls of a served or made request first: one cache line. */
    int (*close)(int fd);
    ssize_t (*read)(int fd, void *buf, size_t n);
    ssize_t (*write)(int fd, const void *buf, size_t n);
    ssize_t (*recv)(int fd, void *buf, size_t n, int flags);
    ssize_t (*send)(int fd, const void *buf, size_t n, int flags);
    ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*recvfrom)(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
                      socklen_t *fromlen);
    ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
    /* The rest. */
    ssize_t (*readv)(int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
    ssize_t (*sendto)(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
                      socklen_t tolen);
    ssize_t (*sendfile)(int out_fd, int in_fd, off_t *offset, size_t count);
    ssize_t (*sendfile64)(int out_fd, int in_fd, off_t *offset, size_t count);
    int (*dup)(int fd);
    int (*dup2)(int fd, int fd2);
    int (*dup3)(int fd, int fd2, int flags);
    int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
    int (*accept)(int fd, struct sockaddr *addr, socklen_t *len);
    int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
    ssize_t (*read_chk)(int fd, void *buf, size_t n, size_t buflen);
    ssize_t (*recv_chk)(int fd, void *buf, size_t n, size_t buflen, int flags);
    ssize_t (*recvfrom_chk)(int fd, void *buf, size_t n, size_t buflen, int flags,
                      struct sockaddr *from, socklen_t *fromlen);
    void (*vsyslog)(int pri, const char *fmt, va_list ap);
    void (*vsyslog_chk)(int pri, int flag, const char *fmt, va_list ap);
};

extern struct dynobs_real_fns dynobs__real DYNOBS_INTERNAL;

/* Binds entry number slot (its index in the struct, all pointers). Safe
 * to call more than once and from an interposer that runs before the
 * constructor; see real.c for recursion. */
void dynobs__real_bind_one(size_t slot) DYNOBS_INTERNAL;

/* The bound pointer of an entry, binding first if needed; NULL only while
 * dlsym itself is running on this thread (callers then use the raw
 * system call). One atomic load, whose value is the one used: two threads
 * may bind an entry at once (the same pointer), and a plain second read
 * would race with the other one's store. */
#define DYNOBS_REAL(name)                                                                  \
    ({                                                                                     \
        __typeof__(dynobs__real.name) real_ = __atomic_load_n(&dynobs__real.name,          \
                                                              __ATOMIC_ACQUIRE);           \
        if (__builtin_expect(real_ == NULL, 0)) {                                          \
            dynobs__real_bind_one(offsetof(struct dynobs_real_fns, name) / sizeof(void *)); \
            real_ = __atomic_load_n(&dynobs__real.name, __ATOMIC_ACQUIRE);                 \
        }                                                                                  \
        real_;                                                                             \
    })

/* rname params: the real name args on a hot path. Once bound, a load, a
 * test and a jump; the binding, and the raw system call raw while dlsym
 * runs, are rname_unbound's, a DYNOBS_COLD function: inline (DYNOBS_REAL),
 * they made every call save the registers they need. */
#define DYNOBS_REAL_FN(rname, name, ret, params, args, raw)                                \
    static DYNOBS_COLD ret rname##_unbound params                                         \
    {                                                                                      \
        __typeof__(dynobs__real.name) fn_ = DYNOBS_REAL(name);                             \
        return fn_ ? fn_ args : (ret)(raw);                                                \
    }                                                                                      \
    static inline ret rname params                                                         \
    {                                                                                      \
        __typeof__(dynobs__real.name) f_ = __atomic_load_n(&dynobs__real.name,             \
                                                           __ATOMIC_ACQUIRE);              \
        return DYNOBS_LIKELY(f_ != NULL) ? f_ args : rname##_unbound args;                 \
    }

/* The start of an interposer of an int-returning function that has no
 * entry in the table: fn becomes the next definition of name (looked up
 * once, cached in slot), or the call fails with ENOSYS, as the missing
 * function would. Needs <errno.h> and state.h. */
#define DYNOBS_NEXT_IN_OR_ENOSYS(fn, slot, ret, name, params)                              \
    ret(*fn) params = (ret(*) params)dynobs__lookup(&slot, #name, NULL);                   \
    if (!fn) {                                                                             \
        errno = ENOSYS;                                                                    \
        return -1;                                                                         \
    }
/* The same, with a slot of its own. */
#define DYNOBS_NEXT_OR_ENOSYS(fn, ret, name, params)                                       \
    static void *fn##_slot DYNOBS_HOT_DATA;                                                \
    DYNOBS_NEXT_IN_OR_ENOSYS(fn, fn##_slot, ret, name, params)

#endif
