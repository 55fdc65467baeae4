/*
 * Crash reports. For SIGSEGV, SIGBUS, SIGABRT, SIGFPE and SIGILL our
 * handler stays installed for the life of the process; what the
 * application asks of sigaction()/signal() for them is kept in app_act
 * and honoured by the handler:
 *
 *   - the application has a handler: it is called, as the kernel would
 *     (its own crash handler keeps working, installed before or after
 *     us; a handler that resets to SIG_DFL and re-raises ends in the
 *     fatal case below, so the crash is still reported);
 *   - SIG_IGN: a signal sent by kill() is ignored; a fault is fatal
 *     (the kernel does not let a fault be ignored);
 *   - SIG_DFL, the fatal case: once per process, a FATAL log record with
 *     the signal, the faulting address and a backtrace (libunwind) is
 *     written to the segment, the crashing thread's open spans end with
 *     error status and an "exception" event; then the default action is
 *     put back and the signal delivered again, so the process dies
 *     exactly as it would have (core dump and exit status unchanged).
 *     The segment outlives the process: the exporter ships the report.
 *
 * The backtrace comes from libunwind, loaded with RTLD_LOCAL (never
 * linked: libunwind.so also defines the _Unwind_* functions, which must
 * not replace the application's unwinder for C++ exceptions) when the
 * process first records (dynobs__crash_prepare), not at start: the
 * dlopen is most of what the shim used to add to a process's start, and
 * a process that never records has nothing to report a crash into
 * anyway. The handler itself loads nothing (dlopen is not
 * async-signal-safe): a process that crashes before it first records
 * gets a report without a backtrace. Without libunwind the report has
 * no backtrace.
 *
 * DYNOBS_CRASH_REPORTS=0 leaves the signals alone.
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <errno.h>
#ifndef DYNOBS_NO_LIBUNWIND
#include <libunwind.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "state.h"

static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
#define NCRASH (sizeof crash_sigs / sizeof crash_sigs[0])

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
/* (set at every process start: see DYNOBS_START_DATA) */
static sigaction_fn real_sigaction DYNOBS_START_DATA;
static int installed DYNOBS_START_DATA;
/* What the application wants: written at start only where an action was
 * in place before ours (all zeros is SIG_DFL), as it is in most processes. */
static struct sigaction app_act[NCRASH];
static int reported;

/* A sanitizer's runtime calls sigaction (ours: it looks for the next
 * definition after itself) while it initialises, before instrumented code
 * may run: the paths it takes here are left uninstrumented. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define EARLY __attribute__((no_sanitize("thread", "address", "undefined")))
#else
#define EARLY
#endif

EARLY static int slot_of(int sig)
{
    for (unsigned i = 0; i < NCRASH; i++)
        if (crash_sigs[i] == sig)
            return (int)i;
    return -1;
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGABRT:
        return "SIGABRT";
    case SIGFPE:
        return "SIGFPE";
    default:
        return "SIGILL";
    }
}

#ifndef DYNOBS_NO_LIBUNWIND
/* libunwind's local-only entry points, found in a private copy; read by
 * the handler once unw_ready is set. */
static int unw_ready;
static struct {
    int (*init_local2)(unw_cursor_t *, unw_context_t *, int);
    int (*step)(unw_cursor_t *);
    int (*get_reg)(unw_cursor_t *, unw_regnum_t, unw_word_t *);
    int (*get_proc_name)(unw_cursor_t *, char *, size_t, unw_word_t *);
} unw;

static void load_libunwind(void)
{
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    unw.init_local2 = (int (*)(unw_cursor_t *, unw_context_t *, int))dlsym(
        h, "_ULx86_64_init_local2");
    unw.step = (int (*)(unw_cursor_t *))dlsym(h, "_ULx86_64_step");
    unw.get_reg = (int (*)(unw_cursor_t *, unw_regnum_t, unw_word_t *))dlsym(
        h, "_ULx86_64_get_reg");
    unw.get_proc_name = (int (*)(unw_cursor_t *, char *, size_t, unw_word_t *))dlsym(
        h, "_ULx86_64_get_proc_name");
    if (unw.init_local2 && unw.step && unw.get_reg && unw.get_proc_name)
        __atomic_store_n(&unw_ready, 1, __ATOMIC_RELEASE);
}

