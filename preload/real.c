#define _GNU_SOURCE
#include "real.h"

#include <dlfcn.h>

#include "internal.h"

struct dynobs_real_fns dynobs__real;

/* dlsym may allocate, take the loader lock or call functions we interpose
 * (libfaketime learned this the hard way). Binding is idempotent and
 * lock-free: whoever gets there stores the same pointers. An interposer
 * that finds its entry still NULL while this thread is binding must use
 * the raw system call instead (see fd.c). */
static __thread int binding DYNOBS_TLS;

void dynobs__real_bind(void)
{
    if (binding)
        return;
    binding = 1;
    void *p = dlsym(RTLD_NEXT, "close");
    __atomic_store_n((void **)&dynobs__real.close, p, __ATOMIC_RELEASE);
    binding = 0;
}
