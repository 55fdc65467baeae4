/*
 * A program that uses the public API in named scenarios. It links
 * libdynobs-noop.so, so it records nothing unless started with
 * LD_PRELOAD=libdynobs.so: the tests run it both ways. It prints what the
 * API told it (return codes, traceparents) on stdout for the tests to
 * compare with what they read from the segment.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dynobs/dynobs.h"

static void print_tp(const char *label, dynobs_span *s)
{
    char tp[64];
    int rc = dynobs_span_traceparent(s, tp, sizeof tp);
    printf("%s %s\n", label, rc > 0 ? tp : "none");
}

static void *nested_thread(void *arg)
{
    const char *tag = arg;
    char name[64];
    snprintf(name, sizeof name, "root-%s", tag);
    dynobs_span *a = dynobs_span_start(name, DYNOBS_SPAN_KIND_SERVER);
    dynobs_span_set_str(a, "thread.tag", tag);
    dynobs_span_set_int(a, "answer", 42);
    dynobs_span_set_double(a, "ratio", 0.25);
    dynobs_span_set_bool(a, "flag", 1);
    snprintf(name, sizeof name, "child-%s", tag);
    dynobs_span *b = dynobs_span_start(name, DYNOBS_SPAN_KIND_CLIENT);
    snprintf(name, sizeof name, "grandchild-%s", tag);
    dynobs_span *c = dynobs_span_start(name, DYNOBS_SPAN_KIND_INTERNAL);
    dynobs_attr ev[] = {{.key = "step", .type = DYNOBS_ATTR_INT, .v.i = 3},
                        {.key = "what", .type = DYNOBS_ATTR_STRING, .v.s = "retry"}};
    dynobs_span_add_event_attrs(c, "retrying", ev, 2);
    dynobs_span_set_status(c, DYNOBS_STATUS_ERROR, "boom");
    char cur[64];
    dynobs_current_traceparent(cur, sizeof cur);
    flockfile(stdout);
    print_tp(tag, a);
    print_tp(tag, b);
    print_tp(tag, c);
    printf("%s-current %s\n", tag, cur);
    funlockfile(stdout);
    dynobs_span_end(c);
    dynobs_span_end(b);
    /* After b ends, a is current again. */
    dynobs_current_traceparent(cur, sizeof cur);
    printf("%s-after %s\n", tag, cur);
    dynobs_span_set_status(a, DYNOBS_STATUS_OK, "ignored for OK");
    dynobs_span_end(a);
    return NULL;
}

static int nested(void)
{
    pthread_t t1, t2;
    pthread_create(&t1, NULL, nested_thread, "t1");
    pthread_create(&t2, NULL, nested_thread, "t2");
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    return 0;
}

static int disabled(void)
{
    dynobs_span *s = dynobs_span_start("x", DYNOBS_SPAN_KIND_INTERNAL);
    printf("span %s\n", s ? "yes" : "null");
    printf("enabled %d\n", dynobs_enabled());
    printf("set %d\n", dynobs_span_set_int(s, "k", 1));
    printf("end %d\n", dynobs_span_end(s));
    printf("counter %d\n", dynobs_counter_add("c", 1, NULL));
    char tp[64];
    printf("current %d\n", dynobs_current_traceparent(tp, sizeof tp));
    return 0;
}

static int limits(void)
{
    dynobs_span *s = dynobs_span_start("limited", DYNOBS_SPAN_KIND_INTERNAL);
    char key[32];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        printf("set %s %d\n", key, dynobs_span_set_int(s, key, i));
    }
    /* Overwriting an existing key is not a new attribute. */
    printf("overwrite %d\n", dynobs_span_set_str(s, "k1", "replaced"));
    char big[100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    dynobs_span *t = dynobs_span_start("long", DYNOBS_SPAN_KIND_INTERNAL);
    printf("long %d\n", dynobs_span_set_str(t, "v", big));
    /* A multi-byte character straddling the limit is not cut in half. */
    printf("utf8 %d\n", dynobs_span_set_str(t, "u", "abcdefgh\xc3\xa9zz"));
    for (int i = 0; i < 6; i++)
        dynobs_span_add_event(t, "ev");
    dynobs_span_end(t);
    dynobs_span_end(s);
    return 0;
}

/* 20 keys set, an event, then every key set again (the attributes'
 * duplicate-key check, span.c key_bit): 20 attributes, each the second
 * value, are expected. */