/* "#N 0xPC function+0xOFF (object)" per frame, from the interrupted
 * context outwards. Returns the length written. */
static size_t backtrace_text(ucontext_t *uc, char *out, size_t cap)
{
    unw_cursor_t cur;
    size_t n = 0;
    out[0] = '\0';
    if (!__atomic_load_n(&unw_ready, __ATOMIC_ACQUIRE) ||
        unw.init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) < 0)
        return 0;
    for (int depth = 0; depth < 64 && n + 1 < cap; depth++) {
        unw_word_t pc = 0, off = 0;
        char fn[160];
        unw.get_reg(&cur, UNW_REG_IP, &pc);
        if (unw.get_proc_name(&cur, fn, sizeof fn, &off) < 0)
            strcpy(fn, "??");
        Dl_info dl;
        const char *obj = dladdr((void *)pc, &dl) && dl.dli_fname ? dl.dli_fname : "?";
        int k = snprintf(out + n, cap - n, "#%d 0x%016lx %s+0x%lx (%s)\n", depth,
                         (unsigned long)pc, fn, (unsigned long)off, obj);
        if (k < 0)
            break;
        n += (size_t)k < cap - n ? (size_t)k : cap - n - 1;
        if (unw.step(&cur) <= 0)
            break;
    }
    return n;
}
#else
static void load_libunwind(void)
{
}

static size_t backtrace_text(ucontext_t *uc, char *out, size_t cap)
{
    (void)uc, (void)cap;
    out[0] = '\0';
    return 0;
}
#endif

static void report(int sig, siginfo_t *si, void *ctx)
{
    if (__atomic_exchange_n(&reported, 1, __ATOMIC_ACQ_REL) || !dynobs__on())
        return;
    dynobs__tls.guard++;
    static char trace[6144];
    backtrace_text(ctx, trace, sizeof trace);
    char message[160];
    const char *what = strsignal(sig);
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL)
        snprintf(message, sizeof message, "%s at address %p", what, si ? si->si_addr : NULL);
    else
        snprintf(message, sizeof message, "%s", what);
    char addr[32];
    snprintf(addr, sizeof addr, "%p", si ? si->si_addr : NULL);
    dynobs_attr attrs[] = {
        {.key = "exception.type", .type = DYNOBS_ATTR_STRING, .v.s = sig_name(sig)},
        {.key = "exception.message", .type = DYNOBS_ATTR_STRING, .v.s = message},
        {.key = "exception.stacktrace", .type = DYNOBS_ATTR_STRING, .v.s = trace},
        {.key = "signal.number", .type = DYNOBS_ATTR_INT, .v.i = sig},
        {.key = "signal.code", .type = DYNOBS_ATTR_INT, .v.i = si ? si->si_code : 0},
        {.key = "signal.fault_address", .type = DYNOBS_ATTR_STRING, .v.s = addr},
        {.key = "thread.id", .type = DYNOBS_ATTR_INT, .v.i = (int64_t)syscall(SYS_gettid)},
    };
    size_t nattrs = sizeof attrs / sizeof attrs[0];
    char body[256];
    int bl = snprintf(body, sizeof body, "process crashed: %s (%s)", sig_name(sig), message);
    struct dynobs_thread *t = dynobs__thread();
    char status[200];
    snprintf(status, sizeof status, "crashed: %s", sig_name(sig));
    /* The spans first, then the log record, which carries the innermost
     * one's ids while it is still current. */
    dynobs__log_write(DYNOBS_SEVERITY_FATAL, "FATAL", body, bl > 0 ? (size_t)bl : 0, attrs,
                      nattrs);
    if (t)
        dynobs__span_end_crashed(t, status, attrs, 3);
    dynobs__tls.guard--;
}

