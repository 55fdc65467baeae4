/*
 * Start-up and teardown of libdynobs.so: configuration, the process's
 * segment (created lazily, at first use), fork and exit. Start-up does
 * next to nothing (a process that never records should not pay for
 * dynobs); the rest is done at first use.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#include "capture.h"
#include "hostwide.h"
#include "lazymap.h"
#include "real.h"
#include "rulesmap.h"
#include "state.h"
#include "tls.h" /* (DYNOBS_TLS_OFFSETS: the offsets learnt before the state is on) */

#include "../common/http/h1.h"
#include "../common/resource.h"

int dynobs__state DYNOBS_HOT_DATA = DYNOBS_UNINIT;
struct dynobs_config dynobs__config DYNOBS_HOT_CONFIG;
uint64_t dynobs__lost;

/* Segment states: a CAS from NONE to CREATING elects the one thread that
 * creates it; everybody else keeps going without a segment meanwhile. */
enum { SEG_NONE, SEG_CREATING, SEG_READY, SEG_FAILED };
static int seg_state DYNOBS_HOT_DATA = SEG_NONE;
uint32_t dynobs__seg_epoch DYNOBS_HOT_DATA;
static uint32_t epochs; /* the last epoch given out, inherited by children */
static int resource_built; /* by dynobs_set_service_name, or at creation */

/* What only a process that records needs, some 16 KiB: mapped at the
 * segment's creation, or at start when there are resource attributes to
 * copy, or by dynobs_set_service_name (lazymap.h), never in .bss, which
 * would cost every process an anonymous mapping at load. */
struct later {
    struct dynobs_segment seg;
    struct dynobs_resource resource;
    char resource_copy[8192];
};
static void *later DYNOBS_HOT_DATA;

static struct later *later_map(void)
{
    return dynobs__lazymap(&later, sizeof(struct later));
}

/* The segment, once seg_state has been seen SEG_READY (or CREATING by the
 * thread that creates it): the block is mapped by then. */
static inline struct dynobs_segment *seg_of(void)
{
    return &((struct later *)dynobs__lazymap_peek(&later))->seg;
}

static int atfork_done DYNOBS_START_DATA;

/* The process's OTEL_* and DYNOBS_* variables, found in one pass over
 * the environment at start: the configuration asks for some twenty of
 * them, and a getenv each is as many passes over all of it (5 600
 * instructions of a process's start with a small environment, more with
 * a large one). More than ENV_MAX of them: getenv after all. */
#define ENV_MAX 32
static int env_n DYNOBS_START_DATA;
/* (written only where such variables are set: not DYNOBS_START_DATA,
 * whose page it would not fit on) */
static const char *env_vars[ENV_MAX];

/* 1 when s begins with prefix (compared byte by byte: s may be shorter). */
DYNOBS_START_TEXT
static int starts(const char *s, const char *prefix)
{
    while (*prefix && *s == *prefix)
        s++, prefix++;
    return !*prefix;
}

DYNOBS_START_TEXT
static void env_scan(void)
{
    for (char **e = environ; e && *e; e++) {
        const char *v = *e;
        if ((v[0] == 'O' && starts(v, "OTEL_")) || (v[0] == 'D' && starts(v, "DYNOBS_"))) {
            if (env_n == ENV_MAX) {
                env_n = -1;
                return;
            }
            env_vars[env_n++] = v;
        }
    }
}

/* getenv, for the variables env_scan kept (the first one of a name, as
 * getenv's). */
DYNOBS_START_TEXT
static const char *env(const char *name)
{
    if (env_n < 0)
        return getenv(name);
    for (int i = 0; i < env_n; i++) {
        const char *v = env_vars[i];
        size_t k = 0;
        while (name[k] && v[k] == name[k])
            k++;
        if (!name[k] && v[k] == '=')
            return v + k + 1;
    }
    return NULL;
}

