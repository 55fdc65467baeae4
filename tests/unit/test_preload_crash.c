/* Crash reports in real processes: a segfault, an abort, a
 * floating-point exception and a re-raised signal are reported with a
 * backtrace, the process still dies as it would have,
 * and the application's own handlers keep working.
 * Shared set-up: preload_harness.h. */
#include "preload_harness.h"

PRELOAD_SUITE(preload_crash);

/* Reads the crash report of a segment: the FATAL log record's body and
 * stack trace, and the span "doomed" (its status and first event). */
struct crash_seen {
    char body[128], trace[4096], span_status_msg[600], event[256];
    int fatal, span_status;
};

static void read_crash(struct crash_seen *c) /* zero when there is no segment */
{
    memset(c, 0, sizeof *c);
    char paths[2][1024];
    int nseg = segments(paths, 2);
    cr_assert_leq(nseg, 1, "segments in %s: %d", seg_dir, nseg);
    if (nseg == 0)
        return; /* nothing was written at all */
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], DYNOBS_READER_CONSUME), 0);
    const struct dynobs_rec_hdr *h;
    while (dynobs__reader_next(r, &h) == 1) {
        struct dynobs_log_view lv;
        struct dynobs_span_view v;
        if (h->type == DYNOBS_REC_LOG && dynobs__log_decode(h, h->len, &lv) == 0 &&
            lv.f.severity == DYNOBS_SEVERITY_FATAL) {
            c->fatal++;
            snprintf(c->body, sizeof c->body, "%.*s", (int)lv.f.body_len, lv.body);
            size_t off = 0;
            struct dynobs_item it;
            while (dynobs__item_next(lv.items, lv.f.items_len, &off, &it) == 1)
                if (it.key_len == 20 && !memcmp(it.key, "exception.stacktrace", 20))
                    snprintf(c->trace, sizeof c->trace, "%.*s", (int)it.str_len, it.str);
        } else if (h->type == DYNOBS_REC_SPAN && dynobs__span_decode(h, h->len, &v) == 0 &&
                   v.f.name_len == 6 && !memcmp(v.name, "doomed", 6)) {
            struct tu_span s;
            tu_span_from_view(&s, &v);
            c->span_status = s.status;
            snprintf(c->span_status_msg, sizeof c->span_status_msg, "%s", s.status_msg);
            if (s.nevents)
                snprintf(c->event, sizeof c->event, "%s", s.events[0].name);
        }
    }
    dynobs__reader_close(r);
    free(r);
}

Test(preload_crash, crash_reports_and_the_process_dies_as_it_would)
{
    if (getenv("DYNOBS_TEST_PRELOAD_FIRST"))
        cr_skip_test("AddressSanitizer handles SIGSEGV itself in this build");
    static const struct {
        const char *how;
        int status;
        const char *sig;
    } cases[] = {{"segv", 128 + SIGSEGV, "SIGSEGV"},
                 {"abort", 128 + SIGABRT, "SIGABRT"},
                 {"fpe", 128 + SIGFPE, "SIGFPE"},
                 {"reraise", 128 + SIGSEGV, "SIGSEGV"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {SCENARIO_BIN, "crash", (char *)cases[i].how, NULL};
        const char *env[] = {NULL};
        cr_assert_eq(run_argv(argv, env), cases[i].status, "%s", cases[i].how);
        struct crash_seen c;
        read_crash(&c);
        cr_assert_eq(c.fatal, 1, "%s: one report", cases[i].how);
        char want[64];
        snprintf(want, sizeof want, "process crashed: %s", cases[i].sig);
        cr_assert(!strncmp(c.body, want, strlen(want)), "%s: %s", cases[i].how, c.body);
        cr_assert(strstr(c.trace, "#0 0x"), "%s: backtrace: %s", cases[i].how, c.trace);
        if (!strcmp(cases[i].how, "segv"))
            cr_assert(strstr(c.trace, "crash_here") && strstr(c.trace, "main"), "%s", c.trace);
        cr_assert_eq(c.span_status, DYNOBS_STATUS_ERROR, "%s", cases[i].how);
        cr_assert_str_eq(c.event, "exception");
        char *text = tu_slurp(out);
        if (!strcmp(cases[i].how, "reraise"))
            cr_assert(strstr(text, "app handler re-raises"), "%s", text);
        free(text);
        tu_rmtree(dir);
        mkdir(dir, 0700);
    }
    /* A crash before the process first recorded anything is reported too,
     * without a backtrace: libunwind is loaded at the first record, and
     * the handler itself loads nothing (dlopen is not async-signal-safe). */
    {
        char *argv0[] = {SCENARIO_BIN, "crash", "bare", NULL};
        const char *env0[] = {NULL};
        cr_assert_eq(run_argv(argv0, env0), 128 + SIGSEGV);
        struct crash_seen c;
        read_crash(&c);
        cr_assert_eq(c.fatal, 1, "bare: one report");
        cr_assert(!strncmp(c.body, "process crashed: SIGSEGV", 24), "bare: %s", c.body);
        cr_assert_str_eq(c.trace, "", "bare: %s", c.trace);
        tu_rmtree(dir);
        mkdir(dir, 0700);
    }
    /* The application's own handler, installed after dynobs, runs (and the
     * process exits as it says); it did not die, so no crash report. */
    char *argv[] = {SCENARIO_BIN, "crash", "handler", NULL};
    const char *env[] = {NULL};
    cr_assert_eq(run_argv(argv, env), 42);
    char *text = tu_slurp(out);
    cr_assert(strstr(text, "app handler ran"), "%s", text);
    free(text);
    struct crash_seen c;
    read_crash(&c);
    cr_assert_eq(c.fatal, 0);
    /* A handler installed before dynobs was loaded (dlopen, no preload)
     * keeps working: dynobs's handler passes the fault on to it. */
    char *argv2[] = {SCENARIO_BIN, "crash-before", DYNOBS_LIB, NULL};
    const char *env2[] = {shm_env, NULL};
    cr_assert_eq(tu_run(argv2, env2, out), 42);
    text = tu_slurp(out);
    cr_assert(strstr(text, "dynobs handler installed: yes") && strstr(text, "app handler ran"),
              "%s", text);
    free(text);
}
