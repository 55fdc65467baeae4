/*
 * Privilege drops. A server started as root often forks workers that give
 * up root (nginx, Apache, PostgreSQL-style daemons) and can then no longer
 * create files in the segment directory. A process that is about to
 * change its credentials or its root directory creates its segment first,
 * while it still can; once mapped, the segment stays writable whatever
 * the process becomes. Only a process that is root at the time does so:
 * others lose nothing by waiting for their first record.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <unistd.h>

#include "state.h"
#include "real.h"

static void before_drop(void)
{
    if (!dynobs__layer_on(DYNOBS_LAYER_PROCESS) || geteuid() != 0)
        return;
    int saved = errno;
    (void)dynobs__segment();
    errno = saved;
}

/* One interposer per libc entry point: find the next definition, create
 * the segment if root is about to be given up, then call it. */
#define DROP(ret, name, params, args)                                                      \
    DYNOBS_API ret name params                                                             \
    {                                                                                      \
        DYNOBS_NEXT_OR_ENOSYS(fn, ret, name, params)                                       \
        before_drop();                                                                     \
        return fn args;                                                                    \
    }

DROP(int, setuid, (uid_t u), (u))
DROP(int, setgid, (gid_t g), (g))
DROP(int, seteuid, (uid_t u), (u))
DROP(int, setegid, (gid_t g), (g))
DROP(int, setreuid, (uid_t r, uid_t e), (r, e))
DROP(int, setregid, (gid_t r, gid_t e), (r, e))
DROP(int, setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s))
DROP(int, setresgid, (gid_t r, gid_t e, gid_t s), (r, e, s))
DROP(int, chroot, (const char *path), (path))