/* The resource's variables, copied at start: the resource itself is
 * built when the segment is (reading /proc/self/exe costs a system
 * call), and by then the environment's strings may have been written
 * over (php-fpm and nginx put their process titles there) or changed by
 * another thread. A service name is cut at 255 bytes in the resource
 * anyway; attributes longer than the copy's room make the resource be
 * built at start instead. Most attribute lists fit the short copy, which
 * costs a process that has one no more than a page of .bss; a longer one
 * goes to the block mapped for the segment (struct later), mapped at
 * start then. */
static const char *service_env DYNOBS_START_DATA, *resource_env DYNOBS_START_DATA;
static char service_copy[256];
static char resource_short[1024];

/* v copied into buf (cut at cap - 1 bytes); NULL for NULL. *cut is set
 * when it did not fit. */
DYNOBS_START_TEXT
static const char *keep(const char *v, char *buf, size_t cap, int *cut)
{
    if (!v)
        return NULL;
    *cut = dynobs__copy_upto(buf, v, cap) == cap;
    return buf;
}

static void exe_name(char *out, size_t cap)
{
    char path[512];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    path[n] = '\0';
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t l = strlen(base);
    if (l >= cap)
        l = cap - 1;
    memcpy(out, base, l);
    out[l] = '\0';
}

/* Host-wide mode (hostwide.h): this process was selected; the name a
 * "service" line of the selection gave it. */
static int hostwide DYNOBS_START_DATA;
static char hostwide_service[256];

static void build_resource(void)
{
    char exe[256], unit[256];
    exe_name(exe, sizeof exe);
    const char *svc = service_env;
    /* a host's services are its systemd units, when nothing else names them */
    if (!svc && hostwide) {
        dynobs__hostwide_unit(unit, sizeof unit);
        if (unit[0])
            svc = unit;
    }
    struct later *l = later_map();
    if (!l)
        return; /* the segment cannot be made either */
    dynobs__resource_build(&l->resource, svc, resource_env, exe);
    resource_built = 1;
}

static void after_fork_child(void)
{
    /* The child is a new process: it gets a segment of its own at first
     * use, ids from a fresh seed, and keeps the forking thread's context. */
    dynobs__rules_detach();
    /* Before the unmapping: nothing may trust a pointer into it now. */
    __atomic_store_n(&dynobs__seg_epoch, 0, __ATOMIC_RELEASE);
    if (__atomic_load_n(&seg_state, __ATOMIC_ACQUIRE) == SEG_READY)
        dynobs__segment_detach(seg_of());
    __atomic_store_n(&seg_state, SEG_NONE, __ATOMIC_RELEASE);
    dynobs__thread_after_fork();
}

DYNOBS_START_TEXT
static void report_bad_setting(void)
{
    /* One line on stderr, written with write(2): no stdio inside a host
     * process we know nothing about. */
    static const char pre[] = "dynobs: ignoring malformed ";
    static const char post[] = " (using the default)\n";
    const char *name = dynobs__config.bad_name ? dynobs__config.bad_name : "setting";
    ssize_t r = write(2, pre, sizeof pre - 1);
    r = write(2, name, strlen(name));
    r = write(2, post, sizeof post - 1);
    (void)r;
}

/* pthread_atfork(NULL, NULL, child), which in glibc is a function linked
 * into each library (libc_nonshared.a) that calls __register_atfork with
 * the library's handle; called directly here, because the linker puts
 * that function at the very end of the text, a page no other start-up
 * code is on. */
#ifdef __GLIBC__
extern void *__dso_handle __attribute__((visibility("hidden"))); /* (crtbeginS.o's) */
extern int __register_atfork(void (*)(void), void (*)(void), void (*)(void), void *);
#endif
DYNOBS_START_TEXT
static void register_atfork(void (*child)(void))
{
#ifdef __GLIBC__
    __register_atfork(NULL, NULL, child, __dso_handle);
#else
    pthread_atfork(NULL, NULL, child);
#endif
}

