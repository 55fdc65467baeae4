#define _GNU_SOURCE
#include "real.h"

#include <dlfcn.h>
#include <string.h>

#include "state.h"

struct dynobs_real_fns dynobs__real;

/* dlsym may allocate, take the loader lock or call functions we interpose
 * (libfaketime learned this the hard way). Binding is idempotent and
 * lock-free: whoever gets there stores the same pointers. An interposer
 * that finds its entry still NULL while this thread is binding uses the
 * raw system call instead. */
static __thread int binding DYNOBS_TLS;

#define BIND(field, sym)                                                                   \
    do {                                                                                   \
        void *p_ = dlsym(RTLD_NEXT, sym);                                                  \
        if (p_)                                                                            \
            __atomic_store_n((void **)&dynobs__real.field, p_, __ATOMIC_RELEASE);          \
    } while (0)

void dynobs__real_bind(void)
{
    if (binding)
        return;
    binding = 1;
    BIND(close, "close");
    BIND(dup, "dup");
    BIND(dup2, "dup2");
    BIND(dup3, "dup3");
    BIND(connect, "connect");
    BIND(accept, "accept");
    BIND(accept4, "accept4");
    BIND(sendfile, "sendfile");
    BIND(sendfile64, "sendfile64");
    BIND(write, "write");
    BIND(writev, "writev");
    BIND(send, "send");
    BIND(sendto, "sendto");
    BIND(sendmsg, "sendmsg");
    BIND(read, "read");
    BIND(readv, "readv");
    BIND(recv, "recv");
    BIND(recvfrom, "recvfrom");
    BIND(recvmsg, "recvmsg");
    BIND(read_chk, "__read_chk");
    BIND(recv_chk, "__recv_chk");
    BIND(recvfrom_chk, "__recvfrom_chk");
    BIND(vsyslog, "vsyslog");
    BIND(vsyslog_chk, "__vsyslog_chk");
    binding = 0;
}

void *dynobs__lookup(void **slot, const char *name, const char *const *sonames)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (p)
        return p;
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
