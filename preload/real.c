#define _GNU_SOURCE
#include "real.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include "state.h"

struct dynobs_real_fns dynobs__real DYNOBS_HOT_DATA __attribute__((aligned(64)));

/* The symbol of each entry, in the order of struct dynobs_real_fns. */
/* (arrays, not pointers: a pointer is a relocation at every process start) */
static const char names[][16] = {
    "close", "read", "write", "recv", "send", "writev", "recvfrom", "sendmsg", "readv",
    "recvmsg", "sendto", "sendfile", "sendfile64", "dup", "dup2", "dup3", "connect", "accept",
    "accept4", "__read_chk", "__recv_chk", "__recvfrom_chk", "vsyslog", "__vsyslog_chk",
};
_Static_assert(sizeof names / sizeof names[0] == sizeof(struct dynobs_real_fns) / sizeof(void *),
               "one name per entry of struct dynobs_real_fns");

/* Each entry is bound at its first use, not at start: a dlsym costs about
 * a thousand instructions, and most processes call few of these (a
 * process that never touches a socket binds none but the ones its own
 * I/O goes through).
 *
 * dlsym may allocate, take the loader lock or call functions we interpose
 * (libfaketime learned this the hard way). Binding is idempotent and
 * lock-free: whoever gets there stores the same pointer. An interposer
 * that finds its entry still NULL while this thread is binding uses the
 * raw system call instead. */
static __thread int binding DYNOBS_TLS;

void dynobs__real_bind_one(size_t slot)
{
    if (binding || slot >= sizeof names / sizeof names[0])
        return;
    binding = 1;
    /* (the application's errno is the call's to set, not dlsym's) */
    int saved = errno;
    void *p = dlsym(RTLD_NEXT, names[slot]);
    if (p)
        __atomic_store_n(&((void **)&dynobs__real)[slot], p, __ATOMIC_RELEASE);
    errno = saved;
    binding = 0;
}

void *dynobs__lookup(void **slot, const char *name, const char *const *sonames)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (p)
        return p;
    int saved = errno;
    p = dlsym(RTLD_NEXT, name);
    for (size_t i = 0; !p && sonames && sonames[i]; i++) {
        void *h = dlopen(sonames[i], RTLD_LAZY | RTLD_NOLOAD);
        if (h) {
            p = dlsym(h, name);
            dlclose(h); /* NOLOAD took a reference; the library stays */
        }
    }
    if (p)
        __atomic_store_n(slot, p, __ATOMIC_RELEASE);
    errno = saved;
    return p;
}

const char *const dynobs__libcurl[] = {"libcurl.so.4", "libcurl-gnutls.so.4", NULL};
const char *const dynobs__libssl[] = {"libssl.so.3", "libssl.so.1.1", "libssl.so", NULL};
const char *const dynobs__libpq[] = {"libpq.so.5", NULL};

const char *const *dynobs__sonames_of(const char *name)
{
    if (!strncmp(name, "curl_", 5))
        return dynobs__libcurl;
    if (!strncmp(name, "SSL_", 4))
        return dynobs__libssl;
    if (!strncmp(name, "PQ", 2))
        return dynobs__libpq;
    return NULL;
}