/* OTEL_SDK_DISABLED=true, read before anything else: a process the shim
 * is off in pays one look at the environment and nothing more. It is
 * read without calling libc: the first call of each libc function from
 * here binds it (lazy binding), which costs more than the look itself
 * and touches pages of the loader no other code of a small program may
 * need. The first definition counts, as with getenv. The name and value
 * are compared with immediates rather than with strings, which are
 * read-only data: a page fault that nothing else in such a process takes
 * (the compiler cannot merge the tests into wider loads: each stops at a
 * mismatch, the string's end included). */
DYNOBS_START_TEXT
static int sdk_disabled(void)
{
    for (char **e = environ; e && *e; e++) {
        const char *v = *e;
        if (!(v[0] == 'O' && v[1] == 'T' && v[2] == 'E' && v[3] == 'L' && v[4] == '_' &&
              v[5] == 'S' && v[6] == 'D' && v[7] == 'K' && v[8] == '_' && v[9] == 'D' &&
              v[10] == 'I' && v[11] == 'S' && v[12] == 'A' && v[13] == 'B' && v[14] == 'L' &&
              v[15] == 'E' && v[16] == 'D' && v[17] == '='))
            continue;
        v += 18;
        /* "true", ASCII letters in either case */
        return (v[0] | 0x20) == 't' && (v[1] | 0x20) == 'r' && (v[2] | 0x20) == 'u' &&
               (v[3] | 0x20) == 'e' && v[4] == '\0';
    }
    return 0;
}

/* Only what an interposer may need before the first record is done here,
 * all of it cheap (reading the environment); what costs a system call or
 * a dlsym waits for its first use: the real functions (real.c), the
 * resource (segment creation), the clock's calibration (clock.c), the
 * backtrace library (dynobs__first_use) and the thread-exit key (the
 * first thread block, thread.c). */
DYNOBS_START_TEXT
int dynobs__init(void)
{
    int expect = DYNOBS_UNINIT;
    if (!__atomic_compare_exchange_n(&dynobs__state, &expect, DYNOBS_INITING, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return expect;
    int next = DYNOBS_OFF;
    dynobs__tls.guard++;
    if (sdk_disabled())
        goto out; /* (dynobs__config stays untouched: one page fault less) */
    /* (the name into a buffer on the stack first: the selection writes it
     * in every process, and a write to the static one would cost a page
     * fault of .bss in processes that have no name from it) */
    char svc[sizeof hostwide_service];
    int hw = dynobs__hostwide(environ, svc, sizeof svc);
    if (hw == 0)
        goto out; /* in the host's preload list, and not selected: off */
    hostwide = hw == 1;
    env_scan();
    dynobs__config_load(&dynobs__config, env);
    int cut = 0, name_cut; /* (a name is cut at 255 bytes anyway) */
    service_env = keep(env("OTEL_SERVICE_NAME"), service_copy, sizeof service_copy, &name_cut);
    if (!service_env && hostwide && svc[0])
        service_env = keep(svc, hostwide_service, sizeof hostwide_service, &name_cut);
    const char *attrs = env("OTEL_RESOURCE_ATTRIBUTES");
    if (attrs && dynobs__len_upto(attrs, sizeof resource_short) < sizeof resource_short) {
        resource_env = keep(attrs, resource_short, sizeof resource_short, &cut);
    } else if (attrs) {
        struct later *l = later_map();
        resource_env = l ? keep(attrs, l->resource_copy, sizeof l->resource_copy, &cut) : NULL;
        if (cut || !l) {
            resource_env = attrs;
            build_resource();
        }
    }
    if (dynobs__span_policy_from_env(env("DYNOBS_TAIL_KEEP")) < 0 &&
        !dynobs__config.bad_setting) {
        dynobs__config.bad_setting = 1;
        dynobs__config.bad_name = "DYNOBS_TAIL_KEEP";
    }
    if (!dynobs__config.disabled) {
        if (dynobs__config.bad_setting)
            report_bad_setting();
        dynobs__h1_watch_correlation(dynobs__config.corr_names, dynobs__config.corr_lens,
                                     dynobs__config.ncorr);
        const char *clk = env("DYNOBS_CLOCK");
        dynobs__clock_init(!(clk && starts(clk, "system") && !clk[6]));
        dynobs__crash_install(env("DYNOBS_CRASH_REPORTS"));
        /* (a hundred instructions, no system call; registered here, where
         * no signal handler can be running, rather than at first use) */
        if (!atfork_done) {
            atfork_done = 1;
            register_atfork(after_fork_child);
        }
#ifdef DYNOBS_TLS_OFFSETS
        /* (before the state is on: DYNOBS_TLS_ON reads them untested) */
        dynobs__tls_learn();
#endif
        next = DYNOBS_ON;
    }
out:
    dynobs__tls.guard--;
    __atomic_store_n(&dynobs__state, next, __ATOMIC_RELEASE);
    return next;
}

void dynobs__first_use(void)
{
    static int done;
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE) ||
        __atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL))
        return;
    dynobs__tls.guard++;
    dynobs__crash_prepare();
    dynobs__tls.guard--;
}

