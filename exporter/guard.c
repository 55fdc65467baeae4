#include "guard.h"

#include <signal.h>
#include <string.h>

__thread sigjmp_buf *dx_guard_jb;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    (void)si, (void)ctx;
    sigjmp_buf *jb = dx_guard_jb;
    if (jb) {
        dx_guard_jb = NULL;
        siglongjmp(*jb, 1);
    }
    /* Not in a guarded block: a real bug; die as the signal says. */
    signal(sig, SIG_DFL);
    raise(sig);
}

void dx_guard_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