static int overwrites(void)
{
    dynobs_span *s = dynobs_span_start("overwrites", DYNOBS_SPAN_KIND_INTERNAL);
    char key[32], val[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, i % 2 ? "key.%d" : "attribute.number.%d", i);
        dynobs_span_set_int(s, key, i);
    }
    dynobs_span_add_event(s, "between");
    int rc = 0;
    for (int i = 19; i >= 0; i--) {
        snprintf(key, sizeof key, i % 2 ? "key.%d" : "attribute.number.%d", i);
        snprintf(val, sizeof val, "new-%d", i);
        rc |= dynobs_span_set_str(s, key, val);
    }
    printf("overwrites %d\n", rc);
    dynobs_span_end(s);
    return 0;
}

static int forking(void)
{
    dynobs_span *p = dynobs_span_start("before-fork", DYNOBS_SPAN_KIND_INTERNAL);
    print_tp("parent-span", p);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dynobs_span *c = dynobs_span_start("in-child", DYNOBS_SPAN_KIND_INTERNAL);
        print_tp("child-span", c);
        dynobs_span_end(c);
        /* A new root in the child must not repeat the parent's ids. */
        dynobs_span_end(p); /* the child's copy of p: a span of the child now */
        dynobs_span *r = dynobs_span_start("child-root", DYNOBS_SPAN_KIND_INTERNAL);
        print_tp("child-root", r);
        dynobs_span_end(r);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    dynobs_span_end(p);
    dynobs_span *r = dynobs_span_start("parent-root", DYNOBS_SPAN_KIND_INTERNAL);
    print_tp("parent-root", r);
    dynobs_span_end(r);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int attach(void)
{
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    printf("attach %d\n", dynobs_context_attach(tp, "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"));
    dynobs_span *s = dynobs_span_start("remote-child", DYNOBS_SPAN_KIND_SERVER);
    char ts[600];
    dynobs_current_tracestate(ts, sizeof ts);
    printf("tracestate %s\n", ts);
    dynobs_span_end(s);
    dynobs_context_detach();
    char cur[64];
    printf("after-detach %d\n", dynobs_current_traceparent(cur, sizeof cur));
    printf("bad-attach %d\n", dynobs_context_attach("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", NULL));
    /* Unsampled remote parent: the default sampler follows it. */
    printf("attach2 %d\n", dynobs_context_attach("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "bad key=1"));
    dynobs_span *u = dynobs_span_start("unsampled-child", DYNOBS_SPAN_KIND_SERVER);
    print_tp("unsampled", u);
    dynobs_span *u2 = dynobs_span_start("unsampled-grandchild", DYNOBS_SPAN_KIND_CLIENT);
    print_tp("unsampled2", u2);
    dynobs_current_tracestate(ts, sizeof ts);
    printf("tracestate2 [%s]\n", ts);
    dynobs_span_end(u2);
    dynobs_span_end(u);
    dynobs_context_detach();
    /* Level 2 lists: '@' inside keys, a repeated key keeps its first
     * member; and 512 characters are kept whole. */
    printf("attach3 %d\n", dynobs_context_attach(tp, "foo@=1,bar=2, foo@=3,,z@z=4"));
    dynobs_current_tracestate(ts, sizeof ts);
    printf("tracestate3 [%s]\n", ts);
    dynobs_context_detach();
    char big[513];
    memset(big, 'v', 512);
    memcpy(big, "a=", 2);
    memcpy(big + 256, ",b=", 3);
    big[512] = '\0';
    printf("attach4 %d\n", dynobs_context_attach(tp, big));
    dynobs_current_tracestate(ts, sizeof ts);
    printf("tracestate4 %zu %d\n", strlen(ts), strcmp(ts, big));
    dynobs_context_detach();
    return 0;
}

static int metrics(void)
{
    for (int i = 0; i < 10; i++)
        dynobs_counter_add("requests", 1, "method=GET");
    dynobs_counter_add("requests", 2.5, "method=POST");
    printf("negative %d\n", dynobs_counter_add("requests", -1, "method=GET"));
    printf("badlabels %d\n", dynobs_counter_add("requests", 1, "method"));
    printf("badname %d\n", dynobs_counter_add("9lives", 1, NULL));
    dynobs_gauge_set("temperature", 21.5, NULL);
    dynobs_gauge_set("temperature", 19.0, NULL);
    dynobs_updown_add("inflight", 3, NULL);
    dynobs_updown_add("inflight", -1, NULL);
    double b[] = {0.1, 1, 10};
    dynobs_metric_desc d = {.name = "latency", .unit = "s", .kind = DYNOBS_METRIC_HISTOGRAM,
                            .bounds = b, .nbounds = 3};
    double vals[] = {0.05, 0.1, 0.5, 2, 20, 30};
    for (int i = 0; i < 6; i++)
        dynobs_metric_record(&d, vals[i], "route=/x");
    printf("kindclash %d\n", dynobs_gauge_set("requests", 1, "method=GET"));
    return 0;
}

/* Metric handles: each kind, mixed with by-name updates of the same
 * series, and the calls that must be refused. */
static int handles(void)
{
    dynobs_metric *h = dynobs_counter_get("hreq", "method=GET");
    for (int i = 0; i < 5; i++)
        dynobs_counter_add_h(h, 1);
    dynobs_counter_add("hreq", 2, "method=GET");
    printf("same %d\n", dynobs_counter_get("hreq", "method=GET") == h);
    printf("other %d\n", dynobs_counter_get("hreq", "method=PUT") != h);
    dynobs_metric *u = dynobs_updown_get("hinflight", NULL);
    dynobs_updown_add_h(u, 3);
    dynobs_updown_add_h(u, -1);
    dynobs_metric *g = dynobs_gauge_get("htemp", "room=a");
    dynobs_gauge_set_h(g, 21.5);
    dynobs_gauge_set_h(g, 19);
    double b[] = {0.1, 1, 10};
    dynobs_metric_desc d = {.name = "hlat", .unit = "s", .kind = DYNOBS_METRIC_HISTOGRAM,
                            .bounds = b, .nbounds = 3};
    dynobs_metric *l = dynobs_metric_get(&d, "route=/h");
    dynobs_histogram_record_h(l, 0.05);
    dynobs_histogram_record_h(l, 2);
    dynobs_metric_record_h(l, 20);
    dynobs_metric *dh = dynobs_histogram_get("hdefault", NULL);
    dynobs_histogram_record_h(dh, 7);
    printf("null %d\n", dynobs_counter_add_h(NULL, 1));
    printf("wrongkind %d\n", dynobs_counter_add_h(g, 1));
    printf("negative %d\n", dynobs_counter_add_h(h, -1));
    printf("badname %d\n", dynobs_counter_get("9lives", NULL) == NULL);
    printf("badlabels %d\n", dynobs_counter_get("hreq", "method") == NULL);
    printf("nullname %d\n", dynobs_counter_get(NULL, NULL) == NULL);
    /* "hreq" is a counter: a gauge of that name and labels is refused at
     * its first update, as by name. */
    printf("kindclash %d\n", dynobs_gauge_set_h(dynobs_gauge_get("hreq", "method=GET"), 1));
    return 0;
}

/* With DYNOBS_METRIC_SLOTS=16 a metric keeps 4 attribute sets: a handle
 * for a fifth updates the overflow series. */
static int handle_overflow(void)
{
    char labels[16];
    for (int i = 0; i < 4; i++) {
        snprintf(labels, sizeof labels, "n=%d", i);
        dynobs_counter_add_h(dynobs_counter_get("capped", labels), 1);
    }
    dynobs_metric *h = dynobs_counter_get("capped", "n=4");
    printf("over %d\n", dynobs_counter_add_h(h, 1));
    printf("over %d\n", dynobs_counter_add_h(h, 2));
    dynobs_counter_add("capped", 4, "n=5");
    dynobs_counter_add_h(dynobs_counter_get("capped", "n=0"), 10);
    return 0;
}

/* Handles and the by-name cache across fork: the child's updates land in
 * the child's own segment, the parent's stay in the parent's. */
static int handle_fork(void)
{
    dynobs_metric *h = dynobs_counter_get("forked", NULL);
    dynobs_metric *late = dynobs_histogram_get("forked.late", NULL);
    static const char name[] = "byname", labels[] = "k=v";
    dynobs_counter_add_h(h, 1);
    dynobs_counter_add(name, 1, labels);
    dynobs_counter_add(name, 1, labels); /* a cache hit now */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        printf("child-pid %d\n", (int)getpid());
        int a = dynobs_counter_add_h(h, 10);
        int b = dynobs_counter_add(name, 5, labels);
        int c = dynobs_histogram_record_h(late, 3);
        printf("child %d %d %d\n", a, b, c);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    dynobs_counter_add_h(h, 1);
    dynobs_counter_add(name, 1, labels);
    printf("parent-pid %d\n", (int)getpid());
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

/* What a program sees when dynobs is off (OTEL_SDK_DISABLED, or the
 * no-op library): a handle whose updates say so. */
static int handle_disabled(void)
{
    dynobs_metric *h = dynobs_counter_get("off", NULL);
    printf("handle %d\n", h != NULL);
    printf("add %d\n", dynobs_counter_add_h(h, 1));
    printf("record %d\n", dynobs_metric_record_h(h, 1));
    printf("gauge %d\n", dynobs_gauge_set_h(dynobs_gauge_get("off.g", NULL), 1));
    return 0;
}

/* The by-name cache is keyed by the string pointers: the same buffers
 * holding other text must reach other series. */
static int cache(void)
{
    char name[32], labels[32];
    strcpy(name, "cached");
    strcpy(labels, "k=a");
    for (int i = 0; i < 3; i++)
        dynobs_counter_add(name, 1, labels);
    strcpy(labels, "k=b");
    for (int i = 0; i < 2; i++)
        dynobs_counter_add(name, 1, labels);
    strcpy(labels, "k=ab"); /* longer, same prefix */
    dynobs_counter_add(name, 1, labels);
    strcpy(name, "cachedx");
    dynobs_counter_add(name, 1, labels);
    strcpy(name, "cached");
    strcpy(labels, "k=a");
    dynobs_counter_add(name, 10, labels);
    /* Same pointers, another kind: refused, not taken from the cache. */
    printf("kindclash %d\n", dynobs_gauge_set(name, 1, labels));
    /* Memory given back and handed out again for other strings. */
    for (int i = 0; i < 4; i++) {
        char *n = malloc(16), *l = malloc(16);
        snprintf(n, 16, "heap%d", i & 1);
        snprintf(l, 16, "i=%d", i);
        dynobs_counter_add(n, 1, l);
        free(l);
        free(n);
    }
    return 0;
}

static int closing(void)
{
    errno = 0;
    int rc = close(-1);
    printf("close-bad %d %d\n", rc, errno);
    int fds[2];
    if (pipe(fds) < 0)
        return 1;
    printf("close-ok %d %d\n", close(fds[0]), close(fds[1]));
    errno = 0;
    rc = close(fds[0]);
    printf("close-again %d %d\n", rc, errno);
    return 0;
}

/* Spans started on one thread and ended on another; the pool of the
 * starting thread must get its slots back. */
static dynobs_span *handed[64];
static int nhanded;

static void *ender(void *arg)
{
    (void)arg;
    for (int i = 0; i < nhanded; i++)
        dynobs_span_end(handed[i]);
    return NULL;
}

static int crossthread(void)
{
    for (int round = 0; round < 3; round++) {
        nhanded = 0;
        int refused = 0;
        for (int i = 0; i < 40; i++) {
            dynobs_span *s = dynobs_span_start("handed-over", DYNOBS_SPAN_KIND_INTERNAL);
            if (s)
                handed[nhanded++] = s;
            else
                refused++;
        }
        printf("round %d started %d refused %d\n", round, nhanded, refused);
        pthread_t t;
        pthread_create(&t, NULL, ender, NULL);
        pthread_join(t, NULL);
    }
    return 0;
}

/* Spans from a signal handler interrupting the thread's own span calls
 * at arbitrary points: both sets must come out whole and well linked. */
static volatile sig_atomic_t handler_spans, handler_refused;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    dynobs_span *s = dynobs_span_start("in-handler", DYNOBS_SPAN_KIND_INTERNAL);
    if (s) {
        dynobs_span_set_int(s, "signal", 14);
        dynobs_span_end(s);
        handler_spans++;
    } else {
        handler_refused++;
    }
    errno = saved;
}

static int signals(void)
{
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    int main_spans = 0;
    for (int i = 0; i < 20000 || handler_spans < 50; i++) {
        dynobs_span *outer = dynobs_span_start("main-outer", DYNOBS_SPAN_KIND_SERVER);
        dynobs_span *inner = dynobs_span_start("main-inner", DYNOBS_SPAN_KIND_CLIENT);
        dynobs_span_set_str(inner, "k", "v");
        dynobs_span_end(inner);
        dynobs_span_end(outer);
        main_spans += 2;
        if (i > 2000000)
            break;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    char cur[64];
    printf("main %d handler %d refused %d current %d\n", main_spans, (int)handler_spans,
           (int)handler_refused, dynobs_current_traceparent(cur, sizeof cur));
    return 0;
}

/* The library loaded at run time, as Python's ctypes would load it. */
static int dlopened(const char *lib)
{
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    dynobs_span *(*start)(const char *, int) = (dynobs_span * (*)(const char *, int)) dlsym(h, "dynobs_span_start");
    int (*end)(dynobs_span *) = (int (*)(dynobs_span *))dlsym(h, "dynobs_span_end");
    int (*enabled)(void) = (int (*)(void))dlsym(h, "dynobs_enabled");
    if (!start || !end || !enabled)
        return 1;
    dynobs_span *s = start("from-dlopen", DYNOBS_SPAN_KIND_INTERNAL);
    printf("enabled %d span %s end %d\n", enabled(), s ? "yes" : "null", end(s));
    return dlclose(h) == 0 ? 0 : 1;
}

static int sampled_ratio(void)
{
    /* Root spans under OTEL_TRACES_SAMPLER; prints how many were sampled. */
    int n = atoi(getenv("SCENARIO_N") ? getenv("SCENARIO_N") : "1000");
    int sampled = 0;
    for (int i = 0; i < n; i++) {
        dynobs_span *s = dynobs_span_start("r", DYNOBS_SPAN_KIND_INTERNAL);
        char tp[64];
        if (dynobs_span_traceparent(s, tp, sizeof tp) > 0 && tp[54] & 1)
            sampled++;
        dynobs_span_end(s);
    }
    printf("sampled %d of %d\n", sampled, n);
    return 0;
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

/* SCENARIO_N spans, each with two attributes, as fast as possible. */
static int burst(void)
{
    int n = env_int("SCENARIO_N", 1000);
    for (int i = 0; i < n; i++) {
        dynobs_span *s = dynobs_span_start("burst", DYNOBS_SPAN_KIND_INTERNAL);
        dynobs_span_set_int(s, "i", i);
        dynobs_span_set_str(s, "what", "burst");
        dynobs_span_end(s);
    }
    printf("done %d\n", n);
    return 0;
}

/* Spans and counter increments until killed; prints progress. */
static int loop(void)
{
    for (long i = 1;; i++) {
        dynobs_span *s = dynobs_span_start("loop", DYNOBS_SPAN_KIND_INTERNAL);
        dynobs_span_set_int(s, "i", i);
        dynobs_span_end(s);
        dynobs_counter_add("loop.iterations", 1, NULL);
        if (i % 100 == 0) {
            printf("ended %ld\n", i);
            usleep(1000);
        }
    }
    return 0;
}

/* Adds SCENARIO_N to a counter, then stays alive SCENARIO_SLEEP ms. */
static int counter(void)
{
    dynobs_counter_add("jobs.done", env_int("SCENARIO_N", 1), "queue=main");
    printf("added\n");
    usleep((useconds_t)env_int("SCENARIO_SLEEP", 0) * 1000);
    return 0;
}

/* SCENARIO_N counter series, then alive for SCENARIO_SLEEP ms. */
static int series(void)
{
    int n = env_int("SCENARIO_N", 10000), refused = 0;
    char labels[64];
    for (int i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "route=/api/v1/item/%d,method=GET", i);
        refused += dynobs_counter_add("http.server.requests", 1 + i % 7, labels) != 0;
    }
    printf("series %d refused %d\n", n, refused);
    usleep((useconds_t)env_int("SCENARIO_SLEEP", 0) * 1000);
    return 0;
}

/* SCENARIO_RATE spans per second for SCENARIO_SECONDS seconds. */
static int rate(void)
{
    int per_s = env_int("SCENARIO_RATE", 200000), secs = env_int("SCENARIO_SECONDS", 5);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long total = (long)per_s * secs, done = 0;
    while (done < total) {
        for (int i = 0; i < 1000 && done < total; i++, done++) {
            dynobs_span *s = dynobs_span_start("rated", DYNOBS_SPAN_KIND_SERVER);
            dynobs_span_set_str(s, "http.request.method", "GET");
            dynobs_span_set_int(s, "http.response.status_code", 200);
            dynobs_span_end(s);
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        double ahead = (double)done / per_s - elapsed;
        if (ahead > 0)
            usleep((useconds_t)(ahead * 1e6));
    }
    printf("done %ld\n", done);
    return 0;
}

/* Log records inside and outside a span. */
static int logs(void)
{
    dynobs_span *s = dynobs_span_start("with-logs", DYNOBS_SPAN_KIND_INTERNAL);
    print_tp("span", s);
    printf("log1 %d\n", dynobs_log(DYNOBS_SEVERITY_WARN, "disk %d%% full", 91));
    dynobs_span_end(s);
    printf("log2 %d\n", dynobs_log(DYNOBS_SEVERITY_INFO, "outside any span"));
    printf("log3 %d\n", dynobs_log(99, "bad severity"));
    return 0;
}

/* Crashes, for the crash reports: argv[2] is segv, abort, fpe, handler
 * (the application's own SIGSEGV handler, installed after dynobs, exits
 * 42), reraise (its handler resets to SIG_DFL and raises again) or bare
 * (a segfault before anything was recorded). */
__attribute__((noinline)) static int crash_here(volatile int *p)
{
    /* The crash is the point. */
    // cppcheck-suppress [ctunullpointer, nullPointer]
    return *p;
}

static void app_handler(int sig)
{
    static const char msg[] = "app handler ran\n";
    if (write(1, msg, sizeof msg - 1) < 0)
        _exit(1);
    _exit(40 + sig / 5); /* SIGSEGV (11): 42 */
}

static void app_reraise(int sig)
{
    static const char msg[] = "app handler re-raises\n";
    if (write(1, msg, sizeof msg - 1) < 0)
        _exit(1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int crash(const char *how)
{
    if (!strcmp(how, "bare")) { /* before anything was recorded */
        volatile int *null = NULL;
        return crash_here(null);
    }
    dynobs_span *outer = dynobs_span_start("doomed-outer", DYNOBS_SPAN_KIND_SERVER);
    dynobs_span *inner = dynobs_span_start("doomed", DYNOBS_SPAN_KIND_INTERNAL);
    print_tp("inner", inner);
    if (!strcmp(how, "handler") || !strcmp(how, "reraise")) {
        struct sigaction sa = {.sa_handler = !strcmp(how, "handler") ? app_handler : app_reraise};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, NULL);
    }
    if (!strcmp(how, "abort"))
        abort();
    if (!strcmp(how, "fpe"))
        raise(SIGFPE);
    volatile int *null = NULL;
    int r = crash_here(null);
    dynobs_span_end(inner);
    dynobs_span_end(outer);
    return r;
}

/* 1 when an object whose path holds `what` is mapped into the process. */
static int mapped(const char *what)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    if (!f)
        return -1;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, what) != NULL;
    fclose(f);
    return found;
}

/* What the shim does before a process first records, seen from inside:
 * argv[2] "idle" records nothing, "record" ends one span, "scribble"
 * writes over the environment's strings first. The test looks for
 * segment files itself. */
static int lazy(const char *how)
{
    printf("unwind-at-start %d\n", mapped("libunwind"));
    if (!strcmp(how, "scribble")) {
        /* As a program that puts its process title where the environment
         * was (php-fpm, nginx), before its first record. */
        extern char **environ;
        for (char **e = environ; *e; e++)
            memset(*e, 'x', strlen(*e));
        how = "record";
    }
    if (!strcmp(how, "record")) {
        dynobs_span_end(dynobs_span_start("first", DYNOBS_SPAN_KIND_INTERNAL));
        printf("unwind-after-record %d\n", mapped("libunwind"));
    }
    return 0;
}

/* The application's handler installed before dynobs is loaded (at run
 * time, as ctypes does): dynobs chains to it. */
static int crash_before(const char *lib)
{
    struct sigaction sa = {.sa_handler = app_handler};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return 3;
    struct sigaction now;
    sigaction(SIGSEGV, NULL, &now);
    printf("dynobs handler installed: %s\n", now.sa_handler != app_handler ? "yes" : "no");
    volatile int *null = NULL;
    return crash_here(null);
}

/* Explicit parents, log records with attributes, and (with
 * DYNOBS_CAPTURE_LOGS=1) stderr lines and syslog calls. */
static int capture(void)
{
    printf("name %d\n", dynobs_set_service_name("renamed"));
    dynobs_span *outer = dynobs_span_start("outer", DYNOBS_SPAN_KIND_SERVER);
    print_tp("outer", outer);
    char tp[64];
    dynobs_span_traceparent(outer, tp, sizeof tp);
    /* A detached child: the thread's context stays on "outer". */
    dynobs_span *side = dynobs_span_start_ex("side", DYNOBS_SPAN_KIND_INTERNAL, tp, NULL,
                                             DYNOBS_SPAN_NO_CONTEXT | DYNOBS_SPAN_LOCAL_PARENT);
    dynobs_span *next = dynobs_span_start("next", DYNOBS_SPAN_KIND_INTERNAL);
    dynobs_span_end(next); /* the first record: the segment exists now */
    printf("late %d\n", dynobs_set_service_name("too-late"));
    dynobs_span *root = dynobs_span_start_ex("root", DYNOBS_SPAN_KIND_INTERNAL, NULL, NULL,
                                             DYNOBS_SPAN_ROOT | DYNOBS_SPAN_NO_CONTEXT);
    dynobs_span *remote = dynobs_span_start_ex(
        "remote", DYNOBS_SPAN_KIND_CONSUMER,
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "k=v", DYNOBS_SPAN_NO_CONTEXT);
    printf("bad %s\n", dynobs_span_start_ex("bad", 1, "00-zz", NULL, 0) ? "span" : "null");
    dynobs_span_end(remote);
    dynobs_span_end(root);
    dynobs_span_end(side);
    fprintf(stderr, "first line\n");
    fflush(stderr);
    ssize_t w = write(2, "second ", 7);
    w += write(2, "line\r\nthird\n", 13);
    char big[1500];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\n';
    w += write(2, big, sizeof big);
    struct iovec iov[2] = {{"vec", 3}, {"tored\n", 6}};
    w += writev(2, iov, 2);
    printf("wrote %zd\n", w);
    errno = ENOENT;
    syslog(LOG_ERR, "open failed: %m (%d)", 7);
    dynobs_attr a[] = {{.key = "k", .type = DYNOBS_ATTR_INT, .v.i = 42},
                       {.key = "s", .type = DYNOBS_ATTR_STRING, .v.s = "str"}};
    printf("rec %d\n", dynobs_log_record(DYNOBS_SEVERITY_ERROR, NULL, "with attrs", a, 2, NULL));
    printf("rec2 %d\n", dynobs_log_record(0, "custom", "explicit span", NULL, 0,
                                          "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    printf("rec3 %d\n", dynobs_log_record(0, NULL, "x", NULL, 0, "nope"));
    dynobs_span_end(outer);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *s = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(s, "nested"))
        return nested();
    if (!strcmp(s, "disabled"))
        return disabled();
    if (!strcmp(s, "limits"))
        return limits();
    if (!strcmp(s, "overwrites"))
        return overwrites();
    if (!strcmp(s, "fork"))
        return forking();
    if (!strcmp(s, "attach"))
        return attach();
    if (!strcmp(s, "metrics"))
        return metrics();
    if (!strcmp(s, "handles"))
        return handles();
    if (!strcmp(s, "handle-overflow"))
        return handle_overflow();
    if (!strcmp(s, "handle-fork"))
        return handle_fork();
    if (!strcmp(s, "handle-disabled"))
        return handle_disabled();
    if (!strcmp(s, "cache"))
        return cache();
    if (!strcmp(s, "close"))
        return closing();
    if (!strcmp(s, "series"))
        return series();
    if (!strcmp(s, "rate"))
        return rate();
    if (!strcmp(s, "logs"))
        return logs();
    if (!strcmp(s, "burst"))
        return burst();
    if (!strcmp(s, "loop"))
        return loop();
    if (!strcmp(s, "counter"))
        return counter();
    if (!strcmp(s, "dlopen") && argc > 2)
        return dlopened(argv[2]);
    if (!strcmp(s, "signals"))
        return signals();
    if (!strcmp(s, "crossthread"))
        return crossthread();
    if (!strcmp(s, "ratio"))
        return sampled_ratio();
    if (!strcmp(s, "capture"))
        return capture();
    if (!strcmp(s, "crash") && argc > 2)
        return crash(argv[2]);
    if (!strcmp(s, "lazy") && argc > 2)
        return lazy(argv[2]);
    if (!strcmp(s, "crash-before") && argc > 2)
        return crash_before(argv[2]);
    return 2;
}