/* Another thread is creating the segment (once per process, well under a
 * millisecond): wait for it a bounded while rather than drop the first
 * records of a process. A thread interrupted while creating it (a signal
 * handler on the creating thread) must not wait for itself. */
static struct dynobs_segment *wait_for_creation(void)
{
    if (dynobs__tls.guard)
        return NULL;
    uint64_t deadline = dynobs__mono_ns() + 20 * 1000 * 1000;
    for (;;) {
        sched_yield();
        /* (one load a turn: read twice, a creation that ends between the
         * two reads was taken for a failure) */
        int s = __atomic_load_n(&seg_state, __ATOMIC_ACQUIRE);
        if (s == SEG_READY)
            return seg_of();
        if (s != SEG_CREATING || dynobs__mono_ns() >= deadline)
            return NULL;
    }
}

/* dynobs__lost into the segment's drop count, once the segment is ready
 * (sequentially consistent with the counting in dynobs__count_lost: a
 * count made after this exchange sees SEG_READY and moves itself). */
static void move_lost(struct dynobs_segment *seg)
{
    uint64_t lost = __atomic_exchange_n(&dynobs__lost, 0, __ATOMIC_SEQ_CST);
    if (lost)
        __atomic_fetch_add(&seg->hdr->shards[0].counters[DYNOBS_CTR_RECORDS_DROPPED], lost,
                           __ATOMIC_RELAXED);
}

void dynobs__count_lost(void)
{
    __atomic_fetch_add(&dynobs__lost, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&seg_state, __ATOMIC_SEQ_CST) == SEG_READY)
        move_lost(seg_of());
}

/* Out of line: the common case, a segment ready, stays a load, a test and
 * a load, without the stack frame the creation needs. */