static void on_crash(int sig, siginfo_t *si, void *ctx)
{
    int saved = errno;
    int i = slot_of(sig);
    struct sigaction a = app_act[i];
    int user_sent = si && si->si_code <= 0; /* kill, raise, abort, sigqueue */
    if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) {
        if (a.sa_flags & SA_RESETHAND)
            app_act[i].sa_handler = SIG_DFL, app_act[i].sa_flags &= ~SA_SIGINFO;
        if (a.sa_flags & SA_SIGINFO)
            a.sa_sigaction(sig, si, ctx);
        else
            a.sa_handler(sig);
        errno = saved;
        return;
    }
    if (a.sa_handler == SIG_IGN && user_sent && sig != SIGABRT) {
        errno = saved;
        return;
    }
    report(sig, si, ctx);
    /* Back to the default action, then let it happen: a fault re-runs the
     * faulting instruction when we return; a sent signal is sent again
     * (blocked until we return). */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    real_sigaction(sig, &dfl, NULL);
    if (user_sent || sig == SIGABRT)
        syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
    errno = saved;
}

DYNOBS_START_TEXT
void dynobs__crash_install(const char *v)
{
    if (v && v[0] == '0' && !v[1]) /* (no strcmp bound at start) */
        return;
    real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (!real_sigaction)
        return;
    /* (constant, sa_mask empty: on the stack, its initialiser was a call
     * of libc's memset, the only one at start; its pointer to on_crash is
     * a relocation on the page of them the loader writes anyway) */
    static const struct sigaction sa = {.sa_sigaction = on_crash,
                                        .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART};
    for (unsigned i = 0; i < NCRASH; i++) {
        struct sigaction was;
        if (real_sigaction(crash_sigs[i], &sa, &was) != 0)
            continue; /* (was not filled: nothing of ours is in place either) */
        /* (the kernel's 64 signals: glibc copies more of sa_mask, from
         * its own stack; and no sigisemptyset, which would be bound at
         * start: the copy below is only where an earlier action exists) */
        uint64_t mask;
        memcpy(&mask, &was.sa_mask, sizeof mask);
        if (was.sa_handler != SIG_DFL || was.sa_flags || mask)
            app_act[i] = was;
    }
    __atomic_store_n(&installed, 1, __ATOMIC_RELEASE);
}

void dynobs__crash_prepare(void)
{
    /* Not from the report: that runs in the crash handler. */
    if (__atomic_load_n(&installed, __ATOMIC_ACQUIRE) &&
        !__atomic_load_n(&reported, __ATOMIC_ACQUIRE))
        load_libunwind();
}

/* The application's view of the crash signals is app_act; ours stays. */
EARLY DYNOBS_API int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    int i = slot_of(sig);
    if (i < 0 || !__atomic_load_n(&installed, __ATOMIC_ACQUIRE)) {
        /* Looked up once, also where crash reports are off (dlsym costs
         * thousands of instructions, and libcurl calls this around every
         * transfer); a race stores the same pointer twice. */
        sigaction_fn f = __atomic_load_n(&real_sigaction, __ATOMIC_RELAXED);
        if (!f) {
            f = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
            __atomic_store_n(&real_sigaction, f, __ATOMIC_RELAXED);
        }
        return f ? f(sig, act, old) : (errno = ENOSYS, -1);
    }
    struct sigaction prev = app_act[i];
    if (act)
        app_act[i] = *act;
    if (old)
        *old = prev;
    return 0;
}

EARLY DYNOBS_API sighandler_t signal(int sig, sighandler_t handler)
{
    if (slot_of(sig) < 0 || !__atomic_load_n(&installed, __ATOMIC_ACQUIRE)) {
        /* (a plain cache: this path must stay free of instrumented calls) */
        static sighandler_t (*real_signal)(int, sighandler_t);
        if (!real_signal)
            real_signal = (sighandler_t(*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
        return real_signal ? real_signal(sig, handler) : SIG_ERR;
    }
    struct sigaction act = {.sa_handler = handler, .sa_flags = SA_RESTART}, old;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) < 0)
        return SIG_ERR;
    return old.sa_handler;
}