static __attribute__((noinline)) struct dynobs_segment *segment_slow(int s)
{
    if (s == SEG_CREATING)
        return wait_for_creation();
    if (s != SEG_NONE)
        return NULL;
    if (!__atomic_compare_exchange_n(&seg_state, &s, SEG_CREATING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return s == SEG_READY ? seg_of() : s == SEG_CREATING ? wait_for_creation() : NULL;
    dynobs__first_use();
    dynobs__tls.guard++;
    struct later *l = later_map();
    if (!l) {
        dynobs__tls.guard--;
        __atomic_store_n(&seg_state, SEG_FAILED, __ATOMIC_RELEASE);
        return NULL; /* fail open, as when the segment cannot be made */
    }
    struct dynobs_segment *seg = &l->seg;
    if (!resource_built)
        build_resource(); /* here, once: a process that never records never
                             reads /proc/self/exe */
    struct dynobs_segment_params p = {
        .dir = dynobs__config.shm_dir,
        .ring_bytes = dynobs__config.ring_bytes,
        .ring_start_bytes = dynobs__config.ring_start_bytes,
        .metric_slots = dynobs__config.metric_slots,
        .pid = getpid(),
        .ppid = getppid(),
        .start_ticks = dynobs__proc_start_ticks(0),
        .resource = &l->resource,
    };
    int rc = dynobs__segment_create(seg, &p);
    /* Still under the guard: a signal handler on this thread that records
     * meanwhile must not wait for the creation it interrupted. */
    if (rc == 0)
        dynobs__rules_attach(seg);
    dynobs__tls.guard--;
    if (rc < 0) {
        /* Fail open: the service runs on without telemetry. */
        __atomic_store_n(&seg_state, SEG_FAILED, __ATOMIC_RELEASE);
        return NULL;
    }
    /* Only the creating thread gets here, once per segment. */
    __atomic_store_n(&dynobs__seg_epoch, ++epochs, __ATOMIC_RELEASE);
    __atomic_store_n(&seg_state, SEG_READY, __ATOMIC_SEQ_CST);
    /* What was lost before the segment was ready is counted in it now
     * (after SEG_READY: see dynobs__count_lost). */
    move_lost(seg);
    return seg;
}

struct dynobs_segment *dynobs__segment(void)
{
    int s = __atomic_load_n(&seg_state, __ATOMIC_ACQUIRE);
    if (DYNOBS_LIKELY(s == SEG_READY))
        return seg_of();
    return segment_slow(s);
}

__attribute__((constructor)) static void dynobs_constructor(void)
{
    if (__atomic_load_n(&dynobs__state, __ATOMIC_ACQUIRE) == DYNOBS_UNINIT)
        dynobs__init();
}

/* The library's DT_FINI (CMakeLists.txt: -fini): nothing to do, like the
 * C runtime's _fini it stands for, but here, in the text page the start
 * already brought in; _fini's page, at the end of the text, cost every
 * process a page fault at exit. (Global and used: the linker finds it by
 * name; the version script keeps it out of the dynamic symbols.) */
DYNOBS_START_TEXT __attribute__((used)) void dynobs__fini(void);
DYNOBS_START_TEXT __attribute__((used)) void dynobs__fini(void)
{
}

/* A process that exits normally leaves its segment for the consumer to
 * drain, marked so that it can be reaped once drained. */
__attribute__((destructor)) static void dynobs_destructor(void)
{
    if (__atomic_load_n(&dynobs__state, __ATOMIC_ACQUIRE) != DYNOBS_ON)
        return;
    dynobs__stderr_flush();
    if (__atomic_load_n(&seg_state, __ATOMIC_ACQUIRE) == SEG_READY)
        __atomic_fetch_or(&seg_of()->hdr->flags, DYNOBS_SEG_EXITED, __ATOMIC_RELEASE);
}

DYNOBS_API int dynobs_enabled(void)
{
    return dynobs__on();
}

DYNOBS_API const char *dynobs_version(void)
{
    return DYNOBS_VERSION_STRING;
}

DYNOBS_API int dynobs_set_service_name(const char *name)
{
    if (!name || !*name || strlen(name) > 255)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    /* Holding the creation slot keeps the segment from being made from
     * the resource while it is rebuilt. */
    int s = SEG_NONE;
    if (!__atomic_compare_exchange_n(&seg_state, &s, SEG_CREATING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return DYNOBS_EBUSY;
    struct later *l = later_map();
    if (!l) {
        __atomic_store_n(&seg_state, SEG_NONE, __ATOMIC_RELEASE);
        return DYNOBS_ENOMEM;
    }
    char exe[256];
    exe_name(exe, sizeof exe);
    dynobs__resource_build(&l->resource, name, resource_env, exe);
    resource_built = 1;
    __atomic_store_n(&seg_state, SEG_NONE, __ATOMIC_RELEASE);
    return 0;
}
